"""Registry entries of the counting kernels: dense bigram tables and sparse n-gram counts."""

from __future__ import annotations

import numpy as np

from fastgram import counting, reference
from fastgram._jit import even_bounds, num_threads, parallel_chunks
from fastgram.counting import _runs
from fastgram.counting.result import NGramCounts
from fastgram.kernels import peers as _peers
from fastgram.registry.core import Case, KernelCheck, max_difference, register


def bigram_cases(rng: np.random.Generator):
    yield Case("empty", (np.zeros(0, np.uint8),), {"vocab_size": 5})
    yield Case("empty, default V", (np.zeros(0, np.int64),))
    yield Case("one token", (np.array([3], np.uint16),), {"vocab_size": 4})
    yield Case("V = 1", (np.zeros(50, np.int32),))
    yield Case("largest id", (np.array([255, 0, 255, 255], np.uint8),), {"vocab_size": 256})
    for dtype in (np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int64):
        hi = min(200, np.iinfo(dtype).max)
        yield Case(f"random {np.dtype(dtype).name}", (rng.integers(0, hi, 5_000).astype(dtype),))
    swapped = rng.integers(0, 1000, 3_000).astype(">u2")
    yield Case("byte-swapped uint16", (swapped,), {"vocab_size": 1000})
    yield Case("strided view", (rng.integers(0, 50, 4_001).astype(np.int32)[::3],))
    yield Case("large V (partitioned path)", (rng.integers(0, 2048, 20_000).astype(np.uint16),), {"vocab_size": 2048})
    zipf = np.minimum(rng.zipf(1.2, 20_000) - 1, 999).astype(np.uint16)
    yield Case("zipf V = 1000", (zipf,), {"vocab_size": 1000})


def ngram_cases(rng: np.random.Generator):
    for n in (1, 2, 3, 8):
        yield Case(f"n={n} empty", (np.zeros(0, np.uint8), n), {"vocab_size": 4})
        yield Case(f"n={n} length n-1", (np.arange(n - 1, dtype=np.uint8), n), {"vocab_size": 8})
        yield Case(f"n={n} length n", (np.arange(n, dtype=np.uint8), n), {"vocab_size": 8})
    yield Case("V = 1", (np.zeros(50, np.int32), 3))
    yield Case("largest id", (np.array([255, 0, 255, 255, 255], np.uint8), 2), {"vocab_size": 256})
    yield Case("unigrams of 63-bit ids", (np.array([5, 1, 1, 2**62], np.uint64), 1), {"vocab_size": 2**63})
    for n, dtype, V in ((2, np.uint8, 256), (2, np.int16, 3000), (3, np.uint32, 500), (4, np.int64, 40)):
        tokens = rng.integers(0, V, 20_000).astype(dtype)
        yield Case(f"n={n} random {np.dtype(dtype).name}", (tokens, n), {"vocab_size": V})
    yield Case("byte-swapped uint16, n=2", (rng.integers(0, 5000, 5_000).astype(">u2"), 2), {"vocab_size": 5000})
    yield Case("strided view, n=3", (rng.integers(0, 30, 6_001).astype(np.int32)[::3], 3))
    zipf = np.minimum(rng.zipf(1.2, 30_000) - 1, 65535).astype(np.uint16)
    yield Case("zipf V = 65536, n=2", (zipf, 2), {"vocab_size": 65536})
    yield Case("n=8, V = 256 (64-bit keys)", (rng.integers(0, 256, 3_000).astype(np.uint8), 8), {"vocab_size": 256})
    sep = rng.integers(0, 20, 5_000).astype(np.uint8)
    yield Case("separator, n=3", (sep, 3), {"vocab_size": 20, "separator": 0})
    yield Case("min_count=3, n=2", (rng.integers(0, 30, 5_000).astype(np.uint16), 2), {"min_count": 3})
    # keys wider than 64 bits: 2-4 uint64 words per n-gram
    words = np.minimum(rng.zipf(1.3, 20_000) - 1, 10**6 - 1).astype(np.uint32)
    yield Case("wide keys: n=5, V = 10**6 zipf (two words)", (words, 5), {"vocab_size": 10**6})
    yield Case(
        "wide keys: n=4, V = 2**17, separator (two words)",
        (rng.integers(0, 40, 8_000).astype(np.uint32) * 3000, 4),
        {"vocab_size": 2**17, "separator": 0},
    )
    big = rng.integers(0, 2**32, 3_000, dtype=np.uint64)
    big[::5] = 2**32 - 1
    yield Case("wide keys: n=8, V = 2**32 (four words)", (big, 8), {"vocab_size": 2**32})
    few = rng.integers(0, 10**6, 30, dtype=np.uint64)
    yield Case(
        "wide keys spill, n=5, V = 10**6, max_memory=64K",
        (few[rng.integers(0, 30, 40_000)], 5),
        {"vocab_size": 10**6, "max_memory": 1 << 16},
    )
    yield Case(
        "spill, max_memory=64K",
        (rng.integers(0, 400, 40_000).astype(np.uint16), 3),
        {"vocab_size": 400, "max_memory": 1 << 16},
    )


def _compare_ngrams(got, want) -> float:
    return max_difference((got.ngrams, got.counts), want)


def hash_table_ngrams(tokens, n, vocab_size=None) -> NGramCounts:
    """Peer of ``count_ngrams``: the other known approach, per-thread open-addressing hash tables.

    Each thread counts its share of the windows into its own table (doubled whenever it is half
    full), then each table's entries are sorted and the sorted runs merged. Same result as
    ``count_ngrams(tokens, n, vocab_size)``; no separator, ``min_count`` or memory budget.
    Extra memory: ``T`` tables of ``16 * 2**bits`` bytes, ``2**bits`` >= twice the distinct
    n-grams a thread saw (:mod:`fastgram.kernels.peers`).
    """
    tokens = np.asarray(tokens)
    V = int(tokens.max()) + 1 if vocab_size is None and tokens.size else int(vocab_size or 1)
    if V**n >= 2**64:
        raise ValueError(f"vocab_size: the hash-table peer needs vocab_size**n < 2**64, got {V}**{n}")
    if tokens.dtype.byteorder not in "=|":
        tokens = tokens.astype(tokens.dtype.newbyteorder("="))
    T = num_threads()
    windows = max(tokens.shape[0] - n + 1, 0)
    bounds = np.arange(T + 1, dtype=np.int64) * windows // T
    starts, stops = bounds[:-1].copy(), bounds[1:].copy()
    bits = 10
    keys = np.full((T, 1 << bits), _peers.EMPTY, np.uint64)
    counts = np.zeros((T, 1 << bits), np.int64)
    used = np.zeros(T, np.int64)
    while True:
        args = (tokens, n, np.uint64(V), np.uint64(bits), starts, stops, keys, counts, used, 1 << (bits - 1))
        parallel_chunks(_peers.hash_count_windows, even_bounds(T, T), args)
        if np.array_equal(starts, stops):
            break
        bits += 1
        old_keys, old_counts = keys, counts
        keys = np.full((T, 1 << bits), _peers.EMPTY, np.uint64)
        counts = np.zeros((T, 1 << bits), np.int64)
        parallel_chunks(_peers.rehash_tables, even_bounds(T, T), (old_keys, old_counts, np.uint64(bits), keys, counts))
        del old_keys, old_counts
    runs = []
    for t in range(T):
        full = keys[t] != _peers.EMPTY
        k, c = keys[t][full], counts[t][full]
        order = np.argsort(k)
        runs.append((k[order], c[order]))
    del keys, counts
    return NGramCounts(*_runs.merge_all(runs), n, V, tokens=int(tokens.shape[0]))


register(
    KernelCheck("count_bigrams", "counting", counting.count_bigrams, reference.count_bigrams, bigram_cases, peers={})
)
register(
    KernelCheck(
        "count_ngrams",
        "counting",
        counting.count_ngrams,
        reference.count_ngrams,
        ngram_cases,
        compare=_compare_ngrams,
        peers={"hash table": hash_table_ngrams},
    )
)
