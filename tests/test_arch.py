"""ArchConfig: validation messages, round trips, geometry (the presets: tests/test_presets.py)."""
from __future__ import annotations

import dataclasses
import json
import random

import pytest

from mvsearch.arch.presets import PRESETS
from mvsearch.arch.config import ArchConfig, MV2Stage, ViTStage, load_arch
from mvsearch.arch.geometry import check_resolution, num_patches, parse_resolution, stage_maps
from mvsearch.core.errors import ArchError


def random_arch(rng: random.Random, num_classes: int = 10) -> ArchConfig:
    """A random valid MobileViT: small widths, any heads/patch/odd kernel."""
    def vit() -> ViTStage:
        heads = rng.choice([1, 2, 4])
        dim = heads * rng.choice([4, 8, 12])
        return ViTStage(channels=rng.choice([8, 12, 16]), dim=dim, depth=rng.choice([1, 2]),
                        ffn_dim=rng.choice([dim, 2 * dim, 24]), heads=heads,
                        patch=rng.choice([(1, 1), (2, 2), (2, 1), (1, 2)]), kernel=rng.choice([1, 3, 5]))
    return ArchConfig(
        stem=rng.choice([8, 16]), layer1=MV2Stage(rng.choice([8, 16]), rng.choice([1, 2])),
        layer2=MV2Stage(rng.choice([8, 16]), rng.choice([1, 2])), layer3=vit(), layer4=vit(), layer5=vit(),
        expansion=rng.choice([1, 2, 3.5, 4]), last_channels=rng.choice([16, 32]), num_classes=num_classes,
    )


@pytest.mark.parametrize("name", list(PRESETS))
def test_yaml_and_json_round_trip_is_lossless(name):
    cfg = PRESETS[name]
    assert ArchConfig.from_yaml(cfg.to_yaml()) == cfg
    assert ArchConfig.from_json(cfg.to_json()) == cfg
    assert ArchConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_random_configs_round_trip():
    rng = random.Random(0)
    for _ in range(20):
        cfg = random_arch(rng)
        assert ArchConfig.from_yaml(cfg.to_yaml()) == cfg


def test_patch_accepts_string_and_list_forms():
    d = PRESETS["mobilevit_xxs"].to_dict()
    d["layer3"]["patch"] = "2x1"
    d["layer4"]["patch"] = [1, 2]
    cfg = ArchConfig.from_dict(d)
    assert cfg.layer3.patch == (2, 1) and cfg.layer4.patch == (1, 2)


def _with(stage: str, **kw) -> dict:
    d = PRESETS["mobilevit_xxs"].to_dict()
    d[stage].update(kw)
    return d


@pytest.mark.parametrize("data, fragments", [
    (_with("layer4", dim=100, heads=8), ["layer4.dim", "divisible by heads", "dim=100", "heads=8"]),
    (_with("layer3", kernel=4), ["layer3.kernel", "odd", "4"]),
    (_with("layer5", channels=0), ["layer5.channels", "positive", "0"]),
    (_with("layer2", blocks=-1), ["layer2.blocks", "positive", "-1"]),
    (_with("layer3", depth="2"), ["layer3.depth", "integer", "'2'"]),
    (_with("layer3", dims=64), ["layer3.dims", "unknown key", "'dim'"]),
    (_with("layer3", patch="2by2"), ["layer3.patch", "2x2"]),
    ({**PRESETS["mobilevit_xxs"].to_dict(), "expansoin": 2}, ["expansoin", "unknown key", "'expansion'"]),
    ({**PRESETS["mobilevit_xxs"].to_dict(), "stem": 16.5}, ["stem", "integer", "16.5"]),
    ({**PRESETS["mobilevit_xxs"].to_dict(), "dropout": 1.5}, ["dropout", "[0, 1)", "1.5"]),
])
def test_invalid_values_name_field_rule_and_value(data, fragments):
    with pytest.raises(ArchError) as err:
        ArchConfig.from_dict(data)
    msg = str(err.value)
    assert "\n" not in msg
    for frag in fragments:
        assert frag in msg


def test_missing_stage_is_reported():
    d = PRESETS["mobilevit_xxs"].to_dict()
    del d["layer5"]
    with pytest.raises(ArchError, match="layer5: required key is missing"):
        ArchConfig.from_dict(d)


def test_dataclass_constructor_validates_too():
    with pytest.raises(ArchError, match="layer3.dim"):
        dataclasses.replace(PRESETS["mobilevit_s"], layer3=ViTStage(96, 145, 2, 288))


def test_geometry_at_256_and_proxy_resolutions():
    xxs = PRESETS["mobilevit_xxs"]
    assert stage_maps(xxs, 256) == {"layer3": (32, 32), "layer4": (16, 16), "layer5": (8, 8)}
    assert num_patches(xxs, 64) == {"layer3": 16, "layer4": 4, "layer5": 1}
    assert stage_maps(xxs, "64x48")["layer5"] == (2, 2)
    low = dataclasses.replace(xxs, stem_stride=1)
    assert num_patches(low, 64) == {"layer3": 64, "layer4": 16, "layer5": 4}


def test_patch_larger_than_map_is_rejected_at_resolution():
    d = _with("layer5", patch=[4, 4])
    cfg = ArchConfig.from_dict(d)
    check_resolution(cfg, 256)  # 8x8 map: fine
    with pytest.raises(ArchError, match=r"layer5.patch: .*4x4 is larger than the 2x2 map at input 64x64"):
        check_resolution(cfg, 64)


@pytest.mark.parametrize("text, expected", [("256", (256, 256)), ("256x192", (256, 192)), (128, (128, 128)),
                                            ([64, 48], (64, 48))])
def test_parse_resolution(text, expected):
    assert parse_resolution(text) == expected


@pytest.mark.parametrize("bad", ["abc", "0", "-3x4", "12x"])
def test_parse_resolution_rejects_bad_values(bad):
    with pytest.raises(ArchError, match="resolution"):
        parse_resolution(bad)


def test_load_arch_errors_name_the_file(tmp_path):
    with pytest.raises(ArchError, match="no such file"):
        load_arch(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("layer1: [unclosed\n")
    with pytest.raises(ArchError, match=r"bad.yaml:\d+: not valid YAML"):
        load_arch(bad)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("- 1\n- 2\n")
    with pytest.raises(ArchError, match="wrong.yaml: an architecture must be a mapping"):
        load_arch(wrong)
