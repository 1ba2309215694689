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

from .sensitivity import display_form

__all__ = ["FORMS", "paired_display_forms"]

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
