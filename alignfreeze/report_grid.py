"""The report of an experiment grid's out folder (:mod:`alignfreeze.experiment`):
``results.csv`` (tidy rows of every finished cell), the grid's own paper-style table
``table.md`` (shown as the grid wrote it), ``failures.json``, and the configuration the
grid recorded (``experiment.json``: the YAML as run and the environment).

The figure is the zero-shot accuracy per language and strategy (mean over seeds, ``±std``
where there are two seeds or more). The reading applies the paper's criterion
(Gaschi et al.: a strategy differs from another when the difference of the means exceeds
the larger of their standard deviations over seeds), and says when there are too few
seeds for any conclusion.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from .report_doc import Document

ORDER = ("baseline", "full", "front", "back")


def seed_summary(results: pd.DataFrame) -> pd.DataFrame:
    """Mean, std (ddof 1; NaN below two seeds) and number of seeds per (model, aligner,
    strategy, task, lang) of the accuracy rows; a language's treebanks are averaged
    within a seed first."""
    r = results[results["metric"] == "accuracy"]
    per_seed = r.groupby(["model", "aligner", "strategy", "task", "lang", "seed"], as_index=False)["value"].mean()
    g = per_seed.groupby(["model", "aligner", "strategy", "task", "lang"], sort=False)["value"]
    return g.agg(mean="mean", std=lambda v: float(np.std(v, ddof=1)) if len(v) > 1 else float("nan"),
                 n_seeds="count").reset_index()


def _strategies(names) -> list[str]:
    names = list(dict.fromkeys(names))
    return [s for s in ORDER if s in names] + [s for s in names if s not in ORDER]


def grid_reading(summary: pd.DataFrame, reference: str = "full") -> list[str]:
    """Per (model, task) and strategy: the languages where it is above or below
    ``reference`` by more than one standard deviation (the paper's criterion), and where
    nothing can be concluded. The baseline (aligner ``-``) is compared within each aligner."""
    out = []
    base = summary[summary["aligner"] == "-"]
    for (model, aligner, task), g in summary[summary["aligner"] != "-"].groupby(["model", "aligner", "task"],
                                                                                sort=False):
        g = pd.concat([g, base[(base["model"] == model) & (base["task"] == task)]], ignore_index=True)
        ref = g[g["strategy"] == reference].set_index("lang")
        if ref.empty:
            continue
        for strat in _strategies(g["strategy"]):
            if strat == reference:
                continue
            s = g[g["strategy"] == strat].set_index("lang")
            langs = [lang for lang in s.index if lang in ref.index]
            few = [lang for lang in langs if min(s.loc[lang, "n_seeds"], ref.loc[lang, "n_seeds"]) < 2]
            above, below, unclear = [], [], []
            for lang in langs:
                if lang in few:
                    continue
                d = s.loc[lang, "mean"] - ref.loc[lang, "mean"]
                bar = max(s.loc[lang, "std"], ref.loc[lang, "std"])
                (above if d > bar else below if -d > bar else unclear).append(f"{lang} ({100 * d:+.1f})")
            head = f"**{strat}** against {reference} ({model}, aligner {aligner}, {task})"
            bits = []
            if above:
                bits.append("higher by more than one standard deviation in " + ", ".join(above))
            if below:
                bits.append("lower by more than one standard deviation in " + ", ".join(below))
            if unclear:
                bits.append("within one standard deviation, so nothing can be concluded, in " + ", ".join(unclear))
            if few:
                bits.append(f"fewer than two seeds in {', '.join(few)}: no spread, nothing can be concluded")
            out.append(head + ": " + "; ".join(bits) + " (points).")
    return out


def grid_figure(summary: pd.DataFrame, stem: Path, formats=None) -> Path:
    """Heatmap language x strategy of the mean accuracy (%) per (model, aligner, task)."""
    from matplotlib.figure import Figure

    from analysis.plot_data import colour_scale
    from analysis.plot_draw import heatmap
    from analysis.plot_names import metric_info
    from analysis.plots import FORMATS, save_figure

    base = summary[summary["aligner"] == "-"]
    keys = list(dict.fromkeys(zip(summary.loc[summary["aligner"] != "-", "model"],
                                  summary.loc[summary["aligner"] != "-", "aligner"],
                                  summary.loc[summary["aligner"] != "-", "task"], strict=True))) or \
        list(dict.fromkeys(zip(base["model"], base["aligner"], base["task"], strict=True)))
    drawn = []
    for model, aligner, task in keys:
        g = summary[(summary["model"] == model) & (summary["task"] == task)
                    & summary["aligner"].isin([aligner, "-"])].assign(panel=f"{model}, {aligner}, {task}")
        drawn.append(g)
    data = pd.concat(drawn, ignore_index=True)
    data["value"], data["std_pct"] = 100 * data["mean"], 100 * data["std"]
    sc = colour_scale(data["value"], metric_info("accuracy"), policy="bounds", cmap="viridis")
    fig = Figure(figsize=(4.6 * min(3, len(keys)) + 1.0, 0.45 * data["lang"].nunique() * -(-len(keys) // 3) + 2.2),
                 layout="constrained")
    axes = list(fig.subplots(-(-len(keys) // 3), min(3, len(keys)), squeeze=False).ravel())
    for ax in axes[len(keys):]:
        fig.delaxes(ax)
    axes = axes[:len(keys)]
    for ax, panel in zip(axes, dict.fromkeys(data["panel"]), strict=True):
        d = data[data["panel"] == panel]
        cols = _strategies(d["strategy"])
        mat = d.pivot_table(index="lang", columns="strategy", values="value").reindex(columns=cols)
        std = d.pivot_table(index="lang", columns="strategy", values="std_pct").reindex(columns=cols)
        heatmap(ax, mat, sc, std=std, colorbar=False)
        ax.set_title(panel, fontsize=9)
        ax.set_xlabel("strategy")
        ax.set_ylabel("language")
    fig.colorbar(axes[0].collections[0], ax=axes, label=sc.label)
    n = int(data["n_seeds"].max())
    fig.suptitle(f"Zero-shot accuracy by language and strategy (mean{' ± std' if n > 1 else ''} over "
                 f"{n} seed{'s' if n > 1 else ''})", fontsize=10)
    paths = save_figure(fig, data.drop(columns=["panel"]), stem, formats=formats or FORMATS)
    return next(p for p in paths if p.suffix == ".png")


def _markdown_blocks(doc: Document, text: str) -> None:
    """The grid's ``table.md`` as blocks: ``#`` headings, ``|`` tables, paragraphs."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        if not line:
            i += 1
        elif line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            doc.h(min(3, max(2, level)), line.lstrip("#").strip())
            i += 1
        elif line.startswith("|"):
            rows = []
            while i < len(lines) and lines[i].strip().startswith("|"):
                cells = [c.strip() for c in lines[i].strip().strip("|").split("|")]
                if not all(set(c) <= set("-:") and c for c in cells):
                    rows.append(cells)
                i += 1
            if rows:
                doc.table(rows[0], rows[1:], numeric=range(1, len(rows[0])))
        else:
            para = []
            while i < len(lines) and lines[i].strip() and not lines[i].strip().startswith(("#", "|")):
                para.append(lines[i].strip())
                i += 1
            doc.p(" ".join(para))


def grid_document(folder: Path, formats=None) -> tuple[Document, dict]:
    results = pd.read_csv(folder / "results.csv")
    if results.empty:
        from .report import ReportInputError

        raise ReportInputError(f"{folder / 'results.csv'}: no finished cell yet; run the grid first")
    recorded = folder / "experiment.json"
    config = json.loads(recorded.read_text(encoding="utf-8")) if recorded.is_file() else {}
    failures_file = folder / "failures.json"
    failures = json.loads(failures_file.read_text(encoding="utf-8")) if failures_file.is_file() else {}
    summary = seed_summary(results)
    name = config.get("name") or folder.name
    doc = Document(f"alignfreeze experiment: {name}")
    cells = sorted(results["run"].unique()) if "run" in results.columns else []
    doc.p(f"{len(cells)} finished cells: models {', '.join(map(str, results['model'].unique()))}; strategies "
          f"{', '.join(_strategies(results['strategy']))}; seeds {', '.join(map(str, sorted(results['seed'].unique())))}; "
          f"languages {', '.join(map(str, results['lang'].unique()))}. Each cell was fine-tuned on the source "
          "treebank(s) and evaluated zero-shot; see the configuration below."
          + (f" {len(failures)} cell(s) failed (listed at the end)." if failures else ""))
    doc.h(1, "Reading")
    doc.p("Generated from results.csv with the paper's criterion: a difference counts only when it exceeds the "
          "larger of the two standard deviations over seeds.")
    doc.ul(grid_reading(summary) or ["No strategy can be compared with full realignment (full is not in the grid)."])
    doc.h(1, "The paper-style table")
    table_md = folder / "table.md"
    if table_md.is_file():
        _markdown_blocks(doc, table_md.read_text(encoding="utf-8"))
    else:
        doc.p("The grid wrote no table.md.")
    doc.h(1, "Figure")
    from core.io import atomic_dir

    with atomic_dir(folder / "figures") as tmp:  # all or nothing, as the demo's figures
        png = folder / "figures" / grid_figure(summary, Path(tmp) / "accuracy", formats).name
    doc.figure(png, "Zero-shot accuracy (%) per language (rows) and strategy (columns), mean over seeds with "
                    "± std where there are two seeds or more. Also as figures/accuracy.svg, .pdf and .csv.")
    doc.h(1, "Configuration and manifests")
    if config:
        doc.p(f"As run from {config.get('config_file')} (started {config.get('started')}).")
        doc.pre(config.get("config_yaml", ""))
        env = config.get("environment", {})
        doc.ul([f"python {env.get('python')}, {env.get('platform')}", f"git commit `{env.get('git_commit')}`",
                "packages: " + ", ".join(f"{k} {v}" for k, v in env.get("packages", {}).items())])
    else:
        doc.p("This grid recorded no configuration (experiment.json: grids run before it was written); its cells' "
              "results are all this report reads.")
    manifests = []
    for cell in sorted((folder / "cells").iterdir()) if (folder / "cells").is_dir() else []:
        for part in ("realigned", "finetuned"):
            m = cell / part / "manifest.json"
            if m.is_file():
                man = json.loads(m.read_text(encoding="utf-8"))
                base = man.get("base_model") or {}
                manifests.append([cell.name, part, man.get("seed", ""), base.get("name", ""),
                                  f"`{str(base.get('weight_hash', ''))[:16]}`"])
    if manifests:
        doc.table(["cell", "step", "seed", "base model", "base weight hash"], manifests)
    else:
        doc.p("The cells' checkpoints and manifests were not kept (keep_models: false).")
    if failures:
        doc.h(2, "Failed cells")
        doc.ul(f"`{cell}`: {f.get('error')}: {f.get('message')}" for cell, f in failures.items())
    return doc, {"accuracy": png}
