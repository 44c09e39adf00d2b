"""The one place Numba options are set.

Every kernel in :mod:`fastgram.kernels` is decorated with :func:`kernel`; no other module
passes options to Numba.

- ``cache=True``: compiled machine code is kept on disk, so a second process (and the test
  suite) loads kernels instead of compiling them again.
- ``nogil=True``: kernels release the GIL, so Python threads can run them side by side.
- ``parallel=True`` only where a kernel opts in; such kernels size their per-thread buffers
  with :func:`numba.get_num_threads` at call time (the wrapper passes :func:`num_threads` in as
  an argument: calling it inside a kernel stops Numba from caching that kernel), so
  ``numba.set_num_threads`` and ``NUMBA_NUM_THREADS`` are respected, and reduce them in a
  fixed order so results do not depend on the thread count.
- ``fastmath`` is allowed in the attention kernels only, and only with the tolerances to the
  reference proven in the tests.
- ``FASTGRAM_SERIAL=1`` in the environment (read at import) compiles every kernel with
  ``parallel=False`` and ``cache=False``: Numba ignores ``NUMBA_BOUNDSCHECK=1`` inside
  ``prange`` loops, so a bounds-checked test run sets both; the cache is off so that such a
  run neither loads the normal parallel machine code nor leaves serial code behind for it.

Threading layer. Unless the user chose one (``NUMBA_THREADING_LAYER``), fastgram uses Numba's
``workqueue`` layer and :func:`parallel_guard` serialises parallel launches with a lock, which
makes calls from several Python threads safe. The alternatives were measured and rejected as
defaults: GNU OpenMP (the ``omp`` layer of pip's Numba on Linux) kills a child process that
uses a parallel kernel after ``fork`` (``multiprocessing``'s default on Linux), and its
spinning threads made 1,000 small calls 20-30x slower on a busy 2-core machine; TBB is not
loadable from pip's wheels. A user who picks ``omp`` or ``tbb`` gets no lock (both are
thread-safe).
"""

from __future__ import annotations

import contextlib
import os
import threading

import numba

__all__ = ["kernel", "parallel_guard", "num_threads", "THREAD_SAFE_LAYER", "SERIAL"]

#: Compile every kernel serially and uncached (``FASTGRAM_SERIAL=1``; see the module docstring).
SERIAL: bool = os.environ.get("FASTGRAM_SERIAL", "").strip() == "1"


def _choose_threading_layer() -> bool:
    """Use ``workqueue`` unless the user chose a layer; return whether launches are thread-safe."""
    chosen = (os.environ.get("NUMBA_THREADING_LAYER") or str(numba.config.THREADING_LAYER)).strip().lower()
    if chosen and chosen != "default":
        return chosen in ("safe", "threadsafe", "omp", "tbb")
    numba.config.THREADING_LAYER = "workqueue"
    return False


#: Whether parallel kernels may be launched from several Python threads at once.
THREAD_SAFE_LAYER: bool = _choose_threading_layer()
_LAUNCH_LOCK = threading.Lock()


def _reset_lock_in_child() -> None:
    """A child forked while another thread held the launch lock would wait for it forever (the
    holder does not exist in the child): give the child a fresh lock."""
    global _LAUNCH_LOCK
    _LAUNCH_LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_lock_in_child)


@contextlib.contextmanager
def parallel_guard():
    """Serialise parallel kernel launches when the threading layer is not thread-safe.

    Wrappers call every ``parallel=True`` kernel inside this context. With ``workqueue`` (the
    default) it holds a process-wide lock for the duration of the call; with a layer the user
    chose that is thread-safe (OpenMP, TBB) it does nothing.
    """
    if THREAD_SAFE_LAYER:
        yield
    else:
        with _LAUNCH_LOCK:
            yield


def num_threads() -> int:
    """The number of threads parallel kernels will use now (``numba.get_num_threads()``)."""
    return int(numba.get_num_threads())


def kernel(fn=None, *, parallel: bool = False, fastmath: bool = False):
    """Compile ``fn`` with fastgram's Numba options.

    Parameters
    ----------
    parallel : bool
        Compile with ``parallel=True`` (``prange`` loops run on Numba's thread pool). Call the
        result inside :func:`parallel_guard`.
    fastmath : bool
        Allow ``fastmath`` (attention kernels only, see module docstring).

    Examples
    --------
    In a module under ``fastgram/kernels/`` (caching needs a source file)::

        @kernel(parallel=True)
        def _fill(out, value):
            for i in numba.prange(out.shape[0]):
                out[i] = value
    """
    options = dict(
        cache=not SERIAL, nogil=True, parallel=parallel and not SERIAL, fastmath=fastmath, error_model="numpy"
    )

    def wrap(f):
        return numba.njit(**options)(f)

    return wrap(fn) if fn is not None else wrap
