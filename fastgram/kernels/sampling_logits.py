"""Sampling kernels for per-call weight tables: logit filters, many draws per row, no replacement.

Targets, scales and the inverse CDF are those of :mod:`fastgram.kernels.sampling`: a float row
of running sums ``cum`` (left to right) with total ``cum[-1]`` has scale
``nextafter(total, 0)``, a draw's target is ``uniform(word) * scale < total`` and its category
the smallest ``j`` with ``cum[j] > target`` (always a category of positive weight).
"""

from __future__ import annotations

import numpy as np

from fastgram._jit import kernel
from fastgram.kernels.random import seed_key, stream_key, uniform, word
from fastgram.kernels.sampling import BIG_WEIGHT, SHRINK, guide_row
from fastgram.kernels.sampling_select import kth_largest

_U0 = np.uint64(0)
_U1 = np.uint64(1)
_U3 = np.uint64(3)


#: Bits per digit of :func:`ascending_order`'s radix sort.
RADIX_BITS = 11


@kernel
def ascending_order(row):
    """Ids of (V,) non-negative float64 ``row`` by ascending weight, ties by higher id first.

    A stable least-significant-digit radix sort of the weights' bits (non-negative doubles order
    as their bit patterns do) started from the ids in descending order: O(V) per digit, digits
    that every weight shares skipped. Extra memory: four (V,) arrays.
    """
    V = row.shape[0]
    bits = row.view(np.uint64)
    order = np.empty(V, np.int64)
    keys = np.empty(V, np.uint64)
    order2 = np.empty(V, np.int64)
    keys2 = np.empty(V, np.uint64)
    for i in range(V):
        order[i] = V - 1 - i
        keys[i] = bits[V - 1 - i]
    buckets = 1 << RADIX_BITS
    low = np.uint64(buckets - 1)
    counts = np.empty(buckets, np.int64)
    for shift in range(0, 64, RADIX_BITS):
        sh = np.uint64(shift)
        counts[:] = 0
        for i in range(V):
            counts[(keys[i] >> sh) & low] += 1
        if counts[(keys[0] >> sh) & low] == V:
            continue  # one digit for all: nothing moves
        total = 0
        for d in range(buckets):
            c = counts[d]
            counts[d] = total
            total += c
        for i in range(V):
            d = (keys[i] >> sh) & low
            at = counts[d]
            counts[d] = at + 1
            order2[at] = order[i]
            keys2[at] = keys[i]
        order, order2 = order2, order
        keys, keys2 = keys2, keys
    return order


@kernel
def prepare_rows(w_lo, w_hi, w, ks, qs, min_ps, cum, scales, totals, guide, gshift, use_guide):
    """Filter float64 weights in place, then running sums, scales and guide tables, for rows
    ``w_lo <= b < w_hi`` (the wrapper deals spans of rows to threads).

    (B, V) ``w`` (every row with a positive sum after filtering) -> (B, V) float64 ``cum``
    (may be ``w`` itself), (B,) ``scales`` (``nextafter(total, 0)``), (B,) ``totals`` and
    (B, G + 1) uint16 or int32 ``guide``. Filters of row ``b`` (each skipped at its neutral
    value), in this order:

    - ``ks[b] < V``: zero every weight below the ``ks[b]``-th largest (ties all kept);
    - ``qs[b] >= 0`` (``q = 1 - top_p``): in ascending order of weight (ties: higher id first;
      :func:`ascending_order`, no comparison sort), zero the weights whose running sum is
      ``<= q * total`` except the largest;
    - ``min_ps[b] > 0``: zero every weight below ``min_p`` (the largest weight is 1).
    """
    for b in range(w_lo, w_hi):
        scales[b], totals[b] = _prepare_row(w[b], ks[b], qs[b], min_ps[b], cum[b], guide[b], gshift, use_guide)


@kernel
def _prepare_row(row, top_k, q, min_p, crow, grow, gshift, use_guide):
    """One row of :func:`prepare_rows`: filter (V,) ``row`` in place, running sums into
    ``crow``, its guide into ``grow``; returns ``(nextafter(total, 0), total)``. O(V) memory."""
    V = row.shape[0]
    if top_k < V:
        kth = kth_largest(row, top_k, np.empty(V, np.float64))
        for i in range(V):
            if row[i] < kth:
                row[i] = 0.0
    if q >= 0.0:
        asc = ascending_order(row)  # ties: higher id first
        acc = np.empty(V, np.float64)
        s = 0.0
        for i in range(V):
            s += row[asc[i]]
            acc[i] = s
        limit = q * acc[V - 1]
        for i in range(V - 1):
            if acc[i] <= limit:
                row[asc[i]] = 0.0
            else:
                break
    if min_p > 0.0:
        for i in range(V):
            if row[i] < min_p:
                row[i] = 0.0
    s = 0.0
    for i in range(V):
        s += row[i]
        crow[i] = s
    scale = np.nextafter(s, 0.0)
    if use_guide:
        guide_row(crow, scale, gshift, grow)
    return scale, s


#: Draws per task in :func:`draw_rows` (a task is one row's slice of draws).
DRAW_CHUNK = 1 << 14

#: Draws whose random words :func:`draw_rows` computes together in one vectorised loop.
ROW_BLOCK = 1024


def draw_tasks(B: int, n: int) -> int:
    """Tasks of :func:`draw_rows` for (B, n) draws: :data:`DRAW_CHUNK` draws of one row each."""
    return B * ((n + DRAW_CHUNK - 1) // DRAW_CHUNK)


@kernel
def draw_rows(w_lo, w_hi, cum, scales, guide, gshift, use_guide, seed, streams, out):
    """``out[b, j]``: draw from row ``b`` with word (stream ``streams[b]``, index ``j``), for
    tasks ``w_lo <= task < w_hi`` (:func:`draw_tasks`).

    (B, V) float64 running sums and (B,) scales -> (B, n) int64 ``out``. A task is
    :data:`DRAW_CHUNK` draws of one row (the wrapper deals spans of tasks to threads, so a
    single row with many draws uses every thread too); it computes its words
    :data:`ROW_BLOCK` at a time in a vectorised loop, then the draws.

    The coarse guides of per-call tables (one bucket per 8 categories) leave a binary search
    to about a fifth of the draws from a row of 50,257 softmax weights; those searches run in
    lockstep, a fixed number of halvings (enough for the widest bucket of the row) with clamped
    reads, so one draw's loads never wait on another's and no branch depends on the data: a
    third of the time of searching each draw to its end in turn. Extra memory: five
    (ROW_BLOCK,) arrays per task.
    """
    skey = seed_key(seed)
    B, n = out.shape
    chunks = (n + DRAW_CHUNK - 1) // DRAW_CHUNK
    for task in range(w_lo, w_hi):
        b = task // chunks
        lo = (task - b * chunks) * DRAW_CHUNK
        hi = min(lo + DRAW_CHUNK, n)
        key = stream_key(skey, streams[b])
        words = np.empty(ROW_BLOCK, np.uint64)  # (m,) random words of a block of draws
        targets = np.empty(ROW_BLOCK, np.float64)  # (m,) their targets in [0, total)
        at = np.empty(ROW_BLOCK, np.uint64)  # (m,) search position: the answer is in [at, at + half)
        ends = np.empty(ROW_BLOCK, np.uint64)  # (m,) last category of the guide bucket
        todo = np.empty(ROW_BLOCK, np.int64)  # (nf,) draws that two comparisons did not settle
        scale = scales[b]
        if use_guide:
            G = guide.shape[1] - 1
            widest = 0
            for g in range(G):
                widest = max(widest, np.int64(guide[b, g + 1]) - np.int64(guide[b, g]))
        else:
            widest = cum.shape[1] - 1
        steps = 0
        while (np.int64(1) << steps) <= widest:
            steps += 1
        crow = cum[b]  # (V,) running sums of this row
        grow = guide[b]  # (G + 1,) or (0,)
        last = np.uint64(cum.shape[1] - 1)
        for j0 in range(lo, hi, ROW_BLOCK):
            m = min(ROW_BLOCK, hi - j0)
            for k in range(m):
                words[k] = word(key, j0 + k)
            # two comparisons settle most draws (as in kernels.sampling.finish); the rest are
            # listed in ``todo`` and searched together, every one taking its step s before any
            # takes step s + 1, so their loads overlap instead of waiting on one another
            nf = 0
            for k in range(m):
                x = words[k]
                t = uniform(x) * scale
                if use_guide:
                    g = x >> gshift
                    first = np.uint64(grow[g])
                    end = np.uint64(grow[g + _U1])
                else:
                    first = _U0
                    end = last
                past1 = crow[first] <= t
                past2 = crow[min(first + _U1, end)] <= t  # implies past1 and first + 2 <= end
                at[k] = first + np.uint64(past1) + np.uint64(past2)
                targets[k] = t
                ends[k] = end
                todo[nf] = k
                nf += np.int64(past2 & (end - first >= _U3))
            half = _U1 << np.uint64(steps)
            for _ in range(steps):
                half >>= _U1
                for q in range(nf):
                    k = todo[q]
                    at[k] += half * np.uint64(crow[min(at[k] + half - _U1, ends[k])] <= targets[k])
            for k in range(m):
                out[b, j0 + k] = np.int64(at[k])


@kernel
def draw_without_replacement(w_lo, w_hi, w, seed, offset, out):
    """Sequential draws without replacement: (B, V) float64 weights -> (B, n) int64 ``out``, rows
    ``w_lo <= b < w_hi``.

    Draw ``j`` of row ``b`` uses word (stream ``offset + b``, index ``j``) over the weights
    left after the earlier draws (drawn ones set to zero), multiplied by ``SHRINK`` when the
    largest of them is at least ``BIG_WEIGHT`` (so the running sum cannot overflow), summed
    left to right. Each row needs ``n`` positive weights. O(n V) per row.
    """
    skey = seed_key(seed)
    B, V = w.shape
    n = out.shape[1]
    for b in range(w_lo, w_hi):
        key = stream_key(skey, offset + b)
        left = w[b].copy()
        for j in range(n):
            big = 0.0
            for i in range(V):
                big = max(big, left[i])
            f = SHRINK if big >= BIG_WEIGHT else 1.0
            total = 0.0
            for i in range(V):
                total += left[i] * f
            t = uniform(word(key, j)) * np.nextafter(total, 0.0)  # < total
            s = 0.0
            pick = V - 1
            for i in range(V):
                s += left[i] * f
                if s > t:
                    pick = i
                    break
            out[b, j] = pick
            left[pick] = 0.0
