"""The grid reuses a finished cell, a realignment, a fine-tuning or word pairs only while
they were computed from what the YAML asks now (configs, data hashes and selections, base
weights); otherwise it computes them again and says why. Its checkpoints carry the cell's
name."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from alignfreeze.experiment import run_experiment


@pytest.fixture
def data(tmp_path, fixtures_dir):
    """Copies of the demo fixtures the tests may change."""
    d = tmp_path / "data"
    d.mkdir()
    for name in ("en_demo-ud-test.conllu", "fr_demo-ud-test.conllu", "en-fr.txt"):
        shutil.copy(Path(fixtures_dir) / name, d / name)
    shutil.copy(Path(fixtures_dir) / "fr_demo-ud-test.conllu", d / "fr_eval-ud-test.conllu")  # targets only
    return d


def _save(model, tok, d):
    model.save_pretrained(d)
    tok.save_pretrained(d)
    return d


@pytest.fixture
def base(tmp_path, tiny_models):
    model, tok = tiny_models("bert")
    return _save(model, tok, tmp_path / "base")


def _yaml(tmp_path, data, base, **over):
    cfg = {"name": "reuse", "out": "out", "models": [{"name": "tiny", "path": str(base)}],
           "strategies": ["baseline", "full"], "seeds": [1],
           "parallel": [{"src": str(data / "en_demo-ud-test.conllu"), "tgt": str(data / "fr_demo-ud-test.conllu"),
                         "dictionary": str(data / "en-fr.txt")}],
           "aligners": ["dictionary"], "source": [str(data / "en_demo-ud-test.conllu")],
           "targets": [str(data / "fr_eval-ud-test.conllu")],
           "realign": {"steps": 2, "batch_size": 4, "lr": 1e-3},
           "finetune": {"steps": 2, "batch_size": 4, "lr": 1e-3, "warmup_ratio": 0.0}, "keep_models": True}
    cfg.update(over)
    p = tmp_path / "exp.yaml"
    p.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return p


FULL, BASE = "tiny__dictionary__full__s1", "tiny__-__baseline__s1"


def _stamp(f: Path) -> int:
    return f.stat().st_mtime_ns


def test_reuse_follows_the_yaml(tmp_path, data, base, capsys):
    path = _yaml(tmp_path, data, base)
    out = tmp_path / "out"
    cells = out / "cells"
    assert sorted(run_experiment(path).ran) == sorted([FULL, BASE])
    # names from the cell; the fine-tuning records the weights it started from
    rm = json.loads((cells / FULL / "realigned" / "manifest.json").read_text())
    fm = json.loads((cells / FULL / "finetuned" / "manifest.json").read_text())
    assert rm["name"] == "full-s1" and fm["name"] == "full-s1+upos"
    assert fm["base_model"]["weight_hash"] == rm["final_weight_hash"] != rm["base_model"]["weight_hash"]
    assert json.loads((cells / BASE / "finetuned" / "manifest.json").read_text())["name"] == "baseline-s1+upos"
    plan = json.loads((cells / FULL / "cell.json").read_text())
    assert {"base_weights", "pairs", "realign", "finetune", "source", "targets", "evaluate"} <= set(plan)

    # 1. nothing changed: everything reused, and said so
    stamps = {c: _stamp(cells / c / "results.csv") for c in (FULL, BASE)}
    capsys.readouterr()
    r = run_experiment(path)
    assert r.ran == [] and sorted(r.skipped) == sorted([FULL, BASE])
    assert capsys.readouterr().out.count("results reused (configs, data hashes and base weights") == 2
    assert {c: _stamp(cells / c / "results.csv") for c in (FULL, BASE)} == stamps

    # 2. the realignment's learning rate changes: the full cell is realigned and fine-tuned again
    path = _yaml(tmp_path, data, base, realign={"steps": 2, "batch_size": 4, "lr": 5e-4})
    r = run_experiment(path)
    printed = capsys.readouterr().out
    assert r.ran == [FULL] and r.skipped == [BASE]
    assert "realign.lr: 0.001 -> 0.0005" in printed
    assert "realigned/ is stale, realigned again: config.lr: 0.001 -> 0.0005" in printed
    assert json.loads((cells / FULL / "realigned" / "manifest.json").read_text())["config"]["lr"] == 5e-4
    fm2 = json.loads((cells / FULL / "finetuned" / "manifest.json").read_text())
    assert fm2["base_model"]["weight_hash"] != fm["base_model"]["weight_hash"]  # from the new realignment

    # 3. a target treebank's content changes: only evaluation runs again, the models are reused
    t = data / "fr_eval-ud-test.conllu"
    t.write_text(t.read_text().split("\n\n", 1)[1])  # drop its first sentence
    r = run_experiment(path)
    printed = capsys.readouterr().out
    assert sorted(r.ran) == sorted([FULL, BASE]), (r.failed, printed)
    assert "targets[0].sha256" in printed and "targets[0].sentences: 12 -> 11" in printed
    assert printed.count("finetuned/ reused") == 2 and "realigned/ reused" in printed
    assert set(pd.read_csv(out / "results.csv")["n_sentences"]) == {11}

    # 4. a selection of the source treebank: fine-tuning runs again, the realignment is reused
    path = _yaml(tmp_path, data, base, source=[f"{data / 'en_demo-ud-test.conllu'}@1:8"],
                 realign={"steps": 2, "batch_size": 4, "lr": 5e-4})
    r = run_experiment(path)
    printed = capsys.readouterr().out
    assert sorted(r.ran) == sorted([FULL, BASE])
    assert "source[0].selection: \"all\" -> \"1:8\"" in printed and printed.count("finetuned/ is stale") == 2
    assert "realigned/ reused" in printed
    ft = json.loads((cells / BASE / "finetuned" / "manifest.json").read_text())
    assert ft["data_files"][0]["selection"] == "1:8" and ft["data"]["sentences"] == 8

    # 5. the dictionary changes: the word pairs are extracted again, the realignment follows
    d = data / "en-fr.txt"
    d.write_text("\n".join(d.read_text().splitlines()[:-3]) + "\n")
    r = run_experiment(path)
    printed = capsys.readouterr().out
    assert r.ran == [FULL] and r.skipped == [BASE]
    assert "pairs 00_en_demo-ud-test__fr_demo-ud-test.jsonl: extracted again: dictionary" in printed
    assert "realigned/ is stale" in printed and "data[0].sha256" in printed

    # 6. other base weights under the same path: everything runs again
    from core.tiny import tiny_model

    model, tok = tiny_model("bert")
    import torch

    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    _save(model, tok, base)
    r = run_experiment(path)
    printed = capsys.readouterr().out
    assert sorted(r.ran) == sorted([FULL, BASE]) and "base_weights:" in printed


def test_no_record_stale_checkpoints_and_cells_of_an_earlier_yaml(tmp_path, data, base, capsys):
    path = _yaml(tmp_path, data, base, strategies=["baseline"], keep_models=False)
    cells = tmp_path / "out" / "cells"
    run_experiment(path)
    assert not (cells / BASE / "finetuned").exists()  # keep_models: false
    (cells / BASE / "cell.json").unlink()  # a grid written before cell.json existed
    capsys.readouterr()
    assert run_experiment(path).ran == [BASE]
    assert "no record of what it was computed from (cell.json)" in capsys.readouterr().out

    # an interrupted realignment of another config is started over, not resumed
    ck = cells / FULL / "realigned" / "checkpoints" / "step_00000001"
    ck.mkdir(parents=True)
    (ck / "trainer_state.json").write_text(json.dumps({"config": {"lr": 0.5}, "data_files": [],
                                                       "base_weight_hash": "x"}))
    path = _yaml(tmp_path, data, base, strategies=["baseline", "full"], keep_models=False)
    r = run_experiment(path)
    printed = capsys.readouterr().out
    assert r.ran == [FULL] and not r.failed
    assert "the interrupted realignment" in printed and "started over" in printed and "config.lr: 0.5 -> 0.001" in printed

    # the YAML drops the full strategy: its cell is left out of the tables, and that is said
    path = _yaml(tmp_path, data, base, strategies=["baseline"], keep_models=False)
    run_experiment(path)
    assert "left out of the tables: " + FULL in capsys.readouterr().out
    assert set(pd.read_csv(tmp_path / "out" / "results.csv")["strategy"]) == {"baseline"}


def test_the_dry_run_says_what_would_be_reused(tmp_path, data, base, capsys):
    path = _yaml(tmp_path, data, base, strategies=["baseline"])
    run_experiment(path)
    capsys.readouterr()
    run_experiment(path, dry_run=True)
    assert "results reused" in capsys.readouterr().out
    path = _yaml(tmp_path, data, base, strategies=["baseline"], finetune={"steps": 3, "batch_size": 4})
    stamp = _stamp(tmp_path / "out" / "cells" / BASE / "results.csv")
    r = run_experiment(path, dry_run=True)
    printed = capsys.readouterr().out
    assert "finetune.steps: 2 -> 3" in printed and "would run" in printed and r.ran == []
    assert _stamp(tmp_path / "out" / "cells" / BASE / "results.csv") == stamp
