"""Sparse n-gram counting: count_ngrams beside the packed-keys + np.unique reference.

Cases (10**8 tokens at full scale; tiny under ``FASTGRAM_BENCH_SCALE=smoke``):

- bigrams, uint16, V = 65536, uniform and Zipf-like (s = 1.1);
- trigrams, uint16, V = 4096, uniform and Zipf-like;
- beside the Zipf cases, the other known approach: per-thread open-addressing hash tables,
  then sorting each table's entries (role "hash table": the registry's peer of
  ``count_ngrams``, ``fastgram.registry.cases_counting.hash_table_ngrams``);
- a spill-and-merge run: uniform bigrams, V = 65536, ``max_memory=256M`` (far below the
  ~1.6 GB of distinct bigrams), ``min_count=2``;
- wide keys against the one-word path, 2 * 10**7 Zipf-like tokens (s = 1.1), 5-grams: word-like
  ids (uint32, V = 10**6: 100-bit keys, two uint64 words) beside V = 4096 (uint16, 60-bit keys,
  one word); ``extra_info`` carries ``ngrams`` and the best time per n-gram
  (``ns_per_ngram_min``), and the two-word case must stay within 2x the one-word case's;
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

import numpy as np
import pytest
from conftest import (
    CAN_MEASURE_PEAK,
    SMOKE,
    check_result,
    implementation,
    measure,
    peak_extra_mib,
    roles,
    size,
    time_compile,
    zipf_tokens,
)

from fastgram import count_ngrams
from fastgram.kernels import ngrams as kernels
from fastgram.registry import REGISTRY

N_TOKENS = size(10**8, 20_000)
SEED = 20261124

CASES = {
    # name: (n, V, zipf?)
    "bigrams uint16 V=65536 uniform": (2, 65536, False),
    "bigrams uint16 V=65536 zipf": (2, 65536, True),
    "trigrams uint16 V=4096 uniform": (3, 4096, False),
    "trigrams uint16 V=4096 zipf": (3, 4096, True),
}
#: Wide keys beside the one-word path (name: (n, V, dtype)), on Zipf-like tokens.
WIDE_TOKENS = size(2 * 10**7, 20_000)
WIDE_CASES = {
    "5-grams uint32 V=10^6 zipf, two-word keys": (5, 10**6, np.uint32),
    "5-grams uint16 V=4096 zipf, one-word keys": (5, 4096, np.uint16),
}
SPILL = "spill bigrams uint16 V=65536 max_memory=256M min_count=2"
SPILL_MEMORY = "256M" if not SMOKE else "64K"


def _tokens(V: int, zipf: bool) -> np.ndarray:
    rng = np.random.default_rng([SEED, V, int(zipf)])
    if zipf:
        return zipf_tokens(rng, N_TOKENS, V, np.uint16)
    return rng.integers(0, V, N_TOKENS, dtype=np.uint16)


def _wide_tokens(V: int, dtype) -> np.ndarray:
    return zipf_tokens(np.random.default_rng([SEED, V, 2]), WIDE_TOKENS, V, dtype)


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


def _setup_code(V: int, zipf: bool, n: int, tokens: str | None = None) -> str:
    here = str(__import__("pathlib").Path(__file__).parent)
    return "\n".join(
        [
            "import sys",
            "import numpy as np",
            f"sys.path.insert(0, {here!r})",
            "from test_ngrams import _tokens, _wide_tokens, kernel_ngrams",
            "from fastgram import reference",
            f"tokens = {tokens or f'_tokens({V}, {zipf})'}",
            f"_ = kernel_ngrams(tokens[:100_000], {n}, {V})",
        ]
    )


def _extra(n, V, zipf, call: str, tokens: str | None = None, count: int = N_TOKENS) -> dict:
    extra = {"tokens": count, "n": n, "vocab_size": V, "data": "zipf s=1.1" if zipf else "uniform"}
    if not SMOKE and CAN_MEASURE_PEAK:
        extra["extra_peak_mib"] = peak_extra_mib(_setup_code(V, zipf, n, tokens), call)
        extra["peak_method"] = "VmHWM growth over VmRSS during the call (clear_refs reset), fresh interpreter"
    return extra


def _roles(case: str) -> list[str]:
    """Kernel and reference everywhere; the hash table only beside the Zipf cases (its tables
    for 10**8 uniform n-grams would not fit)."""
    return [r for r in roles("count_ngrams") if r in ("kernel", "reference") or CASES[case][2]]


def decoded(fn):
    """``fn``'s NGramCounts with ``.ngrams`` decoded inside the timing, as the reference returns them."""

    def run(*args, **options):
        result = fn(*args, **options)
        result.ngrams  # noqa: B018  (decoding is part of the work)
        return result

    return run


@pytest.mark.parametrize("case,role", [(c, r) for c in CASES for r in _roles(c)])
def test_count_ngrams(benchmark, streams, case, role):
    n, V, zipf = CASES[case]
    tokens = streams(V, zipf)
    group = f"count_ngrams {case}"
    call = {"kernel": f"kernel_ngrams(tokens, {n}, {V})", "reference": f"reference.count_ngrams(tokens, {n}, {V})"}
    extra = _extra(n, V, zipf, call[role]) if role in call else {"tokens": N_TOKENS, "n": n, "vocab_size": V}
    fn = implementation("count_ngrams", role)
    if role != "reference":
        fn = decoded(fn)
    rounds = 3 if role == "kernel" else 1
    result = measure(benchmark, fn, tokens, n, V, group=group, role=role, rounds=rounds, **extra)
    if role != "reference":
        benchmark.extra_info["distinct"] = len(result)
        assert result.counts.sum() == N_TOKENS - n + 1
    check_result("count_ngrams", group, role, result, tokens, n, V)


#: Best seconds per n-gram of each wide-comparison case's kernel, for the 2x check.
_PER_NGRAM: dict = {}


@pytest.mark.parametrize("case,role", [(c, r) for c in WIDE_CASES for r in roles("count_ngrams", peers=False)])
def test_wide_keys(benchmark, case, role):
    """Two-word keys (V = 10**6, n = 5) beside the one-word path (V = 4096, n = 5): time per n-gram.

    (The hash-table peer needs one-word keys, so it is not in these groups.)
    """
    n, V, dtype = WIDE_CASES[case]
    tokens = _wide_tokens(V, dtype)
    group = f"count_ngrams {case}"
    source = f"_wide_tokens({V}, np.{np.dtype(dtype).name})"
    call = {"kernel": f"kernel_ngrams(tokens, {n}, {V})", "reference": f"reference.count_ngrams(tokens, {n}, {V})"}
    extra = _extra(n, V, True, call[role], tokens=source, count=WIDE_TOKENS)
    ngrams = WIDE_TOKENS - n + 1
    extra["ngrams"] = ngrams
    fn = implementation("count_ngrams", role)
    if role != "reference":
        fn = decoded(fn)
    result = measure(benchmark, fn, tokens, n, V, group=group, role=role, rounds=3 if role == "kernel" else 1, **extra)
    if benchmark.stats is not None:
        best = benchmark.stats.stats.min / ngrams
        benchmark.extra_info["ns_per_ngram_min"] = round(best * 1e9, 2)
        benchmark.extra_info["ns_per_ngram_max"] = round(benchmark.stats.stats.max / ngrams * 1e9, 2)
        if role == "kernel":
            _PER_NGRAM[case] = best
    if role == "kernel":
        benchmark.extra_info["distinct"] = len(result)
        benchmark.extra_info["key_words"] = result.words
        assert result.words == (2 if V > 4096 else 1)
        assert result.counts.sum() == ngrams
        wide, narrow = (_PER_NGRAM.get(c) for c in WIDE_CASES)
        if wide is not None and narrow is not None and not SMOKE:
            benchmark.extra_info["wide_over_one_word"] = round(wide / narrow, 2)
    check_result("count_ngrams", group, role, result, tokens, n, V)


@pytest.mark.parametrize("role", roles("count_ngrams", peers=False))
def test_spill(benchmark, streams, tmp_path, role):
    tokens = streams(65536, False)
    if role == "kernel":
        options = {"max_memory": SPILL_MEMORY, "min_count": 2, "tmp_dir": str(tmp_path)}
        call = f"kernel_ngrams(tokens, 2, 65536, max_memory={SPILL_MEMORY!r}, min_count=2)"
        fn = decoded(REGISTRY["count_ngrams"].kernel)
    else:
        options = {"min_count": 2}
        call = "reference.count_ngrams(tokens, 2, 65536, min_count=2)"
        fn = REGISTRY["count_ngrams"].reference
    extra = _extra(2, 65536, False, call)
    extra["max_memory"] = SPILL_MEMORY
    result = measure(benchmark, lambda: fn(tokens, 2, 65536, **options), group=SPILL, role=role, rounds=1, **extra)
    if role == "kernel":
        benchmark.extra_info["distinct_kept"] = len(result)
        assert list(tmp_path.iterdir()) == []  # the spilled runs are gone
    check_result("count_ngrams", SPILL, role, result, tokens, 2, 65536, min_count=2)


@pytest.mark.parametrize("how", ["cached", "cold"])
def test_compile_time(benchmark, how):
    tokens = np.arange(1000, dtype=np.uint16) % 300
    hist = np.zeros((1, 4), np.int64)
    args = (0, 1, tokens, 2, np.uint64(300), np.uint64(300), np.uint64(15), hist, np.empty(0, np.uint32), False)
    time_compile(benchmark, kernels.partition_ngrams, args, how)
