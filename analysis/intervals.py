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

CKA: the plug-in (biased-HSIC) linear CKA of ``n`` words is biased upwards by O(d_eff / n),
and on sentence-clustered words the unbiased-HSIC ("debiased") CKA is biased too, because
its correction treats every pair of distinct words as independent. Both can be off by many
standard errors (flat spectra, few words per dimension, strong sentence effects). The
interval is therefore built on :func:`group_u_cka`: the unbiased HSIC estimator of Song et
al. (2012) with the G random groups of sentences, not the words, as the independent units
(only word tuples from different groups enter), which is unbiased whatever the dependence
inside a sentence. Its delete-a-group jackknife gives the bias-corrected t interval for the
population CKA; the ``cka`` and ``cka_debiased`` rows both estimate that one population
value, so both carry that interval, widened to contain their own value. Where a plug-in is
biased by more than its sampling error, its value sits at one end of a lopsided interval.
Coverage is measured by simulation (``bench/bench_intervals.py``, ``tests/test_intervals.py``).

For CKA the groups are ``G`` random groups of whole sentences (:class:`GroupedCKA`: one
set of d x d statistics per group, so memory is ``G`` times that of one
:class:`~analysis.cka.CKAStats`, kept in float32). For ratios of per-sentence sums (mean
cosine distance, mean relative L2 change: :func:`ratio_interval`) every sentence is its own
group (leave-one-sentence-out), which costs nothing; their bias is O(1/sentences) and the
jackknife removes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .cka import CKAStats

__all__ = ["GroupedCKA", "Interval", "group_u_cka", "jackknife_interval", "ratio_interval", "sentence_groups"]

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

        The values are those of :meth:`CKAStats.linear` (plug-in) and
        :meth:`CKAStats.debiased` (unbiased HSIC, NaN below 4 rows) on all rows. Both estimate
        the same population CKA, so both rows share one interval for it
        (:meth:`population_interval`), each widened to contain its own value. NaN bounds
        when there is no interval (fewer than 5 groups, or a degenerate estimate).
        """
        self._seal()
        if self.total is None or self.total.n == 0:
            raise ValueError("no rows accumulated")
        values = {"cka": self.total.linear()}
        if self.debiased_terms:
            values["cka_debiased"] = self.total.debiased() if self.total.n >= 4 else float("nan")
        pop = self.population_interval(level)
        out = {}
        for m, v in values.items():
            if not (np.isfinite(pop.low) and np.isfinite(v)):
                out[m] = Interval(v, float("nan"), float("nan"))
                continue
            centre = pop.value - pop.bias
            out[m] = Interval(v, float(min(pop.low, v)), float(max(pop.high, v)), pop.se, v - centre)
        return out

    def population_interval(self, level: float = 0.95) -> Interval:
        """Interval for the population linear CKA from the groups as independent units.

        ``value`` is the group U-statistic CKA (:func:`group_u_cka`: unbiased HSIC from words
        of DIFFERENT groups only, so sentence-level dependence cannot bias it); the interval
        is its delete-a-group jackknife (bias-corrected, ``t`` with G - 1 degrees of freedom).
        Needs 5 groups (each leave-one-out estimate needs 4).
        """
        self._seal()
        nan = float("nan")
        groups = [g for g in self._sealed.values() if g.n > 0]
        if not self.keep_groups or len(groups) < 5 or self.total is None:
            return Interval(nan, nan, nan)
        value, loo = group_u_cka(groups, self.total)
        return jackknife_interval(value, loo, level, (0.0, 1.0))


# ------------------------------------------------------------------- group U-statistic CKA
def _distinct2(A: np.ndarray, w: np.ndarray) -> float:
    """``sum_{g != h} A[g, h] w_g w_h``."""
    Aw = A * np.outer(w, w)
    return float(Aw.sum() - np.trace(Aw))


def _distinct3(W: np.ndarray, w: np.ndarray) -> float:
    """``sum over pairwise distinct g, h, k of W[g, h, k] w_g w_h w_k`` (inclusion-exclusion)."""
    Ww = W * w[:, None, None] * w[None, :, None] * w[None, None, :]
    return float(Ww.sum() - np.einsum("ggk->", Ww) - np.einsum("ghg->", Ww) - np.einsum("ghh->", Ww)
                 + 2 * np.einsum("ggg->", Ww))


def _distinct4(A: np.ndarray, B: np.ndarray, w: np.ndarray) -> float:
    """``sum over pairwise distinct g, h, k, l of A[g, h] B[k, l]`` (symmetric A, B), as in the
    unbiased HSIC of Song et al. (2012) with groups for indices."""
    A0, B0 = A * np.outer(w, w), B * np.outer(w, w)
    np.fill_diagonal(A0, 0.0)
    np.fill_diagonal(B0, 0.0)
    return float(A0.sum() * B0.sum() - 4 * (A0.sum(1) * B0.sum(1)).sum() + 2 * (A0 * B0).sum())


def _hsic_parts(M: np.ndarray, Sa: np.ndarray, Sb: np.ndarray) -> tuple[np.ndarray, ...]:
    """Group-level pieces of the linear-kernel HSIC: ``<M_g, M_h>``, ``Sa_h^T M_g Sb_k`` and the
    Gram matrices of the group sums."""
    G = M.shape[0]
    flat = M.reshape(G, -1)
    gram = flat @ flat.T  # <M_g, M_h>: one BLAS product (einsum without BLAS was the drift's hot spot)
    W = np.matmul(Sa[None], M @ Sb.T)  # W[g, h, k] = Sa_h^T M_g Sb_k
    return gram, W, Sa @ Sa.T, Sb @ Sb.T


def _hsic(parts: tuple[np.ndarray, ...], n: np.ndarray, w: np.ndarray) -> float:
    """The average over word 4-tuples (i, j, q, r) from 4 distinct groups of
    ``k_ij l_ij + k_ij l_qr - 2 k_ij l_iq`` (groups with ``w = 0`` left out). Every term is
    averaged over the SAME tuples, which keeps the estimator invariant to a shift of the
    features: a pair (i, j) is counted once per (q, r) that completes it, a triple once per r."""
    gram, W, Ka, Kb = parts
    nw = n * w
    N, s2 = nw.sum(), (nw * nw).sum()
    pair = (N - nw[:, None] - nw[None, :]) ** 2 - (s2 - nw[:, None] ** 2 - nw[None, :] ** 2)
    triple = N - nw[:, None, None] - nw[None, :, None] - nw[None, None, :]
    nn = np.outer(n, n)
    tuples = _distinct4(nn, nn, w)
    if tuples <= 0:
        return float("nan")
    return (_distinct2(gram * pair, w) - 2 * _distinct3(W * triple, w) + _distinct4(Ka, Kb, w)) / tuples


def group_u_cka(groups: list, template: CKAStats) -> tuple[float, np.ndarray]:
    """Linear CKA from the unbiased HSIC estimator with GROUPS as the independent units, and
    its leave-one-group-out values.

    For linear kernels, ``HSIC = E[k12 l12] - 2 E[k13 l12] + E[k12 l34]`` over independent
    draws (Song et al. 2012, whose unbiased estimator averages the symmetrised kernel over
    all 4-tuples of distinct words). Here the average runs over the word 4-tuples whose
    words come from 4 DIFFERENT groups: group-level sums give it exactly
    (``sum_{g != h} <M_g, M_h>`` with ``M_g = sum x y^T`` over group g, ``Sx_h^T M_g Sy_k``
    over distinct g, h, k, products of group-sum Gram matrices over 4 distinct groups, each
    weighted by the number of tuples that complete it). Words of different groups come from
    different sentences, hence are independent: the estimator is unbiased for HSIC however
    strongly the words of a sentence depend on each other (the word-level unbiased
    estimator is not). With one word per group it is Song et al.'s estimator. Cost:
    O(G^2 d^2) from the per-group statistics.

    Args:
        groups: the sealed groups (each with ``n`` and float32/float64 ``data``), >= 5.
        template: the total statistics (for the shift and feature sizes).

    Returns:
        ``(cka, leave_one_out)``; NaN where an HSIC of x or y is not positive.
    """
    G = len(groups)
    n = np.array([g.n for g in groups], dtype=np.float64)
    full = [g.expand(template) for g in groups]
    sx = np.stack([f.sx for f in full])
    sy = np.stack([f.sy for f in full])
    parts = {}
    for key, name, a, b in (("xy", "sxy", sx, sy), ("xx", "sxx", sx, sx), ("yy", "syy", sy, sy)):
        parts[key] = _hsic_parts(np.stack([getattr(f, name) for f in full]), a, b)
    del full

    def cka(w: np.ndarray) -> float:
        xy, xx, yy = (_hsic(parts[k], n, w) for k in ("xy", "xx", "yy"))
        return float(xy / np.sqrt(xx * yy)) if xx > 0 and yy > 0 else float("nan")

    ones = np.ones(G)
    return cka(ones), np.array([cka(np.where(np.arange(G) == g, 0.0, 1.0)) for g in range(G)])
