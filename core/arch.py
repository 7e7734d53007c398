"""The ONE architecture table: where each model family keeps its embeddings and blocks.

Layer numbering everywhere in the toolkit: 0 = embedding output (input of block 1), 1..L =
raw output of block i, before a decoder's final norm (:mod:`core.layers` is THE definition).
Freeze specs, probes, CKA and plots use it.

Anything not in the table is an :class:`UnsupportedArchitectureError`, never a silent
no-op (the reference code's pitfall: matching "roberta" in a model *name* froze nothing
for mBERT).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: reading the table (e.g. to check a --model) needs no torch
    from torch import nn


class UnsupportedArchitectureError(ValueError):
    """The model's family is not in the architecture table."""


@dataclass(frozen=True)
class ArchSpec:
    """Where a family keeps its parts, as dotted paths from the *base* model."""

    family: str
    kind: str  # "encoder" or "decoder"
    embeddings: tuple[str, ...]  # modules whose parameters form layer 0
    blocks: str  # the nn.ModuleList of transformer blocks
    final_norm: str | None = None  # decoders: norm after the last block (not a layer)


_ENC = dict(kind="encoder", embeddings=("embeddings",), blocks="encoder.layer")
_DEC = dict(kind="decoder", embeddings=("embed_tokens",), blocks="layers", final_norm="norm")

ARCHITECTURES: dict[str, ArchSpec] = {
    "bert": ArchSpec("bert", **_ENC),
    "roberta": ArchSpec("roberta", **_ENC),
    "xlm-roberta": ArchSpec("xlm-roberta", **_ENC),
    "distilbert": ArchSpec("distilbert", "encoder", ("embeddings",), "transformer.layer"),
    "gpt2": ArchSpec("gpt2", "decoder", ("wte", "wpe"), "h", "ln_f"),
    "llama": ArchSpec("llama", **_DEC),
    "qwen2": ArchSpec("qwen2", **_DEC),
    "mistral": ArchSpec("mistral", **_DEC),
}


# The linear projections of one block, by the names the LoRA / middle-layer alignment papers
# use (q, k, v, o, gate, up, down), as dotted paths inside a block. gpt2 fuses q, k and v in
# one ``attn.c_attn`` (a Conv1D) and has no gate; encoders have no gate either.
PROJECTION_KINDS = ("q", "k", "v", "o", "gate", "up", "down")
_LLAMA_PROJ = {"q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj",
               "o": "self_attn.o_proj", "gate": "mlp.gate_proj", "up": "mlp.up_proj",
               "down": "mlp.down_proj"}
_BERT_PROJ = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
              "o": "attention.output.dense", "up": "intermediate.dense", "down": "output.dense"}
PROJECTIONS: dict[str, dict[str, str]] = {
    "bert": _BERT_PROJ,
    "roberta": _BERT_PROJ,
    "xlm-roberta": _BERT_PROJ,
    "distilbert": {"q": "attention.q_lin", "k": "attention.k_lin", "v": "attention.v_lin",
                   "o": "attention.out_lin", "up": "ffn.lin1", "down": "ffn.lin2"},
    "gpt2": {"q": "attn.c_attn", "k": "attn.c_attn", "v": "attn.c_attn", "o": "attn.c_proj",
             "up": "mlp.c_fc", "down": "mlp.c_proj"},
    "llama": _LLAMA_PROJ,
    "qwen2": _LLAMA_PROJ,
    "mistral": _LLAMA_PROJ,
}


def _get(module: nn.Module, dotted: str) -> nn.Module:
    for part in dotted.split("."):
        module = getattr(module, part)
    return module


def base_model(model: nn.Module) -> nn.Module:
    """The bare transformer under task heads and PEFT wrappers (``BertModel`` etc.)."""
    m = model
    if hasattr(m, "get_base_model"):  # PEFT
        m = m.get_base_model()
    prefix = getattr(m, "base_model_prefix", None)
    if prefix and hasattr(m, prefix):
        m = getattr(m, prefix)
    return m


def arch_of(model: nn.Module) -> ArchSpec:
    """Look up the model's family by ``config.model_type``."""
    config = getattr(model, "config", None)
    mt = getattr(config, "model_type", None)
    if mt not in ARCHITECTURES:
        raise UnsupportedArchitectureError(
            f"model_type {mt!r} is not in the architecture table "
            f"(supported: {', '.join(sorted(ARCHITECTURES))}); add it to core/arch.py"
        )
    return ARCHITECTURES[mt]


def blocks(model: nn.Module) -> nn.ModuleList:
    return _get(base_model(model), arch_of(model).blocks)


def num_layers(model: nn.Module) -> int:
    """Number of transformer blocks L (layers are 0..L)."""
    return len(blocks(model))


def embedding_modules(model: nn.Module) -> list[nn.Module]:
    base = base_model(model)
    return [_get(base, p) for p in arch_of(model).embeddings]


def layer_modules(model: nn.Module) -> dict[int, list[nn.Module]]:
    """Layer index -> the modules whose parameters make that layer."""
    out: dict[int, list[nn.Module]] = {0: embedding_modules(model)}
    for i, block in enumerate(blocks(model), 1):
        out[i] = [block]
    return out


def layer_parameter_names(model: nn.Module) -> dict[int, list[str]]:
    """Layer index -> full parameter names (as in ``model.named_parameters()``)."""
    ids: dict[int, int] = {}
    for layer, mods in layer_modules(model).items():
        for mod in mods:
            for p in mod.parameters():
                ids[id(p)] = layer
    out: dict[int, list[str]] = {k: [] for k in range(num_layers(model) + 1)}
    for name, p in model.named_parameters():
        if id(p) in ids:
            out[ids[id(p)]].append(name)
    return out


def projection_paths(model: nn.Module, kinds, layers=None) -> dict[str, list[str]]:
    """Full module names (as in ``model.named_modules()``) of the projections ``kinds``
    (see :data:`PROJECTION_KINDS`) in the blocks whose layer number is in ``layers``
    (1..L; default all blocks). Returns ``{kind: [names...]}``; a fused module (gpt2's
    ``c_attn`` for q, k and v) appears under each kind it serves.

    Raises ValueError for an unknown kind, or a kind the family does not have (gate on gpt2).
    """
    spec = arch_of(model)
    table = PROJECTIONS.get(spec.family, {})
    bad = [k for k in kinds if k not in PROJECTION_KINDS]
    if bad:
        raise ValueError(f"unknown projection(s) {bad}: expected some of {', '.join(PROJECTION_KINDS)}")
    missing = [k for k in kinds if k not in table]
    if missing:
        raise ValueError(f"{spec.family} blocks have no {'/'.join(missing)} projection "
                         f"(it has: {', '.join(k for k in PROJECTION_KINDS if k in table)})")
    L = num_layers(model)
    wanted = range(1, L + 1) if layers is None else layers
    block_of = {id(b): i for i, b in enumerate(blocks(model), 1)}
    prefix = {}
    for name, mod in model.named_modules():
        if id(mod) in block_of:
            prefix[block_of[id(mod)]] = name
    return {k: [f"{prefix[i]}.{table[k]}" for i in sorted(set(wanted)) if 1 <= i <= L] for k in kinds}


def parse_layers(spec: str | int | list[int] | tuple[int, ...] | None, n_layers: int) -> tuple[int, ...]:
    """Parse a layer selection (``all``, ``last``, ``middle``, ``0,3-5``, ints) into 0..L indices."""
    if spec is None or spec == "all":
        return tuple(range(n_layers + 1))
    if isinstance(spec, int):
        items: list[int] = [spec]
    elif isinstance(spec, list | tuple):
        items = [int(x) for x in spec]
    else:
        items = []
        for part in str(spec).split(","):
            part = part.strip()
            if part == "last":
                items.append(n_layers)
            elif part == "middle":
                items.append(n_layers // 2)
            elif part in ("emb", "embeddings"):
                items.append(0)
            elif "-" in part:
                a, b = part.split("-", 1)
                if not (a.strip().isdigit() and b.strip().isdigit()):
                    raise ValueError(f"bad layer range {part!r}: expected A-B with integers")
                items.extend(range(int(a), int(b) + 1))
            elif part.lstrip("-").isdigit():
                items.append(int(part))
            else:
                raise ValueError(f"bad layer {part!r}: expected all, last, middle, emb, N or A-B")
    bad = [i for i in items if not 0 <= i <= n_layers]
    if bad:
        raise ValueError(f"layer(s) {bad} do not exist: this model has layers 0..{n_layers}")
    if not items:
        raise ValueError("empty layer selection")
    return tuple(sorted(set(items)))
