"""Property checks of every draw function on extreme rows (subnormal, huge, mixed scales).

Imported by ``tests/test_sampling_properties.py``, which runs :func:`run` in a subprocess too,
so that a crash (the draws once walked past their row) fails a test instead of killing pytest:
``python tests/_sampling_fuzz.py [examples]``.
"""

from __future__ import annotations

import sys

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastgram import Sampler, generate, multinomial, reference, sample_logits, sample_next

TINY = 5e-324
EXTREME = [
    0.0,
    TINY,
    2 * TINY,
    1e-320,
    2.2250738585072014e-308,
    1e-300,
    0.5,
    1.0,
    3.0,
    1e300,
    1e308,
    1.7976931348623157e308,
]

weight = st.one_of(st.sampled_from(EXTREME), st.floats(0.0, 1.7976931348623157e308, allow_subnormal=True))
rows = st.lists(weight, min_size=1, max_size=7).filter(lambda r: max(r) > 0)
counts = st.lists(
    st.one_of(st.sampled_from([0, 1, 2**31, 2**32, 2**61]), st.integers(0, 2**60)), min_size=1, max_size=6
).filter(lambda r: sum(r) > 0 and sum(r) < 2**63)


def _rolled(row: np.ndarray) -> np.ndarray:
    """A square table whose row ``k`` is ``row`` rotated by ``k`` (every row has weight)."""
    return np.stack([np.roll(row, k) for k in range(row.shape[0])])


def check_float_row(values) -> None:
    """Every draw from a row lands on a positive weight, and the kernels equal the reference."""
    for dtype in (np.float64, np.float32):
        row = np.array(values, np.float64)
        if dtype == np.float32:
            with np.errstate(over="ignore", under="ignore"):
                row = row.astype(np.float32)
            if not np.isfinite(row).all() or row.max() <= 0:
                continue
        positive = row > 0
        s = Sampler(row[None, :])
        got = sample_next(s, np.zeros(400, np.int64), seed=1)
        assert positive[got].all(), (values, got)
        assert np.array_equal(got, reference.sample_next(s, np.zeros(400, np.int64), seed=1))
        table = _rolled(row)
        chains = generate(table, np.arange(row.shape[0]), 30, seed=2)
        prev = np.concatenate([np.arange(row.shape[0])[:, None], chains[:, :-1]], axis=1)
        assert (table[prev, chains] > 0).all(), (values, chains)
        assert np.array_equal(chains, reference.generate(table, np.arange(row.shape[0]), 30, seed=2))
        drawn = multinomial(row, 300, seed=3)
        assert positive[drawn].all(), (values, drawn)
        assert np.array_equal(drawn, reference.multinomial(row, 300, seed=3))
        k = int(positive.sum())
        once = multinomial(row, k, replacement=False, seed=4)
        assert positive[once].all() and np.unique(once).size == k, (values, once)
        assert np.array_equal(once, reference.multinomial(row, k, replacement=False, seed=4))


def check_count_row(values) -> None:
    """Exact count rows: draws on positive counts; totals past 2**63 over rows stay exact."""
    row = np.array(values, np.int64)
    table = np.stack([row] * 3)  # the rows' totals together may pass 2**63
    got = sample_next(table, np.arange(300) % 3, seed=5)
    assert (row[got] > 0).all(), (values, got)
    assert np.array_equal(got, reference.sample_next(table, np.arange(300) % 3, seed=5))
    square = _rolled(row)
    chains = generate(square, np.arange(row.shape[0]), 20, seed=6)
    assert np.array_equal(chains, reference.generate(square, np.arange(row.shape[0]), 20, seed=6))


def check_logits(values) -> None:
    x = np.array(values, np.float64)
    w = np.exp(x - x.max())
    got = sample_logits(x, seed=7, num_samples=200)
    assert (w[got] > 0).all(), (values, got)
    assert np.array_equal(got, reference.sample_logits(x, seed=7, num_samples=200))


def run(examples: int = 100) -> None:
    """Run the three properties on ``examples`` drawn cases each (derandomised: reproducible)."""
    opts = dict(max_examples=examples, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    given(rows)(settings(**opts)(check_float_row))()
    given(counts)(settings(**opts)(check_count_row))()
    finite = st.floats(-1e308, 1e308)
    given(st.lists(finite, min_size=1, max_size=7))(settings(**opts)(check_logits))()


if __name__ == "__main__":
    run(int(sys.argv[1]) if len(sys.argv) > 1 else 100)
