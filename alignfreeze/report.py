"""``OUT/report.html`` (one self-contained page) and ``OUT/report.md`` from a run folder:
a demo run (``run.json``, :mod:`alignfreeze.pipeline`) or an experiment grid
(``results.csv`` + ``cells/``, :mod:`alignfreeze.experiment`; see :mod:`alignfreeze.report_grid`).

Everything in the report is read from the folder's tables and manifests; the figures are
drawn by :mod:`analysis.plots` into ``OUT/figures/`` (PNG, SVG, PDF and the CSV of the
numbers drawn) and the plain-language reading is generated from the numbers by
:mod:`alignfreeze.report_reading`. ``alignfreeze report DIR`` rebuilds it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from .report_doc import Document
from .report_reading import (
    comparison_reading,
    drift_reading,
    pct,
    probe_reading,
    pts,
    retrieval_reading,
)

ARM_ORDER = ("baseline", "full", "front", "back")
ARM_TEXT = {"baseline": "no realignment (the pretrained model)", "full": "realigned, nothing frozen",
            "front": "realigned with the lower half of the blocks frozen",
            "back": "realigned with the upper half of the blocks frozen"}


class ReportInputError(ValueError):
    """A folder the report cannot be built from (the message says what is missing)."""


def detect(folder: Path) -> str:
    """``demo`` or ``grid``; :class:`ReportInputError` otherwise."""
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder (expected a demo run or an experiment grid's out folder)")
    run = folder / "run.json"
    if run.is_file():
        try:
            kind = json.loads(run.read_text(encoding="utf-8")).get("kind")
        except json.JSONDecodeError as e:
            raise ReportInputError(f"{run}:{e.lineno}: invalid JSON ({e.msg})") from None
        if kind == "demo":
            return "demo"
        raise ReportInputError(f"{run}: kind {kind!r}; expected a demo run's manifest (kind demo)")
    if (folder / "results.csv").is_file() and (folder / "cells").is_dir():
        return "grid"
    raise ReportInputError(f"{folder}: neither a demo run (run.json) nor an experiment grid (results.csv and cells/); "
                           "give the --out folder of `alignfreeze demo` or of `alignfreeze experiment`")


def _read(folder: Path, name: str) -> pd.DataFrame:
    p = folder / f"{name}.csv"
    if not p.is_file():
        raise ReportInputError(f"{p}: missing; the demo run did not finish (rerun `alignfreeze demo --out {folder}`)")
    return pd.read_csv(p)


def _figure(kind: str, table: pd.DataFrame, stem: Path, formats=None, **kw) -> Path:
    from analysis.plots import FORMATS, figure, save_figure

    fig, data, _notes = figure(kind, table, **kw)
    paths = save_figure(fig, data, stem, formats=formats or FORMATS)
    return next(p for p in paths if p.suffix == ".png")


def _arms(df: pd.DataFrame, col: str = "model") -> list[str]:
    present = list(dict.fromkeys(df[col]))
    return [a for a in ARM_ORDER if a in present] + [a for a in present if a not in ARM_ORDER]


# ----------------------------------------------------------------------------- demo
def demo_figures(folder: Path, t: dict, progress: bool = False, formats=None) -> dict[str, Path]:
    """Draw the demo's figures into ``folder/figures``; returns ``{name: png}``."""
    from tqdm.auto import tqdm

    from core.io import atomic_dir

    fig_dir = folder / "figures"
    jobs = {
        "drift": ("drift", t["drift"], {"metric": "cka", "panels": "model", "order": _arms(t["drift"])}),
        "forgetting": ("forgetting", t["probe"], {"baseline": "baseline", "order": _arms(t["probe"])}),
        "cka": ("cka", t["cka"], {}),
        "probe": ("probe", t["probe"], {"order": _arms(t["probe"])}),
    }
    r = t["retrieval"]
    for task in ("sentence", "word"):
        if len(r) and (r["task"] == task).any():
            sub = r[r["task"] == task]
            jobs[f"retrieval_{task}"] = ("retrieval", sub, {"order": _arms(sub)})
    out = {}
    # all figures or none: drawn into a temporary folder that replaces figures/ when complete
    with atomic_dir(fig_dir) as tmp:
        for name, (kind, table, kw) in tqdm(jobs.items(), desc="figures", unit="fig", disable=not progress):
            out[name] = fig_dir / _figure(kind, table, Path(tmp) / name, formats, **kw).name
    return out


def paper_table(probe: pd.DataFrame, vs_base: pd.DataFrame, vs_full: pd.DataFrame, layer: int):
    """Rows of the paper-style table: per language, each arm's probe accuracy at ``layer``
    with its interval; ``▼``/``▲``: below/above the baseline (paired interval excludes 0);
    bold: above full (paired interval excludes 0)."""
    from .report_reading import classify

    at = probe[probe["layer"] == layer]
    arms = _arms(at)
    langs = list(dict.fromkeys(at["lang"]))
    marks = {}
    for table, tag in ((vs_base, "base"), (vs_full, "full")):
        if len(table):
            sel = table[table["layer"] == layer]
            for (m, lang), k in zip(zip(sel["model"], sel["lang"]), classify(sel)):
                marks[(tag, m, lang)] = k
    rows = []
    for lang in langs:
        row = [lang + ("" if lang != "en" else " (in-language)")]
        for arm in arms:
            r = at[(at["model"] == arm) & (at["lang"] == lang)]
            if r.empty:
                row.append("")
                continue
            r = r.iloc[0]
            text = f"{100 * r['value']:.1f} [{100 * r['ci_low']:.1f}, {100 * r['ci_high']:.1f}]"
            k = marks.get(("base", arm, lang))
            text += " ▼" if k == "loss" else " ▲" if k == "gain" else ""
            if marks.get(("full", arm, lang)) == "gain":
                text = f"**{text}**"
            row.append(text)
        rows.append(row)
    zs = at[at["lang"] != "en"]
    if zs["lang"].nunique() > 1:
        means = zs.groupby("model")["value"].mean()
        rows.append([f"mean of {zs['lang'].nunique()} zero-shot languages"] + [f"{100 * means[a]:.1f}" for a in arms])
    return ["language"] + arms, rows


def demo_document(folder: Path, progress: bool = False, formats=None) -> tuple[Document, dict]:
    from .pipeline_measure import paired_change

    run = json.loads((folder / "run.json").read_text(encoding="utf-8"))
    t = {name: _read(folder, name) for name in ("drift", "cka", "probe", "forgetting", "retrieval",
                                                "probe_sentences")}
    cfg, model, corpus = run["config"], run["model"], run["corpus"]
    ci_groups = int(cfg.get("ci_groups", 10))
    L = int(model["layers"])
    arms = _arms(t["probe"])
    figs = demo_figures(folder, t, progress, formats)
    vs_full = (paired_change(t["probe_sentences"][t["probe_sentences"]["model"].isin(["full", "front", "back"])],
                             "full") if "full" in arms else pd.DataFrame())
    langs = corpus["langs"]
    measured = corpus["measured"]

    doc = Document(f"alignfreeze demo: {model['name']}, {len(arms)} arms, {len(langs)} languages")
    n_sent = sorted({v["sentences"] for v in measured.values()})
    doc.p(f"{model['name']} ({model['type']}, {L} layers, {model['parameters'] / 1e6:.1f}M parameters) was realigned "
          f"on word pairs of English and {', '.join(langs[1:])} three ways and compared with no realignment: "
          + "; ".join(f"**{a}**: {ARM_TEXT.get(a, a)}" for a in arms) + ". "
          f"Every measurement is against the pretrained model, on {'/'.join(map(str, n_sent))} sentences per language "
          f"({corpus['source']}) that the realignment never saw. Layer 0 is the embeddings, layer i the output of "
          f"block i. Intervals are 95% jackknife intervals over sentences (probes: leave one sentence out; drift's "
          f"CKA: {ci_groups} random groups of sentences, delete one group): one realignment seed "
          f"({run['seeds']['realignment']}), so they say nothing about the spread over seeds.")

    doc.h(1, "Reading")
    doc.p("Generated from the tables below; each claim holds only where its interval says so.")
    doc.h(2, "Which layers moved")
    doc.ul(drift_reading(t["drift"], [a for a in arms if a != "baseline"]))
    doc.h(2, "Probes: lost and gained (forgetting)")
    doc.ul(probe_reading(t["forgetting"]))
    if len(vs_full):
        doc.ul(comparison_reading(vs_full, L))
    doc.h(2, "Retrieval")
    lines = retrieval_reading(t["retrieval"]) + retrieval_reading(t["retrieval"], task="word")
    doc.ul(lines or ["No retrieval was measured (the measured treebanks are not parallel)."])

    doc.h(1, "The paper-style table")
    header, rows = paper_table(t["probe"], t["forgetting"], vs_full, L)
    doc.table(header, rows, numeric=range(1, len(header)),
              caption=f"UPOS probe accuracy (%) at layer {L} (the last), trained on English "
                      f"({run['corpus']['train']['sentences']} sentences), zero-shot elsewhere; [95% interval over "
                      "sentences]. ▼/▲: below/above the baseline on the same words (paired interval excludes 0). "
                      "Bold: above full realignment (paired interval excludes 0).")

    doc.h(1, "Figures")
    captions = {
        "drift": "Drift per arm: linear CKA of each layer with the pretrained model's same layer, per language "
                 "(1 = unchanged; lower = moved more).",
        "forgetting": "Forgetting: change of UPOS probe accuracy against the baseline (percentage points), per layer "
                      "and language; red: lost, blue: gained. Intervals of each cell are in forgetting.csv.",
        "cka": "CKA matrices: every layer of the pretrained model (rows) against every layer of each arm "
               "(columns), on the measured words of all languages.",
        "probe": "UPOS probe accuracy (%) by layer and language for each arm (trained on English).",
        "retrieval_sentence": "Sentence retrieval by layer (accuracy@1 among the measured sentences, both "
                              "directions), per language pair.",
        "retrieval_word": "Word retrieval by layer (strong candidates, cosine), per language pair.",
    }
    for name, png in figs.items():
        doc.figure(png, captions.get(name, name) + f" Also as figures/{name}.svg, .pdf and .csv.")

    doc.h(1, "Numbers")
    cka = t["drift"][t["drift"]["metric"] == "cka"]
    if len(cka):
        tab = 1 - cka.pivot_table(index="layer", columns="model", values="value", aggfunc="mean")
        tab = tab[[a for a in arms if a in tab.columns]]
        doc.table(["layer", *tab.columns], [[int(i), *(f"{v:.4f}" for v in r)] for i, r in tab.iterrows()],
                  numeric=range(len(tab.columns) + 1),
                  caption=f"1 - CKA against the pretrained model, mean over {cka['lang'].nunique()} languages "
                          "(per language with intervals: drift.csv).")
    zs = t["probe"][t["probe"]["lang"] != "en"]
    if len(zs):
        acc = zs.pivot_table(index="layer", columns="model", values="value", aggfunc="mean")[arms]
        doc.table(["layer", *arms], [[int(i), *(f"{100 * v:.1f}" for v in r)] for i, r in acc.iterrows()],
                  numeric=range(len(arms) + 1),
                  caption=f"UPOS probe accuracy (%), mean over {zs['lang'].nunique()} zero-shot languages "
                          "(per language with intervals: probe.csv).")
    if run.get("notes"):
        doc.h(1, "Notes")
        doc.ul(run["notes"])
    _configuration(doc, run, folder)
    return doc, figs


def _configuration(doc: Document, run: dict, folder: Path) -> None:
    cfg, model, corpus, env = run["config"], run["model"], run["corpus"], run.get("environment", {})
    doc.h(1, "Configuration and manifests")
    doc.p("Everything needed to repeat the run: `alignfreeze demo` with these options, the same files (SHA-256 "
          "below) and the same base model (weight hash).")
    doc.table(["option", "value"], [[f"--{k.replace('_', '-')}", json.dumps(v)] for k, v in cfg.items()])
    doc.h(2, "Model and seeds")
    seeds = run.get("seeds", {})
    doc.ul([f"model: `{model['name']}` ({model['type']}, {model['layers']} layers, {model['parameters']:,} parameters)",
            f"base weight hash (SHA-256 of the weights): `{model['weight_hash']}`",
            f"seeds: realignment {seeds.get('realignment')}, probe {seeds.get('probe')}, sentence groups "
            f"{seeds.get('ci_groups')} ({seeds.get('note', '')})",
            *(f"{k}: {v}" for k, v in run.get("measures", {}).items())])
    doc.h(2, "Data")
    rows = [[lang, v["file"], v["sentences"], v["words"]] for lang, v in corpus["measured"].items()]
    tr = corpus["train"]
    rows.append(["en (probe training)", tr["file"], tr["sentences"], tr["words"]])
    doc.table(["language", "file", "sentences measured", "words"], rows, numeric=(2, 3),
              caption=f"Source: {corpus['source']}. Split: {corpus['split']['realign_ids']} sentence ids realign, "
                      f"{corpus['split']['measured_ids']} are measured.")
    doc.table(["file", "sha256"], [[Path(f["path"]).name, f"`{f['sha256']}`"] for f in corpus["files"]])
    prow = []
    for lang, s in run.get("pairs", {}).items():
        r = s.get("realign", {})
        e = s.get("eval", {})
        prow.append([f"en-{lang}", corpus["pairs"].get(lang, ""), corpus["dictionaries"].get(lang) or "",
                     f"{r.get('pairs_kept')}/{r.get('sentence_pairs')}", r.get("links"),
                     f"{r.get('src_coverage', 0):.0%}", e.get("links", "")])
    doc.table(["pair", "realignment data", "dictionary", "sentence pairs kept", "links", "English words linked",
               "links (measured half)"], prow, numeric=(4, 6))
    doc.h(2, "Arms")
    arows = []
    for arm, a in run.get("arms", {}).items():
        if not a.get("realigned"):
            arows.append([arm, "no realignment", "", "", "", "", ""])
            continue
        loss = (a.get("final_losses") or {}).get("total")
        arows.append([arm, a.get("freeze"), _short(a.get("frozen_layers")), a.get("steps"), a.get("lr"),
                      a.get("pairs_seen"), "" if loss is None else f"{loss:.4f}"])
    doc.table(["arm", "freeze", "frozen layers", "steps", "learning rate", "pairs seen", "final loss"], arows)
    doc.h(2, "Versions and time")
    pk = env.get("packages", {})
    doc.ul([f"python {env.get('python')}, {env.get('platform')}", f"git commit `{env.get('git_commit')}`",
            "packages: " + ", ".join(f"{k} {v}" for k, v in pk.items()),
            f"wall time {run.get('wall_time_s')} s, CPU time {run.get('cpu_time_s')} s "
            f"({run.get('torch_threads')} torch threads), before the report"])
    steps = run.get("steps", [])
    if steps:
        doc.table(["step", "status", "seconds", "key"], [[s["step"], s["status"], s["seconds"], s["key_digest"][:12]]
                                                         for s in steps], numeric=(2,),
                  caption="Steps of this run; a reused step's inputs (key) matched a finished step of an earlier run.")


def _short(layers) -> str:
    from .report_reading import _layers

    return _layers(layers) if layers else "none"


# ----------------------------------------------------------------------------- entry point
def build_report(folder: str | Path, *, progress: bool = False, formats=None) -> dict:
    """Write ``folder/report.html`` and ``folder/report.md`` (figures under
    ``folder/figures`` in ``formats``, default PNG, SVG and PDF, each with the CSV of its
    numbers); returns ``{"html", "md", "figures", "kind"}``."""
    from core.io import atomic_write_text

    folder = Path(folder)
    kind = detect(folder)
    if kind == "demo":
        doc, figs = demo_document(folder, progress, formats)
    else:
        from .report_grid import grid_document

        doc, figs = grid_document(folder, formats)
    html = atomic_write_text(folder / "report.html", doc.html())
    md = atomic_write_text(folder / "report.md", doc.markdown(folder))
    return {"html": html, "md": md, "figures": figs, "kind": kind}


__all__ = ["build_report", "detect", "demo_document", "paper_table", "ReportInputError", "pct", "pts"]
