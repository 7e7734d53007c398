"""Representation drift of checkpoints against their base model, layer by layer.

For every layer and language, on the SAME words: linear CKA (and debiased CKA) between the
base and the checkpoint, the mean cosine distance ``1 - cos(h, h')`` and the mean relative
L2 change ``||h' - h|| / ||h||`` of each word's vector, each with a confidence interval
over sentences (:mod:`analysis.intervals`).

Streaming, bounded memory: chunks of sentences come from
:meth:`core.features.WordFeatureExtractor.iter_chunks` for the base and every checkpoint in
lockstep. CKA is computed from accumulated feature-space statistics (d x d matrices per
layer, whatever the number of words). Cosine and L2 are reduced per sentence (sums and
word counts).

Intervals: the sentences are put in a seeded random order and split into ``ci_groups``
groups contiguous in that order, so the stream fills one group at a time. The CKA interval
is the delete-a-group jackknife of the group U-statistic CKA (unbiased HSIC over word
4-tuples from 4 distinct groups: :func:`analysis.intervals.group_u_cka`), computed from
per-group d x d statistics of the FULL data (:class:`analysis.intervals.GroupedCKA`:
``ci_groups`` float32 copies of the statistics per layer and checkpoint; at least 5 groups)
and widened to contain the row's own value (plug-in or debiased CKA); cosine and L2
intervals are a leave-one-sentence-out jackknife of the per-sentence sums. Every interval
contains its point estimate and covers the population value at the nominal rate in
simulation (docs/analysis.md, bench/RESULTS.md).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .intervals import GroupedCKA, ratio_interval, sentence_groups

METRICS = ("cka", "cka_debiased", "cos_dist", "rel_l2")
MIN_GROUPS = 5  # the group U-statistic CKA needs 4 groups in each leave-one-out estimate


# ---------------------------------------------------------------------------- base check
def check_base(base_model, checkpoint: str | Path, *, force: bool = False) -> str:
    """Refuse a checkpoint whose manifest names another base model (by weight hash).

    Returns a note for the log: ``"manifest matches"``, ``"no manifest (plain HF folder)"``,
    or ``"forced"``. Raises ValueError on a mismatch unless ``force``.
    """
    from core.manifest import MANIFEST, base_weight_hash, read_manifest

    path = Path(checkpoint)
    if not path.is_dir():
        return "not a local folder: no manifest to check"
    man = read_manifest(path)
    if man is None:
        return "no manifest (plain HF folder): base not checked"
    want = (man.get("base_model") or {}).get("weight_hash")
    if not want:
        return f"{path / MANIFEST} has no base_model.weight_hash: base not checked"
    have = base_weight_hash(base_model)
    if want == have:
        return "manifest base hash matches"
    msg = (f"{path / MANIFEST}: base_model.weight_hash {want[:12]}... (base "
           f"{(man.get('base_model') or {}).get('name')!r}) differs from the given base model's "
           f"weights {have[:12]}...: this checkpoint was not trained from that base")
    if not force:
        raise ValueError(msg + " (use --force to compare anyway)")
    print(f"warning: {msg}; compared anyway (--force)", file=sys.stderr)
    return "base mismatch (forced)"


# --------------------------------------------------------------------------- accumulator
@dataclass
class LayerDrift:
    """Streaming drift statistics of one (checkpoint, language, layer)."""

    cka: GroupedCKA = field(default_factory=lambda: GroupedCKA(precision="mixed"))
    cos_sum: list = field(default_factory=list)   # per sentence
    l2_sum: list = field(default_factory=list)    # per sentence
    count: list = field(default_factory=list)     # per sentence (valid words)
    zero_norm: int = 0

    def update(self, h: np.ndarray, hp: np.ndarray, offsets: np.ndarray, valid: np.ndarray,
               groups: np.ndarray) -> None:
        """Add one chunk: ``h``/``hp`` (N, D) base / checkpoint word vectors, ``offsets``
        (S + 1,) word offsets of the chunk's sentences, ``valid`` (N,) usable words,
        ``groups`` (S,) the interval group of each sentence (non-decreasing along the stream)."""
        # no float64 copies of the chunk: float64 accumulation inside einsum
        n_h = np.sqrt(np.einsum("ij,ij->i", h, h, dtype=np.float64))
        n_p = np.sqrt(np.einsum("ij,ij->i", hp, hp, dtype=np.float64))
        ok = valid & (n_h > 0) & (n_p > 0)
        self.zero_norm += int((valid & ~((n_h > 0) & (n_p > 0))).sum())
        dot = np.einsum("ij,ij->i", h, hp, dtype=np.float64)
        cos = 1.0 - dot / np.where(ok, n_h * n_p, 1.0)
        diff = hp - h  # in the features' own precision: exact for nearby values
        rel = np.sqrt(np.einsum("ij,ij->i", diff, diff, dtype=np.float64)) / np.where(ok, n_h, 1.0)
        del diff
        cos = np.where(ok, np.clip(cos, 0.0, 2.0), 0.0)
        rel = np.where(ok, rel, 0.0)
        sent_of = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
        S = len(offsets) - 1
        self.cos_sum.append(np.bincount(sent_of, weights=cos, minlength=S))
        self.l2_sum.append(np.bincount(sent_of, weights=rel, minlength=S))
        self.count.append(np.bincount(sent_of, weights=ok.astype(np.float64), minlength=S))
        row_group = np.asarray(groups)[sent_of]
        for g in np.unique(row_group[ok]):
            take = ok & (row_group == g)
            self.cka.update(h[take], hp[take], int(g))

    def rows(self, level: float = 0.95, intervals: bool = True) -> list[dict]:
        """One dict per metric: value, ci_low, ci_high, n_words, n_sentences."""
        cnt = np.concatenate(self.count) if self.count else np.zeros(0)
        n_words = int(cnt.sum())
        n_sent = int((cnt > 0).sum())
        base = {"n_words": n_words, "n_sentences": n_sent}
        if n_words == 0:
            raise ValueError("no word has a representation in both models (empty treebank?)")
        found = self.cka.intervals(level)
        found["cos_dist"] = ratio_interval(np.concatenate(self.cos_sum), cnt, level, (0.0, 2.0))
        found["rel_l2"] = ratio_interval(np.concatenate(self.l2_sum), cnt, level, (0.0, np.inf))
        nan = float("nan")
        return [{"metric": m, "value": found[m].value, "ci_low": found[m].low if intervals else nan,
                 "ci_high": found[m].high if intervals else nan, **base} for m in METRICS]


def drift_rows(base_extractor, model_extractors: dict, sentences: Sequence, lang: str, *,
               ci_groups: int = 10, level: float = 0.95, seed: int = 0,
               chunk_sentences: int = 512) -> list[dict]:
    """Tidy drift rows of every checkpoint against the base on ``sentences`` of one language.

    ``model_extractors`` maps a model label to a :class:`WordFeatureExtractor` with the
    same layers and pooling as ``base_extractor``. ``ci_groups``: random groups of sentences
    of the CKA jackknife (0: no intervals at all; else at least 5; memory grows with it, see
    the module doc; fewer than 5 groups with usable words, e.g. a 4-sentence treebank, give
    CKA rows without an interval, with a warning on stderr); ``level``: interval coverage; ``seed``: the random order that forms the groups.
    """
    layers = base_extractor.layers
    for name, ex in model_extractors.items():
        if ex.layers != layers:
            raise ValueError(f"{name}: layers {ex.layers} differ from the base's {layers} "
                             "(models with different depths cannot be compared layer by layer)")
    if ci_groups < 0 or 0 < ci_groups < MIN_GROUPS:
        raise ValueError(f"ci_groups must be 0 (no intervals) or at least {MIN_GROUPS} (the CKA interval's group "
                         f"U-statistic needs 4 groups left when one is deleted), got {ci_groups}")
    if not 0 < level < 1:
        raise ValueError(f"the interval level must be in (0, 1), e.g. 0.95; got {level}")
    sentences = list(sentences)
    if not sentences:
        raise ValueError(f"{lang}: no sentences")
    order, group = sentence_groups(len(sentences), max(ci_groups, 1), seed)
    sentences = [sentences[i] for i in order]  # every statistic is order-free; groups are contiguous
    acc = {(m, lay): LayerDrift(GroupedCKA(precision="mixed", keep_groups=ci_groups > 1))
           for m in model_extractors for lay in layers}
    streams = [base_extractor.iter_chunks(sentences, chunk_sentences)]
    streams += [ex.iter_chunks(sentences, chunk_sentences) for ex in model_extractors.values()]
    start = 0
    for chunks in zip(*streams, strict=True):
        wb = chunks[0]
        S = wb.n_sentences
        for name, wm in zip(model_extractors, chunks[1:], strict=True):
            if wm.n_words != wb.n_words:
                raise RuntimeError(f"{name}: {wm.n_words} words != base {wb.n_words} in one chunk")
            valid = wb.valid & wm.valid
            for lay in layers:
                acc[(name, lay)].update(wb.features[lay], wm.features[lay], wb.offsets, valid,
                                        group[start:start + S])
        start += S
    rows = []
    for (name, lay), a in acc.items():
        if ci_groups and a.cka.n_groups < MIN_GROUPS and lay == layers[0]:
            print(f"warning: {name} {lang}: {a.cka.n_groups} sentence group(s) with usable words "
                  f"({len(sentences)} sentences): CKA rows have no interval (needs {MIN_GROUPS})", file=sys.stderr)
        if a.zero_norm:
            print(f"warning: {name} {lang} layer {lay}: {a.zero_norm} word(s) with a zero vector "
                  "left out of the drift metrics", file=sys.stderr)
        for r in a.rows(level, intervals=ci_groups > 0):
            rows.append({"model": name, "lang": lang, "layer": lay, **r})
    return rows


def model_label(name: str | Path) -> str:
    """Short label of a model path (its folder name)."""
    p = Path(str(name).rstrip("/"))
    return p.name or str(name)
