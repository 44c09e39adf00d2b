"""Sparse, exact n-gram counts (1 <= n <= 8) of token arrays and streams given in chunks.

- :func:`count_ngrams` counts an array; :class:`NGramCounter` counts a stream chunk by chunk
  (``update``/``merge``); both return :class:`~fastgram.counting.result.NGramCounts`.
- ``separator=``: a document-boundary id; n-grams containing it are not counted.
- Any ``V <= 2**32`` at any order 1..8, exactly: n-grams whose key space ``V**n`` exceeds 64
  bits are keys of 2-4 uint64 words (``NGramCounts.keys`` of shape (m, K)), never hashes.
- ``max_memory=``: a budget for the working set. Sorted runs that outgrow it are written to a
  temporary directory and merged at the end, as KenLM's counting does; the directory is
  removed when the count ends, fails or is interrupted (SIGINT or SIGTERM).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import weakref

import numpy as np

from fastgram import _checks, _io
from fastgram.counting import _runs
from fastgram.counting.result import NGramCounts, check_compatible

__all__ = ["count_ngrams", "NGramCounter", "BLOCK_TOKENS", "WIDE_BLOCK_TOKENS"]

#: Tokens counted per block when no memory budget is given (~512 MiB of residuals at most).
BLOCK_TOKENS = 1 << 27
#: The same for keys of two to four words, whose rows and counts take about 20 bytes a token
#: for two words while a block is sorted: 8 Mi tokens hold about 170 MB (a block of 2**27 would
#: hold several GB). 255 MB of text counted its word 5-grams as fast in 8 Mi-token blocks as in
#: blocks of 33 M tokens, with 34 MB less at the peak of `fastgram lm`.
WIDE_BLOCK_TOKENS = 1 << 23
#: Smallest block under a memory budget.
MIN_BLOCK_TOKENS = 1 << 16
#: Most entries a merge reads at a time from all its runs together (6 MiB of two-word keys
#: and counts; its buffers take four times that), but at least 4096 from each run.
MERGE_BLOCK = 1 << 18


class NGramCounter:
    """Count the n-grams of a stream given in chunks, in bounded memory.

    ``update`` any number of times; the result equals counting the concatenation of the
    chunks (the ``n - 1`` last tokens are carried across chunk edges, so every n-gram is
    counted once).

    Parameters
    ----------
    n : int
        Order, 1 to 8.
    vocab_size : int
        V; ids must lie in ``[0, V)``. Keys of ``V**n > 2**64`` take several uint64 words
        (``V <= 2**32``; see :mod:`fastgram.counting.result`).
    separator : int, optional
        Document-boundary id: n-grams containing it are not counted.
    max_memory : int or str, optional
        Budget for the working set in bytes (or ``"512M"``, ``"2G"``...). When the sorted runs
        in memory outgrow a quarter of it they are merged and written to a temporary directory
        (under ``tmp_dir``); :meth:`result` merges them block by block. Default: no budget,
        everything stays in memory. Wide keys spill the same way (``8 (K + 1)`` bytes per
        entry).
    tmp_dir : str, optional
        Where the temporary directory goes (default: the system's).
    vocab : Vocab, optional
        The vocabulary of the ids, passed on to the result.

    Raises
    ------
    ValueError
        For ``n`` outside 1..8, ``V**n > 2**64`` with ``V > 2**32``, a separator outside
        ``[0, V)`` or a bad budget.

    Notes
    -----
    Memory: one block of tokens (at most ``max_memory / (48 K)`` tokens, and at most
    :data:`BLOCK_TOKENS`, or :data:`WIDE_BLOCK_TOKENS` for keys of ``K > 1`` words; 4-8 bytes
    of residuals and up to 16 bytes of output each; with ``K``-word keys ``8 K`` bytes of rows
    per token, the longest bucket's sort buffer per thread and ``8 (K + 1)`` bytes per distinct
    n-gram) plus the in-memory runs (16 bytes per distinct n-gram of each run; at most
    ``max_memory / 4`` before spilling); the final merge reads the runs in blocks of
    ``max_memory / (8 * runs)`` bytes each (at most :data:`MERGE_BLOCK` entries from all runs
    together), plus the (pruned) result. Time O(N) per block plus O(D log R) for merging R runs
    of D distinct n-grams. The temporary directory is removed by
    :meth:`close`, on leaving a ``with`` block (errors and ``KeyboardInterrupt`` included), or
    when the counter is garbage-collected.

    Examples
    --------
    >>> import numpy as np
    >>> from fastgram import NGramCounter
    >>> with NGramCounter(3, 10) as counter:
    ...     counter.update(np.array([1, 2, 3]))
    ...     counter.update(np.array([1, 2, 3]))
    ...     c = counter.result()
    >>> c.ngrams.tolist(), c.counts.tolist()
    ([[1, 2, 3], [2, 3, 1], [3, 1, 2]], [2, 1, 1])
    """

    def __init__(self, n, vocab_size, *, separator=None, max_memory=None, tmp_dir=None, vocab=None):
        self.n = _checks.check_order(n)
        self.vocab_size = _checks.check_vocab_size(vocab_size)
        self.vocab = vocab
        self.words = _checks.key_words(self.vocab_size, self.n)
        self._entry_bytes = 8 * (self.words + 1)  # a key's words and its count
        self._gstart = _runs.key_groups(self.vocab_size, self.n, self.words)
        self.separator = _checks.check_separator(separator, self.vocab_size)
        self.max_memory = _io.parse_memory(max_memory)
        if tmp_dir is not None and not os.path.isdir(tmp_dir):
            raise FileNotFoundError(f"tmp_dir {tmp_dir} is not a directory")
        self.tmp_dir = tmp_dir
        self.tokens = 0
        self._sep = self.vocab_size if self.separator is None else self.separator
        self._tail = np.zeros(0, np.uint64)  # the last n - 1 tokens of the stream
        self._runs: list[tuple[np.ndarray, np.ndarray]] = []
        self._edges: list[tuple[np.ndarray, np.ndarray]] = []  # tiny runs across chunk edges
        self._spilled: list[tuple[str, int]] = []
        self._dir: str | None = None
        self._cleanup = None
        # a budget only ever shrinks a block below the size counted without one: a large budget
        # lets more runs stay in memory, not sort blocks of several GB
        self.block_tokens = BLOCK_TOKENS if self.words == 1 else WIDE_BLOCK_TOKENS
        if self.max_memory is not None:
            per_token = 48 * self.words  # residuals or rows, sort buffers, output
            self.block_tokens = int(min(self.block_tokens, max(MIN_BLOCK_TOKENS, self.max_memory // per_token)))

    # -- context management -----------------------------------------------------------------

    def __enter__(self):
        # SIGTERM inside the block raises, so the spill directory is removed as on SIGINT
        self._signals = contextlib.ExitStack()
        self._signals.enter_context(_io.sigterm_as_exception())
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.close()
        finally:
            self._signals.close()

    def close(self) -> None:
        """Remove the temporary directory of spilled runs (if any); in-memory state is kept."""
        if self._cleanup is not None:
            self._cleanup()
            self._cleanup = None
            self._dir = None
            self._spilled = []

    @property
    def spilled_runs(self) -> int:
        """How many sorted runs are on disk now."""
        return len(self._spilled)

    # -- counting ---------------------------------------------------------------------------

    def update(self, chunk) -> None:
        """Count the n-grams of ``chunk`` and those joining it to the stream so far.

        Raises ``ValueError`` naming the first id outside ``[0, V)`` (position in the whole
        stream); nothing of a rejected chunk is counted.
        """
        arr = _checks.as_token_stream(chunk, "chunk")
        _checks.check_token_range(arr, self.vocab_size, name="chunk", offset=self.tokens)
        step = self.block_tokens if not _checks.needs_chunked_copy(arr) else min(self.block_tokens, 1 << 24)
        for lo in range(0, arr.shape[0], step):
            self._add_view(_checks.kernel_view(arr[lo : lo + step]))
        self.tokens += arr.shape[0]

    def _count(self, view: np.ndarray):
        if self.words == 1:
            return _runs.count_block(view, self.n, self.vocab_size, self._sep)
        return _runs.count_block_wide(view, self.n, self.vocab_size, self._sep, self._gstart)

    def _add_view(self, view: np.ndarray) -> None:
        n = self.n
        if n > 1 and len(self._tail):
            # the n-grams starting in the carried tail and ending in this view
            edge = np.concatenate([self._tail, view[: n - 1].astype(np.uint64)])
            run = self._count(edge)
            if len(run[0]):
                self._edges.append(run)
            if len(self._edges) >= 256:
                self._flush_edges()
        self._add_run(self._count(view))
        if n > 1:
            joined = view[-(n - 1) :].astype(np.uint64)
            if len(joined) < n - 1:
                joined = np.concatenate([self._tail, joined])[-(n - 1) :]
            self._tail = joined

    def _flush_edges(self) -> None:
        """Merge the tiny runs of chunk edges into one (kept apart so big runs are not recopied)."""
        if self._edges:
            run = _runs.merge_all(self._edges, self.words)
            self._edges = []
            self._add_run(run)

    def _add_run(self, run) -> None:
        if len(run[0]) == 0:
            return
        self._runs.append(run)
        # keep run sizes decreasing geometrically: O(D log R) merging in total
        while len(self._runs) > 1 and len(self._runs[-2][0]) <= 2 * len(self._runs[-1][0]):
            b = self._runs.pop()
            a = self._runs.pop()
            self._runs.append(_runs.merge_pair(a, b))
        in_memory = self._entry_bytes * sum(len(r[0]) for r in self._runs)
        if self.max_memory is not None and in_memory > self.max_memory // 4:
            self._spill()

    def _spill(self) -> None:
        keys, counts = _runs.merge_all(self._runs)
        self._runs = []
        if self._dir is None:
            self._dir = tempfile.mkdtemp(prefix="fastgram-ngrams-", dir=self.tmp_dir)
            self._cleanup = weakref.finalize(self, shutil.rmtree, self._dir, ignore_errors=True)
        stem = os.path.join(self._dir, f"run-{len(self._spilled):05d}")
        keys.tofile(stem + ".keys")
        counts.tofile(stem + ".counts")
        self._spilled.append((stem, len(keys)))

    def merge(self, other) -> "NGramCounter":
        """Add the counts of another counter (or an :class:`NGramCounts`); returns ``self``.

        No n-gram joins the two streams; this counter's tail (for its next ``update``) is kept.
        """
        if isinstance(other, NGramCounter):
            other_counts = other.result()
        elif isinstance(other, NGramCounts):
            other_counts = other
        else:
            raise TypeError(f"other must be an NGramCounter or NGramCounts, got {type(other).__name__}")
        check_compatible(self, other_counts)
        self._add_run((other_counts.keys, other_counts.counts))
        self.tokens += other_counts.tokens
        return self

    def result_blocks(self, min_count: int = 1):
        """Yield the counts so far as ``(keys, counts)`` blocks in key order, pruned to
        ``min_count``: what :meth:`result` holds, without holding it (with spilled runs or
        several runs in memory, each block is a bounded merge step, so no merged copy of the
        in-memory runs is made; with one run, that run)."""
        min_count = _checks.require_min_count(min_count)
        self._flush_edges()
        if not self._spilled and len(self._runs) <= 1:
            yield _runs.prune_runs(*_runs.merge_all(self._runs, self.words), min_count)
            return
        sources = [_runs.RunReader(stem, length, self.words) for stem, length in self._spilled]
        sources += [_runs.MemoryRun(*run) for run in self._runs]
        yield from _runs.iter_merge(sources, self._merge_block(len(sources)), min_count, self.words)

    def _merge_block(self, sources: int) -> int:
        """Entries read from each of ``sources`` runs at a time: within the memory budget, and
        :data:`MERGE_BLOCK` from all of them together (a merge's buffers take ``4 * sources``
        blocks)."""
        budget = self.max_memory or (256 << 20)
        return max(4096, min(MERGE_BLOCK, budget // (8 * self._entry_bytes)) // sources)

    def result(self, min_count: int = 1) -> NGramCounts:
        """The counts so far, pruned to n-grams seen at least ``min_count`` times.

        With spilled runs, merges them block by block (memory: the blocks plus the pruned
        result). The counter can keep counting afterwards.
        """
        min_count = _checks.require_min_count(min_count)
        self._flush_edges()
        if not self._spilled:
            keys, counts = _runs.prune_runs(*_runs.merge_all(self._runs, self.words), min_count)
        else:
            sources = [_runs.RunReader(stem, length, self.words) for stem, length in self._spilled]
            sources += [_runs.MemoryRun(*run) for run in self._runs]
            keys, counts = _runs.merge_sources(sources, self._merge_block(len(sources)), min_count, self.words)
        return NGramCounts(
            keys,
            counts,
            self.n,
            self.vocab_size,
            separator=self.separator,
            tokens=self.tokens,
            vocab=self.vocab,
            validate=False,
        )

    def __repr__(self) -> str:
        return (
            f"NGramCounter(n={self.n}, vocab_size={_checks.fmt_int(self.vocab_size)}, "
            f"tokens={_checks.fmt_int(self.tokens)}, spilled_runs={self.spilled_runs})"
        )


def count_ngrams(
    tokens, n, vocab_size=None, *, separator=None, min_count: int = 1, max_memory=None, tmp_dir=None
) -> NGramCounts:
    """Exact counts of the distinct n-grams of a token stream, as a sparse sorted result.

    Parameters
    ----------
    tokens : array_like of int, shape (N,)
        Any integer dtype, byte order or strides (``np.memmap`` included); no O(N) copy or
        upcast of the stream.
    n : int
        Order, 1 <= n <= 8.
    vocab_size : int, optional
        V; ids must lie in ``[0, V)``. Default ``max(tokens) + 1``.
    separator : int, optional
        A document-boundary id in ``[0, V)``: n-grams containing it (the separator itself,
        for n = 1) are not counted. Insert start/end tokens yourself for makemore-style
        boundary n-grams.
    min_count : int
        Keep only n-grams seen at least this often.
    max_memory : int or str, optional
        Working-set budget (bytes, or ``"512M"``/``"2G"``); sorted runs beyond it spill to a
        temporary directory under ``tmp_dir`` and are merged at the end. See
        :class:`NGramCounter`.
    tmp_dir : str, optional

    Returns
    -------
    NGramCounts
        ``.ngrams`` (m, n) in lexicographic order, ``.counts`` int64.

    Raises
    ------
    TypeError
        For non-integer tokens.
    ValueError
        For ``n`` outside 1..8, an id outside ``[0, V)`` (its position and value),
        ``V**n > 2**64`` with ``V > 2**32``, or a separator outside ``[0, V)``.

    Notes
    -----
    Keys are partitioned by their high bits into cache-sized buckets (two passes over the
    stream: histogram, scatter), each bucket is radix- or counting-sorted, and runs are
    encoded: O(N) time, multi-core, identical for any thread count. Extra memory without a
    budget: 4 (or 8, for keys over 2**52) bytes per token for blocks of up to 2**27 tokens,
    plus 16 bytes per distinct n-gram. When ``V**n > 2**64`` the keys take ``K`` = 2..4
    uint64 words (``.keys`` of shape (m, K)): each window's rows are bucketed the same way and
    each bucket MSD-radix-sorted; ``8 K`` bytes per token for blocks of up to 2**23 tokens,
    plus ``8 (K + 1)`` per distinct n-gram.

    Examples
    --------
    >>> import numpy as np
    >>> from fastgram import count_ngrams
    >>> c = count_ngrams(np.array([5, 1, 2, 0, 1, 2], np.uint8), 2, separator=0)
    >>> c.ngrams.tolist(), c.counts.tolist()
    ([[1, 2], [5, 1]], [2, 1])
    """
    n = _checks.check_order(n)
    tokens = _checks.as_token_stream(tokens)
    V = _checks.resolve_vocab_size(tokens, vocab_size)
    V = max(V, 1)
    _checks.key_words(V, n)
    with NGramCounter(n, V, separator=separator, max_memory=max_memory, tmp_dir=tmp_dir) as counter:
        try:
            counter.update(tokens)
        except ValueError as exc:
            raise ValueError(str(exc).replace("chunk:", "tokens:", 1)) from None
        return counter.result(min_count)
