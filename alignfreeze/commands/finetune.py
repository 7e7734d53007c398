"""``alignfreeze finetune`` (UPOS tagging), ``alignfreeze evaluate`` (zero-shot, tidy CSV) and
``alignfreeze experiment CONFIG.yaml`` (the AlignFreeze grid)."""

from __future__ import annotations

from pathlib import Path

PAIRS = "word pairs as JSONL (from `alignfreeze pairs`)"


def register(sub) -> None:
    """Add ``finetune``, ``evaluate`` and ``experiment`` to the parser."""
    from core.config import add_arguments
    from realign.finetune import FinetuneConfig

    f = sub.add_parser("finetune", help="fine-tune a (realigned) model for UPOS tagging on source treebank(s)",
                       description="Token-classification fine-tuning over the 17 UD tags (first sub-word "
                                   "labelled). With --during-realign PAIRS the realignment loss is added during "
                                   "fine-tuning and --during-freeze SPEC's realignment gradients are dropped. "
                                   "Runs unchanged under `accelerate launch -m alignfreeze.cli finetune ...`.")
    add_arguments(f, FinetuneConfig)
    f.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    f.set_defaults(func=run_finetune, preflight=check_finetune, out_kind="folder")

    e = sub.add_parser("evaluate", help="zero-shot evaluation of a fine-tuned model (tidy CSV)")
    e.add_argument("model", help="fine-tuned checkpoint folder (or a name); NAME=FOLDER names it in the table")
    e.add_argument("--treebank", nargs="+", default=[],
                   help="CoNLL-U files, globs or UD folders (one row each), each with an optional selection "
                        "(fr_pud-ud-test.conllu@501:1000, docs/data.md)")
    e.add_argument("--max-sentences", type=int, default=None,
                   help="at most the first N sentences per file (after its selection; recorded)")
    e.add_argument("--tasks", nargs="+", default=["upos"], choices=("upos", "xnli"),
                   help="xnli needs the HuggingFace hub; skipped with a message when unreachable")
    e.add_argument("--xnli-langs", nargs="+", default=[], help="XNLI languages (default all 15)")
    e.add_argument("--model-name", default=None, help="value of the model column (default: NAME of NAME=FOLDER, "
                                                       "else the checkpoint's name from its manifest, e.g. "
                                                       "front-s42+upos, else the folder's)")
    e.add_argument("--batch-size", type=int, default=32)
    e.add_argument("--max-length", type=int, default=None, help="tokens per window (default: model max)")
    e.add_argument("--out", default=None, help="CSV file for the rows (written atomically); default: print only")
    e.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    e.set_defaults(func=run_evaluate, preflight=check_evaluate, named_models=True)

    x = sub.add_parser("experiment", help="run an experiment grid from a YAML config (resumable)",
                       description="Per cell (model x aligner x strategy x seed): realign, fine-tune on the "
                                   "source, evaluate on the targets; results.csv + table.md/table.csv in OUT. "
                                   "Finished cells are skipped; failed cells are listed in OUT/failures.json.")
    x.add_argument("config", help="experiment YAML (see docs/experiments.md)")
    x.add_argument("--dry-run", action="store_true", help="validate the config and list the cells to run")
    x.add_argument("--progress", action="store_true", help="progress bars inside each cell")
    x.add_argument("--offline", action="store_true",
                   help="never contact the HuggingFace hub (models from local folders or the HF cache)")
    x.set_defaults(func=run_experiment_cmd, preflight=check_experiment_cmd, on_interrupt=_experiment_interrupted)


def check_finetune(args) -> None:
    from alignfreeze.preflight import InputError, need_data, need_model, need_treebanks

    need_model(args.model)
    if args.task == "upos":
        need_treebanks(args.train, "a CoNLL-U treebank to fine-tune on")
    for f in args.during_realign or ():
        need_data(f, PAIRS)
    if Path(args.model).expanduser().resolve() == Path(args.out).expanduser().resolve():
        raise InputError(f"{args.out}: --out is the model's own folder (--model); choose another --out")


def check_evaluate(args) -> None:
    from alignfreeze.preflight import InputError, need_model, need_treebanks

    need_model(args.model, named=True)
    need_treebanks(args.treebank)
    if args.max_sentences is not None and args.max_sentences < 1:
        raise InputError(f"--max-sentences {args.max_sentences}: expected at least 1")


def check_experiment_cmd(args) -> None:
    from alignfreeze.preflight import need_file

    need_file(args.config, "an experiment YAML (see docs/experiments.md)")


def _experiment_interrupted(args, command: str) -> str:
    return (f"finished cells are kept (each cell's results.csv is written when the cell completes) and are "
            f"skipped when the grid is run again; resume: {command}")


def run_finetune(args) -> int:
    from core.config import from_args
    from core.manifest import read_manifest
    from realign.finetune import FinetuneConfig, finetune

    cfg = from_args(FinetuneConfig, args)
    out = finetune(cfg, progress=args.progress)  # --overwrite: the CLI set the old folder aside
    m = read_manifest(out)
    losses = ", ".join(f"{k}={v:.4f}" for k, v in m["final_losses"].items())
    print(f"{out}: {m['task']}, {m['steps']} steps on {m['data']['examples']} examples, lr {m['lr']:g}, "
          f"{m['wall_time_s']:.1f} s; final {losses}")
    return 0


def run_evaluate(args) -> int:
    from core.io import atomic_write_text
    from realign.evaluate import evaluate

    if "upos" in args.tasks and not args.treebank:
        raise ValueError("evaluate: --treebank FILE ... is needed for the upos task")
    from core.names import split_named

    name, model = split_named(args.model)
    df = evaluate(model, args.treebank, tasks=args.tasks, xnli_langs=args.xnli_langs,
                  model_name=args.model_name or name, batch_size=args.batch_size, max_length=args.max_length,
                  progress=args.progress, max_sentences=args.max_sentences)
    if args.out:
        atomic_write_text(args.out, df.to_csv(index=False))
    for row in df.itertuples():
        print(f"{row.model}\t{row.lang}\t{row.task}\t{row.metric}\t{row.value:.4f}\t{row.n_words}\t{row.file}"
              f"\t{row.selection}")
    return 0


def run_experiment_cmd(args) -> int:
    from alignfreeze.experiment import load_experiment, run_experiment

    exp = load_experiment(args.config)
    if args.dry_run:
        from alignfreeze.experiment_check import check_experiment

        check_experiment(exp)  # everything the run would reject, rejected now
    report = run_experiment(exp, progress=args.progress, dry_run=args.dry_run)
    if report.failed:
        for cell, msg in report.failed.items():
            print(f"alignfreeze: cell {cell} failed: {msg}")
        return 1
    return 0
