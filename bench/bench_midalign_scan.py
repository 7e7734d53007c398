"""Layer scan of the prepared SmolLM2-135M (a REAL decoder, English-centric) on PUD en-de and en-fr.

Which layer would ``--layer auto`` choose, and by how much does it win? Sentence retrieval
accuracy@1 (both directions, chance = 1/N) and linear CKA per layer 0..30, sentences as
token means over non-pad tokens (core.sentences: running text, windows past --max-length). Reads ../shared/data/ud (never copied).

    python bench/bench_midalign_scan.py --limit 1000
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _results import write_section  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=1000)
    ap.add_argument("--ud", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "ud"))
    ap.add_argument("--out", default="/tmp/midalign_scan.csv")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()

    import pandas as pd
    import torch

    from core.arch import num_layers
    from core.models import load
    from core.parallel import read_parallel
    from realign.midalign.layer_choice import choose_layer

    torch.set_num_threads(2)
    ud = Path(args.ud)
    if not ud.is_dir():
        raise SystemExit(f"{ud}: shared UD data absent")
    model, tok = load("smollm2-135m")
    L = num_layers(model)
    from analysis.layer_scan import scan_rows
    from core.sentences import sentence_vectors

    # the PUD sentences are the same 1:1 in every language: the English vectors serve both pairs
    frames, times, vecs, trunc = [], {}, {}, {}
    for lang in ("en", "de", "fr"):
        pairs = read_parallel(ud / "en_pud-ud-test.conllu", ud / f"{lang}_pud-ud-test.conllu", limit=args.limit)
        t0 = time.perf_counter()
        vecs[lang], st = sentence_vectors(model, tok, [p.tgt for p in pairs], "all", batch_size=16, max_length=256)
        trunc[lang] = st.windowed
        times[lang] = time.perf_counter() - t0
    for tgt in ("de", "fr"):
        rows = scan_rows(vecs["en"], vecs[tgt])
        frames.append(pd.DataFrame([{"model": "smollm2-135m", "src": "en", "tgt": tgt, **r} for r in rows]))
        times[tgt] = (times["en"] + times[tgt], trunc["en"] + trunc[tgt])
    df = pd.concat(frames, ignore_index=True)
    df.to_csv(args.out, index=False)
    lines = [f"## Layer scan of SmolLM2-135M (real weights, English-centric), PUD en-de and en-fr, {args.limit} pairs",
             "",
             "Sentence = token mean over non-pad tokens at layer l (0 = embeddings, i = output of block i, before "
             f"the final norm); L = {L}. Retrieval accuracy@1 among {args.limit} candidates (chance "
             f"{1 / args.limit:.3f}); linear CKA between the two sides' sentence matrices.", ""]
    for tgt in ("de", "fr"):
        sub = df[df["tgt"] == tgt]
        c = choose_layer(sub.to_dict("records"), L)
        piv = sub[sub["metric"].isin(["retrieval_acc", "cka"])].pivot_table(
            index="layer", columns=["metric", "direction"], values="value")
        best, f0, fl = c.figures[c.layer], c.figures[0], c.figures[L]
        lines += [f"### en-{tgt}: `--layer auto` picks K = {c.layer} of {L}", "",
                  f"Mean retrieval at K: **{best['retrieval_mean']:.3f}** (CKA {best['cka']:.3f}); runner-up layer "
                  f"{c.runner_up} at {c.figures[c.runner_up]['retrieval_mean']:.3f} (margin {c.margin:+.3f}); "
                  f"layer 0: {f0['retrieval_mean']:.3f}; layer L = {L}: {fl['retrieval_mean']:.3f}; the paper's "
                  f"fixed middle (L/2 = {L // 2}): {c.figures[L // 2]['retrieval_mean']:.3f}. "
                  f"Scan time {times[tgt][0]:.0f} s ({times[tgt][1]} sentences windowed).", "",
                  "| layer | en->" + tgt + " | " + tgt + "->en | mean | linear CKA |", "|---:|---:|---:|---:|---:|"]
        for lay in piv.index:
            r = piv.loc[lay]
            s2t = r[("retrieval_acc", "src->tgt")]
            t2s = r[("retrieval_acc", "tgt->src")]
            lines.append(f"| {lay} | {s2t:.3f} | {t2s:.3f} | {(s2t + t2s) / 2:.3f} | {r[('cka', 'both')]:.3f} |")
        lines.append("")
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        write_section("midalign-scan", body)


if __name__ == "__main__":
    main()
