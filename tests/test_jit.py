"""Numba set-up: threading layer, fork safety, thread-count control."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from fastgram import _jit


def _run(code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **env},
    )


def test_parallel_kernels_work_in_a_forked_child():
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
        """
    )
    assert result.stdout.split() == ["0", "True"], result.stderr[-2000:]


def test_default_layer_is_workqueue_with_a_lock():
    if os.environ.get("NUMBA_THREADING_LAYER"):
        pytest.skip("the user chose a threading layer")
    result = _run(
        """
        import numpy as np, numba, fastgram
        fastgram.count_bigrams(np.arange(300_000) % 5, 5)
        print(numba.threading_layer(), fastgram._jit.THREAD_SAFE_LAYER)
        """
    )
    assert result.stdout.split() == ["workqueue", "False"], result.stderr[-2000:]


def test_a_user_choice_of_layer_is_respected():
    pytest.importorskip("numba.np.ufunc.omppool", reason="this Numba build has no OpenMP layer")
    result = _run(
        """
        import numpy as np, numba, fastgram
        fastgram.count_bigrams(np.arange(300_000) % 5, 5)
        print(numba.threading_layer(), fastgram._jit.THREAD_SAFE_LAYER)
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
        """
    )
    assert result.stdout.split() == ["0"], result.stderr[-2000:]


def test_serial_switch_compiles_without_threads():
    result = _run(
        """
        import numpy as np, fastgram
        from fastgram import _jit
        from fastgram.kernels import counting
        t = np.arange(300_000) % 5
        ok = (fastgram.count_bigrams(t, 5) == fastgram.reference.count_bigrams(t, 5)).all()
        print(_jit.SERIAL, counting.bigram_counts_private.targetoptions.get("parallel"), ok)
        """,
        FASTGRAM_SERIAL="1",
    )
    assert result.stdout.split() == ["True", "False", "True"], result.stderr[-2000:]
