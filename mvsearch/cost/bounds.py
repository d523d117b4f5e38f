"""Is a network small enough to build? Its closed-form cost checked against the bounds, before any tensor exists.

Each field of an :class:`~mvsearch.arch.config.ArchConfig` is bounded where it is validated, but
the bounds multiply: widths of 4096 in every stage at 1024x1024 would still ask for terabytes.
:func:`check_cost` counts the network in closed form (:func:`~mvsearch.cost.analytic.analytic_cost`,
microseconds) and refuses one whose parameters, FLOPs or activations (times the batch, when it is
to be trained) exceed :data:`~mvsearch.core.limits.MAX_PARAMS`, :data:`~mvsearch.core.limits.MAX_FLOPS`
or :data:`~mvsearch.core.limits.MAX_ACTIVATIONS`. Every command that builds a network from user
input calls it first (count, train, a search's space, export, latency).
"""
from __future__ import annotations

from typing import Any

from mvsearch.arch.config import ArchConfig
from mvsearch.core.errors import ArchError
from mvsearch.core.limits import MAX_ACTIVATIONS, MAX_FLOPS, MAX_PARAMS
from mvsearch.core.units import format_count
from mvsearch.cost.analytic import AnalyticCost, analytic_cost


def check_cost(cfg: ArchConfig, resolution: Any, *, batch: int = 1, what: str = "the network") -> AnalyticCost:
    """``cfg``'s closed-form cost at ``resolution``; ArchError naming the bound it exceeds."""
    c = analytic_cost(cfg, resolution)
    h, w = c.resolution
    at = f"at {h}x{w}"
    if c.params > MAX_PARAMS:
        raise ArchError(f"{what} has {format_count(c.params)} params, over mvsearch's bound of "
                        f"{format_count(MAX_PARAMS)}; make it narrower or shallower")
    if c.flops > MAX_FLOPS:
        raise ArchError(f"{what} costs {format_count(c.flops)} FLOPs {at}, over mvsearch's bound of "
                        f"{format_count(MAX_FLOPS)}; use a smaller network or resolution")
    if c.activations * batch > MAX_ACTIVATIONS:
        per = f" x batch {batch}" if batch > 1 else ""
        raise ArchError(f"{what} has {format_count(c.activations)} activations {at}{per}, over mvsearch's bound "
                        f"of {format_count(MAX_ACTIVATIONS)}; use a smaller network, resolution or batch")
    return c


__all__ = ["check_cost"]
