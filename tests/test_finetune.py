"""UPOS fine-tuning: labelling rules, windowing, the loss goes down, gradient accumulation,
the exact "during" gradient dropping, manifest and CLI."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from alignfreeze.cli import main
from core.conllu import UPOS_TAGS, read_conllu
from realign.finetune import (
    IGNORE,
    FinetuneConfig,
    build_examples,
    collate,
    finetune,
    step_indices,
    task_loss_sum,
    token_labels,
    window_labels,
)


@pytest.mark.parametrize("start", [0, 10])
def test_window_labels_first_piece_skips_bare_marker_and_shared_piece_takes_the_first_word(start):
    from core.encoding import Window

    # <s> ▁(bare) w0a w0b [w1+w2 shared] w2b </s>: words start, start+1, start+2 of a sentence
    w = Window(sentence=0, start=start, end=start + 3, input_ids=np.arange(7),
               text_mask=np.array([0, 1, 1, 1, 1, 1, 0], dtype=bool),
               piece_token=np.array([2, 3, 4, 4, 5]), piece_word=np.array([0, 0, 1, 2, 2]) + start)
    labels, shared = window_labels(w, [3, 5, 7], False)
    assert labels == [IGNORE, IGNORE, 3, IGNORE, 5, IGNORE, IGNORE] and shared == 1
    labels, shared = window_labels(w, [3, 5, 7], True)
    assert labels == [IGNORE, IGNORE, 3, 3, 5, 7, IGNORE] and shared == 1


def test_mwt_token_takes_first_word_label(fixtures_dir):
    sent = next(s for s in read_conllu(fixtures_dir / "fr_demo-ud-test.conllu") if "au" in s.tokens)
    tokens, labels = token_labels(sent)
    assert tokens == sent.tokens and len(labels) == len(tokens) < len(sent.words)
    k = tokens.index("au")
    words = [w for w, t in zip(sent.words, sent.word_to_token) if t == k]
    assert [w.upos for w in words] == ["ADP", "DET"] and labels[k] == "ADP"


def test_examples_cover_every_token_once_even_when_windowed(tiny_models, fixtures_dir):
    _, tok = tiny_models("bert")
    sents = list(read_conllu(fixtures_dir / "fr_demo-ud-test.conllu"))
    n_tokens = sum(len(s.tokens) for s in sents)
    for max_length in (64, 7):
        ex, stats = build_examples(sents, tok, max_length)
        assert stats["labelled_tokens"] == n_tokens
        assert all(len(e.input_ids) <= max_length and len(e.labels) == len(e.input_ids) for e in ex)
    assert stats["windowed"] > 0 and stats["examples"] > len(sents)
    everything, _ = build_examples(sents, tok, 64, all_subwords=True)
    assert sum(sum(x != IGNORE for x in e.labels) for e in everything) >= n_tokens
    b = collate(ex[:3], tok.pad_token_id)
    assert b["input_ids"].shape == b["labels"].shape == b["attention_mask"].shape
    assert (b["labels"][b["attention_mask"] == 0] == IGNORE).all()


def test_step_indices_cover_each_epoch_once_and_are_seeded():
    first_epoch = [i for step in range(5) for i in step_indices(step, 4, 20, seed=3)]
    assert sorted(first_epoch) == list(range(20))
    assert step_indices(7, 4, 20, seed=3) == step_indices(7, 4, 20, seed=3)
    assert step_indices(0, 4, 20, seed=3) != step_indices(0, 4, 20, seed=4)
    across = step_indices(1, 6, 10, seed=0)  # a batch that spans the epoch boundary
    assert len(across) == 6 and len(set(across[:4])) == 4


def test_config_validation():
    ok = dict(model="m", train=("x.conllu",), out="o")
    with pytest.raises(ValueError, match="not divisible by grad_accumulation"):
        FinetuneConfig(**ok, batch_size=5, grad_accumulation=2).validate()
    with pytest.raises(ValueError, match="warmup_ratio"):
        FinetuneConfig(**ok, warmup_ratio=1.0).validate()
    with pytest.raises(ValueError, match="train"):
        FinetuneConfig(model="m", train=(), out="o").validate()
    assert FinetuneConfig(**ok).prediction_pooling == "first"
    assert FinetuneConfig(**ok, label_all_subwords=True).prediction_pooling == "mean"


def _mean_loss(model, tok, sents) -> float:
    ex, _ = build_examples(sents, tok, 64)
    model.eval()
    with torch.no_grad():
        s, n = task_loss_sum(model, collate(ex, tok.pad_token_id))
    return float(s) / n


def test_finetune_lowers_the_loss_and_writes_a_manifest(tiny_models, fixtures_dir, tmp_path):
    base, tok = tiny_models("bert", "token-classification")
    model = copy.deepcopy(base)
    for p in model.parameters():  # a realigned model may arrive with frozen flags: all must train
        p.requires_grad_(False)
    en = fixtures_dir / "en_demo-ud-test.conllu"
    sents = list(read_conllu(en))
    before = _mean_loss(model, tok, sents)
    cfg = FinetuneConfig(model="tiny-bert", train=(str(en),), out=str(tmp_path / "ft"), steps=25, batch_size=4,
                         lr=5e-3, warmup_ratio=0.0, seed=1)
    seen = []
    out = finetune(cfg, model=model, tokenizer=tok, progress=False, callback=lambda s, p: seen.append((s, dict(p))))
    after = _mean_loss(model, tok, sents)
    assert after < 0.8 * before, (before, after)
    m = json.loads((out / "manifest.json").read_text())
    assert m["kind"] == "finetune" and m["labels"] == list(UPOS_TAGS) and m["steps"] == 25
    # the callback sees every optimizer step once, in order, with the losses the manifest averages
    assert [s for s, _ in seen] == list(range(1, 26))
    assert m["final_losses"]["task"] == pytest.approx(np.mean([p["task"] for _, p in seen[-10:]]), rel=1e-12)
    assert m["prediction_pooling"] == "first" and m["config"]["seed"] == 1
    assert len(m["base_model"]["weight_hash"]) == 64 and m["data_files"][0]["sha256"]
    assert all(p.requires_grad for p in model.parameters())
    with pytest.raises(ValueError, match="already holds a finished run"):
        finetune(cfg, model=copy.deepcopy(base), tokenizer=tok, progress=False)


def test_gradient_accumulation_equals_one_big_batch(tiny_models, fixtures_dir, tmp_path):
    base, tok = tiny_models("bert", "token-classification")
    en = str(fixtures_dir / "en_demo-ud-test.conllu")
    weights = []
    for accum in (1, 2):
        m = copy.deepcopy(base)
        finetune(FinetuneConfig(model="t", train=(en,), out=str(tmp_path / f"a{accum}"), steps=2, batch_size=4,
                                grad_accumulation=accum, lr=1e-3, warmup_ratio=0.0, dropout=False),
                 model=m, tokenizer=tok, progress=False)
        weights.append({n: p.detach().clone() for n, p in m.named_parameters()})
    changed = [n for n, p in base.named_parameters() if not torch.equal(p, weights[0][n])]
    assert changed
    for n in weights[0]:
        # Adam divides by sqrt(v): a weight whose gradient is ~0 amplifies float32 sum-order
        # differences (9.3e-6 seen once, CI); a wrong accumulation moves weights by ~lr = 1e-3
        torch.testing.assert_close(weights[0][n], weights[1][n], rtol=0, atol=5e-5)


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory, fixtures_dir):
    from core.parallel import read_parallel
    from realign.pairs import extract_pairs, write_pairs

    pairs = read_parallel(fixtures_dir / "en_demo-ud-test.conllu", fixtures_dir / "fr_demo-ud-test.conllu")
    records, _ = extract_pairs(pairs, "dictionary", dictionary=fixtures_dir / "en-fr.txt", progress=False)
    return write_pairs(tmp_path_factory.mktemp("pairs") / "en-fr.jsonl", records)


@pytest.fixture(scope="module")
def fixtures_dir():
    from core import FIXTURES

    return FIXTURES


def test_during_drops_realignment_gradients_of_the_frozen_half_exactly(tiny_models, fixtures_dir, pairs_file,
                                                                       tmp_path):
    from realign.freeze import resolve_freeze

    base, tok = tiny_models("bert", "token-classification")
    en = str(fixtures_dir / "en_demo-ud-test.conllu")
    common = dict(model="t", train=(en,), steps=1, batch_size=4, lr=1e-2, warmup_ratio=0.0, dropout=False, seed=5)

    def run(name, **kw):
        m = copy.deepcopy(base)
        finetune(FinetuneConfig(out=str(tmp_path / name), **common, **kw), model=m, tokenizer=tok, progress=False)
        return dict(m.named_parameters())

    task_only = run("task")
    during = run("during", during_realign=(str(pairs_file),), during_freeze="front+emb", during_batch_size=6)
    undropped = run("undropped", during_realign=(str(pairs_file),), during_freeze="none", during_batch_size=6)
    init = dict(base.named_parameters())
    dropped = set(resolve_freeze(base, "front+emb").frozen_parameter_names)
    assert dropped and any(n.startswith("bert.embeddings") for n in dropped)
    free_body = [n for n in init if n not in dropped and n.startswith("bert.encoder")]

    # the dropped half: bit for bit the task-only update (and the task did move it)
    for n in dropped:
        assert torch.equal(during[n], task_only[n]), n
    assert any(not torch.equal(task_only[n], init[n]) for n in dropped)
    # the free half: task + realignment, so it differs from task-only
    assert any(not torch.equal(during[n], task_only[n]) for n in free_body)
    # control: without dropping, the realignment gradient reaches the lower half too
    assert any(not torch.equal(undropped[n], task_only[n]) for n in dropped)
    m = json.loads((tmp_path / "during" / "manifest.json").read_text())
    assert m["during"]["dropped_layers"] == [0, 1] and set(m["during"]["dropped_parameters"]) == dropped
    assert "realign" in m["final_losses"] and "task" in m["final_losses"]


def test_finetune_cli_from_a_saved_base_model(tiny_models, fixtures_dir, tmp_path, capsys):
    model, tok = tiny_models("bert")
    src = tmp_path / "base"
    model.save_pretrained(src)
    tok.save_pretrained(src)
    out = tmp_path / "ft"
    argv = ["finetune", "--model", str(src), "--train", str(fixtures_dir / "en_demo-ud-test.conllu"),
            "--out", str(out), "--steps", "2", "--batch-size", "4", "--grad-accumulation", "2", "--no-progress"]
    assert main(argv) == 0
    m = json.loads((out / "manifest.json").read_text())
    assert m["kind"] == "finetune" and m["config"]["grad_accumulation"] == 2 and m["parent"] is None
    assert m["warmup_steps"] == 1 and m["lr"] == 2e-5  # 10% of 2 steps, rounded up; the family's rate
    from core.models import load_model

    tagger = load_model(out, task="token-classification")
    assert tagger.config.id2label[0] == UPOS_TAGS[0] and tagger.config.num_labels == 17
    assert main(argv) == 2
    assert "already holds a finished run" in capsys.readouterr().err


def test_training_sentences_follow_the_selection_and_the_manifest_names_the_run(tiny_models, fixtures_dir, tmp_path):
    from core.manifest import write_manifest

    base, tok = tiny_models("bert", "token-classification")
    en = fixtures_dir / "en_demo-ud-test.conllu"
    realigned = tmp_path / "runs" / "realigned"  # a realigned parent, by its manifest
    realigned.mkdir(parents=True)
    write_manifest(realigned, {"kind": "realign", "config": {"freeze": "front", "seed": 42}, "seed": 42})
    cfg = FinetuneConfig(model=str(realigned), train=(f"{en}@split=0.5,seed=3,part=train",), out=str(tmp_path / "ft"),
                         steps=1, batch_size=2, lr=1e-3)
    finetune(cfg, model=copy.deepcopy(base), tokenizer=tok, progress=False)
    m = json.loads((tmp_path / "ft" / "manifest.json").read_text())
    (e,) = m["data_files"]
    assert e["path"] == str(en) and e["selection"] == "split=0.5,seed=3,part=train" and e["sentences"] == 6
    assert m["data"]["sentences"] == 6  # what trained is what was selected
    assert m["parent"]["name"] == "front-s42" and m["name"] == "front-s42+upos"
    named = FinetuneConfig(model="tiny", train=(f"{en}@1:3",), out=str(tmp_path / "ft2"), steps=1, batch_size=2,
                           name="mine")
    finetune(named, model=copy.deepcopy(base), tokenizer=tok, progress=False)
    assert json.loads((tmp_path / "ft2" / "manifest.json").read_text())["name"] == "mine"
    with pytest.raises(ValueError, match="name='a b'"):
        FinetuneConfig(model="m", train=("x",), out="o", name="a b").validate()
