"""Notebooks under pytest (``pytest --nbmake notebooks``): each kernel is a process of its
own, started with this environment. One intra-op thread per kernel: pytest-xdist already
runs one worker per core, and extra torch threads only spin on shared cores (see
tests/conftest.py). A researcher's own Jupyter is not affected."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the defaults never need the hub
