"""Benchmark: the probe at another commit (the baseline) against the probe in this tree, and both
against the per-layer scikit-learn loop, interleaved in ONE process on the same features.

Why: on this shared machine the load changes several-fold between two runs of
``bench_probe.py``, so a before/after pair of its ratios says little. Here every round times
the baseline probe, this tree's probe and the scikit-learn loop back to back (in a rotating
order), on the features ``bench_probe.py`` uses (same cache, same settings: C, max_iter, tol,
one thread each), and reports the per-round ratios. It also checks that both probes learn
bit-identical coefficients and accuracies when the change is meant to leave the numbers alone.

The baseline's ``probing`` package is read from git (``git archive REV probing``) into a
temporary folder and imported under another name; it must be constructible as
``MultiLayerLinearProbe(C, max_iter=..., tol=...)`` and have ``fit``/``score``.

    python bench/bench_probe_ab.py --baseline REV [--rounds 2] [--cache DIR] [--no-write]
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def baseline_module(rev: str, where: Path):
    """``probing.linear`` as it is at ``rev``, imported as ``probing_baseline.linear``."""
    tar = subprocess.run(["git", "-C", str(REPO), "archive", rev, "probing"], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        t.extractall(where, filter="data")
    pkg = where / "probing_baseline"
    (where / "probing").rename(pkg)
    spec = importlib.util.spec_from_file_location("probing_baseline", pkg / "__init__.py",
                                                  submodule_search_locations=[str(pkg)])
    mod = importlib.util.module_from_spec(spec)
    sys.modules["probing_baseline"] = mod
    spec.loader.exec_module(mod)
    return importlib.import_module("probing_baseline.linear")


def main() -> None:
    import bench_probe
    import torch
    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import threadpool_limits

    from probing import linear as current

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", required=True, help="git revision of the probe to compare with")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--cache", default="/tmp/alignfreeze-bench-probe", help="feature cache (as bench_probe.py)")
    ap.add_argument("--max-sentences", type=int, default=0)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    threadpool_limits(limits=1)
    torch.set_num_threads(1)
    warnings.simplefilter("ignore", ConvergenceWarning)  # both hit max_iter on this problem, as in bench_probe.py
    rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", args.baseline], check=True,
                         capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        base = baseline_module(args.baseline, Path(tmp))
        data, source = bench_probe.load_features(argparse.Namespace(max_sentences=args.max_sentences,
                                                                    cache=args.cache, device="cpu"))
        (Xtr, ytr), (Xte, yte) = data["train"], data["eval"]
        print(source, flush=True)
        arms = {"baseline": base, "current": current}
        times: dict = {"baseline": [], "current": [], "loop": []}
        fitted: dict = {}
        loads = [os.getloadavg()[0]]
        orders = [("baseline", "current", "loop"), ("loop", "current", "baseline"), ("current", "baseline", "loop")]
        for r in range(args.rounds):
            for arm in orders[r % len(orders)]:
                t0 = time.perf_counter()
                if arm == "loop":
                    bench_probe.sklearn_loop(Xtr, ytr, Xte, yte, 1.0, 100, 1e-4)
                else:
                    p = arms[arm].MultiLayerLinearProbe(1.0, max_iter=100, tol=1e-4).fit(Xtr, ytr)
                    fitted[arm] = (p, p.score(Xte, yte))
                times[arm].append(time.perf_counter() - t0)
                loads.append(os.getloadavg()[0])
                print(f"round {r} {arm}: {times[arm][-1]:.1f} s", flush=True)
    b, c = (np.asarray(times[k]) for k in ("baseline", "current"))
    loop = np.asarray(times["loop"])
    same_coef = np.array_equal(fitted["baseline"][0].coef_, fitted["current"][0].coef_)
    same_acc = np.array_equal(fitted["baseline"][1], fitted["current"][1])
    lines = [
        f"## Probing: the probe before and after a change (baseline `{rev}`), interleaved with the scikit-learn loop",
        "",
        f"Features: {source}. UPOS; C = 1.0, L-BFGS max_iter = 100, tol = 1e-4; float32; 1 thread each; "
        f"fit + score of every layer, timed back to back in one process, {args.rounds} round(s) in rotating order; "
        f"1-minute load average {min(loads):.1f}-{max(loads):.1f} on this shared machine.",
        "",
        "| round | baseline (s) | current (s) | loop (s) | current / baseline | loop / baseline | loop / current |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        *[f"| {r} | {b[r]:.1f} | {c[r]:.1f} | {loop[r]:.1f} | {c[r] / b[r]:.2f} | {loop[r] / b[r]:.2f}x | "
          f"{loop[r] / c[r]:.2f}x |" for r in range(args.rounds)],
        "",
        f"**current / baseline: {np.median(c / b):.2f}** (median over rounds); coefficients bit-identical: "
        f"{'yes' if same_coef else 'NO'}; accuracies identical: {'yes' if same_acc else 'NO'}.",
    ]
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        from _results import write_section

        write_section("probe-ab", body)


if __name__ == "__main__":
    main()
