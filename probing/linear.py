"""Linear probes at every layer at once, as scikit-learn estimators.

:class:`MultiLayerLinearProbe` fits one multinomial logistic regression per layer. With the
default ``backend="torch"`` all layers are fitted *together*: the weights are one batched
``(layers, D, C)`` tensor, the features one standardised ``(layers, N, D)`` tensor, and a
single full-batch L-BFGS (or minibatch Adam) run minimises the sum of the per-layer
objectives (:mod:`probing.solvers`). The layers do not interact (the sum is separable), so
each layer reaches the minimiser of its own objective; batching only shares the matrix
products and the loop. ``backend="sklearn"`` fits scikit-learn's ``LogisticRegression``
layer by layer, with the same objective, for parity checks.

:class:`LinearProbe` is the same estimator on one layer's ``(N, D)`` features: a thin
adapter that passes ``[X]`` to a :class:`MultiLayerLinearProbe` (the code path the toolkit
runs), so that scikit-learn's own estimator checks (``sklearn.utils.estimator_checks``),
pipelines, ``clone`` and model selection apply to it.

Objective (per layer, identical for both backends, as in scikit-learn)::

    C * sum_i CE(x_i W + b, y_i) + 0.5 * ||W||^2      (the intercept b is not penalised)

on features standardised with the training mean and standard deviation of each layer
(``standardize=True``). Both backends minimise it divided by ``C * N`` (mean cross-entropy +
``||W||^2 / (2 C N)``, scikit-learn's internal scaling): the same minimiser, and ``tol``
applies to the gradient of that scaled objective in both. Fitting runs in float32 (the
speed of the batched solver); prediction runs in float64.

Labels: ``classes_`` are the labels seen in training. Labels that occur only at evaluation
(a zero-shot language with a tag absent from the training treebank) can never be predicted,
so :meth:`MultiLayerLinearProbe.score` counts those words as wrong — they stay in the
denominator; :func:`unseen_label_rate` says how many there were.

Input is validated as scikit-learn validates it (``check_array`` on every layer): NaN or
infinite features, zero samples or zero features, complex or non-numeric values, sparse
matrices and a ``y`` that is continuous, missing or of another length are ``ValueError``
(or ``TypeError``) naming the layer; a probe used before ``fit`` raises
``sklearn.exceptions.NotFittedError``; a solver that stops before the gradient is below
``tol`` emits ``sklearn.exceptions.ConvergenceWarning`` naming the layers.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch
from scipy.special import expit, log_expit, log_softmax, softmax
from sklearn.base import ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import assert_all_finite, check_array, column_or_1d
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from . import solvers
from .probe_base import BACKENDS, SOLVERS, LayeredArray, ProbeParams, layers_of, to_tensor

__all__ = ["BACKENDS", "SOLVERS", "LinearProbe", "MultiLayerLinearProbe", "unseen_label_rate"]


def unseen_label_rate(y_eval: Sequence, classes: Sequence) -> float:
    """Fraction of evaluation labels absent from the training labels ``classes``."""
    y = np.asarray(y_eval)
    if y.size == 0:
        return 0.0
    return float((~np.isin(y, np.asarray(classes))).mean())


class MultiLayerLinearProbe(ClassifierMixin, ProbeParams):
    """Multinomial logistic-regression probes for every layer, fitted together.

    ``X`` is ``(layers, N, D)`` (array or tensor) or a list of ``layers`` ``(N, D)``
    array-likes; ``y`` holds ``N`` labels of any hashable kind. Parameters (``C``,
    ``backend``, ``solver``, ``max_iter``, ``tol``, ``lr``, ``batch_size``, ``standardize``,
    ``random_state``, ``warm_start_epochs``, ``device``): see
    :class:`probing.probe_base.ProbeParams`.

    Attributes (after ``fit``): ``classes_`` (C,), ``coef_`` (layers, C, D) and
    ``intercept_`` (layers, C) in standardised space (one row per class, also for two
    classes: the softmax parametrisation; the sklearn backend's single binary row ``w`` is
    stored as ``-w/2, w/2``), ``mean_`` and ``scale_`` (layers, D), ``n_layers_``,
    ``n_features_in_`` (D), ``n_iter_`` (iterations of the joint run; the sklearn backend:
    the most of any layer) and ``loss_`` (final scaled objective per layer, torch backend).

    Outputs follow scikit-learn's classifier conventions with a leading layer axis:
    ``decision_function`` ``(layers, N)`` for two classes (the score of ``classes_[1]``),
    ``(layers, N, C)`` otherwise; ``predict_proba`` ``(layers, N, C)``; ``predict``
    ``(layers, N)``; ``score`` ``(layers,)``.
    """

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False  # (layers, N, D): sklearn's checks run on LinearProbe
        tags.input_tags.three_d_array = True
        tags.input_tags.sparse = False
        tags.input_tags.allow_nan = False
        tags.target_tags.single_output = True
        tags.target_tags.multi_output = False
        tags.classifier_tags.multi_class = True
        tags.classifier_tags.multi_label = False
        tags.non_deterministic = False
        return tags

    # ------------------------------------------------------------------ validation
    def _checked(self, x, i: int, n_layers: int) -> np.ndarray:
        """Layer ``i`` as a validated 2-D float32/float64 array (scikit-learn's ``check_array``:
        finite, numeric, dense, at least one sample and one feature)."""
        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().numpy()
        try:
            return check_array(x, dtype=(np.float32, np.float64), estimator=self, input_name="X")
        except (ValueError, TypeError) as e:
            if n_layers == 1:
                raise
            raise type(e)(f"layer {i} of {n_layers} given: {e}") from e

    def _checked_layers(self, X: LayeredArray, shape: tuple[int, int] | None = None):
        """Validate every layer lazily (one at a time: no copy of the whole stack); all layers
        must share ``(N, D)``. Returns ``(n_layers, N, D, iterator over the arrays)``."""
        layers = layers_of(X)
        first = self._checked(layers[0], 0, len(layers))
        n, d = first.shape
        if shape is not None and (len(layers), d) != shape:
            raise ValueError(f"X has {len(layers)} layers x {d} features, but this {type(self).__name__} was "
                             f"fitted on {shape[0]} layers x {shape[1]} features")

        def arrays():
            yield first
            for i in range(1, len(layers)):
                x = self._checked(layers[i], i, len(layers))
                if x.shape != (n, d):
                    raise ValueError(f"every layer must have the same (N, D): layer 0 is {(n, d)}, "
                                     f"layer {i} is {x.shape}")
                yield x

        return len(layers), n, d, arrays()

    def _checked_labels(self, y, n: int) -> np.ndarray:
        if y is None:
            raise ValueError(f"This {type(self).__name__} estimator requires y to be passed, but the target y is None.")
        y = column_or_1d(y, warn=True)
        if y.shape != (n,):
            raise ValueError(f"y has shape {y.shape}, expected ({n},) to match the features")
        if y.dtype == object and (missing := [i for i, v in enumerate(y) if v is None or v != v]):
            raise ValueError(f"y contains a missing label (None or NaN) at position(s) {missing[:5]}")
        assert_all_finite(y, input_name="y", estimator_name=type(self).__name__)  # score() needs it too
        return y

    # ------------------------------------------------------------------ fitting
    def fit(self, X: LayeredArray, y: Sequence) -> MultiLayerLinearProbe:
        """Fit one probe per layer.

        Args:
            X: ``(layers, N, D)`` array/tensor, or a sequence of ``(N, D)`` array-likes.
            y: ``N`` labels (any hashable values; stored as given in ``classes_``).

        Raises:
            ValueError: bad parameters, features or labels (see the module docstring);
                fewer than two classes.
        """
        self._check_params()
        L, n, d, arrays = self._checked_layers(X)
        y = self._checked_labels(y, n)
        check_classification_targets(y)
        classes, y_idx = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(f"{type(self).__name__} needs samples of at least 2 classes in the data, "
                             f"but the data contains only one class: {classes[0]!r}")
        mean = np.zeros((L, d), dtype=np.float32)
        scale = np.ones((L, d), dtype=np.float32)
        torch_backend = self.backend == "torch"
        Xs = torch.empty((L, n, d), dtype=torch.float32, device=self.device) if torch_backend else None
        per_layer: dict = {"coef": [], "intercept": [], "n_iter": []}  # sklearn backend
        for i, x in enumerate(arrays):  # one layer at a time: no float64 copy of the whole stack
            if self.standardize:
                x64 = x.astype(np.float64, copy=False)
                sd = x64.std(0)
                sd[sd < 1e-12] = 1.0
                mean[i], scale[i] = x64.mean(0), sd
            if torch_backend:
                Xs[i] = (to_tensor(x, torch.float32, self.device) - torch.as_tensor(mean[i], device=self.device)) \
                    / torch.as_tensor(scale[i], device=self.device)
            else:
                self._fit_sklearn_layer((x.astype(np.float64) - mean[i]) / scale[i], y_idx, per_layer)
        if torch_backend:
            coef, intercept, n_iter, loss = self._fit_torch(Xs, y_idx, len(classes))
        else:
            coef, intercept = np.stack(per_layer["coef"]), np.stack(per_layer["intercept"])
            n_iter, loss = max(per_layer["n_iter"]), None
        self.classes_ = classes
        self.n_layers_, self.n_features_in_ = L, d
        self.mean_, self.scale_ = mean, scale
        self.coef_, self.intercept_ = coef.astype(np.float32), intercept.astype(np.float32)
        self.n_iter_, self.loss_ = n_iter, loss
        return self

    def _fit_sklearn_layer(self, x: np.ndarray, y_idx: np.ndarray, out: dict) -> None:
        from sklearn.linear_model import LogisticRegression

        clf = LogisticRegression(C=self.C, max_iter=self.max_iter, tol=self.tol, solver="lbfgs")
        clf.fit(x, y_idx)  # emits scikit-learn's own ConvergenceWarning
        coef, icpt = clf.coef_, clf.intercept_
        if coef.shape[0] == 1:  # binary: sklearn keeps one row; expand to two symmetric rows
            coef = np.concatenate([-coef / 2, coef / 2])
            icpt = np.concatenate([-icpt / 2, icpt / 2])
        out["coef"].append(coef)
        out["intercept"].append(icpt)
        out["n_iter"].append(int(np.max(clf.n_iter_)))

    def _fit_torch(self, Xs: torch.Tensor, y_idx: np.ndarray, k: int):
        L, n, d = Xs.shape
        y = torch.as_tensor(y_idx, dtype=torch.long, device=self.device)
        W = torch.zeros((L, d, k), dtype=torch.float32, device=self.device)
        b = torch.zeros((L, 1, k), dtype=torch.float32, device=self.device)
        l2 = 1.0 / (self.C * n)  # objective: mean CE + l2 / 2 * ||W||^2
        gen = torch.Generator().manual_seed(self._seed())
        if self.solver == "adam":
            n_iter = solvers.adam(Xs, y, W, b, l2, k, self.max_iter, self.lr, self.batch_size, gen)
            stop = f"after {n_iter} Adam epochs (max_iter={self.max_iter})"
        else:
            if self.warm_start_epochs:
                solvers.adam(Xs, y, W, b, l2, k, self.warm_start_epochs, self.lr, self.batch_size, gen)
            n_iter, why = solvers.lbfgs(Xs, y, W, b, l2, k, self.max_iter, self.tol)
            stop = {"max_iter": f"after {n_iter} L-BFGS iterations (max_iter={self.max_iter})",
                    "max_eval": f"after {n_iter} L-BFGS iterations, at its limit of function evaluations "
                                f"(1.25 x max_iter={self.max_iter})",
                    }.get(why, f"L-BFGS stopped after {n_iter} iterations (max_iter={self.max_iter}) because a step "
                               "no longer changed the float32 objective")
        loss, gW, gb = solvers.objective(Xs, y, W, b, l2, k)
        gmax = solvers.max_abs_gradient(gW, gb).cpu().numpy()
        if not (gmax <= self.tol).all():
            bad = np.flatnonzero(~(gmax <= self.tol))
            warnings.warn(
                f"{type(self).__name__} did not converge: {stop}, the largest gradient entry is "
                f"{gmax[bad].max():.3g} > tol={self.tol:g} at layer(s) {', '.join(map(str, bad.tolist()))} of {L}",
                ConvergenceWarning, stacklevel=3)
        coef = W.transpose(1, 2).cpu().numpy().copy()  # (L, k, d), sklearn layout
        return coef, b[:, 0].cpu().numpy().copy(), n_iter, loss.cpu().numpy()

    # ------------------------------------------------------------------ inference
    def _logits(self, X: LayeredArray) -> np.ndarray:
        """Class scores ``(layers, N, C)`` in float64: ``((x - mean_) / scale_) @ coef_.T +
        intercept_``, computed as ``x @ (coef_ / scale_).T + (intercept_ - coef_ @ (mean_ /
        scale_))`` (no standardised copy of the features)."""
        check_is_fitted(self)
        L, n, _, arrays = self._checked_layers(X, shape=(self.n_layers_, self.n_features_in_))
        dev, f64 = self.device, torch.float64
        W = torch.as_tensor(self.coef_, device=dev).to(f64).transpose(1, 2)  # (L, D, C)
        mean = torch.as_tensor(self.mean_, device=dev).to(f64)
        scale = torch.as_tensor(self.scale_, device=dev).to(f64)
        W_raw = W / scale.unsqueeze(-1)
        b_raw = torch.as_tensor(self.intercept_, device=dev).to(f64) - torch.einsum("ld,ldc->lc", mean, W_raw)
        out = np.empty((L, n, len(self.classes_)), dtype=np.float64)
        with torch.no_grad():
            for i, x in enumerate(arrays):
                out[i] = torch.addmm(b_raw[i], to_tensor(x, f64, dev), W_raw[i]).cpu().numpy()
        return out

    def decision_function(self, X: LayeredArray) -> np.ndarray:
        """Scores, float64: ``(layers, N)`` for two classes (positive favours ``classes_[1]``),
        ``(layers, N, C)`` otherwise."""
        logits = self._logits(X)
        return logits[..., 1] - logits[..., 0] if logits.shape[-1] == 2 else logits

    def predict_proba(self, X: LayeredArray) -> np.ndarray:
        """Class probabilities ``(layers, N, C)`` (softmax of the class scores; rows sum to 1)."""
        logits = self._logits(X)
        if logits.shape[-1] == 2:
            p1 = expit(logits[..., 1] - logits[..., 0])
            return np.stack([1.0 - p1, p1], axis=-1)
        return softmax(logits, axis=-1)

    def predict_log_proba(self, X: LayeredArray) -> np.ndarray:
        """Log of :meth:`predict_proba` ``(layers, N, C)``, computed without underflow."""
        logits = self._logits(X)
        if logits.shape[-1] == 2:
            d = logits[..., 1] - logits[..., 0]
            return np.stack([log_expit(-d), log_expit(d)], axis=-1)
        return log_softmax(logits, axis=-1)

    def predict(self, X: LayeredArray) -> np.ndarray:
        """Predicted labels ``(layers, N)`` (values from ``classes_``)."""
        best = self._logits(X).argmax(-1)
        return self.classes_[best]

    def score(self, X: LayeredArray, y: Sequence) -> np.ndarray:
        """Accuracy per layer ``(layers,)``; labels never seen in training count as wrong."""
        check_is_fitted(self)
        pred = self.predict(X)
        y = self._checked_labels(y, pred.shape[1])
        return (pred == y[None, :]).mean(1)


class LinearProbe(ClassifierMixin, ProbeParams):
    """One layer's probe on ``(N, D)`` features: a scikit-learn classifier.

    A thin adapter: ``fit(X, y)`` fits a :class:`MultiLayerLinearProbe` (``probe_``) on the
    one-layer stack ``[X]`` and every method reads layer 0 of its output, so the validation,
    solver and prediction code are those of the multi-layer probe. Same parameters as
    :class:`MultiLayerLinearProbe`. It passes ``sklearn.utils.estimator_checks`` and works in
    pipelines, ``clone`` and model selection.

    Attributes (after ``fit``): ``probe_`` (the fitted :class:`MultiLayerLinearProbe`),
    ``classes_`` (C,), ``coef_`` (C, D) and ``intercept_`` (C,) in standardised space (see
    :class:`MultiLayerLinearProbe`), ``n_features_in_``, ``feature_names_in_`` (when ``X``
    has column names), ``n_iter_``.
    """

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        tags.input_tags.allow_nan = False
        tags.target_tags.single_output = True
        tags.target_tags.multi_output = False
        tags.classifier_tags.multi_class = True
        tags.classifier_tags.multi_label = False
        tags.non_deterministic = False
        return tags

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "probe_")

    def fit(self, X, y) -> LinearProbe:
        """Fit on ``X`` ``(N, D)`` and ``N`` labels ``y``; errors as :meth:`MultiLayerLinearProbe.fit`."""
        probe = MultiLayerLinearProbe(**self.get_params()).fit([X], y)
        validate_data(self, X, skip_check_array=True)  # n_features_in_, feature_names_in_ (X is valid)
        self.probe_ = probe
        self.classes_, self.n_iter_ = probe.classes_, probe.n_iter_
        self.coef_, self.intercept_ = probe.coef_[0], probe.intercept_[0]
        return self

    def _one_layer(self, X) -> list:
        """``[X]`` for ``probe_``, after the checks that need the 2-D view: fitted, 2-D (the
        multi-layer probe's own ``check_array``), then feature count and names in
        scikit-learn's wording."""
        check_is_fitted(self)
        x = self.probe_._checked(X, 0, 1)
        validate_data(self, X, skip_check_array=True, reset=False)
        return [x]

    def decision_function(self, X) -> np.ndarray:
        """Scores ``(N,)`` for two classes (positive favours ``classes_[1]``), else ``(N, C)``."""
        layers = self._one_layer(X)
        return self.probe_.decision_function(layers)[0]

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities ``(N, C)``; rows sum to 1."""
        layers = self._one_layer(X)
        return self.probe_.predict_proba(layers)[0]

    def predict_log_proba(self, X) -> np.ndarray:
        """Log class probabilities ``(N, C)``."""
        layers = self._one_layer(X)
        return self.probe_.predict_log_proba(layers)[0]

    def predict(self, X) -> np.ndarray:
        """Predicted labels ``(N,)``."""
        layers = self._one_layer(X)
        return self.probe_.predict(layers)[0]

    def score(self, X, y) -> float:
        """Accuracy; labels never seen in training count as wrong."""
        layers = self._one_layer(X)
        return float(self.probe_.score(layers, y)[0])
