"""Vocab (the notebook's characters, bytes) and WordVocab (lmplz's words)."""

from __future__ import annotations

import re

import _kenlm
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastgram import Vocab
from fastgram import vocab as vocab_module
from fastgram.vocab import SPECIAL_WORDS, WordVocab, vocab_from_json

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
        (lambda: Vocab.from_json('{"kind": "words"}'), ValueError, "a word vocabulary, load it with WordVocab"),
        (lambda: Vocab.from_json('{"kind": "runes"}'), ValueError, "field 'kind': unknown kind 'runes'"),
        (lambda: Vocab.bytes().stoi, ValueError, "character-level vocabularies only"),
        (lambda: Vocab.bytes().decode([0.5]), TypeError, "ids must be an array of integers"),
    ],
)
def test_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# -------------------------------------------------------------------------------------------------
# Vocab JSON: exact round trips and validated loading
# -------------------------------------------------------------------------------------------------


def test_lone_surrogates_stay_two_characters(tmp_path):
    # A lone high surrogate then a lone low one: as one JSON string they read back as one
    # astral character.
    v = Vocab(["\ud83d", "\ude00", "a"])
    assert Vocab.from_json(v.to_json()) == v
    v.save(tmp_path / "v.json")
    back = Vocab.load(tmp_path / "v.json")
    assert back.chars == ("\ud83d", "\ude00", "a") and back.decode(v.encode("\ude00a\ud83d")) == "\ude00a\ud83d"


def test_old_string_format_still_loads():
    assert Vocab.from_json('{"kind": "chars", "chars": "abc", "unk": null}') == Vocab.from_text("abc")


@pytest.mark.parametrize(
    "words",
    [[*SPECIAL_WORDS, "x", "y", "日本", "caf\u00e9"], list(SPECIAL_WORDS), [*SPECIAL_WORDS, "a", "a"],
     [*SPECIAL_WORDS, "a b"], [*SPECIAL_WORDS, ""], [*SPECIAL_WORDS, "<s>"], ["<s>", "<unk>", "</s>"],
     ["<unk>", "<s>"], ["<unk>\n<s>", "</s>"], []],
)  # fmt: skip
def test_from_concatenated_is_the_vocabulary_of_the_list(words):
    data = np.frombuffer("".join(words).encode(), np.uint8)
    offsets = np.concatenate([[0], np.cumsum([len(w.encode()) for w in words])]).astype(np.int64)
    try:
        want = WordVocab(words)
    except ValueError as e:
        with pytest.raises(ValueError, match=re.escape(str(e))):
            WordVocab.from_concatenated(data, offsets)
        return
    got = WordVocab.from_concatenated(data, offsets)
    assert got == want and got.words == tuple(words)


@pytest.mark.parametrize(
    "data, offsets, exc, match",
    [
        (np.zeros(3, np.int32), [0, 3], TypeError, "data must be a 1-D uint8 array"),
        (np.zeros(3, np.uint8), [0, 2], ValueError, "offsets must be non-decreasing from 0 to len"),
        (np.zeros(3, np.uint8), [1, 3], ValueError, "offsets must be non-decreasing from 0 to len"),
        (np.zeros(3, np.uint8), [0, 2, 1, 3], ValueError, "offsets must be non-decreasing from 0 to len"),
        (np.zeros(3, np.uint8), [], ValueError, "offsets must be non-decreasing from 0 to len"),
        (np.zeros(3, np.uint8), np.array([0, 2, 1, 3], np.uint64), ValueError, "offsets must be non-decreasing"),
        (np.zeros(3, np.uint8), [0.0, 3.0], TypeError, "offsets must be an array of integers"),
        ([1, 2, 3], [0, 3], TypeError, "data must be a 1-D uint8 array, got list"),
    ],
)
def test_from_concatenated_checks_its_arrays(data, offsets, exc, match):
    with pytest.raises(exc, match=match):
        WordVocab.from_concatenated(data, offsets)


@pytest.mark.parametrize(
    "text, match",
    [
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ("not json", "invalid JSON"),
        ("[1, 2]", "expected a JSON object, got list"),
        ('{"chars": "ab"}', "missing field 'kind'"),
        ('{"kind": 3}', "field 'kind' must be str, got int"),
        ('{"kind": "chars"}', "missing field 'chars'"),
        ('{"kind": "chars", "chars": 5}', "field 'chars' must be list or str, got int"),
        ('{"kind": "chars", "chars": ["a", "bc"]}', "field 'chars': chars: entry 1 must be a single character"),
        ('{"kind": "chars", "chars": ["a", 7]}', "field 'chars': chars: entry 1 must be a single character"),
        ('{"kind": "chars", "chars": ["a", "a"]}', "field 'chars': chars: entries must be unique"),
        ('{"kind": "chars", "chars": ["a"], "unk": 1}', "field 'unk' must be a string or null, got int"),
        ('{"kind": "chars", "chars": ["a"], "unk": "b"}', "field 'unk': unk 'b' is not one of chars"),
    ],
)
def test_corrupt_vocab_json_names_file_and_field(tmp_path, text, match):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=f"^{path}: .*{match}"):
        Vocab.load(path)
    with pytest.raises(ValueError, match=match):
        Vocab.from_json(text)


def test_vocab_file_that_is_not_utf8(tmp_path):
    path = tmp_path / "bad.json"
    path.write_bytes(b'{"kind": "chars", "chars": ["\xff"]}')
    with pytest.raises(ValueError, match=f"{path}: not a fastgram vocabulary \\(invalid UTF-8 at byte 29\\)"):
        Vocab.load(path)


# -------------------------------------------------------------------------------------------------
# WordVocab against a plain-Python tokeniser
# -------------------------------------------------------------------------------------------------

DELIMS = b" \t\r\x00"


def ref_lines(data: bytes):
    """lmplz's reading: lines at b"\\n" (a last line without one is 'unterminated'), words between
    runs of space, tab, CR and NUL — written with bytes.split on one delimiter."""
    lines = data.split(b"\n")
    out = []
    for i, line in enumerate(lines):
        for d in DELIMS[1:]:
            line = line.replace(bytes([d]), b" ")
        words = [w for w in line.split(b" ") if w]
        terminated = i < len(lines) - 1
        if words or terminated:
            out.append((words, terminated))
    return out


def ref_vocab(data: bytes, skip_symbols: bool = False) -> list:
    words = [w.encode() for w in SPECIAL_WORDS]
    seen = set(words)
    for line, _ in ref_lines(data):
        for w in line:
            if w in seen:
                if w in words[:3] and not skip_symbols:
                    raise ValueError("special")
                continue
            seen.add(w)
            words.append(w)
    return words


def ref_encode(data: bytes, words: list, oov: str = "unk", skip_symbols: bool = False) -> np.ndarray:
    ids = {w: i for i, w in enumerate(words)}
    out = []
    for line, terminated in ref_lines(data):
        for w in line:
            i = ids.get(w)
            if i is None:
                if oov == "error":
                    raise ValueError("unknown")
                i = 0
            elif i < 3:
                if not skip_symbols:
                    raise ValueError("special")
                continue
            out.append(i)
        if terminated:
            out.append(2)
    return np.array(out, dtype=np.uint32)


PIECES = ["a", "b", "ab", "é", "😀", "日本", "x1", " ", "  ", "\t", "\n", "\n\n", "\r\n", "\x00", " \t "]
texts = st.lists(st.sampled_from(PIECES), max_size=60).map("".join)


@settings(max_examples=150, deadline=None)
@given(texts)
def test_words_and_ids_match_the_reference(text):
    data = text.encode()
    v = WordVocab.from_text(text)
    assert [w.encode() for w in v.words] == ref_vocab(data)
    ids = v.encode(text)
    assert ids.dtype == np.uint32
    np.testing.assert_array_equal(ids, ref_encode(data, ref_vocab(data)))
    np.testing.assert_array_equal(v.encode(data), ids)  # bytes and str alike
    assert 1 not in ids  # no <s> in a stream


@settings(max_examples=80, deadline=None)
@given(texts, st.integers(1, 12))
def test_chunk_edges_change_nothing(tmp_path_factory, text, chunk):
    data = text.encode()
    expected = ref_encode(data, ref_vocab(data))
    v = WordVocab.from_text(text)
    np.testing.assert_array_equal(v.encode(text, chunk_tokens=chunk), expected)
    path = tmp_path_factory.mktemp("w") / "t.txt"
    path.write_bytes(data)
    chunks = list(WordVocab().iter_file_ids(path, chunk_tokens=chunk, oov="add"))
    for c in chunks[:-1]:
        assert c[-1] == 2  # a chunk never splits a line
    got = np.concatenate(chunks) if chunks else np.empty(0, np.uint32)
    np.testing.assert_array_equal(got, expected)
    assert WordVocab.from_files(path, chunk_tokens=chunk) == v
    np.testing.assert_array_equal(v.encode_files([path], chunk_tokens=chunk, oov="error"), expected)


@settings(max_examples=60, deadline=None)
@given(texts, texts)
def test_unknown_words_map_to_unk(train, other):
    v = WordVocab.from_text(train)
    np.testing.assert_array_equal(v.encode(other), ref_encode(other.encode(), ref_vocab(train.encode())))


def _encode_both(v, text, **kwargs):
    """``v.encode(text, **kwargs)`` in one serial pass and in parallel runs of lines (8 runs,
    whatever the machine): each result, or the ValueError's message."""
    results = []
    for parallel in (False, True):
        saved = (vocab_module.PARALLEL_ENCODE_BYTES, vocab_module.num_threads)
        if parallel:
            vocab_module.PARALLEL_ENCODE_BYTES, vocab_module.num_threads = 1, lambda: 4
        try:
            results.append(v.encode(text, **kwargs).tolist())
        except ValueError as exc:
            results.append(str(exc))
        finally:
            vocab_module.PARALLEL_ENCODE_BYTES, vocab_module.num_threads = saved
    return results


@settings(max_examples=120, deadline=None)
@given(texts, texts, st.sampled_from(["unk", "error"]), st.booleans(), st.booleans())
def test_parallel_runs_of_lines_encode_as_one_pass(train, other, oov, special, skip):
    """A fixed vocabulary encodes a large buffer in parallel runs of whole lines: the same ids,
    and under ``oov="error"`` or a special word the same first error (word and byte offset)."""
    v = WordVocab.from_text(train)
    if special:  # a special word somewhere in the text
        other = other[: len(other) // 2] + " </s> " + other[len(other) // 2 :]
    serial, parallel = _encode_both(v, other, oov=oov, skip_symbols=skip)
    assert parallel == serial
    if oov == "unk" and not special:
        assert serial == ref_encode(other.encode(), ref_vocab(train.encode())).tolist()


def test_lines_and_sentence_ends():
    v = WordVocab.from_text("a b\n")
    assert v.encode("").tolist() == []
    assert v.encode("\n").tolist() == [2]
    assert v.encode("\n\n \t\n").tolist() == [2, 2, 2]
    assert v.encode("a\tb\r\n  b a  \n").tolist() == [3, 4, 2, 4, 3, 2]
    assert v.encode("a b\nb a").tolist() == [3, 4, 2, 4, 3]  # unterminated last line: no </s>, as lmplz


def test_words_that_are_not_utf8_round_trip(tmp_path):
    data = b"caf\xc3\xa9 \xff\xfe na\xefve\n\xff\xfe\n"
    v = WordVocab.from_text(data)
    assert v.words[3:] == ("café", "\udcff\udcfe", "na\udcefve")
    assert v.encode(data).tolist() == [3, 4, 5, 2, 4, 2]
    assert v.encode("\udcff\udcfe\n").tolist() == [4, 2]
    v.save(tmp_path / "w.json")
    assert WordVocab.load(tmp_path / "w.json") == v
    raw, offsets = v.concatenated()
    assert [raw[a:b].tobytes() for a, b in zip(offsets[:-1], offsets[1:])] == ref_vocab(data)


@pytest.mark.parametrize("ids", [[5, 0, 3, 3], [], [0, 1, 2, 3, 4, 5], [4]])
def test_concatenated_selects_words_by_id(ids):
    v = WordVocab.from_text(b"caf\xc3\xa9 \xff\xfe na\xefve\n")
    raw, offsets = v.concatenated(np.array(ids, np.int64))
    assert len(offsets) == len(ids) + 1 and offsets[0] == 0 and offsets[-1] == len(raw)
    got = [raw[a:b].tobytes().decode("utf-8", "surrogateescape") for a, b in zip(offsets[:-1], offsets[1:])]
    assert got == [v.words[i] for i in ids]


@pytest.mark.parametrize("ids", [[6], [-1], [[0, 1]]])
def test_concatenated_refuses_ids_outside_the_vocabulary(ids):
    v = WordVocab.from_text("a b c\n")
    with pytest.raises(ValueError, match=r"ids: must be a 1-D array of ids in \[0, 6\)"):
        v.concatenated(np.array(ids))


def test_many_words_grow_the_table(rng):
    # 60,000 distinct words of up to 12 bytes: the table, the offsets and the arena grow many times.
    words = np.unique(rng.integers(0, 10**12, 60_000)).astype(str)
    order = rng.permutation(np.repeat(np.arange(words.size), 3))
    text = " ".join(words[order]) + "\n"
    v = WordVocab.from_text(text)
    first = list(dict.fromkeys(words[order].tolist()))
    assert list(v.words[3:]) == first
    np.testing.assert_array_equal(v.encode(text), ref_encode(text.encode(), ref_vocab(text.encode())))
    assert v[first[-1]] == len(v) - 1 and first[0] in v and "nope" not in v


def test_special_words_raise_or_are_skipped():
    with pytest.raises(ValueError, match=r"text: word '<s>' at byte 2 is a special word: .*skip_symbols=True"):
        WordVocab.from_text("a <s> b\n")
    v = WordVocab.from_text("a <s> b </s>\n<unk>\n", skip_symbols=True)
    assert v.words == (*SPECIAL_WORDS, "a", "b")
    assert v.encode("a <unk> b\n", skip_symbols=True).tolist() == [3, 4, 2]
    with pytest.raises(ValueError, match=r"word '</s>' at byte 4 is a special word"):
        v.encode("a b </s>\n")


def test_oov_error_names_file_word_and_offset(tmp_path):
    v = WordVocab.from_text("a b\n")
    with pytest.raises(ValueError, match=r"text: word 'zed' at byte 4 is not in the vocabulary \(oov='error'"):
        v.encode("a b zed\n", oov="error")
    path = tmp_path / "t.txt"
    path.write_bytes(b"a b\n" * 5 + b"b zed\n")
    with pytest.raises(ValueError, match=f"{path}: word 'zed' at byte 22 is not"):
        list(v.iter_file_ids(path, chunk_tokens=3, oov="error"))
    special = _write(tmp_path / "s.txt", b"a b\n<s>\n")
    with pytest.raises(ValueError, match=f"{special}: word '<s>' at byte 4 is a special word"):
        WordVocab.from_files(special, chunk_tokens=2)


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def test_decode():
    v = WordVocab.from_text("the cat\nsat\n")
    assert v.decode(v.encode("the cat sat\n\ncat")) == "the cat sat\n\ncat"
    assert v.decode([1, 3, 4, 2]) == "the cat\n"
    with pytest.raises(ValueError, match=r"ids: token id 6 at position 1 is outside \[0, 6\)"):
        v.decode([3, 6])


def test_files_in_order_and_globs(tmp_path):
    _write(tmp_path / "1.txt", b"b a\n")
    _write(tmp_path / "2.txt", b"c a\n")
    assert WordVocab.from_files([tmp_path / "2.txt", tmp_path / "1.txt"]).words[3:] == ("c", "a", "b")
    v = WordVocab.from_files(str(tmp_path / "*.txt"))
    assert v.words[3:] == ("b", "a", "c")
    assert v.encode_files(str(tmp_path / "*.txt")).tolist() == [3, 4, 2, 5, 4, 2]
    assert WordVocab.from_files(_write(tmp_path / "e.txt", b"")).words == SPECIAL_WORDS


def test_a_file_without_a_final_newline_does_not_run_into_the_next(tmp_path):
    """Each file's lines are its own: an unterminated last line is closed when a file follows;
    only the last file's stays open (lmplz's end of input)."""
    files = [_write(tmp_path / "1.txt", b"b a"), _write(tmp_path / "2.txt", b"\n"), _write(tmp_path / "3.txt", b"c a")]
    v = WordVocab.from_files(files)
    assert v.encode_files(files).tolist() == [3, 4, 2, 2, 5, 4]
    assert v.encode_files(files[::-1]).tolist() == [5, 4, 2, 2, 3, 4]
    blank = _write(tmp_path / "4.txt", b"a \t ")  # an unterminated line of spaces has no words to close
    assert v.encode_files([files[0], blank, files[2]]).tolist() == [3, 4, 2, 4, 2, 5, 4]


def test_explicit_words_and_json_round_trip(tmp_path):
    v = WordVocab([*SPECIAL_WORDS, "x", b"y", "日本"])
    assert v.words[3:] == ("x", "y", "日本") and len(v) == 6 and v.size == 6
    assert WordVocab.from_json(v.to_json()) == v
    v.save(tmp_path / "w.json")
    assert WordVocab.load(tmp_path / "w.json") == v
    assert vocab_from_json(v.to_json()) == v
    assert vocab_from_json(Vocab.from_text("ab").to_json()) == Vocab.from_text("ab")
    assert WordVocab() == WordVocab.from_text("") and WordVocab() != WordVocab.from_text("a")


@pytest.mark.parametrize(
    "text, match",
    [
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ("{", "invalid JSON"),
        ('"words"', "expected a JSON object, got str"),
        ('{"kind": "chars", "chars": []}', "field 'kind' is 'chars', expected 'words'"),
        ('{"kind": "words", "words": []}', "missing field 'version'"),
        ('{"kind": "words", "version": 2, "words": []}', "field 'version' is 2; this fastgram reads version 1"),
        ('{"kind": "words", "version": 1}', "missing field 'words'"),
        ('{"kind": "words", "version": 1, "words": "abc"}', "field 'words' must be list, got str"),
        ('{"kind": "words", "version": 1, "words": ["<unk>", "<s>", "</s>", 4]}', "'words': entry 3 must be a string"),
        (
            '{"kind": "words", "version": 1, "words": ["<s>", "<unk>", "</s>"]}',
            "field 'words': must start with <unk>, <s>, </s>",
        ),
        ('{"kind": "words", "version": 1, "words": ["<unk>", "<s>", "</s>", "a", "a"]}', "entry 4 \\('a'\\) is a dup"),
        ('{"kind": "words", "version": 1, "words": ["<unk>", "<s>", "</s>", "<s>"]}', "entry 3 .* special word"),
        ('{"kind": "words", "version": 1, "words": ["<unk>", "<s>", "</s>", "a b"]}', "entry 3 .* contains a space"),
        ('{"kind": "words", "version": 1, "words": ["<unk>", "<s>", "</s>", ""]}', "entry 3 .* is empty"),
        ('{"kind": "words", "version": 1, "words": ["<unk>", "<s>", "</s>", "\\ud800"]}', "cannot be encoded"),
    ],
)
def test_corrupt_word_vocab_json_names_file_and_field(tmp_path, text, match):
    path = _write(tmp_path / "bad.json", text.encode())
    with pytest.raises(ValueError, match=f"^{path}: .*{match}"):
        WordVocab.load(path)


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: WordVocab.from_text(3), TypeError, "text must be str or bytes, got int"),
        (lambda: WordVocab().encode(["a"]), TypeError, "text must be str or bytes, got list"),
        (lambda: WordVocab().encode("a", oov="drop"), ValueError, "oov must be 'unk', 'error' or 'add', got 'drop'"),
        (lambda: WordVocab().encode("a", chunk_tokens=0), ValueError, "chunk_tokens must be >= 1, got 0"),
        (lambda: WordVocab().encode("a", chunk_tokens=1.5), TypeError, "chunk_tokens must be an integer"),
        (lambda: WordVocab("abc"), TypeError, "words must be an iterable of words, got str"),
        (lambda: WordVocab([*SPECIAL_WORDS, 5]), TypeError, "words: entry 3 must be str or bytes, got int"),
        (lambda: list(WordVocab().iter_file_ids("/no/such/file")), FileNotFoundError, "/no/such/file: no such file"),
        (lambda: WordVocab()["a b"], KeyError, "a b"),
        (lambda: WordVocab()["zz"], KeyError, "zz"),
    ],
)
def test_word_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


@pytest.mark.parametrize("as_bytes", [False, True])
@pytest.mark.parametrize(
    "bad, match",
    [
        ("b c", r"entry 4 \('b c'\) is empty or contains"),
        ("b\tc", r"entry 4 .* is empty or contains"),
        ("b\rc", r"entry 4 .* is empty or contains"),
        ("b\0c", r"entry 4 .* is empty or contains"),
        ("b\nc", r"entry 4 .* is empty or contains"),
        ("", r"entry 4 \(''\) is empty or contains"),
        ("<s>", r"entry 4 \('<s>'\) is a duplicate of a special word"),
        ("</s>", r"entry 4 \('</s>'\) is a duplicate of a special word"),
        ("<unk>", r"entry 4 \('<unk>'\) is a duplicate of a special word"),
        ("a", r"entry 4 \('a'\) is a duplicate$"),
    ],
)
@pytest.mark.parametrize("last", [False, True])
def test_bad_word_lists_name_the_entry(bad, match, as_bytes, last):
    # the bad word fourth, then (or not) more good words after it: the checks scan the joined
    # words, so the entry must still be found wherever it sits
    words = [*SPECIAL_WORDS, "a", bad] + ([] if last else ["z", "zz"])
    if as_bytes:
        words = [w.encode() for w in words]
    with pytest.raises(ValueError, match=match):
        WordVocab(words)


def test_good_word_lists_keep_their_ids():
    words = [*SPECIAL_WORDS, "a", "b", "日本", "x" * 100]
    v = WordVocab(words)
    assert v.words == tuple(words)
    np.testing.assert_array_equal(v.encode("b a x\n"), [4, 3, 0, 2])


@_kenlm.requires_lmplz
def test_ids_are_lmplz_unigram_order(tmp_path):
    # lmplz numbers words <unk>, <s>, </s>, then by first occurrence, and prints 1-grams in id order.
    data = b"the cat\tsat\r\non  the mat\n\nthe dog\x00sat\nlast line\n"
    path = _write(tmp_path / "c.txt", data)
    arpa = _kenlm.run_lmplz(path, 2, discount_fallback=True)
    unigrams = list(_kenlm.read_arpa(arpa)[1])
    assert [w for (w,) in unigrams] == list(WordVocab.from_files(path).words)


def test_kenlm_helper_skips_cleanly_when_absent(monkeypatch, tmp_path):
    monkeypatch.setenv("FASTGRAM_KENLM_BIN", str(tmp_path))  # a directory without the programs
    assert _kenlm.lmplz_path() is None and _kenlm.query_path() is None and _kenlm.build_binary_path() is None
    with pytest.raises(pytest.skip.Exception, match="KenLM's lmplz not found; build it from the kenlm sdist"):
        _kenlm.run_lmplz(_write(tmp_path / "t.txt", b"a b\n"), 2)
    with pytest.raises(pytest.skip.Exception, match="KenLM's query not found"):
        _kenlm.run_query(tmp_path / "m.arpa", tmp_path / "t.txt")
    monkeypatch.setenv("FASTGRAM_LMPLZ", str(tmp_path / "nope"))
    assert _kenlm.lmplz_path() is None


def test_kenlm_arpa_reader_and_differences(tmp_path):
    arpa = _write(
        tmp_path / "m.arpa",
        b"\\data\\\nngram 1=3\nngram 2=1\n\n\\1-grams:\n-1.0\t<unk>\t0\n0\t<s>\t-0.5\n-0.5\t</s>\n\n"
        b"\\2-grams:\n-0.25\t<s> </s>\n\n\\end\\\n",
    )
    grams = _kenlm.read_arpa(arpa)
    assert grams == {
        1: {("<unk>",): (-1.0, 0.0), ("<s>",): (0.0, -0.5), ("</s>",): (-0.5, 0.0)},
        2: {("<s>", "</s>"): (-0.25, 0.0)},
    }
    assert _kenlm.arpa_differences(arpa, grams) == []
    other = {1: dict(grams[1]), 2: {("<s>", "</s>"): (-0.2502, 0.0)}}
    assert _kenlm.arpa_differences(arpa, other) == ["2-gram '<s> </s>': (-0.25, 0.0) vs (-0.2502, 0.0)"]
    assert _kenlm.arpa_differences(arpa, other, tol=1e-3) == []
    bad = _write(tmp_path / "bad.arpa", b"\\data\\\nngram 1=2\n\n\\1-grams:\n-1.0\t<unk>\n\\end\\\n")
    with pytest.raises(ValueError, match="declares 2 1-grams, the section has 1"):
        _kenlm.read_arpa(bad)
