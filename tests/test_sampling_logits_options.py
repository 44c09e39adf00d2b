"""sample_logits for decoding: the selection path, per-row parameters, penalties, logprobs.

Every option is compared with :func:`fastgram.reference.sample_logits` draw for draw; the
penalties also with their formulas and (where ``transformers`` is installed) Hugging Face's
processors; per-row temperatures with a chi-square test per row.
"""

from __future__ import annotations

import numpy as np
import pytest
from _sampling import P_MIN, chisquare

from fastgram import reference
from fastgram.kernels import sampling_select as _sel
from fastgram.reference.sampling import penalized_logits
from fastgram.sampling import sample_logits


def _same(logits, n=None, **options):
    """Draws (and logprobs) of the kernel equal the reference's, for one and for n draws."""
    for num in (None, n) if n else (None,):
        got, glp = sample_logits(logits, seed=11, num_samples=num, return_logprobs=True, **options)
        want, wlp = reference.sample_logits(logits, seed=11, num_samples=num, return_logprobs=True, **options)
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(glp, wlp)
        assert glp.dtype == np.asarray(logits).dtype.newbyteorder("=")
        assert np.array_equal(sample_logits(logits, seed=11, num_samples=num, **options), got)
    return got


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "options",
    [
        {"top_k": 50, "top_p": 0.9},
        {"top_k": 1},
        {"top_k": 64, "min_p": 0.1, "temperature": 0.7},
        {"top_k": 40, "top_p": 0.5, "min_p": 0.02, "temperature": 1.6},
        {"min_p": 0.05},
        {"min_p": 1.0},
        {"top_p": 0.8},  # top-p without top-k: the full row
        {"top_k": 3_000},  # over V / 8: the full row
        {"temperature": 0.6},
    ],
)
def test_selection_path_matches_reference(rng, dtype, options):
    logits = (rng.standard_normal((5, 9_000)) * 3).astype(dtype)
    logits[1, 100:4_000] = -np.inf
    logits[2] = np.round(logits[2])  # many ties at the k-th logit: the gathered set is rescanned
    _same(logits, n=37, **options)


def test_edge_rows_take_a_correct_path(rng):
    base = rng.standard_normal((6, 2_000))
    rows = [
        base[0] * 1e-3,  # everything close: a huge gathered set (the full row)
        base[1] * 1e3,  # the k-th weight underflows (the full row)
        np.where(np.arange(2_000) < 30, base[2], -np.inf),  # fewer finite logits than top_k
        np.full(2_000, 2.5),  # all tied
        np.concatenate([[-0.0, 0.0], np.full(1_998, -1.0)]),  # signed zeros at the top
        base[5],
    ]
    logits = np.array(rows)
    for options in ({"top_k": 50, "top_p": 0.9}, {"top_k": 50}, {"min_p": 0.3}, {"temperature": 1e-4, "top_k": 5}):
        _same(logits, n=20, **options)
        _same(logits.astype(np.float32), n=20, **options)
    assert sample_logits(np.array([[-0.0, 0.0, -1.0]]), temperature=0, seed=0)[0] == 0  # the first largest


def test_short_rows_and_large_batches(rng):
    logits = (rng.standard_normal((70, 130)) * 2).astype(np.float32)
    _same(logits, n=5, top_k=10, top_p=0.7)
    _same(logits[:, :1], top_k=1)  # V = 1
    _same(logits[:3, :65], top_k=2, min_p=0.5)  # one full block and one of a single logit


def test_per_row_parameters(rng):
    logits = (rng.standard_normal((2, 3, 4_000)) * 2).astype(np.float32)
    options = {
        "temperature": np.array([1.0, 0.0, 0.5, 2.0, 1.0, 0.8]),  # row 1 greedy
        "top_k": np.array([50, 10, 4_000, 7, 100_000, 1]),
        "top_p": np.array([0.9, 1.0, 0.3, 1.0, 0.5, 0.9]),
        "min_p": np.array([[0.0, 0.1, 0.0], [0.2, 0.0, 0.0]]),  # the leading shape works too
    }
    got = _same(logits, n=25, **options)
    for r in range(6):  # each row is the row drawn on its own, with its own stream
        one = {k: np.ravel(v)[r] for k, v in options.items()}
        want = reference.sample_logits(logits.reshape(6, -1)[r], seed=11, offset=r, num_samples=25, **one)
        np.testing.assert_array_equal(got.reshape(6, 25)[r], want)


def test_per_row_temperatures_fit_each_row(rng):
    V, n = 40, 40_000
    logits = np.tile(rng.standard_normal(V) * 1.5, (3, 1))
    temps = np.array([0.5, 1.0, 3.0])
    draws = sample_logits(logits, temperature=temps, top_k=25, seed=7, num_samples=n)
    for r, T in enumerate(temps):
        p = np.exp((logits[r] - logits[r].max()) / T)
        p[p < np.sort(p)[-25]] = 0
        assert chisquare(np.bincount(draws[r], minlength=V), p) > P_MIN


def _formula(x, hist, r=1.0, f=0.0, p=0.0, bias=None):
    """The penalties as the docstring writes them, in float64, one row."""
    x = np.array(x, np.float64)
    for i, v in (bias or {}).items():
        x[i] += v
    for i in np.unique(hist):
        c = np.count_nonzero(hist == i)
        x[i] = x[i] * r if x[i] < 0 else x[i] / r
        x[i] -= f * c + p
    return x


def test_penalties_follow_their_formulas(rng):
    logits = rng.standard_normal((4, 300)) * 3
    history = rng.integers(0, 300, (4, 60))
    bias = {3: 2.5, 17: -np.inf, 299: -1.0}
    options = {"repetition_penalty": 1.3, "frequency_penalty": 0.2, "presence_penalty": 0.5, "logit_bias": bias}
    got = penalized_logits(logits, history=history, **options)
    for b in range(4):
        want = _formula(logits[b], history[b], 1.3, 0.2, 0.5, bias)
        np.testing.assert_allclose(got[b], want, rtol=1e-13, atol=1e-13)
    _same(logits, n=30, history=history, top_k=20, top_p=0.9, **options)
    _same(logits.astype(np.float32), n=30, history=history, top_k=20, **options)
    _same(logits, history=history, temperature=0, **options)
    _same(logits, n=30, history=history, **options)  # plain temperature: the full row
    # a strong repetition penalty (and a ban) keeps every seen id out of a greedy draw
    strong = sample_logits(
        logits, history=history, repetition_penalty=1e6, frequency_penalty=1e3, temperature=0, seed=0
    )
    assert not any(strong[b] in history[b] for b in range(4))


def test_per_row_penalties_ragged_history_and_bias(rng):
    logits = (rng.standard_normal((3, 500)) * 2).astype(np.float32)
    history = [rng.integers(0, 500, 5), np.zeros(0, np.int64), rng.integers(0, 500, 90).astype(np.uint16)]
    options = {
        "history": history,
        "repetition_penalty": np.array([1.0, 2.0, 0.5]),
        "presence_penalty": np.array([-0.5, 0.0, 1.0]),
        "frequency_penalty": np.array([0.1, 0.3, -0.2]),
        "logit_bias": [{0: 5.0}, None, {499: 1.5, 7: -3.0}],
    }
    _same(logits, n=30, top_k=30, top_p=0.95, **options)
    _same(logits, n=30, min_p=0.1, **options)
    dense = penalized_logits(logits, **options)
    assert dense.dtype == np.float32
    np.testing.assert_array_equal(dense[1], logits[1])  # no history, no bias: unchanged
    np.testing.assert_allclose(dense[0], _formula(logits[0], history[0], 1.0, 0.1, -0.5, {0: 5.0}), rtol=1e-6)


def test_penalties_match_hugging_face_processors(rng):
    torch = pytest.importorskip("torch")
    lp = pytest.importorskip("transformers.generation.logits_process")
    logits = (rng.standard_normal((4, 200)) * 3).astype(np.float32)
    history = rng.integers(0, 200, (4, 30))
    scores = torch.as_tensor(logits.copy())
    ids = torch.as_tensor(history)
    bias = {5: 1.5, 9: -2.0}
    scores = lp.SequenceBiasLogitsProcessor({(i,): v for i, v in bias.items()})(ids, scores)
    scores = lp.RepetitionPenaltyLogitsProcessor(1.7)(ids, scores)
    ours = penalized_logits(logits, history=history, repetition_penalty=1.7, logit_bias=bias)
    np.testing.assert_array_equal(ours, scores.numpy())
    warped = lp.TemperatureLogitsWarper(0.8)(ids, torch.as_tensor(ours.copy()))
    warped = lp.TopKLogitsWarper(12)(ids, warped)
    warped = lp.TopPLogitsWarper(0.8)(ids, warped)
    kept_hf = np.isfinite(warped.numpy())
    # our draws land only on tokens Hugging Face keeps (its float32 softmax may keep a boundary token more)
    draws = sample_logits(logits, history=history, repetition_penalty=1.7, logit_bias=bias, temperature=0.8,
                          top_k=12, top_p=0.8, seed=3, num_samples=2_000)  # fmt: skip
    assert all(kept_hf[b, draws[b]].all() for b in range(4))


def test_logprobs_are_the_filtered_log_softmax(rng):
    logits = rng.standard_normal((3, 1_000)) * 2
    ids, lp = sample_logits(logits, top_k=30, top_p=0.8, temperature=0.9, seed=4, num_samples=50, return_logprobs=True)
    for b in range(3):
        w = np.exp((logits[b] - logits[b].max()) / 0.9)
        w[w < np.sort(w)[-30]] = 0
        order = np.argsort(w)
        drop = np.cumsum(w[order]) <= 0.2 * w.sum()
        drop[-1] = False
        w[order[drop]] = 0
        np.testing.assert_allclose(lp[b], np.log(w[ids[b]] / w.sum()), rtol=1e-12)
    ids, lp = sample_logits(logits, temperature=0, seed=0, return_logprobs=True)
    np.testing.assert_array_equal(lp, 0.0)
    np.testing.assert_array_equal(ids, logits.argmax(axis=1))


def test_rows_give_the_same_draws_in_any_batch(rng, threads):
    logits = (rng.standard_normal((9, 3_000)) * 2).astype(np.float32)
    full = sample_logits(logits, top_k=50, top_p=0.9, seed=5, num_samples=4)
    np.testing.assert_array_equal(
        sample_logits(logits[4:], top_k=50, top_p=0.9, seed=5, num_samples=4, offset=4), full[4:]
    )
    with threads(1):
        np.testing.assert_array_equal(sample_logits(logits, top_k=50, top_p=0.9, seed=5, num_samples=4), full)
    swapped = logits.astype(">f4")[:, ::-1][:, ::-1]
    np.testing.assert_array_equal(sample_logits(swapped, top_k=50, top_p=0.9, seed=5, num_samples=4), full)


def _median_of_three_killer(n: int, k: int) -> np.ndarray:
    """Distinct values on which quickselect with a median-of-three pivot, asked for the k-th
    largest, peels off two values a round (O(n^2) without a fallback)."""
    work, val = np.arange(n), np.full(n, -1, np.int64)
    lo, hi, want, s = 0, n - 1, n - k, 0
    while lo + 2 < want and (lo + hi) // 2 > lo + 1:
        mid = (lo + hi) // 2
        val[work[lo]], val[work[mid]] = s, s + 1
        s += 2
        work[lo + 1], work[mid] = work[mid], work[lo + 1]
        lo += 2
    rest = val < 0
    val[rest] = s + np.arange(rest.sum())
    return val


@pytest.mark.parametrize("k", [30, 700])  # the selection path's candidates, and the full row
def test_top_k_on_quickselect_adversarial_rows(k):
    """The introselect fallback (a merge sort after 2 log2 n + 8 rounds) keeps the draw exact."""
    V = 5_000
    val = _median_of_three_killer(V, k).astype(np.float64)
    assert _sel.kth_largest(val, k, np.empty(V)) == np.sort(val)[-k]
    _same((-20.0 + 20.0 * val / V)[None, :], n=9, top_k=k)


def test_selection_constants_are_sane():
    assert _sel.BLOCK == 64 and _sel.MARGIN < 1e-6 and _sel.D_MIN < -600


L3 = np.zeros((2, 3))


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: sample_logits(L3, history=[[0, 3]] * 2, seed=0), ValueError,
         r"history: token id 3 at row 0, position 1 is outside \[0, 3\)"),
        (lambda: sample_logits(L3, history=[[0, -1], [1, 1]], seed=0), ValueError,
         r"history: token id -1 at row 0, position 1 is outside \[0, 3\)"),
        (lambda: sample_logits(L3, history=[np.array([0]), np.array([5])], seed=0), ValueError,
         r"history: token id 5 at row 1, position 0 is outside \[0, 3\)"),
        (lambda: sample_logits(L3, history=np.zeros((3, 2), int), seed=0), ValueError,
         r"history must have shape \(2, L\)"),
        (lambda: sample_logits(L3, history=[np.array([0])], seed=0), ValueError,
         r"history must have one sequence per row \(2\), got 1"),
        (lambda: sample_logits(L3, history=np.zeros((2, 2)), seed=0), TypeError,
         r"history must be an array of integers, got dtype float64"),
        (lambda: sample_logits(L3, repetition_penalty=0.0, seed=0), ValueError,
         r"repetition_penalty must be in \(0.0, inf\], got 0.0"),
        (lambda: sample_logits(L3, repetition_penalty=np.array([1.0, -2.0]), seed=0), ValueError,
         r"repetition_penalty\[1\] must be in \(0.0, inf\], got -2.0"),
        (lambda: sample_logits(L3, presence_penalty=np.nan, seed=0), ValueError, r"presence_penalty must be finite"),
        (lambda: sample_logits(L3, frequency_penalty=[0.1, np.inf], seed=0), ValueError,
         r"frequency_penalty\[1\] must be finite"),
        (lambda: sample_logits(L3, temperature=np.ones(3), seed=0), ValueError,
         r"temperature must be a scalar or have one value per row, shape \(2,\), got shape \(3,\)"),
        (lambda: sample_logits(L3, top_k=np.array([1, 0]), seed=0), ValueError, r"top_k\[1\] must be >= 1, got 0"),
        (lambda: sample_logits(L3, top_k=np.array([1.0, 2.0]), seed=0), TypeError,
         r"top_k must be an integer or an array of integers"),
        (lambda: sample_logits(L3, top_p=np.array([0.5, 1.5]), seed=0), ValueError,
         r"top_p\[1\] must be in \(0.0, 1.0\], got 1.5"),
        (lambda: sample_logits(L3, min_p=np.array([-0.5, 0.5]), seed=0), ValueError,
         r"min_p\[0\] must be in \[0.0, 1.0\], got -0.5"),
        (lambda: sample_logits(L3, temperature=np.array([1.0, -1.0]), seed=0), ValueError,
         r"temperature\[1\] must be in \[0.0, inf\], got -1.0"),
        (lambda: sample_logits(L3, logit_bias={3: 1.0}, seed=0), ValueError,
         r"logit_bias: token id 3 is outside \[0, 3\)"),
        (lambda: sample_logits(L3, logit_bias={1: np.nan}, seed=0), ValueError,
         r"logit_bias\[1\] must be finite or -inf, got nan"),
        (lambda: sample_logits(L3, logit_bias=[{0: 1.0}], seed=0), ValueError,
         r"logit_bias must be a dict or have one dict per row \(2\), got 1"),
        (lambda: sample_logits(L3, logit_bias=5, seed=0), TypeError, r"logit_bias must be a dict"),
        (lambda: sample_logits(L3, logit_bias={0: "a"}, seed=0), TypeError, r"logit_bias\[0\] must be a real number"),
        (lambda: sample_logits(L3, logit_bias={0: -np.inf, 1: -np.inf, 2: -np.inf}, seed=0), ValueError,
         r"logits: row 0 is all -inf"),
        (lambda: sample_logits(np.full((1, 3), 3e38, np.float32), logit_bias={1: 1e38}, seed=0), ValueError,
         r"logit_bias and penalties make logits\[0, 1\] = inf"),
        (lambda: sample_logits(L3, return_logprobs=1, seed=0), TypeError, r"return_logprobs must be a bool"),
        (lambda: sample_logits(np.array([[0.0, np.nan, 1.0]]), top_k=2, seed=0), ValueError,
         r"logits must be finite, got nan at \[0, 1\]"),
        (lambda: sample_logits(np.array([[0.0, 1.0], [np.inf, 1.0]], np.float32), top_k=1, seed=0), ValueError,
         r"logits must be finite, got inf at \[1, 0\]"),
        (lambda: sample_logits(np.array([[0.0, 1.0], [-np.inf, -np.inf]]), top_k=1, seed=0), ValueError,
         r"logits: row 1 is all -inf"),
        (lambda: sample_logits(L3, temperature=10**400, seed=0), ValueError,
         r"temperature must be finite, got an integer of 401 digits"),
        (lambda: sample_logits(L3, logit_bias={1: -10**400}, seed=0), ValueError,
         r"logit_bias\[1\] must be finite, got an integer of 401 digits"),
        (lambda: sample_logits(L3, temperature=[True, 2.0], seed=0), TypeError,
         r"temperature must be a number or an array of numbers, got a bool"),
        (lambda: sample_logits(L3, history=[[1, [2]], [0]], repetition_penalty=2.0, seed=0), ValueError,
         r"history\[0\] must be a rectangular array"),
        (lambda: sample_logits(L3, history=[[1, 2], [[0]]], repetition_penalty=2.0, seed=0), ValueError,
         r"history\[1\] must be a sequence of ids \(1-D\), got shape \(1, 1\)"),
    ],
)  # fmt: skip
def test_bad_input_raises_naming_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()
