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


# -- keys wider than 64 bits ---------------------------------------------------------------------

V_WIDE = 10**6


def wide_counts(seed=0, size=3_000, n=5, V=V_WIDE):
    rng = np.random.default_rng(seed)
    values = np.array([0, 1, 7, 123_456, V - 2, V - 1], np.uint32)
    return count_ngrams(values[rng.integers(0, len(values), size)], n, V)


def as_tuples(ngrams):
    return [tuple(r) for r in np.asarray(ngrams).tolist()]


def test_wide_result_layout_and_queries():
    c = wide_counts()
    assert c.words == 2 and c.keys.shape == (len(c), 2) and c.keys.dtype == np.uint64 and c.keys.flags.c_contiguous
    ngrams = c.ngrams
    assert ngrams.dtype == np.uint32 and ngrams.shape == (len(c), 5)
    # groups of 3 then 2 ids, most significant first
    np.testing.assert_array_equal(
        c.keys[:, 0], (ngrams[:, 0] * np.uint64(V_WIDE) + ngrams[:, 1]) * V_WIDE + ngrams[:, 2]
    )
    np.testing.assert_array_equal(c.keys[:, 1], ngrams[:, 3].astype(np.uint64) * V_WIDE + ngrams[:, 4])
    assert as_tuples(ngrams) == sorted(as_tuples(ngrams))
    assert len(c) == len(set(as_tuples(ngrams))) and c.total == 3_000 - 4 and f"distinct={len(c):,}" in repr(c)
    # top: count descending, ties by n-gram ascending
    tuples = as_tuples(ngrams)
    order = sorted(range(len(c)), key=lambda i: (-int(c.counts[i]), tuples[i]))
    for k in (0, 1, 17, len(c), len(c) + 5):
        top_ngrams, top_counts = c.top(k)
        want = order[: min(k, len(c))]
        assert as_tuples(top_ngrams) == [tuples[i] for i in want]
        assert top_counts.tolist() == [int(c.counts[i]) for i in want]
    assert c.top(0)[0].shape == (0, 5)
    pruned = c.prune(3)
    keep = c.counts >= 3
    np.testing.assert_array_equal(pruned.ngrams, ngrams[keep])
    assert pruned.words == 2 and pruned.keys.shape == (int(keep.sum()), 2)
    # pack / lookup / __getitem__
    np.testing.assert_array_equal(c.pack(ngrams), c.keys)
    unseen = np.array([[2, 2, 2, 2, 2], [V_WIDE - 1, 0, 0, 0, 3]])
    queries = np.concatenate([ngrams[::-7], unseen])
    want = [int(x) for x in c.counts[::-7]] + [0, 0]
    assert c.lookup(queries).tolist() == want
    assert c[tuple(int(x) for x in ngrams[3])] == int(c.counts[3]) and c[2, 2, 2, 2, 2] == 0
    assert c.pack(ngrams[0]).shape == (1, 2)
    with pytest.raises(ValueError, match=r"ngrams must have shape \(q, 5\) or \(5,\)"):
        c.lookup([[0, 1, 2]])
    with pytest.raises(ValueError, match=r"token id 1,000,000 at position 0 is outside \[0, 1,000,000\)"):
        c.lookup([[V_WIDE, 0, 0, 0, 0]])
    empty = c.prune(10**9)
    assert len(empty) == 0 and empty.keys.shape == (0, 2) and empty.lookup(unseen).tolist() == [0, 0]
    assert empty.ngrams.shape == (0, 5) and empty.top(3)[0].shape == (0, 5)


def test_wide_merge_and_dense():
    a, b = wide_counts(1), wide_counts(2, size=2_000)
    m = a.merge(b)
    want = {}
    for part in (a, b):
        for g, k in zip(as_tuples(part.ngrams), part.counts.tolist()):
            want[g] = want.get(g, 0) + k
    assert as_tuples(m.ngrams) == sorted(want) and m.counts.tolist() == [want[g] for g in sorted(want)]
    assert m.tokens == a.tokens + b.tokens and m.words == 2
    with pytest.raises(ValueError, match=r"a dense table of shape \(1000000,\)\*5 needs .* over max_memory"):
        a.to_dense()
    with pytest.raises(ValueError, match="to_scipy needs bigrams"):
        a.to_scipy()
    with pytest.raises(ValueError, match="cannot merge counts with n=4 and n=5"):
        wide_counts(n=4).merge(a)


def test_wide_save_load_round_trip(tmp_path):
    for c in (wide_counts(), wide_counts(3, size=500, n=8, V=2**32), wide_counts(4, size=300, n=7, V=2**17)):
        path = tmp_path / f"w{c.words}.npz"
        c.save(path)
        loaded = NGramCounts.load(path)
        assert loaded.words == c.words > 1 and loaded.keys.shape == c.keys.shape
        np.testing.assert_array_equal(loaded.keys, c.keys)
        np.testing.assert_array_equal(loaded.counts, c.counts)
        np.testing.assert_array_equal(loaded.ngrams, c.ngrams)
        assert (loaded.n, loaded.vocab_size, loaded.tokens) == (c.n, c.vocab_size, c.tokens)
        with np.load(path) as f:  # NumPy alone reads it
            assert f["keys"].shape == (len(c), c.words) and f["keys"].dtype == np.uint64


def test_load_refuses_an_unknown_format(tmp_path):
    c = wide_counts()
    c.save(tmp_path / "c.npz")
    with np.load(tmp_path / "c.npz") as f:
        fields = {k: f[k] for k in f.files}
    np.savez(tmp_path / "future.npz", **{**fields, "format": np.int64(2)})
    with pytest.raises(ValueError, match=r"future.npz: field 'format'"):
        NGramCounts.load(tmp_path / "future.npz")


def _write(path, keys, counts=None, n=5, vocab_size=V_WIDE):
    keys = np.asarray(keys)
    np.savez(
        path,
        kind="ngrams",
        format=1,
        keys=keys,
        counts=np.ones(len(keys), np.int64) if counts is None else counts,
        n=n,
        vocab_size=vocab_size,
        separator=-1,
        tokens=10,
    )
    return path


def test_wide_tampered_files(tmp_path):
    c = wide_counts()
    good = c.keys.copy()
    cases = [
        (good[::-1], r"bad.npz: keys must be strictly increasing .* row 1 is not above row 0"),
        (
            np.concatenate([good[:3], good[2:3]]),
            r"bad.npz: keys must be strictly increasing .* row 3 is not above row 2",
        ),
        (good.ravel()[: len(good)], r"bad.npz: field 'keys' must be 2-D \(m, 2\) uint64, got uint64 of shape"),
        (
            np.zeros((2, 3), np.uint64),
            r"bad.npz: field 'keys' must be 2-D \(m, 2\) uint64, got uint64 of shape \(2, 3\)",
        ),
        (good.astype(np.int64), r"bad.npz: field 'keys' must be 2-D \(m, 2\) uint64, got int64"),
        (np.array([[0, 10**12]], np.uint64), r"bad.npz: keys\[0, 1\]: 1,000,000,000,000 is not a group of 2 ids"),
        (
            np.array([[0, 0], [10**18, 0]], np.uint64),
            r"bad.npz: keys\[1, 0\]: 1,000,000,000,000,000,000 is not a group",
        ),
    ]
    for keys, message in cases:
        with pytest.raises(ValueError, match=message):
            NGramCounts.load(_write(tmp_path / "bad.npz", keys))
    with pytest.raises(ValueError, match=r"bad.npz: fields 'keys' and 'counts' differ in length: 3 and 2"):
        NGramCounts.load(_write(tmp_path / "bad.npz", good[:3], np.ones(2, np.int64)))
    with pytest.raises(ValueError, match=r"bad.npz: counts must be >= 1, got 0"):
        NGramCounts.load(_write(tmp_path / "bad.npz", good[:3], np.array([1, 0, 1])))
    with pytest.raises(ValueError, match=r"bad.npz: fields 'n' and 'vocab_size': .* keys wider than 64 bits need"):
        NGramCounts.load(_write(tmp_path / "bad.npz", good[:3], n=3, vocab_size=2**40))
    with pytest.raises(ValueError, match=r"bad.npz: field 'keys' must be 1-D uint64"):
        NGramCounts.load(_write(tmp_path / "bad.npz", good[:3], n=2, vocab_size=10))
    NGramCounts.load(_write(tmp_path / "ok.npz", good, c.counts))


def test_wide_constructor_validation():
    c = wide_counts()
    NGramCounts(c.keys, c.counts, 5, V_WIDE)
    with pytest.raises(
        ValueError, match=r"keys must have shape \(m, 2\) \(n=5 over vocab_size=1,000,000 takes 2 words"
    ):
        NGramCounts(c.keys[:, 0], c.counts, 5, V_WIDE)
    with pytest.raises(ValueError, match=r"keys must have shape \(m, 2\) .* got \(\d+, 2\) and \(3,\)"):
        NGramCounts(c.keys, c.counts[:3], 5, V_WIDE)
    with pytest.raises(ValueError, match=r"keys must be strictly increasing .* row 1 is not above row 0"):
        NGramCounts(c.keys[[1, 0]], c.counts[:2], 5, V_WIDE)
    with pytest.raises(ValueError, match=r"keys must be non-negative integers"):
        NGramCounts(-c.keys.astype(np.int64), c.counts, 5, V_WIDE)
    # non-contiguous input keys are copied to C order
    fortran = np.asfortranarray(c.keys)
    assert NGramCounts(fortran, c.counts, 5, V_WIDE).keys.flags.c_contiguous
