"""Closed-form cost of a MobileViT: fvcore-exact FLOPs, params and activations without a model.

The search screens thousands of candidates against a budget, and building a network and tracing
it with fvcore takes about a second each. Every layer of :mod:`mvsearch.model` has a cost that is
a formula of its shapes, so this module adds up exactly what fvcore's handles count (``tests/
test_analytic.py`` checks equality with :func:`mvsearch.cost.traced.count` on random architectures):

=========================  =====================================================  ==============
op                         fvcore FLOPs (1 multiply-add = 1 FLOP)                 activations
=========================  =====================================================  ==============
conv (k x k, groups g)     out_h * out_w * c_out * (c_in / g) * k * k             out numel
BatchNorm2d (eval)         2 * numel (scale and shift)                            -
linear on [..., d_in]      numel_in * d_out                                       out numel
LayerNorm                  5 * numel                                              -
scaled-dot-product attn    Q.K^T + A.V = 2 * B*P*heads * N * N * head_dim         out numel
bilinear resize            4 * out numel                                          -
SiLU, add, softmax, mean   not counted                                            -
=========================  =====================================================  ==============

Shapes follow the model: a stride-s 3x3 conv with padding 1 maps n to ``(n - 1) // s + 1``; a
MobileViT block resizes its map to the next multiple of the patch before unfolding (and back after
folding), so a patch that does not tile the map costs two bilinear resizes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from mvsearch.arch.config import ArchConfig, ViTStage
from mvsearch.arch.geometry import parse_resolution
from mvsearch.model.network import make_divisible


@dataclass(frozen=True)
class AnalyticCost:
    """What :func:`analytic_cost` returns; equal to :func:`mvsearch.cost.traced.count`'s fields."""

    params: int  # trainable parameters
    flops: int  # fvcore FLOPs at ``resolution``
    activations: int  # fvcore activation count at ``resolution``
    resolution: tuple[int, int]  # input (H, W)


def _down(n: int, stride: int) -> int:
    # side of a k=3, padding=1 conv output (and of a 1x1 conv: stride is 1 there)
    return (n - 1) // stride + 1


class _Tally:
    """Running sums of params, FLOPs and activations."""

    __slots__ = ("params", "flops", "acts")

    def __init__(self) -> None:
        self.params = 0
        self.flops = 0
        self.acts = 0

    def conv_bn(self, c_in: int, c_out: int, k: int, hw_out: int, *, groups: int = 1,
                norm: bool = True) -> None:
        """Conv2d without bias (+ BatchNorm2d in eval) producing ``c_out`` maps of ``hw_out`` pixels."""
        w = c_out * (c_in // groups) * k * k
        self.params += w
        self.flops += hw_out * w
        self.acts += hw_out * c_out
        if norm:
            self.params += 2 * c_out
            self.flops += 2 * c_out * hw_out

    def linear(self, d_in: int, d_out: int, rows: int) -> None:
        """nn.Linear with bias on ``rows`` vectors."""
        self.params += d_in * d_out + d_out
        self.flops += rows * d_in * d_out
        self.acts += rows * d_out

    def layer_norm(self, d: int, rows: int) -> None:
        self.params += 2 * d
        self.flops += 5 * rows * d


def _mv2(t: _Tally, c_in: int, c_out: int, stride: int, expansion: float, h: int, w: int) -> tuple[int, int]:
    """An MV2 block (1x1 expand, 3x3 depthwise with stride, 1x1 project); returns the output size."""
    hidden = make_divisible(int(round(c_in * expansion)), 8)
    if expansion != 1:
        t.conv_bn(c_in, hidden, 1, h * w)
    else:
        hidden = c_in
    ho, wo = _down(h, stride), _down(w, stride)
    t.conv_bn(hidden, hidden, 3, ho * wo, groups=hidden)
    t.conv_bn(hidden, c_out, 1, ho * wo)
    return ho, wo


def _mobilevit_block(t: _Tally, st: ViTStage, h: int, w: int) -> None:
    """Local conv, 1x1 to d, unfold, L transformer layers + LayerNorm, fold, 1x1 to C, fusion."""
    c, d, k = st.channels, st.dim, st.kernel
    hw = h * w
    t.conv_bn(c, c, k, hw)  # conv_local
    t.conv_bn(c, d, 1, hw, norm=False)  # conv_in
    ph, pw = st.patch
    new_h, new_w = math.ceil(h / ph) * ph, math.ceil(w / pw) * pw
    resized = (new_h, new_w) != (h, w)
    if resized:  # bilinear resize up to a multiple of the patch: 4 FLOPs per output element
        t.flops += 4 * d * new_h * new_w
    tokens = new_h * new_w  # B*P*N rows of width d (P pixels per patch, N patches)
    n = (new_h // ph) * (new_w // pw)
    for _ in range(st.depth):
        t.layer_norm(d, tokens)
        t.linear(d, 3 * d, tokens)  # qkv
        # attention over N patches for each of the P pixel positions: Q.K^T and A.V
        t.flops += 2 * tokens * n * d
        t.acts += tokens * d
        t.linear(d, d, tokens)  # proj
        t.layer_norm(d, tokens)
        t.linear(d, st.ffn_dim, tokens)
        t.linear(st.ffn_dim, d, tokens)
    t.layer_norm(d, tokens)  # final norm
    if resized:  # and back to h x w
        t.flops += 4 * d * hw
    t.conv_bn(d, c, 1, hw)  # conv_proj
    t.conv_bn(2 * c, c, k, hw)  # conv_fusion


def analytic_cost(cfg: ArchConfig, resolution: Any = 256) -> AnalyticCost:
    """Params, fvcore FLOPs and activations of ``cfg`` at ``resolution`` (batch 1), in microseconds."""
    res = parse_resolution(resolution)
    t = _Tally()
    h, w = _down(res[0], cfg.stem_stride), _down(res[1], cfg.stem_stride)
    t.conv_bn(3, cfg.stem, 3, h * w)
    c = cfg.stem
    for stage, stride in ((cfg.layer1, 1), (cfg.layer2, 2)):
        for i in range(stage.blocks):
            h, w = _mv2(t, c, stage.channels, stride if i == 0 else 1, cfg.expansion, h, w)
            c = stage.channels
    for st in cfg.vit_stages():
        h, w = _mv2(t, c, st.channels, 2, cfg.expansion, h, w)
        _mobilevit_block(t, st, h, w)
        c = st.channels
    t.conv_bn(c, cfg.last_channels, 1, h * w)  # conv_1x1_exp
    t.linear(cfg.last_channels, cfg.num_classes, 1)  # global mean pool (uncounted) + classifier
    return AnalyticCost(params=t.params, flops=t.flops, activations=t.acts, resolution=res)


def analytic_flops(cfg: ArchConfig, resolution: Any = 256) -> int:
    """fvcore FLOPs of ``cfg`` at ``resolution``."""
    return analytic_cost(cfg, resolution).flops
