"""THE sub-word -> word pooling function. Realignment, probing, CKA and retrieval all call
:func:`pool_subwords`; manifests record the method used.

Input is the ``word_index`` tensor built from the fast tokenizer's ``word_ids()``: for each
token position the index of the word it belongs to, or -1 for special tokens and padding,
which therefore never enter a word vector. Pooling is vectorised (``index_add``/
``index_copy``), with no Python loop over words.
"""

from __future__ import annotations

import torch

POOLING_METHODS = ("first", "mean", "last", "sum")


def pool_subwords(
    hidden: torch.Tensor, word_index: torch.Tensor, n_words: int, method: str = "first"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pool sub-word vectors into word vectors.

    Args:
        hidden: ``(..., B, T, D)`` token states (leading dims, e.g. layers, are kept).
        word_index: ``(B, T)`` long, word number per token or -1 (special/padding).
            Tokens of one word must be contiguous (true for every HF fast tokenizer).
        n_words: W, the number of word slots per row (>= max word index + 1).
        method: ``first`` | ``mean`` | ``last`` | ``sum``.

    Returns:
        ``(..., B, W, D)`` word vectors (zeros for empty slots) and ``(B, W)`` sub-word
        counts (0 marks a slot that no token filled: padding words or lost words).
    """
    if method not in POOLING_METHODS:
        raise ValueError(f"unknown pooling {method!r}: expected one of {', '.join(POOLING_METHODS)}")
    if word_index.dim() != 2 or hidden.shape[-3:-1] != word_index.shape:
        raise ValueError(
            f"hidden {tuple(hidden.shape)} and word_index {tuple(word_index.shape)} disagree: "
            "expected hidden (..., B, T, D) and word_index (B, T)"
        )
    B, T = word_index.shape
    D = hidden.shape[-1]
    lead = hidden.shape[:-3]
    if word_index.numel() and int(word_index.max()) >= n_words:
        raise ValueError(f"word index {int(word_index.max())} >= n_words {n_words}")
    flat_h = hidden.reshape(*lead, B * T, D)
    valid = word_index >= 0
    rows = torch.arange(B, device=word_index.device).unsqueeze(1).expand(B, T)
    target = (rows * n_words + word_index).reshape(-1)  # slot of each token
    valid_f = valid.reshape(-1)

    if method in ("first", "last"):
        if method == "first":
            prev = torch.full_like(word_index, -2)
            prev[:, 1:] = word_index[:, :-1]
            keep = valid & (word_index != prev)
        else:
            nxt = torch.full_like(word_index, -2)
            nxt[:, :-1] = word_index[:, 1:]
            keep = valid & (word_index != nxt)
        pos = keep.reshape(-1).nonzero(as_tuple=True)[0]
    else:
        pos = valid_f.nonzero(as_tuple=True)[0]
    tgt = target[pos]
    out = hidden.new_zeros(*lead, B * n_words, D)
    src = flat_h.index_select(-2, pos)
    if method in ("first", "last"):
        out = out.index_copy(-2, tgt, src)
    else:
        out = out.index_add(-2, tgt, src)
    counts = torch.zeros(B * n_words, device=hidden.device, dtype=hidden.dtype)
    counts.index_add_(0, target[valid_f.nonzero(as_tuple=True)[0]], torch.ones_like(target[valid_f], dtype=hidden.dtype))
    if method == "mean":
        out = out / counts.clamp(min=1).unsqueeze(-1)
    return out.reshape(*lead, B, n_words, D), counts.reshape(B, n_words).long()
