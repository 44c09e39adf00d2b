"""Counting references: dense bigram tables and sparse n-gram counts by ``np.unique``."""

from __future__ import annotations

import numpy as np

# ---------------------------------------------------------------------------------------------
# counting
# ---------------------------------------------------------------------------------------------


def count_bigrams(tokens, vocab_size=None, **_options):
    """``counts[a, b]`` = number of positions ``i`` with ``tokens[i] == a`` and ``tokens[i+1] == b``.

    The classic one-liner: pack each pair into one int64 key ``a * V + b`` and histogram the
    keys. Uses about 24 bytes of temporaries per token. Options of the fast version that do not
    change the result (progress, memory budgets) are accepted and ignored.
    """
    tokens = np.asarray(tokens)
    if vocab_size is None:
        vocab_size = int(tokens.max()) + 1 if tokens.size else 1
    V = int(vocab_size)
    a = tokens[:-1].astype(np.int64)
    b = tokens[1:].astype(np.int64)
    keys = a * V + b
    return np.bincount(keys, minlength=V * V).reshape(V, V).astype(np.int64)


def ngram_keys(tokens, n, vocab_size, separator=None):
    """Every n-gram of the stream packed into one uint64 key ``((t0 * V + t1) * V + ...)``.

    Windows containing ``separator`` are left out. Uses 8 bytes per token (plus one column
    temporary).
    """
    tokens = np.asarray(tokens)
    V = np.uint64(vocab_size)
    W = max(len(tokens) - n + 1, 0)
    keys = np.zeros(W, dtype=np.uint64)
    keep = np.ones(W, dtype=bool)
    for j in range(n):
        column = tokens[j : j + W]
        keys *= V
        keys += column.astype(np.uint64)
        if separator is not None:
            keep &= column != separator
    return keys[keep] if separator is not None else keys


def count_ngrams(tokens, n, vocab_size=None, separator=None, min_count=1, **_options):
    """``(ngrams, counts)``: the distinct n-grams (m, n) in lexicographic order and their counts.

    Packed keys, then ``np.unique(keys, return_counts=True)``, then the keys unpacked into
    columns. Options that do not change the result (memory budgets) are ignored.
    """
    tokens = np.asarray(tokens)
    if vocab_size is None:
        vocab_size = int(tokens.max()) + 1 if tokens.size else 1
    keys = ngram_keys(tokens, n, vocab_size, separator)
    unique, counts = np.unique(keys, return_counts=True)
    keep = counts >= min_count
    unique, counts = unique[keep], counts[keep]
    ngrams = np.empty((len(unique), n), dtype=np.int64)
    for j in range(n - 1, -1, -1):
        ngrams[:, j] = unique % np.uint64(vocab_size)
        unique = unique // np.uint64(vocab_size)
    return ngrams, counts.astype(np.int64)
