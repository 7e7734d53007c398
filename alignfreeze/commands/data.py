"""``alignfreeze data stats``: sentences, syntactic words and UPOS histogram per file."""

from __future__ import annotations

import json


def register(sub) -> None:
    p = sub.add_parser("data", help="inspect treebanks and parallel data")
    dsub = p.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    s = dsub.add_parser("stats", help="per file: sentences, words (MWT ranges and empty nodes excluded), UPOS")
    s.add_argument("paths", nargs="+", metavar="FILE_OR_GLOB", help="CoNLL-U files, globs or UD folders")
    s.add_argument("--json", action="store_true", help="print one JSON object {path: {...}}")
    s.set_defaults(func=run_stats, preflight=check_stats)


def check_stats(args) -> None:
    from alignfreeze.preflight import need_treebanks

    need_treebanks(args.paths)


def run_stats(args) -> int:
    from core.conllu import find_treebanks, treebank_stats

    files = []
    for spec in args.paths:
        files.extend(str(f) for f in find_treebanks(spec))
    result = {f: treebank_stats(f).to_dict() for f in dict.fromkeys(files)}
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=1))
        return 0
    for path, st in result.items():
        print(f"{path}: {st['sentences']} sentences, {st['words']} words")
        hist = "  ".join(f"{k} {v}" for k, v in sorted(st["upos"].items(), key=lambda kv: -kv[1]))
        print(f"  {hist}")
    return 0
