"""Counting corpora on disk: raw token files, UTF-8 text files, atomic outputs, progress.

Files are read in fixed-size chunks into one reused buffer, so peak memory is one chunk plus
the count table whatever the file's size. (Chunks are read with ``readinto`` rather than
through a memory map: the speed is the same, and the resident memory really is bounded — a
memory map's pages would count towards the process's resident size as the file is read.)
"""

from __future__ import annotations

import codecs
import contextlib
import os
from collections.abc import Iterator

import numpy as np

from fastgram import _checks
from fastgram.counting import BigramCounter
from fastgram.vocab import Vocab

__all__ = [
    "count_file",
    "iter_file_chunks",
    "expand_paths",
    "scan_max",
    "scan_vocab",
    "atomic_output",
    "progress_bar",
    "TOKEN_DTYPES",
]

#: Dtypes of raw token files (``train.bin`` files of nanoGPT are uint16).
TOKEN_DTYPES = ("uint8", "uint16", "uint32")
#: Default tokens (or bytes of text) read per chunk: 16 Mi.
CHUNK_TOKENS = 1 << 24


@contextlib.contextmanager
def atomic_output(path):
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    On any error (``KeyboardInterrupt`` included) the temporary file is removed and ``path``
    is left as it was: an output is never half-written.

    Examples
    --------
    >>> import os, tempfile
    >>> from fastgram.corpus import atomic_output
    >>> out = os.path.join(tempfile.mkdtemp(), "result.txt")
    >>> with atomic_output(out) as tmp:
    ...     _ = open(tmp, "w").write("done")
    >>> open(out).read()
    'done'
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"output directory {directory} does not exist")
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


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

    Raises ``ModuleNotFoundError`` naming the extra to install when tqdm is missing.
    """
    if not enabled:
        return _NoProgress()
    try:
        from tqdm.auto import tqdm
    except ModuleNotFoundError:
        raise ModuleNotFoundError("progress bars need tqdm: pip install 'fastgram[progress]'") from None
    return tqdm(total=total, desc=desc, unit=unit, unit_scale=True, dynamic_ncols=True)


def _check_path(path) -> str:
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path}: is a directory, expected a file")
    return path


def _token_dtype(dtype) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be one of {', '.join(TOKEN_DTYPES)}, got {dtype!r}") from None
    if dt.kind != "u" or dt.itemsize > 4:
        raise ValueError(f"dtype must be one of {', '.join(TOKEN_DTYPES)}, got {dt}")
    return dt


def iter_file_chunks(
    path,
    *,
    dtype=None,
    text: bool = False,
    vocab: Vocab | None = None,
    chunk_tokens: int = CHUNK_TOKENS,
) -> Iterator[np.ndarray]:
    """Yield the token ids of a file in order, one bounded chunk at a time.

    Parameters
    ----------
    path : str or os.PathLike
    dtype : {"uint8", "uint16", "uint32"}, optional
        A raw token file of this dtype (native byte order), e.g. nanoGPT's uint16 ``train.bin``.
    text : bool
        A UTF-8 text file instead, tokenised by ``vocab``: byte-level when ``vocab`` is ``None``
        or ``Vocab.bytes()``, else a character vocabulary (characters split across chunk edges
        are decoded exactly).
    vocab : Vocab, optional
    chunk_tokens : int
        Tokens (raw files) or bytes (text files) read per chunk.

    Yields
    ------
    ndarray, shape (n,)
        Ids of the next chunk. Raw and byte-level chunks share one buffer that the next chunk
        overwrites: copy a chunk to keep it.

    Raises
    ------
    FileNotFoundError, IsADirectoryError
        If ``path`` is missing or a directory.
    ValueError
        If a raw file's size is not a multiple of the dtype's size, if a text file is not valid
        UTF-8 (the message gives the byte offset), or if a character is not in ``vocab``.

    Notes
    -----
    Memory: one chunk (plus, for a character vocabulary, its decoded text and ids).
    """
    path = _check_path(path)
    chunk_tokens = _checks.require_int(chunk_tokens, "chunk_tokens", min=1)
    if text == (dtype is not None):
        raise ValueError("give exactly one of dtype= (a raw token file) or text=True (a UTF-8 text file)")
    if vocab is not None and not isinstance(vocab, Vocab):
        raise TypeError(f"vocab must be a fastgram.Vocab, got {type(vocab).__name__}")
    for ids, _ in _chunks(path, dtype, vocab, chunk_tokens):
        yield ids


def _chunks(path: str, dtype, vocab: Vocab | None, chunk_tokens: int) -> Iterator[tuple[np.ndarray, int]]:
    """``(ids, bytes read for them)`` pairs of a checked path."""
    if dtype is not None:
        return _raw_chunks(path, _token_dtype(dtype), chunk_tokens)
    if vocab is None or vocab.byte_level:
        return _utf8_byte_chunks(path, chunk_tokens)
    return _utf8_char_chunks(path, vocab, chunk_tokens)


def _raw_chunks(path: str, dtype: np.dtype, chunk_tokens: int) -> Iterator[tuple[np.ndarray, int]]:
    size = os.path.getsize(path)
    if size % dtype.itemsize:
        raise ValueError(
            f"{path}: file size {_checks.fmt_int(size)} bytes is not a multiple of "
            f"{dtype.name}'s {dtype.itemsize} bytes; is dtype right?"
        )
    buffer = np.empty(min(chunk_tokens, size // dtype.itemsize), dtype=dtype)
    with open(path, "rb", buffering=0) as f:
        while True:
            n = f.readinto(memoryview(buffer).cast("B")) // dtype.itemsize
            if n == 0:
                return
            yield buffer[:n], n * dtype.itemsize


def _utf8_byte_chunks(path: str, chunk_bytes: int) -> Iterator[tuple[np.ndarray, int]]:
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    buffer = np.empty(min(chunk_bytes, max(os.path.getsize(path), 1)), dtype=np.uint8)
    offset = 0
    with open(path, "rb", buffering=0) as f:
        while True:
            n = f.readinto(memoryview(buffer))
            data = buffer[:n]
            _validate_utf8(decoder, data, offset, path, final=n == 0)
            if n == 0:
                return
            offset += n
            yield data, n


def _validate_utf8(decoder, data: np.ndarray, offset: int, path: str, final: bool) -> str:
    pending = len(decoder.getstate()[0])
    try:
        return decoder.decode(data.tobytes() if data.size else b"", final=final)
    except UnicodeDecodeError as exc:
        at = offset - pending + exc.start
        raise ValueError(f"{path}: invalid UTF-8 at byte {_checks.fmt_int(at)} ({exc.reason})") from None


def _decoded_chunks(path: str, chunk_bytes: int) -> Iterator[tuple[str, int]]:
    """``(text, bytes read)`` of a UTF-8 file, chunk by chunk; split characters are carried."""
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    offset = 0  # bytes read so far
    with open(path, "rb") as f:
        while True:
            raw = f.read(chunk_bytes)
            text = _validate_utf8(decoder, np.frombuffer(raw, np.uint8), offset, path, final=not raw)
            offset += len(raw)
            if text:
                yield text, len(raw)
            if not raw:
                return


def _utf8_char_chunks(path: str, vocab: Vocab, chunk_bytes: int) -> Iterator[tuple[np.ndarray, int]]:
    chars = 0  # characters decoded so far
    for text, nbytes in _decoded_chunks(path, chunk_bytes):
        try:
            ids = vocab._encode(text, chars)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
        chars += len(text)
        yield ids, nbytes


def count_file(
    path,
    *,
    dtype=None,
    text: bool = False,
    vocab: Vocab | None = None,
    vocab_size=None,
    counter: BigramCounter | None = None,
    chunk_tokens: int = CHUNK_TOKENS,
    progress: bool = False,
    max_table_bytes: int = _checks.DENSE_TABLE_BUDGET,
) -> BigramCounter:
    """Count the bigrams of a raw token file or a UTF-8 text file, in bounded memory.

    Parameters
    ----------
    path : str or os.PathLike
    dtype : {"uint8", "uint16", "uint32"}, optional
        Read a raw token file of this dtype (e.g. a uint16 ``train.bin``).
    text : bool
        Read a UTF-8 text file instead: byte-level (V = 256) unless ``vocab`` is a character
        vocabulary.
    vocab : Vocab, optional
        Vocabulary of a text file; saved with the counts.
    vocab_size : int, optional
        V for a raw token file. Default: ``max id + 1``, found by an extra pass over the file.
    counter : BigramCounter, optional
        Continue this counter's stream (the pair joining it to the file is counted) instead of
        starting a new one; e.g. to count several files as one stream.
    chunk_tokens : int
        Tokens (or bytes of text) per chunk; default 16 Mi.
    progress : bool
        Show a progress bar with tokens/s and ETA (needs ``fastgram[progress]``).
    max_table_bytes : int
        Memory budget of the dense table (default 2 GiB).

    Returns
    -------
    BigramCounter
        ``.counts`` is the ``(V, V)`` int64 table, ``.tokens`` the number of tokens read.

    Raises
    ------
    FileNotFoundError, IsADirectoryError
        For a missing file or a directory.
    ValueError
        A raw file whose size is not a multiple of the dtype, invalid UTF-8, a character not in
        ``vocab``, an id outside ``[0, V)`` (with its position in the file), or a table over
        the budget.

    Notes
    -----
    Peak memory: one chunk (32 MiB for uint16 at the default size) plus the table and the
    kernels' scratch, whatever the file size. Time O(file) / threads.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> from fastgram import count_file
    >>> path = os.path.join(tempfile.mkdtemp(), "train.bin")
    >>> np.array([1, 2, 1, 2], np.uint16).tofile(path)
    >>> int(count_file(path, dtype="uint16").counts[1, 2])
    2
    """
    path = _check_path(path)
    if text == (dtype is not None):
        raise ValueError("give exactly one of dtype= (a raw token file) or text=True (a UTF-8 text file)")
    chunk_tokens = _checks.require_int(chunk_tokens, "chunk_tokens", min=1)
    if vocab is not None and not isinstance(vocab, Vocab):
        raise TypeError(f"vocab must be a fastgram.Vocab, got {type(vocab).__name__}")
    if dtype is not None:
        dt = _token_dtype(dtype)
        if counter is not None:
            V = counter.vocab_size
        elif vocab_size is not None:
            V = _checks.require_int(vocab_size, "vocab_size", min=1)
        else:
            V = scan_max(path, dt, chunk_tokens) + 1
        total = os.path.getsize(path) // dt.itemsize
        unit = "tok"
    else:
        if vocab is None:
            vocab = Vocab.bytes()
        V = counter.vocab_size if counter is not None else len(vocab)
        total = os.path.getsize(path)
        unit = "B"
    if counter is None:
        counter = BigramCounter(max(V, 1), vocab=vocab, max_table_bytes=max_table_bytes)
    itemsize = np.dtype(dtype).itemsize if dtype is not None else 1
    with progress_bar(total, os.path.basename(path), unit, enabled=progress) as bar:
        for chunk, nbytes in _chunks(path, dtype, vocab, chunk_tokens):
            try:
                counter.update(chunk)
            except ValueError as exc:
                raise ValueError(f"{path}: {exc}") from None
            bar.update(nbytes // itemsize)
    return counter


def scan_max(path, dtype, chunk_tokens: int = CHUNK_TOKENS) -> int:
    """Largest id in a raw token file (-1 if empty), in one chunked pass."""
    best = -1
    for chunk, _ in _raw_chunks(_check_path(path), _token_dtype(dtype), chunk_tokens):
        best = max(best, _checks.stream_max(chunk))
    return best


def scan_vocab(paths, chunk_bytes: int = CHUNK_TOKENS, unk: str | None = None) -> Vocab:
    """The character vocabulary of UTF-8 text files: their sorted unique characters.

    One chunked pass; memory O(chunk). Raises ``ValueError`` for invalid UTF-8.
    """
    points = np.zeros(0, np.uint32)
    for path in paths:
        for text, _ in _decoded_chunks(_check_path(path), chunk_bytes):
            points = np.union1d(points, np.frombuffer(text.encode("utf-32-le", "surrogatepass"), "<u4"))
    if points.size == 0 and unk is None:
        raise ValueError("no characters in the text files: cannot build a character vocabulary")
    chars = points.astype("<u4").tobytes().decode("utf-32-le", "surrogatepass")
    return Vocab.from_text(chars, unk=unk)


def expand_paths(paths) -> list[str]:
    """Files named by ``paths``, in order; a directory stands for its files, sorted by name.

    Hidden files (``.name``) inside directories are skipped. Raises ``FileNotFoundError`` for
    a missing path and ``ValueError`` when nothing is left.
    """
    if isinstance(paths, (str, bytes, os.PathLike)):
        paths = [paths]
    files = []
    for path in paths:
        path = os.fspath(path)
        if os.path.isdir(path):
            names = sorted(n for n in os.listdir(path) if not n.startswith("."))
            files += [os.path.join(path, n) for n in names if os.path.isfile(os.path.join(path, n))]
        elif os.path.exists(path):
            files.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or directory")
    if not files:
        raise ValueError(f"no files found in {list(map(os.fspath, paths))}")
    return files
