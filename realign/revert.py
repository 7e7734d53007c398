"""Revert realigned layers to their pretrained weights: the causal test of which layers'
changes mattered (``alignfreeze revert``; the layer-effect study builds on it).

A *revert plan* says which layers of a checkpoint carry the base model's weights again;
every other layer keeps the checkpoint's. Layers are the toolkit's (0 = embeddings,
i = block i) and specs are the freeze specs of :mod:`realign.freeze` (``front``, ``back``,
``front+emb``, ``emb,1-3``, ``none``...): ``--layers SPEC`` reverts the layers of the spec,
``--keep SPEC`` keeps the spec's layers realigned and reverts all the others.

What belongs to a layer (as for freezing, from the architecture table :mod:`core.arch`):
the parameters AND persistent buffers of the layer's modules; a decoder's final norm
(``ln_f`` / ``norm``) goes with block L. Tensors outside every layer (BERT's pooler, a
task head of a fine-tuned checkpoint) are never reverted: they stay the checkpoint's, and
the manifest lists them with whether they still equal the base's. A head tied to the
embeddings (a decoder's ``lm_head``) is the same tensor, so it follows layer 0.

Refusals (``ValueError`` subclasses, one line each):

- :class:`ArchitectureMismatchError`: another family, number of blocks, tensor name,
  shape or dtype inside a layer;
- :class:`BaseMismatchError`: the checkpoint's manifest names another base
  (``base_model.weight_hash``, or its parent's for a fine-tuned checkpoint, against
  :func:`core.manifest.base_weight_hash` of the given base), or has no manifest at all
  (``force=True`` reverts such a plain folder anyway and records the base as unchecked);
- different tokenizers (vocabulary fingerprints): row i of the embeddings would be
  another token.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import torch
from torch import nn

from core.arch import arch_of, base_model, layer_modules, num_layers
from core.manifest import MANIFEST, base_weight_hash, read_manifest, write_manifest

from .freeze import frozen_layer_numbers

MODES = ("revert", "keep")


class ArchitectureMismatchError(ValueError):
    """The checkpoint and the base are not one architecture."""


class BaseMismatchError(ValueError):
    """The checkpoint was not trained from the given base (or cannot be shown to be)."""


@dataclass(frozen=True)
class RevertPlan:
    """Which layers carry the base's weights.

    Attributes:
        mode: ``revert`` (the spec's layers are reverted) or ``keep`` (the spec's layers
            keep the checkpoint's weights, all others are reverted).
        spec: the freeze-style spec as given.
        n_layers: L, the number of blocks (layers are 0..L).
        reverted_layers: layers that carry the base's weights, sorted.
    """

    mode: str
    spec: str
    n_layers: int
    reverted_layers: tuple[int, ...]

    @property
    def kept_layers(self) -> tuple[int, ...]:
        """Layers that keep the checkpoint's weights."""
        return tuple(i for i in range(self.n_layers + 1) if i not in self.reverted_layers)

    @property
    def lowest(self) -> int | None:
        """The lowest reverted layer: every layer below it is exactly the checkpoint's."""
        return min(self.reverted_layers) if self.reverted_layers else None


def plan_revert(n_layers: int, *, layers: str | None = None, keep: str | None = None) -> RevertPlan:
    """Resolve ``layers`` (revert these) or ``keep`` (revert all but these) for ``n_layers`` blocks.

    Specs are those of :func:`realign.freeze.frozen_layer_numbers`; a bad one is a
    ``ValueError`` naming it and the valid range.
    """
    if (layers is None) == (keep is None):
        raise ValueError("give exactly one of layers (revert these) and keep (keep these realigned, revert the rest)")
    spec = layers if layers is not None else keep
    chosen = frozen_layer_numbers(str(spec), n_layers)
    if layers is not None:
        return RevertPlan("revert", str(spec), n_layers, tuple(chosen))
    rest = tuple(i for i in range(n_layers + 1) if i not in chosen)
    return RevertPlan("keep", str(spec), n_layers, rest)


def compact(layers: Sequence[int]) -> str:
    """``0,2-5,7`` for ``(0, 2, 3, 4, 5, 7)``; ``-`` for none."""
    out, run = [], []
    for i in sorted(layers):
        if run and i == run[-1] + 1:
            run.append(i)
            continue
        if run:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [i]
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(out) or "-"


# ----------------------------------------------------------------------- tensors per layer
def tensor_layers(model: nn.Module) -> dict[str, int | None]:
    """Every tensor of the bare transformer's ``state_dict`` -> its layer (None: outside every layer).

    Names are relative to :func:`core.arch.base_model` (``encoder.layer.3.output.dense.weight``),
    so a checkpoint with a task head and a bare base model share them. The decoder's final
    norm belongs to layer L, as in :func:`realign.freeze.resolve_freeze`.
    """
    bare = base_model(model)
    spec = arch_of(model)
    owner: dict[int, int] = {}
    for layer, mods in layer_modules(model).items():
        for mod in mods:
            for t in chain(mod.parameters(), mod.buffers()):
                owner[id(t)] = layer
    if spec.final_norm:
        for t in chain(bare.get_submodule(spec.final_norm).parameters(), bare.get_submodule(spec.final_norm).buffers()):
            owner[id(t)] = num_layers(model)
    return {name: owner.get(id(t)) for name, t in bare.state_dict(keep_vars=True).items()}


def _tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    return dict(base_model(model).state_dict(keep_vars=True))


def reverted_tensor_names(model: nn.Module, layers: Sequence[int]) -> list[str]:
    """Names (bare-model ``state_dict`` keys) of the tensors that make ``layers``."""
    want = set(layers)
    return [n for n, lay in tensor_layers(model).items() if lay is not None and lay in want]


def check_same_architecture(model: nn.Module, base: nn.Module, names: tuple[str, str] = ("checkpoint", "base")) -> None:
    """Raise :class:`ArchitectureMismatchError` naming the first difference between the two
    models' layers: family, number of blocks, or a tensor name, shape or dtype."""
    a, b = names
    fa, fb = arch_of(model).family, arch_of(base).family
    la, lb = num_layers(model), num_layers(base)
    if fa != fb or la != lb:
        raise ArchitectureMismatchError(f"{a} ({fa}, {la} blocks) and {b} ({fb}, {lb} blocks) are not one architecture")
    ta, tb = _tensors(model), _tensors(base)
    la_, lb_ = tensor_layers(model), tensor_layers(base)
    inside_a = {n for n, lay in la_.items() if lay is not None}
    inside_b = {n for n, lay in lb_.items() if lay is not None}
    only = sorted(inside_a ^ inside_b)
    if only:
        side = a if only[0] in inside_a else b
        raise ArchitectureMismatchError(f"{a} and {b} are not one architecture: tensor {only[0]!r} exists only in "
                                        f"{side} ({len(only)} such tensor(s))")
    for n in sorted(inside_a):
        x, y = ta[n], tb[n]
        if x.shape != y.shape or x.dtype != y.dtype:
            raise ArchitectureMismatchError(
                f"{a} and {b} are not one architecture: {n} is {tuple(x.shape)} {x.dtype} in {a} but "
                f"{tuple(y.shape)} {y.dtype} in {b}")
        if la_[n] != lb_[n]:
            raise ArchitectureMismatchError(f"{a} and {b} are not one architecture: {n} is in layer {la_[n]} of {a} "
                                            f"but layer {lb_[n]} of {b}")


def outside_tensors(model: nn.Module, base: nn.Module) -> dict[str, str]:
    """Tensors of the checkpoint outside every layer (full ``state_dict`` names: a task head,
    BERT's pooler) -> ``same as base`` | ``differs from base`` | ``not in base``. They are
    never reverted. A head tied to a layer's tensor (``lm_head`` = ``wte``) is that layer's."""
    bare = {id(t): n for n, t in _tensors(model).items()}
    layer = tensor_layers(model)
    tb = _tensors(base)
    out = {}
    for n, t in model.state_dict(keep_vars=True).items():
        bn = bare.get(id(t))
        if bn is not None and layer.get(bn) is not None:
            continue
        if bn is None or bn not in tb:
            out[n] = "not in base"
        elif t.shape == tb[bn].shape and t.dtype == tb[bn].dtype and torch.equal(t.detach().cpu(), tb[bn].detach().cpu()):
            out[n] = "same as base"
        else:
            out[n] = "differs from base"
    return out


@torch.no_grad()
def revert_(model: nn.Module, base: nn.Module, layers: Sequence[int]) -> list[str]:
    """Copy the base's tensors of ``layers`` into ``model`` in place; returns their names.

    Checks the architectures first (:func:`check_same_architecture`).
    """
    check_same_architecture(model, base)
    ta, tb = _tensors(model), _tensors(base)
    names = reverted_tensor_names(model, layers)
    for n in names:
        ta[n].copy_(tb[n])
    return names


@contextlib.contextmanager
def reverted(model: nn.Module, base: nn.Module, layers: Sequence[int]) -> Iterator[list[str]]:
    """Within the block, ``model``'s ``layers`` ARE the base's tensors (shared storage, no copy).

    The same parameter and module objects stay in place (hooks, ties and HF's output
    capture keep working); only their data points at the base's. Restored on exit, also
    on errors. Do not train or modify either model inside the block. Yields the names.
    """
    ta, tb = _tensors(model), _tensors(base)
    names = reverted_tensor_names(model, layers)
    saved: list[tuple[torch.Tensor, torch.Tensor]] = []
    try:
        for n in names:
            t = ta[n]
            if tb[n].shape != t.shape or tb[n].dtype != t.dtype or tb[n].device != t.device:
                raise ArchitectureMismatchError(f"{n}: {tuple(t.shape)} {t.dtype} {t.device} in the checkpoint but "
                                                f"{tuple(tb[n].shape)} {tb[n].dtype} {tb[n].device} in the base")
            saved.append((t, t.data))
            t.data = tb[n].data
        yield names
    finally:
        for t, data in reversed(saved):
            t.data = data


def unchanged_layers(model: nn.Module, base: nn.Module) -> tuple[int, ...]:
    """Layers whose every tensor is bit-identical to the base's (e.g. the frozen blocks)."""
    ta, tb = _tensors(model), _tensors(base)
    same: dict[int, bool] = {}
    for n, lay in tensor_layers(model).items():
        if lay is None:
            continue
        ok = n in tb and torch.equal(ta[n].detach(), tb[n].detach().to(ta[n].device))
        same[lay] = same.get(lay, True) and ok
    return tuple(sorted(lay for lay, ok in same.items() if ok))


# ------------------------------------------------------------------------------ base check
def check_base(manifest: dict | None, base_hash: str, checkpoint: str | Path, *, force: bool = False) -> str:
    """Which manifest entry shows that ``checkpoint`` was trained from the base whose
    :func:`core.manifest.base_weight_hash` is ``base_hash``.

    Accepted: ``base_model.weight_hash`` (a realigned or reverted checkpoint) or
    ``parent.base_model.weight_hash`` (a checkpoint fine-tuned from a realigned one).
    Returns ``base_model``, ``parent.base_model`` or ``unchecked (forced)``; raises
    :class:`BaseMismatchError` otherwise.
    """
    where = Path(checkpoint) / MANIFEST
    if manifest is None:
        if force:
            return "unchecked (forced)"
        raise BaseMismatchError(f"{checkpoint}: no {MANIFEST}, so nothing shows which base it was trained from; "
                                "pass --force to revert it anyway (recorded as unchecked)")
    chain_ = [("base_model", manifest.get("base_model") or {}),
              ("parent.base_model", ((manifest.get("parent") or {}).get("base_model")) or {})]
    named = [(k, v) for k, v in chain_ if v.get("weight_hash")]
    for key, entry in named:
        if entry["weight_hash"] == base_hash:
            return key
    if not named:
        if force:
            return "unchecked (forced)"
        raise BaseMismatchError(f"{where} has no base_model.weight_hash; pass --force to revert it anyway")
    seen = "; ".join(f"{k} {v.get('name')!r} {v['weight_hash'][:12]}..." for k, v in named)
    raise BaseMismatchError(f"{where}: the checkpoint was trained from another base ({seen}), not from the given "
                            f"base (weights {base_hash[:12]}...): its layers cannot be reverted to that base")


# ------------------------------------------------------------------------------- loading
def load_checkpoint(path: str | Path) -> nn.Module:
    """Load a checkpoint folder with the class it was saved as (task heads and BERT's pooler
    kept), float32, eval mode. A weight of the folder that the model does not take, or a
    weight the model needs and the folder lacks, is an error: nothing is dropped or
    initialised at random silently."""
    import transformers
    from transformers import AutoConfig

    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such checkpoint folder")
    cfg = AutoConfig.from_pretrained(path, local_files_only=True)
    arch = (getattr(cfg, "architectures", None) or ["AutoModel"])[0]
    cls = getattr(transformers, arch, None)
    if cls is None:
        raise ValueError(f"{path}/config.json: unknown architecture class {arch!r} for this transformers version")
    kwargs = {}
    if arch == "BertModel":
        kwargs["add_pooling_layer"] = any(k.startswith("pooler.") for k in _saved_keys(path))
    model, info = cls.from_pretrained(path, local_files_only=True, dtype=torch.float32, output_loading_info=True,
                                      **kwargs)
    bad = {k: v for k, v in info.items() if k in ("missing_keys", "unexpected_keys", "mismatched_keys") and v}
    if bad:
        what = "; ".join(f"{k.replace('_', ' ')}: {', '.join(map(str, sorted(v)[:3]))}" for k, v in bad.items())
        raise ValueError(f"{path}: the weights do not load exactly into {arch} ({what})")
    arch_of(model)  # unsupported families are an error here
    model.eval()
    return model


def _saved_keys(path: Path) -> list[str]:
    index = path / "model.safetensors.index.json"
    if index.is_file():
        return list(json.loads(index.read_text())["weight_map"])
    single = path / "model.safetensors"
    if not single.is_file():
        raise FileNotFoundError(f"{path}: no model.safetensors (or index) in the checkpoint folder")
    from safetensors import safe_open

    with safe_open(str(single), "pt") as fh:
        return list(fh.keys())


# ----------------------------------------------------------------------- the command
def revert_checkpoint(checkpoint: str | Path, base: str | Path, out: str | Path, *, layers: str | None = None,
                      keep: str | None = None, force: bool = False, base_model_obj: nn.Module | None = None) -> Path:
    """Write ``out``: ``checkpoint`` with the layers of ``layers`` (or all but ``keep``) put
    back to ``base``'s weights; ``save_pretrained`` + tokenizer + ``manifest.json``, atomically.

    Args:
        checkpoint: a checkpoint folder (realigned, fine-tuned, reverted).
        base: the pretrained model it was trained from (prepared name, folder or hub name),
            loaded as realignment loads it (:func:`core.models.load_model`).
        out: output folder; must not exist yet (or be empty).
        layers, keep: a freeze-style spec; exactly one.
        force: revert a checkpoint without a manifest (the base is then recorded unchecked).
        base_model_obj: the base already loaded (the layer-effect study reuses it).

    Raises :class:`ArchitectureMismatchError`, :class:`BaseMismatchError`, ``ValueError``
    (bad spec, different tokenizers, occupied ``out``), ``FileNotFoundError``.
    """
    from core.io import atomic_dir, state_dict_hash
    from core.models import load_model, load_tokenizer

    from .train import tokenizer_fingerprint

    t0 = time.perf_counter()
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"{out}: exists and is not empty; choose another --out")
    ckpt_dir = Path(checkpoint)
    manifest = read_manifest(ckpt_dir) if ckpt_dir.is_dir() else None
    model = load_checkpoint(ckpt_dir)
    plan = plan_revert(num_layers(model), layers=layers, keep=keep)  # a bad spec fails before the base loads
    base_m = base_model_obj if base_model_obj is not None else load_model(base)
    check_same_architecture(model, base_m, (str(checkpoint), str(base)))
    base_hash = base_weight_hash(base_m)
    matched = check_base(manifest, base_hash, ckpt_dir, force=force)
    if matched.startswith("unchecked"):
        print(f"warning: {checkpoint}: base not checked (--force); the output records it as unchecked", file=sys.stderr)
    tok = load_tokenizer(ckpt_dir)
    base_tok = load_tokenizer(base)
    if tokenizer_fingerprint(tok) != tokenizer_fingerprint(base_tok):
        raise ValueError(f"{checkpoint} and {base} have different tokenizers (vocabularies): embedding row i is not "
                         "the same token in both, so no layer can be reverted")
    ckpt_hash = base_weight_hash(model)
    names = revert_(model, base_m, plan.reverted_layers)
    outside = outside_tensors(model, base_m)
    differs = sorted(n for n, s in outside.items() if s != "same as base")
    if differs:
        print(f"note: {len(differs)} tensor(s) outside every layer keep the checkpoint's weights "
              f"({', '.join(differs[:3])}{', ...' if len(differs) > 3 else ''})", file=sys.stderr)
    new = {
        "kind": "revert",
        "config": {"checkpoint": str(checkpoint), "base": str(base), "layers": layers, "keep": keep, "force": force},
        "mode": plan.mode,
        "spec": plan.spec,
        "reverted_layers": list(plan.reverted_layers),
        "kept_layers": list(plan.kept_layers),
        "reverted_tensors": names,
        "outside_layers": outside,
        "base_model": {"name": str(base), "weight_hash": base_hash, "model_type": model.config.model_type},
        "checkpoint": {"path": str(checkpoint), "weight_hash": ckpt_hash, "kind": (manifest or {}).get("kind"),
                       "base_model": (manifest or {}).get("base_model"), "base_check": matched,
                       "frozen_layers": (manifest or {}).get("frozen_layers"), "seed": (manifest or {}).get("seed")},
        "weight_hash": base_weight_hash(model),
        "full_weight_hash": state_dict_hash(model),
        "pooling": (manifest or {}).get("pooling"),
        "seed": (manifest or {}).get("seed"),
        "wall_time_s": None,
    }
    for key in ("task", "labels", "prediction_pooling"):
        if manifest and key in manifest:
            new[key] = manifest[key]
    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        new["wall_time_s"] = round(time.perf_counter() - t0, 3)
        write_manifest(tmp, new)
    return out
