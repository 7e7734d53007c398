"""Memory of a drift run over 200,000 words x 7 layers x 768 dims (target: < 4 GB peak RSS).

Full-size DistilmBERT architecture with random weights (``DistilBertConfig(vocab_size=119547,
dim=768, n_layers=6, n_heads=12, hidden_dim=3072)``) as the base, and a perturbed copy as
the checkpoint, both loaded for the whole run.

Two parts, in one process (peak RSS covers both, sampled every 20 ms with psutil and
checked against ``ru_maxrss``):

1. REAL: one chunk of UD PUD sentences (``--real-sentences``, default 256) through both
   models and :func:`analysis.drift.drift_rows` — timed, to extrapolate the full run.
2. STREAMING at full size: 200,000 words on 2 CPU cores would take hours of forward
   passes, so the SAME streaming code (:func:`analysis.drift.drift_rows`, chunk size
   ``--chunk-sentences``) is driven by extractors that yield synthetic word features
   (7 layers x 768, float32, checkpoint = base + layer-dependent noise) with the sentence
   lengths of the PUD treebanks, repeated until 200,000 words. Everything after feature
   extraction — CKA statistics, per-sentence cosine/L2 sums, the per-group statistics of the
   CKA jackknife (``--ci-groups`` float32 copies per layer) and all intervals — is the real
   code path.
"""

from __future__ import annotations

import argparse
import resource
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _results import write_section  # noqa: E402

from analysis.drift import drift_rows  # noqa: E402
from core.features import WordFeatures  # noqa: E402

UD = Path(__file__).resolve().parents[2] / "shared" / "data" / "ud"


class PeakRSS:
    """Sample the process RSS in a thread; ``peak`` in bytes."""

    def __init__(self, every: float = 0.02):
        import psutil

        self.proc = psutil.Process()
        self.every = every
        self.peak = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(self.every)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)


class SyntheticExtractor:
    """Yields WordFeatures chunks like WordFeatureExtractor.iter_chunks (deterministic per chunk)."""

    def __init__(self, layers, dim: int, noise: float, seed_base: int = 0):
        self.layers = tuple(layers)
        self.dim = dim
        self.noise = noise

    def iter_chunks(self, sentences, chunk_sentences: int = 512, total=None):
        for k, a in enumerate(range(0, len(sentences), chunk_sentences)):
            lens = [len(s) for s in sentences[a:a + chunk_sentences]]
            n = int(sum(lens))
            rng = np.random.default_rng(k)
            feats = {}
            for lay in self.layers:
                base = rng.standard_normal((n, self.dim), dtype=np.float32)
                if self.noise:
                    base += (self.noise * (1 + lay)) * np.random.default_rng(10_000 + k * 100 + lay).standard_normal(
                        (n, self.dim), dtype=np.float32)
                feats[lay] = base
            offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
            yield WordFeatures(self.layers, feats, offsets, np.ones(n, dtype=bool), "first",
                               {"sentences": len(lens), "words": n})


def pud_sentences():
    from core.conllu import read_sentences

    files = sorted(UD.glob("*_pud-ud-test.conllu")) if UD.is_dir() else []
    return list(read_sentences(files)) if files else [], files


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--words", type=int, default=200_000)
    ap.add_argument("--chunk-sentences", type=int, default=512)
    ap.add_argument("--real-sentences", type=int, default=256)
    ap.add_argument("--ci-groups", type=int, default=10)
    ap.add_argument("--real-words", type=int, default=0,
                    help="run the REAL part on PUD sentences repeated up to this many words (0: one chunk "
                         "of --real-sentences); with 200000 the whole target run is real")
    args = ap.parse_args()
    from transformers import DistilBertConfig, DistilBertModel

    from core.features import WordFeatureExtractor
    from core.tiny import train_tokenizer

    sents, files = pud_sentences()
    with PeakRSS() as mon:
        cfg = DistilBertConfig(vocab_size=119547, dim=768, n_layers=6, n_heads=12, hidden_dim=3072)
        torch.manual_seed(0)
        base = DistilBertModel(cfg).eval()
        pert = DistilBertModel(cfg).eval()
        pert.load_state_dict(base.state_dict())
        with torch.no_grad():
            for p in pert.transformer.layer[0].parameters():
                p.add_(0.02 * torch.randn_like(p))
        rss_models = mon.proc.memory_info().rss
        # ---- 1. one real chunk
        real_note = "skipped (UD PUD files absent)"
        t_real = n_real_words = 0
        if sents:
            texts = [" ".join(s.tokens) for s in sents[:2000]]
            tok = train_tokenizer(texts, "bert", vocab_size=8000)
            real = sents[: args.real_sentences]
            if args.real_words:  # PUD sentences repeated up to the requested number of words
                real, total_real = [], 0
                while total_real < args.real_words:
                    real.append(sents[len(real) % len(sents)])
                    total_real += len(real[-1])
            n_real_words = sum(len(s) for s in real)
            exb = WordFeatureExtractor(base, tok, pooling="first", batch_size=32, progress=False)
            exp = WordFeatureExtractor(pert, tok, pooling="first", batch_size=32, progress=False)
            t = time.perf_counter()
            rows_real = drift_rows(exb, {"pert": exp}, real, "pud", ci_groups=args.ci_groups,
                                   chunk_sentences=args.chunk_sentences)
            t_real = time.perf_counter() - t
            cka1 = [r["value"] for r in rows_real if r["metric"] == "cka" and r["layer"] == 1][0]
            real_note = (f"{len(real)} PUD sentences, {n_real_words} words, 7 layers: {t_real:.1f} s "
                         f"({n_real_words / t_real:.0f} words/s for base + checkpoint + statistics; "
                         f"CKA at layer 1 = {cka1:.4f}; peak RSS so far {mon.peak / 2**30:.2f} GB)")
        # ---- 2. full size, synthetic features through the same streaming code
        lens = [len(s) for s in sents] or [20] * 1000
        stream, total, i = [], 0, 0
        while total < args.words:
            n = lens[i % len(lens)]
            stream.append(["w"] * n)
            total += n
            i += 1
        layers = range(7)
        t = time.perf_counter()
        rows = drift_rows(SyntheticExtractor(layers, 768, 0.0), {"ckpt": SyntheticExtractor(layers, 768, 0.1)},
                          stream, "synthetic", ci_groups=args.ci_groups, chunk_sentences=args.chunk_sentences)
        t_syn = time.perf_counter() - t
    peak = max(mon.peak, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    ok = peak < 4 * 1024 ** 3
    cka = {r["layer"]: r["value"] for r in rows if r["metric"] == "cka"}
    body = f"""## Drift memory: 200,000 words x 7 layers x 768 dims

Base: DistilmBERT-size architecture (119,547 vocab, 6 blocks, 768 dims) with random weights;
checkpoint: a perturbed copy (both in memory throughout: {rss_models / 2**30:.2f} GB RSS after loading).
Chunks of {args.chunk_sentences} sentences; intervals: CKA jackknife over {args.ci_groups} sentence groups
({args.ci_groups} float32 copies of the d x d statistics per layer), leave-one-sentence-out for cosine/L2.

- Real ({"full run, --real-words" if args.real_words else "one chunk"}): {real_note}.
- Full size: {len(stream)} sentences, {total} words (PUD sentence lengths of {len(files)} file(s), repeated),
  7 layers x 768 dims; **features synthetic** (2 CPU cores cannot run 2 x 200,000 words through
  the model in reasonable time), statistics and intervals by the real streaming code:
  {t_syn:.1f} s. CKA per layer (expected ~1/(1+(0.1(1+l))^2)): {", ".join(f"{v:.3f}" for v in cka.values())}.

**Peak RSS of the whole process: {peak / 2**30:.2f} GB** (target < 4 GB: {"met" if ok else "MISSED"}).
A full real run would take about {total / max(n_real_words / max(t_real, 1e-9), 1) / 3600:.1f} h at the measured real-chunk rate (both models + statistics) on this machine.
"""
    print(body)
    write_section("drift", body)


if __name__ == "__main__":
    main()
