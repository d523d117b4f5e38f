"""The proxy settings: every stage attends at the default, the proxy net differs from the deployed one
only in stem stride and classes, and resolutions that collapse a stage are flagged."""
from __future__ import annotations

import dataclasses

import pytest

from mvsearch.arch.presets import PRESETS, get_preset
from mvsearch.arch.geometry import check_resolution, num_patches, stage_maps
from mvsearch.core.errors import TrainError
from mvsearch.proxy.settings import ProxySettings, collapse_warnings, proxy_arch
from mvsearch.proxy.run import run_proxy
from tests.test_train import tiny_arch


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_default_proxy_gives_every_stage_more_than_one_patch(name):
    p = ProxySettings()
    arch = proxy_arch(get_preset(name), p, 10)
    check_resolution(arch, p.resolution)
    assert collapse_warnings(arch, p.resolution) == []
    assert num_patches(arch, p.resolution) == {"layer3": 64, "layer4": 16, "layer5": 4}


def test_proxy_maps_equal_the_deployed_net_at_twice_the_resolution():
    p = ProxySettings()
    deployed = get_preset("mobilevit_xxs")
    assert stage_maps(proxy_arch(deployed, p, 10), p.resolution) == stage_maps(deployed, 2 * p.resolution)


def test_proxy_net_differs_only_in_stem_stride_and_classes():
    deployed = get_preset("mobilevit_s")
    arch = proxy_arch(deployed, ProxySettings(), 7)
    diff = {f.name for f in dataclasses.fields(deployed) if getattr(deployed, f.name) != getattr(arch, f.name)}
    assert diff == {"stem_stride", "num_classes"} and arch.stem_stride == 1 and arch.num_classes == 7


def test_collapse_warnings_flag_single_patch_stages():
    xxs = get_preset("mobilevit_xxs")
    (w,) = collapse_warnings(xxs, 64)  # deployed stride 2 at 64 px: layer5 is 2x2 -> one patch
    assert w.startswith("layer5: at input 64 with stem stride 2 the 2x2 map holds a single 2x2 patch (N = 1)")
    assert "stem stride 1" in w
    assert [x.split(":")[0] for x in collapse_warnings(xxs, 32)] == ["layer4", "layer5"]
    assert [x.split(":")[0] for x in collapse_warnings(xxs, 32, stem_stride=1)] == ["layer5"]
    assert collapse_warnings(xxs, 128) == [] and collapse_warnings(xxs, 64, stem_stride=1) == []


def test_settings_round_trip_and_validate():
    p = ProxySettings(data="synthetic", epochs=1, train_samples=None)
    assert ProxySettings.from_dict(p.to_dict()) == p
    with pytest.raises(TrainError, match="unknown key 'epoch'"):
        ProxySettings.from_dict({"epoch": 3})
    with pytest.raises(TrainError, match="stem_stride: must be 1 or 2"):
        ProxySettings(stem_stride=4)
    with pytest.raises(TrainError, match="batch_size: must be a positive integer"):
        ProxySettings(batch_size=0)
    tc = p.train_config(seed=5, device="cpu")
    assert (tc.epochs, tc.seed, tc.label_smoothing, tc.lr) == (1, 5, 0.1, p.lr)


def test_run_proxy_trains_the_proxy_net_on_the_data():
    p = ProxySettings(data="synthetic:classes=3,samples=96,size=16", resolution=32, epochs=1, batch_size=32,
                      train_samples=None, val_samples=24)
    run = run_proxy(tiny_arch(num_classes=1000), p, seed=1, device="cpu", threads=1)
    assert run.arch.num_classes == 3 and run.arch.stem_stride == 1
    assert run.model.classifier[-1].out_features == 3
    assert len(run.split.val_y) == 24 and run.result.train_samples == 72
    assert run.warnings and run.warnings[0].startswith("layer5")  # 32 px collapses layer5


def test_a_validation_split_too_small_for_1_5_points_is_said_with_its_fix_or_why_the_data_cannot():
    from mvsearch.core.interval import half_width
    from mvsearch.proxy.settings import VAL_FOR_1_5_POINTS, ProxySettings, interval_note

    assert half_width(0.75, VAL_FOR_1_5_POINTS) == pytest.approx(0.0153, abs=5e-4)  # about ±1.5 points
    assert interval_note(ProxySettings(train_samples=1024, val_samples=VAL_FOR_1_5_POINTS), 60_000) is None
    small = interval_note(ProxySettings(train_samples=1024, val_samples=512), 60_000)
    assert "±3.7 points" in small and "val_samples 3,072 keeps it within about ±1.5" in small
    tight = interval_note(ProxySettings(train_samples=256, val_samples=128), 512)
    assert "±7.4 points" in tight and "the data has 512 training images, too few" in tight
