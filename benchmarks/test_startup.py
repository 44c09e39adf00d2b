"""First-run cost: cold `fastgram check`, `fastgram demo --tokens 1000000` and `fastgram compile`.

Each case runs the command in a subprocess with a fresh, empty ``NUMBA_CACHE_DIR`` (so every
kernel it needs is compiled), once (``rounds=1``: a second round would find the cache warm).
Targets (issue 9): cold check <= 30 s, cold demo <= 40 s, no silent stretch over 5 s; the
longest gap between two output lines is kept in ``extra_info["longest_silence_s"]``, and the
CPU load when the case started in ``extra_info["load_1min"]`` (a shared machine slows it).

At smoke scale (``FASTGRAM_BENCH_SCALE=smoke``) each command runs on one small kernel only
(``uniform``) and the demo is skipped, so the suite checks itself in seconds.
"""

from __future__ import annotations

import os
import selectors
import subprocess
import sys
import tempfile
import time

import pytest
from conftest import SMOKE

FULL = {
    "check": ["check"],
    "demo": ["demo", "--tokens", "1000000"],
    "compile": ["compile"],
}
SMALL = {"check": ["check", "uniform"], "compile": ["compile", "uniform"]}


def run_cold(args: list[str]) -> dict:
    """Run ``fastgram ARGS`` with an empty kernel cache; return its status, output and silences."""
    with tempfile.TemporaryDirectory(prefix="fastgram-cold-") as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache, PYTHONUNBUFFERED="1")
        env.pop("FASTGRAM_SERIAL", None)
        start = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "fastgram.app.cli", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
        )
        sel = selectors.DefaultSelector()
        for stream in (proc.stdout, proc.stderr):
            sel.register(stream.fileno(), selectors.EVENT_READ)
        last, longest, chunks, open_fds = start, 0.0, [], 2
        while open_fds:  # raw reads: a buffered readline would hide lines that arrive together
            for key, _ in sel.select():
                data = os.read(key.fd, 65536)
                if not data:
                    sel.unregister(key.fd)
                    open_fds -= 1
                    continue
                now = time.perf_counter()
                longest, last = max(longest, now - last), now
                chunks.append(data)
        rc = proc.wait()
        end = time.perf_counter()
        longest = max(longest, end - last)
    return {
        "rc": rc,
        "seconds": end - start,
        "longest_silence_s": round(longest, 2),
        "output": b"".join(chunks).decode(errors="replace"),
    }


@pytest.mark.parametrize("command", ["check", "demo", "compile"])
def test_cold_start(benchmark, command):
    commands = SMALL if SMOKE else FULL
    if command not in commands:
        pytest.skip("the cold demo is measured at full scale only")
    args = commands[command]
    results = []

    def cold():
        results.append(run_cold(args))

    benchmark.group = f"cold start: fastgram {' '.join(args)}"
    benchmark.extra_info["role"] = "kernel"
    benchmark.extra_info["load_1min"] = round(os.getloadavg()[0], 2)
    benchmark.pedantic(cold, rounds=1, iterations=1, warmup_rounds=0)
    result = results[-1]
    assert result["rc"] == 0, result["output"][-3000:]
    assert "compiling" in result["output"]  # a cold run says so
    benchmark.extra_info["longest_silence_s"] = result["longest_silence_s"]
    benchmark.extra_info["wall_s"] = round(result["seconds"], 1)
