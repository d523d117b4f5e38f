"""MobileViT as nn.Modules, built from an :class:`~mvsearch.arch.config.ArchConfig`.

Implements the network of Mehta & Rastegari (arXiv 2110.02178), Sec. 3.1 and Fig. 1b, with the
layer structure of Apple's ml-cvnets ``MobileViT`` (v1): a strided 3x3 conv stem, MV2 inverted
residual blocks, and MobileViT blocks

    X -> n x n conv -> 1x1 conv to d -> unfold into P = h*w sequences of N patches
      -> L pre-norm transformer layers (+ final LayerNorm) -> fold -> 1x1 conv to C
      -> concat with X -> n x n fusion conv

Convs carry no bias (BatchNorm follows); the activation is SiLU (Swish). Attention uses the fused
``F.scaled_dot_product_attention``; ``set_fused_attention(model, False)`` switches to explicit
matmuls (same maths, used to check that FLOP counting sees both alike).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from mvsearch.arch.config import ArchConfig, ViTStage


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round ``v`` to a multiple of ``divisor`` without going below 90% of it (ml-cvnets rule)."""
    min_value = divisor if min_value is None else min_value
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


class ConvBNAct(nn.Sequential):
    """Conv2d (no bias) -> optional BatchNorm -> optional SiLU."""

    def __init__(
        self, c_in: int, c_out: int, k: int, stride: int = 1, groups: int = 1,
        norm: bool = True, act: bool = True,
    ) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(c_in, c_out, k, stride=stride, padding=(k - 1) // 2, groups=groups, bias=False)
        ]
        if norm:
            layers.append(nn.BatchNorm2d(c_out))
        if act:
            layers.append(nn.SiLU())
        super().__init__(*layers)


class MV2Block(nn.Module):
    """MobileNetV2 inverted residual: 1x1 expand -> 3x3 depthwise -> 1x1 project (+ skip)."""

    def __init__(self, c_in: int, c_out: int, stride: int, expansion: float) -> None:
        super().__init__()
        hidden = make_divisible(int(round(c_in * expansion)), 8)
        layers: list[nn.Module] = []
        if expansion != 1:
            layers.append(ConvBNAct(c_in, hidden, 1))
        else:
            hidden = c_in
        layers += [
            ConvBNAct(hidden, hidden, 3, stride=stride, groups=hidden),
            ConvBNAct(hidden, c_out, 1, act=False),
        ]
        self.block = nn.Sequential(*layers)
        self.use_residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return x + y if self.use_residual else y


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection."""

    def __init__(self, dim: int, heads: int, attn_dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.attn_dropout = attn_dropout
        self.fused = True  # F.scaled_dot_product_attention; False -> explicit matmuls

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        # [B, N, 3d] -> [3, B, heads, N, head_dim]
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        p = self.attn_dropout if self.training else 0.0
        if self.fused:
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=p)
        else:
            attn = (q * (1.0 / math.sqrt(self.head_dim))) @ k.transpose(-2, -1)  # [B, h, N, N]
            attn = F.dropout(attn.softmax(dim=-1), p=p, training=self.training)
            out = attn @ v  # [B, h, N, head_dim]
        out = out.transpose(1, 2).reshape(b, n, d)  # [B, h, N, hd] -> [B, N, d]
        return self.proj(out)


class TransformerLayer(nn.Module):
    """Pre-norm transformer encoder layer: x + MHA(LN(x)); x + FFN(LN(x)) with SiLU."""

    def __init__(self, dim: int, ffn_dim: int, heads: int, dropout: float,
                 attn_dropout: float, ffn_dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, attn_dropout)
        self.drop1 = nn.Dropout(dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(
            nn.Linear(dim, ffn_dim), nn.SiLU(), nn.Dropout(ffn_dropout),
            nn.Linear(ffn_dim, dim), nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop1(self.attn(self.norm1(x)))
        return x + self.ffn(self.norm2(x))


class MobileViTBlock(nn.Module):
    """Local n x n conv, global transformers over unfolded patches, fold, fuse (paper Fig. 1b)."""

    def __init__(self, stage: ViTStage, dropout: float, attn_dropout: float, ffn_dropout: float) -> None:
        super().__init__()
        c, d, k = stage.channels, stage.dim, stage.kernel
        self.patch_h, self.patch_w = stage.patch
        self.conv_local = ConvBNAct(c, c, k)
        self.conv_in = ConvBNAct(c, d, 1, norm=False, act=False)
        self.transformer = nn.Sequential(*[
            TransformerLayer(d, stage.ffn_dim, stage.heads, dropout, attn_dropout, ffn_dropout)
            for _ in range(stage.depth)
        ])
        self.norm = nn.LayerNorm(d)
        self.conv_proj = ConvBNAct(d, c, 1)
        self.conv_fusion = ConvBNAct(2 * c, c, k)

    def unfold(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int, int, int, bool]]:
        ph, pw = self.patch_h, self.patch_w
        b, d, h, w = x.shape
        new_h, new_w = math.ceil(h / ph) * ph, math.ceil(w / pw) * pw
        resized = (new_h, new_w) != (h, w)
        if resized:  # as the reference: resize to the next multiple of the patch, and back in fold
            x = F.interpolate(x, size=(new_h, new_w), mode="bilinear", align_corners=False)
        nh, nw = new_h // ph, new_w // pw
        n, p = nh * nw, ph * pw
        # [B, d, H, W] -> [B*d*nh, ph, nw, pw] -> [B*d*nh, nw, ph, pw]
        x = x.reshape(b * d * nh, ph, nw, pw).transpose(1, 2)
        # -> [B, d, N, P] -> [B, P, N, d] -> [B*P, N, d]   (P = ph*pw pixels, N = nh*nw patches)
        x = x.reshape(b, d, n, p).transpose(1, 3).reshape(b * p, n, d)
        return x, (h, w, nh, nw, resized)

    def fold(self, x: torch.Tensor, info: tuple[int, int, int, int, bool]) -> torch.Tensor:
        h, w, nh, nw = info[:4]
        ph, pw = self.patch_h, self.patch_w
        bp, n, d = x.shape
        b = bp // (ph * pw)
        # [B*P, N, d] -> [B, P, N, d] -> [B, d, N, P]
        x = x.reshape(b, ph * pw, n, d).transpose(1, 3)
        # -> [B*d*nh, nw, ph, pw] -> [B*d*nh, ph, nw, pw] -> [B, d, H', W']
        x = x.reshape(b * d * nh, nw, ph, pw).transpose(1, 2).reshape(b, d, nh * ph, nw * pw)
        if info[4]:
            x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv_in(self.conv_local(x))
        seq, info = self.unfold(y)
        seq = self.norm(self.transformer(seq))
        y = self.conv_proj(self.fold(seq, info))
        return self.conv_fusion(torch.cat((x, y), dim=1))


class GlobalPool(nn.Module):
    """Global average pooling as a mean over H, W (as ml-cvnets' GlobalPool): [B, C, H, W] -> [B, C]."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(-2, -1))


class MobileViT(nn.Module):
    """The whole network. Top-level children are the stages used for per-stage costs."""

    def __init__(self, cfg: ArchConfig) -> None:
        super().__init__()
        self.cfg = cfg
        e = cfg.expansion
        self.stem = ConvBNAct(3, cfg.stem, 3, stride=cfg.stem_stride)
        c = cfg.stem
        mv2_stages = []
        for stage, stride in ((cfg.layer1, 1), (cfg.layer2, 2)):
            blocks = []
            for i in range(stage.blocks):
                blocks.append(MV2Block(c, stage.channels, stride if i == 0 else 1, e))
                c = stage.channels
            mv2_stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2 = mv2_stages
        vit_stages = []
        for stage in cfg.vit_stages():
            vit_stages.append(nn.Sequential(
                MV2Block(c, stage.channels, 2, e),
                MobileViTBlock(stage, cfg.dropout, cfg.attn_dropout, cfg.ffn_dropout),
            ))
            c = stage.channels
        self.layer3, self.layer4, self.layer5 = vit_stages
        self.conv_1x1_exp = ConvBNAct(c, cfg.last_channels, 1)
        self.classifier = nn.Sequential(
            GlobalPool(), nn.Dropout(cfg.classifier_dropout), nn.Linear(cfg.last_channels, cfg.num_classes),
        )
        self.reset_parameters()

    STAGES = ("stem", "layer1", "layer2", "layer3", "layer4", "layer5", "conv_1x1_exp", "classifier")

    def reset_parameters(self) -> None:
        # ml-cvnets' initialisation: kaiming-normal (fan_out) convs, trunc-normal(0.02) linears
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.BatchNorm2d, nn.LayerNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer2(self.layer1(self.stem(x)))
        x = self.layer5(self.layer4(self.layer3(x)))
        return self.conv_1x1_exp(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.forward_features(x))


def build_model(cfg: ArchConfig) -> MobileViT:
    """A freshly initialised MobileViT for ``cfg``."""
    return MobileViT(cfg)


def set_fused_attention(model: nn.Module, fused: bool) -> None:
    """Switch every attention layer between fused SDPA and explicit matmul attention."""
    for m in model.modules():
        if isinstance(m, Attention):
            m.fused = fused
