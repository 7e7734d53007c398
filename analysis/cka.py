"""Centred kernel alignment (CKA) without n x n Gram matrices.

Linear CKA is computed in FEATURE space::

    CKA(X, Y) = ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F)

with ``Xc``, ``Yc`` the column-centred inputs: O(n d^2) time and O(d^2) memory instead of
the O(n^2) of Gram-matrix libraries, identical values. Centring is done in float64; the
products run as float32 GEMMs over row blocks of ``block_rows`` whose partial sums are
accumulated in float64 (``precision="float64"`` runs everything in float64). Means are
always computed in float64.

Debiased CKA uses the unbiased HSIC estimator of Song et al. (2012), as in Nguyen et al.
(2021), also evaluated in feature space. With ``K = X X^T`` and ``Kt`` = ``K`` with a zero
diagonal, every term of the estimator reduces to d x d and d-sized statistics:

- ``tr(Kt Lt) = ||X^T Y||_F^2 - sum_i |x_i|^2 |y_i|^2``
- ``1^T Kt 1 = |sum_i x_i|^2 - sum_i |x_i|^2``
- ``1^T Kt Lt 1 = sx^T (X^T Y) sy - sx . sum_i x_i |y_i|^2 - sy . sum_i y_i |x_i|^2 + sum_i |x_i|^2 |y_i|^2``

so :class:`CKAStats` can accumulate them chunk by chunk (streaming drift). The estimator
is invariant to a shift of the features, so a fixed shift (the first chunk's mean) is
subtracted for numerical accuracy.

RBF CKA needs the Gram matrix; for ``n > max_n`` (default 4,000) it is computed on a
seeded uniform subsample of ``max_n`` rows (documented approximation; the bandwidth is
``threshold`` x the median pairwise distance, as in Kornblith et al. 2019).

Degenerate inputs: when a denominator is zero (constant features) or not positive (the
unbiased estimator of a tiny sample), the functions return 0.0 and emit a
:class:`CKAWarning` — never a silent NaN.
"""

from __future__ import annotations

import warnings

import numpy as np

__all__ = [
    "CKAStats", "CKAWarning", "MinibatchCKA", "as_array", "debiased_cka", "layer_cka_matrix", "linear_cka",
    "rbf_cka", "word_features_cka",
]


class CKAWarning(RuntimeWarning):
    """A CKA value was defined by convention (zero variance, tiny batch)."""


def as_array(x) -> np.ndarray:
    """numpy view of a numpy array or torch tensor (detached, on CPU), 2-D."""
    if hasattr(x, "detach"):
        x = x.detach().cpu()
        if str(x.dtype) in ("torch.bfloat16", "torch.float16"):
            x = x.float()
        x = x.numpy()
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"expected a 2-D (n, d) array, got shape {x.shape}")
    return x


def _pair(X, Y) -> tuple[np.ndarray, np.ndarray]:
    X, Y = as_array(X), as_array(Y)
    if X.shape[0] != Y.shape[0]:
        raise ValueError(f"X and Y must have the same number of rows (examples): {X.shape[0]} != {Y.shape[0]}")
    if X.shape[0] == 0:
        raise ValueError("CKA of zero examples is undefined")
    return X, Y


def _ratio(num: float, den_sq: float, what: str) -> float:
    if not np.isfinite(num) or not np.isfinite(den_sq):
        raise ValueError(f"{what}: non-finite statistics (inputs contain NaN or inf)")
    if den_sq <= 0.0:
        warnings.warn(f"{what}: zero (or non-positive) self-similarity, e.g. constant features; "
                      "CKA defined as 0.0", CKAWarning, stacklevel=3)
        return 0.0
    return float(num / np.sqrt(den_sq))


def _gram_blocks(Xc: np.ndarray, Yc: np.ndarray, block_rows: int, precision: str):
    """``(Xc^T Xc, Yc^T Yc, Xc^T Yc)`` in float64; ``mixed``: float32 GEMMs (torch) over row
    blocks whose partial sums are added in float64."""
    import torch

    d1, d2 = Xc.shape[1], Yc.shape[1]
    sxx = np.zeros((d1, d1)); syy = np.zeros((d2, d2)); sxy = np.zeros((d1, d2))  # noqa: E702
    dt = torch.float64 if precision == "float64" else torch.float32
    for a in range(0, Xc.shape[0], block_rows):
        xb = torch.from_numpy(np.ascontiguousarray(Xc[a:a + block_rows])).to(dt)
        yb = torch.from_numpy(np.ascontiguousarray(Yc[a:a + block_rows])).to(dt)
        # float64 in numpy: torch's threaded .double() of a d x d result cost more than the
        # GEMM itself on small chunks (a drift over many small sentence groups)
        sxx += (xb.T @ xb).numpy()
        syy += (yb.T @ yb).numpy()
        sxy += (xb.T @ yb).numpy()
    return sxx, syy, sxy


def _centre(X: np.ndarray, precision: str) -> np.ndarray:
    """Column-centred copy; the mean is computed in float64. float32 input in mixed mode stays
    float32 (the subtraction is exact to the data's own precision)."""
    mean = X.mean(0, dtype=np.float64)
    if precision == "mixed" and X.dtype == np.float32:
        return X - mean.astype(np.float32)
    return X.astype(np.float64) - mean


def linear_cka(X, Y, *, block_rows: int = 2048, precision: str = "mixed") -> float:
    """Linear CKA of ``X`` (n, d1) and ``Y`` (n, d2) in feature space (no Gram matrix).

    Args:
        X, Y: numpy arrays or torch tensors with the same number of rows.
        block_rows: rows per float32 GEMM block (partial sums accumulate in float64).
        precision: ``"mixed"`` (float32 blocks, float64 accumulation) or ``"float64"``.

    Returns:
        CKA in [0, 1]; 0.0 with a :class:`CKAWarning` when X or Y has zero variance.
    """
    if precision not in ("mixed", "float64"):
        raise ValueError(f"precision must be 'mixed' or 'float64', not {precision!r}")
    X, Y = _pair(X, Y)
    Xc, Yc = _centre(X, precision), _centre(Y, precision)
    sxx, syy, sxy = _gram_blocks(Xc, Yc, block_rows, precision)
    # float32 centring leaves a residual mean (the float64 mean rounded to float32): remove it
    # exactly, in float64, from the products (what CKAStats.centred does)
    n = X.shape[0]
    rx, ry = Xc.mean(0, dtype=np.float64), Yc.mean(0, dtype=np.float64)
    sxx -= n * np.outer(rx, rx)
    syy -= n * np.outer(ry, ry)
    sxy -= n * np.outer(rx, ry)
    num = float((sxy * sxy).sum())
    den = float((sxx * sxx).sum()) * float((syy * syy).sum())
    return _ratio(num, den, "linear_cka")


class CKAStats:
    """Streaming sufficient statistics of a pair of representations (all d x d or d).

    ``update(X, Y)`` adds rows; :meth:`linear` and :meth:`debiased` give the CKA of all
    rows seen so far. Memory: three float64 d x d matrices plus vectors, whatever n.
    All statistics are sums over rows, so accumulators that share a ``shift`` (a pair of
    vectors subtracted from every row for accuracy) add and subtract: ``total - group`` is
    the statistics of every row outside ``group`` (the delete-a-group jackknife of
    :mod:`analysis.intervals`).
    ``debiased_terms=False`` skips the extra vectors of the unbiased estimator;
    ``precision="mixed"`` runs the chunk GEMMs in float32 (partial sums still float64),
    about twice as fast, relative error ~1e-7 on CKA.
    """

    def __init__(self, debiased_terms: bool = True, precision: str = "float64",
                 shift: tuple[np.ndarray, np.ndarray] | None = None):
        if precision not in ("mixed", "float64"):
            raise ValueError(f"precision must be 'mixed' or 'float64', not {precision!r}")
        self.debiased_terms = debiased_terms
        self.precision = precision
        self.n = 0
        self.shift_x: np.ndarray | None = None
        self.shift_y: np.ndarray | None = None
        if shift is not None:
            self._start(np.asarray(shift[0], dtype=np.float64), np.asarray(shift[1], dtype=np.float64))

    def _start(self, shift_x: np.ndarray, shift_y: np.ndarray) -> None:
        self.shift_x, self.shift_y = shift_x, shift_y
        d1, d2 = len(shift_x), len(shift_y)
        self.sx, self.sy = np.zeros(d1), np.zeros(d2)
        self.sxx, self.syy, self.sxy = np.zeros((d1, d1)), np.zeros((d2, d2)), np.zeros((d1, d2))
        if self.debiased_terms:
            self.sa = self.sb = self.sab = self.saa = self.sbb = 0.0
            self.sxa, self.sxb = np.zeros(d1), np.zeros(d1)
            self.sya, self.syb = np.zeros(d2), np.zeros(d2)

    def fields(self) -> tuple[str, ...]:
        """Names of the additive statistics (rows of two disjoint sets of words add up)."""
        base = ("n", "sx", "sy", "sxx", "syy", "sxy")
        return base + (("sa", "sb", "sab", "saa", "sbb", "sxa", "sxb", "sya", "syb") if self.debiased_terms else ())

    def _combine(self, other: CKAStats, sign: float) -> CKAStats:
        if self.shift_x is None or other.shift_x is None:
            raise ValueError("cannot combine CKAStats before any row (or shift) was given")
        if (self.debiased_terms != other.debiased_terms or not np.array_equal(self.shift_x, other.shift_x)
                or not np.array_equal(self.shift_y, other.shift_y)):
            raise ValueError("CKAStats can only be combined with the same shift and the same debiased_terms")
        out = CKAStats(self.debiased_terms, self.precision)
        out.shift_x, out.shift_y = self.shift_x, self.shift_y
        for name in self.fields():
            setattr(out, name, getattr(self, name) + sign * getattr(other, name))
        return out

    def __add__(self, other: CKAStats) -> CKAStats:
        """Statistics of the union of two disjoint sets of rows (same shift)."""
        return self._combine(other, 1.0)

    def __sub__(self, other: CKAStats) -> CKAStats:
        """Statistics of these rows without ``other``'s (a subset of them, same shift): the
        leave-a-group-out statistics of a jackknife."""
        return self._combine(other, -1.0)

    def update(self, X, Y) -> CKAStats:
        """Accumulate a chunk of paired rows (returns self)."""
        X, Y = _pair(X, Y)
        # mixed precision keeps float32 chunks float32 (no float64 copies of a chunk)
        work = np.float32 if self.precision == "mixed" and X.dtype == Y.dtype == np.float32 else np.float64
        if self.shift_x is None:
            self._start(X.mean(0, dtype=np.float64), Y.mean(0, dtype=np.float64))
        if X.shape[1] != self.sx.shape[0] or Y.shape[1] != self.sy.shape[0]:
            raise ValueError(f"feature sizes changed between chunks: {X.shape[1]}, {Y.shape[1]} "
                             f"!= {self.sx.shape[0]}, {self.sy.shape[0]}")
        X = X.astype(work) - self.shift_x.astype(work)
        Y = Y.astype(work) - self.shift_y.astype(work)
        self.n += X.shape[0]
        self.sx += X.sum(0, dtype=np.float64)
        self.sy += Y.sum(0, dtype=np.float64)
        sxx, syy, sxy = _gram_blocks(X, Y, 4096, self.precision)
        self.sxx += sxx
        self.syy += syy
        self.sxy += sxy
        if self.debiased_terms:
            a = np.einsum("ij,ij->i", X, X, dtype=np.float64)
            b = np.einsum("ij,ij->i", Y, Y, dtype=np.float64)
            self.sa += a.sum(); self.sb += b.sum(); self.sab += (a * b).sum()  # noqa: E702
            self.saa += (a * a).sum(); self.sbb += (b * b).sum()  # noqa: E702
            aw, bw = a.astype(work), b.astype(work)
            self.sxa += X.T @ aw; self.sxb += X.T @ bw  # noqa: E702
            self.sya += Y.T @ aw; self.syb += Y.T @ bw  # noqa: E702
        return self

    def centred(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Centred ``(Xc^T Xc, Yc^T Yc, Xc^T Yc)``."""
        if self.n == 0:
            raise ValueError("no rows accumulated")
        mx, my = self.sx / self.n, self.sy / self.n
        return (self.sxx - self.n * np.outer(mx, mx), self.syy - self.n * np.outer(my, my),
                self.sxy - self.n * np.outer(mx, my))

    def linear(self) -> float:
        """Linear (biased HSIC) CKA of all rows so far."""
        cxx, cyy, cxy = self.centred()
        return _ratio(float((cxy * cxy).sum()), float((cxx * cxx).sum()) * float((cyy * cyy).sum()),
                      "linear CKA")

    def hsic_unbiased(self) -> tuple[float, float, float]:
        """Unbiased HSIC ``(xy, xx, yy)`` of linear kernels (Song et al. 2012); needs n >= 4."""
        if not self.debiased_terms:
            raise ValueError("CKAStats(debiased_terms=False) cannot give the unbiased estimator")
        n = self.n
        if n < 4:
            raise ValueError(f"the unbiased HSIC estimator needs at least 4 examples, got {n}")
        sx, sy = self.sx, self.sy

        def hsic(s_cross, sum_ab, sum_a, sum_b, u, v, sxb, sya):
            tr = float((s_cross * s_cross).sum()) - sum_ab
            one_k = float(u @ u) - sum_a
            one_l = float(v @ v) - sum_b
            one_kl = float(u @ s_cross @ v) - float(u @ sxb) - float(v @ sya) + sum_ab
            return (tr + one_k * one_l / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * one_kl) / (n * (n - 3))

        xy = hsic(self.sxy, self.sab, self.sa, self.sb, sx, sy, self.sxb, self.sya)
        xx = hsic(self.sxx, self.saa, self.sa, self.sa, sx, sx, self.sxa, self.sxa)
        yy = hsic(self.syy, self.sbb, self.sb, self.sb, sy, sy, self.syb, self.syb)
        return xy, xx, yy

    def debiased(self) -> float:
        """Debiased CKA (unbiased HSIC) of all rows so far."""
        xy, xx, yy = self.hsic_unbiased()
        return _ratio(xy, xx * yy if xx > 0 and yy > 0 else 0.0, "debiased CKA")


def debiased_cka(X, Y) -> float:
    """Debiased CKA (unbiased HSIC estimator, Song et al. 2012), feature space, n >= 4."""
    return CKAStats().update(X, Y).debiased()


def _rbf_gram(X: np.ndarray, threshold: float) -> np.ndarray:
    sq = (X * X).sum(1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * X @ X.T, 0.0)
    med = np.median(d2)
    if med <= 0:
        return np.ones_like(d2)
    return np.exp(-d2 / (2 * threshold ** 2 * med))


def rbf_cka(X, Y, *, threshold: float = 1.0, max_n: int = 4000, seed: int = 0) -> float:
    """RBF-kernel CKA (biased HSIC) with the median-distance bandwidth.

    Exact Gram matrices for ``n <= max_n``; above, a seeded uniform subsample of ``max_n``
    rows is used (O(max_n^2) memory) — an approximation whose sampling error shrinks as
    ``1/sqrt(max_n)``.
    """
    X, Y = _pair(X, Y)
    if X.shape[0] > max_n:
        idx = np.sort(np.random.default_rng(seed).choice(X.shape[0], max_n, replace=False))
        X, Y = X[idx], Y[idx]
    K = _rbf_gram(X.astype(np.float64), threshold)
    L = _rbf_gram(Y.astype(np.float64), threshold)
    Kc = K - K.mean(0) - K.mean(1)[:, None] + K.mean()
    Lc = L - L.mean(0) - L.mean(1)[:, None] + L.mean()
    return _ratio(float((Kc * Lc).sum()), float((Kc * Kc).sum()) * float((Lc * Lc).sum()), "rbf_cka")


class MinibatchCKA:
    """Minibatch linear CKA (Nguyen et al. 2021): unbiased HSIC averaged over minibatches.

    ``update(X, Y)`` adds one minibatch. Batches with fewer than 4 rows (where the unbiased
    estimator is undefined) are skipped and counted in ``skipped_``; :meth:`value` warns and
    returns 0.0 when nothing usable was seen or a self-HSIC is not positive.
    """

    def __init__(self):
        self.hsic_xy_ = 0.0
        self.hsic_xx_ = 0.0
        self.hsic_yy_ = 0.0
        self.batches_ = 0
        self.skipped_ = 0

    def update(self, X, Y) -> MinibatchCKA:
        X, Y = _pair(X, Y)
        if X.shape[0] < 4:
            self.skipped_ += 1
            return self
        xy, xx, yy = CKAStats().update(X, Y).hsic_unbiased()
        self.hsic_xy_ += xy
        self.hsic_xx_ += xx
        self.hsic_yy_ += yy
        self.batches_ += 1
        return self

    def value(self) -> float:
        if self.batches_ == 0:
            warnings.warn(f"minibatch CKA: no batch of >= 4 examples (skipped {self.skipped_}); "
                          "CKA defined as 0.0", CKAWarning, stacklevel=2)
            return 0.0
        xx, yy = self.hsic_xx_, self.hsic_yy_
        return _ratio(self.hsic_xy_, xx * yy if xx > 0 and yy > 0 else 0.0, "minibatch CKA")


def layer_cka_matrix(feats_a: dict, feats_b: dict | None = None, *, precision: str = "mixed") -> list[dict]:
    """Linear CKA of every layer of A against every layer of B (A itself when B is None).

    ``feats_*`` map a layer index to ``(n, d)`` arrays over the same words. Each layer is
    centred once; the cross products run layer pair by layer pair. Returns tidy rows
    ``{"layer_a", "layer_b", "cka"}``.
    """
    same = feats_b is None
    feats_b = feats_a if same else feats_b
    dt = np.float64 if precision == "float64" else np.float32

    def prep(f):
        out = {}
        for lay, X in f.items():
            X = as_array(X).astype(np.float64)
            Xc = (X - X.mean(0)).astype(dt)
            g = (Xc.T @ Xc).astype(np.float64)
            out[lay] = (Xc, float((g * g).sum()))
        return out

    pa = prep(feats_a)
    pb = pa if same else prep(feats_b)
    ns = {v[0].shape[0] for v in list(pa.values()) + list(pb.values())}
    if len(ns) != 1:
        raise ValueError(f"all layers must cover the same words; row counts differ: {sorted(ns)}")
    rows = []
    for la, (Xa, na) in pa.items():
        for lb, (Xb, nb) in pb.items():
            if same and lb < la:
                continue
            c = (Xa.T @ Xb).astype(np.float64)
            v = _ratio(float((c * c).sum()), na * nb, "layer CKA")
            rows.append({"layer_a": la, "layer_b": lb, "cka": v})
            if same and lb != la:
                rows.append({"layer_a": lb, "layer_b": la, "cka": v})
    return sorted(rows, key=lambda r: (r["layer_a"], r["layer_b"]))


def word_features_cka(feats_a, feats_b=None) -> tuple[list[dict], int]:
    """:func:`layer_cka_matrix` of one or two :class:`core.features.WordFeatures` of the SAME
    sentences, on the words every one of them represents (``valid``; a word without a vector
    in either model is left out of both). Returns ``(rows, n_words)``."""
    valid = feats_a.valid if feats_b is None else feats_a.valid & feats_b.valid
    fa = {lay: x[valid] for lay, x in feats_a.features.items()}
    fb = None if feats_b is None else {lay: x[valid] for lay, x in feats_b.features.items()}
    return layer_cka_matrix(fa, fb), int(valid.sum())
