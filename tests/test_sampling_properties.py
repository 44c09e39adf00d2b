"""Property tests: every draw lands on a category of positive weight, for any finite row.

The properties live in ``tests/_sampling_fuzz.py``; they run here in-process and in a
subprocess, so a crash (a search walking past its row) fails a test instead of killing pytest.
"""

from __future__ import annotations

import os
import subprocess
import sys

import _sampling_fuzz as fuzz
import pytest
from hypothesis import given, settings

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.mark.parametrize(
    "row",
    [
        [5e-324, 0.0],
        [0.0, 5e-324],
        [5e-324, 5e-324, 0.0],
        [1e308, 1e308],
        [1.7e308, 5e-324, 1.7e308],
        [1e-300, 1.0, 1e300],
    ],
)
def test_known_extreme_rows(row):
    fuzz.check_float_row(row)


@settings(max_examples=60, deadline=None)
@given(fuzz.rows)
def test_float_rows(row):
    fuzz.check_float_row(row)


@settings(max_examples=40, deadline=None)
@given(fuzz.counts)
def test_count_rows(row):
    fuzz.check_count_row(row)


def _fuzz_in_subprocess(examples: int, **env) -> None:
    done = subprocess.run(
        [sys.executable, os.path.join(HERE, "_sampling_fuzz.py"), str(examples)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **env},
    )
    assert done.returncode == 0, f"exit status {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"


def test_properties_in_a_subprocess():
    """The same properties where a segfault becomes a failed test (the old code died with SIGSEGV)."""
    _fuzz_in_subprocess(80)


def test_properties_bounds_checked():
    """Serial, uncached kernels with Numba's bounds checks (which it skips inside prange loops)."""
    _fuzz_in_subprocess(15, FASTGRAM_SERIAL="1", NUMBA_BOUNDSCHECK="1")
