"""The Pareto front of trial records: accuracy (maximised) against a cost (FLOPs, params or latency, minimised)."""
from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from typing import Any, Sequence

from mvsearch.core.errors import MvsearchError
from mvsearch.search.record import TrialRecord, trial_key


@dataclass(frozen=True)
class Axis:
    name: str  # the --x value
    title: str  # axis title on plots
    unit: str  # unit of the values


AXES = {
    "flops": Axis("flops", "FLOPs (fvcore, 1 multiply-add = 1 FLOP)", "FLOPs"),
    "params": Axis("params", "parameters", "params"),
    "latency": Axis("latency", "latency, batch 1 (median ms)", "ms"),
}


Y_AXES = {"accuracy": Axis("accuracy", "proxy validation accuracy", "fraction"),
          "validated": Axis("validated", "validated accuracy (mean of seeds)", "fraction")}


def check_axis(name: str, axes: dict[str, Axis] = AXES, option: str = "--x") -> Axis:
    """The named axis, or one line listing the known ones."""
    if name in axes:
        return axes[name]
    hint = difflib.get_close_matches(str(name), axes, n=1)
    did = f" (did you mean {hint[0]!r}?)" if hint else ""
    raise MvsearchError(f"{option}: unknown axis {name!r}{did}; known: {', '.join(axes)}")


def nondominated(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other dominates (minimise x, maximise y), best y first.

    Sorting by (x, -y) makes one sweep enough: a point is on the front when its y beats every y
    seen at a strictly lower x, and equals the best y at its own x (ties at equal x and y all stay).
    """
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1], i))
    out: list[int] = []
    best_y = -math.inf  # best y among points with strictly smaller x
    start = 0
    while start < len(order):
        x = points[order[start]][0]
        end = start
        while end < len(order) and points[order[end]][0] == x:
            end += 1
        top = points[order[start]][1]  # the best y at this x
        if top > best_y:
            out += [j for j in order[start:end] if points[j][1] == top]
            best_y = top
        start = end
    return sorted(out, key=lambda j: (-points[j][1], points[j][0], j))


def candidates(recs: Sequence[TrialRecord], x_of) -> list[tuple[TrialRecord, float, float]]:
    """(record, x, accuracy) of every completed in-budget trial that has both values."""
    out = []
    for r in recs:
        if r.state != "COMPLETE" or r.over_budget or r.accuracy is None:
            continue
        x = x_of(r)
        if x is None or not math.isfinite(float(x)) or not math.isfinite(r.accuracy):
            continue
        out.append((r, float(x), float(r.accuracy)))
    return out


def _x_getter(axis: str, latency: dict[str, Any] | None):
    if axis == "flops":
        return lambda r: r.flops
    if axis == "params":
        return lambda r: r.params
    lat = latency or {}

    def get(r: TrialRecord) -> float | None:
        m = lat.get(trial_key(r.ref))
        return m.median_ms if m is not None else None

    return get


def front(recs: Sequence[TrialRecord], x: str = "flops", latency: dict[str, Any] | None = None) -> list[TrialRecord]:
    """The front's trials, most accurate first; ``latency`` maps subjects to latency records."""
    check_axis(x)
    pts = candidates(recs, _x_getter(x, latency))
    return [pts[i][0] for i in nondominated([(p[1], p[2]) for p in pts])]
