"""Shared test fixtures: tiny random models per family (cached per session), shared data."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import torch

# tiny models on shared CPUs: intra-op threads only spin (measured 300x slower on a loaded
# 2-core machine); pytest-xdist already runs one worker per core
torch.set_num_threads(1)

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never touch the hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("ALIGNFREEZE_SHARED_DATA", REPO.parent / "shared" / "data"))
UD = SHARED_DATA / "ud"
MUSE = SHARED_DATA / "muse"
ENCODERS = ("bert", "xlm-roberta", "distilbert")
DECODERS = ("gpt2", "llama", "qwen2")


def pytest_report_header(config):
    return f"shared data: {SHARED_DATA} ({'present' if UD.is_dir() else 'absent: those tests skip'})"


@pytest.fixture(scope="session")
def tiny_models():
    """Factory: ``tiny_models(family, task="base")`` -> (a fresh copy of the model, tokenizer), built once."""
    from core.tiny import tiny_model

    cache: dict = {}

    def get(family: str, task: str = "base"):
        if (family, task) not in cache:
            cache[(family, task)] = tiny_model(family, task=task)
        model, tok = cache[(family, task)]
        # a fresh copy each time: a test that trains or edits its model never leaks into another
        return copy.deepcopy(model), tok

    return get


@pytest.fixture
def ud_dir():
    if not UD.is_dir():
        pytest.skip(f"shared UD data absent ({UD})")
    return UD


@pytest.fixture
def muse_dir():
    if not MUSE.is_dir():
        pytest.skip(f"shared MUSE data absent ({MUSE})")
    return MUSE


@pytest.fixture
def fixtures_dir():
    from core import FIXTURES

    return FIXTURES
