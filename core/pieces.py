"""Words and pieces: the running text of a sentence, which pieces carry characters, which
words own which pieces, and the counts of an encoding run. The policy around them (windows,
batches) and the full explanation live in :mod:`core.encoding`; import from there.
"""

from __future__ import annotations

import re
import sys
import weakref
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields

import numpy as np

from .conllu import Sentence

PIECE_TO_WORD = ("running text (SpaceAfter=No glues words); a word owns the pieces overlapping its characters; "
                 "bare markers, specials and padding belong to no word; a piece shared by two words belongs to both")


# ----------------------------------------------------------------------------- running text
@dataclass(frozen=True)
class Surface:
    """What is tokenised for one sentence: ``words`` (CoNLL-U surface tokens: ``au``, not
    ``à le``) and ``space_after[i]`` (False: word i is glued to word i+1 in running text);
    ``word_to_token`` maps CoNLL-U syntactic words to surface words (None: identity).

    ``text``: the running text itself when it was given as written (a line of plain text,
    :func:`text_surface`): its whitespace is kept as it is (two spaces, a tab, an
    ideographic space), and the words are located in it. None: the running text is the
    words joined as :func:`join_words` says (a space after word i unless
    ``space_after[i]`` is False).
    """

    words: list[str]
    space_after: list[bool]
    word_to_token: list[int] | None = None
    text: str | None = None

    def __len__(self) -> int:
        """Number of words (a Surface is deliberately not iterable: ``.words`` are the words
        without their spacing)."""
        return len(self.words)


SentenceLike = Sentence | Surface | Sequence[str]


def text_surface(text: str, words: Sequence[str] | None = None) -> Surface:
    """The :class:`Surface` of a running text kept as written.

    Args:
        text: the running text (a plain-text line, a TSV cell, a word-pairs record's
            ``src_text``).
        words: its words; default the whitespace-separated parts of ``text``. Given words
            must be ``text`` cut at whitespace or between characters: in order, nothing but
            whitespace before, between and after them.

    ``space_after[i]`` is True where whitespace follows word i in ``text`` (and for the last
    word). Raises ``ValueError`` naming the first place where ``words`` and ``text`` part.
    """
    if words is None:
        words = split_text(text)[0]
    else:
        words = [str(w) for w in words]
    starts = _locate(text, words)
    space = [starts[i] + len(words[i]) < starts[i + 1] for i in range(len(words) - 1)] + [True] * bool(words)
    return Surface(words, space, None, text)


def _locate(text: str, words: Sequence[str]) -> list[int]:
    """Start of each word in ``text``, which must be the words with only whitespace around them."""
    starts, pos = [], 0
    for i, w in enumerate(words):
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if not w or not text.startswith(w, pos):
            raise ValueError(f"word {i} {w!r} is not at character {pos} of the text {text!r} "
                             f"(found {text[pos:pos + len(w) + 5]!r}): expected the words in order, "
                             "with only whitespace between them")
        starts.append(pos)
        pos += len(w)
    if text[pos:].strip():
        raise ValueError(f"the text {text!r} goes on after its last word with {text[pos:pos + 20]!r}: "
                         "expected only whitespace")
    return starts


def surface_text(sf: Surface) -> tuple[str, list[int]]:
    """Running text of ``sf`` and the start of each word in it (``text`` as written, or the
    words joined by :func:`join_words`)."""
    if sf.text is None:
        return join_words(sf.words, sf.space_after)
    return sf.text, _locate(sf.text, sf.words)


def surface(sent: SentenceLike) -> Surface:
    """The :class:`Surface` of a CoNLL-U sentence, a :class:`Surface` (returned as it is)
    or a list of words (a str is refused: its characters would be taken for words)."""
    if isinstance(sent, Surface):
        return sent
    if isinstance(sent, Sentence):
        words = list(sent.tokens)
        space = list(sent.space_after) if len(sent.space_after) == len(words) else [True] * len(words)
        identity = len(sent.tokens) == len(sent.words)
        return Surface(words, space, None if identity else list(sent.word_to_token))
    if isinstance(sent, str):
        raise TypeError("a sentence must be a list of words (or a core.conllu.Sentence), not a str")
    words = [str(w) for w in sent]
    return Surface(words, [True] * len(words))


def join_words(words: Sequence[str], space_after: Sequence[bool] | None) -> tuple[str, list[int]]:
    """Running text and the start of each word in it (plain lists: cheap per sentence)."""
    parts, starts, pos = [], [], 0
    for i, w in enumerate(words):
        if i and (space_after is None or space_after[i - 1]):
            parts.append(" ")
            pos += 1
        starts.append(pos)
        parts.append(w)
        pos += len(w)
    return "".join(parts), starts


def running_text(words: Sequence[str], space_after: Sequence[bool] | None = None) -> tuple[str, np.ndarray, np.ndarray]:
    """``(text, starts, ends)``: the words joined into running text (a space after word i
    unless ``space_after[i]`` is False), and the character span ``[starts[i], ends[i])`` of
    word ``i`` in it."""
    text, starts = join_words(words, space_after)
    st = np.asarray(starts, dtype=np.int64)
    return text, st, st + np.fromiter((len(w) for w in words), dtype=np.int64, count=len(words))


def split_text(text: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Whitespace-separated words of a str and their spans (the str itself stays the text)."""
    spans = [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]
    starts = np.asarray([a for a, _ in spans], dtype=np.int64)
    ends = np.asarray([b for _, b in spans], dtype=np.int64)
    return [text[a:b] for a, b in spans], starts, ends


# ----------------------------------------------------------------------------- bare pieces
_BARE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def bare_piece_mask(tokenizer, ids: np.ndarray) -> np.ndarray:
    """True for pieces that carry no character: the piece decoded on its own is empty or
    whitespace (``▁``, ``Ġ``). Tokenizers without a decoder: the piece with a leading
    ``▁``/``Ġ``/``##`` removed. Cached per tokenizer and piece id."""
    cache = _BARE.setdefault(tokenizer, {})
    ids = np.asarray(ids, dtype=np.int64)
    uniq = np.unique(ids)
    todo = [int(i) for i in uniq if int(i) not in cache]
    if todo:
        backend = getattr(tokenizer, "backend_tokenizer", None)
        has_decoder = getattr(backend, "decoder", None) is not None
        for i, piece in zip(todo, tokenizer.convert_ids_to_tokens(todo)):
            if piece is None:
                cache[i] = False
                continue
            text = (tokenizer.convert_tokens_to_string([piece]) if has_decoder
                    else piece.removeprefix("##").lstrip("\u2581\u0120"))
            cache[i] = not text.strip()
    table = np.fromiter((cache[int(i)] for i in uniq), dtype=bool, count=len(uniq))
    return table[np.searchsorted(uniq, ids)] if len(ids) else np.zeros(0, dtype=bool)


def word_pieces(offsets: np.ndarray, carry: np.ndarray, starts: np.ndarray,
                 ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(token, word)`` pairs: token ``t`` (carrying characters) overlaps word ``w``'s span."""
    a, b = offsets[:, 0], offsets[:, 1]
    lo = np.searchsorted(ends, a, side="right")  # first word that ends after the piece starts
    hi = np.searchsorted(starts, b, side="left")  # words that start before the piece ends
    k = np.where(carry & (b > a), np.maximum(hi - lo, 0), 0)
    tok = np.repeat(np.arange(len(offsets)), k)
    word = lo[tok] + (np.arange(len(tok)) - np.repeat(np.cumsum(k) - k, k))
    keep = (ends > starts)[word] if len(word) else np.zeros(0, dtype=bool)
    return tok[keep], word[keep]


# ----------------------------------------------------------------------------- statistics
@dataclass
class EncodingStats:
    """Counts of one encoding run (over surface words). ``max_length`` is the window size."""

    sentences: int = 0
    words: int = 0
    windows: int = 0
    windowed: int = 0
    truncated_words: int = 0
    words_without_pieces: int = 0
    shared_piece_words: int = 0
    bare_marker_pieces: int = 0
    max_length: int = 0

    def __iadd__(self, other: EncodingStats) -> EncodingStats:
        for f in fields(self):
            if f.name == "max_length":
                self.max_length = max(self.max_length, other.max_length)
            else:
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        """One line for logs: windows, truncations and words without pieces."""
        return (f"{self.sentences} sentence(s), {self.words} word(s); {self.windowed} sentence(s) longer than "
                f"{self.max_length} positions split into windows ({self.windows} windows in all); "
                f"{self.truncated_words} word(s) truncated to one window; {self.words_without_pieces} word(s) "
                f"without pieces; {self.shared_piece_words} word(s) share a piece with a neighbour")


def report(stats: EncodingStats, where: str, file=None) -> None:
    """Print ``stats`` on stderr when a sentence was windowed, a word truncated or left
    without pieces (nothing is printed for inputs that fit)."""
    if stats.windowed or stats.truncated_words or stats.words_without_pieces:
        print(f"alignfreeze: {where}: {stats.summary()}", file=file or sys.stderr)
