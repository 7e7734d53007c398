"""Freeze strategies, resolved from the architecture table (never from the model's name).

Layer numbering is the toolkit's: 0 = embeddings, 1..L = transformer blocks. A spec is
either a named strategy or an explicit layer list:

===========  ==============================================================
``none``     nothing frozen
``front``    the lower half of the blocks, ``1..L//2``; embeddings stay
             trainable (the AlignFreeze paper's definition)
``back``     the upper half of the blocks, ``L//2+1..L``
``front+emb`` embeddings and the lower half, ``0..L//2``
``back+emb`` embeddings and the upper half
explicit     anything :func:`core.arch.parse_layers` accepts: ``emb,1-3``,
             ``0-3``, ``4,5``, ``last``; a layer outside ``0..L`` is a
             ``ValueError`` naming it and the valid range
===========  ==============================================================

Odd L: the middle block goes to the *back* half (front = ``1..floor(L/2)``), e.g. L = 5
gives front = 1-2, back = 3-5.

Parameters outside every layer: a decoder's final norm (``ln_f``/``norm``) sits on top of
block L and is frozen together with layer L; BERT's pooler and task heads are never
frozen (the realignment loss does not reach them, and fine-tuning must train them).

LoRA targets (middle-layer alignment of decoders): the SAME spec decides where LoRA modules
go. :func:`lora_target_modules` puts a LoRA module on the chosen projections (q, k, v, o,
gate, up, down; :data:`core.arch.PROJECTIONS` maps them per family) of every block that the
spec does NOT freeze; a frozen block gets none, so its weights stay exactly the base's
(LoRA never touches embeddings, so freezing layer 0 changes no target). A spec that freezes
every block leaves nothing to train and is an error.

The reference code chose layers by matching ``roberta``/``distilbert`` in the model name,
so its named strategies froze nothing for mBERT; here every family in
:data:`core.arch.ARCHITECTURES` resolves, and anything else raises.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from core.arch import (
    PROJECTION_KINDS,
    PROJECTIONS,
    arch_of,
    base_model,
    layer_parameter_names,
    num_layers,
    parse_layers,
    projection_paths,
)

FREEZE_STRATEGIES = ("none", "front", "back", "front+emb", "back+emb")


@dataclass(frozen=True)
class FreezePlan:
    """A resolved freeze spec.

    Attributes:
        spec: the spec as given (``front``, ``emb,1-3`` ...).
        frozen_layers: frozen layer numbers (0 = embeddings, 1..L blocks), sorted.
        frozen_parameter_names: full names as in ``model.named_parameters()``.
        n_layers: L, the number of blocks of the model it was resolved on.
    """

    spec: str
    frozen_layers: tuple[int, ...]
    frozen_parameter_names: tuple[str, ...]
    n_layers: int = 0

    @property
    def frozen_prefix(self) -> int:
        """Number of consecutive frozen layers from the bottom (0 when the embeddings train).

        With a prefix of ``k`` the layers ``0..k-1`` build no autograd graph at all, so
        no backward pass runs through them.
        """
        k = 0
        while k in self.frozen_layers:
            k += 1
        return k


def frozen_layer_numbers(spec: str, n_layers: int) -> tuple[int, ...]:
    """Layer numbers frozen by ``spec`` for a model with ``n_layers`` blocks."""
    s = str(spec).strip().lower()
    half = n_layers // 2
    front = tuple(range(1, half + 1))
    back = tuple(range(half + 1, n_layers + 1))
    named = {
        "none": (),
        "front": front,
        "back": back,
        "front+emb": (0, *front),
        "emb+front": (0, *front),
        "back+emb": (0, *back),
        "emb+back": (0, *back),
    }
    if s in named:
        return named[s]
    if not s:
        raise ValueError(f"empty freeze spec: expected one of {', '.join(FREEZE_STRATEGIES)} or layers like 'emb,1-3'")
    try:
        return parse_layers(s, n_layers)
    except ValueError as e:
        raise ValueError(
            f"freeze spec {spec!r}: {e} (named strategies: {', '.join(FREEZE_STRATEGIES)}; "
            f"explicit layers 0..{n_layers}, 0 = embeddings)"
        ) from e


def resolve_freeze(model: nn.Module, spec: str) -> FreezePlan:
    """Resolve ``spec`` on ``model`` via its ``config.model_type`` (see module doc)."""
    spec_arch = arch_of(model)  # raises UnsupportedArchitectureError for unknown families
    L = num_layers(model)
    layers = frozen_layer_numbers(spec, L)
    per_layer = layer_parameter_names(model)
    names = [n for lay in layers for n in per_layer[lay]]
    if L in layers and spec_arch.final_norm:
        # the decoder's final norm is applied on top of block L: it belongs with it
        base = base_model(model)
        norm = base
        for part in spec_arch.final_norm.split("."):
            norm = getattr(norm, part)
        ids = {id(p) for p in norm.parameters()}
        names += [n for n, p in model.named_parameters() if id(p) in ids]
    if layers and not names:
        raise ValueError(f"freeze spec {spec!r} resolved to layers {list(layers)} but no parameters")
    return FreezePlan(str(spec), tuple(layers), tuple(names), L)


def apply_freeze(model: nn.Module, plan_or_spec: FreezePlan | str) -> FreezePlan:
    """Set ``requires_grad=False`` on the frozen parameters (others are set trainable).

    Returns the plan. The caller leaves frozen parameters out of the optimizer (see
    :func:`trainable_parameters`).
    """
    plan = resolve_freeze(model, plan_or_spec) if isinstance(plan_or_spec, str) else plan_or_spec
    frozen = set(plan.frozen_parameter_names)
    known = {n for n, _ in model.named_parameters()}
    missing = frozen - known
    if missing:
        raise ValueError(f"freeze plan names parameters this model does not have: {sorted(missing)[:5]}")
    for name, p in model.named_parameters():
        p.requires_grad_(name not in frozen)
    return plan


def trainable_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """``(name, parameter)`` of every parameter that still requires grad."""
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


def lora_target_modules(model: nn.Module, kinds: str | tuple[str, ...] | list[str] = "paper",
                        freeze: str = "none") -> tuple[list[str], FreezePlan]:
    """Full module names that get a LoRA module, and the resolved freeze plan.

    Args:
        model: a model of the architecture table (decoder or encoder, heads allowed).
        kinds: projections to adapt: ``"paper"`` = the middle-layer alignment paper's
            q, k, v, o, gate, up, down restricted to what the family has (gpt2: ``c_attn``
            for q/k/v, ``c_proj``, ``c_fc``, ``mlp.c_proj``; no gate); or a comma list /
            sequence of :data:`core.arch.PROJECTION_KINDS` (a kind the family lacks is an
            error naming it).
        freeze: a freeze spec (see module doc); its frozen blocks get no LoRA module.

    Returns:
        ``(names, plan)``: sorted unique module names (as in ``model.named_modules()``) and
        the :class:`FreezePlan`.

    Raises:
        ValueError: unknown kinds, a kind the family lacks, a bad spec, or a spec that
            freezes every block (nothing left to adapt).
    """
    family = arch_of(model).family
    if kinds == "paper":
        kinds = tuple(k for k in PROJECTION_KINDS if k in PROJECTIONS.get(family, {}))
    elif isinstance(kinds, str):
        kinds = tuple(k.strip() for k in kinds.split(",") if k.strip())
    if not kinds:
        raise ValueError("no LoRA target projections given: expected some of " + ", ".join(PROJECTION_KINDS))
    plan = resolve_freeze(model, freeze)
    L = num_layers(model)
    free_blocks = [i for i in range(1, L + 1) if i not in plan.frozen_layers]
    if not free_blocks:
        raise ValueError(f"freeze spec {freeze!r} freezes every block 1..{L}: no block is left for LoRA modules")
    paths = projection_paths(model, kinds, free_blocks)
    names = sorted({n for ns in paths.values() for n in ns})
    return names, plan
