"""Shared fixtures."""

import numpy as np
import pytest

from kernels.config import paper_periods


@pytest.fixture(scope="session")
def periods():
    """The paper's 59 periods, 2-60 s."""
    return paper_periods()


@pytest.fixture
def rng():
    """A seeded generator for test-local randomness."""
    return np.random.default_rng(12345)
