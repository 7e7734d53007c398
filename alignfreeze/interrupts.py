"""Whether the user pressed Ctrl-C during this command (set by the CLI's SIGINT handler).

A Ctrl-C that lands inside an import or a C extension can surface as another exception
(``ImportError: initialization failed``, or transformers' lazy-module ``ModuleNotFoundError``,
both seen); code that catches exceptions to go on (the grid's failed cells) asks
:func:`interrupted` first and re-raises instead of recording a failure. Light: no imports.
"""

from __future__ import annotations

import threading

SIGINT_SEEN = threading.Event()


def interrupted() -> bool:
    """A Ctrl-C arrived since the current command started."""
    return SIGINT_SEEN.is_set()
