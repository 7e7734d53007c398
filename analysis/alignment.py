"""Cross-lingual alignment per layer: word retrieval and sentence retrieval.

Word retrieval (the reference's per-layer alignment measure): for every linked word pair
``(s, t)`` of a pairs JSONL (``{"id", "src", "tgt", "links", "src_text", "tgt_text"}``, as
written by ``alignfreeze pairs``), the query ``s`` must retrieve ``t`` by cosine nearest
neighbour. Both sides are read by the model as their running text (``src_text``; a record
without it: words separated by single spaces), as sentence pairs are
(:func:`core.parallel.read_parallel`).

- ``weak``: the candidates are the linked words of the OTHER language only;
- ``strong``: the candidates are the linked words of BOTH languages, the query excluded
  (a same-language neighbour counts as a miss);
- ``csls``: cross-domain similarity local scaling (Conneau et al. 2018, k = 10):
  ``2 cos(x, y) - r(x) - r(y)`` with ``r`` the mean cosine to the k nearest candidates /
  queries, penalising hubs;
- ``centred``: each language's mean vector is subtracted first.

Sentence retrieval: sentences are the mean of their word vectors; accuracy@1 of finding the
translation among all target sentences (both directions).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # annotations only: importing core.encoding imports torch, and align-eval reads its data first
    from core.encoding import SentenceLike


@dataclass(frozen=True)
class LinkedPair:
    """One sentence pair with its 0-based word links; each side a
    :class:`core.encoding.Surface` (words + running text) or a list of words."""

    id: str
    src: SentenceLike
    tgt: SentenceLike
    links: list[tuple[int, int]]


def read_pairs_jsonl(path: str | Path) -> list[LinkedPair]:
    """Read a word-pairs file (the format of :mod:`core.wordpairs`; errors name file and line)."""
    from core.wordpairs import read_pairs, side

    return [LinkedPair(r["id"], side(r, "src"), side(r, "tgt"), [(i, j) for i, j in r["links"]])
            for r in read_pairs(path)]


def _normalise(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    n = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.where(n > 0, n, 1.0)


def _topk_mean(S: np.ndarray, k: int, axis: int) -> np.ndarray:
    k = max(1, min(k, S.shape[axis]))
    part = -np.partition(-S, k - 1, axis=axis)
    part = part[:k] if axis == 0 else part[:, :k]
    return part.mean(axis=axis)


def retrieval_accuracy(Q: np.ndarray, C: np.ndarray, target: np.ndarray, *, csls_k: int = 0,
                       exclude: np.ndarray | None = None) -> float:
    """Accuracy@1 of queries ``Q`` retrieving candidate ``target[i]`` among ``C`` (cosine).

    ``csls_k > 0`` scores with CSLS; ``exclude[i]`` is a candidate index query ``i`` may not
    retrieve (itself, in the strong setting), or -1.
    """
    if len(Q) == 0:
        raise ValueError("no queries")
    S = _normalise(Q) @ _normalise(C).T
    if exclude is not None:
        rows = np.nonzero(exclude >= 0)[0]
        S[rows, exclude[rows]] = -np.inf
    if csls_k > 0:
        finite = np.where(np.isfinite(S), S, -1.0)
        rq = _topk_mean(finite, csls_k, axis=1)
        rc = _topk_mean(finite, csls_k, axis=0)
        S = 2 * S - rq[:, None] - rc[None, :]
    return float((S.argmax(1) == np.asarray(target)).mean())


def word_retrieval(Xs: np.ndarray, Xt: np.ndarray, *, csls_k: int = 0, centre: bool = False) -> list[dict]:
    """Weak and strong word retrieval for aligned rows ``Xs[i] <-> Xt[i]``, both directions."""
    Xs = np.asarray(Xs, dtype=np.float64)
    Xt = np.asarray(Xt, dtype=np.float64)
    if Xs.shape != Xt.shape:
        raise ValueError(f"aligned word matrices differ in shape: {Xs.shape} != {Xt.shape}")
    if centre:
        Xs, Xt = Xs - Xs.mean(0), Xt - Xt.mean(0)
    n = len(Xs)
    idx = np.arange(n)
    rows = []
    for direction, Q, C in (("src->tgt", Xs, Xt), ("tgt->src", Xt, Xs)):
        rows.append({"candidates": "weak", "direction": direction,
                     "value": retrieval_accuracy(Q, C, idx, csls_k=csls_k)})
        both = np.concatenate([C, Q])  # other language first, then the query's language
        rows.append({"candidates": "strong", "direction": direction,
                     "value": retrieval_accuracy(Q, both, idx, csls_k=csls_k, exclude=idx + n)})
    return rows


def sentence_retrieval(Ss: np.ndarray, St: np.ndarray) -> list[dict]:
    """Accuracy@1 of translation retrieval between aligned sentence vectors, both directions."""
    idx = np.arange(len(Ss))
    return [{"direction": "src->tgt", "value": retrieval_accuracy(Ss, St, idx)},
            {"direction": "tgt->src", "value": retrieval_accuracy(St, Ss, idx)}]


def sentence_means(feats: np.ndarray, offsets: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Mean of the valid word vectors of each sentence (zeros for an empty sentence)."""
    S = len(offsets) - 1
    sent_of = np.repeat(np.arange(S), np.diff(offsets))
    out = np.zeros((S, feats.shape[1]))
    np.add.at(out, sent_of[valid], feats[valid].astype(np.float64))
    cnt = np.bincount(sent_of[valid], minlength=S)
    return out / np.maximum(cnt, 1)[:, None]


def linked_word_vectors(extractor, linked_pairs: list[LinkedPair], max_words: int,
                        ) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
    """The vectors of the first ``max_words`` links whose two words both have a vector, per
    layer: ``(source rows, target rows)``, row ``i`` of both = link ``i``.

    Only the sentence pairs those links need are encoded: the shortest prefix of pairs with
    ``max_words`` links, then (when some of its words have no vector) the next pairs, a prefix
    of the same size at a time, until ``max_words`` usable links or the pairs run out. The
    links are exactly those that encoding every pair and keeping the first ``max_words``
    usable ones would give.

    Raises ``ValueError`` when no link has a vector on both sides, or ``max_words`` < 1.
    """
    if max_words < 1:
        raise ValueError(f"max_words={max_words}: expected at least 1 linked word pair")
    parts_s: dict[int, list[np.ndarray]] = {lay: [] for lay in extractor.layers}
    parts_t: dict[int, list[np.ndarray]] = {lay: [] for lay in extractor.layers}
    found, start = 0, 0
    while found < max_words and start < len(linked_pairs):
        # the shortest run of pairs from `start` holding the links still needed
        stop, links = start, 0
        while stop < len(linked_pairs) and links < max_words - found:
            links += len(linked_pairs[stop].links)
            stop += 1
        chunk = linked_pairs[start:stop]
        fs = extractor.extract([p.src for p in chunk])
        ft = extractor.extract([p.tgt for p in chunk])
        si, ti = [], []
        for k, p in enumerate(chunk):
            for i, j in p.links:
                a, b = fs.offsets[k] + i, ft.offsets[k] + j
                if fs.valid[a] and ft.valid[b] and found + len(si) < max_words:
                    si.append(a)
                    ti.append(b)
        for lay in extractor.layers:
            parts_s[lay].append(np.asarray(fs.features[lay])[si])
            parts_t[lay].append(np.asarray(ft.features[lay])[ti])
        found += len(si)
        start = stop
    if not found:
        raise ValueError("no linked word has a representation on both sides")
    return ({lay: np.concatenate(v) for lay, v in parts_s.items()},
            {lay: np.concatenate(v) for lay, v in parts_t.items()})


def align_eval(extractor, *, sentence_pairs=None, linked_pairs: list[LinkedPair] | None = None,
               csls_k: int = 10, max_words: int = 5000) -> list[dict]:
    """Per-layer word retrieval (from ``linked_pairs``: the first ``max_words`` usable links,
    only their sentences encoded, :func:`linked_word_vectors`) and sentence retrieval (from
    ``sentence_pairs``: objects with ``src``/``tgt`` sides, e.g. the
    :class:`core.parallel.ParallelPair` objects of :func:`core.parallel.read_parallel`,
    whose running text the model reads). Tidy rows."""
    rows: list[dict] = []
    if sentence_pairs:
        fs = extractor.extract([p.src for p in sentence_pairs])
        ft = extractor.extract([p.tgt for p in sentence_pairs])
        for lay in extractor.layers:
            ss = sentence_means(fs.features[lay], fs.offsets, fs.valid)
            st = sentence_means(ft.features[lay], ft.offsets, ft.valid)
            for r in sentence_retrieval(ss, st):
                rows.append({"layer": lay, "task": "sentence", "candidates": "all", "score": "cosine",
                             "centred": False, **r, "n": len(ss)})
    if linked_pairs:
        Xs, Xt = linked_word_vectors(extractor, linked_pairs, max_words)
        n = len(next(iter(Xs.values())))
        for lay in extractor.layers:
            for score, k in (("cosine", 0), ("csls", csls_k)):
                if score == "csls" and csls_k <= 0:
                    continue
                for centred in (False, True):
                    for r in word_retrieval(Xs[lay], Xt[lay], csls_k=k, centre=centred):
                        rows.append({"layer": lay, "task": "word", "score": score, "centred": centred,
                                     **r, "n": n})
    if not rows:
        raise ValueError("nothing to evaluate: give parallel sentences (--src/--tgt) and/or --pairs")
    for r in rows:
        r["metric"] = "accuracy@1"
    return rows
