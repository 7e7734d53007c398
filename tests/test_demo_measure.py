"""The demo's measurements: one extraction per model serves drift, CKA, probes and retrieval
with the extractor's own vectors; probe intervals over sentences; the paired change."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alignfreeze.pipeline_measure import FeatureCache, paired_change, probe_tables
from core.conllu import read_conllu
from core.features import WordFeatureExtractor
from core.parallel import read_parallel, token_surface


@pytest.fixture(scope="module")
def fr_sentences():
    from core import FIXTURES

    sents = list(read_conllu(FIXTURES / "fr_demo-ud-test.conllu"))
    assert any(len(s.tokens) != len(s.words) for s in sents)  # multiword tokens (du = de le) are in
    return sents


def test_cache_serves_the_extractors_vectors_for_sentences_tokens_and_parallel_sides(tiny_models, fr_sentences):
    from core import FIXTURES

    model, tok = tiny_models("bert")
    cache = FeatureCache(model, tok, fr_sentences)
    ex = WordFeatureExtractor(model, tok, layers="all", progress=False)
    want, got = ex.extract(fr_sentences), cache.extract(fr_sentences)
    assert np.array_equal(want.offsets, got.offsets) and np.array_equal(want.valid, got.valid)
    for layer in want.layers:
        np.testing.assert_allclose(got.features[layer], want.features[layer], rtol=1e-5, atol=1e-6)
    # the same sentence as surface tokens and as the side of a parallel pair: one entry, token vectors
    pairs = read_parallel(FIXTURES / "en_demo-ud-test.conllu", FIXTURES / "fr_demo-ud-test.conllu")
    tokens = cache.extract([p.tgt for p in pairs])
    direct = ex.extract([token_surface(s) for s in fr_sentences])
    np.testing.assert_allclose(tokens.features[2], direct.features[2], rtol=1e-5, atol=1e-6)
    assert len(cache) == len(fr_sentences)
    assert cache.layers == ex.layers
    with pytest.raises(KeyError, match="was not extracted"):
        cache.extract([["Un", "chat", "inconnu"]])


def test_probe_accuracy_interval_and_per_sentence_counts(tiny_models, fr_sentences):
    from core import FIXTURES
    from probing.linear import MultiLayerLinearProbe

    model, tok = tiny_models("bert")
    train = list(read_conllu(FIXTURES / "en_demo-ud-test.conllu"))
    cache = FeatureCache(model, tok, train + fr_sentences)
    probe, per_sent = probe_tables("m", cache, train, {"fr": fr_sentences}, {"fr": "fr.conllu"})
    # the same probe fitted by hand scores the same accuracy
    wt, wf = cache.extract(train), cache.extract(fr_sentences)
    y_t = np.asarray([u for s in train for u in s.upos])
    y_f = np.asarray([u for s in fr_sentences for u in s.upos])
    p = MultiLayerLinearProbe(1.0, backend="torch", solver="lbfgs", max_iter=100, random_state=0)
    p.fit([wt.features[layer] for layer in cache.layers], y_t)
    acc = p.score([wf.features[layer] for layer in cache.layers], y_f)
    np.testing.assert_allclose(probe.sort_values("layer")["value"], acc, atol=1e-12)
    assert (probe["n"] == len(y_f)).all() and (probe["n_sentences"] == len(fr_sentences)).all()
    assert (probe["ci_low"] < probe["value"]).all() and (probe["value"] < probe["ci_high"]).all()
    # per-sentence counts add up to the accuracy
    for layer, g in per_sent.groupby("layer"):
        assert g["correct"].sum() / g["words"].sum() == pytest.approx(probe.set_index("layer").loc[layer, "value"])
        assert list(g["words"]) == [len(s) for s in fr_sentences]


def test_paired_change_against_numpy():
    rng = np.random.default_rng(0)
    words = rng.integers(3, 12, size=40)
    base_c = rng.binomial(words, 0.7)
    arm_c = np.minimum(words, base_c + rng.integers(0, 2, size=40))  # the arm gains a little
    rows = [{"model": m, "lang": "fr", "layer": 3, "sent_id": f"s{i}", "correct": int(c[i]), "words": int(words[i])}
            for m, c in (("baseline", base_c), ("full", arm_c)) for i in range(40)]
    out = paired_change(pd.DataFrame(rows), "baseline")
    (r,) = out.to_dict("records")
    assert r["value"] == pytest.approx((arm_c.sum() - base_c.sum()) / words.sum())
    # the interval is the leave-one-sentence-out jackknife (bias-corrected, Student t, 39 df)
    diff = (arm_c - base_c).astype(float)
    loo = (diff.sum() - diff) / (words.sum() - words)
    se = np.sqrt(39 / 40 * ((loo - loo.mean()) ** 2).sum())
    centre = r["value"] - 39 * (loo.mean() - r["value"])
    assert r["ci_low"] == pytest.approx(centre - 2.0226909 * se, abs=1e-7)
    assert r["ci_high"] == pytest.approx(centre + 2.0226909 * se, abs=1e-7)
    assert r["ci_low"] > 0  # every sentence gained or stayed: the interval cannot reach 0
    assert r["ci_low"] <= r["value"] <= r["ci_high"] and r["n"] == words.sum() and r["n_sentences"] == 40
    # an arm equal to the baseline has a zero change and a zero-width interval
    same = pd.DataFrame(rows[:40] + [{**x, "model": "front"} for x in rows[:40]])
    (z,) = paired_change(same, "baseline").to_dict("records")
    assert z["value"] == 0 and z["ci_low"] == 0 and z["ci_high"] == 0
    bad = pd.DataFrame(rows[:40] + [{**x, "model": "full", "words": x["words"] + 1} for x in rows[:40]])
    with pytest.raises(ValueError, match="scored different words"):
        paired_change(bad, "baseline")
