"""Zero-shot evaluation: the scorer by hand, per-syntactic-word predictions through
multiword tokens, first-sub-word pooling, specials/padding never scored, XNLI skip path, CLI."""

from __future__ import annotations

import shutil
from collections import Counter

import pandas as pd
import pytest
import torch

from alignfreeze.cli import main
from core.conllu import UPOS_TAGS, read_conllu
from realign.evaluate import COLUMNS, evaluate, label_names, predict_upos, upos_accuracy


def test_upos_accuracy_by_hand():
    gold = [["DET", "NOUN", "VERB"], ["PRON"]]
    pred = [["DET", "ADJ", "VERB"], [None]]
    assert upos_accuracy(gold, pred) == (2, 4)
    assert upos_accuracy([], []) == (0, 0)
    with pytest.raises(ValueError, match="sentence 1: 1 gold words but 2"):
        upos_accuracy(gold, [["DET", "ADJ", "VERB"], ["PRON", "X"]])
    with pytest.raises(ValueError, match="2 gold sentences but 1"):
        upos_accuracy(gold, pred[:1])


class RuleTagger(torch.nn.Module):
    """A fake tagger with known behaviour: specials/padding -> PUNCT, a continuation
    sub-word (``##..``) -> VERB, any other token -> NOUN."""

    def __init__(self, tokenizer):
        super().__init__()
        from types import SimpleNamespace

        self.config = SimpleNamespace(id2label=dict(enumerate(UPOS_TAGS)), model_type="bert")
        self.dummy = torch.nn.Parameter(torch.zeros(1))
        vocab = tokenizer.get_vocab()
        table = torch.full((len(tokenizer),), UPOS_TAGS.index("NOUN"))
        for tok, i in vocab.items():
            if tok.startswith("##"):
                table[i] = UPOS_TAGS.index("VERB")
        for i in tokenizer.all_special_ids:
            table[i] = UPOS_TAGS.index("PUNCT")
        self.register_buffer("table", table)

    def forward(self, input_ids, attention_mask):
        from types import SimpleNamespace

        logits = torch.nn.functional.one_hot(self.table[input_ids], len(UPOS_TAGS)).float() + self.dummy
        return SimpleNamespace(logits=logits)


@pytest.fixture(scope="module")
def rule(tiny_models):
    _, tok = tiny_models("bert")
    return RuleTagger(tok), tok


def test_predictions_per_syntactic_word_first_subword(rule, fixtures_dir):
    model, tok = rule
    for lang in ("en", "fr", "de"):
        sents = list(read_conllu(fixtures_dir / f"{lang}_demo-ud-test.conllu"))
        pred = predict_upos(model, tok, sents, batch_size=5)
        # first-sub-word pooling: never VERB (a word never starts with ##), never PUNCT
        # (specials and padding never reach a word): every word is NOUN
        assert [len(p) for p in pred] == [len(s.words) for s in sents]
        assert {x for p in pred for x in p} == {"NOUN"}
        gold_nouns = Counter(t for s in sents for t in s.upos)["NOUN"]
        correct, total = upos_accuracy([s.upos for s in sents], pred)
        assert (correct, total) == (gold_nouns, sum(len(s.words) for s in sents))


def test_last_subword_pooling_differs(rule):
    model, tok = rule
    from core.conllu import Sentence, Word

    words = ["The", "unbelievablyxyz", "cat"]
    pieces = tok(words, is_split_into_words=True).word_ids()
    assert pieces.count(1) > 1, "the test needs a word split into several sub-words"
    sent = Sentence("s", " ".join(words), [Word(i + 1, w, w, "NOUN", 0, "dep") for i, w in enumerate(words)],
                    words, [0, 1, 2])
    assert predict_upos(model, tok, [sent], pooling="first") == [["NOUN", "NOUN", "NOUN"]]
    assert predict_upos(model, tok, [sent], pooling="last") == [["NOUN", "VERB", "NOUN"]]


def test_mwt_words_take_their_tokens_prediction(rule, fixtures_dir):
    model, tok = rule
    sents = [s for s in read_conllu(fixtures_dir / "fr_demo-ud-test.conllu") if len(s.tokens) != len(s.words)]
    assert sents, "the French fixture has multiword tokens"
    pred = predict_upos(model, tok, sents)
    for s, p in zip(sents, pred):
        assert len(p) == len(s.words) > len(s.tokens)


def test_long_sentences_are_windowed_not_truncated(rule, fixtures_dir):
    model, tok = rule
    sents = list(read_conllu(fixtures_dir / "en_demo-ud-test.conllu"))
    short = predict_upos(model, tok, sents, max_length=6)  # forces windows of a few words
    assert [len(p) for p in short] == [len(s.words) for s in sents]
    assert None not in {x for p in short for x in p}


def test_label_names():
    from types import SimpleNamespace

    m = SimpleNamespace(config=SimpleNamespace(id2label={i: f"LABEL_{i}" for i in range(17)}))
    assert label_names(m) == UPOS_TAGS
    m.config.id2label = {0: "B-PER", 1: "O"}
    with pytest.raises(ValueError, match="not UD UPOS tags"):
        label_names(m)


@pytest.fixture(scope="module")
def tagger_dir(tmp_path_factory, tiny_models):
    import copy

    model, tok = tiny_models("bert", "token-classification")
    model = copy.deepcopy(model)
    model.config.id2label = dict(enumerate(UPOS_TAGS))
    model.config.label2id = {t: i for i, t in enumerate(UPOS_TAGS)}
    d = tmp_path_factory.mktemp("tagger")
    model.save_pretrained(d)
    tok.save_pretrained(d)
    return d


def test_evaluate_tidy_rows_and_xnli_skip(tagger_dir, fixtures_dir, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    df = evaluate(str(tagger_dir), [str(fixtures_dir / "*_demo-ud-test.conllu")], tasks=("upos", "xnli"),
                  model_name="tiny", progress=False)
    assert list(df.columns) == list(COLUMNS)
    assert sorted(df["lang"]) == ["de", "en", "fr"]
    assert set(df["task"]) == {"upos"} and set(df["metric"]) == {"accuracy"} and set(df["model"]) == {"tiny"}
    words = {lang: sum(len(s.words) for s in read_conllu(fixtures_dir / f"{lang}_demo-ud-test.conllu"))
             for lang in ("en", "fr", "de")}
    assert dict(zip(df["lang"], df["n_words"])) == words
    assert df["value"].between(0, 1).all()
    assert "XNLI skipped" in capsys.readouterr().err
    assert df.attrs["skipped"] and "hub" in df.attrs["skipped"][0]


def test_evaluate_cli(tagger_dir, fixtures_dir, tmp_path, capsys):
    out = tmp_path / "rows.csv"
    rc = main(["evaluate", str(tagger_dir), "--treebank", str(fixtures_dir / "en_demo-ud-test.conllu"),
               str(fixtures_dir / "fr_demo-ud-test.conllu"), "--out", str(out), "--no-progress"])
    assert rc == 0
    df = pd.read_csv(out)
    assert list(df["lang"]) == ["en", "fr"] and len(df) == 2
    assert main(["evaluate", str(tagger_dir), "--treebank", str(tmp_path / "missing.conllu")]) == 2
    assert "missing.conllu" in capsys.readouterr().err
    from core.manifest import write_manifest

    realigned = tmp_path / "realigned"
    shutil.copytree(tagger_dir, realigned)
    write_manifest(realigned, {"kind": "realign"})
    assert main(["evaluate", str(realigned), "--treebank", str(fixtures_dir / "en_demo-ud-test.conllu")]) == 2
    assert "no trained task head" in capsys.readouterr().err


def test_xnli_code_path_on_a_local_stand_in(tiny_models, fixtures_dir, tmp_path, monkeypatch):
    """The hub is unreachable here, so a local stand-in replaces the XNLI download: the
    fine-tuning and scoring code paths still run for real."""
    import datasets

    import realign.evaluate as ev
    from realign.finetune import XNLI_LABELS, FinetuneConfig, finetune

    en = [s.text for s in read_conllu(fixtures_dir / "en_demo-ud-test.conllu")]
    fr = [s.text for s in read_conllu(fixtures_dir / "fr_demo-ud-test.conllu")]
    rows = {"premise": en + en, "hypothesis": fr + fr[1:] + fr[:1], "label": [0] * len(en) + [2] * len(en)}
    calls = []

    def fake_load(lang, split="test"):
        calls.append((lang, split))
        return datasets.Dataset.from_dict(rows)

    monkeypatch.setattr(ev, "load_xnli", fake_load)
    model, tok = tiny_models("bert")
    base = tmp_path / "base"
    model.save_pretrained(base)
    tok.save_pretrained(base)
    out = finetune(FinetuneConfig(model=str(base), train=("en",), out=str(tmp_path / "nli"), task="xnli", steps=2,
                                  batch_size=8, lr=1e-3, train_limit=20), progress=False)
    import json

    m = json.loads((out / "manifest.json").read_text())
    assert m["labels"] == list(XNLI_LABELS) and m["data"]["examples"] == 20 and m["task"] == "xnli"
    df = evaluate(str(out), tasks=("xnli",), xnli_langs=("fr", "de"), progress=False)
    assert calls == [("en", "train"), ("fr", "test"), ("de", "test")]
    assert list(df["lang"]) == ["fr", "de"] and set(df["task"]) == {"xnli"}
    assert (df["n_words"] == 24).all() and df["value"].between(0, 1).all()


def test_evaluate_reads_the_selection_and_records_it(tagger_dir, fixtures_dir, tmp_path, capsys):
    en = fixtures_dir / "en_demo-ud-test.conllu"
    sents = list(read_conllu(en))
    df = evaluate(str(tagger_dir), [f"{en}@3:7", str(fixtures_dir / "fr_demo-ud-test.conllu")], max_sentences=4,
                  progress=False)
    assert list(df["selection"]) == ["3:7,first=4", "first=4"] and list(df["n_sentences"]) == [4, 4]
    assert df["n_words"].iloc[0] == sum(len(s.words) for s in sents[2:6])
    assert set(df["model"]) == {tagger_dir.name}  # no manifest: the folder's name
    whole = evaluate(str(tagger_dir), [str(en)], progress=False)
    assert list(whole["selection"]) == ["all"] and list(whole["n_sentences"]) == [len(sents)]
    # the CLI: a selection past the end is one line naming the file, before any model loads
    capsys.readouterr()
    assert main(["evaluate", str(tagger_dir), "--treebank", f"{en}@1:{len(sents) + 1}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{en}: selection" in err[0] and f"has {len(sents)}" in err[0]
    out = tmp_path / "sel.csv"
    assert main(["evaluate", str(tagger_dir), "--treebank", f"{en}@sent_ids=demo-02,demo-05", "--out", str(out),
                 "--no-progress"]) == 0
    assert pd.read_csv(out)["selection"].tolist() == ["sent_ids=demo-02,demo-05"]
