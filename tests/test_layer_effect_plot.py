"""The layer-effect heatmap: percentage points on a diverging map centred at 0 with one
scale for every panel, variants bottom-up in the study's order, interval half-widths in
the cells, one read-out layer."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest
from plot_tables import layer_effect_table

from analysis import plots
from analysis.plots import layer_effect_data


def _meshes(fig):
    from matplotlib.collections import QuadMesh

    return [c for ax in fig.axes if ax.get_label() != "<colorbar>" for c in ax.collections
            if isinstance(c, QuadMesh)]


def test_effects_in_percentage_points_with_half_widths():
    d = layer_effect_data(layer_effect_table())
    row = d[(d["variant"] == "emb") & (d["lang"] == "de") & (d["measure"] == "upos-probe")].iloc[0]
    assert row["value"] == pytest.approx(-1.8)  # 0.01 * (0 - 2) + 0.002, in points
    assert row["half"] == pytest.approx(0.6) and row["unit"] == "percentage points"
    assert list(dict.fromkeys(d["variant"]))[:2] == ["emb", "block 1"]


def test_one_diverging_scale_centred_at_zero_for_every_panel():
    fig, data, _ = plots.figure("layer-effect", layer_effect_table())
    meshes = _meshes(fig)
    assert len(meshes) == 2  # UPOS probe, sentence retrieval
    for m in meshes:
        assert m.norm.vmin == -m.norm.vmax == pytest.approx(-3.2)  # the largest |effect|: halves and all, de
        assert m.norm(0.0) == pytest.approx(0.5) and m.get_cmap().name.startswith("RdBu")
    texts = " ".join(" ".join(t.get_text().split()) for t in fig.findobj(matplotlib.text.Text))
    assert "shared by the 2 panels" in texts and "percentage points" in texts
    assert "\u00b10.6" in texts and "half-width of the interval" in texts
    ax = next(a for a in fig.axes if a.get_label() != "<colorbar>")
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[0] == "emb" and labels[-1] == "all (pretrained)"  # emb at the bottom, as layer 0 elsewhere
    assert "UPOS probe at layer 4" in ax.get_title()


def test_a_table_of_zero_effects_is_the_neutral_colour():
    fig, _, _ = plots.figure("layer-effect", layer_effect_table().assign(effect=0.0, ci_low=0.0, ci_high=0.0))
    centre = matplotlib.colormaps["RdBu"](0.5)[:3]
    for m in _meshes(fig):
        np.testing.assert_allclose(m.get_facecolors()[:, :3], [centre] * len(m.get_facecolors()), atol=1e-6)


def test_one_read_out_layer_and_one_measure():
    t = layer_effect_table()
    both = pd.concat([t, t.assign(layer=2, effect=t["effect"] * 10)], ignore_index=True)
    d = layer_effect_data(both)
    assert set(d["layer"]) == {4} and any("drawn at layer 4" in n for n in d.attrs["notes"])
    d = layer_effect_data(both[both["layer"] == 2])
    assert d["value"].abs().max() == pytest.approx(32.0)
    d = layer_effect_data(t, measure="sentence-retrieval")
    assert set(d["measure"]) == {"sentence-retrieval"}
    with pytest.raises(ValueError, match="no rows with measure 'nope'"):
        layer_effect_data(t, measure="nope")
    mixed = pd.concat([t, t[t["measure"] == "upos-probe"].assign(measure="drift", metric="cos_dist")], ignore_index=True)
    with pytest.raises(ValueError, match="different units"):
        layer_effect_data(mixed)
