"""The MobileViT modules: shapes, gradients, unfold/fold order, any input size."""
from __future__ import annotations

import dataclasses
import random

import pytest
import torch

from mvsearch.arch.presets import PRESETS
from mvsearch.arch.config import ViTStage
from mvsearch.arch.geometry import num_patches
from mvsearch.model.network import MobileViTBlock, build_model, set_fused_attention
from tests.test_arch import random_arch


def _tiny(num_classes: int = 7):
    # the XXS topology at a quarter of the width, for fast tests
    xxs = PRESETS["mobilevit_xxs"]
    stages = {n: dataclasses.replace(getattr(xxs, n), channels=16, dim=16, ffn_dim=32, depth=1)
              for n in ("layer3", "layer4", "layer5")}
    return dataclasses.replace(xxs, **stages, last_channels=32, num_classes=num_classes)


def _all_params_get_grad(model, x):
    model.train()
    model.zero_grad()
    model(x).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    return missing


@pytest.mark.parametrize("batch", [1, 2])
def test_forward_backward_every_parameter_gets_a_gradient(batch):
    torch.manual_seed(0)
    model = build_model(_tiny())
    x = torch.randn(batch, 3, 64, 64)
    assert model.eval()(x).shape == (batch, 7)
    assert _all_params_get_grad(model, x) == []


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_forward_at_deployment_resolution(name):
    model = build_model(PRESETS[name]).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 256, 256)).shape == (1, 1000)


@pytest.mark.parametrize("res", [(32, 32), (64, 64), (128, 128), (64, 48)])
def test_random_valid_configs_train_at_several_resolutions(res):
    rng = random.Random(hash(res) % 1000)
    for _ in range(3):
        cfg = random_arch(rng, num_classes=5)
        torch.manual_seed(0)
        model = build_model(cfg)
        x = torch.randn(2, 3, *res)
        assert model.eval()(x).shape == (2, 5), cfg.summary()
        # batch 2 in train mode: BatchNorm sees >1 value per channel (1x1 maps at 32 px need 2 samples)
        assert _all_params_get_grad(model, x) == [], cfg.summary()


def _block(patch, kernel=3, channels=8, dim=8):
    st = ViTStage(channels=channels, dim=dim, depth=1, ffn_dim=16, heads=2, patch=patch, kernel=kernel)
    return MobileViTBlock(st, 0.0, 0.0, 0.0)


@pytest.mark.parametrize("patch", [(2, 2), (1, 1), (2, 1), (1, 2), (3, 2)])
def test_unfold_keeps_patch_and_pixel_order_and_fold_inverts_it(patch):
    blk = _block(patch)
    ph, pw = patch
    h, w = 4 * ph, 3 * pw
    x = torch.arange(2 * 8 * h * w, dtype=torch.float32).reshape(2, 8, h, w)
    seq, info = blk.unfold(x)
    nh, nw = h // ph, w // pw
    assert seq.shape == (2 * ph * pw, nh * nw, 8)
    # sequence p of image b holds pixel (i, j) of every patch, patches in raster order
    for b in (0, 1):
        for i in range(ph):
            for j in range(pw):
                p = i * pw + j
                expected = x[b, :, i::ph, j::pw].reshape(8, -1).T  # [N, C], raster order of patches
                assert torch.equal(seq[b * ph * pw + p], expected)
    assert torch.equal(blk.fold(seq, info), x)


def test_map_not_multiple_of_patch_is_resized_and_restored():
    blk = _block((2, 2)).eval()
    x = torch.randn(1, 8, 7, 5)
    seq, info = blk.unfold(x)
    assert seq.shape == (4, 4 * 3, 8)  # resized to 8x6
    assert blk.fold(seq, info).shape == x.shape
    assert blk(x).shape == x.shape


@pytest.mark.parametrize("kernel", [1, 3, 5, 7])
def test_any_odd_kernel_keeps_the_map_size(kernel):
    blk = _block((2, 2), kernel=kernel).eval()
    assert blk(torch.randn(1, 8, 8, 8)).shape == (1, 8, 8, 8)


def test_fused_and_explicit_attention_compute_the_same_output():
    torch.manual_seed(0)
    model = build_model(_tiny()).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        fused = model(x)
        set_fused_attention(model, False)
        explicit = model(x)
    torch.testing.assert_close(fused, explicit, rtol=1e-4, atol=1e-5)


def test_reduced_stem_stride_keeps_every_stage_attending_at_64px():
    cfg = dataclasses.replace(_tiny(), stem_stride=1)
    assert min(num_patches(cfg, 64).values()) > 1
    assert build_model(cfg).eval()(torch.randn(1, 3, 64, 64)).shape == (1, 7)


def test_channels_last_gives_the_same_result():
    torch.manual_seed(0)
    model = build_model(_tiny()).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)
        out = model.to(memory_format=torch.channels_last)(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(ref, out, rtol=1e-4, atol=1e-5)
