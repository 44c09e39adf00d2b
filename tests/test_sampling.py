"""Sampling: exact agreement with the reference, goodness of fit, invariance, filters, errors."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import fastgram
from fastgram import reference, sampling
from fastgram.sampling import Sampler, bigram_probs, generate, multinomial, nll, perplexity, sample_logits, sample_next

P_MIN = 1e-4  # chi-square tests: fixed seeds, so a pass is reproducible; this only flags real misfits


def _table(rng, rows=30, V=30, p_zero=0.4):
    counts = rng.integers(1, 9, (rows, V))
    counts[rng.random((rows, V)) < p_zero] = 0
    counts[:, 0] += 1
    return counts


def _chisquare(observed, expected_probs):
    keep = expected_probs > 0
    assert observed[~keep].sum() == 0, "a category of probability zero was drawn"
    exp = expected_probs[keep] / expected_probs[keep].sum() * observed.sum()
    return stats.chisquare(observed[keep], exp).pvalue


# ---------------------------------------------------------------------------------------------
# random numbers
# ---------------------------------------------------------------------------------------------


def test_uniform_matches_reference_bit_for_bit():
    got = fastgram.uniform(2**64 - 1, (7, 300), offset=2**50)
    want = reference.uniform(2**64 - 1, (7, 300), offset=2**50)
    assert got.dtype == np.float64 and np.array_equal(got, want)


def test_uniform_is_53_bit_and_uniform():
    u = fastgram.uniform(42, 200_000)
    assert u.min() >= 0.0 and u.max() < 1.0
    assert np.all(u * 2.0**53 == np.floor(u * 2.0**53))
    observed = np.bincount((u * 50).astype(int), minlength=50)
    assert stats.chisquare(observed).pvalue > P_MIN


def test_uniform_streams_are_independent_of_layout():
    whole = fastgram.uniform(3, (10, 20))
    assert np.array_equal(fastgram.uniform(3, (4, 20), offset=6), whole[6:])
    assert np.array_equal(fastgram.uniform(3, (10, 5)), whole[:, :5])
    assert np.array_equal(fastgram.uniform(3, 20, offset=2), whole[2])
    assert not np.array_equal(fastgram.uniform(4, (10, 20)), whole)


def test_words_below_is_exact():
    rng = np.random.default_rng(0)
    words = rng.integers(0, 2**64, 500, dtype=np.uint64, endpoint=False)
    n = rng.integers(1, 2**63, 500, dtype=np.int64)
    want = [(int(w) * int(m)) >> 64 for w, m in zip(words, n)]
    assert reference.words_below(words, n).tolist() == want


# ---------------------------------------------------------------------------------------------
# tables and sample_next
# ---------------------------------------------------------------------------------------------


def test_bigram_probs():
    counts = np.array([[3, 1, 0], [0, 0, 0], [1, 1, 2]])
    p = bigram_probs(counts)
    assert p.dtype == np.float64 and np.allclose(p.sum(axis=1), 1.0)
    assert np.allclose(p[0], [4 / 7, 2 / 7, 1 / 7])
    raw = bigram_probs(counts, smoothing=0)
    assert np.array_equal(raw[1], [0.0, 0.0, 0.0])  # no counts, no smoothing: all zero
    assert np.allclose(raw[2], [0.25, 0.25, 0.5])


@pytest.mark.parametrize("kind", ["counts", "float64", "float32"])
def test_sample_next_matches_reference(rng, kind):
    counts = _table(rng)
    table = {"counts": counts, "float64": counts * rng.random(counts.shape), "float32": counts.astype(np.float32)}[kind]
    current = rng.integers(0, 30, (40, 25))
    got = sample_next(table, current, 9)
    assert got.shape == current.shape and got.dtype == np.int64
    assert np.array_equal(got, reference.sample_next(table, current, 9))
    assert np.array_equal(sample_next(Sampler(table), current, 9), got)


def test_sample_next_goodness_of_fit(rng):
    counts = _table(rng, rows=3, V=40)
    draws = sample_next(counts, np.full(60_000, 1), seed=11)
    assert _chisquare(np.bincount(draws, minlength=40), counts[1].astype(float)) > P_MIN
    probs = counts * rng.random(counts.shape)
    draws = sample_next(probs, np.full(60_000, 2), seed=12)
    assert _chisquare(np.bincount(draws, minlength=40), probs[2]) > P_MIN


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
    assert np.array_equal(draws, reference.sample_next(counts, np.zeros(10_000, np.int64), 5))


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
    bad = sampling._k.sample_rows(*sampler._kernel_args(), rows, np.uint64(5), np.int64(0), out)
    good = (rows == 0) | (rows == 2)
    assert bad == (~good).sum()
    np.testing.assert_array_equal(out[~good], -1)
    expected = reference.sample_next(sampler.table, np.where(good, rows, 0), 5)  # same streams by position
    np.testing.assert_array_equal(out[good], expected[good])


def test_sampler_attributes_and_temperature(rng):
    counts = _table(rng, 5, 8)
    s = Sampler(counts)
    assert s.exact and s.shape == (5, 8) and s.vocab_size == 8 and "exact counts" in repr(s)
    assert s.tempered(1.0) is s
    greedy = s.tempered(0.0)
    assert np.array_equal(sample_next(greedy, np.arange(5), seed=1), np.argmax(counts, axis=1))
    assert not Sampler(counts.astype(float)).exact


# ---------------------------------------------------------------------------------------------
# invariance: threads, batch split, positions
# ---------------------------------------------------------------------------------------------


def test_results_do_not_depend_on_thread_count(rng, threads):
    counts = _table(rng)
    current = rng.integers(0, 30, 5_000)
    logits = rng.standard_normal((7, 200))
    probs = rng.random((6, 50))
    tokens = rng.integers(0, 30, 70_000).astype(np.uint8)

    def run():
        return (
            sample_next(counts, current, 1),
            generate(counts, current[:64], 40, 2),
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
    counts = _table(rng)
    current = rng.integers(0, 30, 1_000)
    whole = sample_next(counts, current, 7)
    parts = [sample_next(counts, current[lo : lo + 300], 7, offset=lo) for lo in range(0, 1_000, 300)]
    assert np.array_equal(np.concatenate(parts), whole)

    chains = generate(counts, current[:50], 30, 8)
    assert np.array_equal(generate(counts, current[20:50], 30, 8, offset=20), chains[20:])
    assert np.array_equal(chains[:, 0], sample_next(counts, current[:50], 8))
    assert np.array_equal(generate(counts, current[:50], 10, 8), chains[:, :10])

    logits = rng.standard_normal((9, 64))
    full = sample_logits(logits, seed=5, num_samples=70)
    assert np.array_equal(sample_logits(logits[4:], seed=5, num_samples=70, offset=4), full[4:])
    assert np.array_equal(sample_logits(logits, seed=5, num_samples=10), full[:, :10])  # no guide vs guide
    probs = rng.random((8, 40))
    full = multinomial(probs, 12, replacement=False, seed=6)
    assert np.array_equal(multinomial(probs[3:], 12, replacement=False, seed=6, offset=3), full[3:])


# ---------------------------------------------------------------------------------------------
# generate
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options", [{}, {"temperature": 0.6}, {"temperature": 2.5}, {"temperature": 0.0}, {"stop_token": 3}]
)
def test_generate_matches_reference(rng, options):
    counts = _table(rng, 20, 20)
    start = rng.integers(0, 20, (4, 8))
    got = generate(counts, start, 60, 21, **options)
    assert got.shape == (4, 8, 60)
    assert np.array_equal(got, reference.generate(counts, start, 60, 21, **options))
    probs = counts * rng.random(counts.shape)
    assert np.array_equal(
        generate(probs, start, 30, 22, **options), reference.generate(probs, start, 30, 22, **options)
    )


def test_generate_transitions_fit_the_table(rng):
    counts = _table(rng, 12, 12)
    chains = generate(counts, np.arange(12), 3_000, seed=4)
    prev = np.concatenate([np.arange(12)[:, None], chains[:, :-1]], axis=1).ravel()
    pairs = np.bincount(prev * 12 + chains.ravel(), minlength=144).reshape(12, 12)
    for a in range(12):
        assert _chisquare(pairs[a], counts[a].astype(float)) > P_MIN


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


# ---------------------------------------------------------------------------------------------
# sample_logits: HF filters
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"temperature": 0.5},
        {"top_k": 1},
        {"top_k": 7},
        {"top_p": 0.3},
        {"min_p": 0.2},
        {"top_k": 20, "top_p": 0.7, "min_p": 0.05, "temperature": 1.3},
    ],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sample_logits_matches_reference(rng, options, dtype):
    logits = (rng.standard_normal((3, 4, 97)) * 2).astype(dtype)
    logits[0, 0, :10] = -np.inf
    for n in (None, 64):
        got = sample_logits(logits, seed=13, num_samples=n, **options)
        assert got.shape == ((3, 4) if n is None else (3, 4, n))
        assert np.array_equal(got, reference.sample_logits(logits, seed=13, num_samples=n, **options))


def test_sample_logits_matches_reference_on_long_skewed_rows(rng):
    """Many categories per guide bucket (binary searches) and several blocks and tasks per row."""
    logits = (rng.standard_normal((2, 3_001)) * 3).astype(np.float32)
    n = sampling._k.DRAW_CHUNK + 2 * sampling._k.ROW_BLOCK + 5
    got = sample_logits(logits, seed=21, num_samples=n)
    assert np.array_equal(got, reference.sample_logits(logits, seed=21, num_samples=n))


def _filtered_support(logits, **options):
    return set(np.unique(sample_logits(np.tile(logits, (1, 1)), seed=1, num_samples=20_000, **options)))


def test_top_k_keeps_ties_and_ignores_large_k():
    logits = np.array([1.0, 3.0, 3.0, 3.0, 0.0, 2.0])
    assert _filtered_support(logits, top_k=2) == {1, 2, 3}  # 3-way tie at the k-th value
    assert _filtered_support(logits, top_k=4) == {1, 2, 3, 5}
    for k in (6, 7, 10**9):
        assert np.array_equal(
            sample_logits(logits, top_k=k, seed=2, num_samples=500), sample_logits(logits, seed=2, num_samples=500)
        )


def test_top_p_boundaries():
    logits = np.log(np.array([0.1, 0.4, 0.2, 0.3]))
    base = sample_logits(logits, seed=3, num_samples=500)
    assert np.array_equal(sample_logits(logits, top_p=1.0, seed=3, num_samples=500), base)  # p = 1 keeps all
    assert _filtered_support(logits, top_p=1e-9) == {1}  # only the most likely
    assert _filtered_support(logits, top_p=0.5) == {1, 3}  # 0.4 < 0.5: add the next one
    assert _filtered_support(logits, top_p=0.69) == {1, 3}  # 0.7 >= 0.69
    assert _filtered_support(logits, top_p=0.75) == {1, 3, 2}
    ties = np.zeros(5)
    assert _filtered_support(ties, top_p=0.3) == {0, 1}  # ties: lower ids kept first
    assert _filtered_support(ties, top_p=0.5) == {0, 1, 2}


def test_min_p_boundaries():
    logits = np.log(np.array([0.5, 0.25, 0.05, 0.2]))
    assert _filtered_support(logits, min_p=0.0) == {0, 1, 2, 3}
    assert _filtered_support(logits, min_p=0.3) == {0, 1, 3}
    assert _filtered_support(logits, min_p=1.0) == {0}
    assert _filtered_support(np.zeros(4), min_p=1.0) == {0, 1, 2, 3}  # ties with the max stay


def test_sample_logits_goodness_of_fit_after_top_k(rng):
    logits = rng.standard_normal(30)
    draws = sample_logits(logits, temperature=0.8, top_k=10, seed=5, num_samples=60_000)
    p = np.exp((logits - logits.max()) / 0.8)
    p[p < np.sort(p)[-10]] = 0
    assert _chisquare(np.bincount(draws, minlength=30), p) > P_MIN


def test_greedy_and_masked_logits():
    logits = np.array([[2.0, 5.0, 5.0], [-np.inf, -1.0, -np.inf]], np.float32)
    assert np.array_equal(sample_logits(logits, temperature=0, seed=0), [1, 1])
    assert np.array_equal(sample_logits(logits, temperature=0, seed=0, num_samples=3), [[1, 1, 1], [1, 1, 1]])
    assert set(np.unique(sample_logits(logits, seed=1, num_samples=1000)[1])) == {1}
    assert sample_logits(np.zeros((0, 4)), seed=0).shape == (0,)


# ---------------------------------------------------------------------------------------------
# multinomial
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("replacement", [True, False])
def test_multinomial_matches_reference(rng, replacement):
    probs = rng.random((4, 50)) * (rng.random((4, 50)) < 0.6)
    probs[:, 1] += 0.5
    for p in (probs, probs.astype(np.float32), probs[2]):
        got = multinomial(p, 15, replacement, seed=17)
        assert got.shape == p.shape[:-1] + (15,)
        assert np.array_equal(got, reference.multinomial(p, 15, replacement, seed=17))


def test_multinomial_goodness_of_fit(rng):
    probs = rng.random(25) * (rng.random(25) < 0.7)
    probs[0] = 0.3
    draws = multinomial(probs, 80_000, seed=8)
    assert _chisquare(np.bincount(draws, minlength=25), probs) > P_MIN


def test_multinomial_without_replacement():
    p = np.array([0.5, 0.0, 0.3, 0.2])
    out = multinomial(np.tile(p, (20_000, 1)), 2, replacement=False, seed=9)
    assert np.all(out[:, 0] != out[:, 1]) and not np.any(out == 1)
    # P(first = i, second = j) = p_i p_j / (1 - p_i)
    observed = np.bincount(out[:, 0] * 4 + out[:, 1], minlength=16)
    expected = np.array([p[i] * p[j] / (1 - p[i]) if i != j else 0.0 for i in range(4) for j in range(4)])
    assert _chisquare(observed, expected) > P_MIN
    every = multinomial(p, 3, replacement=False, seed=1)
    assert sorted(every.tolist()) == [0, 2, 3]


# ---------------------------------------------------------------------------------------------
# nll and perplexity
# ---------------------------------------------------------------------------------------------


def test_nll_matches_reference_and_is_chunk_independent(rng, monkeypatch):
    counts = _table(rng, 16, 16)
    probs = bigram_probs(counts, 0.5)
    tokens = rng.integers(0, 16, 10_001).astype(np.uint16)
    want = reference.nll(probs, tokens)
    got = nll(probs, tokens)
    assert abs(got - want) < 1e-12 * abs(want)
    monkeypatch.setattr(sampling, "NLL_BLOCK", 64)
    small_blocks = nll(probs, tokens)
    monkeypatch.setattr(sampling._checks, "SCAN_CHUNK", 256)
    assert nll(probs, tokens) == small_blocks  # same blocks, other chunks: identical
    assert nll(probs, tokens[::-1].copy().astype(">u2")[::-1]) == small_blocks
    assert abs(perplexity(probs, tokens) - np.exp(want)) < 1e-9 * np.exp(want)


def test_nll_of_counts_and_impossible_pairs():
    counts = np.array([[1, 3], [2, 0]])
    tokens = np.array([0, 1, 0, 0], np.uint8)
    assert np.isclose(nll(counts, tokens), -(np.log(0.75) + np.log(1.0) + np.log(0.25)) / 3)
    assert nll(counts, [1, 1]) == np.inf and perplexity(counts, [1, 1]) == np.inf
    assert np.isclose(perplexity(np.full((4, 4), 0.25), [0, 1, 2, 3, 0]), 4.0)


# ---------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------

COUNTS = np.array([[1, 2, 0], [0, 0, 0], [3, 0, 1]])


@pytest.mark.parametrize(
    "call, error, match",
    [
        (
            lambda: sample_next(np.array([[1.0, np.nan]]), [0], 0),
            ValueError,
            r"table must be finite, got nan at \[0, 1\]",
        ),
        (lambda: sample_next(np.array([[1.0, np.inf]]), [0], 0), ValueError, r"table must be finite, got inf"),
        (
            lambda: sample_next(np.array([[1, -2]]), [0], 0),
            ValueError,
            r"table must be non-negative, got -2 at \[0, 1\]",
        ),
        (lambda: sample_next(np.array([[True]]), [0], 0), TypeError, r"table must be an array of integers or floats"),
        (lambda: sample_next(np.ones(3), [0], 0), ValueError, r"table must be 2-D \(rows, V\), got shape \(3,\)"),
        (lambda: sample_next(np.ones((2, 0)), [0], 0), ValueError, r"table must have at least one row and one column"),
        (lambda: sample_next("abc", [0], 0), TypeError, r"table must be a Sampler or a 2-D array"),
        (lambda: sample_next(COUNTS, [0, 3], 0), ValueError, r"current: token id 3 at position 1 is outside \[0, 3\)"),
        (lambda: sample_next(COUNTS, [0, -1], 0), ValueError, r"current: token id -1 at position 1"),
        (lambda: sample_next(COUNTS, [0.5], 0), TypeError, r"current must be an array of integers"),
        (
            lambda: sample_next(COUNTS, [2, 1], 0),
            ValueError,
            r"current: id 1 at position 1 selects a row of the table with no weight",
        ),
        (
            lambda: sample_next(COUNTS, np.array([0, 2**63 + 1], np.uint64), 0),
            ValueError,
            r"current: token id 9,223,372,036,854,775,809 at position 1 is outside \[0, 3\)",
        ),
        (
            lambda: sample_next(np.array([[0.5, 0.5], [0.0, 0.0]]), [[0, 0], [0, 1]], 0),
            ValueError,
            r"current: id 1 at position 3 selects a row of the table with no weight",
        ),
        (lambda: sample_next(COUNTS, [0], -1), ValueError, r"seed must be >= 0"),
        (lambda: sample_next(COUNTS, [0], 2**64), ValueError, r"seed must be <= "),
        (lambda: sample_next(COUNTS, [0], 1.5), TypeError, r"seed must be an integer"),
        (lambda: sample_next(COUNTS, [0], 0, offset=-3), ValueError, r"offset must be >= 0"),
        (
            lambda: sample_next(np.array([[2**63, 2**63]], np.uint64), [0], 0),
            ValueError,
            r"table: count .* exceeds the int64 range",
        ),
        (
            lambda: sample_next(np.array([[2**62, 2**62, 2**62]]), [0], 0),
            ValueError,
            r"table: row 0 sums to .* over the int64 range",
        ),
        (lambda: sample_next(np.array([[1e308, 1e308]]), [0], 0), ValueError, r"table: row 0 sums to inf"),
        (
            lambda: generate(np.ones((2, 3)), [0], 5, 0),
            ValueError,
            r"table must be square \(V, V\) to generate, got shape \(2, 3\)",
        ),
        (lambda: generate(COUNTS, [5], 5, 0), ValueError, r"start: token id 5 at position 0 is outside \[0, 3\)"),
        (lambda: generate(COUNTS, [0], -1, 0), ValueError, r"length must be >= 0"),
        (lambda: generate(COUNTS, [0], 5, 0, temperature=-0.1), ValueError, r"temperature must be in \[0.0, inf\]"),
        (lambda: generate(COUNTS, [0], 5, 0, temperature=np.nan), ValueError, r"temperature must be finite"),
        (lambda: generate(COUNTS, [0], 5, 0, stop_token=3), ValueError, r"stop_token must be <= 2"),
        (lambda: generate(COUNTS, [0], 5, 0, stop_token="a"), TypeError, r"stop_token must be an integer"),
        (
            lambda: generate(COUNTS, [1], 5, 0),
            ValueError,
            r"table: chain 0 reached token 1 at step 0, whose row has no weight",
        ),
        (lambda: generate(np.array([[0, 1], [0, 0]]), [0, 0], 5, 0), ValueError, r"chain 0 reached token 1 at step 1"),
        (
            lambda: sample_logits(np.array([1, 2]), seed=0),
            TypeError,
            r"logits must be float32 or float64, got dtype int64",
        ),
        (lambda: sample_logits(np.float64(1.0), seed=0), ValueError, r"logits must have at least 1 dimension"),
        (lambda: sample_logits(np.zeros((2, 0)), seed=0), ValueError, r"logits must have V >= 1 categories"),
        (
            lambda: sample_logits(np.array([0.0, np.nan]), seed=0),
            ValueError,
            r"logits must be finite, got nan at \[1\]",
        ),
        (
            lambda: sample_logits(np.array([0.0, np.inf]), seed=0),
            ValueError,
            r"logits must be finite, got inf at \[1\]",
        ),
        (
            lambda: sample_logits(np.array([[0.0, 1], [-np.inf, -np.inf]]), seed=0),
            ValueError,
            r"logits: row 1 is all -inf",
        ),
        (
            lambda: sample_logits(np.zeros(3), temperature=-1, seed=0),
            ValueError,
            r"temperature must be in \[0.0, inf\]",
        ),
        (lambda: sample_logits(np.zeros(3), top_k=0, seed=0), ValueError, r"top_k must be >= 1, got 0"),
        (lambda: sample_logits(np.zeros(3), top_k=2.0, seed=0), TypeError, r"top_k must be an integer"),
        (lambda: sample_logits(np.zeros(3), top_p=0.0, seed=0), ValueError, r"top_p must be in \(0.0, 1.0\], got 0.0"),
        (lambda: sample_logits(np.zeros(3), top_p=1.5, seed=0), ValueError, r"top_p must be in \(0.0, 1.0\], got 1.5"),
        (lambda: sample_logits(np.zeros(3), min_p=-0.1, seed=0), ValueError, r"min_p must be in \[0.0, 1.0\]"),
        (lambda: sample_logits(np.zeros(3), seed=0, num_samples=0), ValueError, r"num_samples must be >= 1"),
        (lambda: sample_logits(np.zeros(3), seed=None), TypeError, r"seed must be an integer"),
        (lambda: multinomial(np.array([1, 2]), 1, seed=0), TypeError, r"probs must be float32 or float64"),
        (lambda: multinomial(np.zeros((2, 2, 2)), 1, seed=0), ValueError, r"probs must be 1-D \(V,\) or 2-D \(B, V\)"),
        (lambda: multinomial(np.zeros((2, 0)), 1, seed=0), ValueError, r"probs must have V >= 1 categories"),
        (
            lambda: multinomial(np.array([0.5, -0.1]), 1, seed=0),
            ValueError,
            r"probs must be non-negative, got -0.1 at \[1\]",
        ),
        (
            lambda: multinomial(np.array([0.5, np.nan]), 1, seed=0),
            ValueError,
            r"probs must be finite, got nan at \[1\]",
        ),
        (lambda: multinomial(np.array([[1.0, 0], [0, 0]]), 1, seed=0), ValueError, r"probs: row 1 sums to 0"),
        (lambda: multinomial(np.array([1e308, 1e308]), 1, seed=0), ValueError, r"probs: row 0 sums to inf"),
        (lambda: multinomial(np.ones(3), 0, seed=0), ValueError, r"num_samples must be >= 1, got 0"),
        (lambda: multinomial(np.ones(3), 1, replacement=1, seed=0), TypeError, r"replacement must be a bool"),
        (
            lambda: multinomial(np.array([1.0, 0, 1]), 3, replacement=False, seed=0),
            ValueError,
            r"num_samples=3 is more than the 2 non-zero categories of probs row 0 \(replacement=False\)",
        ),
        (lambda: bigram_probs(COUNTS, smoothing=-1), ValueError, r"smoothing must be in \[0.0, inf\]"),
        (lambda: bigram_probs(np.array([[1, -1]])), ValueError, r"counts must be non-negative"),
        (lambda: nll(np.ones((2, 3)), [0, 1]), ValueError, r"table must be square \(V, V\), got shape \(2, 3\)"),
        (lambda: nll(COUNTS, [0]), ValueError, r"tokens must hold at least 2 tokens \(one pair\), got 1"),
        (lambda: nll(COUNTS, [[0, 1]]), ValueError, r"tokens must be 1-D"),
        (lambda: nll(COUNTS, [0, 1, 7]), ValueError, r"tokens: token id 7 at position 2 is outside \[0, 3\)"),
        (lambda: nll(COUNTS, [0.0, 1.0]), TypeError, r"tokens must be an array of integers"),
        (lambda: perplexity(np.array([[0.5, np.nan], [1, 0]]), [0, 1]), ValueError, r"table must be finite"),
        (lambda: fastgram.uniform(0, (2, 3, 4)), ValueError, r"shape must be n or \(B, n\)"),
        (lambda: fastgram.uniform(0, -1), ValueError, r"shape must be >= 0"),
        (lambda: Sampler(COUNTS).tempered(-2), ValueError, r"temperature must be in \[0.0, inf\]"),
    ],
)
def test_bad_input_raises_naming_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()


# ---------------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------------


def _save_counts(path, text):
    from fastgram import BigramCounter, Vocab

    vocab = Vocab.from_text(text)
    counter = BigramCounter(len(vocab), vocab=vocab)
    counter.update(vocab.encode(text))
    counter.save(path)


def test_cli_generate(tmp_path, capsys):
    from fastgram.cli import main

    path = tmp_path / "counts.npz"
    _save_counts(path, "tiny gpt built with pure numpy. this is a tiny demo.")
    assert main(["generate", str(path), "-n", "3", "--length", "40", "--seed", "0"]) == 0
    first = capsys.readouterr().out
    assert first.count("--- sample") == 3
    assert main(["generate", str(path), "-n", "3", "--length", "40", "--seed", "0"]) == 0
    assert capsys.readouterr().out == first  # same seed, same text
    assert main(["generate", str(path), "-n", "1", "--length", "20", "--temperature", "0", "--start", "tiny "]) == 0
    out = capsys.readouterr().out
    assert out.startswith("tiny ") and len(out.rstrip("\n")) == len("tiny ") + 20
    assert main(["generate", str(path), "--temperature", "-1"]) == 2
    assert "temperature must be in" in capsys.readouterr().err
