"""Does every tier's FLOP band hold an architecture of the space? Asked before any storage is opened.

:func:`mvsearch.budget.check_reachable` refuses a budget below the cheapest architecture, or a tier
above the largest; a band can still be empty between them (the space's costs jump over it) or so
narrow that nothing lands in it. A search would find out only after creating its study, trial by
rejected trial. :func:`check_bands` finds one member of each band first: by counting every
architecture when the space is small (:data:`EXHAUSTIVE`, an exact answer), else by the screened
random draws a tier's start-up uses (:func:`mvsearch.search.tiers.screen`), and refuses the run,
before anything is written, when it finds none.
"""
from __future__ import annotations

import itertools
import math
import random
from typing import Any

from mvsearch.budget import Budget, Tier
from mvsearch.core.errors import BudgetError
from mvsearch.core.units import format_count, format_flops
from mvsearch.cost.analytic import analytic_cost
from mvsearch.search.tiers import MAX_SCREEN, screen
from mvsearch.space.space import SearchSpace

#: spaces with at most this many knob combinations are counted in full (exact, well under a second)
EXHAUSTIVE = 5_000


def band_member(space: SearchSpace, budget: Budget, tier: Tier, rng: random.Random) -> dict[str, Any] | None:
    """The params of one architecture in ``tier``'s band (and under the params cap), or None."""
    searched = space.searched()
    if math.prod(len(k.values) for _, k in searched) <= EXHAUSTIVE:
        names = [n for n, _ in searched]
        for values in itertools.product(*[k.choices() for _, k in searched]):
            params = dict(zip(names, values))
            c = analytic_cost(space.from_params(params), space.resolution)
            if budget.check(c.flops, c.params, tier).ok:
                return params
        return None
    try:
        return screen(space, budget, tier, rng)[0]
    except BudgetError:
        return None


def check_bands(space: SearchSpace, budget: Budget, seed: int = 0) -> None:
    """BudgetError naming the first tier whose band holds no architecture of ``space``."""
    exact = math.prod(len(k.values) for _, k in space.searched()) <= EXHAUSTIVE
    for tier in budget.tiers:
        if band_member(space, budget, tier, random.Random(f"mvsearch-band/{seed}/{tier.label}")) is None:
            band = f"({format_flops(tier.lower)}, {format_flops(tier.flops)}] FLOPs" if tier.lower else \
                f"at most {format_flops(tier.flops)} FLOPs"
            cap = f" and at most {format_count(budget.max_params)} params" if budget.max_params is not None else ""
            how = "none of its architectures" if exact else f"none of {MAX_SCREEN:,} random draws"
            raise BudgetError(f"tier {tier.label}: no architecture of space {space.name!r} costs {band}{cap} "
                              f"({how}); change --budget/--max-params or widen the space")


__all__ = ["check_bands", "band_member", "EXHAUSTIVE"]
