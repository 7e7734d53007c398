"""Ctrl-C in the middle of every sub-command (SIGINT to the INSTALLED script while it works):
one line ``alignfreeze: interrupted: ...`` saying what was saved and the exact command that
resumes, exit status 130 (128 + SIGINT, what shells report for Ctrl-C), no traceback, and no
half-written output. A realignment resumes from its checkpoint with the printed command; an
interrupted grid keeps its finished cells."""

from __future__ import annotations

import re
import shlex
import time
from pathlib import Path

import pytest
from clitools import COMMANDS, case_inputs, error_lines, interrupt, start, torch_loaded

# answer at once: there is no middle to interrupt
INSTANT = {"models list": "lists a table", "models prepare": "returns the prepared folder (built once per machine)",
           "midalign merge": "merges two tiny adapters in a blink once the model is loaded",
           "revert": "copies a tiny checkpoint's layers in a blink once the models are loaded"}
COPIES = 400  # the 12 authored sentences x COPIES: far more work than the time it takes to interrupt


def _big_treebank(src: Path, dst: Path) -> str:
    """``src``'s sentences COPIES times, each copy with its own sent_ids (en and fr stay parallel)."""
    blocks = [b for b in src.read_text(encoding="utf-8").split("\n\n") if b.strip()]
    with open(dst, "w", encoding="utf-8") as fh:
        for k in range(COPIES):
            for b in blocks:
                fh.write(re.sub(r"^# sent_id = (.*)$", rf"# sent_id = \1-{k}", b, flags=re.M) + "\n\n")
    return str(dst)


@pytest.fixture(scope="session")
def big_inputs(tmp_path_factory):
    from clitools import write_tiny_inputs

    p = write_tiny_inputs(tmp_path_factory)
    root = Path(p["model"]).parent
    for lang in ("en", "fr"):
        p[lang] = _big_treebank(Path(p[lang]), root / f"{lang}_big-ud-test.conllu")
    return p


LONGER = {  # extra arguments that make each case's work long (argparse: the last one counts)
    "features": lambda p: ["--batch-size", "4"],
    "pairs": lambda p: ["--aligner", "similarity", "--model", p["model"], "--layer", "1"],
    "realign": lambda p: ["--steps", "100000"],
    "finetune": lambda p: ["--steps", "100000"],
    "probe": lambda p: ["--seeds", "5"],
    "cka": lambda p: ["--max-words", "10000000"],
    "align-eval": lambda p: ["--limit", "10000000"],
    "attribution": lambda p: ["--max-sentences", "100000", "--steps", "32"],
    "demo": lambda p: ["--steps", "100000"],
    "midalign scan": lambda p: ["--limit", "100000"],
    "midalign train": lambda p: ["--steps", "100000"],
}


def _working(pid: int, marks: list[str]) -> bool:
    """The process has torch loaded and maps or holds open one of ``marks`` (the model's
    weights, a big input): it is doing the command's work."""
    if not torch_loaded(pid):
        return False
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
        fds = [str(Path(f).readlink()) for f in Path(f"/proc/{pid}/fd").iterdir()]
    except OSError:
        return False
    return any(m in maps or any(m in fd for fd in fds) for m in marks)


def _started(seconds: float):
    t0 = time.monotonic()
    return lambda: time.monotonic() - t0 > seconds


def _interrupt_line(err: str) -> str:
    lines = error_lines(err)
    assert "Traceback" not in err, err[-3000:]
    assert lines and lines[-1].startswith("alignfreeze: interrupted: "), err[-3000:]
    assert sum(ln.startswith(("alignfreeze: interrupted", "alignfreeze: error")) for ln in lines) == 1, err[-3000:]
    return lines[-1]


def test_every_subcommand_is_interrupted_here():
    assert set(COMMANDS) - set(INSTANT) == set(INTERRUPTED)


INTERRUPTED = sorted(set(COMMANDS) - set(INSTANT))


@pytest.mark.parametrize("name", INTERRUPTED)
def test_ctrl_c_in_the_middle(name, big_inputs, tmp_path):
    case = COMMANDS[name]
    case.skip_if_unavailable()
    work = tmp_path / "work"
    work.mkdir()
    p = case_inputs(big_inputs, work, case)
    if name == "experiment":  # a long fine-tuning in the grid's only cell
        Path(p["config"]).write_text(Path(p["config"]).read_text().replace('"steps": 1', '"steps": 100000'))
    if name == "data stats":  # ten names for the big treebank: ten times the work
        links = []
        for k in range(10):
            (work / f"en{k}_big-ud-test.conllu").symlink_to(p["en"])
            links.append(str(work / f"en{k}_big-ud-test.conllu"))
        argv = ["data", "stats", *links]
    else:
        argv = [*case.argv(p), *LONGER.get(name, lambda p: [])(p)]
    before = sorted(f.name for f in work.iterdir())
    proc = start(argv, cwd=work)
    if name == "demo":
        ready = lambda: (work / case.out / "pairs").is_dir()  # noqa: E731
    elif name == "data stats":
        ready = lambda: _reading(proc.pid, p["en"])  # noqa: E731
    elif not case.heavy:
        ready = _started(0.7)
    else:
        ready = lambda: _working(proc.pid, [p["model"], p["tagger"], p["lm"], p["en"]])  # noqa: E731
    rc, out, err = interrupt(proc, ready, settle=0.3)
    assert rc == 130, err[-3000:]
    line = _interrupt_line(err)
    command = shlex.join(["alignfreeze", *argv])
    assert line.endswith(f"; rerun: {command}") or line.endswith(f"; resume: {command}"), line
    if name == "demo" and (work / case.out / "steps").is_dir():
        # the demo keeps the steps that finished, and a re-run reuses them (alignfreeze.pipeline_steps)
        assert f"the steps that finished are kept in {work / case.out}" in line, line
    elif case.out is not None and name != "experiment":
        if not case.heavy and "the work was done before the interrupt" in line:
            # a light command on a loaded machine may finish first: then its output is there,
            # complete, and the line says so (never "nothing was written")
            assert sorted(f.name for f in work.iterdir()) == sorted([*before, case.first_out.split("/")[0]]), line
            return
        # nothing half-written: no output and no temporary file or folder next to it
        assert sorted(f.name for f in work.iterdir()) == before, line
        assert f"nothing was written to {work / case.first_out}" in line, line


def _reading(pid: int, path: str) -> bool:
    """The process has ``path`` open."""
    try:
        return any(str(f.readlink()) == str(Path(path).resolve()) for f in Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False


def test_interrupted_realign_resumes_with_the_printed_command(big_inputs, tmp_path):
    out = tmp_path / "realigned"
    argv = ["realign", "--model", big_inputs["model"], "--pairs", big_inputs["pairs"], "--batch-size", "4",
            "--steps", "100000", "--checkpoint-every", "5", "--keep-checkpoints", "2", "--out", str(out),
            "--no-progress"]

    def steps() -> list[int]:
        return sorted(int(c.name.split("_")[1]) for c in (out / "checkpoints").glob("step_*")
                      if (c / "trainer_state.json").is_file())

    rc, _, err = interrupt(start(argv), lambda: bool(steps()), settle=0.2)
    assert rc == 130, err[-3000:]
    line = _interrupt_line(err)
    first = steps()[-1]
    m = re.fullmatch(r"alignfreeze: interrupted: checkpoint step_(\d+) is saved in (.+); resume: (.+)", line)
    assert m and int(m[1]) == first and m[2] == str(out / "checkpoints"), line
    resume = shlex.split(m[3])
    assert resume == ["alignfreeze", *argv, "--resume"]
    assert not (out / "manifest.json").exists()
    # the printed command continues the run (later checkpoints), and can be interrupted again
    rc, _, err = interrupt(start(resume[1:]), lambda: bool(steps()) and steps()[-1] > first, settle=0.2)
    assert rc == 130, err[-3000:]
    again = _interrupt_line(err)
    assert again.endswith(f"; resume: {shlex.join(resume)}"), again  # --resume is not added twice
    assert int(re.search(r"step_(\d+)", again)[1]) > first


def test_interrupted_grid_keeps_its_finished_cells(big_inputs, tmp_path, capsys):
    import json

    from alignfreeze.experiment import run_experiment

    cfg = json.loads(Path(big_inputs["config"]).read_text())
    cfg["seeds"] = [1, 2]
    cfg["finetune"]["steps"] = 300  # seconds of fine-tuning per cell
    path = tmp_path / "grid.yaml"
    path.write_text(json.dumps(cfg))
    done = tmp_path / "grid" / "cells" / "tiny__-__baseline__s1" / "results.csv"
    rc, _, err = interrupt(start(["experiment", str(path)]), done.is_file, settle=0.2)
    assert rc == 130, err[-3000:]
    line = _interrupt_line(err)
    assert line.endswith(f"; resume: alignfreeze experiment {path}"), line
    report = run_experiment(path, dry_run=True)  # what the printed command will do
    assert report.skipped == ["tiny__-__baseline__s1"] and "tiny__-__baseline__s2: would run" in capsys.readouterr().out


FINALIZER = """
import os, signal, sys, time
from alignfreeze.cli import _sigint_handler

class Finalized:
    def __del__(self):
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C arrives while a finalizer runs
        for _ in range(1000):
            pass

with _sigint_handler():
    try:
        Finalized()
        t0 = time.monotonic()
        while time.monotonic() - t0 < 20:
            time.sleep(0.01)
        print("ran to the end")
    except KeyboardInterrupt:
        print("interrupted")
"""


def test_ctrl_c_during_a_finalizer_is_not_lost():
    """Python swallows an exception raised inside ``__del__`` ("Exception ignored"): a Ctrl-C
    landing there was lost and the command ran on to its end; the CLI's handler sends it again."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", FINALIZER], capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip() == "interrupted", proc.stderr
    assert "Exception ignored" not in proc.stderr


def test_an_error_that_follows_ctrl_c_is_reported_as_the_interruption(monkeypatch, fixtures_dir, capsys):
    """A C extension whose import is interrupted raises ``ImportError: initialization failed``
    (seen when Ctrl-C hit ``attribution`` while it imported): that is the interruption, not
    bad input."""
    import os
    import signal

    import alignfreeze.commands.data as data
    from alignfreeze.cli import main

    def interrupted_import(args):
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)  # the handler raises KeyboardInterrupt here
        except KeyboardInterrupt:
            pass  # swallowed by the extension's init...
        raise ImportError("initialization failed")  # ...which fails instead

    monkeypatch.setattr(data, "run_stats", interrupted_import)
    en = str(fixtures_dir / "en_demo-ud-test.conllu")
    assert main(["data", "stats", en]) == 130
    assert capsys.readouterr().err.strip() == (
        f"alignfreeze: interrupted: nothing was written; rerun: alignfreeze data stats {en}")
    assert main(["data", "stats", str(fixtures_dir / "missing.conllu")]) == 2  # the next run starts afresh


def test_ctrl_c_after_the_output_is_complete_says_so(monkeypatch, tmp_path, capsys):
    """A Ctrl-C that lands between the outputs' final rename and the command's return (seen in
    CI: ``typology`` on a loaded machine) said "nothing was written" next to complete files."""
    import alignfreeze.commands.analysis as analysis
    from alignfreeze.cli import main
    from alignfreeze.preflight import out_paths

    def finish_then_interrupt(args):
        for path in out_paths(args):
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text("complete\n")
            tmp.replace(path)  # as every writer does: a complete file renamed into place
        raise KeyboardInterrupt

    monkeypatch.setattr(analysis, "run_plot_cmd", finish_then_interrupt)
    table, out = tmp_path / "cka.csv", tmp_path / "fig"
    table.write_text("layer,value\n0,1.0\n")
    argv = ["plot", "cka", "--input", str(table), "--out", str(out)]
    assert main(argv) == 130
    err = capsys.readouterr().err.strip()
    assert err.startswith("alignfreeze: interrupted: the work was done before the interrupt: "), err
    assert err.endswith(f" are complete; rerun: {shlex.join(['alignfreeze', *argv])}"), err
    assert f"{out}.png" in err

    def interrupt_only(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(analysis, "run_plot_cmd", interrupt_only)
    argv = [*argv, "--overwrite"]  # the files from before are there, but this run did not write them
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert "nothing was written to" in err and "the work was done" not in err, err


def test_ctrl_c_of_an_overwrite_puts_the_old_output_back(big_inputs, tmp_path):
    out = tmp_path / "realigned"
    out.mkdir()
    (out / "manifest.json").write_text('{"kind": "realign", "note": "an earlier finished run"}\n')
    (out / "model.safetensors").write_bytes(b"earlier weights")
    argv = ["realign", "--model", big_inputs["model"], "--pairs", big_inputs["pairs"], "--batch-size", "4",
            "--steps", "100000", "--checkpoint-every", "5", "--out", str(out), "--overwrite", "--no-progress"]

    def new_checkpoint() -> bool:
        return any((c / "trainer_state.json").is_file() for c in (out / "checkpoints").glob("step_*"))

    rc, _, err = interrupt(start(argv), new_checkpoint, settle=0.2)  # the new run is under way in OUT
    assert rc == 130, err[-3000:]
    line = _interrupt_line(err)
    assert line == (f"alignfreeze: interrupted: {out} is as it was before this run (--overwrite replaces it only "
                    f"when complete); rerun: {shlex.join(['alignfreeze', *argv])}")
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "model.safetensors"]
    assert (out / "model.safetensors").read_bytes() == b"earlier weights"
    assert [p.name for p in tmp_path.iterdir()] == ["realigned"]  # nothing set aside left behind
