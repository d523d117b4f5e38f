"""mvsearch.analysis.rank_stats: Kendall's tau-b and Spearman's rho as scipy computes them, and the
seed-stratified bootstrap behind their intervals."""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats

from mvsearch.analysis import rank_stats as rs
from mvsearch.core.errors import StudyError


def noisy(n: int, seed: int, *, ref_seeds: int = 2, noise: float = 0.5) -> tuple[list[list[float]], list[list[float]]]:
    """n architectures of true quality q: the proxy sees q + noise (one seed), the reference q + noise/3 (K seeds)."""
    rng = np.random.default_rng(seed)
    q = rng.normal(size=n)
    proxy = [[float(v + noise * rng.normal())] for v in q]
    ref = [[float(v + noise / 3 * rng.normal()) for _ in range(ref_seeds)] for v in q]
    return proxy, ref


def datasets():
    rng = np.random.default_rng(7)
    x = rng.normal(size=25)
    y = x + rng.normal(size=25)
    yield "no ties", x, y
    yield "ties on both sides", np.round(x), np.round(2 * y) / 2  # many equal values on each side
    yield "ties on one side", np.array([1, 1, 2, 2, 3, 3, 4, 5.0]), np.array([0.3, 0.1, 0.4, 0.2, 0.9, 0.5, 0.6, 0.8])
    yield "reversed", np.arange(9.0), -np.arange(9.0) ** 3
    yield "accuracies", np.array([0.41, 0.52, 0.52, 0.60, 0.47, 0.66]), np.array([0.62, 0.70, 0.75, 0.75, 0.61, 0.80])


@pytest.mark.parametrize("name, x, y", list(datasets()), ids=[d[0] for d in datasets()])
def test_tau_b_and_rho_agree_with_scipy(name, x, y):
    assert rs.kendall_tau_b(x, y) == pytest.approx(scipy.stats.kendalltau(x, y).statistic, abs=1e-12)
    assert rs.spearman_rho(x, y) == pytest.approx(scipy.stats.spearmanr(x, y).statistic, abs=1e-12)
    np.testing.assert_allclose(rs.average_ranks(x), scipy.stats.rankdata(x, method="average"))


def test_the_batched_rows_equal_one_computation_per_row():
    rng = np.random.default_rng(3)
    x, y = np.round(rng.normal(size=(40, 12)), 1), np.round(rng.normal(size=(40, 12)), 1)
    taus, rhos = rs.tau_b_rows(x, y), rs.rho_rows(x, y)
    for i in range(40):
        assert taus[i] == pytest.approx(scipy.stats.kendalltau(x[i], y[i]).statistic, abs=1e-12)
        assert rhos[i] == pytest.approx(scipy.stats.spearmanr(x[i], y[i]).statistic, abs=1e-12)


def test_a_side_with_every_value_tied_is_undefined_not_zero():
    assert math.isnan(rs.kendall_tau_b([1, 1, 1, 1], [1, 2, 3, 4]))
    assert math.isnan(rs.spearman_rho([1, 2, 3, 4], [5, 5, 5, 5]))


def test_the_estimate_correlates_each_sides_seed_means():
    proxy, ref = noisy(15, 1, ref_seeds=3)
    a = rs.agreement(proxy, ref, resamples=200)
    means = [float(np.mean(v)) for v in ref]
    assert a.tau.value == pytest.approx(scipy.stats.kendalltau([p[0] for p in proxy], means).statistic)
    assert a.rho.value == pytest.approx(scipy.stats.spearmanr([p[0] for p in proxy], means).statistic)
    assert a.tau.archs == 15


def test_the_interval_covers_the_estimate():
    for seed in range(5):
        proxy, ref = noisy(20, seed)
        a = rs.agreement(proxy, ref, resamples=1000, seed=seed)
        for c in (a.tau, a.rho):
            assert c.lo <= c.value <= c.hi, (seed, c)
            assert c.lo < c.hi  # noisy data: a real interval, not a point


def test_the_bootstrap_is_deterministic_for_a_seed():
    proxy, ref = noisy(20, 2)
    a, b = rs.agreement(proxy, ref, seed=5), rs.agreement(proxy, ref, seed=5)
    assert a == b
    c = rs.agreement(proxy, ref, seed=6)
    assert (c.tau.lo, c.tau.hi) != (a.tau.lo, a.tau.hi) and c.tau.value == a.tau.value


def test_the_interval_narrows_with_more_architectures():
    widths = {}
    for n in (10, 80):
        proxy, ref = noisy(n, 4)
        a = rs.agreement(proxy, ref, resamples=1000)
        widths[n] = a.tau.hi - a.tau.lo
    assert widths[80] < 0.6 * widths[10], widths


def test_a_perfectly_monotone_proxy_has_tau_one_and_a_degenerate_interval():
    ref = [[0.3 + 0.05 * i] for i in range(8)]
    proxy = [[(0.3 + 0.05 * i) ** 3 / 2] for i in range(8)]  # monotone, not linear
    a = rs.agreement(proxy, ref, resamples=1000)
    assert (a.tau.value, a.tau.lo, a.tau.hi) == (1.0, 1.0, 1.0)
    assert a.rho.value == pytest.approx(1.0) and a.rho.lo == pytest.approx(1.0) and a.rho.hi == pytest.approx(1.0)


def test_each_architectures_seeds_are_resampled_too():
    # the proxy orders the reference's seed means perfectly, but the reference's two seeds disagree on
    # neighbours: resampling the seeds inside each architecture must widen the interval below 1
    ref = [[i + 0.0, i + 3.0] for i in range(0, 20, 2)]  # means 1.5, 3.5, ...: seed values overlap neighbours
    proxy = [[float(np.mean(v))] for v in ref]
    a = rs.agreement(proxy, ref, resamples=1000)
    assert a.tau.value == 1.0
    assert a.tau.lo < 0.95
    # the same means without their seed spread: every replicate orders them perfectly
    flat = rs.agreement(proxy, [[float(np.mean(v))] for v in ref], resamples=1000)
    assert flat.tau.lo == 1.0


def test_within_groups_correlates_inside_each_group_and_skips_small_ones():
    proxy, ref = noisy(14, 8)
    groups = ["small"] * 6 + ["large"] * 6 + ["tiny"] * 2
    out = rs.within_groups(proxy, ref, groups, resamples=200)
    assert list(out) == ["small", "large", "tiny"]
    assert out["tiny"] is None
    for g, sl in (("small", slice(0, 6)), ("large", slice(6, 12))):
        want = scipy.stats.kendalltau([p[0] for p in proxy[sl]], [np.mean(v) for v in ref[sl]]).statistic
        assert out[g].tau.value == pytest.approx(want) and out[g].tau.archs == 6


def test_the_ceiling_correlates_seed_zero_with_seed_one():
    _, ref = noisy(12, 9)
    ref = ref + [[0.5]]  # an architecture with one seed is left out
    a = rs.seed_ceiling(ref, resamples=200)
    want = scipy.stats.kendalltau([v[0] for v in ref[:12]], [v[1] for v in ref[:12]]).statistic
    assert a.tau.value == pytest.approx(want) and a.tau.archs == 12
    assert a.tau.lo <= a.tau.value <= a.tau.hi


def test_too_few_architectures_is_refused():
    with pytest.raises(StudyError, match="at least 3 architectures"):
        rs.agreement([[1.0], [2.0]], [[1.0], [2.0]])


def test_an_undefined_correlation_shows_as_undefined():
    a = rs.agreement([[1.0], [1.0], [1.0]], [[1.0], [2.0], [3.0]], resamples=100)
    assert math.isnan(a.tau.value) and a.tau.shown() == "undefined" and a.tau.to_dict()["value"] is None
