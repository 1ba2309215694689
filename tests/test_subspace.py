"""Tests of kernels.subspace and the gradient forms built on it (kernels.gradients)."""

import numpy as np
import pytest
import xarray as xr
from numpy.testing import assert_allclose

from kernels import priors
from kernels.config import Grid
from kernels.gradients import along_density_coupling, channel_agreement, theory_log_gradient
from kernels.io import model_dataset
from kernels.sensitivity import kernel_dataset
from kernels.subspace import INPUTS, PriorSubspace, log_gradient, log_profiles

N_DEPTH = 20
DEPTH = np.arange(N_DEPTH) * 1.0


def _models(log_values):
    """Model Dataset from stacked log profiles, shape (n, 3 * N_DEPTH)."""
    vp, vs, rho = np.split(np.exp(log_values), 3, axis=1)
    ds = xr.Dataset({name: (("sample", "depth"), v) for name, v in
                     zip(INPUTS, (vp, vs, rho), strict=True)},
                    coords={"sample": np.arange(len(log_values)), "depth": DEPTH})
    return ds


@pytest.fixture(scope="module")
def planar():
    """Models whose log profiles vary only in a known 2-D subspace."""
    rng = np.random.default_rng(0)
    directions = np.linalg.qr(rng.normal(size=(3 * N_DEPTH, 2)))[0].T  # orthonormal rows
    mean = np.log(np.concatenate([np.full(N_DEPTH, 6.0), np.full(N_DEPTH, 3.5),
                                  np.full(N_DEPTH, 2.7)]))
    scores = rng.normal(size=(500, 2)) * np.array([0.1, 0.02])
    return _models(mean + scores @ directions), directions


def test_fit_finds_the_spanned_subspace(planar):
    """Two directions explain everything, and they span the generating plane."""
    models, directions = planar
    space = PriorSubspace.fit(models)
    assert space.explained_fraction(2) == pytest.approx(1.0, abs=1e-12)
    assert space.n_for(0.999) <= 2
    # The first two components lie in the plane: projecting them onto it changes nothing.
    in_plane = space.components[:2] @ directions.T @ directions
    assert_allclose(in_plane, space.components[:2], atol=1e-10)
    assert space.variance[0] == pytest.approx(0.01, rel=0.15)  # sd 0.1 along the first
    assert_allclose(log_profiles(models).mean(0), space.mean)


def test_projection_is_orthogonal(planar):
    """P g = g inside the subspace, 0 orthogonal to it; P is idempotent; NaN stays NaN."""
    models, directions = planar
    space = PriorSubspace.fit(models)
    rng = np.random.default_rng(1)
    inside = rng.normal(size=2) @ directions
    outside = rng.normal(size=3 * N_DEPTH)
    outside -= directions.T @ (directions @ outside)
    values = np.stack([inside, outside, inside + outside, np.full(3 * N_DEPTH, np.nan)])
    g = xr.DataArray(values.reshape(4, 3, N_DEPTH), dims=("case", "channel", "depth"),
                     coords={"channel": list(INPUTS)})
    p = space.project(g, 2).values.reshape(4, -1)
    assert_allclose(p[0], inside, atol=1e-10)
    assert_allclose(p[1], 0.0, atol=1e-10)
    assert_allclose(p[2], inside, atol=1e-10)
    assert np.isnan(p[3]).all()
    twice = space.project(space.project(g.isel(case=slice(0, 3)), 2), 2)
    assert_allclose(twice.values.reshape(3, -1), p[:3], atol=1e-10)


def test_mahalanobis_is_in_units_of_the_prior_spread(planar):
    """The mean model is at distance 0; one sd along the first direction is 1."""
    models, _ = planar
    space = PriorSubspace.fit(models)
    shifted = space.mean + np.sqrt(space.variance[0]) * space.components[0]
    distance = space.mahalanobis(_models(np.stack([space.mean, shifted])), 2)
    assert distance.dims == ("sample",)
    assert_allclose(distance.values, [0.0, 1.0], atol=1e-9)


def test_log_gradient_stacks_p_times_dc_dp():
    """g_p = p dc/dp on a channel dim in the order of INPUTS."""
    models = _models(np.zeros((2, 3 * N_DEPTH)) + np.log(2.0))
    ones = xr.ones_like(models.velocity_s)
    g = log_gradient({name: (k + 1) * ones for k, name in enumerate(INPUTS)}, models)
    assert list(g.channel.values) == list(INPUTS)
    assert_allclose(g.sel(channel="density").values, 2.0 * 3)
    with pytest.raises(ValueError, match=r"gradients lacks \['density'\]"):
        log_gradient({"velocity_p": ones, "velocity_s": ones}, models)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda m, s, g: PriorSubspace.fit(m.isel(sample=[0])),
         r"at least 2 models to find directions, got 1"),
        (lambda m, s, g: PriorSubspace.fit(m, n_components=0), r"n_components must be at least"),
        (lambda m, s, g: s.n_for(1.5), r"fraction must be in \(0, 1\], got 1.5"),
        (lambda m, s, g: s.project(g.sel(channel=["velocity_s", "velocity_p", "density"]), 2),
         r"gradient channels must be"),
        (lambda m, s, g: s.project(g.isel(depth=slice(0, 5)), 2), r"has 5 depth nodes"),
    ],
)
def test_bad_subspace_input(planar, call, match):
    models, _ = planar
    space = PriorSubspace.fit(models, n_components=5)
    g = xr.DataArray(np.zeros((3, N_DEPTH)), dims=("channel", "depth"),
                     coords={"channel": list(INPUTS)})
    with pytest.raises(ValueError, match=match):
        call(models, space, g)


def test_n_for_beyond_the_kept_directions(planar):
    models, _ = planar
    space = PriorSubspace.fit(models.isel(sample=slice(0, 50)) * 1.0, n_components=1)
    with pytest.raises(ValueError, match=r"kept directions explain"):
        space.n_for(1.0)


def test_density_coupling_is_the_derivative_along_brochers_law():
    """Exact kernels: sum_z (g_Vp + beta g_rho) = d c / d ln Vp with rho = Brocher(Vp).

    The finite difference scales Vp everywhere by exp(+-eps) and recomputes density
    with Brocher's law (Vs fixed); central differences have an O(eps^2) error, about
    1e-9 of c for eps = 1e-4, and the polished roots are exact to ~1e-10 (an error of
    ~1e-6 in the quotient), so 1e-5 relative is a safe bound. The faithful strong prior
    is used because Brocher's law is applied to its Vp as drawn (the corrected prior
    clips Vp at Brocher's validity range, where the law has a kink).
    """
    grid = Grid(n_nodes=60, spacing=1.0)
    base = priors.sample("strong", 1, seed=5, grid=grid)
    periods = np.array([5.0, 20.0])
    eps = 1e-4

    def scaled(factor):
        vp = base.velocity_p * factor
        return model_dataset(base.depth.values, base.thickness.values, vp.values,
                             base.velocity_s.values, priors.brocher_density(vp.values))

    base = scaled(1.0)
    exact = kernel_dataset(base, periods, waves=("rayleigh",))
    g = theory_log_gradient(exact, base)
    predicted = along_density_coupling(g, base, prior="strong").sum("depth")
    up = kernel_dataset(scaled(np.exp(eps)), periods, waves=("rayleigh",)).phase_velocity
    down = kernel_dataset(scaled(np.exp(-eps)), periods, waves=("rayleigh",)).phase_velocity
    finite = (up - down) / (2 * eps)
    assert_allclose(predicted.values, finite.values, rtol=1e-5)


def test_channel_agreement_of_a_kernel_with_itself():
    depth = np.arange(0.0, 120.0, 0.5)
    k = xr.DataArray(np.exp(-depth / 20.0)[None, None, :] * np.ones((1, 3, 1)),
                     dims=("period", "channel", "depth"),
                     coords={"depth": depth, "channel": list(INPUTS), "period": [10.0]})
    metrics = channel_agreement(k, 2.0 * k, "velocity_s")
    assert metrics.cosine.item() == pytest.approx(1.0)
    assert metrics.centroid_depth_error.item() == pytest.approx(0.0, abs=1e-12)


def test_projection_onto_a_depth_basis():
    """Kernels in the span of the basis are kept, orthogonal ones removed, NaN kept."""
    from kernels.gradients import project_onto_basis
    from kernels.surrogate import depth_basis

    depth = np.arange(0.0, 30.0, 0.5)
    basis = depth_basis(depth, 8)
    inside = basis @ np.arange(1.0, 9.0)
    outside = np.random.default_rng(0).normal(size=depth.size)
    outside -= basis @ np.linalg.lstsq(basis, outside, rcond=None)[0]
    k = xr.DataArray(np.stack([inside, outside, np.full(depth.size, np.nan)]),
                     dims=("case", "depth"), coords={"depth": depth})
    p = project_onto_basis(k, basis)
    assert_allclose(p[0], inside, rtol=1e-8)
    assert_allclose(p[1], 0.0, atol=1e-8)
    assert np.isnan(p[2]).all()
    with pytest.raises(ValueError, match="basis has 60 rows; the kernel has 10 depth nodes"):
        project_onto_basis(k.isel(depth=slice(0, 10)), basis)


def test_fewer_models_than_coordinates_span_only_their_directions():
    """With n models, at most n - 1 directions are kept; distances stay finite."""
    rng = np.random.default_rng(5)
    logs = np.log([6.0] * N_DEPTH + [3.5] * N_DEPTH + [2.7] * N_DEPTH) + 0.05 * rng.normal(
        size=(8, 3 * N_DEPTH))
    space = PriorSubspace.fit(_models(logs))
    assert len(space.variance) == 7
    unseen = _models(logs[:1] + 0.05 * rng.normal(size=(1, 3 * N_DEPTH)))
    assert np.isfinite(space.mahalanobis(unseen, 7)).all()
    assert float(space.mahalanobis(unseen, 7)[0]) < 100
    for bad in (0, 8, 2.5):
        with pytest.raises(ValueError, match=r"k must be an integer from 1 to 7"):
            space.mahalanobis(unseen, bad)
    with pytest.raises(ValueError, match="span no direction"):
        PriorSubspace.fit(_models(np.repeat(logs[:1], 3, axis=0)))


def test_network_depth_basis_is_the_networks_buffer_or_the_identity():
    """The basis-MLP's own depth functions; the identity for a network that sees every node."""
    from types import SimpleNamespace

    from kernels.gradients import network_depth_basis
    from kernels.surrogate import BasisMLP, DispersionTransformer, depth_basis

    depth = np.arange(0.0, 30.0, 0.5)
    mlp = BasisMLP(depth.size, 3, depth, n_basis=8, hidden=8, layers=1)
    basis = network_depth_basis(SimpleNamespace(network_=mlp), depth.size)
    assert_allclose(basis, depth_basis(depth, 8), rtol=1e-6, atol=1e-7)  # float32 buffer
    transformer = DispersionTransformer(depth.size, 3, depth, np.array([2.0, 5.0, 9.0]),
                                        d_model=8, heads=2, encoder_layers=1, decoder_layers=1,
                                        feedforward=8)
    assert_allclose(network_depth_basis(SimpleNamespace(network_=transformer), depth.size),
                    np.eye(depth.size))
    with pytest.raises(ValueError, match="has 60 depth rows, not 10"):
        network_depth_basis(SimpleNamespace(network_=mlp), 10)


def test_the_emergence_chapters_step_is_the_shared_one():
    """The chapter's central-difference step defaults to the one the scores assume."""
    from kernels.config import EmergenceChapterConfig
    from kernels.gradients import FD_STEP

    assert EmergenceChapterConfig.__dataclass_fields__["fd_step"].default == FD_STEP
