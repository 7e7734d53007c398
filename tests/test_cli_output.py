"""What the CLI writes besides results: progress in a log file is one line per update with no
third-party bars; a closed pipe (``| head``) ends quietly; ``--help`` answers at once."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest
from clitools import ENV, installed, run, write_tiny_inputs

from alignfreeze.cli import _LineProgress


@pytest.fixture(scope="session")
def tiny_inputs(tmp_path_factory):
    return write_tiny_inputs(tmp_path_factory)


def test_progress_bar_becomes_one_line_per_update():
    from tqdm import tqdm

    log = io.StringIO()
    stream = _LineProgress(log)
    for _ in tqdm(range(3), file=stream, mininterval=0, desc="steps", ascii=True):
        pass
    print("done", file=stream)
    lines = log.getvalue().split("\n")
    assert "\r" not in log.getvalue()
    assert [ln.split("|")[0] for ln in lines[:4]] == ["steps:   0%", "steps:  33%", "steps:  67%", "steps: 100%"]
    assert lines[4:] == ["done", ""]  # the bar's own closing newline adds no empty line


def test_a_log_file_gets_one_line_per_progress_update_and_no_third_party_bars(tiny_inputs, tmp_path):
    env = {k: v for k, v in ENV.items() if not k.endswith("DISABLE_PROGRESS_BARS")}
    env["TQDM_MININTERVAL"] = "0"  # every update (the CLI's default for logs is one every 10 s)
    with open(tmp_path / "run.log", "w") as log:
        proc = subprocess.run([installed(), "features", "--model", tiny_inputs["model"], "--treebank",
                               tiny_inputs["en"], "--batch-size", "2", "--out", tmp_path / "f"],
                              stdout=subprocess.PIPE, stderr=log, text=True, env=env, timeout=600)
    assert proc.returncode == 0
    text = (tmp_path / "run.log").read_bytes().decode()  # as written: read_text() would turn \r into \n
    assert "\r" not in text
    bars = [ln.split(" [")[0] for ln in text.split("\n") if ln.startswith("word features:")]
    assert len(bars) >= 3 and len(set(bars)) == len(bars)  # one line per update, none repeated
    assert "Loading weights" not in text and "Writing model shards" not in text  # transformers' bars are off


def _big_stats_args(tiny_inputs, tmp_path, n: int = 400) -> list[str]:
    names = []
    for k in range(n):
        link = tmp_path / f"en{k}_demo-ud-test.conllu"
        link.symlink_to(tiny_inputs["en"])
        names.append(str(link))
    return ["data", "stats", *names]


@pytest.mark.parametrize("n, form", [(400, []), (400, ["--json"]), (1, [])])
def test_a_closed_pipe_ends_quietly(tiny_inputs, tmp_path, n, form):
    """`alignfreeze data stats ... | head`: no BrokenPipeError traceback, not even from the
    final flush of what is still buffered (n=1); 141 (128 + SIGPIPE)."""
    argv = [*_big_stats_args(tiny_inputs, tmp_path, n), *form]
    proc = subprocess.Popen([installed(), *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
    proc.stdout.close()  # the reader is gone before anything was written
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 141
    assert err == ""
    shell = subprocess.run(["sh", "-c", 'exec 2>"$1"; shift; "$@" | head -n 2', "sh", tmp_path / "err.txt",
                            installed(), *argv], capture_output=True, text=True, env=ENV, timeout=300)
    assert shell.returncode == 0 and len(shell.stdout.splitlines()) == 2
    assert (tmp_path / "err.txt").read_text() == ""
    proc = subprocess.Popen([installed(), "--help"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
    proc.stdout.close()
    assert proc.stderr.read() == b"" and proc.wait(timeout=60) in (0, 141)  # argparse ignores the closed pipe


def test_help_is_at_most_a_few_interpreter_startups():
    """`alignfreeze --help` next to `python -c pass` in the same run (bench/bench_cli.py measures
    it properly): with torch imported it was ~60x; the bound leaves room for a loaded machine."""
    import time

    def best(cmd, n=3):
        ts = []
        for _ in range(n):
            t0 = time.perf_counter()
            subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True, env=ENV)
            ts.append(time.perf_counter() - t0)
        return min(ts)

    peer = best([sys.executable, "-c", "pass"])
    torch_import = best([sys.executable, "-c", "import torch"], n=1)
    helped = best([installed(), "--help"])
    assert helped < max(15 * peer, torch_import / 2), (helped, peer, torch_import)
    assert run(["--help"]).stdout.count("\n    ") >= 10  # every command listed
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
