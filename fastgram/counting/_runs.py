"""Sorted runs of packed n-gram keys: counting one block, merging runs, spilled runs on disk.

Keys are 1-D uint64 when ``V**n <= 2**64``, else rows ``(m, K)`` of K uint64 words
(:func:`key_groups`; :func:`count_block_wide`, :func:`merge_pair`, :func:`merge_sources`).

The machinery under :class:`~fastgram.counting.sparse.NGramCounter` (KenLM's approach): each
block of tokens becomes one sorted run of distinct keys and counts; runs are merged in memory
while they fit the budget, written to a scratch directory when they do not, and merged block
by block at the end. Every function takes checked inputs (the public classes check).
"""

from __future__ import annotations

import numpy as np

from fastgram._jit import even_bounds, num_threads, parallel_chunks, parallel_for
from fastgram.kernels import ngrams as _k
from fastgram.kernels import ngrams_wide as _kw

#: Target residuals per bucket: a bucket and its sort buffer stay in L2 cache.
TARGET_BUCKET = 1 << 12
#: Most bucket bits (2**20 buckets: 8 MiB of histogram per thread).
MAX_BUCKET_BITS = 20
#: Most mantissa bits of a wide key's bucket: at most ``(65 - m) << m`` buckets (116 KiB of
#: histogram per thread); more buckets cost the scatter more than they save the sorts.
WIDE_MANTISSA_BITS = 8
#: Buckets dense in a residual range of at most 2**DENSE_BITS are counting-sorted.
DENSE_BITS = 22  # int32 tables of at most 16 MiB per thread

_U64 = np.uint64
EMPTY_KEYS = np.zeros(0, np.uint64)
EMPTY_COUNTS = np.zeros(0, np.int64)


def count_block(view: np.ndarray, n: int, V: int, sep: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique keys and counts of the n-grams of ``view`` (a checked kernel view).

    Memory: 4 or 8 bytes per window (residuals) plus 16 bytes per distinct n-gram, plus
    per-thread histograms and sort buffers.
    """
    W = view.shape[0] - n + 1
    if W <= 0:
        return EMPTY_KEYS, EMPTY_COUNTS
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
    parallel_chunks(_k.partition_ngrams, even_bounds(T, T), (*args, hist, np.empty(0, resid_dtype), False))
    sizes = hist.sum(axis=0)
    starts = np.zeros(NB + 1, np.int64)
    np.cumsum(sizes, out=starts[1:])
    total = int(starts[-1])
    if total == 0:
        return EMPTY_KEYS, EMPTY_COUNTS
    # write offsets: bucket-major, thread-minor, so the layout is fixed by the histograms
    flat = hist.T.ravel()
    offsets = np.ascontiguousarray((np.cumsum(flat) - flat).reshape(NB, T).T)
    del hist, flat
    buf = np.empty(total, resid_dtype)
    parallel_chunks(_k.partition_ngrams, even_bounds(T, T), (*args, offsets, buf, True))
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
    args = (buf, starts, bounds, shift, dense_limit, dense, tmp, radix_hist, nuniq)
    parallel_chunks(_k.sort_buckets, even_bounds(T, T), args)
    del dense, tmp
    ustarts = np.cumsum(nuniq) - nuniq
    m = int(nuniq.sum())
    keys = np.empty(m, np.uint64)
    counts = np.empty(m, np.int64)
    parallel_chunks(_k.emit_buckets, even_bounds(T, T), (buf, starts, bounds, shift, ustarts, keys, counts))
    return keys, counts


def key_groups(V: int, n: int, words: int) -> np.ndarray:
    """Group bounds ``gstart`` (words + 1,) int64 of the ids packed into each key word.

    Every word but the last takes ``g`` ids (the most with ``V**g <= 2**64``), the last the
    rest; one word takes all ``n``.
    """
    if words == 1:
        return np.array([0, n], np.int64)
    g = 1
    while V ** (g + 1) <= 1 << 64:
        g += 1
    return np.array([min(k * g, n) for k in range(words)] + [n], np.int64)


def word_limits(V: int, gstart: np.ndarray) -> list[int]:
    """``V**size`` of each word's group: every word of a key lies below it."""
    return [V ** int(b - a) for a, b in zip(gstart[:-1], gstart[1:])]


def empty_keys(words: int) -> np.ndarray:
    return EMPTY_KEYS if words == 1 else np.zeros((0, words), np.uint64)


def count_block_wide(view: np.ndarray, n: int, V: int, sep: int, gstart: np.ndarray):
    """:func:`count_block` for keys of ``K = len(gstart) - 1 >= 2`` words: ``(keys (m, K), counts)``.

    Memory: ``8 (K + 1)`` bytes per window (the rows and their counts, compacted in place to
    the result), the longest bucket's sort buffer per thread; a result under half the windows
    is copied out.
    """
    K = len(gstart) - 1
    Wn = view.shape[0] - n + 1
    if Wn <= 0:
        return empty_keys(K), EMPTY_COUNTS
    limits = word_limits(V, gstart)
    bits = np.array([(lim - 1).bit_length() for lim in limits], np.int64)
    # buckets: word 0's bit length, then its next m bits (see kernels.ngrams_wide)
    m = int(min(int(bits[0]), (Wn // TARGET_BUCKET).bit_length(), WIDE_MANTISSA_BITS))
    NB = (int(bits[0]) - m + 1) << m
    T = num_threads()
    hist = np.zeros((T, NB), np.int64)
    args = (view, n, _U64(V), _U64(sep), gstart, m)
    parallel_chunks(_kw.partition_wide, even_bounds(T, T), (*args, hist, np.empty((0, K), np.uint64), False))
    sizes = hist.sum(axis=0)
    starts = np.zeros(NB + 1, np.int64)
    np.cumsum(sizes, out=starts[1:])
    total = int(starts[-1])
    if total == 0:
        return empty_keys(K), EMPTY_COUNTS
    flat = hist.T.ravel()
    offsets = np.ascontiguousarray((np.cumsum(flat) - flat).reshape(NB, T).T)
    del hist, flat
    buf = np.empty((total, K), np.uint64)
    parallel_chunks(_kw.partition_wide, even_bounds(T, T), (*args, offsets, buf, True))
    del offsets
    bounds = np.searchsorted(starts, np.arange(T + 1, dtype=np.int64) * total // T, side="left")
    bounds[0], bounds[-1] = 0, NB
    bounds = np.maximum.accumulate(bounds)
    longest = int(sizes.max())
    tmp = np.empty((T, longest, K), np.uint64)
    stack = np.empty((T, _kw.STACK_ROWS, 4), np.int64)
    cnt = np.empty((T, 2049), np.int64)
    nuniq = np.empty(NB, np.int64)
    ucounts = np.empty(total, np.int64)
    args = (buf, starts, bounds, bits, m, tmp, stack, cnt, ucounts, nuniq)
    parallel_chunks(_kw.sort_wide, even_bounds(T, T), args)
    del tmp, stack, args
    distinct = _kw.emit_wide(buf, ucounts, starts, nuniq)
    held = [buf, ucounts]
    del buf, ucounts
    return trimmed(held, distinct)


def merge_pair(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Two sorted runs merged into one (counts of equal keys added); keys 1-D or rows (m, K)."""
    if len(a[0]) == 0:
        return b
    if len(b[0]) == 0:
        return a
    size = len(a[0]) + len(b[0])
    keys = np.empty((size,) + a[0].shape[1:], np.uint64)
    counts = np.empty(size, np.int64)
    merge = _k.merge_runs if a[0].ndim == 1 else _kw.merge_wide
    m = merge(a[0], a[1], b[0], b[1], keys, counts)
    held = [keys, counts]
    del keys, counts
    return trimmed(held, m)


def trimmed(arrays: list, m: int) -> tuple:
    """The first ``m`` rows of each array of ``arrays`` (a list the caller empties to us: it
    must hold no other reference), the rest given back to the system at once: shrunk in place
    (``realloc``, no copy), or, when NumPy refuses because some view exists, copied if under
    half is used and else viewed."""
    out = []
    while arrays:
        a = arrays.pop(0)
        try:
            a.resize((m,) + a.shape[1:])
        except ValueError:
            a = a[:m].copy() if m < len(a) // 2 else a[:m]
        out.append(a)
    return tuple(out)


def merge_all(runs: list, words: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Merge sorted runs pairwise in a balanced tree: O(total * log(len(runs))).

    ``words``: the key width of the empty result when there are no runs.
    """
    runs = list(runs)
    if not runs:
        return empty_keys(words), EMPTY_COUNTS
    while len(runs) > 1:
        runs = [merge_pair(runs[i], runs[i + 1]) if i + 1 < len(runs) else runs[i] for i in range(0, len(runs), 2)]
    return runs[0]


def prune_runs(keys, counts, min_count: int):
    if min_count <= 1:
        return keys, counts
    keep = counts >= min_count
    return keys[keep], counts[keep]


# spilled runs


class RunReader:
    """Blocks of a sorted run on disk (``.keys`` uint64 and ``.counts`` int64 raw files; keys of
    ``words`` uint64 words per entry, row by row)."""

    def __init__(self, stem: str, length: int, words: int = 1):
        self.stem, self.length, self.pos, self.words = stem, length, 0, words

    @property
    def done(self) -> bool:
        return self.pos >= self.length

    def read(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        count = min(count, self.length - self.pos)
        W = self.words
        keys = np.fromfile(self.stem + ".keys", np.uint64, count * W, offset=8 * W * self.pos)
        if W > 1:
            keys = keys.reshape(-1, W)
        counts = np.fromfile(self.stem + ".counts", np.int64, count, offset=8 * self.pos)
        self.pos += count
        return keys, counts


class MemoryRun:
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
    wide = keys.ndim == 2
    longest = int(np.argmax(np.diff(starts)))
    run = keys[starts[longest] : starts[longest + 1]]
    splitters = run[(np.arange(1, P) * len(run)) // P] if len(run) >= 2 * P else run[:0]
    # distinct splitters in order (rows of a sorted run: drop repeats of the previous one)
    if not wide:
        splitters = np.unique(splitters)
    elif len(splitters) > 1:
        splitters = splitters[np.r_[True, np.any(splitters[1:] != splitters[:-1], axis=1)]]
    cuts = np.empty((len(splitters) + 2, k), np.int64)
    for r in range(k):
        lo, hi = int(starts[r]), int(starts[r + 1])
        cuts[0, r], cuts[-1, r] = lo, hi
        if wide:
            for j in range(len(splitters)):
                cuts[1 + j, r] = _kw.search_rows(keys, lo, hi, splitters, j, False)
        else:
            cuts[1:-1, r] = lo + np.searchsorted(keys[lo:hi], splitters, side="left")
    sizes_in = (cuts[1:] - cuts[:-1]).sum(axis=1)
    out_starts = np.cumsum(sizes_in) - sizes_in
    out_sizes = np.zeros(len(sizes_in), np.int64)
    args = (keys, counts, cuts, min_count, out_keys, out_counts, out_starts, out_sizes)
    parallel_for(_kw.merge_many_wide if wide else _k.merge_many, len(cuts) - 1, args)
    if len(out_sizes) == 1:
        m = int(out_sizes[0])
        return out_keys[:m].copy(), out_counts[:m].copy()
    pieces = [slice(int(a), int(a + b)) for a, b in zip(out_starts, out_sizes)]
    return np.concatenate([out_keys[sl] for sl in pieces]), np.concatenate([out_counts[sl] for sl in pieces])


def merge_sources(sources: list, block: int, min_count: int, words: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """K-way merge of sorted runs read ``block`` entries at a time, pruned by ``min_count``:
    :func:`iter_merge`'s blocks joined (memory: its buffers plus the output)."""
    kept = list(iter_merge(sources, block, min_count, words))
    if not kept:
        return empty_keys(words), EMPTY_COUNTS
    return np.concatenate([k for k, _ in kept]), np.concatenate([c for _, c in kept])


def iter_merge(sources: list, block: int, min_count: int, words: int = 1):
    """Yield the merged, pruned ``(keys, counts)`` of sorted runs in key order, a block at a time.

    Each step merges every buffered key up to the smallest "last buffered key" among the runs
    that still have data to read: all occurrences of those keys are in the buffers, so their
    sums are final. The buffers are allocated once. Memory: ``len(sources) * block * 32`` bytes
    (``8 (words + 1)`` per entry instead of 16 for keys of ``words`` words); each yielded block is
    new arrays of at most ``len(sources) * block`` entries.
    """
    k = len(sources)
    shape = (k * block,) if words == 1 else (k * block, words)
    flat_keys = np.empty(shape, np.uint64)
    flat_counts = np.empty(k * block, np.int64)
    out_keys = np.empty(shape, np.uint64)
    out_counts = np.empty(k * block, np.int64)
    bufs = [s.read(block) for s in sources]
    while any(len(b[0]) for b in bufs):
        pending = [b[0][-1] for b, s in zip(bufs, sources) if not s.done and len(b[0])]
        if words == 1:
            limit = min(pending) if pending else None
        else:  # the lexicographically smallest row
            limit = min(pending, key=lambda row: tuple(int(x) for x in row))[None, :] if pending else None
        starts = np.zeros(k + 1, np.int64)
        rest = []
        for r, (keys, counts) in enumerate(bufs):
            if limit is None:
                cut = len(keys)
            elif words == 1:
                cut = int(np.searchsorted(keys, limit, side="right"))
            else:
                cut = _kw.search_rows(keys, 0, len(keys), limit, 0, True)
            lo = int(starts[r])
            flat_keys[lo : lo + cut] = keys[:cut]
            flat_counts[lo : lo + cut] = counts[:cut]
            starts[r + 1] = lo + cut
            rest.append((keys[cut:], counts[cut:]))
        kk, cc = _merge_flat(flat_keys, flat_counts, starts, min_count, out_keys, out_counts)
        if len(kk):
            yield kk, cc
        bufs = []
        for (keys, counts), s in zip(rest, sources):
            if len(keys) < block // 2 and not s.done:
                more_k, more_c = s.read(block - len(keys))
                keys, counts = np.concatenate([keys, more_k]), np.concatenate([counts, more_c])
            bufs.append((keys, counts))
