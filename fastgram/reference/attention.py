"""The attention reference: scores, masked softmax and values in plain NumPy."""

from __future__ import annotations

import numpy as np

# ---------------------------------------------------------------------------------------------
# attention
# ---------------------------------------------------------------------------------------------


def attention(
    q,
    k,
    v,
    *,
    causal=False,
    mask=None,
    scale=None,
    causal_align="top_left",
    return_lse=False,
    window=None,
    softcap=None,
    alibi_slopes=None,
):
    """``softmax(cap(q kᵀ · scale) + alibi + mask) v``: matmul, masked softmax, matmul.

    ``cap(s) = softcap * tanh(s / softcap)`` when ``softcap`` is given; ALiBi adds
    ``-slope[h] * |i + S - T - j|``; ``window=(left, right)`` keeps keys
    ``i + S - T - left <= j <= i + S - T + right`` (``-1``: that side unbounded).

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
    # Scores in base 2, as the kernels hold them: softmax(s) = 2**(s log2(e) - max) / sum is the
    # same distribution, and a score overflows exactly where the kernels' does. The queries are
    # scaled first (q kᵀ alone can overflow where (q · scale) kᵀ does not); the soft cap, the
    # slopes and an additive mask are in natural units, so each is scaled by log2(e) too.
    log2e = 1.0 / np.log(2.0)
    scores = (q * q.dtype.type(scale * log2e)) @ np.swapaxes(k, -1, -2)  # (..., H, T, S), base 2
    T, S = scores.shape[-2:]
    if softcap is not None:
        cap = softcap * log2e
        scores = cap * np.tanh(scores / cap)
    i = np.arange(T)[:, None]
    j = np.arange(S)[None, :]
    if alibi_slopes is not None:
        slopes = np.asarray(alibi_slopes, dtype=scores.dtype)[..., None, None]  # (..., H, 1, 1)
        slopes = slopes * scores.dtype.type(log2e)
        scores = scores - slopes * np.abs(i + S - T - j)
    allowed = np.ones(scores.shape, dtype=bool)
    left, right = (-1, -1) if window is None else window
    left, right = min(left, S + T), min(right, S + T)  # wider than every key: no bound (and no int64 overflow)
    if left >= 0:
        allowed &= j >= i + S - T - left
    if right >= 0:
        allowed &= j <= i + S - T + right
    if causal:
        offset = 0 if causal_align == "top_left" else S - T
        allowed &= np.tril(np.ones((T, S), dtype=bool), k=offset)
    if mask is not None:
        mask = np.asarray(mask)
        if mask.dtype == bool:
            allowed &= mask
        else:
            scores = scores + mask.astype(scores.dtype) * scores.dtype.type(log2e)
            allowed &= mask != -np.inf
    scores = np.where(allowed, scores, -np.inf)
    row_max = scores.max(axis=-1, keepdims=True, initial=-np.inf)  # S = 0 allowed
    row_max = np.where(row_max == -np.inf, 0, row_max)  # fully masked row: any finite shift
    weights = np.exp2(scores - row_max)  # unnormalised: the largest is 1
    total = weights.sum(axis=-1, keepdims=True)
    if np.isfinite(v).all():
        out = weights @ v
    else:  # skip zero weights explicitly: 0 * NaN would be NaN
        with np.errstate(invalid="ignore"):
            terms = np.where(weights[..., None] != 0, weights[..., None] * v[..., None, :, :], 0)
        out = terms.sum(axis=-2)
    # divided by the total after the weighted sum, as the kernels do (values within a factor of
    # the total of the largest float overflow there, as in the kernels)
    out = (out / np.where(total == 0, 1, total)).astype(q.dtype)
    if not return_lse:
        return out
    with np.errstate(divide="ignore"):
        lse = ((np.log2(total) + row_max) * np.log(2.0))[..., 0]  # natural units
    return out, lse.astype(q.dtype)
