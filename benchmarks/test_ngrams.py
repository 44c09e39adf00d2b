"""Sparse n-gram counting: count_ngrams beside the packed-keys + np.unique reference.

Cases (10**8 tokens at full scale; tiny under ``FASTGRAM_BENCH_SCALE=smoke``):

- bigrams, uint16, V = 65536, uniform and Zipf-like (s = 1.1);
- trigrams, uint16, V = 4096, uniform and Zipf-like;
- a spill-and-merge run: uniform bigrams, V = 65536, ``max_memory=256M`` (far below the
  ~1.6 GB of distinct bigrams), ``min_count=2``;
- compile time of the kernels, cold and from the cache.

Both sides produce the same thing: the sorted distinct n-grams as an ``(m, n)`` array and
their int64 counts (the kernel's timing includes decoding ``.ngrams``). Peak memory
(``extra_peak_mib``) is the growth of the peak resident set (``ru_maxrss``) of a fresh
interpreter during the call, after the tokens are built and the kernels warmed up: all
allocations, NumPy's and Numba's alike.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SMOKE, fresh_dispatcher, measure, peak_memory_mb, size, zipf_tokens

from fastgram import count_ngrams, reference
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
    return (
        "import sys, numpy as np\n"
        f"sys.path.insert(0, {str(__import__('pathlib').Path(__file__).parent)!r})\n"
        "from test_ngrams import _tokens, kernel_ngrams\n"
        "from fastgram import reference\n"
        f"tokens = _tokens({V}, {zipf})\n"
        f"kernel_ngrams(tokens[:100_000], {n}, {V})"
    )


def _extra(n, V, zipf, call: str) -> dict:
    extra = {"tokens": N_TOKENS, "n": n, "vocab_size": V, "data": "zipf s=1.1" if zipf else "uniform"}
    if not SMOKE:
        extra["extra_peak_mib"] = peak_memory_mb(_setup_code(V, zipf, n), call)
        extra["peak_method"] = "ru_maxrss growth during the call, fresh interpreter"
    return extra


@pytest.mark.parametrize("case", list(CASES))
def test_count_ngrams_kernel(benchmark, streams, case):
    n, V, zipf = CASES[case]
    tokens = streams(V, zipf)
    extra = _extra(n, V, zipf, f"kernel_ngrams(tokens, {n}, {V})")
    ngrams, counts = measure(benchmark, kernel_ngrams, tokens, n, V, group=f"count_ngrams {case}", role="kernel", **extra)
    benchmark.extra_info["distinct"] = len(counts)
    assert counts.sum() == N_TOKENS - n + 1


@pytest.mark.parametrize("case", list(CASES))
def test_count_ngrams_reference(benchmark, streams, case):
    n, V, zipf = CASES[case]
    tokens = streams(V, zipf)
    extra = _extra(n, V, zipf, f"reference.count_ngrams(tokens, {n}, {V})")
    measure(benchmark, reference.count_ngrams, tokens, n, V, group=f"count_ngrams {case}", role="reference", rounds=1, **extra)


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


@pytest.mark.parametrize("how", ["cached", "cold"])
def test_compile_time(benchmark, how):
    tokens = np.arange(1000, dtype=np.uint16) % 300
    hist = np.zeros((1, 4), np.int64)
    args = (tokens, 2, np.uint64(300), np.uint64(300), np.uint64(15), hist, np.empty(0, np.uint32), False)
    kernels.partition_ngrams(*args)  # make sure the cache is warm

    def first_call():
        fresh_dispatcher(kernels.partition_ngrams, cache=how == "cached")(*args)

    benchmark.group = "compile partition_ngrams"
    benchmark.extra_info["role"] = "kernel" if how == "cached" else "cold compile"
    benchmark.pedantic(first_call, rounds=1 if SMOKE else 3, iterations=1)
