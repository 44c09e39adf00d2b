"""Categorical sampling kernels for tables: inverse CDF with guide tables, Markov chains.

Every draw is the inverse CDF of one counter-based random word (:mod:`fastgram.kernels.random`)
against the running sums ``cum`` of a row, with a per-row *scale*:

- integer tables (exact counts): ``cum`` is the integer running sum of a row (uint32 when
  the row totals allow, else int64), ``scale = total = cum[-1]``, and the target is
  ``t = below(word, total)``, an exact integer in ``[0, total)``;
- float tables: ``cum`` is the float64 running sum (added left to right),
  ``scale = nextafter(total, 0)`` (the largest double below the total) and the target is
  ``t = uniform(word) * scale``.

The category is the smallest ``j`` with ``cum[j] > t``. As ``t < total = cum[-1]`` always,
that ``j`` exists, and ``cum[j] > t >= cum[j - 1]`` means category ``j`` has positive weight:
a category of weight zero is never drawn, and no search walks past its row. (``uniform * total``
itself may round up to ``total`` when the total is subnormal, which is why the float scale is
``nextafter(total, 0)``: ``uniform * scale <= scale < total`` by monotonic rounding.) This is
``searchsorted(cum, t, 'right')``, which is what :mod:`fastgram.reference` computes.

A row with no weight has ``scale = -1`` and must never be drawn from: :func:`sample_rows` checks
every row id as it reads it and counts the bad ones (the wrapper then names the first), and
:func:`generate_chains` reports the first chain that reaches one.

Guide tables (the "cutpoint" method) make the search O(1) on average without changing its
result: with ``G = 2**k`` buckets, bucket ``g`` holds every word whose top ``k`` bits are ``g``;
``guide[g]`` is the answer for the smallest word of bucket ``g``. Targets grow with the word,
so every word of bucket ``g`` has its answer in ``[guide[g], guide[g + 1]]`` (``guide[G] = n - 1``),
found with two comparisons when the range holds at most two boundaries, by binary search
otherwise.

Layouts. A *dense* table reaches the draw kernels flat (``R * V`` running sums, ``R * (G + 1)``
guide entries) with ``layout = (V, G + 1, 64 - k)`` (uint64), and is indexed with uint64
arithmetic: Numba adds a negative-index fix-up to every signed index, which cost a fifth of the
time of a draw from a 256 x 256 table. A *sparse* (CSR) table keeps only the positive entries:
``layout = (indptr, gptr, gshifts, cols)``, row ``r``'s running sums at
``cum[indptr[r]:indptr[r + 1]]`` with category ids ``cols[...]``, its own guide of
``gptr[r + 1] - gptr[r]`` entries and shift ``gshifts[r]``. Zero entries add nothing to a running
sum (integers, and ``s + 0.0 == s`` in floating point), so a CSR table draws exactly what the
dense table with the same entries draws.
"""

from __future__ import annotations

import numpy as np
from numba.core import types
from numba.extending import overload

from fastgram._jit import kernel
from fastgram.kernels.random import below, first_words, seed_key, stream_key, uniform, word

#: Unsigned constants for index arithmetic: Numba adds a negative-index fix-up to every
#: signed index, which costs a fifth of a draw's time here.
_U0 = np.uint64(0)
_U1 = np.uint64(1)
_U3 = np.uint64(3)

#: Float rows whose largest weight is at least ``BIG_WEIGHT`` are multiplied by ``SHRINK``
#: (exact: a power of two) before their running sums are taken, so that no running sum
#: overflows to inf: ``V * 2**(1024 - 64) < 2**1024`` for any ``V < 2**64``. Rows below it
#: are used as they are (their draws do not change).
BIG_WEIGHT = 2.0**960
SHRINK = 2.0**-64


def _target(x, scale):  # pragma: no cover - typed by the overload below
    """The draw target of word ``x`` in a row of scale ``scale`` (see the module docstring)."""


@overload(_target)
def _target_overload(x, scale):
    if isinstance(scale, types.Integer):
        return lambda x, scale: below(x, scale)  # exact integer in [0, total)
    return lambda x, scale: uniform(x) * scale  # <= scale = nextafter(total, 0) < total


@kernel
def guide_row(crow, scale, gshift, grow):
    """Fill the (G + 1,) guide ``grow`` of one row of (n,) running sums ``crow`` (``scale >= 0``).

    ``grow[g]`` is the answer for the smallest word of bucket ``g`` (its target by
    :func:`_target`, as every draw computes it), ``grow[G] = n - 1``; O(G + n). The search
    stops inside the row because every target is below ``crow[n - 1]``.
    """
    G = grow.shape[0] - 1
    j = 0
    for g in range(G):
        t = _target(np.uint64(g) << gshift, scale)
        while crow[j] <= t:
            j += 1
        grow[g] = j
    grow[G] = crow.shape[0] - 1


@kernel
def finish(cum, base, lo, hi, t):
    """Smallest ``j`` in ``[lo, hi]`` with ``cum[base + j] > t``; ``cum[base + hi] > t`` holds.

    ``cum`` is a flat running-sum table, ``base`` the offset of the row, all indices uint64.
    Most guide buckets hold at most two category boundaries, so two comparisons (at ``lo`` and
    ``min(lo + 1, hi)``, added up without a data-dependent branch) settle most draws; the rest
    (``cum[base + lo + 1] <= t`` with ``hi - lo >= 3``) finish with a branch-free binary search
    over ``[lo + 2, hi]`` (the range halves each step, the comparison only moves its base).
    Two comparisons instead of one: a tenth less time for a 256 x 256 count table, as the
    rarer fallback branch is mispredicted less often.
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


def _draw(cum, scales, guide, layout, r, x):  # pragma: no cover - typed by the overload below
    """Category (uint64) of word ``x`` in row ``r`` (uint64, ``scales[r] >= 0``) of a table."""


@overload(_draw)
def _draw_overload(cum, scales, guide, layout, r, x):
    if isinstance(layout, types.UniTuple) and isinstance(layout.dtype, types.Integer):

        def dense(cum, scales, guide, layout, r, x):
            V, G1, gshift = layout
            t = _target(x, scales[r])
            g = r * G1 + (x >> gshift)
            return finish(cum, r * V, np.uint64(guide[g]), np.uint64(guide[g + _U1]), t)

        return dense

    def sparse(cum, scales, guide, layout, r, x):
        indptr, gptr, gshifts, cols = layout
        t = _target(x, scales[r])
        base = np.uint64(indptr[r])
        g = np.uint64(gptr[r]) + (x >> np.uint64(gshifts[r]))
        k = finish(cum, base, np.uint64(guide[g]), np.uint64(guide[g + _U1]), t)
        return np.uint64(cols[base + k])

    return sparse


@kernel
def build_guides(w_lo, w_hi, is_int, cum_i, cum_f, scales_i, scales_f, gshift, guide):
    """Guide tables of rows ``w_lo <= r < w_hi`` of a dense table: (R, V) running sums -> (R, G + 1)
    ``guide``."""
    for r in range(w_lo, w_hi):
        if is_int and scales_i[r] >= 0:
            guide_row(cum_i[r], scales_i[r], gshift, guide[r])
        elif not is_int and scales_f[r] >= 0:
            guide_row(cum_f[r], scales_f[r], gshift, guide[r])
        else:
            guide[r, :] = 0


@kernel
def build_guides_csr(w_lo, w_hi, is_int, cum_i, cum_f, scales_i, scales_f, indptr, gptr, gshifts, guide):
    """Guide tables of rows ``w_lo <= r < w_hi`` of a CSR table: (nnz,) running sums -> (gptr[-1],)
    ``guide``."""
    for r in range(w_lo, w_hi):
        grow = guide[gptr[r] : gptr[r + 1]]
        if is_int and scales_i[r] >= 0:
            guide_row(cum_i[indptr[r] : indptr[r + 1]], scales_i[r], np.uint64(gshifts[r]), grow)
        elif not is_int and scales_f[r] >= 0:
            guide_row(cum_f[indptr[r] : indptr[r + 1]], scales_f[r], np.uint64(gshifts[r]), grow)
        else:
            grow[:] = 0


@kernel
def csr_running_sums(w_lo, w_hi, values, indptr, zero, out):
    """Running sums of rows ``w_lo <= r < w_hi`` of a CSR table, left to right: (nnz,) ``values``
    -> (nnz,) ``out``.

    Rows are summed separately (no running sum across rows, which could overflow int64);
    ``zero`` is 0 of the values' type.
    """
    for r in range(w_lo, w_hi):
        s = zero
        for i in range(indptr[r], indptr[r + 1]):
            s += values[i]
            out[i] = s


#: Draws per task in :func:`sample_rows`: their random words are computed first, in one
#: vectorised loop, then the draws.
ROW_BLOCK = 1024


def row_blocks(N: int) -> int:
    """Tasks of :func:`sample_rows` for ``N`` entries: :data:`ROW_BLOCK` entries each."""
    return (N + ROW_BLOCK - 1) // ROW_BLOCK


@kernel
def sample_rows(
    lo_block, hi_block, is_int, cum_i, cum_f, scales_i, scales_f, guide, layout, rows, seed, offset, out, bad
):
    """One draw per entry: ``out[i]`` from row ``rows[i]``, word (stream ``offset + i``, index 0),
    for the entries of tasks ``lo_block <= blk < hi_block`` (:func:`row_blocks`).

    Flat running sums and guides in a dense or CSR ``layout``, (N,) int64 rows -> (N,) int64
    ``out``. The wrapper deals spans of tasks of :data:`ROW_BLOCK` entries to threads. The
    kernel checks every row as it reads it (one predictable branch; a separate pass in the
    wrapper would cost a fifth of the call): an id outside ``[0, R)`` or of a row with no weight
    is not drawn from, its entry is set to -1, and ``bad[blk]`` gets the number of such entries
    of task ``blk``.
    """
    skey = seed_key(seed)
    N = rows.shape[0]
    for blk in range(lo_block, hi_block):
        lo = blk * ROW_BLOCK
        m = min(ROW_BLOCK, N - lo)
        words = np.empty(ROW_BLOCK, np.uint64)
        first_words(skey, offset + lo, words, m)
        if is_int:
            bad[blk] = _draw_block(cum_i, scales_i, guide, layout, rows[lo : lo + m], words, out[lo : lo + m])
        else:
            bad[blk] = _draw_block(cum_f, scales_f, guide, layout, rows[lo : lo + m], words, out[lo : lo + m])


@kernel
def _draw_block(cum, scales, guide, layout, rows, words, out):
    """``out[k]``: the draw of word ``words[k]`` from row ``rows[k]`` for ``k < len(rows)``.

    An id outside ``[0, R)`` or of a row with no weight (scale -1) gets ``out[k] = -1``;
    returns their number.
    """
    R = np.uint64(scales.shape[0])
    bad = 0
    for k in range(np.uint64(rows.shape[0])):
        r = np.uint64(rows[k])  # a negative id wraps to a huge one
        if r < R and scales[r] >= 0:
            out[k] = np.int64(_draw(cum, scales, guide, layout, r, words[k]))
        else:
            out[k] = -1
            bad += 1
    return bad


#: Chains advanced together by one thread in :func:`generate_chains`.
CHAIN_GROUP = 8


def chain_groups(B: int) -> int:
    """Tasks of :func:`generate_chains` for ``B`` chains: :data:`CHAIN_GROUP` chains each."""
    return (B + CHAIN_GROUP - 1) // CHAIN_GROUP


@kernel
def generate_chains(
    w_lo, w_hi, is_int, cum_i, cum_f, scales_i, scales_f, guide, layout, start, seed, offset, stop, out, fail
):
    """Markov chains: ``out[b, t]`` is drawn from row ``out[b, t - 1]`` (row ``start[b]`` at t = 0),
    for the chains of groups ``w_lo <= grp < w_hi`` (:func:`chain_groups`).

    Flat running sums and guides of a (V, V) table in a dense or CSR ``layout``, (B,) int64
    start in ``[0, V)`` -> (B, L) int64 ``out``. Draw ``(b, t)`` uses word (stream
    ``offset + b``, index ``t``). When ``stop >= 0`` and a chain draws ``stop``, its remaining
    positions are set to ``stop``. ``fail[b]`` is the step at which chain ``b`` needed a draw
    from a row with no weight (-1 if none); the chain stops there (rest -1).

    Each draw depends on the one before, so one chain is bound by memory latency; a thread
    therefore advances :data:`CHAIN_GROUP` independent chains step by step, letting the CPU
    overlap their draws. The wrapper deals spans of groups to threads.
    """
    skey = seed_key(seed)
    B, L = out.shape
    for grp in range(w_lo, w_hi):
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
                if (is_int and scales_i[r] < 0) or (not is_int and scales_f[r] < 0):
                    fail[b] = t
                    out[b, t:] = -1
                    live[c] = False
                    continue
                x = word(keys[c], t)
                if is_int:
                    nxt = _draw(cum_i, scales_i, guide, layout, r, x)
                else:
                    nxt = _draw(cum_f, scales_f, guide, layout, r, x)
                out[b, t] = np.int64(nxt)
                cur[c] = nxt
                if np.int64(nxt) == stop:
                    out[b, t + 1 :] = stop
                    live[c] = False
