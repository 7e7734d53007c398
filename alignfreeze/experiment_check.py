"""``alignfreeze experiment --dry-run``: everything the run would reject, rejected without
running anything.

:func:`alignfreeze.experiment.load_experiment` checks the YAML's keys and that its files
exist; a run then also reads every file and resolves every cell's configs and freeze specs
on the model. :func:`check_experiment` does the latter for every cell too, on a model built
on the ``meta`` device from its config (no weights are read):

- every treebank (source, targets), parallel file, dictionary and given pair file is read
  by the same reader the run uses;
- every model resolves (local folder, prepared name, hub or HF cache) and its family is in
  the architecture table;
- every cell's :class:`~realign.config.RealignConfig` and
  :class:`~realign.finetune.FinetuneConfig` validate, its freeze (or ``during``) spec
  resolves on the model, and the frozen layers leave something below the realigned layers
  to train (the check of :func:`realign.train.realign`);
- the experiment's output folder can be written.

Errors are ``ExperimentConfigError`` naming the YAML, the cell and the problem.
"""

from __future__ import annotations

import functools

from alignfreeze.experiment import Cell, Experiment, ExperimentConfigError


def _read_data(exp: Experiment) -> None:
    from core.inputs import select_pairs, select_parallel, select_treebanks
    from realign.aligners import read_dictionary

    # read (and validate) every sentence, and apply every selection, as the run does
    select_treebanks([*exp.source, *exp.targets])
    for p in exp.parallel:
        if not p["src"].startswith("hf:"):  # a hub dataset is read when the run needs it
            select_parallel(p["src"], p.get("tgt"))
        if p.get("dictionary"):
            read_dictionary(p["dictionary"])
    for a in exp.aligners:
        if a.pairs:
            select_pairs(list(a.pairs))


@functools.cache
def _meta_model(path: str):
    """The model of ``path`` on the meta device (shapes only, no weights read)."""
    import torch
    from transformers import AutoConfig, AutoModel

    from core.models import check_family, is_offline, resolve_model_path

    resolved = resolve_model_path(path)
    config = AutoConfig.from_pretrained(resolved, local_files_only=is_offline() or resolved != path)
    check_family(config)
    with torch.device("meta"):
        return AutoModel.from_config(config)


def _check_cell(exp: Experiment, cell: Cell) -> None:
    from core.arch import num_layers, parse_layers
    from realign.config import RealignConfig
    from realign.finetune import FinetuneConfig
    from realign.freeze import resolve_freeze

    model = _meta_model(cell.model.path)
    L = num_layers(model)
    placeholder = ("<pairs of the cell>",)
    cdir = exp.out / "cells" / cell.id
    if cell.strategy.realigns:
        rcfg = RealignConfig(model=cell.model.path, pairs=placeholder, out=str(cdir / "realigned"),
                             freeze=cell.strategy.freeze, seed=cell.seed, **exp.realign).validate()
        plan = resolve_freeze(model, rcfg.freeze)
        layers = parse_layers(rcfg.layers, L)
        # the same rule as realign.train.realign: something at or below the realigned layers must learn
        trainable = sorted(set(range(L + 1)) - set(plan.frozen_layers))
        if not trainable or min(trainable) > max(layers):
            raise ValueError(f"freeze spec {rcfg.freeze!r} freezes layers {list(plan.frozen_layers)}: nothing at "
                             f"or below the realigned layer(s) {list(layers)} can learn; realign a higher layer "
                             "or freeze less")
    during = {}
    if cell.strategy.during is not None:
        during = {"during_realign": placeholder, "during_freeze": cell.strategy.during}
    sections = [exp.finetune] + ([exp.xnli["finetune"]] if exp.xnli is not None else [])
    for k, section in enumerate(sections):
        extra = {"task": "xnli"} if k else {}
        train = tuple(exp.xnli["train"]) if k else tuple(exp.source)
        fcfg = FinetuneConfig(model=cell.model.path, train=train, out=str(cdir / "finetuned"), seed=cell.seed,
                              **{**section, **during, **extra}).validate()
        if fcfg.during_realign:
            resolve_freeze(model, fcfg.during_freeze)
            parse_layers(fcfg.during_layers, L)


def check_experiment(exp: Experiment) -> None:
    """Raise ``ExperimentConfigError`` for the first thing the run of ``exp`` would reject."""
    from alignfreeze.preflight import InputError, check_writable

    try:
        check_writable(exp.out, inside=True)
    except InputError as e:
        raise ExperimentConfigError(f"{exp.path}: out: {e}") from None
    try:
        _read_data(exp)
    except (ValueError, OSError) as e:
        raise ExperimentConfigError(f"{exp.path}: {e}") from None
    bad: dict[str, str] = {}
    for cell in exp.cells():
        try:
            _check_cell(exp, cell)
        except (ValueError, OSError, ImportError) as e:
            bad[cell.id] = str(e)
    if bad:
        (first, msg), *others = bad.items()
        more = f" (and {len(others)} more cell(s) fail: {', '.join(c for c, _ in others)})" if others else ""
        raise ExperimentConfigError(f"{exp.path}: cell {first}: {msg}{more}")
