"""Words of a line as lmplz reads them."""

from __future__ import annotations

_DELIMITERS = str.maketrans({"\t": " ", "\r": " ", "\0": " "})


def split_words(line: str) -> list[str]:
    """lmplz's words of a line: split at runs of spaces, tabs, CR and NUL (nothing else)."""
    return [w for w in line.translate(_DELIMITERS).split(" ") if w]
