"""Sampling: the kernels beside the NumPy reference and ``torch.multinomial`` on the same data.

Cases (full size):

- ``sample_next``: 10^6 draws from a 256 x 256 count table, for random current ids (the
  sampler is built once, outside the timing). Reference: inverse CDF over row-offset running
  sums, one ``searchsorted``. torch: ``torch.multinomial`` once per distinct row, on the
  row-normalised float32 table.
- ``sample_logits``: 64 x 50,257 float32 logits, 15,625 draws per row (10^6 in all), table
  set-up (softmax, running sums) included. torch: ``softmax`` then ``multinomial``.
- ``sample_next`` from sparse rows: the same draws from ``Sampler(NGramCounts)`` (CSR rows of
  the same counts), beside the dense sampler; and 10^6 draws from a V = 50,257 sparse sampler
  (bigrams of 10^6 Zipf-like tokens), whose dense table would take 20 GB.
- ``generate``: 1,024 chains x 1,000 tokens on the 256 x 256 table; the reference is a NumPy
  loop over steps (every chain at once).
- compile time of ``sample_rows``: cold, and loaded from the cache.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
from conftest import check_result, implementation, measure, roles, size, time_compile

from fastgram import count_ngrams
from fastgram.counting import NGramCounts
from fastgram.kernels import sampling as kernels
from fastgram.registry import REGISTRY
from fastgram.sampling import Sampler

V_TABLE = 256
N_DRAWS = size(10**6, 1_000)
LOGIT_ROWS, LOGIT_V, LOGIT_DRAWS = size(64, 4), size(50_257, 1_000), size(15_625, 50)
CHAINS, STEPS = size(1024, 16), size(1000, 20)
SEED = 12345


@pytest.fixture(scope="module")
def table(rng):
    # skewed counts with many zeros, like a character bigram table
    return rng.poisson(rng.gamma(0.3, 50.0, (V_TABLE, V_TABLE))).astype(np.int64) + np.eye(V_TABLE, dtype=np.int64)


@pytest.fixture(scope="module")
def current(rng):
    return rng.integers(0, V_TABLE, N_DRAWS)


@pytest.fixture(scope="module")
def logits(rng):
    return (rng.standard_normal((LOGIT_ROWS, LOGIT_V)) * 3).astype(np.float32)


GROUP_NEXT = f"sample_next {V_TABLE}x{V_TABLE} table, {N_DRAWS:,} draws"


def _on_positive_weight(table, rows, draws) -> None:
    """Every draw is a category of positive weight in its row (a peer's draws differ from ours)."""
    assert draws.shape == np.shape(rows)
    assert draws.min(initial=0) >= 0 and draws.max(initial=0) < table.shape[-1]
    assert np.all(np.asarray(table)[rows, draws] > 0)


@pytest.mark.parametrize("role", roles("sample_next"))
def test_sample_next(benchmark, table, current, role):
    # the kernel draws through a Sampler built once, outside the timing; the others take the table
    first = Sampler(table) if role == "kernel" else table
    fn = partial(implementation("sample_next", role), seed=SEED)
    out = measure(benchmark, fn, first, current, group=GROUP_NEXT, role=role, draws=N_DRAWS)
    if role in ("kernel", "reference"):
        check_result("sample_next", GROUP_NEXT, role, out, table, current, seed=SEED)
    else:
        _on_positive_weight(table, current, out)


GROUP_SPARSE = f"sample_next {V_TABLE}x{V_TABLE} counts in sparse rows, {N_DRAWS:,} draws"


def _sparse_counts(table):
    flat = table.ravel()
    keys = np.flatnonzero(flat)  # a * V + b, increasing
    return NGramCounts(keys.astype(np.uint64), flat[keys], 2, table.shape[1])


@pytest.mark.parametrize("role", ["kernel", "dense Sampler"])
def test_sample_next_sparse(benchmark, table, current, role):
    sampler = Sampler(_sparse_counts(table) if role == "kernel" else table)
    kernel = partial(REGISTRY["sample_next"].kernel, seed=SEED)
    out = measure(benchmark, kernel, sampler, current, group=GROUP_SPARSE, role=role, draws=N_DRAWS)
    check_result("sample_next", GROUP_SPARSE, role, out, table, current, seed=SEED)


LARGE_V, LARGE_TOKENS = 50_257, size(10**6, 20_000)
GROUP_LARGE = f"sample_next V={LARGE_V:,} sparse counts ({LARGE_TOKENS:,} tokens), {N_DRAWS:,} draws"
#: Draws of the large-vocabulary case checked against the reference (its dense table would take
#: 20 GB: the reference draws the first ones from the dense rows of just those current ids).
LARGE_CHECKED = 1_000


def test_sample_next_large_vocabulary(benchmark, rng):
    tokens = np.minimum(rng.zipf(1.2, LARGE_TOKENS), LARGE_V) - 1
    counts = count_ngrams(tokens, 2, vocab_size=LARGE_V)
    sampler = Sampler(counts)
    current = tokens[rng.integers(0, LARGE_TOKENS - 1, N_DRAWS)]
    kernel = partial(REGISTRY["sample_next"].kernel, seed=SEED)
    out = measure(benchmark, kernel, sampler, current, group=GROUP_LARGE, role="kernel", draws=N_DRAWS)
    # a draw depends only on the seed, its position and its row: the rows of the first draws,
    # densely, give the reference the same job
    head = current[:LARGE_CHECKED]
    rows, local = np.unique(head, return_inverse=True)
    dense = np.zeros((rows.size, LARGE_V), np.int64)
    first = counts.ngrams[:, 0]
    for i, r in enumerate(rows):
        lo, hi = np.searchsorted(first, [r, r + 1])
        dense[i, counts.ngrams[lo:hi, 1]] = counts.counts[lo:hi]
    want = REGISTRY["sample_next"].reference(dense, local.reshape(head.shape), seed=SEED)
    np.testing.assert_array_equal(out[:LARGE_CHECKED], want)


GROUP_LOGITS = f"sample_logits {LOGIT_ROWS}x{LOGIT_V:,} float32, {LOGIT_DRAWS:,} draws/row"


@pytest.mark.parametrize("role", roles("sample_logits"))
def test_sample_logits(benchmark, logits, role):
    fn = partial(implementation("sample_logits", role), seed=SEED, num_samples=LOGIT_DRAWS)
    out = measure(benchmark, fn, logits, group=GROUP_LOGITS, role=role, draws=LOGIT_ROWS * LOGIT_DRAWS)
    assert out.shape == (LOGIT_ROWS, LOGIT_DRAWS)
    if role in ("kernel", "reference"):
        check_result("sample_logits", GROUP_LOGITS, role, out, logits, seed=SEED, num_samples=LOGIT_DRAWS)
    else:
        assert out.min() >= 0 and out.max() < LOGIT_V


GROUP_GENERATE = f"generate {CHAINS:,} chains x {STEPS:,} tokens, {V_TABLE}x{V_TABLE} table"


@pytest.mark.parametrize("role", roles("generate"))
def test_generate(benchmark, table, role):
    first = Sampler(table) if role == "kernel" else table
    start = np.arange(CHAINS) % V_TABLE
    fn = partial(implementation("generate", role), seed=SEED)
    rounds = 3 if role == "kernel" else 1
    out = measure(
        benchmark, fn, first, start, STEPS, group=GROUP_GENERATE, role=role, rounds=rounds, tokens=CHAINS * STEPS
    )
    assert out.shape == (CHAINS, STEPS)
    check_result("generate", GROUP_GENERATE, role, out, table, start, STEPS, seed=SEED)


@pytest.mark.parametrize("how", ["cached", "cold"])
def test_compile_time(benchmark, how, table):
    sampler = Sampler(table[:8, :8])
    rows = np.arange(8, dtype=np.int64)
    out = np.empty(8, np.int64)
    bad = np.zeros(1, np.int64)
    args = (0, 1, *sampler._kernel_args(), rows, np.uint64(1), np.int64(0), out, bad)
    time_compile(benchmark, kernels.sample_rows, args, how)
