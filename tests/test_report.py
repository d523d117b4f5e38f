"""The search report: sections, Optuna's figures per tier from real studies (pruned, failed, rejected
trials), the page template, overwriting, errors."""
from __future__ import annotations

import importlib.resources
import importlib.util
import os
import re
import subprocess
import sys

import optuna
import pytest
from click.testing import CliRunner
from optuna.distributions import IntDistribution
from optuna.trial import TrialState, create_trial

from mvsearch.analysis.figures import MIN_IMPORTANCE_TRIALS
from mvsearch.analysis.report import build_report, write_pareto, write_report
from mvsearch.analysis.pareto import compute
from mvsearch.arch.presets import get_preset
from mvsearch.cli.main import main
from mvsearch.core.errors import MvsearchError, StudyError
from mvsearch.latency.study import measure_study
from mvsearch.search.record import StudyRecord, TrialRecord
from tests._studies import DISTS, K, RES, SEARCHED, all_pruned_study, cost, empty_study, make_study, variant
from tests.test_pareto import wilson95

SECTIONS = ("summary", "validation", "pareto-flops", "pareto-params", "pareto-latency", "history", "curves",
            "importance", "knobs", "edf", "trials")



PROXY = {"data": "synthetic:10", "resolution": 32, "stem_stride": 1, "epochs": 3, "batch_size": 8,
         "train_samples": 64, "val_samples": 32, "lr": 0.002, "weight_decay": 0.05}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return make_study(tmp_path_factory.mktemp("report"))


@pytest.fixture(scope="module")
def report(study):
    return build_report(*study)


def section(html: str, key: str) -> str:
    return html.split(f'<section id="{key}">')[1].split("</section>")[0]


# ---------------------------------------------------------------------- a search with one study per tier
def _trial(knobs: tuple[int, int, str], tier: str, acc: float | None, state=TrialState.COMPLETE, *,
           epochs: int = 3, over_budget: bool = False):
    """A trial as the per-tier search stores it: Optuna steps are epochs counted from 1."""
    cfg = variant(*knobs)
    flops, params = cost(cfg)
    curve = [round(acc - 0.1 * (epochs - e), 4) for e in range(1, epochs + 1)] if acc is not None else []
    attrs = TrialRecord(arch=cfg, flops=flops, params=params, resolution=[RES, RES], tier=tier,
                        over_budget=over_budget, accuracy_curve=curve, wall_s=2.0 * len(curve), proxy=PROXY,
                        data="synthetic:10", val_samples=None if over_budget else PROXY["val_samples"]).to_attrs()
    steps = {} if over_budget else {e: a for e, a in enumerate(curve, start=1)}
    return create_trial(state=state, value=acc if state == TrialState.COMPLETE else None,
                        params={"layer3.dim": knobs[0], "layer4.depth": knobs[1], "layer5.patch": knobs[2]},
                        distributions=DISTS, intermediate_values=steps, user_attrs=attrs)


def tiered_search(tmp_path, name: str = "tiers") -> tuple[str, str]:
    """``tiers@small`` (3 completed, 1 pruned after epoch 1, 1 budget rejection), ``tiers@large`` (12
    completed: enough for importances) and ``tiers@presets`` (mobilevit_xxs trained as a baseline)."""
    storage = f"sqlite:///{tmp_path / f'{name}.db'}"
    info = StudyRecord(search=name, schema_version=2, space="tiny", space_file="spaces/tiny.yaml",
                       budget="0.03G FLOPs", tiers=["small", "large"], resolution=[RES, RES], num_classes=K,
                       data="synthetic:10", proxy=PROXY, sampler="tpe", pruner="median", seed=0,
                       mvsearch_version="0.2.0")
    studies = {}
    for tier in ("small", "large", "presets"):
        s = optuna.create_study(study_name=f"{name}@{tier}", storage=storage, direction="maximize")
        for k, v in {**info.to_attrs(), "tier": tier}.items():
            s.set_user_attr(k, v)
        studies[tier] = s
    small = studies["small"]
    for knobs, acc in [((32, 1, "2x2"), 0.6), ((48, 2, "2x2"), 0.7), ((48, 1, "1x1"), 0.65)]:
        small.add_trial(_trial(knobs, "small", acc))
    small.add_trial(_trial((32, 3, "1x1"), "small", 0.3, TrialState.PRUNED, epochs=1))
    small.add_trial(_trial((96, 4, "1x1"), "small", 0.99, over_budget=True))  # never trained
    for i in range(12):
        knobs = ((64, 80, 96)[i % 3], 1 + i % 4, ("2x2", "1x1")[i % 2])
        studies["large"].add_trial(_trial(knobs, "large", round(0.6 + 0.002 * knobs[0] + 0.03 * knobs[1], 4)))
    cfg = get_preset("mobilevit_xxs", K)
    flops, params = cost(cfg)
    studies["presets"].add_trial(create_trial(
        state=TrialState.COMPLETE, value=0.72, intermediate_values={1: 0.5, 2: 0.65, 3: 0.72},
        user_attrs=TrialRecord(arch=cfg, flops=flops, params=params, resolution=[RES, RES], baseline=True,
                               preset="mobilevit_xxs", accuracy_curve=[0.5, 0.65, 0.72],
                               val_samples=PROXY["val_samples"]).to_attrs()))
    return name, storage


@pytest.fixture(scope="module")
def tiered(tmp_path_factory):
    return tiered_search(tmp_path_factory.mktemp("tiered"))


@pytest.fixture(scope="module")
def tiered_report(tiered):
    return build_report(*tiered)


# ---------------------------------------------------------------------- the page
def test_page_has_every_section_in_order(report):
    ids = re.findall(r'<section id="([\w-]+)">', report.html)
    assert tuple(ids) == SECTIONS


def test_page_is_self_contained(report):
    html = report.html
    assert "<script src=" not in html and "cdn.plot.ly" not in html.replace("https://cdn.plot.ly/", "")
    assert html.count("<script type=\"text/javascript\">/**\n* plotly.js") == 1  # inlined once, not per figure
    assert html.count("Plotly.newPlot(") == len(report.figures)


def test_page_carries_the_generator_marker(report):
    assert re.search(r'<meta name="generator" content="mvsearch [\w.+-]+">', report.html.split("</head>")[0])


def test_templates_are_package_files():
    # read through importlib.resources, as from an installed wheel (pyproject: package-data templates/*)
    folder = importlib.resources.files("mvsearch.analysis") / "templates"
    assert {"page.html.j2", "page.css", "page.js"} <= {p.name for p in folder.iterdir()}


def test_text_from_the_study_is_escaped(tmp_path):
    name, storage = make_study(tmp_path, baselines=False, rejected=False)
    optuna.load_study(study_name=name, storage=storage).set_user_attr("data", "<script>alert(1)</script>")
    html = build_report(name, storage).html
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def interval_text(acc: float, n: int) -> str:
    """``72.0% ±15.1``: the accuracy and half its Wilson interval, in points (from the test's own formula)."""
    lo, hi = wilson95(acc, n)
    return f"{100 * acc:.1f}% ±{50 * (hi - lo):.1f}"


def test_summary_is_readable_text(tiered_report):
    summary = section(tiered_report.html, "summary")
    for text in ("tiny (spaces/tiny.yaml)", "0.03G FLOPs", "<dd>small, large</dd>", "64x64, 10 classes",
                 "32x32, stem stride 1, 3 epochs, 64 train / 32 val images, batch 8, lr 0.002", "tpe / median",
                 "16 complete, 1 pruned", "1 candidate over budget, never trained",
                 f"mobilevit_xxs {interval_text(0.72, 32)}",
                 "2 epochs saved by pruning (of 3 per trial)", "none measured"):
        assert text in summary, text
    assert "[" not in summary and "{" not in summary and "&#34;" not in summary and "&quot;" not in summary


def test_summary_of_an_older_study(report):
    summary = section(report.html, "summary")
    for text in ("tiny (spaces/tiny.yaml)", "synthetic:10", "64x64, 10 classes", "epochs 4, resolution 32",
                 "0.1.0", "8 complete, 1 fail, 2 pruned", "2 candidates over budget, never trained",
                 "5 epochs saved by pruning (of 4 per trial)", "none measured"):
        assert text in summary, text


def test_tables_say_how_they_are_sorted(report):
    assert "sorted by <span class=\"order\">trial (tier, then number)</span>" in section(report.html, "trials")
    assert "sorted by <span class=\"order\">rank (1 = most accurate)</span>" in section(report.html, "pareto-flops")


def test_budget_rejections_never_show_as_trained(report):
    # trial 11 is COMPLETE with accuracy 0.99 but was rejected by the budget: no plot, no row
    assert "99.00%" not in report.html and ">0.99<" not in report.html
    rows = re.findall(r'<tr class="(\w+)">', section(report.html, "trials"))
    assert len(rows) == 2 + len(SEARCHED) + 2 + 1
    assert rows.count("PRUNED") == 2 and rows.count("FAIL") == 1
    for key in ("history", "curves", "edf"):
        ys = [y for tr in report.figures[key].data for y in (list(tr.y) if tr.y is not None else []) if y is not None]
        assert 0.99 not in ys, key


def test_history_keeps_the_stored_trial_numbers(report):
    # the rejected trials are placeholders in Optuna's copy, so trial numbers do not shift
    (done,) = [t for t in report.figures["history"].data if t.name.startswith("completed")]
    assert list(done.x) == list(range(0, 2 + len(SEARCHED)))
    assert done.y[2:] == tuple(acc for _, acc in SEARCHED)


def test_intermediate_values_are_plotted_at_the_stored_steps(tiered, tiered_report):
    # the hand-made figure added 1 to Optuna's (1-based) steps: a 3-epoch proxy showed epochs 2-4
    study = optuna.load_study(study_name=f"{tiered[0]}@large", storage=tiered[1])
    steps = {f"trial large/{t.number}": sorted(t.intermediate_values) for t in study.trials}
    fig = tiered_report.figures["curves-large"]
    curves = [t for t in fig.data if t.name != "stopped by the pruner"]
    assert len(curves) == 12
    for t in curves:
        assert list(t.x) == steps[t.text[0]] == [1, 2, 3]


def test_pruned_trials_are_crossed_where_the_pruner_stopped_them(study, report):
    stopped = [t for t in report.figures["curves"].data if t.name == "stopped by the pruner"][0]
    assert sorted(zip(stopped.x, stopped.y)) == [(0, 0.25), (1, 0.3)]  # this fixture stores steps from 0
    names = {t.name for t in report.figures["curves"].data}
    assert {f"completed ({2 + len(SEARCHED)})", "pruned (2)"} <= names


def test_edf_is_optunas_over_the_searched_models(report):
    (line,) = [t for t in report.figures["edf"].data if t.name.startswith("searched models")]
    assert line.name == f"searched models (n={len(SEARCHED)})"  # presets are rules, not models of the space
    accs = [acc for _, acc in SEARCHED]
    for x, y in zip(line.x, line.y):
        assert y == pytest.approx(sum(a <= x for a in accs) / len(accs))
    assert {s.x0 for s in report.figures["edf"].layout.shapes} == {0.71, 0.78}


def test_parallel_coordinates_show_varying_params_with_readable_ticks(tmp_path):
    rep = build_report(*make_study(tmp_path, extra_random=MIN_IMPORTANCE_TRIALS))
    fig = rep.figures["knobs"]
    assert list(fig.layout.xaxis.ticktext) == ["accuracy", "layer3.dim", "layer4.depth", "layer5.patch"]
    ticks = {}
    for a in fig.layout.annotations:
        ticks.setdefault(int(a.x), []).append(a.text)
    assert all(t.endswith("%") for t in ticks[0])
    assert set(ticks[2]) == {"1", "2", "3", "4"}  # an integer parameter only at whole values
    assert set(ticks[3]) == {"1x1", "2x2"}


def test_parallel_coordinates_have_at_most_eight_axes(tmp_path):
    from mvsearch.analysis.figures import MAX_AXES, parallel_figure

    mem = optuna.create_study(direction="maximize")
    dists = {f"p{i}": IntDistribution(0, 9) for i in range(12)}
    for n in range(6):
        mem.add_trial(create_trial(value=n / 10, params={k: (n + i) % 10 for i, k in enumerate(dists)},
                                   distributions=dists))
    fig = parallel_figure(mem, [f"p{i}" for i in range(11, -1, -1)])
    assert len(fig.layout.xaxis.ticktext) == MAX_AXES
    assert set(fig.layout.xaxis.ticktext[1:]) == {f"p{i}" for i in range(11, 4, -1)}  # the 7 most important


def test_too_few_trials_for_importances_is_a_note(report):
    assert "importance" in report.notes and "importance" not in report.figures
    assert f"need at least {MIN_IMPORTANCE_TRIALS} completed trials" in report.html


def test_importances_with_enough_trials(tmp_path):
    rep = build_report(*make_study(tmp_path, extra_random=MIN_IMPORTANCE_TRIALS))
    bars = rep.figures["importance"].data[0]
    assert set(bars.y) == {"layer3.dim", "layer4.depth", "layer5.patch"}
    assert sum(bars.x) == pytest.approx(1.0)


def test_a_tiered_search_draws_one_figure_per_tier(tiered_report):
    rep = tiered_report
    for key in ("history", "curves", "knobs"):
        for tier in ("small", "large"):
            assert f"{key}-{tier}" in rep.figures
            assert rep.figures[f"{key}-{tier}"].layout.title.text.endswith(f", tier {tier}")
    assert "importance-large" in rep.figures and "importance-small" in rep.notes  # 3 completed trials are too few
    assert "tier small: parameter importances need at least" in rep.html
    assert not any(k.endswith("-presets") for k in [*rep.figures, *rep.notes])  # presets are no tier
    edf = rep.figures["edf"]  # one EDF, one line per tier
    assert sorted(t.name for t in edf.data) == ["tier large (n=12)", "tier small (n=3)"]
    assert [a.text for a in edf.layout.annotations] == ["mobilevit_xxs"]


def test_a_tiered_search_labels_trials_by_ref(tiered_report):
    trials = section(tiered_report.html, "trials")
    cells = re.findall(r'<tr class="\w+"><td data-v="\d+">([^<]+)</td>', trials)
    assert cells == [f"small/{i}" for i in range(4)] + [f"large/{i}" for i in range(12)] + ["presets/0"]
    done = [t for t in tiered_report.figures["history-small"].data if t.name.startswith("completed")][0]
    assert done.text[0].startswith("trial small/0<br>")


def test_flops_and_params_are_written_in_k_m_g(tiered_report):
    fig = tiered_report.figures["pareto-flops"]
    assert fig.layout.xaxis.exponentformat == "SI"  # plotly's default writes a billion as "B"
    hover = fig.data[0].customdata[0]
    assert re.fullmatch(r"[\d.]+M", hover[2]) and re.fullmatch(r"[\d.]+k", hover[3])
    front = section(tiered_report.html, "pareto-flops")
    assert re.search(r">[\d.]+M</td><td data-v=\"\d+\">[\d.]+k</td>", front)


def test_front_table_shows_each_interval_and_sorts_by_the_accuracy(tiered, tiered_report):
    front = section(tiered_report.html, "pareto-flops").split('<table class="sortable front">')[1]
    assert "<th>accuracy</th><th>indistinguishable from</th>" in front
    rows = re.findall(r'<tr><td data-v="(\d+)">[^<]+</td><td>[^<]+</td><td data-v="([\d.]+)">([^<]+)</td>'
                      r'<td data-v="(\d*)">([^<]*)</td>', front)
    p = compute(*tiered, "flops")
    assert len(rows) == len(p.front) >= 2
    for (rank, v, text, tie, tie_text), pt in zip(rows, p.front):
        assert int(rank) == pt.rank and float(v) == pt.accuracy  # sorts by the accuracy, shows its interval
        assert text == interval_text(pt.accuracy, 32)
        assert tie_text == (f"rank {pt.tie_with}" if pt.tie_with is not None else "") and tie == str(pt.tie_with or "")
    # 32 validation images are ±15 points: the next point down the front is within the noise of the one above
    assert [pt.tie_with for pt in p.front[1:]] == [pt.rank for pt in p.front[:-1]]


def test_trials_table_shows_each_interval(tiered_report):
    trials = section(tiered_report.html, "trials")
    cells = re.findall(r'<td class="l">(\w+)</td><td>[^<]+</td><td data-v="([\d.]*)">([^<]+)</td>', trials)
    assert len(cells) == 17
    for state, v, text in cells:
        assert text == interval_text(float(v), 32), (state, v, text)


def test_an_older_study_shows_the_bare_figures(report):
    trials = section(report.html, "trials")
    assert "±" not in trials and ">74.00%<" in trials
    assert "±" not in section(report.html, "pareto-flops")


def test_the_pareto_figure_has_wilson_error_bars(tiered_report):
    fig = tiered_report.figures["pareto-flops"]
    for name in ("completed", "paper presets"):
        (tr,) = [t for t in fig.data if t.name.startswith(name)]
        for y, up, down in zip(tr.y, tr.error_y.array, tr.error_y.arrayminus):
            lo, hi = wilson95(y, 32)
            assert (y - down, y + up) == (pytest.approx(lo), pytest.approx(hi))
    hover = fig.data[0].customdata[0][8]
    assert re.fullmatch(r"[\d.]+% ±[\d.]+ \(95%: [\d.]+–[\d.]+% on 32 validation images\)(<br>.*)?", hover)
    (history,) = [t for t in tiered_report.figures["history-small"].data if t.name.startswith("completed")]
    assert history.text[0].endswith(f"<br>accuracy {interval_text(history.y[0], 32)}")


def test_latency_section_appears_once_measured(tmp_path):
    name, storage = make_study(tmp_path, baselines=False, rejected=False)
    assert "pareto-latency" in build_report(name, storage).notes
    measure_study(name, storage, pareto_only=True, warmup=0, repeats=3)
    rep = build_report(name, storage)
    assert "pareto-latency" in rep.figures and "torch on cpu, 1 thread" in rep.html
    fig = rep.figures["pareto-latency"]
    assert fig.layout.xaxis.title.text.startswith("latency, batch 1")
    # presets not trained in this study still appear, as rules at their measured latency
    assert {a.text.split(" ")[0] for a in fig.layout.annotations} == {"XXS", "XS", "S"}


def test_a_study_with_every_trial_pruned_or_failed_still_reports(tmp_path):
    rep = build_report(*all_pruned_study(tmp_path))
    assert {"pareto-flops", "pareto-params", "history", "knobs", "edf"} <= set(rep.notes)
    assert "curves" in rep.figures  # the pruned trials' curves are what there is to see
    assert "every trial was pruned or failed" in rep.html


def test_study_attributes_are_optional(tmp_path):
    rep = build_report(*make_study(tmp_path, study_attrs=False))
    assert "deployment resolution 64x64, 10 classes" in rep.html  # taken from the trials instead


# ---------------------------------------------------------------------- writing: atomic, and never over a stranger
def test_an_existing_file_that_is_not_our_page_is_refused(study, tmp_path):
    out = tmp_path / "notes.html"
    out.write_text("<html>my own notes</html>")
    with pytest.raises(MvsearchError, match=f"cannot write {out}: it exists and is not a page mvsearch wrote; "
                                            f"pass --force"):
        write_report(*study, out)
    assert out.read_text() == "<html>my own notes</html>"
    path, rep = write_report(*study, out, force=True)
    assert out.read_text() == rep.html


def test_our_own_page_and_an_empty_file_are_replaced(study, tmp_path):
    out = tmp_path / "r.html"
    out.write_text("")
    write_report(*study, out)
    write_report(*study, out)  # the page just written carries the marker
    p = compute(*study, "flops")
    write_pareto(p, out)  # either page is "ours"
    assert "Pareto front: accuracy vs FLOPs" in out.read_text()


def test_a_page_of_an_older_release_is_replaced(study, tmp_path):
    # pages written before the generator marker: what report.page() wrote then
    out = tmp_path / "old.html"
    out.write_text('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n<title>mvsearch report: demo'
                   '</title>\n<style></style></head><body></body></html>\n')
    write_report(*study, out)
    assert 'content="mvsearch' in out.read_text()


def test_the_pareto_page_refuses_a_stranger_too(study, tmp_path):
    out = tmp_path / "p.html"
    out.write_text("precious")
    with pytest.raises(MvsearchError, match="pass --force"):
        write_pareto(compute(*study, "flops"), out)
    write_pareto(compute(*study, "flops"), out, force=True)
    assert 'content="mvsearch' in out.read_text()


# ---------------------------------------------------------------------- errors and the command
def test_no_such_study(study):
    with pytest.raises(StudyError, match="no study named 'dmeo' in .* \\(did you mean 'demo'\\?\\)"):
        build_report("dmeo", study[1])


def test_empty_study(tmp_path):
    with pytest.raises(StudyError, match="study 'empty' has no trials yet; run `mvsearch run --study empty`"):
        build_report(*empty_study(tmp_path))


def test_write_report_defaults_to_reports_study_html(study, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path, rep = write_report(*study)
    assert path == tmp_path.joinpath("reports", "demo.html").relative_to(tmp_path)
    assert (tmp_path / path).read_text() == rep.html
    assert [p.name for p in (tmp_path / "reports").iterdir()] == ["demo.html"]  # no temporary left behind


def test_cli_writes_the_page(study, tmp_path):
    out = tmp_path / "sub" / "r.html"
    res = CliRunner().invoke(main, ["report", "--study", study[0], "--storage", study[1], "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert res.output.startswith(f"wrote {out} (6 figures; shown as notes: pareto-latency, importance)")
    assert out.stat().st_size > 1_000_000


def test_cli_refuses_a_stranger_without_force(study, tmp_path):
    out = tmp_path / "r.html"
    out.write_text("not a report")
    argv = ["report", "--study", study[0], "--storage", study[1], "-o", str(out)]
    res = CliRunner().invoke(main, argv)
    assert res.exit_code == 2 and res.output.count("\n") == 1 and "pass --force" in res.output, res.output
    assert out.read_text() == "not a report"
    res = CliRunner().invoke(main, argv + ["--force"])
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize("args, message", [
    (["--study", "nope"], "error: no study named 'nope'"),
    pytest.param(["--png"], "error: PNG export needs kaleido",
                 marks=pytest.mark.skipif(importlib.util.find_spec("kaleido") is not None, reason="kaleido installed")),
])
def test_cli_errors_are_one_line_and_write_nothing(study, tmp_path, args, message):
    out = tmp_path / "r.html"
    argv = ["report", "--storage", study[1], "-o", str(out)] + (["--study", study[0]] if "--study" not in args else [])
    res = CliRunner().invoke(main, argv + args)
    assert res.exit_code == 2 and res.output.startswith(message) and res.output.count("\n") == 1, res.output
    assert not out.exists()


def test_cli_unwritable_output_is_one_line(study, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    res = CliRunner().invoke(main, ["report", "--study", study[0], "--storage", study[1], "-o", str(blocker / "r.html")])
    assert res.exit_code == 2 and res.output.startswith(f"error: cannot write {blocker / 'r.html'}"), res.output
    assert res.output.count("\n") == 1 and "choose another -o path" in res.output


def test_cli_empty_study_in_a_real_process(tmp_path):
    name, storage = empty_study(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "mvsearch", "report", "--study", name, "--storage", storage,
                           "-o", str(tmp_path / "r.html")], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 2 and proc.stderr == "error: study 'empty' has no trials yet; run `mvsearch run " \
                                                   "--study empty` first\n"
    assert not (tmp_path / "r.html").exists()
