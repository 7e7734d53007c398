"""The pieces of the CLI's checks and output policy, in-process: UTF-8 check across read
blocks, writability, the --overwrite replacement that restores the old output when a run
fails, and how errors become one line."""

from __future__ import annotations

import argparse
import os

import pytest

from alignfreeze.cli import error_message
from alignfreeze.preflight import (
    InputError,
    check_outputs,
    check_utf8,
    check_writable,
    need_file,
    replacing_folder,
)


def test_utf8_check_names_the_line_and_reads_across_blocks(tmp_path):
    f = tmp_path / "t.conllu"
    # a 3-byte character cut by the block boundary is fine; a bad byte on line 3 is not
    f.write_bytes(b"a" * 9 + "\u20ac".encode() + b"\n# x\n\xff\n")
    with pytest.raises(InputError, match=rf"^{f}:3: not UTF-8 text \(byte 0xff\); expected a treebank as UTF-8"):
        check_utf8(f, "a treebank", chunk=10)
    f.write_bytes(b"a" * 9 + "\u20ac".encode() + b"\n")
    check_utf8(f, "a treebank", chunk=10)
    f.write_bytes("\ufeff# BOM first\n".encode())  # a byte-order mark is UTF-8
    check_utf8(f, "a treebank", chunk=2)
    f.write_bytes(b"ok\n\xe2\x82")
    with pytest.raises(InputError, match=r":2: not UTF-8 text \(the file ends inside a character\)"):
        check_utf8(f, "a treebank", chunk=3)


def test_need_file(tmp_path):
    with pytest.raises(InputError, match=r"x.txt: no such file \(expected a dictionary\)$"):
        need_file(tmp_path / "x.txt", "a dictionary")
    with pytest.raises(InputError, match=r": is a folder \(expected a dictionary\)$"):
        need_file(tmp_path, "a dictionary")
    (tmp_path / "e.txt").touch()
    with pytest.raises(InputError, match=r"e.txt: is empty \(expected a dictionary\)$"):
        need_file(tmp_path / "e.txt", "a dictionary")
    assert need_file(tmp_path / "e.txt", "a dictionary", allow_empty=True) == tmp_path / "e.txt"


def test_check_writable(tmp_path):
    check_writable(tmp_path / "new" / "deeper" / "out.csv")  # created later, under a writable folder
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match=rf"cannot be written: {tmp_path / 'file'} is a file, not a folder"):
        check_writable(tmp_path / "file" / "out.csv")


def _args(**kw):
    return argparse.Namespace(**{"overwrite": False, **kw})


def test_check_outputs_policy(tmp_path, capsys):
    out = tmp_path / "t.csv"
    assert check_outputs(_args(out=str(out))) == []
    out.write_text("earlier\n")
    with pytest.raises(InputError, match="exists already .* pass --overwrite"):
        check_outputs(_args(out=str(out)))
    assert check_outputs(_args(out=str(out), overwrite=True)) == [out]
    assert f"--overwrite: {out} will be replaced when this run completes" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert check_outputs(_args(out=str(empty), out_kind="folder")) == []  # nothing to lose
    (empty / "manifest.json").write_text("{}")
    with pytest.raises(InputError, match="already holds a finished run"):
        check_outputs(_args(out=str(empty), out_kind="folder"))
    assert check_outputs(_args(out=str(empty), out_kind="folder", resume=True)) == []  # --resume continues it
    assert capsys.readouterr().err == ""


def test_overwrite_of_a_folder_that_is_an_input_is_refused(tmp_path, capsys):
    """The CLI sets an --overwrite folder aside while the run reads its inputs: an input that
    is that folder, or inside it, would be gone (seen: `midalign merge --adapters a b --out a`)."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "adapter_config.json").write_text("{}")
    other = tmp_path / "other"
    other.mkdir()
    for inputs, option in (([str(run), str(other)], "--adapters"), ([str(other), str(run / "adapter_config.json")],
                                                                    "--adapters")):
        with pytest.raises(InputError, match=rf"^{run}: is also an input of this command \({option} "):
            check_outputs(_args(out=str(run), out_kind="folder", overwrite=True, adapters=inputs))
    with pytest.raises(InputError, match=r"\(--base-model "):
        check_outputs(_args(out=str(run) + "/", out_kind="folder", overwrite=True, base_model=str(run)))
    # inputs elsewhere (or a name that is no path) are fine
    assert check_outputs(_args(out=str(run), out_kind="folder", overwrite=True, adapters=[str(other)],
                               model="run", limit=3)) == [run]
    assert "will be replaced when this run completes" in capsys.readouterr().err


def test_replacing_folder_restores_the_old_output_when_the_run_fails(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "result.txt").write_text("earlier\n")
    with pytest.raises(KeyboardInterrupt), replacing_folder(out, overwrite=True):
        assert not out.exists()  # set aside while the new one is built
        out.mkdir()
        (out / "half.txt").write_text("half")
        raise KeyboardInterrupt
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert [p.name for p in out.iterdir()] == ["result.txt"] and (out / "result.txt").read_text() == "earlier\n"
    with replacing_folder(out, overwrite=True):
        out.mkdir()
        (out / "new.txt").write_text("new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"] and [p.name for p in out.iterdir()] == ["new.txt"]


def test_replacing_folder_without_overwrite(tmp_path):
    fresh = tmp_path / "fresh"
    with pytest.raises(RuntimeError), replacing_folder(fresh, overwrite=False):
        fresh.mkdir()
        raise RuntimeError("failed")
    assert not fresh.exists()  # no half-written folder
    with pytest.raises(RuntimeError), replacing_folder(fresh, overwrite=False, keep_partial=True):
        (fresh / "checkpoints").mkdir(parents=True)
        raise RuntimeError("failed")
    assert (fresh / "checkpoints").is_dir()  # what --resume continues from


@pytest.mark.parametrize("exc, line", [
    (FileNotFoundError(2, "No such file or directory", "x.csv"), "x.csv: No such file or directory"),
    (IsADirectoryError(21, "Is a directory", "runs"), "runs: Is a directory (expected a file)"),
    (KeyError("'e5-smal' is not a prepared model"), "'e5-smal' is not a prepared model"),
    (ValueError("f.conllu:3: bad\n  more detail\n"), "f.conllu:3: bad more detail"),
    (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"),
     "a file is not UTF-8 text (invalid start byte at byte 0): expected UTF-8 text"),
    (TypeError("a bug"), None),
    (AttributeError("a bug"), None),
])
def test_error_message(exc, line):
    assert error_message(exc) == line


def test_an_in_process_run_leaves_the_environment_as_it_was(monkeypatch, tmp_path, fixtures_dir, capsys):
    from huggingface_hub import constants

    from alignfreeze.cli import main

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TQDM_MININTERVAL", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    rc = main(["cka", "--model", "some-org/not-cached", "--treebank", str(fixtures_dir / "en_demo-ud-test.conllu"),
               "--out", str(tmp_path / "c.csv"), "--offline"])
    assert rc == 2 and "offline mode is on" in capsys.readouterr().err  # --offline held during the run
    assert "HF_HUB_OFFLINE" not in os.environ and "TQDM_MININTERVAL" not in os.environ  # and not after
