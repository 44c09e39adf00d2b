"""nll and perplexity: agreement with the reference, chunking, sparse counts, overflow, errors."""

from __future__ import annotations

import numpy as np
import pytest
from _sampling import counts_table

from fastgram import count_ngrams, metrics, reference
from fastgram.counting import NGramCounts
from fastgram.metrics import nll, perplexity
from fastgram.sampling import Sampler, bigram_probs

COUNTS = np.array([[1, 2, 0], [0, 0, 0], [3, 0, 1]])


def test_nll_matches_reference_and_is_chunk_independent(rng, monkeypatch):
    counts = counts_table(rng, 16, 16)
    probs = bigram_probs(counts, 0.5)
    tokens = rng.integers(0, 16, 10_001).astype(np.uint16)
    want = reference.nll(probs, tokens)
    got = nll(probs, tokens)
    assert abs(got - want) < 1e-12 * abs(want)
    monkeypatch.setattr(metrics, "NLL_BLOCK", 64)
    small_blocks = nll(probs, tokens)
    monkeypatch.setattr(metrics._checks, "SCAN_CHUNK", 256)
    assert nll(probs, tokens) == small_blocks  # same blocks, other chunks: identical
    assert nll(probs, tokens[::-1].copy().astype(">u2")[::-1]) == small_blocks
    assert abs(perplexity(probs, tokens) - np.exp(want)) < 1e-9 * np.exp(want)


def test_nll_of_counts_and_impossible_pairs():
    counts = np.array([[1, 3], [2, 0]])
    tokens = np.array([0, 1, 0, 0], np.uint8)
    assert np.isclose(nll(counts, tokens), -(np.log(0.75) + np.log(1.0) + np.log(0.25)) / 3)
    assert nll(counts, [1, 1]) == np.inf and perplexity(counts, [1, 1]) == np.inf
    assert np.isclose(perplexity(np.full((4, 4), 0.25), [0, 1, 2, 3, 0]), 4.0)


def test_perplexity_overflow_is_inf():
    table = np.full((2, 2), 1e-310)
    assert perplexity(table, [0, 1, 0]) == np.inf == reference.perplexity(table, [0, 1, 0])
    assert nll(table, [0, 1, 0]) == pytest.approx(reference.nll(table, [0, 1, 0]), rel=1e-15)


def test_sparse_counts_give_the_dense_nll_bit_for_bit(rng, monkeypatch):
    V = 30
    tokens = rng.integers(0, V, 20_000).astype(np.uint16)
    c = count_ngrams(tokens[:12_000], 2, vocab_size=V)
    dense = c.to_dense()
    for t in (tokens, tokens[::3], tokens.astype(">u2")):
        want = nll(dense, t)
        assert nll(c, t) == want and nll(Sampler(c), t) == want == nll(Sampler(dense), t)
        assert perplexity(c, t) == perplexity(dense, t)
    assert nll(c, tokens[:12_000]) == pytest.approx(reference.nll(dense, tokens[:12_000]), rel=1e-12)
    monkeypatch.setattr(metrics, "NLL_BLOCK", 64)
    monkeypatch.setattr(metrics._checks, "SCAN_CHUNK", 256)
    assert nll(c, tokens) == nll(dense, tokens)
    hot = Sampler(c).tempered(0.5)
    assert nll(hot, tokens) == nll(Sampler(dense).tempered(0.5), tokens)  # float weights, used as given


def test_nll_of_huge_integer_rows_is_exact():
    counts = np.array([[2**62, 2**62 - 1], [1, 3]], np.int64)
    want = -(np.log(2**62 / (2**63 - 1)) + np.log((2**62 - 1) / (2**63 - 1))) / 2
    assert nll(counts, [0, 0, 1]) == pytest.approx(want, rel=1e-15)
    keys = np.array([0, 1, 2, 3], np.uint64)
    assert nll(NGramCounts(keys, counts.ravel(), 2, 2), [0, 0, 1]) == nll(counts, [0, 0, 1])
    assert nll(counts, [0, 0, 1]) == pytest.approx(reference.nll(counts, [0, 0, 1]), rel=1e-15)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: nll(np.ones((2, 3)), [0, 1]), ValueError, r"table must be square \(V, V\), got shape \(2, 3\)"),
        (lambda: nll(COUNTS, [0]), ValueError, r"tokens must hold at least 2 tokens \(one pair\), got 1"),
        (lambda: nll(COUNTS, [[0, 1]]), ValueError, r"tokens must be 1-D"),
        (lambda: nll(COUNTS, [0, 1, 7]), ValueError, r"tokens: token id 7 at position 2 is outside \[0, 3\)"),
        (lambda: nll(COUNTS, [0.0, 1.0]), TypeError, r"tokens must be an array of integers"),
        (lambda: perplexity(np.array([[0.5, np.nan], [1, 0]]), [0, 1]), ValueError, r"table must be finite"),
        (
            lambda: nll(NGramCounts(np.zeros(0, np.uint64), np.zeros(0, np.int64), 3, 4), [0, 1]),
            ValueError,
            r"table must be bigram counts \(n = 2\)",
        ),
        (
            lambda: nll(NGramCounts(np.zeros(0, np.uint64), np.zeros(0, np.int64), 2, 4), [0, 4]),
            ValueError,
            r"tokens: token id 4 at position 1 is outside \[0, 4\)",
        ),
        (lambda: nll("abc", [0, 1]), TypeError, r"table must be an array of integers or floats, got dtype <U3"),
    ],
)
def test_bad_input_raises_naming_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()
