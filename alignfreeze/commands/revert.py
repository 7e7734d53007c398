"""``alignfreeze revert`` (put realigned layers back to their pretrained weights) and
``alignfreeze layer-effect`` (the effect of each layer's realignment, per language)."""

from __future__ import annotations


def register(sub) -> None:
    """Add ``revert`` and ``layer-effect`` to the parser."""
    from core.config import add_arguments

    from ..layer_effect import LayerEffectConfig

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
    p.add_argument("--out", required=True, help="output folder (must not exist; written atomically)")
    p.add_argument("--force", action="store_true",
                   help="revert a checkpoint that has no manifest (its base is recorded as unchecked)")
    p.set_defaults(func=run_revert_cmd)

    e = sub.add_parser(
        "layer-effect", help="effect of each layer's realignment per language (revert one at a time) -> tidy CSV + heatmap",
        description="For a realigned checkpoint (or several seeds of one strategy): revert each layer alone, each "
                    "half and all layers to the pretrained weights, measure every variant per language (UPOS "
                    "probes, sentence and word retrieval; optionally fine-tune + zero-shot tagging) and write "
                    "OUT/effects.csv (effect = realigned minus reverted, with an interval over seeds, or over "
                    "sentences for one checkpoint), OUT/measurements.csv, OUT/layer_effect.json and the "
                    "heatmap OUT/figures/layer_effect.*. docs/revert.md says how to read it.")
    add_arguments(e, LayerEffectConfig)
    e.add_argument("--out", required=True, help="output folder")
    e.add_argument("--no-figure", dest="figure", action="store_false", help="tables only")
    e.add_argument("--no-progress", dest="progress", action="store_false", help="no progress lines")
    e.set_defaults(func=run_layer_effect_cmd)


def run_revert_cmd(args) -> int:
    from core.manifest import read_manifest
    from realign.revert import revert_checkpoint

    out = revert_checkpoint(args.model, args.base, args.out, layers=args.layers, keep=args.keep, force=args.force)
    m = read_manifest(out)
    print(f"{out}: layers {m['reverted_layers'] or 'none'} from {args.base}, layers {m['kept_layers'] or 'none'} "
          f"from {args.model} ({len(m['reverted_tensors'])} tensors reverted; base check: "
          f"{m['checkpoint']['base_check']})")
    return 0


def run_layer_effect_cmd(args) -> int:
    from core.config import from_args

    from ..layer_effect import LayerEffectConfig, run_layer_effect, summary_text, write_layer_effect

    cfg = from_args(LayerEffectConfig, args)
    res = run_layer_effect(cfg, out=args.out, progress=args.progress)
    paths = write_layer_effect(res, args.out, figure=args.figure)
    print(summary_text(res.effects))
    print(f"\nwrote {', '.join(str(p) for p in paths if p.suffix in ('.csv', '.json', '.png'))} "
          f"({res.meta['wall_time_s']:.0f} s)")
    return 0
