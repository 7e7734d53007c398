"""The word-pairs file: the on-disk contract between ``alignfreeze pairs`` (realign) and
everything that reads aligned words (realignment, ``align-eval``).

JSONL, one sentence pair per line::

    {"id": "s1", "src": ["北京", "是", "首都", "。"], "tgt": ["Beijing", "is", "the", "capital", "."],
     "links": [[0, 0], [2, 3]], "src_text": "北京是首都。", "tgt_text": "Beijing is the capital."}

``links`` are 0-based ``[source word, target word]`` indices. ``src_lang`` / ``tgt_lang``
(optional, written by ``alignfreeze pairs`` when the input's file names say the languages,
:mod:`core.names`) are language codes: what ``align-eval`` writes in its ``src``/``tgt`` columns. ``src_text`` / ``tgt_text``
(optional, written by ``alignfreeze pairs`` since the running text is carried through) are
the running texts the words were cut from: what a model reads (:mod:`core.encoding`). They
must be the words in order with nothing but whitespace between them (none between words
glued in running text). A record without them (files written before) is read as words
separated by single spaces, which is not the running text of Chinese, Japanese or Thai, nor
of text with punctuation glued to words; :func:`read_pairs` says so on stderr, once per file.

Reading validates every line and names ``file:line`` and what was expected; writing is atomic.
Consumers tokenise a side through :func:`side`, never from the word list alone.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NotRequired, TypedDict

from .io import atomic_write_text
from .pieces import Surface, surface, surface_text, text_surface
from .textlines import read_lines

SIDES = ("src", "tgt")


class WordPairs(TypedDict):
    """One sentence pair with its word links (and, optionally, each side's running text)."""

    id: str
    src: list[str]
    tgt: list[str]
    links: list[list[int]]
    src_text: NotRequired[str]
    tgt_text: NotRequired[str]
    src_lang: NotRequired[str]
    tgt_lang: NotRequired[str]


def pair_record(pid: str, src: Surface, tgt: Surface, links: Sequence[Sequence[int]],
                langs: tuple[str, str] | None = None) -> WordPairs:
    """A record of two :class:`core.encoding.Surface` sides: their words and running texts
    (and their language codes, when known)."""
    rec = WordPairs(id=str(pid), src=list(src.words), tgt=list(tgt.words), links=[[int(i), int(j)] for i, j in links])
    rec["src_text"] = surface_text(src)[0]
    rec["tgt_text"] = surface_text(tgt)[0]
    if langs is not None:
        rec["src_lang"], rec["tgt_lang"] = str(langs[0]), str(langs[1])
    return rec


def side(record: WordPairs, which: str) -> Surface:
    """Side ``src`` or ``tgt`` of a record as a :class:`core.encoding.Surface`: its words
    located in ``<which>_text`` when the record has it, else words separated by single spaces."""
    if which not in SIDES:
        raise ValueError(f"side {which!r}: expected src or tgt")
    text = record.get(f"{which}_text")
    return surface(record[which]) if text is None else text_surface(text, record[which])


def check_record(obj: Any, where: str) -> WordPairs:
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: expected a JSON object {{\"id\", \"src\", \"tgt\", \"links\"}}, found {type(obj).__name__}")
    missing = [k for k in ("id", "src", "tgt", "links") if k not in obj]
    if missing:
        raise ValueError(f"{where}: missing key(s) {missing}; expected id, src, tgt, links")
    for name in SIDES:
        words = obj[name]
        if not isinstance(words, list) or not words or not all(isinstance(w, str) and w for w in words):
            raise ValueError(f"{where}: {name!r} must be a non-empty list of non-empty strings (words)")
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
    rec = WordPairs(id=str(obj["id"]), src=list(obj["src"]), tgt=list(obj["tgt"]),
                    links=[[int(i), int(j)] for i, j in links])
    for name in SIDES:
        key = f"{name}_text"
        if key not in obj:
            continue
        text = obj[key]
        if not isinstance(text, str):
            raise ValueError(f"{where}: {key!r} must be a string (the running text of {name!r}), "
                             f"found {type(text).__name__}")
        try:
            text_surface(text, rec[name])
        except ValueError as e:
            raise ValueError(f"{where}: {key!r} does not hold the words of {name!r}: {e}") from None
        rec[key] = text
    for name in SIDES:
        key = f"{name}_lang"
        if key in obj:
            if not isinstance(obj[key], str) or not obj[key] or any(c.isspace() for c in obj[key]):
                raise ValueError(f"{where}: {key!r} must be a language code (a non-empty string without spaces), "
                                 f"found {obj[key]!r}")
            rec[key] = obj[key]
    return rec


def read_pairs(path_or_paths: str | Path | Sequence[str | Path]) -> list[WordPairs]:
    """Read one or several word-pair JSONL files (records concatenated in order).

    Errors name ``file:line`` and what was expected (bad JSON, missing keys, links out of
    range, a running text that is not its words). A file without records is an error too.
    Records without ``src_text``/``tgt_text`` are counted and reported on stderr, once per file.
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
        bare = sum(any(f"{s}_text" not in r for s in SIDES) for r in out[n0:])
        if bare:
            print(f"alignfreeze: note: {p}: {bare} of {len(out) - n0} record(s) have no src_text/tgt_text (a file "
                  "written before the running text was recorded): their words are read as separated by single "
                  "spaces; rerun `alignfreeze pairs` to record the running text", file=sys.stderr)
    return out


def write_pairs(path: str | Path, records: Iterable[WordPairs]) -> Path:
    """Write records as JSONL, atomically (validated first)."""
    lines = []
    for k, r in enumerate(records):
        rec = check_record(dict(r), f"record {k}")
        lines.append(json.dumps(rec, ensure_ascii=False))
    return atomic_write_text(path, "\n".join(lines) + ("\n" if lines else ""))
