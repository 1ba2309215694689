"""Physical sensitivity kernels of surface-wave dispersion, and what neural surrogates learn.

One module per pipeline stage:

- :mod:`kernels.priors`: random 1-D earth models from named priors;
- :mod:`kernels.forward`: dispersion curves from the physics solver (disba);
- :mod:`kernels.sensitivity`: theoretical depth sensitivity kernels and their forms;
- :mod:`kernels.data`: models with their dispersion curves, cached on disk;
- :mod:`kernels.io`: the Datasets exchanged between stages, provenance, safe writes;
- :mod:`kernels.plotting`: figures;
- :mod:`kernels.config`: the paper's grid and periods, validated configurations.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("kernels")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"
