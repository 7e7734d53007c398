"""``alignfreeze revert`` (put realigned layers back to their pretrained weights) and
``alignfreeze layer-effect`` (the effect of each layer's realignment, per language)."""

from __future__ import annotations

from pathlib import Path

TREEBANK = "a CoNLL-U treebank"
PAIRS = "word pairs as JSONL (from `alignfreeze pairs`)"


def register(sub) -> None:
    """Add ``revert`` and ``layer-effect`` to the parser (nothing heavy imported)."""
    from core.config import add_arguments

    from ..layer_effect_config import LayerEffectConfig

    p = sub.add_parser(
        "revert", help="a checkpoint with some layers put back to their pretrained weights",
        description="Write a checkpoint whose --layers (freeze specs: front, back, front+emb, emb,1-3, all; "
                    "0 = embeddings) carry the base model's weights and every other layer the checkpoint's; "
                    "--keep SPEC is the inverse (only those layers realigned). Tensors outside every layer "
                    "(BERT's pooler, task heads) stay the checkpoint's; a decoder's final norm goes with the "
                    "last block. Refused when the two are not one architecture, or when the checkpoint's "
                    "manifest names another base (weight hash). docs/revert.md")
    p.add_argument("--model", required=True, help="checkpoint folder (realigned, fine-tuned or reverted)")
    p.add_argument("--base", required=True, help="the pretrained model it was trained from")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--layers", help="layers to revert (freeze spec)")
    which.add_argument("--keep", help="layers to keep realigned; all others are reverted")
    p.add_argument("--out", required=True, help="output folder (written atomically)")
    p.add_argument("--force", action="store_true",
                   help="revert a checkpoint that has no manifest (its base is recorded as unchecked)")
    p.set_defaults(func=run_revert_cmd, preflight=check_revert, out_kind="folder")

    e = sub.add_parser(
        "layer-effect", help="effect of each layer's realignment per language (revert one at a time) -> tidy CSV + heatmap",
        description="For a realigned checkpoint (or several seeds of one strategy): revert each layer alone, each "
                    "half and all layers to the pretrained weights, measure every variant per language (UPOS "
                    "probes, sentence and word retrieval; optionally fine-tune + zero-shot tagging) and write "
                    "OUT/effects.csv (effect = realigned minus reverted, with an interval over seeds, or over "
                    "sentences for one checkpoint), OUT/measurements.csv, OUT/layer_effect.json and the "
                    "heatmap OUT/figures/layer_effect.* (the folder appears only when complete). docs/revert.md "
                    "says how to read it.")
    add_arguments(e, LayerEffectConfig)
    e.add_argument("--out", required=True, help="output folder (written atomically)")
    e.add_argument("--no-figure", dest="figure", action="store_false", help="tables only")
    e.add_argument("--no-progress", dest="progress", action="store_false", help="no progress lines")
    e.set_defaults(func=run_layer_effect_cmd, preflight=check_layer_effect, out_kind="folder",
                   on_interrupt=_layer_effect_interrupted)


def _manifest_there(model: str, hint: str) -> None:
    from alignfreeze.preflight import InputError
    from core.manifest import MANIFEST

    if not (Path(model).expanduser() / MANIFEST).is_file():
        raise InputError(f"{model}: no {MANIFEST}, so nothing shows which base it was trained from: expected a "
                         f"checkpoint written by alignfreeze (realign, finetune, revert){hint}")


def check_revert(args) -> None:
    """Before torch: the checkpoint is a folder with a manifest (unless --force). (Both
    models' folders, and an --out that is one of them, are checked by the CLI as for every
    command; the spec once the checkpoint loads, before the base does.)"""
    from alignfreeze.preflight import InputError

    if not Path(args.model).expanduser().is_dir():
        raise InputError(f"{args.model}: no such checkpoint folder (expected the folder a realignment, fine-tuning "
                         "or revert wrote)")
    if not args.force:
        _manifest_there(args.model, "; pass --force to revert it anyway (recorded as unchecked)")


def check_layer_effect(args) -> None:
    """Before torch: the options (:meth:`LayerEffectConfig.validate`), every checkpoint a
    folder with a manifest, every treebank and pairs file there and readable."""
    from alignfreeze.preflight import InputError, need_files, need_treebanks
    from core.config import from_args

    from ..layer_effect_config import LayerEffectConfig

    from_args(LayerEffectConfig, args).validate()
    for m in args.model:
        if not Path(m).expanduser().is_dir():
            raise InputError(f"{m}: no such checkpoint folder (expected the folder a realignment wrote)")
        _manifest_there(m, "")
    need_treebanks([args.train], TREEBANK)
    need_treebanks(args.eval, TREEBANK)
    if args.pivot:
        need_treebanks([args.pivot], "a CoNLL-U file parallel to the --eval files (PUD)")
    need_files(args.pairs, PAIRS)
    need_treebanks(args.finetune_train, TREEBANK)


def run_revert_cmd(args) -> int:
    from core.manifest import read_manifest
    from realign.revert import revert_checkpoint

    out = revert_checkpoint(args.model, args.base, args.out, layers=args.layers, keep=args.keep, force=args.force)
    m = read_manifest(out)
    print(f"{out}: layers {m['reverted_layers'] or 'none'} from {args.base}, layers {m['kept_layers'] or 'none'} "
          f"from {args.model} ({len(m['reverted_tensors'])} tensors reverted; base check: "
          f"{m['checkpoint']['base_check']})")
    return 0


def _keeps_models(args) -> bool:
    return bool(args.keep_models) and "upos-finetune" in args.measures


def _layer_effect_interrupted(args, command: str) -> str:
    if args.overwrite:
        return f"{args.out} is as it was before this run (--overwrite replaces it only when complete); rerun: {command}"
    if _keeps_models(args):
        return (f"the fine-tuned checkpoints finished so far are in {Path(args.out) / 'models'} (--keep-models), "
                f"no table was written; rerun: {command}")
    return f"nothing was written to {args.out} (it appears only when complete); rerun: {command}"


def run_layer_effect_cmd(args) -> int:
    from core.config import from_args

    from ..layer_effect_config import LayerEffectConfig
    from ..layer_effect_inputs import checkpoints, read_inputs

    cfg = from_args(LayerEffectConfig, args)  # validated by check_layer_effect (and again by the study)
    data = read_inputs(cfg)  # every file and manifest before the heavy imports: a malformed one fails at once
    checkpoints(cfg)
    from core.io import atomic_dir

    from ..layer_effect import run_layer_effect, summary_text, write_layer_effect

    out = Path(args.out)
    if _keeps_models(args):
        # the checkpoints are built where they stay (their manifests name that folder); the
        # tables are written, each atomically, when the study completes
        out.mkdir(parents=True, exist_ok=True)
        res = run_layer_effect(cfg, out=out, progress=args.progress, data=data)
        paths = write_layer_effect(res, out, figure=args.figure)
    else:
        with atomic_dir(out) as tmp:  # OUT appears only when complete (--overwrite: the CLI set the old aside)
            res = run_layer_effect(cfg, out=tmp, progress=args.progress, data=data)
            paths = [out / p.relative_to(tmp) for p in write_layer_effect(res, tmp, figure=args.figure)]
    print(summary_text(res.effects))
    shown = [p for p in paths if p.suffix in (".csv", ".json", ".png")]
    print(f"\nwrote {', '.join(map(str, shown))} ({res.meta['wall_time_s']:.0f} s)")
    return 0
