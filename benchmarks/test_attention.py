"""Batched softmax attention: the kernel beside the NumPy reference and torch SDPA (float32).

Cases (full size), shapes (B, H, T, D) with S = T and Dv = D:

- (4, 8, 1024, 64) causal: long sequences;
- (32, 8, 128, 64) causal and (256, 4, 32, 16) causal: many small heads;
- (8, 8, 512, 64) non-causal with a boolean padding mask of shape (B, 1, 1, S);
- compile time: loaded from the cache, and (full size only) a cold compile;
- sgemm: NumPy's float32 ``(2048, 2048) @ (2048, 2048)``, the machine's matrix-product FLOP/s,
  against which a case's ``extra_info["flops"]`` / time is quoted (run with
  ``OPENBLAS_CORETYPE`` unset: set, it selects slower kernels).

The functions are the registry's (``REGISTRY["attention"]``); its torch peer
(``scaled_dot_product_attention``) runs with ``torch.set_num_threads(numba.get_num_threads())``,
so every peer uses the same number of threads, and is not collected when torch is not
installed. Each result is compared once, untimed, with the reference's: the kernel's within the
registry's tolerance (relative 1e-5), torch's within 1e-4.
"""

from __future__ import annotations

import numba
import numpy as np
import pytest
from conftest import SMOKE, check_result, fresh_dispatcher, implementation, measure, roles, size

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
    pairs = T * (T + 1) // 2 if kwargs["causal"] else T * T  # (query, key) pairs scored
    return {
        "shape": f"({B}, {H}, {T}, {D})",
        "causal": kwargs["causal"],
        "threads": numba.get_num_threads(),
        "flops": 4 * B * H * pairs * D,  # q kᵀ and weights @ v, 2 flops per multiply-add
    }


#: torch float32 against the float64-accumulating reference: a looser bound than the kernel's.
PEER_TOLERANCE = 1e-4


@pytest.mark.parametrize("case,role", [(c, r) for c in CASES for r in roles("attention")])
def test_attention(benchmark, inputs, case, role):
    q, k, v, kwargs = inputs[case]
    fn = implementation("attention", role)
    if role == "reference":
        rounds = 1 if q.shape[2] >= 512 else 3
    else:
        rounds = _rounds(q)
        for _ in range(0 if SMOKE or role == "kernel" else 9):  # torch's first calls set up threads
            fn(q, k, v, **kwargs)
    group = f"attention {case}"
    out = measure(benchmark, lambda: fn(q, k, v, **kwargs), group=group, role=role, rounds=rounds, **_extra(q, kwargs))
    assert out.shape == q.shape
    tolerance = None if role in ("kernel", "reference") else PEER_TOLERANCE
    check_result("attention", group, role, out, q, k, v, tolerance=tolerance, **kwargs)


@pytest.mark.parametrize("how", ["cached"] if SMOKE else ["cached", "cold"])
def test_compile_time(benchmark, monkeypatch, how):
    q = np.ones((1, 1, 16, 4), np.float32)  # T > MAX_T: the prefill kernel, in the calling thread
    attention(q, q, q)  # make sure the cache is warm

    def first_call():
        fresh = fresh_dispatcher(kernels.attend_items, cache=how == "cached")
        monkeypatch.setattr(kernels, "attend_items", fresh)
        attention(q, q, q)
        assert fresh.overloads  # the call went through the fresh dispatcher

    benchmark.group = "compile attend_items (float32)"
    benchmark.extra_info["role"] = "kernel" if how == "cached" else "cold compile"
    benchmark.pedantic(first_call, rounds=1 if SMOKE else 2, iterations=1)


def test_sgemm_flops(benchmark, rng):
    """NumPy's float32 matrix product: the FLOP/s ceiling the prefill cases are quoted against."""
    n = size(2048, 64)
    a, b = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(2))
    out = measure(benchmark, np.matmul, a, b, group="sgemm", role="np.matmul", rounds=10, flops=2 * n**3)
    assert out.shape == (n, n)
