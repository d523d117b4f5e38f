"""mvsearch.search.tiers: one Optuna study per tier, stock samplers and pruners, screened start-up draws.

No training here: trials are driven through Optuna's ask-and-tell interface with made-up learning
curves, so each test isolates one decision of a real Optuna pruner or sampler. Tier fairness is a
property of the layout: a tier's stock pruner and sampler see its study, and its study holds only
its tier's trials. The tests compare that layout with one study for every tier (the bias it avoids).
"""
from __future__ import annotations

import random
from pathlib import Path

import optuna
import pytest
from optuna.pruners import HyperbandPruner, MedianPruner, NopPruner
from optuna.samplers import NSGAIISampler, RandomSampler, TPESampler
from optuna.trial import TrialState

from mvsearch.budget import parse_budget
from mvsearch.core.errors import BudgetError
from mvsearch.cost.analytic import analytic_cost
from mvsearch.search.tiers import make_pruner, make_sampler, n_startup, screen
from mvsearch.space.loader import load_space

optuna.logging.set_verbosity(optuna.logging.WARNING)
EPOCHS = 4


def _curve(tier: str, i: int) -> list[float]:
    # the expensive tier learns twice as fast; a little spread inside each tier
    top = 0.8 if tier == "big" else 0.4
    return [top * e / EPOCHS + 0.01 * ((7 * i) % 5) for e in range(1, EPOCHS + 1)]


def _run(study: optuna.Study, tier: str, i: int) -> None:
    """One trial of ``tier`` through ``study``'s pruner: reported epoch by epoch, pruned or completed."""
    trial = study.ask()
    trial.set_user_attr("tier", tier)
    for epoch, acc in enumerate(_curve(tier, i), 1):
        trial.report(acc, epoch)
        if epoch < EPOCHS and trial.should_prune():
            study.tell(trial, state=TrialState.PRUNED)
            return
    study.tell(trial, acc)


def _states(studies: list[optuna.Study]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for study in studies:
        for t in study.trials:
            out.setdefault(t.user_attrs["tier"], []).append(t.state.name)
    return out


def _per_tier(kind: str, order: list[str], storage: str) -> dict[str, list[str]]:
    """What mvsearch does: one study per tier (``sim@<tier>``), each with its own stock pruner."""
    studies: dict[str, optuna.Study] = {}
    for i, tier in enumerate(order):
        if tier not in studies:
            studies[tier] = optuna.create_study(study_name=f"sim@{tier}", storage=storage, direction="maximize",
                                                pruner=make_pruner(kind, EPOCHS))
        _run(studies[tier], tier, i)
    return _states(list(studies.values()))


def _shared(kind: str, order: list[str], storage: str) -> dict[str, list[str]]:
    """The same stock pruner over one study holding every tier's trials."""
    study = optuna.create_study(study_name="sim", storage=storage, direction="maximize",
                                pruner=make_pruner(kind, EPOCHS))
    for i, tier in enumerate(order):
        _run(study, tier, i)
    return _states([study])


@pytest.fixture
def storage(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'sim.db'}"


# ---------------------------------------------------------------------- pruning
@pytest.mark.parametrize("kind", ["hyperband", "median"])
def test_a_slow_learning_cheap_tier_keeps_completions_because_its_pruner_sees_only_its_study(kind, storage):
    # nine big trials first, then nine small ones that learn slower than every big one
    order = ["big"] * 9 + ["small"] * 9
    fair = _per_tier(kind, order, storage)
    plain = _shared(kind, order, storage)
    assert "COMPLETE" in fair["small"] and "PRUNED" in fair["small"]  # pruned within the tier, not wiped out
    assert "COMPLETE" not in plain["small"]  # one study for all tiers stops every cheap model
    assert fair["big"] == plain["big"]  # the big tier, which ran first, is judged the same either way


def test_interleaved_tiers_are_judged_only_against_their_own_tier(storage):
    # the search alternates tiers; the small tier's best trials must survive the big tier's curves
    order = ["big", "small"] * 9
    fair = _per_tier("median", order, storage)
    plain = _shared("median", order, storage)
    assert fair["small"].count("COMPLETE") > plain["small"].count("COMPLETE")
    assert "COMPLETE" in fair["big"]


def test_the_median_pruner_of_a_tier_study_keeps_the_best_of_its_tier(storage):
    # three completed "big" trials at 0.9 and three "small" ones around 0.25; a new small trial at
    # 0.35 is the best of its tier but below every big one
    small = optuna.create_study(study_name="m@small", storage=storage, direction="maximize",
                                pruner=make_pruner("median", EPOCHS))
    big = optuna.create_study(study_name="m@big", storage=storage, direction="maximize",
                              pruner=make_pruner("median", EPOCHS))
    shared = optuna.create_study(study_name="m", storage=storage, direction="maximize",
                                 pruner=make_pruner("median", EPOCHS))
    for tier, acc in [("big", 0.9)] * 3 + [("small", 0.2), ("small", 0.3), ("small", 0.25)]:
        for study in (big if tier == "big" else small, shared):
            t = study.ask()
            t.report(acc, 1)
            study.tell(t, acc)

    def should_prune(study: optuna.Study, acc: float) -> bool:
        t = study.ask()
        t.report(acc, 1)
        verdict = t.should_prune()
        study.tell(t, state=TrialState.FAIL)  # keep the reference trials as they are
        return verdict

    assert not should_prune(small, 0.35)  # best of the small tier: kept
    assert should_prune(small, 0.1)  # worst of the small tier: still pruned
    assert len(small.trials) == 5 and len(big.trials) == 3  # the big tier's trials are not in the small study
    # the same stock pruner over one study of both tiers stops the best small model (the bias avoided)
    assert should_prune(shared, 0.35)


def test_make_pruner_builds_optunas_stock_pruners():
    hb = make_pruner("hyperband", EPOCHS)
    assert isinstance(hb, HyperbandPruner)
    assert (hb._min_resource, hb._max_resource, hb._reduction_factor) == (1, EPOCHS, 3)
    assert isinstance(make_pruner("hyperband", 0), HyperbandPruner)  # a 0-epoch proxy still gets a valid one
    assert isinstance(make_pruner("median", EPOCHS), MedianPruner)
    assert isinstance(make_pruner("none", EPOCHS), NopPruner)
    assert make_pruner("median", EPOCHS) is not make_pruner("median", EPOCHS)  # one per tier study


def test_make_pruner_and_sampler_refuse_unknown_names():
    with pytest.raises(ValueError, match="unknown pruner 'asha'; known: hyperband, median, none"):
        make_pruner("asha", 3)
    with pytest.raises(ValueError, match="unknown sampler 'grid'; known: tpe, random, nsga2"):
        make_sampler("grid", 0, 0, 3)


# ---------------------------------------------------------------------- sampling
@pytest.fixture(scope="module")
def tiny():
    return load_space("tiny")


def test_make_sampler_builds_optunas_stock_samplers():
    tpe = make_sampler("tpe", 0, 0, 5)
    assert isinstance(tpe, TPESampler) and tpe._n_startup_trials == 5
    assert isinstance(make_sampler("random", 0, 1, 5), RandomSampler)
    nsga = make_sampler("nsga2", 0, 2, 3)
    assert isinstance(nsga, NSGAIISampler) and nsga._population_size == 4  # at least 4, Optuna's minimum use
    assert make_sampler("nsga2", 0, 2, 8)._population_size == 8


def _draws(sampler, space, n: int = 4) -> list[dict]:
    study = optuna.create_study(direction="maximize", sampler=sampler)
    out = []
    for _ in range(n):
        t = study.ask()
        space.sample(t)
        out.append(t.params)
        study.tell(t, 0.5)
    return out


@pytest.mark.parametrize("kind", ["tpe", "random"])
def test_tier_samplers_are_reproducible_and_differ_between_tiers(tiny, kind):
    assert _draws(make_sampler(kind, 0, 0, 10), tiny) == _draws(make_sampler(kind, 0, 0, 10), tiny)
    assert _draws(make_sampler(kind, 0, 0, 10), tiny) != _draws(make_sampler(kind, 0, 1, 10), tiny)
    assert _draws(make_sampler(kind, 0, 0, 10), tiny) != _draws(make_sampler(kind, 1, 0, 10), tiny)


@pytest.mark.parametrize("trials, tiers, expected", [(1, 1, 3), (6, 1, 3), (6, 2, 3), (8, 1, 4), (20, 2, 5),
                                                     (40, 2, 10), (1000, 3, 10), (7, 3, 3)])
def test_n_startup_is_half_a_tiers_share_between_3_and_10(trials, tiers, expected):
    assert n_startup(trials, tiers) == expected


def test_screened_draws_lie_in_the_band_of_their_tier(tiny):
    budget = parse_budget("2M,3M")
    rng = random.Random(0)
    refused = 0
    for label in ["2M", "3M"] * 6:
        tier = budget.tier(label)
        params, n = screen(tiny, budget, tier, rng)
        flops = analytic_cost(tiny.from_params(params), tiny.resolution).flops
        assert tier.contains(flops), (label, flops)
        assert set(params) == {name for name, _ in tiny.searched()}
        refused += n
    assert refused > 0  # a band holds part of the space: some uniform draws are screened out


def test_screening_also_keeps_to_the_params_cap(tiny):
    budget = parse_budget("7.2M", max_params=60_000)
    rng = random.Random(1)
    for _ in range(10):
        params, _ = screen(tiny, budget, budget.tiers[0], rng)
        assert analytic_cost(tiny.from_params(params), tiny.resolution).params <= 60_000


def test_screening_is_reproducible_from_its_random_generator(tiny):
    budget = parse_budget("2M,3M")
    tier = budget.tier("3M")
    draw = screen(tiny, budget, tier, random.Random("mvsearch-screen/0/3M/4"))
    assert draw == screen(tiny, budget, tier, random.Random("mvsearch-screen/0/3M/4"))
    assert draw[0] != screen(tiny, budget, tier, random.Random("mvsearch-screen/0/3M/5"))[0]


def test_screening_an_empty_band_says_so(tiny, monkeypatch):
    from mvsearch.search import tiers

    monkeypatch.setattr(tiers, "MAX_SCREEN", 50)
    budget = parse_budget("1M,1.0001M")  # a band 100 FLOPs wide
    with pytest.raises(BudgetError, match=r"no architecture of space 'tiny' within tier .* in 50 random draws.*widen"):
        screen(tiny, budget, budget.tiers[1], random.Random(0))


def test_a_queued_trial_shows_the_params_it_was_enqueued_with():
    # pins the Optuna behaviour drawn_params relies on: enqueue_trial keeps them in system_attrs
    from mvsearch.search.tiers import drawn_params

    study = optuna.create_study()
    study.enqueue_trial({"x": 3})
    (queued,) = study.get_trials()
    assert queued.params == {} and drawn_params(queued) == {"x": 3}
    study.optimize(lambda t: t.suggest_int("x", 0, 5), n_trials=1)
    assert drawn_params(study.trials[0]) == {"x": 3} == study.trials[0].params
