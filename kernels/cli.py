"""The ``kernels`` command line: generate data sets and train surrogates.

    kernels generate --prior weak --n 100000 --seed 2026 --out data/weak.zarr --jobs 2
    kernels generate ... --scheduler tcp://host:8786      # on a dask.distributed cluster
    kernels generate --prior weak --n 200000 ... --reuse data/weak.zarr   # grow a data set
    kernels train --data data/weak.zarr --out surrogate-weak.pt --architecture basis-mlp

``generate`` resumes an interrupted store with the same settings.
"""

from __future__ import annotations

import argparse
import json
import sys

from .config import DEFAULT_TRAINING

__all__ = ["main"]


def _generate(args):
    from .data import generate

    ds = generate(args.out, args.prior, args.n, args.seed, chunk_size=args.chunk_size,
                  n_jobs=args.jobs, scheduler=args.scheduler, max_redraws=args.max_redraws,
                  reuse=args.reuse, progress=not args.quiet)
    print(json.dumps({"store": str(args.out), "models": int(ds.sizes["sample"]),
                      "failure_rate": ds.attrs["failure_rate"],
                      "copied_chunks": int(ds.attrs.get("copied_chunks", 0))}))


def _train(args):
    from .data import load_split, open_store
    from .surrogate import Surrogate

    store = open_store(args.data)
    if args.options:
        options = json.loads(args.options)
    elif args.architecture == DEFAULT_TRAINING["architecture"]:
        options = dict(DEFAULT_TRAINING["architecture_options"])
    else:
        options = {}
    surrogate = Surrogate(args.architecture, options, epochs=args.epochs,
                          batch_size=args.batch_size, learning_rate=args.learning_rate,
                          patience=args.patience, seed=args.seed, device=args.device,
                          progress=not args.quiet)
    surrogate.fit(load_split(store, "train"), load_split(store, "validation"))
    surrogate.save(args.out, data=str(args.data), data_config=store.attrs.get("config"))
    last = surrogate.history_[-1]
    print(json.dumps({"checkpoint": str(args.out), "epochs": len(surrogate.history_),
                      "val_rmse_rayleigh": last["val_rmse_rayleigh"],
                      "val_rmse_love": last["val_rmse_love"]}))


def build_parser():
    """The ``kernels`` argument parser (its ``train`` defaults are the default profile's)."""
    parser = argparse.ArgumentParser(prog="kernels", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    gen = commands.add_parser("generate", help="generate or resume a data set (zarr)")
    gen.add_argument("--prior", required=True)
    gen.add_argument("--n", type=int, required=True)
    gen.add_argument("--seed", type=int, default=2026)
    gen.add_argument("--out", required=True)
    gen.add_argument("--chunk-size", type=int, default=1000)
    gen.add_argument("--jobs", type=int, default=1, help="local processes (-1: all cores)")
    gen.add_argument("--scheduler", default=None,
                     help="dask.distributed scheduler address (or DASK_SCHEDULER_ADDRESS)")
    gen.add_argument("--max-redraws", type=int, default=10)
    gen.add_argument("--reuse", nargs="+", default=(), metavar="STORE",
                     help="stores of the same settings (another --n) to copy finished "
                          "chunks from")
    gen.add_argument("--quiet", action="store_true")
    gen.set_defaults(func=_generate)

    train = commands.add_parser("train", help="train a surrogate on a generated data set")
    train.add_argument("--data", required=True)
    train.add_argument("--out", required=True)
    # Defaults: the default profile's surrogate (kernels.config.DEFAULT_TRAINING).
    train.add_argument("--architecture", default=DEFAULT_TRAINING["architecture"],
                       choices=("basis-mlp", "transformer"))
    train.add_argument("--options", default=None,
                       help="JSON of network sizes (default: the default profile's for the "
                            "basis-MLP, the class defaults for the Transformer)")
    train.add_argument("--epochs", type=int, default=DEFAULT_TRAINING["epochs"])
    train.add_argument("--batch-size", type=int, default=DEFAULT_TRAINING["batch_size"])
    train.add_argument("--learning-rate", type=float,
                       default=DEFAULT_TRAINING["learning_rate"])
    train.add_argument("--patience", type=int, default=DEFAULT_TRAINING["patience"])
    train.add_argument("--seed", type=int, default=DEFAULT_TRAINING["seed"])
    train.add_argument("--device", default=None)
    train.add_argument("--quiet", action="store_true")
    train.set_defaults(func=_train)
    return parser


def main(argv=None):
    """Entry point of the ``kernels`` command."""
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except ValueError as error:
        print(f"kernels {args.command}: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
