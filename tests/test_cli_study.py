"""The CLI of a real study: selections on every data input (recorded in tables and
manifests), display names for every model (NAME=PATH, --name, manifests), language codes
from the data in the src/tgt columns."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from alignfreeze.cli import main
from core import FIXTURES

EN, FR, DE = (FIXTURES / f"{x}_demo-ud-test.conllu" for x in ("en", "fr", "de"))
N = 12  # sentences of each demo file


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A tiny base model, word pairs en-fr, and two realigned checkpoints both in folders
    called ``realigned`` (full and front, seed 5)."""
    from core.tiny import tiny_model
    from realign.config import RealignConfig
    from realign.train import realign

    root = tmp_path_factory.mktemp("study")
    base = root / "base"
    m, t = tiny_model("bert")
    m.save_pretrained(base)
    t.save_pretrained(base)
    pairs = root / "en-fr.jsonl"
    assert main(["pairs", "--src", f"{EN}@1:10", "--tgt", str(FR), "--aligner", "dictionary",
                 "--dictionary", str(FIXTURES / "en-fr.txt"), "--out", str(pairs)]) == 0
    runs = {}
    for strategy, freeze in (("full", "none"), ("front", "front")):
        out = root / strategy / "realigned"
        realign(RealignConfig(model=str(base), pairs=(str(pairs),), out=str(out), freeze=freeze, steps=1,
                              batch_size=4, lr=1e-3, seed=5), progress=False)
        runs[strategy] = out
    return {"root": root, "base": base, "pairs": pairs, **runs}


def _one_line_error(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("alignfreeze: error")]
    assert len(err) == 1, err
    return err[0]


def test_pairs_records_the_selection_and_the_languages(study, capsys):
    recs = [json.loads(line) for line in study["pairs"].read_text().splitlines()]
    assert {r["src_lang"] for r in recs} == {"en"} and {r["tgt_lang"] for r in recs} == {"fr"}
    assert all(int(r["id"].split("-")[1]) <= 10 for r in recs)  # sentences 1..10 only
    out = study["root"] / "p2.jsonl"
    capsys.readouterr()
    assert main(["pairs", "--src", f"{EN}@sent_ids=demo-02,demo-07", "--tgt", str(FR), "--aligner", "dictionary",
                 "--dictionary", str(FIXTURES / "en-fr.txt"), "--langs", "eng", "fra", "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["selection"] == "sent_ids=demo-02,demo-07" and summary["sentence_pairs"] == 2
    assert {json.loads(line)["tgt_lang"] for line in out.read_text().splitlines()} == {"fra"}
    # a selection past the end: one line, exit 2, nothing written
    bad = study["root"] / "p3.jsonl"
    assert main(["pairs", "--src", f"{EN}@5:99", "--tgt", str(FR), "--aligner", "dictionary",
                 "--dictionary", str(FIXTURES / "en-fr.txt"), "--out", str(bad)]) == 2
    assert "asks for record 99 but the input has 12" in _one_line_error(capsys) and not bad.exists()
    assert main(["pairs", "--src", f"{EN}@5-9", "--tgt", str(FR), "--aligner", "dictionary",
                 "--dictionary", str(FIXTURES / "en-fr.txt"), "--out", str(bad)]) == 2
    assert "selection '5-9' not understood" in _one_line_error(capsys)


def test_drift_names_models_from_manifests_and_records_the_selection(study, tmp_path, capsys):
    out = tmp_path / "drift.csv"
    args = ["drift", "--base", str(study["base"]), "--model", str(study["full"]), str(study["front"]),
            "--treebank", f"{FR}@3:8", "--ci-groups", "0", "--no-progress", "--out", str(out)]
    assert main(args) == 0
    df = pd.read_csv(out)
    assert set(df["model"]) == {"full-s5", "front-s5"}  # not 'realigned', 'realigned'
    assert set(df["model_path"]) == {str(study["full"]), str(study["front"])}
    assert set(df["base"]) == {"base"} and set(df["selection"]) == {"3:8"} and set(df["n_sentences"]) == {6}
    assert main(args[:4] + [f"A={study['full']}", f"B={study['front']}"] + args[6:] + ["--overwrite"]) == 0
    assert set(pd.read_csv(out)["model"]) == {"A", "B"}
    assert main(args + ["--name", "x", "y", "--max-sentences", "2", "--overwrite"]) == 0
    df = pd.read_csv(out)
    assert set(df["model"]) == {"x", "y"} and set(df["selection"]) == {"3:8,first=2"}
    # two plain folders with one name are refused before any model loads
    plain = [tmp_path / "a" / "realigned", tmp_path / "b" / "realigned"]
    for p in plain:
        shutil.copytree(study["base"], p)
    capsys.readouterr()
    assert main(["drift", "--base", str(study["base"]), "--model", *map(str, plain), "--treebank", str(FR),
                 "--out", str(tmp_path / "d2.csv")]) == 2
    assert "two models are named 'realigned'" in _one_line_error(capsys)
    assert main(["drift", "--base", str(study["base"]), "--model", f"bad name={plain[0]}", "--treebank", str(FR),
                 "--out", str(tmp_path / "d2.csv")]) == 2
    assert "expected NAME=PATH" in _one_line_error(capsys)


def test_align_eval_languages_come_from_the_data(study, tmp_path, capsys):
    out = tmp_path / "a.csv"
    assert main(["align-eval", "--model", f"front={study['front']}", "--src", f"{EN}@7:", "--tgt", str(FR),
                 "--pairs", f"{study['pairs']}@1:3", "--no-progress", "--out", str(out)]) == 0
    df = pd.read_csv(out)
    assert set(df["src"]) == {"en"} and set(df["tgt"]) == {"fr"} and set(df["model"]) == {"front"}
    assert set(df.loc[df["task"] == "sentence", "selection"]) == {"7:"}
    assert set(df.loc[df["task"] == "sentence", "n"]) == {N - 6}
    assert set(df.loc[df["task"] == "word", "selection"]) == {"1:3"}
    # word retrieval alone: the languages are the records'
    assert main(["align-eval", "--model", str(study["front"]), "--pairs", str(study["pairs"]), "--no-progress",
                 "--out", str(out), "--overwrite"]) == 0
    df = pd.read_csv(out)
    assert set(df["src"]) == {"en"} and set(df["tgt"]) == {"fr"} and set(df["model"]) == {"front-s5"}
    # records without languages in a file whose name says none: refused, saying how to fix it
    bare = tmp_path / "links.jsonl"
    bare.write_text("".join(json.dumps({k: v for k, v in json.loads(line).items() if not k.endswith("_lang")}) + "\n"
                            for line in study["pairs"].read_text().splitlines()))
    capsys.readouterr()
    assert main(["align-eval", "--model", str(study["front"]), "--pairs", str(bare), "--out", str(tmp_path / "b.csv")]) == 2
    assert "does not say its two languages" in _one_line_error(capsys)
    assert main(["align-eval", "--model", str(study["front"]), "--pairs", str(bare), "--langs", "en", "fr",
                 "--no-progress", "--out", str(tmp_path / "b.csv")]) == 0
    assert set(pd.read_csv(tmp_path / "b.csv")["tgt"]) == {"fr"}


def test_evaluate_takes_a_name_a_selection_and_a_cap(study, tmp_path, tiny_models):
    from core.conllu import UPOS_TAGS

    model, tok = tiny_models("bert", "token-classification")
    model.config.id2label = dict(enumerate(UPOS_TAGS))
    model.config.label2id = {t: i for i, t in enumerate(UPOS_TAGS)}
    tagger = tmp_path / "tagger"
    model.save_pretrained(tagger)
    tok.save_pretrained(tagger)
    out = tmp_path / "e.csv"
    assert main(["evaluate", f"pos={tagger}", "--treebank", f"{FR}@split=0.5,seed=1,part=test", str(DE),
                 "--max-sentences", "4", "--no-progress", "--out", str(out)]) == 0
    df = pd.read_csv(out)
    assert list(df["model"]) == ["pos", "pos"] and list(df["n_sentences"]) == [4, 4]
    assert list(df["selection"]) == ["split=0.5,seed=1,part=test,first=4", "first=4"]


def test_features_data_stats_and_attribution_read_selections(study, tmp_path, capsys):
    feats = tmp_path / "feats"
    assert main(["features", "--model", str(study["base"]), "--treebank", f"{FR}@2:4", "--layers", "0",
                 "--out", str(feats)]) == 0
    index = json.loads((feats / "index.json").read_text())
    assert index["stats"]["sentences"] == 3
    (e,) = index["meta"]["data_files"]
    assert e["selection"] == "2:4" and e["sentences"] == 3 and e["of"] == N
    capsys.readouterr()
    assert main(["data", "stats", f"{FR}@sent_ids=demo-01,demo-02", str(DE), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats[f"{FR}@sent_ids=demo-01,demo-02"]["sentences"] == 2 and stats[str(DE)]["sentences"] == N


def test_midalign_scan_names_languages_and_selection(tmp_path):
    from _midalign import saved_lm

    base = saved_lm(tmp_path)
    out = tmp_path / "scan.csv"
    assert main(["midalign", "scan", "--model", f"lm={base}", "--src", f"{EN}@1:6", "--tgt", str(DE),
                 "--out", str(out)]) == 0
    df = pd.read_csv(out)
    assert set(df["model"]) == {"lm"} and set(df["src"]) == {"en"} and set(df["tgt"]) == {"de"}
    assert set(df["selection"]) == {"1:6"} and set(df["n"]) == {6}


def test_realign_cli_names_its_output_and_says_what_it_trained_on(study, tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["realign", "--model", str(study["base"]), "--pairs", f"{study['pairs']}@2:6", "--out", str(out),
                 "--steps", "2", "--batch-size", "2", "--checkpoint-every", "1", "--name", "mine",
                 "--no-progress"]) == 0
    printed = capsys.readouterr()
    assert f"{out} (mine)" in printed.out and "5 records, selection 2:6" in printed.out
    assert "deleted its 1 resumable checkpoint(s)" in printed.err and not (out / "checkpoints").exists()
