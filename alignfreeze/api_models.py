"""Models and data for the facade: what a notebook passes as "a model" and "the data".

A model is given as

- a name or a folder (``"e5-small"``, ``"runs/front-42"``, ``"xlm-roberta-base"``): loaded
  with :func:`core.models.load` when a verb runs (prepared names are prepared on first use);
- an already loaded ``(model, tokenizer)`` pair (e.g. from :func:`load_model` or
  :func:`tiny_model`), used as it is and never modified.

Several models are a list of those (shown under the names the CLI would give them), or a
dict ``{display name: model}`` (shown under the keys, in the given order). The display name
is what the ``model`` column of every table holds, and what figures show.

Data are paths: :func:`treebanks` and :func:`dictionaries` find one file per language in a
UD release / MUSE folder, or in the demo corpus embedded in the package (``core/fixtures``:
100 parallel sentences in en, fr, de, ru, ar, hi, zh with UPOS tags, 150 English training
sentences, MUSE-format dictionaries; all written for this project).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEMO_LANGS = ("en", "fr", "de", "ru", "ar", "hi", "zh")
"""Languages of the embedded demo corpus (``core/fixtures/*_afdemo-ud-test.conllu``)."""


@contextlib.contextmanager
def quiet_transformers():
    """transformers' own progress bars (weights loaded, shards written) off inside the block,
    as they were after it: our verbs say what they load and write."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()


def load_model(name: str | Path, *, task: str = "base", offline: bool | None = None):
    """``(model, tokenizer)`` of a prepared name, a local folder or a hub name, in eval mode
    (:func:`core.models.load`; ``task``: ``base`` | ``token-classification`` | ``causal-lm``).
    Load once and pass the pair to several verbs to avoid loading it again.

    Raises FileNotFoundError / ValueError (one line) for a model that is not there or a
    family outside the architecture table (``core/arch.py``).
    """
    from core.models import load

    with quiet_transformers():
        return load(name, task=task, offline=offline)


def tiny_model(family: str = "bert", *, task: str = "base", seed: int = 0, **config):
    """``(model, tokenizer)``: a tiny RANDOM model of ``family`` (bert, xlm-roberta,
    distilbert, gpt2, llama, qwen2; hidden 32, 2 layers unless ``config`` says e.g.
    ``layers=4``) with a tokenizer trained on the spot (:func:`core.tiny.tiny_model`). For
    trying a notebook in seconds: its numbers mean nothing about real models."""
    from core.tiny import tiny_model as _tiny

    model, tok = _tiny(family, task=task, seed=seed, **config)
    model.name_or_path = model.config._name_or_path = f"tiny-random-{family}"  # the name tables show for it
    if getattr(model, "pooler", None) is not None:
        model.pooler = None  # like the prepared encoders: no pooler (a saved copy reloads without unused weights)
    return model, tok


def _demo_folder() -> Path:
    from core import FIXTURES

    return FIXTURES


def treebanks(langs, ud_dir: str | Path | None = None, *, split: str = "test",
              name: str | None = None) -> dict[str, Path]:
    """One CoNLL-U file per language: ``{lang: path}`` in the order of ``langs``.

    Without ``ud_dir``: the embedded demo corpus (``{lang}_afdemo-ud-{split}.conllu``; split
    ``test`` for the 7 languages of :data:`DEMO_LANGS`, ``train`` for English). With
    ``ud_dir`` (a UD release or any folder of ``{lang}_{treebank}-ud-{split}.conllu`` files,
    searched recursively): the one file of each language, or of treebank ``name`` (e.g.
    ``"pud"``) when a language has several.

    Raises FileNotFoundError naming the language and the pattern when no file matches, and
    ValueError listing the candidates when several do (give ``name``).
    """
    from core.conllu import find_treebanks

    langs = [langs] if isinstance(langs, str) else list(langs)
    folder = Path(ud_dir) if ud_dir is not None else _demo_folder()
    treebank = name if ud_dir is not None else (name or "afdemo")
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder (expected a UD release or a folder of "
                                f"LANG_TREEBANK-ud-SPLIT.conllu files)")
    out = {}
    for lang in langs:
        try:
            found = find_treebanks(folder, lang, split)
        except FileNotFoundError:
            found = []
        if treebank:
            found = [f for f in found if f.name.startswith(f"{lang}_{treebank}-ud-")]
        if not found:
            want = f"{lang}_{treebank or '*'}-ud-{split}.conllu"
            raise FileNotFoundError(f"{folder}: no treebank {want} for language {lang!r}")
        if len(found) > 1:
            raise ValueError(f"{folder}: {len(found)} {split} treebanks for {lang!r} "
                             f"({', '.join(f.name for f in found)}); choose one with name= (e.g. name='pud')")
        out[lang] = found[0]
    return out


def dictionaries(langs, muse_dir: str | Path | None = None, *, src: str = "en") -> dict[str, Path]:
    """One bilingual dictionary (MUSE format: ``source target`` per line) per target
    language: ``{lang: path}``. Without ``muse_dir``: the demo corpus's
    ``{src}-{lang}.afdemo.txt``; with it: ``{muse_dir}/{src}-{lang}.txt``. Raises
    FileNotFoundError naming the missing file."""
    langs = [langs] if isinstance(langs, str) else list(langs)
    folder = Path(muse_dir) if muse_dir is not None else _demo_folder()
    out = {}
    for lang in langs:
        f = folder / (f"{src}-{lang}.txt" if muse_dir is not None else f"{src}-{lang}.afdemo.txt")
        if not f.is_file():
            raise FileNotFoundError(f"{f}: no such dictionary ({src}-{lang}, MUSE format)")
        out[lang] = f
    return out


# ----------------------------------------------------------------------------- model specs
@dataclass
class Named:
    """One model of a verb's call: its display ``name``, the ``source`` it was given as (a
    name or folder; None for a loaded pair) and, once loaded, ``model`` and ``tokenizer``."""

    name: str
    source: str | None
    model: Any = None
    tokenizer: Any = None

    def load(self, task: str = "base") -> Named:
        if self.model is None:
            self.model, self.tokenizer = load_model(self.source, task=task)
        return self


def is_pair(x) -> bool:
    """True for a loaded ``(model, tokenizer)`` pair (not a pair of names)."""
    return isinstance(x, tuple) and len(x) == 2 and not isinstance(x[0], str | Path)


def _one(spec, what: str) -> tuple[str | None, Any]:
    """``(source, pair)`` of one model spec; raises TypeError for anything else."""
    if isinstance(spec, str | Path):
        if not str(spec).strip():
            raise ValueError(f"{what}: an empty model name")
        from core.models import check_model_name

        check_model_name(spec)  # a local folder that is not there: one line now, not after the work
        return str(spec), None
    if is_pair(spec):
        return None, spec
    raise TypeError(f"{what}: expected a model name or folder, or a loaded (model, tokenizer) pair; "
                    f"got {type(spec).__name__}")


def _pair_label(pair) -> str:
    from core.names import default_name

    path = getattr(pair[0], "name_or_path", "") or getattr(getattr(pair[0], "config", None), "_name_or_path", "")
    return default_name(path) if path else "model"


def named_models(models, *, what: str = "models", label: Callable[[str], str] | None = None) -> list[Named]:
    """The models of a call, in order, with unique display names.

    ``models``: one model (a name/folder or a loaded pair), a list of them, or a dict
    ``{display name: model}``. Without a dict, a name/folder is shown as ``label(source)``
    (the CLI's naming, :func:`core.names.default_name`: the checkpoint manifest's name such as
    ``front-s42``, else the folder's); a loaded pair as its ``name_or_path``'s, or ``model``.

    Raises ValueError when two models would share a display name (pass a dict) and for an
    empty collection; TypeError for a value that is not a model; FileNotFoundError (one
    line, :func:`core.models.check_model_name`) for a local folder that is not there, before
    anything is loaded.
    """
    label = label or (lambda s: s)
    if isinstance(models, Mapping):
        items = []
        for k, v in models.items():
            if not isinstance(k, str) or not k:
                raise ValueError(f"{what}: display names must be non-empty strings, got {k!r}")
            items.append((k, *_one(v, f"{what}[{k!r}]")))
    else:
        seq = list(models) if isinstance(models, list | tuple) and not is_pair(models) else [models]
        items = []
        for v in seq:
            source, pair = _one(v, what)
            name = label(source) if source is not None else _pair_label(pair)
            items.append((name, source, pair))
    if not items:
        raise ValueError(f"{what}: no model given")
    names = [n for n, _, _ in items]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"{what}: two models would both be shown as {dup[0]!r}; give display names: "
                         f"{{'name A': model_a, 'name B': model_b}}")
    return [Named(n, s, *(p if p is not None else (None, None))) for n, s, p in items]


def one_model(model, *, what: str = "model", label: Callable[[str], str] | None = None) -> Named:
    """The single model of a call (a spec, or a one-entry dict naming it)."""
    found = named_models(model, what=what, label=label)
    if len(found) != 1:
        raise ValueError(f"{what}: expected one model, got {len(found)} ({', '.join(n.name for n in found)})")
    return found[0]


def specs(given, what: str = "treebanks") -> list[str]:
    """The treebank specs of a call: paths, globs or UD folders, each with an optional
    selection (``fr.conllu@1:500``, docs/data.md), or the values of a ``{lang: path}`` dict."""
    if given is None:
        raise ValueError(f"{what}: no file given")
    if isinstance(given, Mapping):
        given = list(given.values())
    given = [given] if isinstance(given, str | Path) else list(given)
    if not given:
        raise ValueError(f"{what}: no file given")
    return [str(s) for s in given]


def files(given, what: str = "treebanks") -> list[Path]:
    """CoNLL-U files of :func:`specs` (:func:`core.inputs.treebank_files`: selections parsed)."""
    from core.inputs import treebank_files

    return [f for f, _ in treebank_files(specs(given, what))]
