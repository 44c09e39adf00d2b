"""Estimation of interpolated modified Kneser-Ney models as sort/scan over sorted n-gram arrays.

The stages are lmplz's (see :mod:`fastgram.reference.lm` for the formulas):

1. *Vocabulary*: model ids ``<unk>`` = 0, ``<s>`` = 1, ``</s>`` = 2, then the corpus ids in the
   order they first appear (lmplz's numbering, which its statistics depend on).
2. *Counting*: the N-grams of the padded sentences (``<s>`` * (N-1) ... ``</s>``), reversed
   (last word first) so that the sorted rows are lmplz's suffix order, counted by
   :class:`fastgram.counting.NGramCounter` chunk by chunk (spilling sorted runs to disk under
   ``max_memory``).
3. *Adjusted counts*: the counted N-grams go to scratch files (:class:`CountedNGrams`); one
   pass over them gives every order's statistics (sizes, kept n-grams, counts of adjusted
   counts); each order's n-grams are then built by one more pass just before the order is
   interpolated: the groups of rows sharing their first n words (common-prefix lengths of
   adjacent rows), their raw counts the group sums and their continuation counts the number
   of (n+1)-groups inside, no sort.
4. *Discounts* from the counts of adjusted counts 1-4 (lmplz's closed form).
5. *Initial probabilities and backoffs*: each n-gram's context is found in order n - 1 through
   a hash index of its rows; denominators and backoff mass are summed per context.
6. *Interpolation* bottom-up: ``p = u + gamma(context) * p(suffix)``, the suffix's index being
   the group index from stage 3; order n - 1 is finished (log10, backoffs) once order n is.

Memory: counting is bounded by ``max_memory`` (sorted runs spill to disk; by default
:data:`DEFAULT_MAX_MEMORY` or a quarter of the memory, the smaller) for every key space:
:class:`fastgram.counting.NGramCounter` packs an N-gram into one uint64 word while
``(V + 1)**N <= 2**64`` and into 2-4 words beyond (word 5-grams); the merged counts are held
as keys (8-32 bytes an N-gram) unless runs spilled. The counted N-grams then live on disk
(``4N + 8`` bytes each under ``tmp_dir``), one block in memory at a time, and what must fit is
the orders being estimated: each is built just before it is interpolated and finished as soon
as the next one is (ids, log10 p and backoff: ``4n + 16`` bytes an n-gram, ``4n + 24`` with
u). A model kept in memory holds every finished order; written to an ARPA file as it goes
(``kneser_ney(..., emit=...)``, :func:`fastgram.lm.estimate_to_arpa`), at most two orders are
held at a time.
"""

from __future__ import annotations

import os

import numpy as np

from fastgram import _checks, _io
from fastgram._jit import parallel_for
from fastgram.counting import NGramCounter, NGramCounts
from fastgram.kernels import lm_estimate as _k

UNK, BOS, EOS = 0, 1, 2
MAX_ORDER = 8
#: lmplz's ``--discount_fallback`` default (D1, D2, D3+).
DEFAULT_FALLBACK = (0.5, 1.0, 1.5)
#: Tokens per counting chunk. Smaller chunks hold less while one is sorted but merge more runs:
#: 255 MB of text (28 M words) counted its 5-grams in 2.55-2.58 s in 16 Mi chunks, 2.70 s in
#: 12 Mi, 2.90-3.04 s in 8 Mi and 3.27-3.41 s in 4 Mi; with runs trimmed in place, the 50 MB
#: corpus peaked at the same 437-438 MB with 16 Mi as with 4 Mi.
CHUNK_TOKENS = 1 << 24
#: The counting stage's budget when none is given: at most this, and at most a quarter of the
#: machine's memory. Beyond it sorted runs spill to disk (a corpus of 255 MB spilled none at
#: 2 GiB; at 4x that size 2 GiB counted 20% faster than 512 MiB).
DEFAULT_MAX_MEMORY = 2 << 30
#: Rows of the counted N-grams in memory at a time (20 MiB of word 5-gram ids).
BLOCK_ROWS = 1 << 20
#: Rows of an order finished and handed to ``emit`` at a time (the ARPA writer's block).
STREAM_ROWS = 1 << 16
SENTINEL = (1 << 32) - 1


# ---------------------------------------------------------------------------------------------
# argument checks
# ---------------------------------------------------------------------------------------------


def check_order(order) -> int:
    return _checks.require_int(order, "order", min=1, max=MAX_ORDER)


def check_prune(prune, order: int) -> list[int]:
    """lmplz's ``--prune``: one threshold per order, non-decreasing, the last one repeated."""
    if prune is None:
        return [0] * order
    if isinstance(prune, (int, np.integer)):
        prune = [prune]
    values = [_checks.require_int(t, "prune", min=0) for t in prune]
    if not values:
        return [0] * order
    if len(values) > order:
        raise ValueError(
            f"prune: {len(values)} thresholds given (orders 1 through {len(values)}) but the model has order {order}"
        )
    for a, b in zip(values, values[1:]):
        if b < a:
            raise ValueError(
                f"prune thresholds must be non-decreasing, got {values} (a lower order would lose n-grams)"
            )
    return values + [values[-1]] * (order - len(values))


def check_fallback(discount_fallback):
    """``None``/``False``: no fallback; ``True``: (0.5, 1, 1.5); up to three discounts (the last repeated)."""
    if discount_fallback is None or discount_fallback is False:
        return None
    if discount_fallback is True:
        return DEFAULT_FALLBACK
    values = [float(_checks.require_float(d, "discount_fallback")) for d in np.atleast_1d(discount_fallback).tolist()]
    if not 1 <= len(values) <= 3:
        raise ValueError(f"discount_fallback takes 1 to 3 discounts (for counts 1, 2 and 3+), got {len(values)}")
    values = values + [values[-1]] * (3 - len(values))
    for k, d in enumerate(values, 1):
        if not 0.0 < d <= k:  # 0 would leave some contexts no mass to back off with (log10 -inf)
            raise ValueError(f"discount_fallback: the discount for count {k} must be in (0, {k}], got {d}")
    return tuple(values)


# ---------------------------------------------------------------------------------------------
# stages
# ---------------------------------------------------------------------------------------------


#: Most n-grams of one order (row indices, parents and hash slots are int32).
MAX_ROWS = (1 << 31) - 2
#: Largest id range numbered with a dense table (int64 per id); sparser ids are sorted instead.
DENSE_IDS = 1 << 24


def vocabulary(tokens: np.ndarray, separator: int | None, chunk_tokens: int):
    """Model ids from a token stream: ``(lookup, token_ids)``.

    ``token_ids[m]`` is the corpus id of model id ``m`` (-1 for the three special words); ids
    are numbered by first appearance. ``lookup`` maps corpus ids to model ids: a dense uint32
    table when the ids span at most ``max(DENSE_IDS, 2 * tokens)`` values, else the pair
    ``(sorted corpus ids, their model ids)`` (memory O(distinct ids)).
    """
    has_sep = separator is not None
    sep = -1 if separator is None else int(separator)
    n = tokens.shape[0]
    top = _checks.stream_max(tokens) if n else -1
    if top + 1 <= max(DENSE_IDS, 2 * n):
        first = np.full(top + 1, np.iinfo(np.int64).max, np.int64)
        for lo in range(0, n, chunk_tokens):
            _k.first_seen(_checks.kernel_view(tokens[lo : lo + chunk_tokens]), lo, sep, has_sep, first)
        seen = np.flatnonzero(first != np.iinfo(np.int64).max)
        seen = seen[np.argsort(first[seen], kind="stable")]
        lookup = np.zeros(top + 1, np.uint32)
        lookup[seen] = 3 + np.arange(len(seen), dtype=np.uint32)
    else:
        ids, pos = np.zeros(0, np.int64), np.zeros(0, np.int64)
        for lo in range(0, n, chunk_tokens):
            chunk = np.asarray(tokens[lo : lo + chunk_tokens]).astype(np.int64)
            u, at = np.unique(chunk, return_index=True)
            ids, first_at = np.unique(np.concatenate([ids, u]), return_inverse=True)
            merged = np.full(len(ids), np.iinfo(np.int64).max, np.int64)
            np.minimum.at(merged, first_at, np.concatenate([pos, at + lo]))
            pos = merged
        if has_sep:
            pos, ids = pos[ids != sep], ids[ids != sep]
        seen = ids[np.argsort(pos, kind="stable")]
        model = np.empty(len(ids), np.uint32)
        model[np.argsort(pos, kind="stable")] = 3 + np.arange(len(ids), dtype=np.uint32)
        lookup = (ids, model)
    token_ids = np.concatenate([np.full(3, -1, np.int64), seen.astype(np.int64)])
    return lookup, token_ids


def map_ids(tokens: np.ndarray, sorted_ids: np.ndarray, model_ids: np.ndarray) -> np.ndarray:
    """Model ids (uint32) of ``tokens`` through a sorted table; unknown ids are ``<unk>`` (0)."""
    t = np.asarray(tokens).astype(np.int64, copy=False)
    at = np.searchsorted(sorted_ids, t)
    at_c = np.minimum(at, max(len(sorted_ids) - 1, 0))
    hit = (at < len(sorted_ids)) & (sorted_ids[at_c] == t) if len(sorted_ids) else np.zeros(len(t), bool)
    out = np.zeros(len(t), np.uint32)
    out[hit] = model_ids[at_c[hit]]
    return out


def counting_budget(max_memory) -> int:
    """The counting stage's budget in bytes: ``max_memory`` (an int or ``"2G"``...) checked, or
    without one :data:`DEFAULT_MAX_MEMORY` or a quarter of the machine's memory, the smaller."""
    budget = _io.parse_memory(max_memory)
    if budget is None:
        physical = _checks.physical_memory()
        budget = DEFAULT_MAX_MEMORY if physical is None else min(DEFAULT_MAX_MEMORY, physical // 4)
    return budget


def check_key_space(V: int, order: int) -> None:
    """Raise ``ValueError`` when ``order``-grams over ``V`` ids (model ids and the boundary) cannot
    be counted exactly (more than 2**32 ids)."""
    _checks.key_words(V, order)


def _reversed_chunks(tokens, lookup, separator, order, V, chunk_tokens, close_last=True):
    """The reversed padded model-id stream, piece by piece (the corpus read from its end).

    ``close_last=False``: a last sentence without its separator gets no ``</s>`` (lmplz's
    reading of a text whose last line has no newline)."""
    has_sep = separator is not None
    sep = -1 if separator is None else int(separator)
    boundary = V  # an id past the model ids: n-grams across sentences are not counted
    n_tokens = tokens.shape[0]
    ends_open = close_last and n_tokens > 0 and not (has_sep and int(tokens[n_tokens - 1]) == sep)
    identity = np.arange(V, dtype=np.uint32) if isinstance(lookup, tuple) else None
    hi = n_tokens
    first = True
    while hi > 0 or first:
        lo = max(0, hi - chunk_tokens)
        chunk = _checks.kernel_view(tokens[lo:hi])
        nsep = int(np.count_nonzero(chunk == sep)) if has_sep else 0
        if isinstance(lookup, tuple):  # sparse ids: map the chunk first, separators to a sentinel
            idmap, csep = identity, SENTINEL
            mapped = map_ids(chunk, *lookup)
            if has_sep:
                mapped[chunk == sep] = SENTINEL
            chunk = mapped
        else:
            idmap, csep = lookup, sep
        out = np.empty(hi - lo + nsep * (order + 1) + order + 1, np.uint32)
        k = _k.pad_reversed(
            chunk, 0, hi - lo, idmap, csep, has_sep, order, first and ends_open, lo == 0, BOS, EOS, boundary, out
        )
        yield out[:k]
        first = False
        hi = lo


def count_padded(held, lookup, separator, order, V, *, directory, max_memory, tmp_dir, chunk_tokens, close_last=True):
    """Count the reversed N-grams of the padded sentences of ``held = [tokens]`` (emptied, so
    that a stream nobody else holds is freed before the counts are merged) into a
    :class:`CountedNGrams` in ``directory``: sorted rows (lmplz's suffix order) and counts.

    Chunks are taken from the end of the stream backwards and written reversed, so the counter
    sees the reversed corpus and its sorted rows are in lmplz's suffix order. Every key space
    goes through :class:`fastgram.counting.NGramCounter`, bounded by ``max_memory``: one uint64
    word per key up to 64 bits, wider keys (word 5-grams) in 2-4 words; the merged counts are
    decoded and written :data:`BLOCK_ROWS` at a time.
    """
    tokens = held.pop()
    pieces = _reversed_chunks(tokens, lookup, separator, order, V, chunk_tokens, close_last)
    del tokens
    counted = CountedNGrams(directory, order)
    with NGramCounter(order, V + 1, separator=V, max_memory=max_memory, tmp_dir=tmp_dir) as counter:
        for piece in pieces:
            counter.update(piece)
        del pieces, piece  # the generator held the stream
        for keys, counts in counter.result_blocks():
            for lo in range(0, len(keys), BLOCK_ROWS):
                block = NGramCounts(keys[lo : lo + BLOCK_ROWS], counts[lo : lo + BLOCK_ROWS], order, V + 1,
                                    separator=V, validate=False)  # fmt: skip
                counted.append(block.ngrams, block.counts)
            del keys, counts
    return counted


def discounts_of(t, fallback, n: int):
    """``(D1, D2, D3+)`` of order ``n`` from ``t = [t1, t2, t3, t4]`` (lmplz's closed form)."""
    t1, t2, t3, t4 = (int(x) for x in t)
    problem = None
    zero = [k for k, tk in ((1, t1), (2, t2), (3, t3)) if tk == 0]
    if zero:
        k = zero[0]
        problem = (
            f"could not calculate Kneser-Ney discounts for {n}-grams with adjusted count {k + 1} because no "
            f"{n}-grams with adjusted count {k} were observed (is this small or artificial data?)"
        )
    else:
        y = t1 / (t1 + 2.0 * t2)
        d = [k - (k + 1) * y * tk1 / tk for k, tk, tk1 in ((1, t1, t2), (2, t2, t3), (3, t3, t4))]
        for k, dk in enumerate(d, 1):
            if dk < 0.0 or dk > k:
                problem = f"the {n}-gram discount for adjusted count {k} is {dk:.6g}, outside [0, {k}]"
                break
        if problem is None:
            return tuple(d)
    if fallback is None:
        raise ValueError(
            f"{problem}; to use fallback discounts (0.5 1 1.5 by default) pass discount_fallback=True "
            f"(fastgram lm --discount-fallback; lmplz's --discount_fallback), or deduplicate the corpus"
        )
    return tuple(fallback)


def hash_index(table: np.ndarray) -> np.ndarray:
    """Open-addressing slots (int32, a power of two >= 2 rows) indexing the rows of ``table``."""
    slots = np.full(1 << max(int(2 * len(table) - 1).bit_length(), 4), -1, np.int32)
    _k.hash_build(table, slots)
    return slots


def find_in(table: np.ndarray, queries: np.ndarray, first_col: int, slots=None) -> np.ndarray:
    """Index in ``table`` (m, k) of each ``queries[i, first_col:first_col + k]``, or -1 (hashed)."""
    out = np.empty(len(queries), np.int32)
    if len(queries):
        if slots is None:
            slots = hash_index(table)
        parallel_for(_k.hash_find, len(queries), (table, slots, queries, first_col, out))
    return out


class CountedNGrams:
    """The sorted reversed N-grams and their counts, held in two files of a scratch directory
    between the passes that read them (the statistics, then one pass per order).

    On disk ``4N + 8`` bytes an N-gram (uint32 ids, int64 counts); in memory one block of
    :data:`BLOCK_ROWS` rows at a time. Written with :meth:`append` (blocks in order), then
    read with :meth:`blocks` any number of times.
    """

    def __init__(self, directory: str, N: int):
        self.N, self.m = N, 0
        self._paths = (os.path.join(directory, "ngrams.u32"), os.path.join(directory, "counts.i64"))
        for path in self._paths:
            open(path, "wb").close()

    def append(self, rows: np.ndarray, counts: np.ndarray) -> None:
        """Add a block: ``rows`` (b, N) of ids, ``counts`` (b,), after the rows so far in order."""
        for path, a in zip(self._paths, (np.asarray(rows, np.uint32), np.asarray(counts, np.int64))):
            with open(path, "ab") as f:
                np.ascontiguousarray(a).tofile(f)
        self.m += len(rows)

    def blocks(self):
        """Yield ``(rows (b, N) uint32, counts (b,) int64, lcp (b,) int8)`` blocks of
        :data:`BLOCK_ROWS` in order; ``lcp[i]`` is the common prefix of row i with the row
        before it (0 for the first row, and across a block edge, the previous block's last row)."""
        block_rows, N = BLOCK_ROWS, self.N
        # one set of buffers, refilled: no allocation per block (the caller uses a block before
        # asking for the next)
        rows_buf = np.empty((min(block_rows, self.m), N), np.uint32)
        counts_buf, lcp_buf = np.empty(len(rows_buf), np.int64), np.empty(len(rows_buf), np.int8)
        with open(self._paths[0], "rb") as f_rows, open(self._paths[1], "rb") as f_counts:
            last = None
            for lo in range(0, self.m, block_rows):
                b = min(block_rows, self.m - lo)
                rows, counts, lcp = rows_buf[:b], counts_buf[:b], lcp_buf[:b]
                if f_rows.readinto(rows) != rows.nbytes or f_counts.readinto(counts) != counts.nbytes:
                    # pragma: no cover - only if the scratch files changed under us
                    raise RuntimeError("internal error: the counted n-grams' scratch file is truncated")
                parallel_for(_k.common_prefix, b, (rows, lcp))
                if last is not None:
                    same = np.flatnonzero(rows[0] != last)
                    lcp[0] = same[0] if len(same) else N
                last = rows[-1].copy()
                yield rows, counts, lcp

    def remove(self) -> None:
        """Delete the files (the directory's owner removes it)."""
        for path in self._paths:
            if os.path.exists(path):
                os.unlink(path)


class _Levels:
    """Every order's n-grams, built one order at a time from the counted N-grams.

    The constructor makes one pass over ``counted`` (a :class:`CountedNGrams`) for every
    order's statistics (:func:`fastgram.kernels.lm_estimate.level_stats`): ``sizes`` and
    ``kept`` (index n: the n-grams of order n, and those not pruned) and ``t`` (index n - 1:
    the counts of adjusted counts 1-4 the discounts come from); :meth:`build` then makes order
    n's arrays, orders in increasing order, each one more pass: O(m N) time in all, one block
    of rows in memory besides the order's arrays. The files are removed once order N is built.
    """

    def __init__(self, counted: CountedNGrams, N, prune):
        self.N, self.prune, self.counted = N, prune, counted
        sizes, kept = np.zeros(N + 1, np.int64), np.zeros(N + 1, np.int64)
        t = np.zeros((N + 1, 4), np.int64)
        state = np.zeros((4, N + 1), np.int64)
        thresholds = np.asarray(prune, np.int64)
        for rows, counts, lcp in counted.blocks():
            _k.level_stats(rows, counts, lcp, BOS, EOS, thresholds, False, state, sizes, kept, t)
        nothing = np.zeros((0, N), np.uint32)
        _k.level_stats(nothing, np.zeros(0, np.int64), np.zeros(0, np.int8), BOS, EOS, thresholds, True, state,
                       sizes, kept, t)  # fmt: skip
        sizes[1] += 2  # unigrams <unk> and <s> (never a suffix of an N-gram) with count 0, kept
        kept[1] += 2
        if sizes.max() > MAX_ROWS:
            n = int(np.argmax(sizes))
            raise ValueError(f"{n}-grams: {int(sizes[n]):,} distinct, more than one order can hold ({MAX_ROWS:,})")
        self.sizes, self.kept, self.t = sizes, kept, t[1:]
        self._next = 1

    def build(self, n: int) -> dict:
        """Order n's arrays (orders built in increasing order): ``rows`` (m_n, n) uint32,
        ``adj`` (adjusted counts: raw for order N and for n-grams starting with ``<s>``, else
        continuation counts; int64), ``parent`` (index of the suffix in order n - 1, int32)
        and ``marked`` (pruned): ``4n + 13`` bytes an n-gram."""
        if n != self._next:  # pragma: no cover - an internal invariant
            raise RuntimeError(f"internal error: order {n} built out of turn (next: {self._next})")
        self._next += 1
        N, size = self.N, int(self.sizes[n])
        R = np.empty((size, n), np.uint32)
        adj, marked, parent = np.empty(size, np.int64), np.empty(size, np.bool_), np.empty(size, np.int32)
        state = np.array([-1, 2 if n == 1 else 0, -1, 2 if n == 2 else 0, 0, 0, 0], np.int64)
        threshold = self.prune[n - 1]
        for rows, counts, lcp in self.counted.blocks():
            _k.level_groups(rows, counts, lcp, BOS, EOS, n, threshold, False, state, R, adj, marked, parent)
        nothing = np.zeros((0, N), np.uint32)
        _k.level_groups(nothing, np.zeros(0, np.int64), np.zeros(0, np.int8), BOS, EOS, n, threshold, True, state,
                        R, adj, marked, parent)  # fmt: skip
        if int(state[1]) != size:  # pragma: no cover - an internal invariant (level_stats counted them)
            raise RuntimeError(f"internal error: {int(state[1]):,} {n}-grams built of {size:,}")
        if n == N:
            self.counted.remove()
        if n == 1:  # <unk> and <s>: count 0, never pruned
            R[:2, 0] = (UNK, BOS)
            adj[:2], marked[:2], parent[:2] = 0, False, -1
        if int(np.count_nonzero(~marked)) != self.kept[n]:  # pragma: no cover - an internal invariant
            raise RuntimeError(f"internal error: the {n}-grams kept differ from their count")
        return dict(rows=R, adj=adj, parent=parent, marked=marked)


def _contexts(levels, n):
    """``(ctx, C)``: each order-n n-gram's context (its first n - 1 ids, forward) as an index into
    order n - 1, and the number of contexts."""
    R = levels[n - 1]["rows"]
    if n == 1:
        return np.zeros(len(R), np.int32), 1
    ctx = find_in(levels[n - 2]["rows"], R, 1)
    if (ctx < 0).any():  # pragma: no cover - an internal invariant
        raise RuntimeError(f"internal error: a {n}-gram's context is missing from order {n - 1}")
    return ctx, len(levels[n - 2]["rows"])


def kneser_ney(counted, order, V, prune, fallback, keep_u=True, emit=None):
    """The model's arrays from the counted N-grams (a :class:`CountedNGrams`, whose files are
    removed once the last order is built). Returns a dict of per-order lists (index n-1):
    ``rows`` (reversed, sorted, uint32), ``prob``, ``backoff`` (log10, float64), ``u``
    (float64; ``None`` without ``keep_u``, which saves 8 bytes an n-gram), and ``discounts``
    (N, 3); and ``sizes``, the kept n-grams of each order, known before any order is estimated.

    ``emit``: called as ``emit(sizes, n, rows, prob, backoff)`` with the finished n-grams of
    order n, :data:`STREAM_ROWS` at a time, orders in increasing order, as soon as order n +
    1's interpolation weights are known; nothing is kept (the returned lists hold ``None``),
    so an ARPA file can be written as the estimation goes.

    Memory: the counted N-grams stay on disk (one block of them in memory at a time). Order n,
    once built, holds ``4n + 13`` bytes an n-gram (ids, adjusted counts, which become p,
    parents until it is interpolated, pruning marks); while it is interpolated, its contexts
    (4 bytes an n-gram) and 16 bytes per context (order n - 1's n-grams). Without ``emit``,
    order n - 1 is finished after order n is interpolated (its output, ``4n + 16`` bytes an
    n-gram or ``4n + 24`` with ``keep_u``, written in place when nothing is pruned) and every
    finished order is kept (the model). With ``emit``, order n - 1 is written out before
    order n is interpolated, and only its p (8 bytes an n-gram) stays while it is.
    """
    N = order
    levels = _Levels(counted, N, prune)
    discounts = np.array([discounts_of(levels.t[n - 1], fallback, n) for n in range(1, N + 1)], np.float64)
    discounts = discounts.reshape(N, 3)
    sizes = [int(x) for x in levels.kept[1:]]
    out = dict(rows=[None] * N, prob=[None] * N, backoff=[None] * N, u=[None] * N, discounts=discounts, sizes=sizes)
    K = [None] * N

    def finish(n, gamma_next):
        """Order n's output arrays; ``gamma_next`` (order n + 1's weights per context, one per
        order-n n-gram) becomes its backoffs."""
        k = K[n - 1]
        m = sizes[n - 1]
        if m == len(k["rows"]):
            # nothing pruned: every row stays where it is (dest[i] == i), so the level's own
            # rows, p and u, and order n + 1's weights, take the results in place
            rows_out, prob, u = k["rows"], k["p"], k["u"]
            backoff = gamma_next if n < N else np.empty(m)
        else:
            rows_out = np.empty((m, n), np.uint32)
            prob, backoff, u = np.empty(m), np.empty(m), np.empty(m if keep_u else 0)
        dest = _k.kept_positions(k["marked"]) if m < len(k["rows"]) else np.zeros(0, np.int32)  # empty: i -> i
        args = (k["rows"], k["p"], k["u"], k["marked"], dest, gamma_next, n < N, EOS, UNK, rows_out, prob, backoff)
        parallel_for(_k.finish, len(k["rows"]), (*args, keep_u, u))
        K[n - 1] = None  # the adjusted counts, parents and marks of order n are no longer needed
        out["rows"][n - 1], out["prob"][n - 1], out["backoff"][n - 1] = rows_out, prob, backoff
        out["u"][n - 1] = u if keep_u else None

    def stream(n, gamma_next):
        """Order n through ``emit``, :data:`STREAM_ROWS` rows at a time, as soon as order n + 1's
        weights ``gamma_next`` are known (before it is interpolated): the level's ids and marks
        are freed; its p stays, for order n + 1's interpolation."""
        k = K[n - 1]
        rows, p, marked = k["rows"], k["p"], k["marked"]
        pruned = sizes[n - 1] < len(rows)
        dest = _k.kept_positions(marked) if pruned else None
        block = min(STREAM_ROWS, len(rows))
        out_rows, prob, backoff = np.empty((block, n), np.uint32), np.empty(block), np.empty(block)
        identity, no_u = np.zeros(0, np.int32), np.zeros(0)
        for lo in range(0, len(rows), STREAM_ROWS):
            hi = min(lo + STREAM_ROWS, len(rows))
            to = dest[lo:hi] - dest[lo] if pruned else identity  # output rows of the block's kept rows
            kept = int(np.count_nonzero(~marked[lo:hi])) if pruned else hi - lo
            g = gamma_next[lo:hi] if n < N else gamma_next
            args = (rows[lo:hi], p[lo:hi], no_u, marked[lo:hi], to, g, n < N, EOS, UNK, out_rows, prob, backoff)
            parallel_for(_k.finish, hi - lo, (*args, False, no_u))
            emit(sizes, n, out_rows[:kept], prob[:kept], backoff[:kept])
        k["rows"] = k["marked"] = None

    # stage 5: contexts, denominators, interpolation weights; stage 6: interpolation
    p_lower = np.zeros(0)
    for n in range(1, N + 1):
        k = K[n - 1] = levels.build(n)
        R, adj, marked = k["rows"], k["adj"], k["marked"]
        ctx, C = _contexts(K, n)
        D = np.concatenate([[0.0], discounts[n - 1]])
        denom, gamma = np.zeros(C), np.zeros(C)
        _k.context_sums(adj, marked, ctx, D, denom, gamma)  # gamma holds the mass for now
        with np.errstate(invalid="ignore", divide="ignore"):
            np.divide(gamma, denom, out=gamma)
        gamma[denom <= 0] = np.nan
        if emit is not None and n > 1:
            stream(n - 1, gamma)  # order n - 1 written out before order n is interpolated
        # p takes the adjusted counts' memory (int64, each read before its p is written);
        # without keep_u the kernel writes u into p first
        p = adj.view(np.float64)
        u = np.empty(len(R)) if keep_u else p
        if n == 1:
            V_uniform = int(np.count_nonzero(~marked)) - 1
            unigram_args = (adj, ctx, np.zeros(0, np.int32), D, denom, gamma, p_lower, 1.0 / V_uniform, u, p)
            parallel_for(_k.interpolate, len(adj), unigram_args)
            del unigram_args
            u[R[:, 0] == UNK] = 0.0
            p[R[:, 0] == UNK] = gamma[0] / V_uniform
            u[R[:, 0] == BOS] = 1.0
            p[R[:, 0] == BOS] = 1.0
        else:
            parallel_for(_k.interpolate, len(adj), (adj, ctx, k["parent"], D, denom, gamma, p_lower, 0.0, u, p))
        del ctx, denom
        k["p"], k["u"], k["parent"] = p, u, None
        if emit is None and n > 1:
            finish(n - 1, gamma)  # after order n read p of order n - 1
        elif n > 1:
            K[n - 2] = None  # written: its p is no longer needed either
        del gamma  # order n - 1's backoffs now, or unused (unigrams)
        p_lower = p
    if emit is None:
        finish(N, np.zeros(0))
    else:
        stream(N, np.zeros(0))
    if not keep_u:
        out["u"] = None
    return out
