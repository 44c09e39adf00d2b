"""Kernels of the n-gram language models (:mod:`fastgram.lm`): lookups, scoring, generation.

Layouts shared by the kernels (and :mod:`fastgram.kernels.lm_estimate`, :mod:`~fastgram.kernels.lm_arpa`):

- *reversed rows*: an n-gram ``(w1, ..., wn)`` is stored as the row ``(wn, ..., w1)``; a table
  of one order is its rows sorted lexicographically (lmplz's suffix order), so the n-grams
  sharing a suffix are contiguous and the suffix of a row is a prefix of it.
- *flat tables*: all orders in one uint32 array; order ``n`` (1-based) holds ``nrows[n]`` rows
  of ``n`` words from ``flat[row_off[n]]``; its values (probabilities, backoffs) start at
  ``val_off[n]`` in the value arrays.
- *scoring index* (:meth:`fastgram.lm.NGramLM.score_index`): one open-addressing table per
  order ``n >= 2`` of 24-byte slots ``(key, log10 p, backoff)``. The key of a reversed row is
  exact, not a hash: ``node << 32 | w``, where ``node`` is where the search found the row's
  first ``n - 1`` words (the word itself for ``n = 2``, else that row's slot) and ``w`` its
  last word. A search grows a context one word at a time, probing from a hash of the words,
  and reads one slot per order: no rows are compared, no collision can give a wrong match.
"""

from __future__ import annotations

import numpy as np

from fastgram._jit import kernel, prefetch
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


#: The node of a row the search never reaches (uint32 all ones: a parent part no key spells).
NO_NODE = np.uint32(0xFFFFFFFF)
#: An empty slot of the scoring index (no key is all ones: a node id is below 2**32 - 1).
EMPTY = np.uint64(0xFFFFFFFFFFFFFFFF)
_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xBF58476D1CE4E5B9)
_LOW = np.uint64(0xFFFFFFFF)


@kernel
def _mix(h, w):
    """The index hash of a reversed row grown by the word ``w`` (``h = _M1`` before the first)."""
    h = (h ^ np.uint64(w)) * _M2
    return h ^ (h >> np.uint64(29))


@kernel
def _home(h, size):
    """The first slot probed for hash ``h`` in a table of ``size`` slots (multiply-shift)."""
    return np.int64(((h >> np.uint64(32)) * np.uint64(size)) >> np.uint64(32))


#: Rows whose home slots :func:`index_insert` prefetches together before inserting them.
INSERT_GROUP = 16


@kernel
def _parent_row(flat, row_off, nrows, n, r, j):
    """The row of order ``n - 1`` that is row ``r``'s first ``n - 1`` words (the n-gram it
    extends in a search), searching from row ``j`` on (the previous row's answer: both tables
    are sorted, so one pass over them answers every row); ``(row or -1, next j)``."""
    p = row_off[n] + r * n
    mp = nrows[n - 1]
    while j < mp:  # first row of order n - 1 >= the prefix
        q = row_off[n - 1] + j * (n - 1)
        less = False
        for k in range(n - 1):
            a = flat[q + k]
            c = flat[p + k]
            if a != c:
                less = a < c
                break
        if not less:
            break
        j += 1
    if j >= mp:
        return np.int64(-1), j
    q = row_off[n - 1] + j * (n - 1)
    for k in range(n - 1):
        if flat[q + k] != flat[p + k]:
            return np.int64(-1), j
    return j, j


@kernel
def index_insert(w_lo, w_hi, flat, row_off, nrows, val_off, prob, backoff, base, size, index, values, node):
    """Orders ``2 + w_lo .. 1 + w_hi`` of the scoring index: each order's slots set empty, then
    every row whose first ``n - 1`` words are a row one order down inserted (linear probing from
    the hash of its words) with the key ``parent row << 32 | last word`` until
    :func:`index_relink`. ``node[val_off[n] + r]`` = its slot (uint32; :data:`NO_NODE`: no such
    parent, the search never reaches it). Rows go in groups of :data:`INSERT_GROUP` whose home slots are
    prefetched first, so their cache misses overlap. O(rows of the orders)."""
    homes = np.empty(INSERT_GROUP, np.int64)
    parents = np.empty(INSERT_GROUP, np.int64)
    for n in range(w_lo + 2, w_hi + 2):
        b = base[n]
        sz = size[n]
        for s in range(sz):
            index[b + s, 0] = EMPTY
        m = nrows[n]
        j = np.int64(0)
        for g in range(0, m, INSERT_GROUP):
            g_hi = min(g + INSERT_GROUP, m)
            for r in range(g, g_hi):
                parents[r - g], j = _parent_row(flat, row_off, nrows, n, r, j)
                p = row_off[n] + r * n
                h = _M1
                for k in range(n):
                    h = _mix(h, flat[p + k])
                homes[r - g] = _home(h, sz)
                prefetch(index, b + homes[r - g])
            for r in range(g, g_hi):
                v = val_off[n] + r
                node[v] = NO_NODE
                if parents[r - g] < 0:
                    continue
                s = homes[r - g]
                while index[b + s, 0] != EMPTY:
                    s += 1
                    if s == sz:
                        s = 0
                p = row_off[n] + r * n
                index[b + s, 0] = (np.uint64(parents[r - g]) << np.uint64(32)) | np.uint64(flat[p + n - 1])
                values[b + s, 1] = prob[v]
                values[b + s, 2] = backoff[v]
                node[v] = s


@kernel
def index_relink(w_lo, w_hi, val_off, base, size, index, node):
    """Keys of orders ``3 + w_lo .. 2 + w_hi``: the parent's row becomes the parent's slot (its
    node), so a search needs no rows, only the slot it found one order down. A parent the
    search never reaches (:data:`NO_NODE`) gives the parent part ``2**32 - 1``, which no search
    spells: its children are unreachable too. Slots go in groups of :data:`INSERT_GROUP` whose
    parents' nodes are prefetched first."""
    for n in range(w_lo + 3, w_hi + 3):
        b = base[n]
        sz = size[n]
        for g in range(0, sz, INSERT_GROUP):
            g_hi = min(g + INSERT_GROUP, sz)
            for s in range(g, g_hi):
                k = index[b + s, 0]
                if k != EMPTY:
                    prefetch(node, val_off[n - 1] + np.int64(k >> np.uint64(32)))
            for s in range(g, g_hi):
                k = index[b + s, 0]
                if k != EMPTY:
                    r = np.int64(k >> np.uint64(32))
                    index[b + s, 0] = (np.uint64(node[val_off[n - 1] + r]) << np.uint64(32)) | (k & _LOW)


@kernel
def _probe(index, b, sz, h, key):
    """The slot of ``key`` in the table of ``sz`` slots at ``b`` (probing from hash ``h``), or -1."""
    if sz == 0:
        return np.int64(-1)
    s = _home(h, sz)
    while True:
        k = index[b + s, 0]
        if k == key:
            return b + s
        if k == EMPTY:
            return np.int64(-1)
        s += 1
        if s == sz:
            s = 0


@kernel
def _extend(index, base, size, query, qstart, n_max, nodes):
    """The longest reversed row ``query[qstart:qstart + n]``, ``n <= n_max``, that a search
    reaches (one word at a time, as KenLM's); ``nodes[n]`` = its node per length (the word for
    ``n = 1``, else the slot in ``index``). Returns the length found (>= 1: every word is a unigram).
    """
    w = query[qstart]
    nodes[1] = np.int64(w)
    h = _mix(_M1, w)
    node = np.int64(w)
    length = 1
    for n in range(2, n_max + 1):
        w = query[qstart + n - 1]
        h = _mix(h, w)
        local = node if n == 2 else node - base[n - 1]  # the node as keys spell it: its slot within its order
        slot = _probe(index, base[n], size[n], h, (np.uint64(local) << np.uint64(32)) | np.uint64(w))
        if slot < 0:
            break
        node = slot
        nodes[n] = slot
        length = n
    return length


@kernel
def _score_one(index, values, base, size, uprob, uback, order, query, hist, nodes):
    """log10 p(query[0] | query[1:1 + hist]) with ARPA backoff; also the matched length.

    ``query`` is the reversed (word, previous word, ...) of which ``hist`` context words are
    valid. Longest match first, found by extending one word at a time (KenLM's search); the
    backoffs of the contexts longer than the match are added.
    """
    matched = _extend(index, base, size, query, 0, min(order, hist + 1), nodes)
    p = uprob[query[0]] if matched == 1 else values[nodes[matched], 1]
    top = min(order - 1, hist)
    if top >= matched:
        found = _extend(index, base, size, query, 1, top, nodes)
        for n in range(matched, min(top, found) + 1):
            p += uback[query[1]] if n == 1 else values[nodes[n], 2]
    return p, matched


@kernel
def score_sentences(lo, hi, index, values, base, size, uprob, uback, order, ids, starts, bos, out, matched, n_spans):
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
            index, values, base, size, uprob, uback, order, ids, starts, bos, out, matched,
        )  # fmt: skip


@kernel
def score_span(s_lo, s_hi, index, values, base, size, uprob, uback, order, ids, starts, bos, out, matched):
    """Sentences ``s_lo <= s < s_hi`` of :func:`score_sentences`. As KenLM's state does, the
    nodes found for a token are kept: they are the next token's contexts, so their backoffs
    need no lookup. Each token costs one probe sequence per order matched (one cache line for
    most, in a table far larger than the caches): O(tokens * order)."""
    query = np.empty(order, np.uint32)
    prev = np.empty(order + 1, np.int64)  # node of the n-gram of length n ending before
    cur = np.empty(order + 1, np.int64)
    hashes = np.empty(order + 1, np.uint64)
    for s in range(s_lo, s_hi):
        prev[1] = bos
        prev_len = 1
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
            # as KenLM's state: an n-gram can only extend a context found for the previous token.
            # The search is _extend's, written out here with each order's value read as its slot
            # is found: calling _extend and reading the value after made scoring 1.5x slower.
            w = query[0]
            node = np.int64(w)
            cur[1] = node
            p = uprob[w]
            m = 1
            top = min(order, hist + 1, prev_len + 1)
            h = _mix(_M1, w)
            for n in range(2, top + 1):  # every order's home slot at once: the misses overlap
                h = _mix(h, query[n - 1])
                hashes[n] = h
                if size[n] > 0:
                    prefetch(index, base[n] + _home(h, size[n]))
            for n in range(2, top + 1):
                w = query[n - 1]
                local = node if n == 2 else node - base[n - 1]
                slot = _probe(index, base[n], size[n], hashes[n], (np.uint64(local) << np.uint64(32)) | np.uint64(w))
                if slot < 0:
                    break
                node = slot
                cur[n] = slot
                p = values[slot, 1]
                m = n
            for n in range(m, min(order - 1, hist, prev_len) + 1):  # contexts longer than the match
                p += uback[prev[1]] if n == 1 else values[prev[n], 2]
            out[i] = p
            matched[i] = m
            for n in range(1, m + 1):
                prev[n] = cur[n]
            prev_len = m


@kernel
def score_queries(w_lo, w_hi, index, values, base, size, uprob, uback, order, queries, hists, out):
    """``out[i]`` = log10 p(queries[i, 0] | queries[i, 1:1 + hists[i]]) (reversed rows)."""
    nodes = np.empty(order + 1, np.int64)
    for i in range(w_lo, w_hi):
        q = queries[i].copy()
        p, m = _score_one(index, values, base, size, uprob, uback, order, q, hists[i], nodes)
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
