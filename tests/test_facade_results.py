"""Results loaders (a run folder's and a grid's tables and manifests; checkpoints under
display names) and ``af.plot`` (every kind as a Figure, one panel on a given Axes)."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest
from plot_tables import TABLES, drift_table, probe_table

import alignfreeze as af
from analysis import plots
from core.manifest import write_manifest

matplotlib.use("Agg")


def _realign_manifest(d, freeze, seed, base="e5-small"):
    write_manifest(d, {"kind": "realign", "config": {"model": base, "freeze": freeze, "seed": seed},
                       "base_model": {"name": base, "weight_hash": "ab" * 32, "model_type": "bert"},
                       "seed": seed, "steps": 10, "wall_time_s": 1.5})


def _cell(out, cell, strategy, seed, freeze=None):
    c = out / "cells" / cell
    c.mkdir(parents=True)
    pd.DataFrame([{"run": cell, "model": "e5", "aligner": "dict", "strategy": strategy, "freeze": freeze or "-",
                   "seed": seed, "lang": "fr", "task": "upos", "metric": "accuracy", "value": 0.8}]
                 ).to_csv(c / "results.csv", index=False)
    if freeze is not None:
        _realign_manifest(c / "realigned", freeze, seed)
    parent = None if freeze is None else {"path": str(c / "realigned"), "kind": "realign"}
    write_manifest(c / "finetuned", {"kind": "finetune", "config": {"seed": seed}, "parent": parent,
                                     "base_model": {"name": "x", "weight_hash": "cd" * 32}, "seed": seed})
    return c


@pytest.fixture
def grid(tmp_path):
    """A grid's OUT with kept models: back (s42), full (s42), front (s42, s43), baseline (s42)."""
    out = tmp_path / "grid"
    for cell, strategy, seed, freeze in (("e5__dict__back__s42", "back", 42, "back"),
                                         ("e5__dict__full__s42", "full", 42, "none"),
                                         ("e5__dict__front__s42", "front", 42, "front"),
                                         ("e5__dict__front__s43", "front", 43, "front"),
                                         ("e5__-__baseline__s42", "baseline", 42, None)):
        _cell(out, cell, strategy, seed, freeze)
    # a resumable checkpoint inside a run is not a checkpoint of the study
    _realign_manifest(out / "cells" / "e5__dict__full__s42" / "realigned" / "checkpoints" / "step_5", "none", 42)
    return out


def test_manifests_and_checkpoints_of_a_grid(grid):
    man = af.load_manifests(grid)
    assert list(man.columns) == ["name", "strategy", "seed", "kind", "path", "base_model", "base_hash", "model_type",
                                 "freeze", "steps", "wall_time_s", "cell", "stage"]
    assert len(man) == 4 + 5  # four realigned, five fine-tuned; the resumable checkpoint left out
    re = man[man["kind"] == "realign"].set_index("name")
    assert sorted(re.index) == ["back", "front-42", "front-43", "full"]  # seeds only where strategies repeat
    assert re.loc["full", "freeze"] == "none" and re.loc["front-43", "seed"] == 43
    assert set(re["stage"]) == {"realigned"} and re.loc["back", "cell"] == "e5__dict__back__s42"
    ft = man[man["kind"] == "finetune"]
    assert sorted(ft["strategy"]) == ["back", "baseline", "front", "front", "full"]
    # the protocol's order, not the folders' alphabetical one; ready for af.drift
    ck = af.checkpoints(grid)
    assert list(ck) == ["full", "front-42", "front-43", "back"]
    assert ck["back"].endswith("e5__dict__back__s42/realigned")
    assert list(af.checkpoints(grid, kind="finetune"))[0] == "baseline"
    assert list(af.checkpoints(grid, strategies=["front"])) == ["front-42", "front-43"]
    with pytest.raises(ValueError, match="no checkpoint of kind 'realign' and strategy in \\['nope'\\]"):
        af.checkpoints(grid, strategies=["nope"])


def test_manifests_outside_a_grid_name_the_strategy_from_the_freeze_spec(tmp_path):
    for name, freeze in (("a", "front+emb"), ("b", "emb,1-3"), ("c", "none")):
        _realign_manifest(tmp_path / "runs" / name, freeze, 7)
    man = af.load_manifests(tmp_path).set_index("path")
    assert man["strategy"].tolist() == ["front+emb", "emb,1-3", "full"]
    assert man["cell"].isna().all()
    (tmp_path / "runs" / "bad").mkdir()
    (tmp_path / "runs" / "bad" / "manifest.json").write_text("{not json")
    with pytest.raises(ValueError, match="bad/manifest.json: not a JSON manifest \\(line 1"):
        af.load_manifests(tmp_path)
    assert af.load_manifests(tmp_path / "runs" / "a").shape == (1, 13)
    with pytest.raises(FileNotFoundError, match="no such folder"):
        af.load_manifests(tmp_path / "absent")


def test_tables_of_a_run_folder_and_of_a_grid(grid, tmp_path):
    tables = af.load_tables(grid)  # no OUT/results.csv yet: the finished cells'
    assert list(tables) == ["results"] and sorted(tables["results"]["strategy"]) == sorted(
        ["back", "full", "front", "front", "baseline"])
    run = tmp_path / "run"
    (run / "figures").mkdir(parents=True)
    drift_table().to_csv(run / "drift.csv", index=False)
    probe_table().to_csv(run / "probe.csv", index=False)
    pd.DataFrame({"x": [1]}).to_csv(run / "figures" / "drift.csv", index=False)
    tables = af.load_tables(run)
    assert list(tables) == ["drift", "probe", "figures/drift"]
    pd.testing.assert_frame_equal(tables["drift"], drift_table())
    both = af.read_table([run / "drift.csv", run / "probe.csv"])
    assert len(both) == len(drift_table()) + len(probe_table()) and "_source" not in both.columns
    (run / "empty.csv").write_text("")
    with pytest.raises(ValueError, match="empty.csv: empty file"):
        af.load_tables(run)
    with pytest.raises(ValueError, match="no CSV table in it"):
        af.load_tables(tmp_path / "run" / "figures" / ".." / ".." / "grid" / "cells" / "e5__dict__back__s42" /
                       "realigned")


@pytest.mark.parametrize("kind", plots.KINDS)
def test_every_kind_is_the_figure_of_analysis_plots(kind, tmp_path):
    table = TABLES[kind]()
    fig = af.plot(kind, table, out=tmp_path / kind)
    ref, data, _ = plots.figure(kind, table)
    assert fig._suptitle.get_text() == ref._suptitle.get_text()
    assert len(fig.axes) == len(ref.axes)
    drawn = pd.read_csv(tmp_path / f"{kind}.csv")
    num = data.select_dtypes("number").columns
    np.testing.assert_allclose(drawn[num].to_numpy(float), data[num].to_numpy(float), equal_nan=True)
    assert all((tmp_path / f"{kind}.{ext}").stat().st_size > 1000 for ext in ("png", "svg", "pdf"))
    # a CSV path is a table too
    table.to_csv(tmp_path / "t.csv", index=False)
    assert af.plot(kind, tmp_path / "t.csv")._suptitle.get_text() == ref._suptitle.get_text()


ONE_PANEL = {"drift": {"lang": "fr"}, "drift-lines": {"lang": "de"}, "probe": {"model": "full"},
             "forgetting": {"model": ["base", "front"]}, "cka": {}, "typology": {"feature": "genetic"},
             "attribution": {}, "retrieval": {"task": "sentence"}, "scan": {"metric": "cka"},
             "layer-effect": {"measure": "sentence-retrieval"}}


def _filter(table, where):
    for col, val in where.items():
        table = table[table[col].isin(val if isinstance(val, list) else [val])]
    return table


@pytest.mark.parametrize("kind", plots.KINDS)
def test_one_panel_on_an_axes_is_that_figures_panel(kind):
    from matplotlib.figure import Figure

    table = _filter(TABLES[kind](), ONE_PANEL[kind])
    ref, _, _ = plots.figure(kind, table)
    ax = Figure().subplots()
    assert af.plot(kind, table, ax=ax) is ax
    panel = [a for a in ref.axes if a.get_title()][0]
    assert ax.get_title() == panel.get_title()
    assert [t.get_text() for t in ax.get_xticklabels()] == [t.get_text() for t in panel.get_xticklabels()]
    if ax.collections and panel.collections and hasattr(panel.collections[0], "get_clim"):
        assert ax.collections[0].get_clim() == panel.collections[0].get_clim()  # the same colour scale
        np.testing.assert_array_equal(np.ma.filled(ax.collections[0].get_array(), np.nan),
                                      np.ma.filled(panel.collections[0].get_array(), np.nan))
    for mine, theirs in zip(ax.get_lines(), panel.get_lines(), strict=False):
        np.testing.assert_array_equal(mine.get_ydata(), theirs.get_ydata())


def test_axes_mode_refuses_several_panels_and_figure_options():
    from matplotlib.figure import Figure

    ax = Figure().subplots()
    with pytest.raises(ValueError, match="makes 2 panels \\(fr; de\\).*where=\\{'lang': ...\\}"):
        af.plot("drift", drift_table(), ax=ax)
    with pytest.raises(ValueError, match="size= sets the size of a new figure"):
        af.plot("drift", drift_table(), ax=ax, where={"lang": "fr"}, size=(3, 3))
    with pytest.raises(ValueError, match="only the line figures"):
        af.plot("drift", drift_table(), ax=ax, where={"lang": "fr"}, mark=2)
    # where= names the column a table lacks; a shared scale can be given
    with pytest.raises(ValueError, match="the table has no column nope"):
        af.plot("drift", drift_table(), where={"nope": 1})
    af.plot("drift", drift_table(), ax=ax, where={"lang": "fr"}, scale=(0.5, 1.0), title="French")
    assert ax.collections[0].get_clim() == (0.5, 1.0) and ax.get_title() == "French"


def test_a_returned_figure_renders_in_jupyter(tmp_path, monkeypatch):
    """Our figures bypass pyplot; in a kernel af.plot's Figure must still show as an image,
    once (no second copy from pyplot), and a panel on a pyplot Axes shows as pyplot's."""
    import os

    import nbformat
    from nbclient import NotebookClient

    tests = os.path.dirname(os.path.abspath(__file__))
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(f"import sys\nsys.path.insert(0, {tests!r})\nimport alignfreeze as af\n"
                                          "from plot_tables import drift_table\naf.plot('drift', drift_table())"),
                nbformat.v4.new_code_cell("import matplotlib.pyplot as plt\nfig, ax = plt.subplots()\n"
                                          "af.plot('drift', drift_table(), ax=ax, where={'lang': 'fr'});")]
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the kernel inherits it: one thread on shared cores
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    first = [o for o in nb.cells[0].outputs if o.output_type != "stream"]
    assert [o.output_type for o in first] == ["execute_result"] and "image/png" in first[0]["data"]
    second = [o for o in nb.cells[1].outputs if o.output_type != "stream"]
    assert len(second) == 1 and "image/png" in second[0]["data"]


def test_a_bad_cell_of_a_csv_is_named_by_file_and_row(tmp_path):
    t = drift_table()
    t["value"] = t["value"].astype(object)
    t.loc[2, "value"] = "n/a?"  # a cka row (the default metric)
    t.to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(ValueError, match=r"column value holds 'n/a\?' \(.*d.csv, data row 3\)"):
        af.plot("drift", tmp_path / "d.csv")
