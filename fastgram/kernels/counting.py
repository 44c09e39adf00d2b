"""Dense bigram counting kernels.

Both strategies add the bigram counts of one token stream to a ``(V, V)`` int64 table in
place. Each is a serial driver that deals serial kernels to threads with
:func:`fastgram._jit.parallel_chunks` (so each kernel's machine code is compiled once). They
trust their inputs: ``tokens`` is a C-contiguous unsigned integer array whose ids are all
in ``[0, V)`` (checked by :func:`fastgram.counting.count_bigrams`).

Two strategies, chosen by the table size:

- :func:`bigram_counts_private` (small V, table <= :data:`PRIVATE_TABLE_BYTES`): each thread
  counts its slice of the stream into a private table that stays in its L2 cache; the tables
  are then summed. One pass over the stream.
- :func:`bigram_counts_partitioned` (large V): a direct scatter into a table of hundreds of MB
  waits on DRAM for every pair. Instead, the stream is processed in rounds of about ``V * V``
  pairs. In each round every thread packs its piece of pairs into 16-bit keys
  ``(a mod rows) * V + b``, partitioned by the row block ``a // rows`` (a counting sort on the
  high bits of ``a``; a block holds ``rows * V <= 65,536`` entries). Then each row block is
  owned by exactly one thread, which counts the block's keys from every piece into a private,
  cache-resident uint32 histogram and adds it to the block's rows of the table in one
  sequential sweep (or, for a block with few keys, adds them directly). Threads write
  disjoint rows, so there is no race and no per-thread copy of the table.

Counts are integers, so neither the split of the stream nor the number of threads changes the
result.
"""

from __future__ import annotations

import numpy as np

from fastgram._jit import even_bounds, kernel, parallel_chunks

#: Largest table counted with per-thread private copies (fits a 1 MiB L2 cache).
PRIVATE_TABLE_BYTES = 1 << 20
#: Pairs below which a call does not start extra threads (a thread launch costs more).
MIN_PAIRS_PER_THREAD = 1 << 16
#: Entries of one row block in the partitioned kernel: its keys fit in 16 bits, and its
#: uint32 histogram (256 KiB) and table slice (512 KiB) fit in a 1 MiB L2 cache together.
BLOCK_ENTRIES = 1 << 16
#: Bounds on the pairs of one round of the partitioned kernel (keys: 2 bytes each). A table
#: entry must see a key or more per round for the block sweeps to pay, so rounds aim at
#: ``V * V`` pairs (at most 128 MiB of keys).
MIN_ROUND_PAIRS = 1 << 20
MAX_ROUND_PAIRS = 1 << 26


def bigram_counts_private(tokens, vocab_size, counts, max_threads):
    """Add the bigram counts of ``tokens`` to ``counts`` using per-thread private tables.

    Parameters
    ----------
    tokens : (N,) uint8/16/32/64, C-contiguous, ids in [0, V)
    vocab_size : int
        V.
    counts : (V, V) int64, updated in place
    max_threads : int
        ``numba.get_num_threads()`` of the caller.

    Notes
    -----
    Time O(N / threads + threads * V^2); extra memory ``threads * V^2 * 8`` bytes. Deals
    :func:`count_pieces_private` (one piece of the stream per thread) and then
    :func:`reduce_private` (rows of the table) to threads.
    """
    n_pairs = tokens.shape[0] - 1
    if n_pairs <= 0:
        return
    V = vocab_size
    n_threads = max(1, min(max_threads, n_pairs // MIN_PAIRS_PER_THREAD))
    per_thread = (n_pairs + n_threads - 1) // n_threads
    local = np.zeros((n_threads, V * V), np.int64)  # (threads, V*V): private tables
    parallel_chunks(count_pieces_private, even_bounds(n_threads, n_threads), (tokens, V, per_thread, local))
    parallel_chunks(reduce_private, even_bounds(V, n_threads), (local, counts))


@kernel
def count_pieces_private(w_lo, w_hi, tokens, vocab_size, per_thread, local):
    """Pieces ``w_lo <= t < w_hi`` of the stream (``per_thread`` pairs each) into their private
    tables ``local[t]`` ((threads, V * V) int64)."""
    n_pairs = tokens.shape[0] - 1
    for t in range(w_lo, w_hi):
        table = local[t]
        a = t * per_thread
        b = min(a + per_thread, n_pairs)
        if a >= b:
            continue
        # Unsigned indices: with signed ones Numba adds a negative-index fix-up to every
        # access, which doubles the time of this loop.
        width = np.uint64(vocab_size)
        prev = np.uint64(tokens[np.uint64(a)])
        for i in range(np.uint64(a) + np.uint64(1), np.uint64(b) + np.uint64(1)):
            cur = np.uint64(tokens[i])  # the previous id stays in a register
            table[prev * width + cur] += 1
            prev = cur


@kernel
def reduce_private(w_lo, w_hi, local, counts):
    """(threads, V*V) -> (V, V): rows ``w_lo <= a < w_hi`` of ``counts`` get every private table's
    row ``a``, in thread order."""
    V = counts.shape[0]
    for a in range(w_lo, w_hi):
        for t in range(local.shape[0]):
            for b in range(V):
                counts[a, b] += local[t, a * V + b]


def bigram_counts_partitioned(tokens, vocab_size, block_shift, counts_flat, max_threads, round_pairs):
    """Add the bigram counts of ``tokens`` to a large table, partitioned by row block.

    Parameters
    ----------
    tokens : (N,) uint8/16/32/64, C-contiguous, ids in [0, V)
    vocab_size : int
        V, at most 65,536.
    block_shift : int
        Rows per block are ``2**block_shift``, with ``2**block_shift * V <= BLOCK_ENTRIES``
        (see :func:`block_shift_for`).
    counts_flat : (V * V,) int64
        The table, raveled, updated in place.
    max_threads : int
        ``numba.get_num_threads()`` of the caller.
    round_pairs : int
        Pairs per round (see :func:`round_pairs_for`).

    Notes
    -----
    Time O(N / threads + rounds * V^2 / threads). Extra memory: ``2 * round_pairs`` bytes of
    keys (a quarter of the table's size at most) and a 256 KiB histogram per thread. Each round
    deals :func:`partition_pieces` (one piece per thread) and then :func:`add_blocks` (the row
    blocks each thread owns) to threads.
    """
    n_pairs = tokens.shape[0] - 1
    if n_pairs <= 0:
        return
    V = vocab_size
    rows = 1 << block_shift
    block_entries = rows * V
    n_blocks = ((V - 1) >> block_shift) + 1
    n_threads = max(1, min(max_threads, n_pairs // MIN_PAIRS_PER_THREAD))
    piece_pairs = min((round_pairs + n_threads - 1) // n_threads, (n_pairs + n_threads - 1) // n_threads)
    # Each thread's piece is two halves partitioned side by side in one loop: a hot block's
    # counter then alternates between two arrays, which halves the store-to-load stalls that
    # a skewed stream causes on it.
    n_halves = 2 * n_threads
    half_pairs = (piece_pairs + 1) // 2
    keys = np.empty((n_halves, half_pairs), np.uint16)  # (halves, pairs): (a mod rows) * V + b
    starts = np.zeros((n_halves, n_blocks + 1), np.int64)  # block b of half h: starts[h, b:b+2]
    cursor = np.empty((n_halves, n_blocks), np.int64)
    owner = np.empty(n_blocks, np.int64)  # thread that adds block b in phase 2
    load = np.empty(n_threads, np.int64)
    local = np.zeros((n_threads, block_entries), np.uint32)  # (threads, block): histograms
    threads = even_bounds(n_threads, n_threads)
    for round_lo in range(0, n_pairs, n_threads * piece_pairs):
        # Phase 1: each thread partitions its piece of pairs by the row block of the first id.
        args = (tokens, V, block_shift, round_lo, piece_pairs, half_pairs, starts, cursor, keys)
        parallel_chunks(partition_pieces, threads, args)
        # Phase 2: each row block is owned by one thread, which adds its keys from every
        # piece. Blocks are dealt largest first to the least-loaded thread, so a skewed
        # (Zipf-like) stream whose first rows hold half the pairs still splits evenly.
        _deal_blocks(starts, owner, load)
        parallel_chunks(add_blocks, threads, (owner, starts, keys, block_entries, local, counts_flat))


@kernel
def partition_pieces(
    w_lo, w_hi, tokens, vocab_size, block_shift, round_lo, piece_pairs, half_pairs, starts, cursor, keys
):
    """Phase 1 of :func:`bigram_counts_partitioned` for the pieces of threads ``w_lo <= t < w_hi``:
    the round's pairs of piece ``t`` as 16-bit keys in ``keys[2 t]`` and ``keys[2 t + 1]``
    (one half each), sorted by row block; ``starts[2 t + h]`` gets each block's offsets."""
    n_pairs = tokens.shape[0] - 1
    n_blocks = starts.shape[1] - 1
    row_mask = (1 << block_shift) - 1
    for t in range(w_lo, w_hi):
        a = min(round_lo + t * piece_pairs, n_pairs)
        z = min(a + piece_pairs, n_pairs)
        mid = min(a + half_pairs, z)
        # Unsigned indices throughout: Numba adds a negative-index fix-up to signed ones.
        a_lo, b_lo = np.uint64(a), np.uint64(mid)
        both = np.uint64(z - mid)  # pairs in the second half (the first may have one more)
        a_hi = np.uint64(mid)
        one = np.uint64(1)
        start_a, start_b = starts[2 * t], starts[2 * t + 1]
        start_a[:] = 0
        start_b[:] = 0
        for i in range(both):
            start_a[np.uint64(tokens[a_lo + i] >> block_shift) + one] += 1
            start_b[np.uint64(tokens[b_lo + i] >> block_shift) + one] += 1
        for i in range(a_lo + both, a_hi):
            start_a[np.uint64(tokens[i] >> block_shift) + one] += 1
        cur_a, cur_b = cursor[2 * t], cursor[2 * t + 1]
        for blk in range(n_blocks):
            start_a[blk + 1] += start_a[blk]
            start_b[blk + 1] += start_b[blk]
            cur_a[blk] = start_a[blk]
            cur_b[blk] = start_b[blk]
        keys_a, keys_b = keys[2 * t], keys[2 * t + 1]
        width = np.uint32(vocab_size)
        for i in range(both):
            x = tokens[a_lo + i]
            blk = np.uint64(x >> block_shift)
            keys_a[np.uint64(cur_a[blk])] = np.uint16(
                np.uint32(x & row_mask) * width + np.uint32(tokens[a_lo + i + one])
            )
            cur_a[blk] += 1
            y = tokens[b_lo + i]
            blk = np.uint64(y >> block_shift)
            keys_b[np.uint64(cur_b[blk])] = np.uint16(
                np.uint32(y & row_mask) * width + np.uint32(tokens[b_lo + i + one])
            )
            cur_b[blk] += 1
        for i in range(a_lo + both, a_hi):
            x = tokens[i]
            blk = np.uint64(x >> block_shift)
            keys_a[np.uint64(cur_a[blk])] = np.uint16(np.uint32(x & row_mask) * width + np.uint32(tokens[i + one]))
            cur_a[blk] += 1


@kernel
def add_blocks(w_lo, w_hi, owner, starts, keys, block_entries, local, counts_flat):
    """Phase 2 of :func:`bigram_counts_partitioned` for threads ``w_lo <= w < w_hi``: the keys of
    every row block that ``w`` owns, from every piece, added to the table (through the
    cache-resident histogram ``local[w]`` when the block has many)."""
    n_blocks = owner.shape[0]
    n_halves = starts.shape[0]
    n_entries = counts_flat.shape[0]
    for w in range(w_lo, w_hi):
        hist = local[w]
        for blk in range(n_blocks):
            if owner[blk] != w:
                continue
            base = blk * block_entries
            size = min(block_entries, n_entries - base)
            n_keys = 0
            for t in range(n_halves):
                n_keys += starts[t, blk + 1] - starts[t, blk]
            ubase = np.uint64(base)
            if n_keys * 8 < size:  # few keys: add them straight to the table
                for t in range(n_halves):
                    piece = keys[t]
                    for j in range(np.uint64(starts[t, blk]), np.uint64(starts[t, blk + 1])):
                        counts_flat[ubase + np.uint64(piece[j])] += 1
                continue
            for t in range(n_halves):  # many keys: count in cache, then one sweep
                piece = keys[t]
                for j in range(np.uint64(starts[t, blk]), np.uint64(starts[t, blk + 1])):
                    hist[np.uint64(piece[j])] += 1
            for e in range(np.uint64(size)):
                counts_flat[ubase + e] += hist[e]
                hist[e] = 0


@kernel
def _deal_blocks(starts, owner, load):
    """Assign each block to a thread, largest block first to the least-loaded thread.

    ``starts`` (pieces, blocks + 1) holds each piece's block offsets; ``load`` (threads,)
    sets the number of threads; ``owner`` (blocks,) receives the assignment.
    """
    n_threads = load.shape[0]
    n_blocks = starts.shape[1] - 1
    sizes = np.zeros(n_blocks, np.int64)
    for t in range(starts.shape[0]):
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
    """Rows per block, as a power of two, so one block holds at most ``BLOCK_ENTRIES`` entries."""
    rows = max(1, BLOCK_ENTRIES // max(1, vocab_size))
    return rows.bit_length() - 1


def round_pairs_for(vocab_size: int) -> int:
    """Pairs per round of the partitioned kernel: about ``V * V``, within the bounds above."""
    return int(min(MAX_ROUND_PAIRS, max(MIN_ROUND_PAIRS, vocab_size * vocab_size)))
