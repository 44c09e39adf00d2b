"""Every example in the README runs as written, top to bottom, in an empty directory."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def blocks(language: str, marker: str | None = None) -> list[str]:
    """The fenced code blocks of one language, in order (only those after ``<!-- marker -->``)."""
    text = README.read_text(encoding="utf-8")
    pattern = r"(?:<!-- (?P<marker>[\w-]+) -->\n)?```" + language + r"\n(?P<body>.*?)```"
    found = []
    for m in re.finditer(pattern, text, flags=re.S):
        if marker is None or m.group("marker") == marker:
            found.append(m.group("body"))
    return found


def test_the_readme_has_its_examples():
    assert len(blocks("python")) >= 4
    assert len(blocks("bash", "cli-example")) == 1
    assert blocks("bash", "setup-command") and blocks("bash", "test-command")


def test_python_examples_run_in_an_empty_directory(tmp_path):
    script = "\n\n".join(blocks("python"))
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_cli_example_runs_in_an_empty_directory(tmp_path):
    (script,) = blocks("bash", "cli-example")
    bindir = os.path.dirname(sys.executable)  # the environment's fastgram command
    env = {**os.environ, "PATH": bindir + os.pathsep + os.environ.get("PATH", "")}
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "distinct 3-grams" in out and "Perplexity including OOVs:\t" in out and "Tokens:\t20" in out
    assert out.count("Total: ") == 3  # a line per sentence of lines.txt
    assert sorted(os.listdir(tmp_path)) == ["bigrams.npz", "lines.arpa", "lines.txt", "trigrams.npz"]
