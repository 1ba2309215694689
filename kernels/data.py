"""Datasets of random models and their dispersion curves.

:func:`simulate` draws models from a prior and solves the forward problem for
both wave types; :func:`simulate_cached` stores the result on disk under a
name derived from its configuration, so a notebook re-run, or another notebook
asking for the same inputs, reads the file instead of recomputing it.
Failures are kept, as NaN with a flag, so failure rates can be reported.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .config import WAVES, Grid
from .forward import DEFAULT_DC, dispersion_curves
from .io import cached_dataset, config_hash, provenance
from .priors import sample

__all__ = ["simulate", "simulate_cached"]


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
        ``sample, wave, period``) and the flag ``failed`` (``sample, wave``).
    """
    grid = Grid() if grid is None else grid
    models = sample(prior, n, seed, grid=grid)
    curves = dispersion_curves(models, periods, waves=waves, dc=dc, n_jobs=n_jobs,
                               progress=progress)
    ds = models.assign(phase_velocity=curves.reset_coords("failed", drop=True))
    ds = ds.assign(failed=curves["failed"])
    config = {"prior": prior, "n": n, "seed": seed, "periods": np.asarray(periods).tolist(),
              "n_nodes": grid.n_nodes, "spacing": grid.spacing, "waves": list(waves),
              "dc": dc}
    ds.attrs = provenance(config=config, seed=seed, prior=prior)
    return ds


def simulate_cached(cache_dir, prior, n, seed, periods, grid=None, waves=WAVES, dc=DEFAULT_DC,
                    n_jobs=1, progress=False):
    """:func:`simulate`, cached in ``cache_dir`` under a hash of its inputs.

    The cache key covers every input that changes the result (prior, size,
    seed, periods, grid, waves, root-search step) and the package version, but
    not ``n_jobs`` or ``progress``.
    """
    grid = Grid() if grid is None else grid
    from . import __version__

    key = config_hash({"prior": prior, "n": n, "seed": seed,
                       "periods": np.asarray(periods, dtype=float).tolist(),
                       "n_nodes": grid.n_nodes, "spacing": grid.spacing,
                       "waves": list(waves), "dc": dc, "version": __version__})
    path = Path(cache_dir) / f"simulate-{prior}-{n}-{key}.nc"
    return cached_dataset(path, lambda: simulate(prior, n, seed, periods, grid=grid,
                                                 waves=waves, dc=dc, n_jobs=n_jobs,
                                                 progress=progress))
