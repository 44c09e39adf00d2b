"""Sparse, exact n-gram counts (1 <= n <= 8) over arrays, streams and shard files.

The n-gram ``(t0, ..., t{n-1})`` over a vocabulary of ``V`` ids is packed into the uint64 key
``((t0 * V + t1) * V + ...) * V + t{n-1}``; sorted keys are n-grams in lexicographic order.
Keys are exact, so ``V**n`` must fit in 64 bits (``V**n <= 2**64``: bigrams up to V = 2**32,
trigrams up to V = 2,642,245, 8-grams up to V = 256); a larger key space raises ``ValueError``
rather than hashing (no silent collisions).

- :func:`count_ngrams` counts an array; :class:`NGramCounter` counts a stream chunk by chunk
  (``update``/``merge``); :func:`count_file` and :func:`count_files` count files and shards.
- :class:`NGramCounts` is the result: sorted n-grams and int64 counts, with ``top``,
  ``prune``, ``lookup``, ``merge``, ``save``/``load``, ``to_scipy`` and ``to_dense``.
- ``separator=``: a document-boundary id; n-grams containing it are not counted.
- ``max_memory=``: a budget for the working set. Sorted runs that outgrow it are written to a
  temporary directory and merged at the end, as KenLM's counting does; the directory is
  removed when the count ends, fails or is interrupted.
"""

from __future__ import annotations

import glob
import math
import os
import shutil
import tempfile
import weakref

import numpy as np

from fastgram import _checks
from fastgram._jit import num_threads, parallel_guard
from fastgram.kernels import ngrams as _k

__all__ = ["count_ngrams", "count_file", "count_files", "NGramCounts", "NGramCounter", "MAX_ORDER", "parse_memory"]

#: Longest n-gram order.
MAX_ORDER = 8
#: Tokens counted per block when no memory budget is given (~512 MiB of residuals at most).
BLOCK_TOKENS = 1 << 27
#: Smallest block under a memory budget.
MIN_BLOCK_TOKENS = 1 << 16
#: Target residuals per bucket: a bucket and its sort buffer stay in L2 cache.
TARGET_BUCKET = 1 << 12
#: Most bucket bits (2**20 buckets: 8 MiB of histogram per thread).
MAX_BUCKET_BITS = 20
#: Buckets dense in a residual range of at most 2**DENSE_BITS are counting-sorted.
DENSE_BITS = 22  # int32 tables of at most 16 MiB per thread

_U64 = np.uint64
_EMPTY_KEYS = np.zeros(0, np.uint64)
_EMPTY_COUNTS = np.zeros(0, np.int64)


# ---------------------------------------------------------------------------------------------
# argument checks
# ---------------------------------------------------------------------------------------------


def _check_order(n) -> int:
    return _checks.require_int(n, "n", min=1, max=MAX_ORDER)


def _check_key_space(V: int, n: int) -> None:
    if V**n > 1 << 64:
        bits = math.ceil(n * math.log2(V))
        raise ValueError(
            f"n-grams of order n={n} over vocab_size={_checks.fmt_int(V)} need {bits} bits per "
            f"packed key, more than 64 (V**n must be <= 2**64); use a smaller n or vocabulary"
        )


def _check_separator(separator, V: int) -> int | None:
    if separator is None:
        return None
    return _checks.require_int(separator, "separator", min=0, max=V - 1)


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
        return int(number * scale)
    return _checks.require_int(value, name, min=1)


def _ids_dtype(V: int) -> np.dtype:
    for dt in (np.uint8, np.uint16, np.uint32):
        if V - 1 <= np.iinfo(dt).max:
            return np.dtype(dt)
    return np.dtype(np.uint64)


# ---------------------------------------------------------------------------------------------
# one block of tokens -> one sorted run
# ---------------------------------------------------------------------------------------------


def _count_block(view: np.ndarray, n: int, V: int, sep: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique keys and counts of the n-grams of ``view`` (a checked kernel view).

    Memory: 4 or 8 bytes per window (residuals) plus 16 bytes per distinct n-gram, plus
    per-thread histograms and sort buffers.
    """
    W = view.shape[0] - n + 1
    if W <= 0:
        return _EMPTY_KEYS, _EMPTY_COUNTS
    keybits = (V**n - 1).bit_length()
    B = min(keybits, (W // TARGET_BUCKET).bit_length(), MAX_BUCKET_BITS)
    shift = keybits - B
    if shift >= 64:  # keep shifts below the word size
        B, shift = 1, 63
    NB = 1 << B
    T = num_threads()
    resid_dtype = np.uint32 if shift <= 32 else np.uint64
    # (T, NB) per-thread bucket histograms over equal ranges of windows
    hist = np.zeros((T, NB), np.int64)
    args = (view, n, _U64(V), _U64(sep), _U64(shift))
    with parallel_guard():
        _k.partition_ngrams(*args, hist, np.empty(0, resid_dtype), False)
    sizes = hist.sum(axis=0)
    starts = np.zeros(NB + 1, np.int64)
    np.cumsum(sizes, out=starts[1:])
    total = int(starts[-1])
    if total == 0:
        return _EMPTY_KEYS, _EMPTY_COUNTS
    # write offsets: bucket-major, thread-minor, so the layout is fixed by the histograms
    flat = hist.T.ravel()
    offsets = np.ascontiguousarray((np.cumsum(flat) - flat).reshape(NB, T).T)
    del hist, flat
    buf = np.empty(total, resid_dtype)
    with parallel_guard():
        _k.partition_ngrams(*args, offsets, buf, True)
    del offsets
    # T tasks of contiguous buckets holding about total / T residuals each
    bounds = np.searchsorted(starts, np.arange(T + 1, dtype=np.int64) * total // T, side="left")
    bounds[0], bounds[-1] = 0, NB
    bounds = np.maximum.accumulate(bounds)
    dense_limit = 1 << min(shift, 62)  # the residual range (capped: only used when shift <= DENSE_BITS)
    dense_rows = shift <= DENSE_BITS and bool((sizes * 4 >= dense_limit).any())
    dense = np.empty((T, dense_limit if dense_rows else 0), np.int32)  # counts within a block < 2**31
    radix = (sizes > _k._SMALL_BUCKET) & ~((sizes * 4 >= dense_limit) & dense_rows)
    longest = int(sizes[radix].max()) if radix.any() else 0
    tmp = np.empty((T, longest), resid_dtype)
    radix_hist = np.empty((T, 1 << 11), np.int64)
    nuniq = np.empty(NB, np.int64)
    with parallel_guard():
        _k.sort_buckets(buf, starts, bounds, shift, dense_limit, dense, tmp, radix_hist, nuniq)
    del dense, tmp
    ustarts = np.cumsum(nuniq) - nuniq
    m = int(nuniq.sum())
    keys = np.empty(m, np.uint64)
    counts = np.empty(m, np.int64)
    with parallel_guard():
        _k.emit_buckets(buf, starts, bounds, shift, ustarts, keys, counts)
    return keys, counts


def _merge(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Two sorted runs merged into one (counts of equal keys added)."""
    if len(a[0]) == 0:
        return b
    if len(b[0]) == 0:
        return a
    size = len(a[0]) + len(b[0])
    keys = np.empty(size, np.uint64)
    counts = np.empty(size, np.int64)
    m = _k.merge_runs(a[0], a[1], b[0], b[1], keys, counts)
    if m < size // 2:  # give the unused tail back; otherwise keep views (no second pass)
        return keys[:m].copy(), counts[:m].copy()
    return keys[:m], counts[:m]


def _merge_all(runs: list) -> tuple[np.ndarray, np.ndarray]:
    """Merge sorted runs pairwise in a balanced tree: O(total * log(len(runs)))."""
    runs = list(runs)
    if not runs:
        return _EMPTY_KEYS, _EMPTY_COUNTS
    while len(runs) > 1:
        runs = [_merge(runs[i], runs[i + 1]) if i + 1 < len(runs) else runs[i] for i in range(0, len(runs), 2)]
    return runs[0]


def _prune(keys, counts, min_count: int):
    if min_count <= 1:
        return keys, counts
    keep = counts >= min_count
    return keys[keep], counts[keep]


# ---------------------------------------------------------------------------------------------
# the result
# ---------------------------------------------------------------------------------------------


class NGramCounts:
    """Sorted distinct n-grams and their exact int64 counts.

    Parameters
    ----------
    keys : ndarray of uint64, shape (m,)
        Packed n-grams, strictly increasing (see the module docstring for the packing).
    counts : ndarray of int64, shape (m,)
    n, vocab_size : int
    separator : int, optional
        The document-boundary id the counts were made with (kept for merging and saving).
    tokens : int
        Tokens counted.

    Attributes
    ----------
    ngrams : ndarray, shape (m, n)
        The n-grams in lexicographic order, in the smallest unsigned dtype holding V - 1
        (decoded from ``keys`` on access: ``m * n * itemsize`` bytes).
    counts : ndarray of int64, shape (m,)

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

    def __init__(self, keys, counts, n: int, vocab_size: int, *, separator: int | None = None, tokens: int = 0):
        self.n = _check_order(n)
        self.vocab_size = _checks.require_int(vocab_size, "vocab_size", min=1)
        _check_key_space(self.vocab_size, self.n)
        self.separator = _check_separator(separator, self.vocab_size)
        self.tokens = _checks.require_int(tokens, "tokens", min=0)
        keys = np.ascontiguousarray(keys, dtype=np.uint64)
        counts = np.ascontiguousarray(counts, dtype=np.int64)
        if keys.ndim != 1 or keys.shape != counts.shape:
            raise ValueError(f"keys and counts must be 1-D of one length, got {keys.shape} and {counts.shape}")
        self.keys = keys
        self.counts = counts

    # -- views ------------------------------------------------------------------------------

    @property
    def ngrams(self) -> np.ndarray:
        out = np.empty((len(self.keys), self.n), _ids_dtype(self.vocab_size))
        if len(self.keys):
            with parallel_guard():
                _k.unpack_keys(self.keys, _U64(self.vocab_size), out)
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
            return self._like(_EMPTY_KEYS, _EMPTY_COUNTS).ngrams, _EMPTY_COUNTS.copy()
        if k < len(self):
            # all n-grams with a count above the k-th largest, then ties by key
            kth = np.partition(self.counts, len(self) - k)[len(self) - k]
            idx = np.flatnonzero(self.counts >= kth)
        else:
            idx = np.arange(len(self))
        order = np.lexsort((self.keys[idx], -self.counts[idx]))[:k]
        idx = idx[order]
        return self._like(self.keys[idx], self.counts[idx]).ngrams, self.counts[idx]

    def prune(self, min_count: int) -> "NGramCounts":
        """Only the n-grams seen at least ``min_count`` times (a new object)."""
        min_count = _checks.require_int(min_count, "min_count", min=1)
        return self._like(*_prune(self.keys, self.counts, min_count))

    def pack(self, ngrams) -> np.ndarray:
        """Packed uint64 keys of the rows of ``ngrams`` (shape ``(q, n)`` or ``(n,)``).

        Raises ``ValueError`` for a wrong shape or an id outside ``[0, V)``.
        """
        arr = _checks.as_int_array(ngrams, "ngrams")
        if arr.ndim == 1:
            arr = arr[None, :]
        if arr.ndim != 2 or arr.shape[1] != self.n:
            raise ValueError(f"ngrams must have shape (q, {self.n}) or ({self.n},), got {arr.shape}")
        for j in range(self.n):
            _checks.check_token_range(arr[:, j], self.vocab_size, name=f"ngrams[:, {j}]")
        keys = np.zeros(arr.shape[0], np.uint64)
        for j in range(self.n):
            keys = keys * _U64(self.vocab_size) + arr[:, j].astype(np.uint64)
        return keys

    def lookup(self, ngrams) -> np.ndarray:
        """Counts of the given n-grams (0 for unseen ones).

        Parameters
        ----------
        ngrams : array_like of int, shape (q, n) or (n,)

        Returns
        -------
        ndarray of int64, shape (q,)

        Notes
        -----
        O(q log m) by binary search in the sorted keys.
        """
        q = self.pack(ngrams)
        pos = np.searchsorted(self.keys, q)
        pos_c = np.minimum(pos, max(len(self) - 1, 0))
        hit = (pos < len(self)) & (self.keys[pos_c] == q) if len(self) else np.zeros(len(q), bool)
        return np.where(hit, self.counts[pos_c] if len(self) else 0, 0).astype(np.int64)

    def __getitem__(self, ngram) -> int:
        """``counts[(a, b)]``: the count of one n-gram (0 if unseen)."""
        return int(self.lookup(np.asarray(ngram).reshape(1, -1))[0])

    # -- combining and converting -----------------------------------------------------------

    def merge(self, other: "NGramCounts") -> "NGramCounts":
        """Counts of both (as if their streams were counted separately and added).

        ``other`` must have the same ``n``, ``vocab_size`` and ``separator``. O(m1 + m2).
        """
        if not isinstance(other, NGramCounts):
            raise TypeError(f"other must be NGramCounts, got {type(other).__name__}")
        _check_compatible(self, other)
        keys, counts = _merge((self.keys, self.counts), (other.keys, other.counts))
        return self._like(keys, counts, tokens=self.tokens + other.tokens)

    def to_dense(self, max_bytes: int = _checks.DENSE_TABLE_BUDGET) -> np.ndarray:
        """The dense int64 table of shape ``(V,) * n``.

        Raises ``ValueError`` if it would exceed ``max_bytes`` (default 2 GiB).
        """
        max_bytes = _checks.require_int(max_bytes, "max_bytes", min=0)
        need = 8 * self.vocab_size**self.n
        if need > max_bytes:
            raise ValueError(
                f"a dense table of shape ({self.vocab_size},)*{self.n} needs {_checks.fmt_bytes(need)}, "
                f"over max_bytes={_checks.fmt_bytes(max_bytes)}"
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
        """Write ``.npz`` (keys, counts, n, vocab_size, separator, tokens) atomically."""
        from fastgram.corpus import atomic_output

        with atomic_output(path) as tmp, open(tmp, "wb") as f:
            np.savez(
                f,
                keys=self.keys,
                counts=self.counts,
                n=self.n,
                vocab_size=self.vocab_size,
                separator=-1 if self.separator is None else self.separator,
                tokens=self.tokens,
                kind="ngrams",
            )

    @classmethod
    def load(cls, path) -> "NGramCounts":
        """Read counts written by :meth:`save`.

        Raises ``ValueError`` if the file is not a fastgram n-gram file.
        """
        with np.load(os.fspath(path), allow_pickle=False) as data:
            if "kind" not in data or str(data["kind"]) != "ngrams":
                raise ValueError(f"{os.fspath(path)}: not a fastgram n-gram counts file")
            sep = int(data["separator"])
            keys, n, V = data["keys"], _check_order(int(data["n"])), int(data["vocab_size"])
            if len(keys) and (np.any(keys[1:] <= keys[:-1]) or (V**n < 1 << 64 and int(keys[-1]) >= V**n)):
                raise ValueError(f"{os.fspath(path)}: keys are not sorted n-grams over vocab_size={V}")
            return cls(
                data["keys"],
                data["counts"],
                int(data["n"]),
                int(data["vocab_size"]),
                separator=None if sep < 0 else sep,
                tokens=int(data["tokens"]),
            )


def _check_compatible(a, b) -> None:
    for attr in ("n", "vocab_size", "separator"):
        if getattr(a, attr) != getattr(b, attr):
            raise ValueError(f"cannot merge counts with {attr}={getattr(a, attr)} and {attr}={getattr(b, attr)}")


# ---------------------------------------------------------------------------------------------
# spilled runs
# ---------------------------------------------------------------------------------------------


class _RunReader:
    """Blocks of a sorted run on disk (``.keys`` uint64 and ``.counts`` int64 raw files)."""

    def __init__(self, stem: str, length: int):
        self.stem, self.length, self.pos = stem, length, 0

    @property
    def done(self) -> bool:
        return self.pos >= self.length

    def read(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        count = min(count, self.length - self.pos)
        keys = np.fromfile(self.stem + ".keys", np.uint64, count, offset=8 * self.pos)
        counts = np.fromfile(self.stem + ".counts", np.int64, count, offset=8 * self.pos)
        self.pos += count
        return keys, counts


class _MemoryRun:
    def __init__(self, keys, counts):
        self.keys, self.counts, self.pos = keys, counts, 0

    @property
    def done(self) -> bool:
        return self.pos >= len(self.keys)

    def read(self, count: int):
        lo, self.pos = self.pos, min(self.pos + count, len(self.keys))
        return self.keys[lo : self.pos], self.counts[lo : self.pos]


def _merge_flat(keys, counts, starts, min_count, out_keys, out_counts):
    """Merge the runs ``keys[starts[r]:starts[r + 1]]`` on all threads; returns new arrays.

    The key range is cut at quantiles of the longest run into one part per thread.
    """
    k = len(starts) - 1
    P = num_threads()
    longest = int(np.argmax(np.diff(starts)))
    run = keys[starts[longest] : starts[longest + 1]]
    splitters = run[(np.arange(1, P) * len(run)) // P] if len(run) >= 2 * P else run[:0]
    splitters = np.unique(splitters)
    cuts = np.empty((len(splitters) + 2, k), np.int64)
    for r in range(k):
        lo, hi = int(starts[r]), int(starts[r + 1])
        cuts[0, r], cuts[-1, r] = lo, hi
        cuts[1:-1, r] = lo + np.searchsorted(keys[lo:hi], splitters, side="left")
    sizes_in = (cuts[1:] - cuts[:-1]).sum(axis=1)
    out_starts = np.cumsum(sizes_in) - sizes_in
    out_sizes = np.zeros(len(sizes_in), np.int64)
    with parallel_guard():
        _k.merge_many(keys, counts, cuts, min_count, out_keys, out_counts, out_starts, out_sizes)
    if len(out_sizes) == 1:
        m = int(out_sizes[0])
        return out_keys[:m].copy(), out_counts[:m].copy()
    pieces = [slice(int(a), int(a + b)) for a, b in zip(out_starts, out_sizes)]
    return np.concatenate([out_keys[sl] for sl in pieces]), np.concatenate([out_counts[sl] for sl in pieces])


def _merge_sources(sources: list, block: int, min_count: int) -> tuple[np.ndarray, np.ndarray]:
    """K-way merge of sorted runs read ``block`` entries at a time, pruned by ``min_count``.

    Each step merges every buffered key up to the smallest "last buffered key" among the runs
    that still have data to read: all occurrences of those keys are in the buffers, so their
    sums are final. The buffers are allocated once. Memory: ``len(sources) * block * 32``
    bytes plus the output.
    """
    k = len(sources)
    flat_keys = np.empty(k * block, np.uint64)
    flat_counts = np.empty(k * block, np.int64)
    out_keys = np.empty(k * block, np.uint64)
    out_counts = np.empty(k * block, np.int64)
    bufs = [s.read(block) for s in sources]
    kept_k, kept_c = [], []
    while any(len(b[0]) for b in bufs):
        pending = [b[0][-1] for b, s in zip(bufs, sources) if not s.done and len(b[0])]
        limit = min(pending) if pending else None
        starts = np.zeros(k + 1, np.int64)
        rest = []
        for r, (keys, counts) in enumerate(bufs):
            cut = len(keys) if limit is None else int(np.searchsorted(keys, limit, side="right"))
            lo = int(starts[r])
            flat_keys[lo : lo + cut] = keys[:cut]
            flat_counts[lo : lo + cut] = counts[:cut]
            starts[r + 1] = lo + cut
            rest.append((keys[cut:], counts[cut:]))
        kk, cc = _merge_flat(flat_keys, flat_counts, starts, min_count, out_keys, out_counts)
        if len(kk):
            kept_k.append(kk)
            kept_c.append(cc)
        bufs = []
        for (keys, counts), s in zip(rest, sources):
            if len(keys) < block // 2 and not s.done:
                more_k, more_c = s.read(block - len(keys))
                keys, counts = np.concatenate([keys, more_k]), np.concatenate([counts, more_c])
            bufs.append((keys, counts))
    if not kept_k:
        return _EMPTY_KEYS, _EMPTY_COUNTS
    return np.concatenate(kept_k), np.concatenate(kept_c)


# ---------------------------------------------------------------------------------------------
# streaming
# ---------------------------------------------------------------------------------------------


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
        V; ids must lie in ``[0, V)`` and ``V**n <= 2**64``.
    separator : int, optional
        Document-boundary id: n-grams containing it are not counted.
    max_memory : int or str, optional
        Budget for the working set in bytes (or ``"512M"``, ``"2G"``...). When the sorted runs
        in memory outgrow a quarter of it they are merged and written to a temporary directory
        (under ``tmp_dir``); :meth:`result` merges them block by block. Default: no budget,
        everything stays in memory.
    tmp_dir : str, optional
        Where the temporary directory goes (default: the system's).

    Raises
    ------
    ValueError
        For ``n`` outside 1..8, ``V**n > 2**64``, a separator outside ``[0, V)`` or a bad
        budget.

    Notes
    -----
    Memory: one block of tokens (at most ``max_memory / 48`` tokens, 4-8 bytes of residuals
    and up to 16 bytes of output each) plus the in-memory runs (16 bytes per distinct n-gram
    of each run; at most ``max_memory / 4`` before spilling); the final merge reads the runs
    in blocks of ``max_memory / (8 * runs)`` bytes each, plus the (pruned) result. Time O(N) per block plus
    O(D log R) for merging R runs of D distinct n-grams. The temporary directory is removed by
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

    def __init__(self, n, vocab_size, *, separator=None, max_memory=None, tmp_dir=None):
        self.n = _check_order(n)
        self.vocab_size = _checks.require_int(vocab_size, "vocab_size", min=1)
        _check_key_space(self.vocab_size, self.n)
        self.separator = _check_separator(separator, self.vocab_size)
        self.max_memory = parse_memory(max_memory)
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
        if self.max_memory is None:
            self.block_tokens = BLOCK_TOKENS
        else:
            self.block_tokens = int(min(BLOCK_TOKENS, max(MIN_BLOCK_TOKENS, self.max_memory // 48)))

    # -- context management -----------------------------------------------------------------

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

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

    def _add_view(self, view: np.ndarray) -> None:
        n = self.n
        if n > 1 and len(self._tail):
            # the n-grams starting in the carried tail and ending in this view
            edge = np.concatenate([self._tail, view[: n - 1].astype(np.uint64)])
            run = _count_block(edge, n, self.vocab_size, self._sep)
            if len(run[0]):
                self._edges.append(run)
            if len(self._edges) >= 256:
                self._flush_edges()
        self._add_run(_count_block(view, n, self.vocab_size, self._sep))
        if n > 1:
            joined = view[-(n - 1) :].astype(np.uint64)
            if len(joined) < n - 1:
                joined = np.concatenate([self._tail, joined])[-(n - 1) :]
            self._tail = joined

    def _flush_edges(self) -> None:
        """Merge the tiny runs of chunk edges into one (kept apart so big runs are not recopied)."""
        if self._edges:
            run = _merge_all(self._edges)
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
            self._runs.append(_merge(a, b))
        if self.max_memory is not None and 16 * sum(len(r[0]) for r in self._runs) > self.max_memory // 4:
            self._spill()

    def _spill(self) -> None:
        keys, counts = _merge_all(self._runs)
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
        _check_compatible(self, other_counts)
        self._add_run((other_counts.keys, other_counts.counts))
        self.tokens += other_counts.tokens
        return self

    def result(self, min_count: int = 1) -> NGramCounts:
        """The counts so far, pruned to n-grams seen at least ``min_count`` times.

        With spilled runs, merges them block by block (memory: the blocks plus the pruned
        result). The counter can keep counting afterwards.
        """
        min_count = _checks.require_int(min_count, "min_count", min=1)
        self._flush_edges()
        if not self._spilled:
            keys, counts = _prune(*_merge_all(self._runs), min_count)
        else:
            sources = [_RunReader(stem, length) for stem, length in self._spilled]
            sources += [_MemoryRun(*run) for run in self._runs]
            budget = self.max_memory or (256 << 20)
            block = max(4096, budget // (8 * 16 * len(sources)))
            keys, counts = _merge_sources(sources, block, min_count)
        return NGramCounts(keys, counts, self.n, self.vocab_size, separator=self.separator, tokens=self.tokens)

    def __repr__(self) -> str:
        return (
            f"NGramCounter(n={self.n}, vocab_size={_checks.fmt_int(self.vocab_size)}, "
            f"tokens={_checks.fmt_int(self.tokens)}, spilled_runs={self.spilled_runs})"
        )


# ---------------------------------------------------------------------------------------------
# public entry points
# ---------------------------------------------------------------------------------------------


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
        ``V**n > 2**64`` (packed keys would not be exact), or a separator outside ``[0, V)``.

    Notes
    -----
    Keys are partitioned by their high bits into cache-sized buckets (two passes over the
    stream: histogram, scatter), each bucket is radix- or counting-sorted, and runs are
    encoded: O(N) time, multi-core, identical for any thread count. Extra memory without a
    budget: 4 (or 8, for keys over 2**52) bytes per token for blocks of up to 2**27 tokens,
    plus 16 bytes per distinct n-gram.

    Examples
    --------
    >>> import numpy as np
    >>> from fastgram import count_ngrams
    >>> c = count_ngrams(np.array([5, 1, 2, 0, 1, 2], np.uint8), 2, separator=0)
    >>> c.ngrams.tolist(), c.counts.tolist()
    ([[1, 2], [5, 1]], [2, 1])
    """
    n = _check_order(n)
    tokens = _checks.as_token_stream(tokens)
    V = _checks.resolve_vocab_size(tokens, vocab_size)
    V = max(V, 1)
    _check_key_space(V, n)
    with NGramCounter(n, V, separator=separator, max_memory=max_memory, tmp_dir=tmp_dir) as counter:
        try:
            counter.update(tokens)
        except ValueError as exc:
            raise ValueError(str(exc).replace("chunk:", "tokens:", 1)) from None
        return counter.result(min_count)


def _expand_paths(paths_or_glob) -> list[str]:
    if isinstance(paths_or_glob, (str, os.PathLike)):
        text = os.fspath(paths_or_glob)
        if glob.has_magic(text):
            paths = sorted(glob.glob(text))
            if not paths:
                raise FileNotFoundError(f"{text}: no file matches this pattern")
            return paths
        return [text]
    paths = [os.fspath(p) for p in paths_or_glob]
    if not paths:
        raise ValueError("paths_or_glob: no files given")
    return paths


def count_files(
    paths_or_glob,
    n: int = 2,
    *,
    dtype=None,
    text: bool = False,
    vocab=None,
    vocab_size=None,
    separator=None,
    min_count: int = 1,
    max_memory=None,
    tmp_dir=None,
    chunk_tokens: int | None = None,
    progress: bool = False,
) -> NGramCounts:
    """Count the n-grams of several files (shards) as one stream, in bounded memory.

    Parameters
    ----------
    paths_or_glob : str, os.PathLike or list of them
        Files in order, a directory (its files sorted by name) or one glob pattern
        (``"shards/*.bin"``, matches sorted by name).
    n : int
        Order, 1 to 8.
    dtype : {"uint8", "uint16", "uint32"}, optional
        Raw token files of this dtype. Exactly one of ``dtype`` and ``text`` is given.
    text : bool
        UTF-8 text files, byte-level unless ``vocab`` is a character :class:`~fastgram.Vocab`.
    vocab : Vocab, optional
    vocab_size : int, optional
        V of raw token files; default ``max id + 1`` (one extra pass over the files).
    separator : int, optional
        Document-boundary id; it is also put between shards, so no n-gram spans two files.
        Without it the shards are counted as their concatenation.
    min_count, max_memory, tmp_dir
        As in :func:`count_ngrams`.
    chunk_tokens : int, optional
        Tokens read per chunk (default 16 Mi).
    progress : bool
        One progress bar over all files (needs ``fastgram[progress]``).

    Returns
    -------
    NGramCounts

    Raises
    ------
    FileNotFoundError, IsADirectoryError
        A missing or unreadable shard (checked before counting starts), or a pattern matching
        nothing.
    ValueError
        As :func:`count_ngrams`, with the file named; a raw file whose size is not a multiple
        of the dtype; invalid UTF-8.

    Notes
    -----
    Memory: one chunk plus the counter's working set (see :class:`NGramCounter`); the
    temporary runs are removed however the count ends.

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
    from fastgram import corpus
    from fastgram.vocab import Vocab

    n = _check_order(n)
    paths = [corpus._check_path(p) for p in corpus.expand_paths(_expand_paths(paths_or_glob))]
    for p in paths:
        if not os.access(p, os.R_OK):
            raise PermissionError(f"{p}: file is not readable")
    if text == (dtype is not None):
        raise ValueError("give exactly one of dtype= (raw token files) or text=True (UTF-8 text files)")
    chunk_tokens = _checks.require_int(chunk_tokens or corpus.CHUNK_TOKENS, "chunk_tokens", min=1)
    if vocab is not None and not isinstance(vocab, Vocab):
        raise TypeError(f"vocab must be a fastgram.Vocab, got {type(vocab).__name__}")
    if dtype is not None:
        dt = corpus._token_dtype(dtype)
        if vocab_size is not None:
            V = _checks.require_int(vocab_size, "vocab_size", min=1)
        else:
            V = max(max(corpus.scan_max(p, dt, chunk_tokens) for p in paths) + 1, 1)
        total = sum(os.path.getsize(p) for p in paths) // dt.itemsize
        itemsize, unit = dt.itemsize, "tok"
    else:
        if vocab is None:
            vocab = Vocab.bytes()
        V = len(vocab) if vocab_size is None else _checks.require_int(vocab_size, "vocab_size", min=1)
        total = sum(os.path.getsize(p) for p in paths)
        itemsize, unit = 1, "B"
    if separator is not None:
        separator = _check_separator(separator, V)
    with NGramCounter(n, V, separator=separator, max_memory=max_memory, tmp_dir=tmp_dir) as counter:
        desc = os.path.basename(paths[0]) if len(paths) == 1 else f"{len(paths)} files"
        with corpus.progress_bar(total, desc, unit, enabled=progress) as bar:
            for index, path in enumerate(paths):
                if index and separator is not None:
                    counter.update(np.array([separator], dtype=np.uint64))
                start = counter.tokens
                for chunk, nbytes in corpus._chunks(path, dtype, vocab, chunk_tokens):
                    try:
                        counter.update(chunk)
                    except ValueError as exc:
                        raise ValueError(f"{path}: {_shift_position(str(exc), start)}") from None
                    bar.update(nbytes // itemsize)
        return counter.result(min_count)


def _shift_position(message: str, start: int) -> str:
    """Rewrite ``at position P`` (in the whole stream) as the position in the current file."""
    import re

    def fix(m):
        return f"at position {_checks.fmt_int(int(m.group(1).replace(',', '')) - start)}"

    return re.sub(r"at position ([\d,]+)", fix, message.removeprefix("chunk: "), count=1)


def count_file(path, n: int = 2, **options) -> NGramCounts:
    """Count the n-grams of one raw token file or UTF-8 text file.

    The same as :func:`count_files` with one path; ``options`` are those of
    :func:`count_files` (``dtype``, ``text``, ``vocab``, ``separator``, ``max_memory``...).

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> from fastgram.ngrams import count_file
    >>> path = os.path.join(tempfile.mkdtemp(), "train.bin")
    >>> np.array([1, 2, 1, 2], np.uint16).tofile(path)
    >>> count_file(path, 3, dtype="uint16").counts.tolist()
    [1, 1]
    """
    if glob.has_magic(os.fspath(path)) if isinstance(path, (str, os.PathLike)) else True:
        raise TypeError("count_file takes one path; use count_files for several files or a pattern")
    return count_files([path], n, **options)
