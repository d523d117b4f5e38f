"""The plotly figures of the pages: the Pareto front, and Optuna's own plots of each tier's study.

The Pareto figure is mvsearch's own (the front with the paper presets marked). The study figures
are :mod:`optuna.visualization`'s: optimization history, intermediate values, parameter
importances, parallel coordinates and the EDF, drawn from an in-memory copy of a study in which
only trained trials keep their data (:func:`trained_copy`), then given the page's titles, number
formats and trial labels. Each function returns a ``plotly.graph_objects.Figure``, or ``None``
with the reason a page shows instead. Plots use SVG scatter traces (not WebGL), so every drawn
point is an element a browser test can count.
"""
from __future__ import annotations

import contextlib
import importlib.util
import math
import warnings
from typing import Any, Iterator, Sequence

import optuna
import plotly.graph_objects as go
from optuna.trial import TrialState, create_trial

from mvsearch.analysis.pareto import Pareto, Point, accuracy_text
from mvsearch.core.units import format_count, format_flops
from mvsearch.search.record import TrialRecord


BLUE, RED, GREY, GREEN = "#1f77b4", "#d62728", "#9a9a9a", "#2ca02c"


MIN_IMPORTANCE_TRIALS = 10  # below this, importances are noise: the page says so instead


#: a cost axis as titles write it
COST = {"flops": "FLOPs", "params": "params", "latency": "latency"}


MAX_AXES = 8  # parallel coordinates: accuracy and the most important parameters, at most this many axes


def style(fig: go.Figure, title: str, subtitle: str = "", *, height: int = 460) -> go.Figure:
    """The page's look: title and subtitle on top, the legend at the right (never over a title)."""
    fig.update_layout(
        template="plotly_white", height=height,
        title=dict(text=title, subtitle=dict(text=subtitle, font=dict(size=12, color="#666")), x=0.01,
                   xanchor="left", y=0.98, yanchor="top", yref="container"),
        margin=dict(l=70, r=30, t=90 if subtitle else 64, b=60),
        legend=dict(orientation="v", x=1.02, xanchor="left", y=1, yanchor="top"))
    return fig


def tier_title(what: str, label: str) -> str:
    """``Optimization history, tier 1.05G`` (a one-study search: ``Optimization history``)."""
    return f"{what}, tier {label}" if label else what


# ---------------------------------------------------------------------- the Pareto front
def _hover(p: Point) -> list[Any]:
    r, lat = p.record, p.latency
    latency = f"{lat.median_ms:.2f} ms (IQR {lat.iqr_ms:.2f}, ×{lat.ratio_xxs:.2f} XXS)" if lat else "not measured"
    who = f"{r.preset} (baseline)" if r.baseline and r.preset else f"trial {r.ref or r.number}"
    return [who, r.summary(), format_flops(r.flops), format_count(r.params), latency, r.tier or "-", p.tier,
            r.state.lower(), _accuracy_hover(p)]


def _accuracy_hover(p: Point) -> str:
    """``76.2% ±3.7 (95%: 72.3–79.8% on 512 validation images)``, then on a second line the rank it is
    indistinguishable from, if any; the bare figure without ``val_samples``."""
    iv = p.interval
    if iv is None:
        return p.accuracy_text
    tie = f"<br>indistinguishable from rank {p.tie_with} (intervals overlap)" if p.tie_with is not None else ""
    return (f"{p.accuracy_text} (95%: {100 * iv[0]:.1f}–{100 * iv[1]:.1f}% on {p.record.val_samples} "
            f"validation images){tie}")


def _error_bars(points: Sequence[Point]) -> dict[str, Any] | None:
    """Wilson 95% error bars for the points that recorded ``val_samples`` (None: no point did).

    A point without an interval gets no length (plotly reads the missing value as 0); with no caps
    (``width=0``) such a bar draws nothing.
    """
    ivs = [p.interval for p in points]
    if not any(ivs):
        return None
    return dict(type="data", symmetric=False, visible=True, thickness=1.2, width=0,
                array=[iv[1] - p.accuracy if iv else None for p, iv in zip(points, ivs)],
                arrayminus=[p.accuracy - iv[0] if iv else None for p, iv in zip(points, ivs)])


HOVER = ("<b>%{customdata[0]}</b> (%{customdata[7]})<br>accuracy %{customdata[8]}<br>FLOPs %{customdata[2]}"
         " · params %{customdata[3]}<br>latency %{customdata[4]}<br>budget tier %{customdata[5]}"
         " · nearest paper tier %{customdata[6]}<br>%{customdata[1]}<extra></extra>")


def _scatter(points: Sequence[Point], name: str, **kw: Any) -> go.Scatter:
    return go.Scatter(x=[p.x for p in points], y=[p.accuracy for p in points], name=name,
                      customdata=[_hover(p) for p in points], hovertemplate=HOVER, **kw)


def pareto_figure(p: Pareto) -> go.Figure:
    """All trials, the front as a line, trained presets as labelled stars, untrained ones as rules; completed
    trials that recorded their validation size carry their accuracy's 95% Wilson interval as error bars."""
    searched = [pt for pt in p.points if not pt.record.baseline]
    baselines = [pt for pt in p.points if pt.record.baseline]
    fig = go.Figure()
    fig.add_trace(_scatter(searched, f"completed ({len(searched)})", mode="markers",
                           marker=dict(color=BLUE, size=8, opacity=0.75), error_y=_error_bars(searched)))
    if p.pruned:
        fig.add_trace(_scatter(p.pruned, f"pruned, accuracy when stopped ({len(p.pruned)})", mode="markers",
                               marker=dict(color=GREY, size=7, symbol="x-thin-open", line=dict(width=1.5))))
    front = sorted(p.front, key=lambda pt: (pt.x, -pt.accuracy))
    fig.add_trace(_scatter(front, f"Pareto front ({len(front)})", mode="lines+markers", line_shape="hv",
                           line=dict(color=RED, width=2), marker=dict(color=RED, size=10, symbol="circle-open",
                                                                      line=dict(width=2))))
    if baselines:
        labels = [f"{pt.record.preset or 'baseline'}" for pt in baselines]
        fig.add_trace(_scatter(baselines, f"paper presets, same proxy ({len(baselines)})", mode="markers+text",
                               text=labels, textposition="top center", error_y=_error_bars(baselines),
                               marker=dict(color=GREEN, size=15, symbol="star", line=dict(width=1, color="#222"))))
    for t in p.tiers:  # presets the study did not train: a labelled vertical rule at their cost
        x = p.tier_x(t)
        if t.trial is None and x:
            fig.add_vline(x=x, line=dict(color=GREEN, dash="dot", width=1.5))
            # annotations on a log axis are placed in log10 units (shapes take data units)
            fig.add_annotation(x=math.log10(x) if p.log_x else x, xref="x", y=1, yref="y domain",
                               text=f"{t.short} (paper preset, not trained here)", textangle=-90, showarrow=False,
                               xanchor="right", yanchor="top", font=dict(size=10, color=GREEN))
    c = p.counts
    dev = f" · latency on {p.device.label()}" if p.device is not None and p.x.name == "latency" else ""
    bars = " · bars: 95% intervals" if any(pt.interval for pt in p.points) else ""
    style(fig, f"{p.study_name}: accuracy vs {COST.get(p.x.name, p.x.name)}",
          f"{c.get('COMPLETE', 0)} complete, {c.get('PRUNED', 0)} pruned, {c.get('FAIL', 0)} failed, "
          f"{c.get('REJECTED', 0)} over budget never trained{dev}{bars}")
    # FLOPs and params in k/M/G (plotly's default writes a billion as "B")
    fig.update_layout(xaxis=dict(title=p.x.title + (" (log)" if p.log_x else ""), type="log" if p.log_x else "linear",
                                 exponentformat="SI"),
                      yaxis=dict(title=p.y.title, tickformat=".0%"))
    return fig


# ---------------------------------------------------------------------- the studies, through Optuna
@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """No "A new study created in memory" lines and no experimental warnings from Optuna."""
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        optuna.logging.set_verbosity(verbosity)


def trained_copy(study: optuna.Study, recs: Sequence[TrialRecord], name: str, *,
                 searched_only: bool = False) -> optuna.Study:
    """An in-memory copy of ``study`` in which only trained trials keep their data.

    A budget rejection (never trained), and with ``searched_only`` a paper preset, becomes an empty
    FAIL trial: no Optuna plot draws a FAIL trial, and keeping one in its place keeps Optuna's trial
    numbers equal to the stored ones, so a figure's trial 7 is the table's trial 7. ``recs`` are
    this study's records; ``name`` is the copy's study name (what ``plot_edf`` writes in a legend).
    """
    drop = {r.number for r in recs if r.over_budget or (searched_only and r.baseline)}
    with quiet():
        mem = optuna.create_study(study_name=name, direction=study.direction)
        mem.add_trials([create_trial(state=TrialState.FAIL) if t.number in drop else t
                        for t in study.get_trials(deepcopy=False)])
    return mem


def _refs(recs: Sequence[TrialRecord]) -> dict[int, TrialRecord]:
    return {r.number: r for r in recs}


def history_figure(mem: optuna.Study, recs: Sequence[TrialRecord], label: str = "") -> go.Figure | None:
    """Optuna's optimization history: each completed trial's accuracy, and the best so far."""
    done = [t for t in mem.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    if not done:
        return None
    with quiet():
        fig = optuna.visualization.plot_optimization_history(mem, target_name="accuracy")
    by_number = _refs(recs)
    for tr in fig.data:
        if tr.name == "accuracy":
            rs = [by_number.get(int(n)) for n in tr.x]
            tr.update(name=f"completed ({len(tr.x)})", marker=dict(color=BLUE, size=7),
                      text=[f"trial {r.ref}<br>{r.summary()}<br>accuracy {accuracy_text(y, r.val_samples)}" if r
                            else f"accuracy {accuracy_text(y, None)}" for r, y in zip(rs, tr.y)],
                      hovertemplate="%{text}<extra></extra>")
        elif tr.name == "Best Value":
            tr.update(name="best so far", line=dict(color=RED, shape="hv"), hoverinfo="skip")
    style(fig, tier_title("Optimization history", label), "accuracy of each completed trial, by trial number")
    fig.update_layout(xaxis_title="trial", yaxis=dict(title="accuracy", tickformat=".0%"))
    return fig


def curve(r: TrialRecord) -> dict[int, float]:
    """Optuna step -> accuracy: the trial's intermediate values, else its accuracy_curve attribute."""
    if r.intermediate:
        return r.intermediate
    return {i + 1: float(v) for i, v in enumerate(r.accuracy_curve or []) if isinstance(v, (int, float))}


def intermediate_figure(mem: optuna.Study, recs: Sequence[TrialRecord], label: str = "") -> go.Figure | None:
    """Optuna's intermediate values (accuracy at each step, as stored), coloured by state;
    a cross where the pruner stopped a trial."""
    if not any(t.intermediate_values for t in mem.get_trials(deepcopy=False)):
        return None
    with quiet():
        fig = optuna.visualization.plot_intermediate_values(mem)
    by_number = _refs(recs)
    colors = {"COMPLETE": (BLUE, "completed"), "PRUNED": (RED, "pruned"), "RUNNING": (GREY, "running")}
    counts = {s: sum(1 for tr in fig.data if getattr(by_number.get(int(tr.name[5:])), "state", "") == s)
              for s in colors}
    shown: set[str] = set()
    for tr in fig.data:  # Optuna names each trace "Trial<number>"
        r = by_number.get(int(tr.name[5:]))
        state = r.state if r is not None and r.state in colors else "RUNNING"
        color, what = colors[state]
        tr.update(name=f"{what} ({counts[state]})", legendgroup=state, showlegend=state not in shown,
                  line=dict(color=color, width=1.2), marker=dict(color=color, size=5), opacity=0.6,
                  text=[f"trial {r.ref if r else tr.name[5:]}"] * len(tr.x),
                  hovertemplate="%{text}<br>epoch %{x}: %{y:.2%}<extra></extra>")
        shown.add(state)
    pruned = [r for r in recs if r.state == "PRUNED" and r.trained and r.intermediate]
    if pruned:
        last = [(max(r.intermediate), r.intermediate[max(r.intermediate)], r.ref) for r in pruned]
        fig.add_trace(go.Scatter(x=[e for e, _, _ in last], y=[a for _, a, _ in last], mode="markers",
                                 name="stopped by the pruner", marker=dict(color=RED, size=10, symbol="x"),
                                 text=[f"trial {ref}" for _, _, ref in last],
                                 hovertemplate="%{text} pruned after epoch %{x}<extra></extra>"))
    style(fig, tier_title("Intermediate values", label), "validation accuracy after each epoch, as the pruner saw it")
    fig.update_layout(showlegend=True, xaxis=dict(title="epoch", dtick=1),
                      yaxis=dict(title="accuracy", tickformat=".0%"))
    return fig


def importance_evaluator() -> tuple[Any, str]:
    """fANOVA when scikit-learn is installed, else PED-ANOVA (which needs none)."""
    if importlib.util.find_spec("sklearn") is not None:
        return optuna.importance.FanovaImportanceEvaluator(seed=0), "fANOVA"
    return optuna.importance.PedAnovaImportanceEvaluator(), "PED-ANOVA"


def importances(mem: optuna.Study) -> tuple[dict[str, float] | None, str]:
    """Optuna's parameter importances over the completed searched trials of ``mem``, or why there are none."""
    trials = [t for t in mem.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.params]
    if len(trials) < MIN_IMPORTANCE_TRIALS:
        return None, (f"parameter importances need at least {MIN_IMPORTANCE_TRIALS} completed trials with "
                      f"sampled parameters; this study has {len(trials)}")
    evaluator, name = importance_evaluator()
    try:
        with quiet():
            imp = optuna.importance.get_param_importances(mem, evaluator=evaluator)
    except Exception as exc:  # optuna raises plain ValueError/RuntimeError for degenerate spaces
        return None, f"parameter importances could not be computed: {str(exc).strip().splitlines()[0]}"
    if not imp:
        return None, "no sampled parameter is shared by all completed trials, so none can be ranked"
    return imp, name


def importance_figure(mem: optuna.Study, names: Sequence[str], evaluator: str, label: str = "") -> go.Figure:
    """Optuna's importance bars (``names``: the parameters :func:`importances` ranked)."""
    ev, _ = importance_evaluator()
    with quiet():
        fig = optuna.visualization.plot_param_importances(mem, evaluator=ev, target_name="accuracy")
    fig.update_traces(marker_color=BLUE, hovertemplate="%{y}: %{x:.3f}<extra></extra>")
    style(fig, tier_title("Parameter importances", label),
          f"{evaluator} over the completed searched trials; the bars sum to 1", height=max(300, 120 + 32 * len(names)))
    fig.update_layout(xaxis_title="importance", yaxis=dict(title="", automargin=True), showlegend=False)
    return fig


def parallel_figure(mem: optuna.Study, ranked: Sequence[str] | None, label: str = "") -> go.Figure | None:
    """Optuna's parallel coordinates of accuracy and at most ``MAX_AXES - 1`` parameters: the most
    important (``ranked``, best first), else those that vary most among the completed trials."""
    done = [t for t in mem.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.params]
    varying = [p for p in sorted({p for t in done for p in t.params})
               if len({str(t.params.get(p)) for t in done}) > 1]
    if len(done) < 2 or not varying:
        return None
    order = [p for p in (ranked or []) if p in varying] or sorted(
        varying, key=lambda p: -len({str(t.params.get(p)) for t in done}))
    params = order[:MAX_AXES - 1]
    with quiet():
        fig = optuna.visualization.plot_parallel_coordinate(mem, params=list(params), target_name="accuracy")
    _readable_ticks(fig, mem, params)
    for tr in fig.data:  # the colour bar (on Optuna's last, empty trace) in percent like the accuracy axis
        if tr.marker is not None and tr.marker.showscale:
            tr.marker.colorbar.update(tickformat=".0%", title=dict(text="accuracy"))
    more = f"; the {len(params)} most important of {len(varying)} varying" if len(varying) > len(params) else ""
    style(fig, tier_title("Parallel coordinates", label),
          f"{len(done)} completed searched trials, coloured by accuracy{more}", height=500)
    fig.update_layout(xaxis=dict(tickangle=-20 if len(params) > 5 else 0, tickfont=dict(size=12), automargin=True),
                      margin=dict(l=60, r=30, t=90, b=80))
    return fig


def _readable_ticks(fig: go.Figure, mem: optuna.Study, params: Sequence[str]) -> None:
    """Optuna writes each axis's values as annotations (10 px grey, ``.3g``, five even steps):
    accuracy as a percentage, an integer parameter only at whole values, all larger and darker."""
    dists: dict[str, Any] = {}
    for t in mem.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        dists.update(t.distributions)
    # Optuna's axes: the objective first, then the parameters in sorted order
    axes = ["accuracy"] + sorted(params)
    kept: list[Any] = []
    ints: dict[int, list[tuple[float, Any]]] = {}  # axis -> (value, annotation) of an integer parameter
    for a in fig.layout.annotations:
        name = axes[int(a.x)] if 0 <= int(a.x) < len(axes) else None
        try:
            v = float(a.text)
        except (TypeError, ValueError):  # a category's name, or Optuna's missing-value label
            v = None
        a.font = dict(size=12, color="#333")
        if name == "accuracy" and v is not None:
            a.text = f"{100 * v:.1f}%"
        elif v is not None and isinstance(dists.get(name), optuna.distributions.IntDistribution):
            ints.setdefault(int(a.x), []).append((v, a))
            continue
        kept.append(a)
    for axis, ticks in ints.items():  # the axis is linear in the value: place whole values on it
        (lo, a_lo), (hi, a_hi) = min(ticks, key=lambda t: t[0]), max(ticks, key=lambda t: t[0])
        if hi == lo:
            kept.append(a_lo.update(text=str(int(lo))))
            continue
        dist = dists[axes[axis]]
        step = dist.step * max(1, math.ceil((hi - lo) / dist.step / 6))
        v = lo
        while v <= hi:
            y = a_lo.y + (a_hi.y - a_lo.y) * (v - lo) / (hi - lo)
            kept.append(go.layout.Annotation(a_lo.to_plotly_json(), y=y, text=str(int(v))))
            v += step
    fig.layout.annotations = kept


def edf_figure(mems: Sequence[optuna.Study], baselines: Sequence[TrialRecord]) -> go.Figure | None:
    """Optuna's EDF: the fraction of completed searched models with accuracy at most x, one line per tier.

    The design-space view of Radosavovic et al., "Designing Network Design Spaces" (CVPR 2020),
    Sec. 3: it compares populations of models rather than single ones. Pruned trials have no final
    accuracy, so a curve describes the models that survived pruning. Paper presets are rules.
    """
    mems = [m for m in mems if m.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    if not mems:
        return None
    with quiet():
        fig = optuna.visualization.plot_edf(list(mems), target_name="accuracy")
    fig.update_traces(line_shape="hv", hovertemplate="accuracy ≤ %{x:.2%}: %{y:.0%} of models<extra></extra>")
    for r in baselines:
        if r.state == "COMPLETE" and r.accuracy is not None and not r.over_budget:
            fig.add_vline(x=r.accuracy, line=dict(color=GREEN, dash="dot"),
                          annotation=dict(text=r.preset or f"baseline {r.ref}", font=dict(color=GREEN, size=10)))
    style(fig, "Accuracy EDF of the searched models",
          "fraction of completed searched models at or below each accuracy (Radosavovic et al., 2020)")
    fig.update_layout(showlegend=True, xaxis=dict(title="accuracy", tickformat=".0%"),
                      yaxis=dict(title="fraction of models", tickformat=".0%", range=[-0.04, 1.04]))
    return fig
