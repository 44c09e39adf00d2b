"""Shared fixtures. Random data is always seeded."""

from __future__ import annotations

import contextlib
import zlib

import numba
import numpy as np
import pytest


@pytest.fixture
def rng(request):
    # One seed per test, stable across runs and independent of test order.
    return np.random.default_rng(_seed(request.node.nodeid))


def _seed(nodeid: str) -> int:
    return zlib.crc32(nodeid.encode())


@pytest.fixture
def threads():
    """Run a block at a given Numba thread count, restoring the previous one afterwards."""

    @contextlib.contextmanager
    def at(n: int):
        before = numba.get_num_threads()
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
        try:
            yield
        finally:
            numba.set_num_threads(before)

    return at
