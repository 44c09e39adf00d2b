"""The fastgram command end to end, on small files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

from fastgram import BigramCounter, NGramCounts, Vocab, __version__, count_ngrams, reference
from fastgram.app import cli
from fastgram.app.cli import main
from fastgram.lm import NGramLM


def test_count_token_files_and_a_shard_folder(tmp_path, rng, capsys):
    shards = tmp_path / "shards"
    shards.mkdir()
    parts = [rng.integers(0, 500, n).astype(np.uint16) for n in (1000, 10, 777)]
    for i, p in enumerate(parts):
        p.tofile(shards / f"{i:03d}.bin")
    out = tmp_path / "counts.npz"
    assert main(["count", str(shards), "--dtype", "uint16", "-o", str(out)]) == 0
    counts = NGramCounts.load(out)
    np.testing.assert_array_equal(counts.to_dense(), reference.count_bigrams(np.concatenate(parts)))
    assert counts.tokens == 1787 and counts.vocab is None
    assert "counted 1,787 tokens from 3 file(s), V = 500" in capsys.readouterr().out


def test_count_gpt2_sized_vocabulary_by_default(tmp_path, rng):
    tokens = rng.integers(0, 50_257, 30_000).astype(np.uint16)
    tokens[-1] = 50_256
    tokens.tofile(tmp_path / "train.bin")
    out = tmp_path / "c.npz"
    assert main(["count", str(tmp_path / "train.bin"), "--dtype", "uint16", "-o", str(out)]) == 0
    got = NGramCounts.load(out)
    want_ngrams, want_counts = reference.count_ngrams(tokens, 2, 50_257)
    np.testing.assert_array_equal(got.ngrams, want_ngrams)
    np.testing.assert_array_equal(got.counts, want_counts)


@pytest.mark.parametrize("vocab", ["bytes", "chars", "json"])
def test_count_text(tmp_path, vocab):
    text = "hello wörld, hello there\n" * 20
    (tmp_path / "a.txt").write_text(text, encoding="utf-8")
    arg = vocab
    if vocab == "json":
        Vocab.from_text(text).save(tmp_path / "v.json")
        arg = str(tmp_path / "v.json")
    out = tmp_path / "c.npz"
    assert (
        main(["count", str(tmp_path / "a.txt"), "--text", "--vocab", arg, "-o", str(out), "--chunk-tokens", "3"]) == 0
    )
    counts = NGramCounts.load(out)
    v = counts.vocab
    assert v == (Vocab.bytes() if vocab == "bytes" else Vocab.from_text(text))
    np.testing.assert_array_equal(counts.to_dense(), reference.count_bigrams(v.encode(text), len(v)))


def test_count_progress(tmp_path, capsys):
    np.arange(50, dtype=np.uint8).tofile(tmp_path / "a.bin")
    assert (
        main(["count", str(tmp_path / "a.bin"), "--dtype", "uint8", "-o", str(tmp_path / "c.npz"), "--progress"]) == 0
    )
    assert "a.bin" in capsys.readouterr().err


def test_count_errors_leave_no_output(tmp_path, capsys):
    (tmp_path / "odd.bin").write_bytes(b"\x00" * 3)
    out = tmp_path / "c.npz"
    assert main(["count", str(tmp_path / "odd.bin"), "--dtype", "uint16", "-o", str(out)]) == 2
    assert "not a multiple of uint16's 2 bytes" in capsys.readouterr().err
    assert main(["count", str(tmp_path / "missing.bin"), "--dtype", "uint16", "-o", str(out)]) == 2
    assert "no such file or directory" in capsys.readouterr().err
    (tmp_path / "bad.txt").write_bytes(b"ok\xffno")
    assert main(["count", str(tmp_path / "bad.txt"), "--text", "-o", str(out)]) == 2
    assert "invalid UTF-8 at byte 2" in capsys.readouterr().err
    assert main(["count", str(tmp_path / "odd.bin"), "--dtype", "uint8", "--vocab", "chars", "-o", str(out)]) == 2
    assert "--vocab applies to --text files only" in capsys.readouterr().err
    if hasattr(os, "mkfifo"):  # refused before it is opened: nothing blocks on the FIFO
        fifo = tmp_path / "t.fifo"
        os.mkfifo(fifo)
        assert main(["count", str(fifo), "--dtype", "uint16", "-o", str(out)]) == 2
        assert "t.fifo: a FIFO or stream can be read only once; give --vocab-size" in capsys.readouterr().err
        fifo.unlink()
    (tmp_path / "ok.bin").write_bytes(b"\x00\x01")
    for bad, message in [
        (["--vocab-size", "-5"], "--vocab-size must be >= 1, got -5"),
        (["--vocab-size", "0"], "--vocab-size must be >= 1, got 0"),
        (["--top", "-1"], "--top must be >= 0, got -1"),
        (["--chunk-tokens", "0"], "--chunk-tokens must be >= 1, got 0"),
    ]:
        assert main(["count", str(tmp_path / "ok.bin"), "--dtype", "uint8", *bad, "-o", str(out)]) == 2
        assert message in capsys.readouterr().err
    ok = str(tmp_path / "ok.bin")
    for argv, message in [  # the flags' names, before any work
        (["--tmp-dir", str(tmp_path / "nowhere"), "-o", str(out)], "--tmp-dir " + str(tmp_path / "nowhere")),
        (["--out-dir", ok], f"--out-dir {ok} is not an empty directory"),
        (["--out-dir", str(tmp_path)], "is not an empty directory"),
        (["--out-dir", str(tmp_path / "no" / "store")], "its parent directory does not exist"),
    ]:
        assert main(["count", ok, "--dtype", "uint8", *argv]) == 2
        assert message in capsys.readouterr().err
    argv = ["lm", ok, "--dtype", "uint8", "--order", "2", "-o", str(tmp_path / "m.arpa"), "--tmp-dir", "nowhere"]
    assert main(argv) == 2 and "--tmp-dir nowhere is not a directory" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["bad.txt", "odd.bin", "ok.bin"]


def test_count_an_empty_token_file(tmp_path, capsys):
    (tmp_path / "e.bin").write_bytes(b"")
    out = tmp_path / "c.npz"
    assert main(["count", str(tmp_path / "e.bin"), "--dtype", "uint16", "-o", str(out)]) == 0
    counts = NGramCounts.load(out)
    assert (counts.tokens, len(counts), counts.vocab_size) == (0, 0, 1)
    assert "counted 0 tokens" in capsys.readouterr().out


def test_model_commands_turn_off_numpys_huge_page_advice(monkeypatch, tmp_path, capsys):
    setter = np._core.multiarray._set_madvise_hugepage  # returns the setting it replaces
    before = setter(True)
    try:
        monkeypatch.setenv("NUMPY_MADVISE_HUGEPAGE", "1")  # the user's choice is kept
        cli._small_pages()
        assert setter(True) is True
        monkeypatch.delenv("NUMPY_MADVISE_HUGEPAGE")
        ids = tmp_path / "ids.u16"
        np.array([1, 2, 1, 2], np.uint16).tofile(ids)
        assert main(["count", str(ids), "--dtype", "uint16", "-o", str(tmp_path / "c.npz")]) == 0
        assert setter(True) is True  # counting keeps huge pages
        model, text = tmp_path / "m.arpa", tmp_path / "held.txt"
        NGramLM.estimate(["a b a", "b a b", "a a b"], 2, discount_fallback=True).write_arpa(model)
        text.write_text("a b\n")
        assert main(["score", str(model), str(text)]) == 0
        assert setter(True) is False
    finally:
        setter(before)
    assert "Tokens:\t3" in capsys.readouterr().out


def test_version(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["--version"])
    assert exit.value.code == 0
    assert capsys.readouterr().out.strip() == f"fastgram {__version__}"


def test_check_command(capsys):
    assert main(["check", "counting"]) == 0
    out = capsys.readouterr().out
    assert "count_bigrams" in out and "count_ngrams" in out and "FAIL" not in out
    assert main(["check", "nonsense"]) == 2


def test_demo_runs_small(capsys):
    assert main(["demo", "--tokens", "20000"]) == 0
    out = capsys.readouterr().out
    assert "V = 24" in out and "speed-up" in out and "identical counts: True" in out and "all checks passed" in out
    bigram = float(out.split("add-one bigram (the notebook's model): held-out perplexity")[1].split()[0])
    kneser_ney = float(out.split("-gram (")[1].split("held-out perplexity")[1].split()[0])
    assert 1 < kneser_ney < bigram < 98  # the better model; both better than uniform over the characters


def test_bench_table_from_json(tmp_path, capsys):
    data = {
        "machine_info": {"cpu": {"brand_raw": "Test CPU"}, "python_version": "3.11"},
        "benchmarks": [
            {"group": "g", "name": "a", "extra_info": {"role": "kernel"}, "stats": {"median": 0.01}},
            {"group": "g", "name": "b", "extra_info": {"role": "reference"}, "stats": {"median": 0.2}},
            {"group": "g", "name": "c", "extra_info": {"role": "torch"}, "stats": {"median": 0.05}},
        ],
    }
    (tmp_path / "b.json").write_text(json.dumps(data))
    assert main(["bench", "--from-json", str(tmp_path / "b.json"), "--markdown", "--png", str(tmp_path / "c.png")]) == 0
    out = capsys.readouterr().out
    assert "Test CPU" in out
    assert "| g | 10 ms | 200 ms (20.0x) | 50 ms (5.0x) |" in out
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


# -- generate ---------------------------------------------------------------------------------


def _count_text(tmp_path, text, *extra):
    (tmp_path / "t.txt").write_text(text, encoding="utf-8")
    out = tmp_path / "c.npz"
    assert main(["count", str(tmp_path / "t.txt"), "--text", "--vocab", "chars", "-o", str(out), *extra]) == 0
    return out


def test_generate_from_counts(tmp_path, capsys):
    text = "abcabdabcabd" * 20
    out = _count_text(tmp_path, text)
    capsys.readouterr()
    assert main(["generate", str(out), "-n", "3", "--length", "40", "--seed", "5"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and all(len(line) == 40 for line in lines)
    pairs = {text[i : i + 2] for i in range(len(text) - 1)}
    for line in lines:  # every drawn pair occurs in the text: the chain follows the counts
        assert all(line[i : i + 2] in pairs for i in range(len(line) - 1))
    assert main(["generate", str(out), "-n", "3", "--length", "40", "--seed", "5"]) == 0
    assert capsys.readouterr().out.splitlines() == lines  # same seed, same text
    assert main(["generate", str(out), "-n", "2", "--length", "0"]) == 0
    assert capsys.readouterr().out == ""
    assert main(["generate", str(out), "-n", "1", "--length", "10", "--start", "ab"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("ab") and len(line) == 12


def test_generated_chains_are_one_line_each_and_unseen_starts_are_named(tmp_path, capsys):
    out = _count_text(tmp_path, "a\r\nb\u2028c\x0bd\x0ce\x1c\n" * 30)
    capsys.readouterr()
    assert main(["generate", str(out), "-n", "4", "--length", "60", "--seed", "1"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 4  # no line separator of any reader inside a chain
    (tmp_path / "x.txt").write_text("zab", encoding="utf-8")
    assert main(["count", str(tmp_path / "x.txt"), "--text", "--vocab", "bytes", "-o", str(tmp_path / "x.npz")]) == 0
    capsys.readouterr()
    assert main(["generate", str(tmp_path / "x.npz"), "-n", "1", "--length", "5", "--start", "aq"]) == 2
    assert "--start: its last token (byte 0x71) never occurs in the counts" in capsys.readouterr().err
    assert (
        main(["generate", str(tmp_path / "x.npz"), "-n", "1", "--length", "5", "--start", "aq", "--smoothing", "1"])
        == 0
    )
    chars = _count_text(tmp_path, "abcab\n")
    capsys.readouterr()
    assert main(["generate", str(chars), "-n", "1", "--length", "3", "--start", "xy"]) == 2
    assert "--start: text: character 'x'" in capsys.readouterr().err
    argv = ["lm", str(tmp_path / "t.txt"), "--order", "2", "-o", str(tmp_path / "m.arpa"), "--discount-fallback"]
    assert main([*argv, "0.3", "0.6", "0.9", "0.1"]) == 2
    assert "--discount-fallback takes 1 to 3 discounts" in capsys.readouterr().err


def test_generate_from_sparse_gpt2_sized_counts(tmp_path, capsys, rng):
    tokens = rng.integers(0, 50_257, 5_000).astype(np.uint16)
    tokens.tofile(tmp_path / "train.bin")
    out = tmp_path / "c.npz"
    assert main(["count", str(tmp_path / "train.bin"), "--dtype", "uint16", "-o", str(out)]) == 0
    capsys.readouterr()
    assert main(["generate", str(out), "-n", "2", "--length", "30", "--seed", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    seen = set(zip(tokens[:-1].tolist(), tokens[1:].tolist()))
    for line in lines:
        ids = [int(t) for t in line.split()]
        assert len(ids) == 30
        # every step is a counted bigram, except a continuation after the one never-followed token
        steps = list(zip(ids[:-1], ids[1:]))
        assert sum(step not in seen for step in steps) <= sum(a == int(tokens[-1]) for a, _ in steps)


def test_generate_errors(tmp_path, capsys):
    out = _count_text(tmp_path, "abcabc", "--order", "3")
    assert main(["generate", str(out)]) == 2
    assert (
        "holds 3-gram counts; generate draws from bigram counts (fastgram count --order 2)" in capsys.readouterr().err
    )
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04 not really a zip")
    assert main(["generate", str(tmp_path / "broken.npz")]) == 2
    err = capsys.readouterr().err
    assert "broken.npz: not a readable .npz file" in err and "Traceback" not in err
    out = _count_text(tmp_path, "abcabc")
    for bad, message in [(["-n", "0"], "-n must be >= 1, got 0"), (["--length", "-1"], "--length must be >= 0")]:
        assert main(["generate", str(out), *bad]) == 2
        assert message in capsys.readouterr().err


def test_generate_reads_bigram_counter_files(tmp_path, capsys):
    counter = BigramCounter(3, vocab=Vocab.from_text("abc"))
    counter.update(np.array([0, 1, 2, 0, 1, 2], np.uint8))
    counter.save(tmp_path / "b.npz")
    assert main(["generate", str(tmp_path / "b.npz"), "-n", "1", "--length", "9", "--start", "a"]) == 0
    assert capsys.readouterr().out.strip() == "abcabcabca"


def test_cli_count_order(tmp_path, capsys):
    rng = np.random.default_rng(9)
    tokens = rng.integers(0, 70_000, 20_000).astype(np.uint32)
    tokens[:2] = [5, 6]
    for i, part in enumerate(np.array_split(tokens, 3)):
        part.tofile(tmp_path / f"shard-{i}.bin")
    out = tmp_path / "tri.npz"
    shards = [str(tmp_path / f"shard-{i}.bin") for i in range(3)]
    assert (
        main(
            ["count", *shards, "--dtype", "uint32", "--order", "3", "--max-memory", "64K", "--top", "2", "-o", str(out)]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "distinct 3-grams" in printed and str(out) in printed
    saved = NGramCounts.load(out)
    want = count_ngrams(tokens, 3)
    np.testing.assert_array_equal(saved.keys, want.keys)
    np.testing.assert_array_equal(saved.counts, want.counts)
    assert main(["count", *shards, "--dtype", "uint32", "--min-count", "2", "-o", str(out)]) == 0
    assert len(NGramCounts.load(out)) == len(count_ngrams(tokens, 2).prune(2))
    assert main(["count", *shards, "--dtype", "uint32", "--min-count", str(10**20), "-o", str(out)]) == 0
    assert len(NGramCounts.load(out)) == 0  # past any count: nothing kept, no overflow
    assert main(["count", *shards, "--dtype", "uint32", "--min-count", "2", "-o", str(out)]) == 0
    text = tmp_path / "t.txt"
    text.write_text("abcabcabd", encoding="utf-8")
    assert main(["count", str(text), "--text", "--vocab", "chars", "--order", "3", "--top", "1", "-o", str(out)]) == 0
    assert "'abc'" in capsys.readouterr().out
    before = out.read_bytes()
    for bad, message in [
        (["--order", "9"], "--order must be <= 8, got 9"),
        (["--order", "2", "--max-memory", "lots"], "--max-memory must be a size such as 512M or 2G"),
        (["--min-count", "0"], "--min-count must be >= 1, got 0"),
        (["--order", "2", "--vocab-size", "100"], "token id"),
    ]:
        assert main(["count", *shards, "--dtype", "uint32", *bad, "-o", str(out)]) == 2
        assert message in capsys.readouterr().err
    assert main(["count", *shards, "--dtype", "uint32", "-o", str(tmp_path)]) == 2  # before counting
    assert "is a directory: name a file in it" in capsys.readouterr().err
    assert out.read_bytes() == before  # a failed count leaves the old output alone
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


# -- language models --------------------------------------------------------------------------

SENTENCES = ["the cat sat on the mat", "the dog sat on the log", "a cat and a dog", "the cat and the dog sat"] * 3


def _lm_corpus(tmp_path):
    (tmp_path / "train.txt").write_text("\n".join(SENTENCES) + "\n", encoding="utf-8")
    (tmp_path / "test.txt").write_text("the cat sat on the log\na bird sat\n", encoding="utf-8")


@pytest.mark.parametrize("suffix", [".arpa", ".npz"])
def test_lm_score_generate(tmp_path, capsys, suffix):
    _lm_corpus(tmp_path)
    out = tmp_path / f"model{suffix}"
    argv = ["lm", str(tmp_path / "train.txt"), "--order", "3", "-o", str(out), "--discount-fallback"]
    assert main(argv) == 0
    assert "order 3 model of" in capsys.readouterr().out
    want = NGramLM.estimate(SENTENCES, 3, discount_fallback=True)
    got = NGramLM.read_arpa(out) if suffix == ".arpa" else NGramLM.load(out)
    assert got.words == want.words
    for n in range(3):
        np.testing.assert_array_equal(got.rows[n], want.rows[n])
        np.testing.assert_allclose(got.prob[n], want.prob[n], atol=1e-6 if suffix == ".arpa" else 0)
        np.testing.assert_allclose(got.backoff[n], want.backoff[n], atol=1e-6 if suffix == ".arpa" else 0)
    assert main(["score", str(out), str(tmp_path / "test.txt")]) == 0
    printed = capsys.readouterr().out
    summary = got.score(["the cat sat on the log", "a bird sat"]).summary()
    assert printed == (
        f"Perplexity including OOVs:\t{summary['perplexity']!r}\n"
        f"Perplexity excluding OOVs:\t{summary['perplexity_excluding_oovs']!r}\n"
        f"OOVs:\t1\nTokens:\t{summary['tokens']}\n"
    )
    assert summary["tokens"] == 11  # 6 + 3 words, and </s> twice
    assert main(["generate", str(out), "-n", "4", "--length", "12", "--seed", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [" ".join(s) for s in got.generate(4, 12, seed=3)]
    assert all(0 < len(line.split()) <= 12 and set(line.split()) <= set(want.words) for line in lines)


def test_score_verbosity_levels(tmp_path, capsys):
    _lm_corpus(tmp_path)
    model, test = tmp_path / "m.arpa", str(tmp_path / "test.txt")
    assert main(["lm", str(tmp_path / "train.txt"), "--order", "3", "-o", str(model), "--discount-fallback"]) == 0
    capsys.readouterr()
    scores = NGramLM.read_arpa(model).score(["the cat sat on the log", "a bird sat"])
    totals = list(scores.query_lines("sentence"))
    assert main(["score", str(model), test, "-v", "sentence"]) == 0
    assert capsys.readouterr().out == "".join(totals)
    assert main(["score", str(model), test, "-v", "sentence", "-v", "summary"]) == 0
    assert capsys.readouterr().out == "".join(totals) + scores.summary_text()
    assert main(["score", str(model), test, "-v", "word", "-v", "sentence"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[-1] + "\n" for line in out] == totals and out[1].startswith("a=")
    assert "bird=0 " in out[1]
    with pytest.raises(SystemExit):
        main(["score", str(model), test, "-v", "words"])
    if hasattr(os, "mkfifo"):  # a stream (e.g. /dev/stdin) is read twice at the word level: spooled
        fifo = tmp_path / "fifo"
        os.mkfifo(fifo)
        writer = threading.Thread(target=lambda: fifo.write_bytes((tmp_path / "test.txt").read_bytes()))
        writer.start()
        assert main(["score", str(model), str(fifo), "-v", "word", "-v", "sentence"]) == 0
        writer.join()
        assert capsys.readouterr().out.splitlines() == out


def test_skip_symbols(tmp_path, capsys):
    (tmp_path / "train.txt").write_text("\n".join(SENTENCES) + "\n<s> the cat\n", encoding="utf-8")
    (tmp_path / "test.txt").write_text("the <unk> cat sat\n</s>\n", encoding="utf-8")
    model, train, test = str(tmp_path / "m.arpa"), str(tmp_path / "train.txt"), str(tmp_path / "test.txt")
    assert main(["lm", train, "--order", "3", "-o", model, "--discount-fallback"]) == 2
    assert "--skip-symbols" in capsys.readouterr().err
    assert main(["lm", train, "--order", "3", "-o", model, "--discount-fallback", "--skip-symbols"]) == 0
    lm = NGramLM.read_arpa(model)
    want = NGramLM.estimate([*SENTENCES, "the cat"], 3, discount_fallback=True)
    assert lm.words == want.words and lm.sizes == want.sizes
    capsys.readouterr()
    assert main(["score", model, test]) == 2
    assert main(["score", model, test, "--skip-symbols", "-v", "word", "-v", "summary"]) == 0
    out = capsys.readouterr().out.splitlines()
    scores = lm.score(["the cat sat", ""])
    assert out[0].startswith("the=") and " cat=" not in out[0] and "\tcat=" in out[0]
    assert out[-1] == f"Tokens:\t{len(scores.log10)}" and len(out) == 2 + 4
    (tmp_path / "t.bin").write_bytes(b"\0\0")
    assert main(["score", model, str(tmp_path / "t.bin"), "--dtype", "uint16", "--skip-symbols"]) == 2
    assert "--skip-symbols applies to text" in capsys.readouterr().err


def test_words_that_are_not_utf8_are_written_as_their_bytes(tmp_path):
    (tmp_path / "t.txt").write_bytes(b"a \xff b\nb a\n" * 5)
    model = tmp_path / "m.arpa"
    assert main(["lm", str(tmp_path / "t.txt"), "--order", "2", "-o", str(model), "--discount-fallback"]) == 0
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}  # a strict UTF-8 stdout, as under LANG=en_US.UTF-8
    for argv in (["score", str(model), str(tmp_path / "t.txt"), "-v", "word"], ["generate", str(model), "-n", "40"]):
        out = subprocess.run([sys.executable, "-m", "fastgram.app.cli", *argv, "--seed", "1"] if argv[0] == "generate"
                             else [sys.executable, "-m", "fastgram.app.cli", *argv], capture_output=True, env=env)  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert b"\xff" in out.stdout


def test_an_output_that_is_an_input_is_refused_before_the_work(tmp_path, capsys):
    _lm_corpus(tmp_path)
    train = tmp_path / "train.txt"
    before = train.read_bytes()
    assert main(["lm", str(train), "--order", "3", "-o", str(train), "--discount-fallback"]) == 2
    assert main(["count", str(train), "--text", "-o", str(train)]) == 2
    assert capsys.readouterr().err.count("is also an input") == 2 and train.read_bytes() == before
    assert main(["lm", str(train), "--order", "3", "-o", str(tmp_path / "M.ARPA"), "--discount-fallback"]) == 0
    assert (tmp_path / "M.ARPA").read_text().startswith("\\data\\")  # .ARPA is ARPA too


def test_a_closed_stdout_ends_quietly_and_out_of_memory_is_one_line(tmp_path, monkeypatch, capsys):
    _lm_corpus(tmp_path)
    model = str(tmp_path / "m.arpa")
    assert main(["lm", str(tmp_path / "train.txt"), "--order", "3", "-o", model, "--discount-fallback"]) == 0
    argv = [
        sys.executable,
        "-m",
        "fastgram.app.cli",
        "generate",
        model,
        "-n",
        "100000",
        "--length",
        "20",
        "--seed",
        "0",
    ]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.readline()
    proc.stdout.close()  # as `| head -1` does
    assert proc.wait(timeout=120) == 141 and proc.stderr.read() == b""
    capsys.readouterr()

    def exhausted(args):
        raise MemoryError

    monkeypatch.setitem(cli._COMMANDS, "score", (cli._add_score, exhausted))
    assert main(["score", model, str(tmp_path / "test.txt")]) == 2
    assert capsys.readouterr().err == "fastgram score: error: out of memory (see --max-memory, or a smaller input)\n"


def test_lm_token_files_with_a_separator(tmp_path, capsys):
    rng = np.random.default_rng(3)
    tokens = rng.integers(0, 40, 3000).astype(np.uint16)
    tokens[rng.random(3000) < 0.05] = 50256
    tokens.tofile(tmp_path / "train.bin")
    out = tmp_path / "m.arpa"
    argv = [
        "lm",
        str(tmp_path / "train.bin"),
        "--dtype",
        "uint16",
        "--separator",
        "50256",
        "--order",
        "3",
        "-o",
        str(out),
        "--discount-fallback",
    ]
    assert main(argv) == 0
    got = NGramLM.read_arpa(out)
    want = NGramLM.estimate(tokens, 3, separator=50256, discount_fallback=True)
    assert got.words == want.words and "50256" not in got.words
    np.testing.assert_allclose(np.concatenate(got.prob), np.concatenate(want.prob), atol=1e-6)
    capsys.readouterr()
    assert main(["generate", str(out), "-n", "2", "--length", "5", "--seed", "0"]) == 0
    for line in capsys.readouterr().out.splitlines():
        assert all(0 <= int(t) < 40 for t in line.split())


def test_lm_errors_leave_nothing(tmp_path, capsys):
    _lm_corpus(tmp_path)
    out = tmp_path / "m.arpa"
    train = str(tmp_path / "train.txt")
    for bad, message in [
        (["--order", "9"], "--order must be <= 8, got 9"),
        (["--order", "3", "--prune", "1", "0"], "prune"),
        (["--order", "3"], "--discount_fallback"),
        (["--order", "2", "--separator", "5"], "--separator applies to --dtype token files"),
    ]:
        assert main(["lm", train, *bad, "-o", str(out)]) == 2
        assert message in capsys.readouterr().err
    (tmp_path / "bad.arpa").write_text("\\data\\\nngram 1=3\n\n\\1-grams:\n-1.0\t<s>\n", encoding="utf-8")
    assert main(["score", str(tmp_path / "bad.arpa"), train]) == 2
    assert "bad.arpa" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["bad.arpa", "test.txt", "train.txt"]


def test_generate_greedy_and_smoothed(tmp_path, capsys):
    out = _count_text(tmp_path, "abcabdabcabd" * 20)
    capsys.readouterr()
    # greedy: from 'a' the most frequent follower is 'b', then 'c' or 'd' (tie -> lowest id), ...
    assert main(["generate", str(out), "-n", "2", "--length", "6", "--temperature", "0", "--start", "a"]) == 0
    assert capsys.readouterr().out.splitlines() == ["abcabca", "abcabca"]
    assert main(["generate", str(out), "-n", "3", "--length", "30", "--smoothing", "1", "--seed", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and all(len(line) == 30 and set(line) <= set("abcd") for line in lines)
