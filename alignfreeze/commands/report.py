"""``alignfreeze report DIR``: rebuild ``DIR/report.html`` and ``DIR/report.md`` from a demo
run or an experiment grid's out folder (nothing is recomputed but the figures)."""

from __future__ import annotations

import json
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser(
        "report", help="rebuild report.html and report.md of a demo run or an experiment grid folder",
        description="Reads the folder's tables and manifests (a demo run: run.json and its CSV tables; an "
                    "experiment grid: results.csv, table.md, failures.json, experiment.json), draws the figures "
                    "into DIR/figures (PNG, SVG, PDF and the CSV of the numbers drawn; the folder is replaced "
                    "when all are drawn), and writes DIR/report.html (one self-contained page, figures embedded) "
                    "and DIR/report.md, with a reading generated from the numbers.")
    p.add_argument("folder", metavar="DIR", help="the --out folder of `alignfreeze demo` or `alignfreeze experiment`")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.set_defaults(func=run, preflight=check_report)


def check_report(args) -> None:
    """The folder is a demo run or a grid, before anything heavy is imported."""
    from alignfreeze.preflight import InputError

    folder = Path(args.folder)
    if not folder.exists():
        raise InputError(f"{folder}: no such folder (expected the --out folder of `alignfreeze demo` or of "
                         "`alignfreeze experiment`)")
    if not folder.is_dir():
        raise InputError(f"{folder}: is a file (expected the --out folder of `alignfreeze demo` or of "
                         "`alignfreeze experiment`)")
    run = folder / "run.json"
    if run.is_file():
        try:
            kind = json.loads(run.read_text(encoding="utf-8")).get("kind")
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as e:
            raise InputError(f"{run}: not a demo run's manifest ({type(e).__name__}); expected JSON with kind demo") \
                from None
        if kind != "demo":
            raise InputError(f"{run}: kind {kind!r}; expected a demo run's manifest (kind demo)")
    elif not ((folder / "results.csv").is_file() and (folder / "cells").is_dir()):
        raise InputError(f"{folder}: neither a demo run (run.json) nor an experiment grid (results.csv and cells/); "
                         "give the --out folder of `alignfreeze demo` or of `alignfreeze experiment`")


def run(args) -> int:
    from alignfreeze.report import build_report

    r = build_report(args.folder, progress=args.progress)
    print(f"{r['kind']} report: {r['html']} and {r['md']} ({len(r['figures'])} figure(s) in "
          f"{r['html'].parent / 'figures'})")
    return 0
