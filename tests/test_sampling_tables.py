"""Sampler and bigram_probs: dense and sparse tables, extreme weights, byte order, errors."""

from __future__ import annotations

import numpy as np
import pytest
from _sampling import counts_table

from fastgram import count_ngrams, reference
from fastgram.counting import NGramCounts
from fastgram.kernels import sampling as _k
from fastgram.sampling import Sampler, bigram_probs, generate, sample_next

COUNTS = np.array([[1, 2, 0], [0, 0, 0], [3, 0, 1]])


def test_bigram_probs():
    counts = np.array([[3, 1, 0], [0, 0, 0], [1, 1, 2]])
    p = bigram_probs(counts)
    assert p.dtype == np.float64 and np.allclose(p.sum(axis=1), 1.0)
    assert np.allclose(p[0], [4 / 7, 2 / 7, 1 / 7])
    raw = bigram_probs(counts, smoothing=0)
    assert np.array_equal(raw[1], [0.0, 0.0, 0.0])  # no counts, no smoothing: all zero
    assert np.allclose(raw[2], [0.25, 0.25, 0.5])


def test_sampler_attributes_and_temperature(rng):
    counts = counts_table(rng, 5, 8)
    s = Sampler(counts)
    assert s.exact and s.shape == (5, 8) and s.vocab_size == 8 and "exact counts" in repr(s)
    assert s.tempered(1.0) is s
    greedy = s.tempered(0.0)
    assert np.array_equal(sample_next(greedy, np.arange(5), seed=1), np.argmax(counts, axis=1))
    assert not Sampler(counts.astype(float)).exact


def test_reference_scales_huge_rows_as_the_kernels_do():
    assert reference.sampling.BIG_WEIGHT == _k.BIG_WEIGHT == 2.0**960
    assert reference.sampling.SHRINK == _k.SHRINK == 2.0**-64


def test_bigram_probs_of_huge_counts_scales_before_summing():
    assert np.array_equal(bigram_probs([[1e308, 1e308]], smoothing=0), [[0.5, 0.5]])
    p = bigram_probs(np.array([[1.7e308, 1.7e308, 0.0], [1.0, 3.0, 0.0]]), smoothing=0)
    np.testing.assert_array_equal(p, [[0.5, 0.5, 0.0], [0.25, 0.75, 0.0]])  # ordinary rows: unchanged bits
    assert np.array_equal(bigram_probs(np.array([[5e-324, 0.0]]), smoothing=0), [[1.0, 0.0]])
    # a count plus the smoothing past the float range: scaled before the addition
    big = np.finfo(np.float64).max
    p = bigram_probs(np.array([[3.7e307], [6e16], [1e-145]]), smoothing=big)
    np.testing.assert_array_equal(p, [[1.0], [1.0], [1.0]])
    p = bigram_probs(np.array([[1e308, 1e308, 0.0], [1.0, 2.0, 3.0]]), smoothing=1e308)
    np.testing.assert_allclose(p, [[0.4, 0.4, 0.2], [1 / 3, 1 / 3, 1 / 3]], rtol=1e-15)
    ordinary = np.array([[1.0, 3.0, 0.0]])
    np.testing.assert_array_equal(bigram_probs(ordinary, smoothing=1.0), (ordinary + 1) / 7)  # unchanged bits


def test_byte_swapped_float_tables_are_accepted(rng):
    probs = rng.random((6, 6))
    for dtype in (">f8", ">f4"):
        swapped = probs.astype(dtype)
        native = swapped.astype(swapped.dtype.newbyteorder("="))
        np.testing.assert_array_equal(bigram_probs(swapped), bigram_probs(native))
        current = rng.integers(0, 6, 500)
        np.testing.assert_array_equal(
            sample_next(Sampler(swapped), current, seed=1), sample_next(native, current, seed=1)
        )


def test_sampler_accepts_huge_float_rows():
    row = np.array([[1e308, 0.0, 1.7e308, 5e-324]])
    draws = sample_next(row, np.zeros(5_000, np.int64), seed=3)
    assert set(np.unique(draws)) == {0, 2}
    np.testing.assert_array_equal(draws, reference.sample_next(row, np.zeros(5_000, np.int64), seed=3))


def _sparse(rng, V=40, n_tokens=3_000):
    tokens = rng.integers(0, V, n_tokens)
    tokens[tokens == 5] = 4  # token 5 never occurs: an empty row
    return count_ngrams(tokens, 2, vocab_size=V)


def test_sparse_counts_give_the_dense_probabilities(rng):
    c = _sparse(rng)
    dense = c.to_dense()
    for k in (0.0, 1.0, 0.25):
        np.testing.assert_array_equal(bigram_probs(c, smoothing=k), bigram_probs(dense, smoothing=k))


@pytest.mark.parametrize("temperature", [1.0, 0.0, 0.6, 2.5])
def test_sparse_sampler_draws_what_the_dense_one_draws(rng, temperature):
    c = _sparse(rng)
    dense = Sampler(c.to_dense()).tempered(temperature)
    sparse = Sampler(c).tempered(temperature)
    assert sparse.sparse and not dense.sparse and sparse.shape == dense.shape == (40, 40)
    np.testing.assert_array_equal(sparse.totals, dense.totals)
    current = rng.integers(0, 40, 4_000)
    current[current == 5] = 6
    np.testing.assert_array_equal(sample_next(sparse, current, seed=4), sample_next(dense, current, seed=4))
    start = rng.integers(0, 40, 50)
    start[start == 5] = 6
    np.testing.assert_array_equal(generate(sparse, start, 40, seed=5), generate(dense, start, 40, seed=5))
    if temperature == 1.0:
        want = reference.sample_next(c.to_dense(), current, seed=4)
        np.testing.assert_array_equal(sample_next(c, current, seed=4), want)


def test_sparse_sampler_skips_zero_counts_and_large_totals():
    V = 4
    keys = np.array([0 * V + 1, 0 * V + 3, 2 * V + 2], np.uint64)
    c = NGramCounts(keys, np.array([2**62, 2**62 - 1, 7]), 2, V)
    current = np.array([0, 2, 0, 2] * 500)
    got = sample_next(Sampler(c), current, seed=6)
    np.testing.assert_array_equal(got, sample_next(c.to_dense(), current, seed=6))
    assert set(got[0::2]) == {1, 3} and set(got[1::2]) == {2}


def test_sparse_sampler_for_a_large_vocabulary(rng):
    """V = 50,257: the dense table (20 GB) is never built; draws match the reference row by row."""
    V = 50_257
    tokens = rng.integers(0, V, 200_000)
    tokens[::7] = 17  # token 17 is frequent, with many followers
    c = count_ngrams(tokens, 2, vocab_size=V)
    s = Sampler(c)
    assert s.sparse and s.shape == (V, V) and "sparse" in repr(s)
    rows = np.array([17, int(tokens[1]), int(tokens[2])])
    current = rows[np.arange(3_000) % 3]
    got = sample_next(s, current, seed=8)
    sub = np.zeros((3, V), np.int64)  # the three rows, dense
    a, b = (c.keys // np.uint64(V)).astype(np.int64), (c.keys % np.uint64(V)).astype(np.int64)
    for i, r in enumerate(rows):
        sub[i, b[a == r]] = c.counts[a == r]
    np.testing.assert_array_equal(got, reference.sample_next(sub, np.arange(3_000) % 3, seed=8))
    assert (sub[np.arange(3_000) % 3, got] > 0).all()
    chains = generate(s, rows, 50, seed=9)
    assert chains.shape == (3, 50) and chains.min() >= 0


def test_sparse_sampler_with_no_bigrams():
    s = Sampler(NGramCounts(np.zeros(0, np.uint64), np.zeros(0, np.int64), 2, 3))
    assert s.sparse and np.array_equal(s.totals, [0, 0, 0])
    with pytest.raises(ValueError, match=r"current: id 0 at position 0 selects a row of the table with no weight"):
        sample_next(s, [0], seed=0)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (
            lambda: sample_next(np.array([[1.0, np.nan]]), [0], seed=0),
            ValueError,
            r"table must be finite, got nan at \[0, 1\]",
        ),
        (lambda: sample_next(np.array([[1.0, np.inf]]), [0], seed=0), ValueError, r"table must be finite, got inf"),
        (
            lambda: sample_next(np.array([[1, -2]]), [0], seed=0),
            ValueError,
            r"table must be non-negative, got -2 at \[0, 1\]",
        ),
        (
            lambda: sample_next(np.array([[True]]), [0], seed=0),
            TypeError,
            r"table must be an array of integers or floats",
        ),
        (lambda: sample_next(np.ones(3), [0], seed=0), ValueError, r"table must be 2-D \(rows, V\), got shape \(3,\)"),
        (
            lambda: sample_next(np.ones((2, 0)), [0], seed=0),
            ValueError,
            r"table must have at least one row and one column",
        ),
        (lambda: sample_next("abc", [0], seed=0), TypeError, r"table must be a Sampler, a 2-D array or NGramCounts"),
        (
            lambda: sample_next(np.array([[2**63, 2**63]], np.uint64), [0], seed=0),
            ValueError,
            r"table: count .* exceeds the int64 range",
        ),
        (
            lambda: sample_next(np.array([[2**62, 2**62, 2**62]]), [0], seed=0),
            ValueError,
            r"table: row 0 sums to .* over the int64 range",
        ),
        (lambda: bigram_probs(COUNTS, smoothing=-1), ValueError, r"smoothing must be in \[0.0, inf\]"),
        (lambda: bigram_probs(np.array([[1, -1]])), ValueError, r"counts must be non-negative"),
        (lambda: Sampler(COUNTS).tempered(-2), ValueError, r"temperature must be in \[0.0, inf\]"),
        (
            lambda: Sampler(NGramCounts(np.zeros(0, np.uint64), np.zeros(0, np.int64), 3, 4)),
            ValueError,
            r"table must be bigram counts \(n = 2\) to use as a table, got n = 3",
        ),
        (
            lambda: bigram_probs(NGramCounts(np.zeros(0, np.uint64), np.zeros(0, np.int64), 1, 4)),
            ValueError,
            r"counts must be bigram counts \(n = 2\)",
        ),
        (
            lambda: bigram_probs(NGramCounts(np.zeros(0, np.uint64), np.zeros(0, np.int64), 2, 50_257)),
            ValueError,
            r"bigram_probs of counts needs a dense \(50,257, 50,257\) table of 18.8 GiB, over the budget of 2.0 GiB; Sampler\(counts\) and nll\(counts, tokens\) stay sparse",
        ),
        (lambda: bigram_probs([[0.5]], smoothing="a"), TypeError, r"smoothing must be a real number"),
        (lambda: Sampler(np.array([[1.0]], np.float16)), TypeError, r"table must be float32 or float64, got float16"),
    ],
)
def test_bad_input_raises_naming_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()
