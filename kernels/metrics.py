"""Agreement metrics between kernels (labelled, NaN-aware).

Each metric reduces over one dim (``depth`` by default) and keeps the others,
so it applies alike to one kernel, a period sweep or a batch of models.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

__all__ = ["cosine_similarity", "relative_l2"]


def cosine_similarity(a, b, dim="depth"):
    """Cosine of the angle between ``a`` and ``b`` along ``dim``.

    Parameters
    ----------
    a, b : xarray.DataArray
        Kernels on the same coordinates.
    dim : str
        Dimension reduced.

    Returns
    -------
    xarray.DataArray
        Values in [-1, 1]; NaN where either input has a NaN or a zero norm.

    Examples
    --------
    >>> import xarray as xr
    >>> a = xr.DataArray([1.0, 0.0], dims="depth")
    >>> float(cosine_similarity(a, 2 * a)), float(cosine_similarity(a, a[::-1]))
    (1.0, 0.0)
    """
    a, b = xr.align(a, b, join="exact")
    dot = (a * b).sum(dim, skipna=False)
    norm = np.sqrt((a * a).sum(dim, skipna=False) * (b * b).sum(dim, skipna=False))
    out = (dot / norm.where(norm > 0)).rename("cosine_similarity")
    out.attrs = {"units": "1", "long_name": "cosine similarity"}
    return out


def relative_l2(estimate, reference, dim="depth"):
    """``||estimate - reference|| / ||reference||`` along ``dim``.

    Examples
    --------
    >>> import xarray as xr
    >>> r = xr.DataArray([3.0, 4.0], dims="depth")
    >>> round(float(relative_l2(r * 1.01, r)), 12)
    0.01
    """
    estimate, reference = xr.align(estimate, reference, join="exact")
    error = np.sqrt(((estimate - reference) ** 2).sum(dim, skipna=False))
    norm = np.sqrt((reference**2).sum(dim, skipna=False))
    out = (error / norm.where(norm > 0)).rename("relative_l2")
    out.attrs = {"units": "1", "long_name": "relative L2 difference"}
    return out
