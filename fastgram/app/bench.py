"""Run the benchmark suites and turn pytest-benchmark's JSON into a speed-up table.

The suites live in ``benchmarks/`` at the top of the repository and are installed with the
package as ``fastgram._benchmarks`` (:func:`default_benchmark_dir` finds either). Running them
needs pytest and pytest-benchmark: ``pip install 'fastgram[dev]'``.

Each benchmark records its role in ``extra_info["role"]``: ``"kernel"`` (fastgram),
``"reference"`` (the NumPy reference) or an outside peer's name; benchmarks that share a
``group`` ran on the same data. The table gives, per group, the kernel's median time and how
many times slower each other role was (``> 1``: fastgram is faster).
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

from fastgram._io import atomic_output

__all__ = ["default_benchmark_dir", "check_runner", "run_benchmarks", "speedup_rows", "format_speedups", "save_chart"]


#: What to install when the runner is missing.
DEV_EXTRA = "pip install 'fastgram[dev]'"


def default_benchmark_dir() -> Path:
    """The suites: ``fastgram/_benchmarks`` of an installed wheel, else ``benchmarks/`` of the
    clone this package runs from (editable install, or a checkout on ``sys.path``)."""
    spec = importlib.util.find_spec("fastgram._benchmarks")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            if (Path(location) / "conftest.py").is_file():
                return Path(location)
    return Path(__file__).resolve().parent.parent.parent / "benchmarks"


def check_runner() -> None:
    """Raise ModuleNotFoundError naming the extra when pytest or pytest-benchmark is missing."""
    missing = [name for name in ("pytest", "pytest_benchmark") if importlib.util.find_spec(name) is None]
    if missing:
        names = " and ".join(n.replace("_", "-") for n in missing)
        raise ModuleNotFoundError(f"fastgram bench needs {names}: {DEV_EXTRA}")


def run_benchmarks(
    bench_dir: str | os.PathLike | None = None,
    *,
    select: str | None = None,
    json_path: str | os.PathLike | None = None,
    smoke: bool = False,
    extra_args: list[str] | None = None,
) -> dict:
    """Run ``pytest --benchmark-only`` over the suites and return the parsed JSON.

    Parameters
    ----------
    bench_dir : path, optional
        Folder of the suites; default :func:`default_benchmark_dir`.
    select : str, optional
        A pytest ``-k`` expression (e.g. ``"counting"``).
    json_path : path, optional
        Also keep pytest-benchmark's JSON here.
    smoke : bool
        Tiny sizes (``FASTGRAM_BENCH_SCALE=smoke``): checks the suites run, measures nothing
        meaningful.
    extra_args : list of str, optional
        More pytest arguments.
    """
    check_runner()
    bench_dir = Path(bench_dir) if bench_dir is not None else default_benchmark_dir()
    if not bench_dir.is_dir():
        raise FileNotFoundError(
            f"benchmark suites not found at {bench_dir}: reinstall fastgram ({DEV_EXTRA}) or pass --dir"
        )
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(json_path) if json_path is not None else Path(tmp) / "bench.json"
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            str(bench_dir),
            "--benchmark-only",
            f"--benchmark-json={out}",
            "-q",
            "-p",
            "no:cacheprovider",
        ]
        if select:
            cmd += ["-k", select]
        cmd += list(extra_args or [])
        env = dict(os.environ)
        if smoke:
            env["FASTGRAM_BENCH_SCALE"] = "smoke"
        # pytest's own report goes to stderr: stdout carries only the table the caller prints
        status = subprocess.run(cmd, env=env, cwd=bench_dir.parent, stdout=_stderr_fd()).returncode
        if status == 5:  # pytest: nothing collected
            raise ValueError(f"no benchmark matches -k {select!r}" if select else f"no benchmarks in {bench_dir}")
        if status != 0 or not out.exists():
            raise RuntimeError(f"the benchmark run failed (pytest exit status {status})")
        return json.loads(out.read_text())


def load_results(path) -> dict:
    """A pytest-benchmark JSON file (``--json``'s), checked for what :func:`speedup_rows` reads:
    ``ValueError`` naming the file when it is not JSON or not of that shape."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a JSON file ({exc})") from None
    benchmarks = data.get("benchmarks") if isinstance(data, dict) else None
    if not isinstance(benchmarks, list):
        raise ValueError(f"{path}: not pytest-benchmark results (no 'benchmarks' list)")
    for i, b in enumerate(benchmarks):
        ok = isinstance(b, dict) and isinstance(b.get("name"), str) and isinstance(b.get("stats"), dict)
        median = b.get("stats", {}).get("median") if ok else None
        if not ok or not isinstance(median, (int, float)) or not isinstance(b.get("extra_info", {}), dict):
            raise ValueError(f"{path}: benchmarks[{i}] lacks a name, stats.median or a dict of extra_info")
    return data


def _stderr_fd():
    """This process's stderr as a file descriptor for a child's stdout (None when it has none)."""
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return None


def speedup_rows(data: dict) -> list[dict]:
    """One row per benchmark group: ``{"group", "kernel", <role>: time..., "ratios": {...}}``.

    Times are medians in seconds; ``ratios[role]`` is ``time(role) / time(kernel)``.
    """
    groups: dict[str, dict[str, float]] = {}
    for bench in data.get("benchmarks", []):
        role = bench.get("extra_info", {}).get("role")
        if role is None:
            continue
        groups.setdefault(bench.get("group") or bench["name"], {})[role] = bench["stats"]["median"]
    rows = []
    for group, times in groups.items():
        kernel = times.get("kernel")
        ratios = {r: t / kernel for r, t in times.items() if r != "kernel" and kernel}
        rows.append({"group": group, "times": times, "ratios": ratios})
    return rows


def _fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds * 1e9:.3g} ns"


def machine_line(data: dict) -> str:
    """Machine and versions the results came from, for the README."""
    info = data.get("machine_info", {})
    cpu = info.get("cpu", {}).get("brand_raw") or platform.processor() or "unknown CPU"
    cores = info.get("cpu", {}).get("count") or os.cpu_count()
    recorded = info.get("versions")  # the run's own versions (results since they were recorded)
    if isinstance(recorded, dict):
        versions = [f"{name} {v}" for name, v in recorded.items()]
    else:  # an older results file: this environment's, said so
        versions = []
        for name in ("numpy", "numba", "torch"):
            try:
                module = __import__(name)
                versions.append(f"{name} {module.__version__} (installed here)")
            except ImportError:
                pass
    py = info.get("python_version") or platform.python_version()
    layer = info.get("numba_threading_layer")
    threads = f", Numba threading layer {layer}" if layer else ""
    return f"{cpu}, {cores} cores, Python {py}, " + ", ".join(versions) + threads


def format_speedups(rows: list[dict], markdown: bool = False) -> str:
    """The speed-up table: group, kernel time, then each other role's time and ratio."""
    roles = []
    for row in rows:
        for role in row["times"]:
            if role != "kernel" and role not in roles:
                roles.append(role)
    header = ["case", "fastgram"] + [f"{r} (x slower)" for r in roles]
    table = [header]
    for row in rows:
        cells = [row["group"], _fmt_time(row["times"].get("kernel"))]
        for role in roles:
            t = row["times"].get(role)
            ratio = row["ratios"].get(role)
            cells.append("-" if t is None else f"{_fmt_time(t)} ({ratio:.1f}x)" if ratio else _fmt_time(t))
        table.append(cells)
    if markdown:
        lines = ["| " + " | ".join(r) + " |" for r in table]
        lines.insert(1, "|" + "|".join("---" for _ in header) + "|")
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def save_chart(rows: list[dict], path: str | os.PathLike) -> None:
    """A horizontal bar chart of the speed-up over the reference (log scale), as PNG.

    Needs matplotlib (``pip install 'fastgram[plot]'``).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ModuleNotFoundError:
        raise ModuleNotFoundError("charts need matplotlib: pip install 'fastgram[plot]'") from None

    rows = [r for r in rows if r["ratios"]]
    roles = sorted({role for r in rows for role in r["ratios"]})
    fig, ax = plt.subplots(figsize=(9, 0.45 * max(1, len(rows)) * max(1, len(roles)) + 1.5))
    height = 0.8 / max(1, len(roles))
    for j, role in enumerate(roles):
        ys = [i + j * height for i in range(len(rows))]
        ax.barh(ys, [r["ratios"].get(role, 0) for r in rows], height=height, label=f"vs {role}")
    ax.set_yticks([i + 0.4 - height / 2 for i in range(len(rows))])
    ax.set_yticklabels([r["group"] for r in rows], fontsize=8)
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("speed-up of fastgram (time of other / time of fastgram)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
