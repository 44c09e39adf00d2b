"""Shared fixtures. Random data is always seeded."""

from __future__ import annotations

import contextlib
import zlib

import numba
import numpy as np
import pytest

from fastgram.app import compile as fastgram_compile


def pytest_sessionstart(session):
    """With a cold kernel cache, compile every kernel first in parallel processes (``fastgram
    compile``'s warm-up; nothing when the cache is warm or the CPUs are busy): otherwise the
    tests compile them one at a time in this process, most of a cold run's time."""
    fastgram_compile.warm_up_if_cold(fastgram_compile.select_tasks(command="compile"))


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
