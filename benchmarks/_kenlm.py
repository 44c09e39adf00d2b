"""KenLM as an outside peer: find ``lmplz`` / ``query`` / ``build_binary`` and the ``kenlm``
Python module, run them, read their ARPA files; skip cleanly where they are absent.

It lives beside the benchmark suites, so it ships with them (``fastgram._benchmarks``) and the LM
benchmarks use it from any install (``import _kenlm``: pytest puts ``benchmarks/`` on
``sys.path``); the tests import it too, through the stub ``tests/_kenlm.py``.

Where the binaries are looked for, first hit wins:

1. ``FASTGRAM_LMPLZ`` / ``FASTGRAM_QUERY`` / ``FASTGRAM_BUILD_BINARY``: the full path of one program;
2. ``FASTGRAM_KENLM_BIN``: a directory holding them;
3. ``PATH``;
4. ``/opt/kenlm/bin``, where the development machines build them from the ``kenlm`` sdist::

       apt-get install cmake zlib1g-dev libboost-program-options-dev libboost-system-dev
       apt-get install libboost-thread-dev libboost-test-dev
       pip download --no-binary kenlm --no-deps --no-build-isolation kenlm  # the sdist only
       tar xzf kenlm-*.tar.gz && cmake -S kenlm-0.3.0 -B build -DCMAKE_BUILD_TYPE=Release
       make -C build -j2 lmplz query build_binary && mkdir -p /opt/kenlm/bin && cp build/bin/* /opt/kenlm/bin/

   (``--no-binary :all:`` would build pip's own cmake from source as well: many minutes.)

Nothing here imports ``kenlm`` or runs a program at import time.
"""

from __future__ import annotations

import importlib.util
import math
import os
import shutil
import subprocess
from pathlib import Path

import pytest

__all__ = [
    "DEFAULT_BIN",
    "lmplz_path",
    "query_path",
    "build_binary_path",
    "have_kenlm_module",
    "requires_lmplz",
    "requires_query",
    "requires_kenlm",
    "lmplz_argv",
    "run_lmplz",
    "run_query",
    "kenlm_model",
    "read_arpa",
    "arpa_differences",
]

#: Where the development machines install the KenLM binaries.
DEFAULT_BIN = "/opt/kenlm/bin"

_ENV = {"lmplz": "FASTGRAM_LMPLZ", "query": "FASTGRAM_QUERY", "build_binary": "FASTGRAM_BUILD_BINARY"}


def _executable(path) -> str | None:
    return str(path) if path and os.path.isfile(path) and os.access(path, os.X_OK) else None


def _find(program: str) -> str | None:
    """The path of a KenLM program, or ``None`` (search order: module docstring)."""
    own = os.environ.get(_ENV[program])
    if own:
        return _executable(own)  # set but wrong: absent, not silently another binary
    directory = os.environ.get("FASTGRAM_KENLM_BIN")
    if directory:
        return _executable(os.path.join(directory, program))
    return shutil.which(program) or _executable(os.path.join(DEFAULT_BIN, program))


def lmplz_path() -> str | None:
    """The path of ``lmplz``, or ``None`` when it is not installed."""
    return _find("lmplz")


def query_path() -> str | None:
    """The path of KenLM's ``query``, or ``None`` when it is not installed."""
    return _find("query")


def build_binary_path() -> str | None:
    """The path of KenLM's ``build_binary``, or ``None`` when it is not installed."""
    return _find("build_binary")


def have_kenlm_module() -> bool:
    """Whether ``import kenlm`` would find the module (without importing it)."""
    return importlib.util.find_spec("kenlm") is not None


_HOW = "build it from the kenlm sdist (see tests/_kenlm.py) or set FASTGRAM_KENLM_BIN"

#: Test markers: skip with a reason that says what is missing and how to get it.
requires_lmplz = pytest.mark.skipif(lmplz_path() is None, reason=f"KenLM's lmplz not found; {_HOW}")
requires_query = pytest.mark.skipif(query_path() is None, reason=f"KenLM's query not found; {_HOW}")
requires_kenlm = pytest.mark.skipif(
    not have_kenlm_module(), reason="the kenlm module is not installed (pip install kenlm)"
)


def _require(program: str) -> str:
    path = _find(program)
    if path is None:
        pytest.skip(f"KenLM's {program} not found; {_HOW}")
    return path


# ---------------------------------------------------------------------------------------------
# running the programs
# ---------------------------------------------------------------------------------------------


def lmplz_argv(
    order: int,
    prune=None,
    discount_fallback: bool = False,
    memory: str = "1G",
    temp_dir=None,
    extra=(),
) -> list[str]:
    """The ``lmplz`` command line (text on stdin, ARPA on stdout), for callers that time it.

    ``memory`` is lmplz's ``-S`` (its default, 80% of RAM, is unfriendly to a shared machine);
    ``temp_dir`` its ``-T`` prefix; ``prune`` a sequence of per-order thresholds (``--prune``).
    """
    argv = [_require("lmplz"), "-o", str(int(order)), "-S", str(memory)]
    if temp_dir is not None:
        argv += ["-T", os.path.join(os.fspath(temp_dir), "lmplz")]
    if prune is not None:
        argv += ["--prune", *(str(int(p)) for p in prune)]
    if discount_fallback:
        argv.append("--discount_fallback")
    argv += list(extra)
    return argv


def run_lmplz(
    text_path,
    order: int,
    prune=None,
    discount_fallback: bool = False,
    *,
    out=None,
    memory: str = "1G",
    extra=(),
) -> Path:
    """Run ``lmplz -o order`` on the text file ``text_path`` and return the ARPA file's path.

    ``out`` defaults to ``<text_path>.<order>.arpa``. Skips the test when lmplz is absent;
    raises ``RuntimeError`` with lmplz's stderr when it fails (e.g. the discount message that
    names ``--discount_fallback``).
    """
    text_path = Path(text_path)
    out = Path(out) if out is not None else text_path.with_name(f"{text_path.name}.{order}.arpa")
    argv = lmplz_argv(order, prune, discount_fallback, memory, temp_dir=out.parent, extra=extra)
    with open(text_path, "rb") as src, open(out, "wb") as dst:
        proc = subprocess.run(argv, stdin=src, stdout=dst, stderr=subprocess.PIPE)
    if proc.returncode:
        out.unlink(missing_ok=True)
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stderr.decode(errors='replace')}")
    return out


def query_stdout(model_path, text_path, *options: str) -> str:
    """What KenLM's ``query`` prints on stdout for ``text_path`` (``options``: e.g. ``"-v", "sentence"``)."""
    argv = [_require("query"), *options, str(model_path)]
    with open(text_path, "rb") as src:
        proc = subprocess.run(argv, stdin=src, capture_output=True)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stderr.decode(errors='replace')}")
    return proc.stdout.decode("utf-8", "surrogateescape")


def run_query(model_path, text_path) -> dict:
    """Score ``text_path`` with KenLM's ``query`` and parse what it prints.

    Returns ``{"sentences": [(total log10 prob, oovs), ...], "words": [[(word, log10 prob),
    ...] per sentence, </s> included], "perplexity": float, "perplexity_excluding_oovs": float,
    "oovs": int, "tokens": int}``. ``query`` scores each line that ends in a newline (a last
    line without one is not in the totals).
    """
    result = {"sentences": [], "words": []}
    keys = {
        "Perplexity including OOVs": ("perplexity", float),
        "Perplexity excluding OOVs": ("perplexity_excluding_oovs", float),
        "OOVs": ("oovs", int),
        "Tokens": ("tokens", int),
    }
    for line in query_stdout(model_path, text_path).splitlines():
        head, sep, value = line.partition(":\t")
        if sep and head in keys:
            name, kind = keys[head]
            result[name] = kind(value)
            continue
        fields = line.split("\t")
        if not fields[-1].startswith("Total: "):
            continue
        total = fields[-1].split()
        result["sentences"].append((float(total[1]), int(total[3])))
        words = []
        for item in fields[:-1]:  # "word=id order log10prob"; a word may hold '='
            word, _, rest = item.rpartition("=")
            words.append((word, float(rest.split(" ")[2])))
        result["words"].append(words)
    return result


def kenlm_model(path):
    """``kenlm.Model(path)``, importing ``kenlm`` only now; skips the test when it is missing."""
    kenlm = pytest.importorskip("kenlm", reason="the kenlm module is not installed (pip install kenlm)")
    return kenlm.Model(os.fspath(path))


# ---------------------------------------------------------------------------------------------
# ARPA files, read independently of fastgram (a test must not check fastgram with itself)
# ---------------------------------------------------------------------------------------------


def read_arpa(path) -> dict:
    """``{order: {words tuple: (log10 prob, backoff)}}`` of an ARPA file (backoff 0.0 when absent).

    A deliberately plain reader: it checks the ``\\data\\`` counts against the sections and
    raises ``ValueError`` with the line number on anything malformed.
    """
    declared, grams, order = {}, {}, None
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.rstrip("\n")
            if not line.strip() or line == "\\data\\":
                continue
            if line == "\\end\\":
                break
            if line.startswith("ngram "):
                n, _, count = line[6:].partition("=")
                declared[int(n)] = int(count)
                continue
            if line.startswith("\\") and line.endswith("-grams:"):
                order = int(line[1 : line.index("-")])
                grams[order] = {}
                continue
            if order is None:
                raise ValueError(f"{path}:{lineno}: unexpected line {line!r}")
            fields = line.split("\t")
            if len(fields) not in (2, 3):
                raise ValueError(f"{path}:{lineno}: expected 'prob<TAB>words[<TAB>backoff]', got {line!r}")
            words = tuple(fields[1].split(" "))
            if len(words) != order:
                raise ValueError(f"{path}:{lineno}: {len(words)} words in the {order}-gram section")
            grams[order][words] = (float(fields[0]), float(fields[2]) if len(fields) == 3 else 0.0)
    for n, count in declared.items():
        if len(grams.get(n, ())) != count:
            raise ValueError(f"{path}: \\data\\ declares {count} {n}-grams, the section has {len(grams.get(n, ()))}")
    return grams


def arpa_differences(a, b, tol: float = 1e-4, limit: int = 20) -> list[str]:
    """What differs between two ARPA files (paths or :func:`read_arpa` results): n-grams in one
    only, and log10 probabilities or backoffs further apart than ``tol``. Empty when they agree."""
    a = read_arpa(a) if not isinstance(a, dict) else a
    b = read_arpa(b) if not isinstance(b, dict) else b
    out = []
    if sorted(a) != sorted(b):
        out.append(f"orders differ: {sorted(a)} vs {sorted(b)}")
    for n in sorted(set(a) & set(b)):
        only_a, only_b = a[n].keys() - b[n].keys(), b[n].keys() - a[n].keys()
        out += [f"{n}-gram {' '.join(g)!r} only in the first" for g in sorted(only_a)[:limit]]
        out += [f"{n}-gram {' '.join(g)!r} only in the second" for g in sorted(only_b)[:limit]]
        for g in sorted(a[n].keys() & b[n].keys()):
            (pa, ba), (pb, bb) = a[n][g], b[n][g]
            if not (math.isclose(pa, pb, rel_tol=0, abs_tol=tol) and math.isclose(ba, bb, rel_tol=0, abs_tol=tol)):
                out.append(f"{n}-gram {' '.join(g)!r}: ({pa}, {ba}) vs ({pb}, {bb})")
            if len(out) >= limit:
                return out
    return out
