"""Inputs of the layer-effect study (:mod:`alignfreeze.layer_effect`): the treebanks and
their languages, the retrieval pivot, the word pairs per language, and the set of
checkpoints (one, or several seeds of one strategy, each trained from the given base).

Light (no torch): the command reads every file and manifest with it before the heavy
imports, so a malformed input fails at once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class StudyData:
    """Sentences read once for every checkpoint and variant."""

    train: Path
    train_sents: list
    evals: list[tuple[Path, str, list]]  # (file, lang, sentences)
    pivot: Path | None
    pivot_sents: list
    pairs: dict[str, list]  # lang -> word-pair records


def read_inputs(cfg) -> StudyData:
    """Read every file the study needs (first ``max_sentences``); errors name the file."""
    from core.conllu import find_treebanks, read_treebank, treebank_lang
    from core.wordpairs import read_pairs

    n = cfg.max_sentences or None
    files = find_treebanks(cfg.train)
    if len(files) != 1:
        raise ValueError(f"{cfg.train}: --train must be one file, found {len(files)}")
    train = files[0]
    evals = []
    for spec in cfg.eval:
        for f in find_treebanks(spec):
            evals.append((f, treebank_lang(f), read_treebank(f, n)))
    langs = [lang for _, lang, _ in evals]
    dup = sorted({lang for lang in langs if langs.count(lang) > 1})
    if dup:
        raise ValueError(f"--eval: several files of language(s) {dup}: one file per language")
    train_sents = read_treebank(train, cfg.train_sentences or n)
    retrieval = {"sentence-retrieval", "word-retrieval"} & set(cfg.measures)
    pivot = Path(cfg.pivot or cfg.train) if retrieval else None
    pivot_sents = read_treebank(pivot, n) if pivot else []
    pairs: dict[str, list] = {}
    for p in cfg.pairs:
        lang = Path(p).name.split(".")[0].rsplit("-", 1)[-1]
        if lang not in langs:
            raise ValueError(f"{p}: the file name says language {lang!r} (SRC-LANG.jsonl), which is not among the "
                             f"--eval languages {langs}")
        pairs[lang] = read_pairs(p)
    for spec in cfg.finetune_train:
        for f in find_treebanks(spec):
            read_treebank(f)  # fine-tuning reads it again, per variant: a malformed file fails now
    return StudyData(train, train_sents, evals, pivot, pivot_sents, pairs)


def same_file(a: Path | None, b: Path | None) -> bool:
    return a is not None and b is not None and Path(a).resolve() == Path(b).resolve()


def checkpoints(cfg) -> list[dict]:
    """Each checkpoint's manifest facts; refuses a folder without a manifest and a set that
    is not seeds of one strategy. Which base each was trained from is checked once the base
    is loaded (:func:`check_bases`)."""
    from core.manifest import MANIFEST, read_manifest

    out = []
    for p in cfg.model:
        if not Path(p).is_dir():
            raise FileNotFoundError(f"{p}: no such checkpoint folder")
        man = read_manifest(p)
        if man is None:
            raise ValueError(f"{p}: no {MANIFEST}, so nothing shows which base it was trained from: expected a "
                             "checkpoint written by alignfreeze (realign, finetune, revert)")
        conf = man.get("config") or {}
        seed = man.get("seed", (man.get("checkpoint") or {}).get("seed"))
        freeze = conf.get("freeze", (man.get("checkpoint") or {}).get("frozen_layers"))
        out.append({"path": str(p), "seed": seed, "kind": man.get("kind"), "freeze": freeze, "manifest": man})
    if len(out) > 1:
        seeds = [c["seed"] for c in out]
        if None in seeds or len(set(seeds)) != len(seeds):
            raise ValueError(f"--model: {len(out)} checkpoints with seeds {seeds}: several checkpoints must be "
                             "different seeds of one strategy (an interval over seeds needs real seeds)")
        strategies = {str(c["freeze"]) for c in out}
        if len(strategies) > 1:
            raise ValueError(f"--model: the checkpoints have different freeze strategies {sorted(strategies)}: "
                             "study one strategy at a time")
    return out


def check_bases(ckpts: list[dict], base_hash: str) -> None:
    """Each checkpoint was trained from the base whose weight hash is ``base_hash``
    (:func:`realign.revert.check_base`); records which manifest entry shows it."""
    from realign.revert import check_base

    for c in ckpts:
        c["base_check"] = check_base(c.pop("manifest"), base_hash, c["path"])


def model_name(cfg, ckpts: list[dict]) -> str:
    if cfg.name:
        return cfg.name
    freeze = ckpts[0]["freeze"]
    if isinstance(freeze, str):
        return "full" if freeze == "none" else freeze
    from analysis.drift import model_label

    return model_label(ckpts[0]["path"])


def join_pivot(pivot, piv_sents, piv_index, path, sents) -> tuple[np.ndarray, np.ndarray]:
    ip, jf = [], []
    for j, s in enumerate(sents):
        i = piv_index.get(s.sent_id)
        if i is None:
            raise ValueError(f"{path}: sent_id {s.sent_id!r} (sentence {j + 1}) is not among the {len(piv_sents)} "
                             f"sentences read from the pivot {pivot}: the files are not parallel (PUD)")
        ip.append(i)
        jf.append(j)
    return np.asarray(ip), np.asarray(jf)


def link_rows(records, data: StudyData, piv_index, sents, path):
    """Rows of the linked words in the pivot's and the language's word features, and the
    sentence pair (unit) of each link; records outside the sentences read are left out."""
    from .layer_effect_measures import token_rows

    prow, poff = token_rows(data.pivot_sents)
    frow, foff = token_rows(sents)
    f_index = {s.sent_id: j for j, s in enumerate(sents)}
    a, b, unit, k = [], [], [], 0
    for r in records:
        i, j = piv_index.get(r["id"]), f_index.get(r["id"])
        if i is None or j is None:
            continue
        if list(r["src"]) != list(data.pivot_sents[i].tokens) or list(r["tgt"]) != list(sents[j].tokens):
            raise ValueError(f"word pairs {r['id']!r}: its words differ from sentence {r['id']!r} of the pivot "
                             f"{data.pivot} or of {path}: the pairs were made from other files")
        for x, y in r["links"]:
            a.append(prow[poff[i] + x])
            b.append(frow[foff[j] + y])
            unit.append(k)
        k += 1
    if not a:
        raise ValueError(f"{path}: no word pair links a sentence read from it (check --max-sentences and --pairs)")
    return np.asarray(a), np.asarray(b), np.asarray(unit), k
