"""A figure that cannot be drawn honestly is a one-line ``alignfreeze: error:`` naming the
file and what is missing (exit status 2), never a traceback: for every plot kind, an empty
table, a table without a column it needs, and a table with nothing to compare."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from plot_tables import (
    TABLES,
    attribution_table,
    cka_table,
    drift_table,
    layer_effect_table,
    probe_table,
    retrieval_table,
    scan_table,
    typology_table,
)

from alignfreeze.cli import main
from analysis import plots
from analysis.plots import KINDS


def _run(kind, table, tmp_path, capsys, *extra) -> str:
    inp = tmp_path / "table.csv"
    table.to_csv(inp, index=False)
    out = tmp_path / "out" / "fig"
    rc = main(["plot", kind, "--input", str(inp), "--out", str(out), *extra])
    err = capsys.readouterr().err
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("alignfreeze: error: "), err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())  # nothing half-written
    return lines[0]


MISSING = {"drift": "lang", "drift-lines": "layer", "probe": "task", "forgetting": "task", "cka": "layer_b",
           "typology": "distance", "attribution": "share", "retrieval": "direction", "scan": "metric",
           "layer-effect": "effect"}


@pytest.mark.parametrize("kind", KINDS)
def test_missing_column_is_named(kind, tmp_path, capsys):
    col = MISSING[kind]
    msg = _run(kind, TABLES[kind]().drop(columns=[col]), tmp_path, capsys)
    assert "table.csv" in msg and f"the {kind} figure needs column(s) {col}" in msg


@pytest.mark.parametrize("kind", KINDS)
def test_empty_table_is_named(kind, tmp_path, capsys):
    msg = _run(kind, TABLES[kind]().iloc[:0], tmp_path, capsys)
    assert "table.csv: the table has a header" in msg and "and no rows" in msg
    with pytest.raises(ValueError, match="no rows"):
        plots.figure(kind, TABLES[kind]().iloc[:0])


def test_empty_file_folder_and_not_csv(tmp_path, capsys):
    (tmp_path / "zero.csv").write_bytes(b"")
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00garbage\x00\n\xff")
    for name, expected in (("zero.csv", "empty file"), ("bin.csv", "not a CSV table"), ("", "is a folder"),
                           ("absent.csv", "no such table")):
        rc = main(["plot", "drift", "--input", str(tmp_path / name), "--out", str(tmp_path / "f")])
        err = capsys.readouterr().err
        assert rc == 2 and expected in err and len(err.strip().splitlines()) == 1, err


def _two(table_a: pd.DataFrame, table_b: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([table_a, table_b], ignore_index=True)


# kind, table with nothing to compare, the words of the error
NOTHING = [
    ("drift", _two(drift_table(models=("full",), langs=("fr",)), drift_table(models=("front",), langs=("de",))),
     "'front' and 'full' share no language (front: de; full: fr)"),
    ("drift-lines", _two(drift_table(models=("full",), langs=("fr",), intervals=True),
                         drift_table(models=("front",), langs=("de",), intervals=True)),
     "'front' and 'full' share no language (front: de; full: fr)"),
    ("probe", _two(probe_table(models=("base",)), probe_table(models=("full",), task="pos")),
     "'full' and 'base' share no task (full: pos; base: upos)"),
    ("forgetting", _two(probe_table(models=("base",)), probe_table(models=("full",), task="pos")),
     "'full' and 'base' share no task (full: pos; base: upos)"),
    ("forgetting", _two(probe_table(models=("base",), langs=("en",)), probe_table(models=("full",), langs=("ko",))),
     "share no language (full: ko; base: en)"),
    ("forgetting", _two(probe_table(models=("base",), layers=range(3)),
                        probe_table(models=("full",), layers=range(3, 6))),
     "share no layer (full: 3, 4, 5; base: 0, 1, 2)"),
    ("forgetting", probe_table(models=("base",)), "one model only ('base')"),
    ("cka", cka_table().assign(cka=float("nan")), "no finite linear CKA value"),
    ("typology", typology_table().query("lang == 'fr'"), "nothing to compare"),
    ("attribution", _two(attribution_table().assign(model="full"),
                         attribution_table().query("lang == 'en'").assign(model="front", lang="de")),
     "'front' and 'full' share no language (front: de; full: en, fr)"),
    ("retrieval", _two(retrieval_table(models=("full",)), retrieval_table(models=("front",)).assign(tgt="ko")),
     "'front' and 'full' share no language pair (front: en\u2013ko; full: en\u2013de)"),
    ("scan", _two(scan_table(models=("a",)).query("metric == 'cka'"),
                  scan_table(models=("b",)).query("metric != 'cka'")),
     "'b' and 'a' share no metric (b: retrieval; a: cka)"),
    ("layer-effect", _two(layer_effect_table(langs=("fr",)).assign(model="full"),
                          layer_effect_table(langs=("de",)).assign(model="front")),
     "'front' and 'full' share no language (front: de; full: fr)"),
]


@pytest.mark.parametrize("kind,table,words", NOTHING, ids=[f"{k}-{i}" for i, (k, _, _) in enumerate(NOTHING)])
def test_nothing_to_compare_is_a_clear_error(kind, table, words, tmp_path, capsys):
    msg = _run(kind, table, tmp_path, capsys)
    assert words in msg, msg


def test_every_kind_has_a_nothing_to_compare_case():
    assert {k for k, _, _ in NOTHING} == set(KINDS)


def test_bad_cells_options_and_filters_are_named(tmp_path, capsys):
    t = probe_table()
    t["layer"] = t["layer"].astype(object)
    t.loc[5, "layer"] = "six"
    assert "column layer holds 'six'" in _run("probe", t, tmp_path, capsys)
    assert "data row 6" in _run("probe", t, tmp_path, capsys)
    t = probe_table()
    assert "no rows with metric 'f1'" in _run("probe", t, tmp_path, capsys, "--metric", "f1")
    assert "baseline 'pretrained' is not among" in _run("forgetting", t, tmp_path, capsys,
                                                        "--baseline", "pretrained")
    assert "needs symmetric limits" in _run("forgetting", t, tmp_path, capsys, "--scale", "0", "5")
    assert "LOW < HIGH" in _run("probe", t, tmp_path, capsys, "--scale", "5", "0")
    assert "where seed=9: no row has that value" in _run("probe", t, tmp_path, capsys, "--where", "seed=9")
    assert "the table has no column sed" in _run("probe", t, tmp_path, capsys, "--where", "sed=1")
    assert "expected COLUMN=VALUE" in _run("probe", t, tmp_path, capsys, "--where", "seed")
    assert "'nope' not among the table's models" in _run("probe", t, tmp_path, capsys, "--order", "nope")
    twice = pd.concat([t, t])
    assert "the same measurement twice" in _run("probe", twice, tmp_path, capsys)
    two_files = pd.concat([t, t.assign(file="fr_gsd-ud-test.conllu")])
    assert "differ in file: pick one with --where file=VALUE" in _run("probe", two_files, tmp_path, capsys)


def test_only_training_rows_and_a_guess_of_the_kind(tmp_path, capsys):
    msg = _run("probe", probe_table().assign(split="train"), tmp_path, capsys)
    assert "split=train" in msg
    msg = _run("drift", cka_table(), tmp_path, capsys)
    assert "looks like a cka table" in msg


def test_installed_executable_answers_with_one_line(tmp_path):
    """The console script, not only main(): no traceback on a table with nothing to compare."""
    exe = Path(sys.executable).with_name("alignfreeze")
    if not exe.is_file():
        pytest.skip(f"no installed alignfreeze next to {sys.executable}")
    inp = tmp_path / "probe.csv"
    probe_table(models=("base",)).to_csv(inp, index=False)
    r = subprocess.run([str(exe), "plot", "forgetting", "--input", str(inp), "--out", str(tmp_path / "f")],
                       capture_output=True, text=True, timeout=120, env={**os.environ, "MPLBACKEND": "Agg"})
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == [
        f"alignfreeze: error: {inp}: the forgetting figure has nothing to compare: the table has one model only "
        "('base'); it needs the baseline's probes and another model's"]
