"""`fastgram compile` fills the kernel cache; a cold command says it is compiling, a warm one does not.

The subprocess tests use a fresh ``NUMBA_CACHE_DIR`` each and small selections (``uniform``:
one small kernel), so they stay quick on two busy cores. Nothing here is timed.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time

import numba
import numpy as np
import pytest

from fastgram import _jit
from fastgram.app import compile as fgc
from fastgram.registry import REGISTRY

NOTICE_WORDS = "compiling kernels (first run only"


def fastgram(*args: str, cache_dir) -> subprocess.CompletedProcess:
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir))
    env.pop("FASTGRAM_SERIAL", None)
    return subprocess.run(
        [sys.executable, "-m", "fastgram.app.cli", *args], capture_output=True, text=True, env=env, timeout=600
    )


@pytest.mark.skipif(_jit.SERIAL, reason="FASTGRAM_SERIAL=1 turns the cache off")
def test_compile_fills_the_cache_then_check_compiles_nothing(tmp_path):
    done = fastgram("compile", "uniform", "--jobs", "2", cache_dir=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[1/1] uniform" in done.stderr
    assert "1 tasks compiled" in done.stdout
    assert any(f.endswith(".nbi") for _, _, files in os.walk(tmp_path) for f in files)  # Numba's cache index

    check = fastgram("check", "uniform", cache_dir=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
    assert NOTICE_WORDS not in check.stderr
    assert "still compiling" not in check.stderr
    assert "uniform" in check.stdout and "FAIL" not in check.stdout


@pytest.mark.skipif(_jit.SERIAL, reason="FASTGRAM_SERIAL=1 turns the cache off")
def test_a_cold_check_says_it_is_compiling(tmp_path):
    check = fastgram("check", "uniform", cache_dir=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
    assert NOTICE_WORDS in check.stderr
    assert "FAIL" not in check.stdout
    # the notice goes to stderr only: stdout is the report
    assert NOTICE_WORDS not in check.stdout


def test_compile_rejects_unknown_names(tmp_path):
    done = fastgram("compile", "no_such_kernel", cache_dir=tmp_path)
    assert done.returncode == 2
    assert "unknown kernel, family or task ['no_such_kernel']" in done.stderr


def test_compile_rejects_zero_jobs(tmp_path):
    done = fastgram("compile", "uniform", "--jobs", "0", cache_dir=tmp_path)
    assert done.returncode == 2
    assert "--jobs" in done.stderr


def test_every_registry_entry_has_a_task_and_every_probe_is_a_cached_kernel():
    covered = {e for t in fgc.TASKS.values() for e in t.entries}
    assert covered == set(REGISTRY)
    for task in fgc.TASKS.values():
        for module, name, _ in task.probes:
            dispatcher = getattr(fgc._KERNEL_MODULES[module], name)
            assert isinstance(dispatcher, numba.core.registry.CPUDispatcher), (task.name, name)
            if not _jit.SERIAL:
                assert dispatcher._cache._cache_file._load_index is not None


def test_select_tasks_by_entry_family_and_command():
    assert [t.name for t in fgc.select_tasks(["uniform"], command="check")] == ["uniform"]
    assert {t.name for t in fgc.select_tasks(["attention"], command="check")} == {
        "attention[float32]",
        "attention[float64]",
    }
    counting = {t.name for t in fgc.select_tasks(["counting"])}
    assert {"count_bigrams", "count_ngrams", "counting (all stream widths)"} <= counting
    assert all(t.entries for t in fgc.select_tasks(None, command="check"))
    assert "notebook" in {t.name for t in fgc.select_tasks(None, command="demo")}
    with pytest.raises(ValueError, match=r"unknown kernel, family or task \['nope'\]"):
        fgc.select_tasks(["nope"])


def test_attention_tasks_split_the_cases_by_dtype():
    entry = REGISTRY["attention"]
    kinds = {fgc._first_float_dtype(c) for c in entry.cases(np.random.default_rng(0))}
    assert kinds == {"float32", "float64"}


def test_compile_notice_reports_a_fastgram_compile_once_and_ignores_others():
    def plain(x):
        return x + 1

    def ours(x):
        return x * 2

    ours.__module__ = "fastgram.kernels._test_notice"
    stream = io.StringIO()
    with fgc.compile_notice(stream=stream, min_report_s=0.0):
        numba.njit(cache=False)(plain)(1)  # not a fastgram kernel: nothing printed
        assert stream.getvalue() == ""
        numba.njit(cache=False)(ours)(1)
        numba.njit(cache=False)(ours)(2.0)
    text = stream.getvalue()
    assert text.count(NOTICE_WORDS) == 1
    assert "compiled _test_notice.test_compile_notice_reports" in text
    assert all(line.startswith("fastgram: ") for line in text.splitlines())
    numba.njit(cache=False)(ours)(3)  # outside the block the listener is gone
    assert stream.getvalue() == text


def test_heartbeat_while_something_runs():
    stream = io.StringIO()
    progress = fgc._Progress(stream, heartbeat_s=0.05)
    progress.start("task A")
    time.sleep(0.4)
    progress.done("task A")
    progress.close()
    assert "still compiling: task A" in stream.getvalue()


def test_cold_tasks_is_empty_when_caching_is_off(monkeypatch):
    monkeypatch.setattr(_jit, "SERIAL", True)
    assert fgc.cold_tasks(list(fgc.TASKS.values())) == []


def test_idle_cpus_measures_this_machine_now():
    idle = fgc.idle_cpus(0.05)
    assert idle is not None and 0.0 <= idle <= (os.cpu_count() or 1) + 1e-9


def test_a_busy_machine_compiles_in_the_command_process(monkeypatch):
    monkeypatch.setattr(fgc, "idle_cpus", lambda: 0.4)
    monkeypatch.setattr(fgc, "cold_tasks", lambda tasks: list(tasks))
    ran = []
    monkeypatch.setattr(fgc, "warm_up", lambda tasks, **kw: ran.append(kw["jobs"]))
    assert fgc.warm_up_if_cold(fgc.select_tasks(command="check")) is False and ran == []
    monkeypatch.setattr(fgc, "idle_cpus", lambda: 1.9)
    monkeypatch.setattr(fgc, "default_jobs", lambda: 2)
    assert fgc.warm_up_if_cold(fgc.select_tasks(command="check")) is True and ran == [2]
