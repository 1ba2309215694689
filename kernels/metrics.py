"""Agreement metrics between kernels (labelled, NaN-aware).

Each metric reduces over one dim (``depth`` by default) and keeps the others,
so it applies alike to one kernel, a period sweep or a batch of models.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from .config import PERIOD_BINS

__all__ = ["cosine_similarity", "relative_l2", "pearson", "depth_of_peak", "kernel_agreement",
           "period_bin_labels", "assign_period_bins", "dispersion_errors",
           "errors_by_period_bin", "summarise_by_period_bin", "align_on_depth"]


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


def summarise_by_period_bin(values, bins=PERIOD_BINS, n_boot=1000, seed=0):
    """Mean, sd, median (with a bootstrap 95 % interval), 16th/84th percentiles, count.

    Parameters
    ----------
    values : xarray.DataArray
        A metric with a ``period`` dim (and ``wave``); every other value in a
        bin (models and periods) is pooled.
    bins : sequence of (float, float)
        Period bins (s).
    n_boot : int
        Bootstrap resamples of the median.
    seed : int
        Seed of the bootstrap.

    Returns
    -------
    pandas.DataFrame
        Index ``(wave, period_bin)``.
    """
    import pandas as pd

    rng = np.random.default_rng(seed)
    values = assign_period_bins(values, bins)
    waves = values["wave"].values if "wave" in values.dims else [None]
    rows = []
    for wave in waves:
        v = values.sel(wave=wave) if wave is not None else values
        for label in period_bin_labels(bins):
            pooled = v.where(v["period_bin"] == label).values.ravel()
            pooled = pooled[np.isfinite(pooled)]
            row = {"wave": str(wave), "period_bin": label, "count": pooled.size}
            if pooled.size:
                boot = np.median(rng.choice(pooled, (n_boot, pooled.size)), axis=1)
                row.update(mean=pooled.mean(), sd=pooled.std(ddof=1) if pooled.size > 1 else 0,
                           median=np.median(pooled), median_ci_low=np.quantile(boot, 0.025),
                           median_ci_high=np.quantile(boot, 0.975),
                           p16=np.quantile(pooled, 0.16), p84=np.quantile(pooled, 0.84))
            rows.append(row)
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
