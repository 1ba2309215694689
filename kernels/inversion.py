r"""Gradient-based inversion of dispersion curves, with a local (Laplace) posterior.

The unknowns are :math:`\theta = \ln V_P, \ln V_S, \ln \rho` at a set of
control depths, linearly interpolated to the model grid
(:class:`Parametrisation`): positivity holds by construction. The paper's 28
control points (:data:`PAPER_CONTROL_DEPTHS` plus the bottom node) are the
default; ``control="full"`` inverts every grid node.

The forward model is anything that returns the phase velocities of a model and
their Jacobian with respect to (Vp, Vs, density) on the grid:

:class:`SurrogateForward`
    A trained surrogate; its Jacobian is one reverse-mode autodiff sweep.
:class:`PhysicsForward`
    The physics: disba roots and the exact kernels of
    :mod:`kernels.sensitivity`, in the same sweep.

The objective is

.. math::

    \Phi(\theta) = \tfrac12 r^T C_d^{-1} r
      + \tfrac12 \alpha \lVert \theta - \theta_0 \rVert^2
      + \tfrac12 \beta \lVert D \theta \rVert^2,
    \qquad r = d_{obs} - g(\theta),

with :math:`C_d` diagonal (:class:`NoiseModel`: a standard deviation in km/s
per wave and period, optionally with the surrogate's own error added in
quadrature), damping :math:`\alpha` towards the initial model and smoothing
:math:`\beta` on second differences along each channel's control points.
:func:`invert` minimises it by Levenberg-Marquardt (Gauss-Newton with an
adaptive damping) or by Adam. At the solution the Laplace approximation gives

.. math::

    H = J_\theta^T C_d^{-1} J_\theta + H_{reg}, \qquad C = H^{-1},

and the marginal standard deviation of Vs at every depth by propagating
:math:`C` through the interpolation (:meth:`InversionResult.sd`). The data part
:math:`F = J_\theta^T C_d^{-1} J_\theta` is the Fisher information
(:func:`fisher_information`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
import xarray as xr

from .config import WAVES
from .io import model_dataset
from .subspace import INPUTS

__all__ = ["PAPER_CONTROL_DEPTHS", "Parametrisation", "NoiseModel", "SurrogateForward",
           "PhysicsForward", "InversionResult", "invert", "fisher_information",
           "marginal_sd"]

#: The paper's control depths (km): 0-5 km every 0.5 km, 6-10 km every 1 km,
#: 15-50 km every 5 km, then 70, 90 and 110 km. The bottom grid node is added
#: by :class:`Parametrisation` (28 points on the paper's grid).
PAPER_CONTROL_DEPTHS = np.concatenate([np.arange(0.0, 5.01, 0.5), np.arange(6.0, 10.01, 1.0),
                                       np.arange(15.0, 50.01, 5.0), [70.0, 90.0, 110.0]])


class Parametrisation:
    """Log-parameters at control depths, linearly interpolated to the grid.

    Parameters
    ----------
    depth : array_like
        Grid node depths (km), increasing.
    control : {"paper", "full"} or array_like
        Control depths: the paper's (plus the top and bottom nodes), every grid
        node, or explicit depths within the grid.

    Examples
    --------
    >>> p = Parametrisation(0.5 * np.arange(256))
    >>> p.n_control, p.n_parameters
    (28, 84)
    """

    def __init__(self, depth, control="paper"):
        depth = np.asarray(depth, dtype=float)
        if depth.ndim != 1 or depth.size < 2 or np.any(np.diff(depth) <= 0):
            raise ValueError("depth must be a strictly increasing 1-D array of >= 2 nodes.")
        if isinstance(control, str):
            if control == "paper":
                control = np.union1d(PAPER_CONTROL_DEPTHS[PAPER_CONTROL_DEPTHS <= depth[-1]],
                                     [depth[0], depth[-1]])
            elif control == "full":
                control = depth
            else:
                raise ValueError(f"control must be 'paper', 'full' or depths, got {control!r}.")
        control = np.asarray(control, dtype=float)
        if control.ndim != 1 or control.size < 2 or np.any(np.diff(control) <= 0):
            raise ValueError("control depths must be strictly increasing, at least 2 of them.")
        if control[0] > depth[0] or control[-1] < depth[-1]:
            raise ValueError(f"control depths must span the grid ({depth[0]:g}-{depth[-1]:g} "
                             f"km), got {control[0]:g}-{control[-1]:g} km.")
        self.depth, self.control = depth, control
        # Column j is the piecewise-linear hat of control point j on the grid.
        self.matrix = np.stack([np.interp(depth, control, np.eye(control.size)[j])
                                for j in range(control.size)], axis=1)
        idle = control[np.all(self.matrix < 1e-12, axis=0)]
        if idle.size:
            raise ValueError(f"control depths {idle.tolist()} km move no grid node (the grid "
                             f"has {depth.size} nodes from {depth[0]:g} to {depth[-1]:g} km); "
                             f"every control point needs a grid node between its neighbours.")

    @property
    def n_control(self):
        return self.control.size

    @property
    def n_parameters(self):
        return len(INPUTS) * self.n_control

    def to_grid(self, theta):
        """(Vp, Vs, density) on the grid, shape (3, n_depth), from ``theta``."""
        theta = np.asarray(theta, dtype=float).reshape(len(INPUTS), self.n_control)
        return np.exp(theta @ self.matrix.T)

    def from_grid(self, values):
        """Least-squares ``theta`` of grid profiles ``values`` (3, n_depth), in log space."""
        values = np.asarray(values, dtype=float)
        coefficients, *_ = np.linalg.lstsq(self.matrix, np.log(values).T, rcond=None)
        return coefficients.T.ravel()

    def grid_jacobian(self, theta):
        """d values / d theta: shape (3 * n_depth, n_parameters), block diagonal."""
        values = self.to_grid(theta)
        n_depth, n = self.depth.size, self.n_control
        out = np.zeros((len(INPUTS) * n_depth, self.n_parameters))
        for k in range(len(INPUTS)):
            out[k * n_depth:(k + 1) * n_depth, k * n:(k + 1) * n] = (
                values[k][:, None] * self.matrix)
        return out

    def second_difference(self):
        """D: second differences along each channel's control points (no cross terms)."""
        n = self.n_control
        d = np.zeros((n - 2, n))
        for i in range(n - 2):
            d[i, i:i + 3] = (1.0, -2.0, 1.0)
        return np.kron(np.eye(len(INPUTS)), d)

    def model(self, theta, thickness):
        """``theta`` as a model Dataset on the grid."""
        vp, vs, rho = self.to_grid(theta)
        return model_dataset(self.depth, thickness, vp, vs, rho)


@dataclass(frozen=True)
class NoiseModel:
    """Independent Gaussian data errors, a standard deviation per wave and period.

    Parameters
    ----------
    sigma : xarray.DataArray
        Standard deviation (km/s) on ``(wave, period)``.
    """

    sigma: xr.DataArray

    def __post_init__(self):
        sigma = self.sigma.transpose("wave", "period")
        if not np.all(np.isfinite(sigma.values)) or np.any(sigma.values <= 0):
            raise ValueError(f"noise sigma must be positive and finite (km/s), got values in "
                             f"[{float(sigma.min())}, {float(sigma.max())}].")
        object.__setattr__(self, "sigma", sigma)

    @classmethod
    def constant(cls, sigma, periods, waves=WAVES):
        """The same ``sigma`` (km/s) at every wave and period."""
        return cls(xr.DataArray(np.full((len(waves), len(periods)), float(sigma)),
                                dims=("wave", "period"),
                                coords={"wave": list(waves), "period": np.asarray(periods)},
                                attrs={"units": "km/s"}))

    def with_model_error(self, model_error):
        """Add a forward-model error (km/s, on ``wave, period``) in quadrature."""
        model_error = model_error.transpose("wave", "period")
        _check_same_data_coords(self.sigma, model_error, "model_error")
        return NoiseModel(np.sqrt(self.sigma**2 + model_error.values**2))

    def draw(self, clean, seed):
        """``clean`` data plus one realisation of the noise (reproducible by seed)."""
        rng = np.random.default_rng(seed)
        noise = rng.normal(size=self.sigma.shape) * self.sigma
        return clean + noise

    @property
    def weights(self):
        """1 / sigma^2, flattened in (wave, period) order."""
        return 1.0 / self.sigma.values.ravel() ** 2


def _check_same_data_coords(reference, other, name):
    """Raise unless ``other`` is on the waves and periods of ``reference``."""
    same_waves = list(other["wave"].values) == list(reference["wave"].values)
    same_periods = (other.sizes["period"] == reference.sizes["period"]
                    and np.allclose(other["period"].values, reference["period"].values))
    if not (same_waves and same_periods):
        raise ValueError(
            f"{name} is on waves {list(other['wave'].values)} and periods "
            f"{other['period'].values.tolist()} s; it must match waves "
            f"{list(reference['wave'].values)} and periods "
            f"{reference['period'].values.tolist()} s, in that order.")


class SurrogateForward:
    """Phase velocities and their Jacobian from a trained surrogate (autodiff).

    Parameters
    ----------
    surrogate : kernels.surrogate.Surrogate
        Trained, e.g. from :func:`kernels.surrogate.load`.
    """

    name = "surrogate"

    def __init__(self, surrogate):
        self.surrogate = surrogate
        self.periods = np.asarray(surrogate.periods_)
        network = surrogate.network_

        def f(x):
            return network(x[None])[0].reshape(-1)

        self._f, self._jac = f, torch.func.jacrev(f)

    def __call__(self, values):
        """``values`` (3, n_depth) -> (c flattened over (wave, period), J (n_data, 3 n_depth))."""
        x = self._tensor(values)
        with torch.no_grad():
            c = self._f(x).double().cpu().numpy()
        jac = self._jac(x).detach().double().cpu().numpy()
        return c, jac.reshape(c.size, -1)

    def value_and_vjp(self, values):
        """``c`` and a function ``v -> J^T v``: one reverse sweep instead of a full Jacobian."""
        c, pullback = torch.func.vjp(self._f, self._tensor(values))

        def vjp(v):
            (out,) = pullback(torch.as_tensor(v, dtype=c.dtype, device=c.device))
            return out.detach().double().cpu().numpy().ravel()

        return c.detach().double().cpu().numpy(), vjp

    def _tensor(self, values):
        return torch.tensor(np.asarray(values), dtype=torch.float32,
                            device=self.surrogate.device)


class PhysicsForward:
    """Phase velocities and exact kernels from the physics (disba + the kernel engine).

    Parameters
    ----------
    periods : array_like
        Periods (s).
    thickness : array_like
        Layer thicknesses (km) of the grid.
    depth : array_like
        Node depths (km).
    """

    name = "physics"

    def __init__(self, periods, thickness, depth):
        self.periods = np.asarray(periods, dtype=float)
        self.thickness, self.depth = np.asarray(thickness), np.asarray(depth)

    def __call__(self, values):
        from .sensitivity import kernel_dataset

        vp, vs, rho = np.asarray(values)
        model = model_dataset(self.depth, self.thickness, vp, vs, rho)
        ds = kernel_dataset(model, self.periods, waves=WAVES)
        c = ds.phase_velocity.transpose("wave", "period").values.ravel()
        jac = np.concatenate([ds[f"dc_d{name}"].transpose("wave", "period", "depth").values
                              .reshape(c.size, -1) for name in INPUTS], axis=1)
        return c, jac

    def value_and_vjp(self, values):
        """``c`` and ``v -> J^T v`` (the exact engine yields J in the same sweep anyway)."""
        c, jac = self(values)
        return c, lambda v: jac.T @ v


@dataclass
class InversionResult:
    """Outcome of :func:`invert`.

    Attributes
    ----------
    theta : numpy.ndarray
        Final log-parameters.
    model : xarray.Dataset
        Final model on the grid.
    predicted : xarray.DataArray
        Its phase velocities (km/s) on ``(wave, period)``.
    history : list of dict
        Per iteration: objective, data misfit (chi^2 / N), step, damping.
    converged : bool
        Whether the convergence criterion was met (not ``max_iter``, and not a
        stall: see ``settings["stop_reason"]``).
    wall_time_s : float
        Time spent.
    hessian : numpy.ndarray
        :math:`J_\\theta^T C_d^{-1} J_\\theta + H_{reg}` at the solution.
    fisher : numpy.ndarray
        Its data part, :math:`J_\\theta^T C_d^{-1} J_\\theta`.
    parametrisation : Parametrisation
    settings : dict
    """

    theta: np.ndarray
    model: xr.Dataset
    predicted: xr.DataArray
    history: list
    converged: bool
    wall_time_s: float
    hessian: np.ndarray
    fisher: np.ndarray
    parametrisation: Parametrisation
    settings: dict = field(default_factory=dict)

    @property
    def covariance(self):
        """Laplace covariance of ``theta``: the inverse of the Hessian."""
        return np.linalg.inv(self.hessian)

    def sd(self, parameter="velocity_s", log=False):
        """Marginal sd of a parameter on the grid, on ``depth`` (see :func:`marginal_sd`)."""
        return marginal_sd(self.parametrisation, self.theta, self.hessian, parameter, log)

    def band(self, parameter="velocity_s", n_sigma=2.0):
        """``(low, high)``: the model times ``exp(-+ n_sigma sd(ln p))``.

        The posterior is Gaussian in the log-parameters, so this band is its
        exact ``n_sigma`` interval, positive like the parameter itself.
        """
        value = self.model[parameter]
        spread = np.exp(n_sigma * self.sd(parameter, log=True))
        return value / spread, value * spread

    @property
    def regularisation_hessian(self):
        """:math:`H_{reg}`, the Hessian's part that does not depend on the data."""
        return self.hessian - self.fisher

    @property
    def misfit(self):
        """Final data misfit, chi^2 per datum."""
        return self.history[-1]["chi2"]


def marginal_sd(parametrisation, theta, hessian, parameter="velocity_s", log=False):
    """Laplace marginal sd of ``parameter`` on the grid from a Hessian in ``theta`` space.

    The covariance :math:`C = H^{-1}` of the log control values is propagated
    through the interpolation (and, unless ``log``, the exponential, linearised
    at ``theta``).

    Parameters
    ----------
    log : bool
        Return the sd of :math:`\\ln p` (dimensionless, exact for the Gaussian
        in ``theta``) instead of the linearised sd of :math:`p`.

    Returns
    -------
    xarray.DataArray
        On ``depth``, in the parameter's units (or dimensionless with ``log``).
    """
    if parameter not in INPUTS:
        raise ValueError(f"parameter must be one of {list(INPUTS)}, got {parameter!r}.")
    k = INPUTS.index(parameter)
    n_depth, n = parametrisation.depth.size, parametrisation.n_control
    if log:
        g = np.zeros((n_depth, parametrisation.n_parameters))
        g[:, k * n:(k + 1) * n] = parametrisation.matrix
        units = "1"
    else:
        g = parametrisation.grid_jacobian(theta)[k * n_depth:(k + 1) * n_depth]
        units = "g/cm^3" if parameter == "density" else "km/s"
    try:
        covariance = np.linalg.inv(hessian)
    except np.linalg.LinAlgError:
        raise ValueError("the Hessian is singular: the data and the regularisation leave "
                         "some parameters unconstrained; add damping.") from None
    variance = np.einsum("ij,jk,ik->i", g, covariance, g)
    name = f"sd_ln_{parameter}" if log else f"sd_{parameter}"
    return xr.DataArray(np.sqrt(variance), dims="depth",
                        coords={"depth": parametrisation.depth}, name=name,
                        attrs={"units": units})


def fisher_information(forward, parametrisation, theta, noise):
    """:math:`J_\\theta^T C_d^{-1} J_\\theta` of ``forward`` at ``theta``."""
    _, jac = forward(parametrisation.to_grid(theta))
    j_theta = jac @ parametrisation.grid_jacobian(theta)
    return j_theta.T @ (noise.weights[:, None] * j_theta)


def invert(observed, forward, parametrisation, initial, noise, damping=1.0, smoothing=10.0,
           method="lm", max_iter=50, tol=1e-4, learning_rate=0.01, thickness=None,
           progress=False):
    """Fit phase velocities of both waves with a differentiable forward model.

    Parameters
    ----------
    observed : xarray.DataArray
        Data (km/s) on ``(wave, period)``; NaN data are left out.
    forward : SurrogateForward or PhysicsForward
        Returns ``(c, J)`` for grid profiles.
    parametrisation : Parametrisation
        Control points.
    initial : xarray.Dataset
        Initial model on the grid (also the damping reference).
    noise : NoiseModel
        Data standard deviations.
    damping, smoothing : float
        Weights :math:`\\alpha` (per squared log unit) and :math:`\\beta` (per
        squared second difference of log values) of the regularisation.
    method : {"lm", "adam"}
        Levenberg-Marquardt, or Adam with ``learning_rate`` (log units).
    max_iter : int
        Iterations (LM: accepted or rejected steps; Adam: steps).
    tol : float
        LM stops when an accepted step lowers the objective by less than
        ``tol`` relative; Adam when 50 steps lower it by less than ``tol``.
    thickness : array_like, optional
        Layer thicknesses of the output model (default: those of ``initial``).
    progress : bool
        Print one line per iteration.

    Returns
    -------
    InversionResult
    """
    if method not in ("lm", "adam"):
        raise ValueError(f"method must be 'lm' or 'adam', got {method!r}.")
    for name, value in (("damping", damping), ("smoothing", smoothing),
                        ("learning_rate", learning_rate), ("tol", tol)):
        if not (np.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}.")
    if not isinstance(max_iter, int) or max_iter < 1:
        raise ValueError(f"max_iter must be an integer >= 1, got {max_iter!r}.")
    if method == "adam" and not learning_rate > 0:
        raise ValueError(f"learning_rate must be positive for Adam, got {learning_rate!r}.")
    observed = observed.transpose("wave", "period")
    if list(observed.wave.values) != list(WAVES) or not (
            observed.sizes["period"] == np.size(forward.periods)
            and np.allclose(observed.period, forward.periods)):
        raise ValueError("observed must be on the forward model's waves and periods.")
    _check_same_data_coords(observed, noise.sigma, "the noise model")
    d_obs = observed.values.ravel()
    use = np.isfinite(d_obs)
    if not use.any():
        raise ValueError("observed holds no finite datum to fit.")
    weights = noise.weights * use
    d_obs = np.where(use, d_obs, 0.0)

    theta0 = parametrisation.from_grid(np.stack([initial[name].values for name in INPUTS]))
    d2 = parametrisation.second_difference()
    h_reg = damping * np.eye(theta0.size) + smoothing * d2.T @ d2

    def objective_of(theta, r):
        dt = theta - theta0
        return (0.5 * (r**2 * weights).sum() + 0.5 * damping * dt @ dt
                + 0.5 * smoothing * (d2 @ theta) @ (d2 @ theta))

    def physical(theta):
        # Both forwards see only physical models: a step that puts Vp at or
        # below Vs anywhere is rejected like one that raises the objective.
        values = parametrisation.to_grid(theta)
        return values if np.all(values[0] > values[1]) else None

    def state(theta):
        """Objective, residual, J_theta and c (J_theta for Gauss-Newton)."""
        values = physical(theta)
        if values is None:
            return np.inf, None, None, None
        c, jac = forward(values)
        r = np.where(use, d_obs - c, 0.0)
        if not np.all(np.isfinite(r)):
            return np.inf, None, None, None
        return objective_of(theta, r), r, jac @ parametrisation.grid_jacobian(theta), c

    def state_and_gradient(theta):
        """Objective, residual, gradient and c from one reverse sweep (for Adam)."""
        values = physical(theta)
        if values is None:
            return np.inf, None, None, None
        c, vjp = forward.value_and_vjp(values)
        r = np.where(use, d_obs - c, 0.0)
        if not np.all(np.isfinite(r)):
            return np.inf, None, None, None
        data_gradient = -(vjp(weights * r) @ parametrisation.grid_jacobian(theta))
        return objective_of(theta, r), r, data_gradient + regularisation_gradient(theta), c

    def regularisation_gradient(theta):
        return damping * (theta - theta0) + smoothing * d2.T @ (d2 @ theta)

    def chi2(r):
        return float((r**2 * weights).sum() / n_data)

    start = time.perf_counter()
    n_data = int(use.sum())
    theta = theta0.copy()
    converged, stop_reason = False, "max_iter"
    if method == "lm":
        phi, r, j_theta, c = state(theta)
        if not np.isfinite(phi):
            raise ValueError("the forward model fails at the initial model.")
        history = [{"iteration": 0, "objective": phi, "chi2": chi2(r), "step": 0.0,
                    "lambda": np.nan}]
        lam = 1e-2
        for iteration in range(1, max_iter + 1):
            h = j_theta.T @ (weights[:, None] * j_theta) + h_reg
            g = -j_theta.T @ (weights * r) + regularisation_gradient(theta)
            step = np.linalg.solve(h + lam * np.diag(np.diag(h)), -g)
            phi_new, r_new, j_new, c_new = state(theta + step)
            if phi_new < phi:
                relative = (phi - phi_new) / phi
                step_lambda = lam
                theta, phi, r, j_theta, c = theta + step, phi_new, r_new, j_new, c_new
                lam = max(lam / 3.0, 1e-7)
                history.append({"iteration": iteration, "objective": phi, "chi2": chi2(r),
                                "step": float(np.abs(step).max()), "lambda": lam})
                if progress:
                    print(history[-1])
                if relative < tol:
                    # A small decrease from a near-Gauss-Newton step is convergence; from
                    # a heavily damped (tiny) step it only means the solver is stuck.
                    converged = step_lambda < 1e3
                    stop_reason = "converged" if converged else "stalled"
                    break
            else:
                lam *= 5.0
                if lam > 1e8:
                    stop_reason = "stalled"  # no descent at any step length
                    break
    else:
        phi, r, g, c = state_and_gradient(theta)
        if not np.isfinite(phi):
            raise ValueError("the forward model fails at the initial model.")
        history = [{"iteration": 0, "objective": phi, "chi2": chi2(r), "step": 0.0,
                    "lambda": np.nan}]
        m, v = np.zeros_like(theta), np.zeros_like(theta)
        beta1, beta2, eps = 0.9, 0.999, 1e-8
        rate, accepted = learning_rate, 0
        best, best_so_far = (phi, theta.copy()), [phi]
        for iteration in range(1, max_iter + 1):
            # Moments and bias correction advance only with accepted steps.
            m_trial = beta1 * m + (1 - beta1) * g
            v_trial = beta2 * v + (1 - beta2) * g**2
            t = accepted + 1
            step = -rate * (m_trial / (1 - beta1**t)) / (np.sqrt(v_trial / (1 - beta2**t))
                                                         + eps)
            phi_new, r_new, g_new, c_new = state_and_gradient(theta + step)
            if not np.isfinite(phi_new):
                rate /= 2.0  # an unphysical or failed step: shorten it and retry
                continue
            accepted, m, v = t, m_trial, v_trial
            theta, phi, r, g, c = theta + step, phi_new, r_new, g_new, c_new
            if phi < best[0]:
                best = (phi, theta.copy())
            best_so_far.append(best[0])
            history.append({"iteration": iteration, "objective": phi, "chi2": chi2(r),
                            "step": float(np.abs(step).max()), "lambda": np.nan})
            if progress and iteration % 100 == 0:
                print(history[-1])
            # Stop when 50 accepted steps improved the best objective by less than tol.
            if accepted > 50 and best_so_far[-51] - best[0] < tol * best[0]:
                converged, stop_reason = True, "converged"
                break
        # The result, its misfit and the Laplace approximation are all at the best
        # point found (a last history row records it).
        phi, r, j_theta, c = state(best[1])
        theta = best[1]
        history.append({"iteration": len(history), "objective": phi, "chi2": chi2(r),
                        "step": 0.0, "lambda": np.nan, "best": True})
    fisher = j_theta.T @ (weights[:, None] * j_theta)
    thickness = initial["thickness"].values if thickness is None else thickness
    predicted = xr.DataArray(c.reshape(len(WAVES), -1), dims=("wave", "period"),
                             coords={"wave": list(WAVES), "period": forward.periods},
                             name="phase_velocity", attrs={"units": "km/s"})
    return InversionResult(
        theta=theta, model=parametrisation.model(theta, thickness), predicted=predicted,
        history=history, converged=converged, wall_time_s=time.perf_counter() - start,
        hessian=fisher + h_reg, fisher=fisher, parametrisation=parametrisation,
        settings={"forward": forward.name, "method": method, "damping": damping,
                  "smoothing": smoothing, "max_iter": max_iter, "tol": tol,
                  "learning_rate": learning_rate, "n_data": n_data,
                  "stop_reason": stop_reason})
