"""Statistics across seeds and languages: mean ± std, paired tests, Holm correction."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def summarize(df: pd.DataFrame, by: Sequence[str], value: str = "value") -> pd.DataFrame:
    """Mean, std (ddof=1; NaN, i.e. n/a, for a group of one row) and count of ``value`` per
    group ``by``. The rows of a group must be replicates (seeds): a std over other things (two
    treebanks of one language, several layers) is not a sampling spread."""
    missing = [c for c in [*by, value] if c not in df.columns]
    if missing:
        raise ValueError(f"summarize: table lacks column(s) {missing}")
    g = df.groupby(list(by))[value]
    return pd.DataFrame({"mean": g.mean(), "std": g.std(ddof=1), "n": g.count()}).reset_index()


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1)."""
    p = np.asarray(pvalues, dtype=np.float64)
    m = len(p)
    order = np.argsort(p)
    adj = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, (m - rank) * p[i])
        adj[i] = min(1.0, running)
    return adj


def paired_test(df: pd.DataFrame, *, condition: str, a: str, b: str, match: Sequence[str],
                value: str = "value", by: Sequence[str] = (), correction: str | None = None) -> pd.DataFrame:
    """Paired comparison of condition ``b`` against ``a`` over matched units.

    Rows of ``df`` with ``df[condition] == a`` and ``== b`` are joined on ``match`` (e.g.
    ``["seed", "lang"]``); within each group of ``by`` (e.g. ``["layer"]``), the differences
    ``b - a`` get a paired t-test and a Wilcoxon signed-rank test (scipy). ``correction="holm"``
    adds Holm-adjusted p-values over the groups. Returns one row per group with
    ``n, mean_a, mean_b, mean_diff, std_diff, t, p_t, w, p_wilcoxon`` (+ ``*_holm``);
    ``std_diff`` and both tests are NaN below two matched units (a signed-rank test of one
    difference always gives p = 1), the t-test also when the differences are all equal (no
    spread), the Wilcoxon test when they are all zero. Several rows of one unit
    (e.g. two treebanks of a language) are averaged into one value first, so a unit is
    never counted twice.
    """
    from scipy import stats

    if correction not in (None, "holm"):
        raise ValueError(f"correction must be None or 'holm', not {correction!r}")
    need = [condition, value, *match, *by]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise ValueError(f"paired_test: table lacks column(s) {missing}")
    keys = [*by, *match]
    A = df[df[condition] == a].groupby(keys)[value].mean().rename("a")
    B = df[df[condition] == b].groupby(keys)[value].mean().rename("b")
    if A.empty or B.empty:
        raise ValueError(f"paired_test: no rows for {condition}={a!r} or {condition}={b!r}")
    j = pd.concat([A, B], axis=1, join="inner").reset_index()
    if j.empty:
        raise ValueError(f"paired_test: no matched units between {a!r} and {b!r} on {list(match)}")
    groups = j.groupby(list(by)) if by else [((), j)]
    rows = []
    for key, g in groups:
        d = (g["b"] - g["a"]).to_numpy()
        row = dict(zip(by, key if isinstance(key, tuple) else (key,), strict=True)) if by else {}
        row.update(n=len(d), mean_a=g["a"].mean(), mean_b=g["b"].mean(), mean_diff=d.mean(),
                   std_diff=d.std(ddof=1) if len(d) > 1 else float("nan"))
        if len(d) >= 2 and np.any(d != d[0]):
            t = stats.ttest_rel(g["b"], g["a"])
            row.update(t=float(t.statistic), p_t=float(t.pvalue))
        else:
            row.update(t=np.nan, p_t=np.nan)
        if len(d) >= 2 and np.any(d != 0):
            w = stats.wilcoxon(d)
            row.update(w=float(w.statistic), p_wilcoxon=float(w.pvalue))
        else:
            row.update(w=np.nan, p_wilcoxon=np.nan)
        rows.append(row)
    out = pd.DataFrame(rows)
    if correction == "holm":
        for col in ("p_t", "p_wilcoxon"):
            ok = out[col].notna()
            out[col + "_holm"] = np.nan
            out.loc[ok, col + "_holm"] = holm(out.loc[ok, col].to_numpy())
    return out
