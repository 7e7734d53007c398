"""Plain PyTorch peers of the toolkit's study steps, for bench/bench_study_cost.py.

What a researcher would write by hand with transformers and torch alone: the HF tokenizer
(offsets for the first piece of each word), ``model(..., output_hidden_states=True)``, the
loss written out, ``backward``, the optimizer. No toolkit code runs in a timed plain step;
the toolkit is used only OUTSIDE the timed region to pick the same records (data order) and
to read the treebanks, and (drift) to compute the same statistics from the plain features,
so that both sides do the same work.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

IGNORE = -100


class Clock:
    """Wall and CPU seconds (CPU: this process, all threads) of a ``with`` block."""

    def __enter__(self):
        self.w0, self.c0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.w0
        self.cpu = time.process_time() - self.c0


# ----------------------------------------------------------------------------- tokenisation
def locate(text: str, words) -> tuple[np.ndarray, np.ndarray]:
    """Character span of each word in ``text`` (words in order, whitespace between)."""
    starts, pos = [], 0
    for w in words:
        pos = text.index(w, pos)
        starts.append(pos)
        pos += len(w)
    st = np.asarray(starts, dtype=np.int64)
    return st, st + np.asarray([len(w) for w in words], dtype=np.int64)


def conllu_text(sent) -> tuple[str, np.ndarray, np.ndarray]:
    """Running text of a CoNLL-U sentence's surface tokens (a space unless SpaceAfter=No)."""
    space = sent.space_after or [True] * len(sent.tokens)
    text = "".join(t + (" " if sp else "") for t, sp in zip(sent.tokens, space)).rstrip()
    return (text, *locate(text, sent.tokens))


def tokenize(tok, texts, max_length: int):
    """Right-padded ids and mask (torch) and the offsets and pieces (numpy) of a batch."""
    enc = tok(texts, padding=True, truncation=True, max_length=max_length, return_offsets_mapping=True)
    ids = torch.tensor(enc["input_ids"])
    mask = torch.tensor(enc["attention_mask"])
    bare = np.asarray([p.strip("▁Ġ ") == "" for p in tok.convert_ids_to_tokens(ids.reshape(-1).tolist())])
    return ids, mask, np.asarray(enc["offset_mapping"]), bare.reshape(ids.shape)


def first_pieces(offsets: np.ndarray, bare: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Token position of the first piece carrying characters of each word (-1: none); a
    piece that spans two words (``n.`` of ``Jahren.``) is a piece of both."""
    out = np.full(len(starts), -1, dtype=np.int64)
    carry = (offsets[:, 1] > offsets[:, 0]) & ~bare
    for t in np.flatnonzero(carry)[::-1]:  # last to first: the first piece writes last
        a = np.searchsorted(ends, offsets[t, 0], side="right")  # first word ending after the piece starts
        z = np.searchsorted(starts, offsets[t, 1], side="left")  # words starting before the piece ends
        out[a:z] = t
    return out


# ----------------------------------------------------------------------------- realign
@dataclass
class RealignBatch:
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    src: torch.Tensor  # flat token rows of the linked source words
    tgt: torch.Tensor  # ... and of their translations
    extra_src: torch.Tensor  # flat token rows of the other (unlinked) words, candidates only
    extra_tgt: torch.Tensor


def realign_batch(tok, records, max_length: int = 96) -> RealignBatch:
    """Pre-tokenise a batch of word-pair records: both sides in one padded batch."""
    B = len(records)
    texts, spans = [], []
    for which in ("src", "tgt"):
        for r in records:
            text = r.get(f"{which}_text") or " ".join(r[which])
            texts.append(text)
            spans.append(locate(text, r[which]))
    ids, mask, off, bare = tokenize(tok, texts, max_length)
    T = ids.shape[1]
    first = [np.where(fp >= 0, row * T + fp, -1) for row, fp in
             enumerate(first_pieces(off[r], bare[r], *spans[r]) for r in range(2 * B))]
    src, tgt, linked = [], [], [set() for _ in range(2 * B)]
    for b, r in enumerate(records):
        for i, j in r["links"]:
            if first[b][i] >= 0 and first[B + b][j] >= 0:
                src.append(first[b][i])
                tgt.append(first[B + b][j])
                linked[b].add(i)
                linked[B + b].add(j)
    extra = [[int(f) for k, f in enumerate(first[row]) if f >= 0 and k not in linked[row]] for row in range(2 * B)]
    cat = torch.tensor
    return RealignBatch(ids, mask, cat(src), cat(tgt), cat(sum(extra[:B], [])), cat(sum(extra[B:], [])))


def realign_loss(model, b: RealignBatch, temperature: float = 0.1) -> torch.Tensor:
    """Word-level InfoNCE with strong negatives on the last layer (Gaschi et al.)."""
    h = model(input_ids=b.input_ids, attention_mask=b.attention_mask, output_hidden_states=True).hidden_states[-1]
    flat = h.reshape(-1, h.shape[-1])
    n = len(b.src)
    anchors = F.normalize(torch.cat([flat[b.src], flat[b.tgt]]), dim=-1)
    cands = F.normalize(torch.cat([flat[b.src], flat[b.tgt], flat[b.extra_src], flat[b.extra_tgt]]), dim=-1)
    logits = anchors @ cands.T / temperature
    self_ = torch.zeros_like(logits, dtype=torch.bool)
    self_[torch.arange(2 * n), torch.arange(2 * n)] = True  # an anchor is never its own candidate
    labels = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
    return F.cross_entropy(logits.masked_fill(self_, float("-inf")), labels)


def realign_step(model, opt, b: RealignBatch) -> float:
    loss = realign_loss(model, b)
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return float(loss.detach())


# ----------------------------------------------------------------------------- fine-tune
def tagging_batch(tok, sents, tag_ids: dict, max_length: int = 128) -> dict:
    """Pre-tokenise CoNLL-U sentences for UPOS tagging: the first piece of each surface
    token carries the tag of its first syntactic word, every other position -100."""
    texts = [conllu_text(s) for s in sents]
    ids, mask, off, bare = tokenize(tok, [t for t, _, _ in texts], max_length)
    labels = torch.full(ids.shape, IGNORE, dtype=torch.long)
    for r, (s, (_, st, en)) in enumerate(zip(sents, texts)):
        tags = {}
        for w, t in zip(s.words, s.word_to_token):
            tags.setdefault(t, tag_ids[w.upos])
        for k, fp in enumerate(first_pieces(off[r], bare[r], st, en)):
            if fp >= 0 and labels[r, fp] == IGNORE:
                labels[r, fp] = tags[k]
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def tagging_step(model, opt, sched, batch: dict, max_grad_norm: float = 1.0) -> float:
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch["labels"].reshape(-1), ignore_index=IGNORE)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    opt.step()
    sched.step()
    opt.zero_grad(set_to_none=True)
    return float(loss.detach())


# ----------------------------------------------------------------------------- features
@torch.no_grad()
def word_features(model, tok, sents, batch_size: int = 32, max_length: int = 512):
    """``(layers, N words, D)`` float32 first-piece vectors of the syntactic words of
    ``sents`` at every hidden state (0 = embeddings), and ``(N,)`` valid flags."""
    feats, valid = [], []
    for a in range(0, len(sents), batch_size):
        batch = sents[a : a + batch_size]
        texts = [conllu_text(s) for s in batch]
        ids, mask, off, bare = tokenize(tok, [t for t, _, _ in texts], max_length)
        hs = torch.stack(model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states)
        T = ids.shape[1]
        rows = []
        for r, (s, (_, st, en)) in enumerate(zip(batch, texts)):
            fp = first_pieces(off[r], bare[r], st, en)[np.asarray(s.word_to_token)]  # syntactic words
            rows.append(np.where(fp >= 0, r * T + fp, 0))
            valid.append(fp >= 0)
        feats.append(hs.flatten(1, 2)[:, torch.from_numpy(np.concatenate(rows))].numpy())
    return np.concatenate(feats, axis=1), np.concatenate(valid)


class Extractor:
    """Plain word features in the shape the drift statistics read (layers, iter_chunks)."""

    def __init__(self, model, tok):
        self.model, self.tok = model, tok
        self.layers = tuple(range(model.config.num_hidden_layers + 1))
        self.seconds = 0.0  # wall time spent in the forward passes and pooling

    def iter_chunks(self, sentences, chunk_sentences: int = 512, total=None):
        from core.features import WordFeatures

        for a in range(0, len(sentences), chunk_sentences):
            chunk = sentences[a : a + chunk_sentences]
            t = time.perf_counter()
            x, ok = word_features(self.model, self.tok, chunk)
            self.seconds += time.perf_counter() - t
            offsets = np.concatenate([[0], np.cumsum([len(s) for s in chunk])])
            yield WordFeatures(self.layers, dict(zip(self.layers, x)), offsets, ok, "first", {})


# ----------------------------------------------------------------------------- probe
def probe_accuracy(x_train, y_train, evals: dict, C: float = 1.0, max_iter: int = 100, tol: float = 1e-4) -> dict:
    """Multinomial logistic regression per layer (all layers in one L-BFGS run, autograd),
    scikit-learn's objective ``C * sum CE + ||W||^2 / 2`` on standardised features, divided by
    ``C * N``; returns ``{name: (layers,) accuracy}`` for ``evals`` (name -> (x, y))."""
    classes, y = np.unique(y_train, return_inverse=True)
    X = torch.from_numpy(x_train)
    mean, std = X.double().mean(1, keepdim=True), X.double().std(1, unbiased=False, keepdim=True)
    std[std < 1e-12] = 1.0
    mean, std = mean.float(), std.float()
    Xs = (X - mean) / std
    L, n, d = Xs.shape
    k = len(classes)
    yt = torch.from_numpy(y).long()
    W = torch.zeros(L, d, k, requires_grad=True)
    b = torch.zeros(L, 1, k, requires_grad=True)
    opt = torch.optim.LBFGS([W, b], lr=1, max_iter=max_iter, max_eval=max_iter * 5 // 4, history_size=20,
                            tolerance_grad=tol, tolerance_change=1e-10, line_search_fn="strong_wolfe")
    l2 = 1.0 / (C * n)

    def closure():
        opt.zero_grad()
        logits = torch.baddbmm(b, Xs, W)
        ce = F.cross_entropy(logits.reshape(-1, k), yt.repeat(L), reduction="none").view(L, n).mean(1)
        loss = (ce + 0.5 * l2 * W.pow(2).sum((1, 2))).sum()
        loss.backward()
        return loss

    opt.step(closure)
    out = {}
    with torch.no_grad():
        for name, (x, ytrue) in evals.items():
            pred = torch.baddbmm(b, (torch.from_numpy(x) - mean) / std, W).argmax(-1).numpy()
            out[name] = (classes[pred] == np.asarray(ytrue)[None, :]).mean(1)
    return out
