"""Sentence vectors at a layer, for the decoder paths: the states of :mod:`core.layers`
pooled by THE sentence mean of :mod:`core.encoding`.

Middle-layer alignment (arXiv 2502.14830) represents a sentence by the mean of its token
states at a layer over its non-pad tokens. The alignment loss (``realign.midalign.loss``)
and the layer scan (``analysis.layer_scan``) both go through this module, so the quantity
scanned is the quantity trained; the encoder paths' sentence-level loss
(``realign.losses``) takes the same :meth:`core.encoding.EncodedBatch.sentence_mean`.

What the model reads is :func:`core.encoding.encode_texts`: running text (a str kept
verbatim; words or CoNLL-U sentences joined as :mod:`core.encoding` says, ``SpaceAfter=No``
gluing Chinese and Thai words; a :class:`core.encoding.Surface` of a plain-text line kept as
written), the tokenizer's own special tokens, RIGHT padding. With causal attention a real
token never attends to the padding after it, and positions start at 0 in every row
(gpt2, llama, qwen2 and mistral number positions 0..T-1 when no ``position_ids`` are
given, so left padding would shift a short row's positions).

Long inputs follow the one policy of :func:`core.encoding.encode_windows`: a sentence with
more pieces than ``max_length`` (capped at the model's positions) is split into windows
at word boundaries, each encoded on its own (its own specials, positions from 0, no
attention across windows); the sentence vector is the mean over the non-pad tokens of all
its windows. Windows and truncated words are counted in
:class:`core.encoding.EncodingStats`, which callers return and report.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .arch import num_layers, parse_layers
from .encoding import (
    EncodedBatch,
    EncodingStats,
    SentenceLike,
    encode_texts,
    model_max_length,
    surface,
)
from .layers import layer_states


def window_size(model, tokenizer, max_length: int | None) -> int:
    """Tokens per window: ``max_length`` (default the model's), never past the model's positions."""
    if max_length is not None and max_length < 1:
        raise ValueError(f"max_length must be >= 1, not {max_length}")
    n = model_max_length(model, tokenizer)
    return n if max_length is None else min(int(max_length), n)


def encode_sentences(model, tokenizer, texts: Sequence[str | SentenceLike], max_length: int | None) -> EncodedBatch:
    """:func:`core.encoding.encode_texts` with windows of :func:`window_size` tokens."""
    return encode_texts(tokenizer, texts, window_size(model, tokenizer, max_length))


def sentence_states(model, batch: EncodedBatch, layers) -> dict[int, torch.Tensor]:
    """``{layer: (S, D) float32}`` sentence vectors of one batch; only blocks 1..max(layers) run
    (:func:`core.layers.layer_states` with ``stop_early``). Differentiable when grad is
    enabled (the alignment loss uses it)."""
    device = next(model.parameters()).device
    states = layer_states(model, layers, stop_early=True, **batch.to(device).inputs)
    return {lay: batch.sentence_mean(h) for lay, h in states.items()}


def _length(t: str | SentenceLike) -> int:
    return len(t) if isinstance(t, str) else sum(len(w) for w in surface(t).words)


@torch.no_grad()
def sentence_vectors(model, tokenizer, texts: Sequence[str | SentenceLike], layers="all", *,
                     batch_size: int = 16, max_length: int | None = 256) -> tuple[dict[int, np.ndarray], EncodingStats]:
    """Sentence vectors of ``texts`` at ``layers`` (0..L), batched, float32 on the host.

    Args:
        texts: str (kept verbatim), :class:`core.encoding.Surface` objects, lists of words
            or CoNLL-U sentences.
        batch_size: sentences per forward pass (a windowed sentence adds rows).
        max_length: tokens per window (capped at the model's positions).

    Returns ``({layer: (N, D) array}, stats)``. Texts are sorted by length inside the call
    (less padding); results come back in input order.
    """
    want = parse_layers(layers, num_layers(model))
    size = window_size(model, tokenizer, max_length)
    order = np.argsort([_length(t) for t in texts], kind="stable")
    out: dict[int, list[np.ndarray]] = {lay: [] for lay in want}
    stats = EncodingStats(max_length=size)
    for a in range(0, len(texts), batch_size):
        idx = order[a : a + batch_size]
        batch = encode_texts(tokenizer, [texts[i] for i in idx], size)
        stats += batch.stats
        for lay, v in sentence_states(model, batch, want).items():
            out[lay].append(v.cpu().numpy())
    inv = np.empty_like(order)
    inv[order] = np.arange(len(order))
    return {lay: np.concatenate(v)[inv] for lay, v in out.items()}, stats
