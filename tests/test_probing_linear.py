"""MultiLayerLinearProbe: planted signals, backend parity, label handling, estimator API."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.exceptions import NotFittedError

from probing.linear import MultiLayerLinearProbe, unseen_label_rate


def planted(seed: int, n: int = 1200, d: int = 12, k: int = 4):
    """Layer 0 carries a linear label (y = argmax of a random projection), layer 1 is noise."""
    rng = np.random.default_rng(seed)
    x0 = rng.normal(size=(n, d))
    y = (x0 @ rng.normal(size=(d, k))).argmax(1)
    x1 = rng.normal(size=(n, d))
    X = np.stack([x0, x1]).astype(np.float32)
    return X, y


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1))
def test_probe_recovers_planted_linear_label_for_any_seed(seed):
    X, y = planted(seed)
    tr, te = slice(0, 900), slice(900, None)
    probe = MultiLayerLinearProbe(C=10.0, random_state=seed).fit(X[:, tr], y[tr])
    acc = probe.score(X[:, te], y[te])
    chance = np.bincount(y[te]).max() / len(y[te])  # majority-class rate bounds a useless probe
    assert acc[0] > 0.9
    assert acc[1] < chance + 0.12


def noisy_classes(seed: int, n: int = 1500, d: int = 20, k: int = 5, layers: int = 3):
    """Class means plus noise, with the signal weakening from layer to layer."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    means = rng.normal(size=(k, d))
    X = np.stack([means[y] * s + rng.normal(size=(n, d)) for s in np.linspace(0.8, 0.2, layers)])
    return X.astype(np.float32), y


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_torch_backend_agrees_with_sklearn_within_a_point(seed):
    X, y = noisy_classes(seed)
    tr, te = slice(0, 1000), slice(1000, None)
    t = MultiLayerLinearProbe(C=0.5, backend="torch").fit(X[:, tr], y[tr])
    s = MultiLayerLinearProbe(C=0.5, backend="sklearn").fit(X[:, tr], y[tr])
    acc_t, acc_s = t.score(X[:, te], y[te]), s.score(X[:, te], y[te])
    assert np.abs(acc_t - acc_s).max() <= 0.01
    # same objective: the weights agree too, not only the accuracies
    assert np.abs(t.coef_ - s.coef_).max() < 0.05 * np.abs(s.coef_).max()
    assert (t.predict(X[:, te]) == s.predict(X[:, te])).mean() > 0.97


def test_binary_problem_backends_agree():
    X, y = noisy_classes(3, k=2, layers=2)
    t = MultiLayerLinearProbe(backend="torch").fit(X, y)
    s = MultiLayerLinearProbe(backend="sklearn").fit(X, y)
    assert s.coef_.shape == t.coef_.shape == (2, 2, X.shape[2])
    assert (t.predict(X) == s.predict(X)).mean() > 0.98


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # 40 epochs: not to tol
def test_adam_solver_recovers_the_signal_and_is_seeded():
    X, y = planted(5)
    a = MultiLayerLinearProbe(C=10.0, solver="adam", max_iter=40, lr=0.05, batch_size=128, random_state=1).fit(X, y)
    b = MultiLayerLinearProbe(C=10.0, solver="adam", max_iter=40, lr=0.05, batch_size=128, random_state=1).fit(X, y)
    assert a.score(X, y)[0] > 0.9
    np.testing.assert_array_equal(a.coef_, b.coef_)


def test_lbfgs_is_deterministic_and_list_input_equals_stacked():
    X, y = noisy_classes(4)
    a = MultiLayerLinearProbe().fit(X, y)
    b = MultiLayerLinearProbe().fit([X[i] for i in range(X.shape[0])], y)
    np.testing.assert_array_equal(a.coef_, b.coef_)
    np.testing.assert_array_equal(a.predict(X), b.predict(list(X)))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # tol=1e-6: float32 stalls first
def test_all_layers_together_equal_one_layer_at_a_time():
    X, y = noisy_classes(6, layers=3)
    joint = MultiLayerLinearProbe(C=0.5, max_iter=300, tol=1e-6).fit(X, y)
    for i in range(X.shape[0]):
        single = MultiLayerLinearProbe(C=0.5, max_iter=300, tol=1e-6).fit(X[i : i + 1], y)
        # the same minimiser (float32 L-BFGS: equal objectives, weights to ~1e-3)
        assert joint.loss_[i] == pytest.approx(single.loss_[0], rel=1e-5)
        np.testing.assert_allclose(joint.coef_[i], single.coef_[0], atol=1e-2)


def test_labels_unseen_in_training_count_as_wrong():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 2)).astype(np.float32)
    y = np.where(x[:, 0] > 0, "NOUN", "VERB")
    probe = MultiLayerLinearProbe(C=100.0).fit(x[None], y)
    assert list(probe.classes_) == ["NOUN", "VERB"]
    y_eval = y.copy()
    y_eval[:50] = "INTJ"  # a tag the training language never had
    correct_ab = (probe.predict(x[None])[0][50:] == y[50:]).sum()
    assert probe.score(x[None], y_eval)[0] == pytest.approx(correct_ab / 200)
    assert unseen_label_rate(y_eval, probe.classes_) == pytest.approx(0.25)


def test_estimator_api():
    probe = MultiLayerLinearProbe(C=2.0, backend="sklearn", max_iter=50)
    assert probe.get_params()["C"] == 2.0 and probe.get_params()["backend"] == "sklearn"
    assert not [k for k in vars(probe) if k.endswith("_")]  # __init__ learns nothing
    with pytest.raises(NotFittedError, match="not fitted"):
        probe.predict(np.zeros((1, 3, 2)))
    X, y = noisy_classes(0, layers=2)
    assert probe.fit(X, y) is probe
    for attr in ("classes_", "coef_", "intercept_", "mean_", "scale_", "n_iter_"):
        assert hasattr(probe, attr)
    assert probe.coef_.shape == (2, 5, X.shape[2]) and probe.intercept_.shape == (2, 5)
    assert probe.set_params(C=3.0) is probe and probe.C == 3.0
    with pytest.raises(ValueError, match="Invalid parameter 'alpha'"):
        probe.set_params(alpha=1)


@pytest.mark.parametrize(
    ("kwargs", "X", "y", "match"),
    [
        ({}, np.zeros((2, 5, 3)), np.zeros(5), "contains only one class"),
        ({}, np.zeros((2, 5, 3)), np.arange(4), r"expected \(5,\)"),
        ({}, np.zeros((5, 3)), np.arange(5), r"\(layers, N, D\)"),
        ({}, [], np.arange(5), "no layers"),
        ({"backend": "numpy"}, np.zeros((1, 4, 2)), np.arange(4) % 2, "unknown backend"),
        ({"C": 0}, np.zeros((1, 4, 2)), np.arange(4) % 2, "C must be a finite number > 0"),
    ],
)
def test_bad_inputs_are_clear_errors(kwargs, X, y, match):
    with pytest.raises(ValueError, match=match):
        MultiLayerLinearProbe(**kwargs).fit(X, y)


def test_scoring_features_of_another_shape_is_an_error():
    X, y = noisy_classes(0, layers=2)
    probe = MultiLayerLinearProbe().fit(X, y)
    with pytest.raises(ValueError, match="fitted on 2 layers"):
        probe.score(X[:1], y)


def test_binary_decision_function_is_the_log_odds_per_layer():
    """Two classes: one score per (layer, word), the log-odds of classes_[1] (a mutant that
    tested the word axis instead of the class axis survived the other tests)."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(2, 40, 5))  # 2 layers, 40 words
    y = np.where(X[1, :, 0] + 0.3 * rng.normal(size=40) > 0, "NOUN", "VERB")
    probe = MultiLayerLinearProbe(C=1.0, random_state=0).fit(X, y)
    scores = probe.decision_function(X)
    assert scores.shape == (2, 40)
    p = probe.predict_proba(X)
    np.testing.assert_allclose(scores, np.log(p[..., 1] / p[..., 0]), rtol=1e-6, atol=1e-9)
