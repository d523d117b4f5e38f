"""Scaling laws: fit error(F) = a·F^(−b) + c to a ladder of trainings, with honest intervals.

The model: the top-1 error of a network of F FLOPs falls as a power law towards an irreducible
floor (the saturating power law of Hestness et al. 2017 and Hoffmann et al. 2022, "Training
Compute-Optimal Large Language Models", §3.3; one of the forms Alabdulmohsin, Neyshabur & Zhai
2022, "Revisiting Neural Scaling Laws in Language and Vision", compare by extrapolation):

    error(F) = a · F^(−b) + c          a > 0, b ≥ 0 (exponent), 0 ≤ c < min error (floor)

F is taken in GFLOPs inside this module (the public API takes plain FLOPs), so ``a`` is the
reducible error at 1 GFLOP and the fit stays well conditioned; error = 1 − accuracy in [0, 1].

The robust fit (:func:`fit_power_law`). For a fixed floor c the law is a line in log space,
log(error − c) = log a − b·log F, fitted with Huber's loss by iteratively reweighted least
squares, each step safeguarded by a Newton step (b ≥ 0: a convex problem, whose constrained
optimum sits on the bound when the free one does not). The floor is profiled out: c runs over
a grid of :data:`C_GRID` values in [0, min error), then :data:`C_LEVELS` finer grids around the
best. Floors are compared on one scale, the Huber loss of log(observed) − log(fitted), as
Hoffmann et al. score their fits (the line's own loss is not comparable across floors: log(error
− c) stretches residuals more the closer c comes to the errors). Huber's δ is
:data:`HUBER_DELTA` = 0.03 in log space, a 3% relative error: the seed noise of a ladder point's
mean (typically 0.5-2% of the error) stays in the quadratic zone, and a
broken point (a crashed or mis-configured run) counts only linearly. Hoffmann et al. took
δ = 1e-3 for a log *loss*, whose residuals are far smaller than those of a top-1 error measured
on a few thousand images; at 1e-3 every residual here would be in the linear zone (an L1 fit).

The bootstrap (:func:`fit_scaling`). Besiroglu et al. 2024 ("Chinchilla Scaling: A replication
attempt") found the published intervals of such a fit far too narrow, so every interval here
comes from refitting resampled ladders, :data:`DEFAULT_RESAMPLES` times. In each replicate every
ladder point's seed measurements are resampled with replacement (stratified by point); each
drawn measurement gets the validation set's sampling noise as a parametric draw
Binomial(n_val, error)/n_val where n_val is known; the law is refitted to the points' means.
With k seeds the resampled mean's variance is (k−1)/k of the usual estimate, too small at k = 2
or 3, so each seed's deviation from its point's mean is scaled by sqrt(k/(k−1)) before it is
resampled (adjusted residuals, Davison & Hinkley 1997, "Bootstrap Methods and their
Application", ch. 3). Intervals are the 2.5% and 97.5% percentiles over the replicates. Measured
on synthetic ladders (tests/test_scaling_law.py): the 95% band covers the true curve in ~91-94%
of draws with 5 seeds per point, ~80-87% with 3 (whose spread is itself uncertain).

A law is judged by extrapolation (Alabdulmohsin et al. 2022): the ``holdout`` largest-FLOPs
points are left out of the fit and compared with its prediction there.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from mvsearch.core.errors import StudyError

GFLOP = 1e9  # FLOPs are fitted in GFLOPs: a is then the reducible error at 1 GFLOP
HUBER_DELTA = 0.03  # Huber's δ in log space (a 3% relative error); see the module docstring
C_GRID = 200  # floors c tried on [0, min error)
C_LEVELS = 4  # finer grids around the best floor, each 10x finer (c to ~5e-7 of the min error)
C_FINE = 21  # floors in each finer grid
HUBER_STEPS = 200  # at most this many steps of one Huber fit (most stop after a few: see _huber_fit)
ERROR_FLOOR = 1e-9  # log(0) guard for an error of exactly 0 (or error − c = 0)
MIN_POINTS = 4  # distinct ladder points needed in all
MIN_FIT_POINTS = 3  # ... and left for the fit after the holdout (a, b, c: three unknowns)
DEFAULT_RESAMPLES = 1000
MIN_RESAMPLES = 100  # fewer cannot place a 2.5% percentile
CHUNK = 256  # replicates fitted at once (bounds memory: CHUNK x C_GRID x points floats)
Q_LO, Q_HI = 0.025, 0.975  # a 95% percentile interval
# warnings: when an interval says a parameter is not pinned down by the ladder
C_SPAN_WARN = 0.5  # c unidentifiable: its interval covers more than half of [0, min error)
B_ZERO = 0.01  # b this small is no decrease: "flat" for the estimate, "reaches 0" for its interval
B_RATIO_WARN = 4.0  # b unidentifiable: the interval's ends differ by more than this factor


@dataclass(frozen=True)
class Measurement:
    """One training of one ladder point: its cost and its top-1 error."""

    flops: float  # FLOPs of the network (its ladder point is identified by this value)
    error: float  # 1 − top-1 accuracy, in [0, 1]
    seed: int  # the training seed
    n_val: int | None = None  # validation images the error was measured on, when known


@dataclass(frozen=True)
class PowerLaw:
    """error(F) = a·(F/1e9)^(−b) + c, F in FLOPs."""

    a: float  # reducible error at 1 GFLOP
    b: float  # exponent (≥ 0)
    c: float  # irreducible error floor (≥ 0)

    def __call__(self, flops: Any) -> Any:
        """The error predicted at ``flops`` (a number or an array of FLOPs)."""
        return self.a * (np.asarray(flops, dtype=float) / GFLOP) ** (-self.b) + self.c

    def flops_for(self, error: float) -> float | None:
        """FLOPs at which the law reaches ``error``: ((error − c)/a)^(−1/b); None if it never does."""
        return _flops_for(np.array([self.a]), np.array([self.b]), np.array([self.c]), error)[0]


@dataclass(frozen=True)
class Prediction:
    """The law's error at one FLOPs value with its 95% bootstrap interval."""

    flops: float
    error: float  # the point estimate's prediction
    lo: float  # 2.5% percentile over the bootstrap replicates
    hi: float  # 97.5% percentile


@dataclass(frozen=True)
class HeldOut:
    """A held-out ladder point against the extrapolation of the law fitted without it."""

    flops: float
    observed: float  # mean error over its seeds
    n_seeds: int
    predicted: float  # the fit's extrapolation
    lo: float  # 95% band of the extrapolated curve
    hi: float
    obs_lo: float  # 95% band an observed mean would fall in if the law held: the curve's
    obs_hi: float  # ... uncertainty plus this point's own seed and validation noise
    error_pp: float  # extrapolation error, observed − predicted, in percentage points
    inside: bool  # observed within [obs_lo, obs_hi]: the point agrees with the law


@dataclass(frozen=True)
class TargetFlops:
    """The FLOPs needed for a target error, with its interval and how often it is reachable."""

    error: float  # the target error
    flops: float | None  # for the point estimate; None: unreachable (target ≤ c, or b = 0)
    lo: float | None  # 2.5% percentile over replicates (None: unreachable in over 2.5% of them)
    hi: float | None  # 97.5% percentile (None: unreachable in over 2.5% of them)
    reachable: float  # fraction of the replicates whose curve reaches the target


@dataclass(frozen=True)
class ScalingFit:
    """A fitted scaling law with its bootstrap intervals, extrapolation check and warnings."""

    law: PowerLaw  # point estimate, fitted to the per-point mean errors
    a_ci: tuple[float, float]  # 95% percentile intervals
    b_ci: tuple[float, float]
    c_ci: tuple[float, float]
    predictions: tuple[Prediction, ...]  # at each requested FLOPs value
    heldout: tuple[HeldOut, ...]  # one per held-out point, smallest FLOPs first
    target: TargetFlops | None  # when a target error was asked for
    warnings: tuple[str, ...]  # one line each
    n_points: int  # distinct ladder points in all (fitted + held out)
    n_fit: int  # ladder points the law was fitted to
    n_seeds: int  # seeds per ladder point (the fewest, where points differ)
    resamples: int
    seed: int  # of the bootstrap's random generator
    replicates: np.ndarray = field(repr=False, compare=False)  # [resamples, 3]: (a, b, c) of each refit

    def predict(self, flops: float) -> Prediction:
        """The prediction and its 95% band at one FLOPs value."""
        return _prediction(self.law, self.replicates, flops)

    def curve(self, flops_grid: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(mid, lo, hi) over ``flops_grid``: the point estimate and the percentile band, for plotting."""
        f = np.asarray(flops_grid, dtype=float)
        lo, hi = np.quantile(_replicate_curves(self.replicates, f), [Q_LO, Q_HI], axis=0)
        return np.asarray(self.law(f), dtype=float), lo, hi

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: plain floats (None for infinities), lists, no arrays."""
        return {
            "law": {"a": self.law.a, "b": self.law.b, "c": self.law.c, "flops_unit": GFLOP},
            "intervals": {"a": list(self.a_ci), "b": list(self.b_ci), "c": list(self.c_ci)},
            "predictions": [_plain(p.__dict__) for p in self.predictions],
            "heldout": [_plain(h.__dict__) for h in self.heldout],
            "target": _plain(self.target.__dict__) if self.target is not None else None,
            "warnings": list(self.warnings),
            "n_points": self.n_points, "n_fit": self.n_fit, "n_seeds": self.n_seeds,
            "resamples": self.resamples, "seed": self.seed,
        }


@dataclass(frozen=True)
class FamilyComparison:
    """Which family of networks a set of fitted laws predicts best at one FLOPs value."""

    flops: float
    best: str  # the family with the lowest predicted error
    indistinguishable: tuple[str, ...]  # other families whose 95% interval overlaps the best one's
    predictions: dict[str, Prediction]  # per family

    @property
    def verdict(self) -> str:
        """``width``, or ``width, dwr (indistinguishable)`` when the intervals overlap."""
        if not self.indistinguishable:
            return self.best
        return ", ".join((self.best, *self.indistinguishable)) + " (indistinguishable)"

    def to_dict(self) -> dict[str, Any]:
        return {"flops": self.flops, "best": self.best, "indistinguishable": list(self.indistinguishable),
                "verdict": self.verdict, "predictions": {k: _plain(p.__dict__) for k, p in self.predictions.items()}}


# ---------------------------------------------------------------------- the robust fit


def _huber(r: np.ndarray, delta: float) -> np.ndarray:
    a = np.abs(r)
    return np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))


def _wls(W: np.ndarray, lx: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted least squares of Y [N, P] on log F with slope −b ≤ 0: (log a, b), each [N]."""
    sw = W.sum(-1)
    mx = (W * lx).sum(-1) / sw
    my = (W * Y).sum(-1) / sw
    dx = lx - mx[:, None]
    b = np.maximum(-(W * dx * (Y - my[:, None])).sum(-1) / (W * dx * dx).sum(-1), 0.0)
    return my + b * mx, b  # with b clipped at 0 the optimum intercept is the weighted mean


def _huber_fit(lx: np.ndarray, Y: np.ndarray, w: np.ndarray, delta: float) -> tuple[np.ndarray, np.ndarray]:
    """Huber regression of each row of Y [N, P] on log F with b ≥ 0: (log a, b), each [N].

    Each step takes the better (lower Huber loss) of an IRLS step, which always descends, and a
    Newton step for the current split into quadratic and linear residuals, which lands on the
    optimum once the split is right (IRLS alone crawls when many residuals are linear). Rows
    leave the loop when they stop moving.
    """
    def loss(Yr, al, b):
        return (w * _huber(Yr - (al[:, None] - b[:, None] * lx), delta)).sum(-1)

    alpha, b = _wls(np.broadcast_to(w, Y.shape), lx, Y)
    act = np.arange(Y.shape[0])
    for _ in range(HUBER_STEPS):
        Ya, al0, b0 = Y[act], alpha[act], b[act]
        r = Ya - (al0[:, None] - b0[:, None] * lx)
        quad = np.abs(r) <= delta
        al, bb = _wls(w * np.where(quad, 1.0, delta / np.maximum(np.abs(r), 1e-300)), lx, Ya)  # IRLS
        # Newton: least squares on the quadratic residuals, the linear ones held at ±δ
        q, lin = w * quad, w * delta * np.sign(r) * ~quad
        s0, s1, s2 = q.sum(-1), (q * lx).sum(-1), (q * lx * lx).sum(-1)
        t0, t1 = (q * Ya + lin).sum(-1), ((q * Ya + lin) * lx).sum(-1)
        det = s0 * s2 - s1 * s1
        ok = det > 1e-12 * np.maximum(s0 * s2, 1e-300)  # at least two distinct FLOPs in the quadratic zone
        det = np.where(ok, det, 1.0)
        n_al, n_b = (s2 * t0 - s1 * t1) / det, (s1 * t0 - s0 * t1) / det
        newton = ok & (n_b >= 0) & (loss(Ya, n_al, n_b) < loss(Ya, al, bb))
        al, bb = np.where(newton, n_al, al), np.where(newton, n_b, bb)
        alpha[act], b[act] = al, bb
        act = act[np.abs(al - al0) + np.abs(bb - b0) > 1e-12]
        if not act.size:
            break
    return alpha, b


def _profile(lx: np.ndarray, E: np.ndarray, w: np.ndarray, C: np.ndarray, delta: float):
    """For floors C [R, K] and errors E [R, P]: Huber fit of log(E − c) on log F per floor.

    Returns (loss, log a, b), each [R, K]; the loss is on the common scale log E − log fit.
    """
    R, K = C.shape
    Y = np.log(np.maximum(E[:, None, :] - C[:, :, None], ERROR_FLOOR)).reshape(R * K, -1)  # [R*K, P]
    alpha, b = (v.reshape(R, K) for v in _huber_fit(lx, Y, w, delta))
    fit = np.exp(alpha)[..., None] * np.exp(-b[..., None] * lx) + C[..., None]
    resid = np.log(np.maximum(E[:, None, :], ERROR_FLOOR)) - np.log(fit)
    return (w * _huber(resid, delta)).sum(-1), alpha, b


def _fit_batch(x: np.ndarray, E: np.ndarray, w: np.ndarray, delta: float = HUBER_DELTA):
    """Fit one law per row of E [R, P] at GFLOPs x [P]; returns arrays a, b, c of shape [R]."""
    lx = np.log(x)
    R = E.shape[0]
    m = E.min(axis=1)  # [R] the floor must stay below every point's error
    top = m * (1.0 - 1e-9)  # c = min error would put a point at log(0)
    C = m[:, None] * (np.arange(C_GRID) / C_GRID)  # [R, C_GRID] on [0, m)
    loss, alpha, b = _profile(lx, E, w, C, delta)
    rows = np.arange(R)
    k = loss.argmin(axis=1)
    step = m / C_GRID
    for _ in range(C_LEVELS):
        centre = C[rows, k]
        lo = np.maximum(centre - step, 0.0)
        hi = np.minimum(centre + step, top)
        C = lo[:, None] + (hi - lo)[:, None] * np.linspace(0.0, 1.0, C_FINE)
        loss, alpha, b = _profile(lx, E, w, C, delta)
        k = loss.argmin(axis=1)
        step = (hi - lo) / (C_FINE - 1)
    return np.exp(alpha[rows, k]), b[rows, k], C[rows, k]


def fit_power_law(flops: Sequence[float], errors: Sequence[float], weights: Sequence[float] | None = None,
                  *, delta: float = HUBER_DELTA) -> PowerLaw:
    """The robust fit of error = a·(F/1e9)^(−b) + c (see the module docstring).

    Repeated FLOPs values are one ladder point: their errors are averaged (weighted) and their
    weights summed. Needs at least 3 distinct FLOPs values (three unknowns). ``delta`` is
    Huber's δ in log space; a large one (1e3) gives the plain least-squares fit.
    """
    x, e, w = _points(flops, errors, weights)
    if len(x) < MIN_FIT_POINTS:
        raise StudyError(f"need at least {MIN_FIT_POINTS} distinct FLOPs values to fit a power law, got {len(x)}")
    a, b, c = _fit_batch(x / GFLOP, e[None, :], w, delta)
    return PowerLaw(float(a[0]), float(b[0]), float(c[0]))


def _points(flops, errors, weights):
    f = np.asarray(flops, dtype=float)
    e = np.asarray(errors, dtype=float)
    w = np.ones_like(f) if weights is None else np.asarray(weights, dtype=float)
    if not (f.shape == e.shape == w.shape and f.ndim == 1):
        raise StudyError(f"flops, errors and weights must be equal-length lists, got {f.shape}, {e.shape}, {w.shape}")
    if not (np.all(np.isfinite(f)) and np.all(f > 0) and np.all(np.isfinite(e)) and np.all(w > 0)):
        raise StudyError("flops must be positive, errors finite and weights positive")
    x, inv = np.unique(f, return_inverse=True)
    sw = np.bincount(inv, weights=w)
    return x, np.bincount(inv, weights=w * e) / sw, sw


def _flops_for(a: np.ndarray, b: np.ndarray, c: np.ndarray, target: float) -> list[float | None]:
    out: list[float | None] = []
    for ai, bi, ci in zip(a, b, c):
        if target <= ci or ai <= 0:
            out.append(None)
        elif bi <= 0:  # flat: everywhere at a + c
            out.append(0.0 if target >= ai + ci else None)
        else:
            log_g = -math.log((target - ci) / ai) / bi  # log GFLOPs; beyond ~1e300 FLOPs is never
            out.append(math.exp(log_g) * GFLOP if log_g < 650.0 else None)
    return out


# ---------------------------------------------------------------------- the bootstrap


def _ladder(measurements: Sequence[Measurement]) -> list[tuple[float, np.ndarray, np.ndarray]]:
    """Ladder points, smallest FLOPs first: (flops, errors [k], n_val [k], 0 where unknown)."""
    if not measurements:
        raise StudyError("no measurements to fit a scaling law to")
    by: dict[float, list[Measurement]] = {}
    for m in measurements:
        f, e = float(m.flops), float(m.error)
        if not (math.isfinite(f) and f > 0):
            raise StudyError(f"a measurement's FLOPs must be positive, got {m.flops!r} (seed {m.seed})")
        if not (math.isfinite(e) and 0.0 <= e <= 1.0):
            raise StudyError(f"a measurement's error must be in [0, 1], got {m.error!r} at {f:g} FLOPs")
        if m.n_val is not None and int(m.n_val) <= 0:
            raise StudyError(f"n_val must be a positive image count, got {m.n_val!r} at {f:g} FLOPs")
        by.setdefault(f, []).append(m)
    return [(f, np.array([m.error for m in ms], dtype=float), np.array([m.n_val or 0 for m in ms], dtype=np.int64))
            for f, ms in sorted(by.items())]


def _resample(points, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap means [resamples, points]: seeds resampled per point, plus binomial validation noise."""
    out = np.empty((resamples, len(points)))
    for j, (_, e, n) in enumerate(points):
        k = len(e)
        dev = (e - e.mean()) * (math.sqrt(k / (k - 1)) if k > 1 else 1.0)  # adjusted residuals
        idx = rng.integers(0, k, size=(resamples, k))
        draw = np.clip(e.mean() + dev[idx], 0.0, 1.0)
        nv = n[idx]
        known = nv > 0
        if known.any():
            noisy = rng.binomial(np.where(known, nv, 1), draw) / np.where(known, nv, 1)
            draw = np.where(known, noisy, draw)
        out[:, j] = draw.mean(axis=1)
    return out


def _replicate_curves(reps: np.ndarray, flops: np.ndarray) -> np.ndarray:
    """Each replicate's predicted error at ``flops``: [resamples, len(flops)] (capped, never inf)."""
    with np.errstate(over="ignore"):
        curves = reps[:, 0, None] * (flops / GFLOP) ** (-reps[:, 1, None]) + reps[:, 2, None]
    return np.minimum(curves, 1e300)


def _prediction(law: PowerLaw, reps: np.ndarray, flops: float) -> Prediction:
    lo, hi = _ci(_replicate_curves(reps, np.array([float(flops)]))[:, 0])
    return Prediction(float(flops), float(law(flops)), lo, hi)


def _ci(values: np.ndarray) -> tuple[float, float]:
    lo, hi = np.quantile(values, [Q_LO, Q_HI])
    return float(lo), float(hi)


def _flops_ci(values: list[float | None]) -> tuple[float | None, float | None]:
    """Percentiles of FLOPs where None is +infinity (unreachable): an end that lands there is None."""
    v = np.sort(np.array([math.inf if x is None else x for x in values]))
    ends = []
    for q in (Q_LO, Q_HI):  # linear interpolation between order statistics, as np.quantile
        pos = q * (len(v) - 1)
        i, t = int(math.floor(pos)), pos - math.floor(pos)
        lo_v, hi_v = v[i], v[min(i + 1, len(v) - 1)]
        val = lo_v if t == 0 else (math.inf if math.isinf(hi_v) else lo_v + t * (hi_v - lo_v))
        ends.append(None if math.isinf(val) else float(val))
    return ends[0], ends[1]


def fit_scaling(measurements: Sequence[Measurement], *, holdout: int = 1, resamples: int = DEFAULT_RESAMPLES,
                seed: int = 0, predict: Sequence[float] = (), target_error: float | None = None) -> ScalingFit:
    """Fit the law to a ladder, bootstrap its intervals and check it on the held-out largest points.

    ``measurements`` hold several seeds per ladder point (a point is one FLOPs value). The
    ``holdout`` largest points are left out of the fit; the law is fitted to the other points'
    mean errors, each weighted by its number of seeds. ``resamples`` bootstrap replicates
    (seeded by ``seed``: the same seed gives the same result) give the 95% intervals of a, b, c,
    of the error at each FLOPs value in ``predict`` and at each held-out point, and of the FLOPs
    needed to reach ``target_error``. Refuses (:class:`StudyError`) fewer than 4 points, or
    fewer than 3 left to fit after the holdout.
    """
    points = _ladder(measurements)
    n = len(points)
    if isinstance(holdout, bool) or not isinstance(holdout, int) or holdout < 0:
        raise StudyError(f"holdout must be a whole number of ladder points ≥ 0, got {holdout!r}")
    if n < MIN_POINTS or n - holdout < MIN_FIT_POINTS:
        raise StudyError(f"need at least {MIN_POINTS} ladder points to fit, with {MIN_FIT_POINTS} left after the "
                         f"holdout; got {n} with holdout {holdout}; add --points or lower --holdout")
    if isinstance(resamples, bool) or not isinstance(resamples, int) or resamples < MIN_RESAMPLES:
        raise StudyError(f"resamples must be at least {MIN_RESAMPLES} for a 95% interval, got {resamples!r}")
    if target_error is not None and not (0.0 < float(target_error) < 1.0):
        raise StudyError(f"target error must be in (0, 1), got {target_error!r}")
    for f in predict:
        if not (math.isfinite(float(f)) and float(f) > 0):
            raise StudyError(f"FLOPs to predict at must be positive, got {f!r}")

    fit_pts, held_pts = points[:n - holdout], points[n - holdout:]
    x = np.array([f for f, _, _ in fit_pts]) / GFLOP
    w = np.array([len(e) for _, e, _ in fit_pts], dtype=float)  # a mean of k seeds weighs k
    means = np.array([e.mean() for _, e, _ in fit_pts])
    a0, b0, c0 = (float(v[0]) for v in _fit_batch(x, means[None, :], w))
    law = PowerLaw(a0, b0, c0)

    rng = np.random.default_rng(seed)
    boot = _resample(points, resamples, rng)  # [R, n]: held-out points too, for their own noise
    reps = np.concatenate([np.stack(_fit_batch(x, boot[i:i + CHUNK, :n - holdout], w), axis=1)
                           for i in range(0, resamples, CHUNK)])  # [R, 3]
    a_ci, b_ci, c_ci = (_ci(reps[:, i]) for i in range(3))

    held = []
    for j, (f, e, _) in enumerate(held_pts, start=n - holdout):
        p = _prediction(law, reps, f)
        obs = float(e.mean())
        # if the law held, an observed mean would be the curve plus this point's own noise
        o_lo, o_hi = _ci(_replicate_curves(reps, np.array([f]))[:, 0] + (boot[:, j] - obs))
        held.append(HeldOut(f, obs, len(e), p.error, p.lo, p.hi, o_lo, o_hi, 100 * (obs - p.error),
                            bool(o_lo <= obs <= o_hi)))
    target = None
    if target_error is not None:
        t = float(target_error)
        each = _flops_for(reps[:, 0], reps[:, 1], reps[:, 2], t)
        lo, hi = _flops_ci(each)
        target = TargetFlops(t, law.flops_for(t), lo, hi, sum(v is not None for v in each) / resamples)
    warnings = _warnings(law, b_ci, c_ci, float(means.min()), points)
    return ScalingFit(law, a_ci, b_ci, c_ci, tuple(_prediction(law, reps, f) for f in predict), tuple(held),
                      target, tuple(warnings), n, n - holdout, min(len(e) for _, e, _ in points), resamples,
                      seed, reps)


def _warnings(law: PowerLaw, b_ci, c_ci, min_error: float, points) -> list[str]:
    out = []
    if law.b < B_ZERO:
        out.append(f"the fitted error does not fall with FLOPs (b = {law.b:.3f}): no scaling over this ladder")
    if b_ci[0] < B_ZERO:
        out.append(f"b unidentifiable: its 95% interval [{b_ci[0]:.3f}, {b_ci[1]:.3f}] reaches 0")
    elif b_ci[1] > B_RATIO_WARN * b_ci[0]:
        out.append(f"b unidentifiable: its 95% interval [{b_ci[0]:.3f}, {b_ci[1]:.3f}] spans more than "
                   f"a factor {B_RATIO_WARN:g}")
    if min_error > 0 and c_ci[1] - c_ci[0] > C_SPAN_WARN * min_error:
        out.append(f"c unidentifiable: its 95% interval [{c_ci[0]:.3f}, {c_ci[1]:.3f}] spans most of its "
                   f"feasible range [0, {min_error:.3f})")
    if all(len(e) == 1 and not (n > 0).any() for _, e, n in points):
        out.append("one seed per ladder point and no validation-set size: the bootstrap has no noise to "
                   "resample, so the intervals are zero-width; train more seeds")
    return out


# ---------------------------------------------------------------------- comparing families


def compare_families(fits: dict[str, ScalingFit], flops: float) -> FamilyComparison:
    """The family with the lowest predicted error at ``flops``, and those it cannot be told from."""
    if not fits:
        raise StudyError("no fitted families to compare")
    preds = {name: fit.predict(flops) for name, fit in fits.items()}
    best = min(preds, key=lambda k: preds[k].error)
    tied = tuple(k for k, p in sorted(preds.items(), key=lambda kv: kv[1].error)
                 if k != best and p.lo <= preds[best].hi and preds[best].lo <= p.hi)
    return FamilyComparison(float(flops), best, tied, preds)


def _plain(d: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, (float, np.floating)):
            v = float(v) if math.isfinite(v) else None
        elif isinstance(v, np.bool_):
            v = bool(v)
        out[k] = v
    return out


__all__ = ["Measurement", "PowerLaw", "Prediction", "HeldOut", "TargetFlops", "ScalingFit", "FamilyComparison",
           "fit_power_law", "fit_scaling", "compare_families"]
