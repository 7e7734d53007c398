"""Word aligners for sentence-aligned text: dictionary, eflomal, contextual similarity.

Each aligner returns, per sentence pair, a set of ``(i, j)`` links (source word ``i``,
target word ``j``, 0-based), or ``None`` for a pair the aligner cannot align at all (eflomal:
a side longer than :data:`EFLOMAL_MAX_WORDS`; similarity: a side where no word reaches a
vector), so that the caller counts and reports it instead of mistaking it for a pair without
translations. The common post-processing (one-to-one links only, no identical strings) is
applied by :func:`realign.pairs.extract_pairs`.
"""

from __future__ import annotations

import re
import tempfile
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from core.textlines import read_lines

if TYPE_CHECKING:  # annotations only: importing core.encoding imports torch, and `pairs` reads its data first
    from core.encoding import SentenceLike

Link = tuple[int, int]
ALIGNERS = ("dictionary", "eflomal", "similarity")
EFLOMAL_MAX_WORDS = 1023
"""eflomal (2.0) gives no link at all to a pair with a side of 1,024 tokens or more, in either
direction; tests/test_pairs.py checks this limit against the installed package."""


# ----------------------------------------------------------------------------- dictionary

def read_dictionary(path: str | Path) -> dict[str, set[str]]:
    """A MUSE bilingual dictionary (``src<space or tab>tgt`` per line), lower-cased.

    Bad lines are a ``ValueError`` naming ``file:line``; an empty file too.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such dictionary file")
    out: dict[str, set[str]] = defaultdict(set)
    for n, line in read_lines(path):  # BOM, CRLF, non-UTF-8 named by line and byte offset
        cols = line.split()
        if not cols:
            continue
        if len(cols) != 2:
            raise ValueError(f"{path}:{n}: expected 'source target' (two words separated by a space or tab), "
                             f"found {len(cols)} field(s)")
        out[cols[0].lower()].add(cols[1].lower())
    if not out:
        raise ValueError(f"{path}: the dictionary has no entries")
    return dict(out)


def dictionary_links(src: Sequence[str], tgt: Sequence[str], dictionary: dict[str, set[str]]) -> set[Link]:
    """The reference's unambiguous-match rule (words compared lower-cased).

    A link ``(i, j)`` is kept when ``tgt[j]`` is a dictionary translation of ``src[i]``,
    ``src[i]`` occurs once in the source sentence, ``tgt[j]`` occurs once in the target
    sentence, and the match is unique both ways: ``i`` matches no other target word and
    ``j`` no other source word.
    """
    s = [w.lower() for w in src]
    t = [w.lower() for w in tgt]
    cs, ct = Counter(s), Counter(t)
    cand = [(i, j) for i, a in enumerate(s) if a in dictionary for j, b in enumerate(t) if b in dictionary[a]]
    per_i = Counter(i for i, _ in cand)
    per_j = Counter(j for _, j in cand)
    return {(i, j) for i, j in cand if cs[s[i]] == 1 and ct[t[j]] == 1 and per_i[i] == 1 and per_j[j] == 1}


# ----------------------------------------------------------------------------- eflomal

_NEIGHBOURS = ((-1, 0), (0, -1), (1, 0), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1))


def grow_diag_final_and(forward: set[Link], reverse: set[Link]) -> set[Link]:
    """Symmetrise two directional alignments (Koehn et al.'s grow-diag-final-and).

    Start from the intersection; repeatedly add union links that neighbour (incl.
    diagonally) a current link and cover a word not aligned yet on at least one side;
    finally add, from each direction in turn, links whose two words are BOTH unaligned.
    Both inputs are ``(source, target)`` index pairs.
    """
    union = forward | reverse
    align = set(forward & reverse)
    src_done = {i for i, _ in align}
    tgt_done = {j for _, j in align}
    grown = True
    while grown:
        grown = False
        for i, j in sorted(align):
            for di, dj in _NEIGHBOURS:
                cand = (i + di, j + dj)
                if cand in union and cand not in align and (cand[0] not in src_done or cand[1] not in tgt_done):
                    align.add(cand)
                    src_done.add(cand[0])
                    tgt_done.add(cand[1])
                    grown = True
    for direction in (forward, reverse):
        for i, j in sorted(direction):
            if i not in src_done and j not in tgt_done:
                align.add((i, j))
                src_done.add(i)
                tgt_done.add(j)
    return align


def _parse_links(line: str, n_src: int, n_tgt: int, where: str) -> set[Link]:
    links = set()
    for item in line.split():
        a, b = item.split("-")
        i, j = int(a), int(b)
        if not (0 <= i < n_src and 0 <= j < n_tgt):
            raise RuntimeError(f"{where}: link {item} out of range ({n_src} x {n_tgt} words)")
        links.add((i, j))
    return links


def eflomal_links(pairs: Sequence[tuple[Sequence[str], Sequence[str]]], **aligner_kwargs) -> list[set[Link] | None]:
    """Align with the ``eflomal`` package in both directions, symmetrised with gdfa.

    Words are lower-cased for the statistics (no whitespace inside a word reaches the
    aligner). ``aligner_kwargs`` go to ``eflomal.Aligner`` (e.g. ``n_iterations``).
    A pair with a side longer than :data:`EFLOMAL_MAX_WORDS` words is not given to eflomal
    (it would silently get no link): ``None`` for it. It is not split into chunks either:
    nothing says where the chunks of the two sides correspond.
    """
    try:
        import eflomal
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("the eflomal aligner needs the 'eflomal' package (pip install 'alignfreeze[aligners]')") from e

    def line(words):
        return " ".join(re.sub(r"\s", "_", w.lower()) for w in words) + "\n"

    fits = [k for k, (s, t) in enumerate(pairs) if max(len(s), len(t)) <= EFLOMAL_MAX_WORDS]
    out: list[set[Link] | None] = [None] * len(pairs)
    if not fits:
        return out
    sub = [pairs[k] for k in fits]
    src = [line(s) for s, _ in sub]
    tgt = [line(t) for _, t in sub]
    with tempfile.TemporaryDirectory(prefix="alignfreeze-eflomal-") as d:
        fwd, rev = Path(d) / "fwd", Path(d) / "rev"
        eflomal.Aligner(**aligner_kwargs).align(src, tgt, links_filename_fwd=str(fwd),
                                                links_filename_rev=str(rev), quiet=True)
        f_lines = fwd.read_text().splitlines()
        r_lines = rev.read_text().splitlines()
    if len(f_lines) != len(sub) or len(r_lines) != len(sub):
        raise RuntimeError(f"eflomal returned {len(f_lines)}/{len(r_lines)} alignments for {len(sub)} sentence pairs")
    for k, (s, t), fl, rl in zip(fits, sub, f_lines, r_lines):
        where = f"eflomal output, sentence pair {k + 1}"
        out[k] = grow_diag_final_and(_parse_links(fl, len(s), len(t), where),
                                     _parse_links(rl, len(s), len(t), where))
    return out


# ----------------------------------------------------------------------------- similarity

def similarity_links_from_vectors(src_vecs: np.ndarray, tgt_vecs: np.ndarray, threshold: float = 1e-3) -> set[Link]:
    """awesome-align/SimAlign-style links from word vectors of one sentence pair.

    ``S = src_vecs @ tgt_vecs.T``; ``P_st = softmax(S, rows)``, ``P_ts = softmax(S, cols)``.
    ``(i, j)`` is a link when ``j`` is the argmax of row ``i``, ``i`` the argmax of column
    ``j`` (intersection of both directions, hence one-to-one) and both probabilities
    exceed ``threshold``. Rows that are all NaN (words without tokens) never link.
    """
    if len(src_vecs) == 0 or len(tgt_vecs) == 0:
        return set()
    S = src_vecs.astype(np.float64) @ tgt_vecs.astype(np.float64).T

    def softmax(x, axis):
        x = x - x.max(axis=axis, keepdims=True)
        e = np.exp(x)
        return e / e.sum(axis=axis, keepdims=True)

    p_st, p_ts = softmax(S, 1), softmax(S, 0)
    best_j, best_i = S.argmax(1), S.argmax(0)
    links = set()
    for i, j in enumerate(best_j):
        if best_i[j] == i and p_st[i, j] > threshold and p_ts[i, j] > threshold:
            links.add((i, int(j)))
    return links


def similarity_links(pairs: Sequence[tuple[SentenceLike, SentenceLike]], model, tokenizer, layer: int = 8,
                     pooling: str = "first", threshold: float = 1e-3, batch_size: int = 32,
                     progress: bool = True) -> list[set[Link] | None]:
    """Contextual-embedding links at ``layer`` (0 = embeddings) of ``model``.

    Each side is a :class:`core.encoding.Surface` (words and running text, as
    :func:`core.parallel.read_parallel` gives them) or a list of words (joined by single
    spaces). Word vectors come from :class:`core.features.WordFeatureExtractor` (the model
    reads the running text; one pooling function); see :func:`similarity_links_from_vectors`
    for the rule. ``None`` for a pair with a side where no word has a vector (no token of
    the tokenizer reached it).
    """
    from core.features import WordFeatureExtractor

    ex = WordFeatureExtractor(model, tokenizer, layers=[layer], pooling=pooling, batch_size=batch_size,
                              progress=progress)
    fs = ex.extract([s for s, _ in pairs])
    ft = ex.extract([t for _, t in pairs])
    out = []
    for k in range(len(pairs)):
        sv, tv = fs.sentence(k, layer), ft.sentence(k, layer)
        vs = fs.valid[fs.offsets[k]:fs.offsets[k + 1]]
        vt = ft.valid[ft.offsets[k]:ft.offsets[k + 1]]
        si, ti = np.nonzero(vs)[0], np.nonzero(vt)[0]
        if len(si) == 0 or len(ti) == 0:
            out.append(None)
            continue
        sub = similarity_links_from_vectors(sv[si], tv[ti], threshold)
        out.append({(int(si[i]), int(ti[j])) for i, j in sub})
    return out
