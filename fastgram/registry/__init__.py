"""Kernels against their references: one registry for ``fastgram check``, the tests and the
benchmarks.

The registry (:data:`REGISTRY`) maps each public, Numba-backed function to its plain-NumPy
reference in :mod:`fastgram.reference`, to a generator of seeded inputs and edge cases, and to
any outside peers. It feeds three users:

- ``fastgram.check()`` / ``fastgram check``: every case through both, a table, a failure on any
  mismatch (:mod:`~fastgram.registry.report`);
- ``tests/test_registry.py``: the same cases as parametrised tests;
- ``benchmarks/``: the same pairing of kernel, reference and peers.

Each kernel family registers its entries in its own module, ``cases_<family>.py``.
"""

from fastgram.registry import cases_attention, cases_counting, cases_lm, cases_sampling  # noqa: F401  (they register)
from fastgram.registry.core import REGISTRY, Case, KernelCheck, max_difference, register, relative_difference
from fastgram.registry.report import CheckResult, check, format_table, run_checks

__all__ = [
    "REGISTRY",
    "Case",
    "KernelCheck",
    "register",
    "max_difference",
    "relative_difference",
    "CheckResult",
    "run_checks",
    "format_table",
    "check",
]
