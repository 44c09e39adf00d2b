"""Kernels of the other known approach to sparse n-gram counting, timed beside fastgram's.

The library does not use them: the registry (:mod:`fastgram.registry.cases_counting`)
registers them as the ``"hash table"`` peer of ``count_ngrams``, so the benchmarks measure
fastgram's partition-and-sort counter against per-thread open-addressing hash tables.

Thread ``t`` of ``T`` counts the windows ``[starts[t], stops[t])`` into its own table
``keys[t], counts[t]`` (linear probing, ``2**bits`` slots, ``EMPTY`` marks a free slot). It
stops when its table holds ``limit`` keys (half full), leaving ``starts[t]`` at the first
window not yet counted; the wrapper doubles every table (:func:`rehash_tables`) and calls
again. Keys are packed as in :mod:`fastgram.kernels.ngrams` (``V**n < 2**64``, so no key
equals ``EMPTY``).
"""

from __future__ import annotations

import numpy as np

from fastgram._jit import kernel

EMPTY = np.uint64(0xFFFFFFFFFFFFFFFF)


@kernel
def hash_count_windows(w_lo, w_hi, tokens, n, V, bits, starts, stops, keys, counts, used, limit):  # pragma: no cover
    # tokens (N,) -> per-thread tables keys, counts (T, 2**bits) of threads w_lo <= t < w_hi;
    # starts, used (T,) updated
    mask = (np.uint64(1) << bits) - np.uint64(1)
    down = np.uint64(64) - bits
    empty = np.uint64(0xFFFFFFFFFFFFFFFF)
    for t in range(w_lo, w_hi):
        i = starts[t]
        while i < stops[t] and used[t] < limit:
            key = np.uint64(0)
            for j in range(n):
                key = key * V + np.uint64(tokens[i + j])
            h = (key * np.uint64(0x9E3779B97F4A7C15)) >> down
            while True:
                k = keys[t, h]
                if k == key:
                    counts[t, h] += 1
                    break
                if k == empty:
                    keys[t, h] = key
                    counts[t, h] = 1
                    used[t] += 1
                    break
                h = (h + np.uint64(1)) & mask
            i += 1
        starts[t] = i


@kernel
def rehash_tables(w_lo, w_hi, old_keys, old_counts, bits, keys, counts):  # pragma: no cover - jitted
    # old tables (T, C) -> tables keys, counts (T, 2**bits) holding the same entries, w_lo <= t < w_hi
    mask = (np.uint64(1) << bits) - np.uint64(1)
    down = np.uint64(64) - bits
    empty = np.uint64(0xFFFFFFFFFFFFFFFF)
    for t in range(w_lo, w_hi):
        for s in range(old_keys.shape[1]):
            key = old_keys[t, s]
            if key == empty:
                continue
            h = (key * np.uint64(0x9E3779B97F4A7C15)) >> down
            while keys[t, h] != empty:
                h = (h + np.uint64(1)) & mask
            keys[t, h] = key
            counts[t, h] = old_counts[t, s]
