"""Wide-key n-gram counting kernels: n-grams whose key space ``V**n`` exceeds 64 bits.

An n-gram ``(t0, ..., t{n-1})`` is split into ``K`` (2..4) groups of consecutive ids,
``gstart[k] <= j < gstart[k + 1]``; group ``k`` is packed into the uint64 word
``(t{gstart[k]} * V + ...) * V + t{gstart[k+1]-1}`` (a base-V number below ``V**size``, which
the wrapper keeps within 64 bits). The words are stored most significant group first in a row
of an ``(m, K)`` uint64 array, so the lexicographic order of the rows (word by word, as
unsigned integers) is the lexicographic order of the n-grams. The wrapper
(:mod:`fastgram.counting._runs`) guarantees ids in ``[0, V)``; ``sep == V`` means "no
separator".

Counting one block (``N`` tokens, ``T`` threads), the shape of :mod:`fastgram.kernels.ngrams`:

1. :func:`partition_wide` with ``scatter=False``: per-thread histograms ``(T, NB)`` of the
   bucket of word 0 over ``T`` equal ranges of windows (windows holding the separator are
   skipped). The bucket is monotone in word 0 and spreads by magnitude (bit length, then the
   next ``m`` bits, as a float's exponent and mantissa), so Zipf-like ids -- most first ids
   small -- still give cache-sized buckets.
2. The wrapper turns them into write offsets (bucket-major, thread-minor); with
   ``scatter=True`` each window's ``K`` words go to its bucket's rows.
3. :func:`sort_wide` sorts every bucket's rows by an MSD radix sort over the bits below the
   bucket bits (digits of 4-11 bits sized to the range, constant digits skipped, insertion
   sort under 33 rows) and compacts it to its distinct rows and their counts while it is in
   cache; a bucket is sorted by one thread.
4. :func:`emit_wide` moves the buckets' distinct rows and counts down to lie end to end, in
   place (a fresh output would have to be faulted in: slower than the move).

Every write goes to a position fixed by the histograms, so the result is the same for any
thread count. :func:`merge_wide` merges two sorted runs, :func:`find_wide` binary-searches
rows, :func:`unpack_wide` decodes rows to ids, :func:`first_unsorted_wide` validates order.
Compiled types: token views uint8/16/32/64 (step 1-2); everything else uint64 rows.
"""

from __future__ import annotations

import numpy as np
from numba.cpython.unsafe.numbers import leading_zeros

from fastgram._jit import kernel

#: Ranges of at most this many rows are finished by insertion sort.
_SMALL = 32
#: Pending ranges per thread of the MSD sort (levels x widest digit).
STACK_ROWS = 72 * 2048


@kernel
def _bitlen(x):  # pragma: no cover - jitted
    # the bit length of a uint64 (0 for 0): one count-leading-zeros instruction
    return 64 - np.int64(leading_zeros(x))


@kernel
def _bucket(x, m):  # pragma: no cover - jitted
    # monotone "floating-point" bucket of word 0 with m mantissa bits: x itself below 2**m,
    # else (bit length - m) << m | the m bits after the leading one
    L = _bitlen(x)
    if L <= m:
        return np.int64(x)
    return np.int64(((L - m) << m) | ((x >> np.uint64(L - 1 - m)) & np.uint64((1 << m) - 1)))


@kernel
def bucket_low_bits(bk, m):  # pragma: no cover - jitted
    """The low bits of word 0 not fixed by bucket ``bk`` (see :func:`_bucket`)."""
    if bk < (1 << m):
        return 0
    return (bk >> m) - 1


@kernel
def partition_wide(w_lo, w_hi, tokens, n, V, sep, gstart, m, offsets, out, scatter):  # pragma: no cover - jitted
    """Histogram (``scatter=False``) or scatter (``scatter=True``) the wide keys of a block,
    for the equal ranges of windows ``w_lo <= t < w_hi`` of ``T`` (one per thread).

    tokens : (N,) uint8/16/32/64, ids in [0, V); n : int64; V, sep : uint64
    m : int64 mantissa bits of the bucket of word 0 (:func:`_bucket`)
    gstart : (K + 1,) int64 group bounds over the n ids
    offsets : (T, NB) int64 -- histogram out (zeroed by caller) or write positions (advanced)
    out : (total, K) uint64 rows, written when ``scatter``
    """
    T = offsets.shape[0]
    Wn = tokens.shape[0] - n + 1
    K = gstart.shape[0] - 1
    KC = K if scatter else 1  # the histogram needs word 0 only
    lead = np.empty(K, np.uint64)  # V**(size of group k - 1): the weight of its first id
    for k in range(K):
        lead[k] = 1
        for _ in range(gstart[k + 1] - gstart[k] - 1):
            lead[k] *= V
    for t in range(w_lo, w_hi):
        lo = Wn * t // T
        hi = Wn * (t + 1) // T
        if lo >= hi:
            continue
        row = offsets[t]
        words = np.empty(K, np.uint64)
        for k in range(KC):
            w = np.uint64(0)
            for j in range(gstart[k], gstart[k + 1]):
                w = w * V + np.uint64(tokens[lo + j])
            words[k] = w
        last = -1  # the last separator position seen
        for j in range(n - 1):
            if np.uint64(tokens[lo + j]) == sep:
                last = lo + j
        for i in range(lo, hi):
            if i > lo:  # slide every word by one id (exact: the old first id is a term of the word)
                for k in range(KC):
                    old = np.uint64(tokens[i - 1 + gstart[k]])
                    new = np.uint64(tokens[i - 1 + gstart[k + 1]])
                    words[k] = (words[k] - old * lead[k]) * V + new
            if np.uint64(tokens[i + n - 1]) == sep:
                last = i + n - 1
            if last >= i:
                continue
            b = _bucket(words[0], m)
            if scatter:
                p = row[b]
                for k in range(K):
                    out[p, k] = words[k]
            row[b] += 1


@kernel
def _less(a, i, b, j, w0):  # pragma: no cover - jitted
    # row a[i] < row b[j], comparing words from w0 on (earlier words equal)
    for k in range(w0, a.shape[1]):
        x = a[i, k]
        y = b[j, k]
        if x != y:
            return x < y
    return False


@kernel
def _cmp(a, i, b, j):  # pragma: no cover - jitted
    # -1, 0, 1: row a[i] against row b[j], lexicographically
    for k in range(a.shape[1]):
        x = a[i, k]
        y = b[j, k]
        if x < y:
            return -1
        if x > y:
            return 1
    return 0


@kernel
def _insertion_sort_rows(a, lo, hi, w0, x):  # pragma: no cover - jitted
    # rows a[lo:hi] sorted in place by words w0..K-1; x: (1, K) scratch
    K = a.shape[1]
    for i in range(lo + 1, hi):
        if not _less(a, i, a, i - 1, w0):
            continue
        for k in range(K):
            x[0, k] = a[i, k]
        j = i - 1
        while j >= lo and _less(x, 0, a, j, w0):
            for k in range(K):
                a[j + 1, k] = a[j, k]
            j -= 1
        for k in range(K):
            a[j + 1, k] = x[0, k]


@kernel
def _msd_sort_rows(a, lo, hi, bits, w_start, b_start, tmp, stack, cnt, x):  # pragma: no cover - jitted
    """Sort rows a[lo:hi] whose words before ``w_start`` and bits of word ``w_start`` above
    ``b_start`` are equal. bits : (K,) int64 bits used by each word; tmp : (>= hi - lo, K);
    stack : (S, 4) int64; cnt : (2049,) int64."""
    K = a.shape[1]
    sp = 0
    stack[0, 0] = lo
    stack[0, 1] = hi
    stack[0, 2] = w_start
    stack[0, 3] = b_start
    sp = 1
    while sp > 0:
        sp -= 1
        rlo = stack[sp, 0]
        rhi = stack[sp, 1]
        w = stack[sp, 2]
        b = stack[sp, 3]
        while w < K and b == 0:
            w += 1
            if w < K:
                b = bits[w]
        size = rhi - rlo
        if w >= K or size < 2:
            continue
        if size <= _SMALL:
            _insertion_sort_rows(a, rlo, rhi, w, x)
            continue
        d = 4
        s = size >> 4
        while s > 0 and d < 11:
            s >>= 1
            d += 1
        if d > b:
            d = b
        sh = np.uint64(b - d)
        mask = np.uint64((1 << d) - 1)
        radix = 1 << d
        for r in range(radix + 1):
            cnt[r] = 0
        for i in range(rlo, rhi):
            cnt[((a[i, w] >> sh) & mask) + 1] += 1
        nb = b - d
        first = ((a[rlo, w] >> sh) & mask) + 1
        if cnt[first] == size:  # one digit: nothing to move; skip every bit that is constant too
            ref = a[rlo, w]
            diff = np.uint64(0)
            for i in range(rlo + 1, rhi):
                diff |= a[i, w] ^ ref
            if nb < 64:
                diff &= (np.uint64(1) << np.uint64(nb)) - np.uint64(1)
            stack[sp, 0] = rlo
            stack[sp, 1] = rhi
            stack[sp, 2] = w
            stack[sp, 3] = _bitlen(diff)  # 0: the rest of this word is equal, go on to the next
            sp += 1
            continue
        for r in range(radix):
            cnt[r + 1] += cnt[r]
        # cnt[r] = first row of digit r (relative); scatter, then copy back
        for i in range(rlo, rhi):
            r = (a[i, w] >> sh) & mask
            p = cnt[r]
            cnt[r] = p + 1
            for k in range(K):
                tmp[p, k] = a[i, k]
        for i in range(size):
            for k in range(K):
                a[rlo + i, k] = tmp[i, k]
        # cnt[r] is now the end of digit r
        start = 0
        for r in range(radix):
            end = cnt[r]
            if end - start >= 2:
                stack[sp, 0] = rlo + start
                stack[sp, 1] = rlo + end
                stack[sp, 2] = w
                stack[sp, 3] = nb
                sp += 1
            start = end


@kernel
def sort_wide(
    w_lo, w_hi, buf, starts, task_bounds, bits, m, tmp, stack, cnt, ucounts, nuniq
):  # pragma: no cover - jitted
    """Sort every bucket's rows of tasks ``w_lo <= t < w_hi``, then compact each to its distinct
    rows (at the bucket's start, their counts in ``ucounts`` at the same rows).

    buf : (total, K) uint64, bucket b at rows starts[b]:starts[b + 1]; starts : (NB + 1,)
    task_bounds : (T + 1,) bucket ranges, one per task; bits : (K,) int64 bits of each word
    m : int64 bucket mantissa bits; tmp : (T, longest, K) uint64
    stack : (T, STACK_ROWS, 4) int64; cnt : (T, 2049) int64; ucounts : (total,) int64 out
    nuniq : (NB,) int64 out
    """
    K = buf.shape[1]
    for t in range(w_lo, w_hi):
        x = np.empty((1, K), np.uint64)
        for bk in range(task_bounds[t], task_bounds[t + 1]):
            lo = starts[bk]
            hi = starts[bk + 1]
            if hi == lo:
                nuniq[bk] = 0
                continue
            _msd_sort_rows(buf, lo, hi, bits, 0, bucket_low_bits(bk, m), tmp[t], stack[t], cnt[t], x)
            u = lo  # the last distinct row so far
            ucounts[lo] = 1
            for i in range(lo + 1, hi):
                same = True
                for k in range(K):
                    if buf[i, k] != buf[u, k]:
                        same = False
                        break
                if same:
                    ucounts[u] += 1
                else:
                    u += 1
                    for k in range(K):
                        buf[u, k] = buf[i, k]
                    ucounts[u] = 1
            nuniq[bk] = u + 1 - lo


@kernel
def emit_wide(buf, ucounts, starts, nuniq):  # pragma: no cover - jitted
    """Move each bucket's distinct rows (``nuniq[b]`` at its start) and their counts down so
    that they lie end to end from row 0 of ``buf`` / ``ucounts``; returns how many.

    In place and in bucket order (a destination never passes its source): no output to
    allocate and fault in, one pass over rows already in memory.
    """
    K = buf.shape[1]
    pos = 0
    for bk in range(nuniq.shape[0]):
        lo = starts[bk]
        u = nuniq[bk]
        if pos != lo:
            for i in range(u):
                for k in range(K):
                    buf[pos + i, k] = buf[lo + i, k]
                ucounts[pos + i] = ucounts[lo + i]
        pos += u
    return pos


@kernel
def merge_wide(ka, ca, kb, cb, keys, counts):  # pragma: no cover - jitted
    """Merge two sorted unique runs of rows, adding counts of equal rows; returns the length.

    ka, kb : (ma, K), (mb, K) uint64; ca, cb : int64; keys (>= ma + mb, K), counts out
    """
    K = ka.shape[1]
    i = 0
    j = 0
    m = 0
    ma = ka.shape[0]
    mb = kb.shape[0]
    while i < ma and j < mb:
        c = _cmp(ka, i, kb, j)
        if c < 0:
            for k in range(K):
                keys[m, k] = ka[i, k]
            counts[m] = ca[i]
            i += 1
        elif c > 0:
            for k in range(K):
                keys[m, k] = kb[j, k]
            counts[m] = cb[j]
            j += 1
        else:
            for k in range(K):
                keys[m, k] = ka[i, k]
            counts[m] = ca[i] + cb[j]
            i += 1
            j += 1
        m += 1
    while i < ma:
        for k in range(K):
            keys[m, k] = ka[i, k]
        counts[m] = ca[i]
        i += 1
        m += 1
    while j < mb:
        for k in range(K):
            keys[m, k] = kb[j, k]
        counts[m] = cb[j]
        j += 1
        m += 1
    return m


@kernel
def find_wide(w_lo, w_hi, keys, queries, out):  # pragma: no cover - jitted
    """``out[q]`` = the row of ``keys`` (m, K) sorted unique equal to ``queries[q]``, or -1,
    for ``w_lo <= q < w_hi``."""
    m = keys.shape[0]
    for q in range(w_lo, w_hi):
        lo = 0
        hi = m
        while lo < hi:  # first row >= query
            mid = (lo + hi) // 2
            if _cmp(keys, mid, queries, q) < 0:
                lo = mid + 1
            else:
                hi = mid
        out[q] = lo if lo < m and _cmp(keys, lo, queries, q) == 0 else -1


@kernel
def unpack_wide(w_lo, w_hi, keys, V, gstart, out):  # pragma: no cover - jitted
    """Rows of words back to ids: (m, K) uint64 -> (m, n) uint8/16/32/64, rows ``w_lo <= i < w_hi``."""
    K = keys.shape[1]
    for i in range(w_lo, w_hi):
        for k in range(K):
            w = keys[i, k]
            for j in range(gstart[k + 1] - 1, gstart[k] - 1, -1):
                out[i, j] = w % V
                w //= V


@kernel
def first_unsorted_wide(keys):  # pragma: no cover - jitted
    """The first ``i`` with ``keys[i] <= keys[i - 1]`` (rows, lexicographically), or -1."""
    for i in range(1, keys.shape[0]):
        if _cmp(keys, i - 1, keys, i) >= 0:
            return i
    return -1


@kernel
def search_rows(keys, lo, hi, queries, qi, right):  # pragma: no cover - jitted
    """The first row ``i`` in ``[lo, hi)`` of sorted ``keys`` with ``keys[i] > queries[qi]``
    (``right``) or ``>= queries[qi]`` (otherwise), lexicographically: ``np.searchsorted``."""
    while lo < hi:
        mid = (lo + hi) // 2
        c = _cmp(keys, mid, queries, qi)
        if c < 0 or (right and c == 0):
            lo = mid + 1
        else:
            hi = mid
    return lo


@kernel
def _heap_less(keys, pos, a, b):  # pragma: no cover - jitted
    # run a's head row < run b's head row (ties by run index: any fixed order will do)
    c = _cmp(keys, pos[a], keys, pos[b])
    return c < 0 or (c == 0 and a < b)


@kernel
def _merge_heap_rows(keys, counts, lo, hi, min_count, out_keys, out_counts, out_start):  # pragma: no cover
    # k-way merge of rows keys[lo[r]:hi[r]] (each sorted unique) into out[out_start:]; returns m
    k = lo.shape[0]
    K = keys.shape[1]
    pos = lo.copy()
    heap = np.empty(k, np.int64)
    size = 0
    for r in range(k):
        if pos[r] < hi[r]:
            i = size
            heap[i] = r
            size += 1
            while i > 0:
                parent = (i - 1) // 2
                if not _heap_less(keys, pos, heap[i], heap[parent]):
                    break
                heap[parent], heap[i] = heap[i], heap[parent]
                i = parent
    m = out_start
    have = False
    cur = 0  # row of keys holding the current distinct row
    acc = 0
    while size > 0:
        r = heap[0]
        row = pos[r]
        if have and _cmp(keys, row, keys, cur) == 0:
            acc += counts[row]
        else:
            if have and acc >= min_count:
                for w in range(K):
                    out_keys[m, w] = keys[cur, w]
                out_counts[m] = acc
                m += 1
            cur = row
            acc = counts[row]
            have = True
        pos[r] += 1
        if pos[r] >= hi[r]:
            size -= 1
            heap[0] = heap[size]
        i = 0
        while True:  # sift the root down
            left = 2 * i + 1
            if left >= size:
                break
            child = left
            if left + 1 < size and _heap_less(keys, pos, heap[left + 1], heap[left]):
                child = left + 1
            if not _heap_less(keys, pos, heap[child], heap[i]):
                break
            heap[i], heap[child] = heap[child], heap[i]
            i = child
    if have and acc >= min_count:
        for w in range(K):
            out_keys[m, w] = keys[cur, w]
        out_counts[m] = acc
        m += 1
    return m - out_start


@kernel
def merge_many_wide(
    w_lo, w_hi, keys, counts, cuts, min_count, out_keys, out_counts, out_starts, out_sizes
):  # pragma: no cover
    """:func:`fastgram.kernels.ngrams.merge_many` for rows of words: keys (S, K), parts ``w_lo <= p < w_hi``."""
    for p in range(w_lo, w_hi):
        start = out_starts[p]
        out_sizes[p] = _merge_heap_rows(keys, counts, cuts[p], cuts[p + 1], min_count, out_keys, out_counts, start)
