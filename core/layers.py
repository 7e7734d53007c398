"""THE definition of "layer l" for every family in the architecture table.

Layer 0 is the embedding output, i.e. the input of block 1; layer i (1..L) is the raw
output of block i, for encoders and decoders alike. For decoders this differs from the
last entry of HF's ``hidden_states``, which has the final norm (``ln_f`` / ``norm``)
applied: here layer L is block L's own output, before that norm, exactly what a forward
hook on block L sees (and what attribution, freezing and middle-layer alignment address).
For encoders (BERT, XLM-R, DistilBERT: post-LN blocks, no final norm) both coincide.

:func:`layer_taps` is the one place where that definition is turned into code: each layer's
state is routed through an identity module (a :class:`LayerTap`). :func:`layer_states`
records the taps; attribution attaches captum to the same taps. So features, drift, CKA,
probes, realignment losses and attribution provably read the same tensor.

:func:`layer_states` reads the layers with forward hooks, so it needs no
``output_hidden_states`` and can stop the forward pass after the highest requested block:
asking for layers 0..K of an L-block model runs only blocks 1..K (the compute the upper
blocks would cost is never spent; middle-layer alignment relies on this).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from .arch import blocks, num_layers, parse_layers

LAYER_DEFINITION = ("0 = input of block 1 (embeddings); i = raw output of block i "
                    "(decoders: before the final norm)")


class _StopForward(Exception):
    """Raised by the tap of the highest requested layer to skip the blocks above it."""


def _first_tensor(x):
    return x[0] if isinstance(x, tuple | list) else x


class LayerTap(nn.Identity):
    """The point where layer ``layer`` passes: an identity module whose output IS the
    layer's state. :func:`layer_states` records it; attribution libraries (captum's
    ``LayerIntegratedGradients``) attach to it, so both read exactly the same tensor."""

    def __init__(self, layer: int):
        super().__init__()
        self.layer = layer

    def extra_repr(self) -> str:
        return f"layer={self.layer}"


@contextmanager
def layer_taps(model: nn.Module, layers: Sequence[int] | str | int = "all") -> Iterator[dict[int, LayerTap]]:
    """Route each selected layer's state through a :class:`LayerTap` while the context is open.

    Layer 0 is the input of block 1 (a forward pre-hook passes it through tap 0); layer i is
    the first output of block i (a forward hook passes it through tap i). A hook on a tap
    that changes its output changes what the model computes from there on (that is how
    integrated gradients patch a layer). Hooks are removed on exit, errors included.

    Yields ``{layer: tap}``. Raises ``ValueError`` for a layer outside 0..L.
    """
    blk = blocks(model)
    want = parse_layers(layers, len(blk))
    taps = {lay: LayerTap(lay) for lay in want}

    def pre_hook(_mod, args, kwargs):
        if args:
            x = args[0]
            y = taps[0](x)
            return None if y is x else ((y, *args[1:]), kwargs)
        x = kwargs.get("hidden_states")
        y = taps[0](x)
        return None if y is x else (args, {**kwargs, "hidden_states": y})

    def make_hook(i: int):
        def hook(_mod, _args, output):
            x = _first_tensor(output)
            y = taps[i](x)
            if y is x:
                return None
            return (y, *output[1:]) if isinstance(output, tuple | list) else y
        return hook

    handles = []
    try:
        if 0 in want:
            handles.append(blk[0].register_forward_pre_hook(pre_hook, with_kwargs=True))
        for i, b in enumerate(blk, 1):
            if i in want:
                handles.append(b.register_forward_hook(make_hook(i)))
        yield taps
    finally:
        for h in handles:
            h.remove()


def layer_states(model: nn.Module, layers: Sequence[int] | str | int = "all", *,
                 stop_early: bool = True, call=None, **inputs) -> dict[int, torch.Tensor]:
    """States of ``layers`` (0 = embeddings, i = raw output of block i) for one forward pass.

    Args:
        model: any model of the architecture table (task heads and PEFT wrappers allowed).
        layers: a layer selection understood by :func:`core.arch.parse_layers`.
        stop_early: stop the forward pass after the highest requested layer (the model's
            output, logits included, is then not computed). With ``False`` the whole model runs.
        call: what runs the forward pass (default ``model``): e.g. a DDP wrapper of
            ``model``, so that gradients synchronise (use ``stop_early=False`` with one).
        **inputs: the model's keyword inputs (``input_ids``, ``attention_mask``, ...).

    Returns:
        ``{layer: (B, T, D) tensor}``; differentiable when grad is enabled.

    Raises:
        ValueError: a layer outside 0..L.
    """
    n_blocks = len(blocks(model))
    want = parse_layers(layers, n_blocks)
    top = max(want)
    got: dict[int, torch.Tensor] = {}

    def make_record(i: int):
        def record(_mod, _args, output):
            got[i] = output
            if stop_early and i == top and top < n_blocks:
                raise _StopForward
        return record

    with layer_taps(model, want) as taps:
        handles = [tap.register_forward_hook(make_record(i)) for i, tap in taps.items()]
        try:
            (call or model)(**inputs)
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
