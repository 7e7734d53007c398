"""Loading from local folders, offline; unsupported families; the in-process CLI."""

from __future__ import annotations

import json
import time

import pytest
from transformers import T5Config, T5Model

from core.arch import UnsupportedArchitectureError
from core.models import ModelNotFoundError, check_model_name, load, load_model, resolve_model_path


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


@pytest.fixture
def empty_hf_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants

    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))  # read by the cache lookup at call time
    return cache


def test_offline_hub_name_fails_in_one_line(empty_hf_cache):
    t0 = time.perf_counter()
    with pytest.raises(ModelNotFoundError) as e:
        load_model("xlm-roberta-base", offline=True)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("xlm-roberta-base: not a local folder and not in the local HF cache")
    assert "offline mode is on" in msg and "save_pretrained" in msg
    assert time.perf_counter() - t0 < 5  # no hub retries


def test_unreachable_hub_is_one_line_without_retries(empty_hf_cache, monkeypatch):
    from core import models

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the discard port: nothing listens
    models.hub_unreachable.cache_clear()
    t0 = time.perf_counter()
    with pytest.raises(ModelNotFoundError, match=r"the HuggingFace hub is unreachable \(127\.0\.0\.1:9: .*\); "
                                                 r"pass a local copy instead"):
        resolve_model_path("some-org/some-model")
    assert time.perf_counter() - t0 < 5
    models.hub_unreachable.cache_clear()


def test_unreachable_hub_uses_the_hf_cache(empty_hf_cache, monkeypatch, tiny_models):
    """A hub model in the HF cache loads from there, offline or with the hub unreachable."""
    from core import models

    model, tok = tiny_models("bert")
    snap = empty_hf_cache / "models--some-org--tiny" / "snapshots" / ("0" * 40)
    model.save_pretrained(snap)
    tok.save_pretrained(snap)
    (empty_hf_cache / "models--some-org--tiny" / "refs").mkdir()
    (empty_hf_cache / "models--some-org--tiny" / "refs" / "main").write_text("0" * 40)
    assert resolve_model_path("some-org/tiny", offline=True) == str(snap)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    models.hub_unreachable.cache_clear()
    m2, _ = load("some-org/tiny")
    assert m2.config.hidden_size == model.config.hidden_size
    models.hub_unreachable.cache_clear()


@pytest.mark.parametrize("name, expected", [
    ("./no-such-model", "./no-such-model: no such local folder"),
    ("/no/such/folder", "/no/such/folder: no such local folder"),
    ("a/b/c", "a/b/c: no such local folder"),
])
def test_mistyped_local_folder_is_one_line_at_once(name, expected):
    with pytest.raises(ModelNotFoundError) as e:
        check_model_name(name)
    assert str(e.value).startswith(expected) and "\n" not in str(e.value)


def test_mistyped_folder_names_the_close_ones(tmp_path, monkeypatch):
    (tmp_path / "runs" / "realigned-front").mkdir(parents=True)
    (tmp_path / "runs" / "realigned-front" / "config.json").write_text("{}")
    monkeypatch.chdir(tmp_path)
    # "runs/..." is a valid hub id, but runs/ is a local folder: the user meant a local path
    with pytest.raises(ModelNotFoundError, match=r"runs/realigned-fornt: no such local folder \(did you mean "
                                                 r"runs/realigned-front\?\)"):
        check_model_name("runs/realigned-fornt")
    with pytest.raises(ModelNotFoundError, match="not a model folder"):
        check_model_name("runs")
    check_model_name("runs/realigned-front")
    check_model_name("org/model")  # a hub name: checked when it loads


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


def test_a_model_folder_that_cannot_be_loaded_is_one_line_naming_it(tiny_models, tmp_path):
    from core.arch import UnsupportedArchitectureError
    from core.models import ModelLoadError

    model, tok = tiny_models("bert")
    model.config.save_pretrained(tmp_path / "no-weights")
    with pytest.raises(ModelLoadError, match=rf"^{tmp_path / 'no-weights'}: cannot load its weights: .*model\.safetensors"):
        load_model(tmp_path / "no-weights", offline=True)
    model.save_pretrained(tmp_path / "no-tokenizer")
    # transformers would build an empty tokenizer (every word [UNK]) from this folder, silently
    with pytest.raises(ModelLoadError, match=rf"^{tmp_path / 'no-tokenizer'}: cannot load its tokenizer: the "
                                             r"folder holds none of tokenizer.json, vocab.txt"):
        load(tmp_path / "no-tokenizer", offline=True)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text('{"model_type": "t5"}')
    with pytest.raises(UnsupportedArchitectureError, match=r"other: model_type 't5' is not in the architecture table"):
        check_model_name(tmp_path / "other")  # before anything heavy is imported
    (tmp_path / "other" / "config.json").write_text('{"model_type": ')
    with pytest.raises(ModelLoadError, match=r"other: cannot load its config.json: not JSON \(line 1: "):
        check_model_name(tmp_path / "other")


def test_an_adapter_folder_gives_its_own_tokenizer_or_its_bases(tmp_path):
    """An adapter folder has no config.json: its tokenizer is the copy saved in it, else the
    base's (a LoRA adapter leaves the vocabulary alone); never an error about the config."""
    from _midalign import saved_lm
    from peft import LoraConfig, get_peft_model

    from core.adapters import peft_quiet
    from core.models import load_tokenizer
    from core.tiny import train_tokenizer

    base = saved_lm(tmp_path)
    with peft_quiet():
        peft = get_peft_model(load_model(base, task="causal-lm", offline=True),
                              LoraConfig(r=2, target_modules=["q_proj"]))
    peft.save_pretrained(tmp_path / "adapter")
    adapter = tmp_path / "adapter"
    assert not (adapter / "config.json").exists() and (adapter / "adapter_config.json").is_file()
    text = "The cat sleeps on the warm mat."
    want = load_tokenizer(base, offline=True)(text)["input_ids"]
    assert load_tokenizer(adapter, offline=True)(text)["input_ids"] == want  # the base's
    other = train_tokenizer(["zebra quokka axolotl"] * 3, "llama", vocab_size=60)
    other.save_pretrained(adapter)
    mine = load_tokenizer(adapter, offline=True)
    assert mine(text)["input_ids"] == other(text)["input_ids"] != want  # the copy saved in the folder


def test_a_new_task_head_loads_without_the_load_report(tiny_models, tmp_path, capfd, caplog):
    """transformers 5 logs a coloured multi-line LOAD REPORT whenever a classifier head is new
    (every fine-tuning, every grid cell's log); the loader drops it, and says something only
    when weights of the model's body are missing from the checkpoint."""
    import warnings

    from safetensors.torch import load_file, save_file

    model, _ = tiny_models("bert")
    model.save_pretrained(tmp_path / "base")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tagger = load_model(tmp_path / "base", task="token-classification", num_labels=3, offline=True)
    assert tagger.classifier.out_features == 3
    err = capfd.readouterr().err + caplog.text  # the handler writes to stderr; pytest may hold the record
    assert "LOAD REPORT" not in err and "\x1b[" not in err, err
    assert not [w for w in caught if "weight" in str(w.message)]

    weights = load_file(tmp_path / "base" / "model.safetensors")
    lost = next(k for k in weights if "encoder.layer.1.attention" in k)
    del weights[lost]
    save_file(weights, tmp_path / "base" / "model.safetensors", metadata={"format": "pt"})
    with pytest.warns(UserWarning, match=r"1 weight\(s\) of the model missing from the checkpoint .*layer\.1\.attention"):
        load_model(tmp_path / "base", task="token-classification", num_labels=3, offline=True)
    assert "LOAD REPORT" not in capfd.readouterr().err + caplog.text
