"""Plain-NumPy references: the executable specification of every kernel.

One function per public kernel, with the same signature and the same result. They are written
to be read, not to be fast: obvious NumPy, no tricks. They assume valid input (the public
wrappers check it) and may use O(N) memory. Tests and ``fastgram check`` compare each kernel
with its reference on the same inputs.
"""

from __future__ import annotations

import numpy as np

# ---------------------------------------------------------------------------------------------
# counting
# ---------------------------------------------------------------------------------------------


def count_bigrams(tokens, vocab_size=None, **_options):
    """``counts[a, b]`` = number of positions ``i`` with ``tokens[i] == a`` and ``tokens[i+1] == b``.

    The classic one-liner: pack each pair into one int64 key ``a * V + b`` and histogram the
    keys. Uses about 24 bytes of temporaries per token. Options of the fast version that do not
    change the result (progress, memory budgets) are accepted and ignored.
    """
    tokens = np.asarray(tokens)
    if vocab_size is None:
        vocab_size = int(tokens.max()) + 1 if tokens.size else 0
    V = int(vocab_size)
    a = tokens[:-1].astype(np.int64)
    b = tokens[1:].astype(np.int64)
    keys = a * V + b
    return np.bincount(keys, minlength=V * V).reshape(V, V).astype(np.int64)


# ---------------------------------------------------------------------------------------------
# sampling
# ---------------------------------------------------------------------------------------------
#
# Random numbers: splitmix64 over (seed, stream, index), as in fastgram/kernels/random.py.
# NumPy uint64 array arithmetic wraps modulo 2**64 silently; scalars are kept in 1-element
# arrays so no overflow warning is raised.

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_STREAM_MUL = np.uint64(0xD1B54A32D192ED03)


def _u64(x):
    return np.asarray(x, dtype=np.uint64)


def _mix(z):
    z = _u64(z)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def random_words(seed, streams, indices):
    """The 64-bit words ``word(stream_key(seed_key(seed), stream), index)`` (broadcast)."""
    with np.errstate(over="ignore"):
        skey = _mix(_u64([seed]) + _GOLDEN)
        keys = _mix(skey + (_u64(streams) + np.uint64(1)) * _STREAM_MUL)
        return _mix(keys + (_u64(indices) + np.uint64(1)) * _GOLDEN)


def words_to_uniform(words):
    """Doubles in [0, 1): the top 53 bits of each word times 2**-53."""
    return (_u64(words) >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)


def words_below(words, n):
    """``floor(word * n / 2**64)`` for ``0 < n < 2**63``: exact integers in ``[0, n)``."""
    w = _u64(words)
    m = _u64(n)
    lo32 = np.uint64(0xFFFFFFFF)
    s32 = np.uint64(32)
    w_lo, w_hi = w & lo32, w >> s32
    m_lo, m_hi = m & lo32, m >> s32
    lo_lo, hi_lo, lo_hi, hi_hi = w_lo * m_lo, w_hi * m_lo, w_lo * m_hi, w_hi * m_hi
    cross = (lo_lo >> s32) + (hi_lo & lo32) + lo_hi
    return ((hi_lo >> s32) + (cross >> s32) + hi_hi).astype(np.int64)


def uniform(seed, shape, offset=0):
    """``u[i, j]``: the uniform at stream ``offset + i``, index ``j``; shape (B, n) or (n,)."""
    if np.ndim(shape) == 0:
        shape = (int(shape),)
    shape = tuple(int(s) for s in shape)
    B, n = (1, shape[0]) if len(shape) == 1 else shape
    streams = offset + np.arange(B, dtype=np.int64)[:, None]
    indices = np.arange(n, dtype=np.int64)[None, :]
    return words_to_uniform(random_words(seed, streams, indices)).reshape(shape)


# ---------------------------------------------------------------------------------------------
# n-grams
# ---------------------------------------------------------------------------------------------


def ngram_keys(tokens, n, vocab_size, separator=None):
    """Every n-gram of the stream packed into one uint64 key ``((t0 * V + t1) * V + ...)``.

    Windows containing ``separator`` are left out. Uses 8 bytes per token (plus one column
    temporary).
    """
    tokens = np.asarray(tokens)
    V = np.uint64(vocab_size)
    W = max(len(tokens) - n + 1, 0)
    keys = np.zeros(W, dtype=np.uint64)
    keep = np.ones(W, dtype=bool)
    for j in range(n):
        column = tokens[j : j + W]
        keys *= V
        keys += column.astype(np.uint64)
        if separator is not None:
            keep &= column != separator
    return keys[keep] if separator is not None else keys


def count_ngrams(tokens, n, vocab_size=None, separator=None, min_count=1, **_options):
    """``(ngrams, counts)``: the distinct n-grams (m, n) in lexicographic order and their counts.

    Packed keys, then ``np.unique(keys, return_counts=True)``, then the keys unpacked into
    columns. Options that do not change the result (memory budgets) are ignored.
    """
    tokens = np.asarray(tokens)
    if vocab_size is None:
        vocab_size = int(tokens.max()) + 1 if tokens.size else 1
    keys = ngram_keys(tokens, n, vocab_size, separator)
    unique, counts = np.unique(keys, return_counts=True)
    keep = counts >= min_count
    unique, counts = unique[keep], counts[keep]
    ngrams = np.empty((len(unique), n), dtype=np.int64)
    for j in range(n - 1, -1, -1):
        ngrams[:, j] = unique % np.uint64(vocab_size)
        unique = unique // np.uint64(vocab_size)
    return ngrams, counts.astype(np.int64)


def _table_of(table):
    """The array behind a table argument (a fastgram.Sampler keeps it as ``.table``)."""
    return np.asarray(getattr(table, "table", table))


def _running_sums(table):
    """Row running sums: exact int64 for integer tables, float64 (left to right) otherwise."""
    if table.dtype.kind in "iu":
        return np.cumsum(table, axis=1, dtype=np.int64), True
    return np.cumsum(table, axis=1, dtype=np.float64), False


def _inverse_cdf(cum, exact, rows, words):
    """Category of each (row, word): the first ``j`` with ``cum[row, j] > target``.

    Integer tables: target ``words_below(word, total)``, and one ``searchsorted`` over the
    rows' running sums laid end to end (row ``r`` shifted by the totals of the rows before it).
    Float tables: target ``uniform(word) * total``, one ``searchsorted`` per distinct row.
    """
    V = cum.shape[1]
    totals = cum[:, -1]
    if exact:
        shift = np.concatenate([[0], np.cumsum(totals)[:-1]]).astype(np.int64)
        flat = (cum + shift[:, None]).ravel()
        targets = shift[rows] + words_below(words, totals[rows])
        return np.searchsorted(flat, targets, side="right") - rows * V
    targets = words_to_uniform(words) * totals[rows]
    out = np.empty(rows.shape, np.int64)
    order = np.argsort(rows, kind="stable")
    sorted_rows = rows[order]
    for r in np.unique(rows):
        sel = order[np.searchsorted(sorted_rows, r, "left") : np.searchsorted(sorted_rows, r, "right")]
        out[sel] = np.searchsorted(cum[r], targets[sel], side="right")
    return out


def sample_next(table, current, seed, *, offset=0):
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


def generate(table, start, length, seed, temperature=1.0, stop_token=None, *, offset=0):
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
    cum = np.cumsum(w, axis=1)
    streams = offset + np.arange(B, dtype=np.int64)[:, None]
    words = random_words(seed, streams, np.arange(num_samples, dtype=np.int64)[None, :])
    targets = words_to_uniform(words) * cum[:, -1:]
    return np.array([np.searchsorted(cum[b], targets[b], side="right") for b in range(B)], np.int64).reshape(
        B, num_samples
    )


def sample_logits(logits, temperature=1.0, top_k=None, top_p=None, min_p=None, *, seed, num_samples=None, offset=0):
    """Weights ``exp((x - max) / T)``, then top-k, top-p, min-p (HF order), then inverse CDF."""
    x = np.asarray(logits)
    V = x.shape[-1]
    lead = x.shape[:-1]
    shape = lead if num_samples is None else lead + (num_samples,)
    x2 = x.reshape(-1, V).astype(np.float64)
    if temperature == 0:
        best = np.argmax(x2, axis=1)
        return np.repeat(best[:, None], 1 if num_samples is None else num_samples, axis=1).reshape(shape)
    w = np.exp((x2 - x2.max(axis=1, keepdims=True)) / temperature)
    if top_k is not None and top_k < V:
        kth = np.sort(w, axis=1)[:, V - top_k]
        w[w < kth[:, None]] = 0.0
    if top_p is not None and top_p < 1.0:
        for row in w:
            ascending = np.argsort(-row, kind="stable")[::-1]  # ties: higher id first
            running = np.cumsum(row[ascending])
            drop = running <= (1.0 - top_p) * running[-1]
            drop[-1] = False  # the largest weight always stays
            row[ascending[drop]] = 0.0
    if min_p is not None and min_p > 0.0:
        w[w < min_p] = 0.0  # the largest weight is exp(0) = 1
    return _draw_rows(w, 1 if num_samples is None else num_samples, seed, offset).reshape(shape)


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
            cum = np.cumsum(w, axis=1)
            target = words_to_uniform(random_words(seed, streams, j)) * cum[:, -1]
            out[:, j] = np.argmax(cum > target[:, None], axis=1)
            w[np.arange(B), out[:, j]] = 0.0
    return out.reshape(p.shape[:-1] + (num_samples,))


def nll(table, tokens):
    """``-mean(log P(b | a))`` over consecutive pairs; integer tables are normalised per row."""
    t = _table_of(table)
    if t.dtype.kind in "iu":
        totals = t.sum(axis=1, keepdims=True).astype(np.float64)
        t = np.divide(t, totals, out=np.zeros(t.shape, np.float64), where=totals > 0)
    tokens = np.asarray(tokens).astype(np.int64)
    with np.errstate(divide="ignore"):
        return float(-np.mean(np.log(t[tokens[:-1], tokens[1:]].astype(np.float64))))


def perplexity(table, tokens):
    """``exp(nll(table, tokens))``."""
    return float(np.exp(nll(table, tokens)))


# ---------------------------------------------------------------------------------------------
# attention
# ---------------------------------------------------------------------------------------------


def attention(q, k, v, *, causal=False, mask=None, scale=None, causal_align="top_left", return_lse=False):
    """``softmax(q kᵀ · scale + mask) v``: matmul, masked softmax, matmul.

    Forms the whole ``(..., H, T, S)`` score matrix (a few copies of it). Key/value heads are
    repeated for grouped-query attention. A fully masked row gives zeros (and ``lse = -inf``);
    a weight that is exactly zero (a masked key) never multiplies a value, so NaN or inf in
    masked-out values does not reach the output.
    """
    q, k, v = np.asarray(q), np.asarray(k), np.asarray(v)
    if scale is None:
        scale = 1.0 / np.sqrt(q.shape[-1])
    if q.ndim >= 3 and k.ndim >= 3 and q.shape[-3] != k.shape[-3]:
        group = q.shape[-3] // k.shape[-3]
        k = np.repeat(k, group, axis=-3)
        v = np.repeat(v, group, axis=-3)
    scores = (q @ np.swapaxes(k, -1, -2)) * q.dtype.type(scale)  # (..., H, T, S)
    T, S = scores.shape[-2:]
    allowed = np.ones(scores.shape, dtype=bool)
    if causal:
        offset = 0 if causal_align == "top_left" else S - T
        allowed &= np.tril(np.ones((T, S), dtype=bool), k=offset)
    if mask is not None:
        mask = np.asarray(mask)
        if mask.dtype == bool:
            allowed &= mask
        else:
            scores = scores + mask.astype(scores.dtype)
            allowed &= mask != -np.inf
    scores = np.where(allowed, scores, -np.inf)
    row_max = scores.max(axis=-1, keepdims=True, initial=-np.inf)  # S = 0 allowed
    row_max = np.where(row_max == -np.inf, 0, row_max)  # fully masked row: any finite shift
    weights = np.exp(scores - row_max)
    total = weights.sum(axis=-1, keepdims=True)
    weights = weights / np.where(total == 0, 1, total)
    if np.isfinite(v).all():
        out = weights @ v
    else:  # skip zero weights explicitly: 0 * NaN would be NaN
        with np.errstate(invalid="ignore"):
            terms = np.where(weights[..., None] != 0, weights[..., None] * v[..., None, :, :], 0)
        out = terms.sum(axis=-2)
    out = out.astype(q.dtype)
    if not return_lse:
        return out
    with np.errstate(divide="ignore"):
        lse = (np.log(total) + row_max)[..., 0]
    return out, lse.astype(q.dtype)
