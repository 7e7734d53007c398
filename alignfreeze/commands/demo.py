"""``alignfreeze demo``: the main job on its embedded default (no network, no GPU)."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("demo", help="run the end-to-end pipeline on the embedded demo data")
    p.add_argument("--model", default=None,
                   help="model to use (default: e5-small when the 'models' extra is installed, "
                        "else a tiny random BERT built on the spot)")
    p.add_argument("--out", default="runs/demo", help="output folder")
    p.add_argument("--quick", action="store_true", help="tiny random model and few steps (seconds; for tests)")
    p.add_argument("--steps", type=int, default=None, help="realignment steps per strategy (default 8; 4 with --quick)")
    p.set_defaults(func=run, preflight=check, out_kind="folder")


def check(args) -> None:
    from alignfreeze.preflight import need_model

    need_model(args.model)


def run(args) -> int:
    from alignfreeze.pipeline import run_demo
    from alignfreeze.preflight import replacing_folder

    # the demo writes its folder as it goes: a failed or interrupted run leaves none behind
    # (--overwrite: the CLI set the old one aside, and puts it back then)
    with replacing_folder(args.out, overwrite=False):
        run_demo(out=args.out, model=args.model, quick=args.quick, steps=args.steps)
    return 0
