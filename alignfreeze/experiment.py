"""The AlignFreeze experiment grid: realign -> fine-tune -> zero-shot evaluate, per cell.

A YAML file lists models, strategies, seeds, aligners, the parallel data for the word
pairs, the source treebank(s) and the target treebanks (see ``docs/experiments.md`` and
``examples/demo_experiment.yaml``). One *cell* = model x aligner x strategy x seed; the
``baseline`` strategy (fine-tune only) does not depend on the aligner and runs once per
model and seed.

Per cell, under ``OUT/cells/<cell id>/``: ``realigned/`` (:func:`realign.train.realign`),
``finetuned/`` (:func:`realign.finetune.finetune`), then ``cell.json`` (what the results were
computed from) and ``results.csv`` (:func:`realign.evaluate.evaluate` rows plus
run/model/aligner/strategy/freeze/seed), written atomically LAST (:mod:`alignfreeze.experiment_cell`).
A re-run reuses a finished cell, a realignment, a fine-tuning or word pairs only while they
were computed from what the YAML asks now (configs, data hashes and selections, base
weights), else computes them again and says why (:mod:`alignfreeze.experiment_reuse`); an
interrupted realignment resumes from its checkpoints. A failing cell is recorded in
``OUT/failures.json`` (error and traceback) and the grid goes on.

After every cell: ``OUT/results.csv`` (all tidy rows) and the paper-style table
``OUT/table.md`` / ``OUT/table.csv``: per language and strategy, mean +- std over SEEDS
(the only replicates: a language's treebanks are averaged within a seed first); a strategy
is marked where it beats the baseline (no realignment) or full realignment by more than one
standard deviation: ``mean_s - mean_ref > max(std_s, std_ref)`` (sample std over seeds;
std and marks are n/a below two seeds), and ``OUT/headline.csv`` counts those languages
per strategy (:func:`summary_table`, :func:`headline_counts`). The ``avg`` row averages
languages within each seed first.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alignfreeze.interrupts import interrupted

DEFAULT_SEEDS = (31, 42, 66, 23, 17)
NAMED_STRATEGIES = {
    "baseline": None,  # fine-tune only, no realignment
    "full": "none",  # realign, nothing frozen
    "front": "front",
    "back": "back",
    "front+emb": "front+emb",
    "back+emb": "back+emb",
}
REFERENCE_STRATEGY = "full"
BASELINE_STRATEGY = "baseline"
TOP_KEYS = {"name", "out", "models", "strategies", "seeds", "aligners", "parallel", "source", "targets",
            "realign", "finetune", "evaluate", "xnli", "keep_models"}
REQUIRED = ("out", "models", "strategies", "source", "targets")
# fields a cell sets itself: they may not appear in the realign/finetune sections
CELL_OWNED = {"realign": {"model", "pairs", "out", "freeze", "seed", "name"},
              "finetune": {"model", "train", "out", "seed", "during_realign", "during_freeze", "name"}}


class ExperimentConfigError(ValueError):
    """A bad experiment YAML; the message names the file and the key."""


@dataclass(frozen=True)
class ModelSpec:
    name: str  # label in the tables
    path: str  # what core.models.load resolves (folder, prepared or hub name)


@dataclass(frozen=True)
class Strategy:
    name: str
    freeze: str | None = None  # realignment freeze spec; None = no realignment step
    during: str | None = None  # "during" variant: freeze spec whose realignment grads are dropped

    @property
    def realigns(self) -> bool:
        return self.freeze is not None

    @property
    def needs_pairs(self) -> bool:
        return self.freeze is not None or self.during is not None


@dataclass(frozen=True)
class AlignerSpec:
    name: str
    aligner: str | None = None  # dictionary | eflomal | similarity; None = given pair files
    pairs: tuple[str, ...] = ()
    options: dict = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True)
class Cell:
    model: ModelSpec
    aligner: AlignerSpec | None
    strategy: Strategy
    seed: int

    @property
    def id(self) -> str:
        al = self.aligner.name if self.aligner is not None else "-"
        return _slug(f"{self.model.name}__{al}__{self.strategy.name}__s{self.seed}")


@dataclass
class Experiment:
    """A validated experiment config (paths resolved against the YAML's folder)."""

    path: Path
    name: str
    out: Path
    models: list[ModelSpec]
    strategies: list[Strategy]
    seeds: list[int]
    aligners: list[AlignerSpec]
    parallel: list[dict]
    source: list[str]
    targets: list[str]
    realign: dict = field(default_factory=dict)
    finetune: dict = field(default_factory=dict)
    evaluate: dict = field(default_factory=dict)
    keep_models: bool = False
    xnli: dict | None = None  # {train: [langs], langs: [langs], finetune: {...}}; None = UPOS only

    def cells(self) -> list[Cell]:
        """The grid, in run order (model, aligner, strategy, seed); baseline once per model/seed."""
        out: list[Cell] = []
        for m in self.models:
            base = [s for s in self.strategies if not s.needs_pairs]
            for s in base:
                out.extend(Cell(m, None, s, seed) for seed in self.seeds)
            for a in self.aligners:
                for s in self.strategies:
                    if s.needs_pairs:
                        out.extend(Cell(m, a, s, seed) for seed in self.seeds)
        return out


@dataclass
class ExperimentReport:
    """What a run did: cell ids run now, skipped (already done), failed (id -> message)."""

    ran: list[str]
    skipped: list[str]
    failed: dict[str, str]
    results: Path
    table: Path


def _slug(s: str) -> str:
    return "".join(c if c.isalnum() or c in "._+-" else "_" for c in s)


# ----------------------------------------------------------------------------- config

def _err(path: Path, key: str, msg: str) -> ExperimentConfigError:
    return ExperimentConfigError(f"{path}: key '{key}': {msg}")


def _as_list(path: Path, key: str, value, kind=str) -> list:
    if isinstance(value, kind) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list) or not value:
        raise _err(path, key, f"expected a non-empty list of {kind.__name__}, found {type(value).__name__}")
    for v in value:
        if not isinstance(v, kind) or isinstance(v, bool):
            raise _err(path, key, f"expected {kind.__name__} items, found {v!r} ({type(v).__name__})")
    return value


def _resolve(base: Path, spec: str) -> str:
    """A path relative to the YAML's folder (globs kept as globs)."""
    p = Path(spec).expanduser()
    return os.path.normpath(p if p.is_absolute() else base / p)


def _existing(path: Path, key: str, spec: str, base: Path, check: bool = True) -> str:
    """A treebank spec (file, glob or UD folder, with an optional ``@SELECTION``) resolved
    against the YAML's folder; ``check``: it must find files."""
    from core.conllu import find_treebanks
    from core.selection import parse_spec

    try:
        d = parse_spec(spec, base)
        if check:
            find_treebanks(d.path)
    except (FileNotFoundError, ValueError) as e:
        raise _err(path, key, str(e)) from None
    return d.text


def _file(path: Path, key: str, spec: str, base: Path, check: bool = True, selectable: bool = True) -> str:
    """A data file (``selectable``: with an optional ``@SELECTION``, docs/data.md) resolved
    against the YAML's folder; ``check``: it must exist."""
    from core.selection import parse_spec

    if not selectable:
        full = _resolve(base, spec)
        if check and not Path(full).is_file():
            raise _err(path, key, f"{full}: no such file")
        return full
    try:
        d = parse_spec(spec, base)
    except ValueError as e:
        raise _err(path, key, str(e)) from None
    if check and not Path(d.path).is_file():
        raise _err(path, key, f"{d.path}: no such file")
    return d.text


def _section(path: Path, key: str, value, cls) -> dict:
    """An override section (``realign:``/``finetune:``) checked against the dataclass."""
    import dataclasses

    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _err(path, key, f"expected a mapping of {cls.__name__} fields, found {type(value).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    owned = CELL_OWNED.get(key.split(".")[-1], set())
    for k in value:
        if k in owned:
            raise _err(path, f"{key}.{k}", "is set by each cell (from models/strategies/seeds); remove it")
        if k not in names:
            raise _err(path, f"{key}.{k}", f"unknown field; expected some of {sorted(names - owned)}")
    return dict(value)


def _strategy(path: Path, k: int, item) -> Strategy:
    key = f"strategies[{k}]"
    if isinstance(item, str):
        if item == "none":
            raise _err(path, key, "'none' is ambiguous: use 'baseline' (fine-tune only) or 'full' "
                                  "(realign with nothing frozen)")
        if item not in NAMED_STRATEGIES:
            raise _err(path, key, f"unknown strategy {item!r}: expected one of {', '.join(NAMED_STRATEGIES)} "
                                  "or a mapping {name: ..., freeze: SPEC} / {name: ..., during: SPEC}")
        return Strategy(item, NAMED_STRATEGIES[item])
    if not isinstance(item, dict):
        raise _err(path, key, f"expected a strategy name or a mapping, found {type(item).__name__}")
    unknown = set(item) - {"name", "freeze", "during"}
    if unknown:
        raise _err(path, f"{key}.{sorted(unknown)[0]}", "unknown key; expected name, freeze or during")
    name = item.get("name")
    if not isinstance(name, str) or not name:
        raise _err(path, f"{key}.name", "a custom strategy needs a non-empty name")
    freeze, during = item.get("freeze"), item.get("during")
    if (freeze is None) == (during is None):
        raise _err(path, key, "give exactly one of freeze: SPEC (realign with these layers frozen) or "
                              "during: SPEC (realignment loss during fine-tuning, SPEC's realignment gradients dropped)")
    spec = freeze if freeze is not None else during
    if not isinstance(spec, str | int):
        raise _err(path, f"{key}.{'freeze' if freeze is not None else 'during'}", "expected a freeze spec string")
    return Strategy(name, str(freeze) if freeze is not None else None, str(during) if during is not None else None)


def _aligner(path: Path, k: int, item, base: Path, check: bool = True) -> AlignerSpec:
    from realign.aligners import ALIGNERS

    key = f"aligners[{k}]"
    if isinstance(item, str):
        item = {"aligner": item}
    if not isinstance(item, dict):
        raise _err(path, key, f"expected an aligner name or a mapping, found {type(item).__name__}")
    allowed = {"name", "aligner", "pairs", "layer", "model", "threshold", "pooling", "limit"}
    unknown = set(item) - allowed
    if unknown:
        raise _err(path, f"{key}.{sorted(unknown)[0]}", f"unknown key; expected some of {sorted(allowed)}")
    if "pairs" in item:
        files = [_file(path, f"{key}.pairs", f, base, check) for f in _as_list(path, f"{key}.pairs", item["pairs"])]
        return AlignerSpec(str(item.get("name", "given")), None, tuple(files))
    aligner = item.get("aligner")
    if aligner not in ALIGNERS:
        raise _err(path, f"{key}.aligner", f"unknown aligner {aligner!r}: expected one of {', '.join(ALIGNERS)} "
                                           "(or pairs: [files.jsonl])")
    opts = {k2: item[k2] for k2 in ("layer", "model", "threshold", "pooling", "limit") if k2 in item}
    return AlignerSpec(str(item.get("name", aligner)), aligner, (), opts)


def load_experiment(path: str | Path, *, check_files: bool = True) -> Experiment:
    """Read and validate an experiment YAML; errors name the file and the key.

    ``check_files=False`` validates everything but the existence of the data files (the
    documentation's examples name data of other machines)."""
    import yaml

    from realign.config import RealignConfig
    from realign.finetune import FinetuneConfig

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such experiment config")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ExperimentConfigError(f"{where}: invalid YAML ({getattr(e, 'problem', None) or e})") from None
    if not isinstance(raw, dict):
        raise ExperimentConfigError(f"{path}: expected a YAML mapping of keys ({', '.join(sorted(TOP_KEYS))}), "
                                    f"found {type(raw).__name__}")
    unknown = sorted(set(raw) - TOP_KEYS)
    if unknown:
        raise _err(path, unknown[0], f"unknown key; expected some of {', '.join(sorted(TOP_KEYS))}")
    for k in REQUIRED:
        if k not in raw or raw[k] is None:
            raise _err(path, k, "missing (required keys: " + ", ".join(REQUIRED) + ")")
    base = path.resolve().parent

    models = []
    for k, m in enumerate(raw["models"] if isinstance(raw["models"], list) else [raw["models"]]):
        if isinstance(m, str):
            m = {"name": Path(m).name or m, "path": m}
        if not isinstance(m, dict) or "path" not in m or set(m) - {"name", "path"}:
            raise _err(path, f"models[{k}]", "expected a model name/folder or a mapping {name: ..., path: ...}")
        local = Path(_resolve(base, str(m["path"])))
        models.append(ModelSpec(str(m.get("name") or Path(str(m["path"])).name),
                                str(local) if local.exists() else str(m["path"])))
    if len({m.name for m in models}) != len(models):
        raise _err(path, "models", "two models have the same name; give each a distinct name:")

    if not isinstance(raw["strategies"], list) or not raw["strategies"]:
        raise _err(path, "strategies", "expected a non-empty list")
    strategies = [_strategy(path, k, s) for k, s in enumerate(raw["strategies"])]
    if len({s.name for s in strategies}) != len(strategies):
        raise _err(path, "strategies", "strategy names must be distinct")
    seeds = _as_list(path, "seeds", raw.get("seeds", list(DEFAULT_SEEDS)), int)
    if len(set(seeds)) != len(seeds):
        raise _err(path, "seeds", f"repeated seed in {seeds}")

    parallel = []
    for k, p in enumerate(raw.get("parallel") or []):
        key = f"parallel[{k}]"
        if not isinstance(p, dict) or "src" not in p or set(p) - {"src", "tgt", "dictionary"}:
            raise _err(path, key, "expected a mapping {src: FILE, tgt: FILE, dictionary: FILE (optional)} "
                                  "(src may be hf:DATASET:SRC-TGT, e.g. hf:Helsinki-NLP/opus-100:en-fr, without tgt)")
        hf = str(p["src"]).startswith("hf:")  # a HuggingFace translation dataset (needs the hub)
        entry = {"src": _file(path, f"{key}.src", str(p["src"]), base, check_files and not hf)}
        if p.get("tgt") is not None:
            entry["tgt"] = _file(path, f"{key}.tgt", str(p["tgt"]), base, check_files)
        if p.get("dictionary") is not None:
            entry["dictionary"] = _file(path, f"{key}.dictionary", str(p["dictionary"]), base, check_files,
                                        selectable=False)
        parallel.append(entry)
    raw_al = raw.get("aligners")
    raw_al = [] if raw_al is None else raw_al if isinstance(raw_al, list) else [raw_al]
    aligners = [_aligner(path, k, a, base, check_files) for k, a in enumerate(raw_al)]
    if any(s.needs_pairs for s in strategies):
        if not aligners:
            raise _err(path, "aligners", "realignment strategies need at least one aligner (or pairs: [files])")
        for a in aligners:
            if a.aligner is not None and not parallel:
                raise _err(path, "parallel", f"aligner {a.name!r} needs parallel data: "
                                             "parallel: [{src: FILE, tgt: FILE, dictionary: FILE}]")
            if a.aligner == "dictionary":
                missing = [i for i, p in enumerate(parallel) if "dictionary" not in p]
                if missing:
                    raise _err(path, f"parallel[{missing[0]}].dictionary",
                               f"aligner {a.name!r} (dictionary) needs a MUSE dictionary for every parallel entry")
        if len({a.name for a in aligners}) != len(aligners):
            raise _err(path, "aligners", "aligner names must be distinct (give each a name:)")

    source = [_existing(path, "source", s, base, check_files) for s in _as_list(path, "source", raw["source"])]
    targets = [_existing(path, "targets", s, base, check_files) for s in _as_list(path, "targets", raw["targets"])]
    realign_over = _section(path, "realign", raw.get("realign"), RealignConfig)
    finetune_over = _section(path, "finetune", raw.get("finetune"), FinetuneConfig)
    ev = raw.get("evaluate") or {}
    if not isinstance(ev, dict) or set(ev) - {"batch_size", "max_length"}:
        raise _err(path, "evaluate", "expected a mapping with some of batch_size, max_length "
                                     "(XNLI, the second task, has its own key: xnli)")
    xnli = raw.get("xnli")
    if xnli is not None:
        if not isinstance(xnli, dict) or set(xnli) - {"train", "langs", "finetune"}:
            raise _err(path, "xnli", "expected a mapping with some of train (XNLI languages to fine-tune on, "
                                     "default [en]), langs (evaluation languages, default all), finetune (fields)")
        xnli = {"train": _as_list(path, "xnli.train", xnli.get("train", ["en"])),
                "langs": _as_list(path, "xnli.langs", xnli["langs"]) if xnli.get("langs") else [],
                "finetune": _section(path, "xnli.finetune", xnli.get("finetune"), FinetuneConfig)}
    keep = raw.get("keep_models", False)
    if not isinstance(keep, bool):
        raise _err(path, "keep_models", f"expected true or false, found {keep!r}")
    name = raw.get("name") or path.stem
    return Experiment(path, str(name), Path(_resolve(base, str(raw["out"]))), models, strategies, list(seeds),
                      aligners, parallel, source, targets, realign_over, finetune_over, dict(ev), keep, xnli)


# ----------------------------------------------------------------------------- running

def _say(msg: str) -> None:
    print(f"[experiment] {msg}", flush=True)


def pair_files(exp: Experiment, aligner: AlignerSpec, model: ModelSpec, progress: bool = False) -> list[str]:
    """Word-pair files of ``aligner`` (:func:`alignfreeze.experiment_cell.pair_files`)."""
    from alignfreeze.experiment_cell import pair_files as _pair_files

    return _pair_files(exp, aligner, model, progress)


def run_cell(exp: Experiment, cell: Cell, progress: bool = False):
    """Run one cell (:func:`alignfreeze.experiment_cell.run_cell`); returns its tidy rows."""
    from alignfreeze.experiment_cell import run_cell as _run_cell

    return _run_cell(exp, cell, progress)


def collect_results(out: Path, cells: list[str] | None = None):
    """The finished cells' rows (``OUT/cells/*/results.csv``; only ``cells`` when given: a cell
    of an earlier YAML that the current one no longer asks for is left out) as one DataFrame."""
    import pandas as pd

    files = sorted((out / "cells").glob("*/results.csv"))
    if cells is not None:
        files = [f for f in files if f.parent.name in set(cells)]
    if not files:
        return pd.DataFrame()
    return pd.concat([pd.read_csv(f) for f in files], ignore_index=True)


def _treebank_label(file) -> str:
    """A treebank's name in the table: the file name of a CoNLL-U path, else as given."""
    if not isinstance(file, str) or not file:
        return "-"
    return Path(file).name if file.endswith(".conllu") else file


def summary_table(results, reference: str = REFERENCE_STRATEGY, baseline: str = BASELINE_STRATEGY):
    """Mean and std over SEEDS per (model, aligner, strategy, task, lang, treebanks), plus ``avg``.

    A seed is the only replicate: the rows of one seed and language are first combined into
    one number, the unweighted mean over that language's treebanks (e.g. dev and test, or two
    treebanks of one language; each treebank counts once whatever its size), and the table
    says which treebanks in ``treebanks``. Seeds with different treebank sets are never mixed.
    ``avg`` averages the languages within each seed, then over seeds. ``std`` is the sample
    std (ddof 1) over seeds, NaN ("n/a") below two seeds.

    Each row is compared with the ``baseline`` strategy (no realignment) and the ``reference``
    (full realignment) of the same model, aligner, task, language and treebanks:
    ``delta_vs_* = mean - mean_*``; ``beats_*`` / ``loses_*``: the difference exceeds one
    standard deviation, ``|delta| > max(std, std_*)``; NA (n/a) unless both have >= 2 seeds.
    The baseline (aligner ``-``) is repeated under every aligner of its model.
    """
    import numpy as np
    import pandas as pd

    cols = ["model", "aligner", "strategy", "task", "lang", "treebanks", "mean", "std", "n_seeds",
            "delta_vs_baseline", "beats_baseline", "loses_baseline", "delta_vs_full", "beats_full", "loses_full"]
    if results is None or len(results) == 0:
        return pd.DataFrame(columns=cols)
    r = results[results["metric"] == "accuracy"].copy()
    r["treebank"] = r["file"].map(_treebank_label) if "file" in r.columns else "-"
    aligners = sorted(a for a in r["aligner"].unique() if a != "-") or ["-"]
    base = r[r["aligner"] == "-"]
    r = pd.concat([r[r["aligner"] != "-"]] + [base.assign(aligner=a) for a in aligners], ignore_index=True)
    keys = ["model", "aligner", "strategy", "task"]
    # one number per seed and language: the mean over the language's treebanks
    per_lang = (r.groupby([*keys, "seed", "lang"], as_index=False)
                .agg(value=("value", "mean"), treebanks=("treebank", lambda t: "+".join(sorted(set(t))))))
    avg = (per_lang.groupby([*keys, "seed"], as_index=False)
           .agg(value=("value", "mean"), treebanks=("treebanks", lambda t: "+".join(sorted(t))))
           .assign(lang="avg"))
    per_seed = pd.concat([per_lang, avg], ignore_index=True)
    g = (per_seed.groupby([*keys, "lang", "treebanks"], as_index=False)["value"]
         .agg(mean="mean", std=lambda v: float(np.std(v, ddof=1)) if len(v) > 1 else float("nan"),
              n_seeds="count"))
    on = ["model", "aligner", "task", "lang", "treebanks"]
    for name, strategy in (("baseline", baseline), ("full", reference)):
        ref = g[g["strategy"] == strategy][[*on, "mean", "std", "n_seeds"]]
        m = g.merge(ref, on=on, how="left", suffixes=("", "_ref"))
        delta = m["mean"] - m["mean_ref"]
        spread = np.maximum(m["std"], m["std_ref"])
        defined = (m["n_seeds"] >= 2) & (m["n_seeds_ref"] >= 2) & (m["strategy"] != strategy) & m["mean_ref"].notna()
        g[f"delta_vs_{name}"] = delta.where(m["strategy"] != strategy)
        g[f"beats_{name}"] = pd.array((delta > spread).where(defined, None), dtype="boolean")
        g[f"loses_{name}"] = pd.array((-delta > spread).where(defined, None), dtype="boolean")
    return g[cols]


def headline_counts(summary):
    """The paper's headline, per (model, aligner, task, strategy): over the languages (not
    ``avg``), how many beat / lose to the baseline and to full realignment by more than one
    std. ``n_langs`` counts the languages; a count is NA (n/a) where no comparison is
    defined (fewer than two seeds on either side)."""
    import pandas as pd

    cols = ["model", "aligner", "task", "strategy", "n_langs", "beats_baseline", "loses_baseline",
            "beats_full", "loses_full"]
    t = summary[summary["lang"] != "avg"] if len(summary) else summary
    if len(t) == 0:
        return pd.DataFrame(columns=cols)
    rows = []
    for (model, aligner, task, strategy), x in t.groupby(["model", "aligner", "task", "strategy"], sort=False):
        row = {"model": model, "aligner": aligner, "task": task, "strategy": strategy, "n_langs": len(x)}
        for c in cols[5:]:
            v = x[c].dropna()
            row[c] = int(v.sum()) if len(v) else pd.NA
        rows.append(row)
    out = pd.DataFrame(rows, columns=cols)
    for c in cols[5:]:
        out[c] = out[c].astype("Int64")
    return out


def _true(v) -> bool:
    """A nullable boolean that is set and true."""
    import pandas as pd

    return not pd.isna(v) and bool(v)


def _count(v) -> str:
    import pandas as pd

    return "n/a" if pd.isna(v) else str(int(v))


def format_table(summary, strategies: list[str] | None = None) -> str:
    """Markdown: one table per (model, aligner, task); rows languages (+ avg), columns
    strategies, cells ``mean ± std`` in percent (``± n/a`` below two seeds); **bold** where
    the strategy beats full realignment, † where it beats the baseline, by more than one
    std; then the headline counts per strategy."""
    import pandas as pd

    if len(summary) == 0:
        return "_no finished cells yet_\n"
    out = []
    heads = headline_counts(summary)
    for (model, aligner, task), t in summary.groupby(["model", "aligner", "task"], sort=False):
        strats = [s for s in (strategies or []) if s in set(t["strategy"])] or list(dict.fromkeys(t["strategy"]))
        langs = sorted(lang for lang in t["lang"].unique() if lang != "avg") + ["avg"]
        out.append(f"### {model} — aligner {aligner} — {task} accuracy (%)\n")
        out.append("| lang | " + " | ".join(strats) + " |")
        out.append("|---|" + "---:|" * len(strats))
        idx = {}
        for row in t.itertuples():
            idx.setdefault((row.strategy, row.lang), []).append(row)
        for lang in langs:
            cells = []
            for s in strats:
                rows = idx.get((s, lang), [])
                txt = []
                for row in rows:  # several rows only where seeds saw different treebank sets
                    sd = "n/a" if pd.isna(row.std) else f"{100 * row.std:.1f}"
                    c = f"{100 * row.mean:.1f} ± {sd}"
                    c = f"**{c}**" if _true(row.beats_full) else c
                    c = c + " †" if _true(row.beats_baseline) else c
                    txt.append(c if len(rows) == 1 else f"{c} ({row.treebanks})")
                cells.append("; ".join(txt))
            out.append(f"| {lang} | " + " | ".join(cells) + " |")
        out.append("")
        h = heads[(heads["model"] == model) & (heads["aligner"] == aligner) & (heads["task"] == task)]
        h = h.set_index("strategy").reindex([s for s in strats if s in set(h["strategy"])])
        out.append(f"Languages (of {int(h['n_langs'].max())}) where a strategy beats / loses to the baseline "
                   "and full realignment by more than one std:\n")
        out.append("| strategy | > baseline | < baseline | > full | < full |")
        out.append("|---|---:|---:|---:|---:|")
        for s, row in h.iterrows():
            out.append(f"| {s} | {_count(row.beats_baseline)} | {_count(row.loses_baseline)} | "
                       f"{_count(row.beats_full)} | {_count(row.loses_full)} |")
        out.append("")
    n_max = int(summary["n_seeds"].max())
    out.append(f"Mean ± std over seeds (n = {n_max} at most; std and marks n/a below two seeds). Each seed's "
               "value of a language is the mean over its treebanks (column `treebanks` of table.csv). "
               "**Bold**: beats full realignment, †: beats the baseline (no realignment), by more than one "
               "standard deviation: mean_s − mean_ref > max(std_s, std_ref).\n")
    return "\n".join(out)


def write_outputs(exp: Experiment):
    """Rewrite ``results.csv``, ``table.csv``, ``headline.csv`` and ``table.md`` atomically
    from the cells."""
    from core.io import atomic_write_text

    ids = [c.id for c in exp.cells()]
    results = collect_results(exp.out, ids)
    summary = summary_table(results)
    atomic_write_text(exp.out / "results.csv", results.to_csv(index=False))
    atomic_write_text(exp.out / "table.csv", summary.to_csv(index=False))
    atomic_write_text(exp.out / "headline.csv", headline_counts(summary).to_csv(index=False))
    atomic_write_text(exp.out / "table.md", f"# {exp.name}\n\n" + format_table(summary, [s.name for s in exp.strategies]))
    return results, summary


def _record_config(exp: Experiment) -> None:
    """``OUT/experiment.json``: the YAML as run and the environment (read by ``alignfreeze report``)."""
    import time

    from core.io import atomic_write_json, environment

    atomic_write_json(exp.out / "experiment.json", {
        "name": exp.name, "config_file": str(exp.path), "config_yaml": exp.path.read_text(encoding="utf-8"),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"), "environment": environment()})


def run_experiment(config: str | Path | Experiment, *, progress: bool = False, dry_run: bool = False) -> ExperimentReport:
    """Run every unfinished cell of the grid; finished cells (``results.csv``) are skipped,
    failures are recorded in ``OUT/failures.json`` and the others go on."""
    from alignfreeze.experiment_cell import cell_plan
    from alignfreeze.experiment_cell import run_cell as _run_cell
    from alignfreeze.experiment_reuse import RECORD, BaseHashes, differences, read_json
    from core.io import atomic_write_json

    exp = config if isinstance(config, Experiment) else load_experiment(config)
    cells = exp.cells()
    exp.out.mkdir(parents=True, exist_ok=True)
    if not dry_run:
        _record_config(exp)
    fail_file = exp.out / "failures.json"
    failures: dict[str, Any] = json.loads(fail_file.read_text()) if fail_file.is_file() else {}
    ran, skipped, failed = [], [], {}
    hashes, cache = BaseHashes(), {}  # base weights and data hashed once per run
    _say(f"{exp.name}: {len(cells)} cells ({len(exp.models)} model(s) x strategies x {len(exp.seeds)} seed(s)) "
         f"-> {exp.out}")
    for k, cell in enumerate(cells, 1):
        cdir, plan = exp.out / "cells" / cell.id, None
        try:
            if (cdir / "results.csv").is_file():
                # reuse only what was computed from what the YAML asks now (cell.json)
                plan = cell_plan(exp, cell, hashes, cache)
                saved = read_json(cdir / RECORD)
                diff = differences(saved, plan) if saved is not None else [
                    f"no record of what it was computed from ({RECORD})"]
                if not diff:
                    skipped.append(cell.id)
                    _say(f"[{k}/{len(cells)}] {cell.id}: done already, skipped: results reused (configs, data "
                         "hashes and base weights as the YAML asks)")
                    continue
                _say(f"[{k}/{len(cells)}] {cell.id}: done, but not with what the YAML asks now: {'; '.join(diff)}")
            if dry_run:
                _say(f"[{k}/{len(cells)}] {cell.id}: would run")
                continue
            _say(f"[{k}/{len(cells)}] {cell.id}: running")
            _run_cell(exp, cell, progress=progress, hashes=hashes, plan=plan)
        except Exception as e:  # a failed cell must not stop the grid: record it, go on
            if interrupted():  # a Ctrl-C that surfaced as another error (e.g. in an import): stop
                raise
            msg = f"{type(e).__name__}: {e}"
            failed[cell.id] = msg
            failures[cell.id] = {"error": type(e).__name__, "message": str(e), "traceback": traceback.format_exc()}
            print(f"[experiment] {cell.id}: FAILED: {msg}", file=sys.stderr, flush=True)
        else:
            ran.append(cell.id)
            failures.pop(cell.id, None)
            write_outputs(exp)
        atomic_write_json(fail_file, failures)
    if not dry_run:
        write_outputs(exp)
    ids = {c.id for c in cells}
    gone = sorted(d.name for d in (exp.out / "cells").glob("*") if d.is_dir() and d.name not in ids) \
        if (exp.out / "cells").is_dir() else []
    if gone:
        _say(f"{len(gone)} cell folder(s) of an earlier grid that this YAML does not ask for are left out of the "
             f"tables: {', '.join(gone[:5])}{', ...' if len(gone) > 5 else ''}")
    _say(f"done: {len(ran)} ran, {len(skipped)} skipped, {len(failed)} failed; "
         f"results {exp.out / 'results.csv'}, table {exp.out / 'table.md'}")
    return ExperimentReport(ran, skipped, failed, exp.out / "results.csv", exp.out / "table.md")
