"""Kernels against their references: the registry, the comparison and the report.

One registry (:data:`REGISTRY`) maps each public, Numba-backed function to its plain-NumPy
reference in :mod:`fastgram.reference` and to a generator of seeded inputs and edge cases. It
feeds three users:

- ``fastgram.check()`` / ``fastgram check``: run every case through both, print a table,
  fail on any mismatch;
- ``tests/test_check.py``: the same cases as parametrised tests;
- ``benchmarks/``: the same pairing of kernel and reference (plus outside peers).

Each kernel family registers its entries in its own section at the bottom of this module.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

__all__ = ["Case", "KernelCheck", "REGISTRY", "register", "run_checks", "check", "max_difference"]


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
    """

    name: str
    family: str
    kernel: Callable
    reference: Callable
    cases: Callable[[np.random.Generator], Iterable[Case]]
    compare: Callable[[Any, Any], float] | None = None
    tolerance: float = 0.0


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
        diff = np.where(same, 0.0, np.abs(g - w))
        return float(np.nan_to_num(diff, nan=np.inf).max())
    return 0.0 if got == want else float("inf")


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
    _load_all()
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


def _load_all() -> None:
    """Import the family sections below (kept lazy so ``import fastgram`` stays cheap)."""
    if not REGISTRY:
        for loader in _FAMILIES:
            loader()


_FAMILIES: list[Callable[[], None]] = []


def family(fn: Callable[[], None]) -> Callable[[], None]:
    """Mark ``fn`` as the function that registers one family's entries."""
    _FAMILIES.append(fn)
    return fn


# ---------------------------------------------------------------------------------------------
# counting
# ---------------------------------------------------------------------------------------------


@family
def _register_counting() -> None:
    from fastgram import counting, reference

    def bigram_cases(rng: np.random.Generator):
        yield Case("empty", (np.zeros(0, np.uint8),), {"vocab_size": 5})
        yield Case("one token", (np.array([3], np.uint16),), {"vocab_size": 4})
        yield Case("V = 1", (np.zeros(50, np.int32),))
        yield Case("largest id", (np.array([255, 0, 255, 255], np.uint8),), {"vocab_size": 256})
        for dtype in (np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int64):
            hi = min(200, np.iinfo(dtype).max)
            yield Case(f"random {np.dtype(dtype).name}", (rng.integers(0, hi, 5_000).astype(dtype),))
        swapped = rng.integers(0, 1000, 3_000).astype(">u2")
        yield Case("byte-swapped uint16", (swapped,), {"vocab_size": 1000})
        yield Case("strided view", (rng.integers(0, 50, 4_001).astype(np.int32)[::3],))
        yield Case(
            "large V (partitioned path)", (rng.integers(0, 2048, 20_000).astype(np.uint16),), {"vocab_size": 2048}
        )
        zipf = np.minimum(rng.zipf(1.2, 20_000) - 1, 999).astype(np.uint16)
        yield Case("zipf V = 1000", (zipf,), {"vocab_size": 1000})

    register(KernelCheck("count_bigrams", "counting", counting.count_bigrams, reference.count_bigrams, bigram_cases))


# ---------------------------------------------------------------------------------------------
# n-grams (issue 3) register below
# ---------------------------------------------------------------------------------------------


@family
def _register_ngrams() -> None:
    from fastgram import ngrams, reference

    def compare(got, want):
        return max_difference((got.ngrams, got.counts), want)

    def ngram_cases(rng: np.random.Generator):
        for n in (1, 2, 3, 8):
            yield Case(f"n={n} empty", (np.zeros(0, np.uint8), n), {"vocab_size": 4})
            yield Case(f"n={n} length n-1", (np.arange(n - 1, dtype=np.uint8), n), {"vocab_size": 8})
            yield Case(f"n={n} length n", (np.arange(n, dtype=np.uint8), n), {"vocab_size": 8})
        yield Case("V = 1", (np.zeros(50, np.int32), 3))
        yield Case("largest id", (np.array([255, 0, 255, 255, 255], np.uint8), 2), {"vocab_size": 256})
        for n, dtype, V in ((2, np.uint8, 256), (2, np.int16, 3000), (3, np.uint32, 500), (4, np.int64, 40)):
            yield Case(
                f"n={n} random {np.dtype(dtype).name}", (rng.integers(0, V, 20_000).astype(dtype), n), {"vocab_size": V}
            )
        yield Case("byte-swapped uint16, n=2", (rng.integers(0, 5000, 5_000).astype(">u2"), 2), {"vocab_size": 5000})
        yield Case("strided view, n=3", (rng.integers(0, 30, 6_001).astype(np.int32)[::3], 3))
        zipf = np.minimum(rng.zipf(1.2, 30_000) - 1, 65535).astype(np.uint16)
        yield Case("zipf V = 65536, n=2", (zipf, 2), {"vocab_size": 65536})
        yield Case("n=8, V = 256 (64-bit keys)", (rng.integers(0, 256, 3_000).astype(np.uint8), 8), {"vocab_size": 256})
        sep = rng.integers(0, 20, 5_000).astype(np.uint8)
        yield Case("separator, n=3", (sep, 3), {"vocab_size": 20, "separator": 0})
        yield Case("min_count=3, n=2", (rng.integers(0, 30, 5_000).astype(np.uint16), 2), {"min_count": 3})
        yield Case(
            "spill, max_memory=64K",
            (rng.integers(0, 400, 40_000).astype(np.uint16), 3),
            {"vocab_size": 400, "max_memory": 1 << 16},
        )

    register(
        KernelCheck(
            "count_ngrams", "counting", ngrams.count_ngrams, reference.count_ngrams, ngram_cases, compare=compare
        )
    )


# ---------------------------------------------------------------------------------------------
# sampling (issue 4) register below
# ---------------------------------------------------------------------------------------------


@family
def _register_sampling() -> None:
    from fastgram import reference, sampling

    def table_cases(rng: np.random.Generator):
        counts = rng.integers(0, 6, (40, 40))
        counts[rng.random((40, 40)) < 0.4] = 0
        counts[:, 7] += 1  # no empty row
        probs = rng.random((40, 40)) * (rng.random((40, 40)) < 0.5)
        probs[:, 3] += 0.01
        yield counts, probs

    def next_cases(rng: np.random.Generator):
        counts, probs = next(table_cases(rng))
        current = rng.integers(0, 40, 3_000)
        yield Case("counts, random rows", (counts, current, 1))
        yield Case("float64 weights", (probs, current, 2))
        yield Case("float32 weights, 2-D current", (probs.astype(np.float32), current[:600].reshape(20, 30), 3))
        yield Case("offset", (counts, current[:100], 4), {"offset": 1_000})
        yield Case("empty current", (counts, np.zeros(0, np.int64), 5))
        yield Case("V = 1", (np.array([[5]]), np.zeros(7, np.int64), 6))
        yield Case("largest seed", (counts, current[:50], 2**64 - 1))
        yield Case("byte-swapped uint16 current", (counts, current[:500].astype(">u2"), 7))

    def generate_cases(rng: np.random.Generator):
        counts, probs = next(table_cases(rng))
        start = rng.integers(0, 40, 64)
        yield Case("counts", (counts, start, 50, 1))
        yield Case("float weights", (probs, start, 50, 2))
        yield Case("temperature 0.5", (counts, start, 30, 3), {"temperature": 0.5})
        yield Case("greedy", (probs, start, 30, 4), {"temperature": 0.0})
        yield Case("stop token", (counts, start, 60, 5), {"stop_token": 7})
        yield Case("scalar start, offset", (counts, 3, 40, 6), {"offset": 9})
        yield Case("length 0", (counts, start, 0, 7))

    def logits_cases(rng: np.random.Generator):
        logits = rng.standard_normal((6, 300)) * 2
        logits[0, :5] = -np.inf
        ties = np.repeat(rng.standard_normal((4, 25)), 4, axis=1)
        yield Case("float64", (logits,), {"seed": 1})
        yield Case("float32, 100 draws (guide)", (logits.astype(np.float32),), {"seed": 2, "num_samples": 100})
        yield Case(
            "temperature 0.7, top-k 20", (logits,), {"temperature": 0.7, "top_k": 20, "seed": 3, "num_samples": 40}
        )
        yield Case("top-p 0.8", (logits,), {"top_p": 0.8, "seed": 4, "num_samples": 40})
        yield Case("min-p 0.05", (logits,), {"min_p": 0.05, "seed": 5, "num_samples": 40})
        yield Case("all filters, ties", (ties,), {"top_k": 9, "top_p": 0.5, "min_p": 0.2, "seed": 6, "num_samples": 50})
        yield Case("greedy", (logits,), {"temperature": 0.0, "seed": 7})
        yield Case("3-D logits", (logits.reshape(2, 3, 300),), {"seed": 8, "offset": 5})

    def multinomial_cases(rng: np.random.Generator):
        probs = rng.random((5, 60)) * (rng.random((5, 60)) < 0.5)
        probs[:, 0] += 0.1
        yield Case("with replacement", (probs, 200), {"seed": 1})
        yield Case("1-D float32", (probs[0].astype(np.float32), 10), {"seed": 2})
        yield Case("without replacement", (probs, 10), {"replacement": False, "seed": 3})
        yield Case(
            "without replacement, every category",
            (probs[1:2], int(np.count_nonzero(probs[1]))),
            {"replacement": False, "seed": 4},
        )

    def nll_cases(rng: np.random.Generator):
        counts, probs = next(table_cases(rng))
        tokens = rng.integers(0, 40, 50_000).astype(np.uint8)
        yield Case("smoothed probabilities", (sampling.bigram_probs(counts), tokens))
        yield Case("integer counts + 1", (counts + 1, tokens.astype(np.int32)))
        yield Case("strided uint16 stream", (sampling.bigram_probs(counts, 0.5), tokens.astype(np.uint16)[::3]))
        yield Case("two tokens", (sampling.bigram_probs(counts), tokens[:2]))

    def uniform_cases(rng: np.random.Generator):
        yield Case("one stream", (0, 1_000))
        yield Case("(B, n), offset", (123, (17, 33)), {"offset": 2**40})
        yield Case("largest seed", (2**64 - 1, (3, 5)))
        yield Case("empty", (5, (0, 4)))

    def close(got, want) -> float:
        return abs(got - want) / max(1.0, abs(want))

    for name, cases in [
        ("sample_next", next_cases),
        ("generate", generate_cases),
        ("sample_logits", logits_cases),
        ("multinomial", multinomial_cases),
        ("uniform", uniform_cases),
    ]:
        register(KernelCheck(name, "sampling", getattr(sampling, name), getattr(reference, name), cases))
    register(KernelCheck("nll", "sampling", sampling.nll, reference.nll, nll_cases, compare=close, tolerance=1e-12))


# ---------------------------------------------------------------------------------------------
# attention (issue 5) register below
# ---------------------------------------------------------------------------------------------


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


@family
def _register_attention() -> None:
    from fastgram import reference
    from fastgram.attention import attention

    def attention_cases(rng: np.random.Generator):
        def qkv(lead, H, H_kv, T, S, D, Dv=None, dtype=np.float32):
            Dv = D if Dv is None else Dv
            return (
                rng.standard_normal((*lead, H, T, D)).astype(dtype),
                rng.standard_normal((*lead, H_kv, S, D)).astype(dtype),
                rng.standard_normal((*lead, H_kv, S, Dv)).astype(dtype),
            )

        for dtype in (np.float32, np.float64):
            name = np.dtype(dtype).name
            yield Case(f"{name} (2, 4, 33, 33, 16)", qkv((2,), 4, 4, 33, 33, 16, dtype=dtype))
            yield Case(f"{name} causal T=130", qkv((1,), 2, 2, 130, 130, 64, dtype=dtype), {"causal": True})
        yield Case("T = 1, S = 1, D = 1", qkv((3,), 2, 2, 1, 1, 1))
        yield Case("2-D (T, D) inputs, T != S", tuple(x[0] for x in qkv((), 1, 1, 7, 70, 5)))
        yield Case("grouped-query H=8, H_kv=2", qkv((2,), 8, 2, 40, 50, 32, 24))
        yield Case(
            "causal bottom-right, T < S", qkv((2,), 2, 2, 20, 90, 16), {"causal": True, "causal_align": "bottom_right"}
        )
        yield Case(
            "causal bottom-right, T > S (masked rows)",
            qkv((1,), 2, 2, 50, 20, 8),
            {"causal": True, "causal_align": "bottom_right"},
        )
        lengths = np.array([5, 77, 128])
        padding = (np.arange(128) < lengths[:, None])[:, None, None, :]
        yield Case("bool padding mask (B, 1, 1, S)", qkv((3,), 4, 4, 64, 128, 32), {"mask": padding})
        additive = np.where(rng.random((1, 30, 45)) < 0.3, -np.inf, rng.standard_normal((1, 30, 45))).astype(np.float32)
        yield Case("additive mask + causal", qkv((2,), 3, 3, 30, 45, 8), {"mask": additive, "causal": True})
        q, k, v = qkv((2,), 2, 2, 16, 16, 8)
        k[..., -3:, :] = np.nan  # keys nobody may see under the causal mask of the first rows
        v[..., -3:, :] = np.inf
        yield Case("NaN/inf in masked keys and values", (q, k, v), {"mask": np.arange(16) < 13})
        yield Case("return_lse", qkv((2,), 4, 2, 25, 31, 16, dtype=np.float64), {"causal": True, "return_lse": True})

    register(
        KernelCheck(
            "attention",
            "attention",
            attention,
            reference.attention,
            attention_cases,
            compare=relative_difference,
            tolerance=1e-5,
        )
    )
