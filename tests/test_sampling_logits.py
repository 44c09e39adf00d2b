"""sample_logits and multinomial: exact agreement with the reference, filters, fit, errors."""

from __future__ import annotations

import numpy as np
import pytest
from _sampling import P_MIN, chisquare

from fastgram import reference
from fastgram.kernels import sampling_logits as _kl
from fastgram.sampling import multinomial, sample_logits


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
    n = _kl.DRAW_CHUNK + 2 * _kl.ROW_BLOCK + 5
    got = sample_logits(logits, seed=21, num_samples=n)
    assert np.array_equal(got, reference.sample_logits(logits, seed=21, num_samples=n))


def _filtered_support(logits, **options):
    return set(np.unique(sample_logits(np.tile(logits, (1, 1)), seed=1, num_samples=20_000, **options)))


def test_top_k_keeps_ties_and_ignores_large_k():
    logits = np.array([1.0, 3.0, 3.0, 3.0, 0.0, 2.0])
    assert _filtered_support(logits, top_k=2) == {1, 2, 3}  # 3-way tie at the k-th value
    assert _filtered_support(logits, top_k=4) == {1, 2, 3, 5}
    unfiltered = sample_logits(logits, seed=2, num_samples=500)
    for k in (6, 7, 10**9, 2**70, np.int8(100), np.int64(2**63 - 1), np.uint64(2**64 - 1)):
        assert np.array_equal(sample_logits(logits, top_k=k, seed=2, num_samples=500), unfiltered), k
    # per row, in any integer dtype: a k past V (past int64 too) keeps the row whole
    rows = np.tile(logits, (2, 1))
    want = np.stack(
        [sample_logits(rows, seed=2, num_samples=50)[0], sample_logits(rows, top_k=2, seed=2, num_samples=50)[1]]
    )
    for ks in (np.array([2**64 - 1, 2], np.uint64), np.array([100, 2], np.int8), [10**18, 2]):
        assert np.array_equal(sample_logits(rows, top_k=ks, seed=2, num_samples=50), want), ks


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
    assert chisquare(np.bincount(draws, minlength=30), p) > P_MIN


def test_greedy_and_masked_logits():
    logits = np.array([[2.0, 5.0, 5.0], [-np.inf, -1.0, -np.inf]], np.float32)
    assert np.array_equal(sample_logits(logits, temperature=0, seed=0), [1, 1])
    assert np.array_equal(sample_logits(logits, temperature=0, seed=0, num_samples=3), [[1, 1, 1], [1, 1, 1]])
    assert set(np.unique(sample_logits(logits, seed=1, num_samples=1000)[1])) == {1}
    assert sample_logits(np.zeros((0, 4)), seed=0).shape == (0,)


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
    assert chisquare(np.bincount(draws, minlength=25), probs) > P_MIN


def test_multinomial_without_replacement():
    p = np.array([0.5, 0.0, 0.3, 0.2])
    out = multinomial(np.tile(p, (20_000, 1)), 2, replacement=False, seed=9)
    assert np.all(out[:, 0] != out[:, 1]) and not np.any(out == 1)
    # P(first = i, second = j) = p_i p_j / (1 - p_i)
    observed = np.bincount(out[:, 0] * 4 + out[:, 1], minlength=16)
    expected = np.array([p[i] * p[j] / (1 - p[i]) if i != j else 0.0 for i in range(4) for j in range(4)])
    assert chisquare(observed, expected) > P_MIN
    every = multinomial(p, 3, replacement=False, seed=1)
    assert sorted(every.tolist()) == [0, 2, 3]


def test_byte_swapped_logits_and_probs_are_accepted(rng):
    logits = rng.standard_normal((3, 50)).astype(">f4")
    native = logits.astype(np.float32)
    np.testing.assert_array_equal(
        sample_logits(logits, seed=1, num_samples=40), sample_logits(native, seed=1, num_samples=40)
    )
    probs = rng.random((3, 50)).astype(">f8")
    for replacement in (True, False):
        np.testing.assert_array_equal(
            multinomial(probs, 10, replacement, seed=2), multinomial(probs.astype(np.float64), 10, replacement, seed=2)
        )


def test_multinomial_of_extreme_rows():
    """The issue's cases: id 5 for V = 4, repeated ids without replacement; and rows summing past 1e308."""
    assert set(multinomial([[5e-324, 0, 0, 0]], 100, seed=0).ravel()) == {0}
    once = multinomial(np.array([5e-324, 0, 5e-324, 1e-320]), 3, replacement=False, seed=0)
    assert sorted(once.tolist()) == [0, 2, 3]
    huge = np.array([[1e308, 1e308, 0.0], [1.7e308, 5e-324, 1.7e308]])
    for replacement, n in ((True, 500), (False, 2)):
        got = multinomial(huge, n, replacement, seed=1)
        assert (huge[np.arange(2)[:, None], got] > 0).all()
        np.testing.assert_array_equal(got, reference.multinomial(huge, n, replacement, seed=1))
    x = huge[1].copy()
    multinomial(x, 5, seed=2)
    np.testing.assert_array_equal(x, huge[1])  # the caller's weights are not scaled in place
    assert sorted(multinomial(huge[1], 3, replacement=False, seed=3).tolist()) == [0, 1, 2]


@pytest.mark.parametrize(
    "call, error, match",
    [
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
        (lambda: multinomial(np.ones(3), 0, seed=0), ValueError, r"num_samples must be >= 1, got 0"),
        (lambda: multinomial(np.ones(3), 1, replacement=1, seed=0), TypeError, r"replacement must be a bool"),
        (
            lambda: multinomial(np.array([1.0, 0, 1]), 3, replacement=False, seed=0),
            ValueError,
            r"num_samples=3 is more than the 2 non-zero categories of probs row 0 \(replacement=False\)",
        ),
        (
            lambda: multinomial(np.ones(3), 1, True, 0),
            TypeError,
            r"takes from 2 to 3 positional arguments but 4 were given",
        ),
        (
            lambda: sample_logits(np.array([1.0], np.float16), seed=0),
            TypeError,
            r"logits must be float32 or float64, got float16",
        ),
    ],
)
def test_bad_input_raises_naming_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()
