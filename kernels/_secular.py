r"""Secular functions of surface waves in torch, for implicit differentiation.

A homogeneous layer propagates the motion-stress vector of a surface wave
with :math:`y(z + h) = \exp(A h)\, y(z)`, where for Love waves
:math:`y = (l_1, l_2)` (displacement, shear stress) and

.. math:: A = \begin{pmatrix} 0 & 1/\mu \\ k^2 \mu - \omega^2 \rho & 0 \end{pmatrix},

and for Rayleigh waves :math:`y = (r_1, r_2, r_3, r_4)` (horizontal and vertical
displacement, shear and normal traction; Aki & Richards 2002, eq. 7.28)

.. math::
    A = \begin{pmatrix}
    0 & k & 1/\mu & 0 \\
    -k\lambda/(\lambda+2\mu) & 0 & 0 & 1/(\lambda+2\mu) \\
    k^2\zeta - \omega^2\rho & 0 & 0 & k\lambda/(\lambda+2\mu) \\
    0 & -\omega^2\rho & -k & 0
    \end{pmatrix}, \qquad \zeta = \frac{4\mu(\lambda+\mu)}{\lambda+2\mu}.

Stresses are scaled by :math:`k\mu_n` (a diagonal similarity) so that every
entry of :math:`A h` is of order :math:`k h`, and the exact layer propagator is
evaluated with ``torch.linalg.matrix_exp``. Love waves propagate the surface
solution :math:`(1, 0)` down to the half-space; Rayleigh waves propagate the
wedge product of the two traction-free surface solutions with second compound
matrices (Dunkin's idea, here formed from the 2x2 minors), which removes the
loss of precision of the plain Haskell product. The secular function is the
determinant that states that the propagated surface solutions and the
half-space's decaying solutions are linearly dependent. Products over layers
are evaluated by pairwise (tree) reduction, each partial product rescaled by
its largest entry: a positive factor that does not move the root and, at the
root, does not change the ratio below.

A fluid layer on top (sea water of depth :math:`h_w`, sound speed
:math:`\alpha_w`, density :math:`\rho_w`) changes only the surface solutions of
the solid: at the sea floor the shear traction vanishes, the horizontal
displacement is free, and the normal traction follows the vertical displacement
through the water column's impedance. With :math:`\nu_w^2 = k^2 - \omega^2/\alpha_w^2`
and the pressure zero at the sea surface, the water's equations
:math:`r_2' = -\nu_w^2 r_4 / (\rho_w\omega^2)`, :math:`r_4' = -\rho_w\omega^2 r_2`
(the Rayleigh system above with :math:`\mu = 0`, :math:`r_3 = 0`) give at the sea floor

.. math:: r_4 = Z r_2, \qquad Z = -\rho_w \omega^2 \tanh(\nu_w h_w) / \nu_w,

(:math:`\tan(|\nu_w| h_w)/|\nu_w|` where :math:`c > \alpha_w`), so the surface
solutions are :math:`(1, 0, 0, 0)` and :math:`(0, 1, 0, Z)`, and their wedge product
adds :math:`Z` times the (0, 3) minor to the dry start. Love waves do not enter the
water.

At a root :math:`F(c; p) = 0`, the implicit function theorem gives the exact
kernel

.. math:: \frac{\partial c}{\partial p_i} = -\frac{\partial F / \partial p_i}
          {\partial F / \partial c},

and one reverse-mode sweep through the layer products (autograd does the
prefix and suffix products) yields :math:`\partial F / \partial p_i` for every
layer and every parameter at once. Any smooth non-zero rescaling of :math:`F`
leaves the ratio unchanged at the root.
"""

from __future__ import annotations

import math

import numpy as np
import torch

_PAIRS = ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))
_FIRST = [p[0] for p in _PAIRS]
_SECOND = [p[1] for p in _PAIRS]
# Laplace expansion of det[u1 u2 v1 v2] along the first two columns: pair
# (i, j) of rows pairs with its complement, with sign (-1)^(i+j+1) (0-based).
_LAPLACE_SIGN = (1.0, -1.0, 1.0, 1.0, -1.0, 1.0)
_COMPLEMENT = (5, 4, 3, 2, 1, 0)
PARAMETERS = ("thickness", "velocity_p", "velocity_s", "density")


def _compound(P):
    """Second compound (6x6) of a batch of 4x4 matrices (2x2 minors)."""
    i = torch.tensor(_FIRST)
    j = torch.tensor(_SECOND)
    return (P[..., i[:, None], i[None, :]] * P[..., j[:, None], j[None, :]]
            - P[..., i[:, None], j[None, :]] * P[..., j[:, None], i[None, :]])


def _chain_product(M):
    """``M[..., n-1] @ ... @ M[..., 0]`` by tree reduction with rescaling."""
    while M.shape[-3] > 1:
        if M.shape[-3] % 2:
            eye = torch.eye(M.shape[-1], dtype=M.dtype).expand(*M.shape[:-3], 1,
                                                               *M.shape[-2:])
            M = torch.cat([M, eye], dim=-3)
        M = M[..., 1::2, :, :] @ M[..., 0::2, :, :]
        M = M / M.detach().abs().amax(dim=(-2, -1), keepdim=True)
    return M[..., 0, :, :]


def _null_vector(M):
    """A null vector of each singular 4x4 matrix from its cofactors.

    The cofactors along any row span the null space of a rank-3 matrix; the
    row giving the largest vector is used (a piecewise choice that only
    rescales the secular function).
    """
    rows = []
    for r in range(4):
        keep_rows = [q for q in range(4) if q != r]
        cofactors = []
        for col in range(4):
            keep_cols = [q for q in range(4) if q != col]
            minor = M[:, keep_rows][:, :, keep_cols]
            cofactors.append((-1) ** (col + r) * torch.linalg.det(minor))
        rows.append(torch.stack(cofactors, -1))
    rows = torch.stack(rows, 1)
    best = rows.detach().norm(dim=-1).argmax(dim=1)
    return rows[torch.arange(rows.shape[0]), best]


def _water_impedance(k, omega, water):
    """``Z`` of the module docstring: normal traction over vertical displacement at the
    sea floor, for ``water = (depth, velocity_p, density)`` tensors of shape (n_period,)."""
    depth, velocity, density = water
    nu2 = k**2 - omega**2 / velocity**2
    evanescent = nu2 >= 0
    r = torch.sqrt(torch.abs(nu2))
    x = r * depth
    # Each branch sees a harmless argument where it is not used (finite gradients).
    ratio = torch.where(evanescent, torch.tanh(torch.where(evanescent, x, 0.0)),
                        torch.tan(torch.where(evanescent, 0.0, x))) / r
    return -density * omega**2 * ratio


def secular_function(phase_velocity, period, thickness, velocity_p, velocity_s, density,
                     wave, water=None):
    """Secular function at trial phase velocities, one per period.

    Parameters
    ----------
    phase_velocity, period : torch.Tensor, shape (n_period,)
        Trial phase velocities (km/s) and periods (s).
    thickness, velocity_p, velocity_s, density : torch.Tensor, shape (n_period, n_layer)
        Layer parameters, one row per period (so that a single backward pass
        gives per-period gradients); the last layer is the half-space.
    wave : {"rayleigh", "love"}
    water : tuple of torch.Tensor, shape (n_period,), optional
        Depth (km), sound speed (km/s) and density (g/cm^3) of a fluid layer on
        top of the model (Rayleigh waves only; Love waves do not feel it).

    Returns
    -------
    torch.Tensor, shape (n_period,)
        :math:`F(c)`, zero at a mode; arbitrary (smooth) normalisation.
    """
    omega = 2 * math.pi / period
    k = omega / phase_velocity
    mu = density * velocity_s**2
    scale = (k * mu[:, -1])[:, None]
    kk = k[:, None].expand_as(mu)
    omega2 = (omega**2)[:, None]
    h = thickness[:, :-1, None, None]
    zero = torch.zeros_like(mu)
    if wave == "love":
        A = torch.stack([
            torch.stack([zero, scale / mu], -1),
            torch.stack([(kk**2 * mu - density * omega2) / scale, zero], -1),
        ], -2)
        y = _chain_product(torch.linalg.matrix_exp(A[:, :-1] * h))[..., :, 0]
        nu = torch.sqrt(k**2 - omega**2 / velocity_s[:, -1] ** 2)
        # Decaying half-space solution: l2 = -mu nu l1 (l2 scaled by k mu_n).
        return y[:, 1] + nu / k * y[:, 0]
    lam = density * velocity_p**2 - 2 * mu
    modulus = lam + 2 * mu
    zeta = 4 * mu * (lam + mu) / modulus
    A = torch.stack([
        torch.stack([zero, kk, scale / mu, zero], -1),
        torch.stack([-kk * lam / modulus, zero, zero, scale / modulus], -1),
        torch.stack([(kk**2 * zeta - omega2 * density) / scale, zero, zero,
                     kk * lam / modulus], -1),
        torch.stack([zero, -omega2 * density / scale, -kk, zero], -1),
    ], -2)
    product = _chain_product(_compound(torch.linalg.matrix_exp(A[:, :-1] * h)))
    wedge = product[..., :, 0]
    if water is not None:  # start (1, 0, Z, 0, 0, 0), Z scaled like the stresses
        impedance = _water_impedance(k, omega, water) / scale[:, 0]
        wedge = wedge + impedance[:, None] * product[..., :, 2]
    decaying = []
    for velocity in (velocity_p[:, -1], velocity_s[:, -1]):
        nu = torch.sqrt(k**2 - omega**2 / velocity**2)
        decaying.append(_null_vector(A[:, -1] + nu[:, None, None] * torch.eye(4)))
    d1, d2 = decaying
    half_space = d1[:, _FIRST] * d2[:, _SECOND] - d1[:, _SECOND] * d2[:, _FIRST]
    sign = torch.tensor(_LAPLACE_SIGN, dtype=wedge.dtype)
    return (sign * wedge * half_space[:, list(_COMPLEMENT)]).sum(-1)


#: Largest relative move of a root by the Newton polish that is accepted
#: (ten times the solver's bisection bracket of 1e-6 of c).
POLISH_TOLERANCE = 1e-5


def exact_kernels(phase_velocity, period, thickness, velocity_p, velocity_s, density, wave,
                  newton_steps=1, water=None):
    """Exact phase-velocity kernels of one model at its roots.

    Parameters
    ----------
    phase_velocity, period : numpy.ndarray, shape (n_period,)
        Roots from the solver (km/s, finite) and their periods (s).
    thickness, velocity_p, velocity_s, density : numpy.ndarray, shape (n_layer,)
        The model; the last layer is the half-space.
    wave : {"rayleigh", "love"}
    newton_steps : int
        Newton steps on F that polish the solver's root (bisected to 1e-6)
        before differentiating.
    water : tuple of float, optional
        ``(depth, velocity_p, density)`` of a fluid layer on top (Rayleigh
        waves); the roots must be those of the model with that layer.

    Returns
    -------
    phase_velocity : numpy.ndarray, shape (n_period,)
        The polished roots; NaN (and NaN kernels) where the polish moved the
        root by more than :data:`POLISH_TOLERANCE` of c.
    kernels : dict of numpy.ndarray
        ``dc/dp`` (shape (n_period, n_layer)) for p in thickness, velocity_p,
        velocity_s, density (the half-space thickness kernel is exactly zero),
        and ``dc/dT`` (key ``"period"``, shape (n_period,), km/s per s); with
        ``water``, also ``dc/dh_w`` (key ``"water_depth"``, shape (n_period,)).
    """
    n_period = len(period)
    periods = torch.as_tensor(period, dtype=torch.float64)
    rows = [torch.tensor(np.tile(np.asarray(x, dtype=float), (n_period, 1)))
            for x in (thickness, velocity_p, velocity_s, density)]
    start = torch.as_tensor(phase_velocity, dtype=torch.float64).clone()
    c = start.clone()
    fluid = None if water is None else [torch.full((n_period,), float(v), dtype=torch.float64)
                                        for v in water]
    with torch.no_grad():
        for _ in range(newton_steps):
            # Secant-slope Newton step: two forward evaluations cost less than
            # one backward pass through the matrix exponentials. A slope
            # error of O(eta) only delays the quadratic convergence slightly.
            eta = 1e-6
            F0 = secular_function(c, periods, *rows, wave, water=fluid)
            F1 = secular_function(c * (1 + eta), periods, *rows, wave, water=fluid)
            c = c - F0 * (c * eta) / (F1 - F0)
    # The solver's root lies within its bracket, 1e-6 of c. A polishing step
    # that moves it much farther has left that root (seen where two roots
    # nearly meet, e.g. a mode guided by a deep low-velocity zone and the
    # surface mode): the kernel would belong to another root than the curve.
    # Such periods are refused (NaN; the caller flags them as failed).
    left = ~(torch.abs(c - start) <= POLISH_TOLERANCE * start)
    c = torch.where(left, torch.nan, c)
    leaves = [r.requires_grad_(True) for r in rows]
    trial = c.clone().requires_grad_(True)
    periods.requires_grad_(True)
    extra = [] if fluid is None else [fluid[0].requires_grad_(True)]
    F = secular_function(trial, periods, *leaves, wave, water=fluid)
    gradients = torch.autograd.grad(F.sum(), [trial, periods, *leaves, *extra],
                                    allow_unused=True)
    dF_dc = gradients[0]
    kernels = {"period": (-gradients[1] / dF_dc).numpy()}
    for name, grad in zip(PARAMETERS, gradients[2:6], strict=True):
        grad = torch.zeros_like(rows[0]) if grad is None else grad
        kernels[name] = (-grad / dF_dc[:, None]).numpy()
    if extra:
        grad = gradients[6]
        kernels["water_depth"] = (-(torch.zeros_like(dF_dc) if grad is None else grad)
                                  / dF_dc).numpy()
    return c.numpy(), kernels


def exact_group_kernels(phase_velocity, period, thickness, velocity_p, velocity_s, density,
                        wave, newton_steps=1):
    r"""Exact group-velocity kernels of one model at its roots.

    With :math:`c_T = dc/dT = -F_T / F_c` along the root and
    :math:`U = c / (1 + T c_T / c)`, the kernel is

    .. math:: \frac{dU}{dp} = \frac{\partial U}{\partial c}\frac{dc}{dp}
              + \frac{\partial U}{\partial c_T}\frac{dc_T}{dp}, \qquad
              \frac{dc_T}{dp} = \frac{\partial g}{\partial p}
              + \frac{\partial g}{\partial c}\frac{dc}{dp},

    where :math:`g(c, T, p) = -F_T / F_c` is differentiated a second time by
    autograd. :math:`g` equals :math:`c_T` on the root manifold whatever the
    normalisation of :math:`F`, so its total derivative along the manifold is
    exact even though its partial derivatives depend on that normalisation.

    Returns
    -------
    group_velocity : numpy.ndarray, shape (n_period,)
    kernels : dict of numpy.ndarray, shape (n_period, n_layer)
        ``dU/dp`` for p in thickness, velocity_p, velocity_s, density.
    """
    c, phase = exact_kernels(phase_velocity, period, thickness, velocity_p, velocity_s,
                             density, wave, newton_steps=newton_steps)
    n_period = len(period)
    periods = torch.as_tensor(period, dtype=torch.float64).clone().requires_grad_(True)
    leaves = [torch.tensor(np.tile(np.asarray(x, dtype=float), (n_period, 1)),
                           requires_grad=True)
              for x in (thickness, velocity_p, velocity_s, density)]
    trial = torch.as_tensor(c, dtype=torch.float64).clone().requires_grad_(True)
    F = secular_function(trial, periods, *leaves, wave)
    dF_dc, dF_dT = torch.autograd.grad(F.sum(), [trial, periods], create_graph=True)
    g = -dF_dT / dF_dc
    grads = torch.autograd.grad(g.sum(), [trial, *leaves], allow_unused=True)
    dg_dc = grads[0].detach().numpy()[:, None]
    T = np.asarray(period, dtype=float)[:, None]
    c_col = c[:, None]
    c_t = g.detach().numpy()[:, None]
    denominator = 1 + T * c_t / c_col
    group = (c_col / denominator)[:, 0]
    # U = c / (1 + T c_T / c) = c^2 / (c + T c_T)
    dU_dc = (c_col**2 + 2 * c_col * T * c_t) / (c_col + T * c_t) ** 2
    dU_dct = -T * c_col**2 / (c_col + T * c_t) ** 2
    kernels = {}
    for name, grad in zip(PARAMETERS, grads[1:], strict=True):
        partial = np.zeros((n_period, len(thickness))) if grad is None else grad.numpy()
        dc_dp = phase[name]
        kernels[name] = dU_dc * dc_dp + dU_dct * (partial + dg_dc * dc_dp)
    return group, kernels
