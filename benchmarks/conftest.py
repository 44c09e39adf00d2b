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
  suite rots unrun);
- the functions come from the registry (:data:`fastgram.registry.REGISTRY`): ``.kernel``,
  ``.reference`` and ``.peers`` of one entry, so ``fastgram check``, the tests and the
  benchmarks pair the same implementations (:func:`roles`, :func:`implementation`); a peer
  whose library is missing is not in ``.peers`` and so is not collected;
- a benchmark never reports the speed of a wrong answer: after timing, each one compares its
  result once with the reference's on the same data (:func:`check_result`, untimed), exactly
  or within the entry's tolerance.
"""

from __future__ import annotations

import os
import sys
import time

import numba
import numpy as np
import pytest

from fastgram._jit import threading_layer
from fastgram.registry import REGISTRY, max_difference

SCALE = os.environ.get("FASTGRAM_BENCH_SCALE", "full")
SMOKE = SCALE == "smoke"


def pytest_benchmark_update_machine_info(config, machine_info):
    """Record Numba's threading layer: a parallel launch costs 5x more under ``workqueue`` than
    under TBB, which moves every small parallel case."""
    machine_info["numba_threading_layer"] = threading_layer()
    machine_info["versions"] = {m.__name__: m.__version__ for m in (np, numba)}  # of the run, for --from-json
    torch = sys.modules.get("torch")
    if torch is not None:
        machine_info["versions"]["torch"] = torch.__version__


def size(full: int, smoke: int) -> int:
    """The realistic ``full`` size, or ``smoke`` under ``FASTGRAM_BENCH_SCALE=smoke``."""
    return smoke if SMOKE else full


#: Seconds of timed rounds a fast case is given at least (more rounds, steadier medians).
MIN_TIMED_SECONDS = 2.0
MAX_ROUNDS = 100


def measure(benchmark, fn, *args, group: str, role: str, rounds: int = 3, **extra):
    """Warm ``fn(*args)`` up once, then time it in ``group`` as ``role``.

    Slow cases get ``rounds`` rounds; a fast one gets as many as fill
    :data:`MIN_TIMED_SECONDS` (up to :data:`MAX_ROUNDS`), so a busy moment on a shared
    machine moves its median less. Extra keyword arguments land in ``benchmark.extra_info``
    (sizes, peak memory...). Returns the result of the warm-up call.
    """
    start = time.perf_counter()
    result = fn(*args)  # warm-up: compiles or loads kernels, pages memory in
    if not SMOKE and time.perf_counter() - start < MIN_TIMED_SECONDS:
        start = time.perf_counter()
        fn(*args)
        once = time.perf_counter() - start
        rounds = max(rounds, min(MAX_ROUNDS, int(MIN_TIMED_SECONDS / max(once, 1e-9))))
    benchmark.group = group
    benchmark.extra_info["role"] = role
    benchmark.extra_info.update(extra)
    benchmark.pedantic(fn, args=args, rounds=1 if SMOKE else rounds, iterations=1, warmup_rounds=0)
    return result


@pytest.fixture(scope="session")
def rng():
    return np.random.default_rng(20261124)


def roles(name: str, *, peers: bool = True) -> list[str]:
    """``["kernel", "reference", *peers]`` of registry entry ``name`` (installed peers only)."""
    return ["kernel", "reference", *(REGISTRY[name].peers if peers else ())]


def implementation(name: str, role: str):
    """The registry's function of ``role`` (``"kernel"``, ``"reference"`` or a peer's name)."""
    entry = REGISTRY[name]
    if role == "kernel":
        return entry.kernel
    if role == "reference":
        return entry.reference
    return entry.peers[role]


#: The reference result of the latest group, so the kernel, reference and peers of one group
#: (collected one after the other) compute it once; one group's result at a time.
_REFERENCE: dict = {}


def reference_result(name: str, group: str, *args, **kwargs):
    """``REGISTRY[name].reference(*args, **kwargs)``, computed once per group."""
    key = (name, group)
    if key not in _REFERENCE:
        _REFERENCE.clear()
        _REFERENCE[key] = REGISTRY[name].reference(*args, **kwargs)
    return _REFERENCE[key]


def check_result(name: str, group: str, role: str, got, *args, tolerance: float | None = None, **kwargs) -> None:
    """Assert (untimed) that ``got`` equals the reference's result on ``args, kwargs``.

    The entry's ``compare`` and ``tolerance`` decide (exact for counts and draws); a result of
    role ``"reference"`` is kept for the group's other roles instead.
    """
    entry = REGISTRY[name]
    if role == "reference":
        _REFERENCE.clear()
        _REFERENCE[(name, group)] = got
        return
    want = reference_result(name, group, *args, **kwargs)
    diff = float((entry.compare or max_difference)(got, want))
    limit = entry.tolerance if tolerance is None else tolerance
    assert diff <= limit, f"{group}: the {role}'s result differs from the reference's by {diff:.3g} (> {limit:.3g})"


def optional_import(name: str):
    """Import an outside peer, or skip the benchmark cleanly when it is not installed."""
    return pytest.importorskip(name)


def zipf_tokens(rng, n: int, vocab_size: int, dtype, s: float = 1.1) -> np.ndarray:
    """``n`` ids with Zipf-like frequencies over ``[0, vocab_size)`` (id 0 the most frequent)."""
    p = 1.0 / np.arange(1, vocab_size + 1) ** s
    cdf = np.cumsum(p / p.sum())
    out = np.empty(n, dtype=dtype)
    step = 1 << 24
    for lo in range(0, n, step):  # chunked: no O(n) float temporaries
        u = rng.random(min(step, n - lo))
        out[lo : lo + u.shape[0]] = np.minimum(np.searchsorted(cdf, u), vocab_size - 1)
    return out


def time_compile(benchmark, dispatcher, args: tuple, how: str) -> None:
    """Time a kernel's first call in group ``compile <name>``.

    ``how="cold"`` compiles from scratch (role ``"cold compile"``); ``how="cached"`` loads the
    machine code from the on-disk cache (role ``"kernel"``), so the table's ratio is what the
    cache saves.
    """
    dispatcher(*args)  # make sure the on-disk cache is warm

    def first_call():
        fresh_dispatcher(dispatcher, cache=how == "cached")(*args)

    benchmark.group = f"compile {dispatcher.py_func.__name__}"
    benchmark.extra_info["role"] = "kernel" if how == "cached" else "cold compile"
    benchmark.pedantic(first_call, rounds=1 if SMOKE else 3, iterations=1)


def fresh_dispatcher(dispatcher, cache: bool):
    """A new Numba dispatcher of the same Python function and options (nothing compiled yet).

    With ``cache=True`` its first call loads the machine code from the on-disk cache (warm it
    first); with ``cache=False`` its first call compiles from scratch.
    """
    import numba

    options = {k: v for k, v in dispatcher.targetoptions.items() if k != "nopython"}
    options["cache"] = cache
    return numba.njit(**options)(dispatcher.py_func)


_PEAK_PROBE = """
def _status(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset VmHWM to the current resident set
_before = _status("VmRSS:")
"""

#: Whether :func:`peak_extra_mib` can measure here (Linux ``/proc``).
CAN_MEASURE_PEAK = os.path.exists("/proc/self/clear_refs")


def peak_extra_mib(setup: str, call: str) -> float:
    """Peak resident memory (MiB) that ``call`` adds, in a fresh interpreter (Linux only).

    The child runs ``setup`` (build the data, warm the kernels up on small inputs), resets its
    peak resident set to the current one (``/proc/self/clear_refs``), runs ``call`` and reports
    the peak (``VmHWM``) minus the resident set before the call: everything the call needed,
    NumPy's and Numba's allocations alike. (``ru_maxrss`` would not do: a child started by
    fork/exec inherits its parent's peak as its own.)
    """
    import subprocess
    import sys

    code = "\n".join([setup, _PEAK_PROBE, call, 'print((_status("VmHWM:") - _before) / 1024)'])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return round(float(out.stdout.strip().splitlines()[-1]), 1)
