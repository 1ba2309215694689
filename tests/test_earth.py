"""The reference mantle below the grid (kernels.earth)."""

import numpy as np
import pytest
from numpy.testing import assert_allclose

from kernels import priors
from kernels.earth import AK135_UPPER_MANTLE, ak135, extend_below
from kernels.sensitivity import kernel_dataset

PERIODS = np.array([5.0, 30.0, 60.0])


def _fast_half_space_model():
    """A weak-prior model whose half-space is faster than every layer above it."""
    models = priors.sample("weak", 40, seed=3)
    fast = (models.velocity_s.isel(depth=-1) > models.velocity_s.isel(depth=slice(0, -1))
            .max("depth"))
    assert bool(fast.any()), "no weak model with a fast half-space among the first 40"
    return models.isel(sample=[int(np.flatnonzero(fast.values)[0])])


def test_extending_with_the_half_space_changes_nothing():
    """Splitting the half-space into layers of its own values is exact (the secular
    function is invariant under splitting a layer): the curves, every kernel of the
    layers above, and the half-space kernel as the sum of the new nodes' kernels.

    Both runs polish their roots to ~1e-12 of c; the longer grid has twice the
    layer products, so round-off in the kernels stays near 1e-10 of their largest
    entry: 1e-8 relative with a floor of 1e-8 of the largest entry is a safe bound
    that a real change (a kernel moved by 1e-6) would still fail.
    """
    model = _fast_half_space_model()
    extended = extend_below(model, max_depth=200.0, below="half-space")
    assert extended.sizes["depth"] == 401
    short = kernel_dataset(model, PERIODS)
    long = kernel_dataset(extended, PERIODS)
    assert not bool(short.failed.any() | long.failed.any())
    assert_allclose(long.phase_velocity, short.phase_velocity, rtol=1e-10)
    n = model.sizes["depth"]
    for name in ("dc_dvelocity_s", "dc_dvelocity_p", "dc_ddensity"):
        k_short, k_long = short[name].values, long[name].values
        atol = 1e-8 * np.abs(k_short).max()
        assert_allclose(k_long[..., : n - 1], k_short[..., : n - 1], rtol=1e-8, atol=atol,
                        err_msg=name)
        assert_allclose(k_long[..., n - 1:].sum(-1), k_short[..., n - 1], rtol=1e-8,
                        atol=atol, err_msg=name)


def test_ak135_below_takes_the_reference_values():
    model = _fast_half_space_model()
    extended = extend_below(model, max_depth=250.0)
    new = extended.sel(depth=slice(128.0, None))
    vp, vs, rho = ak135(new.depth.values)
    assert_allclose(new.velocity_s.values[0], vs)
    assert_allclose(new.velocity_p.values[0], vp)
    assert_allclose(new.density.values[0], rho)
    # The model above is untouched, and the old half-space is now a 0.5 km layer.
    above = extended.isel(depth=slice(0, model.sizes["depth"]))
    assert_allclose(above.velocity_s, model.velocity_s)
    assert float(above.thickness.isel(sample=0, depth=-1)) == 0.5
    assert extended.attrs["extended_below"].startswith("ak135 from 127.5 km")


def test_ak135_values_and_its_210_km_step():
    vp, vs, rho = ak135([35.0, 140.0, 209.5, 210.0, 410.0])
    assert vs[0] == AK135_UPPER_MANTLE[0, 2]
    assert vs[1] == pytest.approx(4.5 + (20.0 / 45.0) * 0.009)
    assert vs[2] < 4.518 < vs[3] == 4.523
    assert vp[-1] == 9.03 and rho[-1] == 3.547


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"max_depth": 127.5}, r"whole number \(>= 1\) of node spacings"),
    ({"max_depth": 200.2}, r"whole number"),
    ({"below": "prem"}, r"below must be one of"),
    ({"max_depth": 500.0}, r"tabulated from 35 to 410 km; got depth 410.5 km"),
])
def test_extend_below_rejects_bad_input(kwargs, match):
    model = _fast_half_space_model()
    with pytest.raises(ValueError, match=match):
        extend_below(model, **kwargs)
