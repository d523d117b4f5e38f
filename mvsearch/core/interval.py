"""The 95% interval of an accuracy measured on n validation images (Wilson score interval).

An accuracy p = k/n from n images is a binomial proportion; its normal-approximation interval
(p ± 1.96·sqrt(p(1−p)/n)) is too narrow near 0 and 1 and can leave [0, 1]. The Wilson score
interval (Wilson 1927; recommended by Brown, Cai & DasGupta 2001, "Interval Estimation for a
Binomial Proportion") does neither:

    centre = (p + z²/2n) / (1 + z²/n)
    half   = z / (1 + z²/n) · sqrt(p(1−p)/n + z²/4n²)

with z = 1.96 for 95%. It covers only the validation-set sampling noise: two trainings with
different seeds differ by more (seed noise), which mvsearch measures with ``--seeds``.
"""
from __future__ import annotations

import math

Z95 = 1.959963984540054  # the standard normal's 97.5% quantile


def wilson(accuracy: float, n: int, z: float = Z95) -> tuple[float, float]:
    """The (low, high) Wilson score interval of ``accuracy`` measured on ``n`` images."""
    if n is None or n <= 0 or accuracy is None or not math.isfinite(accuracy):
        raise ValueError(f"wilson: need an accuracy in [0, 1] and n > 0, got {accuracy!r} and {n!r}")
    p = min(1.0, max(0.0, float(accuracy)))
    z2n = z * z / n
    centre = (p + z2n / 2) / (1 + z2n)
    half = z / (1 + z2n) * math.sqrt(p * (1 - p) / n + z2n / (4 * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def half_width(accuracy: float, n: int, z: float = Z95) -> float:
    """Half the Wilson interval's width: the ``±`` shown beside an accuracy."""
    lo, hi = wilson(accuracy, n, z)
    return (hi - lo) / 2


def format_interval(accuracy: float | None, n: int | None, *, digits: int = 1) -> str:
    """``76.2% ±3.7`` (percent, ± half the 95% Wilson interval in points), or the bare figure without n."""
    if accuracy is None:
        return "-"
    if not n:
        return f"{100 * accuracy:.{digits}f}%"
    return f"{100 * accuracy:.{digits}f}% ±{100 * half_width(accuracy, n):.{digits}f}"


def difference(a: float, n_a: int, b: float, n_b: int, z: float = Z95) -> tuple[float, float]:
    """The 95% interval of ``a - b``, two accuracies measured on ``n_a`` and ``n_b`` images.

    Newcombe's hybrid score interval (Newcombe 1998, "Interval estimation for the difference between
    independent proportions", method 10) built from the two Wilson intervals:
    ``d - sqrt((a - lo_a)² + (hi_b - b)²)`` to ``d + sqrt((hi_a - a)² + (b - lo_b)²)``. It treats the two as
    independent samples; two models judged on the *same* images are positively correlated, so for
    them it is, if anything, too wide: the safe side when asking whether one beats the other.
    """
    lo_a, hi_a = wilson(a, n_a, z)
    lo_b, hi_b = wilson(b, n_b, z)
    d = float(a) - float(b)
    return d - math.sqrt((a - lo_a) ** 2 + (hi_b - b) ** 2), d + math.sqrt((hi_a - a) ** 2 + (b - lo_b) ** 2)


__all__ = ["wilson", "half_width", "format_interval", "difference", "Z95"]
