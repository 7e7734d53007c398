"""The facade's verbs give the tables of the CLI commands on the same inputs: same rows,
same columns, same numbers (both run on tiny random models saved as HF folders; the CLI
in-process through ``alignfreeze.cli.main``). Display names change the model column only;
loaded (model, tokenizer) pairs give the numbers of their saved folders."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import torch

import alignfreeze as af
from alignfreeze.cli import main


@pytest.fixture(scope="module")
def saved(tmp_path_factory, request):
    """A tiny BERT base, a copy with block 2 perturbed (both HF folders), and the base loaded."""
    from core.tiny import tiny_model

    root = tmp_path_factory.mktemp("facade")
    model, tok = tiny_model("bert")
    model.pooler = None
    base = root / "base"
    model.save_pretrained(base)
    tok.save_pretrained(base)
    pert_model, _ = tiny_model("bert")
    pert_model.pooler = None
    with torch.no_grad():
        for p in pert_model.encoder.layer[1].parameters():
            p.add_(torch.randn_like(p) * 0.5)
    pert = root / "runs" / "pert"
    pert_model.save_pretrained(pert)
    tok.save_pretrained(pert)
    return {"base": str(base), "pert": str(pert), "root": root, "pert_pair": (pert_model, tok)}


@pytest.fixture
def tb(fixtures_dir):
    return [str(fixtures_dir / "en_demo-ud-test.conllu"), str(fixtures_dir / "fr_demo-ud-test.conllu")]


def _cli(*args) -> None:
    assert main([*args]) == 0


def _same(cli_csv, df: pd.DataFrame) -> None:
    """The CLI's CSV and the verb's DataFrame hold the same table, number for number."""
    expected = pd.read_csv(cli_csv)
    # the CSV round trip is exact for floats (shortest repr), so compare exactly
    got = pd.read_csv(__import__("io").StringIO(df.to_csv(index=False)))
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    assert list(df.columns) == list(expected.columns) and len(df) == len(expected) > 0


def test_drift_is_the_cli_table(saved, tb, tmp_path):
    out = tmp_path / "drift.csv"
    _cli("drift", "--base", saved["base"], "--model", saved["pert"], "--treebank", *tb, "--no-progress",
         "--out", str(out))
    df = af.drift(saved["base"], [saved["pert"]], tb, progress=False)
    _same(out, df)
    assert set(df["model"]) == {"pert"} and set(df["lang"]) == {"en", "fr"}
    assert df[(df.metric == "cos_dist") & (df.layer == 2)]["value"].min() > 1e-3  # it measured something
    # display names: the model column only; loaded pairs: the same numbers as their folders
    named = af.drift({"pretrained": af.load_model(saved["base"])}, {"perturbed": saved["pert_pair"]}, tb,
                     progress=False)
    assert set(named["model"]) == {"perturbed"} and set(named["base"]) == {"pretrained"}
    cols = ["lang", "layer", "metric", "value", "ci_low", "ci_high", "n_words", "n_sentences", "treebank"]
    pd.testing.assert_frame_equal(named[cols], df[cols], check_exact=True)


def test_drift_options_reach_the_rows_and_max_sentences_cuts(saved, tb, tmp_path):
    out = tmp_path / "drift.csv"
    _cli("drift", "--base", saved["base"], "--model", saved["pert"], "--treebank", tb[0], "--max-sentences", "5",
         "--seed", "3", "--layers", "1,2", "--pooling", "mean", "--no-progress", "--out", str(out))
    df = af.drift(saved["base"], saved["pert"], tb[0], max_sentences=5, seed=3, layers="1,2", pooling="mean",
                  progress=False)
    _same(out, df)
    assert set(df["n_sentences"]) == {5} and set(df["layer"]) == {1, 2}


def test_cka_is_the_cli_table(saved, tb, tmp_path):
    from core.conllu import read_conllu

    one, two = tmp_path / "one.csv", tmp_path / "two.csv"
    words = sum(len(s) for s in list(read_conllu(tb[0]))[:3])  # exactly three sentences: the limit is inclusive
    _cli("cka", "--model", saved["base"], "--treebank", *tb, "--max-words", str(words), "--no-progress",
         "--out", str(one))
    _cli("cka", "--model", saved["base"], "--model", saved["pert"], "--treebank", *tb, "--no-progress",
         "--out", str(two))
    _same(one, af.cka(saved["base"], tb, max_words=words, progress=False))
    assert pd.read_csv(one)["n_words"].iloc[0] == words
    df = af.cka([saved["base"], saved["pert"]], tb, progress=False)
    _same(two, df)
    named = af.cka({"A": saved["base"], "B": saved["pert_pair"]}, tb, progress=False)
    assert (named["model_a"] == "A").all() and (named["model_b"] == "B").all()
    np.testing.assert_array_equal(named["cka"], df["cka"])


def test_word_pairs_and_align_eval_are_the_cli_outputs(saved, fixtures_dir, tmp_path):
    en, fr = fixtures_dir / "en_demo-ud-test.conllu", fixtures_dir / "fr_demo-ud-test.conllu"
    dic = fixtures_dir / "en-fr.txt"
    _cli("pairs", "--src", str(en), "--tgt", str(fr), "--aligner", "dictionary", "--dictionary", str(dic),
         "--out", str(tmp_path / "cli.jsonl"))
    got = af.word_pairs(en, fr, dictionary=dic, out=tmp_path / "af.jsonl")
    assert got.read_bytes() == (tmp_path / "cli.jsonl").read_bytes()

    out = tmp_path / "align.csv"
    _cli("align-eval", "--model", saved["pert"], "--src", str(en), "--tgt", str(fr), "--pairs", str(got),
         "--csls-k", "3", "--no-progress", "--out", str(out))
    df = af.align_eval(saved["pert"], src=en, tgt=fr, pairs=got, csls_k=3, progress=False)
    _same(out, df)
    assert {"sentence", "word"} == set(df["task"]) and set(df["src"]) == {"en"} and set(df["tgt"]) == {"fr"}
    both = af.align_eval({"base": saved["base"], "pert": saved["pert"]}, src=en, tgt=fr, progress=False)
    assert list(dict.fromkeys(both["model"])) == ["base", "pert"]
    pert = both[both["model"] == "pert"].reset_index(drop=True)
    sent = df[df["task"] == "sentence"].reset_index(drop=True)
    np.testing.assert_array_equal(pert["value"], sent["value"])


def test_probe_is_the_cli_table(saved, tb, tmp_path):
    out = tmp_path / "probe.csv"
    _cli("probe", "--model", saved["base"], "--train", tb[0], "--eval", *tb, "--seeds", "2", "--control",
         "--no-progress", "--out", str(out))
    df = af.probe(saved["base"], train=tb[0], eval=tb, seeds=2, control=True, progress=False)
    _same(out, df)
    assert {"upos", "upos-control"} <= set(df["task"]) and "selectivity" in set(df["metric"])
    assert df.attrs["metadata"][saved["base"]]["layers"] == [0, 1, 2]
    # a loaded pair under a display name: the same numbers
    named = af.probe({"tiny": af.load_model(saved["base"])}, train=tb[0], eval=tb, seeds=2, control=True,
                     progress=False)
    assert set(named["model"]) == {"tiny"}
    np.testing.assert_array_equal(named["value"], df["value"])


def test_features_are_the_cli_shards(saved, tb, tmp_path):
    from core.features import ShardedFeatures

    out = tmp_path / "feats"
    _cli("features", "--model", saved["pert"], "--treebank", *tb, "--dtype", "float32", "--layers", "0,2",
         "--out", str(out))
    disk = ShardedFeatures(out).load()
    f = af.features(saved["pert"], tb, layers="0,2", progress=False)
    assert f.layers == (0, 2) == disk.layers
    for lay in f.layers:
        np.testing.assert_array_equal(f[lay], disk.features[lay])
    np.testing.assert_array_equal(f.words["valid"].to_numpy(), disk.valid)
    assert len(f.words) == disk.n_words and set(f.words["lang"]) == {"en", "fr"}
    assert f.words.groupby("sentence").size().tolist() == np.diff(disk.offsets).tolist()
    # the sentence vectors are align-eval's: the mean of a sentence's valid word vectors
    first = f.words["sentence"] == 0
    np.testing.assert_allclose(f.sentence_vectors(2)[0], f[2][first.to_numpy()].mean(0), rtol=1e-6,
                               atol=1e-6)  # float32 sums in another order: ~1e-9 apart near 0
    with pytest.raises(KeyError, match="layer 1 was not extracted"):
        f[1]


@pytest.fixture(scope="module")
def decoder(tmp_path_factory):
    from core.tiny import tiny_model

    model, tok = tiny_model("llama", layers=4)
    d = tmp_path_factory.mktemp("dec") / "llama"
    model.save_pretrained(d)
    tok.save_pretrained(d)
    return str(d)


def test_layer_scan_and_choice_are_the_cli_ones(decoder, fixtures_dir, tmp_path, capsys):
    en, de = fixtures_dir / "en_demo-ud-test.conllu", fixtures_dir / "de_demo-ud-test.conllu"
    out = tmp_path / "scan.csv"
    capsys.readouterr()
    _cli("midalign", "scan", "--model", decoder, "--src", str(en), "--tgt", str(de), "--out", str(out))
    printed = int(re.search(r"would choose K = (\d+)", capsys.readouterr().out).group(1))
    df = af.layer_scan(decoder, src=en, tgt=de)
    _same(out, df)
    assert set(df["layer"]) == set(range(5)) and set(df["src"]) == {"en"} and set(df["tgt"]) == {"de"}
    choice = af.choose_layer(df, model=decoder)
    assert choice.layer == printed == af.choose_layer(out, n_layers=4).layer
    assert 1 <= choice.layer <= 3 and choice.runner_up is not None
    # several targets: one scan per language pair, the same rows as one scan each
    fr = fixtures_dir / "fr_demo-ud-test.conllu"
    two = af.layer_scan({"tiny": af.load_model(decoder)}, src=en, tgt={"de": de, "fr": fr})
    assert list(dict.fromkeys(two["tgt"])) == ["de", "fr"] and set(two["model"]) == {"tiny"}
    np.testing.assert_array_equal(two[two["tgt"] == "de"]["value"], df["value"])


def test_realign_is_the_cli_checkpoint_and_reuse_is_honest(saved, fixtures_dir, tmp_path, capsys):
    from safetensors.torch import load_file

    from core.manifest import read_manifest

    pairs = af.word_pairs(fixtures_dir / "en_demo-ud-test.conllu", fixtures_dir / "fr_demo-ud-test.conllu",
                          dictionary=fixtures_dir / "en-fr.txt", out=tmp_path / "p.jsonl")
    _cli("realign", "--model", saved["base"], "--pairs", str(pairs), "--freeze", "front", "--steps", "2",
         "--batch-size", "4", "--lr", "0.001", "--no-progress", "--out", str(tmp_path / "cli"))
    ck = af.realign(saved["base"], pairs, out=tmp_path / "af", freeze=af.STRATEGIES["front"], steps=2, batch_size=4,
                    lr=1e-3, progress=False)
    a, b = load_file(tmp_path / "cli" / "model.safetensors"), load_file(ck / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    man = read_manifest(ck)
    assert man["config"] == read_manifest(tmp_path / "cli")["config"] | {"out": str(ck)}
    # the very same run again: reused, said so
    capsys.readouterr()
    again = af.realign(saved["base"], pairs, out=ck, freeze="front", steps=2, batch_size=4, lr=1e-3, progress=False)
    assert again == ck and "reused" in capsys.readouterr().err
    # another configuration in the same folder: refused, naming the difference
    with pytest.raises(ValueError, match=r"steps: 2 there, 3 asked"):
        af.realign(saved["base"], pairs, out=ck, freeze="front", steps=3, batch_size=4, lr=1e-3, progress=False)
    # a loaded pair is trained on a copy: the caller's model is left as it was
    model, tok = af.load_model(saved["base"])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    af.realign({"tiny": (model, tok)}, pairs, out=tmp_path / "pair", steps=1, batch_size=4, lr=1e-3, progress=False)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert read_manifest(tmp_path / "pair")["base_model"]["name"] == "tiny"
