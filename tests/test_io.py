"""fastgram._io: atomic outputs, cleanup on signals, path and budget checks, chunked readers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from fastgram import _io, count_files

# -- atomic outputs and signals ---------------------------------------------------------------


def test_atomic_output_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "out.npz"
    target.write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with _io.atomic_output(target) as tmp:
            with open(tmp, "w") as f:
                f.write("half")
            raise KeyboardInterrupt
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.npz"]


def test_atomic_output_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="output directory .*missing does not exist"):
        with _io.atomic_output(tmp_path / "missing" / "x.npz"):
            pass
    with pytest.raises(TypeError, match="path must be a str or os.PathLike, got int"):
        with _io.atomic_output(3):
            pass
    with pytest.raises(IsADirectoryError, match="output .* is a directory: name a file in it"):
        with _io.atomic_output(tmp_path):
            raise AssertionError("the block must not run: the work would be lost at the rename")


def test_check_output_before_the_work(tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("a b\n")
    link = tmp_path / "link.txt"
    os.symlink(src, link)
    assert _io.check_output(tmp_path / "new.npz", [src]) == str(tmp_path / "new.npz")
    for out in (src, link):  # the same file, by its name or through a link
        with pytest.raises(ValueError, match=r"is also an input .*would destroy the input"):
            _io.check_output(out, [src])
    if os.geteuid() != 0:  # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        with pytest.raises(PermissionError, match="is not writable"):
            _io.check_output(ro / "x.npz")


def test_temporary_directory_removed_on_error(tmp_path):
    with pytest.raises(RuntimeError, match="boom"):
        with _io.temporary_directory("x-", tmp_path) as d:
            (open(os.path.join(d, "f"), "w")).close()
            raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []
    with pytest.raises(FileNotFoundError, match="tmp_dir .* is not a directory"):
        with _io.temporary_directory("x-", tmp_path / "nope"):
            pass


_HOLD_OUTPUT = """
import sys, time
from fastgram import _io
with _io.atomic_output(sys.argv[1]) as tmp:
    open(tmp, "w").write("half")
    print("ready", flush=True)
    time.sleep(60)
"""


def _wait_for(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
def test_sigterm_removes_the_temporary_output(tmp_path):
    out = tmp_path / "out.txt"
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLD_OUTPUT, str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        proc.kill()
    # cleaned up, then ended as SIGTERM ends a process: no traceback of fastgram's own exception
    assert proc.returncode == -signal.SIGTERM and "Traceback" not in proc.stderr.read()
    assert os.listdir(tmp_path) == []


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals and FIFOs")
def test_sigterm_during_cli_count_leaves_nothing(tmp_path):
    """`fastgram count` reading a FIFO, spilling runs, is terminated: no output, no .tmp, no spill."""
    fifo = tmp_path / "tokens.fifo"
    os.mkfifo(fifo)
    spill = tmp_path / "spill"
    spill.mkdir()
    out = tmp_path / "out.npz"
    cmd = [sys.executable, "-m", "fastgram.app.cli", "count", str(fifo), "--dtype", "uint16", "--vocab-size",
           "60000", "--order", "3", "--max-memory", "64K", "--tmp-dir", str(spill), "--chunk-tokens", "4096",
           "-o", str(out)]  # fmt: skip
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    writer = open(fifo, "wb")  # noqa: SIM115 - held open so the reader never sees the end
    try:
        rng = np.random.default_rng(0)
        stop = threading.Event()

        def feed():
            try:
                while not stop.is_set():
                    writer.write(rng.integers(0, 60000, 1 << 14, dtype=np.uint16).tobytes())
                    writer.flush()
            except (BrokenPipeError, ValueError, OSError):
                pass

        thread = threading.Thread(target=feed, daemon=True)
        thread.start()
        assert _wait_for(lambda: any(os.scandir(spill))), "the count never spilled"
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        stop.set()
    finally:
        proc.kill()
        try:
            writer.close()
        except OSError:
            pass
    assert proc.returncode == 143, proc.stderr.read()
    assert "terminated" in proc.stderr.read()
    assert os.listdir(spill) == []
    assert sorted(os.listdir(tmp_path)) == ["spill", "tokens.fifo"]


# -- readers ----------------------------------------------------------------------------------


@pytest.mark.skipif(os.name != "posix", reason="FIFOs")
def test_a_fifo_is_read_to_its_end(tmp_path, rng):
    fifo = tmp_path / "t.fifo"
    os.mkfifo(fifo)
    data = rng.integers(0, 300, 50_001).astype(np.uint16)

    def write():
        with open(fifo, "wb") as f:
            for lo in range(0, data.size, 777):
                f.write(data[lo : lo + 777].tobytes())

    thread = threading.Thread(target=write)
    thread.start()
    got = count_files(fifo, 2, dtype="uint16", vocab_size=300, chunk_tokens=1000)
    thread.join()
    assert got.tokens == data.size
    assert got.total == data.size - 1
    with pytest.raises(ValueError, match="t.fifo: a FIFO or stream can be read only once; give vocab_size="):
        count_files(fifo, 2, dtype="uint16")


def test_a_file_that_grows_while_read_is_an_error(tmp_path):
    path = tmp_path / "a.bin"
    np.arange(1000, dtype=np.uint16).tofile(path)
    chunks = _io.raw_chunks(str(path), np.dtype(np.uint16), 100)
    next(chunks)
    with open(path, "ab") as f:
        f.write(b"\x00\x01" * 10)
    with pytest.raises(ValueError, match=r"a.bin: file changed size while being read \(2,000 bytes when opened"):
        list(chunks)


@pytest.mark.parametrize("reader", ["raw", "utf8", "text"])
def test_a_file_that_shrinks_while_read_is_an_error(tmp_path, reader):
    path = tmp_path / "a.txt"
    path.write_bytes(b"abcd" * 500)
    chunks = {
        "raw": lambda: _io.raw_chunks(str(path), np.dtype(np.uint8), 100),
        "utf8": lambda: _io.utf8_chunks(str(path), 100),
        "text": lambda: _io.text_chunks(str(path), 100),
    }[reader]()
    next(chunks)
    os.truncate(path, 1000)
    with pytest.raises(ValueError, match="file changed size while being read"):
        list(chunks)


# -- argument checks --------------------------------------------------------------------------


def test_parse_memory():
    assert _io.parse_memory("2G") == 2 << 30 and _io.parse_memory("1.5KiB") == 1536
    assert _io.parse_memory(None) is None and _io.parse_memory(4096) == 4096
    with pytest.raises(ValueError, match="max_memory must be a size such as 512M or 2G, got 'lots'"):
        _io.parse_memory("lots")
    with pytest.raises(ValueError, match="--max-memory must be positive, got '-1G'"):
        _io.parse_memory("-1G", "--max-memory")
    with pytest.raises(TypeError, match="max_memory must be an integer, got float"):
        _io.parse_memory(2.5)


def test_expand_paths(tmp_path):
    for name in ("b.bin", "a.bin", ".hidden"):
        (tmp_path / name).write_bytes(b"")
    assert _io.expand_paths(tmp_path) == [str(tmp_path / "a.bin"), str(tmp_path / "b.bin")]
    assert _io.expand_paths(str(tmp_path / "*.bin")) == [str(tmp_path / "a.bin"), str(tmp_path / "b.bin")]
    with pytest.raises(FileNotFoundError, match="missing: no such file or directory"):
        _io.expand_paths([tmp_path / "missing"])
    with pytest.raises(FileNotFoundError, match="no file matches this pattern"):
        _io.expand_paths(str(tmp_path / "*.txt"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="paths: no files found"):
        _io.expand_paths([tmp_path / "empty"])
    with pytest.raises(TypeError, match="paths must be a path or a list of paths, got int"):
        _io.expand_paths(3)


def test_read_npz_names_the_file_and_field(tmp_path):
    path = tmp_path / "x.npz"
    np.savez(path, a=np.arange(3), b=np.array("text"))
    assert set(_io.read_npz(str(path), {"a"}, {"b"})) == {"a", "b"}
    with pytest.raises(ValueError, match=r"x.npz: not a fastgram file \(missing field 'c'\)"):
        _io.read_npz(str(path), {"c"})
    np.save(tmp_path / "y.npy", np.arange(3))
    with pytest.raises(ValueError, match="y.npy: not an .npz file"):
        _io.read_npz(str(tmp_path / "y.npy"), set())
    data = path.read_bytes()
    for cut in (len(data) // 3, len(data) - 30):
        path.write_bytes(data[:cut])
        with pytest.raises(ValueError, match=r"x.npz: (not a readable .npz file|field 'a' is damaged)"):
            _io.read_npz(str(path), {"a"})
    fields = {"v": np.array(3.0)}
    with pytest.raises(ValueError, match="f.npz: field 'v' must be an integer scalar, got float64"):
        _io.scalar_field("f.npz", fields, "v", 0, 5)


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
def test_sigterm_while_cli_lm_writes_leaves_nothing(tmp_path):
    """`fastgram lm` is terminated while its ARPA file is being written: the older output stays,
    no .tmp, no scratch files."""
    rng = np.random.default_rng(0)
    tokens = tmp_path / "tokens.bin"
    (rng.zipf(1.2, 4_000_000) % 50_000).astype(np.uint16).tofile(tokens)  # 0: the separator
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    out = tmp_path / "m.arpa"
    out.write_text("an older model\n")
    cmd = [sys.executable, "-m", "fastgram.app.cli", "lm", str(tokens), "--dtype", "uint16", "--separator", "0",
           "--order", "4", "--discount-fallback", "--tmp-dir", str(scratch), "-o", str(out)]  # fmt: skip
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    try:
        writing = _wait_for(lambda: any(p.name.endswith(".tmp") for p in tmp_path.iterdir()))
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        proc.kill()
    assert writing, "the ARPA file was never being written"
    assert proc.returncode == 143, proc.stderr.read()
    assert out.read_text() == "an older model\n"
    assert os.listdir(scratch) == []
    assert sorted(os.listdir(tmp_path)) == ["m.arpa", "scratch", "tokens.bin"]
