"""The Wilson score interval against known cases (Brown, Cai & DasGupta 2001; Newcombe 1998)."""
from __future__ import annotations

import math
import random

import pytest

from mvsearch.core.interval import difference, format_interval, half_width, wilson


def test_known_cases():
    # Newcombe (1998), Table I: 81/263 -> 0.2553..0.3662 (method 3, Wilson score without correction)
    lo, hi = wilson(81 / 263, 263)
    assert lo == pytest.approx(0.2553, abs=5e-5) and hi == pytest.approx(0.3662, abs=5e-5)
    # 15/148 -> 0.0624..0.1605
    lo, hi = wilson(15 / 148, 148)
    assert lo == pytest.approx(0.0624, abs=5e-5) and hi == pytest.approx(0.1605, abs=5e-5)
    # 0/20 -> 0..0.1611 (the interval never leaves [0, 1], unlike the normal approximation)
    lo, hi = wilson(0.0, 20)
    assert lo == 0.0 and hi == pytest.approx(0.1611, abs=5e-5)
    lo, hi = wilson(1.0, 29)
    assert hi == 1.0 and lo == pytest.approx(0.8830, abs=5e-5)


def test_half_width_at_the_validation_sizes_the_tool_uses():
    # the README's figures: 512 images at ~75% -> about ±3.7 points; 2,000 images -> about ±1.9
    assert 100 * half_width(0.75, 512) == pytest.approx(3.73, abs=0.02)
    assert 100 * half_width(0.75, 2000) == pytest.approx(1.90, abs=0.02)
    assert half_width(0.5, 4000) < half_width(0.5, 1000)


def test_coverage_is_about_95_percent():
    rng = random.Random(0)
    n, p, hits, draws = 300, 0.8, 0, 2000
    for _ in range(draws):
        k = sum(rng.random() < p for _ in range(n))
        lo, hi = wilson(k / n, n)
        hits += lo <= p <= hi
    assert 0.93 <= hits / draws <= 0.97


def test_format_and_bad_input():
    assert format_interval(0.7617, 512) == "76.2% ±3.7"
    assert format_interval(0.7617, None) == "76.2%"
    assert format_interval(None, 512) == "-"
    for acc, n in ((0.5, 0), (math.nan, 10), (0.5, -3)):
        with pytest.raises(ValueError):
            wilson(acc, n)


@pytest.mark.parametrize("a, n_a, b, n_b, lo, hi", [
    # Newcombe (1998), Statistics in Medicine 17:873-890, Table II, method 10 (hybrid score)
    (56, 70, 48, 80, 0.0524, 0.3339),
    (9, 10, 3, 10, 0.1705, 0.8090),
    (6, 7, 2, 7, 0.0582, 0.8062),
    (5, 56, 0, 29, -0.0381, 0.1926),
])
def test_difference_matches_newcombes_published_hybrid_score_intervals(a, n_a, b, n_b, lo, hi):
    got = difference(a / n_a, n_a, b / n_b, n_b)
    assert got == pytest.approx((lo, hi), abs=6e-5)


def test_difference_is_antisymmetric_and_contains_the_observed_gap():
    lo, hi = difference(0.76, 512, 0.72, 512)
    assert lo < 0.04 < hi
    assert difference(0.72, 512, 0.76, 512) == pytest.approx((-hi, -lo))
    assert difference(0.76, 4096, 0.72, 4096)[0] > lo  # more images, a narrower interval
