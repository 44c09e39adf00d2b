"""The ``fastgram`` command: demo, count, lm, score, generate, check, bench.

Each subcommand is a pair of functions, ``_add_<name>(subparsers)`` and ``_run_<name>(args)``,
listed in :data:`_COMMANDS`. Errors in the user's input print one line and exit with status 2;
failed checks exit with status 1.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import shutil
import sys
import tempfile
import time

import numpy as np

from fastgram import __version__, _checks, _io, distributed, files, sampling
from fastgram.app import bench, demo
from fastgram.app import compile as _compile
from fastgram.counting import BigramCounter, NGramCounts
from fastgram.lm import NGramLM, estimate_to_arpa, sentence_words
from fastgram.registry import check
from fastgram.vocab import Vocab


def _add_demo(sub) -> None:
    p = sub.add_parser("demo", help="the notebook's pipeline end to end, with checks and a measured speed-up")
    p.add_argument("--tokens", type=int, default=None, help="tokens in the speed-up stream (default 2*10^7)")
    p.add_argument("--seed", type=int, default=0)


def _run_demo(args) -> int:
    tokens = demo.DEMO_TOKENS if args.tokens is None else args.tokens
    if tokens < 2:
        raise ValueError(f"--tokens must be >= 2, got {tokens}")
    _warm_up("demo")
    return 0 if demo.run(tokens=tokens, seed=args.seed) else 1


def _add_count(sub) -> None:
    p = sub.add_parser(
        "count",
        help="count the n-grams of token or text files into an .npz",
        description="Count n-grams (bigrams by default) over files read in bounded chunks, as one stream in the "
        "order given; a directory stands for its files in sorted order. The result is the sorted distinct "
        "n-grams and their exact counts (any vocabulary), saved with the text vocabulary; see the README for "
        "the .npz fields.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="files, directories of shards or glob patterns")
    kind = p.add_mutually_exclusive_group(required=True)
    kind.add_argument("--dtype", choices=list(_io.TOKEN_DTYPES), help="raw token files of this dtype")
    kind.add_argument("--text", action="store_true", help="UTF-8 text files")
    p.add_argument(
        "--vocab",
        default="bytes",
        help="text vocabulary: 'bytes' (V = 256, default), 'chars' (the files' sorted characters) "
        "or the path of a saved vocabulary JSON",
    )
    p.add_argument("--vocab-size", type=int, default=None, help="V for token files (default: max id + 1)")
    dest = p.add_mutually_exclusive_group(required=True)
    dest.add_argument("-o", "--output", help="output .npz (written atomically)")
    dest.add_argument(
        "--out-dir",
        metavar="DIR",
        help="write a partitioned n-gram store (NGramStore) into this new or empty directory instead; "
        "the counts need not fit in memory",
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="count on the running Dask cluster at ADDRESS (e.g. tcp://host:8786); needs --out-dir on a "
        "filesystem the workers share and fastgram[dask]",
    )
    where.add_argument(
        "--workers", type=int, metavar="K", help="count on a new local Dask cluster of K worker processes (--out-dir)"
    )
    p.add_argument("--order", type=int, default=2, metavar="N", help="n-gram order, 1 to 8 (default 2)")
    p.add_argument("--top", type=int, default=0, metavar="K", help="print the K most frequent n-grams")
    p.add_argument("--min-count", type=int, default=1, metavar="C", help="keep n-grams seen at least C times")
    p.add_argument(
        "--max-memory",
        default=None,
        metavar="SIZE",
        help="working-set budget, e.g. 512M or 2G; sorted runs beyond it spill to a temporary directory",
    )
    p.add_argument("--tmp-dir", default=None, metavar="DIR", help="where spilled runs go (default: the system's)")
    p.add_argument(
        "--separator", type=int, default=None, metavar="ID", help="document-boundary id (also put between files)"
    )
    p.add_argument("--chunk-tokens", type=int, default=_io.CHUNK_TOKENS, help="tokens (or bytes) read per chunk")
    p.add_argument("--progress", action="store_true", help="show a progress bar (needs fastgram[progress])")


def _text_vocab(args, paths) -> Vocab | None:
    if not args.text:
        if args.vocab != "bytes":
            raise ValueError("--vocab applies to --text files only")
        return None
    if args.vocab == "bytes":
        return Vocab.bytes()
    if args.vocab == "chars":
        return files.scan_vocab(paths)
    return Vocab.load(args.vocab)


def _run_count(args) -> int:
    _checks.check_order(args.order, "--order")
    _checks.require_int(args.top, "--top", min=0)
    args.min_count = _checks.require_min_count(args.min_count, "--min-count")
    _checks.require_int(args.chunk_tokens, "--chunk-tokens", min=1)
    _io.parse_memory(args.max_memory, "--max-memory")
    if args.vocab_size is not None:
        _checks.check_vocab_size(args.vocab_size, "--vocab-size")
    paths = _io.expand_paths(args.paths, "PATH")
    _check_tmp_dir(args)
    if args.dtype is not None and args.vocab_size is None and args.out_dir is None:
        streams = [p for p in paths if _io.file_size(p) is None]
        if streams:  # V would need a first pass over the tokens
            raise ValueError(f"{streams[0]}: a FIFO or stream can be read only once; give --vocab-size")
    vocab = _text_vocab(args, paths)
    if args.out_dir is not None:
        return _count_to_store(args, paths, vocab)
    if args.scheduler is not None or args.workers is not None:
        raise ValueError("--scheduler and --workers need --out-dir DIR (a directory every worker can write)")
    _io.check_output(args.output, paths)
    start = time.perf_counter()
    counts = files.count_files(
        paths,
        args.order,
        dtype=args.dtype,
        text=args.text,
        vocab=vocab,
        vocab_size=args.vocab_size,
        separator=args.separator,
        min_count=args.min_count,
        max_memory=args.max_memory,
        tmp_dir=args.tmp_dir,
        chunk_tokens=args.chunk_tokens,
        progress=args.progress,
    )
    elapsed = time.perf_counter() - start
    counts.save(args.output)
    rate = counts.tokens / elapsed / 1e6 if elapsed > 0 else float("inf")
    print(
        f"counted {counts.tokens:,} tokens from {len(paths)} file(s), V = {counts.vocab_size:,}: "
        f"{len(counts):,} distinct {counts.n}-grams in {elapsed:.2f} s ({rate:,.1f} M tokens/s) -> {args.output}"
    )
    if args.top:
        ngrams, top = counts.top(args.top)
        for row, c in zip(ngrams, top):
            shown = repr(vocab.decode(row)) if vocab is not None and not vocab.byte_level else " ".join(map(str, row))
            print(f"{c:>12,}  {shown}")
    return 0


def _check_tmp_dir(args) -> None:
    """``--tmp-dir``, checked before the work with the flag's name."""
    if args.tmp_dir is not None and not os.path.isdir(args.tmp_dir):
        raise FileNotFoundError(f"--tmp-dir {args.tmp_dir} is not a directory")


def _count_to_store(args, paths, vocab) -> int:
    """``fastgram count --out-dir``: in this process, or on Dask (``--scheduler``/``--workers``)."""
    out = args.out_dir
    if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)):
        raise FileExistsError(f"--out-dir {out} is not an empty directory; a store is written into a new or empty one")
    if not os.path.isdir(os.path.dirname(os.path.abspath(out))):
        raise FileNotFoundError(f"--out-dir {out}: its parent directory does not exist")
    if args.workers is not None:
        _checks.require_int(args.workers, "--workers", min=1, max=distributed.MAX_LOCAL_WORKERS)
    options = dict(
        dtype=args.dtype, text=args.text, vocab=vocab, vocab_size=args.vocab_size, separator=args.separator,
        min_count=args.min_count, max_memory=args.max_memory, chunk_tokens=args.chunk_tokens,
        progress=args.progress, out=args.out_dir, tmp_dir=args.tmp_dir,
    )  # fmt: skip
    start = time.perf_counter()
    if args.scheduler is None and args.workers is None:
        store = files.count_files(paths, args.order, **options)
    else:
        with distributed.dask_client(args.scheduler, args.workers) as client:
            store = files.count_files(paths, args.order, client=client, **options)
    elapsed = time.perf_counter() - start
    rate = store.tokens / elapsed / 1e6 if elapsed > 0 else float("inf")
    print(
        f"counted {store.tokens:,} tokens from {len(paths)} file(s), V = {store.vocab_size:,}: "
        f"{len(store):,} distinct {store.n}-grams in {len(store.partitions)} partitions in {elapsed:.2f} s "
        f"({rate:,.1f} M tokens/s) -> {args.out_dir}"
    )
    if args.top:
        ngrams, top = store.top(args.top)
        for row, c in zip(ngrams, top):
            shown = repr(vocab.decode(row)) if vocab is not None and not vocab.byte_level else " ".join(map(str, row))
            print(f"{c:>12,}  {shown}")
    return 0


def _add_bench(sub) -> None:
    p = sub.add_parser("bench", help="run the benchmark suites and print the speed-up table")
    p.add_argument("-k", dest="select", default=None, help="pytest -k expression, e.g. 'counting'")
    p.add_argument("--dir", default=None, help="folder of the suites (default: benchmarks/ of this clone)")
    p.add_argument("--json", default=None, help="keep pytest-benchmark's JSON here")
    p.add_argument("--from-json", default=None, help="print the table of an earlier --json file instead of running")
    p.add_argument("--png", default=None, help="also save a bar chart of the speed-ups (needs fastgram[plot])")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    p.add_argument("--smoke", action="store_true", help="tiny sizes: check the suites run (times mean nothing)")


def _run_bench(args) -> int:
    if args.from_json:
        data = bench.load_results(_io.check_path(args.from_json))
    else:
        data = bench.run_benchmarks(args.dir, select=args.select, json_path=args.json, smoke=args.smoke)
    rows = bench.speedup_rows(data)
    print(bench.machine_line(data))
    print(bench.format_speedups(rows, markdown=args.markdown))
    if args.png:
        bench.save_chart(rows, args.png)
        print(f"chart -> {args.png}")
    return 0


def _add_check(sub) -> None:
    p = sub.add_parser("check", help="check every kernel against its NumPy reference")
    p.add_argument("names", nargs="*", help="kernels or families to check (default: all)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default 0)")


def _run_check(args) -> int:
    _warm_up("check", args.names or None)
    return 0 if check(args.names or None, seed=args.seed) else 1


def _add_corpus_kind(p, *, required: bool) -> None:
    """--words/--text (word text, one sentence per line) or --dtype with --separator."""
    kind = p.add_mutually_exclusive_group(required=required)
    kind.add_argument(
        "--words",
        "--text",
        dest="words",
        action="store_true",
        help="text, one sentence per line, words split at spaces, tabs, CR and NUL; read as bytes, UTF-8 not "
        "checked (lmplz's convention; default)",
    )
    kind.add_argument("--dtype", choices=list(_io.TOKEN_DTYPES), help="raw token files of this dtype")
    p.add_argument(
        "--separator",
        type=int,
        default=None,
        metavar="ID",
        help="with --dtype: the sentence-boundary id (e.g. GPT-2's 50256); also put between files (unless "
        "a file already ends with it)",
    )
    p.add_argument(
        "--skip-symbols",
        action="store_true",
        help="text: treat the words <s>, </s> and <unk> as whitespace (lmplz's --skip_symbols; without it "
        "they are an error)",
    )


def _check_corpus_kind(args) -> None:
    """The options of :func:`_add_corpus_kind` that apply to one kind of file only."""
    if args.dtype is None and args.separator is not None:
        raise ValueError("--separator applies to --dtype token files; text sentences end at newlines")
    if args.dtype is not None and args.skip_symbols:
        raise ValueError("--skip-symbols applies to text; token files have no words to skip")


def _add_lm(sub) -> None:
    p = sub.add_parser(
        "lm",
        help="estimate a modified Kneser-Ney n-gram language model (as KenLM's lmplz) into ARPA or .npz",
        description="Estimate an interpolated modified Kneser-Ney language model exactly as KenLM's lmplz: "
        "one sentence per line of text (or token files split at --separator), <s> and </s> around each "
        "sentence, <unk> in the vocabulary. The output is ARPA when its name ends in .arpa, else fastgram's "
        "binary .npz (fast to load); both are written atomically. An ARPA file is written order by order as "
        "the estimate finishes them, so the model is never held whole; the counted n-grams wait in scratch "
        "files under --tmp-dir between passes.",
    )
    p.add_argument("paths", nargs="+", metavar="FILE", help="text or token files (or directories, glob patterns)")
    p.add_argument("--order", type=int, required=True, metavar="N", help="model order, 1 to 8 (e.g. 5)")
    p.add_argument("-o", "--output", required=True, help="model.arpa (ARPA) or model.npz (binary)")
    _add_corpus_kind(p, required=False)
    p.add_argument("--prune", type=int, nargs="+", default=None, metavar="C",
                   help="lmplz's --prune: drop n-grams of order n seen at most C_n times (non-decreasing)")  # fmt: skip
    p.add_argument("--discount-fallback", type=float, nargs="*", default=None, metavar="D",
                   help="discounts for orders whose estimated ones are invalid (default 0.5 1 1.5)")  # fmt: skip
    p.add_argument(
        "--max-memory",
        default=None,
        metavar="SIZE",
        help="counting budget, e.g. 512M (spills beyond it; default 2G or a quarter of the memory, the smaller)",
    )
    p.add_argument(
        "--tmp-dir",
        default=None,
        metavar="DIR",
        help="where spilled runs and the counted n-grams' scratch files go (default: the system's)",
    )
    p.add_argument("--progress", action="store_true", help="print each stage and its time to stderr")


def _model_options(args) -> dict:
    fallback = args.discount_fallback
    if fallback is not None:
        if len(fallback) > 3:
            raise ValueError(f"--discount-fallback takes 1 to 3 discounts (counts 1, 2 and 3+), got {len(fallback)}")
        fallback = True if len(fallback) == 0 else fallback
    _io.parse_memory(args.max_memory, "--max-memory")
    return {"prune": args.prune, "discount_fallback": fallback, "max_memory": args.max_memory, "tmp_dir": args.tmp_dir}


def _run_lm(args) -> int:
    _checks.check_order(args.order, "--order")
    _check_corpus_kind(args)
    paths = _io.expand_paths(args.paths, "FILE")
    _io.check_output(args.output, paths)
    _check_tmp_dir(args)
    start = time.perf_counter()
    stage = _Stages(args.progress)
    arpa = args.output.lower().endswith(".arpa")
    stage("estimating and writing" if arpa else "estimating")
    options = _model_options(args)
    if args.dtype is None:
        options["skip_symbols"] = args.skip_symbols
    kind = dict(dtype=args.dtype, separator=args.separator)
    if arpa:  # each order written as it is finished: the model is never held whole
        model_sizes = estimate_to_arpa(paths, args.order, args.output, **kind, **options)
    else:
        model = NGramLM.estimate_files(paths, args.order, **kind, **options)
        stage("writing")
        model.save(args.output)
        model_sizes = model.sizes
    stage(None)
    sizes = ", ".join(f"{n + 1}-grams {m:,}" for n, m in enumerate(model_sizes))
    print(f"order {args.order} model of {model_sizes[0]:,} words ({sizes}) in {time.perf_counter() - start:.2f} s "
          f"-> {args.output}")  # fmt: skip
    return 0


class _Stages:
    """``--progress`` for the language-model commands: each stage and its time, on stderr."""

    def __init__(self, enabled: bool):
        self.enabled, self.name, self.t0 = enabled, None, time.perf_counter()

    def __call__(self, name: str | None) -> None:
        now = time.perf_counter()
        if self.enabled and self.name is not None:
            print(f"{self.name}: {now - self.t0:.2f} s", file=sys.stderr)
        self.name, self.t0 = name, now


def _load_model(path: str) -> NGramLM:
    """An ARPA file or a model saved by ``fastgram lm -o model.npz``."""
    path = _io.check_path(path)
    with open(path, "rb") as f:
        head = f.read(4)
    return NGramLM.load(path) if head == b"PK\x03\x04" else NGramLM.read_arpa(path)


def _add_score(sub) -> None:
    p = sub.add_parser(
        "score",
        help="perplexity of text under a model, as KenLM's query prints it",
        description="Score every sentence of the files (</s> included) under an ARPA or .npz model and print "
        "KenLM query's summary: perplexity including and excluding OOVs, the OOV count and the token count; "
        "with -v, query's lines for each sentence or word too.",
    )
    p.add_argument("model", metavar="MODEL", help="model.arpa or model.npz")
    p.add_argument("paths", nargs="+", metavar="FILE", help="text or token files")
    _add_corpus_kind(p, required=False)
    p.add_argument(
        "-v",
        "--verbosity",
        action="append",
        choices=("summary", "sentence", "word"),
        metavar="LEVEL",
        help="what to print (repeatable): 'summary' (the default), 'sentence' (a line 'Total: <log10> OOV: "
        "<n>' for each sentence, as query -v sentence), 'word' (each token as 'word=id ngram_length log10' "
        "before its sentence's total, as query prints by default)",
    )


#: Lines of per-sentence output written to stdout at a time.
SCORE_LINES_PER_WRITE = 4096


def _run_score(args) -> int:
    model = _load_model(args.model)
    paths = _io.expand_paths(args.paths, "FILE")
    _check_corpus_kind(args)
    levels = set(args.verbosity or ["summary"])
    level = "word" if "word" in levels else "sentence" if "sentence" in levels else None
    kind = dict(dtype=args.dtype, separator=args.separator, skip_symbols=args.skip_symbols)
    with tempfile.TemporaryDirectory(prefix="fastgram-score-") as spool:
        if level == "word":  # the words are read again after scoring: a stream is kept in a file
            paths = [p if _io.file_size(p) is not None else _spooled(p, spool, i) for i, p in enumerate(paths)]
        scores = model.score_files(paths, **kind)
        if level is not None:
            words = sentence_words(paths, **kind) if level == "word" else None
            block = []
            for line in scores.query_lines(level, words):
                block.append(line)
                if len(block) == SCORE_LINES_PER_WRITE:
                    sys.stdout.write("".join(block))
                    block = []
            sys.stdout.write("".join(block))
    if "summary" in levels:
        sys.stdout.write(scores.summary_text())
    return 0


def _spooled(path: str, directory: str, i: int) -> str:
    """A copy of the stream ``path`` (e.g. /dev/stdin) in ``directory``, to be read twice."""
    copy = os.path.join(directory, f"{i}.in")
    with open(path, "rb") as src, open(copy, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    return copy


def _add_generate(sub) -> None:
    p = sub.add_parser(
        "generate",
        help="generate text from a language model or from bigram counts",
        description="From a language model (ARPA, or .npz written by `fastgram lm`): sample sentences from "
        "the interpolated distribution, one per line, words separated by single spaces, each ending where "
        "</s> is drawn or after --length words. From bigram counts (.npz written by `fastgram count`, order "
        "2): draw Markov chains of --length tokens, decoded with the vocabulary saved with the counts (token "
        "ids separated by spaces when there is none); a newline inside a sample is printed as a space. Each "
        "chain starts from --start's last token, or from a token drawn by how often each token is followed "
        "by another; tokens never followed by anything continue from the overall next-token frequencies. "
        "Nothing but the samples goes to stdout; the same seed gives the same text.",
    )
    p.add_argument("counts", metavar="MODEL", help="model.arpa / model.npz, or counts.npz from `fastgram count`")
    p.add_argument("-n", "--num", type=int, default=5, help="number of samples (default 5)")
    p.add_argument("--length", type=int, default=200, help="tokens drawn per sample (default 200)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0); same seed, same text")
    p.add_argument("--temperature", type=float, default=1.0, help="0 = greedy, 1 = the counts as they are (default)")
    p.add_argument(
        "--smoothing", type=float, default=0.0, help="add-k smoothing of the counts (default 0: exact counts)"
    )
    p.add_argument("--start", default=None, help="prompt text (needs a saved vocabulary); chains continue it")


def _load_counts(path: str) -> NGramCounts:
    """Bigram counts from a file of `fastgram count` (or of ``BigramCounter.save``)."""
    path = _io.check_path(path)
    fields = _io.read_npz(path, set(), {"kind"})
    kind = str(fields["kind"]) if "kind" in fields else "bigrams"
    if kind == "bigrams":
        counter = BigramCounter.load(path)
        return NGramCounts.from_dense(counter.counts, tokens=counter.tokens, vocab=counter.vocab)
    counts = NGramCounts.load(path)
    if counts.n != 2:
        raise ValueError(
            f"{path}: holds {counts.n}-gram counts; generate draws from bigram counts (fastgram count --order 2)"
        )
    return counts


def _dead_ends_filled(counts: NGramCounts) -> NGramCounts:
    """Counts where every token that occurs but is never followed continues like the corpus does."""
    V = counts.vocab_size
    rows = (counts.keys // np.uint64(V)).astype(np.int64)
    cols = (counts.keys % np.uint64(V)).astype(np.int64)
    followed = np.bincount(rows, weights=None, minlength=V) > 0
    column_totals = np.bincount(cols, weights=counts.counts, minlength=V).astype(np.int64)
    dead = np.flatnonzero(~followed & (column_totals > 0))
    if dead.size == 0:
        return counts
    targets = np.flatnonzero(column_totals)
    if dead.size * targets.size > 50_000_000:
        raise ValueError(f"{dead.size:,} tokens are never followed by another; count with a separator-free corpus")
    extra_keys = (dead[:, None].astype(np.uint64) * np.uint64(V) + targets[None, :].astype(np.uint64)).ravel()
    extra = NGramCounts(extra_keys, np.tile(column_totals[targets], dead.size), 2, V, separator=counts.separator)
    return counts.merge(extra)


def _is_counts_file(path: str) -> bool:
    """Whether ``path`` holds counts (of `fastgram count`) rather than a language model."""
    with open(path, "rb") as f:
        if f.read(4) != b"PK\x03\x04":
            return False  # an ARPA file
    fields = _io.read_npz(path, set(), {"kind", "format"})
    return "kind" in fields or "format" not in fields


def _run_generate(args) -> int:
    n = _checks.require_int(args.num, "-n", min=1)
    length = _checks.require_int(args.length, "--length", min=0)
    seed = _checks.require_int(args.seed, "--seed", min=0, max=2**64 - 1)
    path = _io.check_path(args.counts)
    if not _is_counts_file(path):
        if args.start is not None or args.smoothing:
            raise ValueError("--start and --smoothing apply to bigram counts, not to language models")
        model = _load_model(path)
        if length == 0:
            return 0
        for sentence in model.generate(n, length, seed=seed, temperature=args.temperature):
            print(" ".join(map(str, sentence)))
        return 0
    counts = _load_counts(path)
    if not len(counts):
        raise ValueError(f"{args.counts}: the counts are all zero; nothing to generate from")
    if length == 0:
        return 0
    vocab = counts.vocab
    counts = _dead_ends_filled(counts)
    V = counts.vocab_size
    # add-k smoothing needs the dense table (bigram_probs says so over its budget)
    table = sampling.bigram_probs(counts, args.smoothing) if args.smoothing else counts
    sampler = sampling.Sampler(table)
    rows = (counts.keys // np.uint64(V)).astype(np.int64)
    followers = np.bincount(rows, weights=counts.counts, minlength=V)
    if args.start is not None:
        if vocab is None:
            raise ValueError("--start needs a vocabulary saved with the counts (count --text files)")
        try:
            prompt = np.asarray(vocab.encode(args.start)).reshape(-1)
        except ValueError as exc:
            raise ValueError(f"--start: {exc}") from None
        if prompt.size == 0:
            raise ValueError("--start must not be empty")
        last = int(prompt[-1])
        if followers[last] == 0 and not args.smoothing:
            token = f"byte 0x{last:02X}" if vocab.byte_level else repr(vocab.decode([last]))
            raise ValueError(
                f"--start: its last token ({token}) never occurs in the counts, so nothing follows it; end "
                "--start with one that does, or pass --smoothing K"
            )
        starts = np.full(n, last, np.int64)
    else:
        prompt = None
        # start tokens: stream n (chains use streams 0 .. n - 1)
        starts = sampling.multinomial(followers.astype(np.float64), n, seed=seed, offset=n)
    tokens = sampling.generate(sampler, starts, length, seed=seed, temperature=args.temperature)
    for i in range(n):
        ids = tokens[i] if prompt is not None else np.concatenate([starts[i : i + 1], tokens[i]])[:length]
        if vocab is None:
            text = " ".join(str(int(t)) for t in ids)
        else:
            text = (args.start if prompt is not None else "") + vocab.decode(ids)
        print(text.translate(_ONE_LINE))
    return 0


#: Characters that end a line for some readers (str.splitlines), written as spaces so that each
#: generated chain is one line of output.
_ONE_LINE = str.maketrans(dict.fromkeys("\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029", " "))


def _warm_up(command: str, names=None) -> None:
    """On a cold kernel cache, compile what ``command`` needs in parallel processes first."""
    try:
        tasks = _compile.select_tasks(names, command=command)
    except ValueError:
        return  # unknown names: the command reports them in its own words
    _compile.warm_up_if_cold(tasks)


def _add_compile(sub) -> None:
    p = sub.add_parser(
        "compile",
        help="compile the kernels into Numba's on-disk cache ahead of time, in parallel processes",
        description="Fill the kernel cache (NUMBA_CACHE_DIR, or __pycache__ beside the kernels) so that later "
        "commands start at once: every kernel for every dtype it is used with, in parallel processes. "
        "Progress goes to stderr.",
    )
    p.add_argument("names", nargs="*", help="kernels, families or tasks to compile (default: all)")
    p.add_argument("-j", "--jobs", type=int, default=None, help="parallel processes (default: the CPUs)")


def _run_compile(args) -> int:
    if args.jobs is not None:
        _checks.require_int(args.jobs, "--jobs", min=1)
    return 0 if _compile.run_compile(args.names or None, jobs=args.jobs) else 1


_COMMANDS = {
    "demo": (_add_demo, _run_demo),
    "count": (_add_count, _run_count),
    "lm": (_add_lm, _run_lm),
    "score": (_add_score, _run_score),
    "generate": (_add_generate, _run_generate),
    "check": (_add_check, _run_check),
    "bench": (_add_bench, _run_bench),
    "compile": (_add_compile, _run_compile),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastgram",
        description="Numba-jitted kernels for tiny language models: counting, sampling, attention.",
    )
    parser.add_argument("--version", action="version", version=f"fastgram {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add, _ in _COMMANDS.values():
        add(sub)
    return parser


#: Commands that read a model once in a short-lived process (see :func:`_small_pages`).
_MODEL_COMMANDS = frozenset({"score", "generate"})


def _small_pages() -> None:
    """Stop NumPy advising transparent huge pages for new arrays in this process (unless the
    user set ``NUMPY_MADVISE_HUGEPAGE``). Reading a model fills hundreds of MB once, and on
    machines where the kernel compacts memory to find huge pages a first touch of them costs
    several times more than their fewer TLB misses save in one pass (measured: 0.34-0.62 s
    against 0.08-0.11 s per 256 MiB; ``fastgram score`` of a 353 MB ARPA file 4.2-4.7 s against
    3.5-3.6 s, ``fastgram generate`` from it 7.5-8.0 s against 6.5-6.9 s). Counting keeps them:
    its tables are updated at random for as long as the input lasts (bigrams of 10^8 tokens
    2.1-2.6 s with huge pages, 2.8-3.0 s without), and estimation measured the same either way."""
    if "NUMPY_MADVISE_HUGEPAGE" in os.environ:
        return
    setter = getattr(getattr(np, "_core", None), "multiarray", None)
    setter = getattr(setter, "_set_madvise_hugepage", None)
    if setter is not None:
        setter(False)


#: glibc's ``mallopt`` parameter number of ``M_MMAP_THRESHOLD`` (malloc.h).
_M_MMAP_THRESHOLD = -3


def _return_freed_memory() -> None:
    """Have glibc's malloc give every block of 1 MiB or more its own mapping, so that the arrays
    estimation frees stage by stage go back to the system at once. By default the threshold
    rises with each large block freed (up to 32 MiB) and the arrays below it are carved from
    the heap, which keeps the freed space: ``fastgram lm`` of the 50 MB corpus peaked at
    759 MB against 660 MB with it, in the same time. Nothing happens where the C library has
    no ``mallopt`` or the user set ``MALLOC_MMAP_THRESHOLD_``."""
    if "MALLOC_MMAP_THRESHOLD_" in os.environ or not sys.platform.startswith("linux"):
        return
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # pragma: no cover - a C library without mallopt
        return
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt(_M_MMAP_THRESHOLD, 1 << 20)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``fastgram`` command; returns the exit status."""
    if hasattr(sys.stdout, "reconfigure"):  # words that are not UTF-8 are written as their bytes
        sys.stdout.reconfigure(errors="surrogateescape")
    parser = build_parser()
    args = parser.parse_args(argv)
    _, run = _COMMANDS[args.command]
    if args.command in _MODEL_COMMANDS:
        _small_pages()
    if args.command == "lm":
        _return_freed_memory()
    try:
        with _io.sigterm_as_exception(redeliver=False), _compile.compile_notice():
            return run(args)
    except BrokenPipeError:  # stdout closed early (`fastgram generate ... | head -1`): quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 141
    except (ValueError, TypeError, OSError, ModuleNotFoundError, RuntimeError) as exc:
        print(f"fastgram {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except MemoryError:
        print(f"fastgram {args.command}: error: out of memory (see --max-memory, or a smaller input)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"fastgram {args.command}: interrupted", file=sys.stderr)
        return 130
    except _io.Terminated:
        print(f"fastgram {args.command}: terminated", file=sys.stderr)
        return 143


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
