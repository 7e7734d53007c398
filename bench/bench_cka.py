"""Linear CKA at n = 8,000, d = 768: analysis.linear_cka (feature space) vs ckatorch (Gram).

Target: at least 20x faster than ``ckatorch.core.cka_base`` with equal values (1e-6).
Both run on the same random, partly correlated float32 inputs; ckatorch casts to float64
itself (its behaviour). Best of ``--repeats`` runs each.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _results import write_section  # noqa: E402

from analysis.cka import linear_cka  # noqa: E402


def best_of(fn, repeats: int) -> tuple[float, float]:
    times, val = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        val = fn()
        times.append(time.perf_counter() - t)
    return min(times), float(val)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=8000)
    ap.add_argument("--d", type=int, default=768)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    from ckatorch.core import cka_base

    rng = np.random.default_rng(0)
    X = rng.normal(size=(args.n, args.d)).astype(np.float32)
    Y = (X @ rng.normal(size=(args.d, args.d)).astype(np.float32) * 0.05
         + rng.normal(size=(args.n, args.d)).astype(np.float32))
    Xt, Yt = torch.from_numpy(X), torch.from_numpy(Y)
    t_ours, v_ours = best_of(lambda: linear_cka(X, Y), args.repeats)
    t_64, v_64 = best_of(lambda: linear_cka(X, Y, precision="float64"), args.repeats)
    t_peer, v_peer = best_of(lambda: cka_base(Xt, Yt, kernel="linear"), max(1, args.repeats - 1))
    diff = abs(v_ours - v_peer)
    ratio = t_peer / t_ours
    ok = diff <= 1e-6 and ratio >= 20
    body = f"""## Linear CKA: feature space vs ckatorch (Gram matrices)

n = {args.n} words, d = {args.d} dims (float32 inputs), best of {args.repeats} ({max(1, args.repeats - 1)} for ckatorch).

| implementation | time (s) | CKA |
|---|---:|---:|
| `analysis.linear_cka` (float32 GEMM blocks, float64 accumulation) | {t_ours:.3f} | {v_ours:.10f} |
| `analysis.linear_cka(precision="float64")` | {t_64:.3f} | {v_64:.10f} |
| `ckatorch.core.cka_base(kernel="linear")` (float64, n x n Gram) | {t_peer:.3f} | {v_peer:.10f} |

Speed-up (mixed vs ckatorch): **{ratio:.1f}x** (float64 path: {t_peer / t_64:.1f}x); |difference| = {diff:.2e}.
Target (>= 20x, |diff| <= 1e-6): **{"met" if ok else "MISSED"}**.
"""
    print(body)
    write_section("cka", body)


if __name__ == "__main__":
    main()
