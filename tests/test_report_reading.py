"""The report's plain-language reading against constructed tables whose right sentence is
known: which layer moved most and whether its interval is clear of the next, layers that
did not move, losses and gains only where the paired interval excludes 0, retrieval changes
only beyond both Wilson intervals, the grid's one-standard-deviation criterion."""

from __future__ import annotations

import pandas as pd
import pytest

from alignfreeze.report import paper_table
from alignfreeze.report_grid import grid_reading, seed_summary
from alignfreeze.report_reading import (
    comparison_reading,
    drift_reading,
    probe_reading,
    retrieval_reading,
    wilson_interval,
)


def _drift(arm: str, cka: dict, cos: dict | None = None, langs=("fr", "de")) -> pd.DataFrame:
    """``cka[layer] = (value, low, high)`` for every language; ``cos[layer]`` a cosine distance."""
    rows = []
    for lang in langs:
        for layer, (v, lo, hi) in cka.items():
            rows.append({"model": arm, "lang": lang, "layer": layer, "metric": "cka", "value": v,
                         "ci_low": lo, "ci_high": hi})
            d = (cos or {}).get(layer, 1 - v)
            rows.append({"model": arm, "lang": lang, "layer": layer, "metric": "cos_dist", "value": d,
                         "ci_low": d, "ci_high": d})
    return pd.DataFrame(rows)


def test_drift_names_the_layer_that_moved_most_and_that_its_interval_is_clear():
    t = _drift("full", {0: (0.999, 0.998, 1.0), 1: (0.99, 0.985, 0.995), 2: (0.97, 0.96, 0.98),
                        3: (0.90, 0.88, 0.92)})
    (text,) = drift_reading(t)
    assert text.startswith("**full** moved layer 3 most (1 - CKA 0.1000 on average over 2 languages)")
    assert "it is the layer that moved most in 2 of 2, and in all 2 its interval is clear of the next layer's." in text
    assert "The upper layers moved more on average (1 - CKA 0.0055 for layers 0-1, 0.0650 for layers 2-3)." in text
    assert "did not change" not in text


def test_drift_says_when_the_top_two_layers_cannot_be_told_apart():
    t = _drift("full", {0: (0.999, 0.998, 1.0), 1: (0.99, 0.985, 0.995), 2: (0.97, 0.96, 0.98),
                        3: (0.95, 0.93, 0.975)})
    (text,) = drift_reading(t)
    assert "moved layer 3 most" in text
    assert "its interval overlaps the next layer's everywhere: which of the top layers moved most cannot be " \
           "concluded." in text


def test_drift_counts_languages_where_another_layer_leads_and_frozen_layers():
    a = _drift("front", {0: (1.0, 1.0, 1.0), 1: (1.0, 1.0, 1.0), 2: (0.99, 0.98, 0.995), 3: (0.95, 0.94, 0.96)},
               cos={0: 0.0, 1: 0.0}, langs=("fr",))
    b = _drift("front", {0: (1.0, 1.0, 1.0), 1: (1.0, 1.0, 1.0), 2: (0.90, 0.89, 0.91), 3: (0.95, 0.94, 0.96)},
               cos={0: 0.0, 1: 0.0}, langs=("ar",))
    (text,) = drift_reading(pd.concat([a, b]))
    assert "it is the layer that moved most in 1 of 2 (elsewhere: " in text
    assert "Layers 0-1 did not change at all (every word vector identical)." in text


def test_drift_of_an_arm_that_did_not_move():
    t = _drift("back", {0: (1.0, 1.0, 1.0), 1: (0.99999, 0.99998, 1.0)})
    assert drift_reading(t) == ["**back**: no layer moved measurably (1 - CKA below 0.0001 in every layer and "
                                "language)."]


def _change(arm: str, cells, baseline: str = "baseline") -> pd.DataFrame:
    return pd.DataFrame([{"model": arm, "baseline": baseline, "lang": lang, "task": "upos", "layer": layer,
                          "metric": "accuracy_change", "value": v, "ci_low": lo, "ci_high": hi, "n": 100,
                          "n_sentences": 10} for lang, layer, v, lo, hi in cells])


def test_probe_reading_reports_losses_and_gains_only_where_the_interval_excludes_zero():
    t = _change("full", [("ar", 2, -0.05, -0.08, -0.02), ("ar", 1, -0.01, -0.03, 0.01),
                         ("zh", 1, 0.03, 0.01, 0.05), ("zh", 2, 0.02, -0.001, 0.04),
                         ("fr", 2, -0.02, -0.045, 0.002),  # just reaches 0: nothing can be concluded
                         ("en", 2, -0.2, -0.3, -0.1)])  # English is not zero-shot: left out
    assert probe_reading(t) == [
        "**full** lost accuracy against baseline in 1 cell (ar), most in ar at layer 2 (-5.0 points, 95% interval "
        "-8.0 to -2.0); gained in 1 cell (zh), most in zh at layer 1 (+3.0 points, 95% interval +1.0 to +5.0). "
        "In 3 of 5 (language, layer) cells the interval of the change includes 0: nothing can be concluded there."]


def test_probe_reading_with_nothing_measurable():
    t = _change("back", [("fr", 0, 0.001, -0.01, 0.012), ("fr", 1, -0.002, -0.02, 0.01)])
    assert probe_reading(t) == ["**back** changed no probe accuracy measurably against baseline. In 2 of 2 "
                                "(language, layer) cells the interval of the change includes 0: nothing can be "
                                "concluded there."]


def test_comparison_with_full_at_one_layer():
    t = pd.concat([_change("front", [("fa", 12, 0.04, 0.01, 0.07), ("he", 12, -0.03, -0.05, -0.01),
                                     ("fr", 12, 0.0, -0.02, 0.02), ("fr", 3, 0.2, 0.1, 0.3)], baseline="full"),
                   _change("back", [("fa", 12, 0.0, -0.01, 0.01)], baseline="full")])
    assert comparison_reading(t, 12) == [
        "At layer 12, **front** is above full in fa and below full in he; in fr the two cannot be told apart "
        "(the interval includes 0).",
        "At layer 12, **back** is never distinguishable from full."]


def test_wilson_interval_known_values():
    lo, hi = wilson_interval(0.5, 100)
    assert lo == pytest.approx(0.4038, abs=1e-4) and hi == pytest.approx(0.5962, abs=1e-4)
    lo, hi = wilson_interval(1.0, 20)  # never the degenerate [1, 1] of the normal interval
    assert lo == pytest.approx(0.8389, abs=1e-4) and hi == 1.0


def _retrieval(model: str, values: dict, n: int = 100) -> pd.DataFrame:
    rows = []
    for (lang, layer), v in values.items():
        for direction in ("src->tgt", "tgt->src"):
            rows.append({"model": model, "src": "en", "tgt": lang, "layer": layer, "task": "sentence",
                         "candidates": "all", "score": "cosine", "centred": False, "direction": direction,
                         "metric": "accuracy@1", "value": v, "n": n})
    return pd.DataFrame(rows)


def test_retrieval_reading_separates_real_changes_from_overlapping_intervals():
    t = pd.concat([_retrieval("baseline", {("fr", 1): 0.5, ("fr", 2): 0.5, ("de", 1): 0.6, ("de", 2): 0.5}),
                   _retrieval("full", {("fr", 1): 0.5, ("fr", 2): 0.9, ("de", 1): 0.5, ("de", 2): 0.53})])
    base, full = retrieval_reading(t)
    assert base == ("**baseline**: sentence retrieval (English to and from each language, mean of both directions) "
                    "is best at layer 1 (55.0% averaged over languages).")
    assert full == ("**full**: sentence retrieval (English to and from each language, mean of both directions) is "
                    "best at layer 2 (71.5% averaged over languages), against 50.0% for baseline at that layer: "
                    "higher beyond the intervals in fr; the 95% intervals overlap in de, so nothing can be "
                    "concluded there.")


def test_word_retrieval_reading_reads_one_setting():
    rows = []
    for model, strong in (("baseline", 0.40), ("full", 0.80)):
        for cand, score, centred, v in (("strong", "cosine", False, strong), ("weak", "cosine", False, 0.99),
                                        ("strong", "csls", False, 0.99), ("strong", "cosine", True, 0.99)):
            for direction in ("src->tgt", "tgt->src"):
                rows.append({"model": model, "src": "en", "tgt": "ar", "layer": 6, "task": "word", "candidates": cand,
                             "score": score, "centred": centred, "direction": direction, "metric": "accuracy@1",
                             "value": v, "n": 150})
    t = pd.DataFrame(rows)
    assert retrieval_reading(t) == []  # no sentence retrieval in the table
    base, full = retrieval_reading(t, task="word")
    assert base.startswith("**baseline**: word retrieval (strong candidates, cosine, mean of both directions) is "
                           "best at layer 6 (40.0% averaged over languages)")
    assert full.endswith("against 40.0% for baseline at that layer: higher beyond the intervals in ar.")


def test_paper_table_marks_and_bold():
    probe = pd.DataFrame([{"model": m, "lang": lang, "layer": 2, "value": v, "ci_low": v - 0.02,
                           "ci_high": v + 0.02} for m, lang, v in
                          [("baseline", "en", 0.9), ("baseline", "fa", 0.6), ("full", "en", 0.9), ("full", "fa", 0.5),
                           ("front", "en", 0.9), ("front", "fa", 0.58)]])
    vs_base = pd.concat([_change("full", [("fa", 2, -0.1, -0.15, -0.05)]),
                         _change("front", [("fa", 2, -0.02, -0.05, 0.01)])])
    vs_full = _change("front", [("fa", 2, 0.08, 0.04, 0.12)], baseline="full")
    header, rows = paper_table(probe, vs_base, vs_full, 2)
    assert header == ["language", "baseline", "full", "front"]
    assert rows[0] == ["en (in-language)", "90.0 [88.0, 92.0]", "90.0 [88.0, 92.0]", "90.0 [88.0, 92.0]"]
    assert rows[1] == ["fa", "60.0 [58.0, 62.0]", "50.0 [48.0, 52.0] ▼", "**58.0 [56.0, 60.0]**"]


def test_grid_reading_applies_one_standard_deviation_and_needs_two_seeds():
    rows = []
    for strat, seeds in (("baseline", {1: 0.60, 2: 0.62}), ("full", {1: 0.50, 2: 0.52}), ("front", {1: 0.58, 2: 0.60}),
                         ("back", {1: 0.515})):
        for seed, v in seeds.items():
            for lang, shift in (("fa", 0.0), ("fr", 0.3)):
                rows.append({"model": "m", "aligner": "-" if strat == "baseline" else "dictionary",
                             "strategy": strat, "seed": seed, "lang": lang, "task": "upos", "metric": "accuracy",
                             "value": v + shift if lang == "fa" or strat == "front" else 0.8})
    s = seed_summary(pd.DataFrame(rows))
    text = grid_reading(s)
    assert text[0] == ("**baseline** against full (m, aligner dictionary, upos): higher by more than one standard "
                       "deviation in fa (+10.0); within one standard deviation, so nothing can be concluded, in fr "
                       "(+0.0) (points).")
    assert text[1] == ("**front** against full (m, aligner dictionary, upos): higher by more than one standard "
                       "deviation in fa (+8.0), fr (+9.0) (points).")
    assert text[2] == ("**back** against full (m, aligner dictionary, upos): fewer than two seeds in fa, fr: no "
                       "spread, nothing can be concluded (points).")
