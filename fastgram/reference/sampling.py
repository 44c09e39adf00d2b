"""Sampling references: inverse-CDF draws from tables, logits and probabilities.

A draw's target is an exact integer in ``[0, total)`` for integer rows and
``uniform * nextafter(total, 0)`` for float rows, and its category the first ``j`` whose
running sum exceeds the target: always a category of positive weight. Float rows with a weight
of ``BIG_WEIGHT`` or more are scaled by ``SHRINK`` first, so their running sums stay finite.
Tables are dense arrays (or a dense ``fastgram.Sampler``); sparse counts are specified by their
dense table (``NGramCounts.to_dense()``), from which a sparse sampler draws the same tokens.
"""

from __future__ import annotations

import numpy as np

from fastgram.reference.random import random_words, words_below, words_to_uniform

#: Float rows whose largest weight is at least BIG_WEIGHT are multiplied by SHRINK (a power
#: of two) before their running sums are taken, so no running sum overflows to inf.
BIG_WEIGHT = 2.0**960
SHRINK = 2.0**-64


def _table_of(table):
    """The array behind a table argument: a fastgram.Sampler keeps it as ``.table``; sparse
    bigram counts (``NGramCounts``) are the dense table they stand for."""
    table = getattr(table, "table", table)
    return table.to_dense() if hasattr(table, "to_dense") else np.asarray(table)


def _shrunk(w):
    """Float64 weights, rows with a weight ``>= BIG_WEIGHT`` multiplied by ``SHRINK``."""
    w = np.asarray(w, dtype=np.float64)
    big = w.max(axis=-1, keepdims=True) >= BIG_WEIGHT
    return np.where(big, w * SHRINK, w)


def _running_sums(table):
    """Row running sums: exact int64 for integer tables, float64 (left to right) otherwise.

    Every row is summed on its own (a row's total fits int64; the table's total need not).
    """
    if table.dtype.kind in "iu":
        return np.cumsum(table, axis=1, dtype=np.int64), True
    return np.cumsum(_shrunk(table), axis=1), False


def _targets(totals, exact, words):
    """Targets in ``[0, total)``: ``words_below(word, total)`` for integer running sums,
    ``uniform(word) * nextafter(total, 0)`` for float ones (``uniform * total`` itself can
    round up to ``total`` when the total is subnormal)."""
    if exact:
        return words_below(words, totals)
    return words_to_uniform(words) * np.nextafter(totals, 0.0)


def _inverse_cdf(cum, exact, rows, words):
    """Category of each (row, word): the first ``j`` with ``cum[row, j] > target``.

    One ``searchsorted`` per distinct row, over that row's own running sums.
    """
    targets = _targets(cum[:, -1][rows], exact, words)
    out = np.empty(rows.shape, np.int64)
    order = np.argsort(rows, kind="stable")
    sorted_rows = rows[order]
    for r in np.unique(rows):
        sel = order[np.searchsorted(sorted_rows, r, "left") : np.searchsorted(sorted_rows, r, "right")]
        out[sel] = np.searchsorted(cum[r], targets[sel], side="right")
    return out


def sample_next(table, current, *, seed, offset=0):
    """Entry ``i`` of ``current`` draws from its row with the word at (stream offset + i, 0)."""
    cum, exact = _running_sums(_table_of(table))
    current = np.asarray(current)
    rows = current.astype(np.int64).ravel()
    words = random_words(seed, offset + np.arange(rows.size, dtype=np.int64), 0)
    return _inverse_cdf(cum, exact, rows, words).reshape(current.shape)


def _tempered_table(table, temperature):
    """Temperature 1: the table; 0: one-hot at each row's first maximum; else (w / max) ** (1/T)."""
    if temperature == 1.0:
        return table
    if temperature == 0.0:
        onehot = np.zeros(table.shape, np.int64)
        onehot[np.arange(table.shape[0]), np.argmax(table, axis=1)] = 1
        onehot[table.max(axis=1) <= 0] = 0
        return onehot
    w = table.astype(np.float64)
    rowmax = w.max(axis=1, keepdims=True)
    w = np.divide(w, rowmax, out=np.zeros_like(w), where=rowmax > 0)
    return w ** (1.0 / temperature)


def generate(table, start, length, *, seed, temperature=1.0, stop_token=None, offset=0):
    """A Python loop over steps, every chain at once: step ``t`` of chain ``b`` uses the word
    at (stream offset + b, index t); after drawing ``stop_token`` a chain repeats it."""
    cum, exact = _running_sums(_tempered_table(_table_of(table), float(temperature)))
    start = np.asarray(start)
    current = start.astype(np.int64).ravel()
    streams = offset + np.arange(current.size, dtype=np.int64)
    out = np.empty((current.size, length), np.int64)
    stopped = np.zeros(current.size, dtype=bool)
    for t in range(length):
        nxt = _inverse_cdf(cum, exact, current, random_words(seed, streams, t))
        if stop_token is not None:
            nxt[stopped] = stop_token
            stopped |= nxt == stop_token
        out[:, t] = nxt
        current = nxt
    return out.reshape(start.shape + (length,))


def _draw_rows(w, num_samples, seed, offset):
    """``num_samples`` draws per row of float64 weights: word (stream offset + b, index j)."""
    B = w.shape[0]
    cum = np.cumsum(_shrunk(w), axis=1)
    streams = offset + np.arange(B, dtype=np.int64)[:, None]
    words = random_words(seed, streams, np.arange(num_samples, dtype=np.int64)[None, :])
    targets = words_to_uniform(words) * np.nextafter(cum[:, -1:], 0.0)
    return np.array([np.searchsorted(cum[b], targets[b], side="right") for b in range(B)], np.int64).reshape(
        B, num_samples
    )


def _per_row(value, B, default):
    """A scalar or (B,) parameter as a (B,) float64 array (``None``: ``default``)."""
    return np.broadcast_to(np.asarray(default if value is None else value, dtype=np.float64).reshape(-1), (B,))


def _history_rows(history, B):
    """Previous ids of each of the B rows (a list of int64 arrays), or None."""
    if history is None:
        return None
    if isinstance(history, np.ndarray):
        return list(np.asarray(history).reshape(B, -1).astype(np.int64))
    return [np.asarray(h).astype(np.int64).reshape(-1) for h in history]


def penalized_logits(
    logits, *, history=None, repetition_penalty=None, presence_penalty=None, frequency_penalty=None, logit_bias=None
):
    """Logits after the processors that come before temperature, in the logits' dtype, per row:

    1. ``logit_bias`` (``{id: value}``, or one such dict per row): ``x[id] = x[id] + value``;
    2. ``repetition_penalty`` ``r`` on every id in the row's history (once per id):
       ``x * r`` where ``x < 0``, else ``x / r``;
    3. on every id in the history, with ``c`` its count there: ``x = x - frequency_penalty * c``,
       then ``x = x - presence_penalty``.
    """
    x = np.asarray(logits)
    dtype = x.dtype.newbyteorder("=")
    x2 = x.reshape(-1, x.shape[-1]).astype(dtype)  # a copy
    B, V = x2.shape
    rep = _per_row(repetition_penalty, B, 1.0).astype(dtype)
    pres = _per_row(presence_penalty, B, 0.0).astype(dtype)
    freq = _per_row(frequency_penalty, B, 0.0).astype(dtype)
    biases = [logit_bias] * B if logit_bias is None or isinstance(logit_bias, dict) else list(logit_bias)
    rows = _history_rows(history, B)
    for b in range(B):
        row = x2[b]
        for i, v in (biases[b] or {}).items():
            row[i] = row[i] + dtype.type(v)
        if rows is not None:
            counts = np.bincount(rows[b], minlength=V)
            seen = counts > 0
            v = row[seen]
            v = np.where(v < 0, v * rep[b], v / rep[b])
            v = v - freq[b] * counts[seen].astype(dtype)
            row[seen] = v - pres[b]
    return x2.reshape(x.shape)


def sample_logits(
    logits,
    temperature=1.0,
    top_k=None,
    top_p=None,
    min_p=None,
    *,
    seed,
    num_samples=None,
    offset=0,
    history=None,
    repetition_penalty=None,
    presence_penalty=None,
    frequency_penalty=None,
    logit_bias=None,
    return_logprobs=False,
):
    """Row by row: :func:`penalized_logits`; ``d = (x - max) / T`` and weights ``exp(d)``; top-k,
    top-p, min-p (HF order); inverse CDF with words (stream offset + row, index j); log-probability
    ``d[id] - log(total)`` of each draw (``total``: the kept weights added left to right)."""
    x = penalized_logits(
        logits,
        history=history,
        repetition_penalty=repetition_penalty,
        presence_penalty=presence_penalty,
        frequency_penalty=frequency_penalty,
        logit_bias=logit_bias,
    )
    V = x.shape[-1]
    lead = x.shape[:-1]
    n = 1 if num_samples is None else num_samples
    x2 = x.reshape(-1, V).astype(np.float64)
    B = x2.shape[0]
    temps = _per_row(temperature, B, 1.0)
    ks = np.minimum(_per_row(top_k, B, V), V).astype(np.int64)
    ps = _per_row(top_p, B, 1.0)
    mps = _per_row(min_p, B, 0.0)
    out = np.empty((B, n), np.int64)
    lps = np.empty((B, n), np.float64)
    for b in range(B):
        row = x2[b]
        if temps[b] == 0:
            out[b] = np.argmax(row)  # the first largest
            lps[b] = 0.0
            continue
        d = (row - row.max()) / temps[b]
        w = np.exp(d)
        if ks[b] < V:
            kth = np.sort(w)[V - ks[b]]
            w[w < kth] = 0.0
        if ps[b] < 1.0:
            ascending = np.argsort(-w, kind="stable")[::-1]  # ties: higher id first
            running = np.cumsum(w[ascending])
            drop = running <= (1.0 - ps[b]) * running[-1]
            drop[-1] = False  # the largest weight always stays
            w[ascending[drop]] = 0.0
        if mps[b] > 0.0:
            w[w < mps[b]] = 0.0  # the largest weight is exp(0) = 1
        cum = np.cumsum(w)
        words = random_words(seed, offset + b, np.arange(n, dtype=np.int64))
        targets = words_to_uniform(words) * np.nextafter(cum[-1], 0.0)
        out[b] = np.searchsorted(cum, targets, side="right")
        lps[b] = d[out[b]] - np.log(cum[-1])
    shape = lead if num_samples is None else lead + (n,)
    ids = out.reshape(shape)
    return (ids, lps.astype(x.dtype).reshape(shape)) if return_logprobs else ids


def multinomial(probs, num_samples, replacement=True, *, seed, offset=0):
    """With replacement: inverse CDF per draw. Without: draw ``j`` from the weights left."""
    p = np.asarray(probs)
    w = p.reshape(-1, p.shape[-1]).astype(np.float64)
    if replacement:
        out = _draw_rows(w, num_samples, seed, offset)
    else:
        B = w.shape[0]
        streams = offset + np.arange(B, dtype=np.int64)
        out = np.empty((B, num_samples), np.int64)
        for j in range(num_samples):
            cum = np.cumsum(_shrunk(w), axis=1)  # the weights left, shrunk as they are now
            target = words_to_uniform(random_words(seed, streams, j)) * np.nextafter(cum[:, -1], 0.0)
            out[:, j] = np.argmax(cum > target[:, None], axis=1)
            w[np.arange(B), out[:, j]] = 0.0
    return out.reshape(p.shape[:-1] + (num_samples,))


def nll(table, tokens):
    """``-mean(log P(b | a))`` over consecutive pairs; integer tables are normalised per row."""
    t = _table_of(table)
    if t.dtype.kind in "iu":
        totals = t.astype(object).sum(axis=1, keepdims=True).astype(np.float64)  # exact, then rounded
        t = np.divide(t, totals, out=np.zeros(t.shape, np.float64), where=totals > 0)
    tokens = np.asarray(tokens).astype(np.int64)
    with np.errstate(divide="ignore"):
        return float(-np.mean(np.log(t[tokens[:-1], tokens[1:]].astype(np.float64))))


def perplexity(table, tokens):
    """``exp(nll(table, tokens))`` (inf when that overflows)."""
    with np.errstate(over="ignore"):
        return float(np.exp(nll(table, tokens)))
