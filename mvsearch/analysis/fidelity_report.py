"""What a fidelity study shows: how well each proxy orders the architectures, what it costs, a verdict.

:func:`build` turns a :class:`~mvsearch.search.fidelity.FidelityPlan` and its trainings into a
:class:`FidelityReport` (statistics from :mod:`mvsearch.analysis.rank_stats`):

* per proxy: Kendall's τ-b and Spearman's ρ of the proxy's per-architecture mean accuracy against
  the reference's mean over its seeds, with 95% seed-stratified bootstrap intervals; the same τ
  within each FLOP tier of the budget (does the proxy order models *of one size*?);
* the ceiling: τ between reference seed 0 and seed 1, what a second reference training reaches;
* the baselines: τ of FLOPs alone and of params alone against the reference (a proxy that does not
  beat counting FLOPs is not worth its training);
* the cost per architecture (all of its seeds) relative to one reference training: the images it
  trains on (epochs x training images) and the measured training seconds;
* the verdict: the cheapest proxy (by images, then seconds) whose τ interval lies entirely above
  the FLOPs baseline's τ, else "none of these proxies beats counting FLOPs; use a longer proxy".

The page (:func:`write_page`) has, per proxy, its accuracy against the reference's (τ in the title),
and τ against the proxy's cost with its interval, the FLOPs and params baselines and the ceiling as
horizontal lines.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import plotly.graph_objects as go

from mvsearch.analysis.page import Facts, Note, Section, Table, figure, num, render, txt, write_page as _write
from mvsearch.analysis.rank_stats import DEFAULT_RESAMPLES, MIN_ARCHS, Agreement, agreement, seed_ceiling, \
    within_groups
from mvsearch.core.units import format_count, format_flops
from mvsearch.search.fidelity import Candidate, FidelityPlan, Setting
from mvsearch.search.record import describe_proxy
from mvsearch.search.trainings import Result

NO_PROXY = "none of these proxies beats counting FLOPs; use a longer proxy"


@dataclass(frozen=True)
class Cost:
    """What ranking one architecture with a setting costs (all its seeds)."""

    images: int | None  # images trained on: seeds x epochs x training images
    seconds: float | None  # measured training seconds (median over architectures with every seed trained)
    images_ratio: float | None  # relative to one reference training
    seconds_ratio: float | None

    def to_dict(self) -> dict[str, Any]:
        return {"images_per_arch": self.images, "train_s_per_arch": self.seconds,
                "images_vs_reference": self.images_ratio, "train_s_vs_reference": self.seconds_ratio}


@dataclass(frozen=True)
class ProxyFidelity:
    setting: Setting
    archs: int  # architectures measured under both this proxy and the reference
    agreement: Agreement | None  # None: fewer than MIN_ARCHS such architectures
    tiers: dict[str, Agreement | None]  # τ and ρ within each FLOP tier (None: too few archs there)
    cost: Cost
    beats_flops: bool | None  # τ's whole interval above the FLOPs baseline's τ (None: not known)

    def to_dict(self) -> dict[str, Any]:
        a = self.agreement
        return {"setting": self.setting.text, "seeds": self.setting.seeds, "proxy": self.setting.proxy.to_dict(),
                "archs": self.archs, "tau": a.tau.to_dict() if a else None, "rho": a.rho.to_dict() if a else None,
                "tiers": {t: (v.to_dict() if v else None) for t, v in self.tiers.items()},
                "cost": self.cost.to_dict(), "beats_flops": self.beats_flops}


@dataclass
class FidelityReport:
    name: str
    url: str
    plan: FidelityPlan
    accuracies: dict[str, list[list[float]]]  # setting text -> per architecture, its seeds' accuracies
    refs: dict[str, list[list[str]]]  # setting text -> per architecture, its trials' refs
    val_samples: dict[str, int | None]
    reference_cost: Cost
    proxies: list[ProxyFidelity]
    flops: Agreement | None  # FLOPs alone against the reference
    params: Agreement | None
    ceiling: Agreement | None  # reference seed 0 against seed 1
    verdict: str
    chosen: str | None  # the verdict's proxy (its setting text), if one
    resamples: int = DEFAULT_RESAMPLES
    notes: list[str] = field(default_factory=list)

    @property
    def candidates(self) -> tuple[Candidate, ...]:
        return self.plan.candidates

    def tiers(self) -> list[str]:
        return list(dict.fromkeys(c.tier for c in self.candidates))

    def mean(self, setting: Setting, i: int) -> float | None:
        v = self.accuracies[setting.text][i]
        return float(np.mean(v)) if v else None

    def to_dict(self) -> dict[str, Any]:
        ref = self.plan.reference
        return {
            "study": self.name, "storage": self.url, "space": self.plan.space, "budget": self.plan.budget.describe(),
            "plan_seed": self.plan.seed, "resolution": self.plan.resolution, "band": list(self.plan.band),
            "resamples": self.resamples,
            "reference": {**ref.to_dict(), "cost": self.reference_cost.to_dict(),
                          "val_samples": self.val_samples.get(ref.text)},
            "proxies": [p.to_dict() for p in self.proxies],
            "baselines": {"flops": self.flops.to_dict() if self.flops else None,
                          "params": self.params.to_dict() if self.params else None},
            "ceiling": self.ceiling.to_dict() if self.ceiling else None,
            "verdict": {"proxy": self.chosen, "text": self.verdict},
            "archs": [{**c.to_dict(), "accuracies": {s.text: self.accuracies[s.text][c.index]
                                                     for s in self.plan.settings},
                       "trials": {s.text: self.refs[s.text][c.index] for s in self.plan.settings}}
                      for c in self.candidates],
            "notes": list(self.notes),
        }

    # ------------------------------------------------------------ text
    def lines(self) -> list[str]:
        ref = self.plan.reference
        out = ["", f"fidelity study {self.name!r} ({self.url}): {len(self.candidates)} architectures of space "
                   f"{self.plan.space!r}; tau = Kendall tau-b, rho = Spearman, of each proxy's mean accuracy against "
                   f"the reference's mean over its seeds; 95% bootstrap intervals ({self.resamples} resamples of the "
                   f"architectures and their seeds); cost per architecture relative to one reference training"]
        w = max(len(s.name) for s in self.plan.settings) + 12
        out.append(f"  {'setting':<{w}}{'seeds':>6}{'archs':>6}  {'tau':<20}{'rho':<20}{'images':>10}{'x ref':>7}"
                   f"{'train s':>9}{'x ref':>7}")
        rows = [(ref, sum(1 for v in self.accuracies[ref.text] if v), None, self.reference_cost)]
        rows += [(p.setting, p.archs, p.agreement, p.cost) for p in self.proxies]
        for s, n, a, cost in rows:
            tau = a.tau.shown() if a else ("-" if s.reference else "too few archs")
            rho = a.rho.shown() if a else "-"
            label = f"{'reference' if s.reference else 'proxy'} {s.name}"
            out.append(f"  {label:<{w}}{s.seeds:>6}{n:>6}  {tau:<20}{rho:<20}{_count(cost.images):>10}"
                       f"{_ratio(cost.images_ratio):>7}{_secs(cost.seconds):>9}{_ratio(cost.seconds_ratio):>7}")
        out.append("baselines and ceiling (against the reference):")
        for label, a in (("FLOPs alone", self.flops), ("params alone", self.params)):
            out.append(f"  {label:<24}tau {a.tau.shown() if a else 'too few archs':<20}rho "
                       f"{a.rho.shown() if a else '-'}")
        out.append(f"  {'reference seed 0 vs 1':<24}tau "
                   + (f"{self.ceiling.tau.shown():<20}rho {self.ceiling.rho.shown()}  (the ceiling: a second "
                      f"reference training)" if self.ceiling else
                      f"not measured (needs --reference-seeds 2 and {MIN_ARCHS}+ archs with both seeds)"))
        if len(self.tiers()) > 1:
            out.append("tau within each FLOP tier (does a proxy order models of one size?):")
            for p in self.proxies:
                parts = [f"{t}: {a.tau.shown() if a else 'too few archs'} ({sum(c.tier == t for c in self.candidates)})"
                         for t, a in p.tiers.items()]
                out.append(f"  {p.setting.name:<{w}}" + "; ".join(parts))
        for n in self.notes:
            out.append(f"note: {n}")
        out.append(f"verdict: {self.verdict}")
        return out


def _count(v: int | None) -> str:
    return "-" if v is None else format_count(v)


def _ratio(v: float | None) -> str:
    return "-" if v is None else (f"{v:.2f}" if v < 10 else f"{v:.0f}")


def _secs(v: float | None) -> str:
    return "-" if v is None else (f"{v:.2f}" if v < 10 else f"{v:.0f}")


# ---------------------------------------------------------------------- building
def _cost(setting: Setting, accs: list[list[Result]], train_images: int | None, ref: tuple[int | None, float | None],
          per_training: bool = False) -> Cost:
    one = setting.images(train_images)
    images = None if one is None else (one if per_training else setting.seeds * one)
    full = [r for r in accs if len(r) >= setting.seeds and all(x.train_wall_s is not None for x in r)]
    if per_training:
        walls = [x.train_wall_s for r in accs for x in r if x.train_wall_s is not None]
        seconds = float(np.median(walls)) if walls else None
    else:  # the median: a process's first training also pays torch's warm-up
        seconds = float(np.median([sum(x.train_wall_s for x in r[:setting.seeds]) for r in full])) if full else None
    ri, rs = ref
    return Cost(images, seconds, images / ri if images is not None and ri else None,
                seconds / rs if seconds is not None and rs else None)


def build(the_plan: FidelityPlan, results: dict[str, list[Result]], *, train_images: dict[str, int] | None = None,
          resamples: int = DEFAULT_RESAMPLES, seed: int = 0, name: str = "", url: str = "") -> FidelityReport:
    """The report of a plan's trainings so far. ``train_images``: setting text -> training split size
    (default: the setting's train_samples)."""
    sizes = {s.text: (train_images or {}).get(s.text, s.proxy.train_samples) for s in the_plan.settings}
    per: dict[str, list[list[Result]]] = {s.text: [results.get(the_plan.entry(c.index, s).key, [])
                                                   for c in the_plan.candidates] for s in the_plan.settings}
    accs = {k: [[x.accuracy for x in r] for r in v] for k, v in per.items()}
    refs = {k: [[x.ref for x in r] for r in v] for k, v in per.items()}
    val = {k: next((x.val_samples for r in v for x in r if x.val_samples), None) for k, v in per.items()}
    ref = the_plan.reference
    ref_cost = _cost(ref, per[ref.text], sizes[ref.text], (None, None), per_training=True)
    ref_cost = Cost(ref_cost.images, ref_cost.seconds, 1.0 if ref_cost.images else None,
                    1.0 if ref_cost.seconds else None)
    unit = (ref_cost.images, ref_cost.seconds)
    ref_acc = accs[ref.text]
    has_ref = [i for i, v in enumerate(ref_acc) if v]

    def versus(xs: Sequence[list[float]], idx: Sequence[int]) -> Agreement | None:
        if len(idx) < MIN_ARCHS:
            return None
        return agreement([xs[i] for i in idx], [ref_acc[i] for i in idx], resamples=resamples, seed=seed)

    cands = the_plan.candidates
    flops = versus([[float(c.flops)] for c in cands], has_ref)
    params = versus([[float(c.params)] for c in cands], has_ref)
    both = [v for v in ref_acc if len(v) >= 2]
    ceiling = seed_ceiling(ref_acc, resamples=resamples, seed=seed) if len(both) >= MIN_ARCHS else None
    proxies = []
    for p in the_plan.proxies:
        idx = [i for i in has_ref if accs[p.text][i]]
        a = versus(accs[p.text], idx)
        tiers = within_groups([accs[p.text][i] for i in idx], [ref_acc[i] for i in idx], [cands[i].tier for i in idx],
                              resamples=resamples, seed=seed) if idx else {}
        tiers = {t: tiers.get(t) for t in dict.fromkeys(c.tier for c in cands)}
        if a is None or flops is None or not math.isfinite(flops.tau.value):
            beats = None  # too few architectures to judge yet
        else:  # an undefined tau (a proxy giving every architecture one accuracy) orders nothing: no
            beats = bool(math.isfinite(a.tau.lo) and a.tau.lo > flops.tau.value)
        proxies.append(ProxyFidelity(p, len(idx), a, tiers, _cost(p, per[p.text], sizes[p.text], unit), beats))
    notes = []
    todo = sum(len(r) < s.seeds for s in the_plan.settings for r in per[s.text])
    if todo:
        notes.append(f"{todo} of {len(cands) * len(the_plan.settings)} (architecture, setting) points are not fully "
                     f"trained; rerun the same command to train the rest")
    winners = sorted((p for p in proxies if p.beats_flops),
                     key=lambda p: (math.inf if p.cost.images is None else p.cost.images,
                                    math.inf if p.cost.seconds is None else p.cost.seconds))
    if winners:
        w = winners[0]
        share = f", {100 * w.cost.images_ratio:.1f}% of a reference training's images" if w.cost.images_ratio else ""
        verdict = (f"use --proxy {w.setting.name}: its tau {w.agreement.tau.shown()} lies above counting FLOPs "
                   f"(tau {flops.tau.value:.2f}){share}")
        chosen = w.setting.text
    elif flops is None or any(p.beats_flops is None for p in proxies):
        verdict = (f"not judged yet: a proxy and the FLOPs baseline each need {MIN_ARCHS} or more trained "
                   f"architectures; rerun the same command to train the rest")
        chosen = None
    else:
        verdict, chosen = NO_PROXY, None
    return FidelityReport(name, url, the_plan, accs, refs, val, ref_cost, proxies, flops, params, ceiling, verdict,
                          chosen, resamples, notes)


# ---------------------------------------------------------------------- the page
def _style(fig: go.Figure, title: str, subtitle: str, x: str, y: str, *, logx: bool = False) -> go.Figure:
    fig.update_layout(template="plotly_white", height=480, title=dict(text=title, subtitle=dict(text=subtitle)),
                      margin=dict(l=70, r=30, t=90, b=60), legend=dict(x=1.02, xanchor="left", y=1))
    fig.update_xaxes(title=x, type="log" if logx else "linear")
    fig.update_yaxes(title=y)
    return fig


def scatter_figure(rep: FidelityReport, p: ProxyFidelity) -> go.Figure:
    """One marker per architecture: the proxy's mean accuracy against the reference's."""
    ref = rep.plan.reference
    pts = [(rep.mean(ref, c.index), rep.mean(p.setting, c.index), c) for c in rep.candidates]
    pts = [(x, y, c) for x, y, c in pts if x is not None and y is not None]
    fig = go.Figure()
    for t in rep.tiers():
        sel = [(x, y, c) for x, y, c in pts if c.tier == t]
        if sel:
            fig.add_trace(go.Scatter(x=[x for x, _, _ in sel], y=[y for _, y, _ in sel], mode="markers",
                                     name=f"tier {t}", text=[f"{c.label()}, {format_flops(c.flops)} FLOPs<br>"
                                                             f"{c.arch.summary()}" for _, _, c in sel],
                                     marker=dict(size=10, symbol=["star" if c.preset else "circle"
                                                                  for _, _, c in sel])))
    tau = f"tau = {p.agreement.tau.shown()}" if p.agreement else "tau: too few architectures"
    return _style(fig, f"{p.setting.name} vs reference: {tau}",
                  f"mean accuracy over seeds; rho = {p.agreement.rho.shown() if p.agreement else '-'}",
                  f"reference accuracy ({ref.name}, {ref.seeds} seed(s))",
                  f"proxy accuracy ({p.setting.name}, {p.setting.seeds} seed(s))")


def tau_cost_figure(rep: FidelityReport) -> go.Figure:
    """τ of each proxy against its cost (images per architecture / one reference training), with the
    baselines and the ceiling as horizontal lines."""
    fig = go.Figure()
    pts = [p for p in rep.proxies if p.agreement and p.cost.images_ratio]
    if pts:
        fig.add_trace(go.Scatter(
            x=[p.cost.images_ratio for p in pts], y=[p.agreement.tau.value for p in pts], mode="markers",
            name="proxies (95% interval)", text=[p.setting.name for p in pts],
            error_y=dict(type="data", symmetric=False, array=[p.agreement.tau.hi - p.agreement.tau.value for p in pts],
                         arrayminus=[p.agreement.tau.value - p.agreement.tau.lo for p in pts]),
            marker=dict(size=11, color="#1f77b4")))
    xs = [p.cost.images_ratio for p in pts] or [1.0]
    span = [min(xs) / 2, max(1.0, max(xs)) * 2]
    for label, a, color, dash in (("FLOPs alone", rep.flops, "#d62728", "dash"),
                                  ("params alone", rep.params, "#ff7f0e", "dot"),
                                  ("ceiling: reference seed 0 vs 1", rep.ceiling, "#2ca02c", "solid")):
        if a is not None and math.isfinite(a.tau.value):
            fig.add_trace(go.Scatter(x=span, y=[a.tau.value] * 2, mode="lines", name=f"{label} ({a.tau.value:.2f})",
                                     line=dict(color=color, dash=dash)))
    ticks = sorted({*(round(x, 4) for x in xs), 1.0})
    fig.update_xaxes(tickvals=ticks, ticktext=[f"{100 * t:.3g}%" for t in ticks])
    return _style(fig, "Rank agreement with the reference against proxy cost",
                  "Kendall tau-b with 95% bootstrap interval; a proxy is worth its training above the FLOPs line",
                  "images per architecture, % of one reference training", "Kendall tau-b", logx=True)


def _settings_table(rep: FidelityReport) -> Table:
    head = (("setting", True), ("seeds", False), ("archs", False), ("tau", False), ("tau 95%", False), ("rho", False),
            ("rho 95%", False), ("images / arch", False), ("x ref", False), ("train s / arch", False),
            ("x ref", False))
    rows = []
    ref = rep.plan.reference
    items = [(ref, sum(1 for v in rep.accuracies[ref.text] if v), None, rep.reference_cost)]
    items += [(p.setting, p.archs, p.agreement, p.cost) for p in rep.proxies]
    for s, n, a, c in items:
        def corr(x):
            return (num(x.value, f"{x.value:.3f}"), txt(f"[{x.lo:.3f}, {x.hi:.3f}]")) if x is not None \
                else (num(None), txt("-"))
        rows.append(("", (txt(("reference " if s.reference else "") + s.name), num(s.seeds), num(n),
                          *corr(a.tau if a else None), *corr(a.rho if a else None),
                          num(c.images, _count(c.images)), num(c.images_ratio, _ratio(c.images_ratio)),
                          num(c.seconds, _secs(c.seconds)), num(c.seconds_ratio, _ratio(c.seconds_ratio)))))
    return Table("settings", head, tuple(rows), "reference, then the proxies as given")


def _archs_table(rep: FidelityReport) -> Table:
    head = (("#", False), ("tier", True), ("FLOPs", False), ("params", False),
            *((f"{s.name} (mean)", False) for s in rep.plan.settings), ("arch", True))
    rows = []
    for c in rep.candidates:
        means = [rep.mean(s, c.index) for s in rep.plan.settings]
        rows.append(("", (num(c.index), txt(c.tier), num(c.flops, format_flops(c.flops)),
                          num(c.params, format_count(c.params)),
                          *(num(m, "-" if m is None else f"{100 * m:.1f}%") for m in means),
                          txt(c.preset or c.arch.summary(), "arch"))))
    return Table("archs", head, tuple(rows), "FLOPs")


def page(rep: FidelityReport) -> str:
    ref = rep.plan.reference
    sub = [f"study {rep.name} in {rep.url}",
           f"space {rep.plan.space}, budget {rep.plan.budget.describe()}, {len(rep.candidates)} architectures; "
           f"reference {ref.name} ({ref.seeds} seed(s)) on {ref.proxy.data}",
           f"reference training: {describe_proxy(ref.proxy.to_dict())}; each setting names what it changes of the "
           f"space's proxy"]
    facts = [("verdict", rep.verdict)]
    for label, a in (("FLOPs alone", rep.flops), ("params alone", rep.params), ("ceiling (seed 0 vs 1)", rep.ceiling)):
        facts.append((label, f"tau {a.tau.shown()}, rho {a.rho.shown()}" if a else "not measured"))
    blocks: list[Any] = [Facts(tuple(facts)), figure(tau_cost_figure(rep), "plot-tau-cost"), _settings_table(rep)]
    blocks += [Note(n) for n in rep.notes]
    sections = [Section("verdict", "Does a proxy order the architectures as the reference does?", tuple(blocks))]
    sections.append(Section("scatter", "Proxy against reference accuracy", tuple(
        figure(scatter_figure(rep, p), f"plot-scatter-{i}") for i, p in enumerate(rep.proxies))))
    sections.append(Section("archs", "The architectures", (_archs_table(rep),)))
    return render(f"Proxy fidelity: {rep.plan.space}", sub, sections)


def write_page(rep: FidelityReport, path: str | Path, *, force: bool = False) -> Path:
    return _write(path, page(rep), force=force)


__all__ = ["build", "FidelityReport", "ProxyFidelity", "Cost", "write_page", "page", "NO_PROXY",
           "scatter_figure", "tau_cost_figure"]
