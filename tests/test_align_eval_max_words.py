"""align-eval --max-words selects the links before encoding: only the sentences those links
need are encoded, and the links are the ones encoding everything would have kept."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from analysis.alignment import LinkedPair, align_eval, linked_word_vectors


class Counting:
    """Word-determined vectors (hash-seeded); counts the sentences encoded; words listed in
    ``novec`` get no vector (as a word no token reaches)."""

    layers = (0, 2)

    def __init__(self, novec=()):
        self.encoded = 0
        self.novec = set(novec)

    def _vec(self, w):
        seed = int.from_bytes(hashlib.blake2b(w.encode(), digest_size=8).digest(), "big")
        return np.random.default_rng(seed).normal(size=8)

    def extract(self, sentences):
        from core.features import WordFeatures

        sentences = [list(s) for s in sentences]
        self.encoded += len(sentences)
        words = [w for s in sentences for w in s]
        base = np.stack([self._vec(w) for w in words])
        offsets = np.concatenate([[0], np.cumsum([len(s) for s in sentences])])
        valid = np.array([w not in self.novec for w in words])
        return WordFeatures(self.layers, {0: base, 2: base * 3 - 1}, offsets, valid, "first")


def _pairs(n=40, links=3):
    out = []
    for k in range(n):
        src = [f"s{k}_{i}" for i in range(links + 1)]
        tgt = [f"t{k}_{i}" for i in range(links + 1)]
        out.append(LinkedPair(str(k), src, tgt, [(i, (i + 1) % (links + 1)) for i in range(links)]))
    return out


def _reference(ex, pairs, max_words):
    """What align-eval did before: encode every pair, keep the first max_words usable links."""
    fs, ft = ex.extract([p.src for p in pairs]), ex.extract([p.tgt for p in pairs])
    si, ti = [], []
    for k, p in enumerate(pairs):
        for i, j in p.links:
            a, b = fs.offsets[k] + i, ft.offsets[k] + j
            if fs.valid[a] and ft.valid[b]:
                si.append(a)
                ti.append(b)
    si, ti = si[:max_words], ti[:max_words]
    return {lay: fs.features[lay][si] for lay in ex.layers}, {lay: ft.features[lay][ti] for lay in ex.layers}


@pytest.mark.parametrize("max_words", [1, 3, 4, 10, 30])
def test_only_the_needed_sentences_are_encoded(max_words):
    pairs = _pairs()
    ex = Counting()
    Xs, Xt = linked_word_vectors(ex, pairs, max_words)
    needed = -(-max_words // 3)  # pairs of 3 links each
    assert ex.encoded == 2 * needed  # both sides of those pairs, nothing more
    rs, rt = _reference(Counting(), pairs, max_words)
    for lay in ex.layers:
        np.testing.assert_array_equal(Xs[lay], rs[lay])
        np.testing.assert_array_equal(Xt[lay], rt[lay])
        assert len(Xs[lay]) == max_words


def test_words_without_vectors_pull_in_just_enough_further_pairs():
    pairs = _pairs()
    novec = {f"s{k}_0" for k in range(0, 40, 2)} | {"t3_2"}  # every other pair loses a link, pair 3 another
    ex = Counting(novec)
    Xs, Xt = linked_word_vectors(ex, pairs, 20)
    rs, rt = _reference(Counting(novec), pairs, 20)
    for lay in ex.layers:
        np.testing.assert_array_equal(Xs[lay], rs[lay])
        np.testing.assert_array_equal(Xt[lay], rt[lay])
    assert len(Xs[0]) == 20 and ex.encoded < 2 * len(pairs)
    # fewer usable links than asked: every pair is encoded once, every usable link kept
    ex = Counting(novec)
    Xs, _ = linked_word_vectors(ex, pairs, 10_000)
    assert ex.encoded == 2 * len(pairs) and len(Xs[0]) == len(_reference(Counting(novec), pairs, 10_000)[0][0])


def test_align_eval_rows_count_the_links_used_and_errors():
    ex = Counting()
    rows = align_eval(ex, linked_pairs=_pairs(), csls_k=2, max_words=7)
    assert {r["n"] for r in rows} == {7} and ex.encoded == 2 * 3
    with pytest.raises(ValueError, match="max_words=0"):
        linked_word_vectors(Counting(), _pairs(), 0)
    with pytest.raises(ValueError, match="no linked word has a representation"):
        linked_word_vectors(Counting({w for p in _pairs(2) for w in p.src}), _pairs(2), 5)
