"""Running the registry: kernel and reference on every case, the table, ``fastgram.check``."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import numpy as np

from fastgram.registry.core import REGISTRY, KernelCheck, max_difference

__all__ = ["CheckResult", "run_checks", "format_table", "check"]


@dataclasses.dataclass
class CheckResult:
    """The outcome of one registry entry over all its cases."""

    name: str
    family: str
    cases: int
    max_difference: float
    tolerance: float
    failures: list[str]

    @property
    def ok(self) -> bool:
        return not self.failures


def run_checks(names: Iterable[str] | None = None, seed: int = 0) -> list[CheckResult]:
    """Run kernel and reference on every case of the selected entries.

    Parameters
    ----------
    names : iterable of str, optional
        Registry names or family names to run; all when omitted.
    seed : int
        Seed of the random inputs (each entry gets its own generator from it).

    Returns
    -------
    list of CheckResult
    """
    selected = _select(names)
    results = []
    for index, entry in enumerate(selected):
        rng = np.random.default_rng([seed, index])
        compare = entry.compare or max_difference
        worst, count, failures = 0.0, 0, []
        for case in entry.cases(rng):
            count += 1
            try:
                want = entry.reference(*case.args, **case.kwargs)
                got = entry.kernel(*case.args, **case.kwargs)
                diff = float(compare(got, want))
            except Exception as exc:  # a crash is reported as a failed case, not raised
                failures.append(f"{case.label}: {type(exc).__name__}: {exc}")
                continue
            worst = max(worst, diff)
            if not diff <= entry.tolerance:
                failures.append(f"{case.label}: difference {diff:.3g} > {entry.tolerance:.3g}")
        results.append(CheckResult(entry.name, entry.family, count, worst, entry.tolerance, failures))
    return results


def _select(names: Iterable[str] | None) -> list[KernelCheck]:
    if names is None:
        return list(REGISTRY.values())
    wanted = list(names)
    known = set(REGISTRY) | {e.family for e in REGISTRY.values()}
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise ValueError(f"names: unknown kernel or family {unknown}; known: {sorted(known)}")
    return [e for e in REGISTRY.values() if e.name in wanted or e.family in wanted]


def format_table(results: list[CheckResult]) -> str:
    """The check report as a plain-text table."""
    rows = [("kernel", "family", "cases", "max diff", "tolerance", "ok")]
    for r in results:
        rows.append(
            (r.name, r.family, str(r.cases), f"{r.max_difference:.3g}", f"{r.tolerance:.3g}", "ok" if r.ok else "FAIL")
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for r in results:
        for failure in r.failures:
            lines.append(f"FAIL {r.name}: {failure}")
    return "\n".join(lines)


def check(names: Iterable[str] | None = None, seed: int = 0, verbose: bool = True) -> bool:
    """Check every registered kernel against its reference; print the table.

    Returns ``True`` when every case of every selected kernel agrees within its tolerance.

    Examples
    --------
    >>> import fastgram
    >>> fastgram.check(["count_bigrams"], verbose=False)
    True
    """
    results = run_checks(names, seed=seed)
    if verbose:
        print(format_table(results))
    return all(r.ok for r in results)
