"""Freeze specs resolve from the architecture table for every family (mBERT included)."""

from __future__ import annotations

import copy

import pytest
import torch

from core.arch import layer_parameter_names
from core.features import encode_words
from realign.freeze import FREEZE_STRATEGIES, apply_freeze, frozen_layer_numbers, resolve_freeze

FAMILIES = ("bert", "xlm-roberta", "distilbert", "gpt2", "llama", "qwen2")


@pytest.mark.parametrize("L, spec, expected", [
    (2, "none", ()),
    (2, "front", (1,)),
    (2, "back", (2,)),
    (2, "front+emb", (0, 1)),
    (2, "back+emb", (0, 2)),
    (5, "front", (1, 2)),          # odd L: the middle block goes to the back half
    (5, "back", (3, 4, 5)),
    (12, "front", tuple(range(1, 7))),
    (12, "back", tuple(range(7, 13))),
    (5, "emb,1-3", (0, 1, 2, 3)),
    (5, "0-3", (0, 1, 2, 3)),
    (5, "4, 5", (4, 5)),
])
def test_named_and_explicit_specs(L, spec, expected):
    assert frozen_layer_numbers(spec, L) == expected


@pytest.mark.parametrize("spec", ["7", "emb,1-9", "front,12"])
def test_nonexistent_layer_is_an_error_naming_it(spec):
    with pytest.raises(ValueError) as e:
        frozen_layer_numbers(spec, 6)
    msg = str(e.value)
    assert "0..6" in msg and spec in msg


def test_garbage_spec_is_an_error():
    with pytest.raises(ValueError, match="named strategies"):
        frozen_layer_numbers("lower", 6)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("spec", FREEZE_STRATEGIES)
def test_resolve_every_family(tiny_models, family, spec):
    model, _ = tiny_models(family)
    plan = resolve_freeze(model, spec)
    per_layer = layer_parameter_names(model)
    assert plan.frozen_layers == frozen_layer_numbers(spec, 2)
    expected = {n for lay in plan.frozen_layers for n in per_layer[lay]}
    names = set(plan.frozen_parameter_names)
    assert expected <= names
    extra = names - expected
    if 2 in plan.frozen_layers and family in ("gpt2", "llama", "qwen2"):
        assert extra and all(n.split(".")[0] in ("ln_f", "norm") for n in extra)  # final norm goes with block L
    else:
        assert not extra
    if spec != "none":
        assert names, f"{spec} froze nothing for {family} (the reference's mBERT pitfall)"


def test_mbert_named_strategies_freeze_blocks(tiny_models):
    """The reference matched 'roberta'/'distilbert' in the NAME: for mBERT nothing froze."""
    model, _ = tiny_models("bert")
    front = resolve_freeze(model, "front")
    assert front.frozen_parameter_names and all(n.startswith("encoder.layer.0.") for n in front.frozen_parameter_names)
    back = resolve_freeze(model, "back")
    assert all(n.startswith("encoder.layer.1.") for n in back.frozen_parameter_names)


def test_odd_number_of_blocks_on_a_model():
    from core.tiny import tiny_model

    model, _ = tiny_model("distilbert", layers=5)
    assert resolve_freeze(model, "front").frozen_layers == (1, 2)
    assert resolve_freeze(model, "back").frozen_layers == (3, 4, 5)
    with pytest.raises(ValueError, match=r"\[6\].*0\.\.5"):
        resolve_freeze(model, "emb,6")


def test_unsupported_architecture_raises():
    from transformers import T5Config, T5EncoderModel

    model = T5EncoderModel(T5Config(d_model=16, d_ff=32, num_layers=1, num_heads=2, d_kv=8, vocab_size=50))
    with pytest.raises(ValueError, match="not in the architecture table"):
        resolve_freeze(model, "front")


def test_apply_freeze_sets_requires_grad(tiny_models):
    model = copy.deepcopy(tiny_models("xlm-roberta")[0])
    plan = apply_freeze(model, "front+emb")
    frozen = set(plan.frozen_parameter_names)
    for n, p in model.named_parameters():
        assert p.requires_grad == (n not in frozen)
    assert plan.frozen_prefix == 2
    apply_freeze(model, "none")  # re-applying unfreezes
    assert all(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("spec, prefix_graph", [("front+emb", False), ("front", True)])
def test_frozen_prefix_builds_no_graph(tiny_models, spec, prefix_graph):
    """front+emb: block 1's output carries no autograd graph, so no backward can run
    through it; front (embeddings trainable): the graph must cross the frozen block."""
    model = copy.deepcopy(tiny_models("bert")[0])
    tok = tiny_models("bert")[1]
    apply_freeze(model, spec)
    seen = {}
    handle = model.encoder.layer[0].register_forward_hook(
        lambda mod, inp, out: seen.update(out=(out[0] if isinstance(out, tuple) else out).requires_grad))
    try:
        enc = encode_words(tok, [["The", "cat", "sleeps"]])
        out = model(input_ids=enc.input_ids, attention_mask=enc.attention_mask)
        # squared: a plain sum of a LayerNorm output has zero gradient while its gain is uniform
        out.last_hidden_state.pow(2).sum().backward()
    finally:
        handle.remove()
    assert seen["out"] is prefix_graph
    emb_grad = model.embeddings.word_embeddings.weight.grad
    assert (emb_grad is not None) is prefix_graph
    assert all(p.grad is None for p in model.encoder.layer[0].parameters())
    for n, p in model.encoder.layer[1].named_parameters():
        if "key.bias" not in n:  # the key bias has zero gradient by softmax shift-invariance
            assert p.grad is not None and torch.any(p.grad != 0), (n, model.training, p.grad)
