r"""Random 1-D earth models from named priors.

Two recipes reproduce the priors of Yu, Cai & Liu (2026), written from the
description of the authors' published setup (see the book's chapter "Data and
priors" for the full recipe and the choices we had to make where it is silent):

``"strong"``
    Tectonic templates (oceanic, shield, platform, orogen, rift) with a
    sediment / upper-crust / lower-crust / mantle layering, a Moho, layer-wise
    constant Vp/Vs and optional mantle low-velocity zones (LVZ). Faithful to the
    authors' generator, including its zero-padded 5-point moving average, which
    lowers Vs at the top two nodes. Like every prior here it is generated to
    150 km and cut to the grid, so the bottom of the grid is an interior node.
``"strong-corrected"``
    The same recipe with an edge-padded moving average (no surface artefact),
    Vp raised to at least 1.5 km/s (water's) and density from Brocher's law
    evaluated only on the Vp range it was fitted on (1.5-8.5 km/s).
``"strong-decorrelated"``
    The faithful strong recipe with independent smooth log-perturbations of
    Vp, Vs and density (sd 4 %, 4 km correlation): a training set that breaks
    the prior's Vp/Vs and density couplings, used as a remedy for the
    artifacts they leave in learned kernels.
``"weak"``
    Random PCHIP knots around a smooth trend, correlated noise, lumps and a
    smooth depth-varying Vp/Vs: designed to carry little structural imprint.

Density follows Brocher's (2005) Nafe-Drake fit,

.. math::

    \rho = 1.6612 V_P - 0.4721 V_P^2 + 0.0671 V_P^3 - 0.0043 V_P^4 + 0.000106 V_P^5 .

Each model is drawn from its own generator seeded by ``(seed, index)``, so any
model can be regenerated alone, and models ``0..n-1`` do not depend on ``n``.
New priors are added with :func:`register_prior`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.interpolate import PchipInterpolator
from scipy.ndimage import gaussian_filter1d

from .config import Grid
from .io import model_dataset, provenance

__all__ = [
    "sample",
    "draw",
    "register_prior",
    "available_priors",
    "extra_variables",
    "brocher_density",
    "brocher_polynomial",
    "realism_counts",
    "brocher_slope",
    "density_slope",
    "TECTONIC_TYPES",
]


@dataclass(frozen=True)
class _Prior:
    name: str
    draw: Callable
    description: str
    extras: dict


_REGISTRY: dict[str, _Prior] = {}


def register_prior(name, draw=None, *, description="", extras=None, overwrite=False):
    """Register a prior under ``name`` (usable as a decorator).

    Parameters
    ----------
    name : str
        Name used by :func:`sample`.
    draw : callable
        ``draw(rng, depth) -> dict`` returning ``velocity_p``, ``velocity_s``
        (km/s) and ``density`` (g/cm^3) as arrays shaped like ``depth`` (km),
        plus any per-model scalars named in ``extras``.
    description : str
        One-line description shown by :func:`available_priors`.
    extras : dict, optional
        Per-model scalar outputs, ``name -> (units, long_name)``.
    overwrite : bool
        Allow replacing an existing prior.

    Raises
    ------
    ValueError
        If ``name`` is taken and ``overwrite`` is false.

    Examples
    --------
    >>> import numpy as np
    >>> @register_prior("constant", description="homogeneous half-space")
    ... def _constant(rng, depth):
    ...     ones = np.ones_like(depth)
    ...     return {"velocity_p": 6.0 * ones, "velocity_s": 3.5 * ones, "density": 2.7 * ones}
    >>> float(sample("constant", 2, seed=0).velocity_s.mean())
    3.5
    >>> _ = _REGISTRY.pop("constant")
    """

    def decorator(func):
        if not isinstance(name, str) or not name:
            raise ValueError(f"A prior name must be a non-empty string, got {name!r}.")
        if name in _REGISTRY and not overwrite:
            raise ValueError(
                f"A prior named {name!r} is already registered; pass overwrite=True to "
                f"replace it."
            )
        _REGISTRY[name] = _Prior(name, func, description, dict(extras or {}))
        return func

    return decorator if draw is None else decorator(draw)


def available_priors():
    """Return ``{name: description}`` of the registered priors.

    Examples
    --------
    >>> sorted(available_priors())  # doctest: +NORMALIZE_WHITESPACE
    ['litho1', 'strong', 'strong-corrected', 'strong-decorrelated',
     'strong-decorrelated-vp-density', 'weak']
    """
    return {name: prior.description for name, prior in _REGISTRY.items()}


def extra_variables(prior):
    """The per-model extras a prior draws, ``name -> (units, long_name)``.

    Examples
    --------
    >>> "moho_depth" in extra_variables("strong"), extra_variables("weak")
    (True, {})
    """
    if prior not in _REGISTRY:
        raise ValueError(f"Unknown prior {prior!r}; valid choices are {sorted(_REGISTRY)}.")
    return dict(_REGISTRY[prior].extras)


def sample(prior, n, seed, grid=None, start=0, attempt=0):
    """Draw ``n`` random layered models from a registered prior.

    Parameters
    ----------
    prior : str
        Registered prior name (see :func:`available_priors`).
    n : int
        Number of models, at least 1.
    seed : int
        Non-negative base seed. Model ``i`` is drawn from ``(seed, i)``.
    grid : Grid, optional
        Depth grid; the paper's (256 nodes every 0.5 km) by default.
    start : int
        Index of the first model: ``sample(p, n, s, start=k)`` returns models
        ``k .. k+n-1``, identical to the same rows of a larger draw.
    attempt : int
        Redraw number. Attempt 0 draws model ``i`` from ``(seed, i)``; attempt
        ``r > 0`` from ``(seed, i, r)``, an independent stream used to redraw a
        model deterministically when the solver fails on it.

    Returns
    -------
    xarray.Dataset
        Dims ``(sample, depth)``; variables ``thickness`` (km), ``velocity_p``,
        ``velocity_s`` (km/s), ``density`` (g/cm^3) and the prior's per-model
        extras. The last layer is the half-space. ``sample`` holds the model
        indices.

    Raises
    ------
    ValueError
        For an unknown prior, a bad ``n``, ``seed`` or ``start``.

    Examples
    --------
    >>> ds = sample("weak", 3, seed=2026)
    >>> dict(ds.sizes)
    {'sample': 3, 'depth': 256}
    >>> bool((sample("weak", 1, seed=2026, start=2).velocity_s.values
    ...       == ds.velocity_s.values[2:]).all())
    True
    """
    if prior not in _REGISTRY:
        raise ValueError(
            f"Unknown prior {prior!r}; valid choices are {sorted(_REGISTRY)} "
            f"(add one with kernels.priors.register_prior)."
        )
    for label, value, minimum in (("n", n, 1), ("seed", seed, 0), ("start", start, 0),
                                  ("attempt", attempt, 0)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
            raise ValueError(f"{label} must be an integer >= {minimum}, got {value!r}.")
    grid = Grid() if grid is None else grid
    spec = _REGISTRY[prior]
    depth = grid.depth
    columns = {name: [] for name in ("velocity_p", "velocity_s", "density", *spec.extras)}
    for index in range(start, start + n):
        out = _draw(spec, seed, index, attempt, depth)
        for name in columns:
            columns[name].append(out[name])
    extras = {
        name: (np.asarray(columns[name]), units, long_name)
        for name, (units, long_name) in spec.extras.items()
    }
    ds = model_dataset(
        depth,
        np.broadcast_to(grid.thickness, (n, depth.size)),
        np.asarray(columns["velocity_p"]),
        np.asarray(columns["velocity_s"]),
        np.asarray(columns["density"]),
        extras=extras,
        attrs=provenance(
            config={"prior": prior, "n": n, "start": start, "attempt": attempt,
                    "n_nodes": grid.n_nodes, "spacing": grid.spacing},
            seed=seed,
            prior=prior,
            seeding="numpy.random.default_rng([seed, index] or [seed, index, attempt])",
        ),
    )
    return ds.assign_coords(sample=np.arange(start, start + n))


def _draw(spec, seed, index, attempt, depth):
    key = [int(seed), int(index)] + ([int(attempt)] if attempt else [])
    return spec.draw(np.random.default_rng(key), depth)


def draw(prior, seed, index, attempt=0, grid=None):
    """One model as plain arrays, without labels (fast path of :func:`sample`).

    Returns
    -------
    dict
        ``velocity_p``, ``velocity_s`` (km/s) and ``density`` (g/cm^3) arrays on
        the grid's nodes, plus the prior's per-model extras; identical to row
        ``index`` of ``sample(prior, n, seed, attempt=attempt)``.

    Examples
    --------
    >>> import numpy as np
    >>> a = draw("weak", 2026, 3)["velocity_s"]
    >>> bool(np.array_equal(a, sample("weak", 1, 2026, start=3).velocity_s.values[0]))
    True
    """
    if prior not in _REGISTRY:
        raise ValueError(f"Unknown prior {prior!r}; valid choices are {sorted(_REGISTRY)}.")
    grid = Grid() if grid is None else grid
    return _draw(_REGISTRY[prior], seed, index, attempt, grid.depth)


def brocher_density(velocity_p):
    """Density from P velocity by Brocher's (2005) polynomial.

    Parameters
    ----------
    velocity_p : array_like
        P-wave velocity in km/s.

    Returns
    -------
    numpy.ndarray
        Density in g/cm^3.

    Examples
    --------
    >>> round(float(brocher_density(6.0)), 4)
    2.7167
    """
    return brocher_polynomial(np.asarray(velocity_p, dtype=float))


def brocher_polynomial(v):
    """Brocher's (2005) density polynomial of ``v`` (km/s), for any array type.

    :func:`brocher_density` for NumPy input; this form also takes torch tensors,
    so that a differentiable forward model can tie density to Vp.
    """
    return 1.6612 * v - 0.4721 * v**2 + 0.0671 * v**3 - 0.0043 * v**4 + 0.000106 * v**5


def brocher_slope(velocity_p):
    """Derivative of :func:`brocher_density`, d rho / d Vp in (g/cm^3)/(km/s).

    Examples
    --------
    >>> h = 1e-6
    >>> fd = (brocher_density(6.0 + h) - brocher_density(6.0 - h)) / (2 * h)
    >>> bool(abs(brocher_slope(6.0) - fd) < 1e-8)
    True
    """
    v = np.asarray(velocity_p, dtype=float)
    return 1.6612 - 2 * 0.4721 * v + 3 * 0.0671 * v**2 - 4 * 0.0043 * v**3 + 5 * 0.000106 * v**4


#: Clips of the weak prior's density law: Vp is clipped inside Brocher's
#: polynomial and the density after it (km/s, g/cm^3).
_WEAK_DENSITY_VP_CLIP = (1.0, 8.5)
_WEAK_DENSITY_CLIP = (1.0, 3.8)


#: Vp range (km/s) on which Brocher (2005) fitted his density law. The
#: "strong-corrected" prior raises Vp to at least its lower end (water's Vp)
#: and evaluates the law on Vp clipped to the range.
BROCHER_VALIDITY = (1.5, 8.5)


#: Priors whose density is a function of Vp (Brocher's law, clipped for "weak"
#: and "strong-corrected").
_BROCHER_PRIORS = ("weak", "strong", "strong-corrected")


def density_slope(velocity_p, prior):
    """d rho / d Vp of a prior's density law, (g/cm^3)/(km/s), clips included.

    The weak, strong and strong-corrected priors set density by Brocher's law;
    the weak prior clips Vp to [1, 8.5] km/s inside the polynomial and the
    density to [1.0, 3.8] g/cm^3, the corrected strong prior clips Vp to
    Brocher's range [1.5, 8.5] km/s inside it, and where a clip is active the
    density does not follow Vp (slope 0). Other priors (the decorrelated ones, whose density
    is perturbed independently of Vp) have no such law and are refused.

    Parameters
    ----------
    velocity_p : array_like
        P velocity in km/s.
    prior : str
        A prior name (:func:`available_priors`).

    Returns
    -------
    numpy.ndarray

    Examples
    --------
    >>> float(density_slope(9.0, "weak")), round(float(density_slope(9.0, "strong")), 4)
    (0.0, 0.4072)
    """
    if prior not in _BROCHER_PRIORS:
        raise ValueError(f"prior must be one whose density is Brocher's function of Vp, "
                         f"{list(_BROCHER_PRIORS)}; got {prior!r}.")
    v = np.asarray(velocity_p, dtype=float)
    slope = brocher_slope(v)
    if prior == "strong":
        return slope
    if prior == "strong-corrected":
        low, high = BROCHER_VALIDITY
        return np.where((v > low) & (v < high), slope, 0.0)
    low, high = _WEAK_DENSITY_VP_CLIP
    rho = brocher_density(np.clip(v, low, high))
    follows = ((v > low) & (v < high) & (rho > _WEAK_DENSITY_CLIP[0])
               & (rho < _WEAK_DENSITY_CLIP[1]))
    return np.where(follows, slope, 0.0)


def realism_counts(models):
    """Share of nodes outside Brocher's validity and of sub-water densities.

    Parameters
    ----------
    models : xarray.Dataset
        Models with ``velocity_p`` and ``density``.

    Returns
    -------
    dict
        ``vp_below_water`` (share of nodes with Vp < 1.5 km/s, water's Vp and
        the low end of Brocher's fit), ``density_below_water`` (density < 1
        g/cm^3) and the share of models with at least one such node
        (``models_vp_below_water``, ``models_density_below_water``).

    Examples
    --------
    >>> from kernels.io import layered_model
    >>> realism_counts(layered_model([1, 1], [1.2, 6.0], [0.5, 3.5], [0.9, 2.7]))["vp_below_water"]
    0.5
    """
    vp = models.velocity_p.values.reshape(-1, models.sizes["depth"])
    rho = models.density.values.reshape(-1, models.sizes["depth"])
    low_vp, low_rho = vp < BROCHER_VALIDITY[0], rho < 1.0
    return {"vp_below_water": float(low_vp.mean()),
            "density_below_water": float(low_rho.mean()),
            "models_vp_below_water": float(low_vp.any(axis=1).mean()),
            "models_density_below_water": float(low_rho.any(axis=1).mean())}


def _truncated_normal(rng, mean, sd, low, high):
    # Rejection sampling: the bounds lie >= 1 sd from the means used here, so
    # the expected number of draws is below 1.5.
    while True:
        value = rng.normal(mean, sd)
        if low <= value <= high:
            return value


# --------------------------------------------------------------------------
# Strong prior: tectonic templates
# --------------------------------------------------------------------------

#: Tectonic templates of the strong prior. Per type: drawing weight; crust
#: thickness, sediment thickness (km); upper-crust fraction; Vs range (km/s) of
#: sediment / upper crust / lower crust / upper mantle; mean Vp/Vs of the same
#: four and its sd; LVZ probability, centre (km), thickness (km), fractional drop.
TECTONIC_TYPES = {
    "oceanic": dict(
        weight=0.15, crust=(5, 15), sediment=(0, 3), upper_fraction=(0.5, 0.8),
        vs=((0.2, 2.5), (3.2, 3.9), (3.8, 4.4), (4.2, 4.9)),
        vpvs=(1.80, 1.80, 1.82, 1.85), vpvs_sd=0.05,
        lvz=(0.7, (60, 120), (30, 60), (0.05, 0.12)),
    ),
    "shield": dict(
        weight=0.25, crust=(35, 55), sediment=(0, 3), upper_fraction=(0.3, 0.5),
        vs=((0.3, 2.5), (3.0, 3.7), (3.6, 4.2), (4.5, 5.2)),
        vpvs=(1.75, 1.73, 1.76, 1.80), vpvs_sd=0.04,
        lvz=(0.3, (80, 140), (40, 70), (0.03, 0.08)),
    ),
    "platform": dict(
        weight=0.25, crust=(28, 45), sediment=(0.5, 8), upper_fraction=(0.3, 0.6),
        vs=((0.3, 2.8), (2.8, 3.8), (3.4, 4.2), (4.2, 5.0)),
        vpvs=(1.78, 1.75, 1.78, 1.82), vpvs_sd=0.05,
        lvz=(0.5, (70, 130), (30, 60), (0.05, 0.10)),
    ),
    "orogen": dict(
        weight=0.20, crust=(40, 70), sediment=(1, 10), upper_fraction=(0.3, 0.5),
        vs=((0.3, 2.8), (2.7, 3.7), (3.2, 4.0), (4.0, 4.8)),
        vpvs=(1.80, 1.78, 1.80, 1.86), vpvs_sd=0.06,
        lvz=(0.8, (60, 120), (40, 80), (0.07, 0.15)),
    ),
    "rift": dict(
        weight=0.15, crust=(20, 40), sediment=(1, 12), upper_fraction=(0.3, 0.6),
        vs=((0.3, 3.0), (2.6, 3.6), (3.2, 4.0), (4.0, 4.7)),
        vpvs=(1.82, 1.80, 1.82, 1.88), vpvs_sd=0.06,
        lvz=(0.85, (50, 110), (30, 70), (0.07, 0.15)),
    ),
}

#: Maximum linear Vs gradient (km/s per km) of sediment, upper/lower crust, mantle.
_STRONG_GRADIENT_MAX = (0.20, 0.06, 0.05, 0.02)
_STRONG_NOISE_SD = 0.05  # km/s, per node
_STRONG_MAX_DROP = 0.10  # km/s per node, downward steps
_STRONG_LOWER_ABOVE_UPPER = 0.85  # probability
_STRONG_VPVS_BOUNDS = ((1.6, 2.0), (1.6, 2.0), (1.6, 2.0), (1.7, 2.0))
_STRONG_EXTRAS = {
    "tectonic_type": ("1", "tectonic template"),
    "sediment_thickness": ("km", "sediment thickness"),
    "moho_depth": ("km", "Moho depth"),
    "lvz": ("1", "mantle low-velocity zone present"),
    "lvz_depth": ("km", "LVZ centre depth (NaN without LVZ)"),
    "lvz_thickness": ("km", "LVZ thickness (NaN without LVZ)"),
    "lvz_drop": ("1", "LVZ fractional Vs drop (NaN without LVZ)"),
}


def _moving_average_5(values, zero_padded):
    """5-point moving average; zero padding reproduces the authors' quirk."""
    if zero_padded:
        return np.convolve(values, np.ones(5) / 5, mode="same")
    return np.convolve(np.pad(values, 2, mode="edge"), np.ones(5) / 5, mode="valid")


def _limit_downward_steps(values, max_drop):
    """Make ``v[i] >= v[i-1] - max_drop`` for every node, raising nodes only.

    The sequential rule ``v[i] = max(v[i], v[i-1] - d)`` has the closed form
    ``max_{j<=i}(v[j] + d j) - d i``, evaluated here without a loop.
    """
    ramp = max_drop * np.arange(values.size)
    return np.maximum.accumulate(values + ramp) - ramp


#: Depth (km) to which every prior is generated before the cut to the grid.
_GENERATION_DEPTH = 150.0


def _generation_depths(depth):
    """Nodes on which a prior is generated: the grid's spacing to at least 150 km.

    Both of the authors' priors are generated on 301 nodes (0-150 km) and cut
    to the grid's first nodes, so edge effects of a generator at the bottom of
    its own grid (a zero-padded moving average, a reflecting filter) lie below
    the grid and are cut away; the half-space node is an ordinary interior node.
    """
    spacing = depth[1] - depth[0] if depth.size > 1 else 0.5
    z_max = max(_GENERATION_DEPTH, float(depth[-1]))
    return np.arange(0.0, z_max + 0.5 * spacing, spacing)


def _draw_strong(rng, depth, zero_padded):
    n = depth.size
    depth = _generation_depths(depth)
    names = list(TECTONIC_TYPES)
    weights = np.array([TECTONIC_TYPES[name]["weight"] for name in names])
    kind = names[rng.choice(len(names), p=weights / weights.sum())]
    t = TECTONIC_TYPES[kind]

    crust = rng.uniform(*t["crust"])
    sediment = min(rng.uniform(*t["sediment"]), 0.7 * crust)
    upper = rng.uniform(*t["upper_fraction"]) * (crust - sediment)
    lower = max(crust - sediment - upper, 2.0)
    moho = sediment + upper + lower
    tops = np.array([0.0, sediment, sediment + upper, moho])
    layer = np.searchsorted(tops, depth, side="right") - 1
    layer[depth < sediment] = 0  # an empty sediment layer owns no node

    top_vs = np.array([rng.uniform(*r) for r in t["vs"]])
    gradient = np.array([rng.uniform(0.0, g) for g in _STRONG_GRADIENT_MAX])
    if rng.random() < _STRONG_LOWER_ABOVE_UPPER:
        # Force the lower crust to be faster on average than the upper crust by
        # raising its top value just enough (plus a small random margin); the
        # layer clip below keeps it inside the lower-crust range.
        mean_upper = top_vs[1] + gradient[1] * upper / 2
        mean_lower = top_vs[2] + gradient[2] * lower / 2
        if mean_lower <= mean_upper:
            top_vs[2] += mean_upper - mean_lower + rng.uniform(0.02, 0.15)
    vs = top_vs[layer] + gradient[layer] * (depth - tops[layer])
    vs = vs + rng.normal(0.0, _STRONG_NOISE_SD, size=depth.size)
    low = np.array([r[0] for r in t["vs"]])[layer]
    high = np.array([r[1] for r in t["vs"]])[layer]
    vs = np.clip(vs, low, high)
    vs = _moving_average_5(vs, zero_padded)
    vs = _limit_downward_steps(vs, _STRONG_MAX_DROP)

    lvz_probability, lvz_centre, lvz_thick, lvz_fraction = t["lvz"]
    has_lvz = bool(rng.random() < lvz_probability)
    lvz_depth = lvz_thickness = lvz_drop = np.nan
    if has_lvz:
        lvz_depth = rng.uniform(*lvz_centre)
        lvz_thickness = rng.uniform(*lvz_thick)
        lvz_drop = rng.uniform(*lvz_fraction)
        mantle = depth >= moho
        bump = np.exp(-0.5 * ((depth - lvz_depth) / (lvz_thickness / 2.5)) ** 2)
        vs = np.where(mantle, vs * (1.0 - lvz_drop * bump), vs)
        vs = np.where(mantle, np.clip(vs, *t["vs"][3]), vs)

    ratio = np.array([
        _truncated_normal(rng, mean, t["vpvs_sd"], *bounds)
        for mean, bounds in zip(t["vpvs"], _STRONG_VPVS_BOUNDS, strict=True)
    ])
    vp = ratio[layer] * vs
    density = brocher_density(vp)
    if not zero_padded:
        # The corrected prior keeps Vp at or above water's and evaluates Brocher's
        # law only inside the range it was fitted on (see BROCHER_VALIDITY).
        vp = np.maximum(vp, BROCHER_VALIDITY[0])
        density = brocher_density(np.clip(vp, *BROCHER_VALIDITY))
    return {
        "velocity_p": vp[:n],
        "velocity_s": vs[:n],
        "density": density[:n],
        "tectonic_type": kind,
        "sediment_thickness": sediment,
        "moho_depth": moho,
        "lvz": has_lvz,
        "lvz_depth": lvz_depth,
        "lvz_thickness": lvz_thickness,
        "lvz_drop": lvz_drop,
    }


register_prior(
    "strong",
    lambda rng, depth: _draw_strong(rng, depth, zero_padded=True),
    description="tectonic templates with Moho, layer-wise Vp/Vs and mantle LVZs "
    "(faithful: zero-padded smoothing lowers the top two nodes)",
    extras=_STRONG_EXTRAS,
)
register_prior(
    "strong-corrected",
    lambda rng, depth: _draw_strong(rng, depth, zero_padded=False),
    description="the strong prior with edge-padded smoothing (no surface artefact) and Vp, "
    "density kept in Brocher's range (Vp >= 1.5 km/s, law clipped to 1.5-8.5 km/s)",
    extras=_STRONG_EXTRAS,
)

#: Independent log-perturbations of the "strong-decorrelated" prior: sd and
#: correlation length (Gaussian smoothing sd, km). 0.04 is about the sd of
#: ln(Vp/Vs) across the strong prior (0.03), so the decoupled directions get
#: about as much variance as the prior's own weakest coupled one.
DECORRELATION_SD = 0.04
DECORRELATION_LENGTH = 4.0


def _draw_strong_decorrelated(rng, depth, perturbed=("velocity_p", "velocity_s", "density")):
    model = _draw_strong(rng, depth, zero_padded=True)
    spacing = depth[1] - depth[0] if depth.size > 1 else 0.5
    # Every channel's noise is drawn, perturbed or not, so that variants that
    # perturb fewer channels share the same random stream (paired draws).
    for name in ("velocity_p", "velocity_s", "density"):
        noise = gaussian_filter1d(rng.normal(size=depth.size), DECORRELATION_LENGTH / spacing,
                                  mode="reflect")
        if name in perturbed:
            model[name] = model[name] * np.exp(DECORRELATION_SD * _unit_sd(noise))
    return model


register_prior(
    "strong-decorrelated",
    _draw_strong_decorrelated,
    description="the strong prior with independent smooth 4 % perturbations of Vp, Vs "
    "and density (a training set that explores the coupled directions)",
    extras=_STRONG_EXTRAS,
)
register_prior(
    "strong-decorrelated-vp-density",
    lambda rng, depth: _draw_strong_decorrelated(rng, depth, ("velocity_p", "density")),
    description="the strong-decorrelated prior with Vs left as the strong prior draws it "
    "(only Vp and density perturbed: the remedy's ablation)",
    extras=_STRONG_EXTRAS,
)


# --------------------------------------------------------------------------
# Weak prior: random knots
# --------------------------------------------------------------------------

_WEAK_TREND = ((0, 10, 30, 80, 150), (2.0, 2.8, 3.6, 4.3, 4.7))
_WEAK_KNOT_SD = ((0, 5, 20, 50, 150), (1.0, 0.9, 0.7, 0.6, 0.5))
_WEAK_BOUNDS = (
    (0, 3, 8, 20, 40, 80, 150),
    (0.15, 0.25, 1.5, 2.5, 3.0, 3.6, 3.8),
    (4.0, 4.2, 4.5, 4.8, 5.1, 5.4, 5.6),
)
_WEAK_NOISE = ((4.0, 0.50), (10.0, 0.35), (20.0, 0.15))  # (length km, weight)
_WEAK_NOISE_SD = ((0, 150), (0.20, 0.10))
_WEAK_MAX_JUMP = ((0, 20, 80, 150), (0.45, 0.30, 0.18, 0.12))
_WEAK_VPVS = ((0, 5, 20, 60, 150), (1.90, 1.82, 1.76, 1.80, 1.84))
_WEAK_VPVS_NOISE_SD = 0.03
_WEAK_VPVS_NOISE_LENGTH = 5.0  # km; the recipe says "smoothed" without a length
_WEAK_SMOOTH = 2.0  # km, Gaussian sd of the final smoothing


def _unit_sd(values):
    return values / values.std()


def _clip_weak(vs, depth):
    low = np.interp(depth, _WEAK_BOUNDS[0], _WEAK_BOUNDS[1])
    high = np.interp(depth, _WEAK_BOUNDS[0], _WEAK_BOUNDS[2])
    return np.clip(vs, low, high)


def _limit_jumps(values, max_jump):
    out = values.tolist()
    limits = max_jump.tolist()
    for i in range(1, len(out)):
        out[i] = min(max(out[i], out[i - 1] - limits[i]), out[i - 1] + limits[i])
    return np.asarray(out)


def _draw_weak(rng, depth):
    spacing = depth[1] - depth[0] if depth.size > 1 else 0.5
    z = _generation_depths(depth)
    z_max = max(_GENERATION_DEPTH, float(depth[-1]))

    n_interior = int(rng.integers(6, 13))
    # Twice as many candidates as knots, 60 % biased shallow; keep the shallowest.
    n_candidates = 2 * n_interior
    biased = rng.random(n_candidates) < 0.6
    u = rng.random(n_candidates)
    candidates = np.where(biased, u**1.8 * z_max, rng.uniform(0.0, z_max, n_candidates))
    interior = np.sort(candidates)[:n_interior]
    knots = np.unique(np.concatenate([[0.0], interior, [z_max]]))
    knots = knots[np.concatenate([[True], np.diff(knots) > 1e-6])]

    trend = np.interp(knots, *_WEAK_TREND)
    sd = np.interp(knots, *_WEAK_KNOT_SD)
    knot_vs = trend + sd * rng.normal(size=knots.size)
    if rng.random() < 0.35:
        knot_vs = np.where(knots < 5.0, knot_vs - rng.uniform(0.3, 1.2), knot_vs)
    if rng.random() < 0.5:
        centre = rng.uniform(10.0, z_max - 10.0)
        width = rng.uniform(8.0, 35.0)
        amplitude = rng.uniform(-0.5, 0.5)
        knot_vs = knot_vs + amplitude * np.exp(-0.5 * ((knots - centre) / width) ** 2)
    knot_vs = _clip_weak(knot_vs, knots)
    vs = PchipInterpolator(knots, knot_vs)(z)

    noise = np.zeros_like(z)
    for length, weight in _WEAK_NOISE:
        white = rng.normal(size=z.size)
        noise += weight * _unit_sd(gaussian_filter1d(white, length / spacing, mode="reflect"))
    vs = vs + _unit_sd(noise) * np.interp(z, *_WEAK_NOISE_SD)
    for _ in range(int(rng.integers(0, 4))):
        centre = rng.uniform(0.0, z_max)
        width = rng.uniform(5.0, 30.0)
        amplitude = rng.uniform(-0.35, 0.35)
        vs = vs + amplitude * np.exp(-0.5 * ((z - centre) / width) ** 2)

    vs = _clip_weak(vs, z)
    vs = gaussian_filter1d(vs, _WEAK_SMOOTH / spacing, mode="nearest")
    vs = _limit_jumps(vs, np.interp(z, *_WEAK_MAX_JUMP))
    vs = _clip_weak(vs, z)

    ratio_noise = gaussian_filter1d(
        rng.normal(size=z.size), _WEAK_VPVS_NOISE_LENGTH / spacing, mode="reflect"
    )
    ratio = np.interp(z, *_WEAK_VPVS) + _WEAK_VPVS_NOISE_SD * _unit_sd(ratio_noise)
    ratio = np.clip(ratio, 1.65, 2.0)
    vp = np.clip(gaussian_filter1d(vs * ratio, _WEAK_SMOOTH / spacing, mode="nearest"), 1.0, 12.5)
    density = np.clip(brocher_density(np.clip(vp, *_WEAK_DENSITY_VP_CLIP)), *_WEAK_DENSITY_CLIP)

    n = depth.size
    return {"velocity_p": vp[:n], "velocity_s": vs[:n], "density": density[:n]}


register_prior(
    "weak",
    _draw_weak,
    description="random PCHIP knots around a smooth trend with correlated noise "
    "(designed to reduce the prior's imprint)",
)


def _draw_litho1(rng, depth):
    # LITHO1.0 is read and its training nodes kept once per process, on first use.
    from .litho1 import draw_litho1

    return draw_litho1(rng, depth)


register_prior(
    "litho1",
    _draw_litho1,
    description="LITHO1.0 continental columns of the training regions, each with random "
    "crust and lid thicknesses and layer velocities (kernels.litho1.draw_litho1)",
    extras={"node": ("1", "LITHO1.0 node index"),
            "moho_depth": ("km", "Moho depth below the solid surface")},
)
