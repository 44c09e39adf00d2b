"""Counting corpora on disk: raw token files, UTF-8 text files and directories of shards.

:func:`count_files` and :func:`count_file` share one contract: they read files in bounded
chunks (:mod:`fastgram._io`) as one stream and return :class:`~fastgram.NGramCounts`, whatever
the order or vocabulary. Bigrams over a small vocabulary are counted in a dense table (the
fastest kernel) and returned in the same sparse form.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import numpy as np

from fastgram import _checks, _io, distributed
from fastgram.counting.dense import BigramCounter
from fastgram.counting.result import NGramCounts
from fastgram.counting.sparse import NGramCounter
from fastgram.vocab import Vocab

__all__ = ["count_files", "count_file", "iter_file_chunks", "scan_max", "scan_vocab", "DENSE_FILE_TABLE"]

#: Bigrams of files are counted in a dense table when it takes at most this many bytes (and a
#: quarter of ``max_memory``): V <= 8,192.
DENSE_FILE_TABLE = 512 << 20


def _check_kind(dtype, text, vocab) -> tuple[np.dtype | None, Vocab | None]:
    if not isinstance(text, (bool, np.bool_)):  # 1 == True: an int would pass a value test
        raise TypeError(f"text must be True or False, got {type(text).__name__} {text!r}")
    if vocab is not None and not isinstance(vocab, Vocab):
        raise TypeError(f"vocab must be a fastgram.Vocab, got {type(vocab).__name__}")
    if vocab is not None and dtype is None:
        text = True  # a vocabulary implies text
    if text == (dtype is not None):
        raise ValueError("give exactly one of dtype= (raw token files) or text=True (UTF-8 text files)")
    if dtype is not None:
        if vocab is not None:
            raise ValueError("vocab= applies to text files; raw token files take vocab_size=")
        return _io.token_dtype(dtype), None
    return None, Vocab.bytes() if vocab is None else vocab


def _file_chunks(path: str, dtype, vocab: Vocab | None, chunk_tokens: int) -> Iterator[tuple[np.ndarray, int]]:
    """``(ids, bytes read for them)`` of a checked path."""
    if dtype is not None:
        yield from _io.raw_chunks(path, dtype, chunk_tokens)
    elif vocab.byte_level:
        yield from _io.utf8_chunks(path, chunk_tokens)
    else:
        chars = 0  # characters decoded so far
        for text, nbytes in _io.text_chunks(path, chunk_tokens):
            try:
                ids = vocab._encode(text, chars)
            except ValueError as exc:
                raise ValueError(f"{path}: {exc}") from None
            chars += len(text)
            yield ids, nbytes


def iter_file_chunks(
    path, *, dtype=None, text: bool = False, vocab: Vocab | None = None, chunk_tokens=_io.CHUNK_TOKENS
):
    """Yield the token ids of a file in order, one bounded chunk at a time.

    Parameters
    ----------
    path : str or os.PathLike
        A file or a FIFO.
    dtype : {"uint8", "uint16", "uint32"}, optional
        A raw token file of this dtype (native byte order), e.g. nanoGPT's uint16 ``train.bin``.
    text : bool
        A UTF-8 text file instead, tokenised by ``vocab``: byte-level when ``vocab`` is ``None``
        or ``Vocab.bytes()``, else a character vocabulary (characters split across chunk edges
        are decoded exactly). Giving ``vocab`` implies ``text=True``.
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
    FileNotFoundError, IsADirectoryError, PermissionError
        If ``path`` is missing, a directory or unreadable.
    ValueError
        If a raw file's size is not a multiple of the dtype's size, if a text file is not valid
        UTF-8 (the message gives the byte offset), if a character is not in ``vocab``, or if
        the file changes size while it is read.

    Notes
    -----
    Memory: one chunk (plus, for a character vocabulary, its decoded text and ids).
    """
    path = _io.check_path(path)
    chunk_tokens = _checks.require_int(chunk_tokens, "chunk_tokens", min=1)
    dtype, vocab = _check_kind(dtype, text, vocab)
    for ids, _ in _file_chunks(path, dtype, vocab, chunk_tokens):
        yield ids


def count_files(
    paths,
    n: int = 2,
    *,
    dtype=None,
    text: bool = False,
    vocab: Vocab | None = None,
    vocab_size=None,
    separator=None,
    min_count: int = 1,
    max_memory=None,
    tmp_dir=None,
    chunk_tokens=_io.CHUNK_TOKENS,
    progress: bool = False,
    out=None,
    client=None,
) -> NGramCounts | distributed.NGramStore:
    """Count the n-grams of files (shards) as one stream, in bounded memory.

    Parameters
    ----------
    paths : str, os.PathLike or list of them
        Files in order, directories (their files sorted by name) or glob patterns
        (``"shards/*.bin"``, matches sorted by name). FIFOs are read to their end.
    n : int
        Order, 1 to 8 (default 2).
    dtype : {"uint8", "uint16", "uint32"}, optional
        Raw token files of this dtype. Exactly one of ``dtype`` and ``text`` (or ``vocab``).
    text : bool
        UTF-8 text files, byte-level unless ``vocab`` is a character :class:`~fastgram.Vocab`.
    vocab : Vocab, optional
        The vocabulary of text files (implies ``text=True``); kept in the result.
    vocab_size : int, optional
        V of raw token files; default ``max id + 1`` (one extra pass over the files).
    separator : int, optional
        Document-boundary id; it is also put between shards, so no n-gram spans two files.
        Without it the shards are counted as their concatenation.
    min_count : int
        Keep only n-grams seen at least this often.
    max_memory : int or str, optional
        Working-set budget (bytes, or ``"512M"``/``"2G"``); sorted runs beyond it spill to a
        temporary directory under ``tmp_dir``, removed however the count ends.
    tmp_dir : str, optional
    chunk_tokens : int
        Tokens (or bytes of text) read per chunk (default 16 Mi).
    progress : bool
        One progress bar over all files (needs ``fastgram[progress]``); it reaches 100% when
        the counts are final. With ``out=``, one bar per stage, advancing per task.
    out : str or os.PathLike, optional
        Write the counts as an :class:`~fastgram.NGramStore` into this new or empty directory
        (sorted key-range partitions, ``manifest.json`` written last) and return the store:
        the counts never have to fit in memory. In one process, each file (or range of
        ``fastgram.distributed.TASK_TOKENS`` tokens, fewer under ``max_memory``) becomes one
        sorted run and the runs are merged partition by partition, each partition in memory
        at most. Regular files only. See :mod:`fastgram.distributed`.
    client : dask.distributed.Client, optional
        Count on this Dask cluster (needs ``out=``, ``fastgram[dask]``): the workers count
        the files (or ranges of them), shuffle the sorted runs by key range and merge each
        partition; the client holds no counts. ``out`` must be on a filesystem that the
        client and every worker share. The result equals the in-process count.

    Returns
    -------
    NGramCounts or NGramStore
        ``.vocab`` is the text vocabulary (``None`` for raw token files). An
        :class:`~fastgram.NGramStore` with ``out=``.

    Raises
    ------
    FileNotFoundError, IsADirectoryError, PermissionError
        A missing, unreadable or directory path (checked before counting starts), or a
        pattern matching nothing.
    ValueError
        An id outside ``[0, V)`` (the file and the position in it), a raw file whose size is
        not a multiple of the dtype, invalid UTF-8, a file that changes size while it is read.

    Notes
    -----
    Memory: one chunk plus the counter's working set (:class:`~fastgram.NGramCounter`), or,
    for bigrams with ``8 V**2 <= 512 MiB`` (and a quarter of ``max_memory``), the dense table.
    Time O(total tokens) / threads.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> from fastgram import count_files
    >>> d = tempfile.mkdtemp()
    >>> np.array([1, 2, 3], np.uint16).tofile(os.path.join(d, "a.bin"))
    >>> np.array([1, 2], np.uint16).tofile(os.path.join(d, "b.bin"))
    >>> count_files(os.path.join(d, "*.bin"), 2, dtype="uint16").counts.tolist()
    [2, 1, 1]
    """
    n = _checks.check_order(n)
    files = _io.expand_paths(paths)
    dtype, vocab = _check_kind(dtype, text, vocab)
    chunk_tokens = _checks.require_int(chunk_tokens, "chunk_tokens", min=1)
    min_count = _checks.require_min_count(min_count)
    budget = _io.parse_memory(max_memory)
    if client is not None and out is None:
        raise ValueError("client= needs out=DIR: a directory on a filesystem that the client and every worker share")
    if out is not None:
        return distributed.count_to_store(
            files, n, dtype=dtype, vocab=vocab, vocab_size=vocab_size, separator=separator, min_count=min_count,
            max_memory=budget, chunk_tokens=chunk_tokens, progress=progress, out=out, client=client, tmp_dir=tmp_dir,
        )  # fmt: skip
    sizes = [_io.file_size(p) for p in files]
    if None in sizes and dtype is not None and vocab_size is None:
        stream = files[sizes.index(None)]
        raise ValueError(f"{stream}: a FIFO or stream can be read only once; give vocab_size=")
    if dtype is not None:
        V = (
            _checks.check_vocab_size(vocab_size)
            if vocab_size is not None
            else max(scan_max(files, dtype, chunk_tokens) + 1, 1)
        )
        itemsize, unit = dtype.itemsize, "tok"
    else:
        V = len(vocab) if vocab_size is None else _checks.check_vocab_size(vocab_size)
        if V < len(vocab):
            raise ValueError(f"vocab_size={V:,} is smaller than the vocabulary's {len(vocab):,} ids")
        itemsize, unit = 1, "B"
    _checks.key_words(V, n)  # one or more uint64 words per key (wide keys past 64 bits)
    separator = _checks.check_separator(separator, V)
    total = None if None in sizes else sum(sizes) // itemsize
    dense = n == 2 and 8 * V * V <= min(DENSE_FILE_TABLE, (budget or DENSE_FILE_TABLE * 4) // 4)
    desc = os.path.basename(files[0]) if len(files) == 1 else f"{len(files)} files"
    with contextlib.ExitStack() as stack:
        stack.enter_context(_io.sigterm_as_exception())
        bar = stack.enter_context(_io.progress_bar(total, desc, unit, enabled=progress))
        if dense:
            counter = BigramCounter(V)
        else:
            counter = stack.enter_context(
                NGramCounter(n, V, separator=separator, max_memory=budget, tmp_dir=tmp_dir, vocab=vocab)
            )
        shown = 0  # units on the bar; the last one waits for the final merge
        for index, path in enumerate(files):
            if index and separator is not None:
                counter.update(np.array([separator], dtype=np.uint64))
            start = counter.tokens
            for chunk, nbytes in _file_chunks(path, dtype, vocab, chunk_tokens):
                try:
                    counter.update(chunk)
                except ValueError as exc:
                    raise ValueError(f"{path}: {_shift_position(str(exc), start)}") from None
                step = nbytes // itemsize if total is None else min(nbytes // itemsize, total - 1 - shown)
                if step > 0:
                    bar.update(step)
                    shown += step
        result = _bigram_result(counter, separator, vocab) if dense else counter.result(min_count)
        if dense and min_count > 1:
            result = result.prune(min_count)
        if total is None:
            bar.total = shown
        elif total > shown:
            bar.update(total - shown)
    return result


def _bigram_result(counter: BigramCounter, separator, vocab) -> NGramCounts:
    """A dense counter's table as sparse counts; pairs with the separator are not n-grams."""
    table = np.array(counter.counts)
    if separator is not None:
        table[separator, :] = 0
        table[:, separator] = 0
    return NGramCounts.from_dense(table, separator=separator, tokens=counter.tokens, vocab=vocab)


def _shift_position(message: str, start: int) -> str:
    """Rewrite ``chunk: ... at position P`` (in the whole stream) with the position in the file."""
    message = message.removeprefix("chunk: ")
    head, sep, rest = message.partition(" at position ")
    if not sep:
        return message
    digits, _, tail = rest.partition(" ")
    try:
        pos = int(digits.replace(",", "")) - start
    except ValueError:
        return message
    return f"{head} at position {_checks.fmt_int(pos)} {tail}"


def count_file(path, n: int = 2, **options) -> NGramCounts:
    """Count the n-grams of one raw token file or UTF-8 text file.

    The same contract as :func:`count_files` (same options, same result) for one path.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> from fastgram import count_file
    >>> path = os.path.join(tempfile.mkdtemp(), "train.bin")
    >>> np.array([1, 2, 1, 2], np.uint16).tofile(path)
    >>> count_file(path, 3, dtype="uint16").counts.tolist()
    [1, 1]
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be one str or os.PathLike (count_files takes several), got {type(path).__name__}")
    return count_files([_io.check_path(path)], n, **options)


def scan_max(paths, dtype, chunk_tokens: int = _io.CHUNK_TOKENS) -> int:
    """Largest id in raw token files (-1 if all are empty), in one chunked pass."""
    dtype = _io.token_dtype(dtype)
    best = -1
    for path in _io.expand_paths(paths):
        for chunk, _ in _io.raw_chunks(path, dtype, chunk_tokens):
            best = max(best, _checks.stream_max(chunk))
    return best


def scan_vocab(paths, *, chunk_tokens: int = _io.CHUNK_TOKENS, unk: str | None = None) -> Vocab:
    """The character vocabulary of UTF-8 text files: their sorted unique characters.

    One chunked pass; memory O(chunk). Raises ``ValueError`` for invalid UTF-8 or files
    without any character (unless ``unk`` is given).
    """
    points = np.zeros(0, np.uint32)
    for path in _io.expand_paths(paths):
        for text, _ in _io.text_chunks(path, chunk_tokens):
            points = np.union1d(points, np.frombuffer(text.encode("utf-32-le", "surrogatepass"), "<u4"))
    if points.size == 0 and unk is None:
        raise ValueError("no characters in the text files: cannot build a character vocabulary")
    chars = points.astype("<u4").tobytes().decode("utf-32-le", "surrogatepass")
    return Vocab.from_text(chars, unk=unk)
