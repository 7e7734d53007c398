"""Drawing only: each ``plot_*`` takes the output of its ``*_data`` helper
(:mod:`analysis.plot_data`), selects one panel's rows, reshapes them and draws on ``ax``
(a new constrained-layout figure when None) and returns ``ax``. Heatmaps take a
:class:`~analysis.plot_data.Scale` so that several panels can share one; without one they
use the scale of their own rows. Layer 0 (embeddings) is the bottom row; y tick labels
are never rotated.
"""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd

from .plot_data import Scale, colour_scale, policy_for
from .plot_names import PlotInputError, change_metric, language, metric_info, task_name

LAYER = "layer (0 = embeddings)"
STYLES = ("-", "--", ":", "-.")
MISSING = "#d9d9d9"


def _axes(ax, size=(5.0, 3.8)):
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=size, layout="constrained")[1]


def _rows(data: pd.DataFrame, what: str, **where) -> pd.DataFrame:
    d = data
    for col, val in where.items():
        d = d[d[col].astype(str) == str(val)]
    if d.empty:
        asked = ", ".join(f"{k} {v!r}" for k, v in where.items())
        raise PlotInputError(f"the {what} figure: no rows for {asked}")
    return d


def _first(series) -> list:
    return list(dict.fromkeys(series))


def _label(text, width: int = 14) -> str:
    return "\n".join(textwrap.wrap(str(text), width)) or str(text)


def heatmap(ax, mat: pd.DataFrame, scale: Scale, *, std: pd.DataFrame | None = None, annotate: bool | None = None,
            colorbar: bool = True):
    """Draw ``mat`` (rows bottom-up, columns left to right, NaN grey) with ``scale``'s colour
    map and limits; cells annotated when there are at most 150 (with ``±std`` where
    ``std`` is finite). Returns the QuadMesh."""
    import matplotlib
    from matplotlib.colors import Normalize

    vals = mat.to_numpy(dtype=np.float64)
    cmap = matplotlib.colormaps[scale.cmap].with_extremes(bad=MISSING)
    mesh = ax.pcolormesh(np.ma.masked_invalid(vals), cmap=cmap, norm=Normalize(scale.vmin, scale.vmax),
                         edgecolors="white", linewidth=0.5)
    mesh.update_scalarmappable()  # face colours exist before the first draw (tests read them)
    nrow, ncol = vals.shape
    xl = [_label(c) for c in mat.columns]
    ax.set_xticks(np.arange(ncol) + 0.5, xl, rotation=30 if ncol > 3 and max(map(len, xl), default=0) > 6 else 0,
                  ha="right" if ncol > 3 and max(map(len, xl), default=0) > 6 else "center")
    ax.set_yticks(np.arange(nrow) + 0.5, [str(r) for r in mat.index], rotation=0)
    ax.tick_params(length=0)
    if annotate is None:
        annotate = vals.size <= 150
    if annotate:
        rgba = mesh.to_rgba(vals)
        sd = None if std is None else std.reindex(index=mat.index, columns=mat.columns).to_numpy(dtype=np.float64)
        f = ("+" + scale.fmt) if scale.diverging else scale.fmt
        size = 7 if vals.size <= 60 else 6
        for i in range(nrow):
            for j in range(ncol):
                v = vals[i, j]
                if not np.isfinite(v):
                    continue
                text = format(v, f)
                if scale.diverging and float(text) == 0:
                    text = format(0.0, scale.fmt)  # no sign on a zero change
                if sd is not None and np.isfinite(sd[i, j]):
                    text += "\n\u00b1" + format(sd[i, j], scale.fmt)
                lum = 0.299 * rgba[i, j, 0] + 0.587 * rgba[i, j, 1] + 0.114 * rgba[i, j, 2]
                ax.text(j + 0.5, i + 0.5, text, ha="center", va="center", fontsize=size,
                        color="white" if lum < 0.5 else "black")
    if colorbar:
        ax.figure.colorbar(mesh, ax=ax, label=scale.label)
    return mesh


def _own_scale(values, metric: str, policy: str, cmap: str) -> Scale:
    return colour_scale(values, metric_info(metric), policy=policy_for(metric, policy), cmap=cmap)


def plot_drift(data: pd.DataFrame, lang: str, ax=None, *, scale: Scale | None = None, colorbar: bool = True,
               by: str = "lang"):
    """Heatmap layer x model of one language's drift (``drift_data`` output); with
    ``by="model"``, ``lang`` names a model and the heatmap is layer x language."""
    if by not in ("lang", "model"):
        raise PlotInputError(f"the drift figure: panels by {by!r}; expected lang or model")
    ax = _axes(ax)
    other = "model" if by == "lang" else "lang"
    d = _rows(data, "drift", **{by: lang})
    mat = d.pivot(index="layer", columns=other, values="value").reindex(columns=_first(d[other]))
    metric = str(d["metric"].iloc[0])
    heatmap(ax, mat, scale or _own_scale(d["value"], metric, "range", "viridis"), colorbar=colorbar)
    ax.set_title(language(lang) if by == "lang" else str(lang))
    ax.set_xlabel("model" if by == "lang" else "language")
    ax.set_ylabel(LAYER)
    return ax


def plot_probe(data: pd.DataFrame, model: str, task: str, ax=None, *, scale: Scale | None = None,
               colorbar: bool = True):
    """Heatmap layer x language of a probe metric, mean over seeds with ``±std`` in each
    cell where there are two seeds or more (``probe_data`` output)."""
    ax = _axes(ax)
    d = _rows(data, "probe", model=model, task=task)
    cols = _first(d["lang"])
    mat = d.pivot(index="layer", columns="lang", values="value").reindex(columns=cols)
    std = d.pivot(index="layer", columns="lang", values="std").reindex(columns=cols)
    metric = str(d["metric"].iloc[0])
    heatmap(ax, mat, scale or _own_scale(d["value"], metric, "bounds", "viridis"), std=std, colorbar=colorbar)
    ax.set_title(f"{model}: {task_name(task)}")
    ax.set_xlabel("language")
    ax.set_ylabel(LAYER)
    return ax


def plot_forgetting(data: pd.DataFrame, model: str, task: str, ax=None, *, scale: Scale | None = None,
                    colorbar: bool = True):
    """Heatmap layer x language of the change versus the baseline (percentage points for an
    accuracy), on a diverging map centred at 0 (``forgetting_data`` output)."""
    ax = _axes(ax)
    d = _rows(data, "forgetting", model=model, task=task)
    mat = d.pivot(index="layer", columns="lang", values="change").reindex(columns=_first(d["lang"]))
    own = scale or colour_scale(d["change"], change_metric(str(d["metric"].iloc[0])), policy="symmetric")
    heatmap(ax, mat, own, colorbar=colorbar)
    ax.set_title(f"{model} vs {d['baseline_model'].iloc[0]}: {task_name(task)}")
    ax.set_xlabel("language")
    ax.set_ylabel(LAYER)
    return ax


def plot_cka(data: pd.DataFrame, pair: tuple[str, str] | None = None, ax=None, *, scale: Scale | None = None,
             colorbar: bool = True):
    """Heatmap layer x layer of linear CKA for one pair of models (``cka_data`` output;
    ``pair`` defaults to the first)."""
    ax = _axes(ax, (4.6, 3.8))
    a, b = pair or (data["model_a"].iloc[0], data["model_b"].iloc[0])
    d = _rows(data, "cka", model_a=a, model_b=b)
    mat = d.pivot(index="layer_a", columns="layer_b", values="cka")
    heatmap(ax, mat, scale or _own_scale(d["cka"], "cka", "bounds", "magma"), annotate=mat.size <= 100,
            colorbar=colorbar)
    ax.set_title(f"{a}: layer x layer" if a == b else f"{a} vs {b}")
    ax.set_xlabel(f"layer of {b}" if b else "layer (model B)")
    ax.set_ylabel(f"layer of {a}" if a else "layer (model A)")
    return ax


def plot_attribution(data: pd.DataFrame, model: str | None = None, ax=None, *, scale: Scale | None = None,
                     colorbar: bool = True):
    """Heatmap layer x language of the mean share of |attribution| per layer, in %
    (``attribution_data`` output; ``model`` defaults to the first)."""
    ax = _axes(ax, (4.6, 3.8))
    model = data["model"].iloc[0] if model is None else model
    d = _rows(data, "attribution", model=model)
    mat = d.pivot(index="layer", columns="lang", values="value").reindex(columns=_first(d["lang"]))
    heatmap(ax, mat, scale or _own_scale(d["value"], "share", "zero", "viridis"), colorbar=colorbar)
    ax.set_title(f"{model}: attribution per layer" if model else "attribution per layer")
    ax.set_xlabel("language")
    ax.set_ylabel(LAYER)
    return ax


def plot_typology(data: pd.DataFrame, feature: str | None = None, ax=None):
    """Per-language gain against URIEL distance for one feature set, with the least-squares
    line and Pearson's r and p (``typology_data`` output; ``feature`` defaults to the first)."""
    ax = _axes(ax, (4.6, 3.8))
    feature = data["feature"].iloc[0] if feature is None else feature
    d = _rows(data, "typology", feature=feature)
    ax.scatter(d["distance"], d["gain"], s=22, color="C0", zorder=3)
    for r in d.itertuples():
        ax.annotate(str(r.lang), (r.distance, r.gain), fontsize=7, xytext=(3, 3), textcoords="offset points")
    fit = d.iloc[0]
    if np.isfinite(fit["slope"]):
        x = np.array([d["distance"].min(), d["distance"].max()])
        ax.plot(x, fit["intercept"] + fit["slope"] * x, color="C3", lw=1.2, zorder=2, label="least squares")
    r = f"r = {fit['pearson_r']:.2f}, p = {fit['pearson_p']:.2g}" if np.isfinite(fit["pearson_r"]) \
        else "r: n/a (fewer than 3 languages or constant data)"
    name = f"{feature} distance" if feature != "all" else "typological distance"
    ax.set_title(f"{name}\n{r}, n = {int(fit['n'])}", fontsize=9)
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xlabel(f"URIEL {feature if feature != 'all' else ''} distance to the training language".replace("  ", " "))
    ax.set_ylabel("gain (accuracy points, as given)")
    return ax


def model_colours(names) -> dict:
    """One colour per model, the same in every panel of a figure (tab10, in display order)."""
    return {n: f"C{i % 10}" for i, n in enumerate(_first(names))}


def _lines(ax, d: pd.DataFrame, series: str, colours: dict | None):
    colours = colours or model_colours(d["model"])
    styles = {s: STYLES[i % len(STYLES)] for i, s in enumerate(_first(d[series]))}
    many = len(_first(d["model"])) > 1
    for (model, ser), g in d.groupby(["model", series], sort=False):
        g = g.sort_values("layer")
        label = f"{model}, {ser}" if many and ser else (ser or model)
        ax.plot(g["layer"], g["value"], styles[ser], color=colours[model], marker="o", ms=3, lw=1.3, label=label)
        if g["std"].notna().any():
            ax.fill_between(g["layer"], g["value"] - g["std"], g["value"] + g["std"], color=colours[model],
                            alpha=0.15, lw=0)
    layers = sorted(_first(d["layer"]))
    if len(layers) <= 16:
        ax.set_xticks(layers)
    ax.set_xlabel(LAYER)
    ax.grid(alpha=0.3)


def plot_retrieval(data: pd.DataFrame, pair: str | None = None, task: str | None = None, ax=None, *,
                   colours: dict | None = None, legend: bool = True, mark: int | None = None):
    """Retrieval accuracy (%) by layer, one line per model and direction (band: ±std over
    seeds), for one language pair and task (``retrieval_data`` output; defaults: the first);
    ``mark``: a layer to mark (:func:`mark_layer`)."""
    ax = _axes(ax)
    pair = data["pair"].iloc[0] if pair is None else pair
    task = data["task"].iloc[0] if task is None else task
    d = _rows(data, "retrieval", pair=pair, task=task)
    _lines(ax, d, "direction", colours)
    if mark is not None:
        mark_layer(ax, mark)
    setting = d["setting"].iloc[0]
    ax.set_title(f"{task_name(task)} {pair}".strip() + (f"\n({setting})" if setting else ""))
    ax.set_ylabel(metric_info(str(d["metric"].iloc[0])).axis())
    if legend:
        ax.legend(fontsize=7)
    return ax


def mark_layer(ax, layer) -> None:
    """A vertical line at ``layer`` labelled ``K = layer`` (e.g. the alignment layer chosen)."""
    ax.axvline(layer, color="grey", lw=1, ls="-", zorder=1)
    ax.annotate(f"K = {layer}", (layer, 1.0), xycoords=("data", "axes fraction"), xytext=(3, -10),
                textcoords="offset points", fontsize=8, color="dimgrey")


def plot_scan(data: pd.DataFrame, pair: str | None = None, family: str | None = None, ax=None, *,
              colours: dict | None = None, legend: bool = True, mark: int | None = None):
    """One panel of a decoder layer scan: retrieval directions (%) or CKA by layer, one line
    per model and series (band: ±std over seeds) (``scan_data`` output; defaults: the first);
    ``mark``: a layer to mark (:func:`mark_layer`)."""
    ax = _axes(ax)
    pair = data["pair"].iloc[0] if pair is None else pair
    family = data["family"].iloc[0] if family is None else family
    d = _rows(data, "scan", pair=pair, family=family)
    _lines(ax, d, "series", colours)
    if mark is not None:
        mark_layer(ax, mark)
    info = metric_info(str(d["metric"].iloc[0]))
    ax.set_title(f"{'retrieval' if family == 'retrieval' else info.label} {pair}".strip())
    ax.set_ylabel("retrieval accuracy@1 (%)" if family == "retrieval" else info.axis())
    if legend:
        ax.legend(fontsize=7)
    return ax

