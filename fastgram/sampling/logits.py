"""Draws from per-call weights: :func:`sample_logits` (temperature, top-k, top-p, min-p) and
:func:`multinomial` (the ``torch.multinomial`` contract).

Row ``b`` (of the flattened leading dimensions) uses random stream ``offset + b``; its ``j``-th
draw uses index ``j``. Every draw lands on a category of positive weight (see
:mod:`fastgram.kernels.sampling` for the target and its scale).
"""

from __future__ import annotations

import numpy as np

from fastgram import _checks
from fastgram._checks import check_weights, float_array, fmt_int, offset_arg, seed_arg
from fastgram._jit import parallel_guard
from fastgram.kernels import sampling_logits as _k
from fastgram.kernels.sampling import BIG_WEIGHT
from fastgram.sampling._rows import shrink_big_rows
from fastgram.sampling.tables import guide_dtype, guide_shift

__all__ = ["sample_logits", "multinomial"]

#: Draws per row from which :func:`multinomial` and :func:`sample_logits` build guide tables.
GUIDE_MIN_DRAWS = 32


def _draw_weights(
    w: np.ndarray, n: int, seed, offset, *, top_k: int, q: float, min_p: float, in_place: bool
) -> np.ndarray:
    """Filters, running sums (and guides) of (B, V) float64 ``w``, then ``n`` draws per row."""
    B, V = w.shape
    use_guide = n >= GUIDE_MIN_DRAWS and V > 2
    G, gshift = guide_shift(V, per_category=1 / 8)
    guide = np.empty((B, G + 1 if use_guide else 0), guide_dtype(V))
    cum = w if in_place else np.empty_like(w)
    scales = np.empty(B, np.float64)
    out = np.empty((B, n), np.int64)
    with parallel_guard():
        _k.prepare_rows(w, np.int64(top_k), float(q), float(min_p), cum, scales, guide, gshift, use_guide)
        _k.draw_rows(cum, scales, guide, gshift, use_guide, seed, offset, out)
    return out


def sample_logits(logits, temperature=1.0, top_k=None, top_p=None, min_p=None, *, seed, num_samples=None, offset=0):
    """Draw tokens from logits with temperature, top-k, top-p (nucleus) and min-p filtering.

    The filters follow Hugging Face ``generate`` (``do_sample=True``), in its order:
    temperature, top-k, top-p, min-p. With ``w = exp((x - max x) / T)`` (float64, so the
    largest weight is 1):

    - ``top_k``: keep every token whose weight is ``>=`` the ``top_k``-th largest (ties at the
      boundary are all kept; ``top_k >= V`` keeps all);
    - ``top_p``: sort ascending (ties: the higher id counts as smaller), drop the tokens whose
      running sum of weights is ``<= (1 - top_p)`` times the total, always keeping the largest
      (``top_p = 1`` keeps all);
    - ``min_p``: drop tokens whose probability is below ``min_p`` times the largest one.

    Parameters
    ----------
    logits : ndarray of float32 or float64, shape (..., V)
        Either byte order. May hold ``-inf`` (a masked token); NaN and ``+inf`` are errors.
    temperature : float, optional
        ``>= 0``; 0 is greedy (the first largest logit; the filters then change nothing).
    top_k : int, optional
        ``>= 1``.
    top_p : float, optional
        In ``(0, 1]``.
    min_p : float, optional
        In ``[0, 1]``.
    seed : int
        Keyword only, in ``[0, 2**64)``. Row ``r`` (of the flattened leading dimensions) uses
        stream ``offset + r``; its ``j``-th sample uses index ``j``.
    num_samples : int, optional
        Draws per row, with replacement. ``None`` (default): one draw, result shape ``(...)``.
    offset : int, optional
        Stream of the first row, for drawing a batch in parts.

    Returns
    -------
    ids : ndarray of int64, shape ``(...)`` or ``(..., num_samples)``

    Raises
    ------
    TypeError
        If ``logits`` is not float32/float64, or a parameter has the wrong type.
    ValueError
        If ``logits`` is 0-d or has ``V = 0``, holds NaN or ``+inf``, a row is all ``-inf``;
        ``temperature < 0``, ``top_k < 1``, ``top_p`` outside ``(0, 1]``, ``min_p`` outside
        ``[0, 1]``, ``num_samples < 1``.

    Notes
    -----
    Extra memory: one float64 copy of the logits (weights, then running sums in place) and,
    from 32 draws per row, a guide table (``G + 1`` uint16 or int32 per row, ``G`` the power of two
    ``>= V / 8``).
    Time O(B V) (O(B V log V) with ``top_p``) plus O(1) per draw on average; rows (and draws)
    run in parallel. The ``exp`` is NumPy's, as in :func:`fastgram.reference.sample_logits`.

    Examples
    --------
    >>> import numpy as np, fastgram
    >>> logits = np.array([[2.0, 1.0, -np.inf], [0.0, 0.0, 5.0]])
    >>> fastgram.sample_logits(logits, temperature=0, seed=0)
    array([0, 2])
    >>> fastgram.sample_logits(logits, top_k=1, seed=0)
    array([0, 2])
    """
    x = float_array(logits, "logits")
    if x.ndim == 0:
        raise ValueError("logits must have at least 1 dimension (..., V), got a 0-d array")
    V = x.shape[-1]
    if V == 0:
        raise ValueError(f"logits must have V >= 1 categories, got shape {x.shape}")
    T = _checks.require_float(temperature, "temperature", min=0.0)
    k = V if top_k is None else min(_checks.require_int(top_k, "top_k", min=1), V)
    p = 1.0 if top_p is None else _checks.require_float(top_p, "top_p", min=0.0, max=1.0, min_open=True)
    mp = 0.0 if min_p is None else _checks.require_float(min_p, "min_p", min=0.0, max=1.0)
    n = None if num_samples is None else _checks.require_int(num_samples, "num_samples", min=1)
    seed = seed_arg(seed)
    lead = x.shape[:-1]
    x2 = x.reshape(-1, V)
    off = offset_arg(offset, x2.shape[0])
    check_weights(x, "logits", allow_neg_inf=True)
    rowmax = np.max(x2, axis=1) if x2.shape[0] else np.zeros(0, x2.dtype)
    if x2.shape[0]:
        dead = np.flatnonzero(rowmax == -np.inf)
        if dead.size:
            raise ValueError(f"logits: row {fmt_int(dead[0])} is all -inf, so no token can be drawn")
    shape = lead if n is None else lead + (n,)
    if T == 0.0:
        best = np.argmax(x2, axis=1) if x2.shape[0] else np.zeros(0, np.int64)
        return np.repeat(best.astype(np.int64)[:, None], 1 if n is None else n, axis=1).reshape(shape)
    # w = exp((x - max) / T), the same NumPy operations as reference.sample_logits
    # (the float64 row maximum is the input's row maximum converted exactly: one pass fewer)
    w = np.array(x2, dtype=np.float64)
    w -= rowmax.astype(np.float64)[:, None]
    if T != 1.0:  # dividing by 1.0 changes no bit
        w /= T
    np.exp(w, out=w)
    q = 1.0 - p if p < 1.0 else -1.0
    out = _draw_weights(w, 1 if n is None else n, seed, off, top_k=k, q=q, min_p=mp, in_place=True)
    return out.reshape(shape)


def multinomial(probs, num_samples, replacement=True, *, seed, offset=0) -> np.ndarray:
    """Draw category ids from rows of non-negative weights (the ``torch.multinomial`` contract).

    Parameters
    ----------
    probs : ndarray of float32 or float64, shape (V,) or (B, V)
        Non-negative, finite weights (either byte order); rows need not sum to 1 but must have
        a positive sum. Rows with a weight of ``2**960`` or more are scaled by ``2**-64``
        (exactly) so their running sums cannot overflow (without replacement: before each
        draw, by the weights left).
    num_samples : int
        Draws per row (``>= 1``).
    replacement : bool, optional
        Draw with replacement (default ``True``, unlike torch, whose default is ``False``).
        Without replacement, draw ``j`` is taken from the weights left after the earlier
        draws, and ``num_samples`` may not exceed the row's non-zero categories.
    seed : int
        Keyword only, in ``[0, 2**64)``. Draw ``j`` of row ``b`` uses stream ``offset + b``,
        index ``j``.
    offset : int, optional
        Stream of the first row.

    Returns
    -------
    ids : ndarray of int64, shape (num_samples,) or (B, num_samples)
        A category of weight zero is never drawn.

    Raises
    ------
    TypeError
        If ``probs`` is not float32/float64, or ``replacement`` not a bool.
    ValueError
        If ``probs`` is not 1-D or 2-D, is empty, holds NaN, infinite or negative weights, a
        row sums to 0, ``num_samples < 1``, or (without replacement) ``num_samples`` exceeds
        a row's non-zero categories.

    Notes
    -----
    With replacement: O(B V) set-up (running sums, plus guide tables from 32 draws per row)
    and O(1) per draw on average, all draws in parallel; extra memory one float64 ``(B, V)``
    table (and ``G`` uint16 or int32 per row). Without replacement: O(num_samples V) per row, rows in
    parallel, one float64 row of scratch per row.

    Examples
    --------
    >>> import numpy as np, fastgram
    >>> fastgram.multinomial(np.array([0.0, 1.0, 0.0, 3.0]), 2, replacement=False, seed=1)
    array([1, 3])
    """
    x = float_array(probs, "probs")
    if x.ndim not in (1, 2):
        raise ValueError(f"probs must be 1-D (V,) or 2-D (B, V), got shape {x.shape}")
    if x.shape[-1] == 0:
        raise ValueError(f"probs must have V >= 1 categories, got shape {x.shape}")
    n = _checks.require_int(num_samples, "num_samples", min=1)
    if not isinstance(replacement, (bool, np.bool_)):
        raise TypeError(f"replacement must be a bool, got {type(replacement).__name__} {replacement!r}")
    seed = seed_arg(seed)
    x2 = x.reshape(-1, x.shape[-1])
    off = offset_arg(offset, x2.shape[0])
    check_weights(x, "probs")
    w = np.ascontiguousarray(x2, dtype=np.float64)  # native order: a copy of a byte-swapped input
    if w.shape[0]:
        zero = np.flatnonzero(w.max(axis=1) <= 0)
        if zero.size:
            raise ValueError(f"probs: row {fmt_int(zero[0])} sums to 0, so no category can be drawn")
    if replacement:
        if w.shape[0] and (w.max(axis=1) >= BIG_WEIGHT).any():
            w = shrink_big_rows(w.copy() if np.may_share_memory(w, x) else w)
        out = _draw_weights(w, n, seed, off, top_k=w.shape[1], q=-1.0, min_p=0.0, in_place=False)
    else:
        nonzero = np.count_nonzero(w, axis=1)
        short = np.flatnonzero(nonzero < n)
        if short.size:
            r = int(short[0])
            raise ValueError(
                f"num_samples={fmt_int(n)} is more than the {fmt_int(nonzero[r])} non-zero categories "
                f"of probs row {fmt_int(r)} (replacement=False)"
            )
        out = np.empty((w.shape[0], n), np.int64)
        with parallel_guard():
            _k.draw_without_replacement(w, seed, off, out)
    return out.reshape(x.shape[:-1] + (n,))
