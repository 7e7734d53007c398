"""The probes are scikit-learn estimators: sklearn's own estimator checks on the 2-D adapter
(which runs the multi-layer code), and the same conventions, with a layer axis, on the
layer-stacked probe."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning, DataConversionWarning, NotFittedError
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import estimator_checks as ec
from sklearn.utils import get_tags
from sklearn.utils.estimator_checks import parametrize_with_checks

from probing import linear, solvers
from probing.linear import LinearProbe, MultiLayerLinearProbe
from probing.semantic import translation_pair_probe

ADAPTERS = [
    LinearProbe(),
    LinearProbe(solver="adam"),
    LinearProbe(warm_start_epochs=2),
    LinearProbe(backend="sklearn"),
    LinearProbe(standardize=False, C=0.5),
]


# Adam runs its epochs without reaching tol on these small problems, and the unstandardised
# L-BFGS can stop on float32 precision first: warned about, and tested below, not here
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@parametrize_with_checks(ADAPTERS)
def test_linear_probe_passes_sklearn_estimator_checks(estimator, check):
    check(estimator)


# the API checks that need no 2-D data run on the layer-stacked probe itself
API_CHECKS = [ec.check_estimator_cloneable, ec.check_estimator_repr, ec.check_no_attributes_set_in_init,
              ec.check_get_params_invariance, ec.check_set_params, ec.check_parameters_default_constructible,
              ec.check_do_not_raise_errors_in_init_or_set_params, ec.check_valid_tag_types,
              ec.check_estimator_tags_renamed, ec.check_mixin_order]


@pytest.mark.parametrize("check", API_CHECKS, ids=lambda c: c.__name__)
def test_multilayer_probe_passes_the_api_checks(check):
    check("MultiLayerLinearProbe", MultiLayerLinearProbe(C=2.0, solver="adam"))


def test_multilayer_probe_declares_its_3d_input_and_the_adapter_2d():
    multi, single = get_tags(MultiLayerLinearProbe()), get_tags(LinearProbe())
    assert multi.estimator_type == single.estimator_type == "classifier"
    assert multi.input_tags.three_d_array and not multi.input_tags.two_d_array
    assert single.input_tags.two_d_array and not single.input_tags.sparse and not single.input_tags.allow_nan
    assert single.target_tags.required and single.classifier_tags.multi_class


def blobs(seed: int, n: int = 240, d: int = 6, k: int = 3, layers: int = 3):
    """Class means plus noise, weaker at every layer."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    means = rng.normal(size=(k, d)) * 2
    X = np.stack([means[y] * s + rng.normal(size=(n, d)) for s in np.linspace(1.0, 0.2, layers)])
    return X.astype(np.float32), y


# ------------------------------------------------------------------ the adapter is the real path

def test_adapter_runs_the_multilayer_code_and_gives_its_numbers(monkeypatch):
    X, y = blobs(0, layers=1)
    calls = []
    real = solvers.lbfgs
    monkeypatch.setattr(solvers, "lbfgs", lambda Xs, *a, **k: calls.append(tuple(Xs.shape)) or real(Xs, *a, **k))
    single = LinearProbe(C=0.7).fit(X[0], y)
    assert calls == [(1, 240, 6)]  # the batched solver, with one layer
    multi = MultiLayerLinearProbe(C=0.7).fit(X, y)
    assert isinstance(single.probe_, MultiLayerLinearProbe)
    np.testing.assert_array_equal(single.coef_, multi.coef_[0])
    np.testing.assert_array_equal(single.decision_function(X[0]), multi.decision_function(X)[0])
    np.testing.assert_array_equal(single.predict_proba(X[0]), multi.predict_proba(X)[0])
    np.testing.assert_array_equal(single.predict(X[0]), multi.predict(X)[0])
    assert single.score(X[0], y) == multi.score(X, y)[0]


def test_adapter_in_a_pipeline_and_cross_validation():
    X, y = blobs(1, layers=1)
    pipe = make_pipeline(StandardScaler(), LinearProbe(C=0.05))
    scores = cross_val_score(pipe, X[0], y, cv=3)  # a classifier: stratified folds, clones of pipe
    manual = [clone(pipe).fit(X[0][tr], y[tr]).score(X[0][te], y[te])
              for tr, te in StratifiedKFold(3).split(X[0], y)]
    np.testing.assert_array_equal(scores, manual)
    assert scores.min() > 0.8


def test_adapter_keeps_feature_names():
    X, y = blobs(2, layers=1)
    df = pd.DataFrame(X[0], columns=[f"dim{i}" for i in range(6)])
    probe = LinearProbe().fit(df, y)
    assert list(probe.feature_names_in_) == list(df.columns)
    with pytest.raises(ValueError, match="feature names should match"):
        probe.predict(df.rename(columns={"dim0": "other"}))


# ------------------------------------------------------------------ conventions with a layer axis

@pytest.mark.parametrize("backend", ["torch", "sklearn"])
def test_binary_outputs_follow_sklearn_per_layer(backend):
    X, y = blobs(3, k=2)
    labels = np.array(["neg", "pos"])[y]
    probe = MultiLayerLinearProbe(backend=backend).fit(X, labels)
    dec, proba, pred = probe.decision_function(X), probe.predict_proba(X), probe.predict(X)
    assert dec.shape == (3, 240) and proba.shape == (3, 240, 2) and pred.shape == (3, 240)
    np.testing.assert_array_equal(pred, probe.classes_[(dec > 0).astype(int)])  # > 0 favours classes_[1]
    np.testing.assert_allclose(proba.sum(-1), 1.0, atol=1e-12)
    np.testing.assert_array_equal(proba.argmax(-1), (dec > 0).astype(int))
    np.testing.assert_allclose(probe.predict_log_proba(X), np.log(proba), rtol=1e-9, atol=1e-12)


def test_binary_decision_function_is_sklearns_score():
    from sklearn.linear_model import LogisticRegression

    X, y = blobs(4, k=2, layers=1)
    probe = MultiLayerLinearProbe(backend="sklearn", standardize=False).fit(X, y)
    ref = LogisticRegression().fit(X[0].astype(np.float64), y)
    np.testing.assert_allclose(probe.decision_function(X)[0], ref.decision_function(X[0]), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(probe.predict_proba(X)[0], ref.predict_proba(X[0]), atol=1e-6)


def test_multiclass_outputs_per_layer():
    X, y = blobs(5, k=4)
    probe = MultiLayerLinearProbe().fit(X, y)
    dec, proba = probe.decision_function(X), probe.predict_proba(X)
    assert dec.shape == proba.shape == (3, 240, 4)
    np.testing.assert_array_equal(probe.predict(X), probe.classes_[dec.argmax(-1)])
    np.testing.assert_allclose(proba.sum(-1), 1.0, atol=1e-12)
    np.testing.assert_array_equal(proba.argmax(-1), dec.argmax(-1))


def test_prediction_of_a_subset_is_the_prediction_of_the_whole():
    X, y = blobs(6, k=5)
    probe = MultiLayerLinearProbe().fit(X, y)
    whole = probe.decision_function(X)
    for rows in (slice(0, 1), slice(17, 18), slice(100, 157)):
        np.testing.assert_allclose(probe.decision_function(X[:, rows]), whole[:, rows], rtol=0, atol=1e-12)


@pytest.mark.parametrize("method", ["predict", "decision_function", "predict_proba", "predict_log_proba"])
def test_unfitted_probe_raises_not_fitted_error(method):
    with pytest.raises(NotFittedError):
        getattr(MultiLayerLinearProbe(), method)(np.zeros((2, 3, 4)))
    with pytest.raises(NotFittedError):
        MultiLayerLinearProbe().score(np.zeros((2, 3, 4)), np.zeros(3))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # 30 Adam epochs
def test_clone_pickle_and_params_round_trip():
    X, y = blobs(7)
    probe = MultiLayerLinearProbe(C=0.3, solver="adam", max_iter=30, random_state=4)
    params = probe.get_params()
    twin = clone(probe)
    assert twin.get_params() == params and twin is not probe
    fitted = probe.fit(X, y)
    again = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(again.decision_function(X), fitted.decision_function(X))
    np.testing.assert_array_equal(twin.fit(X, y).coef_, fitted.coef_)  # same params, same random_state
    assert probe.set_params(**{**params, "C": 3.0}).get_params() == {**params, "C": 3.0}


def test_random_state_seeds_adam_and_accepts_sklearn_forms():
    X, y = blobs(8)
    kw = {"solver": "adam", "max_iter": 5, "batch_size": 32}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = MultiLayerLinearProbe(random_state=1, **kw).fit(X, y).coef_
        b = MultiLayerLinearProbe(random_state=np.int64(1), **kw).fit(X, y).coef_
        c = MultiLayerLinearProbe(random_state=2, **kw).fit(X, y).coef_
        d = MultiLayerLinearProbe(random_state=np.random.RandomState(0), **kw).fit(X, y).coef_
        e = MultiLayerLinearProbe(random_state=np.random.RandomState(0), **kw).fit(X, y).coef_
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_array_equal(d, e)


# ------------------------------------------------------------------ bad input, clear errors

@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_features_are_refused_in_fit_naming_the_layer(bad):
    X, y = blobs(9)
    X[2, 5, 1] = bad
    with pytest.raises(ValueError, match=r"layer 2 of 3 given: Input X contains (NaN|infinity)"):
        MultiLayerLinearProbe().fit(X, y)


def test_non_finite_features_are_refused_in_predict():
    X, y = blobs(10)
    probe = MultiLayerLinearProbe().fit(X, y)
    X16 = X.astype(np.float16)
    with np.errstate(over="ignore"):
        X16[1, 0, 0] = np.float32(7e4)  # past float16's range: a half-precision feature store overflows to inf
    for method in ("predict", "decision_function", "predict_proba", "score"):
        args = (X16, y) if method == "score" else (X16,)
        with pytest.raises(ValueError, match="layer 1 of 3 given: Input X contains infinity"):
            getattr(probe, method)(*args)


@pytest.mark.parametrize(
    ("X", "y", "match"),
    [
        (np.zeros((2, 5, 0)), np.arange(5) % 2, r"0 feature\(s\)"),
        (np.zeros((2, 0, 3)), np.zeros(0), r"0 sample\(s\)"),
        (np.zeros((2, 4, 3)), None, "requires y to be passed"),
        (np.zeros((2, 4, 3)), np.array([0.1, 0.2, 0.3, 0.4]), "Unknown label type"),
        (np.zeros((2, 4, 3)), np.array([0, 1, np.nan, 1]), "Input y contains NaN"),
        (np.zeros((2, 4, 3)), np.array(["NOUN", "VERB", np.nan, "NOUN"], dtype=object), r"missing label .*\[2\]"),
        (np.zeros((2, 4, 3)), np.array(["NOUN", None, "VERB", "NOUN"], dtype=object), r"missing label .*\[1\]"),
        (np.zeros((2, 4, 3)) + 1j, np.arange(4) % 2, "Complex data not supported"),
        ([np.zeros((4, 3)), np.zeros((5, 3))], np.arange(4) % 2, "same"),
        (np.zeros((2, 4, 3)), np.zeros((4, 2)), "y should be a 1d array"),
    ],
)
def test_bad_features_and_labels_are_clear_errors(X, y, match):
    with pytest.raises(ValueError, match=match):
        MultiLayerLinearProbe().fit(X, y)


def test_scoring_against_missing_labels_is_an_error_not_a_wrong_answer():
    X, y = blobs(17)
    probe = MultiLayerLinearProbe().fit(X, y)
    y_eval = y.astype(float)
    y_eval[3] = np.nan
    with pytest.raises(ValueError, match="Input y contains NaN"):
        probe.score(X, y_eval)
    with pytest.raises(ValueError, match=r"missing label .*\[0\]"):
        probe.score(X, np.array([None, *y[1:]], dtype=object))


def test_non_numeric_features_are_a_type_error_naming_the_layer():
    X, y = blobs(16, layers=2)
    words = X[1].astype(object)
    words[3, 2] = {"not": "a number"}
    with pytest.raises(TypeError, match="layer 1 of 2 given: .*must be a string or a (real )?number"):
        MultiLayerLinearProbe().fit([X[0], words], y)


def test_labels_as_a_column_warn_and_fit_the_same():
    X, y = blobs(11)
    with pytest.warns(DataConversionWarning):
        col = MultiLayerLinearProbe().fit(X, y[:, None])
    np.testing.assert_array_equal(col.coef_, MultiLayerLinearProbe().fit(X, y).coef_)


@pytest.mark.parametrize("params", [{"C": -1.0}, {"tol": np.nan}, {"max_iter": 0}, {"max_iter": 2.5},
                                    {"batch_size": 0}, {"solver": "sgd"}, {"lr": 0}])
def test_bad_parameters_fail_in_fit_not_in_init(params):
    probe = MultiLayerLinearProbe(**params)  # scikit-learn: no validation in __init__
    with pytest.raises(ValueError, match=f"MultiLayerLinearProbe: {next(iter(params))}|unknown solver"):
        probe.fit(*blobs(12))


# ------------------------------------------------------------------ convergence

def test_hitting_max_iter_warns_naming_the_layers():
    X, _ = blobs(13, layers=2)
    y = np.arange(240) % 2  # balanced, and X[0] separable: layer 0 with C=100 is far from done in 8 steps
    X[0, :, 0] += 3.0 * y
    X[1] = 0.0  # layer 1 carries nothing: with balanced classes it starts (and stays) at its optimum
    with pytest.warns(ConvergenceWarning, match=r"after 8 L-BFGS iterations \(max_iter=8\).*layer\(s\) 0 of 2$"):
        probe = MultiLayerLinearProbe(C=100.0, max_iter=8).fit(X, y)
    assert probe.n_iter_ == 8
    with pytest.warns(ConvergenceWarning, match=r"limit of function evaluations \(1.25 x max_iter=3\)"):
        MultiLayerLinearProbe(C=100.0, max_iter=3).fit(X, y)
    with pytest.warns(ConvergenceWarning, match=r"after 3 Adam epochs"):
        MultiLayerLinearProbe(solver="adam", max_iter=3, lr=1e-4).fit(X, y)


def test_a_converged_probe_does_not_warn():
    X, y = blobs(14)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        probe = MultiLayerLinearProbe(C=1.0, max_iter=500, tol=1e-4).fit(X, y)
    assert probe.n_iter_ < 500


# ------------------------------------------------------------------ semantic.py's probes

def test_semantic_pair_probe_fits_the_checked_estimator():
    rng = np.random.default_rng(15)
    meaning = rng.normal(size=(2, 40, 5)).astype(np.float32)
    probe = MultiLayerLinearProbe(C=0.5)
    acc = translation_pair_probe(meaning, meaning + 0.05 * rng.normal(size=meaning.shape), probe=probe)
    assert acc.shape == (2,)
    assert probe.n_layers_ == 2 and probe.n_features_in_ == 10 and list(probe.classes_) == [0, 1]
    assert linear.MultiLayerLinearProbe is type(probe)
