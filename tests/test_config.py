"""Tests of kernels.config and of the book's parameter profiles."""

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from kernels.config import (
    PAPER_PERIODS,
    ArtifactsChapterConfig,
    DataChapterConfig,
    DerivativeChapterConfig,
    EmergenceChapterConfig,
    Grid,
    InversionChapterConfig,
    KernelChapterConfig,
    RealEarthChapterConfig,
    SurrogateChapterConfig,
)

ROOT = Path(__file__).resolve().parents[1]


def test_paper_grid_and_periods():
    """The default grid is 256 nodes every 0.5 km; periods are 2, 3, ..., 60 s."""
    grid = Grid()
    assert grid.depth[0] == 0.0 and grid.depth[-1] == 127.5 and grid.depth.size == 256
    assert np.all(grid.thickness == 0.5)
    assert len(PAPER_PERIODS) == 59 and PAPER_PERIODS[0] == 2.0 and PAPER_PERIODS[-1] == 60.0
    assert np.array_equal(DataChapterConfig().periods, np.asarray(PAPER_PERIODS))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_nodes": 1}, r"n_nodes must be an integer >= 2, got 1"),
        ({"spacing": 0.0}, r"spacing must be a positive finite number \(km\), got 0.0"),
        ({"spacing": float("nan")}, r"spacing must be a positive finite number"),
    ],
)
def test_bad_grid_is_rejected(kwargs, match):
    """A grid with fewer than 2 nodes or a non-positive spacing raises a clear error."""
    with pytest.raises(ValueError, match=match):
        Grid(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_models": 0}, r"n_models must be an integer >= 1, got 0"),
        ({"n_jobs": 0}, r"n_jobs must be an integer >= 1, got 0"),
        ({"seed": -2}, r"seed must be an integer >= 0, got -2"),
        ({"period_min": 10.0, "period_max": 5.0}, r"0 < period_min <= period_max"),
        ({"period_step": 0.0}, r"period_step must be positive"),
    ],
)
def test_bad_chapter_config_is_rejected(kwargs, match):
    """Chapter configs validate papermill's literals before any computation."""
    with pytest.raises(ValueError, match=match):
        DataChapterConfig(**kwargs)


def test_config_is_frozen():
    """Configs are immutable once built."""
    config = DataChapterConfig()
    with pytest.raises(AttributeError):
        config.n_models = 3


@pytest.mark.parametrize("profile", ["ci", "default", "paper", "paper-smoke"])
def test_profiles_build_valid_configs(profile):
    """Every profile file parses and yields a valid config for the data chapter."""
    sys.path.insert(0, str(ROOT / "tools"))
    import run_notebook

    params = run_notebook.load_profile(profile, "01-data-and-priors")
    config = DataChapterConfig(profile=params["profile"], seed=params["seed"],
                               n_models=params["n_models"], n_jobs=params["n_jobs"])
    assert config.profile == profile
    params = run_notebook.load_profile(profile, "02-theoretical-kernels")
    kernel_config = KernelChapterConfig(
        profile=params["profile"], seed=params["seed"], n_jobs=params["n_jobs"],
        n_kernel_models=params["n_kernel_models"], n_disba_models=params["n_disba_models"],
        disba_periods=params["disba_periods"])
    assert kernel_config.n_disba_models <= kernel_config.n_kernel_models
    params = run_notebook.load_profile(profile, "03-surrogate-training")
    names = ("n_data", "architecture", "architecture_options", "epochs", "batch_size",
             "patience", "learning_rate", "seed", "n_jobs")
    surrogate_config = SurrogateChapterConfig(profile=profile,
                                              **{name: params[name] for name in names})
    assert surrogate_config.architecture == ("transformer" if profile.startswith("paper")
                                             else "basis-mlp")
    # chapters 3, 5 and 7 share the strong prior's data set (and its cached surrogate)
    strong_sizes = {stem: run_notebook.load_profile(profile, stem)["n_data_strong"]
                    for stem in ("03-surrogate-training", "05-prior-artifacts", "08-inversion")}
    assert len(set(strong_sizes.values())) == 1, strong_sizes
    dataclasses.replace(surrogate_config, n_data=params["n_data_strong"])  # validates
    params = run_notebook.load_profile(profile, "08-inversion")
    InversionChapterConfig(n_data=params["n_data_strong"], **{name: params[name] for name in (
        "seed", "n_targets", "noise_sigma", "noise_fraction", "noise_correlation_length",
        "max_iter", "adam_steps", "n_calibration", "n_calibration_physics",
        "n_posterior_targets", "n_walkers", "n_steps", "n_burn", "n_sbc", "n_sbc_physics",
        "n_jobs")}, profile=profile)
    params = run_notebook.load_profile(profile, "06-derivative-training")
    DerivativeChapterConfig(profile=profile, n_data=params["n_data_derivative"],
                            kernel_budgets=params["kernel_budgets"],
                            weights=params["derivative_weights"],
                            weight_budget=params["weight_budget"],
                            n_weight_models=params["n_weight_models"],
                            strong_budget=params["strong_budget"],
                            data_only_sizes=params["data_only_sizes"],
                            n_eval_models=params["n_eval_models"], seed=params["seed"],
                            n_jobs=params["n_jobs"])
    params = run_notebook.load_profile(profile, "05-prior-artifacts")
    ArtifactsChapterConfig(profile=profile, n_eval_models=params["n_eval_models"],
                           n_data=params["n_data"], n_data_strong=params["n_data_strong"],
                           seed=params["seed"], n_jobs=params["n_jobs"])
    params = run_notebook.load_profile(profile, "04-kernel-emergence")
    EmergenceChapterConfig(profile=profile, n_eval_models=params["n_eval_models"],
                           n_data=params["n_data"], seed=params["seed"],
                           n_jobs=params["n_jobs"], n_seeds=params["n_seeds"])
    params = run_notebook.load_profile(profile, "09-real-earth")
    RealEarthChapterConfig(profile=profile, **{name: params[name] for name in (
        "n_continental", "n_oceanic", "n_data", "n_data_strong", "seed", "n_jobs")})
    text = yaml.safe_load((ROOT / "book" / "params" / f"{profile}.yml").read_text())
    assert text["description"]


def test_profiles_grow_in_size():
    """ci is smaller than default, which is smaller than paper (100,000 models)."""
    sizes = [yaml.safe_load((ROOT / "book" / "params" / f"{p}.yml").read_text())
             ["parameters"]["n_models"] for p in ("ci", "default", "paper")]
    assert sizes[0] < sizes[1] < sizes[2] == 100_000


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_kernel_models": 0}, r"n_kernel_models must be an integer >= 1, got 0"),
        ({"n_kernel_models": 2, "n_disba_models": 3}, r"must not exceed n_kernel_models"),
        ({"disba_periods": [2.5]}, r"subset of the paper's periods"),
        ({"disba_periods": []}, r"non-empty subset"),
    ],
)
def test_bad_kernel_chapter_config_is_rejected(kwargs, match):
    """The kernel chapter's config rejects bad counts and off-grid periods."""
    with pytest.raises(ValueError, match=match):
        KernelChapterConfig(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_data": 10}, r"n_data must be at least 20"),
        ({"architecture": "cnn"}, r"architecture must be 'basis-mlp' or 'transformer'"),
        ({"learning_rate": 0.0}, r"learning_rate must be positive"),
        ({"epochs": 0}, r"epochs must be an integer >= 1"),
    ],
)
def test_bad_surrogate_chapter_config_is_rejected(kwargs, match):
    """The surrogate chapter's config rejects bad sizes and unknown architectures."""
    with pytest.raises(ValueError, match=match):
        SurrogateChapterConfig(**kwargs)


def test_emergence_config_needs_enough_test_models():
    """The evaluation set must fit in the test split of the surrogate's data set."""
    with pytest.raises(ValueError, match=r"n_eval_models \(300\) exceeds the test split"):
        EmergenceChapterConfig(n_eval_models=300, n_data=2000)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_eval_models": 300, "n_data": 2000}, r"n_eval_models \(300\) exceeds the test split"),
        ({"n_components": (0, 5)}, r"n_components must be positive integers"),
        ({"n_jobs": 0}, r"n_jobs must be an integer >= 1, got 0"),
        ({"n_data_strong": 1000}, r"n_data_strong \(1000\) must be at least n_data \(20000\)"),
    ],
)
def test_bad_artifacts_config_is_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ArtifactsChapterConfig(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"noise_sigma": 0.0}, r"noise_sigma must be a positive number, got 0.0"),
        ({"noise_correlation_length": -1.0}, r"noise_correlation_length must be >= 0"),
        ({"n_burn": 3000}, r"n_burn \(3000\) must be below n_steps \(2500\)"),
        ({"n_walkers": 10}, r"n_walkers \(10\) must be at least twice the 11 layers"),
        ({"n_sbc": 3}, r"n_sbc_physics \(6\) cannot exceed n_sbc \(3\)"),
        ({"n_calibration": 500, "n_data": 2000}, r"n_targets \+ n_calibration \(504\) exceeds"),
        ({"n_calibration_physics": -1}, r"n_calibration_physics must be an integer >= 0"),
    ],
)
def test_bad_inversion_config_is_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        InversionChapterConfig(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"kernel_budgets": (0.0, 1.5)}, r"kernel budgets are shares of the training models"),
        ({"weight_budget": 0.3}, r"weight_budget \(0.3\) must be one of the nonzero"),
        ({"weights": (0.0,)}, r"weights must be positive numbers"),
        ({"data_only_sizes": (4000,)}, r"data_only_sizes \(4000,\) must exceed n_data"),
        ({"n_eval_models": 900}, r"n_eval_models \(900\) exceeds the test split"),
    ],
)
def test_bad_derivative_config_is_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DerivativeChapterConfig(**kwargs)


def test_paper_smoke_is_the_paper_profile_at_the_ci_sizes():
    """paper-smoke runs the paper profile's architecture and keys, at ci's sizes."""
    def load(name):
        return yaml.safe_load((ROOT / "book" / "params" / f"{name}.yml").read_text())[
            "parameters"]
    smoke, paper, ci = load("paper-smoke"), load("paper"), load("ci")
    assert set(smoke) == set(paper) == set(ci)
    assert smoke["architecture"] == paper["architecture"]
    assert set(smoke["architecture_options"]) == set(paper["architecture_options"])
    sized = [k for k in ci if k.startswith("n_") and k != "n_jobs"]
    assert {k: smoke[k] for k in sized} == {k: ci[k] for k in sized}


def test_command_line_and_classes_train_the_default_profiles_surrogate():
    """`kernels train`, Surrogate and the chapter config default to the default profile."""
    import inspect

    from kernels.cli import build_parser
    from kernels.config import DEFAULT_TRAINING
    from kernels.surrogate import Surrogate

    default = yaml.safe_load((ROOT / "book" / "params" / "default.yml").read_text())[
        "parameters"]
    assert {k: default[k] for k in DEFAULT_TRAINING} == DEFAULT_TRAINING
    args = build_parser().parse_args(["train", "--data", "d.zarr", "--out", "s.pt"])
    cli = {"architecture": args.architecture, "epochs": args.epochs, "seed": args.seed,
           "batch_size": args.batch_size, "patience": args.patience,
           "learning_rate": args.learning_rate}
    assert cli == {k: v for k, v in DEFAULT_TRAINING.items() if k != "architecture_options"}
    signature = inspect.signature(Surrogate).parameters
    for name in ("architecture", "epochs", "batch_size", "patience", "learning_rate"):
        assert signature[name].default == DEFAULT_TRAINING[name], name
    chapter = SurrogateChapterConfig()
    assert {k: getattr(chapter, k) for k in DEFAULT_TRAINING} == DEFAULT_TRAINING
