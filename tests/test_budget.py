"""Budgets (mvsearch/budget.py): parsing FLOPs, params, tiers and durations; the budget gate."""
from __future__ import annotations

import pytest

from mvsearch.budget import PAPER_TIERS, Budget, check_reachable, make_budget, parse_budget
from mvsearch.core.units import format_count, format_flops, parse_duration, parse_flops, parse_params
from mvsearch.arch.presets import PAPER_FLOPS
from mvsearch.core.errors import BudgetError


@pytest.mark.parametrize("text,flops", [
    ("1.5GFLOPs", 1_500_000_000),
    ("1.5G", 1_500_000_000),
    ("400M", 400_000_000),
    ("400MFLOPs", 400_000_000),
    ("1.5e9", 1_500_000_000),
    ("2e+9", 2_000_000_000),
    ("418183680", 418_183_680),
    ("0.42g", 420_000_000),
    (" 1.5 GFLOPs ", 1_500_000_000),
    ("1.05Gflop", 1_050_000_000),
    ("500k", 500_000),
    ("1_000_000", 1_000_000),
])
def test_flop_budgets_parse(text, flops):
    assert parse_flops(text) == flops


@pytest.mark.parametrize("text,params", [
    ("2.3M", 2_300_000), ("2.3Mparams", 2_300_000), ("500k", 500_000), ("2300000", 2_300_000), ("1.2e6", 1_200_000),
])
def test_param_caps_parse(text, params):
    assert parse_params(text) == params


@pytest.mark.parametrize("text,why", [
    ("abc", "cannot read 'abc' as FLOPs"),
    ("1.5 GB", "cannot read"),
    ("G", "cannot read"),
    ("1.5X", "cannot read"),
    ("", "cannot read"),
    ("0", "must be positive"),
    ("0G", "must be positive"),
    ("-1G", "must be positive"),
    ("-400M", "must be positive"),
    ("0.5", "less than one FLOP"),
    ("1e400", "too large"),
    ("nan", "cannot read"),
    ("inf", "cannot read"),
])
def test_bad_flop_budgets_fail_with_one_line(text, why):
    with pytest.raises(BudgetError) as exc:
        parse_flops(text)
    msg = str(exc.value)
    assert msg.startswith("--budget: ") and why in msg and "\n" not in msg
    assert "1.5GFLOPs" in msg or "positive" in msg  # an example of what works, or the rule


@pytest.mark.parametrize("text", ["lots", "0", "-2M", "2.3MFLOPs"])
def test_bad_param_caps_fail(text):
    with pytest.raises(BudgetError, match=r"^--max-params: "):
        parse_params(text)


def test_one_budget_is_one_tier_from_zero():
    b = parse_budget("1.5GFLOPs")
    assert [(t.label, t.flops, t.lower) for t in b.tiers] == [("1.5G", 1_500_000_000, 0)]
    assert not b.multi and b.max_flops == 1_500_000_000 and b.max_params is None


def test_several_budgets_make_contiguous_tiers_in_order():
    b = parse_budget("2.0G,0.42G, 1.05G")  # any order, spaces allowed
    assert [(t.label, t.flops, t.lower) for t in b.tiers] == [
        ("0.42G", 420_000_000, 0), ("1.05G", 1_050_000_000, 420_000_000), ("2G", 2_000_000_000, 1_050_000_000)]
    assert b.multi and b.tier_of(500_000_000).label == "1.05G" and b.tier_of(3_000_000_000) is None
    assert b.tier("2G").contains(2_000_000_000) and not b.tier("2G").contains(1_050_000_000)
    with pytest.raises(BudgetError, match="unknown tier '3G'; tiers: 0.42G, 1.05G, 2G"):
        b.tier("3G")


def test_paper_tiers_are_the_presets_fvcore_flops():
    b = parse_budget(tiers="paper", max_params="2.3M")
    assert PAPER_TIERS == PAPER_FLOPS
    assert [t.flops for t in b.tiers] == sorted(PAPER_FLOPS.values())
    assert [t.label for t in b.tiers] == ["0.42G", "1.05G", "2.03G"]
    assert b.max_params == 2_300_000
    assert parse_budget(tiers=" Paper ").tiers == b.tiers


@pytest.mark.parametrize("kwargs,why", [
    (dict(budget=None), "no budget: pass --budget"),
    (dict(budget="  "), "no budget"),
    (dict(budget="1G,,2G"), "empty entry"),
    (dict(budget="1G,"), "empty entry"),
    (dict(budget="1G,1000M"), "given twice"),
    (dict(budget="1G,abc"), "cannot read 'abc'"),
    (dict(budget="1G", tiers="paper"), "either --budget or --tiers"),
    (dict(tiers="fancy"), "unknown tier set 'fancy'; known: paper"),
    (dict(budget="1G", max_params="0"), "--max-params: must be positive"),
])
def test_bad_budget_combinations_fail_with_one_line(kwargs, why):
    with pytest.raises(BudgetError) as exc:
        parse_budget(**kwargs)
    assert why in str(exc.value) and "\n" not in str(exc.value)


def test_make_budget_refuses_no_budget():
    with pytest.raises(BudgetError, match="at least one"):
        make_budget([])


def test_gate_single_tier_and_param_cap():
    b = parse_budget("1G", max_params="2M")
    ok = b.check(1_000_000_000, 2_000_000)  # on the limit is within budget
    assert ok.ok and ok.reason == "" and all(v <= 0 for v in ok.constraints.values())
    over = b.check(1_200_000_000, 1_000_000)
    assert not over.ok and over.reason == "1.2G FLOPs > budget 1G" and over.constraints["flops"] > 0
    fat = b.check(500_000_000, 2_500_000)
    assert not fat.ok and "2.5M params > max 2M" in fat.reason and fat.constraints["params"] > 0
    assert fat.constraints["flops"] <= 0


def test_gate_multi_tier_refuses_candidates_below_their_band():
    b = parse_budget("0.42G,1.05G")
    hi = b.tier("1.05G")
    small = b.check(400_000_000, 1, hi)  # fits the budget but belongs to the cheaper tier
    assert not small.ok and "below tier 1.05G" in small.reason and small.constraints["band"] > 0
    mid = b.check(800_000_000, 1, hi)
    assert mid.ok and all(v <= 0 for v in mid.constraints.values())
    assert b.check(400_000_000, 1, b.tier("0.42G")).ok


def test_a_budget_below_the_cheapest_architecture_says_what_the_cheapest_costs():
    with pytest.raises(BudgetError) as exc:
        check_reachable(parse_budget("900k"), min_flops=950_720, max_flops=7_132_096, min_params=1, where="space 'tiny'")
    msg = str(exc.value)
    assert "below the cheapest architecture of space 'tiny'" in msg and "951k FLOPs = 950,720" in msg
    # with tiers, the lowest one must be reachable
    with pytest.raises(BudgetError, match="budget 900k FLOPs is below"):
        check_reachable(parse_budget("900k,5M"), min_flops=950_720, max_flops=7_132_096, min_params=1, where="x")


def test_reachable_budgets_pass():
    check_reachable(parse_budget("1M"), min_flops=950_720, max_flops=7_132_096, min_params=34_650, where="tiny")
    check_reachable(parse_budget("1M,5M", max_params="40k"), min_flops=950_720, max_flops=7_132_096,
                    min_params=34_650, where="tiny")


def test_a_tier_above_the_largest_architecture_is_refused():
    with pytest.raises(BudgetError, match=r"tier 20M cannot be reached: .* largest architecture of tiny costs 7.13M"):
        check_reachable(parse_budget("5M,10M,20M"), min_flops=950_720, max_flops=7_132_096, min_params=1, where="tiny")


def test_a_param_cap_below_the_smallest_architecture_is_refused():
    with pytest.raises(BudgetError, match=r"--max-params 30k is below the smallest architecture of tiny "
                                          r"\(34.6k params = 34,650\)"):
        check_reachable(parse_budget("5M", max_params="30k"), min_flops=950_720, max_flops=7_132_096,
                        min_params=34_650, where="tiny")


@pytest.mark.parametrize("text,seconds", [("2h", 7200), ("30m", 1800), ("90s", 90), ("1h30m", 5400), ("45", 45),
                                          ("1.5h", 5400), ("1d", 86400), ("500ms", 0.5)])
def test_durations_parse(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["abc", "2x", "0", "0s", "-1h", ""])
def test_bad_durations_fail(text):
    with pytest.raises(BudgetError, match=r"^--timeout: "):
        parse_duration(text)


def test_counts_format_as_the_paper_quotes_them():
    assert format_flops(418_183_680) == "0.42G" and format_flops(2_000_000_000) == "2G"
    assert format_flops(950_720) == "951k" and format_flops(None) == "-"
    assert format_count(2_317_848) == "2.32M" and format_count(640) == "640"


def test_budget_round_trips_through_to_dict():
    b = parse_budget("0.42G,1.05G", max_params="2.3M")
    d = b.to_dict()
    assert d["max_params"] == 2_300_000 and [t["lower"] for t in d["tiers"]] == [0, 420_000_000]
    assert Budget(tiers=b.tiers, max_params=b.max_params) == b
