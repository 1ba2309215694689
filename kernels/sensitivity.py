r"""Theoretical depth sensitivity kernels of phase velocity.

The raw kernel is :math:`\partial c / \partial p_i` for a layer parameter
:math:`p_i` (thickness, Vp, Vs or density of layer :math:`i`), every other
parameter held fixed, in km/s per unit of :math:`p`.

``method="disba"`` reproduces the authors' reference: disba's
``PhaseSensitivity``, a one-sided finite difference per layer with the
parameter divided by 1.025 (Herrmann's ``srfker96`` approach). It costs one
full root search per layer and period, and its truncation error is of the
order of the 2.5 % step; an exact engine (implicit differentiation of the
secular function) is planned and will become the default.

Helpers convert raw kernels to the forms the book compares: per km, relative
(:math:`\partial \ln c / \partial \ln p`), and the paper's display form.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from disba import DispersionError, PhaseSensitivity
from scipy.ndimage import uniform_filter1d

from ._parallel import block_map
from .forward import DEFAULT_DC, _check_options, check_models, check_periods
from .io import MODEL_VARIABLES, as_model_arrays

__all__ = ["phase_kernel", "per_km", "relative", "display_form", "PARAMETERS", "METHODS"]

#: Parameters a kernel can be taken with respect to.
PARAMETERS = tuple(MODEL_VARIABLES)
#: Kernel engines.
METHODS = ("disba",)
#: disba's relative finite-difference step (the parameter is divided by 1 + step).
DISBA_STEP = 0.025


def _kernel_block(start, stop, arrays, periods, mode, wave, parameter, dc):
    thickness, velocity_p, velocity_s, density = arrays
    out = np.full((stop - start, periods.size, thickness.shape[1]), np.nan)
    for row, s in enumerate(range(start, stop)):
        engine = PhaseSensitivity(thickness[s], velocity_p[s], velocity_s[s], density[s],
                                  dc=dc, dp=DISBA_STEP)
        for k, period in enumerate(periods):
            try:
                out[row, k] = engine(period, mode=mode, wave=wave, parameter=parameter).kernel
            except DispersionError:
                continue  # stays NaN; flagged below
    return out.reshape(stop - start, -1)


def phase_kernel(models, periods, wave="rayleigh", parameter="velocity_s", mode=0,
                 method="disba", dc=DEFAULT_DC, n_jobs=1, progress=False):
    """Phase-velocity sensitivity kernels of layered models.

    Parameters
    ----------
    models : xarray.Dataset
        Models on dims ``(sample, depth)`` or ``(depth,)`` (see
        :func:`kernels.forward.dispersion`).
    periods : array_like
        Strictly increasing periods in s.
    wave : {"rayleigh", "love"}
        Wave type.
    parameter : {"velocity_s", "velocity_p", "density", "thickness"}
        Layer parameter of the derivative.
    mode : int
        Mode number, 0 for the fundamental.
    method : {"disba"}
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
        depth)`` for one model), NaN at periods whose root failed, with the
        flag ``failed`` on ``(sample, period)``.

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
    if parameter not in PARAMETERS:
        raise ValueError(f"parameter must be one of {list(PARAMETERS)}, got {parameter!r}.")
    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}.")
    _check_options(wave, mode, "phase", dc)
    periods = check_periods(periods)
    arrays = as_model_arrays(models)
    check_models(*arrays)
    n, n_depth = arrays[0].shape
    out = np.empty((n, periods.size * n_depth))
    block_map(_kernel_block, n, out, n_jobs=n_jobs, progress=progress,
              desc=f"{wave} d c / d {parameter}", arrays=arrays, periods=periods, mode=mode,
              wave=wave, parameter=parameter, dc=dc)
    out = out.reshape(n, periods.size, n_depth)
    units = MODEL_VARIABLES[parameter][0]
    da = xr.DataArray(
        out,
        dims=("sample", "period", "depth"),
        coords={"period": ("period", periods, {"units": "s", "long_name": "period"}),
                "depth": ("depth", np.asarray(models["depth"].values, dtype=float),
                          {"units": "km", "long_name": "layer-top depth", "positive": "down"})},
        name=f"dc_d{parameter}",
        attrs={"units": f"(km/s)/({units})",
               "long_name": f"{wave.capitalize()} phase-velocity sensitivity to {parameter}",
               "wave": wave, "mode": int(mode), "parameter": parameter, "method": method,
               "step": DISBA_STEP},
    )
    da = da.assign_coords(failed=(("sample", "period"), np.isnan(out).any(axis=2)))
    if "sample" in models.dims:
        return da.assign_coords(sample=models["sample"].values)
    return da.isel(sample=0)


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
