"""Data structures exchanged between stages, provenance, and safe writes.

Every stage exchanges :class:`xarray.Dataset` objects built by the constructors
here, so dimension names (``sample``, ``depth``, ``period``, ``wave``), units and
long names are defined once. Files are written to a temporary name and renamed,
so an interrupted run never leaves a file that a later run would trust.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import platform
import shutil
import tempfile
import time
from importlib import metadata
from pathlib import Path

import numpy as np
import xarray as xr

__all__ = [
    "MODEL_VARIABLES",
    "layered_model",
    "model_dataset",
    "as_model_arrays",
    "provenance",
    "config_hash",
    "code_hash",
    "STAGE_MODULES",
    "atomic_path",
    "write_netcdf",
    "cached_dataset",
    "write_json",
    "save_figure",
    "BUILD_STAGES",
    "STAGE_LOG_ENV",
    "stage_timer",
    "read_stage_log",
    "stage_minutes",
    "timing_tables",
]

#: Variables of a layered model, their units and long names.
MODEL_VARIABLES = {
    "thickness": ("km", "layer thickness"),
    "velocity_p": ("km/s", "P-wave velocity"),
    "velocity_s": ("km/s", "S-wave velocity"),
    "density": ("g/cm^3", "density"),
}

_PACKAGES = ("kernels", "numpy", "scipy", "xarray", "disba", "numba", "torch")


def model_dataset(depth, thickness, velocity_p, velocity_s, density, extras=None, attrs=None):
    """Build a layered-model Dataset with named dims, units and long names.

    Parameters
    ----------
    depth : array_like, shape (n_depth,)
        Layer-top depths in km; the last layer is the half-space.
    thickness, velocity_p, velocity_s, density : array_like, shape (n_depth,) or (n_sample, n_depth)
        Layer thickness (km), P and S velocities (km/s) and density (g/cm^3).
    extras : dict, optional
        Extra per-sample variables, ``name -> (values, units, long_name)``.
    attrs : dict, optional
        Dataset attributes (provenance).

    Returns
    -------
    xarray.Dataset
        Dims ``(sample, depth)`` or ``(depth,)``.

    Examples
    --------
    >>> ds = model_dataset([0.0, 10.0], [10.0, 10.0], [6.0, 8.0], [3.5, 4.5], [2.7, 3.3])
    >>> ds.velocity_s.attrs["units"], ds.sizes["depth"]
    ('km/s', 2)
    """
    depth = np.asarray(depth, dtype=float)
    values = dict(
        thickness=thickness, velocity_p=velocity_p, velocity_s=velocity_s, density=density
    )
    data_vars = {}
    for name, value in values.items():
        value = np.asarray(value, dtype=float)
        dims = ("sample", "depth") if value.ndim == 2 else ("depth",)
        units, long_name = MODEL_VARIABLES[name]
        data_vars[name] = (dims, value, {"units": units, "long_name": long_name})
    for name, (value, units, long_name) in (extras or {}).items():
        data_vars[name] = (("sample",), np.asarray(value), {"units": units, "long_name": long_name})
    ds = xr.Dataset(data_vars, coords={"depth": ("depth", depth)})
    ds["depth"].attrs.update(units="km", long_name="layer-top depth", positive="down")
    if "sample" in ds.dims:
        ds = ds.assign_coords(sample=np.arange(ds.sizes["sample"]))
    ds.attrs.update(attrs or {})
    ds.attrs.setdefault("half_space", "the last layer is the half-space; its thickness is ignored")
    return ds


def layered_model(thickness, velocity_p, velocity_s, density):
    """Build a single-model Dataset from layer properties.

    Parameters
    ----------
    thickness, velocity_p, velocity_s, density : array_like, shape (n_layer,)
        Layer thickness (km), P and S velocities (km/s) and density (g/cm^3).
        The last layer is the half-space.

    Returns
    -------
    xarray.Dataset
        Dims ``(depth,)`` with layer-top depths from the cumulative thickness.

    Examples
    --------
    >>> ds = layered_model([2.0, 3.0, 1.0], [5.0, 6.0, 8.0], [3.0, 3.5, 4.6], [2.5, 2.7, 3.3])
    >>> ds.depth.values.tolist()
    [0.0, 2.0, 5.0]
    """
    thickness = np.atleast_1d(np.asarray(thickness, dtype=float))
    depth = np.concatenate([[0.0], np.cumsum(thickness)[:-1]])
    return model_dataset(depth, thickness, velocity_p, velocity_s, density)


def as_model_arrays(models):
    """Return ``(thickness, velocity_p, velocity_s, density)`` as 2-D float arrays.

    Parameters
    ----------
    models : xarray.Dataset
        A model Dataset with or without the ``sample`` dim.

    Returns
    -------
    tuple of numpy.ndarray, each of shape (n_sample, n_depth)
        A single model becomes ``n_sample = 1``.

    Raises
    ------
    TypeError
        If ``models`` is not a Dataset.
    ValueError
        If a model variable is missing.
    """
    if not isinstance(models, xr.Dataset):
        raise TypeError(
            f"models must be an xarray.Dataset with variables {list(MODEL_VARIABLES)}, "
            f"got {type(models).__name__}."
        )
    missing = [name for name in MODEL_VARIABLES if name not in models]
    if missing:
        raise ValueError(
            f"models lacks the variable(s) {missing}; a model Dataset needs "
            f"{list(MODEL_VARIABLES)}."
        )
    arrays = []
    for name in MODEL_VARIABLES:
        da = models[name]
        da = da.transpose("sample", "depth") if "sample" in da.dims else da.expand_dims("sample")
        arrays.append(np.ascontiguousarray(da.values, dtype=float))
    return tuple(arrays)


def provenance(config=None, seed=None, **extra):
    """Attributes that make an output reproducible: config, seed and versions.

    Parameters
    ----------
    config : dict, optional
        Plain-literal configuration; stored as JSON.
    seed : int, optional
        Base seed of the random draws.
    **extra
        Further attributes (plain literals).

    Returns
    -------
    dict
        netCDF-safe attributes (strings and numbers).

    Examples
    --------
    >>> sorted(provenance(seed=1))[:3]
    ['python', 'seed', 'versions']
    """
    attrs = {"python": platform.python_version(), "versions": json.dumps(_versions())}
    if config is not None:
        attrs["config"] = json.dumps(config, sort_keys=True, default=_jsonable)
    if seed is not None:
        attrs["seed"] = int(seed)
    attrs.update(extra)
    return attrs


@functools.cache
def _versions():
    versions = {}
    for package in _PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[package] = metadata.version(package)
    return versions


def _jsonable(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple | set):
        return list(value)
    raise TypeError(f"{value!r} is not JSON-serialisable")


def config_hash(config):
    """Short, stable hash of a plain-literal configuration (cache key).

    Examples
    --------
    >>> config_hash({"a": 1, "b": [1, 2]}) == config_hash({"b": [1, 2], "a": 1})
    True
    """
    text = json.dumps(config, sort_keys=True, default=_jsonable)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


#: The package modules whose source each stage's cached results depend on. A
#: stage's cache keys carry :func:`code_hash` of these, so that a change to a
#: prior regenerates the data stores, a change to the training code retrains the
#: surrogates, and a change elsewhere (plotting, say) reuses both.
#: ``"module:name"`` hashes one object of a module (the depth grid, not the
#: chapter settings that share ``config.py``).
STAGE_MODULES = {
    # litho1: the litho1 prior's draws (kernels.litho1.draw_litho1)
    "data": ("config:Grid", "priors", "forward", "data", "_parallel", "litho1"),
    "kernels": ("config:Grid", "forward", "sensitivity", "_secular", "_parallel"),
    "training": ("surrogate",),
    "baselines": ("config:Grid", "forward", "sensitivity", "_secular", "_parallel",
                  "gradients"),
    "earth": ("config:Grid", "forward", "sensitivity", "_secular", "_parallel", "earth",
              "litho1", "metrics"),
    "sobolev": ("surrogate", "sobolev"),
}


def _module_source(name):
    """Source text of the package module ``kernels.<name>`` (or one object, ``module:obj``)."""
    import importlib
    import inspect

    module, _, obj = name.partition(":")
    if obj:
        return inspect.getsource(getattr(importlib.import_module(f"kernels.{module}"), obj))
    return (Path(__file__).parent / f"{module}.py").read_text()


def _code_only(source):
    """The code of a source text, without its comments, docstrings and layout.

    Editing documentation must not regenerate data or retrain surrogates, so
    the hash is taken of the syntax tree with docstrings removed.
    """
    import ast
    import textwrap

    tree = ast.parse(textwrap.dedent(source))
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(body, list) and body and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree, annotate_fields=False)


@functools.cache
def code_hash(stage):
    """Short hash of the code of the modules a stage depends on (:data:`STAGE_MODULES`).

    Comments, docstrings and formatting do not count (:func:`_code_only`).

    Parameters
    ----------
    stage : str
        One of :data:`STAGE_MODULES`.

    Examples
    --------
    >>> code_hash("data") == code_hash("data") != code_hash("training")
    True
    """
    if stage not in STAGE_MODULES:
        raise ValueError(f"stage must be one of {sorted(STAGE_MODULES)}, got {stage!r}.")
    digest = hashlib.sha256()
    for name in STAGE_MODULES[stage]:
        digest.update(name.encode() + b"\0" + _code_only(_module_source(name)).encode() + b"\0")
    return digest.hexdigest()[:16]


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; rename it to ``path`` on success.

    On an exception the temporary file (or folder) is removed and ``path`` is
    left untouched, so readers never see a half-written output.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.unlink(tmp)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        elif os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_netcdf(ds, path):
    """Write a Dataset to netCDF atomically and return the path."""
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp, engine="h5netcdf")
    return Path(path)


def cached_dataset(path, compute):
    """Load the Dataset at ``path``, or compute, write (atomically) and return it.

    Parameters
    ----------
    path : str or Path
        netCDF file; include a :func:`config_hash` in its name so that a change
        of inputs never hits a stale file.
    compute : callable
        Zero-argument function returning an :class:`xarray.Dataset`.
    """
    path = Path(path)
    if path.exists():
        with xr.open_dataset(path, engine="h5netcdf") as ds:
            return ds.load()
    ds = compute()
    write_netcdf(ds, path)
    return ds


def write_json(obj, path):
    """Write ``obj`` as indented JSON atomically and return the path."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(obj, indent=2, sort_keys=True, default=_jsonable))
    return Path(path)


def save_figure(fig, path):
    """Save a matplotlib figure atomically (PNG, 150 dpi) and return the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png")
    return path


#: The build's costly stages (inversion: optimisation and sampling), timed by
#: :func:`stage_timer`; everything else a notebook does (scoring, figures, tables)
#: is "evaluation".
BUILD_STAGES = ("data", "kernels", "training", "inversion")

#: Environment variable naming the file that :func:`stage_timer` appends to; the
#: notebook runner (``tools/run_notebook.py``) sets it for each execution.
STAGE_LOG_ENV = "KERNELS_STAGE_LOG"

_open_stage = []


@contextlib.contextmanager
def stage_timer(stage, label):
    """Time one block of a build stage and log it for the runner.

    ``with stage_timer("data", "strong"): ...`` appends one JSON line
    ``{"stage", "label", "seconds"}`` to the file named by :data:`STAGE_LOG_ENV`
    when the block finishes; without that variable (an interactive session) it
    only times. A block that found its result in the cache logs the seconds it
    took, so shares describe the build that ran. Blocks must not nest: nested time
    would count twice.

    Parameters
    ----------
    stage : str
        One of :data:`BUILD_STAGES`.
    label : str
        What was made (a prior, a surrogate's name).

    Raises
    ------
    ValueError
        For an unknown stage.
    RuntimeError
        When opened inside another timed block.

    Examples
    --------
    >>> with stage_timer("data", "weak"):
    ...     pass
    """
    if stage not in BUILD_STAGES:
        raise ValueError(f"stage must be one of {BUILD_STAGES}, got {stage!r}.")
    if _open_stage:
        raise RuntimeError(f"stage_timer({stage!r}, {label!r}) opened inside "
                           f"{_open_stage[-1]}: nested time would count twice.")
    _open_stage.append(f"stage_timer{(stage, str(label))}")
    start = time.perf_counter()
    try:
        yield
        seconds = time.perf_counter() - start
        log = os.environ.get(STAGE_LOG_ENV)
        if log:
            line = json.dumps({"stage": stage, "label": str(label), "seconds": seconds})
            with open(log, "a") as handle:
                handle.write(line + "\n")
    finally:
        _open_stage.pop()


def read_stage_log(path):
    """The records :func:`stage_timer` appended to ``path`` (none if it is absent)."""
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def stage_minutes(records, wall_s):
    """Minutes per build stage of one execution, the rest as ``evaluation``.

    Parameters
    ----------
    records : list of dict
        :func:`read_stage_log` of the execution.
    wall_s : float
        The execution's wall time in seconds.

    Returns
    -------
    dict
        Minutes for each of :data:`BUILD_STAGES` and ``evaluation`` (the wall
        time not in any timed block), in that order.

    Examples
    --------
    >>> stage_minutes([{"stage": "data", "label": "weak", "seconds": 60.0}], 150.0)
    {'data': 1.0, 'kernels': 0.0, 'training': 0.0, 'inversion': 0.0, 'evaluation': 1.5}
    """
    out = dict.fromkeys(BUILD_STAGES, 0.0)
    for record in records:
        out[record["stage"]] += record["seconds"] / 60
    out["evaluation"] = max(0.0, wall_s / 60 - sum(out.values()))
    return out


def timing_tables(records):
    """The build's time per notebook and per timed stage, from the runner's records.

    A notebook's own run (``run`` equal to its name) stands alone; a notebook run
    only under other names (a sweep's points) is the sum of those runs.

    Parameters
    ----------
    records : list of dict
        Timing records of ``tools/run_notebook.py`` (``notebook``, ``run``,
        ``wall_s``, ``finished``, ``cpu_count``, and, from records that have them,
        ``stages`` and ``stage_minutes``).

    Returns
    -------
    (pandas.DataFrame, pandas.DataFrame)
        Per notebook (index): ``runs``, ``minutes``, ``last_finished``, ``cores``,
        ``overrides`` (the profile settings that the notebook's own run changed,
        ``-p section.name VALUE``, as text; empty for a run on the profile as it
        is), and minutes per stage of :data:`BUILD_STAGES` plus ``evaluation`` (NaN for
        a notebook whose records predate stage timing). Per ``(stage, label)``:
        ``minutes`` and ``blocks`` over every counted run, largest first.

    Examples
    --------
    >>> per_notebook, per_label = timing_tables([
    ...     {"notebook": "03-a", "run": "03-a", "wall_s": 120.0, "finished": "t",
    ...      "cpu_count": 2, "stages": [{"stage": "data", "label": "weak", "seconds": 60.0}],
    ...      "stage_minutes": stage_minutes([{"stage": "data", "seconds": 60.0}], 120.0)}])
    >>> per_notebook.loc["03-a", ["minutes", "data", "evaluation"]].tolist()
    [2.0, 1.0, 1.0]
    >>> float(per_label.loc[("data", "weak"), "minutes"])
    1.0
    """
    import pandas as pd

    columns = ["notebook", "run", "wall_s", "finished", "cpu_count", "overrides"]
    parts = list(BUILD_STAGES) + ["evaluation"]
    # Records from before runs were named are a notebook's own run. A sweep point's
    # overrides are its sweep's definition; only a notebook's own run reports them.
    records = [{**r, "run": r.get("run") or r["notebook"]} for r in records]
    records = [{**r, "overrides": ", ".join(f"{k}={v}" for k, v in sorted(
        (r.get("overrides") or {}).items())) if r["run"] == r["notebook"] else ""}
        for r in records]
    table = pd.DataFrame([{**{k: r.get(k) for k in columns},
                           **(r.get("stage_minutes") or dict.fromkeys(parts, float("nan")))}
                          for r in records], columns=columns + parts)
    own = table[table.run == table.notebook]
    table = pd.concat([own, table[~table.notebook.isin(own.notebook)]])
    kept = {(r["notebook"], r["run"]) for r in table[["notebook", "run"]].to_dict("records")}
    per_notebook = table.groupby("notebook", sort=True).agg(
        runs=("run", "size"), minutes=("wall_s", lambda w: w.sum() / 60),
        last_finished=("finished", "max"), cores=("cpu_count", "max"),
        overrides=("overrides", lambda o: "; ".join(v for v in o if v)),
        **{part: (part, lambda m: m.sum(min_count=len(m))) for part in parts})
    blocks = [{"stage": b["stage"], "label": b["label"], "minutes": b["seconds"] / 60}
              for r in records if (r["notebook"], r["run"]) in kept
              for b in r.get("stages", [])]
    per_label = (pd.DataFrame(blocks, columns=["stage", "label", "minutes"])
                 .groupby(["stage", "label"]).agg(minutes=("minutes", "sum"),
                                                  blocks=("minutes", "size"))
                 .sort_values("minutes", ascending=False))
    return per_notebook, per_label
