"""Argument checks shared by the sampling modules and :mod:`fastgram.metrics`.

Each raises ``TypeError`` for the wrong kind of argument and ``ValueError`` for a wrong value,
naming the argument.
"""

from __future__ import annotations

import numpy as np

from fastgram import _checks
from fastgram.kernels.sampling import BIG_WEIGHT, SHRINK

INT64_MAX = (1 << 63) - 1


def seed_arg(seed) -> np.uint64:
    """``seed`` as a uint64 (an integer in ``[0, 2**64)``)."""
    return np.uint64(_checks.require_int(seed, "seed", min=0, max=(1 << 64) - 1))


def offset_arg(offset, rows: int) -> np.int64:
    """``offset`` as an int64 such that ``offset + rows`` streams stay in the int64 range."""
    return np.int64(_checks.require_int(offset, "offset", min=0, max=INT64_MAX - max(rows, 1)))


def _index(idx, shape) -> str:
    """Index of a flat position in ``shape``, for messages: ``[3, 4]``."""
    return "[" + ", ".join(str(int(i)) for i in np.unravel_index(int(idx), shape)) + "]"


def float_array(x, name: str) -> np.ndarray:
    """``x`` as a float32 or float64 ndarray in either byte order (no copy).

    Callers convert to native float64 where they copy anyway (running sums, weights), so a
    byte-swapped input costs no extra pass.
    """
    arr = x if isinstance(x, np.ndarray) else np.asarray(x)
    if arr.dtype.kind == "f" and arr.dtype.itemsize in (4, 8):
        return arr
    return _checks.as_float_array(arr, name)  # raises the TypeError


def check_weights(arr: np.ndarray, name: str, *, allow_neg_inf: bool = False) -> None:
    """Raise ``ValueError`` naming the first NaN, infinite or negative entry of ``arr``."""
    if arr.size == 0:
        return
    bad = (np.isnan(arr) | (arr == np.inf)) if allow_neg_inf else ~np.isfinite(arr)
    if bad.any():
        pos = int(np.flatnonzero(bad.ravel())[0])
        raise ValueError(f"{name} must be finite, got {arr.ravel()[pos]} at {_index(pos, arr.shape)}")
    if not allow_neg_inf and arr.dtype.kind in "if":
        neg = arr < 0
        if neg.any():
            pos = int(np.flatnonzero(neg.ravel())[0])
            raise ValueError(f"{name} must be non-negative, got {arr.ravel()[pos]} at {_index(pos, arr.shape)}")


def table_array(table, name: str) -> np.ndarray:
    """A 2-D, non-empty integer or float32/float64 table (any byte order), checked for bad entries."""
    arr = table if isinstance(table, np.ndarray) else np.asarray(table)
    if arr.dtype.kind == "b" or arr.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be an array of integers or floats, got dtype {arr.dtype}")
    if arr.dtype.kind == "f":
        arr = float_array(arr, name)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (rows, V), got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} must have at least one row and one column, got shape {arr.shape}")
    check_weights(arr, name)
    return arr


def current_ids(current, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Integer ids, flat as given and as int64 (no copy when they already are int64).

    The range is not checked here: the kernels check each id as they read it (an id that
    does not fit int64 becomes negative, so it is caught there too).
    """
    flat = _checks.as_int_array(current, name).reshape(-1)
    if flat.dtype == np.int64 and flat.dtype.isnative and flat.flags.c_contiguous:
        return flat, flat
    return flat, flat.astype(np.int64)


def shrink_big_rows(w: np.ndarray) -> np.ndarray:
    """Multiply, in place, the rows of (R, V) float64 ``w`` whose largest weight is at least
    :data:`~fastgram.kernels.sampling.BIG_WEIGHT` by ``SHRINK`` (a power of two), so their
    running sums cannot overflow; other rows (all of them, in practice) are left as they are."""
    if w.size:
        big = np.flatnonzero(w.max(axis=1) >= BIG_WEIGHT)
        if big.size:
            w[big] *= SHRINK
    return w


def exact_row_totals(arr: np.ndarray) -> np.ndarray:
    """Exact row sums of a 2-D integer table as float64 (rounded once, from the exact integer).

    int64 sums where no row can reach ``2**62``; Python integers for the rows that might.
    """
    approx = arr.sum(axis=1, dtype=np.float64)
    with np.errstate(over="ignore"):
        totals = arr.sum(axis=1, dtype=np.int64).astype(np.float64)  # wraps only in rows near 2**63
    for r in np.flatnonzero(approx >= 2.0**62):
        totals[r] = float(sum(int(v) for v in arr[r]))
    return totals
