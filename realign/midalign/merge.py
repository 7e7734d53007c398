"""Merging an alignment adapter into a task adapter with PEFT's ``add_weighted_adapter``.

What the weights mean for LoRA. Adapter i adds ``dW_i = s_i B_i A_i`` to a target weight
(``s_i = alpha_i / r_i``, ``A_i`` is r_i x in, ``B_i`` is out x r_i). Given weights
``w_i``, the merged adapter adds (checked against PEFT 0.21's ``tuners/lora/model.py``):

==========================  ===============================================================
``cat`` (default)           EXACT: ``sum_i w_i dW_i``. A = [w_i s_i A_i] stacked, B = [B_i]
                            side by side, rank = sum of ranks, scaling 1. Any ranks.
``svd``                     ``sum_i w_i dW_i`` truncated to its best rank-``svd_rank``
                            approximation (SVD). Exact up to float error when ``svd_rank``
                            >= the rank of the sum; we default ``svd_rank`` to the sum of
                            the ranks, so it is exact unless a smaller rank is asked for.
``linear``                  NOT the weighted sum: A = sum_i sign(w_i) sqrt(|w_i s_i|) A_i and
                            B = sum_i sqrt(|w_i s_i|) B_i, so the delta is
                            ``(sum_i c_i B_i)(sum_j c_j' A_j)`` = the weighted sum PLUS cross
                            terms ``B_i A_j`` (i != j). Needs equal ranks. Exact only for a
                            single adapter (or where only one adapter targets a module).
``ties``, ``dare_linear``,  pruned / randomly dropped versions of the ``linear`` factors:
``dare_ties``,              not a weighted sum (``dare_*`` are random).
``magnitude_prune``
==========================  ===============================================================

So ``weights = (1, 1)`` with ``cat`` gives exactly "task adapter + alignment adapter", the
sum of the two deltas; ``(1, 0.5)`` halves the alignment delta. A negative weight
subtracts an adapter's delta.

Refused (ValueError, before anything is written): adapters made for another base (weight
hash in their manifests), adapters on different sets of target modules (their deltas
would live in different places; the merged adapter would silently miss one), rsLoRA
adapters (their merged scaling would not be 1), and an unknown combination type.
PEFT's own ``add_weighted_adapter`` silently does nothing when the new name exists; we
always build a fresh name.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from core.adapters import peft_quiet

COMBINATIONS = ("cat", "svd", "linear", "ties", "dare_linear", "dare_ties", "magnitude_prune")
EXACT = {"cat": "exact: sum_i w_i * delta_i",
         "svd": "exact up to float error when svd_rank >= rank of sum_i w_i * delta_i (default: sum of ranks)",
         "linear": "approximate: weighted sum plus cross terms B_i A_j",
         "ties": "approximate (pruned)", "dare_linear": "approximate (random drop)",
         "dare_ties": "approximate (random drop)", "magnitude_prune": "approximate (pruned)"}
MERGED = "merged"


def _adapter_config(path: Path) -> dict:
    p = path / "adapter_config.json"
    if not p.is_file():
        raise FileNotFoundError(f"{path}: not an adapter folder (no adapter_config.json)")
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{p}:{e.lineno}: invalid JSON ({e.msg})") from e


def _targets(cfg: dict) -> set[str]:
    t = cfg.get("target_modules")
    return {t} if isinstance(t, str) else set(t or ())


def check_mergeable(base_model, adapters: Sequence[str | Path]) -> list[dict]:
    """Check base hashes, rsLoRA and target modules of ``adapters``; returns their configs."""
    from core.adapters import check_adapter_base

    if len(adapters) < 2:
        raise ValueError(f"merging needs at least two adapters, got {len(adapters)}")
    cfgs = []
    for a in adapters:
        path = Path(a)
        cfg = _adapter_config(path)
        check_adapter_base(base_model, path)
        if cfg.get("use_rslora"):
            raise ValueError(f"{path}: rsLoRA adapter: its merged scaling would not be 1, so no exact merge; refused")
        if cfg.get("peft_type", "LORA") != "LORA":
            raise ValueError(f"{path}: a {cfg.get('peft_type')} adapter; only LoRA adapters can be merged")
        cfgs.append(cfg)
    first = _targets(cfgs[0])
    for a, cfg in zip(adapters[1:], cfgs[1:]):
        t = _targets(cfg)
        if t != first:
            only_a, only_b = sorted(first - t)[:3], sorted(t - first)[:3]
            raise ValueError(f"{adapters[0]} and {a} target different modules (only in the first: {only_a}, only in "
                             f"the second: {only_b}): their deltas live in different places; train both with the "
                             "same --lora-targets and --freeze to merge them")
    return cfgs


def merge_adapters(base_model, adapters: Sequence[str | Path], weights: Sequence[float], *,
                   combination: str = "cat", svd_rank: int | None = None, density: float | None = None):
    """Load ``adapters`` onto ``base_model`` (a causal LM) and add their weighted merge.

    Returns the PEFT model with ONLY the merged adapter (named :data:`MERGED`) left and
    active. See the module doc for what ``weights`` mean under each ``combination``.
    """
    from peft import PeftModel

    if combination not in COMBINATIONS:
        raise ValueError(f"combination {combination!r}: expected one of {', '.join(COMBINATIONS)}")
    if len(weights) != len(adapters):
        raise ValueError(f"{len(adapters)} adapters but {len(weights)} weights")
    cfgs = check_mergeable(base_model, adapters)
    if combination == "linear" and len({c.get("r") for c in cfgs}) > 1:
        raise ValueError(f"combination linear needs adapters of equal rank, got ranks {[c.get('r') for c in cfgs]}")
    if combination in ("ties", "dare_linear", "dare_ties", "magnitude_prune") and density is None:
        raise ValueError(f"combination {combination} needs a density in (0, 1]")
    names = [f"a{i}" for i in range(len(adapters))]
    with peft_quiet():
        model = PeftModel.from_pretrained(base_model, str(adapters[0]), adapter_name=names[0], is_trainable=False)
    for n, a in zip(names[1:], adapters[1:]):
        model.load_adapter(str(a), adapter_name=n, is_trainable=False)
    if combination == "svd" and svd_rank is None:
        svd_rank = sum(int(c["r"]) for c in cfgs)
    model.add_weighted_adapter(names, [float(w) for w in weights], MERGED, combination_type=combination,
                               svd_rank=svd_rank, density=density)
    model.set_adapter(MERGED)
    for n in names:
        model.delete_adapter(n)
    model.eval()
    return model


def save_merged(model, out: str | Path, manifest: dict, tokenizer=None, *, full_model: bool = False) -> Path:
    """Write the merged adapter as a plain PEFT folder (loads as the ``default`` adapter) +
    tokenizer + manifest, atomically. ``full_model`` writes instead the base with the merged
    delta folded into its weights (``merge_and_unload``): an ordinary HF model folder whose
    manifest still names the base and its weight hash (so ``drift`` checks it)."""
    from core.io import atomic_dir
    from core.manifest import write_manifest

    out = Path(out)
    if (out / "manifest.json").is_file():
        raise ValueError(f"{out}: already holds a finished run (manifest.json); choose another --out")
    with atomic_dir(out) as tmp:
        if full_model:
            model.merge_and_unload().save_pretrained(tmp, safe_serialization=True)
            manifest = {**manifest, "full_model": True}
        else:
            model.save_pretrained(tmp, selected_adapters=[MERGED])
            sub = tmp / MERGED  # PEFT writes a non-default adapter into a sub-folder
            if sub.is_dir():
                for f in sub.iterdir():
                    os.replace(f, tmp / f.name)
                shutil.rmtree(sub)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        write_manifest(tmp, manifest)
    return out


def merge_manifest(adapters: Sequence[str | Path], weights: Sequence[float], combination: str,
                   svd_rank: int | None) -> dict:
    """The merged folder's manifest: base from the first adapter, sources, weights, meaning."""
    from core.io import file_sha256
    from core.manifest import read_manifest

    mans = [read_manifest(a) or {} for a in adapters]
    sources = []
    for a, m in zip(adapters, mans):
        w = Path(a) / "adapter_model.safetensors"
        sources.append({"path": str(a), "kind": m.get("kind"), "layer": m.get("layer"),
                        "adapter_sha256": file_sha256(w) if w.is_file() else None})
    return {"kind": "midalign-merge", "base_model": mans[0].get("base_model"), "sources": sources,
            "weights": [float(w) for w in weights], "combination": combination, "svd_rank": svd_rank,
            "meaning": EXACT[combination], "task": next((m.get("task") for m in mans if m.get("task") not in
                                                         (None, "none")), None)}
