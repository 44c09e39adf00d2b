"""Estimation of interpolated modified Kneser-Ney models as sort/scan over sorted n-gram arrays.

The stages are lmplz's (see :mod:`fastgram.reference.lm` for the formulas):

1. *Vocabulary*: model ids ``<unk>`` = 0, ``<s>`` = 1, ``</s>`` = 2, then the corpus ids in the
   order they first appear (lmplz's numbering, which its statistics depend on).
2. *Counting*: the N-grams of the padded sentences (``<s>`` * (N-1) ... ``</s>``), reversed
   (last word first) so that the sorted rows are lmplz's suffix order, counted by
   :class:`fastgram.counting.NGramCounter` chunk by chunk (spilling sorted runs to disk under
   ``max_memory``).
3. *Adjusted counts*: one pass gives the common-prefix length of adjacent sorted rows; the
   n-grams of every lower order are the groups of rows sharing their first n words, their raw
   counts the group sums and their continuation counts the number of (n+1)-groups inside
   (``np.add.reduceat``), no sort.
4. *Discounts* from ``np.bincount`` of the adjusted counts.
5. *Initial probabilities and backoffs*: each n-gram's context is found in the sorted table of
   the order below (binary search, :func:`fastgram.kernels.lm.find_rows`); denominators and
   backoff mass are ``np.bincount`` over context indices.
6. *Interpolation* bottom-up: ``p = u + gamma(context) * p(suffix)``, the suffix's index being
   the group index from stage 3.

Memory: what must fit is the sorted N-grams (``N`` words of 1-4 bytes plus an 8-byte count
each) and, per lower order, its n-grams with a few 8-byte arrays (about ``40 + 4n`` bytes per
n-gram in all); counting itself is bounded by ``max_memory`` (sorted runs spill to disk).
"""

from __future__ import annotations

import math

import numpy as np

from fastgram import _checks
from fastgram._jit import parallel_guard
from fastgram.counting import NGramCounter
from fastgram.kernels import lm as _k

UNK, BOS, EOS = 0, 1, 2
MAX_ORDER = 8
#: lmplz's ``--discount_fallback`` default (D1, D2, D3+).
DEFAULT_FALLBACK = (0.5, 1.0, 1.5)
CHUNK_TOKENS = 1 << 24
SENTINEL = (1 << 32) - 1


# ---------------------------------------------------------------------------------------------
# argument checks
# ---------------------------------------------------------------------------------------------


def check_order(order) -> int:
    return _checks.require_int(order, "order", min=1, max=MAX_ORDER)


def check_prune(prune, order: int) -> list[int]:
    """lmplz's ``--prune``: one threshold per order, non-decreasing, the last one repeated."""
    if prune is None:
        return [0] * order
    if isinstance(prune, (int, np.integer)):
        prune = [prune]
    values = [_checks.require_int(t, "prune", min=0) for t in prune]
    if not values:
        return [0] * order
    if len(values) > order:
        raise ValueError(
            f"prune: {len(values)} thresholds given (orders 1 through {len(values)}) but the model has order {order}"
        )
    for a, b in zip(values, values[1:]):
        if b < a:
            raise ValueError(
                f"prune thresholds must be non-decreasing, got {values} (a lower order would lose n-grams)"
            )
    return values + [values[-1]] * (order - len(values))


def check_fallback(discount_fallback):
    """``None``/``False``: no fallback; ``True``: (0.5, 1, 1.5); up to three discounts (the last repeated)."""
    if discount_fallback is None or discount_fallback is False:
        return None
    if discount_fallback is True:
        return DEFAULT_FALLBACK
    values = [float(_checks.require_float(d, "discount_fallback")) for d in np.atleast_1d(discount_fallback).tolist()]
    if not 1 <= len(values) <= 3:
        raise ValueError(f"discount_fallback takes 1 to 3 discounts (for counts 1, 2 and 3+), got {len(values)}")
    values = values + [values[-1]] * (3 - len(values))
    for k, d in enumerate(values, 1):
        if not 0.0 <= d <= k:
            raise ValueError(f"discount_fallback: the discount for count {k} must be in [0, {k}], got {d}")
    return tuple(values)


# ---------------------------------------------------------------------------------------------
# stages
# ---------------------------------------------------------------------------------------------


#: Largest id range numbered with a dense table (int64 per id); sparser ids are sorted instead.
DENSE_IDS = 1 << 24


def vocabulary(tokens: np.ndarray, separator: int | None, chunk_tokens: int):
    """Model ids from a token stream: ``(lookup, token_ids)``.

    ``token_ids[m]`` is the corpus id of model id ``m`` (-1 for the three special words); ids
    are numbered by first appearance. ``lookup`` maps corpus ids to model ids: a dense uint32
    table when the ids span at most ``max(DENSE_IDS, 2 * tokens)`` values, else the pair
    ``(sorted corpus ids, their model ids)`` (memory O(distinct ids)).
    """
    has_sep = separator is not None
    sep = -1 if separator is None else int(separator)
    n = tokens.shape[0]
    top = _checks.stream_max(tokens) if n else -1
    if top + 1 <= max(DENSE_IDS, 2 * n):
        first = np.full(top + 1, np.iinfo(np.int64).max, np.int64)
        for lo in range(0, n, chunk_tokens):
            _k.first_seen(_checks.kernel_view(tokens[lo : lo + chunk_tokens]), lo, sep, has_sep, first)
        seen = np.flatnonzero(first != np.iinfo(np.int64).max)
        seen = seen[np.argsort(first[seen], kind="stable")]
        lookup = np.zeros(top + 1, np.uint32)
        lookup[seen] = 3 + np.arange(len(seen), dtype=np.uint32)
    else:
        ids, pos = np.zeros(0, np.int64), np.zeros(0, np.int64)
        for lo in range(0, n, chunk_tokens):
            chunk = np.asarray(tokens[lo : lo + chunk_tokens]).astype(np.int64)
            u, at = np.unique(chunk, return_index=True)
            ids, first_at = np.unique(np.concatenate([ids, u]), return_inverse=True)
            merged = np.full(len(ids), np.iinfo(np.int64).max, np.int64)
            np.minimum.at(merged, first_at, np.concatenate([pos, at + lo]))
            pos = merged
        if has_sep:
            pos, ids = pos[ids != sep], ids[ids != sep]
        seen = ids[np.argsort(pos, kind="stable")]
        model = np.empty(len(ids), np.uint32)
        model[np.argsort(pos, kind="stable")] = 3 + np.arange(len(ids), dtype=np.uint32)
        lookup = (ids, model)
    token_ids = np.concatenate([np.full(3, -1, np.int64), seen.astype(np.int64)])
    return lookup, token_ids


def map_ids(tokens: np.ndarray, sorted_ids: np.ndarray, model_ids: np.ndarray) -> np.ndarray:
    """Model ids (uint32) of ``tokens`` through a sorted table; unknown ids are ``<unk>`` (0)."""
    t = np.asarray(tokens).astype(np.int64, copy=False)
    at = np.searchsorted(sorted_ids, t)
    at_c = np.minimum(at, max(len(sorted_ids) - 1, 0))
    hit = (at < len(sorted_ids)) & (sorted_ids[at_c] == t) if len(sorted_ids) else np.zeros(len(t), bool)
    out = np.zeros(len(t), np.uint32)
    out[hit] = model_ids[at_c[hit]]
    return out


def check_key_space(V: int, order: int) -> None:
    if V**order > 1 << 128:
        raise ValueError(
            f"order={order} over {_checks.fmt_int(V - 1)} model ids (words plus <unk>, <s>, </s>) needs "
            f"keys of {math.ceil(order * math.log2(V))} bits; n-grams are packed into at most 128 bits "
            f"(V**order <= 2**128), wider keys are not yet supported: use a smaller order or vocabulary"
        )


def _reversed_chunks(tokens, lookup, separator, order, V, chunk_tokens, close_last=True):
    """The reversed padded model-id stream, piece by piece (the corpus read from its end).

    ``close_last=False``: a last sentence without its separator gets no ``</s>`` (lmplz's
    reading of a text whose last line has no newline)."""
    has_sep = separator is not None
    sep = -1 if separator is None else int(separator)
    boundary = V  # an id past the model ids: n-grams across sentences are not counted
    n_tokens = tokens.shape[0]
    ends_open = close_last and n_tokens > 0 and not (has_sep and int(tokens[n_tokens - 1]) == sep)
    identity = np.arange(V, dtype=np.uint32) if isinstance(lookup, tuple) else None
    hi = n_tokens
    first = True
    while hi > 0 or first:
        lo = max(0, hi - chunk_tokens)
        chunk = _checks.kernel_view(tokens[lo:hi])
        nsep = int(np.count_nonzero(chunk == sep)) if has_sep else 0
        if isinstance(lookup, tuple):  # sparse ids: map the chunk first, separators to a sentinel
            idmap, csep = identity, SENTINEL
            mapped = map_ids(chunk, *lookup)
            if has_sep:
                mapped[chunk == sep] = SENTINEL
            chunk = mapped
        else:
            idmap, csep = lookup, sep
        out = np.empty(hi - lo + nsep * (order + 1) + order + 1, np.uint32)
        k = _k.pad_reversed(
            chunk, 0, hi - lo, idmap, csep, has_sep, order, first and ends_open, lo == 0, BOS, EOS, boundary, out
        )
        yield out[:k]
        first = False
        hi = lo


def _count_wide(stream, order, V):
    """Sorted distinct windows of ``stream`` (base ``V + 1`` ids, boundary ``V``) as rows and counts,
    with two 64-bit words per key (for ``(V + 1)**order > 2**64``). Memory: 32 bytes per window."""
    B = V + 1
    split = 1
    while B ** (order - split) > 1 << 64:
        split += 1
    W = max(len(stream) - order + 1, 0)
    hi = np.empty(W, np.uint64)
    lo = np.empty(W, np.uint64)
    k = _k.pack_windows(stream, order, np.uint32(V), np.uint64(B), split, hi, lo)
    hi, lo = hi[:k], lo[:k]
    bits_hi = (B**split - 1).bit_length()
    bits_lo = (B ** (order - split) - 1).bit_length()
    _k.radix_sort_pairs(hi, lo, np.empty_like(hi), np.empty_like(lo), bits_lo, bits_hi)
    out_hi, out_lo, counts = np.empty(k, np.uint64), np.empty(k, np.uint64), np.empty(k, np.int64)
    m = _k.run_lengths(hi, lo, out_hi, out_lo, counts)
    del hi, lo
    rows = np.empty((m, order), np.uint32)
    if m:
        with parallel_guard():
            _k.unpack_pairs(out_hi[:m], out_lo[:m], np.uint64(B), split, rows)
    return rows, counts[:m].copy()


def count_padded(tokens, lookup, separator, order, V, *, max_memory, tmp_dir, chunk_tokens, close_last=True):
    """Sorted reversed N-grams of the padded sentences and their counts: ``(rows (m, N), counts)``.

    Chunks are taken from the end of the stream backwards and written reversed, so the counter
    sees the reversed corpus and its sorted rows are in lmplz's suffix order. Key spaces up to
    64 bits go through :class:`fastgram.counting.NGramCounter` (bounded by ``max_memory``);
    larger ones (up to 128 bits) are counted in memory with two-word keys.
    """
    pieces = _reversed_chunks(tokens, lookup, separator, order, V, chunk_tokens, close_last)
    if (V + 1) ** order > 1 << 64:
        stream = np.concatenate(list(pieces))
        return _count_wide(stream, order, V)
    with NGramCounter(order, V + 1, separator=V, max_memory=max_memory, tmp_dir=tmp_dir) as counter:
        for piece in pieces:
            counter.update(piece)
        counts = counter.result()
    return counts.ngrams, counts.counts


def discounts_of(t, fallback, n: int):
    """``(D1, D2, D3+)`` of order ``n`` from ``t = [t1, t2, t3, t4]`` (lmplz's closed form)."""
    t1, t2, t3, t4 = (int(x) for x in t)
    problem = None
    zero = [k for k, tk in ((1, t1), (2, t2), (3, t3)) if tk == 0]
    if zero:
        k = zero[0]
        problem = (
            f"could not calculate Kneser-Ney discounts for {n}-grams with adjusted count {k + 1} because no "
            f"{n}-grams with adjusted count {k} were observed (is this small or artificial data?)"
        )
    else:
        y = t1 / (t1 + 2.0 * t2)
        d = [k - (k + 1) * y * tk1 / tk for k, tk, tk1 in ((1, t1, t2), (2, t2, t3), (3, t3, t4))]
        for k, dk in enumerate(d, 1):
            if dk < 0.0 or dk > k:
                problem = f"the {n}-gram discount for adjusted count {k} is {dk:.6g}, outside [0, {k}]"
                break
        if problem is None:
            return tuple(d)
    if fallback is None:
        raise ValueError(
            f"{problem}; to use fallback discounts (0.5 1 1.5 by default) pass discount_fallback=True "
            f"(lmplz's --discount_fallback), or deduplicate the corpus"
        )
    return tuple(fallback)


def _discount(adj: np.ndarray, d) -> np.ndarray:
    table = np.array([0.0, d[0], d[1], d[2]])
    return table[np.minimum(adj, 3)]


def kneser_ney(rows, counts, order, V, prune, fallback):
    """The model's arrays from the sorted reversed N-grams (``rows`` (m, N), ``counts`` (m,)).

    Returns a dict of per-order lists (index n-1): ``rows`` (reversed, sorted, uint32),
    ``prob``, ``backoff`` (log10, float64), ``u`` (float64), and ``discounts`` (N, 3).
    """
    N = order
    m = rows.shape[0]
    lcp = np.zeros(m, np.int8)
    if m:
        with parallel_guard():
            _k.common_prefix(rows, lcp)
    # stage 3: every order's n-grams as groups of the sorted N-grams (E: all, K: kept)
    E = {}
    for n in range(N, 0, -1):
        if n == N:
            starts = np.arange(m, dtype=np.int64)
            raw, ext = counts.astype(np.int64), None
        else:
            starts = np.flatnonzero(lcp < n)
            raw = np.add.reduceat(counts, starts) if m else np.zeros(0, np.int64)
            ext = np.add.reduceat((lcp < n + 1).astype(np.int64), starts) if m else np.zeros(0, np.int64)
        parent = np.cumsum(lcp < n - 1)[starts] - 1 if n > 1 else None
        E[n] = dict(rows=np.ascontiguousarray(rows[starts, :n]), raw=raw, ext=ext, parent=parent)
    # unigrams <unk> and <s> (never a suffix of an N-gram) with count 0
    e1 = E[1]
    e1["rows"] = np.concatenate([np.array([[UNK], [BOS]], e1["rows"].dtype), e1["rows"]])
    e1["raw"] = np.concatenate([[0, 0], e1["raw"]]).astype(np.int64)
    if e1["ext"] is not None:
        e1["ext"] = np.concatenate([[0, 0], e1["ext"]]).astype(np.int64)
    if N > 1:
        E[2]["parent"] = E[2]["parent"] + 2

    K = {}
    discounts = np.zeros((N, 3))
    for n in range(1, N + 1):
        e = E[n]
        R, raw = e["rows"], e["raw"]
        firstw = R[:, n - 1]
        keep = ~((firstw == BOS) & (R[:, n - 2] == BOS)) if n >= 2 else np.ones(len(R), bool)
        adj = raw if n == N else np.where(firstw == BOS, raw, e["ext"])
        stat = adj.copy()
        if n < N and len(R) and keep[-1]:
            stat[-1] = raw[-1]  # lmplz: the last n-gram in suffix order enters its statistics raw
        marked = raw <= prune[n - 1]
        if n == 1:
            marked &= firstw > EOS  # <unk>, <s>, </s> are never pruned
        e2k = np.cumsum(keep) - 1
        idx = np.flatnonzero(keep)
        t = np.bincount(np.minimum(stat[idx], 5), minlength=6)[1:5]
        discounts[n - 1] = discounts_of(t, fallback, n)
        K[n] = dict(rows=np.ascontiguousarray(R[idx]), raw=raw[idx], adj=adj[idx], marked=marked[idx], e2k=e2k)
        if n > 1:
            K[n]["parent"] = E[n - 1]["e2k"][e["parent"][idx]]
        e["e2k"] = e2k

    # stage 5: contexts, denominators, interpolation weights; stage 6: interpolation
    out = dict(rows=[], prob=[], backoff=[], u=[], discounts=discounts)
    gammas = {}
    p_lower = None
    for n in range(1, N + 1):
        k = K[n]
        R, adj, marked = k["rows"], k["adj"], k["marked"]
        if n == 1:
            ctx = np.zeros(len(R), np.int64)
            C = 1
        else:
            ctx = np.empty(len(R), np.int64)
            with parallel_guard():
                _k.find_rows(K[n - 1]["rows"][:, : n - 1], np.ascontiguousarray(R[:, 1:n]), ctx)
            if (ctx < 0).any():  # pragma: no cover - an internal invariant
                raise RuntimeError(f"internal error: a {n}-gram's context is missing from order {n - 1}")
            C = len(K[n - 1]["rows"])
        d = _discount(adj, discounts[n - 1])
        denom = np.bincount(ctx, weights=adj.astype(np.float64), minlength=C)
        mass = np.bincount(ctx, weights=np.where(marked, adj, d), minlength=C)
        with np.errstate(invalid="ignore", divide="ignore"):
            gamma = np.where(denom > 0, mass / denom, np.nan)
            u = (adj - d) / denom[ctx]
        gammas[n] = gamma
        if n == 1:
            u[R[:, 0] == UNK] = 0.0
            is_bos = R[:, 0] == BOS
            u[is_bos] = 1.0
            V_uniform = int(np.count_nonzero(~marked)) - 1
            p = u + np.where(is_bos, 0.0, gamma[0] / V_uniform)
        else:
            p = u + gamma[ctx] * p_lower[k["parent"]]
        k["p"], k["u"] = p, u
        p_lower = p
    for n in range(1, N + 1):
        k = K[n]
        keep = ~k["marked"]
        with np.errstate(divide="ignore"):
            logp = np.minimum(0.0, np.log10(k["p"][keep]))
            if n < N:
                g = gammas[n + 1][keep]
                logb = np.where(np.isfinite(g) & (g > 0), np.log10(np.where(np.isfinite(g) & (g > 0), g, 1.0)), 0.0)
                last = k["rows"][keep, 0]
                logb[(last == EOS) | (last == UNK)] = 0.0
            else:
                logb = np.zeros(int(keep.sum()))
        out["rows"].append(k["rows"][keep].astype(np.uint32))
        out["prob"].append(logp)
        out["backoff"].append(logb)
        out["u"].append(k["u"][keep])
    return out
