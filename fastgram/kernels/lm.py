"""Kernels of the n-gram language models (:mod:`fastgram.lm`): lookups, scoring, generation.

Layouts shared by the kernels (and :mod:`fastgram.kernels.lm_estimate`, :mod:`~fastgram.kernels.lm_arpa`):

- *reversed rows*: an n-gram ``(w1, ..., wn)`` is stored as the row ``(wn, ..., w1)``; a table
  of one order is its rows sorted lexicographically (lmplz's suffix order), so the n-grams
  sharing a suffix are contiguous and the suffix of a row is a prefix of it.
- *flat tables*: all orders in one uint32 array; order ``n`` (1-based) holds ``nrows[n]`` rows
  of ``n`` words from ``flat[row_off[n]]``; its values (probabilities, backoffs) start at
  ``val_off[n]`` in the value arrays.
"""

from __future__ import annotations

import numpy as np

from fastgram._jit import kernel
from fastgram.kernels.random import below, seed_key, stream_key, uniform, word


@kernel
def find_rows(w_lo, w_hi, table, queries, out):
    """``out[i]`` = the index of row ``queries[i]`` in the sorted ``table`` (same width), or -1."""
    m, n = table.shape
    for i in range(w_lo, w_hi):
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


_H1 = np.uint64(0x9E3779B97F4A7C15)
_H2 = np.uint64(0xBF58476D1CE4E5B9)


@kernel
def _hash_words(a, start, n):
    """Hash of the ids ``a[start:start + n]`` (the same function as the estimation's row hash)."""
    h = np.uint64(n) * _H1
    for c in range(n):
        h = (h ^ np.uint64(a[start + c])) * _H2
        h ^= h >> np.uint64(31)
    return h


@kernel
def build_slots(w_lo, w_hi, flat, row_off, nrows, slot_off, slots):
    """Hash index of every order's rows: order ``n`` in ``slots[slot_off[n]:slot_off[n + 1]]``
    (a power of two, filled with -1 by the caller), linear probing. Orders in parallel."""
    for n in range(w_lo + 1, w_hi + 1):  # orders 1 + lo .. hi
        base = slot_off[n]
        mask = np.uint64(slot_off[n + 1] - base - 1)
        for r in range(nrows[n]):
            h = _hash_words(flat, row_off[n] + r * n, n) & mask
            while slots[base + h] >= 0:
                h = (h + np.uint64(1)) & mask
            slots[base + h] = r


@kernel
def find_flat(flat, row_off, nrows, slots, slot_off, n, query, qstart):
    """Index in order ``n`` of the reversed row ``query[qstart:qstart + n]``, or -1 (hashed).

    A unigram is looked up directly where row ``w`` is the word ``w`` (every model's unigrams
    are its whole vocabulary in id order; otherwise the hash finds it)."""
    if nrows[n] == 0:
        return -1
    if n == 1:
        w = query[qstart]
        if w < nrows[1] and flat[row_off[1] + w] == w:
            return np.int64(w)
    base = slot_off[n]
    mask = np.uint64(slot_off[n + 1] - base - 1)
    h = _hash_words(query, qstart, n) & mask
    while True:
        r = slots[base + h]
        if r < 0:
            return -1
        p = row_off[n] + np.int64(r) * n
        same = True
        for k in range(n):
            if flat[p + k] != query[qstart + k]:
                same = False
                break
        if same:
            return np.int64(r)
        h = (h + np.uint64(1)) & mask


@kernel
def _score_one(flat, row_off, nrows, prob, backoff, val_off, slots, slot_off, order, query, hist):
    """log10 p(query[0] | query[1:1 + hist]) with ARPA backoff; also the matched length.

    ``query`` is the reversed (word, previous word, ...) of which ``hist`` context words are
    valid. Longest match first found by extending one word at a time (KenLM's search); the
    backoffs of the contexts longer than the match are added.
    """
    top = min(order, hist + 1)
    matched = 1
    idx = find_flat(flat, row_off, nrows, slots, slot_off, 1, query, 0)
    p = prob[val_off[1] + idx]
    for n in range(2, top + 1):
        idx = find_flat(flat, row_off, nrows, slots, slot_off, n, query, 0)
        if idx < 0:
            break
        p = prob[val_off[n] + idx]
        matched = n
    for n in range(matched, min(order - 1, hist) + 1):
        idx = find_flat(flat, row_off, nrows, slots, slot_off, n, query, 1)
        if idx < 0:
            break
        p += backoff[val_off[n] + idx]
    return p, matched


@kernel
def score_sentences(
    lo,
    hi,
    flat,
    row_off,
    nrows,
    prob,
    backoff,
    val_off,
    slots,
    slot_off,
    order,
    ids,
    starts,
    bos,
    out,
    matched,
    n_spans,
):
    """Per-token log10 probabilities of sentences of model ids.

    Sentence ``s`` is ``ids[starts[s]:starts[s + 1]]`` (its ``</s>`` included as the last id);
    its context starts at ``<s>``. ``out`` is float64 (tokens,), ``matched`` int8 (the n-gram
    length found). The sentences are dealt to threads in ``n_spans`` runs (:func:`score_span`,
    one set of scratch arrays each); the result does not depend on ``n_spans``.
    """
    S = starts.shape[0] - 1
    for c in range(lo, hi):
        score_span(
            S * c // n_spans, S * (c + 1) // n_spans,
            flat, row_off, nrows, prob, backoff, val_off, slots, slot_off, order, ids, starts, bos, out, matched,
        )  # fmt: skip


@kernel
def score_span(
    s_lo, s_hi, flat, row_off, nrows, prob, backoff, val_off, slots, slot_off, order, ids, starts, bos, out, matched
):
    """Sentences ``s_lo <= s < s_hi`` of :func:`score_sentences`. As KenLM's state does, the
    n-grams found for a token are kept: they are the next token's contexts, so their backoffs
    need no lookup."""
    query = np.empty(order, np.uint32)
    prev = np.empty(order + 1, np.int64)  # index of the n-gram of length n ending before
    cur = np.empty(order + 1, np.int64)
    for s in range(s_lo, s_hi):
        for n in range(order + 1):
            prev[n] = -1
            cur[n] = -1
        query[0] = bos
        prev[1] = find_flat(flat, row_off, nrows, slots, slot_off, 1, query, 0)
        prev_len = 1 if prev[1] >= 0 else 0
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
            # as KenLM's state: an n-gram can only extend a context found for the previous token
            top = min(order, hist + 1, prev_len + 1)
            m = 1
            idx = find_flat(flat, row_off, nrows, slots, slot_off, 1, query, 0)
            cur[1] = idx
            p = prob[val_off[1] + idx]
            for n in range(2, top + 1):
                idx = find_flat(flat, row_off, nrows, slots, slot_off, n, query, 0)
                if idx < 0:
                    break
                cur[n] = idx
                p = prob[val_off[n] + idx]
                m = n
            for n in range(m, min(order - 1, hist) + 1):  # contexts longer than the match
                if n > prev_len:
                    break
                p += backoff[val_off[n] + prev[n]]
            out[i] = p
            matched[i] = m
            for n in range(1, m + 1):
                prev[n] = cur[n]
            prev_len = m


@kernel
def score_queries(
    w_lo, w_hi, flat, row_off, nrows, prob, backoff, val_off, slots, slot_off, order, queries, hists, out
):
    """``out[i]`` = log10 p(queries[i, 0] | queries[i, 1:1 + hists[i]]) (reversed rows)."""
    for i in range(w_lo, w_hi):
        q = queries[i].copy()
        p, m = _score_one(flat, row_off, nrows, prob, backoff, val_off, slots, slot_off, order, q, hists[i])
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


@kernel
def generate(
    w_lo, w_hi, flat, row_off, nrows, ctx_off, seg_start, seg_words, seg_cum, gamma, order, V, seed, first, out, lengths
):
    """Sentences drawn from the interpolated model as a mixture (see :func:`fastgram.reference.lm_generate`).

    For a context (an (n-1)-gram, index ``c`` in its order's table), its words are
    ``seg_words[a:b]`` with running sums ``seg_cum[a:b]`` of ``u``, ``a = seg_start[ctx_off[n] + c]``
    and ``b`` the next entry; ``gamma[ctx_off[n] + c]`` its interpolation weight (-1: not a
    context). ``out`` (S, L) receives model ids, ``lengths`` the sentence lengths.
    Sentence ``s`` uses stream ``first + s``; draw ``t`` at level ``k`` index ``t * (order + 1) + k``.
    """
    S, L = out.shape
    skey = seed_key(seed)
    for s in range(w_lo, w_hi):
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
