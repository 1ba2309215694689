"""Surrogate training time, peak memory and evaluation throughput.

    python benchmarks/bench_surrogate.py [--n 2000] [--epochs 20]

Generates a small weak-prior data set (256 nodes, 59 periods) in a temporary
folder, trains the CPU-default basis-MLP for a fixed number of epochs (no early
stopping), and prints seconds per epoch, the process's peak resident memory,
and prediction and Jacobian throughput in models per second. The Transformer's
cost per step is printed at the paper's size for one batch of 64 on this device.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import torch

from kernels.data import generate, load_split
from kernels.surrogate import DispersionTransformer, Surrogate


def peak_memory_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        store = generate(Path(tmp) / "bench.zarr", "weak", args.n, 7, chunk_size=250,
                         n_jobs=2, progress=False)
        print(f"data: {args.n} weak models in {time.perf_counter() - start:.1f} s (2 processes)")
        train, validation = load_split(store, "train"), load_split(store, "validation")
    model = Surrogate("basis-mlp", {"n_basis": 64, "hidden": 384, "layers": 3},
                      epochs=args.epochs, patience=args.epochs, progress=False)
    model.fit(train, validation)
    per_epoch = model.training_time_s_ / len(model.history_)
    print(f"basis-MLP ({model.n_parameters():,} parameters), {train.sizes['sample']} training "
          f"models, {torch.get_num_threads()} threads: {per_epoch:.2f} s/epoch; "
          f"peak memory {peak_memory_mib():.0f} MiB")
    for name, func in (("predict", lambda: model.predict(validation)),
                       ("Jacobian (Vs)", lambda: model.jacobian(validation))):
        start = time.perf_counter()
        func()
        rate = validation.sizes["sample"] / (time.perf_counter() - start)
        print(f"basis-MLP {name}: {rate:,.0f} models/s")
    network = DispersionTransformer(256, 59, train.depth.values, train.period.values)
    x = torch.randn(64, 3, 256).abs() + 1.0
    optimiser = torch.optim.AdamW(network.parameters(), lr=2e-4)
    start = time.perf_counter()
    for _ in range(2):
        loss = network(x).square().mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    step = (time.perf_counter() - start) / 2
    epoch_hours = step * 80_000 / 64 / 3600
    print(f"Transformer (paper size): {step:.2f} s per batch of 64 on CPU, i.e. "
          f"{epoch_hours:.1f} h per epoch of 80,000 models: use a GPU; "
          f"peak memory {peak_memory_mib():.0f} MiB")


if __name__ == "__main__":
    main()
