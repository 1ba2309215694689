"""Forward-model throughput: kernels.forward.dispersion against a bare disba loop.

    python benchmarks/bench_forward.py [--n-models 200] [--prior weak]

Prints models per second (Rayleigh and Love at the paper's 59 periods, 256-layer
models) for a bare loop over disba.PhaseDispersion, and for
kernels.forward.dispersion_curves on 1 and 2 worker processes, with the
overhead over the bare loop and the parallel speed-up; then the cost of the
root search's bracketing step (kernels.forward.AUDIT_STEPS, the default marked) on one
process. Best of --repeat runs.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from disba import PhaseDispersion

from kernels import priors
from kernels.config import WAVES, paper_periods
from kernels.forward import AUDIT_STEPS, DEFAULT_DC, dispersion_curves


def bare_loop(models, periods, dc=DEFAULT_DC):
    """The reference: one PhaseDispersion per model, both waves, no checks."""
    arrays = [models[v].values for v in ("thickness", "velocity_p", "velocity_s", "density")]
    for i in range(models.sizes["sample"]):
        solver = PhaseDispersion(*(a[i] for a in arrays), dc=dc)
        for wave in WAVES:
            solver(periods, 0, wave)


def best_time(func, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-models", type=int, default=200)
    parser.add_argument("--prior", default="weak")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    periods = paper_periods()
    models = priors.sample(args.prior, args.n_models, seed=2026)
    # Compile numba code once, outside the timings (disba caches it on disk too).
    bare_loop(models.isel(sample=slice(0, 2)), periods)
    n = args.n_models
    bare = best_time(lambda: bare_loop(models, periods), args.repeat)
    print(f"{args.prior} prior, {n} models x 256 layers x 59 periods, Rayleigh + Love; "
          f"{os.cpu_count()} cores, best of {args.repeat}")
    print(f"{'bare disba loop':<32}{n / bare:8.1f} models/s")
    for n_jobs in (1, 2):
        t = best_time(lambda n_jobs=n_jobs: dispersion_curves(models, periods, n_jobs=n_jobs),
                      args.repeat)
        overhead = 100 * (t / bare - 1) if n_jobs == 1 else None
        line = f"{f'kernels.forward, {n_jobs} process(es)':<32}{n / t:8.1f} models/s"
        line += (f"  overhead vs bare {overhead:+.1f} %" if overhead is not None
                 else f"  speed-up vs bare {bare / t:.2f}x")
        print(line)
    print(f"root-search step (km/s), 1 process; the default is {DEFAULT_DC:g}")
    for step in AUDIT_STEPS:
        t = best_time(lambda step=step: dispersion_curves(models, periods, dc=step),
                      args.repeat)
        mark = "  (default)" if step == DEFAULT_DC else ""
        print(f"{f'  dc = {step:g}':<32}{n / t:8.1f} models/s{mark}")
    start = time.perf_counter()
    priors.sample(args.prior, n, seed=1)
    print(f"{'prior sampling':<32}{n / (time.perf_counter() - start):8.1f} models/s")
    print(f"(numpy {np.__version__})")


if __name__ == "__main__":
    main()
