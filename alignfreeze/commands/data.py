"""``alignfreeze data stats``: sentences, syntactic words and UPOS histogram per file."""

from __future__ import annotations

import json


def register(sub) -> None:
    p = sub.add_parser("data", help="inspect treebanks and parallel data")
    dsub = p.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    s = dsub.add_parser("stats", help="per file: sentences, words (MWT ranges and empty nodes excluded), UPOS")
    s.add_argument("paths", nargs="+", metavar="FILE_OR_GLOB",
                   help="CoNLL-U files, globs or UD folders, each with an optional selection (en.conllu@1:500): "
                        "then the counts are those of the selected sentences, keyed FILE@SELECTION")
    s.add_argument("--json", action="store_true", help="print one JSON object {path: {...}}")
    s.set_defaults(func=run_stats, preflight=check_stats)


def check_stats(args) -> None:
    from alignfreeze.preflight import need_treebanks

    need_treebanks(args.paths)


def run_stats(args) -> int:
    from collections import Counter

    from core.conllu import TreebankStats, treebank_stats
    from core.inputs import select_treebanks, treebank_files

    result = {}
    for spec in args.paths:
        if all(sel is None for _, sel in treebank_files([spec])):
            result.update({str(f): None for f, _ in treebank_files([spec]) if str(f) not in result})
            continue
        for sel in select_treebanks([spec]):
            upos = Counter(t for s in sel.items for t in s.upos)
            result[sel.spec] = TreebankStats(len(sel.items), sum(upos.values()), dict(sorted(upos.items())))
    result = {k: (v if v is not None else treebank_stats(k)).to_dict() for k, v in result.items()}
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=1))
        return 0
    for path, st in result.items():
        print(f"{path}: {st['sentences']} sentences, {st['words']} words")
        hist = "  ".join(f"{k} {v}" for k, v in sorted(st["upos"].items(), key=lambda kv: -kv[1]))
        print(f"  {hist}")
    return 0
