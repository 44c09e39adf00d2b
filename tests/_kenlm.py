"""The KenLM helpers now live in ``benchmarks/_kenlm.py`` (shipped with the package, so the LM
benchmarks find them from any install); this stub keeps ``import _kenlm`` working in the tests
by loading that file and standing in for it in ``sys.modules``."""

import importlib.util
import sys
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    __name__, Path(__file__).resolve().parents[1] / "benchmarks" / "_kenlm.py"
)
_module = importlib.util.module_from_spec(_spec)
sys.modules[__name__] = _module
_spec.loader.exec_module(_module)
