"""The pure parts of bench/bench_search_quality.py: hypervolume, equal-compute arithmetic, win/tie/loss."""
from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

_PATH = Path(__file__).resolve().parents[1] / "bench" / "bench_search_quality.py"
_spec = importlib.util.spec_from_file_location("bench_search_quality", _PATH)
bsq = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = bsq  # its dataclasses look their module up there
_spec.loader.exec_module(bsq)


def rec(state="COMPLETE", curve=(0.5,), baseline=False, flops=0, acc=None, n=512, ref="1.5G/0", preset=None):
    """A stand-in for TrialRecord with the fields the bench reads."""
    return SimpleNamespace(state=state, accuracy_curve=list(curve), baseline=baseline, flops=flops,
                           accuracy=curve[-1] if acc is None and curve else acc, val_samples=n, ref=ref,
                           preset=preset)


# ---------------------------------------------------------------- hypervolume (reference (1, 0.1))
def test_hypervolume_of_nothing_is_zero():
    assert bsq.hypervolume([]) == 0.0


def test_hypervolume_of_one_point_is_its_rectangle():
    assert bsq.hypervolume([(0.5, 0.6)]) == pytest.approx(0.5 * 0.5)


def test_hypervolume_of_two_front_points_is_the_union():
    # rectangles 0.8 x 0.4 and 0.4 x 0.7 overlap in 0.4 x 0.4: 0.32 + 0.28 - 0.16
    assert bsq.hypervolume([(0.2, 0.5), (0.6, 0.8)]) == pytest.approx(0.44)


def test_dominated_points_add_nothing():
    front = [(0.2, 0.5), (0.6, 0.8)]
    assert bsq.hypervolume(front + [(0.7, 0.5), (0.6, 0.8), (0.9, 0.79)]) == pytest.approx(0.44)


def test_points_at_or_beyond_the_reference_add_nothing():
    assert bsq.hypervolume([(1.0, 0.9), (1.2, 0.9), (0.3, 0.1), (0.3, 0.05)]) == 0.0
    assert bsq.hypervolume([(0.5, 0.6), (1.5, 0.95), (0.1, 0.02)]) == pytest.approx(0.25)


def test_hypervolume_ignores_order_and_ties_in_cost():
    pts = [(0.6, 0.8), (0.2, 0.5), (0.2, 0.3)]
    assert bsq.hypervolume(pts) == pytest.approx(bsq.hypervolume(sorted(pts))) == pytest.approx(0.44)
    assert bsq.hypervolume([(0.2, 0.5), (0.2, 0.8)]) == pytest.approx(0.8 * 0.7)


def test_hypervolume_is_at_most_the_reference_box():
    assert bsq.hypervolume([(0.0, 1.0)]) == pytest.approx(0.9)


# ---------------------------------------------------------------- equal compute
def test_compute_counts_searched_complete_and_pruned_epochs_only():
    recs = [rec(curve=(0.1, 0.2, 0.3)), rec("PRUNED", (0.1,)), rec("PRUNED", (0.1, 0.2)),
            rec(curve=(0.1, 0.2, 0.3), baseline=True), rec("FAIL", (0.1,)), rec("RUNNING", ())]
    assert bsq.compute_epochs(recs) == 3 + 1 + 2


def test_random_gets_enough_unpruned_trials_to_reach_the_target():
    assert bsq.trials_to_match(7, 0, 3) == 3  # 9 epochs >= 7, 6 would not be
    assert bsq.trials_to_match(6, 0, 3) == 2
    assert bsq.trials_to_match(7, 6, 3) == 1  # a resumed or topped-up study: only the rest
    assert bsq.trials_to_match(7, 9, 3) == 0


def test_trials_to_match_refuses_a_zero_epoch_trial():
    with pytest.raises(ValueError, match="epochs"):
        bsq.trials_to_match(7, 0, 0)


# ---------------------------------------------------------------- win / tie / loss
def test_verdict_needs_disjoint_wilson_intervals():
    assert bsq.verdict(0.90, 512, 0.70, 512) == "win"
    assert bsq.verdict(0.70, 512, 0.90, 512) == "loss"
    assert bsq.verdict(0.76, 512, 0.73, 512) == "tie"  # +3 points: within +-3.8 each
    assert bsq.verdict(0.76, 512, 0.76, 512) == "tie"


def test_verdict_uses_each_side_image_count():
    # +6 points: a tie on 256 images each, a win on 10,000 each
    assert bsq.verdict(0.80, 256, 0.74, 256) == "tie"
    assert bsq.verdict(0.80, 10_000, 0.74, 10_000) == "win"


def test_versus_takes_the_most_accurate_complete_trial_at_no_more_flops():
    recs = [rec(flops=400, acc=0.60, baseline=True, preset="mobilevit_xxs", ref="1.5G/0"),
            rec(flops=1000, acc=0.70, baseline=True, preset="mobilevit_xs", ref="1.5G/1"),
            rec(flops=900, acc=0.95, ref="1.5G/2"),
            rec(flops=950, acc=0.72, ref="1.5G/3"),
            rec("PRUNED", flops=800, acc=0.99, ref="1.5G/4"),  # pruned: never a candidate
            rec(flops=1200, acc=0.99, ref="1.5G/5")]  # more FLOPs than either preset
    xxs, xs = bsq.versus(recs)
    assert (xxs.preset, xxs.best_ref, xxs.verdict) == ("mobilevit_xxs", None, "no candidate")
    assert (xs.preset, xs.best_ref, xs.best_accuracy, xs.verdict) == ("mobilevit_xs", "1.5G/2", 0.95, "win")


def test_tally_counts_other_verdicts_apart():
    assert bsq.tally(["win", "tie", "loss", "tie", "no candidate", "tie (no validation count)"]) == \
        {"win": 1, "tie": 3, "loss": 1, "other": 1}


# ---------------------------------------------------------------- the interval of the mean ratio
def test_t_interval_matches_students_t():
    stats = pytest.importorskip("scipy.stats")
    xs = [1.1, 0.9, 1.3]
    mean, lo, hi = bsq.t_interval(xs)
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / 2)
    half = stats.t.ppf(0.975, 2) * sd / math.sqrt(3)
    assert mean == pytest.approx(1.1)
    assert (lo, hi) == pytest.approx((mean - half, mean + half), rel=1e-4)


def test_t_interval_of_one_value_has_no_bounds():
    mean, lo, hi = bsq.t_interval([1.2])
    assert mean == 1.2 and math.isnan(lo) and math.isnan(hi)


def test_the_win_rate_counts_only_comparisons_that_had_a_candidate():
    # a preset below every searched model's FLOPs has nothing to be compared with: not a loss
    assert bsq._rate({"win": 3, "tie": 0, "loss": 0, "other": 3}).startswith("win rate 3/3 = 100%, 95% Wilson [44%,")
    assert bsq._rate({"win": 1, "tie": 1, "loss": 2, "other": 0}).startswith("win rate 1/4 = 25%")
    assert bsq._rate({"win": 0, "tie": 0, "loss": 0, "other": 2}) == "no comparison"
