"""Flash-style softmax attention kernel: query tiles against key tiles with an online softmax.

One work item is a block of up to :data:`BLOCK_Q` query rows of one (batch, head). It walks the
keys in tiles of :data:`BLOCK_K`, computes that tile's scores, folds them into a running
maximum and sum per query (the online softmax) and accumulates ``weights @ values``. The
``(T, S)`` score matrix never exists.

Every tile is held transposed, queries last: the scaled query tile as ``(D, BQ)``, the scores
and weights as ``(BK, BQ)``, the output tile as ``(Dv, BQ)``. So every inner loop (both
products, the running maximum, the weights, their sums, the rescaling) is element-wise over
the contiguous query axis: no horizontal reductions, and vectorised even when ``D``, ``Dv``
and ``S`` are short (the layout a compiler vectorises well; the products are blocked by hand,
4 keys x 4 dims and 4 value columns x 4 keys, so each broadcast scalar feeds several fused
multiply-adds and each pass has 4 independent accumulators; the running maximum takes 4 keys
per pass). Per thread: ``BQ (D + BK + Dv + 4)`` numbers. Query loops use unsigned indices
(signed ones make Numba add negative-index wraparound, which turned the causal mask into a
scatter and stops vectorisation) and run over whole blocks of :data:`LANES` columns; padding
columns are independent and never written out. A mask without a query axis (key padding) is
read once per key and applied to whole query blocks.

Small shapes are dominated by fixed costs, so: one parallel launch per call
(:func:`fastgram._jit.parallel_chunks` over runs from :func:`item_bounds`), and work items are
split into one contiguous run per thread with one scratch set per run, so many small heads
share a thread's buffers. This file has no ``parallel=True`` kernel: the launcher calls
:func:`attend_items`' own machine code, so its tile loops are compiled once. Splitting the
query loops into fixed 16-column blocks (a constant inner trip count) was measured and made
both small shapes ~25% slower.

Scores live in base 2: the queries are multiplied by ``scale * log2(e)`` once per tile, so the
softmax weights are ``2 ** (score - max)``, computed with a polynomial that LLVM vectorises
(:func:`_exp2`). Masked scores are set to ``-inf`` (never added to), so NaN or inf in a masked
key cannot reach the output; a value tile that holds NaN or inf takes a slower product that
skips zero weights, so such values in masked keys cannot either. No BLAS is called, so there
is no nested threading. The fast-math flags exclude ``nnan`` and ``ninf``: ``-inf`` marks
masked scores and NaN must propagate.
"""

from __future__ import annotations

import numba
import numpy as np
from numba.extending import overload

from fastgram._jit import kernel

__all__ = ["BLOCK_Q", "BLOCK_K", "LANES", "FASTMATH", "item_bounds", "attend_items"]

#: Query rows per work item (and per tile) at most.
BLOCK_Q = 128
#: Keys per tile.
BLOCK_K = 32
#: Inner loops over queries start and end on multiples of this (padding columns).
LANES = 8
#: Fast-math flags of the attention kernels: reassociation and FMA contraction only (no
#: ``nnan``/``ninf``, which would break ``-inf`` masking and NaN propagation). The tests prove
#: the accuracy bounds with these flags.
FASTMATH = {"contract", "reassoc", "nsz", "arcp"}

LOG2E = 1.4426950408889634
LN2 = 0.6931471805599453


# --- 2 ** x for x <= 0, vectorisable ---------------------------------------------------------
# x = n + f with n = round(x), |f| <= 1/2; 2 ** f by its Taylor polynomial (error below half an
# ulp of the dtype), 2 ** n by writing the exponent bits. Below the smallest normal exponent the
# result is 0 (that is where -inf, a masked score, lands); NaN stays NaN.


@kernel(fastmath=FASTMATH)
def _exp2_f32(x):
    lo = np.float32(-125.0)
    xc = x if x > lo else lo
    n = np.floor(xc + np.float32(0.5))
    f = xc - n
    p = np.float32(1.5252733804059840e-5)
    p = p * f + np.float32(1.5403530393381609e-4)
    p = p * f + np.float32(1.3333558146428443e-3)
    p = p * f + np.float32(9.6181291076284772e-3)
    p = p * f + np.float32(5.5504108664821580e-2)
    p = p * f + np.float32(2.4022650695910071e-1)
    p = p * f + np.float32(6.9314718055994531e-1)
    p = p * f + np.float32(1.0)
    bits = np.int32((np.int32(n) + np.int32(127)) << np.int32(23))
    r = p * bits.view(np.float32)
    if x >= lo:
        return r
    return np.float32(0.0) if x < lo else x


@kernel(fastmath=FASTMATH)
def _exp2_f64(x):
    lo = -1020.0
    xc = x if x > lo else lo
    n = np.floor(xc + 0.5)
    f = xc - n
    p = 1.3691488853904124e-12
    p = p * f + 2.5678435993488196e-11
    p = p * f + 4.44553827187081e-10
    p = p * f + 7.054911620801121e-09
    p = p * f + 1.0178086009239696e-07
    p = p * f + 1.3215486790144305e-06
    p = p * f + 1.5252733804059838e-05
    p = p * f + 0.00015403530393381606
    p = p * f + 0.0013333558146428441
    p = p * f + 0.009618129107628477
    p = p * f + 0.055504108664821576
    p = p * f + 0.2402265069591007
    p = p * f + 0.6931471805599453
    p = p * f + 1.0
    bits = np.int64((np.int64(n) + np.int64(1023)) << np.int64(52))
    r = p * bits.view(np.float64)
    if x >= lo:
        return r
    return 0.0 if x < lo else x


def _exp2(x):  # pragma: no cover - typed by the overload below
    return 2.0**x


@overload(_exp2)
def _exp2_overload(x):
    if x == numba.types.float32:
        return lambda x: _exp2_f32(x)
    return lambda x: _exp2_f64(x)


# --- tanh, vectorisable (the soft cap) -----------------------------------------------------------
# tanh(y) = sign(y) (1 - e) / (1 + e) with e = 2 ** (-2 |y| log2(e)); float32 takes its Taylor
# series below |y| = 0.4 (where 1 - e would lose relative accuracy), both computed branch-free.
# NaN stays NaN, +-inf gives +-1.


@kernel(fastmath=FASTMATH)
def _tanh_f32(y):
    a = y if y >= np.float32(0.0) else -y
    e = _exp2_f32(a * np.float32(-2.8853900817779268))
    t = (np.float32(1.0) - e) / (np.float32(1.0) + e)
    y2 = a * a
    p = np.float32(-1382.0 / 155925.0)
    p = p * y2 + np.float32(62.0 / 2835.0)
    p = p * y2 + np.float32(-17.0 / 315.0)
    p = p * y2 + np.float32(2.0 / 15.0)
    p = p * y2 + np.float32(-1.0 / 3.0)
    p = p * y2 + np.float32(1.0)
    t = a * p if a < np.float32(0.4) else t
    return t if y >= np.float32(0.0) else (-t if y < np.float32(0.0) else y)


@kernel(fastmath=FASTMATH)
def _tanh_f64(y):
    a = y if y >= 0.0 else -y
    e = _exp2_f64(a * -2.8853900817779268)
    t = (1.0 - e) / (1.0 + e)
    return t if y >= 0.0 else (-t if y < 0.0 else y)


def _tanh(x):  # pragma: no cover - typed by the overload below
    return np.tanh(x)


@overload(_tanh)
def _tanh_overload(x):
    if x == numba.types.float32:
        return lambda x: _tanh_f32(x)
    return lambda x: _tanh_f64(x)


@kernel
def item_bounds(B, H, T, S, causal, causal_offset, has_lower, lower_offset, n_chunks, block_q, block_k):
    """Edges of ``n_chunks`` contiguous runs of :func:`attend_items`' work items of about equal
    cost (``(n_chunks + 1,)`` int64; the result of the runs does not depend on them).

    A work item is one query block of one (batch, head): ``B H ceil(T / block_q)`` items, in the
    order ``attend_items`` numbers them; its cost is 2 plus the key tiles it visits (causal and
    window bounds as in :func:`attend_items`). O(items) time and memory.
    """
    BQ = block_q
    BK = block_k
    n_qblocks = (T + BQ - 1) // BQ
    n_items = B * H * n_qblocks
    bounds = np.zeros(n_chunks + 1, np.int64)
    if n_items > 0:
        cost = np.empty(n_items + 1, np.int64)
        cost[0] = 0
        for w in range(n_items):
            i_lo = (w % n_qblocks) * BQ
            i_hi = min(T, i_lo + BQ)
            j_end = min(S, max(0, i_hi + causal_offset)) if causal else S
            j_begin = min(S, max(0, i_lo + lower_offset)) if has_lower else 0
            cost[w + 1] = cost[w] + 2 + (max(0, j_end - j_begin) + BK - 1) // BK
        w = 0
        for c in range(1, n_chunks):
            target = cost[n_items] * c // n_chunks
            while w < n_items and cost[w] < target:
                w += 1
            bounds[c] = w
        bounds[n_chunks] = n_items
    return bounds


@kernel(fastmath=FASTMATH)
def attend_items(
    w_lo, w_hi, q, k, v, S, q_batch, k_batch, v_batch,
    mask_kind, mask_bool, mask_add, mask_batch, mask_h, mask_t, mask_s,
    causal, causal_offset, has_lower, lower_offset, softcap, alibi, alibi_b, has_alibi,
    scale, out, lse, want_lse, block_q, block_k, lanes,
):  # fmt: skip
    """``out = softmax(q kᵀ · scale + mask) v`` for work items ``w_lo <= w < w_hi``, tile by tile.

    A work item is one query block of one (batch, head), numbered ``(b H + h) ceil(T / BQ) +
    block``. The serial path calls this for all items; the parallel path deals runs of items
    (:func:`item_bounds`) to threads with :func:`fastgram._jit.parallel_chunks`. One scratch set
    per call: ``BQ (D + BK + Dv + 6)`` numbers.

    Parameters (all checked by :func:`fastgram.attention.attention`)
    ----------------------------------------------------------------
    q : (Bq, H, T, D), k : (Bk, H_kv, S_k, D), v : (Bv, H_kv, S_v, Dv)
        C-contiguous, one float dtype. Output batch ``b`` reads ``q[q_batch[b]]``,
        ``k[k_batch[b]]``, ``v[v_batch[b]]`` (broadcast leading dims, no copies); query head
        ``h`` reads key/value head ``h // (H // H_kv)``.
    S : int
        Keys in use, ``S <= S_k, S_v``: only rows ``j < S`` of each key/value head are read
        (a preallocated KV cache passed whole, not copied); every position (causal, window,
        ALiBi, mask) counts these ``S`` keys.
    mask_kind : 0 none, 1 boolean (``mask_bool``, uint8, nonzero = attend), 2 additive
        (``mask_add``, the dtype of ``q``; ``-inf`` = masked).
    mask_batch, mask_h, mask_t, mask_s
        Output batch ``b``, head ``h``, query ``i``, key ``j`` read the mask at
        ``[mask_batch[b], h * mask_h, i * mask_t, j * mask_s]`` (0 or 1 steps: broadcasting).
    causal, causal_offset
        Key ``j`` is visible to query ``i`` only when ``j <= i + causal_offset`` (the causal
        mask and the right edge of a sliding window, folded together by the wrapper).
    has_lower, lower_offset
        With ``has_lower``, key ``j`` is visible to query ``i`` only when
        ``j >= i + lower_offset`` (the left edge of a sliding window); whole key tiles before
        a query block's first visible key are skipped.
    softcap
        ``C`` (natural units) of the soft cap ``C tanh(s / C)`` on the scaled scores; 0.0 for none.
    alibi, alibi_b, has_alibi
        ALiBi slopes ``(Ba, H)``, read at ``[b * alibi_b, h]``: the bias
        ``-slope |i + S - T - j|`` is added after the soft cap.
    out : (B, H, T, Dv), lse : (B, H, T) when ``want_lse`` (else a dummy)
    block_q, block_k, lanes
        Queries per work item, keys per tile, and the multiple that inner query loops are
        padded to (see :data:`BLOCK_Q`, :data:`BLOCK_K`, :data:`LANES`). The result does not
        depend on them beyond rounding.
    """
    B, H, T, Dv = out.shape
    D = q.shape[3]
    H_kv = k.shape[1]
    group = H // H_kv
    BQ = block_q
    BQ_pad = (BQ + lanes - 1) // lanes * lanes  # scratch columns, whole blocks of lanes
    BK = block_k
    n_qblocks = (T + BQ - 1) // BQ
    consts = np.empty(9, q.dtype)
    consts[0] = scale * LOG2E
    consts[1] = LOG2E
    consts[2] = LN2
    consts[3] = -np.inf
    consts[4] = 0.0
    consts[5] = 1.0
    consts[6] = np.nan
    consts[7] = softcap * LOG2E
    consts[8] = 1.0 / (softcap * LOG2E) if softcap > 0 else 0.0
    q_factor, mask_factor, ln2, neg_inf, zero, unit = consts[0], consts[1], consts[2], consts[3], consts[4], consts[5]
    cap, inv_cap = consts[7], consts[8]
    capped = softcap > 0

    qT = np.empty((D, BQ_pad), q.dtype)  # scaled queries, transposed
    sc = np.empty((BK, BQ_pad), q.dtype)  # scores, then weights, (keys, queries)
    accT = np.empty((Dv, BQ_pad), q.dtype)  # unnormalised output, transposed
    row_max = np.empty(BQ_pad, q.dtype)
    row_sum = np.empty(BQ_pad, q.dtype)
    safe = np.empty(BQ_pad, q.dtype)
    alpha = np.empty(BQ_pad, q.dtype)
    qpos = np.empty(BQ_pad, q.dtype)  # query positions on the key axis (ALiBi)
    kpos = np.empty(1, q.dtype)
    for w in range(w_lo, w_hi):
        bh = w // n_qblocks
        i0 = (w - bh * n_qblocks) * BQ
        b = bh // H
        h = bh - b * H
        h_kv = h // group
        ni = min(BQ, T - i0)
        qq = q[q_batch[b], h]  # (T, D)
        kk = k[k_batch[b], h_kv]  # (S_k, D), rows j < S in use
        vv = v[v_batch[b], h_kv]  # (S_v, Dv), rows j < S in use
        mb = mask_batch[b]
        mh = h * mask_h
        n_pad = (ni + lanes - 1) // lanes * lanes
        for i in range(ni):
            for d in range(D):
                qT[d, i] = qq[i0 + i, d] * q_factor
        for d in range(D):
            for i in range(ni, n_pad):
                qT[d, i] = zero
        for dv in range(Dv):
            for i in range(np.uint64(n_pad)):
                accT[dv, i] = zero
        for i in range(np.uint64(n_pad)):
            row_max[i] = neg_inf
            row_sum[i] = zero

        j_end = S
        if causal:
            j_end = min(S, max(0, i0 + ni + causal_offset))
        j_begin = 0
        if has_lower:  # the block's first query sees the earliest keys
            j_begin = min(j_end, max(0, i0 + lower_offset))
        if has_alibi:
            slope = alibi[b * alibi_b, h] * mask_factor
            for i in range(np.uint64(n_pad)):
                qpos[i] = i0 + S - T
                qpos[i] += i
        for j0 in range(j_begin, j_end, BK):
            nj = min(BK, j_end - j0)
            # queries before i_lo see none of this tile's keys (causal): left untouched
            i_lo = min(ni, max(0, j0 - causal_offset - i0)) if causal else 0
            # Inner loops run over blocks of LANES queries from the block holding i_lo up to
            # n_pad (a multiple of LANES, so no scalar remainder), with unsigned indices (known
            # to be >= 0) that skip Numba's negative-index wraparound. Columns past ni are
            # padding, columns before i_lo see only -inf scores: both are left unchanged in
            # effect (and padding is never written out).
            ulo = np.uint64(i_lo - i_lo % lanes)
            uhi = np.uint64(n_pad)

            # scores (nj, ni) = k_tile (nj, D) @ qT (D, ni): 4 keys x 4 dims per pass (16
            # broadcast scalars, 4 query vectors, 4 independent accumulators)
            nj4 = nj - nj % 4
            D4 = D - D % 4
            for j in range(0, nj4, 4):
                for i in range(ulo, uhi):
                    sc[j, i] = zero
                    sc[j + 1, i] = zero
                    sc[j + 2, i] = zero
                    sc[j + 3, i] = zero
                for d in range(0, D4, 4):
                    a0 = kk[j0 + j, d]
                    a1 = kk[j0 + j, d + 1]
                    a2 = kk[j0 + j, d + 2]
                    a3 = kk[j0 + j, d + 3]
                    b0 = kk[j0 + j + 1, d]
                    b1 = kk[j0 + j + 1, d + 1]
                    b2 = kk[j0 + j + 1, d + 2]
                    b3 = kk[j0 + j + 1, d + 3]
                    c0 = kk[j0 + j + 2, d]
                    c1 = kk[j0 + j + 2, d + 1]
                    c2 = kk[j0 + j + 2, d + 2]
                    c3 = kk[j0 + j + 2, d + 3]
                    e0 = kk[j0 + j + 3, d]
                    e1 = kk[j0 + j + 3, d + 1]
                    e2 = kk[j0 + j + 3, d + 2]
                    e3 = kk[j0 + j + 3, d + 3]
                    for i in range(ulo, uhi):
                        x0 = qT[d, i]
                        x1 = qT[d + 1, i]
                        x2 = qT[d + 2, i]
                        x3 = qT[d + 3, i]
                        sc[j, i] += a0 * x0 + a1 * x1 + a2 * x2 + a3 * x3
                        sc[j + 1, i] += b0 * x0 + b1 * x1 + b2 * x2 + b3 * x3
                        sc[j + 2, i] += c0 * x0 + c1 * x1 + c2 * x2 + c3 * x3
                        sc[j + 3, i] += e0 * x0 + e1 * x1 + e2 * x2 + e3 * x3
                for d in range(D4, D):
                    a0 = kk[j0 + j, d]
                    b0 = kk[j0 + j + 1, d]
                    c0 = kk[j0 + j + 2, d]
                    e0 = kk[j0 + j + 3, d]
                    for i in range(ulo, uhi):
                        x0 = qT[d, i]
                        sc[j, i] += a0 * x0
                        sc[j + 1, i] += b0 * x0
                        sc[j + 2, i] += c0 * x0
                        sc[j + 3, i] += e0 * x0
            for j in range(nj4, nj):
                for i in range(ulo, uhi):
                    sc[j, i] = zero
                for d in range(D):
                    a0 = kk[j0 + j, d]
                    for i in range(ulo, uhi):
                        sc[j, i] += a0 * qT[d, i]

            if capped:  # s -> C tanh(s / C), in base 2: C log2(e) tanh(s / (C log2(e)))
                for j in range(nj):
                    for i in range(ulo, uhi):
                        sc[j, i] = cap * _tanh(sc[j, i] * inv_cap)
            if has_alibi:  # -slope |i + S - T - j|
                for j in range(nj):
                    kpos[0] = j0 + j
                    kp = kpos[0]
                    for i in range(ulo, uhi):
                        sc[j, i] -= slope * abs(qpos[i] - kp)
            if causal:  # key j0 + j is hidden from queries before j0 + j - offset
                for j in range(nj):
                    hide = np.uint64(min(ni, max(0, j0 + j - causal_offset - i0)))
                    for i in range(ulo, hide):
                        sc[j, i] = neg_inf
            if has_lower:  # key j0 + j is hidden from queries after j0 + j - lower_offset
                for j in range(nj):
                    first = np.uint64(min(n_pad, max(0, j0 + j - lower_offset - i0 + 1)))
                    first = first if first > ulo else ulo
                    for i in range(first, uhi):
                        sc[j, i] = neg_inf
            # A mask that does not vary with the query (mask_t == 0, e.g. key padding) is
            # read once per key and applied over whole query blocks; padding columns and
            # columns already -inf (before i_lo) are unaffected in effect.
            if mask_kind == 1 and mask_t == 0:
                for j in range(nj):
                    if mask_bool[mb, mh, 0, (j0 + j) * mask_s] == 0:
                        for i in range(ulo, uhi):
                            sc[j, i] = neg_inf
            elif mask_kind == 1:
                for j in range(nj):
                    js = (j0 + j) * mask_s
                    for i in range(i_lo, ni):
                        if mask_bool[mb, mh, (i0 + i) * mask_t, js] == 0:
                            sc[j, i] = neg_inf
            elif mask_kind == 2 and mask_t == 0:
                for j in range(nj):
                    a = mask_add[mb, mh, 0, (j0 + j) * mask_s]
                    if a == neg_inf:
                        for i in range(ulo, uhi):
                            sc[j, i] = neg_inf
                    else:
                        a = a * mask_factor
                        for i in range(ulo, uhi):
                            sc[j, i] += a
            elif mask_kind == 2:
                for j in range(nj):
                    js = (j0 + j) * mask_s
                    for i in range(i_lo, ni):
                        a = mask_add[mb, mh, (i0 + i) * mask_t, js]
                        sc[j, i] = neg_inf if a == neg_inf else sc[j, i] + a * mask_factor

            # online softmax, column by column (all element-wise over queries). A column
            # with no visible key so far keeps row_max = -inf and works against 0 instead,
            # so its weights are 0 (NaN scores stay NaN and reach row_sum).
            for i in range(ulo, uhi):
                alpha[i] = row_max[i]
            for j in range(0, nj4, 4):  # 4 keys per pass: a quarter of the stores
                for i in range(ulo, uhi):
                    m = alpha[i]
                    s = sc[j, i]
                    m = s if s > m else m
                    s = sc[j + 1, i]
                    m = s if s > m else m
                    s = sc[j + 2, i]
                    m = s if s > m else m
                    s = sc[j + 3, i]
                    alpha[i] = s if s > m else m
            for j in range(nj4, nj):
                for i in range(ulo, uhi):
                    s = sc[j, i]
                    m = alpha[i]
                    alpha[i] = s if s > m else m
            for i in range(ulo, uhi):
                m = alpha[i]
                ms = m if m != neg_inf else zero
                a = _exp2(row_max[i] - ms)
                row_max[i] = m
                safe[i] = ms
                alpha[i] = a
                row_sum[i] = row_sum[i] * a
            for j in range(nj):
                for i in range(ulo, uhi):
                    p = _exp2(sc[j, i] - safe[i])
                    sc[j, i] = p
                    row_sum[i] += p
            for dv in range(Dv):
                for i in range(ulo, uhi):
                    accT[dv, i] *= alpha[i]

            # x * 0 is 0 for finite x and NaN for NaN or inf (no nnan/ninf flags): a sum
            # that vectorises, 0 exactly when the tile's values are all finite
            v_rows = vv.reshape(vv.shape[0] * Dv)  # all S_v rows; only those of the tile are read
            nonfinite = zero
            for x in range(np.uint64(j0 * Dv), np.uint64((j0 + nj) * Dv)):
                nonfinite += v_rows[x] * zero
            finite = nonfinite == zero

            # out (Dv, ni) += v_tileᵀ (Dv, nj) @ weights (nj, ni): 4 columns x 4 keys per pass
            if finite:
                Dv4 = Dv - Dv % 4
                for dv in range(0, Dv4, 4):
                    for j in range(0, nj4, 4):
                        a0 = vv[j0 + j, dv]
                        a1 = vv[j0 + j + 1, dv]
                        a2 = vv[j0 + j + 2, dv]
                        a3 = vv[j0 + j + 3, dv]
                        b0 = vv[j0 + j, dv + 1]
                        b1 = vv[j0 + j + 1, dv + 1]
                        b2 = vv[j0 + j + 2, dv + 1]
                        b3 = vv[j0 + j + 3, dv + 1]
                        c0 = vv[j0 + j, dv + 2]
                        c1 = vv[j0 + j + 1, dv + 2]
                        c2 = vv[j0 + j + 2, dv + 2]
                        c3 = vv[j0 + j + 3, dv + 2]
                        e0 = vv[j0 + j, dv + 3]
                        e1 = vv[j0 + j + 1, dv + 3]
                        e2 = vv[j0 + j + 2, dv + 3]
                        e3 = vv[j0 + j + 3, dv + 3]
                        for i in range(ulo, uhi):
                            p0 = sc[j, i]
                            p1 = sc[j + 1, i]
                            p2 = sc[j + 2, i]
                            p3 = sc[j + 3, i]
                            accT[dv, i] += a0 * p0 + a1 * p1 + a2 * p2 + a3 * p3
                            accT[dv + 1, i] += b0 * p0 + b1 * p1 + b2 * p2 + b3 * p3
                            accT[dv + 2, i] += c0 * p0 + c1 * p1 + c2 * p2 + c3 * p3
                            accT[dv + 3, i] += e0 * p0 + e1 * p1 + e2 * p2 + e3 * p3
                    for j in range(nj4, nj):
                        a0 = vv[j0 + j, dv]
                        b0 = vv[j0 + j, dv + 1]
                        c0 = vv[j0 + j, dv + 2]
                        e0 = vv[j0 + j, dv + 3]
                        for i in range(ulo, uhi):
                            p0 = sc[j, i]
                            accT[dv, i] += a0 * p0
                            accT[dv + 1, i] += b0 * p0
                            accT[dv + 2, i] += c0 * p0
                            accT[dv + 3, i] += e0 * p0
                for dv in range(Dv4, Dv):
                    for j in range(nj):
                        a0 = vv[j0 + j, dv]
                        for i in range(ulo, uhi):
                            accT[dv, i] += a0 * sc[j, i]
            else:  # zero weights (masked keys) must not turn NaN/inf values into NaN
                for dv in range(Dv):
                    for j in range(nj):
                        a0 = vv[j0 + j, dv]
                        for i in range(ulo, uhi):
                            p = sc[j, i]
                            accT[dv, i] += a0 * p if p != zero else zero

        ob = out[b, h]  # (T, Dv)
        for i in range(ni):
            total = row_sum[i]
            alpha[i] = zero if total == zero else unit / total  # fully masked row: zeros
        for i in range(ni):
            for dv in range(Dv):
                ob[i0 + i, dv] = accT[dv, i] * alpha[i]
        if want_lse:
            for i in range(ni):
                lse[b, h, i0 + i] = (row_max[i] + np.log2(row_sum[i])) * ln2
