"""Names that survive into tables and figures: display names of models, languages of data.

Models. Every command that takes models takes ``NAME=PATH`` as well as ``PATH``
(:func:`named_models`). Without a name, :func:`default_name` reads the checkpoint's
manifest: its ``name`` (the grid writes its cell's), else a realignment's strategy and seed
(``front-s42``; freeze ``none`` is ``full``), a fine-tuned model's parent name plus its task
(``front-s42+upos``), a LoRA run's task, layer and seed, a prepared model's name; a folder
without a manifest is named after the folder, a hub or prepared name is its own name. Two
models of one command with the same name are refused (name them with ``NAME=PATH``).

Languages. The ``src``/``tgt`` columns hold language codes read from the data, never the
words ``src`` and ``tgt`` (:func:`parallel_langs`): a UD file name (``fr_pud-ud-test.conllu``),
a code as the last part of a file name before its extension (``corpus.fr``,
``corpus.fr.txt``, ``fr.txt``, ``fr_news.txt``), ``SRC-TGT`` in the name of a two-language
file (``dict.en-fr.tsv``, ``en-fr.jsonl``), ``hf:DATASET:SRC-TGT``, or the ``src_lang`` /
``tgt_lang`` of word-pair records. Codes outside a UD name must be ISO 639-1 (two letters),
so ``src.txt`` or ``train.tsv`` name no language: then :class:`LanguageUnknown` says how to
name the file (or which option gives the codes).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

# ISO 639-1: the two-letter language codes
ISO639_1 = frozenset("""
aa ab ae af ak am an ar as av ay az ba be bg bh bi bm bn bo br bs ca ce ch co cr cs cu cv cy da de dv dz ee el en
eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho hr ht hu hy hz ia id ie ig ii ik io is it iu ja jv
ka kg ki kj kk kl km kn ko kr ks ku kv kw ky la lb lg li ln lo lt lu lv mg mh mi mk ml mn mr ms mt my na nb nd ne
ng nl nn no nr nv ny oc oj om or os pa pi pl ps pt qu rm rn ro ru rw sa sc sd se sg si sk sl sm sn so sq sr ss st
su sv sw ta te tg th ti tk tl tn to tr ts tt tw ty ug uk ur uz ve vi vo wa wo xh yi yo za zh zu
""".split())
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
_UD = re.compile(r"^([a-z]{2,3})_[^.]+\.conllu$", re.IGNORECASE)
_PAIR = re.compile(r"(?<![A-Za-z])([a-z]{2})-([a-z]{2})(?![A-Za-z])")


class LanguageUnknown(ValueError):
    """A language the data does not name; the message says how to name it."""


# ----------------------------------------------------------------------------- models

def split_named(arg: str) -> tuple[str | None, str]:
    """``NAME=PATH`` -> ``(NAME, PATH)``; ``PATH`` -> ``(None, PATH)``.

    A name is letters, digits and ``_ . + -``. An argument that exists as written is a path
    (a folder whose name holds ``=``), unless ``PATH`` after the ``=`` exists too: ambiguous,
    refused.
    """
    name, eq, path = arg.partition("=")
    if not eq:
        return None, arg
    named = bool(NAME.match(name)) and bool(path)
    if Path(arg).exists():
        if named and Path(path).exists():
            raise ValueError(f"{arg}: ambiguous: a folder of that name exists, and so does {path} (named {name!r}); "
                             "rename the folder whose name holds '='")
        return None, arg
    if not named:
        raise ValueError(f"{arg}: expected NAME=PATH with a NAME of letters, digits, '_', '.', '+' or '-' and a "
                         "model after the '=' (or a model without a name)")
    return name, path


def _strategy(freeze: str | None) -> str:
    return "full" if freeze in (None, "", "none") else str(freeze)


def name_from_manifest(m: dict) -> str | None:
    """The display name a manifest gives its checkpoint (module doc), or None."""
    if m.get("name"):
        return str(m["name"])
    kind, cfg = m.get("kind"), m.get("config") or {}
    seed = m.get("seed", cfg.get("seed"))
    if kind == "realign":
        return f"{_strategy(cfg.get('freeze'))}-s{seed}"
    if kind == "finetune":
        parent = m.get("parent") or {}
        start = parent.get("name")
        if start is None and parent.get("path") and Path(parent["path"]).is_dir():
            start = default_name(parent["path"])
        if start is None:
            start = default_name((m.get("base_model") or {}).get("name") or cfg.get("model") or "model")
        return f"{start}+{m.get('task', cfg.get('task', 'upos'))}"
    if kind in ("midalign", "midalign-alignment"):
        layer = (m.get("layer") or {}).get("layer", cfg.get("layer"))
        task = "align" if kind == "midalign-alignment" else m.get("task", cfg.get("task"))
        return f"{task}-K{layer}-s{seed}"
    return None


def default_name(model: str | Path) -> str:
    """Display name of a model argument without ``NAME=`` (module doc)."""
    from .manifest import read_manifest

    s = str(model).rstrip("/")
    p = Path(s)
    if p.is_dir():
        m = read_manifest(p)
        return (name_from_manifest(m) if m else None) or p.name or s
    return s  # a hub or prepared name is its own name


def named_models(args: Iterable[str], names: Sequence[str] | None = None) -> list[tuple[str, str]]:
    """``(display name, model)`` for each ``--model`` argument (``NAME=PATH`` or ``PATH``);
    ``names`` (a ``--name`` option) overrides them in order. One name for two different models
    is refused (the same model given twice keeps its name)."""
    args = list(args)
    if names is not None and len(names) != len(args):
        raise ValueError(f"--name given {len(names)} time(s) for {len(args)} model(s): expected one name per model")
    out = []
    for k, a in enumerate(args):
        name, path = split_named(a)
        if names is not None:
            if not NAME.match(names[k]):
                raise ValueError(f"--name {names[k]!r}: expected letters, digits, '_', '.', '+' or '-'")
            name = names[k]
        out.append((name or default_name(path), path))
    seen: dict[str, str] = {}
    for name, path in out:
        if name in seen and seen[name] != path:  # one model given twice (CKA of A with A) keeps its name
            raise ValueError(f"two models are named {name!r} ({seen[name]} and {path}): name them with NAME=PATH, "
                             "e.g. --model full=runs/a/realigned")
        seen[name] = path
    return out


# ----------------------------------------------------------------------------- languages

def file_lang(path: str | Path) -> str | None:
    """The language a one-language file's name gives (module doc), or None."""
    name = Path(str(path)).name
    m = _UD.match(name)
    if m:
        return m.group(1).lower()
    parts = name.split(".")
    if len(parts) >= 2 and parts[-1] in ISO639_1:  # corpus.fr
        return parts[-1]
    if len(parts) >= 3 and parts[-2] in ISO639_1:  # corpus.fr.txt
        return parts[-2]
    first = parts[0].split("_")[0]
    if first in ISO639_1:  # fr.txt, fr_news.txt
        return first
    return None


def pair_lang(name: str) -> tuple[str, str] | None:
    """``(SRC, TGT)`` from a two-language name (``en-fr.tsv``, ``hf:opus-100:en-fr``), or None."""
    if name.startswith("hf:"):
        cfg = name.rsplit(":", 1)[-1]
        s, dash, t = cfg.partition("-")
        return (s, t) if dash and s and t else None
    found = [(a, b) for a, b in _PAIR.findall(Path(name).name) if a in ISO639_1 and b in ISO639_1]
    return found[-1] if found else None


def parallel_langs(src: str | Path | None, tgt: str | Path | None = None, records: Iterable[dict] | None = None,
                   *, given: Sequence[str] | None = None, option: str = "--langs SRC TGT") -> tuple[str, str]:
    """Languages of a parallel input: ``given`` (a command's option) wins; else word-pair
    ``records`` that all carry the same ``src_lang``/``tgt_lang``; else the file names.

    Raises:
        LanguageUnknown: no language can be told; the message names the file and ``option``.
    """
    if given:
        if len(given) != 2 or not all(NAME.match(g) for g in given):
            raise ValueError(f"{option}: expected two language codes, got {list(given)}")
        return given[0], given[1]
    if records is not None:
        langs = {(r.get("src_lang"), r.get("tgt_lang")) for r in records}
        if len(langs) == 1 and None not in next(iter(langs)):
            return next(iter(langs))
        if len(langs) > 1:
            raise LanguageUnknown(f"{src}: the records name several language pairs {sorted(map(str, langs))}: "
                                  f"expected one (or pass {option})")
    hint = ("expected a UD name (xx_*.conllu), a code before the extension (corpus.xx, corpus.xx.txt, xx.txt) "
            f"or SRC-TGT in a two-language file's name (data.en-fr.tsv); or pass {option}")
    if tgt is None:
        pair = pair_lang(str(src))
        if pair is None:
            raise LanguageUnknown(f"{src}: the name does not say its two languages: {hint}")
        return pair
    langs = []
    for f in (src, tgt):
        code = file_lang(f)
        if code is None:
            raise LanguageUnknown(f"{f}: the name does not say its language: {hint}")
        langs.append(code)
    return langs[0], langs[1]
