"""One meaning of "layer l" (core.layers): 0 = input of block 1, i = raw output of block i,
checked against independent forward hooks and HF hidden_states for every family."""

from __future__ import annotations

import pytest
import torch

from core.arch import ARCHITECTURES, arch_of, blocks, num_layers
from core.layers import layer_states
from core.tiny import FAMILIES


def _inputs(tok):
    enc = tok(["the cat sat on the mat", "a dog"], padding=True, return_tensors="pt")
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


def _hooked_block_outputs(model, inputs):
    """Reference: raw output of every block via plain forward hooks, plus HF hidden_states."""
    outs = {}
    hs = []

    def mk(i):
        def hook(_m, _a, out):
            outs[i] = (out[0] if isinstance(out, tuple) else out).detach().clone()
        return hook

    handles = [b.register_forward_hook(mk(i)) for i, b in enumerate(blocks(model), 1)]
    try:
        with torch.no_grad():
            hs = model(**inputs, output_hidden_states=True).hidden_states
    finally:
        for h in handles:
            h.remove()
    return outs, hs


def test_every_family_of_the_table_is_covered():
    assert set(FAMILIES) | {"roberta", "mistral"} >= set(ARCHITECTURES)


@pytest.mark.parametrize("family", FAMILIES)
def test_layer_i_is_the_raw_output_of_block_i(tiny_models, family):
    model, tok = tiny_models(family)
    inputs = _inputs(tok)
    ref, hs = _hooked_block_outputs(model, inputs)
    L = num_layers(model)
    with torch.no_grad():
        got = layer_states(model, "all", **inputs)
    assert sorted(got) == list(range(L + 1))
    torch.testing.assert_close(got[0], hs[0], rtol=0, atol=0)
    for i in range(1, L + 1):
        torch.testing.assert_close(got[i], ref[i], rtol=0, atol=0)
    for i in range(L):  # below the top, HF hidden_states agree with the block outputs
        torch.testing.assert_close(got[i], hs[i], rtol=0, atol=0)
    if arch_of(model).kind == "decoder":
        # HF's last entry has the final norm applied; ours is block L's own output
        assert not torch.allclose(got[L], hs[L])
    else:
        torch.testing.assert_close(got[L], hs[L], rtol=0, atol=0)


@pytest.mark.parametrize("family", ["bert", "llama", "gpt2"])
def test_stop_early_runs_only_blocks_up_to_the_highest_layer(tiny_models, family):
    model, tok = tiny_models(family, task="base")
    inputs = _inputs(tok)
    fired = []
    handles = [b.register_forward_hook(lambda *_a, i=i: fired.append(i)) for i, b in enumerate(blocks(model), 1)]
    try:
        with torch.no_grad():
            got = layer_states(model, [0, 1], **inputs)
            assert fired == [1]
            fired.clear()
            only0 = layer_states(model, [0], **inputs)
            assert fired == []
            fired.clear()
            layer_states(model, [1], stop_early=False, **inputs)
            assert fired == [1, 2]
    finally:
        for h in handles:
            h.remove()
    torch.testing.assert_close(only0[0], got[0], rtol=0, atol=0)


def test_layer_out_of_range_is_refused(tiny_models):
    model, tok = tiny_models("bert")
    with pytest.raises(ValueError, match="0..2"):
        layer_states(model, [3], **_inputs(tok))


def test_hooks_are_removed_even_on_error(tiny_models):
    model, tok = tiny_models("llama")
    with pytest.raises(Exception):  # noqa: B017 - any failure inside the forward pass
        layer_states(model, "all", input_ids=torch.full((1, 3), 10**6))
    assert all(not b._forward_hooks and not b._forward_pre_hooks for b in blocks(model))


def test_task_heads_are_addressed_by_the_same_layers(tiny_models):
    model, tok = tiny_models("gpt2", task="causal-lm")
    with torch.no_grad():
        got = layer_states(model, "last", **_inputs(tok))
    L = num_layers(model)
    assert got[L].shape[-1] == model.config.n_embd
