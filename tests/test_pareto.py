"""Pareto fronts: the non-dominated set, ranks, tiers, the figure and `mvsearch pareto`."""
from __future__ import annotations

import importlib.util
import json
import math
import random
import subprocess
import sys

import optuna
import pytest
from click.testing import CliRunner
from optuna.trial import TrialState, create_trial

from mvsearch.cli.main import main
from mvsearch.core.errors import MvsearchError, StudyError
from mvsearch.analysis.figures import pareto_figure
from mvsearch.analysis.pareto import build, compute, mark_ties, nearest_tier, table
from mvsearch.search.front import front, nondominated
from mvsearch.search.record import TrialRecord
from tests._studies import SEARCHED, all_pruned_study, empty_study, make_study


def rec(number: int, acc: float | None, flops: int | None, *, state: str = "COMPLETE", params: int | None = None,
        over_budget: bool = False, baseline: bool = False, preset: str | None = None,
        val_samples: int | None = None) -> TrialRecord:
    return TrialRecord(number=number, state=state, accuracy=acc, flops=flops, params=params or flops,
                       thop_macs=None, activations=None, arch=None, tier=None, baseline=baseline, preset=preset,
                       over_budget=over_budget, duration_s=None, val_samples=val_samples)


def wilson95(p: float, n: int) -> tuple[float, float]:
    """The Wilson score interval, written out here from its formula (Wilson 1927), z = 1.96."""
    z = 1.959963984540054
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


# the noisy front: 512 validation images give about ±3.5 points at 80%, so 80% and 79% overlap
# (indistinguishable) while 79% and 59% do not
NOISY = ((0.80, 3_000_000), (0.79, 2_000_000), (0.59, 1_000_000))


def noisy_study(tmp_path, name: str = "noisy") -> tuple[str, str]:
    """Three trials measured on 512 validation images, all on the front (NOISY), and one older trial
    without ``val_samples`` that is dominated."""
    storage = f"sqlite:///{tmp_path / f'{name}.db'}"
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    study.set_user_attr("resolution", [64, 64])
    study.set_user_attr("num_classes", 10)
    for (acc, flops), n in zip(NOISY + ((0.5, 2_500_000),), (512, 512, 512, None)):
        study.add_trial(create_trial(state=TrialState.COMPLETE, value=acc, user_attrs=TrialRecord(
            flops=flops, params=flops // 10, resolution=[64, 64], val_samples=n).to_attrs()))
    return name, storage


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


def test_a_front_point_within_the_noise_of_the_next_more_accurate_is_marked():
    recs = [rec(i, acc, flops, val_samples=512) for i, (acc, flops) in enumerate(NOISY)]
    p = build("s", "sqlite://", recs, "flops", resolution=(64, 64), num_classes=10)
    assert [(pt.record.number, pt.rank, pt.tie_with) for pt in p.front] == [(0, 1, None), (1, 2, 1), (2, 3, None)]
    for pt in p.front:
        assert pt.interval == pytest.approx(wilson95(pt.accuracy, 512))


def test_ties_look_one_step_up_the_front_past_duplicates():
    # ranks 1, 2, 2, 4: the point of rank 4 is compared with the duplicates of rank 2, not with rank 1
    recs = [rec(0, 0.90, 400, val_samples=512), rec(1, 0.80, 300, val_samples=512),
            rec(2, 0.80, 300, val_samples=512), rec(3, 0.79, 200, val_samples=512)]
    p = build("s", "sqlite://", recs, "flops", resolution=(64, 64), num_classes=10)
    assert [(pt.rank, pt.tie_with) for pt in p.front] == [(1, None), (2, None), (2, None), (4, 2)]


def test_without_val_samples_no_point_is_marked():
    recs = [rec(0, 0.80, 300), rec(1, 0.79, 200, val_samples=512)]
    p = build("s", "sqlite://", recs, "flops", resolution=(64, 64), num_classes=10)
    assert [pt.tie_with for pt in p.front] == [None, None] and p.front[0].interval is None
    mark_ties(p.front)  # idempotent
    assert [pt.tie_with for pt in p.front] == [None, None]


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
    assert rows and set(rows[0]) == {"rank", "trial", "accuracy", "accuracy text", "tie", "flops", "params", "latency",
                                     "arch", "paper tier"}
    assert rows[0]["rank"] == 1 and rows[0]["latency"] == "-"
    # this study records no val_samples (an older one): the bare figure, no tie
    assert rows[0]["accuracy text"] == f"{100 * rows[0]['accuracy']:.2f}%" and {r["tie"] for r in rows} == {""}
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


def test_figure_draws_wilson_error_bars_and_hovers_the_interval(tmp_path):
    p = compute(*noisy_study(tmp_path), "flops")
    fig = pareto_figure(p)
    traces = {t.name.split(" (")[0]: t for t in fig.data}
    done = traces["completed"]
    assert done.error_y.visible and done.error_y.symmetric is False
    by_x = {pt.x: pt for pt in p.points}
    for x, y, up, down, hover in zip(done.x, done.y, done.error_y.array, done.error_y.arrayminus, done.customdata):
        n = by_x[x].record.val_samples
        if n is None:  # the older trial: no bar, the bare figure
            assert up is None and down is None and hover[8] == f"{100 * y:.2f}%"
            continue
        lo, hi = wilson95(y, n)
        assert (y - down, y + up) == (pytest.approx(lo), pytest.approx(hi))
        assert hover[8].startswith(f"{100 * y:.1f}% ±{50 * (hi - lo):.1f} (95%: {100 * lo:.1f}–{100 * hi:.1f}% "
                                   f"on 512 validation images)")
    tied = list(done.x).index(2_000_000)  # 79%, within the noise of rank 1 (80%)
    assert done.customdata[tied][8].endswith("<br>indistinguishable from rank 1 (intervals overlap)")
    assert "accuracy %{customdata[8]}" in done.hovertemplate
    assert "bars: 95% intervals" in fig.layout.title.subtitle.text
    assert traces["Pareto front"].error_y.array is None  # the front's points are drawn (with bars) above


def test_figure_of_an_older_study_has_no_error_bars(study):
    fig = pareto_figure(compute(*study, "flops"))
    assert all(t.error_y.array is None for t in fig.data)
    assert "bars" not in fig.layout.title.subtitle.text


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
    # no val_samples in this older study: the bare figures, and the line under the table says why
    best = max(acc for _, acc in SEARCHED)  # 0.79, above the baselines' 0.78
    assert lines[2].split()[2] == f"{100 * best:.2f}%"
    assert lines[-2] == ("accuracies without an interval: these trials did not record how many validation images "
                         "measured them")


def test_cli_table_shows_intervals_and_marks_indistinguishable_points(tmp_path):
    name, storage = noisy_study(tmp_path)
    out = tmp_path / "p.html"
    res = CliRunner().invoke(main, ["pareto", "--study", name, "--storage", storage, "-o", str(out)])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[1].split()[:4] == ["rank", "trial", "accuracy", "≈"]
    rows = lines[2:5]
    for line, (acc, _) in zip(rows, NOISY):
        lo, hi = wilson95(acc, 512)
        assert f" {100 * acc:.1f}% ±{50 * (hi - lo):.1f} " in line, line
    # 79% is one point below 80%: within the noise of 512 images; 59% is twenty points below 79%
    assert "≈" not in rows[0] and rows[1].split()[4] == "≈1" and "≈" not in rows[2]
    assert lines[1].index("≈") == rows[1].index("≈")  # under its header
    assert lines[5] == ("± half the 95% Wilson interval on 512 validation images; ≈k: indistinguishable from rank k, "
                        "the next more accurate front point (their intervals overlap)")
    assert lines[6] == f"wrote {out}"


def test_cli_json_rows_carry_the_interval_and_the_tie(tmp_path):
    name, storage = noisy_study(tmp_path)
    res = CliRunner().invoke(main, ["pareto", "--study", name, "--storage", storage, "--json",
                                    "-o", str(tmp_path / "p.html")])
    assert res.exit_code == 0, res.output
    front = json.loads(res.output)["front"]
    assert [(f["rank"], f["tie_with"], f["val_samples"]) for f in front] == [(1, None, 512), (2, 1, 512), (3, None, 512)]
    for f, (acc, _) in zip(front, NOISY):
        assert (f["accuracy_lo"], f["accuracy_hi"]) == pytest.approx(wilson95(acc, 512))
        assert f["accuracy_lo"] < f["accuracy"] < f["accuracy_hi"]


def test_cli_json_is_one_object_with_the_front_and_axes(study, tmp_path):
    name, storage = study
    res = CliRunner().invoke(main, ["pareto", "--study", name, "--storage", storage, "--x", "params", "--json",
                                    "-o", str(tmp_path / "p.html")])
    assert res.exit_code == 0, res.output
    obj = json.loads(res.output)
    assert obj["x"]["name"] == "params" and obj["y"]["name"] == "accuracy"
    assert obj["front"][0]["rank"] == 1 and obj["front"][0]["arch"]["num_classes"] == 10
    # an older study: no validation size recorded, so no interval and no tie
    assert {(f["accuracy_lo"], f["accuracy_hi"], f["val_samples"], f["tie_with"]) for f in obj["front"]} == {
        (None, None, None, None)}
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
