"""Row scaling shared by the sampling tables and :mod:`fastgram.metrics`: huge float rows are
shrunk by a power of two before their running sums, integer row totals are summed exactly."""

from __future__ import annotations

import numpy as np

from fastgram.kernels.sampling import BIG_WEIGHT, SHRINK


def shrink_big_rows(w: np.ndarray) -> np.ndarray:
    """Multiply, in place, the rows of (R, V) float64 ``w`` whose largest weight is at least
    :data:`~fastgram.kernels.sampling.BIG_WEIGHT` by ``SHRINK`` (a power of two), so their
    running sums cannot overflow; other rows (all of them, in practice) are left as they are."""
    if w.size:
        big = np.flatnonzero(w.max(axis=1) >= BIG_WEIGHT)
        if big.size:
            w[big] *= SHRINK
    return w


def add_smoothing(a: np.ndarray, k: float) -> np.ndarray:
    """``a + k`` for a (R, V) float64 ``a`` (in place), without overflow: the rows where a count
    or ``k`` is at least :data:`~fastgram.kernels.sampling.BIG_WEIGHT` get ``a * SHRINK + k *
    SHRINK`` instead (an exact power of two, so each row's ratios are those of ``a + k``)."""
    if a.size and (k >= BIG_WEIGHT or a.max() >= BIG_WEIGHT):
        big = np.ones(a.shape[0], bool) if k >= BIG_WEIGHT else a.max(axis=1) >= BIG_WEIGHT
        a[big] = a[big] * SHRINK + k * SHRINK
        a[~big] += k
        return a
    a += k
    return a


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
