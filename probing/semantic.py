"""Sentence-level (semantic) probes at every layer.

- **Translation matching** on parallel data (PUD: two CoNLL-U files joined on ``sent_id``,
  :func:`core.parallel.read_parallel`): each side is read by the model as its running text
  (``SpaceAfter=No`` glues Chinese and Thai words, :mod:`core.encoding`); each sentence is
  the mean of its word vectors (words pooled from sub-words by the one pooling function;
  padding and special tokens never enter), and a sentence retrieves its
  translation among *all* candidate sentences of the other language by cosine similarity,
  in both directions. Optionally each language's mean vector is subtracted first
  (``center=True``), which removes the language-identity component.
- **Translation-pair probe** (optional): a linear probe on ``[|u - v|, u * v]`` that tells
  true translation pairs from mismatched ones (a seeded derangement), trained on half the
  sentences and tested on the other half.
- **XNLI**: premise/hypothesis vectors -> ``[u, v, |u - v|, u * v]`` -> 3-way linear probe
  trained on one language and evaluated zero-shot on others. Needs the HuggingFace hub;
  :class:`HubUnavailable` is raised when it is not reachable, so callers can skip.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch

from core.encoding import text_surface
from core.features import WordFeatureExtractor, WordFeatures

from .linear import MultiLayerLinearProbe

XNLI_LANGS = ("ar", "bg", "de", "el", "en", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi", "zh")
XNLI_LABELS = ("entailment", "neutral", "contradiction")


class HubUnavailable(RuntimeError):
    """The HuggingFace hub cannot be reached (offline mode or no network)."""


def sentence_vectors(wf: WordFeatures, layers: Sequence[int] | None = None) -> np.ndarray:
    """Mean of the valid word vectors of each sentence: ``(layers, S, D)`` float32.

    A sentence with no valid word gets a zero vector (it can never be retrieved correctly).
    """
    layers = tuple(wf.layers if layers is None else layers)
    S = wf.n_sentences
    sent_of_word = np.repeat(np.arange(S), np.diff(wf.offsets))
    counts = np.bincount(sent_of_word[wf.valid], minlength=S).astype(np.float32)
    out = []
    for layer in layers:
        x = torch.as_tensor(np.asarray(wf.features[layer], dtype=np.float32)[wf.valid])
        acc = torch.zeros((S, x.shape[1]), dtype=torch.float32)
        acc.index_add_(0, torch.as_tensor(sent_of_word[wf.valid]), x)
        out.append((acc / torch.as_tensor(counts).clamp(min=1).unsqueeze(1)).numpy())
    return np.stack(out)


def _normalise(v: torch.Tensor, center: bool) -> torch.Tensor:
    if center:
        v = v - v.mean(1, keepdim=True)
    return torch.nn.functional.normalize(v, dim=-1)


def retrieval_accuracy(src: np.ndarray, tgt: np.ndarray, *, center: bool = False,
                       chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Translation retrieval at every layer.

    Args:
        src, tgt: ``(layers, S, D)`` sentence vectors; row ``i`` of ``src`` translates row ``i``
            of ``tgt``.
        center: subtract each side's mean vector (per layer) before the cosine.
        chunk: query rows per similarity block (bounds memory to ``layers x chunk x S``).

    Returns:
        ``(src->tgt, tgt->src)`` accuracies, each ``(layers,)``: the share of sentences whose
        most similar candidate (cosine) among all ``S`` is their translation. Ties count
        as wrong unless the translation is the first maximum.
    """
    if src.shape != tgt.shape or src.ndim != 3:
        raise ValueError(f"src {src.shape} and tgt {tgt.shape} must both be (layers, S, D)")
    if src.shape[1] == 0:
        raise ValueError("no sentence pairs to match")
    a = _normalise(torch.as_tensor(src, dtype=torch.float32), center)
    b = _normalise(torch.as_tensor(tgt, dtype=torch.float32), center)
    S = a.shape[1]

    def one_way(q: torch.Tensor, k: torch.Tensor) -> np.ndarray:
        hits = torch.zeros(q.shape[0])
        for s in range(0, S, chunk):
            sim = torch.bmm(q[:, s : s + chunk], k.transpose(1, 2))  # (L, c, S)
            hits += (sim.argmax(-1) == torch.arange(s, min(s + chunk, S))).sum(1)
        return (hits / S).numpy()

    return one_way(a, b), one_way(b, a)


def pair_features(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``[|u - v|, u * v]`` on the last axis (symmetric in ``u`` and ``v``)."""
    return np.concatenate([np.abs(u - v), u * v], axis=-1)


def derangement(n: int, rng: np.random.Generator) -> np.ndarray:
    """A random permutation with no fixed point (``n >= 2``)."""
    if n < 2:
        raise ValueError("a derangement needs at least 2 items")
    while True:  # rejection sampling: about 1/e of permutations are derangements
        p = rng.permutation(n)
        if not (p == np.arange(n)).any():
            return p


def translation_pair_probe(src: np.ndarray, tgt: np.ndarray, *, seed: int = 0, test_fraction: float = 0.5,
                           probe: MultiLayerLinearProbe | None = None) -> np.ndarray:
    """Accuracy ``(layers,)`` of a linear probe telling translation pairs from mismatched
    pairs, on held-out sentences (chance = 0.5).

    Sentences are split (seeded) into train/test; within each part every sentence gives
    one true pair and one mismatched pair (a derangement of the part's targets).
    """
    L, S, _ = src.shape
    if S < 8:
        raise ValueError(f"the pair probe needs at least 8 sentence pairs, got {S}")
    rng = np.random.default_rng(seed)
    order = rng.permutation(S)
    n_test = max(2, int(round(S * test_fraction)))
    parts = {"test": order[:n_test], "train": order[n_test:]}
    data = {}
    for name, idx in parts.items():
        wrong = idx[derangement(len(idx), rng)]
        X = np.concatenate([pair_features(src[:, idx], tgt[:, idx]), pair_features(src[:, idx], tgt[:, wrong])], 1)
        y = np.r_[np.ones(len(idx), dtype=int), np.zeros(len(idx), dtype=int)]
        data[name] = (X, y)
    p = probe if probe is not None else MultiLayerLinearProbe(random_state=seed)
    p.fit(*data["train"])
    return p.score(*data["test"])


# ----------------------------------------------------------------------------- XNLI

def hub_offline() -> bool:
    """True when HF_HUB_OFFLINE or HF_DATASETS_OFFLINE switches the hub off."""
    off = ("0", "", "false", "False")
    return os.environ.get("HF_HUB_OFFLINE", "0") not in off or os.environ.get("HF_DATASETS_OFFLINE", "0") not in off


def load_xnli(lang: str, split: str = "test", limit: int | None = None) -> list[dict]:
    """XNLI rows ``{"premise", "hypothesis", "label"}`` of ``lang`` from the HF hub.

    Raises :class:`HubUnavailable` when offline or unreachable (never a crash deep inside
    ``datasets``), ``ValueError`` for a language XNLI does not have.
    """
    if lang not in XNLI_LANGS:
        raise ValueError(f"XNLI has no language {lang!r}: expected one of {', '.join(XNLI_LANGS)}")
    if hub_offline():
        raise HubUnavailable("the HuggingFace hub is switched off (HF_HUB_OFFLINE/HF_DATASETS_OFFLINE=1)")
    try:
        from datasets import load_dataset

        ds = load_dataset("xnli", lang, split=split)
    except (ConnectionError, OSError, TimeoutError) as e:
        raise HubUnavailable(f"the HuggingFace hub is unreachable ({type(e).__name__}: {e})") from e
    rows = []
    for i, r in enumerate(ds):
        if limit is not None and i >= limit:
            break
        rows.append({"premise": r["premise"], "hypothesis": r["hypothesis"], "label": int(r["label"])})
    return rows


def nli_features(extractor: WordFeatureExtractor, rows: Sequence[dict]) -> tuple[np.ndarray, np.ndarray]:
    """``(layers, N, 4D)`` features ``[u, v, |u - v|, u * v]`` of premise ``u`` and hypothesis
    ``v`` (mean-pooled word vectors) and ``(N,)`` labels. A text is read as written
    (:func:`core.encoding.text_surface`: words = its whitespace-separated parts, so a
    Chinese or Thai sentence without spaces is one word; an empty text is ``.``)."""
    if not rows:
        raise ValueError("no NLI rows")
    prem = [text_surface(r["premise"].strip() or ".") for r in rows]
    hyp = [text_surface(r["hypothesis"].strip() or ".") for r in rows]
    u = sentence_vectors(extractor.extract(prem))
    v = sentence_vectors(extractor.extract(hyp))
    X = np.concatenate([u, v, np.abs(u - v), u * v], axis=-1)
    return X, np.asarray([r["label"] for r in rows])


def xnli_probe(extractor: WordFeatureExtractor, train_rows: Sequence[dict],
               eval_rows: dict[str, Sequence[dict]], *, seed: int = 0,
               probe: MultiLayerLinearProbe | None = None) -> dict[str, np.ndarray]:
    """Train a 3-way probe per layer on ``train_rows``; accuracy ``(layers,)`` per language."""
    Xtr, ytr = nli_features(extractor, train_rows)
    p = probe if probe is not None else MultiLayerLinearProbe(random_state=seed)
    p.fit(Xtr, ytr)
    out = {}
    for lang, rows in eval_rows.items():
        X, y = nli_features(extractor, rows)
        out[lang] = p.score(X, y)
    return out
