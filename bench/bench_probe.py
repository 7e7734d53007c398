"""Benchmark: the batched all-layer probe against a per-layer scikit-learn loop.

Features: word features (first sub-word) of every layer of a REAL pretrained multilingual
encoder, ``e5-small`` (13 layers x 384 dims, see docs/models.md), on UD English-EWT: the
dev file trains the probes, the test file evaluates them (UPOS, 17 tags). When e5-small
or the UD files are not available, it falls back to random-weight DistilmBERT-size
features (7 layers x 768) of the authored demo sentences, repeated (timings only: random
features say little about accuracy) and says so.

Fairness: the same standardised float32 features (scikit-learn >= 1.x keeps float32 in
lbfgs, so both sides compute in float32), the same objective (multinomial logistic
regression, L2 with the same C, unpenalised intercept), L-BFGS on both sides with the same
``max_iter`` and ``tol`` (scikit-learn's defaults), the same number of threads
(``--threads``, default 1 for both: the machine is shared with other jobs, and on two busy
cores a second thread mostly waits — measured: the batched probe took 55 s with 2 threads
and 17.5 s with 1 thread on the same features, most of the difference in the L-BFGS
bookkeeping). The peer
is ``sklearn.linear_model.LogisticRegression(solver="lbfgs")`` fitted layer by layer, the
way probing papers do it. Standardisation is timed on both sides.

Target: batched >= 5x faster than the loop, accuracy within one point at every layer.

    python bench/bench_probe.py [--max-sentences N] [--cache DIR] [--C 1.0]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

UD = Path(os.environ.get("ALIGNFREEZE_SHARED_DATA", REPO.parent / "shared" / "data")) / "ud"


def load_features(args) -> tuple[dict, str]:
    """``{"train": (X_layers, y), "eval": (X_layers, y)}`` and a description of the source."""
    from core import prepared
    from core.features import ShardedFeatures, WordFeatureExtractor
    from core.models import load
    from probing.tasks import read_treebank

    files = {"train": UD / "en_ewt-ud-dev.conllu", "eval": UD / "en_ewt-ud-test.conllu"}
    real = prepared.is_available("e5-small") and all(f.is_file() for f in files.values())
    ud_only = not real and all(f.is_file() for f in files.values())
    if real:
        model, tok = load("e5-small")
        source = "e5-small (multilingual-e5-small, 4-bit-dequantised), all 13 layers x 384"
    elif ud_only:
        # e5-small cannot travel to a GPU machine (470 MB): real EWT text through a random-weight
        # full-size DistilmBERT architecture (token identity carries much of UPOS)
        from transformers import DistilBertConfig, DistilBertModel

        from core.tiny import train_tokenizer

        texts = [" ".join(s.tokens) for f in files.values() for s in read_treebank(f)]
        tok = train_tokenizer(texts, "distilbert", vocab_size=30000)
        tok.model_max_length = 512
        import torch

        torch.manual_seed(0)
        model = DistilBertModel(DistilBertConfig(vocab_size=119547, dim=768, n_layers=6, n_heads=12,
                                                 hidden_dim=3072)).eval().to(args.device)
        source = "random-weight full-size DistilmBERT architecture (7 layers x 768), 30k WordPiece trained on EWT"
    else:
        from core.tiny import tiny_model

        model, tok = tiny_model("distilbert", hidden=768, layers=6, heads=12, max_positions=512)
        files = {"train": REPO / "core/fixtures/en_demo-ud-test.conllu",
                 "eval": REPO / "core/fixtures/en_demo-ud-test.conllu"}
        source = "FALLBACK: random-weight DistilmBERT-size encoder (7 layers x 768) on the demo sentences"
    ex = WordFeatureExtractor(model, tok, layers="all", pooling="first", batch_size=32, progress=False)
    out = {}
    for split, f in files.items():
        sents = read_treebank(f, args.max_sentences or None)
        if not real and not ud_only:
            sents = sents * 200
        kind = "e5" if real else ("distilmbert" if ud_only else "fallback")
        cache = Path(args.cache) / f"{kind}-{f.stem}-{args.max_sentences}"
        if not (cache / "index.json").is_file():
            ex.extract_to_disk(sents, cache, dtype="float32")
        wf = ShardedFeatures(cache).load()
        y = np.asarray([t for s in sents for t in s.upos])[wf.valid]
        out[split] = ([wf.features[layer][wf.valid] for layer in wf.layers], y)
        source += f"; {split}: {f.name} ({len(sents)} sentences, {len(y)} words)"
    return out, source


def sklearn_loop(Xtr, ytr, Xte, yte, C, max_iter, tol):
    """Per-layer scikit-learn probes (the peer): standardise, fit, score."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    accs, iters = [], []
    t0 = time.perf_counter()
    for xtr, xte in zip(Xtr, Xte):
        sc = StandardScaler().fit(xtr)
        clf = LogisticRegression(C=C, solver="lbfgs", max_iter=max_iter, tol=tol).fit(sc.transform(xtr), ytr)
        accs.append(clf.score(sc.transform(xte), yte))
        iters.append(int(np.max(clf.n_iter_)))
    return time.perf_counter() - t0, np.asarray(accs), iters


def batched(Xtr, ytr, Xte, yte, C, max_iter, tol, device="cpu"):
    import torch

    from probing.linear import MultiLayerLinearProbe

    t0 = time.perf_counter()
    probe = MultiLayerLinearProbe(C, max_iter=max_iter, tol=tol, device=device).fit(Xtr, ytr)
    accs = probe.score(Xte, yte)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - t0, accs, probe.n_iter_


def main() -> None:
    import warnings

    import torch
    from sklearn.exceptions import ConvergenceWarning

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--max-sentences", type=int, default=0, help="sentences per file (0 = all)")
    ap.add_argument("--cache", default="/tmp/alignfreeze-bench-probe", help="feature cache (outside the repo)")
    ap.add_argument("--C", type=float, default=1.0, help="inverse L2 strength, both sides")
    ap.add_argument("--max-iter", type=int, default=100, help="L-BFGS iterations, both sides")
    ap.add_argument("--tol", type=float, default=1e-4, help="gradient tolerance, both sides")
    ap.add_argument("--threads", type=int, default=1,
                    help="BLAS/torch threads for BOTH sides (default 1: this machine is shared, and "
                         "oversubscribed threads make timings meaningless)")
    ap.add_argument("--device", default="cpu",
                    help="torch device of the batched probe (and feature extraction); scikit-learn runs on the CPU")
    ap.add_argument("--no-write", action="store_true", help="print only, do not update RESULTS.md")
    args = ap.parse_args()
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=args.threads)  # numpy/scipy/scikit-learn BLAS and OpenMP
    torch.set_num_threads(args.threads)

    data, source = load_features(args)
    Xtr, ytr = data["train"]
    Xte, yte = data["eval"]
    print(source, flush=True)
    warnings.simplefilter("ignore", ConvergenceWarning)  # reported below through the iteration counts
    load = os.getloadavg()[0]
    if args.device.startswith("cuda"):  # warm-up: CUDA context and kernels, not counted
        batched(Xtr, ytr, Xte, yte, args.C, 2, args.tol, args.device)
    t_b, acc_b, it_b = batched(Xtr, ytr, Xte, yte, args.C, args.max_iter, args.tol, args.device)
    print(f"batched torch: {t_b:.1f} s, {it_b} iterations", flush=True)
    t_s, acc_s, it_s = sklearn_loop(Xtr, ytr, Xte, yte, args.C, args.max_iter, args.tol)
    print(f"sklearn loop: {t_s:.1f} s, iterations {it_s}", flush=True)
    load = max(load, os.getloadavg()[0])
    speedup = t_s / t_b
    gap = np.abs(acc_b - acc_s).max() * 100
    ok_speed, ok_acc = speedup >= 5, gap <= 1.0
    lines = [
        "## Probing: batched all-layer probe vs per-layer scikit-learn loop",
        "",
        f"Features: {source}. UPOS, 17 tags; C = {args.C}, L-BFGS max_iter = {args.max_iter}, tol = {args.tol} "
        f"on both sides, float32 on both sides; {args.threads} thread(s) on both sides (torch and BLAS/OpenMP); 1-minute load average up to {load:.1f} "
        "(other jobs share this machine).",
        "",
        "| | time (s) | iterations |",
        "|---|---:|---:|",
        f"| `MultiLayerLinearProbe` (torch on {args.device}, all layers in one L-BFGS run) | {t_b:.1f} | {it_b} |",
        f"| scikit-learn `LogisticRegression` per layer (CPU, {args.threads} thread(s)) | {t_s:.1f} | {sum(it_s)} in all (max {max(it_s)}) |",
        "",
        f"**Speed-up: {speedup:.1f}x** (target >= 5x: {'met' if ok_speed else 'MISSED'}). "
        f"**Largest accuracy gap: {gap:.2f} points** (target <= 1: {'met' if ok_acc else 'MISSED'}).",
        "",
        "| layer | " + " | ".join(str(i) for i in range(len(acc_b))) + " |",
        "|---|" + "---:|" * len(acc_b),
        "| batched acc. | " + " | ".join(f"{a * 100:.2f}" for a in acc_b) + " |",
        "| sklearn acc. | " + " | ".join(f"{a * 100:.2f}" for a in acc_s) + " |",
    ]
    if not ok_speed and not args.device.startswith("cuda"):
        lines += [
            "",
            "Why the speed target is missed here: both sides run L-BFGS for about the same number of "
            "steps (the C = 1 problem is nearly separable, so neither reaches tol within max_iter), and "
            "on one CPU thread an evaluation of all layers costs what the per-layer evaluations cost "
            "together (the same float32 matrix products; batching removes Python and call overhead, "
            "which is small next to 25k x 384 x 17 products). Tried and not enough: an analytic "
            "gradient (about 1.6x per evaluation over autograd + cross_entropy, included), whitening the features as an L-BFGS "
            "preconditioner (about as many steps), an Adam warm start (lower loss at equal steps, same "
            "stopping point). Early stopping is faster but its top-layer accuracies differ by more than "
            "a point from the converged probe (less overfitting), so it would not be the same probe.",
        ]
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        from _results import write_section

        device = args.device.split(":")[0]
        write_section("probe" if device == "cpu" else f"probe-{device}", body)


if __name__ == "__main__":
    main()
