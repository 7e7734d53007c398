"""``alignfreeze midalign scan | train | merge | eval``: middle-layer alignment of decoders.

See docs/midalign.md. Every sub-command refuses an encoder before loading its weights.
"""

from __future__ import annotations

import json
import os
import sys


def register(sub) -> None:
    from core.config import add_arguments
    from realign.midalign.config import MidalignConfig

    top = sub.add_parser("midalign", help="middle-layer alignment of decoder LLMs with LoRA (scan, train, merge, eval)",
                         description="Layer scan, joint task + alignment LoRA training, alignment adapters merged "
                                     "into task adapters, zero-shot evaluation per language (arXiv 2502.14830).")
    msub = top.add_subparsers(dest="midalign_command", required=True, metavar="STEP")

    p = msub.add_parser("scan", help="per-layer sentence retrieval (both directions) and linear CKA -> tidy CSV",
                        description="For every layer 0..L: sentences mean-pooled over non-pad tokens; accuracy@1 "
                                    "of retrieving the translation (src->tgt, tgt->src) and linear CKA between the "
                                    "two sides. Prints the layer that --layer auto would choose.")
    p.add_argument("--model", required=True, help="decoder: prepared name, folder, hub name or adapter folder "
                                                   "(NAME=FOLDER names it in the table)")
    p.add_argument("--src", required=True, help="source side (CoNLL-U, text, or a TSV with both sides); a selection "
                                                "of the pairs may follow (en.conllu@1:500, docs/data.md)")
    p.add_argument("--tgt", default=None, help="target side (omit for a TSV)")
    p.add_argument("--langs", nargs=2, default=None, metavar=("SRC", "TGT"),
                   help="language codes of the src/tgt columns (default: from the file names)")
    p.add_argument("--layers", default="all", help="layers to scan (default all, 0..L)")
    p.add_argument("--limit", type=int, default=1000, help="sentence pairs used at most (after the selection)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-length", type=int, default=256,
                   help="tokens per window (a longer sentence is split into windows at word boundaries, counted)")
    p.add_argument("--out", required=True, help="output CSV")
    p.set_defaults(func=run_scan, named_models=True)

    p = msub.add_parser("train", help="task LoRA with the alignment loss on layer K (or --task none: alignment "
                                      "adapter alone)",
                        description="Runs unchanged under `accelerate launch -m alignfreeze.cli midalign train ...`. "
                                    "--layer auto without --scan first scans the parallel data (OUT/scan.csv).")
    add_arguments(p, MidalignConfig)
    p.add_argument("--scan-limit", type=int, default=500, help="--layer auto without --scan: pairs scanned")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in OUT/checkpoints")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    p.set_defaults(func=run_train)

    p = msub.add_parser("merge", help="merge adapters (alignment into task) with PEFT's weighted adapter merge",
                        description="cat (default) is exact: the merged delta is sum_i w_i * delta_i. "
                                    "See docs/midalign.md for what the weights mean under each combination.")
    p.add_argument("--model", required=True, help="the base decoder all adapters were trained on")
    p.add_argument("--adapters", required=True, nargs="+", help="adapter folders (task first)")
    p.add_argument("--weights", type=float, nargs="+", default=None, help="one weight per adapter (default all 1)")
    p.add_argument("--combination", default="cat",
                   choices=("cat", "svd", "linear", "ties", "dare_linear", "dare_ties", "magnitude_prune"))
    p.add_argument("--svd-rank", type=int, default=None, help="svd: rank of the result (default: sum of ranks)")
    p.add_argument("--density", type=float, default=None, help="ties/dare/magnitude_prune: share kept")
    p.add_argument("--full-model", action="store_true",
                   help="write the base with the merged delta folded in (a plain HF model folder), not an adapter")
    p.add_argument("--out", required=True, help="output adapter (or, with --full-model, model) folder")
    p.set_defaults(func=run_merge)

    p = msub.add_parser("eval", help="zero-shot task scores per language for base + adapter(s) -> tidy CSV")
    p.add_argument("--model", required=True, help="the base decoder (NAME=FOLDER names it in the table)")
    p.add_argument("--adapter", nargs="+", default=["none"],
                   help="adapter folder(s), NAME=FOLDER to name one (default: its manifest's name, e.g. "
                        "upos-K15-s42); 'none' = the base alone")
    p.add_argument("--task", required=True, choices=("upos", "massive"))
    p.add_argument("--data", required=True, nargs="+",
                   help="upos: CoNLL-U files (language from the file name), each with an optional selection "
                        "(de.conllu@1:200); massive: LOCALE:SPLIT (en-US:test)")
    p.add_argument("--limit", type=int, default=None, help="examples per file / locale")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-length", type=int, default=0, help="context in tokens (0 = the model's)")
    p.add_argument("--drop-long", action="store_true", help="drop (and count) prompts too long for the context")
    p.add_argument("--out", required=True, help="output CSV")
    p.set_defaults(func=run_eval, named_models=True)


# ----------------------------------------------------------------------------- helpers
def _require_decoder_name(name: str) -> None:
    """Refuse an encoder from its config alone (no weights loaded)."""
    from transformers import AutoConfig

    from core.adapters import adapter_base, is_adapter_dir
    from core.arch import ARCHITECTURES, UnsupportedArchitectureError
    from core.models import is_offline, resolve_model_path

    path = resolve_model_path(name)
    if is_adapter_dir(path):
        path = resolve_model_path(adapter_base(path)[0])
    cfg = AutoConfig.from_pretrained(path, local_files_only=is_offline())
    spec = ARCHITECTURES.get(cfg.model_type)
    if spec is None:
        raise UnsupportedArchitectureError(f"{name}: model_type {cfg.model_type!r} is not in the architecture table")
    if spec.kind != "decoder":
        raise ValueError(f"{name}: a {spec.family} model is an {spec.kind}; `alignfreeze midalign` needs a decoder "
                         "(causal LM: gpt2, llama, qwen2, mistral)")


def _write_csv(df, out) -> None:
    from pathlib import Path

    from core.io import atomic_write_text

    if Path(out).suffix.lower() != ".csv":
        raise ValueError(f"{out}: output must be a .csv file")
    atomic_write_text(out, df.to_csv(index=False))


def _langs(src, tgt, given=None) -> tuple[str, str]:
    """Language codes of a parallel input from its file names (:func:`core.names.parallel_langs`);
    ``given`` (``--langs``) wins."""
    from core.names import parallel_langs
    from core.selection import parse_spec

    return parallel_langs(parse_spec(src).path, parse_spec(tgt).path if tgt else None, given=given)


def scan_table(model, tok, pairs, model_name: str, src_lang: str, tgt_lang: str, *, layers="all",
               batch_size: int = 16, max_length: int = 256):
    """Tidy scan DataFrame of ``pairs`` (:class:`core.parallel.ParallelPair`) and its info."""
    import pandas as pd

    from analysis.layer_scan import layer_scan

    rows, info = layer_scan(model, tok, [p.src for p in pairs], [p.tgt for p in pairs], layers=layers,
                            batch_size=batch_size, max_length=max_length)
    df = pd.DataFrame([{"model": model_name, "src": src_lang, "tgt": tgt_lang, **r} for r in rows])
    return df[["model", "src", "tgt", "layer", "metric", "direction", "value", "n"]], info


# ----------------------------------------------------------------------------- commands
def run_scan(args) -> int:
    from core.arch import num_layers
    from core.encoding import EncodingStats, report
    from core.inputs import select_parallel
    from core.models import load
    from core.names import named_models
    from realign.midalign.layer_choice import choose_layer

    (name, path), = named_models([args.model])
    _require_decoder_name(path)
    sel = select_parallel(args.src, args.tgt, limit=args.limit)
    pairs = sel.items
    src_lang, tgt_lang = _langs(args.src, args.tgt, args.langs)
    model, tok = load(path)
    df, info = scan_table(model, tok, pairs, name, src_lang, tgt_lang, layers=args.layers,
                          batch_size=args.batch_size, max_length=args.max_length)
    df["selection"] = sel.label
    _write_csv(df, args.out)
    L = num_layers(model)
    msg = f"{args.out}: {len(df)} rows, layers {df['layer'].min()}..{df['layer'].max()} of 0..{L}, {len(pairs)} pairs"
    enc = info["encoding"]
    if enc["windowed"] or enc["truncated_words"]:
        msg += (f", {enc['windowed']} sentence(s) longer than {info['max_length']} tokens split into windows, "
                f"{enc['truncated_words']} word(s) truncated")
    print(msg)
    report(EncodingStats(**enc), "midalign scan")
    if L >= 2:
        c = choose_layer(df.to_dict("records"), L)
        f = c.figures[c.layer]
        margin = f", +{c.margin:.3f} over layer {c.runner_up}" if c.runner_up is not None else ""
        print(f"--layer auto would choose K = {c.layer} (retrieval {f['retrieval_mean']:.3f}, "
              f"CKA {f.get('cka', float('nan')):.3f}{margin})")
    return 0


def run_train(args) -> int:
    from pathlib import Path

    from core.arch import num_layers
    from core.config import from_args
    from core.inputs import select_parallel
    from core.io import file_sha256
    from core.models import load
    from core.names import LanguageUnknown, default_name
    from core.selection import parse_spec
    from realign.midalign.config import MidalignConfig
    from realign.midalign.data import parallel_sources
    from realign.midalign.layer_choice import choose_layer
    from realign.midalign.train import DTYPE, SCAN_FILE, require_decoder, train

    cfg = from_args(MidalignConfig, args).validate()
    _require_decoder_name(cfg.model)
    model, tok = load(cfg.model, task="causal-lm", dtype=DTYPE[cfg.dtype])
    require_decoder(model, cfg.model)
    choice = None
    if cfg.parallel and str(cfg.layer).lower() == "auto" and not cfg.scan:
        # the scan comes first, on the very pairs the alignment loss will use
        out = Path(cfg.out)
        if (out / "manifest.json").is_file():
            raise ValueError(f"{out}: already holds a finished run (manifest.json); choose another --out")
        src, tgt = parallel_sources(cfg.parallel)
        pairs = select_parallel(src, tgt, limit=args.scan_limit).items
        try:
            langs = _langs(src, tgt)
        except LanguageUnknown:  # the scan only picks the layer: the files' own names stand for the languages
            langs = tuple(Path(parse_spec(f).path).stem for f in (src, tgt or src))
        df, _ = scan_table(model, tok, pairs, default_name(cfg.model), *langs, max_length=cfg.align_max_length)
        _write_csv(df, out / SCAN_FILE)
        L = num_layers(model)
        choice = choose_layer(df.to_dict("records"), L,
                              scan_file={"path": str(out / SCAN_FILE), "sha256": file_sha256(out / SCAN_FILE)})
        print(f"--layer auto: K = {choice.layer} of {L} (scan of {len(pairs)} pairs in {out / SCAN_FILE})",
              file=sys.stderr)
    out = train(cfg, model, tok, progress=args.progress, resume=args.resume, layer_choice=choice)
    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    from core.manifest import read_manifest

    m = read_manifest(out)
    losses = ", ".join(f"{k}={v:.4f}" for k, v in m["final_losses"].items())
    layer = m["layer"]["layer"] if m["layer"] else "-"
    extra = f"; {m['n_dropped_long']} example(s) dropped as too long" if m["n_dropped_long"] else ""
    print(f"{out}: {m['steps']} steps, layer K = {layer}, LoRA on {len(m['lora']['target_modules'])} modules, "
          f"{m['wall_time_s']:.1f} s; final {losses}{extra}")
    return 0


def run_merge(args) -> int:
    from core.models import load
    from realign.midalign.merge import merge_adapters, merge_manifest, save_merged

    _require_decoder_name(args.model)
    weights = args.weights or [1.0] * len(args.adapters)
    base, tok = load(args.model, task="causal-lm")
    svd_rank = args.svd_rank
    model = merge_adapters(base, args.adapters, weights, combination=args.combination, svd_rank=svd_rank,
                           density=args.density)
    if args.combination == "svd" and svd_rank is None:
        svd_rank = model.peft_config["merged"].r
    man = merge_manifest(args.adapters, weights, args.combination, svd_rank)
    rank = model.peft_config["merged"].r
    save_merged(model, args.out, man, tok, full_model=args.full_model)
    print(f"{args.out}: {args.combination} merge of {len(args.adapters)} adapters with weights {weights} "
          f"({man['meaning']})")
    print(json.dumps({"rank": rank, "full_model": args.full_model}))
    return 0


def run_eval(args) -> int:
    import pandas as pd

    from core.adapters import load_adapter_model
    from core.models import load_model, load_tokenizer
    from core.names import named_models
    from realign.midalign import tasks
    from realign.midalign.data import task_examples
    from realign.midalign.evaluate import evaluate_task

    (base_name, base_path), = named_models([args.model])
    adapters = named_models(args.adapter)  # 'none' is its own name
    _require_decoder_name(base_path)
    by_lang: dict = {}
    try:
        for d in args.data:
            for ex in task_examples(args.task, [d], limit=args.limit):
                by_lang.setdefault(ex.lang, []).append(ex)
    except tasks.TaskUnavailable as e:
        print(f"alignfreeze: {e}", file=sys.stderr)
        return 0
    rows = []
    for a_name, a in adapters:
        tok = load_tokenizer(base_path)
        if a == "none":
            model = load_model(base_path, task="causal-lm")
        else:  # checks the adapter's base hash against --model
            model = load_adapter_model(a, task="causal-lm", base=base_path)
        for r in evaluate_task(model, tok, args.task, by_lang, batch_size=args.batch_size,
                               max_length=args.max_length or None, drop_long=args.drop_long):
            rows.append({"model": base_name, "adapter": a_name, **r, "adapter_path": a})
    df = pd.DataFrame(rows)
    _write_csv(df, args.out)
    prim = tasks.PRIMARY_METRIC[args.task]
    table = df[df["metric"] == prim].pivot_table(index="lang", columns="adapter", values="value")
    print(f"{args.out}: {len(df)} rows; {prim}:\n{table.to_string(float_format=lambda v: f'{v:.3f}')}")
    return 0
