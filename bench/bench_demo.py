"""Time of the demo as ``make demo`` runs it (``alignfreeze demo``, e5-small, the embedded
corpus), a re-run in the same folder (every step reused), and the --quick CI path.

The budget (issue 12) is 10 minutes on two quiet CPU cores. The machines here are shared,
so next to the wall time this reports the CPU time (user + system) of each run: on a loaded
machine the CPU time includes torch threads spinning while they wait for a core, so it is an
upper bound of the work; a run whose CPU time is under the budget fits in it on ONE quiet
core, hence on two. Peer measured in the same run: one forward
pass of e5-small over the demo's 500 sentences at every layer (the unit of work the demo
repeats: one per arm), run after the demo and again at the end, so the ratio demo / peer
does not depend on the machine's load. Run it as ``OMP_NUM_THREADS=1 python bench/bench_demo.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_section  # noqa: E402

AF = Path(sys.executable).with_name("alignfreeze")
PEER = """
from alignfreeze.pipeline import DemoConfig
from alignfreeze.pipeline_data import resolve
from alignfreeze.pipeline_measure import FeatureCache
from core.models import load
c = resolve(DemoConfig())
m, t = load("e5-small", offline=True)
sents = [s for lang in c.langs for s in c.eval_sentences[lang]] + list(c.train_sentences)
FeatureCache(m, t, sents)
"""


def timed(cmd: list[str], env=None) -> dict:
    """Wall and CPU seconds (user + system of the child), peak memory, load before/after."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "cpu": cpu, "rss_mb": after.ru_maxrss / 1024, "load": (load0, os.getloadavg()[0]),
            "stdout": r.stdout}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None, help="demo folder (default: a fresh temporary one)")
    ap.add_argument("--no-write", action="store_true", help="print, do not update bench/RESULTS.md")
    args = ap.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="bench-demo-")) / "demo"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    full = timed([str(AF), "demo", "--out", str(out), "--no-progress"], env)  # first: its peak memory is its own
    peer1 = timed([sys.executable, "-c", PEER], env)
    again = timed([str(AF), "demo", "--out", str(out), "--no-progress"], env)
    peer2 = timed([sys.executable, "-c", PEER], env)
    quick = timed([str(AF), "demo", "--quick", "--out", str(out.with_name("quick")), "--no-progress"], env)
    run = json.loads((out / "run.json").read_text())
    reused = sum(1 for s in run["steps"] if s["status"] == "reused")
    peer_wall, peer_cpu = (peer1["wall"] + peer2["wall"]) / 2, (peer1["cpu"] + peer2["cpu"]) / 2
    steps = {}
    for f in sorted((out / "steps").glob("*.json")):
        rec = json.loads(f.read_text())
        kind = rec["step"].split("-")[0]
        steps[kind] = steps.get(kind, 0.0) + rec["seconds"]

    def row(name, r):
        return f"| {name} | {r['wall']:.0f} | {r['cpu']:.0f} | {r['load'][0]:.1f} -> {r['load'][1]:.1f} |"

    threads = os.environ.get("OMP_NUM_THREADS", "the default number of")
    lines = [
        "## The demo (`make demo` = `alignfreeze demo`): e5-small, 4 arms, 7 languages, report",
        "",
        f"Full run into a fresh folder, then the same command again (the re-run reused {reused} of "
        f"{len(run['steps'])} steps), then `--quick` (the CI path). CPU = user + system seconds of the process; "
        f"{threads} torch thread(s) (OMP_NUM_THREADS), so that the CPU time is the work and not threads spinning "
        f"on a loaded machine. Peak memory of the fresh run: {full['rss_mb']:.0f} MB.",
        "",
        "| run | wall s | CPU s | load average (start -> end) |",
        "|---|---:|---:|---|",
        row("`alignfreeze demo` (fresh)", full),
        row("`alignfreeze demo` (re-run, steps reused)", again),
        row("`alignfreeze demo --quick`", quick),
        row("peer: one e5-small pass over the 500 sentences", peer1),
        row("peer: the same, again at the end", peer2),
        "",
        f"**Ratio demo / peer: {full['wall'] / peer_wall:.1f}x wall, {full['cpu'] / peer_cpu:.1f}x CPU.** "
        f"Budget 600 s on two quiet cores: the fresh run's CPU time is {full['cpu']:.0f} s "
        f"({'within' if full['cpu'] <= 600 else 'OVER'} the budget even on one core). Wall time by step of the "
        "fresh run: " + ", ".join(f"{k} {v:.0f} s" for k, v in steps.items()) + ".",
    ]
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        write_section("demo", body)


if __name__ == "__main__":
    main()
