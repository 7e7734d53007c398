"""THE sub-word -> word pooling function. Features, realignment, probing, CKA, retrieval,
fine-tuning labels and evaluation all call :func:`pool_subwords`; manifests record the method.

What a word owns is given as ``(token, word)`` pairs (:class:`WordPieces`, built by
:mod:`core.encoding` from character offsets): a word owns the pieces that carry some of
its characters. A piece that carries no character (a bare ``▁`` / ``Ġ`` marker), a special
token or padding belongs to no word and never enters a word vector; a piece shared by two
words (``是中国`` = ``是`` + ``中国``) belongs to both. ``first`` is the first piece that
carries characters of the word, ``last`` the last one, ``mean``/``sum`` run over all of
the word's pieces.

The older per-token form, a ``(B, T)`` word-index tensor (-1 = no word; one word per
token), is accepted too and converted to pairs. Pooling is vectorised
(``scatter_reduce``/``index_add``), with no Python loop over words.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

POOLING_METHODS = ("first", "mean", "last", "sum")


@dataclass
class WordPieces:
    """Which token positions make each word: ``(token[k], word[k])`` pairs.

    Attributes:
        token: ``(P,)`` long, flat token position ``row * T + t`` in a ``(R, T)`` batch.
        word: ``(P,)`` long, output word slot in ``0..n_words-1``.
        n_words: N, the number of word slots (a slot no pair reaches stays empty).
    """

    token: torch.Tensor
    word: torch.Tensor
    n_words: int

    def to(self, device) -> WordPieces:
        return WordPieces(self.token.to(device), self.word.to(device), self.n_words)

    @classmethod
    def from_word_index(cls, word_index: torch.Tensor, n_words: int | list[int], flat: bool) -> WordPieces:
        """Pairs of a ``(B, T)`` per-token word index (-1 = no word).

        ``flat=False``: slot ``row * n_words + w`` (``n_words`` an int); ``flat=True``:
        ``n_words`` per row (an int for every row, or a list), slots of consecutive rows
        follow each other with no padding.
        """
        if word_index.dim() != 2:
            raise ValueError(f"word_index must be (B, T), got {tuple(word_index.shape)}")
        B, T = word_index.shape
        if flat:
            per_row = torch.as_tensor(n_words if not isinstance(n_words, int) else [n_words] * B,
                                      device=word_index.device, dtype=torch.long)
            if per_row.numel() != B:
                raise ValueError(f"flat pooling needs one word count per row: got {per_row.numel()} for {B} rows")
            base, limit, total = torch.cumsum(per_row, 0) - per_row, per_row.unsqueeze(1), int(per_row.sum())
        else:
            if not isinstance(n_words, int):
                raise ValueError("n_words must be an int unless flat=True")
            base = torch.arange(B, device=word_index.device) * n_words
            limit, total = n_words, B * n_words
        if word_index.numel() and bool((word_index >= limit).any()):
            raise ValueError(f"word index {int(word_index.max())} >= n_words {n_words}")
        valid = (word_index >= 0).reshape(-1)
        token = valid.nonzero(as_tuple=True)[0]
        word = (base.unsqueeze(1) + word_index).reshape(-1)[token]
        return cls(token, word, total)


def pool_subwords(
    hidden: torch.Tensor,
    pieces: WordPieces | torch.Tensor,
    n_words: int | list[int] | None = None,
    method: str = "first",
    *,
    flat: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pool sub-word vectors into word vectors.

    Args:
        hidden: ``(..., R, T, D)`` token states (leading dims, e.g. layers, are kept).
        pieces: a :class:`WordPieces` (what :mod:`core.encoding` produces), or a ``(R, T)``
            long per-token word index (-1 for tokens of no word).
        n_words: only with a word-index tensor: W word slots per row (int), or with
            ``flat=True`` the word count of each row.
        method: ``first`` | ``mean`` | ``last`` | ``sum``.
        flat: only with a word-index tensor: return the words of all rows concatenated.

    Returns:
        With :class:`WordPieces`: ``(..., N, D)`` word vectors and ``(N,)`` piece counts.
        With a word index: ``(..., R, W, D)`` and ``(R, W)`` (or the flat forms). Empty
        slots (count 0: a word no piece reached) are zeros.

    Raises:
        ValueError: unknown method, shapes that disagree, a word index out of range.
    """
    if method not in POOLING_METHODS:
        raise ValueError(f"unknown pooling {method!r}: expected one of {', '.join(POOLING_METHODS)}")
    if hidden.dim() < 3:
        raise ValueError(f"hidden must be (..., R, T, D), got {tuple(hidden.shape)}")
    R, T, D = hidden.shape[-3:]
    lead = hidden.shape[:-3]
    padded_shape = None
    if isinstance(pieces, torch.Tensor):
        if pieces.shape != (R, T):
            raise ValueError(f"hidden {tuple(hidden.shape)} and word_index {tuple(pieces.shape)} disagree: "
                             "expected hidden (..., B, T, D) and word_index (B, T)")
        if n_words is None:
            raise ValueError("n_words is needed with a per-token word index")
        if not flat and isinstance(n_words, int):
            padded_shape = (R, n_words)
        pieces = WordPieces.from_word_index(pieces, n_words, flat)
    elif n_words is not None and n_words != pieces.n_words:
        raise ValueError(f"n_words {n_words} disagrees with the pieces' {pieces.n_words} word slots")
    token, word, N = pieces.token.to(hidden.device), pieces.word.to(hidden.device), pieces.n_words
    if token.numel() and (int(token.max()) >= R * T or int(word.max()) >= N or int(word.min()) < 0):
        raise ValueError(f"pieces point outside the batch ({R} x {T} tokens, {N} words)")
    flat_h = hidden.reshape(*lead, R * T, D)
    counts = torch.zeros(N, device=hidden.device, dtype=torch.long).index_add_(0, word, torch.ones_like(word))
    if method in ("first", "last"):
        # the first (last) token position of each word: one scatter over all pairs
        init = R * T if method == "first" else -1
        pick = torch.full((N,), init, device=hidden.device, dtype=torch.long)
        pick = pick.scatter_reduce(0, word, token, "amin" if method == "first" else "amax")
        has = counts > 0
        if bool(has.all()):
            out = flat_h.index_select(-2, pick)
        else:
            slots = has.nonzero(as_tuple=True)[0]
            out = hidden.new_zeros(*lead, N, D).index_copy(-2, slots, flat_h.index_select(-2, pick[slots]))
    else:
        out = hidden.new_zeros(*lead, N, D).index_add(-2, word, flat_h.index_select(-2, token))
        if method == "mean":
            out = out / counts.clamp(min=1).to(hidden.dtype).unsqueeze(-1)
    if padded_shape is not None:
        return out.reshape(*lead, *padded_shape, D), counts.reshape(padded_shape)
    return out, counts
