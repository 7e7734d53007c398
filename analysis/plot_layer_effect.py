"""The ``layer-effect`` figure's numbers, colour scale and panel: the effect of each layer's
realignment by language (``alignfreeze layer-effect``'s ``effects.csv``). Data and drawing
of this one kind, in the layers of :mod:`analysis.plots` (``layer_effect_data`` computes,
``layer_effect_scale`` gives the one diverging scale every panel shares,
``plot_layer_effect`` draws one panel)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .plot_data import Scale, _first, _models, _named, _sort, colour_scale
from .plot_draw import _axes, _rows, heatmap
from .plot_names import (
    Metric,
    PlotInputError,
    change_metric,
    check_shared,
    numeric,
    one_row_per,
    require,
    task_name,
)


def layer_effect_data(df: pd.DataFrame, measure: str | None = None, order=None) -> pd.DataFrame:
    """Effect of each layer's realignment by language (``alignfreeze layer-effect``'s
    ``effects.csv``: ``variant, lang, measure, effect`` [``model, layer, metric, std, ci_low,
    ci_high, n_seeds, interval, reverted_layers``]): ``measure(realigned) - measure(variant
    reverted)``, in percentage points for an accuracy, per (model, measure, variant, lang).

    ``half`` is the half-width of the interval (``ci_high - ci_low`` over 2, drawn units).
    One read-out layer per measure: the highest in the table (a note says so when there
    are several; pick another with ``--where layer=K``). ``measure`` keeps one measure.
    Variants keep the table's order (the study writes emb, block 1..L, halves, all).
    """
    require(df, ("variant", "lang", "measure", "effect"), "layer-effect")
    sub = df.copy()
    if measure is not None:
        have = _first(sub["measure"].astype(str))
        if measure not in have:
            raise PlotInputError(f"the layer-effect figure: no rows with measure {measure!r}; the table has "
                                 f"{', '.join(have)} (choose with --metric)")
        sub = sub[sub["measure"].astype(str) == measure]
    nums = [c for c in ("layer", "effect", "std", "ci_low", "ci_high", "n_seeds") if c in sub.columns]
    sub = _named(numeric(sub, nums, "layer-effect"))
    if "model" not in sub.columns and "strategy" not in sub.columns:
        sub["_name"] = "realigned"
    notes = []
    if "layer" in sub.columns:
        top = sub.groupby("measure")["layer"].transform("max")
        several = sub.groupby("measure")["layer"].nunique()
        for m in several[several > 1].index:
            notes.append(f"{m}: drawn at layer {int(sub.loc[sub['measure'] == m, 'layer'].max())}, the highest of "
                         f"the table's read-out layers (another with --where layer=K)")
        sub = sub[sub["layer"] == top]
    else:
        sub["layer"] = np.nan
    one_row_per(sub, ["_name", "measure", "variant", "lang", "layer"], "layer-effect")
    metric = sub["metric"].astype(str) if "metric" in sub.columns else pd.Series("effect", index=sub.index)
    info = {m: change_metric(m) for m in _first(metric)}
    units = {i.unit for i in info.values()}
    if len(units) > 1:
        raise PlotInputError(f"the layer-effect figure shares one colour scale, but its measures come in different "
                             f"units ({', '.join(sorted(map(repr, units)))}); draw one with --metric MEASURE")
    factor = metric.map({m: i.factor for m, i in info.items()}).astype(float)
    out = sub[["_name", "measure", "variant", "lang", "layer"]].copy()
    out["metric"] = metric.to_numpy()
    out["value"] = sub["effect"].to_numpy() * factor.to_numpy()
    for col in ("std", "ci_low", "ci_high"):
        out[col] = sub[col].to_numpy() * factor.to_numpy() if col in sub.columns else np.nan
    out["half"] = (out["ci_high"] - out["ci_low"]) / 2
    for col in ("reverted_layers", "n_seeds", "interval"):
        out[col] = sub[col].to_numpy() if col in sub.columns else np.nan
    out["unit"] = next(iter(units))
    out = _sort(out, {"_name": _models(sub, order), "measure": _first(sub["measure"]),
                      "variant": _first(sub["variant"]), "lang": _first(sub["lang"])}, then=())
    out = out.rename(columns={"_name": "model"})
    check_shared(out, (("measure", "measure"), ("lang", "language"), ("variant", "variant")), "layer-effect")
    out.attrs["notes"] = notes
    return out


def layer_effect_scale(data: pd.DataFrame, override: tuple[float, float] | None = None) -> Scale:
    """The diverging colour scale centred at 0 that every panel of ``data``
    (:func:`layer_effect_data`) shares: symmetric about 0 over all its effects, in the
    measures' unit (percentage points for accuracies); ``override``: ``(low, high)``."""
    change = change_metric(str(data["metric"].iloc[0]))  # every measure of the figure has this unit
    info = Metric("effect: realigned minus reverted", change.unit, change.factor, None, change.fmt)
    return colour_scale(data["value"], info, policy="symmetric", override=override)


def plot_layer_effect(data: pd.DataFrame, model: str | None = None, measure: str | None = None, ax=None, *,
                      scale: Scale | None = None, colorbar: bool = True):
    """Heatmap variant x language of the effect of each layer's realignment (realigned minus
    reverted, percentage points for an accuracy) on a diverging map centred at 0, with the
    interval's half-width under each value (``layer_effect_data`` output; defaults: the
    first model and measure). Rows bottom-up in the table's order (emb, block 1..L, ...)."""
    ax = _axes(ax, (4.6, 5.0))
    model = data["model"].iloc[0] if model is None else model
    measure = data["measure"].iloc[0] if measure is None else measure
    d = _rows(data, "layer-effect", model=model, measure=measure)
    rows, cols = _first(d["variant"]), _first(d["lang"])
    mat = d.pivot(index="variant", columns="lang", values="value").reindex(index=rows, columns=cols)
    half = d.pivot(index="variant", columns="lang", values="half").reindex(index=rows, columns=cols)
    own = scale or colour_scale(d["value"], change_metric(str(d["metric"].iloc[0])), policy="symmetric")
    heatmap(ax, mat, own, std=half, colorbar=colorbar)
    layer = d["layer"].iloc[0]
    at = f" at layer {int(layer)}" if np.isfinite(layer) and measure != "upos-finetune" else ""
    ax.set_title(f"{model}: {task_name(measure)}{at}" if model else f"{task_name(measure)}{at}")
    ax.set_xlabel("language")
    ax.set_ylabel("reverted to pretrained")
    return ax
