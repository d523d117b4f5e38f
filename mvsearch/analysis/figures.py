"""The plotly figures of the pages: Pareto fronts, history, learning curves, importances, knobs, EDF.

Each function takes records already loaded (budget rejections left out) and returns a
``plotly.graph_objects.Figure``, or ``None`` with a reason when the study cannot show it yet. Plots
use SVG scatter traces (not WebGL), so every drawn point is an element a browser test can count.
"""
from __future__ import annotations

import math
from typing import Any, Sequence
import plotly.graph_objects as go

from mvsearch.analysis.pareto import Pareto, Point
from mvsearch.core.units import human
from mvsearch.search.record import TrialRecord


BLUE, RED, GREY, GREEN, ORANGE = "#1f77b4", "#d62728", "#9a9a9a", "#2ca02c", "#ff7f0e"


LAYOUT = dict(template="plotly_white", height=460, margin=dict(l=70, r=30, t=60, b=60),
              legend=dict(orientation="h", yanchor="bottom", y=1.0, x=0))


def _hover(p: Point) -> list[Any]:
    r, lat = p.record, p.latency
    latency = f"{lat.median_ms:.2f} ms (IQR {lat.iqr_ms:.2f}, ×{lat.ratio_xxs:.2f} XXS)" if lat else "not measured"
    who = f"{r.preset} (baseline)" if r.baseline and r.preset else f"trial {r.number}"
    return [who, r.summary(), human(r.flops), human(r.params), latency, r.tier or "-", p.tier, r.state.lower()]


HOVER = ("<b>%{customdata[0]}</b> (%{customdata[7]})<br>accuracy %{y:.4f}<br>FLOPs %{customdata[2]}"
         " · params %{customdata[3]}<br>latency %{customdata[4]}<br>budget tier %{customdata[5]}"
         " · nearest paper tier %{customdata[6]}<br>%{customdata[1]}<extra></extra>")


def _scatter(points: Sequence[Point], name: str, **kw: Any) -> go.Scatter:
    return go.Scatter(x=[p.x for p in points], y=[p.accuracy for p in points], name=name,
                      customdata=[_hover(p) for p in points], hovertemplate=HOVER, **kw)


def pareto_figure(p: Pareto) -> go.Figure:
    """All trials, the front as a line, trained presets as labelled stars, untrained ones as rules."""
    searched = [pt for pt in p.points if not pt.record.baseline]
    baselines = [pt for pt in p.points if pt.record.baseline]
    fig = go.Figure()
    fig.add_trace(_scatter(searched, f"completed ({len(searched)})", mode="markers",
                           marker=dict(color=BLUE, size=8, opacity=0.75)))
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
                               text=labels, textposition="top center",
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
    fig.update_layout(
        title=dict(text=f"{p.study_name}: accuracy vs {p.x.name} "
                        f"<span style='font-size:12px;color:#666'>({c.get('COMPLETE', 0)} complete, "
                        f"{c.get('PRUNED', 0)} pruned, {c.get('FAIL', 0)} failed, "
                        f"{c.get('REJECTED', 0)} over budget never trained{dev})</span>"),
        xaxis=dict(title=p.x.title + (" (log)" if p.log_x else ""), type="log" if p.log_x else "linear"),
        yaxis=dict(title=p.y.title, tickformat=".0%"), **LAYOUT)
    return fig


def history_figure(recs: Sequence[TrialRecord]) -> go.Figure | None:
    """Accuracy by trial number, with the best so far as a step line."""
    done = [r for r in recs if r.state == "COMPLETE" and r.accuracy is not None]
    if not done:
        return None
    best, line = -math.inf, []
    for r in sorted(done, key=lambda r: r.number):
        best = max(best, r.accuracy)
        line.append((r.number, best))
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[r.number for r in done], y=[r.accuracy for r in done], mode="markers",
                             name=f"completed ({len(done)})", marker=dict(color=BLUE, size=7),
                             text=[r.summary() for r in done],
                             hovertemplate="trial %{x}<br>accuracy %{y:.4f}<br>%{text}<extra></extra>"))
    pruned = [r for r in recs if r.state == "PRUNED" and r.accuracy is not None]
    if pruned:
        fig.add_trace(go.Scatter(x=[r.number for r in pruned], y=[r.accuracy for r in pruned], mode="markers",
                                 name=f"pruned, when stopped ({len(pruned)})",
                                 marker=dict(color=GREY, size=6, symbol="x-thin-open", line=dict(width=1.5)),
                                 hovertemplate="trial %{x}<br>accuracy when pruned %{y:.4f}<extra></extra>"))
    fig.add_trace(go.Scatter(x=[n for n, _ in line], y=[b for _, b in line], mode="lines", line_shape="hv",
                             name="best so far", line=dict(color=RED), hoverinfo="skip"))
    fig.update_layout(title="Optimization history", xaxis_title="trial", yaxis=dict(title="accuracy",
                                                                                   tickformat=".0%"), **LAYOUT)
    return fig


def curves_figure(recs: Sequence[TrialRecord]) -> go.Figure | None:
    """Validation accuracy per epoch of every trained trial; a cross where the pruner stopped one."""
    trained = [r for r in recs if r.trained and _curve(r)]
    if not trained:
        return None
    fig = go.Figure()
    for state, color, label in (("COMPLETE", BLUE, "completed"), ("PRUNED", RED, "pruned")):
        group = [r for r in trained if r.state == state]
        if not group:
            continue
        xs: list[Any] = []
        ys: list[Any] = []
        names: list[Any] = []
        for r in group:  # one trace per state, curves separated by gaps
            curve = _curve(r)
            xs += [e + 1 for e in sorted(curve)] + [None]
            ys += [curve[e] for e in sorted(curve)] + [None]
            names += [f"trial {r.number}"] * len(curve) + [None]
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=f"{label} ({len(group)})", text=names,
                                 line=dict(color=color, width=1.2), opacity=0.6, connectgaps=False,
                                 hovertemplate="%{text}<br>epoch %{x}: %{y:.4f}<extra></extra>"))
    pruned = [r for r in trained if r.state == "PRUNED"]
    if pruned:
        last = [(max(_curve(r)), _curve(r)[max(_curve(r))], r.number) for r in pruned]
        fig.add_trace(go.Scatter(x=[e + 1 for e, _, _ in last], y=[a for _, a, _ in last], mode="markers",
                                 name="stopped by the pruner", marker=dict(color=RED, size=9, symbol="x"),
                                 text=[f"trial {n}" for _, _, n in last],
                                 hovertemplate="%{text} pruned after epoch %{x}<extra></extra>"))
    fig.update_layout(title="Intermediate values: validation accuracy per epoch", xaxis=dict(title="epoch",
                      dtick=1), yaxis=dict(title="accuracy", tickformat=".0%"), **LAYOUT)
    return fig


def _curve(r: TrialRecord) -> dict[int, float]:
    """Epoch (0-based) -> accuracy: Optuna's intermediate values, else the accuracy_curve attribute."""
    if r.intermediate:
        return r.intermediate
    curve = r.user_attrs.get("accuracy_curve")
    if isinstance(curve, list):
        return {i: float(v) for i, v in enumerate(curve) if isinstance(v, (int, float))}
    return {}


def importance_figure(importances: dict[str, float], evaluator: str) -> go.Figure:
    names = list(importances)[::-1]
    fig = go.Figure(go.Bar(x=[importances[n] for n in names], y=names, orientation="h", marker_color=BLUE,
                           hovertemplate="%{y}: %{x:.3f}<extra></extra>"))
    fig.update_layout(title=f"Parameter importances ({evaluator})", xaxis_title="importance (sums to 1)",
                      **{**LAYOUT, "height": max(260, 40 + 28 * len(names))})
    return fig


KNOB_SKIP = ("num_classes", "dropout", "attn_dropout", "ffn_dropout", "classifier_dropout")


def knobs(r: TrialRecord) -> dict[str, Any]:
    """The architecture's knobs as flat ``stage.field`` values (patches as ``2x2``)."""
    out: dict[str, Any] = {}
    for k, v in (r.arch.to_dict() if r.arch is not None else {}).items():
        if isinstance(v, dict):
            for f, x in v.items():
                out[f"{k}.{f}"] = f"{x[0]}x{x[1]}" if isinstance(x, list) else x
        elif k not in KNOB_SKIP:
            out[k] = v
    return out


def parcoords_figure(recs: Sequence[TrialRecord]) -> go.Figure | None:
    """Parallel coordinates of the knobs that vary among completed searched trials, coloured by accuracy."""
    done = [r for r in recs if r.state == "COMPLETE" and r.accuracy is not None and r.arch is not None
            and not r.baseline]  # the searched models: hand-designed presets differ in every knob
    rows = [knobs(r) for r in done]
    names = [k for k in (rows[0] if rows else {}) if len({str(row.get(k)) for row in rows}) > 1]
    if len(done) < 2 or not names:
        return None
    dims = []
    for k in names:
        vals = [row.get(k) for row in rows]
        if all(isinstance(v, (int, float)) for v in vals):
            dims.append(dict(label=k, values=vals))
        else:
            cats = sorted({str(v) for v in vals})
            dims.append(dict(label=k, values=[cats.index(str(v)) for v in vals], tickvals=list(range(len(cats))),
                             ticktext=cats))
    acc = [r.accuracy for r in done]
    dims.append(dict(label="accuracy", values=acc))
    fig = go.Figure(go.Parcoords(line=dict(color=acc, colorscale="Viridis", showscale=True,
                                           colorbar=dict(title="accuracy")), dimensions=dims))
    fig.update_layout(title=f"Knobs of the completed searched trials ({len(done)}), coloured by accuracy",
                      **{**LAYOUT, "margin": dict(l=60, r=60, t=110, b=40)})
    return fig


def edf_figure(recs: Sequence[TrialRecord]) -> go.Figure | None:
    """Error EDF F(e) = fraction of completed models with error < e, per budget tier and overall.

    The design-space view of Radosavovic et al., "Designing Network Design Spaces" (CVPR 2020),
    Sec. 3: it compares populations of models rather than single ones. Pruned trials have no final
    error, so the curve describes the models that survived pruning.
    """
    done = [r for r in recs if r.state == "COMPLETE" and r.accuracy is not None and not r.baseline]
    if not done:
        return None
    groups = {"all searched": done}
    tiers = sorted({r.tier for r in done if r.tier})
    if len(tiers) > 1:
        groups.update({f"tier {t}": [r for r in done if r.tier == t] for t in tiers})
    fig = go.Figure()
    for label, group in groups.items():
        errs = sorted(1.0 - r.accuracy for r in group)
        n = len(errs)
        fig.add_trace(go.Scatter(x=errs, y=[(i + 1) / n for i in range(n)], mode="lines+markers",
                                 line_shape="hv", name=f"{label} (n={n})", marker=dict(size=4),
                                 hovertemplate="error %{x:.4f}: %{y:.0%} of models<extra></extra>"))
    for r in recs:
        if r.baseline and r.state == "COMPLETE" and r.accuracy is not None:
            fig.add_vline(x=1.0 - r.accuracy, line=dict(color=GREEN, dash="dot"),
                          annotation=dict(text=r.preset or f"baseline {r.number}", font=dict(color=GREEN, size=10)))
    fig.update_layout(title="Error EDF of the searched models (Radosavovic et al., 2020)",
                      xaxis=dict(title="error = 1 − accuracy", tickformat=".0%"),
                      yaxis=dict(title="cumulative fraction of models", tickformat=".0%", range=[0, 1.02]), **LAYOUT)
    return fig
