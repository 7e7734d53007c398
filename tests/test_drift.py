"""Drift CLI end to end on tiny models: self-drift is zero, base checks, bad inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from alignfreeze.cli import main


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A tiny base model and a perturbed copy, saved as HF folders."""
    from core.tiny import tiny_model

    root = tmp_path_factory.mktemp("drift")
    model, tok = tiny_model("bert")
    base = root / "base"
    model.save_pretrained(base)
    tok.save_pretrained(base)
    with torch.no_grad():
        for p in model.encoder.layer[1].parameters():
            p.add_(torch.randn_like(p) * 0.5)
    pert = root / "pert"
    model.save_pretrained(pert)
    tok.save_pretrained(pert)
    return base, pert


def _run(args) -> int:
    return main([*args, "--no-progress"])


def test_self_drift_is_zero(saved, fixtures_dir, tmp_path):
    base, _ = saved
    out = tmp_path / "d.csv"
    tb = [str(fixtures_dir / "en_demo-ud-test.conllu"), str(fixtures_dir / "fr_demo-ud-test.conllu")]
    assert _run(["drift", "--base", str(base), "--model", str(base), "--treebank", *tb,
                 "--ci-groups", "5", "--out", str(out)]) == 0
    df = pd.read_csv(out)
    assert set(df["lang"]) == {"en", "fr"}
    assert set(df["layer"]) == {0, 1, 2}
    from core.conllu import read_conllu

    n_sent = len(list(read_conllu(tb[0])))
    assert (df[df.lang == "en"]["n_sentences"] == n_sent).all()
    assert (df[df.lang == "en"]["n_words"] == sum(len(s) for s in read_conllu(tb[0]))).all()
    for m in ("cka", "cka_debiased"):  # identical features: every leave-out is 1 as well
        np.testing.assert_allclose(df[df.metric == m][["value", "ci_low", "ci_high"]].to_numpy(), 1.0, atol=1e-6)
    for m in ("cos_dist", "rel_l2"):
        np.testing.assert_allclose(df[df.metric == m]["value"], 0.0, atol=1e-6)
        np.testing.assert_allclose(df[df.metric == m][["ci_low", "ci_high"]].to_numpy(), 0.0, atol=1e-6)


def test_perturbed_drift_grows_above_the_perturbed_layer(saved, fixtures_dir, tmp_path):
    base, pert = saved
    out = tmp_path / "d.csv"
    assert _run(["drift", "--base", str(base), "--model", str(pert), "--treebank",
                 str(fixtures_dir / "en_demo-ud-test.conllu"), "--ci-groups", "6", "--out", str(out)]) == 0
    df = pd.read_csv(out).set_index(["metric", "layer"])
    # layers 0 and 1 are untouched (block 2 = layer index 1 in encoder.layer[1] -> hidden_states[2])
    assert df.loc[("cos_dist", 0), "value"] == pytest.approx(0.0, abs=1e-6)
    assert df.loc[("cos_dist", 1), "value"] == pytest.approx(0.0, abs=1e-6)
    assert df.loc[("cos_dist", 2), "value"] > 1e-3
    assert df.loc[("cka", 2), "value"] < 0.9999
    for m in ("cka", "cka_debiased", "cos_dist", "rel_l2"):  # every point inside a real interval
        lo, hi, v = df.loc[(m, 2), ["ci_low", "ci_high", "value"]]
        assert lo <= v <= hi and hi > lo, m
    assert df.loc[("cka", 2), "ci_high"] <= 1.0 and df.loc[("cos_dist", 2), "ci_low"] >= 0.0
    # the same groups and numbers again with the same seed; no intervals with --ci-groups 0
    out2 = tmp_path / "d2.csv"
    assert _run(["drift", "--base", str(base), "--model", str(pert), "--treebank",
                 str(fixtures_dir / "en_demo-ud-test.conllu"), "--ci-groups", "0", "--out", str(out2)]) == 0
    df2 = pd.read_csv(out2).set_index(["metric", "layer"])
    assert df2["ci_low"].isna().all() and df2["ci_high"].isna().all()
    np.testing.assert_allclose(df2["value"], df.loc[df2.index, "value"], rtol=1e-5, atol=1e-7)


def test_mismatched_base_refused_unless_forced(saved, fixtures_dir, tmp_path, capsys):
    base, pert = saved
    from core.manifest import write_manifest

    ck = tmp_path / "ck"
    import shutil

    shutil.copytree(pert, ck)
    write_manifest(ck, {"kind": "realign", "base_model": {"name": "other", "weight_hash": "0" * 64}})
    tb = str(fixtures_dir / "en_demo-ud-test.conllu")
    args = ["drift", "--base", str(base), "--model", str(ck), "--treebank", tb, "--ci-groups", "0",
            "--out", str(tmp_path / "d.csv")]
    assert _run(args) == 2
    err = capsys.readouterr().err
    assert "weight_hash" in err and "'other'" in err and "(use --force to compare anyway)" in err
    assert not (tmp_path / "d.csv").exists()
    assert _run([*args, "--force"]) == 0
    assert (tmp_path / "d.csv").exists()


def test_matching_manifest_accepted(saved, fixtures_dir, tmp_path, capsys):
    base, pert = saved
    import shutil

    from core.manifest import base_weight_hash, write_manifest
    from core.models import load

    ck = tmp_path / "ck"
    shutil.copytree(pert, ck)
    write_manifest(ck, {"kind": "realign", "base_model": {"name": "b", "weight_hash": base_weight_hash(load(str(base))[0])}})
    assert _run(["drift", "--base", str(base), "--model", str(ck), "--treebank",
                 str(fixtures_dir / "en_demo-ud-test.conllu"), "--ci-groups", "0", "--out", str(tmp_path / "d.csv")]) == 0
    assert "matches" in capsys.readouterr().err


def test_empty_layer_selection_and_bad_output(saved, fixtures_dir, tmp_path, capsys):
    base, _ = saved
    tb = str(fixtures_dir / "en_demo-ud-test.conllu")
    assert _run(["drift", "--base", str(base), "--model", str(base), "--treebank", tb, "--layers", ",",
                 "--out", str(tmp_path / "d.csv")]) == 2
    assert "layer" in capsys.readouterr().err
    assert _run(["drift", "--base", str(base), "--model", str(base), "--treebank", tb, "--layers", "7",
                 "--out", str(tmp_path / "d.csv")]) == 2
    assert "0..2" in capsys.readouterr().err
    assert _run(["drift", "--base", str(base), "--model", str(base), "--treebank", str(tmp_path / "none.conllu"),
                 "--out", str(tmp_path / "d.csv")]) == 2


def test_interval_options_are_checked_before_any_work(saved, fixtures_dir, tmp_path, capsys, monkeypatch):
    base, _ = saved
    tb = str(fixtures_dir / "en_demo-ud-test.conllu")
    for opt, val, msg in (("--ci-groups", "1", "at least 5"), ("--ci-groups", "4", "at least 5"),
                          ("--ci-groups", "-3", "at least 5"), ("--ci-level", "95", "in (0, 1)")):
        assert _run(["drift", "--base", str(base), "--model", str(base), "--treebank", tb, opt, val,
                     "--out", str(tmp_path / "d.csv")]) == 2
        assert msg in capsys.readouterr().err
    assert not (tmp_path / "d.csv").exists()
    # refused by the command's checks, before any model is loaded
    import core.models

    def no_load(*a, **k):
        raise AssertionError("a model was loaded before the options were checked")

    monkeypatch.setattr(core.models, "load", no_load)
    assert _run(["drift", "--base", str(base), "--model", str(base), "--treebank", tb,
                 "--ci-groups", "3", "--out", str(tmp_path / "d.csv")]) == 2
    assert "--ci-groups 3: expected 0 (no intervals) or at least 5" in capsys.readouterr().err
    assert _run(["drift", "--base", str(base), "--model", str(base), "--treebank", tb,
                 "--ci-level", "1.0", "--out", str(tmp_path / "d.csv")]) == 2
    assert "--ci-level 1.0: expected a coverage in (0, 1)" in capsys.readouterr().err


class TableExtractor:
    """A stand-in WordFeatureExtractor: the vector of a word is looked up in a table; words in
    ``invalid`` were reached by no sub-word (valid False)."""

    def __init__(self, table: dict, invalid=(), layers=(0,), chunks_short: bool = False):
        self.table, self.invalid, self.layers, self.short = table, set(invalid), tuple(layers), chunks_short

    def iter_chunks(self, sentences, chunk_sentences=512):
        from core.features import WordFeatures

        sentences = list(sentences)
        for a in range(0, len(sentences) - (1 if self.short else 0), chunk_sentences):
            part = sentences[a:a + chunk_sentences]
            words = [w for s in part for w in s]
            feats = np.stack([self.table[w] for w in words]).astype(np.float32)
            yield WordFeatures(self.layers, {lay: feats for lay in self.layers},
                               np.concatenate([[0], np.cumsum([len(s) for s in part])]),
                               np.array([w not in self.invalid for w in words]), "first")


def _world():
    rng = np.random.default_rng(3)
    sents = [["a0", "a1", "a2"], ["b0"], ["c0", "c1"], ["d0", "d1"], ["e0", "e1", "e2"], ["f0"]]
    base = {w: rng.normal(size=4) for s in sents for w in s}
    base["a1"] *= 0.1  # a small vector is not a zero vector
    ckpt = {w: v + 0.3 * rng.normal(size=4) for w, v in base.items()}
    ckpt["c1"] = np.zeros(4)  # a zero vector in the checkpoint: left out, with a warning
    invalid = {"d0", "d1"}  # no sub-word reached them: sentence d has no usable word
    return sents, base, ckpt, invalid


def test_drift_rows_count_and_average_only_usable_words(capsys):
    from analysis.drift import drift_rows

    sents, base, ckpt, invalid = _world()
    rows = drift_rows(TableExtractor(base, invalid), {"ck": TableExtractor(ckpt, invalid)}, sents, "xx",
                      ci_groups=5, chunk_sentences=2)
    by = {r["metric"]: r for r in rows}
    used = [w for s in sents for w in s if w not in invalid and w != "c1"]
    assert {r["n_words"] for r in rows} == {len(used)} and {r["n_sentences"] for r in rows} == {5}
    cos = np.mean([1 - base[w] @ ckpt[w] / np.linalg.norm(base[w]) / np.linalg.norm(ckpt[w]) for w in used])
    rel = np.mean([np.linalg.norm(ckpt[w] - base[w]) / np.linalg.norm(base[w]) for w in used])
    assert by["cos_dist"]["value"] == pytest.approx(cos, rel=1e-5)
    assert by["rel_l2"]["value"] == pytest.approx(rel, rel=1e-5)
    err = capsys.readouterr().err
    assert "warning: ck xx layer 0: 1 word(s) with a zero vector left out of the drift metrics" in err
    assert {(r["model"], r["lang"], r["layer"]) for r in rows} == {("ck", "xx", 0)}
    assert sorted(r["metric"] for r in rows) == sorted(("cka", "cka_debiased", "cos_dist", "rel_l2"))
    assert "no interval" not in err or np.isnan(by["cka"]["ci_low"])
    # four sentences cannot make the 5 groups a CKA interval needs: no interval, and it is said
    few = {r["metric"]: r for r in drift_rows(TableExtractor(base), {"ck": TableExtractor(ckpt)}, sents[:4], "xx",
                                               ci_groups=10)}
    assert np.isnan(few["cka"]["ci_low"]) and np.isnan(few["cka_debiased"]["ci_high"])
    assert np.isfinite(few["cos_dist"]["ci_low"])  # leave-one-sentence-out needs 2 sentences
    assert "ck xx: 4 sentence group(s) with usable words (4 sentences): CKA rows have no interval" \
        in capsys.readouterr().err
    # a narrower level gives a narrower interval around the same value
    wide = {r["metric"]: r for r in drift_rows(TableExtractor(base, invalid), {"ck": TableExtractor(ckpt, invalid)},
                                                 sents, "xx", ci_groups=5, level=0.99)}
    for m in ("cos_dist", "rel_l2"):
        assert wide[m]["ci_high"] - wide[m]["ci_low"] > by[m]["ci_high"] - by[m]["ci_low"] > 0
    with pytest.raises(ValueError, match="no word has a representation in both models"):
        drift_rows(TableExtractor(base, set(base)), {"ck": TableExtractor(ckpt)}, sents, "xx")
    from analysis.drift import LayerDrift

    with pytest.raises(ValueError, match="no word has a representation in both models"):
        LayerDrift().rows()  # nothing streamed at all
    with pytest.raises(ValueError, match=r"ck: layers \(0, 1\) differ from the base's \(0,\) \(models with "
                                         "different depths cannot be compared layer by layer\\)"):
        drift_rows(TableExtractor(base), {"ck": TableExtractor(ckpt, layers=(0, 1))}, sents, "xx")
    with pytest.raises(ValueError):  # a checkpoint stream that ends early is never truncated silently
        drift_rows(TableExtractor(base), {"ck": TableExtractor(ckpt, chunks_short=True)}, sents, "xx",
                   chunk_sentences=1)
