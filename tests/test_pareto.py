"""Pareto fronts: the non-dominated set, ranks, tiers, the figure and `mvsearch pareto`."""
from __future__ import annotations

import importlib.util
import json
import random
import subprocess
import sys

import pytest
from click.testing import CliRunner

from mvsearch.cli.main import main
from mvsearch.core.errors import MvsearchError, StudyError
from mvsearch.analysis.figures import pareto_figure
from mvsearch.analysis.pareto import build, compute, nearest_tier, table
from mvsearch.search.front import front, nondominated
from mvsearch.search.record import TrialRecord
from tests._studies import SEARCHED, all_pruned_study, empty_study, make_study


def rec(number: int, acc: float | None, flops: int | None, *, state: str = "COMPLETE", params: int | None = None,
        over_budget: bool = False, baseline: bool = False, preset: str | None = None) -> TrialRecord:
    return TrialRecord(number=number, state=state, accuracy=acc, flops=flops, params=params or flops,
                       thop_macs=None, activations=None, arch=None, tier=None, baseline=baseline, preset=preset,
                       over_budget=over_budget, duration_s=None)


def brute_force(points: list[tuple[float, float]]) -> set[int]:
    """The definition, O(n^2): nobody costs no more, is no less accurate and is strictly better once."""
    return {i for i, (x, y) in enumerate(points)
            if not any(u <= x and v >= y and (u < x or v > y) for u, v in points)}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return make_study(tmp_path_factory.mktemp("pareto"))


# ---------------------------------------------------------------------- the non-dominated set
def test_nondominated_matches_the_definition_on_random_points_with_many_ties():
    rng = random.Random(1)
    for _ in range(200):
        pts = [(rng.randint(0, 6), rng.randint(0, 6) / 6) for _ in range(rng.randint(0, 25))]
        assert set(nondominated(pts)) == brute_force(pts)


def test_nondominated_orders_by_accuracy_best_first():
    pts = [(3.0, 0.8), (1.0, 0.5), (2.0, 0.7), (2.5, 0.6)]
    assert nondominated(pts) == [0, 2, 1]  # (2.5, 0.6) is dominated by (2.0, 0.7)


def test_same_cost_keeps_only_the_more_accurate():
    assert nondominated([(1.0, 0.5), (1.0, 0.7)]) == [1]


def test_same_accuracy_keeps_only_the_cheaper():
    assert nondominated([(2.0, 0.7), (1.0, 0.7)]) == [1]


def test_exact_duplicates_both_stay_and_share_a_rank():
    recs = [rec(0, 0.7, 100), rec(1, 0.7, 100), rec(2, 0.9, 300), rec(3, 0.5, 50), rec(4, 0.6, 200)]
    p = build("s", "sqlite://", recs, "flops", resolution=(64, 64), num_classes=10)
    assert [(pt.record.number, pt.rank) for pt in p.front] == [(2, 1), (0, 2), (1, 2), (3, 4)]


def test_single_trial_is_its_own_front():
    assert nondominated([(5.0, 0.1)]) == [0]
    assert [r.number for r in front([rec(7, 0.4, 123)])] == [7]


def test_no_points_no_front():
    assert nondominated([]) == []


def test_front_ignores_pruned_failed_and_budget_rejected_trials():
    recs = [rec(0, 0.6, 100), rec(1, 0.95, 50, state="PRUNED"), rec(2, None, 10, state="FAIL"),
            rec(3, 0.99, 10, over_budget=True), rec(4, 0.7, None)]  # 4 has no FLOPs recorded
    assert [r.number for r in front(recs)] == [0]


def test_all_pruned_has_an_empty_front():
    recs = [rec(0, 0.4, 100, state="PRUNED"), rec(1, 0.5, 200, state="PRUNED")]
    assert front(recs) == [] and front(recs, "params") == []


def test_front_on_params_uses_params():
    recs = [rec(0, 0.7, 100, params=10), rec(1, 0.8, 50, params=20)]
    assert {r.number for r in front(recs, "flops")} == {1}
    assert {r.number for r in front(recs, "params")} == {0, 1}


def test_nearest_tier_is_nearest_on_a_log_scale():
    p = build("s", "sqlite://", [rec(0, 0.5, 1)], "flops", resolution=(256, 256), num_classes=1000)
    assert nearest_tier(418_183_680, p.tiers) == "XXS ×1.00"
    assert nearest_tier(1_500_000_000, p.tiers).startswith("S ×")  # 1.5G: 1.43x XS but 0.74x S
    assert nearest_tier(700_000_000, p.tiers).startswith("XS ×")
    assert nearest_tier(None, p.tiers) == "-"


# ---------------------------------------------------------------------- a real study
def test_study_front_is_the_non_dominated_completed_trials(study):
    name, storage = study
    p = compute(name, storage, "flops")
    done = [pt for pt in p.points]
    assert len(done) == len(SEARCHED) + 2  # searched + baselines; no pruned, failed or rejected trial
    expect = brute_force([(pt.x, pt.accuracy) for pt in done])
    assert {pt.record.number for pt in p.front} == {done[i].record.number for i in expect}
    assert all(pt.record.state == "COMPLETE" and not pt.record.over_budget for pt in p.points)
    assert {pt.record.number for pt in p.pruned} == {8, 9}
    assert p.counts == {"COMPLETE": 8, "PRUNED": 2, "FAIL": 1, "REJECTED": 2}
    tiers = {t.name: t for t in p.tiers}
    assert tiers["mobilevit_xxs"].trial == "0" and tiers["mobilevit_xs"].trial == "1"  # refs
    assert tiers["mobilevit_s"].trial is None and tiers["mobilevit_s"].flops > tiers["mobilevit_xs"].flops


def test_table_rows_have_every_column(study):
    rows = table(compute(*study, "params"))
    assert rows and set(rows[0]) == {"rank", "trial", "accuracy", "flops", "params", "latency", "arch", "paper tier"}
    assert rows[0]["rank"] == 1 and rows[0]["latency"] == "-"
    assert [r["accuracy"] for r in rows] == sorted((r["accuracy"] for r in rows), reverse=True)


def test_figure_shows_trials_front_and_presets(study):
    p = compute(*study, "flops")
    fig = pareto_figure(p)
    traces = {t.name.split(" (")[0]: t for t in fig.data}
    assert len(traces["completed"].x) == len(SEARCHED)
    assert len(traces["pruned, accuracy when stopped"].x) == 2
    assert len(traces["Pareto front"].x) == len(p.front)
    assert list(traces["paper presets, same proxy"].text) == ["mobilevit_xxs", "mobilevit_xs"]
    assert any("d64/80/96" in str(c[1]) for c in traces["completed"].customdata)  # hover shows the architecture
    rules = [a.text for a in fig.layout.annotations]
    assert any(t.startswith("S (paper preset") for t in rules)  # S was not trained here
    assert fig.layout.xaxis.type == ("log" if p.log_x else "linear")


def test_log_x_only_when_the_range_is_wide():
    narrow = build("s", "sqlite://", [rec(0, 0.5, 450_000_000), rec(1, 0.6, 600_000_000)], "flops",
                   resolution=(256, 256), num_classes=1000)
    assert not narrow.log_x  # what is shown, preset rules included, spans 418M..2.03G: 4.9x
    wide = build("s", "sqlite://", [rec(0, 0.5, 10_000_000), rec(1, 0.6, 600_000_000)], "flops",
                 resolution=(256, 256), num_classes=1000)
    assert wide.log_x


# ---------------------------------------------------------------------- errors
def test_latency_axis_without_measurements_says_how_to_measure(study):
    with pytest.raises(StudyError, match=r"mvsearch latency --study demo"):
        compute(*study, "latency")


def test_unknown_axis_lists_the_known_ones(study):
    with pytest.raises(MvsearchError, match=r"unknown axis 'flop' \(did you mean 'flops'\?\); known: flops, params, latency"):
        compute(*study, "flop")
    with pytest.raises(MvsearchError, match=r"--y: unknown axis 'loss'"):
        compute(*study, "flops", "loss")


def test_no_such_study(study):
    with pytest.raises(StudyError, match="no study named 'dem'"):
        compute("dem", study[1])


def test_empty_study(tmp_path):
    with pytest.raises(StudyError, match="has no trials yet"):
        compute(*empty_study(tmp_path))


def test_all_pruned_study_explains_there_is_no_front(tmp_path):
    with pytest.raises(StudyError, match=r"no completed trial .*\(2 pruned, 1 failed"):
        compute(*all_pruned_study(tmp_path))


# ---------------------------------------------------------------------- the command
def test_cli_prints_the_table_and_writes_the_page(study, tmp_path):
    name, storage = study
    out = tmp_path / "p.html"
    res = CliRunner().invoke(main, ["pareto", "--study", name, "--storage", storage, "-o", str(out)])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert "rank" in lines[1] and "paper tier" in lines[1]
    assert lines[2].split()[0] == "1" and lines[-1] == f"wrote {out}"
    assert "Plotly.newPlot" in out.read_text()


def test_cli_json_is_one_object_with_the_front_and_axes(study, tmp_path):
    name, storage = study
    res = CliRunner().invoke(main, ["pareto", "--study", name, "--storage", storage, "--x", "params", "--json",
                                    "-o", str(tmp_path / "p.html")])
    assert res.exit_code == 0, res.output
    obj = json.loads(res.output)
    assert obj["x"]["name"] == "params" and obj["y"]["name"] == "accuracy"
    assert obj["front"][0]["rank"] == 1 and obj["front"][0]["arch"]["num_classes"] == 10
    assert {f["number"] for f in obj["front"]} == {p.record.number for p in compute(name, storage, "params").front}


@pytest.mark.parametrize("args, message", [
    (["--x", "speed"], "error: --x: unknown axis 'speed'"),
    (["--x", "latency"], "error: no latency measured for study 'demo'"),
    (["--study", "nope"], "error: no study named 'nope'"),
    (["--backend", "tflite"], "error: --backend: must be one of torch, onnxruntime, got 'tflite'"),
    pytest.param(["--png"], "error: PNG export needs kaleido",
                 marks=pytest.mark.skipif(importlib.util.find_spec("kaleido") is not None, reason="kaleido installed")),
])
def test_cli_errors_are_one_line_and_write_nothing(study, tmp_path, args, message):
    name, storage = study
    out = tmp_path / "p.html"
    argv = ["pareto", "--storage", storage, "-o", str(out)] + (["--study", name] if "--study" not in args else [])
    res = CliRunner().invoke(main, argv + args)
    assert res.exit_code == 2
    assert res.output.startswith(message) and res.output.count("\n") == 1, res.output
    assert not out.exists()


def test_cli_runs_as_a_real_process(study, tmp_path):
    name, storage = study
    out = tmp_path / "real.html"
    proc = subprocess.run([sys.executable, "-m", "mvsearch", "pareto", "--study", name, "--storage", storage,
                           "-o", str(out), "--json"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["html"] == str(out) and out.stat().st_size > 1_000_000  # plotly.js inline
