"""Tests of kernels.data: cached simulation and the resumable, distributed generator."""

import json
import re

import numpy as np
import pytest
import xarray as xr
import zarr
from numpy.testing import assert_allclose

from kernels import cli, data, priors
from kernels.config import Grid

PERIODS = np.array([2.0, 10.0, 40.0, 60.0])
# A shallow grid keeps these tests fast; the generator is grid-agnostic.
GRID = Grid(n_nodes=100, spacing=1.0)
SETTINGS = dict(prior="strong", n=24, seed=2026, periods=PERIODS, grid=GRID, chunk_size=8,
                progress=False)


def _values(ds):
    return {name: ds[name].values for name in ("velocity_s", "velocity_p", "density",
                                                "phase_velocity", "attempts", "failed",
                                                "split")}


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    """A serial reference data set."""
    return data.generate(tmp_path_factory.mktemp("serial") / "ref.zarr", **SETTINGS)


def test_store_contents_and_provenance(serial):
    """The store holds float32 models and curves with units, config, seed and versions."""
    assert serial.velocity_s.dtype == np.float32 and serial.velocity_s.attrs["units"] == "km/s"
    assert serial.phase_velocity.dims == ("sample", "wave", "period")
    assert serial.attrs["seed"] == 2026 and serial.attrs["prior"] == "strong"
    assert "disba" in serial.attrs["versions"] and serial.attrs["status"] == "complete"
    assert np.isfinite(serial.phase_velocity.values[~serial.failed.values]).all()
    assert 0.0 <= serial.attrs["failure_rate"] < 0.5


def test_redraws_are_deterministic(serial):
    """A redrawn model equals the prior's draw (seed, index, attempt)."""
    attempts = serial.attempts.values
    redrawn = np.flatnonzero(attempts > 0)
    assert redrawn.size > 0, "the strong prior fails on some of these models"
    for i in redrawn[:3]:
        model = priors.sample("strong", 1, 2026, grid=GRID, start=int(i),
                              attempt=int(attempts[i]))
        assert_allclose(serial.velocity_s.values[i], model.velocity_s.values[0], rtol=1e-6)


def test_interrupted_run_resumes_without_loss_or_duplication(tmp_path, serial, monkeypatch):
    """A run that dies mid-way resumes where it stopped and equals an uninterrupted run."""
    path = tmp_path / "resumed.zarr"
    calls = []
    original = data._chunk_worker

    def dying(task):
        calls.append(task[0])
        if len(calls) == 2:
            raise KeyboardInterrupt("simulated interruption")
        return original(task)

    monkeypatch.setattr(data, "_chunk_worker", dying)
    with pytest.raises(KeyboardInterrupt):
        data.generate(path, **SETTINGS)
    with pytest.raises(ValueError, match="incomplete data set"):
        data.open_store(path)
    assert zarr.open_group(str(path))["done"][:].tolist() == [True, False, False]
    monkeypatch.setattr(data, "_chunk_worker", original)
    resumed = data.generate(path, **SETTINGS)
    for name, values in _values(serial).items():
        assert_allclose(resumed[name].values, values, err_msg=name)


def test_processes_equal_serial(tmp_path, serial):
    """Two local processes produce exactly the serial data set."""
    parallel = data.generate(tmp_path / "p.zarr", n_jobs=2, **SETTINGS)
    for name, values in _values(serial).items():
        assert np.array_equal(parallel[name].values, values, equal_nan=True), name


def test_dask_cluster_equals_serial(tmp_path, serial):
    """A dask.distributed LocalCluster produces exactly the serial data set."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        clustered = data.generate(tmp_path / "d.zarr", scheduler=client, **SETTINGS)
    for name, values in _values(serial).items():
        assert np.array_equal(clustered[name].values, values, equal_nan=True), name


def _count_computed_chunks(monkeypatch):
    calls = []
    original = data._chunk_worker

    def counting(task):
        calls.append(task[0])
        return original(task)

    monkeypatch.setattr(data, "_chunk_worker", counting)
    return calls


def test_reused_chunks_equal_a_fresh_run(tmp_path, serial, monkeypatch):
    """Chunks copied from a smaller or larger store give exactly a fresh run's data."""
    small = tmp_path / "small.zarr"
    data.generate(small, **SETTINGS)  # 24 models: three full chunks of 8
    fresh = data.generate(tmp_path / "fresh.zarr", **{**SETTINGS, "n": 36})
    calls = _count_computed_chunks(monkeypatch)
    grown = data.generate(tmp_path / "grown.zarr", **{**SETTINGS, "n": 36}, reuse=str(small))
    assert calls == [24, 32] and grown.attrs["copied_chunks"] == 3
    for name, values in _values(fresh).items():
        assert np.array_equal(grown[name].values, values, equal_nan=True), name
    # From the larger store, including our last, shorter chunk [16, 20).
    calls.clear()
    shrunk = data.generate(tmp_path / "shrunk.zarr", **{**SETTINGS, "n": 20},
                           reuse=[tmp_path / "grown.zarr"])
    assert calls == [] and shrunk.attrs["copied_chunks"] == 3
    for name, values in _values(serial).items():
        assert np.array_equal(shrunk[name].values, values[:20], equal_nan=True), name
    # Back again: the source's short chunk [16, 20) lacks models 20-23 of ours.
    calls.clear()
    regrown = data.generate(tmp_path / "regrown.zarr", **SETTINGS, reuse=[tmp_path / "shrunk.zarr"])
    assert calls == [16] and regrown.attrs["copied_chunks"] == 2
    for name, values in _values(serial).items():
        assert np.array_equal(regrown[name].values, values, equal_nan=True), name


def test_unfinished_source_chunks_are_not_copied(tmp_path, serial, monkeypatch):
    """A chunk its own store has not marked done is recomputed, whatever it holds."""
    source = tmp_path / "source.zarr"
    data.generate(source, **SETTINGS)
    group = zarr.open_group(str(source), mode="r+")
    group["velocity_s"][8:16] = -1.0  # as if a write had been interrupted
    group["done"][1] = False
    calls = _count_computed_chunks(monkeypatch)
    store = data.generate(tmp_path / "new.zarr", **SETTINGS, reuse=[source])
    assert calls == [8] and store.attrs["copied_chunks"] == 2
    for name, values in _values(serial).items():
        assert np.array_equal(store[name].values, values, equal_nan=True), name


@pytest.mark.parametrize(("other", "reason"), [
    ({"seed": 1}, r"its settings differ in \['seed'\]"),
    ({"chunk_size": 12}, r"its settings differ in \['chunk_size'\]"),
    ({"prior": "weak"}, r"its settings differ in \['prior'\]"),
    ({"periods": PERIODS[:3]}, r"its settings differ in \['periods'\]"),
    ({"versions": True}, r"it was made with other package versions"),
])
def test_stores_with_other_settings_are_not_reused(tmp_path, monkeypatch, other, reason):
    """Only a store with the same settings and versions, except n, is copied from."""
    source = tmp_path / "other.zarr"
    data.generate(source, **{**SETTINGS, "n": 16,
                             **{k: v for k, v in other.items() if k != "versions"}})
    if "versions" in other:
        zarr.open_group(str(source), mode="r+").attrs["versions"] = '{"disba": "0.0"}'
    calls = _count_computed_chunks(monkeypatch)
    with pytest.warns(UserWarning) as caught:
        store = data.generate(tmp_path / "new.zarr", **{**SETTINGS, "n": 16},
                              reuse=[source, tmp_path / "missing.zarr"])
    assert calls == [0, 8] and "copied_chunks" not in store.attrs
    messages = [str(w.message) for w in caught]
    assert re.search(f"not reusing .*other.zarr: {reason}", messages[0]), messages
    assert re.search("not reusing .*missing.zarr: no zarr store there", messages[1]), messages


def test_generate_cached_finds_the_store_of_another_size(tmp_path, monkeypatch):
    """The book's stores of one prior and seed share their common chunks, no others."""
    settings = {"periods": PERIODS, "grid": GRID, "chunk_size": 8}
    # Another prior whose name extends this one's, covering every chunk asked for below.
    data.generate_cached(tmp_path, "strong-corrected", 24, 2026, **settings)
    first = data.generate_cached(tmp_path, "strong", 16, 2026, **settings)
    calls = _count_computed_chunks(monkeypatch)
    second = data.generate_cached(tmp_path, "strong", 20, 2026, **settings)
    assert calls == [16] and second.attrs["copied_chunks"] == 2
    assert np.array_equal(second.velocity_s.values[:16], first.velocity_s.values)
    again = data.generate_cached(tmp_path, "strong", 20, 2026, **settings)
    assert calls == [16] and again.attrs["copied_chunks"] == 2  # done flags were kept


def test_other_settings_on_an_existing_store_are_refused(tmp_path):
    """Resuming a store with different settings raises instead of mixing data."""
    path = tmp_path / "a.zarr"
    data.generate(path, **{**SETTINGS, "n": 8})
    with pytest.raises(ValueError, match="holds a data set made with other settings"):
        data.generate(path, **{**SETTINGS, "n": 8, "seed": 1})


def test_splits_are_disjoint_and_stable():
    """Splits depend on the index only: disjoint, near the fractions, stable under growth."""
    small, large = data.split_of(np.arange(100)), data.split_of(np.arange(10_000))
    assert np.array_equal(large[:100], small)
    counts = np.bincount(large, minlength=3) / large.size
    assert_allclose(counts, [0.8, 0.1, 0.1], atol=0.002)
    with pytest.raises(ValueError, match="three non-negative numbers summing to 1"):
        data.split_of([1], fractions=(0.5, 0.5, 0.5))


def test_load_split_excludes_failures_and_other_splits(serial):
    """load_split returns float64 models of one split with thickness, no failed model."""
    test = data.load_split(serial, "test")
    codes = serial.split.values[test.sample.values]
    assert np.all(codes == data.SPLITS["test"])
    assert test.velocity_s.dtype == np.float64 and test.thickness.dims == ("sample", "depth")
    assert not serial.failed.values[test.sample.values].any()
    with pytest.raises(ValueError, match="split must be one of"):
        data.load_split(serial, "holdout")


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"n": 0}, r"n must be an integer >= 1, got 0"),
    ({"chunk_size": 0}, r"chunk_size must be an integer >= 1"),
    ({"prior": "nope"}, r"Unknown prior 'nope'"),
])
def test_bad_generate_arguments(tmp_path, kwargs, match):
    """Bad sizes and unknown priors raise before anything is written."""
    with pytest.raises(ValueError, match=match):
        data.generate(tmp_path / "x.zarr", **{**SETTINGS, **kwargs})
    assert not (tmp_path / "x.zarr").exists()


def test_simulate_cached_keeps_failures_visible(tmp_path):
    """simulate_cached keeps every model; failures are NaN with a flag, and cached."""
    ds = data.simulate_cached(tmp_path, "strong", 12, 2026, PERIODS, grid=GRID)
    assert ds.sizes["sample"] == 12
    again = data.simulate_cached(tmp_path, "strong", 12, 2026, PERIODS, grid=GRID)
    xr.testing.assert_identical(ds, again)
    assert ds.failed.dims == ("sample", "wave")


def test_prior_extras_are_redrawn_from_seed_index_and_attempt(serial):
    """Moho depths recovered from a store equal the prior's own, redraws included."""
    samples = np.flatnonzero(serial.attempts.values > 0)[:2].tolist() + [0, 1]
    extras = data.prior_extras(serial, samples)
    for i in samples:
        expected = priors.sample("strong", 1, 2026, grid=GRID, start=i,
                                 attempt=int(serial.attempts.values[i]))
        assert extras.moho_depth.sel(sample=i) == pytest.approx(float(expected.moho_depth[0]))
    assert extras.moho_depth.attrs["units"] == "km"


def test_command_line_grows_a_store(tmp_path, capsys):
    """`kernels generate --reuse` copies the finished chunks of a smaller store."""

    small, large = tmp_path / "small.zarr", tmp_path / "large.zarr"
    common = ["generate", "--prior", "weak", "--seed", "3", "--chunk-size", "1", "--quiet"]
    assert cli.main([*common, "--n", "2", "--out", str(small)]) == 0
    capsys.readouterr()
    assert cli.main([*common, "--n", "3", "--out", str(large), "--reuse", str(small)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["models"] == 3 and report["copied_chunks"] == 2
    assert np.array_equal(data.open_store(large).velocity_s.values[:2],
                          data.open_store(small).velocity_s.values)
    assert cli.main([*common, "--n", "0", "--out", str(tmp_path / "bad.zarr")]) == 2
    assert "n must be an integer >= 1, got 0" in capsys.readouterr().err
