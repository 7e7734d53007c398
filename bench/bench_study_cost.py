"""Cost of a real study on this machine: e5-small on two CPU cores, the toolkit against a plain
PyTorch loop doing the same work, measured in the same run.

Model: the prepared e5-small (``core.models.load("e5-small", offline=True)``: real weights,
real tokenizer; 12 blocks, 384 dims, 117.5M parameters of which 96M are word embeddings).
Four items, each against a hand-written peer (``bench/_plain_loops.py``: HF tokenizer,
``output_hidden_states``, the loss written out, the optimizer):

1. realign step: :func:`realign.train.realign` (batch 16 word-pair records, defaults: word
   InfoNCE on the last layer, dense Adam over all parameters, dropout on), pairs built as
   ``alignfreeze pairs --aligner dictionary`` builds them (PUD en-XX + MUSE). Each toolkit
   step is timed INSIDE the real loop, between two calls of its ``callback``; the plain step
   on the same records (pre-tokenised) runs inside the callback, so rounds interleave step
   by step. The first ``--warmup`` rounds are not counted.
2. fine-tune step: :func:`realign.finetune.finetune` (UPOS, defaults: batch 32, AdamW, linear
   schedule, clipping at 1.0) on en_ewt dev, timed the same way.
3. drift: ``alignfreeze drift`` in-process (base e5-small, the checkpoint of item 1, 1,000
   PUD sentences, all 13 layers, defaults) against plain loading + plain first-piece
   features of both models, handed to the SAME statistics (:func:`analysis.drift.drift_rows`).
4. probe: ``alignfreeze probe --task upos`` over all 13 layers (one seed) against plain
   features + a plain torch L-BFGS softmax regression of all layers (autograd).

Items 3 and 4 alternate toolkit-first / plain-first per round. Each round's ratio is
toolkit / plain of that round; the table gives medians (the machine is shared: wall times
vary with the load, paired ratios much less). CPU seconds (this process, both threads) are
reported too. Parity is checked before timing (same input ids, same loss at the same
weights) or after (same drift values, probe accuracies).

    python bench/bench_study_cost.py                       # everything (~1-2 h on 2 shared cores)
    python bench/bench_study_cost.py --rounds 3 --runs 3 --probe-sentences 500   # ~35 min, loaded
    python bench/bench_study_cost.py --items realign finetune --rounds 4 --no-write
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _plain_loops as plain  # noqa: E402
from _plain_loops import Clock  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
ITEMS = ("realign", "finetune", "drift", "probe")
MODEL = "e5-small"


def prepared_dir() -> Path:
    from core.prepared import ensure_prepared

    return Path(ensure_prepared(MODEL))


def warm_files(folder: Path) -> None:
    """Read a model folder once, so that no round pays the cold page cache alone."""
    for f in folder.iterdir():
        if f.is_file():
            with open(f, "rb") as fh:
                while fh.read(1 << 24):
                    pass


def make_pairs(tmp: Path, lang: str):
    """Word pairs as `alignfreeze pairs --aligner dictionary` makes them (PUD + MUSE)."""
    from core.parallel import read_parallel
    from realign.pairs import extract_pairs, write_pairs

    ud, muse = SHARED / "ud", SHARED / "muse"
    pp = read_parallel(ud / "en_pud-ud-test.conllu", ud / f"{lang}_pud-ud-test.conllu")
    records, summary = extract_pairs(pp, "dictionary", dictionary=muse / f"en-{lang}.txt", progress=False)
    path = write_pairs(tmp / f"en-{lang}.jsonl", records)
    return path, records, f"PUD en-{lang} ({summary['pairs_kept']} records, {summary['links']} links), MUSE en-{lang}"


PHASES = ("data", "forward", "loss+backward", "optimizer", "rest")


def now() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


class StepTimer:
    """``callback`` of the toolkit loop: time the toolkit step since the last call, then run
    and time the plain step on the same batch.

    Hooks on both models (forward start / end) and on the optimizers' ``step`` (start / end)
    cut each step into phases: ``data`` (batch selection, tokenisation: 0 for the plain
    side, which is pre-tokenised), ``forward``, ``loss+backward`` (pooling, loss, backward,
    clipping), ``optimizer`` and ``rest`` (zero_grad, schedule, bookkeeping). Rows:
    ``(step, toolkit, plain)``, each ``{phase or "step": (wall, cpu)}`` (toolkit None for
    step 1, which has no start mark)."""

    def __init__(self, tk_model, plain_model, plain_opt, plain_step):
        from torch.optim.optimizer import (
            register_optimizer_step_post_hook,
            register_optimizer_step_pre_hook,
        )

        self.plain_step = plain_step
        self.marks: dict[str, dict] = {"tk": {}, "plain": {}}
        self.start = None
        self.first = None  # (wall, cpu) when step 1 ended: setup + step 1 before it
        self.rows: list[tuple[int, dict | None, dict]] = []

        def side_of(opt):
            return "plain" if opt is plain_opt else "tk"

        self.handles = [register_optimizer_step_pre_hook(lambda o, *_: self._mark(side_of(o), "o0")),
                        register_optimizer_step_post_hook(lambda o, *_: self._mark(side_of(o), "o1"))]
        for side, m in (("tk", tk_model), ("plain", plain_model)):
            self.handles.append(m.register_forward_pre_hook(lambda *_, s=side: self._mark(s, "f0")))
            self.handles.append(m.register_forward_hook(lambda *_, s=side: self._mark(s, "f1")))

    def _mark(self, side: str, key: str) -> None:
        self.marks[side][key] = now()

    def _phases(self, side: str, start, end) -> dict:
        m = self.marks[side]
        points = [start, m.get("f0"), m.get("f1"), m.get("o0"), m.get("o1"), end]
        if any(p is None for p in points):
            raise RuntimeError(f"{side}: a phase mark is missing ({sorted(m)}): one forward and one optimizer "
                               "step per training step are expected")
        out = {ph: (b[0] - a[0], b[1] - a[1]) for ph, a, b in zip(PHASES, points, points[1:])}
        out["step"] = (end[0] - start[0], end[1] - start[1])
        return out

    def __call__(self, step: int, parts: dict) -> None:
        end = now()
        tk = None if self.start is None else self._phases("tk", self.start, end)
        if self.first is None:
            self.first = end
        self.marks["plain"] = {}
        s0 = now()
        self.plain_step(step - 1)
        self.rows.append((step, tk, self._phases("plain", s0, now())))
        self.marks["tk"] = {}
        self.start = now()

    def close(self) -> None:
        for h in self.handles:
            h.remove()


def quartiles(xs) -> tuple[float, float]:
    q = statistics.quantiles(xs, n=4, method="inclusive") if len(xs) > 1 else [xs[0]] * 3  # within the data
    return q[0], q[2]


def summarise(name: str, what: str, pairs: list[tuple[tuple, tuple]], extra: dict) -> dict:
    """Medians of (toolkit, plain) (wall, cpu) pairs and of the per-round ratios (with quartiles)."""
    tw = [t[0] for t, _ in pairs]
    pw = [p[0] for _, p in pairs]
    tc = [t[1] for t, _ in pairs]
    pc = [p[1] for _, p in pairs]
    ratios = [a / b for a, b in zip(tw, pw)]
    return {"item": name, "what": what, "n": len(pairs), "tk_wall": statistics.median(tw),
            "plain_wall": statistics.median(pw), "tk_cpu": statistics.median(tc), "plain_cpu": statistics.median(pc),
            "ratio": statistics.median(ratios), "range": quartiles(ratios), "ratios": ratios,
            "cpu_ratio": statistics.median(a / b for a, b in zip(tc, pc)), **extra}


def step_summary(name: str, what: str, timer: StepTimer, warmup: int, extra: dict) -> dict:
    rows = [(tk, pl) for _, tk, pl in timer.rows if tk is not None][warmup:]
    res = summarise(name, what, [(tk["step"], pl["step"]) for tk, pl in rows], extra)
    res["phases"] = {side: {ph: statistics.median(r[k][ph][0] for r in rows) for ph in PHASES}
                     for k, side in ((0, "toolkit"), (1, "plain"))}
    per_step = res["tk_wall"]
    res["per_hour"] = 3600 / per_step
    return res


def fixed_cost(load: Clock, run: Clock, timer: StepTimer, per_step: float) -> float:
    """Wall seconds of a run that no step count changes: loading, then everything before
    step 1's callback less one median step (weight hash, data checks), then everything
    after the last step (saving the model and manifest)."""
    before = timer.first[0] - run.w0 - per_step
    after = run.w0 + run.wall - timer.start[0]
    return load.wall + before + after


# ----------------------------------------------------------------------------- 1. realign
def bench_realign(args, tmp: Path, pairs_path: Path, records: list, source: str) -> tuple[dict, Path]:
    from transformers import AutoModel

    from core.encoding import encode_words
    from core.models import load_model, load_tokenizer
    from core.wordpairs import side
    from realign.config import RealignConfig
    from realign.losses import realignment_loss
    from realign.train import batch_indices, realign

    steps = 1 + args.warmup + args.rounds  # step 1 has no start mark: never counted
    cfg = RealignConfig(model=MODEL, pairs=(str(pairs_path),), out=str(tmp / "realigned"), steps=steps, seed=42)
    tok = load_tokenizer(MODEL, offline=True)
    batch_records = [[records[i] for i in batch_indices(s, cfg.batch_size, len(records), cfg.seed)]
                     for s in range(steps)]
    batches = [plain.realign_batch(tok, b, cfg.max_length) for b in batch_records]
    same_ids = all(torch.equal(encode_words(tok, [side(r, "src") for r in b] + [side(r, "tgt") for r in b],
                                            max_length=cfg.max_length).input_ids, pb.input_ids)
                   for b, pb in zip(batch_records, batches))
    model = AutoModel.from_pretrained(prepared_dir(), add_pooling_layer=False, local_files_only=True)
    with torch.no_grad():  # parity: the same loss at the same weights (dropout off)
        model.eval()
        ref = float(realignment_loss(model, tok, batch_records[0], cfg)[0])
        got = float(plain.realign_loss(model, batches[0]))
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=cfg.resolved_lr("bert"), betas=cfg.betas, eps=cfg.eps)
    with Clock() as load:  # what `alignfreeze realign` loads; passed in so that hooks can time its phases
        tk_model = load_model(MODEL, offline=True)
    timer = StepTimer(tk_model, model, opt, lambda s: plain.realign_step(model, opt, batches[s]))
    try:
        with Clock() as run:
            realign(cfg, tk_model, tok, progress=False, callback=timer)
    finally:
        timer.close()
    n_tok = float(np.mean([int(b.attention_mask.sum()) for b in batches]))
    n_links = float(np.mean([len(b.src) for b in batches]))
    res = step_summary("realign step", f"batch {cfg.batch_size} pairs ({2 * cfg.batch_size} sequences, "
                       f"{n_tok / (2 * cfg.batch_size):.1f} tokens each, {n_links:.0f} links), word InfoNCE, dense Adam",
                       timer, args.warmup,
                       {"parity": f"same input ids: {same_ids}; loss at the same weights {ref:.6f} vs plain {got:.6f}",
                        "source": source})
    res["fixed"] = fixed_cost(load, run, timer, res["tk_wall"])
    res["unit"] = f"{cfg.batch_size / res['tk_wall']:.2f} pairs/s"
    return res, Path(cfg.out)


# ----------------------------------------------------------------------------- 2. fine-tune
def bench_finetune(args, tmp: Path, train_file: Path) -> dict:
    from transformers import AutoModelForTokenClassification, get_linear_schedule_with_warmup

    from core.conllu import UPOS_TAGS, read_conllu
    from core.encoding import model_max_length
    from core.models import load_tokenizer
    from realign.finetune import (
        FinetuneConfig,
        build_examples,
        collate,
        finetune,
        load_tagger,
        step_indices,
        task_loss_sum,
    )

    steps = 1 + args.warmup + args.rounds
    cfg = FinetuneConfig(model=MODEL, train=(str(train_file),), out=str(tmp / "finetuned"), steps=steps, seed=42)
    tok = load_tokenizer(MODEL, offline=True)
    sents = list(read_conllu(train_file))
    model = AutoModelForTokenClassification.from_pretrained(prepared_dir(), num_labels=len(UPOS_TAGS),
                                                            local_files_only=True)
    examples, stats = build_examples(sents, tok, min(cfg.max_length, model_max_length(model, tok)))
    idx = [step_indices(s, cfg.batch_size, len(examples), cfg.seed) for s in range(steps)]
    # the plain batch of a step holds the sentences of the toolkit's examples (the same
    # sentences when none is windowed, which the parity line says)
    batches = [plain.tagging_batch(tok, [sents[i] for i in ix], {t: k for k, t in enumerate(UPOS_TAGS)}, cfg.max_length)
               for ix in idx]
    tk0 = collate([examples[i] for i in idx[0]], tok.pad_token_id)
    with torch.no_grad():
        model.eval()
        s, n = task_loss_sum(model, tk0)
        ref = float(s) / n
        logits = model(input_ids=batches[0]["input_ids"], attention_mask=batches[0]["attention_mask"]).logits
        got = float(torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                      batches[0]["labels"].reshape(-1), ignore_index=-100))
    same = torch.equal(tk0["input_ids"], batches[0]["input_ids"]) and torch.equal(tk0["labels"], batches[0]["labels"])
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-5, weight_decay=cfg.weight_decay)
    sched = get_linear_schedule_with_warmup(opt, int(np.ceil(cfg.warmup_ratio * steps)), steps)
    with Clock() as load:  # what `alignfreeze finetune` loads (a fresh head); passed in for the hooks
        tk_model = load_tagger(MODEL)
    timer = StepTimer(tk_model, model, opt,
                      lambda st: plain.tagging_step(model, opt, sched, batches[st], cfg.max_grad_norm))
    try:
        with Clock() as run:
            finetune(cfg, tk_model, tok, progress=False, callback=timer)
    finally:
        timer.close()
    n_tok = float(np.mean([int(b["attention_mask"].sum()) / len(b["attention_mask"]) for b in batches]))
    res = step_summary("fine-tune step", f"batch {cfg.batch_size} sentences ({n_tok:.1f} tokens each), UPOS, AdamW, "
                       "clip 1.0", timer, args.warmup,
                       {"parity": f"same ids and labels (step 1): {same}; {stats['windowed']} of {len(sents)} "
                                  f"sentences windowed; loss at the same weights {ref:.6f} vs plain {got:.6f}",
                        "source": f"{train_file.name} ({len(sents)} sentences)"})
    res["fixed"] = fixed_cost(load, run, timer, res["tk_wall"])
    res["unit"] = f"{cfg.batch_size / res['tk_wall']:.2f} sentences/s"
    return res


# ----------------------------------------------------------------------------- 3, 4: commands
def alternate(rounds: int, toolkit, peer) -> list[tuple[tuple, tuple]]:
    """``rounds`` x (toolkit run, plain run), the order alternating; (wall, cpu) pairs."""
    out = []
    for r in range(rounds):
        got = {}
        for name, fn in ((("tk", toolkit), ("plain", peer)) if r % 2 == 0 else (("plain", peer), ("tk", toolkit))):
            gc.collect()
            with Clock() as c:
                fn()
            got[name] = (c.wall, c.cpu)
            print(f"  round {r} {name}: {c.wall:.1f} s wall, {c.cpu:.1f} s CPU", flush=True)
        out.append((got["tk"], got["plain"]))
    return out


def bench_drift(args, tmp: Path, ckpt: Path, treebank: Path) -> dict:
    import pandas as pd
    from transformers import AutoModel, AutoTokenizer

    from alignfreeze.cli import main as cli
    from analysis.drift import drift_rows
    from core.conllu import read_conllu, treebank_lang

    n = args.drift_sentences
    tk_csv, pl_csv = tmp / "drift-toolkit.csv", tmp / "drift-plain.csv"
    timing = {}

    def toolkit():
        code = cli(["drift", "--base", MODEL, "--model", str(ckpt), "--treebank", str(treebank),
                    "--max-sentences", str(n), "--out", str(tk_csv), "--no-progress"])
        assert code == 0, "alignfreeze drift failed"

    def peer():
        t = time.perf_counter()
        exs = []
        for folder in (prepared_dir(), ckpt):
            m = AutoModel.from_pretrained(folder, add_pooling_layer=False, local_files_only=True).eval()
            exs.append(plain.Extractor(m, AutoTokenizer.from_pretrained(folder, local_files_only=True)))
        load = time.perf_counter() - t
        sents = [s for _, s in zip(range(n), read_conllu(treebank))]
        t = time.perf_counter()
        rows = drift_rows(exs[0], {ckpt.name: exs[1]}, sents, treebank_lang(treebank), seed=0)
        total = time.perf_counter() - t
        timing.update(load=load, features=exs[0].seconds + exs[1].seconds,
                      stats=total - exs[0].seconds - exs[1].seconds)
        pd.DataFrame(rows).to_csv(pl_csv, index=False)

    for folder in (prepared_dir(), ckpt):
        warm_files(folder)
    pairs = alternate(args.runs, toolkit, peer)
    a, b = pd.read_csv(tk_csv), pd.read_csv(pl_csv)
    key = ["layer", "metric"]
    m = a.merge(b, on=key, suffixes=("_tk", "_pl"))
    diff = float((m["value_tk"] - m["value_pl"]).abs().max())
    words = int(a["n_words"].iloc[0])
    per = statistics.median(t[0] for t, _ in pairs)
    return summarise("drift", f"1 checkpoint vs base, {n} sentences ({words:,} words), 13 layers, defaults", pairs,
                     {"parity": f"{len(m)} values (layer x metric), largest difference {diff:.2g}",
                      "breakdown": timing, "unit": f"{words / per:.0f} words/s (both models + statistics)",
                      "source": treebank.name})


def bench_probe(args, tmp: Path, train: Path, evalf: Path) -> dict:
    import pandas as pd
    from transformers import AutoModel, AutoTokenizer

    from alignfreeze.cli import main as cli
    from core.conllu import read_conllu

    n = args.probe_sentences
    tk_csv = tmp / "probe-toolkit.csv"
    result, timing = {}, {}

    def toolkit():
        code = cli(["probe", "--model", MODEL, "--task", "upos", "--train", str(train), "--eval", str(evalf),
                    "--max-sentences", str(n), "--seeds", "1", "--out", str(tk_csv), "--no-progress"])
        assert code == 0, "alignfreeze probe failed"

    def peer():
        t = time.perf_counter()
        folder = prepared_dir()
        model = AutoModel.from_pretrained(folder, add_pooling_layer=False, local_files_only=True).eval()
        tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        data = {}
        for name, f in (("train", train), ("eval", evalf)):
            sents = [s for _, s in zip(range(n), read_conllu(f))]
            x, ok = plain.word_features(model, tok, sents)
            y = np.asarray([u for s in sents for u in s.upos])
            data[name] = (x[:, ok], y[ok])
        t_fit = time.perf_counter()
        acc = plain.probe_accuracy(*data["train"], data)
        timing.update(features=t_fit - t, fit=time.perf_counter() - t_fit, words={k: len(v[1]) for k, v in data.items()})
        result.update(acc)
        pd.DataFrame([{"split": k, "layer": lay, "value": v} for k, a in acc.items() for lay, v in enumerate(a)]
                     ).to_csv(tmp / "probe-plain.csv", index=False)

    warm_files(prepared_dir())
    pairs = alternate(args.runs, toolkit, peer)
    tk = pd.read_csv(tk_csv)
    tk_eval = tk[(tk["split"] == "eval") & (tk["metric"] == "accuracy")].sort_values("layer")["value"].to_numpy()
    diff = float(np.abs(tk_eval - result["eval"]).max())
    best = int(np.argmax(tk_eval))
    return summarise("probe", f"UPOS, 13 layers, 1 seed: train {train.name} ({timing['words']['train']:,} words), eval "
                     f"{evalf.name} ({timing['words']['eval']:,} words)", pairs,
                     {"parity": f"zero-shot accuracy by layer, largest difference {diff:.4f} (best layer {best}: "
                                f"toolkit {tk_eval[best]:.4f}, plain {result['eval'][best]:.4f})",
                      "breakdown": timing, "source": f"{train.name} -> {evalf.name}"})


# ----------------------------------------------------------------------------- report
def report(results: list[dict], args, wall: float) -> str:
    lines = [
        "## Cost of a study: e5-small on 2 CPU cores, the toolkit against a plain PyTorch loop",
        "",
        f"e5-small (prepared, real weights and tokenizer), `torch.set_num_threads({args.threads})`; every item measured "
        f"against a hand-written peer (`bench/_plain_loops.py`) in the same run ({wall / 60:.0f} min), interleaved "
        "(steps: the plain step runs between two steps of the toolkit's own loop; commands: rounds alternate which "
        "goes first). Times are medians; the ratio is the median of the per-round ratios toolkit / plain (quartiles "
        "in brackets). The machine is shared: wall seconds carry other users' load, CPU seconds (this process, both "
        "threads) carry it too when the cores are oversubscribed (OpenMP threads spin while they wait).",
        "",
        "| item | work | rounds | toolkit s (wall) | plain s (wall) | ratio (quartiles) | toolkit CPU s | plain CPU s | CPU ratio | goal <= 1.1x |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        ok = "met" if r["ratio"] <= 1.1 else "MISSED"
        lines.append(f"| {r['item']} | {r['what']} | {r['n']} | {r['tk_wall']:.2f} | {r['plain_wall']:.2f} | "
                     f"{r['ratio']:.2f}x ({r['range'][0]:.2f}-{r['range'][1]:.2f}) | {r['tk_cpu']:.2f} | "
                     f"{r['plain_cpu']:.2f} | {r['cpu_ratio']:.2f}x | {ok} |")
    steps = [r for r in results if "phases" in r]
    if steps:
        lines += ["", "Where a training step's time goes (medians, wall s; hooks on the model's forward and the "
                  "optimizer's step; `data` = batch selection and tokenisation, which the plain loop did before "
                  "timing; `rest` = zero_grad, schedule, bookkeeping):", "",
                  "| item | side | " + " | ".join(PHASES) + " | step |", "|---|---|" + "---:|" * (len(PHASES) + 1)]
        for r in steps:
            for side, ph in r["phases"].items():
                total = r["tk_wall"] if side == "toolkit" else r["plain_wall"]
                lines.append(f"| {r['item']} | {side} | " + " | ".join(f"{ph[k]:.2f}" for k in PHASES)
                             + f" | {total:.2f} |")
    lines += ["", "Every round's ratio (toolkit / plain, in the order run): "
              + "; ".join(f"{r['item']}: " + ", ".join(f"{x:.2f}" for x in r["ratios"]) for r in results) + "."]
    lines += ["", "Same work on both sides:"]
    for r in results:
        lines.append(f"- {r['item']} ({r['source']}): {r['parity']}.")
    lines += ["", "For planning (toolkit, this run):"]
    for r in results:
        if "per_hour" in r:
            lines.append(f"- {r['item']}: {r['tk_wall']:.1f} s wall ({r['tk_cpu'] / args.threads:.1f} s = CPU / 2, not inflated only on an idle machine), "
                         f"{r['per_hour']:.0f} steps/h, {r['unit']}; fixed cost of a run (loading, weight hash, "
                         f"data checks, saving) about {r['fixed']:.0f} s.")
        elif r["item"] == "drift":
            b = r["breakdown"]
            lines.append(f"- drift: {r['tk_wall']:.0f} s per checkpoint and {args.drift_sentences:,} sentences, {r['unit']}; of the "
                         f"plain run's {r['plain_wall']:.0f} s: loading {b['load']:.0f} s, features of both models "
                         f"{b['features']:.0f} s, statistics (the toolkit's, both sides) {b['stats']:.0f} s.")
        else:
            b = r["breakdown"]
            lines.append(f"- probe: {r['tk_wall']:.0f} s; of the plain run's {r['plain_wall']:.0f} s: loading + "
                         f"features {b['features']:.0f} s, the 13-layer fit and scoring {b['fit']:.0f} s.")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", nargs="+", default=list(ITEMS), choices=ITEMS)
    ap.add_argument("--rounds", type=int, default=6, help="timed steps of realign and fine-tune (each against a plain step)")
    ap.add_argument("--warmup", type=int, default=1, help="uncounted steps after the first")
    ap.add_argument("--runs", type=int, default=3, help="rounds of drift and probe (toolkit + plain each)")
    ap.add_argument("--lang", default="de", help="PUD language paired with English for realignment and drift")
    ap.add_argument("--drift-sentences", type=int, default=1000)
    ap.add_argument("--probe-sentences", type=int, default=1000, help="sentences of each probe file")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md alone")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ud = SHARED / "ud"
    if not (ud / "en_pud-ud-test.conllu").is_file():
        raise SystemExit(f"{ud}: the shared UD data is needed")
    t0 = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="bench-cost-"))
    results = []
    ckpt = None
    if "realign" in args.items or "drift" in args.items:
        path, records, source = make_pairs(tmp, args.lang)
        res, ckpt = bench_realign(args, tmp, path, records, source)
        if "realign" in args.items:
            results.append(res)
        print(res, flush=True)
        gc.collect()  # the models of item 1 are gone before the next item loads its own
    if "finetune" in args.items:
        results.append(bench_finetune(args, tmp, ud / "en_ewt-ud-dev.conllu"))
        print(results[-1], flush=True)
        gc.collect()
    if "drift" in args.items:
        results.append(bench_drift(args, tmp, ckpt, ud / f"{args.lang}_pud-ud-test.conllu"))
        print(results[-1], flush=True)
    if "probe" in args.items:
        results.append(bench_probe(args, tmp, ud / "en_ewt-ud-dev.conllu", ud / f"{args.lang}_pud-ud-test.conllu"))
        print(results[-1], flush=True)
    body = report(results, args, time.perf_counter() - t0)
    print(body)
    if not args.no_write:
        from _results import write_section

        write_section("study-cost", body)


if __name__ == "__main__":
    main()
