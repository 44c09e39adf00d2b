"""The fastgram command end to end, on small files."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from fastgram import BigramCounter, Vocab, reference
from fastgram.cli import main


def test_count_token_files_and_a_shard_folder(tmp_path, rng, capsys):
    shards = tmp_path / "shards"
    shards.mkdir()
    parts = [rng.integers(0, 500, n).astype(np.uint16) for n in (1000, 10, 777)]
    for i, p in enumerate(parts):
        p.tofile(shards / f"{i:03d}.bin")
    out = tmp_path / "counts.npz"
    assert main(["count", str(shards), "--dtype", "uint16", "-o", str(out)]) == 0
    counter = BigramCounter.load(out)
    np.testing.assert_array_equal(counter.counts, reference.count_bigrams(np.concatenate(parts)))
    assert "counted 1,787 tokens from 3 file(s)" in capsys.readouterr().out


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
    counter = BigramCounter.load(out)
    v = counter.vocab
    assert v == (Vocab.bytes() if vocab == "bytes" else Vocab.from_text(text))
    np.testing.assert_array_equal(counter.counts, reference.count_bigrams(v.encode(text), len(v)))


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
    assert sorted(os.listdir(tmp_path)) == ["bad.txt", "odd.bin"]


def test_check_command(capsys):
    assert main(["check", "counting"]) == 0
    out = capsys.readouterr().out
    assert "count_bigrams" in out and "FAIL" not in out
    assert main(["check", "nonsense"]) == 2


def test_demo_runs_small(capsys):
    assert main(["demo", "--tokens", "20000"]) == 0
    out = capsys.readouterr().out
    assert "V = 24" in out and "speed-up" in out and "identical counts: True" in out and "all checks passed" in out


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
