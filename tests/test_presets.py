"""The table of paper reference figures: every preset reproduces its params and FLOPs exactly."""
from __future__ import annotations

import pytest

from mvsearch.arch.presets import PAPER_FLOPS, PAPER_PARAMS, PRESETS, REFERENCE, get_preset
from mvsearch.budget import PAPER_TIERS
from mvsearch.core.errors import ArchError
from mvsearch.cost.traced import count


@pytest.mark.parametrize("name", list(REFERENCE))
def test_each_preset_measures_exactly_its_reference_figures(name):
    # the golden check: fvcore's count of the built network equals the table, to the last FLOP
    ref = REFERENCE[name]
    c = count(ref.arch, 256, thop=False)
    assert (c.params, c.flops, c.resolution) == (ref.params, ref.flops, (256, 256))


def test_the_figures_are_the_published_ones():
    # pinned independently of the table: 1.27M / 2.32M / 5.58M params, 0.42 / 1.05 / 2.03 GFLOPs,
    # ImageNet-1k top-1 69.0 / 74.8 / 78.4 (the paper's Table 1)
    got = {r.name: (r.params, round(r.flops / 1e9, 2), r.top1) for r in REFERENCE.values()}
    assert got == {"mobilevit_xxs": (1_272_024, 0.42, 69.0), "mobilevit_xs": (2_317_848, 1.05, 74.8),
                   "mobilevit_s": (5_578_632, 2.03, 78.4)}


def test_presets_follow_the_reference_table():
    xxs, xs, s = PRESETS["mobilevit_xxs"], PRESETS["mobilevit_xs"], PRESETS["mobilevit_s"]
    assert [st.channels for st in (xxs.layer1, xxs.layer2, *xxs.vit_stages())] == [16, 24, 48, 64, 80]
    assert [st.channels for st in (xs.layer1, xs.layer2, *xs.vit_stages())] == [32, 48, 64, 80, 96]
    assert [st.channels for st in (s.layer1, s.layer2, *s.vit_stages())] == [32, 64, 96, 128, 160]
    assert [st.dim for st in s.vit_stages()] == [144, 192, 240]
    assert [st.depth for st in xs.vit_stages()] == [2, 4, 3]
    assert all(st.ffn_dim == 2 * st.dim and st.heads == 4 and st.patch == (2, 2) and st.kernel == 3
               for cfg in PRESETS.values() for st in cfg.vit_stages())
    assert (xxs.expansion, xs.expansion, s.expansion) == (2, 4, 4)
    assert (xxs.last_channels, xs.last_channels, s.last_channels) == (320, 384, 640)


def test_presets_params_flops_and_tiers_are_views_of_the_one_table():
    assert list(PRESETS) == list(PAPER_PARAMS) == list(PAPER_FLOPS) == list(REFERENCE)
    for name, ref in REFERENCE.items():
        assert ref.name == name and PRESETS[name] is ref.arch
        assert (PAPER_PARAMS[name], PAPER_FLOPS[name], PAPER_TIERS[name]) == (ref.params, ref.flops, ref.flops)


def test_the_table_is_ordered_smallest_first():
    refs = list(REFERENCE.values())
    assert [r.flops for r in refs] == sorted(r.flops for r in refs)
    assert [r.params for r in refs] == sorted(r.params for r in refs)


def test_get_preset_changes_only_the_classifier():
    cfg = get_preset("mobilevit_xs", 10)
    assert cfg.num_classes == 10 and cfg.with_num_classes(1000) == PRESETS["mobilevit_xs"]
    assert get_preset("mobilevit_xs") is PRESETS["mobilevit_xs"]


def test_unknown_preset_lists_known_ones():
    with pytest.raises(ArchError, match="known: mobilevit_xxs, mobilevit_xs, mobilevit_s"):
        get_preset("mobilevit_m")
