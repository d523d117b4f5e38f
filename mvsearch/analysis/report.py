"""The two pages of a search: the Pareto page and the full study report (built from
:mod:`mvsearch.analysis.page`'s blocks and written by it).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from markupsafe import Markup

from mvsearch.analysis import figures
from mvsearch.analysis.page import (Details, Facts, Note, Section, Table, check_output, check_png, figure, num,
                                    render, txt, write_page, write_pngs)
from mvsearch.analysis import validation
from mvsearch.analysis.pareto import Pareto, accuracy_text, build, state_counts, table
from mvsearch.core.errors import StudyError
from mvsearch.core.units import format_count, format_flops
from mvsearch.search.front import AXES
from mvsearch.search.record import TrialRecord, describe_proxy, trial_key
from mvsearch.search.validate import as_validated, check_by, records_by, validated


# ---------------------------------------------------------------------- tables
def _ref(r: TrialRecord) -> str:
    return r.ref or str(r.number)


def front_table(p: Pareto) -> Table:
    """The front, rank by rank: accuracy with its 95% interval, and the rank it is indistinguishable from."""
    head = (("rank", False), ("trial", False), ("accuracy", False), ("indistinguishable from", False),
            ("FLOPs", False), ("params", False), ("latency", False), ("arch", True), ("paper tier", False))
    rows = []
    for row, pt in zip(table(p), p.front):
        lat = pt.latency.median_ms if pt.latency is not None else None
        tie = f"rank {pt.tie_with}" if pt.tie_with is not None else ""
        rows.append(("", (num(row["rank"]), txt(_ref(pt.record)), num(row["accuracy"], row["accuracy text"]),
                          num(pt.tie_with, tie),
                          num(row["flops"], format_flops(row["flops"])),
                          num(row["params"], format_count(row["params"])),
                          num(lat, row["latency"]), txt(row["arch"], "arch"), txt(row["paper tier"]))))
    return Table("front", head, tuple(rows), "rank (1 = most accurate)")


def trials_table(recs: Sequence[TrialRecord], latency: dict[str, Any]) -> Table:
    """Every trained or failed trial, in stored order (tier by tier, then by number)."""
    head = (("trial", False), ("state", True), ("tier", False), ("accuracy", False), ("FLOPs", False),
            ("params", False), ("latency ms", False), ("×XXS", False), ("epochs", False), ("wall s", False),
            ("arch", True))
    rows = []
    for i, r in enumerate(recs):
        lat = latency.get(trial_key(_ref(r)))
        wall = r.wall_s if r.wall_s is not None else r.duration_s
        label = r.preset + " (baseline)" if r.baseline and r.preset else r.summary()
        rows.append((r.state, (
            num(i, _ref(r)), txt(r.state.lower(), "l"), txt(r.tier or "-"),
            num(r.accuracy, accuracy_text(r.accuracy, r.val_samples)),
            num(r.flops, format_flops(r.flops)), num(r.params, format_count(r.params)),
            num(lat.median_ms if lat else None, f"{lat.median_ms:.2f}" if lat else "-"),
            num(lat.ratio_xxs if lat else None, f"{lat.ratio_xxs:.2f}" if lat else "-"),
            num(len(figures.curve(r))), num(wall, f"{wall:.1f}" if wall is not None else "-"),
            txt(label, "arch"))))
    return Table("trials", head, tuple(rows), "trial (tier, then number)")


# ---------------------------------------------------------------------- the Pareto page
def _where(name: str, url: str) -> Markup:
    return Markup("study <b>{}</b> in {}").format(name, url)


def pareto_page(p: Pareto) -> str:
    sub = [_where(p.study_name, p.storage),
           f"deployment resolution {p.resolution[0]}x{p.resolution[1]}, {p.num_classes} classes"]
    if p.device is not None:
        sub.append(f"latency on {p.device.label()}")
    blocks = (figure(figures.pareto_figure(p), f"plot-pareto-{p.x.name}"), front_table(p))
    title = f"Pareto front: accuracy vs {figures.COST.get(p.x.name, p.x.name)}"
    return render(title, sub, [Section("front", "Pareto front", blocks)])


def write_pareto(p: Pareto, path: str | Path, *, png: bool = False, force: bool = False) -> Path:
    """The Pareto page at ``path`` (``force``: replace a file that is not an mvsearch page)."""
    if png:
        check_png()
    out = write_page(path, pareto_page(p), force=force)
    if png:
        write_pngs({f"pareto-{p.x.name}": figures.pareto_figure(p)}, out)
    return out


# ---------------------------------------------------------------------- the study report
PRESETS = "presets"  # the study of paper presets trained outside every tier

#: search attributes shown elsewhere in the summary, or only machine-readable
HIDDEN = {"search", "tier", "schema_version", "budgets", "space_yaml", "space", "space_file", "budget", "tiers",
          "max_params", "resolution", "deployment_resolution", "num_classes", "data", "proxy", "sampler", "pruner",
          "seed", "mvsearch_version"}


def text(v: Any) -> str:
    """An attribute as a person reads it: ``1.5G, 2G`` for a list, ``epochs 4, lr 0.002`` for a mapping."""
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        return ", ".join(text(x) for x in v) or "none"
    if isinstance(v, dict):
        return ", ".join(f"{k} {text(x)}" for k, x in v.items()) or "none"
    return str(v)


@dataclass
class Report:
    study_name: str
    storage: str
    html: str
    figures: dict[str, Any] = field(default_factory=dict)  # name -> plotly figure, in page order
    notes: list[str] = field(default_factory=list)  # figures shown as a note instead of a plot


def _summary(ua: dict[str, Any], tiers: Sequence[str], recs_all: Sequence[TrialRecord], counts: dict[str, int],
             res: tuple[int, int], k: int, device: Any) -> tuple[Any, ...]:
    items: list[tuple[str, str]] = []
    if ua.get("space"):
        items.append(("space", str(ua["space"]) + (f" ({ua['space_file']})" if ua.get("space_file") else "")))
    elif ua.get("space_file"):
        items.append(("space", str(ua["space_file"])))
    if ua.get("budget"):
        items.append(("budget", text(ua["budget"])))
    if tiers:
        items.append(("tiers", ", ".join(tiers)))
    if ua.get("max_params"):
        items.append(("max params", format_count(ua["max_params"])))
    items.append(("deployment", f"{res[0]}x{res[1]}, {k} classes"))
    if ua.get("data"):
        items.append(("data", text(ua["data"])))
    if isinstance(ua.get("proxy"), dict):
        items.append(("proxy", describe_proxy(ua["proxy"])))
    if ua.get("sampler") or ua.get("pruner"):
        items.append(("sampler / pruner", f"{ua.get('sampler') or '-'} / {ua.get('pruner') or '-'}"))
    for key, label in (("seed", "seed"), ("mvsearch_version", "mvsearch version")):
        if ua.get(key) is not None:
            items.append((label, text(ua[key])))
    items += [(key.replace("_", " "), text(v)) for key, v in ua.items() if key not in HIDDEN]
    recs = [r for r in recs_all if not r.over_budget]
    trained = [r for r in recs if r.trained]
    wall = sum(float(r.wall_s or r.duration_s or 0.0) for r in trained)
    epochs = sum(len(figures.curve(r)) for r in trained)
    proxy = ua.get("proxy") if isinstance(ua.get("proxy"), dict) else {}
    full = proxy.get("epochs") if isinstance(proxy.get("epochs"), int) else None
    full = full or max((len(figures.curve(r)) for r in trained if r.state == "COMPLETE"), default=0)
    saved = sum(max(0, full - len(figures.curve(r))) for r in trained if r.state == "PRUNED")
    states = ", ".join(f"{v} {s.lower()}" for s, v in sorted(counts.items()) if s != "REJECTED")
    presets = [r for r in recs if r.baseline and r.state == "COMPLETE" and r.accuracy is not None]
    rejected = counts.get("REJECTED", 0)
    items += [
        ("trials", states or "none"),
        ("budget rejections", f"{rejected} candidate{'' if rejected == 1 else 's'} over budget, never trained"),
        ("paper presets", ", ".join(f"{r.preset or _ref(r)} {accuracy_text(r.accuracy, r.val_samples)}"
                                    for r in presets) or "none trained"),
        ("total compute", f"{wall / 3600:.2f} h of training wall time, {epochs} epochs trained"
                          + (f", {saved} epochs saved by pruning (of {full} per trial)" if full else "")),
        ("latency device", device.label() if device is not None else "none measured"),
    ]
    blocks: list[Any] = [Facts(tuple(items))]
    if isinstance(ua.get("space_yaml"), str):
        blocks.append(Details("the search space file", ua["space_yaml"]))
    return tuple(blocks)


def _in_order(studies: dict[str, Any], tiers: Any) -> list[tuple[str, Any]]:
    """(label, study) in the search's own tier order (cheapest first), then any others, presets last."""
    known = [str(t) for t in tiers] if isinstance(tiers, list) else []
    return sorted(studies.items(), key=lambda kv: (kv[0] == PRESETS, known.index(kv[0]) if kv[0] in known
                                                   else len(known), kv[0]))


def build_report(study_name: str | None = None, storage: str | None = None, *, backend: str | None = None,
                 by: str = "proxy") -> Report:
    """Load a search (all its tiers' studies) and lay out its whole report (nothing written); ``by``:
    the Pareto fronts rank by the proxy accuracy or by the validated one (``mvsearch validate``)."""
    from mvsearch.latency import study as lt
    from mvsearch.latency import store as ls
    from mvsearch.search.storage import open_search

    check_by(by)
    search = open_search(study_name, storage)
    name, url = search.name, search.url
    vals = validated(search)
    if by == "validated" and not vals:
        records_by(search, by)  # the one line naming `mvsearch validate`
    ua = search.user_attrs
    studies = _in_order(search.studies, ua.get("tiers"))
    order = {s.study_name: i for i, (_, s) in enumerate(studies)}
    recs_all = sorted(search.records(include_rejected=True), key=lambda r: (order.get(r.study, 0), r.number))
    recs = [r for r in recs_all if not r.over_budget]
    if not recs:
        rej = len(recs_all)
        extra = f" ({rej} candidates rejected by the budget)" if rej else ""
        raise StudyError(f"study {name!r} has no trials yet{extra}; run `mvsearch run --study {name}` first")
    device = ls.pick_device(url, name, backend)
    latency = ls.latencies(url, name, device) if device is not None else {}
    res, k = lt.deployment_resolution(search, recs), lt.study_num_classes(search, recs)
    rep = Report(name, url, "")
    tiers = {label: s for label, s in studies if label != PRESETS}
    several = len(tiers) > 1
    body: dict[str, list[Any]] = {}

    def add(section: str, key: str, fig: Any, why: str, label: str = "", code: str | None = None) -> None:
        key = f"{key}-{label}" if several and label else key
        if fig is None:
            rep.notes.append(key)
            body.setdefault(section, []).append(Note(f"tier {label}: {why}" if several and label else why, code))
        else:
            rep.figures[key] = fig
            body.setdefault(section, []).append(figure(fig, f"plot-{key}"))

    fronts: dict[str, Pareto] = {}
    ranked = as_validated(recs_all, vals) if by == "validated" else recs_all
    for axis in AXES:
        if axis == "latency" and not any(s.startswith("trial:") for s in latency):
            continue
        fronts[axis] = build(name, url, ranked, axis, resolution=res, num_classes=k, latency=latency or None,
                             device=device, y="validated" if by == "validated" else "accuracy")
    counts = state_counts(recs_all)
    no_front = "no completed trial yet, so no front: every trial was pruned or failed"
    for axis in AXES:
        p = fronts.get(axis)
        if p is None:
            add("pareto-latency", "pareto-latency", None, "no latency measured; run",
                code=f"mvsearch latency --study {name} --storage {url}")
            continue
        add(f"pareto-{axis}", f"pareto-{axis}", figures.pareto_figure(p) if p.points else None, no_front)
        if p.points:
            body[f"pareto-{axis}"].append(front_table(p))
    searched = []
    for label, s in tiers.items():
        rs = [r for r in recs_all if r.study == s.study_name]
        mem = figures.trained_copy(s, rs, s.study_name)
        n = sum(1 for r in rs if r.state == "COMPLETE" and r.accuracy is not None and not r.baseline
                and not r.over_budget)
        edf_name = f"tier {label} (n={n})" if several and label else f"searched models (n={n})"
        only = figures.trained_copy(s, rs, edf_name, searched_only=True)
        searched.append(only)
        add("history", "history", figures.history_figure(mem, rs, label), "no completed trial yet", label)
        add("curves", "curves", figures.intermediate_figure(mem, rs, label), "no trial reported an intermediate value",
            label)
        imp, how = figures.importances(only)
        add("importance", "importance", figures.importance_figure(only, list(imp), how, label) if imp else None,
            how, label)
        add("knobs", "knobs", figures.parallel_figure(only, list(imp) if imp else None, label),
            "needs at least two completed searched trials whose parameters differ", label)
    add("edf", "edf", figures.edf_figure(searched, [r for r in recs if r.baseline]),
        "no completed searched trial yet")
    tier_labels = [t for t in tiers if t] or sorted({r.tier for r in recs if r.tier})
    sections = [Section("summary", "Summary", _summary(ua, tier_labels, recs_all, counts, res, k, device))]
    what = "validated accuracy" if by == "validated" else "accuracy"
    headings = {"pareto-flops": f"Pareto front: {what} vs FLOPs", "pareto-params": f"Pareto front: {what} vs params",
                "pareto-latency": f"Pareto front: {what} vs latency", "history": "Optimization history",
                "curves": "Intermediate values and pruning", "importance": "Parameter importances",
                "knobs": "Parallel coordinates", "edf": "Accuracy EDF across the space"}
    sections += [Section(key, heading, tuple(body.get(key) or [Note("no tier of this search has trials yet")]))
                 for key, heading in headings.items()]
    sections.insert(1, Section("validation", "Validation: the winners retrained longer",
                               _validation_blocks(name, recs_all, vals)))
    sections.append(Section("trials", f"Trials ({len(recs)})", (trials_table(recs, latency),)))
    sub = [_where(name, url), f"deployment resolution {res[0]}x{res[1]}, {k} classes"]
    if tier_labels:
        sub.append(f"tiers {', '.join(tier_labels)}")
    rep.html = render(f"mvsearch report: {name}", sub, sections)
    return rep


def _validation_blocks(name: str, recs_all: Sequence[TrialRecord], vals: Any) -> tuple[Any, ...]:
    """The validated models (proxy and validated accuracy, ranks) and the verdicts against the presets."""
    if not vals:
        return (Note("not validated: retrain the Pareto front and the presets under a longer training with",
                     f"mvsearch validate --study {name}"),)
    rep = validation.build(name, recs_all, vals)
    head = (("trial", False), ("FLOPs", False), ("params", False), ("proxy accuracy", False), ("proxy rank", False),
            ("validated accuracy", False), ("validated rank", False), ("seeds", False), ("arch", True))
    rows = []
    for row in rep.rows:
        r, v = row.rec, row.validation
        label = r.preset + " (baseline)" if r.baseline and r.preset else r.summary()
        rows.append(("", (txt(_ref(r)), num(r.flops, format_flops(r.flops)), num(r.params, format_count(r.params)),
                          num(r.accuracy, accuracy_text(r.accuracy, r.val_samples)), num(row.proxy_rank),
                          num(v.accuracy, accuracy_text(v.accuracy, v.val_samples)), num(row.validated_rank),
                          num(v.seeds), txt(label, "arch"))))
    verdicts = [(f"{v.preset} ({format_flops(v.flops)})",
                 f"validated: {v.validated.best_ref or '-'} {v.validated.shown()}; under the proxy: "
                 f"{v.proxy.best_ref or '-'} {v.proxy.shown()}") for v in rep.versus]
    tau = rep.agreement
    verdicts.append(("proxy vs validated order", f"Kendall tau {tau.tau.shown()}, Spearman rho {tau.rho.shown()} "
                                                 f"over {len(rep.rows)} models" if tau else
                     f"needs at least 3 validated models, have {len(rep.rows)}"))
    verdicts.insert(0, ("setting", f"{rep.setting}; {rep.seeds} seed(s) each"))
    return (Facts(tuple(verdicts)), Table("validated", head, tuple(rows), "FLOPs"))


def write_report(study_name: str | None = None, storage: str | None = None, out: str | Path | None = None, *,
                 backend: str | None = None, png: bool = False, force: bool = False,
                 by: str = "proxy") -> tuple[Path, Report]:
    """Build the report and write it (default ``reports/<search>.html``); PNGs beside it on request.

    ``force``: replace an existing file that is not a page mvsearch wrote.
    """
    if png:
        check_png()
    if out is not None:
        check_output(out, force=force)
    rep = build_report(study_name, storage, backend=backend, by=by)
    path = write_page(out or Path("reports") / f"{rep.study_name}.html", rep.html, force=force)
    if png:
        write_pngs(rep.figures, path)
    return path, rep
