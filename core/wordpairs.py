"""The word-pairs file: the on-disk contract between ``alignfreeze pairs`` (realign) and
everything that reads aligned words (realignment, ``align-eval``).

JSONL, one sentence pair per line: ``{"id", "src": [words], "tgt": [words],
"links": [[i, j], ...]}`` with 0-based word indices. Reading validates every line and names
``file:line`` and what was expected; writing is atomic.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TypedDict

from .io import atomic_write_text
from .textlines import read_lines


class WordPairs(TypedDict):
    """One sentence pair with its word links."""

    id: str
    src: list[str]
    tgt: list[str]
    links: list[list[int]]


def check_record(obj: Any, where: str) -> WordPairs:
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: expected a JSON object {{\"id\", \"src\", \"tgt\", \"links\"}}, found {type(obj).__name__}")
    missing = [k for k in ("id", "src", "tgt", "links") if k not in obj]
    if missing:
        raise ValueError(f"{where}: missing key(s) {missing}; expected id, src, tgt, links")
    for side in ("src", "tgt"):
        words = obj[side]
        if not isinstance(words, list) or not words or not all(isinstance(w, str) and w for w in words):
            raise ValueError(f"{where}: {side!r} must be a non-empty list of non-empty strings (words)")
    links = obj["links"]
    if not isinstance(links, list):
        raise ValueError(f"{where}: 'links' must be a list of [source index, target index]")
    ns, nt = len(obj["src"]), len(obj["tgt"])
    for link in links:
        if (not isinstance(link, list | tuple) or len(link) != 2
                or not all(isinstance(x, int) and not isinstance(x, bool) for x in link)):
            raise ValueError(f"{where}: bad link {link!r}: expected [source index, target index] (two integers)")
        i, j = link
        if not (0 <= i < ns and 0 <= j < nt):
            raise ValueError(f"{where}: link {[i, j]} out of range: the pair has {ns} source and {nt} target words")
    return WordPairs(id=str(obj["id"]), src=list(obj["src"]), tgt=list(obj["tgt"]),
                     links=[[int(i), int(j)] for i, j in links])


def read_pairs(path_or_paths: str | Path | Sequence[str | Path]) -> list[WordPairs]:
    """Read one or several word-pair JSONL files (records concatenated in order).

    Errors name ``file:line`` and what was expected (bad JSON, missing keys, links out of
    range). A file without records is an error too.
    """
    paths = [path_or_paths] if isinstance(path_or_paths, str | Path) else list(path_or_paths)
    if not paths:
        raise ValueError("read_pairs: no files given")
    out: list[WordPairs] = []
    for p in map(Path, paths):
        if not p.is_file():
            raise FileNotFoundError(f"{p}: no such word-pair file")
        n0 = len(out)
        for n, line in read_lines(p):  # BOM, CRLF, non-UTF-8 named by line and byte offset
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{p}:{n}: invalid JSON ({e.msg}); expected one object per line "
                                 "like {\"id\": ..., \"src\": [...], \"tgt\": [...], \"links\": [[i, j], ...]}") from e
            out.append(check_record(obj, f"{p}:{n}"))
        if len(out) == n0:
            raise ValueError(f"{p}: no word-pair records (expected one JSON object per line)")
    return out


def write_pairs(path: str | Path, records: Iterable[WordPairs]) -> Path:
    """Write records as JSONL, atomically (validated first)."""
    lines = []
    for k, r in enumerate(records):
        rec = check_record(dict(r), f"record {k}")
        lines.append(json.dumps(rec, ensure_ascii=False))
    return atomic_write_text(path, "\n".join(lines) + ("\n" if lines else ""))
