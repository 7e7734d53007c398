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
    hidden: torch.Tensor,
    word_index: torch.Tensor,
    n_words: int | list[int],
    method: str = "first",
    *,
    flat: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pool sub-word vectors into word vectors.

    Args:
        hidden: ``(..., B, T, D)`` token states (leading dims, e.g. layers, are kept).
        word_index: ``(B, T)`` long, word number per token or -1 (special/padding).
            Tokens of one word must be contiguous (true for every HF fast tokenizer).
        n_words: W, the number of word slots per row (>= max word index + 1).
        method: ``first`` | ``mean`` | ``last`` | ``sum``.

        flat: with ``n_words`` a list of per-row word counts, return the words of all rows
            concatenated, ``(..., sum(n_words), D)`` and ``(sum(n_words),)`` counts — no
            padding slots (what feature extraction stores).

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
    valid = word_index >= 0
    if flat:
        per_row = torch.as_tensor(n_words if not isinstance(n_words, int) else [n_words] * B,
                                  device=word_index.device, dtype=torch.long)
        if per_row.numel() != B:
            raise ValueError(f"flat pooling needs one word count per row: got {per_row.numel()} for {B} rows")
        start = torch.cumsum(per_row, 0) - per_row  # first output row of each sentence
        limit, n_slots = per_row.unsqueeze(1), int(per_row.sum())
        row_base = start.unsqueeze(1)
    else:
        if not isinstance(n_words, int):
            raise ValueError("n_words must be an int unless flat=True")
        limit, n_slots = n_words, B * n_words
        row_base = torch.arange(B, device=word_index.device).unsqueeze(1) * n_words
    if word_index.numel() and bool((word_index >= limit).any()):
        raise ValueError(f"word index {int(word_index.max())} >= n_words {n_words}")
    flat_h = hidden.reshape(*lead, B * T, D)
    target = (row_base + word_index).reshape(-1)  # output slot of each token
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
    src = flat_h.index_select(-2, pos)
    tok_t = target[valid_f]
    counts = torch.zeros(n_slots, device=hidden.device, dtype=torch.long)
    counts.index_add_(0, tok_t, torch.ones_like(tok_t))
    if method in ("first", "last") and flat and tgt.numel() == n_slots:
        out = src  # every word has a token and rows are in order: no scatter needed
    elif method in ("first", "last"):
        out = hidden.new_zeros(*lead, n_slots, D).index_copy(-2, tgt, src)
    else:
        out = hidden.new_zeros(*lead, n_slots, D).index_add(-2, tgt, src)
        if method == "mean":
            out = out / counts.clamp(min=1).to(hidden.dtype).unsqueeze(-1)
    if flat:
        return out, counts
    return out.reshape(*lead, B, n_words, D), counts.reshape(B, n_words)
