"""The pieces of the layer-effect study (:mod:`alignfreeze.layer_effect`): the reverted
variants, their word features (lower blocks replayed, not recomputed), per-unit hits of
each measure, and the two kinds of interval.

Every measure is an accuracy computed from per-unit hits, so that a one-checkpoint study
can still give an interval over evaluation sentences:

- ``upos-probe``: unit = sentence; hits = words the probe tags right (probe fitted on
  the training treebank's features of the SAME variant, one layer at a time:
  :class:`LayerProbes`);
- ``sentence-retrieval``: unit = sentence pair; hits = directions (pivot->lang,
  lang->pivot) in which the sentence retrieves its translation (cosine, the mean of its
  words' vectors, as ``alignfreeze align-eval``);
- ``word-retrieval``: unit = sentence pair; hits = linked words that retrieve their
  partner, both directions, strong candidates (both languages' linked words, the query
  excluded), cosine, not centred (the ``align-eval`` setting drawn by default);
- ``upos-finetune``: unit = sentence; hits = words tagged right by the variant
  fine-tuned on the source treebank (:mod:`realign.finetune`, :mod:`realign.evaluate`).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from core.features import WordFeatureExtractor, WordFeatures


@dataclass(frozen=True)
class Variant:
    """One reverted model: ``name`` (row of the table), the spec it came from and its layers."""

    name: str
    spec: str
    layers: tuple[int, ...]

    @property
    def lowest(self) -> int:
        return min(self.layers)


REALIGNED = "realigned"
METRIC = {"upos-probe": "accuracy", "sentence-retrieval": "accuracy@1", "word-retrieval": "accuracy@1",
          "upos-finetune": "accuracy"}
HALVES = {"front": "lower half", "back": "upper half"}


def build_variants(specs: Sequence[str], n_layers: int) -> list[Variant]:
    """``each`` (every layer 0..L alone: ``emb``, ``block 1``...), ``front`` / ``back`` (the
    freeze halves, shown as lower / upper half), ``all`` (every layer: the pretrained
    model), or any freeze spec (``emb,1-3``; one layer is named as ``each`` names it).
    Duplicates (same layers) are dropped."""
    from realign.freeze import frozen_layer_numbers
    from realign.revert import compact

    out: list[Variant] = []
    for spec in specs:
        s = str(spec).strip()
        if s == "each":
            out += [Variant("emb" if i == 0 else f"block {i}", str(i), (i,)) for i in range(n_layers + 1)]
            continue
        if s == "all":
            out.append(Variant("all (pretrained)", "all", tuple(range(n_layers + 1))))
            continue
        layers = frozen_layer_numbers(s, n_layers)
        if not layers:
            raise ValueError(f"revert spec {s!r} reverts no layer: nothing to compare with the realigned model")
        if s in HALVES:
            name = f"{HALVES[s]} ({compact(layers)})"
        elif len(layers) == 1:  # one layer: the name `each` gives it (a bare "2" would read back as a number)
            name = "emb" if layers[0] == 0 else f"block {layers[0]}"
        else:
            name = s
        out.append(Variant(name, s, tuple(layers)))
    seen, uniq = set(), []
    for v in out:
        if v.layers not in seen:
            seen.add(v.layers)
            uniq.append(v)
    if not uniq:
        raise ValueError("no variant to revert: give --revert each, front, back, all or layer specs")
    return uniq


# ---------------------------------------------------------------------------- features
def concat_features(parts: Sequence[WordFeatures]) -> WordFeatures:
    """Consecutive chunks' features as one (offsets shifted, rows concatenated)."""
    first = parts[0]
    offs = [first.offsets]
    for p in parts[1:]:
        offs.append(p.offsets[1:] + offs[-1][-1])
    return WordFeatures(first.layers, {lay: np.concatenate([p.features[lay] for p in parts]) for lay in first.layers},
                        np.concatenate(offs), np.concatenate([p.valid for p in parts]), first.pooling, {})


def variant_features(model, base, tokenizer, variants: Sequence[Variant], sentences, *, layers, pooling: str,
                     batch_size: int = 32, max_length: int | None = None, chunk_sentences: int = 64,
                     reuse: bool = True, same_as_realigned: Sequence[str] = ()) -> dict[str, WordFeatures]:
    """Word features at ``layers`` of the realigned ``model`` and of every variant.

    Per chunk of sentences, the realigned model runs once with its block outputs recorded
    (:func:`core.replay.record_blocks`); each variant then has its layers pointed at the
    base's tensors (:func:`realign.revert.reverted`) and, with ``reuse``, replays blocks
    ``1..lowest-1`` (identical to the realigned model's) instead of computing them. A
    variant named in ``same_as_realigned`` (its layers never moved), or whose lowest
    reverted layer is above every layer read, gets the realigned features without any
    pass. Returns ``{"realigned": ..., variant.name: ...}``.
    """
    from core.replay import record_blocks, replay_blocks
    from realign.revert import reverted

    ex = WordFeatureExtractor(model, tokenizer, layers=layers, pooling=pooling, batch_size=batch_size,
                              max_length=max_length, progress=False)
    # a variant reverting only layers above the highest one read is the realigned model there
    # (the forward pass stops at that layer: core.layers)
    top = max(ex.layers)
    same = set(same_as_realigned) | {v.name for v in variants if v.lowest > top}
    todo = [v for v in variants if v.name not in same]
    depth = max([v.lowest - 1 for v in todo] + [0]) if reuse else 0
    parts: dict[str, list[WordFeatures]] = {REALIGNED: [], **{v.name: [] for v in todo}}
    for a in range(0, len(sentences), chunk_sentences):
        chunk = sentences[a:a + chunk_sentences]
        with record_blocks(model, depth) if depth else contextlib.nullcontext() as rec:
            parts[REALIGNED].append(ex.extract(chunk))
        for v in todo:
            upto = v.lowest - 1 if reuse else 0
            with reverted(model, base, v.layers), (replay_blocks(model, rec, upto) if upto > 0
                                                   else contextlib.nullcontext()):
                parts[v.name].append(ex.extract(chunk))
        del rec
    out = {k: concat_features(p) for k, p in parts.items()}
    for v in variants:
        if v.name in same:
            out[v.name] = out[REALIGNED]
    return out


def token_rows(sentences) -> tuple[np.ndarray, np.ndarray]:
    """Rows (in the word-feature matrix of ``sentences``) of the first syntactic word of each
    surface token, and the token offsets per sentence: a surface-token view of word features."""
    rows, offs, w = [], [0], 0
    for s in sentences:
        w2t = list(getattr(s, "word_to_token", range(len(s))))
        first = {}
        for k, t in enumerate(w2t):
            first.setdefault(t, w + k)
        n_tok = len(getattr(s, "tokens", w2t))
        rows.extend(first[t] for t in range(n_tok))
        offs.append(offs[-1] + n_tok)
        w += len(w2t)
    return np.asarray(rows, dtype=np.int64), np.asarray(offs, dtype=np.int64)


def sentence_vectors(wf: WordFeatures, layer: int) -> np.ndarray:
    """Mean of each sentence's word vectors: :func:`analysis.alignment.sentence_means`, as
    ``align-eval`` computes it for the same sentences."""
    from analysis.alignment import sentence_means

    return sentence_means(wf.features[layer], wf.offsets, wf.valid)


# ------------------------------------------------------------------------------ probes
class LayerProbes:
    """One UPOS probe per read-out layer, each fitted ALONE on that layer's features.

    :class:`probing.linear.MultiLayerLinearProbe` fits all layers in one L-BFGS run; the sum
    of the layer objectives is separable, but the run's shared line search and history make
    one layer's stopped iterate depend (in the last digits, enough to flip a word) on the
    other layers' features. An effect at layer l must depend on layer l only, so every layer
    has its own run here (on one layer, the same estimator as ``alignfreeze probe --layers l``).

    Args:
        features: layer -> ``(N, D)`` features of all words; ``rows``: the training words;
            ``y``: their labels.
        same_as: ``(probes, features)`` of another model (the realigned one): a layer whose
            features are bit-identical to ``features[layer]`` there reuses its probe (the
            same fit, not run again).
    """

    def __init__(self, layers: Sequence[int], features: dict[int, np.ndarray], rows: np.ndarray, y: np.ndarray, *,
                 C: float, max_iter: int, random_state: int,
                 same_as: tuple[LayerProbes, dict[int, np.ndarray]] | None = None):
        from probing.linear import MultiLayerLinearProbe

        self.layers = tuple(layers)
        self.probes = {}
        for lay in self.layers:
            X = features[lay]
            if same_as is not None and (same_as[1][lay] is X or np.array_equal(same_as[1][lay], X)):
                self.probes[lay] = same_as[0].probes[lay]
                continue
            self.probes[lay] = MultiLayerLinearProbe(C, max_iter=max_iter, random_state=random_state).fit([X[rows]], y)

    def predict(self, features: dict[int, np.ndarray], rows: np.ndarray | None = None) -> list[np.ndarray]:
        """Labels per layer (in ``self.layers`` order) of the words ``rows`` (default all) of
        ``features`` (layer -> ``(N, D)``)."""
        sel = slice(None) if rows is None else rows
        return [self.probes[lay].predict([features[lay][sel]])[0] for lay in self.layers]


# ------------------------------------------------------------------------------- hits
@dataclass
class Hits:
    """Per-unit hits and trials of one measurement (``value = hits.sum() / n.sum()``)."""

    hits: np.ndarray
    n: np.ndarray

    @property
    def value(self) -> float:
        total = float(self.n.sum())
        return float(self.hits.sum()) / total if total else float("nan")


def _normalise(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    norm = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.where(norm > 0, norm, 1.0)


def retrieval_hits(Q: np.ndarray, C: np.ndarray, exclude: np.ndarray | None = None) -> np.ndarray:
    """Whether query ``i`` retrieves candidate ``i`` (cosine, first maximum), per query: the
    per-query form of :func:`analysis.alignment.retrieval_accuracy` (``csls_k = 0``), whose
    mean it equals; ``exclude[i]``: a candidate query ``i`` may not retrieve (-1: none)."""
    S = _normalise(Q) @ _normalise(C).T
    if exclude is not None:
        rows = np.nonzero(exclude >= 0)[0]
        S[rows, exclude[rows]] = -np.inf
    return S.argmax(1) == np.arange(len(Q))


def sentence_retrieval_hits(src: np.ndarray, tgt: np.ndarray) -> Hits:
    """Both directions per sentence pair: hits in {0, 1, 2} of 2."""
    h = retrieval_hits(src, tgt).astype(float) + retrieval_hits(tgt, src).astype(float)
    return Hits(h, np.full(len(src), 2.0))


def word_retrieval_hits(Xs: np.ndarray, Xt: np.ndarray, unit: np.ndarray, n_units: int) -> Hits:
    """Strong word retrieval (cosine, not centred) both directions, summed per unit
    (sentence pair) ``unit[i]`` of link ``i``."""
    n = len(Xs)
    idx = np.arange(n)
    fwd = retrieval_hits(Xs, np.concatenate([Xt, Xs]), exclude=idx + n)
    bwd = retrieval_hits(Xt, np.concatenate([Xs, Xt]), exclude=idx + n)
    h = np.bincount(unit, weights=fwd.astype(float) + bwd.astype(float), minlength=n_units)
    return Hits(h, 2.0 * np.bincount(unit, minlength=n_units))


def tagging_hits(pred: np.ndarray, gold: np.ndarray, sentence: np.ndarray, n_units: int) -> Hits:
    """Words tagged right per sentence (``sentence[i]``: the sentence of word ``i``)."""
    right = (np.asarray(pred) == np.asarray(gold)).astype(float)
    return Hits(np.bincount(sentence, weights=right, minlength=n_units),
                np.bincount(sentence, minlength=n_units).astype(float))


# --------------------------------------------------------------------------- intervals
def seed_interval(effects: Sequence[float], level: float = 0.95) -> tuple[float, float, float, float]:
    """Mean, std (ddof=1), and the Student-t interval ``mean +- t_{(1+level)/2, n-1} std / sqrt(n)``
    over per-seed effects; n < 2 gives NaN for all but the mean."""
    from scipy import stats

    e = np.asarray(effects, dtype=np.float64)
    mean = float(e.mean())
    if len(e) < 2:
        return mean, float("nan"), float("nan"), float("nan")
    sd = float(e.std(ddof=1))
    half = float(stats.t.ppf((1 + level) / 2, len(e) - 1)) * sd / math.sqrt(len(e))
    return mean, sd, mean - half, mean + half


def paired_unit_interval(a: Hits, b: Hits, level: float = 0.95) -> tuple[float, float, float]:
    """``value(a) - value(b)`` on the SAME units and its normal interval with the
    unit-clustered (linearised ratio) standard error.

    With ``d_u = hits_a,u - hits_b,u`` and trials ``n_u`` per unit (U units), the effect is
    ``e = sum d / sum n`` and ``Var(e) ~ U / (U - 1) * sum (d_u - e n_u)^2 / (sum n)^2``
    (the linearisation variance of a ratio estimator, Cochran 1977, ch. 6). It reflects
    which sentences were evaluated only, not the realignment's or the probe's randomness.
    Returns ``(effect, ci_low, ci_high)``; NaN bounds below two units.
    """
    from scipy import stats

    if a.n.shape != b.n.shape or not np.array_equal(a.n, b.n):
        raise ValueError("paired interval: the two measurements are not on the same units")
    n = a.n
    total = float(n.sum())
    d = a.hits - b.hits
    e = float(d.sum()) / total
    U = len(n)
    if U < 2:
        return e, float("nan"), float("nan")
    var = U / (U - 1) * float(((d - e * n) ** 2).sum()) / total ** 2
    half = float(stats.norm.ppf((1 + level) / 2)) * math.sqrt(var)
    return e, e - half, e + half
