"""Figures that do not lie and that compare: a zero change is the neutral colour
(cases/09), a constant table is drawn against its natural range, every panel of a figure
shares one colour scale (printed on it), panels come in the protocol's order (or the one
given), models under their display names, spreads over seeds, one unit."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest
from plot_tables import (
    attribution_table,
    cka_table,
    drift_table,
    probe_table,
    retrieval_table,
    scan_table,
    typology_table,
)

from analysis import plots


def _meshes(fig):
    from matplotlib.collections import QuadMesh

    return [c for ax in fig.axes if ax.get_label() != "<colorbar>" for c in ax.collections
            if isinstance(c, QuadMesh)]


def _texts(fig) -> str:
    return "\n".join(t.get_text() for t in fig.findobj(matplotlib.text.Text))


def _cell_colours(fig):
    return np.concatenate([m.get_facecolors()[:, :3] for m in _meshes(fig)])


def test_case09_zero_change_is_the_centre_colour():
    """cases/09: equal accuracies everywhere are drawn white-ish, not the darkest red."""
    table = probe_table(shift={"base": 0.0, "frozen": 0.0}, models=("base", "frozen"), seeds=(0, 1))
    data = plots.forgetting_data(table)
    assert set(data["change"]) == {0.0}
    ax = plots.plot_forgetting(data, "frozen", "upos")
    centre = matplotlib.colormaps["RdBu"](0.5)[:3]
    np.testing.assert_allclose(ax.collections[0].get_facecolors()[:, :3], [centre] * 12, atol=1e-6)
    assert ax.collections[0].norm(0.0) == pytest.approx(0.5)
    matplotlib.pyplot.close(ax.figure)
    # and in the whole figure the CLI writes
    fig, _, _ = plots.figure("forgetting", table)
    np.testing.assert_allclose(_cell_colours(fig), [centre] * 12, atol=1e-6)


def _sel_table(value: float) -> pd.DataFrame:
    t = probe_table(models=("base",), seeds=(1,))
    return t.assign(metric="selectivity", value=value)


# kind, table whose drawn values are all equal, options, where that value sits on the colour map
CONSTANT = [
    ("forgetting zero", "forgetting", probe_table(shift={"base": 0.0, "full": 0.0}, models=("base", "full")), {}, 0.5),
    ("selectivity zero", "probe", _sel_table(0.0), {"metric": "selectivity"}, 0.5),
    ("drift cka unchanged", "drift", drift_table().assign(value=1.0), {}, 1.0),
    ("drift cosine distance zero", "drift", drift_table().assign(value=0.0), {"metric": "cos_dist"}, 0.0),
    ("probe 50%", "probe", probe_table(seeds=(1,)).assign(value=0.5), {}, 0.5),
    ("cka all ones", "cka", cka_table().assign(cka=1.0), {}, 1.0),
    ("attribution all zero", "attribution", attribution_table().assign(share=0.0), {}, 0.0),
]


@pytest.mark.parametrize("name,kind,table,opts,where", CONSTANT, ids=[c[0] for c in CONSTANT])
def test_constant_table_is_drawn_at_its_natural_place(name, kind, table, opts, where):
    fig, data, _ = plots.figure(kind, table, **opts)
    meshes = _meshes(fig)
    assert meshes
    for m in meshes:
        expected = m.get_cmap()(where)[:3]
        np.testing.assert_allclose(m.get_facecolors()[:, :3], [expected] * len(m.get_facecolors()), atol=1e-6)


def test_diverging_maps_are_symmetric_and_centred():
    fig, data, _ = plots.figure("forgetting", probe_table())
    for m in _meshes(fig):
        assert m.norm.vmin == -m.norm.vmax == pytest.approx(-8.0)  # the largest loss, -8 points
        assert m.norm(0.0) == pytest.approx(0.5)
        assert m.get_cmap().name.startswith("RdBu")


def test_selectivity_is_diverging_accuracy_is_sequential():
    t = probe_table(models=("base",), seeds=(1,))
    fig, _, _ = plots.figure("probe", pd.concat([t, t.assign(metric="selectivity", value=t["value"] - 0.6)]),
                             metric="selectivity")
    (m,) = _meshes(fig)
    assert m.norm(0.0) == pytest.approx(0.5) and m.get_cmap().name.startswith("RdBu")
    fig, _, _ = plots.figure("probe", t)
    (m,) = _meshes(fig)
    assert (m.norm.vmin, m.norm.vmax) == (0.0, 100.0) and not m.get_cmap().name.startswith("RdBu")


@pytest.mark.parametrize("kind,table,opts", [
    ("forgetting", probe_table(), {}),
    ("probe", probe_table(), {}),
    ("drift", drift_table(), {}),
    ("cka", cka_table(pairs=(("e5-small", "full"), ("e5-small", "front"))), {}),
    ("attribution", attribution_table().assign(model=lambda d: np.where(d.index % 2, "full", "front")).pipe(
        lambda d: pd.concat([d.assign(model="full"), d.assign(model="front", share=d["share"] / 2)])), {}),
])
def test_one_colour_scale_per_figure_printed_on_it(kind, table, opts):
    """issue 13: forgetting panels had +-0.07, +-0.08, +-0.13: now one scale, one colour bar."""
    fig, data, _ = plots.figure(kind, table, **opts)
    meshes = _meshes(fig)
    assert len(meshes) >= 2
    limits = {(m.norm.vmin, m.norm.vmax) for m in meshes}
    assert len(limits) == 1
    lo, hi = limits.pop()
    # the scale covers every panel's numbers, not only the first panel's
    drawn = np.concatenate([m.get_array().compressed() for m in meshes])
    assert lo <= drawn.min() and drawn.max() <= hi
    assert len([ax for ax in fig.axes if ax.get_label() == "<colorbar>"]) == 1
    assert f"shared by the {len(meshes)} panels" in _texts(fig)


def test_scale_override_is_used_and_printed():
    fig, _, _ = plots.figure("forgetting", probe_table(), scale=(-20, 20))
    assert {(m.norm.vmin, m.norm.vmax) for m in _meshes(fig)} == {(-20.0, 20.0)}
    assert "(given): -20.0 to +20.0 percentage points" in _texts(fig)
    with pytest.raises(ValueError, match="symmetric"):
        plots.figure("forgetting", probe_table(), scale=(0, 20))
    fig, _, _ = plots.figure("retrieval", retrieval_table(), scale=(20, 80))
    assert {ax.get_ylim() for ax in fig.axes if ax.get_label() != "<colorbar>"} == {(20.0, 80.0)}


def _panel_titles(fig):
    return [ax.get_title() for ax in fig.axes if ax.get_label() != "<colorbar>"]


def test_panels_in_protocol_order_never_alphabetical():
    fig, _, _ = plots.figure("probe", probe_table())  # table written back, base, front, full
    assert [t.split(":")[0] for t in _panel_titles(fig)] == ["base", "full", "front", "back"]
    fig, _, _ = plots.figure("forgetting", probe_table())
    assert [t.split(" vs")[0] for t in _panel_titles(fig)] == ["full", "front", "back"]
    fig, _, _ = plots.figure("drift", drift_table(models=("back", "front", "full")))
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["full", "front", "back"]
    fig, _, _ = plots.figure("retrieval", retrieval_table(models=("full", "base", "front")))
    assert fig.legends[0].get_texts()[0].get_text().startswith("base")


def test_panels_in_the_order_given():
    fig, _, _ = plots.figure("probe", probe_table(), order=["back", "front"])
    assert [t.split(":")[0] for t in _panel_titles(fig)] == ["back", "front", "base", "full"]
    with pytest.raises(ValueError, match="'frnt' not among the table's models"):
        plots.figure("probe", probe_table(), order=["frnt"])


def test_display_names_strategy_and_paths():
    t = probe_table(models=("runs/a/realigned", "runs/b/realigned", "e5-small"))
    fig, data, _ = plots.figure("probe", t)
    # two folders called realigned keep their parent, and nothing shows the full path
    assert set(data["model"]) == {"a/realigned", "b/realigned", "e5-small"}
    t["display_name"] = t["model"].map({"runs/a/realigned": "front (ours)", "runs/b/realigned": "full",
                                        "e5-small": "pretrained"})
    fig, data, _ = plots.figure("probe", t)
    assert [x.split(":")[0] for x in _panel_titles(fig)] == ["pretrained", "full", "front (ours)"]
    # the grid's tables: strategy names the model, seeds are replicates of it
    g = pd.concat([probe_table(models=(f"runs/{s}-{seed}/realigned",), seeds=(seed,)).assign(strategy=s)
                   for s in ("front", "baseline") for seed in (31, 42)])
    _, data, _ = plots.figure("probe", g)
    assert list(dict.fromkeys(data["model"])) == ["baseline", "front"]
    assert (data["n_seeds"] == 2).all()


def test_two_models_under_one_name_are_refused_not_averaged():
    t = probe_table(models=("a", "b"))
    t["display_name"] = "realigned"
    with pytest.raises(ValueError, match=r"averaged together; they differ in model.*display_name"):
        plots.figure("probe", t)


def test_titles_name_model_and_data_ticks_unrotated():
    fig, _, _ = plots.figure("probe", probe_table())
    title = fig._suptitle.get_text().replace("\n", " ")
    assert "UPOS probe accuracy" in title and "trained on en" in title and "over 3 seeds" in title
    assert "fr_pud-ud-test" in title
    for ax in fig.axes:
        assert all(t.get_rotation() == 0 for t in ax.get_yticklabels())
    assert not any(k in _texts(fig) for k in ("model A", "model B", ": upos"))
    fig, _, _ = plots.figure("drift", drift_table())
    assert [ax.get_title() for ax in fig.axes[:2]] == ["French (fr)", "German (de)"]
    assert "against e5-small" in fig._suptitle.get_text()


def test_probe_cells_show_spread_over_seeds():
    fig, _, _ = plots.figure("probe", probe_table())
    cells = [t.get_text() for t in fig.axes[0].texts]
    assert "52.0\n\u00b11.0" in cells  # base, layer 0: mean and std over 3 seeds, in %
    fig, _, _ = plots.figure("probe", probe_table(seeds=(1,)))
    assert not any("\u00b1" in t.get_text() for t in fig.axes[0].texts)
    assert "one seed (no spread)" in fig._suptitle.get_text()
    fig, _, _ = plots.figure("retrieval", retrieval_table(seeds=(1, 2, 3)))
    assert any(c.__class__.__name__ == "FillBetweenPolyCollection" or "Poly" in c.__class__.__name__
               for c in fig.axes[0].collections)


def test_one_unit_percent_throughout():
    _, probe, _ = plots.figure("probe", probe_table())
    _, forg, _ = plots.figure("forgetting", probe_table())
    _, retr, _ = plots.figure("retrieval", retrieval_table())
    assert probe["value"].max() > 1 and (probe["unit"] == "%").all()
    assert forg["change"].abs().max() == pytest.approx(8.0) and (forg["unit"] == "percentage points").all()
    assert retr["value"].max() > 1 and (retr["unit"] == "%").all()


def test_typology_has_fit_line_and_r_p():
    from scipy import stats

    t = typology_table()
    t.loc[t["lang"] == "de", "gain"] = 0.9  # not a perfect line
    fig, data, _ = plots.figure("typology", t)
    g = t[t["feature"] == "syntactic"]
    r = stats.pearsonr(g["distance"], g["gain"])
    ax = fig.axes[0]
    assert f"r = {r.statistic:.2f}, p = {r.pvalue:.2g}, n = 4" in ax.get_title()
    (line,) = [ln for ln in ax.get_lines() if ln.get_label() == "least squares"]
    slope, intercept = np.polyfit(g["distance"], g["gain"], 1)
    x, y = line.get_data()
    np.testing.assert_allclose(y, intercept + slope * np.asarray(x))


def test_retrieval_word_setting_defaults_and_where():
    _, data, _ = plots.figure("retrieval", retrieval_table())
    word = data[data["task"] == "word"]
    assert set(word["setting"]) == {"strong candidates, cosine"}
    assert set(data["direction"]) == {"en\u2192de", "de\u2192en"}
    t = retrieval_table()
    t = t[(t["task"] == "sentence") | (t["candidates"] == "weak")]
    sub = t[(t["score"] == "csls") | (t["task"] == "sentence")]
    _, data, _ = plots.figure("retrieval", sub)
    assert set(data.loc[data["task"] == "word", "setting"]) == {"weak candidates, csls"}


def test_seeds_are_claimed_only_where_the_table_has_them():
    fig, _, _ = plots.figure("retrieval", retrieval_table())  # align-eval tables have no seed column
    assert "seed" not in fig._suptitle.get_text()
    fig, _, _ = plots.figure("retrieval", retrieval_table(seeds=(1, 2)))
    assert "over 2 seeds" in fig._suptitle.get_text()


def test_too_many_cells_to_write_is_said():
    langs = ("en", "fr", "de", "es", "it", "pt", "nl", "sv", "pl", "cs", "ru", "tr", "ko")
    fig, _, notes = plots.figure("probe", probe_table(models=("base",), langs=langs, layers=range(13)))
    assert not fig.axes[0].texts
    assert notes == ["Too many cells to write each mean \u00b1 std on the figure: they are in the CSV."]
    assert notes[0] in _texts(fig)


def test_change_of_another_metric_names_it_and_its_unit():
    t = probe_table().assign(metric="retrieval_mean")
    fig, data, _ = plots.figure("forgetting", t, metric="retrieval_mean")
    assert (data["unit"] == "percentage points").all()
    bar = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"][0]
    assert bar.get_ylabel() == "change in retrieval mean (percentage points)"


def test_model_pairs_keep_their_own_names():
    t = cka_table(pairs=(("runs/x/e5-small", "runs/y/full"),)).assign(display_name="ignored", strategy="full")
    fig, data, _ = plots.figure("cka", t)
    assert fig.axes[0].get_title() == "e5-small vs full"


def test_scan_of_midalign_and_of_metric_named_directions():
    """The table of `alignfreeze midalign scan` (retrieval_acc with a direction column) and
    one with the direction in the metric's name draw the same curves."""
    _, data, _ = plots.figure("scan", scan_table())
    ret = data[data["family"] == "retrieval"]
    assert list(dict.fromkeys(ret["series"])) == ["en\u2192fr", "fr\u2192en", "mean of both directions"]
    assert ret["value"].max() == pytest.approx(80.0) and (ret["unit"] == "%").all()
    t = scan_table().query("metric == 'retrieval_acc'")
    t = t.assign(metric=t["direction"].map({"src->tgt": "retrieval_src2tgt", "tgt->src": "retrieval_tgt2src"}))
    _, other, _ = plots.figure("scan", t.drop(columns="direction"))
    assert list(dict.fromkeys(other["series"])) == ["en\u2192fr", "fr\u2192en"]
    np.testing.assert_allclose(other["value"], ret[ret["metric"] == "retrieval_acc"]["value"])


def test_mark_the_chosen_layer_on_line_figures(tmp_path):
    from alignfreeze.cli import main

    inp = tmp_path / "scan.csv"
    scan_table().to_csv(inp, index=False)
    assert main(["plot", "scan", "--input", str(inp), "--out", str(tmp_path / "s"), "--mark-layer", "3"]) == 0
    fig, _, _ = plots.figure("scan", scan_table(), mark=3)
    for ax in fig.axes:
        assert any(tuple(ln.get_xdata()) == (3, 3) for ln in ax.get_lines())
        assert "K = 3" in [t.get_text() for t in ax.texts]
    with pytest.raises(ValueError, match="only the line figures"):
        plots.figure("probe", probe_table(), mark=3)
