"""``fastgram demo``: the notebook's pipeline, end to end, on text the demo carries itself.

Vocabulary -> bigram counts with add-one smoothing -> the most frequent bigrams -> generated
text -> a modified Kneser-Ney model beside the add-one bigram (held-out perplexity) -> the
notebook's self-attention -> every kernel against its reference -> the measured speed-up on a
generated stream.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable

import numpy as np

from fastgram import reference
from fastgram.app.notebook import NOTEBOOK_TEXT, notebook_demo
from fastgram.counting import count_bigrams
from fastgram.lm import NGramLM
from fastgram.metrics import perplexity
from fastgram.registry import format_table, run_checks
from fastgram.sampling import bigram_probs, generate
from fastgram.vocab import Vocab

#: Tokens in the generated stream of the speed-up measurement.
DEMO_TOKENS = 2 * 10**7

#: Standard-library modules whose source is the language-model demo's corpus (every CPython has
#: them): trained on the first group, scored on the second.
TRAIN_MODULES = ("argparse", "inspect", "typing", "textwrap", "tarfile", "pickle", "dataclasses", "enum")
HELD_OUT_MODULES = ("difflib", "calendar")


def _module_text(names) -> str:
    return "".join(open(importlib.util.find_spec(n).origin, encoding="utf-8").read() for n in names)


def language_model_section(out: Callable[[str], None], seed: int = 0, order: int = 6) -> bool:
    """Character-level add-one bigram (the notebook's model) against a modified Kneser-Ney
    ``order``-gram on held-out text; returns whether the Kneser-Ney model is the better one."""
    train, held_out = _module_text(TRAIN_MODULES), _module_text(HELD_OUT_MODULES)
    vocab = Vocab.from_text(train, unk="\ufffd")  # characters of the held-out text not seen: unk
    out(f"corpus: the source of {', '.join(TRAIN_MODULES)} ({len(train):,} characters); "
        f"held out: {', '.join(HELD_OUT_MODULES)} ({len(held_out):,})")  # fmt: skip
    ids, test_ids = vocab.encode(train), vocab.encode(held_out)
    bigram = perplexity(bigram_probs(count_bigrams(ids, len(vocab)), 1.0), test_ids)
    t0 = time.perf_counter()
    lines = [vocab.encode(line) for line in train.split("\n")]  # one sentence per line, as lmplz
    lm = NGramLM.estimate(lines, order, discount_fallback=True)  # characters: no unigram is seen once
    built = time.perf_counter() - t0
    scored = lm.perplexity([vocab.encode(line) for line in held_out.split("\n")])
    out(f"add-one bigram (the notebook's model): held-out perplexity {bigram:6.2f} per character")
    out(f"modified Kneser-Ney {order}-gram ({sum(lm.sizes):,} n-grams, estimated in {built:.2f} s): "
        f"held-out perplexity {scored['perplexity']:6.2f} per character (</s> for each newline)")  # fmt: skip
    for sentence in lm.generate(3, 70, seed=seed):
        out("  " + repr(vocab.decode(np.array(sentence, np.int64))))
    return scored["perplexity"] < bigram


def _section(title: str, out: Callable[[str], None]) -> None:
    out("")
    out(f"== {title} ==")


def _best_of(fn, *args, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn(*args)
        best = min(best, time.perf_counter() - t0)
    return best


def run(tokens: int = DEMO_TOKENS, seed: int = 0, out: Callable[[str], None] = print) -> bool:
    """Run the demo, writing lines through ``out``; return whether every check passed."""
    _section("1. vocabulary (character level, as in the notebook)", out)
    vocab = Vocab.from_text(NOTEBOOK_TEXT)
    ids = vocab.encode(NOTEBOOK_TEXT)
    out(f"text: {NOTEBOOK_TEXT!r}")
    out(f"V = {len(vocab)}: {''.join(vocab.chars)!r}")
    out(f"encoded ({ids.dtype}): {ids[:16].tolist()} ...; decodes back exactly: {vocab.decode(ids) == NOTEBOOK_TEXT}")

    _section("2. bigram counts with add-one smoothing", out)
    counts = count_bigrams(ids, len(vocab))
    smoothed = counts + 1
    out(
        f"{int(counts.sum())} pairs counted into a {counts.shape} table; "
        f"smoothed row sums: {smoothed.sum(1)[:6].tolist()} ..."
    )
    flat = np.argsort(counts, axis=None, kind="stable")[::-1][:8]
    pairs = [f"{vocab.chars[k // len(vocab)]!r}->{vocab.chars[k % len(vocab)]!r} x{counts.flat[k]}" for k in flat]
    out("most frequent: " + ", ".join(pairs))

    _section("3. sampling from the smoothed counts (seeded, exact)", out)
    chains = generate(smoothed, np.full(3, ids[0]), length=60, seed=seed)  # (3, 60), exact integer weights
    for row in chains:
        out(repr(vocab.decode(np.concatenate([ids[:1], row]))))
    ppl = perplexity(bigram_probs(counts, 1.0), ids)
    out(f"perplexity of the text under the add-one model: {ppl:.2f} (uniform guessing: {len(vocab)})")

    _section("4. a modified Kneser-Ney language model beside the add-one bigram", out)
    ok = language_model_section(out, seed=seed)

    _section("5. the notebook's self-attention, checked against the reference", out)
    demo = notebook_demo(seed=seed)
    for line in demo.lines():
        out(line)
    ok = ok and demo.max_difference < 1e-12

    _section("6. kernels against their NumPy references", out)
    results = run_checks(seed=seed)
    out(format_table(results))
    ok = ok and all(r.ok for r in results)

    _section(f"7. speed-up on a generated stream of {tokens:,} uint8 tokens, V = 256", out)
    out("generating the stream and timing both on it (a few seconds) ...")
    stream = np.random.default_rng(seed).integers(0, 256, tokens, dtype=np.uint8)
    count_bigrams(stream[:1000], 256)  # compile (or load from the cache) before timing
    fast = _best_of(count_bigrams, stream, 256)
    out(f"fastgram.count_bigrams: {fast * 1e3:9.1f} ms  ({tokens / fast / 1e6:,.0f} M tokens/s, best of 3)")
    t0 = time.perf_counter()
    want = reference.count_bigrams(stream, 256)
    first = time.perf_counter() - t0
    out(f"NumPy reference, first call (pages in ~24 bytes per token): {first * 1e3:,.0f} ms")
    slow = min(first, _best_of(reference.count_bigrams, stream, 256, repeat=1))
    same = bool((count_bigrams(stream, 256) == want).all())
    ok = ok and same
    out(f"NumPy reference       : {slow * 1e3:9.1f} ms  (np.bincount of int64 keys, best of 2)")
    out(f"speed-up: {slow / fast:.1f}x; identical counts: {same}")
    out("")
    out("all checks passed" if ok else "SOME CHECKS FAILED")
    return ok
