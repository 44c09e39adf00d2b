"""Flash-style softmax attention kernel: query tiles against key tiles with an online softmax.

One work item is a block of :data:`BLOCK_Q` query rows of one (batch, head). It walks the keys in
blocks of :data:`BLOCK_K`, computes that tile's scores, folds them into a running row maximum and
row sum (the online softmax) and accumulates ``weights @ values`` into a ``(BLOCK_Q, Dv)`` tile.
The ``(T, S)`` score matrix never exists: per thread the kernel holds one query tile, one score
tile, one transposed value tile and one output tile (``BLOCK_Q * (D + BLOCK_K + Dv + 3) +
BLOCK_K * Dv`` numbers).

Scores live in base 2: the queries are multiplied by ``scale * log2(e)`` once per tile, so the
softmax weights are ``2 ** (score - row_max)``, computed with a polynomial that LLVM vectorises
(:func:`_exp2`). Masked scores are set to ``-inf`` (never added to), so NaN or inf in a masked
key cannot reach the output; a value tile that holds NaN or inf takes a slower product that
skips zero weights, so such values in masked keys cannot either.

The inner products are written as reductions over a contiguous axis (``D`` for scores, keys for
the value product, through a transposed value tile), register-blocked by hand (2 queries x 4
keys, 2 queries x 4 value columns: each load feeds several fused multiply-adds) so that, with
the ``reassoc`` and ``contract`` fast-math flags, LLVM vectorises them over the contiguous axis.
No BLAS is called, so there is no nested threading. The flags exclude ``nnan`` and ``ninf``:
``-inf`` marks masked scores and NaN must propagate.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange
from numba.extending import overload

from fastgram._jit import kernel

__all__ = ["BLOCK_Q", "BLOCK_K", "FASTMATH", "attention_kernel"]

#: Query rows per work item (and per tile).
BLOCK_Q = 64
#: Keys per tile.
BLOCK_K = 128
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


# --- row maximum through order-preserving integer keys (integer max reductions vectorise) -----
# key(x) = bits ^ ((bits >> 31) & 0x7fffffff) orders floats like integers (-inf < ... < +inf <
# NaN), and applying it twice gives the bits back. A NaN score so wins the maximum, so the row
# becomes NaN, as in the reference.


@kernel(fastmath=FASTMATH)
def _row_max_f32(row, n, start):
    bits = row.view(np.int32)
    low = np.int32(0x7FFFFFFF)
    b = np.float32(start).view(np.int32)
    best = b ^ ((b >> np.int32(31)) & low)
    for j in range(n):
        b = bits[j]
        key = b ^ ((b >> np.int32(31)) & low)
        best = key if key > best else best
    return np.int32(best ^ ((best >> np.int32(31)) & low)).view(np.float32)


@kernel(fastmath=FASTMATH)
def _row_max_f64(row, n, start):
    bits = row.view(np.int64)
    low = np.int64(0x7FFFFFFFFFFFFFFF)
    b = np.float64(start).view(np.int64)
    best = b ^ ((b >> np.int64(63)) & low)
    for j in range(n):
        b = bits[j]
        key = b ^ ((b >> np.int64(63)) & low)
        best = key if key > best else best
    return np.int64(best ^ ((best >> np.int64(63)) & low)).view(np.float64)


def _row_max(row, n, start):  # pragma: no cover - typed by the overload below
    return max(start, *row[:n])


@overload(_row_max)
def _row_max_overload(row, n, start):
    if row.dtype == numba.types.float32:
        return lambda row, n, start: _row_max_f32(row, n, start)
    return lambda row, n, start: _row_max_f64(row, n, start)


def _exp2(x):  # pragma: no cover - typed by the overload below
    return 2.0**x


@overload(_exp2)
def _exp2_overload(x):
    if x == numba.types.float32:
        return lambda x: _exp2_f32(x)
    return lambda x: _exp2_f64(x)


@kernel(parallel=True, fastmath=FASTMATH)
def attention_kernel(
    q, k, v, q_batch, k_batch, v_batch,
    mask_kind, mask_bool, mask_add, mask_batch, mask_h, mask_t, mask_s,
    causal, causal_offset, scale, out, lse, want_lse, n_chunks,
):  # fmt: skip
    """``out = softmax(q kᵀ · scale + mask) v`` for every (batch, head), tile by tile.

    Parameters (all checked by :func:`fastgram.attention.attention`)
    ----------------------------------------------------------------
    q : (Bq, H, T, D), k : (Bk, H_kv, S, D), v : (Bv, H_kv, S, Dv)
        C-contiguous, one float dtype. Output batch ``b`` reads ``q[q_batch[b]]``,
        ``k[k_batch[b]]``, ``v[v_batch[b]]`` (broadcast leading dims, no copies); query head
        ``h`` reads key/value head ``h // (H // H_kv)``.
    mask_kind : 0 none, 1 boolean (``mask_bool``, uint8, nonzero = attend), 2 additive
        (``mask_add``, the dtype of ``q``; ``-inf`` = masked).
    mask_batch, mask_h, mask_t, mask_s
        Output batch ``b``, head ``h``, query ``i``, key ``j`` read the mask at
        ``[mask_batch[b], h * mask_h, i * mask_t, j * mask_s]`` (0 or 1 steps: broadcasting).
    causal, causal_offset
        Key ``j`` is visible to query ``i`` only when ``j <= i + causal_offset``.
    out : (B, H, T, Dv), lse : (B, H, T) when ``want_lse`` (else a dummy)
    n_chunks
        Work items (one query block of one batch and head) are split into ``n_chunks``
        contiguous runs of about equal cost; one scratch set per chunk. The result does not
        depend on ``n_chunks``.
    """
    B, H, T, Dv = out.shape
    D = q.shape[3]
    H_kv = k.shape[1]
    S = k.shape[2]
    group = H // H_kv
    n_qblocks = (T + BLOCK_Q - 1) // BLOCK_Q
    n_items = B * H * n_qblocks
    consts = np.empty(7, q.dtype)  # scalars in the input dtype (no float64 promotion)
    consts[0] = scale * LOG2E  # queries are scaled and moved to base 2 once per tile
    consts[1] = LOG2E
    consts[2] = LN2
    consts[3] = -np.inf
    consts[4] = 0.0
    consts[5] = 1.0
    consts[6] = np.nan
    q_factor, mask_factor, ln2, neg_inf, zero, unit = consts[0], consts[1], consts[2], consts[3], consts[4], consts[5]

    # Split the items into n_chunks contiguous runs of about equal cost (key tiles + 1 each):
    # causal items near the diagonal's end cost more than those near its start.
    bounds = np.zeros(n_chunks + 1, np.int64)
    if n_items > 0:
        cost = np.empty(n_items + 1, np.int64)
        cost[0] = 0
        for w in range(n_items):
            i_hi = min(T, (w % n_qblocks + 1) * BLOCK_Q)
            j_end = min(S, max(0, i_hi + causal_offset)) if causal else S
            cost[w + 1] = cost[w] + 1 + (j_end + BLOCK_K - 1) // BLOCK_K
        w = 0
        for c in range(1, n_chunks):
            target = cost[n_items] * c // n_chunks
            while w < n_items and cost[w] < target:
                w += 1
            bounds[c] = w
        bounds[n_chunks] = n_items

    for c in prange(n_chunks):
        # per-chunk scratch, O(tile)
        qs_flat = np.empty(BLOCK_Q * D, q.dtype)
        qs = qs_flat.reshape((BLOCK_Q, D))  # scaled query tile
        sc = np.empty((BLOCK_Q, BLOCK_K), q.dtype)  # scores, then weights
        vt = np.empty((Dv, BLOCK_K), q.dtype)  # value tile, transposed
        acc_flat = np.empty(BLOCK_Q * Dv, q.dtype)
        acc = acc_flat.reshape((BLOCK_Q, Dv))  # unnormalised output tile
        row_max = np.empty(BLOCK_Q, q.dtype)
        row_sum = np.empty(BLOCK_Q, q.dtype)
        alpha = np.empty(BLOCK_Q, q.dtype)
        for w in range(bounds[c], bounds[c + 1]):
            bh = w // n_qblocks
            i0 = (w - bh * n_qblocks) * BLOCK_Q
            b = bh // H
            h = bh - b * H
            h_kv = h // group
            ni = min(BLOCK_Q, T - i0)
            qq = q[q_batch[b], h]  # (T, D)
            kk = k[k_batch[b], h_kv]  # (S, D)
            vv = v[v_batch[b], h_kv]  # (S, Dv)
            mb = mask_batch[b]
            mh = h * mask_h

            # rows i0 .. i0 + ni are contiguous: copy and clear them as flat runs (long loops
            # vectorise, short rows of D or Dv numbers would not)
            q_rows = qq.reshape(T * D)
            for x in range(ni * D):
                qs_flat[x] = q_rows[i0 * D + x] * q_factor
            for x in range(ni * Dv):
                acc_flat[x] = zero
            for i in range(ni):
                row_max[i] = neg_inf
                row_sum[i] = zero

            j_end = S
            if causal:
                j_end = min(S, max(0, i0 + ni + causal_offset))
            for j0 in range(0, j_end, BLOCK_K):
                nj = min(BLOCK_K, j_end - j0)
                if mask_kind != 0:  # a tile the mask hides from every query adds nothing: skip it
                    hidden = True
                    for i in range(ni if mask_t else 1):
                        mt = (i0 + i) * mask_t
                        for j in range(nj):
                            if mask_kind == 1:
                                visible = mask_bool[mb, mh, mt, (j0 + j) * mask_s] != 0
                            else:
                                visible = mask_add[mb, mh, mt, (j0 + j) * mask_s] != neg_inf
                            if visible:
                                hidden = False
                                break
                        if not hidden:
                            break
                    if hidden:
                        continue

                # (BQ, D) x (D, BK) -> (BQ, BK): blocks of 2 queries x 4 keys share their loads.
                # On a tile crossing the causal diagonal, query i sees only its first
                # first_hidden0 + i keys: the others are neither computed nor read.
                diagonal = causal and j0 + nj - 1 > i0 + causal_offset
                first_hidden0 = i0 + causal_offset + 1 - j0  # visible keys of query 0
                ni2 = ni - ni % 2
                for i in range(0, ni, 2):
                    pair = i < ni2
                    last = i + 1 if pair else i
                    jl = min(nj, max(0, first_hidden0 + last)) if diagonal else nj
                    jl4 = jl - jl % 4
                    if pair:
                        for j in range(0, jl4, 4):
                            s0 = zero
                            s1 = zero
                            s2 = zero
                            s3 = zero
                            t0 = zero
                            t1 = zero
                            t2 = zero
                            t3 = zero
                            for d in range(D):
                                x = qs[i, d]
                                y = qs[i + 1, d]
                                k0 = kk[j0 + j, d]
                                k1 = kk[j0 + j + 1, d]
                                k2 = kk[j0 + j + 2, d]
                                k3 = kk[j0 + j + 3, d]
                                s0 += x * k0
                                s1 += x * k1
                                s2 += x * k2
                                s3 += x * k3
                                t0 += y * k0
                                t1 += y * k1
                                t2 += y * k2
                                t3 += y * k3
                            sc[i, j] = s0
                            sc[i, j + 1] = s1
                            sc[i, j + 2] = s2
                            sc[i, j + 3] = s3
                            sc[i + 1, j] = t0
                            sc[i + 1, j + 1] = t1
                            sc[i + 1, j + 2] = t2
                            sc[i + 1, j + 3] = t3
                    else:
                        for j in range(0, jl4, 4):
                            s0 = zero
                            s1 = zero
                            s2 = zero
                            s3 = zero
                            for d in range(D):
                                x = qs[i, d]
                                s0 += x * kk[j0 + j, d]
                                s1 += x * kk[j0 + j + 1, d]
                                s2 += x * kk[j0 + j + 2, d]
                                s3 += x * kk[j0 + j + 3, d]
                            sc[i, j] = s0
                            sc[i, j + 1] = s1
                            sc[i, j + 2] = s2
                            sc[i, j + 3] = s3
                    for r in range(i, last + 1):
                        for j in range(jl4, jl):
                            s = zero
                            for d in range(D):
                                s += qs[r, d] * kk[j0 + j, d]
                            sc[r, j] = s

                if mask_kind == 1:
                    for i in range(ni):
                        row = mask_bool[mb, mh, (i0 + i) * mask_t]  # (S,) or (1,)
                        if mask_s:  # contiguous: a select the compiler vectorises
                            for j in range(nj):
                                sc[i, j] = sc[i, j] if row[j0 + j] != 0 else neg_inf
                        elif row[0] == 0:
                            for j in range(nj):
                                sc[i, j] = neg_inf
                elif mask_kind == 2:
                    for i in range(ni):
                        row = mask_add[mb, mh, (i0 + i) * mask_t]
                        for j in range(nj):
                            a = row[(j0 + j) * mask_s]
                            sc[i, j] = neg_inf if a == neg_inf else sc[i, j] + a * mask_factor

                # online softmax: new row maximum, rescale factor, weights and their sum, over
                # the jl keys query i may see in this tile (causal); weights past jl are 0
                for i in range(ni):
                    jl = min(nj, max(0, first_hidden0 + i)) if diagonal else nj
                    for j in range(jl, nj):
                        sc[i, j] = zero
                    m_old = row_max[i]
                    if jl >= 64:  # long rows: vectorised through integer keys, NaN wins
                        m = _row_max(sc[i], jl, m_old)
                    else:  # short rows: a plain loop (NaN skipped, it reaches row_sum below)
                        m = m_old
                        for j in range(jl):
                            s = sc[i, j]
                            m = s if s > m else m
                    if m == neg_inf:  # every key so far masked (or NaN): nothing to rescale
                        nan = False
                        for j in range(jl):
                            nan |= np.isnan(sc[i, j])
                            sc[i, j] = zero
                        alpha[i] = unit
                        if nan:
                            row_sum[i] = consts[6]  # a NaN score makes the row NaN
                        continue
                    a = _exp2(m_old - m)
                    total = zero
                    for j in range(jl):
                        p = _exp2(sc[i, j] - m)
                        sc[i, j] = p
                        total += p
                    row_max[i] = m
                    row_sum[i] = row_sum[i] * a + total
                    alpha[i] = a

                # value tile (BK, Dv) -> (Dv, BK), noting NaN or inf
                finite = True
                for j in range(nj):
                    for dv in range(Dv):
                        x = vv[j0 + j, dv]
                        vt[dv, j] = x
                        finite &= abs(x) < -neg_inf

                # (BQ, BK) x (BK, Dv) -> (BQ, Dv), after rescaling the running sum
                if finite:  # blocks of 2 queries x 4 value columns share their loads
                    dv4 = Dv - Dv % 4
                    for i in range(0, ni2, 2):
                        a = alpha[i]
                        b2 = alpha[i + 1]
                        jl = min(nj, max(0, first_hidden0 + i + 1)) if diagonal else nj  # weights past jl are 0
                        for dv in range(0, dv4, 4):
                            s0 = zero
                            s1 = zero
                            s2 = zero
                            s3 = zero
                            t0 = zero
                            t1 = zero
                            t2 = zero
                            t3 = zero
                            for j in range(jl):
                                x = sc[i, j]
                                y = sc[i + 1, j]
                                v0 = vt[dv, j]
                                v1 = vt[dv + 1, j]
                                v2 = vt[dv + 2, j]
                                v3 = vt[dv + 3, j]
                                s0 += x * v0
                                s1 += x * v1
                                s2 += x * v2
                                s3 += x * v3
                                t0 += y * v0
                                t1 += y * v1
                                t2 += y * v2
                                t3 += y * v3
                            acc[i, dv] = acc[i, dv] * a + s0
                            acc[i, dv + 1] = acc[i, dv + 1] * a + s1
                            acc[i, dv + 2] = acc[i, dv + 2] * a + s2
                            acc[i, dv + 3] = acc[i, dv + 3] * a + s3
                            acc[i + 1, dv] = acc[i + 1, dv] * b2 + t0
                            acc[i + 1, dv + 1] = acc[i + 1, dv + 1] * b2 + t1
                            acc[i + 1, dv + 2] = acc[i + 1, dv + 2] * b2 + t2
                            acc[i + 1, dv + 3] = acc[i + 1, dv + 3] * b2 + t3
                    for i in range(ni):
                        a = alpha[i]
                        jl = min(nj, max(0, first_hidden0 + i)) if diagonal else nj
                        for dv in range(dv4 if i < ni2 else 0, Dv):
                            s = zero
                            for j in range(jl):
                                s += sc[i, j] * vt[dv, j]
                            acc[i, dv] = acc[i, dv] * a + s
                else:  # zero weights (masked keys) must not turn NaN/inf values into NaN
                    for i in range(ni):
                        a = alpha[i]
                        for dv in range(Dv):
                            s = zero
                            for j in range(nj):
                                p = sc[i, j]
                                s += p * vt[dv, j] if p != zero else zero
                            acc[i, dv] = acc[i, dv] * a + s

            ob = out[b, h]  # (T, Dv)
            for i in range(ni):
                total = row_sum[i]
                inv = zero if total == zero else unit / total  # fully masked row: zeros
                for dv in range(Dv):
                    ob[i0 + i, dv] = acc[i, dv] * inv
                if want_lse:
                    lse[b, h, i0 + i] = (row_max[i] + np.log2(total)) * ln2
