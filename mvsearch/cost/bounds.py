"""Is a network small enough to build? Its closed-form cost checked against the bounds, before any tensor exists.

Each field of an :class:`~mvsearch.arch.config.ArchConfig` is bounded where it is validated, but
the bounds multiply: widths of 4096 in every stage at 1024x1024 would still ask for terabytes.
:func:`check_cost` counts the network in closed form (:func:`~mvsearch.cost.analytic.analytic_cost`,
microseconds) and refuses one whose parameters, FLOPs, activations or attention weights (times the
batch, when it is to be trained) exceed :data:`~mvsearch.core.limits.MAX_PARAMS`, :data:`~mvsearch.core.limits.MAX_FLOPS`
or :data:`~mvsearch.core.limits.MAX_ACTIVATIONS`. Every command that builds a network from user
input calls it first (count, train, a search's space, export, latency).
"""
from __future__ import annotations

from typing import Any

from mvsearch.arch.config import ArchConfig
from mvsearch.arch.geometry import num_patches, stage_maps
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
    per = f" x batch {batch}" if batch > 1 else ""
    if c.activations * batch > MAX_ACTIVATIONS:
        raise ArchError(f"{what} has {format_count(c.activations)} activations {at}{per}, over mvsearch's bound "
                        f"of {format_count(MAX_ACTIVATIONS)}; use a smaller network, resolution or batch")
    # attention weights are not activations fvcore counts, but they are held: P x heads x N x N per image
    maps = stage_maps(cfg, c.resolution)
    for name, n in num_patches(cfg, c.resolution).items():
        st = getattr(cfg, name)
        weights = st.patch[0] * st.patch[1] * st.heads * n * n
        if weights * batch > MAX_ACTIVATIONS:
            raise ArchError(f"{what}: {name}'s attention over {n:,} patches of its {maps[name][0]}x{maps[name][1]} map "
                            f"holds {format_count(weights)} weights {at}{per}, over mvsearch's bound of "
                            f"{format_count(MAX_ACTIVATIONS)}; use larger patches, fewer heads or a smaller resolution")
    return c


__all__ = ["check_cost"]
