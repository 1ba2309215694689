"""Datasets of random models and their dispersion curves.

Two tools:

- :func:`simulate` draws models from a prior and solves the forward problem for
  both wave types, keeping failures as NaN with a flag so that failure rates can
  be reported; :func:`simulate_cached` stores its result under a name derived
  from its inputs.
- :func:`generate` builds training sets at scale: a chunked zarr store written
  chunk by chunk (never held in memory), resumable after an interruption, with
  failed models redrawn deterministically, train / validation / test splits, a
  progress bar, and local processes or a dask.distributed cluster as workers.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
import warnings
from pathlib import Path

import numpy as np
import xarray as xr
import zarr
from tqdm.auto import tqdm

from .config import WAVES, Grid, paper_periods
from .forward import AUDIT_STEPS, DEFAULT_DC, _roots, dispersion_curves, root_step_audit
from .io import cached_dataset, code_hash, config_hash, provenance
from .priors import draw, extra_variables, sample

__all__ = ["simulate", "simulate_cached", "generate", "generate_cached", "open_store",
           "load_split", "drop_failed", "root_step_audit_cached", "failure_comparison",
           "redraw_effect", "SPLITS",
           "split_of", "store_path", "prior_extras", "shuffled_labels"]

#: Split codes stored in the ``split`` variable.
SPLITS = {"train": 0, "validation": 1, "test": 2}


def simulate(prior, n, seed, periods, grid=None, waves=WAVES, dc=DEFAULT_DC, n_jobs=1,
             progress=False):
    """Draw models from a prior and compute their dispersion curves.

    Parameters
    ----------
    prior : str
        Registered prior name.
    n : int
        Number of models.
    seed : int
        Base seed; model ``i`` is drawn from ``(seed, i)``.
    periods : array_like
        Periods in s.
    grid : Grid, optional
        Depth grid (the paper's by default).
    waves : sequence of str
        Wave types.
    dc : float
        Root-search step of the solver in km/s.
    n_jobs : int
        Worker processes for the solver.
    progress : bool
        Show progress bars.

    Returns
    -------
    xarray.Dataset
        The models (dims ``sample, depth``) plus ``phase_velocity`` (km/s, dims
        ``sample, wave, period``; NaN without a trapped root) and the flags
        ``failed`` (``sample, wave``) and ``untrapped`` (``sample, wave,
        period``: a root at or above the half-space's Vs, see
        :mod:`kernels.forward`).
    """
    grid = Grid() if grid is None else grid
    models = sample(prior, n, seed, grid=grid)
    curves = dispersion_curves(models, periods, waves=waves, dc=dc, n_jobs=n_jobs,
                               progress=progress)
    ds = models.assign(phase_velocity=curves.reset_coords(["failed", "untrapped"], drop=True))
    ds = ds.assign(failed=curves["failed"], untrapped=curves["untrapped"])
    config = {"prior": prior, "n": n, "seed": seed, "periods": np.asarray(periods).tolist(),
              "n_nodes": grid.n_nodes, "spacing": grid.spacing, "waves": list(waves),
              "dc": dc}
    ds.attrs = provenance(config=config, seed=seed, prior=prior)
    return ds


def simulate_cached(cache_dir, prior, n, seed, periods, grid=None, waves=WAVES, dc=DEFAULT_DC,
                    n_jobs=1, progress=False):
    """:func:`simulate`, cached in ``cache_dir`` under a hash of its inputs.

    The cache key covers every input that changes the result (prior, size,
    seed, periods, grid, waves, root-search step) and the source of the code
    that makes the data (:func:`kernels.io.code_hash`), but not ``n_jobs`` or
    ``progress``.
    """
    grid = Grid() if grid is None else grid
    key = config_hash({"prior": prior, "n": n, "seed": seed,
                       "periods": np.asarray(periods, dtype=float).tolist(),
                       "n_nodes": grid.n_nodes, "spacing": grid.spacing,
                       "waves": list(waves), "dc": dc, "code": code_hash("data")})
    path = Path(cache_dir) / f"simulate-{prior}-{n}-{key}.nc"
    return cached_dataset(path, lambda: simulate(prior, n, seed, periods, grid=grid,
                                                 waves=waves, dc=dc, n_jobs=n_jobs,
                                                 progress=progress))


def root_step_audit_cached(cache_dir, prior, n, seed, periods, grid=None, steps=AUDIT_STEPS,
                           n_jobs=1, progress=False):
    """:func:`kernels.forward.root_step_audit` on ``n`` models of a prior, cached.

    The key covers the prior, size, seed, periods, grid, steps and the source
    of the code that makes the data (:func:`kernels.io.code_hash`).
    """
    grid = Grid() if grid is None else grid
    steps = [float(step) for step in steps]
    key = config_hash({"prior": prior, "n": n, "seed": seed,
                       "periods": np.asarray(periods, dtype=float).tolist(),
                       "n_nodes": grid.n_nodes, "spacing": grid.spacing, "steps": steps,
                       "code": code_hash("data")})
    path = Path(cache_dir) / f"root-step-audit-{prior}-{n}-{key}.nc"

    def make():
        ds = root_step_audit(sample(prior, n, seed, grid=grid), periods, steps=steps,
                             n_jobs=n_jobs, progress=progress)
        ds.attrs.update(provenance(config={"prior": prior, "n": n, "steps": steps},
                                   seed=seed, prior=prior))
        return ds

    return cached_dataset(path, make)


# --------------------------------------------------------------------------
# Training sets at scale
# --------------------------------------------------------------------------

_GOLDEN = (np.sqrt(5.0) - 1.0) / 2.0


def split_of(index, fractions=(0.8, 0.1, 0.1)):
    """Split code (0 train, 1 validation, 2 test) of model indices.

    The rule depends on the index only (a golden-ratio low-discrepancy
    sequence), so extending a data set never moves a model between splits
    and every prefix has close to the requested fractions.

    Examples
    --------
    >>> codes = split_of(np.arange(1000))
    >>> [int((codes == k).sum()) for k in range(3)]
    [800, 100, 100]
    """
    fractions = np.asarray(fractions, dtype=float)
    if fractions.shape != (3,) or np.any(fractions < 0) or not np.isclose(fractions.sum(), 1):
        raise ValueError(f"split fractions must be three non-negative numbers summing to 1, "
                         f"got {tuple(fractions)!r}.")
    position = np.mod(np.asarray(index, dtype=float) * _GOLDEN, 1.0)
    edges = np.cumsum(fractions)[:2]
    return np.searchsorted(edges, position, side="right").astype("int8")


def _make_chunk(start, stop, prior, seed, periods, n_nodes, spacing, dc, max_redraws):
    """Models start..stop-1 with their curves; failed draws are redrawn."""
    grid = Grid(n_nodes, spacing)
    n = stop - start
    velocity = np.empty((3, n, n_nodes))
    curves = np.full((n, len(WAVES), periods.size), np.nan)
    attempts = np.zeros(n, dtype="int16")
    failed = np.zeros(n, dtype=bool)
    thickness = grid.thickness
    for row, index in enumerate(range(start, stop)):
        for attempt in range(max_redraws + 1):
            model = draw(prior, seed, index, attempt=attempt, grid=grid)
            arrays = [thickness] + [model[v] for v in ("velocity_p", "velocity_s", "density")]
            # A period without a trapped root (none found, or one at or above the
            # half-space's Vs: see kernels.forward) fails the draw.
            c = np.stack([_roots(arrays, periods, 0, wave, dc)[0] for wave in WAVES])
            if np.isfinite(c).all() or attempt == max_redraws:
                break
        velocity[:, row] = arrays[1:]
        curves[row] = c
        attempts[row] = attempt
        failed[row] = not np.isfinite(c).all()
    return start, velocity, curves, attempts, failed


def _chunk_worker(args):
    return _make_chunk(*args)


def _template(n, periods, grid, chunk_size, fractions, attrs):
    n_chunks = -(-n // chunk_size)
    depth = grid.depth
    import dask.array as da

    def lazy(shape, dtype, chunks):
        return da.zeros(shape, dtype=dtype, chunks=chunks)

    ds = xr.Dataset(
        {
            "velocity_p": (("sample", "depth"), lazy((n, depth.size), "float32",
                                                     (chunk_size, depth.size)),
                           {"units": "km/s", "long_name": "P-wave velocity"}),
            "velocity_s": (("sample", "depth"), lazy((n, depth.size), "float32",
                                                     (chunk_size, depth.size)),
                           {"units": "km/s", "long_name": "S-wave velocity"}),
            "density": (("sample", "depth"), lazy((n, depth.size), "float32",
                                                  (chunk_size, depth.size)),
                        {"units": "g/cm^3", "long_name": "density"}),
            "phase_velocity": (("sample", "wave", "period"),
                               lazy((n, len(WAVES), periods.size), "float32",
                                    (chunk_size, len(WAVES), periods.size)),
                               {"units": "km/s", "long_name": "phase velocity"}),
            "attempts": (("sample",), lazy((n,), "int16", (chunk_size,)),
                         {"units": "1", "long_name": "redraws before the solver succeeded"}),
            "failed": (("sample",), lazy((n,), bool, (chunk_size,)),
                       {"units": "1", "long_name": "no valid draw within the redraw budget"}),
            "split": (("sample",), split_of(np.arange(n), fractions),
                      {"units": "1", "long_name": "data split", "flag_values": [0, 1, 2],
                       "flag_meanings": "train validation test"}),
            "done": (("chunk",), np.zeros(n_chunks, dtype=bool),
                     {"units": "1", "long_name": "chunk written"}),
        },
        coords={
            "sample": ("sample", np.arange(n)),
            "depth": ("depth", depth, {"units": "km", "long_name": "layer-top depth",
                                       "positive": "down"}),
            "thickness": ("depth", grid.thickness, {"units": "km",
                                                    "long_name": "layer thickness"}),
            "wave": ("wave", list(WAVES)),
            "period": ("period", periods, {"units": "s", "long_name": "period"}),
        },
        attrs=attrs,
    )
    ds["split"] = ds["split"].chunk({"sample": chunk_size})
    return ds


def _client(scheduler):
    address = scheduler or os.environ.get("DASK_SCHEDULER_ADDRESS")
    if address is None:
        return None
    from distributed import Client

    return Client(address) if isinstance(address, str) else address


def generate(path, prior, n, seed, periods=None, grid=None, chunk_size=1000, n_jobs=1,
             scheduler=None, max_redraws=10, fractions=(0.8, 0.1, 0.1), dc=DEFAULT_DC,
             reuse=(), progress=True):
    """Generate (or resume) a data set of models and dispersion curves on disk.

    Parameters
    ----------
    path : str or Path
        zarr store to create or resume.
    prior : str
        Registered prior name.
    n : int
        Number of models.
    seed : int
        Base seed. Model ``i`` is drawn from ``(seed, i)``; if the solver fails
        at any period (no root, or a root that is not trapped: see
        :mod:`kernels.forward`), it is redrawn from ``(seed, i, 1)``, ``(seed, i, 2)``,
        ... up to ``max_redraws`` times (then kept with NaN and ``failed``).
    periods : array_like, optional
        Periods in s (the paper's 2-60 s by default).
    grid : Grid, optional
        Depth grid (the paper's by default).
    chunk_size : int
        Models per chunk: the unit of work, of writing and of resumption.
    n_jobs : int
        Local worker processes (ignored with a scheduler).
    scheduler : str or distributed.Client, optional
        A dask.distributed scheduler address (or client); defaults to the
        ``DASK_SCHEDULER_ADDRESS`` environment variable, else local processes.
    max_redraws : int
        Redraw budget per model.
    fractions : tuple of float
        Train, validation and test fractions (see :func:`split_of`).
    dc : float
        Root-search step (km/s).
    reuse : str, Path or sequence of them
        Other stores to copy finished chunks from instead of recomputing them.
        A store is used only if it was made with the same settings except ``n``
        (prior, seed, periods, grid, chunk size, redraw budget, fractions, dc)
        and the same package versions; then its chunk ``k`` holds the models
        this store's chunk ``k`` would hold (model ``i`` depends on ``(seed, i)``
        only, and the solver is deterministic on one platform), and is copied
        when it is finished and holds all of them. Other stores are skipped
        with a warning. The number of copied chunks is recorded in the
        attribute ``copied_chunks``.
    progress : bool
        Show a progress bar with the rate and an ETA.

    Returns
    -------
    xarray.Dataset
        The store, opened lazily (see :func:`open_store`).

    Raises
    ------
    ValueError
        On bad sizes, or when ``path`` holds a store made with other settings.
    """
    for label, value, minimum in (("n", n, 1), ("chunk_size", chunk_size, 1),
                                  ("max_redraws", max_redraws, 0)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
            raise ValueError(f"{label} must be an integer >= {minimum}, got {value!r}.")
    grid = Grid() if grid is None else grid
    periods = paper_periods() if periods is None else np.asarray(periods, dtype=float)
    path = Path(path)
    config = {"prior": prior, "n": int(n), "seed": int(seed), "periods": periods.tolist(),
              "n_nodes": grid.n_nodes, "spacing": grid.spacing, "chunk_size": int(chunk_size),
              "max_redraws": int(max_redraws), "fractions": list(fractions), "dc": dc,
              "code": code_hash("data")}
    sample(prior, 1, seed, grid=grid)  # validates prior and seed before any writing
    as_stored = json.loads(json.dumps(config))  # the config as a store's attrs give it back
    if path.exists():
        stored = json.loads(zarr.open_group(str(path), mode="r").attrs.get("config", "{}"))
        if stored != as_stored:
            raise ValueError(
                f"{path} holds a data set made with other settings ({stored}); remove it or "
                f"choose another path to generate {config}."
            )
    else:
        attrs = provenance(config=config, seed=seed, prior=prior, status="incomplete")
        # zarr format 2: its string encoding (the wave names) is a stable specification.
        template = _template(n, periods, grid, chunk_size, fractions, attrs)
        template.to_zarr(str(path), compute=False, mode="w-", consolidated=False,
                         zarr_format=2)
        # The split and done flags are small: write them now.
        template[["split", "done"]].to_zarr(str(path), mode="r+", consolidated=False)

    group = zarr.open_group(str(path), mode="r+")
    done = np.asarray(group["done"][:])
    if isinstance(reuse, str | os.PathLike):
        reuse = [reuse]
    copied = _copy_chunks(group, done, as_stored, [Path(other) for other in reuse if
                                                   Path(other).resolve() != path.resolve()])
    if copied:
        group.attrs["copied_chunks"] = int(group.attrs.get("copied_chunks", 0)) + copied
    pending = [_chunk_bounds(k, chunk_size, n) for k in np.flatnonzero(~done)]
    tasks = [(start, stop, prior, seed, periods, grid.n_nodes, grid.spacing, dc, max_redraws)
             for start, stop in pending]
    bar = tqdm(total=n, initial=n - sum(b - a for a, b in pending), disable=not progress,
               unit="model", desc=f"{prior} data")
    client = _client(scheduler)
    try:
        for start, velocity, curves, attempts, failed in _run(tasks, n_jobs, client):
            stop = start + curves.shape[0]
            region = slice(start, stop)
            for name, values in zip(("velocity_p", "velocity_s", "density"), velocity,
                                    strict=True):
                group[name][region] = values.astype("float32")
            group["phase_velocity"][region] = curves.astype("float32")
            group["attempts"][region] = attempts
            group["failed"][region] = failed
            # Mark the chunk done only after its data are written: an
            # interrupted write is redone on resumption, never trusted.
            group["done"][start // chunk_size] = True
            bar.update(stop - start)
    finally:
        bar.close()
        if client is not None and client is not scheduler:
            client.close()  # we opened it from an address
    attempts = np.asarray(group["attempts"][:], dtype=float)
    failed = np.asarray(group["failed"][:])
    group.attrs.update({
        "status": "complete",
        "failed_draws": int(attempts.sum() + failed.sum()),
        "failure_rate": float((attempts.sum() + failed.sum()) / (n + attempts.sum())),
        "models_without_valid_draw": int(failed.sum()),
        "completed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    })
    return open_store(path)


#: Per-sample variables written chunk by chunk (the split is written up front).
_CHUNK_VARIABLES = ("velocity_p", "velocity_s", "density", "phase_velocity", "attempts",
                    "failed")


def _chunk_bounds(k, chunk_size, n):
    """Model indices ``[start, stop)`` of chunk ``k``."""
    return k * chunk_size, min((k + 1) * chunk_size, n)


def _reuse_refusal(source, stored, wanted, versions):
    """Why the zarr group ``source`` (settings ``stored``) cannot be copied from, or None."""
    if "n" not in stored or "done" not in source:
        return "it is not a data store made by generate()"
    differing = sorted(key for key in set(stored) | set(wanted) if key != "n"
                       and stored.get(key) != wanted.get(key))
    if differing:
        return f"its settings differ in {differing}"
    if source.attrs.get("versions") != versions:
        return "it was made with other package versions"
    return None


def _copy_chunks(group, done, wanted, sources):
    """Fill pending chunks of ``group`` from compatible stores; return how many.

    ``wanted`` is this store's config as stored; ``done`` (the chunk flags) is
    updated in place. A chunk is marked done only after its data are written,
    as in :func:`generate`. A source that cannot be used is skipped with a
    warning that says why.
    """
    n, size = wanted["n"], wanted["chunk_size"]
    versions = provenance()["versions"]
    copied = 0
    for source_path in sources:
        if done.all():
            break
        try:
            source = zarr.open_group(str(source_path), mode="r")
        except FileNotFoundError:  # zarr's GroupNotFoundError included
            warnings.warn(f"not reusing {source_path}: no zarr store there", stacklevel=3)
            continue
        stored = json.loads(source.attrs.get("config", "{}"))
        refusal = _reuse_refusal(source, stored, wanted, versions)
        if refusal:
            warnings.warn(f"not reusing {source_path}: {refusal}", stacklevel=3)
            continue
        source_done = np.asarray(source["done"][:])
        for k in np.flatnonzero(~done):
            start, stop = _chunk_bounds(k, size, n)
            # The source's chunk k must be finished and hold every model of ours.
            if (k >= source_done.size or not source_done[k]
                    or _chunk_bounds(k, size, stored["n"])[1] < stop):
                continue
            for name in _CHUNK_VARIABLES:
                group[name][start:stop] = source[name][start:stop]
            group["done"][k] = True
            done[k] = True
            copied += 1
    return copied


def _run(tasks, n_jobs, client):
    """Yield chunk results as they complete (dask cluster, processes, or serial)."""
    if not tasks:
        return
    if client is not None:
        from distributed import as_completed

        futures = client.map(_chunk_worker, tasks, pure=False)
        for future in as_completed(futures):
            yield future.result()
        return
    if n_jobs == -1:
        n_jobs = os.cpu_count() or 1
    if n_jobs > 1 and "fork" in multiprocessing.get_all_start_methods():
        with multiprocessing.get_context("fork").Pool(min(n_jobs, len(tasks))) as pool:
            yield from pool.imap_unordered(_chunk_worker, tasks)
        return
    for task in tasks:
        yield _chunk_worker(task)


def open_store(path):
    """Open a generated data set lazily (dask arrays); raise if it is incomplete.

    Returns
    -------
    xarray.Dataset
        Variables ``velocity_p``, ``velocity_s``, ``density`` (float32, km/s
        and g/cm^3, ``sample, depth``), ``phase_velocity`` (float32, km/s,
        ``sample, wave, period``), ``attempts``, ``failed``, ``split``.
    """
    ds = xr.open_zarr(str(path), consolidated=False)
    if ds.attrs.get("status") != "complete":
        raise ValueError(f"{path} is an incomplete data set: run generate() again with the "
                         f"same settings to resume it.")
    return ds


def load_split(store, split):
    """Load one split of a store into memory as a model Dataset (float64).

    Parameters
    ----------
    store : xarray.Dataset
        From :func:`open_store`.
    split : {"train", "validation", "test"}
        Which split.

    Returns
    -------
    xarray.Dataset
        Models (with ``thickness`` on ``sample, depth``) and ``phase_velocity``,
        failed models excluded.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}.")
    keep = ((store["split"] == SPLITS[split]) & ~store["failed"]).values
    ds = store.isel(sample=np.flatnonzero(keep))[
        ["velocity_p", "velocity_s", "density", "phase_velocity"]].load()
    ds = ds.drop_vars("thickness").astype("float64")
    thickness = store["thickness"].values
    ds["thickness"] = (("sample", "depth"),
                       np.broadcast_to(thickness, (ds.sizes["sample"], thickness.size)).copy(),
                       {"units": "km", "long_name": "layer thickness"})
    return ds


def drop_failed(ds):
    """Models of ``ds`` (e.g. from :func:`simulate`) with a curve at every period.

    A surrogate is trained on complete curves only: models flagged ``failed``
    for any wave (no trapped root at some period) are removed, and the sample
    labels of the others are kept.

    Examples
    --------
    >>> ds = simulate("weak", 3, 2026, [5.0, 20.0])
    >>> int(drop_failed(ds).sizes["sample"]) <= 3
    True
    """
    failed = ds["failed"]
    if "wave" in failed.dims:
        failed = failed.any("wave")
    return ds.isel(sample=np.flatnonzero(~failed.values))


def failure_comparison(ds):
    """How failing models differ from the others, per wave.

    Parameters
    ----------
    ds : xarray.Dataset
        From :func:`simulate` (models with ``failed`` on ``sample, wave``).

    Returns
    -------
    pandas.DataFrame
        Rows ``failed`` and ``not failed`` per wave, columns: number of models,
        the share whose half-space is slower than a layer above it, and the
        median of that deficit (km/s, over the models that have one).
    """
    import pandas as pd

    vs = ds.velocity_s.transpose("sample", "depth").values
    deficit = vs[:, :-1].max(axis=1) - vs[:, -1]
    slow = deficit > 0
    rows = {}
    for wave in ds.wave.values:
        failed = ds.failed.sel(wave=wave).values
        for label, group in (("failed", failed), ("not failed", ~failed)):
            chosen = group & slow
            rows[(str(wave), label)] = {
                "models": int(group.sum()),
                "slow half-space (%)": 100 * float(slow[group].mean()) if group.any()
                else np.nan,
                "median deficit (km/s)": float(np.median(deficit[chosen])) if chosen.any()
                else np.nan,
            }
    return pd.DataFrame(rows).T


def redraw_effect(ds):
    """What redrawing failed models does to the strong prior's mix.

    Compares all draws with the accepted ones (no wave failed): the share of
    each tectonic type, its LVZ rate and the median LVZ depth and drop.

    Parameters
    ----------
    ds : xarray.Dataset
        From :func:`simulate` on a prior with tectonic extras.

    Returns
    -------
    pandas.DataFrame
        One row per tectonic type (and ``all``), columns for all draws and
        the accepted ones.
    """
    import pandas as pd

    if "tectonic_type" not in ds:
        raise ValueError("redraw_effect needs a prior with tectonic types (variable "
                         "'tectonic_type'), e.g. 'strong'.")
    accepted = ~ds.failed.any("wave").values
    kinds = ds.tectonic_type.values
    lvz = ds.lvz.values.astype(bool)
    rows = {}
    for kind in [*dict.fromkeys(kinds.tolist()), "all"]:
        of_kind = np.ones_like(accepted) if kind == "all" else kinds == kind
        row = {}
        for label, keep in (("all draws", np.ones_like(accepted)), ("accepted", accepted)):
            chosen = of_kind & keep
            with_lvz = chosen & lvz
            row[f"share, {label} (%)"] = 100 * chosen.sum() / max(keep.sum(), 1)
            row[f"LVZ, {label} (%)"] = 100 * float(lvz[chosen].mean()) if chosen.any() \
                else np.nan
            row[f"LVZ drop, {label} (median)"] = (float(np.median(ds.lvz_drop.values[with_lvz]))
                                                  if with_lvz.any() else np.nan)
        rows[kind] = row
    return pd.DataFrame(rows).T


def shuffled_labels(split, seed):
    """A split whose dispersion curves are permuted across models (the labels shuffled).

    A network trained on it sees the right inputs and the right curves, but no
    relation between them: its Jacobian is what the architecture and the
    training recipe produce without information.

    Parameters
    ----------
    split : xarray.Dataset
        Models and ``phase_velocity`` on ``sample``.
    seed : int
        Seed of the permutation.
    """
    rng = np.random.default_rng(seed)
    order = rng.permutation(split.sizes["sample"])
    out = split.copy()
    out["phase_velocity"] = split["phase_velocity"].copy(
        data=split["phase_velocity"].values[order])
    out.attrs = {**split.attrs, "labels": f"shuffled across models (seed {seed})"}
    return out


def prior_extras(store, samples):
    """The prior's per-model extras (e.g. Moho depth) of stored models, redrawn.

    Stores keep only the profiles; each model is regenerated from its
    ``(seed, index, attempt)`` to recover the scalars the prior drew with it.

    Parameters
    ----------
    store : xarray.Dataset
        From :func:`open_store`.
    samples : array_like of int
        Sample indices.

    Returns
    -------
    xarray.Dataset
        One variable per extra, on ``sample``; empty for priors without extras.
    """
    prior, seed = store.attrs["prior"], int(store.attrs["seed"])
    config = json.loads(store.attrs["config"])
    grid = Grid(config["n_nodes"], config["spacing"])
    samples = np.asarray(samples, dtype=int)
    attempts = store["attempts"].values[samples]
    extras = extra_variables(prior)
    rows = [draw(prior, seed, i, attempt=int(a), grid=grid) for i, a in zip(samples, attempts,
                                                                             strict=True)]
    return xr.Dataset(
        {name: ("sample", np.array([row[name] for row in rows]),
                {"units": units, "long_name": long_name})
         for name, (units, long_name) in extras.items()},
        coords={"sample": samples})


def generate_cached(cache_dir, prior, n, seed, **kwargs):
    """The book's data store for ``(prior, n, seed)``, generated once.

    The store lives at :func:`store_path`. Finished chunks of the other stores
    there of the same prior and seed (another ``n``) are copied rather than
    recomputed (see ``reuse`` in :func:`generate`).

    Parameters
    ----------
    cache_dir : str or Path
        Cache root.
    prior : str
        Registered prior name.
    n, seed : int
        Number of models and base seed.
    **kwargs
        Passed to :func:`generate` (but ``reuse``, set here); the book's
        defaults are ``chunk_size=500`` and ``progress=False``.

    Returns
    -------
    xarray.Dataset
        The store, opened lazily.
    """
    path = store_path(cache_dir, prior, n, seed)
    # store_path names are "<prior>-<n>-<hash>.zarr"; a digit after the prior
    # keeps "strong-corrected-..." out of the strong prior's siblings.
    siblings = sorted(other for other in path.parent.glob(f"{prior}-[0-9]*-*.zarr")
                      if other != path)
    kwargs = {"chunk_size": 500, "progress": False, **kwargs}
    with warnings.catch_warnings():
        # Stores of another seed or an older version are expected in a cache.
        warnings.filterwarnings("ignore", message="not reusing", category=UserWarning)
        return generate(path, prior, n, seed, reuse=siblings, **kwargs)


def store_path(cache_dir, prior, n, seed):
    """The cache location of the book's data store for ``(prior, n, seed)``.

    The name carries a hash of the inputs and of the source of the code that
    makes the data (:func:`kernels.io.code_hash`), so chapters that need the
    same data find the same store and a change to a prior or the forward
    model makes a new one.
    """
    key = config_hash({"prior": prior, "n": n, "seed": seed, "code": code_hash("data")})
    return Path(cache_dir) / "data" / f"{prior}-{n}-{key}.zarr"
