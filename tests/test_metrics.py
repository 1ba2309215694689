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


def test_cluster_bootstrap_is_wider_than_pooled_on_period_correlated_data():
    """Cells of one model share its offset across periods: resampling whole models gives
    a wider (honest) interval than resampling the cells as if independent."""
    rng = np.random.default_rng(1)
    periods = np.arange(2.0, 61.0)
    offsets = rng.normal(size=(40, 1, 1))
    values = xr.DataArray(offsets + 0.1 * rng.normal(size=(40, 1, periods.size)),
                          dims=("sample", "wave", "period"),
                          coords={"wave": ["rayleigh"], "period": periods})
    models = metrics.summarise_by_period_bin(values, n_boot=300, cluster="sample")
    cells = metrics.summarise_by_period_bin(values, n_boot=300, cluster=None)
    width_models = models.median_ci_high - models.median_ci_low
    width_cells = cells.median_ci_high - cells.median_ci_low
    # With the cells of a model fully correlated, the pooled interval shrinks
    # by about sqrt(periods in the bin) too much: 1.7 for [2, 5), 4 for [45, 60].
    assert (width_models > 1.3 * width_cells).all()
    assert width_models.loc[("rayleigh", "[45, 60]")] > 3 * width_cells.loc[("rayleigh",
                                                                               "[45, 60]")]


def test_paired_difference_cancels_the_shared_spread():
    """Two methods that differ by a constant on the same models: the paired interval is tight."""
    rng = np.random.default_rng(2)
    periods = np.arange(2.0, 61.0)
    a = xr.DataArray(rng.lognormal(size=(30, 2, periods.size)), dims=("sample", "wave", "period"),
                     coords={"wave": ["rayleigh", "love"], "period": periods})
    table = metrics.paired_difference_by_period_bin(a + 0.5, a, n_boot=200)
    assert_allclose(table["difference"], 0.5)
    assert_allclose(table[["difference_low", "difference_high"]], 0.5, atol=1e-9)


def test_skill_scores_and_depth_shares():
    """Skill 0 for the baseline itself, 1 for a perfect method; shares add up."""
    assert metrics.skill(0.0, 0.3) == 1.0 and metrics.skill(0.3, 0.3) == 0.0
    assert metrics.cosine_skill(1.0, 0.9) == 1.0
    assert metrics.cosine_skill(0.9, 0.9) == pytest.approx(0.0)
    k = _bump(60.0, width=30.0)
    shares = metrics.depth_shares(k, max_depth=110.0)
    magnitude = abs(k)
    assert_allclose(shares.below_cut, magnitude.sel(depth=slice(110.5, None)).sum("depth")
                    / magnitude.sum("depth"))
    assert (shares.half_space <= shares.below_cut).all()
    assert_allclose(metrics.raw_kernel_error(k, k), 0.0)
    assert_allclose(metrics.raw_kernel_error(2 * k, k, max_depth=110.0), 1.0)
    with pytest.raises(ValueError, match="no 'model' dim to resample"):
        metrics.summarise_by_period_bin(k.expand_dims(wave=["rayleigh"]), cluster="model")
    with pytest.raises(ValueError, match="kind must be"):
        metrics.binned_skill(k.expand_dims(sample=[0], wave=["rayleigh"]),
                             k.expand_dims(sample=[0], wave=["rayleigh"]), kind="ratio")


def test_curve_rmse_skips_missing_cells_and_resamples_models():
    """RMSE per wave over finite cells; the interval brackets it and shrinks with models."""
    import xarray as xr

    from kernels.metrics import curve_rmse

    rng = np.random.default_rng(0)
    true = xr.DataArray(rng.uniform(3, 4, (400, 2, 5)), dims=("sample", "wave", "period"),
                        coords={"wave": ["rayleigh", "love"]})
    error = rng.normal(0, 0.02, true.shape)
    predicted = true + error
    predicted[0, 1, :] = np.nan  # a failed model: left out, not counted as zero
    table = curve_rmse(predicted, true, n_boot=300, seed=1)
    expected = np.sqrt(np.nanmean(np.where(np.isnan(predicted.values), np.nan, error)[:, 1] ** 2))
    assert table.loc["love", "cells"] == 399 * 5
    np.testing.assert_allclose(table.loc["love", "rmse"], expected, rtol=1e-12)
    for wave in ("rayleigh", "love"):
        row = table.loc[wave]
        assert row.rmse_low < row.rmse < row.rmse_high
        # sd of the RMSE estimate ~ sigma / sqrt(2 n_cells): the 95 % width is ~4 sd
        assert row.rmse_high - row.rmse_low < 8 * 0.02 / np.sqrt(2 * 400 * 5)


def test_curve_rmse_rejects_mismatched_coordinates():
    """Periods that differ between prediction and truth are an error, not dropped cells."""
    import xarray as xr

    from kernels.metrics import curve_rmse

    a = xr.DataArray(np.ones((3, 1, 2)), dims=("sample", "wave", "period"),
                     coords={"wave": ["love"], "period": [2.0, 3.0]})
    with pytest.raises(ValueError, match="cannot align|indexes along dimension"):
        curve_rmse(a, a.assign_coords(period=[2.0, 4.0]))


def test_error_concentration_known_answers():
    """Uniform errors put the worst share's own share in the worst models; NaN is skipped."""
    from kernels.metrics import error_concentration

    true = xr.DataArray(np.full((200, 2, 4), 3.0), dims=("sample", "wave", "period"),
                        coords={"wave": ["rayleigh", "love"]})
    uniform = error_concentration(true + 0.02, true, worst=0.05)
    assert np.allclose(uniform["worst_share"], 0.05)
    assert np.allclose(uniform[["rmse", "rmse_rest", "median_model_rmse"]], 0.02)
    assert (uniform["n_worst"] == 10).all() and (uniform["models"] == 200).all()

    predicted = true + 0.01
    predicted[3, 1] = 2.0  # one Love model far off; NaN periods elsewhere are left out
    predicted[7, 1, :2] = np.nan
    predicted[9, 0, 0] = -0.5  # not a phase velocity
    table = error_concentration(predicted, true, worst=0.005)
    love, rayleigh = table.loc["love"], table.loc["rayleigh"]
    assert love.n_worst == 1 and np.isclose(love.rmse_rest, 0.01)
    # squared errors: 4 x 1.0 (model 3), 4 x 1e-4 (198 models), 2 x 1e-4 (model 7, two NaN)
    assert np.isclose(love.worst_share, 4.0 / (4.0 + 198 * 4e-4 + 2e-4))
    assert np.isclose(love.rmse, np.sqrt((4.0 + 198 * 4e-4 + 2e-4) / 798))
    assert rayleigh.negative_cells == 1 and love.negative_cells == 0
    both = table.loc["both"]
    # pooled, the worst model is 9 (3.5 km/s off at one Rayleigh period)
    total = 12.25 + 799e-4 + 4.0 + 198 * 4e-4 + 2e-4
    assert both.negative_cells == 1 and both.n_worst == 1
    assert np.isclose(both.worst_share, (12.25 + 7e-4) / total)
    rmse = metrics.model_rmse(predicted, true)
    assert int(np.argmax(rmse.values)) == 9 and np.isclose(float(rmse[9]), np.sqrt(
        (12.25 + 7e-4) / 8))
    assert np.isclose(float(rmse[7]), 0.01)  # its two NaN cells are left out, not zeros
    with pytest.raises(ValueError, match=r"worst must be a share of models in \(0, 1\), got 1"):
        error_concentration(predicted, true, worst=1)


def test_interval_text_formats_scales_and_reads_binned_tables():
    import pandas as pd

    assert metrics.interval_text(0.1234, 0.1, 0.15) == "0.12 [0.10, 0.15]"
    assert metrics.interval_text(0.05, 0.01, 0.2, ".1f", 100) == "5.0 [1.0, 20.0]"
    assert metrics.interval_text([0.5, -0.25], [0.4, -0.3], [0.6, -0.2], "+.2f") == [
        "+0.50 [+0.40, +0.60]", "-0.25 [-0.30, -0.20]"]
    with pytest.raises(ValueError):
        metrics.interval_text([1.0, 2.0], [0.5], [1.5, 2.5])
    table = pd.DataFrame({"a": [1.0], "a_low": [0.5], "a_high": [2.0]}, index=["x"])
    shown = metrics.interval_columns(table, ["a"], ".1f")
    assert shown.loc["x", "a"] == "1.0 [0.5, 2.0]"
    assert list(shown.columns) == ["a"]
