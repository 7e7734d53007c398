"""The ``drift-lines`` figure's numbers and its panel: drift by layer, one line per model,
with the band the table supports. Data and drawing of this one kind, in the layers of
:mod:`analysis.plots` (``drift_lines_data`` computes, ``plot_drift_lines`` draws one panel)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .plot_data import _aggregate, _first, _models, _named, _sort
from .plot_draw import LAYER, _axes, _rows, model_colours
from .plot_names import (
    check_shared,
    language,
    metric_info,
    numeric,
    one_row_per,
    require,
    select_metric,
)


def drift_lines_data(df: pd.DataFrame, metric: str | None = None, order=None) -> pd.DataFrame:
    """Drift by layer with its spread, per (model, lang, layer), for line figures: one metric
    (default ``cka``). ``low``/``high`` is the band drawn around ``value``: mean ± std over
    seeds where a cell has two seeds or more (seeds are the replicates, and their
    per-seed intervals are then not drawn: a note says so), else the table's own interval
    ``ci_low``..``ci_high`` (``alignfreeze drift``: over sentences), else none. ``band``
    says which, per row. Columns ``model, lang, layer, value, low, high, band, std, n_seeds,
    metric, unit`` (+ ``base``)."""
    require(df, ("model", "lang", "layer", "metric", "value"), "drift-lines")
    sub, metric = select_metric(df, metric, "cka", "drift-lines")
    cis = [c for c in ("ci_low", "ci_high") if c in sub.columns]
    sub = _named(numeric(sub, ("layer", "value", *cis), "drift-lines"))
    one_row_per(sub, ["_name", "lang", "layer", "metric", "seed"], "drift-lines")
    keys = ["_name", "lang", "layer"] + (["base"] if "base" in sub.columns else [])
    out = _aggregate(sub, keys, metric)
    info = metric_info(metric)
    if len(cis) == 2:
        ci = sub.groupby(keys, sort=False, dropna=False)[cis].first().reset_index()
        out = out.merge(ci, on=keys, how="left")
    else:
        out["ci_low"] = out["ci_high"] = np.nan
    seeds = out["n_seeds"] >= 2
    has_ci = ~seeds & out["ci_low"].notna() & out["ci_high"].notna()
    out["low"] = np.where(seeds, out["value"] - out["std"], np.where(has_ci, out["ci_low"] * info.factor, np.nan))
    out["high"] = np.where(seeds, out["value"] + out["std"], np.where(has_ci, out["ci_high"] * info.factor, np.nan))
    out["band"] = np.where(seeds, "std over seeds", np.where(has_ci, "interval", ""))
    notes = []
    if seeds.any() and len(cis) == 2 and sub["ci_low"].notna().any():
        notes.append("Cells with two seeds or more show mean \u00b1 std over seeds; their per-seed intervals "
                     "over sentences are in the table, not drawn.")
    out = out.drop(columns=["ci_low", "ci_high"])
    out = _sort(out, {"_name": _models(sub, order), "lang": _first(sub["lang"])})
    out = out.rename(columns={"_name": "model"})
    check_shared(out, (("lang", "language"), ("layer", "layer")), "drift-lines")
    out.attrs["notes"] = notes
    return out


def plot_drift_lines(data: pd.DataFrame, lang: str | None = None, ax=None, *, colours: dict | None = None,
                     legend: bool = True):
    """Drift of one language by layer, one line per model with its band (``low``..``high``:
    the table's interval, or ±std over seeds) (``drift_lines_data`` output; ``lang``
    defaults to the first)."""
    ax = _axes(ax)
    lang = data["lang"].iloc[0] if lang is None else lang
    d = _rows(data, "drift-lines", lang=lang)
    colours = colours or model_colours(d["model"])
    for model, g in d.groupby("model", sort=False):
        g = g.sort_values("layer")
        ax.plot(g["layer"], g["value"], "-", color=colours[model], marker="o", ms=3, lw=1.3, label=model)
        band = g["low"].notna() & g["high"].notna()
        if band.any():
            ax.fill_between(g["layer"][band], g["low"][band], g["high"][band], color=colours[model], alpha=0.18,
                            lw=0)
    layers = sorted(_first(d["layer"]))
    if len(layers) <= 16:
        ax.set_xticks(layers)
    ax.set_xlabel(LAYER)
    ax.grid(alpha=0.3)
    ax.set_title(language(lang))
    ax.set_ylabel(metric_info(str(d["metric"].iloc[0])).axis())
    if legend:
        ax.legend(fontsize=7)
    return ax
