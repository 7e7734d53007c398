"""How fast the CLI answers when nothing has to run: ``alignfreeze --help``, a sub-command's
``--help`` and an argument error, as the installed console script, next to ``python -c pass``
(the interpreter's own start-up) measured in the same run, alternating.

    python bench/bench_cli.py                    # 15 rounds
    python bench/bench_cli.py --rounds 30 --before /path/to/older/venv/bin/alignfreeze

``--before`` adds another installed ``alignfreeze`` (e.g. the main branch's) to the same
rounds, for a before/after ratio. Writes its section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_section  # noqa: E402

AF = Path(sys.executable).with_name("alignfreeze")


def _time(cmd: list[str], expect: int) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    dt = time.perf_counter() - t0
    if proc.returncode != expect:
        raise SystemExit(f"{' '.join(cmd)}: exit {proc.returncode}, expected {expect}")
    return dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--before", default=None, help="another installed alignfreeze to time in the same rounds")
    args = ap.parse_args()
    cases = {
        "`python -c pass` (peer)": ([sys.executable, "-c", "pass"], 0),
        "`alignfreeze --help`": ([str(AF), "--help"], 0),
        "`alignfreeze drift --help`": ([str(AF), "drift", "--help"], 0),
        "`alignfreeze probe --seeds x` (argument error)": ([str(AF), "probe", "--seeds", "x"], 2),
        "`python -c 'import torch, transformers'` (what the parser no longer imports)":
            ([sys.executable, "-c", "import torch, transformers"], 0),
    }
    if args.before:
        cases["`alignfreeze --help`, before (" + args.before + ")"] = ([args.before, "--help"], 0)
    times: dict[str, list[float]] = {k: [] for k in cases}
    load0 = os.getloadavg()[0]
    for r in range(args.rounds + 1):
        order = list(cases)
        order = order[r % len(order):] + order[: r % len(order)]  # rotate: load hits all alike
        for k in order:
            dt = _time(*cases[k])
            if r:  # round 0 warms the file cache
                times[k].append(dt)
    load1 = os.getloadavg()[0]
    peer = statistics.median(times["`python -c pass` (peer)"])
    rows = ["| command | median s | min s | ratio to `python -c pass` |", "|---|---:|---:|---:|"]
    for k, ts in times.items():
        med = statistics.median(ts)
        rows.append(f"| {k} | {med:.3f} | {min(ts):.3f} | {med / peer:.1f}x |")
    help_med = statistics.median(times["`alignfreeze --help`"])
    body = (
        "## CLI start-up: help and argument errors (no heavy imports)\n\n"
        f"Each command run {args.rounds} times as a subprocess, rotating the order every round (after one warm-up "
        "round); wall-clock seconds.\n\n" + "\n".join(rows) + "\n\n"
        f"**`alignfreeze --help`: {help_med:.3f} s, {help_med / peer:.1f}x `python -c pass`** "
        f"(goal: well under a second). Load average (1 min) at start / end: {load0:.1f} / {load1:.1f}; on a "
        "shared machine absolute times vary, the ratio compares runs interleaved in the same rounds.\n"
    )
    write_section("cli-startup", body)
    print(body)


if __name__ == "__main__":
    main()
