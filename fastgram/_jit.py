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
- Cache saves are locked across processes (:class:`_LockedCacheFile`): Numba picks a new
  entry's data file name from the index it has just read, so two processes that compile
  different specialisations of one kernel at once (the parallel warm-up, two commands on a
  cold cache) both chose ``<kernel>.1.nbc``; the index kept one entry and could point it at the
  other specialisation's machine code. Each save now reads the index, names the file and
  writes both under an exclusive ``flock`` on one lock file per cache directory.
- ``FASTGRAM_SERIAL=1`` in the environment (read at import) compiles every kernel with
  ``parallel=False`` and ``cache=False``: Numba ignores ``NUMBA_BOUNDSCHECK=1`` inside
  ``prange`` loops, so a bounds-checked test run sets both; the cache is off so that such a
  run neither loads the normal parallel machine code nor leaves serial code behind for it.

Threading layer. Unless the user chose one (``NUMBA_THREADING_LAYER`` or
``NUMBA_THREADING_LAYER_PRIORITY``), fastgram sets Numba's layer to TBB where its runtime
loads, else to ``workqueue``:

- TBB (the ``tbb`` extra, ``pip install "fastgram[tbb]"``): pip puts ``libtbb.so.12`` in the
  environment's ``lib/``, where the loader does not look, so :func:`_preload_tbb` loads it by
  the path the ``tbb`` distribution records, and Numba's TBB layer then links against it. A
  parallel launch costs about 20 us against ``workqueue``'s 110-140 us on a 2-core machine
  (most of a decode step's attention call), it is thread-safe, and a forked child may use it.
- ``workqueue`` otherwise; it is not thread-safe, so :func:`parallel_guard` serialises
  parallel launches with a lock, which makes calls from several Python threads safe.
- GNU OpenMP (the ``omp`` layer of pip's Numba on Linux) is never chosen by default: it kills a
  child process that uses a parallel kernel after ``fork`` (``multiprocessing``'s default on
  Linux), and its spinning threads made 1,000 small calls 20-30x slower on a busy 2-core
  machine.

Which layer runs is known only once Numba has started its threads, so
:func:`threading_layer` asks Numba then (``numba.threading_layer()``) and remembers.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.metadata
import os
import threading

import numba
from numba.core import caching as _caching

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: saves are not locked
    fcntl = None

__all__ = [
    "kernel",
    "parallel_guard",
    "num_threads",
    "threading_layer",
    "cheap_launches",
    "THREAD_SAFE_LAYERS",
    "SERIAL",
]

#: Compile every kernel serially and uncached (``FASTGRAM_SERIAL=1``; see the module docstring).
SERIAL: bool = os.environ.get("FASTGRAM_SERIAL", "").strip() == "1"


#: Shared-library names of TBB's runtime by platform (Linux, macOS, Windows).
_TBB_LIBRARIES = ("libtbb.so.12", "libtbb.12.dylib", "tbb12.dll")


#: The oldest TBB runtime Numba's TBB layer accepts (2021 update 6).
_TBB_INTERFACE_MIN = 12060


def _preload_tbb() -> bool:
    """Load the runtime of pip's ``tbb`` distribution, if it is installed and new enough for
    Numba, so Numba's TBB layer can link against it; return whether that layer will load."""
    try:
        files = importlib.metadata.files("tbb") or []
    except importlib.metadata.PackageNotFoundError:
        return False
    for f in files:
        if f.name not in _TBB_LIBRARIES:
            continue
        try:
            runtime = ctypes.CDLL(str(f.locate()), mode=ctypes.RTLD_GLOBAL)
            version = runtime.TBB_runtime_interface_version
            version.restype = ctypes.c_int
            if version() < _TBB_INTERFACE_MIN:
                return False
            import numba.np.ufunc.tbbpool  # noqa: F401 - optional: Numba's layer, linked to the runtime
        except (OSError, AttributeError, ImportError):
            return False
        return True
    return False


def _choose_threading_layer() -> None:
    """TBB where it loads, else ``workqueue``, unless the user chose a layer or an order."""
    chosen = (os.environ.get("NUMBA_THREADING_LAYER") or str(numba.config.THREADING_LAYER)).strip().lower()
    if (chosen and chosen != "default") or os.environ.get("NUMBA_THREADING_LAYER_PRIORITY"):
        return
    numba.config.THREADING_LAYER = "tbb" if _preload_tbb() else "workqueue"


_choose_threading_layer()
_LAYER: str | None = None  # known after the first launch, see threading_layer

#: Layers whose parallel launches may come from several Python threads at once (and cost
#: about 20 us, not ``workqueue``'s 0.1 ms).
THREAD_SAFE_LAYERS = ("tbb", "omp")


def cheap_launches() -> bool:
    """Whether a parallel launch is cheap: TBB or OpenMP (about 20 us on a 2-core machine), not
    ``workqueue`` (0.1-0.14 ms). Wrappers that run small calls in the calling thread set their
    limits by it."""
    return threading_layer() in THREAD_SAFE_LAYERS


def threading_layer() -> str:
    """The layer Numba started: ``"tbb"``, ``"omp"`` or ``"workqueue"`` (starts Numba's threads
    if they are not running yet, since only then is it known)."""
    global _LAYER
    if _LAYER is None:
        numba.get_num_threads()  # starts the threads: the layer is known from here on
        _LAYER = str(numba.threading_layer())
    return _LAYER


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

    Wrappers call every ``parallel=True`` kernel inside this context. With ``workqueue`` it
    holds a process-wide lock for the duration of the call; with a thread-safe layer (TBB,
    OpenMP) it does nothing.
    """
    if threading_layer() in THREAD_SAFE_LAYERS:
        yield
    else:
        with _LAUNCH_LOCK:
            yield


#: The lock file, one per cache directory, that serialises cache saves across processes.
CACHE_LOCK_NAME = "fastgram-cache.lock"


@contextlib.contextmanager
def _cache_lock(directory: str):
    """An exclusive ``flock`` on ``directory``'s lock file (none where it cannot be taken:
    Numba then saves, or declines to, exactly as it would without fastgram)."""
    handle = None
    if fcntl is not None:
        try:
            handle = open(os.path.join(directory, CACHE_LOCK_NAME), "a")  # noqa: SIM115 - closed below
            fcntl.flock(handle, fcntl.LOCK_EX)
        except OSError:
            if handle is not None:
                handle.close()
            handle = None
    try:
        yield
    finally:
        if handle is not None:
            handle.close()  # releases the lock


class _LockedCacheFile(_caching.IndexDataCacheFile):
    """Numba's index + data cache files, each save under :func:`_cache_lock`."""

    def save(self, key, data):
        with _cache_lock(os.path.dirname(self._index_path)):
            super().save(key, data)


def _lock_cache_saves(dispatcher) -> None:
    cache_file = getattr(getattr(dispatcher, "_cache", None), "_cache_file", None)
    if type(cache_file) is _caching.IndexDataCacheFile:
        cache_file.__class__ = _LockedCacheFile


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
        dispatcher = numba.njit(**options)(f)
        _lock_cache_saves(dispatcher)
        return dispatcher

    return wrap(fn) if fn is not None else wrap
