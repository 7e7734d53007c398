"""The ``alignfreeze`` command line. Each sub-command lives in ``alignfreeze/commands/``
and registers itself with :func:`register`; :func:`main` is callable in-process
(``main(["data", "stats", "x.conllu"])``) and returns the exit code."""

from __future__ import annotations

import argparse
import importlib
import sys

# one module per area, so that parallel work on the CLI never touches the same file
COMMAND_MODULES = ("data", "features", "models", "realign", "finetune", "probe", "analysis", "demo", "midalign")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="alignfreeze",
        description="Realign multilingual models with freezing, and see what happens inside them.",
    )
    parser.add_argument("--traceback", action="store_true", help="show the full traceback on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"alignfreeze.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, KeyError, ImportError, RuntimeError) as e:
        # input errors (malformed files, unknown layers, missing extras) are messages, not crashes
        if args.traceback:
            raise
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        print(f"alignfreeze: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
