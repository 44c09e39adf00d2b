"""Fuzz/property families over the whole public API (issue 9), run by ``tests/test_fuzz.py``.

Every case calls one public function (or method, or the CLI's ``main``) with arguments drawn by
hypothesis: every integer and float dtype (byte-swapped too), bool, complex, object and string
arrays, 0-d to 3-d shapes, empty and size-1 arrays, strided views, read-only arrays, memmaps and
Python lists; NaN, infinities, subnormals, 1e308 and negative values; huge and negative sizes
and seeds; wrong kinds of argument (str, None, ragged lists); truncated, damaged and tampered
files. The contract checked:

- the call returns a result of the documented type, shape and dtype (equal to
  :mod:`fastgram.reference`'s where that is cheap to compute), or
- it raises ``TypeError``/``ValueError`` (for paths also ``FileNotFoundError``,
  ``IsADirectoryError``, ``PermissionError``; a loader's ``ValueError`` names the file);
- never another exception, never a crash, never a hang (the subprocess running a family has a
  time limit).

Failures are collected, not raised, so one run reports every distinct bug (each with the first
call that showed it). Run a family by hand::

    python tests/_fuzz.py counting sampling --examples 500     # prints one JSON line per family

``--narrow`` keeps to a few dtypes (int64, uint16, float64, float32) so a bounds-checked run
(``NUMBA_BOUNDSCHECK=1 FASTGRAM_SERIAL=1``, which compiles every specialisation afresh) stays
short.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import shutil
import sys
import tempfile
import time
import traceback

import hypothesis
import numpy as np
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import fastgram as fg
from fastgram import reference
from fastgram.app import cli as fastgram_cli
from fastgram.kernels.random import first_words
from fastgram.lm import sentence_words

ALLOWED = (TypeError, ValueError)
PATH_ALLOWED = (TypeError, ValueError, FileNotFoundError, IsADirectoryError, PermissionError, NotADirectoryError)

INT_DTYPES = [np.dtype(t) for t in ("i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8")]
FLOAT_DTYPES = [np.dtype(t) for t in ("f2", "f4", "f8", "g")]
SWAPPED = [d.newbyteorder() for d in INT_DTYPES[1:4] + INT_DTYPES[5:] + FLOAT_DTYPES[1:3]]
OTHER_DTYPES = [np.dtype(t) for t in ("?", "c8", "c16", "O", "U3", "S2", "M8[s]")]
NARROW_INT = [np.dtype("i8"), np.dtype("u2")]
NARROW_FLOAT = [np.dtype("f8"), np.dtype("f4")]

FLOAT_SPECIALS = [0.0, -0.0, 5e-324, 1e-310, 2.2250738585072014e-308, 1e-300, 0.5, 1.0, 3.0, 1e300, 1e308]
FLOAT_SPECIALS += [1.7976931348623157e308, -1.0, -1e308, math.nan, math.inf, -math.inf]
#: Sizes are small or absurd (>= 2**40): nothing in between, so a wrapper that trusts a size
#: fails at once instead of filling the shared machine's memory.
HUGE = [2**40, 2**62, 2**63 - 1, 2**63, 2**64 - 1, 2**64, 2**100]
WILD = [None, "3", "abc", "", b"x", 3.5, math.nan, math.inf, -1, -(2**63) - 1, True, False, [1, 2], [[1], [1, 2]]]
WILD += [{}, (), object(), np.int8(3), np.uint64(2**64 - 1), np.float32(1.5), 1 + 2j, np.array(3), np.array([1, 2])]
WILD += HUGE


class Run:
    """The tally of one family: cases run and the distinct failures (with their first call)."""

    def __init__(self, family: str):
        self.family = family
        self.cases = 0
        self.failures: dict[str, str] = {}
        self.outcomes: dict[str, list[int]] = {}  # label -> [returned, raised as documented]
        self.tmp = tempfile.mkdtemp(prefix=f"fastgram-fuzz-{family}-")
        self._files = 0

    def path(self, suffix: str = "") -> str:
        self._files += 1
        return os.path.join(self.tmp, f"f{self._files}{suffix}")

    def fail(self, label: str, kind: str, detail: str, call: str) -> None:
        key = f"{label}: {kind}: {detail[:160]}"
        self.failures.setdefault(key, call[:1500])

    def call(self, label: str, fn, *args, allowed=ALLOWED, names_file: str | None = None, **kwargs):
        """``fn(*args, **kwargs)``; an allowed exception gives :data:`RAISED`, any other is recorded."""
        self.cases += 1
        tally = self.outcomes.setdefault(label, [0, 0])
        try:
            out = fn(*args, **kwargs)
            tally[0] += 1
            return out
        except allowed as exc:
            tally[1] += 1
            if DEBUG:
                print(f"{label}: {type(exc).__name__}: {str(exc)[:200]}", file=sys.stderr)
            if names_file is not None and isinstance(exc, ValueError) and os.path.basename(names_file) not in str(exc):
                self.fail(label, "ValueError without the file name", str(exc), _show(args, kwargs))
            return RAISED
        except Exception as exc:  # noqa: BLE001 - the point: anything else is a finding
            tb = traceback.extract_tb(exc.__traceback__)[-1]
            where = f"{os.path.relpath(tb.filename)}:{tb.lineno}"
            self.fail(label, f"{type(exc).__name__} at {where}", str(exc), _show(args, kwargs))
            return RAISED

    def expect(self, label: str, condition: bool, what: str, *args, **kwargs) -> None:
        if not condition:
            self.fail(label, "wrong result", what, _show(args, kwargs))

    def summary(self) -> dict:
        return {"family": self.family, "cases": self.cases, "failures": self.failures, "outcomes": self.outcomes}


RAISED = object()
DEBUG = os.environ.get("FASTGRAM_FUZZ_DEBUG") == "1"


def _show(args, kwargs) -> str:
    def one(x):
        if isinstance(x, np.ndarray):
            kind = type(x).__name__
            body = np.array2string(np.asarray(x).ravel()[:24], threshold=30)
            return f"{kind}(dtype={x.dtype.str}, shape={x.shape}, strides={x.strides}, {body})"
        r = repr(x)
        return r if len(r) < 300 else r[:300] + "..."

    return ", ".join([one(a) for a in args] + [f"{k}={one(v)}" for k, v in kwargs.items()])


# --------------------------------------------------------------------------------------------
# strategies


def mostly(valid, other, tenths: int = 8):
    """``valid`` in about ``tenths`` of ten draws, else ``other``."""
    return st.integers(0, 9).flatmap(lambda r: valid if r < tenths else other)


def wild():
    return st.sampled_from(WILD)


def int_arg(lo: int, hi: int, extra=()):
    """Mostly a valid int in [lo, hi]; sometimes an edge, a huge or negative value, or a wrong kind."""
    edges = st.sampled_from([lo - 1, lo, hi, hi + 1, -(2**63), *HUGE, *extra])
    return mostly(st.integers(lo, hi), st.one_of(edges, wild()))


def float_arg(lo: float, hi: float):
    return mostly(st.floats(lo, hi), st.one_of(st.sampled_from([lo, hi, *FLOAT_SPECIALS]), st.integers(-3, 3), wild()))


def _float_elements(dtype):
    finfo = np.finfo(dtype) if dtype.kind == "f" else None
    top = float(finfo.max) if finfo is not None and finfo.bits <= 64 else 1.7976931348623157e308
    return st.one_of(st.sampled_from(FLOAT_SPECIALS), st.floats(-top, top), st.floats(-1e3, 1e3))


def _int_elements(dtype, lo_hint: int, hi_hint: int):
    info = np.iinfo(dtype)
    lo, hi = max(info.min, lo_hint), min(info.max, hi_hint)
    specials = [
        v for v in (0, 1, -1, info.min, info.max, hi_hint, hi_hint + 1, lo_hint - 1) if info.min <= v <= info.max
    ]
    inner = st.integers(lo, hi) if lo <= hi else st.just(0)
    return st.one_of(inner, inner, inner, st.sampled_from(specials), st.integers(info.min, info.max))


def _build(values, dtype, shape):
    with np.errstate(all="ignore"):
        if dtype.kind in "iu":
            native = dtype.newbyteorder("=")
            arr = np.array(values, dtype=native).astype(dtype)
        elif dtype.kind == "f":
            arr = np.array(values, dtype=np.float64).astype(dtype)
        elif dtype.kind == "c":
            arr = np.array(values, dtype=np.complex128).astype(dtype)
        elif dtype.kind == "b":
            arr = np.array([bool(v) for v in values], dtype=bool)
        elif dtype.kind == "O":
            arr = np.array(values + [None], dtype=object)[:-1]
        elif dtype.kind in "US":
            arr = np.array([str(v)[:2] for v in values], dtype=dtype)
        else:
            arr = np.array([int(v) % 10**9 for v in values], dtype="i8").astype(dtype)
    return arr.reshape(shape)


@st.composite
def arrays(draw, run: Run, dtypes, shapes, lo: int = 0, hi: int = 10, float_lo=None, float_hi=None):
    """An array of one of ``dtypes`` and ``shapes`` in one of several layouts (or a Python list)."""
    dtype = draw(st.sampled_from(dtypes))
    shape = draw(shapes)
    size = int(np.prod(shape)) if shape else 1
    clean = draw(st.integers(0, 9)) < 8  # most arrays hold only valid values; the rest anything
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        inner = (
            st.integers(max(lo, info.min), min(hi, info.max)) if max(lo, info.min) <= min(hi, info.max) else st.just(0)
        )
        elements = inner if clean else _int_elements(dtype, lo, hi)
    elif dtype.kind in "fc" and clean:
        top = float(np.finfo(dtype).max) if dtype.kind == "f" and dtype.itemsize <= 8 else 1.7976931348623157e308
        elements = st.floats(
            float_lo if float_lo is not None else -1e3, min(float_hi if float_hi is not None else 1e3, top)
        )
    elif dtype.kind == "f" and float_lo is not None:
        elements = st.one_of(st.floats(float_lo, float_hi), st.sampled_from(FLOAT_SPECIALS))
    elif dtype.kind in "fc":
        elements = _float_elements(dtype)
    else:
        elements = st.integers(-3, 300)
    values = draw(st.lists(elements, min_size=size, max_size=size))
    arr = _build(values, dtype, shape)
    layout = draw(st.sampled_from(["c", "c", "c", "strided", "reversed", "fortran", "readonly", "memmap", "list"]))
    if layout == "strided" and arr.ndim:
        wide = np.empty(arr.shape[:-1] + (2 * arr.shape[-1],), dtype)
        wide[..., ::2] = arr
        arr = wide[..., ::2]
    elif layout == "reversed" and arr.ndim:
        arr = arr[::-1][::-1] if arr.shape[0] < 2 else np.ascontiguousarray(arr[::-1])[::-1]
    elif layout == "fortran":
        arr = np.asfortranarray(arr)
    elif layout == "readonly":
        arr = arr.copy()
        arr.setflags(write=False)
    elif layout == "memmap" and arr.size and dtype.kind not in "OUSM":
        path = run.path(".mm")
        arr.tofile(path)
        arr = np.memmap(path, dtype=dtype, mode="r", shape=arr.shape)
    elif layout == "list" and dtype.kind in "iufb" and dtype.isnative:
        return arr.tolist()
    return arr


def shapes(min_dims=0, max_dims=3, max_side=6):
    return st.lists(st.integers(0, max_side), min_size=min_dims, max_size=max_dims).map(tuple)


def dims(lo: int, hi: int, max_side: int = 6):
    """Mostly a shape of ``lo`` to ``hi`` axes of 1 to ``max_side``; sometimes any small shape."""
    good = st.lists(st.integers(1, max_side), min_size=lo, max_size=hi).map(tuple)
    return mostly(good, shapes(0, 3, max_side))


def _dtypes(narrow: bool, kind: str):
    if narrow:
        return NARROW_INT if kind == "int" else NARROW_FLOAT
    ints = INT_DTYPES + [d for d in SWAPPED if d.kind in "iu"]
    # float32/float64 (either byte order) are what float arguments take: most draws use them
    floats = 4 * [np.dtype("f4"), np.dtype("f8"), np.dtype(">f4"), np.dtype(">f8")] + FLOAT_DTYPES
    return {"int": ints, "float": floats, "any": ints + floats + OTHER_DTYPES}[kind]


def tokens(data, run: Run, narrow: bool, V: int, *, one_d: bool = True, max_len: int = 40):
    """Mostly a valid 1-D id stream for V; sometimes any dtype, shape or value."""
    roll = data.draw(st.integers(0, 9))
    kind = "any" if roll == 0 and not narrow else "int"
    shp = shapes(1, 1, max_len) if (roll > 1 and one_d) else shapes(0, 3, 6)
    return data.draw(arrays(run, _dtypes(narrow, kind), shp, 0, max(V - 1, 0)))


def asarray(x):
    return x if isinstance(x, np.ndarray) else np.asarray(x)


def _same(a, b, rtol=0.0, atol=0.0) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False
    if rtol == 0 and atol == 0:
        return bool(np.array_equal(a, b, equal_nan=a.dtype.kind == "f"))
    return bool(np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=True))


def _ref(fn, *args, **kwargs):
    """The reference's answer, or RAISED when it declines (it validates less than the kernels)."""
    try:
        with np.errstate(all="ignore"):
            return fn(*args, **kwargs)
    except Exception:  # noqa: BLE001
        return RAISED


# --------------------------------------------------------------------------------------------
# counting


def _rows_increase(keys: np.ndarray) -> bool:
    """Strictly increasing keys: 1-D words, or (m, K) rows compared word by word (wide keys)."""
    if keys.ndim == 1:
        return bool(np.all(np.diff(keys) > 0))
    if len(keys) < 2:
        return True
    a, b = keys[:-1], keys[1:]
    differ = a != b
    first = np.argmax(differ, axis=1)
    rows = np.arange(len(a))
    return bool(differ.any(axis=1).all() and (a[rows, first] < b[rows, first]).all())


def _check_counts(run, label, c, *args, **kwargs):
    ok = isinstance(c, fg.NGramCounts) and c.keys.dtype == np.uint64 and c.counts.dtype == np.int64
    ok = ok and c.keys.ndim in (1, 2) and c.keys.shape[0] == c.counts.shape[0] and _rows_increase(c.keys)
    ok = ok and bool(np.all(c.counts >= 1)) and c.ngrams.shape == (c.counts.size, c.n)
    run.expect(label, ok, "NGramCounts invariants", *args, **kwargs)
    return ok


def fam_counting(run: Run, data, narrow: bool) -> None:
    V = data.draw(st.sampled_from([1, 2, 3, 5, 17, 256, 300, 70000]))
    target = data.draw(
        st.sampled_from(["bigrams", "ngrams", "bigram_counter", "ngram_counter", "counts", "from_dense"])
    )
    t = tokens(data, run, narrow, V)
    if target == "bigrams":
        vs = data.draw(st.one_of(st.none(), st.just(V), int_arg(0, 400)))
        mm = data.draw(st.sampled_from([None, None, 2**31, "2G", "1K", 0, -1, "x", 1.5, 2**70]))
        kw = {} if mm is None else {"max_memory": mm}
        out = run.call("count_bigrams", fg.count_bigrams, t, vs, **kw)
        if out is not RAISED:
            ok = (
                isinstance(out, np.ndarray) and out.dtype == np.int64 and out.ndim == 2 and out.shape[0] == out.shape[1]
            )
            run.expect("count_bigrams", ok, "int64 (V, V)", t, vs)
            want = _ref(reference.count_bigrams, asarray(t), vs)
            run.expect("count_bigrams", want is RAISED or _same(out, want), "equals reference", t, vs)
    elif target == "ngrams":
        n = data.draw(int_arg(1, 8))
        vs = data.draw(st.one_of(st.none(), st.just(V), int_arg(0, 2**20), st.sampled_from([2**32, 2**63, 2**64])))
        sep = data.draw(st.one_of(st.none(), st.none(), int_arg(0, V)))
        mc = data.draw(st.one_of(st.just(1), int_arg(1, 3)))
        mm = data.draw(st.sampled_from([None, None, None, 4096, "64K", -3, "bad"]))
        kw = dict(separator=sep, min_count=mc, max_memory=mm)
        if mm is not None:
            kw["tmp_dir"] = run.tmp
        out = run.call("count_ngrams", fg.count_ngrams, t, n, vs, **kw)
        if out is not RAISED and _check_counts(run, "count_ngrams", out, t, n, vs, **kw):
            want = _ref(reference.count_ngrams, asarray(t), n, vs, separator=sep, min_count=mc)
            if want is not RAISED:
                run.expect(
                    "count_ngrams",
                    _same(out.ngrams, want[0]) and _same(out.counts, want[1]),
                    "equals reference",
                    t,
                    n,
                    vs,
                    **kw,
                )
    elif target == "bigram_counter":
        vs = data.draw(st.one_of(st.just(V), int_arg(0, 300)))
        vocab = data.draw(st.sampled_from([None, None, "abc", fg.Vocab.bytes(), fg.Vocab("ab"), 5]))
        counter = run.call("BigramCounter", fg.BigramCounter, vs, vocab=vocab)
        if counter is RAISED:
            return
        chunks = [t, tokens(data, run, narrow, V)]
        for ch in chunks:
            run.call("BigramCounter.update", counter.update, ch)
        counts = run.call("BigramCounter.counts", lambda: counter.counts)
        if counts is not RAISED:
            run.expect("BigramCounter.counts", isinstance(counts, np.ndarray) and counts.dtype == np.int64, "int64")
        other = run.call("BigramCounter", fg.BigramCounter, data.draw(st.sampled_from([vs, 2, 7])))
        if other is not RAISED:
            run.call("BigramCounter.merge", counter.merge, other)
        run.call("BigramCounter.merge", counter.merge, data.draw(wild()))
        path = run.path(".npz")
        if run.call("BigramCounter.save", counter.save, path, allowed=PATH_ALLOWED) is not RAISED:
            back = run.call("BigramCounter.load", fg.BigramCounter.load, path, allowed=PATH_ALLOWED)
            if back is not RAISED and counts is not RAISED:
                run.expect("BigramCounter.load", _same(back.counts, counter.counts), "round trip", vs, vocab)
    elif target == "ngram_counter":
        n = data.draw(int_arg(1, 8))
        vs = data.draw(st.one_of(st.just(V), int_arg(0, 2**16)))
        sep = data.draw(st.one_of(st.none(), int_arg(0, V)))
        mm = data.draw(st.sampled_from([None, None, 2048, "1M"]))
        counter = run.call("NGramCounter", fg.NGramCounter, n, vs, separator=sep, max_memory=mm, tmp_dir=run.tmp)
        if counter is RAISED:
            return
        with contextlib.closing(counter):
            for ch in (t, tokens(data, run, narrow, V)):
                run.call("NGramCounter.update", counter.update, ch)
            if data.draw(st.booleans()):
                other = run.call("NGramCounter", fg.NGramCounter, n, data.draw(st.sampled_from([vs, 3])))
                if other is not RAISED:
                    run.call("NGramCounter.update", other.update, tokens(data, run, narrow, 3))
                    run.call("NGramCounter.merge", counter.merge, other)
                    other.close()
            out = run.call("NGramCounter.result", counter.result, data.draw(int_arg(1, 3)))
            if out is not RAISED:
                _check_counts(run, "NGramCounter.result", out, n, vs, sep)
    elif target == "counts":
        n = data.draw(int_arg(1, 8))
        keys = data.draw(
            arrays(run, _dtypes(narrow, "int") + ([] if narrow else [np.dtype("f8")]), shapes(1, 2, 8), 0, V**2)
        )
        if data.draw(st.booleans()) and isinstance(keys, np.ndarray) and keys.ndim == 1:
            keys = np.unique(keys.astype(np.uint64, casting="unsafe"))
        m = len(keys) if hasattr(keys, "__len__") else 1
        cnts = data.draw(arrays(run, _dtypes(narrow, "int"), st.sampled_from([(m,), (m,), (m + 1,), ()]), 1, 9))
        vs = data.draw(st.one_of(st.just(V), int_arg(0, 2**32)))
        sep = data.draw(st.one_of(st.none(), int_arg(-1, V)))
        toks = data.draw(st.one_of(st.just(0), int_arg(0, 100)))
        c = run.call("NGramCounts", fg.NGramCounts, keys, cnts, n, vs, separator=sep, tokens=toks)
        if c is RAISED or not _check_counts(run, "NGramCounts", c, keys, cnts, n, vs, separator=sep):
            return
        probe = data.draw(arrays(run, _dtypes(narrow, "int"), shapes(1, 2, 4), 0, V))
        run.call("NGramCounts.lookup", c.lookup, probe)
        run.call("NGramCounts.pack", c.pack, probe)
        run.call("NGramCounts.top", c.top, data.draw(int_arg(0, 5)))
        p = run.call("NGramCounts.prune", c.prune, data.draw(int_arg(1, 5)))
        if p is not RAISED:
            _check_counts(run, "NGramCounts.prune", p)
        run.call("NGramCounts.merge", c.merge, data.draw(st.sampled_from([c, 3, None])))
        d = run.call("NGramCounts.to_dense", c.to_dense, data.draw(st.sampled_from([2**31, 2**12, 0, "1M", -1])))
        if d is not RAISED:
            run.expect(
                "NGramCounts.to_dense", int(d.sum()) == int(c.counts.sum()), "same total", c.keys, c.n, c.vocab_size
            )
    else:
        dims = data.draw(st.integers(1, 3))
        side = st.integers(1, 5).map(lambda v: (v,) * dims)
        table = data.draw(
            mostly(
                arrays(run, _dtypes(narrow, "int"), side, 0, 9),
                arrays(run, _dtypes(narrow, "any"), shapes(0, 3, 5), 0, 9),
            )
        )
        c = run.call("NGramCounts.from_dense", fg.NGramCounts.from_dense, table)
        if c is not RAISED and _check_counts(run, "NGramCounts.from_dense", c, table):
            d = run.call("NGramCounts.to_dense", c.to_dense)
            run.expect("NGramCounts.from_dense", d is RAISED or _same(d, np.asarray(table)), "round trip", table)


# --------------------------------------------------------------------------------------------
# sampling and metrics


def _table(data, run, narrow, *, square: bool, max_side: int = 5):
    roll = data.draw(st.integers(0, 9))
    if roll == 0:
        return data.draw(wild())
    if roll == 1 and not narrow:
        return data.draw(arrays(run, _dtypes(False, "any"), shapes(0, 3, 4)))
    R = data.draw(st.integers(1, max_side))
    V = R if square or data.draw(st.booleans()) else data.draw(st.integers(0, max_side))
    kind = data.draw(st.sampled_from(["int", "float", "float"]))
    tab = data.draw(arrays(run, _dtypes(narrow, kind), st.just((R, V)), 0, 2**62, 0.0, 1e308))
    if roll == 2:
        c = run.call("NGramCounts.from_dense", fg.NGramCounts.from_dense, tab)
        return tab if c is RAISED else c
    return tab


def _seed():
    return mostly(st.integers(0, 2**64 - 1), st.sampled_from([0, 2**64, -1, 1.0, "1", None, np.uint64(5)]))


def _positive(table, rows, cols) -> bool:
    t = table.to_dense() if isinstance(table, fg.NGramCounts) else np.asarray(table)
    return bool(np.all(t[rows, cols] > 0))


def fam_sampling(run: Run, data, narrow: bool) -> None:
    target = data.draw(st.sampled_from(["sampler", "probs", "next", "generate", "logits", "multinomial", "uniform"]))
    seed = data.draw(_seed())
    offset = data.draw(mostly(st.integers(0, 100), st.sampled_from([2**63, 2**64 - 5, 2**64, -1, "1", None, 1.5])))
    if target == "sampler":
        tab = _table(data, run, narrow, square=False)
        s = run.call("Sampler", fg.Sampler, tab)
        if s is not RAISED:
            run.expect("Sampler", len(s.shape) == 2, "2-D shape", tab)
            run.call("Sampler.tempered", s.tempered, data.draw(float_arg(0, 5)))
    elif target == "probs":
        tab = _table(data, run, narrow, square=False)
        k = data.draw(st.one_of(st.just(1.0), float_arg(0, 10)))
        out = run.call("bigram_probs", fg.bigram_probs, tab, k)
        if out is not RAISED:
            ok = isinstance(out, np.ndarray) and out.dtype == np.float64 and out.ndim == 2 and np.isfinite(out).all()
            sums = out.sum(axis=1) if ok else None
            ok = ok and bool(np.all((np.abs(sums - 1) < 1e-9) | (sums == 0)))
            run.expect("bigram_probs", ok, "float64 rows summing to 1 or 0", tab, k)
    elif target == "next":
        tab = _table(data, run, narrow, square=False)
        R = np.asarray(tab).shape[0] if isinstance(tab, np.ndarray) and np.ndim(tab) else 3
        cur = tokens(data, run, narrow, R, one_d=False, max_len=30)
        out = run.call("sample_next", fg.sample_next, tab, cur, seed=seed, offset=offset)
        if out is not RAISED:
            ok = isinstance(out, np.ndarray) and out.dtype == np.int64 and out.shape == np.shape(cur)
            ok = ok and _positive(tab, asarray(cur).astype(np.int64), out)
            run.expect("sample_next", ok, "int64 of current's shape, on positive weights", tab, cur, seed=seed)
            want = _ref(reference.sample_next, tab, cur, seed=seed, offset=offset)
            run.expect("sample_next", want is RAISED or _same(out, want), "equals reference", tab, cur, seed=seed)
    elif target == "generate":
        tab = _table(data, run, narrow, square=True)
        V = np.asarray(tab).shape[0] if isinstance(tab, np.ndarray) and np.ndim(tab) else 3
        start = data.draw(st.one_of(int_arg(0, max(V - 1, 0)), st.just(None)))  # V = 0: every start is bad
        if start is None:
            start = tokens(data, run, narrow, V, one_d=False, max_len=6)
        length = data.draw(st.one_of(st.integers(0, 12), int_arg(0, 12)))
        temp = data.draw(st.one_of(st.just(1.0), float_arg(0, 3)))
        stop = data.draw(st.one_of(st.none(), int_arg(0, V)))
        kw = dict(seed=seed, temperature=temp, stop_token=stop, offset=offset)
        out = run.call("generate", fg.generate, tab, start, length, **kw)
        if out is not RAISED:
            ok = isinstance(out, np.ndarray) and out.dtype == np.int64 and out.shape == np.shape(start) + (length,)
            run.expect("generate", ok, "int64 start.shape + (length,)", tab, start, length, **kw)
            want = _ref(reference.generate, tab, start, length, **kw)
            run.expect("generate", want is RAISED or _same(out, want), "equals reference", tab, start, length, **kw)
    elif target == "logits":
        x = data.draw(arrays(run, _dtypes(narrow, "float" if data.draw(st.integers(0, 5)) else "any"), dims(1, 3)))
        kw = dict(
            temperature=data.draw(st.one_of(st.just(1.0), float_arg(0, 3))),
            top_k=data.draw(st.one_of(st.none(), int_arg(1, 8))),
            top_p=data.draw(st.one_of(st.none(), float_arg(0, 1))),
            min_p=data.draw(st.one_of(st.none(), float_arg(0, 1))),
            num_samples=data.draw(st.one_of(st.none(), int_arg(1, 40))),
            seed=seed,
            offset=offset,
        )
        out = run.call("sample_logits", fg.sample_logits, x, **kw)
        if out is not RAISED:
            shape = np.shape(x)[:-1] + (() if kw["num_samples"] is None else (kw["num_samples"],))
            ok = isinstance(out, np.ndarray) and out.dtype == np.int64 and out.shape == shape
            run.expect("sample_logits", ok, "int64 of shape (...,) or (..., num_samples)", x, **kw)
            want = _ref(reference.sample_logits, x, **kw)
            run.expect("sample_logits", want is RAISED or _same(out, want), "equals reference", x, **kw)
    elif target == "multinomial":
        p = data.draw(
            arrays(
                run,
                _dtypes(narrow, "float" if data.draw(st.integers(0, 5)) else "any"),
                dims(1, 2),
                float_lo=0.0,
                float_hi=1e308,
            )
        )
        num = data.draw(st.one_of(st.integers(1, 8), int_arg(1, 40)))
        rep = data.draw(st.sampled_from([True, True, False, 1, None]))
        out = run.call("multinomial", fg.multinomial, p, num, rep, seed=seed, offset=offset)
        if out is not RAISED:
            pa = asarray(p)
            ok = isinstance(out, np.ndarray) and out.dtype == np.int64 and out.shape == pa.shape[:-1] + (num,)
            ok = ok and bool(np.all(np.take_along_axis(np.atleast_2d(pa), np.atleast_2d(out), -1) > 0))
            run.expect("multinomial", ok, "int64 (..., num_samples) on positive weights", p, num, rep, seed=seed)
            want = _ref(reference.multinomial, p, num, rep, seed=seed, offset=offset)
            run.expect("multinomial", want is RAISED or _same(out, want), "equals reference", p, num, rep, seed=seed)
    else:
        shape = data.draw(st.one_of(st.integers(0, 30), st.tuples(st.integers(0, 4), st.integers(0, 9)), wild()))
        shape = data.draw(st.sampled_from([shape, shape, (3, -1), (2**40, 2**40), (1, 2, 3), 2**45, -2]))
        out = run.call("uniform", fg.uniform, shape, seed=seed, offset=offset)
        if out is not RAISED:
            ok = isinstance(out, np.ndarray) and out.dtype == np.float64 and bool(np.all((out >= 0) & (out < 1)))
            run.expect("uniform", ok, "float64 in [0, 1)", shape, seed=seed, offset=offset)
            want = _ref(reference.uniform, shape, seed=seed, offset=offset)
            run.expect("uniform", want is RAISED or _same(out, want), "equals reference", shape, seed=seed)


def fam_metrics(run: Run, data, narrow: bool) -> None:
    tab = _table(data, run, narrow, square=data.draw(st.integers(0, 4)) > 0)
    V = np.asarray(tab).shape[0] if isinstance(tab, np.ndarray) and np.ndim(tab) else 3
    t = tokens(data, run, narrow, V)
    fn, ref = data.draw(st.sampled_from([(fg.nll, reference.nll), (fg.perplexity, reference.perplexity)]))
    out = run.call(fn.__name__, fn, tab, t)
    if out is not RAISED:
        run.expect(fn.__name__, isinstance(out, float) and not math.isnan(out), "a float, not NaN", tab, t)
        want = _ref(ref, tab, t)
        run.expect(fn.__name__, want is RAISED or _same(out, want, 1e-9, 1e-12), f"equals reference {want!r}", tab, t)


# --------------------------------------------------------------------------------------------
# attention


def _no_overflow(*arrays) -> bool:
    """Every value finite and at most 1e150 in size, so no product in ``q kᵀ`` or ``weights @ v``
    overflows. Where one does, IEEE leaves the answer to the order of the sum and to whether a
    multiply-add is fused: ``-inf + fma(a, b, ...)`` with ``a b`` past the float range stays
    ``-inf`` fused and is NaN unfused, and the kernels (fast-math, contracted) and NumPy's
    matmul differ there with neither wrong. Such inputs are checked for a result of the right
    type and shape, and no crash."""
    for a in arrays:
        x = np.asarray(a)
        if x.dtype.kind == "f" and x.size and not (np.isfinite(x).all() and np.abs(x).max() <= 1e150):
            return False
    return True


def fam_attention(run: Run, data, narrow: bool) -> None:
    fl = _dtypes(narrow, "float")
    dt = data.draw(
        mostly(
            st.sampled_from(fl),
            st.sampled_from([np.dtype("i4"), np.dtype("c8"), np.dtype("?")] if not narrow else fl),
            9,
        )
    )
    B = data.draw(st.lists(st.integers(0, 2), max_size=2).map(tuple))
    Hkv = data.draw(st.sampled_from([1, 2]))
    H = Hkv * data.draw(st.sampled_from([1, 2])) + data.draw(st.sampled_from([0, 0, 0, 0, 1]))
    T, S = data.draw(st.integers(0, 6)), data.draw(st.integers(0, 6))
    D, Dv = data.draw(st.integers(0, 5)), data.draw(st.integers(0, 4))
    two_d = data.draw(st.integers(0, 4)) == 0
    qs, ks, vs = (T, D), (S, D), (S, Dv)
    if not two_d:
        qs, ks, vs = B + (H,) + qs, B + (Hkv,) + ks, B + (Hkv,) + vs
    if data.draw(st.integers(0, 5)) == 0:  # one shape off by one somewhere
        which, axis = data.draw(st.integers(0, 2)), data.draw(st.integers(0, 3))
        shp = list((qs, ks, vs)[which])
        if axis < len(shp):
            shp[-1 - axis] += 1
        qs, ks, vs = [tuple(shp) if i == which else s for i, s in enumerate((qs, ks, vs))]
    moderate = data.draw(st.integers(0, 3)) > 0
    lo, hi = (-4.0, 4.0) if moderate else (None, None)

    def arr(shape, dtype=dt):
        return data.draw(arrays(run, [dtype] if dtype in fl else [dtype], st.just(shape), float_lo=lo, float_hi=hi))

    q, k, v = arr(qs), arr(ks), arr(vs)
    if data.draw(st.integers(0, 6)) == 0:
        k = arr(ks, data.draw(st.sampled_from(fl)))
    mask = None
    mroll = data.draw(st.integers(0, 4))
    if mroll:
        mshape = data.draw(st.sampled_from([(T, S), (S,), (1, S), (T, 1), (H, T, S), (1,), (T, S + 1), ()]))
        mdt = data.draw(st.sampled_from([np.dtype("?"), dt if dt in fl else np.dtype("f8"), np.dtype("i1")]))
        if mdt.kind == "f":
            mask = np.where(data.draw(arrays(run, [np.dtype("?")], st.just(mshape))), 0.0, -np.inf).astype(mdt)
        else:
            mask = data.draw(arrays(run, [mdt], st.just(mshape), 0, 1))
    kw = dict(
        causal=data.draw(mostly(st.booleans(), st.sampled_from([1, None, "yes"]), 9)),
        mask=mask,
        scale=data.draw(st.one_of(st.none(), st.none(), float_arg(-2, 2))),
        causal_align=data.draw(
            mostly(st.sampled_from(["top_left", "bottom_right"]), st.sampled_from(["left", None, 0]), 9)
        ),
        return_lse=data.draw(st.sampled_from([False, True, False, True, 0])),
    )
    out = run.call("attention", fg.attention, q, k, v, **kw)
    if out is RAISED:
        return
    o = out[0] if kw["return_lse"] is True else out
    ok = isinstance(o, np.ndarray) and o.dtype == asarray(q).dtype.newbyteorder("=") and o.shape[-1] == np.shape(v)[-1]
    run.expect("attention", ok, "q's dtype, (..., T, Dv)", q, k, v, **kw)
    want = _ref(reference.attention, q, k, v, **kw)
    if want is not RAISED and moderate and ok and _no_overflow(q, k, v):
        w = want[0] if kw["return_lse"] is True else want
        tol = 1e-3 if o.dtype == np.float32 or o.dtype == np.float16 else 1e-9
        run.expect("attention", _same(o, w, tol, tol), "equals reference", q, k, v, **kw)


# --------------------------------------------------------------------------------------------
# vocabularies, files, loaders


def _text():
    return st.one_of(
        st.text(max_size=30),
        st.text(st.characters(codec="utf-8"), max_size=30),
        st.sampled_from(["", "a", "\ud800", "\ud83d\ude00", "a\x00b", "\n\n", "<s> </s> <unk>", "x" * 70]),
    )


def fam_vocab(run: Run, data, narrow: bool) -> None:
    target = data.draw(st.sampled_from(["vocab", "vocab_json", "word", "word_json"]))
    if target == "vocab":
        chars = data.draw(st.one_of(st.none(), _text(), st.lists(_text(), max_size=6), wild()))
        unk = data.draw(st.sampled_from([None, None, "?", "ab", "", 3]))
        v = run.call("Vocab", fg.Vocab, chars, unk=unk)
        if v is RAISED:
            v = run.call("Vocab.from_text", fg.Vocab.from_text, data.draw(st.one_of(_text(), wild())))
        if v is RAISED:
            return
        text = data.draw(st.one_of(_text(), wild()))
        ids = run.call("Vocab.encode", v.encode, text)
        if ids is not RAISED:
            back = run.call("Vocab.decode", v.decode, ids)
            run.expect("Vocab.decode", back is RAISED or isinstance(back, str), "str", text)
        run.call("Vocab.decode", v.decode, tokens(data, run, narrow, v.size, one_d=False))
        js = run.call("Vocab.to_json", v.to_json)
        if js is not RAISED:
            w = run.call("Vocab.from_json", fg.Vocab.from_json, js)
            run.expect("Vocab.from_json", w is RAISED or w.to_json() == js, "round trip", js)
    elif target == "word":
        words = data.draw(st.one_of(st.none(), st.lists(_text(), max_size=6), wild()))
        v = run.call("WordVocab", fg.WordVocab, words)
        if v is RAISED:
            v = run.call("WordVocab.from_text", fg.WordVocab.from_text, data.draw(st.one_of(_text(), wild())))
        if v is RAISED:
            return
        text = data.draw(st.one_of(_text(), wild()))
        oov = data.draw(st.sampled_from(["unk", "unk", "error", "add", None]))
        ids = run.call("WordVocab.encode", v.encode, text, oov=oov, chunk_tokens=data.draw(int_arg(1, 64)))
        if ids is not RAISED:
            run.call("WordVocab.decode", v.decode, ids)
        run.call("WordVocab.decode", v.decode, tokens(data, run, narrow, v.size, one_d=False))
        js = run.call("WordVocab.to_json", v.to_json)
        if js is not RAISED:
            w = run.call("WordVocab.from_json", fg.WordVocab.from_json, js)
            run.expect("WordVocab.from_json", w is RAISED or list(w.words) == list(v.words), "round trip", js)
        ids = data.draw(
            st.one_of(st.none(), arrays(run, _dtypes(narrow, "int"), shapes(1, 1, 8), -2, v.size + 2), wild())
        )
        packed = run.call("WordVocab.concatenated", v.concatenated, ids)
        if packed is not RAISED:
            w = run.call("WordVocab.from_concatenated", fg.WordVocab.from_concatenated, *packed)
            if ids is None:
                run.expect("WordVocab.from_concatenated", w is RAISED or w == v, "round trip", packed)
        junk = data.draw(st.one_of(arrays(run, _dtypes(narrow, "int"), shapes(1, 1, 8), -2, 300), wild()))
        run.call(
            "WordVocab.from_concatenated",
            fg.WordVocab.from_concatenated,
            junk,
            data.draw(st.one_of(wild(), st.just([0]))),
        )
    else:
        cls = fg.Vocab if target == "vocab_json" else fg.WordVocab
        good = (fg.Vocab("abc") if cls is fg.Vocab else fg.WordVocab(["<unk>", "<s>", "</s>", "x", "y"])).to_json()
        obj = json.loads(good)
        junk = data.draw(
            st.one_of(
                _text(),
                st.just(good[: data.draw(st.integers(0, len(good)))]),
                st.recursive(
                    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=4),
                    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c, max_size=3),
                    max_leaves=8,
                ).map(json.dumps),
                st.just("[" * 100000 + "]" * 100000),
                st.sampled_from(list(obj) if isinstance(obj, dict) else [0]).flatmap(
                    lambda key: st.sampled_from([None, 1, "x", [], {}, [1, "a"], -1]).map(
                        lambda val: json.dumps({**obj, key: val}) if isinstance(obj, dict) else good
                    )
                ),
            )
        )
        run.call(f"{cls.__name__}.from_json", cls.from_json, junk)


def _mutations(data, raw: bytes) -> bytes:
    how = data.draw(st.sampled_from(["truncate", "flip", "garbage", "empty", "append"]))
    if how == "truncate":
        return raw[: data.draw(st.integers(0, max(len(raw) - 1, 0)))]
    if how == "flip" and raw:
        b = bytearray(raw)
        for _ in range(data.draw(st.integers(1, 4))):
            i = data.draw(st.integers(0, len(b) - 1))
            b[i] ^= data.draw(st.integers(1, 255))
        return bytes(b)
    if how == "garbage":
        return data.draw(st.binary(max_size=200))
    if how == "append":
        return raw + data.draw(st.binary(min_size=1, max_size=50))
    return b""


def _tamper_npz(data, path: str, out: str) -> None:
    with np.load(path, allow_pickle=False) as f:
        fields = {k: f[k] for k in f.files}
    key = data.draw(st.sampled_from(sorted(fields)))
    how = data.draw(st.sampled_from(["drop", "float", "negate", "huge", "shape", "str", "scalar", "reverse", "extra"]))
    a = fields[key]
    with np.errstate(all="ignore"):
        if how == "drop":
            del fields[key]
        elif how == "float":
            fields[key] = a.astype(np.float64) if a.dtype.kind in "iuf" else np.float64(1.5)
        elif how == "negate" and a.dtype.kind in "iuf":
            fields[key] = (-a.astype(np.int64)) if a.dtype.kind in "iu" else -a
        elif how == "huge" and a.dtype.kind in "iu":
            fields[key] = np.full_like(a, np.iinfo(a.dtype).max)
        elif how == "shape":
            fields[key] = np.stack([a, a]) if a.ndim else np.array([a, a])
        elif how == "str":
            fields[key] = np.array("zzz")
        elif how == "scalar":
            fields[key] = np.int64(2**62)
        elif how == "reverse" and a.ndim:
            fields[key] = a[::-1].copy()
        else:
            fields["extra_" + key] = a
    with open(out, "wb") as fh:
        np.savez(fh, **fields)


def _good_files(run: Run) -> dict:
    """One valid file per loader (made once per family run)."""
    out = {}
    c = fg.count_ngrams(np.array([1, 2, 3, 1, 2, 0, 4], np.uint16), 3, separator=0)
    out["ngrams"] = (run.path(".npz"), fg.NGramCounts.load)
    c.save(out["ngrams"][0])
    b = fg.BigramCounter(5, vocab=fg.Vocab("abcde"))
    b.update(np.array([0, 1, 2, 1, 4], np.uint8))
    out["bigrams"] = (run.path(".npz"), fg.BigramCounter.load)
    b.save(out["bigrams"][0])
    out["vocab"] = (run.path(".json"), fg.Vocab.load)
    fg.Vocab("ab\u00e9\U0001f600").save(out["vocab"][0])
    out["words"] = (run.path(".json"), fg.WordVocab.load)
    fg.WordVocab.from_text("a b c\nb c d\n").save(out["words"][0])
    lm = _lm_class()
    if lm is not None:
        model = lm.estimate(["a b c", "b c d", "a b"], 3, discount_fallback=(0.5, 1.0, 1.5))
        out["lm"] = (run.path(".npz"), lm.load)
        model.save(out["lm"][0])
        out["arpa"] = (run.path(".arpa"), lm.read_arpa)
        model.write_arpa(out["arpa"][0])
    return out


def _lm_class():
    """The language-model class under test (``fastgram.NGramLM``)."""
    return fg.NGramLM


_GOOD: dict = {}


def fam_files(run: Run, data, narrow: bool) -> None:
    if not _GOOD:
        _GOOD.update(_good_files(run))
    target = data.draw(st.sampled_from(["raw", "text", "paths", "loader", "loader", "npz"]))
    if target == "raw":
        dtype = data.draw(st.sampled_from(["uint8", "uint16", "uint32", "int16", "float32", "u2", None, 5, np.uint16]))
        raw = data.draw(st.binary(max_size=64))
        path = run.path(".bin")
        with open(path, "wb") as f:
            f.write(raw)
        n = data.draw(st.one_of(st.just(2), int_arg(1, 8)))
        kw = dict(
            dtype=dtype,
            vocab_size=data.draw(st.one_of(st.none(), int_arg(1, 2**16))),
            separator=data.draw(st.one_of(st.none(), int_arg(0, 255))),
            chunk_tokens=data.draw(st.one_of(st.just(2**24), int_arg(1, 7))),
        )
        fn = data.draw(st.sampled_from([fg.count_file, fg.count_files]))
        plain = dtype in ("uint8", "uint16", "uint32") and kw["vocab_size"] is None and kw["separator"] is None
        plain = plain and type(n) is int and 1 <= n <= 8 and type(kw["chunk_tokens"]) is int and kw["chunk_tokens"] >= 1
        # with valid arguments, an error can only be about the file's content: it names the file
        out = run.call(fn.__name__, fn, path, n, allowed=PATH_ALLOWED, names_file=path if plain else None, **kw)
        if out is not RAISED and _check_counts(run, fn.__name__, out, raw, n, **kw):
            toks = np.frombuffer(raw, np.dtype(dtype))
            want = _ref(reference.count_ngrams, toks, n, kw["vocab_size"], separator=kw["separator"])
            if want is not RAISED:
                ok = _same(out.ngrams, want[0]) and _same(out.counts, want[1])
                run.expect(fn.__name__, ok, "equals count_ngrams of the file", raw, n, **kw)
    elif target == "text":
        raw = data.draw(
            st.one_of(
                st.text(max_size=40).map(lambda s: s.encode("utf-8", "surrogatepass")),
                st.binary(max_size=40),
                st.sampled_from([b"\xff", b"ab\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xef\xbb\xbfabc"]),
            )
        )
        path = run.path(".txt")
        with open(path, "wb") as f:
            f.write(raw)
        vocab = data.draw(st.sampled_from([None, fg.Vocab.bytes(), fg.Vocab("abc"), fg.Vocab("abc", unk="a"), "abc"]))
        kw = dict(text=True, vocab=vocab, chunk_tokens=data.draw(st.one_of(st.just(2**24), int_arg(1, 5))))
        fn = data.draw(st.sampled_from([fg.count_file, fg.count_files]))
        plain = not isinstance(vocab, str) and type(kw["chunk_tokens"]) is int and kw["chunk_tokens"] >= 1
        n = data.draw(st.sampled_from([1, 2, 3]))
        out = run.call(fn.__name__, fn, path, n, allowed=PATH_ALLOWED, names_file=path if plain else None, **kw)
        if out is not RAISED:
            _check_counts(run, fn.__name__, out, raw, **kw)
        if "lm" in _GOOD and data.draw(st.booleans()):  # scoring the same bytes, and query's word lines
            model = _GOOD["lm"][1](_GOOD["lm"][0])
            skip = data.draw(st.booleans())
            scores = run.call(
                "NGramLM.score_files", model.score_files, path, skip_symbols=skip, allowed=PATH_ALLOWED, names_file=path
            )
            if scores is not RAISED:
                words = sentence_words(path, skip_symbols=skip)
                lines = run.call("Scores.query_lines", lambda: list(scores.query_lines("word", words)))
                run.expect(
                    "sentence_words", lines is not RAISED and len(lines) == len(scores), "a line a sentence", raw
                )
        if "lm" in _GOOD and data.draw(st.integers(0, 3)) == 0:  # the ARPA file streamed and written whole
            order = data.draw(st.integers(1, 4))
            streamed, whole = run.path(".arpa"), run.path(".arpa")
            sizes = run.call(
                "estimate_to_arpa", fg.estimate_to_arpa, path, order, streamed, discount_fallback=True,
                allowed=PATH_ALLOWED,
            )  # fmt: skip
            model = run.call(
                "NGramLM.estimate_files", fg.NGramLM.estimate_files, path, order, discount_fallback=True,
                allowed=PATH_ALLOWED,
            )  # fmt: skip
            same = (sizes is RAISED) == (model is RAISED) and not os.path.exists(streamed) == (sizes is RAISED)
            if same and model is not RAISED:
                model.write_arpa(whole)
                with open(streamed, "rb") as a, open(whole, "rb") as b:
                    same = sizes == model.sizes and a.read() == b.read()
            run.expect("estimate_to_arpa", same, "the file of the model written whole", raw, order)
        if data.draw(st.booleans()):
            run.call(
                "Vocab.from_text",
                fg.WordVocab.from_files,
                [path],
                chunk_tokens=kw["chunk_tokens"],
                allowed=PATH_ALLOWED,
            )
    elif target == "paths":
        good = run.path(".bin")
        np.arange(5, dtype=np.uint8).tofile(good)
        empty_dir = tempfile.mkdtemp(dir=run.tmp)
        p = data.draw(
            st.sampled_from(
                [
                    os.path.join(run.tmp, "missing.bin"),
                    run.tmp + "/*.nothing",
                    empty_dir,
                    [good, os.path.join(run.tmp, "missing")],
                    [],
                    None,
                    5,
                    [[good]],
                    b"\xff",
                    "",
                    good + "\x00",
                ]
            )
        )
        fn = data.draw(st.sampled_from([fg.count_file, fg.count_files]))
        run.call(fn.__name__, fn, p, 2, dtype="uint8", allowed=PATH_ALLOWED)
        loader = data.draw(st.sampled_from([v[1] for v in _GOOD.values()]))
        run.call(getattr(loader, "__qualname__", "load"), loader, p, allowed=PATH_ALLOWED)
    elif target == "loader":
        name = data.draw(st.sampled_from(sorted(_GOOD)))
        good, loader = _GOOD[name]
        with open(good, "rb") as f:
            raw = f.read()
        path = run.path(os.path.splitext(good)[1])
        with open(path, "wb") as f:
            f.write(_mutations(data, raw))
        obj = run.call(f"{name} load", loader, path, allowed=PATH_ALLOWED, names_file=path)
        _use(run, name, obj)
    else:
        name = data.draw(st.sampled_from([k for k in sorted(_GOOD) if _GOOD[k][0].endswith(".npz")]))
        good, loader = _GOOD[name]
        path = run.path(".npz")
        _tamper_npz(data, good, path)
        obj = run.call(f"{name} load (tampered)", loader, path, allowed=PATH_ALLOWED, names_file=path)
        _use(run, name, obj)


def _use(run: Run, name: str, obj) -> None:
    """A loaded object still works (no lookup walks off a table)."""
    if obj is RAISED:
        return
    if isinstance(obj, fg.NGramCounts):
        if _check_counts(run, f"{name} load", obj):
            run.call("lookup", obj.lookup, obj.ngrams)
            run.call("to_dense", obj.to_dense, 2**20)
    elif isinstance(obj, fg.BigramCounter):
        c = obj.counts
        run.expect(f"{name} load", c.ndim == 2 and c.shape[0] == c.shape[1] and bool((c >= 0).all()), "valid table")
        run.call("update", obj.update, np.array([0, 1], np.uint8))
    elif isinstance(obj, (fg.Vocab, fg.WordVocab)):
        run.call("decode", obj.decode, np.arange(min(obj.size, 5)))
    else:
        run.call("score", obj.score, ["a b c", "z"])
        run.call("generate", obj.generate, 2, 5, seed=0)


# --------------------------------------------------------------------------------------------
# language model


def fam_lm(run: Run, data, narrow: bool) -> None:
    lm = _lm_class()
    if lm is None:
        return
    plain = st.sampled_from(["a", "b", "c", "d", "\u00e9"])
    word = mostly(plain, st.sampled_from(["<s>", "</s>", "<unk>", "", "a\x00"]), 9)
    sentences = st.lists(st.lists(word, min_size=1, max_size=6).map(" ".join), min_size=1, max_size=6)
    corpus = data.draw(
        mostly(
            sentences,
            st.one_of(
                st.lists(st.lists(int_arg(0, 5), max_size=5), max_size=5),
                arrays(run, _dtypes(narrow, "int"), shapes(1, 1, 30), 0, 6),
                wild(),
                st.just([]),
            ),
            7,
        )
    )
    order = data.draw(int_arg(1, 5))
    kw = dict(
        discount_fallback=data.draw(
            mostly(st.just((0.5, 1.0, 1.5)), st.sampled_from([None, (0.5,), (2.0, 1.0, 1.0), "x"]))
        ),
        prune=data.draw(mostly(st.none(), st.sampled_from([[0, 1], [0, 0, 2], [-1], "x", [0, 2**70]]))),
        separator=data.draw(mostly(st.none(), int_arg(0, 6))),
        keep_u=data.draw(mostly(st.just(True), st.sampled_from([False, 1, "x", None]))),
    )
    model = run.call("NGramLM.estimate", lm.estimate, corpus, order, **kw)
    if model is RAISED:
        return
    probe = data.draw(st.one_of(sentences, wild()))
    scores = run.call("NGramLM.score", model.score, probe)
    if scores is not RAISED and isinstance(probe, list):
        level = data.draw(mostly(st.sampled_from(["sentence", "word"]), wild()))
        split = [s.split() if isinstance(s, str) else s for s in probe]
        words = data.draw(
            mostly(st.just(split), st.one_of(st.none(), st.just(split[:-1]), st.just(split + [[]]), wild()))
        )
        lines = run.call("Scores.query_lines", lambda *a: list(scores.query_lines(*a)), level, words)
        run.expect("Scores.query_lines", lines is RAISED or len(lines) == len(scores), "a line per sentence", level)
    run.call("NGramLM.perplexity", model.perplexity, probe)
    run.call(
        "NGramLM.log10_prob",
        model.log10_prob,
        data.draw(st.one_of(word, wild())),
        tuple(data.draw(st.lists(word, max_size=3))),
    )
    gen = run.call(
        "NGramLM.generate",
        model.generate,
        data.draw(int_arg(0, 4)),
        data.draw(int_arg(0, 12)),
        seed=data.draw(_seed()),
        temperature=data.draw(st.one_of(st.just(1.0), float_arg(0, 3))),
    )
    del gen
    if data.draw(st.integers(0, 3)) == 0:
        path = run.path(".arpa")
        if run.call("NGramLM.write_arpa", model.write_arpa, path, allowed=PATH_ALLOWED) is not RAISED:
            back = run.call("NGramLM.read_arpa", lm.read_arpa, path, allowed=PATH_ALLOWED, names_file=path)
            run.expect(
                "NGramLM.read_arpa", back is RAISED or back.sizes == model.sizes, "round trip sizes", corpus, order
            )


# --------------------------------------------------------------------------------------------
# the command line


def _cli_files(run: Run) -> dict:
    d = {}
    d["tok"] = run.path(".bin")
    np.array([1, 2, 3, 1, 2, 0, 2], np.uint16).tofile(d["tok"])
    d["odd"] = run.path(".bin")
    with open(d["odd"], "wb") as f:
        f.write(b"\x01\x00\x02")
    d["txt"] = run.path(".txt")
    with open(d["txt"], "w", encoding="utf-8") as f:
        f.write("hello world\nhello there\n")
    d["bad_txt"] = run.path(".txt")
    with open(d["bad_txt"], "wb") as f:
        f.write(b"ab\xffcd")
    d["empty"] = run.path(".bin")
    open(d["empty"], "wb").close()
    d["garbage_npz"] = run.path(".npz")
    with open(d["garbage_npz"], "wb") as f:
        f.write(b"PK\x03\x04garbage")
    d["counts"] = run.path(".npz")
    d["tri"] = run.path(".npz")
    d["out"] = run.path(".npz")
    d["vocab"] = run.path(".json")
    with open(d["vocab"], "w") as f:
        f.write('{"chars": [1, 2]')
    d["dir"] = run.tmp
    d["missing"] = os.path.join(run.tmp, "missing.bin")
    return d


_CLI: dict = {}


def fam_cli(run: Run, data, narrow: bool) -> None:
    if not _CLI:
        _CLI.update(_cli_files(run))
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            fastgram_cli.main(["count", "--text", _CLI["txt"], "-o", _CLI["counts"]])
            fastgram_cli.main(["count", "--dtype", "uint16", "--order", "3", _CLI["tok"], "-o", _CLI["tri"]])
    f = _CLI
    value = st.one_of(
        st.sampled_from(
            ["0", "1", "2", "-5", "3.5", "abc", "", "1e308", "nan", "inf", "-inf", "2G", "-1K", "99999999999999999999"]
        ),
        st.integers(-3, 300).map(str),
    )
    cmd = data.draw(
        st.sampled_from(
            ["count", "count", "count", "generate", "generate", "generate", "check", "demo", "bench", "junk"]
        )
    )
    if cmd == "count":
        inputs = data.draw(
            st.lists(
                st.sampled_from(["tok", "odd", "txt", "bad_txt", "empty", "dir", "missing"]), min_size=1, max_size=2
            )
        )
        argv = ["count", *[f[i] for i in inputs]]
        argv += data.draw(
            st.sampled_from(
                [
                    ["--text"],
                    ["--dtype", "uint16"],
                    ["--dtype", "uint8"],
                    ["--dtype", "int64"],
                    [],
                    ["--text", "--dtype", "uint8"],
                ]
            )
        )
        argv += ["-o", data.draw(st.sampled_from([f["out"], f["dir"], os.path.join(f["missing"], "x.npz")]))]
        for flag in data.draw(
            st.lists(
                st.sampled_from(
                    [
                        "--vocab-size",
                        "--order",
                        "--top",
                        "--min-count",
                        "--max-memory",
                        "--separator",
                        "--chunk-tokens",
                        "--vocab",
                    ]
                ),
                max_size=3,
            )
        ):
            argv += [
                flag,
                data.draw(
                    st.one_of(value, st.sampled_from(["chars", "bytes", f["vocab"], f["missing"]]))
                    if flag == "--vocab"
                    else value
                ),
            ]
    elif cmd == "generate":
        src = data.draw(st.sampled_from(["counts", "counts", "tri", "garbage_npz", "missing", "dir", "txt"]))
        argv = ["generate", f[src]]
        for flag in data.draw(
            st.lists(
                st.sampled_from(["-n", "--length", "--seed", "--temperature", "--smoothing", "--start"]), max_size=3
            )
        ):
            argv += [
                flag,
                data.draw(value if flag != "--start" else st.sampled_from(["hello", "", "\u00e9", "zzz", "h"])),
            ]
    elif cmd == "check":
        argv = ["check", data.draw(st.sampled_from(["no_such_kernel", "", "--seed"]))]
    elif cmd == "demo":
        argv = ["demo", "--tokens", data.draw(st.sampled_from(["-5", "0", "1", "abc", "1.5"]))]
    elif cmd == "bench":
        argv = [
            "bench",
            "--from-json",
            data.draw(st.sampled_from([f["missing"], f["txt"], f["garbage_npz"], f["dir"]])),
        ]
    else:
        argv = data.draw(st.lists(value, max_size=3))
    err = io.StringIO()

    def invoke():
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
                return fastgram_cli.main(argv)
        except SystemExit as exc:
            return exc.code

    code = run.call("cli main", invoke)
    run.expect("cli main", code in (0, 1, 2), f"exit status 0/1/2, got {code!r}", argv)
    run.expect("cli main", "Traceback" not in err.getvalue(), "no traceback on stderr", argv)


# --------------------------------------------------------------------------------------------
# wrong kinds of argument everywhere (cheap, in-process)


def fam_types(run: Run, data, narrow: bool) -> None:
    ok_tokens = np.array([0, 1, 1, 0], np.int64)
    ok_table = np.array([[1.0, 1.0], [1.0, 1.0]])
    ok_q = np.zeros((2, 3))
    calls = {
        "count_bigrams": (fg.count_bigrams, [ok_tokens, 2]),
        "count_ngrams": (fg.count_ngrams, [ok_tokens, 2, 2]),
        "BigramCounter": (fg.BigramCounter, [2]),
        "NGramCounter": (fg.NGramCounter, [2, 2]),
        "NGramCounts": (fg.NGramCounts, [np.array([1], np.uint64), np.array([1], np.int64), 2, 2]),
        "Sampler": (fg.Sampler, [ok_table]),
        "bigram_probs": (fg.bigram_probs, [ok_table, 1.0]),
        "sample_next": (fg.sample_next, [ok_table, ok_tokens]),
        "generate": (fg.generate, [ok_table, ok_tokens, 3]),
        "sample_logits": (fg.sample_logits, [ok_table]),
        "multinomial": (fg.multinomial, [ok_table, 2]),
        "uniform": (fg.uniform, [3]),
        "nll": (fg.nll, [ok_table, ok_tokens]),
        "perplexity": (fg.perplexity, [ok_table, ok_tokens]),
        "attention": (fg.attention, [ok_q, ok_q, ok_q]),
        "Vocab": (fg.Vocab, ["ab"]),
        "WordVocab": (fg.WordVocab, [["a"]]),
        "Vocab.from_json": (fg.Vocab.from_json, ['{"chars": ["a"]}']),
        "check": (fg.check, [["no_such_kernel"]]),
    }
    seeded = {"sample_next", "generate", "sample_logits", "multinomial", "uniform"}
    name = data.draw(st.sampled_from(sorted(calls)))
    fn, args = calls[name]
    args = list(args)
    kwargs = {"seed": 0} if name in seeded else {}
    if name == "check":
        kwargs["verbose"] = False
    i = data.draw(st.integers(0, len(args) + (1 if kwargs else 0)))
    if i < len(args):
        # check(None) would run every check (slow, and not a wrong argument): keep to lists of names
        pool = wild() if name != "check" else st.sampled_from([[5], ["x", None], [b"counting"], ["\x00"], [[]]])
        args[i] = data.draw(pool)
    elif kwargs:
        kwargs[next(iter(kwargs))] = data.draw(wild())
    run.call(name, fn, *args, **kwargs)


FAMILIES = {
    "types": fam_types,
    "counting": fam_counting,
    "sampling": fam_sampling,
    "metrics": fam_metrics,
    "attention": fam_attention,
    "vocab": fam_vocab,
    "files": fam_files,
    "lm": fam_lm,
    "cli": fam_cli,
}


def run_family(name: str, examples: int, narrow: bool = False, seed: int | None = None) -> dict:
    """Run ``examples`` hypothesis cases of one family; return its summary (cases, failures)."""
    run = Run(name)
    fn = FAMILIES[name]
    opts = dict(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=seed is None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],
    )

    @settings(**opts)
    @given(st.data())
    def case(data):
        with np.errstate(all="ignore"):
            fn(run, data, narrow)

    start = time.perf_counter()
    if seed is not None:
        case = hypothesis.seed(seed)(case)
    case()
    out = run.summary()
    out["seconds"] = round(time.perf_counter() - start, 2)
    shutil.rmtree(run.tmp, ignore_errors=True)
    return out


def _canary() -> str:
    """What a kernel writing past its output raises here: IndexError when bounds are checked."""
    backing = np.empty(1000, np.uint64)  # the writes past the view stay inside this allocation
    try:
        first_words(np.uint64(1), 0, backing[:2], 1000)
    except IndexError as exc:
        return f"IndexError: {exc}"
    return "nothing"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="fastgram fuzz families")
    p.add_argument("families", nargs="*", default=sorted(FAMILIES))
    p.add_argument("--examples", type=int, default=int(os.environ.get("FASTGRAM_FUZZ_EXAMPLES", "50")))
    p.add_argument("--narrow", action="store_true")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--canary", action="store_true", help="first show that an out-of-bounds write is caught")
    a = p.parse_args(argv)
    if a.canary:
        print(json.dumps({"canary": _canary()}), flush=True)
    for name in a.families:
        print(f"# running {name}", file=sys.stderr, flush=True)
        print(json.dumps(run_family(name, a.examples, a.narrow, a.seed)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["FAMILIES", "run_family", "Run"]
