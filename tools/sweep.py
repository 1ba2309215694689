"""Run a parameter sweep of a book notebook with papermill and collect the results.

    python tools/sweep.py training-size --profile default [--jobs 1]
    python tools/sweep.py --list

Sweeps are defined in ``book/sweeps/sweeps.yml``: a notebook, the parameter to
vary and its values per profile (plus fixed overrides). Each value runs the
notebook through ``tools/run_notebook.py`` (so the profile's parameters, atomic
outputs and failure reporting are the same as for the chapters); a point whose
result was already made from the same notebook, profile, overrides and package
source is skipped, so an interrupted sweep resumes and a changed one reruns.
Executed notebooks and one JSON result per point go to
``_build/sweeps/<profile>/<sweep>/``; the results are collected into one tidy
table, ``summary.csv`` (one row per value, wave and period bin), and plotted in
``summary.png``. ``--jobs`` runs points in parallel processes.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import yaml
from tqdm.auto import tqdm

ROOT = Path(__file__).resolve().parents[1]
DEFINITIONS = ROOT / "book" / "sweeps" / "sweeps.yml"


def definitions():
    return yaml.safe_load(DEFINITIONS.read_text())


def sweep_dir(name, profile):
    return ROOT / "_build" / "sweeps" / profile / name


def point_key(spec, profile, overrides):
    """Hash of everything a point's result depends on: notebook, profile, overrides, code."""
    from kernels import __version__
    from kernels.io import config_hash

    sources = [ROOT / spec["notebook"], ROOT / "book" / "params" / f"{profile}.yml",
               *sorted((ROOT / "kernels").glob("*.py"))]
    return config_hash({"overrides": overrides, "version": __version__,
                        "sources": [path.read_text() for path in sources]})


def run_point(spec, name, profile, value):
    """Execute the sweep's notebook for one value; return its result path.

    A point is reused only if its result was made from the same notebook, profile,
    overrides and package source (recorded in a ``.key`` file beside it).
    """
    folder = sweep_dir(name, profile)
    stem = f"{spec['parameter']}={value}"
    result, executed = folder / f"{stem}.json", folder / f"{stem}.ipynb"
    stamp = folder / f"{stem}.key"
    overrides = {**spec.get("fixed", {}).get(profile, {}), spec["parameter"]: value}
    key = point_key(spec, profile, overrides)
    if result.exists() and executed.exists() and stamp.exists() and stamp.read_text() == key:
        return result
    overrides["result"] = str(result)
    command = [sys.executable, str(ROOT / "tools" / "run_notebook.py"),
               str(ROOT / spec["notebook"]), "--profile", profile, "--output", str(executed)]
    for name_, val in overrides.items():
        command += ["-p", name_, json.dumps(val)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"sweep {name}, {stem} failed:\n{done.stdout[-2000:]}"
                         f"{done.stderr[-2000:]}")
    stamp.write_text(key)
    return result


def collect(spec, name, profile, results):
    """Tidy table of the results and its summary plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from kernels import plotting
    from kernels.io import atomic_path, save_figure

    rows = []
    for path in results:
        record = json.loads(path.read_text())
        common = {k: record.get(k) for k in ("n_train", "hidden", "layers", "n_seeds",
                                             "parameters", "training_time_s",
                                             "test_rmse_km_s")}
        rows += [{"sweep": name, "parameter": spec["parameter"],
                  "value": record[spec["parameter"]], **common, **b} for b in record["bins"]]
    table = pd.DataFrame(rows).sort_values("value", kind="stable")
    folder = sweep_dir(name, profile)
    with atomic_path(folder / "summary.csv") as tmp:
        table.to_csv(tmp, index=False)
    plotting.use_style()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    plotting.plot_sweep(table, spec.get("xlabel", spec["parameter"]), axes,
                        metric="cosine_skill")
    fig.suptitle(spec.get("title", name), fontsize=10)
    fig.tight_layout()
    save_figure(fig, folder / "summary.png")
    return table


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", nargs="?", help="sweep name (see --list)")
    parser.add_argument("--profile", default="default")
    parser.add_argument("--jobs", type=int, default=1, help="points run in parallel")
    parser.add_argument("--list", action="store_true", help="list the sweeps and exit")
    args = parser.parse_args(argv)
    specs = definitions()
    if args.list or not args.sweep:
        for name, spec in specs.items():
            print(f"{name}: {spec['parameter']} in {spec['values']}")
        return
    if args.sweep not in specs:
        raise SystemExit(f"Unknown sweep {args.sweep!r}; valid choices are {sorted(specs)}.")
    spec = specs[args.sweep]
    values = spec["values"].get(args.profile)
    if not values:
        raise SystemExit(f"sweep {args.sweep!r} defines no values for profile {args.profile!r}.")
    if args.jobs < 1:
        raise SystemExit(f"--jobs must be at least 1, got {args.jobs}.")
    pool = ThreadPoolExecutor(args.jobs)
    futures = [pool.submit(run_point, spec, args.sweep, args.profile, v) for v in values]
    try:
        for future in tqdm(as_completed(futures), total=len(futures), desc=args.sweep,
                           unit="point"):
            future.result()  # a failed point stops the sweep now, not after the others
    finally:
        pool.shutdown(cancel_futures=True)
    results = [future.result() for future in futures]
    table = collect(spec, args.sweep, args.profile, results)
    print(f"[{args.sweep}] {len(values)} points -> {sweep_dir(args.sweep, args.profile)}"
          f"/summary.csv ({len(table)} rows)")


if __name__ == "__main__":
    main()
