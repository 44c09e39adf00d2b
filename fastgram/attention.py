"""Batched softmax attention, ``softmax(q kᵀ · scale + mask) v``, on the CPU.

:func:`attention` checks its arguments, turns broadcasting into index maps and 0/1 steps (no
copies of broadcast operands or masks; C-contiguous inputs of the output's batch shape take a
quick path, as per-call Python work matters for small shapes), and runs the flash-style kernel in
:mod:`fastgram.kernels.attention`. :func:`notebook_demo` is the notebook's small self-attention
demo with real numbers, checked against :func:`fastgram.reference.attention`.
"""

from __future__ import annotations

import math

import numpy as np

from fastgram import _checks
from fastgram._jit import cheap_launches, num_threads, parallel_chunks
from fastgram.kernels import attention as _k
from fastgram.kernels import attention_decode as _kd

__all__ = ["attention"]

_ALIGNMENTS = ("top_left", "bottom_right")

#: Calls of at most this many ``B H T S (D + Dv)`` multiply-adds run in the calling thread:
#: where a parallel launch costs more than half the work it shares out. On a 2-core machine a
#: ``workqueue`` launch costs 0.1-0.14 ms, about the serial work of a (1, 12, 1, 1024, 64) decode
#: step (2^20.6). The path depends on the shapes and the threading layer alone, so a result does
#: not depend on the thread count (both paths run the same machine code of the same serial
#: kernels, so they agree bit for bit, but the choice is kept independent of the thread count
#: all the same).
SERIAL_WORK = 1 << 21
#: The same under a layer with cheap launches (TBB, OpenMP: about 20 us), where the two paths
#: cross near 2^18 (measured on decode steps).
SERIAL_WORK_CHEAP_LAUNCH = 1 << 18


def _serial_work() -> int:
    """The calling-thread limit of the layer Numba runs."""
    return SERIAL_WORK_CHEAP_LAUNCH if cheap_launches() else SERIAL_WORK


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
    """Scaled dot-product attention: ``softmax(q kᵀ · scale + mask) v`` over the last two axes.

    Parameters
    ----------
    q : array_like of float32 or float64, shape (..., H, T, D) or (T, D)
        Queries.
    k : array_like, shape (..., H_kv, S, D) or (S, D)
        Keys, same dtype as ``q``. ``H`` must be a multiple of ``H_kv`` (grouped-query
        attention: query head ``h`` uses key/value head ``h // (H // H_kv)``; K and V are not
        copied). ``S`` may differ from ``T`` (cross-attention).
    v : array_like, shape (..., H_kv, S, Dv) or (S, Dv)
        Values, same dtype as ``q``.
    causal : bool, optional
        Hide key ``j`` from query ``i`` when ``j > i + offset``; see ``causal_align``.
    mask : array_like of bool or float, optional
        Broadcastable to the scores' shape ``(..., H, T, S)``. Boolean: True = attend.
        Floating: added to the scaled scores (``-inf`` = masked; other values finite). May be
        combined with ``causal``.
    scale : float, optional
        Multiplies ``q kᵀ``; default ``1 / sqrt(D)``.
    causal_align : {"top_left", "bottom_right"}, optional
        ``offset = 0`` (top-left, as torch's ``is_causal``) or ``offset = S - T``
        (bottom-right, as FlashAttention >= 2.1: the last query sees every key). Only matters
        when ``T != S``.
    return_lse : bool, optional
        Also return the natural log-sum-exp of each row's (scaled, capped, biased, masked)
        scores.
    window : (int, int), optional
        ``(left, right)``, a sliding window as FlashAttention's ``window_size``: query ``i``
        sees keys ``j`` with ``i + S - T - left <= j <= i + S - T + right``; ``-1`` leaves that
        side unbounded (the default ``(-1, -1)`` is no window). Positions are always aligned
        bottom-right (the last query at the last key), whatever ``causal_align``; ``causal``
        and ``mask`` still apply on top. Whole key tiles outside the window are skipped.
    softcap : float, optional
        ``C > 0``: the scaled scores ``s`` become ``C * tanh(s / C)`` (Gemma 2), before the
        ALiBi bias and the mask are added.
    alibi_slopes : array_like of float, shape (H,) or (..., H), optional
        ALiBi: adds ``-slope[h] * |i + S - T - j|`` to the (capped) scores of head ``h``
        (FlashAttention's convention); the leading axes, if any, are the output's batch axes.

    Returns
    -------
    out : ndarray, shape (..., H, T, Dv) or (T, Dv) when every input is 2-D
        In the inputs' dtype. Leading batch axes are the broadcast of those of ``q``, ``k``,
        ``v``. A query whose keys are all masked gives a row of zeros.
    lse : ndarray, shape (..., H, T), only with ``return_lse=True``
        ``log(sum_j exp(score_ij))``; ``-inf`` for a fully masked row.

    Raises
    ------
    TypeError
        Integer, boolean or complex ``q``/``k``/``v``; different dtypes; an integer mask; a
        non-real ``scale``, ``softcap`` or slope; a non-bool ``causal``/``return_lse``; a
        ``window`` that is not a pair (tuple or list) of integers.
    ValueError
        An input with fewer than 2 axes; ``D`` of ``q`` and ``k`` differ (or is 0); ``S`` of
        ``k`` and ``v`` differ; ``H_kv`` of ``k`` and ``v`` differ; ``H`` not a multiple of
        ``H_kv``; batch axes not broadcastable; a mask not broadcastable to the scores;
        a non-finite ``scale``; an unknown ``causal_align``; a ``window`` side below -1;
        ``softcap`` outside the dtype's range (float32: about 1e-38 to 1e38; 0 or less);
        ``alibi_slopes`` of a shape other than ``(H,)`` or ``(..., H)`` with the output's batch
        axes, or not finite; NaN or ``+inf`` in an additive ``mask``.

    Notes
    -----
    Decoding (``T <= 8``, :mod:`fastgram.kernels.attention_decode`): split-KV. Each work item is a
    run of 256 keys of one (batch, key/value head) for all ``H // H_kv * T`` query rows that read
    that head (so GQA reads each K/V row once per group), with an online softmax; the partial
    results of the splits are merged by their log-sum-exp. Splits have a fixed size, so one
    query against a long cache uses every core and the result does not depend on the thread
    count. Extra memory: ``(B H_kv ceil(S / 256)) (H // H_kv) T (Dv + 2)`` numbers for the
    partial results.

    Prefill (``T > 8``), flash-style: blocks of up to 128 queries of one head walk the keys in tiles of 32 with an
    online softmax, so the ``(T, S)`` score matrix is never formed; tiles are held with the
    query axis last, so every inner loop is vectorised even for short ``D``, ``Dv`` and ``S``.
    Extra memory is one set of tiles per thread, ``128 (D + 32 + Dv + 4)`` numbers (82 KiB
    for float32 with D = Dv = 64), plus int64 index maps of the batch size and one int64 per
    work item. Work is ``O(B H T S (D + Dv))``, about half of that when causal (keys past a
    query block's diagonal are skipped). Work items, (batch·head, query block) pairs, are split
    into equal-cost runs over ``numba.get_num_threads()`` threads, so small shapes use every
    core too; results do not depend on the thread count.

    No copies of ``q``, ``k``, ``v`` or the mask when they are C-contiguous (broadcast views
    with zero strides in the batch axes are fine too), nor of ``k`` or ``v`` when it is a prefix
    ``cache[..., :S, :]`` of a C-contiguous array (a preallocated KV cache in a decode loop: the
    kernels get the whole cache and read its first ``S`` keys); otherwise each such input is
    copied once to C order in its own (not the broadcast) shape. A floating mask of a different float dtype
    is converted to the inputs' dtype, again in its own shape (a value below that dtype's
    range, such as -1e300 for float32, becomes -inf: a masked key). Boolean masks are read in place.
    Read-only ``q``, ``k`` or ``v`` (read-only memmaps, broadcast views) are read in place too,
    by a second compiled specialisation of the kernel.

    Masked scores are replaced by ``-inf`` (never added to), so NaN or inf in masked-out keys
    or values never reach the output. Accuracy, measured against a float64 reference: float32
    within 1e-5 of the output's scale, float64 within 1e-12. One exception: ALiBi's bias is
    added to the scores in the inputs' dtype, so in float32 a row whose visible keys all lie
    far from its diagonal position (thousands of keys, as with top-left ``causal`` and
    ``T << S``) loses about ``slope * distance * 6e-8`` of relative accuracy per weight (4e-5
    at slope 0.5 and 2,000 keys away).

    Examples
    --------
    >>> import numpy as np
    >>> from fastgram import attention
    >>> rng = np.random.default_rng(0)
    >>> q, k, v = (rng.standard_normal((2, 4, 5, 8), dtype=np.float32) for _ in range(3))
    >>> attention(q, k, v, causal=True).shape
    (2, 4, 5, 8)
    >>> out, lse = attention(q, k[:, :2], v[:, :2], return_lse=True)  # grouped-query attention
    >>> lse.shape
    (2, 4, 5)
    """
    q = _float_input(q, "q")
    k = _float_input(k, "k")
    v = _float_input(v, "v")
    if not (q.dtype == k.dtype == v.dtype):
        raise TypeError(f"q, k and v must have the same dtype, got {q.dtype}, {k.dtype} and {v.dtype}")
    for arr, name, axes in ((q, "q", "(..., H, T, D)"), (k, "k", "(..., H_kv, S, D)"), (v, "v", "(..., H_kv, S, Dv)")):
        if arr.ndim < 2:
            raise ValueError(f"{name} must have at least 2 axes {axes}, got shape {arr.shape}")
    shapes = f"q shape {q.shape}, k shape {k.shape}, v shape {v.shape}"
    D, T, S, Dv = q.shape[-1], q.shape[-2], k.shape[-2], v.shape[-1]
    if k.shape[-1] != D:
        raise ValueError(f"q and k must have the same last axis D, got {shapes}")
    if D == 0:
        raise ValueError(f"D (the last axis of q and k) must be at least 1, got {shapes}")
    if v.shape[-2] != S:
        raise ValueError(f"k and v must have the same number of keys S (axis -2), got {shapes}")
    H, H_k, H_v = (x.shape[-3] if x.ndim >= 3 else 1 for x in (q, k, v))
    if H_k != H_v:
        raise ValueError(f"k and v must have the same number of heads H_kv (axis -3), got {shapes}")
    if H_k == 0 or H % H_k:
        raise ValueError(f"query heads H={H} must be a multiple of key/value heads H_kv={H_k}, got {shapes}")
    leads = [x.shape[:-3] for x in (q, k, v)]
    try:
        batch = np.broadcast_shapes(*leads)
    except ValueError:
        raise ValueError(f"batch axes (before H) of q, k and v must broadcast, got {shapes}") from None
    if not isinstance(causal, (bool, np.bool_)):
        raise TypeError(f"causal must be a bool, got {type(causal).__name__} {causal!r}")
    if not isinstance(return_lse, (bool, np.bool_)):
        raise TypeError(f"return_lse must be a bool, got {type(return_lse).__name__} {return_lse!r}")
    if causal_align not in _ALIGNMENTS:
        raise ValueError(f"causal_align must be 'top_left' or 'bottom_right', got {causal_align!r}")
    if scale is None:
        scale = 1.0 / math.sqrt(D)
    else:
        scale = _checks.require_float(scale, "scale")
    left, right = _window(window)
    # a side past every key is unbounded in effect: clamped, so the bounds below fit an int64
    left, right = (min(w, S + T) for w in (left, right))
    softcap = 0.0 if softcap is None else _softcap(softcap, q.dtype)

    two_d = max(q.ndim, k.ndim, v.ndim) == 2
    score_shape = (T, S) if two_d else (*batch, H, T, S)
    B = math.prod(batch)
    q4, q_batch = _batched(q, batch, cache=False)  # the kernels take T from q4's shape
    k4, k_batch = _batched(k, batch, cache=True)  # and only S rows of k4 and v4
    v4, v_batch = _batched(v, batch, cache=True)
    mask_kind, mask_bool, mask_add, mask_batch, steps = _mask_operand(mask, score_shape, batch, q.dtype)
    alibi, alibi_b = _alibi_operand(alibi_slopes, batch, H, q.dtype)

    # visible keys of query i: j <= i + upper (causal, window right), j >= i + lower (window left)
    has_upper = bool(causal) or right >= 0
    upper = min(
        (0 if causal_align == "top_left" else S - T) if causal else S,
        S - T + right if right >= 0 else S,
    )
    has_lower = left >= 0
    lower = S - T - left if has_lower else 0

    out = np.empty((B, H, T, Dv), dtype=q.dtype)
    lse = np.empty((B, H, T) if return_lse else (1, 1, 1), dtype=q.dtype)
    operands = (
        q4, k4, v4, S, q_batch, k_batch, v_batch, mask_kind, mask_bool, mask_add, mask_batch, *steps,
        has_upper, upper, has_lower, lower, softcap, alibi, alibi_b, alibi_slopes is not None, scale,
    )  # fmt: skip
    # by size and layer, not by thread count: the same path (and result) at any thread count
    threads = 1 if B * H * T * S * (D + Dv) <= _serial_work() else num_threads()
    want_lse = bool(return_lse)
    if T <= _kd.MAX_T:
        _decode(operands, out, lse, want_lse, _kd.SPLIT, _kd.decode_tile(H // H_k * T, D), threads)
    else:
        block_q = min(T, _k.BLOCK_Q)
        tail = (out, lse, want_lse, block_q, _k.BLOCK_K, _k.LANES)
        if threads == 1:  # every work item in this thread
            _k.attend_items(0, B * H * ((T + block_q - 1) // block_q), *operands, *tail)
        else:
            bounds = _k.item_bounds(B, H, T, S, has_upper, upper, has_lower, lower, threads, block_q, _k.BLOCK_K)
            parallel_chunks(_k.attend_items, bounds, (*operands, *tail))
    lead = () if two_d else (*batch, H)
    out = out.reshape(*lead, T, Dv)
    if return_lse:
        return out, lse.reshape(*lead, T)
    return out


def _decode(operands, out, lse, want_lse, split, tile, threads) -> None:
    """The split-KV decode path (:mod:`fastgram.kernels.attention_decode`): the splits, dealt
    to ``threads`` contiguous runs (in this thread for one), then their merge."""
    q4, k4, S = operands[0], operands[1], operands[3]
    has_upper, upper, has_lower, lower = operands[14:18]
    j_first, j_last, n_split, part_m, part_l, part_acc, bounds = _kd.decode_plan(
        q4, out, k4.shape[1], S, has_upper, upper, has_lower, lower, split, threads
    )
    args = (j_first, j_last, n_split, *operands, tile, split, part_m, part_l, part_acc)
    if threads == 1:
        _kd.decode_items(0, bounds[1], *args)
    else:
        parallel_chunks(_kd.decode_items, bounds, args)
    _kd.merge_splits(n_split, part_m, part_l, part_acc, out, lse, want_lse)


def _float_input(x, name: str) -> np.ndarray:
    """``x`` as a float32/float64 ndarray in native byte order (byte-swapped input is converted)."""
    arr = _checks.float_array(x, name)
    return arr if arr.dtype.isnative else arr.astype(arr.dtype.newbyteorder("="))


def _squeeze_broadcast(arr: np.ndarray, axes: range) -> np.ndarray:
    """Shrink axes with stride 0 (broadcast views) to length 1: they broadcast back for free."""
    index = tuple(
        slice(0, 1) if (i in axes and arr.strides[i] == 0 and arr.shape[i] > 1) else slice(None)
        for i in range(arr.ndim)
    )
    return arr[index]


def _batched(x: np.ndarray, batch: tuple, *, cache: bool) -> tuple[np.ndarray, np.ndarray]:
    """``x`` as C-contiguous ``(Bx, heads, rows, cols)`` and the map output batch -> row of it.

    With ``cache`` (keys and values), a prefix ``cache[..., :S, :]`` of a C-contiguous array (a
    preallocated KV cache) comes back as the whole C-contiguous block, ``rows >= S``, not
    copied; the kernels read its first ``S`` rows (the caller passes ``S``). Queries never take
    that path: the kernels read ``T`` from their shape. Any other layout is copied once to C
    order.
    """
    lead = x.shape[:-3]
    if x.ndim >= 3 and lead == batch and x.flags.c_contiguous:  # the common case, a quick path
        B = math.prod(batch)
        return x.reshape(B, x.shape[-3], x.shape[-2], x.shape[-1]), np.arange(B, dtype=np.int64)
    x = _squeeze_broadcast(x, range(len(lead)))
    lead = x.shape[:-3]
    heads = x.shape[-3] if x.ndim >= 3 else 1
    block = _prefix_block(x) if cache else None
    if block is None:
        block = np.ascontiguousarray(x)
    x4 = block.reshape(math.prod(lead), heads, block.shape[-2], x.shape[-1])
    index = np.arange(math.prod(batch), dtype=np.int64) if lead == batch else _batch_map(lead, batch)
    return x4, index


def _prefix_block(x: np.ndarray) -> np.ndarray | None:
    """The C-contiguous block that ``x`` is the prefix ``[..., :S, :]`` of, or None.

    ``x`` of shape ``(..., H, S, D)`` qualifies when its strides are those of a C-contiguous
    ``(..., H, S_max, D)`` array with ``S_max > S`` (last axis and rows contiguous, a head
    every ``S_max`` rows) and that whole array lies inside a C-contiguous ndarray found by
    walking ``x.base``, starting at ``x``'s first element: then the block is a reshaped view
    of that base (no copy) and its first ``S`` rows of every head are ``x``. A view that starts
    at a later row (``cache[..., 5:S, :]``) would need rows past the base's end, so it is not
    one (it is copied).
    """
    if x.ndim < 3 or x.size == 0:
        return None
    item = x.itemsize
    S, D = x.shape[-2], x.shape[-1]
    row = D * item
    if x.strides[-3] % row or x.strides[-3] // row <= S:
        return None
    shape = (*x.shape[:-2], x.strides[-3] // row, D)
    strides = [item] * len(shape)
    for axis in range(len(shape) - 2, -1, -1):
        strides[axis] = strides[axis + 1] * shape[axis + 1]
    if any(n > 1 and st != want for n, st, want in zip(x.shape, x.strides, strides)):
        return None
    start = x.__array_interface__["data"][0]
    size = math.prod(shape)
    base = x.base
    while isinstance(base, np.ndarray):
        if base.flags.c_contiguous and base.dtype == x.dtype:
            offset = start - base.__array_interface__["data"][0]
            if 0 <= offset and offset % item == 0 and offset // item + size <= base.size:
                first = offset // item
                return base.reshape(-1)[first : first + size].reshape(shape)
        base = base.base
    return None


def _batch_map(lead: tuple, batch: tuple) -> np.ndarray:
    """For each flat index of ``batch``, the flat index into leading axes ``lead`` (broadcast)."""
    index = np.broadcast_to(np.arange(math.prod(lead), dtype=np.int64).reshape(lead), batch)
    return np.array(index, dtype=np.int64).reshape(-1)  # a writable copy: one kernel type


def _mask_operand(mask, score_shape: tuple, batch: tuple, dtype):
    """The mask as the kernel reads it: kind, bool and additive arrays, batch map, 0/1 steps."""
    dummy_bool = np.zeros((1, 1, 1, 1), np.uint8)
    dummy_add = np.zeros((1, 1, 1, 1), dtype)
    no_batch = np.zeros(math.prod(batch), np.int64)
    if mask is None:
        return 0, dummy_bool, dummy_add, no_batch, (0, 0, 0)
    m = mask if isinstance(mask, np.ndarray) else np.asarray(mask)
    if m.dtype.kind not in "bf":
        raise TypeError(f"mask must be boolean (True = attend) or floating (added to the scores), got dtype {m.dtype}")
    padded = (1,) * (len(score_shape) - m.ndim) + m.shape
    if m.ndim > len(score_shape) or any(a != 1 and a != b for a, b in zip(padded, score_shape)):
        raise ValueError(f"mask shape {m.shape} is not broadcastable to the scores' shape {score_shape} (..., H, T, S)")
    ndim = len(batch) + 3  # (T, S) scores are (1, T, S): one head, no batch axes
    m = _squeeze_broadcast(m.reshape((1,) * (ndim - m.ndim) + m.shape), range(ndim))
    if not m.flags.writeable:  # e.g. np.broadcast_to: copy the (squeezed) mask, one kernel type
        m = m.copy()
    if m.dtype.kind == "b":
        kind, m = 1, np.ascontiguousarray(m).view(np.uint8)
    else:
        with np.errstate(over="ignore"):  # a value below the dtype's range is -inf: masked
            kind, m = 2, np.ascontiguousarray(m, dtype=dtype)
        # -inf hides a key; NaN and +inf would make whole rows NaN: refused (O(mask) reads)
        bad = np.isnan(m) | (m == np.inf)
        if bad.any():
            where = tuple(int(x) for x in np.unravel_index(int(np.argmax(bad)), m.shape))
            raise ValueError(f"mask: {m[where]} at (squeezed) index {where}; additive masks take finite values or -inf")
    m_lead = m.shape[:-3]
    m4 = m.reshape(math.prod(m_lead), *m.shape[-3:])
    index = _batch_map(m_lead, batch)
    steps = tuple(int(n > 1) for n in m4.shape[1:])
    if kind == 1:
        return kind, m4, dummy_add, index, steps
    return kind, dummy_bool, m4, index, steps


def _softcap(softcap, dtype) -> float:
    """``softcap`` checked against ``dtype``'s range: the kernels form ``C log2(e)`` and its
    inverse in that dtype, so ``C`` must keep both finite (float32: about 1e-38 to 1e38)."""
    value = _checks.require_float(softcap, "softcap")
    big = float(np.finfo(dtype).max) / 2
    if not 1 / big <= value <= big:
        interval = f"[{1 / big:.3g}, {big:.3g}]"
        raise ValueError(f"softcap must be in {interval} for {np.dtype(dtype).name} inputs, got {value!r}")
    return value


def _window(window) -> tuple[int, int]:
    """``window`` as ``(left, right)``, each an int >= -1 (-1: unbounded)."""
    if window is None:
        return -1, -1
    if not isinstance(window, (tuple, list)) or len(window) != 2:
        raise TypeError(f"window must be a pair (left, right) of integers, got {window!r}")
    left, right = (_checks.require_int(w, f"window[{n}]") for n, w in enumerate(window))
    for n, w in enumerate((left, right)):
        if w < -1:
            raise ValueError(f"window[{n}] must be >= 0 or -1 (unbounded), got {w}")
    return left, right


def _alibi_operand(slopes, batch: tuple, H: int, dtype) -> tuple[np.ndarray, int]:
    """ALiBi slopes as ``(1 or B, H)`` in ``dtype`` and the batch step (0 or 1)."""
    if slopes is None:
        return np.zeros((1, 1), dtype), 0
    arr = _checks.float_array(slopes, "alibi_slopes")
    if arr.shape != (H,) and arr.shape != (*batch, H):
        allowed = f"({H},)" if not batch else f"({H},) or {(*batch, H)}"
        raise ValueError(f"alibi_slopes must have shape {allowed}, (H,) or (*batch, H), got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("alibi_slopes must be finite")
    alibi = np.ascontiguousarray(arr, dtype=dtype).reshape(-1, H)
    return alibi, int(alibi.shape[0] > 1 or arr.ndim > 1)
