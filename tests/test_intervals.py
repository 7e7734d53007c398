"""Drift intervals: coverage of a KNOWN population value by simulation, widths that follow the
data, the jackknife by hand, and the grouped CKA statistics against a brute-force jackknife."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.cka import CKAStats
from analysis.intervals import (
    GroupedCKA,
    group_u_cka,
    jackknife_interval,
    ratio_interval,
    sentence_groups,
)
from analysis.simulate import ClusteredPair, simulate_drift

METRICS = ("cka", "cka_debiased", "cos_dist", "rel_l2")
# anisotropic like real layers; flat with strong sentence effects, where both the plug-in and
# the word-level unbiased CKA of 2,000 words are biased by many standard errors (a jackknife
# of either covered 15% and 38% of 80 draws here)
SCENARIOS = {"anisotropic": ClusteredPair(dim=16, decay=1.0, noise=1.0, within=0.3, seed=1),
             "flat": ClusteredPair(dim=96, decay=0.0, noise=1.0, within=0.5, seed=2)}


def _repeat(scenario: ClusteredPair, reps: int, n_sentences: int, seed: int = 0) -> dict[str, np.ndarray]:
    """``{metric: (reps, 3)}`` of value, ci_low, ci_high over independent draws."""
    rng = np.random.default_rng(seed)
    out: dict[str, list] = {m: [] for m in METRICS}
    for r in range(reps):
        rows = simulate_drift(scenario, rng, n_sentences, chunk_sentences=n_sentences, seed=r)
        for m in METRICS:
            out[m].append((rows[m]["value"], rows[m]["ci_low"], rows[m]["ci_high"]))
    return {m: np.asarray(v) for m, v in out.items()}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_intervals_cover_the_population_value(name):
    """95% intervals cover the truth in >= 90% of 120 seeded draws (binomial sd at 95%: 2
    points), and every point lies inside its own interval."""
    sc = SCENARIOS[name]
    truth = {"cka": sc.truth, "cka_debiased": sc.truth, **sc.reference(200_000)}
    res = _repeat(sc, 120, 100)
    for m in METRICS:
        v, lo, hi = res[m].T
        assert np.all(np.isfinite(lo) & np.isfinite(hi)), m
        assert np.all((lo <= v) & (v <= hi)), f"{m}: a point outside its own interval"
        cover = np.mean((lo <= truth[m]) & (truth[m] <= hi))
        assert cover >= 0.90, f"{name} {m}: coverage {cover:.3f} < 0.90 (truth {truth[m]:.4f})"
        assert np.mean(hi - lo) < 0.5 * truth[m], f"{m}: uninformative intervals"
    if name == "flat":
        # the regime the group estimator is for: both plug-in CKAs sit far above the truth,
        # at the top of their (lopsided) intervals
        for m in ("cka", "cka_debiased"):
            v, lo, hi = res[m].T
            assert np.mean(v) - sc.truth > 0.5 * np.mean(hi - lo), m
            assert np.mean(hi - v) < 0.1 * np.mean(v - lo), m


def test_interval_width_follows_the_data():
    """A constant (or data-blind) interval fails: widths shrink like 1/sqrt(sentences), vary
    from draw to draw, and grow when the checkpoint drifts more (lower, noisier CKA)."""
    near = ClusteredPair(dim=16, decay=1.0, noise=0.3, seed=3)
    far = ClusteredPair(dim=16, decay=1.0, noise=1.5, seed=3)
    small, large = _repeat(near, 20, 60), _repeat(near, 20, 240)
    noisy = _repeat(far, 20, 60)
    for m in METRICS:
        w_small = small[m][:, 2] - small[m][:, 1]
        w_large = large[m][:, 2] - large[m][:, 1]
        ratio = np.median(w_large) / np.median(w_small)
        assert 0.3 < ratio < 0.75, f"{m}: 4x the sentences changed the width by {ratio:.2f} (expected ~0.5)"
        assert np.std(w_small) > 0.02 * np.mean(w_small), f"{m}: the same width on every draw"
        assert len({tuple(r) for r in small[m][:, 1:].round(12)}) == len(small[m])
    for m in ("cka", "cka_debiased"):
        assert np.median(np.diff(noisy[m][:, 1:], axis=1)) > 2 * np.median(np.diff(small[m][:, 1:], axis=1))


def test_jackknife_interval_by_hand():
    from scipy import stats

    t2 = stats.t.ppf(0.975, 2)
    iv = jackknife_interval(2.0, [1.0, 2.0, 3.0])  # no bias; se = sqrt(2/3 * 2)
    assert iv.se == pytest.approx(np.sqrt(4 / 3)) and iv.bias == pytest.approx(0.0)
    assert (iv.low, iv.high) == pytest.approx((2 - t2 * np.sqrt(4 / 3), 2 + t2 * np.sqrt(4 / 3)))
    # leave-outs all 0.5 above the point: bias (G-1)*0.5 = 0.5 upwards... of the leave-outs,
    # so the corrected centre is 2 - 0.5 = 1.5; se 0; widened up to the point
    iv = jackknife_interval(2.0, [2.5, 2.5])
    assert iv.bias == pytest.approx(0.5) and iv.se == 0.0
    assert (iv.low, iv.high) == pytest.approx((1.5, 2.0))
    iv = jackknife_interval(0.99, [0.95, 0.97, 0.99, 0.93], level=0.9, bounds=(0.0, 1.0))
    assert iv.high == 1.0 and iv.low < 0.99  # clipped to the range of CKA
    assert np.isnan(jackknife_interval(1.0, [1.0]).low)  # one group: no interval
    assert np.isnan(jackknife_interval(1.0, [1.0, np.nan]).high)
    with pytest.raises(ValueError, match="level"):
        jackknife_interval(1.0, [1.0, 2.0], level=95)


def test_ratio_interval_is_leave_one_sentence_out():
    num = np.array([1.0, 4.0, 0.0, 2.0, 3.0])
    den = np.array([2.0, 4.0, 0.0, 1.0, 3.0])  # the empty sentence is not a unit
    iv = ratio_interval(num, den)
    assert iv.value == pytest.approx(10 / 10)
    keep = den > 0
    loo = [(10 - a) / (10 - b) for a, b in zip(num[keep], den[keep])]
    ref = jackknife_interval(1.0, loo)
    assert (iv.low, iv.high, iv.se) == pytest.approx((ref.low, ref.high, ref.se))
    assert iv.low < 1.0 < iv.high
    assert np.isnan(ratio_interval([1.0], [2.0]).low) and ratio_interval([1.0], [2.0]).value == 0.5
    assert np.isnan(ratio_interval([0.0], [0.0]).value)
    with pytest.raises(ValueError, match="same length"):
        ratio_interval([1.0, 2.0], [1.0])


def _naive_group_u_hsic(K, L, g):
    """The group U-statistic HSIC by brute force: the average of k_ij l_ij + k_ij l_qr -
    2 k_ij l_iq over word 4-tuples (i, j, q, r) from 4 distinct groups."""
    D = (g[:, None] != g[None, :]).astype(float)
    D4 = np.einsum("ij,iq,ir,jq,jr,qr->ijqr", D, D, D, D, D, D)
    terms = K[:, :, None, None] * L[:, :, None, None] + K[:, :, None, None] * L[None, None, :, :] \
        - 2 * K[:, :, None, None] * L[:, None, :, None]
    return (terms * D4).sum() / D4.sum()


def _grouped(X, Y, g, G):
    gc = GroupedCKA(precision="float64")
    for k in range(G):  # each group in two pieces
        rows = np.nonzero(g == k)[0]
        gc.update(X[rows[:2]], Y[rows[:2]], k)
        if len(rows) > 2:
            gc.update(X[rows[2:]], Y[rows[2:]], k)
    return gc


def test_group_u_cka_by_brute_force_and_its_jackknife():
    sc = ClusteredPair(dim=5, decay=0.5, noise=0.8, within=0.5, mean_length=2.0, seed=4)
    X, Y, lengths = sc.draw(np.random.default_rng(5), 12)
    X, Y = X.astype(np.float64), Y.astype(np.float64)
    g = np.repeat(np.arange(12) % 6, lengths)  # 6 groups of 2 whole sentences
    gc = _grouped(X, Y, g, 6)
    assert gc.n == len(X) and gc.n_groups == 6
    pop = gc.population_interval()  # seals the last group
    K, L = X @ X.T, Y @ Y.T

    def naive(keep):
        k = np.isin(g, keep)
        gk = g[k]
        xy = _naive_group_u_hsic(K[k][:, k], L[k][:, k], gk)
        xx = _naive_group_u_hsic(K[k][:, k], K[k][:, k], gk)
        yy = _naive_group_u_hsic(L[k][:, k], L[k][:, k], gk)
        return xy / np.sqrt(xx * yy)

    value, loo = group_u_cka(list(gc._sealed.values()), gc.total)
    # invariant to a shift of the features (real layers have large means)
    shifted = _grouped(X + 50.0, Y - 20.0, g, 6)
    shifted.population_interval()
    assert group_u_cka(list(shifted._sealed.values()), shifted.total)[0] == pytest.approx(value, rel=1e-5)
    # group matrices are kept in float32: agreement to ~1e-7
    assert value == pytest.approx(naive(range(6)), rel=1e-6)
    np.testing.assert_allclose(loo, [naive([h for h in range(6) if h != k]) for k in range(6)], rtol=1e-6)
    ref = jackknife_interval(value, loo, bounds=(0.0, 1.0))
    assert (pop.low, pop.high) == pytest.approx((ref.low, ref.high))
    # both rows carry that interval, each widened to contain its own value
    got = gc.intervals()
    full = CKAStats().update(X, Y)
    assert got["cka"].value == pytest.approx(full.linear()) and got["cka_debiased"].value == pytest.approx(full.debiased())
    for m in ("cka", "cka_debiased"):
        assert got[m].low == pytest.approx(min(pop.low, got[m].value))
        assert got[m].high == pytest.approx(max(pop.high, got[m].value))


def test_group_u_cka_with_one_word_per_group_is_the_unbiased_hsic_cka():
    """With every group a single word, 'distinct groups' is 'distinct words': Song et al.'s
    unbiased estimator, i.e. debiased CKA."""
    from analysis.cka import debiased_cka

    rng = np.random.default_rng(6)
    X = rng.normal(size=(9, 4)) + 3.0
    Y = X @ rng.normal(size=(4, 3)) + rng.normal(size=(9, 3))
    gc = _grouped(X, Y, np.arange(9), 9)
    gc.population_interval()  # seals the last group
    value, loo = group_u_cka(list(gc._sealed.values()), gc.total)
    assert value == pytest.approx(debiased_cka(X, Y), rel=1e-6)
    assert loo[0] == pytest.approx(debiased_cka(X[1:], Y[1:]), rel=1e-6)
    # memory: float32 upper triangles of the two Gram matrices + the cross matrix, per group
    assert gc.nbytes >= 9 * 4 * (4 * 5 // 2 + 3 * 4 // 2 + 4 * 3)
    with pytest.raises(ValueError, match="contiguous"):
        gc.update(X[:3], Y[:3], 0)


def test_grouped_cka_without_groups_has_values_but_no_interval():
    X = np.random.default_rng(0).normal(size=(50, 4))
    one = GroupedCKA().update(X, X, 0).intervals()
    assert one["cka"].value == pytest.approx(1.0) and np.isnan(one["cka"].low)
    off = GroupedCKA(keep_groups=False)
    off.update(X[:25], X[:25], 0).update(X[25:], X[25:], 1)
    res = off.intervals()
    assert off.nbytes == 0 and np.isnan(res["cka"].low) and res["cka"].value == pytest.approx(1.0)
    # identical features: every estimate is 1, the interval collapses onto the point
    same = GroupedCKA()
    for k in range(5):
        same.update(X[10 * k:10 * k + 10], X[10 * k:10 * k + 10], k)
    iv = same.intervals()["cka"]
    assert iv.low == pytest.approx(1.0, abs=1e-6) and iv.high == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError, match="no rows"):
        GroupedCKA().intervals()


def test_sentence_groups_are_random_balanced_and_contiguous():
    order, group = sentence_groups(103, 10, seed=7)
    assert sorted(order) == list(range(103)) and list(order) != list(range(103))
    assert np.all(np.diff(group) >= 0) and set(group) == set(range(10))
    sizes = np.bincount(group)
    assert sizes.max() - sizes.min() <= 1
    assert np.array_equal(sentence_groups(103, 10, seed=7)[0], order)
    assert not np.array_equal(sentence_groups(103, 10, seed=8)[0], order)
    assert set(sentence_groups(4, 10)[1]) == {0, 1, 2, 3}  # fewer sentences than groups
    with pytest.raises(ValueError):
        sentence_groups(5, 0)
