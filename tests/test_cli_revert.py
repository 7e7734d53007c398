"""``alignfreeze revert`` and ``alignfreeze layer-effect`` through the INSTALLED script, beyond
the cases every command gets (tests/clitools.py): --keep, a checkpoint that is not one, an
--out that is an input, options and files refused before torch is imported, --overwrite."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from clitools import ENV, one_error, run, write_tiny_inputs

PROFILE = {**ENV, "PYTHONPROFILEIMPORTTIME": "1"}


@pytest.fixture(scope="module")
def tiny_inputs(tmp_path_factory):
    return write_tiny_inputs(tmp_path_factory)


def _imports(err: str) -> set[str]:
    return {ln.rsplit("|", 1)[-1].strip().split(".")[0] for ln in err.splitlines() if ln.startswith("import time:")}


def _refused_before_torch(proc) -> str:
    err = "\n".join(ln for ln in proc.stderr.splitlines() if not ln.startswith("import time:"))
    assert proc.returncode == 2, err[-3000:]
    assert not _imports(proc.stderr) & {"torch", "transformers", "pandas"}, "refused after the heavy imports"
    return one_error(err, alone=True)


def _weights(folder):
    from safetensors.torch import load_file

    return load_file(str(Path(folder) / "model.safetensors"))


def test_keep_is_the_inverse_of_layers(tiny_inputs, tmp_path):
    p = tiny_inputs
    a = run(["revert", "--model", p["realigned"], "--base", p["model"], "--layers", "emb,2", "--out", tmp_path / "a"])
    b = run(["revert", "--model", p["realigned"], "--base", p["model"], "--keep", "1", "--out", tmp_path / "b"])
    assert a.returncode == 0 and b.returncode == 0, a.stderr[-2000:] + b.stderr[-2000:]
    ma, mb = (json.loads((tmp_path / x / "manifest.json").read_text()) for x in "ab")
    assert ma["reverted_layers"] == mb["reverted_layers"] == [0, 2] and mb["kept_layers"] == [1]
    assert (ma["mode"], mb["mode"]) == ("revert", "keep") and mb["spec"] == "1"
    wa, wb, base, ckpt = _weights(tmp_path / "a"), _weights(tmp_path / "b"), _weights(p["model"]), \
        _weights(p["realigned"])
    assert wa.keys() == wb.keys() and all((wa[k] == wb[k]).all() for k in wa)
    moved = [k for k in wa if not (ckpt[k] == base[k]).all()]
    assert any(k.startswith("encoder.layer.0.") for k in moved)  # block 1 moved: --keep 1 keeps it realigned
    for k in wb:
        want = ckpt[k] if k.startswith("encoder.layer.0.") else base[k]
        assert (wb[k] == want).all(), k
    both = run(["revert", "--model", p["realigned"], "--base", p["model"], "--layers", "1", "--keep", "2", "--out",
                tmp_path / "c"])
    assert both.returncode == 2 and "not allowed with argument" in both.stderr


def test_a_folder_that_is_not_a_checkpoint_is_refused_before_torch(tiny_inputs, tmp_path):
    p = tiny_inputs
    plain = tmp_path / "plain"
    shutil.copytree(p["realigned"], plain)
    (plain / "manifest.json").unlink()
    line = _refused_before_torch(run(["revert", "--model", plain, "--base", p["model"], "--layers", "1", "--out",
                                      tmp_path / "r"], env=PROFILE))
    assert line.startswith(f"alignfreeze: error: {plain}: no manifest.json") and "--force" in line
    line = _refused_before_torch(run(["layer-effect", "--model", plain, "--base", p["model"], "--train", p["en"],
                                      "--eval", p["fr"], "--out", tmp_path / "e"], env=PROFILE))
    assert line.startswith(f"alignfreeze: error: {plain}: no manifest.json")
    forced = run(["revert", "--model", plain, "--base", p["model"], "--layers", "1", "--out", tmp_path / "r",
                  "--force"])
    assert forced.returncode == 0, forced.stderr[-2000:]
    assert json.loads((tmp_path / "r" / "manifest.json").read_text())["checkpoint"]["base_check"] == \
        "unchecked (forced)"
    assert not (tmp_path / "e").exists()


def test_out_that_is_an_input_is_refused(tiny_inputs, tmp_path):
    p = tiny_inputs
    for argv in (["revert", "--model", p["realigned"], "--base", p["model"], "--layers", "1", "--out", p["realigned"],
                  "--overwrite"],
                 ["revert", "--model", p["realigned"], "--base", p["model"], "--layers", "1", "--out", p["model"],
                  "--overwrite"],
                 ["layer-effect", "--model", p["realigned"], "--base", p["model"], "--train", p["en"], "--eval",
                  p["fr"], "--out", p["realigned"], "--overwrite"]):
        line = _refused_before_torch(run(argv, env=PROFILE))
        assert "--out" in line and "choose another --out" in line, line
    assert (Path(p["realigned"]) / "manifest.json").is_file() and (Path(p["model"]) / "config.json").is_file()


@pytest.mark.parametrize("extra, expected", [
    (["--measures", "word-retrieval"], "measure word-retrieval needs --pairs"),
    (["--measures", "upos-finetune"], "measure upos-finetune needs --finetune-train"),
    (["--measures", "nope"], "measures ['nope']: expected some of"),
    (["--level", "1.5"], "level must be in (0, 1)"),
    (["--chunk-sentences", "0"], "chunk_sentences must be >= 1"),
])
def test_layer_effect_options_are_checked_before_torch(tiny_inputs, tmp_path, extra, expected):
    p = tiny_inputs
    line = _refused_before_torch(run(["layer-effect", "--model", p["realigned"], "--base", p["model"], "--train",
                                      p["en"], "--eval", p["fr"], "--out", tmp_path / "e", *extra], env=PROFILE))
    assert expected in line, line
    assert not (tmp_path / "e").exists()


def test_layer_effect_reads_its_files_before_torch(tiny_inputs, tmp_path):
    """A malformed pairs file, a missing pivot, a pairs file of no --eval language: one line
    naming the file, before the heavy imports."""
    p = tiny_inputs
    base = ["layer-effect", "--model", p["realigned"], "--base", p["model"], "--train", p["en"], "--eval", p["fr"],
            "--out", tmp_path / "e"]
    bad = tmp_path / "en-fr.jsonl"
    bad.write_text('{"id": "s1", "src": ["The"], "tgt": ["Le"], "links": [[0, 0]]}\nnot json\n')
    proc = run([*base, "--measures", "word-retrieval", "--pairs", bad], env=PROFILE)
    assert proc.returncode == 2 and "torch" not in _imports(proc.stderr)
    assert one_error(proc).startswith(f"alignfreeze: error: {bad}:2: invalid JSON")
    proc = run([*base, "--pivot", tmp_path / "no-such.conllu"], env=PROFILE)
    assert _refused_before_torch(proc).startswith(f"alignfreeze: error: {tmp_path / 'no-such.conllu'}: no such")
    de = tmp_path / "en-de.jsonl"
    shutil.copy(p["pairs"], de)
    proc = run([*base, "--measures", "word-retrieval", "--pairs", de], env=PROFILE)
    assert proc.returncode == 2 and "torch" not in _imports(proc.stderr)
    assert "language 'de'" in one_error(proc) and str(de) in one_error(proc)
    assert not (tmp_path / "e").exists()


def test_a_bad_spec_fails_before_the_base_loads(tiny_inputs, tmp_path):
    from realign.revert import revert_checkpoint

    with pytest.raises(ValueError, match=r"0\.\.2"):
        revert_checkpoint(tiny_inputs["realigned"], tmp_path / "no-such-base", tmp_path / "r", layers="7")


def test_overwrite_replaces_the_study_only_when_complete(tiny_inputs, tmp_path):
    p = tiny_inputs
    out = tmp_path / "e"
    argv = ["layer-effect", "--model", p["realigned"], "--base", p["model"], "--train", p["en"], "--eval", p["fr"],
            "--revert", "2", "--out", out, "--no-progress", "--no-figure"]
    assert run(argv).returncode == 0
    first = (out / "effects.csv").read_text()
    again = run(argv)
    assert again.returncode == 2 and "pass --overwrite" in one_error(again)
    failed = run([*argv, "--overwrite", "--eval", tmp_path / "nothing-here"])  # fails: the old study stays
    assert failed.returncode == 2 and (out / "effects.csv").read_text() == first
    done = run([*argv, "--overwrite", "--revert", "1"])
    assert done.returncode == 0, done.stderr[-2000:]
    assert "will be replaced" in done.stderr
    import pandas as pd

    assert set(pd.read_csv(out / "effects.csv")["variant"]) == {"block 1"}
    assert sorted(f.name for f in tmp_path.iterdir()) == ["e"]  # no temporary folder left next to it
