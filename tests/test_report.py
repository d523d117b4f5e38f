"""The study report: sections, figures from real studies (pruned, failed, rejected trials), errors."""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys

import pytest
from click.testing import CliRunner

from mvsearch.cli.main import main
from mvsearch.core.errors import StudyError
from mvsearch.analysis.figures import curves_figure, edf_figure, parcoords_figure
from mvsearch.latency.study import measure_study
from mvsearch.analysis.report import MIN_IMPORTANCE_TRIALS, build_report, write_report
from mvsearch.search.storage import load
from mvsearch.search.record import records
from tests._studies import SEARCHED, all_pruned_study, empty_study, make_study

SECTIONS = ("summary", "pareto-flops", "pareto-params", "pareto-latency", "history", "curves", "importance", "knobs",
            "edf", "trials")


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return make_study(tmp_path_factory.mktemp("report"))


@pytest.fixture(scope="module")
def report(study):
    return build_report(*study)


def test_page_has_every_section_in_order(report):
    ids = re.findall(r'<section id="([\w-]+)">', report.html)
    assert tuple(ids) == SECTIONS


def test_page_is_self_contained(report):
    html = report.html
    assert "<script src=" not in html and "cdn.plot.ly" not in html.replace("https://cdn.plot.ly/", "")
    assert html.count("<script type=\"text/javascript\">/**\n* plotly.js") == 1  # inlined once, not per figure
    assert html.count("Plotly.newPlot(") == len(report.figures)


def test_summary_shows_the_study_settings_and_compute(report):
    summary = report.html.split('<section id="summary">')[1].split("</section>")[0]
    for text in ("spaces/tiny.yaml", "synthetic:10", "[64, 64]", "&quot;epochs&quot;: 4", "0.1.0",
                 "8 complete, 1 fail, 2 pruned", "2 candidates over budget, never trained",
                 "epochs trained", "5 epochs saved by pruning (of 4 per trial)", "none measured"):
        assert text in summary, text


def test_budget_rejections_never_show_as_trained(report):
    # trial 11 is COMPLETE with accuracy 0.99 but was rejected by the budget: no plot, no row
    assert "99.00%" not in report.html and ">0.99<" not in report.html
    rows = re.findall(r'<tr class="(\w+)">', report.html.split('<section id="trials">')[1])
    assert len(rows) == 2 + len(SEARCHED) + 2 + 1
    assert rows.count("PRUNED") == 2 and rows.count("FAIL") == 1


def test_pruned_and_failed_trials_are_drawn_where_they_belong(study):
    recs = records(load(*study))
    curves = {t.name.split(" (")[0]: t for t in curves_figure(recs).data}
    stopped = curves["stopped by the pruner"]
    assert sorted(zip(stopped.x, stopped.y)) == [(1, 0.25), (2, 0.3)]  # after epochs 1 and 2
    assert sum(v is None for v in curves["completed"].x) == len(SEARCHED) + 2  # one gap after each curve


def test_edf_is_the_cumulative_fraction_of_errors(study):
    recs = records(load(*study))
    (all_trace,) = [t for t in edf_figure(recs).data if t.name.startswith("all searched")]
    errors = sorted(1 - acc for _, acc in SEARCHED)
    assert list(all_trace.x) == pytest.approx(errors)
    assert list(all_trace.y) == pytest.approx([(i + 1) / len(errors) for i in range(len(errors))])


def test_parallel_coordinates_show_only_varying_knobs(study):
    fig = parcoords_figure(records(load(*study)))
    labels = [d.label for d in fig.data[0].dimensions]
    assert labels == ["layer3.dim", "layer3.ffn_dim", "layer4.depth", "layer5.patch", "accuracy"]
    patch = fig.data[0].dimensions[3]
    assert list(patch.ticktext) == ["1x1", "2x2"]


def test_too_few_trials_for_importances_is_a_note(report):
    assert "importance" in report.notes and "importance" not in report.figures
    assert f"need at least {MIN_IMPORTANCE_TRIALS} completed trials" in report.html


def test_importances_with_enough_trials(tmp_path):
    rep = build_report(*make_study(tmp_path, extra_random=MIN_IMPORTANCE_TRIALS))
    bars = rep.figures["importance"].data[0]
    assert set(bars.y) == {"layer3.dim", "layer4.depth", "layer5.patch"}
    assert sum(bars.x) == pytest.approx(1.0)


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


def test_cli_empty_study_in_a_real_process(tmp_path):
    name, storage = empty_study(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "mvsearch", "report", "--study", name, "--storage", storage,
                           "-o", str(tmp_path / "r.html")], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 2 and proc.stderr == f"error: study 'empty' has no trials yet; run `mvsearch run " \
                                                   f"--study empty` first\n"
    assert not (tmp_path / "r.html").exists()
