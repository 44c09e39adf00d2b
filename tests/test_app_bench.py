"""`fastgram bench` from a plain (non-editable) wheel install outside the clone, and its message
when pytest is missing. Nothing here is timed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from fastgram.app import bench

ROOT = Path(__file__).resolve().parents[1]


def _run(cmd, **kwargs):
    return subprocess.run(cmd, capture_output=True, text=True, **kwargs)


def _copy_tree(dest: Path) -> None:
    """The files git knows (tracked and untracked, not ignored): the source a clone would have."""
    listed = _run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT)
    if listed.returncode != 0:
        pytest.skip("not a git checkout: cannot list the source files")
    for name in filter(None, listed.stdout.split("\0")):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            (dest / name).write_bytes(src.read_bytes())


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel of this working tree, built in a copy (the clone gets no build/ or egg-info)."""
    src = tmp_path_factory.mktemp("src")
    out = tmp_path_factory.mktemp("wheel")
    _copy_tree(src)
    base = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", str(src), "-w", str(out)]
    for extra in (["--no-build-isolation"], []):  # without isolation needs `wheel` or setuptools >= 70.1
        try:
            built = _run(base + extra, timeout=120)
        except subprocess.TimeoutExpired:
            continue
        wheels = list(out.glob("fastgram-*.whl"))
        if built.returncode == 0 and wheels:
            return wheels[0]
    pytest.skip(f"cannot build a wheel here: {built.stderr.strip().splitlines()[-1:]}")


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh venv holding only the wheel (``--no-deps``); numpy, numba, pytest and
    pytest-benchmark come from this interpreter's site-packages through a plain path entry, so
    the editable install of fastgram there is not seen."""
    env_dir = tmp_path_factory.mktemp("venv")
    made = _run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], timeout=60)
    if made.returncode != 0:
        pytest.skip(f"cannot create a venv: {made.stderr.strip()[-300:]}")
    python = env_dir / "bin" / "python"
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]).stdout.strip())
    (site / "_deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    done = _run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(wheel)], timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return env_dir


def test_wheel_ships_the_suites(wheel):
    import zipfile

    names = set(zipfile.ZipFile(wheel).namelist())
    suites = sorted(p.name for p in (ROOT / "benchmarks").glob("*.py"))
    assert suites and {f"fastgram/_benchmarks/{s}" for s in suites} <= names
    # every package of the source tree is in the wheel (pyproject lists them by name)
    packages = {
        p.parent.relative_to(ROOT).as_posix() for p in (ROOT / "fastgram").rglob("*.py") if "__pycache__" not in p.parts
    }
    assert {f"{p}/" for p in packages} <= {n.rsplit("/", 1)[0] + "/" for n in names}


def test_bench_from_installed_wheel_outside_the_clone(installed, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "FASTGRAM_BENCH_SCALE")}
    where = _run(
        [
            str(installed / "bin" / "python"),
            "-c",
            "import fastgram.app.bench as b; print(b.__file__, b.default_benchmark_dir())",
        ],
        cwd=tmp_path,
        env=env,
        timeout=60,
    )
    assert where.returncode == 0, where.stderr[-2000:]
    module, suites = where.stdout.split()
    assert str(installed) in module and str(installed) in suites and Path(suites).name == "_benchmarks"
    run = _run(
        [str(installed / "bin" / "fastgram"), "bench", "--smoke", "-k", "count_bigrams"],
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "count_bigrams uint8 V=256" in run.stdout and "reference (x slower)" in run.stdout
    assert "Numba threading layer " in run.stdout  # launches cost 5x more under workqueue


def test_missing_pytest_names_the_extra(monkeypatch):
    real = bench.importlib.util.find_spec
    monkeypatch.setattr(
        bench.importlib.util, "find_spec", lambda name, *a: None if name == "pytest" else real(name, *a)
    )
    with pytest.raises(ModuleNotFoundError, match=r"fastgram bench needs pytest: pip install 'fastgram\[dev\]'"):
        bench.run_benchmarks(smoke=True)


def test_missing_pytest_on_the_command_line(tmp_path):
    """The CLI prints the message (no traceback) when pytest cannot be imported."""
    blocker = tmp_path / "pytest.py"
    blocker.write_text("raise ImportError('blocked')\n")
    code = (
        "import sys, importlib.util; real = importlib.util.find_spec\n"
        "importlib.util.find_spec = lambda n, *a: None if n in ('pytest', 'pytest_benchmark') else real(n, *a)\n"
        "from fastgram.app.cli import main; sys.exit(main(['bench', '--smoke']))"
    )
    run = _run([sys.executable, "-c", code], cwd=tmp_path, timeout=120)
    assert run.returncode != 0
    assert "pip install 'fastgram[dev]'" in run.stderr + run.stdout and "Traceback" not in run.stderr


def test_default_dir_in_a_clone_is_the_top_level_benchmarks():
    assert bench.default_benchmark_dir() == ROOT / "benchmarks"


def test_results_files_are_checked_by_name(tmp_path):
    good = {"benchmarks": [{"name": "a", "group": "g", "stats": {"median": 2.0}, "extra_info": {"role": "kernel"}}]}
    (tmp_path / "good.json").write_text(json.dumps(good))
    assert bench.speedup_rows(bench.load_results(tmp_path / "good.json"))[0]["times"] == {"kernel": 2.0}
    for name, text, match in [
        ("list.json", "[]", "no 'benchmarks' list"),
        ("int.json", '{"benchmarks": 5}', "no 'benchmarks' list"),
        ("entry.json", '{"benchmarks": [{"name": "a"}]}', r"benchmarks\[0\] lacks a name, stats.median"),
        ("text.json", "not json", "not a JSON file"),
    ]:
        (tmp_path / name).write_text(text)
        with pytest.raises(ValueError, match=rf"{name}: .*{match}"):
            bench.load_results(tmp_path / name)


def test_machine_line_is_the_results_machine():
    data = {"machine_info": {"cpu": {"brand_raw": "Some CPU", "count": 64}, "python_version": "3.12.1",
                             "numba_threading_layer": "tbb", "versions": {"numpy": "9.9", "numba": "8.8"}}}  # fmt: skip
    assert (
        bench.machine_line(data) == "Some CPU, 64 cores, Python 3.12.1, numpy 9.9, numba 8.8, Numba threading layer tbb"
    )
    older = bench.machine_line({"machine_info": {"cpu": {"brand_raw": "Old CPU", "count": 8}}})
    assert older.startswith("Old CPU, 8 cores,") and "(installed here)" in older


def test_no_matching_benchmark_is_named():
    with pytest.raises(ValueError, match="no benchmark matches -k 'no_such_case_anywhere'"):
        bench.run_benchmarks(select="no_such_case_anywhere", smoke=True)
