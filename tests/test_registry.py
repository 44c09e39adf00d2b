"""The registry: every kernel agrees with its reference on every registered case."""

from __future__ import annotations

import numpy as np
import pytest

import fastgram
from fastgram import registry
from fastgram.registry import REGISTRY, Case, KernelCheck, format_table, max_difference, run_checks

check_module = registry


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_kernel_matches_reference(name):
    (result,) = run_checks([name], seed=123)
    assert result.cases > 0
    assert result.ok, result.failures


def test_every_public_kernel_is_registered():
    names = set(REGISTRY)
    public = {"count_bigrams", "count_ngrams", "sample_next", "generate", "sample_logits", "multinomial", "uniform"}
    assert public | {"nll", "attention"} <= names
    assert {"lm_estimate", "lm_score", "lm_generate"} <= names
    for name in names:
        entry = REGISTRY[name]
        if entry.family == "lm":  # the model's methods, wrapped to return plain arrays and dicts
            assert entry.reference.__module__ == "fastgram.registry.cases_lm"
            continue
        assert entry.reference is getattr(fastgram.reference, name)
        assert entry.kernel is getattr(fastgram, name)


def test_check_function_and_registry_module_are_apart():
    assert callable(fastgram.check) and fastgram.check is registry.check
    assert fastgram.registry is registry


def test_a_mismatch_is_reported_and_fails(capsys):
    bad = KernelCheck(
        "broken",
        "test",
        kernel=lambda x: x + 1,
        reference=lambda x: x,
        cases=lambda rng: [Case("one", (np.arange(3),))],
    )
    check_module.REGISTRY["broken"] = bad
    try:
        (result,) = run_checks(["broken"])
        assert not result.ok and result.max_difference == 1.0
        assert "FAIL broken: one: difference 1 > 0" in format_table([result])
        assert check_module.check(["broken"]) is False
        assert "FAIL" in capsys.readouterr().out
    finally:
        del check_module.REGISTRY["broken"]


def test_a_crash_is_reported_not_raised():
    def boom(x):
        raise RuntimeError("kernel exploded")

    check_module.REGISTRY["boom"] = KernelCheck("boom", "test", boom, lambda x: x, lambda rng: [Case("c", (1,))])
    try:
        (result,) = run_checks(["boom"])
        assert result.failures == ["c: RuntimeError: kernel exploded"]
    finally:
        del check_module.REGISTRY["boom"]


def test_unknown_name():
    with pytest.raises(ValueError, match="unknown kernel or family"):
        run_checks(["no_such_kernel"])


def test_max_difference():
    assert max_difference(np.array([1, 2]), np.array([1, 2])) == 0.0
    assert max_difference(np.array([1.0, np.nan]), np.array([1.5, np.nan])) == 0.5
    assert max_difference(np.zeros(2), np.zeros(3)) == float("inf")
    assert max_difference((np.zeros(1), 3), (np.zeros(1), 3)) == 0.0
    assert max_difference(np.array([np.nan]), np.array([1.0])) == float("inf")
