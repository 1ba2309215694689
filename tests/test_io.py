"""Tests of kernels.io: constructors, provenance, atomic writes and the cache."""

import json

import numpy as np
import pytest
import xarray as xr

from kernels import io


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    """A failed write leaves neither the target nor a temporary file behind."""
    target = tmp_path / "out.nc"
    with pytest.raises(RuntimeError), io.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_replaces_on_success(tmp_path):
    """A successful write appears under the final name only."""
    target = tmp_path / "out.txt"
    with io.atomic_path(target) as tmp:
        tmp.write_text("done")
    assert target.read_text() == "done"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_cached_dataset_computes_once(tmp_path):
    """The cache computes on the first call and reads the file afterwards."""
    calls = []

    def compute():
        calls.append(1)
        return xr.Dataset({"a": ("x", np.arange(3.0))}, attrs={"seed": 1})

    path = tmp_path / "cache.nc"
    first = io.cached_dataset(path, compute)
    second = io.cached_dataset(path, compute)
    assert len(calls) == 1
    xr.testing.assert_identical(first, second)


def test_provenance_records_config_seed_and_versions():
    """Provenance attrs carry the JSON config, the seed and package versions."""
    attrs = io.provenance(config={"n": np.int64(3), "t": (1, 2)}, seed=5)
    assert json.loads(attrs["config"]) == {"n": 3, "t": [1, 2]}
    assert attrs["seed"] == 5
    assert "numpy" in json.loads(attrs["versions"])


def test_config_hash_changes_with_inputs():
    """Different configs get different cache keys."""
    assert io.config_hash({"n": 1}) != io.config_hash({"n": 2})


def test_model_arrays_of_single_and_batched_models():
    """A single model becomes one row; a batch keeps (sample, depth) order."""
    model = io.layered_model([1.0, 2.0], [5.0, 6.0], [3.0, 3.5], [2.5, 2.6])
    arrays = io.as_model_arrays(model)
    assert all(a.shape == (1, 2) for a in arrays)
    batch = xr.concat([model, model], dim="sample").transpose("depth", "sample")
    assert all(a.shape == (2, 2) for a in io.as_model_arrays(batch))


def test_cache_keys_follow_the_code_they_depend_on(tmp_path, monkeypatch):
    """A change to a prior's source moves the data store's key; a change to plotting
    code moves no key (data, kernels, training); the training code moves only its own."""
    from kernels import io
    from kernels.data import store_path

    real = io._module_source

    def keys():
        io.code_hash.cache_clear()
        return ({stage: io.code_hash(stage) for stage in io.STAGE_MODULES},
                store_path(tmp_path, "weak", 100, 1))

    def edited(module, text="\nEDITED = 1\n"):
        def source(name):
            return real(name) + (text if name == module else "")
        return source

    try:
        before, path = keys()
        monkeypatch.setattr(io, "_module_source", edited("plotting"))
        assert keys() == (before, path)
        monkeypatch.setattr(io, "_module_source", edited("config"))  # chapter settings
        assert keys() == (before, path)
        monkeypatch.setattr(io, "_module_source", edited("config:Grid", "\n    EDITED = 1\n"))
        assert keys()[1] != path
        monkeypatch.setattr(io, "_module_source", edited("priors", "\n# a comment only\n"))
        assert keys() == (before, path)  # documentation is not code
        monkeypatch.setattr(io, "_module_source", edited("priors"))
        after, moved = keys()
        assert moved != path and after["data"] != before["data"]
        assert after["training"] == before["training"]
        monkeypatch.setattr(io, "_module_source", edited("surrogate"))
        after, moved = keys()
        assert moved == path and after["training"] != before["training"]
        with pytest.raises(ValueError, match="stage must be one of"):
            io.code_hash("plots")
    finally:
        monkeypatch.undo()
        io.code_hash.cache_clear()
