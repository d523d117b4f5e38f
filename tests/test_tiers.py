"""mvsearch.tiers: the study seen per tier, tier-fair pruning and screened start-up sampling.

No training here: trials are driven through Optuna's ask-and-tell interface with made-up learning
curves, so each test isolates one decision of a real Optuna pruner or sampler.
"""
from __future__ import annotations

import optuna
import pytest
from optuna.pruners import HyperbandPruner, MedianPruner
from optuna.trial import TrialState

from mvsearch.cost.analytic import analytic_cost
from mvsearch.budget import parse_budget
from mvsearch.space.loader import load_space
from mvsearch.search.tiers import TierPruner, TierSampler, TierView, distributions, make_pruner, make_sampler

optuna.logging.set_verbosity(optuna.logging.WARNING)
EPOCHS = 4


def _curve(tier: str, i: int) -> list[float]:
    # the expensive tier learns twice as fast; a little spread inside each tier
    top = 0.8 if tier == "big" else 0.4
    return [top * e / EPOCHS + 0.01 * ((7 * i) % 5) for e in range(1, EPOCHS + 1)]


def _simulate(pruner, order: list[str]) -> dict[str, list[str]]:
    """Run trials of the given tiers in order through ``pruner``; each tier's final states."""
    study = optuna.create_study(study_name="sim", direction="maximize", pruner=pruner)
    for i, tier in enumerate(order):
        trial = study.ask()
        trial.set_user_attr("tier", tier)
        for epoch, acc in enumerate(_curve(tier, i), 1):
            trial.report(acc, epoch)
            if epoch < EPOCHS and trial.should_prune():
                study.tell(trial, state=TrialState.PRUNED)
                break
        else:
            study.tell(trial, acc)
    out: dict[str, list[str]] = {}
    for t in study.trials:
        out.setdefault(t.user_attrs["tier"], []).append(t.state.name)
    return out


# ---------------------------------------------------------------------- TierView
def test_tier_view_returns_only_its_tier_and_delegates_the_rest():
    study = optuna.create_study(study_name="v", direction="maximize")
    for tier in ("a", "b", "a", None):
        t = study.ask()
        if tier is not None:
            t.set_user_attr("tier", tier)
        study.tell(t, 0.5)
    view = TierView(study, lambda t: t.user_attrs.get("tier") == "a")
    assert [t.number for t in view.get_trials()] == [0, 2]
    assert [t.number for t in view._get_trials(deepcopy=False, states=(TrialState.COMPLETE,))] == [0, 2]
    assert [t.number for t in view.trials] == [0, 2]
    assert view.study_name == "v" and view.direction == optuna.study.StudyDirection.MAXIMIZE


# ---------------------------------------------------------------------- pruning
def test_tier_pruner_compares_a_trial_only_with_its_own_tier():
    # three completed "big" trials at 0.9 and three "small" ones around 0.25; a new small trial at
    # 0.35 is the best of its tier but below every big one
    study = optuna.create_study(direction="maximize", pruner=TierPruner(make_pruner("median", EPOCHS)))
    for tier, acc in [("big", 0.9)] * 3 + [("small", 0.2), ("small", 0.3), ("small", 0.25)]:
        t = study.ask()
        t.set_user_attr("tier", tier)
        t.report(acc, 1)
        study.tell(t, acc)

    def should_prune(pruner, acc):
        t = study.ask()
        t.set_user_attr("tier", "small")
        t.report(acc, 1)
        frozen = study._storage.get_trial(t._trial_id)
        verdict = pruner.prune(study, frozen)
        study.tell(t, state=TrialState.FAIL)  # keep the reference trials as they are
        return verdict

    tier_fair = TierPruner(make_pruner("median", EPOCHS))
    assert not should_prune(tier_fair, 0.35)  # best of the small tier: kept
    assert should_prune(tier_fair, 0.1)  # worst of the small tier: still pruned
    # Optuna's median pruner over the whole study stops the best small model (the bias we avoid)
    assert should_prune(MedianPruner(n_startup_trials=3, n_warmup_steps=0), 0.35)


@pytest.mark.parametrize("kind", ["hyperband", "median"])
def test_a_slow_learning_cheap_tier_keeps_completions_only_with_tier_fair_pruning(kind):
    # nine big trials first, then nine small ones that learn slower than every big one
    order = ["big"] * 9 + ["small"] * 9
    fair = _simulate(TierPruner(make_pruner(kind, EPOCHS)), order)
    plain = _simulate(make_pruner(kind, EPOCHS)() if kind == "median" else
                      HyperbandPruner(min_resource=1, max_resource=EPOCHS, reduction_factor=3), order)
    assert "COMPLETE" in fair["small"] and "PRUNED" in fair["small"]  # pruned within the tier, not wiped out
    assert "COMPLETE" not in plain["small"]  # the whole-study pruner stops every cheap model
    assert fair["big"] == plain["big"]  # the big tier, which ran first, is judged the same either way


def test_tier_hyperband_keeps_one_pruner_per_tier():
    pruner = TierPruner(make_pruner("hyperband", EPOCHS))
    _simulate(pruner, ["big", "small", "big", "small"])
    assert set(pruner._pruners) == {"big", "small"}
    assert pruner._pruners["big"] is not pruner._pruners["small"]


def test_make_pruner_and_sampler_refuse_unknown_names():
    with pytest.raises(ValueError, match="unknown pruner"):
        make_pruner("asha", 3)
    with pytest.raises(ValueError, match="unknown sampler"):
        make_sampler("grid", 0, 3)


def test_nsga2_samplers_of_different_tiers_are_different_classes():
    # NSGA-II keys its generation bookkeeping by class name: tiers must not share it
    factory = make_sampler("nsga2", 0, 4)
    a, b = factory(0), factory(1)
    assert isinstance(a, optuna.samplers.NSGAIISampler) and type(a).__name__ != type(b).__name__


# ---------------------------------------------------------------------- sampling
@pytest.fixture(scope="module")
def tiny():
    return load_space("tiny")


def _ask(study, sampler, space, tier_label):
    sampler.tier = sampler.budget.tier(tier_label)
    trial = study.ask()
    trial.set_user_attr("tier", tier_label)
    cfg = space.sample(trial)
    return trial, cfg


def test_start_up_draws_lie_in_the_band_of_the_asked_tier(tiny):
    budget = parse_budget("2M,3M")
    sampler = TierSampler(tiny, budget, "tpe", seed=0, n_startup=5)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    for label in ["2M", "3M"] * 4:
        trial, cfg = _ask(study, sampler, tiny, label)
        flops = analytic_cost(cfg, tiny.resolution).flops
        assert budget.tier(label).contains(flops), (label, flops)
        assert set(trial.params) == set(distributions(tiny))
        study.tell(trial, 0.5)


def test_a_resumed_sampler_does_not_repeat_earlier_start_up_candidates(tiny):
    budget = parse_budget("7M")
    study = optuna.create_study(direction="maximize")
    first = []
    sampler = TierSampler(tiny, budget, "tpe", seed=0, n_startup=10)
    study.sampler = sampler
    for _ in range(3):
        trial, _ = _ask(study, sampler, tiny, "7M")
        first.append(trial.params)
        study.tell(trial, 0.5)
    study.sampler = resumed = TierSampler(tiny, budget, "tpe", seed=0, n_startup=10)  # a new process
    trial, _ = _ask(study, resumed, tiny, "7M")
    assert trial.params not in first
    # ... while the draw for a given trial number is reproducible
    assert TierSampler(tiny, budget, seed=0).screen(5) == TierSampler(tiny, budget, seed=0).screen(5)
    assert TierSampler(tiny, budget, seed=0).screen(5) != TierSampler(tiny, budget, seed=0).screen(6)


def test_after_start_up_the_inner_sampler_sees_only_its_tier(tiny):
    budget = parse_budget("2M,3M")
    sampler = TierSampler(tiny, budget, "random", seed=0, n_startup=1)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    for label in ["2M", "3M", "2M"]:
        trial, _ = _ask(study, sampler, tiny, label)
        study.tell(trial, 0.5)
    sampler.tier = budget.tier("2M")
    assert [t.number for t in sampler.view(study).get_trials()] == [0, 2]
    sampler.tier = budget.tier("3M")
    assert [t.number for t in sampler.view(study).get_trials()] == [1]


def test_screening_an_empty_band_says_so(tiny, monkeypatch):
    import mvsearch.search.tiers as tiers

    monkeypatch.setattr(tiers, "MAX_SCREEN", 50)
    sampler = TierSampler(tiny, parse_budget("1M,1.0001M"), seed=0)  # a band 100 FLOPs wide
    sampler.tier = sampler.budget.tiers[1]
    with pytest.raises(Exception, match=r"no architecture .* within tier .* widen"):
        sampler.screen(0)
