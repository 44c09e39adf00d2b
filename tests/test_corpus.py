"""count_file and the file readers: raw token files and UTF-8 text, in chunks."""

from __future__ import annotations

import os

import numpy as np
import pytest

from fastgram import BigramCounter, Vocab, count_file, reference
from fastgram.corpus import atomic_output, expand_paths, iter_file_chunks, scan_vocab

TEXT = "tiny gpt built with pure numpy. ünïcødé — 日本語 🙂 " * 40


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "uint32"])
@pytest.mark.parametrize("chunk", [1, 7, 1000, 1 << 20])
def test_raw_file_matches_reference(tmp_path, rng, dtype, chunk):
    data = rng.integers(0, 250, 5001).astype(dtype)
    data.tofile(tmp_path / "train.bin")
    counter = count_file(tmp_path / "train.bin", dtype=dtype, chunk_tokens=chunk)
    np.testing.assert_array_equal(counter.counts, reference.count_bigrams(data))
    assert counter.tokens == data.size


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 64, 1 << 20])
def test_char_text_split_characters_are_exact(tmp_path, chunk):
    (tmp_path / "t.txt").write_text(TEXT, encoding="utf-8")
    vocab = Vocab.from_text(TEXT)
    counter = count_file(tmp_path / "t.txt", text=True, vocab=vocab, chunk_tokens=chunk)
    np.testing.assert_array_equal(counter.counts, reference.count_bigrams(vocab.encode(TEXT), len(vocab)))
    assert counter.tokens == len(TEXT) and counter.vocab == vocab


@pytest.mark.parametrize("chunk", [1, 3, 1 << 20])
def test_byte_text(tmp_path, chunk):
    (tmp_path / "t.txt").write_text(TEXT, encoding="utf-8")
    counter = count_file(tmp_path / "t.txt", text=True, chunk_tokens=chunk)
    want = reference.count_bigrams(np.frombuffer(TEXT.encode(), np.uint8), 256)
    np.testing.assert_array_equal(counter.counts, want)


def test_empty_files(tmp_path):
    (tmp_path / "e.bin").write_bytes(b"")
    (tmp_path / "e.txt").write_bytes(b"")
    assert count_file(tmp_path / "e.bin", dtype="uint16").tokens == 0
    assert count_file(tmp_path / "e.txt", text=True).counts.sum() == 0


def test_several_files_as_one_stream(tmp_path, rng):
    parts = [rng.integers(0, 60, n).astype(np.uint16) for n in (100, 1, 0, 333)]
    counter = BigramCounter(60)
    for i, part in enumerate(parts):
        part.tofile(tmp_path / f"shard{i}.bin")
    for path in expand_paths([tmp_path]):
        count_file(path, dtype="uint16", counter=counter)
    np.testing.assert_array_equal(counter.counts, reference.count_bigrams(np.concatenate(parts), 60))


def test_iter_file_chunks_yields_the_file_in_order(tmp_path, rng):
    data = rng.integers(0, 9, 1000).astype(np.uint16)
    data.tofile(tmp_path / "a.bin")
    got = np.concatenate([c.copy() for c in iter_file_chunks(tmp_path / "a.bin", dtype="uint16", chunk_tokens=64)])
    np.testing.assert_array_equal(got, data)


def test_scan_vocab(tmp_path):
    (tmp_path / "a.txt").write_text("hello", encoding="utf-8")
    (tmp_path / "b.txt").write_text("wörld", encoding="utf-8")
    assert scan_vocab([tmp_path / "a.txt", tmp_path / "b.txt"], chunk_bytes=2) == Vocab.from_text("helloworld" + "ö")


def test_progress_bar_runs(tmp_path, capsys):
    np.arange(100, dtype=np.uint8).tofile(tmp_path / "a.bin")
    assert count_file(tmp_path / "a.bin", dtype="uint8", progress=True).tokens == 100
    assert "100" in capsys.readouterr().err


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
    ],
)
def test_bad_arguments(tmp_path, kwargs, exc, match):
    (tmp_path / "a.bin").write_bytes(b"\x01\x02")
    with pytest.raises(exc, match=match):
        count_file(tmp_path / "a.bin", **kwargs)


def test_path_type_error():
    with pytest.raises(TypeError, match="path must be a str or os.PathLike, got int"):
        count_file(3, dtype="uint8")


def test_atomic_output_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "out.npz"
    target.write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_output(target) as tmp:
            with open(tmp, "w") as f:
                f.write("half")
            raise KeyboardInterrupt
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.npz"]


def test_expand_paths_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file or directory"):
        expand_paths([tmp_path / "missing"])
    with pytest.raises(ValueError, match="no files found"):
        expand_paths([tmp_path])
