"""Words -> model inputs: THE tokenisation of pre-split words, for every path that tokenises
(features, drift, CKA, probes, align-eval, realignment, fine-tuning, evaluation, attribution
and the decoder commands).

1. Running text. A model was trained on running text, so a sentence is tokenised as the
   text it came from: its surface words joined by a space, except after a word whose
   CoNLL-U MISC says ``SpaceAfter=No`` (:attr:`core.conllu.Sentence.space_after`: Chinese
   and Thai words are glued, punctuation often is). A plain list of words is joined with
   single spaces. A text given as written (a str at sentence level, or a
   :class:`Surface` from :func:`text_surface`: a line of plain text, a word-pairs record's
   ``src_text``) is kept as it is, whitespace included, and its words are located in it. Byte-level BPE (GPT-2, Llama 3, SmolLM2) then sees ``Ġcat`` as in running
   text, not ``cat`` glued to the previous word; SentencePiece sees ``北京是中国`` as one
   string, as in its training data.
2. Pieces -> words by CHARACTER overlap (``return_offsets_mapping``): a word owns the pieces
   whose offsets overlap its characters. A piece that carries no character of the text (a
   bare word-start marker: XLM-R's ``▁`` before ``amerikanische``, a lone ``Ġ``; decided from
   the piece itself, :func:`bare_piece_mask`, because its offsets still overlap the next
   character), a special token or padding belongs to no word and never enters a word
   vector. A piece shared by two words (XLM-R's ``是中国`` for ``是`` + ``中国``) belongs to
   both; such words are counted (``shared_piece_words``). Pooling (first = first piece that
   carries characters of the word) is :func:`core.pooling.pool_subwords`.
3. Long inputs, one policy (:func:`encode_windows`). A sentence with more pieces than the
   model's positions is split into windows at word boundaries, each window encoded on its
   own with its own special tokens; a single word with more pieces than a window holds is
   truncated inside its own window (it keeps its first pieces). Every window, windowed
   sentence and truncated word is counted in :class:`EncodingStats`, which callers return,
   print (:func:`report`) and record in their manifests.

API for callers (the decoder commands included):

- word level: ``batch = encode_words(tok, sentences, max_length)``; states of the batch's
  rows with :func:`core.layers.layer_states` ``(model, layers, **batch.inputs)``; word vectors
  ``batch.pool(states[l], "first")`` -> ``(N words, D)`` in sentence order (sentence ``s``
  owns rows ``batch.word_offsets[s]:batch.word_offsets[s+1]``), windows included;
- sentence level: ``batch = encode_texts(tok, texts, max_length)`` (str texts kept verbatim)
  and ``batch.sentence_mean(states[l])`` -> ``(S, D)``, the mean over each sentence's non-pad
  tokens across its windows (the reference's sentence vector);
- streaming many sentences: :func:`encode_windows` then :func:`collate` batches of windows
  (as :class:`core.features.WordFeatureExtractor` does); ``batch.stats`` / ``stats=`` carry
  the counts; :func:`model_max_length` gives the window size of a model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from .pieces import (  # noqa: F401  (re-exported: core.encoding is the public module)
    PIECE_TO_WORD,
    EncodingStats,
    SentenceLike,
    Surface,
    bare_piece_mask,
    join_words,
    report,
    running_text,
    split_text,
    surface,
    surface_text,
    text_surface,
    word_pieces,
)
from .pooling import WordPieces, pool_subwords


# ----------------------------------------------------------------------------- windows
@dataclass
class Window:
    """One model input sequence: words ``start..end-1`` of sentence ``sentence``.

    ``input_ids`` include the special tokens; ``text_mask`` marks the tokens of the text
    (not special); ``(piece_token[k], piece_word[k])``: token position and SENTENCE word
    index of every (token, word) pair; ``truncated``: the (single) word lost pieces.
    """

    sentence: int
    start: int
    end: int
    input_ids: np.ndarray
    text_mask: np.ndarray
    piece_token: np.ndarray
    piece_word: np.ndarray
    truncated: bool = False


def _max_positions(tokenizer, max_length: int | None) -> int | None:
    if max_length is not None:
        return int(max_length)
    n = getattr(tokenizer, "model_max_length", None)
    return int(n) if n and n < 1e9 else None


def model_max_length(model, tokenizer) -> int:
    """Largest number of tokens (specials included) the model accepts."""
    cfg = getattr(model, "config", None)
    n = getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None) or 512
    if getattr(cfg, "model_type", "") in ("roberta", "xlm-roberta"):
        n -= 2  # positions start after the padding index
    tok_max = getattr(tokenizer, "model_max_length", None) or n
    return int(min(n, tok_max if tok_max < 1e9 else n))


class _Encoder:
    """Tokenises running texts with offsets and turns them into :class:`Window` objects."""

    def __init__(self, tokenizer, max_length: int | None):
        self.tok = tokenizer
        self.max_length = max_length
        self.n_special = tokenizer.num_special_tokens_to_add(pair=False)
        if max_length is not None and max_length - self.n_special < 1:
            raise ValueError(f"max_length {max_length} leaves no room for words "
                             f"({self.n_special} special tokens per sequence)")

    def tokenize(self, texts: list[str], truncate: bool = False) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        if not texts:
            return []
        enc = self.tok(texts, add_special_tokens=True, return_offsets_mapping=True, return_special_tokens_mask=True,
                       return_attention_mask=False, return_token_type_ids=False, split_special_tokens=True, verbose=False,
                       truncation=truncate, max_length=self.max_length if truncate else None)
        out = []
        for ids, off, sp in zip(enc["input_ids"], enc["offset_mapping"], enc["special_tokens_mask"]):
            out.append((np.asarray(ids, dtype=np.int64), np.asarray(off, dtype=np.int64).reshape(-1, 2),
                        np.asarray(sp, dtype=bool)))
        return out

    def window(self, s: int, a: int, starts: np.ndarray, ends: np.ndarray, encoded, truncated: bool = False) -> Window:
        ids, off, special = encoded
        carry = ~special & ~bare_piece_mask(self.tok, ids)
        tok, word = word_pieces(off, carry, starts, ends)
        return Window(s, a, a + len(starts), ids, ~special, tok, word + a, truncated)

    def costs(self, starts: np.ndarray, ends: np.ndarray, encoded) -> np.ndarray:
        """Positions each word takes (a bare marker or space piece counts for the next word)."""
        _ids, off, special = encoded
        b = off[~special, 1]
        owner = np.minimum(np.searchsorted(ends, b, side="left"), len(ends) - 1)
        return np.bincount(owner, minlength=len(ends))


def _plan(costs: np.ndarray, budget: int) -> list[tuple[int, int]]:
    """Greedy word ranges ``[a, b)`` whose costs fit ``budget`` (a word over it stands alone)."""
    windows, start, used = [], 0, 0
    for i, c in enumerate(costs.tolist()):
        if used + c > budget and i > start:
            windows.append((start, i))
            start, used = i, 0
        used += c
    windows.append((start, len(costs)))
    return windows


def _span(sf: Surface, starts: Sequence[int], a: int, b: int) -> tuple[str, np.ndarray, np.ndarray]:
    """Running text of words ``a..b-1`` (a slice of the text as written, when there is one)."""
    if sf.text is None:
        return running_text(sf.words[a:b], sf.space_after[a:b])
    st = np.asarray(starts[a:b], dtype=np.int64)
    en = st + np.fromiter((len(w) for w in sf.words[a:b]), dtype=np.int64, count=b - a)
    return sf.text[st[0]:en[-1]], st - st[0], en - st[0]


def encode_windows(tokenizer, sentences: Sequence[SentenceLike | str], max_length: int | None = None, *,
                   stats: EncodingStats | None = None) -> list[Window]:
    """THE long-input policy: every sentence as one or more :class:`Window` objects, in order.

    Args:
        tokenizer: a fast tokenizer (offsets are needed).
        sentences: CoNLL-U sentences, :class:`Surface` objects, lists of words, or plain
            str texts (as :func:`text_surface`: the whitespace-separated parts are the words
            and the characters are kept as they are).
        max_length: positions per sequence, specials included (default: the tokenizer's
            ``model_max_length``; pass :func:`model_max_length` of the model).
        stats: counts are added to it.

    A sentence that fits is tokenised once. A longer one is cut at word boundaries into
    windows that fit (planned from its own tokenisation, checked after re-encoding each
    window); a word longer than a window alone is truncated to ``max_length`` positions.
    """
    enc = _Encoder(tokenizer, _max_positions(tokenizer, max_length))
    st = EncodingStats(max_length=enc.max_length or 0)
    surfaces, texts, starts = [], [], []
    for s in sentences:
        sf = text_surface(s) if isinstance(s, str) else surface(s)
        text, sts = surface_text(sf)
        surfaces.append(sf)
        texts.append(text)
        starts.append(sts)
    S = len(surfaces)
    st.sentences += S
    if not S:
        return []
    # every sentence tokenised once, in one call; pieces -> words for all of them at once:
    # sentence s's characters are shifted by char_base[s] so that no piece reaches another
    # sentence's words, and one pair of searchsorted calls maps every piece
    encoded = enc.tokenize(texts)
    n_tok = np.fromiter((len(e[0]) for e in encoded), dtype=np.int64, count=S)
    n_words = np.fromiter((len(sf.words) for sf in surfaces), dtype=np.int64, count=S)
    st.words += int(n_words.sum())
    ids = np.concatenate([e[0] for e in encoded])
    off = np.concatenate([e[1] for e in encoded])
    special = np.concatenate([e[2] for e in encoded])
    tok_base = np.concatenate([[0], np.cumsum(n_tok)])
    word_base = np.concatenate([[0], np.cumsum(n_words)])
    char_base = np.concatenate([[0], np.cumsum([len(t) + 1 for t in texts])])[:-1]
    w_start = np.fromiter((x for sts in starts for x in sts), dtype=np.int64, count=int(word_base[-1]))
    w_len = np.fromiter((len(w) for sf in surfaces for w in sf.words), dtype=np.int64, count=int(word_base[-1]))
    w_start += np.repeat(char_base, n_words)
    carry = ~special & ~bare_piece_mask(tokenizer, ids)
    tok_g, word_g = word_pieces(off + np.repeat(char_base, n_tok)[:, None], carry, w_start, w_start + w_len)
    cut = np.searchsorted(tok_g, tok_base)  # pairs of sentence s: cut[s]:cut[s+1]
    fits = (n_tok <= enc.max_length) | (n_words == 0) if enc.max_length is not None else np.ones(S, dtype=bool)

    # counts of the sentences that fit, from the global pairs
    in_fit = np.repeat(fits, n_tok)
    keep = in_fit[tok_g]
    tg, wg = tok_g[keep], word_g[keep]
    st.words_without_pieces += int(n_words[fits].sum()) - len(np.unique(wg))
    per_tok = np.bincount(tg, minlength=len(ids))
    st.shared_piece_words += len(np.unique(wg[per_tok[tg] > 1]))
    st.bare_marker_pieces += int((~special & in_fit).sum()) - int((per_tok > 0).sum())

    out: list[Window] = []
    long_windows: list[Window] = []
    for k in range(S):
        t0, t1, c0, c1 = tok_base[k], tok_base[k + 1], cut[k], cut[k + 1]
        if fits[k]:
            out.append(Window(k, 0, int(n_words[k]), ids[t0:t1], ~special[t0:t1], tok_g[c0:c1] - t0,
                              word_g[c0:c1] - word_base[k]))
            continue
        sf = surfaces[k]
        e = encoded[k]
        sts = np.asarray(starts[k], dtype=np.int64)
        ends = sts + w_len[word_base[k]:word_base[k + 1]]
        todo = _plan(enc.costs(sts, ends, e), enc.max_length - enc.n_special)
        done: list[Window] = []
        while todo:
            spans = [_span(sf, starts[k], a, b) for a, b in todo]
            encs = enc.tokenize([t for t, _, _ in spans])
            nxt = []
            for (a, b), (text, st_, en_), ew in zip(todo, spans, encs):
                if len(ew[0]) <= enc.max_length:
                    done.append(enc.window(k, a, st_, en_, ew))
                elif b - a > 1:  # context changed the pieces at the cut: split again
                    nxt += [(a + x, a + y) for x, y in _plan(enc.costs(st_, en_, ew), enc.max_length - enc.n_special)]
                else:
                    done.append(enc.window(k, a, st_, en_, enc.tokenize([text], truncate=True)[0], truncated=True))
            todo = nxt
        st.windowed += len(done) > 1
        done.sort(key=lambda w: w.start)
        out.extend(done)
        long_windows.extend(done)
    st.windows += len(out)
    for w in long_windows:
        st.truncated_words += int(w.truncated)
        n = w.end - w.start
        st.words_without_pieces += int((np.bincount(w.piece_word - w.start, minlength=n) == 0).sum())
        per_tok = np.bincount(w.piece_token, minlength=len(w.input_ids))
        st.shared_piece_words += len(np.unique(w.piece_word[per_tok[w.piece_token] > 1]))
        st.bare_marker_pieces += int(w.text_mask.sum()) - len(np.unique(w.piece_token))
    if stats is not None:
        stats += st
    return out


# ----------------------------------------------------------------------------- batches
@dataclass
class EncodedBatch:
    """Model inputs of several windows and which tokens make which word.

    ``input_ids``/``attention_mask``/``text_mask`` are ``(R, T)`` (right padding);
    ``pieces`` maps tokens to word slots: the words of the batch's sentences in order (a
    sentence's windows are consecutive, so its words are too); ``n_words[s]`` words in
    sentence ``s``; ``row_sentence[r]`` the sentence of row ``r``.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    text_mask: torch.Tensor
    pieces: WordPieces
    n_words: list[int]
    row_sentence: torch.Tensor
    stats: EncodingStats = field(default_factory=EncodingStats)

    def to(self, device) -> EncodedBatch:
        return EncodedBatch(self.input_ids.to(device), self.attention_mask.to(device), self.text_mask.to(device),
                            self.pieces.to(device), self.n_words, self.row_sentence.to(device), self.stats)

    @property
    def inputs(self) -> dict[str, torch.Tensor]:
        """Keyword inputs of the model."""
        return {"input_ids": self.input_ids, "attention_mask": self.attention_mask}

    @property
    def word_offsets(self) -> np.ndarray:
        """``(S + 1,)``: sentence ``s`` owns word slots ``word_offsets[s]:word_offsets[s+1]``."""
        return np.concatenate([[0], np.cumsum(self.n_words)]).astype(np.int64)

    def pool(self, hidden: torch.Tensor, method: str = "first") -> tuple[torch.Tensor, torch.Tensor]:
        """``(..., N, D)`` word vectors and ``(N,)`` piece counts (N = sum of ``n_words``)."""
        return pool_subwords(hidden, self.pieces, method=method)

    def sentence_mean(self, hidden: torch.Tensor, *, text_only: bool = False) -> torch.Tensor:
        """THE sentence vector: ``(..., S, D)`` float32 mean of each sentence's non-pad tokens
        over all its windows (the reference's mean over non-pad tokens; a sentence longer
        than a window is the token-weighted mean of its windows), or of its text tokens only
        (``text_only``: no special token). ``hidden`` is ``(..., R, T, D)`` (rows of this
        batch); sums are taken in float32 whatever its dtype (bf16 under mixed precision).
        A sentence without a token gives zeros. Differentiable."""
        if hidden.shape[-3:-1] != self.input_ids.shape:
            raise ValueError(f"states {tuple(hidden.shape)} do not match the batch's {tuple(self.input_ids.shape)} "
                             "rows x tokens: expected (..., R, T, D)")
        D = hidden.shape[-1]
        lead = hidden.shape[:-3]
        m = (self.text_mask if text_only else self.attention_mask.bool()).to(hidden.device, torch.float32)
        row_sum = (hidden.float() * m[..., None]).sum(-2)  # (..., R, D); no matmul: autocast would take it to bf16
        S = len(self.n_words)
        rs = self.row_sentence.to(hidden.device)
        tot = row_sum.new_zeros(*lead, S, D).index_add(-2, rs, row_sum)
        cnt = row_sum.new_zeros(S).index_add(0, rs, m.sum(-1))
        return tot / cnt.clamp(min=1)[:, None]

    @property
    def word_index(self) -> torch.Tensor:
        """``(R, T)`` per-token word index within its sentence (-1: no word). A piece shared
        by two words shows the first only: for inspection; pooling uses :attr:`pieces`."""
        R, T = self.input_ids.shape
        off = torch.as_tensor(self.word_offsets, device=self.pieces.word.device)
        rows = self.pieces.token // T
        local = self.pieces.word - off[self.row_sentence.to(rows.device)[rows]]
        big = torch.iinfo(torch.long).max
        wi = torch.full((R * T,), big, dtype=torch.long, device=local.device)
        wi = wi.scatter_reduce(0, self.pieces.token, local, "amin")
        return torch.where(wi == big, -1, wi).reshape(R, T)


def collate(windows: Sequence[Window], pad_id: int, *, by_sentence: bool = False,
            stats: EncodingStats | None = None) -> EncodedBatch:
    """Pad windows into one :class:`EncodedBatch`.

    ``by_sentence=False``: every window is its own "sentence" (its words are slots
    ``base..base + end - start``). ``by_sentence=True``: consecutive windows of the same
    sentence form one sentence (they must be complete and in order, as
    :func:`encode_windows` returns them).
    """
    R = len(windows)
    T = max((len(w.input_ids) for w in windows), default=0)
    ids = np.full((R, T), pad_id, dtype=np.int64)
    mask = np.zeros((R, T), dtype=np.int64)
    text = np.zeros((R, T), dtype=bool)
    toks, words, n_words, row_sentence = [], [], [], []
    base = 0
    for r, w in enumerate(windows):
        n = len(w.input_ids)
        ids[r, :n], mask[r, :n], text[r, :n] = w.input_ids, 1, w.text_mask
        toks.append(r * T + w.piece_token)
        words.append(base + w.piece_word - w.start)
        base += w.end - w.start
        if by_sentence and r > 0 and windows[r - 1].sentence == w.sentence:
            if windows[r - 1].end != w.start:
                raise ValueError(f"windows of sentence {w.sentence} are not consecutive")
            n_words[-1] += w.end - w.start
        else:
            n_words.append(w.end - w.start)
        row_sentence.append(len(n_words) - 1)
    def cat(xs):
        return torch.from_numpy(np.concatenate(xs)) if xs else torch.zeros(0, dtype=torch.long)

    pieces = WordPieces(cat(toks), cat(words), base)
    return EncodedBatch(torch.from_numpy(ids), torch.from_numpy(mask), torch.from_numpy(text), pieces, n_words,
                        torch.as_tensor(row_sentence, dtype=torch.long), stats or EncodingStats())


def pad_id_of(tokenizer) -> int:
    """The id used for padding (attention-masked, so any id works when none is defined)."""
    for tid in (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id):
        if tid is not None:
            return int(tid)
    return 0


def encode_words(tokenizer, sentences: Sequence[SentenceLike], max_length: int | None = None) -> EncodedBatch:
    """Tokenise sentences of words as running text, windowed by :func:`encode_windows`.

    Returns an :class:`EncodedBatch` whose word slots are the sentences' words in order
    (``n_words[s] = len(words of s)``), whatever the number of windows; ``batch.stats``
    holds the counts.
    """
    if isinstance(sentences, str):
        raise TypeError("encode_words takes a list of sentences (lists of words), not a str")
    for s in sentences:
        if isinstance(s, str):
            raise TypeError("a sentence must be a list of words (or a core.conllu.Sentence), not a str")
    stats = EncodingStats()
    wins = encode_windows(tokenizer, sentences, max_length, stats=stats)
    return collate(wins, pad_id_of(tokenizer), by_sentence=True, stats=stats)


def encode_texts(tokenizer, texts: Sequence[str | SentenceLike], max_length: int | None = None) -> EncodedBatch:
    """Sentence-level inputs (str texts kept verbatim, or words / CoNLL-U sentences as
    running text), windowed by the same policy; pool with :meth:`EncodedBatch.sentence_mean`."""
    if isinstance(texts, str):
        raise TypeError("encode_texts takes a list of texts, not a str")
    stats = EncodingStats()
    wins = encode_windows(tokenizer, texts, max_length, stats=stats)
    return collate(wins, pad_id_of(tokenizer), by_sentence=True, stats=stats)


def unknown_words(tokenizer, sentences: Sequence[SentenceLike], max_length: int | None = None) -> list[np.ndarray]:
    """Per sentence, True for the words whose pieces are ALL the unknown token (words
    without pieces are not unknown). Tokenizers without an unknown token: all False."""
    unk = getattr(tokenizer, "unk_token_id", None)
    out = [np.zeros(len(surface(s).words), dtype=bool) for s in sentences]
    if unk is None:
        return out
    for w in encode_windows(tokenizer, sentences, max_length):
        is_unk = w.input_ids[w.piece_token] == unk
        n = len(out[w.sentence])
        seen = np.bincount(w.piece_word, minlength=n) > 0
        known = np.bincount(w.piece_word, weights=~is_unk, minlength=n) > 0
        out[w.sentence] |= seen & ~known
    return out
