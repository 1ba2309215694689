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
    NoiseModel,
    Parametrisation,
    PhysicsForward,
    SurrogateForward,
    fisher_information,
    invert,
    marginal_sd,
)
from kernels.io import model_dataset

GRID = Grid(n_nodes=40, spacing=1.0)
PERIODS = np.array([3.0, 6.0, 12.0, 20.0])
# The linear toy problem needs more data (2 x 20) than unknowns (15).
TOY_PERIODS = np.arange(2.0, 22.0)


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
    result = invert(clean, forward, p, initial, noise, damping=1e-8, smoothing=0.0,
                    max_iter=100, tol=1e-12)
    assert result.converged
    assert_allclose(result.theta, theta_true, atol=1e-5)
    j_theta = forward.a @ p.grid_jacobian(result.theta)
    fisher = j_theta.T @ (j_theta / 1e-3**2)
    assert_allclose(result.fisher, fisher, rtol=1e-10)
    assert_allclose(result.hessian, fisher + 1e-8 * np.eye(15), rtol=1e-10)
    assert_allclose(fisher_information(forward, p, result.theta, noise), fisher, rtol=1e-10)
    sd = result.sd()
    assert sd.dims == ("depth",) and np.all(sd > 0)
    assert_allclose(sd, marginal_sd(p, result.theta, result.hessian))


def test_adam_reaches_the_same_minimum(toy):
    """Adam (one vjp per step) ends near the Levenberg-Marquardt objective."""
    p, forward, _, clean, initial = toy
    noise = NoiseModel.constant(0.01, TOY_PERIODS)
    lm = invert(clean, forward, p, initial, noise, damping=1.0, smoothing=1.0)
    adam = invert(clean, forward, p, initial, noise, damping=1.0, smoothing=1.0,
                  method="adam", max_iter=3000, learning_rate=0.01, tol=1e-9)
    assert adam.history[-1]["objective"] == pytest.approx(lm.history[-1]["objective"],
                                                          rel=0.02)


def test_regularised_solution_is_pulled_towards_the_initial_model(toy):
    """Strong damping keeps the solution at the initial model; the band shrinks."""
    p, forward, _, clean, initial = toy
    noise = NoiseModel.constant(0.01, TOY_PERIODS)
    loose = invert(clean, forward, p, initial, noise, damping=1e-3)
    stiff = invert(clean, forward, p, initial, noise, damping=1e8)
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
                    damping=1e-4, smoothing=0.0, max_iter=30)
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
        ({"damping": -1.0}, r"damping must be a finite number >= 0, got -1.0"),
        ({"max_iter": 0}, r"max_iter must be an integer >= 1, got 0"),
    ],
)
def test_bad_inversion_arguments(toy, kwargs, match):
    p, forward, _, clean, initial = toy
    with pytest.raises(ValueError, match=match):
        invert(clean, forward, p, initial, NoiseModel.constant(0.01, TOY_PERIODS), **kwargs)


def test_data_on_other_periods_are_refused(toy):
    p, forward, _, clean, initial = toy
    with pytest.raises(ValueError, match="observed must be on the forward model's"):
        invert(clean.assign_coords(period=clean.period + 1), forward, p, initial,
               NoiseModel.constant(0.01, TOY_PERIODS))


def test_model_dataset_from_parametrisation(toy):
    p, _, theta_true, _, _ = toy
    model = p.model(theta_true, GRID.thickness)
    expected = model_dataset(GRID.depth, GRID.thickness, *p.to_grid(theta_true))
    xr.testing.assert_allclose(model, expected)


def test_band_is_the_log_space_interval(toy):
    """The band is exp(+-n sd(ln p)) around the model: positive and asymmetric."""
    p, forward, _, clean, initial = toy
    result = invert(clean, forward, p, initial, NoiseModel.constant(0.01, TOY_PERIODS),
                    damping=1.0)
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
        invert(clean, forward, p, initial, reversed_noise)
    with pytest.raises(ValueError, match="no finite datum"):
        invert(clean * np.nan, forward, p, initial, NoiseModel.constant(0.01, TOY_PERIODS))
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
    result = invert(clean, forward, p, initial, NoiseModel.constant(0.01, TOY_PERIODS),
                    method="adam", max_iter=300, learning_rate=0.01)
    objectives = [row["objective"] for row in result.history]
    assert result.history[-1].get("best") and objectives[-1] == pytest.approx(min(objectives))
    assert result.settings["learning_rate"] == 0.01  # the caller's rate, not the halved one


def test_control_points_that_move_no_node_are_refused():
    with pytest.raises(ValueError, match=r"control depths \[0.5\] km move no grid node"):
        Parametrisation(GRID.depth, control=[0.0, 0.5, 1.0, 39.0])
