"""Measuring one checkpoint of the layer-effect study (:mod:`alignfreeze.layer_effect`):
features of every variant per file, probes fitted per variant, retrieval against the
pivot, and optionally fine-tuning every variant; per-unit hits for the intervals."""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from .layer_effect_inputs import StudyData, join_pivot, link_rows, same_file
from .layer_effect_measures import (
    METRIC,
    REALIGNED,
    Hits,
    LayerProbes,
    Variant,
    sentence_retrieval_hits,
    sentence_vectors,
    tagging_hits,
    variant_features,
    word_retrieval_hits,
)


def _say(msg: str, progress: bool) -> None:
    if progress:
        print(f"[layer-effect] {msg}", file=sys.stderr, flush=True)


class _Given:
    """Stand-in extractor handing :func:`probing.tasks.load_token_task` features already computed."""

    def __init__(self, wf, tokenizer):
        self.wf, self.tokenizer = wf, tokenizer

    def extract(self, sents):
        if len(sents) != self.wf.n_sentences:
            raise RuntimeError(f"{len(sents)} sentences read but features of {self.wf.n_sentences} computed")
        return self.wf


def _token_data(feats: dict, path: Path, tokenizer, cfg, n: int | None) -> dict:
    from probing.tasks import load_token_task

    ref = load_token_task(_Given(feats[REALIGNED], tokenizer), path, max_sentences=n, max_unknown=cfg.max_unknown)
    keep = feats[REALIGNED].valid
    out = {}
    for name, wf in feats.items():
        if not np.array_equal(wf.valid, keep):
            raise RuntimeError(f"{path}: variant {name} has other valid words than the realigned model")
        out[name] = ref if name == REALIGNED else replace(ref, features={lay: wf.features[lay][keep] for lay in wf.layers})
    return out


def study_checkpoint(cfg, ck: dict, base, data: StudyData, variants: list[Variant], progress: bool, models_dir: Path):
    """Measurements and per-unit hits of one checkpoint ``ck`` (from
    :func:`~alignfreeze.layer_effect_inputs.checkpoints`): ``(rows, hits, facts)`` where
    ``hits[(checkpoint, variant, lang, measure, layer)]`` are the per-unit hits behind each row."""
    from core.arch import num_layers, parse_layers
    from core.models import load_tokenizer
    from realign.revert import check_same_architecture, compact, load_checkpoint, unchanged_layers

    t0 = time.perf_counter()
    model = load_checkpoint(ck["path"]).to(cfg.device)
    check_same_architecture(model, base, (ck["path"], cfg.base))
    tok = load_tokenizer(ck["path"])
    L = num_layers(model)
    layers = parse_layers(cfg.readout, L)
    same = unchanged_layers(model, base)
    identical = [v.name for v in variants if set(v.layers) <= set(same)]
    names = [REALIGNED] + [v.name for v in variants]
    rev = {REALIGNED: "-", **{v.name: compact(v.layers) for v in variants}}
    hits: dict[tuple, Hits] = {}
    rows: list[dict] = []

    def record(name, lang, measure, layer, h: Hits, file):
        hits[(ck["path"], name, lang, measure, int(layer))] = h
        rows.append({"checkpoint": ck["path"], "seed": ck["seed"], "variant": name, "reverted_layers": rev[name],
                     "lang": lang, "measure": measure, "layer": int(layer), "metric": METRIC[measure],
                     "value": h.value, "n": float(h.n.sum()), "identical_weights": name in identical,
                     "file": str(file)})

    cache: dict = {}

    def feats(path, sents):
        key = (str(Path(path).resolve()), len(sents))
        if key not in cache:
            _say(f"{Path(ck['path']).name}: features of {Path(path).name} ({len(sents)} sentences, "
                 f"{len(names) - len(identical)} passes)", progress)
            cache[key] = variant_features(model, base, tok, variants, sents, layers=layers, pooling=cfg.pooling,
                                          batch_size=cfg.batch_size, chunk_sentences=cfg.chunk_sentences,
                                          reuse=cfg.reuse, same_as_realigned=identical)
        return cache[key]

    n_eval = cfg.max_sentences or None
    probes = {}
    probe_on = "upos-probe" in cfg.measures
    if probe_on:
        from core.conllu import treebank_lang

        n_train = cfg.train_sentences or n_eval
        td = _token_data(feats(data.train, data.train_sents), data.train, tok, cfg, n_train)
        ref = td[REALIGNED]
        hold = any(same_file(f, data.train) for f, _, _ in data.evals) and cfg.holdout > 0
        tr, held = np.arange(len(ref)), None
        if hold and ref.n_sentences < 2:
            raise ValueError(f"{data.train}: cannot hold out sentences of a 1-sentence treebank; use --holdout 0")
        if hold:
            rng = np.random.default_rng(cfg.probe_seed)
            held_s = rng.permutation(ref.n_sentences)[:max(1, int(round(ref.n_sentences * cfg.holdout)))]
            held = ref.sentence_rows(held_s)
            tr = np.setdiff1d(np.arange(len(ref)), held)
        for name in names:  # the realigned model first: a variant's unchanged layers reuse its probes
            shared = (probes[REALIGNED], ref.features) if name != REALIGNED else None
            probes[name] = LayerProbes(layers, td[name].features, tr, ref.labels[tr], C=cfg.C,
                                       max_iter=cfg.max_iter, random_state=cfg.probe_seed, same_as=shared)
            if held is not None:
                units, unit = np.unique(ref.sentence[held], return_inverse=True)
                pred = probes[name].predict(td[name].features, held)
                for i, lay in enumerate(layers):
                    record(name, treebank_lang(data.train), "upos-probe", lay,
                           tagging_hits(pred[i], ref.labels[held], unit, len(units)), data.train)
        del td
    piv_vec, piv_f = {}, None
    if data.pivot is not None:
        piv_f = feats(data.pivot, data.pivot_sents)
        piv_vec = {(name, lay): sentence_vectors(piv_f[name], lay) for name in names for lay in layers}
    for key in list(cache):  # only the pivot's features stay
        if data.pivot is None or key[0] != str(Path(data.pivot).resolve()):
            del cache[key]
    piv_index = {s.sent_id: i for i, s in enumerate(data.pivot_sents)}
    for path, lang, sents in data.evals:
        # the training file's language is measured on its held-out sentences (above) and
        # the pivot's is not paired with itself
        probe_here = probe_on and not same_file(path, data.train)
        retrieve_here = data.pivot is not None and not same_file(path, data.pivot)
        if not (probe_here or retrieve_here):
            continue
        f = feats(path, sents)
        if probe_here:
            td = _token_data(f, path, tok, cfg, n_eval)
            ref = td[REALIGNED]
            for name in names:
                pred = probes[name].predict(td[name].features)
                for i, lay in enumerate(layers):
                    record(name, lang, "upos-probe", lay, tagging_hits(pred[i], ref.labels, ref.sentence,
                                                                        ref.n_sentences), path)
        if retrieve_here and "sentence-retrieval" in cfg.measures:
            ip, jf = join_pivot(data.pivot, data.pivot_sents, piv_index, path, sents)
            for name in names:
                for lay in layers:
                    v = sentence_vectors(f[name], lay)
                    record(name, lang, "sentence-retrieval", lay,
                           sentence_retrieval_hits(piv_vec[(name, lay)][ip], v[jf]), path)
        if retrieve_here and "word-retrieval" in cfg.measures and lang in data.pairs:
            a, b, unit, n_units = link_rows(data.pairs[lang], data, piv_index, sents, path)
            for name in names:
                ok = piv_f[name].valid[a] & f[name].valid[b]
                for lay in layers:
                    record(name, lang, "word-retrieval", lay,
                           word_retrieval_hits(piv_f[name].features[lay][a[ok]], f[name].features[lay][b[ok]],
                                               unit[ok], n_units), path)
        cache.pop((str(Path(path).resolve()), len(sents)), None)
    if "upos-finetune" in cfg.measures:
        rows_ft, hits_ft = _finetune_path(cfg, ck, base, data, variants, identical, rev, L, models_dir)
        rows += rows_ft
        hits.update(hits_ft)
    facts = {"path": ck["path"], "seed": ck["seed"], "base_check": ck["base_check"], "unchanged_layers": list(same),
             "identical_variants": identical, "wall_time_s": round(time.perf_counter() - t0, 3),
             "block_passes": block_passes(variants, identical, max(layers), cfg.reuse)}
    return rows, hits, facts


def block_passes(variants, identical, top: int, reuse: bool) -> dict:
    """Blocks run per sentence when the highest layer read is ``top``: with the replay and
    the skipping (:func:`~alignfreeze.layer_effect_measures.variant_features`), and as
    plain passes of every model would."""
    run = [v for v in variants if v.name not in identical and v.lowest <= top]
    done = top + sum(top - (v.lowest - 1 if reuse and v.lowest > 1 else 0) for v in run)
    return {"computed": done, "plain": top * (1 + len(variants))}


def _finetune_path(cfg, ck, base, data: StudyData, variants, identical, rev, L: int, models_dir: Path):
    """Fine-tune the realigned checkpoint and every variant on ``finetune_train``, tag every
    eval language zero-shot; per-sentence hits."""
    from core.manifest import read_manifest
    from core.models import load_model, load_tokenizer
    from realign.evaluate import predict_upos, upos_accuracy
    from realign.finetune import FinetuneConfig, finetune
    from realign.revert import revert_checkpoint

    work = models_dir / f"seed-{ck['seed']}"
    rows, hits = [], {}
    done: dict[str, list] = {}
    for v in [None, *variants]:
        name = REALIGNED if v is None else v.name
        if name in identical:
            per_file = done[REALIGNED]
        else:
            slug = name.replace(" ", "-").replace("(", "").replace(")", "")
            src = ck["path"]
            if v is not None:
                src = revert_checkpoint(ck["path"], cfg.base, work / f"{slug}-reverted", layers=rev[name],
                                        base_model_obj=base)
            ft = finetune(FinetuneConfig(model=str(src), train=tuple(cfg.finetune_train), out=str(work / f"{slug}-pos"),
                                         steps=cfg.finetune_steps, epochs=cfg.finetune_epochs,
                                         batch_size=cfg.finetune_batch_size, lr=cfg.finetune_lr,
                                         seed=cfg.finetune_seed), progress=False)
            m = load_model(ft, task="token-classification").to(cfg.device)
            t = load_tokenizer(ft)
            per_file = []
            for path, lang, sents in data.evals:
                pooling = (read_manifest(ft) or {}).get("prediction_pooling", "first")
                pred = predict_upos(m, t, sents, batch_size=cfg.batch_size, pooling=pooling)
                right = np.array([upos_accuracy([s.upos], [p]) for s, p in zip(sents, pred, strict=True)], dtype=float)
                per_file.append((path, lang, Hits(right[:, 0], right[:, 1])))
            del m
            if not cfg.keep_models:
                shutil.rmtree(work / f"{slug}-pos", ignore_errors=True)
                shutil.rmtree(work / f"{slug}-reverted", ignore_errors=True)
        done[name] = per_file
        for path, lang, h in per_file:
            hits[(ck["path"], name, lang, "upos-finetune", L)] = h
            rows.append({"checkpoint": ck["path"], "seed": ck["seed"], "variant": name, "reverted_layers": rev[name],
                         "lang": lang, "measure": "upos-finetune", "layer": L, "metric": METRIC["upos-finetune"],
                         "value": h.value, "n": float(h.n.sum()), "identical_weights": name in identical,
                         "file": str(path)})
    return rows, hits


