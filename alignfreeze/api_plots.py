"""Figures from tidy tables, for a notebook: every plot kind of :mod:`analysis.plots` (the
``alignfreeze plot`` command's), as a whole matplotlib Figure, or one panel on an Axes the
caller owns. Only drawing: the numbers come from the tables (the verbs' DataFrames or CSVs).
"""

from __future__ import annotations

import sys


def _table(table, where):
    import pandas as pd

    from analysis.plots import read_tables, select_rows

    if not isinstance(table, pd.DataFrame):
        table = read_tables(table)  # keeps each row's file and line for the error messages
    return select_rows(table, where) if where else table


def _heat_scale(kind: str, data, override):
    """The colour scale :func:`analysis.plots.figure` gives ``data`` of ``kind`` (kept in step
    with its builders; tests/test_facade_results.py compares the two for every kind)."""
    from analysis.plot_data import colour_scale, policy_for
    from analysis.plot_names import change_metric, metric_info

    metric = str(data["metric"].iloc[0]) if "metric" in data.columns else ""
    if kind in ("drift", "probe"):
        policy = "range" if kind == "drift" else "bounds"
        return colour_scale(data["value"], metric_info(metric), policy=policy_for(metric, policy), cmap="viridis",
                            override=override)
    if kind == "forgetting":
        return colour_scale(data["change"], change_metric(metric), policy="symmetric", override=override)
    if kind == "cka":
        return colour_scale(data["cka"], metric_info("cka"), policy="bounds", cmap="magma", override=override)
    if kind == "layer-effect":
        from analysis.plot_layer_effect import layer_effect_scale

        return layer_effect_scale(data, override)
    return colour_scale(data["value"], metric_info("share"), policy="zero", cmap="viridis", override=override)


def _panel_spec(kind: str):
    """``(data(table, o), key columns, draw(data, key, ax, scale, o))`` of one panel of ``kind``."""
    from analysis import plots as P

    heat = {
        "drift": (lambda t, o: P.drift_data(t, o["metric"], o["order"]), ("lang",),
                  lambda d, k, ax, sc, o: P.plot_drift(d, k[0], ax, scale=sc)),
        "probe": (lambda t, o: P.probe_data(t, o["metric"], o["order"]), ("model", "task"),
                  lambda d, k, ax, sc, o: P.plot_probe(d, *k, ax, scale=sc)),
        "forgetting": (lambda t, o: P.forgetting_data(t, o["baseline"], o["metric"], o["order"]), ("model", "task"),
                       lambda d, k, ax, sc, o: P.plot_forgetting(d, *k, ax, scale=sc)),
        "cka": (lambda t, o: P.cka_data(t), ("model_a", "model_b"),
                lambda d, k, ax, sc, o: P.plot_cka(d, k, ax, scale=sc)),
        "attribution": (lambda t, o: P.attribution_data(t, o["order"]), ("model",),
                        lambda d, k, ax, sc, o: P.plot_attribution(d, k[0], ax, scale=sc)),
        "layer-effect": (lambda t, o: P.layer_effect_data(t, o["metric"], o["order"]), ("model", "measure"),
                         lambda d, k, ax, sc, o: P.plot_layer_effect(d, *k, ax, scale=sc)),
    }
    lines = {
        "drift-lines": (lambda t, o: P.drift_lines_data(t, o["metric"], o["order"]), ("lang",),
                        lambda d, k, ax, sc, o: P.plot_drift_lines(d, k[0], ax)),
        "typology": (lambda t, o: P.typology_data(t), ("feature",),
                     lambda d, k, ax, sc, o: P.plot_typology(d, k[0], ax)),
        "retrieval": (lambda t, o: P.retrieval_data(t, o["metric"], o["order"]), ("pair", "task"),
                      lambda d, k, ax, sc, o: P.plot_retrieval(d, *k, ax, mark=o["mark"])),
        "scan": (lambda t, o: P.scan_data(t, o["order"]), ("pair", "family"),
                 lambda d, k, ax, sc, o: P.plot_scan(d, *k, ax, mark=o["mark"])),
    }
    if kind in heat:
        return (*heat[kind], True)
    if kind in lines:
        return (*lines[kind], False)
    return None


def _on_ax(kind, table, ax, o, title):
    from analysis.plots import KINDS, PlotInputError

    spec = _panel_spec(kind)
    if spec is None:
        if kind not in KINDS:
            raise PlotInputError(f"unknown plot kind {kind!r}: expected one of {', '.join(KINDS)}")
        raise PlotInputError(f"plot {kind!r} draws a whole figure only: leave out ax=")
    data_of, cols, draw, is_heat = spec
    if o["mark"] is not None and kind not in ("retrieval", "scan"):
        raise PlotInputError(f"mark a layer: only the line figures (retrieval, scan) have a layer axis to mark, "
                             f"not {kind}")
    data = data_of(table, o)
    keys = list(dict.fromkeys(zip(*(data[c].astype(str) for c in cols), strict=True)))
    if len(keys) != 1:
        shown = "; ".join(", ".join(k) for k in keys[:6]) + ("; ..." if len(keys) > 6 else "")
        raise PlotInputError(f"the {kind} table makes {len(keys)} panels ({shown}); with ax= it must make one: keep "
                             f"its rows with where={{{', '.join(repr(c) for c in cols)}: ...}}, or leave out ax= "
                             "for the whole figure")
    sc = _heat_scale(kind, data, o["scale"]) if is_heat else None
    draw(data, keys[0], ax, sc, o)
    if not is_heat and o["scale"] is not None:
        ax.set_ylim(*o["scale"])
    elif kind == "retrieval":
        ax.set_ylim(0, 100)  # as in the whole figure: accuracy in %
    if title:
        ax.set_title(title)
    return data


def plot(kind: str, table, *, ax=None, metric: str | None = None, baseline: str | None = None, order=None,
         scale: tuple[float, float] | None = None, title: str | None = None, size: tuple[float, float] | None = None,
         mark: int | None = None, where: dict | None = None, out=None):
    """Draw ``table`` as figure ``kind``; returns the matplotlib Figure, or ``ax`` when given.

    Kinds (:data:`analysis.plots.KINDS`; the table each needs is in :mod:`analysis.plots`):
    ``drift`` (heatmap layer x model per language, from :func:`drift`), ``drift-lines``
    (drift by layer with its interval band, per language), ``probe`` (layer x language per
    model, mean ± std over seeds, from :func:`probe`), ``forgetting`` (change versus
    ``baseline`` in percentage points), ``cka`` (layer x layer, from :func:`cka`),
    ``typology``, ``attribution``, ``retrieval`` (from :func:`align_eval`) and ``scan`` (from
    :func:`layer_scan`; ``mark`` = the chosen layer K), ``layer-effect`` (variant x language
    per measure, the effect of each layer's realignment in percentage points, from
    ``alignfreeze layer-effect``'s ``effects.csv``; ``metric`` = one measure).

    Args:
        table: a DataFrame or the path(s) of CSV table(s).
        ax: draw ONE panel there (the table, after ``where``, must make one panel: one
            language for drift, one model and task for probe...), exactly as the figure of
            that table draws it (pass ``scale`` to give panels drawn on several axes one
            colour scale); without ``ax``, a new Figure with every panel, one shared colour
            scale printed on it, panels in the protocol's order (baseline, full, front,
            back) or ``order``.
        metric: the metric drawn (default per kind: cka, accuracy, accuracy@1...).
        scale: ``(low, high)`` colour limits (y limits for line figures).
        where: ``{column: value}``: keep only those rows first (e.g. ``{"lang": "fr"}``).
        out: also write ``out``.png/.svg/.pdf and the numbers drawn as ``out``.csv.

    Raises :class:`analysis.plots.PlotInputError` (a ValueError) naming what the table lacks
    to make the figure honestly. What a figure leaves out is printed as a note.
    """
    from analysis.plots import figure, save_figure

    table = _table(table, where)
    o = {"metric": metric, "baseline": baseline, "order": order, "scale": scale, "mark": mark}
    if ax is not None:
        if size is not None:
            raise ValueError("plot: size= sets the size of a new figure; with ax= the figure is the caller's")
        data = _on_ax(kind, table, ax, o, title)
        notes = list(data.attrs.get("notes", []))
        fig = ax.figure
    else:
        fig, data, notes = figure(kind, table, metric=metric, baseline=baseline, order=order, scale=scale,
                                  title=title, size=size, mark=mark)
        _inline(fig)
    for n in notes:
        print(f"alignfreeze: note: {n}", file=sys.stderr)
    if out is not None:
        save_figure(fig, data, out)
    return ax if ax is not None else fig


def _inline(fig) -> None:
    """In a Jupyter kernel, make a returned Figure render as an image. The inline backend
    hooks IPython's display of Figures when its module is first imported, which pyplot does
    only for a pyplot figure; ours are built without pyplot (nothing to close, no double
    display), so its module is imported here, as a first ``plt.figure()`` would."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None:
        return
    import matplotlib

    if "inline" in str(matplotlib.get_backend()):
        import matplotlib_inline.backend_inline  # noqa: F401  (its import registers the Figure formatter)
