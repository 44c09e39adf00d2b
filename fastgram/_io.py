"""Files in and out: atomic outputs, temporary directories, progress bars, chunked readers.

The bottom layer for everything that touches the disk (stdlib and NumPy only):

- :func:`atomic_output` and :func:`temporary_directory`: an output is written under a
  temporary name and renamed, and scratch directories are removed, however the work ends —
  an error, ``KeyboardInterrupt`` (SIGINT) or SIGTERM (:func:`sigterm_as_exception`).
- :func:`progress_bar`: tqdm when asked for (the ``progress`` extra), else nothing.
- :func:`expand_paths`, :func:`check_path`, :func:`token_dtype`, :func:`parse_memory`: the
  checks of path, dtype and memory-budget arguments.
- :func:`raw_chunks`, :func:`utf8_chunks`, :func:`text_chunks`: a file read in fixed-size
  chunks into one reused buffer, so peak memory is one chunk whatever the file's size. Chunks
  are read with ``readinto`` rather than through a memory map (the speed is the same, and the
  resident memory really is bounded). Files whose size is unknown (FIFOs, pipes) are read to
  their end; a regular file whose size changes while it is read raises ``ValueError``.
"""

from __future__ import annotations

import codecs
import contextlib
import glob
import math
import os
import shutil
import signal
import stat
import struct
import tempfile
import threading
import zipfile
import zlib
from collections.abc import Iterator

import numpy as np

from fastgram import _checks

__all__ = [
    "TOKEN_DTYPES",
    "CHUNK_TOKENS",
    "Terminated",
    "sigterm_as_exception",
    "atomic_output",
    "temporary_directory",
    "progress_bar",
    "parse_memory",
    "expand_paths",
    "check_path",
    "token_dtype",
    "file_size",
    "raw_chunks",
    "utf8_chunks",
    "text_chunks",
    "read_npz",
    "scalar_field",
]

#: Dtypes of raw token files (``train.bin`` files of nanoGPT are uint16).
TOKEN_DTYPES = ("uint8", "uint16", "uint32")
#: Default tokens (or bytes of text) read per chunk: 16 Mi.
CHUNK_TOKENS = 1 << 24


# ---------------------------------------------------------------------------------------------
# clean exits
# ---------------------------------------------------------------------------------------------


class Terminated(BaseException):
    """Raised in the main thread when the process receives SIGTERM inside
    :func:`sigterm_as_exception`, so ``finally`` blocks and cleanups run (like SIGINT's
    ``KeyboardInterrupt``)."""


def _raise_terminated(signum, frame):
    raise Terminated(f"terminated by signal {signum}")


@contextlib.contextmanager
def sigterm_as_exception(redeliver: bool = True):
    """Turn SIGTERM into :class:`Terminated` for the duration of the block.

    Only where it is safe and not the caller's choice: in the main thread, and only when
    SIGTERM still has its default action (a handler the application installed is left alone).
    Nested uses are fine (the outermost one acts). The signal is handled between Python
    bytecodes, so a long kernel call finishes its current chunk first.

    ``redeliver``: when :class:`Terminated` leaves the block, the default action is restored
    and the signal sent again, so that after the block's cleanups the process ends as SIGTERM
    ends it (status -15 / 143), not with a traceback of a fastgram exception. The command line
    passes False: it reports the signal itself.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    try:
        previous = signal.getsignal(signal.SIGTERM)
    except (ValueError, OSError):  # pragma: no cover - no signals on this platform
        yield
        return
    if previous is not signal.SIG_DFL:
        yield
        return
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    except Terminated:
        if redeliver:
            signal.signal(signal.SIGTERM, previous)
            os.kill(os.getpid(), signal.SIGTERM)  # the default action: the process ends here
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)


def check_output(path, inputs=()) -> str:
    """``path`` as a str once it can be written: its directory exists and is writable, it is
    not a directory, and it is none of ``inputs`` (writing it would destroy one). Raises
    ``FileNotFoundError``, ``IsADirectoryError``, ``PermissionError`` or ``ValueError``; a
    command calls it before its work, not at the rename after it."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"output directory {directory} does not exist")
    if os.path.isdir(path):
        raise IsADirectoryError(f"output {path} is a directory: name a file in it")
    if not os.access(directory, os.W_OK):
        raise PermissionError(f"output {path}: its directory {directory} is not writable")
    if os.path.exists(path):
        for name in inputs:
            if os.path.exists(name) and os.path.samefile(path, name):
                raise ValueError(f"output {path} is also an input ({name}): writing it would destroy the input")
    return path


@contextlib.contextmanager
def atomic_output(path):
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    On any error (``KeyboardInterrupt`` and SIGTERM included) the temporary file is removed and
    ``path`` is left as it was: an output is never half-written.

    Examples
    --------
    >>> import os, tempfile
    >>> from fastgram._io import atomic_output
    >>> out = os.path.join(tempfile.mkdtemp(), "result.txt")
    >>> with atomic_output(out) as tmp:
    ...     _ = open(tmp, "w").write("done")
    >>> open(out).read()
    'done'
    """
    path = check_output(path)
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    with sigterm_as_exception():
        try:
            yield tmp
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise


@contextlib.contextmanager
def temporary_directory(prefix: str, parent=None):
    """A scratch directory under ``parent`` (default: the system's), removed however the block
    ends (errors, ``KeyboardInterrupt`` and SIGTERM included)."""
    if parent is not None and not os.path.isdir(parent):
        raise FileNotFoundError(f"tmp_dir {parent} is not a directory")
    with sigterm_as_exception():
        path = tempfile.mkdtemp(prefix=prefix, dir=parent)
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)


class _NoProgress:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass


def progress_bar(total: int | None, desc: str = "", unit: str = "tok", enabled: bool = True):
    """A tqdm progress bar (rate and ETA), or a do-nothing one when ``enabled`` is false.

    ``total=None`` (a pipe or FIFO of unknown size) shows a count without a percentage.
    Raises ``ModuleNotFoundError`` naming the extra to install when tqdm is missing.
    """
    if not enabled:
        return _NoProgress()
    try:
        from tqdm.auto import tqdm
    except ModuleNotFoundError:
        raise ModuleNotFoundError("progress bars need tqdm: pip install 'fastgram[progress]'") from None
    return tqdm(total=total, desc=desc, unit=unit, unit_scale=True, dynamic_ncols=True)


# ---------------------------------------------------------------------------------------------
# argument checks for files and budgets
# ---------------------------------------------------------------------------------------------


def parse_memory(value, name: str = "max_memory") -> int | None:
    """A memory size in bytes from an int or a string such as ``"512M"``, ``"2G"``, ``"1.5GiB"``.

    ``None`` stays ``None`` (no budget). Suffixes K, M, G, T (optionally with ``B``/``iB``) are
    powers of 1024.

    Examples
    --------
    >>> parse_memory("2G")
    2147483648
    """
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip().upper().removesuffix("IB").removesuffix("B")
        scale = 1
        if text and text[-1] in "KMGT":
            scale = 1024 ** ("KMGT".index(text[-1]) + 1)
            text = text[:-1]
        try:
            number = float(text)
        except ValueError:
            raise ValueError(f"{name} must be a size such as 512M or 2G, got {value!r}") from None
        if not math.isfinite(number) or number <= 0:
            raise ValueError(f"{name} must be positive, got {value!r}")
        return max(int(number * scale), 1)
    return _checks.require_int(value, name, min=1)


def check_path(path, name: str = "path") -> str:
    """``path`` as a str naming an existing file (or FIFO) that can be read, or raise."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a str or os.PathLike, got {type(path).__name__}")
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path}: is a directory, expected a file")
    if not os.access(path, os.R_OK):
        raise PermissionError(f"{path}: file is not readable")
    return path


def expand_paths(paths, name: str = "paths") -> list[str]:
    """Files named by ``paths``, in order, each checked with :func:`check_path`.

    ``paths`` is one path or a list of them; a directory stands for its files sorted by name
    (hidden ``.name`` files skipped); a string with ``*``, ``?`` or ``[`` is a glob pattern
    whose matches are sorted by name. Raises ``FileNotFoundError`` for a missing path or a
    pattern matching nothing and ``ValueError`` when no file is left.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    elif isinstance(paths, bytes) or not hasattr(paths, "__iter__"):
        raise TypeError(f"{name} must be a path or a list of paths, got {type(paths).__name__}")
    files = []
    given = []
    for path in paths:
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"{name} must hold str or os.PathLike, got {type(path).__name__}")
        path = os.fspath(path)
        given.append(path)
        if glob.has_magic(path) and not os.path.exists(path):
            matches = sorted(glob.glob(path))
            if not matches:
                raise FileNotFoundError(f"{path}: no file matches this pattern")
            files += [m for m in matches if not os.path.isdir(m)]
        elif os.path.isdir(path):
            names = sorted(n for n in os.listdir(path) if not n.startswith("."))
            files += [os.path.join(path, n) for n in names if not os.path.isdir(os.path.join(path, n))]
        elif os.path.exists(path):
            files.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or directory")
    if not files:
        raise ValueError(f"{name}: no files found in {given}")
    return [check_path(f) for f in files]


def token_dtype(dtype, name: str = "dtype") -> np.dtype:
    """The dtype of a raw token file: uint8, uint16 or uint32 (native byte order)."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{name} must be one of {', '.join(TOKEN_DTYPES)}, got {dtype!r}") from None
    if dt.kind != "u" or dt.itemsize > 4:
        raise ValueError(f"{name} must be one of {', '.join(TOKEN_DTYPES)}, got {dt}")
    return dt


def file_size(path: str) -> int | None:
    """The size of a regular file in bytes; ``None`` for a FIFO or other stream of unknown size."""
    st = os.stat(path)
    return st.st_size if stat.S_ISREG(st.st_mode) else None


# ---------------------------------------------------------------------------------------------
# chunked readers
# ---------------------------------------------------------------------------------------------


class _SizeWatch:
    """Detects a regular file that grows or shrinks while it is read."""

    def __init__(self, path: str, f):
        self.path = path
        st = os.fstat(f.fileno())
        self.size = st.st_size if stat.S_ISREG(st.st_mode) else None
        self.f = f

    def check(self, read: int, at_end: bool) -> None:
        if self.size is None:
            return
        now = os.fstat(self.f.fileno()).st_size
        if now != self.size or read > self.size or (at_end and read != self.size):
            raise ValueError(
                f"{self.path}: file changed size while being read ({_checks.fmt_int(self.size)} bytes "
                f"when opened, {_checks.fmt_int(now)} now, {_checks.fmt_int(read)} read); counts would be wrong"
            )


def _read_full(f, view: memoryview) -> int:
    """Fill ``view`` from ``f`` unless the stream ends first (pipes return short reads)."""
    got = 0
    while got < len(view):
        n = f.readinto(view[got:])
        if not n:
            break
        got += n
    return got


def _check_whole_tokens(path: str, size: int | None, dtype: np.dtype) -> None:
    """``ValueError`` naming the file when a regular file's ``size`` is not whole tokens."""
    if size is not None and size % dtype.itemsize:
        raise ValueError(
            f"{path}: file size {_checks.fmt_int(size)} bytes is not a multiple of "
            f"{dtype.name}'s {dtype.itemsize} bytes; is dtype right?"
        )


def raw_chunks(path: str, dtype: np.dtype, chunk_tokens: int = CHUNK_TOKENS) -> Iterator[tuple[np.ndarray, int]]:
    """``(ids, bytes read)`` of a raw token file, ``chunk_tokens`` ids at a time.

    The ids share one buffer that the next chunk overwrites. Raises ``ValueError`` when the
    size is not a multiple of the dtype's (checked up front for regular files, at the end for
    streams) or when the file changes size while it is read.
    """
    size = file_size(path)
    _check_whole_tokens(path, size, dtype)
    tokens = chunk_tokens if size is None else max(min(chunk_tokens, size // dtype.itemsize), 1)
    buffer = np.empty(tokens, dtype=dtype)
    raw = memoryview(buffer).cast("B")
    read = 0
    with open(path, "rb", buffering=0) as f:
        watch = _SizeWatch(path, f)
        while True:
            nbytes = _read_full(f, raw)
            read += nbytes
            watch.check(read, at_end=nbytes < len(raw))
            if nbytes % dtype.itemsize:
                raise ValueError(
                    f"{path}: stream ended after {_checks.fmt_int(read)} bytes, not a multiple of "
                    f"{dtype.name}'s {dtype.itemsize} bytes; is dtype right?"
                )
            if nbytes == 0:
                return
            yield buffer[: nbytes // dtype.itemsize], nbytes
            if nbytes < len(raw):
                return


def read_tokens(path: str, dtype: np.dtype) -> np.ndarray:
    """A whole raw token file as a 1-D array: memory-mapped (read-only) when it is a regular
    file, read into memory when it is a FIFO or other stream. Raises ``ValueError`` naming the
    file when its size is not a multiple of the dtype's (as :func:`raw_chunks`)."""
    size = file_size(path)
    if size is not None:
        _check_whole_tokens(path, size, dtype)
        return np.memmap(path, dtype=dtype, mode="r") if size else np.zeros(0, dtype)
    parts = [chunk.copy() for chunk, _ in raw_chunks(path, dtype)]
    return np.concatenate(parts) if parts else np.zeros(0, dtype)


def join_token_files(files: list, dtype: np.dtype, separator: int | None) -> np.ndarray:
    """Raw token files as one stream (each read by :func:`read_tokens`): with a ``separator``,
    one stands between two files unless the stream so far already ends with it (a shard that
    closes its last sentence), so no empty sentence appears at a file's edge; an empty file adds
    nothing. Without one the files are concatenated. Memory: the stream (one file alone stays
    memory-mapped)."""
    arrays = [read_tokens(f, dtype) for f in files]
    if len(arrays) == 1:
        return arrays[0]
    pieces, open_end = [], False
    boundary = None if separator is None else np.array([separator], dtype)
    for a in arrays:
        if not len(a):
            continue
        if open_end:
            pieces.append(boundary)
        pieces.append(a)
        open_end = boundary is not None and int(a[-1]) != separator
    return np.concatenate(pieces) if pieces else np.zeros(0, dtype)


def _decode(decoder, data: bytes, offset: int, path: str, final: bool) -> str:
    pending = len(decoder.getstate()[0])
    try:
        return decoder.decode(data, final=final)
    except UnicodeDecodeError as exc:
        at = offset - pending + exc.start
        raise ValueError(f"{path}: invalid UTF-8 at byte {_checks.fmt_int(at)} ({exc.reason})") from None


def utf8_chunks(path: str, chunk_bytes: int = CHUNK_TOKENS) -> Iterator[tuple[np.ndarray, int]]:
    """``(bytes as uint8 ids, bytes read)`` of a UTF-8 text file, validated as it is read.

    The byte-level tokenisation (V = 256). Raises ``ValueError`` with the byte offset of
    invalid UTF-8, and when the file changes size while it is read.
    """
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    size = file_size(path)
    buffer = np.empty(chunk_bytes if size is None else max(min(chunk_bytes, size), 1), dtype=np.uint8)
    view = memoryview(buffer)
    offset = 0
    with open(path, "rb", buffering=0) as f:
        watch = _SizeWatch(path, f)
        while True:
            n = _read_full(f, view)
            watch.check(offset + n, at_end=n < len(view))
            data = buffer[:n]
            _decode(decoder, data.tobytes(), offset, path, final=n < len(view))
            offset += n
            if n:
                yield data, n
            if n < len(view):
                return


def text_chunks(path: str, chunk_bytes: int = CHUNK_TOKENS) -> Iterator[tuple[str, int]]:
    """``(decoded text, bytes read)`` of a UTF-8 file; characters split across chunks are carried."""
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    offset = 0
    size = file_size(path)
    if size is not None:  # a chunk size past the file's (even 2**100) reads the file at once
        chunk_bytes = max(min(chunk_bytes, size), 1)
    with open(path, "rb") as f:
        watch = _SizeWatch(path, f)
        while True:
            raw = f.read(chunk_bytes)
            watch.check(offset + len(raw), at_end=not raw)
            text = _decode(decoder, raw, offset, path, final=not raw)
            offset += len(raw)
            if text:
                yield text, len(raw)
            if not raw:
                return


# ---------------------------------------------------------------------------------------------
# validated loading
# ---------------------------------------------------------------------------------------------


#: What zipfile and zlib raise for a damaged archive: a bad header, a truncated member, a flipped
#: compression-method field (NotImplementedError) or encryption flag (RuntimeError), bad deflate data.
_DAMAGED = (zipfile.BadZipFile, EOFError, OSError, NotImplementedError, RuntimeError, zlib.error, struct.error)


def read_npz(path: str, required: set, optional: set = frozenset(), what: str = "file") -> dict:
    """Every field of an ``.npz`` as arrays (no pickles), or ``ValueError`` naming the file and
    the field that is missing, unreadable or damaged."""
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ValueError(f"{path}: not an .npz file")
        with data:
            missing = sorted(required - set(data.files))
            if missing:
                raise ValueError(f"{path}: not a fastgram {what} (missing field {missing[0]!r})")
            out = {}
            for name in sorted((required | optional) & set(data.files)):
                try:
                    out[name] = data[name]
                except (*_DAMAGED, ValueError, KeyError) as exc:
                    raise ValueError(f"{path}: field {name!r} is damaged ({type(exc).__name__}: {exc})") from None
            return out
    except _DAMAGED as exc:
        if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError)):
            raise
        raise ValueError(f"{path}: not a readable .npz file ({type(exc).__name__}: {exc})") from None
    except ValueError as exc:
        if str(exc).startswith(path):
            raise
        raise ValueError(f"{path}: not a readable .npz file ({exc})") from None


def scalar_field(path: str, fields: dict, name: str, lo: int | None, hi: int | None) -> int:
    """An integer scalar field in ``[lo, hi]``, or ``ValueError`` naming the file and the field."""
    arr = fields[name]
    if arr.shape != () or arr.dtype.kind not in "iu":
        raise ValueError(f"{path}: field {name!r} must be an integer scalar, got {arr.dtype} of shape {arr.shape}")
    value = int(arr)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ValueError(f"{path}: field {name!r} is {value:,}, outside [{lo}, {hi if hi is not None else 'inf'}]")
    return value
