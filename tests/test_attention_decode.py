"""Decoding (T <= 8, split-KV) and the in-tile options (window, softcap, ALiBi) against the reference."""

from __future__ import annotations

import importlib

import numba
import numpy as np
import pytest

from fastgram import reference
from fastgram.attention import attention
from fastgram.kernels.attention_decode import MAX_T, SPLIT

#: Stated accuracy, relative to the largest |output| of the float64 reference.
TOLERANCE = {np.float32: 1e-5, np.float64: 1e-12}


def make(rng, B, H, H_kv, T, S, D, Dv=None, dtype=np.float32):
    Dv = D if Dv is None else Dv
    q = rng.standard_normal((B, H, T, D)).astype(dtype)
    k = rng.standard_normal((B, H_kv, S, D)).astype(dtype)
    v = rng.standard_normal((B, H_kv, S, Dv)).astype(dtype)
    return q, k, v


def want64(q, k, v, **kwargs):
    return reference.attention(*(np.asarray(x, np.float64) for x in (q, k, v)), **kwargs)


def assert_close(got, want, dtype):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape
    scale = max(float(np.abs(want[np.isfinite(want)]).max(initial=0.0)), 1e-300)
    same = (got == want) | (np.isnan(got) & np.isnan(want))
    with np.errstate(invalid="ignore"):
        err = np.where(same, 0.0, np.abs(got.astype(np.float64) - want))
    assert float(np.nan_to_num(err, nan=np.inf).max(initial=0.0)) <= TOLERANCE[dtype] * scale


def check(q, k, v, dtype=np.float32, **kwargs):
    out, lse = attention(q, k, v, return_lse=True, **kwargs)
    want, want_lse = want64(q, k, v, return_lse=True, **kwargs)
    assert out.dtype == q.dtype and lse.dtype == q.dtype
    assert_close(out, want, dtype)
    assert_close(lse, want_lse, dtype)
    return out


# --- decode shapes ------------------------------------------------------------------------------

DECODE = [
    # B, H, H_kv, T, S, D, Dv
    (1, 1, 1, 1, 1, 1, None),
    (2, 4, 4, 1, 7, 16, None),
    (1, 8, 2, 2, SPLIT - 1, 32, 24),  # GQA, one split short of full
    (2, 4, 1, 3, SPLIT, 8, None),  # multi-query, exactly one split
    (1, 6, 3, 5, SPLIT + 1, 64, None),  # a second split of one key
    (1, 4, 2, 8, 3 * SPLIT + 17, 16, None),  # uneven last split
    (1, 2, 1, 1, 5000, 128, None),  # long cache
]


@pytest.mark.parametrize("shape", DECODE, ids=lambda s: "x".join(str(x) for x in s if x is not None))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_decode_matches_reference(shape, dtype):
    rng = np.random.default_rng(sum(x or 0 for x in shape))
    B, H, H_kv, T, S, D, Dv = shape
    assert T <= MAX_T
    q, k, v = make(rng, B, H, H_kv, T, S, D, Dv, dtype)
    for kwargs in ({}, {"causal": True, "causal_align": "bottom_right"}, {"causal": True}):
        check(q, k, v, dtype, **kwargs)


OPTIONS = [
    {"window": (100, -1)},
    {"window": (SPLIT + 3, 0)},  # keys start mid-split
    {"window": (0, 0)},  # the diagonal key only
    {"window": (-1, 2), "causal": True, "causal_align": "bottom_right"},
    {"window": (40, 3)},  # right window past the last key (T < S: clipped)
    {"softcap": 2.5},
    {"softcap": 0.3, "scale": 3.0},  # most scores saturate
    {"alibi_slopes": "H"},
    {"alibi_slopes": "BH", "window": (300, -1), "softcap": 5.0, "causal": True, "causal_align": "bottom_right"},
    {"alibi_slopes": "H", "mask": "padding", "softcap": 1.0},
    {"window": (700, -1), "mask": "additive", "alibi_slopes": "BH"},
]


def _options(rng, B, H, T, S, opts):
    kwargs = dict(opts)
    if kwargs.get("alibi_slopes") == "H":
        kwargs["alibi_slopes"] = 2.0 ** -np.arange(1, H + 1, dtype=np.float64)  # the ALiBi paper's
    elif kwargs.get("alibi_slopes") == "BH":
        kwargs["alibi_slopes"] = rng.random((B, H)) * 0.2
    if kwargs.get("mask") == "padding":
        lengths = rng.integers(1, S + 1, B)
        kwargs["mask"] = (np.arange(S) < lengths[:, None])[:, None, None, :]  # (B, 1, 1, S)
    elif kwargs.get("mask") == "additive":
        kwargs["mask"] = np.where(rng.random((B, H, T, S)) < 0.1, -np.inf, rng.standard_normal((B, H, T, S)))
    return kwargs


@pytest.mark.parametrize("opts", OPTIONS, ids=lambda o: ",".join(o))
@pytest.mark.parametrize("T", [1, 4, 8, 37])  # decode path and prefill path
def test_options_match_reference(opts, T):
    rng = np.random.default_rng(T)
    B, H, H_kv, S, D = 2, 4, 2, 2 * SPLIT + 33, 16
    q, k, v = make(rng, B, H, H_kv, T, S, D)
    check(q, k, v, **_options(rng, B, H, T, S, opts))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_options_in_prefill_tiles(dtype):
    # T = S, causal top-left, windows crossing query blocks and key tiles, float64 accuracy
    rng = np.random.default_rng(3)
    B, H, H_kv, T, D = 1, 4, 2, 200, 8
    q, k, v = make(rng, B, H, H_kv, T, T, D, dtype=dtype)
    slopes = rng.random(H)
    for kwargs in (
        {"window": (17, 5), "causal": True},
        {"window": (64, 64), "softcap": 1.5, "alibi_slopes": slopes},
        {"window": (0, -1), "mask": rng.random((T, T)) < 0.5},
    ):
        check(q, k, v, dtype, **kwargs)


def test_softcap_at_the_ends_of_float32s_range(rng):
    """The largest and smallest caps float32 takes give the uncapped and the saturated result."""
    for T in (4, 20):  # the decode and the prefill path
        q, k, v = (rng.standard_normal((1, 1, T, 8)).astype(np.float32) for _ in range(3))
        np.testing.assert_allclose(attention(q, k, v, softcap=1.7e38), attention(q, k, v), rtol=1e-6, atol=1e-6)
        capped = attention(q, k, v, softcap=6e-39)  # every score capped to +-6e-39: uniform weights
        np.testing.assert_allclose(capped, np.broadcast_to(v.mean(axis=2, keepdims=True), capped.shape), atol=1e-6)


def test_softcap_saturates_and_small_scores_are_accurate():
    rng = np.random.default_rng(4)
    q, k, v = make(rng, 1, 2, 2, 3, 600, 64)
    for cap, scale in ((50.0, 1.0), (1e-3, 1.0), (1e4, 1e-3), (0.5, 10.0)):
        for T in (3, 20):
            check(q[..., :T, :] if T <= 3 else np.repeat(q, 7, axis=2)[..., :T, :], k, v, softcap=cap, scale=scale)


def test_window_beyond_the_keys_and_empty_windows():
    rng = np.random.default_rng(5)
    q, k, v = make(rng, 2, 2, 2, 4, 50, 8)
    # left window reaching past the first key, right window past the last: no effect
    np.testing.assert_allclose(attention(q, k, v, window=(10**6, 10**6)), attention(q, k, v), rtol=0, atol=1e-6)
    for window in ((2**63 - 1, -1), (-1, 2**63 - 1), (2**63 - 1, 0), (3, 2**62)):  # no int64 overflow
        check(q, k, v, window=window)
        check(q, k, v, causal=True, window=window)
    # top-left causal with a bottom-right window (0, 0): query i sees key i + 46 <= i: nothing
    out, lse = attention(q, k, v, causal=True, window=(0, 0), return_lse=True)
    assert (out == 0).all() and (lse == -np.inf).all()
    check(q, k, v, causal=True, window=(46, 0))


def test_nan_and_inf_outside_the_window_never_reach_the_output():
    rng = np.random.default_rng(6)
    for T in (1, 5, 20):
        q, k, v = make(rng, 1, 4, 2, T, 3 * SPLIT, 16)
        k[..., : SPLIT + 5, :] = np.nan  # older than the window
        v[..., : SPLIT + 5, :] = np.inf
        out = attention(q, k, v, window=(SPLIT, 0))
        assert np.isfinite(out).all()
        check(q, k, v, window=(SPLIT, 0))
        keep = np.ones(3 * SPLIT, bool)
        keep[: SPLIT + 5] = False
        out = attention(q, k, v, mask=keep, alibi_slopes=np.ones(4))
        assert np.isfinite(out).all()


def test_decode_masks_broadcast_and_fully_masked_rows():
    rng = np.random.default_rng(7)
    B, H, H_kv, T, S = 3, 4, 2, 3, 400
    q, k, v = make(rng, B, H, H_kv, T, S, 16)
    per_head = rng.random((H, 1, S)) < 0.7  # (H, 1, S)
    full = rng.random((B, H, T, S)) < 0.5
    full[0, 1, 2] = False  # a fully masked row
    additive = np.where(rng.random((T, S)) < 0.3, -np.inf, rng.standard_normal((T, S)))
    read_only = np.broadcast_to(per_head, (B, H, T, S))
    for mask in (per_head, full, additive, additive.astype(np.float32), read_only):
        check(q, k, v, mask=mask)
    out, lse = attention(q, k, v, mask=full, return_lse=True)
    assert (out[0, 1, 2] == 0).all() and lse[0, 1, 2] == -np.inf
    out, lse = attention(q, k[..., :0, :], v[..., :0, :], return_lse=True)  # no keys at all
    assert out.shape == (B, H, T, 16) and (out == 0).all() and (lse == -np.inf).all()


def test_decode_broadcast_batch_and_two_d_inputs():
    rng = np.random.default_rng(8)
    q = rng.standard_normal((2, 3, 4, 1, 8)).astype(np.float32)
    k = rng.standard_normal((1, 3, 2, 300, 8)).astype(np.float32)
    v = np.broadcast_to(rng.standard_normal((3, 2, 300, 8)).astype(np.float32), (2, 3, 2, 300, 8))
    slopes = rng.random((2, 3, 4))
    out = attention(q, k, v, alibi_slopes=slopes)
    assert_close(out, want64(q, np.broadcast_to(k, v.shape), np.array(v), alibi_slopes=slopes), np.float32)
    q2, k2, v2 = q[0, 0, :1, 0], k[0, 0, 0], v[0, 0, 0]  # (1, D), (S, D), (S, D)
    assert_close(attention(q2, k2, v2, window=(9, 0)), want64(q2, k2, v2, window=(9, 0)), np.float32)


def test_decode_result_does_not_depend_on_thread_count():
    rng = np.random.default_rng(9)
    q, k, v = make(rng, 2, 8, 2, 2, 4 * SPLIT + 7, 32)
    before = numba.get_num_threads()
    try:
        runs = []
        for n in sorted({1, before}):
            numba.set_num_threads(n)
            runs.append(attention(q, k, v, return_lse=True, window=(900, -1)))
    finally:
        numba.set_num_threads(before)
    for out, lse in runs[1:]:
        np.testing.assert_array_equal(out, runs[0][0])
        np.testing.assert_array_equal(lse, runs[0][1])


@pytest.mark.parametrize("T", [1, 3, 8])
@pytest.mark.parametrize("S", [1, SPLIT - 1, SPLIT, 2 * SPLIT + 45])  # splits that end short of the cache
def test_decode_on_a_growing_kv_cache_reads_only_the_keys_in_use(T, S):
    """A decode loop's ``cache[:, :, :S]``: the split-KV kernel gets the whole cache and ``S``
    (not a copy), never reads the rows past ``S`` (NaN here) and gives the contiguous copy's bits."""
    rng = np.random.default_rng(S + T)
    B, H, H_kv, D, S_max = 2, 6, 2, 32, 3 * SPLIT + 5
    k_cache = rng.standard_normal((B, H_kv, S_max, D), dtype=np.float32)
    v_cache = rng.standard_normal((B, H_kv, S_max, D), dtype=np.float32)
    k_cache[:, :, S:] = np.nan
    v_cache[:, :, S:] = np.inf
    q = rng.standard_normal((B, H, T, D), dtype=np.float32)
    k, v = k_cache[:, :, :S], v_cache[:, :, :S]
    kinds = ({}, {"causal": True, "causal_align": "bottom_right"}, {"window": (40, 0)})
    for kwargs in kinds:
        check(q, k, v, **kwargs)  # against the reference
        out, lse = attention(q, k, v, return_lse=True, **kwargs)
        want, want_lse = attention(q, np.array(k), np.array(v), return_lse=True, **kwargs)
        np.testing.assert_array_equal(out, want, err_msg=str(kwargs))
        np.testing.assert_array_equal(lse, want_lse, err_msg=str(kwargs))
        assert np.isfinite(out).all()
    copies = []
    real = np.ascontiguousarray

    def counting(x, *args, **kw):  # the wrapper copies a non-contiguous k or v with this
        if np.shares_memory(x, k_cache) or np.shares_memory(x, v_cache):
            copies.append(x.shape)
        return real(x, *args, **kw)

    wrapper = importlib.import_module("fastgram.attention")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(wrapper.np, "ascontiguousarray", counting)
        attention(q, k, v)
        assert copies == []
        attention(q, k_cache[:, :, 1 : S + 1], v)  # a view that starts later is still copied
    assert copies == [(B, H_kv, S, D)]


# --- errors -------------------------------------------------------------------------------------

GOOD = np.zeros((2, 4, 1, 8), np.float32)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"window": (-2, 0)}, ValueError, r"window\[0\] must be >= 0 or -1 \(unbounded\), got -2"),
        ({"window": (3, -5)}, ValueError, r"window\[1\] must be >= 0 or -1 \(unbounded\), got -5"),
        ({"window": 3}, TypeError, r"window must be a pair \(left, right\) of integers, got 3"),
        ({"window": (1, 2, 3)}, TypeError, r"window must be a pair"),
        ({"window": (1.5, 2)}, TypeError, r"window\[0\] must be an integer, got float 1.5"),
        ({"window": (1, True)}, TypeError, r"window\[1\] must be an integer, got bool"),
        ({"softcap": 0.0}, ValueError, r"softcap must be in \[5.88e-39, 1.7e\+38\] for float32 inputs, got 0.0"),
        ({"softcap": -1}, ValueError, r"softcap must be in \[.*\] for float32 inputs, got -1.0"),
        ({"softcap": 3e38}, ValueError, r"softcap must be in \[.*\] for float32 inputs, got 3e\+38"),
        ({"softcap": 1e-40}, ValueError, r"softcap must be in \[.*\] for float32 inputs, got 1e-40"),
        ({"softcap": np.inf}, ValueError, r"softcap must be finite"),
        ({"softcap": "30"}, TypeError, r"softcap must be a real number"),
        (
            {"alibi_slopes": np.ones(3)},
            ValueError,
            r"alibi_slopes must have shape \(4,\) or \(2, 4\).*got shape \(3,\)",
        ),
        ({"alibi_slopes": np.ones((3, 4))}, ValueError, r"alibi_slopes must have shape .*got shape \(3, 4\)"),
        ({"alibi_slopes": np.ones((1, 2, 4))}, ValueError, r"alibi_slopes must have shape .*got shape \(1, 2, 4\)"),
        ({"alibi_slopes": np.ones(4, np.int64)}, TypeError, r"alibi_slopes must be float32 or float64"),
        ({"alibi_slopes": np.array([1, np.nan, 1, 1])}, ValueError, r"alibi_slopes must be finite"),
    ],
)
def test_option_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        attention(GOOD, GOOD, GOOD, **kwargs)


# --- torch --------------------------------------------------------------------------------------


def test_decode_agrees_with_torch_sdpa():
    torch = pytest.importorskip("torch")
    sdpa = torch.nn.functional.scaled_dot_product_attention
    rng = np.random.default_rng(10)
    for B, H, H_kv, T, S, D in ((1, 12, 12, 1, 1024, 64), (2, 8, 2, 4, 700, 32), (1, 4, 1, 8, 5000, 16)):
        q, k, v = make(rng, B, H, H_kv, T, S, D)
        t = [torch.from_numpy(x) for x in (q, k, v)]
        gqa = H != H_kv
        with torch.no_grad():
            np.testing.assert_allclose(attention(q, k, v), sdpa(*t, enable_gqa=gqa).numpy(), rtol=0, atol=1e-5)
            # window and ALiBi as the additive mask SDPA takes (T <= S: no fully masked rows)
            slopes = rng.random(H) * 0.1
            i, j = np.arange(T)[:, None], np.arange(S)[None, :]
            visible = (j >= i + S - T - 300) & (j <= i + S - T)
            bias = np.where(visible, -slopes[:, None, None] * np.abs(i + S - T - j), -np.inf).astype(np.float32)
            want = sdpa(*t, attn_mask=torch.from_numpy(bias), enable_gqa=gqa).numpy()
            got = attention(q, k, v, window=(300, 0), alibi_slopes=slopes)
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
