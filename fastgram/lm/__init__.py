"""n-gram language models: interpolated modified Kneser-Ney exactly as KenLM's ``lmplz``.

- :class:`NGramLM` — :meth:`~NGramLM.estimate` from token ids or words, ARPA
  (:meth:`~NGramLM.write_arpa`, :meth:`~NGramLM.read_arpa`), binary ``.npz``
  (:meth:`~NGramLM.save`, :meth:`~NGramLM.load`), :meth:`~NGramLM.score` /
  :meth:`~NGramLM.perplexity` (KenLM's numbers) and :meth:`~NGramLM.generate`.
- :func:`estimate_to_arpa` — files to an ARPA file, each order written as it is finished
  (the model never held whole: ``fastgram lm``).
- :class:`Scores` — per-token scores, KenLM ``query``'s summary and per-sentence lines;
  :func:`sentence_words` reads the words of scored files back for its word-level lines.
- :mod:`fastgram.lm.estimate` — the sort/scan pipeline; :mod:`fastgram.lm.arpa`,
  :mod:`fastgram.lm.score`, :mod:`fastgram.lm.generate`.

The specification is :mod:`fastgram.reference.lm`.
"""

from fastgram.lm.model import NGramLM, estimate_to_arpa
from fastgram.lm.score import Scores, sentence_words

__all__ = ["NGramLM", "Scores", "estimate_to_arpa", "sentence_words"]
