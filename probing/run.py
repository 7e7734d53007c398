"""A probing run: config -> features -> probes at every layer -> the tidy table + metadata.

Tasks:

- ``upos``: token-level linear probes (one per layer, fitted together) trained on the
  ``train`` treebank and evaluated on it (held-out sentences) and zero-shot on every
  ``eval`` treebank; with ``control=True`` also the control task and the selectivity,
  on the training language's splits only (where they are defined). With two or more
  seeds, each seed's probe trains on a bootstrap resample of the training sentences, so
  seeds are independent replicates (L-BFGS from zeros is deterministic).
- ``translation``: sentence-level translation matching between the ``train`` (pivot)
  CoNLL-U file and each ``eval`` file, joined on ``sent_id`` (PUD layout); with
  ``pair_probe=True`` also a linear translation-pair probe per seed.
- ``xnli``: a 3-way linear probe on sentence-pair features trained on XNLI language
  ``train`` and evaluated on the ``eval`` languages (needs the HuggingFace hub; skipped
  with a message otherwise).

The table has one row per measurement: ``model, lang, task, layer, seed, metric, value,
split, train_lang, n, file``. ``split`` is ``train`` (the probe's own training words),
``heldout`` (held-out sentences of the training treebank) or ``eval`` (another file).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from core.config import to_dict
from core.io import atomic_write_json, atomic_write_text, environment

from .config import ProbeConfig
from .control import ControlTask, selectivity_rows
from .linear import MultiLayerLinearProbe, unseen_label_rate
from .semantic import (
    HubUnavailable,
    load_xnli,
    retrieval_accuracy,
    sentence_vectors,
    translation_pair_probe,
    xnli_probe,
)
from .tasks import TokenData, check_vocabulary, load_token_task, read_treebank

COLUMNS = ("model", "lang", "task", "layer", "seed", "metric", "value", "split", "train_lang", "n", "file")


REPLICATES = {
    "upos": "each seed trains on a bootstrap resample (with replacement) of the training sentences",
    "xnli": "each seed trains on a bootstrap resample (with replacement) of the training pairs",
}
SELECTIVITY_NOTE = ("control task and selectivity only on splits in the training language: elsewhere "
                    "most word types are unseen in training and their control labels are chance")


def bootstrap_sentence_rows(sentence: np.ndarray, rows: np.ndarray, seed: int) -> np.ndarray:
    """Rows of a bootstrap resample of the sentences covered by ``rows``.

    ``sentence[i]`` is the sentence of row ``i``. The distinct sentences of ``rows`` are drawn
    with replacement (as many as there are, seeded by ``seed``) and each drawn sentence
    contributes all its rows, once per draw: a replicate of the training set with the
    sentence as the sampling unit (Efron & Tibshirani 1993, ch. 6).
    """
    rows = np.asarray(rows)
    sents = np.unique(sentence[rows])
    if len(sents) == 0:
        return rows
    draw = np.random.default_rng([int(seed), 1]).choice(sents, size=len(sents), replace=True)
    mult = np.zeros(int(sentence.max()) + 1, dtype=np.int64)
    np.add.at(mult, draw, 1)
    return np.repeat(rows, mult[sentence[rows]])


def _probe(cfg: ProbeConfig, seed: int) -> MultiLayerLinearProbe:
    return MultiLayerLinearProbe(cfg.C, backend=cfg.backend, solver=cfg.solver, max_iter=cfg.max_iter, random_state=seed)


def _rows(base: dict, layers, values, **extra) -> list[dict]:
    return [{**base, **extra, "layer": int(layer), "value": float(v)} for layer, v in zip(layers, values)]


def _single_file(spec: str, what: str) -> Path:
    from core.conllu import find_treebanks

    files = find_treebanks(spec)
    if len(files) != 1:
        raise ValueError(f"{spec}: {what} must be one file, found {len(files)} ({', '.join(map(str, files[:4]))})")
    return files[0]


def _upos(cfg: ProbeConfig, extractor, name: str, meta: dict, progress: bool) -> list[dict]:
    from core.conllu import find_treebanks

    limit = cfg.max_sentences or None
    train_file = _single_file(cfg.train, "--train")
    eval_files = [f for spec in cfg.eval for f in find_treebanks(spec)]
    train = load_token_task(extractor, train_file, max_sentences=limit, max_unknown=cfg.max_unknown)
    same = [f for f in eval_files if f.resolve() == train_file.resolve()]
    others = {f: load_token_task(extractor, f, max_sentences=limit, max_unknown=cfg.max_unknown)
              for f in eval_files if f.resolve() != train_file.resolve()}
    hold = bool(same) and cfg.holdout > 0
    if hold and train.n_sentences < 2:
        raise ValueError(f"{train_file}: cannot hold out sentences of a 1-sentence treebank; use --holdout 0")
    meta["data"] = {str(d.path): {"lang": d.lang, "sentences": d.n_sentences, "words": len(d), "lost_words": d.lost,
                                  "unknown_word_rate": d.unknown_rate, "encoding": d.encoding}
                    for d in [train, *others.values()]}
    layers = train.layers
    rows: list[dict] = []
    replicate = len(cfg.seed_list) > 1
    meta["replicates"] = REPLICATES["upos"] if replicate else "one run on all training sentences (no std)"
    if cfg.control:
        meta["selectivity"] = SELECTIVITY_NOTE
    bar = tqdm(cfg.seed_list, desc="probe seeds", unit="seed", disable=not progress)
    for seed in bar:
        if hold:
            rng = np.random.default_rng(seed)
            n_held = max(1, int(round(train.n_sentences * cfg.holdout)))
            held_s = rng.permutation(train.n_sentences)[:n_held]
            held = train.sentence_rows(held_s)
            tr = np.setdiff1d(np.arange(len(train)), held)
        else:
            held, tr = None, np.arange(len(train))
        fit_rows = bootstrap_sentence_rows(train.sentence, tr, seed) if replicate else tr
        targets: list[tuple[str, TokenData, np.ndarray | None]] = [("train", train, np.unique(fit_rows))]
        if held is not None:
            targets.append(("heldout", train, held))
        targets += [("eval", d, None) for d in others.values()]
        labelings = [("upos", lambda d, rows_: d.labels if rows_ is None else d.labels[rows_], targets)]
        if cfg.control:
            # defined on the training language's word types only: elsewhere almost every type is
            # unseen and its control label is chance (docs/probing.md)
            ctl = ControlTask(seed).fit(train.words[fit_rows], train.labels[fit_rows])
            labelings.append(("upos-control", lambda d, rows_, c=ctl: c.transform(d.words if rows_ is None
                                                                                  else d.words[rows_]),
                              [t for t in targets if t[1].lang == train.lang]))
        for task, labels_of, where in labelings:
            probe = _probe(cfg, seed).fit(train.stack(fit_rows), labels_of(train, fit_rows))
            for split, d, r in where:
                y = labels_of(d, r)
                acc = probe.score(d.stack(r), y)
                base = {"model": name, "lang": d.lang, "task": task, "seed": seed, "metric": "accuracy",
                        "split": split, "train_lang": train.lang, "n": len(y), "file": d.path}
                rows += _rows(base, layers, acc)
                if task == "upos" and seed == cfg.seed:
                    meta["data"][d.path][f"unseen_label_rate_{split}"] = unseen_label_rate(y, probe.classes_)
    return rows


def _translation(cfg: ProbeConfig, extractor, name: str, meta: dict, progress: bool) -> list[dict]:
    from core.conllu import find_treebanks, treebank_lang
    from core.parallel import read_parallel

    pivot = _single_file(cfg.train, "--train (the pivot)")
    limit = cfg.max_sentences or None
    eval_files = [f for spec in cfg.eval for f in find_treebanks(spec) if f.resolve() != pivot.resolve()]
    if not eval_files:
        raise ValueError(f"probe --task translation: no --eval file other than the pivot {pivot}")
    piv_sents = read_treebank(pivot)
    check_vocabulary(extractor.tokenizer, piv_sents, str(pivot), cfg.max_unknown)
    rows: list[dict] = []
    meta["data"] = {}
    piv_lang = treebank_lang(pivot)
    piv_vecs = None
    piv_index = {s.sent_id: i for i, s in enumerate(piv_sents)}
    for f in tqdm(eval_files, desc="translation", unit="file", disable=not progress):
        pairs = read_parallel(pivot, f, limit=limit)
        check_vocabulary(extractor.tokenizer, [p.tgt for p in pairs], str(f), cfg.max_unknown)
        if piv_vecs is None:  # pivot sentences once, reused for every language
            piv_vecs = sentence_vectors(extractor.extract(piv_sents))
        src = piv_vecs[:, [piv_index[p.id] for p in pairs]]
        tgt = sentence_vectors(extractor.extract([p.tgt for p in pairs]))
        lang = treebank_lang(f)
        meta["data"][str(f)] = {"lang": lang, "pairs": len(pairs)}
        fwd, bwd = retrieval_accuracy(src, tgt, center=cfg.center)
        base = {"model": name, "lang": lang, "task": "translation", "seed": cfg.seed, "split": "eval",
                "train_lang": piv_lang, "n": len(pairs), "file": str(f)}
        layers = extractor.layers
        rows += _rows(base, layers, fwd, metric="retrieval_pivot_to_lang")
        rows += _rows(base, layers, bwd, metric="retrieval_lang_to_pivot")
        rows += _rows(base, layers, (fwd + bwd) / 2, metric="retrieval_mean")
        if cfg.pair_probe:  # seeds draw the train/test split and the mismatched pairs
            meta["replicates"] = "translation-pair: each seed draws its own train/test split and mismatched pairs"
            for seed in cfg.seed_list:
                acc = translation_pair_probe(src, tgt, seed=seed, probe=_probe(cfg, seed))
                rows += _rows({**base, "task": "translation-pair", "seed": seed, "split": "heldout"}, layers, acc,
                              metric="accuracy")
    return rows


def _xnli(cfg: ProbeConfig, extractor, name: str, meta: dict, progress: bool) -> list[dict]:
    langs = list(cfg.eval) or [cfg.train]
    try:
        train_rows = load_xnli(cfg.train, "train", cfg.xnli_train_size or None)
        eval_rows = {lang: load_xnli(lang, "test", cfg.xnli_eval_size or None) for lang in langs}
    except HubUnavailable as e:
        msg = f"XNLI skipped: {e}"
        print(f"alignfreeze probe: {msg}", file=sys.stderr)
        meta["skipped"] = [msg]
        return []
    rows: list[dict] = []
    replicate = len(cfg.seed_list) > 1
    meta["replicates"] = REPLICATES["xnli"] if replicate else "one run on all training pairs (no std)"
    for seed in tqdm(cfg.seed_list, desc="xnli seeds", unit="seed", disable=not progress):
        fit = train_rows
        if replicate:  # each pair is its own unit
            fit = [train_rows[i] for i in np.random.default_rng([int(seed), 1]).integers(0, len(train_rows),
                                                                                         len(train_rows))]
        accs = xnli_probe(extractor, fit, eval_rows, seed=seed, probe=_probe(cfg, seed))
        for lang, acc in accs.items():
            base = {"model": name, "lang": lang, "task": "xnli", "seed": seed, "metric": "accuracy",
                    "split": "eval", "train_lang": cfg.train, "n": len(eval_rows[lang]), "file": f"xnli/{lang}/test"}
            rows += _rows(base, extractor.layers, acc)
    return rows


def run_probe(cfg: ProbeConfig, *, model=None, tokenizer=None, progress: bool = True) -> tuple[pd.DataFrame, dict]:
    """Run ``cfg``; returns the tidy table and the run metadata (config, model, pooling,
    layers, data files, environment, wall time).

    ``model``/``tokenizer`` may be passed already loaded (``cfg.model`` is then only a name).
    """
    from core.features import WordFeatureExtractor
    from core.manifest import base_weight_hash, read_manifest

    cfg.check()
    t0 = time.time()
    if model is None:
        from core.models import load

        model, tokenizer = load(cfg.model)
    elif tokenizer is None:
        raise ValueError("run_probe: pass the tokenizer together with a loaded model")
    extractor = WordFeatureExtractor(model, tokenizer, layers=cfg.layers, pooling=cfg.pooling,
                                     batch_size=cfg.batch_size, max_length=cfg.max_length or None,
                                     progress=progress)
    name = cfg.model_name or cfg.model
    ckpt = read_manifest(cfg.model) if Path(cfg.model).is_dir() else None
    meta: dict = {
        "kind": "probe",
        "config": to_dict(cfg),
        "model": {"name": cfg.model, "weight_hash": base_weight_hash(model),
                  "model_type": getattr(model.config, "model_type", None),
                  "base_model": (ckpt or {}).get("base_model")},
        "pooling": cfg.pooling,
        "layers": list(extractor.layers),
    }
    run = {"upos": _upos, "translation": _translation, "xnli": _xnli}[cfg.task]
    rows = run(cfg, extractor, name, meta, progress)
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    if cfg.task == "upos" and cfg.control and len(df):
        df = pd.concat([df, selectivity_rows(df, "upos", "upos-control")], ignore_index=True)
    files = [p for p in meta.get("data", {}) if Path(p).is_file()]
    from core.manifest import data_file_entries

    meta["data_files"] = data_file_entries(files)
    meta["encoding"] = extractor.encoding_stats.to_dict()  # windows, truncated words, shared pieces
    meta["rows"] = len(df)
    meta["wall_time_s"] = round(time.time() - t0, 3)
    meta["environment"] = environment()
    return df, meta


def metadata_path(out: str | Path) -> Path:
    """The metadata JSON next to a result CSV: ``probe.csv`` -> ``probe.json``."""
    out = Path(out)
    if out.suffix.lower() != ".csv":
        raise ValueError(f"{out}: the probe table must be a .csv file")
    return out.with_suffix(".json")


def write_results(df: pd.DataFrame, meta: dict, out: str | Path) -> tuple[Path, Path]:
    """Write the table (CSV) and its metadata (JSON) atomically; returns both paths."""
    meta_file = metadata_path(out)
    atomic_write_text(out, df.to_csv(index=False))
    atomic_write_json(meta_file, meta)
    return Path(out), meta_file
