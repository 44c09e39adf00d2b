"""Dense bigram counting kernels.

Both kernels add the bigram counts of one token stream to a ``(V, V)`` int64 table in place.
They trust their inputs: ``tokens`` is a C-contiguous unsigned integer array whose ids are all
in ``[0, V)`` (checked by :func:`fastgram.counting.count_bigrams`).

Two strategies, chosen by the table size:

- :func:`bigram_counts_private` (small V, table <= :data:`PRIVATE_TABLE_BYTES`): each thread
  counts its slice of the stream into a private table that stays in its L2 cache; the tables
  are then summed. One pass over the stream.
- :func:`bigram_counts_partitioned` (large V): a direct scatter into a table of hundreds of MB
  waits on DRAM for every pair. Instead, the stream is processed in rounds; in each round
  every thread packs its piece of pairs into ``a * V + b`` keys, partitioned by the row block
  of ``a`` (a counting sort on the high bits of ``a``); then each row block, whose slice of the
  table fits in cache, is owned by exactly one thread, which adds the keys of that block from
  every piece. Threads write disjoint rows, so there is no race and no per-thread copy of the
  table.

Counts are integers, so neither the split of the stream nor the number of threads changes the
result.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from fastgram._jit import kernel

#: Largest table counted with per-thread private copies (fits a 1 MiB L2 cache).
PRIVATE_TABLE_BYTES = 1 << 20
#: Pairs below which a call does not start extra threads (a thread launch costs more).
MIN_PAIRS_PER_THREAD = 1 << 16
#: Pairs each thread partitions per round in the partitioned kernel (keys: 4 bytes each). Large pieces
#: mean few rounds, so few thread barriers (each costs a scheduler slice on a busy machine).
PIECE_PAIRS = 1 << 20
#: Target bytes of one row block of the table in the partitioned kernel.
BLOCK_BYTES = 1 << 19


@kernel(parallel=True)
def bigram_counts_private(tokens, vocab_size, counts, max_threads):
    """Add the bigram counts of ``tokens`` to ``counts`` using per-thread private tables.

    Parameters
    ----------
    tokens : (N,) uint8/16/32/64, C-contiguous, ids in [0, V)
    vocab_size : int
        V.
    counts : (V, V) int64, updated in place
    max_threads : int
        ``numba.get_num_threads()`` of the caller (passed in: reading it inside a kernel would
        stop Numba from caching the kernel).

    Notes
    -----
    Time O(N / threads + threads * V^2); extra memory ``threads * V^2 * 8`` bytes.
    """
    n_pairs = tokens.shape[0] - 1
    if n_pairs <= 0:
        return
    V = vocab_size
    n_threads = max(1, min(max_threads, n_pairs // MIN_PAIRS_PER_THREAD))
    per_thread = (n_pairs + n_threads - 1) // n_threads
    local = np.zeros((n_threads, V, V), np.int64)  # (threads, V, V)
    for t in prange(n_threads):
        table = local[t]
        lo = t * per_thread
        hi = min(lo + per_thread, n_pairs)
        for i in range(lo, hi):
            table[tokens[i], tokens[i + 1]] += 1
    # (threads, V, V) -> (V, V): each row is reduced by one thread, in thread order.
    for a in prange(V):
        for t in range(n_threads):
            for b in range(V):
                counts[a, b] += local[t, a, b]


@kernel(parallel=True)
def bigram_counts_partitioned(tokens, vocab_size, block_shift, counts_flat, max_threads):
    """Add the bigram counts of ``tokens`` to a large table, partitioned by row block.

    Parameters
    ----------
    tokens : (N,) uint8/16/32/64, C-contiguous, ids in [0, V)
    vocab_size : int
        V, with ``V * V < 2**32`` (keys are packed into uint32).
    block_shift : int
        Rows per block are ``2**block_shift``; choose it so a block's slice of the table
        (``2**block_shift * V * 8`` bytes) fits in cache.
    counts_flat : (V * V,) int64
        The table, raveled, updated in place.
    max_threads : int
        ``numba.get_num_threads()`` of the caller.

    Notes
    -----
    Time O(N / threads) plus one read of the stream for the row histogram; extra memory
    ``threads * PIECE_PAIRS * 4`` bytes of keys (4 MiB per thread) plus the block offsets.
    """
    n_pairs = tokens.shape[0] - 1
    if n_pairs <= 0:
        return
    V = vocab_size
    n_blocks = ((V - 1) >> block_shift) + 1
    n_threads = max(1, min(max_threads, n_pairs // MIN_PAIRS_PER_THREAD))
    keys = np.empty((n_threads, PIECE_PAIRS), np.uint32)  # (threads, piece): packed a*V+b
    starts = np.zeros((n_threads, n_blocks + 1), np.int64)  # block b of piece t: starts[t, b:b+2]
    cursor = np.empty((n_threads, n_blocks), np.int64)
    owner = np.empty(n_blocks, np.int64)  # thread that adds block b in phase 2
    load = np.empty(n_threads, np.int64)
    round_pairs = n_threads * PIECE_PAIRS
    for round_lo in range(0, n_pairs, round_pairs):
        # Phase 1: each thread partitions its piece of pairs by the row block of the first id.
        for t in prange(n_threads):
            lo = min(round_lo + t * PIECE_PAIRS, n_pairs)
            hi = min(lo + PIECE_PAIRS, n_pairs)
            start = starts[t]
            start[:] = 0
            for i in range(lo, hi):
                start[(tokens[i] >> block_shift) + 1] += 1
            for blk in range(n_blocks):
                start[blk + 1] += start[blk]
                cursor[t, blk] = start[blk]
            piece = keys[t]
            for i in range(lo, hi):
                a = np.uint64(tokens[i])
                blk = tokens[i] >> block_shift
                piece[cursor[t, blk]] = np.uint32(a * np.uint64(V) + np.uint64(tokens[i + 1]))
                cursor[t, blk] += 1
        # Phase 2: each row block is owned by one thread, which adds its keys from every
        # piece. Blocks are dealt largest first to the least-loaded thread, so a skewed
        # (Zipf-like) stream whose first rows hold half the pairs still splits evenly.
        _deal_blocks(starts, owner, load)
        for w in prange(n_threads):
            for blk in range(n_blocks):
                if owner[blk] != w:
                    continue
                for t in range(n_threads):
                    piece = keys[t]
                    for j in range(starts[t, blk], starts[t, blk + 1]):
                        counts_flat[piece[j]] += 1


@kernel
def _deal_blocks(starts, owner, load):
    """Assign each block to a thread, largest block first to the least-loaded thread."""
    n_threads = starts.shape[0]
    n_blocks = starts.shape[1] - 1
    sizes = np.zeros(n_blocks, np.int64)
    for t in range(n_threads):
        for blk in range(n_blocks):
            sizes[blk] += starts[t, blk + 1] - starts[t, blk]
    load[:] = 0
    for blk in np.argsort(-sizes):
        best = 0
        for w in range(1, n_threads):
            if load[w] < load[best]:
                best = w
        owner[blk] = best
        load[best] += sizes[blk]


def block_shift_for(vocab_size: int) -> int:
    """Rows per block (as a power of two) so one block of the table is ~``BLOCK_BYTES``."""
    rows = max(1, BLOCK_BYTES // (8 * max(1, vocab_size)))
    return max(0, rows.bit_length() - 1)
