"""Exact n-gram counts of token arrays and streams.

- :mod:`~fastgram.counting.dense`: ``count_bigrams`` and ``BigramCounter``, dense ``(V, V)``
  tables for small vocabularies;
- :mod:`~fastgram.counting.sparse`: ``count_ngrams`` and ``NGramCounter``, sorted distinct
  n-grams (n = 1..8) for any vocabulary, in bounded memory;
- :mod:`~fastgram.counting.result`: ``NGramCounts``, the sparse result, saved as ``.npz``.

Files and shards are counted by :mod:`fastgram.files`.
"""

from fastgram.counting.dense import BigramCounter, count_bigrams
from fastgram.counting.result import NGramCounts
from fastgram.counting.sparse import NGramCounter, count_ngrams

__all__ = ["count_bigrams", "BigramCounter", "count_ngrams", "NGramCounter", "NGramCounts"]
