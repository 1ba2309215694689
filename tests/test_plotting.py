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
