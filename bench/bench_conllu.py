"""Cost of the strict CoNLL-U reader on the shared UD treebanks.

Peers measured in the same run, alternating: the reader before the UD-validator rules (loaded
from git, ``--peer-commit``) and a plain pass that only splits lines into columns (the lower
bound of any reader). Every reader must return the same number of words.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _results import write_section  # noqa: E402

from core.conllu import read_conllu  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
UD = Path(os.environ.get("ALIGNFREEZE_SHARED_DATA", REPO.parent / "shared" / "data")) / "ud"


def _old_reader(commit: str):
    src = subprocess.run(["git", "-C", str(REPO), "show", f"{commit}:core/conllu.py"], check=True,
                         capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "conllu_old.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("conllu_old", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["conllu_old"] = mod
    spec.loader.exec_module(mod)
    return mod.read_conllu


def _plain(path):
    n = 0
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            cols = line.rstrip("\n").split("\t")
            n += len(cols) == 10 and cols[0].isdigit()
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--ud", default=str(UD), help="folder of .conllu files")
    ap.add_argument("--peer-commit", default="f73392b", help="commit whose core/conllu.py is the previous reader")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    files = sorted(Path(args.ud).glob("*.conllu"))
    if not files:
        sys.exit(f"no .conllu file in {args.ud}")
    old = _old_reader(args.peer_commit)
    readers = {
        "strict reader (this tree)": lambda: sum(len(s) for f in files for s in read_conllu(f)),
        f"previous reader ({args.peer_commit})": lambda: sum(len(s) for f in files for s in old(f)),
        "plain split of the lines": lambda: sum(_plain(f) for f in files),
    }
    times: dict[str, list[float]] = {k: [] for k in readers}
    words = set()
    for _ in range(args.repeats):
        for name, fn in readers.items():
            t = time.perf_counter()
            words.add(fn())
            times[name].append(time.perf_counter() - t)
    assert len(words) == 1, f"the readers disagree on the number of words: {words}"
    med = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
    strict = med["strict reader (this tree)"]
    rows = "\n".join(f"| {k} | {v:.2f} | {words.copy().pop() / v:,.0f} | {strict / v:.2f}x |" for k, v in med.items())
    body = (f"## CoNLL-U reader: the UD-validator rules\n\n"
            f"Data: {len(files)} shared UD files, {words.pop():,} words; median of {args.repeats} alternating runs.\n\n"
            f"| reader | seconds | words/s | strict / this |\n|---|---:|---:|---:|\n{rows}\n")
    print(body)
    write_section("conllu-reader", body)


if __name__ == "__main__":
    main()
