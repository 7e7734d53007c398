"""The alignment loss of middle-layer alignment against a numpy reference, and the guarantee
that the parallel inputs never run the blocks above K."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _midalign import tiny_lm

from core.arch import blocks, num_layers
from core.encoding import encode_texts
from core.sentences import sentence_states
from realign.losses import sentence_infonce
from realign.midalign.lora import add_lora
from realign.midalign.loss import alignment_loss

SRC = ["the cat sleeps", "a dog runs in the park", "we read a book", "the sun is hot today"]
TGT = ["die Katze schläft", "ein Hund läuft im Park", "wir lesen ein Buch", "die Sonne ist heute heiß"]


def np_infonce(s: np.ndarray, t: np.ndarray, tau: float, symmetric: bool = False) -> float:
    """Reference (REFERENCE.md): cosine / tau, cross-entropy choosing the translation."""
    s = s / np.linalg.norm(s, axis=1, keepdims=True)
    t = t / np.linalg.norm(t, axis=1, keepdims=True)
    logits = s @ t.T / tau

    def ce(lg):
        lg = lg - lg.max(1, keepdims=True)
        return float(np.mean(np.log(np.exp(lg).sum(1)) - np.diag(lg)))

    return (ce(logits) + ce(logits.T)) / 2 if symmetric else ce(logits)


def np_block_k_means(model, enc, K: int) -> np.ndarray:
    """Reference sentence vectors: block K's output seen by a forward hook (whole model run),
    averaged in numpy over the non-pad tokens of all the rows (windows) of each sentence."""
    outs = {}
    h = blocks(model)[K - 1].register_forward_hook(lambda m, a, o: outs.__setitem__("k", o[0] if isinstance(o, tuple) else o))
    try:
        with torch.no_grad():
            model(input_ids=enc.input_ids, attention_mask=enc.attention_mask)
    finally:
        h.remove()
    hk, mask, rows = outs["k"].numpy(), enc.attention_mask.numpy(), enc.row_sentence.numpy()
    return np.stack([np.concatenate([hk[r, mask[r] == 1] for r in np.nonzero(rows == s)[0]]).mean(0)
                     for s in range(len(enc.n_words))])


def test_sentence_mean_against_numpy():
    """THE sentence vector: mean over non-pad tokens (all windows of a sentence), float32."""
    _, tok = tiny_lm("llama")
    long = " ".join(["the cat sleeps"] * 12)
    enc = encode_texts(tok, ["the cat sleeps", long, "a dog"], 16)
    assert enc.stats.windowed == 1 and enc.input_ids.shape[0] > 3  # the long text is several rows
    R, T = enc.input_ids.shape
    rng = np.random.default_rng(0)
    h = rng.normal(size=(R, T, 4)).astype(np.float32)
    mask = enc.attention_mask.numpy()
    rows = enc.row_sentence.numpy()
    want = np.stack([np.concatenate([h[r, mask[r] == 1] for r in np.nonzero(rows == s)[0]]).mean(0)
                     for s in range(3)])
    got = enc.sentence_mean(torch.from_numpy(h))
    assert got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5)
    # a padded position holding a huge value must not leak in
    pad = np.argwhere(mask == 0)[0]
    h[pad[0], pad[1]] = 1e6
    np.testing.assert_allclose(enc.sentence_mean(torch.from_numpy(h)).numpy(), want, rtol=1e-5)
    # bf16 states are summed in float32
    hb = torch.from_numpy(h).bfloat16()
    ref = np.stack([np.concatenate([hb[r][mask[r] == 1].float().numpy() for r in np.nonzero(rows == s)[0]]).mean(0)
                    for s in range(3)])
    np.testing.assert_allclose(enc.sentence_mean(hb).numpy(), ref, rtol=1e-5)


@pytest.mark.parametrize("symmetric", [False, True])
def test_sentence_infonce_hand_made(symmetric):
    s = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.5, 0.5, 0.1]])
    t = np.array([[0.9, 0.1, 0.0], [0.2, 1.0, 0.0], [0.0, 0.3, 1.0]])
    got = float(sentence_infonce(torch.tensor(s), torch.tensor(t), 0.1, symmetric=symmetric))
    assert got == pytest.approx(np_infonce(s, t, 0.1, symmetric), rel=1e-5)


def test_detach_side_gets_no_gradient():
    s = torch.randn(4, 6, requires_grad=True)
    t = torch.randn(4, 6, requires_grad=True)
    sentence_infonce(s, t, detach_target=True).backward()
    assert t.grad is None and s.grad.abs().sum() > 0


@pytest.mark.parametrize("family", ["llama", "gpt2", "qwen2"])
def test_alignment_loss_is_infonce_of_block_k_token_means(family):
    model, tok = tiny_lm(family)
    K = 2
    enc = encode_texts(tok, SRC + TGT, 128)
    sent = np_block_k_means(model, enc, K)
    want = np_infonce(sent[:4], sent[4:], 0.1)
    with torch.no_grad():
        loss, parts = alignment_loss(model, tok, SRC, TGT, K, temperature=0.1)
    assert float(loss) == pytest.approx(want, rel=1e-4)
    assert parts["windowed"] == 0 and parts["windows"] == 8


@pytest.mark.parametrize("family", ["llama", "gpt2", "qwen2"])
def test_a_sentence_has_one_vector_alone_or_right_padded_in_a_batch(family):
    """Right padding: with causal attention the real tokens never see the padding after them
    and positions start at 0 in every row (left padding would shift a short row's positions)."""
    model, tok = tiny_lm(family)
    alone = encode_texts(tok, [SRC[0]], 64)
    batch = encode_texts(tok, [SRC[0], SRC[1] + " and " + SRC[3]], 64)
    n = int(alone.attention_mask.sum())
    assert batch.attention_mask[0, :n].all() and not batch.attention_mask[0, n:].any() and batch.input_ids.shape[1] > n
    with torch.no_grad():
        a = sentence_states(model, alone, [0, 2, 4])
        b = sentence_states(model, batch, [0, 2, 4])
    for lay in (0, 2, 4):
        torch.testing.assert_close(a[lay][0], b[lay][0], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_alignment_loss_of_windowed_sentences(family):
    """A sentence over max_length is several rows (windows at word boundaries) but ONE sentence
    of the InfoNCE: the mean over the non-pad tokens of all its windows at block K."""
    model, tok = tiny_lm(family)
    K, W = 2, 16
    src = [" ".join(SRC * 3), *SRC[1:]]
    tgt = [" ".join(TGT * 3), *TGT[1:]]
    enc = encode_texts(tok, src + tgt, W)
    assert enc.stats.windowed == 2 and enc.input_ids.shape[0] > len(src + tgt)
    sent = np_block_k_means(model, enc, K)
    want = np_infonce(sent[:4], sent[4:], 0.1)
    with torch.no_grad():
        loss, parts = alignment_loss(model, tok, src, tgt, K, max_length=W)
    assert float(loss) == pytest.approx(want, rel=1e-4)
    assert parts["windowed"] == 2 and parts["windows"] == enc.input_ids.shape[0]


@pytest.mark.parametrize("family", ["llama", "gpt2", "qwen2"])
def test_block_above_k_never_runs_for_parallel_inputs(family):
    """A hook on block K+1 (and on the LM head) never fires for the alignment forward/backward;
    the same hooks fire for a task forward, so they would have seen it."""
    model, tok = tiny_lm(family)
    model, _, _ = add_lora(model)
    model.train()
    K = 2
    assert num_layers(model) > K
    fired = {"above": 0, "head": 0, "k": 0}
    hooks = [blocks(model)[K].register_forward_hook(lambda *a: fired.__setitem__("above", fired["above"] + 1)),
             model.get_output_embeddings().register_forward_hook(lambda *a: fired.__setitem__("head", fired["head"] + 1)),
             blocks(model)[K - 1].register_forward_hook(lambda *a: fired.__setitem__("k", fired["k"] + 1))]
    try:
        loss, _ = alignment_loss(model, tok, SRC, TGT, K)
        loss.backward()
        assert fired == {"above": 0, "head": 0, "k": 1}
        grads = [p.grad for n, p in model.named_parameters() if p.requires_grad and p.grad is not None]
        assert grads and any(float(g.abs().sum()) > 0 for g in grads)  # LoRA below K learns
        enc = encode_texts(tok, SRC, 128)
        model(input_ids=enc.input_ids, attention_mask=enc.attention_mask)
        assert fired["above"] == 1 and fired["head"] == 1
    finally:
        for h in hooks:
            h.remove()


def test_lora_above_k_gets_no_gradient_from_alignment():
    model, tok = tiny_lm("llama")
    model, _, _ = add_lora(model)
    model.train()
    loss, _ = alignment_loss(model, tok, SRC, TGT, 1)
    loss.backward()
    above = [p for n, p in model.named_parameters() if p.requires_grad and ".layers.0." not in n]
    below = [p for n, p in model.named_parameters() if p.requires_grad and ".layers.0." in n]
    assert above and below
    assert all(p.grad is None for p in above)
    assert any(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in below)


def test_mistral_through_the_same_table():
    """mistral (not in core.tiny): LoRA targets, loss and the stop at K from the one table."""
    from transformers import AutoModelForCausalLM, MistralConfig

    _, tok = tiny_lm("llama")
    cfg = MistralConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=256,
                        pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg)
    model, names, _ = add_lora(model, freeze="front")  # L = 3: block 1 frozen
    assert len(names) == 14 and all(".layers.0." not in n for n in names)
    fired = []
    h = blocks(model)[2].register_forward_hook(lambda *a: fired.append(1))
    try:
        loss, _ = alignment_loss(model, tok, SRC, TGT, 2)
        loss.backward()
    finally:
        h.remove()
    assert not fired and torch.isfinite(loss)
