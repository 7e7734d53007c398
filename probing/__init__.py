"""probing: per-layer linear probes on word and sentence representations (floor 2).

- :class:`probing.linear.MultiLayerLinearProbe`: one logistic-regression probe per layer,
  all layers fitted in one batched torch pass (``backend="sklearn"`` for parity checks);
  :class:`probing.linear.LinearProbe`: the same estimator on one layer's ``(N, D)``
  features, the face scikit-learn's estimator checks run on;
- :mod:`probing.control`: Hewitt & Liang control tasks, selectivity, mean ± std over seeds;
- :mod:`probing.semantic`: translation matching / pair probe on parallel data, XNLI;
- :mod:`probing.run`: :class:`~probing.config.ProbeConfig` -> :func:`~probing.run.run_probe` ->
  the tidy table (``alignfreeze probe``). See docs/probing.md.
"""

import importlib

# imported on first use: ``probing.config`` (the CLI's ProbeConfig) must not pull in torch
_LAZY = {"ControlTask": ".control", "selectivity": ".control", "summarize": ".control",
         "LinearProbe": ".linear", "MultiLayerLinearProbe": ".linear"}
__all__ = ["ControlTask", "LinearProbe", "MultiLayerLinearProbe", "selectivity", "summarize"]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'probing' has no attribute {name!r}")
