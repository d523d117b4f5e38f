"""Scaling families (mvsearch/arch/scaling.py) and landing them on FLOP targets (mvsearch/cost/ladder.py)."""
from __future__ import annotations

import dataclasses
import math

import pytest

from mvsearch.arch.config import ArchConfig, MV2Stage, ViTStage
from mvsearch.arch.presets import PAPER_FLOPS, PRESETS
from mvsearch.arch.scaling import (FAMILIES, apply_family, check_family, factors, round_width, scale_depth,
                                   scale_resolution, scale_width)
from mvsearch.core.errors import ArchError, BudgetError, MvsearchError
from mvsearch.core.limits import MAX_DEPTH, MAX_RESOLUTION, MAX_WIDTH
from mvsearch.cost.analytic import analytic_cost
from mvsearch.cost.ladder import geometric_targets, solve_ladder, solve_point

XXS = PRESETS["mobilevit_xxs"]


def _one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert text and "\n" not in text
    return text


def _off_grid() -> ArchConfig:
    # widths that are not multiples of 8, heads that are not powers of 2
    vit = [ViTStage(channels=c, dim=d, depth=2, ffn_dim=2 * d, heads=h)
           for c, d, h in ((44, 60, 3), (60, 80, 5), (76, 96, 4))]
    return ArchConfig(layer1=MV2Stage(20, 1), layer2=MV2Stage(28, 2), layer3=vit[0], layer4=vit[1], layer5=vit[2],
                      stem=12, last_channels=300)


# ---------------------------------------------------------------------- rounding and the three axes
def test_round_width_is_the_timm_make_divisible_rule():
    assert round_width(36) == 40  # int(36 + 4) // 8 * 8 = 40
    assert round_width(35.5) == 32  # int(39.5) // 8 * 8 = 32, and 32 >= 0.9 * 35.5 = 31.95
    assert round_width(35.9) == 40  # rounds to 32 too, but 32 < 0.9 * 35.9 = 32.31: one divisor more
    assert round_width(11) == 16  # nearest is 8, but 8 < 0.9 * 11 = 9.9: one divisor more
    assert round_width(3) == 8  # never below the divisor
    assert round_width(80, 40) == 80 and round_width(96, 40) == 120  # 96 -> 80 < 86.4 -> 120


def test_width_x1_5_of_xxs():
    c = scale_width(XXS, 1.5)
    # stem 16*1.5 = 24 -> 24; layer1 16 -> 24; layer2 24*1.5 = 36 -> int(40)//8*8 = 40 (>= 32.4);
    # layer3..5 48/64/80 -> 72/96/120; dims 64/80/96 -> 96/120/144 (lcm(8, 4 heads) = 8);
    # ffn 128/160/192 -> 192/240/288; last 320 -> 480. All exact multiples of 8 except 36.
    assert (c.stem, c.layer1.channels, c.layer2.channels) == (24, 24, 40)
    assert [s.channels for s in c.vit_stages()] == [72, 96, 120]
    assert [s.dim for s in c.vit_stages()] == [96, 120, 144]
    assert [s.ffn_dim for s in c.vit_stages()] == [192, 240, 288]
    assert c.last_channels == 480


def test_width_keeps_everything_but_widths():
    c = scale_width(XXS, 1.5)
    for name in ("stem_stride", "expansion", "num_classes", "dropout", "attn_dropout", "ffn_dropout",
                 "classifier_dropout"):
        assert getattr(c, name) == getattr(XXS, name)
    assert (c.layer1.blocks, c.layer2.blocks) == (XXS.layer1.blocks, XXS.layer2.blocks)
    for new, old in zip(c.vit_stages(), XXS.vit_stages()):
        assert (new.heads, new.depth, new.patch, new.kernel) == (old.heads, old.depth, old.patch, old.kernel)


def test_width_rounds_dim_to_a_multiple_of_heads():
    c = scale_width(_off_grid(), 1.2)
    # layer4: dim 80 x 1.2 = 96 with 5 heads: multiple of lcm(8, 5) = 40 -> 80 < 0.9 * 96 -> 120
    assert c.layer4.dim == 120
    # layer3: dim 60 x 1.2 = 72 with 3 heads: lcm(8, 3) = 24 -> 72
    assert c.layer3.dim == 72
    for st in c.vit_stages():
        assert st.dim % st.heads == 0 and st.dim % 8 == 0


def test_depth_x2_and_x0_25_of_xxs():
    c = scale_depth(XXS, 2)
    assert [s.depth for s in c.vit_stages()] == [4, 8, 6]
    assert (c.layer1.blocks, c.layer2.blocks) == (2, 6)
    c = scale_depth(XXS, 0.25)  # 0.5, 1, 0.75 layers; 0.25, 0.75 blocks: all 1 (half up, at least 1)
    assert [s.depth for s in c.vit_stages()] == [1, 1, 1]
    assert (c.layer1.blocks, c.layer2.blocks) == (1, 1)
    assert scale_width(c, 1) == c and c.layer3.dim == XXS.layer3.dim


def test_depth_rounds_half_up():
    c = scale_depth(XXS, 0.5)  # L 2/4/3 -> 1, 2, 1.5 -> 2; blocks 1/3 -> 0.5 -> 1, 1.5 -> 2
    assert [s.depth for s in c.vit_stages()] == [1, 2, 2]
    assert (c.layer1.blocks, c.layer2.blocks) == (1, 2)


def test_resolution_rounds_to_multiples_of_32():
    assert scale_resolution(256, 1.125) == 288
    assert scale_resolution(256, 1.0625) == 288  # 272 = 8.5 x 32: half up
    assert scale_resolution(256, 1.06) == 256  # 271.4 -> 8.48 x 32
    assert scale_resolution(256, 0.01) == 32  # never below 32
    assert scale_resolution(256, 1.1, divisor=8) == 280  # 281.6 -> 35.2 x 8
    assert scale_resolution(200, 1) == 200  # a factor of 1 leaves an off-grid side alone


# ---------------------------------------------------------------------- families
def test_registry_names():
    assert list(FAMILIES) == ["width", "depth", "resolution", "compound", "dwr"]
    assert check_family("dwr") is FAMILIES["dwr"]


@pytest.mark.parametrize("s", [0.1, 0.7, 1.0, 2.0, 13.5, 400.0])
@pytest.mark.parametrize("name, params", [
    ("width", {}), ("depth", {}), ("resolution", {}), ("dwr", {}), ("dwr", {"alpha": 0.3}), ("dwr", {"alpha": 0.0}),
    ("compound", {}), ("compound", {"alpha": 1.4, "beta": 1.05, "gamma": 1.2}),
])
def test_factors_multiply_to_s(name, params, s):
    d, w, r = factors(name, s, **params)
    assert d * w * w * r * r == pytest.approx(s, rel=1e-9)


def test_factors_of_each_family():
    s = 4.0
    assert factors("width", s) == pytest.approx((1, 2, 1))
    assert factors("depth", s) == pytest.approx((4, 1, 1))
    assert factors("resolution", s) == pytest.approx((1, 1, 2))
    assert factors("dwr", s) == pytest.approx((s ** 0.1, s ** 0.4, s ** 0.05))
    assert factors("dwr", s, alpha=0.5) == pytest.approx((s ** 0.25, s ** 0.25, s ** 0.125))
    assert factors("dwr", s, alpha=None) == factors("dwr", s)  # None means the default


def test_compound_at_phi_one():
    s = 1.2 * 1.1 ** 2 * 1.15 ** 2  # phi = log s / log(alpha beta^2 gamma^2) = 1
    assert factors("compound", s) == pytest.approx((1.2, 1.1, 1.15), rel=1e-12)
    d, w, r = factors("compound", (1.3 * 1.2 ** 2) ** 2, alpha=1.3, beta=1.2, gamma=1.0)  # phi = 2, other bases
    assert (d, w, r) == pytest.approx((1.69, 1.44, 1.0))


@pytest.mark.parametrize("name", list(FAMILIES))
@pytest.mark.parametrize("cfg, res", [(XXS, 256), (_off_grid(), 200)])
def test_s_one_returns_the_base(name, cfg, res):
    assert factors(name, 1.0) == (1.0, 1.0, 1.0)
    out, r = apply_family(name, cfg, res, 1)
    assert out == cfg and r == res


def test_apply_family_combines_the_axes():
    s = 1.2 * 1.1 ** 2 * 1.15 ** 2  # compound, phi = 1
    out, res = apply_family("compound", XXS, 256, s)
    assert out == scale_depth(scale_width(XXS, 1.1), 1.2)
    assert res == 288  # 256 x 1.15 = 294.4 -> 9.2 x 32 -> 288
    assert [st.depth for st in out.vit_stages()] == [2, 5, 4]  # 2.4, 4.8, 3.6


def test_unknown_family_names_the_close_match():
    for call in (lambda: factors("widht", 2), lambda: apply_family("widht", XXS, 256, 2),
                 lambda: solve_point("widht", XXS, 256, 1e9)):
        with pytest.raises(ArchError) as exc:
            call()
        text = _one_line(exc)
        assert "did you mean width?" in text and "known: width, depth, resolution, compound, dwr" in text
    with pytest.raises(ArchError) as exc:
        check_family("zzz")
    assert "did you mean" not in _one_line(exc)


@pytest.mark.parametrize("name, params, words", [
    ("dwr", {"alpha": 1.5}, "[0, 1]"),
    ("dwr", {"alpha": float("nan")}, "finite number"),
    ("dwr", {"alpha": "0.8"}, "finite number"),
    ("compound", {"alpha": 1.0, "beta": 0.9, "gamma": 1.0}, "must exceed 1"),
    ("compound", {"gamma": -1.15}, "positive finite"),
    ("compound", {"delta": 2.0}, "known: alpha, beta, gamma"),
    ("width", {"alpha": 0.8}, "takes none"),
])
def test_bad_family_parameters(name, params, words):
    with pytest.raises(ArchError) as exc:
        factors(name, 2.0, **params)
    assert words in _one_line(exc) and _one_line(exc).startswith(name)


@pytest.mark.parametrize("s", [0, -2.0, float("nan"), float("inf"), True, "2"])
def test_bad_multiplier(s):
    with pytest.raises(ArchError) as exc:
        apply_family("width", XXS, 256, s)
    assert "multiplier s must be a positive finite number" in _one_line(exc)


@pytest.mark.parametrize("name, s, bound", [
    ("width", 1e6, f"{MAX_WIDTH:,}"), ("depth", 1000.0, f"{MAX_DEPTH}"), ("resolution", 100.0, f"{MAX_RESOLUTION:,}"),
    ("dwr", 1e12, f"{MAX_WIDTH:,}"), ("compound", 1e300, f"{MAX_WIDTH:,}"),
])
def test_absurd_multiplier_is_one_line_naming_family_and_s(name, s, bound):
    with pytest.raises(ArchError) as exc:
        apply_family(name, XXS, 256, s)
    text = _one_line(exc)
    assert text.startswith(f"{name} family at s={s:g}") and bound in text
    assert len(text) < 250  # a width of 10^43 is written 1.06e+45, not in 45 digits


def test_a_factor_that_would_overflow_is_refused():
    # depth exponent log 2 / log(2 * 0.75^2) = 5.9: s = 1e300 asks for d = e^4000
    with pytest.raises(ArchError) as exc:
        apply_family("compound", XXS, 256, 1e300, alpha=2.0, beta=0.75, gamma=1.0)
    assert "compound family at s=1e+300" in _one_line(exc) and "beyond mvsearch's bounds" in _one_line(exc)


def test_shrinking_below_a_fitting_patch_is_refused():
    with pytest.raises(ArchError) as exc:
        apply_family("resolution", XXS, 256, 0.001)  # input 32: layer5's map is 1x1, its patch 2x2
    assert "resolution family at s=0.001" in _one_line(exc) and "patch" in _one_line(exc)


# ---------------------------------------------------------------------- the ladder
@pytest.mark.parametrize("name", list(FAMILIES))
def test_ladder_base_target_reproduces_the_preset(name):
    p = solve_point(name, XXS, 256, PAPER_FLOPS["mobilevit_xxs"])
    assert p.flops == 418_183_680 and p.rel_error == 0.0
    assert p.arch == XXS and p.resolution == 256
    assert p.multiplier == 1.0 and p.factors == (1.0, 1.0, 1.0)


def test_width_ladder_from_xxs_lands_and_grows():
    targets = geometric_targets(0.2e9, 3.3e9, 8)
    points = solve_ladder("width", XXS, 256, targets)
    assert [p.target_flops for p in points] == targets
    flops = [p.flops for p in points]
    assert flops == sorted(flops) and len(set(flops)) == len(flops)
    for p in points:
        assert abs(p.rel_error) < 0.06, p  # widths step by 8: ~5% at the small end, ~1% above 0.5G
        # the point is what its multiplier gives, and its cost is the analytic count
        assert apply_family("width", XXS, 256, p.multiplier) == (p.arch, p.resolution)
        assert p.factors == factors("width", p.multiplier)
        c = analytic_cost(p.arch, p.resolution)
        assert (p.flops, p.params, p.activations) == (c.flops, c.params, c.activations)
        assert p.rel_error == pytest.approx(p.flops / p.target_flops - 1)


# Resolution moves in steps of 32 px (a side 224 -> 256 is +31% FLOPs), so families that scale the
# input land only as close as those steps allow: dwr rarely (r = s^0.05), compound often.
@pytest.mark.parametrize("name, tol", [("width", 0.06), ("dwr", 0.11), ("compound", 0.18)])
@pytest.mark.parametrize("preset", list(PRESETS))
def test_ladder_lands_near_each_target(name, tol, preset):
    points = solve_ladder(name, PRESETS[preset], 256, geometric_targets(0.2e9, 3.3e9, 6))
    assert max(abs(p.rel_error) for p in points) < tol
    assert sum(abs(p.rel_error) < 0.05 for p in points) >= 3  # most land within a few percent


@pytest.mark.parametrize("name, preset, target", [
    ("width", "mobilevit_xxs", 0.75e9), ("compound", "mobilevit_xs", 0.6e9), ("dwr", "mobilevit_s", 3.0e9),
    ("depth", "mobilevit_xs", 1.5e9),
])
def test_landed_point_is_the_closest_reachable(name, preset, target):
    cfg = PRESETS[preset]
    p = solve_point(name, cfg, 256, target)
    # brute force: a fine geometric scan of s around target / base (FLOPs grow with s, so the
    # closest network lies within a factor of 3 of that)
    s0 = target / PAPER_FLOPS[preset]
    best = math.inf
    for i in range(1201):
        s = s0 * 9 ** (i / 1200 - 0.5)
        arch, res = apply_family(name, cfg, 256, s)
        best = min(best, abs(math.log(analytic_cost(arch, res).flops / target)))
    assert abs(math.log(p.flops / target)) <= best + 1e-12
    assert best < 0.2  # the scan did reach the target's neighbourhood


def test_target_below_the_smallest_network():
    # depth bottoms out at 1 layer and 1 block everywhere: 268,286,464 FLOPs from XXS at 256
    smallest = analytic_cost(scale_depth(XXS, 0.01), 256).flops
    assert smallest == 268_286_464
    with pytest.raises(BudgetError) as exc:
        solve_point("depth", XXS, 256, 0.2e9)
    text = _one_line(exc)
    assert "below" in text and "smallest" in text and f"{smallest:,}" in text
    assert solve_point("depth", XXS, 256, smallest).flops == smallest  # the edge itself is reachable


def test_target_above_the_largest_network():
    with pytest.raises(BudgetError) as exc:
        solve_point("width", XXS, 256, 500e9)
    text = _one_line(exc)
    assert "above" in text and "largest" in text and f"bound of {MAX_WIDTH:,}" in text


@pytest.mark.parametrize("target", [0, -1e9, float("nan"), float("inf"), True, "1G", 1e15])
def test_bad_target(target):
    with pytest.raises(BudgetError) as exc:
        solve_ladder("width", XXS, 256, [1e9, target])
    assert "target FLOPs" in _one_line(exc)


def test_errors_are_mvsearch_errors():
    # the CLI prints an MvsearchError as one line and exits 2
    assert issubclass(BudgetError, MvsearchError) and issubclass(ArchError, MvsearchError)


def test_geometric_targets():
    t = geometric_targets(1e8, 1e9, 3)
    assert t == [100_000_000, 316_227_766, 1_000_000_000]
    t = geometric_targets(0.2e9, 3.3e9, 6)
    assert t[0] == 200_000_000 and t[-1] == 3_300_000_000
    ratios = [b / a for a, b in zip(t, t[1:])]
    assert max(ratios) == pytest.approx(min(ratios), rel=1e-8)


@pytest.mark.parametrize("lo, hi, points", [(1e9, 1e8, 3), (1e9, 1e9, 3), (0, 1e9, 3), (1e8, 1e9, 1), (5, 6, 5)])
def test_geometric_targets_bad_input(lo, hi, points):
    with pytest.raises(BudgetError) as exc:
        geometric_targets(lo, hi, points)
    _one_line(exc)


def test_ladder_point_to_dict_round_trips_the_arch():
    p = solve_point("dwr", XXS, 256, 1e9)
    d = p.to_dict()
    assert ArchConfig.from_dict(d["arch"]) == p.arch and d["factors"] == list(p.factors)
    assert dataclasses.is_dataclass(p) and d["flops"] == p.flops
