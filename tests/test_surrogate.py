"""Tests of kernels.surrogate at toy size: training, units of the Jacobian, persistence."""

import numpy as np
import pytest
import torch
import xarray as xr
from numpy.testing import assert_allclose

from kernels import data, priors, surrogate
from kernels.config import Grid

GRID = Grid(n_nodes=40, spacing=1.0)
PERIODS = np.array([2.0, 5.0, 10.0, 20.0])


def _dataset(n, seed):
    return data.drop_failed(data.simulate("weak", n, seed, PERIODS, grid=GRID))


@pytest.fixture(scope="module")
def toy_data():
    """A tiny training and validation set on a 40 km grid."""
    return _dataset(96, 1), _dataset(32, 2)


@pytest.fixture(scope="module")
def trained(toy_data):
    """A small basis-MLP trained for a few epochs."""
    train, validation = toy_data
    return surrogate.Surrogate("basis-mlp", {"n_basis": 12, "hidden": 32, "layers": 2},
                               epochs=25, batch_size=16, learning_rate=3e-3, seed=3,
                               device="cpu", progress=False).fit(train, validation)


def test_training_improves_and_records_history(trained):
    """Validation RMSE falls during training and the history records every epoch."""
    history = trained.history_
    assert len(history) >= 5
    assert set(history[0]) >= {"epoch", "train_loss", "val_rmse_rayleigh", "val_rmse_love",
                               "learning_rate", "time_s"}
    first = history[0]["val_rmse_rayleigh"] + history[0]["val_rmse_love"]
    best = min(h["val_rmse_rayleigh"] + h["val_rmse_love"] for h in history)
    assert best < 0.7 * first


def test_activations_are_smooth(trained):
    """No piecewise-linear activation anywhere: gradients must be smooth."""
    kinds = {type(m) for m in trained.network_.modules()}
    assert nn_relu_free(kinds)


def nn_relu_free(kinds):
    return not kinds & {torch.nn.ReLU, torch.nn.LeakyReLU, torch.nn.ReLU6, torch.nn.Hardtanh}


def test_predict_is_labelled_in_km_per_s(trained, toy_data):
    """predict returns (sample, wave, period) in km/s, close to the truth after training."""
    _, validation = toy_data
    predicted = trained.predict(validation)
    assert predicted.dims == ("sample", "wave", "period")
    assert predicted.attrs["units"] == "km/s"
    error = float(np.sqrt(((predicted - validation.phase_velocity) ** 2).mean()))
    assert error < 0.5 * float(validation.phase_velocity.std())


@pytest.mark.parametrize("parameter", ["velocity_s", "velocity_p", "density"])
def test_jacobian_matches_finite_differences_in_physical_units(trained, toy_data, parameter):
    """The autodiff Jacobian is dc/dp in physical units, the other inputs held fixed.

    Central differences of the float32 network with a 1e-2 step: truncation
    ~1e-4 of the smooth network's curvature and float32 round-off ~1e-7/1e-2
    = 1e-5 km/s per unit: 2e-3 absolute covers both.
    """
    models = toy_data[1].isel(sample=slice(0, 3))
    jac = trained.jacobian(models, parameter=parameter)
    assert jac.dims == ("sample", "wave", "period", "depth")
    step = 1e-2
    for node in (0, 7, 25):
        plus, minus = models.copy(deep=True), models.copy(deep=True)
        plus[parameter][:, node] += step
        minus[parameter][:, node] -= step
        fd = (trained.predict(plus) - trained.predict(minus)) / (2 * step)
        assert_allclose(jac.isel(depth=node).values, fd.values, atol=2e-3)


def test_same_seed_same_network(toy_data):
    """Training twice with the same seed gives identical weights."""
    train, validation = toy_data
    nets = [surrogate.Surrogate("basis-mlp", {"n_basis": 8, "hidden": 16, "layers": 1},
                                epochs=3, batch_size=32, seed=7, device="cpu",
                                progress=False).fit(train, validation) for _ in range(2)]
    for a, b in zip(nets[0].network_.state_dict().values(),
                    nets[1].network_.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_checkpoint_round_trip_and_mismatch_errors(trained, toy_data, tmp_path):
    """A checkpoint reloads to identical predictions; other grids or periods are refused."""
    path = trained.save(tmp_path / "s.pt", note="toy")
    loaded = surrogate.load(path, depth=GRID.depth, periods=PERIODS)
    xr.testing.assert_identical(loaded.predict(toy_data[1]), trained.predict(toy_data[1]))
    assert loaded.metadata_ == {"note": "toy"} and "torch" in loaded.versions_
    assert loaded.history_ == trained.history_
    with pytest.raises(ValueError, match="trained on a grid of 40 nodes"):
        surrogate.load(path, depth=Grid().depth)
    with pytest.raises(ValueError, match="trained on periods"):
        surrogate.load(path, periods=[2.0, 3.0, 4.0, 5.0])
    with pytest.raises(ValueError, match="this surrogate was trained on 40 nodes"):
        loaded.predict(priors.sample("weak", 1, seed=0))


def test_transformer_at_toy_size(toy_data, tmp_path):
    """The paper's Transformer trains, differentiates and round-trips at toy size."""
    train, validation = toy_data
    options = {"d_model": 16, "heads": 2, "encoder_layers": 1, "decoder_layers": 1,
               "feedforward": 32, "dropout": 0.1}
    model = surrogate.Surrogate("transformer", options, epochs=2, batch_size=32,
                                learning_rate=1e-3, device="cpu", progress=False)
    model.fit(train, validation)
    jac = model.jacobian(validation.isel(sample=slice(0, 2)))
    assert jac.shape == (2, 2, PERIODS.size, GRID.n_nodes) and np.isfinite(jac.values).all()
    loaded = surrogate.load(model.save(tmp_path / "t.pt"))
    xr.testing.assert_identical(loaded.predict(validation), model.predict(validation))


def test_mixed_precision_training(toy_data, tmp_path):
    """bfloat16 autocast trains the same network; the choice is recorded and restored.

    ``"auto"`` means float32 off CUDA. bfloat16 carries 8 bits of mantissa, so the
    two runs differ, but both must learn (validation RMSE falls below its first
    value) and predictions stay float32.
    """
    train, validation = toy_data
    options = {"n_basis": 12, "hidden": 32, "layers": 2}
    settings = {"epochs": 15, "batch_size": 16, "learning_rate": 3e-3, "seed": 3,
                "device": "cpu", "progress": False}
    float32 = surrogate.Surrogate("basis-mlp", options, **settings)
    assert float32.precision == "float32"
    model = surrogate.Surrogate("basis-mlp", options, precision="bfloat16", **settings)
    history = model.fit(train, validation).history_
    first, best = history[0]["val_rmse_love"], min(h["val_rmse_love"] for h in history)
    assert best < 0.5 * first
    # autocast really was on: the same seed and batches give another network
    reference = float32.fit(train, validation).history_
    assert [h["val_rmse_love"] for h in history] != [h["val_rmse_love"] for h in reference]
    predicted = model.predict(validation)
    assert predicted.dtype == np.float32 and np.isfinite(predicted.values).all()
    loaded = surrogate.load(model.save(tmp_path / "bf16.pt"))
    assert loaded.precision == "bfloat16"
    xr.testing.assert_identical(loaded.predict(validation), predicted)


def test_auto_precision_is_bfloat16_only_for_the_transformer_on_cuda():
    """"auto" means mixed precision for the Transformer on a GPU, float32 otherwise."""
    resolve = surrogate.resolve_precision
    assert resolve("auto", "transformer", "cuda") == "bfloat16"
    assert resolve("auto", "basis-mlp", "cuda") == "float32"
    assert resolve("auto", "transformer", "cpu") == "float32"
    assert resolve("float32", "transformer", "cuda") == "float32"


def test_paper_transformer_size():
    """At the published sizes the Transformer has about 43 million parameters."""
    network = surrogate.DispersionTransformer(256, 59, Grid().depth, np.arange(2.0, 61.0))
    n = sum(p.numel() for p in network.parameters())
    assert 40e6 < n < 46e6


def test_bad_arguments():
    """Unknown architectures and Jacobian parameters raise errors listing the choices."""
    with pytest.raises(ValueError, match=r"architecture must be one of \['basis-mlp', "):
        surrogate.Surrogate("resnet")
    with pytest.raises(ValueError, match=r"precision must be one of .*got 'fp16'"):
        surrogate.Surrogate(precision="fp16")
    trained_like = surrogate.Surrogate()
    trained_like.depth_ = GRID.depth
    with pytest.raises(ValueError, match=r"parameter must be one of"):
        trained_like.jacobian(priors.sample("weak", 1, seed=0, grid=GRID), parameter="h")


def test_log_outputs_are_positive(toy_data):
    """With log_outputs the surrogate predicts exp(.): phase velocities stay positive."""
    train, validation = toy_data
    model = surrogate.Surrogate("basis-mlp", {"n_basis": 8, "hidden": 16, "layers": 1,
                                              "log_outputs": True},
                                epochs=3, batch_size=32, device="cpu", progress=False)
    predicted = model.fit(train, validation).predict(validation)
    assert (predicted > 0).all()
    jac = model.jacobian(validation.isel(sample=slice(0, 1)))
    assert np.isfinite(jac.values).all()


def test_train_cached_trains_once(toy_data, tmp_path):
    """train_cached trains and saves on the first call and loads on the next."""
    train, validation = toy_data
    settings = dict(epochs=2, batch_size=32, seed=1, device="cpu")
    options = {"n_basis": 8, "hidden": 16, "layers": 1}
    path = tmp_path / "cached.pt"
    first = surrogate.train_cached(path, train, validation, "basis-mlp", options, **settings)
    stamp = path.stat().st_mtime_ns
    second = surrogate.train_cached(path, train, validation, "basis-mlp", options, **settings)
    assert path.stat().st_mtime_ns == stamp
    xr.testing.assert_identical(first.predict(validation), second.predict(validation))


def test_checkpoints_of_another_format_are_refused(trained, tmp_path):
    """A checkpoint from another network version is refused, not silently misread."""
    path = trained.save(tmp_path / "old.pt")
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["format"] = "kernels-surrogate/1"
    torch.save(checkpoint, path)
    with pytest.raises(ValueError, match=r"checkpoint format 'kernels-surrogate/1'.*Retrain"):
        surrogate.load(path)
    torch.save({"weights": 1}, path)
    with pytest.raises(ValueError, match="not a kernels surrogate checkpoint"):
        surrogate.load(path)


def test_train_for_store_caches_by_data_and_settings(tmp_path):
    """The book's helper trains once per (data, settings, seed) and records its checkpoint."""
    from kernels.config import SurrogateChapterConfig
    from kernels.data import generate

    store = generate(tmp_path / "d.zarr", "weak", 40, 3, periods=PERIODS, grid=GRID,
                     chunk_size=20, progress=False)
    training = SurrogateChapterConfig(n_data=40, architecture_options={
        "n_basis": 8, "hidden": 16, "layers": 1}, epochs=2, batch_size=16)
    first = surrogate.train_for_store(store, training, tmp_path)
    again = surrogate.train_for_store(store, training, tmp_path)
    other = surrogate.train_for_store(store, training, tmp_path, init_seed=7)
    assert first.checkpoint_ == again.checkpoint_ and first.checkpoint_.exists()
    assert first.checkpoint_.parent == tmp_path / "surrogates"
    assert other.checkpoint_ != first.checkpoint_ and "seed7" in other.checkpoint_.name
    assert first.metadata_["prior"] == "weak"
    # Another profile's name, processes, chunk or nominal size reuse the network ...
    import dataclasses

    same = dataclasses.replace(training, profile="full", n_jobs=1, chunk_size=7, n_data=9999)
    assert surrogate.train_for_store(store, same, tmp_path).checkpoint_ == first.checkpoint_
    # ... a training setting does not.
    longer = dataclasses.replace(training, epochs=3)
    assert surrogate.train_for_store(store, longer, tmp_path).checkpoint_ != first.checkpoint_
