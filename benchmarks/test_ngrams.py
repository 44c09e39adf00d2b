"""Sparse n-gram counting: count_ngrams beside the packed-keys + np.unique reference.

Cases (10**8 tokens at full scale; tiny under ``FASTGRAM_BENCH_SCALE=smoke``):

- bigrams, uint16, V = 65536, uniform and Zipf-like (s = 1.1);
- trigrams, uint16, V = 4096, uniform and Zipf-like;
- beside the Zipf cases, the other known approach: per-thread open-addressing hash tables,
  then sorting each table's entries (role "hash table");
- a spill-and-merge run: uniform bigrams, V = 65536, ``max_memory=256M`` (far below the
  ~1.6 GB of distinct bigrams), ``min_count=2``;
- compile time of the kernels, cold and from the cache.

Both sides produce the same thing: the sorted distinct n-grams as an ``(m, n)`` array and
their int64 counts (the kernel's timing includes decoding ``.ngrams``). Peak memory
(``extra_peak_mib``) is measured in a fresh interpreter: after the tokens are built and the
kernels warmed up, the peak resident set is reset (``/proc/self/clear_refs``) and the call's
peak (``VmHWM``) minus the resident set before it is reported: all allocations, NumPy's and
Numba's alike. (``ru_maxrss`` would not do: a child started with vfork/exec inherits its
parent's peak as its own.)
"""

from __future__ import annotations

import numba
import numpy as np
import pytest
from conftest import CAN_MEASURE_PEAK, SMOKE, measure, peak_extra_mib, size, time_compile, zipf_tokens

from fastgram import NGramCounts, count_ngrams, reference
from fastgram._jit import kernel, num_threads, parallel_guard
from fastgram.counting import _runs
from fastgram.kernels import ngrams as kernels

N_TOKENS = size(10**8, 20_000)
SEED = 20261124

CASES = {
    # name: (n, V, zipf?)
    "bigrams uint16 V=65536 uniform": (2, 65536, False),
    "bigrams uint16 V=65536 zipf": (2, 65536, True),
    "trigrams uint16 V=4096 uniform": (3, 4096, False),
    "trigrams uint16 V=4096 zipf": (3, 4096, True),
}
SPILL = "spill bigrams uint16 V=65536 max_memory=256M min_count=2"
SPILL_MEMORY = "256M" if not SMOKE else "64K"


def _tokens(V: int, zipf: bool) -> np.ndarray:
    rng = np.random.default_rng([SEED, V, int(zipf)])
    if zipf:
        return zipf_tokens(rng, N_TOKENS, V, np.uint16)
    return rng.integers(0, V, N_TOKENS, dtype=np.uint16)


@pytest.fixture(scope="module")
def streams():
    cache = {}

    def get(V, zipf):
        if (V, zipf) not in cache:
            cache.clear()  # one 10**8-token stream in memory at a time
            cache[(V, zipf)] = _tokens(V, zipf)
        return cache[(V, zipf)]

    return get


def kernel_ngrams(tokens, n, V, **options):
    """count_ngrams, decoded to the reference's ``(ngrams, counts)``."""
    result = count_ngrams(tokens, n, V, **options)
    return result.ngrams, result.counts


def _setup_code(V: int, zipf: bool, n: int) -> str:
    here = str(__import__("pathlib").Path(__file__).parent)
    return "\n".join(
        [
            "import sys",
            f"sys.path.insert(0, {here!r})",
            "from test_ngrams import _tokens, kernel_ngrams",
            "from fastgram import reference",
            f"tokens = _tokens({V}, {zipf})",
            f"_ = kernel_ngrams(tokens[:100_000], {n}, {V})",
        ]
    )


def _extra(n, V, zipf, call: str) -> dict:
    extra = {"tokens": N_TOKENS, "n": n, "vocab_size": V, "data": "zipf s=1.1" if zipf else "uniform"}
    if not SMOKE and CAN_MEASURE_PEAK:
        extra["extra_peak_mib"] = peak_extra_mib(_setup_code(V, zipf, n), call)
        extra["peak_method"] = "VmHWM growth over VmRSS during the call (clear_refs reset), fresh interpreter"
    return extra


@pytest.mark.parametrize("case", list(CASES))
def test_count_ngrams_kernel(benchmark, streams, case):
    n, V, zipf = CASES[case]
    tokens = streams(V, zipf)
    extra = _extra(n, V, zipf, f"kernel_ngrams(tokens, {n}, {V})")
    ngrams, counts = measure(
        benchmark, kernel_ngrams, tokens, n, V, group=f"count_ngrams {case}", role="kernel", **extra
    )
    benchmark.extra_info["distinct"] = len(counts)
    assert counts.sum() == N_TOKENS - n + 1


@pytest.mark.parametrize("case", list(CASES))
def test_count_ngrams_reference(benchmark, streams, case):
    n, V, zipf = CASES[case]
    tokens = streams(V, zipf)
    extra = _extra(n, V, zipf, f"reference.count_ngrams(tokens, {n}, {V})")
    measure(
        benchmark,
        reference.count_ngrams,
        tokens,
        n,
        V,
        group=f"count_ngrams {case}",
        role="reference",
        rounds=1,
        **extra,
    )


def test_spill_kernel(benchmark, streams, tmp_path):
    tokens = streams(65536, False)
    call = f"kernel_ngrams(tokens, 2, 65536, max_memory={SPILL_MEMORY!r}, min_count=2)"
    extra = _extra(2, 65536, False, call)
    extra["max_memory"] = SPILL_MEMORY

    def spill():
        return kernel_ngrams(tokens, 2, 65536, max_memory=SPILL_MEMORY, min_count=2, tmp_dir=str(tmp_path))

    ngrams, counts = measure(benchmark, spill, group=SPILL, role="kernel", rounds=1, **extra)
    benchmark.extra_info["distinct_kept"] = len(counts)
    assert list(tmp_path.iterdir()) == []  # the spilled runs are gone


def test_spill_reference(benchmark, streams):
    tokens = streams(65536, False)
    extra = _extra(2, 65536, False, "reference.count_ngrams(tokens, 2, 65536, min_count=2)")

    def ref():
        return reference.count_ngrams(tokens, 2, 65536, min_count=2)

    measure(benchmark, ref, group=SPILL, role="reference", rounds=1, **extra)


# -- the other known approach, measured beside: an open-addressing hash table ------------------

_EMPTY = np.uint64(0xFFFFFFFFFFFFFFFF)


@kernel(parallel=True)
def _hash_count(tokens, n, V, cap_bits, keys, counts):  # pragma: no cover - jitted
    # tokens (N,) -> per-thread open-addressing tables keys, counts (T, 2**cap_bits), linear probing
    T = keys.shape[0]
    W = tokens.shape[0] - n + 1
    mask = (np.uint64(1) << cap_bits) - np.uint64(1)
    down = np.uint64(64) - cap_bits
    empty = np.uint64(0xFFFFFFFFFFFFFFFF)
    for t in numba.prange(T):
        for i in range(W * t // T, W * (t + 1) // T):
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
                    break
                h = (h + np.uint64(1)) & mask


def hash_table_ngrams(tokens, n, V, distinct):
    """Per-thread hash tables (sized 2x the known distinct count, which favours them), then
    each table's entries sorted and the tables merged: the same ``(ngrams, counts)``."""

    T = num_threads()
    cap_bits = max(int(2 * distinct - 1).bit_length(), 4)
    keys = np.full((T, 1 << cap_bits), _EMPTY, np.uint64)
    counts = np.zeros((T, 1 << cap_bits), np.int64)
    with parallel_guard():
        _hash_count(tokens, n, np.uint64(V), np.uint64(cap_bits), keys, counts)
    runs = []
    for t in range(T):
        used = keys[t] != _EMPTY
        k, c = keys[t][used], counts[t][used]
        order = np.argsort(k)
        runs.append((k[order], c[order]))
    del keys, counts
    result = NGramCounts(*_runs.merge_all(runs), n, V)
    return result.ngrams, result.counts


@pytest.mark.parametrize("case", [c for c in CASES if CASES[c][2]])
def test_count_ngrams_hash_table(benchmark, streams, case):
    n, V, zipf = CASES[case]
    tokens = streams(V, zipf)
    distinct = len(count_ngrams(tokens, n, V))
    extra = {
        "tokens": N_TOKENS,
        "n": n,
        "vocab_size": V,
        "table_bytes_per_thread": 16 << int(2 * distinct - 1).bit_length(),
    }
    ngrams, counts = measure(
        benchmark,
        hash_table_ngrams,
        tokens,
        n,
        V,
        distinct,
        group=f"count_ngrams {case}",
        role="hash table",
        rounds=1,
        **extra,
    )
    assert counts.sum() == N_TOKENS - n + 1


@pytest.mark.parametrize("how", ["cached", "cold"])
def test_compile_time(benchmark, how):
    tokens = np.arange(1000, dtype=np.uint16) % 300
    hist = np.zeros((1, 4), np.int64)
    args = (tokens, 2, np.uint64(300), np.uint64(300), np.uint64(15), hist, np.empty(0, np.uint32), False)
    time_compile(benchmark, kernels.partition_ngrams, args, how)
