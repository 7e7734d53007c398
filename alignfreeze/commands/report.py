"""``alignfreeze report DIR``: rebuild ``DIR/report.html`` and ``DIR/report.md`` from a demo
run or an experiment grid's out folder (nothing is recomputed but the figures)."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser(
        "report", help="rebuild report.html and report.md of a demo run or an experiment grid folder",
        description="Reads the folder's tables and manifests (a demo run: run.json and its CSV tables; an "
                    "experiment grid: results.csv, table.md, failures.json, experiment.json), draws the figures "
                    "into DIR/figures (PNG, SVG, PDF and the CSV of the numbers drawn), and writes DIR/report.html "
                    "(one self-contained page, figures embedded) and DIR/report.md, with a reading generated from "
                    "the numbers.")
    p.add_argument("folder", metavar="DIR", help="the --out folder of `alignfreeze demo` or `alignfreeze experiment`")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    from alignfreeze.report import build_report

    r = build_report(args.folder, progress=args.progress)
    print(f"{r['kind']} report: {r['html']} and {r['md']} ({len(r['figures'])} figure(s) in "
          f"{r['html'].parent / 'figures'})")
    return 0
