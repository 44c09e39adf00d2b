"""Counting files into an :class:`~fastgram.NGramStore`, in one process or on a Dask cluster.

``count_files(paths, n, ..., out=DIR[, client=...])`` comes here. The count is a map, a
shuffle by key range and a reduce (counts are a commutative monoid):

1. **plan** (client): the files in order; each file, or each range of ``task_tokens`` tokens
   of a large raw token file, is one map task.
2. **map** (workers): a task counts the n-grams *starting* in its range with fastgram's
   kernels (:class:`~fastgram.NGramCounter`, bounded by ``max_memory``), reading up to
   ``n - 1`` tokens past its end -- from the same file, or, without a separator, from the next
   files, however short -- so every n-gram across a range or shard edge is counted exactly
   once. It writes one sorted run (keys then counts, :func:`fastgram.store.write_run`) under
   a task-unique temporary name renamed atomically (a retried task rewrites the same bytes),
   and returns only its size and ~1,000 evenly spaced keys of the run.
3. **bounds** (client): weighted quantiles of those samples cut the key space into
   partitions holding about equal numbers of run entries, so they are balanced on skewed
   (Zipf) data as well.
4. **reduce** (workers): partition ``[lo, hi)`` binary-searches every run (memory-mapped),
   k-way merges the slices block by block (``_runs.merge_sources``) and writes its partition.
5. **finish** (client): partitions are renamed into ``DIR``, scratch removed, and
   ``manifest.json`` written last.

The client only ever holds plans, samples and manifest entries -- never counts. With Dask,
``DIR`` must be on a filesystem that every worker and the client can read and write (NFS,
Lustre, a local disk for a ``LocalCluster``). On any failure (a bad shard, an id out of
range: the error names the file and the position) the files this count wrote are removed
and there is no manifest. Dask is imported only when ``client=`` is given.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import uuid

import numba
import numpy as np

from fastgram import _checks, _io
from fastgram.counting.sparse import NGramCounter
from fastgram.store import (
    NGramStore,
    RunSlice,
    merge_slices,
    prepare_output,
    remove_output,
    search_run,
    write_manifest,
    write_partition,
    write_run_blocks,
)

__all__ = ["count_to_store", "dask_client", "TASK_TOKENS", "PARTITION_ENTRIES", "SAMPLE_KEYS"]

#: Tokens per map task at most (a larger raw file is split into ranges): 64 Mi.
TASK_TOKENS = 1 << 26
#: Run entries per partition aimed at (16 bytes each in the reduce's output): 8 Mi.
PARTITION_ENTRIES = 1 << 23
#: Keys each map task returns to choose the partition bounds.
SAMPLE_KEYS = 1024
_KEY_LIMIT = 1 << 64


# ---------------------------------------------------------------------------------------------
# reading a task's tokens
# ---------------------------------------------------------------------------------------------


def _raw_range(path: str, dtype: np.dtype, start: int, stop: int, size: int, chunk_tokens: int):
    """``(chunk, position in file)`` of tokens ``[start, stop)`` of a raw file of ``size`` bytes."""
    step = max(1, min(chunk_tokens, stop - start))
    buffer = np.empty(step, dtype)
    raw = memoryview(buffer).cast("B")
    with open(path, "rb", buffering=0) as f:
        now = os.fstat(f.fileno()).st_size
        if now != size:
            raise ValueError(f"{path}: file changed size ({size:,} bytes when planned, {now:,} now)")
        f.seek(start * dtype.itemsize)
        pos = start
        while pos < stop:
            want = min(step, stop - pos) * dtype.itemsize
            got = f.readinto(raw[:want])
            if got != want:
                raise ValueError(f"{path}: file ended at byte {pos * dtype.itemsize + got:,}, expected {size:,} bytes")
            yield buffer[: want // dtype.itemsize], pos
            pos += want // dtype.itemsize


def _text_tokens(path: str, vocab, chunk: int):
    """``(ids, position in file)`` of a text file: bytes (byte level) or characters."""
    pos = 0
    if vocab is None or vocab.byte_level:
        for ids, _ in _io.utf8_chunks(path, chunk):
            yield ids, pos
            pos += len(ids)
        return
    for text, _ in _io.text_chunks(path, chunk):
        try:
            ids = vocab._encode(text, pos)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
        yield ids, pos
        pos += len(ids)


def _task_chunks(spec: dict):
    if spec["dtype"] is not None:
        yield from _raw_range(
            spec["path"], spec["dtype"], spec["start"], spec["stop"], spec["size"], spec["chunk_tokens"]
        )
    else:
        yield from _text_tokens(spec["path"], spec["vocab"], spec["chunk_tokens"])


def _lookahead(spec: dict, need: int):
    """``(path, ids, position)`` pieces of the ``need`` tokens after the task's range."""
    pieces = []
    if spec["dtype"] is not None:
        itemsize = spec["dtype"].itemsize
        for path, start, size in spec["after"]:
            stop = min(start + need, size // itemsize)
            for ids, pos in _raw_range(path, spec["dtype"], start, stop, size, need):
                pieces.append((path, ids.copy(), pos))
                need -= len(ids)
            if need <= 0:
                break
        return pieces
    for path, _, _ in spec["after"]:
        for ids, pos in _text_tokens(path, spec["vocab"], max(4 * need, 16)):
            ids = ids[:need].copy()
            pieces.append((path, ids, pos))
            need -= len(ids)
            if need <= 0:
                return pieces
    return pieces


def _set_threads(threads: int | None) -> None:
    if threads is not None:
        numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))


def _dask_threads(host_slots: dict | None) -> int | None:
    """Numba threads for a task on this worker: the host's cores shared by its task slots."""
    if not host_slots:
        return None
    from distributed import get_worker  # optional dependency: only on Dask workers

    try:
        host = get_worker().address.rsplit("//", 1)[-1].rsplit(":", 1)[0]
    except ValueError:  # not in a worker (e.g. a test calling the task directly)
        return None
    return max(1, (os.cpu_count() or 1) // max(1, host_slots.get(host, 1)))


# ---------------------------------------------------------------------------------------------
# tasks (module-level functions: Dask pickles them by reference)
# ---------------------------------------------------------------------------------------------


def scan_task(spec: dict) -> int:
    """Largest id of a task's range (-1 if empty)."""
    _set_threads(spec.get("threads") or _dask_threads(spec.get("host_slots")))
    best = -1
    for ids, _ in _task_chunks(spec):
        best = max(best, _checks.stream_max(ids))
    return best


def map_task(spec: dict) -> dict:
    """Count the n-grams starting in a task's range; write them as one sorted run.

    Returns ``{"run", "distinct", "tokens", "sample"}`` (no counts).
    """
    _set_threads(spec.get("threads") or _dask_threads(spec.get("host_slots")))
    n, V, sep = spec["n"], spec["V"], spec["separator"]
    path = spec["path"]
    tokens = 0
    with NGramCounter(n, V, separator=sep, max_memory=spec["max_memory"], tmp_dir=spec.get("tmp_dir")) as counter:
        for ids, pos in _task_chunks(spec):
            _checks.check_token_range(ids, V, name=path, offset=pos)
            counter.update(ids)
            tokens += len(ids)
        if n > 1:
            for other, ids, pos in _lookahead(spec, n - 1):
                _checks.check_token_range(ids, V, name=other, offset=pos)
                counter.update(ids)
        # written as merged, block by block: a task (a whole text file) never holds its result
        m = write_run_blocks(spec["run"], counter.result_blocks())
    keys = np.memmap(spec["run"], np.dtype("<u8"), mode="r", shape=(m,)) if m else np.zeros(0, np.uint64)
    sample = np.array(keys[(np.arange(min(m, SAMPLE_KEYS)) * m) // max(1, min(m, SAMPLE_KEYS))], np.uint64)
    del keys
    return {"run": spec["run"], "distinct": m, "tokens": tokens, "sample": sample}


def reduce_task(spec: dict) -> dict:
    """Merge key range ``[lo, hi)`` of every run into partition ``index``; its manifest entry."""
    _set_threads(spec.get("threads") or _dask_threads(spec.get("host_slots")))
    lo, hi = spec["lo"], spec["hi"]
    sources = []
    for run, m in spec["runs"]:
        if m == 0:
            continue
        edges = [b for b in (lo, hi) if b < _KEY_LIMIT]
        pos = [int(p) for p in search_run(run, m, edges)] + [m] * (2 - len(edges))
        if pos[1] > pos[0]:
            sources.append(RunSlice(run, m, pos[0], pos[1]))
    block = max(4096, spec["block"] // max(1, len(sources)))
    keys, counts = merge_slices(sources, spec["min_count"], block)
    return write_partition(spec["work"], spec["index"], keys, counts, lo, hi)


# ---------------------------------------------------------------------------------------------
# executors: in this process, or on a Dask cluster
# ---------------------------------------------------------------------------------------------


class _Serial:
    slots = 1
    host_slots = None

    def __init__(self, progress: bool):
        self.progress = progress

    def map(self, fn, specs: list, label: str) -> list:
        out = []
        with _io.progress_bar(len(specs), label, "task", enabled=self.progress) as bar:
            for spec in specs:
                out.append(fn(spec))
                bar.update(1)
        return out


#: Worker task states in which a task's function may still be running.
_RUNNING_STATES = frozenset({"executing", "long-running", "cancelled", "resumed"})


def _running(keys: list, dask_worker=None) -> list:
    """On a worker (``Client.run``): those of ``keys`` whose function may still be running."""
    tasks = dask_worker.state.tasks
    return [k for k in keys if k in tasks and tasks[k].state in _RUNNING_STATES]


class _Dask:
    def __init__(self, client, progress: bool):
        workers = client.scheduler_info().get("workers", {})
        if not workers:
            raise ValueError("client= has no workers: start some (or wait for them) before counting")
        slots: dict[str, int] = {}
        for info in workers.values():
            slots[info["host"]] = slots.get(info["host"], 0) + int(info.get("nthreads", 1))
        self.client, self.progress = client, progress
        self.host_slots = slots
        self.slots = sum(slots.values())
        self.uid = uuid.uuid4().hex[:10]

    def map(self, fn, specs: list, label: str) -> list:
        from distributed import as_completed  # optional dependency

        if not specs:
            return []
        keys = [f"fastgram-{label}-{self.uid}-{i}" for i in range(len(specs))]
        futures = [self.client.submit(fn, s, key=k, pure=False) for s, k in zip(specs, keys)]
        try:
            with _io.progress_bar(len(specs), label, "task", enabled=self.progress) as bar:
                for future in as_completed(futures):
                    if future.status == "error":
                        future.result()  # raises the task's exception, message intact
                    bar.update(1)
            return self.client.gather(futures)
        except BaseException:
            self.client.cancel(futures)
            self._drain(set(keys))
            raise

    def _drain(self, keys: set, timeout: float = 60.0) -> None:
        """Wait until no task of ``keys`` is still running (a cancelled task that already started
        finishes on its worker): the caller then removes what they wrote, with none writing.

        The workers are asked, not the scheduler: the scheduler forgets a cancelled task at once,
        while its worker keeps the task (state ``cancelled``) until the thread running it ends."""
        deadline = time.monotonic() + timeout
        keys = sorted(keys)
        while time.monotonic() < deadline:
            if self.client.status != "running":  # the cluster is gone: nothing runs for us any more
                return
            try:
                running = self.client.run(_running, keys)
            except Exception:  # a worker too busy to answer in time, or just leaving: ask again
                running = {"?": [None]}
            if not any(running.values()):
                return
            time.sleep(0.05)


# ---------------------------------------------------------------------------------------------
# the driver
# ---------------------------------------------------------------------------------------------


def _bounds(samples: list, weights: list, parts: int, space: int) -> list[int]:
    """Partition bounds ``[0, b1, ..., space]``: weighted quantiles of the runs' sampled keys."""
    keys = [s for s in samples if len(s)]
    if parts <= 1 or not keys:
        return [0, space]
    per = np.concatenate([np.full(len(s), w / len(s)) for s, w in zip(samples, weights) if len(s)])
    keys = np.concatenate(keys)
    order = np.argsort(keys, kind="stable")
    keys, cum = keys[order], np.cumsum(per[order])
    targets = cum[-1] * np.arange(1, parts) / parts
    cuts = keys[np.minimum(np.searchsorted(cum, targets), len(keys) - 1)]
    inner = sorted({int(c) for c in cuts if 0 < int(c) < space})
    return [0, *inner, space]


def count_to_store(
    files: list[str],
    n: int,
    *,
    dtype,
    vocab,
    vocab_size,
    separator,
    min_count: int,
    max_memory: int | None,
    chunk_tokens: int,
    progress: bool,
    out,
    client=None,
    tmp_dir=None,
) -> NGramStore:
    """The counts of ``files`` (checked by ``count_files``) written as a store in ``out``.

    Paths are made absolute first: workers started elsewhere resolve them as this process does.
    ``tmp_dir``: where the map tasks spill beyond ``max_memory`` (default: the system's)."""
    files = [os.path.abspath(p) for p in files]
    if tmp_dir is not None:
        if not isinstance(tmp_dir, (str, os.PathLike)):
            raise TypeError(f"tmp_dir must be a str or os.PathLike, got {type(tmp_dir).__name__}")
        if not os.path.isdir(tmp_dir):
            raise FileNotFoundError(f"tmp_dir {os.fspath(tmp_dir)} is not a directory")
        tmp_dir = os.path.abspath(tmp_dir)
    sizes = [_io.file_size(p) for p in files]
    if None in sizes:
        raise ValueError(f"{files[sizes.index(None)]}: out= counts regular files only (not FIFOs or streams)")
    if client is not None and not hasattr(client, "submit"):
        raise TypeError(f"client must be a dask.distributed.Client, got {type(client).__name__}")
    raw = dtype is not None
    itemsize = dtype.itemsize if raw else 1
    if raw:
        for path, size in zip(files, sizes):
            if size % itemsize:
                raise ValueError(
                    f"{path}: file size {size:,} bytes is not a multiple of {dtype.name}'s {itemsize} bytes; "
                    "is dtype right?"
                )
    executor = _Serial(progress) if client is None else _Dask(client, progress)
    task_tokens = TASK_TOKENS if max_memory is None else max(1 << 16, min(TASK_TOKENS, max_memory // 48))
    # 1. plan: (file index, start, stop) in tokens; text files are one task each
    plan = []
    for fi, size in enumerate(sizes):
        length = size // itemsize
        if length == 0:
            continue
        step = task_tokens if raw else length
        plan += [(fi, lo, min(lo + step, length)) for lo in range(0, length, step)]

    def spec(fi, start, stop, **extra):
        after = [(files[fi], stop, sizes[fi])] if raw and stop < sizes[fi] // itemsize else []
        if separator is None:
            after += [(files[j], 0, sizes[j]) for j in range(fi + 1, len(files)) if sizes[j]]
        return dict(
            path=files[fi], dtype=dtype, vocab=vocab, start=start, stop=stop, size=sizes[fi], after=after,
            chunk_tokens=min(chunk_tokens, task_tokens, max(1, stop - start)), host_slots=executor.host_slots, **extra,
        )  # fmt: skip

    if raw:
        if vocab_size is None:
            top = executor.map(scan_task, [spec(*t) for t in plan], "scan")
            V = max(max(top, default=-1) + 1, 1)
        else:
            V = _checks.check_vocab_size(vocab_size)
    else:
        V = len(vocab) if vocab_size is None else _checks.check_vocab_size(vocab_size)
        if V < len(vocab):
            raise ValueError(f"vocab_size={V:,} is smaller than the vocabulary's {len(vocab):,} ids")
    _checks.check_key_space(V, n)
    separator = _checks.check_separator(separator, V)
    space = V**n
    out, created = prepare_output(out)
    out = os.path.abspath(out)
    work = os.path.join(out, f".runs-{uuid.uuid4().hex[:10]}")
    try:
        with _io.sigterm_as_exception():
            os.mkdir(work)
            # 2. map
            specs = [
                spec(
                    *t,
                    n=n,
                    V=V,
                    separator=separator,
                    max_memory=max_memory,
                    tmp_dir=tmp_dir,
                    run=os.path.join(work, f"run-{i:06d}.bin"),
                )  # fmt: skip
                for i, t in enumerate(plan)
            ]
            runs = executor.map(map_task, specs, "count")
            # 3. bounds from the samples, weighted by run sizes
            entries = sum(r["distinct"] for r in runs)
            target = PARTITION_ENTRIES if max_memory is None else max(4096, max_memory // 64)
            parts = max(-(-entries // target), 2 * executor.slots if client is not None else 1)
            parts = max(1, min(parts, entries))
            bounds = _bounds([r["sample"] for r in runs], [r["distinct"] for r in runs], parts, space)
            # 4. reduce
            run_list = [(r["run"], r["distinct"]) for r in runs]
            block = (max_memory or (256 << 20)) // 64
            rspecs = [
                dict(
                    index=i,
                    lo=lo,
                    hi=hi,
                    runs=run_list,
                    work=work,
                    min_count=min_count,
                    block=block,
                    host_slots=executor.host_slots,
                )  # fmt: skip
                for i, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:]))
            ]
            partitions = executor.map(reduce_task, rspecs, "merge")
            # 5. finish: partitions into place, scratch away, manifest last
            for p in partitions:
                os.replace(os.path.join(work, p["file"]), os.path.join(out, p["file"]))
            _rmtree(work)
            tokens = sum(r["tokens"] for r in runs) + (len(files) - 1 if separator is not None else 0)
            meta = dict(
                n=n, vocab_size=V, separator=separator, tokens=tokens,
                vocab=None if vocab is None else vocab.to_json(),
            )  # fmt: skip
            write_manifest(out, meta, partitions)
    except BaseException:
        remove_output(out, created)
        raise
    return NGramStore.open(out)


def _rmtree(path: str) -> None:
    for name in os.listdir(path):
        os.unlink(os.path.join(path, name))
    os.rmdir(path)


#: The most worker processes a local cluster is started with (a larger cluster has a scheduler).
MAX_LOCAL_WORKERS = 4 * (os.cpu_count() or 1)


def _connect(Client, scheduler: str, timeout: float):
    """``Client(scheduler)``, or ``OSError`` naming the address when no Dask scheduler answers
    within ``timeout`` (plus a grace second). The connection runs in a thread with a deadline:
    a peer that accepts and then says nothing (or speaks another protocol, e.g. the dashboard's
    HTTP) holds Dask's handshake past its own timeout, or fails it with an arbitrary error."""
    result: dict = {}

    def connect():
        try:
            result["client"] = Client(scheduler, timeout=timeout)
        except BaseException as exc:  # noqa: BLE001 - reported below, whatever it is
            result["error"] = exc

    thread = threading.Thread(target=connect, name="fastgram-dask-connect", daemon=True)
    thread.start()
    thread.join(timeout + 1.0)
    if "client" in result:
        return result["client"]
    why = "no answer" if thread.is_alive() else f"{type(result['error']).__name__}: {result['error']}"
    raise OSError(f"no Dask scheduler answered at {scheduler} within {timeout:g} s ({why})")


@contextlib.contextmanager
def dask_client(scheduler: str | None = None, workers: int | None = None, timeout: float = 5.0):
    """A ``dask.distributed.Client``: connected to ``scheduler`` (an address such as
    ``tcp://host:8786``), or to a new ``LocalCluster`` of ``workers`` processes (one thread
    each), closed on leaving the block.

    Raises ``ModuleNotFoundError`` naming the extra when Dask is missing and ``OSError``
    naming the address when no scheduler answers within ``timeout`` seconds.
    """
    try:
        from distributed import Client, LocalCluster
    except ModuleNotFoundError:
        raise ModuleNotFoundError("counting on Dask needs dask.distributed: pip install 'fastgram[dask]'") from None
    if (scheduler is None) == (workers is None):
        raise ValueError("give exactly one of scheduler= (an address) or workers= (a LocalCluster size)")
    with contextlib.ExitStack() as stack:
        if scheduler is not None:
            if not isinstance(scheduler, str) or not scheduler:
                raise TypeError(f"scheduler must be an address string, got {scheduler!r}")
            client = _connect(Client, scheduler, timeout)
            stack.callback(client.close)
        else:
            workers = _checks.require_int(workers, "workers", min=1, max=MAX_LOCAL_WORKERS)
            cluster = stack.enter_context(
                LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
            )
            client = stack.enter_context(Client(cluster))
        yield client
