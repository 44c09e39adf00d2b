"""The seed notebook's text and its tiny self-attention demo, reproduced with fastgram."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from fastgram import reference
from fastgram.attention import attention

__all__ = ["NOTEBOOK_TEXT", "AttentionDemo", "notebook_demo"]

#: The text the notebook builds its vocabulary, bigram counts and attention demo from.
NOTEBOOK_TEXT = (
    "tiny gpt built with pure numpy. "
    "this is a tiny demo to learn the math of transformers. "
    "it can overfit a short text."
)


@dataclasses.dataclass
class AttentionDemo:
    """The notebook's single-head causal self-attention over a few characters, with numbers.

    ``str(demo)`` (or ``demo.lines()``) is the printable report.
    """

    text: str  #: the characters attended over (one token each)
    tokens: np.ndarray  #: (T,) their ids in the notebook's sorted character vocabulary
    q: np.ndarray  #: (T, d_head) queries, ``x @ W_q``; likewise ``k`` and ``v``
    k: np.ndarray
    v: np.ndarray
    weights: np.ndarray  #: (T, T) the causal softmax weights, rows sum to 1
    out: np.ndarray  #: (T, d_head) :func:`attention` of q, k, v
    want: np.ndarray  #: (T, d_head) :func:`fastgram.reference.attention` of the same
    max_difference: float  #: ``max |out - want|``

    def lines(self) -> list[str]:
        T, d = self.out.shape
        rows = [
            f"causal self-attention over {self.text!r}: T = {T} tokens, one head of size {d} (float64, seed 0)",
            f"token ids: {self.tokens.tolist()}",
            "attention weights softmax(q k^T / sqrt(d)), row = query, column = key:",
            "        " + " ".join(f"{c!r:>5}" for c in self.text),
        ]
        for c, row in zip(self.text, self.weights):
            rows.append(f"  {c!r:>5} " + " ".join(f"{w:5.2f}" for w in row))
        rows.append("output = weights @ v (first 4 columns):")
        for c, row in zip(self.text, self.out):
            rows.append(f"  {c!r:>5} " + " ".join(f"{x:+.4f}" for x in row[:4]))
        rows.append(f"max |fastgram.attention - reference| = {self.max_difference:.2e}")
        return rows

    def __str__(self) -> str:
        return "\n".join(self.lines())


def notebook_demo(length: int = 8, d_model: int = 16, d_head: int = 8, seed: int = 0) -> AttentionDemo:
    """Reproduce the notebook's tiny self-attention demo and check it against the reference.

    The first ``length`` characters of the notebook's text are embedded (seeded random
    ``(V, d_model)`` table, V = the notebook's sorted character vocabulary), projected to
    queries, keys and values by seeded ``(d_model, d_head)`` matrices, and run through
    :func:`attention` with ``causal=True`` and through :func:`fastgram.reference.attention`.

    Returns
    -------
    AttentionDemo
        Print it for the report; ``max_difference`` is the kernel's distance to the reference.

    Examples
    --------
    >>> from fastgram.app.notebook import notebook_demo
    >>> demo = notebook_demo()
    >>> demo.max_difference < 1e-12
    True
    """
    chars = sorted(set(NOTEBOOK_TEXT))
    stoi = {ch: i for i, ch in enumerate(chars)}
    text = NOTEBOOK_TEXT[:length]
    tokens = np.array([stoi[c] for c in text], dtype=np.int64)
    rng = np.random.default_rng(seed)
    embedding = rng.standard_normal((len(chars), d_model))
    w_q, w_k, w_v = (rng.standard_normal((d_model, d_head)) / math.sqrt(d_model) for _ in range(3))
    x = embedding[tokens]  # (T, d_model)
    q, k, v = x @ w_q, x @ w_k, x @ w_v  # (T, d_head) each
    scores = q @ k.T / math.sqrt(d_head)
    scores = np.where(np.tril(np.ones((len(text), len(text)), bool)), scores, -np.inf)
    weights = np.exp(scores - scores.max(axis=1, keepdims=True))
    weights /= weights.sum(axis=1, keepdims=True)
    out = attention(q, k, v, causal=True)
    want = reference.attention(q, k, v, causal=True)
    return AttentionDemo(text, tokens, q, k, v, weights, out, want, float(np.abs(out - want).max()))
