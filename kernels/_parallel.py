"""Process-parallel map over blocks of models with a progress bar.

Workers are forked, so the input arrays (set in a module global before the
pool starts) and numba's compiled code are inherited rather than pickled;
tasks carry only ``(start, stop)`` index ranges and return small arrays.
"""

from __future__ import annotations

import multiprocessing
import os

import numpy as np
from tqdm.auto import tqdm

_SHARED = {}


def _run_block(bounds):
    start, stop = bounds
    return start, _SHARED["func"](start, stop, **_SHARED["kwargs"])


def block_map(func, n_items, out, n_jobs=1, block_size=None, progress=False, desc=None,
              **kwargs):
    """Fill ``out[start:stop] = func(start, stop, **kwargs)`` over all items.

    Parameters
    ----------
    func : callable
        Module-level function ``func(start, stop, **kwargs) -> ndarray`` whose
        first axis has ``stop - start`` rows.
    n_items : int
        Number of items (rows of ``out``).
    out : numpy.ndarray
        Pre-allocated output, first axis of length ``n_items``.
    n_jobs : int
        Worker processes; 1 runs in this process. ``-1`` uses every core.
    block_size : int, optional
        Items per task; by default about 8 tasks per worker, at most 64 items.
    progress : bool
        Show a tqdm progress bar (items done, rate and ETA).
    desc : str, optional
        Progress-bar label.
    """
    if n_jobs == -1:
        n_jobs = os.cpu_count() or 1
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int | np.integer) or n_jobs < 1:
        raise ValueError(f"n_jobs must be a positive integer or -1, got {n_jobs!r}.")
    n_jobs = min(int(n_jobs), max(n_items, 1))
    if block_size is None:
        block_size = int(min(64, max(1, -(-n_items // (8 * n_jobs)))))
    blocks = [(s, min(s + block_size, n_items)) for s in range(0, n_items, block_size)]
    bar = tqdm(total=n_items, desc=desc, disable=not progress, unit="model")
    try:
        if n_jobs == 1 or "fork" not in multiprocessing.get_all_start_methods():
            for start, stop in blocks:
                out[start:stop] = func(start, stop, **kwargs)
                bar.update(stop - start)
            return out
        _SHARED.update(func=func, kwargs=kwargs)
        try:
            with multiprocessing.get_context("fork").Pool(n_jobs) as pool:
                for start, block in pool.imap_unordered(_run_block, blocks):
                    out[start:start + len(block)] = block
                    bar.update(len(block))
        finally:
            _SHARED.clear()
        return out
    finally:
        bar.close()
