"""The numbers each figure draws, from the tidy tables (compute only; drawing is in
:mod:`analysis.plot_draw`).

Every ``*_data`` helper validates its table (columns, numbers, one row per measured cell),
shows models under their display names in the protocol's order (:mod:`analysis.plot_names`),
aggregates replicates (``seed``: mean, and std with ddof=1 over two seeds or more, NaN for
one), and converts proportions to % (accuracy, retrieval, shares) and accuracy changes to
percentage points, the unit of the result tables. Each returns a tidy frame with the
drawn ``value`` and a ``unit`` column; notes about what was left out are in ``.attrs["notes"]``.

:func:`colour_scale` chooses the colour limits: a signed quantity (a change, selectivity)
gets a diverging map centred at 0 with symmetric limits, so a zero change is the neutral
colour (``cases/09``); a non-negative or bounded quantity gets a sequential map; a table
whose values are all equal is drawn against the metric's natural range, not a degenerate one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .plot_names import (
    Metric,
    PlotInputError,
    change_metric,
    check_shared,
    display_names,
    listed,
    metric_info,
    numeric,
    one_row_per,
    ordered_names,
    require,
    select_metric,
)

SIGNED = ("selectivity",)


@dataclass(frozen=True)
class Scale:
    """Colour limits of a heatmap (drawn units), its colour map and how numbers are written."""

    vmin: float
    vmax: float
    cmap: str
    label: str
    unit: str = ""
    fmt: str = ".3f"
    diverging: bool = False
    given: bool = False

    def text(self) -> str:
        """``-7.9 to +7.9 percentage points``."""
        f = ("+" + self.fmt) if self.diverging else self.fmt
        return f"{self.vmin:{f}} to {self.vmax:{f}}" + (f" {self.unit}" if self.unit else "")


def colour_scale(values, metric: Metric, *, policy: str, cmap: str | None = None,
                 override: tuple[float, float] | None = None) -> Scale:
    """Colour limits for ``values`` (drawn units) of ``metric``.

    ``policy``: ``symmetric`` (diverging, centred at 0, limits +-max|v|; all zero: +-1),
    ``bounds`` (the metric's natural range, widened to the data), ``range`` (the data's
    range; all equal: the natural range, or +-5 % around the value), ``zero`` (0 to the
    maximum). Diverging maps are RdBu (red: below 0), sequential ones ``cmap``
    (viridis by default). ``override = (lo, hi)`` replaces the limits; for a diverging map it must be
    symmetric. Raises :class:`PlotInputError` when no value is finite.
    """
    v = np.asarray(pd.to_numeric(pd.Series(values), errors="coerce"), dtype=np.float64)
    v = v[np.isfinite(v)]
    diverging = policy == "symmetric"
    cmap = "RdBu" if diverging else (cmap or "viridis")
    if override is not None:
        lo, hi = (float(x) for x in override)
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise PlotInputError(f"scale: expected two finite numbers LOW < HIGH, got {lo} {hi}")
        if diverging and not math.isclose(lo, -hi):
            raise PlotInputError(f"scale: the {metric.label} map diverges around 0 and needs symmetric limits "
                                 f"(-X X), got {lo:g} {hi:g}")
        return Scale(lo, hi, cmap, metric.axis(), metric.unit, metric.fmt, diverging, given=True)
    if not v.size:
        raise PlotInputError(f"nothing to draw: the table has no finite {metric.label} value")
    b0, b1 = metric.bounds if metric.bounds else (None, None)
    lo, hi = float(v.min()), float(v.max())
    if diverging:
        lim = max(abs(lo), abs(hi)) or 1.0  # all zero: the neutral colour on a +-1 scale
        lo, hi = -lim, lim
    elif policy == "bounds" and b0 is not None:
        lo, hi = min(b0, lo), max(b1, hi)
    elif policy == "zero":
        lo = min(0.0, lo)
        hi = hi if hi > lo else lo + (b1 if b1 else 1.0)
    elif hi == lo:  # range of a constant table: against the natural range, else centred
        if b0 is not None and b0 <= lo <= b1 and b0 < b1:
            lo, hi = b0, b1
        else:
            d = abs(lo) * 0.05 or 1.0
            lo, hi = lo - d, hi + d
    return Scale(lo, hi, cmap, metric.axis(), metric.unit, metric.fmt, diverging)


def policy_for(metric: str, default: str) -> str:
    """``symmetric`` (diverging) for a signed metric such as selectivity, else ``default``."""
    return "symmetric" if metric in SIGNED else default


# ------------------------------------------------------------------------------- helpers
def _named(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    df["_name"] = display_names(df)
    return df


def _aggregate(sub: pd.DataFrame, keys: list[str], metric: str) -> pd.DataFrame:
    """Mean, std (ddof=1; NaN for one seed) and seed count of ``value`` per ``keys``, in
    drawn units."""
    g = sub.groupby(keys, sort=False, dropna=False)["value"]
    out = pd.DataFrame({"value": g.mean(), "std": g.std(ddof=1), "n_seeds": g.count()}).reset_index()
    info = metric_info(metric)
    out[["value", "std"]] = out[["value", "std"]] * info.factor
    out["metric"] = metric
    out["unit"] = info.unit
    return out


def _sort(out: pd.DataFrame, orders: dict[str, list], then=("layer",)) -> pd.DataFrame:
    """Rows in the given orders of ``orders``' columns (first appearance for the rest)."""
    pos = {c: out[c].map({v: i for i, v in enumerate(o)}) for c, o in orders.items()}
    tmp = out.assign(**{f"_o_{c}": p for c, p in pos.items()})
    cols = [f"_o_{c}" for c in orders] + [c for c in then if c in out.columns]
    return tmp.sort_values(cols, kind="stable").drop(columns=[f"_o_{c}" for c in orders]).reset_index(drop=True)


def _first(series) -> list:
    return list(dict.fromkeys(series))


def _models(sub: pd.DataFrame, order) -> list[str]:
    keys = sub["strategy"].astype(str) if "strategy" in sub.columns else None
    return ordered_names(sub["_name"], keys, order)


def _no_train(sub: pd.DataFrame, what: str) -> pd.DataFrame:
    if "split" not in sub.columns:
        return sub
    kept = sub[sub["split"].astype(str) != "train"]
    if kept.empty:
        raise PlotInputError(f"the {what} figure: every row is from the probes' own training words "
                             "(split=train); nothing held out or evaluated to draw")
    return kept


# --------------------------------------------------------------------------------- kinds
def drift_data(df: pd.DataFrame, metric: str | None = None, order=None) -> pd.DataFrame:
    """Drift per (model, lang, layer) of one metric (default ``cka``); mean over seeds
    when the table has them. Columns ``model, lang, layer, value, std, n_seeds, metric,
    unit`` (+ ``base``)."""
    require(df, ("model", "lang", "layer", "metric", "value"), "drift")
    sub, metric = select_metric(df, metric, "cka", "drift")
    sub = _named(numeric(sub, ("layer", "value"), "drift"))
    one_row_per(sub, ["_name", "lang", "layer", "metric", "seed"], "drift")
    keys = ["_name", "lang", "layer"] + (["base"] if "base" in sub.columns else [])
    out = _aggregate(sub, keys, metric)
    out = _sort(out, {"_name": _models(sub, order), "lang": _first(sub["lang"])})
    out = out.rename(columns={"_name": "model"})
    check_shared(out, (("lang", "language"), ("layer", "layer")), "drift")
    return out


def probe_data(df: pd.DataFrame, metric: str | None = None, order=None) -> pd.DataFrame:
    """Probe metric (default accuracy, in %) per (model, task, lang, layer): mean and std
    over seeds (ddof=1; NaN below two seeds) and ``n_seeds``. Rows of the probes' own
    training words (``split == "train"``) are left out. Refuses models that share no task,
    language or layer with the first (:func:`check_shared`)."""
    out = _probe(df, metric, order, "probe")
    check_shared(out, (("task", "task"), ("lang", "language"), ("layer", "layer")), "probe")
    return out


def _probe(df: pd.DataFrame, metric: str | None, order, what: str) -> pd.DataFrame:
    require(df, ("model", "lang", "task", "layer", "metric", "value"), what)
    sub, metric = select_metric(df, metric, "accuracy", what)
    sub = _named(numeric(_no_train(sub, what), ("layer", "value"), what))
    one_row_per(sub, ["_name", "task", "lang", "layer", "metric", "seed"], what)
    out = _aggregate(sub, ["_name", "task", "lang", "layer"], metric)
    out = _sort(out, {"_name": _models(sub, order), "task": _first(sub["task"]), "lang": _first(sub["lang"])})
    return out.rename(columns={"_name": "model"})


def forgetting_data(df: pd.DataFrame, baseline: str | None = None, metric: str | None = None,
                    order=None) -> pd.DataFrame:
    """Change versus the baseline, in percentage points: ``value(model) - value(baseline)``
    per task, lang, layer (means over seeds). ``baseline`` defaults to the first model in
    display order (pretrained/base/baseline by the protocol, else the table's first).

    Raises :class:`PlotInputError` when the baseline is unknown, when the table has one
    model only, or when a model shares no task, language or layer with the baseline; cells
    of a model without a baseline value are left out and named in ``attrs["notes"]``.
    """
    m = _probe(df, metric, order, "forgetting")
    names = _first(m["model"])
    baseline = str(baseline) if baseline is not None else names[0]
    if baseline not in names:
        raise PlotInputError(f"the forgetting figure: baseline {baseline!r} is not among the table's models "
                             f"({', '.join(map(repr, names))}); choose with --baseline")
    if len(names) < 2:
        raise PlotInputError(f"the forgetting figure has nothing to compare: the table has one model only "
                             f"({baseline!r}); it needs the baseline's probes and another model's")
    keys = ["task", "lang", "layer"]
    check_shared(m, (("task", "task"), ("lang", "language"), ("layer", "layer")), "forgetting", baseline)
    base = m[m["model"] == baseline]
    ref = base.set_index(keys)[["value", "n_seeds"]].rename(columns={"value": "baseline",
                                                                      "n_seeds": "baseline_n_seeds"})
    parts, notes = [], []
    for name in names:
        if name == baseline:
            continue
        o = m[m["model"] == name]
        j = o.join(ref, on=keys, how="inner")
        if j.empty:
            raise PlotInputError(f"the forgetting figure has nothing to compare: {name!r} and the baseline "
                                 f"{baseline!r} share no (task, language, layer) cell")
        if len(j) < len(o):
            gone = o.merge(base[keys], on=keys, how="left", indicator=True)
            gone = gone[gone["_merge"] == "left_only"]
            notes.append(f"{name}: {len(gone)} cell(s) with no baseline value not drawn "
                         f"(language {', '.join(map(str, _first(gone['lang'])))}; "
                         f"layer {', '.join(map(str, _first(gone['layer'])))})")
        parts.append(j)
    out = pd.concat(parts, ignore_index=True)
    out["change"] = out["value"] - out["baseline"]
    out["baseline_model"] = baseline
    out["unit"] = change_metric(str(out["metric"].iloc[0])).unit
    out.attrs["notes"] = notes
    return out


def cka_data(df: pd.DataFrame) -> pd.DataFrame:
    """Layer x layer CKA, one block per pair of models: ``model_a, model_b, layer_a,
    layer_b, cka`` (pairs in the table's order)."""
    require(df, ("layer_a", "layer_b", "cka"), "cka")
    sub = numeric(df, ("layer_a", "layer_b", "cka"), "cka")
    for col in ("model_a", "model_b"):
        sub[col] = display_names(sub, col, plain=True) if col in sub.columns else ""
    one_row_per(sub, ["model_a", "model_b", "layer_a", "layer_b"], "cka")
    sub["_pair"] = sub["model_a"] + "\t" + sub["model_b"]
    out = _sort(sub, {"_pair": _first(sub["_pair"])}, then=("layer_a", "layer_b"))
    return out[["model_a", "model_b", "layer_a", "layer_b", "cka"]]


def typology_data(df: pd.DataFrame) -> pd.DataFrame:
    """Points ``feature, lang, distance, gain`` with, per feature set, the least-squares
    line (``slope, intercept``) and Pearson's ``r, p`` (:func:`analysis.typology.correlate`;
    NaN below three languages or for constant data) and ``n``."""
    from .typology import correlate

    require(df, ("lang", "gain", "distance"), "typology")
    sub = numeric(df, ("gain", "distance"), "typology")
    if "feature" not in sub.columns:
        sub["feature"] = "all"
    one_row_per(sub, ["feature", "lang"], "typology")
    ok = sub["gain"].notna() & sub["distance"].notna()
    notes = []
    if not ok.all():
        notes.append(f"left out (no gain or distance): {', '.join(map(str, _first(sub.loc[~ok, 'lang'])))}")
    sub = sub[ok]
    if sub["lang"].nunique() < 2:
        raise PlotInputError(f"the typology figure has nothing to compare: it relates gain to distance across "
                             f"languages, and only {sub['lang'].nunique()} language has both "
                             f"({listed(_first(sub['lang']))})")
    fits = correlate(sub).set_index("feature")
    rows = []
    for feat, g in sub.groupby("feature", sort=False):
        slope = intercept = np.nan
        if len(g) >= 2 and g["distance"].nunique() >= 2:
            slope, intercept = np.polyfit(g["distance"].to_numpy(float), g["gain"].to_numpy(float), 1)
        rows.append({"feature": feat, "slope": slope, "intercept": intercept, "n": len(g),
                     "pearson_r": fits.loc[feat, "pearson_r"], "pearson_p": fits.loc[feat, "pearson_p"]})
    out = sub[["feature", "lang", "distance", "gain"]].merge(pd.DataFrame(rows), on="feature", how="left")
    out.attrs["notes"] = notes
    return out


def attribution_data(df: pd.DataFrame, order=None) -> pd.DataFrame:
    """Mean share of |attribution| per (model, lang, layer), in %."""
    require(df, ("lang", "layer", "share"), "attribution")
    sub = _named(numeric(df, ("layer", "share"), "attribution"))
    one_row_per(sub, ["_name", "lang", "layer"], "attribution")
    out = sub[["_name", "lang", "layer"]].copy()
    out["value"] = sub["share"].to_numpy() * metric_info("share").factor
    if "n_sentences" in sub.columns:
        out["n_sentences"] = sub["n_sentences"].to_numpy()
    out["metric"], out["unit"] = "share", metric_info("share").unit
    out = _sort(out, {"_name": _models(sub, order), "lang": _first(sub["lang"])})
    out = out.rename(columns={"_name": "model"})
    check_shared(out, (("lang", "language"), ("layer", "layer")), "attribution")
    return out


WORD_DEFAULTS = (("candidates", "strong"), ("score", "cosine"), ("centred", "False"))


def _arrow(direction: str, src: str, tgt: str) -> str:
    d = str(direction).replace("src2tgt", "src->tgt").replace("tgt2src", "tgt->src")
    if src and tgt:
        d = d.replace("src", "\0").replace("tgt", tgt).replace("\0", src)
    return d.replace("->", "\u2192")


def retrieval_data(df: pd.DataFrame, metric: str | None = None, order=None) -> pd.DataFrame:
    """Retrieval accuracy (%) by layer from ``align-eval`` tables, per (model, src, tgt,
    task, direction): mean and std over seeds. Word retrieval is shown for one setting:
    strong candidates, cosine, not centred unless the table (or ``--where``) holds one
    other; ``setting`` says which."""
    require(df, ("model", "layer", "task", "direction", "metric", "value"), "retrieval")
    sub, metric = select_metric(df, metric, "accuracy@1", "retrieval")
    sub = _named(numeric(sub, ("layer", "value"), "retrieval"))
    for col in ("src", "tgt"):
        sub[col] = sub[col].astype(str) if col in sub.columns else ""
    word = sub["task"].astype(str) == "word"
    for col, default in WORD_DEFAULTS:
        if col not in sub.columns:
            continue
        vals = _first(sub.loc[word, col].astype(str))
        if len(vals) > 1:
            if default not in vals:
                raise PlotInputError(f"the retrieval figure: word retrieval has {col} {', '.join(vals)}; "
                                     f"choose one with --where {col}=VALUE")
            keep = ~word | (sub[col].astype(str) == default)
            sub, word = sub[keep], word[keep]
    setting = pd.Series("", index=sub.index, dtype=object)
    if word.any() and {"candidates", "score"} <= set(sub.columns):
        centred = sub["centred"].astype(str) == "True" if "centred" in sub.columns else False
        text = sub["candidates"].astype(str) + " candidates, " + sub["score"].astype(str)
        setting[word] = (text + np.where(centred, ", mean-centred", ""))[word]
    sub["setting"] = setting
    sub["direction"] = [_arrow(d, s, t) for d, s, t in zip(sub["direction"], sub["src"], sub["tgt"], strict=True)]
    cells = ["_name", "src", "tgt", "task", "setting", "direction", "layer"]
    one_row_per(sub, [*cells, "candidates", "score", "centred", "metric", "seed"], "retrieval")
    out = _aggregate(sub, cells, metric)
    out["_pair"] = out["src"] + "\t" + out["tgt"]
    out = _sort(out, {"_pair": _first(sub["src"] + "\t" + sub["tgt"]), "task": _first(sub["task"]), "_name": _models(sub, order),
                      "direction": _first(sub["direction"])})
    out = out.drop(columns="_pair").rename(columns={"_name": "model"})
    out["pair"] = np.where(out["src"] + out["tgt"] != "", out["src"] + "\u2013" + out["tgt"], "")
    check_shared(out, (("pair", "language pair"), ("task", "task"), ("layer", "layer")), "retrieval")
    return out


def _series(metric: str, direction: str, src: str, tgt: str) -> str:
    """Legend text of one scan curve: ``en→fr``, ``mean of both directions``, ``cka``."""
    if not metric.startswith("retrieval"):
        return metric
    if direction and direction not in ("both", "nan"):
        return _arrow(direction, src, tgt)
    rest = metric.removeprefix("retrieval_").removeprefix("retrieval")
    if rest in ("mean", ""):
        return "mean of both directions"
    return _arrow(rest, src, tgt)


def scan_data(df: pd.DataFrame, order=None) -> pd.DataFrame:
    """Layer scan of a decoder (``alignfreeze midalign scan``: ``model, src, tgt, layer,
    metric, direction, value, n`` with metrics ``retrieval_acc`` (``direction`` src->tgt,
    tgt->src), ``retrieval_mean`` and ``cka``; also ``retrieval_src2tgt``-style metrics
    without ``direction``; optional ``lang``, ``seed``): one ``family`` per panel (every
    ``retrieval*`` metric in one, in %), one ``series`` per direction; mean and std over seeds."""
    require(df, ("layer", "metric", "value"), "scan")
    sub = _named(numeric(df, ("layer", "value"), "scan"))
    for col in ("src", "tgt", "lang", "direction"):
        sub[col] = sub[col].astype(str) if col in sub.columns else ""
    both = (sub["src"] != "") & (sub["tgt"] != "")
    sub["pair"] = np.where(both, sub["src"] + "\u2013" + sub["tgt"], sub["lang"])
    metric = sub["metric"].astype(str)
    sub["family"] = np.where(metric.str.startswith("retrieval"), "retrieval", metric)
    sub["series"] = [_series(m, d, s, t) for m, d, s, t in
                     zip(metric, sub["direction"], sub["src"], sub["tgt"], strict=True)]
    cells = ["_name", "pair", "family", "series", "metric", "layer"]
    one_row_per(sub, [*cells, "seed"], "scan")
    parts = [_aggregate(g, cells, m) for m, g in sub.groupby("metric", sort=False)]
    out = pd.concat(parts, ignore_index=True)
    out = _sort(out, {"pair": _first(sub["pair"]), "family": _first(sub["family"]),
                      "_name": _models(sub, order), "series": _first(sub["series"])})
    out = out.rename(columns={"_name": "model"})
    check_shared(out, (("pair", "language pair"), ("family", "metric"), ("layer", "layer")), "scan")
    return out

