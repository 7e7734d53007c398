"""``alignfreeze probe``: linear probes at every layer (UPOS with control tasks, translation
matching, XNLI), written as a tidy CSV plus a metadata JSON next to it."""

from __future__ import annotations

from pathlib import Path


def register(sub) -> None:
    """Add ``probe`` to the parser (options generated from :class:`probing.config.ProbeConfig`)."""
    from core.config import add_arguments
    from probing.config import ProbeConfig

    p = sub.add_parser(
        "probe", help="per-layer linear probes (upos, translation, xnli) -> tidy CSV",
        description="Linear probes at every layer, all layers fitted in one batched pass. "
                    "upos: --train TREEBANK --eval TREEBANK... (held-out sentences of the training "
                    "treebank when it is also in --eval; zero-shot on the others), --control adds the "
                    "control task and selectivity. translation: --train PIVOT.conllu --eval "
                    "OTHER.conllu... joined on sent_id (PUD). xnli: --train LANG --eval LANG... (needs "
                    "the HuggingFace hub; skipped with a message otherwise). Writes OUT (.csv) and "
                    "OUT's .json metadata atomically.",
    )
    add_arguments(p, ProbeConfig)
    p.add_argument("--out", required=True, help="result table (.csv); metadata goes to the same name with .json")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    p.set_defaults(func=run_probe_cmd, preflight=check_probe, out_paths=probe_outputs)


def probe_outputs(args) -> list[Path]:
    """The table and its metadata JSON (``probe.csv`` -> ``probe.json``)."""
    out = Path(args.out)
    return [out, out.with_suffix(".json")]


def check_probe(args) -> None:
    from alignfreeze.preflight import InputError, need_model, need_treebanks

    if Path(args.out).suffix.lower() != ".csv":
        raise InputError(f"{args.out}: the probe table must be a .csv file (its metadata goes next to it as .json)")
    need_model(args.model)
    if args.task in ("upos", "translation"):  # xnli: --train/--eval are language codes
        what = "a CoNLL-U treebank" if args.task == "upos" else "a parallel CoNLL-U file (sent_id joined)"
        need_treebanks([args.train] if args.train else [], what)
        need_treebanks(args.eval, what)


def run_probe_cmd(args) -> int:
    from core.config import from_args
    from probing.control import summarize
    from probing.run import ProbeConfig, run_probe, write_results

    cfg = from_args(ProbeConfig, args)
    df, meta = run_probe(cfg, progress=args.progress)
    csv, js = write_results(df, meta, args.out)
    print(f"{csv}: {len(df)} rows ({cfg.task}, layers {meta['layers']}, {cfg.seeds} seed(s)); metadata {js}")
    if len(df):
        main = df[df["split"] != "train"]
        summary = summarize(main.drop(columns=["n", "file"]))
        best = summary.loc[summary.groupby(["lang", "task", "metric"])["mean"].idxmax()]
        for r in best.itertuples():
            sd = "n/a" if r.std != r.std else f"{r.std:.4f}"  # NaN below two seeds
            print(f"  {r.lang}\t{r.task}\t{r.metric}\tbest layer {r.layer}: {r.mean:.4f} ± {sd}")
    return 0
