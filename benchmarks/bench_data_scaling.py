"""Test RMSE of the CPU-default surrogate against the number of training models.

    python benchmarks/bench_data_scaling.py [--prior strong] [--sizes 8000 16000 32000 56000]
        [--seeds 2026] [--n 20000] [--extra 40000] [--epochs 300] [--cache-dir _build/cache]

Validation and test splits are those of the default profile's store (``--n`` models,
seed 2026), so every size is scored on the same test models. A training set of a
given size is the store's training split, topped up when it is too small with the
models of a second store from the same prior (``--extra`` models, seed 2027, all of
its splits). Architecture and training settings are the default profile's
(``book/params/default.yml``); ``--seeds`` sets the initialisation seeds.

Beside each RMSE it prints the RMSE without the worst 1 % of test models and their
share of the squared error (:func:`kernels.metrics.error_concentration`): for the strong
prior a few models with near-step curves decide the RMSE.

Both stores are cached under ``--cache-dir/data`` (the book's own store is reused).
On 2 cores the 40,000 extra strong-prior models take about 19 minutes, and training
takes about 2, 4, 7 and 14 minutes at 8k, 16k, 32k and 56k models.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import xarray as xr

from kernels.config import load_profile
from kernels.data import generate_cached, load_split
from kernels.metrics import error_concentration
from kernels.surrogate import Surrogate

ROOT = Path(__file__).resolve().parents[1]
SEED, EXTRA_SEED = 2026, 2027


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prior", default="strong")
    parser.add_argument("--sizes", type=int, nargs="+", default=[8000, 16000, 32000, 56000])
    parser.add_argument("--seeds", type=int, nargs="+", default=[SEED])
    parser.add_argument("--n", type=int, default=20000, help="models in the main store")
    parser.add_argument("--extra", type=int, default=40000, help="models in the top-up store")
    parser.add_argument("--epochs", type=int, default=None, help="default: the profile's")
    parser.add_argument("--cache-dir", default=str(ROOT / "_build" / "cache"))
    parser.add_argument("--n-jobs", type=int, default=2)
    args = parser.parse_args()
    p = load_profile("default").flat()

    def store(n, seed):
        # the book's stores: shared with (and partly copied from) the book's cache
        return generate_cached(args.cache_dir, args.prior, n, seed, n_jobs=args.n_jobs,
                               progress=True)

    main_store = store(args.n, SEED)
    train = load_split(main_store, "train")
    validation, test = load_split(main_store, "validation"), load_split(main_store, "test")
    if max(args.sizes) > train.sizes["sample"]:
        extra = store(args.extra, EXTRA_SEED)
        extra = xr.concat([load_split(extra, s) for s in ("train", "validation", "test")],
                          "sample")
        # sample labels of the two stores overlap; they are only positions here
        train = xr.concat([train, extra], "sample").drop_vars("sample")
    if max(args.sizes) > train.sizes["sample"]:
        raise SystemExit(f"--sizes asks for {max(args.sizes)} training models; the stores hold "
                         f"{train.sizes['sample']} (raise --extra).")
    rows = []
    for size in args.sizes:
        for seed in args.seeds:
            model = Surrogate(p["architecture"], p["architecture_options"],
                              epochs=args.epochs or p["epochs"], batch_size=p["batch_size"],
                              learning_rate=p["learning_rate"], patience=p["patience"],
                              seed=seed, progress=False)
            model.fit(train.isel(sample=slice(0, size)), validation)
            tail = error_concentration(model.predict(test), test["phase_velocity"], 0.01)
            row = {"training models": size, "seed": seed}
            for w in ("rayleigh", "love"):
                row[f"RMSE {w} (km/s)"] = float(tail.loc[w, "rmse"])
                # the worst 1 % of test models (near-step curves) often decide the RMSE
                row[f"{w} without worst 1 %"] = float(tail.loc[w, "rmse_rest"])
                row[f"{w} worst 1 % share"] = float(tail.loc[w, "worst_share"])
            row["training time (s)"] = round(model.training_time_s_, 1)
            rows.append(row)
            print(", ".join(f"{k}: {v:.4f}" if isinstance(v, float) else f"{k}: {v}"
                            for k, v in row.items()), flush=True)
    print(f"\n{args.prior} prior, {test.sizes['sample']} test models:")
    print(pd.DataFrame(rows).to_string(index=False, float_format="{:.4f}".format))


if __name__ == "__main__":
    main()
