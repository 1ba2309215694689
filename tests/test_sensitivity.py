"""Tests of kernels.sensitivity: the disba reference engine and the kernel forms."""

import numpy as np
import pytest
import xarray as xr
from numpy.testing import assert_allclose

from kernels import priors
from kernels.forward import dispersion
from kernels.io import layered_model
from kernels.sensitivity import display_form, per_km, phase_kernel, relative

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
    k = phase_kernel(_two_layers(), [3.0, 10.0, 30.0], wave="love", parameter="velocity_p")
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
    kernels = {p: phase_kernel(model, periods, parameter=p).sum("depth").values
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


def test_failed_period_is_nan_with_flag():
    """A period whose root fails is NaN over depth and flagged; others are finite."""
    model = priors.sample("strong", 1, seed=2026, start=10).isel(sample=0)
    periods = np.arange(2.0, 61.0)
    c = dispersion(model, periods, wave="love")
    bad = np.isnan(c.values)
    assert bad.any()
    pair = np.sort([periods[bad][0], periods[~bad][0]])
    k = phase_kernel(model, pair, wave="love")
    failed = pair == periods[bad][0]
    assert k.failed.values.tolist() == failed.tolist()
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
        ({"method": "adjoint"}, r"method must be one of \['disba'\], got 'adjoint'"),
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
