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
    assert "weight_hash" in capsys.readouterr().err
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


def test_interval_options_are_checked_before_any_work(saved, fixtures_dir, tmp_path, capsys):
    base, _ = saved
    tb = str(fixtures_dir / "en_demo-ud-test.conllu")
    for opt, val, msg in (("--ci-groups", "1", "at least 2"), ("--ci-groups", "-3", "at least 2"),
                          ("--ci-level", "95", "in (0, 1)")):
        assert _run(["drift", "--base", str(base), "--model", str(base), "--treebank", tb, opt, val,
                     "--out", str(tmp_path / "d.csv")]) == 2
        assert msg in capsys.readouterr().err
    assert not (tmp_path / "d.csv").exists()
