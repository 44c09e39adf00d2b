"""Compiling kernels ahead of time, and saying so when a command has to compile.

Numba compiles a kernel the first time it is called with new argument types and keeps the
machine code in its on-disk cache (``cache=True``: ``__pycache__`` beside the kernel files, or
``NUMBA_CACHE_DIR``). A cold cache costs about 100 s of CPU for ``fastgram check`` (typing,
lowering and LLVM of each kernel once: parallel kernels share one launcher, see
:mod:`fastgram._jit`), so this module:

- splits the work into *tasks* (:data:`TASKS`), each a set of calls of the public functions on
  tiny inputs of every dtype they are used with: for every registry entry, the kernel side of
  its own cases (so the warm-up compiles exactly what ``fastgram check`` will run, and follows
  the registry as it changes), split by float dtype where an entry has both; plus a few calls
  that the cases do not make (other stream widths, the language model, word vocabularies);
- runs tasks in parallel processes (:func:`warm_up`: a ``ProcessPoolExecutor`` with the
  ``spawn`` context; each cache save is locked across processes, see :mod:`fastgram._jit`,
  so several processes may fill one cache, even with specialisations of one kernel), longest
  first, printing a line per finished task and a heartbeat every few seconds, so nothing is
  silent for long;
- tells whether a command's tasks are cached (:func:`cold_tasks`: the cache index of a probe
  kernel per task, read the way Numba reads it), so ``fastgram check`` and ``fastgram demo``
  warm up in parallel only when the cache is cold;
- watches every compile in the command's own process (:func:`compile_notice`: Numba's
  ``numba:compile`` event fires only on a cache miss), printing "compiling kernels (first run
  only) ..." once and then the kernel being compiled every few seconds.

Everything goes to stderr, prefixed ``fastgram:``; stdout stays the command's output.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import multiprocessing
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence

import numpy as np
from numba.core import event as _event

from fastgram import _jit, kernels, sampling
from fastgram.app.notebook import notebook_demo
from fastgram.attention import attention
from fastgram.counting import BigramCounter, count_bigrams, count_ngrams
from fastgram.kernels import attention as _k_attention
from fastgram.kernels import attention_decode as _k_attention_decode
from fastgram.kernels import counting as _k_counting
from fastgram.kernels import lm as _k_lm
from fastgram.kernels import lm_estimate as _k_lm_estimate
from fastgram.kernels import metrics as _k_metrics
from fastgram.kernels import ngrams as _k_ngrams
from fastgram.kernels import ngrams_wide as _k_ngrams_wide
from fastgram.kernels import random as _k_random
from fastgram.kernels import sampling as _k_sampling
from fastgram.kernels import sampling_logits as _k_sampling_logits
from fastgram.lm import NGramLM
from fastgram.registry import REGISTRY, max_difference
from fastgram.vocab import WordVocab

#: The kernel modules that probes name.
_KERNEL_MODULES = {
    "attention": _k_attention,
    "attention_decode": _k_attention_decode,
    "counting": _k_counting,
    "lm": _k_lm,
    "lm_estimate": _k_lm_estimate,
    "metrics": _k_metrics,
    "ngrams": _k_ngrams,
    "ngrams_wide": _k_ngrams_wide,
    "random": _k_random,
    "sampling": _k_sampling,
    "sampling_logits": _k_sampling_logits,
}

__all__ = [
    "Task",
    "TASKS",
    "NOTICE",
    "select_tasks",
    "cold_tasks",
    "warm_up",
    "warm_up_if_cold",
    "compile_notice",
    "cache_location",
]

#: The first line a command prints before it compiles.
NOTICE = "compiling kernels (first run only; `fastgram compile` does it ahead of time) ..."
#: Seconds without a line after which a heartbeat line is printed.
HEARTBEAT_S = 4.0


# --- tasks ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Task:
    """One unit of warm-up work, run in one process.

    Attributes
    ----------
    name : str
        ``"attention[float32]"``, ``"count_bigrams"``, ``"lm"``...
    family : str
        The registry family it belongs to (``fastgram compile counting`` selects by it).
    entries : tuple of str
        Registry entries whose kernel side it runs (``fastgram check NAME`` needs these tasks).
    dtype : str or None
        Only the cases whose first float array has this dtype (``None``: every case).
    extra : str or None
        Name of a function in this module making calls the registry cases do not make.
    probes : tuple of (module, kernel, dtype or None)
        Kernels under :mod:`fastgram.kernels` whose cache index tells whether the task is
        cached (with ``dtype``: an entry with an argument of that dtype).
    cost : float
        Rough cold seconds on one core, for scheduling the longest tasks first.
    """

    name: str
    family: str
    entries: tuple[str, ...] = ()
    dtype: str | None = None
    extra: str | None = None
    probes: tuple[tuple[str, str, str | None], ...] = ()
    cost: float = 1.0


def _first_float_dtype(case) -> str | None:
    for a in case.args:
        if isinstance(a, np.ndarray) and a.dtype.kind == "f":
            return a.dtype.name
    return None


def _run_entries(task: Task) -> None:
    """The kernel side of the task's registry cases (results are not compared here).

    Every case runs; the first error, if any, is raised at the end (``fastgram check`` says
    which cases fail and how).
    """
    first_error = None
    for index, name in enumerate(REGISTRY):
        if name not in task.entries:
            continue
        entry = REGISTRY[name]
        for case in entry.cases(np.random.default_rng([0, index])):
            if task.dtype is not None and _first_float_dtype(case) != task.dtype:
                continue
            try:
                got = entry.kernel(*case.args, **case.kwargs)
                (entry.compare or max_difference)(got, got)  # lazy parts of results (e.g. .ngrams) too
            except Exception as exc:  # noqa: BLE001 - finish the other cases first
                first_error = first_error or RuntimeError(f"{name}, case {case.label!r}: {type(exc).__name__}: {exc}")
    if first_error is not None:
        raise first_error


def _extra_counting() -> None:
    rng = np.random.default_rng(0)
    for dtype in (np.uint8, np.uint16, np.uint32, np.uint64):
        tokens = rng.integers(0, 200, 3_000).astype(dtype)
        count_bigrams(tokens, 256)
        counter = BigramCounter(256)
        counter.update(tokens)
        for n in (1, 2, 3):
            count_ngrams(tokens, n, vocab_size=256)
        if dtype != np.uint8:  # the partitioned dense path (large V) of each wider stream
            count_bigrams(rng.integers(0, 3_000, 3_000).astype(dtype), 3_000)
            count_ngrams(rng.integers(0, 70_000 if dtype != np.uint16 else 65_535, 3_000).astype(dtype), 2)


def _extra_sampling() -> None:
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 5, (20, 20))
    counts[:, 0] += 1
    for table in (counts, counts.astype(np.float64), counts.astype(np.float32), sampling.bigram_probs(counts, 1.0)):
        sampling.generate(table, np.zeros(4, np.int64), 8, seed=0)
        sampling.sample_next(table, np.arange(20), seed=0)


def _extra_lm() -> None:
    rng = np.random.default_rng(0)
    words = np.array("the a cat dog sat on mat log and ran to it".split())
    sentences = [" ".join(words[rng.integers(0, len(words), rng.integers(3, 9))]) for _ in range(200)]
    lm = NGramLM.estimate(sentences, 3, discount_fallback=True)
    lm.score(sentences)
    lm.perplexity(sentences)
    lm.generate(2, 10, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "lm.arpa")
        lm.write_arpa(path)
        NGramLM.read_arpa(path)


def _extra_words() -> None:
    vocab = WordVocab.from_text("the cat sat\non the mat\n")
    vocab.decode(vocab.encode("the cat sat on the mat\n"))
    vocab.encode("the cat sat on the mat\n" * 50_000)  # 1.2 MB: the parallel runs of lines


def _extra_attention_parallel() -> None:
    """Calls above :data:`fastgram.attention.SERIAL_WORK` (every layer): the parallel decode and
    prefill kernels (most of the registry's cases run in the calling thread)."""
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        for T in (1, 16):
            q = rng.standard_normal((2, 8, T, 64)).astype(dtype)
            kv = rng.standard_normal((2, 8, 2048, 64)).astype(dtype)
            attention(q, kv, kv, causal=T > 1)


def _extra_notebook() -> None:
    notebook_demo(seed=0)


def _build_tasks() -> dict[str, Task]:
    tasks = [
        Task("attention[float32]", "attention", ("attention",), "float32", None,
             (("attention", "attend_items", "float32"),), 12.0),
        Task("attention[float64]", "attention", ("attention",), "float64", None,
             (("attention", "attend_items", "float64"),), 12.0),
        Task("count_bigrams", "counting", ("count_bigrams",), None, None,
             (("counting", "count_pieces_private", None), ("counting", "partition_pieces", None)), 7.0),
        Task("count_ngrams", "counting", ("count_ngrams",), None, None,
             (("ngrams", "partition_ngrams", None), ("ngrams", "sort_buckets", None),
              ("ngrams_wide", "partition_wide", None)), 17.0),
        Task("sample_next+generate", "sampling", ("sample_next", "generate"), None, None,
             (("sampling", "sample_rows", None), ("sampling", "generate_chains", None)), 8.5),
        Task("sample_logits", "sampling", ("sample_logits",), None, None,
             (("sampling_logits", "prepare_rows", None), ("sampling_logits", "draw_rows", None)), 22.0),
        Task("multinomial", "sampling", ("multinomial",), None, None,
             (("sampling_logits", "draw_without_replacement", None),), 1.0),
        Task("uniform", "sampling", ("uniform",), None, None, (("random", "fill_uniform", None),), 1.0),
        Task("nll", "sampling", ("nll",), None, None, (("metrics", "nll_blocks", None),), 2.0),
        Task("lm_estimate+lm_score+lm_generate", "lm", ("lm_estimate", "lm_score", "lm_generate"), None, None,
             (("lm_estimate", "finish", None), ("lm", "score_sentences", None), ("lm", "generate", None)), 10.0),
        Task("counting (all stream widths)", "counting", (), None, "_extra_counting", (), 6.0),
        Task("sampling (every table dtype)", "sampling", (), None, "_extra_sampling", (), 3.0),
        Task("notebook", "attention", (), None, "_extra_notebook", (), 1.0),
        Task("attention (parallel paths)", "attention", (), None, "_extra_attention_parallel",
             (("attention_decode", "decode_items", "float32"),
              ("attention_decode", "decode_items", "float64")), 6.0),
        Task("lm", "lm", (), None, "_extra_lm", (), 10.0),
        Task("words", "lm", (), None, "_extra_words", (), 2.0),
    ]  # fmt: skip
    known = set(REGISTRY)
    covered = {e for t in tasks for e in t.entries}
    for name in known - covered:  # an entry registered later still gets warmed up
        entry = REGISTRY[name]
        tasks.append(Task(name, entry.family, (name,), cost=4.0))
    return {t.name: t for t in tasks}


#: Every warm-up task by name.
TASKS: dict[str, Task] = _build_tasks()


def select_tasks(names: Iterable[str] | None = None, *, command: str = "compile") -> list[Task]:
    """The tasks a command needs.

    Parameters
    ----------
    names : iterable of str, optional
        Registry entries, families, or task names (``None``: all of them).
    command : {"compile", "check", "demo"}
        ``check`` keeps the tasks of registry entries; ``demo`` adds the notebook's.

    Raises
    ------
    ValueError
        For a name that is neither a task, a registry entry nor a family.
    """
    tasks = list(TASKS.values())
    if command == "check":
        tasks = [t for t in tasks if t.entries]
    elif command == "demo":
        tasks = [t for t in tasks if t.entries or t.name == "notebook"]
    if names is None:
        return tasks
    wanted = list(names)
    known = set(TASKS) | set(REGISTRY) | {t.family for t in TASKS.values()}
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise ValueError(f"names: unknown kernel, family or task {unknown}; known: {sorted(known)}")
    return [t for t in tasks if t.name in wanted or t.family in wanted or set(t.entries) & set(wanted)]


def run_task(name: str) -> float:
    """Run one task in this process; return its seconds."""
    start = time.perf_counter()
    task = TASKS[name]
    _run_entries(task)
    if task.extra is not None:
        globals()[task.extra]()
    return time.perf_counter() - start


# --- is it cached? ----------------------------------------------------------------------------


def _probe_cached(module: str, name: str, dtype: str | None) -> bool:
    """Whether ``fastgram.kernels.<module>.<name>`` has a fresh cache entry (of ``dtype``)."""
    dispatcher = getattr(_KERNEL_MODULES[module], name)
    cache_file = dispatcher._cache._cache_file  # Numba's own index reader: stale source -> {}
    index = cache_file._load_index()
    if dtype is None:
        return bool(index)
    return any(str(getattr(t, "dtype", "")) == dtype for key in index for t in key[0])


def cold_tasks(tasks: Sequence[Task]) -> list[Task]:
    """The tasks whose probe kernels are not in the on-disk cache.

    A task with no probe counts as cached (its kernels compile in the command's process, with
    the notice). With caching off (``FASTGRAM_SERIAL=1``) or Numba's private cache API
    changed, nothing is reported cold: the in-process notice still explains any compile.
    """
    if _jit.SERIAL:
        return []
    cold = []
    for task in tasks:
        try:
            if not all(_probe_cached(*probe) for probe in task.probes):
                cold.append(task)
        except Exception:  # noqa: BLE001 - a renamed kernel or a changed Numba: do not guess
            continue
    return cold


def cache_location() -> str:
    """Where compiled kernels are kept (``NUMBA_CACHE_DIR`` or ``__pycache__`` of the kernels)."""
    chosen = os.environ.get("NUMBA_CACHE_DIR")
    if chosen:
        return chosen
    return os.path.join(os.path.dirname(kernels.__file__), "__pycache__")


# --- progress ---------------------------------------------------------------------------------


class _Progress:
    """Lines to stderr, plus a heartbeat while something runs and nothing was printed."""

    def __init__(self, stream=None, heartbeat_s: float = HEARTBEAT_S):
        self.stream = stream if stream is not None else sys.stderr
        self.heartbeat_s = heartbeat_s
        self.lock = threading.Lock()
        self.last = time.monotonic()
        self.running: dict[str, float] = {}  # what -> since when
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def say(self, line: str) -> None:
        with self.lock:
            print(f"fastgram: {line}", file=self.stream, flush=True)
            self.last = time.monotonic()

    def start(self, what: str) -> None:
        with self.lock:
            self.running[what] = time.monotonic()
            if self._thread is None:
                self._thread = threading.Thread(target=self._beat, name="fastgram-compile-heartbeat", daemon=True)
                self._thread.start()

    def done(self, what: str) -> float:
        with self.lock:
            since = self.running.pop(what, time.monotonic())
        return time.monotonic() - since

    def _beat(self) -> None:
        while not self._stop.wait(0.25):
            with self.lock:
                quiet = time.monotonic() - self.last
                running = dict(self.running)
            if running and quiet >= self.heartbeat_s:
                now = time.monotonic()
                shown = ", ".join(f"{w} ({now - t:.1f} s)" for w, t in sorted(running.items(), key=lambda kv: kv[1]))
                self.say(f"  still compiling: {shown}")

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


# --- parallel warm-up -------------------------------------------------------------------------


def default_jobs() -> int:
    """Processes for the warm-up: the CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _cpu_times() -> tuple[float, float] | None:
    """(busy, total) jiffies of all CPUs from ``/proc/stat`` (None where there is none)."""
    try:
        with open("/proc/stat") as f:
            fields = [float(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    if len(fields) < 5:
        return None
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def idle_cpus(interval_s: float = 0.2) -> float | None:
    """CPUs idle now: sampled from ``/proc/stat`` over ``interval_s`` (else the 1-minute load
    average, which still counts a ``pip install`` that just ended; None where neither exists)."""
    first = _cpu_times()
    if first is not None:
        time.sleep(interval_s)
        second = _cpu_times()
        if second is not None and second[1] > first[1]:
            busy = (second[0] - first[0]) / (second[1] - first[1])
            return (1.0 - busy) * (os.cpu_count() or 1)
    try:
        return default_jobs() - os.getloadavg()[0]
    except (OSError, AttributeError):
        return None


def warm_up(tasks: Sequence[Task], *, jobs: int | None = None, stream=None, notice: str | None = None) -> list[str]:
    """Run ``tasks`` in ``jobs`` parallel processes (1: in this process), printing progress.

    Returns the names of the tasks that failed (each failure is printed with its reason).
    """
    if not tasks:
        return []
    jobs = default_jobs() if jobs is None else jobs
    progress = _Progress(stream)
    ordered = sorted(tasks, key=lambda t: -t.cost)
    jobs = max(1, min(jobs, len(ordered)))
    progress.say(notice or NOTICE)
    progress.say(f"  {len(ordered)} task(s) in {jobs} process(es), cache: {cache_location()}")
    failed: list[str] = []
    start = time.monotonic()
    try:
        if jobs == 1:
            for i, task in enumerate(ordered, 1):
                progress.start(task.name)
                try:
                    run_task(task.name)
                    progress.say(f"  [{i}/{len(ordered)}] {task.name} ({progress.done(task.name):.1f} s)")
                except Exception as exc:  # noqa: BLE001 - report and go on
                    progress.done(task.name)
                    progress.say(f"  [{i}/{len(ordered)}] {task.name} FAILED: {type(exc).__name__}: {exc}")
                    failed.append(task.name)
        else:
            failed = _warm_up_pool(ordered, jobs, progress)
    finally:
        progress.close()
    progress.say(f"  kernels ready in {time.monotonic() - start:.1f} s")
    return failed


def _warm_up_pool(ordered: list[Task], jobs: int, progress: _Progress) -> list[str]:
    context = multiprocessing.get_context("spawn")
    failed = []
    # Workers keep Numba's thread count: wrappers choose a parallel path by shape and thread
    # count (attention above its serial limit), and a worker on one thread would never compile
    # the launchers and chunk planners that fastgram check then needs (1.5 s left to it).
    pool = concurrent.futures.ProcessPoolExecutor(jobs, mp_context=context)
    try:
        futures = {}
        for task in ordered:  # submitted longest first; the pool starts them in this order
            futures[pool.submit(run_task, task.name)] = task
        pending = set(futures)
        for task in ordered[:jobs]:
            progress.start(task.name)
        started = jobs
        done_count = 0
        while pending:
            finished, pending = concurrent.futures.wait(pending, return_when=concurrent.futures.FIRST_COMPLETED)
            for fut in finished:
                task = futures[fut]
                elapsed = progress.done(task.name)
                done_count += 1
                exc = fut.exception()
                if exc is None:
                    progress.say(f"  [{done_count}/{len(ordered)}] {task.name} ({elapsed:.1f} s)")
                else:
                    progress.say(f"  [{done_count}/{len(ordered)}] {task.name} FAILED: {type(exc).__name__}: {exc}")
                    failed.append(task.name)
                if started < len(ordered):
                    progress.start(ordered[started].name)
                    started += 1
    finally:  # the results are in the cache; the workers may take seconds to exit, do not wait
        pool.shutdown(wait=False, cancel_futures=True)
    return failed


def warm_up_if_cold(tasks: Sequence[Task], *, jobs: int | None = None, stream=None) -> bool:
    """Warm up in parallel processes when some of ``tasks`` are not cached; return whether it did.

    With one CPU, or a machine whose other work leaves less than two CPUs idle now
    (:func:`idle_cpus`), there is nothing to gain (measured on a shared 2-core machine at load 4-5: the
    processes duplicate shared helpers and the wall time grew): the command compiles in its own
    process, and :func:`compile_notice` explains it. ``fastgram compile`` always uses processes.
    """
    cold = cold_tasks(tasks)
    if jobs is None:
        jobs = default_jobs()
        idle = idle_cpus()
        if idle is not None:
            jobs = min(jobs, int(idle + 0.5))
    if not cold or jobs < 2:
        return False
    try:
        warm_up(cold, jobs=jobs, stream=stream)
    except (OSError, concurrent.futures.process.BrokenProcessPool) as exc:  # no processes: compile here
        print(f"fastgram: parallel warm-up unavailable ({exc}); compiling in this process", file=stream or sys.stderr)
        return False
    return True


# --- the notice in the command's own process ---------------------------------------------------


class _CompileListener(_event.Listener):
    """Turns Numba's ``numba:compile`` events (cache misses only) into progress lines."""

    def __init__(self, progress: _Progress, min_report_s: float):
        self.progress = progress
        self.min_report_s = min_report_s
        self.depth = threading.local()
        self.noticed = False

    @staticmethod
    def _name(ev) -> str | None:
        fn = getattr(ev.data.get("dispatcher"), "py_func", None)
        module = getattr(fn, "__module__", "") or ""
        if not module.startswith("fastgram."):
            return None
        args = ev.data.get("args", ())
        arrays = [a for a in args if hasattr(a, "dtype")]  # the first array's dtype tells builds apart
        kind = str(arrays[0].dtype) if arrays else (str(args[0]) if args else "")
        return f"{module.rsplit('.', 1)[-1]}.{fn.__qualname__}({kind})"

    def on_start(self, ev) -> None:
        depth = getattr(self.depth, "n", 0)
        self.depth.n = depth + 1
        name = self._name(ev)
        if depth or name is None:
            return
        if not self.noticed:
            self.noticed = True
            self.progress.say(NOTICE)
        self.progress.start(name)

    def on_end(self, ev) -> None:
        self.depth.n = getattr(self.depth, "n", 1) - 1
        name = self._name(ev)
        if self.depth.n or name is None:
            return
        elapsed = self.progress.done(name)
        if elapsed >= self.min_report_s:
            self.progress.say(f"  compiled {name} in {elapsed:.1f} s")


@contextlib.contextmanager
def compile_notice(stream=None, min_report_s: float = 1.0):
    """Within the block, any kernel compiled in this process is announced on ``stream``.

    The first compile prints :data:`NOTICE`; a kernel that took at least ``min_report_s``
    gets a line when done, and one still compiling gets a heartbeat every
    :data:`HEARTBEAT_S` seconds. Kernels loaded from the cache print nothing.
    """
    progress = _Progress(stream)
    listener = _CompileListener(progress, min_report_s)
    _event.register("numba:compile", listener)
    try:
        yield listener
    finally:
        _event.unregister("numba:compile", listener)
        progress.close()


def run_compile(names: Iterable[str] | None, *, jobs: int | None, out: Callable[[str], None] = print) -> bool:
    """``fastgram compile``: fill the cache for ``names`` (all by default); return success."""
    if _jit.SERIAL:
        out("FASTGRAM_SERIAL=1: kernels are compiled uncached, so there is no cache to fill")
        return True
    tasks = select_tasks(names, command="compile")
    start = time.monotonic()
    failed = warm_up(tasks, jobs=jobs, notice=f"compiling {len(tasks)} kernel task(s) into the cache ...")
    took = time.monotonic() - start
    if failed:
        out(f"{len(tasks) - len(failed)} of {len(tasks)} tasks compiled in {took:.1f} s; failed: {', '.join(failed)}")
        return False
    out(f"{len(tasks)} tasks compiled in {took:.1f} s into {cache_location()}")
    return True
