"""Exact dense bigram tables of integer token streams: arrays and streams given in chunks.

The public functions check their inputs, then hand C-contiguous unsigned views to the kernels
in :mod:`fastgram.kernels.counting`. Streams of any integer dtype, byte order and strides are
accepted (``np.memmap`` included) without an O(N) copy: only byte-swapped or strided streams
are converted, a bounded chunk at a time.
"""

from __future__ import annotations

import numpy as np

from fastgram import _checks, _io
from fastgram._jit import num_threads
from fastgram.kernels import counting as _k
from fastgram.vocab import Vocab, vocab_field

__all__ = ["count_bigrams", "BigramCounter"]


def count_bigrams(tokens, vocab_size=None, *, max_memory=_checks.DENSE_TABLE_BUDGET) -> np.ndarray:
    """Count consecutive token pairs: ``counts[a, b]`` = #{i : tokens[i] = a, tokens[i+1] = b}.

    Parameters
    ----------
    tokens : array_like of int, shape (N,)
        Token ids, any integer dtype (signed or unsigned, either byte order, strided views and
        ``np.memmap`` included). Never upcast or copied whole.
    vocab_size : int, optional
        V, the table size. Default ``max(tokens) + 1`` (1 for an empty stream).
    max_memory : int or str, optional
        Memory budget of the dense ``(V, V)`` int64 table, in bytes or as ``"2G"`` (default
        2 GiB, so V <= 16,384). For larger vocabularies count sparsely with
        :func:`fastgram.count_ngrams` ``(tokens, 2)``.

    Returns
    -------
    ndarray of int64, shape (V, V)
        Exact counts; they sum to ``max(N - 1, 0)``.

    Raises
    ------
    TypeError
        If ``tokens`` is not an integer array or ``vocab_size`` not an integer.
    ValueError
        If ``tokens`` is not 1-D, an id lies outside ``[0, V)`` (the message names the first
        bad position and value), or the table would exceed ``max_memory`` (the message names
        ``count_ngrams``).

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
    _checks.check_dense_table(V, _io.parse_memory(max_memory))
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
    max_memory : int or str, optional
        Memory budget of the ``(V, V)`` int64 table (default 2 GiB).

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

    def __init__(self, vocab_size, *, vocab=None, max_memory=_checks.DENSE_TABLE_BUDGET):
        V = _checks.require_int(vocab_size, "vocab_size", min=1)
        _checks.check_dense_table(V, _io.parse_memory(max_memory))
        if vocab is not None and not isinstance(vocab, Vocab):
            raise TypeError(f"vocab must be a fastgram.Vocab, got {type(vocab).__name__}")
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
        """Write ``counts``, ``vocab_size``, ``tokens``, ``last_token`` (and the vocabulary as
        JSON) to an ``.npz`` with ``kind = "bigrams"``.

        The file is written under a temporary name and renamed, so it is never half-written.
        """
        arrays = {
            "kind": np.array("bigrams"),
            "counts": self._counts,
            "vocab_size": np.int64(self.vocab_size),
            "tokens": np.int64(self.tokens),
            "last_token": np.int64(self._last),
        }
        if self.vocab is not None:
            arrays["vocab"] = np.array(self.vocab.to_json())
        with _io.atomic_output(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays)

    @classmethod
    def load(cls, path) -> "BigramCounter":
        """Read a counter written by :meth:`save`, checking every field.

        Raises ``ValueError`` naming the file and the field for a damaged or truncated file, a
        table that is not ``(V, V)`` int64 with non-negative counts, or a ``last_token`` or
        ``tokens`` that do not fit the table.
        """
        path = _io.check_path(path)
        fields = _io.read_npz(
            path, {"counts", "vocab_size", "tokens"}, {"kind", "last_token", "vocab"}, "bigram counts file"
        )
        if "kind" in fields and str(fields["kind"]) != "bigrams":
            raise ValueError(f"{path}: not a fastgram bigram counts file (field 'kind' is {str(fields['kind'])!r})")
        V = _io.scalar_field(path, fields, "vocab_size", 1, _checks.DENSE_MAX_VOCAB)
        tokens = _io.scalar_field(path, fields, "tokens", 0, None)
        last = _io.scalar_field(path, fields, "last_token", -1, V - 1) if "last_token" in fields else -1
        counts = fields["counts"]
        if counts.shape != (V, V) or counts.dtype != np.int64:
            raise ValueError(
                f"{path}: field 'counts' has shape {counts.shape} and dtype {counts.dtype}, expected ({V}, {V}) int64"
            )
        if counts.size and counts.min() < 0:
            raise ValueError(f"{path}: field 'counts' holds a negative count ({int(counts.min()):,})")
        if (tokens == 0) != (last < 0) or int(counts.sum()) > max(tokens - 1, 0):
            raise ValueError(f"{path}: fields 'tokens' ({tokens:,}), 'last_token' and 'counts' disagree")
        vocab = vocab_field(path, fields)
        try:
            counter = cls(V, vocab=vocab, max_memory=max(counts.nbytes, _checks.DENSE_TABLE_BUDGET))
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
        counter._counts = np.ascontiguousarray(counts)
        counter.tokens = tokens
        counter._last = last
        return counter

    def __repr__(self) -> str:
        return f"BigramCounter(vocab_size={self.vocab_size}, tokens={self.tokens:,})"
