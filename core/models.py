"""Loading encoder and decoder models and their fast tokenizers.

``name`` may be a prepared model name (see :mod:`core.prepared`, e.g. ``e5-small``), a
local folder, or a hub name (``xlm-roberta-base``) that resolves through the HF cache.
With ``offline=True`` (or ``HF_HUB_OFFLINE=1``) nothing is downloaded.

A model that is not there fails at once, in one line (:class:`ModelNotFoundError`):

- a name that looks like a local path (``./x``, ``/x``, ``~/x``, ``runs/x`` when ``runs/``
  exists, or anything that is not a valid hub id) and does not exist: "no such local folder";
- a hub name while offline, or while the hub cannot be reached (one quick connection
  probe instead of the hub client's retries), that is not in the HF cache: the message says
  so and how to point at a local copy.

Importing this module is cheap (torch and transformers are imported when a model loads),
so the CLI can check a ``--model`` argument before any heavy import.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import json
import logging
import os
import re
import socket
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from . import prepared

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from transformers import PreTrainedTokenizerBase

TASKS = ("base", "token-classification", "causal-lm")
# a folder's tokenizer is in (at least) one of these
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "sentencepiece.bpe.model", "spiece.model",
                   "tokenizer.model")
# what a hub repo id looks like: "name" or "org/name" (huggingface_hub.utils.validate_repo_id)
_HUB_ID = re.compile(r"^(?:[A-Za-z0-9][\w.-]*/)?[A-Za-z0-9][\w.-]{0,95}$")
LOCAL_HINT = ("give a local folder saved with save_pretrained (it holds config.json), a prepared name "
              "(`alignfreeze models list`), or a hub name")
LOCAL_COPY = ("pass a local copy instead: a folder saved with save_pretrained (it holds config.json), or a "
              "prepared name (`alignfreeze models list`)")


class ModelLoadError(ValueError):
    """A model folder (or hub model) that is there but cannot be loaded: the message names
    it, what could not be read, and the loader's first sentence."""


@contextlib.contextmanager
def _loading(name: str, what: str):
    """Turn a loader's error (often a paragraph) into one line naming the model."""
    try:
        yield
    except Exception as e:
        names = {c.__name__ for c in type(e).__mro__}
        if not isinstance(e, OSError | ValueError | KeyError | RuntimeError) and "SafetensorError" not in names:
            raise
        if isinstance(e, ModelNotFoundError | ModelLoadError):
            raise
        text = " ".join(str(e.args[0] if isinstance(e, KeyError) and e.args else e).split())
        first = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0].rstrip(".") or type(e).__name__
        raise ModelLoadError(f"{name}: cannot load its {what}: {first}") from e


class ModelNotFoundError(FileNotFoundError):
    """The model named on the command line is neither a local folder, a prepared name, nor a
    hub model that can be reached or found in the HF cache. The message is one line."""


def is_offline(offline: bool | None = None) -> bool:
    if offline is not None:
        return offline
    return os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")


def looks_local(name: str) -> bool:
    """True when ``name`` can only mean a local path: absolute, ``.``/``~``-relative, not a
    valid hub id (e.g. more than one ``/``), or ``DIR/x`` where ``DIR`` is an existing folder."""
    if name.startswith(("/", ".", "~")) or "\\" in name or name.endswith("/"):
        return True
    if not _HUB_ID.match(name) or "--" in name or ".." in name:
        return True
    return "/" in name and Path(name.split("/", 1)[0]).is_dir()


def _no_such_folder(name: str) -> ModelNotFoundError:
    p = Path(name).expanduser()
    parent = p.parent
    while not parent.is_dir() and parent != parent.parent:
        parent = parent.parent
    hint = ""
    if parent.is_dir():
        try:
            siblings = sorted(c.name for c in parent.iterdir() if c.is_dir() and not c.name.startswith("."))
        except OSError:
            siblings = []
        close = difflib.get_close_matches(p.name, siblings, n=3, cutoff=0.6)
        if close and parent == p.parent:
            hint = f" (did you mean {', '.join(str(parent / c) for c in close)}?)"
        elif parent != p.parent:
            hint = f" ({parent} is the deepest folder of that path that exists)"
    return ModelNotFoundError(f"{name}: no such local folder{hint}; {LOCAL_HINT}")


def check_model_name(name: str | Path) -> None:
    """Cheap checks of a model argument, before anything heavy is imported or loaded.

    Raises :class:`ModelNotFoundError` (one line) for a missing local-looking path, a file
    where a model folder is expected, or a folder without ``config.json``. Prepared and hub
    names pass (the hub is checked when the model loads, see :func:`resolve_model_path`).
    """
    name = str(name)
    if name in prepared.PREPARED_MODELS:
        return
    p = Path(name).expanduser()
    if p.is_dir() and (p / "adapter_config.json").is_file():
        return  # a PEFT adapter folder: core.adapters checks it and its base when it loads
    if p.is_dir():
        if not (p / "config.json").is_file():
            raise ModelNotFoundError(f"{name}: not a model folder (no config.json in it); {LOCAL_HINT}")
        try:
            config = json.loads((p / "config.json").read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            where = f"line {e.lineno}: {e.msg}" if isinstance(e, json.JSONDecodeError) else "not UTF-8 text"
            raise ModelLoadError(f"{name}: cannot load its config.json: not JSON ({where}); expected the "
                                 "config.json that save_pretrained writes") from None
        family = config.get("model_type") if isinstance(config, dict) else None
        if isinstance(family, str):
            from .arch import ARCHITECTURES, UnsupportedArchitectureError

            if family not in ARCHITECTURES:
                raise UnsupportedArchitectureError(
                    f"{name}: model_type {family!r} is not in the architecture table "
                    f"(supported: {', '.join(sorted(ARCHITECTURES))})")
        return
    if p.exists():
        raise ModelNotFoundError(f"{name}: is a file, expected a model folder (holding config.json)")
    if looks_local(name):
        raise _no_such_folder(name)


@functools.lru_cache(maxsize=4)
def hub_unreachable(endpoint: str | None = None, timeout: float = 3.0) -> str | None:
    """``None`` when a TCP connection to the hub (``HF_ENDPOINT``, default huggingface.co)
    opens within ``timeout`` seconds, else the reason. Behind a proxy (``HTTPS_PROXY`` /
    ``ALL_PROXY``) nothing is probed: the hub client's own handling applies. Cached per process."""
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None
    url = urlparse(endpoint or os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host = url.hostname or "huggingface.co"
    port = url.port or (80 if url.scheme == "http" else 443)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as e:
        return f"{host}:{port}: {getattr(e, 'strerror', None) or e}"


def _from_hf_cache(name: str) -> str | None:
    """The folder of ``name``'s snapshot in the local HF cache, or ``None``."""
    from huggingface_hub import snapshot_download

    try:
        return str(snapshot_download(name, local_files_only=True))
    except Exception:  # noqa: BLE001 - any cache miss (not cached, bad id, partial) means "not there"
        return None


def resolve_model_path(name: str | Path, *, offline: bool | None = None) -> str:
    """The path or hub name that ``from_pretrained`` should load.

    A prepared name becomes its (prepared-on-demand) folder; a local folder is returned as
    it is; a hub name is returned unchanged when the hub is reachable, else (offline, or no
    connection) as its folder in the local HF cache, so no loader ever waits for retries.

    Raises:
        ModelNotFoundError: see :func:`check_model_name`; or a hub name that is not in the
            HF cache while offline or while the hub is unreachable.
    """
    name = str(name)
    if name in prepared.PREPARED_MODELS:
        return str(prepared.ensure_prepared(name))
    check_model_name(name)
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser())
    if is_offline(offline):
        why = "offline mode is on (--offline or HF_HUB_OFFLINE=1)"
    else:
        why = hub_unreachable()
        if why is None:
            return name
        why = f"the HuggingFace hub is unreachable ({why})"
    cached = _from_hf_cache(name)
    if cached is not None:
        return cached
    raise ModelNotFoundError(f"{name}: not a local folder and not in the local HF cache, and {why}; {LOCAL_COPY}")


def check_family(config) -> None:
    """Raise ``UnsupportedArchitectureError`` for a family outside :data:`core.arch.ARCHITECTURES`."""
    from .arch import ARCHITECTURES, UnsupportedArchitectureError

    if config.model_type not in ARCHITECTURES:
        raise UnsupportedArchitectureError(
            f"model_type {config.model_type!r} is not in the architecture table "
            f"(supported: {', '.join(sorted(ARCHITECTURES))})"
        )


def load_tokenizer(name: str | Path, *, offline: bool | None = None) -> PreTrainedTokenizerBase:
    """Load a *fast* tokenizer (character offsets map pieces to words: :mod:`core.encoding`).

    An adapter folder (:mod:`core.adapters`) gives the tokenizer saved in it, else its base's.

    Raises:
        ModelNotFoundError: see :func:`resolve_model_path`.
        ModelLoadError: a folder without tokenizer files, or whose config/tokenizer cannot be read.
        UnsupportedArchitectureError: a family outside the architecture table.
    """
    from transformers import AutoConfig, AutoTokenizer

    path = resolve_model_path(name, offline=offline)
    from .adapters import adapter_base, is_adapter_dir

    if is_adapter_dir(path):
        # a LoRA adapter leaves the vocabulary alone, and its folder has no config.json (the
        # base's family is checked when the model loads): its own tokenizer copy, else the base's
        if not any((Path(path) / f).is_file() for f in TOKENIZER_FILES):
            return load_tokenizer(adapter_base(path)[0], offline=offline)
        with _loading(str(name), "tokenizer"):
            tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
        return _fast(name, tok)
    if Path(path).is_dir() and not any((Path(path) / f).is_file() for f in TOKENIZER_FILES):
        # transformers 5 builds an EMPTY tokenizer here (specials only: every word [UNK]), silently
        raise ModelLoadError(f"{name}: cannot load its tokenizer: the folder holds none of "
                             f"{', '.join(TOKENIZER_FILES)}; save the tokenizer next to the model "
                             "(tokenizer.save_pretrained(folder))")
    local = is_offline(offline) or path != str(name)
    with _loading(str(name), "config.json"):
        config = AutoConfig.from_pretrained(path, local_files_only=local)
    check_family(config)  # before the tokenizer, which only warns about an unknown family
    with _loading(str(name), "tokenizer"):
        tok = AutoTokenizer.from_pretrained(path, local_files_only=local)
    return _fast(name, tok)


def _fast(name, tok):
    if not tok.is_fast:
        raise ValueError(f"{name}: the tokenizer is not a fast tokenizer; character offsets (return_offsets_mapping) are required")
    return tok


def load_model(
    name: str | Path,
    *,
    task: str = "base",
    offline: bool | None = None,
    dtype: torch.dtype | None = None,
    **kwargs,
) -> torch.nn.Module:
    """Load a model for ``task`` in ``TASKS``; unsupported families are an error.

    A PEFT adapter folder (``adapter_config.json``) loads as its base + the adapter, merged
    (:mod:`core.adapters`; the base's weight hash is checked against the adapter's manifest).
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}: expected one of {', '.join(TASKS)}")
    path = resolve_model_path(name, offline=offline)  # a model that is not there fails before heavy imports
    from .adapters import is_adapter_dir, load_adapter_model

    if is_adapter_dir(path):  # base + PEFT adapter (checked against its manifest), merged
        return load_adapter_model(path, task=task, offline=offline, dtype=dtype, **kwargs)
    import torch
    from transformers import (
        AutoConfig,
        AutoModel,
        AutoModelForCausalLM,
        AutoModelForTokenClassification,
    )

    local = is_offline(offline) or path != str(name)
    with _loading(str(name), "config.json"):
        config = AutoConfig.from_pretrained(path, local_files_only=local)
    check_family(config)
    cls = {
        "base": AutoModel,
        "token-classification": AutoModelForTokenClassification,
        "causal-lm": AutoModelForCausalLM,
    }[task]
    if task == "base" and config.model_type == "bert":
        kwargs.setdefault("add_pooling_layer", False)
    with _loading(str(name), "weights"):
        model = from_pretrained_checked(cls, path, str(name), local_files_only=local, dtype=dtype or torch.float32,
                                        **kwargs)
    model.eval()
    return model


class _DropLoadReport(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "LOAD REPORT" not in str(record.msg)


def from_pretrained_checked(cls, path: str, name: str, **kwargs):
    """``cls.from_pretrained(path, **kwargs)`` without transformers 5's coloured multi-line
    LOAD REPORT in the log (a table of ANSI-styled keys, written to every log file of a
    fine-tuning, where the classifier head is new by design). What it reported is checked
    here instead: weights of the model's BODY (under ``base_model_prefix``) that the
    checkpoint lacks, or whose shapes differ, are one :class:`UserWarning` naming the first
    few; a missing task head (the part outside the body) is expected and silent, and so
    are unused checkpoint weights (a pretraining head, a pooler)."""
    import warnings

    log = logging.getLogger("transformers.modeling_utils")
    drop = _DropLoadReport()
    log.addFilter(drop)
    try:
        model, info = cls.from_pretrained(path, output_loading_info=True, **kwargs)
    finally:
        log.removeFilter(drop)
    prefix = getattr(model, "base_model_prefix", "") or ""
    has_head = bool(prefix) and hasattr(model, prefix) and getattr(model, prefix) is not model
    body = [k for k in info.get("missing_keys", ()) if not has_head or k.startswith(prefix + ".")]
    mismatched = [k[0] if isinstance(k, tuple | list) else k for k in info.get("mismatched_keys", ())]
    for what, keys in (("missing from the checkpoint (initialised at random)", body),
                       ("of another shape in the checkpoint (initialised at random)", mismatched)):
        if keys:
            shown = ", ".join(sorted(keys)[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")
            warnings.warn(f"{name}: {len(keys)} weight(s) of the model {what}: {shown}", UserWarning, stacklevel=3)
    return model


def load(name: str | Path, *, offline: bool | None = None, **kwargs):
    """``(model, tokenizer)`` for ``name``."""
    return load_model(name, offline=offline, **kwargs), load_tokenizer(name, offline=offline)
