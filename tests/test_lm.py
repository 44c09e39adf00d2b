"""fastgram.lm against its reference (fastgram.reference.lm): estimation, ARPA, files, scoring."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import fastgram
from fastgram import reference as ref
from fastgram.kernels import lm as lm_kernels
from fastgram.lm import NGramLM
from fastgram.lm import arpa as arpa_module
from fastgram.lm import estimate as estimate_module
from fastgram.lm import score as score_module
from fastgram.lm.arpa import read_arpa
from fastgram.reference.lm import DEFAULT_FALLBACK
from fastgram.vocab import unpack_words

TOY0 = ["a a b a", "b a a b"]


def random_sentences(seed, n_sentences, vocab, max_len=12, zipf=1.4):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_sentences):
        words = rng.zipf(zipf, size=int(rng.integers(0, max_len))) % vocab
        out.append(" ".join(f"w{x}" for x in words))
    return out


def assert_same(lm: NGramLM, model: dict, tol=1e-12):
    ours = lm.to_dict()
    assert sorted(ours) == sorted(model["ngrams"])
    for n, grams in model["ngrams"].items():
        assert ours[n].keys() == grams.keys(), f"order {n}: {sorted(ours[n].keys() ^ grams.keys())[:5]}"
        for g, (p, b) in grams.items():
            assert ours[n][g][0] == pytest.approx(p, abs=tol), (n, g)
            assert ours[n][g][1] == pytest.approx(b, abs=tol), (n, g)
    np.testing.assert_allclose(lm.discounts, np.array(model["discounts"]), rtol=0, atol=1e-12)
    assert lm.words == model["vocab"]


# ---------------------------------------------------------------------------------------------
# estimation against the reference
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("order", [1, 2, 3, 4, 5, 6])
@pytest.mark.parametrize("prune", [None, [0, 1], [0, 1, 2]])
def test_estimate_matches_reference(order, prune):
    if prune is not None and len(prune) > order:
        prune = prune[:order]
    sentences = random_sentences(order * 7 + len(prune or ()), 150, 25)
    model = ref.lm_estimate([s.split() for s in sentences], order, prune=prune, discount_fallback=True)
    lm = NGramLM.estimate(sentences, order, prune=prune, discount_fallback=True)
    assert_same(lm, model)


@pytest.mark.parametrize("prune", [[1], [1, 1, 2], [2, 3]])
def test_unigram_pruning_leaves_the_pruned_words_out_of_the_vocabulary(tmp_path, prune):
    """lmplz prunes unigrams too: the model's vocabulary is then the kept words (as the
    reference's), a pruned word scores as <unk> and counts as an OOV, and files round-trip."""
    rare = [f"rare{i} w1" for i in range(40)]
    sentences = rare[:20] + random_sentences(5, 200, 30, zipf=1.2) + rare[20:]  # pruned ids among kept ones
    model = ref.lm_estimate([s.split() for s in sentences], 3, prune=prune, discount_fallback=True)
    lm = NGramLM.estimate(sentences, 3, prune=prune, discount_fallback=True)
    assert_same(lm, model)
    assert lm.vocab_size == lm.sizes[0] and "rare3" not in lm.words
    (tmp_path / "train.txt").write_text("\n".join(sentences) + "\n")  # the packed-words path
    assert (
        NGramLM.estimate_files(tmp_path / "train.txt", 3, prune=prune, discount_fallback=True).to_dict() == lm.to_dict()
    )
    assert lm.log10_prob("rare3", ["w1"]) == lm.log10_prob("<unk>", ["w1"])
    assert lm.perplexity(["rare3 w1"])["oovs"] == 1
    lm.save(tmp_path / "m.npz")
    lm.write_arpa(tmp_path / "m.arpa")
    for back in (NGramLM.load(tmp_path / "m.npz"), NGramLM.read_arpa(tmp_path / "m.arpa")):
        np.testing.assert_allclose(back.score(sentences).log10, lm.score(sentences).log10, atol=1e-6)
    assert lm.generate(50, 8, seed=1) == NGramLM.load(tmp_path / "m.npz").generate(50, 8, seed=1)
    ids = np.array([int(w[1:]) for s in sentences for w in s.replace("rare", "w1000").split()], np.int64)
    tokens = NGramLM.estimate(ids, 2, prune=prune[:2], discount_fallback=True)
    assert tokens.vocab_size == tokens.sizes[0] == len(tokens.token_ids) and (tokens.token_ids[3:] >= 0).all()
    assert tokens.log10_prob(10**9) == tokens.log10_prob(int(tokens.token_ids[3]) + 10**9)


def test_token_ids_past_int64_are_refused():
    """A model's token ids are int64: a uint64 id of 2**63 or more would wrap to a negative one."""
    ok = NGramLM.estimate(np.array([2**63 - 1, 5, 9, 5, 7], np.uint64), 2, separator=9, discount_fallback=True)
    assert sorted(ok.token_ids[3:].tolist()) == [5, 7, 2**63 - 1]
    with pytest.raises(ValueError, match=r"corpus: token id 18,446,744,073,709,551,615 at position 2"):
        NGramLM.estimate(np.array([5, 7, 2**64 - 1], np.uint64), 2, discount_fallback=True)


def test_estimate_closed_form_discounts_match_reference():
    sentences = random_sentences(3, 3000, 100000, max_len=20, zipf=1.3)
    for order in (1, 2, 3):
        model = ref.lm_estimate([s.split() for s in sentences], order)
        lm = NGramLM.estimate(sentences, order)
        assert_same(lm, model)
        assert (lm.discounts != np.array(DEFAULT_FALLBACK)).any()


def test_lmplz_toy_models():
    """lm/common/test_data/toy0.arpa of KenLM's sources (lmplz --discount_fallback -o 3)."""
    lm = NGramLM.estimate(TOY0, 3, discount_fallback=True)
    d = lm.to_dict()
    assert lm.sizes == [5, 7, 7]
    assert d[1][("<unk>",)] == pytest.approx((-0.90309, 0.0), abs=1e-6)
    assert d[1][("<s>",)] == pytest.approx((0.0, -0.30103), abs=1e-6)
    assert d[1][("a",)] == pytest.approx((-0.46943438, -0.30103), abs=1e-6)
    assert d[2][("b", "a")] == pytest.approx((-0.2984526, -0.30103), abs=1e-6)
    assert d[3][("<s>", "b", "a")][0] == pytest.approx(-0.124077894, abs=1e-6)
    assert d[3][("a", "a", "b")][0] == pytest.approx(-0.20102891, abs=1e-6)


def test_token_stream_with_separator_equals_sentences():
    rng = np.random.default_rng(1)
    sentences = [rng.integers(1, 30, size=int(rng.integers(0, 9))) for _ in range(80)]
    stream = np.concatenate([np.concatenate([s, [0]]) for s in sentences]).astype(np.uint16)
    a = NGramLM.estimate(stream, 3, separator=0, discount_fallback=True)
    b = NGramLM.estimate([" ".join(str(x) for x in s) for s in sentences], 3, discount_fallback=True)
    assert a.to_dict() == b.to_dict()
    assert a.token_ids is not None and a.token_ids[:3].tolist() == [-1, -1, -1]
    # the separator is a boundary, not a word; ids are named by their decimal number
    assert "0" not in a.words and set(a.words[3:]) == {str(int(x)) for s in sentences for x in s}
    # a trailing separator does not open a sentence; a missing one still closes the last
    c = NGramLM.estimate(stream[:-1], 3, separator=0, discount_fallback=True)
    assert c.to_dict() == a.to_dict()
    # list of id sequences
    d = NGramLM.estimate([list(s) for s in sentences], 3, discount_fallback=True)
    assert d.to_dict() == a.to_dict()


def test_empty_sentences_and_one_word():
    sentences = ["a", "", "a b", "", "b", "a a"]
    for order in (1, 2, 3, 4):
        model = ref.lm_estimate([s.split() for s in sentences], order, discount_fallback=True)
        assert_same(NGramLM.estimate(sentences, order, discount_fallback=True), model)
    stream = np.array([5, 0, 0, 5, 6, 0], np.uint8)  # "5", "", "5 6"
    lm = NGramLM.estimate(stream, 2, separator=0, discount_fallback=True)
    assert ("<s>", "</s>") in lm.to_dict()[2]


def test_tiny_vocabulary_and_large_ids():
    lm = NGramLM.estimate(np.array([7, 7, 7, 7], np.int64), 2, discount_fallback=True)
    assert lm.words == ["<unk>", "<s>", "</s>", "7"]
    big = np.array([2**32 - 1, 5, 2**32 - 1, 0, 5], np.uint32)
    lm = NGramLM.estimate(big, 2, separator=0, discount_fallback=True)
    assert lm.token_ids.tolist() == [-1, -1, -1, 2**32 - 1, 5]


def test_noncontiguous_byteswapped_and_memmap(tmp_path):
    rng = np.random.default_rng(2)
    base = rng.integers(0, 20, size=4000).astype(np.uint16)
    want = NGramLM.estimate(base, 3, separator=0, discount_fallback=True).to_dict()
    wide = np.zeros(8000, np.uint16)
    wide[::2] = base
    assert NGramLM.estimate(wide[::2], 3, separator=0, discount_fallback=True).to_dict() == want
    swapped = base.astype(base.dtype.newbyteorder(">"))
    assert NGramLM.estimate(swapped, 3, separator=0, discount_fallback=True).to_dict() == want
    path = tmp_path / "train.bin"
    base.tofile(path)
    mm = np.memmap(path, dtype=np.uint16, mode="r")
    assert NGramLM.estimate(mm, 3, separator=0, discount_fallback=True, chunk_tokens=333).to_dict() == want


def test_chunks_and_spill_do_not_change_the_model(tmp_path):
    rng = np.random.default_rng(3)
    tokens = rng.integers(0, 50, size=30000).astype(np.uint32)
    want = NGramLM.estimate(tokens, 4, separator=0, discount_fallback=True).to_dict()
    got = NGramLM.estimate(
        tokens, 4, separator=0, discount_fallback=True, chunk_tokens=1000, max_memory="64K", tmp_dir=tmp_path
    )
    assert got.to_dict() == want


class _RecordingCounter(estimate_module.NGramCounter):
    """The estimation's counter, recording its budget and whether it spilled."""

    seen: list = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.spills = 0
        _RecordingCounter.seen.append(self)

    def _spill(self):
        self.spills += 1
        super()._spill()


def test_counting_is_bounded_without_max_memory(monkeypatch, tmp_path):
    """No ``max_memory``: the counter still gets a budget (the default, or a quarter of the
    machine's memory), and runs beyond it spill without changing the model."""
    monkeypatch.setattr(estimate_module, "NGramCounter", _RecordingCounter)
    monkeypatch.setattr(_RecordingCounter, "seen", [])
    rng = np.random.default_rng(5)
    tokens = rng.integers(0, 50, size=30000).astype(np.uint32)
    want = NGramLM.estimate(tokens, 4, separator=0, discount_fallback=True, max_memory="1G").to_dict()
    physical = fastgram._checks.physical_memory()
    default = estimate_module.DEFAULT_MAX_MEMORY
    default = default if physical is None else min(default, physical // 4)
    assert [c.max_memory for c in _RecordingCounter.seen] == [1 << 30]
    _RecordingCounter.seen.clear()
    assert NGramLM.estimate(tokens, 4, separator=0, discount_fallback=True).to_dict() == want
    assert [c.max_memory for c in _RecordingCounter.seen] == [default] and default > 0
    assert _RecordingCounter.seen[0].spills == 0
    # a small default spills, and the model is the same
    monkeypatch.setattr(estimate_module, "DEFAULT_MAX_MEMORY", 64 << 10)
    _RecordingCounter.seen.clear()
    got = NGramLM.estimate(tokens, 4, separator=0, discount_fallback=True, chunk_tokens=1000, tmp_dir=tmp_path)
    assert got.to_dict() == want
    assert _RecordingCounter.seen[0].max_memory == 64 << 10 and _RecordingCounter.seen[0].spills > 0
    with pytest.raises(ValueError, match="max_memory must be a size"):
        NGramLM.estimate(tokens, 4, separator=0, discount_fallback=True, max_memory="lots")


# ---------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------


def test_bad_arguments():
    with pytest.raises(ValueError, match="order must be >= 1"):
        NGramLM.estimate(TOY0, 0)
    with pytest.raises(ValueError, match="order must be <= 8"):
        NGramLM.estimate(TOY0, 9)
    with pytest.raises(TypeError, match="order must be an integer"):
        NGramLM.estimate(TOY0, 2.0)
    with pytest.raises(ValueError, match="prune: 3 thresholds given .* the model has order 2"):
        NGramLM.estimate(TOY0, 2, prune=[0, 1, 1])
    with pytest.raises(ValueError, match="prune thresholds must be non-decreasing"):
        NGramLM.estimate(TOY0, 3, prune=[0, 2, 1])
    with pytest.raises(ValueError, match="prune must be >= 0"):
        NGramLM.estimate(TOY0, 3, prune=[0, -1])
    with pytest.raises(ValueError, match=r"discount_fallback: the discount for count 1 must be in \(0, 1\]"):
        NGramLM.estimate(TOY0, 3, discount_fallback=[1.5])
    with pytest.raises(ValueError, match=r"corpus: sentence 1 holds a newline"):
        NGramLM.estimate(["a b", "a\nb"], 2, discount_fallback=True)
    with pytest.raises(ValueError, match=r"corpus: the word '\\ud800' is not text UTF-8 can hold"):
        NGramLM.estimate(["a \ud800"], 2, discount_fallback=True)
    with pytest.raises(ValueError, match="chunk_tokens must be >= 1, got 0"):
        NGramLM.estimate(["a b"], 2, discount_fallback=True, chunk_tokens=0)
    with pytest.raises(TypeError, match=r"sentences: a list must hold sentences .*1-D array"):
        NGramLM.estimate(np.array([1, 2, 9, 2], np.uint16), 2, separator=9, discount_fallback=True).score([1, 2])
    with pytest.raises(ValueError, match=r"discount for count 2 must be in \(0, 2\], got 0.0"):
        NGramLM.estimate(TOY0, 3, discount_fallback=[0.5, 0.0])  # would leave log10 -inf backoffs
    with pytest.raises(ValueError, match="no sentences"):
        NGramLM.estimate(np.zeros(0, np.uint8), 2)
    with pytest.raises(ValueError, match="<s> is not allowed as a word"):
        NGramLM.estimate(["a <s> b"], 2)
    with pytest.raises(ValueError, match="corpus: token id -1 at position 1"):
        NGramLM.estimate(np.array([1, -1, 2]), 2)


_NO_FINAL_NEWLINE = "\\data\\\nngram 1=3\nngram 2=2\n\n\\1-grams:\n-1\t<unk>\n-0.5\t<s>\t-0.3\n-0.5\t</s>\n\n\\2-grams:\n-0.2\t<s> </s>\n-0.2\t</s> <s>"


def test_a_last_section_without_a_final_newline_is_read_in_bounds(tmp_path):
    # The section scan ended such a section one byte past the buffer, and the parallel parsers
    # read that byte. Bounds-checked (serial kernels, a fresh cache), in a subprocess.
    cut = tmp_path / "cut.arpa"
    cut.write_text(_NO_FINAL_NEWLINE, encoding="utf-8")
    whole = tmp_path / "whole.arpa"
    whole.write_text(_NO_FINAL_NEWLINE + "\n\n\\end\\", encoding="utf-8")  # no newline after \end\
    script = (
        "import sys\nfrom fastgram.lm import NGramLM\n"
        "try:\n    NGramLM.read_arpa(sys.argv[1])\nexcept ValueError as e:\n    print('ValueError', e)\n"
        "m = NGramLM.read_arpa(sys.argv[2])\nprint([len(r) for r in m.rows], m.prob[1].tolist())\n"
    )
    env = dict(os.environ, NUMBA_BOUNDSCHECK="1", FASTGRAM_SERIAL="1", NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    run = subprocess.run(
        [sys.executable, "-c", script, str(cut), str(whole)], capture_output=True, text=True, env=env, timeout=300
    )
    assert run.returncode == 0, run.stderr[-2000:]
    lines = run.stdout.splitlines()
    assert lines[0] == f"ValueError {cut}: line 12: expected \\end\\ (file truncated)"
    assert lines[1] == "[3, 2] [-0.2, -0.2]"


def test_sentences_of_ids_up_to_int64_max_estimate_as_any_ids():
    # the boundary between a list's sentences is an id none of them uses: past the largest,
    # or (when that is the int64 maximum) the smallest free one
    big = NGramLM.estimate([[], [0, 2**63 - 1, 1, 0], [2**63 - 1]], 2, discount_fallback=True)
    small = NGramLM.estimate([[], [0, 5, 1, 0], [5]], 2, discount_fallback=True)
    assert big.token_ids.tolist() == [-1, -1, -1, 0, 2**63 - 1, 1]
    for n in range(2):
        np.testing.assert_array_equal(big.rows[n], small.rows[n])
        np.testing.assert_array_equal(big.prob[n], small.prob[n])
    np.testing.assert_array_equal(big.score([[0, 2**63 - 1]]).log10, small.score([[0, 5]]).log10)


def test_separators_and_single_words_out_of_range_are_named():
    tokens = np.array([3, 4, 5, 9, 3, 5, 4, 9, 4, 3], np.uint16)
    with pytest.raises(ValueError, match="separator must be <= 65,535"):
        NGramLM.estimate(tokens, 2, separator=2**16, discount_fallback=True)
    with pytest.raises(ValueError, match="separator must be <= 9,223,372,036,854,775,807"):
        NGramLM.estimate(tokens.astype(np.int64), 2, separator=2**63, discount_fallback=True)
    lm = NGramLM.estimate(tokens, 2, separator=9, discount_fallback=True)
    with pytest.raises(ValueError, match="separator must be <= 65,535"):
        lm.score(tokens, separator=2**16)
    for bad, exc, match in [
        (float("inf"), TypeError, "word must be an integer"),
        (-1, ValueError, "word must be >= 0"),
    ]:
        with pytest.raises(exc, match=match):
            lm.log10_prob(bad)
    with pytest.raises(TypeError, match=r"context\[1\] must be an integer"):
        lm.log10_prob(4, [3, 1.5])
    # an id past int64 is no token of any corpus: the model's <unk>, as an unseen id is
    assert lm.log10_prob(2**70, [3]) == lm.log10_prob(12345, [3])
    words = NGramLM.estimate(["a b", "b a"], 2, discount_fallback=True)
    with pytest.raises(TypeError, match=r"word must be a str for a word model, got int 5"):
        words.log10_prob(5)
    with pytest.raises(TypeError, match=r"context\[0\] must be a str for a word model"):
        words.log10_prob("a", [None])
    with pytest.raises(TypeError, match=r"context must be a sequence of words"):
        words.log10_prob("a", "b a")  # not its characters
    for bad, name in [("a b", "word"), ("", "word"), ("a\tb", "word")]:
        with pytest.raises(ValueError, match=rf"{name} must be one word"):
            words.log10_prob(bad)
    with pytest.raises(ValueError, match=r"context\[1\] must be one word"):
        words.log10_prob("a", ["b", "b a"])


def test_too_small_corpus_names_the_flag():
    with pytest.raises(ValueError, match="discount_fallback=True .*--discount_fallback"):
        NGramLM.estimate(TOY0, 3)
    with pytest.raises(ValueError, match="no 1-grams with adjusted count 1 were observed"):
        NGramLM.estimate(["a a a a", "a a a a"], 1)


def test_three_word_keys():
    tokens = np.arange(70000, dtype=np.uint32)  # 70,003 model ids: 70,004**8 > 2**128, three key words
    lm = NGramLM.estimate(tokens, 8, discount_fallback=True)
    # one sentence of distinct words: each 8-word window of "<s> w1 ... w70000 </s>" (70,002
    # tokens) is a distinct 8-gram; every word, <unk>, <s> and </s> a unigram
    assert lm.sizes[7] == 70002 - 8 + 1 and lm.sizes[0] == 70003


@pytest.mark.parametrize("order", [5, 8])
def test_two_word_keys_match_reference(order):
    """(V + 1)**order > 2**64: counted with two-word keys, same model as the reference."""
    sentences = random_sentences(12, 2500, 10**6, max_len=15, zipf=1.05)
    vocab = {w for s in sentences for w in s.split()}
    assert (len(vocab) + 4) ** order > 2**64
    model = ref.lm_estimate([s.split() for s in sentences], order, prune=[0, 1], discount_fallback=True)
    assert_same(NGramLM.estimate(sentences, order, prune=[0, 1], discount_fallback=True), model)


# ---------------------------------------------------------------------------------------------
# ARPA and binary files
# ---------------------------------------------------------------------------------------------


@pytest.fixture(params=["serial scan", "parallel blocks", "stream windows"])
def section_scan(request, monkeypatch):
    """The ways of finding where a section ends: one serial scan, the parallel newline count
    (every section, in blocks of 64 bytes), and streaming the file through 128-byte windows."""
    if request.param != "serial scan":
        monkeypatch.setattr(arpa_module, "PARALLEL_LINES", 1)
        monkeypatch.setattr(arpa_module, "PARSE_CHUNK", 64 if request.param == "parallel blocks" else 16)
    if request.param == "stream windows":
        monkeypatch.setattr(arpa_module, "STREAM_BLOCK", 128)
    return request.param


def test_arpa_round_trip(tmp_path, section_scan):
    lm = NGramLM.estimate(random_sentences(4, 200, 30), 4, prune=[0, 0, 1], discount_fallback=True)
    path = tmp_path / "m.arpa"
    lm.write_arpa(path)
    back = NGramLM.read_arpa(path)
    test = random_sentences(5, 40, 35)  # some words unknown to the model
    np.testing.assert_allclose(back.score(test).log10, lm.score(test).log10, rtol=0, atol=1e-5)
    assert back._words is None  # scored through its packed words: no Python strings yet
    assert back.sizes == lm.sizes and back.words == lm.words
    for a, b in zip(lm.prob + lm.backoff, back.prob + back.backoff):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)  # float32 text
    text = path.read_text()
    assert text.startswith("\\data\\\nngram 1=") and text.endswith("\\end\\\n")
    assert not list(tmp_path.glob(".*tmp"))


def _arpa_value(x: float) -> str:
    """The writer's number format as a specification: round(|x| 10^7) half to even, 7 decimals,
    trailing zeros and a bare point dropped."""
    v = int(np.rint(abs(x) * 10**7))
    if v == 0:
        return "0"
    text = f"{v // 10**7}.{v % 10**7:07d}".rstrip("0").rstrip(".")
    return ("-" if x < 0 else "") + text


def test_arpa_text_is_the_specified_format(tmp_path):
    # words of every length around the writer's 8- and 15-byte packing (multi-byte UTF-8 too),
    # values at the rounding and trimming edges, and 1000 random rows of each order
    rng = np.random.default_rng(7)
    words = ["<unk>", "<s>", "</s>", "a", "é" * 4, "x" * 7, "y" * 8, "z" * 15, "q" * 16, "r" * 17,
             "ω" * 12, "s" * 24, "t" * 31, "u" * 40, "v" * 200]  # fmt: skip
    edges = [0.0, -0.0, -1e-8, -5e-8, -5.1e-8, -0.5, -1.0, -10.0, -99.0, -123456.7, -1.25e-5, -0.1234567,
             -0.12345675, 2.5, -3.0000001, -9.9999999, -99999999999.0]  # fmt: skip
    rows, prob, backoff = [], [], []
    for n in (1, 2, 3):
        m = 1000
        R = rng.integers(0, len(words), size=(m, n)).astype(np.uint32)
        p = np.round(-rng.exponential(2.0, m), int(rng.integers(0, 9)))
        p[: len(edges)] = edges
        b = np.where(rng.random(m) < 0.3, 0.0, rng.normal(0, 0.5, m))
        b[: len(edges)] = edges[::-1]
        rows.append(R)
        prob.append(p)
        backoff.append(b)
    path = tmp_path / "spec.arpa"
    arpa_module.write_arpa(path, 3, words, rows, prob, backoff)
    expect = ["\\data\\"] + [f"ngram {n}=1000" for n in (1, 2, 3)] + [""]
    for n in (1, 2, 3):
        expect.append(f"\\{n}-grams:")
        for R, p, b in zip(rows[n - 1], prob[n - 1], backoff[n - 1]):
            line = _arpa_value(p) + "\t" + " ".join(words[w] for w in R[::-1])
            expect.append(line + ("\t" + _arpa_value(b) if n < 3 else ""))
        expect.append("")
    expect.append("\\end\\")
    assert path.read_text(encoding="utf-8").split("\n") == expect + [""]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -2e11])
def test_arpa_writer_refuses_values_it_cannot_format(tmp_path, bad):
    prob = [np.array([-1.0, bad, -0.5])]
    with pytest.raises(ValueError, match=r"prob of 1-gram 1 is .*finite and below 1e\+11"):
        arpa_module.write_arpa(tmp_path / "bad.arpa", 1, ["<unk>", "<s>", "</s>"], [np.arange(3).reshape(3, 1)],
                               prob, [np.zeros(3)])  # fmt: skip
    assert not list(tmp_path.iterdir())  # nothing written


def test_token_model_arpa_is_decimal(tmp_path):
    stream = np.array([10, 11, 0, 11, 10, 0, 12], np.uint16)
    lm = NGramLM.estimate(stream, 2, separator=0, discount_fallback=True)
    lm.write_arpa(tmp_path / "t.arpa")
    back = NGramLM.read_arpa(tmp_path / "t.arpa")
    assert back.token_ids.tolist() == lm.token_ids.tolist() == [-1, -1, -1, 10, 11, 12]
    assert "\t10 11\t" not in (tmp_path / "t.arpa").read_text()  # highest order: no backoff column
    assert "10 11" in (tmp_path / "t.arpa").read_text()
    # digit words that are not canonical int64 ids keep a word model: no overflow, no merged ids
    for words in (["12345678901234567890123 5", "5 5"], ["007 7 7", "7 007"], ["0 00"]):
        NGramLM.estimate(words, 2, discount_fallback=True).write_arpa(tmp_path / "w.arpa")
        back = NGramLM.read_arpa(tmp_path / "w.arpa")
        assert back.token_ids is None and set(" ".join(words).split()) <= set(back.words)


@pytest.mark.parametrize(
    "order, kind, options",
    [
        (1, "text", {}),
        (3, "text", {}),
        (5, "text", {"prune": [0, 1, 1]}),
        (3, "text", {"prune": [1, 1, 2]}),  # unigram pruning: the whole model renumbers its words
        (4, "text", {"max_memory": "64K", "chunk_tokens": 97}),  # spilled runs, many chunks
        (3, "tokens", {}),
        (4, "tokens", {"prune": [0, 0, 1]}),
    ],
)
def test_estimate_to_arpa_writes_the_file_the_whole_model_writes(tmp_path, order, kind, options):
    if kind == "text":
        src = tmp_path / "train.txt"
        src.write_text("\n".join(random_sentences(order, 300, 40)) + "\n\n", encoding="utf-8")
        files = dict(paths=src)
    else:
        rng = np.random.default_rng(order)
        stream = (rng.zipf(1.3, 3000) % 60).astype(np.uint16)  # 0: the separator
        src = tmp_path / "train.bin"
        stream.tofile(src)
        files = dict(paths=src, dtype="uint16", separator=0)
    whole, streamed = tmp_path / "whole.arpa", tmp_path / "streamed.arpa"
    model = NGramLM.estimate_files(order=order, discount_fallback=True, **files, **options)
    model.write_arpa(whole)
    sizes = fastgram.estimate_to_arpa(files.pop("paths"), order, streamed, discount_fallback=True, **files, **options)
    assert sizes == model.sizes and sizes[0] == model.vocab_size
    assert streamed.read_bytes() == whole.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([src.name, "whole.arpa", "streamed.arpa"])


def test_estimate_to_arpa_leaves_nothing_on_error(tmp_path, monkeypatch):
    src = tmp_path / "train.txt"
    src.write_text("a b c\nb c d\na b\n", encoding="utf-8")
    out = tmp_path / "m.arpa"
    out.write_text("an older model\n")
    with pytest.raises(ValueError, match="discount_fallback=True"):  # found after counting, before writing
        fastgram.estimate_to_arpa(src, 3, out)
    real = arpa_module.ArpaWriter.write

    def fail_at_order_3(self, n, *args):
        if n == 3:
            raise KeyboardInterrupt
        real(self, n, *args)

    monkeypatch.setattr(arpa_module.ArpaWriter, "write", fail_at_order_3)
    with pytest.raises(KeyboardInterrupt):  # orders 1 and 2 were written when it stopped
        fastgram.estimate_to_arpa(src, 3, out, discount_fallback=True)
    assert out.read_text() == "an older model\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.arpa", "train.txt"]


def test_estimate_to_arpa_arguments(tmp_path):
    src = tmp_path / "train.txt"
    src.write_text("a b c\n", encoding="utf-8")
    with pytest.raises(TypeError, match="no keep_u"):
        fastgram.estimate_to_arpa(src, 2, tmp_path / "m.arpa", keep_u=True)
    with pytest.raises(TypeError, match="output must be a str or os.PathLike, got int"):
        fastgram.estimate_to_arpa(src, 2, 5)
    with pytest.raises(ValueError, match="is also an input"):
        fastgram.estimate_to_arpa(src, 2, src)
    with pytest.raises(ValueError, match="order must be <= 8"):
        fastgram.estimate_to_arpa(src, 9, tmp_path / "m.arpa")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.txt"]


def test_arpa_writer_takes_the_orders_in_turn_and_whole(tmp_path):
    words = ["<unk>", "<s>", "</s>", "a"]
    uni = (np.arange(4, dtype=np.uint32).reshape(4, 1), np.full(4, -1.0), np.zeros(4))
    bi = (np.array([[3, 1]], np.uint32), np.array([-0.5]), np.zeros(1))
    path = tmp_path / "m.arpa"
    for sizes, steps, match in [
        ([4, 1], [(2, bi)], "1-grams: 0 rows where the header says 4"),
        ([4, 1], [(1, uni), (2, bi), (1, uni)], "order 1 written out of turn"),
        ([4, 1], [(1, uni), (1, uni)], "1-grams: more rows than the header's 4"),
        ([4, 2], [(1, uni), (2, bi)], "2-grams: 1 rows where the header says 2"),
        ([4, 1], [(1, uni)], "2-grams: 0 rows where the header says 1"),
        ([4, 1], [(3, bi)], "order 3 written out of turn"),
    ]:
        with pytest.raises(ValueError, match=match):
            with arpa_module.ArpaWriter(path, 2, words, sizes) as writer:
                for n, arrays in steps:
                    writer.write(n, *arrays)
        assert not list(tmp_path.iterdir())
    with arpa_module.ArpaWriter(path, 2, words, [4, 1]) as writer:  # an order in several pieces
        writer.write(1, *(a[:1] for a in uni))
        writer.write(1, *(a[1:] for a in uni))
        writer.write(2, *bi)
    whole = tmp_path / "whole.arpa"
    arpa_module.write_arpa(whole, 2, words, [uni[0], bi[0]], [uni[1], bi[1]], [uni[2], bi[2]])
    assert path.read_bytes() == whole.read_bytes()
    assert NGramLM.read_arpa(path).sizes == [4, 1]


GOOD = "\\data\\\nngram 1=3\nngram 2=1\n\n\\1-grams:\n-1\t<s>\t-0.5\n-0.5\t</s>\t0\n-0.3\ta\t0\n\n\\2-grams:\n-0.2\t<s> a\n\n\\end\\\n"


@pytest.mark.parametrize(
    "text, match",
    [
        ("", "line 0: empty file"),
        ("hello\n", r"line 1: expected \\data\\"),
        (GOOD.replace("ngram 2=1", "ngram 2=x"), "line 3: expected 'ngram N=count'"),
        # counts no file of this size holds: the truncation, with nothing allocated for them
        (GOOD.replace("ngram 2=1", "ngram 2=4000000000"), "line 12: truncated: 2-gram 2 of 4000000000"),
        (GOOD.replace("ngram 1=3", "ngram 1=4000000000"), "line 9: truncated: 1-gram 4 of 4000000000"),
        (GOOD.replace("ngram 2=1", "ngram 2=99999999999999999999"), "line 3: .* more 2-grams than a model holds"),
        (GOOD.replace("-0.3\ta\t0", "-0.3x\ta\t0"), "line 8: bad number"),
        (GOOD.replace("-0.2\t<s> a", "-0.2\t<s> b"), "line 11: word 'b' is not among the unigrams"),
        (GOOD.replace("-0.2\t<s> a", "-0.2\t<s>"), "line 11: expected 2 words"),
        (GOOD[: GOOD.index("-0.3")], "truncated: 1-gram 3 of 3 expected"),
        (GOOD.replace("\\end\\\n", ""), r"expected \\end\\ \(file truncated\)"),
        (GOOD.replace("\\2-grams:", "\\3-grams:"), r"line 10: expected \\2-grams:"),
        (GOOD.replace("-0.5\t</s>\t0", "-0.5\ta\t0"), "line 8: unigram 'a' appears twice"),
        (
            GOOD.replace("ngram 2=1", "ngram 2=2").replace("<s> a\n", "<s> a\n-0.1\t<s> a\n"),
            "the 2-gram '<s> a' appears twice",
        ),
        (GOOD.replace("ngram 2=1", "ngram 2=2"), "line 12: truncated: 2-gram 2 of 2 expected"),
        (GOOD.replace("ngram 2=1", "ngram 2=2").replace("<s> a\n", "<s> a\n\n-0.1\ta </s>\n"), "line 12: truncated"),
    ],
)
def test_malformed_arpa(tmp_path, text, match, section_scan):
    path = tmp_path / "bad.arpa"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        NGramLM.read_arpa(path)


BIGRAMS = ["-0.2\t<s> a", "-0.3\ta </s>", "-0.4\t<s> </s>", "-0.5\ta a", "-0.6\t</s> a"]


def _bigram_file(lines):
    head = "\\data\\\nngram 1=4\nngram 2=%d\n\n\\1-grams:\n-2\t<unk>\t0\n-1\t<s>\t-0.5\n-0.5\t</s>\t0\n-0.3\ta\t0\n\n\\2-grams:\n"
    return head % len(lines) + "\n".join(lines) + "\n\n\\end\\\n"


@pytest.mark.parametrize(
    "edits, match",
    [
        ({1: "-0.3\tb </s>", 2: "-0.4x\t<s> </s>"}, "line 13: word 'b' is not among"),  # unknown word first
        ({1: "-0.3x\ta </s>", 2: "-0.4\t<s> b"}, "line 13: bad number"),  # bad number first
        ({1: "-0.3\tb </s>", 4: "-0.6x\t</s> a"}, "line 13: word 'b' is not among"),  # lines apart
        ({2: "-0.4\t<s> b\t-0.1x"}, "line 14: word 'b' is not among"),  # the word comes before the backoff
        ({2: "-0.4x\t<s> b"}, "line 14: bad number"),  # the probability comes before the word
        ({4: "-0.6\t</s> b"}, "line 16: word 'b' is not among"),  # in the last line
        ({0: "-0.2\t<s> a a"}, "line 12: bad number"),  # a third field is a backoff
        ({3: "-0.5\ta"}, "line 15: expected 2 words"),
    ],
)
def test_malformed_arpa_reports_the_first_error_of_a_section(tmp_path, edits, match, section_scan):
    """With two errors in a section, the one named is the first in the file, whichever kind it
    is and wherever the chunks of the parallel parse fall."""
    lines = [edits.get(i, line) for i, line in enumerate(BIGRAMS)]
    path = tmp_path / "bad.arpa"
    path.write_text(_bigram_file(lines))
    with pytest.raises(ValueError, match=match):
        NGramLM.read_arpa(path)
    path.write_text(_bigram_file(BIGRAMS))  # and the file without the edits reads
    assert NGramLM.read_arpa(path).sizes == [4, 5]


def test_arpa_without_unk_gets_one(tmp_path):
    path = tmp_path / "good.arpa"
    path.write_text(GOOD)
    lm = NGramLM.read_arpa(path)
    assert lm.words[:3] == ["<unk>", "<s>", "</s>"] and lm.prob[0][0] == -100.0
    assert lm.log10_prob("a", ["<s>"]) == pytest.approx(-0.2)
    assert lm.log10_prob("</s>", ["a"]) == pytest.approx(-0.5)


def test_save_load_round_trip(tmp_path):
    lm = NGramLM.estimate(random_sentences(5, 100, 20), 3, discount_fallback=True)
    lm.save(tmp_path / "m.npz")
    back = NGramLM.load(tmp_path / "m.npz")
    assert back.to_dict() == lm.to_dict()
    np.testing.assert_array_equal(back.discounts, lm.discounts)
    assert [u.tolist() for u in back.u()] == [u.tolist() for u in lm.u()]
    with np.load(tmp_path / "m.npz") as data:  # NumPy alone reads it
        assert str(data["format"]) == "fastgram.NGramLM" and data["rows_3"].shape[1] == 3


def _damage(path, out, **changes):
    with np.load(path) as data:
        fields = {k: data[k] for k in data.files}
    for k, v in changes.items():
        if v is None:
            del fields[k]
        else:
            fields[k] = v
    np.savez(out, **fields)


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"prob_2": None}, "missing field 'prob_2'"),
        ({"format": np.array("other")}, "field 'format'"),
        ({"order": np.array(9)}, "field 'order' must be an integer in 1..8"),
        ({"version": np.array("zzz")}, "bad.npz: field 'version' must be 1 or 2, got zzz"),
        ({"version": np.array(1.0)}, "bad.npz: field 'version' must be 1 or 2"),
        ({"version": np.array(3)}, "bad.npz: field 'version' must be 1 or 2"),
        ({"rows_2": np.zeros((2, 3), np.uint32)}, r"field 'rows_2' must be uint32 of shape \(m, 2\)"),
        ({"words_offsets": None}, "missing field 'words_offsets'"),
        ({"words_offsets": np.array([0, 5, 8], np.int64)}, "field 'words_data': offsets must be non-decreasing"),
        ({"words_data": np.zeros(3, np.int64)}, "'words_data' and 'words_offsets' must be 1-D uint8 and int64"),
        ({"backoff_1": np.full(5, np.nan)}, "field 'backoff_1' must be finite float64"),
        ({"prob_1": np.full(5, 0.5)}, "field 'prob_1' holds a log10 probability above 0"),
        ({"u_2": np.full(7, -0.5)}, "field 'u_2' must be finite, non-negative"),
        ({"u_1": np.full(5, np.inf)}, "field 'u_1' must be finite, non-negative"),
        # version 1 stored the words as a str array; its words are checked as packed ones are
        ({"version": np.array(1), "words": np.array(["<unk>", "<s>", "</s>", "a", "a"])}, "field 'words': .*duplicate"),
        ({"version": np.array(1), "words": np.array(["<unk>", "<s>", "</s>", "a", "b c"])}, "field 'words'"),
        ({"version": np.array(1), "words": np.array(["a", "b", "c", "d", "e"])}, "field 'words': .*must start with"),
    ],
)
def test_load_checks_fields(tmp_path, changes, match):
    lm = NGramLM.estimate(TOY0, 2, discount_fallback=True)
    lm.save(tmp_path / "m.npz")
    _damage(tmp_path / "m.npz", tmp_path / "bad.npz", **changes)
    with pytest.raises(ValueError, match=match):
        NGramLM.load(tmp_path / "bad.npz")


def test_load_reads_version_1_and_checks_token_ids(tmp_path):
    lm = NGramLM.estimate(TOY0, 2, discount_fallback=True)
    lm.save(tmp_path / "m.npz")
    v1 = {"version": np.array(1), "words": np.array(lm.words), "words_data": None, "words_offsets": None}
    _damage(tmp_path / "m.npz", tmp_path / "v1.npz", **v1)
    back = NGramLM.load(tmp_path / "v1.npz")
    assert back.words == lm.words and back.to_dict() == lm.to_dict()
    tokens = NGramLM.estimate(np.array([5, 6, 9, 7, 5, 9], np.uint16), 2, separator=9, discount_fallback=True)
    tokens.save(tmp_path / "t.npz")
    for bad in ([-1, -1, -1, 5, 5, 6], [-1, -1, -1, -5, 6, 7], [0, -1, -1, 5, 6, 7]):
        _damage(tmp_path / "t.npz", tmp_path / "bad.npz", token_ids=np.array(bad, np.int64))
        with pytest.raises(ValueError, match="field 'token_ids' must be -1 for the 3 special words"):
            NGramLM.load(tmp_path / "bad.npz")
    _damage(tmp_path / "t.npz", tmp_path / "bad.npz", token_ids=np.array([-1, -1, -1, 5, 6, 8], np.int64))
    with pytest.raises(ValueError, match="field 'token_ids' does not match the words"):
        NGramLM.load(tmp_path / "bad.npz")  # a word model with ids would turn into a token model
    _damage(tmp_path / "t.npz", tmp_path / "bad.npz", discounts=np.full((2, 3), np.nan))
    with pytest.raises(ValueError, match="field 'discounts' must be finite"):
        NGramLM.load(tmp_path / "bad.npz")


def test_a_long_word_keeps_the_saved_model_small(tmp_path):
    """Words are saved as packed bytes: one 100 KB word does not widen every other to 100 KB."""
    sentences = random_sentences(3, 300, 40) + ["x" * 100_000 + " w1"]
    lm = NGramLM.estimate(sentences, 2, discount_fallback=True)
    lm.save(tmp_path / "m.npz")
    assert os.path.getsize(tmp_path / "m.npz") < 200_000
    assert NGramLM.load(tmp_path / "m.npz").words == lm.words


def test_load_rejects_unsorted_rows(tmp_path):
    lm = NGramLM.estimate(TOY0, 2, discount_fallback=True)
    lm.save(tmp_path / "m.npz")
    _damage(tmp_path / "m.npz", tmp_path / "bad.npz", rows_2=lm.rows[1][::-1].copy())
    with pytest.raises(ValueError, match="rows_2' is not strictly increasing"):
        NGramLM.load(tmp_path / "bad.npz")
    _damage(tmp_path / "m.npz", tmp_path / "bad2.npz", rows_2=lm.rows[1] + np.uint32(100))
    with pytest.raises(ValueError, match="word id .* outside the 5 words"):
        NGramLM.load(tmp_path / "bad2.npz")


# ---------------------------------------------------------------------------------------------
# scoring
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("order", [1, 2, 3, 5])
def test_score_matches_reference(order):
    train = random_sentences(6, 300, 40)
    test = random_sentences(7, 60, 60) + ["", "w1", "zzz unknown w2"]
    lm = NGramLM.estimate(train, order, prune=[0, 1] if order > 1 else None, discount_fallback=True)
    model = {"order": order, "ngrams": lm.to_dict()}
    want = ref.lm_score(model, [s.split() for s in test])
    scores = lm.score(test)
    assert len(scores) == len(test)
    for i, w in enumerate(want):
        np.testing.assert_allclose(scores.sentence(i), w, rtol=0, atol=1e-12)
    np.testing.assert_allclose(scores.totals, [sum(w) for w in want], atol=1e-10)
    inc, exc, oovs, tokens = ref.lm_perplexity(model, [s.split() for s in test])
    summary = lm.perplexity(test)
    assert summary["oovs"] == oovs and summary["tokens"] == tokens
    assert summary["perplexity"] == pytest.approx(inc, rel=1e-12)
    assert summary["perplexity_excluding_oovs"] == pytest.approx(exc, rel=1e-12)


def test_score_token_stream_and_oov():
    rng = np.random.default_rng(8)
    stream = rng.integers(0, 15, size=3000).astype(np.uint16)
    lm = NGramLM.estimate(stream, 3, separator=0, discount_fallback=True)
    test = np.array([3, 4, 99, 0, 5, 0, 0, 7], np.uint16)  # 99 unseen; an empty sentence
    s = lm.score(test, separator=0)
    assert len(s) == 4 and s.starts.tolist() == [0, 4, 6, 7, 9]
    assert s.oov.tolist() == [False, False, True, False, False, False, False, False, False]
    p_unk = lm.prob[0][0]
    assert s.log10[2] <= p_unk + 1e-12  # <unk> with its context's backoffs
    assert s.summary()["oovs"] == 1 and s.summary()["tokens"] == 9
    pieces = lm.score([[3, 4, 99], [5], [], [7]])
    np.testing.assert_array_equal(pieces.log10, s.log10)
    assert f"Perplexity including OOVs:\t{s.summary()['perplexity']!r}\n" in s.summary_text()  # query's digits
    assert lm.score([]).summary_text().startswith("Perplexity including OOVs:\tNaN\nPerplexity excluding OOVs:\tNaN\n")
    order2 = lm.score(np.array([3, 4], np.uint16))
    assert lm.log10_prob(4, [3]) <= 0 and order2.log10.shape == (3,)


def test_score_wrong_kind():
    lm = NGramLM.estimate(TOY0, 2, discount_fallback=True)
    with pytest.raises(TypeError, match="word model"):
        lm.score(np.array([1, 2, 3]))
    with pytest.raises(TypeError, match="not one str"):
        lm.score("a b")


def test_scores_are_probabilities():
    """Every context's next-word distribution sums to 1 (over all words but <s>)."""
    lm = NGramLM.estimate(random_sentences(9, 200, 12), 3, prune=[0, 1, 1], discount_fallback=True)
    words = [w for w in lm.words if w != "<s>"]
    for context in ([], ["<s>"], ["<s>", "w1"], ["w1", "w2"], ["w3", "<unk>"]):
        total = sum(10 ** lm.log10_prob(w, context) for w in words)
        assert total == pytest.approx(1.0, abs=1e-9), context


def test_perplexity_of_nothing_is_nan():
    lm = NGramLM.estimate(TOY0, 2, discount_fallback=True)
    assert math.isnan(lm.perplexity([])["perplexity"])


def test_repr_and_views():
    lm = NGramLM.estimate(TOY0, 2, discount_fallback=True)
    assert "NGramLM(order=2" in repr(lm)
    assert lm.ngrams(2).shape == (lm.sizes[1], 2)
    assert os.path.basename(__file__) == "test_lm.py"
    order, words, grams, prob, back = read_arpa_model(lm)
    assert order == 2 and unpack_words(*words) == lm.words and lm.words[:3] == ["<unk>", "<s>", "</s>"]


def read_arpa_model(lm, tmp="/tmp"):
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "m.arpa")
        lm.write_arpa(path)
        return read_arpa(path)


# ---------------------------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_token_files_from_a_pipe_and_odd_sizes(tmp_path):
    """A FIFO (e.g. /dev/stdin) is read as a stream, not taken for an empty file; a size that
    is not whole tokens is an error naming the file."""
    rng = np.random.default_rng(15)
    a, b = (rng.integers(0, 30, size=400).astype(np.uint16) for _ in range(2))
    a.tofile(tmp_path / "a.bin")
    want = NGramLM.estimate(np.concatenate([a, [29], b]), 3, separator=29, discount_fallback=True)

    def through_fifo(run):
        fifo = tmp_path / "fifo"
        if fifo.exists():
            fifo.unlink()
        os.mkfifo(fifo)
        writer = threading.Thread(target=lambda: fifo.write_bytes(b.tobytes()))
        writer.start()
        try:
            return run([tmp_path / "a.bin", fifo])
        finally:
            writer.join()

    got = through_fifo(
        lambda paths: NGramLM.estimate_files(paths, 3, dtype="uint16", separator=29, discount_fallback=True)
    )
    assert got.to_dict() == want.to_dict()
    scores = through_fifo(lambda paths: want.score_files(paths, dtype="uint16", separator=29))
    np.testing.assert_array_equal(scores.log10, want.score(np.concatenate([a, [29], b]), separator=29).log10)
    with pytest.raises(ValueError, match="separator must be >= 0"):
        want.score_files([tmp_path / "a.bin", tmp_path / "a.bin"], dtype="uint16", separator=-1)
    # a token model reads text only of decimal ids: a raw token file taken for text is refused
    with pytest.raises(ValueError, match=r"a.bin: byte 0x.. at offset .*pass dtype="):
        want.score_files(tmp_path / "a.bin")
    (tmp_path / "words.txt").write_text("foo 5 +7\n")  # text that is not ids: OOVs, as query scores them
    assert want.score_files(tmp_path / "words.txt").summary()["oovs"] == 2
    (tmp_path / "ids.txt").write_text(" ".join(map(str, a[:50].tolist())) + "\n")
    np.testing.assert_allclose(
        want.score_files(tmp_path / "ids.txt").log10, want.score([a[:50].tolist()]).log10, atol=1e-12
    )
    (tmp_path / "odd.bin").write_bytes(b"\0\1\2")
    for call in (
        lambda: NGramLM.estimate_files(tmp_path / "odd.bin", 2, dtype="uint16", discount_fallback=True),
        lambda: want.score_files(tmp_path / "odd.bin", dtype="uint16"),
    ):
        with pytest.raises(ValueError, match=r"odd.bin: file size 3 bytes is not a multiple of uint16's 2 bytes"):
            call()


def _assert_words_match(lm, scores, words):
    """Each sentence's words are its scored tokens (before </s>), known words by their ids."""
    assert len(words) == len(scores)
    table = lm.word_ids() if lm.token_ids is None else {str(t): i for i, t in enumerate(lm.token_ids) if t >= 0}
    for s, ws in enumerate(words):
        ids = scores.ids[scores.starts[s] : scores.starts[s + 1]].tolist()
        assert ids[-1] == 2 and ids[:-1] == [table.get(w, 0) for w in ws]


def test_sentence_words_read_files_as_scoring_does(tmp_path):
    lm = NGramLM.estimate(random_sentences(21, 300, 25), 3, discount_fallback=True)
    texts = ["w1 w2\n\nw3 zz\t w1", "w2\n", "", "  \nw4 w5\n  ", "w6"]  # unterminated lines, blanks
    paths = []
    for i, t in enumerate(texts):
        paths.append(tmp_path / f"{i}.txt")
        paths[-1].write_bytes(t.encode())
    scores = lm.score_files(paths)
    words = list(score_module.sentence_words(paths))
    assert words == [["w1", "w2"], [], ["w3", "zz", "w1"], ["w2"], [], ["w4", "w5"], ["w6"]]
    _assert_words_match(lm, scores, words)
    tokens = NGramLM.estimate(np.array([5, 6, 9, 7, 5, 9, 6], np.uint16), 2, separator=9, discount_fallback=True)
    parts = [np.array(p, np.uint16) for p in ([5, 6, 9, 7], [], [9, 5, 600], [6, 9])]
    for i, p in enumerate(parts):
        p.tofile(tmp_path / f"{i}.bin")
    bins = [tmp_path / f"{i}.bin" for i in range(len(parts))]
    for separator in (9, None):
        scores = tokens.score_files(bins, dtype="uint16", separator=separator)
        words = list(score_module.sentence_words(bins, dtype="uint16", separator=separator))
        _assert_words_match(tokens, scores, words)
    assert words == [["5", "6", "9", "7", "9", "5", "600", "6", "9"]]  # without a separator: one sentence
    (tmp_path / "s.txt").write_text("w1 <s> w2\n<unk>\nw3 </s>")
    scores = lm.score_files(tmp_path / "s.txt", skip_symbols=True)
    words = list(score_module.sentence_words(tmp_path / "s.txt", skip_symbols=True))
    assert words == [["w1", "w2"], [], ["w3"]]
    _assert_words_match(lm, scores, words)
    with pytest.raises(ValueError, match="skip_symbols applies to text"):
        tokens.score_files(bins, dtype="uint16", skip_symbols=True)
    with pytest.raises(TypeError, match="skip_symbols must be a bool"):
        lm.score_files(tmp_path / "s.txt", skip_symbols="yes")


def test_query_lines(tmp_path):
    lm = NGramLM.estimate(random_sentences(22, 300, 25), 3, discount_fallback=True)
    sentences = ["w1 w2 w3", "", "zz w1"]
    scores = lm.score(sentences)
    lines = list(scores.query_lines("sentence"))
    assert [np.float32(line.split()[1]) for line in lines] == np.float32(scores.totals).tolist()
    assert [line.split()[3] for line in lines] == ["0", "0", "1"] and scores.sentence_oovs.tolist() == [0, 0, 1]
    words = [s.split() for s in sentences]
    cells = [line.split("\t") for line in scores.query_lines("word", words)]
    assert [c[-1] for c in cells] == lines
    first = [c.split(" ") for c in cells[2][:-1]]
    assert [c[0] for c in first] == ["zz=0", "w1=" + str(lm.word_ids()["w1"]), "</s>=2"]
    assert [int(c[1]) for c in first] == scores.ngram_length[scores.starts[2] :].tolist()
    np.testing.assert_allclose([float(c[2]) for c in first], scores.sentence(2), rtol=1e-6)
    # KenLM's layout (query's own output): positional from 1e-6 to 1e21, no ".0", no "e+"
    for x, text in [
        (-100.0, "-100"),
        (-0.25, "-0.25"),
        (-2.3039123e-05, "-0.000023039123"),
        (-1524919.1, "-1524919.1"),
    ]:
        assert score_module._kenlm_float(x) == text
    for x, text in [
        (10.0, "10"),
        (1.8196906291073256e80, "1.8196906291073256e80"),
        (31.02520436705392, "31.02520436705392"),
    ]:
        assert score_module._double_text(x) == text
    assert score_module._kenlm_float(-1e-7) == "-1e-7" and score_module._double_text(float("nan")) == "NaN"
    with pytest.raises(ValueError, match="level"):
        next(scores.query_lines("words"))
    with pytest.raises(ValueError, match="words"):
        next(scores.query_lines("word"))
    with pytest.raises(ValueError, match="more sentences than the 3 scored"):
        list(scores.query_lines("word", words + [[]]))
    with pytest.raises(TypeError, match="words"):
        list(scores.query_lines("word", 5))
    with pytest.raises(ValueError, match="sentence 1 has 0 words"):
        list(scores.query_lines("word", [["w1", "w2", "w3"], ["extra"], ["zz", "w1"]]))


def test_estimate_files_text_and_tokens(tmp_path):
    sentences = random_sentences(13, 200, 30)
    path = tmp_path / "train.txt"
    path.write_text("\n".join(sentences) + "\n")
    lm = NGramLM.estimate_files(path, 3, discount_fallback=True)
    assert lm.to_dict() == NGramLM.estimate(sentences, 3, discount_fallback=True).to_dict()
    scores = lm.score_files(path)
    np.testing.assert_allclose(scores.log10, lm.score(sentences).log10, atol=1e-12)
    # several text files: each file's lines are sentences, a missing final newline included
    parts = [sentences[:70], sentences[70:71], sentences[71:]]
    paths = [tmp_path / f"part{i}.txt" for i in range(3)]
    for p, part in zip(paths, parts):
        p.write_text("\n".join(part))  # no final newline
    lm = NGramLM.estimate_files(paths, 3, discount_fallback=True)
    whole = tmp_path / "whole.txt"
    whole.write_text("\n".join(sentences))  # the same sentences, only the last unterminated
    assert lm.to_dict() == NGramLM.estimate_files(whole, 3, discount_fallback=True).to_dict()
    np.testing.assert_allclose(lm.score_files(paths).log10, lm.score(sentences).log10, atol=1e-12)
    # raw token files: one is memory-mapped, several are joined at the separator
    rng = np.random.default_rng(14)
    a, b = (rng.integers(0, 20, size=500).astype(np.uint16) for _ in range(2))
    a.tofile(tmp_path / "a.bin")
    b.tofile(tmp_path / "b.bin")
    one = NGramLM.estimate_files(tmp_path / "a.bin", 3, dtype="uint16", separator=0, discount_fallback=True)
    assert one.to_dict() == NGramLM.estimate(a, 3, separator=0, discount_fallback=True).to_dict()
    two = NGramLM.estimate_files(
        [tmp_path / "a.bin", tmp_path / "b.bin"], 3, dtype="uint16", separator=0, discount_fallback=True
    )
    joined = np.concatenate([a, [0], b]).astype(np.uint16)
    assert two.to_dict() == NGramLM.estimate(joined, 3, separator=0, discount_fallback=True).to_dict()
    # shards that end their last sentence (as GPT-2 shards end with 50256) get no second
    # separator between them: no empty sentence at each edge
    closed = [np.concatenate([x[x != 0], [0]]).astype(np.uint16) for x in (a, b)]
    for i, x in enumerate(closed):
        x.tofile(tmp_path / f"closed{i}.bin")
    shards = [tmp_path / "closed0.bin", tmp_path / "closed1.bin"]
    whole = np.concatenate(closed)
    got = NGramLM.estimate_files(shards, 3, dtype="uint16", separator=0, discount_fallback=True)
    assert got.to_dict() == NGramLM.estimate(whole, 3, separator=0, discount_fallback=True).to_dict()
    assert len(got.score_files(shards, dtype="uint16", separator=0)) == 2 == len(got.score(whole, separator=0))
    np.testing.assert_allclose(
        two.score_files(tmp_path / "b.bin", dtype="uint16", separator=0).log10, two.score(b, separator=0).log10
    )
    with pytest.raises(ValueError, match="several raw token files need separator"):
        NGramLM.estimate_files([tmp_path / "a.bin", tmp_path / "b.bin"], 3, dtype="uint16")
    with pytest.raises(ValueError, match="separator is for raw token files"):
        NGramLM.estimate_files(path, 3, separator=0)


def test_estimate_files_keeps_words_as_bytes_and_u_on_request(tmp_path):
    sentences = random_sentences(17, 200, 30) + ["caf\u00e9 na\u00efve \u00e9"]
    path = tmp_path / "train.txt"
    path.write_text("\n".join(sentences) + "\n", encoding="utf-8")
    full = NGramLM.estimate(sentences, 4, prune=[0, 0, 1], discount_fallback=True)
    lean = NGramLM.estimate_files(path, 4, prune=[0, 0, 1], discount_fallback=True, keep_u=False)
    assert lean._words is None and lean.vocab_size == full.vocab_size  # no str built yet
    lean.write_arpa(tmp_path / "lean.arpa")
    full.write_arpa(tmp_path / "full.arpa")
    assert (tmp_path / "lean.arpa").read_bytes() == (tmp_path / "full.arpa").read_bytes()
    assert lean._words is None and lean.words == full.words and lean.to_dict() == full.to_dict()
    assert lean._u is None  # derived from the probabilities and backoffs when asked
    for derived, kept in zip(lean.u()[1:], full.u()[1:]):  # (generation draws unigrams from p)
        np.testing.assert_allclose(derived, kept, rtol=1e-9, atol=1e-15)
    assert lean.generate(5, 10, seed=1) == full.generate(5, 10, seed=1)
    with pytest.raises(TypeError, match="keep_u must be True or False"):
        NGramLM.estimate(sentences, 2, keep_u="no")


def test_an_order_too_large_for_int32_rows_is_refused(monkeypatch):
    monkeypatch.setattr(estimate_module, "MAX_ROWS", 10)
    with pytest.raises(ValueError, match=r"2-grams: \d+ distinct, more than one order can hold \(10\)"):
        NGramLM.estimate(random_sentences(3, 50, 8), 2, discount_fallback=True)


def test_word_vocab_stream(tmp_path):
    from fastgram.vocab import WordVocab

    text = "\n".join(random_sentences(15, 150, 25)) + "\n"
    vocab = WordVocab.from_text(text)
    lm = NGramLM.estimate(vocab.encode(text), 3, vocab=vocab, discount_fallback=True)
    assert lm.to_dict() == NGramLM.estimate(text.split("\n")[:-1], 3, discount_fallback=True).to_dict()
    assert lm.word_vocab().words == tuple(lm.words)
    with pytest.raises(ValueError, match="<unk> .id 0. at position 1"):
        NGramLM.estimate(np.array([3, 0, 2], np.uint32), 2, vocab=vocab)


@pytest.mark.parametrize("order", [2, 3, 5])
def test_the_scoring_index_finds_every_ngram(order):
    """Each n-gram of the model, scored with itself as the context, gets its own probability:
    the search reaches every row of every order through the index (keys chained by slot)."""
    lm = NGramLM.estimate(random_sentences(31, 400, 30), order, discount_fallback=True)
    index = lm.score_index()
    for n in range(1, order + 1):
        rows = lm.rows[n - 1]
        queries = np.zeros((len(rows), order), np.uint32)
        queries[:, :n] = rows  # reversed rows: the word, then its context
        out = np.empty(len(rows))
        lm_kernels.score_queries(0, len(rows), *index, order, queries, np.full(len(rows), n - 1, np.int64), out)
        np.testing.assert_array_equal(out, lm.prob[n - 1])


def test_an_ngram_whose_suffix_is_missing_is_never_matched(tmp_path):
    """A search extends a context one word at a time (as KenLM's), so an n-gram whose shorter
    part is not in the model is never reached: scores equal the model without it."""
    lines = ["\\data\\", "ngram 1=7", "ngram 2=3", "ngram 3=1", "ngram 4=1", "", "\\1-grams:",
             "-1.0\t<unk>\t0", "-99\t<s>\t-0.3", "-0.7\t</s>\t0", "-0.5\ta\t-0.2", "-0.6\tb\t-0.1",
             "-0.8\tx\t-0.15", "-0.9\ty\t-0.12", "", "\\2-grams:", "-0.3\t<s> x\t-0.1", "-0.4\tx a\t-0.05",
             "-0.2\tb </s>", "", "\\3-grams:", "-0.01\tx a b\t-0.02", "", "\\4-grams:", "-0.02\ty x a b", "",
             "\\end\\", ""]  # fmt: skip
    path = tmp_path / "m.arpa"
    path.write_text("\n".join(lines), encoding="utf-8")
    lm = NGramLM.read_arpa(path)
    model = {"order": 4, "ngrams": lm.to_dict()}
    del model["ngrams"][3][("x", "a", "b")]  # "a b" is not a bigram: no search reaches it,
    del model["ngrams"][4][("y", "x", "a", "b")]  # nor the 4-gram that extends it
    test = [["x", "a", "b"], ["a", "b"], ["x", "a"], ["y", "x", "a", "b"]]
    want = ref.lm_score(model, test)
    scores = lm.score([" ".join(t) for t in test])
    for i, w in enumerate(want):
        np.testing.assert_allclose(scores.sentence(i), w, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("sentences", "one_pass"),
    [
        (["w1 w2  w3", "", "w4\tw5\r w1", "zzz unknown w2", "  ", "w1\0w2"], True),
        (["w1 w2", "with\nnewline w1", "w3"], False),  # a newline inside a sentence
        (["w1 <s> w2", "w3 <unk>"], False),  # a special word spelled out
        (["w1 </s> w2", "w3"], False),
        (["w1", "w2\n"], False),  # a newline closing a sentence: one </s> too many
        (["w1 \ud800 w2", "w3"], False),  # a lone surrogate (not UTF-8)
        ([], True),
    ],
)
def test_scoring_a_list_of_str_in_one_pass_equals_scoring_word_by_word(sentences, one_pass, monkeypatch):
    lm = NGramLM.estimate(random_sentences(21, 300, 12), 3, discount_fallback=True)
    assert (score_module._text_ids(lm, sentences) is not None) == one_pass
    fast = lm.score(sentences)
    monkeypatch.setattr(score_module, "_text_ids", lambda lm, sentences: None)
    slow = lm.score(sentences)
    assert len(fast) == len(slow) == len(sentences)
    np.testing.assert_array_equal(fast.starts, slow.starts)
    np.testing.assert_array_equal(fast.oov, slow.oov)
    np.testing.assert_array_equal(fast.log10, slow.log10)


@pytest.mark.parametrize("block", [128, 512, 4096, 1 << 26])
def test_streaming_arpa_reader_equals_the_whole_file_parse(tmp_path, monkeypatch, block):
    monkeypatch.setattr(arpa_module, "STREAM_BLOCK", block)  # windows of a few lines
    monkeypatch.setattr(arpa_module, "PARSE_CHUNK", 16)
    lm = NGramLM.estimate(random_sentences(4, 300, 40), 5, prune=[0, 0, 1], discount_fallback=True)
    path = tmp_path / "m.arpa"
    lm.write_arpa(path)
    streamed = arpa_module._Stream(str(path)).read()  # no fallback: it raises if it cannot
    whole = arpa_module._parse(str(path), np.fromfile(path, np.uint8))
    assert streamed[0] == whole[0]
    for a, b in zip(streamed[1], whole[1]):  # the packed words
        np.testing.assert_array_equal(a, b)
    for ours, theirs in zip(streamed[2:], whole[2:]):
        for a, b in zip(ours, theirs):
            np.testing.assert_array_equal(a, b)
    assert [len(g) for g in streamed[2]] == lm.sizes


def _newline_blocks_by_numpy(buf, lo, hi, chunk):
    """The contract of :func:`fastgram.lm.arpa._newline_blocks`, one block at a time."""
    out = []
    for s0 in range(lo, hi, chunk):
        at = np.flatnonzero(buf[s0 : min(s0 + chunk, hi)] == 10) + s0
        after = np.append(buf, 10)[at + 1]  # the end of the file counts as a break
        breaks = np.flatnonzero((at + 1 >= len(buf)) | (after == 10) | (after == 92))
        first = (int(at[breaks[0]]), int(breaks[0]) + 1) if len(breaks) else (-1, 0)
        out.append((len(at), int(at[0]) if len(at) else -1, *first))
    return out


def test_newline_blocks_count_eight_bytes_at_a_time_exactly(monkeypatch):
    rng = np.random.default_rng(7)
    alphabet = np.array([10, 10, 92, 32, 97, 98, 0, 255], np.uint8)  # newlines, headers, other bytes
    for _ in range(400):
        chunk = int(rng.integers(1, 40))
        monkeypatch.setattr(arpa_module, "PARSE_CHUNK", chunk)
        n = int(rng.integers(0, 150))
        offset = int(rng.integers(0, 8))  # any alignment of the buffer
        buf = rng.choice(alphabet, n + 8)[offset : offset + n]
        lo = int(rng.integers(0, n + 1))
        hi = int(rng.integers(lo, n + 1))
        got = arpa_module._newline_blocks(buf, lo, hi)
        assert list(zip(*(x.tolist() for x in got[1:]))) == _newline_blocks_by_numpy(buf, lo, hi, chunk)
