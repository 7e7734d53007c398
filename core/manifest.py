"""Run manifests: the JSON written next to every checkpoint and result.

Shared keys (writers may add more):

- ``kind``: ``realign`` | ``finetune`` | ``probe`` | ``prepared`` | ...
- ``config``: the run's dataclass config as a dict (enough to repeat the run)
- ``base_model``: ``{"name": ..., "weight_hash": ...}`` — hash of the *base* transformer's
  weights before training (:func:`base_weight_hash`); analysis refuses to compare a
  checkpoint against a base whose hash differs
- ``frozen_parameters``, ``frozen_layers``, ``pooling``, ``seed``
- ``data_files``: ``[{"path": ..., "sha256": ...}]``
- ``environment``: :func:`core.io.environment` (versions, git commit)
- ``wall_time_s``, ``final_losses``
"""

from __future__ import annotations

import json
from pathlib import Path

from .io import atomic_write_json, environment, file_sha256, state_dict_hash

MANIFEST = "manifest.json"


def base_weight_hash(model) -> str:
    """Hash of the bare transformer's weights (task heads and PEFT wrappers excluded)."""
    from .arch import base_model  # lazy: reading a manifest must not import torch

    return state_dict_hash(base_model(model))


def data_file_entries(paths) -> list[dict]:
    return [{"path": str(p), "sha256": file_sha256(p)} for p in paths]


def write_manifest(directory: str | Path, manifest: dict) -> Path:
    """Write ``manifest.json`` atomically, adding ``environment`` when missing."""
    manifest = dict(manifest)
    manifest.setdefault("environment", environment())
    return atomic_write_json(Path(directory) / MANIFEST, manifest)


def read_manifest(directory: str | Path) -> dict | None:
    """The manifest of a checkpoint folder, or None for a plain HF folder."""
    p = Path(directory) / MANIFEST
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{p}:{e.lineno}: invalid JSON in manifest ({e.msg})") from e
