"""``NGramLM``: an interpolated modified Kneser-Ney n-gram model (lmplz's), its files and uses."""

from __future__ import annotations

import contextlib
import os

import numpy as np

from fastgram import _checks, _io
from fastgram._io import atomic_output, read_npz
from fastgram._jit import parallel_for
from fastgram.kernels import lm as _k
from fastgram.lm import arpa as _arpa
from fastgram.lm import estimate as _est
from fastgram.lm import generate as _gen
from fastgram.lm import score as _score
from fastgram.lm.words import split_words
from fastgram.vocab import WordVocab, is_packed, pack_words, select_packed, unpack_words

FORMAT = "fastgram.NGramLM"
FORMAT_VERSION = 2  # 1: the words as a str array (loaded still); 2: the words packed
#: How far above 0 a saved log10 probability may be (rounding of p = 1).
LOG10_SLACK = 1e-9
SPECIAL_WORDS = ("<unk>", "<s>", "</s>")


#: Node ids of the scoring index are below this (32 bits, all ones marks an empty slot).
_NODE_LIMIT = (1 << 32) - 1


def _one_buffer(parts, dtype) -> np.ndarray:
    """The arrays ``parts`` raveled end to end, (total,) ``dtype``: the buffer they already are
    when they are consecutive C-contiguous pieces of one array (as :meth:`NGramLM.read_arpa`
    leaves them: no copy), else their concatenation."""
    pieces = [p.reshape(-1) for p in parts]
    root = pieces[0].base if pieces else None
    if (
        isinstance(root, np.ndarray)
        and root.ndim == 1
        and root.dtype == dtype
        and root.flags.c_contiguous
        and all(p.base is root and p.flags.c_contiguous and p.dtype == dtype for p in pieces)
    ):
        at = [p.__array_interface__["data"][0] for p in pieces]
        ends = [a + p.nbytes for a, p in zip(at, pieces)]
        if all(at[i + 1] == ends[i] for i in range(len(pieces) - 1)):
            start = (at[0] - root.__array_interface__["data"][0]) // root.itemsize
            return root[start : start + sum(p.size for p in pieces)]
    return np.concatenate(pieces).astype(dtype, copy=False) if pieces else np.zeros(0, dtype)


def _sort_reversed(grams: np.ndarray):
    """Reversed rows of forward n-grams, sorted (suffix order), the permutation applied, and
    whether two rows are equal. Rows already in order (lmplz's files) are not sorted again."""
    R = np.ascontiguousarray(grams[:, ::-1]).astype(np.uint32, copy=False)
    state = _k.rows_order(R) if len(R) > 1 else 1
    if state >= 0:
        return R, None, state == 0
    perm = np.lexsort(R.T[::-1])
    R = R[perm]
    return R, perm, _k.rows_order(R) == 0


class NGramLM:
    """An n-gram language model with ARPA semantics (log10 probabilities and backoffs).

    Build one with :meth:`estimate` (interpolated modified Kneser-Ney exactly as KenLM's
    ``lmplz``), :meth:`read_arpa` or :meth:`load`. Model ids: ``<unk>`` = 0, ``<s>`` = 1,
    ``</s>`` = 2, then the words in the order they first appear in the corpus.

    Attributes
    ----------
    order : int
    words : list of str
        The word of each model id (a token model's words are its ids in decimal).
    token_ids : ndarray of int64 or None
        The corpus token id of each model id (-1 for the special words) when the model was
        estimated from token ids; ``None`` for a word model.
    discounts : ndarray (order, 3) or None
        D1, D2, D3+ per order (estimated models).
    sizes : list of int
        The number of n-grams of each order.

    Examples
    --------
    >>> from fastgram.lm import NGramLM
    >>> lm = NGramLM.estimate(["a b a", "b a b", "a a b"], 2, discount_fallback=True)
    >>> lm.sizes
    [5, 7]
    >>> round(float(lm.score(["a b"]).totals[0]), 4)
    -1.6923
    """

    def __init__(self, order, words, rows, prob, backoff, *, token_ids=None, discounts=None, u=None):
        self.order = _est.check_order(order)
        if is_packed(words):  # (data, offsets): Python strings only when asked for
            self._words, self._packed = None, (np.asarray(words[0], np.uint8), np.asarray(words[1], np.int64))
        else:
            self._words, self._packed = list(words), None
        self.rows = [np.ascontiguousarray(r, dtype=np.uint32) for r in rows]
        self.prob = [np.ascontiguousarray(p, dtype=np.float64) for p in prob]
        self.backoff = [np.ascontiguousarray(b, dtype=np.float64) for b in backoff]
        self.token_ids = None if token_ids is None else np.asarray(token_ids, np.int64)
        self.discounts = None if discounts is None else np.asarray(discounts, np.float64)
        self._u = None if u is None else [np.asarray(x, np.float64) for x in u]
        self._word_ids = None
        self._lookup = None
        self._vocab = None
        self._tables = None
        self._index = None
        self._gen_tables = None

    # -- construction -----------------------------------------------------------------------

    @classmethod
    def estimate(
        cls,
        corpus,
        order: int,
        *,
        separator=None,
        vocab=None,
        prune=None,
        discount_fallback=None,
        max_memory=None,
        tmp_dir=None,
        chunk_tokens=None,
        keep_u=True,
    ) -> "NGramLM":
        """Estimate an interpolated modified Kneser-Ney model exactly as ``lmplz -o order``.

        Parameters
        ----------
        corpus : array_like of int, list of str, or list of sequences of int
            - a 1-D token array (any integer dtype, ``np.memmap`` included): a stream of
              sentences split at ``separator`` (without one, the stream is one sentence);
            - with ``vocab`` (a :class:`fastgram.vocab.WordVocab`): an id stream from
              ``vocab.encode``, each sentence ended by ``</s>`` (id 2);
            - a list of str: one sentence per item, words split at spaces, tabs, CR and NUL;
            - a list of int sequences: one sentence per item.
            Each sentence gets lmplz's context: ``<s>`` * (order - 1) before it and ``</s>``
            after it. A trailing separator does not start an empty sentence; two separators
            in a row make an empty sentence (as an empty line does for lmplz).
        order : int
            1 to 8.
        separator : int, optional
            The sentence-boundary id of a token stream (not a word of the model).
        vocab : WordVocab, optional
            The vocabulary of an encoded word stream (``separator`` is then 2).
        prune : int or list of int, optional
            lmplz's ``--prune``: n-grams of order n seen at most ``prune[n-1]`` times are
            dropped (their mass goes to the backoff); non-decreasing, at most ``order`` values,
            the last repeated. The special unigrams are never pruned.
        discount_fallback : bool or up to 3 floats
            lmplz's ``--discount_fallback``: ``True`` for 0.5, 1, 1.5, used for the orders
            whose closed-form discounts are invalid (small or artificial corpora). Without it
            such corpora raise ``ValueError``.
        max_memory : int or str, optional
            Budget of the counting stage (sorted runs beyond it spill under ``tmp_dir``).
            Default: 2 GiB or a quarter of the machine's memory, the smaller
            (:data:`fastgram.lm.estimate.DEFAULT_MAX_MEMORY`).
        tmp_dir : str, optional
            Where the spilled runs and the counted n-grams' scratch files go (``4N + 8`` bytes
            per distinct N-gram; default: the system's temporary directory). Removed however
            the estimation ends.
        chunk_tokens : int, optional
            Tokens per counting chunk (default 16 Mi).
        keep_u : bool, default True
            Keep the uninterpolated probabilities of the estimate (:meth:`u`, 8 bytes an n-gram,
            what :meth:`generate` and :meth:`save` use). ``False`` (``fastgram lm`` writing
            ARPA): they are not kept, and :meth:`u` derives them from the log10 probabilities
            and backoffs when asked (equal to rounding).

        Raises
        ------
        ValueError
            ``order`` outside 1..8; bad ``prune``; invalid discounts without
            ``discount_fallback`` (the message names it); an empty corpus; a key space beyond
            2**32 ids (wider keys are counted in 2-4 words up to that).

        Notes
        -----
        Memory: the counting stage is bounded by ``max_memory`` (sorted runs spill to
        ``tmp_dir``; bounded by default too), one uint64 key word per N-gram up to 64 bits and
        2-4 words beyond (word 5-grams). The counted N-grams then wait in scratch files under ``tmp_dir``, read back
        a block at a time, and what must fit in memory is the model itself (``4n + 24`` bytes
        per n-gram: ids, log10 p, backoff and u; ``4n + 16`` with ``keep_u=False``) and, for
        the order being estimated, its adjusted counts, parents and pruning marks (13 bytes per
        n-gram) and its contexts' sums; :func:`fastgram.lm.estimate_to_arpa` writes each order
        to an ARPA file as it is finished instead of holding the model. A stream that only the
        estimation holds (:meth:`estimate_files`' ids and vocabulary) is freed once counted,
        and a text model keeps its words as UTF-8 bytes until :attr:`words` is first read.
        See :mod:`fastgram.lm.estimate`.

        ``<unk>``: a corpus has no unknown words (the vocabulary is what occurs); ``<unk>``
        gets the interpolation mass ``gamma / V`` of the unigrams, as in lmplz, and scoring
        maps every word the model does not know to it.
        """
        options = _options(order, prune, discount_fallback, max_memory, tmp_dir, chunk_tokens, keep_u)
        return cls._from_corpus(corpus, separator, vocab, options)

    @classmethod
    def _from_corpus(cls, corpus, separator, vocab, options, arpa=None):
        """:meth:`estimate` with its options checked (``arpa``: see :meth:`_from_stream`)."""
        words = None
        if vocab is not None:
            tokens, separator, words = _vocab_stream(corpus, vocab), _est.EOS, vocab
        elif isinstance(corpus, (list, tuple)) and (
            len(corpus) == 0 or isinstance(corpus[0], str) or not np.isscalar(corpus[0])
        ):
            tokens, separator, words = _sentences_to_stream(corpus)
        else:
            tokens = _checks.as_token_stream(corpus, "corpus")
            if tokens.shape[0] and (np.iinfo(tokens.dtype).min < 0 or tokens.dtype.itemsize == 8):
                # negative ids, and uint64 ids past int64 (the model's token ids are int64)
                limit = min(int(np.iinfo(tokens.dtype).max), _checks.INT64_MAX) + 1
                _checks.check_token_range(tokens, limit, name="corpus")
            if separator is not None:  # one the stream's dtype can hold, or it never occurs
                separator = _checks.check_separator(separator, int(np.iinfo(tokens.dtype).max) + 1)
        held = [tokens, words]
        del tokens, words
        return cls._from_stream(held, separator, arpa=arpa, **options)

    @classmethod
    def _from_stream(
        cls, held, separator, *, order, prune, fallback, max_memory, tmp_dir, chunk_tokens, keep_u, arpa=None
    ):
        """The model of ``held = [tokens, words]`` (emptied, so that a stream and vocabulary
        nobody else holds are freed once counted and named). ``words``: None (a token model),
        a :class:`fastgram.vocab.WordVocab` (``tokens`` its ids, sentences ended by ``</s>``)
        or a list of str (the names of the stream's ids).

        ``arpa``: a path; the model is written there as an ARPA file order by order while it
        is estimated (:class:`fastgram.lm.arpa.ArpaWriter`), never held whole, and the n-grams
        of each order written are returned instead of a model."""
        tokens, words = held
        held.clear()
        lookup, token_ids = _est.vocabulary(tokens, separator, chunk_tokens)
        V = len(token_ids)
        _est.check_key_space(V + 1, order)
        n_sentences = _count_sentences(tokens, separator)
        if n_sentences == 0:
            raise ValueError("corpus: no sentences to estimate a model from")
        close_last = not isinstance(words, WordVocab)
        if words is None:
            names, ids = list(SPECIAL_WORDS) + list(map(str, token_ids[3:].tolist())), token_ids
        elif isinstance(words, WordVocab):  # the model's words as bytes: no Python strings
            names, ids = words.concatenated(np.concatenate([np.arange(3), token_ids[3:]])), None
        else:
            names, ids = list(SPECIAL_WORDS) + list(map(words.__getitem__, token_ids[3:].tolist())), None
        del words  # a vocabulary is no longer needed
        stream = [tokens]
        del tokens  # count_padded lets the stream go before it merges the counts
        with _io.temporary_directory("fastgram-lm-", tmp_dir) as scratch:
            counted = _est.count_padded(
                stream,
                lookup,
                separator,
                order,
                V,
                directory=scratch,
                max_memory=max_memory,
                tmp_dir=tmp_dir,
                chunk_tokens=chunk_tokens,
                close_last=close_last,
            )
            del lookup
            if arpa is not None:
                return _estimate_into_arpa(arpa, counted, order, V, prune, fallback, names)
            arrays = _est.kneser_ney(counted, order, V, prune, fallback, keep_u)
        names, ids = _without_pruned_words(arrays["rows"], names, ids)
        return cls(
            order,
            names,
            arrays["rows"],
            arrays["prob"],
            arrays["backoff"],
            token_ids=ids,
            discounts=arrays["discounts"],
            u=arrays["u"],
        )

    @classmethod
    def estimate_files(
        cls, paths, order: int, *, dtype=None, separator=None, skip_symbols: bool = False, **options
    ) -> "NGramLM":
        """Estimate from files: text (one sentence per line, lmplz's tokenisation) or raw tokens.

        Parameters
        ----------
        paths : str, os.PathLike or list of them
            Text files (``dtype=None``) are read with :class:`fastgram.vocab.WordVocab`; raw
            token files (``dtype="uint16"`` etc.) are memory-mapped (one file) or joined with
            ``separator`` between them (several; none is added after a file that already ends
            with it, so a shard's edge makes no empty sentence).
        options
            As :meth:`estimate` (``prune``, ``discount_fallback``, ``max_memory``...).

        Notes
        -----
        Text: the vocabulary is built in one pass and the id stream (4 bytes per word) is held in
        memory until it is counted; a last line without a newline gets no ``</s>``, as in lmplz.
        Several token files are joined in memory (their dtype's bytes per token) until counted;
        one is memory-mapped.
        """
        return cls._from_files(paths, order, dtype, separator, skip_symbols, options)

    @classmethod
    def _from_files(cls, paths, order, dtype, separator, skip_symbols, options, arpa=None):
        """:meth:`estimate_files` (``arpa``: see :meth:`_from_stream`)."""
        files = _io.expand_paths(paths)
        _check_skip_symbols(skip_symbols, dtype)
        if dtype is None:
            if separator is not None:
                raise ValueError("separator is for raw token files (dtype=...); text files end sentences at newlines")
            options = _options(order, **options)
            vocab = WordVocab()  # built while encoding: one pass over the text
            held = [_vocab_stream(vocab.encode_files(files, oov="add", skip_symbols=skip_symbols), vocab), vocab]
            del vocab  # only `held` holds the ids and the vocabulary: freed once used
            return cls._from_stream(held, _est.EOS, arpa=arpa, **options)
        dt = _io.token_dtype(dtype)
        if len(files) == 1:  # memory-mapped (a stream: read)
            return cls._from_corpus(_io.read_tokens(files[0], dt), separator, None, _options(order, **options), arpa)
        if separator is None:
            raise ValueError("several raw token files need separator= (--separator: the boundary put between them)")
        separator = _checks.check_separator(separator, int(np.iinfo(dt).max) + 1)
        options = _options(order, **options)
        held = [_io.join_token_files(files, dt, separator), None]  # unsigned ids: nothing more to check
        return cls._from_stream(held, separator, arpa=arpa, **options)  # the stream is freed once counted

    def word_vocab(self):
        """A :class:`fastgram.vocab.WordVocab` whose ids are this model's ids."""
        if self._vocab is None:
            if self._words is None:  # from the packed words: no Python strings
                self._vocab = WordVocab.from_concatenated(*self._packed)
            else:
                self._vocab = WordVocab(self._words)
        return self._vocab

    def score_files(self, paths, *, dtype=None, separator=None, skip_symbols: bool = False):
        """Scores of text files (one sentence per line) or raw token files (``dtype``, ``separator``).

        Text with the words ``<s>``, ``</s>`` or ``<unk>`` raises ``ValueError`` unless
        ``skip_symbols=True`` (they are dropped, as lmplz's ``--skip_symbols``).
        Memory: the files' ids (4 bytes per token) and the scores (about 10 bytes per token).
        """
        files = _io.expand_paths(paths)
        _check_skip_symbols(skip_symbols, dtype)
        if dtype is None:
            if self.token_ids is not None:
                _check_decimal_text(files)
            ids = self.word_vocab().encode_files(files, oov="unk", skip_symbols=skip_symbols)
            ids, starts, _ = _score._stream_sentences(ids, ids == _score.EOS)
            return _score.score_ids(self, ids, starts)
        dt = _io.token_dtype(dtype)
        if separator is not None:  # before it is put between the files
            separator = _checks.check_separator(separator, int(np.iinfo(dt).max) + 1)
        return self.score(_io.join_token_files(files, dt, separator), separator=separator)

    @classmethod
    def read_arpa(cls, path) -> "NGramLM":
        """Read an ARPA file (lmplz's, or any with ``<s>`` and ``</s>``); errors name the line.

        Words that are all decimal numbers (``0`` to ``2**63 - 1``, no leading zeros) make it a
        token model (``token_ids`` set), as fastgram writes a model of token ids.
        """
        order, words, grams, prob, backoff = _arpa.read_arpa(path)
        rows, probs, backs = [], [], []
        for n in range(order):
            R, perm, repeated = _sort_reversed(grams[n])
            if repeated:
                same = np.flatnonzero((R[1:] == R[:-1]).all(axis=1))[0]
                text = " ".join(unpack_words(*select_packed(*words, R[same][::-1])))
                raise ValueError(f"{os.fspath(path)}: the {n + 1}-gram {text!r} appears twice")
            rows.append(R)
            probs.append(prob[n] if perm is None else prob[n][perm])
            backs.append(backoff[n] if perm is None else backoff[n][perm])
        return cls(order, words, rows, probs, backs, token_ids=_decimal_token_ids(words))

    def write_arpa(self, path) -> None:
        """Write the model as an ARPA file (atomically: a temporary file renamed at the end)."""
        _arpa.write_arpa(path, self.order, self.packed_words(), self.rows, self.prob, self.backoff)

    # -- binary files -----------------------------------------------------------------------

    def save(self, path) -> None:
        """Save as ``.npz`` (NumPy-loadable, no pickles), atomically.

        Fields: ``format`` (``"fastgram.NGramLM"``), ``version`` (2), ``order``,
        ``words_data`` and ``words_offsets`` (the words in model id order as UTF-8 bytes end
        to end, uint8, and where each starts, int64 ``(V + 1,)``: :meth:`packed_words`),
        ``token_ids`` (int64, or absent), ``discounts`` (or absent), and per order n:
        ``rows_n`` (uint32 (m, n), reversed n-grams sorted), ``prob_n``, ``backoff_n``
        (float64 log10) and ``u_n`` (float64, estimated models only). Version 1 files (the
        words as a str array) still load.
        """
        data, offsets = self.packed_words()
        fields = {
            "format": np.array(FORMAT),
            "version": np.array(FORMAT_VERSION),
            "order": np.array(self.order),
            "words_data": data,
            "words_offsets": offsets,
        }
        if self.token_ids is not None:
            fields["token_ids"] = self.token_ids
        if self.discounts is not None:
            fields["discounts"] = self.discounts
        for n in range(1, self.order + 1):
            fields[f"rows_{n}"] = self.rows[n - 1]
            fields[f"prob_{n}"] = self.prob[n - 1]
            fields[f"backoff_{n}"] = self.backoff[n - 1]
            if self._u is not None:
                fields[f"u_{n}"] = self._u[n - 1]
        path = os.fspath(path)
        with atomic_output(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **fields)

    @classmethod
    def load(cls, path) -> "NGramLM":
        """Load a model saved by :meth:`save`, checking every field (``ValueError`` names it)."""
        path = os.fspath(path)
        base = {"format", "version", "order"}
        fields = read_npz(path, base, set(), what="NGramLM")
        if str(fields["format"]) != FORMAT:
            raise ValueError(f"{path}: field 'format' is {str(fields['format'])!r}, not {FORMAT!r}")
        version = fields["version"]
        if version.shape != () or version.dtype.kind not in "iu" or int(version) not in (1, FORMAT_VERSION):
            raise ValueError(f"{path}: field 'version' must be 1 or {FORMAT_VERSION}, got {fields['version']}")
        if fields["order"].shape != () or fields["order"].dtype.kind not in "iu" or not 1 <= int(fields["order"]) <= 8:
            raise ValueError(f"{path}: field 'order' must be an integer in 1..8, got {fields['order']}")
        N = int(fields["order"])
        per_order = {f"{k}_{n}" for n in range(1, N + 1) for k in ("rows", "prob", "backoff")}
        optional = {"token_ids", "discounts"} | {f"u_{n}" for n in range(1, N + 1)}
        words_fields = {"words"} if int(version) == 1 else {"words_data", "words_offsets"}
        fields = read_npz(path, base | words_fields | per_order, optional, what="NGramLM")
        vocab = _loaded_vocab(path, fields)  # checks the words: specials first, no blanks, no repeats
        V = len(vocab)
        rows, probs, backs, us = [], [], [], []
        for n in range(1, N + 1):
            R, p, b = fields[f"rows_{n}"], fields[f"prob_{n}"], fields[f"backoff_{n}"]
            if R.dtype != np.uint32 or R.ndim != 2 or R.shape[1] != n:
                raise ValueError(f"{path}: field 'rows_{n}' must be uint32 of shape (m, {n}), got {R.dtype} {R.shape}")
            m = R.shape[0]
            if m and int(R.max()) >= V:
                raise ValueError(f"{path}: field 'rows_{n}' has word id {int(R.max())} outside the {V} words")
            if m > 1:
                d = np.diff(R.astype(np.int64), axis=0)
                nz = d != 0
                firstnz = np.argmax(nz, axis=1)
                if not (nz.any(axis=1) & (d[np.arange(m - 1), firstnz] > 0)).all():
                    raise ValueError(f"{path}: field 'rows_{n}' is not strictly increasing (sorted reversed n-grams)")
            for name, arr in ((f"prob_{n}", p), (f"backoff_{n}", b)):
                if arr.dtype != np.float64 or arr.shape != (m,) or not np.isfinite(arr).all():
                    raise ValueError(f"{path}: field {name!r} must be finite float64 of shape ({m},)")
            if m and p.max() > LOG10_SLACK:
                raise ValueError(f"{path}: field 'prob_{n}' holds a log10 probability above 0 ({p.max():.6g})")
            rows.append(R)
            probs.append(p)
            backs.append(b)
            if f"u_{n}" in fields:
                u = fields[f"u_{n}"]
                if u.dtype != np.float64 or u.shape != (m,) or not (np.isfinite(u).all() and (u >= 0).all()):
                    raise ValueError(f"{path}: field 'u_{n}' must be finite, non-negative float64 of shape ({m},)")
                us.append(u)
        if len(rows[0]) != V or not (rows[0][:, 0] == np.arange(V)).all():
            raise ValueError(f"{path}: field 'rows_1' must list every word id once")
        token_ids = fields.get("token_ids")
        if token_ids is not None:
            if token_ids.dtype != np.int64 or token_ids.shape != (V,):
                raise ValueError(f"{path}: field 'token_ids' must be int64 of shape ({V},)")
            rest = token_ids[3:]
            if (token_ids[:3] != -1).any() or (rest < 0).any() or len(np.unique(rest)) != len(rest):
                what = "-1 for the 3 special words, then distinct ids >= 0"
                raise ValueError(f"{path}: field 'token_ids' must be {what}")
            if vocab.words[3:] != tuple(map(str, rest.tolist())):
                raise ValueError(f"{path}: field 'token_ids' does not match the words (a token model's are its ids)")
        discounts = fields.get("discounts")
        if discounts is not None and (
            discounts.dtype != np.float64 or discounts.shape != (N, 3) or not np.isfinite(discounts).all()
        ):
            raise ValueError(f"{path}: field 'discounts' must be finite float64 of shape ({N}, 3)")
        u = us if len(us) == N else None
        model = cls(N, vocab.concatenated(), rows, probs, backs, token_ids=token_ids, discounts=discounts, u=u)
        model._vocab = vocab  # already built (and checked): scoring needs it
        return model

    # -- views ------------------------------------------------------------------------------

    @property
    def sizes(self) -> list[int]:
        return [len(r) for r in self.rows]

    @property
    def vocab_size(self) -> int:
        """Words of the model, ``<unk>``, ``<s>`` and ``</s>`` included."""
        return len(self._words) if self._words is not None else len(self._packed[1]) - 1

    @property
    def words(self) -> list:
        """The word of each model id (list of str; decoded on first use when the model was
        estimated from text, which keeps its words as UTF-8 bytes until then)."""
        if self._words is None:
            self._words = unpack_words(*self._packed)
        return self._words

    def packed_words(self) -> tuple[np.ndarray, np.ndarray]:
        """``(data, offsets)``: the UTF-8 bytes of word ``i`` are ``data[offsets[i]:offsets[i + 1]]``
        (uint8, int64 ``(V + 1,)``; the model's own arrays, not to be modified)."""
        if self._packed is None:
            self._packed = pack_words(self._words)
        return self._packed

    def ngrams(self, n: int) -> np.ndarray:
        """Forward n-grams of order ``n`` as model ids ``(m, n)``, in the model's (suffix) order."""
        n = _checks.require_int(n, "n", min=1, max=self.order)
        return self.rows[n - 1][:, ::-1]

    def to_dict(self) -> dict:
        """``{n: {ngram words tuple: (log10 prob, log10 backoff)}}`` (as :func:`fastgram.reference.lm_estimate`)."""
        words = self.words
        out = {}
        for n in range(1, self.order + 1):
            grams = self.ngrams(n)
            out[n] = {
                tuple(words[i] for i in g): (float(p), float(b))
                for g, p, b in zip(grams.tolist(), self.prob[n - 1], self.backoff[n - 1])
            }
        return out

    def __repr__(self) -> str:
        kind = "tokens" if self.token_ids is not None else "words"
        return f"NGramLM(order={self.order}, vocab_size={self.vocab_size:,}, sizes={self.sizes}, {kind})"

    # -- ids --------------------------------------------------------------------------------

    def word_ids(self) -> dict:
        """``{word: model id}``."""
        if self._word_ids is None:
            self._word_ids = {w: i for i, w in enumerate(self.words)}
        return self._word_ids

    def encode_tokens(self, tokens) -> np.ndarray:
        """Model ids (uint32) of corpus token ids; ids the model has not seen are ``<unk>`` (0)."""
        if self.token_ids is None:
            raise TypeError("this is a word model: score text (a list of str), not token ids")
        tokens = _checks.as_token_stream(tokens, "tokens")
        if tokens.shape[0] and np.iinfo(tokens.dtype).min < 0:
            _checks.check_token_range(tokens, int(np.iinfo(tokens.dtype).max) + 1)
        if self._lookup is None:
            known = self.token_ids[3:]
            order = np.argsort(known, kind="stable")
            self._lookup = (known[order], (3 + order).astype(np.uint32))
        return _est.map_ids(tokens, *self._lookup)

    def encode_words(self, sentence: str) -> np.ndarray:
        ids = self.word_ids()
        return np.array([ids.get(w, 0) for w in split_words(sentence)], np.uint32)

    # -- scoring and generation ---------------------------------------------------------------

    def score(self, sentences, *, separator=None):
        """log10 probability of every token of every sentence (``</s>`` included), as KenLM.

        ``sentences``: a list of str (word models), a list of token-id sequences, or a 1-D
        token array split at ``separator`` (token models). Unknown words are ``<unk>``: they
        get ``p(<unk>)`` (with the context's backoffs) and count as OOVs. Returns
        :class:`fastgram.lm.score.Scores`.
        """
        return _score.score(self, sentences, separator=separator)

    def perplexity(self, sentences, *, separator=None) -> dict:
        """KenLM query's summary: perplexity with and without OOVs, OOVs and tokens."""
        return self.score(sentences, separator=separator).summary()

    def log10_prob(self, word, context=()) -> float:
        """log10 p(word | context) (ARPA backoff); ``context`` words before ``word``, oldest first."""
        return _score.log10_prob(self, word, context)

    def generate(self, n: int = 1, max_length: int = 100, *, seed, temperature: float = 1.0, offset: int = 0):
        """Sample ``n`` sentences (lists of words, or token ids for a token model).

        See :func:`fastgram.lm.generate.generate`.
        """
        return _gen.generate(self, n, max_length, seed=seed, temperature=temperature, offset=offset)

    # -- kernel tables ------------------------------------------------------------------------

    def tables(self):
        """The rows of every order in one buffer, for the generation kernel: ``(flat, row_off,
        nrows)`` (see :mod:`fastgram.kernels.lm`)."""
        if self._tables is None:
            N = self.order
            nrows = np.zeros(N + 1, np.int64)
            row_off = np.zeros(N + 1, np.int64)
            off = 0
            for n in range(1, N + 1):
                nrows[n] = len(self.rows[n - 1])
                row_off[n] = off
                off += nrows[n] * n
            self._tables = (_one_buffer(self.rows, np.uint32), row_off, nrows)
        return self._tables

    def score_index(self):
        """The scoring kernels' hash index: ``(index, values, base, size, uprob, uback)``.

        Order ``n >= 2`` has a table of ``size[n]`` slots (1.5 per n-gram, linear probing) at
        ``base[n]`` in ``index`` (uint64 (slots, 3)): slot ``s`` holds the key ``parent << 32 |
        w`` (the n-gram's slot one order down, or the word for bigrams, and its first word) and,
        in ``values`` (the same memory as float64), the n-gram's log10 probability and backoff.
        A search extends a context one word at a time and reads one slot (one cache line) per
        order, with no rows to compare. Unigrams are ``uprob`` / ``uback`` by word id.
        Memory: 36 bytes per n-gram of order >= 2; built in O(n-grams), orders in parallel.
        """
        if self._index is None:
            N = self.order
            counts = [len(r) for r in self.rows]
            nrows = np.array([0] + counts, np.int64)
            val_off = np.zeros(N + 1, np.int64)
            val_off[1:] = np.cumsum([0] + counts[:-1])
            size = np.zeros(N + 1, np.int64)
            for n in range(2, N + 1):
                size[n] = counts[n - 1] + counts[n - 1] // 2 + 1 if counts[n - 1] else 0
            if size.max() >= _NODE_LIMIT or self.vocab_size >= _NODE_LIMIT:
                raise ValueError(f"the model is too large to score: {size.max()} slots in one order")
            base = np.zeros(N + 1, np.int64)
            base[2:] = np.cumsum(size[2:]) - size[2:]
            index = np.empty((int(size.sum()), 3), np.uint64)  # set empty by index_insert, in parallel
            values = index.view(np.float64)
            flat, row_off, _ = self.tables()
            prob = _one_buffer(self.prob, np.float64)
            backoff = _one_buffer(self.backoff, np.float64)
            node = np.empty(len(prob), np.uint32)  # slots are below _NODE_LIMIT
            if N >= 2:
                args = (flat, row_off, nrows, val_off, prob, backoff, base, size, index, values, node)
                parallel_for(_k.index_insert, N - 1, args)
            if N >= 3:
                parallel_for(_k.index_relink, N - 2, (val_off, base, size, index, node))
            self._index = (index, values, base, size, self.prob[0], self.backoff[0])
        return self._index

    def u(self):
        """The uninterpolated probabilities ``u(h w)`` per order (derived from the ARPA values
        when the model was read from a file: ``10**prob - 10**backoff(h) * p(w | h[1:])``)."""
        if self._u is None:
            self._u = _gen.derive_u(self)
        return self._u


def estimate_to_arpa(
    paths, order: int, output, *, dtype=None, separator=None, skip_symbols: bool = False, **options
) -> list[int]:
    """Estimate a model from files and write it as an ARPA file, never holding it whole.

    The same model and the same file as ``NGramLM.estimate_files(paths, order,
    ...).write_arpa(output)``, but each order is written as soon as it is finished and then
    dropped, so at most two orders are held at a time: what ``fastgram lm -o model.arpa``
    runs.

    Parameters
    ----------
    paths, order, dtype, separator, skip_symbols, options
        As :meth:`NGramLM.estimate_files` (``keep_u`` does not apply: ARPA holds no u).
    output : str or os.PathLike
        The ARPA file, written atomically: a temporary file beside it, renamed when the last
        order is written, removed on any error (SIGTERM and ``KeyboardInterrupt`` included).

    Returns
    -------
    list of int
        The n-grams of each order written (``[0]``: the words of the model).

    Notes
    -----
    Memory: the counting stage as :meth:`NGramLM.estimate` (bounded by ``max_memory``); then
    the two orders being estimated, the counted N-grams waiting in scratch files under
    ``tmp_dir`` (``4N + 8`` bytes each; see :func:`fastgram.lm.estimate.kneser_ney`).
    """
    if "keep_u" in options:
        raise TypeError("estimate_to_arpa() takes no keep_u (an ARPA file holds no u)")
    if not isinstance(output, (str, os.PathLike)):
        raise TypeError(f"output must be a str or os.PathLike, got {type(output).__name__}")
    output = _io.check_output(output, _io.expand_paths(paths))
    options = dict(options, keep_u=False)
    return NGramLM._from_files(paths, order, dtype, separator, skip_symbols, options, arpa=output)


def _estimate_into_arpa(path, counted, order, V, prune, fallback, words) -> list[int]:
    """Run the estimation on ``counted`` with each order written to the ARPA file ``path`` as
    it is finished; the header is written once every order's size is known."""
    with contextlib.ExitStack() as stack:
        writer = None

        def emit(sizes, n, rows, prob, backoff):
            nonlocal writer
            if writer is None:
                writer = stack.enter_context(_arpa.ArpaWriter(path, order, words, sizes))
            writer.write(n, rows, prob, backoff)

        arrays = _est.kneser_ney(counted, order, V, prune, fallback, keep_u=False, emit=emit)
        if writer is None:  # pragma: no cover - every model has unigrams
            raise RuntimeError("internal error: the estimation wrote no n-grams")
    return arrays["sizes"]


def _decimal_token_ids(words):
    """The token ids of a model read from ARPA whose words after ``</s>`` are all canonical
    decimal numbers within int64 (the words of a token model), else None (a word model)."""
    data, offsets = words
    rest = data[offsets[3] :]
    if not ((rest >= ord("0")) & (rest <= ord("9"))).all():
        return None
    names = unpack_words(*words)[3:]
    if not all(w and (w == "0" or w[0] != "0") and len(w) <= 19 for w in names):
        return None
    ids = [int(w) for w in names]
    if ids and max(ids) > _checks.INT64_MAX:
        return None
    return np.array([-1, -1, -1] + ids, np.int64)


def _loaded_vocab(path: str, fields: dict) -> WordVocab:
    """The vocabulary of a saved model's words (version 1: a str array; 2: packed bytes),
    checked as :class:`fastgram.vocab.WordVocab` checks words; errors name the file and field."""
    if "words" in fields:
        words, name = fields["words"], "words"
        if words.ndim != 1 or words.dtype.kind != "U":
            raise ValueError(f"{path}: field 'words' must be a 1-D str array starting with <unk>, <s>, </s>")
    else:
        data, offsets, name = fields["words_data"], fields["words_offsets"], "words_data"
        if data.dtype != np.uint8 or data.ndim != 1 or offsets.dtype != np.int64 or offsets.ndim != 1:
            raise ValueError(f"{path}: fields 'words_data' and 'words_offsets' must be 1-D uint8 and int64")
    try:
        return WordVocab([str(w) for w in words]) if name == "words" else WordVocab.from_concatenated(data, offsets)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path}: field {name!r}: {exc}") from None


#: Rows renumbered at a time when pruned words leave the vocabulary (a temporary of 4n bytes each).
RENUMBER_ROWS = 1 << 20


def _without_pruned_words(rows, names, ids):
    """The vocabulary of the kept unigrams only, when pruning dropped some (``prune[0] > 0``):
    every order's ``rows`` (a list, changed in place) renumbered to it and ``(names, ids)`` cut
    to it. The kept ids keep their order, so the rows stay sorted. Words a model does not hold
    are ``<unk>`` when scored, as in lmplz's pruned models."""
    kept = rows[0][:, 0].copy()  # the kept unigrams' ids, ascending (a copy: the rows change below)
    V = len(names[1]) - 1 if is_packed(names) else len(names)
    if len(kept) == V:
        return names, ids
    new_id = np.zeros(V, np.uint32)
    new_id[kept] = np.arange(len(kept), dtype=np.uint32)
    for r in rows:
        for lo in range(0, len(r), RENUMBER_ROWS):
            r[lo : lo + RENUMBER_ROWS] = new_id[r[lo : lo + RENUMBER_ROWS]]
    names = select_packed(*names, kept) if is_packed(names) else [names[i] for i in kept.tolist()]
    return names, None if ids is None else ids[kept]


#: Control bytes no text holds (all but tab, newline, vertical tab, form feed and CR), and a
#: raw token file nearly always does (any id whose low or high byte is below 0x20).
_BINARY = np.zeros(256, bool)
_BINARY[[b for b in range(32) if b not in b"\t\n\v\f\r"]] = True


#: Bytes of a text file :func:`_check_decimal_text` looks at (a token file shows itself at once).
TEXT_SNIFF_BYTES = 1 << 16


def _check_decimal_text(files) -> None:
    """A token model given a raw token file as text would score every token as an OOV: a
    control byte (which text does not hold) among a file's first bytes is refused with the
    option that reads the file. Reads :data:`TEXT_SNIFF_BYTES` of each, not the whole."""
    for path in files:
        if _io.file_size(path) is None:  # a stream can be read once: no look ahead
            continue
        data = np.fromfile(path, np.uint8, count=TEXT_SNIFF_BYTES)
        bad = np.flatnonzero(_BINARY[data])
        if len(bad):
            raise ValueError(
                f"{path}: byte 0x{int(data[bad[0]]):02X} at offset {int(bad[0]):,} is not text, and this model's "
                "words are token ids: for a raw token file pass dtype= (fastgram score --dtype)"
            )


def _check_skip_symbols(skip_symbols, dtype) -> None:
    """``skip_symbols`` is a bool, and only for text files."""
    if not isinstance(skip_symbols, (bool, np.bool_)):
        raise TypeError(f"skip_symbols must be a bool, got {type(skip_symbols).__name__}")
    if skip_symbols and dtype is not None:
        raise ValueError("skip_symbols applies to text files; raw token files have no words to skip")


def _options(
    order, prune=None, discount_fallback=None, max_memory=None, tmp_dir=None, chunk_tokens=None, keep_u=True
) -> dict:
    """:meth:`NGramLM.estimate`'s options, checked (``ValueError``/``TypeError`` naming each)."""
    order = _est.check_order(order)
    if not isinstance(keep_u, (bool, np.bool_)):
        raise TypeError(f"keep_u must be True or False, got {type(keep_u).__name__}")
    return dict(
        keep_u=bool(keep_u),
        order=order,
        prune=_est.check_prune(prune, order),
        fallback=_est.check_fallback(discount_fallback),
        max_memory=_est.counting_budget(max_memory),
        tmp_dir=tmp_dir,
        chunk_tokens=_checks.require_int(
            _est.CHUNK_TOKENS if chunk_tokens is None else chunk_tokens, "chunk_tokens", min=1
        ),
    )


def _vocab_stream(corpus, vocab) -> np.ndarray:
    """``corpus`` as the id stream of ``vocab`` (checked: ids in range, no ``<unk>`` or ``<s>``)."""
    tokens = _checks.as_token_stream(corpus, "corpus")
    bad = _checks.first_out_of_range(tokens, len(vocab))
    if bad is not None:
        raise ValueError(
            f"corpus: id {bad[1]:,} at position {bad[0]:,} is outside the vocabulary of {len(vocab):,} words"
        )
    for special, name in ((0, "<unk>"), (1, "<s>")):
        hit = np.flatnonzero(tokens == special) if tokens.shape[0] else []
        if len(hit):
            raise ValueError(
                f"corpus: {name} (id {special}) at position {int(hit[0]):,}; lmplz does not take "
                "<s>, </s> or <unk> as words (encode with skip_symbols=True to drop them)"
            )
    return tokens


def _encodable(word: str) -> bool:
    try:
        word.encode("utf-8", "surrogateescape")
        return True
    except UnicodeEncodeError:
        return False


def _sentences_to_stream(corpus):
    """A list of str or of int sequences as ``(stream, separator, words)``."""
    if len(corpus) and isinstance(corpus[0], str):
        ids: dict[str, int] = {}
        out = []
        for i, line in enumerate(corpus):
            if not isinstance(line, str):
                raise TypeError(f"corpus: every sentence must be a str, got {type(line).__name__}")
            if "\n" in line:
                raise ValueError(f"corpus: sentence {i:,} holds a newline (one sentence per str): {line[:60]!r}")
            for w in split_words(line):
                if w in SPECIAL_WORDS:
                    raise ValueError(f"corpus: {w} is not allowed as a word (lmplz treats it as a special word)")
                out.append(ids.setdefault(w, len(ids) + 1))
            out.append(0)
        words = ["<sep>"] + list(ids)
        try:  # every word must have UTF-8 bytes (ARPA and saved models store them)
            "\n".join(words).encode("utf-8", "surrogateescape")
        except UnicodeEncodeError as exc:
            bad = next(w for w in words if not _encodable(w))
            raise ValueError(f"corpus: the word {bad!r} is not text UTF-8 can hold ({exc.reason})") from None
        return np.array(out, np.int64), 0, words
    pieces = []
    for s in corpus:
        arr = _checks.as_token_stream(_as_ids(s), "corpus sentence")
        if arr.shape[0] and np.iinfo(arr.dtype).min < 0 and arr.min() < 0:
            raise ValueError("corpus: token ids must be >= 0")
        pieces.append(arr.astype(np.int64))
    top = max((int(p.max()) for p in pieces if len(p)), default=-1)
    sep = top + 1  # a boundary id no sentence uses
    if top == _checks.INT64_MAX:  # no id above the largest: the smallest id that is not used
        used = np.unique(np.concatenate(pieces))
        gaps = np.flatnonzero(used != np.arange(len(used)))
        sep = int(gaps[0]) if len(gaps) else len(used)
    stream = []
    for p in pieces:
        stream.append(p)
        stream.append(np.array([sep], np.int64))
    return (np.concatenate(stream) if stream else np.zeros(0, np.int64)), sep, None


def _count_sentences(tokens, separator) -> int:
    n = tokens.shape[0]
    if n == 0:
        return 0
    if separator is None:
        return 1
    nsep = 0
    for lo in range(0, n, _checks.SCAN_CHUNK):
        nsep += int(np.count_nonzero(tokens[lo : lo + _checks.SCAN_CHUNK] == separator))
    return nsep + (0 if int(tokens[n - 1]) == separator else 1)


def _is_sentence_list(corpus) -> bool:
    """A list of str or of sequences (not a flat list of ids)."""
    if not isinstance(corpus, (list, tuple)):
        return False
    return len(corpus) == 0 or isinstance(corpus[0], str) or not np.isscalar(corpus[0])


def _as_ids(s) -> np.ndarray:
    """One sentence of ids as an array (an empty list is an empty int array)."""
    if isinstance(s, np.ndarray):
        return s
    arr = np.asarray(s)
    return arr.astype(np.int64) if arr.size == 0 else arr
