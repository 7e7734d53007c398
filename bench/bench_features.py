"""Word features for ALL layers of a full-size DistilmBERT architecture (random weights)
against a bare forward pass with ``output_hidden_states=True`` on the same batches.

Targets (issue "Foundation"): extraction costs at most 1.15x the bare forward; peak memory
of a streamed run over 20,000 sentences stays under 3 GB.

    python bench/bench_features.py                 # both parts
    python bench/bench_features.py --sentences 1000 --memory-sentences 20000

Sentences: the shared PUD files (all languages) when present, else the authored fixtures
repeated. The tokenizer is a 30k WordPiece trained on those sentences (token counts are what
matter for compute; mBERT's own vocabulary is not available offline).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
UD = Path(os.environ.get("ALIGNFREEZE_SHARED_DATA", ROOT.parent / "shared" / "data")) / "ud"


def corpus(n: int) -> tuple[list[list[str]], str]:
    from core import FIXTURES
    from core.conllu import read_conllu

    files = sorted(UD.glob("*_pud-ud-test.conllu")) + sorted(UD.glob("en_ewt-ud-*.conllu"))
    source = "shared PUD + EWT"
    if not files:
        files, source = sorted(FIXTURES.glob("*.conllu")), "authored fixtures (shared data absent)"
    base = [s.tokens for f in files for s in read_conllu(f)]
    return [base[i % len(base)] for i in range(n)], source


def build(device: str):
    from transformers import DistilBertConfig, DistilBertModel

    from core.tiny import train_tokenizer

    sents, source = corpus(4000)
    tok = train_tokenizer((" ".join(s) for s in sents), "bert", vocab_size=30000)
    tok.model_max_length = 512
    cfg = DistilBertConfig(vocab_size=119547, dim=768, n_layers=6, n_heads=12, hidden_dim=3072)
    torch.manual_seed(0)
    model = DistilBertModel(cfg).eval().to(device)
    return model, tok, source


def speed(args) -> dict:
    from core.features import WordFeatureExtractor, encode_words

    model, tok, source = build(args.device)
    sents, _ = corpus(args.sentences)
    ex = WordFeatureExtractor(model, tok, layers="all", pooling="first", batch_size=args.batch_size,
                              progress=False)
    # the extractor's own batching: longest first, batch_size windows per forward
    order = sorted(range(len(sents)), key=lambda i: -len(sents[i]))
    batches = [encode_words(tok, [sents[i] for i in order[k:k + args.batch_size]]).to(args.device)
               for k in range(0, len(order), args.batch_size)]

    def sync():
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()

    @torch.no_grad()
    def bare():
        for b in batches:
            out = model(input_ids=b.input_ids, attention_mask=b.attention_mask, output_hidden_states=True)
            out.hidden_states[-1].sum().item()  # force the work, as extraction copies to host

    def extract():
        ex.extract(sents)

    bare()  # warm-up
    extract()
    t_bare, t_ext = [], []
    for _ in range(args.repeats):
        for fn, acc in ((bare, t_bare), (extract, t_ext)):
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            acc.append(time.perf_counter() - t0)
    n_words = sum(map(len, sents))
    mb, me = statistics.median(t_bare), statistics.median(t_ext)
    return {"source": source, "sentences": len(sents), "words": n_words, "bare_s": mb, "extract_s": me,
            "ratio": me / mb, "words_per_s": n_words / me, "all_bare": t_bare, "all_extract": t_ext}


def memory_child(args) -> None:
    """Run in a subprocess: stream features of N sentences to disk, report peak RSS."""
    from core.features import WordFeatureExtractor

    model, tok, source = build(args.device)
    sents, _ = corpus(args.memory_sentences)
    ex = WordFeatureExtractor(model, tok, layers="all", pooling="first", batch_size=args.batch_size,
                              progress=False)
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        out = ex.extract_to_disk(iter(sents), Path(d) / "feats", dtype="float16", chunk_sentences=1024)
        wall = time.perf_counter() - t0
        disk = sum(p.stat().st_size for p in (Path(d) / "feats").iterdir())
        stats = out.index["stats"]
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(json.dumps({"sentences": stats["sentences"], "words": stats["words"], "windowed": stats["windowed"],
                      "peak_rss_gb": peak_gb, "wall_s": wall, "disk_gb": disk / 1024**3, "source": source}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sentences", type=int, default=1000, help="sentences for the speed ratio")
    ap.add_argument("--memory-sentences", type=int, default=20000, help="sentences for the memory run")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child:
        memory_child(args)
        return
    sp = speed(args)
    print(json.dumps({k: v for k, v in sp.items() if not k.startswith("all_")}, indent=1), flush=True)
    mem = None
    if not args.skip_memory:
        cmd = [sys.executable, __file__, "--memory-child", "--memory-sentences", str(args.memory_sentences),
               "--batch-size", str(args.batch_size), "--device", args.device]
        mem = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
        print(json.dumps(mem, indent=1))

    from _results import write_section

    ok = "meets" if sp["ratio"] <= 1.15 else "MISSES"
    body = [
        "## Word features, all layers, full-size DistilmBERT architecture (random weights)",
        "",
        f"Data: {sp['source']}; {sp['sentences']} sentences, {sp['words']} words; batch {args.batch_size}; "
        f"device {args.device}; median of {args.repeats} alternating runs.",
        "",
        "| what | seconds | words/s |",
        "|---|---:|---:|",
        f"| bare forward, `output_hidden_states=True` | {sp['bare_s']:.2f} | {sp['words'] / sp['bare_s']:,.0f} |",
        f"| extraction (tokenise + forward + pool 7 layers + copy to host) | {sp['extract_s']:.2f} | {sp['words_per_s']:,.0f} |",
        "",
        f"**Ratio extraction / bare forward: {sp['ratio']:.3f}x** (target <= 1.15x: {ok}).",
    ]
    device = args.device.split(":")[0]
    write_section(f"features-{device}", "\n".join(body))
    if mem:
        write_section(f"features-{device}-memory", memory_body(mem, args.device))


def memory_body(mem: dict, device: str) -> str:
    okm = "meets" if mem["peak_rss_gb"] < 3 else "MISSES"
    return (f"## Word features, streamed to disk: peak memory ({device})\n\n"
            f"Streamed run ({mem['source']}): {mem['sentences']:,} sentences, {mem['words']:,} words, all 7 layers "
            f"of the full-size DistilmBERT architecture, fp16 shards of 1,024 sentences: **peak RSS "
            f"{mem['peak_rss_gb']:.2f} GB** (target < 3 GB: {okm}), measured in a child process (model, torch and "
            f"tokenizer included); {mem['wall_s']:.0f} s; {mem['disk_gb']:.2f} GB on disk; {mem['windowed']} "
            "sentence(s) windowed.")


if __name__ == "__main__":
    main()
