r"""The directions a prior explores, and what a surrogate can learn along them.

A surrogate fitted to models drawn from a prior only sees how the dispersion
curve changes along the directions in which the prior's models vary. Its
gradient is pinned down along those directions and left to the network's
inductive bias along the others. This module makes that statement testable.

Models are compared in log coordinates,
:math:`m = (\ln V_P(z), \ln V_S(z), \ln \rho(z))` stacked over the depth nodes,
so that the three channels are dimensionless and a step of the same size means
the same relative change everywhere. The gradient of a phase velocity in these
coordinates is the relative kernel,
:math:`g = \partial c / \partial \ln p = p\, \partial c / \partial p`.

:class:`PriorSubspace`
    Principal directions of a prior's log-model variations (PCA of a sample),
    with the variance each explains, Mahalanobis distances of models (how
    typical a model is of the prior, a proxy for training-data density) and the
    orthogonal projection of gradients onto the leading directions.

The projection gives a prediction: if a network learns the gradient only
along the first ``k`` principal directions and nothing along the rest, its
gradient is :math:`P_k g`. The Vs block of :math:`P_k g` is then the learned
Vs kernel, and :math:`(P_k g)_{V_S} - g_{V_S}` the artifact.

Examples
--------
>>> import numpy as np, xarray as xr
>>> from kernels import priors
>>> models = priors.sample("weak", 200, seed=0)
>>> space = PriorSubspace.fit(models, n_components=50)
>>> space.components.shape
(50, 768)
>>> bool(0.9 < space.explained_fraction(50) <= 1.0)
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

from .surrogate import INPUTS

__all__ = ["PriorSubspace", "log_profiles", "log_gradient", "channel_block"]


def log_profiles(models):
    """Stack ``ln Vp, ln Vs, ln rho`` of each model into one row.

    Parameters
    ----------
    models : xarray.Dataset
        Models with ``sample`` and ``depth`` dims.

    Returns
    -------
    numpy.ndarray, shape (n_sample, 3 * n_depth)
    """
    blocks = [np.log(models[name].transpose("sample", "depth").values.astype(float))
              for name in INPUTS]
    return np.concatenate(blocks, axis=1)


def log_gradient(gradients, models):
    """Stack the three gradients ``dc/dp`` into the log-coordinate gradient ``p dc/dp``.

    Parameters
    ----------
    gradients : mapping
        ``{"velocity_p": da, "velocity_s": da, "density": da}``, each with a
        ``depth`` dim (any others) and units of c per unit of the parameter.
    models : xarray.Dataset
        The models at which the gradients were taken.

    Returns
    -------
    xarray.DataArray
        Dims ``(..., channel, depth)``; ``channel`` holds the parameter names.
    """
    missing = [name for name in INPUTS if name not in gradients]
    if missing:
        raise ValueError(f"gradients lacks {missing}; it needs all of {list(INPUTS)}.")
    parts = [gradients[name] * models[name] for name in INPUTS]
    out = xr.concat(parts, dim=xr.DataArray(list(INPUTS), dims="channel", name="channel"))
    return out.transpose(..., "channel", "depth")


def channel_block(gradient, channel="velocity_s"):
    """One channel of a log-coordinate gradient (``p dc/dp`` on ``depth``)."""
    return gradient.sel(channel=channel, drop=True)


@dataclass(frozen=True)
class PriorSubspace:
    """Principal directions of a prior in log-model space.

    Attributes
    ----------
    mean : numpy.ndarray, shape (3 * n_depth,)
        Mean log model.
    components : numpy.ndarray, shape (n_components, 3 * n_depth)
        Orthonormal principal directions, by decreasing variance.
    variance : numpy.ndarray, shape (n_components,)
        Variance of the sample along each direction.
    total_variance : float
        Total variance of the sample (all directions).
    n_depth : int
        Depth nodes per channel.
    """

    mean: np.ndarray
    components: np.ndarray
    variance: np.ndarray
    total_variance: float
    n_depth: int

    @classmethod
    def fit(cls, models, n_components=None):
        """Principal directions of ``models`` (a sample of the prior).

        Parameters
        ----------
        models : xarray.Dataset
            Models with ``sample`` and ``depth`` dims.
        n_components : int, optional
            Directions kept (default: all that the sample spans, at most one fewer
            than the number of models).

        Raises
        ------
        ValueError
            With fewer than two models, or ``n_components`` below 1.
        """
        x = log_profiles(models)
        if x.shape[0] < 2:
            raise ValueError(f"need at least 2 models to find directions, got {x.shape[0]}.")
        if n_components is not None and n_components < 1:
            raise ValueError(f"n_components must be at least 1, got {n_components}.")
        mean = x.mean(axis=0)
        _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
        variance = s**2 / (x.shape[0] - 1)
        # Directions the sample does not span (numerically zero variance, e.g. the one
        # centring removes when there are fewer models than coordinates) are dropped:
        # a Mahalanobis distance along them would be meaningless.
        scale = max(float(np.abs(x).max()), 1.0) * np.sqrt(x.size)
        spanned = int(np.sum(s > 1e-10 * s[0])) if s[0] > 1e-12 * scale else 0
        if spanned == 0:
            raise ValueError("the models are all identical: they span no direction.")
        k = spanned if n_components is None else min(n_components, spanned)
        return cls(mean=mean, components=vt[:k], variance=variance[:k],
                   total_variance=float(variance.sum()), n_depth=models.sizes["depth"])

    def _check_k(self, k):
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or not (
                1 <= k <= len(self.variance)):
            raise ValueError(f"k must be an integer from 1 to {len(self.variance)} (the "
                             f"directions kept), got {k!r}.")

    def explained_fraction(self, k):
        """Fraction of the sample's variance along the first ``k`` directions."""
        self._check_k(k)
        return float(self.variance[:k].sum() / self.total_variance)

    def n_for(self, fraction):
        """Smallest ``k`` whose directions explain at least ``fraction`` of the variance.

        Raises
        ------
        ValueError
            If ``fraction`` is not in (0, 1] or the kept directions explain less.
        """
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"fraction must be in (0, 1], got {fraction}.")
        cumulative = np.cumsum(self.variance) / self.total_variance
        reached = np.flatnonzero(cumulative >= fraction - 1e-12)
        if reached.size == 0:
            raise ValueError(
                f"the {len(self.variance)} kept directions explain "
                f"{cumulative[-1]:.6f} of the variance, less than {fraction}.")
        return int(reached[0] + 1)

    def mahalanobis(self, models, k):
        """Mahalanobis distance of each model within the first ``k`` directions.

        Large values mean the model sits where the prior (and so the training
        set) is sparse.

        Returns
        -------
        xarray.DataArray
            On ``sample``.
        """
        self._check_k(k)
        if models.sizes["depth"] != self.n_depth:
            raise ValueError(f"models have {models.sizes['depth']} depth nodes; the "
                             f"subspace was fitted on {self.n_depth}.")
        scores = (log_profiles(models) - self.mean) @ self.components[:k].T
        distance = np.sqrt((scores**2 / self.variance[:k]).sum(axis=1))
        return xr.DataArray(distance, dims="sample", coords={"sample": models["sample"].values},
                            name="mahalanobis",
                            attrs={"units": "1", "long_name": f"Mahalanobis distance ({k} PCs)"})

    def project(self, gradient, k):
        """Orthogonal projection of log-coordinate gradients onto the first ``k`` directions.

        Parameters
        ----------
        gradient : xarray.DataArray
            From :func:`log_gradient`: dims ``(..., channel, depth)``.
        k : int
            Directions kept.

        Returns
        -------
        xarray.DataArray
            Same dims and coordinates as ``gradient``.
        """
        self._check_k(k)
        if list(gradient["channel"].values) != list(INPUTS):
            raise ValueError(f"gradient channels must be {list(INPUTS)} in that order.")
        if gradient.sizes["depth"] != self.n_depth:
            raise ValueError(f"gradient has {gradient.sizes['depth']} depth nodes; the "
                             f"subspace was fitted on {self.n_depth}.")
        gradient = gradient.transpose(..., "channel", "depth")
        flat = gradient.values.reshape(*gradient.shape[:-2], -1)
        basis = self.components[:k]
        projected = (np.nan_to_num(flat) @ basis.T) @ basis
        projected[np.isnan(flat).any(axis=-1)] = np.nan
        return gradient.copy(data=projected.reshape(gradient.shape))
