r"""Theoretical depth sensitivity kernels of phase velocity.

The raw kernel is :math:`\partial c / \partial p_i` for a layer parameter
:math:`p_i` (thickness, Vp, Vs or density of layer :math:`i`), every other
parameter held fixed, in km/s per unit of :math:`p`.

``method="exact"`` (default) differentiates the secular function implicitly:
at a root :math:`F(c; p) = 0`,
:math:`\partial c/\partial p_i = -(\partial F/\partial p_i)/(\partial F/\partial c)`.
The root comes from disba (bisected to 1e-6 of c) and is polished by a Newton
step on the same :math:`F`; :math:`F` is built from exact layer propagators
(matrix exponentials; second compound matrices for Rayleigh waves) and one
reverse-mode sweep through the layer products gives all four kernels of every
layer at every period (see :mod:`kernels._secular`). A polishing step that moves
the root by more than 1e-5 of c has left the solver's root (two roots nearly
meet): that period is refused, NaN and flagged as failed, rather than given the
kernel of another root. The kernels are therefore
exact up to the root's precision and floating-point round-off: unlike a finite
difference they carry no truncation error, and they satisfy the scaling sum
rule :math:`\sum_i (h_i \partial_{h_i} c + \alpha_i \partial_{\alpha_i} c +
\beta_i \partial_{\beta_i} c) = c` to round-off. We chose this route over the
variational (energy-integral) kernels because it needs no eigenfunction
quadrature inside layers, and it gives thickness kernels too.

``method="disba"`` reproduces the authors' reference: disba's
``PhaseSensitivity``, a one-sided finite difference per layer with the
parameter divided by 1.025 (Herrmann's ``srfker96`` approach). It costs one
full root search per layer and period, and errs by a few per cent (the order
of its step).

Helpers convert raw kernels to the forms the book compares: per km, relative
(:math:`\partial \ln c / \partial \ln p`), and the paper's display form.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
import xarray as xr
from disba import DispersionError, PhaseSensitivity
from scipy.ndimage import uniform_filter1d

from ._parallel import block_map
from ._secular import exact_group_kernels, exact_kernels
from .forward import (
    DEFAULT_DC,
    UNTRAPPED_LONG_NAME,
    _check_options,
    _roots,
    check_models,
    check_periods,
)
from .io import MODEL_VARIABLES, as_model_arrays
from .metrics import depth_of_peak

__all__ = ["phase_kernel", "phase_kernels", "group_kernels", "kernel_dataset", "peak_depth",
           "sum_rule_residual", "per_km", "relative", "display_form",
           "PARAMETERS", "METHODS"]

#: Parameters a kernel can be taken with respect to.
PARAMETERS = tuple(MODEL_VARIABLES)
#: Kernel engines.
METHODS = ("exact", "disba")
#: disba's relative finite-difference step (the parameter is divided by 1 + step).
DISBA_STEP = 0.025


def _disba_block(start, stop, arrays, periods, mode, wave, parameters, dc):
    thickness, velocity_p, velocity_s, density = arrays
    n_depth = thickness.shape[1]
    out = np.full((stop - start, 1 + len(parameters), periods.size, n_depth), np.nan)
    for row, s in enumerate(range(start, stop)):
        model = (thickness[s], velocity_p[s], velocity_s[s], density[s])
        roots, untrapped = _roots(model, periods, mode, wave, dc)
        out[row, 0, :, 0] = roots
        out[row, 0, untrapped, 1] = np.inf  # the untrapped mark (see _run)
        engine = PhaseSensitivity(*model, dc=dc, dp=DISBA_STEP)
        for j, parameter in enumerate(parameters):
            for k, period in enumerate(periods):
                if not np.isfinite(roots[k]):
                    continue  # no trapped root: NaN, flagged by the caller
                try:
                    kernel = engine(period, mode=mode, wave=wave, parameter=parameter).kernel
                except DispersionError:
                    continue  # stays NaN; flagged by the caller
                out[row, 1 + j, k] = kernel
    return out.reshape(stop - start, -1)


@contextlib.contextmanager
def _one_torch_thread():
    """Run torch on one intra-op thread, then restore the setting.

    The engine's products are small batched 4x4 and 6x6 matrices: a thread
    pool only adds synchronisation, and with another process busy on the same
    cores it is several times slower (``benchmarks/bench_kernels.py`` measures
    both). Parallel work is spread over processes instead (``n_jobs``).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _exact_block(start, stop, arrays, periods, mode, wave, parameters, dc, velocity="phase"):
    with _one_torch_thread():
        return _exact_rows(start, stop, arrays, periods, mode, wave, parameters, dc, velocity)


def _exact_rows(start, stop, arrays, periods, mode, wave, parameters, dc, velocity):
    thickness, velocity_p, velocity_s, density = arrays
    n_depth = thickness.shape[1]
    out = np.full((stop - start, 1 + len(parameters), periods.size, n_depth), np.nan)
    for row, s in enumerate(range(start, stop)):
        model = (thickness[s], velocity_p[s], velocity_s[s], density[s])
        roots, untrapped = _roots(model, periods, mode, wave, dc)
        out[row, 0, untrapped, 1] = np.inf  # the untrapped mark (see _run)
        ok = np.isfinite(roots)
        if not ok.any():
            continue
        if velocity == "group":
            value, kernels = exact_group_kernels(roots[ok], periods[ok], *model, wave)
            out[row, 0, ok, 0] = value
        else:
            value, kernels = exact_kernels(roots[ok], periods[ok], *model, wave)
            out[row, 0, ok, 0] = value
            out[row, 0, ok, 1] = kernels["period"]
        for j, parameter in enumerate(parameters):
            out[row, 1 + j, ok] = kernels[parameter]
    return out.reshape(stop - start, -1)


_ENGINES = {"exact": _exact_block, "disba": _disba_block}


def _check_kernel_options(parameters, method, wave, mode, dc):
    for parameter in parameters:
        if parameter not in PARAMETERS:
            raise ValueError(
                f"parameter must be one of {list(PARAMETERS)}, got {parameter!r}.")
    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}.")
    _check_options(wave, mode, "phase", dc)


def phase_kernels(models, periods, wave="rayleigh", parameters=PARAMETERS, mode=0,
                  method="exact", dc=DEFAULT_DC, n_jobs=1, progress=False):
    """Phase velocity and its sensitivity kernels for several parameters at once.

    The exact engine obtains all four parameters in the same sweep, so asking
    for several costs no more than asking for one.

    Parameters
    ----------
    models : xarray.Dataset
        Models on dims ``(sample, depth)`` or ``(depth,)`` (see
        :func:`kernels.forward.dispersion`).
    periods : array_like
        Strictly increasing periods in s.
    wave : {"rayleigh", "love"}
        Wave type.
    parameters : sequence of str
        Among ``thickness``, ``velocity_p``, ``velocity_s``, ``density``.
    mode : int
        Mode number; the exact engine supports the fundamental mode (0) only.
    method : {"exact", "disba"}
        Kernel engine (see the module docstring).
    dc : float
        Root-search step in km/s.
    n_jobs : int
        Worker processes (-1: all cores).
    progress : bool
        Show a progress bar.

    Returns
    -------
    xarray.Dataset
        ``phase_velocity`` (km/s; ``sample, period``), ``dc_d<parameter>``
        (``sample, period, depth``) and, with the exact engine, ``dc_dperiod``
        ((km/s)/s) and the ``group_velocity`` it implies (km/s); NaN at periods
        without a trapped root, with the flags ``failed`` and ``untrapped`` (a
        root at or above the half-space's Vs, see :mod:`kernels.forward`) on
        ``(sample, period)``.
        Without a ``sample`` dim in ``models``, none in the result.

    Raises
    ------
    ValueError
        On an unknown parameter or method, a higher mode with the exact
        engine, or invalid models, periods or options.
    """
    parameters = tuple(parameters)
    _check_kernel_options(parameters, method, wave, mode, dc)
    if method == "exact" and mode != 0:
        raise ValueError(f"method='exact' supports the fundamental mode (mode=0) only, got "
                         f"mode={mode!r}; use method='disba' for higher modes.")
    periods = check_periods(periods)
    out, untrapped = _run(_ENGINES[method], models, periods, wave, parameters, mode, dc, n_jobs,
                          progress, desc=f"{wave} kernels ({method})")
    data_vars = {"phase_velocity": (("sample", "period"), out[:, 0, :, 0],
                                    {"units": "km/s",
                                     "long_name": f"{wave.capitalize()} phase velocity"})}
    if method == "exact":
        c, dc_dt = out[:, 0, :, 0], out[:, 0, :, 1]
        data_vars["dc_dperiod"] = (("sample", "period"), dc_dt,
                                   {"units": "(km/s)/s", "long_name": "dc/dT"})
        # U = d omega / dk = c / (1 + (T / c) dc/dT)
        data_vars["group_velocity"] = (
            ("sample", "period"), c / (1 + periods * dc_dt / c),
            {"units": "km/s", "long_name": f"{wave.capitalize()} group velocity"})
    data_vars.update(_kernel_variables(out, parameters, "c", f"{wave.capitalize()} phase"))
    attrs = {"wave": wave, "mode": int(mode), "method": method, "dc": float(dc)}
    if method == "disba":
        attrs["step"] = DISBA_STEP
    return _finish(models, out, untrapped, data_vars, periods, attrs)


def group_kernels(models, periods, wave="rayleigh", parameters=PARAMETERS, dc=DEFAULT_DC,
                  n_jobs=1, progress=False):
    r"""Group velocity and its exact sensitivity kernels (fundamental mode).

    The group velocity :math:`U = c / (1 + (T/c)\, dc/dT)` and its kernels
    :math:`dU/dp` follow from second derivatives of the secular function
    (see :func:`kernels._secular.exact_group_kernels`); they obey the same
    scaling sum rule as phase-velocity kernels, with :math:`U` for :math:`c`.

    Parameters
    ----------
    models : xarray.Dataset
        Models on dims ``(sample, depth)`` or ``(depth,)``.
    periods : array_like
        Strictly increasing periods in s.
    wave : {"rayleigh", "love"}
        Wave type.
    parameters : sequence of str
        Among ``thickness``, ``velocity_p``, ``velocity_s``, ``density``.
    dc : float
        Root-search step in km/s.
    n_jobs : int
        Worker processes (-1: all cores).
    progress : bool
        Show a progress bar.

    Returns
    -------
    xarray.Dataset
        ``group_velocity`` (km/s; ``sample, period``) and ``dU_d<parameter>``
        (``sample, period, depth``), NaN without a trapped root, flagged by
        ``failed`` (and ``untrapped``).
    """
    parameters = tuple(parameters)
    _check_kernel_options(parameters, "exact", wave, 0, dc)
    periods = check_periods(periods)
    out, untrapped = _run(_exact_block, models, periods, wave, parameters, 0, dc, n_jobs,
                          progress, desc=f"{wave} group kernels", velocity="group")
    data_vars = {"group_velocity": (("sample", "period"), out[:, 0, :, 0],
                                    {"units": "km/s",
                                     "long_name": f"{wave.capitalize()} group velocity"})}
    data_vars.update(_kernel_variables(out, parameters, "U", f"{wave.capitalize()} group"))
    return _finish(models, out, untrapped, data_vars, periods,
                   {"wave": wave, "mode": 0, "method": "exact", "dc": float(dc)})


def _run(engine, models, periods, wave, parameters, mode, dc, n_jobs, progress, desc,
         **options):
    """Validate models and run a kernel engine over them in parallel.

    Returns an array (n_sample, 1 + n_parameter, n_period, n_depth) and the
    ``untrapped`` mask (n_sample, n_period). In the array, slot 0 holds the
    velocity at depth index 0 and dc/dT (exact engine) at depth index 1;
    slots 1.. the kernels. (The engines mark an untrapped root with +inf at
    slot 0, depth index 1; it is read into the mask here and cleared.)
    """
    arrays = as_model_arrays(models)
    check_models(*arrays)
    n, n_depth = arrays[0].shape
    shape = (n, 1 + len(parameters), periods.size, n_depth)
    out = np.empty((n, int(np.prod(shape[1:]))))
    block_map(engine, n, out, n_jobs=n_jobs, progress=progress, desc=desc, arrays=arrays,
              periods=periods, mode=mode, wave=wave, parameters=parameters, dc=dc, **options)
    out = out.reshape(shape)
    untrapped = np.isposinf(out[:, 0, :, 1])
    out[:, 0, :, 1][untrapped] = np.nan
    return out, untrapped


def _kernel_variables(out, parameters, symbol, quantity):
    """``d<symbol>_d<parameter>`` variables from the engine's output array."""
    variables = {}
    for j, parameter in enumerate(parameters):
        units = MODEL_VARIABLES[parameter][0]
        variables[f"d{symbol}_d{parameter}"] = (
            ("sample", "period", "depth"), out[:, 1 + j],
            {"units": f"(km/s)/({units})",
             "long_name": f"{quantity}-velocity sensitivity to {parameter}",
             "parameter": parameter})
    return variables


def _finish(models, out, untrapped, data_vars, periods, attrs):
    """Wrap kernel arrays in a Dataset with coordinates and failure flags."""
    coords = {
        "period": ("period", periods, {"units": "s", "long_name": "period"}),
        "depth": ("depth", np.asarray(models["depth"].values, dtype=float),
                  {"units": "km", "long_name": "layer-top depth", "positive": "down"}),
    }
    ds = xr.Dataset(data_vars, coords=coords, attrs=attrs)
    failed = np.isnan(out[:, 1:]).any(axis=(1, 3)) | np.isnan(out[:, 0, :, 0])
    ds = ds.assign_coords(failed=(("sample", "period"), failed),
                          untrapped=(("sample", "period"), untrapped))
    ds["failed"].attrs["long_name"] = ("no trapped root, or a root the Newton polish could "
                                       "not confirm (kernel is NaN)")
    ds["untrapped"].attrs["long_name"] = UNTRAPPED_LONG_NAME
    if "sample" in models.dims:
        return ds.assign_coords(sample=models["sample"].values)
    return ds.isel(sample=0)


def phase_kernel(models, periods, wave="rayleigh", parameter="velocity_s", mode=0,
                 method="exact", dc=DEFAULT_DC, n_jobs=1, progress=False):
    """Phase-velocity sensitivity kernel of layered models for one parameter.

    Parameters
    ----------
    models : xarray.Dataset
        Models on dims ``(sample, depth)`` or ``(depth,)``.
    periods : array_like
        Strictly increasing periods in s.
    wave : {"rayleigh", "love"}
        Wave type.
    parameter : {"velocity_s", "velocity_p", "density", "thickness"}
        Layer parameter of the derivative.
    mode : int
        Mode number, 0 for the fundamental.
    method : {"exact", "disba"}
        Kernel engine (see the module docstring).
    dc : float
        Root-search step in km/s.
    n_jobs : int
        Worker processes (-1: all cores).
    progress : bool
        Show a progress bar.

    Returns
    -------
    xarray.DataArray
        ``dc_d<parameter>`` on dims ``(sample, period, depth)`` (``(period,
        depth)`` for one model), NaN at periods without a trapped root, with
        the flags ``failed`` and ``untrapped`` on ``(sample, period)``.

    Raises
    ------
    ValueError
        On an unknown parameter or method, or invalid models, periods or options.

    Examples
    --------
    >>> from kernels.io import layered_model
    >>> model = layered_model([5.0, 5.0], [6.0, 8.0], [3.5, 4.5], [2.7, 3.3])
    >>> k = phase_kernel(model, [5.0, 20.0], wave="love", parameter="velocity_p")
    >>> float(abs(k).max())
    0.0
    """
    ds = phase_kernels(models, periods, wave=wave, parameters=(parameter,), mode=mode,
                       method=method, dc=dc, n_jobs=n_jobs, progress=progress)
    da = ds[f"dc_d{parameter}"]
    da.attrs.update(wave=wave, mode=int(mode), method=method)
    if method == "disba":
        da.attrs["step"] = DISBA_STEP
    return da


def per_km(kernel, thickness):
    """Divide a raw layer kernel by the layer thickness (km).

    Parameters
    ----------
    kernel : xarray.DataArray
        Raw kernel with a ``depth`` dim.
    thickness : xarray.DataArray
        Layer thickness in km on the same ``depth`` (and ``sample``) dims.

    Returns
    -------
    xarray.DataArray
        Kernel per km of layer thickness.
    """
    out = kernel / thickness
    out.attrs = {**kernel.attrs, "units": f"{kernel.attrs.get('units', '')}/km",
                 "form": "per km"}
    return out.rename(kernel.name)


def relative(kernel, parameter_values, phase_velocity):
    r"""Relative kernel :math:`\partial \ln c / \partial \ln p = (p / c)\, \partial c / \partial p`.

    Parameters
    ----------
    kernel : xarray.DataArray
        Raw kernel (``period``, ``depth`` and optionally ``sample`` dims).
    parameter_values : xarray.DataArray
        The parameter :math:`p` per layer (``depth`` and optionally ``sample``).
    phase_velocity : xarray.DataArray
        Phase velocity :math:`c` in km/s (``period`` and optionally ``sample``).

    Returns
    -------
    xarray.DataArray
        Dimensionless relative kernel.
    """
    out = kernel * parameter_values / phase_velocity
    out.attrs = {**kernel.attrs, "units": "1", "form": "relative (d ln c / d ln p)"}
    return out.rename(kernel.name)


def display_form(kernel, max_depth=110.0, window=9):
    """The paper's display form of a kernel.

    Cut to ``0 <= depth <= max_depth``, smooth with a ``window``-node moving
    average (edge values repeated at the ends, our choice), and normalise each
    period by the sum of absolute values over depth.

    Parameters
    ----------
    kernel : xarray.DataArray
        Kernel with ``depth`` and ``period`` dims.
    max_depth : float
        Deepest node kept, km.
    window : int
        Moving-average length in nodes (odd).

    Returns
    -------
    xarray.DataArray
        Dimensionless kernel whose absolute values sum to 1 at each period.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> k = xr.DataArray(np.ones((2, 300)), dims=("period", "depth"),
    ...                  coords={"depth": 0.5 * np.arange(300)})
    >>> d = display_form(k)
    >>> d.sizes["depth"], round(float(abs(d).sum("depth")[0]), 12)
    (221, 1.0)
    """
    if not isinstance(window, int | np.integer) or window < 1 or window % 2 == 0:
        raise ValueError(f"window must be a positive odd number of nodes, got {window!r}.")
    cut = kernel.sel(depth=slice(0.0, max_depth))
    axis = cut.get_axis_num("depth")
    smoothed = cut.copy(data=uniform_filter1d(cut.values, window, axis=axis, mode="nearest"))
    out = smoothed / abs(smoothed).sum("depth")
    out.attrs = {**kernel.attrs, "units": "1",
                 "form": f"display: 0-{max_depth:g} km, {window}-node moving average, "
                         "normalised by the sum of absolute values"}
    return out.rename(kernel.name)


#: Per-cell flag coordinates that kernel results can carry (see :func:`kernel_dataset`).
KERNEL_FLAGS = ("failed", "untrapped", "mode_jump")


def drop_flags(ds):
    """``ds`` without the flag coordinates of :data:`KERNEL_FLAGS` that it has.

    Arithmetic between two kernel results whose flags differ keeps neither;
    dropping them first says so, and the caller keeps the flags it needs.
    """
    return ds.drop_vars([name for name in KERNEL_FLAGS if name in ds.coords])


def kernel_dataset(models, periods, waves=("rayleigh", "love"), method="exact", n_jobs=1,
                   progress=False, check_modes=True):
    """Phase velocities and all four kernels for several waves, on a ``wave`` dim.

    Parameters
    ----------
    models : xarray.Dataset
        Models with a ``sample`` dim.
    periods : array_like
        Periods in s.
    waves : sequence of str
        Wave types.
    method : {"exact", "disba"}
        Kernel engine.
    n_jobs : int
        Worker processes.
    progress : bool
        Show progress bars.
    check_modes : bool
        With the exact engine, models on a ``sample`` dim and at least two
        periods, run :func:`mode_jumps` on each curve (it reuses the roots and
        slopes, so only steep intervals cost extra) and treat a flagged period
        like a failed one: NaN, ``failed`` set, and the coordinate ``mode_jump``.

    Returns
    -------
    xarray.Dataset
        The variables of :func:`phase_kernels` with a leading ``wave`` dim
        after ``sample``.
    """
    parts = [phase_kernels(models, periods, wave=wave, method=method, n_jobs=n_jobs,
                           progress=progress) for wave in waves]
    names = ("failed", "untrapped")
    if check_modes and method == "exact" and "sample" in models.dims and parts[0].period.size > 1:
        checked = []
        for wave, part in zip(waves, parts, strict=True):
            jump = mode_jumps(models, part.period.values, wave=wave, dc=part.attrs["dc"],
                              kernels=part).values
            part = part.where(~xr.DataArray(jump, dims=("sample", "period")))
            checked.append(part.assign_coords(
                failed=part.failed | jump,
                mode_jump=(("sample", "period"), jump,
                           {"long_name": "root not on one smooth branch with its "
                                         "neighbours (see mode_jumps); kernel is NaN"})))
        parts, names = checked, (*names, "mode_jump")
    flags = {name: xr.concat([part[name] for part in parts], dim="wave")
             .assign_coords(wave=list(waves)) for name in names}
    ds = xr.concat([part.drop_vars(list(flags)) for part in parts],
                   dim=xr.DataArray(list(waves), dims="wave", name="wave"),
                   combine_attrs="drop_conflicts")
    ds = ds.assign_coords(flags)
    ds.attrs.pop("wave", None)
    return ds.transpose(*(dim for dim in ("sample", "wave") if dim in ds.dims), ...)


def peak_depth(kernel, thickness):
    """Depth (km) where the per-km kernel's magnitude peaks, half-space excluded.

    Parameters
    ----------
    kernel : xarray.DataArray
        Raw kernel with a ``depth`` dim.
    thickness : xarray.DataArray
        Layer thickness (km) on ``depth``.

    Returns
    -------
    xarray.DataArray
        Peak depth in km (NaN where the kernel is NaN).
    """
    # The half-space's kernel integrates over infinite depth: it has no per-km
    # value, so the peak is searched over the finite layers only.
    out = depth_of_peak(per_km(kernel, thickness).isel(depth=slice(0, -1)))
    out.attrs = {"units": "km", "long_name": "peak depth of |dc/dp| per km"}
    return out


#: Defaults of :func:`mode_jumps`: the tolerance (km/s) on the trapezoid residual
#: of an interval, and the number of halvings of a failing interval.
MODE_JUMP_TOL = 1e-3
MODE_JUMP_LEVELS = 6
#: From this halving on, a kink's allowance applies (see :func:`mode_jumps`).
_KINK_LEVEL = 4


def _trapezoid_residual(t0, c0, d0, t1, c1, d1):
    """c(T1) - c(T0) minus the trapezoid rule on the exact slopes dc/dT."""
    return c1 - c0 - 0.5 * (t1 - t0) * (d0 + d1)


def _fails(ends, tol, kink):
    """Whether an interval's residual exceeds the tolerance (plus a kink's allowance)."""
    t0, _, d0, t1, _, d1 = ends
    allowance = (t1 - t0) * abs(d1 - d0) if kink else 0.0
    return abs(_trapezoid_residual(*ends)) > tol + allowance


def _jumps_of_one(arrays, periods, c, d, wave, dc, tol, levels):
    """Indices of the intervals of one model's curve that do not converge."""
    pending = []
    for i in range(periods.size - 1):
        ends = (periods[i], c[i], d[i], periods[i + 1], c[i + 1], d[i + 1])
        if np.isfinite(ends).all() and _fails(ends, tol, kink=False):
            pending.append((i, ends))
    holes = set()
    for level in range(1, levels + 1):
        if not pending:
            break
        mids = np.unique([0.5 * (ends[0] + ends[3]) for _, ends in pending])
        out = _exact_rows(0, 1, arrays, mids, 0, wave, (), dc, "phase").reshape(mids.size, -1)
        slope = np.where(np.isposinf(out[:, 1]), np.nan, out[:, 1])  # untrapped: no root
        at = dict(zip(mids.tolist(), zip(out[:, 0].tolist(), slope.tolist(), strict=True),
                      strict=True))
        refined = []
        for i, (t0, c0, d0, t1, c1, d1) in pending:
            tm = 0.5 * (t0 + t1)
            cm, dm = at[tm]
            if not (np.isfinite(cm) and np.isfinite(dm)):
                holes.add(i)  # no root inside the interval: not one branch
                continue
            for ends in ((t0, c0, d0, tm, cm, dm), (tm, cm, dm, t1, c1, d1)):
                # From a sixteenth of the first interval on, a kink may pass.
                if _fails(ends, tol, kink=level >= _KINK_LEVEL):
                    refined.append((i, ends))
        pending = [(i, ends) for i, ends in refined if i not in holes]
    return sorted(holes | {i for i, _ in pending})


def mode_jumps(models, periods, wave="rayleigh", dc=DEFAULT_DC, tol=MODE_JUMP_TOL,
               levels=MODE_JUMP_LEVELS, n_jobs=1, kernels=None):
    r"""Flag periods where the fundamental-mode curve is not one smooth branch.

    Along one mode, :math:`c(T_{i+1}) - c(T_i)` is the integral of the exact slope
    :math:`dc/dT` that the exact engine returns with every root; the trapezoid
    rule on the two end slopes misses it by :math:`(h^3/12)\,|c'''|`, which falls
    eightfold with every halving of the interval :math:`h`. A root search that
    lands on another mode at one period (a mode jump) leaves a residual of the
    size of the gap between the modes, which no halving removes. An interval
    whose residual exceeds ``tol`` is halved (root and slope at the midpoint from
    the same search) up to ``levels`` times. A part that still fails is a jump
    unless it is a kink: where two modes osculate, the fundamental mode's slope can
    fall from 2.4 to 0.2 (km/s)/s within 0.05 s of period, a continuous curve whose
    residual is at most about :math:`h\,|dc/dT(T_1) - dc/dT(T_0)|`, which still
    shrinks with :math:`h`; so from the fourth halving on (:math:`h` at most a
    sixteenth of the first interval, where a jump's gap still exceeds the
    allowance) a part of width :math:`h` fails only if its residual exceeds ``tol``
    plus that. A part that fails after the last halving, or a midpoint without a
    root, flags both end periods of its interval.

    Almost every interval passes at once; only the steep ones are refined, one
    engine call per model and halving, serially. On 60 models at 59 periods and
    both waves this added about 35 % (weak prior) and 75 % (strong prior, whose
    sediments make more steep intervals) to :func:`kernel_dataset`'s time on 2
    processes. Neighbouring periods alone (without the halvings) do
    not discriminate: on the strong prior a correct Love curve can rise by
    1.4 km/s within one second of period, and its residual (0.6 km/s) is larger
    than that of a real mode jump. The check cannot see a search that stays on a
    wrong branch over a whole run of periods; the root-step audit
    (:func:`kernels.forward.root_step_audit`) covers that.

    Parameters
    ----------
    models : xarray.Dataset
        Models on dims ``(sample, depth)``.
    periods : array_like
        Strictly increasing periods in s (at least two).
    wave : {"rayleigh", "love"}
        Wave type.
    dc : float
        Root-search step in km/s, the one whose roots are checked.
    tol : float
        Largest accepted trapezoid residual, km/s. With the default 1e-3 and six
        halvings, a smooth 1 s interval passes if
        :math:`|c'''| < 12 \cdot 10^{-3} \cdot 64^3 \approx 3000` (km/s)/s^3.
    levels : int
        Halvings of a failing interval.
    n_jobs : int
        Worker processes for the first pass.
    kernels : xarray.Dataset, optional
        A :func:`phase_kernels` result (exact engine) for these models, periods,
        wave and step, whose ``phase_velocity`` and ``dc_dperiod`` are reused.

    Returns
    -------
    xarray.DataArray
        Boolean ``(sample, period)``: True at both ends of an interval that is
        not one smooth branch. Failed (NaN) periods are not flagged here.

    Examples
    --------
    >>> import numpy as np
    >>> from kernels.io import layered_model
    >>> m = layered_model([20.0, 20.0, 1.0], [5.8, 6.5, 8.1], [3.4, 3.8, 4.6],
    ...                   [2.7, 2.9, 3.3])
    >>> bool(mode_jumps(m.expand_dims(sample=[0]), np.arange(2.0, 61.0)).any())
    False
    """
    periods = check_periods(periods)
    if periods.size < 2:
        raise ValueError(f"mode_jumps needs at least two periods, got {periods.size}.")
    if isinstance(tol, bool) or not (isinstance(tol, int | float) and tol > 0):
        raise ValueError(f"tol must be a positive number (km/s), got {tol!r}.")
    if isinstance(levels, bool) or not (isinstance(levels, int | np.integer) and levels >= 0):
        raise ValueError(f"levels must be a non-negative integer, got {levels!r}.")
    if "sample" not in models.dims:
        raise ValueError("mode_jumps needs models with a 'sample' dim.")
    if kernels is None:
        kernels = phase_kernels(models, periods, wave=wave, parameters=(), dc=dc,
                                n_jobs=n_jobs)
    c, d = kernels.phase_velocity.values, kernels.dc_dperiod.values
    flags = np.zeros(c.shape, dtype=bool)
    arrays = as_model_arrays(models)
    with _one_torch_thread():
        for n in range(c.shape[0]):
            one = tuple(a[n:n + 1] for a in arrays)
            for i in _jumps_of_one(one, periods, c[n], d[n], wave, dc, tol, levels):
                flags[n, i:i + 2] = True
    out = xr.DataArray(flags, dims=("sample", "period"),
                       coords={"sample": models["sample"].values, "period": periods},
                       name="mode_jump")
    out.attrs = {"long_name": "root not on one smooth branch with its neighbours",
                 "tol_km_s": float(tol), "levels": int(levels), "dc": float(dc)}
    return out


def sum_rule_residual(models, kernels):
    r"""Relative residual of the scaling sum rule, per model, wave and period.

    .. math:: \left|\frac{\sum_i (h_i \partial_{h_i} c + \alpha_i \partial_{\alpha_i} c
              + \beta_i \partial_{\beta_i} c)}{c} - 1\right|,

    the half-space's thickness excluded (it has none). Zero for exact kernels.

    Parameters
    ----------
    models : xarray.Dataset
        ``thickness``, ``velocity_p`` and ``velocity_s`` on ``depth``.
    kernels : xarray.Dataset
        ``phase_velocity``, ``dc_dthickness``, ``dc_dvelocity_p`` and
        ``dc_dvelocity_s`` (e.g. from :func:`phase_kernels`).

    Returns
    -------
    xarray.DataArray
        Dimensionless residual (NaN where a root failed).
    """
    interior = kernels.depth < models.depth.values[-1]
    total = ((models.thickness * kernels.dc_dthickness).where(interior, 0.0)
             + models.velocity_p * kernels.dc_dvelocity_p
             + models.velocity_s * kernels.dc_dvelocity_s).sum("depth")
    return abs(total / kernels.phase_velocity - 1)
