"""Figures from tidy tables only (matplotlib, no pyplot state on the command line).

Three layers, each in its own module:

- :mod:`analysis.plot_data`: ``*_data`` helpers, table -> the numbers drawn (validation,
  display names, protocol order, means and stds over seeds, % units) and
  :func:`~analysis.plot_data.colour_scale`;
- :mod:`analysis.plot_draw`: ``plot_*`` functions that only draw one panel (optional
  ``ax``, returned);
- :mod:`analysis.plot_drift_lines`: both for the ``drift-lines`` kind (its own module);
- this module: :func:`figure` builds a whole multi-panel figure (one shared colour scale,
  printed on it; panels in the protocol's order; real titles) and :func:`plot_from_tables`
  reads CSV tables and writes PNG, SVG, PDF and the CSV of the numbers drawn.

Tables read (KIND: columns; optional ones in brackets):

- ``drift``: ``model, lang, layer, metric, value`` [``base, treebank``] (``alignfreeze drift``)
- ``drift-lines``: the same table, drawn by layer with its interval band (``ci_low,
  ci_high``; ±std over ``seed`` where a cell has several)
- ``probe`` / ``forgetting``: ``model, lang, task, layer, metric, value`` [``seed, split,
  train_lang, file``] (``alignfreeze probe``)
- ``cka``: ``layer_a, layer_b, cka`` [``model_a, model_b, n_words``] (``alignfreeze cka``)
- ``typology``: ``lang, gain, distance`` [``feature``] (``alignfreeze typology``)
- ``attribution``: ``lang, layer, share`` [``n_sentences``] (``alignfreeze attribution``)
- ``retrieval``: ``model, layer, task, direction, metric, value`` [``src, tgt, candidates,
  score, centred, seed``] (``alignfreeze align-eval``)
- ``scan``: ``layer, metric, value`` [``model, src, tgt, lang, direction, seed``]
  (``alignfreeze midalign scan``: ``retrieval_acc`` per direction, ``retrieval_mean``, ``cka``)
- ``layer-effect``: ``variant, lang, measure, effect`` [``model, layer, metric, std, ci_low,
  ci_high, n_seeds, interval``] (``alignfreeze layer-effect``'s ``effects.csv``)

Any table may carry ``display_name`` (or ``strategy`` and ``seed``) to name its models.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

from .plot_data import (
    attribution_data,
    cka_data,
    colour_scale,
    drift_data,
    forgetting_data,
    policy_for,
    probe_data,
    retrieval_data,
    scan_data,
    typology_data,
)
from .plot_draw import (
    model_colours,
    plot_attribution,
    plot_cka,
    plot_drift,
    plot_forgetting,
    plot_probe,
    plot_retrieval,
    plot_scan,
    plot_typology,
)
from .plot_drift_lines import drift_lines_data, plot_drift_lines
from .plot_layer_effect import layer_effect_data, layer_effect_scale, plot_layer_effect
from .plot_names import PlotInputError, change_metric, files_text, metric_info, task_name

__all__ = [
    "KINDS", "FORMATS", "PlotInputError", "figure", "plot_from_tables", "save_figure", "read_tables", "select_rows",
    "drift_data", "probe_data", "forgetting_data", "cka_data", "typology_data", "attribution_data",
    "retrieval_data", "scan_data", "layer_effect_data", "drift_lines_data", "plot_drift", "plot_drift_lines",
    "plot_probe", "plot_forgetting", "plot_cka", "plot_typology", "plot_attribution", "plot_retrieval", "plot_scan",
    "plot_layer_effect",
]

KINDS = ("drift", "drift-lines", "probe", "forgetting", "cka", "typology", "attribution", "retrieval", "scan",
         "layer-effect")
FORMATS = ("png", "svg", "pdf")
PANEL = (4.2, 3.6)


def _panels(n: int, size, panel=PANEL, *, sharey: bool = False):
    """A constrained-layout Figure (not registered with pyplot) with ``n`` axes."""
    from matplotlib.figure import Figure

    cols = n if n <= 4 else 3
    rows = int(np.ceil(n / cols))
    fig = Figure(figsize=size or (panel[0] * cols + 1.0, panel[1] * rows + 0.8), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False, sharey=sharey).ravel()
    for ax in axes[n:]:
        fig.delaxes(ax)
    return fig, list(axes[:n])


def _seeds(table: pd.DataFrame, data: pd.DataFrame) -> str:
    """How many seeds each drawn number averages (only for a table that has seeds)."""
    if "seed" not in table.columns or "n_seeds" not in data.columns or not len(data):
        return ""
    lo, hi = int(data["n_seeds"].min()), int(data["n_seeds"].max())
    if hi < 2:
        return "one seed (no spread)"
    return f"mean \u00b1 std over {lo}-{hi} seeds" if lo != hi else f"mean \u00b1 std over {hi} seeds"


def _join(*parts) -> str:
    return "; ".join(p for p in parts if p)


def _wrap(fig, text: str, fontsize: float) -> str:
    """``text`` broken into lines that fit the figure's width."""
    return textwrap.fill(text, max(30, int(fig.get_figwidth() * 72 / (fontsize * 0.55))))


def _shared(fig, axes, sc) -> str:
    """One colour bar for every panel; returns the sentence that states the scale."""
    meshes = [ax.collections[0] for ax in axes]
    fig.colorbar(meshes[0], ax=axes, label=sc.label, shrink=0.9 if len(axes) > 1 else 1.0)
    who = f"Colour scale shared by the {len(axes)} panels" if len(axes) > 1 else "Colour scale"
    grey = any(np.ma.is_masked(m.get_array()) and np.ma.getmaskarray(m.get_array()).any() for m in meshes)
    return f"{who}{' (given)' if sc.given else ''}: {sc.text()}." + (" Grey: no value." if grey else "")


def _heatmaps(keys, draw, sc, size, panel=PANEL):
    fig, axes = _panels(len(keys), size, panel)
    for ax, key in zip(axes, keys, strict=True):
        draw(key, ax, sc)
    return fig, axes


def _fig_drift(table, o):
    data = drift_data(table, o["metric"], o["order"])
    metric = str(data["metric"].iloc[0])
    info = metric_info(metric)
    sc = colour_scale(data["value"], info, policy=policy_for(metric, "range"), cmap="viridis", override=o["scale"])
    by = o.get("panels") or "lang"
    keys = list(dict.fromkeys(data[by])) if by in data.columns else []
    fig, axes = _heatmaps(keys, lambda k, ax, s: plot_drift(data, k, ax, scale=s, colorbar=False, by=by), sc,
                          o["size"])
    base = ", ".join(map(str, dict.fromkeys(data["base"]))) if "base" in data.columns else "its base model"
    title = _join(f"{info.label[0].upper()}{info.label[1:]} of each model against {base}, per layer",
                  files_text(table, "treebank"))
    return fig, axes, data, sc, title


def _fig_drift_lines(table, o):
    data = drift_lines_data(table, o["metric"], o["order"])
    info = metric_info(str(data["metric"].iloc[0]))
    langs = list(dict.fromkeys(data["lang"]))
    fig, axes = _line_figure(data, langs, lambda k, ax, c: plot_drift_lines(data, k, ax, colours=c, legend=False),
                             o, lambda k: None)
    base = ", ".join(map(str, dict.fromkeys(data["base"]))) if "base" in data.columns else "its base model"
    bands = set(data["band"])
    band = _join("band: the table's interval over sentences" if "interval" in bands else "",
                 "band: \u00b1 std over seeds" if "std over seeds" in bands else "",
                 "no interval in the table" if bands == {""} else "")
    title = _join(f"{info.label[0].upper()}{info.label[1:]} of each model against {base}, by layer", band,
                  files_text(table, "treebank"))
    return fig, axes, data, None, title


def _fig_probe(table, o):
    data = probe_data(table, o["metric"], o["order"])
    metric = str(data["metric"].iloc[0])
    info = metric_info(metric)
    sc = colour_scale(data["value"], info, policy=policy_for(metric, "bounds"), cmap="viridis", override=o["scale"])
    keys = list(dict.fromkeys(zip(data["model"], data["task"], strict=True)))
    fig, axes = _heatmaps(keys, lambda k, ax, s: plot_probe(data, *k, ax, scale=s, colorbar=False), sc, o["size"])
    tasks = ", ".join(task_name(t) for t in dict.fromkeys(data["task"]))
    trained = ""
    if "train_lang" in table.columns and table["train_lang"].notna().any():
        trained = "trained on " + ", ".join(map(str, dict.fromkeys(table["train_lang"].dropna())))
    title = _join(f"{tasks} probe {info.label} by layer and language", trained, _seeds(table, data),
                  files_text(table, "file"))
    if not any(ax.texts for ax in axes):
        data.attrs["notes"] = ["Too many cells to write each mean \u00b1 std on the figure: they are in the CSV."]
    return fig, axes, data, sc, title


def _fig_forgetting(table, o):
    data = forgetting_data(table, o["baseline"], o["metric"], o["order"])
    info = change_metric(str(data["metric"].iloc[0]))
    sc = colour_scale(data["change"], info, policy="symmetric", override=o["scale"])
    keys = list(dict.fromkeys(zip(data["model"], data["task"], strict=True)))
    fig, axes = _heatmaps(keys, lambda k, ax, s: plot_forgetting(data, *k, ax, scale=s, colorbar=False), sc,
                          o["size"])
    tasks = ", ".join(task_name(t) for t in dict.fromkeys(data["task"]))
    base = data["baseline_model"].iloc[0]
    title = _join(f"Change in {tasks} probe {metric_info(str(data['metric'].iloc[0])).label} versus {base} "
                  f"({info.unit + '; ' if info.unit else ''}red: lost, blue: gained)", _seeds(table, data))
    return fig, axes, data, sc, title


def _fig_cka(table, o):
    data = cka_data(table)
    sc = colour_scale(data["cka"], metric_info("cka"), policy="bounds", cmap="magma", override=o["scale"])
    keys = list(dict.fromkeys(zip(data["model_a"], data["model_b"], strict=True)))
    fig, axes = _heatmaps(keys, lambda k, ax, s: plot_cka(data, k, ax, scale=s, colorbar=False), sc, o["size"])
    words = f"on {int(table['n_words'].max())} words" if "n_words" in table.columns else ""
    return fig, axes, data, sc, _join("Linear CKA between layers", words)


def _fig_attribution(table, o):
    data = attribution_data(table, o["order"])
    sc = colour_scale(data["value"], metric_info("share"), policy="zero", cmap="viridis", override=o["scale"])
    keys = list(dict.fromkeys(data["model"]))
    fig, axes = _heatmaps(keys, lambda k, ax, s: plot_attribution(data, k, ax, scale=s, colorbar=False), sc,
                          o["size"])
    n = f"mean over {int(data['n_sentences'].max())} sentences per language" if "n_sentences" in data else ""
    return fig, axes, data, sc, _join("Share of |attribution| per layer (integrated gradients of the predicted "
                                      "tags)", n)


def _fig_typology(table, o):
    data = typology_data(table)
    feats = list(dict.fromkeys(data["feature"]))
    fig, axes = _panels(len(feats), o["size"], sharey=True)
    for ax, f in zip(axes, feats, strict=True):
        plot_typology(data, f, ax)
    if o["scale"]:
        axes[0].set_ylim(*o["scale"])
    return fig, axes, data, None, "Gain of each language against its typological distance to the training language"


def _line_figure(data, keys, draw, o, ylim):
    colours = model_colours(data["model"])
    fig, axes = _panels(len(keys), o["size"])
    for ax, key in zip(axes, keys, strict=True):
        draw(key, ax, colours)
        lim = o["scale"] or ylim(key)
        if lim:
            ax.set_ylim(*lim)
    handles, labels = axes[0].get_legend_handles_labels()
    for ax in axes[1:]:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="outside right center", fontsize=8)
    return fig, axes


def _fig_retrieval(table, o):
    data = retrieval_data(table, o["metric"], o["order"])
    keys = list(dict.fromkeys(zip(data["pair"], data["task"], strict=True)))
    fig, axes = _line_figure(data, keys, lambda k, ax, c: plot_retrieval(data, *k, ax, colours=c, legend=False, mark=o["mark"]),
                             o, lambda k: (0, 100))
    info = metric_info(str(data["metric"].iloc[0]))
    pairs = ", ".join(p for p in dict.fromkeys(data["pair"]) if p)
    return fig, axes, data, None, _join(f"{info.label[0].upper()}{info.label[1:]} by layer", pairs, _seeds(table, data))


def _fig_scan(table, o):
    data = scan_data(table, o["order"])
    keys = list(dict.fromkeys(zip(data["pair"], data["family"], strict=True)))
    fam = {f: g["value"] for f, g in data.groupby("family")}

    def ylim(k):
        if k[1] == "retrieval":
            return (0, 100)
        info = metric_info(k[1])
        if info.bounds:
            v = fam[k[1]]
            return (min(info.bounds[0], v.min()), max(info.bounds[1], v.max()))
        return None

    fig, axes = _line_figure(data, keys, lambda k, ax, c: plot_scan(data, *k, ax, colours=c, legend=False, mark=o["mark"]), o, ylim)
    models = ", ".join(m for m in dict.fromkeys(data["model"]) if m)
    return fig, axes, data, None, _join("Layer scan: alignment of each layer", models, _seeds(table, data))


def _fig_layer_effect(table, o):
    data = layer_effect_data(table, o["metric"], o["order"])
    sc = layer_effect_scale(data, o["scale"])
    keys = list(dict.fromkeys(zip(data["model"], data["measure"], strict=True)))
    nrow, ncol = data["variant"].nunique(), data["lang"].nunique()
    panel = (max(PANEL[0], 0.85 * ncol + 1.8), max(PANEL[1], 0.42 * nrow + 1.3))
    fig, axes = _heatmaps(keys, lambda k, ax, s: plot_layer_effect(data, *k, ax, scale=s, colorbar=False), sc,
                          o["size"], panel)
    how = ", ".join(str(i) for i in dict.fromkeys(data["interval"].dropna()))
    title = _join("Effect of each layer's realignment by language: the measure with the layer realigned minus with "
                  f"it reverted to its pretrained weights ({sc.unit + '; ' if sc.unit else ''}blue: that layer's "
                  "realignment helped, red: it hurt)",
                  f"under each value: half-width of the interval ({how})" if how else "")
    return fig, axes, data, sc, title


BUILD = {"drift": _fig_drift, "drift-lines": _fig_drift_lines, "probe": _fig_probe, "forgetting": _fig_forgetting, "cka": _fig_cka,
         "typology": _fig_typology, "attribution": _fig_attribution, "retrieval": _fig_retrieval,
         "scan": _fig_scan, "layer-effect": _fig_layer_effect}


def figure(kind: str, table: pd.DataFrame, *, metric: str | None = None, baseline: str | None = None,
           order=None, scale: tuple[float, float] | None = None, title: str | None = None,
           size: tuple[float, float] | None = None, mark: int | None = None, panels: str | None = None):
    """The whole figure of ``kind`` for a tidy ``table``: ``(Figure, data, notes)`` where
    ``data`` is the frame of the numbers drawn and ``notes`` what was left out.

    ``order``: model names first, in this order (the rest in the protocol's order);
    ``scale``: ``(low, high)`` colour limits shared by every panel (y limits for line
    figures; symmetric for a diverging map); ``title``: replaces the generated title;
    ``size``: figure size in inches; ``mark``: a layer marked on the line figures
    (retrieval, scan), e.g. the alignment layer K chosen from a scan; ``panels``: the drift
    figure's panels, one per language (``"lang"``, the default: layer x model) or one per
    model (``"model"``: layer x language). Raises :class:`PlotInputError` (a ``ValueError``)
    naming what is missing when the table cannot make the figure.
    """
    if kind not in BUILD:
        raise PlotInputError(f"unknown plot kind {kind!r}: expected one of {', '.join(KINDS)}")
    if mark is not None and kind not in ("retrieval", "scan"):
        raise PlotInputError(f"mark a layer: only the line figures (retrieval, scan) have a layer axis to mark, "
                             f"not {kind}")
    if panels is not None and (kind != "drift" or panels not in ("lang", "model")):
        raise PlotInputError(f"panels {panels!r}: only the drift figure has a choice of panels (lang or model)")
    opts = {"metric": metric, "baseline": baseline, "order": order, "scale": scale, "size": size, "mark": mark,
            "panels": panels}
    fig, axes, data, sc, auto = BUILD[kind](table, opts)
    notes = list(data.attrs.get("notes", []))
    fig.suptitle(_wrap(fig, title or auto, 10), fontsize=10)
    caption = ([_shared(fig, axes, sc)] if sc is not None else []) + notes
    if caption:
        fig.supxlabel("\n".join(_wrap(fig, c, 8) for c in caption), fontsize=8)
    return fig, data, notes


def read_tables(inputs) -> pd.DataFrame:
    """Concatenate CSV tables; a missing, unreadable or empty file is a one-line error naming
    it. Hidden columns ``_source`` and ``_row`` (1-based, under the header) let later errors
    name the file and row of a bad cell."""
    inputs = [inputs] if isinstance(inputs, str | Path) else list(inputs)
    frames = []
    for p in inputs:
        path = Path(p)
        if path.is_dir():
            raise PlotInputError(f"{p}: is a folder; expected a CSV table")
        if not path.is_file():
            raise FileNotFoundError(f"{p}: no such table")
        try:
            frames.append(pd.read_csv(path))
        except pd.errors.EmptyDataError:
            raise PlotInputError(f"{p}: empty file; expected a CSV table with a header line") from None
        except (pd.errors.ParserError, UnicodeDecodeError) as e:
            raise PlotInputError(f"{p}: not a CSV table ({str(e).splitlines()[0]})") from None
        if frames[-1].empty:
            raise PlotInputError(f"{p}: the table has a header ({', '.join(map(str, frames[-1].columns))}) "
                                 "and no rows")
        frames[-1]["_source"], frames[-1]["_row"] = str(p), np.arange(1, len(frames[-1]) + 1)
    return pd.concat(frames, ignore_index=True)


def select_rows(df: pd.DataFrame, where) -> pd.DataFrame:
    """Rows of ``df`` whose ``column`` equals ``value`` (compared as text, case-insensitively)
    for every item of ``where`` (``{column: value}``); a column the table lacks, or a value
    no row has, is a :class:`PlotInputError` naming what the table holds."""
    for col, val in (where or {}).items():
        if col not in df.columns:
            have = ", ".join(str(c) for c in df.columns if not str(c).startswith("_"))
            raise PlotInputError(f"where {col}={val}: the table has no column {col} (columns: {have})")
        keep = df[col].astype(str).str.lower() == str(val).lower()
        if not keep.any():
            have = ", ".join(map(str, dict.fromkeys(df[col].astype(str))))
            raise PlotInputError(f"where {col}={val}: no row has that value (column {col} holds {have})")
        df = df[keep]
    return df


def save_figure(fig, data: pd.DataFrame, out: str | Path, formats=FORMATS) -> list[Path]:
    """Write ``out`` in every format of ``formats`` and the numbers drawn (``data``) as
    ``out``.csv, all or nothing: every file is written to a temporary file next to it, and
    only when all are complete are they renamed into place (a failure or Ctrl-C leaves the
    old files, or none, and no temporaries). Files get the user's umask. Returns the paths."""
    import os
    import tempfile

    from core.io import current_umask

    stem = Path(out)
    stem = stem.with_suffix("") if stem.suffix.lower() in (".png", ".svg", ".csv", ".pdf") else stem
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.parent / f"{stem.name}.{ext}" for ext in (*formats, "csv")]
    temps: list[Path] = []
    engine = fig.get_layout_engine()
    try:
        for p in paths:
            fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", dir=stem.parent)
            temps.append(Path(tmp))
            with os.fdopen(fd, "wb") as fh:
                os.fchmod(fd, 0o666 & ~current_umask())  # not mkstemp's 0600
                if p.suffix == ".csv":
                    fh.write(data.to_csv(index=False).encode("utf-8"))
                else:
                    fig.savefig(fh, dpi=150, format=p.suffix[1:])
                    # the layout is solved on the first save; the other formats reuse it (a third faster)
                    fig.set_layout_engine("none")
                fh.flush()
                os.fsync(fh.fileno())
        for tmp, p in zip(temps, paths, strict=True):
            os.replace(tmp, p)
    finally:
        fig.set_layout_engine(engine)
        for tmp in temps:
            tmp.unlink(missing_ok=True)
    return paths


def plot_from_tables(kind: str, inputs, out, *, metric: str | None = None, baseline: str | None = None,
                     order=None, scale=None, title: str | None = None, size=None, where=None,
                     mark: int | None = None, notes: list | None = None, panels: str | None = None) -> list[Path]:
    """Read tidy CSV(s), keep the rows of ``where`` ({column: value}), build :func:`figure`
    and write PNG, SVG, PDF and the CSV of the numbers drawn; returns their paths. What the
    figure left out is appended to ``notes`` when a list is given. Errors
    (:class:`PlotInputError`, a ``ValueError``) name the input file(s)."""
    if kind not in KINDS:
        raise PlotInputError(f"unknown plot kind {kind!r}: expected one of {', '.join(KINDS)}")
    names = [inputs] if isinstance(inputs, str | Path) else list(inputs)
    df = read_tables(names)
    try:
        fig, data, left_out = figure(kind, select_rows(df, where), metric=metric, baseline=baseline, order=order,
                                     scale=scale, title=title, size=size, mark=mark, panels=panels)
    except PlotInputError as e:
        raise PlotInputError(f"{', '.join(map(str, names))}: {e}") from None
    if notes is not None:
        notes.extend(left_out)
    return save_figure(fig, data, out)

