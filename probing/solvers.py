"""Batched torch solvers for multinomial logistic regression, all layers at once.

Shapes: features ``Xs`` ``(L, N, D)`` float32 (standardised), integer labels ``y`` ``(N,)``
in ``0..k-1``, weights ``W`` ``(L, D, k)`` and intercepts ``b`` ``(L, 1, k)``, updated in
place. The objective of every layer is scikit-learn's ``LogisticRegression`` objective
divided by ``C * N`` (see :mod:`probing.linear`)::

    mean_i CE(x_i W + b, y_i) + l2 / 2 * ||W||^2,     l2 = 1 / (C * N)

The gradient is written out, ``X^T (P - Y) / N + l2 * W`` and ``sum_i (P - Y)_i / N``, instead
of going through autograd: it halves the time of an evaluation, which is what the
full-batch solver spends its time on.
"""

from __future__ import annotations

import torch


@torch.no_grad()
def objective(Xs: torch.Tensor, y: torch.Tensor, W: torch.Tensor, b: torch.Tensor, l2: float, k: int,
              grad: bool = True) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Per-layer objectives ``(L,)`` = mean cross-entropy + ``l2 / 2 * ||W||^2``, and (when
    ``grad``) the gradients with respect to ``W`` ``(L, D, k)`` and ``b`` ``(L, 1, k)``."""
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


def max_abs_gradient(gW: torch.Tensor, gb: torch.Tensor) -> torch.Tensor:
    """Largest absolute gradient entry of each layer ``(L,)``: the quantity ``tol`` bounds."""
    return torch.maximum(gW.abs().amax((1, 2)), gb.abs().amax((1, 2)))


def adam(Xs, y, W, b, l2, k, epochs, lr, batch_size, gen) -> int:
    """Minibatch Adam on the same objective (L2 as a loss term, not decoupled decay), in the
    minibatch order drawn from the torch generator ``gen``; returns the epochs run."""
    n = Xs.shape[1]
    opt = torch.optim.Adam([W, b], lr=lr)
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen).to(Xs.device)
        for s in range(0, n, batch_size):
            idx = perm[s : s + batch_size]
            _, W.grad, b.grad = objective(Xs[:, idx], y[idx], W, b, l2, k)
            opt.step()
    W.grad = b.grad = None
    return epochs


def lbfgs(Xs, y, W, b, l2, k, max_iter, tol) -> tuple[int, str]:
    """Full-batch L-BFGS (strong Wolfe line search) on the sum of the layer objectives.

    Stops when the largest gradient entry is below ``tol`` (scipy/scikit-learn's rule), after
    ``max_iter`` iterations or ``1.25 * max_iter`` evaluations, or when a step no longer
    changes the loss (float32 precision). Returns the iterations run and why it stopped:
    ``"max_iter"``, ``"max_eval"`` or ``"other"`` (``tol`` reached, or a stall: the caller
    tells them apart from the final gradient)."""
    max_eval = max_iter * 5 // 4  # torch's default, stated
    opt = torch.optim.LBFGS([W, b], lr=1.0, max_iter=max_iter, max_eval=max_eval, history_size=20,
                            tolerance_grad=tol, tolerance_change=1e-10, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        loss, W.grad, b.grad = objective(Xs, y, W, b, l2, k)
        return loss.sum()

    opt.step(closure)
    W.grad = b.grad = None
    state = opt.state[opt._params[0]]
    n_iter = int(state.get("n_iter", 0))
    why = "max_iter" if n_iter >= max_iter else "max_eval" if state.get("func_evals", 0) >= max_eval else "other"
    return n_iter, why
