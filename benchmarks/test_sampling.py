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

import numba
import numpy as np
import pytest
from conftest import measure, optional_import, size, time_compile

from fastgram import count_ngrams, reference
from fastgram.counting import NGramCounts
from fastgram.kernels import sampling as kernels
from fastgram.sampling import Sampler, generate, sample_logits, sample_next

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


def _torch():
    torch = optional_import("torch")
    torch.set_num_threads(numba.get_num_threads())
    return torch


GROUP_NEXT = f"sample_next {V_TABLE}x{V_TABLE} table, {N_DRAWS:,} draws"


def test_sample_next_kernel(benchmark, table, current):
    sampler = Sampler(table)
    out = measure(
        benchmark, partial(sample_next, seed=SEED), sampler, current, group=GROUP_NEXT, role="kernel", draws=N_DRAWS
    )
    assert out.shape == current.shape


def test_sample_next_reference(benchmark, table, current):
    want = measure(
        benchmark,
        partial(reference.sample_next, seed=SEED),
        table,
        current,
        group=GROUP_NEXT,
        role="reference",
        draws=N_DRAWS,
    )
    np.testing.assert_array_equal(want, sample_next(Sampler(table), current, seed=SEED))


GROUP_SPARSE = f"sample_next {V_TABLE}x{V_TABLE} counts in sparse rows, {N_DRAWS:,} draws"


def _sparse_counts(table):
    flat = table.ravel()
    keys = np.flatnonzero(flat)  # a * V + b, increasing
    return NGramCounts(keys.astype(np.uint64), flat[keys], 2, table.shape[1])


def test_sample_next_sparse_kernel(benchmark, table, current):
    sampler = Sampler(_sparse_counts(table))
    out = measure(
        benchmark, partial(sample_next, seed=SEED), sampler, current, group=GROUP_SPARSE, role="kernel", draws=N_DRAWS
    )
    np.testing.assert_array_equal(out, sample_next(Sampler(table), current, seed=SEED))


def test_sample_next_sparse_vs_dense(benchmark, table, current):
    sampler = Sampler(table)
    measure(
        benchmark,
        partial(sample_next, seed=SEED),
        sampler,
        current,
        group=GROUP_SPARSE,
        role="dense Sampler",
        draws=N_DRAWS,
    )


LARGE_V, LARGE_TOKENS = 50_257, size(10**6, 20_000)
GROUP_LARGE = f"sample_next V={LARGE_V:,} sparse counts ({LARGE_TOKENS:,} tokens), {N_DRAWS:,} draws"


def test_sample_next_large_vocabulary(benchmark, rng):
    tokens = np.minimum(rng.zipf(1.2, LARGE_TOKENS), LARGE_V) - 1
    sampler = Sampler(count_ngrams(tokens, 2, vocab_size=LARGE_V))
    current = tokens[rng.integers(0, LARGE_TOKENS - 1, N_DRAWS)]
    out = measure(
        benchmark, partial(sample_next, seed=SEED), sampler, current, group=GROUP_LARGE, role="kernel", draws=N_DRAWS
    )
    assert out.shape == current.shape and out.min() >= 0


def test_sample_next_torch(benchmark, table, current):
    torch = _torch()
    probs = torch.from_numpy(table / table.sum(axis=1, keepdims=True)).float()
    cur = torch.from_numpy(current)

    def draw(probs, cur):
        order = torch.argsort(cur)
        per_row = torch.bincount(cur, minlength=probs.shape[0]).tolist()
        parts = [torch.multinomial(probs[r], c, replacement=True) for r, c in enumerate(per_row) if c]
        out = torch.empty_like(cur)
        out[order] = torch.cat(parts)
        return out

    out = measure(benchmark, draw, probs, cur, group=GROUP_NEXT, role="torch", draws=N_DRAWS)
    assert out.shape == cur.shape


GROUP_LOGITS = f"sample_logits {LOGIT_ROWS}x{LOGIT_V:,} float32, {LOGIT_DRAWS:,} draws/row"


def _logits_kernel(logits):
    return sample_logits(logits, seed=SEED, num_samples=LOGIT_DRAWS)


def _logits_reference(logits):
    return reference.sample_logits(logits, seed=SEED, num_samples=LOGIT_DRAWS)


def test_sample_logits_kernel(benchmark, logits):
    out = measure(benchmark, _logits_kernel, logits, group=GROUP_LOGITS, role="kernel", draws=LOGIT_ROWS * LOGIT_DRAWS)
    assert out.shape == (LOGIT_ROWS, LOGIT_DRAWS)


def test_sample_logits_reference(benchmark, logits):
    want = measure(
        benchmark, _logits_reference, logits, group=GROUP_LOGITS, role="reference", draws=LOGIT_ROWS * LOGIT_DRAWS
    )
    np.testing.assert_array_equal(want, _logits_kernel(logits))


def test_sample_logits_torch(benchmark, logits):
    torch = _torch()
    x = torch.from_numpy(logits)

    def draw(x):
        return torch.multinomial(torch.softmax(x, dim=-1), LOGIT_DRAWS, replacement=True)

    out = measure(benchmark, draw, x, group=GROUP_LOGITS, role="torch", draws=LOGIT_ROWS * LOGIT_DRAWS)
    assert tuple(out.shape) == (LOGIT_ROWS, LOGIT_DRAWS)


GROUP_GENERATE = f"generate {CHAINS:,} chains x {STEPS:,} tokens, {V_TABLE}x{V_TABLE} table"


def test_generate_kernel(benchmark, table):
    sampler = Sampler(table)
    start = np.arange(CHAINS) % V_TABLE
    out = measure(
        benchmark,
        partial(generate, seed=SEED),
        sampler,
        start,
        STEPS,
        group=GROUP_GENERATE,
        role="kernel",
        tokens=CHAINS * STEPS,
    )
    assert out.shape == (CHAINS, STEPS)


def test_generate_reference(benchmark, table):
    start = np.arange(CHAINS) % V_TABLE
    want = measure(
        benchmark,
        partial(reference.generate, seed=SEED),
        table,
        start,
        STEPS,
        group=GROUP_GENERATE,
        role="reference",
        rounds=1,
        tokens=CHAINS * STEPS,
    )
    np.testing.assert_array_equal(want, generate(Sampler(table), start, STEPS, seed=SEED))


@pytest.mark.parametrize("how", ["cached", "cold"])
def test_compile_time(benchmark, how, table):
    sampler = Sampler(table[:8, :8])
    rows = np.arange(8, dtype=np.int64)
    out = np.empty(8, np.int64)
    args = (*sampler._kernel_args(), rows, np.uint64(1), np.int64(0), out)
    time_compile(benchmark, kernels.sample_rows, args, how)
