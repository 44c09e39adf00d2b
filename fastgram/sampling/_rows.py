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
