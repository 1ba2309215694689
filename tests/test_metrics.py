"""Tests of kernels.metrics and kernels.gradients: agreement metrics and kernel pairings."""

import numpy as np
import pytest
import xarray as xr
from numpy.testing import assert_allclose

from kernels import metrics
from kernels.gradients import paired_display_forms

DEPTH = 0.5 * np.arange(256)


def _bump(centre, width=8.0, periods=(5.0, 20.0)):
    values = np.exp(-0.5 * ((DEPTH - centre) / width) ** 2)
    return xr.DataArray(np.tile(values, (len(periods), 1)), dims=("period", "depth"),
                        coords={"period": list(periods), "depth": DEPTH})


def test_identical_kernels_agree_perfectly():
    """Identical kernels: cosine = Pearson = 1, zero RMSE, MAE and depth errors."""
    k = _bump(30.0)
    m = metrics.kernel_agreement(k, k)
    assert_allclose(m.cosine, 1.0)
    assert_allclose(m.pearson, 1.0)
    assert_allclose(m[["rmse", "mae", "peak_depth_error", "centroid_depth_error"]]
                    .to_array(), 0.0, atol=1e-12)


def test_depth_errors_measure_a_shift():
    """A kernel shifted down by 10 km has peak and centroid errors of +10 km."""
    m = metrics.kernel_agreement(_bump(40.0), _bump(30.0))
    assert_allclose(m.peak_depth_error, 10.0)
    # The 30 km bump is cut at the surface 3.75 widths away (tail mass ~1e-4),
    # which moves its centroid by ~3e-3 km: hence 1e-2.
    assert_allclose(m.centroid_depth_error, 10.0, atol=1e-2)
    assert (m.cosine < 1).all() and (m.rmse > 0).all()


def test_summary_by_period_bin_counts_and_interval():
    """Binned summaries pool models and periods per bin; the median's CI brackets it."""
    periods = np.arange(2.0, 61.0)
    values = xr.DataArray(np.random.default_rng(0).uniform(size=(10, 2, periods.size)),
                          dims=("sample", "wave", "period"),
                          coords={"wave": ["rayleigh", "love"], "period": periods})
    table = metrics.summarise_by_period_bin(values, n_boot=200)
    assert table.loc[("rayleigh", "[2, 5)"), "count"] == 10 * 3
    assert table.loc[("love", "[45, 60]"), "count"] == 10 * 16
    assert table["count"].sum() == values.size
    assert (table.median_ci_low <= table["median"]).all()
    assert (table["median"] <= table.median_ci_high).all()


def test_matched_form_is_fair_and_authors_form_is_not():
    """The matched pairing of a kernel with itself is perfect; the authors' pairing,
    whose Vs(z) weight sits on one side only, is not."""
    kernel = _bump(25.0, width=15.0)
    velocity_s = xr.DataArray(2.0 + 0.02 * DEPTH, dims="depth", coords={"depth": DEPTH})
    learned, theory = paired_display_forms(kernel, kernel, velocity_s, form="matched")
    assert_allclose(metrics.cosine_similarity(learned, theory), 1.0)
    learned, theory = paired_display_forms(kernel, kernel, velocity_s, form="authors")
    authors = metrics.kernel_agreement(learned, theory)
    assert (authors.cosine < 0.999).all() and (authors.centroid_depth_error > 0).all()
    with pytest.raises(ValueError, match=r"form must be one of \['matched', 'authors'\]"):
        paired_display_forms(kernel, kernel, velocity_s, form="raw")
