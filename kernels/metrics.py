"""Agreement metrics between kernels (labelled, NaN-aware), skill scores and intervals.

Each metric reduces over one dim (``depth`` by default) and keeps the others,
so it applies alike to one kernel, a period sweep or a batch of models.

Smooth, one-signed kernels make shape metrics such as the cosine saturate: a
kernel that knows nothing about the particular model already scores high. So
every agreement number is set beside the number a baseline gets, through a
skill score (:func:`skill`, :func:`cosine_skill`), and the raw kernels are also
compared with their amplitude kept (:func:`raw_kernel_error`).

Intervals resample whole models (a cluster bootstrap, :func:`binned_statistics`):
the cells of one model are strongly correlated across neighbouring periods, and
resampling pooled (model, period) cells would give intervals far too narrow.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from .config import PERIOD_BINS

__all__ = ["cosine_similarity", "relative_l2", "pearson", "depth_of_peak", "kernel_agreement",
           "period_bin_labels", "assign_period_bins", "dispersion_errors", "curve_rmse",
           "errors_by_period_bin", "summarise_by_period_bin", "align_on_depth",
           "raw_kernel_error", "skill", "cosine_skill", "depth_shares", "cluster_bootstrap",
           "binned_statistics", "binned_skill", "paired_difference_by_period_bin",
           "relative_l2_by_period_bin", "error_concentration", "model_rmse",
           "interval_text", "interval_columns"]


def cosine_similarity(a, b, dim="depth"):
    """Cosine of the angle between ``a`` and ``b`` along ``dim``.

    Parameters
    ----------
    a, b : xarray.DataArray
        Kernels on the same coordinates.
    dim : str
        Dimension reduced.

    Returns
    -------
    xarray.DataArray
        Values in [-1, 1]; NaN where either input has a NaN or a zero norm.

    Examples
    --------
    >>> import xarray as xr
    >>> a = xr.DataArray([1.0, 0.0], dims="depth")
    >>> float(cosine_similarity(a, 2 * a)), float(cosine_similarity(a, a[::-1]))
    (1.0, 0.0)
    """
    a, b = xr.align(a, b, join="exact")
    dot = (a * b).sum(dim, skipna=False)
    norm = np.sqrt((a * a).sum(dim, skipna=False) * (b * b).sum(dim, skipna=False))
    out = (dot / norm.where(norm > 0)).rename("cosine_similarity")
    out.attrs = {"units": "1", "long_name": "cosine similarity"}
    return out


def relative_l2(estimate, reference, dim="depth"):
    """``||estimate - reference|| / ||reference||`` along ``dim``.

    Examples
    --------
    >>> import xarray as xr
    >>> r = xr.DataArray([3.0, 4.0], dims="depth")
    >>> round(float(relative_l2(r * 1.01, r)), 12)
    0.01
    """
    estimate, reference = xr.align(estimate, reference, join="exact")
    error = np.sqrt(((estimate - reference) ** 2).sum(dim, skipna=False))
    norm = np.sqrt((reference**2).sum(dim, skipna=False))
    out = (error / norm.where(norm > 0)).rename("relative_l2")
    out.attrs = {"units": "1", "long_name": "relative L2 difference"}
    return out


def period_bin_labels(bins=PERIOD_BINS):
    """Labels such as ``"[2, 5)"``; the last bin is closed, ``"[45, 60]"``.

    Examples
    --------
    >>> period_bin_labels()[0], period_bin_labels()[-1]
    ('[2, 5)', '[45, 60]')
    """
    labels = [f"[{lo:g}, {hi:g})" for lo, hi in bins]
    labels[-1] = labels[-1][:-1] + "]"
    return labels


def assign_period_bins(da, bins=PERIOD_BINS):
    """Add a ``period_bin`` coordinate (labels of :func:`period_bin_labels`) on ``period``.

    Periods outside every bin get an empty label.
    """
    period = da["period"].values
    labels = np.full(period.shape, "", dtype=object)
    for (lo, hi), label in zip(bins, period_bin_labels(bins), strict=True):
        last = (lo, hi) == tuple(bins[-1])
        inside = (period >= lo) & ((period <= hi) if last else (period < hi))
        labels[inside] = label
    return da.assign_coords(period_bin=("period", labels.astype(str)))


def dispersion_errors(predicted, true):
    """Per-(wave, period) RMSE and MAE (km/s) and MAPE (%) over samples.

    Parameters
    ----------
    predicted, true : xarray.DataArray
        Phase velocities (km/s) on ``(sample, wave, period)``.

    Returns
    -------
    xarray.Dataset
        ``rmse``, ``mae`` (km/s) and ``mape`` (%) on ``(wave, period)``.
    """
    error = predicted - true
    return xr.Dataset({
        "rmse": np.sqrt((error**2).mean("sample")).assign_attrs(units="km/s"),
        "mae": abs(error).mean("sample").assign_attrs(units="km/s"),
        "mape": (100 * abs(error / true)).mean("sample").assign_attrs(units="%"),
    })


def curve_rmse(predicted, true, n_boot=1000, seed=0, level=0.95):
    """RMSE of phase velocities per wave, over models and periods, with an interval.

    Cells where either side is NaN (no trapped root, a failed model) are left out. The
    interval resamples whole models (a model's periods are correlated).

    Parameters
    ----------
    predicted, true : xarray.DataArray
        Phase velocities (km/s) on ``(sample, wave, period)``, with the same
        coordinates.
    n_boot, seed, level
        Bootstrap resamples, seed and coverage (:func:`cluster_bootstrap`).

    Raises
    ------
    ValueError
        If the two arrays' coordinates differ.

    Returns
    -------
    pandas.DataFrame
        Index ``wave``; columns ``rmse``, ``rmse_low``, ``rmse_high`` (km/s) and
        ``cells`` (cells used).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> true = xr.DataArray(np.ones((50, 1, 3)), dims=("sample", "wave", "period"),
    ...                     coords={"wave": ["love"]})
    >>> table = curve_rmse(true + 0.1, true, n_boot=100)
    >>> round(float(table.loc["love", "rmse"]), 6), int(table.loc["love", "cells"])
    (0.1, 150)
    """
    import pandas as pd

    # Exact alignment: mismatched samples or periods are an error, not silently dropped.
    predicted, true = xr.align(predicted, true, join="exact")
    squared = ((predicted - true) ** 2).transpose("sample", "wave", ...)

    def statistic(resampled):
        return np.sqrt(np.nanmean(resampled.reshape(resampled.shape[0], -1), axis=1))

    rows = {}
    for wave in squared.wave.values:
        cells = squared.sel(wave=wave).values.reshape(squared.sizes["sample"], -1)
        low, high = cluster_bootstrap(cells, statistic, n_boot=n_boot, seed=seed, level=level)
        rows[str(wave)] = {"rmse": float(np.sqrt(np.nanmean(cells))), "rmse_low": low,
                           "rmse_high": high, "cells": int(np.isfinite(cells).sum())}
    table = pd.DataFrame(rows).T
    table.index.name = "wave"
    return table.astype({"cells": int})


def model_rmse(predicted, true):
    """Each model's RMSE (km/s) over its periods and waves, NaN cells left out.

    Parameters
    ----------
    predicted, true : xarray.DataArray
        Phase velocities (km/s) on ``(sample, ...)`` with the same coordinates.

    Returns
    -------
    xarray.DataArray
        On ``sample``; NaN for a model without a finite cell.
    """
    predicted, true = xr.align(predicted, true, join="exact")
    other = [dim for dim in predicted.dims if dim != "sample"]
    return np.sqrt(((predicted - true) ** 2).mean(other, skipna=True)).rename("rmse")


def error_concentration(predicted, true, worst=0.01):
    """How much of a surrogate's curve error sits in its worst models.

    An RMSE over models and periods weights large errors quadratically, so a few
    models with near-discontinuous curves (a very slow surface layer over rock
    makes the fundamental mode climb from the layer's velocity to the rock's
    within a few periods) can decide it. This separates them from the rest.

    Parameters
    ----------
    predicted, true : xarray.DataArray
        Phase velocities (km/s) on ``(sample, wave, period)`` with the same
        coordinates; NaN cells (no trapped root) are left out.
    worst : float
        Share of models counted as the worst (at least one model), in (0, 1).
        Models are ranked by their own RMSE (:func:`model_rmse`) over the
        row's cells.

    Returns
    -------
    pandas.DataFrame
        One row per wave and a row ``both`` (the waves pooled); columns ``rmse``
        (all models), ``rmse_rest`` (without the worst models), ``worst_share``
        (share of the summed squared error in the worst models),
        ``median_model_rmse`` (median of the models' own RMSEs, km/s),
        ``n_worst``, ``models``, and ``negative_cells`` (predicted phase
        velocities at or below 0 km/s, which no physical model has).

    Raises
    ------
    ValueError
        If ``worst`` is not in (0, 1) or the coordinates differ.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> true = xr.DataArray(np.full((100, 1, 2), 3.0), dims=("sample", "wave", "period"),
    ...                     coords={"wave": ["love"]})
    >>> predicted = true.copy()
    >>> predicted[0] += 1.0  # one model 1 km/s off at both periods
    >>> row = error_concentration(predicted, true).loc["love"]
    >>> float(row.worst_share), float(row.rmse_rest), float(row.rmse)
    (1.0, 0.0, 0.1)
    """
    import pandas as pd

    if not 0.0 < float(worst) < 1.0:
        raise ValueError(f"worst must be a share of models in (0, 1), got {worst!r}.")
    predicted, true = xr.align(predicted, true, join="exact")
    squared = ((predicted - true) ** 2).transpose("sample", "wave", ...)
    rows = {}
    for wave in [*map(str, squared.wave.values), "both"]:
        chosen = squared if wave == "both" else squared.sel(wave=wave)
        cells = chosen.values.reshape(squared.sizes["sample"], -1)
        counted = np.isfinite(cells)
        keep = counted.any(axis=1)
        cells, counted = cells[keep], counted[keep].sum(axis=1)
        per_model = np.nansum(cells, axis=1)
        n_worst = max(1, int(round(worst * per_model.size)))
        order = np.argsort(per_model / counted)[::-1]
        top, rest = order[:n_worst], order[n_worst:]
        total = per_model.sum()
        values = predicted if wave == "both" else predicted.sel(wave=wave)
        rows[wave] = {
            "rmse": float(np.sqrt(total / counted.sum())),
            "rmse_rest": float(np.sqrt(per_model[rest].sum() / counted[rest].sum())),
            "worst_share": float(per_model[top].sum() / total) if total > 0 else 0.0,
            "median_model_rmse": float(np.median(np.sqrt(per_model / counted))),
            "n_worst": n_worst, "models": int(per_model.size),
            "negative_cells": int((values.values <= 0).sum()),
        }
    table = pd.DataFrame(rows).T
    table.index.name = "wave"
    return table.astype({"n_worst": int, "models": int, "negative_cells": int})


def errors_by_period_bin(predicted, true, bins=PERIOD_BINS):
    """RMSE, MAE (km/s) and MAPE (%) per wave and period bin, pooled over samples.

    Returns
    -------
    pandas.DataFrame
        Index ``(wave, period_bin)`` in bin order; columns ``rmse``, ``mae``,
        ``mape``, ``count``.
    """
    import pandas as pd

    error = assign_period_bins(predicted - true, bins)
    relative = assign_period_bins(abs((predicted - true) / true), bins)
    rows = []
    for wave in error["wave"].values:
        for label in period_bin_labels(bins):
            e = error.sel(wave=wave).where(error["period_bin"] == label, drop=True)
            r = relative.sel(wave=wave).where(relative["period_bin"] == label, drop=True)
            rows.append({"wave": str(wave), "period_bin": label,
                         "rmse": float(np.sqrt((e**2).mean())), "mae": float(abs(e).mean()),
                         "mape": float(100 * r.mean()), "count": int(e.notnull().sum())})
    return pd.DataFrame(rows).set_index(["wave", "period_bin"])


def pearson(a, b, dim="depth"):
    """Pearson correlation of ``a`` and ``b`` along ``dim`` (NaN if either is constant).

    Examples
    --------
    >>> import xarray as xr
    >>> a = xr.DataArray([1.0, 2.0, 3.0], dims="depth")
    >>> round(float(pearson(a, 2 * a + 1)), 12), round(float(pearson(a, -a)), 12)
    (1.0, -1.0)
    """
    a, b = xr.align(a, b, join="exact")
    return cosine_similarity(a - a.mean(dim), b - b.mean(dim), dim).rename("pearson")


def depth_of_peak(kernel, dim="depth"):
    """Depth (km) of the largest absolute value along ``dim``; NaN where the kernel is.

    Examples
    --------
    >>> import xarray as xr
    >>> k = xr.DataArray([0.1, -0.5, 0.2], dims="depth", coords={"depth": [0.0, 1.0, 2.0]})
    >>> float(depth_of_peak(k))
    1.0
    """
    index = abs(kernel).fillna(-1.0).argmax(dim)
    return kernel[dim].isel({dim: index}).drop_vars(dim).where(kernel.notnull().all(dim))


def kernel_agreement(learned, theory, dim="depth"):
    """Agreement metrics of two display-form kernels along depth.

    Parameters
    ----------
    learned, theory : xarray.DataArray
        Kernels in display form (unit sum of absolute values per period).
    dim : str
        The depth dim (km coordinate).

    Returns
    -------
    xarray.Dataset
        ``cosine``, ``pearson``, ``rmse`` and ``mae`` (of the normalised
        kernels), ``peak_depth_error`` (km; depth of the largest absolute
        value, learned minus theory) and ``centroid_depth_error`` (km; centroid
        of the absolute kernel, learned minus theory), on the remaining dims.
    """
    learned, theory = xr.align(learned, theory, join="exact")
    depth = learned[dim]
    peak = depth_of_peak

    def centroid(k):
        return (abs(k) * depth).sum(dim, skipna=False) / abs(k).sum(dim, skipna=False)

    difference = learned - theory
    out = xr.Dataset({
        "cosine": cosine_similarity(learned, theory, dim),
        "pearson": pearson(learned, theory, dim),
        "rmse": np.sqrt((difference**2).mean(dim, skipna=False)),
        "mae": abs(difference).mean(dim, skipna=False),
        "peak_depth_error": peak(learned) - peak(theory),
        "centroid_depth_error": centroid(learned) - centroid(theory),
    })
    for name in ("peak_depth_error", "centroid_depth_error"):
        out[name].attrs["units"] = "km"
    return out


def summarise_by_period_bin(values, bins=PERIOD_BINS, n_boot=1000, seed=0, cluster="sample"):
    """Mean, sd, median (with a cluster-bootstrap 95 % interval), 16th/84th percentiles, count.

    Parameters
    ----------
    values : xarray.DataArray
        A metric with a ``period`` dim (and ``wave``); every value in a bin
        (models and periods) is pooled for the statistics.
    bins : sequence of (float, float)
        Period bins (s).
    n_boot : int
        Bootstrap resamples of the median.
    seed : int
        Seed of the bootstrap.
    cluster : str or None
        The dim whose entries are resampled whole (models): all the periods of
        a resampled model come with it. None resamples cells as if they were
        independent (too narrow for correlated cells; for comparison only).

    Returns
    -------
    pandas.DataFrame
        Index ``(wave, period_bin)``.
    """
    import pandas as pd

    values = assign_period_bins(values, bins)
    waves = values["wave"].values if "wave" in values.dims else [None]
    rows = []
    for wave in waves:
        v = values.sel(wave=wave) if wave is not None else values
        for label in period_bin_labels(bins):
            block = _bin_block(v, label, cluster)
            pooled = block[np.isfinite(block)]
            row = {"wave": str(wave), "period_bin": label, "count": pooled.size}
            if pooled.size:
                low, high = cluster_bootstrap(block, _nanmedian, n_boot, seed)
                row.update(mean=pooled.mean(), sd=pooled.std(ddof=1) if pooled.size > 1 else 0,
                           median=np.median(pooled), median_ci_low=low, median_ci_high=high,
                           p16=np.quantile(pooled, 0.16), p84=np.quantile(pooled, 0.84))
            rows.append(row)
    return pd.DataFrame(rows).set_index(["wave", "period_bin"])


def _bin_block(values, label, cluster="sample"):
    """The values of one period bin as a (cluster, everything else) array.

    ``cluster=None`` makes every cell its own cluster (only right for
    independent cells); a named cluster dim that is missing is an error.
    """
    inside = values.isel(period=np.flatnonzero(values["period_bin"].values == label))
    if cluster is None:
        return inside.values.reshape(-1, 1)
    if cluster not in inside.dims:
        raise ValueError(f"the values have no {cluster!r} dim to resample (dims "
                         f"{list(inside.dims)}); pass cluster=None only for independent cells.")
    inside = inside.transpose(cluster, ...)
    return inside.values.reshape(inside.sizes[cluster], -1)


def _joint(a, b):
    """Two blocks with NaN wherever either is NaN (the same cells on both sides)."""
    missing = ~(np.isfinite(a) & np.isfinite(b))
    return np.where(missing, np.nan, a), np.where(missing, np.nan, b)


def _nanmedian(resampled):
    """Median over every axis but the first (NaN ignored; NaN if all are)."""
    flat = resampled.reshape(resampled.shape[0], -1)
    out = np.full(flat.shape[0], np.nan)
    finite = np.isfinite(flat).any(axis=1)
    out[finite] = np.nanmedian(flat[finite], axis=1)
    return out


def _block_median(block):
    """NaN-aware median of every cell of one block (NaN if none is finite)."""
    return float(_nanmedian(block[None])[0])


def cluster_bootstrap(values, statistic=None, n_boot=1000, seed=0, level=0.95):
    """Percentile interval of a statistic, resampling whole clusters (rows).

    Parameters
    ----------
    values : array_like or tuple of array_like, shape (n_cluster, ...)
        One row per cluster (a model), any number of cells per row. A tuple of
        arrays with the same number of rows is resampled with the same rows
        (a paired bootstrap).
    statistic : callable, optional
        Maps resampled arrays of shape ``(n_boot, n_cluster, ...)`` (one per
        input array) to ``n_boot`` values; the NaN-aware median of the cells
        by default.
    n_boot : int
        Resamples.
    seed : int
        Seed of the resampling.
    level : float
        Coverage of the interval.

    Returns
    -------
    tuple of float
        ``(low, high)``.

    Examples
    --------
    >>> import numpy as np
    >>> low, high = cluster_bootstrap(np.arange(100.0)[:, None], n_boot=200)
    >>> bool(low < 49.5 < high)
    True
    """
    arrays = ([np.asarray(a, dtype=float) for a in values] if isinstance(values, tuple)
              else [np.asarray(values, dtype=float)])
    n = arrays[0].shape[0]
    if any(a.shape[0] != n for a in arrays):
        raise ValueError(f"every array needs the same number of clusters (rows); got "
                         f"{[a.shape[0] for a in arrays]}.")
    if n == 0:
        return np.nan, np.nan
    statistic = statistic or _nanmedian
    rng = np.random.default_rng(seed)
    index = rng.integers(0, n, size=(n_boot, n))
    draws = []
    # In slices of resamples, so that memory stays bounded for large sets.
    step = max(1, int(2e7 // max(1, sum(a.size for a in arrays))))
    for start in range(0, n_boot, step):
        rows = index[start:start + step]
        draws.append(np.asarray(statistic(*[a[rows] for a in arrays]), dtype=float))
    draws = np.concatenate(draws)
    alpha = (1 - level) / 2
    return float(np.nanquantile(draws, alpha)), float(np.nanquantile(draws, 1 - alpha))


def raw_kernel_error(learned, theory, max_depth=None, dim="depth"):
    """Relative L2 error of raw kernels, amplitude kept, over ``0 <= depth <= max_depth``.

    No smoothing and no normalisation: a kernel of the right shape but the
    wrong amplitude is an error here, as it is for an inversion.

    Parameters
    ----------
    learned, theory : xarray.DataArray
        Raw kernels (e.g. dc/dVs per layer, (km/s)/(km/s)) on the same coordinates.
    max_depth : float, optional
        Deepest node kept (km); None keeps every node, the half-space's included.

    Returns
    -------
    xarray.DataArray
        ``||learned - theory|| / ||theory||`` on the remaining dims.

    Examples
    --------
    >>> import xarray as xr
    >>> k = xr.DataArray([1.0, 2.0, 2.0], dims="depth", coords={"depth": [0.0, 1.0, 2.0]})
    >>> round(float(raw_kernel_error(k * 1.1, k)), 12), float(raw_kernel_error(k, k, 1.0))
    (0.1, 0.0)
    """
    if max_depth is not None:
        learned = learned.sel({dim: slice(None, max_depth)})
        theory = theory.sel({dim: slice(None, max_depth)})
    out = relative_l2(learned, theory, dim).rename("raw_kernel_error")
    out.attrs = {"units": "1", "long_name": "relative L2 error of the raw kernel",
                 "max_depth": "all nodes" if max_depth is None else float(max_depth)}
    return out


def skill(error, baseline_error):
    """Skill against a baseline, ``1 - error / baseline_error``.

    1 is perfect, 0 is no better than the baseline, negative is worse. Apply
    it to medians over a bin (:func:`binned_skill`) rather than to single
    cells, whose ratios are heavy-tailed.

    Examples
    --------
    >>> skill(0.1, 0.4), skill(0.4, 0.4)
    (0.75, 0.0)
    """
    return 1 - error / baseline_error


def cosine_skill(cosine, baseline_cosine):
    """Skill of a cosine similarity, ``1 - (1 - cosine) / (1 - baseline_cosine)``.

    The cosine's distance from 1 is the error: a baseline at 0.96 and a method
    at 0.99 give a skill of 0.75.

    Examples
    --------
    >>> round(cosine_skill(0.99, 0.96), 12)
    0.75
    """
    return skill(1 - cosine, 1 - baseline_cosine)


def depth_shares(kernel, max_depth=110.0, dim="depth"):
    """Share of ``|kernel|`` in the half-space (last) node and below ``max_depth``.

    What the display form's cut at ``max_depth`` hides: the sensitivity below it
    (the half-space's included), and the half-space node alone.

    Parameters
    ----------
    kernel : xarray.DataArray
        Raw per-layer kernel (the last node is the half-space).

    Returns
    -------
    xarray.Dataset
        ``half_space`` and ``below_cut`` (fractions in [0, 1]) on the remaining dims.

    Examples
    --------
    >>> import xarray as xr
    >>> k = xr.DataArray([1.0, 1.0, 2.0], dims="depth", coords={"depth": [0.0, 1.0, 2.0]})
    >>> s = depth_shares(k, max_depth=0.5)
    >>> float(s.half_space), float(s.below_cut)
    (0.5, 0.75)
    """
    magnitude = abs(kernel)
    total = magnitude.sum(dim, skipna=False)
    total = total.where(total > 0)
    out = xr.Dataset({
        "half_space": magnitude.isel({dim: -1}, drop=True) / total,
        "below_cut": magnitude.where(kernel[dim] > max_depth, 0.0).sum(dim) / total,
    })
    out.half_space.attrs = {"units": "1", "long_name": "share of |kernel| in the half-space"}
    out.below_cut.attrs = {"units": "1",
                           "long_name": f"share of |kernel| below {max_depth:g} km"}
    return out


def binned_statistics(values, bins=PERIOD_BINS, n_boot=1000, seed=0, cluster="sample",
                      level=0.95):
    """Median of several metrics per wave and period bin, with cluster-bootstrap intervals.

    Parameters
    ----------
    values : dict of str to xarray.DataArray
        Metrics on ``(sample, wave, period)`` (any other dims are pooled).
    bins, n_boot, seed, cluster, level
        As for :func:`summarise_by_period_bin` and :func:`cluster_bootstrap`.

    Returns
    -------
    pandas.DataFrame
        Index ``(wave, period_bin)``; columns ``<name>`` (median), ``<name>_low``
        and ``<name>_high`` for each metric.
    """
    import pandas as pd

    rows = {}
    for name, da in values.items():
        da = assign_period_bins(da, bins)
        for wave in da["wave"].values:
            for label in period_bin_labels(bins):
                block = _bin_block(da.sel(wave=wave), label, cluster)
                row = rows.setdefault((str(wave), label), {})
                row[name] = _block_median(block)
                row[f"{name}_low"], row[f"{name}_high"] = cluster_bootstrap(
                    block, None, n_boot, seed, level)
    index = pd.MultiIndex.from_tuples(rows, names=["wave", "period_bin"])
    return pd.DataFrame(list(rows.values()), index=index)


def interval_text(value, low, high, fmt=".2f", scale=1.0):
    """Table cells ``"value [low, high]"``: one string for numbers, a list for sequences.

    ``fmt`` is a format spec (``"+.3f"``, say) and ``scale`` multiplies all three
    numbers (100 for per cent).
    """
    def cell(v, lo, hi):
        return f"{scale * v:{fmt}} [{scale * lo:{fmt}}, {scale * hi:{fmt}}]"

    if np.ndim(value) == 0:
        return cell(value, low, high)
    return [cell(*row) for row in zip(np.asarray(value), np.asarray(low), np.asarray(high),
                                      strict=True)]


def interval_columns(table, names, fmt=".2f", scale=1.0):
    """One ``"value [low, high]"`` column per name of ``table``.

    Reads the layout of :func:`binned_statistics` (columns ``<name>``, ``<name>_low``,
    ``<name>_high``); returns a DataFrame on ``table``'s index.
    """
    import pandas as pd

    return pd.DataFrame({name: interval_text(table[name], table[f"{name}_low"],
                                             table[f"{name}_high"], fmt, scale)
                         for name in names}, index=table.index)


def _paired_bins(a, b, bins, cluster):
    """``(wave, bin label, block a, block b)`` per wave and period bin, on the same cells.

    A metric without a dim of the other's (seeds, say) is repeated along it;
    cells finite on one side only are NaN on both.
    """
    a, b = xr.broadcast(*xr.align(a, b, join="exact"))
    a, b = assign_period_bins(a, bins), assign_period_bins(b, bins)
    for wave in a["wave"].values:
        for label in period_bin_labels(bins):
            yield (str(wave), label, *_joint(_bin_block(a.sel(wave=wave), label, cluster),
                                             _bin_block(b.sel(wave=wave), label, cluster)))


def _median_skill(method, baseline):
    return skill(_nanmedian(method), _nanmedian(baseline))


def binned_skill(method, baseline, kind="error", bins=PERIOD_BINS, n_boot=1000, seed=0,
                 cluster="sample", level=0.95):
    """Skill of a method over a baseline per wave and period bin, from the bins' medians.

    ``kind="error"``: ``1 - median(error) / median(baseline error)``;
    ``kind="cosine"``: ``1 - median(1 - cos) / median(1 - cos_baseline)``, the
    same thing with ``1 - cos`` as the error, over the cells where both are
    finite. The interval is a paired cluster bootstrap: the same resampled
    models for method and baseline.

    Parameters
    ----------
    method, baseline : xarray.DataArray
        The metric of the method and of the baseline on the same
        ``(sample, wave, period)`` cells.
    kind : {"error", "cosine"}
        What the metric is.

    Returns
    -------
    pandas.DataFrame
        Index ``(wave, period_bin)``; columns ``skill``, ``skill_low``,
        ``skill_high``, ``method`` and ``baseline`` (the bins' medians of the metric).

    Raises
    ------
    ValueError
        For an unknown kind.
    """
    import pandas as pd

    if kind not in ("error", "cosine"):
        raise ValueError(f"kind must be 'error' or 'cosine', got {kind!r}.")
    if kind == "cosine":
        method, baseline = 1 - method, 1 - baseline
    rows = []
    for wave, label, a, b in _paired_bins(method, baseline, bins, cluster):
        m, base = _block_median(a), _block_median(b)
        value = skill(m, base)
        low, high = cluster_bootstrap((a, b), _median_skill, n_boot, seed, level)
        if kind == "cosine":  # report the medians of the cosines themselves
            m, base = 1 - m, 1 - base
        rows.append({"wave": wave, "period_bin": label, "skill": value, "skill_low": low,
                     "skill_high": high, "method": m, "baseline": base})
    return pd.DataFrame(rows).set_index(["wave", "period_bin"])


def relative_l2_by_period_bin(estimate, reference, bins=PERIOD_BINS, n_boot=1000, seed=0,
                              level=0.95):
    """Per model, ``||estimate - reference|| / ||reference||`` over each bin's periods.

    No cell is left out for being small: where the reference is near zero at
    some periods, the estimate's error there still counts against it.

    Parameters
    ----------
    estimate, reference : xarray.DataArray
        On ``(sample, wave, period)`` (e.g. directional derivatives, km/s).

    Returns
    -------
    pandas.DataFrame
        Index ``(wave, period_bin)``; columns ``median`` (over models), ``low``
        and ``high`` (cluster-bootstrap interval over models).
    """
    import pandas as pd

    estimate, reference = xr.align(estimate, reference, join="exact")
    missing = estimate.isnull() | reference.isnull()
    estimate, reference = estimate.where(~missing, 0.0), reference.where(~missing, 0.0)
    error = assign_period_bins((estimate - reference) ** 2, bins)
    norm = assign_period_bins(reference**2, bins)
    rows = []
    for wave in error["wave"].values:
        for label in period_bin_labels(bins):
            e = _bin_block(error.sel(wave=wave), label).sum(axis=1)
            n = _bin_block(norm.sel(wave=wave), label).sum(axis=1)
            per_model = np.sqrt(e / np.where(n > 0, n, np.nan))[:, None]
            low, high = cluster_bootstrap(per_model, None, n_boot, seed, level)
            rows.append({"wave": str(wave), "period_bin": label,
                         "median": float(np.nanmedian(per_model)), "low": low, "high": high})
    return pd.DataFrame(rows).set_index(["wave", "period_bin"])


def paired_difference_by_period_bin(a, b, bins=PERIOD_BINS, n_boot=1000, seed=0,
                                    cluster="sample", level=0.95):
    """Difference of the bins' medians, ``median(a) - median(b)``, on the same models.

    Both medians are over the cells where both are finite. The interval is a
    paired cluster bootstrap (the same resampled models on both sides), which
    is what a comparison of two surrogates on one test set needs: most of the
    model-to-model spread is common to both and cancels.

    Returns
    -------
    pandas.DataFrame
        Index ``(wave, period_bin)``; columns ``a``, ``b``, ``difference``,
        ``difference_low``, ``difference_high``.
    """
    import pandas as pd

    def statistic(x, y):
        return _nanmedian(x) - _nanmedian(y)

    rows = []
    for wave, label, x, y in _paired_bins(a, b, bins, cluster):
        mx, my = _block_median(x), _block_median(y)
        low, high = cluster_bootstrap((x, y), statistic, n_boot, seed, level)
        rows.append({"wave": wave, "period_bin": label, "a": mx, "b": my,
                     "difference": mx - my, "difference_low": low, "difference_high": high})
    return pd.DataFrame(rows).set_index(["wave", "period_bin"])


def align_on_depth(da, reference, relative_depth):
    """Resample each sample's profile on depth relative to its own reference depth.

    Used to average kernels of models aligned on a feature (a Moho, an LVZ)
    that sits at a different depth in each model.

    Parameters
    ----------
    da : xarray.DataArray
        With ``sample`` and ``depth`` dims (any others).
    reference : xarray.DataArray
        Reference depth (km) per sample; NaN drops the sample.
    relative_depth : array_like
        Depths relative to the reference (km, positive below it).

    Returns
    -------
    xarray.DataArray
        ``depth`` replaced by ``relative_depth``; NaN outside each profile.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> da = xr.DataArray([[0.0, 1.0, 2.0, 3.0]], dims=("sample", "depth"),
    ...                   coords={"depth": [0.0, 1.0, 2.0, 3.0]})
    >>> ref = xr.DataArray([2.0], dims="sample")
    >>> align_on_depth(da, ref, [-1.0, 0.0, 1.0, 2.0]).values.tolist()
    [[1.0, 2.0, 3.0, nan]]
    """
    relative_depth = np.asarray(relative_depth, dtype=float)
    depth = da["depth"].values
    moved = da.transpose("sample", ..., "depth")
    values = moved.values
    refs = np.asarray(reference.values, dtype=float)
    if refs.shape != (da.sizes["sample"],):
        raise ValueError(f"reference must hold one depth per sample ({da.sizes['sample']}), "
                         f"got shape {refs.shape}.")
    out = np.full(values.shape[:-1] + (relative_depth.size,), np.nan)
    for i, ref in enumerate(refs):
        if not np.isfinite(ref):
            continue
        target = ref + relative_depth
        flat = values[i].reshape(-1, depth.size)
        inside = (target >= depth[0]) & (target <= depth[-1])
        rows = [np.interp(target[inside], depth, row) for row in flat]
        out[i][..., inside] = np.reshape(rows, values[i].shape[:-1] + (int(inside.sum()),))
    coords = {name: c for name, c in moved.coords.items() if "depth" not in c.dims}
    return xr.DataArray(out, dims=moved.dims[:-1] + ("relative_depth",),
                        coords={**coords, "relative_depth": ("relative_depth", relative_depth,
                                                             {"units": "km"})},
                        name=da.name, attrs=da.attrs)
