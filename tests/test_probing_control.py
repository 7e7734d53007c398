"""Control tasks (word type -> random label), selectivity and seed summaries."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from probing.control import ControlTask, selectivity, selectivity_rows, summarize

LABELS = np.array(["NOUN"] * 50 + ["VERB"] * 30 + ["DET"] * 15 + ["ADJ"] * 5)


@settings(max_examples=25, deadline=None)
@given(words=st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=40), seed=st.integers(0, 10**6))
@example(words=["\x00", "a\x00", "a"], seed=0)  # numpy strings would drop the trailing NULs
def test_control_label_is_a_function_of_the_word_type(words, seed):
    ctl = ControlTask(seed).fit(["x"] * len(LABELS), LABELS)
    out = ctl.transform(words)
    by_type: dict[str, set] = {}
    for w, lab in zip(words, out):
        by_type.setdefault(w, set()).add(lab)
    assert all(len(v) == 1 for v in by_type.values())
    # order and company do not matter: each word alone gets the same label
    assert [ctl.label_of(w) for w in words] == list(out)
    assert list(ctl.transform(words[::-1])) == list(out[::-1])
    assert set(out) <= set(LABELS)


def test_control_map_preserves_the_label_distribution():
    ctl = ControlTask(seed=7).fit(["w"] * len(LABELS), LABELS)
    types = [f"type{i}" for i in range(20000)]
    out = ctl.transform(types)
    labels, counts = np.unique(out, return_counts=True)
    freq = dict(zip(labels, counts / counts.sum()))
    expected = {"NOUN": 0.5, "VERB": 0.3, "DET": 0.15, "ADJ": 0.05}
    assert set(freq) == set(expected)
    for lab, p in expected.items():
        assert abs(freq[lab] - p) < 0.015, (lab, freq[lab], p)
    np.testing.assert_allclose(ctl.probs_, [0.05, 0.15, 0.5, 0.3])  # sorted labels: ADJ DET NOUN VERB


def test_control_seeds_give_different_maps_and_lowercase_merges_case():
    types = [f"w{i}" for i in range(200)]
    a = ControlTask(0).fit(types[:100], LABELS).transform(types)
    b = ControlTask(1).fit(types[:100], LABELS).transform(types)
    assert (a != b).mean() > 0.3
    low = ControlTask(3, lowercase=True).fit(["a"] * 100, LABELS)
    assert low.label_of("The") == low.label_of("the")


def test_control_errors():
    with pytest.raises(RuntimeError, match="not fitted"):
        ControlTask().transform(["a"])
    with pytest.raises(ValueError, match="must match"):
        ControlTask().fit(["a", "b"], ["X"])


def test_selectivity_values_and_rows():
    np.testing.assert_allclose(selectivity([0.9, 0.8], [0.6, 0.7]), [0.3, 0.1])
    with pytest.raises(ValueError, match="same shape"):
        selectivity([1.0], [1.0, 2.0])
    base = {"model": "m", "lang": "en", "metric": "accuracy", "split": "heldout", "train_lang": "en", "file": "f"}
    rows = []
    for seed, layer, task_acc, ctl_acc in [(0, 0, 0.9, 0.5), (0, 1, 0.95, 0.7), (1, 0, 0.8, 0.6), (1, 1, 0.9, 0.8)]:
        rows.append({**base, "task": "upos", "layer": layer, "seed": seed, "value": task_acc, "n": 10})
        rows.append({**base, "task": "upos-control", "layer": layer, "seed": seed, "value": ctl_acc, "n": 10})
    df = pd.DataFrame(rows)
    sel = selectivity_rows(df, "upos", "upos-control").sort_values(["seed", "layer"])
    assert list(sel["metric"].unique()) == ["selectivity"] and list(sel["task"].unique()) == ["upos"]
    np.testing.assert_allclose(sel["value"], [0.4, 0.25, 0.2, 0.1])
    summ = summarize(sel.drop(columns=["n", "file"]))
    by_layer = summ.set_index("layer")
    assert by_layer.loc[0, "mean"] == pytest.approx(0.3) and by_layer.loc[1, "mean"] == pytest.approx(0.175)
    assert by_layer.loc[0, "std"] == pytest.approx(np.std([0.4, 0.2], ddof=1))
    assert (summ["count"] == 2).all()
    one = summarize(sel[sel["seed"] == 0].drop(columns=["n", "file"]))
    assert one["std"].isna().all() and (one["count"] == 1).all()  # no spread without replicates
