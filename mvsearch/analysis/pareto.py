"""Pareto fronts of a study: accuracy (maximised) against a cost (minimised), and the paper tiers.

A point *dominates* another when it costs no more and is no less accurate, and is strictly better
in one of the two. The front is every completed, in-budget trial that no other dominates; exact
duplicates (same cost, same accuracy) dominate neither each other, so both stay on the front and
share its rank. Ranks count from the most accurate point (rank 1), as ``mvsearch export --rank``.
Only COMPLETE trials can be on the front: a pruned trial's accuracy is that of an unfinished run.

Costs: ``flops`` and ``params`` from each trial's attributes (deployment resolution), ``latency``
the median batch-1 latency stored by :mod:`mvsearch.latency` for one device.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

from mvsearch.arch.presets import PRESETS, get_preset
from mvsearch.core.errors import StudyError
from mvsearch.search.front import Axis, Y_AXES, _x_getter, candidates, check_axis, nondominated
from mvsearch.search.record import TrialRecord, trial_key


LOG_X_SPAN = 5.0  # a log x axis when the largest cost shown is at least this many times the smallest


SHORT = {"mobilevit_xxs": "XXS", "mobilevit_xs": "XS", "mobilevit_s": "S"}


@dataclass(frozen=True)
class PaperPreset:
    """A paper preset at the study's deployment resolution and classifier size."""

    name: str  # preset name
    flops: int
    params: int
    latency_ms: float | None = None  # on the report's device, when measured
    trial: str | None = None  # the baseline trial (its ref) that trained it in this study, if any
    accuracy: float | None = None  # that trial's accuracy

    @property
    def short(self) -> str:
        return SHORT.get(self.name, self.name)


@functools.lru_cache(maxsize=16)
def _preset_cost(name: str, num_classes: int, resolution: tuple[int, int]) -> tuple[int, int]:
    from mvsearch.arch.presets import PAPER_FLOPS, PAPER_PARAMS
    from mvsearch.cost.traced import count

    if resolution == (256, 256) and num_classes == 1000:
        return PAPER_FLOPS[name], PAPER_PARAMS[name]
    cfg = get_preset(name, num_classes)
    try:  # the closed form (exact, microseconds) where the search ships it; fvcore otherwise
        from mvsearch.cost.analytic import analytic_cost
    except ImportError:
        c = count(cfg, resolution, thop=False)
    else:
        c = analytic_cost(cfg, resolution)
    return c.flops, c.params


def paper_tiers(recs: Sequence[TrialRecord], resolution: tuple[int, int], num_classes: int,
                latency: dict[str, Any] | None = None) -> list[PaperPreset]:
    """The three presets, with their baseline trials' figures where the study trained them."""
    out = []
    for name in PRESETS:
        base = next((r for r in recs if r.baseline and r.preset == name and r.state == "COMPLETE"
                     and not r.over_budget), None)
        if base is not None and base.flops is not None and base.params is not None:
            flops, params = base.flops, base.params
        else:
            flops, params = _preset_cost(name, num_classes, tuple(resolution))
        lat = (latency or {}).get(f"preset:{name}")
        if base is not None and (latency or {}).get(trial_key(base.ref)) is not None:
            lat = latency[trial_key(base.ref)]
        out.append(PaperPreset(name, flops, params, lat.median_ms if lat is not None else None,
                        base.ref if base is not None else None,
                        base.accuracy if base is not None else None))
    return out


def nearest_tier(flops: int | None, tiers: Sequence[PaperPreset]) -> str:
    """``XS ×0.93``: the preset nearest in FLOPs (on a log scale) and the ratio to it."""
    if not flops or not tiers:
        return "-"
    t = min(tiers, key=lambda t: abs(math.log(flops / t.flops)))
    return f"{t.short} ×{flops / t.flops:.2f}"


@dataclass
class Point:
    """A trial placed on the plot."""

    record: TrialRecord
    x: float
    accuracy: float
    latency: Any = None  # LatencyRecord, when measured on the chosen device
    rank: int | None = None  # position on the front (1 = most accurate), None when dominated
    tier: str = "-"  # nearest paper tier


@dataclass
class Pareto:
    """Everything ``mvsearch pareto`` prints and plots."""

    study_name: str
    storage: str
    x: Axis
    y: Axis
    resolution: tuple[int, int]
    num_classes: int
    points: list[Point]  # every completed trial with x and accuracy
    pruned: list[Point]  # pruned trials with x and a last reported accuracy
    front: list[Point]  # the non-dominated points, rank order
    tiers: list[PaperPreset]
    device: Any = None  # latency Device, when latency figures are shown
    counts: dict[str, int] = field(default_factory=dict)  # trials by state, and budget rejections

    @property
    def log_x(self) -> bool:
        """A log x axis when what the plot shows (trials and preset rules) spans a wide range."""
        xs = [p.x for p in self.points + self.pruned if p.x > 0]
        xs += [v for v in (self.tier_x(t) for t in self.tiers) if v]
        return bool(xs) and max(xs) / min(xs) >= LOG_X_SPAN

    def tier_x(self, t: PaperPreset) -> float | None:
        """A preset's position on this plot's x axis (None when unknown)."""
        return {"flops": t.flops, "params": t.params, "latency": t.latency_ms}[self.x.name]

    def to_json(self) -> dict[str, Any]:
        return {
            "study": self.study_name,
            "storage": self.storage,
            "x": {"name": self.x.name, "title": self.x.title, "unit": self.x.unit, "log": self.log_x},
            "y": {"name": self.y.name, "title": self.y.title, "unit": self.y.unit},
            "resolution": list(self.resolution),
            "num_classes": self.num_classes,
            "device": None if self.device is None else dict(self.device.__dict__),
            "counts": self.counts,
            "front": [_point_json(p) for p in self.front],
            "tiers": [dict(t.__dict__) for t in self.tiers],
        }


def _point_json(p: Point) -> dict[str, Any]:
    r = p.record
    lat = p.latency
    return {
        "rank": p.rank, "trial": r.ref, "number": r.number, "accuracy": p.accuracy, "x": p.x,
        "flops": r.flops, "params": r.params,
        "latency_ms": lat.median_ms if lat is not None else None,
        "latency_iqr_ms": lat.iqr_ms if lat is not None else None,
        "latency_ratio_xxs": lat.ratio_xxs if lat is not None else None,
        "tier": r.tier, "baseline": r.baseline, "preset": r.preset, "nearest_paper_tier": p.tier,
        "summary": r.summary(), "arch": r.arch.to_dict() if r.arch is not None else None,
    }


def state_counts(recs_all: Sequence[TrialRecord]) -> dict[str, int]:
    """Trials by state (budget rejections counted apart, under ``REJECTED``)."""
    out: dict[str, int] = {}
    for r in recs_all:
        key = "REJECTED" if r.over_budget else r.state
        out[key] = out.get(key, 0) + 1
    return out


def build(study_name: str, storage: str, recs_all: Sequence[TrialRecord], x: str, *,
          resolution: tuple[int, int], num_classes: int, latency: dict[str, Any] | None = None,
          device: Any = None) -> Pareto:
    """The :class:`Pareto` of already loaded records (budget rejections included or not)."""
    axis = check_axis(x)
    recs = [r for r in recs_all if not r.over_budget]
    get_x = _x_getter(x, latency)
    lat = latency or {}
    tiers = paper_tiers(recs, resolution, num_classes, latency)
    points = [Point(r, xv, acc, lat.get(trial_key(r.ref)), tier=nearest_tier(r.flops, tiers))
              for r, xv, acc in candidates(recs, get_x)]
    pruned = []
    for r in recs:
        xv = get_x(r)
        if r.state == "PRUNED" and r.accuracy is not None and xv is not None:
            pruned.append(Point(r, float(xv), r.accuracy, lat.get(trial_key(r.ref))))
    idx = nondominated([(p.x, p.accuracy) for p in points])
    rank = 0
    front_pts = []
    for k, i in enumerate(idx):  # duplicates share a rank
        prev = points[idx[k - 1]] if k else None
        if prev is None or (prev.x, prev.accuracy) != (points[i].x, points[i].accuracy):
            rank = k + 1
        points[i].rank = rank
        front_pts.append(points[i])
    return Pareto(study_name, storage, axis, Y_AXES["accuracy"], tuple(resolution), num_classes, points,
                  pruned, front_pts, tiers, device if latency else None,
                  state_counts(recs_all))


def compute(study_name: str | None = None, storage: str | None = None, x: str = "flops", y: str = "accuracy",
            *, backend: str | None = None) -> Pareto:
    """Load a study and compute its front against ``x`` (latency from the device that measured most)."""
    from mvsearch.latency import study as lt
    from mvsearch.latency import store as ls
    from mvsearch.search.storage import open_search

    check_axis(x)
    check_axis(y, Y_AXES, "--y")
    study = open_search(study_name, storage)
    name, url = study.name, study.url
    recs_all = study.records(include_rejected=True)
    recs = [r for r in recs_all if not r.over_budget]
    if not recs:
        raise StudyError(f"study {name!r} has no trials yet; run `mvsearch run --study {name}` first")
    device = ls.pick_device(url, name, backend)
    latency = ls.latencies(url, name, device) if device is not None else None
    if x == "latency" and not any(k.startswith("trial:") for k in (latency or {})):
        which = f" --backend {backend}" if backend else ""
        raise StudyError(f"no latency measured for study {name!r}{which}; measure it first with "
                         f"`mvsearch latency --study {name} --storage {url}{which}`")
    res = lt.deployment_resolution(study, recs)
    k = lt.study_num_classes(study, recs)
    out = build(name, url, recs_all, x, resolution=res, num_classes=k, latency=latency, device=device)
    if not out.points:
        c = out.counts
        raise StudyError(f"study {name!r} has no completed trial with accuracy and {x} "
                         f"({c.get('PRUNED', 0)} pruned, {c.get('FAIL', 0)} failed, "
                         f"{c.get('RUNNING', 0)} running); the front needs at least one completed trial")
    return out


def table(p: Pareto) -> list[dict[str, Any]]:
    """The front as table rows (rank, trial, accuracy, FLOPs, params, latency, arch, nearest tier)."""
    rows = []
    for pt in p.front:
        r = pt.record
        lat = pt.latency
        rows.append({
            "rank": pt.rank, "trial": r.ref, "accuracy": pt.accuracy, "flops": r.flops, "params": r.params,
            "latency": f"{lat.median_ms:.2f} ms IQR {lat.iqr_ms:.2f}" if lat is not None else "-",
            "arch": r.summary() + (" (baseline)" if r.baseline else ""), "paper tier": pt.tier,
        })
    return rows
