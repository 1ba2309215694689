"""Tests of kernels.gradients: baselines and directional derivatives against the physics."""

import numpy as np
import pytest
import xarray as xr
from numpy.testing import assert_allclose

from kernels import data, gradients, metrics, priors, surrogate
from kernels.config import Grid
from kernels.sensitivity import kernel_dataset

GRID = Grid(n_nodes=60, spacing=1.0)
PERIODS = np.array([3.0, 8.0, 20.0, 40.0])


@pytest.fixture(scope="module")
def models():
    """Five weak-prior models on a 60 km grid."""
    return priors.sample("weak", 5, seed=21, grid=GRID)


@pytest.fixture(scope="module")
def exact(models):
    """Their exact kernels, both waves."""
    return kernel_dataset(models, PERIODS)


def _split(n, seed):
    return data.drop_failed(data.simulate("weak", n, seed, PERIODS, grid=GRID))


def test_exact_directional_derivatives_match_central_differences_of_disba(models, exact):
    """J dm of the exact engine equals disba's central difference along prior-drawn dm.

    dm has an rms of 1 % of Vs and the difference steps 0.1 dm either side. disba
    brackets each root to 1e-6 of c, so the difference carries a noise of at most
    2e-6 c / (2 * 0.1) = 1e-5 c; the truncation error, O(step^2) times the
    curvature of c along dm, is below 1e-3 of the response at this step (it is
    about 25 noise units at a 1 % step, so 100 times smaller here). The bound is
    therefore 1e-5 c + 1e-3 |dc|, per cell, with no cell excluded.
    """
    others = priors.sample("weak", 5, seed=22, grid=GRID).assign_coords(
        sample=models.sample.values)
    direction = gradients.prior_directions(models, others, rms=0.01)
    assert_allclose(np.sqrt(((direction / models.velocity_s) ** 2).mean("depth")), 0.01)
    predicted = gradients.directional_derivative(exact.dc_dvelocity_s, direction)
    finite = gradients.physics_directional_derivative(models, direction, PERIODS, step=0.1)
    noise = 1e-6 * exact.phase_velocity / 0.1
    assert bool((abs(predicted - finite) <= noise + 1e-3 * abs(finite)).all())
    error = gradients.directional_error(predicted, finite, floor=100 * noise)
    assert float(error.max()) < 0.02


def test_bump_directions_are_localised(models, exact):
    """A bump's J dm is the kernel summed under the bump; a deep bump barely moves 3 s waves."""
    bumps = gradients.bump_directions(models, centres=[2.0, 50.0], widths=[2.0, 5.0])
    assert bumps.dims == ("sample", "direction", "depth") and bumps.sizes["direction"] == 4
    assert_allclose(bumps.isel(direction=0).sel(depth=2.0) / models.velocity_s.sel(depth=2.0),
                    0.01, rtol=1e-12)
    response = gradients.directional_derivative(exact.dc_dvelocity_s, bumps)
    shallow = abs(response.sel(direction=0, period=3.0))
    deep = abs(response.sel(direction=2, period=3.0))
    assert (deep < 0.05 * shallow).all()
    with pytest.raises(ValueError, match="widths must be positive"):
        gradients.bump_directions(models, [1.0], [0.0])


def test_a_method_that_returns_the_exact_kernel_has_skill_one(models, exact):
    """Skill 1 for the exact kernel itself; 0 for the prior-median baseline against itself."""
    train = priors.sample("weak", 20, seed=23, grid=GRID)
    baseline = gradients.prior_median_kernels(train, models, PERIODS)
    theory = exact.dc_dvelocity_s
    assert baseline.dc_dvelocity_s.dims == ("sample", "wave", "period", "depth")
    assert (baseline.dc_dvelocity_s.isel(sample=0) == baseline.dc_dvelocity_s.isel(sample=3)).all()
    exact_error = metrics.raw_kernel_error(theory, theory)
    baseline_error = metrics.raw_kernel_error(baseline.dc_dvelocity_s, theory)
    table = metrics.binned_skill(exact_error, baseline_error, n_boot=50,
                                 bins=((2, 10), (10, 41)))
    assert_allclose(table["skill"], 1.0)
    table = metrics.binned_skill(baseline_error, baseline_error, n_boot=50,
                                 bins=((2, 10), (10, 41)))
    assert_allclose(table[["skill", "skill_low", "skill_high"]], 0.0)
    cosine = metrics.cosine_similarity(baseline.dc_dvelocity_s, theory)
    table = metrics.binned_skill(metrics.cosine_similarity(theory, theory), cosine,
                                 kind="cosine", n_boot=50, bins=((2, 10), (10, 41)))
    assert_allclose(table["skill"], 1.0, atol=1e-9)


def test_prior_median_model_is_the_depthwise_median(models):
    """The median model holds the node-wise medians of Vp, Vs and density."""
    median = gradients.prior_median_model(models)
    assert median.sizes["sample"] == 1
    assert_allclose(median.velocity_s.isel(sample=0), models.velocity_s.median("sample"))
    assert_allclose(median.density.isel(sample=0), models.density.median("sample"))


def test_another_model_is_a_derangement(exact):
    """Every model gets a kernel of another model, under its own label."""
    moved = gradients.another_model_kernels(exact.dc_dvelocity_s)
    assert (moved.sample.values == exact.sample.values).all()
    for i in range(exact.sizes["sample"]):
        j = (i + 1) % exact.sizes["sample"]
        xr.testing.assert_equal(moved.isel(sample=i).drop_vars(["sample", "failed"]),
                                exact.dc_dvelocity_s.isel(sample=j)
                                .drop_vars(["sample", "failed"]))
    with pytest.raises(ValueError, match="not a multiple"):
        gradients.another_model_kernels(exact.dc_dvelocity_s, shift=5)


def test_shuffled_labels_keep_models_and_permute_curves():
    """Inputs unchanged, the same curves in another order."""
    split = _split(12, 5)
    shuffled = data.shuffled_labels(split, seed=0)
    xr.testing.assert_equal(shuffled.velocity_s, split.velocity_s)
    n = split.sizes["sample"]
    a = np.sort(split.phase_velocity.values.reshape(n, -1), axis=0)
    b = np.sort(shuffled.phase_velocity.values.reshape(n, -1), axis=0)
    assert_allclose(a, b)
    assert not np.allclose(shuffled.phase_velocity, split.phase_velocity)


def test_ridge_surrogate_is_linear_in_its_features_and_fits():
    """The ridge baseline is the basis-MLP without hidden layers: its Jacobian is exact
    for a linear map of ln m, and on smooth data it beats predicting the mean curve."""
    train, validation = _split(80, 6), _split(30, 7)
    model = surrogate.fit_ridge(train, validation, n_basis=8)
    assert model.alpha_ in surrogate.RIDGE_ALPHAS
    predicted = model.predict(validation)
    rmse = float(np.sqrt(((predicted - validation.phase_velocity) ** 2).mean()))
    spread = float(np.sqrt(((validation.phase_velocity
                             - train.phase_velocity.mean("sample")) ** 2).mean()))
    assert rmse < 0.6 * spread
    # Linear in ln Vs: c(Vs e^t) - c(Vs) = t Vs J exactly, for any t.
    one = validation.isel(sample=[0])
    jac = model.jacobian(one).isel(sample=0)
    scaled = one.assign(velocity_s=one.velocity_s * np.exp(0.01))
    change = (model.predict(scaled) - model.predict(one)).isel(sample=0)
    assert_allclose(change, 0.01 * (jac * one.velocity_s.isel(sample=0)).sum("depth"),
                    rtol=2e-3, atol=1e-6)  # float32 network


def test_untrained_surrogate_knows_the_scale_only():
    """At initialisation the network predicts near the mean curve, with standardisers fitted."""
    train = _split(40, 8)
    model = surrogate.Surrogate("basis-mlp", {"n_basis": 8, "hidden": 16, "layers": 2},
                                device="cpu", progress=False, seed=1).initialise(train)
    predicted = model.predict(train)
    assert predicted.dims == ("sample", "wave", "period")
    assert float(abs(predicted - train.phase_velocity).mean()) < 2.0
    assert model.jacobian(train.isel(sample=[0])).dims == ("sample", "wave", "period", "depth")


def test_density_coupling_respects_the_weak_prior_clip():
    """Where the weak prior clips Vp at 8.5 km/s, density does not follow Vp (beta = 0)."""
    assert float(priors.density_slope(9.0, "weak")) == 0.0
    assert float(priors.density_slope(6.0, "weak")) == pytest.approx(
        float(priors.brocher_slope(6.0)))
    assert float(priors.density_slope(9.0, "strong")) == pytest.approx(
        float(priors.brocher_slope(9.0)))
    with pytest.raises(ValueError, match="Brocher's function of Vp"):
        priors.density_slope(6.0, "strong-decorrelated")
    depth = np.array([0.0, 1.0])
    models = xr.Dataset({"velocity_p": ("depth", [6.0, 9.0]), "density": ("depth", [2.7, 3.3])},
                        coords={"depth": depth}, attrs={"prior": "weak"})
    g = xr.DataArray(np.ones((3, 2)), dims=("channel", "depth"),
                     coords={"channel": ["velocity_p", "velocity_s", "density"],
                             "depth": depth})
    combined = gradients.along_density_coupling(g, models)
    assert combined.values[1] == 1.0  # clipped node: the Vp kernel alone
    assert combined.values[0] > 1.0
    with pytest.raises(ValueError, match="pass prior"):
        gradients.along_density_coupling(g, models.assign_attrs(prior=None))


def test_physics_directional_derivative_pairs_directions_by_label(models):
    """Directions are matched to models by sample label, whatever their order."""
    bumps = gradients.bump_directions(models, centres=[5.0], widths=[5.0])
    periods = np.array([5.0, 20.0])
    aligned = gradients.physics_directional_derivative(models, bumps, periods)
    shuffled = gradients.physics_directional_derivative(models, bumps.isel(sample=[4, 2, 0, 1, 3]),
                                                        periods)
    xr.testing.assert_allclose(aligned, shuffled.sel(sample=aligned.sample))
    with pytest.raises(ValueError, match="one perturbation per model"):
        gradients.physics_directional_derivative(models, bumps.isel(sample=[0, 1]), periods)


class ExactSurrogate:
    """A 'surrogate' that returns the physics: exact curves and exact kernels."""

    def __init__(self, theory):
        self.theory = theory

    def predict(self, models):
        return self.theory.phase_velocity

    def jacobian(self, models, parameter="velocity_s"):
        return self.theory[f"dc_d{parameter}"]


def test_surrogate_scores_of_the_physics_are_perfect(models, exact):
    """The physics scored as a surrogate: cosines 1, no raw or curve error, J dm right."""
    others = priors.sample("weak", 5, seed=23, grid=GRID).assign_coords(
        sample=models.sample.values)
    direction = gradients.prior_directions(models, others, rms=0.01)
    response = gradients.physics_directional_derivative(models, direction, PERIODS, step=0.1)
    test = models.assign(phase_velocity=exact.phase_velocity)
    scores = gradients.surrogate_scores(ExactSurrogate(exact), test, exact, direction, response)
    assert set(scores) >= {"cosine", "raw_error", "directional_error", "vp_cosine",
                           "density_cosine", "curve_error"}
    assert_allclose(scores.cosine.median(), 1.0, atol=1e-9)
    assert float(scores.raw_error.max()) < 1e-9 and float(abs(scores.curve_error).max()) == 0
    assert float(scores.directional_error.max()) < 0.02  # the disba noise bound above
    assert bool(scores.vp_cosine.sel(wave="love").isnull().all())
    assert_allclose(scores.vp_cosine.sel(wave="rayleigh").median(), 1.0, atol=1e-9)
