"""Figures from tidy tables only (seaborn, matplotlib Agg backend).

Each figure has a ``*_data`` compute helper (tidy table -> the matrix or points drawn) and
a ``plot_*`` function that only draws (optional ``ax``, returns it). :func:`save_figure`
writes PNG, SVG and the numbers behind the figure as CSV next to them.

Tables read:

- drift: ``model, lang, layer, metric, value`` (``alignfreeze drift``)
- probe / forgetting: ``model, lang, task, layer, seed, metric, value`` (``alignfreeze probe``)
- cka: ``layer_a, layer_b, cka`` (``alignfreeze cka``)
- typology: ``lang, gain, distance[, feature]`` (:func:`analysis.typology.gain_vs_distance`)
- attribution: ``lang, layer, share`` (:func:`analysis.attribution.layer_attribution`)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

KINDS = ("drift", "probe", "forgetting", "cka", "typology", "attribution")

UNITS = {
    "cka": "linear CKA (0-1)", "cka_debiased": "debiased CKA", "cos_dist": "mean cosine distance",
    "rel_l2": "mean relative L2 change", "accuracy": "accuracy", "share": "share of |attribution|",
}


def _mpl():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _require(df: pd.DataFrame, cols, what: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(f"{what}: table lacks column(s) {missing}; has {list(df.columns)}")


def _metric(df: pd.DataFrame, metric: str | None, default: str, what: str) -> tuple[pd.DataFrame, str]:
    metric = metric or default
    sub = df[df["metric"] == metric]
    if sub.empty:
        raise ValueError(f"{what}: no rows with metric {metric!r}; metrics present: {sorted(df['metric'].unique())}")
    return sub, metric


# ----------------------------------------------------------------------------- compute
def drift_data(df: pd.DataFrame, metric: str | None = None) -> pd.DataFrame:
    """Mean ``value`` per (lang, layer, model) of one drift metric (default cka)."""
    _require(df, ("model", "lang", "layer", "metric", "value"), "drift")
    sub, metric = _metric(df, metric, "cka", "drift")
    out = sub.groupby(["lang", "layer", "model"], as_index=False)["value"].mean()
    out["metric"] = metric
    return out


def probe_data(df: pd.DataFrame, metric: str | None = None) -> pd.DataFrame:
    """Mean and std over seeds of a probe metric per (model, task, lang, layer)."""
    _require(df, ("model", "lang", "task", "layer", "seed", "metric", "value"), "probe")
    sub, metric = _metric(df, metric, "accuracy", "probe")
    if "split" in sub.columns:
        sub = sub[sub["split"] != "train"]
    g = sub.groupby(["model", "task", "lang", "layer"])["value"]
    out = g.mean().rename("value").to_frame().join(g.std(ddof=0).rename("std")).reset_index()
    out["metric"] = metric
    return out


def forgetting_data(df: pd.DataFrame, baseline: str | None = None, metric: str | None = None) -> pd.DataFrame:
    """Change versus the pretrained model: ``value(model) - value(baseline)`` per task, lang, layer
    (means over seeds). ``baseline`` defaults to the first model in the table."""
    m = probe_data(df, metric)
    models = list(dict.fromkeys(m["model"]))
    baseline = baseline or models[0]
    if baseline not in models:
        raise ValueError(f"forgetting: baseline {baseline!r} not in the table's models {models}")
    if len(models) < 2:
        raise ValueError("forgetting: the table has one model only; need the pretrained model and another")
    base = m[m["model"] == baseline].set_index(["task", "lang", "layer"])["value"]
    other = m[m["model"] != baseline].join(base.rename("baseline"), on=["task", "lang", "layer"])
    other["change"] = other["value"] - other["baseline"]
    other["baseline_model"] = baseline
    return other.dropna(subset=["baseline"]).reset_index(drop=True)


def cka_data(df: pd.DataFrame) -> pd.DataFrame:
    """Layer x layer CKA matrix (rows layer_a, columns layer_b)."""
    _require(df, ("layer_a", "layer_b", "cka"), "cka")
    return df.pivot_table(index="layer_a", columns="layer_b", values="cka", aggfunc="mean")


# -------------------------------------------------------------------------------- draw
def _heatmap(mat: pd.DataFrame, ax, label: str, title: str, *, cmap="viridis", center=None, vmin=None, vmax=None,
             fmt: str = ".2f"):
    import seaborn as sns

    annot = mat.size <= 200
    sns.heatmap(mat, ax=ax, cmap=cmap, center=center, vmin=vmin, vmax=vmax, annot=annot, fmt=fmt,
                annot_kws={"fontsize": 7}, cbar_kws={"label": label})
    ax.set_title(title)
    return ax


def plot_drift(data: pd.DataFrame, lang: str, ax=None):
    """Heatmap layer x checkpoint of one language's drift metric (``drift_data`` output)."""
    plt = _mpl()
    ax = ax or plt.subplots(figsize=(6, 4))[1]
    d = data[data["lang"] == lang]
    mat = d.pivot_table(index="layer", columns="model", values="value")
    metric = d["metric"].iloc[0]
    # colours span the data, not 0-1: realignment moves CKA by hundredths, which a fixed
    # scale paints as one flat colour
    ax = _heatmap(mat, ax, UNITS.get(metric, metric), f"{lang}: {metric}", fmt=".3f")
    ax.set_xlabel("checkpoint / strategy")
    ax.set_ylabel("layer (0 = embeddings)")
    return ax


def plot_probe(data: pd.DataFrame, model: str, task: str, ax=None):
    """Heatmap layer x language of probe accuracy (``probe_data`` output)."""
    plt = _mpl()
    ax = ax or plt.subplots(figsize=(6, 4))[1]
    d = data[(data["model"] == model) & (data["task"] == task)]
    mat = d.pivot_table(index="layer", columns="lang", values="value")
    metric = d["metric"].iloc[0]
    ax = _heatmap(mat, ax, UNITS.get(metric, metric) + " (mean over seeds)", f"{model}: {task}", vmin=0, vmax=1)
    ax.set_xlabel("language")
    ax.set_ylabel("layer (0 = embeddings)")
    return ax


def plot_forgetting(data: pd.DataFrame, model: str, task: str, ax=None):
    """Heatmap layer x language of the change versus the baseline (``forgetting_data`` output)."""
    plt = _mpl()
    ax = ax or plt.subplots(figsize=(6, 4))[1]
    d = data[(data["model"] == model) & (data["task"] == task)]
    mat = d.pivot_table(index="layer", columns="lang", values="change")
    lim = float(np.nanmax(np.abs(mat.values))) if mat.size else 1.0
    ax = _heatmap(mat, ax, f"change in {d['metric'].iloc[0]} vs {d['baseline_model'].iloc[0]}",
                  f"{model}: {task}", cmap="RdBu", center=0, vmin=-lim, vmax=lim)
    ax.set_xlabel("language")
    ax.set_ylabel("layer (0 = embeddings)")
    return ax


def plot_cka(mat: pd.DataFrame, ax=None, title: str = "layer x layer CKA"):
    """Heatmap of a ``cka_data`` matrix."""
    plt = _mpl()
    ax = ax or plt.subplots(figsize=(5, 4))[1]
    ax = _heatmap(mat, ax, UNITS["cka"], title, vmin=0, vmax=1, cmap="magma")
    ax.set_xlabel("layer (model B)")
    ax.set_ylabel("layer (model A)")
    return ax


def plot_typology(data: pd.DataFrame, ax=None):
    """Scatter of per-language gain against typological distance (one colour per feature set)."""
    import seaborn as sns

    plt = _mpl()
    _require(data, ("lang", "gain", "distance"), "typology")
    ax = ax or plt.subplots(figsize=(5, 4))[1]
    hue = "feature" if "feature" in data.columns else None
    sns.scatterplot(data=data, x="distance", y="gain", hue=hue, ax=ax)
    for r in data.itertuples():
        ax.annotate(r.lang, (r.distance, r.gain), fontsize=7, xytext=(2, 2), textcoords="offset points")
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xlabel("URIEL distance to the training language (0-1)")
    ax.set_ylabel("gain (accuracy points)")
    return ax


def plot_attribution(data: pd.DataFrame, ax=None):
    """Heatmap layer x language of the mean share of |attribution| per layer."""
    plt = _mpl()
    _require(data, ("lang", "layer", "share"), "attribution")
    ax = ax or plt.subplots(figsize=(5, 4))[1]
    mat = data.pivot_table(index="layer", columns="lang", values="share")
    ax = _heatmap(mat, ax, UNITS["share"], "per-layer attribution", vmin=0)
    ax.set_xlabel("language")
    ax.set_ylabel("layer (0 = embeddings)")
    return ax


# -------------------------------------------------------------------------------- save
def save_figure(fig, data: pd.DataFrame, out: str | Path) -> list[Path]:
    """Write ``out``.png, .svg and the numbers (``data``) as .csv; returns the paths."""
    from core.io import atomic_write_text

    stem = Path(out)
    stem = stem.with_suffix("") if stem.suffix.lower() in (".png", ".svg", ".csv", ".pdf") else stem
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in ("png", "svg"):
        p = stem.parent / f"{stem.name}.{ext}"
        tmp = stem.parent / f".{stem.name}.tmp.{ext}"
        fig.savefig(tmp, dpi=150, bbox_inches="tight", format=ext)
        tmp.replace(p)
        paths.append(p)
    csv = stem.parent / f"{stem.name}.csv"
    atomic_write_text(csv, data.to_csv(index=isinstance(data.index, pd.Index) and data.index.name is not None))
    paths.append(csv)
    _mpl().close(fig)
    return paths


def _grid(n: int, w: float = 5.0, h: float = 4.0):
    plt = _mpl()
    cols = min(n, 3)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(w * cols, h * rows), squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    return fig, axes.ravel()


def _read(inputs) -> pd.DataFrame:
    frames = []
    for p in inputs:
        if not Path(p).is_file():
            raise FileNotFoundError(f"{p}: no such table")
        frames.append(pd.read_csv(p))
    df = pd.concat(frames, ignore_index=True)
    if df.empty:
        raise ValueError(f"{', '.join(map(str, inputs))}: empty table")
    return df


def plot_from_tables(kind: str, inputs, out, *, metric: str | None = None, baseline: str | None = None) -> list[Path]:
    """Read tidy CSV(s), compute the figure's numbers, draw and save (PNG, SVG, CSV)."""
    if kind not in KINDS:
        raise ValueError(f"unknown plot kind {kind!r}: expected one of {', '.join(KINDS)}")
    df = _read(list(inputs) if not isinstance(inputs, str | Path) else [inputs])
    if kind == "drift":
        data = drift_data(df, metric)
        langs = sorted(data["lang"].unique())
        fig, axes = _grid(len(langs))
        for ax, lang in zip(axes, langs, strict=False):
            plot_drift(data, lang, ax=ax)
    elif kind in ("probe", "forgetting"):
        data = probe_data(df, metric) if kind == "probe" else forgetting_data(df, baseline, metric)
        keys = list(dict.fromkeys(zip(data["model"], data["task"], strict=True)))
        fig, axes = _grid(len(keys))
        draw = plot_probe if kind == "probe" else plot_forgetting
        for ax, (m, t) in zip(axes, keys, strict=False):
            draw(data, m, t, ax=ax)
    elif kind == "cka":
        data = cka_data(df)
        fig, axes = _grid(1)
        plot_cka(data, ax=axes[0])
    elif kind == "typology":
        data = df
        fig, axes = _grid(1)
        plot_typology(data, ax=axes[0])
    else:
        data = df
        fig, axes = _grid(1)
        plot_attribution(data, ax=axes[0])
    fig.tight_layout()
    return save_figure(fig, data, out)
