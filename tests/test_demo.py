"""The demo end to end on its CI path (--quick: a tiny random BERT, 16 parallel sentences per
language): four arms, seven languages, every table, the report; a re-run reuses every step;
a changed input or an edited output runs exactly the steps that depend on it."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from alignfreeze.cli import main

LANGS = {"en", "fr", "de", "ru", "ar", "hi", "zh"}
ARMS = {"baseline", "full", "front", "back"}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "run"
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["demo", "--quick", "--no-progress", "--out", str(out)]) == 0
    return out, buf.getvalue()


def test_quick_demo_writes_every_table_for_four_arms_and_seven_languages(quick_run):
    out, log = quick_run
    for step in ("pairs-en-zh", "realign-full", "realign-front", "realign-back", "measure-baseline"):
        assert f"[{step}] reused" not in log
    probe = pd.read_csv(out / "probe.csv")
    assert set(probe["model"]) == ARMS and set(probe["lang"]) == LANGS
    assert set(probe["layer"]) == {0, 1, 2}
    assert (probe["ci_low"] <= probe["value"]).all() and (probe["value"] <= probe["ci_high"]).all()
    drift = pd.read_csv(out / "drift.csv")
    assert set(drift["model"]) == ARMS - {"baseline"} and set(drift["lang"]) == LANGS
    cka = drift[drift["metric"] == "cka"]["value"]
    assert cka.between(0, 1).all() and (cka < 1).any()  # realignment moved something
    forgetting = pd.read_csv(out / "forgetting.csv")
    assert set(forgetting["model"]) == ARMS - {"baseline"} and set(forgetting["baseline"]) == {"baseline"}
    retrieval = pd.read_csv(out / "retrieval.csv")
    assert set(retrieval["tgt"]) == LANGS - {"en"} and set(retrieval["task"]) == {"sentence", "word"}
    matrix = pd.read_csv(out / "cka.csv")
    assert set(matrix["model_b"]) == ARMS and len(matrix) == 4 * 3 * 3
    for arm in ARMS - {"baseline"}:
        assert (out / f"realign-{arm}" / "manifest.json").is_file()
    for name in ("drift", "forgetting", "cka", "probe", "retrieval_sentence", "retrieval_word"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 0
    assert (out / "report.html").stat().st_size > 0 and (out / "report.md").stat().st_size > 0


def test_front_and_back_freeze_what_they_say(quick_run):
    """The --quick base is rebuilt identically (same weight hash as the manifest); in the
    checkpoints the frozen block is bit-identical to it and the other block moved."""
    import torch

    from alignfreeze.pipeline import DemoConfig, choose_model
    from alignfreeze.pipeline_data import resolve
    from core.manifest import base_weight_hash
    from core.models import load_model

    out, _ = quick_run
    cfg = DemoConfig(quick=True)
    _, base, _ = choose_model(cfg, resolve(cfg).texts())
    run = json.loads((out / "run.json").read_text())
    assert base_weight_hash(base) == run["model"]["weight_hash"]
    before = base.state_dict()
    for arm, frozen, moving in (("front", 0, 1), ("back", 1, 0)):
        assert run["arms"][arm]["frozen_layers"] == [frozen + 1]  # layer i = output of block i
        after = load_model(out / f"realign-{arm}").state_dict()
        same = {k for k in before if torch.equal(before[k], after[k])}
        assert {k for k in before if k.startswith(f"encoder.layer.{frozen}.")} <= same
        assert {k for k in before if k.startswith(f"encoder.layer.{moving}.")} - same


def test_measured_sentences_are_not_the_realignment_sentences(quick_run):
    out, _ = quick_run
    seen = set()
    for f in (out / "pairs").glob("en-*/realign.jsonl"):
        seen |= {json.loads(line)["id"] for line in f.read_text().splitlines()}
    measured = set(pd.read_csv(out / "probe_sentences.csv")["sent_id"])
    assert seen and measured and not seen & measured
    run = json.loads((out / "run.json").read_text())
    assert run["corpus"]["split"] == {"realign_ids": 8, "measured_ids": 8, "first_measured": "demo-09"}


def test_manifest_records_config_hashes_seeds_and_versions(quick_run):
    out, _ = quick_run
    run = json.loads((out / "run.json").read_text())
    assert run["kind"] == "demo" and run["config"]["quick"] is True
    assert len(run["model"]["weight_hash"]) == 64
    for arm in ("full", "front", "back"):
        assert run["arms"][arm]["base_model"]["weight_hash"] == run["model"]["weight_hash"]
    files = {f["path"].rsplit("/", 1)[-1]: f["sha256"] for f in run["corpus"]["files"]}
    assert {"en_afdemo-ud-test.conllu", "zh_afdemo-ud-test.conllu", "en_afdemo-ud-train.conllu",
            "en-zh.afdemo.txt"} <= set(files)
    assert run["seeds"]["realignment"] == 42 and "torch" in run["environment"]["packages"]


def test_rerun_reuses_every_step_and_changes_rerun_what_depends_on_them(quick_run, tmp_path, capsys):
    src, _ = quick_run
    out = tmp_path / "run"
    shutil.copytree(src, out)
    before = (out / "probe.csv").read_bytes()
    assert main(["demo", "--quick", "--no-progress", "--out", str(out)]) == 0
    log = capsys.readouterr().out
    steps = [f"pairs-en-{x}" for x in ("fr", "de", "ru", "ar", "hi", "zh")]
    steps += [f"realign-{a}" for a in ("full", "front", "back")] + [f"measure-{a}" for a in sorted(ARMS)]
    for step in steps:
        assert f"[{step}] reused: inputs unchanged" in log, step
    assert "runs again" not in log
    assert (out / "probe.csv").read_bytes() == before

    # another realignment seed: the pairs stay, the three realignments and their measurements run again
    assert main(["demo", "--quick", "--no-progress", "--seed", "7", "--out", str(out)]) == 0
    log = capsys.readouterr().out
    assert "[pairs-en-fr] reused" in log and "[measure-baseline] reused" in log
    assert "[realign-front] runs again: inputs changed (realign.seed)" in log
    assert "[measure-front] runs again: inputs changed (model)" in log

    # an edited output is never taken for the step's result
    table = out / "parts" / "back" / "probe.csv"
    table.write_text(table.read_text().replace("upos", "UPOS", 1))
    assert main(["demo", "--quick", "--no-progress", "--seed", "7", "--out", str(out)]) == 0
    log = capsys.readouterr().out
    assert "[measure-back] runs again: output parts/back/probe.csv was changed or removed" in log
    assert "[measure-full] reused" in log
    assert "UPOS" not in table.read_text()


def test_out_policy_a_demo_folder_is_continued_anything_else_refused(quick_run, tmp_path, capsys):
    other = tmp_path / "notes"
    other.mkdir()
    (other / "mine.txt").write_text("keep me")
    assert main(["demo", "--quick", "--out", str(other)]) == 2
    assert "exists already (an earlier run?); pass --overwrite to replace it" in capsys.readouterr().err
    assert [f.name for f in other.iterdir()] == ["mine.txt"]
    # --overwrite starts afresh: nothing is reused, and the old folder is gone once the run completes
    src, _ = quick_run
    out = tmp_path / "run"
    shutil.copytree(src, out)
    (out / "stale.txt").write_text("from before")
    assert main(["demo", "--quick", "--no-progress", "--out", str(out), "--overwrite"]) == 0
    log = capsys.readouterr().out
    assert "reused" not in log and "[measure] back:" in log
    assert not (out / "stale.txt").exists() and not list(tmp_path.glob(".run.*"))


def test_bad_options_are_one_line_errors(tmp_path, capsys):
    assert main(["demo", "--quick", "--langs", "fr", "xx", "--out", str(tmp_path / "a")]) == 2
    assert "--langs xx: the embedded corpus has fr, de, ru, ar, hi, zh" in capsys.readouterr().err
    assert main(["demo", "--quick", "--pairs", "fr", "--out", str(tmp_path / "b")]) == 2
    assert "--pairs 'fr': expected LANG=VALUE" in capsys.readouterr().err
    assert main(["demo", "--quick", "--aligner", "magic", "--out", str(tmp_path / "c")]) == 2
    assert "--aligner 'magic'" in capsys.readouterr().err


def test_facade_names_resolve():
    import alignfreeze as af

    assert callable(af.run_demo) and callable(af.run_experiment) and callable(af.load_experiment)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        af.nope  # noqa: B018
