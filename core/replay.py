"""Skip the blocks whose outputs are already known.

When a model changes only from block ``b`` upward (its layers ``0..b-1`` untouched, e.g.
a realigned model with block ``b`` put back to its pretrained weights), blocks ``1..b-1``
give exactly the outputs they gave before, batch for batch. :func:`record_blocks` keeps
every block's output during the forward passes of the unchanged model;
:func:`replay_blocks` then makes blocks ``1..k`` return those outputs instead of
computing them, so a pass over the changed model costs only its blocks ``k+1..L``.

How: the block modules stay in place (hooks, HF's output capture of ``hidden_states`` and
:mod:`core.layers` keep working); only their ``forward`` is replaced for the duration of
the ``with`` block. A batch is recognised by its ``input_ids`` and ``attention_mask``
(a pre-hook on the bare transformer). Guards: a batch that was not recorded is a
``RuntimeError``, and so is a batch whose input to block 1 (the embedding output)
differs from the recorded one, i.e. a model whose layer 0 changed.

Memory: one output per block and batch (``L x tokens x D`` floats), so record a chunk of
sentences at a time. Decoders are replayed without their key/value cache entries for the
replayed blocks: pass ``use_cache=False`` (feature extraction does not use them).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator

import torch
from torch import nn

from .arch import base_model, blocks


class ReplayError(RuntimeError):
    """A replayed pass met a batch, or an input, that the recording does not hold."""


class BlockRecord:
    """Outputs of blocks ``1..depth`` per batch (keyed by the batch's token ids and mask)."""

    def __init__(self, depth: int):
        self.depth = depth
        self.outputs: dict[bytes, list] = {}
        self.inputs: dict[bytes, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self.outputs)


def _key(args, kwargs) -> bytes:
    ids = kwargs.get("input_ids", args[0] if args else None)
    if ids is None:
        raise ReplayError("replay: the model was called without input_ids; batches cannot be recognised")
    mask = kwargs.get("attention_mask", args[1] if len(args) > 1 else None)
    h = hashlib.blake2b(digest_size=16)
    for t in (ids, mask):
        if t is None:
            h.update(b"-")
            continue
        t = t.detach().to("cpu").contiguous()
        h.update(str(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes())
    return h.digest()


@contextlib.contextmanager
def _batch_keys(model: nn.Module) -> Iterator[dict]:
    current: dict = {}

    def pre(_mod, args, kwargs):
        current["key"] = _key(args, kwargs)

    handle = base_model(model).register_forward_pre_hook(pre, with_kwargs=True)
    try:
        yield current
    finally:
        handle.remove()


@contextlib.contextmanager
def record_blocks(model: nn.Module, depth: int | None = None) -> Iterator[BlockRecord]:
    """Record the outputs of blocks ``1..depth`` (default all) of every forward pass made
    inside the block, and the input of block 1 (to check replays against)."""
    blk = blocks(model)
    depth = len(blk) if depth is None else depth
    rec = BlockRecord(depth)
    handles = []
    with _batch_keys(model) as current:
        def pre(_mod, args, kwargs):
            rec.inputs[current["key"]] = (args[0] if args else kwargs["hidden_states"]).detach()

        def make(i: int):
            def hook(_mod, _args, output):
                rec.outputs.setdefault(current["key"], [None] * depth)[i] = output
            return hook

        try:
            if depth:
                handles.append(blk[0].register_forward_pre_hook(pre, with_kwargs=True))
            for i in range(depth):
                handles.append(blk[i].register_forward_hook(make(i)))
            yield rec
        finally:
            for h in handles:
                h.remove()


@contextlib.contextmanager
def replay_blocks(model: nn.Module, record: BlockRecord, upto: int) -> Iterator[None]:
    """Inside the block, blocks ``1..upto`` of ``model`` return their recorded outputs.

    ``upto = 0`` replays nothing. Raises ``ValueError`` when ``upto`` exceeds the
    recording's depth; :class:`ReplayError` (at call time) for an unrecorded batch or a
    changed input to block 1.
    """
    if upto > record.depth:
        raise ValueError(f"replay up to block {upto}: only blocks 1..{record.depth} were recorded")
    if upto <= 0:
        yield
        return
    blk = blocks(model)
    with _batch_keys(model) as current:
        def make(i: int):
            def forward(*args, **kwargs):
                key = current.get("key")
                outs = record.outputs.get(key)
                if outs is None or outs[i] is None:
                    raise ReplayError(f"replay: block {i + 1} has no recorded output for this batch (the batch was "
                                      "not part of the recorded passes)")
                if i == 0:
                    h = args[0] if args else kwargs["hidden_states"]
                    if not torch.equal(h, record.inputs[key]):
                        raise ReplayError("replay: the input of block 1 differs from the recorded pass: the layers "
                                          "below the replayed blocks changed, so their outputs cannot be reused")
                return outs[i]
            return forward

        saved = []
        try:
            for i in range(upto):
                saved.append((blk[i], blk[i].__dict__.get("forward")))
                blk[i].forward = make(i)
            yield
        finally:
            for mod, old in saved:
                if old is None:
                    del mod.forward
                else:
                    mod.forward = old
