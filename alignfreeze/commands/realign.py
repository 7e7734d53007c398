"""``alignfreeze pairs`` (word pairs from parallel text) and ``alignfreeze realign``."""

from __future__ import annotations

import json
import os
from pathlib import Path

PARALLEL = "parallel sentences: two CoNLL-U files (joined on sent_id), two line-aligned text files, or one TSV"
PAIRS = "word pairs as JSONL (from `alignfreeze pairs`)"


def register(sub) -> None:
    from core.config import add_arguments
    from realign.config import RealignConfig

    p = sub.add_parser("pairs", help="extract word pairs from sentence-aligned text (JSONL)")
    p.add_argument("--src", required=True, help="source side: CoNLL-U (joined on sent_id), plain text, or a TSV; "
                                                 "a selection of the pairs may follow (en.conllu@1:500, docs/data.md)")
    p.add_argument("--tgt", default=None, help="target side (omit for a TSV source)")
    p.add_argument("--langs", nargs=2, default=None, metavar=("SRC", "TGT"),
                   help="language codes written into the records (default: from the file names, when they say)")
    p.add_argument("--aligner", required=True, choices=("dictionary", "eflomal", "similarity"))
    p.add_argument("--dictionary", default=None, help="MUSE-format bilingual dictionary (dictionary aligner)")
    p.add_argument("--model", default=None, help="model for the similarity aligner")
    p.add_argument("--layer", type=int, default=8, help="layer of the similarity aligner (0 = embeddings)")
    p.add_argument("--pooling", default="first", choices=("first", "mean", "last", "sum"))
    p.add_argument("--threshold", type=float, default=1e-3, help="softmax threshold of the similarity aligner")
    p.add_argument("--limit", type=int, default=None, help="use at most the first N sentence pairs (of the selection)")
    p.add_argument("--out", required=True, help="output JSONL (written atomically)")
    p.set_defaults(func=run_pairs, preflight=check_pairs)

    r = sub.add_parser("realign", help="realign a model on word pairs, with optional freezing",
                       description="Realign a multilingual model on word pairs (AlignFreeze protocol). "
                                   "Runs unchanged under `accelerate launch -m alignfreeze.cli realign ...`.")
    add_arguments(r, RealignConfig)
    r.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in OUT/checkpoints")
    r.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    r.set_defaults(func=run_realign, preflight=check_realign, out_kind="folder", exists_hint=_unfinished_hint,
                   on_interrupt=_realign_interrupted)


def check_pairs(args) -> None:
    from alignfreeze.preflight import InputError, need_data, need_file, need_model

    need_data(args.src, PARALLEL)
    need_data(args.tgt, PARALLEL)
    if args.aligner == "similarity" and not args.model:
        raise InputError("--aligner similarity needs --model (and --layer)")
    if args.aligner == "dictionary" and not args.dictionary:
        raise InputError("--aligner dictionary needs --dictionary FILE (MUSE format: 'source target' per line)")
    if args.dictionary is not None:
        need_file(args.dictionary, "a MUSE-format dictionary ('source target' per line)")
    need_model(args.model)


def check_realign(args) -> None:
    from alignfreeze.preflight import InputError, need_data, need_model

    if args.resume and args.overwrite:
        raise InputError("give --resume (continue the run in --out) or --overwrite (start afresh), not both")
    need_model(args.model)
    for f in args.pairs:
        need_data(f, PAIRS)
    if Path(args.model).expanduser().resolve() == Path(args.out).expanduser().resolve():
        raise InputError(f"{args.out}: --out is the model's own folder (--model); choose another --out")


def _checkpoints(out) -> list[Path]:
    """Complete checkpoints under OUT/checkpoints (read without importing the trainer)."""
    root = Path(out) / "checkpoints"
    return sorted(p for p in root.glob("step_*") if (p / "trainer_state.json").is_file()) if root.is_dir() else []


def _unfinished_hint(out) -> str:
    if _checkpoints(out) and not (Path(out) / "manifest.json").is_file():
        return "it holds checkpoints of an unfinished run: pass --resume to continue it"
    return ""


def _realign_interrupted(args, command: str) -> str:
    if args.overwrite:
        return f"{args.out} is as it was before this run (--overwrite replaces it only when complete); rerun: {command}"
    done = _checkpoints(args.out)
    if not done:
        return (f"no checkpoint was saved (--checkpoint-every {args.checkpoint_every}); nothing was written to "
                f"{args.out}; rerun: {command}")
    resume = command if args.resume else f"{command} --resume"
    return f"checkpoint {done[-1].name} is saved in {done[-1].parent}; resume: {resume}"


def run_pairs(args) -> int:
    import sys

    from core.inputs import select_parallel
    from core.names import LanguageUnknown, parallel_langs
    from core.selection import parse_spec

    sel = select_parallel(args.src, args.tgt, limit=args.limit)  # read first: bad input fails before torch
    try:
        langs = parallel_langs(parse_spec(args.src).path, parse_spec(args.tgt).path if args.tgt else None,
                               given=args.langs)
    except LanguageUnknown as e:
        langs = None
        print(f"alignfreeze: note: no language codes in the records ({e})", file=sys.stderr)
    from realign.pairs import extract_pairs, write_pairs

    model = tok = None
    if args.aligner == "similarity":
        from core.models import load

        model, tok = load(args.model)
    records, summary = extract_pairs(sel.items, args.aligner, dictionary=args.dictionary, model=model, tokenizer=tok,
                                     layer=args.layer, pooling=args.pooling, threshold=args.threshold, langs=langs)
    write_pairs(args.out, records)
    summary["selection"] = sel.label  # which sentence pairs were read (docs/data.md)
    summary["langs"] = list(langs) if langs else None
    print(f"{args.out}: {summary['pairs_kept']}/{summary['sentence_pairs']} sentence pairs kept "
          f"(selection {sel.label}), {summary['links']} links ({summary['links_per_sentence']:.2f} per sentence), "
          f"coverage src {summary['src_coverage']:.1%} tgt {summary['tgt_coverage']:.1%}")
    print(json.dumps(summary))
    return 0


def run_realign(args) -> int:
    from core.config import from_args
    from realign.config import RealignConfig
    from realign.train import realign

    cfg = from_args(RealignConfig, args)
    out = realign(cfg, progress=args.progress, resume=args.resume)  # --overwrite: the CLI set the old aside
    if int(os.environ.get("RANK", "0")) != 0:  # under accelerate/torchrun only the main process reports
        return 0
    from core.manifest import read_manifest

    m = read_manifest(out)
    losses = ", ".join(f"{k}={v:.4f}" for k, v in m["final_losses"].items())
    sel = ", ".join(f"{Path(e['path']).name} ({e['sentences']} records, selection {e['selection']})"
                    for e in m["data_files"])
    print(f"{out} ({m['name']}): {m['steps']} steps on {sel}, frozen layers {m['frozen_layers']}, "
          f"{m['wall_time_s']:.1f} s; final {losses}")
    return 0
