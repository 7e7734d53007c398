"""The drift-lines figure: drift by layer, one line per model, with the band the table
supports (its interval over sentences, or ±std over seeds), never a band it does not."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from plot_tables import drift_table

from analysis import plots
from analysis.plots import drift_lines_data


def test_band_is_the_tables_interval():
    d = drift_lines_data(drift_table(intervals=True))
    row = d[(d["model"] == "full") & (d["lang"] == "fr") & (d["layer"] == 2)].iloc[0]
    assert row["value"] == pytest.approx(1 - 0.04)
    # the interval as written (asymmetric), not a symmetric band around the value
    assert (row["low"], row["high"]) == pytest.approx((1 - 0.04 - 0.02, 1 - 0.04 + 0.01))
    assert set(d["band"]) == {"interval"}
    # the protocol's order, not the table's
    assert list(dict.fromkeys(d["model"])) == ["full", "front", "back"]


def test_band_is_std_over_seeds_where_there_are_seeds():
    t = pd.concat([drift_table(intervals=True).assign(seed=s, value=lambda x, s=s: x["value"] + 0.01 * s)
                   for s in (1, 2, 3)], ignore_index=True)
    d = drift_lines_data(t)
    row = d[(d["model"] == "front") & (d["lang"] == "de") & (d["layer"] == 1)].iloc[0]
    mean = 1 - 0.02 * 2 - 0.01 + 0.02
    assert row["value"] == pytest.approx(mean)
    assert (row["low"], row["high"]) == pytest.approx((mean - 0.01, mean + 0.01))
    assert set(d["band"]) == {"std over seeds"} and (d["n_seeds"] == 3).all()
    assert any("per-seed intervals" in n for n in d.attrs["notes"])


def test_no_interval_no_band():
    d = drift_lines_data(drift_table())
    assert d["low"].isna().all() and d["high"].isna().all() and set(d["band"]) == {""}
    fig, data, _ = plots.figure("drift-lines", drift_table())
    assert "no interval" in fig._suptitle.get_text()


def test_figure_draws_the_band_and_one_panel_per_language():
    fig, data, notes = plots.figure("drift-lines", drift_table(intervals=True), metric="cos_dist")
    axes = [a for a in fig.axes if a.get_title()]
    assert [a.get_title() for a in axes] == ["French (fr)", "German (de)"]
    ax = axes[0]
    assert [line.get_label() for line in ax.get_lines()] == ["full", "front", "back"]
    # one filled band per model, spanning the interval of every layer
    bands = ax.collections
    assert len(bands) == 3
    verts = bands[0].get_paths()[0].vertices
    full = data[(data["model"] == "full") & (data["lang"] == "fr")]
    assert np.isclose(verts[:, 1].min(), full["low"].min()) and np.isclose(verts[:, 1].max(), full["high"].max())
    assert "band: the table's interval" in fig._suptitle.get_text()
    assert notes == []
