"""``alignfreeze revert``: layers put back to the base's weights bit for bit, the rest the
checkpoint's; the frozen half of a front-frozen realignment never moved; a checkpoint of
another base or architecture is refused."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from alignfreeze.cli import main
from core.manifest import base_weight_hash, read_manifest
from realign.freeze import FREEZE_STRATEGIES, resolve_freeze
from realign.revert import (
    ArchitectureMismatchError,
    BaseMismatchError,
    load_checkpoint,
    plan_revert,
    revert_,
    revert_checkpoint,
    reverted,
    reverted_tensor_names,
    tensor_layers,
    unchanged_layers,
)

FAMILIES = ("bert", "xlm-roberta", "distilbert", "gpt2", "llama", "qwen2")


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A tiny 4-block BERT base folder and two REAL realignments of it: full and front-frozen."""
    from core import FIXTURES
    from core.parallel import read_parallel
    from core.tiny import tiny_model
    from realign.config import RealignConfig
    from realign.pairs import extract_pairs, write_pairs
    from realign.train import realign

    root = tmp_path_factory.mktemp("revert")
    model, tok = tiny_model("bert", layers=4)
    model.pooler = None  # as e5-small: every tensor belongs to a layer
    model.save_pretrained(root / "base")
    tok.save_pretrained(root / "base")
    pp = read_parallel(FIXTURES / "en_demo-ud-test.conllu", FIXTURES / "fr_demo-ud-test.conllu")
    records, _ = extract_pairs(pp, "dictionary", dictionary=FIXTURES / "en-fr.txt")
    pairs = write_pairs(root / "en-fr.jsonl", records)
    ckpts = {}
    for label, spec in (("full", "none"), ("front", "front")):
        cfg = RealignConfig(model=str(root / "base"), pairs=(str(pairs),), out=str(root / label), freeze=spec,
                            steps=3, batch_size=4, lr=1e-2, seed=7)
        ckpts[label] = realign(cfg, copy.deepcopy(model), tok, progress=False)
    return {"root": root, "base": root / "base", **ckpts}


def _state(path):
    return {k: v.clone() for k, v in load_checkpoint(path).state_dict().items()}


def _equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("spec", [*FREEZE_STRATEGIES, "emb,2", "all"])
def test_a_layer_is_what_freezing_calls_it(tiny_models, family, spec):
    """The same spec names the same parameters for freezing and reverting (final norm with block L)."""
    model, _ = tiny_models(family)
    plan = plan_revert(2, layers=spec)
    params = {n for n, _ in model.named_parameters()}
    names = set(reverted_tensor_names(model, plan.reverted_layers)) & params
    assert names == set(resolve_freeze(model, spec).frozen_parameter_names)


def test_revert_every_layer_is_the_base_bit_for_bit(study, tmp_path):
    base = _state(study["base"])
    assert not _equal(_state(study["full"]), base)  # the realignment moved something
    for kw in ({"layers": "all"}, {"keep": "none"}):
        out = revert_checkpoint(study["full"], study["base"], tmp_path / str(kw), **kw)
        assert _equal(_state(out), base)
        m = read_manifest(out)
        assert m["reverted_layers"] == [0, 1, 2, 3, 4] and m["kept_layers"] == []
        assert m["weight_hash"] == m["base_model"]["weight_hash"] != m["checkpoint"]["weight_hash"]


def test_revert_none_is_the_checkpoint_bit_for_bit(study, tmp_path):
    ckpt = _state(study["full"])
    for kw in ({"layers": "none"}, {"keep": "all"}):
        out = revert_checkpoint(study["full"], study["base"], tmp_path / str(kw), **kw)
        assert _equal(_state(out), ckpt)
        m = read_manifest(out)
        assert m["reverted_layers"] == [] and m["weight_hash"] == m["checkpoint"]["weight_hash"]


def test_reverting_the_frozen_half_of_a_front_frozen_checkpoint_gives_the_checkpoint(study, tmp_path):
    ckpt = _state(study["front"])
    out = revert_checkpoint(study["front"], study["base"], tmp_path / "front", layers="front")
    assert read_manifest(out)["reverted_layers"] == [1, 2]
    assert _equal(_state(out), ckpt)
    # the other half did move: reverting it changes the checkpoint
    other = revert_checkpoint(study["front"], study["base"], tmp_path / "back", layers="back")
    assert not _equal(_state(other), ckpt)
    base = load_checkpoint(study["base"])
    assert unchanged_layers(load_checkpoint(study["front"]), base) == (1, 2)
    assert unchanged_layers(load_checkpoint(study["full"]), base) == ()


def test_a_layer_is_unchanged_only_when_every_tensor_is(tiny_models):
    base, _ = tiny_models("bert")
    model = copy.deepcopy(base)
    assert unchanged_layers(model, base) == (0, 1, 2)
    with torch.no_grad():
        # one tensor of block 2, neither its first nor its last (a verdict taken from either is wrong)
        model.encoder.layer[1].intermediate.dense.weight[0, 0] += 1e-3
    assert unchanged_layers(model, base) == (0, 1)


def test_one_layer_reverted_and_the_manifest(study, tmp_path):
    out = revert_checkpoint(study["full"], study["base"], tmp_path / "r2", layers="2")
    got, base, ckpt = _state(out), _state(study["base"]), _state(study["full"])
    layer = tensor_layers(load_checkpoint(out))
    assert {layer[k] for k in got} == {0, 1, 2, 3, 4}
    for k in got:
        assert torch.equal(got[k], base[k] if layer[k] == 2 else ckpt[k]), k
    m = read_manifest(out)
    assert m["kind"] == "revert" and m["mode"] == "revert" and m["spec"] == "2"
    assert m["reverted_layers"] == [2] and m["kept_layers"] == [0, 1, 3, 4]
    assert all(n.startswith("encoder.layer.1.") for n in m["reverted_tensors"])
    assert m["base_model"]["weight_hash"] == base_weight_hash(load_checkpoint(study["base"]))
    assert m["checkpoint"]["weight_hash"] == base_weight_hash(load_checkpoint(study["full"]))
    assert m["checkpoint"]["base_check"] == "base_model" and m["outside_layers"] == {}
    # --keep is the inverse
    inv = revert_checkpoint(study["full"], study["base"], tmp_path / "k", keep="0,1,3-4")
    assert _equal(_state(inv), got) and read_manifest(inv)["mode"] == "keep"


def test_a_mismatched_base_is_refused(study, tmp_path):
    from core.tiny import tiny_model

    other, tok = tiny_model("bert", layers=4, seed=1)  # same architecture, other weights
    other.pooler = None
    other.save_pretrained(tmp_path / "other")
    tok.save_pretrained(tmp_path / "other")
    with pytest.raises(BaseMismatchError, match="trained from another base"):
        revert_checkpoint(study["full"], tmp_path / "other", tmp_path / "o1", layers="1")
    small, tok2 = tiny_model("bert", layers=2)
    small.pooler = None
    small.save_pretrained(tmp_path / "small")
    tok2.save_pretrained(tmp_path / "small")
    with pytest.raises(ArchitectureMismatchError, match=r"\(bert, 4 blocks\) and .* \(bert, 2 blocks\)"):
        revert_checkpoint(study["full"], tmp_path / "small", tmp_path / "o2", layers="1")
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()
    # the command: one line, exit status 2
    assert main(["revert", "--model", str(study["full"]), "--base", str(tmp_path / "other"), "--layers", "1",
                 "--out", str(tmp_path / "o3")]) == 2


def test_no_manifest_needs_force_and_is_recorded_unchecked(study, tmp_path, capsys):
    import shutil

    plain = tmp_path / "plain"
    shutil.copytree(study["full"], plain)
    (plain / "manifest.json").unlink()
    with pytest.raises(BaseMismatchError, match="--force"):
        revert_checkpoint(plain, study["base"], tmp_path / "a", layers="1")
    assert main(["revert", "--model", str(plain), "--base", str(study["base"]), "--layers", "1", "--out",
                 str(tmp_path / "b"), "--force"]) == 0
    assert read_manifest(tmp_path / "b")["checkpoint"]["base_check"] == "unchecked (forced)"
    assert "tensors reverted" in capsys.readouterr().out


def test_bad_spec_and_occupied_out(study, tmp_path):
    with pytest.raises(ValueError, match="0..4"):
        revert_checkpoint(study["full"], study["base"], tmp_path / "x", layers="7")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "f").write_text("keep me")
    with pytest.raises(ValueError, match="not empty"):
        revert_checkpoint(study["full"], study["base"], tmp_path / "busy", layers="1")
    assert (tmp_path / "busy" / "f").read_text() == "keep me"
    with pytest.raises(ValueError, match="exactly one"):
        plan_revert(4, layers="1", keep="2")


def test_heads_and_ties_of_a_decoder(tiny_models):
    """A decoder LM: the tied lm_head follows the embeddings, the final norm goes with block L."""
    base, _ = tiny_models("gpt2")
    lm, _ = tiny_models("gpt2", task="causal-lm")
    lm.transformer.load_state_dict(base.state_dict())
    with torch.no_grad():
        for p in lm.parameters():
            p.add_(0.5)
    assert lm.lm_head.weight is lm.transformer.wte.weight
    names = revert_(lm, base, [0, 2])
    assert "ln_f.weight" in names and "wte.weight" in names
    assert torch.equal(lm.lm_head.weight, base.wte.weight)
    assert torch.equal(lm.transformer.ln_f.weight, base.ln_f.weight)
    assert not torch.equal(lm.transformer.h[0].attn.c_attn.weight, base.h[0].attn.c_attn.weight)


def test_the_in_memory_swap_equals_the_copy_and_restores(tiny_models):
    base, tok = tiny_models("bert")
    model = copy.deepcopy(base)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ids = tok(["le chat dort"], return_tensors="pt")
    copied = copy.deepcopy(model)
    revert_(copied, base, [1])
    with torch.no_grad(), reverted(model, base, [1]):
        swapped = model(**ids).last_hidden_state
        assert model.encoder.layer[0].attention.self.query.weight.data_ptr() == \
            base.encoder.layer[0].attention.self.query.weight.data_ptr()
    with torch.no_grad():
        assert torch.equal(swapped, copied(**ids).last_hidden_state)
    assert _equal(model.state_dict(), before)  # restored
    with pytest.raises(RuntimeError), reverted(model, base, [1]):
        raise RuntimeError("boom")
    assert _equal(model.state_dict(), before)  # restored after an error too


def test_a_task_head_is_kept_and_listed(study, tmp_path):
    from transformers import BertForTokenClassification

    tagger = BertForTokenClassification.from_pretrained(study["full"], num_labels=3)
    tagger.save_pretrained(tmp_path / "tagger")
    (tmp_path / "tagger" / "manifest.json").write_text(json.dumps(read_manifest(study["full"])))
    from core.models import load_tokenizer

    load_tokenizer(study["full"]).save_pretrained(tmp_path / "tagger")
    out = revert_checkpoint(tmp_path / "tagger", study["base"], tmp_path / "r", layers="all")
    got = load_checkpoint(out)
    assert isinstance(got, BertForTokenClassification)
    assert torch.equal(got.classifier.weight, tagger.classifier.weight)
    m = read_manifest(out)
    assert m["outside_layers"] == {"classifier.weight": "not in base", "classifier.bias": "not in base"}
    assert _equal(got.bert.state_dict(), _state(study["base"]))
