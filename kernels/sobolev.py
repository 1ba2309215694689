r"""Derivative-informed training: surrogates fitted to curves *and* exact kernels.

A data-only surrogate learns the map from a model to its dispersion curves; its
gradients are whatever fits the curves (chapters "Kernel emergence" and
"Prior-induced artifacts" measure how far they are from the physics). Sobolev
training (Czarnecki et al. 2017) and derivative-informed neural operators
(O'Leary-Roseberry et al. 2024) add the derivatives to the loss. This project
owns exact kernels for every layer and parameter (:mod:`kernels.sensitivity`),
so it can buy them for a share of the training models, the *kernel budget*,
and measure what each is worth.

Training data (:func:`generate_kernels`)
    A zarr store of exact kernels :math:`\partial c / \partial p` (p = Vp, Vs,
    density; both waves, every period and layer) for the first training models
    of a data store, chunk by chunk like :func:`kernels.data.generate`:
    resumable, atomic per chunk, keyed by its inputs, parallel over processes.
    A budget of k models uses the first k, so budgets are nested and one store
    serves them all.

The loss (:class:`DerivativeTerm`)
    With :math:`g_p = p\,\partial c/\partial p` the kernel in log coordinates, a
    random direction :math:`\varepsilon_p(z)` (independent at each node, or a
    Gaussian random field with correlation length :math:`\ell` in depth) perturbs
    one parameter by
    :math:`\delta p = p\,\varepsilon_p`; the network's response is one
    forward-mode product :math:`J\,\delta p` (``torch.func.jvp``, never the full
    Jacobian), the physics' is :math:`\sum_z g_p(z)\,\varepsilon_p(z)`. The term
    is

    .. math::

        L_d = \Big\langle \Big(\frac{J\,\delta p - g_p \cdot \varepsilon_p}
              {s_{p,w,T}}\Big)^2 \Big\rangle ,
        \qquad s_{p,w,T}^2 = \big\langle g_p^T\, C\, g_p \big\rangle_{\text{models}},

    averaged over models, parameters, waves, periods and directions, where
    :math:`C` is the directions' covariance: :math:`s_{p,w,T}` is the typical
    physical response of output (w, T) to a perturbation of p, so every
    parameter, wave and period weighs alike, and :math:`L_d` is a squared
    *relative* error of directional derivatives. Its expectation over the
    directions is the full-Jacobian loss
    :math:`\langle (J_p - G_p)\,C\,(J_p - G_p)^T / s^2 \rangle`
    (:meth:`DerivativeTerm.expected`), so the estimate is unbiased. A parameter an
    output barely feels (Vp for Love waves: not at all) has its scale raised to a
    tenth of that output's largest (:data:`RESPONSE_FLOOR`), so that its error is
    measured, not divided by zero. With ``normalise="model"`` each model's
    error is divided by its own response :math:`\sqrt{g_p^T C g_p}` instead of
    the population's (:meth:`DerivativeTerm.expected` uses the same scale, so
    the estimate stays unbiased): a model with a weak response then weighs
    about as much as one with a strong one, as in the relative errors the
    chapters measure. The total
    loss is the value loss (MSE on standardised curves) plus ``weight`` times
    :math:`L_d`.

Training (:func:`train_sobolev`)
    :meth:`kernels.surrogate.Surrogate.fit` with the term as its extra loss; any
    architecture (the Transformer's attention runs on PyTorch's plain
    implementation, which supports forward-mode derivatives). Checkpoints
    record the kernel budget and the loss settings.
"""

from __future__ import annotations

import contextlib
import json
import math
import multiprocessing
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import xarray as xr
import zarr
from tqdm.auto import tqdm

from .config import WAVES
from .data import load_split
from .io import code_hash, config_hash, provenance
from .surrogate import INPUTS, Surrogate, load

__all__ = ["KERNEL_VARIABLES", "NORMALISATIONS", "DerivativeSettings", "generate_kernels",
           "open_kernels", "kernels_cached", "direction_factor", "DerivativeTerm", "train_sobolev",
           "choose_weight", "fitting_gap"]

#: Smallest normalising scale of a parameter's derivative term, as a share of the
#: largest parameter's physical response at the same wave and period.
RESPONSE_FLOOR = 0.1

#: The derivative term's normalisations (:class:`DerivativeSettings`).
NORMALISATIONS = ("population", "model")

#: The kernel variables stored, in the surrogates' input order (Vp, Vs, density).
KERNEL_VARIABLES = tuple(f"dc_d{name}" for name in INPUTS)


# --------------------------------------------------------------------------
# Kernel stores
# --------------------------------------------------------------------------


def _training_models(store):
    """The training split of ``store`` (failed models excluded), in store order."""
    return load_split(store, "train")


def _kernel_chunk(models, periods):
    """Exact kernels of ``models`` (a Dataset on ``sample``): arrays for one chunk."""
    from .sensitivity import _one_torch_thread, kernel_dataset

    with _one_torch_thread():
        ds = kernel_dataset(models, periods, waves=WAVES)
    kernels = np.stack([ds[name].transpose("sample", "wave", "period", "depth").values
                        for name in KERNEL_VARIABLES], axis=1).astype("float32")
    return (kernels, ds.phase_velocity.transpose("sample", "wave", "period").values
            .astype("float32"), ds.failed.transpose("sample", "wave", "period").values)


_SHARED = {}


def _chunk_task(bounds):
    if "torch" in __import__("sys").modules:
        torch.set_num_threads(1)  # a forked worker must not enter the parent's pool
    start, stop = bounds
    models = _SHARED["train"].isel(sample=slice(start, stop))
    return start, *_kernel_chunk(models, _SHARED["periods"])


def generate_kernels(path, store, n_models, chunk_size=100, n_jobs=1, progress=True):
    """Exact kernels of the first ``n_models`` training models of ``store``, on disk.

    The store is sized for the whole training split; only the chunks that
    cover the first ``n_models`` are computed, so a later call with more
    models extends it and a call with fewer reuses it. Each chunk is written,
    then marked done: an interrupted run resumes where it stopped and never
    trusts a half-written chunk.

    Parameters
    ----------
    path : str or Path
        zarr store to create, resume or extend.
    store : xarray.Dataset
        A data store (:func:`kernels.data.generate`).
    n_models : int
        Training models to cover (at most the training split).
    chunk_size : int
        Models per chunk.
    n_jobs : int
        Worker processes (forked).
    progress : bool
        Progress bar.

    Returns
    -------
    xarray.Dataset
        :func:`open_kernels` of the first ``n_models``.

    Raises
    ------
    ValueError
        When ``path`` holds kernels of another data store, other periods or
        other kernel code, or on bad sizes.
    """
    path = Path(path)
    train = _training_models(store)
    n_train = train.sizes["sample"]
    for name, value, low in (("n_models", n_models, 0), ("chunk_size", chunk_size, 1)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}.")
    if n_models > n_train:
        raise ValueError(f"n_models ({n_models}) exceeds the {n_train} training models of "
                         f"the store.")
    periods = train.period.values
    config = {"store": store.attrs["config"], "periods": periods.tolist(),
              "chunk_size": int(chunk_size), "code": code_hash("kernels")}
    as_stored = json.loads(json.dumps(config))
    n_depth = train.sizes["depth"]
    if path.exists():
        stored = json.loads(zarr.open_group(str(path), mode="r").attrs.get("config", "{}"))
        if stored != as_stored:
            raise ValueError(f"{path} holds kernels made with other settings ({stored}); "
                             f"remove it or choose another path for {config}.")
    else:
        group = zarr.open_group(str(path), mode="w-", zarr_format=2)
        shape = (n_train, len(INPUTS), len(WAVES), periods.size, n_depth)
        group.create_array("kernels", shape=shape, chunks=(chunk_size, *shape[1:]),
                           dtype="float32", fill_value=np.nan)
        group.create_array("phase_velocity", shape=(n_train, len(WAVES), periods.size),
                           chunks=(chunk_size, len(WAVES), periods.size), dtype="float32",
                           fill_value=np.nan)
        group.create_array("failed", shape=(n_train, len(WAVES), periods.size),
                           chunks=(chunk_size, len(WAVES), periods.size), dtype=bool,
                           fill_value=True)
        group.create_array("sample", data=train.sample.values.astype("int64"))
        group.create_array("done", data=np.zeros(-(-n_train // chunk_size), dtype=bool))
        group.attrs.update(provenance(config=config, status="partial"))
    group = zarr.open_group(str(path), mode="r+")
    done = np.asarray(group["done"][:])
    needed = np.arange(-(-n_models // chunk_size))
    pending = [(k * chunk_size, min((k + 1) * chunk_size, n_train)) for k in needed
               if not done[k]]
    bar = tqdm(total=int(sum(b - a for a, b in pending)), disable=not progress,
               desc=f"{store.attrs.get('prior', '')} kernels", unit="model")
    _SHARED.update(train=train, periods=periods)
    try:
        jobs = min(n_jobs if n_jobs != -1 else (os.cpu_count() or 1), max(len(pending), 1))
        if jobs > 1 and "fork" in multiprocessing.get_all_start_methods():
            pool = multiprocessing.get_context("fork").Pool(jobs)
            results = pool.imap_unordered(_chunk_task, pending)
        else:
            pool, results = None, map(_chunk_task, pending)
        with pool if pool is not None else contextlib.nullcontext():
            for start, kernels, c, failed in results:
                region = slice(start, start + kernels.shape[0])
                group["kernels"][region] = kernels
                group["phase_velocity"][region] = c
                group["failed"][region] = failed
                group["done"][start // chunk_size] = True  # only after the data
                bar.update(kernels.shape[0])
    finally:
        _SHARED.clear()
        bar.close()
    return open_kernels(path, n_models)


def open_kernels(path, n_models):
    """The first ``n_models`` kernels of a kernel store, as a Dataset (in memory).

    Returns
    -------
    xarray.Dataset
        ``dc_dvelocity_p``, ``dc_dvelocity_s``, ``dc_ddensity`` (float32;
        ``sample, wave, period, depth``; km/s per unit of the parameter, NaN
        where the period failed), ``phase_velocity`` and ``failed``.

    Raises
    ------
    ValueError
        If the chunks that hold them are not all done.
    """
    group = zarr.open_group(str(path), mode="r")
    chunk_size = json.loads(group.attrs["config"])["chunk_size"]
    done = np.asarray(group["done"][:])
    if n_models > group["sample"].shape[0] or not done[:-(-n_models // chunk_size)].all():
        raise ValueError(f"{path} does not yet hold the first {n_models} models' kernels; run "
                         f"generate_kernels with n_models={n_models} to compute them.")
    kernels = np.asarray(group["kernels"][:n_models])
    dims = ("sample", "wave", "period", "depth")
    return xr.Dataset(
        {name: (dims, kernels[:, k], {"units": "(km/s)/unit", "long_name": f"dc/d{name[4:]}"})
         for k, name in enumerate(KERNEL_VARIABLES)}
        | {"phase_velocity": (dims[:3], np.asarray(group["phase_velocity"][:n_models]),
                              {"units": "km/s"}),
           "failed": (dims[:3], np.asarray(group["failed"][:n_models]))},
        coords={"sample": np.asarray(group["sample"][:n_models]), "wave": list(WAVES)},
        attrs={"config": group.attrs["config"]})


def kernels_cached(cache_dir, store, n_models, n_jobs=1, progress=False):
    """:func:`generate_kernels` at the cache's path for ``store`` (one store per data set)."""
    key = config_hash({"store": store.attrs["config"], "code": code_hash("kernels")})
    path = Path(cache_dir) / "kernel-stores" / f"{store.attrs['prior']}-{key}.zarr"
    return generate_kernels(path, store, n_models, n_jobs=n_jobs, progress=progress)


# --------------------------------------------------------------------------
# The derivative term
# --------------------------------------------------------------------------


def direction_factor(depth, correlation_length):
    """``L`` (n_depth, n_depth) with ``L @ z`` a smooth field of covariance ``C``.

    ``C[i, j] = exp(-(z_i - z_j)^2 / (2 l^2))``, a Gaussian correlation with
    length ``l`` km: perturbations that vary over kilometres like the priors'
    structure; ``L = V sqrt(max(w, 0))`` from the eigen-decomposition, so
    ``L @ L.T == C`` to rounding. ``l = 0`` gives independent nodes (``C = I``):
    the loss then weighs every scale of the Jacobian's error alike, the
    Frobenius norm, while a smooth ``C`` leaves errors shorter than ``l``
    almost unpenalised.

    Examples
    --------
    >>> factor = direction_factor(np.arange(5.0), 2.0)
    >>> bool(np.allclose(factor @ factor.T, np.exp(-np.subtract.outer(np.arange(5.0),
    ...      np.arange(5.0)) ** 2 / 8.0), atol=1e-10))
    True
    """
    depth = np.asarray(depth, dtype=float)
    if not (math.isfinite(correlation_length) and correlation_length >= 0):
        raise ValueError(f"correlation_length must be a number of km >= 0, got "
                         f"{correlation_length!r}.")
    if correlation_length == 0:
        return np.eye(depth.size)
    covariance = np.exp(-np.subtract.outer(depth, depth) ** 2 / (2 * correlation_length**2))
    w, v = np.linalg.eigh(covariance)
    return v * np.sqrt(np.clip(w, 0.0, None))


@dataclass(frozen=True)
class DerivativeSettings:
    r"""Settings of the derivative term (recorded in checkpoints).

    Parameters
    ----------
    weight : float
        Weight of the derivative term against the value loss.
    n_directions : int
        Random directions per model, per parameter and step.
    batch_size : int
        Models with kernels per step (drawn at random from the budget).
    correlation_length : float
        Correlation length (km) of the directions in depth; 0 (the default)
        for independent nodes, which constrains the whole Jacobian
        (:func:`direction_factor`).
    normalise : {"population", "model"}
        Scale of each error: ``"population"`` (the default) divides by
        :math:`s_{p,w,T}`, the rms response over the models with kernels;
        ``"model"`` by each model's own rms response
        :math:`\sqrt{g_p^T C g_p}`, raised where needed to
        :data:`RESPONSE_FLOOR` times the larger of that model's largest
        response (over parameters) and the population scale of the parameter,
        so that models' *relative* errors weigh alike, as the
        directional-derivative test measures them, except for models more
        than ten times weaker than the population, which weigh less.
    """

    weight: float = 1.0
    n_directions: int = 2
    batch_size: int = 32
    correlation_length: float = 0.0
    normalise: str = "population"

    def __post_init__(self):
        if not (math.isfinite(self.weight) and self.weight >= 0):
            raise ValueError(f"weight must be a finite number >= 0, got {self.weight!r}.")
        for name in ("n_directions", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}.")
        direction_factor(np.zeros(1), self.correlation_length)  # validates the length
        if self.normalise not in NORMALISATIONS:
            raise ValueError(f"normalise must be one of {NORMALISATIONS}, got "
                             f"{self.normalise!r}.")


class DerivativeTerm:
    """The derivative part of the loss, for :meth:`kernels.surrogate.Surrogate.fit`.

    Parameters
    ----------
    inputs : array_like, shape (n_models, 3, n_depth)
        Vp, Vs and density of the models with kernels (km/s, g/cm^3).
    kernels : array_like, shape (n_models, 3, n_outputs, n_depth)
        Their exact :math:`\\partial c / \\partial p` (p in the order of
        ``inputs``; outputs wave-major, as the networks'); NaN where a period
        failed (left out of the loss).
    depth : array_like
        Grid (km).
    settings : DerivativeSettings
    seed : int
        Seeds the directions and the choice of models at each step.

    Attributes
    ----------
    scale_ : torch.Tensor, shape (3, n_outputs)
        :math:`s_{p,w,T}`: the rms physical response to a direction (km/s).
    model_scale_ : torch.Tensor, shape (n_models, 3, n_outputs)
        Each model's own rms response, floored (``normalise="model"``).
    """

    def __init__(self, inputs, kernels, depth, settings, seed=0):
        inputs = torch.tensor(np.asarray(inputs, dtype=np.float32))
        kernels = torch.tensor(np.asarray(kernels, dtype=np.float32))
        if inputs.ndim != 3 or kernels.ndim != 4 or kernels.shape[:2] != inputs.shape[:2] \
                or kernels.shape[3] != inputs.shape[2]:
            raise ValueError(f"inputs must be (n, 3, n_depth) and kernels (n, 3, n_outputs, "
                             f"n_depth) for the same models; got {tuple(inputs.shape)} and "
                             f"{tuple(kernels.shape)}.")
        if inputs.shape[0] < 1:
            raise ValueError("need at least one model with kernels.")
        self.settings = settings
        self.inputs = inputs
        # Log-coordinate kernels g_p = p dc/dp (in place: a budget of thousands of models
        # holds gigabytes); failed periods masked out.
        self.valid = torch.isfinite(kernels).all(dim=3)  # (n, 3, n_outputs)
        self.log_kernels = kernels.nan_to_num_().mul_(inputs[:, :, None, :])
        del kernels
        factor = direction_factor(depth, settings.correlation_length)
        self.factor = torch.as_tensor(factor, dtype=torch.float32)
        if settings.correlation_length == 0:  # C = I: g^T C g is a sum of squares
            response = (self.log_kernels**2).sum(dim=-1)
        else:
            covariance = self.factor @ self.factor.T
            response = torch.einsum("npoz,zy,npoy->npo", self.log_kernels, covariance,
                                    self.log_kernels)
        counts = self.valid.sum(dim=0).clamp_min(1)
        scale = torch.sqrt((response * self.valid).sum(dim=0) / counts)
        # A parameter an output barely feels (Love waves do not feel Vp at all) would get a
        # near-zero scale and an unbounded relative error: its error is measured instead
        # against a tenth of the output's largest response (RESPONSE_FLOOR).
        largest = scale.max(dim=0, keepdim=True).values
        self.scale_ = torch.maximum(scale, RESPONSE_FLOOR * largest).clamp_min(1e-12)
        # Each model's own scale (normalise="model"), floored at a tenth of the larger of
        # its own largest response and the population's for that parameter: a model that
        # barely feels a parameter is not divided by (nearly) zero.
        own = torch.sqrt(response)
        floor = RESPONSE_FLOOR * torch.maximum(own.max(dim=1, keepdim=True).values,
                                               self.scale_[None])
        self.model_scale_ = torch.maximum(own, floor).clamp_min(1e-12)
        self.generator = torch.Generator().manual_seed(int(seed))
        self._device = torch.device("cpu")

    @property
    def n_models(self):
        return self.inputs.shape[0]

    def _to(self, device):
        """Move the term's tensors to the network's device (once)."""
        device = torch.device(device)
        if device != self._device:
            for name in ("inputs", "valid", "log_kernels", "factor", "scale_",
                         "model_scale_"):
                setattr(self, name, getattr(self, name).to(device))
            self._device = device

    def directions(self, n):
        """``n`` x 3 random fields in ln p: shape (n, n_directions, 3, n_depth).

        Drawn on the CPU from the term's generator (the same draws on any device),
        then moved to the term's device.
        """
        k = self.settings.n_directions
        z = torch.randn((n, k, len(INPUTS), self.factor.shape[0]), generator=self.generator)
        return (z @ self.factor.cpu().T).to(self._device)

    def residuals(self, network, index, epsilon):
        """Normalised directional-derivative errors (n, n_directions, 3, n_outputs).

        ``index`` picks models, ``epsilon`` (n, n_directions, 3, n_depth) are
        directions in ln p; one parameter is perturbed at a time.
        """
        from torch.nn.attention import SDPBackend, sdpa_kernel

        x = self.inputs[index]
        g = self.log_kernels[index]
        n, k = epsilon.shape[:2]
        m = len(INPUTS)
        exact = torch.einsum("npoz,nkpz->nkpo", g, epsilon)
        # One tangent per (model, direction, parameter), the other parameters held: all in
        # one batched forward-mode product.
        u = torch.zeros((n, k, m, m, x.shape[-1]), device=x.device)
        diagonal = torch.arange(m)
        u[:, :, diagonal, diagonal] = x[:, None] * epsilon
        x_rep = x[:, None, None].expand(n, k, m, m, x.shape[-1])
        # PyTorch's fused attention and its fused evaluation-mode encoder layer have no
        # forward-mode derivative; the plain implementations do.
        fastpath = torch.backends.mha.get_fastpath_enabled()
        torch.backends.mha.set_fastpath_enabled(False)
        try:
            with sdpa_kernel(SDPBackend.MATH):
                _, jvp = torch.func.jvp(network, (x_rep.reshape(-1, m, x.shape[-1]),),
                                        (u.reshape(-1, m, x.shape[-1]),))
        finally:
            torch.backends.mha.set_fastpath_enabled(fastpath)
        learned = jvp.reshape(n, k, m, -1)
        return (learned - exact) / self._scale(index)[:, None]

    def _scale(self, index):
        """The normalising scale of each picked model, (n, 3, n_outputs)."""
        if self.settings.normalise == "model":
            return self.model_scale_[index]
        return self.scale_.expand(len(index), *self.scale_.shape)

    def __call__(self, network, step=None):
        """``weight`` x the loss on a random batch of models and directions (a tensor).

        The network's derivative is taken in evaluation mode (no dropout): the term
        matches the Jacobian the surrogate is used with, and stays an unbiased
        estimate of :meth:`expected`. Its training mode is restored afterwards.
        """
        self._to(next(network.parameters()).device)
        size = min(self.settings.batch_size, self.n_models)
        index = torch.randint(self.n_models, (size,), generator=self.generator)
        training = network.training
        network.eval()
        try:
            r = self.residuals(network, index.to(self._device), self.directions(size))
        finally:
            network.train(training)
        valid = self.valid[index.to(self._device)][:, None].expand_as(r)
        return self.settings.weight * (r[valid] ** 2).mean()

    def expected(self, network, index=None):
        """The loss averaged over directions exactly: the full-Jacobian form (no weight).

        :math:`\\langle (J_p - G_p) C (J_p - G_p)^T / s^2 \\rangle` with the
        network's Jacobian by reverse mode; for tests and small cases.
        """
        self._to(next(network.parameters()).device)
        index = torch.arange(self.n_models) if index is None else torch.as_tensor(index)
        index = index.to(self._device)
        x = self.inputs[index]
        jac = torch.func.vmap(torch.func.jacrev(lambda m: network(m[None])[0].flatten()))(x)
        learned = jac * x[:, None]  # (n, n_outputs, 3, n_depth), log coordinates
        diff = learned.permute(0, 2, 1, 3) - self.log_kernels[index]
        covariance = self.factor @ self.factor.T
        quadratic = (torch.einsum("npoz,zy,npoy->npo", diff, covariance, diff)
                     / self._scale(index) ** 2)
        return quadratic[self.valid[index]].mean()


# --------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------


def train_sobolev(store, training, cache_dir, n_kernel_models, settings, n_jobs=1,
                  progress=False):
    """The derivative-informed surrogate of a data store, trained once and cached.

    Parameters
    ----------
    store : xarray.Dataset
        Data store; its training and validation splits are used, as by
        :func:`kernels.surrogate.train_for_store`.
    training : kernels.config.SurrogateChapterConfig
        Architecture and training settings (the same as the data-only
        surrogate's, so that the two differ only by the derivative term).
    cache_dir : str or Path
        Cache root: the kernel store and the checkpoint go there.
    n_kernel_models : int
        The kernel budget: the first ``n_kernel_models`` training models get
        exact kernels. 0 trains without the term (the data-only surrogate with
        the same code path).
    settings : DerivativeSettings
    n_jobs : int
        Processes for the kernels.

    Returns
    -------
    Surrogate
        With ``metadata_`` holding the budget, its share of the training split,
        the settings and the kernels' compute time.
    """
    train = load_split(store, "train")
    validation = load_split(store, "validation")
    key = {"data": store.attrs["config"], "training": training.training_key(),
           "code": code_hash("sobolev"), "kernels_code": code_hash("kernels"),
           "n_kernel_models": int(n_kernel_models), "settings": asdict(settings)}
    path = (Path(cache_dir) / "surrogates"
            / f"{store.attrs['prior']}-sobolev-{int(n_kernel_models)}-{config_hash(key)}.pt")
    if not path.exists():
        metadata = {"prior": store.attrs["prior"], "data_config": store.attrs["config"],
                    "profile": training.profile, "kernel_budget": int(n_kernel_models),
                    "kernel_budget_share": n_kernel_models / train.sizes["sample"],
                    "derivative": asdict(settings)}
        term = None
        if n_kernel_models:
            kernels = kernels_cached(cache_dir, store, n_kernel_models, n_jobs=n_jobs,
                                     progress=progress)
            subset = train.isel(sample=slice(0, n_kernel_models))
            if not np.array_equal(subset.sample.values, kernels.sample.values):
                raise ValueError("the kernel store's models are not the data store's first "
                                 "training models.")
            values = np.stack([kernels[name].values for name in KERNEL_VARIABLES], axis=1)
            del kernels  # the term keeps one copy, in place
            term = DerivativeTerm(
                np.stack([subset[name].values for name in INPUTS], axis=1),
                values.reshape(values.shape[0], len(INPUTS), -1, values.shape[-1]),
                train.depth.values, settings, seed=training.seed)
            del values
        model = Surrogate(training.architecture, training.architecture_options,
                          epochs=training.epochs, batch_size=training.batch_size,
                          learning_rate=training.learning_rate, patience=training.patience,
                          seed=training.seed, progress=progress)
        model.fit(train, validation, extra_loss=term)
        model.save(path, **metadata)
    return load(path, depth=train.depth.values, periods=train.period.values)


def choose_weight(table, rmse_tolerance=0.1):
    """The derivative weight to use, chosen on validation models.

    Parameters
    ----------
    table : pandas.DataFrame
        One row per trained surrogate: ``weight`` (0 for the data-only one),
        ``directional_error`` (median relative error of J dm) and ``rmse``
        (curve RMSE, km/s), all on validation models.
    rmse_tolerance : float
        A weight qualifies if its curve RMSE is at most ``1 + rmse_tolerance``
        times the data-only one's.

    Returns
    -------
    float
        The qualifying weight with the lowest directional error; the data-only
        row (weight 0) must be present. If none qualifies, the weight with the
        lowest RMSE (and the caller should say so).

    Examples
    --------
    >>> import pandas as pd
    >>> table = pd.DataFrame({"weight": [0.0, 0.1, 1.0, 10.0],
    ...                       "directional_error": [0.12, 0.06, 0.03, 0.02],
    ...                       "rmse": [0.010, 0.010, 0.0105, 0.013]})
    >>> choose_weight(table)
    1.0
    """
    if not (table["weight"] == 0).any():
        raise ValueError("the table needs the data-only surrogate (weight 0) as reference.")
    reference = float(table.loc[table["weight"] == 0, "rmse"].iloc[0])
    candidates = table[table["weight"] > 0]
    qualifying = candidates[candidates["rmse"] <= (1 + rmse_tolerance) * reference]
    if qualifying.empty:
        return float(candidates.loc[candidates["rmse"].idxmin(), "weight"])
    return float(qualifying.loc[qualifying["directional_error"].idxmin(), "weight"])


def fitting_gap(seen, unseen, fitting=0.75, generalisation=0.5):
    """Is a surrogate's remaining error one of fitting or of generalisation?

    Compares a score on models the surrogate was trained on (with their kernels)
    with the same score on held-out models. The share of the held-out error
    already present on the training models bounds what closing the
    generalisation gap could remove (at most ``1 - share``), if the training
    models' error does not itself fall with more data; the rest must come from
    the fit (loss, optimisation, capacity). A heuristic: the two medians are
    over different models, and the training was early-stopped on validation
    curves, so the split is approximate.

    Parameters
    ----------
    seen, unseen : pandas.Series
        Median errors per cell (for example per wave and period bin, as
        :func:`kernels.metrics.binned_statistics` gives them) on training and on
        held-out models; the same index.
    fitting, generalisation : float
        In the cell with the largest held-out error (the first such cell in
        index order on a tie), the verdict is "fitting" where
        ``seen >= fitting * unseen``, "generalisation" where
        ``seen < generalisation * unseen``, "mixed" in between, and
        "undetermined" where ``seen`` is missing (NaN).

    Returns
    -------
    pandas.DataFrame
        Columns ``seen``, ``held_out``, ``ratio`` (seen / held-out), one row per
        cell; ``attrs`` hold ``worst`` (that cell's index) and ``verdict``.

    Examples
    --------
    >>> import pandas as pd
    >>> seen = pd.Series({"2-5 s": 0.065, "5-10 s": 0.03})
    >>> unseen = pd.Series({"2-5 s": 0.075, "5-10 s": 0.04})
    >>> fitting_gap(seen, unseen).attrs["verdict"]
    'fitting'
    """
    import pandas as pd

    if not 0 < generalisation <= fitting <= 1:
        raise ValueError(f"need 0 < generalisation <= fitting <= 1, got generalisation="
                         f"{generalisation!r} and fitting={fitting!r}.")
    if not seen.index.equals(unseen.index):
        raise ValueError("seen and unseen must have the same cells (index).")
    if not unseen.notna().any():
        raise ValueError("unseen has no finite cell: there is no held-out error to explain.")
    table = pd.DataFrame({"seen": seen, "held_out": unseen})
    table["ratio"] = table["seen"] / table["held_out"]
    worst = table["held_out"].idxmax()
    ratio = table.loc[worst, "ratio"]
    table.attrs["worst"] = worst
    table.attrs["verdict"] = ("undetermined" if not np.isfinite(ratio) else
                              "fitting" if ratio >= fitting else
                              "generalisation" if ratio < generalisation else "mixed")
    return table
