"""The ``fastgram`` command: demo, count, generate, check, bench.

Each subcommand is a pair of functions, ``_add_<name>(subparsers)`` and ``_run_<name>(args)``,
listed in :data:`_COMMANDS`. Errors in the user's input print one line and exit with status 2;
failed checks exit with status 1.
"""

from __future__ import annotations

import argparse
import sys


def _add_check(sub) -> None:
    p = sub.add_parser("check", help="check every kernel against its NumPy reference")
    p.add_argument("names", nargs="*", help="kernels or families to check (default: all)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default 0)")


def _run_check(args) -> int:
    from fastgram.check import check

    return 0 if check(args.names or None, seed=args.seed) else 1


_COMMANDS = {
    "check": (_add_check, _run_check),
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
    except (ValueError, TypeError, FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        print(f"fastgram {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"fastgram {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
