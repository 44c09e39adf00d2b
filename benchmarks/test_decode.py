"""One decode step of a tiny GPT: attention against a KV cache (and, below, filtered sampling).

Attention cases (float32, full size), (B, H query heads, H_kv heads, T, S, D):

- (1, 12, 12, 1, 1024, 64) and (8, 12, 12, 1, 1024, 64): one query per head (GPT-2 small);
- (1, 32, 8, 1, 4096, 128): grouped-query attention against a 16 MiB + 16 MiB cache;
- memory bandwidth: ``np.copyto`` of 1 GiB (read + write), so a decode case's
  ``kv_bytes / time`` can be quoted as a fraction of what this machine streams.

Each attention case puts the kernel (the split-KV decode path), the NumPy reference and torch's
``scaled_dot_product_attention`` (the registry's peer, not collected without torch) in one
group, after warm-up calls, and compares each result once, untimed, with the reference's.
"""

from __future__ import annotations

import numba
import numpy as np
import pytest
from conftest import SMOKE, check_result, implementation, measure, roles, size

# --- attention ------------------------------------------------------------------------------------

DECODE_CASES = {
    "(1, 12, 12, 1, 1024, 64)": (1, 12, 12, 1, size(1024, 64), size(64, 16)),
    "(8, 12, 12, 1, 1024, 64)": (size(8, 2), 12, 12, 1, size(1024, 64), size(64, 16)),
    "(1, 32, 8, 1, 4096, 128) GQA": (1, size(32, 8), size(8, 2), 1, size(4096, 64), size(128, 16)),
}

#: torch float32 against the float64-accumulating reference: a looser bound than the kernel's.
PEER_TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def decode_inputs(rng):
    data = {}
    for name, (B, H, H_kv, T, S, D) in DECODE_CASES.items():
        q = rng.standard_normal((B, H, T, D), dtype=np.float32)
        k = rng.standard_normal((B, H_kv, S, D), dtype=np.float32)
        v = rng.standard_normal((B, H_kv, S, D), dtype=np.float32)
        data[name] = (q, k, v)
    return data


@pytest.mark.parametrize("case,role", [(c, r) for c in DECODE_CASES for r in roles("attention")])
def test_decode_attention(benchmark, decode_inputs, case, role):
    q, k, v = decode_inputs[case]
    fn = implementation("attention", role)
    if role not in ("kernel", "reference"):
        for _ in range(0 if SMOKE else 20):  # torch's first calls set up its threads
            fn(q, k, v)
    group = f"decode attention {case}"
    rounds = 3 if role == "reference" else 200
    extra = {"kv_bytes": int(k.nbytes + v.nbytes), "threads": numba.get_num_threads()}
    out = measure(benchmark, lambda: fn(q, k, v), group=group, role=role, rounds=rounds, **extra)
    assert out.shape == q.shape
    tolerance = None if role in ("kernel", "reference") else PEER_TOLERANCE
    check_result("attention", group, role, out, q, k, v, tolerance=tolerance)


def test_memory_bandwidth(benchmark):
    """``np.copyto`` of 1 GiB: bytes read + written per second, the ceiling for a decode step."""
    n = size(2**28, 2**14)  # float32: 1 GiB
    src = np.ones(n, np.float32)
    dst = np.empty_like(src)
    measure(benchmark, np.copyto, dst, src, group="memory bandwidth", role="np.copyto", rounds=5, bytes=2 * src.nbytes)
    assert dst[-1] == 1.0
