"""Control tasks (Hewitt & Liang, 2019) and selectivity.

A control task gives every *word type* a random label drawn from the empirical label
distribution of the real task, so a probe can only solve it by memorising word identities.
``selectivity = task accuracy - control accuracy`` (same probe, same features, same split):
high selectivity means the representation, not the probe, carries the property.

Selectivity is defined on the training language's word types: a control label can only be
learned for a type seen in training, so on another language (a zero-shot split, where almost
every type is new) the control accuracy is chance and "selectivity" would be task accuracy
minus chance. :func:`probing.run.run_probe` fits and reports the control task only on splits
in the training language.

Here the random label of a type is a pure function of ``(seed, type)`` (a keyed hash mapped
through the inverse CDF of the label distribution), so the same word gets the same label
in training and evaluation, in every call and in every process, without storing a table.
Types are compared as written (case-sensitive) unless ``lowercase=True``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import pandas as pd


def _uniform(word: str, seed: int) -> float:
    """A reproducible uniform number in [0, 1) for ``(seed, word)``."""
    digest = hashlib.blake2b(word.encode("utf-8"), digest_size=8, key=str(int(seed)).encode()).digest()
    return int.from_bytes(digest, "big") / 2.0**64


class ControlTask:
    """Random word-type -> label map with the task's label distribution.

    Args:
        seed: selects the random map.
        lowercase: treat ``The`` and ``the`` as one type.

    Attributes (after ``fit``): ``labels_`` (the task labels, sorted), ``probs_`` (their
    empirical token frequencies in the training labels), ``cdf_``.
    """

    def __init__(self, seed: int = 0, *, lowercase: bool = False):
        self.seed = seed
        self.lowercase = lowercase

    def fit(self, words: Sequence[str], labels: Sequence) -> ControlTask:
        """Learn the label distribution from the real task's ``labels`` (``words`` is only
        checked for length: the map itself needs no training)."""
        labels = np.asarray(labels)
        if len(words) != len(labels):
            raise ValueError(f"{len(words)} words but {len(labels)} labels: they must match one to one")
        if labels.size == 0:
            raise ValueError("cannot fit a control task on zero labels")
        values, counts = np.unique(labels, return_counts=True)
        self.labels_ = values
        self.probs_ = counts / counts.sum()
        self.cdf_ = np.cumsum(self.probs_)
        self.cdf_[-1] = 1.0
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "labels_"):
            raise RuntimeError("this ControlTask is not fitted yet: call fit(words, labels) first")

    def label_of(self, word: str) -> object:
        """The control label of one word type."""
        self._check_fitted()
        w = word.lower() if self.lowercase else word
        return self.labels_[int(np.searchsorted(self.cdf_, _uniform(w, self.seed), side="right"))]

    def transform(self, words: Sequence[str]) -> np.ndarray:
        """Control labels of ``words`` (each distinct type hashed once)."""
        self._check_fitted()
        ids: dict[str, int] = {}  # a dict, not np.unique: numpy strings drop trailing NULs
        inverse = np.fromiter((ids.setdefault(w.lower() if self.lowercase else w, len(ids)) for w in words),
                              dtype=np.int64, count=len(words))
        if not ids:
            return np.asarray([], dtype=self.labels_.dtype)
        u = np.fromiter((_uniform(t, self.seed) for t in ids), dtype=np.float64, count=len(ids))
        idx = np.minimum(np.searchsorted(self.cdf_, u, side="right"), len(self.labels_) - 1)
        return self.labels_[idx][inverse]

    def fit_transform(self, words: Sequence[str], labels: Sequence) -> np.ndarray:
        return self.fit(words, labels).transform(words)


def selectivity(task_accuracy, control_accuracy) -> np.ndarray:
    """``task - control`` accuracy, elementwise (per layer, per seed...)."""
    t, c = np.asarray(task_accuracy, dtype=float), np.asarray(control_accuracy, dtype=float)
    if t.shape != c.shape:
        raise ValueError(f"task accuracy {t.shape} and control accuracy {c.shape} must have the same shape")
    return t - c


def selectivity_rows(df: pd.DataFrame, task: str, control_task: str) -> pd.DataFrame:
    """Selectivity rows from a tidy table holding ``accuracy`` rows of ``task`` and
    ``control_task``: one row per matching (model, lang, layer, seed, split, ...) with
    ``task=task``, ``metric="selectivity"``."""
    acc = df[df["metric"] == "accuracy"]
    keys = [c for c in df.columns if c not in ("task", "metric", "value", "n")]
    t = acc[acc["task"] == task].drop(columns=["task", "metric"])
    c = acc[acc["task"] == control_task][keys + ["value"]].rename(columns={"value": "control"})
    m = t.merge(c, on=keys, how="inner", validate="one_to_one")
    m["value"] = selectivity(m["value"], m["control"])
    m = m.drop(columns=["control"])
    m["task"], m["metric"] = task, "selectivity"
    return m[[c for c in df.columns if c in m.columns]]


def summarize(df: pd.DataFrame, over: str = "seed") -> pd.DataFrame:
    """Mean, standard deviation (ddof=1; NaN, i.e. n/a, below two seeds: a spread needs
    replicates) and count over ``over``; every other non-value column is a group key."""
    keys = [c for c in df.columns if c not in (over, "value", "n")]
    g = df.groupby(keys, dropna=False, sort=True)["value"]
    return g.agg(mean="mean", std="std", count="count").reset_index()
