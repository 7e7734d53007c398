"""Realignment from a notebook: word pairs (``alignfreeze pairs``) and a realigned
checkpoint (``alignfreeze realign``), so that the arms of the AlignFreeze protocol can be
made where they are analysed. A finished checkpoint is reused only when its manifest says
it was made by the very same run (config, base weights and data hashes); any difference is
an error that names it, never a silent reuse."""

from __future__ import annotations

import contextlib
import copy
import sys
from pathlib import Path

from .api_models import one_model, quiet_transformers

STRATEGIES = {"baseline": None, "full": "none", "front": "front", "back": "back"}
"""The four arms of the AlignFreeze protocol and their realignment freeze specs: baseline
= no realignment; full = nothing frozen; front / back = the lower / upper half of the blocks
frozen during realignment (the embeddings are not frozen by ``front``)."""


def word_pairs(src, tgt=None, *, out, aligner: str = "dictionary", dictionary=None, model=None, layer: int = 8,
               pooling: str = "first", threshold: float = 1e-3, limit: int | None = None, langs=None) -> Path:
    """Word pairs of sentence-aligned text, written to ``out`` (JSONL, atomically), as
    ``alignfreeze pairs`` does; returns ``out``.

    ``src``/``tgt``: two CoNLL-U files joined on ``sent_id``, line-aligned text, or one TSV
    (``tgt=None``). ``aligner``: ``dictionary`` (``dictionary``: a MUSE file; only
    unambiguous one-to-one matches), ``eflomal``, or ``similarity`` (``model`` at
    ``layer``, argmax both ways, softmax ``threshold``). Only one-to-one links between
    different strings are kept (:func:`realign.pairs.extract_pairs`). ``src`` (or ``tgt``)
    may carry a selection of the pairs (``en.conllu@1:500``); the records carry the language
    codes of the file names (or ``langs=(SRC, TGT)``). The counts (pairs kept, links,
    coverage) are printed. Raises ValueError when no link is found.
    """
    from core.inputs import select_parallel
    from core.names import LanguageUnknown, parallel_langs
    from core.selection import parse_spec
    from realign.pairs import extract_pairs, write_pairs

    pairs = select_parallel(src, tgt, limit=limit).items  # SRC@SELECTION as the CLI (docs/data.md)
    try:  # the records carry the languages the file names give, as `alignfreeze pairs` writes them
        langs = parallel_langs(parse_spec(src).path, parse_spec(tgt).path if tgt is not None else None, given=langs)
    except LanguageUnknown as e:
        langs = None
        print(f"alignfreeze: note: no language codes in the records ({e})", file=sys.stderr)
    m = tok = None
    if aligner == "similarity":
        if model is None:
            raise ValueError("word_pairs: the similarity aligner needs model= (and layer=)")
        named = one_model(model).load()
        m, tok = named.model, named.tokenizer
    elif aligner == "dictionary" and not dictionary:
        raise ValueError("word_pairs: the dictionary aligner needs dictionary= (MUSE format: 'source target' per line)")
    records, summary = extract_pairs(pairs, aligner, dictionary=dictionary, model=m, tokenizer=tok, layer=layer,
                                     pooling=pooling, threshold=threshold, progress=False, langs=langs)
    write_pairs(out, records)
    print(f"{out}: {summary['pairs_kept']}/{summary['sentence_pairs']} sentence pairs kept, {summary['links']} links "
          f"({summary['links_per_sentence']:.2f} per sentence), coverage src {summary['src_coverage']:.1%} "
          f"tgt {summary['tgt_coverage']:.1%}")
    return Path(out)


def _same_run(out: Path, cfg, base_hash: str) -> None:
    """Refuse a finished ``out`` unless it is this very run; the message names what differs."""
    from core.config import to_dict
    from core.io import file_sha256
    from core.manifest import read_manifest

    man = read_manifest(out) or {}
    want = to_dict(cfg)
    have = man.get("config") or {}
    diff = sorted(k for k in set(want) | set(have) if want.get(k) != have.get(k))
    if diff:
        shown = "; ".join(f"{k}: {have.get(k)!r} there, {want.get(k)!r} asked" for k in diff[:3])
        raise ValueError(f"{out}: holds a finished realignment of another configuration ({shown}); "
                         "choose another out=, or delete it")
    if (man.get("base_model") or {}).get("weight_hash") != base_hash:
        raise ValueError(f"{out}: holds a realignment of another base model (weight hash differs); choose another out=")
    for entry in man.get("data_files") or []:
        p = Path(entry["path"])
        if not p.is_file() or file_sha256(p) != entry["sha256"]:
            raise ValueError(f"{out}: holds a realignment on {p} as it was then; that file has changed or gone since; "
                             "choose another out=")


def realign(model, pairs, *, out, freeze: str = "none", steps: int = 0, seed: int = 42, progress: bool = True,
            **config) -> Path:
    """Realign ``model`` on word ``pairs`` with ``freeze``; returns the checkpoint folder
    ``out`` (model + tokenizer + manifest.json, written atomically), as ``alignfreeze
    realign`` does (:func:`realign.train.realign`).

    Loss (default): word-level InfoNCE with strong negatives at tau = 0.1 on the last layer
    (Gaschi et al. 2023; docs/realign.md). ``freeze``: ``none`` (full), ``front``, ``back``,
    ``front+emb``, ``back+emb`` or layers such as ``emb,1-3`` (:data:`STRATEGIES` maps the
    protocol's arm names to these). ``steps``: optimizer steps (0 = one pass over the
    pairs). Every other option is a field of :class:`realign.config.RealignConfig`
    (``batch_size``, ``lr``, ``layers``, ``loss``, ...).

    ``model``: a name/folder, or a loaded pair, which is copied first (the caller's model
    is never trained in place); its display name (a one-entry dict) is the manifest's base
    name. A finished ``out`` made by the same run (same config, base weights and data) is
    reused and said so; any other finished ``out`` is a ValueError naming the difference.
    """
    from core.config import from_dict
    from core.manifest import MANIFEST, base_weight_hash
    from realign.config import RealignConfig
    from realign.train import realign as _realign

    if freeze is None:
        raise ValueError("realign: freeze=None is the baseline arm: no realignment to run (use the model itself)")
    files = [pairs] if isinstance(pairs, str | Path) else list(pairs)
    m = one_model(model)
    cfg = from_dict(RealignConfig, {**config, "model": m.source or m.name, "pairs": tuple(str(p) for p in files),
                                    "out": str(out), "freeze": freeze, "steps": steps, "seed": seed}).validate()
    m.load()
    out = Path(out)
    if (out / MANIFEST).is_file():
        _same_run(out, cfg, base_weight_hash(m.model))
        print(f"{out}: reused (a finished realignment of the same configuration, base and data)", file=sys.stderr)
        return out
    trained = copy.deepcopy(m.model) if m.source is None else m.model
    with contextlib.nullcontext() if progress else quiet_transformers():
        return Path(_realign(cfg, model=trained, tokenizer=m.tokenizer, progress=progress))
