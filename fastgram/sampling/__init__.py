"""Sampling and generation: categorical draws from count tables, probabilities and logits.

- :mod:`~fastgram.sampling.tables`: :class:`Sampler` (dense tables or sparse bigram counts,
  built once, drawn from many times) and :func:`bigram_probs`;
- :mod:`~fastgram.sampling.draws`: :func:`sample_next`, :func:`generate` (Markov chains) and
  :func:`uniform`;
- :mod:`~fastgram.sampling.logits`: :func:`sample_logits` and :func:`multinomial`.

Every random function takes ``seed=`` (keyword only) and draws from a counter-based generator
(:mod:`fastgram.kernels.random`): a draw depends only on the seed and its position, never on
the number of threads or how a batch is split, and :mod:`fastgram.reference` reproduces every
draw bit for bit.

How a draw becomes a category: the inverse CDF over the running sums of a row, so a category
of weight zero is never drawn, for any finite non-negative row (subnormal, huge or mixed
scales). Integer count tables are sampled exactly (an integer target in ``[0, total)``
against int64 running counts, no floating point); float tables use a 53-bit uniform times
the largest double below the float64 row total.
"""

from fastgram.sampling.draws import generate, sample_next, uniform
from fastgram.sampling.logits import multinomial, sample_logits
from fastgram.sampling.tables import Sampler, bigram_probs

__all__ = ["bigram_probs", "Sampler", "sample_next", "generate", "sample_logits", "multinomial", "uniform"]
