"""Self-contained HTML pages of a study: the Pareto page and the full study report.

Pages work with no network: plotly.js is inlined once in the page head (never fetched from a CDN),
and the only other script is a few lines that sort the trials table. PNG copies of the figures are
optional and need kaleido (``pip install kaleido``) with a browser; without it, asking for them is
an error raised before anything is written. Files are written whole or not at all.
"""
from __future__ import annotations

import html
import importlib.util
import json
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from mvsearch.analysis import figures
from mvsearch.core.errors import MvsearchError, StudyError
from mvsearch.search.front import AXES
from mvsearch.analysis.pareto import Pareto, build, table
from mvsearch.core.units import human
from mvsearch.search.record import TrialRecord


MIN_IMPORTANCE_TRIALS = 10  # below this, importances are noise: the page says so instead


STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1200px;padding:0 20px 60px;color:#222}
h1{font-size:1.6em;margin:24px 0 4px} h2{font-size:1.2em;margin-top:36px;border-bottom:1px solid #ddd;padding-bottom:4px}
.sub{color:#666;margin:0 0 16px} .note{color:#8a5a00;background:#fff7e6;padding:8px 12px;border-radius:4px}
dl{display:grid;grid-template-columns:max-content auto;gap:4px 16px;margin:0} dt{color:#666} dd{margin:0;font-family:ui-monospace,monospace;font-size:.9em;word-break:break-word}
table{border-collapse:collapse;font-size:.85em;width:100%} th,td{padding:4px 8px;border-bottom:1px solid #eee;text-align:right;white-space:nowrap}
th{background:#f6f6f6} table.sortable th{cursor:pointer;user-select:none}
th[data-dir=asc]::after{content:" \\25B2"} th[data-dir=desc]::after{content:" \\25BC"}
td.l,th.l{text-align:left} td.arch{white-space:normal;text-align:left;font-family:ui-monospace,monospace;font-size:.9em}
tr.PRUNED td{color:#777} tr.FAIL td{color:#b00}
"""


# click a header to sort by it; cells carry their numeric value in data-v ('' sorts last)
SORT_JS = """
function mvsearchSort(th){var tb=th.closest('table').tBodies[0],i=Array.prototype.indexOf.call(th.parentNode.children,th),
asc=th.getAttribute('data-dir')!=='asc';th.parentNode.querySelectorAll('th').forEach(function(h){h.removeAttribute('data-dir')});
th.setAttribute('data-dir',asc?'asc':'desc');function key(r){var c=r.children[i],v=c.getAttribute('data-v');
return v===null?c.textContent:(v===''?null:parseFloat(v))}
Array.from(tb.rows).sort(function(a,b){var x=key(a),y=key(b);if(x===null)return y===null?0:1;if(y===null)return -1;
var d=(typeof x==='number'&&typeof y==='number')?x-y:String(x).localeCompare(String(y));return asc?d:-d})
.forEach(function(r){tb.appendChild(r)})}
document.querySelectorAll('table.sortable th').forEach(function(th){th.addEventListener('click',function(){mvsearchSort(th)})});
"""


def _esc(v: Any) -> str:
    return html.escape(str(v), quote=True)


def fig_div(fig: Any, div_id: str) -> str:
    """A figure as a div and its script, plotly.js left to the page head."""
    height = fig.layout.height or 460
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id, default_height=f"{height}px",
                       config={"displaylogo": False})


def page(title: str, subtitle: str, sections: Sequence[tuple[str, str, str]]) -> str:
    """A whole page: (anchor, heading, body html) sections, plotly.js inline once."""
    from plotly.offline import get_plotlyjs

    nav = " · ".join(f'<a href="#{a}">{_esc(h)}</a>' for a, h, _ in sections) if len(sections) > 1 else ""
    body = "\n".join(f'<section id="{a}"><h2>{_esc(h)}</h2>\n{b}\n</section>' for a, h, b in sections)
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>{_esc(title)}</title>\n"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<style>{STYLE}</style>\n"
            f"<script type=\"text/javascript\">{get_plotlyjs()}</script>\n</head><body>\n"
            f"<h1>{_esc(title)}</h1><p class=\"sub\">{subtitle}</p><nav>{nav}</nav>\n{body}\n"
            f"<script>{SORT_JS}</script>\n</body></html>\n")


def write_page(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (a temporary file beside it, then a rename)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a page is as readable as any new file
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise MvsearchError(f"cannot write {path}: {exc.strerror or exc}; choose another -o path") from None
    return path


def check_png() -> None:
    """Raise unless kaleido (plotly's static-image engine) is importable."""
    if importlib.util.find_spec("kaleido") is None:
        raise MvsearchError("PNG export needs kaleido and a browser: `pip install kaleido`, or leave out --png")


def write_pngs(figs: dict[str, Any], html_path: Path) -> list[Path]:
    """``<page stem>-<name>.png`` beside the page for each figure; all or none."""
    check_png()
    out = []
    with tempfile.TemporaryDirectory(dir=html_path.parent) as tmp:
        for name, fig in figs.items():
            p = Path(tmp) / f"{html_path.stem}-{name}.png"
            try:
                fig.write_image(str(p), width=1100, height=fig.layout.height or 460, scale=2)
            except Exception as exc:  # kaleido's errors (no browser, ...) are many and untyped
                raise MvsearchError(f"PNG export failed: {str(exc).strip().splitlines()[0]}; "
                                    f"leave out --png, or fix kaleido") from None
            out.append(p)
        final = [html_path.parent / p.name for p in out]
        for src, dst in zip(out, final):
            shutil.move(str(src), dst)
    return final


def _num(v: Any, text: str | None = None) -> str:
    """A numeric cell: sorts by ``v`` (missing values last), shows ``text``."""
    ok = isinstance(v, (int, float)) and not isinstance(v, bool)
    shown = text if text is not None else ("-" if v is None else str(v))
    return f'<td data-v="{v if ok else ""}">{_esc(shown)}</td>'


def _txt(text: Any, cls: str = "") -> str:
    """A text cell: sorts alphabetically."""
    c = f' class="{cls}"' if cls else ""
    return f"<td{c}>{_esc(text)}</td>"


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.2f}%"


def front_table(p: Pareto) -> str:
    head = ["rank", "trial", "accuracy", "FLOPs", "params", "latency", "arch", "paper tier"]
    rows = []
    for row, pt in zip(table(p), p.front):
        lat = pt.latency.median_ms if pt.latency is not None else None
        rows.append("<tr>" + _num(row["rank"]) + _num(row["trial"]) + _num(row["accuracy"], _pct(row["accuracy"]))
                    + _num(row["flops"], human(row["flops"])) + _num(row["params"], human(row["params"]))
                    + _num(lat, row["latency"]) + _txt(row["arch"], "arch") + _txt(row["paper tier"])
                    + "</tr>")
    ths = "".join(f'<th class="{"l" if h == "arch" else ""}">{h}</th>' for h in head)
    return f'<table class="sortable front"><thead><tr>{ths}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def trials_table(recs: Sequence[TrialRecord], latency: dict[str, Any]) -> str:
    head = ["trial", "state", "tier", "accuracy", "FLOPs", "params", "latency ms", "×XXS", "epochs", "wall s",
            "arch"]
    rows = []
    for r in sorted(recs, key=lambda r: r.number):
        lat = latency.get(f"trial:{r.number}")
        wall = r.user_attrs.get("wall_s", r.duration_s)
        wall = float(wall) if isinstance(wall, (int, float)) else None
        label = r.preset + " (baseline)" if r.baseline and r.preset else r.summary()
        rows.append(
            f'<tr class="{r.state}">' + _num(r.number) + _txt(r.state.lower(), "l")
            + _txt(r.tier or "-") + _num(r.accuracy, _pct(r.accuracy))
            + _num(r.flops, human(r.flops)) + _num(r.params, human(r.params))
            + _num(lat.median_ms if lat else None, f"{lat.median_ms:.2f}" if lat else "-")
            + _num(lat.ratio_xxs if lat else None, f"{lat.ratio_xxs:.2f}" if lat else "-")
            + _num(len(figures._curve(r))) + _num(wall, f"{wall:.1f}" if wall is not None else "-")
            + _txt(label, "arch") + "</tr>")
    ths = "".join(f'<th class="{"l" if h in ("arch", "state") else ""}">{h}</th>' for h in head)
    return f'<table class="sortable trials"><thead><tr>{ths}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def pareto_page(p: Pareto) -> str:
    dev = f"; latency on {_esc(p.device.label())}" if p.device is not None else ""
    sub = (f"study <b>{_esc(p.study_name)}</b> in {_esc(p.storage)} · deployment resolution "
           f"{p.resolution[0]}x{p.resolution[1]}, {p.num_classes} classes{dev}")
    body = fig_div(figures.pareto_figure(p), f"plot-pareto-{p.x.name}") + front_table(p)
    return page(f"Pareto front: accuracy vs {p.x.name}", sub, [("front", "Pareto front", body)])


def write_pareto(p: Pareto, path: str | Path, *, png: bool = False) -> Path:
    if png:
        check_png()
    out = write_page(path, pareto_page(p))
    if png:
        write_pngs({f"pareto-{p.x.name}": figures.pareto_figure(p)}, out)
    return out


SUMMARY_KEYS = {
    "space": "space", "space_file": "space file", "budget": "budget", "tiers": "tiers",
    "max_params": "max params", "resolution": "deployment resolution",
    "deployment_resolution": "deployment resolution", "num_classes": "classes", "data": "data",
    "proxy": "proxy", "sampler": "sampler", "pruner": "pruner", "seed": "seed",
    "mvsearch_version": "mvsearch version",
}


def _fmt(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v, sort_keys=False)


def importances(study: Any, numbers: set[int]) -> tuple[dict[str, float] | None, str]:
    """Optuna's parameter importances over the completed trials ``numbers``, or why there are none."""
    import optuna

    trials = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
              if t.number in numbers and t.params]
    if len(trials) < MIN_IMPORTANCE_TRIALS:
        return None, (f"parameter importances need at least {MIN_IMPORTANCE_TRIALS} completed trials with "
                      f"sampled parameters; this study has {len(trials)}")
    if importlib.util.find_spec("sklearn") is not None:
        evaluator, name = optuna.importance.FanovaImportanceEvaluator(seed=0), "fANOVA"
    else:  # PED-ANOVA needs no scikit-learn
        evaluator, name = optuna.importance.PedAnovaImportanceEvaluator(), "PED-ANOVA"
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "new study created in memory" line
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mem = optuna.create_study(direction=study.direction)  # only trained, in-budget trials count
            mem.add_trials(trials)
            imp = optuna.importance.get_param_importances(mem, evaluator=evaluator)
    except Exception as exc:  # optuna raises plain ValueError/RuntimeError for degenerate spaces
        return None, f"parameter importances could not be computed: {str(exc).strip().splitlines()[0]}"
    finally:
        optuna.logging.set_verbosity(verbosity)
    if not imp:
        return None, "no sampled parameter is shared by all completed trials, so none can be ranked"
    return imp, name


@dataclass
class Report:
    study_name: str
    storage: str
    html: str
    figures: dict[str, Any] = field(default_factory=dict)  # name -> plotly figure, in page order
    notes: list[str] = field(default_factory=list)  # sections shown as a note instead of a plot


def _summary(study: Any, name: str, url: str, recs_all: Sequence[TrialRecord], p_counts: dict[str, int],
             device: Any, proxy_epochs: int | None) -> str:
    ua = dict(study.user_attrs)
    items = [(label, _fmt(ua[k])) for k, label in SUMMARY_KEYS.items() if k in ua]
    # the budget's machine form repeats "budget"; the space file is shown whole below the list
    items += [(k, _fmt(v)) for k, v in ua.items() if k not in SUMMARY_KEYS and k not in ("budgets", "space_yaml")]
    recs = [r for r in recs_all if not r.over_budget]
    trained = [r for r in recs if r.trained]
    wall = sum(float(r.user_attrs.get("wall_s") or r.duration_s or 0.0) for r in trained)
    epochs = sum(len(figures._curve(r)) for r in trained)
    full = proxy_epochs or max((len(figures._curve(r)) for r in trained if r.state == "COMPLETE"), default=0)
    saved = sum(max(0, full - len(figures._curve(r))) for r in trained if r.state == "PRUNED")
    states = ", ".join(f"{v} {k.lower()}" for k, v in sorted(p_counts.items()) if k != "REJECTED")
    items += [
        ("trials", states or "none"),
        ("budget rejections", f"{p_counts.get('REJECTED', 0)} candidates over budget, never trained"),
        ("total compute", f"{wall / 3600:.2f} h of training wall time, {epochs} epochs trained"
                          + (f", {saved} epochs saved by pruning (of {full} per trial)" if full else "")),
        ("latency device", device.label() if device is not None else "none measured"),
    ]
    html = "<dl>" + "".join(f"<dt>{_esc(k)}</dt><dd>{_esc(v)}</dd>" for k, v in items) + "</dl>"
    if isinstance(ua.get("space_yaml"), str):
        html += f"<details><summary>the search space file</summary><pre>{_esc(ua['space_yaml'])}</pre></details>"
    return html


def build_report(study_name: str | None = None, storage: str | None = None, *, backend: str | None = None) -> Report:
    """Load a study and lay out its whole report (nothing written)."""
    from mvsearch.latency import study as lt
    from mvsearch.latency import store as ls
    from mvsearch.search import storage as st
    from mvsearch.search import record as rec

    name, url = st.resolve(study_name, storage)
    study = st.load(name, url)
    recs_all = rec.records(study, include_rejected=True)
    recs = [r for r in recs_all if not r.over_budget]
    if not recs:
        rej = len(recs_all)
        extra = f" ({rej} candidates rejected by the budget)" if rej else ""
        raise StudyError(f"study {name!r} has no trials yet{extra}; run `mvsearch run --study {name}` first")
    device = ls.pick_device(url, name, backend)
    latency = ls.latencies(url, name, device) if device is not None else {}
    res, k = lt.deployment_resolution(study, recs), lt.study_num_classes(study, recs)
    rep = Report(name, url, "")
    sections: list[tuple[str, str, str]] = []

    def add(key: str, heading: str, fig: Any, why: str, extra: str = "") -> None:
        if fig is None:
            rep.notes.append(key)
            sections.append((key, heading, f'<p class="note">{_esc(why)}</p>{extra}'))
        else:
            rep.figures[key] = fig
            sections.append((key, heading, fig_div(fig, f"plot-{key}") + extra))

    fronts: dict[str, Pareto] = {}
    for axis in AXES:
        if axis == "latency" and not any(s.startswith("trial:") for s in latency):
            continue
        fronts[axis] = build(name, url, recs_all, axis, resolution=res, num_classes=k, latency=latency or None,
                             device=device)
    proxy = study.user_attrs.get("proxy")
    epochs = proxy.get("epochs") if isinstance(proxy, dict) and isinstance(proxy.get("epochs"), int) else None
    counts = next(iter(fronts.values())).counts
    sections.append(("summary", "Summary", _summary(study, name, url, recs_all, counts, device, epochs)))
    no_front = "no completed trial yet, so no front: every trial was pruned or failed"
    for axis, p in fronts.items():
        add(f"pareto-{axis}", f"Pareto front: accuracy vs {axis}", figures.pareto_figure(p) if p.points else None,
            no_front, front_table(p) if p.points else "")
    if "latency" not in fronts:
        rep.notes.append("pareto-latency")
        sections.append(("pareto-latency", "Pareto front: accuracy vs latency",
                         f'<p class="note">no latency measured; run <code>mvsearch latency --study {_esc(name)} '
                         f'--storage {_esc(url)}</code></p>'))
    add("history", "Optimization history", figures.history_figure(recs), "no completed trial yet")
    add("curves", "Intermediate values and pruning", figures.curves_figure(recs),
        "no trial reported an intermediate value")
    done = {r.number for r in recs if r.state == "COMPLETE" and r.accuracy is not None}
    imp, how = importances(study, done)
    add("importance", "Parameter importances", figures.importance_figure(imp, how) if imp else None, how)
    add("knobs", "Knobs (parallel coordinates)", figures.parcoords_figure(recs),
        "needs at least two completed trials whose architectures differ")
    add("edf", "Error EDF across the space", figures.edf_figure(recs), "no completed searched trial yet")
    sections.append(("trials", f"Trials ({len(recs)}; click a header to sort)", trials_table(recs, latency)))
    sub = (f"study <b>{_esc(name)}</b> in {_esc(url)} · deployment resolution {res[0]}x{res[1]}, {k} classes")
    rep.html = page(f"mvsearch report: {name}", sub, sections)
    return rep


def write_report(study_name: str | None = None, storage: str | None = None, out: str | Path | None = None, *,
                 backend: str | None = None, png: bool = False) -> tuple[Path, Report]:
    """Build the report and write it (default ``reports/<study>.html``); PNGs beside it on request."""
    if png:
        check_png()
    rep = build_report(study_name, storage, backend=backend)
    path = write_page(out or Path("reports") / f"{rep.study_name}.html", rep.html)
    if png:
        write_pngs(rep.figures, path)
    return path, rep
