"""Word features with tiny random models of each family (no download)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.arch import blocks, num_layers
from core.conllu import read_conllu
from core.encoding import encode_windows
from core.features import ShardedFeatures, WordFeatureExtractor, encode_words
from core.tiny import FAMILIES

SENTS = [
    ["The", "cat", "sleeps", "."],
    ["My", "sister", "reads", "a", "long", "book", "every", "evening", "."],
    ["Le", "médecin", "travaille", "dans", "un", "grand", "hôpital", "."],
    ["Wir", "gingen", "gestern", "zum", "alten", "Markt", "."],
]


def _hooked_layers(model, inputs):
    """Independent reference of the layers: input of block 1 and raw output of every block,
    read with plain forward hooks on the blocks."""
    got = {}
    blk = blocks(model)

    def pre(_m, args, kwargs):
        got[0] = (args[0] if args else kwargs["hidden_states"]).detach().clone()

    def post(i):
        def hook(_m, _a, out):
            got[i] = (out[0] if isinstance(out, tuple) else out).detach().clone()
        return hook

    handles = [blk[0].register_forward_pre_hook(pre, with_kwargs=True)]
    handles += [b.register_forward_hook(post(i)) for i, b in enumerate(blk, 1)]
    try:
        with torch.no_grad():
            model(**inputs)
    finally:
        for h in handles:
            h.remove()
    return got


def _manual(model, tok, words, layer, method="mean"):
    """Independent reference: one sentence as running text, the word's pieces found by a
    loop comparing each piece's character offsets with the word's span."""
    text = " ".join(words)
    enc = tok(text, return_offsets_mapping=True, return_tensors="pt")
    offsets = enc.pop("offset_mapping")[0].tolist()
    hs = _hooked_layers(model, {k: v for k, v in enc.items() if k in ("input_ids", "attention_mask")})[layer][0]
    out, pos = [], 0
    for w in words:
        a, b = pos, pos + len(w)
        pos = b + 1
        toks = [t for t, (x, y) in enumerate(offsets) if x < y and x < b and a < y]
        v = hs[toks]
        out.append({"mean": v.mean(0), "first": v[0], "last": v[-1], "sum": v.sum(0)}[method].numpy())
    return np.stack(out)


@pytest.mark.parametrize("family", ["bert", "xlm-roberta", "distilbert", "llama"])
def test_mean_pooling_matches_manual_and_is_padding_invariant(tiny_models, family):
    model, tok = tiny_models(family)
    ex = WordFeatureExtractor(model, tok, layers="all", pooling="mean", batch_size=4, progress=False)
    wf = ex.extract(SENTS)
    assert wf.layers == (0, 1, 2) and wf.n_words == sum(map(len, SENTS))
    assert wf.valid.all() and wf.stats["windowed"] == 0
    for s, words in enumerate(SENTS):  # batched with longer sentences == alone, by hand
        for layer in (0, 2):
            np.testing.assert_allclose(wf.sentence(s, layer), _manual(model, tok, words, layer), atol=2e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_features_at_every_layer_are_the_block_outputs(tiny_models, family):
    """Case 11: layer 0 = input of block 1, layer i = raw output of block i (decoders: before
    the final norm), for EVERY layer and family, through the features path, exactly."""
    model, tok = tiny_models(family)
    words = ["The", "cat", "sleeps", "on", "the", "chair"]
    L = num_layers(model)
    for method in ("first", "mean"):
        wf = WordFeatureExtractor(model, tok, layers="all", pooling=method, progress=False).extract([words])
        for layer in range(L + 1):
            ref = _manual(model, tok, words, layer, method)
            assert float(np.abs(wf.features[layer] - ref).max()) == 0.0, (family, method, layer)


def test_first_last_sum_relations(tiny_models):
    model, tok = tiny_models("bert")
    feats = {m: WordFeatureExtractor(model, tok, layers="last", pooling=m, progress=False).extract(SENTS)
             for m in ("first", "last", "mean", "sum")}
    enc = encode_words(tok, SENTS)
    counts = np.concatenate([np.bincount(r[r >= 0], minlength=len(s)) for r, s in zip(enc.word_index.numpy(), SENTS)])
    np.testing.assert_allclose(feats["sum"].features[2], feats["mean"].features[2] * counts[:, None], rtol=1e-5, atol=1e-5)
    single = counts == 1
    assert single.any() and (~single).any()
    np.testing.assert_allclose(feats["first"].features[2][single], feats["last"].features[2][single])
    assert not np.allclose(feats["first"].features[2][~single], feats["last"].features[2][~single])


def test_multiword_tokens_share_the_surface_token_vector(tiny_models, fixtures_dir):
    model, tok = tiny_models("xlm-roberta")
    sents = list(read_conllu(fixtures_dir / "fr_demo-ud-test.conllu"))
    wf = WordFeatureExtractor(model, tok, layers="1", pooling="first", progress=False).extract(sents)
    assert wf.n_words == sum(len(s.words) for s in sents)
    s = 2  # "Nous avons marché au vieux marché hier ." with au = à + le (words 4, 5)
    assert sents[s].forms[3:5] == ["à", "le"]
    v = wf.sentence(s, 1)
    np.testing.assert_array_equal(v[3], v[4])
    assert not np.allclose(v[2], v[3])
    # the token sequence the model saw is the surface one
    alone = WordFeatureExtractor(model, tok, layers="1", progress=False).extract([sents[s].tokens])
    np.testing.assert_allclose(alone.features[1][3], v[3], atol=1e-5)


def test_long_sentences_are_windowed_not_truncated(tiny_models):
    model, tok = tiny_models("bert")
    long = ["cat", "sleeps", "on", "the", "warm", "chair"] * 6
    ex = WordFeatureExtractor(model, tok, layers="all", max_length=12, batch_size=2, progress=False)
    wins = [(w.start, w.end) for w in encode_windows(tok, [long], 12)]
    assert wins[0][0] == 0 and wins[-1][1] == len(long) and len(wins) > 2
    assert all(b == c for (_, b), (c, _) in zip(wins, wins[1:]))  # contiguous, no word twice
    assert all(len(tok(" ".join(long[a:b]))["input_ids"]) <= 12 for a, b in wins)
    wf = ex.extract([SENTS[0], long])
    assert wf.stats["windowed"] == 1 and wf.stats["windows"] == 1 + len(wins) and wf.valid.all()
    assert wf.sentence(1, 2).shape[0] == len(long)
    a, b = wins[1]
    ref = ex.extract([long[a:b]])
    np.testing.assert_allclose(wf.sentence(1, 2)[a:b], ref.features[2], atol=2e-5)


def test_word_without_tokens_is_flagged_not_leaked(tiny_models):
    model, tok = tiny_models("bert")
    wf = WordFeatureExtractor(model, tok, layers="last", progress=False).extract([["cat", "", "sleeps"]])
    assert wf.valid.tolist() == [True, False, True] and wf.stats["lost_words"] == 1
    assert not wf.features[2][1].any()


def test_stream_to_disk_matches_memory(tiny_models, tmp_path):
    model, tok = tiny_models("distilbert")
    ex = WordFeatureExtractor(model, tok, layers="0,2", pooling="first", batch_size=3, progress=False)
    mem = ex.extract(SENTS * 3)
    out = ex.extract_to_disk(iter(SENTS * 3), tmp_path / "f32", dtype="float32", chunk_sentences=5)
    assert len(out) == 3 and out.index["stats"]["words"] == mem.n_words
    back = ShardedFeatures(tmp_path / "f32").load()
    np.testing.assert_array_equal(back.offsets, mem.offsets)
    for layer in (0, 2):
        np.testing.assert_allclose(back.features[layer], mem.features[layer], atol=1e-6)
    half = ex.extract_to_disk(SENTS, tmp_path / "f16", chunk_sentences=2).load(layers=[2])
    assert half.features[2].dtype == np.float16 and half.layers == (2,)
    np.testing.assert_allclose(half.features[2].astype(np.float32), mem.features[2][: half.n_words], atol=2e-2)


def test_extract_to_disk_failure_keeps_previous_output(tiny_models, tmp_path):
    model, tok = tiny_models("bert")
    ex = WordFeatureExtractor(model, tok, layers="last", progress=False)
    ex.extract_to_disk(SENTS, tmp_path / "out")

    def broken():
        yield SENTS[0]
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        ex.extract_to_disk(broken(), tmp_path / "out", chunk_sentences=1)
    assert ShardedFeatures(tmp_path / "out").index["stats"]["sentences"] == len(SENTS)
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_bad_layers_and_inputs(tiny_models):
    model, tok = tiny_models("bert")
    with pytest.raises(ValueError, match=r"layer\(s\) \[3\] do not exist: this model has layers 0..2"):
        WordFeatureExtractor(model, tok, layers="0,3")
    with pytest.raises(ValueError, match="unknown pooling"):
        WordFeatureExtractor(model, tok, pooling="max", progress=False).extract(SENTS)
    with pytest.raises(TypeError, match="list of words"):
        WordFeatureExtractor(model, tok, progress=False).extract(["a plain string"])
    with pytest.raises(ValueError, match="no sentences"):
        WordFeatureExtractor(model, tok, progress=False).extract([])
