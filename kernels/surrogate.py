r"""Neural surrogates of the dispersion forward model, and their autodiff Jacobians.

A surrogate maps a model on the depth grid, :math:`(V_P, V_S, \rho)` at every
node, to fundamental-mode phase velocities of Rayleigh and Love waves at the
training periods. Its gradients :math:`\partial c / \partial V_S(z)` are the
object of study, so:

- inputs and outputs are in physical units (km/s, g/cm^3); the normalisation
  is a fixed part of the module (buffers fitted on the training split), so
  autodiff returns km/s per km/s directly;
- activations are smooth (GELU), so second derivatives exist and gradients
  carry no kinks.

Two architectures:

``"basis-mlp"`` (CPU default)
    The logarithm of each profile is first projected onto a fixed smooth depth
    basis (Gaussian bumps whose spacing grows with depth, from one grid step at
    the surface to a few km at the bottom, mirroring how the depth resolution
    of surface waves decays); the coefficients feed an MLP. Working in log
    space gives slow near-surface layers the weight they have in the physics.
    ``log_outputs=True`` predicts :math:`\ln c` instead (positive velocities by
    construction; on the strong prior it fitted worse than the default).
    The gradient with respect to a node is then a combination of smooth basis
    functions: the basis bounds the spatial bandwidth of the learned
    sensitivities without saying anything about their shape. ``n_basis=None``
    gives a plain MLP on the raw nodes.
``"transformer"`` (the paper's)
    The encoder-decoder Transformer of Yu, Cai & Liu (2026): depth tokens
    (depth, Vp, Vs, density; MLP embedding and sinusoidal positions) through a
    pre-LayerNorm encoder; learned period queries plus an MLP embedding of the
    normalised period through a decoder; heads for a mean and a log-variance
    per wave (only the mean is trained). About 43 M parameters at the
    published size; trains on a GPU when one is present.

:class:`Surrogate` trains (AdamW, one-cycle learning-rate schedule, early
stopping on the validation split, gradient clipping, fixed seeds, tqdm), saves
a self-describing checkpoint, and evaluates predictions and Jacobians
(``torch.func.jacrev``, vmapped, in batches) as labelled DataArrays.
"""

from __future__ import annotations

import copy
import math
import time
from importlib import metadata
from pathlib import Path

import numpy as np
import torch
import xarray as xr
from torch import nn
from tqdm.auto import tqdm

from .config import DEFAULT_TRAINING, WAVES
from .io import atomic_path

__all__ = ["Surrogate", "load", "train_cached", "train_for_store", "fit_ridge", "ARCHITECTURES",
           "INPUTS", "RIDGE_ALPHAS"]

#: Input channels of every surrogate, in order.
INPUTS = ("velocity_p", "velocity_s", "density")

#: Checkpoint format. Bump it whenever a network's definition or its input
#: features change: older checkpoints are then refused by :func:`load` (they
#: would load without error into the new network and predict nonsense), and
#: the cache keys of :func:`train_for_store` change so that they are retrained.
CHECKPOINT_FORMAT = "kernels-surrogate/2"

#: Arithmetic of the training steps (see :class:`Surrogate`).
PRECISIONS = ("auto", "float32", "bfloat16")


# --------------------------------------------------------------------------
# Networks
# --------------------------------------------------------------------------


def depth_basis(depth, n_basis):
    """Smooth Gaussian depth basis, columns normalised to unit sum.

    Centres follow :math:`z_j = z_{max} (j / (n-1))^{1.5}`, so the spacing grows
    from the surface downward; each width equals the local spacing (at least
    the grid step).

    Returns
    -------
    numpy.ndarray, shape (n_depth, n_basis)
    """
    depth = np.asarray(depth, dtype=float)
    step = depth[1] - depth[0]
    centres = depth[-1] * (np.arange(n_basis) / (n_basis - 1)) ** 1.5
    widths = np.maximum(np.gradient(centres), step)
    basis = np.exp(-0.5 * ((depth[:, None] - centres[None, :]) / widths[None, :]) ** 2)
    return basis / basis.sum(axis=0, keepdims=True)


class _Standardise(nn.Module):
    """x -> (x - mean) / std with fixed buffers."""

    def __init__(self, shape):
        super().__init__()
        self.register_buffer("mean", torch.zeros(shape))
        self.register_buffer("std", torch.ones(shape))

    def fit(self, values):
        # Statistics over every leading dim (samples, and depth tokens if any).
        values = values.reshape(-1, *self.mean.shape)
        self.mean.copy_(values.mean(0))
        self.std.copy_(values.std(0).clamp_min(1e-6))

    def forward(self, x):
        return (x - self.mean) / self.std

    def inverse(self, y):
        return y * self.std + self.mean


class BasisMLP(nn.Module):
    """Depth-basis projection followed by a GELU MLP (the CPU default)."""

    def __init__(self, n_depth, n_period, depth, n_basis=64, hidden=384, layers=3,
                 n_waves=2, log_inputs=True, log_outputs=False):
        super().__init__()
        self.n_period, self.n_waves = n_period, n_waves
        self.log_inputs, self.log_outputs = bool(log_inputs), bool(log_outputs)
        if n_basis is None:
            basis = np.eye(n_depth)
        else:
            basis = depth_basis(depth, n_basis)
        self.register_buffer("basis", torch.tensor(basis, dtype=torch.float32))
        n_features = len(INPUTS) * self.basis.shape[1]
        self.inputs = _Standardise((n_features,))
        self.outputs = _Standardise((n_waves * n_period,))
        blocks, width = [], n_features
        for _ in range(layers):
            blocks += [nn.Linear(width, hidden), nn.GELU()]
            width = hidden
        blocks.append(nn.Linear(width, n_waves * n_period))
        self.mlp = nn.Sequential(*blocks)

    def features(self, x):
        """(batch, 3, n_depth) profiles -> (batch, 3 * n_basis) coefficients.

        With ``log_inputs`` the profiles are projected in log space (geometric
        means over each basis function): a factor of two in a 0.2 km/s
        sediment then weighs as much as in a 4 km/s mantle, which is how
        travel times, and dispersion, respond to slow layers.
        """
        if self.log_inputs:
            x = torch.log(x)
        return (x @ self.basis).flatten(-2)

    def raw(self, x):
        """Standardised outputs (the space in which the loss is computed)."""
        return self.mlp(self.inputs(self.features(x)))

    def target_space(self, y):
        """Phase velocities (batch, n_waves * n_period) in the output's raw space."""
        return torch.log(y) if self.log_outputs else y

    def forward(self, x):
        y = self.outputs.inverse(self.raw(x))
        # With log outputs the prediction is exp(.) : positive by construction.
        y = torch.exp(y) if self.log_outputs else y
        return y.unflatten(-1, (self.n_waves, self.n_period))


class _Sinusoidal(nn.Module):
    def __init__(self, length, d_model):
        super().__init__()
        position = torch.arange(length)[:, None]
        frequency = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
        table = torch.zeros(length, d_model)
        table[:, 0::2] = torch.sin(position * frequency)
        table[:, 1::2] = torch.cos(position * frequency)
        self.register_buffer("table", table)

    def forward(self, x):
        return x + self.table[: x.shape[-2]]


class DispersionTransformer(nn.Module):
    """The paper's encoder-decoder Transformer (sizes are arguments)."""

    def __init__(self, n_depth, n_period, depth, periods, d_model=512, heads=8,
                 encoder_layers=8, decoder_layers=8, feedforward=1024, dropout=0.1,
                 n_waves=2):
        super().__init__()
        self.n_period, self.n_waves = n_period, n_waves
        self.register_buffer("depth", torch.tensor(np.asarray(depth), dtype=torch.float32))
        periods = np.asarray(periods, dtype=float)
        scaled = (periods - 2.0) / (60.0 - 2.0)  # the paper normalises over (2, 60) s
        self.register_buffer("period", torch.tensor(scaled, dtype=torch.float32)[:, None])
        self.inputs = _Standardise((1 + len(INPUTS),))
        self.outputs = _Standardise((n_waves * n_period,))
        self.embed = nn.Sequential(nn.Linear(1 + len(INPUTS), d_model), nn.GELU(),
                                   nn.Linear(d_model, d_model))
        self.position = _Sinusoidal(n_depth, d_model)
        self.queries = nn.Parameter(torch.randn(n_period, d_model) * 0.02)
        self.period_embed = nn.Sequential(nn.Linear(1, d_model), nn.GELU(),
                                          nn.Linear(d_model, d_model))
        self.encoder = nn.TransformerEncoder(
            nn.TransformerEncoderLayer(d_model, heads, feedforward, dropout, activation="gelu",
                                       batch_first=True, norm_first=True),
            encoder_layers, enable_nested_tensor=False)
        self.decoder = nn.TransformerDecoder(
            nn.TransformerDecoderLayer(d_model, heads, feedforward, dropout, activation="gelu",
                                       batch_first=True, norm_first=True),
            decoder_layers)
        self.norm = nn.LayerNorm(d_model)
        self.mean_head = nn.Linear(d_model, n_waves)
        self.logvar_head = nn.Linear(d_model, n_waves)  # kept for fidelity; not trained

    def features(self, x):
        """(batch, 3, n_depth) -> (batch, n_depth, 4) tokens (depth, Vp, Vs, density)."""
        depth = self.depth.expand(x.shape[0], 1, -1)
        return torch.cat([depth, x], dim=1).transpose(1, 2)

    def raw(self, x):
        """Standardised mean outputs (the space in which the loss is computed)."""
        tokens = self.position(self.embed(self.inputs(self.features(x))))
        memory = self.encoder(tokens)
        queries = (self.queries + self.period_embed(self.period)).expand(x.shape[0], -1, -1)
        decoded = self.norm(self.decoder(queries, memory))
        return self.mean_head(decoded).transpose(1, 2).flatten(-2)

    def target_space(self, y):
        """Phase velocities in the output's raw space (km/s: no transform)."""
        return y

    def forward(self, x):
        y = self.outputs.inverse(self.raw(x))
        return y.unflatten(-1, (self.n_waves, self.n_period))


ARCHITECTURES = {"basis-mlp": BasisMLP, "transformer": DispersionTransformer}


def _default_device():
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_precision(precision, architecture, device=None):
    """The training arithmetic that ``precision`` means for this network and device."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}.")
    if precision != "auto":
        return precision
    device = torch.device(device or _default_device())
    return "bfloat16" if device.type == "cuda" and architecture == "transformer" else "float32"


# --------------------------------------------------------------------------
# The estimator
# --------------------------------------------------------------------------


def _as_inputs(models):
    """(n_sample, 3, n_depth) float32 array of a model Dataset."""
    arrays = []
    for name in INPUTS:
        if name not in models:
            raise ValueError(f"models lacks {name!r}; a surrogate needs {list(INPUTS)}.")
        da = models[name]
        da = da.transpose("sample", "depth") if "sample" in da.dims else da.expand_dims("sample")
        arrays.append(da.values)
    return np.stack(arrays, axis=1).astype("float32")


def _as_tensors(split):
    """Inputs (n, 3, n_depth) and targets (n, wave, period) of a split, float32 tensors."""
    targets = split["phase_velocity"].transpose("sample", "wave", "period").values
    incomplete = np.flatnonzero(~np.isfinite(targets).all(axis=(1, 2)))
    if incomplete.size:
        labels = split["sample"].values[incomplete] if "sample" in split.coords else incomplete
        raise ValueError(
            f"phase_velocity must be finite to train on; {incomplete.size} model(s) have NaN "
            f"periods (no trapped root), e.g. sample {labels[0]}. Drop them first "
            f"(kernels.data.load_split and kernels.data.drop_failed do).")
    return torch.tensor(_as_inputs(split)), torch.tensor(targets, dtype=torch.float32)


def _versions():
    out = {}
    for package in ("kernels", "torch", "numpy", "disba"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = "unknown"
    return out


class Surrogate:
    """A trainable, differentiable surrogate of surface-wave dispersion.

    Parameters
    ----------
    architecture : {"basis-mlp", "transformer"}
        Network (see the module docstring).
    architecture_options : dict, optional
        Keyword arguments of the network (sizes).
    epochs : int
        Maximum number of epochs.
    batch_size : int
        Mini-batch size.
    learning_rate : float
        Peak learning rate of the one-cycle schedule (AdamW).
    weight_decay : float
        AdamW weight decay.
    patience : int
        Early stopping: epochs without improvement of the validation RMSE,
        counted after the first 30 % of the epochs (the schedule's warm-up and
        peak); the best epoch's weights are kept.
    clip : float
        Gradient-norm clipping.
    seed : int
        Seed of the initialisation and of the batch order.
    device : str, optional
        Torch device; CUDA when available, else CPU.
    precision : {"auto", "float32", "bfloat16"}
        Arithmetic of the training steps. ``"bfloat16"`` runs the forward and
        backward passes under autocast (mixed precision; weights, optimiser
        state and loss stay float32). ``"auto"`` picks it for the Transformer on
        CUDA, and float32 otherwise: the basis-MLP's projection onto its depth
        basis would lose about 0.4 % of ln Vs in bfloat16, comparable to the
        errors it reaches. Predictions and Jacobians are always float32.
    threads : int, optional
        CPU threads for torch.
    progress : bool
        Show a progress bar over epochs.

    Attributes
    ----------
    network_ : torch.nn.Module
        The trained network (best validation epoch).
    history_ : list of dict
        Per epoch: train loss, validation RMSE per wave (km/s), learning rate, time.
    depth_, periods_, waves_ : numpy.ndarray, tuple
        The grid and periods the surrogate was trained on.
    """

    # Defaults: the default profile's training (kernels.config.DEFAULT_TRAINING).
    def __init__(self, architecture=DEFAULT_TRAINING["architecture"],
                 architecture_options=None, epochs=DEFAULT_TRAINING["epochs"],
                 batch_size=DEFAULT_TRAINING["batch_size"],
                 learning_rate=DEFAULT_TRAINING["learning_rate"], weight_decay=1e-4,
                 patience=DEFAULT_TRAINING["patience"], clip=5.0, seed=0, device=None,
                 precision="auto", threads=None, progress=True):
        if architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {list(ARCHITECTURES)}, got "
                             f"{architecture!r}.")
        self.architecture = architecture
        self.architecture_options = dict(architecture_options or {})
        self.epochs, self.batch_size = epochs, batch_size
        self.learning_rate, self.weight_decay = learning_rate, weight_decay
        self.patience, self.clip, self.seed = patience, clip, seed
        self.device = device or _default_device()
        self.precision = resolve_precision(precision, architecture, self.device)
        self.threads, self.progress = threads, progress

    # -- training -----------------------------------------------------------

    def _build(self, depth, periods):
        torch.manual_seed(self.seed)
        cls = ARCHITECTURES[self.architecture]
        if self.architecture == "transformer":
            return cls(depth.size, periods.size, depth, periods, **self.architecture_options)
        return cls(depth.size, periods.size, depth, **self.architecture_options)

    def fit(self, train, validation, extra_loss=None):
        """Train on ``train`` with early stopping on ``validation``; return self.

        Parameters
        ----------
        train, validation : xarray.Dataset
            Models (``velocity_p``, ``velocity_s``, ``density`` on ``sample,
            depth``) and targets ``phase_velocity`` (``sample, wave, period``),
            e.g. from :func:`kernels.data.load_split`.
        extra_loss : callable, optional
            ``extra_loss(network) -> tensor``, added to each step's loss (for
            example the derivative term of :mod:`kernels.sobolev`); its mean per
            epoch is recorded in ``history_`` as ``extra_loss``.
        """
        if self.threads:
            torch.set_num_threads(self.threads)
        network, x_train, y_train = self._initial_network(train)
        x_val, y_val = _as_tensors(validation)
        network.to(self.device)
        # The whole training split lives on the device: no host-to-device copy
        # per batch (a no-op on CPU).
        x_train, y_train = x_train.to(self.device), y_train.to(self.device)
        x_val = x_val.to(self.device)
        autocast = torch.autocast(torch.device(self.device).type, dtype=torch.bfloat16,
                                  enabled=self.precision == "bfloat16")
        optimiser = torch.optim.AdamW(network.parameters(), lr=self.learning_rate,
                                      weight_decay=self.weight_decay)
        steps = self.epochs * math.ceil(len(x_train) / self.batch_size)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, self.learning_rate,
                                                       total_steps=steps, pct_start=0.1)
        generator = torch.Generator().manual_seed(self.seed)
        best, best_state, waited, self.history_ = np.inf, None, 0, []
        bar = tqdm(range(self.epochs), disable=not self.progress, desc=self.architecture,
                   unit="epoch")
        start = time.perf_counter()
        for epoch in bar:
            network.train()
            order = torch.randperm(len(x_train), generator=generator).to(self.device)
            total = torch.zeros((), dtype=torch.float64, device=self.device)
            extra_total = torch.zeros((), dtype=torch.float64, device=self.device)
            for batch in order.split(self.batch_size):
                x, y = x_train[batch], y_train[batch].flatten(1)
                # MSE on standardised outputs: every period and wave counts alike.
                target = network.outputs(network.target_space(y))
                with autocast:
                    raw = network.raw(x)
                value = ((raw.float() - target) ** 2).mean()
                loss = value
                if extra_loss is not None:
                    extra = extra_loss(network)
                    extra_total += extra.detach() * len(batch)
                    loss = value + extra
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(network.parameters(), self.clip)
                optimiser.step()
                schedule.step()
                total += value.detach() * len(batch)  # no host sync per step
            rmse = self._rmse(network, x_val, y_val)
            row = {"epoch": epoch, "train_loss": float(total) / len(x_train),
                   "val_rmse_rayleigh": float(rmse[0]), "val_rmse_love": float(rmse[1]),
                   "learning_rate": schedule.get_last_lr()[0],
                   "time_s": time.perf_counter() - start}
            if extra_loss is not None:
                row["extra_loss"] = float(extra_total) / len(x_train)
            self.history_.append(row)
            score = float(rmse.mean())
            bar.set_postfix(val_rmse=f"{score:.4f} km/s")
            if score < best:
                best, waited = score, 0
                best_state = copy.deepcopy(network.state_dict())
            elif epoch >= self._warmup_epochs():
                # Patience counts only after the one-cycle schedule's high-rate
                # phase, whose noisy validation curve would stop training early.
                waited += 1
                if waited >= self.patience:
                    break
        network.load_state_dict(best_state)
        self.network_ = network.eval()
        self.training_time_s_ = time.perf_counter() - start
        return self

    def _initial_network(self, train):
        """The network at initialisation, its standardisers fitted on ``train``."""
        self.depth_ = np.asarray(train["depth"].values, dtype=float)
        self.periods_ = np.asarray(train["period"].values, dtype=float)
        self.waves_ = tuple(str(w) for w in train["wave"].values)
        if self.waves_ != WAVES:
            raise ValueError(f"targets must have waves {WAVES}, got {self.waves_}.")
        x_train, y_train = _as_tensors(train)
        network = self._build(self.depth_, self.periods_)
        with torch.no_grad():
            network.inputs.fit(network.features(x_train))
            network.outputs.fit(network.target_space(y_train.flatten(1)))
        return network, x_train, y_train

    def initialise(self, train):
        """Set up the network on ``train`` without a training step; return self.

        The result is the architecture at initialisation (seed ``seed``), its
        input and output standardisation fitted on ``train``: a baseline that
        knows the data's scale and nothing else.
        """
        network, _, _ = self._initial_network(train)
        self.network_ = network.to(self.device).eval()
        self.history_, self.training_time_s_ = [], 0.0
        return self

    def _warmup_epochs(self):
        return int(0.3 * self.epochs)

    def _rmse(self, network, x, y, batch_size=1024):
        network.eval()
        with torch.no_grad():
            predicted = torch.cat([network(x[i:i + batch_size].to(self.device)).cpu()
                                   for i in range(0, len(x), batch_size)])
        return torch.sqrt(((predicted - y) ** 2).mean(dim=(0, 2))).numpy()

    # -- evaluation ---------------------------------------------------------

    def _check_grid(self, models):
        depth = np.asarray(models["depth"].values, dtype=float)
        if depth.shape != self.depth_.shape or not np.allclose(depth, self.depth_):
            raise ValueError(
                f"models are on a grid of {depth.size} nodes ({depth[0]:g}-{depth[-1]:g} km); "
                f"this surrogate was trained on {self.depth_.size} nodes "
                f"({self.depth_[0]:g}-{self.depth_[-1]:g} km).")

    def predict(self, models, batch_size=512):
        """Phase velocities (km/s) of models, dims ``(sample, wave, period)``."""
        self._check_grid(models)
        x = torch.tensor(_as_inputs(models))
        with torch.no_grad():
            values = torch.cat([self.network_(x[i:i + batch_size].to(self.device)).cpu()
                                for i in range(0, len(x), batch_size)]).numpy()
        return self._label(values, models, ("sample", "wave", "period"),
                           "phase_velocity", "km/s", "surrogate phase velocity")

    def jacobian(self, models, parameter="velocity_s", batch_size=32):
        """Autodiff Jacobian dc/dp per node, dims ``(sample, wave, period, depth)``.

        The other inputs are held fixed; the network is in evaluation mode.
        Computed with ``torch.func.jacrev`` vmapped over batches of models.
        """
        if parameter not in INPUTS:
            raise ValueError(f"parameter must be one of {list(INPUTS)}, got {parameter!r}.")
        self._check_grid(models)
        channel = INPUTS.index(parameter)
        x = torch.tensor(_as_inputs(models))
        network = self.network_

        def single(profile, others):
            full = torch.cat([others[:channel], profile[None], others[channel:]], dim=0)
            return network(full[None])[0]

        jac = torch.func.vmap(torch.func.jacrev(single), in_dims=(0, 0))
        keep = [i for i in range(len(INPUTS)) if i != channel]
        out = []
        for i in range(0, len(x), batch_size):
            batch = x[i:i + batch_size].to(self.device)
            out.append(jac(batch[:, channel], batch[:, keep]).detach().cpu())
        values = torch.cat(out).numpy()
        units = "(km/s)/(km/s)" if parameter != "density" else "(km/s)/(g/cm^3)"
        return self._label(values, models, ("sample", "wave", "period", "depth"),
                           f"dc_d{parameter}", units, f"surrogate dc/d{parameter}")

    def _label(self, values, models, dims, name, units, long_name):
        coords = {"wave": list(self.waves_),
                  "period": ("period", self.periods_, {"units": "s"})}
        if "depth" in dims:
            coords["depth"] = ("depth", self.depth_, {"units": "km", "positive": "down"})
        da = xr.DataArray(values, dims=dims, coords=coords, name=name,
                          attrs={"units": units, "long_name": long_name,
                                 "architecture": self.architecture})
        if "sample" in models.dims:
            return da.assign_coords(sample=models["sample"].values)
        return da.isel(sample=0)

    def n_parameters(self):
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.network_.parameters() if p.requires_grad)

    # -- persistence --------------------------------------------------------

    def save(self, path, **metadata_):
        """Write a self-describing checkpoint atomically; return the path."""
        checkpoint = {
            "format": CHECKPOINT_FORMAT,
            "architecture": self.architecture,
            "architecture_options": self.architecture_options,
            "training": {"epochs": self.epochs, "batch_size": self.batch_size,
                         "learning_rate": self.learning_rate,
                         "weight_decay": self.weight_decay, "patience": self.patience,
                         "clip": self.clip, "seed": self.seed, "precision": self.precision,
                         "device": str(self.device),
                         "training_time_s": self.training_time_s_},
            "depth": self.depth_.tolist(),
            "periods": self.periods_.tolist(),
            "waves": list(self.waves_),
            "history": self.history_,
            "versions": _versions(),
            "metadata": metadata_,
            "state_dict": {k: v.cpu() for k, v in self.network_.state_dict().items()},
        }
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)
        return Path(path)


def load(path, depth=None, periods=None, device=None):
    """Load a checkpoint written by :meth:`Surrogate.save`.

    Parameters
    ----------
    path : str or Path
        Checkpoint file.
    depth, periods : array_like, optional
        The grid (km) and periods (s) the caller will use; a mismatch with the
        checkpoint raises a ValueError naming both.
    device : str, optional
        Torch device.

    Returns
    -------
    Surrogate
        In evaluation mode, with ``network_``, ``history_``, ``depth_``,
        ``periods_``, ``waves_`` and ``checkpoint_`` (the path) set.
    """
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    found = checkpoint.get("format") if isinstance(checkpoint, dict) else None
    if not (isinstance(found, str) and found.startswith("kernels-surrogate/")):
        raise ValueError(f"{path} is not a kernels surrogate checkpoint.")
    if found != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} has checkpoint format {found!r}, written by another version "
                         f"of the networks; this version reads {CHECKPOINT_FORMAT!r}. Retrain it.")
    stored_depth = np.asarray(checkpoint["depth"])
    stored_periods = np.asarray(checkpoint["periods"])
    if depth is not None and (np.shape(depth) != stored_depth.shape
                              or not np.allclose(depth, stored_depth)):
        raise ValueError(f"{path} was trained on a grid of {stored_depth.size} nodes "
                         f"({stored_depth[0]:g}-{stored_depth[-1]:g} km), not the requested "
                         f"{np.size(depth)} nodes.")
    if periods is not None and (np.shape(periods) != stored_periods.shape
                                or not np.allclose(periods, stored_periods)):
        raise ValueError(f"{path} was trained on periods {stored_periods.tolist()} s, not "
                         f"{np.asarray(periods).tolist()} s.")
    training = checkpoint["training"]
    surrogate = Surrogate(checkpoint["architecture"], checkpoint["architecture_options"],
                          epochs=training["epochs"], batch_size=training["batch_size"],
                          learning_rate=training["learning_rate"],
                          weight_decay=training["weight_decay"], patience=training["patience"],
                          clip=training["clip"], seed=training["seed"], device=device,
                          precision=training.get("precision", "float32"), progress=False)
    surrogate.depth_, surrogate.periods_ = stored_depth, stored_periods
    surrogate.waves_ = tuple(checkpoint["waves"])
    network = surrogate._build(stored_depth, stored_periods)
    network.load_state_dict(checkpoint["state_dict"])
    surrogate.network_ = network.to(surrogate.device).eval()
    surrogate.history_ = checkpoint["history"]
    surrogate.training_time_s_ = training["training_time_s"]
    surrogate.metadata_ = checkpoint["metadata"]
    surrogate.versions_ = checkpoint["versions"]
    surrogate.checkpoint_ = Path(path)
    return surrogate


#: Ridge penalties tried by :func:`fit_ridge`, per training model (standardised units).
RIDGE_ALPHAS = tuple(10.0**k for k in range(-10, 1))


def fit_ridge(train, validation, n_basis=64, alphas=RIDGE_ALPHAS):
    """A linear surrogate: ridge regression from the basis-MLP's input features to the curves.

    The features are the basis-MLP's with its default options (log-profiles
    projected onto its depth basis, standardised on ``train``; outputs in
    km/s), so this is that network with no hidden layer, fitted in closed form.
    A penalty at either end of ``alphas`` is chosen with a warning. Its
    Jacobian, a linear map of the log model, is its kernel: the best a linear
    function of the same inputs can do.

    Parameters
    ----------
    train, validation : xarray.Dataset
        Splits, as for :meth:`Surrogate.fit`.
    n_basis : int
        Depth-basis functions per input profile.
    alphas : sequence of float
        Ridge penalties (times the number of training models, on standardised
        features); the one with the lowest validation RMSE is kept.

    Returns
    -------
    Surrogate
        Architecture ``"basis-mlp"`` with ``layers=0``; ``alpha_`` and
        ``validation_rmse_`` (km/s, mean over waves, per alpha) set.
    """
    start = time.perf_counter()
    model = Surrogate("basis-mlp", {"n_basis": n_basis, "layers": 0}, device="cpu",
                      progress=False)
    network, x_train, y_train = model._initial_network(train)
    x_val, y_val = _as_tensors(validation)
    with torch.no_grad():
        features = network.inputs(network.features(x_train)).double()
        targets = network.outputs(network.target_space(y_train.flatten(1))).double()
        gram, moment = features.T @ features, features.T @ targets
        linear = network.mlp[0]
        scores = {}
        for alpha in alphas:
            penalty = alpha * len(features) * torch.eye(gram.shape[0], dtype=gram.dtype)
            weights = torch.linalg.solve(gram + penalty, moment)
            # Standardised features and targets have zero mean on the training split.
            linear.weight.copy_(weights.T.float())
            linear.bias.zero_()
            scores[alpha] = float(model._rmse(network, x_val, y_val).mean())
        best = min(scores, key=scores.get)
        if best in (min(alphas), max(alphas)) and len(alphas) > 1:
            import warnings

            warnings.warn(f"fit_ridge: the best penalty, {best:g}, is at the end of the grid "
                          f"{min(alphas):g}-{max(alphas):g}; widen alphas.", stacklevel=2)
        weights = torch.linalg.solve(gram + best * len(features)
                                     * torch.eye(gram.shape[0], dtype=gram.dtype), moment)
        linear.weight.copy_(weights.T.float())
        linear.bias.zero_()
    model.network_ = network.eval()
    model.alpha_, model.validation_rmse_ = best, scores
    model.history_ = [{"alpha": a, "val_rmse": r} for a, r in scores.items()]
    model.training_time_s_ = time.perf_counter() - start
    return model


def train_cached(path, train, validation, architecture="basis-mlp", architecture_options=None,
                 progress=False, metadata=None, **settings):
    """Load the surrogate at ``path``, or train it on ``train``/``validation`` and save it.

    Parameters
    ----------
    path : str or Path
        Checkpoint; put a hash of the data and settings in its name.
    train, validation : xarray.Dataset
        Splits, as for :meth:`Surrogate.fit`.
    architecture, architecture_options, progress
        As for :class:`Surrogate`.
    metadata : dict, optional
        Stored in the checkpoint.
    **settings
        Training settings of :class:`Surrogate` (epochs, batch_size, learning_rate,
        patience, seed, ...).

    Returns
    -------
    Surrogate
        Loaded from the checkpoint (so a fresh and a cached call return the same).
    """
    path = Path(path)
    if not path.exists():
        model = Surrogate(architecture, architecture_options, progress=progress, **settings)
        model.fit(train, validation)
        model.save(path, **(metadata or {}))
    return load(path, depth=train["depth"].values, periods=train["period"].values)


def train_for_store(store, training, cache_dir, init_seed=None, metadata=None,
                    shuffle_seed=None):
    """The book's surrogate for a data store, trained once and cached.

    Parameters
    ----------
    store : xarray.Dataset
        From :func:`kernels.data.generate`; its train and validation splits are used.
    training : kernels.config.SurrogateChapterConfig
        Architecture and training settings.
    cache_dir : str or Path
        Cache root; checkpoints go to ``<cache_dir>/surrogates``, named by the
        prior and a hash of the data, the settings and the training code's source.
    init_seed : int, optional
        Initialisation seed if not ``training.seed`` (for seed ensembles).
    metadata : dict, optional
        Extra entries stored in the checkpoint.
    shuffle_seed : int, optional
        Train on shuffled labels instead (:func:`kernels.data.shuffled_labels`,
        the training split with this seed and the validation split with the
        next): a network that has seen no relation between models and curves.

    Returns
    -------
    Surrogate
    """
    from .data import load_split, shuffled_labels
    from .io import code_hash, config_hash

    prior = store.attrs["prior"]
    # The store's config carries the data code's hash; the training code's is added.
    key = {"data": store.attrs["config"], "training": training.training_key(),
           "code": code_hash("training"), "format": CHECKPOINT_FORMAT}
    precision = resolve_precision("auto", training.architecture)
    if precision != "float32":  # float32 keys stay as they were before mixed precision
        key["precision"] = precision
    name = prior
    if init_seed is not None:
        key["init_seed"] = int(init_seed)
        name = f"{prior}-seed{init_seed}"
    train, validation = load_split(store, "train"), load_split(store, "validation")
    if shuffle_seed is not None:
        key["shuffle_seed"] = int(shuffle_seed)
        name = f"{name}-shuffled"
        train = shuffled_labels(train, shuffle_seed)
        validation = shuffled_labels(validation, shuffle_seed + 1)
    path = Path(cache_dir) / "surrogates" / f"{name}-{config_hash(key)}.pt"
    return train_cached(
        path, train, validation,
        training.architecture, training.architecture_options, epochs=training.epochs,
        batch_size=training.batch_size, learning_rate=training.learning_rate,
        patience=training.patience, seed=training.seed if init_seed is None else init_seed,
        metadata={"prior": prior, "data_config": store.attrs["config"],
                  "profile": training.profile, **(metadata or {})})
