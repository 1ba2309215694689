"""Tests of kernels.posterior: samplers against an analytic posterior, diagnostics, forwards."""

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose

from kernels.config import Grid
from kernels.forward import dispersion_curves
from kernels.io import model_dataset
from kernels.posterior import (
    LayeredPhysics,
    LayeredVs,
    Posterior,
    break_even,
    central_coverage,
    compare,
    coverage_table,
    diagnose,
    laplace,
    run_emcee,
    run_nuts,
)

GRID = Grid(n_nodes=60, spacing=0.5)
TOPS = [0.0, 5.0, 15.0, 29.5]


def layered(covariance=0.01):
    k = len(TOPS)
    return LayeredVs(TOPS, [1.8] * k, np.log([3.0, 3.6, 4.2, 4.6]), covariance * np.eye(k),
                     GRID.depth)


class LinearForward:
    """c = A theta + b: a forward model whose posterior is Gaussian and known exactly."""

    name = "linear"

    def __init__(self, layered, n_data=6, seed=0):
        rng = np.random.default_rng(seed)
        self.layered = layered
        self.a = rng.normal(size=(n_data, layered.n_layers))
        self.b = rng.normal(size=n_data)
        self.n_evaluations = 0

    def __call__(self, theta):
        theta = np.atleast_2d(theta)
        self.n_evaluations += theta.shape[0]
        return theta @ self.a.T + self.b

    def torch(self, theta):
        self.n_evaluations += theta.shape[0]
        return theta @ torch.as_tensor(self.a).T + torch.as_tensor(self.b)

    def jacobian(self, theta):
        return self(theta)[0], self.a


@pytest.fixture(scope="module")
def linear_problem():
    prior = layered(covariance=0.04)
    forward = LinearForward(prior)
    noise = 0.1 * np.eye(6) + 0.02  # correlated data errors
    observed = forward(prior.mean + 0.1)[0]
    post = Posterior(forward, observed, noise)
    precision = forward.a.T @ np.linalg.inv(noise) @ forward.a + prior.precision
    covariance = np.linalg.inv(precision)
    mean = covariance @ (forward.a.T @ np.linalg.inv(noise) @ (observed - forward.b)
                         + prior.precision @ prior.mean)
    return post, mean, covariance


def _within_monte_carlo_error(run, mean, covariance):
    sd = np.sqrt(np.diag(covariance))
    # Monte Carlo sd of a posterior mean is sd / sqrt(ESS): allow five of them. The sd of
    # a sample sd is about sd / sqrt(2 ESS): allow five of those too.
    assert_allclose(run.flat.mean(axis=0), mean, atol=5 * np.max(sd / np.sqrt(run.ess_bulk)))
    assert_allclose(run.flat.std(axis=0), sd, rtol=5 / np.sqrt(2 * np.min(run.ess_bulk)))


def test_emcee_recovers_a_gaussian_posterior(linear_problem):
    """The ensemble sampler's mean and sd match the analytic posterior within MC error."""
    post, mean, covariance = linear_problem
    run = run_emcee(post, n_walkers=16, n_steps=3000, n_burn=500, seed=1)
    assert run.converged, run.reason
    assert run.n_evaluations == 16 * 3001  # the starting walkers are evaluated too
    _within_monte_carlo_error(run, mean, covariance)


def test_nuts_recovers_a_gaussian_posterior(linear_problem):
    """pyro's NUTS matches the analytic posterior within MC error and reports its chains."""
    post, mean, covariance = linear_problem
    run = run_nuts(post, n_chains=2, n_warmup=300, n_samples=600, seed=2)
    assert run.draws.shape == (2, 600, 4)
    assert run.converged, run.reason
    _within_monte_carlo_error(run, mean, covariance)


def test_laplace_is_exact_for_a_linear_problem(linear_problem):
    """Gauss-Newton finds the mode in one step and the Hessian is the posterior precision."""
    post, mean, covariance = linear_problem
    result = laplace(post)
    assert result.converged
    assert_allclose(result.mode, mean, atol=1e-10)
    assert_allclose(result.covariance, covariance, rtol=1e-10)


def test_laplace_rejects_a_step_to_a_datum_without_a_derivative(linear_problem):
    """A finite value whose derivative is NaN (a kernel that failed) is a failed step.

    The forward model loses one datum's derivative beyond half-way to the mode in the
    first layer: Gauss-Newton must halve its step instead of taking the NaN into its
    Hessian, and return a finite mode and covariance.
    """
    post, mean, _ = linear_problem
    linear = post.forward
    limit = 0.5 * (linear.layered.mean[0] + mean[0])
    sign = np.sign(mean[0] - linear.layered.mean[0])

    class LosesADerivative(LinearForward):
        def jacobian(self, theta):
            c, jac = linear.jacobian(theta)
            if sign * (theta[0] - limit) > 0:
                jac = jac.copy()
                jac[2] = np.nan
            return c, jac

    broken = LosesADerivative(linear.layered)
    broken.a, broken.b = linear.a, linear.b
    result = laplace(Posterior(broken, post.observed, np.linalg.inv(post.precision)))
    assert np.all(np.isfinite(result.mode)) and np.all(np.isfinite(result.covariance))
    assert sign * (result.mode[0] - limit) <= 0


def test_a_short_run_is_flagged(linear_problem):
    """R-hat, ESS and the autocorrelation rule mark a deliberately short run unconverged."""
    post, _, _ = linear_problem
    run = run_emcee(post, n_walkers=8, n_steps=40, n_burn=10, seed=3)
    assert not run.converged
    assert "autocorrelation times" in run.reason
    assert {"rhat_max", "ess_bulk_min", "converged", "reason"} <= set(run.summary())
    rng = np.random.default_rng(0)
    stuck = np.stack([rng.normal(size=(200, 2)), 3.0 + rng.normal(size=(200, 2))])
    rhat, _, converged, reason = diagnose(stuck)
    assert not converged and np.all(rhat > 1.5) and "R-hat" in reason
    with pytest.raises(ValueError, match=r"n_walkers must be at least 2 x 4 layers = 8"):
        run_emcee(post, n_walkers=6, n_steps=10, n_burn=0, seed=0)


def test_layered_model_checks():
    """Tops must be grid nodes from 0 km; Vp/Vs above 2/sqrt(3); a valid prior covariance."""
    with pytest.raises(ValueError, match=r"layer tops \[5.2\] km are not nodes"):
        LayeredVs([0.0, 5.2], [1.8, 1.8], [1.0, 1.3], np.eye(2), GRID.depth)
    with pytest.raises(ValueError, match=r"every Vp/Vs must exceed 2/sqrt\(3\) = 1.1547"):
        LayeredVs([0.0, 5.0], [1.8, 1.1], [1.0, 1.3], np.eye(2), GRID.depth)
    with pytest.raises(ValueError, match=r"positive definite"):
        LayeredVs([0.0, 5.0], [1.8, 1.8], [1.0, 1.3], -np.eye(2), GRID.depth)


def test_layered_physics_equals_the_grid_model():
    """Layer-split invariance: the merged layers and the grid model have the same curves."""
    prior = layered()
    periods = np.array([2.0, 5.0, 10.0, 20.0])
    physics = LayeredPhysics(prior, periods)
    theta = prior.draw(2, seed=4)
    merged = physics(theta)
    assert physics.n_evaluations == 2
    for k in range(2):
        vp, vs, rho = prior.grid(theta[k])
        grid = dispersion_curves(model_dataset(GRID.depth, GRID.thickness, vp, vs, rho), periods)
        # Both are disba roots bracketed to about 1e-6 c (disba's tolerance).
        assert_allclose(grid.transpose("wave", "period").values.ravel(), merged[k], rtol=1e-5)


def test_layered_physics_jacobian_matches_finite_differences():
    """The exact-kernel Jacobian in ln Vs (Vp and density tied) matches central differences."""
    prior = layered()
    periods = np.array([3.0, 8.0, 20.0])
    physics = LayeredPhysics(prior, periods)
    theta = prior.mean
    c, jac = physics.jacobian(theta)
    # The kernel engine polishes disba's root (bracketed to about 1e-6 c) by Newton steps.
    assert_allclose(c, physics(theta)[0], rtol=2e-6)
    h = 1e-3
    numeric = np.stack([(physics(theta + h * e)[0] - physics(theta - h * e)[0]) / (2 * h)
                        for e in np.eye(theta.size)], axis=1)
    # Truncation h^2 c''' / 6 ~ 1e-6 c and root noise 1e-6 c / h ~ 1e-3 c: about 1e-2 km/s.
    assert_allclose(jac, numeric, atol=1e-2)


def test_comparison_and_coverage():
    """A posterior compared with itself: sd ratio 1, no distance; coverage intervals bracket."""
    prior = layered()
    draws = prior.draw(4000, seed=5)
    table = compare(draws, {"same": draws}, prior)
    same = table[table.method == "same"]
    assert_allclose(same.sd_ratio, 1.0) and assert_allclose(same.w1, 0.0, atol=1e-12)
    # Shifts of opposite sign: the signed median cancels, the size does not.
    moved = draws + np.where(np.arange(prior.n_layers) % 2, 0.05, -0.05)
    shifted = compare(draws, {"moved": moved}, prior).query("method == 'moved'")
    assert np.all(shifted.abs_shift_sd > 0.1)
    assert_allclose(shifted.abs_shift_sd, shifted.mean_shift_sd.abs())
    assert (np.sign(shifted.mean_shift_sd) == np.where(np.arange(prior.n_layers) % 2, 1,
                                                        -1)).all()
    # Truths drawn from the prior are covered at the nominal rate by the prior itself.
    truths = prior.draw(300, seed=6)
    inside = np.stack([central_coverage(t, draws, (0.5, 0.9)) for t in truths])
    cover = coverage_table(inside, (0.5, 0.9), seed=0)
    for _, row in cover.iterrows():
        assert row.low <= row.level <= row.high
        # Jointly over the layers (Bonferroni), even the worst layer is consistent.
        assert row.worst_layer_low <= row.level <= row.best_layer_high
    # A posterior half as wide as it should be is caught: its interval excludes nominal.
    narrow = prior.mean + 0.5 * (draws - prior.mean)
    inside = np.stack([central_coverage(t, narrow, (0.5, 0.9)) for t in truths])
    cover = coverage_table(inside, (0.5, 0.9), seed=0)
    assert np.all(cover.high < cover.level)
    assert break_even(100.0, 0.1, 0.5) == np.inf


def test_fork_map_keeps_order_and_runs_unpicklable_tasks():
    """Independent runs in forked workers return in order, same as a serial loop."""
    from kernels.posterior import _fork_map as fork_map

    offset = 3

    def task(item):  # a closure: not picklable, inherited by the fork
        return np.full(2, item + offset)

    serial = fork_map(task, range(5), n_jobs=1)
    parallel = fork_map(task, range(5), n_jobs=2)
    assert_allclose(np.stack(parallel), np.stack(serial))
    with pytest.raises(ValueError, match=r"n_jobs must be a positive integer or -1"):
        fork_map(task, [1], n_jobs=0)


def test_sample_targets_runs_every_posterior_of_each_target():
    """Each target gets Laplace and sampled runs from one noisy data draw; order is kept."""
    from kernels.posterior import sample_targets

    prior = layered(covariance=0.04)
    forward = LinearForward(prior)
    noise = 0.05 * np.eye(6)
    truths = prior.draw(2, seed=8)
    out = sample_targets(truths, forward, forward, noise, 0.01 * np.eye(6), seed=10, n_jobs=2,
                         n_walkers=8, n_steps=200, n_burn=50, physics_sampled=[True, False])
    assert [sorted(t.runs) for t in out] == [
        ["physics", "physics Laplace", "surrogate", "surrogate Laplace"],
        ["physics Laplace", "surrogate", "surrogate Laplace"]]
    assert_allclose(out[1].truth, truths[1])
    # The surrogate's posterior carries its own error too: wider than the physics'.
    assert np.all(out[0].runs["surrogate Laplace"].sd > out[0].runs["physics Laplace"].sd)
    assert out[0].draws("physics Laplace", n=10).shape == (10, 4)


def test_layered_surrogate_sees_the_grid_model_and_picks_its_periods(tmp_path):
    """grid_torch equals grid; a period subset picks those outputs of the network."""
    from kernels import data, surrogate

    prior = layered()
    periods = np.array([3.0, 6.0, 12.0])
    split = data.drop_failed(data.simulate("weak", 24, 1, periods, grid=GRID))
    net = surrogate.Surrogate("basis-mlp", {"n_basis": 8, "hidden": 16, "layers": 1},
                              epochs=1, batch_size=8, seed=0, device="cpu", progress=False)
    net.fit(split.isel(sample=slice(0, 16)), split.isel(sample=slice(16, None)))
    theta = prior.draw(3, seed=9)
    grid = prior.grid_torch(torch.as_tensor(theta)).numpy()
    assert_allclose(grid, np.stack([prior.grid(t) for t in theta]), rtol=1e-12)
    from kernels.posterior import LayeredSurrogate

    full = LayeredSurrogate(net, prior)(theta)
    some = LayeredSurrogate(net, prior, periods=[6.0])(theta)
    assert_allclose(some, full[:, [1, 4]], rtol=1e-6)
    models = model_dataset(GRID.depth, GRID.thickness, *grid.transpose(1, 0, 2))
    assert_allclose(full, net.predict(models).values.reshape(3, -1), rtol=1e-5)
    with pytest.raises(ValueError, match=r"periods \[7.0\] s are not among"):
        LayeredSurrogate(net, prior, periods=[7.0])
