"""What both probe estimators of :mod:`probing.linear` share: their parameters (stored by
``__init__``, validated in ``fit``, scikit-learn's convention) and the layer view of the
input."""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state

BACKENDS = ("torch", "sklearn")
SOLVERS = ("lbfgs", "adam")

LayeredArray = np.ndarray | torch.Tensor | Sequence[np.ndarray]


def layers_of(X: LayeredArray) -> list:
    """The layers of ``X``, not yet validated: the slices of a ``(layers, N, D)`` array or
    tensor, or the items of a list/tuple of ``(N, D)`` array-likes."""
    if isinstance(X, list | tuple):
        if not X:
            raise ValueError("no layers given: features must be (layers, N, D) with at least one layer")
        return list(X)
    if X is None:
        raise ValueError("features are None: expected a (layers, N, D) array or a list of (N, D) arrays")
    if not isinstance(X, torch.Tensor):
        X = np.asarray(X)
    if X.ndim != 3:
        raise ValueError(f"features must be (layers, N, D), got shape {tuple(X.shape)}; "
                         "one layer's (N, D) features go in a list ([X]) or to LinearProbe")
    if X.shape[0] == 0:
        raise ValueError("no layers given: features must be (layers, N, D) with at least one layer")
    return [X[i] for i in range(X.shape[0])]


def _real(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _integer(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def to_tensor(x: np.ndarray, dtype: torch.dtype, device) -> torch.Tensor:
    """``x`` as a torch tensor; a read-only array (memmap) is copied, since torch cannot wrap it."""
    if not x.flags.writeable:
        x = np.array(x)
    return torch.as_tensor(x, device=device).to(dtype)


class ProbeParams(BaseEstimator):
    """Parameters shared by :class:`MultiLayerLinearProbe` and :class:`LinearProbe`.

    Args:
        C: inverse L2 strength, as in scikit-learn's ``LogisticRegression`` (> 0).
        backend: ``torch`` (all layers in one batched pass) or ``sklearn`` (layer by layer).
        solver: torch backend only: ``lbfgs`` (full batch, deterministic) or ``adam``
            (minibatches in a seeded order).
        max_iter: L-BFGS iterations (both backends) or Adam epochs.
        tol: converged when the largest absolute gradient entry (of the scaled objective) is
            below ``tol``; otherwise a ``ConvergenceWarning``.
        lr: Adam learning rate.
        batch_size: Adam minibatch size.
        standardize: z-score each layer's features with the training statistics.
        random_state: seeds Adam's minibatch order (an int is the torch seed itself; a
            ``RandomState`` or ``None`` draws one). L-BFGS starts from zeros and is
            deterministic whatever the seed.
        warm_start_epochs: torch L-BFGS only: start from this many epochs of minibatch Adam
            (seeded) instead of zeros; the stopping rule is unchanged.
        device: torch device for the torch backend (fit and prediction).

    Parameters are validated in ``fit`` (``ValueError``), never in ``__init__`` or
    ``set_params`` (scikit-learn convention).
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
        random_state: int | np.random.RandomState | None = 0,
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
        self.random_state = random_state
        self.warm_start_epochs = warm_start_epochs
        self.device = device

    def _check_params(self) -> None:
        name = type(self).__name__
        if self.backend not in BACKENDS:
            raise ValueError(f"{name}: unknown backend {self.backend!r}: expected one of {', '.join(BACKENDS)}")
        if self.solver not in SOLVERS:
            raise ValueError(f"{name}: unknown solver {self.solver!r}: expected one of {', '.join(SOLVERS)}")
        for key, strict in (("C", True), ("lr", True), ("tol", False)):
            v = getattr(self, key)
            if not _real(v) or not np.isfinite(v) or v < 0 or (strict and v == 0):
                raise ValueError(f"{name}: {key} must be a finite number {'> 0' if strict else '>= 0'}, got {v!r}")
        for key, low in (("max_iter", 1), ("batch_size", 1), ("warm_start_epochs", 0)):
            v = getattr(self, key)
            if not _integer(v) or v < low:
                raise ValueError(f"{name}: {key} must be an integer >= {low}, got {v!r}")

    def _seed(self) -> int:
        rs = self.random_state
        if _integer(rs):
            return int(rs)
        return int(check_random_state(rs).randint(np.iinfo(np.int32).max))
