"""``alignfreeze probe`` end to end on a tiny model saved to disk, and its errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from alignfreeze.cli import main
from probing.run import COLUMNS, ProbeConfig, run_probe
from probing.tasks import check_vocabulary, read_treebank, unknown_word_rate


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    from core.tiny import tiny_model

    model, tok = tiny_model("bert")
    d = tmp_path_factory.mktemp("tiny-bert")
    model.save_pretrained(d)
    tok.save_pretrained(d)
    return d


@pytest.fixture
def demo(fixtures_dir):
    return {lang: str(fixtures_dir / f"{lang}_demo-ud-test.conllu") for lang in ("en", "fr", "de")}


def test_probe_upos_with_control_end_to_end(tiny_dir, demo, tmp_path, capsys):
    out = tmp_path / "res" / "probe.csv"
    code = main(["probe", "--model", str(tiny_dir), "--train", demo["en"], "--eval", demo["en"], demo["fr"],
                 demo["de"], "--task", "upos", "--layers", "all", "--seeds", "2", "--control", "--pooling", "first",
                 "--out", str(out), "--no-progress"])
    assert code == 0
    df = pd.read_csv(out)
    assert tuple(df.columns) == COLUMNS
    assert set(df["layer"]) == {0, 1, 2}  # embeddings + 2 blocks
    assert set(df["seed"]) == {0, 1}
    assert set(df["task"]) == {"upos", "upos-control"}
    assert set(df["metric"]) == {"accuracy", "selectivity"}
    acc = df[(df.task == "upos") & (df.metric == "accuracy")]
    assert set(acc["split"]) == {"train", "heldout", "eval"}
    assert set(acc[acc.split == "eval"]["lang"]) == {"fr", "de"}
    assert set(acc[acc.split == "heldout"]["lang"]) == {"en"} and (acc["train_lang"] == "en").all()
    assert acc["value"].between(0, 1).all()
    assert set(acc[acc.split == "eval"]["file"]) == {demo["fr"], demo["de"]}
    # control task and selectivity only where defined: the training language's splits
    ctl = df[df.task == "upos-control"]
    assert set(ctl["lang"]) == {"en"} and set(ctl["split"]) == {"train", "heldout"}
    sel = df[df.metric == "selectivity"]
    assert set(sel["lang"]) == {"en"} and len(sel) == len(ctl)
    # one selectivity row per (split, layer, seed), equal to task - control
    sel = sel.set_index(["lang", "split", "layer", "seed"])["value"]
    ctl = ctl.set_index(["lang", "split", "layer", "seed"])["value"]
    task = acc.set_index(["lang", "split", "layer", "seed"])["value"]
    np.testing.assert_allclose(sel.sort_index(), (task.loc[ctl.index] - ctl).sort_index())
    # 2 seeds are 2 replicates: each trains on its own bootstrap resample of the training sentences
    n_train = acc[(acc.split == "train") & (acc.layer == 0)].set_index("seed")["n"]
    n_held = acc[(acc.split == "heldout") & (acc.layer == 0)].set_index("seed")["n"]
    n_words = sum(len(s.tokens) for s in read_treebank(demo["en"]))
    assert (n_train + n_held <= n_words).all() and n_train.nunique() + n_held.nunique() > 2
    meta = json.loads((out.parent / "probe.json").read_text())
    assert meta["kind"] == "probe" and meta["pooling"] == "first" and meta["layers"] == [0, 1, 2]
    assert meta["config"]["control"] is True and meta["config"]["seeds"] == 2
    assert "bootstrap" in meta["replicates"] and "training language" in meta["selectivity"]
    assert len(meta["model"]["weight_hash"]) == 64
    assert {e["path"] for e in meta["data_files"]} == set(demo.values())
    assert "torch" in meta["environment"]["packages"]
    assert "best layer" in capsys.readouterr().out


def test_probe_translation_end_to_end(tiny_dir, demo, tmp_path):
    out = tmp_path / "tr.csv"
    code = main(["probe", "--model", str(tiny_dir), "--task", "translation", "--train", demo["en"],
                 "--eval", demo["en"], demo["fr"], demo["de"], "--layers", "0,2", "--pair-probe", "--seeds", "2",
                 "--out", str(out), "--no-progress"])
    assert code == 0
    df = pd.read_csv(out)
    assert set(df["lang"]) == {"fr", "de"}  # the pivot is not matched against itself
    assert set(df["layer"]) == {0, 2}
    ret = df[df.task == "translation"]
    assert set(ret["metric"]) == {"retrieval_pivot_to_lang", "retrieval_lang_to_pivot", "retrieval_mean"}
    assert (ret["n"] == 12).all() and ret["value"].between(0, 1).all()
    pair = df[df.task == "translation-pair"]
    assert len(pair) == 2 * 2 * 2  # langs x layers x seeds
    assert set(pair["split"]) == {"heldout"}  # the pair probe is scored on held-out pairs only


def test_translation_of_a_language_with_itself_is_perfect(tiny_models, demo, tmp_path):
    """Matching a file against a copy of itself: identical vectors -> accuracy 1."""
    import shutil

    copy = tmp_path / "xx_copy-ud-test.conllu"
    shutil.copy(demo["en"], copy)
    model, tok = tiny_models("bert")
    cfg = ProbeConfig(model="tiny", task="translation", train=demo["en"], eval=(str(copy),), seeds=1)
    df, _ = run_probe(cfg, model=model, tokenizer=tok, progress=False)
    assert (df["value"] == 1.0).all() and len(df) == 3 * 3


def test_xnli_offline_is_skipped_with_a_message(tiny_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "x.csv"
    assert main(["probe", "--model", str(tiny_dir), "--task", "xnli", "--train", "en", "--eval", "fr",
                 "--out", str(out), "--no-progress"]) == 0
    assert "XNLI skipped" in capsys.readouterr().err
    assert pd.read_csv(out).empty
    assert "XNLI skipped" in json.loads(out.with_suffix(".json").read_text())["skipped"][0]


NO_OVERLAP = """# sent_id = 1
1	ฉัน	_	PRON	_	_	2	nsubj	_	_
2	กิน	_	VERB	_	_	0	root	_	_
3	ข้าว	_	NOUN	_	_	2	obj	_	_

"""


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--task", "ner"], "unknown probing task 'ner'"),
        (["--layers", ""], "empty layer selection"),
        (["--layers", "7"], "do not exist: this model has layers 0..2"),
        (["--out-suffix"], None),
    ],
)
def test_bad_options_are_clear_errors(tiny_dir, demo, tmp_path, capsys, extra, match):
    argv = ["probe", "--model", str(tiny_dir), "--train", demo["en"], "--eval", demo["fr"],
            "--out", str(tmp_path / "p.csv"), "--no-progress", *extra]
    if match is None:  # an unknown option is argparse's error
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2
        return
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "alignfreeze: error:" in err and match.split("'")[0] in err
    assert not (tmp_path / "p.csv").exists()


def test_treebank_outside_the_vocabulary_is_an_error_naming_the_file(tiny_dir, demo, tmp_path, capsys):
    bad = tmp_path / "th_demo-ud-test.conllu"
    bad.write_text(NO_OVERLAP, encoding="utf-8")
    code = main(["probe", "--model", str(tiny_dir), "--train", demo["en"], "--eval", str(bad),
                 "--out", str(tmp_path / "p.csv"), "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "unknown token" in err and "100%" in err


def test_bad_output_suffix_fails_before_work(tiny_dir, demo, tmp_path, capsys):
    assert main(["probe", "--model", str(tiny_dir), "--train", demo["en"], "--out", str(tmp_path / "p.txt"),
                 "--no-progress"]) == 2
    assert "must be a .csv file" in capsys.readouterr().err


def test_unknown_word_rate(tiny_models):
    _, tok = tiny_models("bert")
    rate, n = unknown_word_rate(tok, [["The", "cat", "sleeps"], ["ฉัน", "กิน"]])
    assert n == 5 and rate == pytest.approx(2 / 5)
    assert check_vocabulary(tok, [["The", "cat"]], "x", max_unknown=0.5) == 0.0
    with pytest.raises(ValueError, match="src.conllu: 100% of 2 words"):
        check_vocabulary(tok, [["ฉัน", "กิน"]], "src.conllu")


def test_sklearn_backend_through_the_runner(tiny_models, demo):
    model, tok = tiny_models("bert")
    common = dict(model="tiny", train=demo["en"], eval=(demo["fr"],), seeds=1, layers="last")
    a, _ = run_probe(ProbeConfig(**common, backend="torch"), model=model, tokenizer=tok, progress=False)
    b, _ = run_probe(ProbeConfig(**common, backend="sklearn"), model=model, tokenizer=tok, progress=False)
    assert len(a) == len(b) == 2  # train + eval rows of layer 2
    np.testing.assert_allclose(a["value"], b["value"], atol=0.05)


def test_real_english_treebank_small_subset(tiny_models, ud_dir):
    model, tok = tiny_models("bert")
    dev, test = ud_dir / "en_ewt-ud-dev.conllu", ud_dir / "en_ewt-ud-test.conllu"
    cfg = ProbeConfig(model="tiny", train=str(dev), eval=(str(test),), seeds=1, max_sentences=60, control=True)
    df, meta = run_probe(cfg, model=model, tokenizer=tok, progress=False)
    ev = df[(df.split == "eval") & (df.task == "upos") & (df.metric == "accuracy")]
    assert len(ev) == 3 and (ev["value"] > 0.2).all()  # above the ~0.17 majority rate of NOUN
    assert meta["data"][str(dev)]["sentences"] == 60


def _spy_on_fits(monkeypatch) -> list:
    """Record the labels every probe of a run is fitted on."""
    import probing.run as run

    fitted = []
    make = run._probe

    def spy(cfg, seed):
        probe = make(cfg, seed)
        fit = probe.fit

        def recording_fit(X, y):
            fitted.append(np.asarray(y).copy())
            return fit(X, y)

        probe.fit = recording_fit
        return probe

    monkeypatch.setattr(run, "_probe", spy)
    return fitted


# English sentences written for this test, with word types that take two tags
AMBIGUOUS = [("She reads her book .", "PRON VERB DET NOUN PUNCT"), ("We see her .", "PRON VERB PRON PUNCT"),
             ("The children play in the garden .", "DET NOUN VERB ADP DET NOUN PUNCT"),
             ("They see the play .", "PRON VERB DET NOUN PUNCT"),
             ("They train in the morning .", "PRON VERB ADP DET NOUN PUNCT"),
             ("The train leaves at seven .", "DET NOUN VERB ADP NUM PUNCT"),
             ("We see the green leaves .", "PRON VERB DET ADJ NOUN PUNCT"),
             ("My sister works in the hospital .", "PRON NOUN VERB ADP DET NOUN PUNCT")]


def _conllu(path, sentences):
    lines = []
    for k, (text, tags) in enumerate(sentences, 1):
        lines += [f"# sent_id = {k}", f"# text = {text}"]
        for i, (w, t) in enumerate(zip(text.split(), tags.split()), 1):
            lines.append(f"{i}\t{w}\t_\t{t}\t_\t_\t{0 if i == 1 else 1}\t{'root' if i == 1 else 'dep'}\t_\t_")
        lines.append("")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_control_probe_learns_the_control_map_not_the_tags(tiny_models, demo, monkeypatch, tmp_path):
    from core.features import WordFeatureExtractor
    from probing.control import ControlTask
    from probing.tasks import load_token_task

    model, tok = tiny_models("bert")
    train = _conllu(tmp_path / "en_amb-ud-test.conllu", AMBIGUOUS)
    fitted = _spy_on_fits(monkeypatch)
    cfg = ProbeConfig(model="tiny", train=str(train), eval=(demo["fr"],), seeds=1, seed=5, control=True,
                      layers="last")
    df, _ = run_probe(cfg, model=model, tokenizer=tok, progress=False)
    data = load_token_task(WordFeatureExtractor(model, tok, layers="last"), train)
    y_task, y_ctl = fitted  # one seed, no resampling: every training word once
    assert list(y_task) == list(data.labels)
    assert list(y_ctl) == list(ControlTask(5).fit(data.words, data.labels).transform(data.words))
    # a map of word types, not the tags: an ambiguous type has two tags but one control label
    types = {}
    for w, t, c in zip(data.words, y_task, y_ctl):
        types.setdefault(w, (set(), set()))
        types[w][0].add(t)
        types[w][1].add(c)
    assert all(len(c) == 1 for _, c in types.values())
    assert any(len(t) > 1 for t, _ in types.values()), "the fixture needs an ambiguous word"
    assert np.mean(y_ctl != y_task) > 0.4
    # zero-shot French gets no control rows and no selectivity
    assert set(df[df.task == "upos-control"]["lang"]) == {"en"}


def test_seeds_are_independent_replicates(tiny_models, demo, monkeypatch):
    """With L-BFGS from zeros, seeds used to refit the same data: identical accuracies and a
    std of 0. Each seed now trains on its own bootstrap resample of the training sentences."""
    from probing.run import bootstrap_sentence_rows

    model, tok = tiny_models("bert")
    fitted = _spy_on_fits(monkeypatch)
    cfg = ProbeConfig(model="tiny", train=demo["en"], eval=(demo["fr"], demo["de"]), seeds=3, layers="all")
    df, meta = run_probe(cfg, model=model, tokenizer=tok, progress=False)
    assert len(fitted) == 3 and len({tuple(y) for y in fitted}) == 3  # three different training samples
    ev = df[(df.split == "eval") & (df.metric == "accuracy")].pivot_table(index=["lang", "layer"], columns="seed",
                                                                         values="value")
    assert (ev.std(axis=1) > 0).any(), "every seed gave the same zero-shot accuracy"
    assert "bootstrap" in meta["replicates"]
    # one seed: one probe on all the training words, no replicate
    one, meta1 = run_probe(ProbeConfig(model="tiny", train=demo["en"], eval=(demo["fr"],), seeds=1, layers="last"),
                           model=model, tokenizer=tok, progress=False)
    n_words = sum(len(s.tokens) for s in read_treebank(demo["en"]))
    assert one[one.split == "train"]["n"].iloc[0] == len(fitted[-1]) == n_words and "no std" in meta1["replicates"]
    # the resample draws whole sentences with replacement
    sentence = np.repeat(np.arange(6), [3, 1, 4, 2, 5, 2])
    rows = np.arange(len(sentence))
    boot = bootstrap_sentence_rows(sentence, rows, seed=2)
    drawn = np.bincount(sentence[boot], minlength=6) / np.bincount(sentence, minlength=6)
    assert np.allclose(drawn, drawn.round()) and drawn.sum() == 6  # 6 draws of whole sentences
    assert np.array_equal(boot, bootstrap_sentence_rows(sentence, rows, seed=2))
    assert not np.array_equal(boot, bootstrap_sentence_rows(sentence, rows, seed=3))
