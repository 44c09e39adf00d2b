"""sample_next, generate and uniform: exact agreement with the reference, fit, invariance, errors."""

from __future__ import annotations

import numpy as np
import pytest
from _sampling import P_MIN, chisquare, counts_table
from scipy import stats

import fastgram
from fastgram import reference
from fastgram.kernels import sampling as _ks
from fastgram.metrics import nll
from fastgram.sampling import Sampler, bigram_probs, generate, multinomial, sample_logits, sample_next

COUNTS = np.array([[1, 2, 0], [0, 0, 0], [3, 0, 1]])


def test_uniform_matches_reference_bit_for_bit():
    got = fastgram.uniform((7, 300), seed=2**64 - 1, offset=2**50)
    want = reference.uniform((7, 300), seed=2**64 - 1, offset=2**50)
    assert got.dtype == np.float64 and np.array_equal(got, want)


def test_uniform_is_53_bit_and_uniform():
    u = fastgram.uniform(200_000, seed=42)
    assert u.min() >= 0.0 and u.max() < 1.0
    assert np.all(u * 2.0**53 == np.floor(u * 2.0**53))
    observed = np.bincount((u * 50).astype(int), minlength=50)
    assert stats.chisquare(observed).pvalue > P_MIN


def test_uniform_streams_are_independent_of_layout():
    whole = fastgram.uniform((10, 20), seed=3)
    assert np.array_equal(fastgram.uniform((4, 20), seed=3, offset=6), whole[6:])
    assert np.array_equal(fastgram.uniform((10, 5), seed=3), whole[:, :5])
    assert np.array_equal(fastgram.uniform(20, seed=3, offset=2), whole[2])
    assert not np.array_equal(fastgram.uniform((10, 20), seed=4), whole)


def test_words_below_is_exact():
    rng = np.random.default_rng(0)
    words = rng.integers(0, 2**64, 500, dtype=np.uint64, endpoint=False)
    n = rng.integers(1, 2**63, 500, dtype=np.int64)
    want = [(int(w) * int(m)) >> 64 for w, m in zip(words, n)]
    assert reference.words_below(words, n).tolist() == want


@pytest.mark.parametrize("kind", ["counts", "float64", "float32"])
def test_sample_next_matches_reference(rng, kind):
    counts = counts_table(rng)
    table = {"counts": counts, "float64": counts * rng.random(counts.shape), "float32": counts.astype(np.float32)}[kind]
    current = rng.integers(0, 30, (40, 25))
    got = sample_next(table, current, seed=9)
    assert got.shape == current.shape and got.dtype == np.int64
    assert np.array_equal(got, reference.sample_next(table, current, seed=9))
    assert np.array_equal(sample_next(Sampler(table), current, seed=9), got)


def test_sample_next_goodness_of_fit(rng):
    counts = counts_table(rng, rows=3, V=40)
    draws = sample_next(counts, np.full(60_000, 1), seed=11)
    assert chisquare(np.bincount(draws, minlength=40), counts[1].astype(float)) > P_MIN
    probs = counts * rng.random(counts.shape)
    draws = sample_next(probs, np.full(60_000, 2), seed=12)
    assert chisquare(np.bincount(draws, minlength=40), probs[2]) > P_MIN


def test_zero_count_categories_are_never_drawn():
    counts = np.zeros((2, 1000), np.int64)
    counts[0, [0, 499, 999]] = [1, 10**15, 1]
    counts[1, 500] = 1
    draws = sample_next(counts, np.tile([0, 1], 50_000), seed=1)
    assert set(np.unique(draws[0::2])) <= {0, 499, 999} and set(draws[1::2]) == {500}
    tiny = np.zeros((1, 1000))
    tiny[0, [3, 997]] = [1e-300, 1.0]
    assert set(np.unique(sample_next(tiny, np.zeros(100_000, np.int64), seed=2))) <= {3, 997}


def test_exact_counts_use_the_whole_int64_range():
    counts = np.array([[2**62, 2**62 - 2, 0, 1]], np.int64)  # sums to 2**63 - 1
    draws = sample_next(counts, np.zeros(10_000, np.int64), seed=5)
    assert set(np.unique(draws)) <= {0, 1, 3}
    assert np.array_equal(draws, reference.sample_next(counts, np.zeros(10_000, np.int64), seed=5))


def test_sample_next_shapes_and_edge_cases():
    table = np.array([[0, 5], [2, 0]])
    assert sample_next(table, 0, seed=0).shape == ()
    assert sample_next(table, np.zeros(0, np.int64), seed=0).shape == (0,)
    assert np.array_equal(sample_next(table, [0, 1, 0], seed=0), [1, 0, 1])
    assert np.array_equal(sample_next(np.array([[7]]), np.zeros(5, np.uint8), seed=3), np.zeros(5))
    swapped = np.array([0, 1, 1, 0], ">u2")[::-1]
    assert np.array_equal(sample_next(table, swapped, seed=0), [1, 0, 0, 1])


@pytest.mark.parametrize("kind", ["int", "float"])
def test_draw_kernel_flags_bad_rows_instead_of_reading_them(kind):
    """The kernel checks every id itself: out of range or empty rows give -1 and are counted."""
    table = np.array([[1, 2, 0], [0, 0, 0], [3, 0, 1]])
    sampler = Sampler(table if kind == "int" else table.astype(np.float64))
    rows = np.array([0, -1, 3, 1, 2**62, 2, np.iinfo(np.int64).min] * 300, np.int64)  # > one ROW_BLOCK
    out = np.full(rows.shape, 7, np.int64)
    bad = np.full(_ks.row_blocks(rows.size), -1, np.int64)
    _ks.sample_rows(0, bad.size, *sampler._kernel_args(), rows, np.uint64(5), np.int64(0), out, bad)
    good = (rows == 0) | (rows == 2)
    assert bad.sum() == (~good).sum() and bad.size == 3
    np.testing.assert_array_equal(out[~good], -1)
    expected = reference.sample_next(sampler.table, np.where(good, rows, 0), seed=5)  # same streams by position
    np.testing.assert_array_equal(out[good], expected[good])


def test_results_do_not_depend_on_thread_count(rng, threads):
    counts = counts_table(rng)
    current = rng.integers(0, 30, 5_000)
    logits = rng.standard_normal((7, 200))
    probs = rng.random((6, 50))
    tokens = rng.integers(0, 30, 70_000).astype(np.uint8)
    sparse = Sampler(fastgram.count_ngrams(tokens, 2, vocab_size=30))

    def run():
        return (
            sample_next(sparse, current, seed=6),
            generate(sparse, current[:64], 40, seed=7),
            sample_next(counts, current, seed=1),
            generate(counts, current[:64], 40, seed=2),
            sample_logits(logits, top_p=0.9, seed=3, num_samples=50),
            multinomial(probs, 100, seed=4),
            multinomial(probs, 20, replacement=False, seed=5),
            nll(bigram_probs(counts), tokens),
        )

    with threads(1):
        one = run()
    with threads(2):
        two = run()
    for a, b in zip(one, two):
        assert np.array_equal(a, b)


def test_batch_split_gives_the_same_draws(rng):
    counts = counts_table(rng)
    current = rng.integers(0, 30, 1_000)
    whole = sample_next(counts, current, seed=7)
    parts = [sample_next(counts, current[lo : lo + 300], seed=7, offset=lo) for lo in range(0, 1_000, 300)]
    assert np.array_equal(np.concatenate(parts), whole)

    chains = generate(counts, current[:50], 30, seed=8)
    assert np.array_equal(generate(counts, current[20:50], 30, seed=8, offset=20), chains[20:])
    assert np.array_equal(chains[:, 0], sample_next(counts, current[:50], seed=8))
    assert np.array_equal(generate(counts, current[:50], 10, seed=8), chains[:, :10])

    logits = rng.standard_normal((9, 64))
    full = sample_logits(logits, seed=5, num_samples=70)
    assert np.array_equal(sample_logits(logits[4:], seed=5, num_samples=70, offset=4), full[4:])
    assert np.array_equal(sample_logits(logits, seed=5, num_samples=10), full[:, :10])  # no guide vs guide
    probs = rng.random((8, 40))
    full = multinomial(probs, 12, replacement=False, seed=6)
    assert np.array_equal(multinomial(probs[3:], 12, replacement=False, seed=6, offset=3), full[3:])


@pytest.mark.parametrize(
    "options", [{}, {"temperature": 0.6}, {"temperature": 2.5}, {"temperature": 0.0}, {"stop_token": 3}]
)
def test_generate_matches_reference(rng, options):
    counts = counts_table(rng, 20, 20)
    start = rng.integers(0, 20, (4, 8))
    got = generate(counts, start, 60, seed=21, **options)
    assert got.shape == (4, 8, 60)
    assert np.array_equal(got, reference.generate(counts, start, 60, seed=21, **options))
    probs = counts * rng.random(counts.shape)
    assert np.array_equal(
        generate(probs, start, 30, seed=22, **options), reference.generate(probs, start, 30, seed=22, **options)
    )


def test_generate_transitions_fit_thetable(rng):
    counts = counts_table(rng, 12, 12)
    chains = generate(counts, np.arange(12), 3_000, seed=4)
    prev = np.concatenate([np.arange(12)[:, None], chains[:, :-1]], axis=1).ravel()
    pairs = np.bincount(prev * 12 + chains.ravel(), minlength=144).reshape(12, 12)
    for a in range(12):
        assert chisquare(pairs[a], counts[a].astype(float)) > P_MIN


def test_generate_stop_token_pads_with_stop_token():
    table = np.array([[0, 3, 1], [1, 0, 1], [1, 1, 0]])  # 2 is the stop token
    out = generate(table, np.zeros(200, np.int64), 50, seed=3, stop_token=2)
    for row in out:
        hits = np.flatnonzero(row == 2)
        assert hits.size  # every chain stops well within 50 steps here
        assert np.all(row[hits[0] :] == 2) and np.all(row[: hits[0]] != 2)
    # a start token equal to the stop token does not stop the chain
    assert np.any(generate(table, [2], 5, seed=0, stop_token=2) != 2)


def test_greedy_generate_follows_first_maximum():
    table = np.array([[1, 5, 5], [0, 0, 9], [4, 1, 1]])
    assert np.array_equal(generate(table, [0], 6, seed=99, temperature=0), [[1, 2, 0, 1, 2, 0]])


def test_generate_zero_length_and_empty_batch():
    table = np.ones((3, 3), np.int64)
    assert generate(table, [0, 1], 0, seed=0).shape == (2, 0)
    assert generate(table, np.zeros(0, np.int64), 5, seed=0).shape == (0, 5)
    assert generate(table, 1, 4, seed=0).shape == (4,)


def test_reference_is_exact_when_row_totals_sum_past_int64():
    """Each row fits int64, all rows together do not: the reference once returned negative ids."""
    counts = np.array([[2**62, 0, 2**62 - 1], [0, 2**62, 2**62 - 1], [5, 2**62, 0]], np.int64)
    current = np.arange(3_000) % 3
    want = reference.sample_next(counts, current, seed=3)
    assert want.min() >= 0 and (counts[current, want] > 0).all()
    np.testing.assert_array_equal(sample_next(counts, current, seed=3), want)
    chains = reference.generate(counts, [0, 1, 2], 40, seed=4)
    np.testing.assert_array_equal(generate(counts, [0, 1, 2], 40, seed=4), chains)


def test_subnormal_rows_never_walk_past_the_row():
    """The issue's cases (they crashed the interpreter): every draw lands on a positive weight."""
    s = Sampler(np.array([[5e-324, 0.0]]))
    np.testing.assert_array_equal(sample_next(s, np.zeros(1000, np.int64), seed=0), 0)
    table = np.array([[5e-324, 0.0, 0.0], [0.0, 0.0, 1e-320], [0.0, 5e-324, 5e-324]])
    chains = generate(table, [0, 1, 2], 200, seed=0)
    prev = np.concatenate([[[0], [1], [2]], chains[:, :-1]], axis=1)
    assert (table[prev, chains] > 0).all()
    np.testing.assert_array_equal(chains, reference.generate(table, [0, 1, 2], 200, seed=0))


@pytest.mark.parametrize(
    "call, error, match",
    [
        (
            lambda: sample_next(COUNTS, [0, 3], seed=0),
            ValueError,
            r"current: token id 3 at position 1 is outside \[0, 3\)",
        ),
        (lambda: sample_next(COUNTS, [0, -1], seed=0), ValueError, r"current: token id -1 at position 1"),
        (lambda: sample_next(COUNTS, [0.5], seed=0), TypeError, r"current must be an array of integers"),
        (
            lambda: sample_next(COUNTS, [2, 1], seed=0),
            ValueError,
            r"current: id 1 at position 1 selects a row of the table with no weight",
        ),
        (
            lambda: sample_next(COUNTS, np.array([0, 2**63 + 1], np.uint64), seed=0),
            ValueError,
            r"current: token id 9,223,372,036,854,775,809 at position 1 is outside \[0, 3\)",
        ),
        (
            lambda: sample_next(np.array([[0.5, 0.5], [0.0, 0.0]]), [[0, 0], [0, 1]], seed=0),
            ValueError,
            r"current: id 1 at position 3 selects a row of the table with no weight",
        ),
        (lambda: sample_next(COUNTS, [0], seed=-1), ValueError, r"seed must be >= 0"),
        (lambda: sample_next(COUNTS, [0], seed=2**64), ValueError, r"seed must be <= "),
        (lambda: sample_next(COUNTS, [0], seed=1.5), TypeError, r"seed must be an integer"),
        (lambda: sample_next(COUNTS, [0], seed=0, offset=-3), ValueError, r"offset must be >= 0"),
        (
            lambda: generate(np.ones((2, 3)), [0], 5, seed=0),
            ValueError,
            r"table must be square \(V, V\) to generate, got shape \(2, 3\)",
        ),
        (lambda: generate(COUNTS, [5], 5, seed=0), ValueError, r"start: token id 5 at position 0 is outside \[0, 3\)"),
        (lambda: generate(COUNTS, [0], -1, seed=0), ValueError, r"length must be >= 0"),
        (
            lambda: generate(COUNTS, [0], 5, seed=0, temperature=-0.1),
            ValueError,
            r"temperature must be in \[0.0, inf\]",
        ),
        (lambda: generate(COUNTS, [0], 5, seed=0, temperature=np.nan), ValueError, r"temperature must be finite"),
        (lambda: generate(COUNTS, [0], 5, seed=0, stop_token=3), ValueError, r"stop_token must be <= 2"),
        (lambda: generate(COUNTS, [0], 5, seed=0, stop_token="a"), TypeError, r"stop_token must be an integer"),
        (
            lambda: generate(COUNTS, [1], 5, seed=0),
            ValueError,
            r"table: chain 0 reached token 1 at step 0, whose row has no weight",
        ),
        (
            lambda: generate(np.array([[0, 1], [0, 0]]), [0, 0], 5, seed=0),
            ValueError,
            r"chain 0 reached token 1 at step 1",
        ),
        (lambda: fastgram.uniform((2, 3, 4), seed=0), ValueError, r"shape must be n or \(B, n\)"),
        (lambda: fastgram.uniform(-1, seed=0), ValueError, r"shape must be >= 0"),
        (lambda: sample_next(COUNTS, [0], 0), TypeError, r"takes 2 positional arguments but 3 were given"),
        (lambda: generate(COUNTS, [0], 5, 0), TypeError, r"takes 3 positional arguments but 4 were given"),
        (lambda: fastgram.uniform(0, 3), TypeError, r"takes 1 positional argument but 2 were given"),
    ],
)
def test_bad_input_raises_naming_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_results_too_large_for_memory_are_value_errors():
    with pytest.raises(
        ValueError, match=r"shape: the result of shape \(1, 35184372088832\) would take 256.0 TiB, more than"
    ):
        fastgram.uniform(2**45, seed=0)
    with pytest.raises(ValueError, match=r"length: the result of shape \(4, 1099511627776\) would take 32.0 TiB"):
        fastgram.generate(np.ones((2, 2)), [0, 1, 1, 0], 2**40, seed=0)


def test_draw_counts_too_large_for_memory_are_value_errors():
    with pytest.raises(ValueError, match=r"num_samples: the result of shape \(2, 1099511627776\) would take"):
        multinomial(np.ones((2, 2)), 2**40, seed=0)
    with pytest.raises(ValueError, match=r"num_samples: the result of shape \(1, 35184372088832\) would take"):
        sample_logits(np.ones(3), seed=0, num_samples=2**45)
