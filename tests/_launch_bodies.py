"""Serial kernels for the tests of :func:`fastgram._jit.parallel_chunks` (kernels need a
source file of their own to be cached)."""

from __future__ import annotations

import numpy as np

from fastgram._jit import kernel


@kernel
def scaled_copy(lo, hi, out, x, scale):
    """``out[i] = x[i] * scale`` for ``lo <= i < hi``."""
    for i in range(lo, hi):
        out[i] = x[i] * scale


@kernel
def fails_on_chunk(lo, hi, out, bad):
    """Raise for the chunk that starts at ``bad`` (a nonzero status), else fill it with ``lo``."""
    if lo == bad:
        raise ValueError("bad chunk")
    for i in range(lo, hi):
        out[i] = lo


@kernel
def returns_a_value(lo, hi, out):
    """Not a body: it returns a value."""
    return np.int64(lo)


@kernel
def _row_total(x, i):
    """Sum of row ``i`` of ``x`` (an array passed on from a body)."""
    return x[i].sum()


@kernel
def views_and_copies(lo, hi, out, x):
    """``out[i] = 3 * sum(x[i])``, through a row view, a slice's copy and a call that takes the
    (borrowed) array on: what a body may do with its arguments."""
    for i in range(lo, hi):
        row = x[i]
        tail = x[i, 1:].copy()
        out[i] = row.sum() + (tail.sum() + x[i, 0]) + _row_total(x, i)
