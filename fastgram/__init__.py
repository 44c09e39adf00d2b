"""fastgram: Numba-jitted numeric kernels for tiny language models.

Counting n-grams over token streams and files, sampling and generation, and batched softmax
attention, each with a plain-NumPy reference (:mod:`fastgram.reference`) that
:func:`fastgram.check` compares it against.
"""

from fastgram.attention import attention
from fastgram.check import check
from fastgram.corpus import count_file
from fastgram.counting import BigramCounter, count_bigrams
from fastgram.ngrams import NGramCounter, NGramCounts, count_files, count_ngrams
from fastgram.sampling import (
    Sampler,
    bigram_probs,
    generate,
    multinomial,
    nll,
    perplexity,
    sample_logits,
    sample_next,
    uniform,
)
from fastgram.vocab import Vocab

__version__ = "0.1.0"

__all__ = ["check", "__version__", "count_bigrams", "BigramCounter", "count_file", "Vocab"]
__all__ += ["count_ngrams", "NGramCounts", "NGramCounter", "count_files"]
__all__ += ["attention"]
__all__ += [
    "bigram_probs",
    "Sampler",
    "sample_next",
    "generate",
    "sample_logits",
    "multinomial",
    "nll",
    "perplexity",
    "uniform",
]
