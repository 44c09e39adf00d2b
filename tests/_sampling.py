"""Helpers shared by the sampling tests: seeded tables and a chi-square check."""

from __future__ import annotations

from scipy import stats

P_MIN = 1e-4  # chi-square tests: fixed seeds, so a pass is reproducible; this only flags real misfits


def counts_table(rng, rows=30, V=30, p_zero=0.4):
    """Integer counts with zeros, every row with a positive total."""
    counts = rng.integers(1, 9, (rows, V))
    counts[rng.random((rows, V)) < p_zero] = 0
    counts[:, 0] += 1
    return counts


def chisquare(observed, expected_probs):
    """p-value of ``observed`` counts against ``expected_probs``; fails if a zero-probability category was drawn."""
    keep = expected_probs > 0
    assert observed[~keep].sum() == 0, "a category of probability zero was drawn"
    exp = expected_probs[keep] / expected_probs[keep].sum() * observed.sum()
    return stats.chisquare(observed[keep], exp).pvalue
