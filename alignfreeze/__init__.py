"""alignfreeze: realign multilingual models with freezing, probe them layer by layer and
measure what realignment did to every layer.

The top floor: the CLI (``alignfreeze``), the pipelines and this facade for notebooks::

    import alignfreeze as af
    df = af.drift(base="e5-small", models={"full": "runs/x/full"}, treebanks=["fr_pud-ud-test.conllu"])
    af.plot("drift", df)

Verbs (each returns a tidy DataFrame, one row per measurement, with the columns of the
matching command's CSV; see docs/python-api.md):

- analysis: :func:`features`, :func:`drift`, :func:`cka`, :func:`align_eval`, :func:`probe`;
- decoders: :func:`layer_scan`, :func:`choose_layer` (middle-layer alignment);
- realignment: :func:`word_pairs`, :func:`realign` (:data:`STRATEGIES`: the protocol's arms);
- results: :func:`read_table`, :func:`load_tables`, :func:`load_manifests`, :func:`checkpoints`;
- figures: :func:`plot` (a matplotlib Figure, or one panel on a given Axes);
- models and data: :func:`load_model`, :func:`tiny_model`, :func:`treebanks`, :func:`dictionaries`;
- pipelines: :func:`run_demo`, :func:`load_experiment`, :func:`run_experiment`, :func:`main` (the CLI).

Names are imported on first use, so ``import alignfreeze`` stays cheap (no torch until a
verb runs).
"""

import importlib as _importlib

__version__ = "0.1.0"

# name -> module that defines it (imported on first use)
_FACADE = {
    "features": "alignfreeze.api",
    "Features": "alignfreeze.api",
    "drift": "alignfreeze.api",
    "cka": "alignfreeze.api",
    "align_eval": "alignfreeze.api",
    "probe": "alignfreeze.api",
    "layer_scan": "alignfreeze.api_decoders",
    "choose_layer": "alignfreeze.api_decoders",
    "word_pairs": "alignfreeze.api_realign",
    "realign": "alignfreeze.api_realign",
    "STRATEGIES": "alignfreeze.api_realign",
    "read_table": "alignfreeze.api_results",
    "load_tables": "alignfreeze.api_results",
    "load_manifests": "alignfreeze.api_results",
    "checkpoints": "alignfreeze.api_results",
    "plot": "alignfreeze.api_plots",
    "load_model": "alignfreeze.api_models",
    "tiny_model": "alignfreeze.api_models",
    "treebanks": "alignfreeze.api_models",
    "dictionaries": "alignfreeze.api_models",
    "DEMO_LANGS": "alignfreeze.api_models",
    "run_demo": "alignfreeze.pipeline",
    "load_experiment": "alignfreeze.experiment",
    "run_experiment": "alignfreeze.experiment",
    "main": "alignfreeze.cli",
}
__all__ = ["__version__", *_FACADE]


def __getattr__(name: str):
    if name in _FACADE:
        value = getattr(_importlib.import_module(_FACADE[name]), name)
        globals()[name] = value  # the next access is a plain attribute
        return value
    raise AttributeError(f"module 'alignfreeze' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The facade's names (what ``dir(af)`` and tab completion show)."""
    return sorted(__all__)
