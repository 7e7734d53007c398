"""The demo's steps, in order (:class:`DemoRun`); :func:`alignfreeze.pipeline.run_demo`
calls them. Every costly step goes through :class:`alignfreeze.pipeline_steps.StepCache`,
keyed on what it reads: the code version, the base model's weight hash, the config fields
it uses and the SHA-256 of its input files."""

from __future__ import annotations

import copy
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from .pipeline import ARMS, BASELINE, MANIFEST, PROBE_MAX_ITER, PROBE_SEED, TABLES, DemoConfig
from .pipeline import _hashes as _file_hashes
from .pipeline_data import Corpus
from .pipeline_steps import StepCache, code_version, digest


def _write(path: Path, df: pd.DataFrame) -> None:
    from core.io import atomic_write_text

    atomic_write_text(path, df.to_csv(index=False))


class DemoRun:
    """State shared by the steps of one demo run."""

    def __init__(self, cfg: DemoConfig, corpus: Corpus, out: Path, say: Callable[[str, str], None]):
        self.cfg, self.corpus, self.out, self.say = cfg, corpus, out, say
        self.steps = StepCache(out, say)
        self.code = code_version()
        self.data_hashes = _hashes(corpus.files())
        self.pair_files: dict[str, dict[str, Path | None]] = {}
        self.pair_summaries: dict[str, dict] = {}
        self.checkpoints: dict[str, Path] = {}
        self.arm_keys: dict[str, str] = {}
        self.trained: dict = {}  # arm -> model realigned in this process (no reload needed)
        self._base_cache = None
        self._retrieval = None

    # ------------------------------------------------------------------ data and model
    def describe_data(self) -> None:
        c = self.corpus
        self.say("data", f"source: {c.source}")
        for lang in c.langs:
            ss = c.eval_sentences[lang]
            self.say("data", f"{lang}: {len(ss)} measured sentences, {sum(len(s) for s in ss)} words "
                             f"({c.eval_files[lang].name})")
        self.say("data", f"probes train on {len(c.train_sentences)} English sentences, "
                         f"{sum(len(s) for s in c.train_sentences)} words ({c.train_file.name})")
        if c.realign_ids:
            self.say("data", f"split: {len(c.realign_ids)} sentence ids realign ({c.realign_ids[0]} ... "
                             f"{c.realign_ids[-1]}), the other {len(c.eval_ids)} are measured, in every language")

    def set_model(self, name: str, model, tokenizer) -> None:
        from core.arch import num_layers
        from core.manifest import base_weight_hash
        from realign.train import tokenizer_fingerprint

        self.name, self.base, self.tok = name, model, tokenizer
        self.base_hash = base_weight_hash(model)
        self.n_layers = num_layers(model)
        self.common = {"code": self.code, "base": {"name": name, "weight_hash": self.base_hash,
                                                    "tokenizer": tokenizer_fingerprint(tokenizer)}}
        n = sum(p.numel() for p in model.parameters())
        self.say("model", f"{name}: {type(model).__name__}, {self.n_layers} layers, {n / 1e6:.1f}M parameters, "
                          f"weight hash {self.base_hash[:12]}")

    # ------------------------------------------------------------------ pairs
    def _align(self, pairs, lang: str):
        from realign.pairs import extract_pairs

        layer = max(1, round(self.n_layers * 8 / 12))  # the reference's layer 8 of 12, scaled
        return extract_pairs(pairs, self.cfg.aligner, dictionary=self.corpus.dictionary.get(lang), model=self.base,
                             tokenizer=self.tok, layer=layer, progress=self.cfg.progress)

    def pairs(self) -> None:
        """Word pairs per language: the realignment records and those of the measured
        sentences (for word retrieval), each with its summary."""
        from core.io import atomic_write_json
        from core.parallel import ParallelDataError, read_parallel
        from realign.pairs import write_pairs

        c = self.corpus
        realign_ids, eval_ids = set(c.realign_ids), set(c.eval_ids)
        for lang in c.langs[1:]:
            spec = c.parallel[lang]
            folder = self.out / "pairs" / f"en-{lang}"
            files = {k: folder / f"{k}.jsonl" for k in ("realign", "eval")}
            summary_file = folder / "summary.json"
            key = {**self.common, "aligner": self.cfg.aligner, "spec": spec["spec"],
                   "files": _hashes(spec["files"] + [c.eval_files["en"], c.eval_files[lang]]),
                   "dictionary": _hashes([c.dictionary.get(lang)]),
                   "realign_ids": digest(c.realign_ids), "eval_ids": digest(c.eval_ids),
                   "max_pairs": self.cfg.max_pairs if spec["spec"] != "eval treebanks" else None}
            if self.cfg.aligner != "similarity":
                key["base"] = None  # only the similarity aligner reads the model

            def compute(lang=lang, spec=spec, files=files, summary_file=summary_file, folder=folder):
                shutil.rmtree(folder, ignore_errors=True)
                summary = {}
                try:
                    both = read_parallel(c.eval_files["en"], c.eval_files[lang])
                except ParallelDataError as e:
                    if spec["spec"] == "eval treebanks":
                        raise
                    both, summary["eval_note"] = [], f"no retrieval: the measured treebanks are not parallel ({e})"
                if spec["spec"] == "eval treebanks":
                    train = [p for p in both if p.id in realign_ids]
                else:
                    train = read_parallel(spec["src"], spec["tgt"], limit=self.cfg.max_pairs)
                records, summary["realign"] = self._align(train, lang)
                write_pairs(files["realign"], records)
                measured = [p for p in both if p.id in eval_ids]
                if measured:
                    records, summary["eval"] = self._align(measured, lang)
                    write_pairs(files["eval"], records)
                atomic_write_json(summary_file, summary)

            self.steps.run(f"pairs-en-{lang}", key, [folder], compute)
            summary = json.loads(summary_file.read_text(encoding="utf-8"))
            self.pair_summaries[lang] = summary
            self.pair_files[lang] = {k: (f if f.exists() else None) for k, f in files.items()}
            s = summary["realign"]
            self.say("pairs", f"en-{lang}: {s['pairs_kept']}/{s['sentence_pairs']} sentence pairs realign, "
                              f"{s['links']} links ({s['links_per_sentence']:.1f} per sentence, "
                              f"{s['src_coverage']:.0%} of English words linked)"
                              + (f"; measured half: {summary['eval']['links']} links" if "eval" in summary else ""))

    # ------------------------------------------------------------------ realignment
    def realign_config(self, arm: str, freeze: str):
        from realign.config import RealignConfig

        cfg = self.cfg
        return RealignConfig(model=self.name, pairs=tuple(str(self.pair_files[lang]["realign"])
                                                          for lang in self.corpus.langs[1:]),
                             out=str(self.out / f"realign-{arm}"), freeze=freeze, steps=cfg.steps,
                             batch_size=cfg.batch_size, lr=cfg.lr, seed=cfg.seed,
                             # exact Adam that skips embedding rows no pair touches: e5's 250k-row
                             # vocabulary makes dense Adam the slowest part on a CPU (same result)
                             embedding_update="touched")

    def realign_all(self) -> None:
        from core.config import to_dict
        from realign.train import realign

        for arm, freeze in ARMS:
            if freeze is None:
                continue
            rc = self.realign_config(arm, freeze)
            fields = {k: v for k, v in to_dict(rc).items() if k not in ("out", "pairs", "model")}
            key = {**self.common, "realign": fields, "pairs": _hashes(rc.pairs)}

            def compute(rc=rc, arm=arm):
                shutil.rmtree(rc.out, ignore_errors=True)  # this run's own earlier output, stale
                model = copy.deepcopy(self.base)
                t0 = time.perf_counter()
                realign(rc, model=model, tokenizer=self.tok, progress=self.cfg.progress)
                self.trained[arm] = model
                self.say("realign", f"{arm} (freeze {rc.freeze}): done in {time.perf_counter() - t0:.0f} s")

            self.steps.run(f"realign-{arm}", key, [Path(rc.out)], compute)
            self.checkpoints[arm] = Path(rc.out)
            self.arm_keys[arm] = digest(key)

    # ------------------------------------------------------------------ measurements
    def _sentences(self) -> list:
        c = self.corpus
        return [s for lang in c.langs for s in c.eval_sentences[lang]] + list(c.train_sentences)

    def base_cache(self):
        from .pipeline_measure import FeatureCache

        if self._base_cache is None:
            self.say("measure", f"word features of the pretrained model ({len(self._sentences())} sentences)")
            self._base_cache = FeatureCache(self.base, self.tok, self._sentences(), progress=self.cfg.progress)
        return self._base_cache

    def retrieval_pairs(self) -> dict:
        """``{lang: (parallel pairs, linked pairs)}`` of the measured half (read once)."""
        if self._retrieval is None:
            self._retrieval = self._read_retrieval_pairs()
        return self._retrieval

    def _read_retrieval_pairs(self) -> dict:
        from analysis.alignment import read_pairs_jsonl
        from core.parallel import read_parallel

        c, out = self.corpus, {}
        ids = set(c.eval_ids)
        for lang in c.langs[1:]:
            f = self.pair_files[lang]["eval"]
            if f is None:
                continue
            sent = [p for p in read_parallel(c.eval_files["en"], c.eval_files[lang]) if p.id in ids]
            out[lang] = (sent, read_pairs_jsonl(f))
        return out

    def measure_all(self) -> None:
        for arm, _ in ARMS:
            self.measure(arm)

    def measure(self, arm: str) -> None:
        from core.io import atomic_write_json
        from core.models import load

        from .pipeline_measure import (
            FeatureCache,
            cka_table,
            drift_table,
            probe_tables,
            retrieval_table,
        )

        c, cfg = self.corpus, self.cfg
        folder = self.out / "parts" / arm
        names = ["probe", "probe_sentences", "retrieval", "cka"] + ([] if arm == BASELINE else ["drift"])
        outputs = [folder / f"{n}.csv" for n in names] + [folder / "notes.json"]
        key = {**self.common, "model": self.base_hash if arm == BASELINE else self.arm_keys[arm],
               "data": self.data_hashes, "eval_ids": digest(c.eval_ids), "train": len(c.train_sentences),
               "pairs": _hashes(f for d in self.pair_files.values() for f in [d["eval"]] if f is not None),
               "settings": {"pooling": "first", "probe": {"C": 1.0, "solver": "lbfgs", "max_iter": PROBE_MAX_ITER,
                                                          "seed": PROBE_SEED},
                            "intervals": "jackknife", "ci_groups": cfg.ci_groups, "csls_k": 10,
                            "level": 0.95}}

        def compute():
            base = self.base_cache()
            if arm == BASELINE:
                cache = base
            else:
                model = self.trained.get(arm)
                if model is None:
                    model, _ = load(self.checkpoints[arm], offline=True)
                self.say("measure", f"word features of {arm} ({len(self._sentences())} sentences)")
                cache = FeatureCache(model, self.tok, self._sentences(), progress=cfg.progress)
            t0 = time.perf_counter()
            notes: list[str] = []
            probe, per_sent = probe_tables(arm, cache, c.train_sentences, c.eval_sentences, c.eval_files,
                                           seed=PROBE_SEED, max_iter=PROBE_MAX_ITER, notes=notes)
            for note in notes:
                self.say("measure", f"note: {note}")
            atomic_write_json(folder / "notes.json", notes)
            _write(folder / "probe.csv", probe)
            _write(folder / "probe_sentences.csv", per_sent)
            _write(folder / "retrieval.csv", retrieval_table(arm, cache, self.retrieval_pairs()))
            measured = [s for lang in c.langs for s in c.eval_sentences[lang]]
            _write(folder / "cka.csv", cka_table(arm, base, cache, measured, "pretrained"))
            if arm != BASELINE:
                _write(folder / "drift.csv", drift_table(arm, base, cache, c.eval_sentences, "pretrained",
                                                         ci_groups=cfg.ci_groups))
            self.say("measure", f"{arm}: probes, retrieval, CKA{'' if arm == BASELINE else ', drift'} "
                                f"in {time.perf_counter() - t0:.0f} s")

        self.steps.run(f"measure-{arm}", key, outputs, compute)

    # ------------------------------------------------------------------ tables and manifest
    def combine(self) -> dict[str, Path]:
        """The tidy tables of all arms, and the paired probe change against the baseline."""
        from .pipeline_measure import paired_change

        frames = {}
        for name in TABLES:
            if name == "forgetting":
                continue
            parts = [self.out / "parts" / arm / f"{name}.csv" for arm, _ in ARMS]
            frames[name] = pd.concat([pd.read_csv(p) for p in parts if p.is_file()], ignore_index=True)
        frames["forgetting"] = paired_change(frames["probe_sentences"], BASELINE)
        self.notes = [n for arm, _ in ARMS if (self.out / "parts" / arm / "notes.json").is_file()
                      for n in json.loads((self.out / "parts" / arm / "notes.json").read_text(encoding="utf-8"))]
        paths = {}
        for name, df in frames.items():
            paths[name] = self.out / f"{name}.csv"
            _write(paths[name], df)
        self.tables = frames
        return paths

    def write_manifest(self, wall: float, cpu: float) -> Path:
        import torch

        from core.config import to_dict
        from core.io import atomic_write_json, environment
        from core.manifest import data_file_entries, read_manifest

        c = self.corpus
        arms = {}
        for arm, freeze in ARMS:
            entry = {"freeze": freeze, "realigned": freeze is not None}
            if freeze is not None:
                m = read_manifest(self.checkpoints[arm]) or {}
                entry.update({k: m.get(k) for k in ("frozen_layers", "realigned_layers", "steps", "lr", "seed",
                                                     "pairs_seen", "n_records", "final_losses", "wall_time_s")})
                entry["checkpoint"] = self.checkpoints[arm].name
                entry["base_model"] = m.get("base_model")
            arms[arm] = entry
        manifest = {
            "kind": "demo",
            "config": to_dict(self.cfg),
            "model": {"name": self.name, "weight_hash": self.base_hash, "type": type(self.base).__name__,
                      "layers": self.n_layers, "parameters": sum(p.numel() for p in self.base.parameters())},
            "corpus": {
                "source": c.source, "langs": c.langs,
                "measured": {lang: {"file": c.eval_files[lang].name, "sentences": len(c.eval_sentences[lang]),
                                    "words": sum(len(s) for s in c.eval_sentences[lang])} for lang in c.langs},
                "train": {"file": c.train_file.name, "sentences": len(c.train_sentences),
                          "words": sum(len(s) for s in c.train_sentences)},
                "split": {"realign_ids": len(c.realign_ids), "measured_ids": len(c.eval_ids),
                          "first_measured": c.eval_ids[0] if c.eval_ids else None},
                "pairs": {lang: c.parallel[lang]["spec"] for lang in c.langs[1:]},
                "dictionaries": {lang: (p.name if p else None) for lang, p in c.dictionary.items()},
                "files": data_file_entries(c.files()),
            },
            "pairs": self.pair_summaries,
            "arms": arms,
            "seeds": {"realignment": self.cfg.seed, "probe": PROBE_SEED, "ci_groups": 0,
                      "note": "one realignment seed: intervals are over sentences, not over seeds"},
            "measures": {"pooling": "first", "layers": f"0..{self.n_layers} (0 = embeddings)",
                         "probe": f"MultiLayerLinearProbe C=1, L-BFGS up to {PROBE_MAX_ITER} iterations, "
                                  "standardised features, trained on English",
                         "intervals": ("95%, over sentences: probe accuracies and their paired changes by the "
                                       "leave-one-sentence-out jackknife; drift's CKA by the delete-a-group "
                                       f"jackknife over {self.cfg.ci_groups} random groups of sentences "
                                       "(analysis.intervals); retrieval: Wilson intervals in the report's reading"),
                         "retrieval": "align-eval: sentence retrieval and word retrieval (cosine and CSLS k=10)"},
            "notes": self.notes,
            "steps": self.steps.log,
            "wall_time_s": round(wall, 2), "cpu_time_s": round(cpu, 2), "torch_threads": torch.get_num_threads(),
            "environment": environment(),
        }
        return atomic_write_json(self.out / MANIFEST, manifest)

    def summary(self) -> None:
        """The two numbers a reader wants first, on the terminal."""
        drift, probe = self.tables["drift"], self.tables["probe"]
        cka = drift[drift["metric"] == "cka"]
        if len(cka):
            t = 1 - cka.pivot_table(index="layer", columns="model", values="value", aggfunc="mean")
            print(f"\n1 - CKA against the pretrained model (mean over {len(self.corpus.langs)} languages; "
                  "higher = the layer moved more):")
            print(t[[a for a, _ in ARMS if a in t.columns]].round(4).to_string())
        zs = probe[probe["lang"] != "en"]
        if len(zs):
            acc = zs.pivot_table(index="layer", columns="model", values="value", aggfunc="mean")
            print("\nUPOS probe accuracy (%), zero-shot (trained on English), mean over "
                  f"{zs['lang'].nunique()} languages:")
            print((100 * acc[[a for a, _ in ARMS if a in acc.columns]]).round(1).to_string())


def _hashes(paths) -> dict[str, str]:
    return _file_hashes([p for p in paths if p is not None])
