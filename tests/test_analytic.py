"""The analytic counter (mvsearch/analytic.py) equals fvcore exactly: presets and random architectures."""
from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import pytest

from mvsearch.cost.analytic import analytic_cost, analytic_flops
from mvsearch.arch.presets import PRESETS, get_preset
from mvsearch.arch.config import VIT_STAGES
from mvsearch.arch.geometry import stage_maps
from mvsearch.arch.presets import PAPER_FLOPS, PAPER_PARAMS
from mvsearch.cost.traced import count, fvcore_flops
from mvsearch.model.network import build_model
from mvsearch.space.loader import load_space

MOBILE = load_space(Path(__file__).resolve().parent.parent / "spaces" / "mobile.yaml")

# 64..112 px, square and not; most non-square ones leave odd maps that 2-pixel patches do not tile
# (72 -> 36, 18, 9, 5, 3); cases 3 and 7 (stem stride 1, like the proxy) keep a 64 px side
RESOLUTIONS = [64, (72, 88), (104, 64), 64, (112, 72), (64, 96), (88, 72), (64, 80)]
N_RANDOM = 12
ACTIVATION_CASES = (6, 9)  # both resize: (88, 72) and (72, 88)


def _random_case(i: int):
    """The i-th random architecture of spaces/mobile.yaml and its resolution (two with stem stride 1)."""
    rng = random.Random(1000 + i)
    cfg = MOBILE.from_params(MOBILE.random_params(rng))
    if i in (3, 7):  # the proxy's stem stride (a network as costly as at twice the resolution)
        cfg = dataclasses.replace(cfg, stem_stride=1, num_classes=10)
    return cfg, RESOLUTIONS[i % len(RESOLUTIONS)]


def _resized(cfg, res) -> bool:
    """Does some MobileViT block resize its map to a multiple of the patch?"""
    maps = stage_maps(cfg, res)
    return any(maps[n][0] % getattr(cfg, n).patch[0] or maps[n][1] % getattr(cfg, n).patch[1] for n in VIT_STAGES)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_at_256_equal_fvcore(name):
    # PAPER_* are fvcore's own counts of the presets: tests/test_cost.py pins count(preset) to them
    a = analytic_cost(get_preset(name), 256)
    assert (a.params, a.flops, a.resolution) == (PAPER_PARAMS[name], PAPER_FLOPS[name], (256, 256))


@pytest.mark.parametrize("i", range(N_RANDOM))
def test_random_mobile_architectures_equal_fvcore(i):
    cfg, res = _random_case(i)
    model = build_model(cfg)
    a = analytic_cost(cfg, res)
    assert a.params == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert analytic_flops(cfg, res) == a.flops
    if i in ACTIVATION_CASES:  # count() traces twice (FLOPs and activations): only on a few
        c = count(model, res, thop=False)
        assert (a.flops, a.activations) == (c.flops, c.activations)
    else:
        assert a.flops == fvcore_flops(model, res)


def test_activations_are_checked_on_a_resized_non_square_case():
    assert any(_resized(*_random_case(i)) and not isinstance(_random_case(i)[1], int) for i in ACTIVATION_CASES)


def test_the_random_cases_cover_what_matters():
    cases = [_random_case(i) for i in range(N_RANDOM)]
    assert any(_resized(cfg, res) for cfg, res in cases)  # bilinear resize before unfold / after fold
    assert any(not _resized(cfg, res) for cfg, res in cases)
    assert any(not isinstance(res, int) for _, res in cases)  # non-square inputs
    assert any(cfg.stem_stride == 1 for cfg, _ in cases) and any(cfg.stem_stride == 2 for cfg, _ in cases)
    assert any(cfg.expansion == 1 for cfg, _ in cases)  # MV2 blocks without the expand conv
    assert {cfg.layer3.kernel for cfg, _ in cases} == {1, 3, 5}
    assert len({cfg.layer4.patch for cfg, _ in cases}) >= 3


def test_cost_grows_with_resolution_and_is_symmetric_in_transposition():
    cfg = get_preset("mobilevit_xxs")
    assert analytic_flops(cfg, 128) < analytic_flops(cfg, (128, 192)) < analytic_flops(cfg, 256)
    # with square patches, an H x W input costs what W x H does
    assert analytic_flops(cfg, (128, 192)) == analytic_flops(cfg, (192, 128))
    assert analytic_cost(cfg, 128).params == analytic_cost(cfg, 256).params

