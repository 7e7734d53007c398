"""Base model + PEFT adapter as one model: how analysis reads a middle-layer-alignment checkpoint.

An *adapter folder* holds ``adapter_config.json`` (PEFT's format) and, when written by this
toolkit, ``manifest.json`` naming the base model and the hash of its weights. Given as
``--model`` to any command that loads through :func:`core.models.load_model` (drift, cka,
probe, align-eval...), it is loaded as: base model -> check its weight hash against the
manifest -> apply the adapter -> merge the LoRA deltas into the weights
(``merge_and_unload``), so every layer-wise analysis sees an ordinary model of the family.

Errors: a base whose weights do not hash to the manifest's ``base_model.weight_hash`` (an
adapter made for another base) is refused, naming both hashes.
"""

from __future__ import annotations

import contextlib
import json
import warnings
from pathlib import Path

ADAPTER_CONFIG = "adapter_config.json"


@contextlib.contextmanager
def peft_quiet():
    """Silence one known third-party warning while PEFT wraps a model.

    PEFT 0.21 reads ``model.is_gradient_checkpointing`` whenever it builds a ``PeftModel``;
    transformers 5 renamed the property (``is_activation_checkpointing``) and warns on every
    read of the old name. The warning is about PEFT's code, not the user's, so it is filtered
    here by its exact message; every other warning passes through.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`is_gradient_checkpointing` is deprecated", category=FutureWarning)
        yield


def is_adapter_dir(path) -> bool:
    """True for a folder with a PEFT ``adapter_config.json``."""
    p = Path(str(path))
    return p.is_dir() and (p / ADAPTER_CONFIG).is_file()


def adapter_base(path) -> tuple[str, str | None]:
    """``(base name, base weight hash or None)``: from our manifest, else PEFT's config."""
    from .manifest import read_manifest

    p = Path(path)
    man = read_manifest(p) or {}
    base = man.get("base_model") or {}
    if base.get("name"):
        return str(base["name"]), base.get("weight_hash")
    try:
        cfg = json.loads((p / ADAPTER_CONFIG).read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{p / ADAPTER_CONFIG}:{e.lineno}: invalid JSON ({e.msg})") from e
    name = cfg.get("base_model_name_or_path")
    if not name:
        raise ValueError(f"{p / ADAPTER_CONFIG}: names no base model (base_model_name_or_path) and there is "
                         "no manifest.json: give the base explicitly")
    return str(name), None


def check_adapter_base(model, path) -> str:
    """Compare ``model``'s weight hash with the adapter manifest's; raise ValueError on a mismatch.

    Returns a note: ``"base hash matches"`` or ``"no manifest hash: base not checked"``.
    """
    from .manifest import MANIFEST, base_weight_hash

    name, want = adapter_base(path)
    if not want:
        return "no manifest hash: base not checked"
    have = base_weight_hash(model)
    if have != want:
        raise ValueError(f"{Path(path) / MANIFEST}: adapter made for base {name!r} with weight hash {want[:12]}..., "
                         f"but the given base's weights hash to {have[:12]}...: this adapter belongs to another base")
    return "base hash matches"


def load_adapter_model(path, *, task: str = "base", base: str | None = None, merge: bool = True, **load_kwargs):
    """Base model (``base`` or the one the adapter names) with the adapter of ``path`` applied.

    ``merge=True`` returns a plain transformers model with the LoRA deltas merged into its
    weights (``task="base"`` returns the bare transformer under the LM head); ``merge=False``
    returns the PEFT model (causal LM). Raises ValueError for a base of other weights.
    """
    from peft import PeftModel

    from .arch import base_model
    from .models import load_model

    if task not in ("base", "causal-lm"):
        raise ValueError(f"{path}: a middle-layer alignment adapter adapts a causal LM; task {task!r} cannot "
                         "be loaded from it (expected base or causal-lm)")
    name = base or adapter_base(path)[0]
    model = load_model(name, task="causal-lm", **load_kwargs)
    check_adapter_base(model, path)
    with peft_quiet():
        peft_model = PeftModel.from_pretrained(model, str(path), is_trainable=False)
    peft_model.eval()
    if not merge:
        return peft_model
    merged = peft_model.merge_and_unload()
    merged.eval()
    return base_model(merged) if task == "base" else merged
