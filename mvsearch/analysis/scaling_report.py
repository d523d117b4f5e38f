"""What a scaling study shows: the trained ladder, one fitted law per family, the comparisons, a page.

:func:`build` turns a plan (:class:`~mvsearch.search.scaling.Rung` list) and its trainings
(:meth:`~mvsearch.search.scaling.ScaleStudy.results`) into a :class:`ScaleReport`:

* per ladder point: the mean accuracy over its seeds, the seeds' own values, and the 95% Wilson
  interval of one training's accuracy on the validation images (:mod:`mvsearch.core.interval`);
* per family with at least 4 trained points: the law error = a·FLOPs^(−b) + c with bootstrap
  intervals and the held-out extrapolation check (:mod:`mvsearch.analysis.scaling_law`);
* at each ladder target and each ``--predict`` FLOPs: the family predicted best, with the others
  whose intervals overlap it named "indistinguishable";
* per trained paper preset: the ladder point of each family nearest in FLOPs (within 15%), and
  win / tie / loss by the 95% interval of the accuracy difference. That interval adds both
  points' validation noise (binomial) and seed noise (the seeds' variance over their count); both
  are measured on the same validation images, so treating them as independent is conservative.

The page (:func:`write_page`) has error vs FLOPs on log-log axes per family with the fitted curve
and its band, held-out points and the presets marked; error vs params and vs activations; and
activations vs FLOPs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import plotly.graph_objects as go

from mvsearch.analysis.page import Facts, Note, Section, Table, figure, num, render, txt, write_page as _write
from mvsearch.analysis.scaling_law import FamilyComparison, Measurement, ScalingFit, compare_families, fit_scaling
from mvsearch.core.errors import MvsearchError
from mvsearch.core.interval import Z95, half_width, wilson
from mvsearch.core.units import format_count, format_flops
from mvsearch.search.record import describe_proxy
from mvsearch.search.scaling import GRID_FAMILY, PRESET_FAMILY, Base, Result, Rung

MIN_POINTS = 4  # trained ladder points a family needs before its law is fitted
MATCH = 0.15  # a ladder point "matches" a preset's FLOPs within this relative distance
COLORS = {"width": "#1f77b4", "depth": "#ff7f0e", "resolution": "#2ca02c", "compound": "#9467bd",
          "dwr": "#d62728", PRESET_FAMILY: "#222222"}


@dataclass(frozen=True)
class PointStats:
    """One ladder point's trainings."""

    rung: Rung
    accuracies: tuple[float, ...]  # one per trained seed, seed order
    refs: tuple[str, ...]  # "scale/N" of each
    n_val: int | None  # validation images behind each accuracy
    latency_ms: float | None = None  # median batch-1 latency when measured (mvsearch scale --measure-latency)

    @property
    def trained(self) -> bool:
        return bool(self.accuracies)

    @property
    def mean(self) -> float | None:
        return float(np.mean(self.accuracies)) if self.accuracies else None

    @property
    def variance(self) -> float | None:
        """Variance of the mean accuracy: validation (binomial) noise plus seed noise over the seed count."""
        if not self.accuracies or not self.n_val:
            return None
        p = self.mean
        seed_var = float(np.var(self.accuracies, ddof=1)) / len(self.accuracies) if len(self.accuracies) > 1 else 0.0
        return p * (1 - p) / self.n_val + seed_var

    @property
    def wilson(self) -> tuple[float, float] | None:
        return wilson(self.mean, self.n_val) if self.accuracies and self.n_val else None

    def to_dict(self) -> dict[str, Any]:
        w = self.wilson
        return {"family": self.rung.family, "preset": self.rung.preset, "target_flops": self.rung.target_flops,
                "multiplier": self.rung.multiplier, "factors": list(self.rung.factors), "flops": self.rung.flops,
                "params": self.rung.params, "activations": self.rung.activations, "resolution": self.rung.resolution,
                "proxy_resolution": self.rung.proxy_resolution, "point": self.rung.key,
                "accuracies": list(self.accuracies), "mean_accuracy": self.mean, "seeds": len(self.accuracies),
                "val_samples": self.n_val, "wilson95": list(w) if w else None, "trials": list(self.refs),
                "latency_ms": self.latency_ms,
                "arch": self.rung.arch.to_dict()}

    def shown(self) -> str:
        """``76.2% ±3.7 (75.9, 76.5)``: mean, Wilson half-width in points, the seeds' values."""
        if not self.accuracies:
            return "not trained"
        hw = f" ±{100 * half_width(self.mean, self.n_val):.1f}" if self.n_val else ""
        seeds = ", ".join(f"{100 * a:.1f}" for a in self.accuracies)
        return f"{100 * self.mean:.1f}%{hw} ({seeds})"


@dataclass(frozen=True)
class Versus:
    """A trained paper preset against one family at its FLOPs: the family's ladder point nearest in
    FLOPs (within 15%), or else the family's fitted law at the preset's FLOPs."""

    preset: PointStats
    family: str
    point: PointStats | None  # the ladder point compared with (None: the law, or nothing)
    diff: float | None = None  # family − preset mean accuracy
    lo: float | None = None  # 95% interval of the difference
    hi: float | None = None
    predicted: float | None = None  # the law's accuracy at the preset's FLOPs, when it is the law

    @property
    def by(self) -> str:
        return "point" if self.point is not None else "law" if self.diff is not None else "none"

    @property
    def verdict(self) -> str:
        if self.diff is None:
            return "no point within 15% of its FLOPs and no fitted law"
        return "win" if self.lo > 0 else "loss" if self.hi < 0 else "tie"

    def to_dict(self) -> dict[str, Any]:
        return {"preset": self.preset.rung.preset, "family": self.family, "by": self.by,
                "point_flops": self.point.rung.flops if self.point else None, "predicted_accuracy": self.predicted,
                "preset_flops": self.preset.rung.flops, "difference": self.diff, "interval95": [self.lo, self.hi]
                if self.diff is not None else None, "verdict": self.verdict}

    def shown(self) -> str:
        pre = self.preset
        head = f"{pre.rung.preset} ({format_flops(pre.rung.flops)}, {100 * pre.mean:.1f}%) vs {self.family}"
        if self.diff is None:
            return f"{head}: {self.verdict}"
        if self.point is not None:
            what = f" at {format_flops(self.point.rung.flops)} ({100 * self.point.mean:.1f}%)"
        else:
            what = f"'s law at {format_flops(pre.rung.flops)} ({100 * self.predicted:.1f}%; no point within 15%)"
        return f"{head}{what}: {100 * self.diff:+.1f} pts [{100 * self.lo:+.1f}, {100 * self.hi:+.1f}] {self.verdict}"


@dataclass
class ScaleReport:
    name: str
    url: str
    base: Base
    proxy: dict[str, Any]
    seeds: int
    points: list[PointStats]
    fits: dict[str, ScalingFit] = field(default_factory=dict)
    unfitted: dict[str, str] = field(default_factory=dict)  # family -> why no law
    comparisons: list[FamilyComparison] = field(default_factory=list)
    versus: list[Versus] = field(default_factory=list)
    predict: list[int] = field(default_factory=list)
    target_error: float | None = None
    holdout: int = 1

    def families(self) -> list[str]:
        return list(dict.fromkeys(p.rung.family for p in self.points
                                  if p.rung.family not in (PRESET_FAMILY, GRID_FAMILY)))

    def of(self, family: str) -> list[PointStats]:
        """A family's points, by FLOPs, one per distinct network."""
        seen, out = set(), []
        for p in sorted((p for p in self.points if p.rung.family == family), key=lambda p: p.rung.flops):
            if p.rung.key not in seen:
                seen.add(p.rung.key)
                out.append(p)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "study": self.name, "storage": self.url, "base": self.base.to_dict(), "proxy": self.proxy,
            "seeds": self.seeds, "holdout": self.holdout,
            "families": {f: {"ladder": [p.to_dict() for p in self.of(f)],
                             "fit": self.fits[f].to_dict() if f in self.fits else None,
                             "unfitted": self.unfitted.get(f)} for f in self.families()},
            "presets": [p.to_dict() for p in self.of(PRESET_FAMILY)],
            "compound_grid": [p.to_dict() for p in self.of(GRID_FAMILY)],
            "best_family": [c.to_dict() for c in self.comparisons],
            "versus_presets": [v.to_dict() for v in self.versus],
        }

    # ------------------------------------------------------------ text
    def lines(self) -> list[str]:
        out = ["", f"scaling study {self.name!r} ({self.url}): {self.base.label}, "
               f"{self.seeds} seed(s) per point; accuracy = mean of seeds ±95% Wilson half-width (seeds' values)"]
        for f in [*self.families(), PRESET_FAMILY, GRID_FAMILY]:
            pts = self.of(f)
            if not pts:
                continue
            out.append(f"{f}:" if f != GRID_FAMILY else f"{f} (phi = 1; alpha/beta/gamma = depth/width/resolution bases):")
            for p in pts:
                a, b, g = p.rung.factors
                name = p.rung.preset or (f"{a:.2f}/{b:.2f}/{g:.2f}" if f == GRID_FAMILY else f"s={p.rung.multiplier:.2f}")
                out.append(f"  {name:<15}{format_flops(p.rung.flops):>8}{format_count(p.rung.params):>8} params  "
                           f"{p.shown()}")
        if self.fits or self.unfitted:
            out += ["", "fit error = a*(FLOPs/1G)^-b + c per family (95% bootstrap intervals; the largest "
                        f"{self.holdout} point(s) held out and predicted):"]
            head = f"  {'family':<11}{'b':>22}{'c (floor)':>22}  held-out: observed vs predicted error"
            for at in self.predict:
                head += f"  | error at {format_flops(at)}"
            if self.target_error is not None:
                head += f"  | FLOPs for error {self.target_error:g}"
            out.append(head)
        for f, fit in self.fits.items():
            law = fit.law
            line = (f"  {f:<11}{law.b:>7.3f} [{fit.b_ci[0]:.3f}, {fit.b_ci[1]:.3f}]"
                    f"{law.c:>7.3f} [{fit.c_ci[0]:.3f}, {fit.c_ci[1]:.3f}]  ")
            held = "; ".join(f"{format_flops(h.flops)}: {100 * h.observed:.1f}% vs {100 * h.predicted:.1f}% "
                             f"({h.error_pp:+.1f} pts, {'inside' if h.inside else 'OUTSIDE'} the band)"
                             for h in fit.heldout) or "none held out"
            line += held
            for p in fit.predictions:
                line += f"  | {100 * p.error:.1f}% [{100 * p.lo:.1f}, {100 * p.hi:.1f}]"
            if fit.target is not None:
                t = fit.target
                line += ("  | unreachable" if t.flops is None else
                         f"  | {format_flops(t.flops)} [{format_flops(t.lo) if t.lo else 'never'}, "
                         f"{format_flops(t.hi) if t.hi else 'never'}]")
            out.append(line)
            for w in fit.warnings:
                out.append(f"    warning: {w}")
        for f, why in self.unfitted.items():
            out.append(f"  {f:<11}not fitted: {why}")
        if self.comparisons:
            out += ["", "lowest predicted error (families whose 95% intervals overlap are indistinguishable):"]
            for c in self.comparisons:
                p = c.predictions[c.best]
                out.append(f"  at {format_flops(c.flops):>7}: {c.verdict}  ({100 * p.error:.1f}% error "
                           f"[{100 * p.lo:.1f}, {100 * p.hi:.1f}])")
        if self.versus:
            out += ["", "ladder points against the paper presets under the same training (95% interval of the "
                        "accuracy difference):"]
            for v in self.versus:
                out.append(f"  {v.shown()}")
        return out


# ---------------------------------------------------------------------- building
def build(base: Base, rungs: Sequence[Rung], results: dict[str, list[Result]], *, seeds: int, holdout: int = 1,
          resamples: int = 1000, predict: Sequence[int] = (), target_error: float | None = None, name: str = "",
          url: str = "", proxy: dict[str, Any] | None = None, seed: int = 0,
          latency: dict[str, float] | None = None) -> ScaleReport:
    """The report of a plan's trainings (families with fewer than 4 trained points are not fitted).

    ``latency``: trial ref -> median latency in ms, where measured."""
    points = []
    for r in rungs:
        res = results.get(r.key, [])
        n_val = next((x.val_samples for x in res if x.val_samples), None)
        ms = [latency[x.ref] for x in res if latency and x.ref in latency]
        points.append(PointStats(r, tuple(x.accuracy for x in res), tuple(x.ref for x in res), n_val,
                                 float(np.median(ms)) if ms else None))
    rep = ScaleReport(name, url, base, proxy or {}, seeds, points, predict=list(predict), target_error=target_error,
                      holdout=holdout)
    for f in rep.families():
        pts = [p for p in rep.of(f) if p.trained]
        missing = len(rep.of(f)) - len(pts)
        if len(pts) < MIN_POINTS:
            rep.unfitted[f] = (f"{len(pts)} of {len(rep.of(f))} points trained; a law needs at least {MIN_POINTS}"
                               + (" (rerun the command to train the rest)" if missing else " (add --points)"))
            continue
        ms = [Measurement(float(p.rung.flops), 1.0 - a, s, p.n_val) for p in pts for s, a in enumerate(p.accuracies)]
        try:
            rep.fits[f] = fit_scaling(ms, holdout=holdout, resamples=resamples, seed=seed, predict=list(predict),
                                      target_error=target_error)
        except MvsearchError as exc:
            rep.unfitted[f] = str(exc)
    if len(rep.fits) >= 1:
        levels = sorted({int(p.rung.target_flops or p.rung.flops) for p in points
                         if p.rung.family not in (PRESET_FAMILY, GRID_FAMILY)}
                        | set(int(x) for x in predict))
        rep.comparisons = [compare_families(rep.fits, float(lv)) for lv in levels]
    for pre in rep.of(PRESET_FAMILY):
        if not pre.trained:
            continue
        for f in rep.families():
            near = [p for p in rep.of(f) if p.trained and abs(p.rung.flops / pre.rung.flops - 1) <= MATCH]
            if not near:
                fit = rep.fits.get(f)
                if fit is None or pre.variance is None:
                    rep.versus.append(Versus(pre, f, None))
                    continue
                # the law's band at the preset's FLOPs, widened by the preset's own noise
                pr, noise = fit.predict(float(pre.rung.flops)), Z95 * math.sqrt(pre.variance)
                acc = 1 - pr.error
                rep.versus.append(Versus(pre, f, None, acc - pre.mean, (1 - pr.hi) - pre.mean - noise,
                                         (1 - pr.lo) - pre.mean + noise, acc))
                continue
            p = min(near, key=lambda p: abs(math.log(p.rung.flops / pre.rung.flops)))
            if p.variance is None or pre.variance is None:
                rep.versus.append(Versus(pre, f, None))
                continue
            d = p.mean - pre.mean
            h = Z95 * math.sqrt(p.variance + pre.variance)
            rep.versus.append(Versus(pre, f, p, d, d - h, d + h))
    return rep


# ---------------------------------------------------------------------- the page
def _style(fig: go.Figure, title: str, subtitle: str, x: str, y: str, *, logx: bool = True,
           logy: bool = True) -> go.Figure:
    fig.update_layout(template="plotly_white", height=480, title=dict(text=title, subtitle=dict(text=subtitle)),
                      margin=dict(l=70, r=30, t=90, b=60), legend=dict(x=1.02, xanchor="left", y=1))
    fig.update_xaxes(title=x, type="log" if logx else "linear")
    fig.update_yaxes(title=y, type="log" if logy else "linear")
    return fig


def error_figure(rep: ScaleReport) -> go.Figure:
    """Error vs FLOPs, log-log: every training, each family's law and 95% band, held-out points, presets."""
    fig = go.Figure()
    for f in rep.families():
        pts = [p for p in rep.of(f) if p.trained]
        if not pts:
            continue
        color = COLORS.get(f, "#555")
        fit = rep.fits.get(f)
        if fit is not None:
            lo_f = min(p.rung.flops for p in pts) / 1.3
            hi_f = max([p.rung.flops for p in pts] + list(rep.predict)) * 1.3
            grid = np.geomspace(lo_f, hi_f, 80)
            mid, lo, hi = fit.curve(grid)
            fig.add_trace(go.Scatter(x=np.r_[grid, grid[::-1]], y=np.r_[hi, lo[::-1]], fill="toself",
                                     fillcolor=color, opacity=0.15, line=dict(width=0), hoverinfo="skip",
                                     name=f"{f}: 95% band", legendgroup=f, showlegend=False))
            fig.add_trace(go.Scatter(x=grid, y=mid, mode="lines", line=dict(color=color), legendgroup=f,
                                     name=f"{f}: b={fit.law.b:.2f}, c={fit.law.c:.3f}"))
        held = {h.flops for h in fit.heldout} if fit is not None else set()
        for is_held in (False, True):
            sel = [p for p in pts if (float(p.rung.flops) in held) == is_held]
            if not sel:
                continue
            xs = [p.rung.flops for p in sel for _ in p.accuracies]
            ys = [1 - a for p in sel for a in p.accuracies]
            text = [f"{ref}<br>{p.rung.arch.summary()}" for p in sel for ref in p.refs]
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="markers", legendgroup=f, text=text,
                                     name=f"{f}{' (held out)' if is_held else ''}",
                                     marker=dict(color=color, size=9, symbol="circle-open" if is_held else "circle",
                                                 line=dict(width=2))))
    pre = [p for p in rep.of(PRESET_FAMILY) if p.trained]
    if pre:
        fig.add_trace(go.Scatter(x=[p.rung.flops for p in pre for _ in p.accuracies],
                                 y=[1 - a for p in pre for a in p.accuracies], mode="markers+text",
                                 text=[p.rung.preset if i == 0 else "" for p in pre for i in range(len(p.accuracies))],
                                 textposition="top center", name="paper presets (same training)",
                                 marker=dict(color="#222", size=12, symbol="star")))
    observed = [1 - a for p in rep.points if p.trained for a in p.accuracies]
    if observed:  # the axis spans the measurements (a band reaching far below them is cut at the edge)
        lo_y, hi_y = max(min(observed) / 1.5, 1e-4), min(max(observed) * 1.5, 1.0)
        fig.update_yaxes(range=[math.log10(lo_y), math.log10(hi_y)], dtick="D2")
    return _style(fig, "Error vs FLOPs per scaling family",
                  f"{rep.base.label}; each marker one training; lines: error = a·FLOPs^-b + c with 95% bootstrap band",
                  "FLOPs (deployment resolution)", "top-1 error (1 − accuracy)")


def _cost_of(p: PointStats, axis: str) -> float | None:
    return p.latency_ms if axis == "latency" else getattr(p.rung, axis)


def cost_figure(rep: ScaleReport, axis: str) -> go.Figure:
    """Mean error vs params, activations or latency per family (log-log)."""
    fig = go.Figure()
    for f in [*rep.families(), PRESET_FAMILY]:
        pts = [p for p in rep.of(f) if p.trained and _cost_of(p, axis) is not None]
        if not pts:
            continue
        fig.add_trace(go.Scatter(x=[_cost_of(p, axis) for p in pts], y=[1 - p.mean for p in pts],
                                 mode="lines+markers" if f != PRESET_FAMILY else "markers", name=f,
                                 text=[p.rung.preset or p.rung.arch.summary() for p in pts],
                                 marker=dict(color=COLORS.get(f, "#555"), size=9,
                                             symbol="star" if f == PRESET_FAMILY else "circle")))
    label = {"params": "parameters", "activations": "activations (fvcore count)",
             "latency": "batch-1 latency (ms, this machine)"}[axis]
    return _style(fig, f"Error vs {label}", "mean over seeds", label, "top-1 error (1 − accuracy)")


def activations_figure(rep: ScaleReport) -> go.Figure:
    fig = go.Figure()
    for f in rep.families():
        pts = rep.of(f)
        fig.add_trace(go.Scatter(x=[p.rung.flops for p in pts], y=[p.rung.activations for p in pts],
                                 mode="lines+markers", name=f, marker=dict(color=COLORS.get(f, "#555"))))
    return _style(fig, "Activations vs FLOPs per family", "memory traffic grows fastest along depth and resolution",
                  "FLOPs", "activations")


def _fit_table(rep: ScaleReport) -> Table:
    head = (("family", True), ("points", False), ("b", False), ("b 95%", False), ("c", False), ("c 95%", False),
            ("held-out error (pts)", False), ("inside band", False), ("warnings", True))
    rows = []
    for f, fit in rep.fits.items():
        h = fit.heldout[-1] if fit.heldout else None
        rows.append(("", (txt(f), num(fit.n_points), num(fit.law.b, f"{fit.law.b:.3f}"),
                          txt(f"[{fit.b_ci[0]:.3f}, {fit.b_ci[1]:.3f}]"), num(fit.law.c, f"{fit.law.c:.3f}"),
                          txt(f"[{fit.c_ci[0]:.3f}, {fit.c_ci[1]:.3f}]"),
                          num(h.error_pp if h else None, f"{h.error_pp:+.1f}" if h else "-"),
                          txt(("yes" if h.inside else "no") if h else "-"), txt("; ".join(fit.warnings) or "-"))))
    return Table("fits", head, tuple(rows), "family")


def _ladder_table(rep: ScaleReport) -> Table:
    head = (("family", True), ("s", False), ("FLOPs", False), ("params", False), ("activations", False),
            ("input", False), ("latency ms", False), ("accuracy (±95% Wilson; seeds)", False), ("trials", True),
            ("arch", True))
    rows = []
    for f in [*rep.families(), PRESET_FAMILY]:
        for p in rep.of(f):
            rows.append(("", (txt(p.rung.preset or f), num(p.rung.multiplier, f"{p.rung.multiplier:.2f}"),
                              num(p.rung.flops, format_flops(p.rung.flops)),
                              num(p.rung.params, format_count(p.rung.params)),
                              num(p.rung.activations, format_count(p.rung.activations)), num(p.rung.resolution),
                              num(p.latency_ms, f"{p.latency_ms:.2f}" if p.latency_ms else "-"),
                              num(p.mean, p.shown()), txt(", ".join(p.refs) or "-"),
                              txt(p.rung.arch.summary(), "arch"))))
    return Table("ladder", head, tuple(rows), "family, then FLOPs")


def page(rep: ScaleReport) -> str:
    sub = [f"study {rep.name} in {rep.url}",
           f"base {rep.base.label} at {rep.base.resolution}x{rep.base.resolution}; proxy "
           f"{describe_proxy(rep.proxy)} on {rep.proxy.get('data')}; {rep.seeds} seed(s) per point"]
    verdicts = [(f"at {format_flops(c.flops)}", c.verdict) for c in rep.comparisons]
    versus = [(f"{v.preset.rung.preset} vs {v.family}", v.shown().split(": ", 1)[1]) for v in rep.versus]
    blocks: list[Any] = [figure(error_figure(rep), "plot-error-flops"), _fit_table(rep)]
    if rep.unfitted:
        blocks += [Note(f"{f}: not fitted ({why})") for f, why in rep.unfitted.items()]
    sections = [Section("laws", "Scaling laws", tuple(blocks))]
    if verdicts:
        sections.append(Section("best", "Lowest predicted error per FLOPs", (Facts(tuple(verdicts)),)))
    if versus:
        sections.append(Section("presets", "Against the paper presets (same training)", (Facts(tuple(versus)),)))
    sections.append(Section("costs", "Error against other costs", (
        figure(cost_figure(rep, "params"), "plot-error-params"),
        figure(cost_figure(rep, "activations"), "plot-error-activations"),
        *([figure(cost_figure(rep, "latency"), "plot-error-latency")] if any(p.latency_ms for p in rep.points) else
          [Note("Latency not measured: rerun with --measure-latency (or `mvsearch latency --study NAME`).")]),
        figure(activations_figure(rep), "plot-activations-flops"))))
    sections.append(Section("ladder", "The ladder", (_ladder_table(rep),)))
    return render(f"Scaling study: {rep.base.label}", sub, sections)


def write_page(rep: ScaleReport, path: str | Path, *, force: bool = False) -> Path:
    return _write(path, page(rep), force=force)


__all__ = ["build", "ScaleReport", "PointStats", "Versus", "write_page", "page", "error_figure"]
