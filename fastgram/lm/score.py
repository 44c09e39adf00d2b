"""Scoring: log10 probabilities of sentences under ARPA backoff, batched in one kernel call."""

from __future__ import annotations

import functools
import math

import numpy as np

from fastgram import _checks, _io
from fastgram._jit import num_threads, parallel_for
from fastgram.kernels import lm as _k
from fastgram.lm.words import split_words
from fastgram.vocab import SPECIAL_WORDS

UNK, BOS, EOS = 0, 1, 2


class Scores:
    """Per-token scores of a batch of sentences.

    Attributes
    ----------
    log10 : ndarray float64 (tokens,)
        log10 p of every token, each sentence's ``</s>`` last.
    starts : ndarray int64 (sentences + 1,)
        Sentence ``s`` is ``log10[starts[s]:starts[s + 1]]``.
    oov : ndarray bool (tokens,)
        Tokens the model does not know (scored as ``<unk>``).
    ngram_length : ndarray int8 (tokens,)
        Length of the n-gram matched (KenLM's ``ngram_length``).
    ids : ndarray uint32 (tokens,) or None
        The model id of every token (``<unk>`` = 0 for OOVs, ``</s>`` = 2).
    """

    def __init__(self, log10, starts, oov, ngram_length, ids=None):
        self.log10, self.starts, self.oov, self.ngram_length = log10, starts, oov, ngram_length
        self.ids = ids

    def __len__(self) -> int:
        return len(self.starts) - 1

    @property
    def totals(self) -> np.ndarray:
        """log10 probability of each sentence (``kenlm.Model.score(s)``)."""
        if len(self) == 0:
            return np.zeros(0)
        return np.add.reduceat(self.log10, self.starts[:-1])

    @property
    def sentence_oovs(self) -> np.ndarray:
        """OOVs of each sentence, int64 ``(sentences,)``."""
        if len(self) == 0:
            return np.zeros(0, np.int64)
        return np.add.reduceat(self.oov.astype(np.int64), self.starts[:-1])

    def sentence(self, s: int) -> np.ndarray:
        return self.log10[self.starts[s] : self.starts[s + 1]]

    def query_lines(self, level: str = "sentence", words=None):
        """Yield KenLM ``query``'s line for each sentence, newline included.

        ``level="sentence"``: ``Total: <log10> OOV: <n>``. ``level="word"``: each token as
        ``word=id ngram_length log10`` and a tab, then the total; ``words`` (required there)
        gives each sentence's words as str, in order (``</s>`` is added), e.g.
        :func:`sentence_words`. Values are printed as KenLM prints its float32 values (the
        shortest digits that read back as the float32 of ours). O(tokens) Python work at the
        word level, O(sentences) at the sentence level.
        """
        if level not in ("sentence", "word"):
            raise ValueError(f"level must be 'sentence' or 'word', got {level!r}")
        totals = self.totals.astype(np.float32).tolist()
        oovs = self.sentence_oovs.tolist()
        if level == "sentence":
            for total, n in zip(totals, oovs):
                yield f"Total: {_kenlm_float(total)} OOV: {n}\n"
            return
        if words is None:
            raise ValueError("words: the sentences' words are needed at the word level")
        if self.ids is None:
            raise ValueError("these scores carry no model ids (word level needs them)")
        starts = self.starts.tolist()
        if isinstance(words, (str, bytes)) or not hasattr(words, "__iter__"):
            raise TypeError(f"words must be an iterable of lists of str (one per sentence), got {type(words).__name__}")
        words = iter(words)
        # whole arrays to Python once (a per-sentence slice costs more than its few tokens)
        cell_tail = [
            f" {g} {_kenlm_float(x)}\t"
            for g, x in zip(self.ngram_length.tolist(), self.log10.astype(np.float32).tolist())
        ]
        ids = self.ids.tolist()
        for s, (total, n) in enumerate(zip(totals, oovs)):
            lo, hi = starts[s], starts[s + 1]
            ws = next(words, None)
            if ws is not None and (not isinstance(ws, (list, tuple)) or not all(isinstance(w, str) for w in ws)):
                raise TypeError(f"words: sentence {s} must be a list of str, got {ws!r:.80}")
            if ws is None or len(ws) != hi - lo - 1:
                got = "none" if ws is None else len(ws)
                raise ValueError(f"words: sentence {s} has {hi - lo - 1} words before </s> in the scores, {got} given")
            cells = [f"{w}={i}{t}" for w, i, t in zip(ws, ids[lo : hi - 1], cell_tail[lo : hi - 1])]
            yield "".join(cells) + f"</s>={ids[hi - 1]}{cell_tail[hi - 1]}Total: {_kenlm_float(total)} OOV: {n}\n"
        if next(words, None) is not None:
            raise ValueError(f"words: more sentences than the {len(self)} scored")

    def summary(self) -> dict:
        """KenLM ``query``'s summary: ``perplexity``, ``perplexity_excluding_oovs``, ``oovs``, ``tokens``."""
        tokens = int(len(self.log10))
        oovs = int(self.oov.sum())
        total = float(self.log10.sum())
        oov_total = float(self.log10[self.oov].sum())
        including = 10.0 ** (-total / tokens) if tokens else math.nan
        excluding = 10.0 ** (-(total - oov_total) / (tokens - oovs)) if tokens > oovs else math.nan
        return {"perplexity": including, "perplexity_excluding_oovs": excluding, "oovs": oovs, "tokens": tokens}

    def summary_text(self) -> str:
        """The summary lines as KenLM's ``query`` prints them: perplexities in their shortest
        round-trip digits (``NaN`` without tokens); the digits past about the seventh differ
        from query's, whose sums are of float32 values."""
        s = self.summary()
        return (
            f"Perplexity including OOVs:\t{_double_text(s['perplexity'])}\n"
            f"Perplexity excluding OOVs:\t{_double_text(s['perplexity_excluding_oovs'])}\n"
            f"OOVs:\t{s['oovs']}\nTokens:\t{s['tokens']}\n"
        )


def _shortest(v) -> str:
    """``v`` (a NumPy float32 or float64) in its shortest round-trip digits, laid out as KenLM
    prints numbers (double-conversion's ``ToShortest``): positional while the decimal
    exponent is in [-6, 21) (``-0.000023039123``, ``-1524919.1``, ``10``), else ``1.5e80`` /
    ``1e-7``; ``NaN``, ``inf``, ``-inf``."""
    if not np.isfinite(v):
        return "NaN" if np.isnan(v) else ("inf" if v > 0 else "-inf")
    if v == 0:
        return "-0" if np.signbit(v) else "0"
    mantissa, exp = np.format_float_scientific(v, unique=True, trim="-").split("e")
    sign, exp = ("-" if mantissa[0] == "-" else ""), int(exp)
    digits = mantissa.lstrip("-").replace(".", "")
    if not -6 <= exp < 21:
        return f"{sign}{digits[0]}{'.' + digits[1:] if len(digits) > 1 else ''}e{exp}"
    point = exp + 1  # digits before the decimal point
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return f"{sign}{digits[:point]}.{digits[point:]}"


def _double_text(x: float) -> str:
    """A float64 as query prints one (the summary's perplexities)."""
    return _shortest(np.float64(x))


@functools.lru_cache(maxsize=1 << 16)
def _kenlm_float(x: float) -> str:
    """A float32 value (given as a Python float) as KenLM prints its float32 values:
    ``-1.1620424``, ``-100``, ``-0.000023039123``. Cached: a file of short lines repeats few
    values many times."""
    return _shortest(np.float32(x))


def sentence_words(paths, *, dtype=None, separator=None, skip_symbols: bool = False):
    """Yield each sentence's words (list of str), as :meth:`fastgram.lm.NGramLM.score_files`
    reads the files: text lines split as lmplz splits them (a file's unterminated last line
    is a sentence when it has words; ``skip_symbols`` drops ``<s>``, ``</s>`` and ``<unk>``),
    or the raw token ids as decimal numbers, split at ``separator`` (one sentence without it;
    the files joined as :func:`fastgram._io.join_token_files` joins them). Memory: one text
    file at a time; token files joined."""
    files = _io.expand_paths(paths)
    if dtype is None:
        drop = set(SPECIAL_WORDS) if skip_symbols else ()

        def words(line):
            return [w for w in split_words(line) if w not in drop] if drop else split_words(line)

        for path in files:
            with open(path, "rb") as f:
                lines = f.read().decode("utf-8", "surrogateescape").split("\n")
            last = words(lines.pop())
            for line in lines:
                yield words(line)
            if last:
                yield last
        return
    tokens = _io.join_token_files(files, _io.token_dtype(dtype), separator)  # as score_files joins them
    if separator is None:
        if len(tokens):
            yield list(map(str, tokens.tolist()))
        return
    lo = 0
    for c in np.flatnonzero(tokens == separator).tolist():
        yield list(map(str, tokens[lo:c].tolist()))
        lo = c + 1
    if lo < len(tokens):  # tokens after the last separator: a sentence (scoring closes it)
        yield list(map(str, tokens[lo:].tolist()))


def _stream_sentences(ids: np.ndarray, is_sep: np.ndarray | None):
    """Model ids with each separator turned into ``</s>`` (and one closing the last sentence)."""
    n = len(ids)
    if is_sep is None:
        out = np.concatenate([ids, [EOS]]).astype(np.uint32) if n else np.zeros(0, np.uint32)
        starts = np.array([0, len(out)] if n else [0], np.int64)
        return out, starts, np.concatenate([np.zeros(n, bool), [False]]) if n else np.zeros(0, bool)
    out = ids.copy()
    out[is_sep] = EOS
    ends = np.flatnonzero(is_sep)
    if n and not is_sep[-1]:
        out = np.concatenate([out, np.array([EOS], np.uint32)])
        ends = np.concatenate([ends, [n]])
    starts = np.concatenate([[0], ends + 1]).astype(np.int64)
    return out, starts, None


#: Runs of sentences per thread that :func:`score_ids` deals out (a few each, so a thread with
#: long sentences does not hold the others up; each run allocates its scratch once).
SPANS_PER_THREAD = 8


def _text_ids(lm, sentences):
    """``(ids, starts, oov)`` of a list of str in one pass of the model's word vocabulary over
    their joined text (lmplz's tokenisation, as per word), or None where that pass would not
    read them as the per-word path does: a non-str entry, a lone surrogate, a special word's
    spelling (the pass refuses it) or a newline inside a sentence (one ``</s>`` too many)."""
    try:
        text = "\n".join(sentences)
    except TypeError:
        return None
    if not sentences:
        return np.zeros(0, np.uint32), np.zeros(1, np.int64), np.zeros(0, bool)
    try:
        data = (text + "\n").encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate: no word of the model, per word it is <unk>
        return None
    try:
        ids = lm.word_vocab().encode(data, oov="unk")
    except ValueError:  # <s>, </s> or <unk> spelled in a sentence
        return None
    ends = np.flatnonzero(ids == EOS)
    if len(ends) != len(sentences):
        return None
    starts = np.empty(len(ends) + 1, np.int64)
    starts[0] = 0
    starts[1:] = ends + 1
    return ids, starts, ids == UNK


def model_ids(lm, sentences, separator=None):
    """``(ids, starts, oov)``: the sentences as model ids with ``</s>`` closing each."""
    if isinstance(sentences, str):
        raise TypeError("sentences must be a list of sentences (str) or token ids, not one str")
    if isinstance(sentences, (list, tuple)) and (len(sentences) == 0 or isinstance(sentences[0], str)):
        fast = _text_ids(lm, sentences)
        if fast is not None:
            return fast
        table = lm.word_ids()
        pieces, starts = [], [0]
        for s in sentences:
            if not isinstance(s, str):
                raise TypeError(f"sentences: every sentence must be a str, got {type(s).__name__}")
            ws = [table.get(w, UNK) for w in split_words(s)]
            ws.append(EOS)
            pieces.extend(ws)
            starts.append(len(pieces))
        ids = np.array(pieces, np.uint32)
        oov = ids == UNK
        return ids, np.array(starts, np.int64), oov
    if isinstance(sentences, (list, tuple)):
        if not all(hasattr(s, "__len__") for s in sentences):
            raise TypeError(
                "sentences: a list must hold sentences (str, or sequences of token ids such as [[5, 6], [7]]); "
                "give a 1-D array for one stream of ids"
            )
        parts = [lm.encode_tokens(np.asarray(s) if len(s) else np.zeros(0, np.int64)) for s in sentences]
        ids = (
            np.concatenate([np.concatenate([p, np.array([EOS], np.uint32)]) for p in parts])
            if parts
            else np.zeros(0, np.uint32)
        )
        starts = np.concatenate([[0], np.cumsum([len(p) + 1 for p in parts])]).astype(np.int64)
        return ids, starts, ids == UNK
    tokens = _checks.as_token_stream(sentences, "sentences")
    mapped = lm.encode_tokens(tokens)
    is_sep = None
    if separator is not None:
        separator = _checks.check_separator(separator, int(np.iinfo(tokens.dtype).max) + 1)
        is_sep = np.asarray(tokens == separator)
    ids, starts, _ = _stream_sentences(mapped, is_sep)
    return ids, starts, ids == UNK


def score(lm, sentences, *, separator=None) -> Scores:
    """Scores of ``sentences`` (see :meth:`fastgram.lm.NGramLM.score`)."""
    ids, starts, oov = model_ids(lm, sentences, separator)
    return score_ids(lm, ids, starts, oov)


def score_ids(lm, ids, starts, oov=None) -> Scores:
    """Scores of sentences already as model ids (each ending in ``</s>``)."""
    index = lm.score_index()
    out = np.empty(len(ids), np.float64)
    matched = np.empty(len(ids), np.int8)
    if len(ids):
        n_spans = max(1, min(len(starts) - 1, SPANS_PER_THREAD * num_threads()))
        parallel_for(_k.score_sentences, n_spans, (*index, lm.order, ids, starts, BOS, out, matched, n_spans))
    return Scores(out, starts, ids == UNK if oov is None else oov, matched, ids)


def log10_prob(lm, word, context=()) -> float:
    """log10 p(word | context) for one word (words, or token ids for a token model)."""
    if isinstance(context, (str, bytes)):
        raise TypeError(f"context must be a sequence of words (e.g. ['the', 'cat']), not one {type(context).__name__}")
    context = list(context)
    if lm.token_ids is not None and not isinstance(word, str):
        raw = [_checks.require_int(t, f"context[{i}]", min=0) for i, t in enumerate(context)]
        raw.append(_checks.require_int(word, "word", min=0))
        past = np.array([t > _checks.INT64_MAX for t in raw])  # ids no corpus can hold: <unk>
        ids = lm.encode_tokens(np.array([0 if p else t for t, p in zip(raw, past)], np.int64))
        ids[past] = UNK
    else:
        for i, w in enumerate(context + [word]):
            name = "word" if i == len(context) else f"context[{i}]"
            if not isinstance(w, str):
                raise TypeError(f"{name} must be a str for a word model, got {type(w).__name__} {w!r}")
            if split_words(w) != [w] or "\n" in w:
                raise ValueError(f"{name} must be one word (no spaces, tabs, CR, NUL or newlines), got {w!r}")
        table = lm.word_ids()
        ids = np.array([table.get(w, UNK) for w in context + [word]], np.uint32)
    hist = min(len(ids) - 1, lm.order - 1)
    query = np.zeros((1, lm.order), np.uint32)
    rev = ids[::-1][: hist + 1]
    query[0, : hist + 1] = rev
    out = np.empty(1)
    index = lm.score_index()
    _k.score_queries(0, 1, *index, lm.order, query, np.array([hist], np.int64), out)  # one query: this thread
    return float(out[0])
