"""fastgram: Numba-jitted numeric kernels for tiny language models.

Counting n-grams over token streams and files, sampling and generation, and batched softmax
attention, each with a plain-NumPy reference (:mod:`fastgram.reference`) that
:func:`fastgram.check` compares it against.
"""

from fastgram import reference
from fastgram.attention import attention
from fastgram.counting import BigramCounter, NGramCounter, NGramCounts, count_bigrams, count_ngrams
from fastgram.files import count_file, count_files
from fastgram.lm import NGramLM, estimate_to_arpa
from fastgram.metrics import nll, perplexity
from fastgram.registry import check
from fastgram.sampling import (
    Sampler,
    bigram_probs,
    generate,
    multinomial,
    sample_logits,
    sample_next,
    uniform,
)
from fastgram.store import NGramStore
from fastgram.vocab import Vocab, WordVocab

__version__ = "0.1.0"

__all__ = ["check", "reference", "__version__", "count_bigrams", "BigramCounter", "count_file", "Vocab", "WordVocab"]
__all__ += ["count_ngrams", "NGramCounts", "NGramCounter", "count_files"]
__all__ += ["attention", "NGramLM", "estimate_to_arpa"]
__all__ += ["NGramStore"]
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
