"""CKA properties: self-similarity, invariances, equality with naive Gram formulas, NaN safety."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.cka import (
    CKAStats,
    CKAWarning,
    MinibatchCKA,
    debiased_cka,
    layer_cka_matrix,
    linear_cka,
    rbf_cka,
)


def naive_linear(X, Y):
    n = len(X)
    H = np.eye(n) - 1.0 / n
    K, L = H @ X @ X.T @ H, H @ Y @ Y.T @ H
    return (K * L).sum() / np.sqrt((K * K).sum() * (L * L).sum())


def naive_hsic_u(K, L):
    n = len(K)
    K, L = K.copy(), L.copy()
    np.fill_diagonal(K, 0)
    np.fill_diagonal(L, 0)
    one = np.ones(n)
    return (np.trace(K @ L) + one @ K @ one * (one @ L @ one) / ((n - 1) * (n - 2))
            - 2.0 / (n - 2) * one @ K @ L @ one) / (n * (n - 3))


def naive_debiased(X, Y):
    K, L = X @ X.T, Y @ Y.T
    return naive_hsic_u(K, L) / np.sqrt(naive_hsic_u(K, K) * naive_hsic_u(L, L))


def _data(seed, n=30, d1=8, d2=5, shift=2.0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d1)) + shift
    Y = X @ rng.normal(size=(d1, d2)) * 0.5 + rng.normal(size=(n, d2))
    return X, Y


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(5, 40), d=st.integers(1, 12))
def test_self_cka_is_one(seed, n, d):
    X = np.random.default_rng(seed).normal(size=(n, d))
    assert linear_cka(X, X) == pytest.approx(1.0, abs=1e-6)
    assert debiased_cka(X, X) == pytest.approx(1.0, abs=1e-9)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), scale=st.floats(1e-3, 1e3))
def test_invariant_to_rotation_and_isotropic_scaling(seed, scale):
    X, Y = _data(seed)
    Q, _ = np.linalg.qr(np.random.default_rng(seed + 1).normal(size=(8, 8)))
    ref = linear_cka(X, Y, precision="float64")
    assert linear_cka(X @ Q * scale, Y, precision="float64") == pytest.approx(ref, abs=1e-9)
    assert debiased_cka(X @ Q * scale, Y) == pytest.approx(debiased_cka(X, Y), abs=1e-8)


@pytest.mark.parametrize("seed", range(5))
def test_linear_equals_naive_gram_formula(seed):
    X, Y = _data(seed)
    assert linear_cka(X, Y, precision="float64") == pytest.approx(naive_linear(X, Y), abs=1e-12)
    assert linear_cka(X, Y) == pytest.approx(naive_linear(X, Y), abs=1e-6)
    # torch tensors, float32 and different widths
    assert linear_cka(torch.tensor(X, dtype=torch.float32), torch.tensor(Y)) == pytest.approx(naive_linear(X, Y), abs=1e-6)


@pytest.mark.parametrize("seed", range(5))
def test_debiased_equals_naive_unbiased_hsic(seed):
    X, Y = _data(seed, n=25)
    assert debiased_cka(X, Y) == pytest.approx(naive_debiased(X, Y), abs=1e-10)


def test_streaming_stats_equal_one_shot():
    X, Y = _data(3, n=200, shift=50.0)  # a large offset: the shift keeps accuracy
    s = CKAStats()
    for a in range(0, 200, 37):
        s.update(X[a:a + 37], Y[a:a + 37])
    assert s.n == 200
    assert s.linear() == pytest.approx(naive_linear(X, Y), abs=1e-10)
    assert s.debiased() == pytest.approx(naive_debiased(X, Y), abs=1e-8)


def test_minibatch_cka_nan_safe_on_tiny_batches_and_constants():
    X, Y = _data(0, n=40)
    m = MinibatchCKA()
    for a in (0, 2, 3):  # batches of 2, 1, 1 rows: skipped
        m.update(X[a:a + (2 if a == 0 else 1)], Y[a:a + (2 if a == 0 else 1)])
    assert m.skipped_ == 3 and m.batches_ == 0
    with pytest.warns(CKAWarning):
        assert m.value() == 0.0
    for a in range(4, 40, 6):
        m.update(X[a:a + 6], Y[a:a + 6])
    v = m.value()
    assert np.isfinite(v) and 0 < v <= 1.0001
    # constant features: defined as 0 with a warning, never NaN
    C = np.ones((10, 3))
    with pytest.warns(CKAWarning):
        assert linear_cka(C, X[:10]) == 0.0
    with pytest.warns(CKAWarning):
        assert MinibatchCKA().update(C, X[:10]).value() == 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isfinite(MinibatchCKA().update(X[:4], Y[:4]).value())


def test_minibatch_single_batch_equals_debiased():
    X, Y = _data(1, n=30)
    assert MinibatchCKA().update(X, Y).value() == pytest.approx(debiased_cka(X, Y), abs=1e-12)


def test_rbf_cka_self_and_subsample():
    X, Y = _data(2, n=60)
    assert rbf_cka(X, X) == pytest.approx(1.0, abs=1e-9)
    v = rbf_cka(X, Y)
    assert 0 < v < 1
    sub = rbf_cka(X, Y, max_n=40, seed=1)
    assert 0 < sub < 1 and sub != v


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"same number of rows \(examples\): 3 != 4"):
        linear_cka(np.ones((3, 2)), np.ones((4, 5)))
    with pytest.raises(ValueError, match="CKA of zero examples is undefined"):
        linear_cka(np.ones((0, 2)), np.ones((0, 2)))
    with pytest.raises(ValueError, match="2-D"):
        linear_cka(np.ones(3), np.ones(3))
    with pytest.raises(ValueError, match="at least 4"):
        debiased_cka(np.eye(3), np.eye(3))
    with pytest.raises(ValueError, match="no rows accumulated"):
        CKAStats().linear()
    # a chunk whose width changed on either side: a ValueError naming both sizes
    acc = CKAStats().update(np.ones((4, 3)), np.ones((4, 2)))
    with pytest.raises(ValueError, match=r"feature sizes changed between chunks: 3, 5 != 3, 2"):
        acc.update(np.ones((4, 3)), np.ones((4, 5)))
    with pytest.raises(ValueError, match=r"feature sizes changed between chunks: 6, 2 != 3, 2"):
        acc.update(np.ones((4, 6)), np.ones((4, 2)))


def test_layer_matrix_is_symmetric_with_unit_diagonal():
    X, Y = _data(4, n=50)
    rows = layer_cka_matrix({0: X, 1: Y, 2: X[:, :3]})
    m = {(r["layer_a"], r["layer_b"]): r["cka"] for r in rows}
    assert len(m) == 9
    for i in range(3):
        assert m[(i, i)] == pytest.approx(1.0, abs=1e-6)
        for j in range(3):
            assert m[(i, j)] == pytest.approx(m[(j, i)])
    assert m[(0, 1)] == pytest.approx(naive_linear(X, Y), abs=1e-6)


def test_stats_of_disjoint_rows_add_and_subtract():
    X, Y = _data(6, n=90, shift=20.0)
    shift = (X[:10].mean(0), Y[:10].mean(0))
    a = CKAStats(shift=shift).update(X[:40], Y[:40])
    b = CKAStats(shift=shift).update(X[40:], Y[40:])
    both = a + b
    assert both.n == 90
    assert both.linear() == pytest.approx(naive_linear(X, Y), abs=1e-10)
    assert both.debiased() == pytest.approx(naive_debiased(X, Y), abs=1e-8)
    rest = both - a  # the leave-a-group-out statistics of a jackknife
    assert rest.n == 50
    assert rest.linear() == pytest.approx(naive_linear(X[40:], Y[40:]), abs=1e-10)
    assert rest.debiased() == pytest.approx(naive_debiased(X[40:], Y[40:]), abs=1e-8)
    with pytest.raises(ValueError, match="same shift"):
        _ = a + CKAStats().update(X[40:], Y[40:])
    with pytest.raises(ValueError, match="before any row"):
        _ = CKAStats() + a


def test_unbiased_hsic_values_not_only_their_ratio():
    """MinibatchCKA adds HSICs of batches of different sizes: each must be the estimator itself,
    not something proportional to it."""
    X, Y = _data(7, n=23)
    K, L = X @ X.T, Y @ Y.T
    xy, xx, yy = CKAStats().update(X, Y).hsic_unbiased()
    assert (xy, xx, yy) == pytest.approx((naive_hsic_u(K, L), naive_hsic_u(K, K), naive_hsic_u(L, L)), rel=1e-9)
    m = MinibatchCKA().update(X[:6], Y[:6]).update(X[6:], Y[6:])
    parts = [(naive_hsic_u(A @ A.T, B @ B.T), naive_hsic_u(A @ A.T, A @ A.T), naive_hsic_u(B @ B.T, B @ B.T))
             for A, B in ((X[:6], Y[:6]), (X[6:], Y[6:]))]
    ref = sum(p[0] for p in parts) / np.sqrt(sum(p[1] for p in parts) * sum(p[2] for p in parts))
    assert m.value() == pytest.approx(ref, abs=1e-10)


def test_mixed_precision_is_accurate_far_from_the_origin():
    """Features with a large common offset (real layers have them): means and shifts are taken
    in float64, so float32 GEMMs still give CKA to ~1e-6 of the float64 value."""
    X, Y = _data(8, n=400, d1=16, d2=12, shift=1e6)
    for A, B in ((X, Y), (X.astype(np.float32), Y.astype(np.float32))):
        ref = linear_cka(A.astype(np.float64), B.astype(np.float64), precision="float64")
        assert linear_cka(A, B) == pytest.approx(ref, abs=2e-6)
        assert CKAStats(precision="mixed").update(A, B).linear() == pytest.approx(ref, abs=2e-6)


def test_half_precision_tensors():
    X, Y = _data(9, n=40)
    ref = linear_cka(X, Y, precision="float64")
    for dt in (torch.bfloat16, torch.float16):
        v = linear_cka(torch.tensor(X).to(dt), torch.tensor(Y).to(dt))
        assert v == pytest.approx(ref, abs=0.02)


def test_layer_matrix_of_two_models_is_pairwise_linear_cka():
    X, Y = _data(10, n=60)
    Z = np.random.default_rng(3).normal(size=(60, 7))
    rows = layer_cka_matrix({0: X, 1: Y}, {0: Z, 1: X, 2: Y[:, :2]})
    got = {(r["layer_a"], r["layer_b"]): r["cka"] for r in rows}
    want = {(a, b): linear_cka(A, B, precision="float64")
            for a, A in {0: X, 1: Y}.items() for b, B in {0: Z, 1: X, 2: Y[:, :2]}.items()}
    assert got.keys() == want.keys()
    for k in want:
        assert got[k] == pytest.approx(want[k], abs=1e-6)
    with pytest.raises(ValueError, match="same words"):
        layer_cka_matrix({0: X}, {0: Z[:30]})


def test_word_features_cka_uses_the_words_both_models_represent():
    from types import SimpleNamespace

    from analysis.cka import layer_cka_matrix, word_features_cka

    rng = np.random.default_rng(5)
    xa = {0: rng.normal(size=(30, 4)), 1: rng.normal(size=(30, 4))}
    xb = {0: rng.normal(size=(30, 3)), 1: rng.normal(size=(30, 3))}
    va, vb = np.ones(30, bool), np.ones(30, bool)
    va[[2, 7]] = False  # words without a vector in A
    vb[[7, 11]] = False  # ... and in B
    a, b = SimpleNamespace(features=xa, valid=va), SimpleNamespace(features=xb, valid=vb)
    keep = va & vb
    rows, n = word_features_cka(a, b)
    assert n == 27
    assert rows == layer_cka_matrix({k: v[keep] for k, v in xa.items()}, {k: v[keep] for k, v in xb.items()})
    rows_a, n_a = word_features_cka(a)
    assert n_a == 28 and rows_a == layer_cka_matrix({k: v[va] for k, v in xa.items()})
