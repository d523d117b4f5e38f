"""Tier-fair sampling and pruning: each FLOP tier is searched and pruned against its own trials.

Optuna's pruners compare a trial with every other trial of the study, so in a search over several
budgets a cheap model is pruned merely for learning slower than an expensive one, and a sampler
that ranks all trials together proposes large models for the small tier. Here every trial carries
a ``tier`` user attribute, and both the pruner and the sampler see the study through a
:class:`TierView` that holds only the trials of the current trial's tier:

* :class:`TierPruner` keeps one inner pruner (Hyperband, median, ...) per tier and hands it the
  tier's view, so a trial is stopped only for doing worse than models of its own size.
* :class:`TierSampler` keeps one inner sampler (TPE, NSGA-II, random) per tier. During a tier's
  start-up phase (its first few candidates, where TPE itself would sample at random) it draws
  uniformly from the space and *screens* each draw with the analytic counter, so start-up trials
  are random members of the tier's FLOP band rather than mostly rejections; afterwards the inner
  sampler proposes, and proposals outside the band become recorded rejections with constraint
  values (``trial.set_constraint``) that steer TPE away from them.
"""
from __future__ import annotations

import random
from typing import Any, Callable
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution
from optuna.pruners import BasePruner, HyperbandPruner
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState

from mvsearch.budget import Budget, Tier
from mvsearch.core.errors import BudgetError
from mvsearch.cost.analytic import analytic_cost
from mvsearch.space.space import SearchSpace


TIER_ATTR = "tier"


REJECT_ATTR = "over_budget"


#: draws a start-up candidate may take before the band is declared (nearly) empty
MAX_SCREEN = 200_000


def tier_of(t: FrozenTrial) -> str | None:
    return t.user_attrs.get(TIER_ATTR)


class TierView:
    """A study seen through a filter: ``get_trials``/``_get_trials`` return matching trials only.

    Everything else (direction, storage, study name, ...) is the wrapped study's. Optuna's samplers
    and pruners read trials through exactly these two methods.
    """

    def __init__(self, study: Any, keep: Callable[[FrozenTrial], bool]) -> None:
        self._study = study
        self._keep = keep

    def get_trials(self, deepcopy: bool = True, states: Any = None) -> list[FrozenTrial]:
        return [t for t in self._study.get_trials(deepcopy=deepcopy, states=states) if self._keep(t)]

    def _get_trials(self, deepcopy: bool = True, states: Any = None, use_cache: bool = False) -> list[FrozenTrial]:
        return [t for t in self._study._get_trials(deepcopy=deepcopy, states=states, use_cache=use_cache)
                if self._keep(t)]

    @property
    def trials(self) -> list[FrozenTrial]:
        return self.get_trials()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)


class _TierHyperband(HyperbandPruner):
    """Optuna's Hyperband, whose per-bracket study also keeps the tier filter of the view it gets."""

    def _create_bracket_study(self, study: Any, bracket_id: int) -> Any:
        bracket = super()._create_bracket_study(study, bracket_id)
        return TierView(bracket, study._keep) if isinstance(study, TierView) else bracket


def make_pruner(kind: str, epochs: int) -> Callable[[], BasePruner]:
    """A factory of one tier's pruner: ``hyperband``, ``median`` or ``none``."""
    if kind == "hyperband":
        # min 1 epoch, max the proxy's epochs; reduction 3 (Li et al. 2018, and Optuna's default)
        return lambda: _TierHyperband(min_resource=1, max_resource=max(1, epochs), reduction_factor=3)
    if kind == "median":
        return lambda: optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0)
    if kind == "none":
        return optuna.pruners.NopPruner
    raise ValueError(f"unknown pruner {kind!r}")


class TierPruner(BasePruner):
    """One inner pruner per tier, each deciding against the trials of its own tier only."""

    def __init__(self, factory: Callable[[], BasePruner]) -> None:
        self._factory = factory
        self._pruners: dict[Any, BasePruner] = {}

    def prune(self, study: Any, trial: FrozenTrial) -> bool:
        label = tier_of(trial)
        pruner = self._pruners.get(label)
        if pruner is None:
            pruner = self._pruners[label] = self._factory()
        view = TierView(study, lambda t: tier_of(t) == label and not t.user_attrs.get(REJECT_ATTR))
        return pruner.prune(view, trial)


def distributions(space: SearchSpace) -> dict[str, BaseDistribution]:
    """The Optuna distribution of every searched knob (what ``space.sample`` suggests)."""
    out: dict[str, BaseDistribution] = {}
    for name, knob in space.searched():
        if knob.is_range:
            out[name] = IntDistribution(knob.low, knob.high, step=knob.step)
        else:
            out[name] = CategoricalDistribution(knob.choices())
    return out


def make_sampler(kind: str, seed: int, n_startup: int) -> Callable[[int], BaseSampler]:
    """A factory of one tier's inner sampler (argument: the tier's index, mixed into the seed)."""
    if kind == "tpe":
        return lambda i: optuna.samplers.TPESampler(n_startup_trials=n_startup, seed=seed + 7919 * i)
    if kind == "random":
        return lambda i: optuna.samplers.RandomSampler(seed=seed + 7919 * i)
    if kind == "nsga2":
        def nsga(i: int) -> BaseSampler:
            # a subclass per tier: NSGA-II keys its generation and parent cache by class name
            cls = type(f"NSGAIISampler_tier{i}", (optuna.samplers.NSGAIISampler,), {})
            return cls(population_size=max(4, n_startup), seed=seed + 7919 * i)
        return nsga
    raise ValueError(f"unknown sampler {kind!r}")


class TierSampler(BaseSampler):
    """Per-tier inner samplers, plus screened uniform start-up draws (see the module docstring).

    The search loop sets :attr:`tier` before each ``study.ask()``. ``kind="random"`` screens every
    draw (a random search with the budget applied before sampling rather than after).
    """

    def __init__(self, space: SearchSpace, budget: Budget, kind: str = "tpe", *, seed: int = 0,
                 n_startup: int = 10) -> None:
        self.space = space
        self.budget = budget
        self.kind = kind
        self.n_startup = n_startup
        self.tier: Tier = budget.tiers[0]
        self.screened = 0  # draws screened out before the last start-up candidate
        self.force_screen = False  # set by the loop after many rejections in a row
        self.seed = seed
        self._factory = make_sampler(kind, seed, n_startup)
        self._inner: dict[str, BaseSampler] = {}
        self._rng = random.Random(seed)
        self._dists = distributions(space)
        self._names = set(self._dists)

    # ------------------------------------------------------------ helpers
    def inner(self) -> BaseSampler:
        label = self.tier.label
        if label not in self._inner:
            index = [t.label for t in self.budget.tiers].index(label)
            self._inner[label] = self._factory(index)
        return self._inner[label]

    def view(self, study: Any) -> TierView:
        label, names = self.tier.label, self._names
        return TierView(study, lambda t: tier_of(t) == label and names <= t.params.keys())

    def _screening(self, study: Any) -> bool:
        if self.kind == "random" or self.force_screen:
            return True
        done = study._get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED), use_cache=False)
        label = self.tier.label
        trained = sum(1 for t in done if tier_of(t) == label and not t.user_attrs.get(REJECT_ATTR))
        return trained < self.n_startup

    def screen(self, number: int | None = None) -> dict[str, Any]:
        """Uniform draws until one lies in the current tier's band (and under the params cap).

        With a trial ``number`` the draws come from a stream of their own, seeded by (seed, number):
        a resumed run, or a second worker on the same study, does not repeat earlier candidates.
        """
        res = self.space.resolution
        if number is not None:
            self._rng = random.Random(f"mvsearch-screen/{self.seed}/{number}")
        for n in range(MAX_SCREEN):
            params = self.space.random_params(self._rng)
            c = analytic_cost(self.space.from_params(params), res)
            if self.budget.check(c.flops, c.params, self.tier).ok:
                self.screened = n
                return params
        raise BudgetError(
            f"no architecture of space {self.space.name!r} within tier {self.tier.label} found in "
            f"{MAX_SCREEN:,} random draws; the budget band is (nearly) empty: widen it or the space")

    # ------------------------------------------------------------ BaseSampler
    def infer_relative_search_space(self, study: Any, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        if self._screening(study):
            return dict(self._dists)
        return self.inner().infer_relative_search_space(self.view(study), trial)

    def sample_relative(self, study: Any, trial: FrozenTrial, search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        if self._screening(study):
            params = self.screen(trial.number)
            return {k: v for k, v in params.items() if k in search_space}
        self.screened = 0
        return self.inner().sample_relative(self.view(study), trial, search_space)

    def sample_independent(self, study: Any, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self.inner().sample_independent(self.view(study), trial, param_name, param_distribution)

    def before_trial(self, study: Any, trial: FrozenTrial) -> None:
        self.inner().before_trial(self.view(study), trial)

    def after_trial(self, study: Any, trial: FrozenTrial, state: TrialState, values: Any) -> None:
        label = tier_of(trial)
        inner = self._inner.get(label) if label is not None else None
        if inner is not None:
            keep = self._names
            inner.after_trial(TierView(study, lambda t: tier_of(t) == label and keep <= t.params.keys()),
                              trial, state, values)

    def reseed_rng(self) -> None:
        self.seed = random.randrange(2**32)
        self._rng.seed()
        for s in self._inner.values():
            s.reseed_rng()
