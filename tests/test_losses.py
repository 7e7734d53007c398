"""Loss values on hand-made inputs, computed independently with numpy loops."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from core.features import WordFeatureExtractor
from realign.losses import (
    l2_alignment,
    realignment_loss,
    sentence_infonce,
    weight_regularisation,
    word_infonce,
)


def _cos(a, b):
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def ref_word_infonce(src, tgt, tau, negatives, src_extra=(), tgt_extra=()):
    """The definition, one anchor at a time."""
    n = len(src)
    cands = [(v, "s") for v in src] + [(v, "t") for v in tgt] + [(v, "s") for v in src_extra] + \
            [(v, "t") for v in tgt_extra]
    losses = []
    for a in range(2 * n):
        vec, lang = cands[a]
        pos = a + n if a < n else a - n
        denom = 0.0
        for c, (cv, clang) in enumerate(cands):
            if c == a or (negatives == "weak" and clang == lang):
                continue
            denom += np.exp(_cos(vec, cv) / tau)
        losses.append(-(_cos(vec, cands[pos][0]) / tau - np.log(denom)))
    return float(np.mean(losses))


SRC = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
TGT = np.array([[0.9, 0.1], [0.2, 1.0], [1.0, 0.7]])


@pytest.mark.parametrize("negatives", ["strong", "weak"])
@pytest.mark.parametrize("tau", [0.1, 1.0])
def test_word_infonce_matches_definition(negatives, tau):
    got = word_infonce(torch.tensor(SRC), torch.tensor(TGT), tau, negatives)
    assert float(got) == pytest.approx(ref_word_infonce(SRC, TGT, tau, negatives), rel=1e-5)


def test_word_infonce_by_hand_two_orthogonal_pairs():
    # src0 = tgt0 = e1, src1 = tgt1 = e2, tau = 1. Strong: candidates of src0 are
    # src1 (cos 0), tgt0 (cos 1), tgt1 (cos 0) -> loss = -(1 - log(e + 2)).
    e = torch.eye(2)
    strong = float(word_infonce(e, e.clone(), 1.0, "strong"))
    assert strong == pytest.approx(np.log(np.e + 2) - 1, rel=1e-6)
    # weak: only tgt0, tgt1 -> -(1 - log(e + 1))
    weak = float(word_infonce(e, e.clone(), 1.0, "weak"))
    assert weak == pytest.approx(np.log(np.e + 1) - 1, rel=1e-6)
    assert weak < strong


def test_word_infonce_extra_candidates():
    se, te = np.array([[1.0, -1.0]]), np.array([[0.5, 0.5], [-1.0, 0.2]])
    for neg in ("strong", "weak"):
        got = word_infonce(torch.tensor(SRC), torch.tensor(TGT), 0.1, neg, torch.tensor(se), torch.tensor(te))
        assert float(got) == pytest.approx(ref_word_infonce(SRC, TGT, 0.1, neg, se, te), rel=1e-5)


def test_word_infonce_empty_and_bad_shapes():
    z = torch.zeros(0, 4, requires_grad=True)
    loss = word_infonce(z, z)
    assert float(loss.detach()) == 0.0
    loss.backward()
    with pytest.raises(ValueError, match="must both be"):
        word_infonce(torch.zeros(2, 3), torch.zeros(3, 3))
    with pytest.raises(ValueError, match="strong or weak"):
        word_infonce(torch.eye(2), torch.eye(2), negatives="medium")


def test_sentence_infonce_by_hand():
    s, t = SRC, TGT
    tau = 0.1
    sim = np.array([[_cos(a, b) / tau for b in t] for a in s])

    def ce(m):
        return float(np.mean([-(m[i, i] - np.log(np.exp(m[i]).sum())) for i in range(len(m))]))

    one = sentence_infonce(torch.tensor(s), torch.tensor(t), tau)
    assert float(one) == pytest.approx(ce(sim), rel=1e-5)
    both = sentence_infonce(torch.tensor(s), torch.tensor(t), tau, symmetric=True)
    assert float(both) == pytest.approx((ce(sim) + ce(sim.T)) / 2, rel=1e-5)
    tt = torch.tensor(t, requires_grad=True)
    ss = torch.tensor(s, requires_grad=True)
    sentence_infonce(ss, tt, tau, detach_target=True).backward()
    assert tt.grad is None and ss.grad is not None


def test_l2_and_regularisation():
    assert float(l2_alignment(torch.tensor(SRC), torch.tensor(TGT))) == pytest.approx(((SRC - TGT) ** 2).mean())
    lin = torch.nn.Linear(2, 1)
    init = {n: p.detach().clone() for n, p in lin.named_parameters()}
    assert float(weight_regularisation(lin, init).detach()) == 0.0
    with torch.no_grad():
        lin.weight += torch.tensor([[1.0, 2.0]])
    assert float(weight_regularisation(lin, init).detach()) == pytest.approx(5.0)
    assert float(weight_regularisation(lin, init, ["bias"]).detach()) == 0.0
    with pytest.raises(KeyError, match="nope"):
        weight_regularisation(lin, init, ["nope"])


def _cfg(**kw):
    base = dict(layers="last", loss="word_infonce", temperature=0.1, negatives="strong", candidates="all",
                pooling="first", max_length=96, reg_weight=0.0)
    base.update(kw)
    return SimpleNamespace(**base)


BATCH = [
    {"id": "1", "src": ["The", "cat", "sleeps", "."], "tgt": ["Le", "chat", "dort", "."], "links": [[1, 1], [2, 2]]},
    {"id": "2", "src": ["My", "sister", "reads"], "tgt": ["Ma", "sœur", "lit"], "links": [[1, 1], [2, 2], [0, 0]]},
]


@pytest.mark.parametrize("family", ["bert", "xlm-roberta", "gpt2"])
@pytest.mark.parametrize("candidates", ["all", "aligned"])
def test_realignment_loss_equals_loss_on_extracted_words(tiny_models, family, candidates):
    """The batched loss = word_infonce on words extracted one sentence at a time."""
    model, tok = tiny_models(family)
    model.eval()
    cfg = _cfg(candidates=candidates, layers="1,2")
    with torch.no_grad():
        loss, parts = realignment_loss(model, tok, BATCH, cfg)
    ex = WordFeatureExtractor(model, tok, layers="1,2", pooling="first", batch_size=1, progress=False)
    fs = ex.extract([r["src"] for r in BATCH])
    ft = ex.extract([r["tgt"] for r in BATCH])
    expected = 0.0
    for layer in (1, 2):
        s = np.stack([fs.sentence(b, layer)[i] for b, r in enumerate(BATCH) for i, _ in r["links"]])
        t = np.stack([ft.sentence(b, layer)[j] for b, r in enumerate(BATCH) for _, j in r["links"]])
        se = [fs.sentence(b, layer)[i] for b, r in enumerate(BATCH) for i in range(len(r["src"]))
              if i not in {a for a, _ in r["links"]}] if candidates == "all" else []
        te = [ft.sentence(b, layer)[j] for b, r in enumerate(BATCH) for j in range(len(r["tgt"]))
              if j not in {c for _, c in r["links"]}] if candidates == "all" else []
        val = ref_word_infonce(s, t, 0.1, "strong", se, te)
        assert parts[f"word_infonce@{layer}"] == pytest.approx(val, rel=1e-3, abs=1e-4)
        expected += val
    assert float(loss) == pytest.approx(expected, rel=1e-3)
    assert parts["links"] == 5


def test_realignment_loss_losses_and_reg(tiny_models):
    model = copy.deepcopy(tiny_models("distilbert")[0])
    tok = tiny_models("distilbert")[1]
    model.eval()
    init = {n: p.detach().clone() for n, p in model.named_parameters()}
    for loss_name in ("sentence_infonce", "l2"):
        loss, parts = realignment_loss(model, tok, BATCH, _cfg(loss=loss_name))
        assert f"{loss_name}@2" in parts and torch.isfinite(loss) and loss.requires_grad
    with torch.no_grad():
        model.transformer.layer[0].ffn.lin1.weight.add_(0.5)
    plain, _ = realignment_loss(model, tok, BATCH, _cfg())
    reg, parts = realignment_loss(model, tok, BATCH, _cfg(reg_weight=2.0), initial_state=init)
    n = model.transformer.layer[0].ffn.lin1.weight.numel()
    assert parts["reg"] == pytest.approx(0.25 * n, rel=1e-4)
    assert float(reg.detach()) == pytest.approx(float(plain.detach()) + 2.0 * 0.25 * n, rel=1e-4)


def test_long_sentences_are_windowed_and_every_link_is_used(tiny_models):
    """A sentence over max_length is split into windows (never truncated): every link is
    used and points at the word of the right window (reference: the extractor's windows)."""
    model, tok = tiny_models("bert")
    words = ["The", "cat", "sleeps", "on", "the", "warm", "chair", "."] * 4
    long = {"id": "x", "src": words, "tgt": words[::-1], "links": [[0, 31], [29, 2], [17, 14]]}
    with torch.no_grad():
        loss, parts = realignment_loss(model, tok, [long], _cfg(max_length=10, candidates="aligned"))
    assert parts["links"] == 3 and parts["windows"] > 4 and parts["truncated_words"] == 0
    ex = WordFeatureExtractor(model, tok, layers="last", max_length=10, progress=False)
    fs, ft = ex.extract([long["src"]]), ex.extract([long["tgt"]])
    assert fs.stats["windowed"] == 1 and fs.valid.all()
    ref = ref_word_infonce(fs.features[2][[0, 29, 17]], ft.features[2][[31, 2, 14]], 0.1, "strong")
    assert float(loss) == pytest.approx(ref, rel=1e-4)


@pytest.mark.parametrize("loss_name", ["word_infonce", "sentence_infonce"])
def test_the_configured_temperature_is_used_and_total_reported(tiny_models, loss_name):
    """Mutants that survived: the sentence loss called without the config's temperature, and
    the total missing from the parts the training log shows."""
    model, tok = tiny_models("bert")
    model.eval()
    with torch.no_grad():
        cold, parts = realignment_loss(model, tok, BATCH, _cfg(loss=loss_name, temperature=0.1))
        warm, _ = realignment_loss(model, tok, BATCH, _cfg(loss=loss_name, temperature=0.7))
    assert parts["total"] == pytest.approx(float(cold))
    assert abs(float(cold) - float(warm)) > 1e-3


def test_bad_layers(tiny_models):
    model, tok = tiny_models("bert")
    with pytest.raises(ValueError, match="0..2"):
        realignment_loss(model, tok, BATCH, _cfg(layers="5"))


def _graph(loss):
    """Every autograd node below ``loss``."""
    seen, todo = {}, [loss.grad_fn]
    while todo:
        f = todo.pop()
        if f is not None and id(f) not in seen:
            seen[id(f)] = f
            todo.extend(g for g, _ in f.next_functions)
    return list(seen.values())


@pytest.mark.parametrize("candidates", ["all", "aligned"])
def test_word_rows_are_gathered_by_indexing(tiny_models, candidates):
    """The linked (and candidate) word rows are gathered by advanced indexing: the same
    values and gradients as index_select, whose backward on CPU (a scatter_add_ into all
    the batch's words per call) cost +0.3 s of a 15 s e5-small step (bench_study_cost)."""
    model, tok = tiny_models("bert")
    model.eval()
    loss, parts = realignment_loss(model, tok, BATCH, _cfg(candidates=candidates))
    nodes = _graph(loss)
    word_selects = [f for f in nodes if type(f).__name__ == "IndexSelectBackward0"
                    and len(f._saved_self_sym_sizes) == 2]  # (N words, D): a gather of word rows
    assert word_selects == []
    gathers = [f for f in nodes if type(f).__name__ == "IndexBackward0" and len(f._saved_self_sym_sizes) == 2]
    assert len(gathers) == (4 if candidates == "all" else 2)  # src, tgt (+ the other words of each side)
    loss.backward()  # and the gradient reaches the model
    assert model.get_input_embeddings().weight.grad.abs().sum() > 0
