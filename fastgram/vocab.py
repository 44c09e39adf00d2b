"""Vocabularies: text <-> token ids, vectorised.

Two kinds, as in the notebook and in byte-level models:

- ``Vocab.from_text(text)``: the sorted unique characters of a text (the notebook's ``stoi`` /
  ``itos``), optionally with an unknown character that stands for anything else;
- ``Vocab.bytes()``: the 256 byte values of the UTF-8 encoding.

Encoding never loops over characters in Python: the text is encoded to UTF-32 once and the
code points are mapped through a lookup table, so a 100 MB text encodes in seconds.
"""

from __future__ import annotations

import json
import os

import numpy as np

from fastgram._checks import as_int_array, fmt_int

__all__ = ["Vocab"]

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
                raise ValueError(f"chars: entry {i} must be a single character, got {ch!r}")
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
        """The vocabulary as a JSON string (see :meth:`from_json`)."""
        if self.byte_level:
            return json.dumps({"kind": "bytes"})
        return json.dumps({"kind": "chars", "chars": "".join(self.chars), "unk": self.unk}, ensure_ascii=True)

    @classmethod
    def from_json(cls, text: str) -> "Vocab":
        """A vocabulary from :meth:`to_json`'s string."""
        try:
            data = json.loads(text)
            kind = data["kind"]
            if kind == "bytes":
                return cls.bytes()
            if kind == "chars":
                return cls(list(data["chars"]), unk=data.get("unk"))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"not a fastgram vocabulary: {exc}") from None
        raise ValueError(f"not a fastgram vocabulary: unknown kind {kind!r}")

    def save(self, path) -> None:
        """Write :meth:`to_json` to ``path`` (atomically: temporary name, then rename)."""
        from fastgram.corpus import atomic_output

        with atomic_output(path) as tmp:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(self.to_json())

    @classmethod
    def load(cls, path) -> "Vocab":
        """Read a vocabulary written by :meth:`save`."""
        with open(os.fspath(path), encoding="utf-8") as f:
            return cls.from_json(f.read())

    def __eq__(self, other) -> bool:
        return isinstance(other, Vocab) and (self.chars, self.unk) == (other.chars, other.unk)

    def __hash__(self) -> int:
        return hash((self.chars, self.unk))

    def __repr__(self) -> str:
        if self.byte_level:
            return "Vocab.bytes()"
        return f"Vocab({len(self)} chars{'' if self.unk is None else f', unk={self.unk!r}'})"
