"""``alignfreeze demo``: the main job on its embedded default (no network, no GPU)."""

from __future__ import annotations

from pathlib import Path

CONLLU = "a CoNLL-U treebank"


def register(sub) -> None:
    from alignfreeze.pipeline import DemoConfig
    from core.config import add_arguments

    p = sub.add_parser(
        "demo", help="the AlignFreeze protocol in miniature: four arms, seven languages, a report",
        description="Realign a multilingual model three ways (full, front-frozen, back-frozen) next to no "
                    "realignment (baseline), then measure each arm against the pretrained model: drift and CKA "
                    "per layer, UPOS probes trained on English and scored zero-shot in every language, "
                    "forgetting, word and sentence retrieval by layer. Writes tidy tables, figures, "
                    "OUT/report.html and OUT/report.md. Default: the embedded corpus (en fr de ru ar hi zh, "
                    "written for alignfreeze) and e5-small, offline. A re-run in the same --out reuses every "
                    "finished step whose inputs are unchanged; --overwrite starts afresh.")
    add_arguments(p, DemoConfig)
    # an --out that holds a demo run is continued (its finished steps are reused), so the
    # CLI's refusal of an existing --out does not apply; check_demo refuses any other folder
    p.set_defaults(func=run, preflight=check_demo, out_kind="folder", resume=True, on_interrupt=_interrupted)


def _is_demo_folder(out: Path) -> bool:
    return (out / "run.json").is_file() or (out / "steps").is_dir()


def check_demo(args) -> None:
    """Options and input files before any heavy import; an existing --out must be a demo run."""
    from alignfreeze.pipeline import DemoConfig
    from alignfreeze.preflight import InputError, need_file, need_files, need_model
    from core.config import from_args

    out = Path(args.out)
    if out.is_dir() and any(out.iterdir()) and not _is_demo_folder(out) and not args.overwrite:
        raise InputError(f"{out}: exists already (an earlier run?); pass --overwrite to replace it, or choose "
                         "another --out (it is not a demo run folder, whose finished steps a re-run would reuse)")
    try:
        from_args(DemoConfig, args).check()
    except ValueError as e:
        raise InputError(str(e)) from None
    need_model(args.model)
    if args.ud_dir is not None and not Path(args.ud_dir).is_dir():
        raise InputError(f"{args.ud_dir}: no such folder (expected --ud-dir: a UD release or a folder of treebanks)")
    if args.train_treebank is not None:
        need_file(args.train_treebank, CONLLU)
    for spec in args.pairs or ():
        _, _, value = spec.partition("=")
        if value and not value.startswith("hf:"):
            need_files(value.split(","), "parallel text (SRC,TGT files or one TSV)")
    for spec in args.dictionary or ():
        lang, eq, value = spec.partition("=")
        if eq:
            need_file(value, "a MUSE-format dictionary ('english foreign' per line)")
        elif not Path(spec).is_dir():
            raise InputError(f"{spec}: no such folder (expected --dictionary DIR of en-xx.txt, or LANG=FILE)")


def _interrupted(args, command: str) -> str:
    out = Path(args.out)
    if args.overwrite:
        return f"{out} is as it was before this run (--overwrite replaces it only when the run completes); rerun: " \
               f"{command}"
    if _is_demo_folder(out):
        return f"the steps that finished are kept in {out} and a re-run reuses them; rerun: {command}"
    return f"nothing was written to {out}; rerun: {command}"


def run(args) -> int:
    import shutil

    from alignfreeze.pipeline import DemoConfig, run_demo
    from core.config import from_args

    out = Path(args.out)
    existed = out.exists()
    try:
        run_demo(from_args(DemoConfig, args))
    except BaseException:
        # a run that stops before any step finished leaves no folder behind; finished steps
        # (steps/) stay, so that a re-run continues from them
        if not existed and out.is_dir() and not (out / "steps").is_dir():
            shutil.rmtree(out, ignore_errors=True)
        raise
    return 0
