"""Prepared real models: preparation time and folder size per model, and forward throughput
of e5-small on the shared PUD English file (word features of ALL 13 layers) next to a bare
forward pass with ``output_hidden_states=True`` on the same batches.

    python bench/bench_models.py                       # all models, all 1000 PUD sentences
    python bench/bench_models.py --models e5-small --sentences 300

Each model is prepared from scratch into a temporary cache (the user's cache is left
alone); "reload" is ``core.models.load_model`` on the prepared folder, and for SmolLM2 it
is set against loading the GGUF file directly (what the folder saves). Models whose
packages are missing, and the throughput part when the shared data is absent, are
skipped with a note.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PUD_EN = ROOT.parent / "shared" / "data" / "ud" / "en_pud-ud-test.conllu"


def prepare_all(names: list[str], cache: Path) -> list[dict]:
    from core import prepared
    from core.models import load_model

    rows = []
    for name in names:
        spec = prepared.PREPARED_MODELS[name]
        if spec.missing():
            rows.append({"name": name, "skipped": f"missing {', '.join(spec.missing())}"})
            continue
        t0 = time.perf_counter()
        folder = prepared.ensure_prepared(name, cache, force=True, progress=False)
        t_prep = time.perf_counter() - t0
        t0 = time.perf_counter()
        prepared.ensure_prepared(name, cache, progress=False)
        t_cached = time.perf_counter() - t0
        t0 = time.perf_counter()
        model = load_model(folder, task=spec.task, offline=True)
        t_reload = time.perf_counter() - t0
        row = {"name": name, "prepare_s": t_prep, "cached_call_s": t_cached, "reload_s": t_reload,
               "size_mb": prepared.folder_size(folder) / 1e6,
               "params_m": sum(p.numel() for p in model.parameters()) / 1e6}
        del model
        if name == "smollm2-135m":  # the peer: loading the GGUF file itself every time
            from transformers import AutoModelForCausalLM

            gguf = spec.sources["gguf"].path()
            t0 = time.perf_counter()
            AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
            row["gguf_load_s"] = time.perf_counter() - t0
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def throughput(cache: Path, n_sent: int, batch_size: int, repeats: int, pooling: str) -> dict:
    from core.conllu import read_conllu
    from core.features import WordFeatureExtractor, encode_words
    from core.models import load

    model, tok = load(cache / "e5-small", offline=True)
    sents = [s.tokens for s in read_conllu(PUD_EN)][:n_sent]
    ex = WordFeatureExtractor(model, tok, layers="all", pooling=pooling, batch_size=batch_size, progress=False)
    order = sorted(range(len(sents)), key=lambda i: -len(sents[i]))  # the extractor's batching
    batches = [encode_words(tok, [sents[i] for i in order[k:k + batch_size]])
               for k in range(0, len(order), batch_size)]

    @torch.no_grad()
    def bare():
        for b in batches:
            out = model(input_ids=b.input_ids, attention_mask=b.attention_mask, output_hidden_states=True)
            out.hidden_states[-1].sum().item()

    def extract():
        ex.extract(sents)

    bare()  # warm-up
    ex.extract(sents[:batch_size])
    t_bare, t_ext = [], []
    for _ in range(repeats):
        for fn, acc in ((bare, t_bare), (extract, t_ext)):
            t0 = time.perf_counter()
            fn()
            acc.append(time.perf_counter() - t0)
    n_words = sum(map(len, sents))
    n_tokens = int(sum(b.attention_mask.sum() for b in batches))
    mb, me = statistics.median(t_bare), statistics.median(t_ext)
    return {"sentences": len(sents), "words": n_words, "tokens": n_tokens, "bare_s": mb, "extract_s": me,
            "ratio": me / mb, "ratio_min": min(t_ext) / min(t_bare), "layers": len(ex.layers),
            "all_bare": t_bare, "all_extract": t_ext}


def main() -> None:
    from core.prepared import PREPARED_MODELS

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(PREPARED_MODELS), choices=list(PREPARED_MODELS))
    ap.add_argument("--sentences", type=int, default=1000, help="PUD English sentences (file has 1000)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--pooling", default="first", choices=("first", "mean", "last", "sum"),
                    help="sub-word pooling of the extractor (its default: first)")
    args = ap.parse_args()
    torch.manual_seed(0)
    load_start = os.getloadavg()[0]

    body = ["## Prepared real models (offline, from registry packages)", ""]
    with tempfile.TemporaryDirectory(prefix="af-bench-models-") as d:
        cache = Path(d)
        rows = prepare_all(args.models, cache)
        body += [
            "Preparation from scratch into an empty cache (conversion + tokenizer + sha256 of sources "
            "and outputs + manifest); a second call returns the cached folder; reload = "
            "`core.models.load_model(folder)`.",
            "",
            "| model | prepare s | cached call s | reload s | folder MB | params (M) |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for r in rows:
            if "skipped" in r:
                body.append(f"| {r['name']} | skipped: {r['skipped']} | | | | |")
            else:
                body.append(f"| {r['name']} | {r['prepare_s']:.1f} | {r['cached_call_s']:.4f} | "
                            f"{r['reload_s']:.2f} | {r['size_mb']:,.0f} | {r['params_m']:.1f} |")
        smol = next((r for r in rows if r.get("gguf_load_s")), None)
        if smol:
            body += ["", f"SmolLM2: loading the GGUF file directly takes {smol['gguf_load_s']:.1f} s; the prepared "
                         f"folder reloads in {smol['reload_s']:.2f} s (**{smol['gguf_load_s'] / smol['reload_s']:.0f}x "
                         "faster**)."]
        body.append("")
        e5 = next((r for r in rows if r["name"] == "e5-small" and "skipped" not in r), None)
        if e5 is None:
            body.append("Throughput: skipped (e5-small not prepared: its packages are missing).")
        elif not PUD_EN.is_file():
            body.append(f"Throughput: skipped (shared data absent: {PUD_EN}).")
        else:
            tp = throughput(cache, args.sentences, args.batch_size, args.repeats, args.pooling)
            print(json.dumps(tp), flush=True)
            body += [
                f"### e5-small forward throughput, PUD English ({tp['sentences']} sentences, {tp['words']:,} words, "
                f"{tp['tokens']:,} tokens), all {tp['layers']} layers, batch {args.batch_size}, fp32 CPU, "
                f"median of {args.repeats}",
                "",
                "| what | seconds | words/s |",
                "|---|---:|---:|",
                f"| bare forward, `output_hidden_states=True` (pre-tokenised) | {tp['bare_s']:.2f} | "
                f"{tp['words'] / tp['bare_s']:,.0f} |",
                f"| `WordFeatureExtractor` (tokenise + forward + {args.pooling}-pool 13 layers + copy to host) | "
                f"{tp['extract_s']:.2f} | {tp['words'] / tp['extract_s']:,.0f} |",
                "",
                f"**Ratio extraction / bare forward: {tp['ratio']:.3f}x** (medians; "
                f"{tp['ratio_min']:.3f}x on the fastest run of each). Runs, alternating: bare "
                f"{', '.join(f'{t:.1f}' for t in tp['all_bare'])} s; extraction "
                f"{', '.join(f'{t:.1f}' for t in tp['all_extract'])} s.",
            ]
    body += ["", f"Load average (1 min) at start / end: {load_start:.1f} / {os.getloadavg()[0]:.1f} on "
                 f"{os.cpu_count()} cores: other jobs shared the machine when this is above the core count, "
                 "so absolute times are noisy; the ratios compare runs interleaved in the same process."]
    from _results import write_section

    write_section("models", "\n".join(body))


if __name__ == "__main__":
    main()
