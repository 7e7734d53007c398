"""Word pairs from sentence-aligned text: extraction, JSONL reading and writing.

One record per sentence pair (one JSON object per line, the format of :mod:`core.wordpairs`)::

    {"id": "n01001011", "src": ["The", "cat", "."], "tgt": ["Le", "chat", "."], "links": [[0, 0], [1, 1]],
     "src_text": "The cat.", "tgt_text": "Le chat."}

``links`` are 0-based ``[source word, target word]`` indices; ``src_text``/``tgt_text`` are
the running texts of the parallel input (what realignment and ``align-eval`` tokenise).
The word aligners see the words: CoNLL-U surface tokens, or the whitespace-separated parts
of a plain-text / TSV line (:mod:`core.parallel`). Every aligner's output is
post-processed the same way: only one-to-one links are kept (a word with two or more
links loses all of them) and links between identical strings (compared
case-insensitively: numbers, names, punctuation) are dropped.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from core.parallel import ParallelPair
from core.wordpairs import WordPairs, pair_record, read_pairs, side, write_pairs  # noqa: F401  (re-exported)

from .aligners import (
    ALIGNERS,
    EFLOMAL_MAX_WORDS,
    dictionary_links,
    eflomal_links,
    read_dictionary,
    similarity_links,
)


def one_to_one(links: Iterable[tuple[int, int]], src: Sequence[str], tgt: Sequence[str]) -> list[list[int]]:
    """Keep links whose two words have exactly one link each and differ as strings."""
    links = set(links)
    ci = Counter(i for i, _ in links)
    cj = Counter(j for _, j in links)
    return [[i, j] for i, j in sorted(links)
            if ci[i] == 1 and cj[j] == 1 and src[i].casefold() != tgt[j].casefold()]


def summarize(records: Sequence[WordPairs], sides: Sequence[tuple[Sequence[str], Sequence[str]]], aligner: str,
              not_aligned: Sequence[str] = ()) -> dict:
    """Counts over EVERY sentence pair read (``sides``), not only the pairs kept.

    ``links_per_sentence`` = links / pairs read; ``src_coverage`` (``tgt_coverage``) = links /
    source (target) words of all pairs read, i.e. the share of words with a link. A pair the
    aligner could not align (``not_aligned``, its ids) or that kept no link counts with zero
    links; ``pairs_not_aligned`` and ``pairs_without_links`` say how many there were.
    """
    n_links = sum(len(r["links"]) for r in records)
    n_src = sum(len(s) for s, _ in sides)
    n_tgt = sum(len(t) for _, t in sides)
    return {
        "aligner": aligner,
        "sentence_pairs": len(sides),
        "pairs_kept": len(records),
        "pairs_not_aligned": len(not_aligned),
        "pairs_without_links": len(sides) - len(records) - len(not_aligned),
        "links": n_links,
        "links_per_sentence": n_links / len(sides) if sides else 0.0,
        "src_coverage": n_links / n_src if n_src else 0.0,
        "tgt_coverage": n_links / n_tgt if n_tgt else 0.0,
    }


def _not_aligned_message(aligner: str, ids: Sequence[str], n: int) -> str:
    why = (f"a side longer than {EFLOMAL_MAX_WORDS} words, eflomal's limit" if aligner == "eflomal"
           else "a side where no word has a vector (no token reached it)")
    shown = ", ".join(ids[:5]) + (", ..." if len(ids) > 5 else "")
    return (f"{len(ids)} of {n} sentence pairs not aligned by {aligner} ({why}): id {shown}; "
            "they are left out of the output and count as pairs without links in the coverage")


def extract_pairs(
    parallel_pairs: Sequence,
    aligner: str,
    dictionary: str | Path | dict[str, set[str]] | None = None,
    model=None,
    tokenizer=None,
    layer: int = 8,
    *,
    pooling: str = "first",
    threshold: float = 1e-3,
    progress: bool = True,
    langs: tuple[str, str] | None = None,
) -> tuple[list[WordPairs], dict]:
    """Word links for parallel sentences.

    Args:
        parallel_pairs: :class:`core.parallel.ParallelPair` objects, e.g. from
            :func:`core.parallel.read_parallel` (each side a :class:`core.encoding.Surface`:
            words and running text; the similarity aligner reads the running text, the
            records keep it as ``src_text``/``tgt_text``).
        aligner: ``dictionary`` (needs ``dictionary``: a MUSE file or a loaded dict),
            ``eflomal`` (forward + reverse, grow-diag-final-and), or ``similarity`` (needs
            ``model`` and ``tokenizer``; ``layer`` 0..L, ``pooling``, ``threshold``).
        langs: the (source, target) language codes, written into every record
            (:func:`core.names.parallel_langs` reads them from the input's file names).

    Returns:
        ``(records, summary)``: only sentence pairs with at least one link are kept; the
        summary counts every pair read (see :func:`summarize`). Pairs the aligner cannot
        align (eflomal: a side over :data:`realign.aligners.EFLOMAL_MAX_WORDS` words) are
        counted, listed in ``summary["warnings"]`` and reported on stderr. No link at all
        is a ``ValueError``.
    """
    if aligner not in ALIGNERS:
        raise ValueError(f"unknown aligner {aligner!r}: expected one of {', '.join(ALIGNERS)}")
    pairs = [p if isinstance(p, ParallelPair) else ParallelPair(p.id, p.src, p.tgt) for p in parallel_pairs]
    if not pairs:
        raise ValueError("extract_pairs: no sentence pairs given")
    sides = [(p.src.words, p.tgt.words) for p in pairs]
    if aligner == "dictionary":
        if dictionary is None:
            raise ValueError("the dictionary aligner needs a bilingual dictionary (--dictionary FILE, MUSE format)")
        d = dictionary if isinstance(dictionary, dict) else read_dictionary(dictionary)
        raw = [dictionary_links(s, t, d) for s, t in sides]
    elif aligner == "eflomal":
        raw = eflomal_links(sides)
    else:
        if model is None or tokenizer is None:
            raise ValueError("the similarity aligner needs a model and its tokenizer (--model M --layer K)")
        raw = similarity_links([(p.src, p.tgt) for p in pairs], model, tokenizer, layer=layer, pooling=pooling,
                               threshold=threshold, progress=progress)
    records: list[WordPairs] = []
    not_aligned: list[str] = []
    for p, (s, t), links in zip(pairs, sides, raw):
        if links is None:
            not_aligned.append(str(p.id))
            continue
        kept = one_to_one(links, s, t)
        if kept:
            records.append(pair_record(p.id, p.src, p.tgt, kept, langs))
    warnings = [_not_aligned_message(aligner, not_aligned, len(pairs))] if not_aligned else []
    for w in warnings:
        print(f"alignfreeze pairs: warning: {w}", file=sys.stderr, flush=True)
    if not records:
        raise ValueError(f"the {aligner} aligner found no usable one-to-one links in {len(pairs)} sentence pairs "
                         "(check the language direction of the dictionary and the input files)"
                         + (f"; {warnings[0]}" if warnings else ""))
    return records, {**summarize(records, sides, aligner, not_aligned), "warnings": warnings}
