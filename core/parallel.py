"""Sentence-aligned parallel text: two CoNLL-U files joined on ``# sent_id`` (the PUD
layout), two line-aligned plain text files, one TSV file, or a HuggingFace dataset.

Words are the surface tokens a model sees (CoNLL-U: MWT surface forms; plain text and
TSV: whitespace-split). Misaligned input raises :class:`ParallelDataError` naming both
files and the first mismatch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .conllu import read_conllu


class ParallelDataError(ValueError):
    """Parallel input that cannot be aligned sentence by sentence."""


@dataclass(frozen=True)
class ParallelPair:
    """One translation pair: an id and the two sides as lists of words."""

    id: str
    src: list[str]
    tgt: list[str]


def _read_lines(path: Path) -> list[str]:
    with open(path, encoding="utf-8") as fh:
        return [line.rstrip("\n").rstrip("\r") for line in fh]


def _read_conllu_pairs(src: Path, tgt: Path) -> list[ParallelPair]:
    a = list(read_conllu(src))
    b = list(read_conllu(tgt))
    ids_b = {s.sent_id: s for s in b}
    if len(ids_b) != len(b):
        raise ParallelDataError(f"{tgt}: duplicate sent_id values; cannot join with {src}")
    pairs = []
    for i, s in enumerate(a):
        t = ids_b.get(s.sent_id)
        if t is None:
            raise ParallelDataError(
                f"{src} and {tgt} are not parallel: sent_id {s.sent_id!r} "
                f"({src}:{s.line}, sentence {i + 1}) has no match in {tgt}"
            )
        pairs.append(ParallelPair(s.sent_id, list(s.tokens), list(t.tokens)))
    if len(a) != len(b):
        extra = next(t for t in b if t.sent_id not in {s.sent_id for s in a})
        raise ParallelDataError(
            f"{src} ({len(a)} sentences) and {tgt} ({len(b)} sentences) differ in length: "
            f"sent_id {extra.sent_id!r} ({tgt}:{extra.line}) has no match in {src}"
        )
    return pairs


def _read_text_pairs(src: Path, tgt: Path) -> list[ParallelPair]:
    a, b = _read_lines(src), _read_lines(tgt)
    if len(a) != len(b):
        first = min(len(a), len(b)) + 1
        raise ParallelDataError(
            f"{src} ({len(a)} lines) and {tgt} ({len(b)} lines) are not line-aligned: "
            f"line {first} exists in only one of them"
        )
    pairs = []
    for i, (x, y) in enumerate(zip(a, b), 1):
        if bool(x.strip()) != bool(y.strip()):
            raise ParallelDataError(
                f"{src} and {tgt} are not line-aligned: line {i} is empty in only one of them"
            )
        if x.strip():
            pairs.append(ParallelPair(str(i), x.split(), y.split()))
    return pairs


def _read_tsv_pairs(path: Path) -> list[ParallelPair]:
    pairs = []
    for i, line in enumerate(_read_lines(path), 1):
        if not line.strip():
            continue
        cols = line.split("\t")
        if len(cols) != 2 or not cols[0].strip() or not cols[1].strip():
            raise ParallelDataError(
                f"{path}:{i}: expected two non-empty tab-separated columns (source, target), "
                f"found {len(cols)} column(s)"
            )
        pairs.append(ParallelPair(str(i), cols[0].split(), cols[1].split()))
    return pairs


def _read_hf_pairs(spec: str, split: str, limit: int | None) -> list[ParallelPair]:
    """``hf:DATASET:CONFIG`` such as ``hf:Helsinki-NLP/opus-100:en-fr``."""
    try:
        import datasets  # optional: extra "hub"
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ParallelDataError(
            f"{spec}: reading a HuggingFace dataset needs the 'datasets' package "
            "(pip install 'alignfreeze[hub]')"
        ) from e
    _, name, config = (spec.split(":", 2) + [""])[:3]
    if not config or "-" not in config:
        raise ParallelDataError(f"{spec}: expected hf:DATASET:SRC-TGT, e.g. hf:Helsinki-NLP/opus-100:en-fr")
    s, t = config.split("-", 1)
    ds = datasets.load_dataset(name, config, split=split)
    pairs = []
    for i, row in enumerate(ds):
        if limit is not None and i >= limit:
            break
        tr = row["translation"]
        pairs.append(ParallelPair(str(i), tr[s].split(), tr[t].split()))
    return pairs


def read_parallel(
    src: str | Path,
    tgt: str | Path | None = None,
    *,
    split: str = "train",
    limit: int | None = None,
) -> list[ParallelPair]:
    """Read parallel sentences.

    - ``src``, ``tgt`` both ``.conllu``: joined on ``# sent_id``;
    - ``src``, ``tgt`` plain text: line-aligned (empty lines must match and are dropped);
    - ``src`` a ``.tsv`` and no ``tgt``: one pair per line;
    - ``src`` = ``hf:DATASET:SRC-TGT``: a HuggingFace translation dataset (needs the hub).
    """
    s = str(src)
    if s.startswith("hf:"):
        return _read_hf_pairs(s, split, limit)
    sp = Path(s)
    if not sp.is_file():
        raise FileNotFoundError(f"{sp}: no such parallel file")
    if tgt is None:
        if sp.suffix.lower() not in (".tsv", ".tab"):
            raise ParallelDataError(
                f"{sp}: a single parallel file must be a TSV (source<TAB>target); "
                "give two files for CoNLL-U or line-aligned text"
            )
        pairs = _read_tsv_pairs(sp)
    else:
        tp = Path(tgt)
        if not tp.is_file():
            raise FileNotFoundError(f"{tp}: no such parallel file")
        conllu = [p.suffix.lower() == ".conllu" for p in (sp, tp)]
        if all(conllu):
            pairs = _read_conllu_pairs(sp, tp)
        elif any(conllu):
            raise ParallelDataError(f"{sp} and {tp}: cannot pair a CoNLL-U file with a plain text file")
        else:
            pairs = _read_text_pairs(sp, tp)
    if not pairs:
        raise ParallelDataError(f"{s}: no sentence pairs found")
    return pairs[:limit] if limit is not None else pairs
