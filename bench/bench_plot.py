"""Wall time of one ``alignfreeze plot KIND`` call on a small table, as a user runs it (a
fresh process: interpreter start, imports, reading, drawing, writing PNG + SVG + PDF + CSV).

Goal (issue 13): a plot call on a small table answers in a couple of seconds. Each kind is
timed twice: through the ``alignfreeze`` executable (what a user waits for, including the
CLI's own start-up) and as ``plot_from_tables`` in a bare ``python -c`` (the figure's own
cost: imports it needs, read, draw, write). Peers
measured in the same run, interleaved round by round so the machine's load hits all alike:
``python -c pass`` (the interpreter) and ``python -c "import pandas, matplotlib..."`` (the
import floor no figure can go below); ``import seaborn`` is shown for what the figures no
longer import. Medians over ``--repeats`` rounds.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import write_section  # noqa: E402
from plot_tables import TABLES  # noqa: E402

FLOOR = "import pandas, matplotlib.figure, matplotlib.backends.backend_agg"


def timed(cmd: list[str]) -> float:
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    dt = time.perf_counter() - t
    if r.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed: {r.stderr.strip()}")
    return dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--kinds", nargs="+", default=["forgetting", "retrieval", "typology"])
    args = ap.parse_args()
    py = sys.executable
    exe = str(Path(py).with_name("alignfreeze"))
    with tempfile.TemporaryDirectory() as tmp:
        cmds = {"`python -c pass`": [py, "-c", "pass"],
                "import floor: `python -c \"import pandas, matplotlib.figure\"`": [py, "-c", FLOOR],
                "`python -c \"import seaborn\"` (no longer imported)": [py, "-c", "import seaborn"]}
        rows = {}
        for kind in args.kinds:
            table = TABLES[kind]()
            inp = Path(tmp) / f"{kind}.csv"
            table.to_csv(inp, index=False)
            cmds[f"`alignfreeze plot {kind}` ({len(table)} rows)"] = [exe, "plot", kind, "--input", str(inp),
                                                                      "--out", str(Path(tmp) / "out" / kind)]
            code = (f"from analysis.plots import plot_from_tables; "
                    f"plot_from_tables({kind!r}, {str(inp)!r}, {str(Path(tmp) / 'lib' / kind)!r})")
            cmds[f"`plot_from_tables({kind!r})` in `python -c`"] = [py, "-c", code]
            rows[kind] = len(table)
        times: dict[str, list[float]] = {k: [] for k in cmds}
        timed(cmds["`python -c pass`"])  # warm the file cache once
        for r in range(args.repeats):
            names = list(cmds)
            names = names[r % len(names):] + names[: r % len(names)]  # rotate the order each round
            for name in names:
                times[name].append(timed(cmds[name]))
    med = {k: statistics.median(v) for k, v in times.items()}
    floor = med["import floor: `python -c \"import pandas, matplotlib.figure\"`"]
    lines = ["## A plot call on a small table (fresh process, PNG + SVG + PDF + CSV)", "",
             f"Median of {args.repeats} rounds; every round runs each command once, in rotating order. "
             "Tables: the test tables of `tests/plot_tables.py`.", "",
             "| command | seconds (median) | runs | ratio to the import floor |", "|---|---:|---|---:|"]
    for k, m in med.items():
        runs = ", ".join(f"{t:.2f}" for t in times[k])
        lines.append(f"| {k} | {m:.2f} | {runs} | {m / floor:.2f}x |")
    cli = max(m for k, m in med.items() if k.startswith("`alignfreeze plot"))
    lib = max(m for k, m in med.items() if k.startswith("`plot_from_tables"))
    lines += ["", f"**Slowest figure on its own: {lib:.2f} s, {lib / floor:.2f}x the import floor; through the "
              f"`alignfreeze` executable: {cli:.2f} s, {cli / floor:.2f}x** (goal: a couple of seconds). "
              "The difference is the CLI's start-up, outside the figures (issue 13, \"a CLI that answers at "
              "once\"): building the parser imports every sub-command's modules (torch among them)."]
    write_section("plot", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
