"""The realignment loop: freezing is exact, resume is exact, bad input is a clear error; CLI."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from alignfreeze.cli import main
from core.arch import layer_parameter_names
from core.manifest import base_weight_hash, read_manifest
from realign.config import RealignConfig, default_lr
from realign.freeze import resolve_freeze
from realign.pairs import extract_pairs, write_pairs
from realign.train import CHECKPOINTS, latest_checkpoint, realign

FAMILIES = ("bert", "xlm-roberta", "distilbert", "gpt2", "llama", "qwen2")


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory):
    from core import FIXTURES
    from core.parallel import read_parallel

    pp = read_parallel(FIXTURES / "en_demo-ud-test.conllu", FIXTURES / "fr_demo-ud-test.conllu")
    records, _ = extract_pairs(pp, "dictionary", dictionary=FIXTURES / "en-fr.txt")
    path = tmp_path_factory.mktemp("pairs") / "en-fr.jsonl"
    write_pairs(path, records)
    return path


def _cfg(tmp_path, pairs_file, **kw):
    base = dict(model="tiny", pairs=(str(pairs_file),), out=str(tmp_path / "out"), steps=2, batch_size=4,
                lr=1e-3, seed=7)
    base.update(kw)
    return RealignConfig(**base)


def _state(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("spec", ["none", "front", "back", "front+emb"])
def test_frozen_bit_identical_trainable_changed(tiny_models, tmp_path, pairs_file, family, spec):
    base, tok = tiny_models(family)
    model = copy.deepcopy(base)
    before = _state(model)
    plan = resolve_freeze(model, spec)
    realign(_cfg(tmp_path, pairs_file, freeze=spec), model, tok, progress=False)
    frozen = set(plan.frozen_parameter_names)
    in_layers = {n for names in layer_parameter_names(model).values() for n in names}
    for name, p in model.named_parameters():
        if name in frozen:
            assert torch.equal(p, before[name]), f"{family}/{spec}: frozen {name} changed"
        elif name in in_layers and not name.endswith(("key.bias", "k_lin.bias")):
            # (a key bias shifts every attention logit of a query equally: softmax ignores it, zero gradient)
            assert not torch.equal(p, before[name]), f"{family}/{spec}: trainable {name} did not change"
    saved = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert saved["frozen_parameters"] == list(plan.frozen_parameter_names)
    assert saved["frozen_layers"] == list(plan.frozen_layers)


def test_manifest_and_saved_model(tiny_models, tmp_path, pairs_file):
    from transformers import AutoModel

    from core.io import file_sha256

    base, tok = tiny_models("bert")
    model = copy.deepcopy(base)
    expected_hash = base_weight_hash(model)
    out = realign(_cfg(tmp_path, pairs_file, freeze="emb,1"), model, tok, progress=False)
    m = read_manifest(out)
    assert m["kind"] == "realign"
    assert m["base_model"] == {"name": "tiny", "weight_hash": expected_hash, "model_type": "bert"}
    n = sum(1 for line in pairs_file.read_text().splitlines() if line.strip())
    assert m["data_files"] == [{"path": str(pairs_file), "sha256": file_sha256(pairs_file), "selection": "all",
                                "sentences": n, "of": n}]
    assert m["name"] == "emb,1-s7"  # strategy (the freeze spec) and seed: what tables and figures show
    assert m["pooling"] == "first" and m["seed"] == 7 and m["frozen_layers"] == [0, 1]
    assert m["config"]["freeze"] == "emb,1" and m["steps"] == 2
    assert set(m["final_losses"]) >= {"word_infonce@2", "total", "links"}
    assert m["wall_time_s"] > 0 and "packages" in m["environment"]
    assert 0 <= m["unknown_linked_words"] < 0.5
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    reloaded = AutoModel.from_pretrained(out, add_pooling_layer=False)
    for (n, p), (_, q) in zip(model.named_parameters(), reloaded.named_parameters()):
        assert torch.equal(p, q), n
    # a finished folder is never silently overwritten
    with pytest.raises(ValueError, match="already holds a finished"):
        realign(_cfg(tmp_path, pairs_file), copy.deepcopy(base), tok, progress=False)


def test_default_lr_by_family():
    assert default_lr("bert") == 2e-5 and default_lr("distilbert") == 2e-5
    assert default_lr("xlm-roberta") == 7.5e-6
    cfg = RealignConfig(model="m", pairs=("p",), out="o")
    assert cfg.resolved_lr("xlm-roberta") == 7.5e-6 and cfg.batch_size == 16 and cfg.max_length == 96
    assert cfg.temperature == 0.1 and cfg.negatives == "strong" and cfg.layers == "last" and cfg.pooling == "first"


class Crash(Exception):
    pass


def test_resume_gives_the_same_weights(tiny_models, tmp_path, pairs_file):
    base, tok = tiny_models("xlm-roberta")
    kw = dict(steps=6, checkpoint_every=2, freeze="front", dropout=True)

    ref = copy.deepcopy(base)
    realign(_cfg(tmp_path / "a", pairs_file, **kw), ref, tok, progress=False)

    def crash(step, parts):
        if step == 5:  # step 5 is lost: the newest checkpoint is step 4
            raise Crash

    cfg = _cfg(tmp_path / "b", pairs_file, **kw)
    with pytest.raises(Crash):
        realign(cfg, copy.deepcopy(base), tok, progress=False, callback=crash)
    assert latest_checkpoint(cfg.out).name == "step_00000004"
    # without --resume, leftover checkpoints are an error
    with pytest.raises(ValueError, match="--resume"):
        realign(cfg, copy.deepcopy(base), tok, progress=False)
    torch.manual_seed(12345)  # a different global RNG state: resume must restore its own
    resumed = copy.deepcopy(base)
    out = realign(cfg, resumed, tok, progress=False, resume=True)
    for (n, p), (_, q) in zip(ref.named_parameters(), resumed.named_parameters()):
        assert torch.equal(p, q), f"{n} differs after resume"
    m = read_manifest(out)
    assert m["resumed_from"].endswith("step_00000004") and m["pairs_seen"] == 6 * 4
    # the run is finished: its resumable checkpoints are gone, and the manifest says so
    assert not (out / CHECKPOINTS).exists()
    assert m["checkpoints"]["kept"] is False and m["checkpoints"]["steps"] == ["step_00000002", "step_00000004"]


def test_finished_run_deletes_its_checkpoints_unless_retained(tiny_models, tmp_path, pairs_file, capsys):
    base, tok = tiny_models("bert")
    kw = dict(steps=5, checkpoint_every=2, keep_checkpoints=5)
    out = realign(_cfg(tmp_path / "a", pairs_file, **kw), copy.deepcopy(base), tok, progress=False)
    assert sorted(p.name for p in out.iterdir() if p.name.startswith("check")) == []
    err = capsys.readouterr().err
    assert "deleted its 2 resumable checkpoint(s)" in err and str(out / CHECKPOINTS) in err
    kept = realign(_cfg(tmp_path / "b", pairs_file, retain_checkpoints=True, **kw), copy.deepcopy(base), tok,
                   progress=False)
    steps = sorted(p.name for p in (kept / CHECKPOINTS).iterdir())
    assert steps == ["step_00000002", "step_00000004"]
    m = read_manifest(kept)
    size = sum(f.stat().st_size for f in (kept / CHECKPOINTS).rglob("*") if f.is_file())
    assert m["checkpoints"] == {"kept": True, "steps": steps, "bytes": size, "path": str(kept / CHECKPOINTS)}
    err = capsys.readouterr().err
    assert f"kept 2 resumable checkpoint(s) in {kept / CHECKPOINTS}" in err and "KB" in err
    # no checkpoints at all: nothing to say
    realign(_cfg(tmp_path / "c", pairs_file), copy.deepcopy(base), tok, progress=False)
    assert "checkpoint" not in capsys.readouterr().err


def test_pairs_selection_is_what_trains_and_what_the_manifest_records(tiny_models, tmp_path, pairs_file):
    from core.wordpairs import read_pairs
    from realign import train as T

    base, tok = tiny_models("bert")
    seen = []
    real = T.realignment_loss

    def spy(model, tokenizer, batch, config, **kw):
        seen.extend(r["id"] for r in batch)
        return real(model, tokenizer, batch, config, **kw)

    T.realignment_loss = spy
    try:
        out = realign(_cfg(tmp_path, pairs_file, pairs=(f"{pairs_file}@2:4",), steps=3, batch_size=3, name="mine"),
                      copy.deepcopy(base), tok, progress=False)
    finally:
        T.realignment_loss = real
    ids = [r["id"] for r in read_pairs(pairs_file)]
    assert set(seen) == set(ids[1:4])
    m = read_manifest(out)
    (e,) = m["data_files"]
    assert e["path"] == str(pairs_file) and e["selection"] == "2:4" and e["sentences"] == 3 and e["of"] == len(ids)
    assert m["n_records"] == 3 and m["name"] == "mine"
    with pytest.raises(ValueError, match=r"en-fr.jsonl: selection '2:400' asks for record 400"):
        realign(_cfg(tmp_path / "x", pairs_file, pairs=(f"{pairs_file}@2:400",)), copy.deepcopy(base), tok,
                progress=False)


def test_resume_refuses_a_different_config_or_tokenizer(tiny_models, tmp_path, pairs_file):
    base, tok = tiny_models("bert")
    cfg = _cfg(tmp_path, pairs_file, steps=4, checkpoint_every=2)

    def crash(step, parts):
        if step == 3:
            raise Crash

    with pytest.raises(Crash):
        realign(cfg, copy.deepcopy(base), tok, progress=False, callback=crash)
    with pytest.raises(ValueError, match=r"config fields lr"):
        realign(_cfg(tmp_path, pairs_file, steps=4, checkpoint_every=2, lr=5e-4), copy.deepcopy(base), tok,
                progress=False, resume=True)
    from core.tiny import train_tokenizer

    other_tok = train_tokenizer(["completely different words here"] * 20, "bert", vocab_size=len(tok))
    with pytest.raises(ValueError, match="tokenizer"):
        realign(cfg, copy.deepcopy(base), other_tok, progress=False, resume=True)


def test_tokenizer_larger_than_embeddings_is_an_error(tiny_models, tmp_path, pairs_file):
    from core.tiny import fixture_texts, train_tokenizer

    base, _ = tiny_models("bert")
    big = train_tokenizer(fixture_texts() * 3, "bert", vocab_size=1000)
    assert len(big) > base.config.vocab_size
    with pytest.raises(ValueError, match="do not belong together"):
        realign(_cfg(tmp_path, pairs_file), copy.deepcopy(base), big, progress=False)


def test_pairs_the_vocabulary_cannot_read(tiny_models, tmp_path):
    """A pairs file in a script the tokenizer does not cover aligns [UNK] with [UNK]."""
    base, tok = tiny_models("bert")
    thai = tmp_path / "th.jsonl"
    write_pairs(thai, [{"id": str(k), "src": ["แมว", "นอน"], "tgt": ["ΓΆΤΑ", "ΚΟΙΜΑΤΑΙ"], "links": [[0, 0], [1, 1]]}
                       for k in range(4)])
    with pytest.raises(ValueError, match=r"100% of the linked words are unknown tokens"):
        realign(_cfg(tmp_path, thai), copy.deepcopy(base), tok, progress=False)


@pytest.mark.parametrize("kw, match", [
    (dict(freeze="emb,1-5"), r"0\.\.2"),
    (dict(layers="9"), r"0\.\.2"),
    (dict(freeze="front+emb", layers="1"), "nothing at or below"),
    (dict(loss="cosine"), "loss="),
    (dict(pairs=()), "at least one"),
])
def test_bad_settings(tiny_models, tmp_path, pairs_file, kw, match):
    base, tok = tiny_models("bert")
    with pytest.raises(ValueError, match=match):
        realign(_cfg(tmp_path, pairs_file, **kw), copy.deepcopy(base), tok, progress=False)


def test_bad_pairs_file_names_file_and_line(tiny_models, tmp_path, pairs_file):
    bad = tmp_path / "bad.jsonl"
    lines = pairs_file.read_text().splitlines()
    bad.write_text(lines[0] + "\n" + '{"id": 1, "src": ["a"], "tgt": ["b"], "links": [[0, 3]]}\n')
    base, tok = tiny_models("bert")
    with pytest.raises(ValueError, match=rf"{bad}:2: link \[0, 3\] out of range"):
        realign(_cfg(tmp_path, bad), copy.deepcopy(base), tok, progress=False)


def test_cli_pairs_and_realign(tiny_models, tmp_path, capsys):
    from core import FIXTURES

    base, tok = tiny_models("distilbert")
    model_dir = tmp_path / "tiny-distilbert"
    base.save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    pairs = tmp_path / "p.jsonl"
    rc = main(["pairs", "--src", str(FIXTURES / "en_demo-ud-test.conllu"), "--tgt",
               str(FIXTURES / "fr_demo-ud-test.conllu"), "--aligner", "similarity", "--model", str(model_dir),
               "--layer", "2", "--out", str(pairs)])
    assert rc == 0 and pairs.is_file()
    assert "sentence pairs kept" in capsys.readouterr().out
    out = tmp_path / "realigned"
    rc = main(["realign", "--model", str(model_dir), "--pairs", str(pairs), "--freeze", "front", "--steps", "2",
               "--batch-size", "4", "--seed", "3", "--out", str(out), "--no-progress"])
    assert rc == 0
    m = read_manifest(out)
    assert m["config"]["seed"] == 3 and m["frozen_layers"] == [1] and m["lr"] == 2e-5
    # errors are messages with exit code 2
    rc = main(["pairs", "--src", str(FIXTURES / "en_demo-ud-test.conllu"), "--tgt",
               str(FIXTURES / "fr_demo-ud-test.conllu"), "--aligner", "dictionary", "--out", str(pairs)])
    assert rc == 2 and "--dictionary" in capsys.readouterr().err
    rc = main(["realign", "--model", str(model_dir), "--pairs", str(pairs), "--freeze", "0-7", "--out",
               str(tmp_path / "x"), "--no-progress"])
    assert rc == 2 and "0..2" in capsys.readouterr().err


def test_touched_rows_adam_is_bit_identical_to_adam():
    from realign.optim import TouchedRowsAdam

    torch.manual_seed(0)
    V, D = 50, 8
    w0, b0 = torch.randn(V, D), torch.randn(D)
    a, ab = torch.nn.Parameter(w0.clone()), torch.nn.Parameter(b0.clone())
    c, cb = torch.nn.Parameter(w0.clone()), torch.nn.Parameter(b0.clone())
    dense = torch.optim.Adam([a, ab], lr=1e-2)
    rows = TouchedRowsAdam([{"params": [cb]}, {"params": [c], "row_sparse": True}], lr=1e-2)
    for step in range(20):
        # later steps touch few rows: earlier rows keep moving by momentum in dense Adam
        ids = torch.randint(0, V, (6,)) if step < 10 else torch.randint(0, 5, (3,))
        tgt = torch.randn(len(ids), D)
        for w, b, opt in ((a, ab, dense), (c, cb, rows)):
            opt.zero_grad()
            ((torch.nn.functional.embedding(ids, w) + b - tgt) ** 2).sum().backward()
            opt.step()
        assert torch.equal(a, c) and torch.equal(ab, cb), f"step {step}"
    assert 0 < rows.touched_rows(c) < V
    with pytest.raises(ValueError, match="weight_decay=0"):
        bad = TouchedRowsAdam([{"params": [c], "row_sparse": True}], lr=1e-2, weight_decay=0.1)
        c.grad = torch.ones_like(c)
        bad.step()


def test_touched_embedding_update_same_weights_and_resume(tiny_models, tmp_path, pairs_file):
    base, tok = tiny_models("bert")
    ref = copy.deepcopy(base)
    realign(_cfg(tmp_path / "dense", pairs_file, steps=4), ref, tok, progress=False)
    cfg = _cfg(tmp_path / "touched", pairs_file, steps=4, embedding_update="touched", checkpoint_every=2)

    def crash(step, parts):
        if step == 3:
            raise Crash

    with pytest.raises(Crash):
        realign(cfg, copy.deepcopy(base), tok, progress=False, callback=crash)
    fast = copy.deepcopy(base)
    realign(cfg, fast, tok, progress=False, resume=True)  # optimizer state (touched mask) reloaded
    for (n, p), (_, q) in zip(ref.named_parameters(), fast.named_parameters()):
        assert torch.equal(p, q), n
