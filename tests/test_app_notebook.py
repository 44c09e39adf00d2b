"""The notebook's text and its self-attention demo (fastgram.app.notebook)."""

from __future__ import annotations

import math

import numpy as np

from fastgram import reference
from fastgram.app.notebook import NOTEBOOK_TEXT, AttentionDemo, notebook_demo


def test_notebook_demo_matches_the_notebooks_formula():
    demo = notebook_demo()
    assert isinstance(demo, AttentionDemo)
    T, d = demo.out.shape
    assert demo.text == NOTEBOOK_TEXT[:T]
    # the notebook's own computation, written out here: masked softmax of q k^T / sqrt(d), times v
    scores = demo.q @ demo.k.T / math.sqrt(d)
    scores[np.triu(np.ones((T, T), bool), 1)] = -np.inf
    weights = np.exp(scores - scores.max(axis=1, keepdims=True))
    weights /= weights.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(demo.weights, weights, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(demo.out, weights @ demo.v, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(demo.want, reference.attention(demo.q, demo.k, demo.v, causal=True), rtol=0, atol=0)
    assert demo.max_difference == float(np.abs(demo.out - demo.want).max()) <= 1e-12
    assert np.allclose(np.triu(demo.weights, 1), 0)  # causal


def test_notebook_demo_report_shows_the_numbers():
    demo = notebook_demo(length=5)
    text = str(demo)
    assert f"over {NOTEBOOK_TEXT[:5]!r}: T = 5 tokens" in text
    assert f"{demo.weights[1, 0]:5.2f}" in text and f"{demo.out[0, 0]:+.4f}" in text
