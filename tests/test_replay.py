"""core.replay: blocks below a changed layer are taken from a recording, bit for bit, and
are really not computed; a replay that does not match its recording is an error."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from core.features import WordFeatureExtractor
from core.replay import ReplayError, record_blocks, replay_blocks
from realign.revert import reverted

FAMILIES = ("bert", "xlm-roberta", "distilbert", "gpt2", "llama", "qwen2")


def _sentences():
    from core import FIXTURES
    from core.conllu import read_conllu

    return list(read_conllu(FIXTURES / "fr_demo-ud-test.conllu"))


def _pair(family):
    from core.tiny import tiny_model

    base, tok = tiny_model(family, layers=4)
    model = copy.deepcopy(base)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    return model, base, tok


@pytest.mark.parametrize("family", FAMILIES)
def test_replayed_features_are_the_computed_ones(family):
    model, base, tok = _pair(family)
    sents = _sentences()
    ex = WordFeatureExtractor(model, tok, layers="all", batch_size=5, progress=False)
    with record_blocks(model) as rec:
        realigned = ex.extract(sents)
    assert len(rec) == 3  # 12 sentences, batches of 5
    for b in (2, 3, 4):
        with reverted(model, base, [b]):
            plain = ex.extract(sents)
            with replay_blocks(model, rec, b - 1):
                fast = ex.extract(sents)
        for lay in plain.layers:
            assert np.array_equal(plain.features[lay], fast.features[lay]), (family, b, lay)
        # below the reverted block nothing changed; from it upward something did
        assert all(np.array_equal(plain.features[lay], realigned.features[lay]) for lay in range(b))
        assert not np.array_equal(plain.features[b], realigned.features[b])


def test_replayed_blocks_are_not_computed():
    """Blocks 1..2 get NaN weights: a replay that computed them would give NaN features."""
    model, base, tok = _pair("bert")
    sents = _sentences()
    ex = WordFeatureExtractor(model, tok, layers="all", batch_size=4, progress=False)
    with record_blocks(model) as rec:
        ex.extract(sents)
    with reverted(model, base, [3]):
        plain = ex.extract(sents)
        poisoned = copy.deepcopy(model.encoder.layer[:2].state_dict())
        with torch.no_grad():
            for p in model.encoder.layer[:2].parameters():
                p.fill_(float("nan"))
        with replay_blocks(model, rec, 2):
            fast = ex.extract(sents)
        model.encoder.layer[:2].load_state_dict(poisoned)
    assert all(np.array_equal(plain.features[lay], fast.features[lay]) for lay in plain.layers)
    assert "forward" not in model.encoder.layer[0].__dict__  # the blocks are themselves again


def test_a_replay_that_does_not_match_its_recording_is_an_error():
    model, base, tok = _pair("bert")
    sents = _sentences()
    ex = WordFeatureExtractor(model, tok, layers="all", batch_size=4, progress=False)
    with record_blocks(model, depth=2) as rec:
        ex.extract(sents[:4])
    with pytest.raises(ReplayError, match="no recorded output"), replay_blocks(model, rec, 2):
        ex.extract(sents[4:8])  # another batch
    with pytest.raises(ReplayError, match="input of block 1 differs"), reverted(model, base, [0]), \
            replay_blocks(model, rec, 1):
        ex.extract(sents[:4])  # the embeddings changed: block 1's recorded output is not valid
    with pytest.raises(ValueError, match="only blocks 1..2 were recorded"), replay_blocks(model, rec, 3):
        pass
    # after the errors the model computes normally again
    with record_blocks(model, depth=0):
        again = ex.extract(sents[:4])
    assert np.isfinite(again.features[4]).all() and "forward" not in model.encoder.layer[0].__dict__


def test_a_batch_is_its_ids_and_its_mask():
    """The same token ids under another attention mask are another batch (other block
    outputs): never answered from the recording."""
    model, base, tok = _pair("bert")
    enc = tok(["le chat dort ici", "il pleut"], return_tensors="pt", padding=True)
    with torch.no_grad(), record_blocks(model, depth=2) as rec:
        model(**enc)
    other = enc["attention_mask"].clone()
    other[0, 1] = 0
    with torch.no_grad(), reverted(model, base, [3]), replay_blocks(model, rec, 2):
        model(**enc)  # the recorded batch replays
        with pytest.raises(ReplayError, match="no recorded output"):
            model(input_ids=enc["input_ids"], attention_mask=other, token_type_ids=enc.get("token_type_ids"))
