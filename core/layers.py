"""THE definition of "layer l" for every family in the architecture table.

Layer 0 is the embedding output, i.e. the input of block 1; layer i (1..L) is the raw
output of block i, for encoders and decoders alike. For decoders this differs from the
last entry of HF's ``hidden_states``, which has the final norm (``ln_f`` / ``norm``)
applied: here layer L is block L's own output, before that norm, exactly what a forward
hook on block L sees (and what attribution, freezing and middle-layer alignment address).
For encoders (BERT, XLM-R, DistilBERT: post-LN blocks, no final norm) both coincide.

:func:`layer_states` reads the layers with forward hooks on the blocks, so it needs no
``output_hidden_states`` and can stop the forward pass after the highest requested block:
asking for layers 0..K of an L-block model runs only blocks 1..K (the compute the upper
blocks would cost is never spent; middle-layer alignment relies on this).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .arch import blocks, num_layers, parse_layers


class _StopForward(Exception):
    """Raised by the hook of the highest requested block to skip the blocks above it."""


def _stop(*_args, **_kwargs):
    raise _StopForward


def _first_tensor(x):
    return x[0] if isinstance(x, tuple | list) else x


def layer_states(model: nn.Module, layers: Sequence[int] | str | int = "all", *,
                 stop_early: bool = True, **inputs) -> dict[int, torch.Tensor]:
    """States of ``layers`` (0 = embeddings, i = raw output of block i) for one forward pass.

    Args:
        model: any model of the architecture table (task heads and PEFT wrappers allowed).
        layers: a layer selection understood by :func:`core.arch.parse_layers`.
        stop_early: stop the forward pass after block ``max(layers)`` (the model's output,
            logits included, is then not computed). With ``False`` the whole model runs.
        **inputs: the model's keyword inputs (``input_ids``, ``attention_mask``, ...).

    Returns:
        ``{layer: (B, T, D) tensor}``; differentiable when grad is enabled.

    Raises:
        ValueError: a layer outside 0..L.
    """
    blk = blocks(model)
    want = parse_layers(layers, len(blk))
    top = max(want)
    got: dict[int, torch.Tensor] = {}
    handles = []

    def pre_hook(_mod, args, kwargs):
        hs = args[0] if args else kwargs.get("hidden_states")
        got[0] = hs

    def make_hook(i: int):
        def hook(_mod, _args, output):
            if i in want:
                got[i] = _first_tensor(output)
            if stop_early and i == top and top < len(blk):
                raise _StopForward
        return hook

    try:
        if 0 in want:
            handles.append(blk[0].register_forward_pre_hook(pre_hook, with_kwargs=True))
        if stop_early and top == 0:  # registered after pre_hook, so layer 0 is kept first
            handles.append(blk[0].register_forward_pre_hook(_stop, with_kwargs=True))
        for i, b in enumerate(blk, 1):
            if i in want or (stop_early and i == top):
                handles.append(b.register_forward_hook(make_hook(i)))
        try:
            model(**inputs)
        except _StopForward:
            pass
    finally:
        for h in handles:
            h.remove()
    missing = [lay for lay in want if lay not in got]
    if missing:
        raise RuntimeError(f"layers {missing} were not reached in the forward pass of "
                           f"{type(model).__name__}")
    return {lay: got[lay] for lay in want}


def stacked_layer_states(model: nn.Module, layers: Sequence[int] | str | int = "all", *,
                         stop_early: bool = True, **inputs) -> torch.Tensor:
    """:func:`layer_states` as one ``(len(layers), B, T, D)`` tensor, layers ascending."""
    states = layer_states(model, layers, stop_early=stop_early, **inputs)
    return torch.stack([states[k] for k in sorted(states)])


def last_layer(model: nn.Module) -> int:
    """L, the index of the last layer (the raw output of the last block)."""
    return num_layers(model)
