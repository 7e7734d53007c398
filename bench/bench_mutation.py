"""Mutation testing (mutmut 3) of the modules whose numbers a researcher publishes, before/after.

For each run: the tree of a git ref (``main`` = before, the branch = after) is exported to a
scratch folder (the working tree is never touched), a ``[tool.mutmut]`` section is added to
the scratch ``pyproject.toml`` (mutate only the module, run only the given test files,
fork-server isolation because torch is imported), mutmut generates every mutant, and a
seeded random SAMPLE of them is run (the 2-core machine cannot run thousands of mutants
against end-to-end tests). The survival rate is ``survived / (killed + survived + timeout)``
of the sample, with its binomial standard error; "no tests" mutants (code no selected test
reaches) count as survived.

Needs ``mutmut`` in the running interpreter's environment (``pip install mutmut``; see
setup.cfg's ``mutation`` extra). Example::

    python bench/bench_mutation.py --runs cka-before cka-after --sample 50
    python bench/bench_mutation.py --report     # write the section from finished runs

Survivors of a run: ``<scratch>/survivors.txt``; inspect one with ``cd <scratch> && mutmut
show NAME``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import write_section  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SCRATCH = Path(os.environ.get("MUTATION_SCRATCH", Path(tempfile.gettempdir()) / "alignfreeze-mutation"))
PACKAGES = ["analysis", "core", "probing", "realign", "alignfreeze"]
PROBING_TESTS = ["tests/test_probing_control.py", "tests/test_probing_cli.py", "tests/test_probing_linear.py",
                 "tests/test_probing_semantic.py", "tests/test_probing_estimator.py"]
# name: (module globs, test files before, test files after); before = main, after = this branch
MODULES = {
    "cka": (["analysis/cka.py"], ["tests/test_cka.py", "tests/test_drift.py"],
            ["tests/test_cka.py", "tests/test_drift.py", "tests/test_intervals.py"]),
    "drift": (["analysis/drift.py"], ["tests/test_drift.py"], ["tests/test_drift.py", "tests/test_intervals.py"]),
    "intervals": (["analysis/intervals.py"], None, ["tests/test_intervals.py", "tests/test_drift.py"]),
    "stats": (["analysis/stats.py"], ["tests/test_stats.py"], ["tests/test_stats.py"]),
    "alignment": (["analysis/alignment.py"], ["tests/test_alignment_eval.py"],
                  ["tests/test_alignment_eval.py", "tests/test_align_eval_max_words.py"]),
    "probing": (["probing/*"], PROBING_TESTS, PROBING_TESTS),
    "losses": (["realign/losses.py"], ["tests/test_losses.py"], ["tests/test_losses.py"]),
    "pooling": (["core/pooling.py"], ["tests/test_pooling.py", "tests/test_features.py"],
                ["tests/test_pooling.py", "tests/test_features.py"]),
}
STATUS = re.compile(r"^\s*(\S+__mutmut_\d+): (.+)$")


def mutmut_bin() -> str:
    return str(Path(sys.executable).with_name("mutmut"))


def export(ref: str, dest: Path) -> None:
    data = subprocess.run(["git", "-C", str(REPO), "archive", ref], check=True, capture_output=True).stdout
    dest.mkdir(parents=True)
    with tempfile.TemporaryFile() as f:
        f.write(data)
        f.seek(0)
        with tarfile.open(fileobj=f) as t:
            t.extractall(dest, filter="data")


def configure(dest: Path, only: list[str], tests: list[str]) -> None:
    q = lambda xs: "[" + ", ".join(f'"{x}"' for x in xs) + "]"  # noqa: E731
    with (dest / "pyproject.toml").open("a") as f:
        f.write(f"""
[tool.mutmut]
source_paths = {q(PACKAGES)}
only_mutate = {q(only)}
pytest_add_cli_args_test_selection = {q(tests)}
pytest_add_cli_args = ["-p", "no:cacheprovider"]
process_isolation = "forkserver"
use_git_change_detection = false
""")


def results(dest: Path) -> dict[str, str]:
    out = subprocess.run([mutmut_bin(), "results", "--all", "true"], cwd=dest, capture_output=True, text=True,
                         env=_env()).stdout
    return {m.group(1): m.group(2).strip() for m in map(STATUS.match, out.splitlines()) if m}


def _env() -> dict:
    env = dict(os.environ)
    for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[v] = "1"
    env.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    return env


def run(name: str, ref: str, sample: int, seed: int, children: int) -> dict:
    module, when = name.rsplit("-", 1)
    only, before, after = MODULES[module]
    tests = before if when == "before" else after
    if tests is None:
        raise SystemExit(f"{name}: this module did not exist before")
    dest = SCRATCH / name
    if not dest.exists():
        export(ref, dest)
        configure(dest, only, tests)
    if not (dest / ".generated").exists():  # generate every mutant and map tests, run none
        subprocess.run([mutmut_bin(), "run", "--max-children", str(children), "__none__"], cwd=dest,
                       capture_output=True, env=_env())
        (dest / ".generated").touch()
    names = sorted(results(dest))
    random.Random(seed).shuffle(names)
    chosen = sorted(names[:sample] if sample > 0 else names)
    print(f"{name}: {len(names)} mutants, running {len(chosen)}", flush=True)
    subprocess.run(["nice", "-n", "5", mutmut_bin(), "run", "--max-children", str(children), *chosen], cwd=dest,
                   capture_output=True, env=_env())
    got = results(dest)
    status = {n: got.get(n, "missing") for n in chosen}
    (dest / "survivors.txt").write_text("\n".join(n for n, s in status.items() if s in ("survived", "no tests")))
    summary = {"name": name, "ref": subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", ref],
                                                   capture_output=True, text=True).stdout.strip(),
               "total": len(names), "sample": len(chosen), "tests": tests, "status": status}
    (dest / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def rerun(name: str, ref: str, children: int) -> dict:
    """Run the survivors of a finished run again on a fresh export of ``ref`` (new tests; the
    module itself unchanged, so the mutants keep their names); killed mutants stay killed.
    The summary records both passes."""
    dest = SCRATCH / name
    first = json.loads((dest / "summary.json").read_text())
    again = [n for n, s in first["status"].items() if s in ("survived", "no tests", "missing")]
    module, when = name.rsplit("-", 1)
    only, before, after = MODULES[module]
    fresh = SCRATCH / f"{name}-rerun"
    if fresh.exists():
        import shutil

        shutil.rmtree(fresh)
    export(ref, fresh)
    configure(fresh, only, before if when == "before" else after)
    subprocess.run([mutmut_bin(), "run", "--max-children", str(children), "__none__"], cwd=fresh,
                   capture_output=True, env=_env())
    print(f"{name}: re-running {len(again)} survivors of {first['ref']} on {ref}", flush=True)
    subprocess.run(["nice", "-n", "5", mutmut_bin(), "run", "--max-children", str(children), *again], cwd=fresh,
                   capture_output=True, env=_env())
    got = results(fresh)
    status = {**first["status"], **{n: got.get(n, "missing") for n in again}}
    (dest / "survivors.txt").write_text("\n".join(n for n, s in status.items() if s in ("survived", "no tests")))
    summary = {**first, "status": status, "first_pass": first["status"], "scratch_rerun": str(fresh),
               "ref": subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", ref],
                                     capture_output=True, text=True).stdout.strip(), "first_ref": first["ref"]}
    (dest / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def rate(summary: dict) -> tuple[int, int, float, float]:
    st = list(summary["status"].values())
    survived = sum(s in ("survived", "no tests") for s in st)
    tested = sum(s in ("killed", "survived", "no tests", "timeout") for s in st)
    p = survived / tested if tested else float("nan")
    se = (p * (1 - p) / tested) ** 0.5 if tested else float("nan")
    return survived, tested, p, se


def report(notes: str = "") -> str:
    rows = []
    for module in MODULES:
        cells = []
        for when in ("before", "after"):
            f = SCRATCH / f"{module}-{when}" / "summary.json"
            if not f.is_file():
                cells.append("—")
                continue
            s = json.loads(f.read_text())
            sv, n, p, se = rate(s)
            cell = f"{100 * p:.0f}% ± {100 * se:.0f} ({sv}/{n} of {s['total']}, `{s['ref']}`)"
            if "first_pass" in s:  # survivors re-run after new tests
                sv0, n0, p0, _ = rate({"status": s["first_pass"]})
                cell = f"first pass {100 * p0:.0f}% ({sv0}/{n0}, `{s['first_ref']}`); after new tests {cell}"
            cells.append(cell)
        if cells != ["—", "—"]:
            rows.append(f"| {module} | {' | '.join(cells)} |")
    body = f"""## Mutation testing: survival rate per module, before / after (mutmut 3, sampled)

A seeded random sample of each module's mutants (mutmut 3.8) is run against the module's own
test files (listed in `bench/bench_mutation.py`); survival = (survived + no tests) / tested,
± its binomial standard error. Before = `main` with its tests, after = this branch; "first
pass" = the branch's tests when the run started, "after new tests" = its survivors run again
(`--rerun`) on a fresh export with the tests written for them (killed mutants stay killed).

| module | before | after |
|---|---|---|
{chr(10).join(rows)}
{notes}
"""
    return body


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", nargs="*", default=[], help="e.g. cka-before cka-after (module-before|after)")
    ap.add_argument("--after-ref", default="HEAD")
    ap.add_argument("--before-ref", default="main")
    ap.add_argument("--sample", type=int, default=50, help="mutants per run (0: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--children", type=int, default=2)
    ap.add_argument("--rerun", action="store_true",
                    help="re-run only the survivors of the finished --runs on a fresh export (after new tests)")
    ap.add_argument("--report", action="store_true", help="write the RESULTS.md section from finished runs")
    ap.add_argument("--notes", default="", help="markdown appended to the section (equivalent mutants...)")
    args = ap.parse_args()
    for name in args.runs:
        ref = args.before_ref if name.endswith("-before") else args.after_ref
        s = rerun(name, ref, args.children) if args.rerun else run(name, ref, args.sample, args.seed, args.children)
        sv, n, p, se = rate(s)
        print(f"{name}: survived {sv}/{n} = {100 * p:.0f}% ± {100 * se:.0f}", flush=True)
    if args.report:
        body = report(Path(args.notes).read_text() if args.notes and Path(args.notes).is_file() else args.notes)
        print(body)
        write_section("mutation", body)


if __name__ == "__main__":
    main()
