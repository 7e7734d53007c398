"""Representation drift of checkpoints against their base model, layer by layer.

For every layer and language, on the SAME words: linear CKA (and debiased CKA) between the
base and the checkpoint, the mean cosine distance ``1 - cos(h, h')`` and the mean relative
L2 change ``||h' - h|| / ||h||`` of each word's vector, with bootstrap confidence intervals
over sentences.

Streaming, bounded memory: chunks of sentences come from
:meth:`core.features.WordFeatureExtractor.iter_chunks` for the base and every checkpoint in
lockstep. CKA is computed from accumulated feature-space statistics (:class:`CKAStats`: d x d
matrices per layer, whatever the number of words). Cosine and L2 are reduced per sentence
(sums and word counts), so the bootstrap over sentences needs three numbers per sentence.

CKA confidence intervals: per-sentence d x d statistics would need sentences x d^2 memory,
so the CKA bootstrap runs on a seeded subsample of whole sentences (at most
``cka_ci_words`` words, default 1,000) kept in memory; each replicate resamples those
sentences and evaluates the weighted linear CKA through the subsample's Gram matrices
(all replicates in a few matrix products). The point estimate is always the full-data CKA;
the interval reflects sentence-sampling variability at the subsample's size, so it is
conservative (wider) for large corpora.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .cka import CKAStats

METRICS = ("cka", "cka_debiased", "cos_dist", "rel_l2")


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


# ----------------------------------------------------------------------------- bootstrap
def bootstrap_ratio(num: np.ndarray, den: np.ndarray, n_boot: int, seed: int = 0,
                    level: float = 0.95) -> tuple[float, float]:
    """Percentile CI of ``sum(num) / sum(den)`` resampling rows (sentences) with replacement."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    S = len(num)
    if S == 0 or n_boot <= 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    out = np.empty(n_boot)
    step = max(1, 2_000_000 // S)
    for a in range(0, n_boot, step):
        r = min(step, n_boot - a)
        idx = rng.integers(0, S, size=(r, S))
        d = den[idx].sum(1)
        out[a:a + r] = np.where(d > 0, num[idx].sum(1) / np.where(d > 0, d, 1), np.nan)
    out = out[np.isfinite(out)]
    if len(out) == 0:
        return float("nan"), float("nan")
    q = (1 - level) / 2
    return float(np.quantile(out, q)), float(np.quantile(out, 1 - q))


def weighted_linear_cka(X: np.ndarray, Y: np.ndarray, W: np.ndarray) -> np.ndarray:
    """Linear CKA with row weights, for many weight vectors at once.

    ``W`` is ``(n, R)`` (one column per replicate, e.g. bootstrap multiplicities). Uses
    ``X^T diag(w) Y - (X^T w)(Y^T w)^T / sum(w)`` and evaluates the Frobenius norms through
    the n x n Gram matrices, so R replicates cost a few ``n x n x R`` products.
    """
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    X = X - X.mean(0)
    Y = Y - Y.mean(0)
    W = np.asarray(W, dtype=np.float64)
    K, L = X @ X.T, Y @ Y.T
    nw = W.sum(0)
    KW, LW = K @ W, L @ W

    def hsic(A, AW, B, BW):
        raw = (W * ((A * B) @ W)).sum(0)
        mid = (W * AW * BW).sum(0)
        wa = (W * AW).sum(0)
        wb = (W * BW).sum(0)
        return raw - 2 * mid / nw + wa * wb / nw ** 2

    xy, xx, yy = hsic(K, KW, L, LW), hsic(K, KW, K, KW), hsic(L, LW, L, LW)
    den = np.sqrt(np.clip(xx, 0, None) * np.clip(yy, 0, None))
    return np.where(den > 0, xy / np.where(den > 0, den, 1), 0.0)


def bootstrap_cka(X: np.ndarray, Y: np.ndarray, groups: np.ndarray, n_boot: int, seed: int = 0,
                  level: float = 0.95, chunk: int = 250) -> tuple[float, float]:
    """Percentile CI of linear CKA resampling groups (sentences) of rows with replacement."""
    groups = np.asarray(groups)
    uniq, inv = np.unique(groups, return_inverse=True)
    G = len(uniq)
    if G < 2 or n_boot <= 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    vals = []
    for a in range(0, n_boot, chunk):
        r = min(chunk, n_boot - a)
        counts = np.stack([np.bincount(rng.integers(0, G, G), minlength=G) for _ in range(r)], 1)
        vals.append(weighted_linear_cka(X, Y, counts[inv]))
    v = np.concatenate(vals)
    q = (1 - level) / 2
    return float(np.quantile(v, q)), float(np.quantile(v, 1 - q))


# --------------------------------------------------------------------------- accumulator
@dataclass
class LayerDrift:
    """Streaming drift statistics of one (checkpoint, language, layer)."""

    cka: CKAStats = field(default_factory=lambda: CKAStats(precision="mixed"))
    cos_sum: list = field(default_factory=list)   # per sentence
    l2_sum: list = field(default_factory=list)    # per sentence
    count: list = field(default_factory=list)     # per sentence (valid words)
    sub_x: list = field(default_factory=list)     # CKA-CI subsample rows (base)
    sub_y: list = field(default_factory=list)
    sub_g: list = field(default_factory=list)     # sentence id of each subsample row
    zero_norm: int = 0

    def update(self, h: np.ndarray, hp: np.ndarray, offsets: np.ndarray, valid: np.ndarray,
               sub_mask: np.ndarray, sent_base: int) -> None:
        """Add one chunk: ``h``/``hp`` (N, D) base / checkpoint word vectors."""
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
        if ok.any():
            self.cka.update(h[ok], hp[ok])
        take = ok & sub_mask[sent_of]
        if take.any():
            self.sub_x.append(h[take].astype(np.float32))
            self.sub_y.append(hp[take].astype(np.float32))
            self.sub_g.append(sent_of[take] + sent_base)

    def rows(self, n_boot: int, seed: int) -> list[dict]:
        """One dict per metric: value, ci_low, ci_high, n_words, n_sentences."""
        cnt = np.concatenate(self.count) if self.count else np.zeros(0)
        n_words = int(cnt.sum())
        n_sent = int((cnt > 0).sum())
        base = {"n_words": n_words, "n_sentences": n_sent}
        if n_words == 0:
            raise ValueError("no word has a representation in both models (empty treebank?)")
        cos = np.concatenate(self.cos_sum)
        l2 = np.concatenate(self.l2_sum)
        out = []
        if self.sub_x and n_boot > 0:
            lo, hi = bootstrap_cka(np.concatenate(self.sub_x), np.concatenate(self.sub_y),
                                   np.concatenate(self.sub_g), n_boot, seed)
        else:
            lo = hi = float("nan")
        out.append({"metric": "cka", "value": self.cka.linear(), "ci_low": lo, "ci_high": hi, **base})
        deb = self.cka.debiased() if self.cka.n >= 4 else float("nan")
        out.append({"metric": "cka_debiased", "value": deb, "ci_low": float("nan"),
                    "ci_high": float("nan"), **base})
        for name, s in (("cos_dist", cos), ("rel_l2", l2)):
            lo, hi = bootstrap_ratio(s, cnt, n_boot, seed)
            out.append({"metric": name, "value": float(s.sum() / cnt.sum()), "ci_low": lo, "ci_high": hi, **base})
        return out


def _subsample_sentences(lengths: Sequence[int], max_words: int, seed: int) -> np.ndarray:
    """Boolean mask of a seeded random set of sentences with at most ``max_words`` words."""
    mask = np.zeros(len(lengths), dtype=bool)
    total = 0
    for s in np.random.default_rng(seed).permutation(len(lengths)):
        if total + lengths[s] > max_words:
            continue
        mask[s] = True
        total += lengths[s]
    return mask


def drift_rows(base_extractor, model_extractors: dict, sentences: Sequence, lang: str, *,
               n_boot: int = 1000, seed: int = 0, chunk_sentences: int = 512,
               cka_ci_words: int = 1000) -> list[dict]:
    """Tidy drift rows of every checkpoint against the base on ``sentences`` of one language.

    ``model_extractors`` maps a model label to a :class:`WordFeatureExtractor` with the
    same layers and pooling as ``base_extractor``.
    """
    layers = base_extractor.layers
    for name, ex in model_extractors.items():
        if ex.layers != layers:
            raise ValueError(f"{name}: layers {ex.layers} differ from the base's {layers} "
                             "(models with different depths cannot be compared layer by layer)")
    sentences = list(sentences)
    if not sentences:
        raise ValueError(f"{lang}: no sentences")
    lengths = [len(s) for s in sentences]
    sub = _subsample_sentences(lengths, cka_ci_words, seed)
    acc = {(m, lay): LayerDrift() for m in model_extractors for lay in layers}
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
                                        sub[start:start + S], start)
        start += S
    rows = []
    for (name, lay), a in acc.items():
        if a.zero_norm:
            print(f"warning: {name} {lang} layer {lay}: {a.zero_norm} word(s) with a zero vector "
                  "left out of the drift metrics", file=sys.stderr)
        for r in a.rows(n_boot, seed):
            rows.append({"model": name, "lang": lang, "layer": lay, **r})
    return rows


def model_label(name: str | Path) -> str:
    """Short label of a model path (its folder name)."""
    p = Path(str(name).rstrip("/"))
    return p.name or str(name)
