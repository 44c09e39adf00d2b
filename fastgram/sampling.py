"""Sampling and generation: categorical draws from count tables, probabilities and logits.

Every random function takes ``seed=`` and draws from a counter-based generator
(:mod:`fastgram.kernels.random`): a draw depends only on the seed and its position, never on
the number of threads or how a batch is split, and :mod:`fastgram.reference` reproduces every
draw bit for bit.

Positions. A batch entry ``i`` uses random stream ``offset + i``; its ``j``-th draw uses index
``j`` of that stream. So ``sample_next(t, current[k:], seed, offset=k)`` equals
``sample_next(t, current, seed)[k:]``, and the first column of ``generate`` equals
``sample_next`` on the start tokens.

How a draw becomes a category: the inverse CDF over the running sums of a row, so a category
of weight zero is never drawn. Integer count tables are sampled exactly (an integer target in
``[0, total)`` against int64 running counts, no floating point); float tables use a 53-bit
uniform times the float64 row total.
"""

from __future__ import annotations

import math

import numpy as np

from fastgram import _checks
from fastgram._checks import fmt_int
from fastgram._jit import parallel_guard
from fastgram.kernels import random as _rk
from fastgram.kernels import sampling as _k

__all__ = [
    "bigram_probs",
    "Sampler",
    "sample_next",
    "generate",
    "sample_logits",
    "multinomial",
    "nll",
    "perplexity",
    "uniform",
]

#: Token pairs summed sequentially per block by :func:`nll` (blocks are then added in order).
NLL_BLOCK = 1 << 14

#: Draws per row from which :func:`multinomial` and :func:`sample_logits` build guide tables.
_GUIDE_MIN_DRAWS = 32

_INT64_MAX = (1 << 63) - 1
_PLACEHOLDER_I = np.zeros((1, 1), np.uint32)  # the common dtype of integer running sums
_PLACEHOLDER_F = np.zeros((1, 1), np.float64)
_PLACEHOLDER_TI = np.zeros(1, np.int64)
_PLACEHOLDER_TF = np.zeros(1, np.float64)


# ---------------------------------------------------------------------------------------------
# argument checks
# ---------------------------------------------------------------------------------------------


def _seed(seed) -> np.uint64:
    return np.uint64(_checks.require_int(seed, "seed", min=0, max=(1 << 64) - 1))


def _offset(offset, rows: int) -> np.int64:
    offset = _checks.require_int(offset, "offset", min=0, max=_INT64_MAX - max(rows, 1))
    return np.int64(offset)


def _index(idx, shape) -> str:
    """Index of a flat position in ``shape``, for messages: ``[3, 4]``."""
    return "[" + ", ".join(str(int(i)) for i in np.unravel_index(int(idx), shape)) + "]"


def _check_weights(arr: np.ndarray, name: str, *, allow_neg_inf: bool = False) -> None:
    """Raise ``ValueError`` naming the first NaN, infinite or negative entry of ``arr``."""
    if arr.size == 0:
        return
    if allow_neg_inf:
        bad = np.isnan(arr) | (arr == np.inf)
    else:
        bad = ~np.isfinite(arr)
    if bad.any():
        pos = int(np.flatnonzero(bad.ravel())[0])
        value = arr.ravel()[pos]
        raise ValueError(f"{name} must be finite, got {value} at {_index(pos, arr.shape)}")
    if not allow_neg_inf and arr.dtype.kind in "if":
        neg = arr < 0
        if neg.any():
            pos = int(np.flatnonzero(neg.ravel())[0])
            raise ValueError(f"{name} must be non-negative, got {arr.ravel()[pos]} at {_index(pos, arr.shape)}")


def _table_array(table, name: str) -> np.ndarray:
    """A 2-D, non-empty integer or float32/float64 table, checked for bad entries."""
    arr = table if isinstance(table, np.ndarray) else np.asarray(table)
    if arr.dtype.kind == "b" or arr.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be an array of integers or floats, got dtype {arr.dtype}")
    if arr.dtype.kind == "f":
        arr = _checks.as_float_array(arr, name)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (rows, V), got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} must have at least one row and one column, got shape {arr.shape}")
    _check_weights(arr, name)
    return arr


def _guide_shift(V: int, per_category: float = 2.0) -> tuple[int, np.uint64]:
    """Guide buckets ``G = 2**k`` (the smallest power of two >= ``per_category * V``, >= 2) and ``64 - k``.

    A sampler built once and drawn from many times uses two buckets per category, so most
    buckets hold at most one category boundary and most draws need a single comparison. The
    per-call tables of :func:`sample_logits` and :func:`multinomial` use one bucket per 8
    categories: an eighth of the set-up, a short binary search per draw, and a guide small
    enough to stay in cache beside a large row (measured faster for 64 x 50,257 logits).
    """
    k = max(1, (max(2, int(per_category * V)) - 1).bit_length())
    return 1 << k, np.uint64(64 - k)


def _guide_dtype(V: int) -> np.dtype:
    """uint16 guide entries (category ids ``< V``) when ``V <= 65,536``, else int32.

    Half the bytes keeps a 256 x 256 sampler's running sums and guide in a core's L2 cache
    together (measured: a fifth less time per draw).
    """
    return np.dtype(np.uint16) if V <= 1 << 16 else np.dtype(np.int32)


def _current_ids(current, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Integer ids, flat as given and as int64 (no copy when they already are int64).

    The range is not checked here: the kernels check each id as they read it (an id that
    does not fit int64 becomes negative, so it is caught there too).
    """
    flat = _checks.as_int_array(current, name).reshape(-1)
    if flat.dtype == np.int64 and flat.dtype.isnative and flat.flags.c_contiguous:
        return flat, flat
    return flat, flat.astype(np.int64)


def _raise_bad_row(ids: np.ndarray, sampler: "Sampler", name: str) -> None:
    """Raise ``ValueError`` naming the first id outside ``[0, R)`` or selecting an empty row."""
    R = sampler.shape[0]
    _checks.check_token_range(ids, R, name)
    hit = np.flatnonzero(sampler._empty_rows()[ids])
    if hit.size:
        pos = int(hit[0])
        raise ValueError(
            f"{name}: id {fmt_int(ids[pos])} at position {fmt_int(pos)} selects a row of the "
            f"table with no weight (all zero); smooth the counts (bigram_probs) first"
        )


# ---------------------------------------------------------------------------------------------
# tables
# ---------------------------------------------------------------------------------------------


def bigram_probs(counts, smoothing=1.0) -> np.ndarray:
    """Row-stochastic next-token probabilities from counts, with add-``k`` smoothing.

    ``probs[a, b] = (counts[a, b] + k) / sum_c (counts[a, c] + k)``.

    Parameters
    ----------
    counts : array_like, shape (R, V)
        Non-negative counts, integer or float (finite).
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
        If ``counts`` is not 2-D or has NaN, infinite or negative entries, or ``smoothing < 0``.

    Notes
    -----
    O(R V) time and one float64 table of extra memory.

    Examples
    --------
    >>> import numpy as np, fastgram
    >>> fastgram.bigram_probs(np.array([[3, 1], [0, 0]]), smoothing=0.0)
    array([[0.75, 0.25],
           [0.  , 0.  ]])
    """
    arr = _table_array(counts, "counts")
    k = _checks.require_float(smoothing, "smoothing", min=0.0)
    w = arr.astype(np.float64) + k
    totals = w.sum(axis=1, keepdims=True)
    return np.divide(w, totals, out=np.zeros_like(w), where=totals > 0)


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


class Sampler:
    """Categorical sampler over the rows of a table, built once and drawn from many times.

    Parameters
    ----------
    table : array_like, shape (R, V)
        Integer counts (sampled exactly: running int64 counts, integer targets) or float32 /
        float64 non-negative weights (rows need not sum to 1). Row ``r`` is the distribution
        of the token that follows token ``r``.

    Attributes
    ----------
    table : ndarray
        The table it was built from.
    exact : bool
        True for integer tables.
    totals : ndarray, shape (R,)
        Row totals (int64 or float64); a row with total 0 cannot be drawn from.

    Raises
    ------
    TypeError
        If ``table`` is not an integer or float32/float64 array.
    ValueError
        If ``table`` is not 2-D, is empty, has NaN, infinite or negative entries, or a row sum
        exceeds the int64 range (integers) or the float64 range (floats).

    Notes
    -----
    Holds the running sums (``4 R V`` bytes when every row total is below ``2**32``, else
    ``8 R V``) and a guide table of ``G + 1`` entries per row
    (uint16 up to ``V = 65,536``, int32 beyond), ``G`` the smallest power of two ``>= 2 V``
    (at most ``16 R V`` bytes). Building is O(R (V + G));
    a draw is O(1) on average (a binary search over the few categories of one guide bucket,
    O(log V) at worst).

    Examples
    --------
    >>> import numpy as np, fastgram
    >>> s = fastgram.Sampler(np.array([[0, 5], [2, 0]]))
    >>> fastgram.sample_next(s, [0, 1, 0], seed=0)
    array([1, 0, 1])
    """

    def __init__(self, table):
        arr = _table_array(table, "table")
        self.table = arr
        self.exact = arr.dtype.kind in "iu"
        R, V = arr.shape
        if self.exact:
            if arr.dtype == np.uint64 and int(arr.max()) > _INT64_MAX:
                raise ValueError(f"table: count {fmt_int(arr.max())} exceeds the int64 range")
            approx = arr.sum(axis=1, dtype=np.float64)
            for r in np.flatnonzero(approx >= 2.0**62):
                total = sum(int(v) for v in arr[r])
                if total > _INT64_MAX:
                    raise ValueError(f"table: row {r} sums to {fmt_int(total)}, over the int64 range")
            cum = np.cumsum(arr, axis=1, dtype=np.int64)
            self.totals = cum[:, -1].copy()
            # running counts below 2**32 are kept as uint32: half the bytes, so a 256 x 256
            # table's sums and guide stay in L2 together (the same integers, the same draws)
            self._cum_i = cum.astype(np.uint32) if int(self.totals.max()) < 1 << 32 else cum
            self._cum_f = _PLACEHOLDER_F
            self._totals_i, self._totals_f = self.totals, _PLACEHOLDER_TF
        else:
            self._cum_i = _PLACEHOLDER_I
            with np.errstate(over="ignore"):
                self._cum_f = np.cumsum(arr, axis=1, dtype=np.float64)
            self.totals = self._cum_f[:, -1].copy()
            self._totals_i, self._totals_f = _PLACEHOLDER_TI, self.totals
            if not np.isfinite(self.totals).all():
                r = int(np.flatnonzero(~np.isfinite(self.totals))[0])
                raise ValueError(f"table: row {r} sums to inf (float64 overflow); rescale the weights")
        G, self._gshift = _guide_shift(V)
        self._guide = np.empty((R, G + 1), _guide_dtype(V))
        with parallel_guard():
            _k.build_guides(
                self.exact, self._cum_i, self._cum_f, self._totals_i, self._totals_f, self._gshift, self._guide
            )

    def _kernel_args(self) -> tuple:
        """The table as the draw kernels take it: flat running sums and guides, sizes as uint64."""
        R, V = self.shape
        G1 = self._guide.shape[1]
        cum_i, cum_f, guide = (a.reshape(-1) for a in (self._cum_i, self._cum_f, self._guide))
        return (
            self.exact,
            cum_i,
            cum_f,
            self._totals_i,
            self._totals_f,
            guide,
            np.uint64(V),
            np.uint64(G1),
            self._gshift,
        )

    @property
    def shape(self) -> tuple[int, int]:
        """``(R, V)``: rows and categories."""
        return self.table.shape

    @property
    def vocab_size(self) -> int:
        """``V``, the number of categories."""
        return self.table.shape[1]

    def tempered(self, temperature) -> "Sampler":
        """A sampler of ``p ** (1 / temperature)`` (renormalised per row).

        ``temperature=1`` returns ``self``; ``0`` gives a greedy sampler (one-hot at each
        row's first largest weight); other values compute ``(w / rowmax) ** (1 / T)`` in float64,
        so zero weights stay zero. O(R V).
        """
        T = _checks.require_float(temperature, "temperature", min=0.0)
        if T == 1.0:
            return self
        if T == 0.0:
            return Sampler(_greedy_table(self.table))
        return Sampler(_tempered_weights(self.table, T))

    def _empty_rows(self) -> np.ndarray:
        return self.totals == 0

    def __repr__(self) -> str:
        kind = "exact counts" if self.exact else "float weights"
        return f"Sampler(rows={self.shape[0]:,}, V={self.shape[1]:,}, {kind})"


def _as_sampler(table, name: str = "table") -> Sampler:
    if isinstance(table, Sampler):
        return table
    if not isinstance(table, (np.ndarray, list, tuple)):
        raise TypeError(f"{name} must be a Sampler or a 2-D array, got {type(table).__name__}")
    return Sampler(table)


# ---------------------------------------------------------------------------------------------
# draws from tables
# ---------------------------------------------------------------------------------------------


def sample_next(table, current, seed, *, offset=0) -> np.ndarray:
    """Draw the next token for every entry of ``current`` from its row of ``table``.

    Parameters
    ----------
    table : Sampler or array_like, shape (R, V)
        A :class:`Sampler`, or a table to build one from (integer counts or float weights).
    current : array_like of int, any shape
        Row ids in ``[0, R)``.
    seed : int
        In ``[0, 2**64)``.
    offset : int, optional
        Stream of the first entry (entry ``i`` uses stream ``offset + i``): drawing a batch in
        parts with matching offsets gives the same tokens as drawing it whole.

    Returns
    -------
    next : ndarray of int64, shape ``current.shape``

    Raises
    ------
    TypeError
        If ``current`` is not integer, or ``seed``/``offset`` not integers.
    ValueError
        If an id of ``current`` is outside ``[0, R)`` or selects a row with no weight, or the
        table is invalid (see :class:`Sampler`).

    Notes
    -----
    O(N) time on average after the sampler is built (O(R V) when ``table`` is an array);
    extra memory: the result and an int64 copy of ``current``.

    Examples
    --------
    >>> import numpy as np, fastgram
    >>> fastgram.sample_next(np.array([[0, 1], [1, 0]]), np.array([[0, 1]]), seed=7)
    array([[1, 0]])
    """
    sampler = _as_sampler(table)
    shape = np.shape(current)
    ids, rows = _current_ids(current, "current")
    seed = _seed(seed)
    off = _offset(offset, rows.shape[0])
    out = np.empty(rows.shape[0], np.int64)
    with parallel_guard():
        bad = _k.sample_rows(*sampler._kernel_args(), rows, seed, off, out)
    if bad:
        _raise_bad_row(ids, sampler, "current")
    return out.reshape(shape)


def generate(table, start, length, seed, temperature=1.0, stop_token=None, *, offset=0) -> np.ndarray:
    """Run Markov chains on a bigram table: ``B`` chains of ``length`` tokens, loop in the kernel.

    Token ``t`` of a chain is drawn from the row of token ``t - 1`` (the row of its start token
    for ``t = 0``); the start token itself is not part of the result.

    Parameters
    ----------
    table : Sampler or array_like, shape (V, V)
        Square table: integer counts (exact) or float weights.
    start : int or array_like of int, any shape
        Start tokens in ``[0, V)``, one chain each.
    length : int
        Tokens to draw per chain (``>= 0``).
    seed : int
        In ``[0, 2**64)``. Token ``t`` of chain ``b`` uses stream ``offset + b``, index ``t``.
    temperature : float, optional
        ``>= 0``. Rows become ``p ** (1 / T)`` renormalised; 0 is greedy (each row's first most
        likely token); 1 (the default) samples the table as is (exactly, for counts).
    stop_token : int, optional
        When a chain draws this token it stops: the token is kept and every later position is
        filled with ``stop_token``. A start token equal to it does not stop the chain.
    offset : int, optional
        Stream of the first chain, for drawing a batch in parts.

    Returns
    -------
    tokens : ndarray of int64, shape ``start.shape + (length,)``

    Raises
    ------
    TypeError
        If ``start`` is not integer, or ``length``/``seed``/``stop_token`` not integers.
    ValueError
        If the table is not square or invalid, a start id or ``stop_token`` is outside
        ``[0, V)``, ``length < 0``, ``temperature < 0``, or a chain reaches a token whose row
        has no weight (the message names the chain, step and token).

    Notes
    -----
    O(B length) time on average, chains in parallel; extra memory: the result, plus a
    tempered copy of the sampler (O(V^2)) when ``temperature != 1``.

    Examples
    --------
    >>> import numpy as np, fastgram
    >>> fastgram.generate(np.array([[0, 1], [1, 0]]), [0, 1], length=4, seed=0)
    array([[1, 0, 1, 0],
           [0, 1, 0, 1]])
    """
    sampler = _as_sampler(table)
    R, V = sampler.shape
    if R != V:
        raise ValueError(f"table must be square (V, V) to generate, got shape {sampler.shape}")
    shape = np.shape(start)
    ids, starts = _current_ids(start, "start")
    _checks.check_token_range(ids, V, "start")
    L = _checks.require_int(length, "length", min=0)
    seed = _seed(seed)
    T = _checks.require_float(temperature, "temperature", min=0.0)
    stop = -1 if stop_token is None else _checks.require_int(stop_token, "stop_token", min=0, max=V - 1)
    off = _offset(offset, starts.shape[0])
    sampler = sampler.tempered(T)
    B = starts.shape[0]
    out = np.empty((B, L), np.int64)
    fail = np.empty(B, np.int64)
    if B and L:
        with parallel_guard():
            _k.generate_chains(*sampler._kernel_args(), starts, seed, off, np.int64(stop), out, fail)
        failed = np.flatnonzero(fail >= 0)
        if failed.size:
            b = int(failed[0])
            t = int(fail[b])
            tok = int(starts[b]) if t == 0 else int(out[b, t - 1])
            raise ValueError(
                f"table: chain {fmt_int(b)} reached token {fmt_int(tok)} at step {fmt_int(t)}, whose "
                f"row has no weight (all zero); smooth the counts (bigram_probs) or pass stop_token"
            )
    return out.reshape(shape + (L,))


# ---------------------------------------------------------------------------------------------
# draws from logits and probabilities
# ---------------------------------------------------------------------------------------------


def _draw_weights(
    w: np.ndarray, n: int, seed, offset, *, top_k: int, q: float, min_p: float, in_place: bool
) -> np.ndarray:
    """Filters, running sums (and guides) of (B, V) float64 ``w``, then ``n`` draws per row."""
    B, V = w.shape
    use_guide = n >= _GUIDE_MIN_DRAWS and V > 2
    G, gshift = _guide_shift(V, per_category=1 / 8)
    guide = np.empty((B, G + 1 if use_guide else 0), _guide_dtype(V))
    cum = w if in_place else np.empty_like(w)
    totals = np.empty(B, np.float64)
    out = np.empty((B, n), np.int64)
    with parallel_guard():
        _k.prepare_rows(w, np.int64(top_k), float(q), float(min_p), cum, totals, guide, gshift, use_guide)
        _k.draw_rows(cum, totals, guide, gshift, use_guide, seed, offset, out)
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
        May hold ``-inf`` (a masked token); NaN and ``+inf`` are errors.
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
    x = _checks.as_float_array(logits, "logits")
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
    seed = _seed(seed)
    lead = x.shape[:-1]
    x2 = x.reshape(-1, V)
    off = _offset(offset, x2.shape[0])
    _check_weights(x, "logits", allow_neg_inf=True)
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
        Non-negative, finite weights; rows need not sum to 1 but must have a positive sum.
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
    x = _checks.as_float_array(probs, "probs")
    if x.ndim not in (1, 2):
        raise ValueError(f"probs must be 1-D (V,) or 2-D (B, V), got shape {x.shape}")
    if x.shape[-1] == 0:
        raise ValueError(f"probs must have V >= 1 categories, got shape {x.shape}")
    n = _checks.require_int(num_samples, "num_samples", min=1)
    if not isinstance(replacement, (bool, np.bool_)):
        raise TypeError(f"replacement must be a bool, got {type(replacement).__name__} {replacement!r}")
    seed = _seed(seed)
    x2 = x.reshape(-1, x.shape[-1])
    off = _offset(offset, x2.shape[0])
    _check_weights(x, "probs")
    w = np.ascontiguousarray(x2, dtype=np.float64)
    if w.shape[0]:
        with np.errstate(over="ignore"):
            totals = w.sum(axis=1)
        zero = np.flatnonzero(totals <= 0)
        if zero.size:
            raise ValueError(f"probs: row {fmt_int(zero[0])} sums to 0, so no category can be drawn")
        if not np.isfinite(totals).all():
            r = int(np.flatnonzero(~np.isfinite(totals))[0])
            raise ValueError(f"probs: row {fmt_int(r)} sums to inf (float64 overflow); rescale the weights")
    if replacement:
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


def uniform(seed, shape, *, offset=0) -> np.ndarray:
    """The generator's uniforms in [0, 1): ``u[i, j]`` at stream ``offset + i``, index ``j``.

    Parameters
    ----------
    seed : int
        In ``[0, 2**64)``.
    shape : int or tuple of int
        ``n`` (one stream) or ``(B, n)``.
    offset : int, optional
        Stream of the first row.

    Returns
    -------
    u : ndarray of float64, shape ``shape``
        Multiples of ``2**-53``, identical to :func:`fastgram.reference.uniform`.

    Raises
    ------
    TypeError, ValueError
        If ``seed``, ``shape`` or ``offset`` is not a valid integer (tuple).

    Notes
    -----
    O(B n) time, rows in parallel; no memory beyond the result.

    Examples
    --------
    >>> import fastgram
    >>> fastgram.uniform(0, 3).round(3)
    array([0.05 , 0.218, 0.051])
    """
    seed = _seed(seed)
    dims = (shape,) if not isinstance(shape, (tuple, list)) else tuple(shape)
    if len(dims) not in (1, 2):
        raise ValueError(f"shape must be n or (B, n), got {shape!r}")
    dims = tuple(_checks.require_int(d, "shape", min=0) for d in dims)
    full = (1,) + dims if len(dims) == 1 else dims
    off = _offset(offset, full[0])
    out = np.empty(full, np.float64)
    with parallel_guard():
        _rk.fill_uniform(seed, off, out)
    return out.reshape(dims)


# ---------------------------------------------------------------------------------------------
# likelihood
# ---------------------------------------------------------------------------------------------


def _prob_table(table) -> np.ndarray:
    arr = table.table if isinstance(table, Sampler) else _table_array(table, "table")
    if arr.shape[0] != arr.shape[1]:
        raise ValueError(f"table must be square (V, V), got shape {arr.shape}")
    if arr.dtype.kind in "iu":
        totals = arr.sum(axis=1, dtype=np.float64, keepdims=True)
        return np.divide(arr, totals, out=np.zeros(arr.shape, np.float64), where=totals > 0)
    return np.ascontiguousarray(arr, dtype=np.float64)


def nll(table, tokens) -> float:
    """Mean negative log-likelihood (nats per token) of a token stream under a bigram table.

    ``nll = -mean_i log P(tokens[i + 1] | tokens[i])`` over the ``N - 1`` consecutive pairs.

    Parameters
    ----------
    table : Sampler or array_like, shape (V, V)
        Float probabilities ``P(b | a) = table[a, b]`` used as given (e.g. from
        :func:`bigram_probs`), or integer counts, normalised per row.
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
        If ``table`` is not square or has NaN, infinite or negative entries, ``tokens`` is not
        1-D, has fewer than 2 tokens, or an id outside ``[0, V)``.

    Notes
    -----
    O(N) time in parallel over blocks of :data:`NLL_BLOCK` pairs; each block is summed in
    order and the block sums are added exactly (``math.fsum``), so the result does not depend
    on the thread count. Extra memory: a float64 copy of the table when it is not float64
    already (O(V^2)) and O(N / NLL_BLOCK) block sums; the stream is read in chunks, never
    copied whole.

    Examples
    --------
    >>> import numpy as np, fastgram
    >>> round(fastgram.nll(np.array([[1, 1], [1, 1]]), [0, 1, 1, 0]), 6)
    0.693147
    """
    prob = _prob_table(table)
    V = prob.shape[0]
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
        with parallel_guard():
            _k.nll_blocks(view, prob, np.int64(NLL_BLOCK), out)
        sums.extend(out.tolist())
    return math.fsum(sums) / pairs


def perplexity(table, tokens) -> float:
    """``exp(nll(table, tokens))``: the perplexity of a stream under a bigram table.

    Same parameters, errors and costs as :func:`nll`.

    Examples
    --------
    >>> import numpy as np, fastgram
    >>> round(fastgram.perplexity(np.array([[1, 1], [1, 1]]), [0, 1, 1, 0]), 6)
    2.0
    """
    return math.exp(nll(table, tokens))
