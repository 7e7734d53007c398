"""Step time of realignment under freeze strategies, full-size DistilmBERT architecture.

Target (issue 3): ``front`` costs at most 0.6x of ``none`` per step; pairs per second.

Model: ``DistilBertConfig`` with the published DistilmBERT values (6 layers, dim 768,
12 heads, hidden 3072, vocabulary 119,547), random weights: the compute is the real one.
Batch: 16 sentence pairs, max length 96, word-level InfoNCE on the last layer (defaults).
Data: PUD en-fr with the MUSE en-fr dictionary when the shared data is present, else the
authored fixtures repeated. Tokenizer: a 30k WordPiece trained on those sentences (the real
mBERT vocabulary is not available offline; token counts are what matter for compute).

Each step is exactly the training loop's step (:mod:`realign.train`): the same batches,
``realignment_loss`` -> ``backward`` -> ``optimizer.step`` -> ``zero_grad``, with the same
optimizer builder; timed by phase. All configurations live side by side (~8 GB) and are
stepped in interleaved rounds; ratios to ``none`` are paired within a round (the machine
may be shared: medians and in-run ratios, not absolutes).

``touched`` rows: the exact touched-rows Adam (:mod:`realign.optim`). To time the steady
state of a long run rather than its cheap start, its update set is pre-filled with EVERY
token id the pairs file uses (this changes no result: an untouched row's update is zero).

    python bench/bench_freeze.py                  # 1 warm-up round + 5 timed rounds
    python bench/bench_freeze.py --steps 3
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"

CONFIGS = (  # label, freeze spec, embedding update
    ("none", "none", "dense"),
    ("front", "front", "dense"),
    ("back", "back", "dense"),
    ("front+emb", "front+emb", "dense"),
    ("front, touched-rows Adam", "front", "touched"),
    ("none, touched-rows Adam", "none", "touched"),
)


def pairs_and_tokenizer(tmp: Path):
    from core import FIXTURES
    from core.encoding import surface_text
    from core.parallel import read_parallel
    from core.tiny import train_tokenizer
    from realign.pairs import extract_pairs, write_pairs

    ud, muse = SHARED / "ud", SHARED / "muse"
    if (ud / "en_pud-ud-test.conllu").is_file() and (muse / "en-fr.txt").is_file():
        pp = read_parallel(ud / "en_pud-ud-test.conllu", ud / "fr_pud-ud-test.conllu")
        records, summary = extract_pairs(pp, "dictionary", dictionary=muse / "en-fr.txt")
        source = "PUD en-fr (1,000 sentence pairs), MUSE en-fr dictionary"
    else:
        pp = read_parallel(FIXTURES / "en_demo-ud-test.conllu", FIXTURES / "fr_demo-ud-test.conllu")
        records, summary = extract_pairs(pp, "dictionary", dictionary=FIXTURES / "en-fr.txt")
        records = [dict(r, id=f"{r['id']}-{k}") for k in range(20) for r in records]
        source = "authored fixtures en-fr repeated (shared data absent)"
    path = write_pairs(tmp / "pairs.jsonl", records)
    texts = [surface_text(p.src)[0] for p in pp] + [surface_text(p.tgt)[0] for p in pp]
    tok = train_tokenizer(texts, "bert", vocab_size=30000)
    tok.model_max_length = 512
    return path, records, tok, source, summary


class Runner:
    """One configuration: its own model copy, freeze plan and optimizer, stepped on demand."""

    def __init__(self, base, tok, records, label, spec, emb_update, args, token_ids):
        from realign.config import RealignConfig
        from realign.freeze import apply_freeze, trainable_parameters
        from realign.optim import TouchedRowsAdam, build_adam

        self.label, self.spec, self.emb_update, self.tok, self.records = label, spec, emb_update, tok, records
        self.cfg = RealignConfig(model="bench", pairs=("-",), out="-", freeze=spec, embedding_update=emb_update,
                                 batch_size=args.batch_size, max_length=96, seed=42)
        self.model = copy.deepcopy(base)
        self.plan = apply_freeze(self.model, spec)
        named = trainable_parameters(self.model)
        self.emb = self.model.get_input_embeddings().weight
        self.opt = build_adam(named, 2e-5, self.cfg.betas, self.cfg.eps, emb_update, embedding=self.emb)
        self.sparse = isinstance(self.opt, TouchedRowsAdam)
        if self.sparse:
            self.opt.touch(self.emb, token_ids)
        self.n_train = sum(p.numel() for _, p in named)
        self.model.train()

    def step(self, step: int) -> dict:
        """Exactly one step of the training loop, timed by phase."""
        from realign.losses import realignment_loss
        from realign.train import batch_indices

        batch = [self.records[i] for i in batch_indices(step, self.cfg.batch_size, len(self.records), self.cfg.seed)]
        sync = torch.cuda.synchronize if self.emb.is_cuda else (lambda: None)
        sync()
        t0 = time.perf_counter()
        loss, _ = realignment_loss(self.model, self.tok, batch, self.cfg)
        sync()
        t1 = time.perf_counter()
        loss.backward()
        sync()
        t2 = time.perf_counter()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        sync()
        t3 = time.perf_counter()
        return {"fwd": t1 - t0, "bwd": t2 - t1, "opt": t3 - t2, "step": t3 - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=5, help="timed rounds (one step of every configuration each)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed first rounds")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    ap.add_argument("--device", default="cpu", help="cpu | cuda (the section is named after it)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from transformers import DistilBertConfig, DistilBertModel

    from core.features import encode_words
    from core.wordpairs import side

    tmp = Path(tempfile.mkdtemp(prefix="bench-freeze-"))
    _, records, tok, source, summary = pairs_and_tokenizer(tmp)
    enc = encode_words(tok, [side(r, "src") for r in records] + [side(r, "tgt") for r in records], max_length=96)
    token_ids = torch.unique(enc.input_ids)
    tokens_per_seq = float(enc.attention_mask.sum(1).float().mean())
    torch.manual_seed(0)
    base = DistilBertModel(DistilBertConfig(vocab_size=119547, dim=768, n_layers=6, n_heads=12, hidden_dim=3072))
    base = base.to(args.device)
    token_ids = token_ids.to(args.device)
    n_params = sum(p.numel() for p in base.parameters())
    n_emb = base.get_input_embeddings().weight.numel()

    runners = [Runner(base, tok, records, *c, args, token_ids) for c in CONFIGS]
    results: dict[str, list[dict]] = {r.label: [] for r in runners}
    ratios: dict[str, list[float]] = {r.label: [] for r in runners}
    # step-level interleaving: every round runs one step of every configuration (rotating
    # order), so the load of a shared machine hits all of them alike; ratios are paired
    # within a round
    for rnd in range(args.warmup + args.steps):
        order = runners[rnd % len(runners):] + runners[: rnd % len(runners)]
        row = {}
        for r in order:
            row[r.label] = r.step(rnd)
            t = row[r.label]
            print(f"  round {rnd} {r.label:26s}: fwd {t['fwd']:.2f} bwd {t['bwd']:.2f} opt {t['opt']:.2f} s",
                  flush=True)
        if rnd >= args.warmup:
            for label, t in row.items():
                results[label].append(t)
                ratios[label].append(t["step"] / row["none"]["step"])

    def med(label, key):
        return statistics.median(r[key] for r in results[label])

    table = []
    for r in runners:
        step = med(r.label, "step")
        table.append({"label": r.label, "spec": r.spec, "emb": r.emb_update, "trainable": r.n_train,
                      "frozen": r.plan.frozen_layers, "touched": r.opt.touched_rows(r.emb) if r.sparse else None,
                      "fwd": med(r.label, "fwd"), "bwd": med(r.label, "bwd"), "opt": med(r.label, "opt"),
                      "step": step, "pairs_s": args.batch_size / step,
                      "ratio": statistics.median(ratios[r.label]),
                      "ratio_range": (min(ratios[r.label]), max(ratios[r.label])), "n": len(results[r.label])})
    print(json.dumps(table, indent=1, default=str))
    # the point of freezing: after every timed step, frozen weights are still the base's bits
    base_params = dict(base.named_parameters())
    identical = all(torch.equal(p, base_params[n]) for r in runners for n, p in r.model.named_parameters()
                    if n in set(r.plan.frozen_parameter_names))
    moved = all(not torch.equal(r.model.transformer.layer[-1].ffn.lin2.weight, base.transformer.layer[-1].ffn.lin2.weight)
                for r in runners if r.spec in ("none", "front"))

    front = next(t for t in table if t["label"] == "front")
    none_row = next(t for t in table if t["label"] == "none")
    fr = front
    F, B, A, ref_t = none_row["fwd"], none_row["bwd"], none_row["opt"], none_row["trainable"]
    best = min((t for t in table if t["spec"] == "front"), key=lambda t: t["ratio"])
    fe = next(t for t in table if t["label"] == "front+emb")
    pred_front = (F + 0.75 * B + A * fr["trainable"] / ref_t) / (F + B + A)
    pred_fe = (F + 0.5 * B + A * fe["trainable"] / ref_t) / (F + B + A)
    lines = [
        "## Realignment step time by freeze strategy, full-size DistilmBERT architecture (random weights)",
        "",
        f"Data: {source}; {len(records)} records kept; batch {args.batch_size} sentence pairs "
        f"(both sides in one forward: {2 * args.batch_size} sequences, {tokens_per_seq:.1f} tokens on average), "
        f"max length 96, word InfoNCE on the last layer, Adam lr 2e-5. Model: {n_params / 1e6:.1f}M parameters, "
        f"of which the word embeddings {n_emb / 1e6:.1f}M. {front['n']} timed rounds after {args.warmup} warm-up "
        "round(s); each round runs one step of every configuration (rotating order), so the machine's load hits "
        "all alike. Times: medians; ratio: median of the per-round ratios to `none` (range in brackets).",
        "",
        "| strategy | frozen layers | Adam on embeddings | trainable params | forward s | backward s | optimizer s | step s | pairs/s | ratio to none (range) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for t in table:
        emb_note = t["emb"] + (f" ({t['touched']:,} rows)" if t["touched"] else "")
        lines.append(f"| {t['label']} | {list(t['frozen'])} | {emb_note} | {t['trainable'] / 1e6:.1f}M | "
                     f"{t['fwd']:.2f} | {t['bwd']:.2f} | {t['opt']:.2f} | {t['step']:.2f} | {t['pairs_s']:.2f} | "
                     f"{t['ratio']:.2f}x ({t['ratio_range'][0]:.2f}-{t['ratio_range'][1]:.2f}) |")
    verdict = "meets" if front["ratio"] <= 0.6 else "MISSES"
    lines += [
        "",
        f"After {args.warmup + args.steps} steps of each configuration, frozen weights bit-identical to the base: "
        f"**{'yes' if identical else 'NO'}**; last block's weights moved where trainable: {'yes' if moved else 'NO'}.",
        "",
        f"**front (paper definition: blocks 1-3 frozen, embeddings trainable), dense Adam: {front['ratio']:.2f}x of none** "
        f"(target <= 0.6x: {verdict}). Best front variant: {best['label']} at {best['ratio']:.2f}x "
        f"({'meets' if best['ratio'] <= 0.6 else 'MISSES'}). front+emb: {fe['ratio']:.2f}x "
        f"({'meets' if fe['ratio'] <= 0.6 else 'MISSES'}).",
        "",
        f"A cost model from the `none` row (forward F = {F:.2f} s, backward B = {B:.2f} s, Adam A = {A:.2f} s): "
        "the forward is the same for every strategy; a frozen block still crossed by the backward costs about "
        "half a trainable one (input gradients, no weight gradients); Adam scales with the trainable parameters. "
        f"It predicts front >= (F + 0.75 B + {fr['trainable'] / ref_t:.2f} A) / (F + B + A) = **{pred_front:.2f}x** "
        f"and front+emb ~ (F + 0.5 B + {fe['trainable'] / ref_t:.2f} A) / (F + B + A) = **{pred_fe:.2f}x**: "
        "with the embeddings trainable, 0.6x is out of reach by construction (the forward alone is "
        f"{F / (F + B + A):.0%} of a `none` step and nothing in `front` shortens it).",
        "",
        "Where the time goes. The forward pass is the same for every strategy (all six blocks must run to reach the "
        "last layer). With the embeddings trainable (`front`), the backward pass must still cross the frozen blocks "
        "1-3 to carry the gradient down to the embeddings: it only skips their weight gradients (about half of a "
        "block's backward), and the embedding gradient is a dense 92M-number tensor. The optimizer step is Adam "
        "over the trainable parameters, dominated by the 92M embedding matrix, which `front` keeps. `front+emb` "
        "builds no graph below block 4 (no backward there at all) and steps Adam over 21M parameters only. "
        "The touched-rows Adam (exact, see `realign/optim.py`) removes most of the embedding's optimizer cost "
        "(rows shown: every token id of the pairs file, the steady state of a long run) without changing a bit "
        "of the result; it cannot remove the backward through the frozen blocks, which the paper's definition "
        "requires.",
    ]
    from _results import write_section

    device = args.device.split(":")[0]
    lines[0] += f", {device.upper()}"
    write_section("freeze" if device == "cpu" else f"freeze-{device}", "\n".join(lines))


if __name__ == "__main__":
    main()
