"""Adam that updates only the embedding rows that have ever received a gradient.

Why: a dense Adam step over mBERT's 119,547 x 768 word-embedding matrix (92M numbers,
~70% of DistilmBERT's parameters) costs more than the step over all transformer blocks,
yet a realignment batch touches a few thousand rows.

Why it is EXACT (bit-identical to ``torch.optim.Adam``, tested): a row whose gradient has
always been zero has ``exp_avg = exp_avg_sq = 0``, so dense Adam moves it by
``-lr * 0 / (0 + eps) = 0``: it is unchanged. Once a row has received a non-zero gradient
its moments are non-zero and dense Adam keeps moving it every step (momentum), so such a
row stays in the update set for good. The update itself is torch's own functional
``adam`` applied to the gathered rows, with the shared step counter (bias corrections use
the global step exactly as in dense Adam). Requires ``weight_decay=0``, no amsgrad, no
maximize (otherwise untouched rows would move too: refused). The touched set is found
from the gradient itself (``grad != 0`` on any column), not from token ids.
"""

from __future__ import annotations

import torch
from torch.optim.adam import adam


class TouchedRowsAdam(torch.optim.Adam):
    """``torch.optim.Adam`` where param groups with ``row_sparse=True`` (2-D embedding
    matrices) update only their touched rows (see module doc). Other groups: plain Adam."""

    def step(self, closure=None):
        groups = self.param_groups
        dense = [g for g in groups if not g.get("row_sparse", False)]
        try:
            self.param_groups = dense  # torch's Adam runs the dense groups unchanged
            loss = super().step(closure)
        finally:
            self.param_groups = groups
        with torch.no_grad():
            for group in groups:
                if group.get("row_sparse", False):
                    self._row_step(group)
        return loss

    def touched_rows(self, p: torch.Tensor) -> int:
        """Number of rows of ``p`` in the update set so far."""
        st = self.state.get(p)
        return int(st["touched"].bool().sum()) if st else 0

    def touch(self, p: torch.Tensor, rows: torch.Tensor) -> None:
        """Add ``rows`` to the update set of ``p`` ahead of time. Changes no result (an
        untouched row's Adam update is exactly zero); benchmarks use it to time the
        steady state of a long run, when every row the data uses has been touched."""
        self._init_row_state(p)
        self.state[p]["touched"] = self.state[p]["touched"].bool().index_fill(0, rows.to(p.device), True)

    def _init_row_state(self, p: torch.Tensor) -> None:
        st = self.state[p]
        if not st:  # the same initial state as torch's Adam, plus the touched mask
            from torch.optim.optimizer import _get_scalar_dtype

            st["step"] = torch.tensor(0.0, dtype=_get_scalar_dtype())
            st["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            st["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            st["touched"] = torch.zeros(p.shape[0], dtype=torch.bool, device=p.device)

    def _row_step(self, group: dict) -> None:
        if group["weight_decay"] != 0 or group["amsgrad"] or group["maximize"]:
            raise ValueError("TouchedRowsAdam row groups need weight_decay=0, amsgrad=False, maximize=False "
                             "(otherwise untouched rows move and the update is no longer exact)")
        beta1, beta2 = group["betas"]
        for p in group["params"]:
            if p.grad is None:
                continue
            if p.dim() != 2:
                raise ValueError(f"row_sparse parameters must be 2-D matrices, not {tuple(p.shape)}")
            self._init_row_state(p)
            st = self.state[p]
            touched = st["touched"].bool()  # load_state_dict casts state to the param dtype
            touched |= p.grad.ne(0).any(dim=1)
            st["touched"] = touched
            idx = touched.nonzero().squeeze(1)
            rows = [t.index_select(0, idx) for t in (p, p.grad, st["exp_avg"], st["exp_avg_sq"])]
            adam([rows[0]], [rows[1]], [rows[2]], [rows[3]], [], [st["step"]],
                 foreach=group["foreach"], capturable=group["capturable"], differentiable=False,
                 fused=group["fused"], has_complex=False, amsgrad=False, beta1=beta1, beta2=beta2,
                 lr=group["lr"], weight_decay=0.0, eps=group["eps"], maximize=False)
            p.index_copy_(0, idx, rows[0])
            st["exp_avg"].index_copy_(0, idx, rows[2])
            st["exp_avg_sq"].index_copy_(0, idx, rows[3])


def build_adam(named_params, lr: float, betas, eps: float, embedding_update: str = "dense",
               embedding: torch.Tensor | None = None) -> torch.optim.Adam:
    """Adam over ``named_params``; with ``embedding_update="touched"`` the ``embedding``
    matrix (if trainable) gets the exact touched-rows update."""
    params = [p for _, p in named_params]
    if embedding_update == "dense" or embedding is None or not any(p is embedding for p in params):
        return torch.optim.Adam(params, lr=lr, betas=tuple(betas), eps=eps)
    if embedding_update != "touched":
        raise ValueError(f"embedding_update={embedding_update!r}: expected dense or touched")
    rest = [p for p in params if p is not embedding]
    groups = [{"params": rest}, {"params": [embedding], "row_sparse": True}]
    return TouchedRowsAdam(groups, lr=lr, betas=tuple(betas), eps=eps)
