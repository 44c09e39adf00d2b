"""Numba set-up: threading layer, fork safety, thread-count control."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import subprocess
import sys
import textwrap
import time

import _launch_bodies
import numba
import numpy as np
import pytest
from numba.core import caching as _caching

from fastgram import _jit
from fastgram.kernels import attention, counting, sampling_logits


def _run(code: str, **env) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter, ``env`` over this one's environment (None: unset)."""
    merged = {k: v for k, v in {**os.environ, **env}.items() if v is not None}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300, env=merged
    )


@pytest.mark.parametrize("layer", ["default", "workqueue"])
def test_parallel_kernels_work_in_a_forked_child(layer):
    result = _run(
        """
        import multiprocessing as mp, numpy as np, fastgram
        t = np.arange(200_000, dtype=np.int64) % 7
        want = int(fastgram.count_bigrams(t, 7).sum())
        def child(q):
            q.put(int(fastgram.count_bigrams(t, 7).sum()))
        ctx = mp.get_context("fork")
        q = ctx.Queue(); p = ctx.Process(target=child, args=(q,)); p.start(); p.join(120)
        print(p.exitcode, q.get(timeout=5) == want)
        """,
        NUMBA_THREADING_LAYER=layer,
    )
    assert result.stdout.split() == ["0", "True"], result.stderr[-2000:]


_LAYER = """
import numpy as np, numba, fastgram
from fastgram import _jit
fastgram.count_bigrams(np.arange(300_000) % 5, 5)
print(numba.threading_layer(), _jit.threading_layer() in _jit.THREAD_SAFE_LAYERS)
"""
# a Python without pip's tbb distribution: the metadata lookup fails as it would there
_WITHOUT_TBB = """
import importlib.metadata as metadata
real = metadata.files
def files(name):
    if name == "tbb":
        raise metadata.PackageNotFoundError(name)
    return real(name)
metadata.files = files
"""
_HAS_TBB = importlib.util.find_spec("numba.np.ufunc.tbbpool") is not None and bool(
    [d for d in importlib.metadata.distributions() if d.metadata["Name"] == "tbb"]
)


@pytest.mark.skipif(not _HAS_TBB, reason="the tbb extra is not installed")
def test_default_layer_is_tbb_when_the_extra_is_installed():
    if os.environ.get("NUMBA_THREADING_LAYER"):
        pytest.skip("the user chose a threading layer")
    result = _run(_LAYER)
    assert result.stdout.split() == ["tbb", "True"], result.stderr[-2000:]


@pytest.mark.skipif(not _HAS_TBB, reason="the tbb extra is not installed")
@pytest.mark.parametrize(
    "env", [{"NUMBA_THREADING_LAYER": "tbb"}, {"NUMBA_THREADING_LAYER_PRIORITY": "tbb omp workqueue"}]
)
def test_a_user_choice_of_tbb_gets_the_runtime_preloaded(env):
    """Numba's TBB layer links against pip's runtime only once fastgram has loaded it."""
    result = _run(_LAYER, **{"NUMBA_THREADING_LAYER": None, "NUMBA_THREADING_LAYER_PRIORITY": None, **env})
    assert result.stdout.split() == ["tbb", "True"], result.stderr[-2000:]


def test_without_tbb_the_default_is_workqueue_with_a_lock():
    if os.environ.get("NUMBA_THREADING_LAYER"):
        pytest.skip("the user chose a threading layer")
    result = _run(_WITHOUT_TBB + _LAYER)
    assert result.stdout.split() == ["workqueue", "False"], result.stderr[-2000:]


def test_a_user_choice_of_layer_is_respected():
    pytest.importorskip("numba.np.ufunc.omppool", reason="this Numba build has no OpenMP layer")
    result = _run(
        """
        import numpy as np, numba, fastgram
        from fastgram import _jit
        fastgram.count_bigrams(np.arange(300_000) % 5, 5)
        print(numba.threading_layer(), _jit.threading_layer() in _jit.THREAD_SAFE_LAYERS)
        """,
        NUMBA_THREADING_LAYER="omp",
    )
    assert result.stdout.split() == ["omp", "True"], result.stderr[-2000:]


def test_num_threads_follows_numba(threads):
    with threads(1):
        assert _jit.num_threads() == 1


def test_fork_while_another_thread_holds_the_launch_lock():
    result = _run(
        """
        import os, threading, numpy as np, fastgram
        from fastgram import _jit
        t = np.arange(200_000, dtype=np.int64) % 7
        want = int(fastgram.count_bigrams(t, 7).sum())
        held, release = threading.Event(), threading.Event()
        def hold():
            with _jit.parallel_guard():
                held.set()
                release.wait(60)
        threading.Thread(target=hold, daemon=True).start()
        held.wait(60)
        pid = os.fork()
        if pid == 0:
            ok = int(fastgram.count_bigrams(t, 7).sum()) == want
            os._exit(0 if ok else 3)
        import time
        for _ in range(600):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.1)
        else:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            status = None
        release.set()
        print("hung" if status is None else os.waitstatus_to_exitcode(status))
        """,
        NUMBA_THREADING_LAYER="workqueue",  # the layer that takes the lock
    )
    assert result.stdout.split() == ["0"], result.stderr[-2000:]


def test_serial_switch_compiles_without_threads():
    result = _run(
        """
        import numpy as np, fastgram
        from fastgram import _jit
        t = np.arange(300_000) % 5
        ok = (fastgram.count_bigrams(t, 5) == fastgram.reference.count_bigrams(t, 5)).all()
        print(_jit.SERIAL, _jit._launch.targetoptions.get("parallel"), ok)
        """,
        FASTGRAM_SERIAL="1",
    )
    assert result.stdout.split() == ["True", "False", "True"], result.stderr[-2000:]


# --- cache saves from several processes --------------------------------------------------------

_SAVE = """
import os, sys, time
from fastgram import _jit
cache_dir, key, pause = sys.argv[1], sys.argv[2], float(sys.argv[3])
f = _jit._LockedCacheFile(cache_dir, "kernel-1.py311", "stamp")
if pause:  # hold the window between reading the index and writing it, and say so
    save_index = f._save_index
    def slow(overloads):
        open(os.path.join(cache_dir, "in-window"), "w").close()
        time.sleep(pause)
        save_index(overloads)
    f._save_index = slow
f.save(key, "machine code of " + key)
"""


def test_cache_saves_of_two_processes_keep_both_entries(tmp_path):
    """Numba names a new entry's data file from the index it read: without the lock, a second
    process saving while the first is between reading and writing the index picked the same
    file name, and one entry was lost (or pointed at the other's machine code)."""
    slow = subprocess.Popen([sys.executable, "-c", _SAVE, str(tmp_path), "float32", "2.0"])
    deadline = time.monotonic() + 60
    while not (tmp_path / "in-window").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    fast = subprocess.run([sys.executable, "-c", _SAVE, str(tmp_path), "float64", "0"], timeout=120)
    assert slow.wait(timeout=120) == 0 and fast.returncode == 0
    cache = _caching.IndexDataCacheFile(str(tmp_path), "kernel-1.py311", "stamp")
    assert cache.load("float32") == "machine code of float32"
    assert cache.load("float64") == "machine code of float64"
    assert len(list(tmp_path.glob("kernel-1.py311.*.nbc"))) == 2


def test_every_kernel_saves_under_the_lock():
    for dispatcher in (
        attention.attend_items,
        _jit.run_chunks,
        counting.count_pieces_private,
        sampling_logits.draw_rows,
    ):
        assert type(dispatcher._cache._cache_file) is _jit._LockedCacheFile


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_parallel_chunks_runs_every_chunk_once(dtype):
    x = np.arange(1_000, dtype=dtype)
    out = np.zeros_like(x)
    bounds = np.array([0, 1, 400, 400, 999, 1_000], np.int64)  # an empty chunk and a short one
    _jit.parallel_chunks(_launch_bodies.scaled_copy, bounds, (out, x, dtype(3)))
    np.testing.assert_array_equal(out, x * dtype(3))


def test_parallel_chunks_follows_changing_argument_types():
    """Each call's arguments get the machine code of their own types: alternating dtypes (and
    a read-only input) are never run through the address taken for the previous call's."""
    bounds = np.array([0, 50, 100], np.int64)
    for _ in range(2):
        for dtype in (np.float32, np.float64, np.float32):
            x = np.linspace(0, 1, 100).astype(dtype)
            frozen = x.copy()
            frozen.flags.writeable = False
            for source in (x, frozen):
                out = np.zeros_like(x)
                _jit.parallel_chunks(_launch_bodies.scaled_copy, bounds, (out, source, dtype(2)))
                np.testing.assert_array_equal(out, x * dtype(2))


def test_bodies_borrow_their_array_arguments():
    """The launcher hands a body its arrays without their reference counts (so chunks on other
    threads do not contend for them): views, copies and calls inside the body still work, and
    the caller's arrays are left as they were, reference counts included."""
    x = np.arange(600.0).reshape(200, 3)
    out = np.zeros(200)
    before = (sys.getrefcount(x), sys.getrefcount(out))
    for chunks in (1, 2, 7, 200):
        out[:] = 0
        _jit.parallel_chunks(_launch_bodies.views_and_copies, _jit.even_bounds(200, chunks), (out, x))
        np.testing.assert_array_equal(out, 3 * x.sum(axis=1))
    assert (sys.getrefcount(x), sys.getrefcount(out)) == before
    np.testing.assert_array_equal(x, np.arange(600.0).reshape(200, 3))


def test_parallel_chunks_reports_a_failed_chunk():
    out = np.zeros(10, np.int64)
    with pytest.raises(RuntimeError, match=r"fails_on_chunk failed in a parallel chunk \(status"):
        _jit.parallel_chunks(_launch_bodies.fails_on_chunk, np.array([0, 5, 10], np.int64), (out, 5))
    _jit.parallel_chunks(_launch_bodies.fails_on_chunk, np.array([0, 5, 10], np.int64), (out, -1))
    np.testing.assert_array_equal(out, [0] * 5 + [5] * 5)


def test_parallel_chunks_refuses_a_body_that_returns_a_value():
    with pytest.raises(TypeError, match="returns_a_value must return None"):
        _jit.parallel_chunks(_launch_bodies.returns_a_value, np.array([0, 1], np.int64), (np.zeros(1),))


def test_bounds_checks_reach_kernels_on_the_parallel_path(tmp_path):
    """No kernel code runs inside a ``prange`` (where Numba ignores ``NUMBA_BOUNDSCHECK``): a
    bounds-checked run catches an out-of-bounds write of a body the launcher runs in parallel,
    and nothing is written past the array."""
    result = _run(
        """
        import numpy as np, _launch_bodies as b
        from fastgram import _jit
        backing = np.zeros(100)
        try:
            _jit.parallel_chunks(b.scaled_copy, np.array([0, 50, 100]), (backing[:10], np.ones(100), 2.0))
            print("nothing raised")
        except RuntimeError as exc:
            print("failed in a parallel chunk" in str(exc), backing[10:].sum() == 0)
        """,
        NUMBA_BOUNDSCHECK="1",
        NUMBA_CACHE_DIR=str(tmp_path),
        PYTHONPATH=os.pathsep.join([os.path.dirname(__file__), os.environ.get("PYTHONPATH", "")]),
    )
    assert result.stdout.split() == ["True", "True"], result.stdout + result.stderr[-2000:]


def test_prefetch_is_a_hint_that_never_faults_nor_changes_results():
    @numba.njit
    def total(a, b, far):
        s = 0.0
        for i in range(a.shape[0]):
            _jit.prefetch(a, i + 1)  # past the end on the last i
            _jit.prefetch(b, far)  # far outside the array: a hint, not a load
            s += a[i] + b[i % b.shape[0], 1]
        return s

    a = np.arange(100.0)
    b = np.arange(30.0).reshape(10, 3)
    assert total(a, b, 1 << 40) == a.sum() + b[:, 1].sum() * 10
    assert total(a, b[:, ::2].copy(), -(1 << 20)) == a.sum() + b[:, 2].sum() * 10

    @numba.njit
    def cube(c):
        _jit.prefetch(c, 0)

    with pytest.raises(numba.core.errors.TypingError, match="1-D or 2-D"):
        cube(np.zeros((2, 2, 2)))


def test_store8_writes_eight_little_endian_bytes_at_any_offset():
    @numba.njit
    def put(out, k, x):
        _jit.store8(out, k, x)

    x = np.uint64(0x0807060504030201)
    for k in range(9):  # every alignment, up to the last offset with room
        out = np.zeros(17, np.uint8)
        put(out, k, x)
        expect = np.zeros(17, np.uint8)
        expect[k : k + 8] = np.arange(1, 9)
        assert out.tolist() == expect.tolist(), k
    with pytest.raises(numba.core.errors.TypingError, match="uint8"):
        put(np.zeros(16, np.int64), 0, x)
