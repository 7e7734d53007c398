"""Streaming, strict CoNLL-U reader.

Features and labels are per *syntactic word* (integer IDs). Multiword-token range lines
(``3-4``) are kept as *surface tokens*, because a model must see the text as written
("du", not "de le"); empty nodes (``5.1``) are skipped for features but validated.
Every syntactic word records which surface token carries it (``Sentence.word_to_token``),
so word features are the features of the surface token that contains the word.

Any malformed input raises :class:`ConlluError` naming the file, the line number and
what was expected. The reference is the UD validator (``udvalidate --level 2`` of PyPI
``udtools``): whatever it rejects that would change what this reader returns is rejected
here too -- the line structure, IDs (overlapping or nested multiword tokens, empty nodes
that skip a number), empty or whitespace-padded columns, text that is not NFC, UPOS, HEAD
(a tree over the sentence's words), unique ``# sent_id`` values, and ``# text`` against the
forms and ``SpaceAfter=No``. Harmless deviations are read as if the file were clean: a
UTF-8 byte-order mark, CRLF line ends, extra blank lines. Deliberate differences from
the validator (documented in ``docs/data.md``): ``# sent_id`` and ``# text`` may be
absent; HEAD and DEPREL may be ``_`` on every word of a sentence (a tagger's output);
LEMMA, XPOS, FEATS, DEPREL, DEPS and MISC other than ``SpaceAfter`` are carried as written
(the toolkit does not read them); an empty file is an error.
"""

from __future__ import annotations

import glob
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .textlines import FileFormatError, read_lines

UPOS_TAGS: tuple[str, ...] = (
    "ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM",
    "PART", "PRON", "PROPN", "PUNCT", "SCONJ", "SYM", "VERB", "X",
)  # fmt: skip
_UPOS = frozenset(UPOS_TAGS)
_INT_ID = re.compile(r"^[1-9][0-9]*$")
_RANGE_ID = re.compile(r"^([1-9][0-9]*)-([1-9][0-9]*)$")
_EMPTY_ID = re.compile(r"^(0|[1-9][0-9]*)\.([1-9][0-9]*)$")
_HEAD = re.compile(r"^(0|[1-9][0-9]*)$")
COLUMNS = ("ID", "FORM", "LEMMA", "UPOS", "XPOS", "FEATS", "HEAD", "DEPREL", "DEPS", "MISC")
_NO_SPACE_COLS = (0, 3, 4, 5, 6, 7, 8)  # ID, UPOS, XPOS, FEATS, HEAD, DEPREL, DEPS: no whitespace at all


class ConlluError(FileFormatError):
    """A CoNLL-U file that does not follow the format; the message names file and line."""


@dataclass(frozen=True)
class Word:
    """One syntactic word (integer ID) of a sentence. ``head`` is -1 where HEAD is ``_``."""

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


_SUSPECT = re.compile(r"\t\t|^\t|\t$|[^\S\t]")  # an empty column, or whitespace other than the separators
_REPEATED_SPACE = re.compile(r"\s\s")


def _check_columns(line: str, cols: list[str], path: str, lineno: int, is_range: bool) -> None:
    """Level-1 column rules of the UD validator: no empty column, no stray whitespace."""
    if not _SUSPECT.search(line):
        return  # the common case, in one scan of the line
    for k, value in enumerate(cols):
        name = COLUMNS[k]
        if not value:
            raise ConlluError(path, lineno, f"empty {name} column: expected a value or _")
        if (k in _NO_SPACE_COLS or (is_range and k in (1, 2))) and any(ch.isspace() for ch in value):
            raise ConlluError(path, lineno, f"whitespace in {name} {value!r}: expected none in this column")
        if value[0].isspace() or value[-1].isspace() or _REPEATED_SPACE.search(value):
            raise ConlluError(
                path, lineno, f"{name} {value!r} has leading, trailing or repeated whitespace: expected none"
            )


def _space_after_no(misc: str, path: str, lineno: int) -> bool:
    if "SpaceAfter" not in misc:
        return False
    found = False
    for item in misc.split("|"):
        if item.startswith("SpaceAfter="):
            if item != "SpaceAfter=No":
                raise ConlluError(path, lineno, f"MISC {item!r}: expected SpaceAfter=No or no SpaceAfter at all")
            found = True
    return found


def _check_tree(words: list[Word], lines: list[int], path: str) -> None:
    """HEAD: all ``_`` (not annotated), or a tree over the words with one root (HEAD 0)."""
    unset = [k for k, w in enumerate(words) if w.head < 0]
    if unset:
        if len(unset) < len(words):
            k = unset[0]
            raise ConlluError(path, lines[k], "HEAD is _ here but a number on other words of the sentence: "
                                              "expected HEAD on every word or on none")
        return
    n = len(words)
    children: dict[int, list[int]] = {}
    roots = []
    for k, w in enumerate(words):
        if w.head > n:
            raise ConlluError(path, lines[k], f"HEAD {w.head} is not a word of the sentence: expected 0..{n}")
        if w.head == w.id:
            raise ConlluError(path, lines[k], f"HEAD {w.head} is the word itself: expected another word or 0")
        if w.head == 0:
            roots.append(k)
            if len(roots) > 1:
                raise ConlluError(path, lines[k], f"second root (HEAD 0) of the sentence, the first is word "
                                                  f"{words[roots[0]].id} (line {lines[roots[0]]}): expected one root")
        children.setdefault(w.head, []).append(w.id)
    seen, todo = set(), [0]
    while todo:
        for c in children.get(todo.pop(), []):
            if c not in seen:
                seen.add(c)
                todo.append(c)
    for k, w in enumerate(words):
        if w.id not in seen:
            raise ConlluError(path, lines[k], f"word {w.id} cannot be reached from the root (a cycle of HEADs "
                                              "or no HEAD 0): expected a tree")


def _check_text(text: str, text_line: int, tokens: list[str], space_after: list[bool],
                token_lines: list[int], path: str) -> None:
    """``# text`` against the surface forms and ``SpaceAfter=No``, as the UD validator does."""
    rest = text
    for tok, sa, lineno in zip(tokens, space_after, token_lines):
        if not rest.startswith(tok):
            raise ConlluError(path, lineno, f"FORM {tok!r} does not match '# text' (line {text_line}) at "
                                            f"{rest[:len(tok) + 10]!r}: expected the text to be the forms in order")
        rest = rest[len(tok):]
        if sa:
            if rest and not rest[0].isspace():
                raise ConlluError(path, lineno, f"'# text' (line {text_line}) has no space after {tok!r}: "
                                                "expected SpaceAfter=No in MISC")
            rest = rest.lstrip()
    if rest:
        raise ConlluError(path, text_line, f"'# text' ends with {rest[:20]!r}, which no FORM accounts for: "
                                           "expected the text to be the forms in order")


def _parse_sentence(
    lines: list[tuple[int, str]], path: str, comments: dict[str, str], start: int, text_line: int = 0
) -> Sentence:
    words: list[Word] = []
    word_lines: list[int] = []
    tokens: list[str] = []
    token_lines: list[int] = []
    word_to_token: list[int] = []
    space_after: list[bool] = []
    mwt_start = mwt_end = 0  # words covered by the current multiword token
    mwt_id, mwt_line = "", 0
    next_empty = 1  # the K expected for the next empty node N.K
    for lineno, line in lines:
        cols = line.split("\t")
        if len(cols) != 10:
            raise ConlluError(path, lineno, f"expected 10 tab-separated columns, found {len(cols)}")
        tid, form, lemma, upos, _xpos, _feats, head, deprel, _deps, misc = cols
        is_range = _RANGE_ID.match(tid)
        _check_columns(line, cols, path, lineno, bool(is_range))
        no_space = _space_after_no(misc, path, lineno)
        if m := is_range:
            a, b = int(m.group(1)), int(m.group(2))
            if a <= mwt_end:
                raise ConlluError(path, lineno, f"multiword token {tid} overlaps {mwt_id} (line {mwt_line}): "
                                                f"expected a range that starts after word {mwt_end}")
            if a != len(words) + 1 or b < a:
                raise ConlluError(path, lineno, f"bad multiword-token range {tid!r}: "
                                                f"expected {len(words) + 1}-N with N >= {len(words) + 1}")
            tokens.append(form)
            token_lines.append(lineno)
            space_after.append(not no_space)
            mwt_start, mwt_end, mwt_id, mwt_line = a, b, tid, lineno
            next_empty = 1
            continue
        if m := _EMPTY_ID.match(tid):
            major, minor = int(m.group(1)), int(m.group(2))
            if major != len(words) or minor != next_empty:
                raise ConlluError(path, lineno, f"empty node {tid!r} out of order: expected {len(words)}.{next_empty}")
            if mwt_start > len(words):
                raise ConlluError(path, lineno, f"empty node {tid} between multiword token {mwt_id} (line "
                                                f"{mwt_line}) and its words: expected it before the range line")
            if no_space:
                raise ConlluError(path, lineno, "SpaceAfter=No on an empty node: expected it on surface tokens only")
            next_empty += 1
            continue  # empty nodes carry no surface form and no word label
        if not _INT_ID.match(tid):
            raise ConlluError(
                path, lineno, f"bad ID {tid!r}: expected an integer, a range N-M or a decimal N.K"
            )
        wid = int(tid)
        if wid != len(words) + 1:
            raise ConlluError(path, lineno, f"word ID {wid} out of sequence: expected {len(words) + 1}")
        next_empty = 1
        if upos not in _UPOS:
            raise ConlluError(
                path, lineno, f"unknown UPOS tag {upos!r}: expected one of {', '.join(UPOS_TAGS)}"
            )
        if head == "_":
            head_i = -1
        elif _HEAD.match(head):
            head_i = int(head)
        else:
            raise ConlluError(path, lineno, f"bad HEAD {head!r}: expected an integer or _")
        words.append(Word(wid, form, lemma, upos, head_i, deprel))
        word_lines.append(lineno)
        if wid <= mwt_end:
            if no_space:
                raise ConlluError(path, lineno, f"SpaceAfter=No on word {wid} inside multiword token {mwt_id} "
                                                f"(line {mwt_line}): expected it on the range line")
            word_to_token.append(len(tokens) - 1)
        else:
            tokens.append(form)
            token_lines.append(lineno)
            space_after.append(not no_space)
            word_to_token.append(len(tokens) - 1)
    if not words:
        raise ConlluError(path, lines[0][0], "sentence without any word line: expected a line with an integer ID")
    if mwt_end > len(words):
        raise ConlluError(
            path, mwt_line, f"multiword token {mwt_id} ends at word {mwt_end} but the sentence has {len(words)} words"
        )
    _check_tree(words, word_lines, path)
    if "text" in comments:
        _check_text(comments["text"], text_line, tokens, space_after, token_lines, path)
        text = comments["text"]
    else:  # running text rebuilt as UD defines it: forms, a space unless SpaceAfter=No
        text = "".join(t + (" " if sa else "") for t, sa in zip(tokens, space_after)).rstrip()
    sent_id = comments.get("sent_id", f"{Path(path).name}#{start}")
    return Sentence(sent_id, text, words, tokens, word_to_token, path, start, comments, space_after)


class _Block:
    """The lines of one sentence while it is being read."""

    def __init__(self) -> None:
        self.comments: dict[str, str] = {}
        self.comment_lines: dict[str, int] = {}
        self.lines: list[tuple[int, str]] = []
        self.start = 0

    def add_comment(self, lineno: int, line: str, path: str) -> None:
        if not self.start:
            self.start = lineno
        key, sep, value = line[1:].partition("=")
        key, value = key.strip(), value.strip()
        if key in ("sent_id", "text"):
            if not sep or not value:
                raise ConlluError(path, lineno, f"'# {key}' without a value: expected '# {key} = ...'")
            if key in self.comment_lines:
                raise ConlluError(path, lineno, f"second '# {key}' in one sentence (the first is at line "
                                                f"{self.comment_lines[key]}): expected one")
            if key == "sent_id" and any(ch.isspace() for ch in value):
                raise ConlluError(path, lineno, f"sent_id {value!r} contains whitespace: expected an ID without")
            self.comment_lines[key] = lineno
        if sep:
            self.comments[key] = value

    def add_word_line(self, lineno: int, line: str) -> None:
        if not self.start:
            self.start = lineno
        self.lines.append((lineno, line))

    def sentence(self, path: str) -> Sentence:
        return _parse_sentence(self.lines, path, self.comments, self.start, self.comment_lines.get("text", 0))


def _check_line(lineno: int, line: str, path: str) -> None:
    if "\r" in line:
        raise ConlluError(path, lineno, "carriage return (CR) inside the line: expected LF or CRLF line ends only")
    if "\ufffd" in line:
        raise ConlluError(path, lineno, "U+FFFD (replacement character): the text was damaged by an earlier "
                                        "encoding conversion; expected the original characters")
    if not unicodedata.is_normalized("NFC", line):
        nfc = unicodedata.normalize("NFC", line)
        col = next((k for k, (a, b) in enumerate(zip(line, nfc), 1) if a != b), min(len(line), len(nfc)) + 1)
        raise ConlluError(path, lineno, f"text not in Unicode NFC (column {col}): expected NFC, as UD requires "
                                        "(normalise the file, e.g. with uconv -x NFC)")


def read_conllu(path: str | Path) -> Iterator[Sentence]:
    """Stream the sentences of one CoNLL-U file (constant memory per sentence).

    Raises:
        ConlluError: malformed input (``file:line: what was expected``), raised when the
            reader reaches it: the sentences before it have been yielded.
    """
    path = str(path)
    block = _Block()
    sent_ids: dict[str, int] = {}
    n_sent = 0
    lineno = 0
    for lineno, line in read_lines(path, ConlluError):
        if not line.strip():  # blank (or whitespace-only) line: end of a sentence
            if block.lines:
                sent = block.sentence(path)
                if (seen := sent_ids.get(sent.sent_id)) is not None:
                    raise ConlluError(path, block.comment_lines.get("sent_id", block.start), f"sent_id {sent.sent_id!r} repeats the "
                                      f"one at line {seen}: expected unique sent_id values in a file")
                sent_ids[sent.sent_id] = block.comment_lines.get("sent_id", block.start)
                n_sent += 1
                yield sent
            elif block.start:
                raise ConlluError(path, block.start, "comment lines without a sentence: expected word lines "
                                                     "after the comments")
            block = _Block()
            continue
        _check_line(lineno, line, path)
        if line.startswith("#"):
            if block.lines:
                raise ConlluError(path, lineno, "comment after word lines: expected a blank line between sentences")
            block.add_comment(lineno, line, path)
        elif line[0].isdigit():
            block.add_word_line(lineno, line)
        else:
            raise ConlluError(path, lineno, f"unexpected line {line[:30]!r}: expected a comment (#), a word line "
                                            "starting with its ID, or a blank line")
    if block.lines:
        block.sentence(path)  # its own errors first: they name a precise line
        raise ConlluError(path, lineno, "file ends without a blank line after the last sentence: expected one "
                                        "(is the file truncated?)")
    if block.start:
        raise ConlluError(path, block.start, "comment lines without a sentence: expected word lines after the comments")
    if not n_sent:
        raise ConlluError(path, 0, "no sentence in the file: expected CoNLL-U (word lines, a blank line after "
                                   "each sentence)")


def read_treebank(path: str | Path, max_sentences: int | None = None) -> list[Sentence]:
    """Sentences of one CoNLL-U file (the first ``max_sentences`` when given); a file with
    none is an error naming it."""
    out = []
    for s in read_conllu(path):
        if max_sentences and len(out) >= max_sentences:
            break
        out.append(s)
    if not out:
        raise ValueError(f"{path}: no sentences")
    return out


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
