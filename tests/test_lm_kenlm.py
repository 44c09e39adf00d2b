"""fastgram.lm against KenLM itself: lmplz's ARPA entry by entry, kenlm.Model's scores, query's summary.

Skipped cleanly where lmplz / query / the kenlm module are absent (see tests/_kenlm.py).
The corpora are this repository's own Python sources (natural, Zipfian text whose counts give
valid closed-form discounts) and seeded artificial text (which needs discount_fallback).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from fastgram.app.cli import main
from fastgram.lm import NGramLM

ROOT = Path(__file__).resolve().parents[1]
try:
    import _kenlm
except ImportError:  # the helper lives beside the benchmarks
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import _kenlm
TOL = 1e-5  # lmplz prints float32 values


def source_text(limit: int) -> str:
    files = sorted((ROOT / "fastgram").rglob("*.py"))
    text = "".join(p.read_text(encoding="utf-8", errors="replace") for p in files)[:limit]
    for special in ("<s>", "</s>", "<unk>"):  # lmplz refuses them as words
        text = text.replace(special, "SPECIAL")
    return text[: text.rfind("\n") + 1]


def artificial_text(seed: int, lines: int, vocab: int) -> str:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(lines):
        words = rng.zipf(1.3, size=int(rng.integers(0, 14))) % vocab
        out.append(" ".join(f"w{x}" for x in words))
    return "\n".join(out) + "\n"


def max_difference(arpa_path, lm: NGramLM, *, backoffs: bool = True) -> float:
    """Largest difference of log10 probabilities (and backoffs) between lmplz's ARPA file and
    ``lm``, after asserting both hold the same n-grams."""
    theirs = _kenlm.read_arpa(arpa_path)
    ours = lm.to_dict()
    assert sorted(theirs) == sorted(ours)
    worst = 0.0
    for n in theirs:
        assert theirs[n].keys() == ours[n].keys(), f"order {n}: {sorted(theirs[n].keys() ^ ours[n].keys())[:5]}"
        for g, (p, b) in theirs[n].items():
            worst = max(worst, abs(p - ours[n][g][0]), abs(b - ours[n][g][1]) if backoffs else 0.0)
    return worst


def _arpa_log10p(model: dict, context: tuple, word: str) -> float:
    """log10 p(word | context) of an ARPA model ``{n: {ngram: (log10 p, log10 backoff)}}``."""
    total = 0.0
    while True:
        entry = model[len(context) + 1].get(context + (word,))
        if entry is not None:
            return total + entry[0]
        if context:
            total += model[len(context)].get(context, (0.0, 0.0))[1]
        context = context[1:]


def backoff_errors(model: dict) -> dict:
    """Each context's backoff against the one its probabilities imply: the backoff ``b(h)`` makes
    ``p(. | h)`` sum to 1, ``b(h) = (1 - sum p(w | h)) / (1 - sum p(w | h[1:]))`` over the words
    ``w`` seen after ``h``."""
    follow: dict = {}
    for n in range(2, max(model) + 1):
        for g in model[n]:
            follow.setdefault(g[:-1], []).append(g[-1])
    errors = {}
    for h, words in follow.items():
        seen = 1.0 - sum(10.0 ** model[len(h) + 1][h + (w,)][0] for w in words)
        lower = 1.0 - sum(10.0 ** _arpa_log10p(model, h[1:], w) for w in words)
        errors[h] = abs(np.log10(seen / lower) - model[len(h)][h][1])
    return errors


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    d = tmp_path_factory.mktemp("lm-corpora")
    paths = {}
    for name, text in (
        ("source", source_text(250_000)),
        ("small", source_text(40_000)),
        ("artificial", artificial_text(0, 800, 150)),
    ):
        path = d / f"{name}.txt"
        path.write_text(text, encoding="utf-8")
        paths[name] = path
    return paths


CASES = [
    ("source", order, prune, False)
    for order in (1, 2, 3, 4, 5)
    for prune in (None, [0, 1], [0, 0, 1], [0, 1, 1, 2])
    if prune is None or len(prune) <= order
] + [
    ("small", 3, None, False),
    ("small", 5, [0, 0, 1], False),
    ("artificial", 2, None, True),
    ("artificial", 4, None, True),
    ("artificial", 5, [0, 1, 1, 2], True),
    ("artificial", 1, [0], True),
    ("source", 3, [1, 1, 2], False),  # unigrams pruned too
    ("artificial", 2, [2], True),
]


@_kenlm.requires_lmplz
@pytest.mark.parametrize("name, order, prune, fallback", CASES)
def test_arpa_equals_lmplz(corpora, tmp_path, name, order, prune, fallback):
    path = corpora[name]
    try:
        arpa = _kenlm.run_lmplz(path, order, prune, fallback, out=tmp_path / "lmplz.arpa", memory="200M")
    except RuntimeError as exc:
        # lmplz refused (invalid discounts): fastgram must refuse too and name the option
        assert "discount_fallback" in str(exc)
        with pytest.raises(ValueError, match="discount_fallback"):
            NGramLM.estimate(path.read_text(encoding="utf-8").split("\n")[:-1], order, prune=prune)
        return
    lines = path.read_text(encoding="utf-8").split("\n")[:-1]
    lm = NGramLM.estimate(lines, order, prune=prune, discount_fallback=fallback)
    assert max_difference(arpa, lm) < TOL
    # and fastgram's ARPA file agrees with lmplz's through the independent reader
    lm.write_arpa(tmp_path / "ours.arpa")
    assert _kenlm.arpa_differences(arpa, tmp_path / "ours.arpa", tol=TOL) == []


@_kenlm.requires_lmplz
def test_lmplz_refuses_what_we_refuse(tmp_path):
    path = tmp_path / "tiny.txt"
    path.write_text("a a b a\nb a a b\n")
    with pytest.raises(RuntimeError, match="discount_fallback"):
        _kenlm.run_lmplz(path, 3, out=tmp_path / "x.arpa", memory="100M")
    with pytest.raises(ValueError, match="discount_fallback"):
        NGramLM.estimate(["a a b a", "b a a b"], 3)


@_kenlm.requires_lmplz
def test_token_ids_equal_lmplz_on_decimal_text(tmp_path):
    rng = np.random.default_rng(4)
    stream = (rng.zipf(1.3, size=30000) % 5000).astype(np.uint16)
    stream[rng.random(30000) < 0.08] = 0  # separators
    lm = NGramLM.estimate(stream, 3, separator=0, discount_fallback=True)
    pieces = np.split(stream, np.flatnonzero(stream == 0))
    lines = [" ".join(str(int(t)) for t in p if t != 0) for p in pieces]
    if stream[-1] == 0:
        lines = lines[:-1]
    # the first piece has no leading separator; the others start with one (dropped above)
    path = tmp_path / "ids.txt"
    path.write_text("\n".join(lines) + "\n")
    arpa = _kenlm.run_lmplz(path, 3, discount_fallback=True, out=tmp_path / "ids.arpa", memory="200M")
    assert max_difference(arpa, lm) < TOL


@_kenlm.requires_kenlm
def test_kenlm_loads_our_arpa_and_scores_agree(corpora, tmp_path):
    lines = corpora["source"].read_text(encoding="utf-8").split("\n")[:-1]
    train, test = lines[:-400], lines[-400:]
    for order, prune in ((3, None), (5, [0, 0, 1])):
        lm = NGramLM.estimate(train, order, prune=prune)
        lm.write_arpa(tmp_path / "ours.arpa")
        model = _kenlm.kenlm_model(tmp_path / "ours.arpa")
        assert model.order == order
        scores = lm.score(test)
        worst = 0.0
        for i, sentence in enumerate(test):
            theirs = np.array([x[0] for x in model.full_scores(sentence)])
            worst = max(worst, float(np.abs(theirs - scores.sentence(i)).max()))
            assert scores.totals[i] == pytest.approx(model.score(sentence), abs=1e-4)
        assert worst < 1e-5
        assert np.array([model.score(s) for s in test]).sum() == pytest.approx(scores.totals.sum(), abs=1e-3)


@_kenlm.requires_query
def test_query_summary_agrees(corpora, tmp_path):
    lines = corpora["source"].read_text(encoding="utf-8").split("\n")[:-1]
    train, test = lines[:-300], lines[-300:] + ["unseenword another", ""]
    lm = NGramLM.estimate(train, 4)
    lm.write_arpa(tmp_path / "m.arpa")
    (tmp_path / "test.txt").write_text("\n".join(test) + "\n")
    q = _kenlm.run_query(tmp_path / "m.arpa", tmp_path / "test.txt")
    s = lm.perplexity(test)
    assert s["tokens"] == q["tokens"] and s["oovs"] == q["oovs"]
    assert s["perplexity"] == pytest.approx(q["perplexity"], rel=1e-5)
    assert s["perplexity_excluding_oovs"] == pytest.approx(q["perplexity_excluding_oovs"], rel=1e-5)
    scores = lm.score(test)
    for i, (total, oov) in enumerate(q["sentences"]):
        assert scores.totals[i] == pytest.approx(total, abs=1e-4)
        assert int(scores.oov[scores.starts[i] : scores.starts[i + 1]].sum()) == oov


def _query_lines(text: str) -> list:
    """query's per-sentence lines: ``[(cells, total, oovs)]``, cells ``(word, id, length, log10)``."""
    out = []
    for line in text.splitlines():
        fields = line.split("\t")
        if not fields[-1].startswith("Total: "):
            continue
        cells = []
        for item in fields[:-1]:
            word, _, rest = item.rpartition("=")
            i, length, p = rest.split(" ")
            cells.append((word, int(i), int(length), float(p)))
        total = fields[-1].split()
        out.append((cells, float(total[1]), int(total[3])))
    return out


@_kenlm.requires_query
@pytest.mark.parametrize("level", ["word", "sentence"])
def test_score_lines_equal_query(corpora, tmp_path, capsys, level):
    """``fastgram score -v word|sentence`` prints query's lines: the same words, vocabulary ids
    (KenLM numbers the ARPA's unigrams in file order, as our models do), matched lengths and OOV
    counts, the values within float32 rounding; the summary only when asked for."""
    lines = corpora["source"].read_text(encoding="utf-8").split("\n")[:-1]
    train, test = lines[:-200], lines[-200:] + ["unseenword  unseenother\tdef", ""]
    NGramLM.estimate(train, 4).write_arpa(tmp_path / "m.arpa")
    (tmp_path / "test.txt").write_text("\n".join(test) + "\n")
    assert main(["score", str(tmp_path / "m.arpa"), str(tmp_path / "test.txt"), "-v", level]) == 0
    ours = capsys.readouterr().out
    flags = () if level == "word" else ("-v", "sentence")  # query's default is its word level + summary
    theirs = _kenlm.query_stdout(tmp_path / "m.arpa", tmp_path / "test.txt", *flags)
    assert ("Perplexity including OOVs:" in theirs) == (level == "word") and "Perplexity" not in ours
    a, b = _query_lines(ours), _query_lines(theirs)
    assert len(a) == len(b) == len(test)
    for (cells, total, oovs), (their_cells, their_total, their_oovs) in zip(a, b):
        assert oovs == their_oovs and total == pytest.approx(their_total, abs=1e-4)
        assert [c[:3] for c in cells] == [c[:3] for c in their_cells]
        np.testing.assert_allclose([c[3] for c in cells], [c[3] for c in their_cells], atol=1e-5)
    assert a[-2][2] == 2  # the two unseen words
    if level == "word":
        assert [c[:2] for c in a[-2][0]][:2] == [("unseenword", 0), ("unseenother", 0)]


@_kenlm.requires_lmplz
def test_skip_symbols_equals_lmplz(corpora, tmp_path, capsys):
    """``fastgram lm --skip-symbols`` drops <s>, </s> and <unk> from the text as lmplz's
    --skip_symbols does: the same ARPA; without it both refuse the text."""
    text = corpora["small"].read_text(encoding="utf-8").split("\n")
    for i in range(0, len(text) - 1, 7):
        text[i] = f"{text[i]} <s>" if i % 3 else f"</s> {text[i]}\t<unk>"
    path = tmp_path / "symbols.txt"
    path.write_text("\n".join(text), encoding="utf-8")
    arpa = _kenlm.run_lmplz(path, 3, out=tmp_path / "lmplz.arpa", memory="100M", extra=["--skip_symbols"])
    assert main(["lm", str(path), "--order", "3", "--skip-symbols", "-o", str(tmp_path / "ours.arpa")]) == 0
    assert max_difference(arpa, NGramLM.read_arpa(tmp_path / "ours.arpa")) < TOL
    assert main(["lm", str(path), "--order", "3", "-o", str(tmp_path / "refused.arpa")]) == 2
    assert "--skip-symbols" in capsys.readouterr().err and not (tmp_path / "refused.arpa").exists()


@_kenlm.requires_lmplz
def test_read_lmplz_arpa(corpora, tmp_path):
    arpa = _kenlm.run_lmplz(corpora["small"], 3, out=tmp_path / "l.arpa", memory="100M")
    lm = NGramLM.read_arpa(arpa)
    assert lm.order == 3 and lm.words[:3] == ["<unk>", "<s>", "</s>"]
    ours = NGramLM.estimate(corpora["small"].read_text(encoding="utf-8").split("\n")[:-1], 3)
    assert max_difference(arpa, ours) < TOL
    test = ["def f(x):", "return x", "zzz"]
    np.testing.assert_allclose(lm.score(test).log10, ours.score(test).log10, atol=1e-5)


@_kenlm.requires_lmplz
def test_text_file_without_final_newline(corpora, tmp_path):
    """lmplz gives an unterminated last line no </s>; so does estimate_files: the same n-grams
    and probabilities. The backoffs are checked against what the probabilities imply instead:
    on such a file lmplz 0.3.0 can give contexts each other's backoffs (seen on this corpus: a
    context seen once and one seen 12 times, both followed only by </s>, swapped theirs, 0.78
    apart; with a final newline both agree with ours), so its backoffs are no specification
    here."""
    text = corpora["small"].read_text(encoding="utf-8").rstrip("\n")
    path = tmp_path / "open.txt"
    path.write_text(text, encoding="utf-8")
    arpa = _kenlm.run_lmplz(path, 3, out=tmp_path / "open.arpa", memory="100M")
    lm = NGramLM.estimate_files(path, 3)
    assert max_difference(arpa, lm, backoffs=False) < TOL
    assert max(backoff_errors(lm.to_dict()).values()) < 1e-9
    closed = tmp_path / "closed.txt"
    closed.write_text(text + "\n", encoding="utf-8")  # and the terminated file agrees entirely
    assert (
        max_difference(
            _kenlm.run_lmplz(closed, 3, out=tmp_path / "closed.arpa", memory="100M"), NGramLM.estimate_files(closed, 3)
        )
        < TOL
    )
