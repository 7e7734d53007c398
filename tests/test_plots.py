"""Figures from tidy tables: every kind writes PNG, SVG, PDF and the CSV of the numbers
drawn, through the CLI and in Python, with no warning; and captum layer attribution on a
tiny tagger."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pandas as pd
import pytest
from plot_tables import TABLES, probe_table

from alignfreeze.cli import main
from analysis import plots
from analysis.plots import KINDS, forgetting_data, probe_data

MAGIC = {"png": b"\x89PNG", "svg": b"<?xml", "pdf": b"%PDF"}


def test_kinds_of_the_cli_are_the_plot_kinds():
    from alignfreeze.commands import analysis as cmd

    assert cmd.KINDS == KINDS
    assert {"retrieval", "scan"} <= set(KINDS)


def test_forgetting_is_change_versus_baseline_in_percentage_points():
    f = forgetting_data(probe_table())
    # the default baseline is the protocol's first model, not the table's first ("back")
    assert set(f["baseline_model"]) == {"base"}
    assert list(dict.fromkeys(f["model"])) == ["full", "front", "back"]
    ch = f[f["model"] == "full"].set_index(["lang", "layer"])["change"]
    assert ch[("fr", 0)] == pytest.approx(-8.0)
    assert (f["unit"] == "percentage points").all()
    with pytest.raises(ValueError, match="baseline 'nope'"):
        forgetting_data(probe_table(), baseline="nope")


def test_probe_data_is_percent_with_std_over_seeds():
    p = probe_data(probe_table())
    row = p[(p["model"] == "base") & (p["lang"] == "fr") & (p["layer"] == 0)].iloc[0]
    assert row["value"] == pytest.approx(52.0)  # 0.5 + mean seed offset 0.02, in %
    assert row["std"] == pytest.approx(1.0)  # ddof=1 over seeds 1, 2, 3: 0.01 -> 1 point
    assert row["n_seeds"] == 3 and row["unit"] == "%"
    one = probe_data(probe_table(seeds=(1,)))
    assert one["std"].isna().all()  # no spread from one seed


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_writes_png_svg_pdf_and_the_numbers(kind, tmp_path, capsys):
    table = TABLES[kind]()
    inp = tmp_path / "t.csv"
    table.to_csv(inp, index=False)
    stem = tmp_path / "fig" / kind
    assert main(["plot", kind, "--input", str(inp), "--out", str(stem)]) == 0, capsys.readouterr().err
    for ext, magic in MAGIC.items():
        p = stem.parent / f"{kind}.{ext}"
        assert p.read_bytes()[: len(magic)] == magic, p
        assert p.stat().st_size > 1000
    data = pd.read_csv(stem.parent / f"{kind}.csv")
    _, expected, _ = plots.figure(kind, table)
    # the CSV holds exactly the numbers drawn
    assert list(data.columns) == list(expected.columns)
    assert len(data) == len(expected) > 0
    num = expected.select_dtypes("number").columns
    np.testing.assert_allclose(data[num].to_numpy(float), expected[num].to_numpy(float), equal_nan=True)
    assert "wrote" in capsys.readouterr().out


@pytest.mark.parametrize("kind", KINDS)
def test_no_warning_on_normal_use(kind, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig, data, notes = plots.figure(kind, TABLES[kind]())
        plots.save_figure(fig, data, tmp_path / kind)
    assert notes == []


def test_a_figure_is_saved_all_or_nothing(tmp_path, monkeypatch):
    """A failure or Ctrl-C while the formats are written leaves the old files (or none) and
    no temporary file; the files get the user's umask, not a temporary file's 0600."""
    fig, data, _ = plots.figure("cka", TABLES["cka"]())
    stem = tmp_path / "fig"
    for ext in (*plots.FORMATS, "csv"):
        (tmp_path / f"fig.{ext}").write_text(f"old {ext}\n")
    real = type(fig).savefig

    def stop_at_pdf(self, fname, *args, format=None, **kw):  # noqa: A002 - matplotlib's name
        if format == "pdf":
            raise KeyboardInterrupt
        return real(self, fname, *args, format=format, **kw)

    monkeypatch.setattr(type(fig), "savefig", stop_at_pdf)
    with pytest.raises(KeyboardInterrupt):
        plots.save_figure(fig, data, stem)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fig.csv", "fig.pdf", "fig.png", "fig.svg"]
    assert all((tmp_path / f"fig.{ext}").read_text() == f"old {ext}\n" for ext in (*plots.FORMATS, "csv"))
    monkeypatch.setattr(type(fig), "savefig", real)
    old = os.umask(0o027)
    try:
        paths = plots.save_figure(fig, data, stem)
    finally:
        os.umask(old)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fig.csv", "fig.pdf", "fig.png", "fig.svg"] == \
        sorted(p.name for p in paths)
    for p in paths:
        assert p.stat().st_mode & 0o777 == 0o640, p
        assert p.read_bytes().startswith(MAGIC[p.suffix[1:]]) if p.suffix != ".csv" else \
            p.read_text() == data.to_csv(index=False)


DRAWERS = {
    "drift": lambda d, ax: plots.plot_drift(d, "fr", ax=ax),
    "drift-lines": lambda d, ax: plots.plot_drift_lines(d, "fr", ax=ax),
    "probe": lambda d, ax: plots.plot_probe(d, "base", "upos", ax=ax),
    "forgetting": lambda d, ax: plots.plot_forgetting(d, "full", "upos", ax=ax),
    "cka": lambda d, ax: plots.plot_cka(d, ax=ax),
    "typology": lambda d, ax: plots.plot_typology(d, ax=ax),
    "attribution": lambda d, ax: plots.plot_attribution(d, ax=ax),
    "retrieval": lambda d, ax: plots.plot_retrieval(d, ax=ax),
    "scan": lambda d, ax: plots.plot_scan(d, ax=ax),
    "layer-effect": lambda d, ax: plots.plot_layer_effect(d, ax=ax),
}


@pytest.mark.parametrize("kind", KINDS)
def test_plot_function_takes_and_returns_ax(kind):
    import matplotlib.pyplot as plt

    _, data, _ = plots.figure(kind, TABLES[kind]())
    fig, ax = plt.subplots()
    try:
        assert DRAWERS[kind](data, ax) is ax
        assert ax.get_title()
        assert all(t.get_rotation() == 0 for t in ax.get_yticklabels())
        assert ax.get_ylabel()
        # without an ax, a new one is made and returned
        own = DRAWERS[kind](data, None)
        assert own is not ax and own.get_title() == ax.get_title()
        plt.close(own.figure)
    finally:
        plt.close(fig)


def test_options_title_size_and_where(tmp_path):
    inp = tmp_path / "p.csv"
    probe_table().to_csv(inp, index=False)
    stem = tmp_path / "f"
    assert main(["plot", "probe", "--input", str(inp), "--out", str(stem), "--title", "My probes",
                 "--size", "8", "3", "--where", "seed=2", "--where", "lang=fr"]) == 0
    data = pd.read_csv(tmp_path / "f.csv")
    assert set(data["lang"]) == {"fr"} and (data["n_seeds"] == 1).all()
    fig, _, _ = plots.figure("probe", probe_table(), title="My probes", size=(8, 3))
    assert fig._suptitle.get_text() == "My probes"
    assert tuple(fig.get_size_inches()) == (8, 3)


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
