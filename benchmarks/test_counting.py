"""Dense bigram counting: the kernel beside the NumPy reference on the same data.

The reference is ``np.bincount(a.astype(np.int64) * V + b, minlength=V * V)``: about 24 bytes
of temporaries per token. Cases (full size):

- 10^8 uint8 tokens, V = 256 (private per-thread tables);
- 10^8 uint16 tokens, V = 4096, uniform and Zipf-like (row-partitioned kernel);
- ``count_file`` over a 1 GiB uint16 token file: throughput and peak memory;
- compile time: cold, and loaded from the cache.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from conftest import (
    CAN_MEASURE_PEAK,
    SMOKE,
    check_result,
    implementation,
    measure,
    peak_extra_mib,
    roles,
    size,
    time_compile,
    zipf_tokens,
)

from fastgram import count_file
from fastgram.kernels import counting as kernels
from fastgram.registry import REGISTRY

N_TOKENS = size(10**8, 10_000)
FILE_TOKENS = size(1 << 29, 50_000)  # 1 GiB of uint16


@pytest.fixture(scope="module")
def streams(rng):
    return {
        "uint8 V=256": (rng.integers(0, 256, N_TOKENS, dtype=np.uint8), 256),
        "uint16 V=4096 uniform": (rng.integers(0, 4096, N_TOKENS, dtype=np.uint16), 4096),
        "uint16 V=4096 zipf": (zipf_tokens(rng, N_TOKENS, 4096, np.uint16), 4096),
    }


CASES = ["uint8 V=256", "uint16 V=4096 uniform", "uint16 V=4096 zipf"]
BIGRAMS = REGISTRY["count_bigrams"]
CALLS = {"kernel": "fastgram.count_bigrams", "reference": "reference.count_bigrams"}


@pytest.mark.parametrize("case,role", [(c, r) for c in CASES for r in roles("count_bigrams")])
def test_count_bigrams(benchmark, streams, case, role):
    tokens, V = streams[case]
    group = f"count_bigrams {case}"
    extra = {"tokens": tokens.size, "vocab_size": V}
    if not SMOKE and CAN_MEASURE_PEAK and role in CALLS:
        extra["extra_peak_mib"] = peak_extra_mib(_setup_code(case), f"{CALLS[role]}(tokens, {V})")
    fn = implementation("count_bigrams", role)
    counts = measure(benchmark, fn, tokens, V, group=group, role=role, rounds=1 if role == "reference" else 3, **extra)
    check_result("count_bigrams", group, role, counts, tokens, V)


def _setup_code(case: str) -> str:
    dtype, V = ("np.uint8", 256) if case.startswith("uint8") else ("np.uint16", 4096)
    return "\n".join(
        [
            "import numpy as np, fastgram",
            "from fastgram import reference",
            f"tokens = np.random.default_rng(0).integers(0, {V}, {N_TOKENS}, dtype={dtype})",
            f"_ = fastgram.count_bigrams(tokens[:1000], {V})",
        ]
    )


@pytest.fixture(scope="module")
def token_file(tmp_path_factory, rng):
    path = tmp_path_factory.mktemp("corpus") / "train.bin"
    with open(path, "wb") as f:
        for lo in range(0, FILE_TOKENS, 1 << 24):
            rng.integers(0, 4096, min(1 << 24, FILE_TOKENS - lo), dtype=np.uint16).tofile(f)
    yield str(path)
    os.unlink(path)


def test_count_file(benchmark, token_file):
    extra = {"tokens": FILE_TOKENS, "file_bytes": os.path.getsize(token_file)}
    if not SMOKE and CAN_MEASURE_PEAK:
        extra["extra_peak_mib"] = peak_extra_mib(
            "import fastgram",
            f"fastgram.count_file({token_file!r}, dtype='uint16', vocab_size=4096)",
        )

    def count():
        return count_file(token_file, dtype="uint16", vocab_size=4096)

    counts = measure(benchmark, count, group="count_file 1 GiB uint16 V=4096", role="kernel", rounds=2, **extra)
    assert counts.tokens == FILE_TOKENS
    np.testing.assert_array_equal(counts.to_dense(max_memory="1G"), _file_reference(token_file, 4096))


def _file_reference(path: str, V: int, chunk: int = 1 << 24) -> np.ndarray:
    """The registry's reference over the file in chunks that overlap by one token (exact, and
    bounded in memory): the bigrams of the whole stream."""
    tokens = np.memmap(path, dtype=np.uint16, mode="r")
    table = np.zeros((V, V), np.int64)
    for lo in range(0, max(tokens.size - 1, 0), chunk):
        table += BIGRAMS.reference(tokens[lo : lo + chunk + 1], V)
    return table


@pytest.mark.parametrize("how", ["cached", "cold"])
def test_compile_time(benchmark, how):
    tokens = np.arange(1000, dtype=np.uint16) % 300
    local = np.zeros((1, 300 * 300), np.int64)  # one private table
    time_compile(benchmark, kernels.count_pieces_private, (0, 1, tokens, 300, tokens.size - 1, local), how)
