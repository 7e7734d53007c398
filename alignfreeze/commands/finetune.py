"""``alignfreeze finetune`` commands (see the corresponding issue)."""

from __future__ import annotations


def register(sub) -> None:
    """Add this area's sub-commands to the parser (none yet)."""
