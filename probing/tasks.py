"""Token-level probing data: word features + labels of a CoNLL-U treebank.

Tokens are *syntactic words* (labels per CoNLL-U word line); the features of a word are
those of the surface token that carries it (:class:`core.features.WordFeatureExtractor`,
one pooling function). Words that no sub-word reached (``valid`` False, rare) are dropped
and counted in ``TokenData.lost``.

A treebank whose words the tokenizer does not know (more than ``max_unknown`` of the words
become only the unknown token: a script or language outside the model's vocabulary) is an
error naming the file: a probe on such features measures nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.conllu import Sentence, read_treebank, treebank_lang
from core.encoding import unknown_words
from core.features import WordFeatureExtractor

TOKEN_TASKS = ("upos",)


def unknown_word_rate(tokenizer, sentences: Sequence[Sentence | Sequence[str]]) -> tuple[float, int]:
    """Fraction of words whose pieces are *all* the tokenizer's unknown token, and the
    number of words checked. Words are tokenised as the features are (running text,
    :mod:`core.encoding`). Tokenizers without an unknown token (byte-level) give 0."""
    sents = [s for s in sentences if len(s)]
    unk = unknown_words(tokenizer, sents)
    n_words = sum(len(u) for u in unk)
    return int(sum(u.sum() for u in unk)) / max(n_words, 1), n_words


def check_vocabulary(tokenizer, sentences: Sequence[Sentence | Sequence[str]], source: str,
                     max_unknown: float = 0.9) -> float:
    """Raise ``ValueError`` naming ``source`` when more than ``max_unknown`` of its words are
    unknown to ``tokenizer``; return the unknown rate otherwise."""
    rate, n = unknown_word_rate(tokenizer, sentences)
    if rate > max_unknown:
        raise ValueError(
            f"{source}: {rate:.0%} of {n} words are only the unknown token "
            f"{getattr(tokenizer, 'unk_token', None)!r} for this model's tokenizer "
            f"(limit {max_unknown:.0%}): the treebank's language/script is not covered by the model"
        )
    return rate


@dataclass
class TokenData:
    """Word features and labels of one treebank.

    ``features[layer]`` is ``(N, D)`` over valid words; ``labels``, ``words`` (surface
    forms, for control tasks) and ``sentence`` (sentence number of each word) are ``(N,)``.
    """

    path: str
    lang: str
    layers: tuple[int, ...]
    features: dict[int, np.ndarray]
    labels: np.ndarray
    words: np.ndarray
    sentence: np.ndarray
    n_sentences: int
    lost: int
    unknown_rate: float
    encoding: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.labels)

    def stack(self, rows: np.ndarray | slice | None = None) -> list[np.ndarray]:
        """Per-layer ``(n, D)`` views/copies for ``rows`` (all words by default)."""
        sel = slice(None) if rows is None else rows
        return [self.features[layer][sel] for layer in self.layers]

    def sentence_rows(self, sentence_ids: np.ndarray) -> np.ndarray:
        """Word rows belonging to the given sentence numbers."""
        return np.flatnonzero(np.isin(self.sentence, sentence_ids))



def load_token_task(extractor: WordFeatureExtractor, path: str | Path, task: str = "upos", *,
                    max_sentences: int | None = None, max_unknown: float = 0.9) -> TokenData:
    """Features of ``extractor`` at its layers and ``task`` labels for one treebank."""
    if task not in TOKEN_TASKS:
        raise ValueError(f"unknown token task {task!r}: expected one of {', '.join(TOKEN_TASKS)}")
    sents = read_treebank(path, max_sentences)
    rate = check_vocabulary(extractor.tokenizer, sents, str(path), max_unknown)
    wf = extractor.extract(sents)
    labels = np.asarray([t for s in sents for t in s.upos])
    words = np.asarray([f for s in sents for f in s.forms])
    sent_no = np.repeat(np.arange(len(sents)), [len(s) for s in sents])
    if len(labels) != wf.n_words:  # the extractor works on syntactic words too: a bug if not
        raise RuntimeError(f"{path}: {wf.n_words} word features for {len(labels)} labelled words")
    keep = wf.valid
    lost = int((~keep).sum())
    feats = {layer: wf.features[layer] if lost == 0 else wf.features[layer][keep] for layer in wf.layers}
    return TokenData(str(path), treebank_lang(path), tuple(wf.layers), feats, labels[keep], words[keep],
                     sent_no[keep], len(sents), lost, rate, dict(wf.stats))
