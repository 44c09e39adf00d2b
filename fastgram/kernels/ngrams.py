"""Sparse n-gram counting kernels: partition packed keys by their high bits, sort each bucket.

An n-gram ``(t0, ..., t{n-1})`` over a vocabulary of size ``V`` is packed into the uint64 key
``((t0 * V + t1) * V + ...) * V + t{n-1}``, so sorting keys sorts n-grams lexicographically.
The wrapper (:mod:`fastgram.ngrams`) guarantees ``V**n <= 2**64`` and ids in ``[0, V)``.

Counting one block of tokens (``N`` tokens, ``W = N - n + 1`` windows, ``T`` threads):

1. :func:`partition_ngrams` with ``scatter=False``: per-thread histograms ``(T, NB)`` of the
   bucket ``key >> shift`` over ``T`` equal ranges of windows.
2. The wrapper turns the histograms into write offsets (bucket-major, thread-minor), and
   :func:`partition_ngrams` with ``scatter=True`` writes each key's low ``shift`` bits (the
   residual, uint32 or uint64) into its bucket. Buckets are contiguous and small (a few
   thousand residuals: cache-sized).
3. :func:`sort_buckets` sorts each bucket in place -- a counting sort through a dense
   per-thread table when the bucket is dense in its residual range (skewed data), an LSD radix
   sort through a per-thread buffer otherwise -- and counts its distinct residuals.
4. :func:`emit_buckets` run-length encodes the sorted buckets into sorted unique keys and
   int64 counts.

Every step writes only to positions fixed by the histograms, so the output is the same for
any thread count. Sorted runs are combined with :func:`merge_runs`.

Only these types are compiled: token views uint8/16/32/64 (steps 1-2), residuals uint32/uint64
(steps 2-4), and uint64 keys with int64 counts (merging).
"""

from __future__ import annotations

import numpy as np

from fastgram._jit import kernel

#: Buckets with at most this many residuals are sorted by insertion sort.
_SMALL_BUCKET = 32


@kernel
def partition_ngrams(w_lo, w_hi, tokens, n, V, sep, shift, offsets, out, scatter):  # pragma: no cover - jitted
    """Histogram (``scatter=False``) or scatter (``scatter=True``) the n-gram keys of a block,
    for the equal ranges of windows ``w_lo <= t < w_hi`` of ``T`` (one per thread, dealt by
    :func:`fastgram._jit.parallel_chunks`).

    tokens : (N,) uint8/16/32/64, ids in [0, V)
    n : int64 order; V, sep, shift : uint64 (sep == V when there is no separator)
    offsets : (T, NB) int64 -- histogram out (zeroed by caller), or per-(thread, bucket) write
        positions in (advanced in place)
    out : (W,) uint32/uint64 residuals ``key & (2**shift - 1)``, written when ``scatter``
    """
    T = offsets.shape[0]
    W = tokens.shape[0] - n + 1
    one = np.uint64(1)
    mask = (one << shift) - one
    for t in range(w_lo, w_hi):
        lo = W * t // T
        hi = W * (t + 1) // T
        row = offsets[t]
        for i in range(lo, hi):
            key = np.uint64(0)
            ok = True
            for j in range(n):
                tok = np.uint64(tokens[i + j])
                if tok == sep:
                    ok = False
                    break
                key = key * V + tok
            if not ok:
                continue
            b = key >> shift
            if scatter:
                out[row[b]] = key & mask
            row[b] += 1


@kernel
def _insertion_sort(a, lo, hi):  # pragma: no cover - jitted
    # a[lo:hi] sorted in place
    for i in range(lo + 1, hi):
        x = a[i]
        j = i - 1
        while j >= lo and a[j] > x:
            a[j + 1] = a[j]
            j -= 1
        a[j + 1] = x


@kernel
def _radix_sort(a, lo, hi, tmp, bits, hist):  # pragma: no cover - jitted
    # a[lo:hi] (residuals < 2**bits) sorted in place by LSD radix; tmp (>= hi - lo,), hist (>= 2**11,)
    size = hi - lo
    # digit width grows with the bucket (4..11 bits) so histograms stay small next to the data
    dmax = 4
    s = size >> 4
    while s > 0 and dmax < 11:
        s >>= 1
        dmax += 1
    passes = (bits + dmax - 1) // dmax
    if passes == 0:
        return
    d = (bits + passes - 1) // passes
    radix = 1 << d
    dmask = np.uint64(radix - 1)
    src_is_a = True
    for p in range(passes):
        sh = np.uint64(p * d)
        for r in range(radix):
            hist[r] = 0
        if src_is_a:
            for i in range(lo, hi):
                hist[(np.uint64(a[i]) >> sh) & dmask] += 1
        else:
            for i in range(size):
                hist[(np.uint64(tmp[i]) >> sh) & dmask] += 1
        total = 0
        for r in range(radix):
            c = hist[r]
            hist[r] = total
            total += c
        if src_is_a:
            for i in range(lo, hi):
                x = a[i]
                k = (np.uint64(x) >> sh) & dmask
                tmp[hist[k]] = x
                hist[k] += 1
        else:
            for i in range(size):
                x = tmp[i]
                k = (np.uint64(x) >> sh) & dmask
                a[lo + hist[k]] = x
                hist[k] += 1
        src_is_a = not src_is_a
    if not src_is_a:
        for i in range(size):
            a[lo + i] = tmp[i]


@kernel
def sort_buckets(w_lo, w_hi, buf, starts, task_bounds, shift, dense_limit, dense, tmp, hist, nuniq):  # pragma: no cover
    """Sort every bucket of tasks ``w_lo <= t < w_hi`` of ``buf`` in place and count its distinct
    residuals.

    buf : (W,) uint32/uint64 residuals, bucket b at buf[starts[b]:starts[b + 1]]
    starts : (NB + 1,) int64; task_bounds : (T + 1,) int64 bucket ranges, one per task
    shift : int64 residual bits; dense_limit : int64, buckets with size * 4 >= dense_limit are
        counting-sorted when dense has a row (dense_limit == 2**shift)
    dense : (T, 2**shift or 0) int32 per-task tables (a block has < 2**31 windows);
    tmp : (T, max radix bucket) residuals
    hist : (T, 2048) int64 radix histograms; nuniq : (NB,) int64 out
    """
    use_dense = dense.shape[1] > 0
    for t in range(w_lo, w_hi):
        for b in range(task_bounds[t], task_bounds[t + 1]):
            lo = starts[b]
            hi = starts[b + 1]
            size = hi - lo
            if size == 0:
                nuniq[b] = 0
                continue
            if use_dense and size * 4 >= dense_limit:
                # counting sort through a table over the whole residual range: O(size + 2**shift)
                table = dense[t]
                for r in range(dense_limit):
                    table[r] = 0
                for i in range(lo, hi):
                    table[buf[i]] += 1
                pos = lo
                u = 0
                for r in range(dense_limit):
                    c = table[r]
                    if c > 0:
                        u += 1
                        for k in range(c):
                            buf[pos + k] = r
                        pos += c
                nuniq[b] = u
                continue
            if size <= _SMALL_BUCKET:
                _insertion_sort(buf, lo, hi)
            else:
                _radix_sort(buf, lo, hi, tmp[t], shift, hist[t])
            u = 1
            for i in range(lo + 1, hi):
                if buf[i] != buf[i - 1]:
                    u += 1
            nuniq[b] = u


@kernel
def emit_buckets(w_lo, w_hi, buf, starts, task_bounds, shift, ustarts, keys, counts):  # pragma: no cover - jitted
    """Run-length encode the sorted buckets of tasks ``w_lo <= t < w_hi`` into sorted unique keys
    and their counts.

    buf : (W,) sorted-per-bucket residuals; ustarts : (NB,) int64 first output row per bucket
    keys : (m,) uint64 out ``(b << shift) | residual``; counts : (m,) int64 out
    """
    sh = np.uint64(shift)
    for t in range(w_lo, w_hi):
        for b in range(task_bounds[t], task_bounds[t + 1]):
            lo = starts[b]
            hi = starts[b + 1]
            if hi == lo:
                continue
            high = np.uint64(b) << sh
            pos = ustarts[b]
            run = 1
            for i in range(lo + 1, hi + 1):
                if i < hi and buf[i] == buf[i - 1]:
                    run += 1
                else:
                    keys[pos] = high | np.uint64(buf[i - 1])
                    counts[pos] = run
                    pos += 1
                    run = 1


@kernel
def merge_runs(ka, ca, kb, cb, keys, counts):  # pragma: no cover - jitted
    """Merge two sorted unique runs, adding the counts of equal keys; returns the output length.

    ka, kb : (ma,), (mb,) uint64 sorted unique; ca, cb : int64 counts
    keys, counts : (>= ma + mb,) uint64 / int64 out
    """
    i = 0
    j = 0
    m = 0
    ma = ka.shape[0]
    mb = kb.shape[0]
    while i < ma and j < mb:
        x = ka[i]
        y = kb[j]
        if x < y:
            keys[m] = x
            counts[m] = ca[i]
            i += 1
        elif y < x:
            keys[m] = y
            counts[m] = cb[j]
            j += 1
        else:
            keys[m] = x
            counts[m] = ca[i] + cb[j]
            i += 1
            j += 1
        m += 1
    while i < ma:
        keys[m] = ka[i]
        counts[m] = ca[i]
        i += 1
        m += 1
    while j < mb:
        keys[m] = kb[j]
        counts[m] = cb[j]
        j += 1
        m += 1
    return m


@kernel
def unpack_keys(w_lo, w_hi, keys, V, out):  # pragma: no cover - jitted
    """Packed keys back to id rows: (m,) uint64 -> (m, n) uint8/16/32/64, rows ``w_lo <= i < w_hi``."""
    n = out.shape[1]
    for i in range(w_lo, w_hi):
        k = keys[i]
        for j in range(n - 1, -1, -1):
            out[i, j] = k % V
            k //= V


@kernel
def _merge_heap(keys, counts, lo, hi, min_count, out_keys, out_counts, out_start):  # pragma: no cover
    # k-way merge of keys[lo[r]:hi[r]] (r < k, each sorted unique) into out[out_start:]; returns m.
    # A binary heap of run indices ordered by their cached head keys: O(S log k).
    k = lo.shape[0]
    pos = lo.copy()
    head = np.empty(k, np.uint64)
    heap = np.empty(k, np.int64)
    size = 0
    for r in range(k):
        if pos[r] < hi[r]:
            head[r] = keys[pos[r]]
            i = size
            heap[i] = r
            size += 1
            while i > 0:
                parent = (i - 1) // 2
                if head[heap[parent]] <= head[heap[i]]:
                    break
                heap[parent], heap[i] = heap[i], heap[parent]
                i = parent
    m = out_start
    have = False
    cur = np.uint64(0)
    acc = 0
    while size > 0:
        r = heap[0]
        key = head[r]
        c = counts[pos[r]]
        pos[r] += 1
        if pos[r] < hi[r]:
            head[r] = keys[pos[r]]
        else:
            size -= 1
            heap[0] = heap[size]
        i = 0
        x = heap[0]
        hx = head[x]
        while True:  # sift the root down
            left = 2 * i + 1
            if left >= size:
                break
            child = left
            hc = head[heap[left]]
            if left + 1 < size:
                hr = head[heap[left + 1]]
                if hr < hc:
                    child = left + 1
                    hc = hr
            if hx <= hc:
                break
            heap[i] = heap[child]
            i = child
        if size > 0:
            heap[i] = x
        if have and key == cur:
            acc += c
        else:
            if have and acc >= min_count:
                out_keys[m] = cur
                out_counts[m] = acc
                m += 1
            cur = key
            acc = c
            have = True
    if have and acc >= min_count:
        out_keys[m] = cur
        out_counts[m] = acc
        m += 1
    return m - out_start


@kernel
def merge_many(
    w_lo, w_hi, keys, counts, cuts, min_count, out_keys, out_counts, out_starts, out_sizes
):  # pragma: no cover
    """K-way merge of sorted unique runs laid end to end, keeping sums >= ``min_count``, for
    parts ``w_lo <= p < w_hi``.

    keys, counts : (S,) uint64 / int64
    cuts : (P + 1, k) int64 -- part p of run r is [cuts[p, r], cuts[p + 1, r]); parts split the
        key range, so equal keys always fall in one part
    out_keys, out_counts : (>= S,) out; part p writes at out_starts[p] (P,) and its length to
        out_sizes[p] (P,)
    """
    for p in range(w_lo, w_hi):
        out_sizes[p] = _merge_heap(keys, counts, cuts[p], cuts[p + 1], min_count, out_keys, out_counts, out_starts[p])
