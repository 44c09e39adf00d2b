"""Estimation kernels of :mod:`fastgram.lm.estimate`: the padded reversed corpus, two-word
key counting (radix sort), every order's n-grams in one pass over the sorted N-grams, a hash
index of table rows, context sums, interpolation and output (see :mod:`fastgram.kernels.lm`
for the layouts)."""

from __future__ import annotations

import numpy as np

from fastgram._jit import kernel

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


@kernel
def common_prefix(w_lo, w_hi, rows, out):
    """``out[i]`` = length of the common prefix of rows ``i - 1`` and ``i`` (``out[0] = 0``),
    for ``w_lo <= i < w_hi``."""
    n = rows.shape[1]
    if w_lo == 0 and w_hi > 0:
        out[0] = 0
    for i in range(max(w_lo, 1), w_hi):
        k = 0
        while k < n and rows[i, k] == rows[i - 1, k]:
            k += 1
        out[i] = k


@kernel
def _padding(rows, i, n, bos):
    """Whether the order-n group of row ``i`` starts (forward) with two ``<s>``."""
    return n >= 2 and rows[i, n - 1] == bos and rows[i, n - 2] == bos


@kernel
def _adjusted(raw, ext, first, n, N, bos):
    """An n-gram's adjusted count: its raw count for order N and when its forward first id is
    ``bos``, else its continuation count ``ext``."""
    return raw if (n == N or first == bos) else ext


@kernel
def _pruned(raw, first, n, threshold, eos):
    """Whether an n-gram is pruned: raw count at most ``threshold``, never a unigram of the
    special ids (at most ``eos``)."""
    return raw <= threshold and not (n == 1 and first <= eos)


@kernel
def level_stats(rows, counts, lcp, bos, eos, prune, final, state, sizes, kept, t):
    """Every order's statistics in one pass over the sorted rows, before any order is built.

    Per order n = 1..N (index n): ``sizes[n]`` the n-grams (groups of rows sharing their first
    n ids, padding groups excluded), ``kept[n]`` those not pruned (raw count above
    ``prune[n - 1]``; unigrams ``<unk>``, ``<s>``, ``</s>`` always kept) and ``t[n, k - 1]`` the
    n-grams of adjusted count k = 1..4, the discounts' statistics. The adjusted count is the
    raw count (the sum of the group's counts) for order N and for n-grams whose forward first
    id is ``bos``, else the continuation count (the order-(n+1) groups inside); the last group
    in suffix order enters with its raw count (as lmplz counts it). Ids at most ``eos`` are the
    special words.

    The rows may come in consecutive blocks: ``state`` (4, N + 1) int64, zeros before the
    first block, carries each order's open group (raw count, continuation count, forward first
    id, whether it is counted) from one block to the next, ``lcp[0]`` is the common prefix
    with the previous block's last row, and ``final`` (on the last block, which may be empty)
    closes the open groups. O(m N) time; :func:`level_groups` builds the groups counted here.
    """
    m, N = rows.shape
    raw, ext, first, live = state[0], state[1], state[2], state[3]
    for i in range(m + (1 if final else 0)):
        for n in range(1, N + 1):
            if i < m and n < N and lcp[i] >= n:
                continue  # row i is inside order n's open group
            if live[n]:  # close the open group
                last = i == m and n < N  # lmplz counts the last n-gram by its raw count
                a = raw[n] if last else _adjusted(raw[n], ext[n], first[n], n, N, bos)
                if 1 <= a <= 4:
                    t[n, a - 1] += 1
                if not _pruned(raw[n], first[n], n, prune[n - 1], eos):
                    kept[n] += 1
            if i < m:  # open row i's group
                live[n] = 0 if _padding(rows, i, n, bos) else 1
                if live[n]:
                    sizes[n] += 1
                first[n] = rows[i, n - 1]
                raw[n] = 0
                ext[n] = 0
            else:
                live[n] = 0
        if i < m:
            for n in range(1, N + 1):
                raw[n] += counts[i]
                if n < N and lcp[i] < n + 1:
                    ext[n] += 1


@kernel
def _close_group(state, adj, marked, n, N, bos, eos, threshold):
    """Write the adjusted count and pruning mark of the open group ``state[0]`` (if counted)."""
    j = state[0]
    if j >= 0:
        adj[j] = _adjusted(state[4], state[5], state[6], n, N, bos)
        marked[j] = _pruned(state[4], state[6], n, threshold, eos)


@kernel
def level_groups(rows, counts, lcp, bos, eos, n, threshold, final, state, level_rows, adj, marked, parent):
    """Order n's kept groups (rows sharing their first n ids, padding groups excluded): the
    group's n ids (``level_rows`` (m_n, n)), its adjusted count (``adj``: the raw count, the
    sum of its rows' counts, for n = N and for groups whose forward first id is ``bos``, else
    the continuation count, the order-(n+1) groups inside), whether it is pruned (``marked``:
    raw count at most ``threshold``, never for the unigrams of ids up to ``eos``) and its
    suffix's index in order n - 1 (``parent``, -1 for unigrams). One pass over the rows;
    O(m + m_n n), no array but the outputs.

    The rows may come in consecutive blocks (``lcp[0]``: the common prefix with the previous
    block's last row; ``final`` on the last block, which may be empty, closes the last group):
    ``state`` (7,) int64 carries this order's current group (-1 inside a padding group), its
    next group, order n - 1's current group and next group, and the current group's raw
    count, continuation count and forward first id. Before the first block it is ``(-1, r1,
    -1, r2, 0, 0, 0)``, where ``r1`` (order 1) or ``r2`` (order 2) is the number of unigram
    slots the caller fills itself, else 0."""
    m, N = rows.shape[0], rows.shape[1]
    for i in range(m):
        count = counts[i]
        if n > 1 and lcp[i] < n - 1:
            if _padding(rows, i, n - 1, bos):
                state[2] = -1
            else:
                state[2] = state[3]
                state[3] += 1
        if n == N or lcp[i] < n:
            _close_group(state, adj, marked, n, N, bos, eos, threshold)
            if _padding(rows, i, n, bos):
                state[0] = -1
            else:
                j = state[1]
                state[0] = j
                state[1] += 1
                for c in range(n):
                    level_rows[j, c] = rows[i, c]
                parent[j] = state[2] if n > 1 else -1
                state[4], state[5], state[6] = 0, 0, rows[i, n - 1]
        if state[0] >= 0:
            state[4] += count
            if n < N and lcp[i] < n + 1:
                state[5] += 1
    if final:
        _close_group(state, adj, marked, n, N, bos, eos, threshold)
        state[0] = -1


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


@kernel
def hash_find(w_lo, w_hi, table, slots, queries, c0, out):
    """``out[i]``: the row of ``table`` equal to ``queries[i, c0:c0 + k]``, or -1."""
    T, k = table.shape
    mask = np.uint64(slots.shape[0] - 1)
    for i in range(w_lo, w_hi):
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


@kernel
def interpolate(w_lo, w_hi, adj, ctx, parent, D, denom, gamma, p_lower, uniform, u, p):
    """``u = (a - D(a)) / denom(ctx)``; ``p = u + gamma(ctx) * lower`` (``p_lower[parent]``, or
    ``uniform`` when ``parent`` is empty: the unigrams). ``u`` may be ``p`` itself when u is
    not kept (``p[i]`` is written after ``u[i]``), and ``p`` may be ``adj``'s memory (``adj[i]``
    is read first)."""
    unigrams = parent.shape[0] == 0
    for i in range(w_lo, w_hi):
        c = ctx[i]
        a = adj[i]
        ui = (a - D[min(a, 3)]) / denom[c]
        lower = uniform if unigrams else p_lower[parent[i]]
        u[i] = ui
        p[i] = ui + gamma[c] * lower


@kernel
def kept_positions(marked):
    """``dest`` (m,) int32: the output row of each kept (unmarked) row, a running count."""
    m = marked.shape[0]
    dest = np.empty(m, np.int32)
    k = 0
    for i in range(m):
        dest[i] = k
        if not marked[i]:
            k += 1
    return dest


@kernel
def finish(
    w_lo, w_hi, rows, p, u, marked, dest, gamma_next, has_next, eos, unk, out_rows, out_prob, out_backoff, keep_u, out_u
):
    """The kept n-grams among rows ``w_lo <= i < w_hi``: rows, log10 p (at most 0), log10 backoff
    (0 for no context) and, with ``keep_u``, u, at their output rows ``dest``
    (:func:`kept_positions`; empty when nothing is marked: row i goes to row i); without
    ``keep_u``, ``u`` and ``out_u`` are not read.

    With nothing marked (``dest[i] == i``) the outputs may be the inputs themselves (``rows``,
    ``p``, ``u``, and ``gamma_next`` as ``out_backoff``): row i is read before it is written."""
    n = rows.shape[1]
    identity = dest.shape[0] == 0
    for i in range(w_lo, w_hi):
        if marked[i]:
            continue
        d = i if identity else np.int64(dest[i])
        for c in range(n):
            out_rows[d, c] = rows[i, c]
        out_prob[d] = min(0.0, np.log10(p[i]))
        b = 0.0
        if has_next and rows[i, 0] != eos and rows[i, 0] != unk:
            g = gamma_next[i]
            if g > 0.0 and np.isfinite(g):
                b = np.log10(g)
        out_backoff[d] = b
        if keep_u:
            out_u[d] = u[i]
