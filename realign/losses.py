"""Realignment losses and the single entry point :func:`realignment_loss`.

Word-level InfoNCE follows the reference (Gaschi et al.; see REFERENCE.md): each aligned
word is compared by cosine similarity with the words of both sentences of every pair in
the batch, divided by tau = 0.1, and must pick its translation. All losses are computed
in float32 even under mixed precision.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from core.arch import base_model, num_layers, parse_layers
from core.encoding import encode_words, model_max_length
from core.layers import layer_states
from core.wordpairs import side


def word_infonce(
    src: torch.Tensor,
    tgt: torch.Tensor,
    temperature: float = 0.1,
    negatives: str = "strong",
    src_extra: torch.Tensor | None = None,
    tgt_extra: torch.Tensor | None = None,
) -> torch.Tensor:
    """Word-level contrastive loss over aligned word pairs.

    Args:
        src: ``(N, D)`` source-language word vectors; row ``i`` is aligned with ``tgt[i]``.
        tgt: ``(N, D)`` target-language word vectors.
        temperature: tau; logits are ``cos(a, c) / tau``.
        negatives: ``strong`` or ``weak`` (below).
        src_extra, tgt_extra: ``(M, D)`` vectors of further source / target words of the
            batch (words without a link). They are candidates (negatives) only, never
            anchors.

    Definition. The anchors are the ``2N`` aligned words ``A = [src; tgt]``; the candidates
    are ``C = [src; tgt; src_extra; tgt_extra]``, each tagged with its language. For anchor
    ``a`` with partner ``p(a)`` (``i <-> N + i``)::

        loss_a = -log( exp(cos(a, p(a))/tau) / sum_{c in C, c allowed} exp(cos(a, c)/tau) )

    ``strong``: every candidate is allowed except the anchor itself (same-language words
    are negatives too; the paper's default). ``weak``: only candidates of the OTHER
    language are allowed (the anchor and all same-language words are masked). The loss is
    the mean of ``loss_a`` over the ``2N`` anchors (both directions). With ``N = 0`` it is
    a zero that still depends on the inputs (so ``backward`` works).
    """
    if src.shape != tgt.shape or src.dim() != 2:
        raise ValueError(f"src {tuple(src.shape)} and tgt {tuple(tgt.shape)} must both be (N, D)")
    if negatives not in ("strong", "weak"):
        raise ValueError(f"negatives={negatives!r}: expected strong or weak")
    n = src.shape[0]
    if n == 0:
        return (src.sum() + tgt.sum()) * 0.0
    d = src.shape[1]
    src_extra = src.new_zeros(0, d) if src_extra is None else src_extra
    tgt_extra = tgt.new_zeros(0, d) if tgt_extra is None else tgt_extra
    anchors = F.normalize(torch.cat([src, tgt]).float(), dim=-1)
    cands = F.normalize(torch.cat([src, tgt, src_extra, tgt_extra]).float(), dim=-1)
    logits = anchors @ cands.T / temperature  # (2N, 2N + Ms + Mt)
    dev = logits.device
    lang_a = torch.cat([torch.zeros(n, dtype=torch.bool, device=dev), torch.ones(n, dtype=torch.bool, device=dev)])
    lang_c = torch.cat([lang_a, torch.zeros(src_extra.shape[0], dtype=torch.bool, device=dev),
                        torch.ones(tgt_extra.shape[0], dtype=torch.bool, device=dev)])
    mask = torch.zeros_like(logits, dtype=torch.bool)
    idx = torch.arange(2 * n, device=dev)
    mask[idx, idx] = True  # the anchor itself is never a candidate
    if negatives == "weak":
        mask |= lang_a[:, None] == lang_c[None, :]
    logits = logits.masked_fill(mask, float("-inf"))
    labels = torch.cat([idx[n:], idx[:n]])  # src i -> N + i, tgt i -> i
    return F.cross_entropy(logits, labels)


def sentence_infonce(
    src_sent: torch.Tensor,
    tgt_sent: torch.Tensor,
    temperature: float = 0.1,
    symmetric: bool = False,
    detach_target: bool = False,
) -> torch.Tensor:
    """Sentence-level InfoNCE: each source sentence picks its translation in the batch.

    ``logits = cos(src_sent[i], tgt_sent[j]) / tau`` (``(B, B)``), loss = cross-entropy with
    the diagonal as labels (source -> target, as the reference). ``symmetric`` averages it
    with the target -> source direction; ``detach_target`` stops gradients into the target
    side (the reference's option to train one side only).
    """
    if src_sent.shape != tgt_sent.shape or src_sent.dim() != 2:
        raise ValueError(f"src_sent {tuple(src_sent.shape)} and tgt_sent {tuple(tgt_sent.shape)} must both be (B, D)")
    if detach_target:
        tgt_sent = tgt_sent.detach()
    s = F.normalize(src_sent.float(), dim=-1)
    t = F.normalize(tgt_sent.float(), dim=-1)
    logits = s @ t.T / temperature
    labels = torch.arange(s.shape[0], device=s.device)
    loss = F.cross_entropy(logits, labels)
    if symmetric:
        loss = (loss + F.cross_entropy(logits.T, labels)) / 2
    return loss


def l2_alignment(src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
    """Mean squared error between aligned word vectors (mean over pairs AND dimensions,
    i.e. ``torch.nn.functional.mse_loss``); 0 for no pairs."""
    if src.shape != tgt.shape:
        raise ValueError(f"src {tuple(src.shape)} and tgt {tuple(tgt.shape)} differ")
    if src.numel() == 0:
        return (src.sum() + tgt.sum()) * 0.0
    return F.mse_loss(src.float(), tgt.float())


def weight_regularisation(model: torch.nn.Module, initial_state: dict[str, torch.Tensor],
                          names: Iterable[str] | None = None) -> torch.Tensor:
    """``sum_names ||w - w_0||^2`` over the named parameters (default: all keys of
    ``initial_state``). A name the model does not have is a ``KeyError``."""
    model = getattr(model, "module", model)  # DDP/accelerate wrapper
    params = dict(model.named_parameters())
    total = None
    for name in (initial_state.keys() if names is None else names):
        if name not in params:
            raise KeyError(f"weight_regularisation: the model has no parameter {name!r}")
        p = params[name]
        term = (p.float() - initial_state[name].to(p.device).float()).pow(2).sum()
        total = term if total is None else total + term
    if total is None:
        return torch.zeros((), device=next(model.parameters()).device)
    return total


def _link_index(batch: Sequence[dict], counts: torch.Tensor, offsets):
    """Flat word slots of the usable links and of the unlinked words.

    ``counts`` is ``(N,)`` from the pooling, ``offsets`` the ``(2B + 1,)`` word offsets of
    the batch's sentences: sentences ``0..B-1`` are sources, ``B..2B-1`` targets. Links to
    words that no piece reached are dropped.
    """
    B = len(batch)
    ok = (counts > 0).cpu()
    src_idx, tgt_idx = [], []
    linked = torch.zeros_like(ok)
    for b, rec in enumerate(batch):
        for i, j in rec["links"]:
            a, t = int(offsets[b]) + i, int(offsets[B + b]) + j
            if ok[a] and ok[t]:
                src_idx.append(a)
                tgt_idx.append(t)
                linked[a] = True
                linked[t] = True
    extra = ok & ~linked
    split = int(offsets[B])
    extra_src = extra[:split].nonzero(as_tuple=True)[0]
    extra_tgt = extra[split:].nonzero(as_tuple=True)[0] + split
    return (torch.tensor(src_idx, dtype=torch.long), torch.tensor(tgt_idx, dtype=torch.long),
            extra_src, extra_tgt)


def realignment_loss(
    model: torch.nn.Module,
    tokenizer,
    batch: Sequence[dict],
    config: Any,
    *,
    initial_state: dict[str, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The realignment loss of one batch of word-pair records, summed over the configured layers.

    Args:
        model: a HF model of a supported family (a base model, a task model — its head is
            skipped via :func:`core.arch.base_model` — or an accelerate/DDP wrapper, which
            is called as is so that gradients synchronise).
        tokenizer: its fast tokenizer.
        batch: records as read by :func:`realign.pairs.read_pairs`
            (``{"id", "src", "tgt", "links"}`` and the optional ``src_text``/``tgt_text``:
            each side is tokenised as its running text, :func:`core.wordpairs.side`).
        config: anything with the attributes of :class:`realign.config.RealignConfig`
            used here: ``layers``, ``loss``, ``temperature``, ``negatives``, ``candidates``,
            ``pooling``, ``max_length``, ``reg_weight``.
        initial_state: parameter name -> initial value; with ``config.reg_weight > 0`` adds
            ``reg_weight * weight_regularisation``.

    Source and target sentences go through ONE forward pass (``2B`` sentences; a sentence
    longer than ``config.max_length`` is split into windows at word boundaries,
    :func:`core.encoding.encode_windows`). Layers are those of :mod:`core.layers` (raw
    block outputs); words are pooled from the pieces that carry their characters with
    ``config.pooling`` by :func:`core.pooling.pool_subwords`.
    Returns ``(loss, parts)``; ``parts`` holds floats: ``"<loss>@<layer>"`` per layer,
    ``"reg"`` when used, ``"links"`` (aligned pairs used), ``"windows"`` (input sequences,
    >= 2B), ``"windowed"`` (sentences split), ``"truncated_words"`` and ``"total"``.
    """
    B = len(batch)
    if B == 0:
        raise ValueError("realignment_loss: empty batch")
    # an accelerate/DDP wrapper has no config: hooks go on the model inside, the wrapper runs
    # the whole forward pass (so that gradients synchronise); a plain model runs without its
    # task head and stops after the highest realigned layer
    wrapped = not hasattr(model, "config")
    inner = getattr(model, "module", model) if wrapped else model
    max_length = min(config.max_length, model_max_length(inner, tokenizer))  # never past the positions
    # each side as its running text (src_text/tgt_text of the record: Chinese words glued,
    # punctuation attached), not its words joined by spaces
    enc = encode_words(tokenizer, [side(r, "src") for r in batch] + [side(r, "tgt") for r in batch],
                       max_length=max_length)
    device = next(model.parameters()).device
    enc = enc.to(device)
    layers = parse_layers(config.layers, num_layers(inner))
    states = layer_states(inner, layers, stop_early=not wrapped, call=model if wrapped else base_model(model),
                          **enc.inputs)
    stacked = torch.stack([states[i] for i in layers])  # (nL, R, T, D), R >= 2B windows
    parts: dict[str, float] = {}
    total = None
    if config.loss == "sentence_infonce":
        sent = enc.sentence_mean(stacked)  # (nL, 2B, D): mean over non-pad tokens, all windows
        terms = [sentence_infonce(sent[k, :B], sent[k, B:], config.temperature) for k in range(len(layers))]
        n_links = B
    else:
        words, counts = enc.pool(stacked, config.pooling)  # (nL, N, D): words of all 2B sentences
        flat = words
        si, ti, es, et = (t.to(device) for t in _link_index(batch, counts, enc.word_offsets))
        n_links = len(si)
        terms = []
        # rows gathered by advanced indexing, not index_select: the same values and
        # gradients, but on CPU (torch 2.13) index_select's backward (scatter_add_ into all N
        # words) took ~80 ms per call, 4 calls a step, +0.3 s of a 15 s e5-small step
        # (bench/bench_study_cost.py); indexing's backward (index_put_) is ~4x cheaper
        for k in range(len(layers)):
            s, t = flat[k][si], flat[k][ti]
            if config.loss == "l2":
                terms.append(l2_alignment(s, t))
            elif config.loss == "word_infonce":
                extra = config.candidates == "all"
                terms.append(word_infonce(
                    s, t, config.temperature, config.negatives,
                    flat[k][es] if extra else None,
                    flat[k][et] if extra else None,
                ))
            else:
                raise ValueError(f"unknown loss {config.loss!r}: expected word_infonce, sentence_infonce or l2")
    for lay, term in zip(layers, terms):
        parts[f"{config.loss}@{lay}"] = float(term.detach())
        total = term if total is None else total + term
    if getattr(config, "reg_weight", 0.0) > 0 and initial_state is not None:
        reg = weight_regularisation(model, initial_state)
        parts["reg"] = float(reg.detach())
        total = total + config.reg_weight * reg
    parts["links"] = float(n_links)
    parts["windows"] = float(enc.stats.windows)
    parts["windowed"] = float(enc.stats.windowed)
    parts["truncated_words"] = float(enc.stats.truncated_words)
    parts["total"] = float(total.detach())
    return total, parts
