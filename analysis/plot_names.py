"""Names and order of what a figure shows: model display names, the protocol's panel order,
language and task names, metric labels and units, and the checks that refuse a table the
figure would misread. No drawing and no matplotlib here.

Display names (issue 13, "Names that survive"): a ``display_name`` column wins; else the
manifest's ``strategy`` (carried into the table by the grid); else the ``model`` column,
shortened to the shortest path suffix that still tells the models apart (``runs/front-42``
-> ``front-42``; two ``.../realigned`` folders keep their parent folder).

Order: the order given (``order=``), then the protocol's order (pretrained/base, baseline,
full, front, back), then the table's order of first appearance, never alphabetical.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

import pandas as pd

#: the study protocol's order of models; a model is placed by the first of these words that
#: is a whole word of its strategy (or display name): ``front-42`` is a ``front`` model
PROTOCOL_ORDER = ("pretrained", "base", "baseline", "full", "front", "back")
DISPLAY_COLUMNS = ("display_name", "display name")
#: columns that hold measurements, never a reason why two rows differ
MEASURES = frozenset({"value", "std", "ci_low", "ci_high", "n", "cka", "share", "gain", "distance", "n_words",
                      "n_sentences", "effect", "realigned", "reverted"})

LANGUAGES = {
    "af": "Afrikaans", "ar": "Arabic", "bg": "Bulgarian", "ca": "Catalan", "cs": "Czech", "cy": "Welsh",
    "da": "Danish", "de": "German", "el": "Greek", "en": "English", "es": "Spanish", "et": "Estonian",
    "eu": "Basque", "fa": "Persian", "fi": "Finnish", "fr": "French", "ga": "Irish", "gl": "Galician",
    "he": "Hebrew", "hi": "Hindi", "hr": "Croatian", "hu": "Hungarian", "hy": "Armenian", "id": "Indonesian",
    "is": "Icelandic", "it": "Italian", "ja": "Japanese", "ko": "Korean", "lt": "Lithuanian", "lv": "Latvian",
    "mr": "Marathi", "nb": "Norwegian Bokmål", "nl": "Dutch", "no": "Norwegian", "pl": "Polish",
    "pt": "Portuguese", "ro": "Romanian", "ru": "Russian", "sk": "Slovak", "sl": "Slovenian", "sr": "Serbian",
    "sv": "Swedish", "ta": "Tamil", "te": "Telugu", "th": "Thai", "tr": "Turkish", "uk": "Ukrainian",
    "ur": "Urdu", "vi": "Vietnamese", "wo": "Wolof", "yo": "Yoruba", "zh": "Chinese",
}
TASKS = {"upos": "UPOS", "xpos": "XPOS", "ner": "NER", "xnli": "XNLI", "pos": "PoS",
         "translation": "translation matching", "sentence": "sentence retrieval", "word": "word retrieval",
         # the measures of `alignfreeze layer-effect`
         "upos-probe": "UPOS probe", "sentence-retrieval": "sentence retrieval", "word-retrieval": "word retrieval",
         "upos-finetune": "UPOS tagger (fine-tuned, zero-shot)"}


class PlotInputError(ValueError):
    """A table that cannot make the figure asked for; the message says what is missing."""


@dataclass(frozen=True)
class Metric:
    """How a metric is drawn: ``label``, drawn ``unit``, ``factor`` (table value x factor =
    drawn value), natural ``bounds`` in drawn units (None: unbounded) and number format."""

    label: str
    unit: str = ""
    factor: float = 1.0
    bounds: tuple[float, float] | None = None
    fmt: str = ".3f"

    def axis(self) -> str:
        return f"{self.label} ({self.unit})" if self.unit else self.label


_PERCENT = {"factor": 100.0, "unit": "%", "bounds": (0.0, 100.0), "fmt": ".1f"}
METRICS = {
    # proportions are drawn in % everywhere, like the result tables (one unit throughout)
    "accuracy": Metric("accuracy", **_PERCENT),
    "accuracy@1": Metric("retrieval accuracy@1", **_PERCENT),
    "share": Metric("share of |attribution|", **_PERCENT),
    "selectivity": Metric("selectivity (accuracy - control accuracy)", "percentage points", 100.0, None, ".1f"),
    # CKA is an index in 0..1, not a proportion of anything
    "cka": Metric("linear CKA", bounds=(0.0, 1.0)),
    "cka_debiased": Metric("debiased CKA"),
    "cos_dist": Metric("mean cosine distance", bounds=(0.0, 2.0)),
    "rel_l2": Metric("mean relative L2 change"),
}


def change_metric(name: str) -> Metric:
    """How a change of metric ``name`` is drawn: a proportion's change in percentage points."""
    info = metric_info(name)
    unit = "percentage points" if info.unit == "%" else info.unit
    return Metric(f"change in {info.label}", unit, info.factor, None, info.fmt)


def metric_info(name: str) -> Metric:
    """How to draw metric ``name``; every ``retrieval_*`` metric is a proportion (%)."""
    if name in METRICS:
        return METRICS[name]
    if str(name).startswith("retrieval"):
        return Metric(str(name).replace("_", " "), **_PERCENT)
    return Metric(str(name), fmt=".3g")


def language(code) -> str:
    """``French (fr)`` for ``fr``; an unknown code as it is."""
    code = str(code)
    return f"{LANGUAGES[code]} ({code})" if code in LANGUAGES else code


def task_name(task) -> str:
    return TASKS.get(str(task), str(task))


def files_text(df: pd.DataFrame, col: str) -> str:
    """Short description of the data files named in column ``col`` (stems, or a count)."""
    if col not in df.columns:
        return ""
    stems = list(dict.fromkeys(PurePosixPath(str(f)).name.removesuffix(".conllu") for f in df[col].dropna()))
    if not stems:
        return ""
    return ", ".join(stems) if len(stems) <= 3 else f"{len(stems)} files"


# ------------------------------------------------------------------------------- names
def _short_paths(models: list[str]) -> dict[str, str]:
    """Shortest path suffix of each model that still tells it from the others."""
    parts = {m: PurePosixPath(m.rstrip("/")).parts or (m,) for m in models}
    out = {}
    for m, p in parts.items():
        for k in range(1, len(p) + 1):
            cand = "/".join(p[-k:])
            if all("/".join(q[-k:]) != cand for o, q in parts.items() if o != m):
                break
        out[m] = cand
    return out


def display_names(df: pd.DataFrame, column: str = "model", *, plain: bool = False) -> pd.Series:
    """The name each row's model is shown under (see the module docstring). ``plain``: from
    ``column`` only (a table of model pairs, whose display and strategy columns would not
    say which side they name)."""
    if plain:
        models = df[column].astype(str)
        return models.map(_short_paths(list(dict.fromkeys(models))))
    if column not in df.columns and "strategy" not in df.columns \
            and not any(c in df.columns for c in DISPLAY_COLUMNS):
        return pd.Series("", index=df.index, dtype=object)
    fallback = pd.Series(pd.NA, index=df.index, dtype=object)
    if column in df.columns:
        models = df[column].astype(str)
        fallback = models.map(_short_paths(list(dict.fromkeys(models))))
    if "strategy" in df.columns:
        strat = df["strategy"].astype(object).where(df["strategy"].notna())
        if column in df.columns:
            # two base models with the same strategy (and seed) keep the model in the name
            keys = ["strategy"] + (["seed"] if "seed" in df.columns else [])
            if (df.groupby(keys, dropna=False)[column].nunique() > 1).any():
                strat = fallback + " " + strat
        fallback = strat.fillna(fallback)
    name = pd.Series(pd.NA, index=df.index, dtype=object)
    for col in DISPLAY_COLUMNS:
        if col in df.columns:
            name = name.fillna(df[col].astype(object).where(df[col].notna()))
    return name.fillna(fallback).fillna("").astype(str)


def protocol_rank(name: str) -> int:
    """Position of ``name`` in :data:`PROTOCOL_ORDER` (by whole words), or its length."""
    words = set(re.split(r"[^a-z0-9]+", str(name).lower()))
    for i, w in enumerate(PROTOCOL_ORDER):
        if w in words:
            return i
    return len(PROTOCOL_ORDER)


def ordered_names(names, keys=None, order=None) -> list[str]:
    """Distinct ``names``: those in ``order`` first (as given), then by the protocol rank of
    their ``keys`` (strategy, else the name), then by first appearance.

    Raises :class:`PlotInputError` when ``order`` names a model the table does not have.
    """
    names = [str(n) for n in names]
    keys = names if keys is None else [str(k) for k in keys]
    first: dict[str, int] = {}
    rank: dict[str, int] = {}
    for i, (n, k) in enumerate(zip(names, keys, strict=True)):
        first.setdefault(n, i)
        rank[n] = min(rank.get(n, len(PROTOCOL_ORDER)), protocol_rank(k), protocol_rank(n))
    given = [str(o) for o in (order or [])]
    unknown = [o for o in given if o not in first]
    if unknown:
        raise PlotInputError(f"order: {', '.join(map(repr, unknown))} not among the table's models "
                             f"({', '.join(map(repr, first))})")
    rest = sorted((n for n in first if n not in given), key=lambda n: (rank[n], first[n]))
    return list(dict.fromkeys(given)) + rest


# ------------------------------------------------------------------------------ checks
def require(df: pd.DataFrame, cols, what: str) -> None:
    """Refuse a table without ``cols``, saying what it has and what it looks like."""
    missing = [c for c in cols if c not in df.columns]
    if missing:
        guess = guess_kind(df.columns)
        hint = f" (it looks like a {guess} table: `alignfreeze plot {guess}`)" if guess and guess != what else ""
        have = [str(c) for c in df.columns if not str(c).startswith("_")]
        raise PlotInputError(f"the {what} figure needs column(s) {', '.join(missing)}; the table has "
                             f"{', '.join(have)}{hint}")
    if df.empty:
        raise PlotInputError(f"the {what} figure has nothing to draw: the table has no rows")


def guess_kind(columns) -> str | None:
    """The plot kind whose table has these columns, if one fits."""
    c = set(columns)
    if {"variant", "effect", "lang"} <= c:
        return "layer-effect"
    if {"layer_a", "layer_b", "cka"} <= c:
        return "cka"
    if {"gain", "distance"} <= c:
        return "typology"
    if {"share", "layer", "lang"} <= c:
        return "attribution"
    if {"direction", "candidates", "layer"} <= c:
        return "retrieval"
    if {"task", "seed", "lang", "layer", "value"} <= c:
        return "probe"
    return None  # drift and scan tables have no column of their own to tell them by


def numeric(df: pd.DataFrame, cols, what: str) -> pd.DataFrame:
    """``df`` with ``cols`` as numbers; refuses a cell that is not one (names it). A missing
    value is allowed only in a measurement column (drawn as "no value"), never in a key
    such as ``layer``."""
    df = df.copy()
    for c in cols:
        v = pd.to_numeric(df[c], errors="coerce")
        bad = v.isna() & (df[c].notna() | (c not in MEASURES))
        if bad.any():
            i = int(bad.to_numpy().nonzero()[0][0])
            where = f"data row {i + 1}"
            if "_row" in df.columns:  # set by analysis.plots.read_tables: file and row under the header
                where = f"{df['_source'].iloc[i]}, data row {df['_row'].iloc[i]}"
            raise PlotInputError(f"the {what} figure: column {c} holds {df[c].iloc[i]!r} ({where}); "
                                 "expected a number")
        df[c] = v
    return df


def one_row_per(df: pd.DataFrame, keys, what: str) -> None:
    """Refuse rows that measure the same cell (they would be averaged together silently)."""
    keys = [k for k in keys if k in df.columns]
    dup = df.duplicated(subset=keys, keep=False)
    if not dup.any():
        return
    rows = df[dup]
    first = rows.iloc[0]
    same = rows[(rows[keys].astype(str) == first[keys].astype(str)).all(axis=1)]
    cell = ", ".join(f"{k} {first[k]}" for k in keys if k != "_name")
    name = f"model {first['_name']!r}, " if "_name" in keys else ""
    differ = [c for c in df.columns if c not in keys and c not in MEASURES and not c.startswith("_")
              and same[c].astype(str).nunique() > 1]
    why = (f"they differ in {', '.join(differ)}: pick one with --where {differ[0]}=VALUE"
           if differ else "they are the same measurement twice (the same table given twice?)")
    if "_name" in keys and "model" in differ:
        why += ", or tell the models apart with a display_name column"
    raise PlotInputError(f"the {what} figure: {len(same)} rows measure the same cell ({name}{cell}) and would be "
                         f"averaged together; {why}")


def select_metric(df: pd.DataFrame, metric: str | None, default: str, what: str) -> tuple[pd.DataFrame, str]:
    """Rows of one metric (``default`` when None); refuses a metric the table lacks."""
    metric = metric or default
    sub = df[df["metric"].astype(str) == metric]
    if sub.empty:
        present = ", ".join(map(str, dict.fromkeys(df["metric"].astype(str))))
        raise PlotInputError(f"the {what} figure: no rows with metric {metric!r}; the table has {present} "
                             "(choose with --metric)")
    return sub.copy(), metric


def _first(series) -> list:
    return list(dict.fromkeys(series))


def listed(values, most: int = 8) -> str:
    """``a, b, c``; a long list shortened with its length."""
    v = [str(x) for x in values]
    return ", ".join(v) if len(v) <= most else ", ".join(v[:most]) + f", ... ({len(v)} in all)"


def check_shared(data: pd.DataFrame, dims, what: str, ref: str | None = None) -> None:
    """Refuse a figure whose models have nothing to compare: every model must share at
    least one value of each of ``dims`` (``(column, label)`` pairs, checked in turn, each
    within what the earlier ones share) with the reference model (``ref``, default the
    first in display order)."""
    names = _first(data["model"])
    if len(names) < 2:
        return
    ref = names[0] if ref is None else ref
    r = data[data["model"] == ref]
    for name in names:
        if name == ref:
            continue
        a, b = data[data["model"] == name], r
        for col, label in dims:
            va, vb = _first(a[col]), _first(b[col])
            if not set(va) & set(vb):
                raise PlotInputError(f"the {what} figure has nothing to compare: {name!r} and {ref!r} share no "
                                     f"{label} ({name}: {listed(va)}; {ref}: {listed(vb)})")
            a, b = a[a[col].isin(vb)], b[b[col].isin(va)]
