"""Sentence vectors of running text: THE token mean over non-pad tokens, per layer.

Middle-layer alignment (arXiv 2502.14830) represents a sentence by the mean of its token
states at a layer, over the tokens that are not padding (``attention_mask == 1``): the
alignment loss (``realign.midalign``) and the layer scan (``analysis.layer_scan``) both
call :func:`token_mean`, so the quantity scanned is the quantity trained.

Inputs are running text (a decoder reads text, not pre-split words), padded on the RIGHT:
with causal attention the real tokens never see the padding, and positions start at 0 for
every row (left padding would shift the positions of shorter rows). Too-long texts are
truncated to ``max_length`` tokens and COUNTED (:class:`EncodedTexts.n_truncated`); the
caller reports the count (the reference truncates alignment inputs at a maximum length).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .arch import num_layers, parse_layers
from .layers import layer_states


def token_mean(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of the token states whose ``mask`` is 1, per row, accumulated in float32.

    Args:
        states: ``(..., B, T, D)`` token states (leading dims, e.g. layers, are kept).
        mask: ``(B, T)`` 0/1 (the attention mask: padding is 0).

    Returns:
        ``(..., B, D)`` float32. A row with no token gives zeros (never NaN).
    """
    if mask.dim() != 2 or states.shape[-3:-1] != mask.shape:
        raise ValueError(f"states {tuple(states.shape)} and mask {tuple(mask.shape)} disagree: "
                         "expected states (..., B, T, D) and mask (B, T)")
    m = mask.to(device=states.device, dtype=torch.float32).unsqueeze(-1)  # (B, T, 1)
    total = (states.float() * m).sum(-2)
    return total / m.sum(-2).clamp(min=1.0)


@dataclass
class EncodedTexts:
    """Right-padded model inputs of a batch of texts and how many were truncated."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    n_truncated: int

    def inputs(self, device=None) -> dict[str, torch.Tensor]:
        return {"input_ids": self.input_ids.to(device), "attention_mask": self.attention_mask.to(device)}


def encode_texts(tokenizer, texts: Sequence[str], max_length: int) -> EncodedTexts:
    """Tokenise running text, right-padded, truncated to ``max_length`` tokens (counted)."""
    if isinstance(texts, str):
        raise TypeError("texts must be a sequence of strings, not one string")
    if max_length < 1:
        raise ValueError(f"max_length must be >= 1, not {max_length}")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    full = tokenizer(list(texts), add_special_tokens=True)["input_ids"]
    n_trunc = sum(len(ids) > max_length for ids in full)
    rows = [ids[:max_length] for ids in full]
    T = max(1, max(len(r) for r in rows))
    pad = tokenizer.pad_token_id
    ids = torch.full((len(rows), T), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), T), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, : len(r)] = 1
    return EncodedTexts(ids, mask, n_trunc)


def sentence_states(model, encoded: EncodedTexts, layers) -> dict[int, torch.Tensor]:
    """``{layer: (B, D) float32}`` token means of one batch; only blocks 1..max(layers) run.

    Differentiable when grad is enabled (the alignment loss uses it)."""
    device = next(model.parameters()).device
    states = layer_states(model, layers, stop_early=True, **encoded.inputs(device))
    return {lay: token_mean(h, encoded.attention_mask) for lay, h in states.items()}


@torch.no_grad()
def sentence_vectors(model, tokenizer, texts: Sequence[str], layers="all", *, batch_size: int = 16,
                     max_length: int = 256) -> tuple[dict[int, np.ndarray], int]:
    """Sentence vectors of ``texts`` at ``layers`` (0..L), batched, in float32 on the host.

    Returns ``({layer: (N, D) array}, n_truncated)``. Texts are sorted by length inside the
    call (less padding), results come back in input order.
    """
    want = parse_layers(layers, num_layers(model))
    order = np.argsort([len(t) for t in texts], kind="stable")
    out: dict[int, list[np.ndarray]] = {lay: [] for lay in want}
    n_trunc = 0
    for a in range(0, len(texts), batch_size):
        idx = order[a : a + batch_size]
        enc = encode_texts(tokenizer, [texts[i] for i in idx], max_length)
        n_trunc += enc.n_truncated
        for lay, v in sentence_states(model, enc, want).items():
            out[lay].append(v.cpu().numpy())
    inv = np.empty_like(order)
    inv[order] = np.arange(len(order))
    return {lay: np.concatenate(v)[inv] for lay, v in out.items()}, n_trunc
