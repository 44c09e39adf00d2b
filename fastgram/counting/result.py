"""``NGramCounts``: sorted distinct n-grams and their exact counts, the result of every counter.

The n-gram ``(t0, ..., t{n-1})`` over a vocabulary of ``V`` ids is packed into the uint64 key
``((t0 * V + t1) * V + ...) * V + t{n-1}`` when ``V**n <= 2**64``; sorted keys are n-grams in
lexicographic order. A larger key space (``V <= 2**32``, so up to 256 bits for n = 8) takes
``K`` = 2..4 uint64 words per key, never a hash: the n ids are split into groups of ``g`` ids
(``g`` the most with ``V**g <= 2**64``; the last group takes the rest), each group packed the
same way into one word, most significant group first. ``keys`` is then a C-contiguous
``(m, K)`` uint64 array whose rows, compared word by word as unsigned integers, are in the
n-grams' lexicographic order (``NGramCounts.words`` is ``K``; 1 for the 1-D layout).

Saved files (``.npz``, loadable with NumPy alone, validated field by field when loaded):

======================  ========================================================================
field                   meaning
======================  ========================================================================
``kind``                ``"ngrams"``
``format``              1
``keys``                uint64 (m,), strictly increasing packed n-grams, each < V**n; or, when
                        V**n > 2**64, uint64 (m, K): rows strictly increasing
                        lexicographically, word k below V**(size of group k)
``counts``              int64 (m,), each >= 1
``n``, ``vocab_size``   the order and V
``separator``           the document-boundary id, or -1 for none
``tokens``              tokens counted (>= 0)
``vocab``               optional: the vocabulary as JSON (``Vocab.to_json()``)
======================  ========================================================================
"""

from __future__ import annotations

import numpy as np

from fastgram import _checks, _io
from fastgram._jit import parallel_for
from fastgram.counting import _runs
from fastgram.kernels import ngrams as _k
from fastgram.kernels import ngrams_wide as _kw
from fastgram.vocab import Vocab, vocab_field

__all__ = ["NGramCounts", "ids_dtype", "check_compatible", "FORMAT_VERSION"]

#: Version of the ``.npz`` layout written by :meth:`NGramCounts.save`.
FORMAT_VERSION = 1

_U64 = np.uint64


def ids_dtype(V: int) -> np.dtype:
    """The smallest unsigned dtype that holds the ids ``0 .. V - 1``."""
    for dt in (np.uint8, np.uint16, np.uint32):
        if V - 1 <= np.iinfo(dt).max:
            return np.dtype(dt)
    return np.dtype(np.uint64)


def check_compatible(a, b) -> None:
    """Raise ``ValueError`` unless two counts share ``n``, ``vocab_size`` and ``separator``, and
    their vocabularies where both have one (the same ids must mean the same tokens)."""
    for attr in ("n", "vocab_size", "separator"):
        if getattr(a, attr) != getattr(b, attr):
            raise ValueError(f"cannot merge counts with {attr}={getattr(a, attr)} and {attr}={getattr(b, attr)}")
    if a.vocab is not None and b.vocab is not None and a.vocab.to_json() != b.vocab.to_json():
        raise ValueError("cannot merge counts of different vocabularies (their ids name different tokens)")


class NGramCounts:
    """Sorted distinct n-grams and their exact int64 counts.

    Parameters
    ----------
    keys : ndarray of uint64, shape (m,) or (m, K)
        Packed n-grams, strictly increasing, each below ``V**n``; rows of ``K`` words when
        ``V**n > 2**64`` (see the module docstring).
    counts : ndarray of int64, shape (m,)
        Each at least 1.
    n, vocab_size : int
    separator : int, optional
        The document-boundary id the counts were made with (kept for merging and saving).
    tokens : int
        Tokens counted.
    vocab : Vocab, optional
        The vocabulary the ids come from (saved with the counts, so n-grams decode to text).
    validate : bool
        Check that ``keys`` are sorted, distinct and in range and ``counts`` positive (O(m));
        the counters pass ``False`` for results they built themselves.

    Attributes
    ----------
    ngrams : ndarray, shape (m, n)
        The n-grams in lexicographic order, in the smallest unsigned dtype holding V - 1
        (decoded from ``keys`` on access: ``m * n * itemsize`` bytes).
    counts : ndarray of int64, shape (m,)

    words : int
        ``K``, the uint64 words per key (1: ``keys`` is 1-D).

    Notes
    -----
    Every method returns a new object and leaves this one as it was (``merge``, ``prune``).
    Memory: 16 bytes per distinct n-gram (``8 (K + 1)`` with wide keys).

    Examples
    --------
    >>> import numpy as np
    >>> from fastgram import count_ngrams
    >>> c = count_ngrams(np.array([0, 1, 0, 1, 2]), 2)
    >>> c.ngrams.tolist(), c.counts.tolist()
    ([[0, 1], [1, 0], [1, 2]], [2, 1, 1])
    >>> c.top(1)[0].tolist(), int(c[0, 1])
    ([[0, 1]], 2)
    """

    def __init__(
        self,
        keys,
        counts,
        n: int,
        vocab_size: int,
        *,
        separator: int | None = None,
        tokens: int = 0,
        vocab: Vocab | None = None,
        validate: bool = True,
    ):
        self.n = _checks.check_order(n)
        self.vocab_size = _checks.check_vocab_size(vocab_size)
        self.words = _checks.key_words(self.vocab_size, self.n)
        self._gstart = _runs.key_groups(self.vocab_size, self.n, self.words)
        self.separator = _checks.check_separator(separator, self.vocab_size)
        self.tokens = _checks.require_int(tokens, "tokens", min=0)
        if vocab is not None and not hasattr(vocab, "to_json"):
            raise TypeError(f"vocab must be a fastgram vocabulary, got {type(vocab).__name__}")
        if vocab is not None and len(vocab) > self.vocab_size:
            raise ValueError(f"vocab has {len(vocab):,} entries, more than vocab_size={self.vocab_size:,}")
        self.vocab = vocab
        keys = np.asarray(keys)
        counts = np.asarray(counts)
        if validate:
            if keys.dtype.kind not in "iu" or (keys.size and keys.dtype.kind == "i" and keys.min() < 0):
                raise ValueError(f"keys must be non-negative integers, got dtype {keys.dtype}")
            if counts.dtype.kind not in "iu":
                raise ValueError(f"counts must be integers, got dtype {counts.dtype}")
        keys = np.ascontiguousarray(keys, dtype=np.uint64)
        counts = np.ascontiguousarray(counts, dtype=np.int64)
        if self.words == 1:
            if keys.ndim != 1 or keys.shape != counts.shape:
                raise ValueError(f"keys and counts must be 1-D of one length, got {keys.shape} and {counts.shape}")
        elif keys.ndim != 2 or keys.shape[1] != self.words or counts.ndim != 1 or len(keys) != len(counts):
            raise ValueError(
                f"keys must have shape (m, {self.words}) (n={self.n} over vocab_size={self.vocab_size:,} takes "
                f"{self.words} words per key) and counts (m,), got {keys.shape} and {counts.shape}"
            )
        if validate and len(keys):
            if self.words == 1:
                if np.any(keys[1:] <= keys[:-1]):
                    raise ValueError("keys must be strictly increasing (sorted, distinct n-grams)")
                if self.vocab_size**self.n < 1 << 64 and int(keys[-1]) >= self.vocab_size**self.n:
                    raise ValueError(
                        f"keys: {int(keys[-1]):,} is not an n-gram of n={self.n} over vocab_size={self.vocab_size:,}"
                    )
            else:
                self._check_wide_keys(keys)
            if counts.min() < 1:
                raise ValueError(f"counts must be >= 1, got {int(counts.min()):,}")
        self.keys = keys
        self.counts = counts

    def _check_wide_keys(self, keys: np.ndarray) -> None:
        for k, limit in enumerate(_runs.word_limits(self.vocab_size, self._gstart)):
            if limit < 1 << 64 and int(keys[:, k].max()) >= limit:
                i = int(np.argmax(keys[:, k] >= _U64(limit)))
                size = int(self._gstart[k + 1] - self._gstart[k])
                raise ValueError(
                    f"keys[{i}, {k}]: {int(keys[i, k]):,} is not a group of {size} "
                    f"ids over vocab_size={self.vocab_size:,} (must be < {limit:,})"
                )
        bad = _kw.first_unsorted_wide(keys)
        if bad >= 0:
            raise ValueError(
                f"keys must be strictly increasing (sorted, distinct n-grams): row {bad} is not above row {bad - 1}"
            )

    @classmethod
    def from_dense(cls, table, *, separator=None, tokens: int = 0, vocab=None) -> "NGramCounts":
        """The nonzero entries of a dense ``(V,) * n`` count table (``count_bigrams``' result).

        O(V**n) time, 16 bytes per nonzero entry.
        """
        table = _checks.as_int_array(table, "table")
        if table.ndim < 1 or len(set(table.shape)) != 1 or table.shape[0] < 1:
            raise ValueError(f"table must have shape (V,) * n with V >= 1, got {table.shape}")
        flat = table.reshape(-1)
        if flat.size and flat.min() < 0:
            raise ValueError(f"table: counts must be >= 0, got {int(flat.min()):,}")
        if flat.size and flat.dtype.kind == "u" and flat.dtype.itemsize == 8 and int(flat.max()) > 2**63 - 1:
            # counts are int64: a uint64 count past 2**63 - 1 would wrap to a negative count
            raise ValueError(f"table: counts must be <= 2**63 - 1 (int64), got {int(flat.max()):,}")
        keys = np.flatnonzero(flat).astype(np.uint64)
        return cls(
            keys,
            flat[keys.astype(np.intp)],
            table.ndim,
            table.shape[0],
            separator=separator,
            tokens=tokens,
            vocab=vocab,
            validate=False,
        )

    # -- views ------------------------------------------------------------------------------

    @property
    def ngrams(self) -> np.ndarray:
        out = np.empty((len(self.keys), self.n), ids_dtype(self.vocab_size))
        if len(self.keys):
            if self.words == 1:
                parallel_for(_k.unpack_keys, len(self.keys), (self.keys, _U64(self.vocab_size), out))
            else:
                parallel_for(_kw.unpack_wide, len(self.keys), (self.keys, _U64(self.vocab_size), self._gstart, out))
        return out

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def total(self) -> int:
        """Sum of the counts (the number of n-gram positions counted)."""
        return int(self.counts.sum())

    def __repr__(self) -> str:
        return (
            f"NGramCounts(n={self.n}, vocab_size={_checks.fmt_int(self.vocab_size)}, "
            f"distinct={_checks.fmt_int(len(self))}, total={_checks.fmt_int(self.total)})"
        )

    def _like(self, keys, counts, tokens=None) -> "NGramCounts":
        return NGramCounts(
            keys,
            counts,
            self.n,
            self.vocab_size,
            separator=self.separator,
            tokens=self.tokens if tokens is None else tokens,
            vocab=self.vocab,
            validate=False,
        )

    # -- queries ----------------------------------------------------------------------------

    def top(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` most frequent n-grams, by count descending then n-gram ascending.

        Returns
        -------
        ngrams : ndarray, shape (min(k, m), n)
        counts : ndarray of int64, shape (min(k, m),)

        Notes
        -----
        O(m) time (a partition) plus O(k log k); O(m) temporary memory.
        """
        k = min(_checks.require_int(k, "k", min=0), len(self))
        if k == 0:
            return self._like(_runs.empty_keys(self.words), _runs.EMPTY_COUNTS).ngrams, _runs.EMPTY_COUNTS.copy()
        if k < len(self):
            # all n-grams with a count above the k-th largest, then ties by key
            kth = np.partition(self.counts, len(self) - k)[len(self) - k]
            idx = np.flatnonzero(self.counts >= kth)
        else:
            idx = np.arange(len(self))
        keys = self.keys[idx]
        # np.lexsort's last key is the primary one: count descending, then the words in order
        words = (keys,) if self.words == 1 else tuple(keys[:, w] for w in range(self.words - 1, -1, -1))
        order = np.lexsort((*words, -self.counts[idx]))[:k]
        idx = idx[order]
        return self._like(self.keys[idx], self.counts[idx]).ngrams, self.counts[idx]

    def prune(self, min_count: int) -> "NGramCounts":
        """A new :class:`NGramCounts` of the n-grams seen at least ``min_count`` times."""
        min_count = _checks.require_min_count(min_count)
        return self._like(*_runs.prune_runs(self.keys, self.counts, min_count))

    def pack(self, ngrams) -> np.ndarray:
        """Packed uint64 keys of the rows of ``ngrams`` (shape ``(q, n)`` or ``(n,)``): (q,), or
        (q, K) rows of words for wide keys (the layout of ``.keys``).

        Raises ``ValueError`` for a wrong shape or an id outside ``[0, V)``.
        """
        arr = _checks.as_int_array(ngrams, "ngrams")
        if arr.ndim == 1:
            arr = arr[None, :]
        if arr.ndim != 2 or arr.shape[1] != self.n:
            raise ValueError(f"ngrams must have shape (q, {self.n}) or ({self.n},), got {arr.shape}")
        for j in range(self.n):
            _checks.check_token_range(arr[:, j], self.vocab_size, name=f"ngrams[:, {j}]")
        out = np.zeros((arr.shape[0], self.words), np.uint64)
        with np.errstate(over="ignore"):
            for w in range(self.words):
                for j in range(int(self._gstart[w]), int(self._gstart[w + 1])):
                    out[:, w] = out[:, w] * _U64(self.vocab_size % (1 << 64)) + arr[:, j].astype(np.uint64)
        return out[:, 0].copy() if self.words == 1 else out

    def lookup(self, ngrams) -> np.ndarray:
        """Counts of the given n-grams (0 for unseen ones).

        Parameters
        ----------
        ngrams : array_like of int, shape (q, n) or (n,)

        Returns
        -------
        ndarray of int64, shape (q,)

        Raises
        ------
        ValueError
            For a wrong shape, or an id outside ``[0, vocab_size)`` (no n-gram of these counts
            can hold it: a query of another vocabulary, refused rather than answered 0).

        Notes
        -----
        O(q log m) by binary search in the sorted keys.
        """
        q = self.pack(ngrams)
        if not len(self):
            return np.zeros(len(q), np.int64)
        if self.words > 1:
            # lexicographic binary search over the rows of words, in a kernel
            pos = np.empty(len(q), np.int64)
            parallel_for(_kw.find_wide, len(q), (self.keys, q, pos))
            return np.where(pos >= 0, self.counts[np.maximum(pos, 0)], 0).astype(np.int64)
        pos = np.searchsorted(self.keys, q)
        pos_c = np.minimum(pos, len(self) - 1)
        hit = (pos < len(self)) & (self.keys[pos_c] == q)
        return np.where(hit, self.counts[pos_c], 0).astype(np.int64)

    def __getitem__(self, ngram) -> int:
        """``counts[(a, b)]``: the count of one n-gram (0 if unseen)."""
        return int(self.lookup(np.asarray(ngram).reshape(1, -1))[0])

    # -- combining and converting -----------------------------------------------------------

    def merge(self, other: "NGramCounts") -> "NGramCounts":
        """A new :class:`NGramCounts` with the counts of both (as if their streams were counted
        separately and added); neither input changes.

        ``other`` must have the same ``n``, ``vocab_size`` and ``separator``. O(m1 + m2).
        """
        if not isinstance(other, NGramCounts):
            raise TypeError(f"other must be NGramCounts, got {type(other).__name__}")
        check_compatible(self, other)
        keys, counts = _runs.merge_pair((self.keys, self.counts), (other.keys, other.counts))
        out = self._like(keys, counts, tokens=self.tokens + other.tokens)
        out.vocab = self.vocab if self.vocab is not None else other.vocab
        return out

    def to_dense(self, max_memory=_checks.DENSE_TABLE_BUDGET) -> np.ndarray:
        """The dense int64 table of shape ``(V,) * n``.

        Raises ``ValueError`` if it would exceed ``max_memory`` (bytes or ``"2G"``; default 2 GiB).
        """
        budget = _io.parse_memory(max_memory)
        need = 8 * self.vocab_size**self.n  # over 2**67 bytes for wide keys: always too large
        if need > budget:
            raise ValueError(
                f"a dense table of shape ({self.vocab_size},)*{self.n} needs {_checks.fmt_bytes(need)}, "
                f"over max_memory={_checks.fmt_bytes(budget)}"
            )
        out = np.zeros(self.vocab_size**self.n, np.int64)
        out[self.keys.astype(np.intp)] = self.counts
        return out.reshape((self.vocab_size,) * self.n)

    def to_scipy(self):
        """The bigram counts as a ``scipy.sparse.csr_array`` of shape ``(V, V)`` (n = 2 only).

        Needs scipy (``pip install 'fastgram[sparse]'``).
        """
        if self.n != 2:
            raise ValueError(f"to_scipy needs bigrams (n=2), these are n={self.n}-grams")
        try:
            from scipy import sparse
        except ModuleNotFoundError:
            raise ModuleNotFoundError("to_scipy needs scipy: pip install 'fastgram[sparse]'") from None
        V = self.vocab_size
        index = np.int64 if V > np.iinfo(np.int32).max // 2 else np.int32
        rows = (self.keys // _U64(V)).astype(index)
        cols = (self.keys % _U64(V)).astype(index)
        return sparse.coo_array((self.counts, (rows, cols)), shape=(V, V)).tocsr()

    # -- files ------------------------------------------------------------------------------

    def save(self, path) -> None:
        """Write the ``.npz`` described in the module docstring, atomically."""
        arrays = dict(
            kind=np.array("ngrams"),
            format=np.int64(FORMAT_VERSION),
            keys=self.keys,
            counts=self.counts,
            n=np.int64(self.n),
            vocab_size=np.uint64(self.vocab_size),
            separator=np.int64(-1 if self.separator is None else self.separator),
            tokens=np.int64(self.tokens),
        )
        if self.vocab is not None:
            arrays["vocab"] = np.array(self.vocab.to_json())
        with _io.atomic_output(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays)

    @classmethod
    def load(cls, path) -> "NGramCounts":
        """Read counts written by :meth:`save`, checking every field.

        Raises
        ------
        ValueError
            Naming the file and the field, for a file that is not a fastgram n-gram file, is
            truncated or damaged, or holds keys that are not sorted n-grams of its vocabulary,
            counts below 1, or fields of the wrong type.
        """
        path = _io.check_path(path)
        required = {"kind", "keys", "counts", "n", "vocab_size", "separator", "tokens"}
        fields = _io.read_npz(path, required, {"vocab", "format"}, "n-gram counts file")
        if fields["kind"].shape != () or str(fields["kind"]) != "ngrams":
            raise ValueError(f"{path}: not a fastgram n-gram counts file (field 'kind' is {fields['kind']!r})")
        if "format" in fields:  # written since format 1; older files have none
            _io.scalar_field(path, fields, "format", 1, 1)
        n = _io.scalar_field(path, fields, "n", 1, 8)
        V = _io.scalar_field(path, fields, "vocab_size", 1, _checks.MAX_VOCAB)
        sep = _io.scalar_field(path, fields, "separator", -1, V - 1)
        tokens = _io.scalar_field(path, fields, "tokens", 0, None)
        keys, counts = fields["keys"], fields["counts"]
        try:
            words = _checks.key_words(V, n)
        except ValueError as exc:
            raise ValueError(f"{path}: fields 'n' and 'vocab_size': {exc}") from None
        key_shape = "1-D" if words == 1 else f"2-D (m, {words})"
        for name, arr, kinds, ndim in (("keys", keys, "u", 1 if words == 1 else 2), ("counts", counts, "i", 1)):
            if (
                arr.ndim != ndim
                or (name == "keys" and ndim == 2 and arr.shape[1] != words)
                or arr.dtype.kind not in kinds
                or arr.dtype.itemsize != 8
            ):
                raise ValueError(
                    f"{path}: field '{name}' must be {key_shape if name == 'keys' else '1-D'} "
                    f"{'uint64' if kinds == 'u' else 'int64'}, got {arr.dtype} of shape {arr.shape}"
                )
        if len(keys) != len(counts):
            raise ValueError(f"{path}: fields 'keys' and 'counts' differ in length: {len(keys):,} and {len(counts):,}")
        vocab = vocab_field(path, fields)
        try:
            return cls(keys, counts, n, V, separator=None if sep < 0 else sep, tokens=tokens, vocab=vocab)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
