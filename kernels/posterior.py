r"""Sampled posteriors of a layered shear-velocity model, with the surrogate and the physics.

The parametrisation (:class:`LayeredVs`) is the one practitioners sample: a few
constant-Vs layers, the last continuing as the half-space, with Vp tied to Vs
by a fixed Vp/Vs per layer and density by Brocher's (2005) law. The unknowns
are :math:`\theta_k = \ln V_{S,k}`, with a Gaussian prior
:math:`\theta \sim N(\mu, \Sigma)` (:meth:`LayeredVs.from_prior` fits it to a
registered prior's layer averages). The same :math:`\theta` gives

- the physics' model on the merged layers (a handful of layers for disba: cheap
  enough to sample), and
- the surrogate's input on the 0.5 km grid, every node of a layer carrying its
  value. The grid model is the merged model split into sublayers, which has the
  same dispersion (layer-split invariance), so both forward models answer the
  same question.

The likelihood is Gaussian with a full data covariance (:class:`Posterior`):
data noise, and for the surrogate its error covariance across periods
estimated from held-out residuals (:func:`kernels.inversion.residual_covariance`).

Three ways to the posterior, all with the same prior and likelihood:

:func:`run_emcee`
    The affine-invariant ensemble sampler of ``emcee`` (gradient-free, so it
    runs the disba physics directly).
:func:`run_nuts`
    The No-U-Turn sampler of ``pyro`` on the surrogate (autodiff gradients).
:func:`laplace`
    The Gaussian at the posterior mode, :math:`H = J^T C^{-1} J + \Sigma^{-1}`
    (Gauss-Newton), with J from the exact kernels or from autodiff.

Every sampled run reports the rank-normalised split R-hat and the bulk effective
sample size of ArviZ (Vehtari et al. 2021) and says whether it converged
(:data:`RHAT_MAX`, :data:`ESS_MIN`). :func:`marginals` and :func:`compare`
put runs side by side per layer (mean, sd, 5-95 % interval, 1-D Wasserstein
distance); :func:`central_coverage` and :func:`coverage_table` score
simulation-based calibration.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from scipy import stats

from .config import WAVES
from .forward import DEFAULT_DC, _roots
from .inversion import VPVS_MIN, usable_phase_velocity
from .io import model_dataset
from .priors import brocher_polynomial, brocher_slope
from .sensitivity import _one_torch_thread

__all__ = ["RHAT_MAX", "ESS_MIN", "LayeredVs", "LayeredPhysics", "LayeredSurrogate",
           "Posterior", "SampleRun", "LaplaceRun", "run_emcee", "run_nuts", "laplace",
           "diagnose", "marginals", "compare", "central_coverage", "coverage_table",
           "break_even", "TargetRuns", "sample_target", "sample_targets"]

#: Largest rank-normalised split R-hat of a converged run (Vehtari et al. 2021).
RHAT_MAX = 1.01

#: Smallest bulk effective sample size of a converged run (Vehtari et al. 2021:
#: 400, i.e. 100 per chain for four chains).
ESS_MIN = 400


def _arviz():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # ArviZ 0.23 announces its 1.0 refactor
        import arviz
    return arviz


class LayeredVs:
    """Constant-Vs layers with tied Vp and density, and a Gaussian prior on ln Vs.

    Parameters
    ----------
    tops : array_like
        Layer-top depths (km), strictly increasing from 0; the last layer
        continues as the half-space.
    vpvs : array_like
        Vp/Vs of each layer, each above :data:`VPVS_MIN`.
    mean, covariance : array_like
        Prior mean (K,) and covariance (K, K) of ln Vs.
    grid_depth : array_like
        Node depths (km) of the surrogate's grid; every top must be a node.

    Examples
    --------
    >>> layered = LayeredVs([0, 10, 40], [1.75] * 3, np.log([3.0, 3.8, 4.5]),
    ...                     0.01 * np.eye(3), 0.5 * np.arange(256))
    >>> thickness, vp, vs, rho = layered.layers(layered.mean)
    >>> thickness.tolist(), vs.round(2).tolist()
    ([10.0, 30.0, 0.0], [3.0, 3.8, 4.5])
    >>> layered.grid(layered.mean)[1, [0, 19, 20, 79, 80, 255]].round(2).tolist()
    [3.0, 3.0, 3.8, 3.8, 4.5, 4.5]
    """

    def __init__(self, tops, vpvs, mean, covariance, grid_depth, source=None):
        tops = np.asarray(tops, dtype=float)
        grid_depth = np.asarray(grid_depth, dtype=float)
        if tops.ndim != 1 or tops.size < 1 or tops[0] != 0.0 or np.any(np.diff(tops) <= 0):
            raise ValueError(f"tops must be strictly increasing layer-top depths from 0 km, "
                             f"got {tops.tolist()}.")
        off_grid = [float(t) for t in tops if not np.isclose(grid_depth, t, atol=1e-9).any()]
        if off_grid:
            raise ValueError(f"layer tops {off_grid} km are not nodes of the grid "
                             f"({grid_depth[0]:g}-{grid_depth[-1]:g} km); the grid model must "
                             f"split the layers exactly.")
        k = tops.size
        vpvs = np.broadcast_to(np.asarray(vpvs, dtype=float), (k,)).copy()
        if np.any(~np.isfinite(vpvs)) or np.any(vpvs <= VPVS_MIN):
            raise ValueError(f"every Vp/Vs must exceed 2/sqrt(3) = {VPVS_MIN:.4f} (positive "
                             f"bulk modulus), got {vpvs.round(4).tolist()}.")
        mean = np.asarray(mean, dtype=float)
        covariance = np.asarray(covariance, dtype=float)
        if mean.shape != (k,) or covariance.shape != (k, k):
            raise ValueError(f"mean must have shape ({k},) and covariance ({k}, {k}); got "
                             f"{mean.shape} and {covariance.shape}.")
        if not np.allclose(covariance, covariance.T):
            raise ValueError("the prior covariance must be symmetric.")
        try:
            self._chol = np.linalg.cholesky(covariance)
        except np.linalg.LinAlgError:
            raise ValueError("the prior covariance must be positive definite.") from None
        self.tops, self.vpvs, self.mean, self.covariance = tops, vpvs, mean, covariance
        self.grid_depth = grid_depth
        self.layer_of_node = np.searchsorted(tops, grid_depth, side="right") - 1
        self.precision = np.linalg.inv(covariance)
        self.source = dict(source or {})

    @classmethod
    def from_prior(cls, prior, tops, n, seed, grid_depth, jitter=1e-4):
        """Fit the layers' Vp/Vs and a Gaussian on ln Vs to a registered prior.

        Each layer's ln Vs is the mean of ln Vs over its grid nodes, for ``n``
        draws of ``prior``; the prior is the Gaussian with those draws' mean and
        covariance (plus ``jitter`` on the diagonal: a floor of 0.01 on the sd
        of ln Vs, so that no layer is pinned). Vp/Vs is the median over draws of
        each layer's mean Vp over its mean Vs.
        """
        from .priors import sample

        grid_depth = np.asarray(grid_depth, dtype=float)
        models = sample(prior, n, seed)
        if not np.allclose(models.depth.values, grid_depth):
            raise ValueError("the prior's grid differs from grid_depth.")
        tops = np.asarray(tops, dtype=float)
        layer = np.searchsorted(tops, grid_depth, side="right") - 1
        ln_vs = np.log(models.velocity_s.values)
        ratio = models.velocity_p.values / models.velocity_s.values
        theta = np.stack([ln_vs[:, layer == k].mean(axis=1) for k in range(tops.size)], 1)
        vpvs = np.stack([ratio[:, layer == k].mean(axis=1) for k in range(tops.size)], 1)
        covariance = np.cov(theta, rowvar=False) + jitter * np.eye(tops.size)
        return cls(tops, np.median(vpvs, axis=0), theta.mean(axis=0), covariance, grid_depth,
                   source={"prior": prior, "n": int(n), "seed": int(seed),
                           "jitter": float(jitter)})

    @property
    def n_layers(self):
        return self.tops.size

    @property
    def centres(self):
        """Depth (km) at the middle of each layer (the half-space: 10 km below its top)."""
        bottoms = np.append(self.tops[1:], self.tops[-1] + 20.0)
        return 0.5 * (self.tops + bottoms)

    def layers(self, theta):
        """``(thickness, vp, vs, density)`` of the merged layers (the last thickness 0)."""
        vs = np.exp(np.asarray(theta, dtype=float))
        vp = self.vpvs * vs
        thickness = np.append(np.diff(self.tops), 0.0)
        return thickness, vp, vs, brocher_polynomial(vp)

    def grid(self, theta):
        """(Vp, Vs, density) on the grid, shape (3, n_depth), for one ``theta``."""
        _, vp, vs, rho = self.layers(theta)
        return np.stack([vp, vs, rho])[:, self.layer_of_node]

    def grid_torch(self, theta):
        """(batch, 3, n_depth) tensor of grid models from a (batch, K) tensor ``theta``."""
        index = torch.as_tensor(self.layer_of_node, device=theta.device)
        vs = torch.exp(theta)[:, index]
        vp = vs * torch.as_tensor(self.vpvs, dtype=theta.dtype, device=theta.device)[index]
        return torch.stack([vp, vs, brocher_polynomial(vp)], dim=1)

    def model(self, theta):
        """The merged layers as a model Dataset (dims ``depth``)."""
        thickness, vp, vs, rho = self.layers(theta)
        return model_dataset(self.tops, thickness, vp, vs, rho)

    def log_prior(self, theta):
        """Gaussian log density of ``theta`` (..., K), up to a constant."""
        d = np.asarray(theta, dtype=float) - self.mean
        return -0.5 * np.einsum("...i,ij,...j->...", d, self.precision, d)

    def draw(self, n, seed):
        """``n`` prior draws of ``theta``, shape (n, K)."""
        z = np.random.default_rng(seed).standard_normal((n, self.n_layers))
        return self.mean + z @ self._chol.T


class LayeredPhysics:
    """disba on the merged layers: phase velocities of both waves at ``periods``.

    Calls are counted in ``n_evaluations`` (one per model). A period without a
    trapped root is NaN, which the posterior treats as zero likelihood; in
    :meth:`jacobian` so is a period whose kernel failed.
    """

    name = "physics"

    def __init__(self, layered, periods, waves=WAVES, dc=DEFAULT_DC):
        self.layered, self.periods = layered, np.asarray(periods, dtype=float)
        self.waves, self.dc, self.n_evaluations = tuple(waves), dc, 0

    def __call__(self, theta):
        """(n, n_data) phase velocities for ``theta`` (n, K); wave-major order."""
        theta = np.atleast_2d(theta)
        out = np.empty((theta.shape[0], len(self.waves) * self.periods.size))
        for i, t in enumerate(theta):
            model = self.layered.layers(t)
            out[i] = np.concatenate([_roots(model, self.periods, 0, wave, self.dc)[0]
                                     for wave in self.waves])
        self.n_evaluations += theta.shape[0]
        return out

    def jacobian(self, theta):
        """``(c, J)`` at one ``theta``: J = dc / d theta from the exact kernels."""
        from .sensitivity import kernel_dataset

        _, vp, vs, rho = self.layered.layers(theta)
        ds = kernel_dataset(self.layered.model(theta), self.periods, waves=self.waves)
        self.n_evaluations += 1
        c = usable_phase_velocity(ds)  # NaN where a kernel failed, as where a root did

        def kernel(name):
            return ds[f"dc_d{name}"].transpose("wave", "period", "depth").values.reshape(
                c.size, -1)

        # theta = ln Vs; Vp = r Vs and rho = B(Vp) follow: d/d theta = Vs d/dVs + Vp d/dVp
        # + Vp B'(Vp) d/drho.
        jac = (kernel("velocity_s") * vs + kernel("velocity_p") * vp
               + kernel("density") * vp * brocher_slope(vp))
        return c, jac


class LayeredSurrogate:
    """A trained surrogate on the grid model of ``theta`` (torch, differentiable).

    ``periods`` picks the surrogate's outputs to use (a subset of its periods).
    """

    name = "surrogate"

    def __init__(self, surrogate, layered, periods=None, waves=WAVES):
        self.surrogate, self.layered, self.waves = surrogate, layered, tuple(waves)
        trained = np.asarray(surrogate.periods_, dtype=float)
        self.periods = trained if periods is None else np.asarray(periods, dtype=float)
        missing = [float(t) for t in self.periods if not np.isclose(trained, t).any()]
        if missing:
            raise ValueError(f"periods {missing} s are not among the surrogate's periods.")
        if tuple(WAVES) != self.waves:
            raise ValueError(f"the surrogate predicts waves {list(WAVES)}, in that order.")
        picks = [int(np.argmin(np.abs(trained - t))) for t in self.periods]
        self._index = torch.as_tensor(np.concatenate([w * trained.size + np.asarray(picks)
                                                      for w in range(len(WAVES))]))
        self.n_evaluations = 0

    def torch(self, theta):
        """(batch, n_data) float64 tensor from a (batch, K) float64 tensor ``theta``."""
        grid = self.layered.grid_torch(theta).to(torch.float32)
        c = self.surrogate.network_(grid.to(self.surrogate.device))
        self.n_evaluations += theta.shape[0]
        return c.reshape(theta.shape[0], -1)[:, self._index].to(torch.float64).cpu()

    def __call__(self, theta):
        with torch.no_grad():
            return self.torch(torch.as_tensor(np.atleast_2d(theta), dtype=torch.float64)).numpy()

    def jacobian(self, theta):
        """``(c, J)`` at one ``theta`` by reverse-mode autodiff."""
        t = torch.as_tensor(np.asarray(theta, dtype=float)[None], dtype=torch.float64)
        jac = torch.func.jacrev(lambda x: self.torch(x)[0])(t)[:, 0]
        return self(theta)[0], jac.detach().numpy()


class Posterior:
    """Gaussian prior on ln Vs and Gaussian likelihood with a full covariance.

    Parameters
    ----------
    forward : LayeredPhysics or LayeredSurrogate
    observed : array_like, shape (n_data,)
        Data (km/s), wave-major; NaN data are left out.
    covariance : array_like, shape (n_data, n_data)
        Data covariance (km/s)^2.
    """

    def __init__(self, forward, observed, covariance):
        self.forward, self.layered = forward, forward.layered
        observed = np.asarray(observed, dtype=float)
        covariance = np.asarray(covariance, dtype=float)
        if covariance.shape != (observed.size, observed.size):
            raise ValueError(f"covariance must be ({observed.size}, {observed.size}) for "
                             f"{observed.size} data, got {covariance.shape}.")
        self.use = np.isfinite(observed)
        if not self.use.any():
            raise ValueError("observed holds no finite datum.")
        self.observed = observed[self.use]
        c = covariance[np.ix_(self.use, self.use)]
        try:
            self._chol = np.linalg.cholesky(c)
        except np.linalg.LinAlgError:
            raise ValueError("the data covariance must be positive definite.") from None
        self.precision = np.linalg.inv(c)
        self._chol_t = torch.as_tensor(self._chol)

    @property
    def n_data(self):
        return int(self.use.sum())

    def log_prob(self, theta):
        """Log posterior (n,) of ``theta`` (n, K) up to a constant; -inf where c is NaN."""
        theta = np.atleast_2d(theta)
        r = self.observed - self.forward(theta)[:, self.use]
        white = np.linalg.solve(self._chol, r.T).T
        with np.errstate(invalid="ignore"):
            out = -0.5 * (white**2).sum(axis=1) + self.layered.log_prior(theta)
        return np.where(np.isfinite(out), out, -np.inf)

    def log_prob_torch(self, theta):
        """Differentiable log posterior (batch,) for the surrogate."""
        r = torch.as_tensor(self.observed) - self.forward.torch(theta)[:, self.use]
        white = torch.linalg.solve_triangular(self._chol_t, r.T, upper=False).T
        d = theta - torch.as_tensor(self.layered.mean)
        prior = -0.5 * torch.einsum("bi,ij,bj->b", d, torch.as_tensor(self.layered.precision),
                                    d)
        return -0.5 * (white**2).sum(dim=1) + prior


@dataclass
class SampleRun:
    """Draws of ln Vs and how they were obtained.

    Attributes
    ----------
    draws : numpy.ndarray
        Shape (chains, draws, K): ln Vs per layer.
    sampler, forward : str
    wall_time_s : float
    n_evaluations : int
        Forward-model evaluations (one per model; a batched surrogate call of b
        models counts b).
    rhat, ess_bulk : numpy.ndarray
        Per layer.
    converged : bool
    reason : str
        Why not converged ("" when converged).
    extra : dict
        Sampler-specific figures (acceptance, autocorrelation time, divergences).
    """

    draws: np.ndarray
    sampler: str
    forward: str
    wall_time_s: float
    n_evaluations: int
    rhat: np.ndarray
    ess_bulk: np.ndarray
    converged: bool
    reason: str
    extra: dict = field(default_factory=dict)

    @property
    def flat(self):
        """All draws, (chains * draws, K)."""
        return self.draws.reshape(-1, self.draws.shape[-1])

    def summary(self):
        return {"sampler": self.sampler, "forward": self.forward,
                "wall_time_s": self.wall_time_s, "n_evaluations": self.n_evaluations,
                "rhat_max": float(np.max(self.rhat)), "ess_bulk_min": float(np.min(
                    self.ess_bulk)), "converged": self.converged, "reason": self.reason,
                **{k: v for k, v in self.extra.items() if np.isscalar(v)}}


def diagnose(draws, rhat_max=RHAT_MAX, ess_min=ESS_MIN, ess=None):
    """``(rhat, ess_bulk, converged, reason)`` of draws (chains, draws, K) by ArviZ.

    ``ess`` (K,) replaces ArviZ's bulk ESS where the chains are not independent
    (an ensemble's walkers: :func:`run_emcee` passes one from the
    autocorrelation time).
    """
    az = _arviz()
    draws = np.asarray(draws, dtype=float)
    if draws.ndim != 3 or draws.shape[0] < 2:
        raise ValueError(f"draws must be (chains >= 2, draws, K), got shape {draws.shape}.")
    data = az.convert_to_dataset({"theta": draws})
    rhat = az.rhat(data)["theta"].values
    ess = az.ess(data, method="bulk")["theta"].values if ess is None else np.asarray(ess)
    problems = []
    if not np.all(rhat < rhat_max):
        problems.append(f"R-hat up to {np.nanmax(rhat):.3f} (>= {rhat_max})")
    if not np.all(ess >= ess_min):
        problems.append(f"bulk ESS down to {np.nanmin(ess):.0f} (< {ess_min})")
    return rhat, ess, not problems, "; ".join(problems)


def run_emcee(posterior, n_walkers, n_steps, n_burn, seed, start=None):
    """Sample ``posterior`` with emcee's ensemble sampler (differential-evolution moves).

    Parameters
    ----------
    n_walkers : int
        At least twice the number of layers.
    n_steps, n_burn : int
        Steps in all, and steps discarded at the start.
    seed : int
        Seeds the start (prior draws unless ``start``) and the sampler.
    start : array_like, optional
        (n_walkers, K) starting points.

    Returns
    -------
    SampleRun
        The ensemble's walkers are coupled (each proposal is built from the
        others), so they are not independent chains: the effective sample size
        is emcee's, ``n_walkers x kept steps / tau`` per parameter, from the
        integrated autocorrelation time ``tau``; R-hat is ArviZ's across
        walkers, a check that no walker is stuck apart from the others, not a
        test across independent runs. ``extra`` holds the acceptance fraction,
        ``tau`` (steps) and whether the kept chain is 50 autocorrelation times
        long (emcee's guideline), which is also required for convergence.
    """
    import emcee

    k = posterior.layered.n_layers
    if n_walkers < 2 * k:
        raise ValueError(f"n_walkers must be at least 2 x {k} layers = {2 * k}, got "
                         f"{n_walkers}.")
    if not 0 <= n_burn < n_steps:
        raise ValueError(f"need 0 <= n_burn < n_steps, got n_burn={n_burn}, "
                         f"n_steps={n_steps}.")
    seeds = np.random.SeedSequence(seed).spawn(2)  # the start and the sampler, apart
    start = (posterior.layered.draw(n_walkers, seeds[0]) if start is None
             else np.asarray(start))
    sampler = emcee.EnsembleSampler(
        n_walkers, k, posterior.log_prob, vectorize=True,
        # Differential-evolution moves only: emcee 3.1.6's DESnookerMove under-disperses a
        # 4-D Gaussian by about 8 % in sd (measured, 80,000 draws; DEMove and the stretch
        # move are within 1 %), so the snooker move that emcee's docs mix in is left out.
        moves=emcee.moves.DEMove())
    sampler.random_state = np.random.RandomState(
        seeds[1].generate_state(1)[0]).get_state()
    counted = posterior.forward.n_evaluations
    t0 = time.perf_counter()
    sampler.run_mcmc(start, n_steps, progress=False)
    wall = time.perf_counter() - t0
    draws = sampler.get_chain(discard=n_burn).transpose(1, 0, 2)
    tau = sampler.get_autocorr_time(discard=n_burn, tol=0, quiet=True)
    rhat, ess, converged, reason = diagnose(draws, ess=n_walkers * (n_steps - n_burn) / tau)
    long_enough = bool((n_steps - n_burn) >= 50 * np.max(tau))
    if not long_enough:
        converged = False
        reason = "; ".join(filter(None, [reason, f"kept chain {n_steps - n_burn} steps < 50 "
                                                 f"autocorrelation times ({np.max(tau):.0f})"]))
    return SampleRun(draws, "emcee", posterior.forward.name, wall,
                     posterior.forward.n_evaluations - counted, rhat, ess, converged, reason,
                     {"acceptance": float(np.mean(sampler.acceptance_fraction)),
                      "autocorr_steps": float(np.max(tau)), "long_enough": long_enough})


def run_nuts(posterior, n_chains, n_warmup, n_samples, seed, max_tree_depth=8,
             target_accept=0.8):
    """Sample ``posterior`` (a differentiable forward model) with pyro's NUTS.

    Chains run one after another, each from its own prior draw and its own
    stream spawned from ``seed``; ``extra`` holds the divergent transitions after
    warm-up. (pyro seeds the global random state of numpy and torch.)
    """
    import pyro
    from pyro.infer import MCMC, NUTS

    if n_chains < 2:
        raise ValueError(f"n_chains must be >= 2 for R-hat, got {n_chains}.")
    start_seed, *chain_seeds = np.random.SeedSequence(seed).spawn(n_chains + 1)
    starts = posterior.layered.draw(n_chains, start_seed)

    def potential(params):
        return -posterior.log_prob_torch(params["theta"][None])[0]

    counted = posterior.forward.n_evaluations
    chains, divergences = [], 0
    t0 = time.perf_counter()
    for chain in range(n_chains):
        pyro.set_rng_seed(int(chain_seeds[chain].generate_state(1)[0]))
        kernel = NUTS(potential_fn=potential, target_accept_prob=target_accept,
                      max_tree_depth=max_tree_depth)
        mcmc = MCMC(kernel, num_samples=n_samples, warmup_steps=n_warmup,
                    initial_params={"theta": torch.as_tensor(starts[chain])},
                    disable_progbar=True)
        mcmc.run()
        chains.append(mcmc.get_samples()["theta"].detach().numpy())
        divergences += int(sum(len(v) for v in mcmc.diagnostics()["divergences"].values()))
    wall = time.perf_counter() - t0
    draws = np.stack(chains)
    rhat, ess, converged, reason = diagnose(draws)
    if divergences:
        converged = False
        reason = "; ".join(filter(None, [reason, f"{divergences} divergent transitions"]))
    return SampleRun(draws, "nuts", posterior.forward.name, wall,
                     posterior.forward.n_evaluations - counted, rhat, ess, converged, reason,
                     {"divergences": divergences})


@dataclass
class LaplaceRun:
    """The Gaussian at the posterior mode of ln Vs."""

    mode: np.ndarray
    covariance: np.ndarray
    forward: str
    wall_time_s: float
    n_evaluations: int
    converged: bool
    iterations: int

    @property
    def sd(self):
        return np.sqrt(np.diag(self.covariance))

    def draw(self, n, seed):
        """``n`` draws of ln Vs from the Gaussian, shape (n, K)."""
        return np.random.default_rng(seed).multivariate_normal(self.mode, self.covariance, n)


def laplace(posterior, start=None, max_iter=50, tol=1e-8):
    """Posterior mode by Gauss-Newton with step halving, and the Gaussian there.

    The Hessian is :math:`J^T C^{-1} J + \\Sigma^{-1}` at the mode, J from
    ``posterior.forward.jacobian`` (exact kernels or autodiff). Converged when a
    step lowers the objective by less than ``tol`` relative, or when no step does
    and the Newton decrement is below ``tol`` (a step that only fails in the
    forward model is not convergence).
    """
    layered = posterior.layered
    theta = layered.mean.copy() if start is None else np.asarray(start, dtype=float).copy()
    counted = posterior.forward.n_evaluations
    t0 = time.perf_counter()

    def state(t):
        c, jac = posterior.forward.jacobian(t)
        r = posterior.observed - c[posterior.use]
        d = t - layered.mean
        phi = 0.5 * r @ posterior.precision @ r + 0.5 * d @ layered.precision @ d
        jac = jac[posterior.use]
        if not np.all(np.isfinite(jac)):
            phi = np.inf  # a datum without a derivative: the forward model failed here
        return (phi if np.isfinite(phi) else np.inf), r, jac

    phi, r, jac = state(theta)
    if not np.isfinite(phi):
        raise ValueError("the forward model fails at the starting model.")
    converged, iterations = False, 0
    for iterations in range(1, max_iter + 1):  # noqa: B007 (reported after the loop)
        h = jac.T @ posterior.precision @ jac + layered.precision
        g = -jac.T @ posterior.precision @ r + layered.precision @ (theta - layered.mean)
        step = np.linalg.solve(h, -g)
        for _ in range(20):
            phi_new, r_new, jac_new = state(theta + step)
            if phi_new < phi:
                break
            step = step / 2.0
        else:
            # No descent along the Gauss-Newton direction: at the mode only if the Newton
            # decrement g^T H^-1 g is negligible; otherwise the forward model failed along
            # the step (for example roots that are no longer trapped).
            converged = bool(g @ np.linalg.solve(h, g) < tol * max(phi, 1.0))
            break
        decrease = phi - phi_new
        theta, phi, r, jac = theta + step, phi_new, r_new, jac_new
        if decrease < tol * max(phi, 1.0):
            converged = True
            break
    h = jac.T @ posterior.precision @ jac + layered.precision
    return LaplaceRun(theta, np.linalg.inv(h), posterior.forward.name,
                      time.perf_counter() - t0, posterior.forward.n_evaluations - counted,
                      converged, iterations)


def marginals(draws, layered, levels=(0.05, 0.95)):
    """Per-layer Vs (km/s) mean, sd and quantiles of draws of ln Vs (n, K)."""
    vs = np.exp(np.asarray(draws, dtype=float))
    out = pd.DataFrame({"layer": np.arange(layered.n_layers), "top_km": layered.tops,
                        "mean": vs.mean(axis=0), "sd": vs.std(axis=0, ddof=1)})
    for q in levels:
        out[f"q{round(100 * q):02d}"] = np.quantile(vs, q, axis=0)
    return out


def compare(reference, others, layered):
    """Each of ``others`` against ``reference``, per layer, in Vs (km/s).

    Parameters
    ----------
    reference : array_like, shape (n, K)
        Draws of ln Vs of the reference posterior (the physics).
    others : dict
        ``name -> draws`` (m, K) of ln Vs.

    Returns
    -------
    pandas.DataFrame
        Per (method, layer): mean, sd, 5 % and 95 % quantiles, ``sd_ratio``
        (method sd / reference sd), ``mean_shift_sd`` ((mean - reference mean) /
        reference sd, signed), ``abs_shift_sd`` (its size, so that shifts of opposite
        sign do not cancel in a median), ``w1`` (1-D Wasserstein distance, km/s) and
        ``w1_sd`` (w1 / reference sd).
    """
    ref_vs = np.exp(np.asarray(reference, dtype=float))
    ref = marginals(reference, layered)
    rows = []
    for name, draws in {"reference": reference, **others}.items():
        table = marginals(draws, layered)
        vs = np.exp(np.asarray(draws, dtype=float))
        table.insert(0, "method", name)
        table["sd_ratio"] = table["sd"] / ref["sd"]
        table["mean_shift_sd"] = (table["mean"] - ref["mean"]) / ref["sd"]
        table["abs_shift_sd"] = table["mean_shift_sd"].abs()
        table["w1"] = [stats.wasserstein_distance(vs[:, k], ref_vs[:, k])
                       for k in range(layered.n_layers)]
        table["w1_sd"] = table["w1"] / ref["sd"]
        rows.append(table)
    return pd.concat(rows, ignore_index=True)


def central_coverage(truth, draws, levels=(0.5, 0.9)):
    """Whether ``truth`` (K,) lies in each central interval of ``draws`` (n, K).

    Returns a boolean array (len(levels), K).
    """
    draws = np.asarray(draws, dtype=float)
    out = []
    for level in levels:
        low, high = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2], axis=0)
        out.append((truth >= low) & (truth <= high))
    return np.asarray(out)


def coverage_table(inside, levels, seed, n_boot=2000):
    """Coverage of central intervals over calibration targets, with intervals.

    Parameters
    ----------
    inside : array_like of bool, shape (n_targets, len(levels), K)
        :func:`central_coverage` of each target.
    levels : sequence of float
    seed : int
        Seeds the bootstrap.

    Returns
    -------
    pandas.DataFrame
        Per level: the nominal level, the coverage over all targets and layers,
        its 95 % interval from resampling targets (the layers of one target are
        correlated, so the target is the unit), and the smallest and largest
        per-layer coverage with Clopper-Pearson intervals (targets are
        independent, so each layer's count is binomial), Bonferroni-adjusted for
        the choice among K layers.
    """
    inside = np.asarray(inside, dtype=bool)
    n_targets = inside.shape[0]
    if n_targets < 1:
        raise ValueError("need at least one calibration target.")
    rng = np.random.default_rng(seed)
    boot = inside[rng.integers(0, n_targets, (n_boot, n_targets))].mean(axis=(1, 3))
    rows = []
    for i, level in enumerate(levels):
        per_layer = inside[:, i, :].sum(axis=0)
        low_k, high_k = int(np.argmin(per_layer)), int(np.argmax(per_layer))
        # The worst and best of K layers are selected: Bonferroni-adjusted intervals
        # (95 % jointly over the K layers), or a calibrated posterior would often show a
        # worst layer whose plain interval excludes the nominal level.
        joint = 1 - 0.05 / inside.shape[2]
        ci_low = stats.binomtest(int(per_layer[low_k]), n_targets).proportion_ci(joint)
        ci_high = stats.binomtest(int(per_layer[high_k]), n_targets).proportion_ci(joint)
        rows.append({"level": level, "coverage": float(inside[:, i, :].mean()),
                     "low": float(np.quantile(boot[:, i], 0.025)),
                     "high": float(np.quantile(boot[:, i], 0.975)),
                     "worst_layer": low_k, "worst_layer_coverage": per_layer[low_k] / n_targets,
                     "worst_layer_low": ci_low.low, "worst_layer_high": ci_low.high,
                     "best_layer": high_k, "best_layer_coverage": per_layer[high_k] / n_targets,
                     "best_layer_low": ci_high.low, "best_layer_high": ci_high.high,
                     "targets": n_targets})
    return pd.DataFrame(rows)


def break_even(fixed_cost_s, physics_s_per_draw, surrogate_s_per_draw):
    """Posterior draws beyond which training a surrogate costs less than the physics.

    ``fixed_cost_s`` is the surrogate's one-off cost (data generation plus
    training); the per-draw costs are wall seconds per effective draw. Returns
    ``inf`` when the surrogate is not cheaper per draw.

    >>> break_even(100.0, 0.5, 0.1)
    250.0
    """
    saving = physics_s_per_draw - surrogate_s_per_draw
    return float(fixed_cost_s / saving) if saving > 0 else float("inf")


@dataclass
class TargetRuns:
    """The posteriors of one target: sampled and Laplace, physics and surrogate.

    Attributes
    ----------
    truth : numpy.ndarray
        The target's ln Vs per layer (K,).
    observed : numpy.ndarray
        Its data (n_data,), km/s, wave-major: the physics plus one noise draw.
    runs : dict
        ``name -> SampleRun or LaplaceRun``; names are ``"physics"``,
        ``"surrogate"`` (sampled), ``"physics Laplace"``, ``"surrogate Laplace"``,
        and optionally ``"surrogate NUTS"`` and ``"surrogate, noise only"`` (the
        surrogate without its error covariance).
    """

    truth: np.ndarray
    observed: np.ndarray
    runs: dict

    def draws(self, name, n=4000, seed=0):
        """Draws (n, K) of ln Vs of run ``name`` (a Laplace run is sampled)."""
        run = self.runs[name]
        return run.draw(n, seed) if isinstance(run, LaplaceRun) else run.flat


def _overdispersed_start(run, n, seed):
    # Gelman et al. (2013): start chains over-dispersed relative to the posterior, so
    # that R-hat can see a chain that has not forgotten its start: twice the Laplace sd.
    return run.mode + 2.0 * (run.draw(n, seed) - run.mode)


def sample_target(truth, physics, surrogate, noise_covariance, surrogate_covariance, seed,
                  n_walkers, n_steps, n_burn, physics_sampled=True, extras=False,
                  nuts_settings=None):
    """Every posterior of one target, from the same noisy data.

    The data are ``physics(truth)`` plus a draw of ``noise_covariance``
    (seeded by ``seed``). The physics posterior uses the data noise alone; the
    surrogate's adds ``surrogate_covariance``, its own error. Both samplers
    start over-dispersed around their Laplace approximation (twice its sd).

    Parameters
    ----------
    truth : array_like
        ln Vs per layer (K,).
    physics : LayeredPhysics
    surrogate : LayeredSurrogate
    noise_covariance, surrogate_covariance : array_like
        (n_data, n_data), (km/s)^2.
    seed : int
    n_walkers, n_steps, n_burn : int
        emcee settings (:func:`run_emcee`), the same for both forward models.
    physics_sampled : bool
        Also sample the physics posterior (the expensive reference).
    extras : bool
        Also run the surrogate with NUTS (``nuts_settings``: n_chains, n_warmup,
        n_samples) and the surrogate without its error covariance.

    Returns
    -------
    TargetRuns
        Torch runs on one thread meanwhile: the surrogate's batches are small,
        and a thread pool on shared cores is several times slower.
    """
    with _one_torch_thread():
        return _sample_target(truth, physics, surrogate, noise_covariance,
                              surrogate_covariance, seed, n_walkers, n_steps, n_burn,
                              physics_sampled, extras, nuts_settings)


def _sample_target(truth, physics, surrogate, noise_covariance, surrogate_covariance, seed,
                   n_walkers, n_steps, n_burn, physics_sampled, extras, nuts_settings):
    truth = np.asarray(truth, dtype=float)
    clean = physics(truth)[0]
    noise_covariance = np.asarray(noise_covariance, dtype=float)
    chol = np.linalg.cholesky(noise_covariance)
    # One stream per role. The starts and the samplers' streams are shared by the
    # forward models on purpose (common random numbers: they differ only by the model).
    noise_seed, start_seed, sampler_seed, nuts_seed = np.random.SeedSequence(seed).spawn(4)
    observed = clean + chol @ np.random.default_rng(noise_seed).standard_normal(clean.size)
    post_physics = Posterior(physics, observed, noise_covariance)
    post_surrogate = Posterior(surrogate, observed, noise_covariance + surrogate_covariance)
    runs = {"physics Laplace": laplace(post_physics),
            "surrogate Laplace": laplace(post_surrogate)}
    sampler = int(sampler_seed.generate_state(1)[0])
    runs["surrogate"] = run_emcee(post_surrogate, n_walkers, n_steps, n_burn, sampler, start=(
        _overdispersed_start(runs["surrogate Laplace"], n_walkers, start_seed)))
    if physics_sampled:
        runs["physics"] = run_emcee(post_physics, n_walkers, n_steps, n_burn, sampler, start=(
            _overdispersed_start(runs["physics Laplace"], n_walkers, start_seed)))
    if extras:
        runs["surrogate NUTS"] = run_nuts(post_surrogate, seed=int(nuts_seed.generate_state(1)[0]),
                                          **(nuts_settings or {}))
        noise_only = Posterior(surrogate, observed, noise_covariance)
        runs["surrogate, noise only"] = run_emcee(
            noise_only, n_walkers, n_steps, n_burn, sampler,
            start=_overdispersed_start(laplace(noise_only), n_walkers, start_seed))
    return TargetRuns(truth, observed, runs)


def sample_targets(truths, physics, surrogate, noise_covariance, surrogate_covariance, seed,
                   n_jobs=1, **kwargs):
    """:func:`sample_target` for each row of ``truths`` (seeds ``seed + i``), in parallel.

    ``n_jobs`` worker processes run whole targets (forked; torch on one thread
    each). Keyword arguments go to :func:`sample_target`; ``physics_sampled``
    may be a sequence of bools, one per target.
    """
    truths = np.atleast_2d(truths)
    sampled = kwargs.pop("physics_sampled", True)
    sampled = [sampled] * len(truths) if np.isscalar(sampled) else list(sampled)
    if len(sampled) != len(truths):
        raise ValueError(f"physics_sampled has {len(sampled)} entries for {len(truths)} "
                         f"targets.")

    def one(i):
        return sample_target(truths[i], physics, surrogate, noise_covariance,
                             surrogate_covariance, seed + i, physics_sampled=sampled[i],
                             **kwargs)

    return _fork_map(one, range(len(truths)), n_jobs=n_jobs)


#: Task and items inherited by forked workers (see :func:`_fork_map`).
_FORKED = {}


def _run_item(index):
    # A forked child must not enter the parent's OpenMP pool (it can hang): torch, if
    # loaded, runs on one thread in each worker.
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    return _FORKED["map_func"](_FORKED["map_items"][index])


def _fork_map(func, items, n_jobs=1):
    """``[func(item) for item in items]``, in forked worker processes.

    For a few long, independent tasks (for example one Markov chain run per
    target): the workers inherit ``func`` and ``items`` by forking, so neither
    needs to be picklable; only the results travel back. Results keep the
    order of ``items``.
    """
    items = list(items)
    if n_jobs == -1:
        n_jobs = os.cpu_count() or 1
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int | np.integer) or n_jobs < 1:
        raise ValueError(f"n_jobs must be a positive integer or -1, got {n_jobs!r}.")
    n_jobs = min(int(n_jobs), max(len(items), 1))
    # CUDA cannot be used again in a forked child: with it started, run serially.
    cuda = "torch" in sys.modules and sys.modules["torch"].cuda.is_initialized()
    if n_jobs == 1 or cuda or "fork" not in multiprocessing.get_all_start_methods():
        return [func(item) for item in items]
    _FORKED.update(map_func=func, map_items=items)
    try:
        with multiprocessing.get_context("fork").Pool(n_jobs) as pool:
            return pool.map(_run_item, range(len(items)), chunksize=1)
    finally:
        _FORKED.pop("map_func", None)
        _FORKED.pop("map_items", None)
