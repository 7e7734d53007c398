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
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

# ISO 639-1 -> 639-3 for the UD languages this project uses (PUD + extras)
ISO3 = {
    "ar": "arb", "cs": "ces", "de": "deu", "en": "eng", "es": "spa", "fa": "pes", "fi": "fin",
    "fr": "fra", "gl": "glg", "he": "heb", "hi": "hin", "id": "ind", "is": "isl", "it": "ita",
    "ja": "jpn", "ko": "kor", "nl": "nld", "pl": "pol", "pt": "por", "ru": "rus", "sv": "swe",
    "th": "tha", "tr": "tur", "uk": "ukr", "ur": "urd", "vi": "vie", "zh": "cmn", "bg": "bul",
    "ca": "cat", "da": "dan", "el": "ell", "et": "est", "eu": "eus", "hu": "hun", "lt": "lit",
    "lv": "lvs", "ro": "ron", "sk": "slk", "sl": "slv", "sr": "srp", "ta": "tam", "te": "tel",
    "mr": "mar", "af": "afr", "hy": "hye", "wo": "wol", "yo": "yor", "no": "nob", "nb": "nob",
}
FEATURE_SETS = {
    "syntactic": ("syntax_knn",), "phonological": ("phonology_knn",), "inventory": ("inventory_knn",),
    "featural": ("syntax_knn", "phonology_knn", "inventory_knn"), "genetic": ("fam",), "geographic": ("geo",),
}


def iso3(lang: str) -> str:
    """ISO 639-3 code of a UD language code (639-1 or already 639-3)."""
    if len(lang) == 3:
        return lang
    if lang not in ISO3:
        raise KeyError(f"no ISO 639-3 code known for language {lang!r}; add it to analysis.typology.ISO3")
    return ISO3[lang]


def _cache_file(cache_dir: str | Path | None) -> Path:
    d = Path(cache_dir or os.environ.get("ALIGNFREEZE_CACHE") or Path.home() / ".cache" / "alignfreeze")
    return d / "uriel.json"


def uriel_vectors(langs: Sequence[str], feature_set: str, *, cache_dir: str | Path | None = None) -> dict[str, np.ndarray]:
    """URIEL vectors of ``langs`` (639-1 or 639-3) for one lang2vec feature set, cached."""
    from core.io import atomic_write_json

    cf = _cache_file(cache_dir)
    cache = json.loads(cf.read_text()) if cf.is_file() else {}
    codes = {lang: iso3(lang) for lang in langs}
    todo = [c for c in set(codes.values()) if f"{feature_set}/{c}" not in cache]
    if todo:
        try:
            import lang2vec.lang2vec as l2v
        except ImportError as e:
            raise ImportError(f"typology needs the lang2vec package (and setuptools<81): {e}") from e
        unknown = [c for c in todo if c not in l2v.available_uriel_languages()]
        if unknown:
            raise KeyError(f"lang2vec has no URIEL entry for {unknown}")
        feats = l2v.get_features(todo, feature_set)
        for c in todo:
            v = [float("nan") if x == "--" else float(x) for x in feats[c]]
            cache[f"{feature_set}/{c}"] = v
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
