"""Small tidy tables of every plot kind, shaped like the commands' outputs (shared by the
plot tests)."""

from __future__ import annotations

import pandas as pd

# written in alphabetical order on purpose: the figures must not keep it
STRATEGIES = ("back", "base", "front", "full")
LANGS = ("en", "fr", "de")


def probe_table(models=STRATEGIES, seeds=(1, 2, 3), langs=LANGS, layers=range(4), task="upos",
                shift=None) -> pd.DataFrame:
    """Probe accuracies (fractions, as ``alignfreeze probe`` writes them); ``shift[model]``
    is added to every accuracy of that model; seed s adds 0.01 * s."""
    shift = shift or {"base": 0.0, "full": -0.08, "front": -0.02, "back": -0.05}
    rows = []
    for m in models:
        for lang in langs:
            for layer in layers:
                for s in seeds:
                    rows.append({"model": m, "lang": lang, "task": task, "layer": layer, "seed": s,
                                 "metric": "accuracy", "value": 0.5 + 0.05 * layer + shift.get(m, 0.0) + 0.01 * s,
                                 "split": "heldout" if lang == "en" else "eval", "train_lang": "en", "n": 100,
                                 "file": f"{lang}_pud-ud-test.conllu"})
    return pd.DataFrame(rows)


def drift_table(models=("full", "front", "back"), langs=("fr", "de"), layers=range(4),
                intervals: bool = False) -> pd.DataFrame:
    """``alignfreeze drift`` rows; with ``intervals``, ``ci_low``/``ci_high`` = value -+ 0.01 (and
    -0.02 / +0.01: asymmetric, as a jackknife or bootstrap interval may be)."""
    rows = []
    for k, m in enumerate(models, 1):
        for j, lang in enumerate(langs):
            for lay in layers:
                for metric, v in (("cka", 1 - 0.02 * lay * k - 0.01 * j), ("cos_dist", 0.01 * lay * k + 0.005 * j)):
                    row = {"base": "e5-small", "model": m, "lang": lang, "layer": lay, "metric": metric,
                           "value": v, "treebank": f"{lang}_pud-ud-test.conllu"}
                    if intervals:
                        row.update(ci_low=v - 0.02, ci_high=v + 0.01)
                    rows.append(row)
    return pd.DataFrame(rows)


def cka_table(pairs=(("e5-small", "full"),), layers=range(3)) -> pd.DataFrame:
    return pd.DataFrame([{"model_a": a, "model_b": b, "layer_a": i, "layer_b": j, "cka": 1.0 - 0.2 * abs(i - j),
                          "n_words": 500} for a, b in pairs for i in layers for j in layers])


def typology_table() -> pd.DataFrame:
    rows = []
    for feat in ("syntactic", "genetic"):
        for lang, d, g in (("fr", 0.2, 1.0), ("de", 0.3, 0.4), ("ko", 0.7, -2.0), ("ja", 0.75, -2.5)):
            rows.append({"lang": lang, "gain": g, "feature": feat, "distance": d})
    return pd.DataFrame(rows)


def attribution_table() -> pd.DataFrame:
    return pd.DataFrame([{"lang": lang, "layer": lay, "share": s, "std": 0.01, "n_sentences": 20}
                         for lang in ("en", "fr") for lay, s in enumerate((0.2, 0.3, 0.5))])


def retrieval_table(models=("full", "base", "front"), seeds=(None,)) -> pd.DataFrame:
    """``align-eval`` rows: sentence retrieval and every word-retrieval setting."""
    rows = []
    for k, m in enumerate(models):
        for s in seeds:
            for layer in range(4):
                v = 0.3 + 0.1 * layer + 0.05 * k + (0.01 * s if s else 0.0)
                common = {"model": m, "src": "en", "tgt": "de", "layer": layer, "metric": "accuracy@1", "n": 50}
                if s is not None:
                    common["seed"] = s
                for d in ("src->tgt", "tgt->src"):
                    rows.append({**common, "task": "sentence", "candidates": "all", "score": "cosine",
                                 "centred": False, "direction": d, "value": v})
                    for cand in ("weak", "strong"):
                        for score in ("cosine", "csls"):
                            for centred in (False, True):
                                rows.append({**common, "task": "word", "candidates": cand, "score": score,
                                             "centred": centred, "direction": d,
                                             "value": v - 0.1 * (cand == "strong") + 0.02 * centred})
    return pd.DataFrame(rows)


def scan_table(models=("smollm2-135m",), layers=range(6)) -> pd.DataFrame:
    """``alignfreeze midalign scan`` rows: retrieval both ways, their mean, and CKA."""
    rows = []
    for k, m in enumerate(models):
        for layer in layers:
            mid = 1 - abs(layer - 3) / 4
            fwd, bwd = 0.2 + 0.6 * mid, 0.15 + 0.6 * mid
            for metric, d, v in (("retrieval_acc", "src->tgt", fwd), ("retrieval_acc", "tgt->src", bwd),
                                 ("retrieval_mean", "both", (fwd + bwd) / 2),
                                 ("cka", "both", 0.5 + 0.3 * mid - 0.05 * k)):
                rows.append({"model": m, "src": "en", "tgt": "fr", "layer": layer, "metric": metric,
                             "direction": d, "value": v, "n": 200})
    return pd.DataFrame(rows)


def layer_effect_table(langs=("fr", "de"), n_layers=4, seeds=1) -> pd.DataFrame:
    """``alignfreeze layer-effect`` effects: each layer alone, the halves and all; block k's
    effect is 0.01 * (k - 2) on the probe (the realignment of the low blocks hurt)."""
    variants = [("emb", "0", 0)] + [(f"block {k}", str(k), k) for k in range(1, n_layers + 1)]
    variants += [("lower half (1-2)", "1-2", None), ("upper half (3-4)", "3-4", None), ("all (pretrained)", "0-4", None)]
    rows = []
    for measure, metric in (("upos-probe", "accuracy"), ("sentence-retrieval", "accuracy@1")):
        for name, rev, k in variants:
            for j, lang in enumerate(langs):
                e = 0.01 * ((k if k is not None else 5) - 2) + 0.002 * j
                rows.append({"model": "full", "base": "e5-small", "variant": name, "reverted_layers": rev, "lang": lang,
                             "measure": measure, "layer": n_layers, "metric": metric, "realigned": 0.8,
                             "reverted": 0.8 - e, "effect": e, "std": 0.004 if seeds > 1 else float("nan"),
                             "ci_low": e - 0.006, "ci_high": e + 0.006, "interval": "sentences, clustered SE, 95%",
                             "n_seeds": seeds, "seeds": "42", "n": 300.0, "identical_weights": False})
    return pd.DataFrame(rows)


TABLES = {
    "drift": drift_table,
    "drift-lines": lambda: drift_table(intervals=True),
    "probe": probe_table,
    "forgetting": probe_table,
    "cka": cka_table,
    "typology": typology_table,
    "attribution": attribution_table,
    "retrieval": retrieval_table,
    "scan": scan_table,
    "layer-effect": layer_effect_table,
}
