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
- One parallel launcher, :func:`parallel_chunks`, for kernels whose parallel loop only deals
  runs of work to threads: it calls a *serial* kernel's machine code through its address (see
  "Why a launcher" below), so the body is compiled once instead of five times.
- ``FASTGRAM_SERIAL=1`` in the environment (read at import) compiles every kernel with
  ``parallel=False`` and ``cache=False`` (the launcher's loop then runs in the calling thread),
  and leaves nothing in the cache. Numba ignores ``NUMBA_BOUNDSCHECK=1`` inside ``prange``
  loops, but no kernel code runs inside one (the launcher's ``prange`` only calls a trampoline),
  so a bounds-checked run with a fresh ``NUMBA_CACHE_DIR`` checks every kernel on the parallel
  path too; ``FASTGRAM_SERIAL`` is for a run that must not touch the cache at all.

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

Why a launcher. A ``parallel=True`` kernel whose ``prange`` loop calls a serial kernel
``body(lo, hi, ...)`` links ``body``'s LLVM module into four more libraries (the parfor's
gufunc, two gufunc wrappers and the kernel itself), and LLVM optimises and emits machine code
for the whole body in each: measured, attention's tile loops cost 1.5-1.9 s of LLVM five times
over per dtype. :func:`parallel_chunks` instead calls ``body`` through the address of its own
compiled entry point, so ``body`` is compiled once. The launcher has two parts:

- :func:`_launch`, the one ``parallel=True`` kernel, of fixed types: a ``prange`` over chunks
  calling a *trampoline* ``status = trampoline(lo, hi, data)`` by address (compiled once,
  about 0.5 s);
- :func:`run_chunks`, serial, one specialisation per argument types (about 0.25 s each): it
  stores ``(body address, args)`` in its frame and defines the trampoline that loads them and
  calls ``body`` with Numba's native calling convention (:func:`_pack`), then calls
  :func:`_launch`.

The trampoline passes each array to the body with a null meminfo (:func:`_borrowed`): the
caller holds the arrays until every chunk is done, and a null meminfo makes the body's
reference counting of them a no-op. Otherwise every chunk's atomic increments and decrements
of one shared count bounce its cache line between the cores (the generation kernel ran 1.4x
on 2 threads instead of 2x).

The body's address comes from Python at run time (it differs per process and is never
cached). A signature number compiled into ``run_chunks`` (a CRC of the argument types) must
match the one the address was taken for, else nothing runs and the address is looked up again:
a call never goes to machine code of other argument types. (The body is not an argument of the
launcher: a dispatcher argument costs Numba's dispatch about 10 us a call.)
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.metadata
import os
import threading
import zlib

import numba
import numpy as np
from llvmlite import ir
from numba import prange, types
from numba.core import caching as _caching
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import intrinsic

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
    "parallel_chunks",
    "even_bounds",
    "parallel_for",
    "prefetch",
    "store8",
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
    """TBB where it loads, else ``workqueue``, unless the user chose a layer or an order.

    A user's choice that may pick TBB (``tbb``, ``threadsafe``, or a priority list naming
    ``tbb``) still gets pip's runtime preloaded, without which Numba's TBB layer cannot load.
    """
    chosen = (os.environ.get("NUMBA_THREADING_LAYER") or str(numba.config.THREADING_LAYER)).strip().lower()
    priority = os.environ.get("NUMBA_THREADING_LAYER_PRIORITY", "").lower().split()
    if (chosen and chosen != "default") or priority:
        if chosen in ("tbb", "threadsafe") or (chosen in ("", "default") and "tbb" in priority):
            _preload_tbb()
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

    :func:`parallel_chunks` launches inside this context (the one ``parallel=True`` kernel,
    :func:`_launch`, runs only from there). With ``workqueue`` it holds a process-wide lock for
    the duration of the call; with a thread-safe layer (TBB, OpenMP) it does nothing.
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
        Compile with ``parallel=True`` (``prange`` loops run on Numba's thread pool). Only the
        launcher's :func:`_launch` is; kernels are serial and run in parallel through
        :func:`parallel_chunks`.
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


# --- memory hints and stores --------------------------------------------------------------


@intrinsic
def prefetch(typingctx, arr, i):
    """``prefetch(arr, i)``: ask the CPU to bring the cache line of ``arr[i]`` (of a 2-D array,
    ``arr[i, 0]``) in for reading (LLVM's ``llvm.prefetch``). A hint only: it never faults,
    even for an ``i`` out of bounds, and changes no result. Kernels that probe a table far
    larger than the caches call it for a group of independent keys before probing them, so the
    misses overlap instead of queueing one behind the other."""
    if not isinstance(arr, types.Array) or arr.ndim not in (1, 2) or not isinstance(i, types.Integer):
        raise TypingError("prefetch(arr, i): arr must be a 1-D or 2-D array and i an integer")

    def codegen(context, builder, signature, llargs):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, llargs[0])
        index = context.cast(builder, llargs[1], signature.args[1], types.intp)
        indices = [index] if aryty.ndim == 1 else [index, context.get_constant(types.intp, 0)]
        shape = cgutils.unpack_tuple(builder, ary.shape)
        strides = cgutils.unpack_tuple(builder, ary.strides)
        ptr = cgutils.get_item_pointer2(
            context, builder, ary.data, shape, strides, aryty.layout, indices, wraparound=False, boundscheck=False
        )
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0i8")
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])  # read, keep, data
        return context.get_dummy_value()

    return types.none(arr, i), codegen


@intrinsic
def store8(typingctx, out, k, x):
    """``store8(out, k, x)``: write the 8 bytes of the uint64 ``x`` (little-endian) at
    ``out[k:k + 8]`` of a 1-D C-contiguous uint8 array in one unaligned store, as a text writer
    copies a short word packed in an integer. No bounds check: the caller proves
    ``0 <= k`` and ``k + 8 <= out.shape[0]``."""
    if not (
        isinstance(out, types.Array)
        and out.ndim == 1
        and out.layout == "C"
        and out.dtype == types.uint8
        and isinstance(k, types.Integer)
        and isinstance(x, types.Integer)
    ):
        raise TypingError("store8(out, k, x): out must be a 1-D C-contiguous uint8 array, k and x integers")

    def codegen(context, builder, signature, llargs):
        ary = context.make_array(signature.args[0])(context, builder, llargs[0])
        index = context.cast(builder, llargs[1], signature.args[1], types.intp)
        value = context.cast(builder, llargs[2], signature.args[2], types.uint64)
        ptr = builder.gep(ary.data, [index], inbounds=True)
        builder.store(value, builder.bitcast(ptr, ir.IntType(64).as_pointer()), align=1)
        return context.get_dummy_value()

    return types.none(out, k, x), codegen


# --- the parallel launcher --------------------------------------------------------------------


def _signature_number(argtypes) -> int:
    """A number for a tuple of Numba argument types, the same in every process (CRC-32)."""
    return zlib.crc32(str(tuple(argtypes)).encode())


def _body_name(dispatcher) -> str:
    return f"{dispatcher.py_func.__module__}.{dispatcher.py_func.__qualname__}"


@intrinsic
def _expected_signature(typingctx, args):
    """The signature number of a body's arguments ``(int64, int64, *args)``, a constant of the
    launcher's machine code."""
    if not isinstance(args, types.BaseTuple):
        raise TypingError("run_chunks(..., args): args must be a tuple")
    number = _signature_number((types.int64, types.int64, *args.types))

    def codegen(context, builder, signature, llargs):
        return context.get_constant(types.int64, number)

    return types.int64(args), codegen


#: The C type of a trampoline: ``status = trampoline(lo, hi, data)``.
_TRAMPOLINE = ir.FunctionType(ir.IntType(32), [ir.IntType(64), ir.IntType(64), ir.IntType(8).as_pointer()])


@intrinsic
def _call_trampoline(typingctx, trampoline, lo, hi, data):
    """``trampoline(lo, hi, data)`` by address (a function of type :data:`_TRAMPOLINE`)."""

    def codegen(context, builder, signature, llargs):
        fn = builder.inttoptr(llargs[0], _TRAMPOLINE.as_pointer())
        return builder.call(fn, [llargs[1], llargs[2], builder.inttoptr(llargs[3], _TRAMPOLINE.args[2])])

    return types.int32(trampoline, lo, hi, data), codegen


@kernel(parallel=True)
def _launch(trampoline, data, bounds, status):
    """``status[c] = trampoline(bounds[c], bounds[c + 1], data)`` for every chunk ``c`` on
    Numba's threads: the one ``parallel=True`` kernel of the launcher, of fixed types."""
    for c in prange(bounds.shape[0] - 1):
        status[c] = _call_trampoline(trampoline, bounds[c], bounds[c + 1], data)


def _borrowed(context, builder, ty, value):
    """An array argument as the body receives it: its meminfo (reference count) set to null.
    The caller holds every argument until all chunks are done, so the body only borrows
    them; a null meminfo makes Numba's reference counting of the argument a no-op. Without
    this, every chunk's increments and decrements of a shared argument's count are atomic
    writes to one cache line, which the threads pass back and forth."""
    if not isinstance(ty, types.Array):
        return value
    ary = context.make_array(ty)(context, builder, value)
    ary.meminfo = cgutils.get_null_value(ary.meminfo.type)
    return ary._getvalue()


@intrinsic
def _pack(typingctx, address, args):
    """``(trampoline, data)`` for :func:`_launch`: ``data`` points at ``(address, args)`` stored
    in the caller's frame, and ``trampoline`` (a function of this module, one per argument
    types) loads them and calls the body at ``address`` as ``body(lo, hi, *args)`` with Numba's
    native calling convention, returning its status."""
    if not isinstance(args, types.BaseTuple):
        raise TypingError("run_chunks(..., args): args must be a tuple")
    argtypes = (types.int64, types.int64, *args.types)
    number = _signature_number(argtypes)

    def codegen(context, builder, signature, llargs):
        record = ir.LiteralStructType([ir.IntType(64), context.get_value_type(args)])
        slot = cgutils.alloca_once(builder, record)  # lives until the caller returns
        builder.store(llargs[0], cgutils.gep_inbounds(builder, slot, 0, 0))
        builder.store(llargs[1], cgutils.gep_inbounds(builder, slot, 0, 1))
        name = f"fastgram_trampoline_{number:08x}"
        try:
            fn = builder.module.get_global(name)
        except KeyError:
            fn = ir.Function(builder.module, _TRAMPOLINE, name=name)
            fn.linkage = "internal"
            b = ir.IRBuilder(fn.append_basic_block("entry"))
            lo, hi, data = fn.args
            rec = b.bitcast(data, record.as_pointer())
            conv = context.call_conv
            fnty = conv.get_function_type(types.none, argtypes)
            body = b.inttoptr(b.load(cgutils.gep_inbounds(b, rec, 0, 0)), fnty.as_pointer())
            retty = conv.get_return_type(types.none).pointee
            retptr = cgutils.alloca_once(b, retty)
            b.store(cgutils.get_null_value(retty), retptr)
            excinfo = cgutils.alloca_once(b, fnty.args[1].pointee, name="excinfo")
            packed = b.load(cgutils.gep_inbounds(b, rec, 0, 1))
            unpacked = cgutils.unpack_tuple(b, packed, len(args.types))
            values = [lo, hi, *(_borrowed(context, b, t, v) for t, v in zip(args.types, unpacked))]
            native = list(conv._get_arg_packer(argtypes).as_arguments(b, values))
            b.ret(b.call(body, [retptr, excinfo, *native]))
        pair = [builder.ptrtoint(fn, ir.IntType(64)), builder.ptrtoint(slot, ir.IntType(64))]
        return context.make_tuple(builder, signature.return_type, pair)

    return types.UniTuple(types.int64, 2)(address, args), codegen


@kernel
def run_chunks(signature, address, bounds, status, args):
    """``body(bounds[c], bounds[c + 1], *args)`` for every chunk ``c`` on Numba's threads, for
    the body whose entry point is at ``address``, when ``signature`` is the number of this
    specialisation's argument types (a mismatch runs nothing).

    Returns ``(number, failed)``: this specialisation's signature number and the first nonzero
    return status of a chunk (0: every chunk done). ``status`` is ``(n_chunks,)`` int32 scratch.
    A serial kernel: its one parallel loop is :func:`_launch`, of fixed types, compiled once.
    """
    expected = _expected_signature(args)
    failed = np.int32(0)
    if signature == expected:
        trampoline, data = _pack(address, args)
        _launch(trampoline, data, bounds, status)
        for c in range(bounds.shape[0] - 1):
            if status[c] != 0:
                failed = status[c]
                break
    return expected, failed


#: body -> (signature number, address) of the last call; (body, number) -> address.
_LAST: dict = {}
_ADDRESSES: dict = {}


def _address(body, args, expected: int) -> int:
    """The entry point of ``body`` compiled (or loaded from the cache) for ``(int64, int64,
    *args)``, whose signature number must be ``expected``."""
    argtypes = (types.int64, types.int64, *(numba.typeof(a) for a in args))
    if _signature_number(argtypes) != expected:  # pragma: no cover - a Numba typing change
        raise RuntimeError(f"{_body_name(body)}: argument types {argtypes} do not match the launcher's")
    body.compile(argtypes)
    result = body.overloads[argtypes]
    if result.signature.return_type != types.none:
        raise TypeError(f"{_body_name(body)} must return None, not {result.signature.return_type}")
    address = int(result.library.get_pointer_to_function(result.fndesc.llvm_func_name))
    _ADDRESSES[body, expected] = address
    return address


def even_bounds(n_items: int, n_chunks: int) -> np.ndarray:
    """Edges of ``min(n_chunks, n_items)`` (at least 1) contiguous runs of ``n_items`` work
    items whose sizes differ by at most one: ``(runs + 1,)`` int64."""
    runs = max(1, min(int(n_chunks), int(n_items)))
    return np.arange(runs + 1, dtype=np.int64) * int(n_items) // runs


def parallel_for(body, n_items: int, args: tuple) -> None:
    """``body(lo, hi, *args)`` over ``n_items`` work items in :func:`even_bounds` runs, one per
    thread (:func:`parallel_chunks`)."""
    parallel_chunks(body, even_bounds(n_items, num_threads()), args)


def parallel_chunks(body, bounds: np.ndarray, args: tuple) -> None:
    """Run ``body(bounds[c], bounds[c + 1], *args)`` for every chunk ``c`` on Numba's threads.

    Parameters
    ----------
    body : kernel
        A serial :func:`kernel` that does work items ``lo <= w < hi`` and returns None.
    bounds : (n_chunks + 1,) int64
        Chunk edges; chunks run in parallel, each in one thread.
    args : tuple
        The rest of ``body``'s arguments.

    Notes
    -----
    Every parallel launch of the library goes through here, inside :func:`parallel_guard`
    (callers take no lock of their own). The first call for new argument types compiles
    ``body`` (or loads it from the cache) and a launcher for them; later calls cost one dict
    lookup and a parallel launch. See "Why a launcher" in the module docstring.

    Raises
    ------
    RuntimeError
        If a chunk's body failed (Numba reports a failed allocation as a nonzero status).
    """
    status = np.empty(max(len(bounds) - 1, 0), np.int32)
    signature, address = _LAST.get(body, (-1, 0))
    with parallel_guard():
        expected, failed = run_chunks(signature, address, bounds, status, args)
        if expected != signature:
            address = _ADDRESSES.get((body, expected)) or _address(body, args, expected)
            _LAST[body] = (expected, address)
            _, failed = run_chunks(expected, address, bounds, status, args)
    if failed:
        raise RuntimeError(f"{_body_name(body)} failed in a parallel chunk (status {failed})")
