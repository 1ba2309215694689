"""Tests of kernels.inversion: parametrisation, noise model, solvers and the Laplace posterior."""

import numpy as np
import pytest
import xarray as xr
from numpy.testing import assert_allclose

from kernels import priors
from kernels.config import WAVES, Grid
from kernels.data import drop_failed, simulate
from kernels.forward import dispersion_curves
from kernels.inversion import (
    PAPER_CONTROL_DEPTHS,
    VPVS_MIN,
    GaussianPrior,
    NoiseModel,
    Parametrisation,
    PhysicsForward,
    SmoothnessPrior,
    SurrogateForward,
    fisher_information,
    geometry_agreement,
    invert,
    marginal_sd,
    residual_covariance,
    usable_phase_velocity,
)
from kernels.io import model_dataset

GRID = Grid(n_nodes=40, spacing=1.0)
PERIODS = np.array([3.0, 6.0, 12.0, 20.0])
# The linear toy problem needs more data (2 x 20) than unknowns (15).
TOY_PERIODS = np.arange(2.0, 22.0)
# A prior that barely constrains the toy problem (sd of 1e4 ln units, no smoothing).
LOOSE = SmoothnessPrior(sd=1e4, curvature_sd=np.inf)
UNIT = SmoothnessPrior(sd=1.0, curvature_sd=1.0)


def test_paper_control_points():
    """28 points on the paper's grid: 0-5 km by 0.5, 6-10 by 1, 15-50 by 5, 70, 90, 110, bottom."""
    p = Parametrisation(Grid().depth)
    assert p.n_control == 28 and p.n_parameters == 84
    assert_allclose(p.control[:-1], PAPER_CONTROL_DEPTHS)
    assert p.control[-1] == Grid().depth[-1]
    assert_allclose(p.matrix.sum(axis=1), 1.0)  # linear interpolation is a partition of unity


def test_round_trip_and_grid_jacobian():
    """Profiles linear in log between control points round-trip; d values / d theta is exact."""
    p = Parametrisation(GRID.depth, control=[0.0, 5.0, 12.0, 39.0])
    rng = np.random.default_rng(0)
    theta = np.log([6.0, 3.5, 2.7]).repeat(4) + 0.05 * rng.normal(size=12)
    values = p.to_grid(theta)
    assert values.shape == (3, GRID.n_nodes) and np.all(values > 0)
    assert_allclose(p.from_grid(values), theta, atol=1e-12)
    h = 1e-6
    numeric = np.stack([(p.to_grid(theta + h * e) - p.to_grid(theta - h * e)).ravel() / (2 * h)
                        for e in np.eye(theta.size)], axis=1)
    assert_allclose(p.grid_jacobian(theta), numeric, atol=1e-7)


@pytest.mark.parametrize(
    ("control", "match"),
    [
        ("coarse", r"control must be 'paper', 'full' or depths, got 'coarse'"),
        ([0.0, 10.0], r"control depths must span the grid \(0-39 km\), got 0-10 km"),
        ([0.0, 20.0, 10.0, 39.0], r"strictly increasing"),
    ],
)
def test_bad_control_points(control, match):
    with pytest.raises(ValueError, match=match):
        Parametrisation(GRID.depth, control=control)


def test_noise_model():
    """Positive sigmas only; the model error adds in quadrature; draws repeat by seed."""
    noise = NoiseModel.constant(0.03, PERIODS)
    error = xr.full_like(noise.sigma, 0.04)
    assert_allclose(noise.with_model_error(error).sigma, 0.05)
    clean = xr.zeros_like(noise.sigma)
    assert_allclose(noise.draw(clean, 1), noise.draw(clean, 1))
    assert not np.allclose(noise.draw(clean, 1), noise.draw(clean, 2))
    with pytest.raises(ValueError, match=r"noise sigma must be positive and finite"):
        NoiseModel.constant(0.0, PERIODS)


class LinearForward:
    """c = A @ values: a forward model whose Jacobian is known exactly."""

    name = "linear"

    def __init__(self, n_depth, seed=0):
        rng = np.random.default_rng(seed)
        self.periods = TOY_PERIODS
        self.a = rng.normal(size=(len(WAVES) * TOY_PERIODS.size, 3 * n_depth)) / n_depth

    def __call__(self, values):
        return self.a @ np.ravel(values), self.a

    def value_and_vjp(self, values):
        return self.a @ np.ravel(values), lambda v: self.a.T @ v


@pytest.fixture(scope="module")
def toy():
    p = Parametrisation(GRID.depth, control=[0.0, 4.0, 10.0, 20.0, 39.0])
    forward = LinearForward(GRID.n_nodes)
    rng = np.random.default_rng(3)
    theta_true = np.log([6.0, 3.5, 2.7]).repeat(5) + 0.1 * rng.normal(size=15)
    clean = xr.DataArray(forward(p.to_grid(theta_true))[0].reshape(2, -1),
                         dims=("wave", "period"),
                         coords={"wave": list(WAVES), "period": TOY_PERIODS})
    initial = p.model(np.log([6.0, 3.5, 2.7]).repeat(5), GRID.thickness)
    return p, forward, theta_true, clean, initial


def test_levenberg_marquardt_recovers_the_truth_and_its_hessian(toy):
    """Noise-free data, negligible regularisation: the truth; H = J^T W J + H_reg exactly."""
    p, forward, theta_true, clean, initial = toy
    noise = NoiseModel.constant(1e-3, TOY_PERIODS)
    result = invert(clean, forward, p, initial, noise, LOOSE, max_iter=100, tol=1e-12)
    assert result.converged
    assert_allclose(result.theta, theta_true, atol=1e-5)
    j_theta = forward.a @ p.grid_jacobian(result.theta)
    fisher = j_theta.T @ (j_theta / 1e-3**2)
    assert_allclose(result.fisher, fisher, rtol=1e-10)
    assert_allclose(result.hessian, fisher + 1e-8 * np.eye(15), rtol=1e-10)
    assert_allclose(result.regularisation_hessian, LOOSE.hessian(p), atol=1e-6)
    assert_allclose(fisher_information(forward, p, result.theta, noise), fisher, rtol=1e-10)
    sd = result.sd()
    assert sd.dims == ("depth",) and np.all(sd > 0)
    assert_allclose(sd, marginal_sd(p, result.theta, result.hessian))


def test_adam_reaches_the_same_minimum(toy):
    """Adam (one vjp per step) ends near the Levenberg-Marquardt objective."""
    p, forward, _, clean, initial = toy
    noise = NoiseModel.constant(0.01, TOY_PERIODS)
    lm = invert(clean, forward, p, initial, noise, UNIT)
    adam = invert(clean, forward, p, initial, noise, UNIT, method="adam", max_iter=3000,
                  learning_rate=0.01, tol=1e-9)
    assert adam.history[-1]["objective"] == pytest.approx(lm.history[-1]["objective"],
                                                          rel=0.02)


def test_regularised_solution_is_pulled_towards_the_initial_model(toy):
    """Strong damping keeps the solution at the initial model; the band shrinks."""
    p, forward, _, clean, initial = toy
    noise = NoiseModel.constant(0.01, TOY_PERIODS)
    loose = invert(clean, forward, p, initial, noise, SmoothnessPrior(30.0, np.inf))
    stiff = invert(clean, forward, p, initial, noise, SmoothnessPrior(1e-4, np.inf))
    theta0 = p.from_grid(np.stack([initial[v].values for v in
                                   ("velocity_p", "velocity_s", "density")]))
    assert np.abs(stiff.theta - theta0).max() < 0.1 * np.abs(loose.theta - theta0).max()
    assert float(stiff.sd().max()) < float(loose.sd().max())


def test_physics_inversion_fits_its_own_data():
    """The exact-kernel forward fits noise-free disba data of a model it can represent."""
    p = Parametrisation(GRID.depth, control=[0.0, 3.0, 8.0, 15.0, 25.0, 39.0])
    start = priors.sample("weak", 1, seed=4, grid=GRID).isel(sample=0)
    values = np.stack([start[v].values for v in ("velocity_p", "velocity_s", "density")])
    truth = p.model(p.from_grid(values), GRID.thickness)
    data = dispersion_curves(truth, PERIODS).reset_coords(["failed", "untrapped"], drop=True)
    initial = p.model(p.from_grid(values) - 0.05, GRID.thickness)
    forward = PhysicsForward(PERIODS, GRID.thickness, GRID.depth)
    result = invert(data, forward, p, initial, NoiseModel.constant(0.01, PERIODS),
                    SmoothnessPrior(100.0, np.inf), max_iter=30)
    assert result.misfit < 1e-2  # chi^2 per datum: residuals below a tenth of sigma
    assert_allclose(result.predicted, data.transpose("wave", "period"), atol=2e-3)


def test_surrogate_forward_jacobian_is_the_surrogates(tmp_path):
    """SurrogateForward's Jacobian equals Surrogate.jacobian channel by channel."""
    from kernels import surrogate

    data = drop_failed(simulate("weak", 24, 1, PERIODS, grid=GRID))
    models = data[["thickness", "velocity_p", "velocity_s", "density"]]
    net = surrogate.Surrogate("basis-mlp", {"n_basis": 8, "hidden": 16, "layers": 1},
                              epochs=2, batch_size=8, seed=0, device="cpu")
    net.fit(data.isel(sample=slice(0, 16)), data.isel(sample=slice(16, None)))
    one = models.isel(sample=[0])
    values = np.stack([one[v].values[0] for v in ("velocity_p", "velocity_s", "density")])
    c, jac = SurrogateForward(net)(values)
    assert_allclose(c, net.predict(one).values.ravel(), rtol=1e-6)
    for k, name in enumerate(("velocity_p", "velocity_s", "density")):
        expected = net.jacobian(one, parameter=name).values.reshape(c.size, -1)
        assert_allclose(jac[:, k * GRID.n_nodes:(k + 1) * GRID.n_nodes], expected,
                        rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"method": "bfgs"}, r"method must be 'lm' or 'adam', got 'bfgs'"),
        ({"prior": 1.0}, r"prior must be a SmoothnessPrior or a GaussianPrior, got float"),
        ({"max_iter": 0}, r"max_iter must be an integer >= 1, got 0"),
    ],
)
def test_bad_inversion_arguments(toy, kwargs, match):
    p, forward, _, clean, initial = toy
    with pytest.raises(ValueError, match=match):
        invert(clean, forward, p, initial, NoiseModel.constant(0.01, TOY_PERIODS),
               **{"prior": UNIT, **kwargs})


def test_data_on_other_periods_are_refused(toy):
    p, forward, _, clean, initial = toy
    with pytest.raises(ValueError, match="observed must be on the forward model's"):
        invert(clean.assign_coords(period=clean.period + 1), forward, p, initial,
               NoiseModel.constant(0.01, TOY_PERIODS), UNIT)


def test_model_dataset_from_parametrisation(toy):
    p, _, theta_true, _, _ = toy
    model = p.model(theta_true, GRID.thickness)
    expected = model_dataset(GRID.depth, GRID.thickness, *p.to_grid(theta_true))
    xr.testing.assert_allclose(model, expected)


def test_band_is_the_log_space_interval(toy):
    """The band is exp(+-n sd(ln p)) around the model: positive and asymmetric."""
    p, forward, _, clean, initial = toy
    result = invert(clean, forward, p, initial, NoiseModel.constant(0.01, TOY_PERIODS),
                    SmoothnessPrior(1.0, np.inf))
    low, high = result.band("velocity_s", 2.0)
    vs = result.model.velocity_s
    assert np.all(low > 0) and np.all(low < vs) and np.all(vs < high)
    assert_allclose(np.log(high / vs), 2 * result.sd(log=True))
    # To first order the log sd is the linear sd divided by the value.
    assert_allclose(result.sd(log=True), result.sd() / vs, rtol=1e-10)
    with pytest.raises(ValueError, match=r"parameter must be one of"):
        result.sd("vs")


def test_noise_and_data_must_line_up(toy):
    """A noise model on other periods, or data with no finite value, is refused."""
    p, forward, _, clean, initial = toy
    reversed_noise = NoiseModel(NoiseModel.constant(0.01, TOY_PERIODS).sigma
                                .isel(period=slice(None, None, -1)))
    with pytest.raises(ValueError, match=r"the noise model is on waves .* periods"):
        invert(clean, forward, p, initial, reversed_noise, UNIT)
    with pytest.raises(ValueError, match="no finite datum"):
        invert(clean * np.nan, forward, p, initial, NoiseModel.constant(0.01, TOY_PERIODS),
               UNIT)
    noise = NoiseModel.constant(0.01, TOY_PERIODS)
    with pytest.raises(ValueError, match="model_error is on waves"):
        noise.with_model_error(noise.sigma.isel(period=slice(0, 5)))


class FlakyForward(LinearForward):
    """Fails (NaN) on every third call: Adam must survive and report its best point."""

    def __init__(self, n_depth):
        super().__init__(n_depth)
        self.calls = 0

    def value_and_vjp(self, values):
        self.calls += 1
        c, vjp = super().value_and_vjp(values)
        return (c * np.nan if self.calls % 3 == 0 else c), vjp


def test_adam_survives_failed_steps_and_reports_its_best_point(toy):
    p, _, _, clean, initial = toy
    forward = FlakyForward(GRID.n_nodes)
    result = invert(clean, forward, p, initial, NoiseModel.constant(0.01, TOY_PERIODS), UNIT,
                    method="adam", max_iter=300, learning_rate=0.01)
    objectives = [row["objective"] for row in result.history]
    assert result.history[-1].get("best") and objectives[-1] == pytest.approx(min(objectives))
    assert result.settings["learning_rate"] == 0.01  # the caller's rate, not the halved one


def test_control_points_that_move_no_node_are_refused():
    with pytest.raises(ValueError, match=r"control depths \[0.5\] km move no grid node"):
        Parametrisation(GRID.depth, control=[0.0, 0.5, 1.0, 39.0])


NONUNIFORM = [0.0, 1.0, 2.0, 5.0, 10.0, 25.0, 39.0]


def test_curvature_of_a_constant_gradient_is_zero_on_a_nonuniform_grid():
    """The smoothing operator penalises a constant depth gradient by zero, whatever the spacing."""
    p = Parametrisation(GRID.depth, control=NONUNIFORM)
    d, width = p.curvature()
    assert_allclose(d @ (1.3 - 0.02 * p.control), 0.0, atol=1e-14)
    # It is the exact second derivative of a quadratic (per km^2) at every spacing.
    assert_allclose(d @ (0.5 * 0.03 * p.control**2), 0.03, rtol=1e-12)
    assert_allclose(width, 0.5 * (np.diff(p.control)[:-1] + np.diff(p.control)[1:]))
    theta0 = np.log([6.0, 3.5, 2.7]).repeat(p.n_control)
    gradient = theta0 + 0.01 * np.tile(p.control, 3)
    h = SmoothnessPrior(sd=np.inf, curvature_sd=0.1).hessian(p)
    curved = theta0 + 0.01 * np.tile(np.sin(p.control / 5.0), 3)
    # Zero up to roundoff, against a curved profile of the same size.
    assert abs((gradient - theta0) @ h @ (gradient - theta0)) < 1e-12 * (
        (curved - theta0) @ h @ (curved - theta0))


def test_curvature_penalty_is_an_integral_over_depth():
    """The same smooth profile costs the same with coarse or fine control points."""
    grid = Grid(n_nodes=121, spacing=0.5)

    def penalty(control):
        p = Parametrisation(grid.depth, control=control, vpvs=1.75)
        theta = 0.05 * np.sin(p.control / 8.0)
        return theta @ SmoothnessPrior(np.inf, 1.0).hessian(p) @ theta

    exact = (0.05 / 64.0) ** 2 * (30.0 - 2.0 * np.sin(15.0))  # integral of f''^2 over 0-60 km
    coarse = penalty(np.arange(0.0, 60.1, 2.0))
    uneven = penalty(np.union1d(np.concatenate([np.arange(0, 10, 0.5), np.arange(10, 61, 1.5)]),
                                [60.0]))
    # The end cells (half a spacing at each end) hold no interior point: up to 1 km of the
    # 60 km is missed where sin^2 is 0.9, about 3 %; the second differences add h^2/12/64.
    assert coarse == pytest.approx(exact, rel=0.05)
    assert uneven == pytest.approx(exact, rel=0.05)
    assert coarse == pytest.approx(uneven, rel=0.05)


def test_smoothness_prior_checks_and_fits():
    """Scales must be positive; the fit finds the rms deviation and no curvature in a gradient."""
    with pytest.raises(ValueError, match=r"curvature_sd must be a positive number"):
        SmoothnessPrior(0.1, 0.0)
    p = Parametrisation(GRID.depth, control=NONUNIFORM, vpvs=1.8)
    base = p.to_grid(np.full(p.n_control, np.log(3.5)))
    # Offsets of +-0.1 and a constant gradient: an rms deviation of 0.1, no curvature.
    shifts = [(-0.1, 0.0), (0.1, 0.0), (-0.1, 0.002), (0.1, -0.002)]
    values = np.stack([base * np.exp(o + g * (GRID.depth - GRID.depth.mean()))
                       for o, g in shifts])
    models = model_dataset(GRID.depth, GRID.thickness, *values.transpose(1, 0, 2))
    fitted = SmoothnessPrior.from_models(models, p)
    assert fitted.curvature_sd < 1e-12
    deviation = [o + g * (p.control - GRID.depth.mean()) for o, g in shifts]  # mean is 0
    assert fitted.sd == pytest.approx(np.sqrt(np.mean(np.square(deviation))), rel=1e-9)


def test_vs_only_parametrisation_ties_vp_and_density():
    """With vpvs, Vp = ratio x Vs and density = Brocher(Vp); the chain rule is exact."""
    p = Parametrisation(GRID.depth, control=NONUNIFORM, vpvs=1.8)
    theta = np.log(3.5) + 0.1 * np.sin(p.control / 7.0)
    vp, vs, rho = p.to_grid(theta)
    assert_allclose(vp, 1.8 * vs) and assert_allclose(rho, priors.brocher_density(vp))
    assert_allclose(p.from_grid(np.stack([vp, vs, rho])), theta, atol=1e-12)
    h = 1e-6
    numeric = np.stack([(p.to_grid(theta + h * e) - p.to_grid(theta - h * e)).ravel() / (2 * h)
                        for e in np.eye(theta.size)], axis=1)
    assert_allclose(p.grid_jacobian(theta), numeric, rtol=1e-6, atol=1e-9)
    assert_allclose(p.log_jacobian(theta, "velocity_s"), p.matrix, atol=1e-12)
    with pytest.raises(ValueError, match=r"vpvs must exceed 2/sqrt\(3\) = 1.1547"):
        Parametrisation(GRID.depth, control=NONUNIFORM, vpvs=1.15)


def test_steps_below_the_bulk_modulus_bound_are_rejected(toy):
    """No model with Vp / Vs <= 2/sqrt(3) is ever evaluated: such steps are refused."""
    p, _, _, clean, initial = toy

    class Recording(LinearForward):
        seen = []

        def __call__(self, values):
            self.seen.append(float(np.min(values[0] / values[1])))
            return super().__call__(values)

    forward = Recording(GRID.n_nodes)
    # Data that ask for Vp close to Vs: the bound must hold on every evaluated model.
    target = initial.assign(velocity_p=initial.velocity_s * 1.16)
    data = clean.copy(data=forward(np.stack([target[v].values for v in
                                             ("velocity_p", "velocity_s", "density")]))[0]
                      .reshape(clean.shape))
    Recording.seen.clear()
    invert(data, forward, p, initial, NoiseModel.constant(1e-3, TOY_PERIODS), LOOSE,
           max_iter=40)
    assert min(Recording.seen) > VPVS_MIN


def test_correlated_noise_model():
    """1 % of c, exp(-|d ln T| / L) in a wave; draws have that covariance; precision inverts it."""
    periods = np.array([2.0, 2.2, 5.0, 40.0, 44.0])
    data = xr.DataArray(np.array([[3.0, 3.1, 3.4, 4.0, 4.05], [3.2, 3.3, 3.6, 4.3, 4.35]]),
                        dims=("wave", "period"), coords={"wave": list(WAVES), "period": periods})
    noise = NoiseModel.relative(data, 0.01, 0.2)
    assert_allclose(noise.sigma, 0.01 * data)
    c = noise.covariance
    assert c[0, 1] == pytest.approx(0.03 * 0.031 * np.exp(-np.log(1.1) / 0.2))
    assert c[0, 5] == 0.0  # the waves are independent
    draws = np.stack([noise.draw(xr.zeros_like(data), s).values.ravel() for s in range(4000)])
    # Sample covariance of 4000 draws: correlation errors ~ 1/sqrt(4000) = 0.016.
    assert_allclose(np.corrcoef(draws, rowvar=False), noise.correlation, atol=0.06)
    use = np.array([True] * 9 + [False])
    precision = noise.precision(use)
    assert_allclose(precision[np.ix_(use, use)] @ c[np.ix_(use, use)], np.eye(9), atol=1e-9)
    assert np.all(precision[~use] == 0)
    with pytest.raises(ValueError, match=r"correlation_length must be >= 0"):
        NoiseModel.relative(data, 0.01, -1.0)


def test_model_error_covariance_from_residuals():
    """A full model-error covariance adds to the data covariance; residual rows with NaN drop."""
    rng = np.random.default_rng(0)
    noise = NoiseModel.constant(0.01, PERIODS)
    n = noise.sigma.size
    mixing = rng.normal(size=(n, n)) * 0.01
    residuals = rng.normal(size=(5000, n)) @ mixing.T
    observed = np.zeros_like(residuals)
    observed[3, 2] = np.nan
    cov = residual_covariance(residuals, observed)
    # Entries of about 8e-4 (km/s)^2 estimated from 5000 rows: sd about sqrt(2 / 5000) of
    # that, 1.6e-5; 8e-5 is five of those.
    assert_allclose(cov, mixing @ mixing.T, atol=8e-5)
    # A bias is part of the second moment (the default), not of the centred covariance.
    bias = np.full(n, 0.02)
    kept = (residuals + bias)[np.isfinite(observed).all(1)]  # the row with a NaN is dropped
    assert_allclose(residual_covariance(residuals + bias, observed), kept.T @ kept / len(kept),
                    rtol=1e-12)
    assert np.all(np.diag(residual_covariance(residuals + bias, observed))
                  > np.diag(cov) + 0.9 * bias**2)
    assert_allclose(residual_covariance(residuals + bias, observed, centred=True),
                    np.cov(kept, rowvar=False), rtol=1e-9)
    total = noise.with_model_error(cov)
    assert_allclose(total.covariance, noise.covariance + cov, rtol=1e-12, atol=1e-15)
    assert total.correlation is not None
    with pytest.raises(ValueError, match=r"a model-error covariance must be \(8, 8\)"):
        noise.with_model_error(np.eye(3))
    with pytest.raises(ValueError, match=r"shrinkage must lie in \[0, 1\]"):
        residual_covariance(residuals, observed, shrinkage=2.0)


def test_fisher_at_another_model(toy):
    """fisher_information(values=...) differentiates at those grid values, not at theta's."""
    p, forward, theta_true, _, _ = toy
    noise = NoiseModel.constant(0.01, TOY_PERIODS)
    values = p.to_grid(theta_true) * 1.05
    j_theta = forward.a @ p.grid_jacobian(theta_true, values)
    assert_allclose(fisher_information(forward, p, theta_true, noise, values=values),
                    j_theta.T @ (j_theta / 0.01**2), rtol=1e-10)
    assert_allclose(p.grid_jacobian(theta_true, values), 1.05 * p.grid_jacobian(theta_true))


def test_geometry_agreement_sees_a_rotation():
    """Rotating the leading eigenvector by phi gives |cos| = cos(phi); equal matrices agree."""
    phi = 0.3
    rotation = np.array([[np.cos(phi), -np.sin(phi), 0], [np.sin(phi), np.cos(phi), 0],
                         [0, 0, 1]])
    f = np.diag([5.0, 1.0, 0.2])
    out = geometry_agreement(f, rotation @ f @ rotation.T, k=1)
    assert out["leading_cos"] == pytest.approx(np.cos(phi))
    assert out["subspace_cos"] == pytest.approx(np.cos(phi))
    assert out["eigenvalue_ratio"] == pytest.approx(1.0)
    assert geometry_agreement(f, rotation @ f @ rotation.T, k=2)["subspace_cos"] == (
        pytest.approx(1.0))  # the rotation stays inside the top-2 plane
    with pytest.raises(ValueError, match="square and of one shape"):
        geometry_agreement(f, np.eye(2))


def test_per_depth_prior_follows_the_spread_of_each_depth():
    """per_depth gives each control point its models' rms deviation, floored; shapes checked."""
    p = Parametrisation(GRID.depth, control=NONUNIFORM, vpvs=1.8)
    base = p.to_grid(np.full(p.n_control, np.log(3.5)))
    rng = np.random.default_rng(2)
    # Deviations whose sd falls linearly from 0.3 at the surface to 0.03 at depth.
    scale = np.interp(GRID.depth, [0.0, 39.0], [0.3, 0.03])
    values = np.stack([base * np.exp(scale * rng.normal()) for _ in range(4000)])
    models = model_dataset(GRID.depth, GRID.thickness, *values.transpose(1, 0, 2))
    fitted = SmoothnessPrior.from_models(models, p, reference=p.from_grid(base), per_depth=True,
                                         floor=0.0)
    expected = np.interp(p.control, [0.0, 39.0], [0.3, 0.03])
    assert fitted.sd.shape == (1, p.n_control) and fitted.curvature_sd.shape == (1, 5)
    assert_allclose(fitted.sd[0], expected, rtol=0.05)  # 4000 draws: sd error ~ 1 %
    floored = SmoothnessPrior.from_models(models, p, reference=p.from_grid(base),
                                          per_depth=True, floor=0.5)
    assert np.all(floored.sd >= 0.5 * np.median(fitted.sd) - 1e-12)
    assert fitted.hessian(p).shape == (p.n_control, p.n_control)
    assert_allclose(SmoothnessPrior(fitted.sd, np.inf).hessian(p),
                    np.diag(1.0 / fitted.sd[0] ** 2))
    with pytest.raises(ValueError, match=r"sd must broadcast to \(3, 7\)"):
        SmoothnessPrior(np.ones(4), 1.0).hessian(Parametrisation(GRID.depth,
                                                                 control=NONUNIFORM))


def test_missing_data_with_nan_derivatives_do_not_poison_the_inversion(toy):
    """A datum left out (NaN) whose Jacobian row is NaN takes no part: same result as without."""
    p, forward, theta_true, clean, initial = toy

    class Gappy(LinearForward):
        def __call__(self, values):
            c, jac = super().__call__(values)
            c, jac = c.copy(), jac.copy()
            c[3], jac[3] = np.nan, np.nan
            return c, jac

    gappy = Gappy(GRID.n_nodes)
    data = clean.copy()
    data[0, 3] = np.nan
    noise = NoiseModel.constant(1e-3, TOY_PERIODS)
    result = invert(data, gappy, p, initial, noise, LOOSE, max_iter=100, tol=1e-12)
    assert result.converged and np.all(np.isfinite(result.fisher))
    assert_allclose(result.theta, theta_true, atol=1e-4)
    fisher = fisher_information(gappy, p, result.theta, noise)
    assert np.all(np.isfinite(fisher))
    with pytest.raises(ValueError, match="no finite value or derivative"):
        fisher_information(gappy, p, result.theta, noise, use=np.ones(40, dtype=bool))


def test_a_step_to_a_datum_without_a_derivative_is_rejected(toy):
    """A finite value whose Jacobian row is NaN (a kernel that failed) is a failed step.

    The forward model below loses the derivative of one datum beyond a line in
    parameter space that the undamped step crosses; accepting that step would put
    NaN into the Hessian. It must be rejected, leaving a finite solution.
    """
    p, forward, theta_true, clean, initial = toy
    start = p.from_grid(np.stack([initial[name].values for name in ("velocity_p",
                                                                     "velocity_s",
                                                                     "density")]))
    limit = 0.5 * (start[0] + theta_true[0])

    class LosesADerivative(LinearForward):
        def __call__(self, values):
            c, jac = super().__call__(values)
            if p.from_grid(values)[0] > limit:
                jac = jac.copy()
                jac[5] = np.nan
            return c, jac

    noise = NoiseModel.constant(1e-3, TOY_PERIODS)
    result = invert(clean, LosesADerivative(GRID.n_nodes), p, initial, noise, LOOSE,
                    max_iter=30)
    assert np.all(np.isfinite(result.theta)) and np.all(np.isfinite(result.hessian))
    assert result.theta[0] <= limit


def test_usable_phase_velocity_refuses_periods_whose_kernel_failed():
    """A period flagged ``failed`` is NaN even where the root itself is finite."""
    c = np.array([[3.0, 3.1], [3.2, 3.3]])
    ds = xr.Dataset({"phase_velocity": (("wave", "period"), c)},
                    coords={"wave": list(WAVES), "period": [5.0, 10.0],
                            "failed": (("wave", "period"), [[True, False], [False, False]])})
    assert_allclose(usable_phase_velocity(ds), [np.nan, 3.1, 3.2, 3.3])
    assert_allclose(usable_phase_velocity(ds.transpose("period", "wave")),
                    [np.nan, 3.1, 3.2, 3.3])


def test_gaussian_prior_is_the_models_covariance_with_their_couplings():
    """Its marginal sd is the models' own; a Vp tied to Vs shows as a correlation of one."""
    p = Parametrisation(GRID.depth, control=NONUNIFORM)
    rng = np.random.default_rng(3)
    base = p.to_grid(np.log([6.0, 3.5, 2.7]).repeat(p.n_control))
    values = []
    for _ in range(3000):
        vs_factor = np.exp(0.1 * rng.normal() + 0.05 * rng.normal(size=GRID.n_nodes))
        values.append(base * np.stack([vs_factor, vs_factor,
                                       np.exp(0.02 * rng.normal(size=GRID.n_nodes))]))
    models = model_dataset(GRID.depth, GRID.thickness, *np.stack(values).transpose(1, 0, 2))
    prior = GaussianPrior.from_models(models, p, shrinkage=0.0)
    theta = np.stack([p.from_grid(v) for v in values])
    # rtol: the 1e-8 x largest-variance floor that keeps the prior invertible.
    assert_allclose(prior.sd, theta.std(axis=0, ddof=1), rtol=1e-5)
    n = p.n_control
    vp, vs = prior.covariance[:n, :n], prior.covariance[n:2 * n, :n]
    assert_allclose(vs / np.sqrt(np.outer(np.diag(prior.covariance)[n:2 * n], np.diag(vp))),
                    vp / np.sqrt(np.outer(np.diag(vp), np.diag(vp))), atol=1e-6)
    assert_allclose(np.linalg.inv(prior.hessian(p)), prior.covariance, rtol=1e-6, atol=1e-12)
    shrunk = GaussianPrior.from_models(models, p)
    assert 0.0 <= shrunk.shrinkage < 0.2  # 3000 models: little shrinkage needed
    with pytest.raises(ValueError, match="the prior has 21 parameters, the parametrisation 7"):
        prior.hessian(Parametrisation(GRID.depth, control=NONUNIFORM, vpvs=1.8))


def test_whitened_geometry_does_not_depend_on_the_units_of_the_unknowns():
    """Rescaling the unknowns changes the raw eigenvectors, not the prior-whitened comparison."""
    rng = np.random.default_rng(6)
    a, b = rng.normal(size=(12, 4)), rng.normal(size=(12, 4))
    f_a, f_b, h = a.T @ a, (a + 0.3 * b).T @ (a + 0.3 * b), np.diag([1.0, 2.0, 3.0, 4.0])
    scale = np.diag([1.0, 10.0, 0.1, 3.0])  # theta' = S^-1 theta: F' = S F S, H' = S H S
    whitened = geometry_agreement(f_a, f_b, k=2, prior_hessian=h)
    rescaled = geometry_agreement(scale @ f_a @ scale, scale @ f_b @ scale, k=2,
                                  prior_hessian=scale @ h @ scale)
    for key in whitened:
        assert rescaled[key] == pytest.approx(whitened[key], rel=1e-9)
    raw, raw_rescaled = geometry_agreement(f_a, f_b), geometry_agreement(
        scale @ f_a @ scale, scale @ f_b @ scale)
    assert raw_rescaled["leading_cos"] != pytest.approx(raw["leading_cos"], rel=1e-3)
