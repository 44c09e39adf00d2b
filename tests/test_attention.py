"""fastgram.attention against the float64 reference: shapes, dtypes, masks, causal, GQA, errors."""

from __future__ import annotations

import importlib
import threading

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastgram import reference
from fastgram.attention import attention
from fastgram.kernels.attention import BLOCK_K, BLOCK_Q

#: Stated accuracy, relative to the largest |output| of the float64 reference.
TOLERANCE = {np.float32: 1e-5, np.float64: 1e-12}


def make(rng, lead, H, H_kv, T, S, D, Dv=None, dtype=np.float64):
    Dv = D if Dv is None else Dv
    q = rng.standard_normal((*lead, H, T, D)).astype(dtype)
    k = rng.standard_normal((*lead, H_kv, S, D)).astype(dtype)
    v = rng.standard_normal((*lead, H_kv, S, Dv)).astype(dtype)
    return q, k, v


def want64(q, k, v, **kwargs):
    """The reference in float64 (masks as given)."""
    return reference.attention(*(np.asarray(x, np.float64) for x in (q, k, v)), **kwargs)


def assert_close(got, want, dtype):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape
    scale = max(float(np.abs(want[np.isfinite(want)]).max(initial=0.0)), 1e-300)
    same = (got == want) | (np.isnan(got) & np.isnan(want))
    with np.errstate(invalid="ignore"):
        err = np.where(same, 0.0, np.abs(got.astype(np.float64) - want))
    assert float(np.nan_to_num(err, nan=np.inf).max(initial=0.0)) <= TOLERANCE[dtype] * scale


SHAPES = [
    # lead, H, H_kv, T, S, D, Dv
    ((2,), 3, 3, 5, 7, 4, None),
    ((1,), 2, 2, 1, 1, 1, None),  # T = S = D = 1
    ((2,), 2, 2, 1, 300, 16, None),  # one query (decoding)
    ((2,), 2, 2, 37, 1, 8, None),  # one key
    ((1,), 1, 1, BLOCK_Q + 1, BLOCK_K + 1, 33, None),  # odd sizes across tile edges
    ((3,), 1, 1, 2 * BLOCK_Q, 2 * BLOCK_K, 64, None),  # exact tiles
    ((2,), 8, 2, 45, 70, 16, 24),  # grouped-query, Dv != D
    ((2, 3), 4, 1, 9, 11, 5, 3),  # two batch axes, multi-query
    ((), 1, 1, 70, 70, 7, None),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s[0] + s[1:6])))
@pytest.mark.parametrize("causal", [False, "top_left", "bottom_right"])
def test_matches_reference(shape, dtype, causal):
    rng = np.random.default_rng(1)
    lead, H, H_kv, T, S, D, Dv = shape
    q, k, v = make(rng, lead, H, H_kv, T, S, D, Dv, dtype)
    kwargs = {} if not causal else {"causal": True, "causal_align": causal}
    out, lse = attention(q, k, v, return_lse=True, **kwargs)
    assert out.dtype == dtype and lse.dtype == dtype
    want, want_lse = want64(q, k, v, return_lse=True, **kwargs)
    assert_close(out, want, dtype)
    assert_close(lse, want_lse, dtype)


def test_two_d_inputs_give_two_d_output():
    rng = np.random.default_rng(2)
    q, k, v = (x[0, 0] for x in make(rng, (1,), 1, 1, 6, 9, 4))
    out = attention(q, k, v)
    assert out.shape == (6, 4)
    assert_close(out, want64(q, k, v), np.float64)


def test_batch_axes_broadcast_without_copies():
    rng = np.random.default_rng(3)
    q = rng.standard_normal((2, 3, 4, 10, 8))
    k = rng.standard_normal((1, 3, 2, 12, 8))
    v = np.broadcast_to(rng.standard_normal((3, 2, 12, 6)), (2, 3, 2, 12, 6))  # zero strides
    out = attention(q, k, v, causal=True)
    assert out.shape == (2, 3, 4, 10, 6)
    want = want64(q, np.broadcast_to(k, (2, 3, 2, 12, 8)), np.array(v), causal=True)
    assert_close(out, want, np.float64)


def test_non_contiguous_and_byte_swapped_inputs():
    rng = np.random.default_rng(4)
    q, k, v = make(rng, (2,), 2, 2, 20, 30, 8)
    q_t = np.swapaxes(np.ascontiguousarray(np.swapaxes(q, -1, -2)), -1, -2)  # Fortran-like view
    k_s = k.astype(">f8")
    v_step = np.repeat(v, 2, axis=-1)[..., ::2]
    assert_close(attention(q_t, k_s, v_step), want64(q, k, v), np.float64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_masks_bool_and_additive_broadcast(dtype):
    rng = np.random.default_rng(5)
    q, k, v = make(rng, (3,), 4, 2, 40, 150, 16, dtype=dtype)
    lengths = np.array([1, 77, 150])
    padding = (np.arange(150) < lengths[:, None])[:, None, None, :]  # (B, 1, 1, S)
    per_head = rng.random((4, 1, 150)) < 0.7  # (H, 1, S)
    full = rng.random((3, 4, 40, 150)) < 0.5
    additive = np.where(rng.random((40, 150)) < 0.2, -np.inf, rng.standard_normal((40, 150)))  # (T, S)
    read_only = np.broadcast_to(padding, (3, 4, 40, 150))  # zero strides, not writeable
    for mask in (padding, per_head, full, read_only, additive, additive.astype(np.float32), additive[None, None]):
        for causal in (False, True):
            got = attention(q, k, v, mask=mask, causal=causal, causal_align="bottom_right")
            assert_close(got, want64(q, k, v, mask=mask, causal=causal, causal_align="bottom_right"), dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_query_independent_masks_across_query_blocks(dtype):
    # masks without a query axis (key padding) take a per-key path; T spans two query blocks
    rng = np.random.default_rng(11)
    T, S = BLOCK_Q + 9, 3 * BLOCK_K + 5
    q, k, v = make(rng, (3,), 2, 2, T, S, 12, dtype=dtype)
    lengths = np.array([1, 40, S])
    padding = (np.arange(S) < lengths[:, None])[:, None, None, :]  # (B, 1, 1, S)
    bias = np.where(padding, rng.standard_normal((3, 1, 1, S)), -np.inf)  # (B, 1, 1, S), finite or -inf
    for mask in (padding, bias, bias.astype(np.float32)):
        for kwargs in ({}, {"causal": True}, {"causal": True, "causal_align": "bottom_right"}):
            got, lse = attention(q, k, v, mask=mask, return_lse=True, **kwargs)
            want, want_lse = want64(q, k, v, mask=mask, return_lse=True, **kwargs)
            assert_close(got, want, dtype)
            assert_close(lse, want_lse, dtype)


def test_bool_mask_equals_additive_mask():
    rng = np.random.default_rng(6)
    q, k, v = make(rng, (2,), 2, 2, 30, 50, 8)
    keep = rng.random((2, 1, 30, 50)) < 0.6
    a = attention(q, k, v, mask=keep)
    b = attention(q, k, v, mask=np.where(keep, 0.0, -np.inf))
    np.testing.assert_array_equal(a, b)


def test_additive_masks_refuse_nan_and_plus_inf():
    rng = np.random.default_rng(9)
    q, k, v = (rng.standard_normal((1, 2, 5, 8)).astype(np.float32) for _ in range(3))
    for bad in (np.nan, np.inf):
        mask = np.zeros((5, 5), np.float32)
        mask[3, 1] = bad
        with pytest.raises(ValueError, match=r"mask: (nan|inf) at \(squeezed\) index \(0, 0, 3, 1\)"):
            attention(q, k, v, mask=mask)
    mask = np.full((5, 5), -np.inf, np.float32)
    mask[:, 0] = 0.0
    np.testing.assert_allclose(attention(q, k, v, mask=mask), np.broadcast_to(v[:, :, :1], v.shape), rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fully_masked_rows_are_zero_with_lse_minus_inf(dtype):
    rng = np.random.default_rng(7)
    q, k, v = make(rng, (2,), 2, 2, 12, 5, 4, dtype=dtype)
    mask = np.ones((12, 5), bool)
    mask[3] = False
    out, lse = attention(q, k, v, mask=mask, return_lse=True)
    assert (out[..., 3, :] == 0).all() and (lse[..., 3] == -np.inf).all()
    assert np.isfinite(out).all()
    # bottom-right causal with T > S: the first T - S queries see no key
    out, lse = attention(q, k, v, causal=True, causal_align="bottom_right", return_lse=True)
    assert (out[..., :7, :] == 0).all() and (lse[..., :7] == -np.inf).all()
    assert_close(out, want64(q, k, v, causal=True, causal_align="bottom_right"), dtype)
    # no keys at all
    out, lse = attention(q, k[..., :0, :], v[..., :0, :], return_lse=True)
    assert out.shape == (2, 2, 12, 4) and (out == 0).all() and (lse == -np.inf).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_and_inf_in_masked_keys_and_values_never_reach_the_output(dtype):
    rng = np.random.default_rng(8)
    q, k0, v0 = make(rng, (2,), 2, 2, BLOCK_Q + 5, BLOCK_K + 9, 8, dtype=dtype)
    k, v = k0.copy(), v0.copy()
    S = k.shape[-2]
    hidden = np.arange(S) % 7 == 3
    k[..., hidden, :] = np.nan
    v[..., hidden, :] = np.inf
    v[..., hidden & (np.arange(S) % 2 == 0), 1] = np.nan
    keep = ~hidden
    for kwargs in ({"mask": keep}, {"mask": np.where(keep, 0.0, -np.inf)}, {"mask": keep, "causal": True}):
        out = attention(q, k, v, **kwargs)
        assert np.isfinite(out).all()
        want = want64(
            q[..., :, :],
            k[..., keep, :],
            v[..., keep, :],
            **(
                {"causal": False}
                if "causal" not in kwargs
                else {"mask": np.tril(np.ones((q.shape[-2], S), bool))[:, keep]}
            ),
        )
        assert_close(out, want, dtype)
    # causal: the future keys of the first rows hold NaN, those rows stay finite
    k2, v2 = k0.copy(), v0.copy()
    k2[..., 5:, :] = np.nan
    v2[..., 5:, :] = np.nan
    out = attention(q, k2, v2, causal=True)
    assert np.isfinite(out[..., :5, :]).all() and np.isnan(out[..., 5:, :]).all()


def test_nan_in_a_visible_key_or_query_gives_nan_like_the_reference():
    rng = np.random.default_rng(9)
    q, k, v = make(rng, (1,), 1, 1, 6, 8, 4)
    k[0, 0, 2, 0] = np.nan
    q[0, 0, 4, 1] = np.nan
    got = attention(q, k, v, causal=True)
    want = want64(q, k, v, causal=True)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    assert_close(got, want, np.float64)


# --- prefix views of a preallocated KV cache: read in place, not copied ------------------------

_wrapper = importlib.import_module("fastgram.attention")  # the module (fastgram.attention is the function)


@pytest.fixture
def kernel_inputs(monkeypatch):
    """Record the k and v arrays each call hands to the kernels (then run the real kernels)."""
    seen = []

    def spy(real, first):  # q, k, v, S are arguments first .. first + 3
        def run(*args):
            seen.append(args[first + 1 : first + 4])
            return real(*args)

        return run

    # every call runs the serial kernels in the calling thread: the parallel path hands them
    # to the launcher by these module names, and a spy is not a kernel
    monkeypatch.setattr(_wrapper, "_serial_work", lambda: 1 << 62)
    monkeypatch.setattr(_wrapper._k, "attend_items", spy(_wrapper._k.attend_items, 2))
    monkeypatch.setattr(_wrapper._kd, "decode_items", spy(_wrapper._kd.decode_items, 5))
    return seen


@pytest.mark.parametrize("T", [1, 3, 64, 200])
def test_parallel_and_calling_thread_paths_agree_bit_for_bit(monkeypatch, T):
    """The parallel path runs the serial kernels' own machine code in runs of work items, so
    it gives the calling-thread path's bits (prefill and decode, uneven runs included)."""
    rng = np.random.default_rng(T)
    q = rng.standard_normal((3, 4, T, 32)).astype(np.float32)
    k = rng.standard_normal((3, 2, 700, 32)).astype(np.float32)
    v = rng.standard_normal((3, 2, 700, 32)).astype(np.float32)
    monkeypatch.setattr(_wrapper, "_serial_work", lambda: 0)
    parallel = attention(q, k, v, causal=True)
    monkeypatch.setattr(_wrapper, "_serial_work", lambda: 1 << 62)
    np.testing.assert_array_equal(parallel, attention(q, k, v, causal=True))


def kv_cache(rng, shape, S, dtype=np.float32):
    """A preallocated cache: keys past ``S`` poisoned with NaN (a kernel that read them would show it)."""
    cache = rng.standard_normal(shape).astype(dtype)
    cache[..., S:, :] = np.nan
    return cache


PREFIX_OPTIONS = [
    {},
    {"causal": True},
    {"causal": True, "causal_align": "bottom_right"},
    {"window": (17, 0)},
    {"window": (5, 9), "causal": True},
    {"mask": "bool"},
    {"mask": "float"},
    {"softcap": 2.0, "alibi_slopes": np.array([0.5, 0.25, 0.125, 0.0625])},
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("opts", PREFIX_OPTIONS, ids=lambda o: ",".join(o) or "plain")
@pytest.mark.parametrize("T", [1, 64])  # the decode kernel and the prefill kernel
def test_kv_cache_prefix_views_are_read_in_place_bit_for_bit(kernel_inputs, T, opts, dtype):
    rng = np.random.default_rng(40 + T)
    B, H, H_kv, S_max, S, D = 2, 4, 2, 300, 131, 16  # GQA; S not a multiple of any tile or split
    k_cache = kv_cache(rng, (B, H_kv, S_max, D), S, dtype)
    v_cache = kv_cache(rng, (B, H_kv, S_max + 7, 24), S, dtype)  # a different S_max and Dv
    q = rng.standard_normal((B, H, T, D)).astype(dtype)
    opts = dict(opts)
    if opts.get("mask") == "bool":
        opts["mask"] = rng.random((B, 1, 1, S)) < 0.8  # key padding, shape (..., S)
    elif opts.get("mask") == "float":
        opts["mask"] = np.where(rng.random(S) < 0.2, -np.inf, rng.standard_normal(S)).astype(dtype)
    k, v = k_cache[:, :, :S], v_cache[:, :, :S]
    assert not k.flags.c_contiguous and not v.flags.c_contiguous
    out, lse = attention(q, k, v, return_lse=True, **opts)
    k_in, v_in, S_in = kernel_inputs[-1]
    assert S_in == S
    assert k_in.shape == (B, H_kv, S_max, D) and np.shares_memory(k_in, k_cache)
    assert v_in.shape == (B, H_kv, S_max + 7, 24) and np.shares_memory(v_in, v_cache)
    want, want_lse = attention(q, np.ascontiguousarray(k), np.ascontiguousarray(v), return_lse=True, **opts)
    assert not np.shares_memory(kernel_inputs[-1][0], k_cache)
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(lse, want_lse)
    assert np.isfinite(out).all()
    assert_close(out, want64(q, k, v, **opts), dtype)


@pytest.mark.parametrize("T", [1, 64])
def test_kv_cache_prefix_layouts(kernel_inputs, T):
    """Which views are read in place (a prefix along axis -2 inside their base) and which are copied."""
    rng = np.random.default_rng(7)
    S_max, S, D = 200, 77, 8
    cache = kv_cache(rng, (3, 2, S_max, D), S)
    flat = rng.standard_normal(3 * 2 * S_max * D).astype(np.float32)
    read_only = cache.copy()
    read_only.flags.writeable = False
    cases = {
        # view, cache it lives in, read in place?
        "batch prefix": (cache[:2, :, :S], cache, True),
        "later batch rows": (cache[1:, :, :S], cache, True),
        "reshaped 1-D buffer": (flat.reshape(3, 2, S_max, D)[:, :, :S], flat, True),
        "read-only cache": (read_only[:, :, :S], read_only, True),
        "five axes": (cache.reshape(3, 1, 2, S_max, D)[:, :, :, :S], cache, True),
        "start offset": (cache[:, :, 5 : S + 5], cache, False),
        "every other key": (cache[:, :, : 2 * S : 2], cache, False),
        "every other dim": (cache[:, :, :S, ::2], cache, False),
    }
    for name, (k, owner, in_place) in cases.items():
        q = rng.standard_normal((*k.shape[:-3], 4, T, k.shape[-1])).astype(np.float32)
        v = np.ascontiguousarray(cache[: k.shape[0], :, :S, :])
        if k.ndim == 5:
            v = v.reshape(k.shape[:-2] + v.shape[-2:])
        out = attention(q, k, v, causal=True, causal_align="bottom_right")
        assert np.shares_memory(kernel_inputs[-1][0], owner) == in_place, name
        assert kernel_inputs[-1][2] == k.shape[-2], name
        copy = np.array(k)
        copy.flags.writeable = k.flags.writeable  # the same compiled specialisation (read-only or not)
        want = attention(q, copy, v, causal=True, causal_align="bottom_right")
        np.testing.assert_array_equal(out, want, err_msg=name)


def test_kv_cache_prefix_broadcast_against_a_larger_batch(kernel_inputs):
    rng = np.random.default_rng(8)
    cache = kv_cache(rng, (1, 2, 96, 16), 40)
    q = rng.standard_normal((3, 2, 1, 16)).astype(np.float32)  # batch 3 reads the cache's one row
    out = attention(q, cache[:, :, :40], cache[:, :, :40])
    assert np.shares_memory(kernel_inputs[-1][0], cache)
    want = want64(q, np.broadcast_to(cache[:, :, :40], (3, 2, 40, 16)), cache[:, :, :40])
    assert_close(out, want, np.float32)


@pytest.mark.parametrize("T", [1, 3, 12])  # decode kernel (calling thread and parallel), prefill
@pytest.mark.parametrize("S", [5, 700])
def test_queries_that_are_a_prefix_of_a_larger_buffer_are_not_read_as_a_cache(T, S):
    """A query view ``buf[..., :T, :]`` (or a strided one whose strides look like such a prefix)
    has the strides of a KV-cache prefix; the kernels take ``T`` from the queries' shape, so
    reading it in place as a longer block wrote past the output (a heap corruption)."""
    rng = np.random.default_rng(9 + T)
    buf = rng.standard_normal((2, 4, T + 9, 16)).astype(np.float32)
    k = rng.standard_normal((2, 2, S, 16)).astype(np.float32)
    v = rng.standard_normal((2, 2, S, 8)).astype(np.float32)
    narrow = rng.standard_normal((4, T, 2)).astype(np.float32)[:, :, ::2]  # (4, T, 1), stride 2
    for q, kk, vv in ((buf[:, :, :T], k, v), (narrow, k[0, :, :, :1], v[0])):
        out, lse = attention(q, kk, vv, mask=np.ones(kk.shape[-2], bool), return_lse=True)
        want, want_lse = reference.attention(np.ascontiguousarray(q), kk, vv, return_lse=True)
        assert out.shape == want.shape
        assert_close(out, want, np.float32)
        assert_close(lse, want_lse, np.float32)


def test_scale_and_causal_align_options():
    rng = np.random.default_rng(10)
    q, k, v = make(rng, (2,), 2, 2, 9, 9, 8)
    for scale in (0.0, 0.05, 3, np.float32(-1.5)):
        assert_close(attention(q, k, v, scale=scale), want64(q, k, v, scale=scale), np.float64)
    # T == S: both alignments agree
    np.testing.assert_array_equal(
        attention(q, k, v, causal=True), attention(q, k, v, causal=True, causal_align="bottom_right")
    )


def test_result_does_not_depend_on_thread_count():
    rng = np.random.default_rng(11)
    q, k, v = make(rng, (3,), 4, 2, 150, 140, 16, dtype=np.float32)
    before = numba.get_num_threads()
    try:
        runs = []
        for n in sorted({1, before}):
            numba.set_num_threads(n)
            runs.append(attention(q, k, v, causal=True, return_lse=True))
    finally:
        numba.set_num_threads(before)
    for out, lse in runs[1:]:
        np.testing.assert_array_equal(out, runs[0][0])
        np.testing.assert_array_equal(lse, runs[0][1])


def test_calls_from_several_python_threads():
    rng = np.random.default_rng(12)
    inputs = [make(rng, (2,), 2, 2, 70, 90, 16, dtype=np.float32) for _ in range(4)]
    want = [attention(*x, causal=True) for x in inputs]
    got = [None] * len(inputs)

    def work(i):
        for _ in range(3):
            got[i] = attention(*inputs[i], causal=True)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_accuracy_on_large_scores_float32():
    rng = np.random.default_rng(13)
    q, k, v = make(rng, (1,), 2, 2, 100, 300, 64, dtype=np.float32)
    q *= 4  # peaked softmax: scores up to ~ +-100
    assert_close(attention(q, k, v, causal=True), want64(q, k, v, causal=True), np.float32)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 3),
    st.integers(1, 3),
    st.integers(1, 2),
    st.integers(0, 80),
    st.integers(0, 150),
    st.integers(1, 40),
    st.integers(0, 20),
    st.sampled_from([None, "top_left", "bottom_right"]),
    st.booleans(),
    st.integers(0, 2**32 - 1),
)
def test_random_shapes_against_reference(B, H_kv, group, T, S, D, Dv, causal, masked, seed):
    rng = np.random.default_rng(seed)
    q, k, v = make(rng, (B,), H_kv * group, H_kv, T, S, D, Dv, np.float32)
    kwargs = {} if causal is None else {"causal": True, "causal_align": causal}
    if masked:
        kwargs["mask"] = rng.random((B, 1, T, S)) < 0.7
    out, lse = attention(q, k, v, return_lse=True, **kwargs)
    want, want_lse = want64(q, k, v, return_lse=True, **kwargs)
    assert_close(out, want, np.float32)
    assert_close(lse, want_lse, np.float32)


# --- errors -------------------------------------------------------------------------------------

GOOD = np.zeros((2, 4, 5, 8), np.float32)


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((GOOD, np.zeros((2, 4, 5, 7), np.float32), GOOD), {}, ValueError, r"same last axis D.*\(2, 4, 5, 7\)"),
        (
            (GOOD, np.zeros((2, 3, 5, 8), np.float32), np.zeros((2, 3, 5, 8), np.float32)),
            {},
            ValueError,
            r"H=4 must be a multiple of key/value heads H_kv=3",
        ),
        ((GOOD, GOOD, np.zeros((2, 2, 5, 8), np.float32)), {}, ValueError, r"same number of heads H_kv"),
        ((GOOD, GOOD, np.zeros((2, 4, 6, 8), np.float32)), {}, ValueError, r"same number of keys S"),
        (
            (GOOD, np.zeros((3, 4, 5, 8), np.float32), np.zeros((3, 4, 5, 8), np.float32)),
            {},
            ValueError,
            r"batch axes .* must broadcast",
        ),
        ((np.zeros(8, np.float32), GOOD, GOOD), {}, ValueError, r"q must have at least 2 axes .*got shape \(8,\)"),
        ((GOOD, np.float32(1), GOOD), {}, ValueError, r"k must have at least 2 axes"),
        ((np.zeros((5, 0), np.float32),) * 3, {}, ValueError, r"D .* must be at least 1"),
        ((GOOD.astype(np.int32), GOOD, GOOD), {}, TypeError, r"q must be float32 or float64, got dtype int32"),
        ((GOOD, GOOD.astype(np.complex64), GOOD), {}, TypeError, r"k must be float32 or float64, got dtype complex64"),
        ((GOOD, GOOD, GOOD.astype(bool)), {}, TypeError, r"v must be float32 or float64, got dtype bool"),
        ((GOOD, GOOD, GOOD.astype(np.float16)), {}, TypeError, r"v must be float32 or float64, got float16"),
        ((GOOD, GOOD.astype(np.float64), GOOD), {}, TypeError, r"same dtype, got float32, float64 and float32"),
        (
            (GOOD, GOOD, GOOD),
            {"mask": np.ones((3, 5), bool)},
            ValueError,
            r"mask shape \(3, 5\) is not broadcastable to the scores' shape \(2, 4, 5, 5\)",
        ),
        (
            (GOOD, GOOD, GOOD),
            {"mask": np.ones((1, 2, 4, 5, 5), bool)},
            ValueError,
            r"mask shape \(1, 2, 4, 5, 5\) is not broadcastable",
        ),
        ((GOOD, GOOD, GOOD), {"mask": np.ones((5, 5), np.int8)}, TypeError, r"mask must be boolean .* got dtype int8"),
        ((GOOD, GOOD, GOOD), {"causal": 1}, TypeError, r"causal must be a bool, got int 1"),
        ((GOOD, GOOD, GOOD), {"return_lse": "yes"}, TypeError, r"return_lse must be a bool"),
        (
            (GOOD, GOOD, GOOD),
            {"causal_align": "top-left"},
            ValueError,
            r"causal_align must be 'top_left' or 'bottom_right', got 'top-left'",
        ),
        ((GOOD, GOOD, GOOD), {"scale": np.nan}, ValueError, r"scale must be finite"),
        ((GOOD, GOOD, GOOD), {"scale": "0.1"}, TypeError, r"scale must be a real number"),
    ],
)
def test_errors(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        attention(*args, **kwargs)


# --- torch --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_agrees_with_torch_sdpa(dtype):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(14)
    q, k, v = make(rng, (2,), 4, 4, 33, 33, 16, dtype=dtype)
    t = [torch.from_numpy(x) for x in (q, k, v)]
    keep = rng.random((2, 1, 33, 33)) < 0.8
    keep[..., 0] = True  # torch gives NaN for fully masked rows; compare where both define it
    bias = np.where(rng.random((33, 33)) < 0.3, -np.inf, rng.standard_normal((33, 33))).astype(dtype)
    bias[:, 0] = 0.0
    cases = [
        ({}, {}),
        ({"causal": True}, {"is_causal": True}),
        ({"mask": keep}, {"attn_mask": torch.from_numpy(keep)}),
        ({"mask": bias}, {"attn_mask": torch.from_numpy(bias)}),
        ({"scale": 0.3}, {"scale": 0.3}),
    ]
    for ours, theirs in cases:
        want = F.scaled_dot_product_attention(*t, **theirs).numpy()
        np.testing.assert_allclose(attention(q, k, v, **ours), want, rtol=0, atol=10 * TOLERANCE[dtype])
    # grouped-query attention
    kg, vg = k[:, :2], v[:, :2]
    want = F.scaled_dot_product_attention(t[0], torch.from_numpy(kg), torch.from_numpy(vg), enable_gqa=True).numpy()
    np.testing.assert_allclose(attention(q, kg, vg), want, rtol=0, atol=10 * TOLERANCE[dtype])


@pytest.mark.parametrize("T", [1, 3, 40])  # the decode kernel (T <= 8) and the prefill kernel
@pytest.mark.parametrize("opts", [{}, {"causal": True}, {"window": (5, 2), "softcap": 3.0}])
def test_the_calling_thread_and_the_parallel_kernels_agree(monkeypatch, T, opts):
    rng = np.random.default_rng(7 + T)
    q = rng.standard_normal((2, 4, T, 16)).astype(np.float32)
    k = rng.standard_normal((2, 2, 300, 16)).astype(np.float32)
    v = rng.standard_normal((2, 2, 300, 8)).astype(np.float32)
    monkeypatch.setattr(_wrapper, "_serial_work", lambda: 0)  # every call launches the parallel kernel
    parallel, parallel_lse = attention(q, k, v, return_lse=True, **opts)
    monkeypatch.setattr(_wrapper, "_serial_work", lambda: 1 << 62)  # every call runs in this thread
    here, here_lse = attention(q, k, v, return_lse=True, **opts)
    # the same serial kernels, optimised again inside the parallel one: equal but for rounding
    np.testing.assert_allclose(here, parallel, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(here_lse, parallel_lse, rtol=1e-6, atol=1e-6)
    assert_close(here, want64(q, k, v, **opts), np.float32)
    assert_close(parallel, want64(q, k, v, **opts), np.float32)
