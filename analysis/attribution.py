"""Per-layer attribution of a token-classification model's predictions (captum).

For each sentence, the scalar explained is the sum over its words (first sub-word) of the
logit of the predicted tag. :class:`captum.attr.LayerIntegratedGradients` attributes it to
the output of every selected layer (0 = embeddings, 1..L = blocks) (one layer per pass), from a baseline
where every non-special token is the pad token. Per layer, the attribution magnitude is
``sum |a|`` over tokens and hidden units; the table reports each layer's share of the
total over layers (per sentence, then averaged per language), i.e. where along the depth
the evidence for the predictions is concentrated. (Each layer's signed attributions obey
completeness separately, so signed sums would be equal across layers: magnitudes are the
comparable quantity.)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch


def _layer_modules(model, layers: Sequence[int]) -> list:
    from core.arch import blocks, embedding_modules

    emb = embedding_modules(model)
    blk = blocks(model)
    out = []
    for lay in layers:
        if lay == 0:
            if not emb:
                raise ValueError("this architecture exposes no embedding module for layer 0")
            out.append(emb[0])
        else:
            out.append(blk[lay - 1])
    return out


def sentence_layer_attribution(model, tokenizer, words: Sequence[str], layers: Sequence[int], *,
                               n_steps: int = 16) -> np.ndarray:
    """Share of ``sum |attribution|`` per layer (sums to 1) for one sentence."""
    from captum.attr import LayerIntegratedGradients

    from core.features import encode_words

    enc = encode_words(tokenizer, [list(words)])
    ids, mask, wi = enc.input_ids, enc.attention_mask, enc.word_index[0]
    first = torch.tensor([int((wi == w).nonzero()[0]) for w in range(len(words)) if (wi == w).any()])
    if len(first) == 0:
        raise ValueError(f"no word of {list(words)[:5]}... reaches a token")
    with torch.no_grad():
        pred = model(input_ids=ids, attention_mask=mask).logits[0, first].argmax(-1)

    def score(input_ids, attention_mask):
        logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
        return logits[:, first, :].gather(2, pred.expand(logits.shape[0], -1)[..., None]).sum((1, 2))

    special = wi < 0
    baseline = torch.where(special, ids, torch.full_like(ids, tokenizer.pad_token_id))[None][0]
    mags = []
    # one layer at a time: the layers are nested, so captum cannot patch them all in one pass
    for module in _layer_modules(model, layers):
        lig = LayerIntegratedGradients(score, module)
        a = lig.attribute(ids, baselines=baseline, additional_forward_args=(mask,), n_steps=n_steps)
        a = a[0] if isinstance(a, tuple | list) else a
        mags.append(float(a.detach().abs().sum()))
    mags = np.asarray(mags)
    return mags / mags.sum() if mags.sum() > 0 else mags


def layer_attribution(model, tokenizer, sentences_by_lang: dict[str, Sequence[Sequence[str]]], *,
                      layers: Sequence[int] | str = "all", n_steps: int = 16, max_sentences: int = 50) -> pd.DataFrame:
    """Tidy ``lang, layer, share, std, n_sentences``: mean per-layer attribution share."""
    from core.arch import num_layers, parse_layers

    layers = parse_layers(layers, num_layers(model))
    model.eval()
    rows = []
    for lang, sents in sentences_by_lang.items():
        shares = [sentence_layer_attribution(model, tokenizer, s, layers, n_steps=n_steps)
                  for s in list(sents)[:max_sentences] if len(s)]
        if not shares:
            raise ValueError(f"{lang}: no non-empty sentence to attribute")
        S = np.stack(shares)
        for i, lay in enumerate(layers):
            rows.append({"lang": lang, "layer": lay, "share": float(S[:, i].mean()),
                         "std": float(S[:, i].std()), "n_sentences": len(S)})
    return pd.DataFrame(rows)
