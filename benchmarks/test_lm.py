"""n-gram language models: corpus -> model -> ARPA -> perplexity, beside KenLM and the reference.

Corpus: the Python standard library's sources (natural, Zipfian text; ``\\r``/NUL made spaces
and lmplz's special words replaced), 50 MB at full scale, 100 kB under
``FASTGRAM_BENCH_SCALE=smoke``; the held-out text is the next 2 MB (20 kB).

Cases:

- ``lm estimate 5-gram``: text file -> ARPA file. ``kernel``: ``fastgram.estimate_to_arpa``
  (each order written as it is finished, what the command runs) in this process; ``fastgram
  lm``: the command in a fresh process (its start, imports and first touches of memory
  included, as lmplz's are); ``lmplz``: ``lmplz -o 5 -S 2G``
  (skipped when absent). The kernel's and lmplz's ARPA files are compared entry by entry
  (untimed, within 1e-5).
- ``lm estimate 3-gram small``: 20k words (2k in smoke), kernel beside the plain-Python
  reference (``fastgram.reference.lm_estimate``), results compared.
- ``lm load+score``: load the ARPA and score the held-out text. ``kernel``:
  ``NGramLM.read_arpa`` + ``score_files`` in this process; ``fastgram score``: the command in a
  fresh process (Python's start and imports included), as ``query``: KenLM's ``query`` on the
  same ARPA; ``kenlm.Model.score``: the ``kenlm`` module called per sentence (model loaded
  untimed).
- ``lm score in memory``: the held-out sentences, model loaded untimed: ``NGramLM.score``
  of the list beside ``kenlm.Model.score`` per sentence (totals compared within 1e-4 + 1e-5 relative).
- ``lm generate``: 10,000 sentences of up to 50 words (kernel) beside a NumPy loop that
  builds each next-word distribution over the whole vocabulary (reference role, 200 sentences).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest
from conftest import measure, size

import fastgram
from fastgram import reference as ref
from fastgram.lm import NGramLM
from fastgram.lm import generate as gen

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import _kenlm  # noqa: E402

CORPUS_BYTES = size(50_000_000, 100_000)
HELDOUT_BYTES = size(2_000_000, 20_000)
ORDER = 5


def _python_text(limit: int) -> str:
    root = Path(sysconfig.get_paths()["stdlib"])
    parts, total = [], 0
    for path in sorted(root.rglob("*.py")):
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        parts.append(text)
        total += len(text)
        if total >= limit:
            break
    text = "".join(parts).replace("\r", " ").replace("\0", " ")
    for special in ("<s>", "</s>", "<unk>"):
        text = text.replace(special, "SPECIAL")
    return text


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("lm-bench")
    text = _python_text(CORPUS_BYTES + HELDOUT_BYTES)
    train = text[:CORPUS_BYTES]
    train = train[: train.rfind("\n") + 1]
    held = text[len(train) : len(train) + HELDOUT_BYTES]
    held = held[: held.rfind("\n") + 1]
    paths = {"train": d / "train.txt", "heldout": d / "heldout.txt", "dir": d}
    paths["train"].write_text(train, encoding="utf-8")
    paths["heldout"].write_text(held, encoding="utf-8")
    return paths


def _estimate_to_arpa(train, out):
    fastgram.estimate_to_arpa(train, ORDER, out)


@pytest.mark.parametrize("role", ["kernel", "fastgram lm", "lmplz"])
def test_estimate(benchmark, corpus, role):
    out = corpus["dir"] / f"{role.replace(' ', '-')}.arpa"
    extra = {"corpus_bytes": CORPUS_BYTES, "order": ORDER}
    if role == "kernel":
        measure(benchmark, _estimate_to_arpa, corpus["train"], out, group="lm estimate 5-gram", role=role, **extra)
    elif role == "fastgram lm":
        argv = [
            sys.executable,
            "-m",
            "fastgram.app.cli",
            "lm",
            str(corpus["train"]),
            "--order",
            str(ORDER),
            "-o",
            str(out),
        ]
        measure(
            benchmark,
            lambda: subprocess.run(argv, capture_output=True, check=True),
            group="lm estimate 5-gram",
            role=role,
            **extra,
        )
        library = corpus["dir"] / "kernel.arpa"
        if library.exists():  # the command writes what the library call wrote
            assert out.read_bytes() == library.read_bytes()
    else:
        argv = _kenlm.lmplz_argv(ORDER, memory="2G", temp_dir=corpus["dir"])

        def run():
            with open(corpus["train"], "rb") as src, open(out, "wb") as dst:
                subprocess.run(argv, stdin=src, stdout=dst, stderr=subprocess.DEVNULL, check=True)

        measure(benchmark, run, group="lm estimate 5-gram", role=role, **extra)
    theirs, ours = corpus["dir"] / "lmplz.arpa", corpus["dir"] / "kernel.arpa"
    if theirs.exists() and ours.exists():
        assert _kenlm.arpa_differences(theirs, ours, tol=1e-5) == []


@pytest.mark.parametrize("role", ["kernel", "reference"])
def test_estimate_small(benchmark, corpus, role):
    words = corpus["train"].read_text(encoding="utf-8").split("\n")
    lines, count = [], 0
    for line in words:
        lines.append(line)
        count += len(line.split())
        if count >= size(20_000, 2_000):
            break
    group = "lm estimate 3-gram small"
    if role == "kernel":
        lm = measure(benchmark, lambda: NGramLM.estimate(lines, 3, discount_fallback=True), group=group, role=role)
        model = ref.lm_estimate([s.split() for s in lines], 3, discount_fallback=True)
        ours = lm.to_dict()
        for n, grams in model["ngrams"].items():
            assert grams.keys() == ours[n].keys()
    else:
        split = [s.split() for s in lines]
        measure(benchmark, lambda: ref.lm_estimate(split, 3, discount_fallback=True), group=group, role=role, rounds=1)


def _arpa(corpus):
    path = corpus["dir"] / "score.arpa"
    if not path.exists():
        NGramLM.estimate_files(corpus["train"], ORDER).write_arpa(path)
    return path


@pytest.mark.parametrize("role", ["kernel", "fastgram score", "query", "kenlm.Model.score"])
def test_score(benchmark, corpus, role):
    arpa = _arpa(corpus)
    group = "lm load+score"
    held = corpus["heldout"]
    if role == "kernel":
        result = measure(benchmark, lambda: NGramLM.read_arpa(arpa).score_files(held), group=group, role=role)
        summary = result.summary()
        q = _kenlm.run_query(arpa, held) if _kenlm.query_path() else None
        if q is not None:
            assert summary["tokens"] == q["tokens"] and summary["oovs"] == q["oovs"]
            assert summary["perplexity"] == pytest.approx(q["perplexity"], rel=1e-5)
    elif role == "query":
        argv = [_kenlm.query_path() or pytest.skip("KenLM's query not found")]

        def run():
            with open(arpa, "rb") as arpa_in, open(held, "rb") as src:
                del arpa_in
                subprocess.run([*argv, str(arpa)], stdin=src, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        measure(benchmark, run, group=group, role=role)
    elif role == "fastgram score":
        argv = [sys.executable, "-m", "fastgram.app.cli", "score", str(arpa), str(held)]
        out = measure(
            benchmark, lambda: subprocess.run(argv, capture_output=True, text=True, check=True), group=group, role=role
        )
        q = _kenlm.run_query(arpa, held) if _kenlm.query_path() else None
        if q is not None:
            assert f"Tokens:\t{q['tokens']}\n" in out.stdout and f"OOVs:\t{q['oovs']}\n" in out.stdout
    else:
        model = _kenlm.kenlm_model(arpa)
        lines = held.read_text(encoding="utf-8").split("\n")[:-1]
        measure(benchmark, lambda: sum(model.score(s) for s in lines), group=group, role=role)


@pytest.mark.parametrize("role", ["kernel", "kenlm.Model.score"])
def test_score_in_memory(benchmark, corpus, role):
    """The held-out sentences scored by a model already in memory: ``NGramLM.score(lines)`` (one
    call for the batch) beside ``kenlm.Model.score`` called per sentence."""
    arpa = _arpa(corpus)
    lines = corpus["heldout"].read_text(encoding="utf-8").split("\n")[:-1]
    group = "lm score in memory"
    if role == "kernel":
        lm = NGramLM.read_arpa(arpa)
        totals = measure(benchmark, lambda: lm.score(lines).totals, group=group, role=role, sentences=len(lines))
        if importlib.util.find_spec("kenlm") is not None:
            model = _kenlm.kenlm_model(arpa)
            theirs = np.array([model.score(s) for s in lines])
            np.testing.assert_allclose(totals, theirs, rtol=1e-5, atol=1e-4)  # kenlm keeps float32
    else:
        model = _kenlm.kenlm_model(arpa)
        measure(benchmark, lambda: [model.score(s) for s in lines], group=group, role=role, sentences=len(lines))


def _full_distribution_generate(lm, n, max_length, seed):
    """O(V) per word: every word's log10 p(w | context) (one batched lookup), then a NumPy draw."""
    from fastgram.kernels import lm as kernels

    rng = np.random.default_rng(seed)
    candidates = np.array([i for i in range(lm.vocab_size) if i != 1], np.uint32)
    index = lm.score_index()
    out = []
    for _ in range(n):
        history = [1]
        sentence = []
        for _ in range(max_length):
            hist = history[::-1][: lm.order - 1]
            queries = np.zeros((len(candidates), lm.order), np.uint32)
            queries[:, 0] = candidates
            queries[:, 1 : 1 + len(hist)] = hist
            logp = np.empty(len(candidates))
            kernels.score_queries(
                0,
                len(candidates),
                *index,
                lm.order,
                queries,
                np.full(len(candidates), len(hist), np.int64),
                logp,
            )
            cum = np.cumsum(10.0**logp)
            w = int(candidates[min(np.searchsorted(cum, rng.random() * cum[-1], side="right"), len(cum) - 1)])
            if w == 2:
                break
            sentence.append(w)
            history.append(w)
        out.append(sentence)
    return out


@pytest.mark.parametrize("role", ["kernel", "reference"])
def test_generate(benchmark, corpus, role):
    lines = corpus["train"].read_text(encoding="utf-8").split("\n")[: size(20_000, 500)]
    lm = NGramLM.estimate(lines, 3, discount_fallback=True)
    group = "lm generate"
    if role == "kernel":
        n = size(10_000, 100)
        ids, lengths = measure(benchmark, lambda: gen.generate_ids(lm, n, 50, seed=1), group=group, role=role)
        benchmark.extra_info["words"] = int(lengths.sum())
    else:
        n = size(20, 2)
        result = measure(benchmark, lambda: _full_distribution_generate(lm, n, 50, 1), group=group, role=role, rounds=1)
        benchmark.extra_info["words"] = sum(len(s) for s in result)
