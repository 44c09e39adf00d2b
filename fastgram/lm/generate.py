"""Generation: sentences drawn from an n-gram model as a mixture, O(order * log) per word.

The interpolated distribution is a mixture: ``p(w | h) = u(h w) + gamma(h) p(w | h[1:])``
with ``sum_w u(h w) + gamma(h) = 1``. A draw therefore picks a word among the n-grams of the
longest context ``h`` in proportion to ``u(h w)`` with probability ``1 - gamma(h)`` and
otherwise backs off to ``h[1:]`` — a binary search in the running sums of ``u`` over the
context's words, never a pass over the vocabulary. The unigram level uses ``p(w)`` itself
(every word but ``<s>``). Contexts the model does not have back off without a draw.

``temperature`` T tempers every mixture weight (``u ** (1/T)`` and ``gamma ** (1/T)``, the
unigrams' ``p ** (1/T)``; each context's weights scaled by their largest first, so none
underflows): T = 1 is the model, T < 1 favours the largest weights (as T -> 0 each level takes
its largest: the context's likeliest word, or backing off when gamma is larger; T = 0 is that
limit, ties drawn evenly), T > 1 flattens. This is the tempered mixture, not ``p ** (1/T)``
renormalised over the vocabulary (which costs O(V) per word).

Random numbers are counter-based (:mod:`fastgram.kernels.random`): sentence ``s`` uses stream
``offset + s``, so a sentence depends only on the seed and its index — the same at any thread
count or batch split, and reproduced by :func:`fastgram.reference.lm_generate` bit for bit.
"""

from __future__ import annotations

import numpy as np

from fastgram import _checks
from fastgram._jit import parallel_for
from fastgram.kernels import lm as _k

UNK, BOS, EOS = 0, 1, 2


def derive_u(lm):
    """``u(h w) = 10**prob(h w) - 10**backoff(h) * p(w | h[1:])`` (clipped at 0) per order."""
    index = lm.score_index()
    us = [10.0 ** lm.prob[0]]
    for n in range(2, lm.order + 1):
        R = lm.rows[n - 1]
        m = len(R)
        queries = np.zeros((m, lm.order), np.uint32)
        queries[:, 0] = R[:, 0]
        queries[:, 1 : n - 1] = R[:, 1 : n - 1]  # the word and h[1:] (reversed)
        lower = np.empty(m)
        if m:
            parallel_for(
                _k.score_queries, len(queries), (*index, lm.order, queries, np.full(m, n - 2, np.int64), lower)
            )
        ctx = np.empty(m, np.int64)
        if m:
            parallel_for(_k.find_rows, len(ctx), (lm.rows[n - 2], np.ascontiguousarray(R[:, 1:n]), ctx))
        gamma = 10.0 ** lm.backoff[n - 2][np.maximum(ctx, 0)]
        us.append(np.maximum(0.0, 10.0 ** lm.prob[n - 1] - gamma * 10.0**lower))
    return us


def tables(lm, temperature: float = 1.0) -> dict:
    """The mixture tables of the generation kernel (see :func:`fastgram.kernels.lm.generate`)."""
    key = float(temperature)
    if lm._gen_tables is not None and lm._gen_tables[0] == key:
        return lm._gen_tables[1]
    inv = np.inf if key == 0.0 else 1.0 / key  # 0: greedy, only each level's largest weight is left
    us = lm.u()
    N = lm.order
    ctx_off = np.zeros(N + 2, np.int64)
    seg_words, seg_vals, gammas, seg_counts = [], [], [], []
    off = 0
    for n in range(1, N + 1):
        R = lm.rows[n - 1]
        if n == 1:
            C = 1
            ctx = np.zeros(len(R), np.int64)
            vals = 10.0 ** lm.prob[0]
            vals = np.where(R[:, 0] == BOS, 0.0, vals)
            gamma = np.zeros(1)
        else:
            C = len(lm.rows[n - 2])
            ctx = np.empty(len(R), np.int64)
            if len(R):
                parallel_for(_k.find_rows, len(ctx), (lm.rows[n - 2], np.ascontiguousarray(R[:, 1:n]), ctx))
            vals = us[n - 1].copy()
            gamma = 10.0 ** lm.backoff[n - 2]
        keep = (vals > 0) & (ctx >= 0)
        words = R[keep, 0]
        c = ctx[keep]
        order = np.lexsort((words, c))
        words, c, v = words[order], c[order], vals[keep][order]
        if inv != 1.0:
            v, gamma = _tempered(v, c, gamma, inv)
        ctx_off[n] = off
        off += C
        seg_words.append(words.astype(np.uint32))
        seg_vals.append(v)
        gammas.append(gamma)
        seg_counts.append(np.bincount(c, minlength=C))
    counts = np.concatenate(seg_counts)
    seg_start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    values = np.concatenate(seg_vals)
    seg_cum = np.empty(len(values))
    _k.segment_cumsum(values, seg_start, seg_cum)
    out = dict(
        ctx_off=ctx_off,
        seg_start=seg_start,
        seg_words=np.concatenate(seg_words),
        seg_cum=seg_cum,
        seg_values=values,
        gamma=np.concatenate(gammas),
        V=len(lm.words) - 1,
    )
    lm._gen_tables = (key, out)
    return out


def _tempered(v, c, gamma, inv):
    """``v ** inv`` (the words' weights, ``c`` their contexts, sorted) and ``gamma ** inv`` (one
    per context), each context's weights first divided by their largest: the same draws
    (only ratios within a context matter) without every weight underflowing to 0 at a small
    temperature, which would leave nothing to draw."""
    scale = gamma.copy()  # (C,) the largest weight of each context
    if len(v):
        first = np.flatnonzero(np.concatenate([[True], c[1:] != c[:-1]]))  # each context's first word
        scale[c[first]] = np.maximum(scale[c[first]], np.maximum.reduceat(v, first))
    scale[~(scale > 0)] = 1.0  # a context with nothing to draw
    return (v / scale[c]) ** inv, (gamma / scale) ** inv


def reference_tables(lm, temperature: float = 1.0) -> dict:
    """The same tables as dictionaries for :func:`fastgram.reference.lm_generate`."""
    t = tables(lm, temperature)
    words, us, gamma = {}, {}, {}
    for n in range(1, lm.order + 1):
        contexts = [()] if n == 1 else [tuple(int(x) for x in r[::-1]) for r in lm.rows[n - 2]]
        for c, h in enumerate(contexts):
            i = t["ctx_off"][n] + c
            a, b = t["seg_start"][i], t["seg_start"][i + 1]
            words[h] = [int(w) for w in t["seg_words"][a:b]]
            us[h] = list(t["seg_values"][a:b])
            gamma[h] = float(t["gamma"][i])
    return {"words": words, "u": us, "gamma": gamma, "V": t["V"]}


def generate_ids(lm, n: int, max_length: int, *, seed, temperature: float = 1.0, offset: int = 0):
    """``(ids (n, max_length) uint32, lengths (n,))`` of sampled sentences (model ids)."""
    n = _checks.require_int(n, "n", min=0)
    max_length = _checks.require_int(max_length, "max_length", min=0)
    seed = _checks.require_int(seed, "seed", min=0, max=(1 << 64) - 1)
    offset = _checks.require_int(offset, "offset", min=0)
    temperature = _checks.require_float(temperature, "temperature")
    if not temperature >= 0 or not np.isfinite(temperature):
        raise ValueError(f"temperature must be >= 0 and finite (0: greedy), got {temperature}")
    _checks.check_result_size((n, max_length), 4, "max_length")
    t = tables(lm, temperature)
    flat, row_off, nrows = lm.tables()
    out = np.zeros((n, max_length), np.uint32)
    lengths = np.zeros(n, np.int64)
    if n and max_length:
        arrays = (flat, row_off, nrows, t["ctx_off"], t["seg_start"], t["seg_words"], t["seg_cum"], t["gamma"])
        parallel_for(_k.generate, n, (*arrays, lm.order, t["V"], np.uint64(seed), offset, out, lengths))
    return out, lengths


def generate(lm, n: int = 1, max_length: int = 100, *, seed, temperature: float = 1.0, offset: int = 0):
    """``n`` sentences of at most ``max_length`` words (``</s>`` ends one and is not returned).

    Returns a list of lists of words (str), or of corpus token ids for a token model. A drawn
    ``<unk>`` appears as ``"<unk>"`` (token models: -1).
    """
    ids, lengths = generate_ids(lm, n, max_length, seed=seed, temperature=temperature, offset=offset)
    if lm.token_ids is not None:
        return [lm.token_ids[ids[s, : lengths[s]]].tolist() for s in range(len(lengths))]
    words = lm.words
    return [[words[i] for i in ids[s, : lengths[s]].tolist()] for s in range(len(lengths))]
