"""Figure of a layer scan (``alignfreeze midalign scan``): retrieval accuracy and CKA per layer.

Kept apart from :mod:`analysis.plots` so that the ``plot scan`` kind can be wired there by
calling :func:`scan_data` then :func:`plot_scan` (compute, then draw; the drawing function
computes nothing).

Table read: ``layer, metric, direction, value`` (+ optional ``src, tgt, model``), as
written by :func:`analysis.layer_scan.scan_rows`.
"""

from __future__ import annotations

import pandas as pd

SCAN_COLUMNS = ("layer", "metric", "direction", "value")


def scan_data(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (pair, layer) with columns ``src->tgt``, ``tgt->src``, ``cka`` (means over
    any repeated rows), ``pair`` = ``src-tgt`` when those columns exist, else ``all``."""
    missing = [c for c in SCAN_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"scan: table lacks column(s) {missing}; has {list(df.columns)}")
    df = df.copy()
    df["pair"] = (df["src"].astype(str) + "-" + df["tgt"].astype(str)) if {"src", "tgt"} <= set(df.columns) else "all"
    keep = df[(df["metric"] == "retrieval_acc") | (df["metric"] == "cka")]
    if keep.empty:
        raise ValueError(f"scan: no retrieval_acc or cka rows; metrics present: {sorted(df['metric'].unique())}")
    keep = keep.assign(column=keep["direction"].where(keep["metric"] == "retrieval_acc", "cka"))
    wide = keep.pivot_table(index=["pair", "layer"], columns="column", values="value", aggfunc="mean")
    return wide.reset_index().sort_values(["pair", "layer"])


def plot_scan(data: pd.DataFrame, ax=None, chosen: int | None = None, title: str = "layer scan"):
    """Draw :func:`scan_data` output: retrieval both directions (solid, dashed) and CKA
    (dotted) against the layer, one colour per language pair; ``chosen`` marks a layer
    (e.g. the one ``--layer auto`` picked). Returns the axes."""
    if ax is None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(7, 4))
    styles = {"src->tgt": "-", "tgt->src": "--", "cka": ":"}
    for k, (pair, sub) in enumerate(data.groupby("pair", sort=True)):
        colour = f"C{k}"
        for col, ls in styles.items():
            if col in sub.columns:
                ax.plot(sub["layer"], sub[col], ls, color=colour, marker="o", markersize=3,
                        label=f"{pair} {'retrieval ' + col if col != 'cka' else 'linear CKA'}")
    if chosen is not None:
        ax.axvline(chosen, color="grey", lw=1)
        ax.annotate(f"K = {chosen}", (chosen, 1.0), textcoords="offset points", xytext=(3, -10), fontsize=8)
    ax.set_xlabel("layer (0 = embeddings, i = output of block i)")
    ax.set_ylabel("accuracy@1 / linear CKA")
    ax.set_ylim(0, 1.05)
    ax.set_title(title)
    ax.legend(fontsize=7)
    return ax
