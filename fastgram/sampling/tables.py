"""Tables to sample from: :class:`Sampler` (dense or sparse rows, guide tables) and :func:`bigram_probs`.

A :class:`Sampler` keeps the running sums of every row and a guide table per row (see
:mod:`fastgram.kernels.sampling`). Dense tables keep every entry; sparse bigram counts
(:class:`~fastgram.counting.NGramCounts` with ``n = 2``) keep only the positive ones in
compressed rows (CSR), so a vocabulary of 50,257 tokens costs memory in proportion to the
distinct bigrams, not ``V**2``. Both layouts draw the same tokens from the same counts.
"""

from __future__ import annotations

import numpy as np

from fastgram import _checks
from fastgram._checks import INT64_MAX, fmt_bytes, fmt_int, table_array
from fastgram._jit import parallel_for
from fastgram.counting import NGramCounts
from fastgram.kernels import sampling as _k
from fastgram.sampling._rows import add_smoothing, shrink_big_rows

__all__ = ["Sampler", "bigram_probs"]

_PLACEHOLDER_I = np.zeros((1, 1), np.uint32)  # the common dtype of integer running sums
_PLACEHOLDER_F = np.zeros((1, 1), np.float64)
_PLACEHOLDER_SI = np.zeros(1, np.int64)
_PLACEHOLDER_SF = np.zeros(1, np.float64)


# ---------------------------------------------------------------------------------------------
# guides and scales
# ---------------------------------------------------------------------------------------------


def guide_shift(V: int, per_category: float = 2.0) -> tuple[int, np.uint64]:
    """Guide buckets ``G = 2**k`` (the smallest power of two >= ``per_category * V``, >= 2) and ``64 - k``.

    A sampler built once and drawn from many times uses two buckets per category, so most
    buckets hold at most one category boundary and most draws need a single comparison. The
    per-call tables of :func:`~fastgram.sampling.sample_logits` and
    :func:`~fastgram.sampling.multinomial` use one bucket per 8 categories: an eighth of the
    set-up, a short binary search per draw, and a guide small enough to stay in cache beside a
    large row (measured faster for 64 x 50,257 logits).
    """
    k = max(1, (max(2, int(per_category * V)) - 1).bit_length())
    return 1 << k, np.uint64(64 - k)


def guide_dtype(V: int) -> np.dtype:
    """uint16 guide entries (category ids ``< V``) when ``V <= 65,536``, else int32.

    Half the bytes keeps a 256 x 256 sampler's running sums and guide in a core's L2 cache
    together (measured: a fifth less time per draw).
    """
    return np.dtype(np.uint16) if V <= 1 << 16 else np.dtype(np.int32)


def _scales(totals: np.ndarray) -> np.ndarray:
    """Per-row target scales of the kernels: the total (integers) or ``nextafter(total, 0)``
    (floats), and -1 for a row with no weight."""
    if totals.dtype.kind == "f":
        return np.where(totals > 0, np.nextafter(totals, 0.0), -1.0)
    return np.where(totals > 0, totals, -1).astype(np.int64)


def _check_int_totals(values: np.ndarray, rows_of, approx: np.ndarray, name: str) -> None:
    """Raise if a row of integer counts sums past int64 (exact check of the rows near it)."""
    for r in np.flatnonzero(approx >= 2.0**62):
        total = sum(int(v) for v in rows_of(r))
        if total > INT64_MAX:
            raise ValueError(f"{name}: row {r} sums to {fmt_int(total)}, over the int64 range")


def _dense_counts(counts: NGramCounts, name: str, purpose: str) -> np.ndarray:
    """The dense (V, V) int64 table of bigram counts, within the dense-table memory budget."""
    _check_bigrams(counts, name)
    V = counts.vocab_size
    need = 8 * V * V
    if need > _checks.DENSE_TABLE_BUDGET:
        raise ValueError(
            f"{purpose} of {name} needs a dense ({fmt_int(V)}, {fmt_int(V)}) table of {fmt_bytes(need)}, over "
            f"the budget of {fmt_bytes(_checks.DENSE_TABLE_BUDGET)}; Sampler(counts) and nll(counts, tokens) "
            f"stay sparse"
        )
    dense = np.zeros((V, V), np.int64)
    dense.reshape(-1)[counts.keys.astype(np.intp)] = counts.counts
    return dense


def _check_bigrams(counts: NGramCounts, name: str) -> None:
    if counts.n != 2:
        raise ValueError(f"{name} must be bigram counts (n = 2) to use as a table, got n = {counts.n}")


def csr_of(counts: NGramCounts, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Compressed rows of bigram counts: (V + 1,) int64 ``indptr``, uint32 ``cols``, int64 values.

    Row ``a`` holds the positive counts of ``(a, b)`` at ``indptr[a]:indptr[a + 1]``, ``b``
    increasing (the sorted keys ``a * V + b`` give both). Memory O(distinct bigrams).
    """
    _check_bigrams(counts, name)
    V = np.uint64(counts.vocab_size)
    keys, values = counts.keys, counts.counts
    if values.size and values.min() <= 0:
        keep = values > 0  # zero counts add nothing; skip them as the dense table's zeros are
        keys, values = keys[keep], values[keep]
    rows = keys // V
    indptr = np.searchsorted(rows, np.arange(counts.vocab_size + 1, dtype=np.uint64)).astype(np.int64)
    return indptr, (keys % V).astype(np.uint32), values


# ---------------------------------------------------------------------------------------------
# bigram_probs
# ---------------------------------------------------------------------------------------------


def bigram_probs(counts, smoothing=1.0) -> np.ndarray:
    """Row-stochastic next-token probabilities from counts, with add-``k`` smoothing.

    ``probs[a, b] = (counts[a, b] + k) / sum_c (counts[a, c] + k)``.

    Parameters
    ----------
    counts : array_like, shape (R, V), or NGramCounts
        Non-negative counts, integer or float (finite, either byte order), or sparse bigram
        counts (:class:`~fastgram.counting.NGramCounts` with ``n = 2``, giving the same result
        as their dense table).
    smoothing : float, optional
        ``k >= 0``, added to every count (default 1.0: add-one / Laplace smoothing).

    Returns
    -------
    probs : ndarray of float64, shape (R, V)
        Rows sum to 1, except a row with no counts and ``smoothing=0``, which stays all zero
        (there is nothing to estimate it from; sampling from it raises ``ValueError``).

    Raises
    ------
    TypeError
        If ``counts`` is not numeric or ``smoothing`` not a real number.
    ValueError
        If ``counts`` is not 2-D or has NaN, infinite or negative entries, ``smoothing < 0``,
        sparse counts are not bigrams, or their dense table is over the dense-table budget.

    Notes
    -----
    O(R V) time and one float64 table of extra memory. Rows with a weight of ``2**960`` or
    more are scaled by ``2**-64`` (exactly) before they are summed, and rows where a count or
    ``smoothing`` is that large before ``smoothing`` is added, so huge counts such as ``1e308``
    (or a huge ``smoothing``) overflow neither a weight nor the row sum.

    Examples
    --------
    >>> import numpy as np, fastgram
    >>> fastgram.bigram_probs(np.array([[3, 1], [0, 0]]), smoothing=0.0)
    array([[0.75, 0.25],
           [0.  , 0.  ]])
    """
    if isinstance(counts, NGramCounts):
        arr = _dense_counts(counts, "counts", "bigram_probs")
    else:
        arr = table_array(counts, "counts")
    k = _checks.require_float(smoothing, "smoothing", min=0.0)
    w = shrink_big_rows(add_smoothing(arr.astype(np.float64), k))
    totals = w.sum(axis=1, keepdims=True)
    return np.divide(w, totals, out=np.zeros_like(w), where=totals > 0)


# ---------------------------------------------------------------------------------------------
# Sampler
# ---------------------------------------------------------------------------------------------


class Sampler:
    """Categorical sampler over the rows of a table, built once and drawn from many times.

    Parameters
    ----------
    table : array_like, shape (R, V), or NGramCounts
        Integer counts (sampled exactly: running int64 counts, integer targets) or float32 /
        float64 non-negative weights (rows need not sum to 1; either byte order), or sparse
        bigram counts (:class:`~fastgram.counting.NGramCounts` with ``n = 2``: a (V, V) table
        kept in compressed rows). Row ``r`` is the distribution of the token that follows
        token ``r``.

    Attributes
    ----------
    table : ndarray or NGramCounts
        The table it was built from (None for a tempered sparse sampler).
    exact : bool
        True for integer tables.
    sparse : bool
        True when the rows are kept compressed (built from ``NGramCounts``).
    totals : ndarray, shape (R,)
        Row totals (int64 or float64); a row with total 0 cannot be drawn from.

    Raises
    ------
    TypeError
        If ``table`` is not an integer or float32/float64 array or ``NGramCounts``.
    ValueError
        If ``table`` is not 2-D, is empty, has NaN, infinite or negative entries, a row sum of
        integers exceeds the int64 range, or ``NGramCounts`` are not bigrams.

    Notes
    -----
    Dense: holds the running sums (``4 R V`` bytes when every row total is below ``2**32``,
    else ``8 R V``) and a guide table of ``G + 1`` entries per row (uint16 up to
    ``V = 65,536``, int32 beyond), ``G`` the smallest power of two ``>= 2 V`` (at most
    ``16 R V`` bytes). Sparse: the same per distinct bigram (``nnz``): 4 or 8 bytes of running
    sum, 4 of column id and at most 4 guide entries, plus 3 guide entries and 16 bytes per row.
    Building is O(R V) (dense) or O(nnz + V) (sparse); a draw is O(1) on average (a binary
    search over the few categories of one guide bucket, O(log V) at worst). Float rows with a
    weight of ``2**960`` or more are scaled by ``2**-64`` (exactly) so no running sum
    overflows.

    Examples
    --------
    >>> import numpy as np, fastgram
    >>> s = fastgram.Sampler(np.array([[0, 5], [2, 0]]))
    >>> fastgram.sample_next(s, [0, 1, 0], seed=0)
    array([1, 0, 1])
    """

    def __init__(self, table):
        if isinstance(table, NGramCounts):
            indptr, cols, values = csr_of(table, "table")
            self._init_csr(indptr, cols, values, table.vocab_size, table)
            return
        arr = table_array(table, "table")
        self.table = arr
        self.exact = arr.dtype.kind in "iu"
        self.sparse = False
        self._shape = arr.shape
        R, V = arr.shape
        if self.exact:
            if arr.dtype == np.uint64 and int(arr.max()) > INT64_MAX:
                raise ValueError(f"table: count {fmt_int(arr.max())} exceeds the int64 range")
            _check_int_totals(arr, lambda r: arr[r], arr.sum(axis=1, dtype=np.float64), "table")
            cum = np.cumsum(arr, axis=1, dtype=np.int64)
            self.totals = cum[:, -1].copy()
            # running counts below 2**32 are kept as uint32: half the bytes, so a 256 x 256
            # table's sums and guide stay in L2 together (the same integers, the same draws)
            self._cum_i = cum.astype(np.uint32) if int(self.totals.max()) < 1 << 32 else cum
            self._cum_f = _PLACEHOLDER_F
            self._scales_i, self._scales_f = _scales(self.totals), _PLACEHOLDER_SF
        else:
            self._cum_i = _PLACEHOLDER_I
            self._cum_f = np.cumsum(shrink_big_rows(arr.astype(np.float64)), axis=1)
            self.totals = self._cum_f[:, -1].copy()
            self._scales_i, self._scales_f = _PLACEHOLDER_SI, _scales(self.totals)
        G, self._gshift = guide_shift(V)
        self._guide = np.empty((R, G + 1), guide_dtype(V))
        args = (self.exact, self._cum_i, self._cum_f, self._scales_i, self._scales_f, self._gshift, self._guide)
        parallel_for(_k.build_guides, R, args)

    def _init_csr(self, indptr, cols, values, V: int, source) -> None:
        """Build from compressed rows (``values`` int64 counts or float64 weights, all >= 0)."""
        self.table = source
        self.exact = values.dtype.kind in "iu"
        self.sparse = True
        self._shape = (V, V)
        self._csr = (indptr, cols, values)
        nnz = np.diff(indptr)
        if self.exact:
            acc = np.concatenate([[0.0], np.cumsum(values, dtype=np.float64)])
            approx = acc[indptr[1:]] - acc[indptr[:-1]]
            _check_int_totals(values, lambda r: values[indptr[r] : indptr[r + 1]], approx, "table")
            cum = np.empty(values.shape, np.int64)
        else:
            cum = np.empty(values.shape, np.float64)
        parallel_for(_k.csr_running_sums, len(indptr) - 1, (values, indptr, values.dtype.type(0), cum))
        last = np.maximum(indptr[1:] - 1, 0)
        self.totals = np.where(nnz > 0, cum[last] if cum.size else 0, 0).astype(cum.dtype)
        if self.exact:
            self._cum_i = cum.astype(np.uint32) if cum.size == 0 or int(self.totals.max()) < 1 << 32 else cum
            self._cum_f = _PLACEHOLDER_F.reshape(-1)
            self._scales_i, self._scales_f = _scales(self.totals), _PLACEHOLDER_SF
        else:
            self._cum_i = _PLACEHOLDER_I.reshape(-1)
            self._cum_f = cum
            self._scales_i, self._scales_f = _PLACEHOLDER_SI, _scales(self.totals)
        m = np.maximum(2, 2 * nnz) - 1  # G = 2**k, k = max(1, bit_length(m)), as guide_shift
        k = np.maximum(1, np.frexp(m.astype(np.float64))[1]).astype(np.int64)
        self._gshifts = (64 - k).astype(np.uint64)
        self._gptr = np.concatenate([[0], np.cumsum((1 << k) + 1)]).astype(np.int64)
        self._guide = np.empty(int(self._gptr[-1]), guide_dtype(int(nnz.max()) if nnz.size else 1))
        args = (self.exact, self._cum_i, self._cum_f, self._scales_i, self._scales_f)
        args = (*args, indptr, self._gptr, self._gshifts, self._guide)
        parallel_for(_k.build_guides_csr, len(indptr) - 1, args)

    def _kernel_args(self) -> tuple:
        """The table as the draw kernels take it: flat running sums and guides, and the layout."""
        if self.sparse:
            indptr, cols, _ = self._csr
            layout = (indptr, self._gptr, self._gshifts, cols)
        else:
            layout = (np.uint64(self.shape[1]), np.uint64(self._guide.shape[1]), self._gshift)
        cum_i, cum_f, guide = (a.reshape(-1) for a in (self._cum_i, self._cum_f, self._guide))
        return (self.exact, cum_i, cum_f, self._scales_i, self._scales_f, guide, layout)

    @property
    def shape(self) -> tuple[int, int]:
        """``(R, V)``: rows and categories."""
        return self._shape

    @property
    def vocab_size(self) -> int:
        """``V``, the number of categories."""
        return self._shape[1]

    def tempered(self, temperature) -> "Sampler":
        """A sampler of ``p ** (1 / temperature)`` (renormalised per row).

        ``temperature=1`` returns ``self``; ``0`` gives a greedy sampler (one-hot at each
        row's first largest weight); other values compute ``(w / rowmax) ** (1 / T)`` in float64,
        so zero weights stay zero. O(R V) (dense) or O(nnz + V) (sparse); a sparse sampler
        stays sparse and draws what the dense one would.
        """
        T = _checks.require_float(temperature, "temperature", min=0.0)
        if T == 1.0:
            return self
        if not self.sparse:
            return Sampler(_greedy_table(self.table) if T == 0.0 else _tempered_weights(self.table, T))
        indptr, cols, values = self._csr
        nnz = np.diff(indptr)
        rowmax = np.zeros(nnz.shape, values.dtype)
        full = nnz > 0
        rowmax[full] = np.maximum.reduceat(values, indptr[:-1][full]) if values.size else 0
        per_entry = np.repeat(rowmax, nnz)
        out = Sampler.__new__(Sampler)
        if T == 0.0:  # one-hot at each row's first maximum (columns increase within a row)
            at_max = np.flatnonzero(values == per_entry)
            first = at_max[np.unique(np.repeat(np.arange(nnz.size), nnz)[at_max], return_index=True)[1]]
            new_indptr = np.concatenate([[0], np.cumsum(full)]).astype(np.int64)
            out._init_csr(new_indptr, cols[first], np.ones(first.size, np.int64), self.vocab_size, None)
        else:
            w = values.astype(np.float64) / per_entry.astype(np.float64)
            out._init_csr(indptr, cols, w ** (1.0 / T), self.vocab_size, None)
        return out

    def _empty_rows(self) -> np.ndarray:
        return self.totals == 0

    def __repr__(self) -> str:
        kind = "exact counts" if self.exact else "float weights"
        layout = ", sparse rows" if self.sparse else ""
        return f"Sampler(rows={self.shape[0]:,}, V={self.shape[1]:,}, {kind}{layout})"


def _tempered_weights(table: np.ndarray, temperature: float) -> np.ndarray:
    """``(table / rowmax) ** (1 / T)`` in float64 (rows of zeros stay zero); T > 0."""
    w = table.astype(np.float64)
    rowmax = w.max(axis=1, keepdims=True)
    w = np.divide(w, rowmax, out=np.zeros_like(w), where=rowmax > 0)
    return w ** (1.0 / temperature)


def _greedy_table(table: np.ndarray) -> np.ndarray:
    """One-hot int64 table at each row's first maximum (rows of zeros stay zero)."""
    onehot = np.zeros(table.shape, np.int64)
    rows = np.arange(table.shape[0])
    onehot[rows, np.argmax(table, axis=1)] = 1
    onehot[table.max(axis=1) <= 0] = 0
    return onehot


def as_sampler(table, name: str = "table") -> Sampler:
    """``table`` if it is a :class:`Sampler`, else a sampler built from it."""
    if isinstance(table, Sampler):
        return table
    if not isinstance(table, (np.ndarray, list, tuple, NGramCounts)):
        raise TypeError(f"{name} must be a Sampler, a 2-D array or NGramCounts, got {type(table).__name__}")
    return Sampler(table)
