"""mvsearch.search.bands: an empty tier band is refused before anything is opened."""
import pytest

from mvsearch.budget import make_budget
from mvsearch.core.errors import BudgetError
from mvsearch.cost.analytic import analytic_cost
from mvsearch.search.bands import band_member, check_bands
from mvsearch.space.loader import load_space, parse_space
from tests.test_bad_input import _fixed_tiny


def test_a_band_between_a_small_spaces_architectures_is_refused_exactly():
    space = parse_space(_fixed_tiny())
    a, b = sorted(analytic_cost(space.from_params({"stem": s}), space.resolution).flops for s in (8, 32))
    check_bands(space, make_budget([a, b]))
    with pytest.raises(BudgetError, match=r"no architecture of space 'tiny' costs .*none of its architectures"):
        check_bands(space, make_budget([a, (a + b) // 2]))


def test_a_large_space_finds_a_member_of_each_band_by_screening():
    import random

    space = load_space("tiny")
    budget = make_budget([3_000_000, 15_000_000])
    for tier in budget.tiers:
        params = band_member(space, budget, tier, random.Random(0))
        c = analytic_cost(space.from_params(params), space.resolution)
        assert tier.contains(c.flops)
