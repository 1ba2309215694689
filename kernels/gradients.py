r"""Surrogate sensitivity kernels in the forms compared with theory.

A surrogate's autodiff Jacobian :math:`J = \partial c / \partial V_S(z_i)` (per
node, Vp and density held fixed) and the theoretical kernel
:math:`K = \partial c / \partial V_{S,i}` (per layer) are compared after the
paper's display transform (:func:`kernels.sensitivity.display_form`: cut to
0-110 km, 9-node moving average, per-period normalisation by the sum of absolute
values). Two pairings:

``"matched"``
    The same quantity on both sides: the relative kernels
    :math:`(V_S / c)\, J` and :math:`(V_S / c)\, K`. (The factor :math:`1/c` and
    the constant layer thickness cancel in the per-period normalisation.)
``"authors"``
    The authors' pairing: :math:`(V_S / c)\, J\, dz` for the surrogate against
    the raw :math:`K` for theory. The extra :math:`V_S(z)` weight on one side
    tilts the surrogate curve towards the fast, deep layers.

**Baselines.** A kernel-agreement number means something only beside the number
a method without the knowledge in question gets. Every baseline here returns
raw dc/dVs in the layout of :meth:`kernels.surrogate.Surrogate.jacobian`,
``(sample, wave, period, depth)``, so that it passes through exactly the same
comparison as the surrogate:

- :func:`prior_median_kernels`: the exact kernel of the training prior's
  depth-wise median model, the same for every test model (knows the prior only);
- :func:`another_model_kernels`: the exact kernel of another test model (a
  fixed derangement: knows the physics, not the model);
- a linear surrogate (:func:`kernels.surrogate.fit_ridge`) and the untrained or
  label-shuffled network (:meth:`kernels.surrogate.Surrogate.initialise`,
  :func:`kernels.data.shuffled_labels`) are surrogates themselves: their Jacobians
  are their kernels.

**Directional derivatives.** For a model perturbation :math:`\delta m`, the
test that matters for an inversion is whether :math:`J\,\delta m` is the change
of the curve: :func:`directional_derivative` against the physics' central
difference (:func:`physics_directional_derivative`), along perturbations drawn
from the prior (:func:`prior_directions`) and localised ones (:func:`bump_directions`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from .config import WAVES
from .forward import dispersion_curves
from .io import cached_dataset, code_hash, config_hash, model_dataset, provenance
from .metrics import cosine_similarity, kernel_agreement, raw_kernel_error
from .priors import density_slope
from .sensitivity import display_form, kernel_dataset
from .subspace import INPUTS, log_gradient

__all__ = ["FORMS", "paired_display_forms", "surrogate_log_gradient", "theory_log_gradient",
           "along_density_coupling", "channel_agreement", "project_onto_basis",
           "prior_median_model", "prior_median_kernels", "another_model_kernels",
           "prior_directions", "bump_directions", "directional_derivative",
           "physics_directional_derivative", "directional_error", "cached_theory",
           "cached_prior_median", "cached_directional_reference", "emergence_scores",
           "solver_noise_floor", "surrogate_scores", "FD_STEP", "network_depth_basis"]

#: Step of the physics' central differences along a perturbation, as a multiple of the
#: perturbation (:func:`physics_directional_derivative`); the default of every function
#: that takes or assumes it, so that a reference and its noise floor agree.
FD_STEP = 0.1

#: Pairings of learned and theoretical kernels.
FORMS = ("matched", "authors")


def paired_display_forms(learned, theory, velocity_s, form="matched", max_depth=110.0,
                         window=9):
    """Display forms of a learned and a theoretical kernel, paired as ``form`` says.

    Parameters
    ----------
    learned : xarray.DataArray
        Surrogate dc/dVs per node (``depth`` and ``period`` dims, any others).
    theory : xarray.DataArray
        Theoretical dc/dVs per layer on the same coordinates.
    velocity_s : xarray.DataArray
        Vs (km/s) of the models on ``depth`` (and ``sample``).
    form : {"matched", "authors"}
        Pairing (see the module docstring).
    max_depth, window : float, int
        Display cut (km) and moving-average length (nodes).

    Returns
    -------
    tuple of xarray.DataArray
        ``(learned_display, theory_display)``, dimensionless, each normalised
        to a unit sum of absolute values per period.

    Raises
    ------
    ValueError
        For an unknown form.
    """
    if form not in FORMS:
        raise ValueError(f"form must be one of {list(FORMS)}, got {form!r}.")
    learned_weighted = learned * velocity_s
    theory_weighted = theory * velocity_s if form == "matched" else theory
    return (display_form(learned_weighted, max_depth, window),
            display_form(theory_weighted, max_depth, window))


def surrogate_log_gradient(surrogate, models):
    """A surrogate's gradient in log coordinates, ``p dc/dp`` for Vp, Vs and density.

    Returns
    -------
    xarray.DataArray
        Dims ``(sample, wave, period, channel, depth)`` (see
        :func:`kernels.subspace.log_gradient`).
    """
    return log_gradient({name: surrogate.jacobian(models, parameter=name) for name in INPUTS},
                        models)


def theory_log_gradient(kernels, models):
    """The exact kernels of :func:`kernels.sensitivity.kernel_dataset` as ``p dc/dp``."""
    return log_gradient({name: kernels[f"dc_d{name}"] for name in INPUTS}, models)


def along_density_coupling(gradient, models, prior=None):
    r"""The Vp kernel along Brocher's density coupling, :math:`g_{V_P} + \beta g_\rho`.

    In a prior whose density is Brocher's function of Vp, only this combination,
    with :math:`\beta = d \ln \rho / d \ln V_P`, is seen in the data: a change of
    Vp always comes with the matching change of density. The separate Vp and
    density gradients are not identifiable from such data; the combination is.

    Where the prior's density law is clipped (the weak prior clips Vp at 8.5
    km/s inside Brocher's law), density does not follow Vp and :math:`\beta = 0`
    (:func:`kernels.priors.density_slope`).

    Parameters
    ----------
    gradient : xarray.DataArray
        Log-coordinate gradient with a ``channel`` dim.
    models : xarray.Dataset
        The models (their Vp sets :math:`\beta`).
    prior : str, optional
        The prior whose density law applies; ``models.attrs["prior"]`` by default.

    Raises
    ------
    ValueError
        If neither ``prior`` nor ``models.attrs["prior"]`` names a prior.
    """
    prior = prior or models.attrs.get("prior")
    if prior is None:
        raise ValueError("along_density_coupling needs the prior whose density law applies: "
                         "pass prior=... (the models carry no 'prior' attribute).")
    vp = models["velocity_p"]
    density = models["density"]
    beta = vp.copy(data=np.asarray(vp) * density_slope(vp.values, prior) / np.asarray(density))
    return (gradient.sel(channel="velocity_p", drop=True)
            + beta * gradient.sel(channel="density", drop=True))


def channel_agreement(learned, theory, channel="velocity_s", max_depth=110.0, window=9):
    """Agreement metrics of two log-coordinate gradients in display form.

    Parameters
    ----------
    learned, theory : xarray.DataArray
        Gradients ``p dc/dp`` with a ``channel`` dim, or single kernels without one.
    channel : str or None
        The channel compared (None when the inputs have no ``channel`` dim).
        The ``velocity_s`` channel is the matched pairing of
        :func:`paired_display_forms`.
    max_depth, window
        Display cut (km) and moving-average length (nodes).

    Returns
    -------
    xarray.Dataset
        As :func:`kernels.metrics.kernel_agreement`.
    """
    if channel is not None:
        learned = learned.sel(channel=channel, drop=True)
        theory = theory.sel(channel=channel, drop=True)
    return kernel_agreement(display_form(learned, max_depth, window),
                            display_form(theory, max_depth, window))


def project_onto_basis(kernel, basis):
    r"""Least-squares projection of kernels onto the span of a depth basis.

    A basis-MLP with log inputs can only produce relative kernels
    :math:`V_S\, \partial c/\partial V_S` in the span of its depth basis
    (:func:`kernels.surrogate.depth_basis`); projecting the exact relative
    kernels onto that span gives the best any such network could do.

    Parameters
    ----------
    kernel : xarray.DataArray
        Kernels with a ``depth`` dim matching the basis rows.
    basis : numpy.ndarray, shape (n_depth, n_basis)

    Returns
    -------
    xarray.DataArray
        Same shape; NaN where the input has NaN.
    """
    basis = np.asarray(basis, dtype=float)
    if basis.shape[0] != kernel.sizes["depth"]:
        raise ValueError(f"basis has {basis.shape[0]} rows; the kernel has "
                         f"{kernel.sizes['depth']} depth nodes.")
    projector = basis @ np.linalg.pinv(basis)
    moved = kernel.transpose(..., "depth")
    values = np.einsum("ij,...j->...i", projector, np.nan_to_num(moved.values))
    values[np.isnan(moved.values).any(axis=-1)] = np.nan
    return moved.copy(data=values).transpose(*kernel.dims)


def network_depth_basis(surrogate, n_depth):
    """The depth basis a surrogate's network expresses its kernels in, (n_depth, n_basis).

    The basis-MLP's depth functions (a buffer of its network,
    :func:`kernels.surrogate.depth_basis`); a network without one (the
    Transformer) sees every node, and its basis is the identity. For
    :func:`project_onto_basis`.
    """
    basis = getattr(surrogate.network_, "basis", None)
    if basis is None:
        return np.eye(n_depth)
    basis = basis.detach().cpu().numpy()
    if basis.shape[0] != n_depth:
        raise ValueError(f"the network's basis has {basis.shape[0]} depth rows, not {n_depth}.")
    return basis


# --------------------------------------------------------------------------
# Baselines
# --------------------------------------------------------------------------


def prior_median_model(models):
    """The depth-wise median model of a set of models (Vp, Vs and density medians).

    Parameters
    ----------
    models : xarray.Dataset
        Models on ``(sample, depth)``, e.g. a training split.

    Returns
    -------
    xarray.Dataset
        One model on ``(sample, depth)`` with a single sample.
    """
    if "sample" not in models.dims or models.sizes["sample"] == 0:
        raise ValueError("prior_median_model needs models on a non-empty 'sample' dim.")
    median = {name: models[name].median("sample").values[None]
              for name in ("velocity_p", "velocity_s", "density")}
    thickness = models["thickness"].isel(sample=0).values[None]
    return model_dataset(models["depth"].values, thickness, median["velocity_p"],
                         median["velocity_s"], median["density"],
                         attrs={"baseline": "depth-wise median of the training models"})


def _broadcast(kernel, samples):
    """A kernel without a sample dim, repeated for each of ``samples``."""
    return kernel.expand_dims(sample=np.asarray(samples)).copy()


def _median_model_kernels(train, periods, waves=WAVES):
    """Phase velocities and kernels of the median model, without a sample dim."""
    median = prior_median_model(train)
    keep = ["phase_velocity", "dc_dvelocity_s", "dc_dvelocity_p", "dc_ddensity"]
    return kernel_dataset(median, periods, waves=waves).isel(sample=0, drop=True)[keep]


def _broadcast_kernels(kernels, test):
    out = xr.Dataset({name: _broadcast(kernels[name], test["sample"].values)
                      for name in kernels.data_vars})
    out.attrs = {"baseline": "prior-median: exact kernel of the training models' median model"}
    return out.transpose("sample", "wave", "period", ...)


def prior_median_kernels(train, test, periods, waves=WAVES):
    """The prior-median baseline: one exact kernel, the same for every test model.

    Parameters
    ----------
    train : xarray.Dataset
        The models whose depth-wise median is taken (the training split).
    test : xarray.Dataset
        Test models (only their ``sample`` labels are used).
    periods : array_like
        Periods (s).
    waves : sequence of str
        Wave types.

    Returns
    -------
    xarray.Dataset
        ``dc_dvelocity_s``, ``dc_dvelocity_p``, ``dc_ddensity`` and
        ``phase_velocity`` of the median model, on ``(sample, wave, period[, depth])``
        with the test models' sample labels.
    """
    return _broadcast_kernels(_median_model_kernels(train, periods, waves), test)


def _shifted(ds, shift):
    """``ds`` with each sample's values taken from the sample ``shift`` places on
    (cyclically), under the original labels."""
    n = ds.sizes["sample"]
    return ds.isel(sample=(np.arange(n) + shift) % n).assign_coords(
        sample=ds["sample"].values)


def another_model_kernels(kernels, shift=1):
    """The another-model baseline: each model gets the kernel of a different test model.

    A cyclic shift of the samples by ``shift`` (a fixed derangement for
    ``0 < shift < n``): the physics is exact, the model is the wrong one.

    Parameters
    ----------
    kernels : xarray.Dataset or xarray.DataArray
        Exact kernels on a ``sample`` dim.
    shift : int
        How far along the sample list the kernel is taken from.

    Returns
    -------
    Same type as ``kernels``
        With the original sample labels.
    """
    n = kernels.sizes["sample"]
    if n < 2 or not 0 < shift % n:
        raise ValueError(f"another_model_kernels needs at least 2 models and a shift that is "
                         f"not a multiple of their number ({n}); got shift={shift}.")
    moved = _shifted(kernels, shift)
    # A period is usable only where both the borrowed and the own kernel exist.
    flags = {name: moved[name] | kernels[name] for name in ("failed", "untrapped")
             if name in moved.coords}
    moved = moved.assign_coords(flags)
    return moved


# --------------------------------------------------------------------------
# Directional derivatives
# --------------------------------------------------------------------------


def _rms_relative(direction, velocity_s):
    return np.sqrt(((direction / velocity_s) ** 2).mean("depth"))


def prior_directions(models, others, rms=0.01):
    """Perturbations of Vs drawn from the prior: the difference of two prior models.

    ``delta Vs = Vs(other) - Vs(model)``, scaled per model so that its rms
    relative size, ``rms(delta Vs / Vs)`` over depth, is ``rms``.

    Parameters
    ----------
    models : xarray.Dataset
        The models perturbed (``velocity_s`` on ``sample, depth``).
    others : xarray.Dataset
        As many other models of the same prior, paired by position.
    rms : float
        Relative rms size of each perturbation.

    Returns
    -------
    xarray.DataArray
        ``delta Vs`` in km/s on ``(sample, depth)`` with the models' labels.
    """
    if models.sizes["sample"] != others.sizes["sample"]:
        raise ValueError(f"need one other model per model: {models.sizes['sample']} models, "
                         f"{others.sizes['sample']} others.")
    if not rms > 0:
        raise ValueError(f"rms must be positive, got {rms!r}.")
    vs = models["velocity_s"]
    step = vs.copy(data=others["velocity_s"].transpose(*vs.dims).values - vs.values)
    size = _rms_relative(step, vs)
    if (size == 0).any():
        raise ValueError("a model and its partner are identical: no direction between them.")
    out = (step * (rms / size)).rename("delta_velocity_s")
    out.attrs = {"units": "km/s", "long_name": "prior-drawn Vs perturbation",
                 "rms_relative": float(rms)}
    return out


def bump_directions(models, centres, widths, amplitude=0.01):
    """Localised perturbations of Vs: Gaussian bumps of relative height ``amplitude``.

    ``delta Vs(z) = amplitude * Vs(z) * exp(-(z - z0)^2 / (2 w^2))`` for every
    centre ``z0`` and width ``w`` (the Gaussian's standard deviation).

    Returns
    -------
    xarray.DataArray
        ``delta Vs`` in km/s on ``(sample, direction, depth)``; the
        ``direction`` dim carries ``centre`` and ``width`` coordinates (km).
    """
    centres, widths = np.asarray(centres, dtype=float), np.asarray(widths, dtype=float)
    if (widths <= 0).any():
        raise ValueError(f"widths must be positive km, got {widths.tolist()}.")
    grid_c, grid_w = (a.ravel() for a in np.meshgrid(centres, widths, indexing="ij"))
    depth = models["depth"]
    shape = xr.DataArray(np.exp(-0.5 * ((depth.values[None] - grid_c[:, None])
                                       / grid_w[:, None]) ** 2),
                         dims=("direction", "depth"),
                         coords={"direction": np.arange(grid_c.size), "depth": depth.values,
                                 "centre": ("direction", grid_c, {"units": "km"}),
                                 "width": ("direction", grid_w, {"units": "km"})})
    out = (amplitude * models["velocity_s"] * shape).transpose("sample", "direction", "depth")
    out = out.rename("delta_velocity_s")
    out.attrs = {"units": "km/s", "long_name": "Gaussian Vs bump", "amplitude": amplitude}
    return out


def directional_derivative(jacobian, direction):
    """``J delta m``: a kernel's prediction of the change of c along a perturbation.

    Parameters
    ----------
    jacobian : xarray.DataArray
        dc/dVs per layer, ``(sample, wave, period, depth)``.
    direction : xarray.DataArray
        delta Vs (km/s) on ``(sample, [direction,] depth)``.

    Returns
    -------
    xarray.DataArray
        km/s on ``(sample, [direction,] wave, period)``.
    """
    out = xr.dot(jacobian, direction, dim="depth")
    out.attrs = {"units": "km/s", "long_name": "directional derivative J dm"}
    return out.rename("directional_derivative")


def physics_directional_derivative(models, direction, periods, step=FD_STEP, waves=WAVES,
                                   n_jobs=1,
                                   **kwargs):
    """The physics' central difference along a perturbation, with disba.

    ``(c(m + step dm) - c(m - step dm)) / (2 step)``, only Vs perturbed.

    Parameters
    ----------
    models : xarray.Dataset
        Models on ``(sample, depth)``.
    direction : xarray.DataArray
        delta Vs (km/s) on ``(sample, [direction,] depth)``.
    periods : array_like
        Periods (s).
    step : float
        Multiple of ``direction`` taken either side. The truncation error is
        of order ``step**2`` times the curvature of c along ``direction``;
        disba brackets each root to 1e-6 of c, so the difference carries a
        noise of at most ``1e-6 c / step``. For a direction of 1 % rms, the
        default 0.1 keeps both far below a per-cent error wherever the response
        exceeds 1e-3 of c (see the tests).
    waves : sequence of str
        Wave types.
    n_jobs : int
        Processes.
    **kwargs
        Passed to :func:`kernels.forward.dispersion_curves` (``dc``, ...).

    Returns
    -------
    xarray.DataArray
        km/s on ``(sample, [direction,] wave, period)``; NaN where a root failed.
    """
    if direction.sizes.get("sample") != models.sizes["sample"]:
        raise ValueError(f"direction needs one perturbation per model on 'sample' "
                         f"({models.sizes['sample']}), got dims {dict(direction.sizes)}.")
    if "sample" in direction.coords:  # pair by label, not by position
        direction = direction.sel(sample=models["sample"].values)
    extra = [d for d in direction.dims if d not in ("sample", "depth")]
    stacked = direction.transpose("sample", *extra, "depth")
    flat = stacked.values.reshape(-1, stacked.sizes["depth"])
    repeat = flat.shape[0] // models.sizes["sample"]
    base = {name: np.repeat(models[name].transpose("sample", "depth").values, repeat, axis=0)
            for name in ("thickness", "velocity_p", "velocity_s", "density")}

    def curves(sign):
        perturbed = model_dataset(models["depth"].values, base["thickness"], base["velocity_p"],
                                  base["velocity_s"] + sign * step * flat, base["density"])
        return dispersion_curves(perturbed, periods, waves=waves, n_jobs=n_jobs, **kwargs)

    up, down = curves(1.0), curves(-1.0)
    difference = ((up - down) / (2 * step)).transpose("sample", "wave", "period").values
    shape = tuple(stacked.sizes[d] for d in ("sample", *extra)) + difference.shape[1:]
    coords = {name: c for name, c in stacked.coords.items() if "depth" not in c.dims}
    coords.update(wave=list(waves), period=("period", np.asarray(periods, dtype=float),
                                            {"units": "s"}))
    out = xr.DataArray(difference.reshape(shape), dims=("sample", *extra, "wave", "period"),
                       coords=coords, name="directional_derivative",
                       attrs={"units": "km/s", "long_name": "central difference of disba",
                              "step": float(step)})
    return out


def directional_error(estimate, reference, floor=0.0):
    """Relative error of a directional derivative, ``|estimate - reference| / |reference|``.

    Parameters
    ----------
    estimate, reference : xarray.DataArray
        Directional derivatives (km/s) on the same cells.
    floor : float
        Cells whose ``|reference|`` is at most ``floor`` (km/s) are NaN: the
        physics does not respond to the perturbation there, and a ratio would
        measure nothing.

    Returns
    -------
    xarray.DataArray
        Dimensionless, NaN where the reference is NaN or below the floor.
    """
    estimate, reference = xr.align(estimate, reference, join="exact")
    magnitude = abs(reference)
    out = abs(estimate - reference) / magnitude.where(magnitude > floor)
    out.attrs = {"units": "1", "long_name": "relative error of J dm"}
    return out.rename("directional_error")


# --------------------------------------------------------------------------
# The book's references, cached (shared by the emergence chapter and the sweeps)
# --------------------------------------------------------------------------


def _test_key(store, test, stage="kernels", **extra):
    return config_hash({"samples": test["sample"].values.tolist(), "store": store.attrs["config"],
                        "code": code_hash(stage), **extra})


def cached_theory(store, test, periods, cache_dir, n_jobs=1, parameters=("velocity_s",)):
    """Exact phase velocities and kernels of a store's test models, computed once.

    Parameters
    ----------
    store : xarray.Dataset
        The data store the models come from (its settings key the cache).
    test : xarray.Dataset
        The test models.
    periods : array_like
        Periods (s).
    cache_dir : str or Path
        Cache root.
    n_jobs : int
        Processes.
    parameters : sequence of str
        The kernels kept (``dc_d<parameter>``); the engine computes all four at once.

    Returns
    -------
    xarray.Dataset
        ``phase_velocity`` and ``dc_d<parameter>`` on ``(sample, wave, period[, depth])``,
        with the ``failed`` flag.
    """
    keep = ["phase_velocity", *(f"dc_d{name}" for name in parameters)]

    def compute():
        ds = kernel_dataset(test[["thickness", "velocity_p", "velocity_s", "density"]],
                            periods, n_jobs=n_jobs)[keep]
        ds.attrs = provenance(config={"periods": list(map(float, periods))})
        return ds

    key = _test_key(store, test, periods=list(map(float, periods)), variables=keep)
    return cached_dataset(Path(cache_dir) / f"emergence-theory-{key}.nc", compute)


def cached_prior_median(store, train, test, periods, cache_dir):
    """:func:`prior_median_kernels` of a store's training split, computed once."""
    # One model's kernels are stored; the broadcast to the test models is cheap.
    key = config_hash({"store": store.attrs["config"], "code": code_hash("baselines"),
                       "periods": list(map(float, periods)), "baseline": "prior-median",
                       "train": train["sample"].values.tolist()})
    kernels = cached_dataset(Path(cache_dir) / f"emergence-prior-median-{key}.nc",
                             lambda: _median_model_kernels(train, periods))
    return _broadcast_kernels(kernels, test)


def cached_directional_reference(store, test, periods, cache_dir, rms=0.01, step=FD_STEP,
                                 n_jobs=1):
    """Prior-drawn perturbations of the test models and the physics' response, computed once.

    Each test model is perturbed towards the test model two places on (a
    fixed derangement, independent of :func:`another_model_kernels`' shift of
    one, so that no kernel borrowed by that baseline is tested along the very
    direction to its own model; :func:`prior_directions`) and the physics'
    central difference is taken with disba (:func:`physics_directional_derivative`).

    Returns
    -------
    tuple of xarray.DataArray
        ``(direction, response)``: delta Vs (km/s, ``sample, depth``) and the
        central difference (km/s, ``sample, wave, period``).
    """
    n = test.sizes["sample"]
    shift = 2 if n > 2 else 1
    direction = prior_directions(test, _shifted(test, shift), rms=rms)
    key = _test_key(store, test, stage="baselines", rms=float(rms), step=float(step),
                    periods=list(map(float, periods)), partner_shift=shift)
    response = cached_dataset(
        Path(cache_dir) / f"emergence-directional-{key}.nc",
        lambda: physics_directional_derivative(test, direction, periods, step=step,
                                               n_jobs=n_jobs).to_dataset())
    return direction, response["directional_derivative"]


def emergence_scores(kernel, theory, velocity_s, usable=None):
    """The chapter's per-cell kernel scores of one method against the exact kernels.

    Parameters
    ----------
    kernel, theory : xarray.DataArray
        Raw dc/dVs of the method and of the physics, ``(sample, wave, period, depth)``.
    velocity_s : xarray.DataArray
        The test models' Vs (the matched display form's weight).
    usable : xarray.DataArray of bool, optional
        Cells compared (others are NaN).

    Returns
    -------
    xarray.Dataset
        ``cosine`` (matched display form), ``raw_error`` (relative L2 of raw
        dc/dVs over every node, the half-space's included) and ``raw_error_110``
        (over 0-110 km), on ``(sample, wave, period)``.
    """
    if usable is not None:
        kernel, theory = kernel.where(usable), theory.where(usable)
    pair = paired_display_forms(kernel, theory, velocity_s, "matched")
    return xr.Dataset({"cosine": cosine_similarity(*pair),
                       "raw_error": raw_kernel_error(kernel, theory),
                       "raw_error_110": raw_kernel_error(kernel, theory, max_depth=110.0)})


def surrogate_scores(surrogate, test, theory, direction, response, step=FD_STEP,
                     usable=None):
    """Every per-cell score of one surrogate on test models, against the physics.

    Parameters
    ----------
    surrogate : kernels.surrogate.Surrogate
    test : xarray.Dataset
        Test models with their curves (``phase_velocity``).
    theory : xarray.Dataset
        :func:`cached_theory` of the test models with ``parameters`` Vp, Vs and
        density.
    direction, response : xarray.DataArray
        Prior-drawn Vs perturbations and the physics' central difference along
        them (:func:`cached_directional_reference`).
    step : float
        The central difference's step (relative to the direction) behind
        ``response``: it sets the noise floor.
    usable : xarray.DataArray of bool, optional
        Cells compared (default: where the physics has a kernel).

    Returns
    -------
    xarray.Dataset
        On ``(sample, wave, period)``: ``curve_error`` (km/s, surrogate minus
        the physics' curve), :func:`emergence_scores` (``cosine``,
        ``raw_error``, ``raw_error_110``), ``directional_error`` (relative
        error of J dm, cells below :func:`solver_noise_floor` left out) and
        ``vp_cosine``, ``density_cosine`` (display-form cosines of the
        log-coordinate Vp and density kernels; Vp only for Rayleigh waves,
        which feel it).
    """
    usable = ~theory.failed if usable is None else usable
    exact = theory.dc_dvelocity_s.reset_coords(drop=True).where(usable)
    learned = surrogate_log_gradient(surrogate, test)
    dc_dvs = learned.sel(channel="velocity_s", drop=True) / test.velocity_s
    scores = emergence_scores(dc_dvs, exact, test.velocity_s, usable)
    floor = solver_noise_floor(theory.phase_velocity, step).where(usable)
    scores["directional_error"] = directional_error(
        directional_derivative(dc_dvs.where(usable), direction), response, floor=floor)
    reference = theory_log_gradient(theory, test)
    for channel, name in (("velocity_p", "vp_cosine"), ("density", "density_cosine")):
        cosine = channel_agreement(learned, reference, channel).cosine.where(usable)
        scores[name] = cosine.where(cosine.wave == "rayleigh") if channel == "velocity_p" \
            else cosine
    scores["curve_error"] = (surrogate.predict(test) - test.phase_velocity).where(usable)
    return scores.reset_coords(drop=True)


def solver_noise_floor(phase_velocity, step):
    """Smallest physics response (km/s) that a central difference resolves to 1 %.

    disba brackets each root to 1e-6 of c, so a central difference with a
    step of ``step`` times the perturbation carries a noise of at most
    ``1e-6 c / step``; the floor is a hundred times that, ``1e-4 c / step``
    (``1e-3 c`` at the default step of 0.1).
    """
    return 100 * 1e-6 * phase_velocity / step
