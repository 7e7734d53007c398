"""Paired tests, Holm correction, summaries, and typology (URIEL via lang2vec)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.stats import holm, paired_test, summarize


def _table(shift: float, noise: float = 0.01, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for lang in ("en", "fr", "de", "fi", "tr"):
        for s in (1, 2, 3):
            base = rng.random()
            for layer in (0, 1):
                rows.append({"strategy": "full", "lang": lang, "seed": s, "layer": layer, "value": base})
                rows.append({"strategy": "front", "lang": lang, "seed": s, "layer": layer,
                             "value": base + (shift if layer == 1 else 0.0) + noise * rng.normal()})
    return pd.DataFrame(rows)


def test_paired_test_detects_a_planted_shift_only_where_planted():
    df = _table(0.05)
    out = paired_test(df, condition="strategy", a="full", b="front", match=["lang", "seed"], by=["layer"],
                      correction="holm").set_index("layer")
    assert out.loc[1, "n"] == 15
    assert out.loc[1, "mean_diff"] == pytest.approx(0.05, abs=0.01)
    assert out.loc[1, "p_t"] < 1e-6 and out.loc[1, "p_wilcoxon"] < 1e-3
    assert out.loc[0, "p_t"] > 0.01
    assert out.loc[1, "p_t_holm"] >= out.loc[1, "p_t"]


def test_paired_test_one_unit_per_match_and_no_spread_from_one():
    df = _table(0.05)
    # a second treebank of every (lang, seed): averaged into the same unit, not a new one
    twice = pd.concat([df, df.assign(value=df["value"] + 0.0)], ignore_index=True)
    out = paired_test(twice, condition="strategy", a="full", b="front", match=["lang", "seed"], by=["layer"])
    assert list(out["n"]) == [15, 15]
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no std of one value computed and thrown away
        one = paired_test(df[(df.lang == "en") & (df.seed == 1)], condition="strategy", a="full", b="front",
                          match=["lang", "seed"], by=["layer"]).set_index("layer")
    assert one.loc[1, "n"] == 1 and one.loc[1, "mean_diff"] != 0
    assert one.loc[1, ["std_diff", "t", "p_t", "w", "p_wilcoxon"]].isna().all()  # one unit: no test
    # the columns are there (float, NaN) even when no group has a test
    none = paired_test(_pairs({0: [0.0, 0.0, 0.0]}), condition="cond", a="a", b="b", match=["seed"])
    assert {"t", "p_t", "w", "p_wilcoxon"} <= set(none.columns)
    assert none[["t", "p_t", "w", "p_wilcoxon"]].isna().all().all()
    assert (none[["t", "p_t", "w", "p_wilcoxon"]].dtypes == np.float64).all()


def test_paired_test_errors():
    df = _table(0.0)
    with pytest.raises(ValueError, match="no rows"):
        paired_test(df, condition="strategy", a="full", b="back", match=["lang", "seed"])
    with pytest.raises(ValueError, match="lacks column"):
        paired_test(df, condition="strategy", a="full", b="front", match=["model"])
    with pytest.raises(ValueError, match="correction must be None or 'holm', not 'bonferroni'"):
        paired_test(df, condition="strategy", a="full", b="front", match=["lang", "seed"], correction="bonferroni")


def _pairs(diffs: dict, base: float = 0.5) -> pd.DataFrame:
    """Rows of conditions ``a`` and ``b`` per (layer, seed): ``b = a + diff``; ``a`` varies by seed."""
    rows = []
    for layer, ds in diffs.items():
        for seed, d in enumerate(ds):
            a = base + 0.1 * seed
            rows += [{"cond": "a", "layer": layer, "seed": seed, "value": a},
                     {"cond": "b", "layer": layer, "seed": seed, "value": a + d}]
    return pd.DataFrame(rows)


def test_paired_test_every_column_by_hand():
    """Every output column against its definition (scipy on the differences), with and
    without ``by``, and no warning on degenerate groups: two units (the smallest t-test),
    constant differences (no spread: t n/a, Wilcoxon defined), all-zero differences (both n/a)."""
    import warnings

    from scipy import stats

    diffs = {0: [0.10, 0.30, -0.05, 0.20], 1: [0.02, 0.04], 2: [0.05, 0.05, 0.05], 3: [0.0, 0.0]}
    df = _pairs(diffs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = paired_test(df, condition="cond", a="a", b="b", match=["seed"], by=["layer"],
                          correction="holm").set_index("layer")
    assert list(out.columns) == ["n", "mean_a", "mean_b", "mean_diff", "std_diff", "t", "p_t", "w", "p_wilcoxon",
                                 "p_t_holm", "p_wilcoxon_holm"]
    for layer in (0, 1):
        d = np.array(diffs[layer])
        a = 0.5 + 0.1 * np.arange(len(d))
        t, w = stats.ttest_rel(a + d, a), stats.wilcoxon(d)
        r = out.loc[layer]
        assert r["n"] == len(d)
        assert (r["mean_a"], r["mean_b"], r["mean_diff"]) == pytest.approx((a.mean(), (a + d).mean(), d.mean()))
        assert r["std_diff"] == pytest.approx(np.std(d, ddof=1))
        assert (r["t"], r["p_t"]) == pytest.approx((t.statistic, t.pvalue))
        assert (r["w"], r["p_wilcoxon"]) == pytest.approx((w.statistic, w.pvalue))
    # constant differences: no spread, so no t-test; the signed-rank test still has its ranks
    assert out.loc[2, "std_diff"] == pytest.approx(0.0) and np.isnan(out.loc[2, "t"]) and np.isnan(out.loc[2, "p_t"])
    w = stats.wilcoxon([0.05] * 3)
    assert (out.loc[2, "w"], out.loc[2, "p_wilcoxon"]) == pytest.approx((w.statistic, w.pvalue))
    assert out.loc[3, [c for c in out.columns if c.startswith(("t", "p_", "w"))]].isna().all()
    # Holm over the groups that have a p-value; float columns, NaN elsewhere
    assert out["p_t_holm"].dtype == np.float64 and out["p_wilcoxon_holm"].dtype == np.float64
    np.testing.assert_allclose(out.loc[[0, 1], "p_t_holm"], holm(out.loc[[0, 1], "p_t"].to_numpy()))
    np.testing.assert_allclose(out.loc[[0, 1, 2], "p_wilcoxon_holm"],
                               holm(out.loc[[0, 1, 2], "p_wilcoxon"].to_numpy()))
    assert out.loc[[2, 3], "p_t_holm"].isna().all() and np.isnan(out.loc[3, "p_wilcoxon_holm"])
    # without ``by``: one row over all units
    whole = paired_test(df[df.layer == 0], condition="cond", a="a", b="b", match=["seed"])
    assert len(whole) == 1 and "layer" not in whole.columns
    assert whole.loc[0, "t"] == pytest.approx(out.loc[0, "t"]) and whole.loc[0, "n"] == 4


def test_paired_test_only_matched_units_count():
    """A unit with only one of the two conditions is not a pair: dropped, never compared
    with a missing value."""
    df = _pairs({0: [0.1, 0.2, 0.3, 0.25]})
    lone = df[~((df.cond == "b") & (df.seed == 3))]  # seed 3 lost its b row
    out = paired_test(lone, condition="cond", a="a", b="b", match=["seed"])
    assert out.loc[0, "n"] == 3 and out.loc[0, "mean_diff"] == pytest.approx(0.2)
    assert out.loc[0, "mean_a"] == pytest.approx(0.6)  # seeds 0-2 only
    with pytest.raises(ValueError, match="no matched units between 'a' and 'b' on \\['seed'\\]"):
        paired_test(pd.concat([df[(df.cond == "a") & (df.seed < 2)], df[(df.cond == "b") & (df.seed >= 2)]]),
                    condition="cond", a="a", b="b", match=["seed"])


def test_holm_by_hand():
    adj = holm([0.01, 0.04, 0.03])
    np.testing.assert_allclose(adj, [0.03, 0.06, 0.06])
    assert holm([0.9, 0.8]).max() <= 1.0


def test_summarize_mean_std():
    df = pd.DataFrame({"lang": ["en", "en", "fr"], "value": [1.0, 3.0, 2.0]})
    out = summarize(df, ["lang"]).set_index("lang")
    assert out.loc["en", "mean"] == 2.0 and out.loc["en", "std"] == pytest.approx(np.sqrt(2))
    assert np.isnan(out.loc["fr", "std"]) and out.loc["fr", "n"] == 1  # one row: no spread (n/a)
    with pytest.raises(ValueError, match=r"summarize: table lacks column\(s\) \['seed'\]"):
        summarize(df, ["lang", "seed"])


def test_correlate_spearman():
    from analysis.typology import correlate

    t = pd.DataFrame({"lang": list("abcdef"), "gain": [5, 4, 3, 2, 1, 0], "distance": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],
                      "feature": "syntactic"})
    r = correlate(t).iloc[0]
    assert r["spearman_rho"] == pytest.approx(-1.0) and r["n"] == 6


@pytest.fixture(scope="module")
def uriel_cache(tmp_path_factory):
    pytest.importorskip("lang2vec.lang2vec")
    return tmp_path_factory.mktemp("uriel")


def test_uriel_distances_cached(uriel_cache):
    tmp_path = uriel_cache
    from analysis.typology import gain_vs_distance, iso3, uriel_distance

    assert iso3("fr") == "fra" and iso3("fa") == "pes"
    with pytest.raises(KeyError, match="xx"):
        iso3("xx")
    d_fr = uriel_distance("en", "fr", "syntactic", cache_dir=tmp_path)
    d_ko = uriel_distance("en", "ko", "syntactic", cache_dir=tmp_path)
    assert 0 <= d_fr < d_ko <= 1
    assert uriel_distance("en", "en", "syntactic", cache_dir=tmp_path) == pytest.approx(0.0, abs=1e-12)
    assert (tmp_path / "uriel.json").is_file()
    t = gain_vs_distance(pd.DataFrame({"lang": ["fr", "ko"], "gain": [1.0, -2.0]}), "en", ["syntactic"],
                         cache_dir=tmp_path)
    assert list(t["distance"]) == pytest.approx([d_fr, d_ko])


def test_typology_cli(uriel_cache, tmp_path, monkeypatch, capsys):
    from alignfreeze.cli import main

    monkeypatch.setenv("ALIGNFREEZE_CACHE", str(uriel_cache))
    gains = tmp_path / "g.csv"
    pd.DataFrame({"lang": ["fr", "de", "ko", "tr"], "gain": [0.5, 0.4, -1.0, -0.8]}).to_csv(gains, index=False)
    out = tmp_path / "t.csv"
    assert main(["typology", "--gains", str(gains), "--reference", "en", "--features", "syntactic",
                 "--out", str(out)]) == 0
    t = pd.read_csv(out)
    assert list(t.columns) == ["lang", "gain", "feature", "distance"] and len(t) == 4
    assert "spearman_rho" in capsys.readouterr().out
    bad = tmp_path / "b.csv"
    pd.DataFrame({"lang": ["fr"], "x": [1]}).to_csv(bad, index=False)
    assert main(["typology", "--gains", str(bad), "--reference", "en", "--out", str(out)]) == 2
