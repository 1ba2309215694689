"""Regenerate the stored regression arrays (run only when a change is intended).

    python tests/data/make_regression.py

The work is under ``main()`` so that pytest's doctest collection, which imports every
module under ``tests/``, cannot rewrite the arrays the regression test compares with.
"""

import sys
from pathlib import Path

import numpy as np


def main():
    import kernels
    from kernels.sensitivity import phase_kernels

    sys.path.insert(0, str(Path(__file__).parents[1]))
    from test_sensitivity import REGRESSION, ak135_crust

    periods = np.array([2.0, 5.0, 10.0, 20.0, 40.0, 60.0])
    k = phase_kernels(ak135_crust(), periods, wave="rayleigh")
    names = ("phase_velocity", "dc_dvelocity_s", "dc_dvelocity_p", "dc_ddensity",
             "dc_dthickness")
    tmp = REGRESSION.with_suffix(".tmp.npz")
    np.savez(tmp, period=periods, made_by=f"kernels {kernels.__version__}, "
             "kernels.sensitivity.phase_kernels(method='exact')",
             **{name: k[name].values for name in names})
    tmp.replace(REGRESSION)
    print(f"wrote {REGRESSION}")


if __name__ == "__main__":
    main()
