"""Vocabularies: text <-> token ids, vectorised.

Three kinds, as in the notebook, in byte-level models and in KenLM:

- ``Vocab.from_text(text)``: the sorted unique characters of a text (the notebook's ``stoi`` /
  ``itos``), optionally with an unknown character that stands for anything else;
- ``Vocab.bytes()``: the 256 byte values of the UTF-8 encoding;
- ``WordVocab.from_files(paths)``: words as lmplz reads them (one sentence per line, ending at
  ``\\n``; words separated by runs of space, tab, ``\\r`` and NUL; the text taken as bytes, UTF-8
  not checked), with ``<unk>`` = 0, ``<s>`` = 1, ``</s>`` = 2.

Encoding never loops over characters or words in Python: characters are encoded to UTF-32 once
and mapped through a lookup table; words are split and looked up by one Numba pass over the
bytes (:mod:`fastgram.kernels.words`). Building a word vocabulary from 100 MB of text and
encoding it took about half a second on 2 cores (0.45 s, ``benchmarks/RESULTS.md``).

Saved vocabularies are JSON (``{"kind": "chars" | "bytes" | "words", ...}``);
:func:`vocab_from_json` reads any of them.
"""

from __future__ import annotations

import json

import numpy as np

from fastgram import _io
from fastgram._checks import as_int_array, fmt_int, require_int
from fastgram._io import atomic_output
from fastgram._jit import num_threads, parallel_for
from fastgram.kernels import words as _kw

__all__ = ["Vocab", "WordVocab", "vocab_from_json", "vocab_field", "SPECIAL_WORDS"]

#: Characters encoded per step (bounds the temporaries of :meth:`Vocab.encode` to ~12 bytes each).
ENCODE_CHUNK = 1 << 22


def _smallest_uint(n_ids: int) -> np.dtype:
    for dtype in (np.uint8, np.uint16, np.uint32):
        if n_ids - 1 <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    return np.dtype(np.uint64)


def _code_points(text: str) -> np.ndarray:
    # (len(text),) uint32; 'surrogatepass' keeps lone surrogates (from surrogateescape) exact.
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")


class Vocab:
    """A character-level or byte-level vocabulary.

    Build one with :meth:`from_text`, :meth:`bytes` or :meth:`load`.

    Attributes
    ----------
    chars : tuple of str or None
        The characters in id order (``None`` for a byte-level vocabulary).
    unk : str or None
        The character unknown input maps to, if any (it is one of ``chars``).
    byte_level : bool
    dtype : numpy.dtype
        The smallest unsigned dtype that holds every id; :meth:`encode` returns it.

    Examples
    --------
    >>> from fastgram import Vocab
    >>> v = Vocab.from_text("hello")
    >>> v.chars
    ('e', 'h', 'l', 'o')
    >>> v.encode("hole")
    array([1, 3, 2, 0], dtype=uint8)
    >>> v.decode([1, 0, 2, 2, 3])
    'hello'
    """

    def __init__(self, chars=None, *, unk: str | None = None):
        if chars is None:
            if unk is not None:
                raise ValueError("unk: a byte-level vocabulary has no unknown character")
            self.chars = None
            self.unk = None
            self.byte_level = True
            self.dtype = np.dtype(np.uint8)
            return
        chars = list(chars)
        for i, ch in enumerate(chars):
            if not isinstance(ch, str) or len(ch) != 1:
                raise ValueError(f"chars: entry {i} must be a single character, got {ch!r:.40}")
        if len(set(chars)) != len(chars):
            raise ValueError("chars: entries must be unique")
        if not chars:
            raise ValueError("chars: a vocabulary needs at least one character")
        if unk is not None:
            if not isinstance(unk, str) or len(unk) != 1:
                raise ValueError(f"unk must be a single character, got {unk!r}")
            if unk not in chars:
                raise ValueError(f"unk {unk!r} is not one of chars")
        self.chars = tuple(chars)
        self.unk = unk
        self.byte_level = False
        self.dtype = _smallest_uint(len(chars))
        # id -> code point, and code point -> id (-1: not in the vocabulary).
        self._points = _code_points("".join(chars)).astype(np.uint32)
        self._lookup = np.full(int(self._points.max()) + 1, -1, dtype=np.int64)
        self._lookup[self._points] = np.arange(len(chars))

    # -- construction ---------------------------------------------------------------------

    @classmethod
    def from_text(cls, text: str, *, unk: str | None = None) -> "Vocab":
        """The sorted unique characters of ``text`` (plus ``unk``, if given and not in it).

        Sorting is by code point, as ``sorted(set(text))`` in the notebook.
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be str, got {type(text).__name__}")
        points = np.unique(_code_points(text))
        chars = set(points.astype("<u4").tobytes().decode("utf-32-le", "surrogatepass"))
        if unk is not None:
            if not isinstance(unk, str) or len(unk) != 1:
                raise ValueError(f"unk must be a single character, got {unk!r}")
            chars.add(unk)
        return cls(sorted(chars), unk=unk)

    @classmethod
    def bytes(cls) -> "Vocab":
        """The byte-level vocabulary: V = 256, ids are the bytes of the UTF-8 encoding."""
        return cls(None)

    # -- mapping --------------------------------------------------------------------------

    def __len__(self) -> int:
        return 256 if self.byte_level else len(self.chars)

    @property
    def size(self) -> int:
        """V, the number of ids."""
        return len(self)

    @property
    def stoi(self) -> dict:
        """``{character: id}``, as in the notebook (character-level only)."""
        self._require_chars("stoi")
        return {ch: i for i, ch in enumerate(self.chars)}

    @property
    def itos(self) -> dict:
        """``{id: character}``, as in the notebook (character-level only)."""
        self._require_chars("itos")
        return dict(enumerate(self.chars))

    def _require_chars(self, what: str) -> None:
        if self.byte_level:
            raise ValueError(f"{what} is defined for character-level vocabularies only")

    def encode(self, text: str) -> np.ndarray:
        """Token ids of ``text`` in :attr:`dtype`.

        Raises
        ------
        TypeError
            If ``text`` is not a str.
        ValueError
            If a character is not in the vocabulary and it has no ``unk``; the message names
            the character and its position.

        Notes
        -----
        Time O(len(text)); temporaries of about 12 bytes per character for up to
        :data:`ENCODE_CHUNK` characters at a time, plus the result.
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be str, got {type(text).__name__}")
        return self._encode(text, 0)

    def _encode(self, text: str, offset: int) -> np.ndarray:
        """:meth:`encode`, with ``offset`` added to the positions in error messages."""
        if self.byte_level:
            return np.frombuffer(text.encode("utf-8", "surrogatepass"), dtype=np.uint8).copy()
        out = np.empty(len(text), dtype=self.dtype)
        for lo in range(0, len(text), ENCODE_CHUNK):
            points = _code_points(text[lo : lo + ENCODE_CHUNK])
            inside = points < self._lookup.shape[0]
            ids = self._lookup[np.where(inside, points, 0)]
            bad = (ids < 0) | ~inside
            if bad.any():
                if self.unk is None:
                    i = int(np.flatnonzero(bad)[0])
                    ch = text[lo + i]
                    raise ValueError(
                        f"text: character {ch!r} (U+{ord(ch):04X}) at position "
                        f"{fmt_int(offset + lo + i)} is not in the vocabulary"
                    )
                ids[bad] = self.chars.index(self.unk)
            out[lo : lo + len(points)] = ids
        return out

    def decode(self, ids) -> str:
        """The text of ``ids`` (any integer array-like; ids must be in ``[0, V)``).

        A byte-level vocabulary decodes the bytes as UTF-8, with U+FFFD for invalid sequences
        (sampled byte streams need not be valid UTF-8).
        """
        ids = as_int_array(ids, "ids").reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= len(self)):
            i = int(np.flatnonzero((ids < 0) | (ids >= len(self)))[0])
            raise ValueError(
                f"ids: token id {fmt_int(ids[i])} at position {fmt_int(i)} is outside [0, {fmt_int(len(self))})"
            )
        if self.byte_level:
            return ids.astype(np.uint8).tobytes().decode("utf-8", "replace")
        return self._points[ids].astype("<u4").tobytes().decode("utf-32-le", "surrogatepass")

    # -- persistence ----------------------------------------------------------------------

    def to_json(self) -> str:
        """The vocabulary as a JSON string (see :meth:`from_json`).

        ``chars`` is a list of one-character strings (ASCII JSON, so lone surrogates are
        ``\\udXXX`` escapes): a list keeps a lone high surrogate followed by a lone low one as
        two characters, where one string would read back as a single astral character.
        """
        if self.byte_level:
            return json.dumps({"kind": "bytes"})
        return json.dumps({"kind": "chars", "chars": list(self.chars), "unk": self.unk}, ensure_ascii=True)

    @classmethod
    def from_json(cls, text: str, *, source: str = "vocabulary JSON") -> "Vocab":
        """A vocabulary from :meth:`to_json`'s string, validated field by field.

        ``source`` (a file name, for :meth:`load`) starts every error message. Files written
        before ``chars`` was a list (one string of characters) still load.
        """
        data = _parse_json(text, source)
        kind = _field(data, "kind", str, source)
        if kind == "bytes":
            return cls.bytes()
        if kind == "words":
            raise ValueError(f"{source}: field 'kind' is 'words': a word vocabulary, load it with WordVocab")
        if kind != "chars":
            raise ValueError(f"{source}: field 'kind': unknown kind {kind!r} (expected 'chars', 'bytes' or 'words')")
        chars = _field(data, "chars", (list, str), source)
        if isinstance(chars, str):
            chars = list(chars)
        unk = data.get("unk")
        if unk is not None and not isinstance(unk, str):
            raise ValueError(f"{source}: field 'unk' must be a string or null, got {type(unk).__name__}")
        try:
            return cls(chars, unk=unk)
        except (TypeError, ValueError) as exc:
            field = "unk" if str(exc).startswith("unk") else "chars"
            raise ValueError(f"{source}: field {field!r}: {exc}") from None

    def save(self, path) -> None:
        """Write :meth:`to_json` to ``path`` (atomically: temporary name, then rename)."""
        _save_json(self.to_json(), path)

    @classmethod
    def load(cls, path) -> "Vocab":
        """Read a vocabulary written by :meth:`save`; ``ValueError`` names the file and the field."""
        path = _io.check_path(path)
        return cls.from_json(_read_json_file(path), source=path)

    def __eq__(self, other) -> bool:
        return isinstance(other, Vocab) and (self.chars, self.unk) == (other.chars, other.unk)

    def __hash__(self) -> int:
        return hash((self.chars, self.unk))

    def __repr__(self) -> str:
        if self.byte_level:
            return "Vocab.bytes()"
        return f"Vocab({len(self)} chars{'' if self.unk is None else f', unk={self.unk!r}'})"


# -------------------------------------------------------------------------------------------------
# JSON helpers (shared by both kinds)
# -------------------------------------------------------------------------------------------------


def _parse_json(text, source: str) -> dict:
    if not isinstance(text, str):
        raise TypeError(f"text must be str, got {type(text).__name__}")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{source}: not a fastgram vocabulary (invalid JSON: {exc})") from None
    except RecursionError:
        raise ValueError(f"{source}: not a fastgram vocabulary (JSON nested too deeply)") from None
    if not isinstance(data, dict):
        raise ValueError(f"{source}: not a fastgram vocabulary (expected a JSON object, got {type(data).__name__})")
    return data


def _field(data: dict, name: str, kind, source: str):
    if name not in data:
        raise ValueError(f"{source}: not a fastgram vocabulary (missing field {name!r})")
    value = data[name]
    if not isinstance(value, kind):
        want = " or ".join(k.__name__ for k in kind) if isinstance(kind, tuple) else kind.__name__
        raise ValueError(f"{source}: field {name!r} must be {want}, got {type(value).__name__}")
    return value


def _read_json_file(path: str) -> str:
    with open(path, "rb") as f:
        raw = f.read()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not a fastgram vocabulary (invalid UTF-8 at byte {fmt_int(exc.start)})") from None


def _save_json(text: str, path) -> None:
    with atomic_output(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)


def vocab_from_json(text: str, *, source: str = "vocabulary JSON") -> "Vocab | WordVocab":
    """A :class:`Vocab` or :class:`WordVocab` from the JSON either writes (by its ``kind``)."""
    data = _parse_json(text, source)
    if data.get("kind") == "words":
        return WordVocab.from_json(text, source=source)
    return Vocab.from_json(text, source=source)


def vocab_field(path: str, fields: dict) -> "Vocab | WordVocab | None":
    """The optional ``vocab`` field of a saved ``.npz`` (JSON text), or ``None`` when absent;
    ``ValueError`` naming the file and the field when it is not a vocabulary."""
    if "vocab" not in fields:
        return None
    try:
        return vocab_from_json(str(fields["vocab"]))
    except ValueError as exc:
        raise ValueError(f"{path}: field 'vocab': {exc}") from None


# -------------------------------------------------------------------------------------------------
# words
# -------------------------------------------------------------------------------------------------

#: KenLM's special words and their fixed ids (``lm/vocab.hh``: GrowableVocab forces them first).
SPECIAL_WORDS = ("<unk>", "<s>", "</s>")
UNK, BOS, EOS = 0, 1, 2
#: Bytes that separate words inside a line: lmplz's delimiters ``"\0\t\n\r "`` less the newline.
WORD_DELIMITERS = b" \t\r\x00"
_OOV = {"add": _kw.OOV_ADD, "unk": _kw.OOV_UNK, "error": _kw.OOV_ERROR}


def _as_bytes(text, name: str = "text") -> bytes:
    if isinstance(text, (bytes, bytearray, memoryview)):
        return bytes(text)
    if isinstance(text, str):
        try:
            return text.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError as exc:
            raise ValueError(
                f"{name}: character {text[exc.start]!r} at position {fmt_int(exc.start)} cannot be encoded as UTF-8"
            ) from None
    raise TypeError(f"{name} must be str or bytes, got {type(text).__name__}")


def is_packed(words) -> bool:
    """Words given as ``(data, offsets)`` arrays (:func:`pack_words`' layout) rather than str."""
    return isinstance(words, tuple) and len(words) == 2 and all(isinstance(x, np.ndarray) for x in words)


def pack_words(words) -> tuple[np.ndarray, np.ndarray]:
    """``(data, offsets)``: the words' UTF-8 bytes end to end (uint8) and where each starts
    (int64 ``(V + 1,)``), the layout of :meth:`WordVocab.concatenated`; one encode of them all."""
    joined = np.frombuffer(("\n".join(words) + "\n").encode("utf-8", "surrogateescape"), np.uint8)
    newline = joined == 10
    ends = np.flatnonzero(newline) + 1
    if len(ends) != len(words):
        raise ValueError("words must not contain newlines")
    offsets = np.zeros(len(words) + 1, np.int64)
    offsets[1:] = ends - np.arange(1, len(words) + 1)
    return joined[~newline], offsets


def _newline_joined(data: np.ndarray, offsets: np.ndarray) -> bytes:
    """The packed words with a newline between each two (none holds one)."""
    return np.insert(data, offsets[1:-1].astype(np.int64), 10).tobytes()


def select_packed(data: np.ndarray, offsets: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The packed words ``ids`` (in that order) as a new ``(data, offsets)``; O(their bytes)."""
    ids = np.asarray(ids, np.int64)
    start, end = offsets[:-1][ids], offsets[1:][ids]
    out_offsets = np.zeros(len(ids) + 1, np.int64)
    np.cumsum(end - start, out=out_offsets[1:])
    out = np.empty(int(out_offsets[-1]), np.uint8)
    _kw.gather_words(data, start, end, out)
    return out, out_offsets


def unpack_words(data: np.ndarray, offsets: np.ndarray) -> list[str]:
    """The str of each packed word (one decode of them all: a newline ends any unfinished UTF-8
    sequence, so each word decodes as it would alone)."""
    return _newline_joined(data, offsets).decode("utf-8", "surrogateescape").split("\n") if len(offsets) > 1 else []


def _joined_words(words: list) -> bytes | None:
    """``"\\n".join(words)`` as UTF-8 when every entry is a str that encodes (else None)."""
    try:
        return "\n".join(words).encode("utf-8", "surrogateescape")  # TypeError: not all str
    except (TypeError, UnicodeEncodeError):
        return None


def _show(word: bytes) -> str:
    """A word for a message: its text (``surrogateescape``), quoted, at most 60 characters."""
    return f"{word.decode('utf-8', 'surrogateescape')!r:.60}"


def _check_oov(oov) -> int:
    if oov not in _OOV:
        raise ValueError(f"oov must be 'unk', 'error' or 'add', got {oov!r}")
    return _OOV[oov]


class WordVocab:
    """A word vocabulary as KenLM's lmplz builds it, and the id streams of its text.

    Tokenisation (lmplz's, ``lm/builder/corpus_count.cc``): a line ends at ``\\n``; inside it,
    words are separated by runs of space, tab, ``\\r`` and NUL. Text is bytes: UTF-8 is not
    required or checked (a ``str`` is encoded as UTF-8 with ``surrogateescape``, so words that
    are not valid UTF-8 round-trip through :attr:`words`).

    Ids: ``<unk>`` = 0, ``<s>`` = 1, ``</s>`` = 2 (KenLM's fixed ids), then every other word in
    order of first occurrence (files in the order given) — the ids lmplz itself assigns, so its
    ARPA unigram section lists words in id order.

    Stream format (what :meth:`encode` and :meth:`iter_file_ids` return, uint32): each line's
    word ids followed by ``2`` (``</s>``); no ``<s>`` (id 1 never appears: the model supplies
    the ``<s>`` context of each sentence). An empty line, or one of only spaces, is just ``2``.
    A last line without ``\\n`` gets no ``2``: lmplz counts its words but no ``</s>`` for it.
    The words ``<s>``, ``</s>``, ``<unk>`` in the text raise ``ValueError`` (as lmplz does) unless
    ``skip_symbols=True`` (lmplz's ``--skip_symbols``: they are treated as whitespace).

    Words unknown to the vocabulary (``oov=``): ``"unk"`` maps them to 0, ``"error"`` raises
    ``ValueError`` naming the word and its byte offset, ``"add"`` adds them (the vocabulary
    grows; not safe while another thread uses the same vocabulary).

    Parameters
    ----------
    words : iterable of str or bytes, optional
        The words in id order, starting with ``"<unk>", "<s>", "</s>"``; without it the
        vocabulary holds only those three.

    Attributes
    ----------
    words : tuple of str
        The words in id order (bytes decoded as UTF-8 with ``surrogateescape``).
    dtype : numpy.dtype
        Always uint32 (KenLM's ``WordIndex``).

    Notes
    -----
    Memory: the words' bytes plus about 24 bytes per word (hash table at load <= 1/2 and
    offsets). Encoding is one pass of O(bytes) with temporaries of 4 bytes per byte of one chunk
    (``chunk_tokens`` bytes of text at a time) besides the result.

    Examples
    --------
    >>> from fastgram.vocab import WordVocab
    >>> v = WordVocab.from_text("the cat sat\\nthe dog\\n")
    >>> v.words
    ('<unk>', '<s>', '</s>', 'the', 'cat', 'sat', 'dog')
    >>> v.encode("the dog sat\\n\\nthe bird\\n")
    array([3, 6, 5, 2, 2, 3, 0, 2], dtype=uint32)
    >>> v.decode([3, 6, 2, 3, 4, 2])
    'the dog\\nthe cat\\n'
    """

    dtype = np.dtype(np.uint32)

    def __init__(self, words=None):
        self._slots = np.full(1 << 10, -1, dtype=np.int64)
        self._hashes = np.zeros(1 << 10, dtype=np.uint64)
        self._arena = np.empty(1 << 13, dtype=np.uint8)
        self._offsets = np.zeros(1 << 9, dtype=np.int64)
        self._n = 0
        self._cache = None
        self._run(np.frombuffer(b"<unk> <s> </s>", np.uint8), _kw.OOV_ADD, False, "words")
        if words is None:
            return
        if isinstance(words, (str, bytes)):
            raise TypeError(f"words must be an iterable of words, got {type(words).__name__}")
        words = list(words)
        joined = _joined_words(words)  # all str (a model's words): one encode of them all
        if joined is None:  # bytes among them, or a str that is not UTF-8: entry by entry
            words = [_as_bytes(w, f"words: entry {i}") for i, w in enumerate(words)]
            joined = b"\n".join(words)
        self._add_joined(joined, len(words), [_as_bytes(w) for w in words[:3]], lambda: words)

    @classmethod
    def from_concatenated(cls, data, offsets) -> "WordVocab":
        """The vocabulary of words given as :meth:`concatenated` returns them (``data`` uint8,
        ``offsets`` ``(V + 1,)``; checked as the constructor checks a list): no Python strings."""
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 1:
            got = f"{data.dtype} of {data.ndim} dimensions" if isinstance(data, np.ndarray) else type(data).__name__
            raise TypeError(f"data must be a 1-D uint8 array, got {got}")
        offsets = as_int_array(offsets, "offsets")
        if (
            offsets.ndim != 1
            or len(offsets) < 1
            or offsets[0] != 0
            or offsets[-1] != len(data)
            or (offsets[1:] < offsets[:-1]).any()
        ):
            raise ValueError("offsets must be non-decreasing from 0 to len(data)")
        joined = _newline_joined(data, offsets)
        vocab = cls()
        n = len(offsets) - 1
        head = [data[offsets[i] : offsets[i + 1]].tobytes() for i in range(min(n, 3))]
        vocab._add_joined(joined, n, head, lambda: joined.split(b"\n") if n else [])
        return vocab

    def _add_joined(self, joined: bytes, n: int, head: list, entries) -> None:
        """Add the ``n`` words of ``joined`` (separated by newlines), whose first three entries
        (bytes) are ``head``; ``entries()`` lists them all (str or bytes) for the messages of a
        check that fails."""
        if head != [w.encode() for w in SPECIAL_WORDS]:
            got = [w.decode("utf-8", "surrogateescape") for w in head]
            raise ValueError(f"words: must start with {', '.join(SPECIAL_WORDS)}, got {got}")
        # One scan of the joined bytes per check (a model's 10^6 words in milliseconds); the
        # entry-by-entry diagnosis runs only when one fails. An empty word shows as a doubled
        # or trailing newline; a special word among the rest as a lost or repeated word.
        if (
            any(bytes([d]) in joined for d in WORD_DELIMITERS)
            or joined.count(b"\n") != max(n - 1, 0)
            or b"\n\n" in joined
            or (n > 3 and joined.endswith(b"\n"))
        ):
            self._diagnose(entries())
        joined = np.frombuffer(joined, np.uint8)[len(b"<unk>\n<s>\n</s>\n") :]
        self._reserve(n, joined.size)
        ids = self._run(joined, _kw.OOV_ADD, True, "words")
        if self._n != n:
            words = entries()
            self._diagnose(words)
            got = ids[ids != EOS] if n > 3 else ids
            first = int(np.flatnonzero(got != np.arange(3, 3 + got.size))[0]) + 3
            raise ValueError(f"words: entry {first} ({_show(_as_bytes(words[first]))}) is a duplicate")

    @staticmethod
    def _diagnose(words) -> None:
        """Raise ``ValueError`` naming the first entry after the special words that is one of
        them, empty, or holds a delimiter (returns when there is none)."""
        specials = {w.encode() for w in SPECIAL_WORDS}
        for i, w in enumerate(words[3:], 3):
            w = _as_bytes(w)
            if w in specials:
                raise ValueError(f"words: entry {i} ({_show(w)}) is a duplicate of a special word")
            if not w or any(b in w for b in b"\n" + WORD_DELIMITERS):
                raise ValueError(f"words: entry {i} ({_show(w)}) is empty or contains a space, tab, CR, NUL or newline")

    # -- construction ---------------------------------------------------------------------

    @classmethod
    def from_text(cls, text, *, skip_symbols: bool = False) -> "WordVocab":
        """The vocabulary of one text (str or bytes); ids by first occurrence."""
        vocab = cls()
        vocab.encode(text, oov="add", skip_symbols=skip_symbols)
        return vocab

    @classmethod
    def from_files(cls, paths, *, chunk_tokens: int = _io.CHUNK_TOKENS, skip_symbols: bool = False) -> "WordVocab":
        """The vocabulary of text files (a path, a glob, a directory, or a list of them), read
        ``chunk_tokens`` bytes at a time; ids by first occurrence, files in the order given."""
        vocab = cls()
        for path in _io.expand_paths(paths):
            for _ in vocab.iter_file_ids(path, chunk_tokens=chunk_tokens, oov="add", skip_symbols=skip_symbols):
                pass
        return vocab

    # -- mapping --------------------------------------------------------------------------

    def __len__(self) -> int:
        return self._n

    @property
    def size(self) -> int:
        """V, the number of ids (the three special words included)."""
        return self._n

    @property
    def words(self) -> tuple:
        if self._cache is None or len(self._cache) != self._n:
            self._cache = tuple(unpack_words(*self.concatenated()))
        return self._cache

    def concatenated(self, ids=None) -> tuple[np.ndarray, np.ndarray]:
        """``(data, offsets)``: word ``i`` is the bytes ``data[offsets[i]:offsets[i + 1]]``
        (copies; uint8 and int64 ``(V + 1,)``), for writing many words without Python strings.

        With ``ids`` (int array, each in ``[0, V)``), the words of those ids in that order:
        ``offsets`` has ``len(ids) + 1`` entries. Time and memory O(len(ids) + their bytes).
        """
        if ids is not None:
            ids = as_int_array(ids, "ids")
            if ids.ndim != 1 or (len(ids) and (ids.min() < 0 or ids.max() >= self._n)):
                raise ValueError(f"ids: must be a 1-D array of ids in [0, {self._n})")
        if ids is None or (len(ids) == self._n and np.array_equal(ids, np.arange(self._n))):
            off = self._offsets[: self._n + 1].copy()
            return self._arena[: off[-1]].copy(), off
        ids = ids.astype(np.int64, copy=False)
        start, end = self._offsets[ids], self._offsets[ids + 1]
        off = np.zeros(len(ids) + 1, np.int64)
        np.cumsum(end - start, out=off[1:])
        data = np.empty(int(off[-1]), np.uint8)
        _kw.gather_words(self._arena, start, end, data)
        return data, off

    def __getitem__(self, word) -> int:
        """The id of ``word`` (str or bytes); ``KeyError`` when it is not in the vocabulary."""
        raw = _as_bytes(word, "word")
        if not raw or any(b in raw for b in b"\n" + WORD_DELIMITERS):
            raise KeyError(word)
        state = self._state()
        out = np.empty(len(raw), dtype=np.uint32)
        _kw.encode_words(
            np.frombuffer(raw, np.uint8),
            out,
            self._slots,
            self._hashes,
            self._arena,
            self._offsets,
            state,
            _kw.OOV_ERROR,
            0,
        )
        if state[_kw.S_STATUS] == _kw.UNKNOWN:
            raise KeyError(word)
        return int(out[0])

    def __contains__(self, word) -> bool:
        try:
            self[word]
        except (KeyError, TypeError, ValueError):
            return False
        return True

    def encode(
        self, text, *, oov: str = "unk", skip_symbols: bool = False, chunk_tokens: int = _io.CHUNK_TOKENS
    ) -> np.ndarray:
        """The id stream of ``text`` (str or bytes) in the class's format, uint32 ``(N,)``.

        Raises
        ------
        TypeError
            If ``text`` is not str or bytes.
        ValueError
            For an unknown word under ``oov="error"`` or a special word without
            ``skip_symbols``; the message names the word and its byte offset.
        """
        code = _check_oov(oov)
        chunk_tokens = require_int(chunk_tokens, "chunk_tokens", min=1)
        buf = np.frombuffer(_as_bytes(text), np.uint8)
        pieces, lo = [], 0
        while lo < buf.size:
            hi = _line_cut(buf, lo, chunk_tokens)
            pieces.append(self._run(buf[lo:hi], code, skip_symbols, "text", lo))
            lo = hi
        if len(pieces) == 1:
            return pieces[0]
        return np.concatenate(pieces) if pieces else np.empty(0, dtype=np.uint32)

    def iter_file_ids(
        self, path, *, chunk_tokens: int = _io.CHUNK_TOKENS, oov: str = "unk", skip_symbols: bool = False
    ):
        """Yield the id stream of a text file in chunks (new uint32 arrays).

        The file is read ``chunk_tokens`` bytes at a time; every chunk but the last ends with a
        ``2`` (a chunk never splits a line; a line longer than a chunk is carried whole into
        the next). ``oov="add"`` grows the vocabulary as it reads (one pass: build and encode).
        Raises ``ValueError`` naming the file and byte offset (unknown or special word), or when
        the file changes size while it is read.
        """
        code = _check_oov(oov)
        chunk_tokens = require_int(chunk_tokens, "chunk_tokens", min=1)
        path = _io.check_path(path)
        carry = []  # pieces of a line that has not ended yet
        offset = 0  # file offset of the first byte of carry
        for chunk, _ in _io.raw_chunks(path, np.dtype(np.uint8), chunk_tokens):
            last = _kw.last_newline(chunk)
            if last < 0:
                carry.append(chunk.copy())  # raw_chunks reuses its buffer
                continue
            buf = np.concatenate([*carry, chunk[: last + 1]]) if carry else chunk[: last + 1]
            ids = self._run(buf, code, skip_symbols, path, offset)
            offset += buf.size
            carry = [chunk[last + 1 :].copy()] if last + 1 < chunk.size else []
            if ids.size:
                yield ids
        if carry:
            ids = self._run(np.concatenate(carry), code, skip_symbols, path, offset)
            if ids.size:
                yield ids

    def encode_files(
        self, paths, *, chunk_tokens: int = _io.CHUNK_TOKENS, oov: str = "unk", skip_symbols: bool = False
    ) -> np.ndarray:
        """The id streams of text files concatenated (each file as :meth:`iter_file_ids`).

        Each file's lines are sentences of their own: a file whose last line has no newline gets
        a ``2`` closing it when another file follows (its words would otherwise run into the
        next file's first line). Only the last file's unterminated line stays open, as lmplz
        reads the end of its input.
        """
        files = _io.expand_paths(paths)
        parts = []
        for i, path in enumerate(files):
            before = len(parts)
            parts.extend(self.iter_file_ids(path, chunk_tokens=chunk_tokens, oov=oov, skip_symbols=skip_symbols))
            if i + 1 < len(files) and len(parts) > before and parts[-1][-1] != EOS:
                parts.append(np.array([EOS], dtype=np.uint32))
        return np.concatenate(parts) if parts else np.empty(0, dtype=np.uint32)

    def decode(self, ids) -> str:
        """Text of an id stream: words joined by spaces, each ``2`` (``</s>``) a newline; ``1``
        (``<s>``) is dropped. Ids must be in ``[0, V)``."""
        ids = as_int_array(ids, "ids").reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= self._n):
            i = int(np.flatnonzero((ids < 0) | (ids >= self._n))[0])
            raise ValueError(
                f"ids: token id {fmt_int(ids[i])} at position {fmt_int(i)} is outside [0, {fmt_int(self._n)})"
            )
        words = self.words
        lines, line = [], []
        for i in ids.tolist():
            if i == EOS:
                lines.append(" ".join(line) + "\n")
                line = []
            elif i != BOS:
                line.append(words[i])
        return "".join(lines) + " ".join(line)

    # -- the kernel driver ----------------------------------------------------------------

    def _state(self) -> np.ndarray:
        state = np.zeros(8, dtype=np.int64)
        state[_kw.S_WORDS] = self._n
        return state

    def _run(self, buf: np.ndarray, oov: int, skip_symbols: bool, source: str, offset: int = 0) -> np.ndarray:
        """Encode the bytes ``buf`` (growing the tables as needed); errors name ``source`` and
        the byte offset ``offset + position``. With a fixed vocabulary, a buffer of at least
        :data:`PARALLEL_ENCODE_BYTES` is encoded in runs of whole lines in parallel."""
        threads = num_threads()
        if oov != _kw.OOV_ADD and buf.size >= PARALLEL_ENCODE_BYTES and threads > 1:
            return self._run_spans(buf, oov, skip_symbols, source, offset, 2 * threads)
        out = np.empty(buf.size, dtype=np.uint32)
        state = self._state()
        while True:
            _kw.encode_words(
                buf, out, self._slots, self._hashes, self._arena, self._offsets, state, oov, bool(skip_symbols)
            )
            self._n = int(state[_kw.S_WORDS])
            if state[_kw.S_STATUS] == _kw.DONE:
                break
            if state[_kw.S_STATUS] == _kw.GROW:
                self._grow(int(state[_kw.S_WORD_END] - state[_kw.S_POS]))
                continue
            self._raise(buf, state, source, offset)
        k = int(state[_kw.S_OUT])
        return out[:k].copy() if k < out.size // 2 else out[:k]

    def _run_spans(self, buf, oov, skip_symbols, source, offset, spans) -> np.ndarray:
        """:meth:`_run` of a fixed vocabulary in ``spans`` runs of whole lines in parallel; the
        first failing run (in order) names its word, as the serial pass would."""
        cuts = [0]  # each run ends just after a newline (or at the end of buf)
        for c in range(1, spans):
            lo = cuts[-1]
            if lo >= buf.size:
                break
            cuts.append(_line_cut(buf, lo, max(1, buf.size * c // spans - lo)))
        if cuts[-1] < buf.size:
            cuts.append(buf.size)
        cuts = np.array(cuts, np.int64)
        out = np.empty(buf.size, dtype=np.uint32)
        states = np.zeros((len(cuts) - 1, 8), dtype=np.int64)
        states[:, _kw.S_WORDS] = self._n
        args = (
            buf,
            cuts,
            out,
            self._slots,
            self._hashes,
            self._arena,
            self._offsets,
            states,
            oov,
            bool(skip_symbols),
        )
        parallel_for(_kw.encode_spans, len(cuts) - 1, args)
        for c in range(len(cuts) - 1):
            if states[c, _kw.S_STATUS] != _kw.DONE:
                state = states[c].copy()
                state[_kw.S_POS] += cuts[c]
                state[_kw.S_WORD_END] += cuts[c]
                self._raise(buf, state, source, offset)
        return np.concatenate([out[cuts[c] : cuts[c] + states[c, _kw.S_OUT]] for c in range(len(cuts) - 1)])

    def _raise(self, buf, state, source, offset) -> None:
        """The ``ValueError`` of an encoding pass stopped at an unknown or a special word."""
        pos, end = int(state[_kw.S_POS]), int(state[_kw.S_WORD_END])
        where = f"{source}: word {_show(buf[pos:end].tobytes())} at byte {fmt_int(offset + pos)}"
        if state[_kw.S_STATUS] == _kw.UNKNOWN:
            raise ValueError(f"{where} is not in the vocabulary (oov='error'; oov='unk' maps it to <unk>)")
        raise ValueError(
            f"{where} is a special word: lmplz refuses <s>, </s>, <unk> in text too "
            "(skip_symbols=True, or the command line's --skip-symbols, treats them as whitespace, as lmplz "
            "--skip_symbols)"
        )

    def _reserve(self, words: int, nbytes: int) -> None:
        """Room for ``words`` words of ``nbytes`` bytes in all: adding them never grows the tables."""
        n = self._n
        size = self._slots.size
        while 2 * (words + 1) > size:
            size *= 2
        if size > self._slots.size:
            self._slots = np.full(size, -1, dtype=np.int64)
            self._hashes = np.zeros(size, dtype=np.uint64)
            _kw.rehash(self._slots, self._hashes, self._arena, self._offsets, n)
        if words + 2 > self._offsets.size:
            offsets = np.zeros(words + 2, dtype=np.int64)
            offsets[: n + 1] = self._offsets[: n + 1]
            self._offsets = offsets
        used = int(self._offsets[n])
        if used + nbytes > self._arena.size:
            arena = np.empty(used + nbytes, dtype=np.uint8)
            arena[:used] = self._arena[:used]
            self._arena = arena

    def _grow(self, word_len: int) -> None:
        n = self._n
        if 2 * (n + 1) > self._slots.size:
            size = self._slots.size * 2
            self._slots = np.full(size, -1, dtype=np.int64)
            self._hashes = np.zeros(size, dtype=np.uint64)
            _kw.rehash(self._slots, self._hashes, self._arena, self._offsets, n)
        if n + 2 > self._offsets.size:
            self._offsets = np.concatenate([self._offsets, np.zeros(self._offsets.size, dtype=np.int64)])
        used = int(self._offsets[n])
        if used + word_len > self._arena.size:
            arena = np.empty(max(2 * self._arena.size, used + word_len), dtype=np.uint8)
            arena[:used] = self._arena[:used]
            self._arena = arena

    # -- persistence ----------------------------------------------------------------------

    def to_json(self) -> str:
        """``{"kind": "words", "version": 1, "words": [...]}`` (ASCII JSON; see :meth:`from_json`)."""
        return json.dumps({"kind": "words", "version": 1, "words": list(self.words)}, ensure_ascii=True)

    @classmethod
    def from_json(cls, text: str, *, source: str = "vocabulary JSON") -> "WordVocab":
        """A word vocabulary from :meth:`to_json`'s string, validated field by field."""
        data = _parse_json(text, source)
        kind = _field(data, "kind", str, source)
        if kind != "words":
            raise ValueError(f"{source}: field 'kind' is {kind!r}, expected 'words' (load it with Vocab)")
        version = _field(data, "version", int, source)
        if version != 1:
            raise ValueError(f"{source}: field 'version' is {version!r}; this fastgram reads version 1")
        words = _field(data, "words", list, source)
        for i, w in enumerate(words):
            if not isinstance(w, str):
                raise ValueError(f"{source}: field 'words': entry {i} must be a string, got {type(w).__name__}")
        try:
            return cls(words)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{source}: field 'words': {str(exc).removeprefix('words: ')}") from None

    def save(self, path) -> None:
        """Write :meth:`to_json` to ``path`` (atomically: temporary name, then rename)."""
        _save_json(self.to_json(), path)

    @classmethod
    def load(cls, path) -> "WordVocab":
        """Read a vocabulary written by :meth:`save`; ``ValueError`` names the file and the field."""
        path = _io.check_path(path)
        return cls.from_json(_read_json_file(path), source=path)

    def __eq__(self, other) -> bool:
        if not isinstance(other, WordVocab) or len(other) != len(self):
            return False
        (a, ao), (b, bo) = self.concatenated(), other.concatenated()
        return np.array_equal(ao, bo) and np.array_equal(a, b)

    __hash__ = None  # mutable (oov="add" grows it)

    def __repr__(self) -> str:
        return f"WordVocab({fmt_int(len(self))} words)"


#: Bytes from which a fixed vocabulary encodes a buffer in parallel runs of lines.
PARALLEL_ENCODE_BYTES = 1 << 20


def _line_cut(buf: np.ndarray, lo: int, chunk: int) -> int:
    """End of the piece of ``buf`` from ``lo``: just after the last newline within ``chunk``
    bytes, else after the first newline beyond, else the end of ``buf``."""
    hi = lo + chunk
    if hi >= buf.size:
        return buf.size
    last = _kw.last_newline(buf[lo:hi])
    if last >= 0:
        return lo + last + 1
    nxt = _kw.first_newline(buf[hi:])
    return buf.size if nxt < 0 else hi + nxt + 1
