"""Figures from tidy tables (PNG + SVG + CSV) and captum layer attribution on a tiny tagger."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alignfreeze.cli import main
from analysis.plots import forgetting_data, plot_drift, probe_data


def _probe_table() -> pd.DataFrame:
    rows = []
    for model, shift in (("pretrained", 0.0), ("realigned", -0.1)):
        for lang in ("en", "fr"):
            for layer in range(3):
                for seed in (1, 2):
                    rows.append({"model": model, "lang": lang, "task": "upos", "layer": layer, "seed": seed,
                                 "metric": "accuracy", "value": 0.5 + 0.1 * layer + shift * (layer == 0),
                                 "split": "eval"})
    return pd.DataFrame(rows)


def _drift_table() -> pd.DataFrame:
    rows = [{"model": m, "lang": lang, "layer": lay, "metric": "cka", "value": 1 - 0.1 * lay * k}
            for k, m in enumerate(("full", "front"), 1) for lang in ("en", "fr") for lay in range(3)]
    return pd.DataFrame(rows)


def test_forgetting_is_change_versus_baseline():
    f = forgetting_data(_probe_table(), baseline="pretrained")
    assert set(f["model"]) == {"realigned"}
    ch = f.set_index(["lang", "layer"])["change"]
    assert ch[("en", 0)] == pytest.approx(-0.1)
    assert ch[("en", 2)] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="baseline"):
        forgetting_data(_probe_table(), baseline="nope")
    p = probe_data(_probe_table())
    assert (p["std"] == 0).all() and len(p) == 12


def test_plot_function_takes_and_returns_ax():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from analysis.plots import drift_data

    fig, ax = plt.subplots()
    assert plot_drift(drift_data(_drift_table()), "en", ax=ax) is ax
    assert ax.get_ylabel().startswith("layer")
    plt.close(fig)


@pytest.mark.parametrize("kind", ["drift", "probe", "forgetting", "cka", "typology", "attribution"])
def test_plot_cli_writes_png_svg_csv(kind, tmp_path):
    tables = {
        "drift": _drift_table(),
        "probe": _probe_table(),
        "forgetting": _probe_table(),
        "cka": pd.DataFrame([{"layer_a": a, "layer_b": b, "cka": 1.0 if a == b else 0.5}
                             for a in range(3) for b in range(3)]),
        "typology": pd.DataFrame({"lang": ["fr", "ko", "de"], "gain": [1.0, -2.0, 0.5],
                                  "distance": [0.2, 0.7, 0.3], "feature": "syntactic"}),
        "attribution": pd.DataFrame({"lang": ["en"] * 3, "layer": [0, 1, 2], "share": [0.2, 0.3, 0.5]}),
    }
    inp = tmp_path / "t.csv"
    tables[kind].to_csv(inp, index=False)
    stem = tmp_path / "fig" / kind
    assert main(["plot", kind, "--input", str(inp), "--out", str(stem)]) == 0
    for ext in ("png", "svg", "csv"):
        p = stem.parent / f"{kind}.{ext}"
        assert p.is_file() and p.stat().st_size > (30 if ext == "csv" else 1000), p
    assert (stem.parent / f"{kind}.png").read_bytes()[:4] == b"\x89PNG"
    data = pd.read_csv(stem.parent / f"{kind}.csv")
    assert len(data) > 0
    if kind == "forgetting":
        assert data["change"].min() == pytest.approx(-0.1)


def test_plot_cli_bad_table(tmp_path, capsys):
    inp = tmp_path / "t.csv"
    pd.DataFrame({"x": [1]}).to_csv(inp, index=False)
    assert main(["plot", "drift", "--input", str(inp), "--out", str(tmp_path / "f")]) == 2
    assert "lacks column" in capsys.readouterr().err
    _drift_table().to_csv(inp, index=False)
    assert main(["plot", "drift", "--input", str(inp), "--metric", "rel_l2", "--out", str(tmp_path / "f")]) == 2
    assert "rel_l2" in capsys.readouterr().err


def test_layer_attribution_tiny_tagger(tiny_models):
    from analysis.attribution import layer_attribution

    model, tok = tiny_models("bert", "token-classification")
    df = layer_attribution(model, tok, {"en": [["The", "cat", "sleeps"], ["A", "dog"]], "fr": [["Le", "chat"]]},
                           n_steps=4)
    assert set(df["lang"]) == {"en", "fr"} and set(df["layer"]) == {0, 1, 2}
    sums = df.groupby("lang")["share"].sum()
    np.testing.assert_allclose(sums, 1.0, atol=1e-9)
    assert (df["share"] > 0).all()
    # the model's predictions are unchanged (attribution must not modify the model)
    assert not any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_attribution_cli(tiny_models, fixtures_dir, tmp_path):
    model, tok = tiny_models("bert", "token-classification")
    d = tmp_path / "tagger"
    model.save_pretrained(d)
    tok.save_pretrained(d)
    out = tmp_path / "attr.csv"
    assert main(["attribution", "--model", str(d), "--treebank", str(fixtures_dir / "en_demo-ud-test.conllu"),
                 "--steps", "2", "--max-sentences", "2", "--out", str(out)]) == 0
    df = pd.read_csv(out)
    assert list(df["layer"]) == [0, 1, 2] and (df["n_sentences"] == 2).all()
    assert main(["plot", "attribution", "--input", str(out), "--out", str(tmp_path / "a")]) == 0
    assert (tmp_path / "a.svg").is_file()
