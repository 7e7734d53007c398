"""Coverage of the drift intervals against a KNOWN population value, before and after.

Data: :class:`analysis.simulate.ClusteredPair` — Gaussian base/checkpoint word vectors with a
closed-form population linear CKA, a share of the variance common to the words of a
sentence (as in contextual features), sentence lengths 1 + Poisson(19). Population cosine
distance and relative L2 change come from a 2,000,000-word independent sample.

Each repetition draws a fresh treebank and runs the drift code of a real run
(:func:`analysis.simulate.simulate_drift`: random sentence groups, streamed chunks,
``LayerDrift``). Methods:

- **new** (this code): CKA and debiased CKA share one interval, the delete-a-group jackknife
  of the group U-statistic CKA over G random groups of sentences (unbiased HSIC over word
  4-tuples from 4 distinct groups, all words), bias-corrected, widened to contain each
  row's value; cosine/L2 by a leave-one-sentence-out jackknife;
- **old** (the code before, re-implemented here for the comparison): percentile bootstrap
  (1,000 replicates) of biased linear CKA on a seeded subsample of whole sentences of at
  most 1,000 words, the point being the full-data CKA; percentile bootstrap over sentences
  for cosine/L2; no interval for debiased CKA.

Reported: coverage of the truth (with its Monte-Carlo standard error), the share of points
inside their own interval, the mean width, and the plug-in's mean error. Also the cost of
the jackknife: time of a drift accumulation with intervals vs without (same data, same
run) and the float32 bytes the groups hold.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # spinning BLAS threads on a
    os.environ.setdefault(_v, "1")  # shared machine cost 10x the CPU (measured); set before numpy loads

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _results import write_section  # noqa: E402

from analysis.simulate import ClusteredPair, simulate_drift  # noqa: E402

METRICS = ("cka", "cka_debiased", "cos_dist", "rel_l2")


# ----------------------------------------------------------------- the old method, for comparison
def _old_weighted_cka(X, Y, W):
    X = X - X.mean(0)
    Y = Y - Y.mean(0)
    K, L = X @ X.T, Y @ Y.T
    nw = W.sum(0)
    KW, LW = K @ W, L @ W

    def hsic(A, AW, B, BW):
        return (W * ((A * B) @ W)).sum(0) - 2 * (W * AW * BW).sum(0) / nw + (W * AW).sum(0) * (W * BW).sum(0) / nw ** 2

    xy, xx, yy = hsic(K, KW, L, LW), hsic(K, KW, K, KW), hsic(L, LW, L, LW)
    return xy / np.sqrt(xx * yy)


def old_cka_interval(X, Y, lengths, seed=0, max_words=1000, n_boot=1000, level=0.95):
    """The previous drift CKA interval: percentile bootstrap on a <= 1,000-word subsample."""
    rng = np.random.default_rng(seed)
    keep, total = [], 0
    for s in rng.permutation(len(lengths)):
        if total + lengths[s] <= max_words:
            keep.append(s)
            total += lengths[s]
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    rows = np.concatenate([np.arange(offsets[s], offsets[s + 1]) for s in keep])
    inv = np.repeat(np.arange(len(keep)), lengths[keep])
    Xs, Ys = X[rows].astype(np.float64), Y[rows].astype(np.float64)
    vals = []
    for a in range(0, n_boot, 250):
        r = min(250, n_boot - a)
        counts = np.stack([np.bincount(rng.integers(0, len(keep), len(keep)), minlength=len(keep))
                           for _ in range(r)], 1)
        vals.append(_old_weighted_cka(Xs, Ys, counts[inv].astype(np.float64)))
    v = np.concatenate(vals)
    q = (1 - level) / 2
    return float(np.quantile(v, q)), float(np.quantile(v, 1 - q))


def old_ratio_interval(num, den, seed=0, n_boot=1000, level=0.95):
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(num), size=(n_boot, len(num)))
    v = num[idx].sum(1) / den[idx].sum(1)
    q = (1 - level) / 2
    return float(np.quantile(v, q)), float(np.quantile(v, 1 - q))


def per_sentence(X, Y, lengths):
    """Per-sentence sums of cosine distance and relative L2 change (what LayerDrift keeps)."""
    nx, ny = np.linalg.norm(X, axis=1), np.linalg.norm(Y, axis=1)
    cos = 1 - (X * Y).sum(1) / (nx * ny)
    rel = np.linalg.norm(Y - X, axis=1) / nx
    sent = np.repeat(np.arange(len(lengths)), lengths)
    S = len(lengths)
    return np.bincount(sent, cos, S), np.bincount(sent, rel, S), lengths.astype(np.float64)


# ---------------------------------------------------------------------------- the experiment
def run_scenario(sc: ClusteredPair, n_sentences: int, reps: int, groups: list[int], old_reps: int, seed: int = 0):
    truth = {"cka": sc.truth, "cka_debiased": sc.truth,
             **sc.reference(2_000_000 if sc.dim <= 128 else 300_000)}
    res: dict[tuple[str, str], list] = {}
    rng = np.random.default_rng(seed)
    t_new = t_old = 0.0
    for r in range(reps):
        state = rng.bit_generator.state
        for G in groups:
            rng.bit_generator.state = state  # the same treebank for every method
            t = time.perf_counter()
            rows = simulate_drift(sc, rng, n_sentences, ci_groups=G, chunk_sentences=256, seed=r)
            t_new += time.perf_counter() - t
            for m in METRICS:
                res.setdefault((f"new, G={G}", m), []).append(
                    (rows[m]["value"], rows[m]["ci_low"], rows[m]["ci_high"]))
        if r < old_reps:
            rng.bit_generator.state = state
            X, Y, lengths = sc.draw(rng, n_sentences)
            t = time.perf_counter()
            lo, hi = old_cka_interval(X, Y, lengths, seed=r)
            cos, rel, cnt = per_sentence(X.astype(np.float64), Y.astype(np.float64), lengths)
            res.setdefault(("old", "cka"), []).append((rows["cka"]["value"], lo, hi))
            for m, s in (("cos_dist", cos), ("rel_l2", rel)):
                lo, hi = old_ratio_interval(s, cnt, seed=r)
                res.setdefault(("old", m), []).append((s.sum() / cnt.sum(), lo, hi))
            t_old += time.perf_counter() - t
    table = []
    for (method, m), v in res.items():
        v = np.asarray(v)
        val, lo, hi = v.T
        cover = np.mean((lo <= truth[m]) & (truth[m] <= hi))
        table.append({"method": method, "metric": m, "coverage": cover,
                      "mc_se": np.sqrt(max(cover * (1 - cover), 1e-12) / len(v)),
                      "inside": np.mean((lo <= val) & (val <= hi)), "width": np.mean(hi - lo),
                      "error": np.mean(val) - truth[m], "truth": truth[m]})
    return table, t_new, t_old


def cost(dim: int, n_sentences: int, groups: int) -> dict:
    """Seconds of one drift accumulation + rows (one layer, chunks of 512 sentences) with and
    without intervals on the same drawn data (median of 3 alternating runs), and the bytes
    held by the jackknife groups."""
    from analysis.drift import LayerDrift
    from analysis.intervals import GroupedCKA, sentence_groups

    sc = ClusteredPair(dim=dim, decay=1.0, noise=0.5, seed=9)
    X, Y, lengths = sc.draw(np.random.default_rng(0), n_sentences)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    times: dict[int, list] = {0: [], groups: []}
    held = 0
    for k in range(3):
        for G in (0, groups) if k % 2 == 0 else (groups, 0):
            order, group = sentence_groups(n_sentences, max(G, 1), seed=k)
            chunks = []
            for a in range(0, n_sentences, 512):
                sents = order[a:a + 512]
                rows = np.concatenate([np.arange(offsets[s], offsets[s + 1]) for s in sents])
                chunks.append((X[rows], Y[rows], np.concatenate([[0], np.cumsum(lengths[sents])]), group[a:a + 512]))
            t = time.perf_counter()
            acc = LayerDrift(GroupedCKA(precision="mixed", keep_groups=G > 1))
            for x, y, off, grp in chunks:
                acc.update(x, y, off, np.ones(len(x), dtype=bool), grp)
            acc.rows(intervals=G > 0)
            times[G].append(time.perf_counter() - t)
            held = max(held, acc.cka.nbytes)
    return {"dim": dim, "words": len(X), "t0": float(np.median(times[0])), "t1": float(np.median(times[groups])),
            "bytes": held}


SCENARIOS = [
    # name, scenario, sentences, repetitions factor
    ("anisotropic, d=64, 100 sentences", ClusteredPair(dim=64, decay=1.0, noise=1.0, within=0.3, seed=1), 100, 1.0),
    ("flat, d=64, 100 sentences", ClusteredPair(dim=64, decay=0.0, noise=1.0, within=0.3, seed=2), 100, 1.0),
    ("near-identical (CKA ~0.99), d=64, 100 sentences",
     ClusteredPair(dim=64, decay=1.0, noise=0.1, within=0.3, seed=3), 100, 1.0),
    ("anisotropic, d=64, 12 sentences (a small treebank)",
     ClusteredPair(dim=64, decay=1.0, noise=1.0, within=0.3, seed=4), 12, 1.0),
    ("anisotropic, d=384, 1,000 sentences (a PUD file, e5-small's width)",
     ClusteredPair(dim=384, decay=1.0, noise=1.0, within=0.3, seed=5), 1000, 0.5),
    ("flat, d=384, 1,000 sentences", ClusteredPair(dim=384, decay=0.0, noise=1.0, within=0.3, seed=6), 1000, 0.5),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=200, help="repetitions per scenario (halved for the d=384 ones)")
    ap.add_argument("--groups", type=int, nargs="+", default=[10, 20], help="jackknife groups G to compare")
    ap.add_argument("--old-reps", type=int, default=50, help="draws per scenario for the (slow) old method")
    ap.add_argument("--only", type=int, nargs="*", default=None, help="scenario indices to run")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--no-write", action="store_true", help="print the tables only (RESULTS.md unchanged)")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    lines = []
    t_all = time.perf_counter()
    for k, (name, sc, S, f) in enumerate(SCENARIOS):
        if args.only is not None and k not in args.only:
            continue
        reps = max(20, int(args.reps * f))
        table, t_new, t_old = run_scenario(sc, S, reps, args.groups, args.old_reps)
        lines.append(f"\n### {name}: {reps} draws ({min(reps, args.old_reps)} for old), "
                     f"population CKA {sc.truth:.4f}\n")
        lines.append("| method | metric | coverage (MC se) | point inside | mean width | plug-in error |")
        lines.append("|---|---|---:|---:|---:|---:|")
        order = {m: i for i, m in enumerate(METRICS)}
        for row in sorted(table, key=lambda r: (order[r["metric"]], r["method"])):
            lines.append(f"| {row['method']} | {row['metric']} | {row['coverage']:.3f} ({row['mc_se']:.3f}) | "
                         f"{row['inside']:.2f} | {row['width']:.5f} | {row['error']:+.5f} |")
        print("\n".join(lines[-len(table) - 3:]), flush=True)
    if args.no_write:
        print(f"Total bench time {time.perf_counter() - t_all:.0f} s.")
        return
    c = cost(384, 1000, 10)
    c768 = cost(768, 1000, 10)
    body = f"""## Drift intervals: coverage of a known population value (before / after)

`analysis.simulate.ClusteredPair`: Gaussian word vectors with a closed-form population
linear CKA; 30% of the variance shared by the words of a sentence; sentences of 1 + Poisson(19)
words; eigenvalues ~ 1/(i+1) (*anisotropic*, like real layers) or equal (*flat*). Population
cosine distance and relative L2 change: a 2,000,000-word independent sample. Each draw is a fresh
treebank through the drift code of a real run. **new**: CKA and debiased CKA share one
interval, the delete-a-group jackknife of the group U-statistic CKA (unbiased HSIC over word
4-tuples from 4 distinct random sentence groups, all words), bias-corrected, widened to
contain each row's value; leave-one-sentence-out for cosine and L2. **old**: percentile bootstrap of biased CKA on a 1,000-word
subsample (the point: all words); percentile bootstrap over sentences for cosine/L2; no
interval for debiased CKA. Target: coverage >= 0.90 of 95% intervals, every point inside.
{"".join(x + chr(10) for x in lines)}
Cost of the jackknife (drift statistics of one layer and checkpoint, accumulation + rows, same data,
median of 3 alternating runs): d = 384, {c["words"]:,} words: {c["t1"]:.2f} s with 10 groups vs {c["t0"]:.2f} s
without (**{c["t1"] / c["t0"]:.2f}x**), the groups hold {c["bytes"] / 2**20:.1f} MB; d = 768, {c768["words"]:,} words:
{c768["t1"]:.2f} s vs {c768["t0"]:.2f} s (**{c768["t1"] / c768["t0"]:.2f}x**), {c768["bytes"] / 2**20:.1f} MB per layer and checkpoint
(13 layers x 768 dims: {13 * c768["bytes"] / 2**30:.2f} GB per checkpoint). In a real run these statistics are a small
part of the time next to the forward passes (bench section *drift*).
Total bench time {time.perf_counter() - t_all:.0f} s.
"""
    print(body)
    write_section("intervals", body)


if __name__ == "__main__":
    main()
