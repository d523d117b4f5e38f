"""Rank agreement of two measurements of the same architectures, with seed-stratified bootstrap intervals.

A proxy is good for a search when it *orders* architectures as the training it stands for does;
its accuracies may be far lower. Two rank correlations say how well (Kendall 1945, "The treatment
of ties in ranking problems"; the measures NAS benchmarks report, e.g. Ying et al. 2019,
NAS-Bench-101, and Abdelfattah et al. 2021, "Zero-Cost Proxies for Lightweight NAS"):

* Kendall's τ-b: (concordant − discordant pairs) / sqrt((n0 − n1)(n0 − n2)), n0 = n(n−1)/2 pairs,
  n1 and n2 the pairs tied in x and in y. It is the probability that the two agree on a pair minus
  the probability that they disagree, among untied pairs: τ = 0.6 means 80% of pairs agree.
* Spearman's ρ: Pearson's correlation of the ranks, tied values given their average rank.

Both equal ``scipy.stats.kendalltau`` / ``spearmanr`` (tests/test_rank_stats.py); they are computed
here in numpy, batched over bootstrap replicates.

Each architecture is measured with K seeds on each side. Its value is the mean of its seeds; the
correlation is that of the per-architecture means. The interval is a two-stage (stratified)
bootstrap (Davison & Hinkley 1997, "Bootstrap Methods and their Application", §3.8): a replicate
draws n architectures with replacement and, for each drawn architecture, its seeds with
replacement on each side, then correlates the resampled means. It covers both noises that move a
measured τ: which architectures happened to be drawn, and which seeds happened to be trained.
An architecture drawn twice ties with itself on both sides, and τ-b leaves such pairs out.

The interval is the 2.5% and 97.5% percentiles of the replicates (replicates where a correlation
is undefined, every drawn value tied on one side, are left out and counted). Resampling the seeds
adds seed noise on top of the measured means, so the replicates lean a little towards 0: the
interval is, if anything, low, which is the safe side when asking whether a proxy beats a baseline.
(The bias-corrected interval would shift it back up, but collapses to [1, 1] whenever the estimate
is 1, hiding the reference's own seed noise.) A proxy that orders every architecture as the
reference does, each measured once, gets τ = 1 with the interval [1, 1].

The same seed gives the same replicates (architecture draws first, then seeds), so comparisons of
equally many architectures made with one seed are paired: a proxy and the FLOPs baseline are
resampled on the same architectures.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Hashable, Sequence

import numpy as np

from mvsearch.core.errors import StudyError

DEFAULT_RESAMPLES = 1000
MIN_ARCHS = 3  # fewer architectures leave a rank correlation meaningless
CHUNK = 2_000_000  # elements of one [replicates, n, n] comparison block (memory stays ~ tens of MB)


# ---------------------------------------------------------------------- the statistics, batched
def average_ranks(x: Any) -> np.ndarray:
    """Ranks 1..n along the last axis, tied values given their average rank (batched over the others)."""
    x = np.asarray(x, dtype=float)
    less = (x[..., None, :] < x[..., :, None]).sum(-1)  # [..., n]: values below each
    equal = (x[..., None, :] == x[..., :, None]).sum(-1)  # [..., n]: values equal to each, itself included
    return less + (equal + 1) / 2.0


def _chunks(rows: int, n: int) -> list[slice]:
    step = max(1, CHUNK // max(1, n * n))
    return [slice(i, min(rows, i + step)) for i in range(0, rows, step)]


def tau_b_rows(x: Any, y: Any) -> np.ndarray:
    """Kendall's τ-b of each row pair of ``x`` and ``y`` ([R, n] each) -> [R]; NaN where undefined
    (every value of a row tied on one side)."""
    x, y = np.atleast_2d(np.asarray(x, dtype=float)), np.atleast_2d(np.asarray(y, dtype=float))
    rows, n = x.shape
    out = np.empty(rows)
    n0 = n * (n - 1) / 2
    for sl in _chunks(rows, n):
        dx = np.sign(x[sl, :, None] - x[sl, None, :]).astype(np.int8)  # [r, n, n]: sign of x_i - x_j
        dy = np.sign(y[sl, :, None] - y[sl, None, :]).astype(np.int8)
        s = (dx.astype(np.int32) * dy).sum((1, 2)) / 2  # concordant − discordant (each pair counted twice)
        n1 = ((dx == 0).sum((1, 2)) - n) / 2  # pairs tied in x (the diagonal is not a pair)
        n2 = ((dy == 0).sum((1, 2)) - n) / 2
        den = np.sqrt((n0 - n1) * (n0 - n2))
        with np.errstate(invalid="ignore", divide="ignore"):
            out[sl] = np.where(den > 0, s / np.where(den > 0, den, 1), np.nan)
    return out


def rho_rows(x: Any, y: Any) -> np.ndarray:
    """Spearman's ρ of each row pair ([R, n] each) -> [R]; NaN where a row's ranks are all tied."""
    x, y = np.atleast_2d(np.asarray(x, dtype=float)), np.atleast_2d(np.asarray(y, dtype=float))
    rows, n = x.shape
    out = np.empty(rows)
    for sl in _chunks(rows, n):
        rx, ry = average_ranks(x[sl]), average_ranks(y[sl])
        rx -= rx.mean(1, keepdims=True)
        ry -= ry.mean(1, keepdims=True)
        den = np.sqrt((rx * rx).sum(1) * (ry * ry).sum(1))
        with np.errstate(invalid="ignore", divide="ignore"):
            out[sl] = np.where(den > 1e-12, (rx * ry).sum(1) / np.where(den > 1e-12, den, 1), np.nan)
    return out


def kendall_tau_b(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's τ-b of two equally long sequences (ties handled); NaN when one side is all tied."""
    return float(tau_b_rows(_vector(x, "x"), _vector(y, "y", len(x)))[0])


def spearman_rho(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's ρ (average ranks for ties) of two equally long sequences; NaN when one side is all tied."""
    return float(rho_rows(_vector(x, "x"), _vector(y, "y", len(x)))[0])


def _vector(v: Sequence[float], name: str, n: int | None = None) -> np.ndarray:
    a = np.asarray(v, dtype=float)
    if a.ndim != 1 or (n is not None and len(a) != n) or not np.all(np.isfinite(a)):
        raise ValueError(f"{name}: need a finite 1-d sequence{f' of length {n}' if n is not None else ''}, "
                         f"got shape {a.shape}")
    return a


# ---------------------------------------------------------------------- the bootstrap
@dataclass(frozen=True)
class Correlation:
    """One rank correlation: the estimate on all the data and its 95% bootstrap interval."""

    value: float  # on every architecture, each side the mean of its seeds (NaN: undefined)
    lo: float  # 95% percentile interval
    hi: float
    archs: int  # architectures behind it
    resamples: int  # replicates in which it was defined

    def to_dict(self) -> dict[str, Any]:
        return {"value": _plain(self.value), "interval95": [_plain(self.lo), _plain(self.hi)], "archs": self.archs,
                "resamples": self.resamples}

    def shown(self, digits: int = 2) -> str:
        """``0.71 [0.52, 0.86]``."""
        if not math.isfinite(self.value):
            return "undefined"
        return f"{self.value:.{digits}f} [{self.lo:.{digits}f}, {self.hi:.{digits}f}]"


@dataclass(frozen=True)
class Agreement:
    """Kendall's τ-b and Spearman's ρ of one comparison."""

    tau: Correlation
    rho: Correlation

    def to_dict(self) -> dict[str, Any]:
        return {"tau": self.tau.to_dict(), "rho": self.rho.to_dict()}


def _plain(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None


def _padded(values: Sequence[Sequence[float]], side: str) -> tuple[np.ndarray, np.ndarray]:
    """[n, kmax] seed values (padding 0) and each architecture's seed count k [n]."""
    k = np.array([len(v) for v in values], dtype=int)
    if np.any(k < 1):
        raise ValueError(f"{side}: every architecture needs at least one value")
    out = np.zeros((len(values), int(k.max())))
    for i, v in enumerate(values):
        out[i, :len(v)] = v
    if not np.all(np.isfinite(out)):
        raise ValueError(f"{side}: values must be finite")
    return out, k


def _resampled_means(s: np.ndarray, k: np.ndarray, archs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """[R, n] means: each drawn architecture's seeds drawn again with replacement (its own count)."""
    kk = k[archs]  # [R, n]: seed count of each drawn architecture
    kmax = s.shape[1]
    seeds = np.floor(rng.random((*archs.shape, kmax)) * kk[..., None]).astype(int)  # [R, n, kmax], < kk
    vals = s[archs[..., None], seeds]  # [R, n, kmax]
    used = np.arange(kmax) < kk[..., None]  # the first kk draws of each architecture count
    return (vals * used).sum(-1) / kk


def percentile_interval(estimate: float, replicates: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The percentile interval from bootstrap ``replicates`` (NaNs left out); NaN when ``estimate`` is."""
    reps = np.asarray(replicates, dtype=float)
    reps = reps[np.isfinite(reps)]
    if not len(reps) or not math.isfinite(estimate):
        return math.nan, math.nan
    lo, hi = np.quantile(reps, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def agreement(x: Sequence[Sequence[float]], y: Sequence[Sequence[float]], *, resamples: int = DEFAULT_RESAMPLES,
              seed: int = 0) -> Agreement:
    """τ-b and ρ between per-architecture means of ``x`` and ``y`` (each: one list of seed values per
    architecture, in the same order), with seed-stratified bootstrap intervals (see the module doc)."""
    if len(x) != len(y):
        raise ValueError(f"agreement: {len(x)} architectures on one side, {len(y)} on the other")
    n = len(x)
    if n < MIN_ARCHS:
        raise StudyError(f"a rank correlation needs at least {MIN_ARCHS} architectures measured on both sides, "
                         f"got {n}")
    if resamples < 1:
        raise ValueError(f"agreement: resamples must be positive, got {resamples}")
    sx, kx = _padded(x, "x")
    sy, ky = _padded(y, "y")
    mx, my = (sx.sum(1) / kx)[None], (sy.sum(1) / ky)[None]
    tau, rho = float(tau_b_rows(mx, my)[0]), float(rho_rows(mx, my)[0])
    rng = np.random.default_rng(seed)
    archs = rng.integers(0, n, size=(resamples, n))  # drawn first: the same seed, the same architectures
    bx = _resampled_means(sx, kx, archs, rng)
    by = _resampled_means(sy, ky, archs, rng)
    out = []
    for value, reps in ((tau, tau_b_rows(bx, by)), (rho, rho_rows(bx, by))):
        lo, hi = percentile_interval(value, reps)
        out.append(Correlation(value, lo, hi, n, int(np.isfinite(reps).sum())))
    return Agreement(*out)


def within_groups(x: Sequence[Sequence[float]], y: Sequence[Sequence[float]], groups: Sequence[Hashable], *,
                  resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> dict[Hashable, Agreement | None]:
    """:func:`agreement` inside each group (e.g. a FLOP tier), in order of first appearance; None for a
    group of fewer than :data:`MIN_ARCHS` architectures."""
    if not len(x) == len(y) == len(groups):
        raise ValueError("within_groups: x, y and groups must be equally long")
    out: dict[Hashable, Agreement | None] = {}
    for i, g in enumerate(dict.fromkeys(groups)):
        idx = [j for j, h in enumerate(groups) if h == g]
        out[g] = (agreement([x[j] for j in idx], [y[j] for j in idx], resamples=resamples, seed=seed + i)
                  if len(idx) >= MIN_ARCHS else None)
    return out


def seed_ceiling(values: Sequence[Sequence[float]], *, resamples: int = DEFAULT_RESAMPLES,
                 seed: int = 0) -> Agreement:
    """The agreement of seed 0 with seed 1 of the same training (architectures with both): what a
    second run of that training reaches, the ceiling of any proxy judged against one run of it."""
    both = [v for v in values if len(v) >= 2]
    return agreement([[v[0]] for v in both], [[v[1]] for v in both], resamples=resamples, seed=seed)


__all__ = ["Correlation", "Agreement", "agreement", "within_groups", "seed_ceiling", "kendall_tau_b",
           "spearman_rho", "average_ranks", "tau_b_rows", "rho_rows", "percentile_interval", "DEFAULT_RESAMPLES",
           "MIN_ARCHS"]
