"""One decode step of a tiny GPT: attention against a KV cache (and, below, filtered sampling).

Attention cases (float32, full size), (B, H query heads, H_kv heads, T, S, D):

- (1, 12, 12, 1, 1024, 64) and (8, 12, 12, 1, 1024, 64): one query per head (GPT-2 small);
- (1, 32, 8, 1, 4096, 128): grouped-query attention against a 16 MiB + 16 MiB cache;
- (4, 32, 8, 1, 4096, 128): the same against 128 MiB (four times a 32 MiB L3 cache);
- (8, 32, 8, 1, 16384, 128): against 1 GiB, past the L3 cache of any machine measured so far
  (a virtual machine reported 480 MiB), for the bandwidth fraction (``extra_info["kv_bytes"]``
  / time against the copy below). Its reference would repeat K and V for the 4 query heads of
  each group (4 GiB), so it has no reference role: the results are checked against the
  reference on the first batch row;
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

from fastgram import reference as fg_reference
from fastgram.registry import REGISTRY, relative_difference

# --- attention ------------------------------------------------------------------------------------

DECODE_CASES = {
    "(1, 12, 12, 1, 1024, 64)": (1, 12, 12, 1, size(1024, 64), size(64, 16)),
    "(8, 12, 12, 1, 1024, 64)": (size(8, 2), 12, 12, 1, size(1024, 64), size(64, 16)),
    "(1, 32, 8, 1, 4096, 128) GQA": (1, size(32, 8), size(8, 2), 1, size(4096, 64), size(128, 16)),
    "(4, 32, 8, 1, 4096, 128) GQA, 128 MiB cache": (size(4, 1), size(32, 8), size(8, 2), 1, size(4096, 64), 128),
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
    rounds = 3 if role == "reference" else (20 if k.nbytes > 2**26 else 200)
    extra = {"kv_bytes": int(k.nbytes + v.nbytes), "threads": numba.get_num_threads()}
    out = measure(benchmark, lambda: fn(q, k, v), group=group, role=role, rounds=rounds, **extra)
    assert out.shape == q.shape
    tolerance = None if role in ("kernel", "reference") else PEER_TOLERANCE
    check_result("attention", group, role, out, q, k, v, tolerance=tolerance)


BEYOND_L3 = "(8, 32, 8, 1, 16384, 128) GQA, 1 GiB cache"
BEYOND_L3_SHAPE = (size(8, 2), size(32, 8), size(8, 2), size(16384, 64), size(128, 16))  # B, H, H_kv, S, D


@pytest.fixture(scope="module")
def beyond_l3_inputs(rng):
    B, H, H_kv, S, D = BEYOND_L3_SHAPE
    q = rng.standard_normal((B, H, 1, D), dtype=np.float32)
    k = rng.standard_normal((B, H_kv, S, D), dtype=np.float32)
    v = rng.standard_normal((B, H_kv, S, D), dtype=np.float32)
    return q, k, v


@pytest.mark.parametrize("role", [r for r in roles("attention") if r != "reference"])
def test_decode_attention_beyond_l3(benchmark, beyond_l3_inputs, role):
    q, k, v = beyond_l3_inputs
    fn = implementation("attention", role)
    if role != "kernel":
        for _ in range(0 if SMOKE else 3):  # torch's first calls set up its threads
            fn(q, k, v)
    extra = {"kv_bytes": int(k.nbytes + v.nbytes), "threads": numba.get_num_threads()}
    out = measure(benchmark, lambda: fn(q, k, v), group=f"decode attention {BEYOND_L3}", role=role, rounds=5, **extra)
    assert out.shape == q.shape
    want = fg_reference.attention(q[:1], k[:1], v[:1])  # batch rows are independent
    limit = REGISTRY["attention"].tolerance if role == "kernel" else PEER_TOLERANCE
    assert relative_difference(np.asarray(out)[:1], want) <= limit


def test_memory_bandwidth(benchmark):
    """``np.copyto`` of 1 GiB: bytes read + written per second, the ceiling for a decode step."""
    n = size(2**28, 2**14)  # float32: 1 GiB
    src = np.ones(n, np.float32)
    dst = np.empty_like(src)
    measure(benchmark, np.copyto, dst, src, group="memory bandwidth", role="np.copyto", rounds=5, bytes=2 * src.nbytes)
    assert dst[-1] == 1.0


# --- sampling for decoding and the decode loop ----------------------------------------------------
#
# sample_logits: one draw per row with top_k = 50, top_p = 0.9, B = 1, 8, 64 rows of V = 50,257
# (GPT-2) and V = 152,064 (Qwen) float32 logits; the kernel (selection path), the NumPy reference
# and torch's usual pipeline (topk -> softmax -> cumsum mask -> multinomial) in one group.
#
# The decode loop: B = 8, H = 12, D = 64, V = 50,257, 128 steps, the KV cache growing from 512 to
# 640 keys; each step appends one key/value per head, runs one attention call of the T = 1 queries
# on the cache and one sample_logits (top_k = 50, top_p = 0.9) on that step's (random) logits.
# torch runs the same loop with scaled_dot_product_attention and the pipeline above, on the same
# arrays. The kernel's loop is compared once, untimed, with the reference's: every id exactly, the
# last attention output within the registry's tolerance.

from fastgram import attention as fg_attention  # noqa: E402
from fastgram import sample_logits as fg_sample_logits  # noqa: E402
from fastgram.registry.peers_torch import torch_available  # noqa: E402

SAMPLE_SEED = 2026
TOP_K, TOP_P = 50, 0.9
SAMPLE_CASES = {f"({B}, {V:,})": (size(B, min(B, 2)), size(V, 500)) for V in (50_257, 152_064) for B in (1, 8, 64)}
PEER_ROLES = ["torch"] if torch_available() else []


def _torch():
    import torch

    if torch.get_num_threads() != numba.get_num_threads():
        torch.set_num_threads(numba.get_num_threads())
    return torch


_GENERATORS: dict = {}


def torch_sample(logits, top_k=TOP_K, top_p=TOP_P, *, seed=SAMPLE_SEED):
    """torch's top-k / top-p draw, one per row: topk -> softmax -> cumsum mask -> multinomial."""
    torch = _torch()
    gen = _GENERATORS.setdefault(seed, torch.Generator().manual_seed(seed))
    x = torch.from_numpy(logits) if isinstance(logits, np.ndarray) else logits
    with torch.no_grad():
        vals, idx = torch.topk(x, top_k, dim=-1)
        probs = torch.softmax(vals, dim=-1)
        cum = torch.cumsum(probs, dim=-1)
        probs = probs.masked_fill(cum - probs > top_p, 0.0)  # keep the smallest prefix reaching top_p
        pick = torch.multinomial(probs, 1, generator=gen)
        return idx.gather(-1, pick).squeeze(-1).numpy()


_SAMPLERS = {
    "kernel": lambda x: fg_sample_logits(x, top_k=TOP_K, top_p=TOP_P, seed=SAMPLE_SEED),
    "reference": lambda x: fg_reference.sample_logits(x, top_k=TOP_K, top_p=TOP_P, seed=SAMPLE_SEED),
    "torch": torch_sample,
}


@pytest.fixture(scope="module")
def sample_inputs(rng):
    return {c: (rng.standard_normal((B, V), dtype=np.float32) * 3) for c, (B, V) in SAMPLE_CASES.items()}


def _in_top_k(logits, ids, k=TOP_K):
    """Every id is among its row's k largest logits (a peer's draws differ from ours)."""
    kth = np.sort(logits, axis=1)[:, -k]
    assert np.all(logits[np.arange(logits.shape[0]), ids] >= kth)


@pytest.mark.parametrize("case,role", [(c, r) for c in SAMPLE_CASES for r in ["kernel", "reference", *PEER_ROLES]])
def test_decode_sample_logits(benchmark, sample_inputs, case, role):
    logits = sample_inputs[case]
    fn = _SAMPLERS[role]
    for _ in range(0 if SMOKE or role == "reference" else 20):  # torch's first calls set up its threads
        fn(logits)
    group = f"decode sample_logits {case} top_k={TOP_K} top_p={TOP_P}"
    rounds = 1 if role == "reference" else 200
    extra = {"threads": numba.get_num_threads(), "rows": logits.shape[0]}
    out = measure(benchmark, fn, logits, group=group, role=role, rounds=rounds, **extra)
    assert out.shape == logits.shape[:1]
    if role in ("kernel", "reference"):
        check_result("sample_logits", group, role, out, logits, top_k=TOP_K, top_p=TOP_P, seed=SAMPLE_SEED)
    else:
        _in_top_k(logits, out)


LOOP_B, LOOP_H, LOOP_D = size(8, 2), size(12, 2), size(64, 16)
LOOP_V, LOOP_S0, LOOP_STEPS = size(50_257, 500), size(512, 16), size(128, 4)
#: Distinct logits arrays the loop's steps cycle through (random, as the issue asks).
LOOP_POOL = 4


@pytest.fixture(scope="module")
def loop_inputs(rng):
    B, H, D, S = LOOP_B, LOOP_H, LOOP_D, LOOP_S0 + LOOP_STEPS
    return {
        "q": rng.standard_normal((LOOP_STEPS, B, H, 1, D), dtype=np.float32),
        "k": rng.standard_normal((B, H, S, D), dtype=np.float32),  # the cache, filled as the loop goes
        "v": rng.standard_normal((B, H, S, D), dtype=np.float32),
        "logits": rng.standard_normal((LOOP_POOL, B, LOOP_V), dtype=np.float32) * 3,
    }


def _loop(attend, sample, data):
    """Step t: attention of q[t] on the first S0 + t + 1 cached keys, then one draw per row."""
    ids = np.empty((LOOP_STEPS, LOOP_B), np.int64)
    out = None
    for t in range(LOOP_STEPS):
        S = LOOP_S0 + t + 1
        out = attend(data["q"][t], data["k"][:, :, :S], data["v"][:, :, :S])
        ids[t] = sample(data["logits"][t % LOOP_POOL], t)
    return ids, out


def _fg_loop(data):
    def sample(x, t):
        return fg_sample_logits(x, top_k=TOP_K, top_p=TOP_P, seed=SAMPLE_SEED, offset=t * LOOP_B)

    return _loop(lambda q, k, v: fg_attention(q, k, v), sample, data)


def _reference_loop(data):
    def sample(x, t):
        return fg_reference.sample_logits(x, top_k=TOP_K, top_p=TOP_P, seed=SAMPLE_SEED, offset=t * LOOP_B)

    return _loop(lambda q, k, v: fg_reference.attention(q, k, v), sample, data)


def _torch_loop(data):
    torch = _torch()
    tq, tk, tv = (torch.from_numpy(data[name]) for name in ("q", "k", "v"))
    tl = torch.from_numpy(data["logits"])
    sdpa = torch.nn.functional.scaled_dot_product_attention
    ids = np.empty((LOOP_STEPS, LOOP_B), np.int64)
    with torch.no_grad():
        for t in range(LOOP_STEPS):
            S = LOOP_S0 + t + 1
            out = sdpa(tq[t], tk[:, :, :S], tv[:, :, :S])
            ids[t] = torch_sample(tl[t % LOOP_POOL])
    return ids, out.numpy()


_LOOPS = {"kernel": _fg_loop, "reference": _reference_loop, "torch": _torch_loop}
_LOOP_REFERENCE: dict = {}


@pytest.mark.parametrize("role", ["kernel", "reference", *PEER_ROLES])
def test_decode_loop(benchmark, loop_inputs, role):
    fn = _LOOPS[role]
    group = f"decode loop B={LOOP_B} H={LOOP_H} D={LOOP_D} V={LOOP_V:,}, {LOOP_STEPS} steps, S {LOOP_S0}->{LOOP_S0 + LOOP_STEPS}"
    extra = {"threads": numba.get_num_threads(), "steps": LOOP_STEPS}
    ids, out = measure(
        benchmark, fn, loop_inputs, group=group, role=role, rounds=1 if role == "reference" else 5, **extra
    )
    assert ids.shape == (LOOP_STEPS, LOOP_B) and out.shape == (LOOP_B, LOOP_H, 1, LOOP_D)
    if role == "torch":
        return
    if "ids" not in _LOOP_REFERENCE:
        _LOOP_REFERENCE["ids"], _LOOP_REFERENCE["out"] = (
            (ids, out) if role == "reference" else _reference_loop(loop_inputs)
        )
    np.testing.assert_array_equal(ids, _LOOP_REFERENCE["ids"])
    np.testing.assert_allclose(out, _LOOP_REFERENCE["out"], rtol=1e-5, atol=1e-5)
