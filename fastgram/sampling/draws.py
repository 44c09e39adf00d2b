"""Draws from tables: :func:`sample_next` (one token per entry), :func:`generate` (Markov chains)
and :func:`uniform` (the generator's uniforms).

Positions. A batch entry ``i`` uses random stream ``offset + i``; its ``j``-th draw uses index
``j`` of that stream. So ``sample_next(t, current[k:], seed=s, offset=k)`` equals
``sample_next(t, current, seed=s)[k:]``, and the first column of ``generate`` equals
``sample_next`` on the start tokens.
"""

from __future__ import annotations

import numpy as np

from fastgram import _checks
from fastgram._checks import current_ids, fmt_int, offset_arg, seed_arg
from fastgram._jit import parallel_for
from fastgram.kernels import random as _rk
from fastgram.kernels import sampling as _k
from fastgram.sampling.tables import Sampler, as_sampler

__all__ = ["sample_next", "generate", "uniform"]


def _raise_bad_row(ids: np.ndarray, sampler: Sampler, name: str) -> None:
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


def sample_next(table, current, *, seed, offset=0) -> np.ndarray:
    """Draw the next token for every entry of ``current`` from its row of ``table``.

    Parameters
    ----------
    table : Sampler, array_like of shape (R, V), or NGramCounts
        A :class:`Sampler`, or a table to build one from (integer counts, float weights or
        sparse bigram counts).
    current : array_like of int, any shape
        Row ids in ``[0, R)``.
    seed : int
        Keyword only, in ``[0, 2**64)``.
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
    sampler = as_sampler(table)
    shape = np.shape(current)
    ids, rows = current_ids(current, "current")
    seed = seed_arg(seed)
    off = offset_arg(offset, rows.shape[0])
    out = np.empty(rows.shape[0], np.int64)
    bad = np.zeros(_k.row_blocks(rows.shape[0]), np.int64)  # (tasks,) bad entries of each
    args = (*sampler._kernel_args(), rows, seed, off, out, bad)
    parallel_for(_k.sample_rows, bad.shape[0], args)
    if bad.any():
        _raise_bad_row(ids, sampler, "current")
    return out.reshape(shape)


def generate(table, start, length, *, seed, temperature=1.0, stop_token=None, offset=0) -> np.ndarray:
    """Run Markov chains on a bigram table: ``B`` chains of ``length`` tokens, loop in the kernel.

    Token ``t`` of a chain is drawn from the row of token ``t - 1`` (the row of its start token
    for ``t = 0``); the start token itself is not part of the result.

    Parameters
    ----------
    table : Sampler, array_like of shape (V, V), or NGramCounts
        Square table: integer counts (exact), float weights or sparse bigram counts.
    start : int or array_like of int, any shape
        Start tokens in ``[0, V)``, one chain each.
    length : int
        Tokens to draw per chain (``>= 0``).
    seed : int
        Keyword only, in ``[0, 2**64)``. Token ``t`` of chain ``b`` uses stream ``offset + b``, index ``t``.
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
    sampler = as_sampler(table)
    R, V = sampler.shape
    if R != V:
        raise ValueError(f"table must be square (V, V) to generate, got shape {sampler.shape}")
    shape = np.shape(start)
    ids, starts = current_ids(start, "start")
    _checks.check_token_range(ids, V, "start")
    L = _checks.require_int(length, "length", min=0)
    seed = seed_arg(seed)
    T = _checks.require_float(temperature, "temperature", min=0.0)
    stop = -1 if stop_token is None else _checks.require_int(stop_token, "stop_token", min=0, max=V - 1)
    off = offset_arg(offset, starts.shape[0])
    sampler = sampler.tempered(T)
    B = starts.shape[0]
    _checks.check_result_size((B, L), 8, "length")
    out = np.empty((B, L), np.int64)
    fail = np.empty(B, np.int64)
    if B and L:
        args = (*sampler._kernel_args(), starts, seed, off, np.int64(stop), out, fail)
        parallel_for(_k.generate_chains, _k.chain_groups(B), args)
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


def uniform(shape, *, seed, offset=0) -> np.ndarray:
    """The generator's uniforms in [0, 1): ``u[i, j]`` at stream ``offset + i``, index ``j``.

    Parameters
    ----------
    shape : int or tuple of int
        ``n`` (one stream) or ``(B, n)``.
    seed : int
        Keyword only, in ``[0, 2**64)``.
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
    >>> fastgram.uniform(3, seed=0).round(3)
    array([0.05 , 0.218, 0.051])
    """
    seed = seed_arg(seed)
    dims = (shape,) if not isinstance(shape, (tuple, list)) else tuple(shape)
    if len(dims) not in (1, 2):
        raise ValueError(f"shape must be n or (B, n), got {shape!r}")
    dims = tuple(_checks.require_int(d, "shape", min=0) for d in dims)
    full = (1,) + dims if len(dims) == 1 else dims
    off = offset_arg(offset, full[0])
    _checks.check_result_size(full, 8, "shape")
    out = np.empty(full, np.float64)
    parallel_for(_rk.fill_uniform, full[0], (seed, off, out))
    return out.reshape(dims)
