"""Sparse n-gram counting: kernels against the reference, streams, spills, bad input."""

from __future__ import annotations

import glob
import os
import tempfile
from collections import Counter

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastgram import NGramCounter, count_ngrams, reference
from fastgram._io import parse_memory


def assert_matches_reference(tokens, n, vocab_size=None, **options):
    got = count_ngrams(tokens, n, vocab_size, **options)
    ref_options = {k: v for k, v in options.items() if k in ("separator", "min_count")}
    want_ngrams, want_counts = reference.count_ngrams(tokens, n, vocab_size, **ref_options)
    np.testing.assert_array_equal(got.ngrams.astype(np.int64), want_ngrams)
    np.testing.assert_array_equal(got.counts, want_counts)
    assert got.counts.dtype == np.int64
    return got


def counter_reference(tokens, n, separator=None):
    tokens = [int(t) for t in tokens]
    grams = Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1) if separator not in tokens[i : i + n])
    return sorted(grams.items())


@pytest.fixture
def no_temp_left(tmp_path):
    """A private temporary directory that must be empty again after the test."""
    spill = tmp_path / "spill"
    spill.mkdir()
    yield str(spill)
    assert os.listdir(spill) == []


@pytest.mark.parametrize("n", range(1, 9))
@pytest.mark.parametrize("length_offset", [-1, 0, 1])
def test_sizes_around_n(n, length_offset):
    length = max(n + length_offset, 0)
    tokens = np.arange(length, dtype=np.uint8) % 7
    got = assert_matches_reference(tokens, n, 7)
    assert len(got) == max(length - n + 1, 0)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_empty_and_single_token(n):
    for tokens in (np.zeros(0, np.uint16), np.array([3], np.uint16)):
        got = assert_matches_reference(tokens, n, 5)
        assert got.ngrams.shape == (len(got), n)


@pytest.mark.parametrize(
    "n, V, dtype, size",
    [
        (1, 300, np.uint16, 10_000),
        (2, 2, np.uint8, 10_000),
        (2, 65536, np.uint16, 50_000),
        (2, 100_000, np.uint32, 20_000),
        (3, 4096, np.int16, 50_000),
        (3, 50, np.int64, 30_000),
        (4, 1000, np.uint16, 20_000),  # 40-bit keys: uint64 residuals
        (5, 60, np.uint8, 20_000),
        (8, 256, np.uint8, 5_000),  # exactly 64-bit keys
        (2, 2**32, np.uint64, 3_000),  # the largest bigram vocabulary
    ],
)
def test_random_against_reference(n, V, dtype, size):
    rng = np.random.default_rng([n, V, size])
    tokens = rng.integers(0, V, size, dtype=np.int64).astype(dtype)
    assert_matches_reference(tokens, n, V)


@pytest.mark.parametrize("n", [2, 3])
def test_skewed_data_dense_buckets(n):
    rng = np.random.default_rng(7)
    tokens = np.minimum(rng.zipf(1.1, 200_000) - 1, 65535).astype(np.uint16)
    assert_matches_reference(tokens, n, 65536)


def test_collections_counter_tiny_cases():
    rng = np.random.default_rng(3)
    for n in (1, 2, 3, 4):
        for _ in range(5):
            tokens = rng.integers(0, 4, 40).astype(np.uint8)
            for separator in (None, 2):
                got = count_ngrams(tokens, n, 4, separator=separator)
                want = counter_reference(tokens, n, separator)
                assert [tuple(g) for g in got.ngrams.tolist()] == [g for g, _ in want]
                assert got.counts.tolist() == [c for _, c in want]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(0, 9), max_size=60),
    st.integers(1, 4),
    st.sampled_from([np.uint8, np.int16, np.uint32, np.int64]),
    st.one_of(st.none(), st.integers(0, 9)),
)
def test_hypothesis_against_counter(values, n, dtype, separator):
    tokens = np.array(values, dtype=dtype)
    got = count_ngrams(tokens, n, 10, separator=separator)
    want = counter_reference(values, n, separator)
    assert [tuple(g) for g in got.ngrams.tolist()] == [g for g, _ in want]
    assert got.counts.tolist() == [c for _, c in want]


def test_non_contiguous_byte_swapped_and_memmap(tmp_path):
    rng = np.random.default_rng(11)
    base = rng.integers(0, 700, 30_001).astype(np.int32)
    assert_matches_reference(base[::3], 3, 700)
    assert_matches_reference(base.astype(">u2"), 2, 700)
    path = tmp_path / "tokens.bin"
    base.astype(np.uint16).tofile(path)
    mm = np.memmap(path, dtype=np.uint16, mode="r")
    assert_matches_reference(mm, 2, 700)


def test_vocab_size_inferred_and_v_one():
    got = count_ngrams(np.zeros(10, np.int8), 3)
    assert got.vocab_size == 1 and got.ngrams.tolist() == [[0, 0, 0]] and got.counts.tolist() == [8]
    assert count_ngrams(np.array([4, 2]), 2).vocab_size == 5


def test_separator_excludes_crossing_ngrams():
    tokens = np.array([1, 2, 0, 3, 4, 0, 1, 2], np.uint8)
    got = count_ngrams(tokens, 2, 5, separator=0)
    assert got.ngrams.tolist() == [[1, 2], [3, 4]]
    assert got.counts.tolist() == [2, 1]
    assert count_ngrams(tokens, 1, 5, separator=0).ngrams.ravel().tolist() == [1, 2, 3, 4]
    assert len(count_ngrams(tokens, 3, 5, separator=0)) == 0


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_separator_against_reference(n):
    rng = np.random.default_rng(n)
    tokens = rng.integers(0, 12, 20_000).astype(np.uint16)
    assert_matches_reference(tokens, n, 12, separator=3)


@pytest.mark.parametrize("n", [1, 2, 3, 6])
def test_chunks_equal_the_concatenation(n):
    rng = np.random.default_rng(n)
    tokens = rng.integers(0, 40, 5_000).astype(np.uint16)
    whole = count_ngrams(tokens, n, 40, separator=7)
    counter = NGramCounter(n, 40, separator=7)
    cuts = [0, 1, 2, 3, 10, 11, 500, 501, 501, 2000, 4999, 5000]
    for lo, hi in zip(cuts[:-1], cuts[1:]):
        counter.update(tokens[lo:hi])
    got = counter.result()
    np.testing.assert_array_equal(got.keys, whole.keys)
    np.testing.assert_array_equal(got.counts, whole.counts)
    assert counter.tokens == len(tokens)


def test_counter_merge_adds_separate_streams():
    rng = np.random.default_rng(5)
    a, b = rng.integers(0, 30, 3_000), rng.integers(0, 30, 2_000)
    ca, cb = NGramCounter(3, 30), NGramCounter(3, 30)
    ca.update(a)
    cb.update(b)
    merged = ca.merge(cb).result()
    want = count_ngrams(a, 3, 30).merge(count_ngrams(b, 3, 30))
    np.testing.assert_array_equal(merged.keys, want.keys)
    np.testing.assert_array_equal(merged.counts, want.counts)
    assert merged.tokens == 5_000
    with pytest.raises(ValueError, match="cannot merge counts with n=2 and n=3"):
        count_ngrams(a, 2, 30).merge(count_ngrams(a, 3, 30))
    with pytest.raises(TypeError, match="other must be an NGramCounter or NGramCounts"):
        ca.merge(a)


@pytest.mark.parametrize("n", [2, 3])
def test_spill_equals_in_memory(n, no_temp_left):
    rng = np.random.default_rng(n)
    tokens = rng.integers(0, 3000, 200_000).astype(np.uint16)
    whole = count_ngrams(tokens, n, 3000)
    counter = NGramCounter(n, 3000, max_memory="256K", tmp_dir=no_temp_left)
    for lo in range(0, len(tokens), 30_000):
        counter.update(tokens[lo : lo + 30_000])
    assert counter.spilled_runs >= 2
    assert glob.glob(os.path.join(no_temp_left, "fastgram-ngrams-*", "run-*"))
    for min_count in (1, 2):
        got = counter.result(min_count)
        want = whole.prune(min_count)
        np.testing.assert_array_equal(got.keys, want.keys)
        np.testing.assert_array_equal(got.counts, want.counts)
        blocks = list(counter.result_blocks(min_count))  # the same, a bounded block at a time
        assert len(blocks) > 1 or min_count > 1
        empty = [(np.zeros(0, np.uint64), np.zeros(0, np.int64))]
        np.testing.assert_array_equal(np.concatenate([k for k, _ in blocks + empty]), want.keys)
        np.testing.assert_array_equal(np.concatenate([c for _, c in blocks + empty]), want.counts)
    counter.close()
    assert os.listdir(no_temp_left) == []
    got = count_ngrams(tokens, n, 3000, max_memory=1 << 18, tmp_dir=no_temp_left)
    np.testing.assert_array_equal(got.counts, whole.counts)


def test_spill_cleaned_up_on_error(no_temp_left):
    rng = np.random.default_rng(1)
    with pytest.raises(KeyboardInterrupt):
        with NGramCounter(2, 5000, max_memory="64K", tmp_dir=no_temp_left) as counter:
            for _ in range(5):
                counter.update(rng.integers(0, 5000, 20_000))
            assert counter.spilled_runs > 0
            raise KeyboardInterrupt
    assert os.listdir(no_temp_left) == []
    tokens = rng.integers(0, 5000, 100_000)
    tokens[90_000] = 6000
    with pytest.raises(ValueError, match="token id 6,000 at position 90,000 is outside"):
        count_ngrams(tokens, 2, 5000, max_memory="64K", tmp_dir=no_temp_left)
    assert os.listdir(no_temp_left) == []


def test_thread_count_invariance():
    rng = np.random.default_rng(2)
    tokens = rng.integers(0, 65536, 300_000).astype(np.uint16)
    before = numba.get_num_threads()
    results = []
    try:
        for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(threads)
            results.append(count_ngrams(tokens, 2, 65536))
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(results[0].keys, results[1].keys)
    np.testing.assert_array_equal(results[0].counts, results[1].counts)


def test_min_count_option():
    tokens = np.array([1, 2, 1, 2, 1, 3])
    assert count_ngrams(tokens, 2, 4, min_count=2).ngrams.tolist() == [[1, 2], [2, 1]]


@pytest.mark.parametrize("big", [2**63 - 1, 2**63, 2**70, np.uint64(2**64 - 1)])
def test_min_count_past_any_count_keeps_nothing(tmp_path, big):
    # an int64-overflowing threshold is taken, not handed to a kernel: in memory, spilled
    # (the merge kernels) and pruning a result
    tokens = np.array([1, 2, 1, 2, 1, 3] * 50, np.uint16)
    assert len(count_ngrams(tokens, 2, 4, min_count=big)) == 0
    spilled = count_ngrams(tokens, 2, 4, min_count=big, max_memory=200, tmp_dir=tmp_path)
    assert len(spilled) == 0 and spilled.n == 2
    assert len(count_ngrams(tokens, 2, 4).prune(big)) == 0


def test_bad_order_and_key_space():
    tokens = np.arange(10)
    with pytest.raises(ValueError, match="n must be >= 1, got 0"):
        count_ngrams(tokens, 0)
    with pytest.raises(ValueError, match="n must be <= 8, got 9"):
        count_ngrams(tokens, 9)
    with pytest.raises(TypeError, match="n must be an integer"):
        count_ngrams(tokens, 2.0)
    with pytest.raises(ValueError, match=r"n=2 over vocab_size=4,294,967,297 need 65 bits per key; keys wider"):
        count_ngrams(tokens, 2, 2**32 + 1)
    with pytest.raises(ValueError, match=r"n=3 over vocab_size=4,294,967,297 need 97 bits per key"):
        NGramCounter(3, 2**32 + 1)
    assert NGramCounter(8, 2**32).words == 4 and NGramCounter(8, 257).words == 2 and NGramCounter(8, 256).words == 1


def test_bad_ids_and_arguments():
    with pytest.raises(ValueError, match=r"tokens: token id 9 at position 2 is outside \[0, 5\)"):
        count_ngrams(np.array([1, 2, 9, 3]), 2, 5)
    with pytest.raises(ValueError, match=r"token id -1 at position 1 is negative"):
        count_ngrams(np.array([1, -1, 3]), 2)
    with pytest.raises(ValueError, match=r"chunk: token id 7 at position 5 is outside \[0, 5\)"):
        counter = NGramCounter(2, 5)
        counter.update(np.array([1, 2, 3]))
        counter.update(np.array([1, 2, 7]))
    with pytest.raises(TypeError, match="tokens must be an array of integers"):
        count_ngrams(np.array([1.0, 2.0]), 2)
    with pytest.raises(ValueError, match="separator must be <= 4, got 5"):
        count_ngrams(np.array([1, 2]), 2, 5, separator=5)
    with pytest.raises(ValueError, match="max_memory must be a size such as 512M or 2G, got 'lots'"):
        count_ngrams(np.array([1, 2]), 2, max_memory="lots")
    with pytest.raises(ValueError, match="min_count must be >= 1"):
        count_ngrams(np.array([1, 2]), 2, min_count=0)
    assert parse_memory("2G") == 2 << 30 and parse_memory("1.5KiB") == 1536 and parse_memory(None) is None


def test_temporary_directory_removed_when_collected():
    tmp = tempfile.mkdtemp()
    try:
        counter = NGramCounter(2, 1000, max_memory="64K", tmp_dir=tmp)
        counter.update(np.random.default_rng(0).integers(0, 1000, 50_000))
        assert counter.spilled_runs > 0 and os.listdir(tmp)
        del counter
        assert os.listdir(tmp) == []
    finally:
        os.rmdir(tmp)


def test_spill_thread_count_invariance(no_temp_left):
    rng = np.random.default_rng(12)
    tokens = rng.integers(0, 2000, 120_000).astype(np.uint16)
    before = numba.get_num_threads()
    results = []
    try:
        for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(threads)
            results.append(count_ngrams(tokens, 2, 2000, max_memory="200K", tmp_dir=no_temp_left))
    finally:
        numba.set_num_threads(before)
    want = count_ngrams(tokens, 2, 2000)
    for got in results:
        np.testing.assert_array_equal(got.keys, want.keys)
        np.testing.assert_array_equal(got.counts, want.counts)


# -- keys wider than 64 bits (V**n > 2**64): rows of 2-4 uint64 words ------------------------------

WIDE_VOCABS = [2**17, 10**6, 2**32]


def wide_tokens(rng, size, V, distinct=12):
    """Ids drawn from a few values spread over [0, V) (0 and V - 1 included), so n-grams repeat."""
    values = np.unique(np.concatenate([[0, V - 1], rng.integers(0, V, distinct, dtype=np.uint64)]))
    return values[rng.integers(0, len(values), size)].astype(np.uint64)


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(WIDE_VOCABS),
    st.integers(2, 8),
    st.integers(0, 400),
    st.integers(1, 30),
    st.booleans(),
    st.integers(0, 2**32),
)
def test_hypothesis_wide_against_reference(V, n, size, distinct, use_separator, seed):
    rng = np.random.default_rng(seed)
    tokens = wide_tokens(rng, size, V, distinct)
    separator = int(tokens[0]) if use_separator and size else None
    got = assert_matches_reference(tokens, n, V, separator=separator)
    assert got.words == (1 if V**n <= 2**64 else -(-n // (2 if V > 2**21 else 3)))
    assert got.keys.ndim == (1 if got.words == 1 else 2) and got.keys.flags.c_contiguous
    want = counter_reference(tokens, n, separator)
    assert [tuple(g) for g in got.ngrams.tolist()] == [g for g, _ in want]


@pytest.mark.parametrize(
    "n, V, words",
    [
        (4, 2**17, 2),
        (8, 2**17, 3),
        (5, 10**6, 2),
        (7, 10**6, 3),
        (3, 2**32, 2),
        (5, 2**32, 3),
        (8, 2**32, 4),
        (8, 257, 2),
    ],
)
def test_wide_random_and_zipf_against_reference(n, V, words):
    rng = np.random.default_rng([n, V])
    uniform = rng.integers(0, V, 30_000, dtype=np.uint64)
    zipf = np.minimum(rng.zipf(1.2, 60_000) - 1, V - 1).astype(np.uint64)
    for tokens in (uniform, zipf, wide_tokens(rng, 20_000, V, 3)):
        got = assert_matches_reference(tokens, n, V)
        assert got.words == words and got.keys.shape == (len(got), words)
        assert got.counts.sum() == len(tokens) - n + 1


def test_wide_heavy_duplicates_and_orders():
    V = 10**6
    same = np.full(50_000, 999_999, np.uint32)
    got = assert_matches_reference(same, 5, V)
    assert got.ngrams.tolist() == [[999_999] * 5] and got.counts.tolist() == [50_000 - 4]
    ramp = (np.arange(40_000, dtype=np.uint64) * 7919) % V
    assert_matches_reference(ramp, 6, V)
    assert_matches_reference(ramp[::-1], 6, V)
    periodic = np.tile(np.array([0, V - 1, 5, 0, 0, 123_456], np.uint32), 5_000)
    assert_matches_reference(periodic, 8, V)


@pytest.mark.parametrize("n, V", [(5, 10**6), (8, 2**32)])
def test_wide_separator_against_reference(n, V):
    rng = np.random.default_rng(n)
    tokens = wide_tokens(rng, 20_000, V, 6)
    for separator in (0, V - 1, int(tokens[3])):
        assert_matches_reference(tokens, n, V, separator=separator)
    assert_matches_reference(tokens, n, V, separator=int(tokens[3]), min_count=2)


@pytest.mark.parametrize("n, V", [(4, 2**17), (5, 10**6), (8, 2**32)])
def test_wide_chunks_equal_the_concatenation(n, V):
    rng = np.random.default_rng([n, 1])
    tokens = wide_tokens(rng, 5_000, V, 8)
    separator = int(tokens[10])
    whole = count_ngrams(tokens, n, V, separator=separator)
    counter = NGramCounter(n, V, separator=separator)
    cuts = [0, 1, 2, 3, 7, 8, 500, 501, 501, 2000, 4999, 5000]
    for lo, hi in zip(cuts[:-1], cuts[1:]):
        counter.update(tokens[lo:hi])
    got = counter.result()
    np.testing.assert_array_equal(got.keys, whole.keys)
    np.testing.assert_array_equal(got.counts, whole.counts)
    want_ngrams, want_counts = reference.count_ngrams(tokens, n, V, separator=separator)
    np.testing.assert_array_equal(got.ngrams.astype(np.int64), want_ngrams)
    np.testing.assert_array_equal(got.counts, want_counts)
    assert got.words == counter.words > 1 and got.tokens == len(tokens)
    # counters of separate streams merge to the sum of their counts
    other = NGramCounter(n, V, separator=separator)
    other.update(tokens[:1234])
    merged = NGramCounter(n, V, separator=separator)
    merged.update(tokens[1234:])
    merged.merge(other)
    want = count_ngrams(tokens[1234:], n, V, separator=separator).merge(
        count_ngrams(tokens[:1234], n, V, separator=separator)
    )
    np.testing.assert_array_equal(merged.result().keys, want.keys)
    np.testing.assert_array_equal(merged.result().counts, want.counts)


def test_wide_small_blocks_many_runs(monkeypatch):
    import fastgram.counting.sparse as sparse

    monkeypatch.setattr(sparse, "WIDE_BLOCK_TOKENS", 1000)  # many runs merged in memory
    rng = np.random.default_rng(4)
    tokens = wide_tokens(rng, 30_000, 10**6, 20)
    assert NGramCounter(5, 10**6).block_tokens == 1000
    assert_matches_reference(tokens, 5, 10**6)


@pytest.mark.parametrize("V, n", [(50, 3), (10**6, 5)])
def test_result_blocks_merge_runs_in_memory_a_block_at_a_time(monkeypatch, V, n):
    import fastgram.counting.sparse as sparse

    monkeypatch.setattr(sparse, "BLOCK_TOKENS", 5000)  # several runs, none spilled
    monkeypatch.setattr(sparse, "WIDE_BLOCK_TOKENS", 5000)
    rng = np.random.default_rng(n)
    tokens = wide_tokens(rng, 60_000, V, 20) if V > 10**5 else rng.integers(0, V, 60_000).astype(np.uint16)
    monkeypatch.setattr(sparse.NGramCounter, "_merge_block", lambda self, sources: 512)
    counter = NGramCounter(n, V)
    for lo in range(0, len(tokens), 7_000):
        counter.update(tokens[lo : lo + 7_000])
    assert len(counter._runs) >= 2 and counter.spilled_runs == 0
    whole = count_ngrams(tokens, n, V)
    for min_count in (1, 2):
        blocks = list(counter.result_blocks(min_count))
        want = whole.prune(min_count)
        assert len(blocks) > 1
        np.testing.assert_array_equal(np.concatenate([k for k, _ in blocks]), want.keys)
        np.testing.assert_array_equal(np.concatenate([c for _, c in blocks]), want.counts)


def test_a_budget_only_shrinks_blocks_and_merge_reads():
    import fastgram.counting.sparse as sparse

    # a budget never makes blocks larger than counting without one
    assert NGramCounter(5, 10**6, max_memory="64G").block_tokens == sparse.WIDE_BLOCK_TOKENS
    assert NGramCounter(3, 50, max_memory="64G").block_tokens == sparse.BLOCK_TOKENS
    assert NGramCounter(3, 50, max_memory="1M").block_tokens == sparse.MIN_BLOCK_TOKENS
    assert NGramCounter(5, 10**6, max_memory="96M").block_tokens == (96 << 20) // 96
    # merge reads: within the budget, at most MERGE_BLOCK entries from all runs, 4096 from each
    assert NGramCounter(3, 50, max_memory="64G")._merge_block(4) == sparse.MERGE_BLOCK // 4
    assert NGramCounter(3, 50, max_memory="16M")._merge_block(16) == (16 << 20) // (8 * 16 * 16)
    assert NGramCounter(3, 50, max_memory="1M")._merge_block(100) == 4096
    assert NGramCounter(3, 50)._merge_block(1) == sparse.MERGE_BLOCK


@pytest.mark.parametrize("V, n", [(50, 3), (10**6, 5)])
def test_spilled_runs_merged_in_small_reads(monkeypatch, V, n, no_temp_left):
    """Spilled runs merged a few thousand entries at a time (``MERGE_BLOCK``): same counts."""
    import fastgram.counting.sparse as sparse

    monkeypatch.setattr(sparse, "BLOCK_TOKENS", 4000)  # several runs in memory at each spill
    monkeypatch.setattr(sparse, "WIDE_BLOCK_TOKENS", 4000)
    monkeypatch.setattr(sparse, "MERGE_BLOCK", 4096)
    rng = np.random.default_rng(n + 1)
    tokens = wide_tokens(rng, 80_000, V, 20) if V > 10**5 else rng.integers(0, V, 80_000).astype(np.uint16)
    with NGramCounter(n, V, max_memory=(1 << 20) if V > 10**5 else (1 << 18)) as counter:
        for lo in range(0, len(tokens), 9_000):
            counter.update(tokens[lo : lo + 9_000])
        assert counter.spilled_runs >= 2
        got = counter.result()
    want = count_ngrams(tokens, n, V)
    np.testing.assert_array_equal(got.keys, want.keys)
    np.testing.assert_array_equal(got.counts, want.counts)


def test_wide_non_contiguous_byte_swapped_and_memmap(tmp_path):
    rng = np.random.default_rng(13)
    V = 10**6
    base = wide_tokens(rng, 30_001, V, 15).astype(np.int64)
    assert_matches_reference(base[::3], 5, V)
    assert_matches_reference(base.astype(">u4"), 5, V)
    assert_matches_reference(base.astype(">i8")[::-2], 6, V)
    path = tmp_path / "tokens.bin"
    base.astype(np.uint32).tofile(path)
    mm = np.memmap(path, dtype=np.uint32, mode="r")
    assert_matches_reference(mm, 5, V)
    big = np.memmap(tmp_path / "big.bin", dtype=">u8", mode="w+", shape=(4_000,))
    big[:] = wide_tokens(rng, 4_000, 2**32, 10)
    assert_matches_reference(big, 8, 2**32)


def test_wide_thread_count_invariance():
    rng = np.random.default_rng(21)
    tokens = np.minimum(rng.zipf(1.1, 200_000) - 1, 10**6 - 1).astype(np.uint32)
    before = numba.get_num_threads()
    results = []
    try:
        for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS), numba.config.NUMBA_NUM_THREADS):
            numba.set_num_threads(threads)
            results.append(count_ngrams(tokens, 5, 10**6))
    finally:
        numba.set_num_threads(before)
    for got in results[1:]:
        np.testing.assert_array_equal(got.keys, results[0].keys)
        np.testing.assert_array_equal(got.counts, results[0].counts)


def test_wide_bad_ids():
    with pytest.raises(ValueError, match=r"tokens: token id 1,000,000 at position 2 is outside \[0, 1,000,000\)"):
        count_ngrams(np.array([1, 2, 10**6, 3]), 5, 10**6)
    with pytest.raises(ValueError, match=r"chunk: token id 4,294,967,296 at position 4 is outside"):
        counter = NGramCounter(8, 2**32)
        counter.update(np.array([1, 2, 3], np.uint64))
        counter.update(np.array([1, 2**32], np.uint64))
    with pytest.raises(ValueError, match="separator must be <= 999,999"):
        count_ngrams(np.arange(10), 5, 10**6, separator=10**6)


@pytest.mark.parametrize("n, V", [(5, 10**6), (8, 2**32), (4, 2**17)])
def test_wide_spill_equals_in_memory(n, V, no_temp_left):
    rng = np.random.default_rng([n, 9])
    tokens = wide_tokens(rng, 200_000, V, 30)
    whole = count_ngrams(tokens, n, V)
    counter = NGramCounter(n, V, max_memory="256K", tmp_dir=no_temp_left)
    for lo in range(0, len(tokens), 30_000):
        counter.update(tokens[lo : lo + 30_000])
    assert counter.spilled_runs >= 2
    assert glob.glob(os.path.join(no_temp_left, "fastgram-ngrams-*", "run-*"))
    for min_count in (1, 2, 5):
        got = counter.result(min_count)
        want = whole.prune(min_count)
        assert got.keys.shape == want.keys.shape and got.words > 1
        np.testing.assert_array_equal(got.keys, want.keys)
        np.testing.assert_array_equal(got.counts, want.counts)
    counter.close()
    assert os.listdir(no_temp_left) == []
    separator = int(tokens[0])
    assert_matches_reference(tokens, n, V, separator=separator, max_memory=1 << 18, tmp_dir=no_temp_left)


def test_wide_spill_thread_count_invariance(no_temp_left):
    rng = np.random.default_rng(14)
    tokens = wide_tokens(rng, 120_000, 10**6, 40)
    before = numba.get_num_threads()
    results = []
    try:
        for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(threads)
            results.append(count_ngrams(tokens, 5, 10**6, max_memory="200K", tmp_dir=no_temp_left, min_count=2))
    finally:
        numba.set_num_threads(before)
    want = count_ngrams(tokens, 5, 10**6, min_count=2)
    for got in results:
        np.testing.assert_array_equal(got.keys, want.keys)
        np.testing.assert_array_equal(got.counts, want.counts)


def test_wide_spill_cleaned_up_on_error(no_temp_left):
    rng = np.random.default_rng(15)
    with pytest.raises(KeyboardInterrupt):
        with NGramCounter(5, 10**6, max_memory="64K", tmp_dir=no_temp_left) as counter:
            for _ in range(5):
                counter.update(wide_tokens(rng, 20_000, 10**6, 50))
            assert counter.spilled_runs > 0
            raise KeyboardInterrupt
    assert os.listdir(no_temp_left) == []
