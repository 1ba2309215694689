"""Figures of models, statistics and dispersion curves.

Every function takes data and an optional ``ax``, draws, and returns the axes;
none calls ``show`` or ``savefig`` (notebooks save figures). Depth axes point
downward and every axis states its units.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

__all__ = [
    "PRIOR_COLORS",
    "WAVE_COLORS",
    "PRIOR_LINESTYLES",
    "use_style",
    "depth_axis",
    "mark_half_space",
    "log_axis",
    "log_period_axis",
    "HALF_SPACE_TOP",
    "plot_profiles",
    "plot_depth_band",
    "plot_curve_band",
    "histogram",
    "plot_kernel_image",
    "plot_kernel_lines",
    "plot_sweep",
    "map_axes",
]

#: One colour per prior and per wave, used consistently across the book.
PRIOR_COLORS = {"weak": "#1b9e77", "strong": "#d95f02", "strong-corrected": "#7570b3",
                "strong-decorrelated": "#e7298a", "strong-decorrelated-vp-density": "#66a61e"}
#: Line styles per prior: the corrected strong prior is dashed so that it stays
#: visible where it coincides with the faithful one.
PRIOR_LINESTYLES = {"weak": "-", "strong": "-", "strong-corrected": "--",
                    "strong-decorrelated": "-.", "strong-decorrelated-vp-density": ":"}
WAVE_COLORS = {"rayleigh": "#2166ac", "love": "#b2182b"}

_LABELS = {
    "velocity_s": "$V_S$ (km/s)",
    "velocity_p": "$V_P$ (km/s)",
    "density": r"Density (g/cm$^3$)",
    "vpvs": "$V_P/V_S$",
    "phase_velocity": "Phase velocity (km/s)",
}


def use_style():
    """Apply the book's matplotlib style (legible at page width)."""
    plt.rcParams.update({
        "figure.dpi": 110,
        "savefig.dpi": 150,
        "savefig.bbox": "tight",
        "font.size": 10,
        "axes.titlesize": 10,
        "axes.labelsize": 10,
        "legend.fontsize": 8,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "axes.spines.top": False,
        "axes.spines.right": False,
    })


#: Top of the half-space on the paper's grid, km: the last of its 256 nodes.
HALF_SPACE_TOP = 127.5


def depth_axis(ax, max_depth=None, half_space=HALF_SPACE_TOP, label_half_space=True):
    """Label ``ax``'s y axis as depth in km, increasing downward; return ``ax``.

    The half-space top (``half_space`` km; ``None`` for none) is marked on
    every depth axis: as a dotted line where the axis reaches it, and as a
    note where the axis stops above it (:func:`mark_half_space`).
    """
    ax.set_ylabel("Depth (km)")
    bottom = ax.get_ylim()[1] if max_depth is None else max_depth
    ax.set_ylim(bottom, 0.0)
    if half_space is not None:
        mark_half_space(ax, half_space, label=label_half_space)
    return ax


def _label(name):
    return _LABELS.get(name, name)


def plot_profiles(models, variable="velocity_s", n=5, ax=None, max_depth=None,
                  half_space=HALF_SPACE_TOP, **kwargs):
    """Draw the first ``n`` profiles of a model variable against depth.

    Parameters
    ----------
    models : xarray.Dataset or xarray.DataArray
        Models with dims ``(sample, depth)``; a DataArray is drawn as is.
    variable : str
        Variable to draw (ignored for a DataArray); ``"vpvs"`` draws Vp/Vs.
    n : int
        Number of profiles.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure otherwise.
    max_depth : float, optional
        Depth (km) of the bottom of the axis.
    half_space : float or None
        Half-space top (km) to mark (:func:`depth_axis`).
    **kwargs
        Passed to :meth:`matplotlib.axes.Axes.step`.

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = plt.subplots()[1] if ax is None else ax
    da = _variable(models, variable)
    depth = da["depth"].values
    for i in range(min(n, da.sizes.get("sample", 1))):
        values = da.isel(sample=i).values if "sample" in da.dims else da.values
        # Layers are constant between their tops: draw them as steps.
        ax.step(values, depth, where="post", lw=1.0, **kwargs)
    ax.set_xlabel(_label(variable))
    return depth_axis(ax, max_depth if max_depth is not None else depth[-1],
                      half_space=half_space)


def _variable(models, variable):
    if hasattr(models, "data_vars"):
        if variable == "vpvs":
            da = models["velocity_p"] / models["velocity_s"]
            return da.rename("vpvs")
        return models[variable]
    return models


def plot_depth_band(models, variable="velocity_s", ax=None, color=None, label=None,
                    quantiles=(0.05, 0.95), max_depth=None, linestyle="-",
                    half_space=HALF_SPACE_TOP):
    """Median (solid), mean (dotted) and a quantile band of a variable against depth.

    Parameters
    ----------
    models : xarray.Dataset
        Models with dims ``(sample, depth)``.
    variable : str
        Variable to summarise; ``"vpvs"`` for Vp/Vs.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on.
    color, label : str, optional
        Line colour and legend label.
    quantiles : tuple of float
        Lower and upper quantiles of the band.
    max_depth : float, optional
        Depth (km) of the bottom of the axis.
    linestyle : str
        Style of the median line.
    half_space : float or None
        Half-space top (km) to mark (:func:`depth_axis`).

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = plt.subplots()[1] if ax is None else ax
    da = _variable(models, variable)
    q = da.quantile([quantiles[0], 0.5, quantiles[1]], dim="sample")
    depth = da["depth"].values
    ax.fill_betweenx(depth, q.values[0], q.values[2], color=color, alpha=0.2, lw=0)
    ax.plot(q.values[1], depth, color=color, lw=1.5, label=label, ls=linestyle)
    # The mean, thin and dotted: it departs from the median where the prior is skewed.
    ax.plot(da.mean("sample").values, depth, color=color, lw=0.8, ls=":")
    ax.set_xlabel(_label(variable))
    return depth_axis(ax, max_depth if max_depth is not None else depth[-1],
                      half_space=half_space)


def plot_curve_band(curves, ax=None, color=None, label=None, quantiles=(0.05, 0.95),
                    n_examples=0, linestyle="-"):
    """Median and quantile band of dispersion curves against period.

    Parameters
    ----------
    curves : xarray.DataArray
        Velocities (km/s) with dims ``(sample, period)``; NaNs are skipped.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on.
    color, label : str, optional
        Colour and legend label.
    quantiles : tuple of float
        Lower and upper quantiles of the band.
    n_examples : int
        Number of individual curves drawn thinly on top.
    linestyle : str
        Style of the median line.
    half_space : float or None
        Half-space top (km) to mark (:func:`depth_axis`).

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = plt.subplots()[1] if ax is None else ax
    period = curves["period"].values
    q = curves.quantile([quantiles[0], 0.5, quantiles[1]], dim="sample", skipna=True)
    ax.fill_between(period, q.values[0], q.values[2], color=color, alpha=0.2, lw=0)
    ax.plot(period, q.values[1], color=color, lw=1.5, label=label, ls=linestyle)
    for i in range(min(n_examples, curves.sizes["sample"])):
        ax.plot(period, curves.isel(sample=i).values, color=color, lw=0.6, alpha=0.6)
    ax.set_xlabel("Period (s)")
    ax.set_ylabel(_label("phase_velocity"))
    ax.set_xlim(period[0], period[-1])
    return ax


def histogram(values, ax=None, bins=30, color=None, label=None, xlabel=None):
    """Histogram of finite values; returns the axes."""
    ax = plt.subplots()[1] if ax is None else ax
    values = np.asarray(values, dtype=float)
    ax.hist(values[np.isfinite(values)], bins=bins, color=color, alpha=0.6, label=label)
    if xlabel:
        ax.set_xlabel(xlabel)
    ax.set_ylabel("Number of models")
    return ax


def mark_half_space(ax, depth=127.5, label=True):
    """Draw the half-space top (km) as a dashed line on a depth axis; return ``ax``.

    Below the axis's bottom, the line is left out and the note says where it is.
    """
    bottom = max(ax.get_ylim())
    if depth <= bottom:
        ax.axhline(depth, color="0.3", ls=":", lw=0.8)
        if label:
            ax.annotate(f"half-space top, {depth:g} km", (0.98, depth), xycoords=("axes fraction",
                        "data"), ha="right", va="bottom", fontsize=6, color="0.3")
    elif label:
        ax.annotate(f"half-space top at {depth:g} km, below this axis", (0.98, 0.01),
                    xycoords="axes fraction", ha="right", va="bottom", fontsize=6, color="0.3")
    return ax


#: Period ticks (s) of every log period axis in the book.
PERIOD_TICKS = (2, 5, 10, 20, 50)
#: Default ticks of a log axis: 1-2-5 steps from 0.001 to 5000.
ONE_TWO_FIVE = tuple(float(f"{m}e{e}") for e in range(-3, 4) for m in (1, 2, 5))


def log_axis(ax, ticks=ONE_TWO_FIVE, which="x"):
    """Put one axis of ``ax`` on a log scale labelled in plain numbers at ``ticks``.

    Matplotlib labels a log axis that spans less than a decade at its minor ticks
    in the form 3 x 10^0, which overprints the major labels; here only ``ticks``
    (those inside the axis's range) are labelled, as ``%g``. Returns ``ax``.
    """
    from matplotlib.ticker import FixedLocator, FormatStrFormatter, NullFormatter

    if which not in ("x", "y"):
        raise ValueError(f"which must be 'x' or 'y', got {which!r}.")
    axis = ax.xaxis if which == "x" else ax.yaxis
    (ax.set_xscale if which == "x" else ax.set_yscale)("log")
    axis.set_major_locator(FixedLocator(np.asarray(ticks, dtype=float)))
    axis.set_major_formatter(FormatStrFormatter("%g"))
    axis.set_minor_formatter(NullFormatter())
    return ax


def log_period_axis(ax, periods=None):
    """A log period axis (s) ticked at :data:`PERIOD_TICKS` within ``periods``' range."""
    ticks = PERIOD_TICKS
    if periods is not None:
        periods = np.asarray(periods, dtype=float)
        ticks = [t for t in PERIOD_TICKS if periods.min() <= t <= periods.max()]
    ax.set_xlabel("Period (s)")
    return log_axis(ax, ticks)


def plot_kernel_image(kernel, ax=None, max_depth=110.0, cmap="RdBu_r", colorbar=True,
                      label="normalised kernel", quantile=1.0, limit=None, log_period=True):
    """Depth-by-period image of a kernel, symmetric colour scale, depth downward.

    Parameters
    ----------
    kernel : xarray.DataArray
        Kernel with dims ``(period, depth)``.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on.
    max_depth : float
        Depth (km) of the bottom of the axis.
    cmap : str
        Diverging colour map.
    colorbar : bool
        Draw a colour bar labelled ``label``.
    label : str
        Colour-bar label.
    quantile : float
        The colour scale spans +-this quantile of the absolute values (below 1,
        a few extreme values saturate, marked by the colour bar's arrows, so
        that the rest stays visible).
    limit : float, optional
        A fixed colour scale, +-limit, so that panels compared share one;
        values beyond it saturate.
    log_period : bool
        Logarithmic period axis (kernels change fastest at short periods).

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = plt.subplots()[1] if ax is None else ax
    kernel = kernel.transpose("depth", "period").sel(depth=slice(None, max_depth))
    largest = float(np.nanmax(np.abs(kernel.values)))
    if limit is None:
        limit = float(np.nanquantile(np.abs(kernel.values), quantile)) or 1.0
    mesh = ax.pcolormesh(kernel["period"].values, kernel["depth"].values, kernel.values,
                         cmap=cmap, vmin=-limit, vmax=limit, shading="nearest")
    if colorbar:
        ax.figure.colorbar(mesh, ax=ax, label=label, pad=0.02,
                           extend="both" if largest > limit * (1 + 1e-9) else "neither")
    if log_period:
        log_period_axis(ax, kernel["period"].values)
    else:
        ax.set_xlabel("Period (s)")
    return depth_axis(ax, max_depth)


def plot_kernel_lines(kernel, periods, ax=None, max_depth=110.0, linestyle="-", label=None):
    """Kernels at selected periods as lines against depth (colour = period).

    Parameters
    ----------
    kernel : xarray.DataArray
        Kernel with dims ``(period, depth)``.
    periods : sequence of float
        Periods (s) to draw (nearest available).
    ax : matplotlib.axes.Axes, optional
        Axes to draw on.
    max_depth : float
        Depth (km) of the bottom of the axis.
    linestyle : str
        Line style (use one per method or wave).
    label : str, optional
        Suffix of the legend labels.

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = plt.subplots()[1] if ax is None else ax
    colors = plt.cm.viridis(np.linspace(0.0, 0.9, len(periods)))
    for color, period in zip(colors, periods, strict=True):
        line = kernel.sel(period=period, method="nearest")
        text = f"{float(line.period):g} s" + (f" {label}" if label else "")
        ax.plot(line.values, line["depth"].values, color=color, ls=linestyle, label=text)
    ax.axvline(0.0, color="k", lw=0.5)
    ax.set_xlabel("Normalised kernel")
    return depth_axis(ax, max_depth)


#: Sweep metrics plotted by :func:`plot_sweep`: interval prefix, axis label and the
#: factor from the table's unit to the axis's (directional errors in per cent, as in
#: the chapters).
SWEEP_METRICS = {
    "median_cosine": ("median_ci", "Median cosine with theory", 1.0),
    "cosine_skill": ("cosine_skill", "Cosine skill over the prior-median kernel", 1.0),
    "raw_skill": ("raw_skill", "Raw-kernel skill over the prior-median kernel", 1.0),
    "directional_error": ("directional_error", "Median error of J dm (%)", 100.0),
}


def plot_sweep(table, xlabel, axes=None, metric="median_cosine", legend=True):
    """A sweep metric per period bin against the swept value, one panel per wave.

    Parameters
    ----------
    table : pandas.DataFrame
        Tidy sweep results (``tools/sweep.py``): columns ``value``, ``wave``,
        ``period_bin``, the metric and its interval (``<prefix>_low``, ``<prefix>_high``).
    xlabel : str
        Name and units of the swept value.
    axes : sequence of two matplotlib.axes.Axes, optional
    metric : str
        One of :data:`SWEEP_METRICS`.
    legend : bool
        Draw the period-bin legend on the first panel (off where the caller draws one
        legend for several rows).

    Returns
    -------
    sequence of matplotlib.axes.Axes
    """
    from .config import WAVES
    from .metrics import period_bin_labels

    if metric not in SWEEP_METRICS:
        raise ValueError(f"metric must be one of {list(SWEEP_METRICS)}, got {metric!r}.")
    prefix, ylabel, scale = SWEEP_METRICS[metric]
    if axes is None:
        axes = plt.subplots(1, 2, figsize=(10, 3.8))[1]
    # one scale for both waves, set before plotting so that it spans both panels' data
    if axes[1].get_shared_y_axes().get_siblings(axes[1]) == [axes[1]]:
        axes[1].sharey(axes[0])
    colors = plt.cm.viridis(np.linspace(0.0, 0.9, len(period_bin_labels())))
    values = np.sort(table["value"].unique())
    for ax, wave in zip(axes, WAVES, strict=True):
        part = table[table["wave"] == wave]
        for color, label in zip(colors, period_bin_labels(), strict=True):
            line = part[part["period_bin"] == label].sort_values("value")
            if line.empty:
                continue
            centre = scale * line[metric]
            ax.errorbar(line["value"], centre,
                        yerr=[centre - scale * line[f"{prefix}_low"],
                              scale * line[f"{prefix}_high"] - centre],
                        marker="o", ms=3, capsize=2, color=color, label=f"{label} s")
        log_axis(ax, values)
        ax.set_xlabel(xlabel)
        ax.set_title(f"{wave.capitalize()} waves", fontsize=9)
    if metric == "directional_error":
        for ax in axes:
            log_axis(ax, which="y")
    axes[0].set_ylabel(ylabel)
    if legend:
        axes[0].legend(fontsize=7, title="period bin", title_fontsize=7)
    return axes


def map_axes(ax, ocean=None):
    """Prepare a longitude-latitude map: global limits, equal aspect, labels, outlines.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
    ocean : xarray.DataArray of bool, optional
        Ocean mask on ``(latitude, longitude)`` in degrees (for example
        ``kernels.earth.crust1_grid().ocean``); its edge is drawn as the coastline.

    Returns
    -------
    matplotlib.axes.Axes
    """
    if ocean is not None:
        ax.contour(ocean.longitude, ocean.latitude, ocean.astype(float), levels=[0.5],
                   colors="0.55", linewidths=0.6, zorder=0)
    ax.set_xlim(-180, 180)
    ax.set_ylim(-90, 90)
    ax.set_aspect("equal")
    ax.set_xticks(range(-180, 181, 60))
    ax.set_yticks(range(-90, 91, 30))
    ax.set_xlabel("Longitude (degrees)")
    ax.set_ylabel("Latitude (degrees)")
    return ax
