"""Registry entries of the language model: estimation, scoring and generation against the
plain-Python modified Kneser-Ney of :mod:`fastgram.reference.lm`."""

from __future__ import annotations

import numpy as np

from fastgram import reference
from fastgram.lm import NGramLM
from fastgram.lm import generate as _gen
from fastgram.registry.core import Case, KernelCheck, register


def _sentences(rng: np.random.Generator, n: int, vocab: int, max_len: int = 12) -> list[str]:
    """Zipf-distributed words ``w0 w1 ...``, one sentence per entry (empty sentences included)."""
    return [" ".join(f"w{x}" for x in rng.zipf(1.4, int(rng.integers(0, max_len))) % vocab) for _ in range(n)]


def _compare_models(got: dict, want: dict) -> float:
    """Largest difference of log10 probability or backoff; ``inf`` when the n-gram sets differ."""
    if sorted(got) != sorted(want):
        return float("inf")
    worst = 0.0
    for n, grams in want.items():
        if got[n].keys() != grams.keys():
            return float("inf")
        for g, (p, b) in grams.items():
            worst = max(worst, abs(got[n][g][0] - p), abs(got[n][g][1] - b))
    return worst


def estimate_kernel(sentences, order, **options) -> dict:
    """``NGramLM.estimate`` as ``{n: {ngram: (log10 p, log10 backoff)}}``."""
    return NGramLM.estimate(sentences, order, **options).to_dict()


def estimate_reference(sentences, order, **options) -> dict:
    return reference.lm_estimate([s.split() for s in sentences], order, **options)["ngrams"]


def estimate_cases(rng: np.random.Generator):
    for order in (1, 2, 3, 5):
        yield Case(f"order {order}", (_sentences(rng, 150, 25), order), {"discount_fallback": True})
    yield Case("pruned 0 1", (_sentences(rng, 200, 20), 3), {"discount_fallback": True, "prune": [0, 1]})
    yield Case("one-word sentences", ([f"w{i % 7}" for i in range(60)], 2), {"discount_fallback": True})


def _model(rng: np.random.Generator, order: int) -> NGramLM:
    return NGramLM.estimate(_sentences(rng, 200, 30), order, discount_fallback=True)


def score_kernel(lm: NGramLM, sentences) -> np.ndarray:
    """log10 p of every token of every sentence, ``</s>`` included, in one array."""
    return lm.score(sentences).log10


def score_reference(lm: NGramLM, sentences) -> np.ndarray:
    model = {"order": lm.order, "ngrams": lm.to_dict()}
    scores = reference.lm_score(model, [s.split() for s in sentences])
    return np.concatenate([np.asarray(s, np.float64) for s in scores])


def score_cases(rng: np.random.Generator):
    for order in (2, 4):
        lm = _model(rng, order)
        held_out = _sentences(rng, 40, 40)  # words w30.. are unknown to the model
        yield Case(f"order {order}, unknown words", (lm, held_out))


def generate_kernel(lm: NGramLM, n: int, max_length: int, *, seed: int, temperature: float = 1.0) -> list:
    ids, lengths = _gen.generate_ids(lm, n, max_length, seed=seed, temperature=temperature)
    return [ids[s, : lengths[s]].astype(np.int64) for s in range(n)]


def generate_reference(lm: NGramLM, n: int, max_length: int, *, seed: int, temperature: float = 1.0) -> list:
    tables = _gen.reference_tables(lm, temperature)
    return [np.asarray(s, np.int64) for s in reference.lm_generate(tables, lm.order, n, max_length, seed=seed)]


def generate_cases(rng: np.random.Generator):
    lm = _model(rng, 3)
    yield Case("order 3", (lm, 20, 15), {"seed": 1})
    yield Case("temperature 0.7", (lm, 10, 15), {"seed": 2, "temperature": 0.7})
    yield Case("order 1", (_model(rng, 1), 5, 10), {"seed": 3})


register(KernelCheck("lm_estimate", "lm", estimate_kernel, estimate_reference, estimate_cases,
                     compare=_compare_models, tolerance=1e-12))  # fmt: skip
register(KernelCheck("lm_score", "lm", score_kernel, score_reference, score_cases, tolerance=1e-12))
register(KernelCheck("lm_generate", "lm", generate_kernel, generate_reference, generate_cases))
