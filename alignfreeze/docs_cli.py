"""``docs/cli/``: one Markdown page per sub-command, generated from the CLI's own ``--help``.

    python -m alignfreeze.docs_cli            # rewrite docs/cli/*.md
    python -m alignfreeze.docs_cli --check    # exit 1 and name the stale pages

A page holds the command's one-line summary and its ``--help`` text verbatim (formatted at
a fixed width of :data:`WIDTH` columns, so the output does not depend on the terminal);
``docs/cli/README.md`` lists them. ``tests/test_docs_cli.py`` fails when a page differs
from what the CLI prints, so a changed option cannot leave its documentation behind.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

WIDTH = 100
DOCS = Path(__file__).resolve().parents[1] / "docs" / "cli"
NOTE = ("<!-- generated from the CLI's --help by `python -m alignfreeze.docs_cli`; do not edit: "
        "tests/test_docs_cli.py fails when this page is stale -->")


def _subcommands(parser: argparse.ArgumentParser):
    """``(name, parser, one-line help)`` of each sub-parser."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for name, sub in action.choices.items():
                yield name, sub, helps.get(name, "")


def pages() -> dict[str, str]:
    """``{file name: Markdown}`` for every runnable command (``midalign scan`` ->
    ``midalign-scan.md``) and the index ``README.md``."""
    from alignfreeze.cli import build_parser

    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(WIDTH)  # argparse reads the width from here
    try:
        top = build_parser()
        entries = []
        for name, sub, line in _subcommands(top):
            children = list(_subcommands(sub))
            if not children:
                entries.append((name, sub, line))
            entries += [(f"{name} {child}", p, cline) for child, p, cline in children]
        out = {}
        for name, sub, line in entries:
            text = sub.format_help()
            out[f"{name.replace(' ', '-')}.md"] = (f"# alignfreeze {name}\n\n{NOTE}\n\n{line}\n\n"
                                                   f"```text\n{text.rstrip()}\n```\n")
        index = ["# Command line reference", "", NOTE, "",
                 "Every page is the command's own `--help`. `alignfreeze --help`:", "",
                 "```text", top.format_help().rstrip(), "```", "", "| command | what it does |", "|---|---|"]
        index += [f"| [`alignfreeze {name}`]({name.replace(' ', '-')}.md) | {line.replace('|', '/')} |"
                  for name, _, line in entries]
        out["README.md"] = "\n".join(index) + "\n"
        return out
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old


def stale(folder: Path = DOCS) -> list[str]:
    """Pages of ``folder`` that differ from :func:`pages`, are missing, or are left over."""
    want = pages()
    bad = [name for name, text in want.items()
           if not (folder / name).is_file() or (folder / name).read_text(encoding="utf-8") != text]
    extra = sorted(p.name for p in folder.glob("*.md") if p.name not in want) if folder.is_dir() else []
    return sorted(bad) + [f"{name} (no such command)" for name in extra]


def write(folder: Path = DOCS) -> list[Path]:
    from core.io import atomic_write_text

    folder.mkdir(parents=True, exist_ok=True)
    want = pages()
    for p in folder.glob("*.md"):
        if p.name not in want:
            p.unlink()
    return [atomic_write_text(folder / name, text) for name, text in want.items()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m alignfreeze.docs_cli", description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if a page is stale, write nothing")
    ap.add_argument("--out", default=str(DOCS), help="folder of the pages")
    args = ap.parse_args(argv)
    folder = Path(args.out)
    if args.check:
        bad = stale(folder)
        for name in bad:
            print(f"{folder / name.split(' ')[0]}: stale; run python -m alignfreeze.docs_cli", file=sys.stderr)
        return 1 if bad else 0
    paths = write(folder)
    print(f"wrote {len(paths)} pages in {folder}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
