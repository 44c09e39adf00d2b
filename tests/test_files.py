"""Counting files and shards: one contract for one path or many, bad files leave nothing."""

from __future__ import annotations

import os

import numpy as np
import pytest

from fastgram import NGramCounts, Vocab, _io, count_file, count_files, count_ngrams, reference
from fastgram.files import iter_file_chunks, scan_vocab


@pytest.fixture
def no_temp_left(tmp_path):
    """A private temporary directory that must be empty again after the test."""
    spill = tmp_path / "spill"
    spill.mkdir()
    yield str(spill)
    assert os.listdir(spill) == []


def test_shards_equal_the_concatenation(tmp_path):
    rng = np.random.default_rng(4)
    tokens = rng.integers(0, 500, 40_000).astype(np.uint16)
    parts = np.array_split(tokens, [5, 6, 20_000])
    for i, part in enumerate(parts):
        part.tofile(tmp_path / f"shard-{i}.bin")
    whole = count_ngrams(tokens, 3, 500)
    for source in (str(tmp_path / "shard-*.bin"), str(tmp_path), sorted(tmp_path.iterdir())):
        got = count_files(source, 3, dtype="uint16", vocab_size=500, chunk_tokens=3_000)
        np.testing.assert_array_equal(got.keys, whole.keys)
        np.testing.assert_array_equal(got.counts, whole.counts)
    # with a separator it also goes between the shards
    joined = np.concatenate([np.append(p, 499) for p in parts])[:-1]
    got = count_files(str(tmp_path / "shard-*.bin"), 3, dtype="uint16", separator=499, max_memory="128K")
    np.testing.assert_array_equal(got.counts, count_ngrams(joined, 3, 500, separator=499).counts)
    assert got.tokens == len(tokens) + len(parts) - 1


def test_count_file_text(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text("héllo hello\n", encoding="utf-8")
    got = count_file(path, 2, text=True)
    data = np.frombuffer("héllo hello\n".encode(), np.uint8)
    np.testing.assert_array_equal(got.counts, count_ngrams(data, 2, 256).counts)
    with pytest.raises(
        TypeError, match="path must be one str or os.PathLike \\(count_files takes several\\), got list"
    ):
        count_file([path], 2, text=True)


def test_bad_shards_leave_nothing(tmp_path, no_temp_left):
    good = tmp_path / "a.bin"
    (np.arange(100, dtype=np.uint16) % 40).tofile(good)
    with pytest.raises(FileNotFoundError, match="missing.bin: no such file"):
        count_files([good, tmp_path / "missing.bin"], 2, dtype="uint16", tmp_dir=no_temp_left)
    with pytest.raises(FileNotFoundError, match="no file matches this pattern"):
        count_files(str(tmp_path / "nothing-*.bin"), 2, dtype="uint16")
    odd = tmp_path / "odd.bin"
    odd.write_bytes(b"\x01\x02\x03")
    with pytest.raises(ValueError, match="odd.bin: file size 3 bytes is not a multiple"):
        count_files([good, odd], 2, dtype="uint16", tmp_dir=no_temp_left)
    bad = tmp_path / "bad.bin"
    np.array([1, 2, 3, 99], np.uint16).tofile(bad)
    with pytest.raises(ValueError, match=r"bad.bin: token id 99 at position 3 is outside \[0, 50\)"):
        count_files([good, bad], 2, dtype="uint16", vocab_size=50, max_memory="64K", tmp_dir=no_temp_left)
    if os.name == "posix" and os.geteuid() != 0:
        locked = tmp_path / "locked.bin"
        np.arange(10, dtype=np.uint16).tofile(locked)
        locked.chmod(0)
        try:
            with pytest.raises(PermissionError, match="locked.bin: file is not readable"):
                count_files([good, locked], 2, dtype="uint16", tmp_dir=no_temp_left)
        finally:
            locked.chmod(0o600)
    with pytest.raises(ValueError, match="give exactly one of dtype="):
        count_files([good], 2)
    assert os.listdir(no_temp_left) == []
    assert not any(name.startswith(".") for name in os.listdir(tmp_path))


def test_unreadable_shard_checked_before_counting(tmp_path, monkeypatch, no_temp_left):
    # (as root a chmod does not make a file unreadable, so the permission check is simulated)
    shards = []
    for i in range(2):
        shards.append(tmp_path / f"s{i}.bin")
        np.arange(50, dtype=np.uint16).tofile(shards[-1])
    real_access = os.access
    monkeypatch.setattr(_io.os, "access", lambda p, mode: not str(p).endswith("s1.bin") and real_access(p, mode))
    with pytest.raises(PermissionError, match="s1.bin: file is not readable"):
        count_files(shards, 2, dtype="uint16", max_memory="64K", tmp_dir=no_temp_left)
    with pytest.raises(FileNotFoundError, match="no such file"):
        count_files([shards[0], tmp_path / "gone" / "s9.bin"], 2, dtype="uint16")


TEXT = "tiny gpt built with pure numpy. ünïcødé — 日本語 🙂 " * 40


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "uint32"])
@pytest.mark.parametrize("chunk", [1, 7, 1000, 1 << 20])
def test_raw_file_matches_reference(tmp_path, rng, dtype, chunk):
    data = rng.integers(0, 250, 5001).astype(dtype)
    data.tofile(tmp_path / "train.bin")
    counts = count_file(tmp_path / "train.bin", dtype=dtype, chunk_tokens=chunk)
    np.testing.assert_array_equal(counts.to_dense(), reference.count_bigrams(data))
    assert counts.tokens == data.size and counts.vocab is None


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 64, 1 << 20])
def test_char_text_split_characters_are_exact(tmp_path, chunk):
    (tmp_path / "t.txt").write_text(TEXT, encoding="utf-8")
    vocab = Vocab.from_text(TEXT)
    counts = count_file(tmp_path / "t.txt", vocab=vocab, chunk_tokens=chunk)  # a vocabulary implies text
    np.testing.assert_array_equal(counts.to_dense(), reference.count_bigrams(vocab.encode(TEXT), len(vocab)))
    assert counts.tokens == len(TEXT) and counts.vocab == vocab


@pytest.mark.parametrize("chunk", [1, 3, 1 << 20])
def test_byte_text(tmp_path, chunk):
    (tmp_path / "t.txt").write_text(TEXT, encoding="utf-8")
    counts = count_file(tmp_path / "t.txt", text=True, chunk_tokens=chunk)
    want = reference.count_bigrams(np.frombuffer(TEXT.encode(), np.uint8), 256)
    np.testing.assert_array_equal(counts.to_dense(), want)
    assert counts.vocab == Vocab.bytes()


def test_empty_files(tmp_path):
    (tmp_path / "e.bin").write_bytes(b"")
    (tmp_path / "e.txt").write_bytes(b"")
    assert count_file(tmp_path / "e.bin", dtype="uint16").tokens == 0
    assert count_file(tmp_path / "e.txt", text=True).total == 0
    assert count_file(tmp_path / "e.bin", dtype="uint16").vocab_size == 1  # the default V of every counter


def test_several_files_as_one_stream(tmp_path, rng):
    parts = [rng.integers(0, 60, n).astype(np.uint16) for n in (100, 1, 0, 333)]
    for i, part in enumerate(parts):
        part.tofile(tmp_path / f"shard{i}.bin")
    for n in (1, 2, 3):
        got = count_files([tmp_path], n, dtype="uint16", vocab_size=60)  # dense path for bigrams
        want_ngrams, want_counts = reference.count_ngrams(np.concatenate(parts), n, 60)
        np.testing.assert_array_equal(got.ngrams, want_ngrams)
        np.testing.assert_array_equal(got.counts, want_counts)
        # one path and a list of one give the same type and the same counts
        one = count_file(tmp_path / "shard0.bin", n, dtype="uint16", vocab_size=60)
        assert isinstance(one, NGramCounts) and one.n == n


def test_iter_file_chunks_yields_the_file_in_order(tmp_path, rng):
    data = rng.integers(0, 9, 1000).astype(np.uint16)
    data.tofile(tmp_path / "a.bin")
    got = np.concatenate([c.copy() for c in iter_file_chunks(tmp_path / "a.bin", dtype="uint16", chunk_tokens=64)])
    np.testing.assert_array_equal(got, data)


def test_scan_vocab(tmp_path):
    (tmp_path / "a.txt").write_text("hello", encoding="utf-8")
    (tmp_path / "b.txt").write_text("wörld", encoding="utf-8")
    assert scan_vocab([tmp_path / "a.txt", tmp_path / "b.txt"], chunk_tokens=2) == Vocab.from_text("helloworld" + "ö")


def test_progress_bar_runs(tmp_path, capsys):
    np.arange(100, dtype=np.uint8).tofile(tmp_path / "a.bin")
    assert count_file(tmp_path / "a.bin", dtype="uint8", progress=True).tokens == 100
    err = capsys.readouterr().err
    assert "100%" in err and err.count("100%") == err.count("\n100%") + err.startswith("100%") or "100/100" in err


# -- errors -----------------------------------------------------------------------------------


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        count_file(tmp_path / "nope.bin", dtype="uint16")
    with pytest.raises(IsADirectoryError, match="is a directory"):
        count_file(tmp_path, dtype="uint16")


def test_size_not_a_multiple_of_the_dtype(tmp_path):
    (tmp_path / "odd.bin").write_bytes(b"\x00" * 1001)
    with pytest.raises(ValueError, match="file size 1,001 bytes is not a multiple of uint16's 2 bytes"):
        count_file(tmp_path / "odd.bin", dtype="uint16")


def test_invalid_utf8_gives_the_byte_offset(tmp_path):
    (tmp_path / "bad.txt").write_bytes(b"hello \xff world")
    for chunk in (1, 4, 100):
        with pytest.raises(ValueError, match="invalid UTF-8 at byte 6"):
            count_file(tmp_path / "bad.txt", text=True, chunk_tokens=chunk)
        with pytest.raises(ValueError, match="invalid UTF-8 at byte 6"):
            count_file(tmp_path / "bad.txt", text=True, vocab=Vocab.from_text("helo wrd"), chunk_tokens=chunk)


def test_truncated_utf8_at_end(tmp_path):
    (tmp_path / "cut.txt").write_bytes("ab日".encode()[:-1])
    with pytest.raises(ValueError, match="invalid UTF-8 at byte 2"):
        count_file(tmp_path / "cut.txt", text=True, chunk_tokens=2)


def test_character_outside_vocab_gives_file_position(tmp_path):
    (tmp_path / "t.txt").write_text("abcabcz", encoding="utf-8")
    with pytest.raises(ValueError, match=r"character 'z' \(U\+007A\) at position 6"):
        count_file(tmp_path / "t.txt", text=True, vocab=Vocab.from_text("abc"), chunk_tokens=2)


def test_id_out_of_range_gives_file_position(tmp_path):
    data = np.zeros(100, np.uint16)
    data[77] = 500
    data.tofile(tmp_path / "a.bin")
    with pytest.raises(ValueError, match=r"token id 500 at position 77 is outside \[0, 100\)"):
        count_file(tmp_path / "a.bin", dtype="uint16", vocab_size=100, chunk_tokens=10)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({}, ValueError, "give exactly one of dtype="),
        ({"dtype": "uint16", "text": True}, ValueError, "give exactly one of dtype="),
        ({"dtype": "float32"}, ValueError, "dtype must be one of uint8, uint16, uint32, got float32"),
        ({"dtype": "uint64"}, ValueError, "dtype must be one of"),
        ({"dtype": "uint8", "chunk_tokens": 0}, ValueError, "chunk_tokens must be >= 1"),
        ({"text": True, "vocab": "chars"}, TypeError, "vocab must be a fastgram.Vocab"),
        ({"dtype": "uint8", "vocab": Vocab.bytes()}, ValueError, "vocab= applies to text files"),
        ({"dtype": "uint8", "min_count": 0}, ValueError, "min_count must be >= 1, got 0"),
        ({"dtype": "uint8", "vocab_size": 0}, ValueError, "vocab_size must be >= 1, got 0"),
        ({"text": "yes"}, TypeError, "text must be True or False"),
        ({"text": 1}, TypeError, "text must be True or False, got int 1"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, exc, match):
    (tmp_path / "a.bin").write_bytes(b"\x01\x02")
    with pytest.raises(exc, match=match):
        count_file(tmp_path / "a.bin", **kwargs)


def test_path_type_error():
    with pytest.raises(TypeError, match=r"path must be one str or os.PathLike \(count_files takes several\), got int"):
        count_file(3, dtype="uint8")


def test_wide_keys_through_files(tmp_path, rng):
    """Word-sized ids: 5-grams over V = 10**6 need two key words; shards count as one stream."""
    tokens = (rng.zipf(1.3, 30_000) % 1_000_000).astype(np.uint32)
    parts = np.array_split(tokens, [7, 10_000])
    for i, part in enumerate(parts):
        part.tofile(tmp_path / f"s{i}.bin")
    got = count_files(sorted(tmp_path.glob("s*.bin")), 5, dtype="uint32", vocab_size=1_000_000, max_memory="256K")
    want_ngrams, want_counts = reference.count_ngrams(tokens, 5, 1_000_000)
    assert got.keys.ndim == 2
    np.testing.assert_array_equal(got.ngrams, want_ngrams)
    np.testing.assert_array_equal(got.counts, want_counts)
