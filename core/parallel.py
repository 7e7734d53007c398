"""Sentence-aligned parallel text: two CoNLL-U files joined on ``# sent_id`` (the PUD
layout), two line-aligned plain text files, one TSV file, or a HuggingFace dataset.

Each side is a :class:`core.encoding.Surface`: its words AND its running text, which is what
a model reads (:mod:`core.encoding`) and what a word aligner's links index:

- CoNLL-U: the words are the surface tokens (MWT surface forms: ``du``, not ``de le``), the
  running text joins them with a space unless MISC says ``SpaceAfter=No`` (Chinese, Thai and
  Japanese words are glued, so are most punctuation marks), which is the sentence's
  ``# text`` up to runs of whitespace (the CoNLL-U reader checks the two agree);
- plain text, TSV and ``hf:`` datasets: the running text is the line (the cell) as written,
  leading and trailing whitespace dropped, inner whitespace kept as it is (two spaces, a
  tab, an ideographic space); the words are its whitespace-separated parts. A line of
  unsegmented text (Chinese, Japanese, Thai written without spaces) is then ONE word for
  the word aligners: give such languages as CoNLL-U (words + ``SpaceAfter=No``), or as
  text pre-split by spaces if the model should read those spaces.

Both sides are checked by every reader: misaligned input raises
:class:`ParallelDataError` naming the file and line of the first mismatch (a sentence
without a translation, a repeated ``# sent_id`` on either side, a line that only one file
has, an empty side). Text files are read by :func:`core.textlines.read_lines` (a BOM is
dropped, CRLF accepted, bytes that are not UTF-8 named by line and byte offset).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import zip_longest
from pathlib import Path

from .conllu import Sentence, read_conllu
from .pieces import Surface, surface, text_surface
from .textlines import FileFormatError, read_lines


class ParallelDataError(ValueError):
    """Parallel input that cannot be aligned sentence by sentence."""


class ParallelFileError(FileFormatError, ParallelDataError):
    """A parallel file that breaks its format at one line (``file:line: what``)."""


@dataclass(frozen=True)
class ParallelPair:
    """One translation pair: an id and the two sides as :class:`core.encoding.Surface`
    objects (``.words`` for the word aligners; the object itself for anything that tokenises,
    so that the model reads the running text). A plain list of words given for a side is
    taken as words separated by single spaces."""

    id: str
    src: Surface
    tgt: Surface

    def __post_init__(self):
        for side in ("src", "tgt"):
            value = getattr(self, side)
            if not isinstance(value, Surface):
                if isinstance(value, str | Sentence):
                    raise TypeError(f"ParallelPair.{side}: expected a core.encoding.Surface or a list of words, "
                                    f"not a {type(value).__name__}")
                object.__setattr__(self, side, surface(list(value)))


def token_surface(sent: Sentence) -> Surface:
    """The surface tokens of a CoNLL-U sentence with their ``SpaceAfter`` (its syntactic
    words are not what a parallel pair's words index)."""
    sf = surface(sent)
    return Surface(sf.words, sf.space_after)


def _with_ids(path: Path) -> dict[str, Sentence]:
    """Sentences by ``# sent_id`` (the reader already refuses a repeated one, naming both lines)."""
    out = {}
    for s in read_conllu(path):
        if "sent_id" not in s.comments:
            raise ParallelFileError(path, s.line, "sentence without '# sent_id': CoNLL-U files are paired "
                                                  "on sent_id, so every sentence needs one")
        out[s.sent_id] = s
    return out


def _read_conllu_pairs(src: Path, tgt: Path) -> list[ParallelPair]:
    """Join on ``# sent_id``, both sides checked: the first source sentence without a
    translation, then the first target sentence without a source, is an error."""
    a, b = _with_ids(src), _with_ids(tgt)
    for side, other, other_path in ((a, b, tgt), (b, a, src)):
        for sid, s in side.items():
            if sid not in other:
                raise ParallelFileError(s.path, s.line, f"sent_id {sid!r} has no match in {other_path}: "
                                                        f"expected the two files to hold the same sent_id values "
                                                        f"({len(a)} and {len(b)} sentences)")
    return [ParallelPair(sid, token_surface(s), token_surface(b[sid])) for sid, s in a.items()]


def _read_text_pairs(src: Path, tgt: Path) -> list[ParallelPair]:
    """Line-aligned files, streamed side by side; the first line where they disagree is an error."""
    pairs = []
    lines = zip_longest(read_lines(src, ParallelFileError), read_lines(tgt, ParallelFileError))
    for n, (x, y) in enumerate(lines, 1):
        if x is None or y is None:
            longer, shorter = (src, tgt) if y is None else (tgt, src)
            raise ParallelFileError(longer, n, f"{shorter} has only {n - 1} lines: expected the two files "
                                               "line-aligned (one sentence and its translation per line)")
        xs, ys = x[1].strip(), y[1].strip()
        if bool(xs) != bool(ys):
            empty, full = (src, tgt) if not xs else (tgt, src)
            raise ParallelFileError(empty, n, f"empty line, but line {n} of {full} is not: expected the two "
                                              "files line-aligned (empty lines in both or in neither)")
        if xs:
            pairs.append(ParallelPair(str(n), text_surface(xs), text_surface(ys)))
    return pairs


def _read_tsv_pairs(path: Path) -> list[ParallelPair]:
    pairs = []
    for i, line in read_lines(path, ParallelFileError):
        if not line.strip():
            continue
        cols = line.split("\t")
        if len(cols) != 2 or not cols[0].strip() or not cols[1].strip():
            raise ParallelFileError(path, i, "expected two non-empty tab-separated columns (source, target), "
                                             f"found {len(cols)} column(s)"
                                             + ("" if len(cols) != 2 else " with an empty side"))
        pairs.append(ParallelPair(str(i), text_surface(cols[0].strip()), text_surface(cols[1].strip())))
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
        tr = row.get("translation") if isinstance(row, dict) else None
        sides = [tr.get(lang) if isinstance(tr, dict) else None for lang in (s, t)]
        bad = [lang for lang, text in zip((s, t), sides) if not isinstance(text, str) or not text.split()]
        if bad:
            raise ParallelDataError(f"{spec} ({split}) row {i}: no text on the {' and '.join(bad)} side: expected "
                                    f"{{'translation': {{'{s}': ..., '{t}': ...}}}} with both sides non-empty")
        pairs.append(ParallelPair(str(i), text_surface(sides[0].strip()), text_surface(sides[1].strip())))
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
