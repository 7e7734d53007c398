"""Loading encoder and decoder models and their fast tokenizers.

``name`` may be a prepared model name (see :mod:`core.prepared`, e.g. ``e5-small``), a
local folder, or a hub name (``xlm-roberta-base``) that resolves through the HF cache.
With ``offline=True`` (or ``HF_HUB_OFFLINE=1``) nothing is downloaded.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForTokenClassification,
    AutoTokenizer,
    PreTrainedTokenizerBase,
)

from . import prepared
from .arch import ARCHITECTURES, UnsupportedArchitectureError

TASKS = ("base", "token-classification", "causal-lm")


def is_offline(offline: bool | None = None) -> bool:
    if offline is not None:
        return offline
    return os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")


def resolve_model_path(name: str | Path, *, offline: bool | None = None) -> str:
    """A prepared name becomes its (prepared-on-demand) folder; anything else is unchanged."""
    name = str(name)
    if name in prepared.PREPARED_MODELS:
        return str(prepared.ensure_prepared(name))
    return name


def _check_family(config) -> None:
    if config.model_type not in ARCHITECTURES:
        raise UnsupportedArchitectureError(
            f"model_type {config.model_type!r} is not in the architecture table "
            f"(supported: {', '.join(sorted(ARCHITECTURES))})"
        )


def load_tokenizer(name: str | Path, *, offline: bool | None = None) -> PreTrainedTokenizerBase:
    """Load a *fast* tokenizer (character offsets map pieces to words: :mod:`core.encoding`)."""
    path = resolve_model_path(name, offline=offline)
    tok = AutoTokenizer.from_pretrained(path, local_files_only=is_offline(offline))
    if not tok.is_fast:
        raise ValueError(f"{name}: the tokenizer is not a fast tokenizer; character offsets (return_offsets_mapping) are required")
    return tok


def load_model(
    name: str | Path,
    *,
    task: str = "base",
    offline: bool | None = None,
    dtype: torch.dtype | None = None,
    **kwargs,
) -> torch.nn.Module:
    """Load a model for ``task`` in ``TASKS``; unsupported families are an error.

    A PEFT adapter folder (``adapter_config.json``) loads as its base + the adapter, merged
    (:mod:`core.adapters`; the base's weight hash is checked against the adapter's manifest).
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}: expected one of {', '.join(TASKS)}")
    path = resolve_model_path(name, offline=offline)
    from .adapters import is_adapter_dir, load_adapter_model

    if is_adapter_dir(path):  # base + PEFT adapter (checked against its manifest), merged
        return load_adapter_model(path, task=task, offline=offline, dtype=dtype, **kwargs)
    local = is_offline(offline)
    config = AutoConfig.from_pretrained(path, local_files_only=local)
    _check_family(config)
    cls = {
        "base": AutoModel,
        "token-classification": AutoModelForTokenClassification,
        "causal-lm": AutoModelForCausalLM,
    }[task]
    if task == "base" and config.model_type == "bert":
        kwargs.setdefault("add_pooling_layer", False)
    model = cls.from_pretrained(path, local_files_only=local, dtype=dtype or torch.float32, **kwargs)
    model.eval()
    return model


def load(name: str | Path, *, offline: bool | None = None, **kwargs):
    """``(model, tokenizer)`` for ``name``."""
    return load_model(name, offline=offline, **kwargs), load_tokenizer(name, offline=offline)
