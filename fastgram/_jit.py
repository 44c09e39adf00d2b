"""The one place Numba options are set.

Every kernel in :mod:`fastgram.kernels` is decorated with :func:`kernel`; no other module
passes options to Numba.

- ``cache=True``: compiled machine code is kept on disk, so a second process (and the test
  suite) loads kernels instead of compiling them again.
- ``nogil=True``: kernels release the GIL, so Python threads can run them side by side.
- ``parallel=True`` only where a kernel opts in; such kernels size their per-thread buffers
  with :func:`numba.get_num_threads` at call time (the wrapper passes :func:`num_threads` in as
  an argument: calling it inside a kernel stops Numba from caching that kernel), so ``numba.set_num_threads`` and
  ``NUMBA_NUM_THREADS`` are respected, and reduce them in a fixed order so results do not
  depend on the thread count.
- ``fastmath`` is allowed in the attention kernels only, and only with the tolerances to the
  reference proven in the tests.

Threading layer. Numba's default ``workqueue`` layer is not safe when two Python threads
launch parallel kernels at once. Unless the user chose a layer (``NUMBA_THREADING_LAYER``),
fastgram asks for a thread-safe one (OpenMP or TBB, whichever this Numba build has). If none
is available, :func:`parallel_guard` serialises parallel launches with a lock instead.
"""

from __future__ import annotations

import contextlib
import os
import threading

import numba

__all__ = ["kernel", "parallel_guard", "num_threads", "THREAD_SAFE_LAYER"]


def _available_safe_layers() -> list[str]:
    layers = []
    try:  # pragma: no cover - depends on the Numba build
        from numba.np.ufunc import omppool  # noqa: F401

        layers.append("omp")
    except ImportError:
        pass
    try:  # pragma: no cover - depends on the Numba build
        from numba.np.ufunc import tbbpool  # noqa: F401

        layers.append("tbb")
    except ImportError:
        pass
    return layers


def _choose_threading_layer() -> bool:
    """Pick a thread-safe layer unless the user chose one; return whether launches are safe."""
    chosen = os.environ.get("NUMBA_THREADING_LAYER", "").strip().lower()
    if chosen:
        return chosen in ("safe", "threadsafe", "omp", "tbb")
    if _available_safe_layers():
        numba.config.THREADING_LAYER = "threadsafe"
        return True
    return False


#: Whether parallel kernels may be launched from several Python threads at once.
THREAD_SAFE_LAYER: bool = _choose_threading_layer()
_LAUNCH_LOCK = threading.Lock()


@contextlib.contextmanager
def parallel_guard():
    """Serialise parallel kernel launches when the threading layer is not thread-safe.

    Wrappers call every ``parallel=True`` kernel inside this context. With OpenMP or TBB it is
    free; with ``workqueue`` it holds a process-wide lock for the duration of the call.
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
    options = dict(cache=True, nogil=True, parallel=parallel, fastmath=fastmath, error_model="numpy")

    def wrap(f):
        return numba.njit(**options)(f)

    return wrap(fn) if fn is not None else wrap
