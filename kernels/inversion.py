r"""Gradient-based inversion of dispersion curves, with a local (Laplace) posterior.

The unknowns are log-parameters at a set of control depths, linearly
interpolated to the model grid (:class:`Parametrisation`), so positivity holds
by construction. Two choices of unknowns:

- **joint**: :math:`\ln V_P`, :math:`\ln V_S` and :math:`\ln \rho` at every
  control depth;
- **Vs only** (``vpvs=...``): :math:`\ln V_S` alone, with Vp tied to Vs by a
  fixed Vp/Vs profile and density by Brocher's (2005) law, as practitioners
  usually invert.

The paper's 28 control points (:data:`PAPER_CONTROL_DEPTHS` plus the bottom
node) are the default; ``control="full"`` inverts every grid node.

The forward model is anything that returns the phase velocities of a model and
their Jacobian with respect to (Vp, Vs, density) on the grid:

:class:`SurrogateForward`
    A trained surrogate; its Jacobian is one reverse-mode autodiff sweep.
:class:`PhysicsForward`
    The physics: disba roots and the exact kernels of
    :mod:`kernels.sensitivity`, in the same sweep.

The objective is the negative log posterior

.. math::

    \Phi(\theta) = \tfrac12 r^T C_d^{-1} r
      + \tfrac12 (\theta - \theta_0)^T H_{reg} (\theta - \theta_0),
    \qquad r = d_{obs} - g(\theta),

with a data covariance :math:`C_d` (:class:`NoiseModel`: standard deviations
per wave and period, optionally correlated across periods, optionally with the
surrogate's own error covariance added) and a Gaussian prior
:math:`N(\theta_0, H_{reg}^{-1})` about the initial model
(:class:`SmoothnessPrior`): a standard deviation of each log-parameter and a
standard deviation of its curvature with depth, per km, so that the prior
means the same whatever the spacing of the control points.
:func:`invert` minimises it by Levenberg-Marquardt (Gauss-Newton with an
adaptive damping) or by Adam. At the solution the Laplace approximation
(Tarantola 2005) gives

.. math::

    H = J_\theta^T C_d^{-1} J_\theta + H_{reg}, \qquad C = H^{-1},

and the marginal standard deviation of Vs at every depth by propagating
:math:`C` through the interpolation (:meth:`InversionResult.sd`). The data part
:math:`F = J_\theta^T C_d^{-1} J_\theta` is the Fisher information
(:func:`fisher_information`).

Models are physical only if :math:`V_P / V_S > 2/\sqrt{3}`
(:data:`VPVS_MIN`): the bulk modulus :math:`\rho (V_P^2 - \tfrac43 V_S^2)` is
then positive. Steps that leave that set are rejected.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import xarray as xr

from .config import WAVES
from .io import model_dataset
from .priors import brocher_polynomial, brocher_slope
from .subspace import INPUTS

__all__ = ["PAPER_CONTROL_DEPTHS", "VPVS_MIN", "Parametrisation", "SmoothnessPrior",
           "GaussianPrior",
           "NoiseModel", "residual_covariance", "SurrogateForward", "PhysicsForward",
           "InversionResult", "invert", "fisher_information", "marginal_sd",
           "geometry_agreement", "usable_phase_velocity"]

#: The paper's control depths (km): 0-5 km every 0.5 km, 6-10 km every 1 km,
#: 15-50 km every 5 km, then 70, 90 and 110 km. The bottom grid node is added
#: by :class:`Parametrisation` (28 points on the paper's grid).
PAPER_CONTROL_DEPTHS = np.concatenate([np.arange(0.0, 5.01, 0.5), np.arange(6.0, 10.01, 1.0),
                                       np.arange(15.0, 50.01, 5.0), [70.0, 90.0, 110.0]])

#: Smallest Vp/Vs of a solid with a positive bulk modulus, 2 / sqrt(3)
#: (:math:`K = \rho (V_P^2 - \tfrac43 V_S^2) > 0`).
VPVS_MIN = 2.0 / math.sqrt(3.0)


class Parametrisation:
    """Log-parameters at control depths, linearly interpolated to the grid.

    Parameters
    ----------
    depth : array_like
        Grid node depths (km), increasing.
    control : {"paper", "full"} or array_like
        Control depths: the paper's (plus the top and bottom nodes), every grid
        node, or explicit depths within the grid.
    vpvs : float or array_like, optional
        Invert ln Vs only, with Vp = ``vpvs`` x Vs (one value, or one per grid
        node, each above :data:`VPVS_MIN`) and density by Brocher's law on Vp.
        Default: invert ln Vp, ln Vs and ln density jointly.

    Examples
    --------
    >>> p = Parametrisation(0.5 * np.arange(256))
    >>> p.n_control, p.n_parameters, p.channels
    (28, 84, ('velocity_p', 'velocity_s', 'density'))
    >>> Parametrisation(0.5 * np.arange(256), vpvs=1.75).n_parameters
    28
    """

    def __init__(self, depth, control="paper", vpvs=None):
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
        if vpvs is None:
            self.vpvs, self.channels = None, tuple(INPUTS)
        else:
            vpvs = np.broadcast_to(np.asarray(vpvs, dtype=float), depth.shape).copy()
            bad = ~np.isfinite(vpvs) | (vpvs <= VPVS_MIN)
            if bad.any():
                raise ValueError(f"vpvs must exceed 2/sqrt(3) = {VPVS_MIN:.4f} (a positive bulk "
                                 f"modulus) at every node; got {vpvs[bad][0]:.4f} at "
                                 f"{depth[bad][0]:g} km.")
            self.vpvs, self.channels = vpvs, ("velocity_s",)

    @property
    def n_control(self):
        return self.control.size

    @property
    def n_parameters(self):
        return len(self.channels) * self.n_control

    @property
    def vs_only(self):
        """Whether only ln Vs is inverted (Vp and density tied to it)."""
        return self.vpvs is not None

    def _logs(self, theta):
        theta = np.asarray(theta, dtype=float).reshape(len(self.channels), self.n_control)
        return theta @ self.matrix.T

    def to_grid(self, theta):
        """(Vp, Vs, density) on the grid, shape (3, n_depth), from ``theta``."""
        logs = self._logs(theta)
        if not self.vs_only:
            return np.exp(logs)
        vs = np.exp(logs[0])
        vp = self.vpvs * vs
        return np.stack([vp, vs, brocher_polynomial(vp)])

    def from_grid(self, values):
        """Least-squares ``theta`` of grid profiles ``values`` (3, n_depth), in log space.

        Only the inverted channels are used (Vs alone with ``vpvs``).
        """
        values = np.asarray(values, dtype=float)
        rows = [INPUTS.index(name) for name in self.channels]
        coefficients, *_ = np.linalg.lstsq(self.matrix, np.log(values[rows]).T, rcond=None)
        return coefficients.T.ravel()

    def grid_jacobian(self, theta, values=None):
        """d values / d theta: shape (3 * n_depth, n_parameters).

        Block diagonal for the joint unknowns. With ``vpvs`` every channel follows
        ln Vs: d Vp = Vp d ln Vs and d rho = B'(Vp) Vp d ln Vs. ``values``
        (3, n_depth) evaluates the same derivative at another model (for
        example a true model that the control points cannot represent).
        """
        values = self.to_grid(theta) if values is None else np.asarray(values, dtype=float)
        n_depth, n = self.depth.size, self.n_control
        out = np.zeros((len(INPUTS) * n_depth, self.n_parameters))
        if not self.vs_only:
            for k in range(len(INPUTS)):
                out[k * n_depth:(k + 1) * n_depth, k * n:(k + 1) * n] = (
                    values[k][:, None] * self.matrix)
            return out
        vp, vs = values[0], values[1]
        for k, scale in enumerate((vp, vs, brocher_slope(vp) * vp)):
            out[k * n_depth:(k + 1) * n_depth] = scale[:, None] * self.matrix
        return out

    def log_jacobian(self, theta, parameter):
        """d ln p / d theta on the grid, (n_depth, n_parameters), for one parameter.

        Exact (linear in ``theta``) for every inverted channel and for Vp with
        ``vpvs``; linearised at ``theta`` for a density tied to Vp.
        """
        if parameter not in INPUTS:
            raise ValueError(f"parameter must be one of {list(INPUTS)}, got {parameter!r}.")
        k, n_depth = INPUTS.index(parameter), self.depth.size
        values = self.to_grid(theta)
        return self.grid_jacobian(theta)[k * n_depth:(k + 1) * n_depth] / values[k][:, None]

    def curvature(self):
        """``(D, width)``: second derivatives with depth at the interior control points.

        ``D`` (n_control - 2, n_control) gives d^2 f / dz^2 (per km^2) of values
        f at the control depths, exact for quadratics on any spacing; ``width``
        (km) is each interior point's share of the depth axis, half the distance
        between its neighbours. A constant gradient has zero curvature.

        Examples
        --------
        >>> p = Parametrisation(np.arange(41.0), control=[0.0, 1.0, 5.0, 20.0, 40.0])
        >>> d, width = p.curvature()
        >>> np.allclose(d @ (2.0 + 0.3 * p.control), 0.0), width.tolist()
        (True, [2.5, 9.5, 17.5])
        """
        z = self.control
        h = np.diff(z)
        d = np.zeros((z.size - 2, z.size))
        for i in range(z.size - 2):
            left, right = h[i], h[i + 1]
            d[i, i:i + 3] = (2.0 / (left * (left + right)), -2.0 / (left * right),
                             2.0 / (right * (left + right)))
        return d, 0.5 * (h[:-1] + h[1:])

    def model(self, theta, thickness):
        """``theta`` as a model Dataset on the grid."""
        vp, vs, rho = self.to_grid(theta)
        return model_dataset(self.depth, thickness, vp, vs, rho)


@dataclass(frozen=True, eq=False)
class SmoothnessPrior:
    r"""Gaussian prior on the log-parameters about a reference model.

    .. math::

        -\ln p(\theta) = \sum_j \frac{(\theta_j - \theta_{0,j})^2}{2\,\sigma_j^2}
          + \sum_i \frac{w_i}{2\,\kappa_i^2\ 1\,\mathrm{km}}
            \big(D (\theta - \theta_0)\big)_i^2 + \mathrm{const},

    for each inverted channel, where :math:`D` gives the second derivative
    with depth at the interior control points and :math:`w_i` their share of
    the depth axis (:meth:`Parametrisation.curvature`): the discretised
    :math:`\int (d^2 \ln m / dz^2)^2\, dz`. Because the curvature term is an
    integral over depth, it penalises the same profile by the same amount
    whatever the control spacing, and a constant depth gradient costs nothing.

    Parameters
    ----------
    sd : float or array_like
        :math:`\sigma`, the prior standard deviation of each log-parameter
        about the reference (ln units: 0.1 is about 10 %); one value, one per
        control point (n_control,), or one per channel and control point
        (n_channels, n_control). ``inf``: no damping.
    curvature_sd : float or array_like
        :math:`\kappa`, the prior standard deviation of :math:`d^2 \ln m / dz^2`
        averaged over 1 km (per km^2): the curvature is white noise of that
        intensity. One value, one per interior control point (n_control - 2,),
        or per channel and interior point. ``inf``: no smoothing.
    """

    sd: float | np.ndarray
    curvature_sd: float | np.ndarray

    def __post_init__(self):
        for name in ("sd", "curvature_sd"):
            value = np.asarray(getattr(self, name), dtype=float)
            if value.size == 0 or np.any(np.isnan(value)) or np.any(value <= 0):
                raise ValueError(f"{name} must be a positive number (inf allowed) or an array "
                                 f"of them, got {getattr(self, name)!r}.")
            object.__setattr__(self, name, float(value) if value.ndim == 0 else value)

    def hessian(self, parametrisation):
        """:math:`H_{reg}` (n_parameters, n_parameters) of this prior."""
        d, width = parametrisation.curvature()
        n_channels, n = len(parametrisation.channels), parametrisation.n_control
        try:
            sd = np.broadcast_to(np.asarray(self.sd, dtype=float), (n_channels, n))
            kappa = np.broadcast_to(np.asarray(self.curvature_sd, dtype=float),
                                    (n_channels, n - 2))
        except ValueError:
            raise ValueError(f"sd must broadcast to ({n_channels}, {n}) and curvature_sd to "
                             f"({n_channels}, {n - 2}) for this parametrisation; got shapes "
                             f"{np.shape(self.sd)} and {np.shape(self.curvature_sd)}.") from None
        blocks = [np.diag(1.0 / sd[k] ** 2) + d.T @ ((width / kappa[k] ** 2)[:, None] * d)
                  for k in range(n_channels)]
        out = np.zeros((n_channels * n, n_channels * n))
        for k, block in enumerate(blocks):
            out[k * n:(k + 1) * n, k * n:(k + 1) * n] = block
        return out

    @classmethod
    def from_models(cls, models, parametrisation, reference=None, per_depth=False, floor=0.1):
        r"""The prior whose scales match a set of models seen through the control points.

        Each model's log-parameters are projected onto the control points
        (:meth:`Parametrisation.from_grid`); ``sd`` is the root mean square of
        their deviation from ``reference`` (default: the models' mean), and
        ``curvature_sd`` the root mean square of the width-weighted curvature of
        that deviation, :math:`\sqrt{\overline{(D\theta)_i^2\, w_i / 1\,\mathrm{km}}}`,
        which estimates the white-noise intensity of the curvature.

        Parameters
        ----------
        models : xarray.Dataset
            Models on ``(sample, depth)`` on the parametrisation's grid.
        reference : array_like, optional
            :math:`\theta_0`; default the mean of the projected models.
        per_depth : bool
            One scale per channel and control point (the spread of a prior
            usually changes with depth by an order of magnitude) instead of one
            for all.
        floor : float
            With ``per_depth``, raise every scale to at least ``floor`` times
            its channel's median: a direction that no model of the set varies
            (for example the curvature of a prior's linear mantle gradient)
            would otherwise be pinned by a near-infinite weight.
        """
        values = np.stack([models[name].transpose("sample", "depth").values for name in INPUTS],
                          axis=1)
        theta = np.stack([parametrisation.from_grid(v) for v in values])
        reference = theta.mean(axis=0) if reference is None else np.asarray(reference)
        d, width = parametrisation.curvature()
        n_channels, n = len(parametrisation.channels), parametrisation.n_control
        deviation = (theta - reference).reshape(theta.shape[0], n_channels, n)
        curvature = np.einsum("ij,scj->sci", d, deviation) * np.sqrt(width)
        if not per_depth:
            return cls(sd=float(np.sqrt(np.mean(deviation**2))),
                       curvature_sd=float(np.sqrt(np.mean(curvature**2))))
        sd = np.sqrt(np.mean(deviation**2, axis=0))
        kappa = np.sqrt(np.mean(curvature**2, axis=0))
        sd = np.maximum(sd, floor * np.median(sd, axis=1, keepdims=True))
        kappa = np.maximum(kappa, floor * np.median(kappa, axis=1, keepdims=True))
        return cls(sd=sd, curvature_sd=kappa)


class GaussianPrior:
    """Gaussian prior on the log-parameters with a full covariance about a reference.

    Where :class:`SmoothnessPrior` states two scales, this prior is the
    covariance of a set of models themselves, seen through the control points
    (:meth:`from_models`): its marginal standard deviation at each control point
    is the models' own, and it keeps their correlations in depth and across
    channels (a strong prior ties Vp and density to Vs; a prior without those
    couplings would free directions the models never take).

    Parameters
    ----------
    covariance : array_like, shape (n_parameters, n_parameters)
        Covariance of ``theta`` (ln units squared), symmetric positive definite.
    shrinkage : float
        For the record: the weight given to the diagonal when it was estimated.
    """

    def __init__(self, covariance, shrinkage=0.0):
        covariance = np.asarray(covariance, dtype=float)
        if covariance.ndim != 2 or covariance.shape[0] != covariance.shape[1]:
            raise ValueError(f"covariance must be square, got shape {covariance.shape}.")
        if not np.allclose(covariance, covariance.T):
            raise ValueError("covariance must be symmetric.")
        try:
            np.linalg.cholesky(covariance)
        except np.linalg.LinAlgError:
            raise ValueError("covariance must be positive definite.") from None
        self.covariance, self.shrinkage = covariance, float(shrinkage)

    @property
    def sd(self):
        """Marginal standard deviation of each log-parameter (ln units)."""
        return np.sqrt(np.diag(self.covariance))

    def hessian(self, parametrisation):
        """The prior's precision, :math:`H_{reg} = C^{-1}`."""
        if self.covariance.shape[0] != parametrisation.n_parameters:
            raise ValueError(f"the prior has {self.covariance.shape[0]} parameters, the "
                             f"parametrisation {parametrisation.n_parameters}.")
        return np.linalg.inv(self.covariance)

    @classmethod
    def from_models(cls, models, parametrisation, shrinkage=None):
        """The covariance of a set of models' log-parameters at the control points.

        Each model is projected onto the control points
        (:meth:`Parametrisation.from_grid`); the sample covariance is shrunk towards
        its diagonal with the intensity of Schafer & Strimmer (2005, target D),
        estimated from the models unless ``shrinkage`` is given, so that it stays
        well conditioned with tens of parameters.

        Parameters
        ----------
        models : xarray.Dataset
            Models on ``(sample, depth)`` on the parametrisation's grid.
        shrinkage : float, optional
            Weight of the diagonal in [0, 1].
        """
        values = np.stack([models[name].transpose("sample", "depth").values for name in INPUTS],
                          axis=1)
        theta = np.stack([parametrisation.from_grid(v) for v in values])
        n = theta.shape[0]
        if n < 3:
            raise ValueError(f"need at least 3 models for a covariance, got {n}.")
        x = theta - theta.mean(axis=0)
        sample = x.T @ x / (n - 1)
        if shrinkage is None:
            # Schafer & Strimmer (2005): lambda = sum Var(s_ij) / sum s_ij^2 over i != j.
            w = x[:, :, None] * x[:, None, :]
            variance = n / (n - 1) ** 3 * ((w - w.mean(axis=0)) ** 2).sum(axis=0)
            off = ~np.eye(sample.shape[0], dtype=bool)
            shrinkage = float(np.clip(variance[off].sum() / (sample[off] ** 2).sum(), 0, 1))
        if not 0.0 <= shrinkage <= 1.0:
            raise ValueError(f"shrinkage must lie in [0, 1], got {shrinkage!r}.")
        covariance = (1 - shrinkage) * sample + shrinkage * np.diag(np.diag(sample))
        # A parameter no model varies (a fixed node) would make the prior singular.
        floor = 1e-8 * max(float(np.max(np.diag(covariance))), 1e-12)
        covariance = covariance + floor * np.eye(covariance.shape[0])
        return cls(covariance, shrinkage)


@dataclass(frozen=True)
class NoiseModel:
    """Gaussian data errors: a standard deviation per wave and period, and their correlation.

    Parameters
    ----------
    sigma : xarray.DataArray
        Standard deviation (km/s) on ``(wave, period)``.
    correlation : numpy.ndarray, optional
        Correlation matrix (n_data, n_data) of the errors in (wave, period)
        order (wave-major, as ``sigma.values.ravel()``). Default: independent.
    description : str
        What the model is, for tables and provenance.
    """

    sigma: xr.DataArray
    correlation: np.ndarray | None = None
    description: str = ""

    def __post_init__(self):
        sigma = self.sigma.transpose("wave", "period")
        if not np.all(np.isfinite(sigma.values)) or np.any(sigma.values <= 0):
            raise ValueError(f"noise sigma must be positive and finite (km/s), got values in "
                             f"[{float(sigma.min())}, {float(sigma.max())}].")
        object.__setattr__(self, "sigma", sigma)
        if self.correlation is not None:
            r = np.asarray(self.correlation, dtype=float)
            n = sigma.size
            if r.shape != (n, n):
                raise ValueError(f"correlation must be ({n}, {n}) for {n} data, got {r.shape}.")
            if not (np.allclose(r, r.T) and np.allclose(np.diag(r), 1.0)):
                raise ValueError("correlation must be symmetric with a unit diagonal.")
            try:
                np.linalg.cholesky(r)
            except np.linalg.LinAlgError:
                raise ValueError("correlation must be positive definite.") from None
            object.__setattr__(self, "correlation", r)

    @classmethod
    def constant(cls, sigma, periods, waves=WAVES):
        """The same ``sigma`` (km/s) at every wave and period, independent errors."""
        return cls(xr.DataArray(np.full((len(waves), len(periods)), float(sigma)),
                                dims=("wave", "period"),
                                coords={"wave": list(waves), "period": np.asarray(periods)},
                                attrs={"units": "km/s"}),
                   description=f"independent, sigma = {float(sigma):g} km/s")

    @classmethod
    def relative(cls, data, fraction, correlation_length):
        r"""Errors of ``fraction`` x the data, correlated across periods within each wave.

        The correlation of two periods of the same wave is
        :math:`\exp(-|\ln T_i - \ln T_j| / L)` with ``correlation_length``
        :math:`L` in units of ln period (0.1: periods 10 % apart correlate at
        about 0.4); the two waves are independent. Measurement errors of
        dispersion curves come from the same seismograms filtered in
        overlapping bands, so neighbouring periods err together, more so at long
        periods where the paper's 1 s steps are close in frequency.

        Parameters
        ----------
        data : xarray.DataArray
            Phase velocities (km/s) on ``(wave, period)``: the scale of the errors
            (use the observed data, so that the noise model does not depend on
            the model being fitted).
        fraction : float
            Standard deviation as a fraction of the data (0.01: 1 %).
        correlation_length : float
            :math:`L` (ln period); 0 gives independent errors.
        """
        if not (math.isfinite(fraction) and fraction > 0):
            raise ValueError(f"fraction must be a positive number, got {fraction!r}.")
        if not (math.isfinite(correlation_length) and correlation_length >= 0):
            raise ValueError(f"correlation_length must be >= 0 (ln period), got "
                             f"{correlation_length!r}.")
        data = data.transpose("wave", "period")
        log_t = np.log(data.period.values)
        if correlation_length > 0:
            block = np.exp(-np.abs(log_t[:, None] - log_t[None, :]) / correlation_length)
        else:
            block = np.eye(log_t.size)
        scale = np.abs(data.values)
        # A failed period (NaN) is not fitted; its sigma only has to be valid.
        scale = np.where(np.isfinite(scale), scale, np.nanmean(scale, axis=1, keepdims=True))
        sigma = xr.DataArray(fraction * scale, dims=("wave", "period"),
                             coords={"wave": data.wave.values, "period": data.period.values},
                             attrs={"units": "km/s"})
        return cls(sigma,
                   np.kron(np.eye(data.sizes["wave"]), block),
                   description=f"{100 * fraction:g} % of c, correlation length "
                               f"{correlation_length:g} in ln T")

    @property
    def covariance(self):
        """Data covariance (n_data, n_data), (km/s)^2, wave-major order."""
        s = self.sigma.values.ravel()
        r = np.eye(s.size) if self.correlation is None else self.correlation
        return s[:, None] * r * s[None, :]

    def with_model_error(self, model_error):
        """Add a forward model's error, independent of the data noise.

        Parameters
        ----------
        model_error : xarray.DataArray or numpy.ndarray
            Its standard deviation (km/s) on ``(wave, period)``, added in
            quadrature to the diagonal; or its full covariance (n_data, n_data),
            (km/s)^2 (:func:`residual_covariance`), added to the covariance.
        """
        if isinstance(model_error, xr.DataArray):
            model_error = model_error.transpose("wave", "period")
            _check_same_data_coords(self.sigma, model_error, "model_error")
            extra = np.diag(model_error.values.ravel() ** 2)
            how = "its error added in quadrature"
        else:
            extra = np.asarray(model_error, dtype=float)
            if extra.shape != (self.sigma.size,) * 2:
                raise ValueError(f"a model-error covariance must be ({self.sigma.size}, "
                                 f"{self.sigma.size}), got {extra.shape}.")
            how = "its error covariance added"
        total = self.covariance + extra
        s = np.sqrt(np.diag(total))
        sigma = self.sigma.copy(data=s.reshape(self.sigma.shape))
        correlation = total / np.outer(s, s)
        np.fill_diagonal(correlation, 1.0)
        independent = np.allclose(correlation, np.eye(s.size))
        return NoiseModel(sigma, None if independent else correlation,
                          f"{self.description}; {how}".lstrip("; "))

    def draw(self, clean, seed):
        """``clean`` data plus one realisation of the noise (reproducible by seed)."""
        rng = np.random.default_rng(seed)
        z = rng.normal(size=self.sigma.shape)
        if self.correlation is not None:
            z = (np.linalg.cholesky(self.correlation) @ z.ravel()).reshape(z.shape)
        return clean + z * self.sigma

    def precision(self, use=None):
        """Inverse covariance (n_data, n_data) of the data ``use`` (bool mask), 0 elsewhere."""
        n = self.sigma.size
        use = np.ones(n, dtype=bool) if use is None else np.asarray(use, dtype=bool)
        out = np.zeros((n, n))
        out[np.ix_(use, use)] = np.linalg.inv(self.covariance[np.ix_(use, use)])
        return out


def residual_covariance(predicted, observed, shrinkage=0.0, centred=False):
    """Second moment (n_data, n_data) of a forward model's errors on held-out models.

    By default the residuals are not centred: a likelihood that uses the forward
    model's raw predictions must carry its mean error (bias) as well as its
    scatter, and :math:`E[r r^T] = C + b b^T` does.

    Parameters
    ----------
    predicted, observed : xarray.DataArray or array_like
        Forward-model predictions and the physics on the same models, on
        ``(sample, wave, period)`` or as arrays (n_models, n_data) in
        wave-major order. Rows with a NaN are dropped.
    shrinkage : float
        Weight towards the diagonal, in [0, 1] (0: the sample moment).
    centred : bool
        Subtract the mean residual first (the covariance about the bias).

    Returns
    -------
    numpy.ndarray
        (n_data, n_data), (km/s)^2, in (wave, period) order.
    """

    def rows(a):
        if isinstance(a, xr.DataArray):
            a = a.transpose("sample", "wave", "period").values
        a = np.asarray(a, dtype=float)
        return a.reshape(a.shape[0], -1)

    r = rows(predicted) - rows(observed)
    r = r[np.all(np.isfinite(r), axis=1)]
    if r.shape[0] < 2:
        raise ValueError("need at least 2 finite residual rows for a covariance.")
    if not 0.0 <= shrinkage <= 1.0:
        raise ValueError(f"shrinkage must lie in [0, 1], got {shrinkage!r}.")
    sample = np.cov(r, rowvar=False) if centred else r.T @ r / r.shape[0]
    return (1 - shrinkage) * sample + shrinkage * np.diag(np.diag(sample))


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


def usable_phase_velocity(kernels):
    """Phase velocities (wave-major, flat) of a kernel Dataset, NaN where it ``failed``.

    The engine flags a period ``failed`` when its root or any of its kernels is
    NaN, and the root can be sound while its kernels are not: at a short period
    below a thick stack of fast layers the secular function's layer products
    overflow (seen on extreme draws of a layered prior at 2 s). A
    derivative-based step cannot use a datum whose derivative is unknown, so
    such a period counts as a failed forward model here, like a missing root.
    """
    c = kernels.phase_velocity.transpose("wave", "period").values
    failed = kernels["failed"].transpose("wave", "period").values
    return np.where(failed, np.nan, c).ravel()


class PhysicsForward:
    """Phase velocities and exact kernels from the physics (disba + the kernel engine).

    A period whose kernel failed is NaN in ``c`` (:func:`usable_phase_velocity`).

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
        c = usable_phase_velocity(ds)
        jac = np.concatenate([ds[f"dc_d{name}"].transpose("wave", "period", "depth").values
                              .reshape(c.size, -1) for name in INPUTS], axis=1)
        return c, jac

    def value_and_vjp(self, values):
        """``c`` and ``v -> J^T v`` (the exact engine yields J in the same sweep anyway).

        Rows of periods without a root (``c`` NaN) take no part in the product.
        """
        c, jac = self(values)
        jac = np.where(np.isfinite(c)[:, None], jac, 0.0)
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
        in ``theta`` when ``p`` is inverted or tied linearly to Vs) instead of
        the linearised sd of :math:`p`.

    Returns
    -------
    xarray.DataArray
        On ``depth``, in the parameter's units (or dimensionless with ``log``).
    """
    if parameter not in INPUTS:
        raise ValueError(f"parameter must be one of {list(INPUTS)}, got {parameter!r}.")
    k, n_depth = INPUTS.index(parameter), parametrisation.depth.size
    if log:
        g = parametrisation.log_jacobian(theta, parameter)
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


def fisher_information(forward, parametrisation, theta, noise, values=None, use=None):
    """:math:`J_\\theta^T C_d^{-1} J_\\theta` of ``forward`` at ``theta``.

    Parameters
    ----------
    values : array_like, optional
        (3, n_depth) grid model at which to evaluate the forward model and the
        chain rule instead of the model of ``theta`` (for example the true
        model, which the control points may not represent exactly).
    use : array_like of bool, optional
        Data to include (wave-major); default those with a finite value and
        derivative (a failed period takes no part).
    """
    values = parametrisation.to_grid(theta) if values is None else np.asarray(values)
    c, jac = forward(values)
    finite = np.isfinite(c) & np.all(np.isfinite(jac), axis=1)
    use = finite if use is None else np.asarray(use, dtype=bool)
    if np.any(use & ~finite):
        raise ValueError("the forward model has no finite value or derivative for some "
                         "of the data asked for (use): leave them out.")
    jac = np.where(use[:, None], jac, 0.0)
    j_theta = jac @ parametrisation.grid_jacobian(theta, values)
    return j_theta.T @ noise.precision(use) @ j_theta


def _physical(values):
    """Whether grid values (3, n_depth) have Vp / Vs above :data:`VPVS_MIN` everywhere."""
    return bool(np.all(values[0] > VPVS_MIN * values[1]))


def invert(observed, forward, parametrisation, initial, noise, prior, method="lm", max_iter=50,
           tol=1e-4, learning_rate=0.01, thickness=None, progress=False):
    """Fit phase velocities of both waves with a differentiable forward model.

    Parameters
    ----------
    observed : xarray.DataArray
        Data (km/s) on ``(wave, period)``; NaN data are left out.
    forward : SurrogateForward or PhysicsForward
        Returns ``(c, J)`` for grid profiles.
    parametrisation : Parametrisation
        Control points, joint or Vs-only unknowns.
    initial : xarray.Dataset
        Initial model on the grid, also the prior's mean :math:`\\theta_0`
        (its projection onto the control points).
    noise : NoiseModel
        Data covariance.
    prior : SmoothnessPrior or GaussianPrior
        The Gaussian prior about the initial model.
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
        Steps that would make Vp / Vs fall to :data:`VPVS_MIN` or below
        anywhere are rejected.
    """
    if method not in ("lm", "adam"):
        raise ValueError(f"method must be 'lm' or 'adam', got {method!r}.")
    if not isinstance(prior, SmoothnessPrior | GaussianPrior):
        raise ValueError(f"prior must be a SmoothnessPrior or a GaussianPrior, got "
                         f"{type(prior).__name__}.")
    for name, value in (("learning_rate", learning_rate), ("tol", tol)):
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
    precision = noise.precision(use)
    d_obs = np.where(use, d_obs, 0.0)

    theta0 = parametrisation.from_grid(np.stack([initial[name].values for name in INPUTS]))
    h_reg = prior.hessian(parametrisation)

    def objective_of(theta, r):
        dt = theta - theta0
        return 0.5 * r @ precision @ r + 0.5 * dt @ h_reg @ dt

    def state(theta):
        """Objective, residual, J_theta and c (J_theta for Gauss-Newton)."""
        values = parametrisation.to_grid(theta)
        if not _physical(values):
            return np.inf, None, None, None
        c, jac = forward(values)
        r = np.where(use, d_obs - c, 0.0)
        if not np.all(np.isfinite(r)):
            return np.inf, None, None, None
        # Rows of data left out may be NaN (no root there): zero, so that 0 x NaN does
        # not poison the Hessian and the Fisher information.
        jac = np.where(use[:, None], jac, 0.0)
        if not np.all(np.isfinite(jac)):
            return np.inf, None, None, None  # a datum without a derivative: a failed step
        return objective_of(theta, r), r, jac @ parametrisation.grid_jacobian(theta), c

    def state_and_gradient(theta):
        """Objective, residual, gradient and c from one reverse sweep (for Adam)."""
        values = parametrisation.to_grid(theta)
        if not _physical(values):
            return np.inf, None, None, None
        c, vjp = forward.value_and_vjp(values)
        r = np.where(use, d_obs - c, 0.0)
        if not np.all(np.isfinite(r)):
            return np.inf, None, None, None
        data_gradient = -(vjp(precision @ r) @ parametrisation.grid_jacobian(theta))
        if not np.all(np.isfinite(data_gradient)):
            raise ValueError("the forward model's vector-Jacobian product is not finite; "
                             "a forward model must return finite derivatives for the data "
                             "it can fit (PhysicsForward zeroes the rows of failed periods).")
        return objective_of(theta, r), r, data_gradient + h_reg @ (theta - theta0), c

    def chi2(r):
        return float(r @ precision @ r / n_data)

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
            h = j_theta.T @ precision @ j_theta + h_reg
            g = -j_theta.T @ (precision @ r) + h_reg @ (theta - theta0)
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
    fisher = j_theta.T @ precision @ j_theta
    thickness = initial["thickness"].values if thickness is None else thickness
    predicted = xr.DataArray(c.reshape(len(WAVES), -1), dims=("wave", "period"),
                             coords={"wave": list(WAVES), "period": forward.periods},
                             name="phase_velocity", attrs={"units": "km/s"})
    return InversionResult(
        theta=theta, model=parametrisation.model(theta, thickness), predicted=predicted,
        history=history, converged=converged, wall_time_s=time.perf_counter() - start,
        hessian=fisher + h_reg, fisher=fisher, parametrisation=parametrisation,
        settings={"forward": forward.name, "method": method,
                  "prior": type(prior).__name__, "noise": noise.description,
                  "unknowns": "Vs only" if parametrisation.vs_only else "joint",
                  "max_iter": max_iter, "tol": tol, "learning_rate": learning_rate,
                  "n_data": n_data, "stop_reason": stop_reason})


def geometry_agreement(reference, other, k=5, prior_hessian=None):
    """How the Fisher matrix ``other`` agrees with ``reference`` (both symmetric, PSD).

    With ``prior_hessian`` (:math:`H_{prior} = L L^T`) both are first whitened,
    :math:`L^{-1} F L^{-T}`: the comparison is then of the directions the data
    resolve beyond the prior, independent of how the unknowns are scaled and
    placed (raw log-parameters at unevenly spaced control points are not).

    Returns
    -------
    dict
        ``eigenvalue_ratio``: the leading eigenvalue of ``other`` over that of
        ``reference``; ``leading_cos``: |cos| of the angle between their leading
        eigenvectors; ``subspace_cos``: the cosine of the largest principal
        angle between the spans of their ``k`` leading eigenvectors (1: the
        same best-resolved subspace); ``trace_ratio``: total information,
        ``other`` over ``reference``.

    Examples
    --------
    >>> f = np.diag([4.0, 1.0, 0.1])
    >>> same = geometry_agreement(f, 2 * f, k=2)
    >>> same["eigenvalue_ratio"], same["leading_cos"], same["subspace_cos"]
    (2.0, 1.0, 1.0)
    """
    reference, other = np.asarray(reference, dtype=float), np.asarray(other, dtype=float)
    if reference.shape != other.shape or reference.ndim != 2:
        raise ValueError(f"both Fisher matrices must be square and of one shape, got "
                         f"{reference.shape} and {other.shape}.")
    if prior_hessian is not None:
        factor = np.linalg.cholesky(np.asarray(prior_hessian, dtype=float))
        whiten = np.linalg.inv(factor)
        reference, other = whiten @ reference @ whiten.T, whiten @ other @ whiten.T
    k = min(int(k), reference.shape[0])
    w_r, v_r = np.linalg.eigh(reference)
    w_o, v_o = np.linalg.eigh(other)
    v_r, v_o = v_r[:, ::-1], v_o[:, ::-1]
    cosines = np.linalg.svd(v_r[:, :k].T @ v_o[:, :k], compute_uv=False)
    return {"eigenvalue_ratio": float(w_o[-1] / w_r[-1]),
            "leading_cos": float(abs(v_r[:, 0] @ v_o[:, 0])),
            "subspace_cos": float(np.clip(cosines.min(), 0.0, 1.0)),
            "trace_ratio": float(np.trace(other) / np.trace(reference))}
