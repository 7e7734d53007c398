"""alignfreeze: realign multilingual models with freezing, probe them layer by layer and
measure what realignment did to every layer.

The top floor: CLI (``alignfreeze``), pipelines and this facade, ``import alignfreeze as af``::

    af.run_demo(out="runs/demo")
    af.run_experiment(af.load_experiment("examples/demo_experiment.yaml"))

Names are imported on first use, so ``import alignfreeze`` stays cheap.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_FACADE = {
    "run_demo": "alignfreeze.pipeline",
    "load_experiment": "alignfreeze.experiment",
    "run_experiment": "alignfreeze.experiment",
    "main": "alignfreeze.cli",
}
__all__ = ["__version__", *_FACADE]


def __getattr__(name: str):
    if name in _FACADE:
        return getattr(importlib.import_module(_FACADE[name]), name)
    raise AttributeError(f"module 'alignfreeze' has no attribute {name!r}")
