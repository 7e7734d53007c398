"""Loading from local folders, offline; unsupported families; the in-process CLI."""

from __future__ import annotations

import json

import pytest
from transformers import T5Config, T5Model

from core.arch import UnsupportedArchitectureError
from core.models import load, load_model, resolve_model_path


@pytest.mark.parametrize("family", ["bert", "xlm-roberta", "distilbert", "qwen2"])
def test_load_saved_tiny_model_offline(tiny_models, tmp_path, family):
    model, tok = tiny_models(family)
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    m2, t2 = load(tmp_path, offline=True)
    assert type(m2).__name__ == type(model).__name__ and not m2.training
    assert t2.is_fast and len(t2) == len(tok)
    clf = load_model(tmp_path, task="token-classification", offline=True, num_labels=5)
    assert clf.config.num_labels == 5


def test_unsupported_family_and_task(tmp_path):
    T5Model(T5Config(d_model=16, d_ff=32, num_layers=1, num_heads=2, d_kv=8, vocab_size=50)).save_pretrained(tmp_path)
    with pytest.raises(UnsupportedArchitectureError, match="'t5'"):
        load_model(tmp_path, offline=True)
    with pytest.raises(ValueError, match="unknown task"):
        load_model(tmp_path, task="qa")


def test_offline_hub_name_fails_clearly(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # empty cache
    with pytest.raises(OSError):
        load_model("xlm-roberta-base", offline=True)
    assert resolve_model_path("xlm-roberta-base") == "xlm-roberta-base"


def test_cli_data_stats_json_and_errors(tmp_path, capsys, fixtures_dir):
    from alignfreeze.cli import main

    f = fixtures_dir / "fr_demo-ud-test.conllu"
    assert main(["data", "stats", str(f), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out[str(f)]["sentences"] == 12 and out[str(f)]["words"] == 100
    assert sum(out[str(f)]["upos"].values()) == 100
    assert main(["data", "stats", str(fixtures_dir / "*_demo-ud-test.conllu")]) == 0
    text = capsys.readouterr().out
    assert text.count("12 sentences") == 3
    bad = tmp_path / "bad.conllu"
    bad.write_text("1\tx\tx\tNOUNS\t_\t_\t0\troot\t_\t_\n\n")
    assert main(["data", "stats", str(bad)]) == 2
    assert f"{bad}:1: unknown UPOS tag 'NOUNS'" in capsys.readouterr().err


def test_cli_features_writes_shards(tiny_models, tmp_path, fixtures_dir):
    from alignfreeze.cli import main
    from core.features import ShardedFeatures

    model, tok = tiny_models("bert")
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    rc = main(["features", "--model", str(tmp_path / "m"), "--offline", "--treebank",
               str(fixtures_dir / "de_demo-ud-test.conllu"), "--layers", "0,2", "--pooling", "mean",
               "--chunk-sentences", "5", "--out", str(tmp_path / "feats")])
    assert rc == 0
    sf = ShardedFeatures(tmp_path / "feats")
    assert len(sf) == 3 and sf.layers == (0, 2) and sf.pooling == "mean"
    assert sf.load().n_words == 93
