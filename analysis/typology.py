"""Typology: URIEL distances (``lang2vec``) against per-language gains.

The installed ``lang2vec`` exposes URIEL feature vectors (``get_features``) but no
``distance`` function, so distances are computed as URIEL defines them: the cosine
distance between two languages' vectors of a feature set —

- ``syntactic``: ``syntax_knn``; ``phonological``: ``phonology_knn``;
  ``inventory``: ``inventory_knn``; ``featural``: the three concatenated;
- ``genetic``: ``fam`` (membership in language families);
- ``geographic``: ``geo`` (distances to fixed points on the globe).

lang2vec loads slowly (seconds per feature set), so vectors are cached as JSON
(``$ALIGNFREEZE_CACHE`` or ``~/.cache/alignfreeze``/``uriel.json``).

Language codes: URIEL files some languages under the ISO 639-3 macrolanguage and others under
an individual language (Arabic ``arb``, not ``ara``; Latvian ``lav``, not ``lvs``). :data:`ISO3`
maps UD's two-letter codes to the code with data; a code URIEL lacks, or holds without data in
a feature set (an all-zero vector would make the cosine undefined), is a ``KeyError`` that names
the code and what to pass instead -- never a NaN distance.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

# ISO 639-1 -> the ISO 639-3 code under which URIEL (lang2vec) files the language with data
# in every feature set of FEATURE_SETS. Where ISO maps to a macrolanguage that URIEL does not
# hold (ar -> ara, fa -> fas, zh -> zho), the individual language is used (arb, pes, cmn);
# where URIEL holds the macrolanguage but not the individual one, or the individual one
# without data (lv: lav, not lvs; et: est, not ekk; no/nb: nor, since nob has no family
# data), the macrolanguage. tests/test_typology_codes.py checks every entry against lang2vec.
ISO3 = {
    "ar": "arb", "cs": "ces", "de": "deu", "en": "eng", "es": "spa", "fa": "pes", "fi": "fin",
    "fr": "fra", "gl": "glg", "he": "heb", "hi": "hin", "id": "ind", "is": "isl", "it": "ita",
    "ja": "jpn", "ko": "kor", "nl": "nld", "pl": "pol", "pt": "por", "ru": "rus", "sv": "swe",
    "th": "tha", "tr": "tur", "uk": "ukr", "ur": "urd", "vi": "vie", "zh": "cmn", "bg": "bul",
    "ca": "cat", "da": "dan", "el": "ell", "et": "est", "eu": "eus", "hu": "hun", "lt": "lit",
    "lv": "lav", "ro": "ron", "sk": "slk", "sl": "slv", "sr": "srp", "ta": "tam", "te": "tel",
    "mr": "mar", "af": "afr", "hy": "hye", "wo": "wol", "yo": "yor", "no": "nor", "nb": "nor",
}
# ISO 639-3 macrolanguages -> their individual languages, for the "what to pass" of an error:
# URIEL files some languages under one, some under the other.
MACROLANGUAGES = {
    "ara": ("arb",), "fas": ("pes", "prs"), "zho": ("cmn", "yue"), "msa": ("zsm", "ind"),
    "nor": ("nob", "nno"), "lav": ("lvs", "ltg"), "est": ("ekk", "vro"), "sqi": ("als", "aln"),
    "aze": ("azj", "azb"), "uzb": ("uzn", "uzs"), "swa": ("swh", "swc"), "mon": ("khk",),
    "grn": ("gug",), "que": ("quz", "quy"), "ful": ("fuv", "fuc"), "orm": ("gaz",),
    "pus": ("pbt", "pst", "pbu"), "kur": ("kmr", "ckb"), "yid": ("ydd",), "nep": ("npi",),
    "ori": ("ory",), "hbs": ("srp", "hrv", "bos"), "mlg": ("plt",), "iku": ("ike",),
    "aka": ("twi", "fat"), "kok": ("gom", "knn"), "zza": ("diq", "kiu"),
}
# Codes of ISO3 that URIEL holds without data in a feature set, and why (no other code helps).
NO_DATA = {("eus", "fam"): "Basque is a language isolate: it belongs to no family, so the genetic "
                           "distance is undefined"}
FEATURE_SETS = {
    "syntactic": ("syntax_knn",), "phonological": ("phonology_knn",), "inventory": ("inventory_knn",),
    "featural": ("syntax_knn", "phonology_knn", "inventory_knn"), "genetic": ("fam",), "geographic": ("geo",),
}


def iso3(lang: str) -> str:
    """ISO 639-3 code of a UD language code (639-1 via :data:`ISO3`, or already 639-3).

    Raises:
        KeyError: a two-letter code not in :data:`ISO3` (the message says what to pass).
    """
    if len(lang) == 3:
        return lang
    if lang not in ISO3:
        raise KeyError(f"no ISO 639-3 code known for language {lang!r}: pass its ISO 639-3 code as URIEL files it "
                       "(e.g. 'swh' for Swahili, 'zsm' for Malay), or add it to analysis.typology.ISO3")
    return ISO3[lang]


def related_codes(code: str) -> list[str]:
    """The macrolanguage of ``code`` and its other members, or the members of a macrolanguage."""
    if code in MACROLANGUAGES:
        return list(MACROLANGUAGES[code])
    for macro, members in MACROLANGUAGES.items():
        if code in members:
            return [macro] + [m for m in members if m != code]
    return []


def has_data(vector: Sequence[float]) -> bool:
    """A URIEL vector with at least one known, non-zero value (all-zero = no data, as for
    ``fam`` of a language URIEL places in no family)."""
    v = np.asarray(vector, dtype=np.float64)
    return bool(np.any(np.isfinite(v) & (v != 0)))


def _lang2vec():
    try:
        import lang2vec.lang2vec as l2v
    except ImportError as e:
        raise ImportError(f"typology needs the lang2vec package (and setuptools<81): {e}") from e
    return l2v


@functools.cache
def _uriel_languages() -> frozenset[str]:
    """The codes URIEL holds (lang2vec reads a large file for it: once per process)."""
    return frozenset(_lang2vec().available_uriel_languages())


def _fetch(codes, feature_set: str, cache: dict) -> set[str]:
    """Add to ``cache`` the vectors of the ``codes`` URIEL holds (one lang2vec call); return
    the codes URIEL does not hold."""
    l2v = _lang2vec()
    known = _uriel_languages()
    todo = sorted(c for c in set(codes) if c in known and f"{feature_set}/{c}" not in cache)
    if todo:
        feats = l2v.get_features(todo, feature_set)
        for c in todo:
            cache[f"{feature_set}/{c}"] = [float("nan") if x == "--" else float(x) for x in feats[c]]
    return set(codes) - known


def _what_to_pass(lang: str, code: str, feature_set: str, cache: dict) -> str:
    kinds = " and ".join(repr(k) for k, sets in FEATURE_SETS.items() if feature_set in sets)
    if (code, feature_set) in NO_DATA:
        return f"{NO_DATA[code, feature_set]}; leave {kinds} out of the distances"
    related = related_codes(code)
    _fetch(related, feature_set, cache)
    alt = [c for c in related if has_data(cache.get(f"{feature_set}/{c}", []))]
    shown = f"{lang!r} ({code})" if lang != code else repr(code)
    if alt:
        return f"URIEL files this language under a related code: pass {' or '.join(map(repr, alt))} instead of {shown}"
    return f"no related code has it either: leave {kinds} out for {shown}"


def _cache_file(cache_dir: str | Path | None) -> Path:
    d = Path(cache_dir or os.environ.get("ALIGNFREEZE_CACHE") or Path.home() / ".cache" / "alignfreeze")
    return d / "uriel.json"


def uriel_vectors(langs: Sequence[str], feature_set: str, *, cache_dir: str | Path | None = None) -> dict[str, np.ndarray]:
    """URIEL vectors of ``langs`` (639-1 or 639-3) for one lang2vec feature set, cached.

    Raises:
        KeyError: a code URIEL does not hold, or holds without data in ``feature_set`` (all
            values missing or zero); the message names the code and what to pass instead.
    """
    from core.io import atomic_write_json

    cf = _cache_file(cache_dir)
    cache = json.loads(cf.read_text()) if cf.is_file() else {}
    n_cached = len(cache)
    codes = {lang: iso3(lang) for lang in langs}
    try:
        unknown = _fetch(codes.values(), feature_set, cache) if any(
            f"{feature_set}/{c}" not in cache for c in codes.values()) else set()
        for lang, c in codes.items():  # checked on every call: an old cache may hold an empty vector
            if c in unknown:
                raise KeyError(f"lang2vec has no URIEL entry for {c!r} (language {lang!r}): "
                               + _what_to_pass(lang, c, feature_set, cache))
            if not has_data(cache[f"{feature_set}/{c}"]):
                raise KeyError(f"lang2vec has no {feature_set!r} data for {c!r} (language {lang!r}, all values "
                               "missing or zero): " + _what_to_pass(lang, c, feature_set, cache))
    finally:
        if len(cache) > n_cached:
            atomic_write_json(cf, cache)
    return {lang: np.asarray(cache[f"{feature_set}/{c}"], dtype=np.float64) for lang, c in codes.items()}


def _cosine_distance(u: np.ndarray, v: np.ndarray) -> float:
    ok = np.isfinite(u) & np.isfinite(v)
    u, v = u[ok], v[ok]
    nu, nv = np.linalg.norm(u), np.linalg.norm(v)
    if nu == 0 or nv == 0:
        return float("nan")
    return float(1.0 - u @ v / (nu * nv))


def uriel_distance(lang_a: str, lang_b: str, kind: str = "syntactic", *,
                   cache_dir: str | Path | None = None) -> float:
    """URIEL distance (cosine, 0..1) between two languages for ``kind`` in :data:`FEATURE_SETS`."""
    if kind not in FEATURE_SETS:
        raise ValueError(f"unknown distance {kind!r}: expected one of {', '.join(FEATURE_SETS)}")
    va, vb = [], []
    for fs in FEATURE_SETS[kind]:
        vec = uriel_vectors([lang_a, lang_b], fs, cache_dir=cache_dir)
        va.append(vec[lang_a])
        vb.append(vec[lang_b])
    return _cosine_distance(np.concatenate(va), np.concatenate(vb))


def gain_vs_distance(gains: pd.DataFrame, reference: str, kinds: Sequence[str] = ("syntactic", "genetic", "geographic"),
                     *, cache_dir: str | Path | None = None) -> pd.DataFrame:
    """Tidy ``lang, gain, feature, distance`` from a ``lang, gain`` table and a reference
    (training) language."""
    if not {"lang", "gain"} <= set(gains.columns):
        raise ValueError(f"gains table needs columns lang, gain; has {list(gains.columns)}")
    rows = []
    for kind in kinds:
        for r in gains.itertuples():
            rows.append({"lang": r.lang, "gain": r.gain, "feature": kind,
                         "distance": uriel_distance(reference, r.lang, kind, cache_dir=cache_dir)})
    return pd.DataFrame(rows)


def correlate(table: pd.DataFrame) -> pd.DataFrame:
    """Pearson and Spearman correlation of gain with distance, per feature set."""
    from scipy import stats

    rows = []
    for kind, g in table.groupby("feature") if "feature" in table.columns else [("all", table)]:
        g = g.dropna(subset=["gain", "distance"])
        if len(g) < 3 or g["distance"].nunique() < 2 or g["gain"].nunique() < 2:
            rows.append({"feature": kind, "n": len(g), "pearson_r": np.nan, "pearson_p": np.nan,
                         "spearman_rho": np.nan, "spearman_p": np.nan})
            continue
        pr = stats.pearsonr(g["distance"], g["gain"])
        sr = stats.spearmanr(g["distance"], g["gain"])
        rows.append({"feature": kind, "n": len(g), "pearson_r": float(pr.statistic), "pearson_p": float(pr.pvalue),
                     "spearman_rho": float(sr.statistic), "spearman_p": float(sr.pvalue)})
    return pd.DataFrame(rows)
