"""Attribution reads the same "layer l" as features (core.layers' taps) and windows long
sentences like every other path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from analysis.attribution import attribution_sites, layer_attribution, sentence_layer_attribution
from core.arch import blocks, num_layers
from core.encoding import EncodingStats
from core.tiny import FAMILIES


def _inputs(tok, text="the cat sleeps on the chair"):
    enc = tok([text], return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"]


def _hooked(model, ids, mask):
    """Independent reference: input of block 1 and raw output of every block, plain hooks."""
    got = {}
    blk = blocks(model)

    def pre(_m, args, kwargs):
        got[0] = (args[0] if args else kwargs["hidden_states"]).detach().clone()

    def post(i):
        def hook(_m, _a, out):
            got[i] = (out[0] if isinstance(out, tuple) else out).detach().clone()
        return hook

    handles = [blk[0].register_forward_pre_hook(pre, with_kwargs=True)]
    handles += [b.register_forward_hook(post(i)) for i, b in enumerate(blk, 1)]
    try:
        with torch.no_grad():
            model(input_ids=ids, attention_mask=mask)
    finally:
        for h in handles:
            h.remove()
    return got


@pytest.mark.parametrize("family", FAMILIES)
def test_captum_attributes_to_exactly_the_layers_of_the_features(tiny_models, family):
    """What captum sees at attribution's site of layer l (LayerActivation) = layer l as the
    features define it (input of block 1 / raw output of block i), for every layer and
    family; for GPT-2 layer 0 is wte + wpe, not the token embedding."""
    from captum.attr import LayerActivation

    model, tok = tiny_models(family, task="token-classification")
    ids, mask = _inputs(tok)
    ref = _hooked(model, ids, mask)

    def fwd(i, a):
        return model(input_ids=i, attention_mask=a).logits

    with attribution_sites(model, "all") as taps:
        for lay, tap in taps.items():
            got = LayerActivation(fwd, tap).attribute(ids, additional_forward_args=(mask,))
            assert torch.equal(got, ref[lay]), (family, lay)
    if family == "gpt2":  # the token embedding alone is NOT layer 0
        wte = model.transformer.wte(ids)
        assert not torch.allclose(wte, ref[0])


@pytest.mark.parametrize("family", ["bert", "gpt2", "llama"])
def test_integrated_gradients_through_a_tap_are_complete(tiny_models, family):
    """Patching the tap changes the forward pass (what IG needs): the attributions at each
    layer sum to F(input) - F(baseline)."""
    from captum.attr import LayerIntegratedGradients

    model, tok = tiny_models(family, task="token-classification")
    model = model.double()
    ids, mask = _inputs(tok)
    base = torch.full_like(ids, tok.pad_token_id)

    def score(i, a):
        return model(input_ids=i, attention_mask=a).logits[:, 1, 3]

    with torch.no_grad():
        gap = float(score(ids, mask) - score(base, mask))
    with attribution_sites(model, "all") as taps:
        for lay, tap in taps.items():
            a = LayerIntegratedGradients(score, tap).attribute(ids, baselines=base, additional_forward_args=(mask,),
                                                               n_steps=200, method="gausslegendre")
            assert float(a.sum()) == pytest.approx(gap, rel=1e-2), (family, lay)  # IG quadrature error


def test_attribution_windows_a_sentence_longer_than_the_positions(tiny_models):
    """Case 03: a 90-word sentence (164 pieces) on a 64-position tagger."""
    model, tok = tiny_models("bert", task="token-classification")
    words = "the cat sleeps and the dog runs in the garden".split() * 9
    assert len(tok(" ".join(words))["input_ids"]) > 64
    st = EncodingStats()
    share = sentence_layer_attribution(model, tok, words, [0, 1, 2], n_steps=4, stats=st)
    assert share.shape == (3,) and share.sum() == pytest.approx(1.0) and (share > 0).all()
    assert st.windowed == 1 and st.windows >= 3 and st.words_without_pieces == 0
    df = layer_attribution(model, tok, {"en": [words, words[:5]]}, layers="all", n_steps=4)
    assert df["layer"].tolist() == list(range(num_layers(model) + 1))
    assert (df["windows"] == st.windows + 1).all() and (df["windowed_sentences"] == 1).all()
    assert np.isclose(df["share"].sum(), 1.0)
