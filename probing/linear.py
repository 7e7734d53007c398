"""Linear probes at every layer at once.

:class:`MultiLayerLinearProbe` fits one multinomial logistic regression per layer. With the
default ``backend="torch"`` all layers are fitted *together*: the weights are one batched
``(layers, D, C)`` tensor, the features one standardised ``(layers, N, D)`` tensor, and a
single full-batch L-BFGS (or minibatch Adam) run minimises the sum of the per-layer
objectives. The layers do not interact (the sum is separable), so each layer reaches the
minimiser of its own objective; batching only shares the matrix products and the loop.
``backend="sklearn"`` fits scikit-learn's ``LogisticRegression`` layer by layer, with the same
objective, for parity checks.

Objective (per layer, identical for both backends, as in scikit-learn)::

    C * sum_i CE(x_i W + b, y_i) + 0.5 * ||W||^2      (the intercept b is not penalised)

on features standardised with the training mean and standard deviation of each layer
(``standardize=True``). Both backends minimise it divided by ``C * N`` (mean cross-entropy +
``||W||^2 / (2 C N)``, scikit-learn's internal scaling): the same minimiser, and ``tol``
applies to the gradient of that scaled objective in both.

Labels: ``classes_`` are the labels seen in training. Labels that occur only at evaluation
(a zero-shot language with a tag absent from the training treebank) can never be predicted,
so :meth:`MultiLayerLinearProbe.score` counts those words as wrong — they stay in the
denominator; :func:`unseen_label_rate` says how many there were.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

BACKENDS = ("torch", "sklearn")
SOLVERS = ("lbfgs", "adam")

LayeredArray = np.ndarray | torch.Tensor | Sequence[np.ndarray]


def _n_layers_and_shape(X: LayeredArray) -> tuple[int, int, int]:
    if isinstance(X, np.ndarray | torch.Tensor):
        if X.ndim != 3:
            raise ValueError(f"features must be (layers, N, D), got shape {tuple(X.shape)}")
        return int(X.shape[0]), int(X.shape[1]), int(X.shape[2])
    X = list(X)
    if not X:
        raise ValueError("no layers given: features must be (layers, N, D) with at least one layer")
    shapes = {tuple(np.shape(x)) for x in X}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise ValueError(f"every layer must be an (N, D) array of the same shape, got {sorted(shapes)}")
    n, d = next(iter(shapes))
    return len(X), int(n), int(d)


def _layer(X: LayeredArray, i: int) -> np.ndarray:
    x = X[i]
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def unseen_label_rate(y_eval: Sequence, classes: Sequence) -> float:
    """Fraction of evaluation labels absent from the training labels ``classes``."""
    y = np.asarray(y_eval)
    if y.size == 0:
        return 0.0
    return float((~np.isin(y, np.asarray(classes))).mean())


class MultiLayerLinearProbe:
    """Multinomial logistic-regression probes for every layer, fitted together.

    Args:
        C: inverse L2 strength, as in scikit-learn's ``LogisticRegression``.
        backend: ``torch`` (all layers in one batched pass) or ``sklearn`` (layer by layer).
        solver: torch backend only: ``lbfgs`` (full batch, deterministic) or ``adam``
            (minibatches in a seeded order).
        max_iter: L-BFGS iterations (both backends) or Adam epochs.
        tol: stop when the largest absolute gradient entry is below ``tol`` (torch L-BFGS) /
            scikit-learn's ``tol``.
        lr: Adam learning rate.
        batch_size: Adam minibatch size.
        standardize: z-score each layer's features with the training statistics.
        seed: seeds Adam's minibatch order (L-BFGS starts from zeros and is deterministic).
        warm_start_epochs: torch L-BFGS only: start from this many epochs of minibatch Adam
            (seeded) instead of zeros; the stopping rule is unchanged.
        device: torch device for the torch backend.

    Attributes (after ``fit``): ``classes_`` (C,), ``coef_`` (layers, C, D) and
    ``intercept_`` (layers, C) in standardised space, ``mean_`` and ``scale_`` (layers, D),
    ``n_layers_``, ``n_features_in_``, ``n_iter_`` and ``loss_`` (final objective per layer,
    torch backend).
    """

    def __init__(
        self,
        C: float = 1.0,
        *,
        backend: str = "torch",
        solver: str = "lbfgs",
        max_iter: int = 100,
        tol: float = 1e-4,
        lr: float = 1e-2,
        batch_size: int = 4096,
        standardize: bool = True,
        seed: int = 0,
        warm_start_epochs: int = 0,
        device: str = "cpu",
    ):
        self.C = C
        self.backend = backend
        self.solver = solver
        self.max_iter = max_iter
        self.tol = tol
        self.lr = lr
        self.batch_size = batch_size
        self.standardize = standardize
        self.seed = seed
        self.warm_start_epochs = warm_start_epochs
        self.device = device

    # ------------------------------------------------------------------ sklearn API
    def get_params(self, deep: bool = True) -> dict:
        """The constructor parameters (scikit-learn convention)."""
        return {k: getattr(self, k) for k in ("C", "backend", "solver", "max_iter", "tol", "lr",
                                              "batch_size", "standardize", "seed", "warm_start_epochs", "device")}

    def set_params(self, **params) -> MultiLayerLinearProbe:
        """Set constructor parameters (scikit-learn convention)."""
        valid = self.get_params()
        for k, v in params.items():
            if k not in valid:
                raise ValueError(f"unknown parameter {k!r} for MultiLayerLinearProbe: expected one of {sorted(valid)}")
            setattr(self, k, v)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"MultiLayerLinearProbe({args})"

    def _check_params(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown backend {self.backend!r}: expected one of {', '.join(BACKENDS)}")
        if self.solver not in SOLVERS:
            raise ValueError(f"unknown solver {self.solver!r}: expected one of {', '.join(SOLVERS)}")
        if not self.C > 0:
            raise ValueError(f"C must be > 0, got {self.C}")
        if self.max_iter < 1:
            raise ValueError(f"max_iter must be >= 1, got {self.max_iter}")

    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise RuntimeError("this MultiLayerLinearProbe is not fitted yet: call fit(X, y) first")

    # ------------------------------------------------------------------ fitting
    def _standardised(self, X: LayeredArray) -> torch.Tensor:
        """``(layers, N, D)`` float32 tensor, z-scored with the fitted statistics."""
        L, n, d = _n_layers_and_shape(X)
        if L != self.n_layers_ or d != self.n_features_in_:
            raise ValueError(
                f"features have {L} layers x {d} dims, the probe was fitted on "
                f"{self.n_layers_} layers x {self.n_features_in_} dims"
            )
        out = torch.empty((L, n, d), dtype=torch.float32, device=self.device)
        mean = torch.as_tensor(self.mean_, device=self.device)
        scale = torch.as_tensor(self.scale_, device=self.device)
        for i in range(L):  # one layer at a time: no float64 copy of the whole stack
            x = torch.as_tensor(_layer(X, i), dtype=torch.float32, device=self.device)
            out[i] = (x - mean[i]) / scale[i]
        return out

    def fit(self, X: LayeredArray, y: Sequence) -> MultiLayerLinearProbe:
        """Fit one probe per layer.

        Args:
            X: ``(layers, N, D)`` array/tensor, or a sequence of ``(N, D)`` arrays.
            y: ``N`` labels (any hashable values; stored as given in ``classes_``).
        """
        self._check_params()
        L, n, d = _n_layers_and_shape(X)
        y = np.asarray(y)
        if y.shape != (n,):
            raise ValueError(f"y has shape {y.shape}, expected ({n},) to match the features")
        classes, y_idx = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(f"a probe needs at least 2 distinct labels in training, got {list(classes)}")
        self.classes_ = classes
        self.n_layers_, self.n_features_in_ = L, d
        if self.standardize:
            mean = np.empty((L, d), dtype=np.float64)
            scale = np.empty((L, d), dtype=np.float64)
            for i in range(L):
                x = _layer(X, i).astype(np.float64, copy=False)
                mean[i] = x.mean(0)
                scale[i] = x.std(0)
            scale[scale < 1e-12] = 1.0
        else:
            mean, scale = np.zeros((L, d)), np.ones((L, d))
        self.mean_, self.scale_ = mean.astype(np.float32), scale.astype(np.float32)
        if self.backend == "sklearn":
            self._fit_sklearn(X, y_idx)
        else:
            self._fit_torch(X, y_idx)
        return self

    def _fit_sklearn(self, X: LayeredArray, y_idx: np.ndarray) -> None:
        from sklearn.linear_model import LogisticRegression

        coefs, intercepts, iters = [], [], []
        for i in range(self.n_layers_):
            x = (_layer(X, i).astype(np.float64) - self.mean_[i]) / self.scale_[i]
            clf = LogisticRegression(C=self.C, max_iter=self.max_iter, tol=self.tol, solver="lbfgs")
            clf.fit(x, y_idx)
            coef, icpt = clf.coef_, clf.intercept_
            if coef.shape[0] == 1:  # binary: sklearn keeps one row; expand to two symmetric rows
                coef = np.concatenate([-coef / 2, coef / 2])
                icpt = np.concatenate([-icpt / 2, icpt / 2])
            coefs.append(coef)
            intercepts.append(icpt)
            iters.append(int(np.max(clf.n_iter_)))
        self.coef_ = np.stack(coefs).astype(np.float32)
        self.intercept_ = np.stack(intercepts).astype(np.float32)
        self.n_iter_ = max(iters)
        self.loss_ = None

    def _fit_torch(self, X: LayeredArray, y_idx: np.ndarray) -> None:
        L, d, k = self.n_layers_, self.n_features_in_, len(self.classes_)
        Xs = self._standardised(X)
        n = Xs.shape[1]
        y = torch.as_tensor(y_idx, dtype=torch.long, device=self.device)
        W = torch.zeros((L, d, k), dtype=torch.float32, device=self.device)
        b = torch.zeros((L, 1, k), dtype=torch.float32, device=self.device)
        l2 = 1.0 / (self.C * n)  # objective: mean CE + l2 / 2 * ||W||^2
        gen = torch.Generator().manual_seed(int(self.seed))
        if self.solver == "adam":
            self.n_iter_ = _adam(Xs, y, W, b, l2, k, self.max_iter, self.lr, self.batch_size, gen)
        else:
            if self.warm_start_epochs:
                _adam(Xs, y, W, b, l2, k, self.warm_start_epochs, self.lr, self.batch_size, gen)
            self.n_iter_ = _lbfgs(Xs, y, W, b, l2, k, self.max_iter, self.tol)
        self.loss_ = _objective(Xs, y, W, b, l2, k, grad=False)[0].cpu().numpy()
        self.coef_ = W.transpose(1, 2).cpu().numpy().copy()  # (L, k, d), sklearn layout
        self.intercept_ = b[:, 0].cpu().numpy().copy()

    # ------------------------------------------------------------------ inference
    def decision_function(self, X: LayeredArray) -> np.ndarray:
        """Logits ``(layers, N, C)``."""
        self._check_fitted()
        with torch.no_grad():
            Xs = self._standardised(X)
            W = torch.as_tensor(self.coef_, device=self.device).transpose(1, 2)
            bias = torch.as_tensor(self.intercept_, device=self.device).unsqueeze(1)
            return torch.baddbmm(bias, Xs, W).cpu().numpy()

    def predict(self, X: LayeredArray) -> np.ndarray:
        """Predicted labels ``(layers, N)`` (values from ``classes_``)."""
        best = self.decision_function(X).argmax(-1)
        return self.classes_[best]

    def score(self, X: LayeredArray, y: Sequence) -> np.ndarray:
        """Accuracy per layer ``(layers,)``; labels never seen in training count as wrong."""
        y = np.asarray(y)
        _, n, _ = _n_layers_and_shape(X)
        if y.shape != (n,):
            raise ValueError(f"y has shape {y.shape}, expected ({n},) to match the features")
        if n == 0:
            raise ValueError("cannot score a probe on zero examples")
        return (self.predict(X) == y[None, :]).mean(1)


# ---------------------------------------------------------------------- torch solvers
# The gradient of multinomial logistic regression is written out (P - Y) instead of
# going through autograd: it halves the time of an evaluation, which is what the full-batch
# solver spends its time on.

@torch.no_grad()
def _objective(Xs: torch.Tensor, y: torch.Tensor, W: torch.Tensor, b: torch.Tensor, l2: float, k: int,
               grad: bool = True) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Per-layer objectives ``(L,)`` = mean cross-entropy + ``l2 / 2 * ||W||^2``, and the
    gradients with respect to ``W`` ``(L, D, k)`` and ``b`` ``(L, 1, k)``."""
    n = Xs.shape[1]
    logp = torch.log_softmax(torch.baddbmm(b, Xs, W), -1)  # (L, n, k); logsumexp is ~10x slower
    picked = logp.gather(-1, y.view(1, -1, 1).expand(logp.shape[0], -1, 1)).squeeze(-1)
    loss = -picked.mean(1) + 0.5 * l2 * W.pow(2).sum((1, 2))
    if not grad:
        return loss, None, None
    G = logp.exp_()  # softmax, in place
    G.sub_(torch.nn.functional.one_hot(y, k).to(G.dtype)).div_(n)  # (P - Y) / n
    gW = torch.baddbmm(W, Xs.transpose(1, 2), G, beta=l2)
    gb = G.sum(1, keepdim=True)
    return loss, gW, gb


def _adam(Xs, y, W, b, l2, k, epochs, lr, batch_size, gen) -> int:
    """Minibatch Adam on the same objective (L2 as a loss term, not decoupled decay)."""
    n = Xs.shape[1]
    opt = torch.optim.Adam([W, b], lr=lr)
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen).to(Xs.device)
        for s in range(0, n, batch_size):
            idx = perm[s : s + batch_size]
            _, W.grad, b.grad = _objective(Xs[:, idx], y[idx], W, b, l2, k)
            opt.step()
    W.grad = b.grad = None
    return epochs


def _lbfgs(Xs, y, W, b, l2, k, max_iter, tol) -> int:
    """Full-batch L-BFGS (strong Wolfe line search) on the sum of the layer objectives;
    stops when the largest gradient entry is below ``tol`` (scipy/scikit-learn's rule)."""
    opt = torch.optim.LBFGS([W, b], lr=1.0, max_iter=max_iter, history_size=20, tolerance_grad=tol,
                            tolerance_change=1e-10, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        loss, W.grad, b.grad = _objective(Xs, y, W, b, l2, k)
        return loss.sum()

    opt.step(closure)
    W.grad = b.grad = None
    return int(opt.state[opt._params[0]].get("n_iter", 0))
