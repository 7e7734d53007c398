"""What the demo measures on each model, from ONE forward pass over its sentences.

:class:`FeatureCache` extracts the word features of every layer once per model (the
evaluation sentences of every language, the English probe-training sentences, the sides of
the parallel evaluation pairs) and hands them to the library's own functions, which take
it where they take a :class:`core.features.WordFeatureExtractor`:
:func:`analysis.drift.drift_rows` (drift against the base), :func:`analysis.cka.layer_cka_matrix`
(layer x layer CKA against the base), :func:`analysis.alignment.align_eval` (retrieval by
layer) and :func:`probing.tasks` features for the probes.

Probes: one :class:`probing.linear.MultiLayerLinearProbe` per model (the estimator and
defaults of ``alignfreeze probe``: L2 logistic regression, C = 1, L-BFGS, standardised
features), trained on the English training sentences, scored on the measured sentences of
every language. Each word's correctness is kept per sentence, so an accuracy gets an
interval over SENTENCES (words of one sentence are not independent), and a change between
two models on the same words gets a paired interval (:func:`paired_change`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from core.pieces import Surface, surface, surface_text

LEVEL = 0.95


def _key(sf: Surface) -> tuple:
    return surface_text(sf)[0], tuple(sf.words)


class FeatureCache:
    """Word features of a fixed set of sentences, extracted once, served as often as asked.

    Sentences are keyed by their running text and surface words, so a CoNLL-U sentence, the
    side of a parallel pair and the side of a word-pairs record with the same text share one
    entry; a CoNLL-U sentence's syntactic words get the vector of the surface token that
    carries them (as :class:`core.features.WordFeatureExtractor` does). Has ``model``,
    ``tokenizer``, ``layers``, ``pooling``, ``extract`` and ``iter_chunks`` like the extractor.
    """

    def __init__(self, model, tokenizer, sentences: Sequence, *, pooling: str = "first", batch_size: int = 32,
                 progress: bool = False):
        from core.features import WordFeatureExtractor  # torch: imported when features are made

        ex = WordFeatureExtractor(model, tokenizer, layers="all", pooling=pooling, batch_size=batch_size,
                                  progress=progress)
        self.model, self.tokenizer, self.layers, self.pooling = model, tokenizer, ex.layers, pooling
        self._index: dict[tuple, int] = {}
        unique: list[Surface] = []
        for s in sentences:
            sf = surface(s)
            k = _key(sf)
            if k not in self._index:
                self._index[k] = len(unique)
                unique.append(Surface(list(sf.words), list(sf.space_after), None, sf.text))
        wf = ex.extract(unique)
        self._features, self._offsets, self._valid = wf.features, wf.offsets, wf.valid
        self.stats = dict(wf.stats)
        self.encoding_stats = ex.encoding_stats

    def __len__(self) -> int:
        return len(self._index)

    def extract(self, sentences):
        """:class:`core.features.WordFeatures` of ``sentences`` (each must be in the cache)."""
        from core.features import WordFeatures

        rows, offsets = [], [0]
        for s in sentences:
            sf = surface(s)
            i = self._index.get(_key(sf))
            if i is None:
                raise KeyError(f"sentence {surface_text(sf)[0][:60]!r} was not extracted into this feature cache")
            r = np.arange(self._offsets[i], self._offsets[i + 1])
            if sf.word_to_token is not None:
                r = r[np.asarray(sf.word_to_token, dtype=np.int64)]
            rows.append(r)
            offsets.append(offsets[-1] + len(r))
        if not rows:
            raise ValueError("no sentences to extract features from")
        g = np.concatenate(rows)
        return WordFeatures(self.layers, {lay: self._features[lay][g] for lay in self.layers},
                            np.asarray(offsets, dtype=np.int64), self._valid[g], self.pooling, dict(self.stats))

    def iter_chunks(self, sentences, chunk_sentences: int = 1024, total: int | None = None):
        sentences = list(sentences)
        for a in range(0, len(sentences), chunk_sentences):
            yield self.extract(sentences[a:a + chunk_sentences])


# ----------------------------------------------------------------------------- probes
def sentence_interval(num, den, bounds: tuple[float, float]) -> tuple[float, float]:
    """Interval of ``sum(num) / sum(den)`` over sentences (rows), level :data:`LEVEL`: the
    leave-one-sentence-out jackknife of :func:`analysis.intervals.ratio_interval` (sentences
    are the independent units; the words of a sentence are not), clipped to ``bounds``."""
    from analysis.intervals import ratio_interval

    iv = ratio_interval(np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64), LEVEL, bounds)
    return iv.low, iv.high


def probe_tables(name: str, cache: FeatureCache, train_sentences, eval_sentences: dict, files: dict, *,
                 C: float = 1.0, seed: int = 0, max_iter: int = 300,
                 notes: list | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(probe, per_sentence)`` of one model: UPOS probes trained on ``train_sentences``
    (English), scored on ``eval_sentences[lang]`` at every layer.

    ``probe`` rows: ``model, lang, task, layer, seed, metric, value, ci_low, ci_high, split,
    train_lang, n, n_sentences, file`` (accuracy as a proportion; the interval over
    sentences). ``per_sentence`` rows: ``model, lang, layer, sent_id, correct, words``.
    A probe that does not converge in ``max_iter`` L-BFGS iterations is kept and its
    warning appended to ``notes`` (when given), so the report can say so.
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    from probing.linear import MultiLayerLinearProbe
    from probing.tasks import check_vocabulary

    def labelled(sents, source):
        check_vocabulary(cache.tokenizer, sents, str(source))
        wf = cache.extract(sents)
        labels = np.asarray([t for s in sents for t in s.upos])
        sent_no = np.repeat(np.arange(len(sents)), [len(s) for s in sents])
        keep = wf.valid
        return [wf.features[lay][keep] for lay in cache.layers], labels[keep], sent_no[keep], int((~keep).sum())

    X, y, _, _ = labelled(train_sentences, "the probe-training treebank")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        probe = MultiLayerLinearProbe(C, backend="torch", solver="lbfgs", max_iter=max_iter,
                                      random_state=seed).fit(X, y)
    for w in caught:
        if issubclass(w.category, ConvergenceWarning):
            if notes is not None:
                notes.append(f"{name}: {w.message}")
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    rows, per_sent = [], []
    for lang, sents in eval_sentences.items():
        Xe, ye, sent_no, lost = labelled(sents, files[lang])
        pred = probe.predict(Xe)  # (layers, N)
        words = np.bincount(sent_no, minlength=len(sents)).astype(np.float64)
        for k, lay in enumerate(cache.layers):
            correct = np.bincount(sent_no, weights=(pred[k] == ye).astype(np.float64), minlength=len(sents))
            lo, hi = sentence_interval(correct, words, (0.0, 1.0))
            rows.append({"model": name, "lang": lang, "task": "upos", "layer": int(lay), "seed": seed,
                         "metric": "accuracy", "value": float(correct.sum() / words.sum()), "ci_low": lo,
                         "ci_high": hi, "split": "eval", "train_lang": "en", "n": int(words.sum()),
                         "n_sentences": len(sents), "lost_words": lost, "file": str(files[lang])})
            per_sent += [{"model": name, "lang": lang, "layer": int(lay), "sent_id": s.sent_id,
                          "correct": int(c), "words": int(w)} for s, c, w in zip(sents, correct, words)]
    return pd.DataFrame(rows), pd.DataFrame(per_sent)


def paired_change(per_sentence: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """Change of probe accuracy of every model against ``baseline`` on the SAME words, with
    a paired interval over sentences: ``sum(correct_m - correct_b) / sum(words)`` per
    (model, lang, layer). Rows ``model, baseline, lang, task, layer, metric, value, ci_low,
    ci_high, n, n_sentences`` (``metric`` = ``accuracy_change``, a proportion)."""
    keys = ["lang", "layer", "sent_id"]
    base = per_sentence[per_sentence["model"] == baseline].set_index(keys)
    if base.empty:
        raise ValueError(f"paired change: no per-sentence probe rows of the baseline {baseline!r}")
    rows = []
    for model, m in per_sentence[per_sentence["model"] != baseline].groupby("model", sort=False):
        j = m.set_index(keys).join(base, rsuffix="_b", how="inner")
        if (j["words"] != j["words_b"]).any():
            raise ValueError(f"paired change: {model} and {baseline} scored different words in a sentence")
        for (lang, layer), g in j.groupby(level=["lang", "layer"], sort=False):
            diff = (g["correct"] - g["correct_b"]).to_numpy(np.float64)
            words = g["words"].to_numpy(np.float64)
            lo, hi = sentence_interval(diff, words, (-1.0, 1.0))
            rows.append({"model": model, "baseline": baseline, "lang": lang, "task": "upos", "layer": int(layer),
                         "metric": "accuracy_change", "value": float(diff.sum() / words.sum()), "ci_low": lo,
                         "ci_high": hi, "n": int(words.sum()), "n_sentences": len(g)})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- the rest
def drift_table(name: str, base: FeatureCache, cache: FeatureCache, eval_sentences: dict, base_name: str, *,
                ci_groups: int = 10) -> pd.DataFrame:
    """:func:`analysis.drift.drift_rows` of one model against the base, every language
    (``ci_groups``: its CKA group-jackknife intervals, 0 for none)."""
    from analysis.drift import drift_rows

    rows = []
    for lang, sents in eval_sentences.items():
        rows += drift_rows(base, {name: cache}, sents, lang, ci_groups=ci_groups, level=LEVEL)
    df = pd.DataFrame(rows)
    df.insert(0, "base", base_name)
    return df


def cka_table(name: str, base: FeatureCache, cache: FeatureCache, sentences, base_name: str) -> pd.DataFrame:
    """Layer x layer linear CKA, base (``model_a``) against ``name`` (``model_b``), on the
    words of ``sentences`` that both models represent."""
    from analysis.cka import word_features_cka

    rows, n_words = word_features_cka(base.extract(sentences), cache.extract(sentences))
    return pd.DataFrame([{"model_a": base_name, "model_b": name, **r, "n_words": n_words} for r in rows])


def retrieval_table(name: str, cache: FeatureCache, pairs: dict, *, csls_k: int = 10) -> pd.DataFrame:
    """:func:`analysis.alignment.align_eval` per language pair: ``pairs[lang] =
    (sentence_pairs or None, linked_pairs or None)``. Columns as ``alignfreeze align-eval``."""
    from analysis.alignment import align_eval

    frames = []
    for lang, (sent_pairs, linked) in pairs.items():
        if not sent_pairs and not linked:
            continue
        rows = align_eval(cache, sentence_pairs=sent_pairs, linked_pairs=linked, csls_k=csls_k)
        frames.append(pd.DataFrame([{"model": name, "src": "en", "tgt": lang, **r} for r in rows]))
    cols = ["model", "src", "tgt", "layer", "task", "candidates", "score", "centred", "direction", "metric",
            "value", "n"]
    return pd.concat(frames, ignore_index=True)[cols] if frames else pd.DataFrame(columns=cols)
