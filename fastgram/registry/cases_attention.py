"""Registry entry of the attention kernel, compared relative to the output's scale."""

from __future__ import annotations

import numpy as np

from fastgram import reference
from fastgram.attention import attention
from fastgram.registry import peers_torch
from fastgram.registry.core import Case, KernelCheck, register, relative_difference
from fastgram.registry.peers_torch import torch_peers


def attention_cases(rng: np.random.Generator):
    def qkv(lead, H, H_kv, T, S, D, Dv=None, dtype=np.float32):
        Dv = D if Dv is None else Dv
        return (
            rng.standard_normal((*lead, H, T, D)).astype(dtype),
            rng.standard_normal((*lead, H_kv, S, D)).astype(dtype),
            rng.standard_normal((*lead, H_kv, S, Dv)).astype(dtype),
        )

    for dtype in (np.float32, np.float64):
        name = np.dtype(dtype).name
        yield Case(f"{name} (2, 4, 33, 33, 16)", qkv((2,), 4, 4, 33, 33, 16, dtype=dtype))
        yield Case(f"{name} causal T=130", qkv((1,), 2, 2, 130, 130, 64, dtype=dtype), {"causal": True})
    yield Case("T = 1, S = 1, D = 1", qkv((3,), 2, 2, 1, 1, 1))
    yield Case("2-D (T, D) inputs, T != S", tuple(x[0] for x in qkv((), 1, 1, 7, 70, 5)))
    yield Case("grouped-query H=8, H_kv=2", qkv((2,), 8, 2, 40, 50, 32, 24))
    yield Case(
        "causal bottom-right, T < S", qkv((2,), 2, 2, 20, 90, 16), {"causal": True, "causal_align": "bottom_right"}
    )
    yield Case(
        "causal bottom-right, T > S (masked rows)",
        qkv((1,), 2, 2, 50, 20, 8),
        {"causal": True, "causal_align": "bottom_right"},
    )
    lengths = np.array([5, 77, 128])
    padding = (np.arange(128) < lengths[:, None])[:, None, None, :]
    yield Case("bool padding mask (B, 1, 1, S)", qkv((3,), 4, 4, 64, 128, 32), {"mask": padding})
    additive = np.where(rng.random((1, 30, 45)) < 0.3, -np.inf, rng.standard_normal((1, 30, 45))).astype(np.float32)
    yield Case("additive mask + causal", qkv((2,), 3, 3, 30, 45, 8), {"mask": additive, "causal": True})
    q, k, v = qkv((2,), 2, 2, 16, 16, 8)
    k[..., -3:, :] = np.nan  # keys nobody may see under the causal mask of the first rows
    v[..., -3:, :] = np.inf
    yield Case("NaN/inf in masked keys and values", (q, k, v), {"mask": np.arange(16) < 13})
    yield Case("return_lse", qkv((2,), 4, 2, 25, 31, 16, dtype=np.float64), {"causal": True, "return_lse": True})
    # decoding (T <= 8: the split-KV kernel), caches that split unevenly (256 keys per split)
    yield Case("decode T=1, S=1000", qkv((2,), 4, 4, 1, 1000, 64))
    yield Case("decode GQA 8/2, T=3, S=513, lse", qkv((1,), 8, 2, 3, 513, 32), {"return_lse": True})
    yield Case(
        "decode float64 causal bottom-right T=8",
        qkv((2,), 4, 1, 8, 300, 16, dtype=np.float64),
        {"causal": True, "causal_align": "bottom_right"},
    )
    # in-tile options, decode and prefill, alone and combined with causal, masks, GQA, lse
    for T in (1, 40):
        yield Case(f"window (100, 0) T={T}", qkv((2,), 4, 2, T, 700, 16), {"window": (100, 0)})
        yield Case(f"softcap 2.5 T={T}", qkv((1,), 4, 4, T, 300, 32), {"softcap": 2.5})
        yield Case(f"alibi (H,) T={T}", qkv((2,), 8, 2, T, 400, 16), {"alibi_slopes": 2.0 ** -np.arange(1.0, 9.0)})
        yield Case(
            f"window + softcap + alibi (B, H) + causal + padding + lse, T={T}",
            qkv((3,), 4, 2, T, 530, 16),
            {
                "window": (260, 2),
                "softcap": 4.0,
                "alibi_slopes": rng.random((3, 4)) * 0.1,
                "causal": True,
                "causal_align": "bottom_right",
                "mask": (np.arange(530) < np.array([10, 300, 530])[:, None])[:, None, None, :],
                "return_lse": True,
            },
        )


register(
    KernelCheck(
        "attention",
        "attention",
        attention,
        reference.attention,
        attention_cases,
        compare=relative_difference,
        tolerance=1e-5,
        peers=torch_peers(peers_torch.attention),
    )
)
