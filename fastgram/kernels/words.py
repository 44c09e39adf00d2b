"""Word tokenisation kernel: bytes of text -> word ids, lmplz's way, in one pass.

:func:`encode_words` scans a buffer of UTF-8 (or any) bytes once. Lines end at ``\\n``; inside a
line words are separated by runs of ``' '``, ``'\\t'``, ``'\\r'`` and ``'\\0'`` (lmplz's
delimiter set, ``lm/builder/corpus_count.cc``). Each word is looked up in an open-addressing
hash table (FNV-1a 64-bit hash, linear probing, load <= 1/2) whose entries are verified
byte by byte against an arena of the vocabulary's words, so two words never share an id
(no hash collisions). Each line's word ids are written followed by ``EOS`` (id 2); a last line
without ``\\n`` gets no ``EOS`` (as lmplz).

The vocabulary lives in plain arrays owned by :class:`fastgram.vocab.WordVocab`:

- ``slots``  (C,) int64, C a power of two: a word id, or -1 for an empty slot;
- ``hashes`` (C,) uint64: the hash of the word in the slot;
- ``arena``  (A,) uint8: the bytes of every word, in id order;
- ``offsets`` (W + 1,) int64: word i is ``arena[offsets[i]:offsets[i + 1]]``;
- ``state`` (8,) int64, read and written: see the ``S_*`` indices.

When adding a word would overfill the table, the arena or ``offsets``, the kernel stops with
``state[S_STATUS] = GROW`` and ``state[S_POS]`` at the start of that word; the wrapper grows the
arrays (rehashing with :func:`rehash`) and calls again, which resumes exactly there. An unknown
word under ``oov == OOV_ERROR`` or a special word (id < 3) under ``skip_specials == 0`` stops with
``UNKNOWN`` / ``SPECIAL`` and ``state[S_POS]`` at the word. The kernel trusts its inputs.

With a fixed vocabulary (``OOV_UNK`` or ``OOV_ERROR``: nothing is added, the tables are only
read) :func:`encode_spans` encodes runs of whole lines in parallel, each as :func:`encode_words`
would.
"""

from __future__ import annotations

import numpy as np

from fastgram._jit import kernel

__all__ = [
    "encode_words",
    "encode_spans",
    "rehash",
    "last_newline",
    "first_newline",
    "gather_words",
    "S_POS",
    "S_OUT",
    "S_WORDS",
    "S_STATUS",
    "S_WORD_END",
    "DONE",
    "GROW",
]

# state indices
S_POS = 0  # next byte to read
S_OUT = 1  # ids written to out
S_WORDS = 2  # words in the vocabulary (W)
S_STATUS = 3  # why the kernel returned
S_WORD_END = 4  # end of the word at S_POS when the status is not DONE

# statuses
DONE = 0
GROW = 1
UNKNOWN = 2
SPECIAL = 3

# oov modes
OOV_ADD = 0
OOV_UNK = 1
OOV_ERROR = 2

EOS = 2
FNV_OFFSET = np.uint64(0xCBF29CE484222325)
FNV_PRIME = np.uint64(0x100000001B3)


@kernel
def _hash(buf, lo, hi):
    h = FNV_OFFSET
    for i in range(lo, hi):
        h = (h ^ np.uint64(buf[i])) * FNV_PRIME
    return h


@kernel
def _same(buf, lo, hi, arena, start, stop):
    if stop - start != hi - lo:
        return False
    for i in range(hi - lo):
        if buf[lo + i] != arena[start + i]:
            return False
    return True


@kernel
def encode_words(buf, out, slots, hashes, arena, offsets, state, oov, skip_specials):
    """Encode ``buf[state[S_POS]:]`` into ``out[state[S_OUT]:]`` (see the module docstring).

    ``out`` must hold ``len(buf) - state[S_POS]`` more ids (every id consumes at least one byte).
    Time O(len(buf)); no allocation.
    """
    n = buf.shape[0]
    mask = np.uint64(slots.shape[0] - 1)
    pos = state[S_POS]
    k = state[S_OUT]
    words = state[S_WORDS]
    status = DONE
    while pos < n:
        c = buf[pos]
        if c == 10:  # '\n'
            out[k] = EOS
            k += 1
            pos += 1
            continue
        if c == 32 or c == 9 or c == 13 or c == 0:
            pos += 1
            continue
        end = pos + 1
        while end < n:
            c = buf[end]
            if c == 10 or c == 32 or c == 9 or c == 13 or c == 0:
                break
            end += 1
        h = _hash(buf, pos, end)
        s = h & mask
        word = -1
        while slots[s] >= 0:
            w = slots[s]
            if hashes[s] == h and _same(buf, pos, end, arena, offsets[w], offsets[w + 1]):
                word = w
                break
            s = (s + np.uint64(1)) & mask
        if word < 0:
            if oov == OOV_ADD:
                used = offsets[words]
                if (
                    2 * (words + 1) > slots.shape[0]
                    or words + 2 > offsets.shape[0]
                    or used + (end - pos) > arena.shape[0]
                ):
                    status = GROW
                    state[S_WORD_END] = end
                    break
                for i in range(end - pos):
                    arena[used + i] = buf[pos + i]
                offsets[words + 1] = used + (end - pos)
                slots[s] = words
                hashes[s] = h
                word = words
                words += 1
            elif oov == OOV_UNK:
                word = 0
            else:
                status = UNKNOWN
                state[S_WORD_END] = end
                break
        elif word < 3:
            if skip_specials:
                pos = end
                continue
            status = SPECIAL
            state[S_WORD_END] = end
            break
        out[k] = word
        k += 1
        pos = end
    state[S_POS] = pos
    state[S_OUT] = k
    state[S_WORDS] = words
    state[S_STATUS] = status


@kernel
def encode_spans(w_lo, w_hi, buf, cuts, out, slots, hashes, arena, offsets, states, oov, skip_specials):
    """:func:`encode_words` of the spans ``buf[cuts[c]:cuts[c + 1]]`` (each starting a line) in
    parallel, span ``c`` into ``out[cuts[c]:cuts[c + 1]]`` with its own ``states[c]`` (zeros but
    ``S_WORDS``). ``oov`` must not be ``OOV_ADD``: the tables are shared and only read."""
    for c in range(w_lo, w_hi):
        lo = cuts[c]
        hi = cuts[c + 1]
        encode_words(buf[lo:hi], out[lo:hi], slots, hashes, arena, offsets, states[c], oov, skip_specials)


@kernel
def rehash(slots, hashes, arena, offsets, n_words):
    """Fill the empty table ``slots`` (all -1) / ``hashes`` with words ``0 .. n_words - 1``."""
    mask = np.uint64(slots.shape[0] - 1)
    for w in range(n_words):
        h = _hash(arena, offsets[w], offsets[w + 1])
        s = h & mask
        while slots[s] >= 0:
            s = (s + np.uint64(1)) & mask
        slots[s] = w
        hashes[s] = h


@kernel
def last_newline(buf):
    """Index of the last ``\\n`` in ``buf``, or -1."""
    for i in range(buf.shape[0] - 1, -1, -1):
        if buf[i] == 10:
            return i
    return -1


@kernel
def first_newline(buf):
    """Index of the first ``\\n`` in ``buf``, or -1."""
    for i in range(buf.shape[0]):
        if buf[i] == 10:
            return i
    return -1


@kernel
def gather_words(buf, word_start, word_end, out):
    """The words' bytes ``buf[word_start[w]:word_end[w]]`` end to end into ``out``; returns the length."""
    k = 0
    for w in range(word_start.shape[0]):
        for b in range(word_start[w], word_end[w]):
            out[k] = buf[b]
            k += 1
    return k
