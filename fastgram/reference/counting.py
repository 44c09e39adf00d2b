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


def ngram_rows(tokens, n, separator=None):
    """Every n-gram of the stream as a row of an (N - n + 1, n) int64 matrix (8 n bytes per
    token), windows containing ``separator`` left out."""
    tokens = np.asarray(tokens)
    W = max(len(tokens) - n + 1, 0)
    rows = np.empty((W, n), dtype=np.int64)
    keep = np.ones(W, dtype=bool)
    for j in range(n):
        rows[:, j] = tokens[j : j + W]
        if separator is not None:
            keep &= rows[:, j] != separator
    return rows[keep]


def count_ngrams(tokens, n, vocab_size=None, separator=None, min_count=1, **_options):
    """``(ngrams, counts)``: the distinct n-grams (m, n) in lexicographic order and their counts.

    Packed keys, then ``np.unique(keys, return_counts=True)``, then the keys unpacked into
    columns. When ``V**n > 2**64`` (keys would not fit one uint64) the windows are rows of an
    int64 matrix instead and ``np.unique(rows, axis=0)`` finds the distinct rows in
    lexicographic order. Options that do not change the result (memory budgets) are ignored.
    """
    tokens = np.asarray(tokens)
    if vocab_size is None:
        vocab_size = int(tokens.max()) + 1 if tokens.size else 1
    if int(vocab_size) ** n > 2**64:
        rows = ngram_rows(tokens, n, separator)
        unique, counts = np.unique(rows, axis=0, return_counts=True)
        keep = counts >= min_count
        return unique[keep].reshape(-1, n), counts[keep].astype(np.int64)
    keys = ngram_keys(tokens, n, vocab_size, separator)
    unique, counts = np.unique(keys, return_counts=True)
    keep = counts >= min_count
    unique, counts = unique[keep], counts[keep]
    ngrams = np.empty((len(unique), n), dtype=np.int64)
    for j in range(n - 1, -1, -1):
        ngrams[:, j] = unique % np.uint64(vocab_size)
        unique = unique // np.uint64(vocab_size)
    return ngrams, counts.astype(np.int64)
