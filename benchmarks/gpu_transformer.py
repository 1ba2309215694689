"""The paper's Transformer surrogate on a GPU: train within a time budget, measure, compare.

Three steps, because the GPU machine may lack the physics solver and the data store's
format (zarr); only numpy, xarray and torch are needed there::

    # 1. here: pack the train/validation/test splits of a data store (float32 npz)
    python benchmarks/gpu_transformer.py pack _build/cache/data/weak-20000-<hash>.zarr .gpu/data.npz

    # 2. on the GPU machine: train the published-size Transformer (book/params/paper.yml)
    #    for as many whole epochs as fit in --budget seconds, then measure it
    python benchmarks/gpu_transformer.py train .gpu/data.npz OUT --budget 300

    # 3. here: exact kernels of the same test models (kernel engine) against the
    #    Transformer's autodiff Jacobians; writes benchmarks/results/transformer-gpu.json
    python benchmarks/gpu_transformer.py report OUT .gpu/data.npz

``train`` picks the number of epochs from a timed probe of training steps, so the
one-cycle learning-rate schedule runs to its end inside the budget; everything
else follows the paper profile (batch 64, AdamW at 2e-4, 43 M parameters), with
bfloat16 mixed precision. It writes ``result.json`` (settings, learning curve,
test errors per wave and period bin, training time, peak GPU memory, prediction
and Jacobian throughput of the Transformer and of the CPU-default basis-MLP on the
same device), the test predictions, and the autodiff Jacobians dc/dVs of the first
``--n-jacobian`` test models (split in files of at most 100 models). The weights
themselves (170 MB) are not written.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import platform
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import xarray as xr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the GPU machine runs from a source tree

from kernels.surrogate import _as_inputs  # noqa: E402  (the networks' input layout)

SPLITS = ("train", "validation", "test")
JACOBIAN_FILE_MODELS = 100  # keeps each returned file under 16 MiB


# --------------------------------------------------------------------------
# pack (here)
# --------------------------------------------------------------------------


def pack(store_path, out):
    from kernels.data import load_split, open_store

    store = open_store(store_path)
    arrays = {"depth": store["depth"].values, "thickness": store["thickness"].values,
              "period": store["period"].values,
              "wave": np.array([str(w) for w in store["wave"].values]),
              "config": np.array(store.attrs["config"] if isinstance(store.attrs["config"], str)
                                 else json.dumps(store.attrs["config"]))}
    for split in SPLITS:
        ds = load_split(store, split)
        arrays[f"{split}_x"] = _as_inputs(ds)
        arrays[f"{split}_y"] = (ds["phase_velocity"].transpose("sample", "wave", "period")
                                .values.astype("float32"))
        arrays[f"{split}_sample"] = ds["sample"].values
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    _save_npz(out, compressed=True, **arrays)
    sizes = {s: len(arrays[f"{s}_sample"]) for s in SPLITS}
    print(f"packed {sizes} from {store_path} into {out} ({out.stat().st_size / 2**20:.1f} MiB)")


def unpack(path):
    """The packed splits as model Datasets (float32 values, the store's coordinates)."""
    data = np.load(path)
    depth, period, wave = data["depth"], data["period"], [str(w) for w in data["wave"]]
    out = {}
    for split in SPLITS:
        x, y = data[f"{split}_x"], data[f"{split}_y"]
        out[split] = xr.Dataset(
            {name: (("sample", "depth"), x[:, i]) for i, name in
             enumerate(("velocity_p", "velocity_s", "density"))}
            | {"phase_velocity": (("sample", "wave", "period"), y)},
            coords={"sample": data[f"{split}_sample"], "depth": depth, "period": period,
                    "wave": wave})
    for ds in out.values():
        ds["thickness"] = ("depth", data["thickness"], {"units": "km"})
    return out, str(data["config"])


# --------------------------------------------------------------------------
# train (GPU machine)
# --------------------------------------------------------------------------


#: Architecture of ``train --toy``: the code path of the GPU run at a size a
#: CPU test can afford.
TOY_ARCHITECTURE = {"d_model": 16, "heads": 2, "encoder_layers": 1, "decoder_layers": 1,
                    "feedforward": 32, "dropout": 0.1}


def _profile(name):
    """A profile's settings by their plain names (``kernels.config.load_profile``)."""
    from kernels.config import load_profile

    return dict(load_profile(name).flat())


def _paper_settings(toy=False):
    settings = _profile("paper")
    if toy:
        settings["architecture_options"] = dict(TOY_ARCHITECTURE)
    return settings


def _sync():
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _reset_peak():
    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def _peak_gib():
    """Peak GPU memory allocated by torch (GiB); peak resident memory off CUDA."""
    import resource

    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _probe_step_time(surrogate_cls, settings, train, validation, n_steps=30):
    """Seconds per training step and per validation pass, from a short timed fit.

    Three epochs of at most ``n_steps`` steps each; the last two are warm
    (kernels chosen, memory pooled) and are averaged.
    """
    import torch

    batch = settings["batch_size"]
    subset = train.isel(sample=slice(0, batch * n_steps))
    steps = math.ceil(subset.sizes["sample"] / batch)
    probe = surrogate_cls("transformer", settings["architecture_options"], epochs=3,
                          batch_size=batch, learning_rate=settings["learning_rate"],
                          patience=10, seed=0, progress=False)
    probe.fit(subset, validation)
    _sync()
    epoch_time = (probe.history_[2]["time_s"] - probe.history_[0]["time_s"]) / 2
    x = torch.tensor(_as_inputs(validation)).to(probe.device)
    y = torch.tensor(validation["phase_velocity"].values)
    _sync()
    start = time.perf_counter()
    probe._rmse(probe.network_, x, y)
    _sync()
    validation_time = time.perf_counter() - start
    return max(epoch_time - validation_time, 0.0) / steps, validation_time


def _save_npz(path, compressed=False, **arrays):
    """Write arrays to ``path`` under a temporary name, then rename."""
    from kernels.io import atomic_path

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        (np.savez_compressed if compressed else np.savez)(f, **arrays)


def _save_json(path, obj):
    from kernels.io import atomic_path

    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(obj, indent=1, default=str))


def _rate(func, n, repeats=3):
    """Models per second of func() over n models (best of repeats, after a warm-up)."""
    func()
    best = math.inf
    for _ in range(repeats):
        _sync()
        start = time.perf_counter()
        func()
        _sync()
        best = min(best, time.perf_counter() - start)
    return n / best


def train(data_path, out, budget, n_jacobian, deadline, toy=False):
    import torch

    from kernels import metrics
    from kernels.surrogate import BasisMLP, Surrogate

    t0 = time.perf_counter()
    run_on = datetime.date.today().isoformat()
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"{out} is not empty; train writes into an empty folder (a report "
                         f"would otherwise mix files of two runs).")
    out.mkdir(parents=True, exist_ok=True)
    if not (toy or torch.cuda.is_available()):
        raise SystemExit("train needs a CUDA device (or --toy for a CPU dry run).")
    splits, data_config = unpack(data_path)
    tr, va, te = (splits[s].drop_vars("thickness") for s in SPLITS)
    p = _paper_settings(toy)
    settings = {"architecture_options": p["architecture_options"], "batch_size": p["batch_size"],
                "learning_rate": p["learning_rate"]}
    step_s, validation_s = _probe_step_time(Surrogate, settings, tr, va)
    steps_per_epoch = math.ceil(tr.sizes["sample"] / p["batch_size"])
    epoch_s = steps_per_epoch * step_s + validation_s
    # 15 % margin: in the recorded H200 run the probe read 48 ms per step and the
    # run itself took 54 (best-state copies, a full-size data set in memory).
    epochs = max(1, int(budget / (1.15 * epoch_s)))
    print(f"probe: {1e3 * step_s:.1f} ms/step, {epoch_s:.1f} s/epoch -> {epochs} epochs "
          f"in {budget:.0f} s", flush=True)

    _reset_peak()
    model = Surrogate("transformer", p["architecture_options"], epochs=epochs,
                      batch_size=p["batch_size"], learning_rate=p["learning_rate"],
                      patience=p["patience"], seed=p["seed"], progress=False)
    model.fit(tr, va)
    train_peak = _peak_gib()
    print(f"trained {len(model.history_)} epochs in {model.training_time_s_:.0f} s; best val "
          f"RMSE {min(h['val_rmse_rayleigh'] + h['val_rmse_love'] for h in model.history_) / 2:.4f}"
          f" km/s", flush=True)

    predicted = model.predict(te)
    true = te["phase_velocity"]
    rmse = np.sqrt(((predicted - true) ** 2).mean(["sample", "period"]))
    by_bin = metrics.errors_by_period_bin(predicted, true)

    # Jacobians of the first test models, in pieces while time remains before the
    # deadline. One model per vmapped batch: jacrev vmaps the backward pass over
    # all 118 outputs, and a batch of 8 models needed over 130 GiB.
    from torch.nn.attention import SDPBackend, sdpa_kernel

    _reset_peak()
    t_jacobian = time.perf_counter()
    pieces, done, jacobian_error = [], 0, None
    try:
        with sdpa_kernel(SDPBackend.MATH):
            while done < n_jacobian and time.perf_counter() - t0 < deadline:
                chunk = te.isel(sample=slice(done, min(done + 10, n_jacobian)))
                pieces.append(model.jacobian(chunk, batch_size=1))
                done += chunk.sizes["sample"]
    except torch.OutOfMemoryError as error:  # recorded, not fatal: the rest still runs
        jacobian_error = str(error).splitlines()[0]
    jacobian_s = time.perf_counter() - t_jacobian
    jacobian_peak = _peak_gib()
    if pieces:
        jac = xr.concat(pieces, "sample")
        for i in range(0, done, JACOBIAN_FILE_MODELS):
            part = jac.isel(sample=slice(i, i + JACOBIAN_FILE_MODELS))
            _save_npz(out / f"jacobian-{i // JACOBIAN_FILE_MODELS}.npz",
                      sample=part["sample"].values, dc_dvelocity_s=part.values)
    _save_npz(out / "predictions.npz", sample=te["sample"].values,
              phase_velocity=predicted.values.astype("float32"))
    epoch_s_in_run = model.training_time_s_ / len(model.history_)
    result = {
        "run_on": run_on,
        "argv": sys.argv,
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "toy": toy,
        "versions": {"torch": torch.__version__, "cuda": torch.version.cuda,
                     "numpy": np.__version__, "python": platform.python_version()},
        "data": {"config": data_config, **{f"n_{s}": splits[s].sizes["sample"] for s in SPLITS}},
        "architecture_options": p["architecture_options"],
        "n_parameters": model.n_parameters(),
        "training": {"budget_s": budget, "epochs_planned": epochs,
                     "epochs": len(model.history_), "batch_size": p["batch_size"],
                     "learning_rate": p["learning_rate"], "seed": p["seed"],
                     "precision": model.precision, "steps": len(model.history_) * steps_per_epoch,
                     "probe_ms_per_step": 1e3 * step_s,
                     "ms_per_step_in_run": 1e3 * (epoch_s_in_run - validation_s) / steps_per_epoch,
                     "training_time_s": model.training_time_s_,
                     "peak_gpu_memory_gib": train_peak},
        "history": model.history_,
        "test_rmse": {str(w): float(rmse.sel(wave=w)) for w in rmse["wave"].values},
        "test_by_period_bin": by_bin.reset_index().to_dict(orient="records"),
        "jacobian": {"n_models": done, "n_requested": n_jacobian, "attention_backend": "math",
                     "batch_size": 1, "seconds": jacobian_s,
                     "peak_gpu_memory_gib": jacobian_peak, "error": jacobian_error},
    }
    _save_json(out / "result.json", result)  # kept even if the timings below fail

    # Throughput on this device. The fused attention kernels have no vmap rule
    # for their backward pass, so both attention backends are timed.
    rates, rate_error = {}, None
    try:
        n_rate = 64
        sub = te.isel(sample=slice(0, n_rate))
        rates["transformer_predict"] = _rate(lambda: model.predict(te), te.sizes["sample"])
        backends = {"default": nullcontext, "math": lambda: sdpa_kernel(SDPBackend.MATH)}
        for name, ctx in backends.items():
            def jac_rate(ctx=ctx):
                with ctx():
                    model.jacobian(sub.isel(sample=slice(0, 2)), batch_size=1)
            rates[f"transformer_jacobian_{name}"] = _rate(jac_rate, 2, repeats=1)
        options = _profile("default")["architecture_options"]  # the CPU default's size
        mlp = Surrogate("basis-mlp", options, progress=False)
        mlp.network_ = BasisMLP(tr.sizes["depth"], tr.sizes["period"], tr["depth"].values,
                                **options).to(mlp.device).eval()
        mlp.depth_, mlp.periods_, mlp.waves_ = model.depth_, model.periods_, model.waves_
        rates["basis_mlp_predict"] = _rate(lambda: mlp.predict(te), te.sizes["sample"])
        rates["basis_mlp_jacobian"] = _rate(lambda: mlp.jacobian(sub, batch_size=64), n_rate)
    except Exception as error:  # recorded: the training result above is kept
        rate_error = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    print("throughput (models/s):", {k: round(v, 1) for k, v in rates.items()}, flush=True)
    result.update(throughput_models_per_s=rates, throughput_error=rate_error,
                  wall_time_s=time.perf_counter() - t0)
    _save_json(out / "result.json", result)
    print(json.dumps({k: result[k] for k in ("test_rmse", "jacobian", "wall_time_s")}))


# --------------------------------------------------------------------------
# report (here)
# --------------------------------------------------------------------------


def report(out, data_path, destination):
    from kernels import metrics
    from kernels.gradients import paired_display_forms
    from kernels.sensitivity import kernel_dataset

    out = Path(out)
    result = json.loads((out / "result.json").read_text())
    splits, _ = unpack(data_path)
    test = splits["test"].astype("float64")
    n_files = math.ceil(result["jacobian"]["n_models"] / JACOBIAN_FILE_MODELS)
    files = [out / f"jacobian-{i}.npz" for i in range(n_files)]
    parts = [np.load(f) for f in files]
    learned = xr.concat([
        xr.DataArray(part["dc_dvelocity_s"], dims=("sample", "wave", "period", "depth"),
                     coords={"sample": part["sample"]}) for part in parts], "sample")
    models = test.sel(sample=learned["sample"].values)
    learned = learned.assign_coords(wave=models["wave"].values, period=models["period"].values,
                                    depth=models["depth"].values)
    thickness = models["thickness"].broadcast_like(models["velocity_s"])
    theory = kernel_dataset(models.assign(thickness=thickness)[
        ["thickness", "velocity_p", "velocity_s", "density"]], models["period"].values, n_jobs=2)
    summary = {}
    for form in ("matched", "authors"):
        shown = paired_display_forms(learned, theory.dc_dvelocity_s, models.velocity_s, form)
        cosine = metrics.kernel_agreement(*shown)["cosine"]
        table = metrics.summarise_by_period_bin(cosine, seed=0)
        summary[form] = {
            "median_cosine": float(cosine.median()),
            "by_period_bin": table.reset_index().to_dict(orient="records"),
        }
        print(f"{form}: median cosine {summary[form]['median_cosine']:.4f}")
        print(table.to_string())
    result["reported_on"] = datetime.date.today().isoformat()
    result["kernel_agreement"] = {
        "n_models": int(learned.sizes["sample"]),
        # (sample, wave, period) entries whose exact kernel failed; left out of the stats
        "n_failed_kernels": int(theory.failed.sum()),
        "n_kernels": int(theory.failed.size), **summary}
    predicted = np.load(out / "predictions.npz")["phase_velocity"]
    error = np.abs(predicted - test["phase_velocity"].values).max(axis=(1, 2))
    result["worst_test_models"] = [
        {"sample": int(test["sample"].values[i]), "max_abs_error_km_s": float(error[i])}
        for i in np.argsort(error)[::-1][:5]]
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    _save_json(destination, result)
    print(f"wrote {destination}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="step", required=True)
    p = sub.add_parser("pack", help="pack a store's splits into an npz")
    p.add_argument("store")
    p.add_argument("out")
    p = sub.add_parser("train", help="train and measure on the GPU")
    p.add_argument("data")
    p.add_argument("out")
    p.add_argument("--budget", type=float, default=300.0, help="training seconds")
    p.add_argument("--n-jacobian", type=int, default=200, help="test models")
    p.add_argument("--deadline", type=float, default=480.0,
                   help="seconds after start after which no further piece of 10 Jacobians "
                        "is begun")
    p.add_argument("--toy", action="store_true",
                   help="toy-size Transformer; runs on CPU (a dry run of this step)")
    p = sub.add_parser("report", help="compare the returned Jacobians with exact kernels")
    p.add_argument("out")
    p.add_argument("data")
    p.add_argument("--destination", default=str(ROOT / "benchmarks" / "results"
                                                / "transformer-gpu.json"))
    args = parser.parse_args()
    if args.step == "pack":
        pack(args.store, args.out)
    elif args.step == "train":
        train(args.data, args.out, args.budget, args.n_jacobian, args.deadline, args.toy)
    else:
        report(args.out, args.data, args.destination)


if __name__ == "__main__":
    main()
