"""mvsearch.core.units: one number format (k/M/G) for every command and page."""
from __future__ import annotations

import pytest

from mvsearch.core.units import format_count, format_flops


@pytest.mark.parametrize("n, text", [(954_234, "954k"), (1_272_024, "1.27M"), (62_430, "62.4k"), (999, "999"),
                                     (5_970_000, "5.97M"), (2_033_383_424, "2.03G"), (None, "-")])
def test_counts_read_in_k_m_g_with_three_significant_digits(n, text):
    assert format_count(n) == text


@pytest.mark.parametrize("n, text", [(418_183_680, "0.42G"), (1_036_606_848, "1.04G"), (21_538_560, "21.5M"),
                                     (2_160_000, "2.16M"), (None, "-")])
def test_flops_read_in_g_from_a_tenth_of_a_gflop_and_in_m_below(n, text):
    assert format_flops(n) == text


def test_no_other_module_formats_numbers_its_own_way():
    # the old second formatter (two decimals, capital K) is gone; every reader imports these two
    import mvsearch.core.units as units

    assert not hasattr(units, "human")
