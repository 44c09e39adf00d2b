"""Every benchmark suite runs (at tiny sizes), so none rots unrun. Nothing here is timed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH_DIR = Path(__file__).resolve().parent.parent / "benchmarks"
SUITES = sorted(p.name for p in BENCH_DIR.glob("test_*.py"))


@pytest.mark.parametrize("suite", SUITES)
def test_suite_runs_at_smoke_scale(suite):
    env = dict(os.environ, FASTGRAM_BENCH_SCALE="smoke")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(BENCH_DIR / suite),
            "--benchmark-disable",
            "-q",
            "-p",
            "no:cacheprovider",
            "-x",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=BENCH_DIR.parent,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
