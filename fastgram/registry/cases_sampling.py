"""Registry entries of the sampling kernels and metrics; every draw is compared exactly."""

from __future__ import annotations

import numpy as np

from fastgram import metrics, reference, sampling
from fastgram.counting import NGramCounts
from fastgram.registry import peers_torch
from fastgram.registry.core import Case, KernelCheck, register
from fastgram.registry.peers_torch import torch_peers


def table_cases(rng: np.random.Generator):
    """One count table and one weight table, 40 x 40, with zeros and no empty row."""
    counts = rng.integers(0, 6, (40, 40))
    counts[rng.random((40, 40)) < 0.4] = 0
    counts[:, 7] += 1  # no empty row
    probs = rng.random((40, 40)) * (rng.random((40, 40)) < 0.5)
    probs[:, 3] += 0.01
    yield counts, probs


def next_cases(rng: np.random.Generator):
    counts, probs = next(table_cases(rng))
    current = rng.integers(0, 40, 3_000)
    yield Case("counts, random rows", (counts, current), {"seed": 1})
    yield Case("float64 weights", (probs, current), {"seed": 2})
    yield Case("float32 weights, 2-D current", (probs.astype(np.float32), current[:600].reshape(20, 30)), {"seed": 3})
    yield Case("offset", (counts, current[:100]), {"seed": 4, "offset": 1_000})
    yield Case("empty current", (counts, np.zeros(0, np.int64)), {"seed": 5})
    yield Case("V = 1", (np.array([[5]]), np.zeros(7, np.int64)), {"seed": 6})
    yield Case("largest seed", (counts, current[:50]), {"seed": 2**64 - 1})
    yield Case("byte-swapped uint16 current", (counts, current[:500].astype(">u2")), {"seed": 7})
    yield Case("sparse bigram counts (NGramCounts)", (NGramCounts.from_dense(counts), current), {"seed": 8})


def generate_cases(rng: np.random.Generator):
    counts, probs = next(table_cases(rng))
    start = rng.integers(0, 40, 64)
    yield Case("counts", (counts, start, 50), {"seed": 1})
    yield Case("float weights", (probs, start, 50), {"seed": 2})
    yield Case("temperature 0.5", (counts, start, 30), {"seed": 3, "temperature": 0.5})
    yield Case("greedy", (probs, start, 30), {"seed": 4, "temperature": 0.0})
    yield Case("stop token", (counts, start, 60), {"seed": 5, "stop_token": 7})
    yield Case("scalar start, offset", (counts, 3, 40), {"seed": 6, "offset": 9})
    yield Case("length 0", (counts, start, 0), {"seed": 7})
    yield Case("sparse bigram counts (NGramCounts)", (NGramCounts.from_dense(counts), start, 40), {"seed": 8})


def logits_cases(rng: np.random.Generator):
    logits = rng.standard_normal((6, 300)) * 2
    logits[0, :5] = -np.inf
    ties = np.repeat(rng.standard_normal((4, 25)), 4, axis=1)
    yield Case("float64", (logits,), {"seed": 1})
    yield Case("float32, 100 draws (guide)", (logits.astype(np.float32),), {"seed": 2, "num_samples": 100})
    yield Case("temperature 0.7, top-k 20", (logits,), {"temperature": 0.7, "top_k": 20, "seed": 3, "num_samples": 40})
    yield Case("top-p 0.8", (logits,), {"top_p": 0.8, "seed": 4, "num_samples": 40})
    yield Case("min-p 0.05", (logits,), {"min_p": 0.05, "seed": 5, "num_samples": 40})
    yield Case("all filters, ties", (ties,), {"top_k": 9, "top_p": 0.5, "min_p": 0.2, "seed": 6, "num_samples": 50})
    yield Case("greedy", (logits,), {"temperature": 0.0, "seed": 7})
    yield Case("3-D logits", (logits.reshape(2, 3, 300),), {"seed": 8, "offset": 5})
    wide = (rng.standard_normal((4, 5_000)) * 3).astype(np.float32)
    yield Case("V = 5,000, top-k 50, top-p 0.9 (selection)", (wide,), {"top_k": 50, "top_p": 0.9, "seed": 9})
    yield Case("min-p 0.1 alone (selection)", (wide,), {"min_p": 0.1, "seed": 10, "num_samples": 20})
    per_row = {"temperature": np.array([1.0, 0.0, 0.7, 1.5]), "top_k": np.array([50, 5, 5_000, 3])}
    per_row.update({"top_p": np.array([0.9, 1.0, 0.5, 1.0]), "min_p": np.array([0.0, 0.0, 0.0, 0.3])})
    yield Case("per-row parameters", (wide,), {**per_row, "seed": 11, "num_samples": 10})
    history = rng.integers(0, 5_000, (4, 64))
    penalties = {"repetition_penalty": 1.2, "frequency_penalty": 0.3, "presence_penalty": 0.4}
    yield Case(
        "history penalties and logit_bias",
        (wide,),
        {"history": history, **penalties, "logit_bias": {7: 3.0, 11: -np.inf}, "top_k": 40, "seed": 12},
    )


def multinomial_cases(rng: np.random.Generator):
    probs = rng.random((5, 60)) * (rng.random((5, 60)) < 0.5)
    probs[:, 0] += 0.1
    yield Case("with replacement", (probs, 200), {"seed": 1})
    yield Case("1-D float32", (probs[0].astype(np.float32), 10), {"seed": 2})
    yield Case("without replacement", (probs, 10), {"replacement": False, "seed": 3})
    yield Case(
        "without replacement, every category",
        (probs[1:2], int(np.count_nonzero(probs[1]))),
        {"replacement": False, "seed": 4},
    )


def nll_cases(rng: np.random.Generator):
    counts, probs = next(table_cases(rng))
    tokens = rng.integers(0, 40, 50_000).astype(np.uint8)
    yield Case("smoothed probabilities", (sampling.bigram_probs(counts), tokens))
    yield Case("integer counts + 1", (counts + 1, tokens.astype(np.int32)))
    yield Case("strided uint16 stream", (sampling.bigram_probs(counts, 0.5), tokens.astype(np.uint16)[::3]))
    yield Case("two tokens", (sampling.bigram_probs(counts), tokens[:2]))
    yield Case("sparse bigram counts (NGramCounts)", (NGramCounts.from_dense(counts + 1), tokens))


def uniform_cases(rng: np.random.Generator):
    yield Case("one stream", (1_000,), {"seed": 0})
    yield Case("(B, n), offset", ((17, 33),), {"seed": 123, "offset": 2**40})
    yield Case("largest seed", ((3, 5),), {"seed": 2**64 - 1})
    yield Case("empty", ((0, 4),), {"seed": 5})


def close(got, want) -> float:
    return abs(got - want) / max(1.0, abs(want))


_ENTRIES = [
    ("sample_next", next_cases),
    ("generate", generate_cases),
    ("sample_logits", logits_cases),
    ("multinomial", multinomial_cases),
    ("uniform", uniform_cases),
]
# Outside peers for the benchmarks (left out when torch is not installed).
_PEERS = {name: torch_peers(getattr(peers_torch, name)) for name in ("sample_next", "sample_logits", "multinomial")}
for name, cases in _ENTRIES:
    entry = KernelCheck(
        name, "sampling", getattr(sampling, name), getattr(reference, name), cases, peers=_PEERS.get(name, {})
    )
    register(entry)
register(KernelCheck("nll", "sampling", metrics.nll, reference.nll, nll_cases, compare=close, tolerance=1e-12))


# ---------------------------------------------------------------------------------------------
# attention (issue 5) register below
# ---------------------------------------------------------------------------------------------
