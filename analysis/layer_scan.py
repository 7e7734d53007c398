"""Layer scan of a decoder: where are translations closest? (middle-layer alignment, step 0)

For every layer ``0..L`` (core.layers: 0 = input of block 1, i = raw output of block i,
before a decoder's final norm) each sentence of a parallel set is represented by the mean of
its token states over non-pad tokens (:func:`core.sentences.sentence_vectors`: running text
tokenised by :mod:`core.encoding`, a sentence longer than ``max_length`` split into windows
and counted; the very vector the alignment loss of ``realign.midalign`` pulls together).
Per layer:

- ``retrieval_acc`` with ``direction`` ``src->tgt`` and ``tgt->src``: accuracy@1 of finding
  a sentence's translation among all N candidates of the other language by cosine
  (:func:`analysis.alignment.sentence_retrieval`; chance = 1/N);
- ``cka``: linear CKA (feature space, :func:`analysis.cka.linear_cka`) between the N x D
  source and the N x D target sentence matrices (1 = same geometry up to rotation and
  scale);
- ``retrieval_mean``: the mean of the two directions (what the layer rule of
  ``--layer auto`` ranks by).

Rows are tidy: ``model, src, tgt, layer, metric, direction, value, n``.
The paper behind the method fixes layer 16 of 32 for every model; this scan measures it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core.encoding import SentenceLike

from .alignment import sentence_retrieval
from .cka import linear_cka

SCAN_METRICS = ("retrieval_acc", "retrieval_mean", "cka")


def scan_rows(src_vecs: dict[int, np.ndarray], tgt_vecs: dict[int, np.ndarray]) -> list[dict]:
    """Tidy scan rows from per-layer ``(N, D)`` sentence matrices (row i of both = pair i)."""
    if sorted(src_vecs) != sorted(tgt_vecs):
        raise ValueError(f"source layers {sorted(src_vecs)} and target layers {sorted(tgt_vecs)} differ")
    rows = []
    for lay in sorted(src_vecs):
        s, t = src_vecs[lay], tgt_vecs[lay]
        if s.shape != t.shape:
            raise ValueError(f"layer {lay}: source {s.shape} and target {t.shape} sentence matrices differ")
        n = len(s)
        if n < 2:
            raise ValueError(f"a layer scan needs at least 2 sentence pairs, got {n}")
        ret = sentence_retrieval(s, t)
        for r in ret:
            rows.append({"layer": lay, "metric": "retrieval_acc", "direction": r["direction"],
                         "value": r["value"], "n": n})
        rows.append({"layer": lay, "metric": "retrieval_mean", "direction": "both",
                     "value": float(np.mean([r["value"] for r in ret])), "n": n})
        rows.append({"layer": lay, "metric": "cka", "direction": "both", "value": linear_cka(s, t), "n": n})
    return rows


def layer_scan(model, tokenizer, src_texts: Sequence[str | SentenceLike], tgt_texts: Sequence[str | SentenceLike],
               *, layers="all", batch_size: int = 16, max_length: int = 256) -> tuple[list[dict], dict]:
    """Scan ``layers`` of ``model`` on parallel sentences (str running texts kept verbatim, or
    the :class:`core.encoding.Surface` sides of :func:`core.parallel.read_parallel`).

    Returns ``(rows, info)``: tidy rows (see module doc, without model/src/tgt, which the
    caller adds) and ``{"n_pairs", "encoding", "max_length"}`` (``encoding``: the
    :class:`core.encoding.EncodingStats` of both sides, a dict; ``max_length``: the window
    size used). Each side runs only the blocks up to the highest requested layer.
    """
    from core.sentences import sentence_vectors

    if len(src_texts) != len(tgt_texts):
        raise ValueError(f"{len(src_texts)} source but {len(tgt_texts)} target sentences")
    sv, stats = sentence_vectors(model, tokenizer, list(src_texts), layers, batch_size=batch_size,
                                 max_length=max_length)
    tv, st_t = sentence_vectors(model, tokenizer, list(tgt_texts), layers, batch_size=batch_size,
                                max_length=max_length)
    stats += st_t
    return scan_rows(sv, tv), {"n_pairs": len(src_texts), "encoding": stats.to_dict(), "max_length": stats.max_length}
