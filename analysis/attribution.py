"""Per-layer attribution of a token-classification model's predictions (captum).

For each sentence, the scalar explained is the sum over its words (first piece that carries
the word's characters) of the logit of the predicted tag. :class:`captum.attr.LayerIntegratedGradients`
attributes it to every selected layer (one layer per pass), from a baseline where every
token of the text is the pad token (special tokens kept). The layer is the state of
:mod:`core.layers` (0 = input of block 1, i = raw output of block i, before a decoder's
final norm): captum attaches to the :class:`core.layers.LayerTap` through which that
state passes, the very tap that features, drift, CKA and probes record, so "layer l" is
the same tensor everywhere. Per layer, the attribution magnitude is ``sum |a|`` over tokens
and hidden units; the table reports each layer's share of the total over layers (per
sentence, then averaged per language), i.e. where along the depth the evidence for the
predictions is concentrated. (Each layer's signed attributions obey completeness
separately, so signed sums would be equal across layers: magnitudes are the comparable
quantity.)

Sentences are tokenised as running text and a sentence longer than the model's positions
is split into windows at word boundaries (:func:`core.encoding.encode_windows`); a
sentence's magnitudes are summed over its windows. Windows and truncated words are counted
in the table (``windows``, ``windowed_sentences``, ``truncated_words``) and on stderr.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch


def _layer_modules(model, layers: Sequence[int]) -> list:
    """The modules through which each layer's state passes (the :class:`core.layers.LayerTap`
    of block ``l``'s output, or of block 1's input for layer 0), for inspection: they are
    live only inside :func:`core.layers.layer_taps`. Returns the blocks themselves
    (block 1 for layer 0, whose INPUT is meant)."""
    from core.arch import blocks

    blk = blocks(model)
    return [blk[max(lay, 1) - 1] for lay in layers]


def attribution_sites(model, layers):
    """Context manager: ``{layer: module}`` whose OUTPUT captum attributes to for each layer
    (the :class:`core.layers.LayerTap` of :func:`core.layers.layer_taps`)."""
    from core.layers import layer_taps

    return layer_taps(model, layers)


def _window_magnitudes(model, taps: dict, window, pad_id: int, n_steps: int) -> np.ndarray | None:
    """``sum |attribution|`` per tap for one window (None when no word has a piece)."""
    from captum.attr import LayerIntegratedGradients

    ids = torch.as_tensor(window.input_ids, dtype=torch.long)[None]
    mask = torch.ones_like(ids)
    order = np.lexsort((window.piece_token, window.piece_word))
    tok, word = window.piece_token[order], window.piece_word[order]
    first_of = np.ones(len(tok), dtype=bool)
    first_of[1:] = word[1:] != word[:-1]
    first = torch.as_tensor(tok[first_of], dtype=torch.long)  # one position per word
    if len(first) == 0:
        return None
    with torch.no_grad():
        pred = model(input_ids=ids, attention_mask=mask).logits[0, first].argmax(-1)

    def score(input_ids, attention_mask):
        logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
        return logits[:, first, :].gather(2, pred.expand(logits.shape[0], -1)[..., None]).sum((1, 2))

    text = torch.as_tensor(window.text_mask)[None]
    baseline = torch.where(text, torch.full_like(ids, pad_id), ids)
    mags = []
    # one layer at a time: the layers are nested, so captum cannot patch them all in one pass
    for tap in taps.values():
        lig = LayerIntegratedGradients(score, tap)
        a = lig.attribute(ids, baselines=baseline, additional_forward_args=(mask,), n_steps=n_steps)
        a = a[0] if isinstance(a, tuple | list) else a
        mags.append(float(a.detach().abs().sum()))
    return np.asarray(mags)


def sentence_layer_attribution(model, tokenizer, words, layers: Sequence[int], *,
                               n_steps: int = 16, max_length: int | None = None, stats=None) -> np.ndarray:
    """Share of ``sum |attribution|`` per layer (sums to 1) for one sentence (a list of
    words or a CoNLL-U sentence), summed over its windows.

    ``stats`` (a :class:`core.encoding.EncodingStats`) receives the window counts.
    Raises ``ValueError`` when no word reaches a piece.
    """
    from core.encoding import encode_windows, model_max_length, pad_id_of, surface

    max_length = max_length or model_max_length(model, tokenizer)
    windows = encode_windows(tokenizer, [words], max_length, stats=stats)
    total = np.zeros(len(layers))
    reached = False
    with attribution_sites(model, layers) as taps:
        for w in windows:
            m = _window_magnitudes(model, taps, w, pad_id_of(tokenizer), n_steps)
            if m is not None:
                total += m
                reached = True
    if not reached:
        raise ValueError(f"no word of {surface(words).words[:5]}... reaches a token")
    return total / total.sum() if total.sum() > 0 else total


def layer_attribution(model, tokenizer, sentences_by_lang: dict[str, Sequence], *,
                      layers: Sequence[int] | str = "all", n_steps: int = 16, max_sentences: int = 50,
                      max_length: int | None = None) -> pd.DataFrame:
    """Tidy ``lang, layer, share, std, n_sentences, windows, windowed_sentences,
    truncated_words``: mean per-layer attribution share (sentences: lists of words or
    CoNLL-U sentences, whose ``SpaceAfter=No`` is kept)."""
    from core.arch import num_layers, parse_layers
    from core.encoding import EncodingStats, report

    layers = parse_layers(layers, num_layers(model))
    model.eval()
    rows = []
    for lang, sents in sentences_by_lang.items():
        st = EncodingStats()
        shares = [sentence_layer_attribution(model, tokenizer, s, layers, n_steps=n_steps, max_length=max_length,
                                             stats=st)
                  for s in list(sents)[:max_sentences] if len(s)]
        if not shares:
            raise ValueError(f"{lang}: no non-empty sentence to attribute")
        report(st, f"attribution {lang}")
        S = np.stack(shares)
        for i, lay in enumerate(layers):
            rows.append({"lang": lang, "layer": lay, "share": float(S[:, i].mean()),
                         "std": float(S[:, i].std()), "n_sentences": len(S), "windows": st.windows,
                         "windowed_sentences": st.windowed, "truncated_words": st.truncated_words})
    return pd.DataFrame(rows)
