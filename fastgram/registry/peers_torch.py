"""torch as an outside peer: the same jobs as fastgram's kernels, called with the same arguments.

The registry entries list these as ``peers["torch"]`` only when torch is installed
(:func:`torch_peers`, which asks ``importlib`` whether the module exists without importing it);
torch itself is imported on a peer's first call, so importing fastgram never imports torch.
Every peer converts NumPy arrays with ``torch.as_tensor`` (no copy for matching dtypes), runs
torch with as many threads as Numba uses, and returns NumPy arrays.

Draws come from torch's own generator, seeded from ``seed`` and ``offset``: the same
distribution as fastgram's, not the same ids.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

import numba
import numpy as np

__all__ = ["torch_available", "torch_peers", "sample_next", "sample_logits", "multinomial", "attention"]


def torch_available() -> bool:
    """Whether torch is installed (nothing is imported)."""
    return importlib.util.find_spec("torch") is not None


def torch_peers(peer: Callable) -> dict[str, Callable]:
    """``{"torch": peer}`` when torch is installed, else ``{}``: a missing peer is left out."""
    return {"torch": peer} if torch_available() else {}


def _torch():
    import torch

    if torch.get_num_threads() != numba.get_num_threads():
        torch.set_num_threads(numba.get_num_threads())
    return torch


def _generator(torch, seed: int, offset: int):
    return torch.Generator().manual_seed((int(seed) + int(offset)) % 2**64)


def sample_next(table, current, *, seed, offset=0) -> np.ndarray:
    """``torch.multinomial`` once per distinct row of ``table`` among ``current``."""
    torch = _torch()
    gen = _generator(torch, seed, offset)
    weights = torch.as_tensor(np.asarray(table), dtype=torch.float32)
    shape = np.shape(current)
    cur = torch.as_tensor(np.asarray(current, dtype=np.int64).reshape(-1))
    order = torch.argsort(cur, stable=True)
    per_row = torch.bincount(cur, minlength=weights.shape[0]).tolist()
    parts = [torch.multinomial(weights[r], c, replacement=True, generator=gen) for r, c in enumerate(per_row) if c]
    out = torch.empty_like(cur)
    if parts:
        out[order] = torch.cat(parts)
    return out.numpy().reshape(shape)


def sample_logits(logits, temperature=1.0, top_k=None, top_p=None, min_p=None, *, seed, num_samples=None, offset=0):
    """``softmax(logits / temperature)`` then ``torch.multinomial`` (no top-k/top-p/min-p)."""
    if top_k is not None or top_p is not None or min_p is not None:
        raise ValueError("top_k, top_p, min_p: the torch peer samples with a temperature only")
    torch = _torch()
    x = torch.as_tensor(np.asarray(logits))
    rows = x.reshape(-1, x.shape[-1])
    draws = 1 if num_samples is None else int(num_samples)
    if temperature == 0:
        out = rows.argmax(dim=-1, keepdim=True).expand(-1, draws)
    else:
        probs = torch.softmax(rows / temperature, dim=-1)
        out = torch.multinomial(probs, draws, replacement=True, generator=_generator(torch, seed, offset))
    out = out.numpy().reshape(*x.shape[:-1], draws)
    return out[..., 0] if num_samples is None else out


def multinomial(probs, num_samples, replacement=True, *, seed, offset=0) -> np.ndarray:
    """``torch.multinomial`` itself."""
    torch = _torch()
    weights = torch.as_tensor(np.asarray(probs))
    gen = _generator(torch, seed, offset)
    return torch.multinomial(weights, int(num_samples), replacement=replacement, generator=gen).numpy()


def attention(q, k, v, *, causal=False, mask=None, scale=None, causal_align="top_left", return_lse=False):
    """``torch.nn.functional.scaled_dot_product_attention`` (a causal mask is folded into ``mask``)."""
    if return_lse:
        raise ValueError("return_lse: torch's scaled_dot_product_attention does not return it")
    torch = _torch()
    tq, tk, tv = (torch.as_tensor(np.asarray(x)) for x in (q, k, v))
    T, S = tq.shape[-2], tk.shape[-2]
    if causal and causal_align == "bottom_right" and T != S:
        raise ValueError("causal_align: the torch peer is top-left aligned, as torch's is_causal")
    attn_mask = None if mask is None else torch.as_tensor(np.asarray(mask))
    if attn_mask is not None and attn_mask.dtype != torch.bool:
        attn_mask = attn_mask.to(tq.dtype)
    if attn_mask is not None and attn_mask.dim() < 2:
        attn_mask = attn_mask.reshape(1, -1)  # (S,) -> (1, S): torch wants a query axis
    if causal and attn_mask is not None:
        keep = torch.ones(T, S, dtype=torch.bool).tril()
        attn_mask = attn_mask & keep if attn_mask.dtype == torch.bool else attn_mask.masked_fill(~keep, float("-inf"))
        causal = False
    sdpa = torch.nn.functional.scaled_dot_product_attention
    gqa = tq.dim() >= 3 and tq.shape[-3] != tk.shape[-3]
    with torch.no_grad():
        out = sdpa(tq, tk, tv, attn_mask=attn_mask, is_causal=bool(causal), scale=scale, enable_gqa=gqa)
    return out.numpy()
