"""Sentence vectors, translation matching, the pair probe and the XNLI code path."""

from __future__ import annotations

import numpy as np
import pytest

from core.features import WordFeatures
from probing.semantic import (
    HubUnavailable,
    derangement,
    load_xnli,
    retrieval_accuracy,
    sentence_vectors,
    translation_pair_probe,
    xnli_probe,
)


def test_sentence_vectors_average_valid_words_only():
    feats = np.arange(12, dtype=np.float32).reshape(6, 2)
    wf = WordFeatures((0, 3), {0: feats, 3: -feats}, np.array([0, 2, 6]),
                      np.array([True, True, True, False, True, True]), "first")
    v = sentence_vectors(wf)
    assert v.shape == (2, 2, 2)
    np.testing.assert_allclose(v[0, 0], feats[0:2].mean(0))
    np.testing.assert_allclose(v[0, 1], feats[[2, 4, 5]].mean(0))  # word 3 is invalid
    np.testing.assert_allclose(v[1], -v[0])


def test_identical_vectors_match_perfectly_and_a_shuffle_does_not():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 50, 16)).astype(np.float32)
    fwd, bwd = retrieval_accuracy(x, x.copy())
    np.testing.assert_array_equal(fwd, 1.0)
    np.testing.assert_array_equal(bwd, 1.0)
    perm = derangement(50, rng)
    fwd, bwd = retrieval_accuracy(x, x[:, perm])
    np.testing.assert_array_equal(fwd, 0.0)
    fwd_c, _ = retrieval_accuracy(x, x.copy(), center=True, chunk=7)  # chunking changes nothing
    np.testing.assert_array_equal(fwd_c, 1.0)


def test_centering_removes_a_language_offset():
    rng = np.random.default_rng(1)
    meaning = rng.normal(size=(1, 40, 8))
    src = meaning + 0.1 * rng.normal(size=(1, 40, 8)) + 20.0  # a huge shared "language" direction
    tgt = meaning + 0.1 * rng.normal(size=(1, 40, 8)) - 20.0
    plain, _ = retrieval_accuracy(src, tgt)
    centred, _ = retrieval_accuracy(src, tgt, center=True)
    assert centred[0] > 0.9 and centred[0] > plain[0]


def test_retrieval_shape_errors():
    with pytest.raises(ValueError, match="must both be"):
        retrieval_accuracy(np.zeros((2, 3, 4)), np.zeros((2, 4, 4)))


def test_derangement_has_no_fixed_point():
    rng = np.random.default_rng(2)
    for n in (2, 3, 10):
        p = derangement(n, rng)
        assert sorted(p) == list(range(n)) and not (p == np.arange(n)).any()


def test_pair_probe_separates_translations_from_mismatches():
    rng = np.random.default_rng(3)
    meaning = rng.normal(size=(1, 120, 10)).astype(np.float32)
    src = np.concatenate([meaning, rng.normal(size=(1, 120, 10))]).astype(np.float32)  # layer 1: no relation
    tgt = np.concatenate([meaning + 0.1 * rng.normal(size=(1, 120, 10)),
                          rng.normal(size=(1, 120, 10))]).astype(np.float32)
    acc = translation_pair_probe(src, tgt, seed=0)
    assert acc.shape == (2,)
    assert acc[0] > 0.9
    assert acc[1] < 0.7


def test_xnli_is_unavailable_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubUnavailable, match="switched off"):
        load_xnli("fr")
    with pytest.raises(ValueError, match="no language"):
        load_xnli("xx")


def test_xnli_probe_code_path_on_given_rows(tiny_models):
    from core.features import WordFeatureExtractor

    model, tok = tiny_models("bert")
    ex = WordFeatureExtractor(model, tok, progress=False)
    rows = [{"premise": "The cat sleeps on the chair .", "hypothesis": h, "label": lab}
            for h, lab in [("The cat sleeps .", 0), ("A dog reads .", 1), ("The cat is awake .", 2)] * 4]
    out = xnli_probe(ex, rows, {"en": rows[:6], "fr": [{"premise": "Le chat dort .", "hypothesis": "Le chat dort .",
                                                        "label": 0}]})
    assert set(out) == {"en", "fr"}
    assert out["en"].shape == (3,) and ((0 <= out["en"]) & (out["en"] <= 1)).all()
    assert out["en"].max() == 1.0  # the training rows themselves are memorised
