"""count_files(client=, out=) on a real LocalCluster of 2 worker processes (fastgram/distributed.py).

One module-scoped cluster keeps the suite fast; every test leaves it with 2 live workers.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time

import numpy as np
import pytest

distributed_pkg = pytest.importorskip("distributed")
cloudpickle = pytest.importorskip("cloudpickle")

import fastgram as fg  # noqa: E402
from fastgram import distributed  # noqa: E402
from fastgram.app import cli  # noqa: E402
from fastgram.store import MANIFEST, NGramStore  # noqa: E402

# the worker plugin below is defined here: ship it to the workers by value
cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def client():
    cluster = distributed_pkg.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None)
    c = distributed_pkg.Client(cluster)
    try:
        yield c
    finally:
        c.close()
        cluster.close()


def _shards(tmp_path, lengths, V, seed):
    rng = np.random.default_rng(seed)
    paths = []
    for i, length in enumerate(lengths):
        path = tmp_path / f"shard-{i:03d}.bin"
        np.minimum(rng.zipf(1.3, length) - 1, V - 1).astype(np.uint16).tofile(path)
        paths.append(str(path))
    return paths


def _same(store, ref):
    got = store.load()
    assert np.array_equal(got.keys, ref.keys)
    assert np.array_equal(got.counts, ref.counts)
    assert (got.n, got.vocab_size, got.separator, got.tokens) == (ref.n, ref.vocab_size, ref.separator, ref.tokens)


LENGTHS = [0, 1, 3, 3000, 2, 0, 5000, 1, 900, 4]


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_exact_random_shards(client, tmp_path, monkeypatch, n):
    monkeypatch.setattr(distributed, "TASK_TOKENS", 1111)  # large shards split into byte ranges
    paths = _shards(tmp_path, LENGTHS, 60, seed=n)
    for separator in (None, 7):
        ref = fg.count_files(paths, n, dtype="uint16", separator=separator)
        store = fg.count_files(
            paths, n, dtype="uint16", separator=separator, client=client, out=tmp_path / f"s{separator}"
        )
        _same(store, ref)
        assert store.num_partitions >= 2  # 2 per worker slot at least: the reduce runs on both workers
        assert sorted(os.listdir(store.path)) == sorted([MANIFEST] + [p["file"] for p in store.partitions])


@pytest.mark.parametrize("lengths", [[4321], [2, 1, 0, 3, 1], [0, 0]], ids=["one shard", "shorter than n", "empty"])
def test_exact_edge_cases(client, tmp_path, lengths):
    paths = _shards(tmp_path, lengths, 9, seed=1)
    for n in (2, 4):
        ref = fg.count_files(paths, n, dtype="uint16", vocab_size=9)
        _same(fg.count_files(paths, n, dtype="uint16", vocab_size=9, client=client, out=tmp_path / f"o{n}"), ref)


def test_exact_real_text(client, tmp_path):
    src_dir = os.path.dirname(fg.__file__)
    src = sorted(os.path.join(src_dir, f) for f in os.listdir(src_dir) if f.endswith(".py"))
    for vocab in (None, fg.files.scan_vocab(src)):
        for n, sep in ((3, None), (5, 10)):
            ref = fg.count_files(src, n, text=True, vocab=vocab, separator=sep, min_count=2)
            out = tmp_path / f"t{vocab is None}{n}"
            store = fg.count_files(src, n, text=True, vocab=vocab, separator=sep, min_count=2, client=client, out=out)
            _same(store, ref)
            assert store.top(5)[1].tolist() == ref.top(5)[1].tolist()


class KillOnce(distributed_pkg.WorkerPlugin):
    """Kill the worker process right after it finished a task whose key starts with ``prefix``
    (its output already written, its result not yet reported), once: the marker file says it
    happened. The nanny restarts the worker and the scheduler reruns the task."""

    def __init__(self, prefix: str, marker: str):
        self.prefix, self.marker = prefix, marker

    def transition(self, key, start, finish, **kwargs):
        if str(key).startswith(self.prefix) and finish == "memory" and not os.path.exists(self.marker):
            with open(self.marker, "w") as f:
                f.write(str(os.getpid()))
            os._exit(1)


def test_worker_killed_mid_run(client, tmp_path):
    paths = _shards(tmp_path, [20000, 15000, 9000, 3], 200, seed=4)
    ref = fg.count_files(paths, 3, dtype="uint16")
    markers = [str(tmp_path / "killed-map"), str(tmp_path / "killed-merge")]
    client.register_plugin(KillOnce("fastgram-count-", markers[0]), name="kill-map")
    client.register_plugin(KillOnce("fastgram-merge-", markers[1]), name="kill-merge")
    try:
        store = fg.count_files(paths, 3, dtype="uint16", client=client, out=tmp_path / "store")
    finally:
        client.unregister_worker_plugin("kill-map")
        client.unregister_worker_plugin("kill-merge")
        client.wait_for_workers(2, timeout=60)
    assert all(os.path.exists(m) for m in markers)  # a worker really died in each stage
    _same(store, ref)
    assert not [f for f in os.listdir(store.path) if f.endswith(".tmp") or f.startswith(".")]


def _slow_write(spec):
    """A task that fails at once, or writes its file after a while (as a reduce task does)."""
    path, delay = spec
    if path is None:
        raise ValueError("a task failed")
    time.sleep(delay)
    with open(path, "w") as f:
        f.write("written")
    return path


def test_a_failed_map_waits_for_its_cancelled_running_tasks(client, tmp_path):
    """The scheduler forgets a cancelled task at once while its worker still runs it; map must
    return only when none runs, so that the caller's cleanup is not followed by late writes."""
    executor = distributed._Dask(client, progress=False)
    late = tmp_path / "late.txt"
    with pytest.raises(ValueError, match="a task failed"):
        executor.map(_slow_write, [(str(late), 1.5), (None, 0.3)], "test")
    assert late.exists()  # the running task had finished when map raised


def test_bad_shard_fails_the_count(client, tmp_path, monkeypatch):
    monkeypatch.setattr(distributed, "TASK_TOKENS", 1000)
    paths = _shards(tmp_path, [5000, 4000, 3000], 50, seed=2)
    bad = np.fromfile(paths[1], np.uint16)
    bad[3210] = 77
    bad.tofile(paths[1])
    with pytest.raises(ValueError, match=r"shard-001.bin: token id 77 at position 3,210 is outside \[0, 50\)"):
        fg.count_files(paths, 3, dtype="uint16", vocab_size=50, client=client, out=tmp_path / "new")
    assert not (tmp_path / "new").exists()
    (tmp_path / "given").mkdir()
    with pytest.raises(ValueError, match="shard-001.bin: token id 77 at position 3,210"):
        fg.count_files(paths, 3, dtype="uint16", vocab_size=50, client=client, out=tmp_path / "given")
    assert os.listdir(tmp_path / "given") == []  # no manifest, no partitions, no scratch
    with open(paths[2], "ab") as f:
        f.write(b"\x00")
    with pytest.raises(ValueError, match=r"shard-002.bin: file size 6,001 bytes is not a multiple"):
        fg.count_files(paths, 3, dtype="uint16", client=client, out=tmp_path / "given")
    assert os.listdir(tmp_path / "given") == []


def test_cli_against_running_scheduler(client, tmp_path, capsys):
    paths = _shards(tmp_path, [6000, 0, 2500], 300, seed=9)
    out = tmp_path / "cli-store"
    argv = ["count", *paths, "--dtype", "uint16", "--order", "3", "--out-dir", str(out), "--top", "3"]
    assert cli.main([*argv, "--scheduler", client.scheduler.address]) == 0
    printed = capsys.readouterr().out
    ref = fg.count_files(paths, 3, dtype="uint16")
    _same(NGramStore.open(out), ref)
    assert f"{len(ref):,} distinct 3-grams" in printed
    top_ngrams, top_counts = ref.top(3)
    assert f"{top_counts[0]:>12,}  {' '.join(map(str, top_ngrams[0]))}" in printed


def test_cli_starts_its_own_local_cluster(tmp_path, capsys):
    paths = _shards(tmp_path, [4000, 1500], 200, seed=11)
    out = tmp_path / "own-cluster"
    argv = ["count", *paths, "--dtype", "uint16", "--order", "2", "--out-dir", str(out), "--workers", "2"]
    assert cli.main(argv) == 0
    ref = fg.count_files(paths, 2, dtype="uint16")
    _same(NGramStore.open(out), ref)
    assert f"{len(ref):,} distinct 2-grams" in capsys.readouterr().out


def test_cli_unreachable_scheduler(tmp_path, capsys):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    paths = _shards(tmp_path, [100], 5, seed=0)
    argv = [
        "count",
        *paths,
        "--dtype",
        "uint16",
        "--out-dir",
        str(tmp_path / "o"),
        "--scheduler",
        f"tcp://127.0.0.1:{port}",
    ]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert f"no Dask scheduler answered at tcp://127.0.0.1:{port} within 5 s" in err
    assert not (tmp_path / "o").exists()
    assert cli.main(["count", *paths, "--dtype", "uint16", "-o", str(tmp_path / "x.npz"), "--workers", "2"]) == 2
    assert "--scheduler and --workers need --out-dir" in capsys.readouterr().err


@pytest.mark.parametrize("reply", [b"", b"HTTP/1.0 200 OK\r\n\r\nnot dask"])
def test_a_peer_that_is_not_a_scheduler_fails_within_the_timeout(reply):
    """A port that accepts and says nothing (or speaks HTTP, e.g. the dashboard's) held Dask's
    handshake forever or read its text as a frame length; the connection has a deadline."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    held = []

    def serve():
        conn, _ = server.accept()
        held.append(conn)
        if reply:
            conn.sendall(reply * 64)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    start = time.monotonic()
    try:
        with pytest.raises(OSError, match=f"no Dask scheduler answered at tcp://127.0.0.1:{port} within 1 s"):
            with distributed.dask_client(f"tcp://127.0.0.1:{port}", timeout=1.0):
                pass
        assert time.monotonic() - start < 10
    finally:
        for c in held:
            c.close()
        server.close()
    with pytest.raises(ValueError, match="workers must be <= "):
        with distributed.dask_client(workers=distributed.MAX_LOCAL_WORKERS + 1):
            pass
