"""One cell of the experiment grid: word pairs -> realign -> fine-tune -> evaluate, reusing
only what still matches the YAML (:mod:`alignfreeze.experiment_reuse`).

Per cell, under ``OUT/cells/<cell id>/``: ``realigned/``, ``finetuned/`` (and
``finetuned_xnli/``), then ``cell.json`` (what the results were computed from) and
``results.csv``, written LAST: a cell is done exactly when its ``results.csv`` exists and
its ``cell.json`` matches what the YAML asks now. The checkpoints of a cell are named after
it (``front-s42``; the model and aligner come first when the grid has several), so tables
and figures of them never show a folder name such as ``realigned``.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from alignfreeze.experiment import AlignerSpec, Cell, Experiment, ModelSpec, _slug
from alignfreeze.experiment_reuse import (
    BaseHashes,
    data_identity,
    differences,
    finetune_identity,
    finetune_identity_of_manifest,
    pairs_identity,
    pairs_record,
    read_json,
    realign_identity,
    realign_identity_of_checkpoint,
    realign_identity_of_manifest,
)

STEPS = ("realigned", "finetuned", "finetuned_xnli")


def _say(msg: str) -> None:
    print(f"[experiment] {msg}", flush=True)


def cell_name(exp: Experiment, cell: Cell) -> str:
    """Display name of a cell's checkpoints: ``STRATEGY-sSEED``, after the model and the
    aligner names when the grid has several of them."""
    parts = [cell.model.name] if len(exp.models) > 1 else []
    if cell.aligner is not None and len(exp.aligners) > 1:
        parts.append(cell.aligner.name)
    parts.append(f"{cell.strategy.name}-s{cell.seed}")
    return _slug(".".join(parts))


def _langs(p: dict):
    from core.names import LanguageUnknown, parallel_langs
    from core.selection import parse_spec

    try:
        return parallel_langs(parse_spec(p["src"]).path, parse_spec(p["tgt"]).path if p.get("tgt") else None)
    except LanguageUnknown:
        return None  # the records carry no language codes


def pair_files(exp: Experiment, aligner: AlignerSpec, model: ModelSpec, progress: bool = False,
               hashes: BaseHashes | None = None) -> list[str]:
    """Word-pair files of ``aligner``: extracted into ``OUT/pairs/``, reused by later cells and
    runs only while their inputs (recorded next to each file) are those the YAML names."""
    from core.inputs import select_parallel
    from core.io import atomic_write_json
    from core.selection import parse_spec
    from realign.pairs import extract_pairs, write_pairs

    if aligner.aligner is None:
        return list(aligner.pairs)
    hashes = hashes or BaseHashes()
    sim_model = aligner.options.get("model", model.path)
    folder = exp.out / "pairs" / _slug(aligner.name + (f"__{model.name}" if aligner.aligner == "similarity" else ""))
    files = []
    for k, p in enumerate(exp.parallel):
        src, tgt = parse_spec(p["src"]).path, parse_spec(p["tgt"]).path if p.get("tgt") else None
        f = folder / f"{k:02d}_{_slug(Path(src).stem)}__{_slug(Path(tgt or src).stem)}.jsonl"
        if src.startswith("hf:"):
            f = folder / f"{k:02d}_{_slug(src[3:])}.jsonl"
        wanted = pairs_identity(p, aligner, hashes(sim_model) if aligner.aligner == "similarity" else None)
        saved = read_json(pairs_record(f)) if f.is_file() else None
        if saved == wanted:
            files.append(str(f))
            continue
        if f.is_file():
            diff = differences(saved, wanted) if saved is not None else ["no record of its inputs"]
            _say(f"pairs {f.name}: extracted again: {'; '.join(diff)}")
        sel = select_parallel(p["src"], p.get("tgt"), limit=aligner.options.get("limit"))
        m = tok = None
        if aligner.aligner == "similarity":
            from core.models import load

            m, tok = load(sim_model)
        records, summary = extract_pairs(
            sel.items, aligner.aligner, dictionary=p.get("dictionary"), model=m, tokenizer=tok,
            layer=int(aligner.options.get("layer", 8)), pooling=aligner.options.get("pooling", "first"),
            threshold=float(aligner.options.get("threshold", 1e-3)), progress=progress, langs=_langs(p))
        write_pairs(f, records)
        atomic_write_json(pairs_record(f), wanted)
        _say(f"pairs {f.name}: {summary['pairs_kept']}/{summary['sentence_pairs']} sentence pairs, "
             f"{summary['links']} links")
        files.append(str(f))
    return files


def _clear(cdir: Path, steps) -> None:
    for s in steps:
        shutil.rmtree(cdir / s, ignore_errors=True)


def _realigned(exp, cell, cdir, pairs, hashes, progress) -> dict:
    """The cell's realignment: reused when its manifest matches, resumed when its newest
    checkpoint matches, else (re)computed; returns its manifest."""
    from core.config import to_dict
    from core.inputs import entries, select_pairs
    from core.manifest import MANIFEST, read_manifest
    from realign.config import RealignConfig
    from realign.train import TRAINER_STATE, latest_checkpoint, realign

    rdir = cdir / "realigned"
    rcfg = RealignConfig(model=cell.model.path, pairs=tuple(pairs), out=str(rdir), freeze=cell.strategy.freeze,
                         seed=cell.seed, name=cell_name(exp, cell), **exp.realign)
    wanted = realign_identity(to_dict(rcfg), entries(select_pairs(pairs)), hashes(cell.model.path))
    if (rdir / MANIFEST).is_file():
        diff = differences(realign_identity_of_manifest(read_manifest(rdir)), wanted)
        if not diff:
            _say(f"{cell.id}: realigned/ reused (config, word-pair hashes and base weights as the YAML asks)")
            return read_manifest(rdir)
        _say(f"{cell.id}: realigned/ is stale, realigned again: {'; '.join(diff)}")
        _clear(cdir, STEPS)
    ckpt = latest_checkpoint(rdir)
    if ckpt is not None:
        state = read_json(ckpt / TRAINER_STATE) or {}
        diff = differences(realign_identity_of_checkpoint(state), wanted)
        if diff:
            _say(f"{cell.id}: the interrupted realignment in {rdir} does not match the YAML, started over: "
                 f"{'; '.join(diff)}")
            _clear(cdir, ("realigned",))
            ckpt = None
    _clear(cdir, STEPS[1:])  # whatever was fine-tuned before came from another realignment
    realign(rcfg, progress=progress, resume=ckpt is not None)
    return read_manifest(rdir)


def _finetuned(fdir: Path, fcfg, pairs, start_hash, progress, cell_id) -> None:
    """Fine-tune into ``fdir`` unless a matching fine-tuning is there."""
    from core.config import to_dict
    from core.inputs import entries, select_pairs, select_treebanks
    from core.manifest import MANIFEST, read_manifest
    from realign.finetune import finetune

    source = entries(select_treebanks(fcfg.train)) if fcfg.task == "upos" else []
    during = entries(select_pairs(pairs)) if fcfg.during_realign else []
    wanted = finetune_identity(to_dict(fcfg), source, during, start_hash)
    if (fdir / MANIFEST).is_file():
        diff = differences(finetune_identity_of_manifest(read_manifest(fdir)), wanted)
        if not diff:
            _say(f"{cell_id}: {fdir.name}/ reused (config, data hashes and starting weights as the YAML asks)")
            return
        _say(f"{cell_id}: {fdir.name}/ is stale, fine-tuned again: {'; '.join(diff)}")
        shutil.rmtree(fdir)
    finetune(fcfg, progress=progress)


def cell_plan(exp: Experiment, cell: Cell, hashes: BaseHashes, cache: dict | None = None) -> dict:
    """What a finished cell's results depend on (written as ``cell.json``): base weights,
    word-pair inputs, realign and fine-tune configs, source and target data, evaluation."""
    from core.config import to_dict
    from core.inputs import entries, select_pairs, select_treebanks
    from realign.config import RealignConfig
    from realign.finetune import FinetuneConfig

    from .experiment_reuse import FINETUNE_FREE, REALIGN_FREE, config_identity

    cache = {} if cache is None else cache

    def once(key, fn):
        if key not in cache:
            cache[key] = fn()
        return cache[key]

    plan: dict = {"base_weights": hashes(cell.model.path)}
    a = cell.aligner
    if cell.strategy.needs_pairs and a is not None:
        if a.aligner is None:
            plan["pairs"] = once(("given", a.name), lambda: data_identity(entries(select_pairs(list(a.pairs)))))
        else:
            sim = hashes(a.options.get("model", cell.model.path)) if a.aligner == "similarity" else None
            plan["pairs"] = once(("pairs", a.name, sim), lambda: [pairs_identity(p, a, sim) for p in exp.parallel])
    if cell.strategy.realigns:
        rcfg = RealignConfig(model=cell.model.path, pairs=("-",), out="-", freeze=cell.strategy.freeze,
                             seed=cell.seed, **exp.realign)
        plan["realign"] = config_identity(to_dict(rcfg), REALIGN_FREE)
    during = {"during_realign": ("-",), "during_freeze": cell.strategy.during} if cell.strategy.during else {}
    fcfg = FinetuneConfig(model="-", train=tuple(exp.source), out="-", seed=cell.seed, **{**exp.finetune, **during})
    plan["finetune"] = config_identity(to_dict(fcfg), FINETUNE_FREE)
    plan["source"] = once("source", lambda: data_identity(entries(select_treebanks(exp.source))))
    plan["targets"] = once("targets", lambda: data_identity(entries(select_treebanks(exp.targets))))
    plan["evaluate"] = dict(sorted(exp.evaluate.items()))
    plan["xnli"] = exp.xnli
    return json.loads(json.dumps(plan, default=str))  # as it reads back from cell.json


def run_cell(exp: Experiment, cell: Cell, progress: bool = False, hashes: BaseHashes | None = None,
             plan: dict | None = None):
    """Realign (if the strategy does), fine-tune, evaluate, reusing only matching steps;
    returns the cell's tidy rows (written to ``OUT/cells/<id>/results.csv`` LAST, after
    ``cell.json``)."""
    import pandas as pd

    from core.io import atomic_write_json, atomic_write_text
    from realign.evaluate import evaluate
    from realign.finetune import FinetuneConfig

    from .experiment_reuse import RECORD

    hashes = hashes or BaseHashes()
    plan = plan if plan is not None else cell_plan(exp, cell, hashes)
    cdir = exp.out / "cells" / cell.id
    (cdir / "results.csv").unlink(missing_ok=True)  # results of another plan are not results of this one
    pairs = pair_files(exp, cell.aligner, cell.model, progress, hashes) if cell.strategy.needs_pairs else []
    start, start_hash = cell.model.path, hashes(cell.model.path)
    name = cell_name(exp, cell)
    if cell.strategy.realigns:
        m = _realigned(exp, cell, cdir, pairs, hashes, progress)
        start, start_hash = str(cdir / "realigned"), m.get("final_weight_hash")
    elif (cdir / "realigned").exists():
        _clear(cdir, ("realigned",))
    during = {"during_realign": tuple(pairs), "during_freeze": cell.strategy.during} if cell.strategy.during else {}
    fdir = cdir / "finetuned"
    fcfg = FinetuneConfig(model=start, train=tuple(exp.source), out=str(fdir), seed=cell.seed, name=f"{name}+upos",
                          **{**exp.finetune, **during})
    _finetuned(fdir, fcfg, pairs, start_hash, progress, cell.id)
    ev = exp.evaluate
    df = evaluate(str(fdir), exp.targets, tasks=("upos",), model_name=cell.model.name,
                  batch_size=int(ev.get("batch_size", 32)), max_length=ev.get("max_length"), progress=progress)
    if exp.xnli is not None:
        df = pd.concat([df, _xnli_rows(exp, cell, start, start_hash, cdir, pairs, progress)], ignore_index=True)
    df.insert(0, "run", cell.id)
    df.insert(2, "aligner", cell.aligner.name if cell.aligner else "-")
    df.insert(3, "strategy", cell.strategy.name)
    df.insert(4, "freeze", cell.strategy.freeze or (f"during:{cell.strategy.during}" if cell.strategy.during else "-"))
    df.insert(5, "seed", cell.seed)
    atomic_write_json(cdir / RECORD, plan)
    atomic_write_text(cdir / "results.csv", df.to_csv(index=False))
    if not exp.keep_models:
        _clear(cdir, STEPS)
    return df


def _xnli_rows(exp: Experiment, cell: Cell, start: str, start_hash, cdir: Path, pairs: list[str], progress: bool):
    """The second task: fine-tune for XNLI from the same starting point, evaluate zero-shot.
    Without the hub it is skipped with a message (the cell keeps its UPOS rows)."""
    import pandas as pd

    from realign.evaluate import HubUnavailable, evaluate
    from realign.finetune import FinetuneConfig

    xdir = cdir / "finetuned_xnli"
    try:
        during = {"during_realign": tuple(pairs), "during_freeze": cell.strategy.during} if cell.strategy.during else {}
        fcfg = FinetuneConfig(model=start, train=tuple(exp.xnli["train"]), out=str(xdir), seed=cell.seed,
                              task="xnli", name=f"{cell_name(exp, cell)}+xnli", **{**exp.xnli["finetune"], **during})
        _finetuned(xdir, fcfg, pairs, start_hash, progress, cell.id)
    except HubUnavailable as e:
        print(f"[experiment] {cell.id}: XNLI skipped: {e}", file=sys.stderr, flush=True)
        return pd.DataFrame()
    return evaluate(str(xdir), tasks=("xnli",), xnli_langs=tuple(exp.xnli["langs"]), model_name=cell.model.name,
                    batch_size=int(exp.evaluate.get("batch_size", 32)), progress=progress)
