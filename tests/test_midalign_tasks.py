"""Task definitions: prompt format, parsing, scoring, MASSIVE annotations, the prompt-length policy."""

from __future__ import annotations

import pytest
from _midalign import EN, tiny_lm

from realign.midalign import tasks
from realign.midalign.data import collate_task, encode_examples, task_examples
from realign.midalign.evaluate import evaluate_task, generate_tags


def test_prompt_format_is_the_documented_one():
    p = tasks.prompt("upos", ["The", "10 000", "cats"])
    assert p == f"{tasks.INSTRUCTIONS['upos']}\nWords: The 10_000 cats\nTags:"
    assert tasks.answer(["DET", "NUM", "NOUN"]) == " DET NUM NOUN"
    assert tasks.parse_tags(" DET NUM NOUN\nWords: junk") == ["DET", "NUM", "NOUN"]
    assert tasks.parse_tags("   ") == []


def test_score_upos_hand_made():
    golds = [["DET", "NOUN", "VERB"], ["PRON", "VERB"]]
    preds = [["DET", "NOUN", "VERB"], ["PRON"]]  # second: one tag missing
    s = tasks.score_upos(golds, preds)
    assert s["tag_accuracy"] == pytest.approx(4 / 5)
    assert s["exact_match"] == 0.5 and s["well_formed"] == 0.5
    s = tasks.score_upos([["X"]], [["X", "NOUN"]])  # extra tags: ignored for accuracy, not exact
    assert s["tag_accuracy"] == 1.0 and s["exact_match"] == 0.0


def test_massive_annotation_to_bio():
    words, tags = tasks.parse_massive_annotation("wake me up at [time : five am] [date : this week]")
    assert words == ["wake", "me", "up", "at", "five", "am", "this", "week"]
    assert tags == ["O", "O", "O", "O", "B-time", "I-time", "B-date", "I-date"]
    with pytest.raises(ValueError, match="unbalanced"):
        tasks.parse_massive_annotation("wake [time : five am")


def test_score_slots_with_seqeval():
    pytest.importorskip("seqeval")
    golds = [["O", "B-time", "I-time", "O"], ["B-date", "O"]]
    preds = [["O", "B-time", "I-time", "O"], ["B-date"]]  # short prediction: padded with O
    s = tasks.score_slots(golds, preds)
    assert s["f1"] == 1.0 and s["well_formed"] == 0.5
    s = tasks.score_slots(golds, [["O", "B-time", "O", "O"], ["O", "O"]])
    assert s["precision"] == 0.0 and s["recall"] == 0.0 and s["f1"] == 0.0


def test_massive_offline_is_a_clear_skip(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(tasks.TaskUnavailable, match="MASSIVE .*skipped.*hub"):
        task_examples("massive", ["en-US:test"])


def test_prompt_policy_and_collation():
    _, tok = tiny_lm()
    ex = task_examples("upos", [str(EN)])
    assert ex[0].source == f"{EN}:{ex[0].source.split(':')[-1]}" and len(ex) == 12
    enc, dropped = encode_examples(tok, "upos", ex, 10_000)
    assert dropped == 0 and all(e.answer_ids[-1] == tok.eos_token_id for e in enc)
    n = min(len(e) for e in enc)
    with pytest.raises(ValueError, match=r"de_demo|en_demo.*never truncated"):
        encode_examples(tok, "upos", ex, n)
    kept, dropped = encode_examples(tok, "upos", ex, n, drop_long=True)
    assert len(kept) + dropped == 12 and dropped > 0
    batch = collate_task(enc[:2], tok.pad_token_id)
    e = enc[0]
    lab = batch["labels"][0]
    assert (lab[: len(e.prompt_ids)] == -100).all()  # the prompt carries no loss
    assert lab[len(e.prompt_ids) : len(e)].tolist() == e.answer_ids
    assert batch["attention_mask"][0].sum() == len(e)


def test_evaluation_batched_equals_one_by_one_and_scores_per_language():
    model, tok = tiny_lm()
    ex = task_examples("upos", [str(EN)])[:4]
    batched, keep, _ = generate_tags(model, tok, "upos", ex, labels=tasks.UPOS_TAGS, batch_size=4)
    single = [generate_tags(model, tok, "upos", [e], labels=tasks.UPOS_TAGS, batch_size=1)[0][0] for e in ex]
    assert batched == single and keep == [0, 1, 2, 3]
    rows = evaluate_task(model, tok, "upos", {"en": ex, "xx": ex[:2]})
    got = {(r["lang"], r["metric"]) for r in rows}
    assert ("en", "tag_accuracy") in got and ("xx", "exact_match") in got
    with pytest.raises(ValueError, match="exceeds the context of 30"):
        evaluate_task(model, tok, "upos", {"en": ex}, max_length=30)
