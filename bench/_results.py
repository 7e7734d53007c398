"""Shared by every benchmark: write one section of bench/RESULTS.md atomically.

Each benchmark owns a section delimited by ``<!-- begin NAME -->`` / ``<!-- end NAME -->``
and replaces only that section, so several benchmarks can update the file independently.
"""

from __future__ import annotations

import fcntl
import os
import platform
import shlex
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")
HEADER = "# Benchmark results\n\nEach section is written by the script named in it (ratios against a peer measured in the same run).\n"


def command_line() -> str:
    return "python " + " ".join(shlex.quote(a) for a in sys.argv)


def machine() -> str:
    try:
        import torch

        dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
        threads = torch.get_num_threads()
    except ImportError:  # pragma: no cover
        dev, threads = "CPU", os.cpu_count()
    return f"{platform.machine()}, {os.cpu_count()} cores ({threads} torch threads), {dev}"


def write_section(name: str, body: str) -> None:
    """Replace (or append) section ``name`` of bench/RESULTS.md with ``body``."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    block = (f"<!-- begin {name} -->\n{body.rstrip()}\n\n_Command_: `{command_line()}`  \n"
             f"_Machine_: {machine()}; {stamp}\n<!-- end {name} -->\n")
    lock = RESULTS.with_suffix(".lock")
    with open(lock, "w") as lk:
        fcntl.flock(lk, fcntl.LOCK_EX)
        text = RESULTS.read_text() if RESULTS.exists() else HEADER
        begin, end = f"<!-- begin {name} -->", f"<!-- end {name} -->\n"
        if begin in text and end in text:
            a = text.index(begin)
            b = text.index(end) + len(end)
            text = text[:a] + block + text[b:]
        else:
            text = text.rstrip("\n") + "\n\n" + block
        fd, tmp = tempfile.mkstemp(dir=RESULTS.parent, prefix=".RESULTS.")
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, RESULTS)
