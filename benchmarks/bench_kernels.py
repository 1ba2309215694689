"""Kernel-engine speed and accuracy: the exact engine against disba's PhaseSensitivity.

    python benchmarks/bench_kernels.py [--n-models 4]

For 256-layer weak-prior models at the paper's 59 periods, prints the time per
model of the exact engine on one core (all four kernels and dc/dT in one sweep),
the time of disba's PhaseSensitivity (Vs only, measured on a subset of periods
and scaled to 59, since it costs one root search per layer and period), their
ratio, the sum-rule residual of both, the throughput on 2 processes, and the cost
of torch's intra-op threads for the engine's small matrices (one thread, which the
engine uses, against torch's default), idle and with both cores busy.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import numpy as np
import torch

from kernels import priors
from kernels.config import paper_periods
from kernels.forward import DEFAULT_DC
from kernels.io import as_model_arrays
from kernels.sensitivity import (
    PARAMETERS,
    _exact_rows,
    phase_kernel,
    phase_kernels,
    sum_rule_residual,
)


def max_residual(models, k):
    """Largest sum-rule residual over models and periods."""
    return float(np.nanmax(sum_rule_residual(models, k).values))


def engine_seconds(models, periods, threads):
    """Seconds per model of the engine's rows (Rayleigh) on ``threads`` torch threads."""
    torch.set_num_threads(threads)
    arrays, n = as_model_arrays(models), models.sizes["sample"]
    start = time.perf_counter()
    _exact_rows(0, n, arrays, periods, 0, "rayleigh", PARAMETERS, DEFAULT_DC, "phase")
    return (time.perf_counter() - start) / n


def threads_report(models, periods, default):
    for load in ("idle", "loaded"):
        busy = []
        if load == "loaded":  # one busy process per core
            busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                    for _ in range(os.cpu_count() or 1)]
        try:
            times = {t: engine_seconds(models, periods, t) for t in sorted({1, default})}
        finally:
            for process in busy:
                process.kill()
        print(f"torch threads ({load}): " + ", ".join(f"{t} thread(s) {v:.3f} s/model"
                                                    for t, v in times.items()))
    torch.set_num_threads(1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-models", type=int, default=4)
    parser.add_argument("--disba-periods", type=int, default=3)
    args = parser.parse_args()
    default_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    periods = paper_periods()
    models = priors.sample("weak", args.n_models, seed=2026)
    phase_kernels(models.isel(sample=0), periods[:2])  # warm-up (numba, torch)

    print(f"{args.n_models} weak-prior models x 256 layers x 59 periods, one core")
    for wave in ("rayleigh", "love"):
        start = time.perf_counter()
        k = phase_kernels(models, periods, wave=wave)
        exact = (time.perf_counter() - start) / args.n_models
        print(f"exact engine, {wave:<8}: {exact:6.3f} s/model (4 kernels + dc/dT), "
              f"sum-rule residual {max_residual(models, k):.1e}")

    subset = periods[np.linspace(0, periods.size - 1, args.disba_periods).astype(int)]
    one = models.isel(sample=slice(0, 1))
    start = time.perf_counter()
    phase_kernel(one, subset, method="disba")
    disba = (time.perf_counter() - start) / subset.size * periods.size
    start = time.perf_counter()
    phase_kernel(one, periods)
    exact_vs = time.perf_counter() - start
    print(f"disba PhaseSensitivity, rayleigh Vs: {disba:6.1f} s/model (scaled from "
          f"{subset.size} periods); exact {exact_vs:.3f} s/model: {disba / exact_vs:.0f}x faster")
    kd = phase_kernels(one, subset, method="disba")
    ke = phase_kernels(one, subset)
    print(f"sum-rule residual at {subset.tolist()} s: disba {max_residual(one, kd):.1e}, "
          f"exact {max_residual(one, ke):.1e}")

    start = time.perf_counter()
    phase_kernels(models, periods, n_jobs=2)
    print(f"exact engine, rayleigh, 2 processes: "
          f"{args.n_models / (time.perf_counter() - start):.2f} models/s")
    threads_report(models.isel(sample=slice(0, 2)), periods, default_threads)


if __name__ == "__main__":
    main()
