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
"""

from __future__ import annotations

import numpy as np

from .metrics import kernel_agreement
from .priors import brocher_density, brocher_slope
from .sensitivity import display_form
from .subspace import INPUTS, log_gradient

__all__ = ["FORMS", "paired_display_forms", "surrogate_log_gradient", "theory_log_gradient",
           "along_density_coupling", "channel_agreement", "project_onto_basis"]

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


def along_density_coupling(gradient, models):
    r"""The Vp kernel along Brocher's density coupling, :math:`g_{V_P} + \beta g_\rho`.

    In a prior whose density is Brocher's function of Vp, only this combination,
    with :math:`\beta = d \ln \rho / d \ln V_P`, is seen in the data: a change of
    Vp always comes with the matching change of density. The separate Vp and
    density gradients are not identifiable from such data; the combination is.

    Parameters
    ----------
    gradient : xarray.DataArray
        Log-coordinate gradient with a ``channel`` dim.
    models : xarray.Dataset
        The models (their Vp sets :math:`\beta`).
    """
    vp = models["velocity_p"]
    beta = vp * brocher_slope(vp) / brocher_density(vp)
    beta = beta.copy(data=np.asarray(beta))
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
