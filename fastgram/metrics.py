"""Likelihood of a token stream under a bigram table: :func:`nll` and :func:`perplexity`.

The table may be dense (a (V, V) array or a dense :class:`~fastgram.sampling.Sampler`) or
sparse (:class:`~fastgram.counting.NGramCounts` with ``n = 2``, or a sparse sampler); both give
the same probabilities, pair for pair, and the same sums, bit for bit.
"""

from __future__ import annotations

import math

import numpy as np

from fastgram import _checks
from fastgram._checks import table_array
from fastgram._jit import parallel_for
from fastgram.counting import NGramCounts
from fastgram.kernels import metrics as _k
from fastgram.kernels import sampling as _ks
from fastgram.sampling import Sampler
from fastgram.sampling._rows import exact_row_totals
from fastgram.sampling.tables import csr_of

__all__ = ["nll", "perplexity", "NLL_BLOCK"]

#: Token pairs summed sequentially per block by :func:`nll` (blocks are then added in order).
NLL_BLOCK = 1 << 14


def _dense_probs(arr: np.ndarray) -> np.ndarray:
    """(V, V) float64 probabilities: integer counts over their exact row totals, floats as given."""
    if arr.shape[0] != arr.shape[1]:
        raise ValueError(f"table must be square (V, V), got shape {arr.shape}")
    if arr.dtype.kind in "iu":
        totals = exact_row_totals(arr)[:, None]
        return np.divide(arr, totals, out=np.zeros(arr.shape, np.float64), where=totals > 0)
    return np.ascontiguousarray(arr, dtype=np.float64)  # native order


def _sparse_probs(indptr: np.ndarray, cols: np.ndarray, values: np.ndarray, V: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted uint64 keys ``a * V + b`` of the stored entries and their float64 probabilities.

    Integer counts are divided by their exact row totals (as :func:`_dense_probs` does), float
    weights used as given. O(nnz) memory.
    """
    nnz = np.diff(indptr)
    rows = np.repeat(np.arange(V, dtype=np.uint64), nnz)
    keys = rows * np.uint64(V) + cols.astype(np.uint64)
    if values.dtype.kind not in "iu":
        return keys, values.astype(np.float64)
    running = np.empty(values.shape, np.int64)
    parallel_for(_ks.csr_running_sums, len(indptr) - 1, (values, indptr, np.int64(0), running))
    approx = np.concatenate([[0.0], np.cumsum(values, dtype=np.float64)])
    approx = approx[indptr[1:]] - approx[indptr[:-1]]
    totals = np.where(nnz > 0, running[np.maximum(indptr[1:] - 1, 0)] if values.size else 0, 0).astype(np.float64)
    for r in np.flatnonzero(approx >= 2.0**62):  # an int64 running sum may have wrapped
        totals[r] = float(sum(int(v) for v in values[indptr[r] : indptr[r + 1]]))
    return keys, values / totals[rows.astype(np.intp)]


def _table(table):
    """``("dense", probs)`` or ``("sparse", (keys, probs), V)`` for any accepted table."""
    if isinstance(table, Sampler):
        if table.sparse:
            indptr, cols, values = table._csr
            return "sparse", _sparse_probs(indptr, cols, values, table.vocab_size), table.vocab_size
        return "dense", _dense_probs(table.table), table.vocab_size
    if isinstance(table, NGramCounts):
        indptr, cols, values = csr_of(table, "table")
        return "sparse", _sparse_probs(indptr, cols, values, table.vocab_size), table.vocab_size
    probs = _dense_probs(table_array(table, "table"))
    return "dense", probs, probs.shape[0]


def nll(table, tokens) -> float:
    """Mean negative log-likelihood (nats per token) of a token stream under a bigram table.

    ``nll = -mean_i log P(tokens[i + 1] | tokens[i])`` over the ``N - 1`` consecutive pairs.

    Parameters
    ----------
    table : Sampler, array_like of shape (V, V), or NGramCounts
        Float probabilities ``P(b | a) = table[a, b]`` used as given (e.g. from
        :func:`~fastgram.sampling.bigram_probs`), integer counts (normalised per row by their
        exact totals), or sparse bigram counts (``NGramCounts`` with ``n = 2``, the same
        probabilities as their dense table).
    tokens : array_like of int, shape (N,)
        Any integer dtype, byte order or strides, ``np.memmap`` included; ``N >= 2``.

    Returns
    -------
    float
        ``inf`` if some pair has probability 0.

    Raises
    ------
    TypeError
        If ``tokens`` is not integer or ``table`` not numeric.
    ValueError
        If ``table`` is not square or has NaN, infinite or negative entries, sparse counts
        are not bigrams, ``tokens`` is not 1-D, has fewer than 2 tokens, or an id outside
        ``[0, V)``.

    Notes
    -----
    O(N) time in parallel over blocks of :data:`NLL_BLOCK` pairs; each block is summed in
    order and the block sums are added exactly (``math.fsum``), so the result does not depend
    on the thread count. Extra memory: a float64 copy of a dense table when it is not float64
    already (O(V^2)), or O(nnz) keys and probabilities for a sparse one (plus O(chunk) pair
    keys per chunk); O(N / NLL_BLOCK) block sums; the stream is read in chunks, never copied
    whole.

    Examples
    --------
    >>> import numpy as np, fastgram
    >>> round(fastgram.nll(np.array([[1, 1], [1, 1]]), [0, 1, 1, 0]), 6)
    0.693147
    """
    kind, probs, V = _table(table)
    toks = _checks.as_token_stream(tokens)
    if toks.shape[0] < 2:
        raise ValueError(f"tokens must hold at least 2 tokens (one pair), got {toks.shape[0]}")
    _checks.check_token_range(toks, V)
    pairs = toks.shape[0] - 1
    chunk = _checks.SCAN_CHUNK  # a multiple of NLL_BLOCK: blocks do not depend on chunking
    sums = []
    for lo in range(0, pairs, chunk):
        hi = min(lo + chunk, pairs)
        view = _checks.kernel_view(toks[lo : hi + 1])
        out = np.empty(-(-(hi - lo) // NLL_BLOCK), np.float64)
        if kind == "dense":
            parallel_for(_k.nll_blocks, out.shape[0], (view, probs, np.int64(NLL_BLOCK), out))
        else:
            p = _pair_probs(view, *probs, V)
            parallel_for(_k.neglog_blocks, out.shape[0], (p, np.int64(NLL_BLOCK), out))
        sums.extend(out.tolist())
    return math.fsum(sums) / pairs


def _pair_probs(view: np.ndarray, keys: np.ndarray, probs: np.ndarray, V: int) -> np.ndarray:
    """Probabilities of the consecutive pairs of a token chunk (0 for a pair not stored)."""
    if keys.size == 0:
        return np.zeros(view.shape[0] - 1, np.float64)
    q = view[:-1].astype(np.uint64) * np.uint64(V) + view[1:]
    at = np.minimum(np.searchsorted(keys, q), keys.size - 1)
    return np.where(keys[at] == q, probs[at], 0.0)


def perplexity(table, tokens) -> float:
    """``exp(nll(table, tokens))``: the perplexity of a stream under a bigram table.

    Same parameters, errors and costs as :func:`nll`; ``inf`` when the exponential overflows
    (as for a pair of probability 0).

    Examples
    --------
    >>> import numpy as np, fastgram
    >>> round(fastgram.perplexity(np.array([[1, 1], [1, 1]]), [0, 1, 1, 0]), 6)
    2.0
    """
    x = nll(table, tokens)
    try:
        return math.exp(x)
    except OverflowError:  # nll above log(max double), about 709.78
        return math.inf
