"""``NGramStore``: n-gram counts on disk in sorted, disjoint key-range partitions.

The result of ``count_files(..., out=DIR)`` (in one process or on a Dask cluster) when the
counts need not -- or cannot -- fit in one process. A store is a directory::

    DIR/manifest.json       written last: a store without it is incomplete and is not opened
    DIR/part-00000.bin      partition 0: keys [lo, hi) of the key space
    DIR/part-00001.bin      ...

Keys are the packed n-grams of :class:`~fastgram.NGramCounts`
(``((t0 * V + t1) * V + ...) * V + t{n-1}``), so key order is lexicographic n-gram order and
the partitions, in manifest order, are the n-grams in order.

**Partition file** ``part-NNNNN.bin``: ``m`` little-endian uint64 keys, strictly increasing,
each in ``[lo, hi)``, followed by ``m`` little-endian int64 counts, each >= 1; the file is
exactly ``16 * m`` bytes. Read one with NumPy alone::

    keys = np.fromfile(path, "<u8", m)
    counts = np.fromfile(path, "<i8", m, offset=8 * m)

**manifest.json** (read with ``json.load``; integers are exact, up to ``2**64``):

==================  ==============================================================================
field               meaning
==================  ==============================================================================
``kind``            ``"fastgram-ngram-store"``
``format``          1
``n``               the order, 1 to 8
``vocab_size``      V (``V**n <= 2**64``)
``separator``       the document-boundary id, or ``null``
``tokens``          tokens counted (separators put between files included, as in ``count_files``)
``distinct``        distinct n-grams in all partitions (the sum of theirs)
``total``           sum of all counts (the sum of theirs)
``vocab``           ``null`` or the vocabulary as a JSON string (``Vocab.to_json()``)
``partitions``      list, in key order, of ``{"file", "lo", "hi", "distinct", "total"}``: the file
                    name (in DIR), the key range ``[lo, hi)``, its m and its sum of counts; the
                    ranges are contiguous, the first ``lo`` is 0 and the last ``hi`` is ``V**n``
==================  ==============================================================================

Opening a store checks every manifest field and each partition file's size (``ValueError``
naming the file and the field); reading a partition checks its keys (sorted, in range), its
counts (>= 1) and their sum against the manifest. Every file is written under a temporary name
and renamed, and the manifest last, so an interrupted or failed count leaves no manifest and
no half-written partition.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator

import numpy as np

from fastgram import _checks
from fastgram.counting import _runs
from fastgram.counting.result import NGramCounts, check_compatible
from fastgram.vocab import vocab_from_json

__all__ = ["NGramStore", "FORMAT_VERSION", "MANIFEST", "write_run", "RunSlice", "read_run", "write_manifest"]

#: Version of the store layout.
FORMAT_VERSION = 1
#: Name of the manifest in a store directory.
MANIFEST = "manifest.json"
KIND = "fastgram-ngram-store"


# ---------------------------------------------------------------------------------------------
# runs and partitions on disk: m keys then m counts, little-endian
# ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _replacing(path: str):
    """Yield a temporary name beside ``path``, renamed onto it when the block succeeds; it (and
    its ``.side`` companion, if the block made one) is removed however the block ends.

    The name is unique to the call (pid and a random part), so two attempts of one task (a
    retry after a worker died) never write into each other's file; the last rename wins and
    both write the same bytes.
    """
    tmp = f"{path}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        for name in (tmp, tmp + ".side"):
            if os.path.exists(name):
                os.unlink(name)


def write_run(path: str, keys: np.ndarray, counts: np.ndarray) -> None:
    """Write sorted ``keys`` and then their ``counts`` to ``path`` atomically."""
    with _replacing(path) as tmp, open(tmp, "wb") as f:
        np.ascontiguousarray(keys, "<u8").tofile(f)
        np.ascontiguousarray(counts, "<i8").tofile(f)


def write_run_blocks(path: str, blocks) -> int:
    """:func:`write_run` of ``(keys, counts)`` blocks in key order, never holding more than one
    (the counts go to a side file, appended after the keys); returns the entries written."""
    m = 0
    with _replacing(path) as tmp:
        with open(tmp, "wb") as f, open(tmp + ".side", "w+b") as side:
            for keys, counts in blocks:
                np.ascontiguousarray(keys, "<u8").tofile(f)
                np.ascontiguousarray(counts, "<i8").tofile(side)
                m += len(keys)
            side.seek(0)
            shutil.copyfileobj(side, f, 1 << 20)
    return m


def read_run(path: str, m: int, start: int = 0, stop: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Keys and counts ``[start, stop)`` of a run of ``m`` entries written by :func:`write_run`."""
    stop = m if stop is None else stop
    count = stop - start
    if count <= 0:
        return _runs.EMPTY_KEYS, _runs.EMPTY_COUNTS
    keys = np.fromfile(path, "<u8", count, offset=8 * start).astype(np.uint64, copy=False)
    counts = np.fromfile(path, "<i8", count, offset=8 * (m + start)).astype(np.int64, copy=False)
    if len(keys) != count or len(counts) != count:
        raise ValueError(f"{path}: run is shorter than its {m:,} entries")
    return keys, counts


def search_run(path: str, m: int, values) -> np.ndarray:
    """Positions (``searchsorted``, left) of ``values`` in the keys of a run, memory-mapped."""
    values = np.asarray(values, np.uint64)
    if m == 0:
        return np.zeros(values.shape, np.int64)
    keys = np.memmap(path, np.dtype("<u8"), mode="r", shape=(m,))
    try:
        return np.searchsorted(keys, values).astype(np.int64)
    finally:
        del keys


class RunSlice:
    """Entries ``[start, stop)`` of a run file, read in blocks (a source of ``_runs.merge_sources``)."""

    def __init__(self, path: str, m: int, start: int = 0, stop: int | None = None):
        self.path, self.m = path, m
        self.pos, self.stop = start, m if stop is None else stop

    @property
    def done(self) -> bool:
        return self.pos >= self.stop

    def read(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        hi = min(self.pos + count, self.stop)
        out = read_run(self.path, self.m, self.pos, hi)
        self.pos = hi
        return out


def merge_slices(sources: list, min_count: int = 1, block: int = 1 << 20) -> tuple[np.ndarray, np.ndarray]:
    """K-way merge of sorted run slices, ``block`` entries of each in memory at a time."""
    sources = [s for s in sources if not s.done]
    if not sources:
        return _runs.EMPTY_KEYS, _runs.EMPTY_COUNTS
    if len(sources) == 1:
        return _runs.prune_runs(*sources[0].read(sources[0].stop - sources[0].pos), min_count)
    return _runs.merge_sources(sources, block, min_count)


def write_manifest(directory: str, meta: dict, partitions: list[dict]) -> None:
    """Write ``manifest.json`` atomically (the last file of a store)."""
    doc = {"kind": KIND, "format": FORMAT_VERSION}
    doc.update(meta)
    doc["distinct"] = sum(p["distinct"] for p in partitions)
    doc["total"] = sum(p["total"] for p in partitions)
    doc["partitions"] = partitions
    path = os.path.join(directory, MANIFEST)
    tmp = f"{path}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        with open(tmp, "w") as f:
            json.dump(doc, f, indent=1)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def partition_name(index: int) -> str:
    return f"part-{index:05d}.bin"


def write_partition(directory: str, index: int, keys, counts, lo: int, hi: int) -> dict:
    """Write partition ``index`` (keys in ``[lo, hi)``) and return its manifest entry."""
    name = partition_name(index)
    write_run(os.path.join(directory, name), keys, counts)
    return {"file": name, "lo": int(lo), "hi": int(hi), "distinct": len(keys), "total": int(np.sum(counts))}


def prepare_output(out) -> tuple[str, bool]:
    """``out`` as a str naming an empty directory (created if missing); whether it was created.

    Raises ``FileExistsError`` for a file or a directory that is not empty (a store is never
    overwritten).
    """
    if not isinstance(out, (str, os.PathLike)):
        raise TypeError(f"out must be a str or os.PathLike naming a directory, got {type(out).__name__}")
    out = os.fspath(out)
    if os.path.exists(out):
        if not os.path.isdir(out):
            raise FileExistsError(f"out={out} exists and is not a directory")
        if os.listdir(out):
            raise FileExistsError(f"out={out} is not empty; a store is written into a new or empty directory")
        return out, False
    parent = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(parent):
        raise FileNotFoundError(f"out={out}: parent directory {parent} does not exist")
    os.mkdir(out)
    return out, True


def remove_output(out: str, created: bool) -> None:
    """Remove what a failed count wrote into ``out`` (partitions, temporaries), and ``out`` itself
    if the count created it."""
    if not os.path.isdir(out):
        return
    for name in os.listdir(out):
        path = os.path.join(out, name)
        if name.startswith(("part-", ".runs-", MANIFEST)):
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    os.unlink(path)
    if created:
        with contextlib.suppress(OSError):
            os.rmdir(out)


# ---------------------------------------------------------------------------------------------
# the store
# ---------------------------------------------------------------------------------------------


def _int_field(path: str, doc: dict, name: str, lo: int | None, hi: int | None, where: str = "") -> int:
    value = doc.get(name)
    label = f"{where}{name}"
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{path}: field {label!r} must be an integer, got {value!r}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ValueError(f"{path}: field {label!r} is {value:,}, outside [{lo}, {hi if hi is not None else 'inf'}]")
    return value


class NGramStore:
    """Exact n-gram counts on disk in key-range partitions (see the module docstring).

    Open one with :meth:`open`; ``count_files(..., out=DIR)`` returns one. Queries read one
    partition at a time (or memory-map it), so a store larger than memory can be queried,
    pruned and merged; :meth:`load` reads it all into one :class:`~fastgram.NGramCounts`.

    Attributes
    ----------
    path : str
    n, vocab_size, separator, tokens, vocab
        As in :class:`~fastgram.NGramCounts`.
    partitions : list of dict
        The manifest's entries (``file``, ``lo``, ``hi``, ``distinct``, ``total``).

    Notes
    -----
    Every method that changes counts (``prune``, ``merge``) writes a new store into ``out``
    and returns it; a store on disk is never modified.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> from fastgram import count_files, NGramStore
    >>> d = tempfile.mkdtemp()
    >>> np.array([1, 2, 3, 1, 2], np.uint16).tofile(os.path.join(d, "a.bin"))
    >>> store = count_files(os.path.join(d, "a.bin"), 2, dtype="uint16", out=os.path.join(d, "store"))
    >>> len(store), store.total, store.lookup([[1, 2], [2, 1]]).tolist()
    (3, 4, [2, 0])
    >>> NGramStore.open(os.path.join(d, "store")).load().counts.tolist()
    [2, 1, 1]
    """

    def __init__(self, path: str, doc: dict):
        self.path = path
        self.n = doc["n"]
        self.vocab_size = doc["vocab_size"]
        self.separator = doc["separator"]
        self.tokens = doc["tokens"]
        self.vocab = doc["vocab"]
        self.partitions = doc["partitions"]
        self._distinct = doc["distinct"]
        self._total = doc["total"]
        self._verified: set[int] = set()  # partitions whose contents were checked

    # -- opening ----------------------------------------------------------------------------

    @classmethod
    def open(cls, path) -> "NGramStore":
        """Open the store in directory ``path``, checking the manifest field by field.

        Raises
        ------
        FileNotFoundError
            If ``path`` is not a directory or has no ``manifest.json`` (an incomplete count).
        ValueError
            Naming the file and the field: a manifest that is not JSON, not a store's, of
            another format, with a field of the wrong type or range, partitions that are not
            contiguous or do not cover the key space, totals that do not add up, or a
            partition file that is missing or of the wrong size.
        """
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
        path = os.fspath(path)
        if not os.path.isdir(path):
            raise FileNotFoundError(f"{path}: no such store directory")
        mpath = os.path.join(path, MANIFEST)
        if not os.path.exists(mpath):
            raise FileNotFoundError(f"{path}: no {MANIFEST} (not an n-gram store, or its count did not finish)")
        if not os.path.isfile(mpath):
            raise ValueError(f"{mpath}: not a file")
        try:
            with open(mpath, encoding="utf-8") as f:
                doc = json.load(f)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise ValueError(f"{mpath}: not valid JSON ({type(exc).__name__}: {exc})") from None
        return cls(path, cls._check_manifest(path, mpath, doc))

    @staticmethod
    def _check_manifest(path: str, mpath: str, doc) -> dict:
        if not isinstance(doc, dict):
            raise ValueError(f"{mpath}: must hold a JSON object, got {type(doc).__name__}")
        if doc.get("kind") != KIND:
            raise ValueError(f"{mpath}: field 'kind' must be {KIND!r}, got {doc.get('kind')!r}")
        if type(doc.get("format")) is not int or doc.get("format") != FORMAT_VERSION:  # True == 1: refused
            raise ValueError(f"{mpath}: field 'format' is {doc.get('format')!r}; this fastgram reads {FORMAT_VERSION}")
        n = _int_field(mpath, doc, "n", 1, 8)
        V = _int_field(mpath, doc, "vocab_size", 1, _checks.MAX_VOCAB)
        if V**n > 1 << 64:
            raise ValueError(f"{mpath}: field 'vocab_size' {V:,} ** n={n} exceeds 2**64")
        sep = doc.get("separator")
        if sep is not None:
            sep = _int_field(mpath, doc, "separator", 0, V - 1)
        tokens = _int_field(mpath, doc, "tokens", 0, None)
        distinct = _int_field(mpath, doc, "distinct", 0, None)
        total = _int_field(mpath, doc, "total", distinct, None)
        vocab = doc.get("vocab")
        if vocab is not None:
            if not isinstance(vocab, str):
                raise ValueError(f"{mpath}: field 'vocab' must be null or a JSON string, got {type(vocab).__name__}")
            try:
                vocab = vocab_from_json(vocab)
            except ValueError as exc:
                raise ValueError(f"{mpath}: field 'vocab': {exc}") from None
            if len(vocab) > V:
                raise ValueError(f"{mpath}: field 'vocab' has {len(vocab):,} entries, more than vocab_size={V:,}")
        parts = doc.get("partitions")
        if not isinstance(parts, list) or not parts:
            raise ValueError(f"{mpath}: field 'partitions' must be a non-empty list")
        expect_lo, sum_m, sum_t = 0, 0, 0
        for i, p in enumerate(parts):
            where = f"partitions[{i}]."
            if not isinstance(p, dict):
                raise ValueError(f"{mpath}: field 'partitions[{i}]' must be an object")
            name = p.get("file")
            if not isinstance(name, str) or not name or os.path.basename(name) != name or name.startswith("."):
                raise ValueError(f"{mpath}: field '{where}file' must be a file name in the store, got {name!r}")
            lo = _int_field(mpath, p, "lo", expect_lo, expect_lo, where)
            hi = _int_field(mpath, p, "hi", lo, V**n, where)
            m = _int_field(mpath, p, "distinct", 0, hi - lo, where)
            t = _int_field(mpath, p, "total", m, None, where)
            fpath = os.path.join(path, name)
            if not os.path.isfile(fpath):
                raise ValueError(f"{mpath}: field '{where}file': partition file {fpath} is missing")
            size = os.path.getsize(fpath)
            if size != 16 * m:
                raise ValueError(
                    f"{fpath}: size {size:,} bytes, expected 16 * distinct = {16 * m:,} "
                    f"(manifest field '{where}distinct')"
                )
            expect_lo = hi
            sum_m += m
            sum_t += t
        if expect_lo != V**n:
            raise ValueError(f"{mpath}: field 'partitions' covers keys up to {expect_lo:,}, not V**n = {V**n:,}")
        if sum_m != distinct:
            raise ValueError(f"{mpath}: field 'distinct' is {distinct:,} but the partitions hold {sum_m:,}")
        if sum_t != total:
            raise ValueError(f"{mpath}: field 'total' is {total:,} but the partitions sum to {sum_t:,}")
        return dict(
            n=n,
            vocab_size=V,
            separator=sep,
            tokens=tokens,
            vocab=vocab,
            partitions=parts,
            distinct=distinct,
            total=total,
        )

    # -- sizes ------------------------------------------------------------------------------

    def __len__(self) -> int:
        """Distinct n-grams (from the manifest)."""
        return self._distinct

    @property
    def total(self) -> int:
        """Sum of all counts (from the manifest)."""
        return self._total

    @property
    def num_partitions(self) -> int:
        return len(self.partitions)

    def __repr__(self) -> str:
        return (
            f"NGramStore({self.path!r}, n={self.n}, vocab_size={_checks.fmt_int(self.vocab_size)}, "
            f"distinct={_checks.fmt_int(len(self))}, total={_checks.fmt_int(self.total)}, "
            f"partitions={len(self.partitions)})"
        )

    # -- partitions -------------------------------------------------------------------------

    def _file(self, i: int) -> str:
        return os.path.join(self.path, self.partitions[i]["file"])

    def _counts(self, keys, counts, tokens: int = 0) -> NGramCounts:
        return NGramCounts(
            keys, counts, self.n, self.vocab_size, separator=self.separator, tokens=tokens, vocab=self.vocab,
            validate=False,
        )  # fmt: skip

    def partition(self, i: int) -> NGramCounts:
        """Partition ``i`` as :class:`~fastgram.NGramCounts` (``tokens`` is 0: tokens belong to the
        whole store), checked: keys strictly increasing within ``[lo, hi)``, counts >= 1 and
        summing to the manifest's ``total``."""
        i = _checks.require_int(i, "i", min=0, max=len(self.partitions) - 1)
        keys, counts = read_run(self._file(i), self.partitions[i]["distinct"])
        self._check_contents(i, keys, counts)
        return self._counts(keys, counts)

    def _check_contents(self, i: int, keys: np.ndarray, counts: np.ndarray) -> None:
        """``ValueError`` naming partition ``i``'s file unless its keys strictly increase within
        ``[lo, hi)`` and its counts are >= 1 and sum to the manifest's total."""
        p, fpath = self.partitions[i], self._file(i)
        if len(keys):
            if np.any(keys[1:] <= keys[:-1]):
                raise ValueError(f"{fpath}: field 'keys' is not strictly increasing")
            if int(keys[0]) < p["lo"] or int(keys[-1]) >= p["hi"]:
                raise ValueError(f"{fpath}: field 'keys' has keys outside the partition's range [{p['lo']}, {p['hi']})")
            if counts.min() < 1:
                raise ValueError(f"{fpath}: field 'counts' holds {int(counts.min()):,}, below 1")
        if int(counts.sum()) != p["total"]:
            raise ValueError(
                f"{fpath}: field 'counts' sums to {int(counts.sum()):,}, not the manifest's total {p['total']:,}"
            )
        self._verified.add(i)

    def _mapped(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Partition ``i``'s keys and counts memory-mapped, its contents checked the first time
        (O(m) once per store object; nothing loaded whole)."""
        m = self.partitions[i]["distinct"]
        keys = np.memmap(self._file(i), np.dtype("<u8"), mode="r", shape=(m,))
        counts = np.memmap(self._file(i), np.dtype("<i8"), mode="r", shape=(m,), offset=8 * m)
        if i not in self._verified:
            self._check_contents(i, keys, counts)
        return keys, counts

    def __iter__(self) -> Iterator[NGramCounts]:
        """The partitions in key order, each an :class:`~fastgram.NGramCounts` (one in memory at a time)."""
        for i in range(len(self.partitions)):
            yield self.partition(i)

    def load(self) -> NGramCounts:
        """All counts as one :class:`~fastgram.NGramCounts` (16 bytes per distinct n-gram)."""
        parts = list(self)
        keys = np.concatenate([p.keys for p in parts])
        counts = np.concatenate([p.counts for p in parts])
        return self._counts(keys, counts, self.tokens)

    # -- queries ----------------------------------------------------------------------------

    def top(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` most frequent n-grams, by count descending then n-gram ascending, as
        :meth:`NGramCounts.top <fastgram.NGramCounts.top>` gives them.

        One partition in memory at a time, plus ``k`` candidates per partition.
        """
        k = _checks.require_int(k, "k", min=0)
        cand_k, cand_c = [_runs.EMPTY_KEYS], [_runs.EMPTY_COUNTS]
        for part in self:
            if k == 0 or not len(part):
                continue
            if k < len(part):
                kth = np.partition(part.counts, len(part) - k)[len(part) - k]
                above = np.flatnonzero(part.counts > kth)
                # ties at the k-th count: the smallest keys first (a partition's keys ascend)
                ties = np.flatnonzero(part.counts == kth)[: k - len(above)]
                idx = np.concatenate([above, ties])
            else:
                idx = np.arange(len(part))
            cand_k.append(part.keys[idx])
            cand_c.append(part.counts[idx])
        keys, counts = np.concatenate(cand_k), np.concatenate(cand_c)
        order = np.lexsort((keys, -counts))[:k]
        return self._counts(keys[order], counts[order]).ngrams, counts[order]

    def lookup(self, ngrams) -> np.ndarray:
        """Counts of the given n-grams (0 for unseen), shape ``(q,)``.

        Memory-maps the partitions the queries fall in: O(q log m), nothing loaded whole, after
        an O(m) check of each partition's contents the first time this store object reads it.
        Raises ``ValueError`` for a wrong shape or an id outside ``[0, V)``, or for a partition
        whose file was tampered with.
        """
        q = self._counts(_runs.EMPTY_KEYS, _runs.EMPTY_COUNTS).pack(ngrams)
        out = np.zeros(len(q), np.int64)
        his = np.array([p["hi"] for p in self.partitions[:-1]], np.uint64)
        where = np.searchsorted(his, q, side="right")
        for i in np.unique(where):
            p = self.partitions[int(i)]
            m = p["distinct"]
            if m == 0:
                continue
            sel = np.flatnonzero(where == i)
            keys, counts = self._mapped(int(i))
            pos = np.minimum(np.searchsorted(keys, q[sel]), m - 1)
            hit = keys[pos] == q[sel]
            out[sel] = np.where(hit, counts[pos], 0)
            del keys, counts
        return out

    def __getitem__(self, ngram) -> int:
        return int(self.lookup(np.asarray(ngram).reshape(1, -1))[0])

    # -- new stores -------------------------------------------------------------------------

    def _meta(self, tokens: int | None = None) -> dict:
        return dict(
            n=self.n,
            vocab_size=self.vocab_size,
            separator=self.separator,
            tokens=self.tokens if tokens is None else tokens,
            vocab=None if self.vocab is None else self.vocab.to_json(),
        )

    def prune(self, min_count: int, *, out) -> "NGramStore":
        """A new store in ``out`` (a new or empty directory) of the n-grams seen at least
        ``min_count`` times, partition by partition; this store is unchanged."""
        min_count = _checks.require_min_count(min_count)
        out, created = prepare_output(out)
        try:
            entries = []
            for i, part in enumerate(self):
                keys, counts = _runs.prune_runs(part.keys, part.counts, min_count)
                p = self.partitions[i]
                entries.append(write_partition(out, i, keys, counts, p["lo"], p["hi"]))
            write_manifest(out, self._meta(), entries)
        except BaseException:
            remove_output(out, created)
            raise
        return NGramStore.open(out)

    def merge(self, others, *, out) -> "NGramStore":
        """A new store in ``out`` with the counts of this store and ``others`` (one store or a
        list) added, as if their streams were counted apart; no input changes.

        The stores must share ``n``, ``vocab_size`` and ``separator``. The result takes the
        partition bounds of the input with the most partitions; each output partition is a
        k-way merge of the matching key ranges of the inputs, read in blocks.
        """
        if isinstance(others, NGramStore):
            others = [others]
        elif not isinstance(others, (list, tuple)):
            raise TypeError(f"others must be an NGramStore or a list of them, got {type(others).__name__}")
        for o in others:
            if not isinstance(o, NGramStore):
                raise TypeError(f"others must be NGramStore objects, got {type(o).__name__}")
            check_compatible(self, o)
        stores = [self, *others]
        for s in stores:  # what is merged must hold (a merge of a tampered store would look sound)
            for j in range(len(s.partitions)):
                if j not in s._verified:
                    s._mapped(j)
        layout = max(stores, key=lambda s: len(s.partitions))
        out, created = prepare_output(out)
        try:
            entries = []
            for i, p in enumerate(layout.partitions):
                lo, hi = p["lo"], p["hi"]
                sources = []
                for s in stores:
                    for j, q in enumerate(s.partitions):
                        if q["hi"] <= lo or q["lo"] >= hi or q["distinct"] == 0:
                            continue
                        bounds = [max(lo, q["lo"]), min(hi, q["hi"])]
                        edge = [b for b in bounds if b < 1 << 64]
                        pos = list(search_run(s._file(j), q["distinct"], edge)) + [q["distinct"]] * (2 - len(edge))
                        sources.append(RunSlice(s._file(j), q["distinct"], int(pos[0]), int(pos[1])))
                keys, counts = merge_slices(sources)
                entries.append(write_partition(out, i, keys, counts, lo, hi))
            vocab = next((s.vocab for s in stores if s.vocab is not None), None)
            meta = self._meta(tokens=sum(s.tokens for s in stores))
            meta["vocab"] = None if vocab is None else vocab.to_json()
            write_manifest(out, meta, entries)
        except BaseException:
            remove_output(out, created)
            raise
        return NGramStore.open(out)

    @classmethod
    def from_counts(cls, counts: NGramCounts, out, *, partitions: int = 1) -> "NGramStore":
        """Write in-memory :class:`~fastgram.NGramCounts` as a store of ``partitions`` parts of
        about equal size (new or empty directory ``out``)."""
        if not isinstance(counts, NGramCounts):
            raise TypeError(f"counts must be NGramCounts, got {type(counts).__name__}")
        partitions = _checks.require_int(partitions, "partitions", min=1)
        if counts.keys.ndim != 1:
            raise ValueError(
                f"counts: a store holds n-grams whose key fits one 64-bit word (V**n <= 2**64); these "
                f"{counts.n}-grams over vocab_size={counts.vocab_size:,} need {counts.keys.shape[1]} words"
            )
        space = counts.vocab_size**counts.n
        m = len(counts)
        cuts = sorted({int(counts.keys[(i * m) // partitions]) for i in range(1, partitions) if m})
        bounds = [0, *[c for c in cuts if 0 < c < space], space]
        out, created = prepare_output(out)
        try:
            edges = np.searchsorted(counts.keys, np.array(bounds[1:-1], np.uint64))
            edges = [0, *edges.tolist(), m]
            entries = [
                write_partition(out, i, counts.keys[a:b], counts.counts[a:b], bounds[i], bounds[i + 1])
                for i, (a, b) in enumerate(zip(edges[:-1], edges[1:]))
            ]
            meta = dict(
                n=counts.n,
                vocab_size=counts.vocab_size,
                separator=counts.separator,
                tokens=counts.tokens,
                vocab=None if counts.vocab is None else counts.vocab.to_json(),
            )
            write_manifest(out, meta, entries)
        except BaseException:
            remove_output(out, created)
            raise
        return cls.open(out)
