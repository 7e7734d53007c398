"""Reuse that cannot go stale: what the grid may take from an earlier run, and what it must
compute again (``alignfreeze experiment``; docs/experiments.md, "Reuse").

Anything found on disk is compared with what the YAML asks NOW before it is reused:

- word pairs (``OUT/pairs/<aligner>/NN_*.jsonl``): the parallel files (SHA-256 of the whole
  file, selection, pairs read), the dictionary's hash, the aligner and its options, and for
  the similarity aligner the weights of its model, recorded next to each file
  (``NN_*.jsonl.source.json``);
- a realignment (``realigned/manifest.json``): its config (every field that changes the
  result), its word-pair files (hash, selection, records) and the hash of the base weights;
  an interrupted one (``realigned/checkpoints``) the same from its newest checkpoint;
- a fine-tuning (``finetuned/manifest.json``): its config, its source treebanks (hash,
  selection, sentences), the pairs of a ``during`` strategy, and the weights it started from
  (the base's, or the realignment's final weights);
- a finished cell (``results.csv``): ``cell.json``, written with it, which holds all of the
  above plus the target treebanks and the evaluation settings.

Equal: reused, and the grid says so. Different (or no record: a grid of an older version):
the stale step and everything after it in the cell are deleted and computed again, and the
grid names the differences. The base weights are hashed once per model and run
(:func:`core.manifest.base_weight_hash`, after loading the model: seconds for e5-small).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RECORD = "cell.json"
PAIRS_RECORD = ".source.json"
# config fields that never change a result (or that the identity holds elsewhere)
REALIGN_FREE = frozenset({"out", "model", "pairs", "name", "checkpoint_every", "keep_checkpoints",
                          "retain_checkpoints"})
FINETUNE_FREE = frozenset({"out", "model", "train", "name", "during_realign"})


def data_identity(entries: list[dict]) -> list[dict]:
    """What decides a data input's records: content hash, selection and counts (not the path:
    a moved file with the same content is the same data)."""
    keys = ("sha256", "selection", "sentences", "ids_file")
    return [{k: (e[k]["sha256"] if k == "ids_file" else e[k]) for k in keys if k in e} | (
        {"path": e["path"]} if "sha256" not in e else {}) for e in entries]


def config_identity(cfg: dict, free: frozenset[str]) -> dict:
    return {k: v for k, v in sorted(cfg.items()) if k not in free}


def differences(saved: Any, wanted: Any, where: str = "") -> list[str]:
    """Human-readable differences between two identities (``realign.lr: 0.001 -> 0.0005``)."""
    if isinstance(saved, dict) and isinstance(wanted, dict):
        out = []
        for k in sorted(set(saved) | set(wanted), key=str):
            w = f"{where}.{k}" if where else str(k)
            if k not in saved:
                out.append(f"{w}: not recorded")
            elif k not in wanted:
                out.append(f"{w}: no longer asked for")
            else:
                out.extend(differences(saved[k], wanted[k], w))
        return out
    if isinstance(saved, list) and isinstance(wanted, list) and len(saved) == len(wanted):
        return [d for k, (a, b) in enumerate(zip(saved, wanted)) for d in differences(a, b, f"{where}[{k}]")]
    if saved != wanted:
        if isinstance(saved, str) and isinstance(wanted, str) and len(saved) == len(wanted) == 64:
            return [f"{where}: {saved[:10]}... -> {wanted[:10]}... (other content)"]
        return [f"{where}: {_short(saved)} -> {_short(wanted)}"]
    return []


def _short(v) -> str:
    s = json.dumps(v, default=str)
    return s if len(s) <= 80 else s[:77] + "..."


class BaseHashes:
    """The base weights' hash of each model path, computed once per run."""

    def __init__(self) -> None:
        self._done: dict[str, str] = {}

    def __call__(self, model_path: str) -> str:
        if model_path not in self._done:
            from core.manifest import base_weight_hash
            from core.models import load_model

            self._done[model_path] = base_weight_hash(load_model(model_path))
        return self._done[model_path]


# ----------------------------------------------------------------------------- pieces

def pairs_identity(parallel: dict, aligner, model_hash: str | None) -> dict:
    """Identity of one word-pairs file of the grid (module doc)."""
    from core.inputs import select_parallel
    from core.io import file_sha256

    if parallel["src"].startswith("hf:"):
        par = [{"path": parallel["src"]}]  # a hub dataset has no file to hash
    else:
        sel = select_parallel(parallel["src"], parallel.get("tgt"), limit=aligner.options.get("limit"))
        par = data_identity(sel.entries())
    dic = parallel.get("dictionary")
    return {"aligner": aligner.aligner, "options": dict(sorted(aligner.options.items())), "parallel": par,
            "dictionary": file_sha256(dic) if dic and aligner.aligner == "dictionary" else None,
            "model_weights": model_hash if aligner.aligner == "similarity" else None}


def pairs_record(jsonl: Path) -> Path:
    return jsonl.with_name(jsonl.name + PAIRS_RECORD)


def realign_identity(config: dict, pairs_entries: list[dict], base_hash: str) -> dict:
    return {"config": config_identity(config, REALIGN_FREE), "data": data_identity(pairs_entries),
            "base_weights": base_hash}


def realign_identity_of_manifest(m: dict) -> dict:
    return {"config": config_identity(m.get("config") or {}, REALIGN_FREE),
            "data": data_identity(m.get("data_files") or []),
            "base_weights": (m.get("base_model") or {}).get("weight_hash")}


def realign_identity_of_checkpoint(state: dict) -> dict:
    return {"config": config_identity(state.get("config") or {}, REALIGN_FREE),
            "data": data_identity(state.get("data_files") or []), "base_weights": state.get("base_weight_hash")}


def finetune_identity(config: dict, source_entries: list[dict], during_entries: list[dict],
                      start_hash: str | None) -> dict:
    return {"config": config_identity(config, FINETUNE_FREE), "data": data_identity(source_entries),
            "during": data_identity(during_entries), "start_weights": start_hash}


def finetune_identity_of_manifest(m: dict) -> dict:
    during = (m.get("during") or {}).get("pairs") or []
    return {"config": config_identity(m.get("config") or {}, FINETUNE_FREE),
            "data": data_identity(m.get("data_files") or []) if m.get("task", "upos") == "upos" else [],
            "during": data_identity(during), "start_weights": (m.get("base_model") or {}).get("weight_hash")}


def read_json(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None  # a torn record is no record: the step is computed again
