"""Tests of kernels.config and of the book's parameter profiles."""

import dataclasses
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
    load_profile,
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


CHAPTER_CONFIGS = (DataChapterConfig, KernelChapterConfig, SurrogateChapterConfig,
                   EmergenceChapterConfig, ArtifactsChapterConfig, DerivativeChapterConfig,
                   InversionChapterConfig, RealEarthChapterConfig)


@pytest.mark.parametrize("profile", ["ci", "default", "paper", "paper-smoke"])
def test_profiles_build_valid_configs(profile):
    """Every profile file loads, and yields a valid configuration for every chapter,
    with the profile's values (renamed fields included) and its name."""
    setup = load_profile(profile)
    assert setup.name == profile and setup.description
    for kind in CHAPTER_CONFIGS:
        config = kind.from_profile(setup)
        assert config.profile == profile
        for field in dataclasses.fields(kind):
            source = kind.PROFILE_NAMES.get(field.name, field.name)
            if source in setup.flat():
                expected = setup.flat()[source]
                assert getattr(config, field.name) == expected, (kind.__name__, field.name)
    strong = SurrogateChapterConfig.from_profile(setup, n_data=setup.training.n_data_strong)
    assert strong.n_data == setup.training.n_data_strong  # the chapters' explicit changes
    assert InversionChapterConfig.from_profile(setup).n_data == setup.training.n_data_strong
    assert (DerivativeChapterConfig.from_profile(setup).weights
            == setup.derivative.derivative_weights)


def test_every_profile_setting_reaches_a_chapter():
    """A setting no chapter reads would be silently ignored: each is a field of some
    chapter's configuration (under its own or its mapped name) or read from the
    profile object by a notebook."""
    fields = {kind.PROFILE_NAMES.get(f.name, f.name)
              for kind in CHAPTER_CONFIGS for f in dataclasses.fields(kind)}
    notebooks = "".join(path.read_text() for path in [*(ROOT / "book").glob("*.md"),
                                                      *(ROOT / "book" / "sweeps").glob("*.md")])
    for dotted in load_profile("ci").settings():
        if dotted.split(".", 1)[1] not in fields:
            assert f"setup.{dotted}" in notebooks, dotted


def test_profiles_reject_unknown_missing_and_mistyped_settings(tmp_path):
    """A profile file must set exactly the sections' settings, with the right types; an
    override must name a setting; each error names the rule and the valid names."""
    text = (ROOT / "book" / "params" / "ci.yml").read_text()
    (tmp_path / "good.yml").write_text(text)
    good = load_profile("good", directory=tmp_path)
    assert good == load_profile("ci").__class__.from_dict("good", yaml.safe_load(text))
    assert isinstance(good.kernels.disba_periods, tuple)
    assert isinstance(good.inversion.noise_sigma, float)
    with pytest.raises(ValueError, match=r"unknown profile 'nope'; the profiles are \['good'\]"):
        load_profile("nope", directory=tmp_path)
    with pytest.raises(ValueError, match=r"unknown profile settings \['training.epoch'\]; "
                                         r"the settings are \[.*'training.epochs'"):
        load_profile("good", {"training.epoch": 3}, directory=tmp_path)
    with pytest.raises(ValueError, match=r"training.epochs must be of type int, got 2.5"):
        load_profile("good", {"training.epochs": 2.5}, directory=tmp_path)
    with pytest.raises(ValueError, match=r"run.seed must be of type int, got True"):
        load_profile("good", {"run.seed": True}, directory=tmp_path)
    assert load_profile("good", {"training.epochs": 3}, directory=tmp_path).training.epochs == 3
    raw = yaml.safe_load(text)
    raw["training"]["epochz"] = raw["training"].pop("epochs")
    (tmp_path / "typo.yml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ValueError, match=r"section 'training': unknown settings \['epochz'\], "
                                         r"missing settings \['epochs'\]"):
        load_profile("typo", directory=tmp_path)
    raw = yaml.safe_load(text)
    raw["plotting"] = raw.pop("earth")
    (tmp_path / "sections.yml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ValueError, match=r"unknown sections \['plotting'\], missing sections "
                                         r"\['earth'\]"):
        load_profile("sections", directory=tmp_path)
    with pytest.raises(dataclasses.FrozenInstanceError):
        good.training.epochs = 1


def test_list_settings_check_their_elements_and_floats_read_numeric_strings():
    """Every list setting has an element type; a wrong element is named with its index;
    YAML 1.1's string '1e-3' is a float; a chapter config whose renamed source is missing
    from a profile is refused rather than left at its default."""
    from kernels.config import PROFILE_SECTIONS, TUPLE_ELEMENTS

    tuples = {f.name for kind in PROFILE_SECTIONS.values() for f in dataclasses.fields(kind)
              if f.type == "tuple"}
    assert tuples == set(TUPLE_ELEMENTS)
    with pytest.raises(ValueError, match=r"derivative.data_only_sizes\[0\] must be of type "
                                         r"int, got 600.9"):
        load_profile("ci", {"derivative.data_only_sizes": [600.9]})
    with pytest.raises(ValueError, match=r"kernels.disba_periods\[1\] must be of type float"):
        load_profile("ci", {"kernels.disba_periods": [3.0, "x"]})
    assert load_profile("ci", {"training.learning_rate": "1e-3"}).training.learning_rate == 1e-3

    class Renamed(InversionChapterConfig):
        PROFILE_NAMES = {"n_data": "n_data_huge"}

    with pytest.raises(ValueError, match=r"reads the profile settings \['n_data_huge'\]"):
        Renamed.from_profile(load_profile("ci"))


def test_profiles_grow_in_size():
    """ci is smaller than default, which is smaller than paper (100,000 models)."""
    sizes = [load_profile(p).data.n_models for p in ("ci", "default", "paper")]
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
        ({"n_calibration_physics": 0}, r"n_calibration_physics must be an integer >= 1"),
        ({"n_sbc_physics": 0}, r"n_sbc_physics must be an integer >= 1"),
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
    smoke, paper, ci = (load_profile(name).flat() for name in ("paper-smoke", "paper", "ci"))
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

    default = load_profile("default").flat()
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
