"""One filtered draw per row of logits without a sort of V: top-k by selection, then top-p and
min-p over the few survivors.

Two kernels with NumPy's ``exp`` between them (the weights must be NumPy's, bit for bit, as in
:func:`fastgram.reference.sample_logits`):

1. :func:`gather_rows` reads each row once in blocks of :data:`BLOCK` logits, as integer *keys*
   (the float's bits, sign-magnitude turned into two's complement, ``-0.0`` and ``+0.0`` one key:
   keys order as the floats do), taking each block's largest key and flagging NaN and ``+inf``
   in one vectorised loop. The ``top_k``-th largest block maximum bounds the ``top_k``-th
   largest logit from below, so only blocks reaching it are read again; among their logits a
   selection finds ``x_k``, the ``top_k``-th largest. The row's *gathered set* is then every
   logit with ``d = (x - max) / T >= d_k - MARGIN`` (``d`` exactly as the reference computes it),
   in increasing id order: an ``exp`` accurate to far better than ``MARGIN`` cannot give a logit
   outside it a weight as large as the ``top_k``-th largest weight, so top-k over the gathered
   weights is top-k over the row. With ``min_p`` alone, the set is every ``d >= log(min_p) -
   MARGIN_MIN_P`` (outside it every weight is below ``min_p``).
   Rows the method does not cover (no top-k and no min-p alone, or top-p without top-k; a
   ``top_k``-th weight that might be subnormal; more than ``CAP`` gathered logits) are marked
   :data:`FALLBACK` and drawn by the full-row kernels of :mod:`fastgram.kernels.sampling_logits`.
2. :func:`finish_rows` filters the gathered weights (top-k, top-p, min-p, as the reference),
   adds the survivors up in id order (zeros add nothing to a running sum, so these are the
   reference's running sums) and draws by the inverse CDF of :mod:`fastgram.kernels.sampling`.

Overrides (the logits changed by ``logit_bias`` and penalties) arrive as a sorted
``(ids, values)`` list per row and replace the row's values in every block they touch.
"""

from __future__ import annotations

import numpy as np

from fastgram._jit import kernel
from fastgram.kernels.random import seed_key, stream_key, uniform, word

#: Logits per block of the first pass.
BLOCK = 64
#: Gap in ``d`` (log-weight) below ``d_k`` within which logits are gathered: an exp error of
#: ``2**-30`` relative is a million times what NumPy's has.
MARGIN = 2.0**-30
#: Gap in ``d`` below ``log(min_p)`` for rows filtered by min-p alone.
MARGIN_MIN_P = 1e-6
#: Rows whose ``d_k`` is below this take the full-row path (a weight near the subnormal range).
D_MIN = -700.0

FAST = 0
GREEDY = 1
FALLBACK = 2
BAD = 3
DEAD = 4

#: Candidates of the second pass kept per row: ``CAND_PER_K * top_k + CAND_EXTRA`` (more: the row
#: takes the full-row path).
CAND_PER_K = 16
CAND_EXTRA = 4096


@kernel
def _key(b, shift, mask):
    """Ordered integer key of float bits ``b`` (int32 or int64): ``-0.0`` and ``+0.0`` share key 0."""
    s = b >> shift
    return ((b & mask) ^ s) - s


@kernel
def _load_block(xr, j, oid, oval, blkf):
    """Copy block ``j`` of row ``xr`` into ``blkf`` with the row's overrides applied; its length."""
    V = xr.shape[0]
    lo = j * BLOCK
    hi = min(lo + BLOCK, V)
    for i in range(lo, hi):
        blkf[i - lo] = xr[i]
    if oid.shape[0]:
        t = np.searchsorted(oid, lo)
        while t < oid.shape[0] and oid[t] < hi:
            blkf[oid[t] - lo] = oval[t]
            t += 1
    return hi - lo


@kernel
def _gather_from(xr, oid, oval, bmax, key_lo, m, T, dlo, blkf, blki, shift, mask, gid, gd):
    """Every logit with key ``>= key_lo`` and ``d >= dlo`` into ``gid``/``gd``, by id; -1 past CAP."""
    n = 0
    cap = gid.shape[0]
    for j in range(bmax.shape[0]):
        if bmax[j] >= key_lo:
            length = _load_block(xr, j, oid, oval, blkf)
            for i in range(length):
                if _key(blki[i], shift, mask) >= key_lo:
                    d = (np.float64(blkf[i]) - m) / T
                    if d >= dlo:
                        if n == cap:
                            return -1
                        gid[n] = j * BLOCK + i
                        gd[n] = d
                        n += 1
    return n


@kernel
def _key_below(v, one_f, one_i, shift, mask):
    """A key no larger than that of any row-dtype float ``>= v`` (float64 ``v``)."""
    one_f[0] = v  # rounded to the nearest: one step down is then <= v
    return _key(one_i[0], shift, mask) - 1


@kernel
def _lower_x(m, dlo, T):
    """An ``x`` below every logit whose ``d = (x - m) / T`` (as rounded) is ``>= dlo`` (``dlo <= 0``)."""
    base = dlo * T * (1.0 + 2.0**-40)
    return m + base - (abs(m) + abs(base)) * 2.0**-45 - 1e-300


@kernel
def kth_largest(a, k, work):
    """The ``k``-th largest of ``a`` (``1 <= k <= len(a)``): quickselect on the copy ``work``.

    Introselect: after ``2 log2(n) + 8`` partition rounds (inputs built against the median of
    three make each round peel off two values) the range left is merge-sorted, so the time is O(n)
    on typical rows and O(n log n) at worst.
    """
    n = a.shape[0]
    for i in range(n):
        work[i] = a[i]
    lo = 0
    hi = n - 1
    want = n - k  # its index in ascending order
    rounds = 8
    m = n
    while m > 1:
        rounds += 2
        m >>= 1
    while lo < hi:
        rounds -= 1
        if rounds < 0:
            # a merge sort: quicksort's median of three would meet the same inputs
            order = np.argsort(work[lo : hi + 1], kind="mergesort")
            return work[lo + order[want - lo]]
        mid = (lo + hi) >> 1
        # median of three as the pivot
        x, y, z = work[lo], work[mid], work[hi]
        pivot = max(min(x, y), min(max(x, y), z))
        i = lo
        j = hi
        while i <= j:
            while work[i] < pivot:
                i += 1
            while work[j] > pivot:
                j -= 1
            if i <= j:
                t = work[i]
                work[i] = work[j]
                work[j] = t
                i += 1
                j -= 1
        if want <= j:
            hi = j
        elif want >= i:
            lo = i
        else:
            return work[want]
    return work[want]


@kernel
def gather_row(xr, xir, oid, oval, T, k, lnmin, shift, mask, infbits, kmin, scratch, gid, gd):
    """Kernel 1 for one row: ``(status, gathered, max, greedy id)``; see the module docstring.

    ``xir`` is ``xr`` viewed as integers of its width; ``shift, mask, infbits, kmin`` the sign
    shift, magnitude mask, bits of ``+inf`` and a key below every key, of that integer type.
    ``scratch`` holds the block maxima (nb,), candidates (ids and float64 values), a block
    buffer and a 1-element buffer, each with an integer view (see :func:`_scratch`).
    """
    bmax, work, cand, cval, cwork, blkf, blki, one_f, one_i = scratch
    V = xr.shape[0]
    nb = (V + BLOCK - 1) // BLOCK
    bmax = bmax[:nb]
    bad = False
    for j in range(nb):
        # (BLOCK,) float bits -> the block's largest key, from the signed maximum (a non-negative
        # float, if any) or the signed minimum (else: the negative float of least magnitude);
        # NaN / +inf from the signed maximum and from the maximum with the sign bit flipped
        # (unsigned order: a negative NaN lies above -inf's bits)
        lo = j * BLOCK
        hi = min(lo + BLOCK, V)
        mx = kmin
        mn = mask  # the largest value of the key type
        mu = kmin
        if hi - lo == BLOCK:
            for i in range(lo, lo + BLOCK):  # a fixed trip count: vector instructions
                b = xir[i]
                mx = b if b > mx else mx
                mn = b if b < mn else mn
                f = b ^ kmin
                mu = f if f > mu else mu
        else:
            for i in range(lo, hi):
                b = xir[i]
                mx = b if b > mx else mx
                mn = b if b < mn else mn
                f = b ^ kmin
                mu = f if f > mu else mu
        bmax[j] = mx if mx >= 0 else -(mn & mask)
        bad |= (mx >= infbits) | (mu > infbits)  # +inf or a positive NaN; a negative NaN
    if bad:
        return BAD, 0, 0.0, 0
    t = 0
    while t < oid.shape[0]:  # blocks holding overrides: their maxima again, with the new values
        j = oid[t] // BLOCK
        length = _load_block(xr, j, oid, oval, blkf)
        mx = kmin
        for i in range(length):
            key = _key(blki[i], shift, mask)
            mx = key if key > mx else mx
        bmax[j] = mx
        while t < oid.shape[0] and oid[t] // BLOCK == j:
            t += 1
    top = kmin
    jm = 0
    for j in range(nb):
        if bmax[j] > top:
            top = bmax[j]
            jm = j
    length = _load_block(xr, jm, oid, oval, blkf)
    im = 0
    while _key(blki[im], shift, mask) != top:
        im += 1
    m = np.float64(blkf[im])
    if m == -np.inf:
        return DEAD, 0, m, 0
    if T == 0.0:
        return GREEDY, 0, m, jm * BLOCK + im
    if k < V:
        thr = kmin if nb <= k else kth_largest(bmax, k, work)
        if thr != kmin:
            # a little below the block threshold, so that x_k's gathered set is (nearly always)
            # inside the candidates: the logits within MARGIN (in d) of the threshold come too
            one_i[0] = thr if thr >= 0 else (-thr) | kmin  # the float of key thr
            d_thr = (np.float64(one_f[0]) - m) / T
            if d_thr >= D_MIN:
                thr = min(thr, _key_below(_lower_x(m, d_thr - MARGIN, T), one_f, one_i, shift, mask))
        c = 0
        room = min(cand.shape[0], CAND_PER_K * k + CAND_EXTRA)
        plain = oid.shape[0] == 0  # no overrides: read the row itself
        for j in range(nb):
            if bmax[j] >= thr:
                if plain:
                    lo = j * BLOCK
                    for i in range(lo, min(lo + BLOCK, V)):
                        if _key(xir[i], shift, mask) >= thr:
                            if c == room:
                                return FALLBACK, 0, m, 0
                            cand[c] = i
                            cval[c] = xr[i]
                            c += 1
                    continue
                length = _load_block(xr, j, oid, oval, blkf)
                for i in range(length):
                    if _key(blki[i], shift, mask) >= thr:
                        if c == room:
                            return FALLBACK, 0, m, 0
                        cand[c] = j * BLOCK + i
                        cval[c] = blkf[i]
                        c += 1
        if c < k:  # cannot happen (k block maxima reach thr); never select past the candidates
            return FALLBACK, 0, m, 0
        xk = kth_largest(cval[:c], k, cwork)
        dk = (xk - m) / T
        if not dk >= D_MIN:
            return FALLBACK, 0, m, 0
        dlo = dk - MARGIN
        key_lo = _key_below(_lower_x(m, dlo, T), one_f, one_i, shift, mask)
        if thr != kmin and key_lo < thr:  # logits below the block threshold may be near x_k
            n = _gather_from(xr, oid, oval, bmax, key_lo, m, T, dlo, blkf, blki, shift, mask, gid, gd)
        else:
            n = 0
            for q in range(c):
                d = (cval[q] - m) / T
                if d >= dlo:
                    if n == gid.shape[0]:
                        return FALLBACK, 0, m, 0
                    gid[n] = cand[q]
                    gd[n] = d
                    n += 1
        if n < 0:
            return FALLBACK, 0, m, 0
        return FAST, n, m, 0
    if lnmin > -np.inf:
        dlo = lnmin - MARGIN_MIN_P
        key_lo = _key_below(_lower_x(m, dlo, T), one_f, one_i, shift, mask)
        n = _gather_from(xr, oid, oval, bmax, key_lo, m, T, dlo, blkf, blki, shift, mask, gid, gd)
        if n < 0:
            return FALLBACK, 0, m, 0
        return FAST, n, m, 0
    return FALLBACK, 0, m, 0


@kernel
def _scratch(x, xi, kmax):
    V = x.shape[1]
    nb = (V + BLOCK - 1) // BLOCK
    room = min(V, CAND_PER_K * kmax + CAND_EXTRA)
    blkf = np.empty(BLOCK, x.dtype)
    one_f = np.empty(1, x.dtype)
    return (
        np.empty(nb, xi.dtype),
        np.empty(nb, xi.dtype),
        np.empty(room, np.int64),
        np.empty(room, np.float64),
        np.empty(room, np.float64),
        blkf,
        blkf.view(xi.dtype),
        one_f,
        one_f.view(xi.dtype),
    )


@kernel
def _row(params, b):
    """Row ``b``'s entry of a per-row parameter array ((1,) or (B,): one value for every row)."""
    return params[0] if params.shape[0] == 1 else params[b]


@kernel
def gather_span(w_lo, w_hi, x, xi, ov_ptr, ov_ids, ov_vals, temps, ks, lnmins, consts, gid, gd, info, rowmax):
    """:func:`gather_row` for rows ``w_lo <= b < w_hi`` of (B, V) ``x`` (``xi`` its integer view),
    with one scratch set. The wrapper calls it for all rows, or deals spans of rows to threads
    with :func:`fastgram._jit.parallel_chunks`.

    Per-row parameters ``temps``, ``ks``, ``lnmins`` are (B,) or (1,) (one for all rows);
    ``consts`` holds the key constants of ``xi``'s type; ``info`` (3, B) gets each row's status,
    gathered count and greedy id, ``rowmax`` its largest logit (as float64).
    """
    shift, mask, infbits, kmin = consts[0], consts[1], consts[2], consts[3]
    V = x.shape[1]
    kmax = 1
    for b in range(w_lo, w_hi):
        if _row(ks, b) < V:
            kmax = max(kmax, _row(ks, b))
    scratch = _scratch(x, xi, kmax)
    for b in range(w_lo, w_hi):
        a, z = ov_ptr[b], ov_ptr[b + 1]
        st, n, m, g = gather_row(
            x[b], xi[b], ov_ids[a:z], ov_vals[a:z], _row(temps, b), _row(ks, b), _row(lnmins, b),
            shift, mask, infbits, kmin, scratch, gid[b], gd[b],
        )  # fmt: skip
        for i in range(n if st == FAST else 0, gd.shape[1]):
            gd[b, i] = -np.inf  # exp(-inf) = 0: nothing of what is not gathered
        info[0, b] = st
        info[1, b] = n
        info[2, b] = g
        rowmax[b] = m


@kernel
def finish_row(gid, gw, gd, n, k, q, min_p, key, out, dsel):
    """Kernel 2 for one row: filter ``n`` gathered weights (ids increasing), then draw ``out``.

    ``k = 0``: no top-k (the row is filtered by min-p alone).

    Top-k keeps the weights ``>=`` the ``k``-th largest; top-p walks them in ascending order
    (ties: higher id first), dropping while the running sum is ``<= q * total`` and never the
    largest; min-p drops weights below ``min_p``. ``dsel`` gets the drawn ids' ``d``; returns the
    total of the kept weights.
    """
    fw = gw[:n].copy()
    if k > 0:
        order = np.argsort(-fw, kind="mergesort")  # descending, ties by lower id first
        kth = fw[order[k - 1]]
        nk = k
        while nk < n and fw[order[nk]] >= kth:
            nk += 1
        for i in range(nk, n):
            fw[order[i]] = 0.0
        if q >= 0.0:
            s = 0.0
            for i in range(nk - 1, -1, -1):  # ascending: descending order reversed
                s += fw[order[i]]
            limit = q * s
            s = 0.0
            for i in range(nk - 1, 0, -1):  # never the largest (order[0])
                s += fw[order[i]]
                if s <= limit:
                    fw[order[i]] = 0.0
                else:
                    break
    if min_p > 0.0:
        for i in range(n):
            if fw[i] < min_p:
                fw[i] = 0.0
    cum = np.empty(n, np.float64)
    s = 0.0
    for i in range(n):
        s += fw[i]
        cum[i] = s
    scale = np.nextafter(s, 0.0)
    for j in range(out.shape[0]):
        t = uniform(word(key, j)) * scale
        at = np.searchsorted(cum, t, side="right")
        out[j] = gid[at]
        dsel[j] = gd[at]
    return s


@kernel
def _finish_span(w_lo, w_hi, gid, gw, gd, info, ks, qs, minps, seed, offset, out, dsel, totals):
    skey = seed_key(seed)
    for b in range(w_lo, w_hi):
        st = info[0, b]
        if st == FAST:
            key = stream_key(skey, offset + b)
            totals[b] = finish_row(
                gid[b], gw[b], gd[b], info[1, b], _row(ks, b), _row(qs, b), _row(minps, b), key, out[b], dsel[b]
            )
        elif st == GREEDY:
            out[b, :] = info[2, b]
            dsel[b, :] = 0.0
            totals[b] = 1.0


@kernel
def finish_rows(gid, gw, gd, info, ks, qs, minps, seed, offset, out, dsel, totals):
    """:func:`finish_row` for the rows marked FAST (GREEDY rows: their best id), one thread (a
    row's few dozen logits take a microsecond: not worth a parallel launch).

    ``ks`` holds the rows' ``top_k`` with 0 for none, ``qs`` ``1 - top_p`` (-1 for none),
    ``minps`` ``min_p`` (0 for none), each (B,) or (1,).
    """
    _finish_span(0, out.shape[0], gid, gw, gd, info, ks, qs, minps, seed, offset, out, dsel, totals)
