"""The ``fastgram`` command: demo, count, generate, check, bench.

Each subcommand is a pair of functions, ``_add_<name>(subparsers)`` and ``_run_<name>(args)``,
listed in :data:`_COMMANDS`. Errors in the user's input print one line and exit with status 2;
failed checks exit with status 1.
"""

from __future__ import annotations

import argparse
import sys
import time


def _add_demo(sub) -> None:
    p = sub.add_parser("demo", help="the notebook's pipeline end to end, with checks and a measured speed-up")
    p.add_argument("--tokens", type=int, default=None, help="tokens in the speed-up stream (default 10^8)")
    p.add_argument("--seed", type=int, default=0)


def _run_demo(args) -> int:
    from fastgram import demo

    tokens = demo.DEMO_TOKENS if args.tokens is None else args.tokens
    if tokens < 2:
        raise ValueError(f"--tokens must be >= 2, got {tokens}")
    return 0 if demo.run(tokens=tokens, seed=args.seed) else 1


def _add_count(sub) -> None:
    p = sub.add_parser(
        "count",
        help="count the bigrams of token or text files into an .npz",
        description="Count bigrams over files (read in bounded chunks) as one stream, in the order given; "
        "a directory stands for its files in sorted order.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="files or directories of shards")
    kind = p.add_mutually_exclusive_group(required=True)
    kind.add_argument("--dtype", choices=["uint8", "uint16", "uint32"], help="raw token files of this dtype")
    kind.add_argument("--text", action="store_true", help="UTF-8 text files")
    p.add_argument(
        "--vocab",
        default="bytes",
        help="text vocabulary: 'bytes' (V = 256, default), 'chars' (the files' sorted characters) "
        "or the path of a saved vocabulary JSON",
    )
    p.add_argument("--vocab-size", type=int, default=None, help="V for token files (default: max id + 1)")
    p.add_argument("-o", "--output", required=True, help="output .npz (written atomically)")
    p.add_argument("--chunk-tokens", type=int, default=None, help="tokens (or bytes) read per chunk")
    p.add_argument("--progress", action="store_true", help="show a progress bar (needs fastgram[progress])")
    sparse = p.add_argument_group(
        "sparse n-gram counts",
        "any of these counts n-grams sparsely (sorted distinct n-grams and their counts, any V) "
        "instead of the dense bigram table",
    )
    sparse.add_argument("--order", type=int, default=None, metavar="N", help="n-gram order, 1 to 8 (default 2)")
    sparse.add_argument("--top", type=int, default=None, metavar="K", help="print the K most frequent n-grams")
    sparse.add_argument("--min-count", type=int, default=None, metavar="C", help="keep n-grams seen at least C times")
    sparse.add_argument(
        "--max-memory",
        default=None,
        metavar="SIZE",
        help="working-set budget, e.g. 512M or 2G; sorted runs beyond it spill to a temporary directory",
    )
    sparse.add_argument(
        "--separator", type=int, default=None, metavar="ID", help="document-boundary id (also put between files)"
    )


def _wants_ngrams(args) -> bool:
    return any(v is not None for v in (args.order, args.top, args.min_count, args.max_memory, args.separator))


def _run_count_ngrams(args, paths, vocab, vocab_size, options) -> int:
    from fastgram.ngrams import count_files

    if args.order is not None and not 1 <= args.order <= 8:
        raise ValueError(f"--order must be between 1 and 8, got {args.order}")
    if args.top is not None and args.top < 0:
        raise ValueError(f"--top must be >= 0, got {args.top}")
    if args.min_count is not None and args.min_count < 1:
        raise ValueError(f"--min-count must be >= 1, got {args.min_count}")
    if args.max_memory is not None:
        from fastgram.ngrams import parse_memory

        parse_memory(args.max_memory, "--max-memory")
    start = time.perf_counter()
    counts = count_files(
        paths,
        2 if args.order is None else args.order,
        dtype=args.dtype,
        text=args.text,
        vocab=vocab,
        vocab_size=vocab_size,
        separator=args.separator,
        min_count=1 if args.min_count is None else args.min_count,
        max_memory=args.max_memory,
        progress=args.progress,
        **options,
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


def _run_count(args) -> int:
    from fastgram import corpus
    from fastgram.counting import BigramCounter
    from fastgram.vocab import Vocab

    paths = corpus.expand_paths(args.paths)
    vocab = None
    if args.text:
        if args.vocab == "bytes":
            vocab = Vocab.bytes()
        elif args.vocab == "chars":
            vocab = corpus.scan_vocab(paths)
        else:
            vocab = Vocab.load(args.vocab)
    elif args.vocab != "bytes":
        raise ValueError("--vocab applies to --text files only")
    options = {} if args.chunk_tokens is None else {"chunk_tokens": args.chunk_tokens}
    vocab_size = args.vocab_size
    if args.dtype and vocab_size is None:
        vocab_size = max(corpus.scan_max(path, args.dtype) for path in paths) + 1
    if _wants_ngrams(args):
        return _run_count_ngrams(args, paths, vocab, vocab_size, options)
    counter = BigramCounter(max(1, vocab_size or len(vocab)), vocab=vocab)
    start = time.perf_counter()
    for path in paths:
        corpus.count_file(
            path, dtype=args.dtype, text=args.text, vocab=vocab, counter=counter, progress=args.progress, **options
        )
    elapsed = time.perf_counter() - start
    counter.save(args.output)
    rate = counter.tokens / elapsed / 1e6 if elapsed > 0 else float("inf")
    print(
        f"counted {counter.tokens:,} tokens from {len(paths)} file(s), V = {counter.vocab_size:,}, "
        f"in {elapsed:.2f} s ({rate:,.1f} M tokens/s) -> {args.output}"
    )
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
    import json

    from fastgram import bench

    if args.from_json:
        with open(args.from_json) as f:
            data = json.load(f)
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
    from fastgram.check import check

    return 0 if check(args.names or None, seed=args.seed) else 1


def _add_generate(sub) -> None:
    p = sub.add_parser(
        "generate",
        help="generate text from bigram counts saved by `fastgram count`",
        description="Draw Markov chains from a counts .npz (saved by `fastgram count`) and decode them with "
        "the vocabulary saved beside the counts (token ids are printed when there is none). Each chain "
        "starts from --start's last token, or from a token drawn by how often each token is followed by "
        "another. Tokens never followed by anything continue from the overall next-token frequencies.",
    )
    p.add_argument("counts", metavar="COUNTS.npz", help="counts written by `fastgram count`")
    p.add_argument("-n", "--num", type=int, default=5, help="number of samples (default 5)")
    p.add_argument("--length", type=int, default=200, help="tokens drawn per sample (default 200)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0); same seed, same text")
    p.add_argument("--temperature", type=float, default=1.0, help="0 = greedy, 1 = the counts as they are (default)")
    p.add_argument(
        "--smoothing", type=float, default=0.0, help="add-k smoothing of the counts (default 0: exact counts)"
    )
    p.add_argument("--start", default=None, help="prompt text (needs a saved vocabulary); chains continue it")


def _run_generate(args) -> int:
    import numpy as np

    from fastgram import sampling
    from fastgram.counting import BigramCounter

    counter = BigramCounter.load(args.counts)
    counts = np.array(counter.counts)
    n = args.num
    if n < 1:
        raise ValueError(f"-n must be >= 1, got {n}")
    followers = counts.sum(axis=1)
    if not followers.any():
        raise ValueError(f"{args.counts}: the counts are all zero; nothing to generate from")
    counts[followers == 0] = counts.sum(axis=0)  # a token never followed: use overall frequencies
    table = counts if args.smoothing == 0 else sampling.bigram_probs(counts, args.smoothing)
    vocab = counter.vocab
    if args.start is not None:
        if vocab is None:
            raise ValueError("--start needs a vocabulary saved with the counts (count --text files)")
        prompt = np.asarray(vocab.encode(args.start)).reshape(-1)
        if prompt.size == 0:
            raise ValueError("--start must not be empty")
        starts = np.full(n, int(prompt[-1]), np.int64)
    else:
        prompt = None
        # start tokens: stream n (chains use streams 0 .. n - 1)
        starts = sampling.multinomial(followers.astype(np.float64), n, seed=args.seed, offset=n)
    tokens = sampling.generate(table, starts, args.length, args.seed, temperature=args.temperature)
    for i in range(n):
        ids = tokens[i] if prompt is not None else np.concatenate([starts[i : i + 1], tokens[i]])
        if vocab is None:
            text = " ".join(str(int(t)) for t in ids)
        else:
            text = (args.start if prompt is not None else "") + vocab.decode(ids)
        if n > 1:
            print(f"--- sample {i + 1} ---")
        print(text)
    return 0


_COMMANDS = {
    "demo": (_add_demo, _run_demo),
    "count": (_add_count, _run_count),
    "generate": (_add_generate, _run_generate),
    "check": (_add_check, _run_check),
    "bench": (_add_bench, _run_bench),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastgram",
        description="Numba-jitted kernels for tiny language models: counting, sampling, attention.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add, _ in _COMMANDS.values():
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``fastgram`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _, run = _COMMANDS[args.command]
    try:
        return run(args)
    except (ValueError, TypeError, OSError, ModuleNotFoundError, RuntimeError) as exc:
        print(f"fastgram {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"fastgram {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
