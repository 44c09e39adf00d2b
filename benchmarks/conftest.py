"""Shared set-up of the benchmark suites.

Conventions every suite follows (``fastgram bench`` relies on them to build its table):

- one ``benchmark.group`` per case; inside it one benchmark with role ``"kernel"`` (the
  fastgram function), one with role ``"reference"`` (its :mod:`fastgram.reference` twin), and
  any outside peers with their own role name (``"torch"``, ``"np.unique"``...), all on the
  same data;
- every callable is called once before timing (:func:`measure` does it), so Numba compile time
  is never in a timed round; compile time is its own case;
- sizes come from :func:`size`: the realistic size by default, a tiny one when
  ``FASTGRAM_BENCH_SCALE=smoke`` (the test suite runs every benchmark that way once, so no
  suite rots unrun).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

SCALE = os.environ.get("FASTGRAM_BENCH_SCALE", "full")
SMOKE = SCALE == "smoke"


def size(full: int, smoke: int) -> int:
    """The realistic ``full`` size, or ``smoke`` under ``FASTGRAM_BENCH_SCALE=smoke``."""
    return smoke if SMOKE else full


def measure(benchmark, fn, *args, group: str, role: str, rounds: int = 3, **extra):
    """Warm ``fn(*args)`` up once, then time it for ``rounds`` rounds in ``group`` as ``role``.

    Extra keyword arguments land in ``benchmark.extra_info`` (sizes, peak memory...).
    Returns the result of the warm-up call.
    """
    result = fn(*args)
    benchmark.group = group
    benchmark.extra_info["role"] = role
    benchmark.extra_info.update(extra)
    benchmark.pedantic(fn, args=args, rounds=1 if SMOKE else rounds, iterations=1, warmup_rounds=0)
    return result


@pytest.fixture(scope="session")
def rng():
    return np.random.default_rng(20261124)


def optional_import(name: str):
    """Import an outside peer, or skip the benchmark cleanly when it is not installed."""
    return pytest.importorskip(name)
