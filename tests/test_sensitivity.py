"""Tests of kernels.sensitivity: the disba reference engine and the kernel forms."""

from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from numpy.testing import assert_allclose

from kernels import io, priors
from kernels.forward import dispersion
from kernels.io import layered_model
from kernels.sensitivity import (
    display_form,
    group_kernels,
    kernel_dataset,
    mode_jumps,
    peak_depth,
    per_km,
    phase_kernel,
    phase_kernels,
    relative,
    sum_rule_residual,
)

POISSON = np.sqrt(3.0)


def _homogeneous(n=20, vs=3.5):
    return layered_model([2.0] * n, [POISSON * vs] * n, [vs] * n, [2.7] * n)


def _two_layers():
    return layered_model([8.0, 8.0, 1.0], [5.6, 6.4, 8.0], [3.2, 3.7, 4.6], [2.6, 2.8, 3.3])


def test_kernel_dims_units_and_flags():
    """Kernels have dims (sample, period, depth), units, and a per-period failure flag."""
    models = priors.sample("weak", 2, seed=0).isel(depth=slice(0, 40))
    k = phase_kernel(models, [5.0, 10.0], wave="love")
    assert k.dims == ("sample", "period", "depth") and k.shape == (2, 2, 40)
    assert k.attrs["units"] == "(km/s)/(km/s)" and k.name == "dc_dvelocity_s"
    assert k.failed.dims == ("sample", "period") and not k.failed.values.any()
    assert phase_kernel(models.isel(sample=0), [5.0]).dims == ("period", "depth")


def test_love_waves_have_zero_vp_kernel():
    """Love waves do not feel Vp: the Vp kernel is exactly zero."""
    for method in ("exact", "disba"):
        k = phase_kernel(_two_layers(), [3.0, 10.0, 30.0], wave="love", parameter="velocity_p",
                         method=method)
        assert np.all(k.values == 0.0)


def test_disba_reference_error_is_of_the_order_of_its_step():
    """disba's one-sided 2.5 % difference misses the half-space sum rule by O(step).

    On a homogeneous Poisson solid, c = 0.9194 Vs is non-dispersive, so the
    exact kernels obey sum_i (a_i dc/da_i + b_i dc/db_i) = c and
    sum_i rho_i dc/drho_i = 0. A one-sided difference with relative step
    h = 0.025 errs by about h/2 times the relative curvature of c, i.e. a few
    per cent: the test pins that size (0.5-5 %), the floor of the reference
    against which the paper judged the surrogate.
    """
    model, periods = _homogeneous(), [5.0, 20.0]
    kernels = {p: phase_kernel(model, periods, parameter=p, method="disba").sum("depth").values
               for p in ("velocity_s", "velocity_p", "density")}
    c = dispersion(model, periods).values
    assert_allclose(c, 0.9194016 * 3.5, rtol=2e-6)
    velocity_sum = 3.5 * kernels["velocity_s"] + POISSON * 3.5 * kernels["velocity_p"]
    error = np.abs(velocity_sum / c - 1)
    assert np.all((error > 0.005) & (error < 0.05)), error
    assert np.all(np.abs(2.7 * kernels["density"]) / c < 0.05)


def test_vs_kernel_peaks_deeper_at_longer_periods():
    """Longer periods sample deeper: the Vs-kernel peak depth grows with period."""
    model = priors.sample("strong-corrected", 1, seed=3).isel(sample=0, depth=slice(0, 200))
    k = phase_kernel(model, [3.0, 10.0, 30.0])
    peaks = k.depth.values[k.argmax("depth").values]
    assert peaks[0] < peaks[1] < peaks[2]


def _untrapped_strong_model():
    """Strong-prior model 35 (seed 2026): its Love root leaves the half-space's Vs."""
    return priors.sample("strong", 1, seed=2026, start=35).isel(sample=0)


@pytest.mark.parametrize("method", ["exact", "disba"])
def test_untrapped_period_is_nan_with_flags(method):
    """A period without a trapped root is NaN over depth and flagged; others are finite."""
    model = _untrapped_strong_model()
    periods = np.arange(2.0, 61.0)
    c = dispersion(model, periods, wave="love")
    bad = np.isnan(c.values)
    assert bad.any() and (c.untrapped.values == bad).all()
    pair = np.sort([periods[bad][0], periods[~bad][0]])
    k = phase_kernel(model, pair, wave="love", method=method)
    failed = pair == periods[bad][0]
    assert k.failed.values.tolist() == failed.tolist()
    assert k.untrapped.values.tolist() == failed.tolist()
    assert np.isnan(k.values[failed]).all() and np.isfinite(k.values[~failed]).all()


def test_forms():
    """per_km divides by thickness; relative is (p/c) dc/dp; the display form sums to 1."""
    model = _two_layers()
    periods = [5.0, 20.0]
    k = phase_kernel(model, periods)
    assert_allclose(per_km(k, model.thickness).values, k.values / model.thickness.values)
    c = dispersion(model, periods)
    rel = relative(k, model.velocity_s, c)
    assert_allclose(rel.values, k.values * model.velocity_s.values / c.values[:, None])
    assert rel.attrs["units"] == "1"
    grid = xr.DataArray(np.random.default_rng(0).normal(size=(2, 256)),
                        dims=("period", "depth"), coords={"depth": 0.5 * np.arange(256)})
    shown = display_form(grid)
    assert shown.depth.values[-1] == 110.0
    assert_allclose(abs(shown).sum("depth").values, 1.0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"parameter": "velocity"}, r"parameter must be one of \['thickness', 'velocity_p'"),
        ({"method": "adjoint"}, r"method must be one of \['exact', 'disba'\], got 'adjoint'"),
        ({"mode": 1}, r"method='exact' supports the fundamental mode \(mode=0\) only"),
        ({"wave": "p"}, r"wave must be one of"),
    ],
)
def test_bad_options_are_rejected(kwargs, match):
    """Unknown parameters, methods and waves raise errors listing the choices."""
    with pytest.raises(ValueError, match=match):
        phase_kernel(_two_layers(), [5.0], **kwargs)


def test_bad_display_window_is_rejected():
    """The moving-average window must be a positive odd number of nodes."""
    k = xr.DataArray(np.ones((1, 10)), dims=("period", "depth"),
                     coords={"depth": np.arange(10.0)})
    with pytest.raises(ValueError, match="window must be a positive odd number of nodes, got 4"):
        display_form(k, window=4)


# --------------------------------------------------------------------------
# The exact engine
# --------------------------------------------------------------------------

MODEL_VARIABLES = ("thickness", "velocity_p", "velocity_s", "density")


def _varied_models():
    """Models of every prior, cut to 64 nodes (32 km) to keep the test fast."""
    return [priors.sample(prior, 2, seed=11).isel(depth=slice(0, 64))
            for prior in ("weak", "strong", "strong-corrected")] + [_two_layers()]


@pytest.mark.parametrize("wave", ["rayleigh", "love"])
def test_exact_kernels_obey_the_scaling_sum_rules(wave):
    """sum(h dc/dh + a dc/da + b dc/db) = c, sum(a dc/da + b dc/db) = c + T dc/dT and
    sum(rho dc/drho) = 0 hold to 1e-8 on varied models.

    The identities are exact; the Newton-polished root is good to ~1e-12 and
    the compound-matrix products lose a few digits to cancellation, so 1e-8
    relative is a safe bound that still fails for any real error.
    """
    periods = np.array([2.0, 5.0, 12.0, 30.0, 60.0])
    for model in _varied_models():
        k = phase_kernels(model, periods, wave=wave)
        h, a, b, rho = (model[v] for v in MODEL_VARIABLES)
        interior = k.depth < model.depth.values[-1]  # the half-space has no thickness
        full = ((h * k.dc_dthickness).where(interior, 0.0) + a * k.dc_dvelocity_p
                + b * k.dc_dvelocity_s).sum("depth")
        assert_allclose(full, k.phase_velocity, rtol=1e-8)
        velocity = (a * k.dc_dvelocity_p + b * k.dc_dvelocity_s).sum("depth")
        assert_allclose(velocity, k.phase_velocity + k.period * k.dc_dperiod, rtol=1e-8)
        assert np.abs((rho * k.dc_ddensity).sum("depth") / k.phase_velocity).max() < 1e-8


def test_exact_half_space_kernels_are_analytic():
    """A homogeneous Poisson solid: c = 0.9194 Vs, so sum(a dc/da + b dc/db) / Vs = 0.9194
    and the kernels add up to the analytic derivative of c with respect to Vs and Vp."""
    model, periods = _homogeneous(), np.array([5.0, 20.0])
    k = phase_kernels(model, periods)
    total = (POISSON * 3.5 * k.dc_dvelocity_p + 3.5 * k.dc_dvelocity_s).sum("depth") / 3.5
    assert_allclose(total, 0.9194016, rtol=1e-6)
    # c = Vs g(Vp / Vs) on a half-space; differentiate g numerically (smooth, exact
    # formula) to get d c / d Vs at fixed Vp, summed over all layers.
    def rayleigh_speed(vp, vs):
        from scipy.optimize import brentq
        return vs * brentq(lambda x: (2 - x**2) ** 2 - 4 * np.sqrt(1 - x**2 * vs**2 / vp**2)
                           * np.sqrt(1 - x**2), 0.5, 0.99999, xtol=1e-15)
    vp, vs, eps = POISSON * 3.5, 3.5, 1e-5
    expected = (rayleigh_speed(vp, vs + eps) - rayleigh_speed(vp, vs - eps)) / (2 * eps)
    assert_allclose(k.dc_dvelocity_s.sum("depth"), expected, rtol=1e-6)


def _central_difference(model, periods, wave, perturb, step):
    """d c / d s of c(model perturbed by (1 + s) on a selection), central, disba roots."""
    plus, minus = model.copy(deep=True), model.copy(deep=True)
    for name, mask in perturb.items():
        plus[name] = model[name] * xr.where(mask, 1 + step, 1.0)
        minus[name] = model[name] * xr.where(mask, 1 - step, 1.0)
    return ((dispersion(plus, periods, wave=wave) - dispersion(minus, periods, wave=wave))
            / (2 * step)).values


def _relative_l2(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


@pytest.mark.parametrize(
    ("wave", "parameter"),
    [(wave, parameter) for wave in ("rayleigh", "love")
     for parameter in ("velocity_s", "velocity_p", "density", "thickness")
     if (wave, parameter) != ("love", "velocity_p")],  # zero, tested separately
)
def test_exact_kernels_match_central_differences_per_layer(wave, parameter):
    """On a thick-layer model every layer's kernel matches a central difference (1 %).

    With a 1 % relative step the truncation error is ~step^2 / 6 ~ 2e-5 and
    disba's root noise (1e-6 of c) contributes ~1e-6 / (2 step) ~ 5e-5 of the
    kernel's scale: far below the 1 % relative-L2 bound.
    """
    model = layered_model([4.0, 7.0, 10.0, 12.0, 15.0, 1.0], [4.2, 5.9, 6.3, 6.8, 7.9, 8.2],
                          [2.3, 3.4, 3.6, 3.9, 4.4, 4.6], [2.3, 2.7, 2.8, 3.0, 3.3, 3.4])
    periods = np.array([3.0, 8.0, 20.0, 45.0])
    k = phase_kernel(model, periods, wave=wave, parameter=parameter)
    layers = range(model.sizes["depth"] - (1 if parameter == "thickness" else 0))
    step = 0.01
    for i in layers:
        mask = xr.zeros_like(model.depth, dtype=bool)
        mask[i] = True
        fd = _central_difference(model, periods, wave, {parameter: mask}, step)
        exact = (k.isel(depth=i) * model[parameter].isel(depth=i)).values
        scale = np.abs(k * model[parameter]).max("depth").values
        assert np.all(np.abs(fd - exact) <= 1e-2 * scale), (i, fd, exact)


@pytest.mark.parametrize("wave", ["rayleigh", "love"])
def test_exact_kernels_match_block_central_differences_on_the_paper_grid(wave):
    """On the 0.5 km grid, the kernel summed over 5 km blocks matches perturbing the
    whole block (1 % relative L2 over blocks and periods).

    Perturbing one 0.5 km layer moves c by less than disba's root noise at
    long periods, so blocks of 10 layers are compared instead (step 1 %, as above).
    """
    model = priors.sample("weak", 1, seed=21).isel(sample=0, depth=slice(0, 120))
    periods = np.array([4.0, 15.0, 40.0])
    k = phase_kernel(model, periods, wave=wave)
    weighted = k * model.velocity_s
    fd, exact = [], []
    for top in np.arange(0.0, 55.0, 5.0):
        mask = (model.depth >= top) & (model.depth < top + 5.0)
        fd.append(_central_difference(model, periods, wave, {"velocity_s": mask}, 0.01))
        exact.append(weighted.where(mask, 0.0).sum("depth").values)
    assert _relative_l2(np.array(exact), np.array(fd)) < 1e-2


def test_disba_reference_agrees_with_exact_to_its_step():
    """disba's finite-difference kernel is within a few per cent of the exact one."""
    model = priors.sample("strong-corrected", 1, seed=4).isel(sample=0, depth=slice(0, 80))
    periods = [5.0, 15.0]
    exact = phase_kernel(model, periods).values
    reference = phase_kernel(model, periods, method="disba").values
    error = _relative_l2(reference, exact)
    assert 1e-3 < error < 0.08


def test_exact_dc_dt_and_group_velocity():
    """The exact dc/dT matches a central difference in period, and the group velocity
    U = c / (1 + (T/c) dc/dT) matches disba's.

    Central difference with a 0.5 % period step: truncation ~ (0.005)^2 / 6 of the
    curve's relative curvature and root noise ~ 1e-6 c / 0.01 T; 1e-3 of the
    largest |T dc/dT| covers both. disba's group velocity differentiates with a
    2.5 % frequency step, whose truncation error reaches ~1.5e-3 of U on this
    strongly curved curve (a slow surface layer): hence 3e-3 there.
    """
    model = priors.sample("weak", 1, seed=2).isel(sample=0)
    periods = np.arange(3.0, 60.0, 7.0)
    k = phase_kernels(model, periods, parameters=("velocity_s",))
    step = 0.005 * periods
    fd = (dispersion(model, periods + step).values
          - dispersion(model, periods - step).values) / (2 * step)
    scale = np.abs(periods * fd).max()
    assert np.abs(periods * (k.dc_dperiod.values - fd)).max() < 1e-3 * scale
    assert_allclose(k.group_velocity, dispersion(model, periods, velocity="group"), rtol=3e-3)


REGRESSION = Path(__file__).parent / "data" / "ak135_crust_kernels.npz"


def ak135_crust():
    """The continental crust and uppermost mantle of AK135 (Kennett et al., 1995)."""
    return layered_model([20.0, 15.0, 1.0], [5.8, 6.5, 8.04], [3.46, 3.85, 4.48],
                         [2.72, 2.92, 3.3198])


def test_regression_ak135():
    """Kernels of AK135's crust equal the stored regression arrays (see their attrs)."""
    stored = np.load(REGRESSION)
    k = phase_kernels(ak135_crust(), stored["period"], wave="rayleigh")
    for name in ("phase_velocity", "dc_dvelocity_s", "dc_dvelocity_p", "dc_ddensity",
                 "dc_dthickness"):
        # The roots are polished to ~1e-12 of c, and where they start from depends on the
        # root search's bracketing step; a kernel moves by about as much as c does, so
        # entries that are ~1e-11 of the kernel's largest one are roundoff. Hence an
        # absolute floor of 1e-9 of each array's largest entry beside the relative 1e-7.
        atol = 1e-9 * np.abs(stored[name]).max()
        assert_allclose(k[name].values, stored[name], rtol=1e-7, atol=atol, err_msg=name)


def test_parallel_kernels_equal_serial():
    """Two worker processes give exactly the serial kernels, in sample order."""
    models = priors.sample("weak", 4, seed=8, start=3).isel(depth=slice(0, 50))
    serial = phase_kernels(models, [4.0, 20.0], n_jobs=1)
    parallel = phase_kernels(models, [4.0, 20.0], n_jobs=2)
    xr.testing.assert_identical(serial, parallel)
    assert serial.sample.values.tolist() == [3, 4, 5, 6]


def test_kernel_dataset_and_peak_depth():
    """kernel_dataset stacks waves with per-wave flags; Love kernels peak shallower
    than Rayleigh kernels and both deepen with period on a smooth gradient model."""
    depth = 0.5 * np.arange(200)
    vs = 2.8 + 1.7 * (1 - np.exp(-depth / 30.0))
    model = io.model_dataset(depth, np.full(200, 0.5), 1.75 * vs, vs, 1.74 * (1.75 * vs) ** 0.25)
    models = xr.concat([model, model], dim="sample")
    k = kernel_dataset(models, [5.0, 15.0, 40.0])
    assert k.failed.dims == ("sample", "wave", "period")
    peaks = peak_depth(relative(k.dc_dvelocity_s, models.velocity_s, k.phase_velocity),
                       models.thickness).isel(sample=0)
    rayleigh, love = peaks.sel(wave="rayleigh").values, peaks.sel(wave="love").values
    assert np.all(np.diff(rayleigh) > 0) and np.all(np.diff(love) > 0)
    assert np.all(love < rayleigh)
    assert peaks.max() < depth[-1]


@pytest.mark.parametrize("wave", ["rayleigh", "love"])
def test_group_kernels_sum_rule_and_block_differences(wave):
    """Group-velocity kernels obey the scaling sum rule (U for c) to 1e-8, and match a
    5 km block central difference of the exact group velocity (1 %).

    The difference uses U = c / (1 + (T/c) dc/dT) with exact dc/dT on the perturbed
    models, so only the 1 % step's truncation (~2e-5) and root noise enter.
    """
    model = priors.sample("weak", 1, seed=5).isel(sample=0, depth=slice(0, 80))
    periods = np.array([3.0, 10.0, 30.0])
    k = group_kernels(model, periods, wave=wave)
    h, a, b, rho = (model[v] for v in MODEL_VARIABLES)
    interior = k.depth < model.depth.values[-1]
    total = ((h * k.dU_dthickness).where(interior, 0.0) + a * k.dU_dvelocity_p
             + b * k.dU_dvelocity_s).sum("depth")
    assert_allclose(total, k.group_velocity, rtol=1e-8)
    assert np.abs((rho * k.dU_ddensity).sum("depth") / k.group_velocity).max() < 1e-8
    assert_allclose(k.group_velocity,
                    phase_kernels(model, periods, wave=wave).group_velocity, rtol=1e-12)
    mask = (model.depth >= 5.0) & (model.depth < 10.0)
    values = []
    for sign in (1, -1):
        perturbed = model.assign(velocity_s=model.velocity_s * xr.where(mask, 1 + sign * 0.01,
                                                                        1.0))
        values.append(phase_kernels(perturbed, periods, wave=wave,
                                    parameters=("velocity_s",)).group_velocity.values)
    fd = (values[0] - values[1]) / 0.02
    exact = (k.dU_dvelocity_s * b).where(mask, 0.0).sum("depth").values
    assert np.all(np.abs(fd - exact) <= 1e-2 * np.abs(exact).max())


def test_sum_rule_residual_helper():
    """sum_rule_residual vanishes for exact kernels and is of the step size for disba's."""
    model = _two_layers()
    periods = [5.0, 20.0]
    exact = phase_kernels(model, periods)
    assert float(sum_rule_residual(model, exact).max()) < 1e-8
    reference = phase_kernels(model, periods, method="disba")
    assert 1e-3 < float(sum_rule_residual(model, reference).max()) < 0.1


def test_mode_jumps_flags_the_old_steps_jump_and_not_the_chosen_step():
    """Weak model 305, Love: at 0.005 km/s the 2 s root is another mode's (see
    test_forward); the continuity check flags 2-3 s there and nothing at the
    default step."""
    model = priors.sample("weak", 1, seed=2026, start=305)
    periods = np.arange(2.0, 8.0)
    old = mode_jumps(model, periods, wave="love", dc=0.005)
    assert old.values[0].tolist() == [True, True, False, False, False, False]
    assert not bool(mode_jumps(model, periods, wave="love").any())


def test_mode_jumps_refines_a_steep_but_smooth_curve():
    """Strong model 3 (seed 11), Love at 7-8 s: the curve rises from 0.98 to
    2.39 km/s within the second, so neighbouring periods alone leave a trapezoid
    residual above 0.5 km/s; the halvings show it is one smooth branch."""
    model = priors.sample("strong", 1, seed=11, start=3)
    periods = np.array([6.0, 7.0, 8.0, 9.0])
    k = phase_kernels(model, periods, wave="love", parameters=())
    c, d = k.phase_velocity.values[0], k.dc_dperiod.values[0]
    coarse = c[2] - c[1] - 0.5 * (d[1] + d[2])
    assert abs(coarse) > 0.5
    assert not bool(mode_jumps(model, periods, wave="love", kernels=k).any())


def test_kernel_dataset_carries_the_mode_check():
    models = priors.sample("weak", 2, seed=2026, start=305)
    ds = kernel_dataset(models, [2.0, 3.0, 4.0], waves=("love",))
    assert ds.mode_jump.dims == ("sample", "wave", "period")
    assert not bool(ds.mode_jump.any())
    assert "mode_jump" not in kernel_dataset(models, [2.0, 3.0], waves=("love",),
                                             check_modes=False).coords


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"periods": [5.0]}, r"at least two periods"),
    ({"tol": 0.0}, r"tol must be a positive number"),
    ({"levels": -1}, r"levels must be a non-negative integer"),
])
def test_mode_jumps_rejects_bad_input(kwargs, match):
    models = priors.sample("weak", 1, seed=1)
    arguments = {"periods": [5.0, 6.0], **kwargs}
    with pytest.raises(ValueError, match=match):
        mode_jumps(models, **arguments)
