"""The Wilson score interval against known cases (Brown, Cai & DasGupta 2001; Newcombe 1998)."""
from __future__ import annotations

import math
import random

import pytest

from mvsearch.core.interval import format_interval, half_width, wilson


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
