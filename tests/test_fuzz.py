"""Fuzz/property suite over the whole public API (issue 9); the families live in ``tests/_fuzz.py``.

- Wrong kinds of argument to every public function run in-process (pure-Python validation).
- Every family that reaches a kernel (counting, sampling, metrics, attention, vocabularies,
  files and loaders, the language model, the CLI) runs in a subprocess, so a crash fails its
  test instead of killing pytest; a hang fails it by the time limit.
- One bounds-checked run: a subset in a subprocess with ``NUMBA_BOUNDSCHECK=1``,
  ``FASTGRAM_SERIAL=1`` (kernels compiled serially, so ``prange`` bodies are checked too) and a
  fresh ``NUMBA_CACHE_DIR``: an out-of-bounds index surfaces as an ``IndexError`` there, which
  the families record as a failure.

Size: ``FASTGRAM_FUZZ_EXAMPLES`` sets the hypothesis examples per family (default: a few dozen,
about a minute for the whole file); e.g. ``FASTGRAM_FUZZ_EXAMPLES=2000 pytest tests/test_fuzz.py -s``
for a big pass by hand. Each test prints ``fuzz <family>: <cases> cases, <n> failures`` and, with
``FASTGRAM_FUZZ_REPORT=path``, appends its summary to that JSON-lines file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "_fuzz.py"
SCALE = os.environ.get("FASTGRAM_FUZZ_EXAMPLES")

#: Default examples per family: enough to reach every branch of each family once or twice.
DEFAULT = {
    "types": 150,
    "counting": 60,
    "sampling": 60,
    "metrics": 30,
    "attention": 30,
    "vocab": 40,
    "files": 60,
    "lm": 20,
    "cli": 25,
}


def examples(family: str) -> int:
    return int(SCALE) if SCALE else DEFAULT[family]


def _report(summary: dict) -> None:
    print(
        f"fuzz {summary['family']}: {summary['cases']} cases, {len(summary['failures'])} failures ({summary['seconds']} s)"
    )
    path = os.environ.get("FASTGRAM_FUZZ_REPORT")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(summary) + "\n")


def _explain(summary: dict) -> str:
    return "\n".join(f"{key}\n    first call: {call}" for key, call in summary["failures"].items())


def run_subprocess(families: list[str], n: int, *, env=None, narrow: bool = False, canary: bool = False, timeout=600):
    """Run families in a fresh interpreter; fail on a crash, a hang or a recorded failure."""
    cmd = [sys.executable, str(SCRIPT), *families, "--examples", str(n)]
    cmd += (["--narrow"] if narrow else []) + (["--canary"] if canary else [])
    full_env = {**os.environ, "PYTHONFAULTHANDLER": "1", **(env or {})}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=full_env, cwd=HERE.parent)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{families} hung (no result in {timeout} s); stderr tail:\n{(exc.stderr or '')[-3000:]}")
    crashed = proc.returncode != 0 or "Fatal Python error" in proc.stderr
    assert not crashed, f"{families} exited with {proc.returncode}; stderr tail:\n{proc.stderr[-5000:]}"
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    if canary:
        assert lines and lines[0].get("canary", "").startswith("IndexError"), f"bounds are not checked: {lines[:1]}"
    summaries = [s for s in lines if "family" in s]
    assert [s["family"] for s in summaries] == families, proc.stdout[-2000:]
    for s in summaries:
        _report(s)
    bad = [s for s in summaries if s["failures"]]
    assert not bad, "\n\n".join(f"[{s['family']}]\n{_explain(s)}" for s in bad)
    return summaries


def test_wrong_kinds_of_argument_in_process():
    """str, None, ragged lists, huge ints... to each argument of every public function."""
    sys.path.insert(0, str(HERE))
    try:
        import _fuzz
    finally:
        sys.path.remove(str(HERE))
    summary = _fuzz.run_family("types", examples("types"))
    _report(summary)
    assert not summary["failures"], _explain(summary)
    assert summary["cases"] >= examples("types")


@pytest.mark.parametrize("family", ["counting", "sampling", "metrics", "attention", "vocab", "files", "lm", "cli"])
def test_family_in_subprocess(family):
    (summary,) = run_subprocess([family], examples(family))
    assert summary["cases"] >= examples(family) // 2 or family == "lm"


def test_bounds_checked_subset(tmp_path):
    """Counting, sampling and metrics with NUMBA_BOUNDSCHECK=1, compiled serially and afresh."""
    env = {"NUMBA_BOUNDSCHECK": "1", "FASTGRAM_SERIAL": "1", "NUMBA_CACHE_DIR": str(tmp_path / "numba-cache")}
    n = int(SCALE) if SCALE else 25
    summaries = run_subprocess(["counting", "sampling", "metrics"], n, env=env, narrow=True, canary=True)
    assert sum(s["cases"] for s in summaries) >= n
