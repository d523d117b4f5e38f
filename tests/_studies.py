"""Real Optuna studies for the latency, Pareto and report tests, built without running a search.

Trials carry the user attributes of :data:`mvsearch.study.ATTR` as ``mvsearch run`` writes them:
real architectures (variants of mobilevit_xxs, 10 classes), their fvcore FLOPs and parameter counts
at a 64x64 deployment resolution (counted once per architecture), budget tiers, baselines, curves.
"""
from __future__ import annotations

import dataclasses
import functools
import random
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from mvsearch.arch.config import ArchConfig
from mvsearch.arch.presets import get_preset

RES = 64  # deployment resolution of the test studies (tests stay at <= 128 px)
K = 10  # classes

DISTS = {
    "layer3.dim": IntDistribution(32, 96, step=16),
    "layer4.depth": IntDistribution(1, 4),
    "layer5.patch": CategoricalDistribution(["2x2", "1x1"]),
}

optuna.logging.set_verbosity(optuna.logging.WARNING)


def variant(dim3: int, depth4: int, patch5: str) -> ArchConfig:
    """mobilevit_xxs (10 classes) with three knobs turned, as a search space would."""
    base = get_preset("mobilevit_xxs", K)
    p = (1, 1) if patch5 == "1x1" else (2, 2)
    return dataclasses.replace(
        base,
        layer3=dataclasses.replace(base.layer3, dim=dim3, ffn_dim=2 * dim3),
        layer4=dataclasses.replace(base.layer4, depth=depth4),
        layer5=dataclasses.replace(base.layer5, patch=p),
    )


@functools.lru_cache(maxsize=None)
def cost(cfg: ArchConfig) -> tuple[int, int]:
    """(fvcore FLOPs, params) at the test deployment resolution (the closed form when present: exact, fast)."""
    try:
        from mvsearch.cost.analytic import analytic_cost as count_fn
    except ImportError:
        from mvsearch.cost.traced import count

        def count_fn(c, r):
            return count(c, r, thop=False)

    c = count_fn(cfg, RES)
    return c.flops, c.params


def attrs(cfg: ArchConfig, *, tier: str | None = None, preset: str | None = None, over_budget: bool = False,
          curve: list[float] | None = None) -> dict[str, Any]:
    flops, params = cost(cfg)
    return {
        "arch": cfg.to_dict(), "flops": flops, "params": params, "thop_macs": flops, "activations": 1000,
        "resolution": [RES, RES], "tier": tier, "baseline": preset is not None, "preset": preset,
        "over_budget": over_budget, "accuracy_curve": curve or [], "images_per_s": 500.0,
        "wall_s": 3.0 * len(curve or []), "seed": 0, "data": "synthetic:10", "proxy": {"epochs": 4},
        "mvsearch_version": "0.1.0",
    }


def _params(dim3: int, depth4: int, patch5: str) -> dict[str, Any]:
    return {"layer3.dim": dim3, "layer4.depth": depth4, "layer5.patch": patch5}


def _complete(study: optuna.Study, knobs: tuple[int, int, str], acc: float, tier: str = "small",
              curve: list[float] | None = None) -> None:
    cfg = variant(*knobs)
    curve = curve or [acc - 0.3, acc - 0.15, acc - 0.05, acc]
    study.add_trial(create_trial(state=TrialState.COMPLETE, value=acc, params=_params(*knobs), distributions=DISTS,
                                 intermediate_values=dict(enumerate(curve)),
                                 user_attrs=attrs(cfg, tier=tier, curve=curve)))


def _pruned(study: optuna.Study, knobs: tuple[int, int, str], curve: list[float]) -> None:
    study.add_trial(create_trial(state=TrialState.PRUNED, params=_params(*knobs), distributions=DISTS,
                                 intermediate_values=dict(enumerate(curve)),
                                 user_attrs=attrs(variant(*knobs), tier="small", curve=curve)))


def _baseline(study: optuna.Study, name: str, acc: float) -> None:
    cfg = get_preset(name, K)
    curve = [acc - 0.2, acc - 0.1, acc - 0.02, acc]
    study.add_trial(create_trial(state=TrialState.COMPLETE, value=acc, intermediate_values=dict(enumerate(curve)),
                                 user_attrs=attrs(cfg, preset=name, curve=curve)))


# the searched trials of the standard study: (knobs, accuracy); (64, 2, "2x2") twice, a duplicate
SEARCHED = [((32, 1, "2x2"), 0.60), ((48, 2, "2x2"), 0.70), ((64, 2, "2x2"), 0.74), ((64, 2, "2x2"), 0.74),
            ((96, 3, "2x2"), 0.66), ((96, 4, "1x1"), 0.79)]


def make_study(tmp_path: Path, name: str = "demo", *, extra_random: int = 0, baselines: bool = True,
               rejected: bool = True, study_attrs: bool = True) -> tuple[str, str]:
    """A study with completed, pruned, failed, baseline and budget-rejected trials; returns (name, storage).

    Trial numbers: 0-1 baselines XXS and XS (when ``baselines``), then :data:`SEARCHED`, two pruned,
    one failed, two budget rejections (one of them COMPLETE with a tempting accuracy of 0.99, which
    must never show as trained), then ``extra_random`` completed random variants.
    """
    storage = f"sqlite:///{tmp_path / f'{name}.db'}"
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    if study_attrs:
        for k, v in {"space": "tiny", "space_file": "spaces/tiny.yaml", "budgets": ["0.03G", "0.06G"],
                     "resolution": [RES, RES], "num_classes": K, "data": "synthetic:10",
                     "proxy": {"epochs": 4, "resolution": 32}, "mvsearch_version": "0.1.0"}.items():
            study.set_user_attr(k, v)
    if baselines:
        _baseline(study, "mobilevit_xxs", 0.71)
        _baseline(study, "mobilevit_xs", 0.78)
    for knobs, acc in SEARCHED:
        _complete(study, knobs, acc)
    _pruned(study, (32, 4, "1x1"), [0.2, 0.3])
    _pruned(study, (48, 1, "1x1"), [0.25])
    study.add_trial(create_trial(state=TrialState.FAIL, params=_params(80, 3, "2x2"), distributions=DISTS,
                                 user_attrs=attrs(variant(80, 3, "2x2"), tier="small")))
    if rejected:
        big = get_preset("mobilevit_s", K)
        study.add_trial(create_trial(state=TrialState.COMPLETE, value=0.99, user_attrs=attrs(big, over_budget=True)))
        study.add_trial(create_trial(state=TrialState.PRUNED, user_attrs=attrs(big, over_budget=True)))
    rng = random.Random(0)
    for _ in range(extra_random):
        knobs = (rng.choice([32, 48, 64, 80, 96]), rng.randint(1, 4), rng.choice(["2x2", "1x1"]))
        acc = round(0.5 + 0.003 * knobs[0] + 0.02 * knobs[1] + rng.uniform(-0.03, 0.03), 4)
        _complete(study, knobs, acc, tier="large" if knobs[0] >= 64 else "small")
    return name, storage


def empty_study(tmp_path: Path, name: str = "empty") -> tuple[str, str]:
    storage = f"sqlite:///{tmp_path / f'{name}.db'}"
    optuna.create_study(study_name=name, storage=storage, direction="maximize")
    return name, storage


def all_pruned_study(tmp_path: Path, name: str = "pruned") -> tuple[str, str]:
    storage = f"sqlite:///{tmp_path / f'{name}.db'}"
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    _pruned(study, (32, 1, "2x2"), [0.2, 0.3])
    _pruned(study, (48, 2, "1x1"), [0.1])
    study.add_trial(create_trial(state=TrialState.FAIL, user_attrs=attrs(variant(64, 2, "2x2"))))
    return name, storage
