"""Tier fairness on Optuna's public API: one study per FLOP tier, stock samplers and pruners.

Optuna's pruners compare a trial with every trial of its study, and its samplers model every trial
of it; in a search over several budgets a cheap model would be pruned merely for learning slower
than an expensive one, and the sampler would propose large models for the small tier. So each tier
is its own Optuna study (see :mod:`mvsearch.search.storage`), with a stock sampler (TPE, random,
NSGA-II) and a stock pruner (median, Hyperband, none) that see that tier's trials only.

A tier's first candidates (its start-up phase, where TPE would sample at random anyway) are
*screened*: uniform draws from the space are counted analytically until one lies in the tier's
FLOP band, and that draw is enqueued (``study.enqueue_trial``), so start-up trials are random
members of the band rather than mostly rejections. Afterwards the sampler proposes; proposals
outside the band become recorded rejections with constraint values (``trial.set_constraint``).
With ``sampler=random`` every candidate is screened: a random search with the budget applied
before sampling.
"""
from __future__ import annotations

import random
from typing import Any

import optuna
from optuna.pruners import BasePruner
from optuna.samplers import BaseSampler

from mvsearch.budget import Budget, Tier
from mvsearch.core.errors import BudgetError
from mvsearch.cost.analytic import analytic_cost
from mvsearch.space.space import SearchSpace

SAMPLERS = ("tpe", "random", "nsga2")
PRUNERS = ("hyperband", "median", "none")
#: draws a start-up candidate may take before the band is declared (nearly) empty
MAX_SCREEN = 200_000


def make_sampler(kind: str, seed: int, index: int, n_startup: int) -> BaseSampler:
    """Tier ``index``'s sampler (its seed mixes in the index, so tiers draw differently)."""
    s = seed + 7919 * index
    if kind == "tpe":
        return optuna.samplers.TPESampler(n_startup_trials=n_startup, seed=s)
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=s)
    if kind == "nsga2":
        return optuna.samplers.NSGAIISampler(population_size=max(4, n_startup), seed=s)
    raise ValueError(f"unknown sampler {kind!r}; known: {', '.join(SAMPLERS)}")


def make_pruner(kind: str, epochs: int) -> BasePruner:
    """A tier's pruner: ``hyperband``, ``median`` or ``none``."""
    if kind == "hyperband":
        # min 1 epoch, max the proxy's epochs; reduction 3 (Li et al. 2018, and Optuna's default)
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(1, epochs), reduction_factor=3)
    if kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0)
    if kind == "none":
        return optuna.pruners.NopPruner()
    raise ValueError(f"unknown pruner {kind!r}; known: {', '.join(PRUNERS)}")


def n_startup(trials: int, tiers: int) -> int:
    """Start-up candidates per tier: half a tier's share of ``trials``, between 3 and 10."""
    per_tier = -(-trials // tiers)
    return max(3, min(10, per_tier // 2))


def drawn_params(t: Any) -> dict[str, Any]:
    """A trial's params, or for a queued trial the params it was enqueued with (not yet suggested).

    Optuna keeps ``enqueue_trial``'s params in the public ``FrozenTrial.system_attrs`` under
    ``fixed_params`` until the trial runs (pinned by tests/test_tiers.py).
    """
    return dict(t.params) or dict(t.system_attrs.get("fixed_params") or {})


def screen(space: SearchSpace, budget: Budget, tier: Tier, rng: random.Random) -> tuple[dict[str, Any], int]:
    """Uniform draws until one lies in ``tier``'s band (and under the params cap): (params, draws refused)."""
    res = space.resolution
    for n in range(MAX_SCREEN):
        params = space.random_params(rng)
        c = analytic_cost(space.from_params(params), res)
        if budget.check(c.flops, c.params, tier).ok:
            return params, n
    raise BudgetError(
        f"no architecture of space {space.name!r} within tier {tier.label} found in {MAX_SCREEN:,} random "
        f"draws; the budget band is (nearly) empty: widen it or the space")


__all__ = ["SAMPLERS", "PRUNERS", "make_sampler", "make_pruner", "n_startup", "screen", "drawn_params", "MAX_SCREEN"]
