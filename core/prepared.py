"""Real pretrained models rebuilt offline from registry packages (filled in by issue 5).

``PREPARED_MODELS`` maps a short name to how it is prepared; ``ensure_prepared(name)``
returns the HF folder, preparing it on first use.
"""

from __future__ import annotations

from pathlib import Path

PREPARED_MODELS: dict[str, object] = {}


def ensure_prepared(name: str, cache_dir: str | Path | None = None) -> Path:
    raise KeyError(f"{name!r} is not a prepared model")


def is_available(name: str) -> bool:
    """True when ``name`` is prepared already or its source package is installed."""
    return False
