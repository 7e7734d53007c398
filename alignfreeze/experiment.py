"""The AlignFreeze experiment grid: realign -> fine-tune -> zero-shot evaluate, per cell.

A YAML file lists models, strategies, seeds, aligners, the parallel data for the word
pairs, the source treebank(s) and the target treebanks (see ``docs/experiments.md`` and
``examples/demo_experiment.yaml``). One *cell* = model x aligner x strategy x seed; the
``baseline`` strategy (fine-tune only) does not depend on the aligner and runs once per
model and seed.

Per cell, under ``OUT/cells/<cell id>/``: ``realigned/`` (:func:`realign.train.realign`),
``finetuned/`` (:func:`realign.finetune.finetune`), then ``results.csv``
(:func:`realign.evaluate.evaluate` rows plus run/model/aligner/strategy/freeze/seed),
written atomically LAST: a cell is done exactly when its ``results.csv`` exists, and a
re-run skips it. A half-finished cell reuses whatever finished inside it (a realigned
model with its manifest is not realigned again; an interrupted realignment resumes
from its checkpoints). A failing cell is recorded in ``OUT/failures.json`` (error and
traceback) and the grid goes on.

After every cell: ``OUT/results.csv`` (all tidy rows) and the paper-style table
``OUT/table.md`` / ``OUT/table.csv``: per language and strategy, mean +- std over seeds;
a strategy is marked (bold) where it beats full realignment by more than one standard
deviation: ``mean_s - mean_full > max(std_s, std_full)`` (sample std over seeds, taken
as 0 with a single seed). The ``avg`` row averages languages within each seed first.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
TOP_KEYS = {"name", "out", "models", "strategies", "seeds", "aligners", "parallel", "source", "targets",
            "realign", "finetune", "evaluate", "xnli", "keep_models"}
REQUIRED = ("out", "models", "strategies", "source", "targets")
# fields a cell sets itself: they may not appear in the realign/finetune sections
CELL_OWNED = {"realign": {"model", "pairs", "out", "freeze", "seed"},
              "finetune": {"model", "train", "out", "seed", "during_realign", "during_freeze"}}


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


def _existing(path: Path, key: str, spec: str, base: Path) -> str:
    from core.conllu import find_treebanks

    full = _resolve(base, spec)
    try:
        find_treebanks(full)
    except FileNotFoundError as e:
        raise _err(path, key, str(e)) from None
    return full


def _file(path: Path, key: str, spec: str, base: Path) -> str:
    full = _resolve(base, spec)
    if not Path(full).is_file():
        raise _err(path, key, f"{full}: no such file")
    return full


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


def _aligner(path: Path, k: int, item, base: Path) -> AlignerSpec:
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
        files = [_file(path, f"{key}.pairs", f, base) for f in _as_list(path, f"{key}.pairs", item["pairs"])]
        return AlignerSpec(str(item.get("name", "given")), None, tuple(files))
    aligner = item.get("aligner")
    if aligner not in ALIGNERS:
        raise _err(path, f"{key}.aligner", f"unknown aligner {aligner!r}: expected one of {', '.join(ALIGNERS)} "
                                           "(or pairs: [files.jsonl])")
    opts = {k2: item[k2] for k2 in ("layer", "model", "threshold", "pooling", "limit") if k2 in item}
    return AlignerSpec(str(item.get("name", aligner)), aligner, (), opts)


def load_experiment(path: str | Path) -> Experiment:
    """Read and validate an experiment YAML; errors name the file and the key."""
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
        entry = {"src": str(p["src"]) if hf else _file(path, f"{key}.src", str(p["src"]), base)}
        if p.get("tgt") is not None:
            entry["tgt"] = _file(path, f"{key}.tgt", str(p["tgt"]), base)
        if p.get("dictionary") is not None:
            entry["dictionary"] = _file(path, f"{key}.dictionary", str(p["dictionary"]), base)
        parallel.append(entry)
    raw_al = raw.get("aligners")
    raw_al = [] if raw_al is None else raw_al if isinstance(raw_al, list) else [raw_al]
    aligners = [_aligner(path, k, a, base) for k, a in enumerate(raw_al)]
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

    source = [_existing(path, "source", s, base) for s in _as_list(path, "source", raw["source"])]
    targets = [_existing(path, "targets", s, base) for s in _as_list(path, "targets", raw["targets"])]
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
    """Word-pair files of ``aligner`` (extracted once into ``OUT/pairs/``, reused after)."""
    from core.parallel import read_parallel
    from realign.pairs import extract_pairs, write_pairs

    if aligner.aligner is None:
        return list(aligner.pairs)
    folder = exp.out / "pairs" / _slug(aligner.name + (f"__{model.name}" if aligner.aligner == "similarity" else ""))
    files = []
    for k, p in enumerate(exp.parallel):
        f = folder / f"{k:02d}_{_slug(Path(p['src']).stem)}__{_slug(Path(p.get('tgt', p['src'])).stem)}.jsonl"
        if p["src"].startswith("hf:"):
            f = folder / f"{k:02d}_{_slug(p['src'][3:])}.jsonl"
        if not f.is_file():
            pairs = read_parallel(p["src"], p.get("tgt"), limit=aligner.options.get("limit"))
            m = tok = None
            if aligner.aligner == "similarity":
                from core.models import load

                m, tok = load(aligner.options.get("model", model.path))
            records, summary = extract_pairs(
                pairs, aligner.aligner, dictionary=p.get("dictionary"), model=m, tokenizer=tok,
                layer=int(aligner.options.get("layer", 8)), pooling=aligner.options.get("pooling", "first"),
                threshold=float(aligner.options.get("threshold", 1e-3)), progress=progress)
            write_pairs(f, records)
            _say(f"pairs {f.name}: {summary['pairs_kept']}/{summary['sentence_pairs']} sentence pairs, "
                 f"{summary['links']} links")
        files.append(str(f))
    return files


def run_cell(exp: Experiment, cell: Cell, progress: bool = False):
    """Realign (if the strategy does), fine-tune, evaluate; returns the cell's tidy rows
    (also written to ``OUT/cells/<id>/results.csv``, last)."""
    import pandas as pd

    from core.io import atomic_write_text
    from core.manifest import MANIFEST
    from realign.config import RealignConfig
    from realign.evaluate import evaluate
    from realign.finetune import FinetuneConfig, finetune
    from realign.train import latest_checkpoint, realign

    cdir = exp.out / "cells" / cell.id
    pairs = pair_files(exp, cell.aligner, cell.model, progress) if cell.strategy.needs_pairs else []
    start = cell.model.path
    if cell.strategy.realigns:
        rdir = cdir / "realigned"
        if not (rdir / MANIFEST).is_file():
            rcfg = RealignConfig(model=cell.model.path, pairs=tuple(pairs), out=str(rdir),
                                 freeze=cell.strategy.freeze, seed=cell.seed, **exp.realign)
            realign(rcfg, progress=progress, resume=latest_checkpoint(rdir) is not None)
        start = str(rdir)
    fdir = cdir / "finetuned"
    if not (fdir / MANIFEST).is_file():
        during = {}
        if cell.strategy.during is not None:
            during = {"during_realign": tuple(pairs), "during_freeze": cell.strategy.during}
        fcfg = FinetuneConfig(model=start, train=tuple(exp.source), out=str(fdir), seed=cell.seed,
                              **{**exp.finetune, **during})
        finetune(fcfg, progress=progress)
    ev = exp.evaluate
    df = evaluate(str(fdir), exp.targets, tasks=("upos",), model_name=cell.model.name,
                  batch_size=int(ev.get("batch_size", 32)), max_length=ev.get("max_length"), progress=progress)
    if exp.xnli is not None:
        df = pd.concat([df, _xnli_rows(exp, cell, start, cdir, pairs, progress)], ignore_index=True)
    df.insert(0, "run", cell.id)
    df.insert(2, "aligner", cell.aligner.name if cell.aligner else "-")
    df.insert(3, "strategy", cell.strategy.name)
    df.insert(4, "freeze", cell.strategy.freeze or (f"during:{cell.strategy.during}" if cell.strategy.during else "-"))
    df.insert(5, "seed", cell.seed)
    atomic_write_text(cdir / "results.csv", df.to_csv(index=False))
    if not exp.keep_models:
        for d in (cdir / "realigned", fdir, cdir / "finetuned_xnli"):
            shutil.rmtree(d, ignore_errors=True)
    return df


def _xnli_rows(exp: Experiment, cell: Cell, start: str, cdir: Path, pairs: list[str], progress: bool):
    """The second task: fine-tune for XNLI from the same starting point, evaluate zero-shot.
    Without the hub it is skipped with a message (the cell keeps its UPOS rows)."""
    import pandas as pd

    from core.manifest import MANIFEST
    from realign.evaluate import HubUnavailable, evaluate
    from realign.finetune import FinetuneConfig, finetune

    xdir = cdir / "finetuned_xnli"
    try:
        if not (xdir / MANIFEST).is_file():
            during = {}
            if cell.strategy.during is not None:
                during = {"during_realign": tuple(pairs), "during_freeze": cell.strategy.during}
            finetune(FinetuneConfig(model=start, train=tuple(exp.xnli["train"]), out=str(xdir), seed=cell.seed,
                                    task="xnli", **{**exp.xnli["finetune"], **during}), progress=progress)
    except HubUnavailable as e:
        print(f"[experiment] {cell.id}: XNLI skipped: {e}", file=sys.stderr, flush=True)
        return pd.DataFrame()
    return evaluate(str(xdir), tasks=("xnli",), xnli_langs=tuple(exp.xnli["langs"]), model_name=cell.model.name,
                    batch_size=int(exp.evaluate.get("batch_size", 32)), progress=progress)


def collect_results(out: Path):
    """All finished cells' rows (``OUT/cells/*/results.csv``) as one DataFrame."""
    import pandas as pd

    files = sorted((out / "cells").glob("*/results.csv"))
    if not files:
        return pd.DataFrame()
    return pd.concat([pd.read_csv(f) for f in files], ignore_index=True)


def summary_table(results, reference: str = REFERENCE_STRATEGY):
    """Mean, std over seeds per (model, aligner, strategy, task, lang), plus ``avg``.

    The baseline (aligner ``-``) is repeated under every aligner of its model so each
    table is complete. ``beats_full``: ``mean - mean_full > max(std, std_full)``.
    """
    import numpy as np
    import pandas as pd

    cols = ["model", "aligner", "strategy", "task", "lang", "mean", "std", "n_seeds", "delta_vs_full", "beats_full"]
    if results is None or len(results) == 0:
        return pd.DataFrame(columns=cols)
    r = results[results["metric"] == "accuracy"].copy()
    aligners = sorted(a for a in r["aligner"].unique() if a != "-") or ["-"]
    base = r[r["aligner"] == "-"]
    parts = [r[r["aligner"] != "-"]] + [base.assign(aligner=a) for a in aligners]
    r = pd.concat(parts, ignore_index=True)
    avg = (r.groupby(["model", "aligner", "strategy", "task", "seed"], as_index=False)["value"].mean()
           .assign(lang="avg"))
    r = pd.concat([r, avg], ignore_index=True)
    g = (r.groupby(["model", "aligner", "strategy", "task", "lang"], as_index=False)["value"]
         .agg(mean="mean", std=lambda v: float(np.std(v, ddof=1)) if len(v) > 1 else 0.0, n_seeds="count"))
    ref = g[g["strategy"] == reference][["model", "aligner", "task", "lang", "mean", "std"]]
    g = g.merge(ref, on=["model", "aligner", "task", "lang"], how="left", suffixes=("", "_full"))
    g["delta_vs_full"] = g["mean"] - g["mean_full"]
    g["beats_full"] = (g["strategy"] != reference) & (g["delta_vs_full"] > np.maximum(g["std"], g["std_full"]))
    g["beats_full"] = g["beats_full"].fillna(False).astype(bool)
    return g[cols]


def format_table(summary, strategies: list[str] | None = None) -> str:
    """Markdown: one table per (model, aligner, task); rows languages (+ avg), columns
    strategies, cells ``mean ± std`` in percent, bold where the strategy beats full."""
    if len(summary) == 0:
        return "_no finished cells yet_\n"
    out = []
    for (model, aligner, task), t in summary.groupby(["model", "aligner", "task"], sort=False):
        strats = [s for s in (strategies or []) if s in set(t["strategy"])] or list(dict.fromkeys(t["strategy"]))
        langs = sorted(lang for lang in t["lang"].unique() if lang != "avg") + ["avg"]
        out.append(f"### {model} — aligner {aligner} — {task} accuracy (%)\n")
        out.append("| lang | " + " | ".join(strats) + " |")
        out.append("|---|" + "---:|" * len(strats))
        idx = {(row.strategy, row.lang): row for row in t.itertuples()}
        for lang in langs:
            cells = []
            for s in strats:
                row = idx.get((s, lang))
                if row is None:
                    cells.append("")
                    continue
                txt = f"{100 * row.mean:.1f} ± {100 * row.std:.1f}"
                cells.append(f"**{txt}**" if row.beats_full else txt)
            out.append(f"| {lang} | " + " | ".join(cells) + " |")
        out.append("")
    out.append(f"Mean ± std over seeds (n = {int(summary['n_seeds'].max())} at most). **Bold**: beats full "
               "realignment by more than one standard deviation (mean_s − mean_full > max(std_s, std_full)).\n")
    return "\n".join(out)


def write_outputs(exp: Experiment):
    """Rewrite ``results.csv``, ``table.csv`` and ``table.md`` atomically from the cells."""
    from core.io import atomic_write_text

    results = collect_results(exp.out)
    summary = summary_table(results)
    atomic_write_text(exp.out / "results.csv", results.to_csv(index=False))
    atomic_write_text(exp.out / "table.csv", summary.to_csv(index=False))
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
    from core.io import atomic_write_json

    exp = config if isinstance(config, Experiment) else load_experiment(config)
    cells = exp.cells()
    exp.out.mkdir(parents=True, exist_ok=True)
    if not dry_run:
        _record_config(exp)
    fail_file = exp.out / "failures.json"
    failures: dict[str, Any] = json.loads(fail_file.read_text()) if fail_file.is_file() else {}
    ran, skipped, failed = [], [], {}
    _say(f"{exp.name}: {len(cells)} cells ({len(exp.models)} model(s) x strategies x {len(exp.seeds)} seed(s)) "
         f"-> {exp.out}")
    for k, cell in enumerate(cells, 1):
        if (exp.out / "cells" / cell.id / "results.csv").is_file():
            skipped.append(cell.id)
            _say(f"[{k}/{len(cells)}] {cell.id}: done already, skipped")
            continue
        if dry_run:
            _say(f"[{k}/{len(cells)}] {cell.id}: would run")
            continue
        _say(f"[{k}/{len(cells)}] {cell.id}: running")
        try:
            run_cell(exp, cell, progress=progress)
        except Exception as e:  # a failed cell must not stop the grid: record it, go on
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
    _say(f"done: {len(ran)} ran, {len(skipped)} skipped, {len(failed)} failed; "
         f"results {exp.out / 'results.csv'}, table {exp.out / 'table.md'}")
    return ExperimentReport(ran, skipped, failed, exp.out / "results.csv", exp.out / "table.md")
