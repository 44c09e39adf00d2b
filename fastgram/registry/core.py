"""The registry's entries and how results are compared (see :mod:`fastgram.registry`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

__all__ = ["Case", "KernelCheck", "REGISTRY", "register", "max_difference", "relative_difference"]


@dataclasses.dataclass(frozen=True)
class Case:
    """One input: ``fn(*args, **kwargs)`` for both the kernel and the reference."""

    label: str
    args: tuple = ()
    kwargs: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class KernelCheck:
    """A registry entry.

    Attributes
    ----------
    name : str
        The public function's name (``"count_bigrams"``).
    family : str
        ``"counting"``, ``"sampling"``, ``"attention"``...
    kernel, reference : callable
        The public function and its reference, called with the same arguments.
    cases : callable
        ``cases(rng) -> iterable of Case``: seeded random inputs plus edge cases.
    compare : callable
        ``compare(got, want) -> float``: 0.0 when identical; defaults to
        :func:`max_difference`.
    tolerance : float
        Largest accepted ``compare`` value (0.0: exact).
    peers : dict of str to callable
        Outside implementations of the same job (``np.bincount``, torch...) for the benchmarks,
        called with the same arguments; a peer whose library is missing is left out.
    """

    name: str
    family: str
    kernel: Callable
    reference: Callable
    cases: Callable[[np.random.Generator], Iterable[Case]]
    compare: Callable[[Any, Any], float] | None = None
    tolerance: float = 0.0
    peers: dict[str, Callable] = dataclasses.field(default_factory=dict)


REGISTRY: dict[str, KernelCheck] = {}


def register(entry: KernelCheck) -> KernelCheck:
    """Add ``entry`` to :data:`REGISTRY` (names are unique)."""
    if entry.name in REGISTRY:
        raise ValueError(f"kernel {entry.name!r} is already registered")
    REGISTRY[entry.name] = entry
    return entry


def max_difference(got, want) -> float:
    """Largest absolute difference between two results; ``inf`` if their structure differs.

    Arrays must match in shape (and, for integers, exactly); tuples, lists and dicts are
    compared element by element; other objects must compare equal.
    """
    if isinstance(want, (tuple, list)):
        if not isinstance(got, (tuple, list)) or len(got) != len(want):
            return float("inf")
        return max((max_difference(g, w) for g, w in zip(got, want)), default=0.0)
    if isinstance(want, dict):
        if not isinstance(got, dict) or got.keys() != want.keys():
            return float("inf")
        return max((max_difference(got[k], want[k]) for k in want), default=0.0)
    if isinstance(want, (np.ndarray, np.generic)) or isinstance(got, (np.ndarray, np.generic)):
        got, want = np.asarray(got), np.asarray(want)
        if got.shape != want.shape:
            return float("inf")
        if got.size == 0:
            return 0.0
        if got.dtype.kind in "iub" and want.dtype.kind in "iub":
            return float(np.max(got.astype(np.float64) != want.astype(np.float64)))
        g = got.astype(np.float64)
        w = want.astype(np.float64)
        same = (g == w) | (np.isnan(g) & np.isnan(w))
        with np.errstate(invalid="ignore"):  # inf - inf where both are -inf is already "same"
            diff = np.where(same, 0.0, np.abs(g - w))
        return float(np.nan_to_num(diff, nan=np.inf).max())
    return 0.0 if got == want else float("inf")


def relative_difference(got, want) -> float:
    """Largest absolute difference divided by the largest finite ``|want|`` (tuples: the worst).

    Infinities and NaNs must sit at the same places (:func:`max_difference` gives ``inf``
    otherwise).
    """
    if isinstance(want, tuple):
        if not isinstance(got, tuple) or len(got) != len(want):
            return float("inf")
        return max((relative_difference(g, w) for g, w in zip(got, want)), default=0.0)
    want = np.asarray(want)
    finite = np.abs(want[np.isfinite(want)])
    scale = float(finite.max()) if finite.size else 1.0
    return max_difference(got, want) / max(scale, np.finfo(np.float64).tiny)
