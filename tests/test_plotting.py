"""Tests of kernels.plotting: axes are returned, labelled, and depth points down."""

import matplotlib

matplotlib.use("Agg")

from kernels import plotting, priors  # noqa: E402
from kernels.config import paper_periods  # noqa: E402
from kernels.forward import dispersion  # noqa: E402


def test_depth_plots_point_down_and_have_units():
    """Profile and band plots label units and put depth increasing downward."""
    models = priors.sample("weak", 4, seed=0)
    for ax in (plotting.plot_profiles(models, "velocity_s"),
               plotting.plot_depth_band(models, "density")):
        bottom, top = ax.get_ylim()
        assert bottom > top == 0.0
        assert "km" in ax.get_ylabel()
        assert "(" in ax.get_xlabel()


def test_curve_band_labels_period_and_velocity():
    """Dispersion bands label period (s) and phase velocity (km/s)."""
    models = priors.sample("weak", 3, seed=0)
    ax = plotting.plot_curve_band(dispersion(models, paper_periods()))
    assert ax.get_xlabel() == "Period (s)"
    assert "km/s" in ax.get_ylabel()


def test_every_depth_axis_marks_the_half_space():
    """A line at 127.5 km where the axis reaches it, a note where it stops above; opt-out."""
    import matplotlib.pyplot as plt

    def half_space_lines(ax):
        return [line for line in ax.get_lines() if list(line.get_ydata()) == [127.5, 127.5]]

    _, (deep, shallow, none) = plt.subplots(1, 3)
    plotting.depth_axis(deep, 130)
    plotting.depth_axis(shallow, 110)
    plotting.depth_axis(none, 130, half_space=None)
    assert len(half_space_lines(deep)) == 1
    assert not half_space_lines(shallow)
    assert any("below this axis" in text.get_text() for text in shallow.texts)
    assert not half_space_lines(none) and not none.texts
    models = priors.sample("weak", 2, seed=0)
    ax = plotting.plot_kernel_image(models.velocity_s.rename(sample="period")
                                    .assign_coords(period=[2.0, 3.0]), max_depth=130)
    assert len(half_space_lines(ax)) == 1


def test_map_axes_draws_the_coastline_and_global_limits():
    """A map has global limits, degree labels and one outline contour from the ocean mask."""
    import matplotlib.pyplot as plt
    import numpy as np
    import xarray as xr

    lat, lon = np.arange(-89.5, 90), np.arange(-179.5, 180)
    ocean = xr.DataArray(np.abs(lon)[None, :] > 90 + 0 * lat[:, None],
                         coords={"latitude": lat, "longitude": lon},
                         dims=("latitude", "longitude"))
    fig, ax = plt.subplots()
    plotting.map_axes(ax, ocean=ocean)
    assert ax.get_xlim() == (-180, 180) and ax.get_ylim() == (-90, 90)
    assert "Longitude" in ax.get_xlabel() and "Latitude" in ax.get_ylabel()
    assert len(ax.collections) == 1  # the outline
    plt.close(fig)


def test_log_axes_label_only_their_ticks_in_plain_numbers():
    """Less than a decade of periods: labels 2, 5, 10, 20, 50 only, no '3 x 10^0'."""
    import matplotlib.pyplot as plt
    import pytest

    fig, ax = plt.subplots()
    ax.plot([2.0, 60.0], [0.0, 1.0])
    plotting.log_period_axis(ax, [2.0, 60.0])
    fig.canvas.draw()
    low, high = ax.get_xlim()
    major = [label.get_text() for label, value in zip(ax.get_xticklabels(), ax.get_xticks(),
                                                      strict=True) if low <= value <= high]
    minor = [t.get_text() for t in ax.get_xticklabels(minor=True) if t.get_text()]
    assert major == ["2", "5", "10", "20", "50"]
    assert minor == []
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "Period (s)"
    ax.plot([1.0, 1.0], [3.0, 40.0])
    plotting.log_axis(ax, which="y")
    ax.set_ylim(3.0, 40.0)
    fig.canvas.draw()
    shown = [label.get_text() for label, value in zip(ax.get_yticklabels(), ax.get_yticks(),
                                                      strict=True) if 3.0 <= value <= 40.0]
    assert shown == ["5", "10", "20"]
    with pytest.raises(ValueError, match="which must be 'x' or 'y', got 'z'"):
        plotting.log_axis(ax, which="z")
    plt.close(fig)


def test_sweep_panels_share_one_scale_that_shows_both_waves():
    """Both waves' directional errors are drawn in per cent on one y scale spanning both."""
    import pandas as pd

    from kernels.metrics import period_bin_labels

    rows = [{"value": value, "wave": wave, "period_bin": label,
             "directional_error": error, "directional_error_low": 0.8 * error,
             "directional_error_high": 1.2 * error}
            for value in (1000, 2000) for label in period_bin_labels()
            for wave, error in (("rayleigh", 0.05), ("love", 0.30))]
    axes = plotting.plot_sweep(pd.DataFrame(rows), "Training models",
                               metric="directional_error")
    assert axes[0].get_ylim() == axes[1].get_ylim()
    low, high = axes[0].get_ylim()
    assert low <= 0.8 * 5.0 and high >= 1.2 * 30.0  # per cent: 0.05 -> 5, 0.30 -> 30
    assert "%" in axes[0].get_ylabel()
