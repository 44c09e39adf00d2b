"""NGramCounts: queries, conversions, merging, saving and validated loading."""

from __future__ import annotations

import os

import numpy as np
import pytest

from fastgram import NGramCounts, count_ngrams, reference


def test_result_queries_and_conversions(tmp_path):
    tokens = np.array([0, 1, 0, 1, 2, 0, 1, 2, 2], np.uint8)
    c = count_ngrams(tokens, 2, 3)
    dense = reference.count_bigrams(tokens, 3)
    np.testing.assert_array_equal(c.to_dense(), dense)
    np.testing.assert_array_equal(c.to_scipy().toarray(), dense)
    ngrams, counts = c.top(2)
    assert ngrams.tolist() == [[0, 1], [1, 2]] and counts.tolist() == [3, 2]
    assert c.top(3)[0].tolist() == [[0, 1], [1, 2], [1, 0]]  # ties by n-gram
    assert c.top(100)[1].sum() == len(tokens) - 1
    assert c.top(0)[0].shape == (0, 2)
    assert c.lookup([[0, 1], [2, 2], [2, 1]]).tolist() == [3, 1, 0]
    assert c[1, 2] == 2 and c[(2, 0)] == 1
    assert c.prune(2).ngrams.tolist() == [[0, 1], [1, 2]]
    assert c.total == 8 and len(c) == 5 and "distinct=5" in repr(c)
    path = tmp_path / "counts.npz"
    c.save(path)
    loaded = NGramCounts.load(path)
    np.testing.assert_array_equal(loaded.keys, c.keys)
    np.testing.assert_array_equal(loaded.counts, c.counts)
    assert (loaded.n, loaded.vocab_size, loaded.separator, loaded.tokens) == (2, 3, None, 9)
    assert sorted(os.listdir(tmp_path)) == ["counts.npz"]  # no temporary file left
    np.savez(tmp_path / "other.npz", x=np.arange(3))
    with pytest.raises(ValueError, match="not a fastgram n-gram counts file"):
        NGramCounts.load(tmp_path / "other.npz")
    np.savez(
        tmp_path / "tampered.npz",
        keys=np.array([5, 2], np.uint64),
        counts=np.ones(2, np.int64),
        n=2,
        vocab_size=3,
        separator=-1,
        tokens=3,
        kind="ngrams",
    )
    with pytest.raises(ValueError, match=r"tampered.npz: keys must be strictly increasing"):
        NGramCounts.load(tmp_path / "tampered.npz")
    trigrams = count_ngrams(tokens, 3, 3)
    assert trigrams.to_dense().shape == (3, 3, 3)
    with pytest.raises(ValueError, match="to_scipy needs bigrams"):
        trigrams.to_scipy()
    with pytest.raises(ValueError, match=r"shape \(131072,\)\*2 needs 128.0 GiB, over max_memory"):
        count_ngrams(np.array([1, 2], np.uint32), 2, 1 << 17).to_dense()
    with pytest.raises(ValueError, match=r"ngrams must have shape \(q, 2\)"):
        c.lookup([[0, 1, 2]])
    with pytest.raises(ValueError, match=r"token id 3 at position 0 is outside \[0, 3\)"):
        c.lookup([[3, 0]])


def test_merge_results():
    a = count_ngrams(np.array([1, 2, 3]), 2, 4)
    b = count_ngrams(np.array([2, 3, 0]), 2, 4)
    m = a.merge(b)
    assert m.ngrams.tolist() == [[1, 2], [2, 3], [3, 0]] and m.counts.tolist() == [1, 2, 1]
