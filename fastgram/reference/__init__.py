"""Plain-NumPy references: the executable specification of every kernel.

One function per public kernel, with the same signature and the same result. They are written
to be read, not to be fast: obvious NumPy, no tricks. They assume valid input (the public
wrappers check it) and may use O(N) memory. Tests and ``fastgram check`` compare each kernel
with its reference on the same inputs.
"""

from fastgram.reference.attention import attention
from fastgram.reference.counting import count_bigrams, count_ngrams, ngram_keys
from fastgram.reference.lm import lm_discounts, lm_estimate, lm_generate, lm_log10_prob, lm_perplexity, lm_score
from fastgram.reference.random import random_words, uniform, words_below, words_to_uniform
from fastgram.reference.sampling import (
    generate,
    multinomial,
    nll,
    penalized_logits,
    perplexity,
    sample_logits,
    sample_next,
)

__all__ = [
    "attention",
    "count_bigrams",
    "count_ngrams",
    "ngram_keys",
    "random_words",
    "uniform",
    "words_below",
    "words_to_uniform",
    "generate",
    "multinomial",
    "nll",
    "penalized_logits",
    "perplexity",
    "sample_logits",
    "sample_next",
    "lm_discounts",
    "lm_estimate",
    "lm_generate",
    "lm_log10_prob",
    "lm_perplexity",
    "lm_score",
]
