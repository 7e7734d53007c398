"""Word-vector pairs with a KNOWN population CKA, clustered by sentence: ground truth for
checking that the drift intervals cover (``tests/test_intervals.py``,
``bench/bench_intervals.py``).

Model (one "base" vector ``x`` and one "checkpoint" vector ``y`` per word)::

    x = mu_x + sqrt(r) a_s + sqrt(1 - r) e_w,     a_s, e_w ~ N(0, diag(lam))
    y = mu_y + x A + sqrt(r) b_s + sqrt(1 - r) f_w,   b_s, f_w ~ N(0, diag(nu))

``a_s``/``b_s`` are shared by the words of sentence ``s``, ``e_w``/``f_w`` are per word, so
a share ``r`` (``within``) of the variance is common to a sentence, as in contextual
representations. Each word's marginal is Gaussian with ``Sx = diag(lam)``,
``Sxy = Sx A``, ``Sy = A^T Sx A + diag(nu)``, whence the population linear CKA
(Kornblith et al. 2019, eq. for linear HSIC, with population covariances)::

    CKA = ||Sxy||_F^2 / (||Sx||_F ||Sy||_F)

Eigenvalues ``lam_i ~ (i + 1)^-decay``: ``decay = 1`` is anisotropic like real
representations (a few dominant directions), ``decay = 0`` flat, where the plug-in CKA of
a few thousand words is biased by many standard errors. Sentence lengths are
``1 + Poisson(mean_length - 1)``, independent of the vectors, so word-weighted means
(cosine distance, relative L2 change) estimate the marginal expectations, available from
:meth:`ClusteredPair.reference` (a large independent sample).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["ClusteredPair", "simulate_drift"]


@dataclass(frozen=True)
class ClusteredPair:
    """A scenario of paired word vectors with a known population CKA (see the module doc).

    Args:
        dim: feature size d of both sides.
        decay: eigenvalue decay of the base covariance (0 flat, 1 anisotropic).
        noise: size of the checkpoint's change (``A = I + noise * G / sqrt(d)`` and noise
            variances ``noise^2 lam`` in shuffled order).
        within: share of variance common to the words of a sentence, in [0, 1).
        mean_length: mean words per sentence.
        offset: size of the mean vectors (features are not centred in practice).
        seed: draws the fixed parts (A, noise spectrum, means); the samples use their own rng.
    """

    dim: int = 32
    decay: float = 1.0
    noise: float = 1.0
    within: float = 0.3
    mean_length: float = 20.0
    offset: float = 3.0
    seed: int = 0
    _fixed: dict = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self):
        if not 0 <= self.within < 1:
            raise ValueError(f"within must be in [0, 1), got {self.within}")
        if self.dim < 1 or self.mean_length < 1:
            raise ValueError("dim and mean_length must be >= 1")
        rng = np.random.default_rng(self.seed)
        d = self.dim
        lam = (1.0 + np.arange(d)) ** -float(self.decay)
        lam /= lam.sum()
        A = np.eye(d) + self.noise * rng.normal(size=(d, d)) / np.sqrt(d)
        nu = self.noise ** 2 * lam[rng.permutation(d)]
        scale = np.sqrt(lam.max())
        mu_x = self.offset * scale * rng.normal(size=d)
        mu_y = self.offset * scale * rng.normal(size=d)
        object.__setattr__(self, "_fixed", {"lam": lam, "A": A, "nu": nu, "mu_x": mu_x, "mu_y": mu_y})

    @property
    def truth(self) -> float:
        """Population linear CKA of the word marginal (closed form)."""
        f = self._fixed
        sx = np.diag(f["lam"])
        sxy = sx @ f["A"]
        sy = f["A"].T @ sx @ f["A"] + np.diag(f["nu"])
        return float((sxy ** 2).sum() / np.sqrt((sx ** 2).sum() * (sy ** 2).sum()))

    def draw(self, rng: np.random.Generator, n_sentences: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(X, Y, lengths)``: float32 ``(n_words, d)`` arrays, words of a sentence contiguous,
        and the ``(n_sentences,)`` sentence lengths."""
        f = self._fixed
        d, r = self.dim, self.within
        lengths = 1 + rng.poisson(self.mean_length - 1, n_sentences)
        n = int(lengths.sum())
        sl, sn = np.sqrt(f["lam"]), np.sqrt(f["nu"])
        X = np.sqrt(1 - r) * rng.normal(size=(n, d)) * sl
        X += np.repeat(np.sqrt(r) * rng.normal(size=(n_sentences, d)) * sl, lengths, axis=0)
        Y = X @ f["A"] + np.sqrt(1 - r) * rng.normal(size=(n, d)) * sn
        Y += np.repeat(np.sqrt(r) * rng.normal(size=(n_sentences, d)) * sn, lengths, axis=0)
        return (X + f["mu_x"]).astype(np.float32), (Y + f["mu_y"] + f["mu_x"] @ f["A"]).astype(np.float32), lengths

    def reference(self, n_words: int = 2_000_000, seed: int = 12345, chunk: int = 200_000) -> dict[str, float]:
        """Marginal expectations of the per-word drift metrics from ``n_words`` independent
        words: ``{"cos_dist": E[1 - cos(x, y)], "rel_l2": E[|y - x| / |x|]}`` (Monte-Carlo
        standard error about ``sd / sqrt(n_words)``)."""
        rng = np.random.default_rng(seed)
        f = self._fixed
        cos = l2 = 0.0
        done = 0
        while done < n_words:
            m = min(chunk, n_words - done)
            x = rng.normal(size=(m, self.dim)) * np.sqrt(f["lam"])
            y = x @ f["A"] + rng.normal(size=(m, self.dim)) * np.sqrt(f["nu"])
            x, y = x + f["mu_x"], y + f["mu_y"] + f["mu_x"] @ f["A"]
            nx, ny = np.linalg.norm(x, axis=1), np.linalg.norm(y, axis=1)
            cos += (1 - (x * y).sum(1) / (nx * ny)).sum()
            l2 += (np.linalg.norm(y - x, axis=1) / nx).sum()
            done += m
        return {"cos_dist": cos / n_words, "rel_l2": l2 / n_words}


def simulate_drift(scenario: ClusteredPair, rng: np.random.Generator, n_sentences: int, *,
                   ci_groups: int = 10, level: float = 0.95, chunk_sentences: int = 64,
                   seed: int = 0) -> dict[str, dict]:
    """One draw of ``scenario`` through the drift code of a real run (sentence groups,
    streamed chunks, :class:`analysis.drift.LayerDrift`): ``{metric: row}`` with
    ``value``, ``ci_low``, ``ci_high``, ``n_words``, ``n_sentences``."""
    from .drift import LayerDrift
    from .intervals import GroupedCKA, sentence_groups

    X, Y, lengths = scenario.draw(rng, n_sentences)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    order, group = sentence_groups(n_sentences, max(ci_groups, 1), seed)
    acc = LayerDrift(GroupedCKA(precision="mixed", keep_groups=ci_groups > 1))
    for a in range(0, n_sentences, chunk_sentences):
        sents = order[a:a + chunk_sentences]
        rows = np.concatenate([np.arange(offsets[s], offsets[s + 1]) for s in sents])
        off = np.concatenate([[0], np.cumsum(lengths[sents])])
        acc.update(X[rows], Y[rows], off, np.ones(len(rows), dtype=bool), group[a:a + chunk_sentences])
    return {r["metric"]: r for r in acc.rows(level, intervals=ci_groups > 0)}
