"""Budgets: parse "1.5GFLOPs" / "2.3M" / "2h", and decide whether a candidate may be trained.

A budget is about the *deployed* model: FLOPs (fvcore's, 1 multiply-add = 1 FLOP) and params are
counted at the space's deployment resolution and num_classes. Several FLOP budgets make *tiers*
(``--budget 0.42G,1.05G,2.0G`` or ``--tiers paper``): tier i holds the architectures whose FLOPs lie
in ``(budget[i-1], budget[i]]``, so each tier is searched for, and pruned against, models of its own
size. A candidate outside the band of the tier it was sampled for is rejected before training.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Iterable

from mvsearch.errors import BudgetError

_SCALE = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}
_NUMBER = r"(?P<num>[-+]?[0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)"
_FLOPS_RE = re.compile(rf"^{_NUMBER}\s*(?P<unit>[kmgt]?)\s*(?:flops?|macs?)?$", re.IGNORECASE)
_PARAMS_RE = re.compile(rf"^{_NUMBER}\s*(?P<unit>[kmg]?)\s*(?:params?|parameters?|p)?$", re.IGNORECASE)
_DURATION_RE = re.compile(r"(?P<num>[0-9]*\.?[0-9]+)\s*(?P<unit>ms|s|sec|m|min|h|hr|d)?", re.IGNORECASE)
_DURATION_UNITS = {"ms": 1e-3, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "hr": 3600.0,
                   "d": 86400.0, None: 1.0}

#: the paper's three FLOP levels (fvcore FLOPs of XXS, XS and S at 256x256, 1000 classes)
PAPER_TIERS = {"mobilevit_xxs": 418_183_680, "mobilevit_xs": 1_052_168_192, "mobilevit_s": 2_033_383_424}


def _parse(text: str, regex: re.Pattern, what: str, example: str, option: str) -> int:
    s = str(text).strip().replace("_", "")
    m = regex.match(s)
    if m is None:
        raise BudgetError(f"{option}: cannot read {text!r} as {what}; use e.g. {example}")
    value = float(m.group("num")) * _SCALE[m.group("unit").lower()]
    if not math.isfinite(value):
        raise BudgetError(f"{option}: {text!r} is too large to be {what}; use e.g. {example}")
    if value <= 0:
        raise BudgetError(f"{option}: must be positive, got {text!r}")
    if value < 1:
        raise BudgetError(f"{option}: {text!r} is less than one {what.split()[0]}; use e.g. {example}")
    return int(round(value))


def parse_flops(text: str, option: str = "--budget") -> int:
    """``"1.5GFLOPs"``, ``"1.5G"``, ``"400M"``, ``"400MFLOPs"``, ``"1.5e9"`` -> FLOPs as an int."""
    return _parse(text, _FLOPS_RE, "FLOPs", "1.5GFLOPs, 400M or 1.5e9", option)


def parse_params(text: str, option: str = "--max-params") -> int:
    """``"2.3M"``, ``"2.3Mparams"``, ``"500k"``, ``"2300000"`` -> a parameter count."""
    return _parse(text, _PARAMS_RE, "params (a parameter count)", "2.3M, 500k or 2300000", option)


def parse_duration(text: str, option: str = "--timeout") -> float:
    """``"2h"``, ``"30m"``, ``"90s"``, ``"1h30m"``, ``"45"`` (seconds) -> seconds."""
    s = str(text).strip().lower().replace(" ", "")
    pos, total, found = 0, 0.0, False
    while pos < len(s):
        m = _DURATION_RE.match(s, pos)
        if m is None or m.end() == pos:
            found = False
            break
        total += float(m.group("num")) * _DURATION_UNITS[m.group("unit")]
        pos, found = m.end(), True
    if not found:
        raise BudgetError(f"{option}: cannot read {text!r} as a duration; use e.g. 2h, 30m, 90s or 1h30m")
    if total <= 0:
        raise BudgetError(f"{option}: must be positive, got {text!r}")
    return total


def format_count(n: float | int | None, unit: str = "") -> str:
    """1_500_000_000 -> ``1.5G``; 418_183_680 -> ``418M``; None -> ``-``."""
    if n is None:
        return "-"
    for suffix, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{suffix}{unit}"
    return f"{n:.3g}{unit}" if isinstance(n, float) else f"{n}{unit}"


def human(n: float | None) -> str:
    """Two decimals in G/M/K for tables and reports: 1.05G, 418.18M, 12.30K; None -> ``-``."""
    if n is None:
        return "-"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return f"{n:g}"


def format_flops(n: float | int | None) -> str:
    """A FLOP count in G with 2 decimals (``0.42G``, ``1.5G``) - the unit the paper's tiers are quoted in."""
    if n is None:
        return "-"
    if n < 1e8:
        return format_count(n)
    return f"{n / 1e9:.2f}".rstrip("0").rstrip(".") + "G"


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
    cap = parse_params(max_params) if max_params is not None else None
    if tiers is not None:
        if budget is not None:
            raise BudgetError("pass either --budget or --tiers, not both")
        if tiers.strip().lower() != "paper":
            raise BudgetError(f"--tiers: unknown tier set {tiers!r}; known: paper "
                              f"(or list budgets: --budget 0.42G,1.05G,2.0G)")
        return make_budget(PAPER_TIERS.values(), cap)
    if budget is None or not str(budget).strip():
        raise BudgetError("no budget: pass --budget 1.5GFLOPs (or several: --budget 0.42G,1.05G,2.0G), "
                          "--tiers paper, or set search.budget in the space")
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


__all__ = ["Budget", "Tier", "Verdict", "PAPER_TIERS", "parse_flops", "human", "parse_params", "parse_duration",
           "parse_budget", "make_budget", "check_reachable", "format_count", "format_flops"]
