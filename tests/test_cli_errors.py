"""Bad input, everywhere (issue 10.6), through the INSTALLED ``alignfreeze`` script: every
sub-command of tests/clitools.py with each of its inputs replaced by a missing file, a folder,
an empty file, bytes that are not UTF-8, a file in the wrong format; and its ``--out`` in a
place that cannot be written, taken by an earlier run, or of the wrong kind. Each is one line
``alignfreeze: error: ...`` naming the path (and the line where there is one) and what was
expected, exit status 2, and nothing that was there is changed. The checks that need no file
content happen before torch is imported (``PYTHONPROFILEIMPORTTIME`` lists every import)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from clitools import COMMANDS, ENV, case_inputs, one_error, run, write_tiny_inputs

PROFILE = {**ENV, "PYTHONPROFILEIMPORTTIME": "1"}


@pytest.fixture(scope="session")
def tiny_inputs(tmp_path_factory):
    return write_tiny_inputs(tmp_path_factory)


def _imports(err: str) -> set[str]:
    return {ln.rsplit("|", 1)[-1].strip().split(".")[0] for ln in err.splitlines() if ln.startswith("import time:")}


def _stderr(err: str) -> str:
    return "\n".join(ln for ln in err.splitlines() if not ln.startswith("import time:"))


def _snapshot(folder: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


MODEL_KEYS = ("model", "tagger", "lm")
# inputs that may be a glob or a UD folder (searched for *-ud-*.conllu) instead of one file
TREEBANK_ARGS = {("data stats", "en"), ("features", "en"), ("finetune", "en"), ("evaluate", "fr"),
                 ("probe", "en"), ("probe", "fr"), ("drift", "en"), ("cka", "en"), ("attribution", "en"),
                 ("layer-effect", "en"), ("layer-effect", "fr")}
INPUTS = sorted((name, key) for name, case in COMMANDS.items() for key in case.inputs)


# plot's tables are read (and their faults named) by analysis.plots, the figures' own reader
PLOT_TABLE = {"missing": ": no such table", "folder": ": is a folder; expected a CSV table",
              "empty": ": empty file; expected a CSV table with a header line", "binary": ": not a CSV table ("}


def _fault(kind: str, name: str, key: str, tmp: Path) -> tuple[Path, str]:
    """A faulty stand-in for input ``key`` and the start of the expected message after the path."""
    if key == "table":
        bad, _ = _fault(kind, "", "gains", tmp)
        return bad, PLOT_TABLE[kind]
    model = key in MODEL_KEYS
    suffix = {"pairs": ".jsonl", "gains": ".csv", "table": ".csv", "config": ".yaml", "dictionary": ".txt"}.get(
        key, ".conllu")
    if kind == "missing":
        if model:
            return tmp / "no-such-model", ": no such local folder"
        if (name, key) in TREEBANK_ARGS:
            return tmp / f"no-such{suffix}", ": no such file, folder or glob (expected"
        return tmp / f"no-such{suffix}", ": no such file (expected"
    if kind == "folder":
        d = tmp / f"a-folder{suffix}"
        d.mkdir()
        if model:
            return d, ": not a model folder (no config.json in it)"
        if (name, key) in TREEBANK_ARGS:
            return d, ": no treebank matches"
        return d, ": is a folder (expected"
    if kind == "empty":
        f = tmp / f"empty{suffix}"
        f.touch()
        if model:
            return f, ": is a file, expected a model folder"
        return f, ": is empty (expected"
    if kind == "binary":
        if model:
            d = tmp / "binary-model"
            d.mkdir()
            (d / "config.json").write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff")
            return d, ": cannot load its config.json: not JSON (not UTF-8 text)"
        f = tmp / f"binary{suffix}"
        f.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe")
        return f, ":1: not UTF-8 text (byte 0x89); expected"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["missing", "folder", "empty", "binary"])
@pytest.mark.parametrize("name, key", INPUTS)
def test_bad_path_is_one_line_before_any_work(name, key, kind, tiny_inputs, tmp_path):
    case = COMMANDS[name]
    case.skip_if_unavailable()
    bad, expected = _fault(kind, name, key, tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    p = case_inputs(tiny_inputs, work, case, **{key: str(bad)})
    before = _snapshot(tmp_path)
    proc = run(case.argv(p), cwd=work, env=PROFILE)
    err = _stderr(proc.stderr)
    assert proc.returncode == 2, err[-3000:]
    line = one_error(err, alone=True)
    assert line.startswith(f"alignfreeze: error: {bad}{expected}"), line
    assert _snapshot(tmp_path) == before  # nothing written, nothing changed
    assert not _imports(proc.stderr) & {"torch", "transformers"}, "the check came after the heavy imports"
    if key != "table":  # checked before anything is imported to read it
        assert "pandas" not in _imports(proc.stderr)


LATE = sorted((name, key) for name, case in COMMANDS.items() for key in case.late)


@pytest.mark.parametrize("name, key", LATE)
def test_missing_file_read_by_the_command_itself(name, key, tiny_inputs, tmp_path):
    """Inputs a command reads with its own code (after its imports): still one line naming the file."""
    case = COMMANDS[name]
    work = tmp_path / "work"
    work.mkdir()
    bad = tmp_path / "no-such.conllu"
    p = case_inputs(tiny_inputs, work, case, **{key: str(bad)})
    proc = run(case.argv(p), cwd=work)
    assert proc.returncode == 2, proc.stderr[-3000:]
    line = one_error(proc)
    assert line.startswith(f"alignfreeze: error: {bad}: no such "), line
    assert not list(work.iterdir())


# wrong content, as the reader finds it: (file name, content, expected message after the path)
WRONG = {
    "conllu": ("wrong.conllu", "lang,gain\nfr,1.5\n", r":\d+: "),
    "pairs": ("wrong.jsonl", "1\tThe\tthe\tDET\t_\t_\t2\tdet\t_\t_\n", r":1: invalid JSON"),
    "dictionary": ("wrong.txt", "cat chat chatte\n", r":1: expected 'source target'"),
    "gains": ("wrong.csv", '{"lang": "fr", "gain": 1.5}\n', r":1: the header has no column\(s\) lang, gain"),
    "config": ("wrong.yaml", "- full\n- front\n", r": expected a YAML mapping of keys"),
    "model": ("wrong-model", None, r": model_type 'no-such-family' is not in the architecture table "),
}
WRONG_CASES = sorted({(name, key) for name, key in INPUTS if key != "table"})  # plot: the figures' own checks
# read before torch is imported (the others are read by library code after the model loads)
READ_FIRST = {("data stats", "en"), ("pairs", "en"), ("pairs", "fr"), ("pairs", "dictionary"),
              ("experiment", "config"), ("cka", "en"), ("align-eval", "en"), ("align-eval", "fr"),
              ("attribution", "en"), ("layer-effect", "en"), ("layer-effect", "fr"),
              *((name, key) for name, key in INPUTS if key in MODEL_KEYS)}


def _wrong(key: str, tmp: Path) -> tuple[Path, str]:
    kind = "model" if key in MODEL_KEYS else key if key in WRONG else "conllu"
    fname, text, expected = WRONG[kind]
    f = tmp / fname
    if text is None:
        f.mkdir()
        (f / "config.json").write_text('{"model_type": "no-such-family"}\n')
    else:
        f.write_text(text)
    return f, expected


@pytest.mark.parametrize("name, key", WRONG_CASES)
def test_wrong_format_is_one_line_naming_the_file_and_line(name, key, tiny_inputs, tmp_path):
    case = COMMANDS[name]
    case.skip_if_unavailable()
    bad, expected = _wrong(key, tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    p = case_inputs(tiny_inputs, work, case, **{key: str(bad)})
    proc = run(case.argv(p), cwd=work, env=PROFILE)
    err = _stderr(proc.stderr)
    assert proc.returncode == 2, err[-3000:]
    line = one_error(err)
    assert re.match(re.escape(f"alignfreeze: error: {bad}") + expected, line), line
    assert not [f for f in work.iterdir() if f.name != "exp.yaml"]  # no output, no temp files
    if (name, key) in READ_FIRST:
        assert "torch" not in _imports(proc.stderr), "the file was read after the heavy imports"


OUT_CASES = sorted(name for name, case in COMMANDS.items() if case.out is not None)


def _out_fault(kind: str, case, work: Path) -> tuple[str, Path, str]:
    """(--out, the path the message names, the expected message after it)."""
    out, first = work / case.out, work / case.first_out
    if kind == "parent-is-a-file":
        (work / "a-file").write_text("not a folder\n")
        return (str(work / "a-file" / case.out), work / "a-file" / case.first_out,
                f": cannot be written: {work / 'a-file'} is a file, not a folder")
    if kind == "read-only-place":
        return (f"/proc/alignfreeze-test/{case.out}", Path(f"/proc/alignfreeze-test/{case.first_out}"),
                ": cannot be written: /proc: ")
    if kind == "exists":
        if case.out_kind == "folder" or (case.out_kind is None and not Path(case.out).suffix):
            first.mkdir()
            (first / "earlier-result.txt").write_text("keep me\n")
        else:
            first.write_text("keep me\n")
        return str(out), first, ": exists already (an earlier run?); pass --overwrite to replace it"
    if kind == "wrong-kind":
        if case.out_kind == "folder":
            first.write_text("keep me\n")
            return str(out), first, ": is a file (expected the name of an output folder)"
        first.mkdir()
        (first / "x").write_text("keep me\n")
        return str(out), first, ": is a folder (expected the name of an output file)"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["parent-is-a-file", "read-only-place", "exists", "wrong-kind"])
@pytest.mark.parametrize("name", OUT_CASES)
def test_out_that_cannot_be_written_or_exists_is_refused_before_any_work(name, kind, tiny_inputs, tmp_path):
    if kind == "read-only-place" and not Path("/proc/self").is_dir():
        pytest.skip("needs /proc")
    case = COMMANDS[name]
    if kind == "wrong-kind" and case.out_kind is None:
        pytest.skip("the command does not say whether its --out is a file or a folder")
    case.skip_if_unavailable()
    work = tmp_path / "work"
    work.mkdir()
    out, shown, expected = _out_fault(kind, case, work)
    p = case_inputs(tiny_inputs, work, case, out=out)
    before = _snapshot(tmp_path)
    proc = run(case.argv(p), cwd=work, env=PROFILE)
    err = _stderr(proc.stderr)
    assert proc.returncode == 2, err[-3000:]
    line = one_error(err, alone=True)
    assert line.startswith(f"alignfreeze: error: {shown}{expected}"), line
    assert _snapshot(tmp_path) == before
    assert not _imports(proc.stderr) & {"torch", "transformers"}


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere: permissions cannot be tested")
def test_out_in_a_folder_without_write_permission(tiny_inputs, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        proc = run(COMMANDS["pairs"].argv({**tiny_inputs, "out": str(locked / "p.jsonl")}))
        assert proc.returncode == 2
        assert one_error(proc).startswith(f"alignfreeze: error: {locked / 'p.jsonl'}: cannot be written: {locked}: ")
    finally:
        locked.chmod(0o755)


def test_the_same_command_twice_into_one_out(tiny_inputs, tmp_path):
    """The second run is refused and the first run's output is untouched; --overwrite says
    what it replaces and replaces it (with the user's umask, not a temp file's 0600)."""
    argv = COMMANDS["pairs"].argv({**tiny_inputs, "out": str(tmp_path / "p.jsonl")})
    assert run(argv).returncode == 0
    first = (tmp_path / "p.jsonl").read_bytes()
    stamp = (tmp_path / "p.jsonl").stat().st_mtime_ns
    again = run(argv)
    assert again.returncode == 2 and again.stdout == ""
    assert one_error(again) == (f"alignfreeze: error: {tmp_path / 'p.jsonl'}: exists already (an earlier run?); "
                                "pass --overwrite to replace it, or choose another --out")
    assert (tmp_path / "p.jsonl").read_bytes() == first and (tmp_path / "p.jsonl").stat().st_mtime_ns == stamp
    os.chmod(tmp_path / "p.jsonl", 0o600)
    replaced = run([*argv, "--overwrite"], env={**ENV})
    assert replaced.returncode == 0
    assert f"alignfreeze: --overwrite: {tmp_path / 'p.jsonl'} will be replaced when this run completes" in \
        replaced.stderr
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "p.jsonl").stat().st_mode & 0o777 == 0o666 & ~mask
    assert sorted(f.name for f in tmp_path.iterdir()) == ["p.jsonl"]  # no temp files left


def test_unknown_prepared_model_and_missing_extras_are_one_line(tmp_path):
    proc = run(["models", "prepare", "no-such-model", "--cache", tmp_path])
    assert proc.returncode == 2
    assert one_error(proc).startswith("alignfreeze: error: 'no-such-model' is not a prepared model (known: ")
