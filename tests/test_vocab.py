"""Vocab: the notebook's character vocabulary and the byte-level one."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastgram import Vocab

NOTEBOOK = "tiny gpt built with pure numpy. this is a tiny demo to learn the math of transformers. it can overfit a short text."


def test_matches_the_notebook():
    v = Vocab.from_text(NOTEBOOK)
    chars = sorted(set(NOTEBOOK))
    assert list(v.chars) == chars and len(v) == 24
    assert v.stoi == {ch: i for i, ch in enumerate(chars)}
    assert v.itos == {i: ch for i, ch in enumerate(chars)}
    np.testing.assert_array_equal(v.encode(NOTEBOOK), [v.stoi[c] for c in NOTEBOOK])


@settings(max_examples=80, deadline=None)
@given(st.text(min_size=0, max_size=200))
def test_char_round_trip_is_exact(text):
    v = Vocab.from_text(text + "a")
    ids = v.encode(text)
    assert ids.dtype == v.dtype and ids.shape == (len(text),)
    assert v.decode(ids) == text


@settings(max_examples=80, deadline=None)
@given(st.text(max_size=200))
def test_byte_round_trip_is_exact(text):
    v = Vocab.bytes()
    ids = v.encode(text)
    np.testing.assert_array_equal(ids, np.frombuffer(text.encode("utf-8"), np.uint8))
    assert v.decode(ids) == text


def test_smallest_dtype():
    assert Vocab.from_text("ab").dtype == np.uint8
    assert Vocab.from_text("".join(map(chr, range(0x100, 0x100 + 300)))).dtype == np.uint16
    assert Vocab.bytes().dtype == np.uint8 and len(Vocab.bytes()) == 256


def test_unknown_character_names_it_and_its_position():
    v = Vocab.from_text("abc")
    with pytest.raises(ValueError, match=r"character 'z' \(U\+007A\) at position 3 is not in the vocabulary"):
        v.encode("abcz")


def test_explicit_unknown_id():
    v = Vocab.from_text("abc", unk="?")
    assert "?" in v.chars
    assert v.decode(v.encode("abzc€")) == "ab?c?"


def test_decode_rejects_ids_outside_the_vocabulary():
    with pytest.raises(ValueError, match=r"token id 3 at position 1 is outside \[0, 3\)"):
        Vocab.from_text("abc").decode([0, 3])
    with pytest.raises(ValueError, match=r"token id -1 at position 0"):
        Vocab.from_text("abc").decode(np.array([-1]))


def test_byte_level_decode_replaces_invalid_utf8():
    assert Vocab.bytes().decode([0x68, 0xFF, 0x69]) == "h\ufffdi"


@pytest.mark.parametrize("vocab", [Vocab.from_text("héllo wörld"), Vocab.from_text("ab", unk="~"), Vocab.bytes()])
def test_save_load_json(tmp_path, vocab):
    vocab.save(tmp_path / "v.json")
    assert Vocab.load(tmp_path / "v.json") == vocab
    assert Vocab.from_json(vocab.to_json()) == vocab


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: Vocab.from_text(b"abc"), TypeError, "text must be str, got bytes"),
        (lambda: Vocab.from_text("abc").encode(3), TypeError, "text must be str, got int"),
        (lambda: Vocab(["a", "bc"]), ValueError, "entry 1 must be a single character"),
        (lambda: Vocab(["a", "a"]), ValueError, "entries must be unique"),
        (lambda: Vocab([]), ValueError, "at least one character"),
        (lambda: Vocab(["a"], unk="b"), ValueError, "unk 'b' is not one of chars"),
        (lambda: Vocab.from_text("a", unk="xy"), ValueError, "unk must be a single character"),
        (lambda: Vocab.from_json("{}"), ValueError, "not a fastgram vocabulary"),
        (lambda: Vocab.from_json('{"kind": "words"}'), ValueError, "unknown kind 'words'"),
        (lambda: Vocab.bytes().stoi, ValueError, "character-level vocabularies only"),
        (lambda: Vocab.bytes().decode([0.5]), TypeError, "ids must be an array of integers"),
    ],
)
def test_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
