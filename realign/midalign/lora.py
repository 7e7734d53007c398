"""PEFT LoRA on a decoder, with targets from the architecture table and a freeze spec.

:func:`realign.freeze.lora_target_modules` turns the projection kinds (q, k, v, o, gate,
up, down) and the freeze spec into FULL module names of the blocks that are not frozen,
so PEFT matches exactly those modules and nothing else. Everything that is not a LoRA
parameter stays frozen (``requires_grad=False``): the base weights never change, and the
saved adapter is all that training produced.
"""

from __future__ import annotations

from core.adapters import peft_quiet
from core.arch import arch_of

from ..freeze import FreezePlan, lora_target_modules


def add_lora(model, *, r: int = 8, alpha: float = 16.0, dropout: float = 0.1, targets="paper",
             freeze: str = "none", adapter_name: str = "default"):
    """Wrap ``model`` (a causal LM of the table) in a PEFT LoRA model.

    Returns ``(peft_model, target_names, plan)``. LoRA weights are created in float32
    (PEFT's ``autocast_adapter_dtype``) whatever the base dtype.
    """
    from peft import LoraConfig, get_peft_model

    names, plan = lora_target_modules(model, targets, freeze)
    cfg = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=names, bias="none",
                     task_type="CAUSAL_LM", fan_in_fan_out=arch_of(model).family == "gpt2")  # gpt2: Conv1D
    with peft_quiet():
        peft_model = get_peft_model(model, cfg, adapter_name=adapter_name)
    return peft_model, names, plan


def lora_modules(peft_model, adapter_name: str = "default") -> list[str]:
    """Names (relative to the wrapped model) of the modules that carry ``adapter_name``."""
    from peft.tuners.lora import LoraLayer

    base = peft_model.get_base_model()
    return sorted(n for n, m in base.named_modules() if isinstance(m, LoraLayer) and adapter_name in m.lora_A)


def trainable_names(model) -> list[str]:
    return [n for n, p in model.named_parameters() if p.requires_grad]


__all__ = ["FreezePlan", "add_lora", "lora_modules", "trainable_names"]
