"""Earth structure beyond the priors: a reference mantle below the grid, and LITHO1.0.

Every prior in this project stops at 127.5 km, where its last node becomes an
infinite half-space. At long periods a surface wave senses well below that
depth, so the half-space node stands in for the whole Earth below.
:func:`extend_below` continues layered models to a deeper half-space on the same
node spacing, either with the half-space's own values (which, by the invariance
of the secular function under splitting a layer, leaves every curve unchanged)
or with the AK135 mantle, so that one can measure what the floor does.

AK135 is the radial reference Earth of Kennett, Engdahl & Buland (1995,
Geophys. J. Int. 122, 108-124); the densities are those of Montagner & Kennett
(1996, Geophys. J. Int. 125, 229-248), as tabulated with the model (for example
in ObsPy's TauP data). Only the upper mantle above the 410 km discontinuity is
kept here.

LITHO1.0 (Pasyanos et al. 2014, J. Geophys. Res. 119, 2153-2173) is read and
split by :mod:`kernels.litho1`, whose functions are re-exported here;
:func:`column_scores`, :func:`region_summary` and :func:`check_targets` score
surrogates on its columns.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from .io import MODEL_VARIABLES
from .litho1 import (  # noqa: F401  (re-exported: the LITHO1.0 API of this module)
    COLUMN_KINDS,
    CRUST1_GROUPS,
    CRUST1_TYPES,
    LITHO1_BOUNDARIES,
    LITHO1_FILL,
    LITHO1_LAYERS,
    LITHO1_PERTURBATION,
    LITHO1_PROPERTIES,
    LITHO1_SPLIT,
    SPLIT_PARTS,
    crust1_grid,
    crust1_type,
    draw_litho1,
    litho1,
    litho1_columns,
    litho1_nodes,
    litho1_raw,
    litho1_split,
    perturb_litho1,
)
from .metrics import cosine_similarity, relative_l2
from .sensitivity import display_form, drop_flags, kernel_dataset

#: AK135 upper mantle: depth (km), Vp, Vs (km/s), density (g/cm^3). A repeated
#: depth is a discontinuity; the first row is the value above it.
AK135_UPPER_MANTLE = np.array([
    [35.0, 8.0400, 4.4800, 3.3198],
    [77.5, 8.0450, 4.4900, 3.3455],
    [120.0, 8.0500, 4.5000, 3.3713],
    [165.0, 8.1750, 4.5090, 3.3985],
    [210.0, 8.3000, 4.5180, 3.4258],
    [210.0, 8.3000, 4.5230, 3.4258],
    [260.0, 8.4825, 4.6090, 3.4561],
    [310.0, 8.6650, 4.6960, 3.4864],
    [360.0, 8.8475, 4.7830, 3.5167],
    [410.0, 9.0300, 4.8700, 3.5470],
])

#: What :func:`extend_below` can put below a model's grid.
BELOW = ("half-space", "ak135")


def ak135(depth):
    """AK135's upper-mantle Vp, Vs and density at depths in 35-410 km.

    A depth exactly at the 210 km gradient change takes the value below it
    (a layer top owns the material beneath it).

    Parameters
    ----------
    depth : array_like
        Depths in km, within 35-410 km.

    Returns
    -------
    tuple of numpy.ndarray
        ``(velocity_p, velocity_s, density)`` in km/s, km/s and g/cm^3.

    Examples
    --------
    >>> vp, vs, rho = ak135([120.0, 210.0])
    >>> vs.tolist()
    [4.5, 4.523]
    """
    depth = np.asarray(depth, dtype=float)
    table = AK135_UPPER_MANTLE
    low, high = table[0, 0], table[-1, 0]
    if np.any(~np.isfinite(depth)) or np.any((depth < low) | (depth > high)):
        bad = depth[~((depth >= low) & (depth <= high))]
        raise ValueError(f"AK135's upper mantle is tabulated from {low:g} to {high:g} km; "
                         f"got depth {float(bad.ravel()[0]):g} km.")
    # Interpolate within each segment, so a discontinuity is never smeared; with
    # side="right" a depth at a repeated row falls in the segment below it.
    segment = np.clip(np.searchsorted(table[:, 0], depth, side="right") - 1, 0, len(table) - 2)
    top, bottom = table[segment], table[segment + 1]
    span = bottom[..., 0] - top[..., 0]
    weight = np.where(span > 0, (depth - top[..., 0]) / np.where(span > 0, span, 1.0), 0.0)
    values = top[..., 1:] + weight[..., None] * (bottom[..., 1:] - top[..., 1:])
    return values[..., 0], values[..., 1], values[..., 2]


def extend_below(models, max_depth=400.0, below="ak135"):
    """Continue layered models below their half-space to a deeper one.

    The grid's node spacing is kept; the old half-space node becomes an ordinary
    layer of that spacing with its own values, and new nodes follow to
    ``max_depth``, whose node is the new half-space.

    Parameters
    ----------
    models : xarray.Dataset
        Models on a regular grid, dims ``(sample, depth)`` or ``(depth,)``.
    max_depth : float
        Depth (km) of the new half-space's top; below the models' last node and a
        whole number of node spacings from it. The default, 400 km, puts AK135's
        half-space at Vs 4.85 km/s: with a half-space at 250 km (Vs 4.59 km/s)
        the 45-60 s Love waves of fast-lid models would not be trapped.
    below : {"half-space", "ak135"}
        What fills the new nodes: the old half-space's values (every curve and
        kernel above is unchanged, and the old half-space kernel equals the sum of
        the new nodes' kernels), or AK135's upper mantle (:func:`ak135`) at each
        new node's top.

    Returns
    -------
    xarray.Dataset
        The model variables (thickness, Vp, Vs, density) on the longer grid,
        with the same ``sample`` coordinate; attribute ``extended_below``
        records what was put below and from where.

    Examples
    --------
    >>> from kernels.io import layered_model
    >>> m = layered_model([0.5, 0.5, 0.5], [6.0, 7.0, 8.0], [3.5, 4.0, 4.5], [2.7, 2.9, 3.3])
    >>> e = extend_below(m, max_depth=2.0, below="half-space")
    >>> e.depth.values.tolist(), e.velocity_s.values.tolist()
    ([0.0, 0.5, 1.0, 1.5, 2.0], [3.5, 4.0, 4.5, 4.5, 4.5])
    """
    if below not in BELOW:
        raise ValueError(f"below must be one of {BELOW}, got {below!r}.")
    depth = np.asarray(models["depth"].values, dtype=float)
    if depth.size < 2:
        raise ValueError("extend_below needs models with at least two nodes.")
    spacing = depth[1] - depth[0]
    if not np.allclose(np.diff(depth), spacing, rtol=1e-9, atol=1e-9):
        raise ValueError("extend_below needs a regular depth grid (equal node spacing); "
                         f"got spacings from {np.diff(depth).min():g} to "
                         f"{np.diff(depth).max():g} km.")
    steps = (float(max_depth) - depth[-1]) / spacing
    if not np.isfinite(steps) or steps < 1 or abs(steps - round(steps)) > 1e-6:
        raise ValueError(f"max_depth must lie a whole number (>= 1) of node spacings "
                         f"({spacing:g} km) below the last node at {depth[-1]:g} km; "
                         f"got {max_depth!r}.")
    new_depth = depth[-1] + spacing * np.arange(1, round(steps) + 1)
    names = [name for name in MODEL_VARIABLES if name in models]
    missing = {"thickness", "velocity_p", "velocity_s", "density"} - set(names)
    if missing:
        raise ValueError(f"models lack the model variables {sorted(missing)}.")
    extra = xr.Dataset(coords={"depth": new_depth})
    if below == "half-space":
        source = models[names].isel(depth=-1, drop=True)
        for name in names:
            extra[name] = source[name].expand_dims(depth=new_depth, axis=-1)
    else:
        vp, vs, rho = ak135(new_depth)
        for name, values in (("velocity_p", vp), ("velocity_s", vs), ("density", rho)):
            column = xr.DataArray(values, dims="depth", coords={"depth": new_depth})
            template = models[name].isel(depth=-1, drop=True)
            extra[name] = (template * 0 + column).transpose(*template.dims, "depth")
    thickness = models["thickness"].isel(depth=-1, drop=True) * 0 + spacing
    extra["thickness"] = thickness.expand_dims(depth=new_depth, axis=-1)
    head = models[names].copy()
    head["thickness"] = head["thickness"].where(head.depth < depth[-1], spacing)
    out = xr.concat([head, extra[names]], dim="depth", data_vars="all")
    for name in names:
        out[name].attrs = models[name].attrs
    out["depth"].attrs = models["depth"].attrs
    out.attrs = {**models.attrs,
                 "extended_below": f"{below} from {depth[-1]:g} km to a half-space at "
                                   f"{float(max_depth):g} km"}
    return out


def floor_effect(models, periods, max_depth=400.0, below="ak135", waves=("rayleigh", "love"),
                 n_jobs=1, kernels=None):
    """What the half-space at the grid's last node does to curves and Vs kernels.

    Each model is compared with itself continued below its grid by
    :func:`extend_below` (by default with AK135's upper mantle to a half-space at
    400 km), the "real Earth below"; the layers the two share are those above the
    old half-space node.

    Parameters
    ----------
    models : xarray.Dataset
        Models with a ``sample`` dim on a regular grid.
    periods : array_like
        Periods in s.
    max_depth, below
        Passed to :func:`extend_below`.
    waves : sequence of str
        Wave types.
    n_jobs : int
        Worker processes for the kernels.
    kernels : xarray.Dataset, optional
        :func:`kernels.sensitivity.kernel_dataset` of ``models`` at ``periods``
        and ``waves``, if already computed (it is then not computed again).

    Returns
    -------
    xarray.Dataset
        On ``(sample, wave, period)``:

        - ``phase_velocity_change``: c(extended) - c(grid), km/s;
        - ``half_space_share``: the share of the grid model's ``|dc/dVs|`` in its
          half-space node;
        - ``below_share``: the share of the extended model's ``|dc/dVs|`` at and
          below the old half-space's depth (what that node stood in for);
        - ``kernel_change``: relative L2 distance of the raw per-layer ``dc/dVs``
          over the shared layers, the extended model's as reference;
        - ``display_cosine``: cosine of the two kernels' display forms
          (:func:`kernels.sensitivity.display_form`, 0-110 km), the form the book
          compares surrogates with;
        - coordinate ``failed``: either model has no trapped root there (NaN).

    Examples
    --------
    >>> from kernels import priors
    >>> m = priors.sample("weak", 1, seed=0)
    >>> e = floor_effect(m, [10.0, 60.0], waves=("rayleigh",))
    >>> bool((e.below_share.sel(period=60.0) > e.below_share.sel(period=10.0)).all())
    True
    """
    periods = np.asarray(periods, dtype=float)
    extended = extend_below(models, max_depth=max_depth, below=below)
    if kernels is not None and not np.array_equal(kernels.sample.values,
                                                  models.sample.values):
        raise ValueError("kernels must be those of models: their sample labels differ.")
    grid = (kernel_dataset(models, periods, waves=waves, n_jobs=n_jobs) if kernels is None
            else kernels.sel(period=periods, wave=list(waves)))
    deep = kernel_dataset(extended, periods, waves=waves, n_jobs=n_jobs)
    failed = (grid.failed | deep.failed).reset_coords(drop=True)
    grid, deep = drop_flags(grid), drop_flags(deep)
    n = models.sizes["depth"]
    k_grid, k_deep = grid.dc_dvelocity_s, deep.dc_dvelocity_s
    magnitude = abs(k_deep)
    out = xr.Dataset({
        "phase_velocity_change": deep.phase_velocity - grid.phase_velocity,
        "half_space_share": abs(k_grid.isel(depth=-1, drop=True)) / abs(k_grid).sum("depth"),
        "below_share": magnitude.isel(depth=slice(n - 1, None)).sum("depth")
        / magnitude.sum("depth"),
        "kernel_change": relative_l2(k_grid.isel(depth=slice(0, n - 1)),
                                     k_deep.isel(depth=slice(0, n - 1))),
        "display_cosine": cosine_similarity(display_form(k_grid), display_form(k_deep)),
    })
    out = out.where(~failed).assign_coords(failed=failed)
    units = {"phase_velocity_change": "km/s"}
    for name, long_name in (
            ("phase_velocity_change", "phase velocity with the Earth below minus on the grid"),
            ("half_space_share", "share of |dc/dVs| in the grid's half-space node"),
            ("below_share", "share of |dc/dVs| below the grid, Earth below"),
            ("kernel_change", "relative L2 change of dc/dVs above the grid's half-space"),
            ("display_cosine", "cosine of the display forms, grid vs Earth below")):
        out[name].attrs = {"units": units.get(name, "1"), "long_name": long_name}
    out.attrs = {"extended_below": extended.attrs["extended_below"]}
    return out


#: Lower bound of a trapped surface wave's phase velocity, as a share of the slowest
#: layer's Vs. Love: c > min Vs exactly. Rayleigh: c stays above the slowest layer's
#: Rayleigh speed, at least 0.87 min Vs for a Poisson ratio >= 0; 0.8 leaves a margin
#: (the tests check disba's roots on prior models against it).
PLAUSIBLE_LOWER = 0.8


def plausible_phase_velocity(phase_velocity, models, lower=PLAUSIBLE_LOWER):
    """Where a predicted phase velocity could be a trapped mode of the model.

    ``lower * min(Vs) < c < Vs(half-space)``: above the half-space's shear
    velocity no mode is trapped, and below the slowest layer's (Rayleigh) wave
    speed none exists. A surrogate far outside its training prior can return
    values no model could have (tens of km/s); this marks them.

    Parameters
    ----------
    phase_velocity : xarray.DataArray
        km/s on ``(sample, wave, period)``.
    models : xarray.Dataset
        The models (``velocity_s`` on ``sample, depth``; the last node is the
        half-space).
    lower : float
        Lower bound as a share of the slowest layer's Vs.

    Returns
    -------
    xarray.DataArray of bool
        False outside the bounds and where the value is NaN.
    """
    velocity_s = models.velocity_s.reset_coords(drop=True)
    low = lower * velocity_s.min("depth")
    high = velocity_s.isel(depth=-1, drop=True)
    return (phase_velocity > low) & (phase_velocity < high)


def column_scores(surrogate, columns, theory, baseline):
    """A surrogate's curves and Vs kernels on Earth columns, beside a baseline's kernels.

    Parameters
    ----------
    surrogate : kernels.surrogate.Surrogate
        A trained surrogate on the columns' grid and periods.
    columns : xarray.Dataset
        Models with a ``sample`` dim (for example from :func:`litho1`).
    theory : xarray.Dataset
        :func:`kernels.sensitivity.kernel_dataset` of the columns (the physics).
    baseline : xarray.Dataset
        A baseline's kernels in the same layout (for example
        :func:`kernels.gradients.prior_median_kernels` of the surrogate's training
        prior).

    Returns
    -------
    xarray.Dataset
        On ``(sample, wave, period)``, NaN where the physics has no root:
        ``curve_error`` (surrogate minus physics, km/s), ``plausible`` (the
        prediction could be a trapped mode, :func:`plausible_phase_velocity`;
        False where the physics has no root), and the kernel scores of
        :func:`kernels.gradients.emergence_scores` for the surrogate (``cosine``,
        ``raw_error``, ``raw_error_110``) and for the baseline
        (``baseline_cosine``, ...). The columns' coordinates are kept.
    """
    from .gradients import emergence_scores

    usable = ~theory.failed.reset_coords(drop=True)
    physics = drop_flags(theory)
    predicted = surrogate.predict(columns)
    out = xr.Dataset({"curve_error": (predicted - physics.phase_velocity).where(usable),
                      "plausible": plausible_phase_velocity(predicted, columns) & usable})
    learned = surrogate.jacobian(columns)
    velocity_s = columns.velocity_s.reset_coords(drop=True)
    ours = emergence_scores(learned, physics.dc_dvelocity_s, velocity_s, usable)
    theirs = emergence_scores(baseline.dc_dvelocity_s.reset_coords(drop=True),
                              physics.dc_dvelocity_s, velocity_s, usable)
    out = out.merge(ours).merge(theirs.rename({name: f"baseline_{name}" for name in theirs}))
    return out.assign_coords({**_per_sample_coords(columns),
                              "failed": theory.failed.reset_coords(drop=True)})


def region_summary(scores, by="region_group", n_boot=1000, seed=0):
    """Curve RMSE and kernel skill per region (rows) and wave, with model-resampled intervals.

    Parameters
    ----------
    scores : xarray.Dataset
        :func:`column_scores`.
    by : str or None
        Per-sample coordinate that names the regions; None pools every column
        into one row, ``all``.
    n_boot, seed : int
        Resamples and seed of the cluster bootstrap (whole columns are resampled).

    Returns
    -------
    pandas.DataFrame
        Index ``(region, wave)``; columns ``columns`` (count), ``rmse`` with
        ``rmse_low``/``rmse_high`` (km/s, over all periods of the region's columns),
        ``cosine_skill`` and ``raw_skill`` (``1 - median(1 - cos) / median(1 -
        cos_baseline)`` and ``1 - median(err) / median(err_baseline)`` over all
        cells) with their intervals.
    """
    import pandas as pd

    from .metrics import cluster_bootstrap

    def skill_of(method, base):
        def statistic(m, b):
            both = np.isfinite(m) & np.isfinite(b)
            m, b = np.where(both, m, np.nan), np.where(both, b, np.nan)
            flat = (m.shape[0], -1)
            return 1 - (np.nanmedian(m.reshape(flat), axis=1)
                        / np.nanmedian(b.reshape(flat), axis=1))
        point = float(statistic(method[None], base[None])[0])
        low, high = cluster_bootstrap((method, base), statistic, n_boot=n_boot, seed=seed)
        return point, low, high

    rows = []
    labels = (np.full(scores.sizes["sample"], "all") if by is None
              else scores[by].values)
    for region in pd.unique(labels):
        part = scores.isel(sample=np.flatnonzero(labels == region))
        for wave in part.wave.values:
            cell = part.sel(wave=wave)
            err = cell.curve_error.values
            rmse_point = float(np.sqrt(np.nanmean(err ** 2)))
            rmse_low, rmse_high = cluster_bootstrap(
                err, lambda e: np.sqrt(np.nanmean(e.reshape(e.shape[0], -1) ** 2, axis=1)),
                n_boot=n_boot, seed=seed)
            cos = skill_of(1 - cell.cosine.values, 1 - cell.baseline_cosine.values)
            raw = skill_of(cell.raw_error.values, cell.baseline_raw_error.values)
            rows.append({by or "region": region, "wave": str(wave),
                         "columns": int(part.sizes["sample"]),
                         "rmse": rmse_point, "rmse_low": rmse_low, "rmse_high": rmse_high,
                         "cosine_skill": cos[0], "cosine_skill_low": cos[1],
                         "cosine_skill_high": cos[2], "raw_skill": raw[0],
                         "raw_skill_low": raw[1], "raw_skill_high": raw[2]})
    return pd.DataFrame(rows).set_index([by or "region", "wave"])


def column_skill(scores, metric="raw_error"):
    """One kernel skill per column: how far its kernels beat the baseline's on that column.

    ``1 - median(error) / median(baseline error)`` over the column's cells (both
    waves, every period) where both are finite, the error being ``raw_error``
    (or any error of :func:`column_scores`) or ``1 - cos`` for ``"cosine"``. A
    column's median pools about a hundred cells, so the skill is stable enough to
    map; its bins are not separated (see :func:`region_summary` for bins).

    Parameters
    ----------
    scores : xarray.Dataset
        :func:`column_scores`.
    metric : str
        ``"cosine"`` or the name of an error in ``scores`` that has a
        ``baseline_<metric>``.

    Returns
    -------
    xarray.DataArray
        On ``sample``, with the columns' coordinates; NaN for a column without a
        usable cell.

    Raises
    ------
    ValueError
        For a metric that ``scores`` lacks, or lacks the baseline of.
    """
    if metric not in scores or f"baseline_{metric}" not in scores:
        raise ValueError(f"metric must name a score with a baseline in scores, got {metric!r}; "
                         f"available: {sorted(n for n in scores if f'baseline_{n}' in scores)}.")
    method, base = scores[metric], scores[f"baseline_{metric}"]
    if metric == "cosine":
        method, base = 1 - method, 1 - base
    both = np.isfinite(method) & np.isfinite(base)
    cells = [d for d in method.dims if d != "sample"]
    with np.errstate(invalid="ignore", divide="ignore"):
        out = 1 - (method.where(both).median(cells) / base.where(both).median(cells))
    return out.rename(f"{metric}_skill").assign_attrs(
        units="1", long_name=f"skill of the {metric} over the baseline, per column")


#: Sea water as :func:`water_effect` puts it on an oceanic column: Vp (km/s) and
#: density (g/cm^3); Vs is 0.
SEA_WATER = {"velocity_p": 1.5, "density": 1.03}


def _oceanic_arrays(columns, periods, dc):
    """Validated ``(water depths, periods, dc, model arrays)`` of columns with water."""
    from .forward import DEFAULT_DC, check_periods
    from .io import as_model_arrays

    if "water_depth" not in columns.coords and "water_depth" not in columns:
        raise ValueError("columns must carry a per-sample water_depth (km), as litho1 gives.")
    water = np.asarray(columns.water_depth.values, dtype=float)
    if not (np.isfinite(water).all() and (water >= 0).all()):
        raise ValueError(f"water_depth must be finite and >= 0 km, got {water.min()!r} "
                         "at least.")
    return (water, check_periods(periods), DEFAULT_DC if dc is None else dc,
            as_model_arrays(columns))


def _rayleigh_roots(model, water_depth, periods, dc):
    """Trapped fundamental Rayleigh roots of a model under ``water_depth`` km of sea
    water (none for 0), NaN where there is none."""
    from .forward import _roots

    if water_depth > 0:
        model = (np.r_[water_depth, model[0]], np.r_[SEA_WATER["velocity_p"], model[1]],
                 np.r_[0.0, model[2]], np.r_[SEA_WATER["density"], model[3]])
    return _roots(model, periods, 0, "rayleigh", dc)[0]  # untrapped roots are NaN there


def _per_sample_coords(columns):
    """The columns' coordinates along ``sample`` alone (node, latitude, region, ...)."""
    return {name: columns[name] for name in columns.coords
            if name != "sample" and columns[name].dims == ("sample",)}


def water_effect(columns, periods, dc=None):
    """Rayleigh phase velocities of oceanic columns with their water, against without.

    The columns of :func:`litho1` (``water="remove"``) are solid-earth models;
    a surface wave at sea also moves the water above them. Here each column
    gets back a fluid top layer of its ``water_depth`` (Vp and density of
    :data:`SEA_WATER`, Vs 0), which disba (like surf96) solves as a fluid. Love
    waves do not enter a fluid (no shear), so only Rayleigh waves change. A root
    at or above the half-space's Vs is not a trapped mode and is NaN, as in
    :func:`kernels.forward.dispersion`.

    Parameters
    ----------
    columns : xarray.Dataset
        Models with a ``sample`` dim and a per-sample ``water_depth`` (km).
    periods : array_like
        Periods in s.
    dc : float, optional
        Root-search step in km/s (default that of :mod:`kernels.forward`).

    Returns
    -------
    xarray.Dataset
        On ``(sample, period)``: ``dry`` and ``wet`` (km/s, NaN without a trapped
        root) and ``change`` (wet minus dry), with the columns' per-sample
        coordinates.

    Raises
    ------
    ValueError
        If ``columns`` has no ``water_depth`` or a negative one.

    Examples
    --------
    >>> from kernels.earth import litho1_columns
    >>> c = litho1_columns(1, "oceanic", seed=1)
    >>> e = water_effect(c, [5.0, 60.0])
    >>> bool(abs(e.change.sel(period=5.0)) > abs(e.change.sel(period=60.0)))
    True
    """
    water, periods, dc, arrays = _oceanic_arrays(columns, periods, dc)
    dry = np.full((water.size, periods.size), np.nan)
    wet = np.full_like(dry, np.nan)
    for s in range(water.size):
        model = tuple(a[s] for a in arrays)
        dry[s] = _rayleigh_roots(model, 0.0, periods, dc)
        wet[s] = _rayleigh_roots(model, water[s], periods, dc) if water[s] > 0 else dry[s]
    dims = ("sample", "period")
    out = xr.Dataset({"dry": (dims, dry), "wet": (dims, wet), "change": (dims, wet - dry)},
                     coords={"sample": columns.sample.values, "period": periods,
                             **_per_sample_coords(columns)})
    for name, long_name in (("dry", "Rayleigh phase velocity, water removed"),
                            ("wet", "Rayleigh phase velocity, with the water layer"),
                            ("change", "with water minus without")):
        out[name].attrs = {"units": "km/s", "long_name": long_name}
    out.attrs = {"sea_water": str(SEA_WATER), "dc": float(dc)}
    return out


def water_kernels(columns, periods, dc=None):
    """Exact Rayleigh kernels of oceanic columns under their sea water.

    The roots are disba's for each column with its water layer (as in
    :func:`water_effect`); the kernels come from the exact engine's secular
    function with the fluid layer's impedance at the sea floor
    (:mod:`kernels._secular`), by implicit differentiation, for every solid layer
    and for the water depth. A column without water gets its dry kernels.

    Parameters
    ----------
    columns : xarray.Dataset
        Models with a ``sample`` dim and a per-sample ``water_depth`` (km).
    periods : array_like
        Periods in s.
    dc : float, optional
        Root-search step in km/s (default that of :mod:`kernels.forward`).

    Returns
    -------
    xarray.Dataset
        ``phase_velocity`` (sample, period), ``dc_dvelocity_s``,
        ``dc_dvelocity_p``, ``dc_ddensity`` and ``dc_dthickness`` (sample,
        period, depth; per layer, as :func:`kernels.sensitivity.phase_kernels`),
        ``dc_dwater_depth`` (sample, period; km/s per km), and ``failed``: no
        trapped root, or a root the engine's polish could not confirm (NaN).

    Raises
    ------
    ValueError
        If ``columns`` has no ``water_depth`` or a negative one.
    """
    from ._secular import PARAMETERS, exact_kernels
    from .sensitivity import _one_torch_thread

    water, periods, dc, arrays = _oceanic_arrays(columns, periods, dc)
    n_sample, n_layer = arrays[0].shape
    c = np.full((n_sample, periods.size), np.nan)
    layers = {name: np.full((n_sample, periods.size, n_layer), np.nan) for name in PARAMETERS}
    depth_kernel = np.full((n_sample, periods.size), np.nan)
    for s in range(n_sample):
        model = tuple(a[s] for a in arrays)
        roots = _rayleigh_roots(model, water[s], periods, dc)
        ok = np.isfinite(roots)
        if not ok.any():
            continue
        sea = (water[s], SEA_WATER["velocity_p"], SEA_WATER["density"]) if water[s] > 0 else None
        with _one_torch_thread():  # small batched products: a thread pool only slows them
            value, kernels = exact_kernels(roots[ok], periods[ok], *model, "rayleigh",
                                           water=sea)
        c[s, ok] = value
        for name in PARAMETERS:
            layers[name][s, ok] = kernels[name]
        depth_kernel[s, ok] = kernels["water_depth"] if sea else 0.0
    failed = ~np.isfinite(c)
    for name in PARAMETERS:
        layers[name][failed] = np.nan
    depth_kernel[failed] = np.nan
    dims = ("sample", "period")
    out = xr.Dataset(
        {"phase_velocity": (dims, c), "dc_dwater_depth": (dims, depth_kernel),
         **{f"dc_d{name}": ((*dims, "depth"), layers[name]) for name in PARAMETERS}},
        coords={"sample": columns.sample.values, "period": periods,
                "depth": columns.depth.values, "failed": (dims, failed),
                **_per_sample_coords(columns)})
    out["phase_velocity"].attrs = {"units": "km/s",
                                   "long_name": "Rayleigh phase velocity under the water"}
    out["dc_dwater_depth"].attrs = {"units": "(km/s)/km", "long_name": "dc/d(water depth)"}
    out.attrs = {"wave": "rayleigh", "sea_water": str(SEA_WATER), "dc": float(dc)}
    return out


#: The issue's targets on held-out continental columns: curve RMSE per wave (km/s, at
#: most), the cosine skill over the prior-median kernel in the worst period bin (at
#: least), and the median directional-derivative error in the worst bin (at most).
REAL_EARTH_TARGETS = {"rmse": 0.05, "cosine_skill": 0.8, "directional_error": 0.10}


def check_targets(rmse, worst_cosine_skill, worst_directional_error, targets=None):
    """Which of the real-Earth targets a surrogate meets, and what it misses by.

    Parameters
    ----------
    rmse : dict
        Curve RMSE per wave (km/s).
    worst_cosine_skill : float
        Lowest per-bin cosine skill over the prior-median kernel.
    worst_directional_error : float
        Highest per-bin median relative error of the directional derivative, as a share
        (0.1 for 10 %), not a percentage.
    targets : dict, optional
        Default :data:`REAL_EARTH_TARGETS`.

    Returns
    -------
    dict
        ``met`` (name -> bool; NaN values do not meet a target), ``n_met`` and
        ``missed`` (the names not met, in the order above).

    Examples
    --------
    >>> check_targets({"rayleigh": 0.03, "love": 0.06}, 0.85, 0.12)["missed"]
    ['rmse_love', 'directional_error']
    """
    t = {**REAL_EARTH_TARGETS, **(targets or {})}
    met = {f"rmse_{wave}": bool(value <= t["rmse"]) for wave, value in rmse.items()}
    met["cosine_skill"] = bool(worst_cosine_skill >= t["cosine_skill"])
    met["directional_error"] = bool(worst_directional_error <= t["directional_error"])
    return {"met": met, "n_met": sum(met.values()),
            "missed": [name for name, ok in met.items() if not ok]}


def cosine_for_skill(baseline_cosine, skill=REAL_EARTH_TARGETS["cosine_skill"]):
    """The median cosine a method needs for a cosine skill of ``skill`` over a baseline.

    The cosine skill is ``1 - (1 - cos) / (1 - cos_baseline)`` on the bins' medians
    (:func:`kernels.metrics.binned_skill`), so the method needs
    ``1 - (1 - skill) (1 - cos_baseline)``: a baseline that already scores 0.99 leaves a
    method that wants a skill of 0.8 a margin of 0.002 below a perfect cosine.

    Parameters
    ----------
    baseline_cosine : float or array_like
        The baseline's median cosine, in [-1, 1].
    skill : float
        The skill wanted, at most 1.

    Returns
    -------
    float or numpy.ndarray

    Raises
    ------
    ValueError
        For a cosine outside [-1, 1] or a skill above 1.

    Examples
    --------
    >>> round(float(cosine_for_skill(0.99, 0.8)), 4)
    0.998
    """
    cos = np.asarray(baseline_cosine, dtype=float)
    if np.any(np.abs(cos[np.isfinite(cos)]) > 1):
        raise ValueError(f"baseline_cosine must lie in [-1, 1], got {baseline_cosine!r}.")
    if not skill <= 1:
        raise ValueError(f"skill must be at most 1 (a perfect method), got {skill!r}.")
    return 1 - (1 - skill) * (1 - cos)


def water_against_errors(change, errors, wave="rayleigh"):
    """Per period bin: what the water changes beside what each surrogate gets wrong.

    Both are medians over the cells (columns and periods) of a bin, in km/s, so the
    two compare like for like: the water's change is the error a dry model makes at
    sea, each surrogate's is its error against the dry physics.

    Parameters
    ----------
    change : xarray.DataArray
        Wet minus dry phase velocity (km/s) on ``(sample, period)``
        (``water_effect(...).change``).
    errors : dict
        Surrogate name -> its curve error (km/s) on the same dry columns, on
        ``(sample, wave, period)`` (``column_scores(...).curve_error``).
    wave : str
        The wave of ``errors`` to use (the water changes Rayleigh waves only).

    Returns
    -------
    pandas.DataFrame
        Index ``period bin (s)``; columns ``water`` and one per surrogate.

    Examples
    --------
    >>> change = xr.DataArray([[0.5, 0.01]], dims=("sample", "period"),
    ...                       coords={"period": [3.0, 50.0]})
    >>> error = xr.DataArray([[[0.1, 0.05]]], dims=("sample", "wave", "period"),
    ...                      coords={"wave": ["rayleigh"], "period": [3.0, 50.0]})
    >>> water_against_errors(change, {"s": error}).round(2).to_dict("index")
    {'[2, 5)': {'water': 0.5, 's': 0.1}, '[45, 60]': {'water': 0.01, 's': 0.05}}
    """
    import pandas as pd

    from .metrics import _bin_block, _block_median, assign_period_bins, period_bin_labels

    def bin_medians(da):
        da = assign_period_bins(abs(da))
        return {label: _block_median(_bin_block(da, label)) for label in period_bin_labels()
                if (da.period_bin == label).any()}

    table = {"water": bin_medians(change)}
    for name, error in errors.items():
        table[name] = bin_medians(error.sel(wave=wave))
    frame = pd.DataFrame(table)
    frame.index.name = "period bin (s)"
    return frame


def water_sentence(table):
    """Where the water's change exceeds, or falls below, every surrogate's error.

    ``table`` is :func:`water_against_errors`. Bins where neither holds lie among the
    surrogates' errors.

    Examples
    --------
    >>> import pandas as pd
    >>> table = pd.DataFrame({"water": [0.9, 0.04, 0.01], "a": [0.1, 0.05, 0.03],
    ...                       "b": [0.2, 0.02, 0.02]}, index=["2-5", "10-20", "45-60"])
    >>> water_sentence(table)
    "The water's median change exceeds every surrogate's median error in the 2-5 s bin, \
lies among them in the 10-20 s bin and is smaller than every surrogate's median error in \
the 45-60 s bin."
    """
    names = [c for c in table.columns if c != "water"]
    if not names:
        raise ValueError("the table holds no surrogate's errors to compare the water with.")
    above = table.index[table.water > table[names].max(axis=1)].tolist()
    below = table.index[table.water < table[names].min(axis=1)].tolist()
    among = [b for b in table.index if b not in above and b not in below
             and np.isfinite(table.loc[b, "water"])]

    def bins(labels):
        return (f"the {labels[0]} s bin" if len(labels) == 1 else
                "the " + ", ".join(labels[:-1]) + f" and {labels[-1]} s bins")

    parts = []
    if above:
        parts.append(f"exceeds every surrogate's median error in {bins(above)}")
    if among:
        parts.append(f"lies among them in {bins(among)}")
    if below:
        parts.append(f"is smaller than every surrogate's median error in {bins(below)}")
    text = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"The water's median change {text}."
