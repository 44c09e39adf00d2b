"""Counting on a Dask LocalCluster against counting in one process (fastgram/distributed.py).

10^8 Zipf-like uint16 tokens (V = 50,257, GPT-2's vocabulary) in 16 shards, trigrams, in one
group ``distributed trigrams``:

- ``kernel``: ``count_files(..., client=<2 workers>, out=DIR)`` -- the Dask path;
- ``in-process``: ``count_files(...)`` into memory, the one-process contract it must match;
- ``in-process store``: ``count_files(..., out=DIR)`` without Dask (runs merged per partition);
- ``1 worker``: the Dask path on one worker process (the scaling ratio against ``kernel``).

Each Dask worker has one task slot and uses the host's cores divided by its slots for Numba
(2 workers: 1 thread each; 1 worker: 2 threads), so every role uses the whole machine. The
store is checked against the in-process counts once (untimed). ``extra_info`` records the
client process's peak resident growth during a Dask count (the client holds plans, key
samples and manifest entries, never counts) against the result's size (16 bytes per distinct
n-gram), the partitions' balance (largest / mean distinct n-grams) and the map tasks' sizes.
"""

from __future__ import annotations

import itertools
import os
import shutil

import numpy as np
import pytest
from conftest import CAN_MEASURE_PEAK, SMOKE, measure, size, zipf_tokens

import fastgram as fg

distributed_pkg = pytest.importorskip("distributed")

N_TOKENS = size(10**8, 200_000)
SHARDS = 16
V = 50257
N = 3
GROUP = "distributed trigrams"
_names = itertools.count()


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("shards")
    rng = np.random.default_rng(20261124)
    per = N_TOKENS // SHARDS
    paths = []
    for i in range(SHARDS):
        path = root / f"shard-{i:02d}.bin"
        zipf_tokens(rng, per, V, np.uint16).tofile(path)
        paths.append(str(path))
    return paths


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("stores")


@pytest.fixture(scope="module")
def reference(shards):
    return fg.count_files(shards, N, dtype="uint16", vocab_size=V)


def _cluster(workers: int):
    cluster = distributed_pkg.LocalCluster(
        n_workers=workers, processes=True, threads_per_worker=1, dashboard_address=None, memory_limit=0
    )
    return cluster, distributed_pkg.Client(cluster)


def _store_call(shards, scratch, client):
    def run():
        out = os.path.join(scratch, f"store-{next(_names)}")
        store = fg.count_files(shards, N, dtype="uint16", vocab_size=V, out=out, client=client)
        for old in os.listdir(scratch):  # keep one store on disk at a time
            if os.path.join(scratch, old) != out:
                shutil.rmtree(os.path.join(scratch, old))
        return store

    return run


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    raise KeyError(field)


def _client_peak_mib(fn) -> float | None:
    """Peak resident growth (MiB) of this (the client) process while ``fn`` runs."""
    if not CAN_MEASURE_PEAK:
        return None
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = _status_kib("VmRSS:")
    fn()
    return round((_status_kib("VmHWM:") - before) / 1024, 1)


def _facts(store) -> dict:
    parts = np.array([p["distinct"] for p in store.partitions], np.float64)
    return dict(
        tokens=store.tokens,
        distinct=len(store),
        partitions=store.num_partitions,
        result_mib=round(16 * len(store) / 2**20, 1),
        partition_balance=round(float(parts.max() / parts.mean()), 3) if parts.sum() else 1.0,
        map_tasks=SHARDS,
        tokens_per_task=N_TOKENS // SHARDS,
    )


def _check(store, reference) -> None:
    got = store.load()
    assert np.array_equal(got.keys, reference.keys) and np.array_equal(got.counts, reference.counts)
    assert got.tokens == reference.tokens


@pytest.mark.parametrize("role", ["kernel", "1 worker"])
def test_dask(benchmark, shards, scratch, reference, role):
    cluster, client = _cluster(2 if role == "kernel" else 1)
    try:
        run = _store_call(shards, scratch, client)
        store = run()  # warm-up: compiles or loads the kernels on the workers
        _check(store, reference)
        extra = _facts(store)
        peak = _client_peak_mib(run)
        if peak is not None:
            extra["client_peak_mib"] = peak
            extra["client_peak_fraction_of_result"] = round(peak / max(extra["result_mib"], 1e-9), 4)
        measure(benchmark, run, group=GROUP, role=role, rounds=3, workers=2 if role == "kernel" else 1, **extra)
    finally:
        client.close()
        cluster.close()


def test_in_process(benchmark, shards, reference):
    def run():
        return fg.count_files(shards, N, dtype="uint16", vocab_size=V)

    measure(benchmark, run, group=GROUP, role="in-process", rounds=3, distinct=len(reference))


def test_in_process_store(benchmark, shards, scratch, reference):
    run = _store_call(shards, scratch, None)
    store = run()
    _check(store, reference)
    measure(benchmark, run, group=GROUP, role="in-process store", rounds=1 if not SMOKE else 1, **_facts(store))
