"""Confidence intervals over sentences: the delete-a-group jackknife.

Words of one sentence are not independent draws (they share the sentence's context), so
every interval here treats the SENTENCE as the sampling unit.

Delete-a-group jackknife (Quenouille 1956; Tukey 1958; Efron & Stein 1981; for random
groups of units, Kott 2001 and Wolter 2007, ch. 4). The units are split at random into
``G`` groups; ``theta`` is the estimate on all data, ``theta_(g)`` the estimate without
group ``g`` and ``theta_(.)`` their mean. Then::

    se   = sqrt((G - 1) / G * sum_g (theta_(g) - theta_(.))^2)
    bias = (G - 1) * (theta_(.) - theta)                       (first-order bias of theta)
    interval = (theta - bias) +- t_{G-1, (1+level)/2} * se,  widened to contain theta,
               clipped to the metric's range (CKA [0, 1], cosine distance [0, 2], L2 >= 0)

The bias term matters for CKA: the plug-in (biased-HSIC) linear CKA of ``n`` words is
biased upwards by O(d_eff / n), and on sentence-clustered words even the unbiased-HSIC
("debiased") CKA is biased (its correction assumes independent rows). With the sentence
as the unit, the jackknife removes the O(1/sentences) term of both. Where that bias
exceeds the sampling error, the bias-corrected interval does not contain the plug-in value;
it is then widened up to the value, so the interval always contains the reported point
and, as measured by simulation (``bench/bench_intervals.py``, ``tests/test_intervals.py``),
still covers the population value at the nominal rate.

For CKA the groups are ``G`` random groups of whole sentences (:class:`GroupedCKA`: one
set of d x d statistics per group, so memory is ``G`` times that of one
:class:`~analysis.cka.CKAStats`, kept in float32). For ratios of per-sentence sums (mean
cosine distance, mean relative L2 change: :func:`ratio_interval`) every sentence is its own
group (leave-one-sentence-out), which costs nothing.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .cka import CKAStats, CKAWarning

__all__ = ["GroupedCKA", "Interval", "jackknife_interval", "ratio_interval", "sentence_groups"]

_SYMMETRIC = ("sxx", "syy")  # stored as their upper triangle


@dataclass(frozen=True)
class Interval:
    """A point estimate and its interval: ``low <= value <= high`` (NaN bounds: none)."""

    value: float
    low: float
    high: float
    se: float = float("nan")  # jackknife standard error
    bias: float = float("nan")  # jackknife estimate of the point's bias

    @property
    def width(self) -> float:
        return self.high - self.low


@lru_cache(maxsize=256)
def _t(level: float, df: int) -> float:
    from scipy import stats

    return float(stats.t.ppf(0.5 + level / 2, df))


def jackknife_interval(value: float, leave_out, level: float = 0.95,
                       bounds: tuple[float, float] = (-np.inf, np.inf)) -> Interval:
    """Delete-a-group jackknife interval of ``value`` from its leave-one-group-out estimates.

    Args:
        value: the estimate on all data.
        leave_out: ``(G,)`` estimates, each without one group (G >= 2).
        level: coverage level in (0, 1).
        bounds: the range of the statistic; the interval is clipped to it.

    Returns:
        :class:`Interval` with the bias-corrected t interval (``G - 1`` degrees of freedom),
        widened to contain ``value``; NaN bounds when ``G < 2`` or an estimate is not finite.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    loo = np.asarray(leave_out, dtype=np.float64)
    G = len(loo)
    nan = float("nan")
    if G < 2 or not np.isfinite(value) or not np.all(np.isfinite(loo)):
        return Interval(float(value), nan, nan)
    mean = loo.mean()
    se = float(np.sqrt((G - 1) / G * ((loo - mean) ** 2).sum()))
    bias = float((G - 1) * (mean - value))
    half = _t(level, G - 1) * se
    low = min(value - bias - half, value)
    high = max(value - bias + half, value)
    low, high = float(np.clip(low, *bounds)), float(np.clip(high, *bounds))
    return Interval(float(value), low, high, se, bias)


def ratio_interval(num, den, level: float = 0.95,
                   bounds: tuple[float, float] = (-np.inf, np.inf)) -> Interval:
    """``sum(num) / sum(den)`` and its leave-one-sentence-out jackknife interval.

    ``num``/``den`` are per-sentence sums (e.g. of cosine distances and of word counts);
    sentences with ``den == 0`` carry no data and are not units. Needs 2 sentences.
    """
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    if num.shape != den.shape or num.ndim != 1:
        raise ValueError(f"num {num.shape} and den {den.shape} must be 1-D and the same length")
    keep = den > 0
    num, den = num[keep], den[keep]
    if len(den) == 0:
        return Interval(float("nan"), float("nan"), float("nan"))
    N, D = num.sum(), den.sum()
    value = float(N / D)
    if len(den) < 2:
        return Interval(value, float("nan"), float("nan"))
    return jackknife_interval(value, (N - num) / (D - den), level, bounds)


def sentence_groups(n_sentences: int, n_groups: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A seeded random order of the sentences and the group of each position in it.

    Returns ``(order, group)``: ``order`` a permutation of ``range(n_sentences)``; position
    ``k`` of that order belongs to group ``k * G // n_sentences`` with ``G =
    min(n_groups, n_sentences)``, so groups are random, of equal size (+-1 sentence), and
    contiguous in the new order (a stream of sentences in that order fills one group at a
    time).
    """
    if n_groups < 1:
        raise ValueError(f"n_groups must be >= 1, got {n_groups}")
    G = max(1, min(n_groups, n_sentences))
    order = np.random.default_rng(seed).permutation(n_sentences)
    return order, (np.arange(n_sentences) * G) // max(n_sentences, 1)


@dataclass(frozen=True)
class _Empty:
    """A sealed group whose statistics were not kept (``keep_groups=False``)."""

    n: int
    nbytes: int = 0


@lru_cache(maxsize=8)
def _triu(d: int) -> tuple[np.ndarray, np.ndarray]:
    return np.triu_indices(d)


class _Sealed:
    """A finished group's statistics: its d x d matrices in float32 (the symmetric ones as
    their upper triangle), vectors and scalars as they are (float64)."""

    def __init__(self, s: CKAStats):
        self.data = {}
        for name in s.fields():
            v = getattr(s, name)
            if isinstance(v, np.ndarray) and v.ndim == 2:
                v = (v[_triu(v.shape[0])] if name in _SYMMETRIC else v).astype(np.float32)
            self.data[name] = v
        self.n = s.n

    def expand(self, template: CKAStats) -> CKAStats:
        """The group as a float64 :class:`CKAStats` with ``template``'s shift."""
        out = CKAStats(template.debiased_terms, template.precision)
        out.shift_x, out.shift_y = template.shift_x, template.shift_y
        for name, v in self.data.items():
            if name in _SYMMETRIC:
                d = getattr(template, name).shape[0]
                m = np.zeros((d, d))
                m[_triu(d)] = v
                v = m + np.triu(m, 1).T
            elif isinstance(v, np.ndarray):
                v = v.astype(np.float64)
            setattr(out, name, v)
        return out

    @property
    def nbytes(self) -> int:
        return sum(v.nbytes for v in self.data.values() if isinstance(v, np.ndarray))


class GroupedCKA:
    """Linear and debiased CKA of all rows, with delete-a-group jackknife intervals.

    Rows arrive group by group: ``update(X, Y, group)`` adds rows of ``group``; when another
    group starts, the previous one is sealed (its statistics join the float64 total and a
    float32 copy is kept for the jackknife), so rows of one group must be contiguous.
    ``keep_groups=False`` keeps no copies (values only, no intervals).
    Memory: the float64 total and open group (as :class:`CKAStats`) plus, per sealed group,
    ``(d1 (d1 + 1) / 2 + d2 (d2 + 1) / 2 + d1 d2)`` float32 numbers.
    """

    def __init__(self, *, debiased_terms: bool = True, precision: str = "mixed", keep_groups: bool = True):
        self.debiased_terms = debiased_terms
        self.keep_groups = keep_groups
        self.precision = precision
        self.total: CKAStats | None = None
        self._open: CKAStats | None = None
        self._open_id: int | None = None
        self._sealed: dict[int, _Sealed] = {}

    def update(self, X, Y, group: int) -> GroupedCKA:
        """Add rows of ``group`` (an int); rows of one group must come contiguously."""
        group = int(group)
        if group != self._open_id:
            if group in self._sealed:
                raise ValueError(f"rows of group {group} came after another group's: groups must be contiguous")
            self._seal()
        if self._open is None:
            if self.total is None:
                first = CKAStats(self.debiased_terms, self.precision).update(X, Y)
                self.total = CKAStats(self.debiased_terms, self.precision, shift=(first.shift_x, first.shift_y))
                self._open, self._open_id = first, group
                return self
            self._open = CKAStats(self.debiased_terms, self.precision, shift=(self.total.shift_x, self.total.shift_y))
            self._open_id = group
        self._open.update(X, Y)
        return self

    def _seal(self) -> None:
        if self._open is not None and self._open.n > 0:
            self.total = self.total + self._open
            self._sealed[self._open_id] = _Sealed(self._open) if self.keep_groups else _Empty(self._open.n)
        self._open, self._open_id = None, None

    @property
    def n(self) -> int:
        return (self.total.n if self.total is not None else 0) + (self._open.n if self._open is not None else 0)

    @property
    def n_groups(self) -> int:
        return len(self._sealed) + (self._open is not None and self._open.n > 0)

    @property
    def nbytes(self) -> int:
        """Bytes held by the sealed groups (the jackknife's extra memory)."""
        return sum(s.nbytes for s in self._sealed.values())

    def intervals(self, level: float = 0.95) -> dict[str, Interval]:
        """``{"cka": Interval, "cka_debiased": Interval}`` over all rows seen.

        The values are those of :meth:`CKAStats.linear` / :meth:`CKAStats.debiased` on all
        rows (``cka_debiased`` is NaN below 4 rows). The intervals are NaN with fewer than 2
        groups, or when a leave-one-group-out estimate is degenerate (e.g. constant
        features, or fewer than 4 rows left for the debiased estimator).
        """
        self._seal()
        if self.total is None or self.total.n == 0:
            raise ValueError("no rows accumulated")
        stats = {"cka": (CKAStats.linear, 1)}
        if self.debiased_terms:
            stats["cka_debiased"] = (CKAStats.debiased, 4)
        nan = float("nan")
        values = {m: f(self.total) if self.total.n >= k else nan for m, (f, k) in stats.items()}
        groups = list(self._sealed.values())
        loo: dict[str, list[float]] = {m: [] for m in stats}
        if self.keep_groups and len(groups) >= 2:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", CKAWarning)
                for g in groups:
                    rest = self.total - g.expand(self.total)
                    for m, (f, k) in stats.items():
                        loo[m].append(f(rest) if rest.n >= k else nan)
            if any(issubclass(w.category, CKAWarning) for w in caught):
                loo = {m: [nan] for m in stats}  # a degenerate leave-out: no interval
        return {m: jackknife_interval(values[m], loo[m], level, (0.0, 1.0)) for m in stats}
