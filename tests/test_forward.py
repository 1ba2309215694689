"""Tests of kernels.forward against analytic solutions, invariances and surf96."""

import numpy as np
import pytest
import xarray as xr
from numpy.testing import assert_allclose
from scipy.optimize import brentq

from kernels import priors
from kernels.forward import dispersion, dispersion_curves, root_step_audit, summarise_step_audit
from kernels.io import layered_model

# disba refines every root by bisection until the bracket is below 1e-6 of the
# phase velocity (surf96's ``nevill``); two independent roots therefore agree
# to about 2e-6 relative, and analytic roots are matched to the same bound.
ROOT_RTOL = 2e-6

#: Rayleigh speed on a Poisson solid (Vp = sqrt(3) Vs): c^2/Vs^2 = 2 - 2/sqrt(3).
POISSON_RAYLEIGH = np.sqrt(2.0 - 2.0 / np.sqrt(3.0))


def _half_space(vs=3.5, n_layers=4, density=2.7):
    return layered_model([3.0] * n_layers, [np.sqrt(3.0) * vs] * n_layers, [vs] * n_layers,
                         [density] * n_layers)


def _random_layered(rng, n_layers=8):
    thickness = rng.uniform(0.5, 8.0, n_layers)
    vs = np.sort(rng.uniform(1.5, 4.7, n_layers))
    vp = vs * rng.uniform(1.65, 1.95, n_layers)
    return layered_model(thickness, vp, vs, rng.uniform(2.0, 3.4, n_layers))


@pytest.mark.parametrize("velocity", ["phase", "group"])
def test_poisson_half_space_rayleigh(periods, velocity):
    """A homogeneous Poisson solid has non-dispersive Rayleigh waves at 0.9194 Vs."""
    c = dispersion(_half_space(vs=3.5), periods, velocity=velocity)
    assert c.dims == ("period",)
    assert_allclose(c.values, POISSON_RAYLEIGH * 3.5, rtol=ROOT_RTOL)


def _love_layer_over_half_space(period, h, vs1, rho1, vs2, rho2):
    """Fundamental Love root of the closed-form period equation (Aki & Richards 7.6)."""
    omega = 2 * np.pi / period
    mu1, mu2 = rho1 * vs1**2, rho2 * vs2**2

    def residual(c):
        q1 = np.sqrt(1 / vs1**2 - 1 / c**2)
        q2 = np.sqrt(1 / c**2 - 1 / vs2**2)
        return np.tan(omega * h * q1) - mu2 * q2 / (mu1 * q1)

    # The fundamental branch has omega h q1 in (0, pi/2): bracket it there.
    c_max = min(vs2, 1 / np.sqrt(max(1 / vs1**2 - (np.pi / 2 / (omega * h)) ** 2, 1e-30)))
    eps = 1e-12
    return brentq(residual, vs1 * (1 + eps), c_max * (1 - eps), xtol=1e-14)


def test_love_layer_over_half_space(periods):
    """Love waves in a layer over a half-space satisfy their closed-form period equation."""
    h, vs1, rho1, vs2, rho2 = 12.0, 3.2, 2.6, 4.5, 3.3
    model = layered_model([h, 1.0], [5.8, 8.0], [vs1, vs2], [rho1, rho2])
    c = dispersion(model, periods, wave="love")
    expected = [_love_layer_over_half_space(t, h, vs1, rho1, vs2, rho2) for t in periods]
    assert_allclose(c.values, expected, rtol=ROOT_RTOL)
    # the curve must span a real range of the waveguide, or the test proves little
    assert c.values[0] < 3.4 and c.values[-1] > 4.2


@pytest.mark.parametrize("wave", ["rayleigh", "love"])
def test_scaling_velocities_and_thickness(rng, periods, wave):
    """Scaling thickness and velocities by s scales the phase velocity by s."""
    model = _random_layered(rng)
    s = 1.7
    scaled = model.copy()
    for name in ("thickness", "velocity_p", "velocity_s"):
        scaled[name] = model[name] * s
    c = dispersion(model, periods, wave=wave)
    assert_allclose(dispersion(scaled, periods, wave=wave).values, s * c.values, rtol=ROOT_RTOL)


@pytest.mark.parametrize("wave", ["rayleigh", "love"])
def test_density_scaling_leaves_velocity_unchanged(rng, periods, wave):
    """Scaling every density by the same factor leaves phase velocities unchanged."""
    model = _random_layered(rng)
    heavier = model.assign(density=model.density * 2.3)
    assert_allclose(dispersion(heavier, periods, wave=wave).values,
                    dispersion(model, periods, wave=wave).values, rtol=ROOT_RTOL)


@pytest.mark.parametrize("wave", ["rayleigh", "love"])
def test_splitting_a_layer_changes_nothing(rng, periods, wave):
    """Splitting a layer into two identical halves leaves the curve unchanged."""
    model = _random_layered(rng)
    h, vp, vs, rho = (model[v].values for v in ("thickness", "velocity_p", "velocity_s",
                                                 "density"))
    k = 3
    split = layered_model(np.r_[h[:k], h[k] / 2, h[k] / 2, h[k + 1:]],
                          np.r_[vp[:k + 1], vp[k:]], np.r_[vs[:k + 1], vs[k:]],
                          np.r_[rho[:k + 1], rho[k:]])
    assert_allclose(dispersion(split, periods, wave=wave).values,
                    dispersion(model, periods, wave=wave).values, rtol=ROOT_RTOL)


def test_love_waves_do_not_feel_vp(rng, periods):
    """Love-wave phase velocities do not depend on Vp."""
    model = _random_layered(rng)
    other = model.assign(velocity_p=model.velocity_p * 1.1)
    c = dispersion(model, periods, wave="love").values
    # Vp only moves the start of the root search, so the roots agree to the
    # bisection tolerance rather than bit for bit.
    assert_allclose(dispersion(other, periods, wave="love").values, c, rtol=ROOT_RTOL)
    # while Rayleigh waves do, so the comparison above is not vacuous
    assert not np.allclose(dispersion(other, periods).values, dispersion(model, periods).values)


@pytest.mark.parametrize("prior", ["weak", "strong"])
@pytest.mark.parametrize("wave", ["rayleigh", "love"])
def test_agrees_with_fortran_surf96(periods, prior, wave):
    """disba agrees with pysurf96 (Fortran surf96, flat earth) on random prior models."""
    surf96 = pytest.importorskip("pysurf96").surf96
    # surf96 holds at most 100 layers: keep every third node (1.5 km layers, 86
    # layers) of the prior draws; both codes then solve the very same model.
    models = priors.sample(prior, 12, seed=99).isel(depth=slice(0, None, 3))
    models["thickness"] = models.thickness * 3
    c = dispersion(models, periods, wave=wave).values
    compared, mismatched = 0, []
    for i in range(models.sizes["sample"]):
        m = models.isel(sample=i)
        try:
            reference = surf96(m.thickness.values, m.velocity_p.values, m.velocity_s.values,
                               m.density.values, periods, wave=wave, mode=1,
                               velocity="phase", flat_earth=True)
        except Exception:  # surf96 gives up on some low-velocity surface layers
            continue
        ok = np.isfinite(c[i]) & (reference > 0)
        compared += ok.sum()
        # Both bisect to 1e-6 of c; 1e-5 leaves room for surf96's single precision.
        bad = ok & ~np.isclose(c[i], reference, rtol=1e-5, atol=0)
        mismatched += [(i, k) for k in np.flatnonzero(bad)]
    assert compared >= 0.8 * c.size
    assert len(mismatched) <= 0.01 * compared, mismatched
    for i, k in mismatched:
        # surf96's single-precision search mis-brackets the shortest periods on
        # ultra-slow (< 0.2 km/s) surface layers: its value there is neither the
        # fundamental nor the first overtone. disba's root is the fundamental:
        # above the slowest Vs and below the first overtone.
        m = models.isel(sample=i)
        assert m.velocity_s.values[0] < 0.2, (i, k)
        overtone = dispersion(m, periods[k:k + 1], wave=wave, mode=1).values[0]
        assert m.velocity_s.values.min() < c[i, k] < overtone


def _unreachable_root_model():
    """A 0.5 km layer at Vs 0.3 km/s over a 4.0 km/s half-space.

    At periods >= 26 s the Love root lies within 1e-3 km/s below the
    half-space's Vs, closer than the root search's step can bracket: disba
    finds no root there.
    """
    return layered_model([0.5, 1.0], [0.54, 7.2], [0.3, 4.0], [1.5, 2.8])


def _slow_half_space_model():
    """30 km at Vs 3.5 and 90 km at 4.6 km/s over a 3.0 km/s half-space."""
    vs = np.array([3.5, 4.6, 3.0])
    return layered_model([30.0, 90.0, 1.0], 1.75 * vs, vs, [2.7, 3.3, 3.0])


def test_failed_root_is_nan_with_flag(periods):
    """A failed root gives NaN at that period and a flag, never a shorter array."""
    model = _unreachable_root_model()
    c = dispersion(model, periods, wave="love")
    assert c.shape == periods.shape and bool(c.failed)
    nan = np.isnan(c.values)
    assert 0 < nan.sum() < periods.size
    assert not c.untrapped.values.any()  # no root at all, not an untrapped one
    # The periods that converged equal single-period solves of the same model.
    for k in np.flatnonzero(~nan)[:3]:
        single = dispersion(model, periods[k:k + 1], wave="love")
        assert_allclose(c.values[k], single.values[0], rtol=ROOT_RTOL)


@pytest.mark.parametrize("wave", ["love", "rayleigh"])
def test_untrapped_root_is_nan_with_flag_unless_kept(wave):
    """A root at or above the half-space's Vs is not a mode: NaN and flagged by default."""
    model = _slow_half_space_model()
    periods = np.arange(2.0, 61.0)
    c = dispersion(model, periods, wave=wave)
    assert np.isnan(c.values).all() and c.untrapped.values.all() and bool(c.failed)
    raw = dispersion(model, periods, wave=wave, keep_untrapped=True)
    assert raw.untrapped.values.all() and not bool(raw.failed)
    # disba's raw values: between the half-space's and the fast layer's Vs.
    assert (raw.values >= 3.0).all() and (raw.values < 4.6).all()
    low, high = {"love": (3.5, 4.6), "rayleigh": (3.2, 3.95)}[wave]
    assert (raw.values > low).all() and (raw.values < high).all()


def test_trapped_curves_carry_a_false_untrapped_flag(periods):
    """An ordinary waveguide (velocity increasing with depth) is trapped everywhere."""
    curves = dispersion_curves(_random_layered(np.random.default_rng(4)), periods)
    assert curves.untrapped.dims == ("wave", "period")
    assert not curves.untrapped.values.any() and np.isfinite(curves.values).all()


def test_parallel_equals_serial(periods):
    """Two worker processes return exactly the serial result, in sample order."""
    models = priors.sample("weak", 10, seed=3, start=5)
    serial = dispersion_curves(models, periods, n_jobs=1)
    parallel = dispersion_curves(models, periods, n_jobs=2)
    xr.testing.assert_identical(serial, parallel)
    assert serial.dims == ("sample", "wave", "period")
    assert serial.sample.values.tolist() == list(range(5, 15))
    assert serial.attrs["units"] == "km/s"


def _bad(model, name, index, value):
    values = model[name].values.copy()
    values[index] = value
    return model.assign({name: ("depth", values)})


@pytest.mark.parametrize(
    ("name", "value", "match"),
    [
        ("velocity_s", -1.0, r"velocity_s must be positive and finite; sample 0, layer 1 has "
                             r"velocity_s = -1 km/s"),
        ("velocity_s", 0.0, r"velocity_s must be positive.*velocity_s = 0 km/s"),
        ("velocity_p", np.nan, r"velocity_p must be positive and finite.*velocity_p = nan"),
        ("density", 0.0, r"density must be positive.*density = 0 g/cm\^3"),
        ("thickness", 0.0, r"thickness must be positive.*layer 1 has thickness = 0 km"),
        ("velocity_p", 3.0, r"velocity_p must exceed velocity_s; sample 0, layer 1"),
    ],
)
def test_invalid_model_is_rejected(name, value, match):
    """Invalid models raise ValueError naming the variable, the value and the rule."""
    model = layered_model([2.0, 3.0, 1.0], [5.0, 6.0, 8.0], [3.0, 3.5, 4.6], [2.5, 2.7, 3.3])
    with pytest.raises(ValueError, match=match):
        dispersion(_bad(model, name, 1, value), [5.0, 10.0])


@pytest.mark.parametrize(
    ("periods", "match"),
    [
        ([10.0, 5.0], r"strictly increasing; period\[1\] = 5 s follows period\[0\] = 10 s"),
        ([5.0, 5.0], r"strictly increasing"),
        ([-1.0, 5.0], r"positive and finite; period\[0\] = -1 s"),
        ([0.0, 5.0], r"positive and finite; period\[0\] = 0 s"),
        ([], r"non-empty"),
    ],
)
def test_invalid_periods_are_rejected(periods, match):
    """Unsorted, repeated, non-positive or empty periods raise a clear error."""
    with pytest.raises(ValueError, match=match):
        dispersion(_half_space(), periods)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"wave": "scholte"}, r"wave must be one of \['rayleigh', 'love'\], got 'scholte'"),
        ({"mode": -1}, r"mode must be an integer >= 0"),
        ({"velocity": "energy"}, r"velocity must be one of \['phase', 'group'\]"),
        ({"dc": 0.0}, r"dc must be a positive root-search step"),
        ({"n_jobs": 0}, r"n_jobs must be a positive integer or -1, got 0"),
    ],
)
def test_invalid_options_are_rejected(kwargs, match):
    """Unknown waves, negative modes, bad steps and worker counts raise clear errors."""
    with pytest.raises(ValueError, match=match):
        dispersion(_half_space(), [5.0], **kwargs)


def test_non_dataset_input_is_rejected():
    """A model that is not a Dataset, or lacks a variable, raises a clear error."""
    with pytest.raises(TypeError, match="must be an xarray.Dataset"):
        dispersion(np.ones((3, 4)), [5.0])
    with pytest.raises(ValueError, match=r"lacks the variable\(s\) \['density'\]"):
        dispersion(_half_space().drop_vars("density"), [5.0])


def test_higher_mode_missing_at_long_periods_is_nan():
    """A higher mode that does not exist at long periods is NaN there, not dropped."""
    model = layered_model([10.0, 1.0], [5.5, 8.0], [3.2, 4.6], [2.6, 3.3])
    c = dispersion(model, [1.0, 2.0, 50.0, 60.0], wave="love", mode=1)
    assert c.shape == (4,)
    assert np.isfinite(c.values[:2]).all() and np.isnan(c.values[2:]).all()
    assert bool(c.failed)


def test_chosen_root_step_avoids_the_mode_jump_of_the_old_one():
    """Weak-prior model 305 (seed 2026), Love at 2 s: the audit's hardest model.

    At disba's default step (0.005 km/s) two roots share one bracket and the
    search returns a higher mode's root (about 10 % too fast); the chosen step
    finds the fundamental mode, equal to the finest audited step's root.
    """
    model = priors.sample("weak", 1, seed=2026, start=305).isel(sample=0)
    periods = [2.0, 3.0]
    old = dispersion(model, periods, wave="love", dc=0.005).values
    chosen = dispersion(model, periods, wave="love").values
    finest = dispersion(model, periods, wave="love", dc=0.0005).values
    assert_allclose(chosen, finest, rtol=ROOT_RTOL)
    assert old[0] > 1.05 * finest[0]
    # The fundamental mode is the slower root: the old step's value is another mode.
    assert chosen[0] < chosen[1]  # the chosen curve rises with period there


@pytest.mark.xfail(strict=True, reason=(
    "known limit of the chosen step: between the paper's integer periods, near an "
    "osculation point, the search can still land on another branch"))
def test_chosen_step_finds_the_fundamental_between_integer_periods():
    """Weak-prior model 317 (seed 2026), Rayleigh at 2.005 s: a known failure.

    At 2.000-2.002 s the fundamental mode's root is found; from 2.003 s on, within
    a window narrower than the paper's 1 s spacing, the chosen step (0.002 km/s)
    returns 2.780 km/s, another branch, where a step of 1e-4 km/s finds the
    fundamental mode at 2.508 km/s. The paper's integer periods are right for this
    model (the audit of chapter "Data and priors" measures them); a fix would refine
    the search where a root leaves the branch. When it lands, this test passes and
    strict xfail fails the suite: remove the mark then.
    """
    model = priors.sample("weak", 1, seed=2026, start=317)
    finest = dispersion(model, [2.005], dc=1e-4).values.item()
    assert finest == pytest.approx(2.5078, abs=1e-3)
    assert dispersion(model, [2.0], dc=1e-4).values.item() == pytest.approx(
        dispersion(model, [2.0]).values.item(), rel=ROOT_RTOL)  # right at 2 s
    assert dispersion(model, [2.005]).values.item() == pytest.approx(finest, rel=ROOT_RTOL)


def test_root_step_audit_reports_moved_roots():
    """The audit stacks the steps, keeps raw roots and measures the change."""
    models = priors.sample("weak", 1, seed=2026, start=305)
    audit = root_step_audit(models, [2.0, 3.0], steps=(0.005, 0.0005), waves=("love",))
    assert audit.phase_velocity.dims == ("sample", "wave", "step", "period")
    assert audit.attrs["reference_step"] == 0.0005
    change = audit.relative_change.sel(step=0.005).values[0, 0]
    assert change[0] > 0.05 and change[1] < 1e-4
    assert (audit.relative_change.sel(step=0.0005) == 0).all()
    summary = summarise_step_audit(audit)
    assert int(summary.moved.sel(step=0.005, wave="love")) == 1
    assert int(summary.moved.sel(step=0.0005, wave="love")) == 0
    assert int(summary.cells.sel(step=0.005, wave="love")) == 2
    with pytest.raises(ValueError, match="at least two positive steps"):
        root_step_audit(models, [2.0], steps=(0.005,))
