"""Kernels of the n-gram language models (:mod:`fastgram.lm`).

Layouts shared by the kernels:

- *reversed rows*: an n-gram ``(w1, ..., wn)`` is stored as the row ``(wn, ..., w1)``; a table
  of one order is its rows sorted lexicographically (lmplz's suffix order), so the n-grams
  sharing a suffix are contiguous and the suffix of a row is a prefix of it.
- *flat tables*: all orders in one uint32 array; order ``n`` (1-based) holds ``nrows[n]`` rows
  of ``n`` words from ``flat[row_off[n]]``; its values (probabilities, backoffs) start at
  ``val_off[n]`` in the value arrays.
"""

from __future__ import annotations

import numba
import numpy as np

from fastgram._jit import kernel
from fastgram.kernels.random import below, seed_key, stream_key, uniform, word

_NOT_SEEN = np.iinfo(np.int64).max


@kernel
def first_seen(tokens, offset, sep, has_sep, first):
    """``first[t]`` = the first position of id ``t`` (ids equal to ``sep`` skipped when ``has_sep``).

    ``first`` is int64, filled with ``_NOT_SEEN`` by the caller; ``tokens[i]`` is at position
    ``offset + i`` of the stream.
    """
    for i in range(tokens.shape[0]):
        t = np.int64(tokens[i])
        if has_sep and t == sep:
            continue
        if first[t] == _NOT_SEEN:
            first[t] = offset + i


@kernel
def pad_reversed(src, lo, hi, idmap, sep, has_sep, order, close_last, open_first, bos, eos, boundary, out):
    """Write the reversed, padded model-id stream of ``src[lo:hi]`` to ``out``; return its length.

    The forward stream of a corpus is ``<s>`` * (order - 1), then per token: a separator
    becomes ``</s>``, ``boundary``, ``<s>`` * (order - 1); any other id ``t`` becomes
    ``idmap[t]``; at the end ``</s>`` unless the last token is a separator. This kernel writes
    the reverse of the part made by ``src[lo:hi]`` (``close_last``: this piece ends the corpus;
    ``open_first``: it starts it), so pieces taken from the end backwards give the reversed
    stream of the whole corpus.
    """
    k = 0
    if close_last:
        out[k] = eos
        k += 1
    for i in range(hi - 1, lo - 1, -1):
        t = np.int64(src[i])
        if has_sep and t == sep:
            for _ in range(order - 1):
                out[k] = bos
                k += 1
            out[k] = boundary
            out[k + 1] = eos
            k += 2
        else:
            out[k] = idmap[t]
            k += 1
    if open_first:
        for _ in range(order - 1):
            out[k] = bos
            k += 1
    return k


@kernel(parallel=True)
def common_prefix(rows, out):
    """``out[i]`` = length of the common prefix of rows ``i - 1`` and ``i`` (``out[0] = 0``)."""
    m, n = rows.shape
    if m == 0:
        return
    out[0] = 0
    for i in numba.prange(1, m):
        k = 0
        while k < n and rows[i, k] == rows[i - 1, k]:
            k += 1
        out[i] = k


@kernel(parallel=True)
def find_rows(table, queries, out):
    """``out[i]`` = the index of row ``queries[i]`` in the sorted ``table`` (same width), or -1."""
    m, n = table.shape
    for i in numba.prange(queries.shape[0]):
        lo = 0
        hi = m
        while lo < hi:  # first row >= query
            mid = (lo + hi) >> 1
            less = False
            for k in range(n):
                a = table[mid, k]
                b = queries[i, k]
                if a != b:
                    less = a < b
                    break
            if less:
                lo = mid + 1
            else:
                hi = mid
        found = lo < m
        if found:
            for k in range(n):
                if table[lo, k] != queries[i, k]:
                    found = False
                    break
        out[i] = lo if found else -1


@kernel
def find_flat(flat, row_off, nrows, n, query, qstart):
    """Index in order ``n`` of the reversed row ``query[qstart:qstart + n]``, or -1."""
    base = row_off[n]
    lo = np.int64(0)
    hi = nrows[n]
    while lo < hi:
        mid = (lo + hi) >> 1
        p = base + mid * n
        less = False
        for k in range(n):
            a = flat[p + k]
            b = query[qstart + k]
            if a != b:
                less = a < b
                break
        if less:
            lo = mid + 1
        else:
            hi = mid
    if lo >= nrows[n]:
        return -1
    p = base + lo * n
    for k in range(n):
        if flat[p + k] != query[qstart + k]:
            return -1
    return lo


@kernel
def _score_one(flat, row_off, nrows, prob, backoff, val_off, order, query, hist):
    """log10 p(query[0] | query[1:1 + hist]) with ARPA backoff; also the matched length.

    ``query`` is the reversed (word, previous word, ...) of which ``hist`` context words are
    valid. Longest match first found by extending one word at a time (KenLM's search); the
    backoffs of the contexts longer than the match are added.
    """
    top = min(order, hist + 1)
    matched = 1
    idx = find_flat(flat, row_off, nrows, 1, query, 0)
    p = prob[val_off[1] + idx]
    for n in range(2, top + 1):
        idx = find_flat(flat, row_off, nrows, n, query, 0)
        if idx < 0:
            break
        p = prob[val_off[n] + idx]
        matched = n
    for n in range(matched, min(order - 1, hist) + 1):
        idx = find_flat(flat, row_off, nrows, n, query, 1)
        if idx < 0:
            break
        p += backoff[val_off[n] + idx]
    return p, matched


@kernel(parallel=True)
def score_sentences(flat, row_off, nrows, prob, backoff, val_off, order, ids, starts, bos, out, matched):
    """Per-token log10 probabilities of sentences of model ids.

    Sentence ``s`` is ``ids[starts[s]:starts[s + 1]]`` (its ``</s>`` included as the last id);
    its context starts at ``<s>``. ``out`` is float64 (tokens,), ``matched`` int8 (the n-gram
    length found). Sentences run in parallel; each token looks back at most ``order - 1`` ids.
    """
    S = starts.shape[0] - 1
    for s in numba.prange(S):
        query = np.empty(order, np.uint32)
        b = starts[s]
        for i in range(b, starts[s + 1]):
            query[0] = ids[i]
            hist = 0
            j = i - 1
            while hist < order - 1:
                if j >= b:
                    query[hist + 1] = ids[j]
                    hist += 1
                    j -= 1
                else:
                    query[hist + 1] = bos
                    hist += 1
                    break
            p, m = _score_one(flat, row_off, nrows, prob, backoff, val_off, order, query, hist)
            out[i] = p
            matched[i] = m


@kernel(parallel=True)
def score_queries(flat, row_off, nrows, prob, backoff, val_off, order, queries, hists, out):
    """``out[i]`` = log10 p(queries[i, 0] | queries[i, 1:1 + hists[i]]) (reversed rows)."""
    for i in numba.prange(queries.shape[0]):
        q = queries[i].copy()
        p, m = _score_one(flat, row_off, nrows, prob, backoff, val_off, order, q, hists[i])
        out[i] = p


@kernel
def _find_context(flat, row_off, nrows, ctx_start, n, history, hpos):
    """Index of the context of length ``n`` ending at ``history[hpos]`` (reversed lookup), or -1."""
    if n == 0:
        return 0
    base = row_off[n]
    lo = np.int64(0)
    hi = nrows[n]
    while lo < hi:
        mid = (lo + hi) >> 1
        p = base + mid * n
        less = False
        for k in range(n):
            a = flat[p + k]
            b = history[hpos - k]
            if a != b:
                less = a < b
                break
        if less:
            lo = mid + 1
        else:
            hi = mid
    if lo >= nrows[n]:
        return -1
    p = base + lo * n
    for k in range(n):
        if flat[p + k] != history[hpos - k]:
            return -1
    return lo


@kernel(parallel=True)
def generate(flat, row_off, nrows, ctx_off, seg_start, seg_words, seg_cum, gamma, order, V, seed, first, out, lengths):
    """Sentences drawn from the interpolated model as a mixture (see :func:`fastgram.reference.lm_generate`).

    For a context (an (n-1)-gram, index ``c`` in its order's table), its words are
    ``seg_words[a:b]`` with running sums ``seg_cum[a:b]`` of ``u``, ``a = seg_start[ctx_off[n] + c]``
    and ``b`` the next entry; ``gamma[ctx_off[n] + c]`` its interpolation weight (-1: not a
    context). ``out`` (S, L) receives model ids, ``lengths`` the sentence lengths.
    Sentence ``s`` uses stream ``first + s``; draw ``t`` at level ``k`` index ``t * (order + 1) + k``.
    """
    S, L = out.shape
    skey = seed_key(seed)
    for s in numba.prange(S):
        key = stream_key(skey, first + s)
        history = np.empty(L + order, np.uint32)
        for j in range(order - 1):
            history[j] = 1  # <s>
        hlen = order - 1
        length = 0
        for t in range(L):
            w = -1
            k = 0
            for n in range(order, 0, -1):  # context length n - 1
                c = _find_context(flat, row_off, nrows, 0, n - 1, history, hlen - 1)
                if c >= 0:
                    g = gamma[ctx_off[n] + c]
                    if g >= 0.0:
                        a = seg_start[ctx_off[n] + c]
                        b = seg_start[ctx_off[n] + c + 1]
                        r = uniform(word(key, t * (order + 1) + k))
                        last = seg_cum[b - 1] if b > a else 0.0
                        target = r * (last + g)
                        lo = a
                        hi = b
                        while lo < hi:  # first running sum > target
                            mid = (lo + hi) >> 1
                            if seg_cum[mid] > target:
                                hi = mid
                            else:
                                lo = mid + 1
                        if lo < b:
                            w = np.int64(seg_words[lo])
                            break
                k += 1
            if w < 0:
                j = below(word(key, t * (order + 1) + order), V)
                w = 0 if j == 0 else j + 1
            if w == 2:  # </s>
                break
            out[s, t] = w
            history[hlen] = w
            hlen += 1
            length += 1
        lengths[s] = length


@kernel
def segment_cumsum(values, starts, out):
    """Running sums of ``values`` restarted at every ``starts[i]`` (left to right, float64)."""
    for s in range(starts.shape[0] - 1):
        acc = 0.0
        for i in range(starts[s], starts[s + 1]):
            acc += values[i]
            out[i] = acc


# ---------------------------------------------------------------------------------------------
# counting beyond 64-bit keys: two-word keys, radix-sorted
# ---------------------------------------------------------------------------------------------


@kernel
def pack_windows(stream, order, boundary, V, split, hi, lo):
    """Pack every window of ``order`` ids without ``boundary`` into two words; return how many.

    Window ``(t0, ..., t{order-1})``: ``hi = t0 * V**(split-1) + ... + t{split-1}``, ``lo`` the
    same over ``t{split}, ...``. Sorting by ``(hi, lo)`` sorts the windows lexicographically.
    """
    n = stream.shape[0]
    k = 0
    last_boundary = -1  # most recent boundary position
    for i in range(n):
        if stream[i] == boundary:
            last_boundary = i
        start = i - order + 1
        if start < 0 or last_boundary >= start:
            continue
        h = np.uint64(0)
        for j in range(start, start + split):
            h = h * V + np.uint64(stream[j])
        w = np.uint64(0)
        for j in range(start + split, i + 1):
            w = w * V + np.uint64(stream[j])
        hi[k] = h
        lo[k] = w
        k += 1
    return k


@kernel
def radix_sort_pairs(hi, lo, tmp_hi, tmp_lo, bits_lo, bits_hi):
    """Sort the pairs ``(hi, lo)`` in place, least significant digit first (11-bit digits)."""
    n = hi.shape[0]
    count = np.empty(2048, np.int64)
    src_h, src_l, dst_h, dst_l = hi, lo, tmp_hi, tmp_lo
    passes = 0
    for part in range(2):
        bits = bits_lo if part == 0 else bits_hi
        shift = 0
        while shift < bits:
            count[:] = 0
            for i in range(n):
                key = src_l[i] if part == 0 else src_h[i]
                count[(key >> np.uint64(shift)) & np.uint64(2047)] += 1
            total = 0
            for d in range(2048):
                c = count[d]
                count[d] = total
                total += c
            for i in range(n):
                key = src_l[i] if part == 0 else src_h[i]
                d = (key >> np.uint64(shift)) & np.uint64(2047)
                p = count[d]
                count[d] = p + 1
                dst_h[p] = src_h[i]
                dst_l[p] = src_l[i]
            src_h, src_l, dst_h, dst_l = dst_h, dst_l, src_h, src_l
            shift += 11
            passes += 1
    if passes % 2 == 1:
        hi[:] = tmp_hi
        lo[:] = tmp_lo


@kernel
def run_lengths(hi, lo, out_hi, out_lo, counts):
    """Distinct sorted pairs and how often each occurs; returns how many."""
    n = hi.shape[0]
    m = 0
    i = 0
    while i < n:
        j = i + 1
        while j < n and hi[j] == hi[i] and lo[j] == lo[i]:
            j += 1
        out_hi[m] = hi[i]
        out_lo[m] = lo[i]
        counts[m] = j - i
        m += 1
        i = j
    return m


@kernel(parallel=True)
def unpack_pairs(hi, lo, V, split, rows):
    """Rows ``(m, order)`` of the windows packed by :func:`pack_windows`."""
    m, order = rows.shape
    for i in numba.prange(m):
        h = hi[i]
        for j in range(split - 1, -1, -1):
            rows[i, j] = h % V
            h //= V
        w = lo[i]
        for j in range(order - 1, split - 1, -1):
            rows[i, j] = w % V
            w //= V


# ---------------------------------------------------------------------------------------------
# ARPA text
# ---------------------------------------------------------------------------------------------

#: Decimal places of the ARPA values written by :func:`arpa_lines` (absolute error <= 5e-8,
#: below the float32 resolution of values around 1).
ARPA_DECIMALS = 7


@kernel
def _put_fixed(out, k, x):
    """Write ``x`` with ``ARPA_DECIMALS`` decimals, trailing zeros trimmed; return the new end."""
    scale = 10**ARPA_DECIMALS
    v = np.int64(np.round(abs(x) * scale))
    if v == 0:
        out[k] = 48  # "0"
        return k + 1
    if x < 0:
        out[k] = 45  # "-"
        k += 1
    ip = v // scale
    fp = v - ip * scale
    # integer part
    digits = np.empty(20, np.uint8)
    nd = 0
    while True:
        digits[nd] = 48 + ip % 10
        nd += 1
        ip //= 10
        if ip == 0:
            break
    for j in range(nd - 1, -1, -1):
        out[k] = digits[j]
        k += 1
    if fp:
        out[k] = 46  # "."
        k += 1
        nf = ARPA_DECIMALS
        while fp % 10 == 0:
            fp //= 10
            nf -= 1
        for j in range(nf - 1, -1, -1):
            out[k + j] = 48 + fp % 10
            fp //= 10
        k += nf
    return k


@kernel
def arpa_lines(rows, prob, backoff, with_backoff, arena, offsets, out):
    """ARPA lines ``prob<TAB>w1 ... wn[<TAB>backoff]`` of reversed rows into ``out``; returns the length.

    Word ``i``'s bytes are ``arena[offsets[i]:offsets[i + 1] - 1]`` (each word followed by one
    separator byte). ``out`` must hold every line (see :func:`arpa_size`).
    """
    m, n = rows.shape
    k = 0
    for i in range(m):
        k = _put_fixed(out, k, prob[i])
        out[k] = 9
        k += 1
        for j in range(n - 1, -1, -1):
            w = rows[i, j]
            for b in range(offsets[w], offsets[w + 1] - 1):
                out[k] = arena[b]
                k += 1
            out[k] = 32 if j else (9 if with_backoff else 10)
            k += 1
        if with_backoff:
            k = _put_fixed(out, k, backoff[i])
            out[k] = 10
            k += 1
    return k


@kernel
def arpa_size(rows, offsets):
    """Bytes of the words and spaces of the rows (each value then needs at most 32 more)."""
    m, n = rows.shape
    total = np.int64(0)
    for i in range(m):
        for j in range(n):
            w = rows[i, j]
            total += offsets[w + 1] - offsets[w]
    return total


# ---------------------------------------------------------------------------------------------
# estimation: every order's n-grams from the sorted N-grams in one pass
# ---------------------------------------------------------------------------------------------


@kernel
def _padding(rows, i, n, bos):
    """Whether the order-n group of row ``i`` starts (forward) with two ``<s>``."""
    return n >= 2 and rows[i, n - 1] == bos and rows[i, n - 2] == bos


@kernel
def level_sizes(rows, lcp, bos, sizes):
    """``sizes[n]``: the n-grams of order n (groups of rows sharing their first n ids, padding
    groups excluded) for n = 1..N."""
    m, N = rows.shape
    for i in range(m):
        for n in range(1, N + 1):
            if (n == N or lcp[i] < n) and not _padding(rows, i, n, bos):
                sizes[n] += 1


@kernel
def level_groups(rows, counts, lcp, bos, off, first_row, raw, ext, parent, last_kept):
    """Fill, per order n (flat arrays from ``off[n]``): the first row of each kept group, its raw
    count (sum of the rows' counts), its continuation count (the order-(n+1) groups inside) and
    its suffix's index in order n - 1 (-1 for unigrams). ``last_kept[n]``: whether the group of
    the last row is kept (lmplz's last n-gram in suffix order)."""
    m, N = rows.shape
    cur = np.full(N + 1, -1, np.int64)
    nxt = np.zeros(N + 1, np.int64)
    for i in range(m):
        for n in range(1, N + 1):
            if n == N or lcp[i] < n:
                if _padding(rows, i, n, bos):
                    cur[n] = -1
                else:
                    j = off[n] + nxt[n]
                    cur[n] = j
                    nxt[n] += 1
                    first_row[j] = i
                    raw[j] = 0
                    ext[j] = 0
                    parent[j] = cur[n - 1] - off[n - 1] if n > 1 else -1
            j = cur[n]
            if j >= 0:
                raw[j] += counts[i]
                if n < N and lcp[i] < n + 1:
                    ext[j] += 1
    for n in range(1, N + 1):
        last_kept[n] = cur[n] >= 0


@kernel
def _cmp_row(table, t, rows, i, k):
    """Compare ``table[t, :k]`` with ``rows[i, 1:1 + k]``: -1, 0 or 1."""
    for c in range(k):
        a = table[t, c]
        b = rows[i, c + 1]
        if a != b:
            return -1 if a < b else 1
    return 0


@kernel(parallel=True)
def find_contexts(table, rows, nchunks, out):
    """``out[i]``: the index of ``rows[i, 1:]`` in the sorted ``table`` (its context), or -1.

    Rows sorted lexicographically have their ``rows[i, 1:]`` increasing within each run of equal
    ``rows[i, 0]``, so each search gallops from the previous result: O(log distance) per row.
    """
    q = rows.shape[0]
    T, k = table.shape
    for c in numba.prange(nchunks):
        lo_i = c * q // nchunks
        hi_i = (c + 1) * q // nchunks
        prev = np.int64(0)
        for i in range(lo_i, hi_i):
            if i == lo_i or rows[i, 0] != rows[i - 1, 0]:
                lo = np.int64(0)
                hi = np.int64(T)
            else:
                lo = prev  # table[prev] <= query
                step = np.int64(1)
                hi = lo + 1
                while hi < T and _cmp_row(table, hi, rows, i, k) < 0:
                    lo = hi
                    step *= 2
                    hi = lo + step
                if hi > T:
                    hi = T
            while lo < hi:  # first table row >= query
                mid = (lo + hi) >> 1
                if _cmp_row(table, mid, rows, i, k) < 0:
                    lo = mid + 1
                else:
                    hi = mid
            prev = lo if lo < T else T - 1
            out[i] = lo if lo < T and _cmp_row(table, lo, rows, i, k) == 0 else -1


# ---------------------------------------------------------------------------------------------
# hash index of table rows (open addressing, linear probing; exact: rows are compared)
# ---------------------------------------------------------------------------------------------

_H1 = np.uint64(0x9E3779B97F4A7C15)
_H2 = np.uint64(0xBF58476D1CE4E5B9)


@kernel
def _hash_row(a, i, c0, k):
    h = np.uint64(k) * _H1
    for c in range(k):
        h = (h ^ np.uint64(a[i, c0 + c])) * _H2
        h ^= h >> np.uint64(31)
    return h


@kernel
def hash_build(table, slots):
    """Index the rows of ``table`` in ``slots`` (int32 filled with -1 by the caller, a power of
    two at least twice the rows)."""
    T, k = table.shape
    mask = np.uint64(slots.shape[0] - 1)
    for t in range(T):
        h = _hash_row(table, t, 0, k) & mask
        while slots[h] >= 0:
            h = (h + np.uint64(1)) & mask
        slots[h] = t


@kernel(parallel=True)
def hash_find(table, slots, queries, c0, out):
    """``out[i]``: the row of ``table`` equal to ``queries[i, c0:c0 + k]``, or -1."""
    T, k = table.shape
    mask = np.uint64(slots.shape[0] - 1)
    for i in numba.prange(queries.shape[0]):
        h = _hash_row(queries, i, c0, k) & mask
        found = -1
        while True:
            t = slots[h]
            if t < 0:
                break
            same = True
            for c in range(k):
                if table[t, c] != queries[i, c0 + c]:
                    same = False
                    break
            if same:
                found = t
                break
            h = (h + np.uint64(1)) & mask
        out[i] = found


# ---------------------------------------------------------------------------------------------
# estimation: initial probabilities, interpolation, output (one order at a time)
# ---------------------------------------------------------------------------------------------


@kernel
def context_sums(adj, marked, ctx, D, denom, mass):
    """Per context: the sum of adjusted counts, and the discounted mass plus pruned counts."""
    for i in range(adj.shape[0]):
        c = ctx[i]
        a = adj[i]
        denom[c] += a
        if marked[i]:
            mass[c] += a
        elif a > 0:
            mass[c] += D[min(a, 3)]


@kernel(parallel=True)
def interpolate(adj, ctx, parent, D, denom, gamma, p_lower, uniform, u, p):
    """``u = (a - D(a)) / denom(ctx)``; ``p = u + gamma(ctx) * lower`` (``p_lower[parent]``, or
    ``uniform`` when ``parent`` is empty: the unigrams)."""
    unigrams = parent.shape[0] == 0
    for i in numba.prange(adj.shape[0]):
        c = ctx[i]
        a = adj[i]
        ui = (a - D[min(a, 3)]) / denom[c]
        lower = uniform if unigrams else p_lower[parent[i]]
        u[i] = ui
        p[i] = ui + gamma[c] * lower


@kernel
def finish(rows, p, u, marked, gamma_next, has_next, eos, unk, out_rows, out_prob, out_backoff, out_u):
    """The kept n-grams: rows, log10 p (at most 0), log10 backoff (0 for no context), u."""
    m, n = rows.shape
    k = 0
    for i in range(m):
        if marked[i]:
            continue
        for c in range(n):
            out_rows[k, c] = rows[i, c]
        out_prob[k] = min(0.0, np.log10(p[i]))
        b = 0.0
        if has_next and rows[i, 0] != eos and rows[i, 0] != unk:
            g = gamma_next[i]
            if g > 0.0 and np.isfinite(g):
                b = np.log10(g)
        out_backoff[k] = b
        out_u[k] = u[i]
        k += 1
    return k


# ---------------------------------------------------------------------------------------------
# ARPA parsing
# ---------------------------------------------------------------------------------------------

ERR_NUMBER, ERR_WORDS, ERR_UNKNOWN, ERR_TRUNCATED, ERR_DUPLICATE, ERR_FINITE = 1, 2, 3, 4, 5, 6
_POW10 = np.array([10.0**k for k in range(23)])


@kernel
def _is_space(c):
    return c == 32 or c == 9 or c == 13


@kernel
def _parse_float(buf, a, b):
    """The decimal number ``buf[a:b]`` (``[-+]digits[.digits][e[-+]digits]``, inf/nan not
    accepted); ``(value, ok)``."""
    i = a
    neg = False
    if i < b and (buf[i] == 45 or buf[i] == 43):
        neg = buf[i] == 45
        i += 1
    mant = 0.0
    digits = 0
    while i < b and 48 <= buf[i] <= 57:
        mant = mant * 10.0 + (buf[i] - 48)
        i += 1
        digits += 1
    scale = 0
    if i < b and buf[i] == 46:
        i += 1
        while i < b and 48 <= buf[i] <= 57:
            mant = mant * 10.0 + (buf[i] - 48)
            i += 1
            digits += 1
            scale -= 1
    if digits == 0:
        return 0.0, False
    if i < b and (buf[i] == 101 or buf[i] == 69):
        i += 1
        eneg = False
        if i < b and (buf[i] == 45 or buf[i] == 43):
            eneg = buf[i] == 45
            i += 1
        e = 0
        ed = 0
        while i < b and 48 <= buf[i] <= 57:
            e = min(e * 10 + (buf[i] - 48), 100000)
            i += 1
            ed += 1
        if ed == 0:
            return 0.0, False
        scale += -e if eneg else e
    if i != b:
        return 0.0, False
    if -22 <= scale <= 0:
        value = mant / _POW10[-scale]
    else:
        value = mant * 10.0**scale if scale >= -300 else (mant * 10.0**-300) * 10.0 ** (scale + 300)
    return (-value if neg else value), True


@kernel
def _hash_bytes(buf, a, b):
    h = np.uint64(0xCBF29CE484222325)
    for i in range(a, b):
        h = (h ^ np.uint64(buf[i])) * np.uint64(0x100000001B3)
    return h ^ (h >> np.uint64(29))


@kernel
def _find_word(buf, a, b, slots, word_start, word_end):
    """``(id or -1, slot, hash)`` of the word ``buf[a:b]`` in the word hash table.

    ``slots[s] = (hash, id)`` (id -1: empty); a word's bytes are ``buf[word_start[id]:word_end[id]]``.
    """
    mask = np.uint64(slots.shape[0] - 1)
    hv = _hash_bytes(buf, a, b)
    key = np.int64(hv)
    h = hv & mask
    while True:
        w = slots[h, 1]
        if w < 0:
            return -1, h, key
        if slots[h, 0] == key:
            s = word_start[w]
            if word_end[w] - s == b - a:
                same = True
                for k in range(b - a):
                    if buf[s + k] != buf[a + k]:
                        same = False
                        break
                if same:
                    return w, h, key
        h = (h + np.uint64(1)) & mask


@kernel
def parse_section(buf, pos, n, m, slots, word_start, word_end, ids, prob, backoff, err):
    """Parse ``m`` lines of ``n``-grams from ``buf[pos:]``; return the position after them.

    A line: the log10 probability, ``n`` words, an optional backoff, separated by spaces or
    tabs. Unigrams (``n == 1``) register their words (id = line index) in ``slots``; higher
    orders look them up. On an error ``err = (code, byte position)`` and parsing stops.
    """
    L = buf.shape[0]
    prev_a = np.full(n, -1, np.int64)
    prev_b = np.full(n, -1, np.int64)
    prev_id = np.full(n, -1, np.int64)
    for i in range(m):
        if pos >= L or buf[pos] == 10 or buf[pos] == 92:  # end, blank line or a section header
            err[0] = ERR_TRUNCATED
            err[1] = pos
            return pos
        end = pos
        while end < L and buf[end] != 10:
            end += 1
        field = 0
        j = pos
        while j < end:
            while j < end and _is_space(buf[j]):
                j += 1
            if j >= end:
                break
            a = j
            while j < end and not _is_space(buf[j]):
                j += 1
            if field == 0 or field == n + 1:
                v, ok = _parse_float(buf, a, j)
                if not ok:
                    err[0] = ERR_NUMBER
                    err[1] = pos
                    return pos
                if not np.isfinite(v):
                    err[0] = ERR_FINITE
                    err[1] = pos
                    return pos
                if field == 0:
                    prob[i] = v
                else:
                    backoff[i] = v
            elif field <= n:
                c = field - 1
                # the previous line's word at this position (suffix order repeats the last words)
                pa, pb = prev_a[c], prev_b[c]
                w = -1
                if n > 1 and pb - pa == j - a and pa >= 0:
                    w = prev_id[c]
                    for k in range(j - a):
                        if buf[pa + k] != buf[a + k]:
                            w = -1
                            break
                if w < 0:
                    w, slot, key = _find_word(buf, a, j, slots, word_start, word_end)
                    if n == 1:
                        if w >= 0:
                            err[0] = ERR_DUPLICATE
                            err[1] = a
                            return pos
                        word_start[i] = a
                        word_end[i] = j
                        slots[slot, 0] = key
                        slots[slot, 1] = i
                        w = i
                    elif w < 0:
                        err[0] = ERR_UNKNOWN
                        err[1] = a
                        return pos
                prev_a[c], prev_b[c], prev_id[c] = a, j, w
                ids[i, c] = w
            field += 1
        if field < n + 1 or field > n + 2:
            err[0] = ERR_WORDS
            err[1] = pos
            return pos
        if field == n + 1:
            backoff[i] = 0.0
        pos = end + 1
    return pos


@kernel
def gather_words(buf, word_start, word_end, out):
    """The words' bytes, each followed by a newline, into ``out``; returns the length."""
    k = 0
    for w in range(word_start.shape[0]):
        for b in range(word_start[w], word_end[w]):
            out[k] = buf[b]
            k += 1
        out[k] = 10
        k += 1
    return k


@kernel
def rows_order(rows):
    """1 if the rows are strictly increasing, 0 if some are equal (and otherwise sorted), -1 if unsorted."""
    m, n = rows.shape
    result = 1
    for i in range(1, m):
        c = 0
        for k in range(n):
            a = rows[i - 1, k]
            b = rows[i, k]
            if a != b:
                c = -1 if a < b else 1
                break
        if c > 0:
            return -1
        if c == 0:
            result = 0
    return result


@kernel
def compact_words(buf, word_start, word_end, slots, arena, table):
    """Index the unigrams for fast lookups: ``arena`` holds their bytes; ``table[s] = (hash, id,
    arena start, length)`` (id -1: empty), open addressing over ``table``'s rows."""
    mask = np.uint64(table.shape[0] - 1)
    k = 0
    for w in range(word_start.shape[0]):
        a, b = word_start[w], word_end[w]
        hv = _hash_bytes(buf, a, b)
        h = hv & mask
        while table[h, 1] >= 0:
            h = (h + np.uint64(1)) & mask
        table[h, 0] = np.int64(hv)
        table[h, 1] = w
        table[h, 2] = k
        table[h, 3] = b - a
        for i in range(a, b):
            arena[k] = buf[i]
            k += 1


@kernel
def _lookup(buf, a, b, table, arena):
    mask = np.uint64(table.shape[0] - 1)
    hv = _hash_bytes(buf, a, b)
    key = np.int64(hv)
    h = hv & mask
    while True:
        w = table[h, 1]
        if w < 0:
            return -1
        if table[h, 0] == key and table[h, 3] == b - a:
            s = table[h, 2]
            same = True
            for k in range(b - a):
                if arena[s + k] != buf[a + k]:
                    same = False
                    break
            if same:
                return w
        h = (h + np.uint64(1)) & mask


@kernel
def section_end(buf, pos, m):
    """The position after ``m`` lines from ``pos``, or -1 when the section is shorter (an end of
    file, a blank line or a header line comes first)."""
    L = buf.shape[0]
    for _ in range(m):
        if pos >= L or buf[pos] == 10 or buf[pos] == 92:
            return -1
        while pos < L and buf[pos] != 10:
            pos += 1
        pos += 1
    return min(pos, L + 1)


@kernel
def count_lines(buf, starts, out):
    for c in range(starts.shape[0] - 1):
        k = 0
        for i in range(starts[c], starts[c + 1]):
            if buf[i] == 10:
                k += 1
        out[c] = k


@kernel(parallel=True)
def parse_chunks(buf, starts, first_line, n, table, arena, ids, prob, backoff, errs):
    """:func:`parse_section` for n >= 2 over line-aligned chunks in parallel (chunk ``c`` is
    ``buf[starts[c]:starts[c + 1]]``, its first line the n-gram ``first_line[c]``);
    ``errs[c] = (code, position)`` of the chunk's first error."""
    C = starts.shape[0] - 1
    for c in numba.prange(C):
        pos = starts[c]
        stop = starts[c + 1]
        i = first_line[c]
        prev_a = np.full(n, -1, np.int64)
        prev_b = np.full(n, -1, np.int64)
        prev_id = np.full(n, -1, np.int64)
        while pos < stop:
            end = pos
            while end < stop and buf[end] != 10:
                end += 1
            field = 0
            j = pos
            bad = 0
            at = pos
            while j < end:
                while j < end and _is_space(buf[j]):
                    j += 1
                if j >= end:
                    break
                a = j
                while j < end and not _is_space(buf[j]):
                    j += 1
                if field == 0 or field == n + 1:
                    v, ok = _parse_float(buf, a, j)
                    if not ok:
                        bad = ERR_NUMBER
                        break
                    if not np.isfinite(v):
                        bad = ERR_FINITE
                        break
                    if field == 0:
                        prob[i] = v
                    else:
                        backoff[i] = v
                elif field <= n:
                    col = field - 1
                    pa, pb = prev_a[col], prev_b[col]
                    w = -1
                    if pa >= 0 and pb - pa == j - a:
                        w = prev_id[col]
                        for k in range(j - a):
                            if buf[pa + k] != buf[a + k]:
                                w = -1
                                break
                    if w < 0:
                        w = _lookup(buf, a, j, table, arena)
                        if w < 0:
                            bad = ERR_UNKNOWN
                            at = a
                            break
                    prev_a[col], prev_b[col], prev_id[col] = a, j, w
                    ids[i, col] = w
                field += 1
            if bad == 0 and (field < n + 1 or field > n + 2):
                bad = ERR_WORDS
            if bad:
                errs[c, 0] = bad
                errs[c, 1] = at
                break
            if field == n + 1:
                backoff[i] = 0.0
            i += 1
            pos = end + 1
