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


def test_stage_timer_logs_finished_blocks_only_where_asked(tmp_path, monkeypatch):
    """A timed block appends one record to the runner's log; without the variable it
    logs nothing; a failing block logs nothing; nesting and unknown stages are refused;
    the stage minutes leave the untimed rest as evaluation."""
    log = tmp_path / "stages.jsonl"
    monkeypatch.delenv(io.STAGE_LOG_ENV, raising=False)
    with io.stage_timer("data", "weak"):
        pass
    assert not log.exists()
    monkeypatch.setenv(io.STAGE_LOG_ENV, str(log))
    with io.stage_timer("training", "weak"):
        pass
    with pytest.raises(KeyError), io.stage_timer("kernels", "failing"):
        raise KeyError("boom")
    with io.stage_timer("data", 3):
        pass
    records = io.read_stage_log(log)
    assert [(r["stage"], r["label"]) for r in records] == [("training", "weak"), ("data", "3")]
    assert all(r["seconds"] >= 0 for r in records)
    with pytest.raises(RuntimeError, match="nested"), io.stage_timer("data", "outer"):
        with io.stage_timer("training", "inner"):
            pass
    with io.stage_timer("inversion", "after a refused nesting"):  # the stack was unwound
        pass
    with pytest.raises(ValueError, match="stage must be one of"):
        with io.stage_timer("plotting", "x"):
            pass
    assert io.read_stage_log(tmp_path / "absent.jsonl") == []
    minutes = io.stage_minutes([{"stage": "data", "seconds": 120.0},
                                {"stage": "data", "seconds": 60.0},
                                {"stage": "training", "seconds": 30.0}], 600.0)
    assert minutes == {"data": 3.0, "kernels": 0.0, "training": 0.5, "inversion": 0.0,
                       "evaluation": 6.5}
    assert io.stage_minutes([{"stage": "data", "seconds": 90.0}], 60.0)["evaluation"] == 0.0


def test_timing_tables_count_own_runs_and_sweep_points_once():
    """A chapter's own run stands alone (a stray run of it under another name is not
    added); a notebook run only as sweep points is their sum; a record from before
    stage timing (and of run names) leaves its stage columns NaN; blocks are summed per
    (stage, label)."""
    def record(notebook, run, wall, stages=(), overrides=None):
        stages = [{"stage": s, "label": label, "seconds": sec} for s, label, sec in stages]
        return {"notebook": notebook, "run": run, "wall_s": wall, "finished": "2026-12-03",
                "cpu_count": 2, "stages": stages, "overrides": overrides or {},
                "stage_minutes": io.stage_minutes(stages, wall)}

    records = [record("03-x", "03-x", 600.0, [("data", "weak", 120.0),
                                              ("training", "weak", 300.0)],
                      {"training.epochs": 5, "run.seed": 1}),
               record("03-x", "other", 60.0, [("data", "weak", 60.0)]),
               record("p", "a=1", 120.0, [("training", "weak", 60.0)],
                      {"emergence.n_seeds": 1}),
               record("p", "a=2", 180.0, [("training", "weak", 120.0)]),
               {"notebook": "01-y", "wall_s": 30.0, "finished": "t", "cpu_count": 2}]
    per_notebook, per_label = io.timing_tables(records)
    assert per_notebook.loc["03-x", "minutes"] == 10.0
    assert per_notebook.loc["03-x", "runs"] == 1
    assert per_notebook.loc["03-x", ["data", "training", "evaluation"]].tolist() == [2.0, 5.0,
                                                                                    3.0]
    assert per_notebook.loc["p", "minutes"] == 5.0 and per_notebook.loc["p", "training"] == 3.0
    assert np.isnan(per_notebook.loc["01-y", "data"])
    # a chapter's own run reports its overrides; a sweep point's are its sweep's definition
    assert per_notebook.loc["03-x", "overrides"] == "run.seed=1, training.epochs=5"
    assert per_notebook.loc["p", "overrides"] == per_notebook.loc["01-y", "overrides"] == ""
    assert per_label.loc[("training", "weak"), "minutes"] == 8.0
    assert per_label.loc[("training", "weak"), "blocks"] == 3
    assert per_label.loc[("data", "weak"), "minutes"] == 2.0  # the stray run is not counted
    assert per_label.index[0] == ("training", "weak")
