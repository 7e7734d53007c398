"""``alignfreeze probe`` end to end on a tiny model saved to disk, and its errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from alignfreeze.cli import main
from probing.run import COLUMNS, ProbeConfig, run_probe
from probing.tasks import check_vocabulary, unknown_word_rate


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
    # one selectivity row per (lang, split, layer, seed), equal to task - control
    sel = df[df.metric == "selectivity"].set_index(["lang", "split", "layer", "seed"])["value"]
    ctl = df[df.task == "upos-control"].set_index(["lang", "split", "layer", "seed"])["value"]
    task = acc.set_index(["lang", "split", "layer", "seed"])["value"]
    np.testing.assert_allclose(sel.sort_index(), (task - ctl).sort_index())
    # held-out words + training words = the whole English treebank (84 words in 12 sentences)
    n = acc[(acc.lang == "en") & (acc.layer == 0)].groupby("seed")["n"].sum()
    assert (n == n.iloc[0]).all() and n.iloc[0] > 50
    meta = json.loads((out.parent / "probe.json").read_text())
    assert meta["kind"] == "probe" and meta["pooling"] == "first" and meta["layers"] == [0, 1, 2]
    assert meta["config"]["control"] is True and meta["config"]["seeds"] == 2
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
