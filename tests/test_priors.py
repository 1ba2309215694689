"""Tests of kernels.priors: structure, reproducibility, recipe bounds and statistics."""

import numpy as np
import pytest
from numpy.testing import assert_allclose

from kernels import priors
from kernels.config import Grid

N_STATS = 1500  # models per prior for the statistical tests


@pytest.fixture(scope="module")
def draws():
    """Draws of every built-in prior (shared: sampling costs ~1 ms a model)."""
    return {name: priors.sample(name, N_STATS, seed=2026)
            for name in ("weak", "strong", "strong-corrected")}


@pytest.mark.parametrize("prior", ["weak", "strong", "strong-corrected"])
def test_dataset_structure(prior):
    """Samples carry the paper's grid, dims, units, provenance and a half-space."""
    ds = priors.sample(prior, 4, seed=1)
    assert dict(ds.sizes) == {"sample": 4, "depth": 256}
    assert_allclose(ds.depth.values, 0.5 * np.arange(256))
    assert_allclose(ds.thickness.values, 0.5)
    units = {name: ds[name].attrs["units"] for name in
             ("thickness", "velocity_p", "velocity_s", "density")}
    assert units == {"thickness": "km", "velocity_p": "km/s", "velocity_s": "km/s",
                     "density": "g/cm^3"}
    assert ds.attrs["seed"] == 1 and ds.attrs["prior"] == prior
    assert "disba" in ds.attrs["versions"]
    assert "half-space" in ds.attrs["half_space"]


@pytest.mark.parametrize("prior", ["weak", "strong"])
def test_each_draw_is_reproducible_from_seed_and_index(prior):
    """Model i depends only on (seed, i): slices of a large draw equal small draws."""
    full = priors.sample(prior, 6, seed=7)
    part = priors.sample(prior, 2, seed=7, start=3)
    assert part.sample.values.tolist() == [3, 4]
    assert_allclose(part.velocity_s.values, full.velocity_s.values[3:5], rtol=0, atol=0)
    other = priors.sample(prior, 6, seed=8)
    assert not np.allclose(other.velocity_s.values, full.velocity_s.values)


def test_other_grids(rng):
    """Priors draw on any regular grid, including one deeper than 150 km."""
    ds = priors.sample("weak", 2, seed=0, grid=Grid(n_nodes=101, spacing=2.0))
    assert ds.sizes["depth"] == 101 and ds.depth.values[-1] == 200.0
    assert np.isfinite(ds.velocity_s.values).all()
    ds = priors.sample("strong", 2, seed=0, grid=Grid(n_nodes=50, spacing=1.0))
    assert ds.sizes["depth"] == 50


def test_weak_prior_bounds(draws):
    """Weak prior: Vs inside the depth-dependent bounds; Vp, density and Vp/Vs clipped."""
    ds = draws["weak"]
    z = ds.depth.values
    low = np.interp(z, (0, 3, 8, 20, 40, 80, 150), (0.15, 0.25, 1.5, 2.5, 3.0, 3.6, 3.8))
    high = np.interp(z, (0, 3, 8, 20, 40, 80, 150), (4.0, 4.2, 4.5, 4.8, 5.1, 5.4, 5.6))
    vs = ds.velocity_s.values
    assert (vs >= low - 1e-12).all() and (vs <= high + 1e-12).all()
    assert (ds.velocity_p.values >= 1.0).all() and (ds.velocity_p.values <= 12.5).all()
    assert (ds.density.values >= 1.0).all() and (ds.density.values <= 3.8).all()
    # Vp is smoothed (2 km, edge-padded) after Vp = ratio x Vs with ratio in
    # [1.65, 2.0], so Vp/Vs leaves that range slightly at Vs steps, and more in
    # the top kilometres where the padding raises Vp over a steep Vs gradient
    # and the floor Vp >= 1 km/s acts; Vp stays above Vs everywhere.
    ratio = (ds.velocity_p / ds.velocity_s).values
    deep = z >= 10.0
    assert ratio[:, deep].min() > 1.5 and ratio[:, deep].max() < 2.1
    assert ratio.min() > 1.0
    assert np.median(ratio) == pytest.approx(1.79, abs=0.03)
    # steps limited to 0.45 km/s per node at the surface
    assert np.abs(np.diff(vs, axis=1)).max() <= 0.45 + 1e-9


def test_weak_prior_trend(draws):
    """Weak prior: the mean Vs follows the recipe's trend (2.0 km/s at 0 km -> 4.3 at 80 km)."""
    mean = draws["weak"].velocity_s.mean("sample")
    # Knot noise (sd 0.5-1.0 km/s), clipping and the shallow lowering shift the
    # mean off the trend by a few tenths: check the trend's shape, not equality.
    assert 1.2 < float(mean.sel(depth=0.0)) < 2.4
    assert 3.2 < float(mean.sel(depth=30.0)) < 3.9
    assert 4.0 < float(mean.sel(depth=80.0)) < 4.6
    assert np.all(np.diff(mean.values[::20]) > 0)


def test_strong_prior_layer_statistics(draws):
    """Strong prior: type weights, Moho range, per-layer Vp/Vs and Brocher density."""
    ds = draws["strong-corrected"]
    kinds, counts = np.unique(ds.tectonic_type.values, return_counts=True)
    weights = {k: v["weight"] for k, v in priors.TECTONIC_TYPES.items()}
    for kind, count in zip(kinds, counts, strict=True):
        p = weights[kind]
        # 4 binomial standard deviations: fails by chance once in ~16,000 runs.
        assert abs(count - p * N_STATS) <= 4 * np.sqrt(N_STATS * p * (1 - p)), kind
    for kind, t in priors.TECTONIC_TYPES.items():
        moho = ds.moho_depth.values[ds.tectonic_type.values == kind]
        # Moho = crust thickness, or deeper when the lower crust is raised to 2 km.
        assert moho.min() >= t["crust"][0] - 1e-9
        assert moho.max() <= max(t["crust"][1], 0.7 * t["crust"][1] + 2.0) + 1e-9
    faithful = draws["strong"]
    ratio = (faithful.velocity_p / faithful.velocity_s).values
    assert ratio.min() >= 1.6 and ratio.max() <= 2.0
    mantle = faithful.depth.values[None, :] >= faithful.moho_depth.values[:, None]
    assert ratio[mantle].min() >= 1.7
    assert_allclose(faithful.density.values, priors.brocher_density(faithful.velocity_p.values))
    # The corrected prior keeps Vp at or above water's and Brocher's law in its range.
    low, high = priors.BROCHER_VALIDITY
    vp = ds.velocity_p.values
    assert vp.min() >= low
    assert_allclose(ds.density.values, priors.brocher_density(np.clip(vp, low, high)))
    assert (vp == low).any()  # slow sediments whose Vp was raised


def test_strong_prior_vs_ranges(draws):
    """Strong-corrected prior: Vs stays inside the union of its type's layer ranges."""
    ds = draws["strong-corrected"]
    for kind, t in priors.TECTONIC_TYPES.items():
        vs = ds.velocity_s.values[ds.tectonic_type.values == kind]
        low = min(r[0] for r in t["vs"])
        high = max(r[1] for r in t["vs"])
        assert vs.min() >= low - 1e-9 and vs.max() <= high + 1e-9, kind


def test_strong_prior_lvz_frequency(draws):
    """Strong prior: the LVZ occurs with each type's probability, centred in its range."""
    ds = draws["strong"]
    for kind, t in priors.TECTONIC_TYPES.items():
        sel = ds.tectonic_type.values == kind
        n, p = sel.sum(), t["lvz"][0]
        assert abs(ds.lvz.values[sel].sum() - p * n) <= 4 * np.sqrt(n * p * (1 - p)) + 1
        centres = ds.lvz_depth.values[sel & ds.lvz.values]
        assert centres.min() >= t["lvz"][1][0] and centres.max() <= t["lvz"][1][1]
    assert np.isnan(ds.lvz_depth.values[~ds.lvz.values]).all()


def test_zero_padding_quirk_only_touches_the_surface(draws):
    """The faithful strong prior lowers the top two nodes (about 3/5 and 4/5 of the
    corrected values); away from the ends it equals the corrected prior."""
    faithful, corrected = draws["strong"], draws["strong-corrected"]
    top = faithful.velocity_s.values[:, 0] / corrected.velocity_s.values[:, 0]
    second = faithful.velocity_s.values[:, 1] / corrected.velocity_s.values[:, 1]
    assert np.median(top) == pytest.approx(0.6, abs=0.05)
    assert np.median(second) == pytest.approx(0.8, abs=0.05)
    # Surface Vs below the sediment range and densities below 1 g/cm^3 occur.
    assert (faithful.density.values[:, 0] < 1.0).mean() > 0.05
    interior = slice(4, None)  # the bottom included: both are generated to 150 km
    same = np.all(faithful.velocity_s.values[:, interior] == corrected.velocity_s.values[:,
                                                                                       interior],
                  axis=1)
    assert same.mean() > 0.95


@pytest.mark.parametrize("prior", ["weak", "strong", "strong-corrected"])
def test_bottom_nodes_follow_the_interior_trend(draws, prior):
    """Generated to 150 km and cut, a prior's half-space node is an interior node.

    Mean Vs at 126-127.5 km must match the linear trend of 110-125 km extrapolated
    to those depths within 0.02 km/s (the mean's standard error is about
    0.2 / sqrt(1500) = 0.005 km/s). A generator smoothed on the grid itself
    (zero padding at 127.5 km) fails by about 0.1-0.2 km/s.
    """
    ds = draws[prior]
    mean = ds.velocity_s.mean("sample")
    fit = mean.sel(depth=slice(110.0, 125.0))
    slope, intercept = np.polyfit(fit.depth.values, fit.values, 1)
    bottom = mean.sel(depth=slice(126.0, 127.5))
    trend = slope * bottom.depth.values + intercept
    assert np.abs(bottom.values - trend).max() < 0.02, (bottom.values, trend)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"prior": "medium", "n": 2, "seed": 0},
         r"Unknown prior 'medium'; valid choices are \['litho1', 'strong', 'strong-corrected', "
         r"'strong-decorrelated', 'strong-decorrelated-vp-density', 'weak'\]"),
        ({"prior": "weak", "n": 0, "seed": 0}, r"n must be an integer >= 1, got 0"),
        ({"prior": "weak", "n": 2.5, "seed": 0}, r"n must be an integer >= 1, got 2.5"),
        ({"prior": "weak", "n": 2, "seed": -1}, r"seed must be an integer >= 0, got -1"),
        ({"prior": "weak", "n": 2, "seed": 0, "start": -3},
         r"start must be an integer >= 0, got -3"),
    ],
)
def test_bad_arguments_are_rejected(kwargs, match):
    """Unknown priors and bad sizes raise errors that list the valid choices or rule."""
    with pytest.raises(ValueError, match=match):
        priors.sample(**kwargs)


def test_registry_adds_and_protects_names():
    """register_prior adds a usable prior and refuses to overwrite silently."""

    def draw(rng, depth):
        vs = 3.0 + 0.01 * depth + rng.normal(0, 0.01, depth.size)
        return {"velocity_p": 1.8 * vs, "velocity_s": vs, "density": 2.7 + 0 * vs,
                "crust": 30.0}

    priors.register_prior("linear-test", draw, description="test",
                          extras={"crust": ("km", "crust")})
    try:
        ds = priors.sample("linear-test", 3, seed=0)
        assert ds.crust.attrs["units"] == "km" and ds.sizes["sample"] == 3
        assert "linear-test" in priors.available_priors()
        with pytest.raises(ValueError, match="already registered"):
            priors.register_prior("linear-test", draw)
    finally:
        priors._REGISTRY.pop("linear-test")


def test_decorrelated_prior_perturbs_each_parameter_independently():
    """strong-decorrelated = the faithful strong draw times independent smooth factors.

    The same (seed, index) gives the same underlying strong model, so the log-ratio
    is the perturbation itself: sd DECORRELATION_SD per channel (each draw is
    rescaled to unit sd before the factor), and across 200 models the three
    channels' perturbations are uncorrelated (|r| < 0.1; the sampling sd of r is
    about 1/sqrt(200 * 256 / correlated-length) ~ 0.02).
    """
    n = 200
    strong = priors.sample("strong", n, seed=11)
    decorrelated = priors.sample("strong-decorrelated", n, seed=11)
    assert_allclose(decorrelated.moho_depth, strong.moho_depth)
    logs = {name: np.log(decorrelated[name].values / strong[name].values)
            for name in ("velocity_p", "velocity_s", "density")}
    for values in logs.values():
        assert_allclose(values.std(axis=1), priors.DECORRELATION_SD, rtol=1e-6)
    flat = np.array([v.ravel() for v in logs.values()])
    r = np.corrcoef(flat)
    assert np.abs(r[np.triu_indices(3, 1)]).max() < 0.1
    # Density no longer follows Brocher's law exactly.
    brocher = priors.brocher_density(decorrelated.velocity_p)
    assert np.abs(decorrelated.density - brocher).max() > 0.05
    assert priors.extra_variables("strong-decorrelated") == priors.extra_variables("strong")
    with pytest.raises(ValueError, match="Unknown prior 'medium'"):
        priors.extra_variables("medium")


def test_ablation_perturbs_vp_and_density_only_with_the_same_draws():
    """strong-decorrelated-vp-density keeps the strong Vs and shares the remedy's Vp and
    density factors exactly (the same random stream, paired draws)."""
    strong = priors.sample("strong", 20, seed=13)
    remedy = priors.sample("strong-decorrelated", 20, seed=13)
    ablation = priors.sample("strong-decorrelated-vp-density", 20, seed=13)
    assert_allclose(ablation.velocity_s, strong.velocity_s)
    assert_allclose(ablation.velocity_p, remedy.velocity_p)
    assert_allclose(ablation.density, remedy.density)
