r"""Surface-wave dispersion of layered models: the physics forward model.

Phase (or group) velocities of Rayleigh and Love waves are computed with disba
(Luu, 2021), a numba port of Herrmann's surf96 from Computer Programs in
Seismology (Herrmann, 2013): a root search of the Dunkin / Haskell-Thomson
secular function in phase velocity.

The root search walks up in phase velocity with a step ``dc`` and refines the
bracketed root by bisection (to 1e-6 of c). Two roots in one bracket cancel
and are passed over, so the step decides which root is found. We use
``dc = 0.002`` km/s, chosen by :func:`root_step_audit` on 1000 models of each
prior (weak, strong, strong-corrected; chapter "Data and priors"), with roots
at 0.005, 0.002, 0.001 and 0.0005 km/s compared once untrapped roots are
removed: disba's default of 0.005 km/s jumps to another mode at 3 periods of
the 3000 models (slow surface layers, two roots in one bracket), while 0.002
and the finer steps agree to 1e-4 everywhere. Every step
also loses a few trapped roots that lie within about one step below the
half-space's Vs (a slow half-space that the long-period mode barely stays
under); these are failures (NaN, flagged), not wrong values, and they become
rarer as the step shrinks (per 1000 models, about 30 periods at 0.005 and
16 at 0.002 km/s). ``make bench`` reports what the step costs.

When the fundamental-mode search fails on a model, disba raises for the whole
curve; we then solve each period alone, so only the periods whose root cannot
be found become NaN. The result keeps every requested period, and the flag
``failed`` marks the models with at least one NaN.

A root is a normal mode of the layered half-space only if it is *trapped*:
its phase velocity lies below the half-space's shear velocity,
:math:`c < \beta_N`. Then both vertical wavenumbers of the half-space,
:math:`\sqrt{k^2 - \omega^2/\beta_N^2}` and
:math:`\sqrt{k^2 - \omega^2/\alpha_N^2}` (:math:`\alpha_N > \beta_N`), are
real and its solutions decay with depth; the same condition serves Love waves
(S only) and Rayleigh waves (P and S). Where the half-space is slower than a
layer above it, disba (like Fortran surf96) can still return a zero of its
secular function with :math:`c \geq \beta_N` at long periods, without a
warning. That value is not a normal mode: at :math:`c \geq \beta_N` the
half-space's S solution oscillates rather than decays, so the wave leaks into
the half-space, and disba's real-valued secular function does not represent
that radiation. Where the wave barely reaches the half-space (short periods,
a thick layer faster than :math:`c` above it, through which it must tunnel)
the value approximates a weakly leaking mode of the layers above; as the
period grows the leak grows and the value loses its meaning, and it depends
on where the model was cut. By default such periods are NaN and flagged
``untrapped``, like a failed root; ``keep_untrapped=True`` keeps disba's raw
value.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from disba import DispersionError, GroupDispersion, PhaseDispersion

from ._parallel import block_map
from .config import WAVES
from .io import as_model_arrays

__all__ = ["dispersion", "dispersion_curves", "check_models", "check_periods", "trapped",
           "root_step_audit", "moved_roots", "summarise_step_audit", "DEFAULT_DC",
           "AUDIT_STEPS"]

#: Description of the ``untrapped`` flag.
UNTRAPPED_LONG_NAME = "root at or above the half-space's Vs: not a trapped mode"

#: Phase-velocity step of the root search, km/s (see the module docstring).
DEFAULT_DC = 0.002

#: Root-search steps compared by :func:`root_step_audit`, km/s.
AUDIT_STEPS = (0.005, 0.002, 0.001, 0.0005)

_VELOCITIES = ("phase", "group")


def check_periods(periods):
    """Validate a period axis.

    Parameters
    ----------
    periods : array_like, shape (n_period,)
        Periods in s.

    Returns
    -------
    numpy.ndarray
        The periods as a float array.

    Raises
    ------
    ValueError
        Empty, non-finite, non-positive or not strictly increasing periods.

    Examples
    --------
    >>> check_periods([1.0, 0.5])
    Traceback (most recent call last):
    ...
    ValueError: periods must be strictly increasing; period[1] = 0.5 s follows period[0] = 1 s.
    """
    periods = np.atleast_1d(np.asarray(periods, dtype=float))
    if periods.ndim != 1 or periods.size == 0:
        raise ValueError(f"periods must be a non-empty 1-D array, got shape {periods.shape}.")
    bad = np.flatnonzero(~np.isfinite(periods) | (periods <= 0))
    if bad.size:
        i = bad[0]
        raise ValueError(f"periods must be positive and finite; period[{i}] = {periods[i]:g} s.")
    steps = np.flatnonzero(np.diff(periods) <= 0)
    if steps.size:
        i = steps[0] + 1
        raise ValueError(
            f"periods must be strictly increasing; period[{i}] = {periods[i]:g} s follows "
            f"period[{i - 1}] = {periods[i - 1]:g} s."
        )
    return periods


def check_models(thickness, velocity_p, velocity_s, density):
    """Validate layered models and raise on the first violated rule.

    Parameters
    ----------
    thickness, velocity_p, velocity_s, density : numpy.ndarray, shape (n_sample, n_depth)
        Layer thickness (km), velocities (km/s) and density (g/cm^3).

    Raises
    ------
    ValueError
        Names the variable, the sample and layer, the value and the rule:
        velocities, densities and thicknesses must be positive and finite
        (the half-space thickness is ignored), and Vp must exceed Vs.

    Examples
    --------
    >>> import numpy as np
    >>> one = np.ones((1, 2))
    >>> check_models(one, 3 * one, 4 * one, 2 * one)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: velocity_p must exceed velocity_s; sample 0, layer 0 has velocity_p = 3 km/s ...
    """
    named = {
        "velocity_p": (velocity_p, "km/s"),
        "velocity_s": (velocity_s, "km/s"),
        "density": (density, "g/cm^3"),
        "thickness": (thickness[:, :-1], "km"),
    }
    for name, (values, units) in named.items():
        bad = np.argwhere(~(np.isfinite(values) & (values > 0)))
        if bad.size:
            s, i = bad[0]
            raise ValueError(
                f"{name} must be positive and finite; sample {s}, layer {i} has "
                f"{name} = {values[s, i]:g} {units}."
            )
    bad = np.argwhere(velocity_p <= velocity_s)
    if bad.size:
        s, i = bad[0]
        raise ValueError(
            f"velocity_p must exceed velocity_s; sample {s}, layer {i} has velocity_p = "
            f"{velocity_p[s, i]:g} km/s <= velocity_s = {velocity_s[s, i]:g} km/s."
        )


def _solve_one(solver, periods, mode, wave):
    """Velocities at ``periods`` for one model, NaN where no root is found."""
    out = np.full(periods.size, np.nan)
    try:
        curve = solver(periods, mode, wave)
    except DispersionError:
        # The fundamental-mode search aborts the whole curve on one failure;
        # solve each period alone to keep the periods that do converge.
        for k in range(periods.size):
            try:
                single = solver(periods[k:k + 1], mode, wave)
            except DispersionError:
                continue
            if single.velocity.size:
                out[k] = single.velocity[0]
        return out
    # disba drops the periods where a (higher) mode does not exist.
    out[np.searchsorted(periods, curve.period)] = curve.velocity
    return out


def trapped(phase_velocity, half_space_vs):
    """Whether phase velocities are trapped modes: ``c < Vs`` of the half-space.

    Parameters
    ----------
    phase_velocity : array_like
        Phase velocities in km/s (NaN: no root, never trapped).
    half_space_vs : float or array_like
        Shear velocity of the half-space in km/s, broadcast against
        ``phase_velocity``.

    Returns
    -------
    numpy.ndarray of bool

    Examples
    --------
    >>> trapped([3.2, 4.1, float("nan")], 4.0).tolist()
    [True, False, False]
    """
    c = np.asarray(phase_velocity, dtype=float)
    with np.errstate(invalid="ignore"):
        return np.isfinite(c) & (c < np.asarray(half_space_vs, dtype=float))


def _roots(model, periods, mode, wave, dc, keep_untrapped=False, algorithm="dunkin"):
    """Phase velocities of one model and their status.

    Returns ``(c, untrapped)``: ``c`` is NaN where no root was found and, unless
    ``keep_untrapped``, where the root is not trapped (:func:`trapped`);
    ``untrapped`` marks the periods whose root lies at or above the half-space's
    shear velocity.
    """
    c = _solve_one(PhaseDispersion(*model, algorithm=algorithm, dc=dc), periods, mode, wave)
    untrapped = np.isfinite(c) & ~trapped(c, model[2][-1])
    if not keep_untrapped:
        c = np.where(untrapped, np.nan, c)
    return c, untrapped


def _solve_block(start, stop, arrays, periods, mode, wave, velocity, dc, algorithm,
                 keep_untrapped):
    thickness, velocity_p, velocity_s, density = arrays
    out = np.empty((stop - start, 2, periods.size))
    for row, s in enumerate(range(start, stop)):
        model = (thickness[s], velocity_p[s], velocity_s[s], density[s])
        c, untrapped = _roots(model, periods, mode, wave, dc, keep_untrapped, algorithm)
        if velocity == "group":
            group = _solve_one(GroupDispersion(*model, algorithm=algorithm, dc=dc), periods,
                               mode, wave)
            c = np.where(np.isnan(c), np.nan, group)
        out[row] = c, untrapped
    return out.reshape(stop - start, -1)


def _check_options(wave, mode, velocity, dc):
    if wave not in WAVES:
        raise ValueError(f"wave must be one of {list(WAVES)}, got {wave!r}.")
    if isinstance(mode, bool) or not isinstance(mode, int | np.integer) or mode < 0:
        raise ValueError(f"mode must be an integer >= 0 (0 is the fundamental), got {mode!r}.")
    if velocity not in _VELOCITIES:
        raise ValueError(f"velocity must be one of {list(_VELOCITIES)}, got {velocity!r}.")
    if not (np.isfinite(dc) and dc > 0):
        raise ValueError(f"dc must be a positive root-search step in km/s, got {dc!r}.")


def dispersion(models, periods, wave="rayleigh", mode=0, velocity="phase", dc=DEFAULT_DC,
               algorithm="dunkin", keep_untrapped=False, n_jobs=1, progress=False):
    """Surface-wave dispersion curves of layered models.

    Parameters
    ----------
    models : xarray.Dataset
        Models with variables ``thickness`` (km), ``velocity_p``, ``velocity_s``
        (km/s) and ``density`` (g/cm^3) on dims ``(sample, depth)`` or
        ``(depth,)``. The last layer is the half-space.
    periods : array_like, shape (n_period,)
        Strictly increasing periods in s.
    wave : {"rayleigh", "love"}
        Wave type.
    mode : int
        Mode number, 0 for the fundamental mode.
    velocity : {"phase", "group"}
        Phase or group velocity.
    dc : float
        Root-search step in km/s (see the module docstring).
    algorithm : {"dunkin", "fast-delta"}
        disba's Rayleigh-wave secular function.
    keep_untrapped : bool
        Keep disba's raw value at periods whose root is not trapped (phase
        velocity at or above the half-space's Vs; see the module docstring):
        a zero of the secular function that is not a normal mode. By default
        those periods are NaN, like a failed root.
    n_jobs : int
        Worker processes (-1: all cores).
    progress : bool
        Show a progress bar with rate and ETA.

    Returns
    -------
    xarray.DataArray
        ``phase_velocity`` (or ``group_velocity``) in km/s on dims
        ``(sample, period)`` (``(period,)`` for a single model), NaN where no
        root was found (and where it is not trapped, unless
        ``keep_untrapped``), with the boolean coordinates ``untrapped`` (per
        sample and period: a root at or above the half-space's Vs) and
        ``failed`` (per sample: at least one NaN).

    Raises
    ------
    ValueError
        On an invalid model, period axis or option (see :func:`check_models`).

    Examples
    --------
    >>> from kernels.io import layered_model
    >>> half_space = layered_model([1.0], [3.0**0.5], [1.0], [2.0])
    >>> c = dispersion(half_space, [1.0, 10.0])
    >>> [round(float(v), 4) for v in c / 1.0]
    [0.9194, 0.9194]
    """
    _check_options(wave, mode, velocity, dc)
    periods = check_periods(periods)
    arrays = as_model_arrays(models)
    check_models(*arrays)
    n = arrays[0].shape[0]
    both = np.empty((n, 2 * periods.size))
    block_map(_solve_block, n, both, n_jobs=n_jobs, progress=progress,
              desc=f"{wave} {velocity} velocity", arrays=arrays, periods=periods, mode=mode,
              wave=wave, velocity=velocity, dc=dc, algorithm=algorithm,
              keep_untrapped=bool(keep_untrapped))
    out, untrapped = both.reshape(n, 2, periods.size).transpose(1, 0, 2)
    name = f"{velocity}_velocity"
    da = xr.DataArray(
        out,
        dims=("sample", "period"),
        coords={"period": ("period", periods, {"units": "s", "long_name": "period"})},
        name=name,
        attrs={"units": "km/s", "long_name": f"{wave.capitalize()} {velocity} velocity",
               "wave": wave, "mode": int(mode), "dc": float(dc), "algorithm": algorithm,
               "solver": "disba"},
    )
    da = da.assign_coords(failed=("sample", np.isnan(out).any(axis=1)),
                          untrapped=(("sample", "period"), untrapped.astype(bool)))
    da["failed"].attrs["long_name"] = "at least one period without a (trapped) root"
    da["untrapped"].attrs["long_name"] = UNTRAPPED_LONG_NAME
    if "sample" in models.dims:
        return da.assign_coords(sample=models["sample"].values)
    return da.isel(sample=0)


def dispersion_curves(models, periods, waves=WAVES, **kwargs):
    """Dispersion curves for several wave types, stacked on a ``wave`` dim.

    Parameters
    ----------
    models : xarray.Dataset
        Models as for :func:`dispersion`.
    periods : array_like
        Periods in s.
    waves : sequence of str
        Wave types, by default ``("rayleigh", "love")``.
    **kwargs
        Passed to :func:`dispersion`.

    Returns
    -------
    xarray.DataArray
        Dims ``(sample, wave, period)`` (``(wave, period)`` for one model),
        with the flags ``failed`` on ``(sample, wave)`` and ``untrapped`` on
        ``(sample, wave, period)``.
    """
    curves = [dispersion(models, periods, wave=wave, **kwargs) for wave in waves]
    untrapped = xr.concat([curve["untrapped"] for curve in curves], dim="wave")
    da = xr.concat([curve.drop_vars(["failed", "untrapped"]) for curve in curves],
                   dim=xr.DataArray(list(waves), dims="wave", name="wave"))
    da = da.assign_coords(failed=np.isnan(da).any("period"),
                          untrapped=untrapped.assign_coords(wave=list(waves)))
    da["failed"].attrs["long_name"] = "at least one period without a (trapped) root"
    da["untrapped"].attrs["long_name"] = UNTRAPPED_LONG_NAME
    dims = ("sample", "wave", "period") if "sample" in da.dims else ("wave", "period")
    da = da.transpose(*dims)
    da.attrs.pop("wave", None)
    da.attrs["long_name"] = da.attrs["long_name"].split(" ", 1)[1]
    return da


def root_step_audit(models, periods, steps=AUDIT_STEPS, waves=WAVES, n_jobs=1, progress=False):
    """Fundamental-mode roots of the same models found with several search steps.

    With a coarse step two roots can share one bracket (near an osculation
    point of two modes), so the search passes the fundamental mode and finds
    another one. Roots that move when the step shrinks reveal such periods.

    Parameters
    ----------
    models : xarray.Dataset
        Models on dims ``(sample, depth)``.
    periods : array_like
        Strictly increasing periods in s.
    steps : sequence of float
        Root-search steps in km/s; the smallest is the reference.
    waves : sequence of str
        Wave types.
    n_jobs : int
        Worker processes.
    progress : bool
        Show progress bars.

    Returns
    -------
    xarray.Dataset
        ``phase_velocity`` (km/s; ``sample, wave, step, period``; raw values,
        untrapped ones kept), ``untrapped`` (same dims) and ``relative_change``
        (``|c(step) / c(reference) - 1|``, NaN where either is missing).
    """
    steps = np.sort(np.asarray(steps, dtype=float))[::-1]
    if steps.size < 2 or not np.all(np.isfinite(steps) & (steps > 0)):
        raise ValueError(f"steps must be at least two positive steps in km/s, got "
                         f"{steps.tolist()!r}.")
    parts = [dispersion_curves(models, periods, waves=waves, dc=float(step),
                               keep_untrapped=True, n_jobs=n_jobs, progress=progress)
             for step in steps]
    step = xr.DataArray(steps, dims="step", attrs={"units": "km/s",
                                                   "long_name": "root-search step"})
    c = xr.concat([part.drop_vars(["failed", "untrapped"]) for part in parts], dim=step)
    untrapped = xr.concat([part["untrapped"] for part in parts], dim=step)
    reference = c.isel(step=-1)
    change = np.abs(c / reference - 1.0)
    change.attrs = {"units": "1", "long_name": "relative change against the smallest step"}
    ds = xr.Dataset({"phase_velocity": c, "untrapped": untrapped, "relative_change": change})
    ds = ds.transpose("sample", "wave", "step", "period")
    ds.attrs = {"reference_step": float(steps[-1]), "solver": "disba"}
    return ds


def moved_roots(audit, step, rtol=1e-4):
    """Cells whose trapped root at ``step`` differs from the smallest step's by > ``rtol``.

    Untrapped roots are removed first (they are failures whatever the step).

    Parameters
    ----------
    audit : xarray.Dataset
        From :func:`root_step_audit`.
    step : float or None
        One audited step (km/s), or None for every step (a ``step`` dim).
    rtol : float
        Relative change above which a root counts as moved.

    Returns
    -------
    xarray.DataArray
        Boolean on ``(sample, wave, period)``, with ``step`` first if ``step`` is None.
    """
    c = audit.phase_velocity.where(~audit.untrapped)
    reference = c.isel(step=-1)
    if step is not None:
        c = c.sel(step=step)
    both = np.isfinite(c) & np.isfinite(reference)
    return both & (np.abs(c / reference - 1.0) > rtol)


def summarise_step_audit(audit, rtol=1e-4):
    """Per step and wave: what changes against the smallest step of an audit.

    Untrapped roots are removed first (they are failures whatever the step).

    Parameters
    ----------
    audit : xarray.Dataset
        From :func:`root_step_audit`.
    rtol : float
        Relative change above which a root counts as moved.

    Returns
    -------
    xarray.Dataset
        On ``(step, wave)``: ``moved`` (periods whose trapped root moves by more
        than ``rtol``), ``models_moved``, ``lost`` (periods with a trapped root
        at the smallest step but none at this one), ``failed`` (periods without
        a trapped root) and ``cells`` (periods compared).
    """
    c = audit.phase_velocity.where(~audit.untrapped)
    reference = c.isel(step=-1)
    moved = moved_roots(audit, None, rtol)
    return xr.Dataset({
        "moved": moved.sum(["sample", "period"]),
        "models_moved": moved.any("period").sum("sample"),
        "lost": (np.isnan(c) & np.isfinite(reference)).sum(["sample", "period"]),
        "failed": np.isnan(c).sum(["sample", "period"]),
        "cells": xr.full_like(moved.sum(["sample", "period"]),
                              audit.sizes["sample"] * audit.sizes["period"]),
    }, attrs={"rtol": rtol, "reference_step": float(audit.step.values[-1])})
