"""The scaling study: a ladder of scaled networks, each trained with K seeds, kept in one Optuna study.

``mvsearch scale`` grows and shrinks a base network (a paper preset, a study's trial, a config
file) along model-scaling families (:mod:`mvsearch.arch.scaling`), lands every ladder point at
its target FLOPs (:mod:`mvsearch.cost.ladder`) and trains each point with the proxy, K seeds.

Storage: the study is an ordinary Optuna study named ``NAME@scale`` (by default in
``studies/NAME.db``); one trial is one training of one ladder point (a *rung*) with one seed. Its
user attributes are a :class:`~mvsearch.search.record.TrialRecord` whose ``point`` names the rung:
a hash of the deployed architecture, its deployment resolution and the full proxy settings (so a
point shared by two families, such as the base itself, trains once, and a changed proxy never
mixes with old results). The study's attributes are a :class:`~mvsearch.search.record.StudyRecord`
with ``tier = "scale"`` and the base in ``scale``. Because it is a search study with one tier,
``mvsearch trials`` lists its trainings and ``mvsearch export --trial scale/N`` exports any point.

Resuming, several workers, a dead worker's retry and Ctrl-C are those of every planned-training
study (:mod:`mvsearch.search.trainings`): rerunning the command trains only what is missing.

The resolution family changes the deployment input side; its proxy trains at the proxy resolution
scaled by the same ratio (rounded to a multiple of 8), so the trained network sees the larger
input too.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from mvsearch import __version__
from mvsearch.arch.config import ArchConfig
from mvsearch.arch.geometry import check_resolution
from mvsearch.arch.presets import PRESETS, get_preset
from mvsearch.arch.scaling import apply_family, factors as family_factors
from mvsearch.core.errors import MvsearchError, StudyError
from mvsearch.cost.analytic import analytic_cost
from mvsearch.cost.bounds import check_cost
from mvsearch.cost.ladder import LadderPoint, solve_ladder
from mvsearch.proxy.settings import ProxySettings, proxy_arch
from mvsearch.search.record import SCHEMA_VERSION, StudyRecord
from mvsearch.search.trainings import (Result, TrainingEvents, TrainingOptions, TrainingStudy,  # noqa: F401
                                       check_training_options, point_key)

#: the tier label of a scaling study's one Optuna study ("NAME@scale")
SCALE_LABEL = "scale"
#: the family name of the paper presets trained beside a ladder (``--with-presets``)
PRESET_FAMILY = "preset"
#: the family name of the networks of the compound grid search at phi = 1 (``--compound search``)
GRID_FAMILY = "compound-grid"
#: EfficientNet's grid: width and resolution bases in these steps, depth taking the rest of 2x FLOPs
GRID_STEPS = (1.0, 1.1, 1.2, 1.3)


# ---------------------------------------------------------------------- the plan
@dataclass(frozen=True)
class Base:
    """What a scaling study grows and shrinks."""

    kind: str  # "preset", "trial" or "config"
    label: str  # "mobilevit_xxs", "mobile 1.5G/2", "models/net.yaml"
    arch: ArchConfig  # the deployed network (its classifier: the deployment's classes)
    resolution: int  # deployment input side

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "label": self.label, "arch": self.arch.to_dict(), "resolution": self.resolution}


@dataclass(frozen=True)
class Rung:
    """One ladder point of one family: the scaled network, its cost and how it is trained."""

    family: str  # "width", "depth", "resolution", "compound", "dwr", or "preset"
    target_flops: int | None  # what the ladder asked for (None: --multipliers or a preset)
    multiplier: float  # the FLOP multiplier s handed to the family (1: the base)
    factors: tuple[float, float, float]  # (depth, width, resolution) factors
    arch: ArchConfig  # deployed network
    resolution: int  # deployment input side
    proxy_resolution: int  # input side it is trained at
    flops: int  # fvcore FLOPs at the deployment resolution (analytic count, equal to fvcore)
    params: int
    activations: int
    key: str  # the point: hash of arch, resolution and training (see :func:`~mvsearch.search.trainings.point_key`)
    proxy: ProxySettings  # how it is trained (the study's proxy at ``proxy_resolution``)
    preset: str | None = None  # the preset's name for family "preset"

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["arch"] = self.arch.to_dict()
        d["factors"] = list(self.factors)
        d["proxy"] = self.proxy.to_dict()
        return d


def scaled_proxy_resolution(proxy_resolution: int, base_resolution: int, resolution: int) -> int:
    """The proxy input side for a network deployed at ``resolution`` (same ratio, multiple of 8)."""
    if resolution == base_resolution:
        return proxy_resolution
    return max(8, int(round(proxy_resolution * resolution / base_resolution / 8)) * 8)


def _rung(family: str, target: int | None, s: float, f: tuple[float, float, float], arch: ArchConfig,
          resolution: int, base: Base, proxy: ProxySettings, preset: str | None = None) -> Rung:
    c = analytic_cost(arch, resolution)
    pr = scaled_proxy_resolution(proxy.resolution, base.resolution, resolution)
    trained = dataclasses.replace(proxy, resolution=pr)
    return Rung(family, target, s, tuple(float(x) for x in f), arch, resolution, pr, c.flops, c.params,
                c.activations, point_key(arch, resolution, trained), trained, preset)


def plan(base: Base, families: Sequence[tuple[str, dict[str, float]]], proxy: ProxySettings, *,
         targets: Sequence[int] | None = None, multipliers: Sequence[float] | None = None,
         presets: Sequence[str] = ()) -> list[Rung]:
    """Every rung of every family (targets solved to the nearest reachable FLOPs), then ``presets``."""
    if (targets is None) == (multipliers is None):
        raise StudyError("pass either target FLOPs (--flops) or --multipliers, not both")
    rungs: list[Rung] = []
    for name, params in families:
        if targets is not None:
            points: list[LadderPoint] = solve_ladder(name, base.arch, base.resolution, list(targets), **params)
            for p in points:
                rungs.append(_rung(name, int(p.target_flops), p.multiplier, tuple(p.factors), p.arch, p.resolution,
                                   base, proxy))
        else:
            for s in multipliers or ():
                arch, res = apply_family(name, base.arch, base.resolution, s, **params)
                rungs.append(_rung(name, None, s, family_factors(name, s, **params), arch, res, base, proxy))
    for name in presets:
        arch = get_preset(name, base.arch.num_classes)
        rungs.append(_rung(PRESET_FAMILY, None, 1.0, (1.0, 1.0, 1.0), arch, base.resolution, base, proxy, name))
    for r in rungs:  # every rung must be trainable: checked now, not an hour into the study
        trained = proxy_arch(r.arch, r.proxy, r.arch.num_classes)
        try:
            check_resolution(trained, r.proxy_resolution)
            check_cost(trained, r.proxy_resolution, batch=proxy.batch_size, what="the proxy network")
        except MvsearchError as exc:
            raise StudyError(f"{r.family} ladder point at {r.flops / 1e9:.2f}G FLOPs cannot be trained: {exc}") from None
    return rungs


# ---------------------------------------------------------------------- the study
#: what ``mvsearch scale`` was asked to do besides its plan (name, storage, seeds, device, threads)
ScaleOptions = TrainingOptions
check_scale_options = check_training_options


class ScaleStudy(TrainingStudy):
    """A scaling study: the plan's rungs trained in ``NAME@scale``, whose record holds the base."""

    def __init__(self, base: Base, rungs: Sequence[Rung], proxy: ProxySettings, opts: TrainingOptions,
                 events: TrainingEvents | None = None) -> None:
        info = StudyRecord(search=opts.name, tier=SCALE_LABEL, schema_version=SCHEMA_VERSION,
                           resolution=[base.resolution] * 2, num_classes=base.arch.num_classes, data=proxy.data,
                           proxy=proxy.to_dict(), seed=0, mvsearch_version=__version__, scale=base.to_dict())
        super().__init__(SCALE_LABEL, rungs, opts, info, compatible=self._same_base, events=events)
        self.base, self.rungs, self.proxy = base, list(rungs), proxy

    def _same_base(self, old: StudyRecord) -> None:
        if old.scale is None:
            raise StudyError(f"study {self.full!r} is not a scaling study; pass another --name")
        if old.scale.get("arch") != self.base.arch.to_dict() or old.scale.get("resolution") != self.base.resolution:
            raise StudyError(f"scaling study {self.opts.name!r} scales {old.scale.get('label')!r}, not "
                             f"{self.base.label!r}; pass another --name (e.g. --name scale-{_slug(self.base.label)})")


def _slug(label: str) -> str:
    s = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in Path(str(label)).stem)
    return s.strip("-.")[:60] or "base"


def default_name(base: Base) -> str:
    """``scale-mobilevit_xxs``, ``scale-mobile-1.5G-2``, ``scale-net``."""
    return f"scale-{_slug(base.label.replace(' ', '-').replace('/', '-'))}"


def preset_base(name: str, resolution: int = 256) -> Base:
    return Base("preset", name, get_preset(name), resolution)


def compound_grid(base: Base, proxy: ProxySettings) -> list[Rung]:
    """EfficientNet's step 1 (Tan & Le 2019, Sec. 3.3): at phi = 1 (about 2x the base's FLOPs), the
    networks d = alpha, w = beta, r = gamma for beta, gamma on :data:`GRID_STEPS` and
    alpha = 2 / (beta^2 gamma^2) >= 1, so alpha * beta^2 * gamma^2 = 2. The most accurate under the
    proxy gives the compound family's bases. Triples that round to the same network train once."""
    out: list[Rung] = []
    for beta in GRID_STEPS:
        for gamma in GRID_STEPS:
            alpha = 2.0 / (beta * beta * gamma * gamma)
            if alpha < 1.0:
                continue
            params = {"alpha": alpha, "beta": beta, "gamma": gamma}
            arch, res = apply_family("compound", base.arch, base.resolution, 2.0, **params)
            out.append(_rung(GRID_FAMILY, None, 2.0, (alpha, beta, gamma), arch, res, base, proxy))
    return out


def best_grid_point(rungs: Sequence[Rung], results: dict[str, list[Result]]) -> tuple[Rung, float] | None:
    """The grid network with the highest mean accuracy over its trainings (None until one is trained)."""
    scored = [(sum(r.accuracy for r in results.get(g.key, [])) / len(results[g.key]), g)
              for g in rungs if g.family == GRID_FAMILY and results.get(g.key)]
    if not scored:
        return None
    acc, best = max(scored, key=lambda t: (t[0], -t[1].flops))
    return best, acc


def nearest_presets(base: Base, rungs: Sequence[Rung]) -> list[str]:
    """The paper presets whose FLOPs (at the base's resolution) lie within the ladder's range."""
    if not rungs:
        return []
    lo, hi = min(r.flops for r in rungs), max(r.flops for r in rungs)
    out = []
    for name in PRESETS:
        c = analytic_cost(get_preset(name, base.arch.num_classes), base.resolution)
        if lo / 1.05 <= c.flops <= hi * 1.05:
            out.append(name)
    return out


__all__ = ["Base", "Rung", "plan", "ScaleOptions", "ScaleStudy", "Result", "SCALE_LABEL", "PRESET_FAMILY",
           "point_key", "scaled_proxy_resolution", "default_name", "preset_base", "nearest_presets",
           "check_scale_options", "compound_grid", "best_grid_point", "GRID_FAMILY"]
