"""Streaming, strict CoNLL-U reader.

Features and labels are per *syntactic word* (integer IDs). Multiword-token range lines
(``3-4``) are kept as *surface tokens*, because a model must see the text as written
("du", not "de le"); empty nodes (``5.1``) are skipped for features but validated.
Every syntactic word records which surface token carries it (``Sentence.word_to_token``),
so word features are the features of the surface token that contains the word.

Any malformed input raises :class:`ConlluError` naming the file, the line number and
what was expected.
"""

from __future__ import annotations

import glob
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

UPOS_TAGS: tuple[str, ...] = (
    "ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM",
    "PART", "PRON", "PROPN", "PUNCT", "SCONJ", "SYM", "VERB", "X",
)  # fmt: skip
_UPOS = frozenset(UPOS_TAGS)
_INT_ID = re.compile(r"^[1-9][0-9]*$")
_RANGE_ID = re.compile(r"^([1-9][0-9]*)-([1-9][0-9]*)$")
_EMPTY_ID = re.compile(r"^(0|[1-9][0-9]*)\.([1-9][0-9]*)$")


class ConlluError(ValueError):
    """A CoNLL-U file that does not follow the format; the message names file and line."""

    def __init__(self, path: str | Path, line: int, message: str):
        self.path, self.line = str(path), line
        super().__init__(f"{path}:{line}: {message}")


@dataclass(frozen=True)
class Word:
    """One syntactic word (integer ID) of a sentence."""

    id: int
    form: str
    lemma: str
    upos: str
    head: int
    deprel: str


@dataclass
class Sentence:
    """A sentence: syntactic words for labels, surface tokens for tokenisation."""

    sent_id: str
    text: str
    words: list[Word]
    tokens: list[str]
    word_to_token: list[int]
    path: str = ""
    line: int = 0
    comments: dict[str, str] = field(default_factory=dict)
    space_after: list[bool] = field(default_factory=list)
    """Per surface token: False where its MISC says ``SpaceAfter=No`` (running text glues
    it to the next token, as in Chinese or before punctuation). Empty = unknown (all True)."""

    @property
    def forms(self) -> list[str]:
        return [w.form for w in self.words]

    @property
    def upos(self) -> list[str]:
        return [w.upos for w in self.words]

    def __len__(self) -> int:
        return len(self.words)


def _parse_sentence(
    lines: list[tuple[int, str]], path: str, comments: dict[str, str], start: int
) -> Sentence:
    words: list[Word] = []
    tokens: list[str] = []
    word_to_token: list[int] = []
    space_after: list[bool] = []
    mwt_end = 0  # last word ID covered by the current multiword token
    for lineno, line in lines:
        cols = line.split("\t")
        if len(cols) != 10:
            raise ConlluError(
                path, lineno, f"expected 10 tab-separated columns, found {len(cols)}"
            )
        tid, form, lemma, upos, _xpos, _feats, head, deprel, _deps, misc = cols
        no_space = "SpaceAfter=No" in misc.split("|")
        if m := _RANGE_ID.match(tid):
            a, b = int(m.group(1)), int(m.group(2))
            if a != len(words) + 1 or b <= a:
                raise ConlluError(
                    path, lineno, f"bad multiword-token range {tid!r}: expected {len(words) + 1}-N with N > {len(words) + 1}"
                )
            tokens.append(form)
            space_after.append(not no_space)
            mwt_end = b
            continue
        if _EMPTY_ID.match(tid):
            major = int(tid.split(".")[0])
            if major != len(words):
                raise ConlluError(
                    path, lineno, f"empty node {tid!r} out of order: expected {len(words)}.K"
                )
            continue  # empty nodes carry no surface form and no word label
        if not _INT_ID.match(tid):
            raise ConlluError(
                path, lineno, f"bad ID {tid!r}: expected an integer, a range N-M or a decimal N.K"
            )
        wid = int(tid)
        if wid != len(words) + 1:
            raise ConlluError(path, lineno, f"word ID {wid} out of sequence: expected {len(words) + 1}")
        if upos not in _UPOS:
            raise ConlluError(
                path, lineno, f"unknown UPOS tag {upos!r}: expected one of {', '.join(UPOS_TAGS)}"
            )
        if head == "_":
            head_i = -1
        elif head.isdigit():
            head_i = int(head)
        else:
            raise ConlluError(path, lineno, f"bad HEAD {head!r}: expected an integer or _")
        words.append(Word(wid, form, lemma, upos, head_i, deprel))
        if wid <= mwt_end:
            word_to_token.append(len(tokens) - 1)
        else:
            tokens.append(form)
            space_after.append(not no_space)
            word_to_token.append(len(tokens) - 1)
    if mwt_end > len(words):
        raise ConlluError(
            path, lines[-1][0], f"multiword token ends at word {mwt_end} but the sentence has {len(words)} words"
        )
    if not words:
        raise ConlluError(path, start, "sentence without any word line")
    sent_id = comments.get("sent_id", f"{Path(path).name}#{start}")
    text = comments.get("text", " ".join(tokens))
    return Sentence(sent_id, text, words, tokens, word_to_token, path, start, comments, space_after)


def read_conllu(path: str | Path) -> Iterator[Sentence]:
    """Stream the sentences of one CoNLL-U file (constant memory per sentence)."""
    path = str(path)
    comments: dict[str, str] = {}
    lines: list[tuple[int, str]] = []
    start = 0
    lineno = 0
    last_blank = True
    with open(path, encoding="utf-8") as fh:
        for lineno, raw in enumerate(fh, 1):
            line = raw.rstrip("\n").rstrip("\r")
            if not line.strip():
                if lines:
                    yield _parse_sentence(lines, path, comments, start)
                elif comments:
                    raise ConlluError(path, lineno, "comment lines without any word line")
                comments, lines = {}, []
                last_blank = True
                continue
            last_blank = False
            if line.startswith("#"):
                if lines:
                    raise ConlluError(path, lineno, "comment after word lines: expected a blank line between sentences")
                if not comments:
                    start = lineno
                key, sep, value = line[1:].partition("=")
                if sep:
                    comments[key.strip()] = value.strip()
                continue
            if not lines and not comments:
                start = lineno
            lines.append((lineno, line))
    if lines or comments or not last_blank:
        raise ConlluError(path, lineno, "file does not end with a blank line after the last sentence")


def read_sentences(paths: Iterable[str | Path]) -> Iterator[Sentence]:
    """Stream sentences of several files in order."""
    for p in paths:
        yield from read_conllu(p)


@dataclass
class TreebankStats:
    """Counts of one CoNLL-U file: MWT ranges and empty nodes are not words."""

    sentences: int
    words: int
    upos: dict[str, int]

    def to_dict(self) -> dict:
        return {"sentences": self.sentences, "words": self.words, "upos": dict(self.upos)}


def treebank_stats(path: str | Path) -> TreebankStats:
    counts: Counter[str] = Counter()
    n_sent = 0
    for sent in read_conllu(path):
        n_sent += 1
        counts.update(sent.upos)
    return TreebankStats(n_sent, sum(counts.values()), dict(sorted(counts.items())))


def find_treebanks(
    spec: str | Path, lang: str | None = None, split: str | None = None
) -> list[Path]:
    """Resolve a path, a glob, or a UD release folder to a sorted list of CoNLL-U files.

    A folder is searched recursively for ``{lang}_*-ud-{split}.conllu`` (the UD layout,
    ``ud-treebanks-v2.x/UD_*/xx_*-ud-train.conllu``); ``lang``/``split`` of None match any.
    """
    spec_s = str(spec)
    p = Path(spec_s)
    if p.is_file():
        return [p]
    if p.is_dir():
        pattern = f"{lang or '*'}_*-ud-{split or '*'}.conllu"
        found = sorted(p.rglob(pattern))
        if not found:
            raise FileNotFoundError(f"{p}: no treebank matches {pattern!r}")
        return found
    if any(ch in spec_s for ch in "*?["):
        found = sorted(Path(f) for f in glob.glob(spec_s, recursive=True))
        found = [f for f in found if f.is_file()]
        if not found:
            raise FileNotFoundError(f"{spec_s}: the glob matches no file")
        return found
    raise FileNotFoundError(f"{spec_s}: no such file, folder or glob")


def treebank_lang(path: str | Path) -> str:
    """Language code from a UD file name (``fr_pud-ud-test.conllu`` -> ``fr``)."""
    name = Path(path).name
    return name.split("_", 1)[0] if "_" in name else Path(path).stem
