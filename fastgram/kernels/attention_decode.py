"""Split-KV ("flash-decoding") attention kernel for a few queries against a long KV cache.

Decoding asks one (or a few) queries per head against a cache of ``S`` keys: too little work
per head for query tiles, and on two cores a single head must use both. So a work item is one
*split*, a run of :data:`SPLIT` consecutive keys of one (batch, key/value head), taken for all
``G * T`` query rows that read that head (``G = H // H_kv`` query heads of a GQA group times
``T`` queries): each K and V row is read from memory once per group and used ``G * T`` times
while it is in L1. The item walks its keys in tiles of :data:`TILE` with an online softmax and
leaves a partial result per row: its running maximum ``m``, sum ``l`` (base 2) and unnormalised
output. A serial pass then merges the partials of each row by their log-sum-exp,

    M = max_s m_s,   L = sum_s l_s 2**(m_s - M),   out = sum_s acc_s 2**(m_s - M) / L.

Splits have a fixed size (not one per thread), so the result does not depend on the thread
count. The wrapper (:func:`fastgram.attention.attention`) deals the items to
:func:`numba.get_num_threads` contiguous runs, one scratch set each, with
:func:`fastgram._jit.parallel_chunks` (or runs them all in its own thread), then calls
:func:`merge_splits`.

Rows are held as ``(rows, keys)`` and ``(rows, Dv)``: the scores are dot products over ``D``
(vectorised reductions, ``reassoc`` fast-math) and ``weights @ values`` adds whole value rows,
vectorised over ``Dv``. A zero weight (a masked or underflowed key) skips its value row, so
NaN or inf in masked values never reach the output.

Options, all applied inside the tiles (no mask is built): the visible key interval of each row
``[lo, hi)`` (causal and the sliding window folded together by the wrapper, see
:func:`row_interval`; splits wholly outside every row's interval are never made), the soft cap
``C tanh(s / C)``, ALiBi's ``-slope |i + S - T - j|`` and a boolean or additive mask, read in
place through 0/1 broadcast steps. Scores are in base 2 (queries pre-multiplied by
``scale * log2(e)``; soft cap, slopes and additive masks scaled by ``log2(e)`` likewise).
"""

from __future__ import annotations

import numpy as np

from fastgram._jit import kernel
from fastgram.kernels.attention import FASTMATH, LN2, LOG2E, _exp2, _tanh

__all__ = [
    "SPLIT",
    "TILE",
    "MAX_T",
    "decode_tile",
    "row_interval",
    "visible_splits",
    "decode_plan",
    "decode_items",
    "merge_splits",
]

#: Keys per work item (split); the last split of a cache may be shorter.
SPLIT = 256
#: Keys per tile inside a split, at most (longer tiles amortise the per-tile loops).
TILE = 128
#: The wrapper takes this path for T <= MAX_T queries.
MAX_T = 8


def decode_tile(rows: int, D: int) -> int:
    """Keys per tile: :data:`TILE` for one row per group; with several rows, as many keys as
    keep the tile's key rows within 16 KiB (each key's row is used by every row of the group
    as it is read; 64 KiB tiles measured the same on a 1 GiB GQA cache)."""
    if rows == 1:
        return TILE
    return max(8, min(TILE, 4096 // max(D, 1)))


@kernel
def row_interval(i, S, has_upper, upper_offset, has_lower, lower_offset):
    """Keys ``[lo, hi)`` visible to query ``i``: ``j <= i + upper_offset`` and ``j >= i + lower_offset``."""
    lo = 0
    hi = S
    if has_upper:
        hi = min(S, max(0, i + upper_offset + 1))
    if has_lower:
        lo = max(0, min(S, i + lower_offset))
    if lo > hi:
        lo = hi
    return lo, hi


@kernel
def visible_splits(T, S, has_upper, upper_offset, has_lower, lower_offset, split):
    """``(j_first, j_last, n_split)``: the keys any of the ``T`` queries sees are
    ``[j_first, j_last)`` (both 0 when none), covered by ``n_split`` splits of ``split`` keys."""
    j_first = np.int64(S)  # int64 in every branch: a literal 0 would be a second
    j_last = np.int64(0)  # specialisation of the serial kernel that takes them (~2 s of compile)
    for i in range(T):
        lo, hi = row_interval(i, S, has_upper, upper_offset, has_lower, lower_offset)
        if lo < hi:
            j_first = min(j_first, lo)
            j_last = max(j_last, hi)
    if j_first >= j_last:
        j_first = np.int64(0)
        j_last = np.int64(0)
    return j_first, j_last, (j_last - j_first + split - 1) // split


@kernel
def decode_plan(q, out, H_kv, S, has_upper, upper_offset, has_lower, lower_offset, split, n_chunks):
    """Everything :func:`decode_items` needs besides the operands, in one call:
    ``(j_first, j_last, n_split, part_m, part_l, part_acc, bounds)``.

    ``part_m``, ``part_l`` ``(items, R)`` and ``part_acc`` ``(items, R, Dv)`` (``R = H / H_kv
    T`` rows per key/value head, ``items = B H_kv n_split``, at least 1) in ``q``'s dtype;
    ``bounds`` ``(n_chunks + 1,)`` deals the items to ``n_chunks`` contiguous runs.
    """
    B, H, T, Dv = out.shape
    j_first, j_last, n_split = visible_splits(T, S, has_upper, upper_offset, has_lower, lower_offset, split)
    n_items = B * H_kv * n_split
    R = H // H_kv * T
    part_m = np.empty((max(n_items, 1), R), q.dtype)
    part_l = np.empty((max(n_items, 1), R), q.dtype)
    part_acc = np.empty((max(n_items, 1), R, Dv), q.dtype)
    bounds = np.empty(n_chunks + 1, np.int64)
    for c in range(n_chunks + 1):
        bounds[c] = n_items * c // n_chunks
    return j_first, j_last, n_split, part_m, part_l, part_acc, bounds


@kernel(fastmath=FASTMATH)
def decode_items(
    w_lo, w_hi, j_first, j_last, n_split, q, k, v, S, q_batch, k_batch, v_batch,
    mask_kind, mask_bool, mask_add, mask_batch, mask_h, mask_t, mask_s,
    has_upper, upper_offset, has_lower, lower_offset, softcap, alibi, alibi_b, has_alibi,
    scale,
    tile, split, part_m, part_l, part_acc,
):  # fmt: skip
    """Splits ``w_lo <= w < w_hi`` into their partial results ``part_m``, ``part_l``
    ``(items, R)`` and ``part_acc`` ``(items, R, Dv)`` (merged by :func:`merge_splits`).

    Parameters (checked by :func:`fastgram.attention.attention`)
    -------------------------------------------------------------
    j_first, j_last, n_split
        The visible splits of every (batch, key/value head) (:func:`visible_splits`): item
        ``w`` covers keys from ``j_first + (w % n_split) split`` of group ``w // n_split``.
    q, k, v, S, q_batch, k_batch, v_batch, mask_*
        As :func:`fastgram.kernels.attention.attend_items` (only keys ``j < S`` of ``k``
        and ``v`` are read: a KV cache may hold more rows than are in use).
    has_upper, upper_offset, has_lower, lower_offset
        Query ``i`` sees keys ``j`` with ``j <= i + upper_offset`` (when ``has_upper``) and
        ``j >= i + lower_offset`` (when ``has_lower``): causal masks and windows.
    softcap
        ``C`` in the scores' natural units, 0.0 for none.
    alibi, alibi_b, has_alibi
        Slopes ``(Ba, H)`` (natural units), read at ``[b * alibi_b, h]``.
    tile, split
        Keys per tile and per work item (:data:`TILE`, :data:`SPLIT`).
    part_m, part_l : (items, R), part_acc : (items, R, Dv)
        Per item and query row (``R = G T``): running maximum, sum (base 2) and unnormalised
        output.
    """
    H = q.shape[1]
    T = q.shape[2]
    D = q.shape[3]
    Dv = v.shape[3]
    H_kv = k.shape[1]
    G = H // H_kv
    R = G * T
    consts = np.empty(8, q.dtype)
    consts[0] = scale * LOG2E
    consts[1] = LOG2E
    consts[2] = LN2
    consts[3] = -np.inf
    consts[4] = 0.0
    consts[5] = 1.0
    consts[6] = softcap * LOG2E
    consts[7] = 1.0 / (softcap * LOG2E) if softcap > 0 else 0.0
    q_factor, mask_factor, neg_inf, zero, unit = consts[0], consts[1], consts[3], consts[4], consts[5]
    cap, inv_cap = consts[6], consts[7]
    capped = softcap > 0

    qs = np.empty((R, D), q.dtype)  # scaled queries of the group's rows
    sc = np.empty((R, tile), q.dtype)  # scores, then weights
    acc = np.empty((R, Dv), q.dtype)
    m = np.empty(R, q.dtype)
    l = np.empty(R, q.dtype)  # noqa: E741
    lo_r = np.empty(R, np.int64)
    hi_r = np.empty(R, np.int64)
    tmp = np.empty(1, q.dtype)  # a key-query distance as a float of the inputs' dtype
    for w in range(w_lo, w_hi):
        gi = w // n_split
        a0 = j_first + (w - gi * n_split) * split
        a1 = min(j_last, a0 + split)
        b = gi // H_kv
        hk = gi - b * H_kv
        kk = k[k_batch[b], hk]  # (S_k, D), rows j < S in use
        vv = v[v_batch[b], hk]  # (S_v, Dv), rows j < S in use
        mb = mask_batch[b]
        for r in range(R):
            g = r // T
            i = r - g * T
            qrow = q[q_batch[b], hk * G + g, i]
            for d in range(D):
                qs[r, d] = qrow[d] * q_factor
            for dv in range(Dv):
                acc[r, dv] = zero
            m[r] = neg_inf
            l[r] = zero
            lo, hi = row_interval(i, S, has_upper, upper_offset, has_lower, lower_offset)
            lo_r[r] = lo
            hi_r[r] = hi

        for j0 in range(a0, a1, tile):
            nj = min(tile, a1 - j0)
            # scores (R, nj), one key at a time, for every row of the group while the key's
            # row is in L1: the key rows are read once, in order (and the value rows below).
            # Eight keys and four value rows a pass read several rows at once: as fast on a
            # cache in L3, but (8, 12, 1, 1024, 64) took 2.1-2.3 ms that way against
            # 1.07-1.08 ms in order on an AMD EPYC VM (a cache streamed from DRAM). With the
            # rows outside, each row of a GQA group read the tile again from L2 (a 1 GiB
            # cache took 66-68 ms against 43-47 ms). One row gets its own plain loop.
            if R == 1:
                for j in range(j0, j0 + nj):
                    s0 = zero
                    for d in range(D):
                        s0 += qs[0, d] * kk[j, d]
                    sc[0, j - j0] = s0
            else:
                for j in range(j0, j0 + nj):
                    for r in range(R):
                        s0 = zero
                        for d in range(D):
                            s0 += qs[r, d] * kk[j, d]
                        sc[r, j - j0] = s0
            for r in range(R):
                g = r // T
                i = r - g * T
                h = hk * G + g
                if capped:
                    for j in range(nj):
                        sc[r, j] = cap * _tanh(sc[r, j] * inv_cap)
                if has_alibi:
                    slope = alibi[b * alibi_b, h] * mask_factor
                    for j in range(nj):
                        tmp[0] = abs(i + S - T - j0 - j)
                        sc[r, j] -= slope * tmp[0]
                if mask_kind == 1:
                    for j in range(nj):
                        if mask_bool[mb, h * mask_h, i * mask_t, (j0 + j) * mask_s] == 0:
                            sc[r, j] = neg_inf
                elif mask_kind == 2:
                    for j in range(nj):
                        a = mask_add[mb, h * mask_h, i * mask_t, (j0 + j) * mask_s]
                        sc[r, j] = neg_inf if a == neg_inf else sc[r, j] + a * mask_factor
                lo = lo_r[r]
                hi = hi_r[r]
                if j0 < lo or j0 + nj > hi:
                    for j in range(nj):
                        if j0 + j < lo or j0 + j >= hi:
                            sc[r, j] = neg_inf
                # online softmax of the row (max ignores NaN; NaN reaches l)
                mx = m[r]
                for j in range(nj):
                    s = sc[r, j]
                    mx = s if s > mx else mx
                ms = mx if mx != neg_inf else zero
                alpha = _exp2(m[r] - ms)
                m[r] = mx
                total = zero
                for j in range(nj):
                    p = _exp2(sc[r, j] - ms)
                    sc[r, j] = p
                    total += p
                l[r] = l[r] * alpha + total
                if alpha != unit:
                    for dv in range(Dv):
                        acc[r, dv] *= alpha
            # acc (R, Dv) += weights (R, nj) @ v_tile (nj, Dv), one value row at a time, in
            # order, for every row; a zero weight (a masked key) skips its row, so its NaN/inf
            # never counts
            if R == 1:
                for j in range(nj):
                    p = sc[0, j]
                    if p != zero:
                        for dv in range(Dv):
                            acc[0, dv] += p * vv[j0 + j, dv]
            else:
                for j in range(nj):
                    for r in range(R):
                        p = sc[r, j]
                        if p != zero:
                            for dv in range(Dv):
                                acc[r, dv] += p * vv[j0 + j, dv]
        for r in range(R):
            part_m[w, r] = m[r]
            part_l[w, r] = l[r]
            for dv in range(Dv):
                part_acc[w, r, dv] = acc[r, dv]


@kernel(fastmath=FASTMATH)
def merge_splits(n_split, part_m, part_l, part_acc, out, lse, want_lse):
    """Merge the ``n_split`` partial results of each row by their log-sum-exp, in a fixed order."""
    B, H, T, Dv = out.shape
    R = part_m.shape[1]
    G = R // T
    H_kv = H // G
    n_groups = B * H_kv
    consts = np.empty(5, out.dtype)
    consts[0] = LN2
    consts[1] = -np.inf
    consts[2] = 0.0
    consts[3] = 1.0
    ln2, neg_inf, zero, unit = consts[0], consts[1], consts[2], consts[3]
    for gi in range(n_groups):
        b = gi // H_kv
        hk = gi - b * H_kv
        w0 = gi * n_split
        for r in range(R):
            g = r // T
            i = r - g * T
            h = hk * G + g
            mx = neg_inf
            for s_ in range(n_split):
                x = part_m[w0 + s_, r]
                mx = x if x > mx else mx
            ms = mx if mx != neg_inf else zero
            total = zero
            orow = out[b, h, i]
            for dv in range(Dv):
                orow[dv] = zero
            for s_ in range(n_split):
                wgt = _exp2(part_m[w0 + s_, r] - ms)
                total += part_l[w0 + s_, r] * wgt
                if wgt != zero:
                    for dv in range(Dv):
                        orow[dv] += part_acc[w0 + s_, r, dv] * wgt
            inv = zero if total == zero else unit / total
            for dv in range(Dv):
                orow[dv] *= inv
            if want_lse:
                lse[b, h, i] = (mx + np.log2(total)) * ln2 if total != zero else neg_inf
