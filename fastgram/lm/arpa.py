"""ARPA text format: write (atomically) and read, with line numbers in every error."""

from __future__ import annotations

import os

import numpy as np

from fastgram._io import atomic_output
from fastgram.kernels import lm as _k

SPECIAL_WORDS = ("<unk>", "<s>", "</s>")
#: Rows formatted per kernel call when writing.
WRITE_BLOCK = 1 << 20


def word_arena(words) -> tuple[np.ndarray, np.ndarray]:
    """The words' UTF-8 bytes, each followed by a newline, and their start offsets (V + 1)."""
    data = ("\n".join(words) + "\n").encode("utf-8", "surrogateescape")
    arena = np.frombuffer(data, np.uint8)
    ends = np.flatnonzero(arena == 10) + 1
    if len(ends) != len(words):
        raise ValueError("words must not contain newlines")
    return arena, np.concatenate([[0], ends]).astype(np.int64)


def write_arpa(path, order, words, rows, prob, backoff) -> None:
    """Write an ARPA file: ``\\data\\``, counts, then each order's n-grams in suffix order.

    ``rows[n-1]`` are reversed n-grams of model ids (``(m, n)``), ``words`` the model's words.
    Values are written with 7 decimals, trailing zeros trimmed (absolute error <= 5e-8, below
    float32 resolution), by :func:`fastgram.kernels.lm.arpa_lines` a block of rows at a time.
    """
    arena, offsets = word_arena(words)
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as f:
            head = ["\\data\\\n"] + [f"ngram {n}={len(rows[n - 1])}\n" for n in range(1, order + 1)] + ["\n"]
            f.write("".join(head).encode())
            for n in range(1, order + 1):
                f.write(f"\\{n}-grams:\n".encode())
                R, p, b = rows[n - 1], prob[n - 1], backoff[n - 1]
                for lo in range(0, len(R), WRITE_BLOCK):
                    part = np.ascontiguousarray(R[lo : lo + WRITE_BLOCK])
                    out = np.empty(_k.arpa_size(part, offsets) + len(part) * 66, np.uint8)
                    hi = lo + len(part)
                    k = _k.arpa_lines(part, p[lo:hi], b[lo:hi], n < order, arena, offsets, out)
                    f.write(out[:k].tobytes())
                f.write(b"\n")
            f.write(b"\\end\\\n")


class _Lines:
    """Lines of a text file with their 1-based numbers, for error messages."""

    def __init__(self, f, path):
        self.f, self.path, self.number = f, path, 0

    def next(self) -> str | None:
        line = self.f.readline()
        if not line:
            return None
        self.number += 1
        return line.rstrip("\r\n")

    def error(self, what: str) -> ValueError:
        return ValueError(f"{self.path}: line {self.number}: {what}")


def read_arpa(path):
    """Parse an ARPA file: ``(order, words, ngrams, prob, backoff)``.

    ``words`` are in the order of the unigram section with ``<unk>``, ``<s>``, ``</s>`` moved
    to ids 0, 1, 2 (``<unk>`` is added with log10 probability -100 when absent, as KenLM does);
    ``ngrams[n-1]`` are forward n-grams of those ids, ``prob``/``backoff`` float64.

    Raises ``ValueError`` naming the file and line for a malformed or truncated file.
    """
    path = os.fspath(path)
    with open(path, encoding="utf-8", errors="surrogateescape", newline="") as f:
        lines = _Lines(f, path)
        line = lines.next()
        while line is not None and line.strip() == "":
            line = lines.next()
        if line is None:
            raise lines.error("empty file, expected \\data\\")
        if line.strip() != "\\data\\":
            raise lines.error(f"expected \\data\\, got {line[:60]!r}")
        sizes = []
        while True:
            line = lines.next()
            if line is None:
                raise lines.error("truncated in the \\data\\ section")
            text = line.strip()
            if not text:
                if sizes:
                    break
                continue
            if not text.startswith("ngram ") or "=" not in text:
                raise lines.error(f"expected 'ngram N=count', got {text[:60]!r}")
            left, right = text[6:].split("=", 1)
            try:
                n, count = int(left), int(right)
            except ValueError:
                raise lines.error(f"expected 'ngram N=count', got {text[:60]!r}") from None
            if n != len(sizes) + 1 or count < 0:
                raise lines.error(f"expected the count of order {len(sizes) + 1}, got {text[:60]!r}")
            sizes.append(count)
        order = len(sizes)
        if not 1 <= order <= 8:
            raise lines.error(f"orders 1 to 8 are supported, the file has {order}")
        vocab: dict[str, int] = {}
        ngram_words, probs, backs = [], [], []
        for n in range(1, order + 1):
            line = lines.next()
            while line is not None and line.strip() == "":
                line = lines.next()
            if line is None:
                raise lines.error(f"truncated: expected \\{n}-grams:")
            if line.strip() != f"\\{n}-grams:":
                raise lines.error(f"expected \\{n}-grams:, got {line[:60]!r}")
            m = sizes[n - 1]
            grams = np.empty((m, n), np.int64)
            p = np.empty(m)
            b = np.zeros(m)
            for i in range(m):
                line = lines.next()
                if line is None or line.strip() == "" or line.startswith("\\"):
                    got = "end of file" if line is None else repr(line[:60])
                    raise lines.error(f"truncated: {n}-gram {i + 1} of {m} expected, got {got}")
                fields = line.split("\t")
                if len(fields) == 1:
                    fields = line.split()
                    fields = [fields[0], " ".join(fields[1 : n + 1])] + fields[n + 1 :]
                if len(fields) not in (2, 3):
                    raise lines.error(f"expected 'log10prob<TAB>words[<TAB>backoff]', got {line[:60]!r}")
                try:
                    p[i] = float(fields[0])
                    if len(fields) == 3:
                        b[i] = float(fields[2])
                except ValueError:
                    raise lines.error(f"bad number in {line[:60]!r}") from None
                ws = fields[1].split()
                if len(ws) != n:
                    raise lines.error(f"expected {n} words, got {len(ws)} in {line[:60]!r}")
                for j, w in enumerate(ws):
                    if n == 1:
                        if w in vocab:
                            raise lines.error(f"unigram {w!r} appears twice")
                        vocab[w] = len(vocab)
                    idx = vocab.get(w)
                    if idx is None:
                        raise lines.error(f"word {w!r} is not among the unigrams")
                    grams[i, j] = idx
                probs_ok = np.isfinite(p[i]) and np.isfinite(b[i])
                if not probs_ok:
                    raise lines.error(f"probability or backoff is not finite in {line[:60]!r}")
            ngram_words.append(grams)
            probs.append(p)
            backs.append(b)
        line = lines.next()
        while line is not None and line.strip() == "":
            line = lines.next()
        if line is None or line.strip() != "\\end\\":
            raise lines.error("expected \\end\\" + (" (file truncated)" if line is None else f", got {line[:60]!r}"))
    # ids: <unk>, <s>, </s> first, then the other unigrams in file order
    names = list(vocab)
    if "<unk>" not in vocab:
        names.append("<unk>")
        ngram_words[0] = np.concatenate([ngram_words[0], [[len(vocab)]]])
        probs[0] = np.concatenate([probs[0], [-100.0]])
        backs[0] = np.concatenate([backs[0], [0.0]])
    for special in ("<s>", "</s>"):
        if special not in vocab:
            raise ValueError(f"{path}: the unigrams lack {special}")
    others = [w for w in names if w not in SPECIAL_WORDS]
    words = list(SPECIAL_WORDS) + others
    new_id = {w: i for i, w in enumerate(words)}
    remap = np.array([new_id[w] for w in names], np.int64)
    ngram_words = [remap[g] for g in ngram_words]
    return order, words, ngram_words, probs, backs


def read_arpa_text(text: str):
    """:func:`read_arpa` of a string (for tests)."""
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".arpa", delete=False) as f:
        f.write(text)
    try:
        return read_arpa(f.name)
    finally:
        os.unlink(f.name)


__all__ = ["write_arpa", "read_arpa"]
