"""Shared constants and validated, frozen configurations.

The paper's setup (Yu, Cai & Liu, 2026) fixes a depth grid of 256 nodes every
0.5 km (0-127.5 km), each node being the top of a 0.5 km layer and the last node
the top of the half-space, and 59 periods 2, 3, ..., 60 s. Every stage of the
pipeline uses these unless told otherwise.

A build runs on one parameter profile (``book/params/<name>.yml``), loaded into
a validated, frozen :class:`Profile` with one section per stage
(:func:`load_profile`); each chapter builds its frozen configuration from it
(``SurrogateChapterConfig.from_profile(profile)``), so a typo in a profile or
an override fails loudly, with the valid names, before any computation starts.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "PAPER_PERIODS",
    "PERIOD_BINS",
    "WAVES",
    "DEFAULT_TRAINING",
    "Grid",
    "Profile",
    "PROFILE_SECTIONS",
    "load_profile",
    "available_profiles",
    "DataChapterConfig",
    "KernelChapterConfig",
    "SurrogateChapterConfig",
    "EmergenceChapterConfig",
    "ArtifactsChapterConfig",
    "DerivativeChapterConfig",
    "InversionChapterConfig",
    "RealEarthChapterConfig",
    "paper_periods",
]

#: Periods of the paper, in s: 2, 3, ..., 60 (59 values).
PAPER_PERIODS = tuple(float(t) for t in range(2, 61))

#: Period bins (s) used to aggregate metrics; the last bin is closed.
PERIOD_BINS = ((2, 5), (5, 10), (10, 20), (20, 30), (30, 45), (45, 60))

#: Surface-wave types, in the order used by every ``wave`` dimension.
WAVES = ("rayleigh", "love")

#: Training settings of the ``default`` profile's basis-MLP surrogates (``book/params/
#: default.yml``; a test keeps the two equal). ``kernels train``, ``Surrogate`` and
#: ``SurrogateChapterConfig`` take their defaults from here, so that the command line with
#: no options trains the book's surrogate.
DEFAULT_TRAINING = {
    "architecture": "basis-mlp",
    "architecture_options": {"n_basis": 64, "hidden": 384, "layers": 3},
    "epochs": 300,
    "batch_size": 128,
    "patience": 100,
    "learning_rate": 2e-3,
    "seed": 2026,
}


def paper_periods():
    """Return the paper's 59 periods.

    Returns
    -------
    periods : numpy.ndarray, shape (59,)
        Periods in s, 2 to 60 every 1 s.

    Examples
    --------
    >>> p = paper_periods()
    >>> p.size, p[0], p[-1]
    (59, np.float64(2.0), np.float64(60.0))
    """
    return np.asarray(PAPER_PERIODS)


@dataclass(frozen=True)
class Grid:
    """A regular layered depth grid.

    Node ``i`` is the top of layer ``i`` at depth ``i * spacing`` km; every
    layer is ``spacing`` km thick and the last one is the half-space (its
    thickness is stored for regularity but ignored by the solver).

    Parameters
    ----------
    n_nodes : int
        Number of nodes (layers including the half-space); at least 2.
    spacing : float
        Node spacing and layer thickness in km; positive.

    Examples
    --------
    >>> g = Grid()
    >>> g.n_nodes, g.spacing, g.depth[-1]
    (256, 0.5, np.float64(127.5))
    """

    n_nodes: int = 256
    spacing: float = 0.5

    def __post_init__(self):
        if not isinstance(self.n_nodes, int | np.integer) or self.n_nodes < 2:
            raise ValueError(f"Grid n_nodes must be an integer >= 2, got {self.n_nodes!r}.")
        if not (isinstance(self.spacing, int | float) and math.isfinite(self.spacing)) or (
            self.spacing <= 0
        ):
            raise ValueError(f"Grid spacing must be a positive finite number (km), got "
                             f"{self.spacing!r}.")

    @property
    def depth(self):
        """Layer-top depths in km, shape (n_nodes,)."""
        return np.arange(self.n_nodes) * float(self.spacing)

    @property
    def thickness(self):
        """Layer thicknesses in km, shape (n_nodes,); the last is the half-space."""
        return np.full(self.n_nodes, float(self.spacing))


#: Where the book's profiles live (``<name>.yml``).
PROFILE_DIR = Path(__file__).resolve().parents[1] / "book" / "params"


@dataclass(frozen=True)
class RunSection:
    """Settings every stage shares: the base seed and the worker processes (-1: all)."""

    seed: int
    n_jobs: int


@dataclass(frozen=True)
class DataSection:
    """Chapter "Data and priors": models per prior, and per prior of the root-step audit."""

    n_models: int
    n_audit_models: int


@dataclass(frozen=True)
class KernelSection:
    """Chapter "Theoretical sensitivity kernels": exact kernels of ``n_kernel_models``
    models per prior; disba's finite differences on ``n_disba_models`` at
    ``disba_periods`` (s)."""

    n_kernel_models: int
    n_disba_models: int
    disba_periods: tuple


@dataclass(frozen=True)
class TrainingSection:
    """The surrogates: data-set sizes (the strong prior's own), the network and its
    training, and the test RMSE per wave (km/s) that chapter 3 checks."""

    n_data: int
    n_data_strong: int
    architecture: str
    architecture_options: dict
    epochs: int
    batch_size: int
    patience: int
    learning_rate: float
    target_rmse: float


@dataclass(frozen=True)
class EmergenceSection:
    """Kernel emergence: held-out models scored per chapter, seeds of the ensemble."""

    n_eval_models: int
    n_seeds: int


@dataclass(frozen=True)
class DerivativeSection:
    """Derivative-informed surrogates: their data set, kernel budgets (shares of the
    training models), derivative weights tried, and the data-only comparison sizes."""

    n_data_derivative: int
    kernel_budgets: tuple
    derivative_weights: tuple
    weight_budget: float
    n_weight_models: int
    strong_budget: float
    data_only_sizes: tuple


@dataclass(frozen=True)
class InversionSection:
    """Inversion and sampled posteriors of strong-prior test models."""

    n_targets: int
    noise_sigma: float
    noise_fraction: float
    noise_correlation_length: float
    max_iter: int
    adam_steps: int
    n_calibration: int
    n_calibration_physics: int
    n_posterior_targets: int
    n_walkers: int
    n_steps: int
    n_burn: int
    n_sbc: int
    n_sbc_physics: int


@dataclass(frozen=True)
class EarthSection:
    """Real Earth: LITHO1.0 test columns, continental (held out) and oceanic."""

    n_continental: int
    n_oceanic: int


#: A profile's sections, in file order, and the class of each.
PROFILE_SECTIONS = {"run": RunSection, "data": DataSection, "kernels": KernelSection,
                    "training": TrainingSection, "emergence": EmergenceSection,
                    "derivative": DerivativeSection, "inversion": InversionSection,
                    "earth": EarthSection}


#: The element type of each list setting (a profile gives lists; they are kept as tuples).
TUPLE_ELEMENTS = {"disba_periods": "float", "kernel_budgets": "float",
                  "derivative_weights": "float", "data_only_sizes": "int"}


def _as_type(dotted, kind, value):
    """``value`` as the field type ``kind`` (an annotation string), or a clear error.

    A float may be written as a number or as a numeric string (YAML 1.1 reads
    ``1e-3`` as a string); a list's elements are checked one by one.
    """
    if kind == "int":
        ok = isinstance(value, int | np.integer) and not isinstance(value, bool)
    elif kind == "float":
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                pass
        ok = isinstance(value, int | float | np.number) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif kind == "str":
        ok = isinstance(value, str)
    elif kind == "tuple":
        ok = isinstance(value, list | tuple)
        if ok:
            element = TUPLE_ELEMENTS[dotted.rsplit(".", 1)[-1]]
            value = tuple(_as_type(f"{dotted}[{i}]", element, v) for i, v in enumerate(value))
    else:  # dict
        ok = isinstance(value, dict)
    if not ok:
        raise ValueError(f"{dotted} must be of type {kind}, got {value!r}.")
    return value


@dataclass(frozen=True)
class Profile:
    """One build's settings: a name, a description and one section per stage.

    Load one with :func:`load_profile`. Every setting has one name across the
    sections (``seed``, ``n_data``, ...), so a chapter's configuration finds its
    fields by name (``_ChapterConfig.from_profile``); overrides use the dotted
    form ``section.name``.
    """

    name: str
    description: str
    run: RunSection
    data: DataSection
    kernels: KernelSection
    training: TrainingSection
    emergence: EmergenceSection
    derivative: DerivativeSection
    inversion: InversionSection
    earth: EarthSection

    @classmethod
    def from_dict(cls, name, raw):
        """Build and validate a profile from a file's mapping (every setting required)."""
        if not isinstance(raw, dict):
            raise ValueError(f"profile {name!r} must be a mapping of sections, got {raw!r}.")
        unknown = sorted(set(raw) - set(PROFILE_SECTIONS) - {"description"})
        missing = sorted(set(PROFILE_SECTIONS) - set(raw))
        if unknown or missing:
            raise ValueError(f"profile {name!r}: unknown sections {unknown}, missing sections "
                             f"{missing}; the sections are {list(PROFILE_SECTIONS)}.")
        sections = {}
        for section, kind in PROFILE_SECTIONS.items():
            given = raw[section] or {}
            fields = {f.name: f.type for f in dataclasses.fields(kind)}
            unknown = sorted(set(given) - set(fields))
            missing = sorted(set(fields) - set(given))
            if unknown or missing:
                raise ValueError(f"profile {name!r}, section {section!r}: unknown settings "
                                 f"{unknown}, missing settings {missing}; its settings are "
                                 f"{list(fields)}.")
            sections[section] = kind(**{key: _as_type(f"{section}.{key}", fields[key], value)
                                        for key, value in given.items()})
        return cls(name=name, description=str(raw.get("description", "")), **sections)

    def settings(self):
        """Every setting by its dotted name, ``{"training.epochs": 300, ...}``."""
        return {f"{section}.{key}": value for section in PROFILE_SECTIONS
                for key, value in dataclasses.asdict(getattr(self, section)).items()}

    def flat(self):
        """Every setting by its plain name (names are unique across sections)."""
        return {dotted.split(".", 1)[1]: value for dotted, value in self.settings().items()}

    def with_overrides(self, overrides):
        """A copy with some settings replaced, ``{"training.epochs": 5, ...}``.

        Raises
        ------
        ValueError
            For a name that is not a dotted setting of the profile (the message
            lists them all), or a value of the wrong type.
        """
        valid = self.settings()
        unknown = sorted(set(overrides) - set(valid))
        if unknown:
            raise ValueError(f"unknown profile settings {unknown}; the settings are "
                             f"{sorted(valid)}.")
        raw = {section: dataclasses.asdict(getattr(self, section))
               for section in PROFILE_SECTIONS}
        for dotted, value in overrides.items():
            section, key = dotted.split(".", 1)
            raw[section][key] = value
        return Profile.from_dict(self.name, {"description": self.description, **raw})

    def to_dict(self):
        """Plain-literal form: name, description and the sections (for provenance)."""
        return dataclasses.asdict(self)


def _check_unique_setting_names():
    names = [f.name for kind in PROFILE_SECTIONS.values() for f in dataclasses.fields(kind)]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:  # pragma: no cover - a programming error caught at import
        raise RuntimeError(f"profile settings must have unique names; repeated: {repeated}")


_check_unique_setting_names()


def available_profiles(directory=None):
    """Names of the profiles in ``directory`` (default the book's ``book/params``)."""
    return sorted(p.stem for p in Path(directory or PROFILE_DIR).glob("*.yml"))


def load_profile(name, overrides=None, directory=None):
    """Load, validate and freeze a parameter profile, with overrides.

    Parameters
    ----------
    name : str
        A profile in ``directory`` (``<name>.yml``).
    overrides : dict, optional
        Settings to replace, by dotted name (``{"training.epochs": 5}``).
    directory : str or Path, optional
        Default ``book/params`` of this repository.

    Returns
    -------
    Profile

    Raises
    ------
    ValueError
        For an unknown profile (listing the available ones), a file whose
        sections or settings differ from :data:`PROFILE_SECTIONS`, a value of the
        wrong type, or an unknown override (listing the valid names).

    Examples
    --------
    >>> p = load_profile("ci", {"training.epochs": 5})
    >>> p.training.epochs, p.run.seed
    (5, 2026)
    """
    import yaml

    path = Path(directory or PROFILE_DIR) / f"{name}.yml"
    if not path.exists():
        raise ValueError(f"unknown profile {name!r}; the profiles are "
                         f"{available_profiles(directory)}.")
    profile = Profile.from_dict(name, yaml.safe_load(path.read_text()))
    return profile.with_overrides(overrides) if overrides else profile


def _check_positive_int(name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")


def _check_fits_test_split(name, count, n_data):
    # The test split holds about a tenth of a data set (kernels.data.split_of).
    if count > n_data // 10:
        raise ValueError(f"{name} ({count}) exceeds the test split of the {n_data}-model "
                         f"data set (about {n_data // 10} models).")


def _check_jobs(n_jobs):
    if n_jobs != -1:
        _check_positive_int("n_jobs", n_jobs)


class _ChapterConfig:
    """Shared behaviour of the chapters' frozen configs."""

    #: Fields whose profile setting has another name (field -> setting).
    PROFILE_NAMES = {}

    @classmethod
    def from_profile(cls, profile, **changes):
        """The chapter's configuration from a :class:`Profile`, plus ``changes``.

        Each field takes the profile's setting of the same name (or the one
        :attr:`PROFILE_NAMES` gives), ``profile`` takes the profile's name, and
        fields the profile does not set keep their defaults.
        """
        flat = profile.flat()
        lost = sorted(set(cls.PROFILE_NAMES.values()) - set(flat))
        if lost:
            raise ValueError(f"{cls.__name__} reads the profile settings {lost}, which the "
                             f"profile lacks; its settings are {sorted(flat)}.")
        values = {"profile": profile.name}
        for field in dataclasses.fields(cls):
            source = cls.PROFILE_NAMES.get(field.name, field.name)
            if source in flat:
                values[field.name] = flat[source]
        return cls(**{**values, **changes})

    @property
    def periods(self):
        """The paper's 59 periods (s)."""
        return paper_periods()

    def to_dict(self):
        """Plain-literal dictionary of the settings (for provenance attrs)."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class DataChapterConfig(_ChapterConfig):
    """Settings of the chapter "Data and priors".

    Parameters
    ----------
    profile : str
        Name of the parameter profile that produced the run (for provenance).
    priors : tuple of str
        Registered prior names to draw from.
    n_models : int
        Models drawn per prior for the statistics and the failure rates.
    n_audit_models : int
        Models per prior whose roots are compared across root-search steps.
    seed : int
        Base seed; model ``i`` of every prior is drawn from ``(seed, i)``.
    n_nodes, spacing : int, float
        Depth grid (see :class:`Grid`).
    period_min, period_max, period_step : float
        Period axis in s, inclusive of both ends.
    n_jobs : int
        Worker processes for the forward solver; -1 uses every core.
    """

    profile: str = "default"
    priors: tuple = ("weak", "strong", "strong-corrected")
    n_models: int = 2000
    n_audit_models: int = 1000
    seed: int = 2026
    n_nodes: int = 256
    spacing: float = 0.5
    period_min: float = 2.0
    period_max: float = 60.0
    period_step: float = 1.0
    n_jobs: int = 2

    def __post_init__(self):
        object.__setattr__(self, "priors", tuple(self.priors))
        _check_positive_int("n_models", self.n_models)
        _check_positive_int("n_audit_models", self.n_audit_models)
        _check_jobs(self.n_jobs)
        _check_positive_int("seed", self.seed, minimum=0)
        Grid(self.n_nodes, self.spacing)
        if not 0 < self.period_min <= self.period_max:
            raise ValueError(
                f"Periods must satisfy 0 < period_min <= period_max, got "
                f"{self.period_min!r} and {self.period_max!r}."
            )
        if self.period_step <= 0:
            raise ValueError(f"period_step must be positive, got {self.period_step!r}.")

    @property
    def grid(self):
        """The depth grid, a :class:`Grid`."""
        return Grid(self.n_nodes, self.spacing)

    @property
    def periods(self):
        """The period axis in s."""
        n = int(round((self.period_max - self.period_min) / self.period_step)) + 1
        return self.period_min + self.period_step * np.arange(n)


@dataclass(frozen=True)
class KernelChapterConfig(_ChapterConfig):
    """Settings of the chapter "Theoretical sensitivity kernels".

    Parameters
    ----------
    profile : str
        Name of the parameter profile (for provenance).
    priors : tuple of str
        Priors whose models are examined.
    n_kernel_models : int
        Models per prior whose exact kernels (59 periods, both waves) are computed.
    n_disba_models : int
        Models compared with disba's finite-difference kernels.
    disba_periods : tuple of float
        Periods (s) of that comparison (disba costs ~1 s per period and model).
    seed : int
        Base seed of the model draws.
    n_jobs : int
        Worker processes; -1 uses every core.
    """

    profile: str = "default"
    priors: tuple = ("weak", "strong", "strong-corrected")
    n_kernel_models: int = 40
    n_disba_models: int = 2
    disba_periods: tuple = (2.0, 5.0, 10.0, 20.0, 40.0, 60.0)
    seed: int = 2026
    n_jobs: int = 2

    def __post_init__(self):
        object.__setattr__(self, "priors", tuple(self.priors))
        object.__setattr__(self, "disba_periods", tuple(float(t) for t in self.disba_periods))
        _check_positive_int("n_kernel_models", self.n_kernel_models)
        _check_positive_int("n_disba_models", self.n_disba_models)
        _check_positive_int("seed", self.seed, minimum=0)
        _check_jobs(self.n_jobs)
        if self.n_disba_models > self.n_kernel_models:
            raise ValueError(
                f"n_disba_models ({self.n_disba_models}) must not exceed n_kernel_models "
                f"({self.n_kernel_models}): the comparison reuses the exact kernels."
            )
        if not self.disba_periods or any(t not in PAPER_PERIODS for t in self.disba_periods):
            raise ValueError(
                f"disba_periods must be a non-empty subset of the paper's periods "
                f"(2, 3, ..., 60 s), got {self.disba_periods!r}."
            )

    @property
    def grid(self):
        """The paper's depth grid."""
        return Grid()


@dataclass(frozen=True)
class SurrogateChapterConfig(_ChapterConfig):
    """Settings of the chapter "Surrogate training".

    Parameters
    ----------
    profile : str
        Name of the parameter profile (for provenance).
    priors : tuple of str
        One surrogate is trained per prior.
    n_data : int
        Models generated per prior (80 % train, 10 % validation, 10 % test).
    seed : int
        Base seed of the data and of the network initialisation.
    architecture : str
        ``"basis-mlp"`` or ``"transformer"``.
    architecture_options : dict
        Network sizes (plain literals).
    epochs, batch_size, patience : int
        Training length, mini-batch size, early-stopping patience.
    learning_rate : float
        Peak learning rate.
    chunk_size : int
        Data-store chunk (models).
    n_jobs : int
        Processes for data generation; -1 uses every core.
    """

    profile: str = "default"
    priors: tuple = ("weak", "strong")
    n_data: int = 20000
    seed: int = DEFAULT_TRAINING["seed"]
    architecture: str = DEFAULT_TRAINING["architecture"]
    architecture_options: dict = dataclasses.field(
        default_factory=lambda: dict(DEFAULT_TRAINING["architecture_options"]))
    epochs: int = DEFAULT_TRAINING["epochs"]
    batch_size: int = DEFAULT_TRAINING["batch_size"]
    patience: int = DEFAULT_TRAINING["patience"]
    learning_rate: float = DEFAULT_TRAINING["learning_rate"]
    chunk_size: int = 500
    n_jobs: int = 2

    def __post_init__(self):
        object.__setattr__(self, "priors", tuple(self.priors))
        object.__setattr__(self, "architecture_options", dict(self.architecture_options))
        for name in ("n_data", "epochs", "batch_size", "patience", "chunk_size"):
            _check_positive_int(name, getattr(self, name))
        _check_positive_int("seed", self.seed, minimum=0)
        _check_jobs(self.n_jobs)
        if self.n_data < 20:
            raise ValueError(f"n_data must be at least 20 (10 % go to each of validation "
                             f"and test), got {self.n_data}.")
        if self.architecture not in ("basis-mlp", "transformer"):
            raise ValueError(f"architecture must be 'basis-mlp' or 'transformer', got "
                             f"{self.architecture!r}.")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate!r}.")

    def training_key(self):
        """The settings that change a trained network, for its cache key.

        Not the profile's name, the processes, the data-store chunk or the data
        size (a store's own key carries its size): a profile that trains the
        same network on the same store finds it in the cache.
        """
        return {name: getattr(self, name) for name in TRAINING_KEY_FIELDS}


#: The fields of :class:`SurrogateChapterConfig` that key a trained network.
TRAINING_KEY_FIELDS = ("seed", "architecture", "architecture_options", "epochs", "batch_size",
                       "patience", "learning_rate")


@dataclass(frozen=True)
class EmergenceChapterConfig(_ChapterConfig):
    """Settings of the chapter "Kernel emergence across periods".

    Parameters
    ----------
    profile : str
        Name of the parameter profile (for provenance).
    n_eval_models : int
        Held-out weak-prior test models on which kernels are compared.
    n_data : int
        Size of the weak-prior data set of the surrogate chapter (locates it).
    seed : int
        Base seed of that data set.
    n_jobs : int
        Processes for the theoretical kernels; -1 uses every core.
    n_seeds : int
        Surrogates in the seed ensemble (initialisation seeds ``seed, seed+1, ...``;
        the first is the surrogate chapter's).
    null_epochs : int
        Largest number of epochs of the network trained on shuffled labels (a
        baseline; its validation error stops improving within a few epochs).
    direction_rms : float
        Relative rms size of the prior-drawn perturbations of the
        directional-derivative test.
    fd_step : float
        Central-difference step of the physics, as a multiple of a perturbation.
    """

    profile: str = "default"
    n_eval_models: int = 200
    n_data: int = 20000
    seed: int = 2026
    n_jobs: int = 2
    n_seeds: int = 3
    null_epochs: int = 40
    direction_rms: float = 0.01
    fd_step: float = 0.1

    def __post_init__(self):
        _check_positive_int("n_eval_models", self.n_eval_models)
        _check_positive_int("n_seeds", self.n_seeds)
        _check_positive_int("null_epochs", self.null_epochs)
        if self.n_eval_models < 2:
            raise ValueError(f"n_eval_models must be at least 2 (the another-model baseline "
                             f"pairs each model with another), got {self.n_eval_models}.")
        for name in ("direction_rms", "fd_step"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and 0 < value <= 1):
                raise ValueError(f"{name} must be a number in (0, 1], got {value!r}.")
        _check_positive_int("n_data", self.n_data)
        _check_positive_int("seed", self.seed, minimum=0)
        _check_jobs(self.n_jobs)
        _check_fits_test_split("n_eval_models", self.n_eval_models, self.n_data)


@dataclass(frozen=True)
class ArtifactsChapterConfig(_ChapterConfig):
    """Settings of the chapter "Prior-induced artifacts".

    Parameters
    ----------
    profile : str
        Name of the parameter profile (for provenance).
    n_eval_models : int
        Held-out test models per prior on which kernels are compared.
    n_data : int
        Models per prior data set (the surrogate chapter's size for every
        prior but the strong one); the priors are compared at this size.
    n_data_strong : int
        The surrogate chapter's strong-prior data set, at least ``n_data``; its
        surrogate is compared with the strong surrogate trained on ``n_data``.
    seed : int
        Base seed of the data sets.
    n_jobs : int
        Processes for data generation and kernels; -1 uses every core.
    remedy : str
        Registered prior whose surrogate is the mitigation (a decorrelated
        version of the strong prior).
    ablation : str
        Registered prior of the remedy's ablation (the same decorrelation with
        Vs left as the strong prior draws it).
    n_components : tuple of int
        Sizes of the prior subspaces on which the artifact is predicted.
    """

    profile: str = "default"
    n_eval_models: int = 200
    n_data: int = 20000
    n_data_strong: int = 70000
    seed: int = 2026
    n_jobs: int = 2
    remedy: str = "strong-decorrelated"
    ablation: str = "strong-decorrelated-vp-density"
    n_components: tuple = (5, 10, 20, 40, 80, 160, 320)

    def __post_init__(self):
        object.__setattr__(self, "n_components", tuple(int(k) for k in self.n_components))
        _check_positive_int("n_eval_models", self.n_eval_models)
        _check_positive_int("n_data", self.n_data)
        _check_positive_int("n_data_strong", self.n_data_strong)
        if self.n_data_strong < self.n_data:
            raise ValueError(f"n_data_strong ({self.n_data_strong}) must be at least n_data "
                             f"({self.n_data}): it is the larger strong-prior data set.")
        _check_positive_int("seed", self.seed, minimum=0)
        _check_jobs(self.n_jobs)
        if not self.n_components or min(self.n_components) < 1:
            raise ValueError(f"n_components must be positive integers, got {self.n_components}.")
        _check_fits_test_split("n_eval_models", self.n_eval_models, self.n_data)


@dataclass(frozen=True)
class DerivativeChapterConfig(_ChapterConfig):
    """Settings of the chapter "Surrogates trained on derivatives".

    Parameters
    ----------
    profile : str
        Name of the parameter profile (for provenance).
    n_data : int
        Models of the weak-prior data set of the budget sweep (one size for
        every budget).
    kernel_budgets : tuple of float
        Shares of its training models given exact kernels, from 0 (data only)
        to 1 (all).
    weights : tuple of float
        Derivative-term weights tried at ``weight_budget`` on validation models;
        the best is used for every budget.
    weight_budget : float
        The budget of that choice (one of ``kernel_budgets``).
    n_weight_models : int
        Validation models with exact kernels on which the weight is chosen.
    strong_budget : float
        Kernel budget of the strong prior's derivative-informed surrogate.
    data_only_sizes : tuple of int
        Larger weak-prior data sets (no kernels) for the cost comparison.
    n_eval_models : int
        Held-out test models on which every surrogate is scored.
    seed : int
        Base seed of the data sets and of the training.
    n_jobs : int
        Processes for data and kernels.
    """

    PROFILE_NAMES = {"n_data": "n_data_derivative", "weights": "derivative_weights"}

    profile: str = "default"
    n_data: int = 4000
    kernel_budgets: tuple = (0.0, 0.01, 0.05, 0.2, 1.0)
    weights: tuple = (0.3, 1.0, 3.0)
    weight_budget: float = 0.2
    n_weight_models: int = 50
    strong_budget: float = 0.05
    data_only_sizes: tuple = (10000, 20000)
    n_eval_models: int = 200
    seed: int = 2026
    n_jobs: int = 2

    def __post_init__(self):
        for name in ("kernel_budgets", "weights"):
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))
        object.__setattr__(self, "data_only_sizes", tuple(int(v) for v in
                                                          self.data_only_sizes))
        for name in ("n_data", "n_weight_models", "n_eval_models"):
            _check_positive_int(name, getattr(self, name))
        _check_positive_int("seed", self.seed, minimum=0)
        _check_jobs(self.n_jobs)
        shares = (*self.kernel_budgets, self.weight_budget, self.strong_budget)
        if not self.kernel_budgets or any(not 0.0 <= b <= 1.0 for b in shares):
            raise ValueError(f"kernel budgets are shares of the training models in [0, 1], "
                             f"got {self.kernel_budgets}, weight_budget {self.weight_budget} "
                             f"and strong_budget {self.strong_budget}.")
        if self.weight_budget not in self.kernel_budgets or self.weight_budget == 0:
            raise ValueError(f"weight_budget ({self.weight_budget}) must be one of the nonzero "
                             f"kernel_budgets {self.kernel_budgets}.")
        if not self.weights or any(not (math.isfinite(w) and w > 0) for w in self.weights):
            raise ValueError(f"weights must be positive numbers, got {self.weights}.")
        if any(size <= self.n_data for size in self.data_only_sizes):
            raise ValueError(f"data_only_sizes {self.data_only_sizes} must exceed n_data "
                             f"({self.n_data}): they are the larger data-only sets.")
        _check_fits_test_split("n_eval_models", self.n_eval_models, self.n_data)
        _check_fits_test_split("n_weight_models", self.n_weight_models, self.n_data)

    def budget_models(self, n_train):
        """Kernel models per budget for a training split of ``n_train`` models."""
        return {budget: int(round(budget * n_train)) for budget in self.kernel_budgets}


@dataclass(frozen=True)
class InversionChapterConfig(_ChapterConfig):
    """Settings of the chapter "Inversion and uncertainty".

    Parameters
    ----------
    profile : str
        Name of the parameter profile (for provenance).
    n_data, seed : int
        Size and seed of the strong-prior data set (locates its test split, from
        which the targets come).
    n_targets : int
        Targets of the Figure 2 experiment (the paper's four).
    noise_sigma : float
        Standard deviation of the independent data noise, km/s.
    noise_fraction, noise_correlation_length : float
        The realistic noise: a standard deviation of ``noise_fraction`` x c,
        correlated across periods with a length in ln period
        (:meth:`kernels.inversion.NoiseModel.relative`).
    n_prior_models : int
        Training models to which the inversion's Gaussian prior is fitted.
    max_iter : int
        Levenberg-Marquardt iterations at most.
    adam_steps : int
        Adam steps (the paper's optimiser: 1000).
    n_calibration, n_calibration_physics : int
        Noisy targets for the coverage test of the Laplace bands with the
        surrogate and with the physics.
    posterior_tops : tuple of float
        Layer tops (km) of the layered model whose posteriors are sampled; the
        last continues as the half-space.
    n_residual_models : int
        Draws of the layered prior on which the surrogate's error covariance is
        estimated.
    n_posterior_targets : int
        Targets whose posteriors are sampled with both forward models.
    n_walkers, n_steps, n_burn : int
        emcee settings of every sampled posterior.
    n_sbc, n_sbc_physics : int
        Calibration targets drawn from the layered prior: all get Laplace bands
        and a sampled surrogate posterior, the first ``n_sbc_physics`` also a
        sampled physics posterior.
    n_jobs : int
        Processes (data generation, parallel posterior runs).
    """

    PROFILE_NAMES = {"n_data": "n_data_strong"}

    profile: str = "default"
    n_data: int = 70000
    seed: int = 2026
    n_targets: int = 4
    noise_sigma: float = 0.01
    noise_fraction: float = 0.01
    noise_correlation_length: float = 0.1
    n_prior_models: int = 2000
    max_iter: int = 40
    adam_steps: int = 1000
    n_calibration: int = 30
    n_calibration_physics: int = 6
    posterior_tops: tuple = (0.0, 2.0, 5.0, 10.0, 17.0, 25.0, 35.0, 50.0, 70.0, 95.0, 127.5)
    n_residual_models: int = 500
    n_posterior_targets: int = 3
    n_walkers: int = 24
    n_steps: int = 2500
    n_burn: int = 500
    n_sbc: int = 40
    n_sbc_physics: int = 6
    n_jobs: int = 2

    def __post_init__(self):
        object.__setattr__(self, "posterior_tops", tuple(float(t) for t in self.posterior_tops))
        for name in ("n_data", "n_targets", "max_iter", "adam_steps", "n_calibration",
                     "n_prior_models", "n_residual_models", "n_posterior_targets",
                     "n_steps", "n_sbc", "n_calibration_physics", "n_sbc_physics"):
            # The physics runs are the references every comparison needs: at least one.
            _check_positive_int(name, getattr(self, name))
        _check_positive_int("n_burn", self.n_burn, minimum=0)
        _check_positive_int("seed", self.seed, minimum=0)
        _check_jobs(self.n_jobs)
        for name in ("noise_sigma", "noise_fraction"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number, got {value!r}.")
        if not (math.isfinite(self.noise_correlation_length)
                and self.noise_correlation_length >= 0):
            raise ValueError(f"noise_correlation_length must be >= 0 (ln period), got "
                             f"{self.noise_correlation_length!r}.")
        if self.n_burn >= self.n_steps:
            raise ValueError(f"n_burn ({self.n_burn}) must be below n_steps ({self.n_steps}).")
        k = len(self.posterior_tops)
        if self.n_walkers < 2 * k:
            raise ValueError(f"n_walkers ({self.n_walkers}) must be at least twice the "
                             f"{k} layers of posterior_tops.")
        if self.n_sbc_physics > self.n_sbc:
            raise ValueError(f"n_sbc_physics ({self.n_sbc_physics}) cannot exceed n_sbc "
                             f"({self.n_sbc}).")
        _check_fits_test_split("n_targets + n_calibration", self.n_targets
                               + max(self.n_calibration, self.n_calibration_physics),
                               self.n_data)


@dataclass(frozen=True)
class RealEarthChapterConfig(_ChapterConfig):
    """Settings of the chapter "Real Earth".

    Parameters
    ----------
    profile : str
        Name of the parameter profile (for provenance).
    n_continental, n_oceanic : int
        LITHO1.0 columns drawn at random (without replacement) from the nodes
        without and with water.
    n_data, n_data_strong : int
        Sizes of the weak and strong data sets whose surrogates (chapter
        "Surrogate training") are tested; their training splits give the
        prior-median baselines.
    seed : int
        Seed of the column draw and of the data sets.
    n_jobs : int
        Worker processes for the physics.
    """

    profile: str = "default"
    n_continental: int = 150
    n_oceanic: int = 100
    n_data: int = 20000
    n_data_strong: int = 70000
    seed: int = 2026
    n_jobs: int = 2

    def __post_init__(self):
        for name in ("n_continental", "n_oceanic", "n_data", "n_data_strong"):
            _check_positive_int(name, getattr(self, name))
        _check_positive_int("seed", self.seed, minimum=0)
        _check_jobs(self.n_jobs)
