"""Batched softmax attention: the kernel beside the NumPy reference and torch SDPA (float32).

Cases (full size), shapes (B, H, T, D) with S = T and Dv = D:

- (4, 8, 1024, 64) causal: long sequences;
- (32, 8, 128, 64) causal and (256, 4, 32, 16) causal: many small heads;
- (8, 8, 512, 64) non-causal with a boolean padding mask of shape (B, 1, 1, S);
- compile time: loaded from the cache, and (full size only) a cold compile.

torch runs with ``torch.set_num_threads(numba.get_num_threads())``, so every peer uses the
same number of threads; its benchmarks are skipped when torch is not installed.
"""

from __future__ import annotations

import numba
import numpy as np
import pytest
from conftest import SMOKE, fresh_dispatcher, measure, optional_import, size

from fastgram import reference
from fastgram.attention import attention
from fastgram.kernels import attention as kernels

CASES = {
    "(4, 8, 1024, 64) causal": ((size(4, 1), size(8, 2), size(1024, 64), size(64, 16)), True, False),
    "(32, 8, 128, 64) causal": ((size(32, 2), size(8, 2), size(128, 32), size(64, 16)), True, False),
    "(256, 4, 32, 16) causal": ((size(256, 4), 4, 32, 16), True, False),
    "(8, 8, 512, 64) padding mask": ((size(8, 2), size(8, 2), size(512, 48), size(64, 16)), False, True),
}


@pytest.fixture(scope="module")
def inputs(rng):
    data = {}
    for name, ((B, H, T, D), causal, padded) in CASES.items():
        q, k, v = (rng.standard_normal((B, H, T, D), dtype=np.float32) for _ in range(3))
        kwargs = {"causal": causal}
        if padded:
            lengths = rng.integers(T // 2, T + 1, B)
            kwargs["mask"] = (np.arange(T) < lengths[:, None])[:, None, None, :]  # (B, 1, 1, S)
        data[name] = (q, k, v, kwargs)
    return data


def _rounds(q) -> int:
    """More rounds for the fast cases: their timings are short and noisy."""
    return 5 if q.shape[2] >= 512 else 20


def _extra(q, kwargs):
    B, H, T, D = q.shape
    return {"shape": f"({B}, {H}, {T}, {D})", "causal": kwargs["causal"], "threads": numba.get_num_threads()}


@pytest.mark.parametrize("case", list(CASES))
def test_attention_kernel(benchmark, inputs, case):
    q, k, v, kwargs = inputs[case]
    out = measure(
        benchmark, lambda: attention(q, k, v, **kwargs), group=f"attention {case}", role="kernel",
        rounds=_rounds(q), **_extra(q, kwargs),
    )  # fmt: skip
    assert out.shape == q.shape


@pytest.mark.parametrize("case", list(CASES))
def test_attention_reference(benchmark, inputs, case):
    q, k, v, kwargs = inputs[case]
    rounds = 1 if q.shape[2] >= 512 else 3
    measure(
        benchmark, lambda: reference.attention(q, k, v, **kwargs), group=f"attention {case}", role="reference",
        rounds=rounds, **_extra(q, kwargs),
    )  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_attention_torch(benchmark, inputs, case):
    torch = optional_import("torch")
    torch.set_num_threads(numba.get_num_threads())
    q, k, v, kwargs = inputs[case]
    tq, tk, tv = (torch.from_numpy(x) for x in (q, k, v))
    mask = kwargs.get("mask")
    tmask = None if mask is None else torch.from_numpy(mask)
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def run():
        with torch.no_grad():
            return sdpa(tq, tk, tv, attn_mask=tmask, is_causal=kwargs["causal"])

    for _ in range(1 if SMOKE else 10):  # torch's first calls set up threads and kernels
        run()
    out = measure(benchmark, run, group=f"attention {case}", role="torch", rounds=_rounds(q), **_extra(q, kwargs))
    np.testing.assert_allclose(out.numpy(), attention(q, k, v, **kwargs), atol=1e-4)


@pytest.mark.parametrize("how", ["cached"] if SMOKE else ["cached", "cold"])
def test_compile_time(benchmark, monkeypatch, how):
    q = np.ones((1, 1, 4, 4), np.float32)
    attention(q, q, q)  # make sure the cache is warm

    def first_call():
        monkeypatch.setattr(
            kernels, "attention_kernel", fresh_dispatcher(kernels.attention_kernel, cache=how == "cached")
        )
        attention(q, q, q)

    benchmark.group = "compile attention_kernel (float32)"
    benchmark.extra_info["role"] = "kernel" if how == "cached" else "cold compile"
    benchmark.pedantic(first_call, rounds=1 if SMOKE else 2, iterations=1)
