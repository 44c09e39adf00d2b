"""ARPA text format: write (atomically) and read, with line numbers in every error."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile

import numpy as np

from fastgram._io import atomic_output
from fastgram._jit import num_threads, parallel_for
from fastgram.kernels import lm_arpa as _k
from fastgram.kernels import words as _kw
from fastgram.vocab import is_packed, pack_words

SPECIAL_WORDS = ("<unk>", "<s>", "</s>")
#: Rows formatted per block when writing: the block's text (about 8 MB at most) is formatted
#: into one reused buffer and written out while it is still in the cache (2^18 rows wrote the
#: 353 MB model no faster, with 40 MB more held).
WRITE_BLOCK = 1 << 16
#: Largest magnitude of a value the writer formats (7 decimals of it fit an int64).
MAX_ARPA_VALUE = 1e11


def write_arpa(path, order, words, rows, prob, backoff) -> None:
    """Write an ARPA file: ``\\data\\``, counts, then each order's n-grams in suffix order.

    ``rows[n-1]`` are reversed n-grams of model ids (``(m, n)``), ``words`` the model's words
    (str, or packed as :func:`fastgram.vocab.pack_words` gives). The file is written through
    :class:`ArpaWriter`, which checks each order's values before formatting them.

    Raises
    ------
    ValueError
        A probability or backoff that is not finite or is larger in magnitude than
        :data:`MAX_ARPA_VALUE` (the temporary file is removed: ``path`` is left as it was).
    """
    with ArpaWriter(path, order, words, [len(r) for r in rows]) as writer:
        for n in range(1, order + 1):
            writer.write(n, rows[n - 1], prob[n - 1], backoff[n - 1])


def _check_values(n, prob, backoff) -> None:
    for name, values in (("prob", prob), ("backoff", backoff)):
        if len(values) and not -MAX_ARPA_VALUE < values.min() <= values.max() < MAX_ARPA_VALUE:  # NaN fails
            bad = int(np.flatnonzero(~(np.abs(values) < MAX_ARPA_VALUE))[0])
            raise ValueError(
                f"{name} of {n}-gram {bad:,} is {float(values[bad])}: ARPA values must be finite and below "
                f"{MAX_ARPA_VALUE:g} in magnitude"
            )


class ArpaWriter:
    """An ARPA file written as its n-grams come, so a model need not be held whole.

    ``with ArpaWriter(path, order, words, sizes) as w:`` writes the header (``sizes[n-1]``
    n-grams of order n), then ``w.write(n, rows, prob, backoff)`` appends n-grams of order n:
    the orders in increasing order, each in one call or several, in suffix order. Leaving the
    block writes ``\\end\\`` and renames the file into place. On any error (SIGTERM and
    ``KeyboardInterrupt`` included), or if an order is left short, the temporary file is
    removed and ``path`` is left as it was.

    Values are written with 7 decimals, trailing zeros trimmed (absolute error <= 5e-8, below
    float32 resolution), by :func:`fastgram.kernels.lm_arpa.arpa_blocks`, :data:`WRITE_BLOCK`
    rows at a time in 32 parallel pieces. Extra memory: the words twice (``16 V`` bytes of
    words packed 8 bytes at a time besides their text) and one block's text.
    """

    def __init__(self, path, order: int, words, sizes):
        self.order, self.sizes = int(order), [int(m) for m in sizes]
        self.path = path
        arena, offsets = words if is_packed(words) else pack_words(words)
        lengths = np.diff(offsets)  # (V,) bytes of each word
        self._offsets = offsets
        self._slots = np.empty((len(offsets) - 1, 2), np.uint64)  # (V, 2): short words packed, length in byte 15
        self._long = np.empty(int(((lengths + 7) // 8)[lengths > _k.SLOT_BYTES].sum()), np.uint64)
        _k.word_slots(arena, offsets, self._slots, self._long)
        self._text = np.empty(0, np.uint8)  # one text buffer for every block (grown as needed)
        self._n, self._written = 0, 0  # the order being written and its rows so far

    def __enter__(self) -> "ArpaWriter":
        with contextlib.ExitStack() as stack:
            tmp = stack.enter_context(atomic_output(self.path))
            self._file = stack.enter_context(open(tmp, "wb"))
            head = ["\\data\\\n"] + [f"ngram {n}={m}\n" for n, m in enumerate(self.sizes, 1)] + ["\n"]
            self._file.write("".join(head).encode())
            self._stack = stack.pop_all()
        return self

    def _advance(self, n: int) -> None:
        """Close the sections before order n (each must be complete) and open order n's."""
        while self._n < n:
            if self._n and self._written != self.sizes[self._n - 1]:
                raise ValueError(
                    f"{self._n}-grams: {self._written:,} rows where the header says {self.sizes[self._n - 1]:,}"
                )
            if self._n:
                self._file.write(b"\n")
            self._n, self._written = self._n + 1, 0
            if self._n <= self.order:
                self._file.write(f"\\{self._n}-grams:\n".encode())

    def write(self, n: int, rows: np.ndarray, prob: np.ndarray, backoff: np.ndarray) -> None:
        """Append n-grams of order n: ``rows`` (m, n) reversed model ids, log10 ``prob`` and
        ``backoff`` (m,). Raises ``ValueError`` for an order out of turn, more rows than the
        header's, an order left short, or a value :func:`write_arpa` refuses."""
        if not (self._n <= n <= self.order) or n < 1:
            raise ValueError(f"order {n} written out of turn (writing order {self._n} of {self.order})")
        if len(prob) != len(rows) or len(backoff) != len(rows):
            raise ValueError(f"{n}-grams: {len(rows):,} rows, {len(prob):,} probabilities, {len(backoff):,} backoffs")
        _check_values(n, prob, backoff)
        self._advance(n)
        if self._written + len(rows) > self.sizes[n - 1]:
            raise ValueError(f"{n}-grams: more rows than the header's {self.sizes[n - 1]:,}")
        self._written += len(rows)
        f = self._file
        for lo in range(0, len(rows), WRITE_BLOCK):
            hi = min(lo + WRITE_BLOCK, len(rows))
            bounds = np.linspace(lo, hi, 33).astype(np.int64)  # 32 pieces formatted in parallel
            sizes = np.zeros(32, np.int64)
            parallel_for(_k.block_sizes, 32, (rows, self._offsets, bounds, sizes))
            starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
            if self._text.size < sizes.sum():
                self._text = np.empty(int(sizes.sum()), np.uint8)
            written = np.zeros(32, np.int64)
            args = (rows, prob, backoff, n < self.order, self._slots, self._long, bounds, starts, self._text, written)
            parallel_for(_k.arpa_blocks, 32, args)
            for s0, k in zip(starts.tolist(), written.tolist()):
                f.write(self._text[s0 : s0 + k].data)

    def __exit__(self, exc_type, exc, tb) -> bool:
        stack, self._stack = self._stack, None
        if exc_type is not None:
            return stack.__exit__(exc_type, exc, tb)  # the temporary file is removed
        try:
            self._advance(self.order + 1)  # the last sections, each complete
            self._file.write(b"\\end\\\n")
        except BaseException:
            if not stack.__exit__(*sys.exc_info()):
                raise
            return False
        return stack.__exit__(None, None, None)


def _line_of(buf: np.ndarray, pos: int) -> int:
    return int(np.count_nonzero(buf[:pos] == 10)) + 1


def _show(buf: np.ndarray, pos: int) -> str:
    end = pos
    while end < len(buf) and buf[end] != 10 and end - pos < 60:
        end += 1
    return repr(buf[pos:end].tobytes().decode("utf-8", "surrogateescape"))


def _next_line(buf: np.ndarray, pos: int):
    """``(text, start, next position)`` of the line at ``pos`` (``None`` at the end of the file)."""
    if pos >= len(buf):
        return None, pos, pos
    nl = np.flatnonzero(buf[pos : pos + 4096] == 10)
    end = pos + int(nl[0]) if len(nl) else len(buf)
    if not len(nl) and end - pos >= 4096:
        more = np.flatnonzero(buf[pos:] == 10)
        end = pos + int(more[0]) if len(more) else len(buf)
    text = buf[pos:end].tobytes().decode("utf-8", "surrogateescape").rstrip("\r")
    return text, pos, end + 1


def _skip_blank(buf, pos):
    text, start, nxt = _next_line(buf, pos)
    while text is not None and text.strip() == "":
        text, start, nxt = _next_line(buf, nxt)
    return text, start, nxt


#: Bytes per chunk of a section parsed in parallel.
PARSE_CHUNK = 1 << 22


#: Sections of fewer lines are delimited by one serial scan (:func:`_section_end`).
PARALLEL_LINES = 1 << 16


def _newline_blocks(buf, lo, hi):
    """``buf[lo:hi]`` in blocks of :data:`PARSE_CHUNK` bytes, scanned in parallel: ``(starts,
    counts, first_newline, first_break, break_rank)`` of
    :func:`fastgram.kernels.lm_arpa.newline_blocks`."""
    starts = np.arange(lo, hi, PARSE_CHUNK, dtype=np.int64)
    stops = np.minimum(starts + PARSE_CHUNK, hi)
    out = [np.zeros(len(starts), np.int64) for _ in range(4)]
    w0 = min(-buf.__array_interface__["data"][0] % 8, len(buf))  # the first 8-byte aligned byte
    words = buf[w0 : w0 + (len(buf) - w0) // 8 * 8].view(np.uint64)
    parallel_for(_k.newline_blocks, len(starts), (buf, words, w0, starts, stops, *out))
    return (starts, *out)


def _section_end(buf, pos, m):
    """The position after the ``m`` lines from ``pos``, or -1 when the section is shorter: the
    answer of the serial :func:`fastgram.kernels.lm_arpa.section_end`, found by counting
    newlines in parallel blocks, a few at a time. Anything but a whole section (a break or the
    end of the file before its ``m``-th line) takes the serial scan for its exact answer."""
    L = len(buf)
    if m < PARALLEL_LINES or pos >= L or buf[pos] in (10, 92):
        return _k.section_end(buf, pos, m)
    seen, at = 0, pos
    group = PARSE_CHUNK * 2 * max(num_threads(), 1)
    while at < L:
        hi = min(L, at + group)
        starts, counts, _, first_break, break_rank = _newline_blocks(buf, at, hi)
        for c in range(len(starts)):
            if first_break[c] >= 0 and seen + break_rank[c] < m:  # a line of the section is a break
                return _k.section_end(buf, pos, m)
            if seen + counts[c] >= m:
                return int(_k.nth_newline(buf, int(starts[c]), m - seen)) + 1
            seen += int(counts[c])
        at = hi
    return _k.section_end(buf, pos, m)


def _chunks(blocks, end):
    """Line-aligned chunks of ``buf[pos:end]`` from its :func:`_newline_blocks` (the blocks
    start at ``pos`` and cover at least ``end``): ``(cuts, first_line)``, chunk ``c`` being
    ``buf[cuts[c]:cuts[c + 1]]`` and its first line the section's line ``first_line[c]``.
    Each block after the first starts a chunk at the line after its first newline; the block
    counts give that line's number, so no second pass counts lines."""
    starts, counts, first_newline = blocks[0], blocks[1], blocks[2]
    before = np.cumsum(counts) - counts  # newlines before each block
    at = first_newline[1:]
    cut = (at >= 0) & (at + 1 < end)
    cuts = np.concatenate([starts[:1], at[cut] + 1, [end]]).astype(np.int64)
    first_line = np.concatenate([[0], before[1:][cut] + 1]).astype(np.int64)
    return cuts, first_line


def _parse_parallel(buf, chunks, n, index, arena, ids, p, b):
    """Parse the line-aligned ``chunks`` (:func:`_chunks`) of n-grams in parallel; ``(code, at)``."""
    cuts, first_line = chunks
    errs = np.zeros((len(cuts) - 1, 2), np.int64)
    parallel_for(_k.parse_chunks, len(cuts) - 1, (buf, cuts, first_line, n, index, arena, ids, p, b, errs))
    bad = np.flatnonzero(errs[:, 0])
    if len(bad):
        return int(errs[bad[0], 0]), int(errs[bad[0], 1])
    return 0, 0


def _model_ids(path, buf, word_start, word_end, ids, p, b):
    """The unigram section in model ids: ``<unk>``, ``<s>``, ``</s>`` first (``<unk>`` added
    with log10 probability -100 when absent, as KenLM does), then the other words in file order.

    Returns ``(words, remap, ids, p, b)``: the words by model id packed (``(data, offsets)``,
    :func:`fastgram.vocab.pack_words`' layout; no Python strings), ``remap[line] = model id``, and the
    section's ids (remapped), probabilities and backoffs.
    """
    lengths = word_end - word_start  # (V,) bytes of each line's word
    special_at = []
    for special in SPECIAL_WORDS:  # the first line holding each
        word = np.frombuffer(special.encode(), np.uint8)
        at = np.flatnonzero(lengths == len(word))
        for j, c in enumerate(word.tolist()):
            at = at[buf[word_start[at] + j] == c]
        if len(at):
            special_at.append(int(at[0]))
        elif special != "<unk>":
            raise ValueError(f"{path}: the unigrams lack {special}")
        else:  # a line past the section: <unk> itself, added at the end
            special_at.append(len(lengths))
            ids = np.concatenate([ids, np.array([[len(lengths)]], ids.dtype)])
            p = np.concatenate([p, [-100.0]])
            b = np.concatenate([b, [0.0]])
    V = len(ids)
    is_other = np.ones(V, bool)
    is_other[special_at] = False
    order = np.concatenate([special_at, np.flatnonzero(is_other)]).astype(np.int64)  # line of each model id
    remap = np.empty(V, np.int64)
    remap[order] = np.arange(V)
    starts = np.concatenate([word_start, [0]])[order]  # an added <unk> is written below
    ends = np.concatenate([word_end, [0]])[order]
    data = np.empty(int((ends - starts).sum()) + 5, np.uint8)
    k = _kw.gather_words(buf, starts, ends, data)
    offsets = np.zeros(V + 1, np.int64)
    np.cumsum(ends - starts, out=offsets[1:])
    if special_at[0] == len(lengths):  # model id 0, <unk>: the first five bytes
        data[5 : k + 5] = data[:k].copy()
        data[:5] = np.frombuffer(b"<unk>", np.uint8)
        offsets[1:] += 5
        k += 5
    ids[:] = remap[ids]  # in place: the unigrams stay in the rows' buffer
    return (data[:k], offsets), remap, ids, p, b


class _Sections:
    """Every order's n-grams in one buffer of reversed uint32 rows (the model's layout: its
    lookup tables use it as it is) and the values in one float64 buffer each, so nothing is
    copied, reversed or concatenated after parsing (see :meth:`fit`)."""

    def __init__(self, sizes):
        self.sizes = sizes
        self.words_at = np.concatenate([[0], np.cumsum([n * m for n, m in enumerate(sizes, 1)])]).astype(np.int64)
        self.values_at = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.rows = np.empty(int(self.words_at[-1]), np.uint32)
        self.prob = np.empty(int(self.values_at[-1]))
        self.backoff = np.zeros(int(self.values_at[-1]))

    @staticmethod
    def fit(sizes, file_bytes: int):
        """The buffers for ``sizes``, or None when a file of ``file_bytes`` cannot hold them."""
        words = sum(n * m for n, m in enumerate(sizes, 1))
        return _Sections(sizes) if 2 * words <= file_bytes else None

    def section(self, n: int):
        """``(ids, prob, backoff)`` of order ``n``: forward views ``(m, n)``, ``(m,)``, ``(m,)``."""
        w0, w1 = self.words_at[n - 1], self.words_at[n]
        v0, v1 = self.values_at[n - 1], self.values_at[n]
        return self.rows[w0:w1].reshape(-1, n)[:, ::-1], self.prob[v0:v1], self.backoff[v0:v1]

    def result(self):
        """``(grams, probs, backs)`` per order, as :func:`read_arpa` returns them."""
        views = [self.section(n) for n in range(1, len(self.sizes) + 1)]
        return [v[0] for v in views], [v[1] for v in views], [v[2] for v in views]


def _word_index(buf, word_start, word_end, remap, error):
    """``(index, arena, repeated)`` of the unigrams (:func:`fastgram.kernels.lm_arpa.compact_words`;
    ``repeated`` the first line whose word is an earlier line's, or -1); a word longer than the
    index holds raises ``error(position, message)``."""
    lengths = word_end - word_start
    if len(lengths) and int(lengths.max()) > _k.MAX_WORD_BYTES:
        w = int(np.argmax(lengths))
        raise error(word_start[w], f"a word of {int(lengths[w]):,} bytes (at most {_k.MAX_WORD_BYTES:,})")
    size = 1 << max(int(2 * len(lengths) - 1).bit_length(), 4)  # at least twice the words
    index = np.zeros((size, 2), np.uint64)
    arena = np.empty(max(int(lengths.sum()), 1), np.uint8)
    repeated = int(_k.compact_words(buf, word_start, word_end, remap, arena, index))
    return index, arena, repeated


def read_arpa(path):
    """Parse an ARPA file: ``(order, words, ngrams, prob, backoff)``.

    ``words`` (packed ``(data, offsets)``, see :func:`fastgram.vocab.pack_words`) are in the order of the
    unigram section with ``<unk>``, ``<s>``, ``</s>`` moved to ids 0, 1, 2 (``<unk>`` is added
    with log10 probability -100 when absent, as KenLM does);
    ``ngrams[n-1]`` are forward n-grams of those ids (uint32 views ``[:, ::-1]`` of reversed
    rows, all orders in one buffer), ``prob``/``backoff`` float64 (views of one buffer each).
    The sections are parsed by :mod:`fastgram.kernels.lm_arpa` (the file is read whole:
    memory about its size plus 4 bytes per word per n-gram and 16 bytes per n-gram). The file is read,
    not mapped: a mapped file truncated by another process would crash the reader (SIGBUS).

    Raises ``ValueError`` naming the file and line for a malformed or truncated file.
    """
    path = os.fspath(path)
    try:
        return _Stream(path).read()
    except (_Unusual, ValueError):  # an error, or a layout the stream does not take: whole file
        return _parse(path, np.fromfile(path, dtype=np.uint8))


#: Bytes the streaming reader holds of the file at a time (besides the unigram section).
STREAM_BLOCK = 1 << 26


class _Unusual(Exception):
    """Raised by :class:`_Stream` for anything but a well-formed file it can stream."""


class _Stream:
    """Read a well-formed ARPA file through a window of :data:`STREAM_BLOCK` bytes, reused.

    The header and the unigram section are parsed whole from the first window (it grows to
    hold them); the higher orders in runs of whole lines, each run parsed in parallel chunks
    straight into the model's buffers. Anything unexpected (a malformed or truncated file, a
    line longer than a window) raises :class:`_Unusual` or ``ValueError``, and
    :func:`read_arpa` parses the whole file instead (exact error messages; for a valid file
    the same result). Memory: one or two windows and the unigram section instead of the file.
    """

    def __init__(self, path: str):
        self.path = path
        self.file = open(path, "rb")  # closed by read()
        self.buf = np.empty(0, np.uint8)
        self.size = 0  # bytes of buf in use
        self.eof = False

    def fill(self, pos: int, at_least: int) -> int:
        """Drop ``buf[:pos]`` and read until the window is full (at least ``at_least`` bytes
        after ``buf[pos]``, :data:`STREAM_BLOCK` in all, or the file ends); returns the new
        position of the byte that was at ``pos`` (0). The window is reallocated only when it
        cannot hold that: a refill that keeps a partial line reuses it."""
        keep = self.size - pos
        if len(self.buf) < max(keep + at_least, STREAM_BLOCK):
            grown = np.empty(max(keep + at_least, STREAM_BLOCK), np.uint8)
            grown[:keep] = self.buf[pos : self.size]
            self.buf = grown
        elif keep:
            self.buf[:keep] = self.buf[pos : self.size].copy()
        self.size = keep
        view = memoryview(self.buf)
        while not self.eof and self.size < len(self.buf):
            got = self.file.readinto(view[self.size :])
            if not got:
                self.eof = True
            self.size += got or 0
        return 0

    def window(self) -> np.ndarray:
        return self.buf[: self.size]

    def read(self):
        try:
            return self._read()
        finally:
            self.file.close()

    def _read(self):
        def error(pos, what):
            raise _Unusual(what)

        pos = self.fill(0, STREAM_BLOCK)
        sizes, pos = _header(self.path, self.window(), error)
        order = len(sizes)
        V = sizes[0]
        sections = _Sections.fit(sizes, os.fstat(self.file.fileno()).st_size)
        if sections is None:
            raise _Unusual("counts the file cannot hold")

        def header_line(pos, n):
            if self.size - pos < 4096 and not self.eof:
                pos = self.fill(pos, 4096)
            text, _, nxt = _skip_blank(self.window(), pos)
            if text is None or text.strip() != f"\\{n}-grams:" or (nxt > self.size and not self.eof):
                raise _Unusual("section header")
            return nxt

        # unigrams: the whole section in the window (it grows to hold it), parsed in parallel;
        # compact_words finds a repeated word (the whole-file path then names its line)
        pos = header_line(pos, 1)
        while (end := _k.section_end(self.window(), pos, V)) < 0:
            if self.eof:
                raise _Unusual("unigram section")
            pos = self.fill(pos, 2 * (self.size - pos))
        buf = self.window()
        ids, p, b = sections.section(1)
        word_start = np.zeros(V, np.int64)
        word_end = np.zeros(V, np.int64)
        cuts, first_line = _chunks(_newline_blocks(buf, pos, end), end)
        errs = np.zeros((len(cuts) - 1, 2), np.int64)
        parallel_for(_k.unigram_chunks, len(cuts) - 1, (buf, cuts, first_line, word_start, word_end, p, b, errs))
        if errs[:, 0].any():
            raise _Unusual("unigram section")
        pos = end
        ids[:, 0] = np.arange(V)
        words, remap, ids1, p1, b1 = _model_ids(self.path, buf, word_start, word_end, ids, p, b)
        if ids1 is not ids:  # <unk> was added: the whole-file path handles that
            raise _Unusual("no <unk>")
        index, arena, repeated = _word_index(buf, word_start, word_end, remap, error)
        if repeated >= 0:
            raise _Unusual("a unigram appears twice")
        del word_start, word_end, buf

        for n in range(2, order + 1):
            pos = header_line(pos, n)
            m = sizes[n - 1]
            ids, p, b = sections.section(n)
            done = 0
            while done < m:
                if self.size - pos < STREAM_BLOCK // 2 and not self.eof:
                    pos = self.fill(pos, STREAM_BLOCK // 2)  # fits the window: no new one
                buf = self.window()
                if pos >= self.size or buf[pos] in (10, 92):
                    raise _Unusual("short section")
                last = self.size - 1  # the run: whole lines of the window, at most m - done
                while last >= pos and buf[last] != 10:
                    last -= 1
                if last < pos:
                    raise _Unusual("a line longer than the window")
                end, lines, blocks = _run_end(buf, pos, last + 1, m - done, self.eof)
                code, _ = _parse_parallel(buf, _chunks(blocks, end), n, index, arena, ids[done:], p[done:], b[done:])
                if code:
                    raise _Unusual("section line")
                done += lines
                pos = end
        if self.size - pos < 4096 and not self.eof:
            pos = self.fill(pos, 4096)
        text, _, _ = _skip_blank(self.window(), pos)
        if text is None or text.strip() != "\\end\\":
            raise _Unusual("end")
        return (order, words, *sections.result())


def _run_end(buf, pos, hi, want, eof):
    """``(end, lines, blocks)`` of the first ``want`` lines from ``pos`` within ``buf[pos:hi]``
    (whole lines; all of them when there are fewer), with the :func:`_newline_blocks` that
    found them; raises :class:`_Unusual` when one of those lines but the first starts a blank
    line or a header (a short section) or the file ends inside them."""
    blocks = _newline_blocks(buf, pos, hi)
    starts, counts, _, first_break, break_rank = blocks
    seen = 0
    for c in range(len(starts)):
        fb = int(first_break[c])
        window_end = fb == len(buf) - 1 and not eof  # more of the file follows: no break
        if fb >= 0 and seen + break_rank[c] < want and not window_end:
            raise _Unusual("short section")
        if seen + counts[c] >= want:
            return int(_k.nth_newline(buf, int(starts[c]), want - seen)) + 1, want, blocks
        seen += int(counts[c])
    return hi, seen, blocks


#: The most n-grams of one order a file may declare (ids and index slots are 32-bit).
MAX_COUNT = (1 << 32) - 1


def _header(path, buf, error):
    """The ``\\data\\`` section: ``(counts per order, position after it)``."""
    text, start, pos = _skip_blank(buf, 0)
    if text is None:
        raise ValueError(f"{path}: line 0: empty file, expected \\data\\")
    if text.strip() != "\\data\\":
        raise error(start, f"expected \\data\\, got {text[:60]!r}")
    sizes = []
    while True:
        text, start, pos = _next_line(buf, pos)
        if text is None:
            raise error(start, "truncated in the \\data\\ section")
        t = text.strip()
        if not t:
            if sizes:
                break
            continue
        if not t.startswith("ngram ") or "=" not in t:
            raise error(start, f"expected 'ngram N=count', got {t[:60]!r}")
        left, right = t[6:].split("=", 1)
        try:
            n, count = int(left), int(right)
        except ValueError:
            raise error(start, f"expected 'ngram N=count', got {t[:60]!r}") from None
        if n != len(sizes) + 1 or count < 0:
            raise error(start, f"expected the count of order {len(sizes) + 1}, got {t[:60]!r}")
        if count > MAX_COUNT:
            raise error(start, f"{t[:60]!r}: more {n}-grams than a model holds (at most {MAX_COUNT:,} an order)")
        sizes.append(count)
    if not 1 <= len(sizes) <= 8:
        raise error(start, f"orders 1 to 8 are supported, the file has {len(sizes)}")
    return sizes, pos


def _parse(path: str, buf: np.ndarray):
    """:func:`read_arpa` of the file's bytes ``buf`` (no view of ``buf`` is returned)."""

    def error(pos, what):
        return ValueError(f"{path}: line {_line_of(buf, pos) if len(buf) else 0}: {what}")

    sizes, pos = _header(path, buf, error)
    order = len(sizes)
    # A header whose counts the file cannot hold gets per-order arrays, so that its error is the
    # truncation found where the text ends. They hold only as many rows as the rest of the file
    # could: an order-n line takes at least 2n + 1 bytes, so the parser stops (truncated) before
    # it fills them, and a count of 10**11 allocates nothing of its size.
    sections = _Sections.fit(sizes, len(buf))
    rest = len(buf) - pos
    caps = sizes if sections is not None else [min(m, rest // (2 * n + 1) + 1) for n, m in enumerate(sizes, 1)]
    V = caps[0]
    slots = np.full((1 << max(int(2 * V - 1).bit_length(), 4), 2), -1, np.int64)
    word_start = np.zeros(V, np.int64)
    word_end = np.zeros(V, np.int64)
    ngram_ids, probs, backs = [], [], []
    err = np.zeros(2, np.int64)
    for n in range(1, order + 1):
        text, start, pos = _skip_blank(buf, pos)
        if text is None:
            raise error(len(buf), f"truncated: expected \\{n}-grams:")
        if text.strip() != f"\\{n}-grams:":
            raise error(start, f"expected \\{n}-grams:, got {text[:60]!r}")
        m, cap = sizes[n - 1], caps[n - 1]
        if sections is not None:
            ids, p, b = sections.section(n)
        else:
            ids = np.empty((cap, n), np.uint32)
            p = np.empty(cap)
            b = np.zeros(cap)
        end = _section_end(buf, pos, m) if n > 1 else -1
        if end < 0:  # unigrams (they build the word index), or a short section (its error)
            pos = _k.parse_section(buf, pos, n, cap, slots, word_start, word_end, ids, p, b, err)
            code, at = int(err[0]), int(err[1])
            if n == 1 and not code:
                words, remap, ids, p, b = _model_ids(path, buf, word_start, word_end, ids, p, b)
                index, arena, _ = _word_index(buf, word_start, word_end, remap, error)  # parse_section found repeats
        else:
            code, at = _parse_parallel(buf, _chunks(_newline_blocks(buf, pos, end), end), n, index, arena, ids, p, b)
            pos = end
        if code:
            line = _line_of(buf, at)
            if code == _k.ERR_TRUNCATED:
                got = "end of file" if at >= len(buf) else _show(buf, at)
                done = int(np.count_nonzero(buf[:at] == 10)) - (_line_of(buf, start))
                raise ValueError(f"{path}: line {line}: truncated: {n}-gram {done + 1} of {m} expected, got {got}")
            if code == _k.ERR_NUMBER:
                raise ValueError(f"{path}: line {line}: bad number in {_show(buf, at)}")
            if code == _k.ERR_FINITE:
                raise ValueError(f"{path}: line {line}: probability or backoff is not finite in {_show(buf, at)}")
            if code == _k.ERR_WORDS:
                raise ValueError(f"{path}: line {line}: expected {n} words (and at most a backoff) in {_show(buf, at)}")
            end = at
            while end < len(buf) and buf[end] not in (9, 10, 13, 32):
                end += 1
            word = buf[at:end].tobytes().decode("utf-8", "surrogateescape")
            if code == _k.ERR_DUPLICATE:
                raise ValueError(f"{path}: line {line}: unigram {word!r} appears twice")
            raise ValueError(f"{path}: line {line}: word {word!r} is not among the unigrams")
        ngram_ids.append(ids)
        probs.append(p)
        backs.append(b)
    text, start, pos = _skip_blank(buf, pos)
    if text is None or text.strip() != "\\end\\":
        where = len(buf) if text is None else start
        raise error(where, "expected \\end\\" + (" (file truncated)" if text is None else f", got {text[:60]!r}"))
    return order, words, ngram_ids, probs, backs


def read_arpa_text(text: str):
    """:func:`read_arpa` of a string (for tests)."""
    with tempfile.NamedTemporaryFile("w", suffix=".arpa", delete=False) as f:
        f.write(text)
    try:
        return read_arpa(f.name)
    finally:
        os.unlink(f.name)


__all__ = ["write_arpa", "read_arpa"]
