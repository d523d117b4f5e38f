"""Land a scaling family on target FLOPs: the multiplier whose rounded network comes closest.

A family (:mod:`mvsearch.arch.scaling`) maps a FLOP multiplier ``s`` to depth, width and
resolution factors with ``d * w**2 * r**2 = s``, but rounding (widths to multiples of 8, depths
to whole layers, the input side to multiples of 32) makes the network, and so its FLOPs, a step
function of ``s``, and the true FLOPs are not ``s`` times the base's. :func:`solve_point` therefore
searches ``s`` itself, counting each network met with :func:`~mvsearch.cost.bounds.check_cost`
(fvcore-exact, microseconds, at the scaled deployment resolution):

1. the reachable range: a geometric scan of ``s`` around 1, wide enough that every axis either
   bottoms out (width 8 everywhere, 1 layer everywhere, a 32-pixel input) or passes mvsearch's
   bounds (:mod:`mvsearch.core.limits`: widths, depths, input side, params, FLOPs, activations, a
   patch that no longer fits its map), then a bisection of each edge of the interval around ``s = 1``
   where the family stays buildable;
2. the target: every pair of neighbouring scanned networks whose FLOPs straddle it is bisected in
   ``log s`` down to the step where the FLOPs cross it, so the networks just below and just above
   are both met;
3. of every distinct network met, the one with the smallest ``|log(achieved / target)|`` wins; its
   multiplier is the ``s`` met for it nearest to ``target / base FLOPs`` (``s = 1`` for the base).

FLOPs grow monotonically with each factor, so for families whose factors all grow with ``s``
(every default) the winner is the closest network the family can reach. Targets outside the
reachable range are refused (:class:`~mvsearch.core.errors.BudgetError`, naming the smallest or
largest reachable FLOPs), as are unknown families and parameters (:class:`~mvsearch.core.errors.ArchError`).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Iterable

from mvsearch.arch.config import ArchConfig
from mvsearch.arch.scaling import apply_family, check_family
from mvsearch.core.errors import ArchError, BudgetError
from mvsearch.core.limits import MAX_FLOPS, check_int
from mvsearch.core.text import shorten
from mvsearch.core.units import format_count
from mvsearch.cost.analytic import AnalyticCost
from mvsearch.cost.bounds import check_cost

#: the scan covers factors from e^-SPAN to e^SPAN on the fastest-moving axis: beyond, every axis has
#: bottomed out (a width of 4096 x e^-9 rounds to 8) or passed its bound (8 x e^9 > 4096)
SPAN = 9.0
#: scan points per side of s = 1
SCAN_STEPS = 60
#: bisections stop when the interval is this narrow in log s
LOG_TOL = 1e-11
#: most straddling pairs bisected per target (one for monotone families)
MAX_BRACKETS = 8


@dataclass(frozen=True)
class LadderPoint:
    """One rung of a ladder: the network a family reaches nearest to a FLOP target."""

    family: str  # scaling family name
    target_flops: int | float  # what was asked for
    multiplier: float  # the FLOP multiplier s handed to the family
    factors: tuple[float, float, float]  # (depth, width, resolution) factors at s
    arch: ArchConfig  # the scaled network
    resolution: int  # its deployment input side
    flops: int  # fvcore FLOPs at ``resolution`` (what was achieved)
    params: int  # trainable parameters
    activations: int  # fvcore activations at ``resolution``
    rel_error: float  # achieved / target - 1

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["arch"] = self.arch.to_dict()
        d["factors"] = list(self.factors)
        return d


@dataclass
class _Met:
    """A distinct network met during the search and every log s that gave it."""

    arch: ArchConfig
    resolution: int
    cost: AnalyticCost
    log_s: list[float]


def _check_target(t: Any) -> float:
    if isinstance(t, bool) or not isinstance(t, (int, float)):
        raise BudgetError(f"target FLOPs: must be a number, got {shorten(t)}")
    if not math.isfinite(t) or t <= 0:
        raise BudgetError(f"target FLOPs: must be positive and finite, got {shorten(t)}; ask for e.g. 1e9 (1G)")
    if t > MAX_FLOPS:
        raise BudgetError(f"target FLOPs: {format_count(t)} exceeds mvsearch's bound of {format_count(MAX_FLOPS)}")
    return float(t)


class _Solver:
    """The search over s for one family and base, shared by every target of a ladder."""

    def __init__(self, family: str, cfg: ArchConfig, resolution: int, params: dict[str, Any]) -> None:
        self.family = check_family(family)
        self.params = self.family.params(**params)
        exps = self.family.exponents_of(self.params)
        self.cfg, self.resolution = cfg, resolution
        self.met: dict[tuple[ArchConfig, int], _Met] = {}
        self.at: dict[float, tuple[ArchConfig, int] | None] = {}  # log s -> network (None: not buildable)
        self.why: dict[float, str] = {}  # log s -> why not buildable
        base = self._eval(0.0)
        if base is None:  # the base itself is out of bounds: the caller's input, said as it is
            raise ArchError(self.why[0.0])
        self.base_flops = self.met[base].cost.flops
        span = SPAN / max(abs(e) for e in exps)
        step = span / SCAN_STEPS
        self.lo, self.lo_bad = self._edge(step, -1)
        self.hi, self.hi_bad = self._edge(step, +1)
        inside = [ls for ls in self.at if self.lo <= ls <= self.hi]
        flops = [(self._flops(ls), ls) for ls in inside]
        self.min_flops, self.min_ls = min(flops)
        self.max_flops, self.max_ls = max(flops)

    # ------------------------------------------------------------------ evaluation
    def _eval(self, ls: float) -> tuple[ArchConfig, int] | None:
        if ls in self.at:
            return self.at[ls]
        s = math.exp(ls)
        try:
            arch, res = apply_family(self.family.name, self.cfg, self.resolution, s, **self.params)
            key = (arch, res)
            if key not in self.met:
                cost = check_cost(arch, res, what=f"the {self.family.name} network at s={s:.4g}")
                self.met[key] = _Met(arch, res, cost, [])
            self.met[key].log_s.append(ls)
        except ArchError as exc:
            key = None
            self.why[ls] = str(exc)
        self.at[ls] = key
        return key

    def _flops(self, ls: float) -> int:
        key = self.at[ls]
        if key is None:  # callers ask only for buildable points; say why if one is not
            raise ArchError(self.why.get(ls, f"no buildable network at log s = {ls:.3g}"))
        return self.met[key].cost.flops

    def _edge(self, step: float, sign: int) -> tuple[float, float | None]:
        """The last buildable log s on one side of 0 and the first unbuildable one (None: none)."""
        good = 0.0
        for i in range(1, SCAN_STEPS + 1):
            ls = sign * i * step
            if self._eval(ls) is None:
                bad = ls
                while abs(bad - good) > LOG_TOL:
                    mid = (good + bad) / 2
                    if self._eval(mid) is None:
                        bad = mid
                    else:
                        good = mid
                return good, bad
            good = ls
        return good, None

    # ------------------------------------------------------------------ one target
    def _range_error(self, target: float, below: bool) -> BudgetError:
        name, res = self.family.name, self.resolution
        if below:
            flops, ls, bad, end = self.min_flops, self.min_ls, self.lo_bad, "smallest"
            fix = "ask for at least that, or use another family or a smaller base"
        else:
            flops, ls, bad, end = self.max_flops, self.max_ls, self.hi_bad, "largest"
            fix = "ask for at most that, or use another family or a larger base"
        key = self.at[ls]
        if key is not None:  # of the multipliers that give that network, the one nearest s = 1
            ls = min(self.met[key].log_s, key=abs)
        why = f"; past it: {self.why[bad]}" if bad is not None and bad in self.why else ""
        return BudgetError(
            f"target {format_count(target)} FLOPs is {'below' if below else 'above'} what the {name} family "
            f"reaches from this base (input {res}): the {end} network has {format_count(flops)} FLOPs "
            f"({flops:,}, s={math.exp(ls):.4g}); {fix}{why}")

    def solve(self, target: float, raw: int | float) -> LadderPoint:
        if target < self.min_flops:
            raise self._range_error(target, below=True)
        if target > self.max_flops:
            raise self._range_error(target, below=False)
        guess = math.log(target / self.base_flops)
        if self.lo <= guess <= self.hi:
            self._eval(guess)  # the intended multiplier, often already on the right step
        pts = sorted((ls, self._flops(ls)) for ls, key in self.at.items()
                     if key is not None and self.lo <= ls <= self.hi)
        if any(f == target for _, f in pts):  # hit exactly: nothing is closer
            return self._best(target, raw, guess)
        brackets = [(a, b) for (a, fa), (b, fb) in zip(pts, pts[1:]) if (fa - target) * (fb - target) < 0]
        for a, b in brackets[:MAX_BRACKETS]:
            self._bisect(a, b, target)
        return self._best(target, raw, guess)

    def _bisect(self, a: float, b: float, target: float) -> None:
        side_a = self._flops(a) < target
        while b - a > LOG_TOL:
            mid = (a + b) / 2
            if self._eval(mid) is None:  # not buildable between two buildable points: leave it
                return
            f = self._flops(mid)
            if f == target:
                return
            if (f < target) == side_a:
                a = mid
            else:
                b = mid

    def _best(self, target: float, raw: int | float, guess: float) -> LadderPoint:
        def rank(m: _Met) -> tuple[float, float]:
            return abs(math.log(m.cost.flops / target)), min(abs(ls - guess) for ls in m.log_s)

        best = min(self.met.values(), key=rank)
        ls = min(best.log_s, key=lambda x: (abs(x - guess), x))
        s = 1.0 if ls == 0.0 else math.exp(ls)
        c = best.cost
        return LadderPoint(
            family=self.family.name, target_flops=raw, multiplier=s,
            factors=self.family.factors(s, **self.params), arch=best.arch, resolution=best.resolution,
            flops=c.flops, params=c.params, activations=c.activations, rel_error=c.flops / target - 1,
        )


def solve_point(family: str, cfg: ArchConfig, resolution: int, target_flops: int | float,
                **params: Any) -> LadderPoint:
    """The network of ``family`` scaled from ``cfg`` (deployed at ``resolution``) whose FLOPs at its
    scaled deployment resolution come closest to ``target_flops`` (in ratio)."""
    t = _check_target(target_flops)
    return _Solver(family, cfg, resolution, params).solve(t, target_flops)


def solve_ladder(family: str, cfg: ArchConfig, resolution: int, targets: Iterable[int | float],
                 **params: Any) -> list[LadderPoint]:
    """:func:`solve_point` for each of ``targets``, in their order (one scan of the family shared)."""
    raw = list(targets)
    checked = [_check_target(t) for t in raw]
    solver = _Solver(family, cfg, resolution, params)
    return [solver.solve(t, r) for t, r in zip(checked, raw)]


def geometric_targets(lo: int | float, hi: int | float, points: int) -> list[int]:
    """``points`` FLOP targets from ``lo`` to ``hi`` (both included), evenly spaced in log."""
    points = check_int(points, "points", 2, 1000, BudgetError, what="a number of ladder points")
    lo_f, hi_f = _check_target(lo), _check_target(hi)
    if not hi_f > lo_f:
        raise BudgetError(f"ladder: the high end ({format_count(hi_f)}) must exceed the low end ({format_count(lo_f)})")
    ratio = hi_f / lo_f
    out = [int(round(lo_f * ratio ** (i / (points - 1)))) for i in range(points)]
    out[0], out[-1] = int(round(lo_f)), int(round(hi_f))
    if out[0] < 1 or any(b <= a for a, b in zip(out, out[1:])):
        raise BudgetError(f"ladder: {points} points between {format_count(lo_f)} and {format_count(hi_f)} FLOPs "
                          f"repeat a whole FLOP count; use fewer points or a wider range")
    return out


__all__ = ["LadderPoint", "solve_point", "solve_ladder", "geometric_targets"]
