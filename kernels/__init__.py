"""Physical sensitivity kernels of surface-wave dispersion, and what neural surrogates learn.

One module per pipeline stage:

- :mod:`kernels.priors`: random 1-D earth models from named priors;
- :mod:`kernels.forward`: dispersion curves from the physics solver (disba);
- :mod:`kernels.sensitivity`: theoretical depth sensitivity kernels and their forms;
- :mod:`kernels.data`: models with their dispersion curves, cached on disk;
- :mod:`kernels.surrogate`: neural surrogates and their autodiff Jacobians;
- :mod:`kernels.sobolev`: surrogates trained on curves and exact kernels;
- :mod:`kernels.gradients`: surrogate kernels, baselines and directional derivatives;
- :mod:`kernels.metrics`: agreement metrics, skill scores and intervals;
- :mod:`kernels.subspace`: the directions a prior explores;
- :mod:`kernels.inversion`: gradient-based inversion and Laplace posteriors;
- :mod:`kernels.posterior`: sampled posteriors with the surrogate and the physics;
- :mod:`kernels.litho1`: LITHO1.0 columns, a geographic split and the ``litho1`` prior;
- :mod:`kernels.earth`: a reference mantle below the grid, real-Earth scores and sea
  water;
- :mod:`kernels.io`: the Datasets exchanged between stages, provenance, safe writes;
- :mod:`kernels.plotting`: figures;
- :mod:`kernels.config`: the paper's grid and periods, the build's profiles and the
  chapters' validated configurations;
- :mod:`kernels.cli`: the ``kernels`` command (generate data, train surrogates).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("kernels")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"
