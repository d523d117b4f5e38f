"""Pareto fronts of a study: accuracy (maximised) against a cost (minimised), and the paper tiers.

A point *dominates* another when it costs no more and is no less accurate, and is strictly better
in one of the two. The front is every completed, in-budget trial that no other dominates; exact
duplicates (same cost, same accuracy) dominate neither each other, so both stay on the front and
share its rank. Ranks count from the most accurate point (rank 1), as ``mvsearch export --rank``.
Only COMPLETE trials can be on the front: a pruned trial's accuracy is that of an unfinished run.

Costs: ``flops`` and ``params`` from each trial's attributes (deployment resolution), ``latency``
the median batch-1 latency stored by :mod:`mvsearch.latency` for one device.

Noise: an accuracy measured on n validation images carries its 95% Wilson interval
(:mod:`mvsearch.core.interval`). The front is still the non-dominated set of the point estimates, but
a front point whose interval overlaps that of the next more accurate front point (one step up the
front) is marked as indistinguishable from it (:attr:`Point.tie_with`): on these validation images
the two accuracies cannot be told apart.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

from mvsearch.arch.presets import PRESETS, get_preset
from mvsearch.core.errors import StudyError
from mvsearch.core.interval import format_interval, wilson
from mvsearch.search.front import Axis, Y_AXES, _x_getter, candidates, check_axis, nondominated
from mvsearch.search.record import TrialRecord, trial_key
from mvsearch.search.validate import check_by, records_by


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


def accuracy_text(accuracy: float | None, n: int | None) -> str:
    """``76.2% ±3.7`` (± half the 95% Wilson interval, in points) or, without ``n`` (older studies), ``76.17%``."""
    if accuracy is None:
        return "-"
    return format_interval(accuracy, n) if interval(accuracy, n) else f"{100 * accuracy:.2f}%"


def interval(accuracy: float | None, n: int | None) -> tuple[float, float] | None:
    """The 95% Wilson interval (low, high) of ``accuracy`` on ``n`` images; None without either."""
    if accuracy is None or not n or n <= 0 or not math.isfinite(accuracy):
        return None
    return wilson(accuracy, n)


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
    tie_with: int | None = None  # rank of the next more accurate front point when the 95% intervals overlap

    @property
    def interval(self) -> tuple[float, float] | None:
        """The accuracy's 95% Wilson interval, None when the trial did not record ``val_samples``."""
        return interval(self.accuracy, self.record.val_samples)

    @property
    def accuracy_text(self) -> str:
        """``76.2% ±3.7``, or the bare figure without ``val_samples``."""
        return accuracy_text(self.accuracy, self.record.val_samples)


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
    lo, hi = p.interval or (None, None)
    return {
        "rank": p.rank, "trial": r.ref, "number": r.number, "accuracy": p.accuracy, "accuracy_lo": lo,
        "accuracy_hi": hi, "val_samples": r.val_samples, "tie_with": p.tie_with, "x": p.x,
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
          device: Any = None, y: str = "accuracy") -> Pareto:
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
    mark_ties(front_pts)
    return Pareto(study_name, storage, axis, Y_AXES[y], tuple(resolution), num_classes, points,
                  pruned, front_pts, tiers, device if latency else None,
                  state_counts(recs_all))


def mark_ties(front: Sequence[Point]) -> None:
    """Set ``tie_with`` on each front point (rank order) whose 95% interval overlaps that of the next
    more accurate front point: the nearest one above it of a better rank (duplicates share a rank)."""
    for k, pt in enumerate(front):
        pt.tie_with = None
        above = next((q for q in reversed(front[:k]) if q.rank != pt.rank), None)
        if above is None or pt.interval is None or above.interval is None:
            continue
        (lo, hi), (a_lo, a_hi) = pt.interval, above.interval
        if lo <= a_hi and a_lo <= hi:
            pt.tie_with = above.rank


def compute(study_name: str | None = None, storage: str | None = None, x: str = "flops", y: str = "accuracy",
            *, backend: str | None = None, by: str = "proxy") -> Pareto:
    """Load a study and compute its front against ``x`` (latency from the device that measured most);
    ``by="validated"``: of the validated trials, by their validated accuracy (``mvsearch validate``)."""
    from mvsearch.latency import study as lt
    from mvsearch.latency import store as ls
    from mvsearch.search.storage import open_search

    check_axis(x)
    check_axis(y, Y_AXES, "--y")
    check_by(by)
    study = open_search(study_name, storage)
    name, url = study.name, study.url
    recs_all = study.records(include_rejected=True)
    recs = [r for r in recs_all if not r.over_budget]
    counts = state_counts(recs_all)
    if by == "validated" and recs:
        recs_all = records_by(study, by, include_rejected=True)
        y = "validated"
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
    out = build(name, url, recs_all, x, resolution=res, num_classes=k, latency=latency, device=device, y=y)
    out.counts = counts
    if not out.points:
        c = out.counts
        raise StudyError(f"study {name!r} has no completed trial with accuracy and {x} "
                         f"({c.get('PRUNED', 0)} pruned, {c.get('FAIL', 0)} failed, "
                         f"{c.get('RUNNING', 0)} running); the front needs at least one completed trial")
    return out


def noise_note(p: Pareto) -> str:
    """The sentence under a front table: what ``±`` and ``≈k`` mean, or why no accuracy has an interval."""
    ns = sorted({pt.record.val_samples for pt in p.front if pt.interval is not None})
    if not ns:
        return ("accuracies without an interval: these trials did not record how many validation images "
                "measured them")
    on = f"{ns[0]}" if len(ns) == 1 else f"{ns[0]} to {ns[-1]}"
    seeds = "; each accuracy the mean of its validation trainings' seeds" if p.y.name == "validated" else ""
    return (f"± half the 95% Wilson interval on {on} validation images; ≈k: indistinguishable from rank k, "
            f"the next more accurate front point (their intervals overlap){seeds}")


def table(p: Pareto) -> list[dict[str, Any]]:
    """The front as table rows (rank, trial, accuracy and its interval, the rank it ties with, FLOPs,
    params, latency, arch, nearest tier)."""
    rows = []
    for pt in p.front:
        r = pt.record
        lat = pt.latency
        rows.append({
            "rank": pt.rank, "trial": r.ref, "accuracy": pt.accuracy, "accuracy text": pt.accuracy_text,
            "tie": f"≈{pt.tie_with}" if pt.tie_with is not None else "", "flops": r.flops, "params": r.params,
            "latency": f"{lat.median_ms:.2f} ms IQR {lat.iqr_ms:.2f}" if lat is not None else "-",
            "arch": r.summary() + (" (baseline)" if r.baseline else ""), "paper tier": pt.tier,
        })
    return rows
