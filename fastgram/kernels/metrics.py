"""Likelihood kernels: per-block sums of ``-log p`` over the consecutive pairs of a stream."""

from __future__ import annotations

import math

from fastgram._jit import kernel


@kernel
def nll_blocks(w_lo, w_hi, tokens, prob, block, out):
    """Per-block sums of ``-log(prob[a, b])`` over consecutive pairs of a token chunk.

    (N,) unsigned ids, (V, V) float64 -> (ceil((N - 1) / block),) float64 ``out``; pairs
    ``[k * block, (k + 1) * block)`` go to ``out[k]``, summed left to right, blocks in parallel.
    """
    pairs = tokens.shape[0] - 1
    for k in range(w_lo, w_hi):
        lo = k * block
        hi = min(lo + block, pairs)
        s = 0.0
        for i in range(lo, hi):
            s -= math.log(prob[tokens[i], tokens[i + 1]])
        out[k] = s


@kernel
def neglog_blocks(w_lo, w_hi, p, block, out):
    """Per-block sums of ``-log(p[i])``: (N,) float64 -> (ceil(N / block),) float64 ``out``.

    The sparse-table counterpart of :func:`nll_blocks` (the wrapper looks the pair
    probabilities up first): the same blocks, summed in the same order, so a sparse and a
    dense table with the same probabilities give the same sums bit for bit.
    """
    N = p.shape[0]
    for k in range(w_lo, w_hi):
        lo = k * block
        hi = min(lo + block, N)
        s = 0.0
        for i in range(lo, hi):
            s -= math.log(p[i])
        out[k] = s
