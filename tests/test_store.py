"""NGramStore (fastgram/store.py) and count_files(out=) in one process (fastgram/distributed.py)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import fastgram as fg
from fastgram import distributed
from fastgram.store import MANIFEST, NGramStore, read_run, write_run, write_run_blocks


def _shards(tmp_path, lengths, V, seed, dtype=np.uint16, zipf=False):
    rng = np.random.default_rng(seed)
    paths = []
    for i, length in enumerate(lengths):
        if zipf:
            ids = np.minimum(rng.zipf(1.3, length) - 1, V - 1)
        else:
            ids = rng.integers(0, V, length)
        path = tmp_path / f"shard-{i:03d}.bin"
        ids.astype(dtype).tofile(path)
        paths.append(str(path))
    return paths


def _same(store: NGramStore, ref: fg.NGramCounts) -> None:
    got = store.load()
    assert np.array_equal(got.keys, ref.keys)
    assert np.array_equal(got.counts, ref.counts)
    assert (got.n, got.vocab_size, got.separator, got.tokens) == (ref.n, ref.vocab_size, ref.separator, ref.tokens)
    assert (len(store), store.total) == (len(ref), ref.total)


# lengths with empty shards, one-token shards and shards shorter than n between longer ones
LENGTHS = [0, 1, 3, 2500, 2, 0, 4000, 1, 700]


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("separator", [None, 5])
def test_out_equals_in_process(tmp_path, monkeypatch, n, separator):
    paths = _shards(tmp_path, LENGTHS, 11, seed=n)
    # small ranges and partitions: large files split into ranges, several partitions
    monkeypatch.setattr(distributed, "TASK_TOKENS", 997)
    monkeypatch.setattr(distributed, "PARTITION_ENTRIES", 300)
    ref = fg.count_files(paths, n, dtype="uint16", separator=separator)
    store = fg.count_files(paths, n, dtype="uint16", separator=separator, out=tmp_path / "store")
    assert isinstance(store, NGramStore)
    assert store.num_partitions > 1 or len(ref) <= 300
    _same(store, ref)
    # partitions are disjoint, sorted key ranges
    for part, entry in zip(store, store.partitions):
        assert len(part) == entry["distinct"]
        if len(part):
            assert entry["lo"] <= int(part.keys[0]) and int(part.keys[-1]) < entry["hi"]
    assert sorted(os.listdir(tmp_path / "store")) == sorted([MANIFEST] + [p["file"] for p in store.partitions])


@pytest.mark.parametrize("case", ["one shard", "all shorter than n", "all empty"])
def test_out_edge_cases(tmp_path, case):
    lengths = {"one shard": [1234], "all shorter than n": [2, 1, 3, 0, 2], "all empty": [0, 0]}[case]
    paths = _shards(tmp_path, lengths, 9, seed=3)
    for n in (1, 3, 4):
        ref = fg.count_files(paths, n, dtype="uint16", vocab_size=9)
        store = fg.count_files(paths, n, dtype="uint16", vocab_size=9, out=tmp_path / f"s{n}")
        _same(store, ref)


def test_out_under_max_memory_min_count_and_text(tmp_path, monkeypatch):
    paths = _shards(tmp_path, [30000, 20000, 5], 300, seed=7, zipf=True)
    ref = fg.count_files(paths, 3, dtype="uint16", min_count=2, max_memory="1M")
    store = fg.count_files(paths, 3, dtype="uint16", min_count=2, max_memory="1M", out=tmp_path / "st")
    _same(store, ref)
    assert store.num_partitions > 1  # the budget makes several partitions
    # real text: fastgram's own sources, byte-level and with a character vocabulary
    src = sorted(os.path.join(os.path.dirname(fg.__file__), f) for f in ("store.py", "files.py", "_io.py"))
    for vocab in (None, fg.files.scan_vocab(src)):
        ref = fg.count_files(src, 4, text=True, vocab=vocab)
        store = fg.count_files(src, 4, text=True, vocab=vocab, out=tmp_path / f"text-{vocab is None}")
        _same(store, ref)
        assert store.load().vocab.to_json() == ref.vocab.to_json()


def _sample_counts(tmp_path, seed=0, n=3, V=40, tokens=20000):
    rng = np.random.default_rng(seed)
    ids = np.minimum(rng.zipf(1.2, tokens) - 1, V - 1)
    return fg.count_ngrams(ids, n, vocab_size=V)


def test_store_api_matches_counts(tmp_path):
    counts = _sample_counts(tmp_path)
    store = NGramStore.from_counts(counts, tmp_path / "a", partitions=7)
    assert store.num_partitions == 7 and len(store) == len(counts) and store.total == counts.total
    assert [len(p) for p in store] == [p["distinct"] for p in store.partitions]
    for k in (0, 1, 5, 50, len(counts) + 3):
        got_ng, got_c = store.top(k)
        ref_ng, ref_c = counts.top(k)
        assert np.array_equal(got_ng, ref_ng) and np.array_equal(got_c, ref_c)
    rng = np.random.default_rng(1)
    queries = np.concatenate([counts.ngrams[rng.integers(0, len(counts), 200)], rng.integers(0, 40, (200, 3))])
    assert np.array_equal(store.lookup(queries), counts.lookup(queries))
    assert store[tuple(counts.ngrams[0])] == counts.counts[0]
    with pytest.raises(ValueError, match="outside"):
        store.lookup([[0, 1, 40]])
    with pytest.raises(ValueError, match=r"shape \(q, 3\)"):
        store.lookup([[0, 1]])
    pruned = store.prune(3, out=tmp_path / "p")
    ref = counts.prune(3)
    assert np.array_equal(pruned.load().keys, ref.keys) and np.array_equal(pruned.load().counts, ref.counts)
    assert len(NGramStore.open(tmp_path / "a")) == len(counts)  # the input is unchanged
    other = _sample_counts(tmp_path, seed=5)
    b = NGramStore.from_counts(other, tmp_path / "b", partitions=3)
    merged = store.merge(b, out=tmp_path / "m")
    ref = counts.merge(other)
    got = merged.load()
    assert np.array_equal(got.keys, ref.keys) and np.array_equal(got.counts, ref.counts)
    assert got.tokens == ref.tokens and merged.num_partitions == 7
    merged3 = b.merge([store, b], out=tmp_path / "m3")
    ref3 = ref.merge(other)
    assert np.array_equal(merged3.load().counts, ref3.counts)
    wrong = NGramStore.from_counts(fg.count_ngrams(np.arange(10), 2, vocab_size=40), tmp_path / "w")
    with pytest.raises(ValueError, match="cannot merge counts with n=3 and n=2"):
        store.merge(wrong, out=tmp_path / "x")
    assert not (tmp_path / "x").exists()
    with pytest.raises(FileExistsError, match="not empty"):
        store.prune(2, out=tmp_path / "a")
    assert "partitions=7" in repr(store)


def test_top_of_ties_holds_k_candidates_a_partition(tmp_path, monkeypatch):
    counts = fg.count_ngrams(np.arange(20_000) % 5000, 2, vocab_size=5000)  # 5,000 bigrams seen 4 times, one 3 times
    store = NGramStore.from_counts(counts, tmp_path / "s", partitions=10)
    seen = []
    real = np.concatenate
    monkeypatch.setattr(
        np, "concatenate", lambda parts, *a, **k: seen.append(sum(map(len, parts))) or real(parts, *a, **k)
    )
    got_ng, got_c = store.top(3)
    monkeypatch.undo()
    ref_ng, ref_c = counts.top(3)
    assert np.array_equal(got_ng, ref_ng) and np.array_equal(got_c, ref_c)
    assert max(seen) <= 3 * 10 + 1  # k candidates a partition, not every tie


def test_merge_refuses_other_vocabularies_and_non_stores(tmp_path):
    text = [tmp_path / "a.txt", tmp_path / "b.txt"]
    text[0].write_text("abcabcabc")
    text[1].write_text("xyzxyzxyz")
    a, b = (fg.count_files(t, 2, vocab=fg.Vocab.from_text(t.read_text()), out=tmp_path / t.stem) for t in text)
    assert a.vocab_size == b.vocab_size
    with pytest.raises(ValueError, match="different vocabularies"):
        a.merge(b, out=tmp_path / "m")
    with pytest.raises(ValueError, match="different vocabularies"):
        a.load().merge(b.load())
    with pytest.raises(TypeError, match="others must be an NGramStore or a list of them, got NGramCounts"):
        a.merge(a.load(), out=tmp_path / "m")
    assert not (tmp_path / "m").exists()


def test_out_takes_absolute_paths_and_tmp_dir(tmp_path, monkeypatch):
    paths = _shards(tmp_path, [3000, 2000], 50, seed=4)
    monkeypatch.chdir(tmp_path)
    spills = tmp_path / "spills"
    spills.mkdir()
    made = []
    real = distributed.NGramCounter

    def spy(*args, **kwargs):
        made.append(kwargs.get("tmp_dir"))
        return real(*args, **kwargs)

    monkeypatch.setattr(distributed, "NGramCounter", spy)
    store = fg.count_files([os.path.basename(p) for p in paths], 2, dtype="uint16", out="rel", tmp_dir="spills")
    assert made and set(made) == {str(spills)}  # absolute, as a worker elsewhere needs it
    assert store.path == str(tmp_path / "rel") or os.path.samefile(store.path, tmp_path / "rel")
    with pytest.raises(FileNotFoundError, match="tmp_dir nowhere is not a directory"):
        fg.count_files(paths, 2, dtype="uint16", out="rel2", tmp_dir="nowhere")
    assert not (tmp_path / "rel2").exists()


def test_empty_store(tmp_path):
    empty = fg.count_ngrams(np.zeros(0, np.uint8), 2, vocab_size=5)
    store = NGramStore.from_counts(empty, tmp_path / "e", partitions=4)
    assert len(store) == 0 and store.total == 0 and store.load().keys.size == 0
    assert store.top(3)[0].shape == (0, 2)
    assert store.lookup([[1, 2]]).tolist() == [0]


def _corrupt(tmp_path, edit):
    counts = _sample_counts(tmp_path, tokens=3000)
    path = tmp_path / "c"
    store = NGramStore.from_counts(counts, path, partitions=3)
    edit(path, store)
    return path


def _edit_manifest(change):
    def edit(path, store):
        doc = json.loads((path / MANIFEST).read_text())
        change(doc)
        (path / MANIFEST).write_text(json.dumps(doc))

    return edit


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda d: d.update(kind="other"), r"manifest.json: field 'kind'"),
        (lambda d: d.update(format=2), r"manifest.json: field 'format' is 2"),
        (lambda d: d.update(format=True), r"manifest.json: field 'format' is True"),
        (lambda d: d.update(format=1.0), r"manifest.json: field 'format' is 1.0"),
        (lambda d: d.update(n=9), r"manifest.json: field 'n' is 9"),
        (lambda d: d.update(n="3"), r"manifest.json: field 'n' must be an integer"),
        (lambda d: d.update(vocab_size=0), r"manifest.json: field 'vocab_size'"),
        (lambda d: d.update(separator=40), r"manifest.json: field 'separator'"),
        (lambda d: d.update(tokens=-1), r"manifest.json: field 'tokens'"),
        (lambda d: d.update(total=d["total"] + 1), r"manifest.json: field 'total' is"),
        (lambda d: d.update(distinct=d["distinct"] - 1), r"manifest.json: field 'distinct'"),
        (lambda d: d.update(vocab="{"), r"manifest.json: field 'vocab'"),
        (lambda d: d.update(partitions=[]), r"manifest.json: field 'partitions' must be"),
        (lambda d: d["partitions"][1].update(lo=d["partitions"][1]["lo"] + 1), r"field 'partitions\[1\].lo'"),
        (lambda d: d["partitions"][2].update(hi=5), r"field 'partitions\[2\].hi'"),
        (lambda d: d["partitions"][0].update(file="../x.bin"), r"field 'partitions\[0\].file'"),
        (
            lambda d: d["partitions"][0].update(file="gone.bin"),
            r"partitions\[0\].file': partition file .*gone.bin is missing",
        ),
        (lambda d: d["partitions"][0].update(distinct=d["partitions"][0]["distinct"] + 1), r"part-00000.bin: size"),
    ],
)
def test_corrupted_manifest(tmp_path, change, match):
    path = _corrupt(tmp_path, _edit_manifest(change))
    with pytest.raises(ValueError, match=match):
        NGramStore.open(path)


def test_corrupted_files(tmp_path):
    path = _corrupt(tmp_path, lambda p, s: (p / MANIFEST).write_text('{"kind": '))
    with pytest.raises(ValueError, match=r"manifest.json: not valid JSON"):
        NGramStore.open(path)
    (path / MANIFEST).write_text("[" * 100_000 + "]" * 100_000)  # nesting past Python's recursion
    with pytest.raises(ValueError, match=r"manifest.json: not valid JSON"):
        NGramStore.open(path)
    (path / MANIFEST).unlink()
    (path / MANIFEST).mkdir()
    with pytest.raises(ValueError, match=r"manifest.json: not a file"):
        NGramStore.open(path)
    (tmp_path / "t").mkdir()
    path = _corrupt(tmp_path / "t", lambda p, s: None)
    with open(path / "part-00001.bin", "r+b") as f:  # truncated partition
        f.truncate(os.path.getsize(path / "part-00001.bin") - 8)
    with pytest.raises(ValueError, match=r"part-00001.bin: size .* expected 16 \* distinct"):
        NGramStore.open(path)


@pytest.mark.parametrize(
    "tamper, match",
    [
        ("swap keys", r"part-00001.bin: field 'keys' is not strictly increasing"),
        ("key out of range", r"part-00001.bin: field 'keys' has keys outside"),
        ("negative count", r"part-00001.bin: field 'counts' holds -3"),
        ("count changed", r"part-00001.bin: field 'counts' sums to"),
    ],
)
def test_tampered_partition(tmp_path, tamper, match):
    path = _corrupt(tmp_path, lambda p, s: None)
    store = NGramStore.open(path)
    entry = store.partitions[1]
    m = entry["distinct"]
    file = path / entry["file"]
    keys = np.fromfile(file, "<u8", m)
    counts = np.fromfile(file, "<i8", m, offset=8 * m)
    if tamper == "swap keys":
        keys[[0, 1]] = keys[[1, 0]]
    elif tamper == "key out of range":
        keys[-1] = entry["hi"]
    elif tamper == "negative count":
        counts[0] = -3
    else:
        counts[0] += 1
    with open(file, "wb") as f:
        keys.tofile(f)
        counts.tofile(f)
    store = NGramStore.open(path)  # sizes still agree: the content is checked when read
    with pytest.raises(ValueError, match=match):
        store.load()
    queries = store.partition(0).ngrams[:1] if store.partitions[0]["distinct"] else None
    other = NGramStore.open(path)
    with pytest.raises(ValueError, match=match):  # a lookup into the partition checks it first
        other.lookup(NGramStore.open(path)._counts(keys[2:3], counts[2:3]).ngrams)
    with pytest.raises(ValueError, match=match):  # and a merge checks every input partition
        NGramStore.open(path).merge([], out=tmp_path / "merged")
    assert not (tmp_path / "merged").exists()
    if queries is not None:  # an untouched partition still answers
        assert other.lookup(queries)[0] >= 1


def test_incomplete_and_bad_output(tmp_path):
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "part-00000.bin").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="no manifest.json"):
        NGramStore.open(tmp_path / "half")
    with pytest.raises(FileNotFoundError, match="no such store directory"):
        NGramStore.open(tmp_path / "nothing")
    paths = _shards(tmp_path, [100], 7, seed=0)
    with pytest.raises(FileExistsError, match="is not empty"):
        fg.count_files(paths, 2, dtype="uint16", out=tmp_path / "half")
    with pytest.raises(ValueError, match="client= needs out=DIR"):
        fg.count_files(paths, 2, dtype="uint16", client=object())


def test_failed_count_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(distributed, "TASK_TOKENS", 1000)
    paths = _shards(tmp_path, [5000, 3000], 7, seed=0)
    bad = np.fromfile(paths[1], np.uint16)
    bad[2345] = 99
    bad.tofile(paths[1])
    with pytest.raises(ValueError, match=r"shard-001.bin: token id 99 at position 2,345 is outside \[0, 7\)"):
        fg.count_files(paths, 3, dtype="uint16", vocab_size=7, out=tmp_path / "new")
    assert not (tmp_path / "new").exists()
    (tmp_path / "given").mkdir()
    with pytest.raises(ValueError, match="position 2,345"):
        fg.count_files(paths, 3, dtype="uint16", vocab_size=7, out=tmp_path / "given")
    assert os.listdir(tmp_path / "given") == []
    with open(paths[0], "ab") as f:  # truncated: an odd number of bytes
        f.write(b"\x01")
    with pytest.raises(ValueError, match=r"shard-000.bin: file size 10,001 bytes is not a multiple"):
        fg.count_files(paths, 3, dtype="uint16", out=tmp_path / "given")
    assert os.listdir(tmp_path / "given") == []


def test_a_store_refuses_wide_keys_clearly(tmp_path):
    wide = fg.count_ngrams(np.array([1, 2, 3, 4, 5], np.uint32), 5, vocab_size=1_000_000)
    with pytest.raises(ValueError, match=r"a store holds n-grams whose key fits one 64-bit word .* need 2 words"):
        NGramStore.from_counts(wide, tmp_path / "s")


def test_write_run_blocks_equals_write_run(tmp_path):
    rng = np.random.default_rng(7)
    keys = np.unique(rng.integers(0, 1 << 40, 5000).astype(np.uint64))
    counts = rng.integers(1, 9, len(keys)).astype(np.int64)
    write_run(str(tmp_path / "a.bin"), keys, counts)
    blocks = [(keys[lo : lo + 700], counts[lo : lo + 700]) for lo in range(0, len(keys), 700)]
    assert write_run_blocks(str(tmp_path / "b.bin"), iter(blocks)) == len(keys)
    assert (tmp_path / "a.bin").read_bytes() == (tmp_path / "b.bin").read_bytes()
    got = read_run(str(tmp_path / "b.bin"), len(keys))
    assert np.array_equal(got[0], keys) and np.array_equal(got[1], counts)
    assert sorted(os.listdir(tmp_path)) == ["a.bin", "b.bin"]  # no side file left
