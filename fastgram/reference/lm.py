"""Interpolated modified Kneser-Ney, as KenLM's ``lmplz`` builds it, in plain Python.

This module is the specification of :mod:`fastgram.lm`. It works on dictionaries of word
tuples and reads as the formulas (Chen & Goodman 1998, eq. 26; Heafield et al. 2013); it is
slow and uses memory freely.

Words are any hashable values (strings, ints); ``"<s>"``, ``"</s>"`` and ``"<unk>"`` are the
special words. The model's vocabulary order is lmplz's: ``<unk>``, ``<s>``, ``</s>``, then the
corpus words in the order they first appear.

Estimation, for order ``N``:

1. Every sentence is padded as ``<s>`` * (N-1), its words, ``</s>``; the raw counts ``c`` of
   its N-grams are taken. The N-grams that start with two ``<s>`` are padding: they are not
   N-grams of the model, but their suffixes are lower-order n-grams (``<s> w ...``).
2. For each lower order ``n``: the n-grams are the length-n suffixes of the N-grams (minus
   those starting with two ``<s>``); the raw count of an n-gram is the sum of the counts of
   the N-grams ending with it; its *adjusted count* ``a`` is its raw count if it starts with
   ``<s>``, else the number of distinct ``(n+1)``-grams ending with it (its left extensions).
   The N-grams keep their raw counts. The unigrams ``<unk>`` and ``<s>`` are added with count 0.
3. Pruning (``prune[n-1] = t``): an n-gram whose raw count is ``<= t`` is pruned (the special
   unigrams never are). Pruned n-grams still count in the statistics and denominators; their
   mass goes to their context's backoff (lmplz's ``normalizer``).
4. Discounts of order n from ``t_k`` = the number of n-grams with adjusted count ``k``
   (k = 1..4, pruned ones included): ``Y = t1 / (t1 + 2 t2)``, ``D_k = k - (k + 1) Y
   t_{k+1} / t_k`` (k = 1, 2, 3; D_3 applies to counts >= 3). When a ``t_k`` (k <= 3) is zero
   or a ``D_k`` falls outside ``[0, k]`` the closed form is invalid: ``discount_fallback``
   (lmplz's default 0.5, 1, 1.5) replaces that order's discounts, or a ``ValueError`` names
   the option. One lmplz detail is kept so the numbers agree: the last n-gram of each lower
   order in lmplz's suffix order (compared from the last word back, by vocabulary order)
   enters the statistics with its raw count, not its adjusted count.
5. Per context ``h`` of order n (all its n-grams ``h w``, pruned ones included):
   ``denominator(h) = sum_w a(h w)``; ``gamma(h) = (D1 N1(h) + D2 N2(h) + D3 N3+(h) +
   pruned(h)) / denominator(h)`` where ``Nk(h)`` counts kept n-grams with adjusted count k
   (3+) and ``pruned(h)`` is the adjusted count of its pruned n-grams.
   ``u(h w) = (a(h w) - D(a(h w))) / denominator(h)``; ``u(<unk>) = 0``, ``u(<s>) = 1``.
6. Interpolation: ``p(w) = u(w) + gamma() / V`` with ``V`` = the kept unigrams minus ``<s>``
   (``<unk>`` included), ``p(w | h) = u(h w) + gamma(h) p(w | h[1:])``; ``p(<s>) = 1``.
7. ARPA: ``log10 p`` (at most 0) for every kept n-gram; the backoff of an n-gram of order
   ``< N`` is ``log10 gamma`` of it as a context, 0 when it is no context (ends in ``</s>``
   or ``<unk>``).

Scoring follows ARPA backoff: ``log10 p(w | h) = prob(h w)`` if ``h w`` is in the model, else
``backoff(h) + log10 p(w | h[1:])`` (``backoff(h) = 0`` when ``h`` is not in the model); an
unknown word is ``<unk>``.
"""

from __future__ import annotations

import math

import numpy as np

from fastgram.reference.random import random_words, words_below, words_to_uniform

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
SPECIALS = (UNK, BOS, EOS)
#: lmplz's --discount_fallback default: D1, D2, D3+.
DEFAULT_FALLBACK = (0.5, 1.0, 1.5)


def _vocab_order(sentences):
    """lmplz's word order: <unk>, <s>, </s>, then words by first appearance."""
    order = {UNK: 0, BOS: 1, EOS: 2}
    for sentence in sentences:
        for w in sentence:
            if w not in order:
                order[w] = len(order)
    return order


def _full_counts(sentences, N):
    counts = {}
    for sentence in sentences:
        padded = [BOS] * (N - 1) + list(sentence) + [EOS]
        for i in range(len(padded) - N + 1):
            g = tuple(padded[i : i + N])
            counts[g] = counts.get(g, 0) + 1
    return counts


def _is_padding(g):
    """An n-gram starting with two <s> (only the N-1 <s> of the padding can do that)."""
    return len(g) >= 2 and g[0] == BOS and g[1] == BOS


def _suffix_key(g, rank):
    return tuple(rank[w] for w in reversed(g))


def lm_discounts(t, fallback=None, order=None):
    """``(D1, D2, D3+)`` from the counts of adjusted counts ``t = [t1, t2, t3, t4]``."""
    t1, t2, t3, t4 = t
    bad = None
    if t1 == 0 or t2 == 0 or t3 == 0:
        bad = "a count of adjusted counts is zero"
    else:
        y = t1 / (t1 + 2 * t2)
        d = tuple(k - (k + 1) * y * tk1 / tk for k, tk, tk1 in ((1, t1, t2), (2, t2, t3), (3, t3, t4)))
        if any(dk < 0 or dk > k for k, dk in zip((1, 2, 3), d)):
            bad = f"discounts {d} out of range"
    if bad is None:
        return d
    if fallback is None:
        raise ValueError(f"order {order}: cannot compute Kneser-Ney discounts ({bad}); pass discount_fallback")
    if fallback is True:
        fallback = DEFAULT_FALLBACK
    return tuple(float(x) for x in fallback)


def lm_estimate(sentences, order, *, prune=None, discount_fallback=None):
    """Interpolated modified Kneser-Ney of ``sentences`` (lists of words), as lmplz does it.

    Returns a dict: ``order``, ``vocab`` (words in model order), ``discounts`` (one
    ``(D1, D2, D3+)`` per order), ``ngrams`` (``{n: {ngram: (log10 prob, log10 backoff)}}``,
    backoff 0.0 at the highest order), ``u`` (``{ngram: u}``), ``gamma`` (``{context: gamma}``,
    the empty tuple for the unigrams' context) and ``counts`` (``{n: {ngram: adjusted count}}``).
    """
    N = int(order)
    sentences = [list(s) for s in sentences]
    rank = _vocab_order(sentences)
    thresholds = list(prune or [0])
    thresholds = thresholds + [thresholds[-1]] * (N - len(thresholds))

    # 1-2: raw counts of every order from the N-grams; adjusted counts
    raw = {N: _full_counts(sentences, N)}
    ext = {}
    for n in range(N - 1, 0, -1):
        raw[n], ext[n] = {}, {}
        for g, c in raw[n + 1].items():
            s = g[1:]
            raw[n][s] = raw[n].get(s, 0) + c
            ext[n][s] = ext[n].get(s, 0) + 1
    adjusted = {}
    for n in range(1, N + 1):
        adjusted[n] = {}
        for g, c in raw[n].items():
            if _is_padding(g):
                continue
            adjusted[n][g] = c if (n == N or g[0] == BOS) else ext[n][g]
    for special in (UNK, BOS):
        adjusted[1][(special,)] = 0
        raw[1][(special,)] = 0

    # 3: pruning by raw count
    pruned = {}
    for n in adjusted:
        pruned[n] = set()
        for g in adjusted[n]:
            special = n == 1 and g[0] in SPECIALS
            if raw[n][g] <= thresholds[n - 1] and not special:
                pruned[n].add(g)

    # 4: discounts
    discounts = []
    for n in range(1, N + 1):
        stat_count = dict(adjusted[n])
        if n < N:  # lmplz: the last n-gram in suffix order enters with its raw count
            last = max(raw[n], key=lambda g: _suffix_key(g, rank))
            if last in stat_count:
                stat_count[last] = raw[n][last]
        t = [sum(1 for c in stat_count.values() if c == k) for k in (1, 2, 3, 4)]
        discounts.append(lm_discounts(t, discount_fallback, n))

    def discount(n, c):
        return 0.0 if c == 0 else discounts[n - 1][min(c, 3) - 1]

    # 5: uninterpolated probabilities and interpolation weights
    u, gamma = {}, {}
    for n in range(1, N + 1):
        denominator, mass = {}, {}
        for g, a in adjusted[n].items():
            h = g[:-1]
            denominator[h] = denominator.get(h, 0) + a
            if g in pruned[n]:
                mass[h] = mass.get(h, 0.0) + a
            elif a > 0:
                mass[h] = mass.get(h, 0.0) + discount(n, a)
        for h in denominator:
            gamma[h] = mass.get(h, 0.0) / denominator[h]
        for g, a in adjusted[n].items():
            if g not in pruned[n]:
                u[g] = (a - discount(n, a)) / denominator[g[:-1]]
    u[(UNK,)] = 0.0
    u[(BOS,)] = 1.0

    # 6: interpolation
    kept = {n: [g for g in adjusted[n] if g not in pruned[n]] for n in adjusted}
    V = len(kept[1]) - 1
    p = {}
    for n in range(1, N + 1):
        for g in kept[n]:
            lower = 1.0 / V if n == 1 else p[g[1:]]
            weight = 0.0 if g == (BOS,) else gamma[g[:-1]]
            p[g] = u[g] + weight * lower

    # 7: ARPA values
    ngrams = {}
    for n in range(1, N + 1):
        ngrams[n] = {}
        for g in kept[n]:
            logp = min(0.0, math.log10(p[g]))
            if n < N and g[-1] not in (EOS, UNK) and g in gamma:
                logb = math.log10(gamma[g])
            else:
                logb = 0.0
            ngrams[n][g] = (logp, logb)
    vocab = sorted(rank, key=rank.get)
    vocab = [w for w in vocab if (w,) in ngrams[1]]
    return {
        "order": N,
        "vocab": vocab,
        "discounts": discounts,
        "ngrams": ngrams,
        "u": {g: u[g] for n in kept for g in kept[n]},
        "gamma": gamma,
        "counts": {n: {g: adjusted[n][g] for g in kept[n]} for n in kept},
    }


def lm_log10_prob(ngrams, order, context, word):
    """ARPA backoff: ``log10 p(word | context)`` from ``{n: {ngram: (prob, backoff)}}``."""
    context = tuple(context)[-(order - 1) :] if order > 1 else ()
    if (word,) not in ngrams[1]:
        word = UNK
    total = 0.0
    for start in range(len(context) + 1):
        h = context[start:]
        g = h + (word,)
        entry = ngrams[len(g)].get(g)
        if entry is not None:
            return total + entry[0]
        if h:
            total += ngrams[len(h)].get(h, (0.0, 0.0))[1]
    raise AssertionError("unreachable: every unigram is in the model")


def lm_score(model, sentences):
    """Per sentence: the list of log10 probabilities of its words and of ``</s>``.

    The context starts at ``<s>``; words not in the model are ``<unk>`` (as KenLM scores them).
    """
    N, ngrams = model["order"], model["ngrams"]
    out = []
    for sentence in sentences:
        context = [BOS]
        scores = []
        for w in list(sentence) + [EOS]:
            scores.append(lm_log10_prob(ngrams, N, context, w))
            context.append(w if (w,) in ngrams[1] else UNK)
        out.append(scores)
    return out


def lm_perplexity(model, sentences):
    """``(perplexity including OOVs, perplexity excluding OOVs, OOVs, tokens)`` as KenLM's query."""
    scores = lm_score(model, sentences)
    vocab = model["ngrams"][1]
    total = sum(sum(s) for s in scores)
    oov_total, oovs, tokens = 0.0, 0, 0
    for sentence, s in zip(sentences, scores):
        tokens += len(s)
        for w, x in zip(sentence, s):
            if (w,) not in vocab:
                oovs += 1
                oov_total += x
    including = 10.0 ** (-total / tokens)
    excluding = 10.0 ** (-(total - oov_total) / (tokens - oovs)) if tokens > oovs else float("nan")
    return including, excluding, oovs, tokens


# ---------------------------------------------------------------------------------------------
# generation
# ---------------------------------------------------------------------------------------------


def lm_generate(tables, order, n_sentences, max_length, *, seed, offset=0):
    """Sentences drawn from the interpolated distribution, as :meth:`fastgram.lm.NGramLM.generate`.

    ``tables`` describes the mixture: ``tables["words"][h]`` and ``tables["u"][h]`` are the
    words ``w`` with ``u(h w) > 0`` in increasing model id and their ``u``; ``tables["gamma"][h]``
    the interpolation weight of context ``h`` (tuples of model ids); ``tables["V"]`` the size
    of the uniform distribution (model ids 0 and 2..V, i.e. every word but ``<s>`` = 1).

    Draw ``t`` of sentence ``s`` at level ``k`` (k = 0 for the longest context, one level per
    context length whether the model has that context or not) uses the 64-bit word at stream
    ``offset + s``, index ``t * (order + 1) + k``. At a level with context ``h`` (present in the
    tables), with running sums ``S`` of ``u(h .)`` and ``total = S[-1] + gamma(h)``: the target
    is ``uniform * total``; the first ``j`` with ``S[j] > target`` is the word; no such ``j``
    backs off to ``h[1:]``. Past the unigrams, ``j = below(word at index t * (order + 1) +
    order, V)`` picks uniformly among the V words other than ``<s>``. A sentence ends at
    ``</s>`` (not returned) or after ``max_length`` words.
    """
    BOS_ID, EOS_ID = 1, 2
    stride = order + 1
    out = []
    for s in range(n_sentences):
        stream = offset + s
        history = [BOS_ID] * (order - 1)
        sentence = []
        for t in range(max_length):
            h = tuple(history[len(history) - (order - 1) :]) if order > 1 else ()
            word = None
            for k in range(order):  # context lengths order-1, ..., 0
                if h in tables["gamma"]:
                    r = float(words_to_uniform(random_words(seed, stream, t * stride + k))[0])
                    sums = np.cumsum(np.asarray(tables["u"][h], dtype=np.float64))
                    last = sums[-1] if len(sums) else 0.0
                    target = r * (last + tables["gamma"][h])
                    j = int(np.searchsorted(sums, target, side="right"))
                    if j < len(sums):
                        word = tables["words"][h][j]
                        break
                h = h[1:]
            if word is None:
                j = int(words_below(random_words(seed, stream, t * stride + order), tables["V"])[0])
                word = 0 if j == 0 else j + 1
            if word == EOS_ID:
                break
            sentence.append(word)
            history.append(word)
        out.append(sentence)
    return out
