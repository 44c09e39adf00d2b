"""ARPA text kernels of :mod:`fastgram.lm.arpa`: writing lines (fixed decimals) and parsing
sections (numbers, a word hash index, line-aligned parallel chunks)."""

from __future__ import annotations

import numpy as np

from fastgram._jit import kernel, store8

#: Decimal places of the ARPA values written by :func:`arpa_blocks` (absolute error <= 5e-8,
#: below the float32 resolution of values around 1).
ARPA_DECIMALS = 7


#: "00" .. "99": the two ASCII digits of each number below 100, for :func:`_put_fixed`.
_DIGIT_PAIRS = np.frombuffer(b"".join(b"%02d" % i for i in range(100)), np.uint8).copy()


@kernel
def _put_fixed(out, k, x):
    """Write ``x`` with ``ARPA_DECIMALS`` (7) decimals, trailing zeros trimmed; return the new end.

    ``v = round(|x| 10^7)`` (half to even) is written as its integer part, then, unless it is
    a whole number, ``.`` and its 7 decimals less their trailing zeros. The decimals are
    written whole, two digits a table lookup, and the end moves back over the trimmed zeros
    (bytes past the returned end are scratch the next write overwrites). Writes at most 22
    bytes, for ``|x| < 9.2e11`` (the writer checks that).
    """
    scale = 10_000_000  # 10**ARPA_DECIMALS
    v = np.int64(np.rint(abs(x) * scale))
    if v == 0:
        out[k] = 48  # "0"
        return k + 1
    if x < 0:
        out[k] = 45  # "-"
        k += 1
    ip = v // scale
    fp = v - ip * scale
    if ip < 10:
        out[k] = 48 + ip
        k += 1
    else:
        nd = 1  # digits of the integer part
        t = ip
        while t >= 10:
            t //= 10
            nd += 1
        for j in range(nd - 1, -1, -1):
            out[k + j] = 48 + ip % 10
            ip //= 10
        k += nd
    if fp:
        out[k] = 46  # "."
        a = fp // 1_000_000  # digit 1, then pairs 2-3, 4-5, 6-7
        r = fp - a * 1_000_000
        b = r // 10_000
        r -= b * 10_000
        c = r // 100
        d = r - c * 100
        out[k + 1] = 48 + a
        out[k + 2] = _DIGIT_PAIRS[2 * b]
        out[k + 3] = _DIGIT_PAIRS[2 * b + 1]
        out[k + 4] = _DIGIT_PAIRS[2 * c]
        out[k + 5] = _DIGIT_PAIRS[2 * c + 1]
        out[k + 6] = _DIGIT_PAIRS[2 * d]
        out[k + 7] = _DIGIT_PAIRS[2 * d + 1]
        nf = 7
        while fp % 10 == 0:  # trailing zeros: at most 6, as fp > 0
            fp //= 10
            nf -= 1
        k += 1 + nf
    return k


#: Bytes of a word kept inline in its :func:`word_slots` entry (byte 15 holds the length).
SLOT_BYTES = 15
#: Length byte of a :func:`word_slots` entry whose word is in the long-word table.
LONG_WORD = 255


@kernel
def word_slots(arena, offsets, slots, long_text):
    """Each word's bytes (``arena[offsets[w]:offsets[w + 1]]``, the words end to end) in a form
    a writer copies 8 bytes at a time: ``slots`` ``(V, 2)``
    uint64 and ``long_text`` (uint64, ``ceil(len / 8)`` entries per word longer than
    :data:`SLOT_BYTES` bytes).

    A short word is packed little-endian into ``slots[w]`` with its length in the top byte of
    ``slots[w, 1]`` (one 16-byte read gives it whole). A long word's top byte is
    :data:`LONG_WORD`, its length the low 32 bits of ``slots[w, 1]``, and ``slots[w, 0]`` the
    index of its first entry in ``long_text``, where it is packed 8 bytes an entry.
    """
    p = 0
    for w in range(slots.shape[0]):
        a = offsets[w]
        length = offsets[w + 1] - a  # the words end to end
        if length <= SLOT_BYTES:
            lo = np.uint64(0)
            hi = np.uint64(length) << np.uint64(56)
            for c in range(min(length, 8)):
                lo |= np.uint64(arena[a + c]) << np.uint64(8 * c)
            for c in range(8, length):
                hi |= np.uint64(arena[a + c]) << np.uint64(8 * (c - 8))
            slots[w, 0] = lo
            slots[w, 1] = hi
        else:
            slots[w, 0] = p
            slots[w, 1] = (np.uint64(LONG_WORD) << np.uint64(56)) | np.uint64(length)
            for c0 in range(0, length, 8):
                x = np.uint64(0)
                for c in range(min(8, length - c0)):
                    x |= np.uint64(arena[a + c0 + c]) << np.uint64(8 * c)
                long_text[p] = x
                p += 1


ERR_NUMBER, ERR_WORDS, ERR_UNKNOWN, ERR_TRUNCATED, ERR_DUPLICATE, ERR_FINITE = 1, 2, 3, 4, 5, 6


_POW10 = np.array([10.0**k for k in range(23)])


@kernel
def _is_space(c):
    return c == 32 or c == 9 or c == 13


@kernel
def _is_break(c):
    """A byte that ends a word: a space, tab, CR or the newline."""
    return c == 32 or c == 9 or c == 13 or c == 10


@kernel
def _parse_float(buf, a, b):
    """The decimal number ``buf[a:b]`` (``[-+]digits[.digits][e[-+]digits]``, inf/nan not
    accepted); ``(value, ok)``."""
    i = a
    neg = False
    if i < b and (buf[i] == 45 or buf[i] == 43):
        neg = buf[i] == 45
        i += 1
    mant = 0.0
    digits = 0
    while i < b and 48 <= buf[i] <= 57:
        mant = mant * 10.0 + (buf[i] - 48)
        i += 1
        digits += 1
    scale = 0
    if i < b and buf[i] == 46:
        i += 1
        while i < b and 48 <= buf[i] <= 57:
            mant = mant * 10.0 + (buf[i] - 48)
            i += 1
            digits += 1
            scale -= 1
    if digits == 0:
        return 0.0, False
    if i < b and (buf[i] == 101 or buf[i] == 69):
        i += 1
        eneg = False
        if i < b and (buf[i] == 45 or buf[i] == 43):
            eneg = buf[i] == 45
            i += 1
        e = 0
        ed = 0
        while i < b and 48 <= buf[i] <= 57:
            e = min(e * 10 + (buf[i] - 48), 100000)
            i += 1
            ed += 1
        if ed == 0:
            return 0.0, False
        scale += -e if eneg else e
    if i != b:
        return 0.0, False
    if -22 <= scale <= 0:
        value = mant / _POW10[-scale]
    else:
        value = mant * 10.0**scale if scale >= -300 else (mant * 10.0**-300) * 10.0 ** (scale + 300)
    return (-value if neg else value), True


@kernel
def _value(buf, a, b):
    """The log10 probability or backoff ``buf[a:b]``: ``(value, 0)``, or ``(0, ERR_NUMBER)``
    for a malformed number and ``(0, ERR_FINITE)`` for one that is not finite."""
    v, ok = _parse_float(buf, a, b)
    if not ok:
        return 0.0, ERR_NUMBER
    if not np.isfinite(v):
        return 0.0, ERR_FINITE
    return v, 0


@kernel
def _hash_bytes(buf, a, b):
    h = np.uint64(0xCBF29CE484222325)
    for i in range(a, b):
        h = (h ^ np.uint64(buf[i])) * np.uint64(0x100000001B3)
    return h ^ (h >> np.uint64(29))


@kernel
def _find_word(buf, a, b, slots, word_start, word_end):
    """``(id or -1, slot, hash)`` of the word ``buf[a:b]`` in the word hash table.

    ``slots[s] = (hash, id)`` (id -1: empty); a word's bytes are ``buf[word_start[id]:word_end[id]]``.
    """
    mask = np.uint64(slots.shape[0] - 1)
    hv = _hash_bytes(buf, a, b)
    key = np.int64(hv)
    h = hv & mask
    while True:
        w = slots[h, 1]
        if w < 0:
            return -1, h, key
        if slots[h, 0] == key:
            s = word_start[w]
            if word_end[w] - s == b - a:
                same = True
                for k in range(b - a):
                    if buf[s + k] != buf[a + k]:
                        same = False
                        break
                if same:
                    return w, h, key
        h = (h + np.uint64(1)) & mask


@kernel
def parse_section(buf, pos, n, m, slots, word_start, word_end, ids, prob, backoff, err):
    """Parse ``m`` lines of ``n``-grams from ``buf[pos:]``; return the position after them.

    A line: the log10 probability, ``n`` words, an optional backoff, separated by spaces or
    tabs. Unigrams (``n == 1``) register their words (id = line index) in ``slots``; higher
    orders look them up. On an error ``err = (code, byte position)`` and parsing stops.
    """
    L = buf.shape[0]
    prev_a = np.full(n, -1, np.int64)
    prev_b = np.full(n, -1, np.int64)
    prev_id = np.full(n, -1, np.int64)
    for i in range(m):
        if pos >= L or buf[pos] == 10 or buf[pos] == 92:  # end, blank line or a section header
            err[0] = ERR_TRUNCATED
            err[1] = pos
            return pos
        end = pos
        while end < L and buf[end] != 10:
            end += 1
        field = 0
        j = pos
        while j < end:
            while j < end and _is_space(buf[j]):
                j += 1
            if j >= end:
                break
            a = j
            while j < end and not _is_space(buf[j]):
                j += 1
            if field == 0 or field == n + 1:
                v, code = _value(buf, a, j)
                if code:
                    err[0] = code
                    err[1] = pos
                    return pos
                if field == 0:
                    prob[i] = v
                else:
                    backoff[i] = v
            elif field <= n:
                c = field - 1
                # the previous line's word at this position (suffix order repeats the last words)
                pa, pb = prev_a[c], prev_b[c]
                w = -1
                if n > 1 and pb - pa == j - a and pa >= 0:
                    w = prev_id[c]
                    for k in range(j - a):
                        if buf[pa + k] != buf[a + k]:
                            w = -1
                            break
                if w < 0:
                    w, slot, key = _find_word(buf, a, j, slots, word_start, word_end)
                    if n == 1:
                        if w >= 0:
                            err[0] = ERR_DUPLICATE
                            err[1] = a
                            return pos
                        word_start[i] = a
                        word_end[i] = j
                        slots[slot, 0] = key
                        slots[slot, 1] = i
                        w = i
                    elif w < 0:
                        err[0] = ERR_UNKNOWN
                        err[1] = a
                        return pos
                prev_a[c], prev_b[c], prev_id[c] = a, j, w
                ids[i, c] = w
            field += 1
        if field < n + 1 or field > n + 2:
            err[0] = ERR_WORDS
            err[1] = pos
            return pos
        if field == n + 1:
            backoff[i] = 0.0
        pos = end + 1
    return pos


#: Words of at most this many bytes are held inside their index slot (see :func:`compact_words`).
INLINE_BYTES = 8
#: The length field of a slot saying "longer than 254 bytes: compare the arena's bytes".
_LONG = 255


@kernel
def _short_hash(x, n):
    """The index hash of a word of ``n <= INLINE_BYTES`` bytes packed little-endian in ``x``:
    one multiply, no loop over the bytes (a parse hashes tens of millions of words)."""
    h = (x ^ (np.uint64(n) << np.uint64(56))) * np.uint64(0x9E3779B97F4A7C15)
    return h ^ (h >> np.uint64(31))


@kernel
def _word_hash(buf, a, b):
    """``(hash, packed)`` of the word ``buf[a:b]`` in :func:`compact_words`' index: ``packed``
    holds the bytes little-endian when there are at most :data:`INLINE_BYTES` (else 0)."""
    n = b - a
    if n <= INLINE_BYTES:
        x = np.uint64(0)
        for i in range(b - 1, a - 1, -1):
            x = (x << np.uint64(8)) | np.uint64(buf[i])
        return _short_hash(x, n), x
    return _hash_bytes(buf, a, b), np.uint64(0)


@kernel
def compact_words(buf, word_start, word_end, remap, arena, index):
    """Index the unigrams for fast lookups by model id (``remap[line]``); ``arena`` gets their
    bytes.

    ``index`` (P, 2) uint64, P a power of two of at least twice the words, zeros on entry: a
    word of hash ``h`` sits at the first free slot from ``h mod P`` (linear probing) as
    ``(h >> 40 << 40 | min(length, 255) << 32 | id + 1, bytes)``, where ``bytes`` is the word
    itself when it has at most :data:`INLINE_BYTES` bytes (packed little-endian) and
    ``arena start << 24 | length`` otherwise. A lookup reads one 16-byte slot: the upper hash
    bits and the length reject other words, and a short word is compared in the slot itself.
    The hash is :func:`_word_hash` (of the packed bytes for a short word).

    Returns -1, or the first line whose word an earlier line has (nothing more is indexed).
    """
    mask = np.uint64(index.shape[0] - 1)
    k = 0
    for w in range(word_start.shape[0]):
        a, b = word_start[w], word_end[w]
        hv, packed = _word_hash(buf, a, b)
        if _lookup(buf, a, b, hv, packed, index, arena) >= 0:
            return w
        h = hv & mask
        while index[h, 0] != 0:
            h = (h + np.uint64(1)) & mask
        n = b - a
        index[h, 0] = (hv >> np.uint64(40) << np.uint64(40)) | (np.uint64(min(n, _LONG)) << np.uint64(32))
        index[h, 0] |= np.uint64(remap[w] + 1)
        if n <= INLINE_BYTES:
            index[h, 1] = packed
        else:
            index[h, 1] = (np.uint64(k) << np.uint64(24)) | np.uint64(n)
        for i in range(a, b):
            arena[k] = buf[i]
            k += 1
    return -1


#: Longest word :func:`compact_words` can index (the arena's length field has 24 bits).
MAX_WORD_BYTES = (1 << 24) - 1


@kernel
def _lookup(buf, a, b, hv, packed, index, arena):
    """Model id of the word ``buf[a:b]`` (``(hv, packed)`` its :func:`_word_hash`) in
    :func:`compact_words`' index, or -1."""
    mask = np.uint64(index.shape[0] - 1)
    n = b - a
    key = (hv >> np.uint64(40) << np.uint64(40)) | (np.uint64(min(n, _LONG)) << np.uint64(32))
    high = np.uint64(0xFFFFFFFF00000000)
    low = np.uint64(0xFFFFFFFF)
    short = n <= INLINE_BYTES
    h = hv & mask
    while True:
        e = index[h, 0]
        if e == 0:
            return -1
        if e & high == key:
            loc = index[h, 1]
            if short:
                if loc == packed:
                    return np.int64(e & low) - 1
            elif loc & np.uint64(MAX_WORD_BYTES) == np.uint64(n):
                s = np.int64(loc >> np.uint64(24))
                same = True
                for k in range(n):
                    if arena[s + k] != buf[a + k]:
                        same = False
                        break
                if same:
                    return np.int64(e & low) - 1
        h = (h + np.uint64(1)) & mask


@kernel
def section_end(buf, pos, m):
    """The position after ``m`` lines from ``pos``, or -1 when the section is shorter (an end of
    file, a blank line or a header line comes first). A last line without a newline ends at the
    end of ``buf`` (never past it: the chunked parsers read up to this position)."""
    L = buf.shape[0]
    for _ in range(m):
        if pos >= L or buf[pos] == 10 or buf[pos] == 92:
            return -1
        while pos < L and buf[pos] != 10:
            pos += 1
        pos += 1
    return min(pos, L)


_ONES = np.uint64(0x0101010101010101)
_LOW7 = np.uint64(0x7F7F7F7F7F7F7F7F)


@kernel
def _byte_flags(v, byte):
    """The high bit of each byte of ``v`` set where that byte equals ``byte`` (``byte`` times
    :data:`_ONES`), exactly: no borrow reaches a neighbouring byte."""
    y = v ^ byte
    return ~(((y & _LOW7) + _LOW7) | y | _LOW7)


@kernel
def _is_break_at(buf, i):
    """Whether the newline at ``i`` ends a section: a blank line, a ``\\`` header or the end."""
    return i + 1 >= buf.shape[0] or buf[i + 1] == 10 or buf[i + 1] == 92


@kernel
def newline_blocks(w_lo, w_hi, buf, words, w0, starts, stops, counts, first_newline, first_break, break_rank):
    """Per block ``buf[starts[b]:stops[b]]`` in parallel: its newlines (``counts[b]``), the
    first of them (``first_newline[b]``, -1 for none), and the first newline followed by a
    blank line, a ``\\`` header or the end of the file (``first_break[b]``, -1 for none;
    ``break_rank[b]`` its rank among the block's newlines).

    ``words`` is ``buf`` from byte ``w0`` on as uint64 (8-byte aligned): the newlines are
    counted 8 bytes at a time (exact per-byte flags, :func:`_byte_flags`), and only a block
    that may hold a break (one a section ends in) is scanned byte by byte for where.
    """
    nl = np.uint64(10) * _ONES
    bs = np.uint64(92) * _ONES
    top = np.uint64(0x8000000000000000)
    for b in range(w_lo, w_hi):
        lo, hi = starts[b], stops[b]
        c = 0
        maybe = False
        i = lo
        while i < hi and (i < w0 or (i - w0) % 8 != 0):
            if buf[i] == 10:
                c += 1
                maybe |= _is_break_at(buf, i)
            i += 1
        j = (i - w0) // 8
        while j < words.shape[0] and w0 + 8 * j + 8 <= hi:
            v = words[j]
            tn = _byte_flags(v, nl)
            if tn:
                c += np.int64(((tn >> np.uint64(7)) * _ONES) >> np.uint64(56))
                tb = _byte_flags(v, bs)
                if tn & ((tn | tb) >> np.uint64(8)):
                    maybe = True
                elif tn & top:
                    maybe |= _is_break_at(buf, w0 + 8 * j + 7)
            j += 1
        i = max(i, w0 + 8 * j)
        while i < hi:
            if buf[i] == 10:
                c += 1
                maybe |= _is_break_at(buf, i)
            i += 1
        fn = -1
        for i in range(lo, hi):
            if buf[i] == 10:
                fn = i
                break
        fb = -1
        fr = 0
        if maybe:
            k = 0
            for i in range(lo, hi):
                if buf[i] == 10:
                    k += 1
                    if _is_break_at(buf, i):
                        fb = i
                        fr = k
                        break
        counts[b] = c
        first_newline[b] = fn
        first_break[b] = fb
        break_rank[b] = fr


@kernel
def nth_newline(buf, pos, k):
    """Position of the ``k``-th newline (``k >= 1``) from ``pos``, or -1 when there are fewer."""
    for i in range(pos, buf.shape[0]):
        if buf[i] == 10:
            k -= 1
            if k == 0:
                return i
    return -1


@kernel
def unigram_chunks(w_lo, w_hi, buf, starts, first_line, word_start, word_end, prob, backoff, errs):
    """The unigram lines of line-aligned chunks in parallel (as :func:`parse_chunks`): each
    line's log10 probability, word (its bounds ``word_start``/``word_end`` in ``buf``) and
    optional backoff. Nothing is looked up; :func:`compact_words` finds repeated words."""
    for c in range(w_lo, w_hi):
        pos = starts[c]
        stop = starts[c + 1]
        i = first_line[c]
        while pos < stop:
            field = 0
            j = pos
            bad = 0
            while True:
                while j < stop and _is_space(buf[j]):
                    j += 1
                if j >= stop or buf[j] == 10:
                    break
                a = j
                while j < stop and not _is_break(buf[j]):
                    j += 1
                if field == 1:
                    word_start[i] = a
                    word_end[i] = j
                elif field == 0 or field == 2:
                    v, bad = _value(buf, a, j)
                    if bad:
                        break
                    if field == 0:
                        prob[i] = v
                    else:
                        backoff[i] = v
                field += 1
            if bad == 0 and (field < 2 or field > 3):
                bad = ERR_WORDS
            if bad:
                errs[c, 0] = bad
                errs[c, 1] = pos
                break
            if field == 2:
                backoff[i] = 0.0
            i += 1
            while j < stop and buf[j] != 10:
                j += 1
            pos = j + 1


@kernel
def parse_chunks(w_lo, w_hi, buf, starts, first_line, n, index, arena, ids, prob, backoff, errs):
    """:func:`parse_section` for n >= 2 over line-aligned chunks in parallel (chunk ``c`` is
    ``buf[starts[c]:starts[c + 1]]``, its first line the n-gram ``first_line[c]``);
    ``errs[c] = (code, position)`` of the chunk's first error.

    One pass over each line's bytes: a word's first :data:`INLINE_BYTES` bytes are packed as
    it is scanned, so a short word is compared with the previous line's word at its position
    (suffix order repeats the last words) and hashed (:func:`_short_hash`) without another
    loop over its bytes; only a word unlike the previous line's is looked up.
    """
    for c in range(w_lo, w_hi):
        pos = starts[c]
        stop = starts[c + 1]
        i = first_line[c]
        prev_a = np.full(n, -1, np.int64)
        prev_len = np.full(n, -1, np.int64)
        prev_packed = np.zeros(n, np.uint64)
        prev_id = np.full(n, -1, np.int64)
        while pos < stop:
            field = 0
            j = pos
            bad = 0
            at = pos
            while True:
                while j < stop and _is_space(buf[j]):
                    j += 1
                if j >= stop or buf[j] == 10:
                    break
                a = j
                if 1 <= field <= n:
                    x = np.uint64(0)
                    shift = np.uint64(0)
                    while j < stop and not _is_break(buf[j]):
                        if j - a < INLINE_BYTES:
                            x |= np.uint64(buf[j]) << shift
                            shift += np.uint64(8)
                        j += 1
                    col = field - 1
                    length = j - a
                    w = -1
                    if prev_len[col] == length:
                        if length <= INLINE_BYTES:
                            if prev_packed[col] == x:
                                w = prev_id[col]
                        else:
                            w = prev_id[col]
                            pa = prev_a[col]
                            for k in range(length):
                                if buf[pa + k] != buf[a + k]:
                                    w = -1
                                    break
                    if w < 0:
                        hv = _short_hash(x, length) if length <= INLINE_BYTES else _hash_bytes(buf, a, j)
                        w = _lookup(buf, a, j, hv, x, index, arena)
                        if w < 0:
                            bad = ERR_UNKNOWN
                            at = a
                            break
                    prev_a[col], prev_len[col], prev_packed[col], prev_id[col] = a, length, x, w
                    ids[i, col] = w
                else:
                    while j < stop and not _is_break(buf[j]):
                        j += 1
                    if field == 0 or field == n + 1:
                        v, bad = _value(buf, a, j)
                        if bad:
                            break
                        if field == 0:
                            prob[i] = v
                        else:
                            backoff[i] = v
                field += 1
            if bad == 0 and (field < n + 1 or field > n + 2):
                bad = ERR_WORDS
            if bad:
                errs[c, 0] = bad
                errs[c, 1] = at
                break
            if field == n + 1:
                backoff[i] = 0.0
            i += 1
            while j < stop and buf[j] != 10:
                j += 1
            pos = j + 1


@kernel
def arpa_blocks(w_lo, w_hi, rows, prob, backoff, with_backoff, slots, long_text, bounds, starts, out, lengths):
    """The ARPA lines (``prob<TAB>w1 ... wn[<TAB>backoff]``, words in reading order) of the row
    blocks ``bounds[b]:bounds[b + 1]``, block ``b`` written from ``out[starts[b]]`` (room for
    its words plus :data:`ROW_ROOM` bytes a row, :func:`block_sizes`); ``lengths[b]`` the
    bytes written. Words are copied 8 bytes a store from their :func:`word_slots` entries
    (a short word: two stores; a long one: one per 8 bytes of ``long_text``), so a store
    reaches at most 15 bytes past a word's end, inside the row's room.
    """
    n = rows.shape[1]
    for b in range(w_lo, w_hi):
        k = starts[b]
        for i in range(bounds[b], bounds[b + 1]):
            k = _put_fixed(out, k, prob[i])
            out[k] = 9
            k += 1
            for j in range(n - 1, -1, -1):
                w = rows[i, j]
                hi = slots[w, 1]
                length = np.int64(hi >> np.uint64(56))
                if length <= SLOT_BYTES:
                    store8(out, k, slots[w, 0])
                    store8(out, k + 8, hi)
                else:
                    length = np.int64(hi & np.uint64(0xFFFFFFFF))
                    p = np.int64(slots[w, 0])
                    for c in range((length + 7) // 8):
                        store8(out, k + 8 * c, long_text[p + c])
                k += length
                out[k] = 32 if j else (9 if with_backoff else 10)
                k += 1
            if with_backoff:
                k = _put_fixed(out, k, backoff[i])
                out[k] = 10
                k += 1
        lengths[b] = k - starts[b]


#: Bytes a row may take besides its words' bytes: two numbers of at most 22 bytes, n <= 8
#: separators and a newline, and the 16-byte stores of a short word reaching past it.
ROW_ROOM = 66


@kernel
def block_sizes(w_lo, w_hi, rows, offsets, bounds, sizes):
    """Room :func:`arpa_blocks` needs per block: the words' bytes and one more each (the words
    end to end in ``offsets``), and :data:`ROW_ROOM` bytes a row."""
    n = rows.shape[1]
    for b in range(w_lo, w_hi):
        total = np.int64(0)
        for i in range(bounds[b], bounds[b + 1]):
            for j in range(n):
                w = rows[i, j]
                total += offsets[w + 1] - offsets[w] + 1
            total += ROW_ROOM
        sizes[b] = total
