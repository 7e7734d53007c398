"""Cost of the cheap layer-effect study on e5-small (``alignfreeze layer-effect``), five languages.

In one process, on the shared PUD treebanks and MUSE dictionaries:

1. word pairs en-LANG (dictionary aligner) from the first ``--pair-sentences`` sentences;
2. a short realignment of e5-small on them (``--steps`` steps of ``--batch-size`` pairs,
   exact touched-rows Adam on the embeddings, as the demo);
3. the PEER: one probe run on the realigned checkpoint (``probing.run.run_probe``: UPOS,
   trained on English PUD, evaluated on en + the five languages, last layer, one seed), on
   the same sentences as the study;
4. the study: each layer alone (13), both halves and all layers reverted (16 variants +
   the realigned model), UPOS probes + sentence retrieval + word retrieval per language at
   the last layer, with the replay of unchanged lower blocks (default), then the same
   study with ``reuse=False`` (every variant computed from the embeddings up).

Reported: seconds of each step, the study's cost in probe runs, the replay's saving, the
blocks run per sentence (counted by the study), and the load average (the machine is
shared: ratios of steps measured in the same run are what carries over).
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _results import write_section  # noqa: E402

_HERE = Path(__file__).resolve()
SHARED = Path(os.environ.get("ALIGNFREEZE_SHARED_DATA") or next(
    (p / "shared" / "data" for p in _HERE.parents if (p / "shared" / "data" / "ud").is_dir()), _HERE.parents[2]))


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def _reading(eff) -> str:
    """A few sentences on what the run measured (one checkpoint: intervals over sentences)."""
    import numpy as np

    out = ["What the run measured (effects of one checkpoint, in points; the full table is printed by the study):"]
    single = eff["variant"].str.match(r"^(emb|block \d+)$")
    for measure, g in eff.groupby("measure", sort=False):
        tot = g[g["variant"] == "all (pretrained)"].set_index("lang")["effect"] * 100
        one = g[single.loc[g.index]]
        if (g["realigned"] >= 0.999).all() and (g["reverted"] >= 0.999).all():
            out.append(f"{measure}: at its ceiling (100% for every variant): more sentences are needed for it.")
            continue
        sums = one.groupby("lang")["effect"].sum() * 100
        big = one.loc[(one["effect"] * 100).abs().idxmax()]
        out.append(f"{measure}: the whole realignment (all layers reverted) {tot.min():+.1f} to {tot.max():+.1f}; "
                   f"single layers median |effect| {np.median(np.abs(one['effect'] * 100)):.1f}, largest "
                   f"{100 * big['effect']:+.1f} ({big['variant']}, {big['lang']}); sum of the single-layer effects vs "
                   "all: " + ", ".join(f"{lang} {sums[lang]:+.1f} vs {tot[lang]:+.1f}" for lang in tot.index
                                       if lang in sums.index) + ".")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--langs", nargs="+", default=["fr", "de", "es", "ru", "zh"])
    ap.add_argument("--sentences", type=int, default=60, help="PUD sentences per language in the study")
    ap.add_argument("--pair-sentences", type=int, default=200, help="sentence pairs per language for realignment")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: on a loaded machine more only spin)")
    ap.add_argument("--work", default=None, help="work folder (default: a temporary one)")
    ap.add_argument("--no-write", action="store_true", help="print only; do not touch bench/RESULTS.md")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from alignfreeze.layer_effect import LayerEffectConfig, run_layer_effect, summary_text
    from core.models import load
    from core.parallel import read_parallel
    from probing.run import ProbeConfig, run_probe
    from probing.tasks import read_treebank
    from realign.config import RealignConfig
    from realign.pairs import extract_pairs, write_pairs
    from realign.train import realign

    ud, muse = SHARED / "ud", SHARED / "muse"
    en = ud / "en_pud-ud-test.conllu"
    files = {lang: ud / f"{lang}_pud-ud-test.conllu" for lang in args.langs}
    load0 = os.getloadavg()
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-layer-effect-"))
    work.mkdir(parents=True, exist_ok=True)
    times = {}

    (base, tok), times["load e5-small"] = _timed(lambda: load("e5-small", offline=True))
    pairs = []
    t0 = time.perf_counter()
    for lang, f in files.items():
        pp = read_parallel(en, f, limit=args.pair_sentences)
        records, _ = extract_pairs(pp, "dictionary", dictionary=muse / f"en-{lang}.txt", progress=False)
        pairs.append(str(write_pairs(work / f"en-{lang}.jsonl", records)))
    times["pairs"] = time.perf_counter() - t0
    ckpt = work / "full-42"
    if not ckpt.exists():
        cfg = RealignConfig(model="e5-small", pairs=tuple(pairs), out=str(ckpt), steps=args.steps,
                            batch_size=args.batch_size, seed=42, embedding_update="touched")
        _, times["realign"] = _timed(lambda: realign(cfg, model=copy.deepcopy(base), tokenizer=tok, progress=False))
    evals = [str(en), *map(str, files.values())]

    probe_cfg = ProbeConfig(model=str(ckpt), train=str(en), eval=tuple(evals), layers="last", seeds=1,
                            max_sentences=args.sentences)
    _, times["peer: one probe run"] = _timed(lambda: run_probe(probe_cfg, progress=False))

    def study(reuse: bool):
        c = LayerEffectConfig(model=(str(ckpt),), base="e5-small", train=str(en), eval=tuple(evals),
                              measures=("upos-probe", "sentence-retrieval", "word-retrieval"), pairs=tuple(pairs),
                              max_sentences=args.sentences, reuse=reuse)
        return run_layer_effect(c, progress=False, base_model=base)

    res, times["study (replay)"] = _timed(lambda: study(True))
    res_plain, times["study (no replay)"] = _timed(lambda: study(False))
    load1 = os.getloadavg()
    same = (res.effects["effect"].to_numpy() == res_plain.effects["effect"].to_numpy()).all()
    passes = res.meta["checkpoints"][0]["block_passes"]
    words = sum(len(s) for f in evals for s in read_treebank(f, args.sentences))

    peer = times["peer: one probe run"]
    rows = "\n".join(f"| {k} | {v:.1f} | {v / peer:.1f}x |" for k, v in times.items())
    body = f"""## Layer-effect study, cheap path: e5-small, {len(args.langs)} languages + English, CPU

Realigned e5-small ({args.steps} steps x {args.batch_size} sentence pairs, en-{{{','.join(args.langs)}}} PUD
with MUSE dictionaries), then `alignfreeze layer-effect` on the first {args.sentences} PUD sentences of en and
each language ({words:,} words in all): {len(res.meta['variants'])} variants (13 layers alone, both halves,
all) + the realigned model, UPOS probes (trained on English, held-out English sentences) + sentence and word
retrieval, last layer. The peer is ONE probe run (`run_probe`, same files, same sentences, last layer, one
seed) on the realigned checkpoint.

| step | seconds | x one probe run |
|---|---:|---:|
{rows}

**Study with the replay / without: {times['study (replay)'] / times['study (no replay)']:.2f}x** (identical
effects: {bool(same)}); blocks run per sentence {passes['computed']} vs {passes['plain']} for plain passes
({passes['computed'] / passes['plain']:.2f}x; the rest of the cost is tokenising, pooling, probes and loading).
The study costs **{times['study (replay)'] / peer:.0f} probe runs** (17 models' features + 17 probe fits in one).

Load average (1 min) at start / end: {load0[0]:.1f} / {load1[0]:.1f} on {os.cpu_count()} cores (other jobs
shared the machine: absolute seconds are noisy, the ratios compare steps of the same run).
"""
    body += "\n" + _reading(res.effects) + "\n"
    print(body)
    print(summary_text(res.effects))
    if not args.no_write:
        write_section("layer-effect", body)


if __name__ == "__main__":
    main()
