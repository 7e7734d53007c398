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
    p.add_argument("--src", required=True, help="source side: CoNLL-U (joined on sent_id), plain text, or a TSV")
    p.add_argument("--tgt", default=None, help="target side (omit for a TSV source)")
    p.add_argument("--aligner", required=True, choices=("dictionary", "eflomal", "similarity"))
    p.add_argument("--dictionary", default=None, help="MUSE-format bilingual dictionary (dictionary aligner)")
    p.add_argument("--model", default=None, help="model for the similarity aligner")
    p.add_argument("--layer", type=int, default=8, help="layer of the similarity aligner (0 = embeddings)")
    p.add_argument("--pooling", default="first", choices=("first", "mean", "last", "sum"))
    p.add_argument("--threshold", type=float, default=1e-3, help="softmax threshold of the similarity aligner")
    p.add_argument("--limit", type=int, default=None, help="use only the first N sentence pairs")
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
    from alignfreeze.preflight import InputError, need_file, need_model

    if not str(args.src).startswith("hf:"):
        need_file(args.src, PARALLEL)
    if args.tgt is not None:
        need_file(args.tgt, PARALLEL)
    if args.aligner == "similarity" and not args.model:
        raise InputError("--aligner similarity needs --model (and --layer)")
    if args.aligner == "dictionary" and not args.dictionary:
        raise InputError("--aligner dictionary needs --dictionary FILE (MUSE format: 'source target' per line)")
    if args.dictionary is not None:
        need_file(args.dictionary, "a MUSE-format dictionary ('source target' per line)")
    need_model(args.model)


def check_realign(args) -> None:
    from alignfreeze.preflight import InputError, need_files, need_model

    if args.resume and args.overwrite:
        raise InputError("give --resume (continue the run in --out) or --overwrite (start afresh), not both")
    need_model(args.model)
    need_files(args.pairs, PAIRS)
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
    from core.parallel import read_parallel
    from realign.pairs import extract_pairs, write_pairs

    pairs = read_parallel(args.src, args.tgt, limit=args.limit)
    model = tok = None
    if args.aligner == "similarity":
        from core.models import load

        model, tok = load(args.model)
    records, summary = extract_pairs(pairs, args.aligner, dictionary=args.dictionary, model=model, tokenizer=tok,
                                     layer=args.layer, pooling=args.pooling, threshold=args.threshold)
    write_pairs(args.out, records)
    print(f"{args.out}: {summary['pairs_kept']}/{summary['sentence_pairs']} sentence pairs kept, "
          f"{summary['links']} links ({summary['links_per_sentence']:.2f} per sentence), coverage "
          f"src {summary['src_coverage']:.1%} tgt {summary['tgt_coverage']:.1%}")
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
    print(f"{out}: {m['steps']} steps, frozen layers {m['frozen_layers']}, {m['wall_time_s']:.1f} s; final {losses}")
    return 0
