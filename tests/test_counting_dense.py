"""count_bigrams and BigramCounter against the NumPy reference."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fastgram import BigramCounter, Vocab, count_bigrams, reference
from fastgram.kernels import counting as kernels

INT_DTYPES = ["u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8", ">u2", ">i4", "<u8"]


@st.composite
def streams(draw, max_vocab=300):
    dtype = np.dtype(draw(st.sampled_from(INT_DTYPES)))
    V = draw(st.integers(1, min(max_vocab, np.iinfo(dtype).max + 1)))
    n = draw(st.integers(0, 400))
    tokens = draw(hnp.arrays(dtype, n, elements=st.integers(0, V - 1)))
    step = draw(st.sampled_from([1, 1, 2, 3]))
    return tokens[::step], V


@settings(max_examples=60, deadline=None)
@given(streams())
def test_matches_reference_any_dtype_size_and_stride(case):
    tokens, V = case
    got = count_bigrams(tokens, V)
    assert got.dtype == np.int64 and got.shape == (V, V)
    np.testing.assert_array_equal(got, reference.count_bigrams(tokens, V))


@pytest.mark.parametrize("V", [2, 300, 363, 1000, 4096])
def test_both_kernels_match_reference(rng, V):
    # V <= 362 takes the private-table kernel, larger V the partitioned one.
    tokens = rng.integers(0, V, 200_000).astype(np.uint16)
    np.testing.assert_array_equal(count_bigrams(tokens, V), reference.count_bigrams(tokens, V))


def test_partitioned_kernel_over_several_rounds(rng):
    # More pairs than one round, a skewed stream, and a V that is not a power of two: blocks
    # with many keys take the histogram sweep, blocks with few the direct path.
    V = 1500
    n = 2 * kernels.round_pairs_for(V) + 12_345
    tokens = np.minimum(rng.zipf(1.3, n) - 1, V - 1).astype(np.uint16)
    np.testing.assert_array_equal(count_bigrams(tokens, V), reference.count_bigrams(tokens, V))


def test_vocab_size_defaults_to_max_plus_one():
    assert count_bigrams(np.array([0, 4, 2], np.int16)).shape == (5, 5)
    assert count_bigrams(np.zeros(0, np.uint8)).shape == (1, 1)


def test_empty_and_single_token_give_zeros():
    assert not count_bigrams(np.zeros(0, np.uint16), 7).any()
    assert not count_bigrams(np.array([6], np.uint16), 7).any()
    assert count_bigrams([], 3).shape == (3, 3)


def test_largest_id_of_the_dtype():
    t = np.array([255, 0, 255, 255], np.uint8)
    c = count_bigrams(t, 256)
    assert c[255, 0] == 1 and c[0, 255] == 1 and c[255, 255] == 1 and c.sum() == 3


def test_memmap_input(tmp_path, rng):
    data = rng.integers(0, 700, 30_001).astype(np.uint16)
    data.tofile(tmp_path / "train.bin")
    mm = np.memmap(tmp_path / "train.bin", dtype=np.uint16, mode="r")
    np.testing.assert_array_equal(count_bigrams(mm, 700), reference.count_bigrams(data, 700))


def test_thread_count_does_not_change_the_result(rng, threads):
    for V in (256, 2000):
        tokens = rng.integers(0, V, 300_000).astype(np.uint16)
        with threads(1):
            one = count_bigrams(tokens, V)
        with threads(2):
            two = count_bigrams(tokens, V)
        np.testing.assert_array_equal(one, two)


def test_calls_from_several_python_threads(rng):
    tokens = [rng.integers(0, V, 150_000).astype(np.uint16) for V in (200, 1200, 200, 1200)]
    want = [reference.count_bigrams(t, int(t.max()) + 1) for t in tokens]
    got = [None] * len(tokens)

    def work(i):
        for _ in range(3):
            got[i] = count_bigrams(tokens[i], int(tokens[i].max()) + 1)

    pool = [threading.Thread(target=work, args=(i,)) for i in range(len(tokens))]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


# -- errors -----------------------------------------------------------------------------------


def test_out_of_range_id_names_position_and_value():
    t = np.zeros(2000, np.uint16)
    t[1234] = 300
    with pytest.raises(ValueError, match=r"token id 300 at position 1,234 is outside \[0, 256\)"):
        count_bigrams(t, 256)


def test_negative_id_is_rejected():
    with pytest.raises(ValueError, match=r"token id -3 at position 2 is negative \(token ids are >= 0\)"):
        count_bigrams(np.array([1, 2, -3, 4], np.int8), 10)
    with pytest.raises(ValueError, match=r"token id -1 at position 0"):
        count_bigrams(np.array([-1, 2], np.int64))


def test_out_of_range_writes_nothing():
    counter = BigramCounter(4)
    counter.update(np.array([0, 1], np.uint8))
    before = counter.counts.copy()
    with pytest.raises(ValueError, match="position 3"):
        counter.update(np.array([1, 9], np.uint8))
    np.testing.assert_array_equal(counter.counts, before)
    assert counter.tokens == 2


@pytest.mark.parametrize(
    "tokens, kwargs, exc, match",
    [
        (np.array([0.5, 1.0]), {}, TypeError, "tokens must be an array of integers, got dtype float64"),
        (np.array([True, False]), {}, TypeError, "tokens must be an array of integers, got dtype bool"),
        (np.zeros((2, 3), np.uint8), {}, ValueError, r"tokens must be 1-D, got shape \(2, 3\)"),
        (np.zeros(3, np.uint8), {"vocab_size": 0}, ValueError, "vocab_size must be >= 1, got 0"),
        (np.zeros(3, np.uint8), {"vocab_size": 2.0}, TypeError, "vocab_size must be an integer, got float"),
        (
            np.zeros(3, np.uint8),
            {"vocab_size": 20_000},
            ValueError,
            r"vocab_size=20,000 needs a dense .* over the memory budget max_memory=2.0 GiB; .*count_ngrams\(tokens, 2\)",
        ),
        (
            np.zeros(3, np.uint8),
            {"vocab_size": 70_000, "max_memory": 1 << 50},
            ValueError,
            r"too large for a dense table .* count_ngrams",
        ),
        (np.zeros(3, np.uint8), {"max_memory": -1}, ValueError, "max_memory must be >= 1, got -1"),
        (np.zeros(3, np.uint8), {"max_memory": "lots"}, ValueError, "max_memory must be a size such as 512M or 2G"),
        (np.zeros(3, np.uint8), {"sparse": True}, TypeError, "unexpected keyword argument 'sparse'"),
    ],
)
def test_bad_arguments(tokens, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        count_bigrams(tokens, **kwargs)


# -- streaming --------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(streams(), st.lists(st.integers(0, 400), max_size=6))
def test_chunks_equal_the_concatenation(case, cuts):
    tokens, V = case
    edges = [0, *sorted(min(c, tokens.size) for c in cuts), tokens.size]
    counter = BigramCounter(V)
    for lo, hi in zip(edges[:-1], edges[1:]):
        counter.update(tokens[lo:hi])
    np.testing.assert_array_equal(counter.counts, reference.count_bigrams(tokens, V))
    assert counter.tokens == tokens.size


def test_merge_adds_independent_streams(rng):
    a, b = rng.integers(0, 50, 1000), rng.integers(0, 50, 700)
    left, right = BigramCounter(50), BigramCounter(50)
    left.update(a)
    right.update(b)
    left.merge(right)
    want = reference.count_bigrams(a, 50) + reference.count_bigrams(b, 50)
    np.testing.assert_array_equal(left.counts, want)
    assert left.tokens == 1700


def test_merge_errors():
    with pytest.raises(ValueError, match="other has vocab_size=3, this counter has vocab_size=4"):
        BigramCounter(4).merge(BigramCounter(3))
    with pytest.raises(TypeError, match="other must be a BigramCounter"):
        BigramCounter(4).merge(np.zeros((4, 4)))


def test_counts_are_read_only():
    counter = BigramCounter(3)
    with pytest.raises(ValueError, match="read-only"):
        counter.counts[0, 0] = 1


def test_save_and_load_round_trip(tmp_path, rng):
    counter = BigramCounter(30, vocab=Vocab.from_text("abcdefghijklmnopqrstuvwxyz .,!"))
    counter.update(rng.integers(0, 30, 5000))
    path = tmp_path / "counts.npz"
    counter.save(path)
    again = BigramCounter.load(path)
    np.testing.assert_array_equal(again.counts, counter.counts)
    assert (again.vocab_size, again.tokens, again.last_token, again.vocab) == (
        30,
        5000,
        counter.last_token,
        counter.vocab,
    )
    assert [p.name for p in tmp_path.iterdir()] == ["counts.npz"]


def test_load_rejects_other_files(tmp_path):
    np.savez(tmp_path / "x.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match=r"x.npz: not a fastgram bigram counts file \(missing field 'counts'\)"):
        BigramCounter.load(tmp_path / "x.npz")


def _saved(tmp_path, **changes):
    counter = BigramCounter(4)
    counter.update(np.array([0, 1, 2, 3, 1], np.uint8))
    path = tmp_path / "c.npz"
    counter.save(path)
    fields = dict(np.load(path))
    fields.update(changes)
    np.savez(path, **fields)
    return path


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"last_token": np.int64(4)}, r"field 'last_token' is 4, outside \[-1, 3\]"),
        ({"vocab_size": np.int64(0)}, r"field 'vocab_size' is 0, outside \[1, "),
        ({"vocab_size": np.float64(4)}, r"field 'vocab_size' must be an integer scalar"),
        ({"counts": -np.ones((4, 4), np.int64)}, r"field 'counts' holds a negative count"),
        ({"counts": np.ones((4, 4), np.float64)}, r"field 'counts' has shape \(4, 4\) and dtype float64"),
        ({"counts": np.ones((3, 4), np.int64)}, r"field 'counts' has shape \(3, 4\)"),
        ({"tokens": np.int64(2)}, r"fields 'tokens' \(2\), 'last_token' and 'counts' disagree"),
        ({"kind": np.array("ngrams")}, r"not a fastgram bigram counts file \(field 'kind' is 'ngrams'\)"),
        ({"vocab": np.array("{not json")}, r"field 'vocab': .*not a fastgram vocabulary"),
    ],
)
def test_load_validates_every_field(tmp_path, changes, match):
    with pytest.raises(ValueError, match=match):
        BigramCounter.load(_saved(tmp_path, **changes))


def test_load_of_a_damaged_file_names_it(tmp_path):
    path = _saved(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"c.npz: not a readable .npz file"):
        BigramCounter.load(path)
    path.write_bytes(b"garbage" * 10)
    with pytest.raises(ValueError, match=r"c.npz: not a readable .npz file"):
        BigramCounter.load(path)


def test_vocab_must_be_a_vocab(tmp_path):
    with pytest.raises(TypeError, match="vocab must be a fastgram.Vocab, got str"):
        BigramCounter(10, vocab="abc")


def test_over_the_budget_names_count_ngrams(rng):
    tokens = rng.integers(0, 100, 5_000).astype(np.uint16)
    with pytest.raises(ValueError, match=r"over the memory budget max_memory=1000 B; .*count_ngrams"):
        count_bigrams(tokens, 100, max_memory=1000)  # 80,000 bytes > budget
    np.testing.assert_array_equal(count_bigrams(tokens, 100, max_memory="1M"), reference.count_bigrams(tokens, 100))


def test_v_equals_one():
    np.testing.assert_array_equal(count_bigrams(np.zeros(10, np.uint8), 1), [[9]])


def test_empty_stream_has_the_default_vocabulary_of_every_counter():
    np.testing.assert_array_equal(count_bigrams(np.zeros(0, np.uint8)), np.zeros((1, 1), np.int64))
