"""Draws from per-call weights: :func:`sample_logits` (penalties, temperature, top-k, top-p, min-p) and
:func:`multinomial` (the ``torch.multinomial`` contract).

Row ``b`` (of the flattened leading dimensions) uses random stream ``offset + b``; its ``j``-th
draw uses index ``j``. Every draw lands on a category of positive weight (see
:mod:`fastgram.kernels.sampling` for the target and its scale).
"""

from __future__ import annotations

import math

import numpy as np

from fastgram import _checks
from fastgram._checks import check_weights, float_array, fmt_int, offset_arg, seed_arg
from fastgram._jit import cheap_launches, even_bounds, num_threads, parallel_chunks, parallel_for
from fastgram.kernels import sampling_logits as _k
from fastgram.kernels import sampling_select as _sel
from fastgram.kernels.sampling import BIG_WEIGHT
from fastgram.sampling._rows import shrink_big_rows
from fastgram.sampling.tables import guide_dtype, guide_shift

__all__ = ["sample_logits", "multinomial"]

#: Draws per row from which :func:`multinomial` and :func:`sample_logits` build guide tables.
GUIDE_MIN_DRAWS = 32


def _draw_weights(w, n, seed, streams, ks, qs, min_ps, *, in_place):
    """Filters, running sums (and guides) of (B, V) float64 ``w``, then ``n`` draws per row.

    Row ``b`` uses stream ``streams[b]`` and filters ``ks[b]``, ``qs[b]``, ``min_ps[b]``;
    returns the draws and the rows' totals after filtering.
    """
    B, V = w.shape
    use_guide = n >= GUIDE_MIN_DRAWS and V > 2
    G, gshift = guide_shift(V, per_category=1 / 8)
    guide = np.empty((B, G + 1 if use_guide else 0), guide_dtype(V))
    cum = w if in_place else np.empty_like(w)
    scales = np.empty(B, np.float64)
    totals = np.empty(B, np.float64)
    out = np.empty((B, n), np.int64)
    parallel_for(_k.prepare_rows, B, (w, ks, qs, min_ps, cum, scales, totals, guide, gshift, use_guide))
    parallel_for(_k.draw_rows, _k.draw_tasks(B, n), (cum, scales, guide, gshift, use_guide, seed, streams, out))
    return out, totals


#: Integer keys of float32 / float64 logits: sign shift, magnitude mask, bits of +inf, a key below all.
_KEY_CONSTS = {
    4: np.array([31, 0x7FFFFFFF, 0x7F800000, -(2**31)], np.int32),
    8: np.array([63, 0x7FFFFFFFFFFFFFFF, 0x7FF0000000000000, -(2**63)], np.int64),
}

_NO_IDS = np.zeros(0, np.int64)

#: Largest ``top_k`` (besides ``V // 8``) that the selection path takes; larger ones use the full row.
SELECT_MAX_K = 64
#: Gathered logits kept per row for min-p alone (more: that row takes the full-row path).
MIN_P_CAP = 1024


def _history(history, B: int, V: int, lead: tuple):
    """Flat (row, id) pairs of ``history``: a (B, L) / lead + (L,) integer array or B sequences."""
    if isinstance(history, (list, tuple)) and len(history) and _checks.ndim_of(history[0], "history[0]") == 1:
        if len(history) != B:
            raise ValueError(f"history must have one sequence per row ({B}), got {len(history)}")
        parts = [_checks.as_int_array(h, f"history[{b}]") for b, h in enumerate(history)]
        for b, h in enumerate(parts):
            if h.ndim != 1:
                raise ValueError(f"history[{b}] must be a sequence of ids (1-D), got shape {h.shape}")
        rows = np.repeat(np.arange(B, dtype=np.int64), [p.size for p in parts])
        ids = np.concatenate(parts) if parts else np.zeros(0, np.int64)
        pos = np.concatenate([np.arange(p.size) for p in parts]) if parts else np.zeros(0, np.int64)
    else:
        arr = _checks.as_int_array(history, "history")
        if arr.ndim == 0 or arr.shape[:-1] not in ((B,), tuple(lead)):
            raise ValueError(
                f"history must have shape ({B}, L) (one row of previous ids per row of logits)"
                + (f" or ({', '.join(map(str, lead))}, L)" if tuple(lead) != (B,) else "")
                + f", got shape {arr.shape}"
            )
        L = arr.shape[-1]
        ids = arr.reshape(B, L).reshape(-1)
        rows = np.repeat(np.arange(B, dtype=np.int64), L)
        pos = np.tile(np.arange(L, dtype=np.int64), B)
    if ids.size:
        bad = np.flatnonzero((ids < 0) | (ids >= V))
        if bad.size:
            i = int(bad[0])
            raise ValueError(
                f"history: token id {fmt_int(ids[i])} at row {int(rows[i])}, position {int(pos[i])} is "
                f"outside [0, {fmt_int(V)})"
            )
    return rows, ids.astype(np.int64)


def _bias(logit_bias, B: int, V: int):
    """Sorted keys ``row * V + id`` and float64 values of ``logit_bias`` (a dict, or one per row)."""
    if isinstance(logit_bias, dict):
        per_row = [logit_bias] * B
    elif isinstance(logit_bias, (list, tuple)):
        if len(logit_bias) != B:
            raise ValueError(f"logit_bias must be a dict or have one dict per row ({B}), got {len(logit_bias)}")
        per_row = list(logit_bias)
    else:
        raise TypeError(f"logit_bias must be a dict {{id: value}} or a list of them, got {type(logit_bias).__name__}")
    keys, vals = [], []
    for b, d in enumerate(per_row):
        if d is None:
            continue
        if not isinstance(d, dict):
            raise TypeError(f"logit_bias[{b}] must be a dict {{id: value}} or None, got {type(d).__name__}")
        for i, v in d.items():
            i = _checks.require_int(i, "logit_bias id", min=0)
            if i >= V:
                raise ValueError(f"logit_bias: token id {fmt_int(i)} is outside [0, {fmt_int(V)})")
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
                raise TypeError(f"logit_bias[{i}] must be a real number, got {type(v).__name__} {v!r}")
            v = _checks.to_float(v, f"logit_bias[{i}]")
            if np.isnan(v) or v == np.inf:
                raise ValueError(f"logit_bias[{i}] must be finite or -inf, got {v!r}")
            keys.append(b * V + i)
            vals.append(v)
    keys = np.array(keys, np.int64)
    order = np.argsort(keys, kind="stable")
    return keys[order], np.array(vals, np.float64)[order]


def _apply(vals, keys, rows, bkeys, bvals, hkeys, counts, rep, pres, freq, dtype):
    """Bias, then the penalties, in place on the logits ``vals`` at ``keys`` (as the reference)."""
    if bkeys.size:
        at = np.searchsorted(bkeys, keys)
        has = (at < bkeys.size) & (bkeys[np.minimum(at, bkeys.size - 1)] == keys)
        vals[has] = vals[has] + bvals[at[has]].astype(dtype)
    if hkeys.size:
        at = np.searchsorted(keys, hkeys)  # every history key is in keys
        r = rows[at]
        v = vals[at]
        v = np.where(v < 0, v * rep[r], v / rep[r])
        v = v - freq[r] * counts.astype(dtype)
        vals[at] = v - pres[r]


def _overrides(x2, lead, history, repetition_penalty, presence_penalty, frequency_penalty, logit_bias):
    """The logits that ``logit_bias`` and the penalties change: ``(ptr, ids, values)``, rows in
    order and ids increasing within a row (row ``b`` at ``[ptr[b], ptr[b + 1])``), the values in
    the logits' (native) dtype, computed as :func:`fastgram.reference.sampling.penalized_logits`."""
    B, V = x2.shape
    dtype = x2.dtype.newbyteorder("=")
    rep = _checks.per_row_arg(
        1.0 if repetition_penalty is None else repetition_penalty, "repetition_penalty", B, lead, min=0.0, min_open=True
    ).astype(dtype)
    pres = _checks.per_row_arg(
        0.0 if presence_penalty is None else presence_penalty, "presence_penalty", B, lead
    ).astype(dtype)
    freq = _checks.per_row_arg(
        0.0 if frequency_penalty is None else frequency_penalty, "frequency_penalty", B, lead
    ).astype(dtype)
    hkeys = np.zeros(0, np.int64)
    counts = np.zeros(0, np.int64)
    if history is not None:
        rows, ids = _history(history, B, V, lead)
        hkeys, counts = np.unique(rows * V + ids, return_counts=True)
    bkeys, bvals = (np.zeros(0, np.int64), np.zeros(0)) if logit_bias is None else _bias(logit_bias, B, V)
    keys = np.union1d(hkeys, bkeys).astype(np.int64)
    rows, ids = keys // V, keys % V
    orig = x2[rows, ids].astype(dtype)
    vals = orig.copy()
    with np.errstate(over="ignore"):  # an overflow to inf is named below
        _apply(vals, keys, rows, bkeys, bvals, hkeys, counts, rep, pres, freq, dtype)
    if vals.size:
        broken = (np.isnan(vals) | (vals == np.inf)) & ~(np.isnan(orig) | (orig == np.inf))
        if broken.any():
            i = int(np.flatnonzero(broken)[0])
            raise ValueError(
                f"logit_bias and penalties make logits[{int(rows[i])}, {int(ids[i])}] = {float(vals[i])!r} "
                f"(from {float(orig[i])!r}); the adjusted logits must be finite or -inf"
            )
    ptr = np.searchsorted(rows, np.arange(B + 1)).astype(np.int64)
    return ptr, ids.astype(np.int64), vals


#: Logits per call (B * V) from which rows are gathered in parallel: where a ``workqueue`` launch
#: (0.1-0.14 ms on a 2-core machine) costs less than the serial gather saves.
PARALLEL_MIN = 1 << 19
#: The same under a layer with cheap launches (TBB, OpenMP: about 20 us); measured: B = 4 rows
#: of 50,257 logits (2^17.6) gain, B = 2 (2^16.6) lose.
PARALLEL_MIN_CHEAP_LAUNCH = 1 << 17


def _row_filters(V, B, lead, temperature, top_k, top_p, min_p):
    """Per-row filters ``(temps, ks, qs, min_ps)`` (neutral: ``V``, ``-1``, ``0``), those of the
    selection path (``kg``: ``top_k`` or ``V``; ``lnmins``: ``log(min_p)`` for min-p alone, else
    ``-inf``) and the gathered logits kept per row. Arrays are (B,), or (1,) when every row has
    the same filters."""
    if all(isinstance(v, (int, float)) or v is None for v in (temperature, top_k, top_p, min_p)):
        T = _checks.require_float(temperature, "temperature", min=0.0)
        k = V if top_k is None else min(_checks.require_int(top_k, "top_k", min=1), V)
        p = 1.0 if top_p is None else _checks.require_float(top_p, "top_p", min=0.0, max=1.0, min_open=True)
        mp = 0.0 if min_p is None else _checks.require_float(min_p, "min_p", min=0.0, max=1.0)
        q = 1.0 - p if p < 1.0 else -1.0
        select = k < V and k <= max(SELECT_MAX_K, V // 8)
        alone = k == V and q < 0 and mp > 0
        cap = min(V, 2 * k + 64) if select else (min(V, MIN_P_CAP) if alone else 1)
        return (  # one value for every row
            np.array([T]),
            np.array([k], np.int64),
            np.array([q]),
            np.array([mp]),
            np.array([k if select else V], np.int64),
            np.array([math.log(mp) if alone else -np.inf]),
            cap,
        )
    temps = _checks.per_row_arg(temperature, "temperature", B, lead, min=0.0)
    ks = (
        np.full(B, V, np.int64)
        if top_k is None
        else _checks.per_row_arg(top_k, "top_k", B, lead, integer=True, min=1, clip=V)
    )  # any top_k >= V keeps every token, whatever its integer dtype
    ps = np.ones(B) if top_p is None else _checks.per_row_arg(top_p, "top_p", B, lead, min=0.0, max=1.0, min_open=True)
    qs = np.where(ps < 1.0, 1.0 - ps, -1.0)
    mps = np.zeros(B) if min_p is None else _checks.per_row_arg(min_p, "min_p", B, lead, min=0.0, max=1.0)
    # the selection path: top-k (not too large) with any top-p / min-p, or min-p alone
    select = (ks < V) & (ks <= max(SELECT_MAX_K, V // 8))
    alone = (ks == V) & (qs < 0) & (mps > 0)
    kg = np.where(select, ks, V)
    with np.errstate(divide="ignore"):
        lnmins = np.where(alone, np.log(np.where(alone, mps, 1.0)), -np.inf)
    cap = int(min(V, 2 * kg[select].max() + 64)) if select.any() else 1
    if alone.any():
        cap = max(cap, min(V, MIN_P_CAP))
    return temps, ks, qs, mps, kg, lnmins, cap


def _draw_full_rows(
    xc, full, ptr, ov_ids, ov_vals, rowmax, temps, ks, qs, mps, draws, seed, off, out, dsel, totals, logprobs
):
    """Rows ``full`` of the native logits ``xc`` by the full-row path: weights of the whole row
    (NumPy's exp), filters, running sums and draws into ``out``, ``totals`` and (``logprobs``)
    ``dsel``, the draws' ``d``."""

    def rows(a):
        return np.repeat(a, full.size) if a.shape[0] == 1 else a[full]

    every = full.size == xc.shape[0]
    xr = np.array(xc if every else xc[full], dtype=np.float64)  # one float64 copy
    if ov_ids.size:
        for i, b in enumerate(full):
            xr[i, ov_ids[ptr[b] : ptr[b + 1]]] = ov_vals[ptr[b] : ptr[b + 1]]
    xr -= (rowmax if every else rowmax[full])[:, None]
    T = rows(temps)
    if (T != 1.0).any():  # dividing by 1.0 changes no bit
        xr /= T[:, None]
    d = xr.copy() if logprobs else None
    np.exp(xr, out=xr)
    streams = off + (np.arange(full.size, dtype=np.int64) if every else full.astype(np.int64))
    got, tot = _draw_weights(xr, draws, seed, streams, rows(ks), rows(qs), rows(mps), in_place=True)
    out[full] = got
    totals[full] = tot
    if logprobs:
        dsel[full] = np.take_along_axis(d, got, axis=1)


def _raise_bad_rows(x, status, sel):
    """Name the first NaN / +inf (the whole array, as check_weights does), else the first dead row."""
    if (status == sel.BAD).any():
        check_weights(x, "logits", allow_neg_inf=True)
    dead = np.flatnonzero(status == sel.DEAD)
    if dead.size:
        raise ValueError(f"logits: row {fmt_int(dead[0])} is all -inf, so no token can be drawn")


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
    """Draw tokens from logits with penalties, temperature, top-k, top-p (nucleus) and min-p.

    The logits go through the steps of Hugging Face ``generate`` (``do_sample=True``), in its
    order, each row with its own parameters:

    1. ``logit_bias`` (HF's ``sequence_bias`` for single tokens): ``x[id] += bias``;
    2. ``repetition_penalty`` ``r`` (HF's ``RepetitionPenaltyLogitsProcessor``) on every id of
       the row's ``history``: ``x * r`` where ``x < 0``, else ``x / r``;
    3. ``frequency_penalty`` then ``presence_penalty`` (OpenAI's API, vLLM, after the repetition
       penalty as vLLM applies them): ``x -= frequency * count``, then ``x -= presence`` for every
       id seen ``count > 0`` times in ``history``;

    (steps 1-3 in the logits' dtype), then, in float64, with ``d = (x - max x) / T`` and
    ``w = exp(d)`` (the largest weight is 1):

    4. ``top_k``: keep every token whose weight is ``>=`` the ``top_k``-th largest (ties at the
       boundary are all kept; ``top_k >= V`` keeps all);
    5. ``top_p``: sort ascending (ties: the higher id counts as smaller), drop the tokens whose
       running sum of weights is ``<= (1 - top_p)`` times the total, always keeping the largest
       (``top_p = 1`` keeps all);
    6. ``min_p``: drop tokens whose probability is below ``min_p`` times the largest one.

    Parameters
    ----------
    logits : ndarray of float32 or float64, shape (..., V)
        Either byte order. May hold ``-inf`` (a masked token); NaN and ``+inf`` are errors.
    temperature : float or array of shape (B,), optional
        ``>= 0``; 0 is greedy (the first largest logit; the filters then change nothing).
        ``B`` is the number of rows (the product of the leading dimensions; an array of the
        leading shape is accepted too), and so for every per-row parameter.
    top_k : int or array of shape (B,), optional
        ``>= 1``.
    top_p : float or array of shape (B,), optional
        In ``(0, 1]``.
    min_p : float or array of shape (B,), optional
        In ``[0, 1]``.
    seed : int
        Keyword only, in ``[0, 2**64)``. Row ``r`` (of the flattened leading dimensions) uses
        stream ``offset + r``; its ``j``-th sample uses index ``j``.
    num_samples : int, optional
        Draws per row, with replacement. ``None`` (default): one draw, result shape ``(...)``.
    offset : int, optional
        Stream of the first row, for drawing a batch in parts.
    history : integer array of shape (B, L) or (..., L), or a list of B sequences, optional
        Previous ids of each row (ids in ``[0, V)``), for the penalties.
    repetition_penalty : float or array of shape (B,), optional
        ``> 0``; 1 (default) changes nothing.
    presence_penalty, frequency_penalty : float or array of shape (B,), optional
        Any finite value (negative ones favour repeats); 0 (default) changes nothing.
    logit_bias : dict {id: value} or list of B such dicts (or None), optional
        Added to the logits of those ids (of every row, or row by row); ``-inf`` bans a token.
    return_logprobs : bool, optional
        Also return the log-probability of each drawn id under the filtered distribution,
        ``d[id] - log(total)`` with ``total`` the kept weights' sum (0 for greedy rows), in the
        logits' dtype.

    Returns
    -------
    ids : ndarray of int64, shape ``(...)`` or ``(..., num_samples)``
    logprobs : ndarray, the same shape (only with ``return_logprobs=True``)

    Raises
    ------
    TypeError
        If ``logits`` is not float32/float64, or a parameter has the wrong type.
    ValueError
        If ``logits`` is 0-d or has ``V = 0``, holds NaN or ``+inf``, a row is all ``-inf``
        (after ``logit_bias``); ``temperature < 0``, ``top_k < 1``, ``top_p`` outside ``(0, 1]``,
        ``min_p`` outside ``[0, 1]``, ``repetition_penalty <= 0``, a per-row array of the wrong
        length, a history id outside ``[0, V)``, a bias on an id outside it, adjusted logits
        that overflow to ``+inf``, ``num_samples < 1``.

    Notes
    -----
    Rows with ``top_k <= max(64, V / 8)`` (any top-p, min-p) or ``min_p`` alone take a selection
    path: one vectorised pass over the row in blocks of 64 logits (their maxima), a second over
    the blocks that can hold the top-k, and the filters on those few logits; time O(V) per row,
    extra memory O(V) per thread plus O(top_k) per row. Other rows (plain temperature, top-p
    without top-k, larger ``top_k``) take the full row: one float64 copy of the logits (weights,
    then running sums in place), time O(V) (O(V log V) with ``top_p``), and from 32 draws per row
    a guide table (``G + 1`` uint16 or int32 per row, ``G`` the power of two ``>= V / 8``).
    Both draw the same ids as :func:`fastgram.reference.sample_logits`, bit for bit: the weights
    are NumPy's ``exp``, as there. Rows run in parallel.

    Examples
    --------
    >>> import numpy as np, fastgram
    >>> logits = np.array([[2.0, 1.0, -np.inf], [0.0, 0.0, 5.0]])
    >>> fastgram.sample_logits(logits, temperature=0, seed=0)
    array([0, 2])
    >>> fastgram.sample_logits(logits, top_k=1, seed=0)
    array([0, 2])
    >>> fastgram.sample_logits(logits, history=[[0], [2]], frequency_penalty=10.0, temperature=0, seed=0)
    array([1, 0])
    """
    x = float_array(logits, "logits")
    if x.ndim == 0:
        raise ValueError("logits must have at least 1 dimension (..., V), got a 0-d array")
    V = x.shape[-1]
    if V == 0:
        raise ValueError(f"logits must have V >= 1 categories, got shape {x.shape}")
    lead = x.shape[:-1]
    x2 = x.reshape(-1, V)
    B = x2.shape[0]
    temps, ks, qs, mps, kg, lnmins, cap = _row_filters(V, B, lead, temperature, top_k, top_p, min_p)
    n = None if num_samples is None else _checks.require_int(num_samples, "num_samples", min=1)
    if n is not None:
        _checks.check_result_size((B, n), 16, "num_samples")  # ids and their logprobs
    seed = seed_arg(seed)
    off = offset_arg(offset, B)
    if not isinstance(return_logprobs, (bool, np.bool_)):
        raise TypeError(f"return_logprobs must be a bool, got {type(return_logprobs).__name__} {return_logprobs!r}")
    if history is None and logit_bias is None:  # nothing to change: only check the penalties
        for value, name in ((repetition_penalty, "repetition_penalty"), (presence_penalty, "presence_penalty")):
            if value is not None:
                _checks.per_row_arg(value, name, B, lead, min=0.0 if name[0] == "r" else None, min_open=True)
        if frequency_penalty is not None:
            _checks.per_row_arg(frequency_penalty, "frequency_penalty", B, lead)
        ptr, ov_ids, ov_vals = np.zeros(B + 1, np.int64), _NO_IDS, np.zeros(0, x2.dtype.newbyteorder("="))
    else:
        ptr, ov_ids, ov_vals = _overrides(
            x2, lead, history, repetition_penalty, presence_penalty, frequency_penalty, logit_bias
        )
    draws = 1 if n is None else n
    shape = lead if n is None else lead + (n,)
    if B == 0:
        ids = np.zeros(shape, np.int64)
        return (ids, np.zeros(shape, x.dtype)) if return_logprobs else ids
    xc = np.ascontiguousarray(x2, dtype=x2.dtype.newbyteorder("="))
    xi = xc.view(np.int32 if xc.dtype == np.float32 else np.int64)
    gid = np.empty((B, cap), np.int64)
    gd = np.empty((B, cap), np.float64)
    info = np.empty((3, B), np.int64)  # status, gathered count, greedy id
    rowmax = np.empty(B, np.float64)
    limit = PARALLEL_MIN_CHEAP_LAUNCH if cheap_launches() else PARALLEL_MIN
    parts = min(B, num_threads()) if B * V >= limit else 1
    args = (xc, xi, ptr, ov_ids, ov_vals, temps, kg, lnmins, _KEY_CONSTS[xc.dtype.itemsize], gid, gd, info, rowmax)
    if parts > 1:  # spans of rows, one scratch set each
        parallel_chunks(_sel.gather_span, even_bounds(B, parts), args)
    else:
        _sel.gather_span(0, B, *args)
    status = info[0]
    worst = status.max()
    if worst >= _sel.BAD:
        _raise_bad_rows(x, status, _sel)
    gw = np.exp(gd)  # NumPy's exp, as the reference's
    out = np.empty((B, draws), np.int64)
    dsel = np.empty((B, draws), np.float64)
    totals = np.empty(B, np.float64)
    args = (gid, gw, gd, info, np.where(kg < V, kg, 0), qs, mps, seed, off, out, dsel, totals)
    _sel.finish_rows(*args)  # a row's few dozen logits: microseconds, not worth a parallel launch
    if worst == _sel.FALLBACK:
        full = np.flatnonzero(status == _sel.FALLBACK)
        _draw_full_rows(
            xc,
            full,
            ptr,
            ov_ids,
            ov_vals,
            rowmax,
            temps,
            ks,
            qs,
            mps,
            draws,
            seed,
            off,
            out,
            dsel,
            totals,
            return_logprobs,
        )
    ids = out.reshape(shape)
    if not return_logprobs:
        return ids
    lp = dsel - np.log(totals)[:, None]
    return ids, lp.astype(x.dtype.newbyteorder("=")).reshape(shape)


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
    _checks.check_result_size((math.prod(x.shape[:-1]), n), 8, "num_samples")
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
        B, V = w.shape
        streams = off + np.arange(B, dtype=np.int64)
        out, _ = _draw_weights(
            w, n, seed, streams, np.full(B, V, np.int64), np.full(B, -1.0), np.zeros(B), in_place=False
        )
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
        parallel_for(_k.draw_without_replacement, w.shape[0], (w, seed, off, out))
    return out.reshape(x.shape[:-1] + (n,))
