"""Categorical sampling kernels: inverse CDF with guide tables, Markov chains, filters, NLL.

Every draw is the inverse CDF of one counter-based random word (:mod:`fastgram.kernels.random`):

- integer tables (exact counts): ``cum`` is the integer running sum of a row
  (uint32 when the row totals allow, else int64), ``total = cum[-1]``,
  the target is ``t = below(word, total)``, an exact integer in ``[0, total)``;
- float tables: ``cum`` is the float64 running sum (added left to right), the target is
  ``t = uniform(word) * total``;

and the category is the smallest ``j`` with ``cum[j] > t`` (so a category of weight zero, whose
``cum`` equals its left neighbour's, is never drawn). That is ``searchsorted(cum, t, 'right')``,
which is what :mod:`fastgram.reference` computes.

Guide tables (the "cutpoint" method) make the search O(1) on average without changing its
result: with ``G = 2**k`` buckets, bucket ``g`` holds every word whose top ``k`` bits are ``g``;
``guide[g]`` is the answer for the smallest word of bucket ``g``. Targets grow with the word,
so every word of bucket ``g`` has its answer in ``[guide[g], guide[g + 1]]`` (``guide[G] = V - 1``),
found with two comparisons when the range holds at most two boundaries, by binary search
otherwise.

Tables reach the draw kernels flat (``R * V`` running sums, ``R * (G + 1)`` guide entries)
and are indexed with uint64 arithmetic: Numba adds a negative-index fix-up to every signed
index, which cost a fifth of the time of a draw from a 256 x 256 table.

Rows with ``total == 0`` have no guide and must never be drawn from: :func:`sample_rows`
checks every row id as it reads it and counts the bad ones (the wrapper then names the first),
:func:`generate_chains` reports the first chain that reaches one, and the per-call tables of
:func:`prepare_rows` are checked by their wrappers.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba.extending import overload

from fastgram._jit import kernel
from fastgram.kernels.random import below, first_words, seed_key, stream_key, uniform, word


def _target(x, total):  # pragma: no cover - typed by the overload below
    """The draw target of word ``x`` in a row of total ``total`` (see the module docstring)."""


@overload(_target)
def _target_overload(x, total):
    if isinstance(total, numba.types.Integer):
        return lambda x, total: below(x, total)  # exact integer in [0, total)
    return lambda x, total: uniform(x) * total


@kernel
def _guide_row(cum, r, gshift, guide):
    """Fill ``guide[r]`` (G + 1,) for row ``r`` of a (R, V) running-sum table with a positive total.

    ``guide[r, g]`` is the answer for the smallest word of bucket ``g`` (its target by
    :func:`_target`, as every draw computes it); O(G + V).
    """
    G = guide.shape[1] - 1
    V = cum.shape[1]
    total = cum[r, V - 1]
    j = 0
    for g in range(G):
        t = _target(np.uint64(g) << gshift, total)
        while cum[r, j] <= t:
            j += 1
        guide[r, g] = j
    guide[r, G] = V - 1


#: Unsigned constants for index arithmetic: Numba adds a negative-index fix-up to every
#: signed index, which costs a fifth of a draw's time here.
_U0 = np.uint64(0)
_U1 = np.uint64(1)
_U3 = np.uint64(3)


@kernel
def _finish(cum, base, lo, hi, t):
    """Smallest ``j`` in ``[lo, hi]`` with ``cum[base + j] > t``; ``cum[base + hi] > t`` holds.

    ``cum`` is a flat (R * V,) running-sum table, ``base`` the offset of the row, all indices
    uint64. Most guide buckets hold at most two category boundaries, so two comparisons (at
    ``lo`` and ``min(lo + 1, hi)``, added up without a data-dependent branch) settle most
    draws; the rest (``cum[base + lo + 1] <= t`` with ``hi - lo >= 3``) finish with a
    branch-free binary search over ``[lo + 2, hi]`` (the range halves each step, the comparison
    only moves its base). Two comparisons instead of one: a tenth less time for a 256 x 256
    count table, as the rarer fallback branch is mispredicted less often.
    """
    past1 = cum[base + lo] <= t
    past2 = cum[base + min(lo + _U1, hi)] <= t  # implies past1 and lo + 2 <= hi
    j = lo + np.uint64(past1) + np.uint64(past2)
    if past2 & (hi - lo >= _U3):
        n = hi - j + _U1  # the answer lies in [j, j + n)
        while n > _U1:
            half = n >> _U1
            j += half * np.uint64(cum[base + j + half - _U1] <= t)
            n -= half
    return j


@kernel
def _draw(cum, totals, guide, V, G1, r, gshift, x):
    """Category of word ``x`` in row ``r`` of a running-sum table (a uint64 id).

    ``cum`` is flat (R * V,) (uint32/int64 counts or float64 weights), ``guide`` flat
    (R * G1,) with ``G1 = G + 1``; ``V``, ``G1`` and ``r`` are uint64.
    """
    t = _target(x, totals[r])
    g = r * G1 + (x >> gshift)
    return _finish(cum, r * V, np.uint64(guide[g]), np.uint64(guide[g + _U1]), t)


@kernel(parallel=True)
def build_guides(is_int, cum_i, cum_f, totals_i, totals_f, gshift, guide):
    """Guide tables of every row: (R, V) running sums -> (R, G + 1) uint16 or int32 ``guide``."""
    R = guide.shape[0]
    for r in numba.prange(R):
        if is_int and totals_i[r] > 0:
            _guide_row(cum_i, r, gshift, guide)
        elif not is_int and totals_f[r] > 0:
            _guide_row(cum_f, r, gshift, guide)
        else:
            guide[r, :] = 0


#: Draws per task in :func:`sample_rows`: their random words are computed first, in one
#: vectorised loop, then the draws.
ROW_BLOCK = 1024


@kernel(parallel=True)
def sample_rows(is_int, cum_i, cum_f, totals_i, totals_f, guide, V, G1, gshift, rows, seed, offset, out):
    """One draw per entry: ``out[i]`` from row ``rows[i]``, word (stream ``offset + i``, index 0).

    Flat (R * V,) running sums and (R * G1,) guides, (N,) int64 rows -> (N,) int64 ``out``.
    Tasks of :data:`ROW_BLOCK` entries run in parallel. The kernel checks every row as it
    reads it (one predictable branch; a separate pass in the wrapper would cost a fifth of the
    call): an id outside ``[0, R)`` or of a row with no weight is not drawn from, its entry is
    set to -1, and the number of such entries is returned.
    """
    skey = seed_key(seed)
    N = rows.shape[0]
    bad = 0
    for blk in numba.prange((N + ROW_BLOCK - 1) // ROW_BLOCK):
        lo = blk * ROW_BLOCK
        m = min(ROW_BLOCK, N - lo)
        words = np.empty(ROW_BLOCK, np.uint64)
        first_words(skey, offset + lo, words, m)
        if is_int:
            bad += _draw_block(cum_i, totals_i, guide, V, G1, gshift, rows[lo : lo + m], words, out[lo : lo + m])
        else:
            bad += _draw_block(cum_f, totals_f, guide, V, G1, gshift, rows[lo : lo + m], words, out[lo : lo + m])
    return bad


@kernel
def _draw_block(cum, totals, guide, V, G1, gshift, rows, words, out):
    """``out[k]``: the draw of word ``words[k]`` from row ``rows[k]`` for ``k < len(rows)``.

    An id outside ``[0, R)`` or of a row with no weight gets ``out[k] = -1``; returns their
    number. Integer tables (``totals`` int64) use exact integer targets, float ones
    ``uniform * total``.
    """
    R = np.uint64(totals.shape[0])
    bad = 0
    for k in range(np.uint64(rows.shape[0])):
        r = np.uint64(rows[k])  # a negative id wraps to a huge one
        if r < R and totals[r] > 0:
            out[k] = np.int64(_draw(cum, totals, guide, V, G1, r, gshift, words[k]))
        else:
            out[k] = -1
            bad += 1
    return bad


#: Chains advanced together by one thread in :func:`generate_chains`.
CHAIN_GROUP = 8


@kernel(parallel=True)
def generate_chains(
    is_int, cum_i, cum_f, totals_i, totals_f, guide, V, G1, gshift, start, seed, offset, stop, out, fail
):
    """Markov chains: ``out[b, t]`` is drawn from row ``out[b, t - 1]`` (row ``start[b]`` at t = 0).

    Flat (V * V,) running sums and (V * G1,) guides, (B,) int64 start in ``[0, V)`` -> (B, L)
    int64 ``out``. Draw ``(b, t)`` uses word (stream ``offset + b``, index ``t``). When
    ``stop >= 0`` and a chain draws ``stop``, its remaining positions are set to ``stop``.
    ``fail[b]`` is the step at which chain ``b`` needed a draw from a row with no weight (-1
    if none); the chain stops there (rest -1).

    Each draw depends on the one before, so one chain is bound by memory latency; a thread
    therefore advances :data:`CHAIN_GROUP` independent chains step by step, letting the CPU
    overlap their draws. Groups run in parallel.
    """
    skey = seed_key(seed)
    B, L = out.shape
    for grp in numba.prange((B + CHAIN_GROUP - 1) // CHAIN_GROUP):
        b0 = grp * CHAIN_GROUP
        m = min(CHAIN_GROUP, B - b0)
        keys = np.empty(CHAIN_GROUP, np.uint64)  # (m,) stream keys
        cur = np.empty(CHAIN_GROUP, np.uint64)  # (m,) current token of each chain
        live = np.zeros(CHAIN_GROUP, np.bool_)  # (m,) still drawing
        for c in range(m):
            keys[c] = stream_key(skey, offset + b0 + c)
            cur[c] = np.uint64(start[b0 + c])
            live[c] = True
            fail[b0 + c] = -1
        for t in range(L):
            for c in range(m):
                if not live[c]:
                    continue
                b = b0 + c
                r = cur[c]
                if (is_int and totals_i[r] == 0) or (not is_int and totals_f[r] == 0):
                    fail[b] = t
                    out[b, t:] = -1
                    live[c] = False
                    continue
                x = word(keys[c], t)
                if is_int:
                    nxt = _draw(cum_i, totals_i, guide, V, G1, r, gshift, x)
                else:
                    nxt = _draw(cum_f, totals_f, guide, V, G1, r, gshift, x)
                out[b, t] = np.int64(nxt)
                cur[c] = nxt
                if np.int64(nxt) == stop:
                    out[b, t + 1 :] = stop
                    live[c] = False


@kernel(parallel=True)
def prepare_rows(w, top_k, q, min_p, cum, totals, guide, gshift, use_guide):
    """Filter float64 weights in place, then cumulative sums and guide tables, row by row.

    (B, V) ``w`` -> (B, V) float64 ``cum`` (may be ``w`` itself), (B,) ``totals`` and
    (B, G + 1) uint16 or int32 ``guide``.
    Filters (each skipped at its neutral value), in this order:

    - ``top_k < V``: zero every weight below the ``top_k``-th largest (ties all kept);
    - ``q >= 0`` (``q = 1 - top_p``): in ascending order of weight (ties: higher id first),
      zero the weights whose running sum is ``<= q * total`` except the largest;
    - ``min_p > 0``: zero every weight below ``min_p`` (the largest weight is 1).
    """
    B, V = w.shape
    for b in numba.prange(B):
        row = w[b]
        if top_k < V:
            kth = np.partition(row.copy(), V - top_k)[V - top_k]
            for i in range(V):
                if row[i] < kth:
                    row[i] = 0.0
        if q >= 0.0:
            desc = np.argsort(-row, kind="mergesort")  # descending, ties by lower id first
            acc = np.empty(V, np.float64)
            s = 0.0
            for i in range(V):  # ascending order = descending order reversed
                s += row[desc[V - 1 - i]]
                acc[i] = s
            limit = q * acc[V - 1]
            for i in range(V - 1):
                if acc[i] <= limit:
                    row[desc[V - 1 - i]] = 0.0
                else:
                    break
        if min_p > 0.0:
            for i in range(V):
                if row[i] < min_p:
                    row[i] = 0.0
        s = 0.0
        crow = cum[b]
        for i in range(V):
            s += row[i]
            crow[i] = s
        totals[b] = s
        if use_guide:
            _guide_row(cum, b, gshift, guide)


#: Draws per task in :func:`draw_rows` (a task is one row's slice of draws).
DRAW_CHUNK = 1 << 14


@kernel(parallel=True)
def draw_rows(cum, totals, guide, gshift, use_guide, seed, offset, out):
    """``out[b, j]``: draw from row ``b`` with word (stream ``offset + b``, index ``j``).

    (B, V) float64 running sums -> (B, n) int64 ``out``. Tasks of :data:`DRAW_CHUNK` draws of
    one row run in parallel, so a single row with many draws uses every thread too; a task
    computes its words :data:`ROW_BLOCK` at a time in a vectorised loop, then the draws.

    The coarse guides of per-call tables (one bucket per 8 categories) leave a binary search
    to about a fifth of the draws from a row of 50,257 softmax weights; those searches run in lockstep, a fixed
    number of halvings (enough for the widest bucket of the row) with clamped reads, so one
    draw's loads never wait on another's and no branch depends on the data: a third of the
    time of searching each draw to its end in turn. Extra memory: five (ROW_BLOCK,) arrays
    per task.
    """
    skey = seed_key(seed)
    B, n = out.shape
    chunks = (n + DRAW_CHUNK - 1) // DRAW_CHUNK
    for task in numba.prange(B * chunks):
        b = task // chunks
        lo = (task - b * chunks) * DRAW_CHUNK
        hi = min(lo + DRAW_CHUNK, n)
        key = stream_key(skey, offset + b)
        words = np.empty(ROW_BLOCK, np.uint64)  # (m,) random words of a block of draws
        targets = np.empty(ROW_BLOCK, np.float64)  # (m,) their targets in [0, total)
        at = np.empty(ROW_BLOCK, np.uint64)  # (m,) search position: the answer is in [at, at + half)
        ends = np.empty(ROW_BLOCK, np.uint64)  # (m,) last category of the guide bucket
        todo = np.empty(ROW_BLOCK, np.int64)  # (nf,) draws that two comparisons did not settle
        total = totals[b]
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
            # two comparisons settle most draws (as in _finish); the rest are listed in
            # ``todo`` and searched together, every one taking its step s before any takes
            # step s + 1, so their loads overlap instead of waiting on one another
            nf = 0
            for k in range(m):
                x = words[k]
                t = uniform(x) * total
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


@kernel(parallel=True)
def draw_without_replacement(w, seed, offset, out):
    """Sequential draws without replacement: (B, V) float64 weights -> (B, n) int64 ``out``.

    Draw ``j`` of row ``b`` uses word (stream ``offset + b``, index ``j``) over the weights
    left after the earlier draws (drawn ones set to zero; running sums left to right). Each
    row needs ``n`` positive weights. O(n V) per row.
    """
    skey = seed_key(seed)
    B, V = w.shape
    n = out.shape[1]
    for b in numba.prange(B):
        key = stream_key(skey, offset + b)
        left = w[b].copy()
        for j in range(n):
            total = 0.0
            for i in range(V):
                total += left[i]
            t = uniform(word(key, j)) * total
            s = 0.0
            pick = V - 1
            for i in range(V):
                s += left[i]
                if s > t:
                    pick = i
                    break
            out[b, j] = pick
            left[pick] = 0.0


@kernel(parallel=True)
def nll_blocks(tokens, prob, block, out):
    """Per-block sums of ``-log(prob[a, b])`` over consecutive pairs of a token chunk.

    (N,) unsigned ids, (V, V) float64 -> (ceil((N - 1) / block),) float64 ``out``; pairs
    ``[k * block, (k + 1) * block)`` go to ``out[k]``, summed left to right, blocks in parallel.
    """
    pairs = tokens.shape[0] - 1
    for k in numba.prange(out.shape[0]):
        lo = k * block
        hi = min(lo + block, pairs)
        s = 0.0
        for i in range(lo, hi):
            s -= math.log(prob[tokens[i], tokens[i + 1]])
        out[k] = s
