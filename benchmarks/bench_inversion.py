"""Cost of one inversion step with a surrogate and with the exact physics.

    python benchmarks/bench_inversion.py [--epochs 20]

Trains a small basis-MLP on 1,000 strong-prior models (a surrogate's accuracy does
not change its cost), then times, on the paper's grid (256 nodes, 59 periods,
both waves) and control points (84 unknowns), one forward evaluation with its
full Jacobian (what a Levenberg-Marquardt step needs), one forward evaluation
with one vector-Jacobian product (what an Adam step needs), and a whole
Levenberg-Marquardt inversion of one target, for the surrogate and the physics.
Prints seconds per call and the ratio; one process, this machine's threads.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from kernels import priors
from kernels.config import Grid, paper_periods
from kernels.data import generate, load_split
from kernels.inversion import NoiseModel, Parametrisation, PhysicsForward, SurrogateForward, invert
from kernels.surrogate import Surrogate


def timed(func, repeat):
    func()  # warm-up
    start = time.perf_counter()
    for _ in range(repeat):
        func()
    return (time.perf_counter() - start) / repeat


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    grid, periods = Grid(), paper_periods()
    with tempfile.TemporaryDirectory() as tmp:
        store = generate(Path(tmp) / "bench.zarr", "strong", 1000, 7, chunk_size=250,
                         n_jobs=2, progress=False)
        train, validation = load_split(store, "train"), load_split(store, "validation")
    model = Surrogate("basis-mlp", {"n_basis": 64, "hidden": 384, "layers": 3},
                      epochs=args.epochs, patience=args.epochs, progress=False)
    model.fit(train, validation)
    target = validation.isel(sample=0)
    values = np.stack([target[v].values for v in ("velocity_p", "velocity_s", "density")])
    forwards = {"surrogate": SurrogateForward(model),
                "physics": PhysicsForward(periods, grid.thickness, grid.depth)}
    print(f"{torch.get_num_threads()} torch threads; 256 nodes, 59 periods, both waves")
    costs = {}
    for name, forward in forwards.items():
        repeat = 20 if name == "surrogate" else 3
        costs[name, "J"] = timed(lambda f=forward: f(values), repeat)
        costs[name, "vjp"] = timed(
            lambda f=forward: f.value_and_vjp(values)[1](np.ones(2 * periods.size)), repeat)
        print(f"{name}: forward + full Jacobian {costs[name, 'J'] * 1e3:8.1f} ms; "
              f"forward + one vjp {costs[name, 'vjp'] * 1e3:8.1f} ms")
    print(f"physics / surrogate: {costs['physics', 'J'] / costs['surrogate', 'J']:.0f}x "
          f"(Jacobian), {costs['physics', 'vjp'] / costs['surrogate', 'vjp']:.0f}x (vjp)")
    initial = priors.sample("strong", 100, 2026)[["velocity_p", "velocity_s", "density"]]
    initial = initial.mean("sample")
    initial["thickness"] = ("depth", grid.thickness)
    data = target.phase_velocity.transpose("wave", "period")
    for name, forward in forwards.items():
        result = invert(data, forward, Parametrisation(grid.depth), initial,
                        NoiseModel.constant(0.01, periods), max_iter=40)
        print(f"{name}: Levenberg-Marquardt inversion {result.wall_time_s:.1f} s, "
              f"{len(result.history) - 1} accepted steps, chi2/datum {result.misfit:.2f}")


if __name__ == "__main__":
    main()
