"""Helpers of the midalign tests: tiny causal LMs with room for a prompt, saved as folders."""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path

import torch

from core import FIXTURES

EN = FIXTURES / "en_demo-ud-test.conllu"
DE = FIXTURES / "de_demo-ud-test.conllu"
FR = FIXTURES / "fr_demo-ud-test.conllu"


@cache
def _cached(family: str, layers: int):
    from core.tiny import tiny_model

    return tiny_model(family, task="causal-lm", max_positions=512, layers=layers)


def tiny_lm(family: str = "llama", layers: int = 4):
    """A fresh copy of a tiny random causal LM (context 512, ``layers`` blocks) and its tokenizer."""
    model, tok = _cached(family, layers)
    return copy.deepcopy(model), tok


def saved_lm(root: Path, family: str = "llama", layers: int = 4) -> str:
    """The tiny causal LM saved as a HF folder under ``root`` (what a --model path names)."""
    path = Path(root) / f"{family}-{layers}"
    if not (path / "config.json").is_file():
        model, tok = tiny_lm(family, layers)
        model.save_pretrained(path)
        tok.save_pretrained(path)
    return str(path)


def lora_delta(model, module_name: str, adapter: str) -> torch.Tensor:
    """PEFT's own delta weight (scaling included) of ``adapter`` on one LoRA module."""
    mod = dict(model.get_base_model().named_modules())[module_name]
    return mod.get_delta_weight(adapter).detach().clone()
