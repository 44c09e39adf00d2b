"""Exact bigram counts of integer token streams: arrays, chunks and streaming counters.

The public functions check their inputs, then hand C-contiguous unsigned views to the kernels
in :mod:`fastgram.kernels.counting`. Streams of any integer dtype, byte order and strides are
accepted (``np.memmap`` included) without an O(N) copy: only byte-swapped or strided streams
are converted, a bounded chunk at a time.
"""

from __future__ import annotations

import os

import numpy as np

from fastgram import _checks
from fastgram._jit import num_threads, parallel_guard
from fastgram.kernels import counting as _k

__all__ = ["count_bigrams", "BigramCounter"]


def count_bigrams(
    tokens, vocab_size=None, *, max_table_bytes: int = _checks.DENSE_TABLE_BUDGET, sparse: bool | None = None
):
    """Count consecutive token pairs: ``counts[a, b]`` = #{i : tokens[i] = a, tokens[i+1] = b}.

    Parameters
    ----------
    tokens : array_like of int, shape (N,)
        Token ids, any integer dtype (signed or unsigned, either byte order, strided views and
        ``np.memmap`` included). Never upcast or copied whole.
    vocab_size : int, optional
        V, the table size. Default ``max(tokens) + 1`` (0 for an empty stream).
    max_table_bytes : int, optional
        Memory budget for the dense ``(V, V)`` int64 table (default 2 GiB, so V <= 16,384).
    sparse : bool or None, optional
        ``None`` (default): the dense table when it fits ``max_table_bytes``, sparse counts
        otherwise. ``False``: always the dense table (``ValueError`` over the budget).
        ``True``: always sparse counts (:func:`fastgram.count_ngrams` with n = 2).

    Returns
    -------
    counts : ndarray of int64, shape (V, V), or NGramCounts
        Exact counts; they sum to ``max(N - 1, 0)``. An :class:`~fastgram.NGramCounts` (sorted
        distinct bigrams and their counts; 16 bytes per distinct bigram) when counted sparsely.

    Raises
    ------
    TypeError
        If ``tokens`` is not an integer array or ``vocab_size`` not an integer.
    ValueError
        If ``tokens`` is not 1-D, an id lies outside ``[0, V)`` (the message names the first
        bad position and value), or, with ``sparse=False``, the table would exceed
        ``max_table_bytes``.

    Notes
    -----
    Time O(N / threads). Extra memory O(V^2): the table, plus per-thread copies of it when it
    is at most 1 MiB (V <= 362); for larger V, 2 bytes of keys per pair of a round of about
    V^2 pairs (a quarter of the table's size at most) and 256 KiB per thread. Results are
    identical for any number of threads (``numba.set_num_threads``).

    Examples
    --------
    >>> import numpy as np, fastgram
    >>> fastgram.count_bigrams(np.array([0, 1, 1, 0], np.uint8))
    array([[0, 1],
           [1, 1]])
    """
    tokens = _checks.as_token_stream(tokens)
    V = _checks.resolve_vocab_size(tokens, vocab_size)
    max_table_bytes = _checks.require_int(max_table_bytes, "max_table_bytes", min=0)
    if sparse not in (None, True, False):
        raise TypeError(f"sparse must be True, False or None, got {sparse!r}")
    if sparse is None:
        try:
            _checks.check_dense_table(V, max_table_bytes)
            sparse = False
        except ValueError:
            sparse = True
    if sparse:
        from fastgram.ngrams import count_ngrams

        return count_ngrams(tokens, 2, max(V, 1))
    _checks.check_dense_table(V, max_table_bytes)
    _checks.check_token_range(tokens, V)
    counts = np.zeros((V, V), np.int64)
    add_bigrams(tokens, counts)
    return counts


def add_bigrams(tokens: np.ndarray, counts: np.ndarray) -> None:
    """Add the bigram counts of a checked stream to ``counts`` (V, V) int64, in place.

    ``tokens`` must be 1-D, integer and within ``[0, V)``: callers check first. Byte-swapped
    or strided streams are converted one chunk at a time; chunks overlap by one token so each
    pair is counted exactly once.
    """
    if tokens.shape[0] < 2:
        return
    if not _checks.needs_chunked_copy(tokens):
        _count_view(tokens.view(np.dtype(f"u{tokens.dtype.itemsize}")), counts)
        return
    step = _checks.SCAN_CHUNK
    for lo in range(0, tokens.shape[0] - 1, step):
        _count_view(_checks.kernel_view(tokens[lo : lo + step + 1]), counts)


def _count_view(view: np.ndarray, counts: np.ndarray) -> None:
    V = counts.shape[0]
    with parallel_guard():
        if counts.nbytes <= _k.PRIVATE_TABLE_BYTES:
            _k.bigram_counts_private(view, V, counts, num_threads())
        else:
            _k.bigram_counts_partitioned(
                view, V, _k.block_shift_for(V), counts.reshape(-1), num_threads(), _k.round_pairs_for(V)
            )


class BigramCounter:
    """Bigram counts of a stream that arrives in chunks.

    ``update`` may be called any number of times; the result equals :func:`count_bigrams` of
    the concatenation of all chunks (the pair across each chunk edge is counted once).

    Parameters
    ----------
    vocab_size : int
        V; every id must lie in ``[0, V)``.
    vocab : fastgram.Vocab, optional
        The vocabulary the ids come from; saved with the counts so they can be decoded later.
    max_table_bytes : int, optional
        Memory budget for the ``(V, V)`` int64 table (default 2 GiB).

    Attributes
    ----------
    vocab_size : int
    tokens : int
        Number of tokens seen.
    vocab : fastgram.Vocab or None

    Notes
    -----
    Memory O(V^2): the table (``8 V^2`` bytes) plus the kernels' scratch; nothing grows with the
    number of tokens.

    Examples
    --------
    >>> import numpy as np
    >>> from fastgram import BigramCounter, count_bigrams
    >>> c = BigramCounter(3)
    >>> c.update(np.array([0, 1], np.uint8)); c.update(np.array([2, 0], np.uint8))
    >>> bool((c.counts == count_bigrams(np.array([0, 1, 2, 0]), 3)).all())
    True
    """

    def __init__(self, vocab_size, *, vocab=None, max_table_bytes: int = _checks.DENSE_TABLE_BUDGET):
        V = _checks.require_int(vocab_size, "vocab_size", min=1)
        _checks.check_dense_table(V, _checks.require_int(max_table_bytes, "max_table_bytes", min=0))
        if vocab is not None and len(vocab) > V:
            raise ValueError(
                f"vocab has {_checks.fmt_int(len(vocab))} entries, more than vocab_size={_checks.fmt_int(V)}"
            )
        self.vocab_size = V
        self.vocab = vocab
        self.tokens = 0
        self._counts = np.zeros((V, V), np.int64)
        self._last = -1  # last token of the stream so far, -1 before the first

    @property
    def counts(self) -> np.ndarray:
        """The ``(V, V)`` int64 counts so far (a read-only view; copy it to modify)."""
        view = self._counts.view()
        view.flags.writeable = False
        return view

    @property
    def last_token(self) -> int | None:
        """The last token seen (the left half of the next chunk-edge pair), or ``None``."""
        return None if self._last < 0 else self._last

    def update(self, chunk) -> None:
        """Count the pairs of ``chunk`` and the pair joining it to the previous chunk.

        Raises ``TypeError``/``ValueError`` as :func:`count_bigrams`; positions in messages are
        positions in the whole stream. On error the counter is left unchanged.
        """
        chunk = _checks.as_token_stream(chunk, "chunk")
        if chunk.shape[0] == 0:
            return
        _checks.check_token_range(chunk, self.vocab_size, "chunk", offset=self.tokens)
        if self._last >= 0:
            self._counts[self._last, int(chunk[0])] += 1
        add_bigrams(chunk, self._counts)
        self._last = int(chunk[-1])
        self.tokens += int(chunk.shape[0])

    def merge(self, other: "BigramCounter") -> "BigramCounter":
        """Add the counts of ``other``, an independent stream (no pair joins the two).

        Later updates continue this counter's stream. Returns ``self``.
        """
        if not isinstance(other, BigramCounter):
            raise TypeError(f"other must be a BigramCounter, got {type(other).__name__}")
        if other.vocab_size != self.vocab_size:
            raise ValueError(
                f"other has vocab_size={_checks.fmt_int(other.vocab_size)}, "
                f"this counter has vocab_size={_checks.fmt_int(self.vocab_size)}"
            )
        self._counts += other._counts
        self.tokens += other.tokens
        if self._last < 0:
            self._last = other._last
        if self.vocab is None:
            self.vocab = other.vocab
        return self

    def save(self, path) -> None:
        """Write ``counts``, ``vocab_size``, ``tokens`` (and the vocabulary) to an ``.npz``.

        The file is written under a temporary name and renamed, so it is never half-written.
        """
        from fastgram.corpus import atomic_output

        arrays = {
            "counts": self._counts,
            "vocab_size": np.int64(self.vocab_size),
            "tokens": np.int64(self.tokens),
            "last_token": np.int64(self._last),
        }
        if self.vocab is not None:
            arrays["vocab"] = np.array(self.vocab.to_json())
        with atomic_output(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)

    @classmethod
    def load(cls, path) -> "BigramCounter":
        """Read a counter written by :meth:`save`."""
        from fastgram.vocab import Vocab

        path = os.fspath(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                counts = data["counts"]
                V = int(data["vocab_size"])
                tokens = int(data["tokens"])
                last = int(data["last_token"]) if "last_token" in data.files else -1
                vocab = Vocab.from_json(str(data["vocab"])) if "vocab" in data.files else None
        except KeyError as exc:
            raise ValueError(f"{path}: not a fastgram counts file (missing {exc})") from None
        if counts.shape != (V, V) or counts.dtype != np.int64:
            raise ValueError(
                f"{path}: counts have shape {counts.shape} and dtype {counts.dtype}, expected ({V}, {V}) int64"
            )
        counter = cls(V, vocab=vocab, max_table_bytes=max(counts.nbytes, _checks.DENSE_TABLE_BUDGET))
        counter._counts = np.ascontiguousarray(counts)
        counter.tokens = tokens
        counter._last = last
        return counter

    def __repr__(self) -> str:
        return f"BigramCounter(vocab_size={self.vocab_size}, tokens={self.tokens:,})"
