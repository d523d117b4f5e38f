"""Budgets: FLOP tiers and a parameter cap from ``--budget`` / ``--tiers`` / ``--max-params``, and
whether a candidate may be trained.

A budget is about the *deployed* model: FLOPs (fvcore's, 1 multiply-add = 1 FLOP) and params are
counted at the space's deployment resolution and num_classes. Several FLOP budgets make *tiers*
(``--budget 0.42G,1.05G,2.0G`` or ``--tiers paper``): tier i holds the architectures whose FLOPs lie
in ``(budget[i-1], budget[i]]``, so each tier is searched for, and pruned against, models of its own
size. A candidate outside the band of the tier it was sampled for is rejected before training.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from mvsearch.arch.presets import PAPER_FLOPS
from mvsearch.core.errors import BudgetError
from mvsearch.core.limits import MAX_TIERS, check_digits
from mvsearch.core.text import shorten
from mvsearch.core.units import format_count, format_flops, parse_flops, parse_params


#: the paper's three FLOP levels, ``--tiers paper``: the FLOPs of XXS, XS and S (a view of
#: :data:`mvsearch.arch.presets.REFERENCE`)
PAPER_TIERS: dict[str, int] = PAPER_FLOPS


@dataclass(frozen=True)
class Tier:
    """One FLOP band ``(lower, flops]`` of a search."""

    label: str  # e.g. "1.05G" (what trials store in their ``tier`` attribute)
    flops: int  # the band's upper bound: the budget
    lower: int  # the band's lower bound (exclusive): the previous tier's budget, or 0

    def contains(self, flops: int) -> bool:
        return self.lower < flops <= self.flops


@dataclass(frozen=True)
class Verdict:
    """The budget gate's answer for one candidate."""

    ok: bool
    reason: str  # "" when ok, else e.g. "1.62G FLOPs > budget 1.5G"
    constraints: dict[str, float]  # Optuna constraint values (<= 0 is feasible)


@dataclass(frozen=True)
class Budget:
    """FLOP tiers (at least one) and an optional parameter cap."""

    tiers: tuple[Tier, ...]
    max_params: int | None = None

    @property
    def multi(self) -> bool:
        return len(self.tiers) > 1

    @property
    def max_flops(self) -> int:
        return self.tiers[-1].flops

    def tier(self, label: str) -> Tier:
        for t in self.tiers:
            if t.label == label:
                return t
        raise BudgetError(f"unknown tier {label!r}; tiers: {', '.join(t.label for t in self.tiers)}")

    def tier_of(self, flops: int) -> Tier | None:
        """The tier whose band holds ``flops`` (None above the largest budget)."""
        for t in self.tiers:
            if flops <= t.flops:
                return t
        return None

    def check(self, flops: int, params: int, tier: Tier | None = None) -> Verdict:
        """May a candidate of this cost be trained for ``tier`` (default: the largest budget)?"""
        tier = tier or self.tiers[-1]
        cons = {"flops": flops / tier.flops - 1.0}
        reasons = []
        if flops > tier.flops:
            reasons.append(f"{format_flops(flops)} FLOPs > budget {format_flops(tier.flops)}")
        if self.multi:
            cons["band"] = (tier.lower - flops) / tier.flops
            if tier.lower and flops <= tier.lower:
                reasons.append(f"{format_flops(flops)} FLOPs <= {format_flops(tier.lower)}, "
                               f"below tier {tier.label}")
        if self.max_params is not None:
            cons["params"] = params / self.max_params - 1.0
            if params > self.max_params:
                reasons.append(f"{format_count(params)} params > max {format_count(self.max_params)}")
        return Verdict(ok=not reasons, reason="; ".join(reasons), constraints=cons)

    def describe(self) -> str:
        parts = [", ".join(t.label for t in self.tiers) + " FLOPs"]
        if self.max_params is not None:
            parts.append(f"<= {format_count(self.max_params)} params")
        return ", ".join(parts)

    def to_dict(self) -> dict:
        return {"tiers": [{"label": t.label, "flops": t.flops, "lower": t.lower} for t in self.tiers],
                "max_params": self.max_params}


def make_budget(flops: Iterable[int], max_params: int | None = None, labels: Iterable[str] | None = None) -> Budget:
    """Tiers from budgets in any order (sorted; duplicates refused)."""
    values = sorted(int(f) for f in flops)
    if not values:
        raise BudgetError("--budget: give at least one FLOP budget, e.g. --budget 1.5GFLOPs")
    if len(values) > MAX_TIERS:
        raise BudgetError(f"--budget: {len(values)} budgets exceed mvsearch's bound of {MAX_TIERS} tiers; list fewer")
    for a, b in zip(values, values[1:]):
        if a == b:
            raise BudgetError(f"--budget: tier {format_flops(a)} is given twice; list each budget once")
    names = list(labels) if labels is not None else [format_flops(v) for v in values]
    if len(set(names)) != len(names):  # e.g. 1.0001G and 1.0002G
        names = [str(v) for v in values]
    tiers, lower = [], 0
    for v, name in zip(values, names):
        tiers.append(Tier(label=name, flops=v, lower=lower))
        lower = v
    return Budget(tiers=tuple(tiers), max_params=max_params)


def parse_budget(budget: str | None = None, *, tiers: str | None = None,
                 max_params: str | None = None) -> Budget:
    """``--budget 1.5G`` or ``--budget 0.42G,1.05G,2.0G`` or ``--tiers paper`` (+ ``--max-params``)."""
    cap = parse_params(check_digits(max_params, "--max-params", BudgetError)) if max_params is not None else None
    if tiers is not None:
        if budget is not None:
            raise BudgetError("pass either --budget or --tiers, not both")
        if tiers.strip().lower() != "paper":
            raise BudgetError(f"--tiers: unknown tier set {shorten(tiers)}; known: paper "
                              f"(or list budgets: --budget 0.42G,1.05G,2.0G)")
        return make_budget(PAPER_TIERS.values(), cap)
    if budget is None or not str(budget).strip():
        raise BudgetError("no budget: pass --budget 1.5GFLOPs (or several: --budget 0.42G,1.05G,2.0G), "
                          "--tiers paper, or set search.budget in the space")
    check_digits(str(budget), "--budget", BudgetError)
    parts = [p for p in str(budget).split(",")]
    if any(not p.strip() for p in parts):
        raise BudgetError(f"--budget: empty entry in {budget!r}; use e.g. --budget 0.42G,1.05G,2.0G")
    return make_budget((parse_flops(p.strip()) for p in parts), cap)


def check_reachable(budget: Budget, *, min_flops: int, max_flops: int, min_params: int, where: str) -> None:
    """Refuse budgets no architecture of the space can meet, saying what the cheapest costs."""
    low = budget.tiers[0]
    if low.flops < min_flops:
        raise BudgetError(
            f"budget {low.label} FLOPs is below the cheapest architecture of {where} "
            f"({format_flops(min_flops)} FLOPs = {min_flops:,}); raise --budget or widen the space")
    for t in budget.tiers[1:]:
        if t.lower >= max_flops:
            raise BudgetError(
                f"tier {t.label} cannot be reached: it holds models above {format_flops(t.lower)} FLOPs "
                f"but the largest architecture of {where} costs {format_flops(max_flops)}; "
                f"drop that budget or widen the space")
    if budget.max_params is not None and budget.max_params < min_params:
        raise BudgetError(
            f"--max-params {format_count(budget.max_params)} is below the smallest architecture of "
            f"{where} ({format_count(min_params)} params = {min_params:,}); raise it or widen the space")
