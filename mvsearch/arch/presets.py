"""The paper's three MobileViT variants (XXS, XS, S) and their reference figures, in one table.

Each :class:`Reference` holds a variant's :class:`ArchConfig` exactly as Apple's ml-cvnets defines
it (1000 classes), its parameter count and fvcore FLOPs at 256x256 (those of ml-cvnets, matched by
timm; one multiply-add = one FLOP), and the paper's ImageNet-1k top-1 (Mehta & Rastegari, ICLR 2022,
arXiv 2110.02178, Table 1). :data:`REFERENCE` is the one table; :data:`PRESETS`,
:data:`PAPER_PARAMS` and :data:`PAPER_FLOPS` (and :data:`mvsearch.budget.PAPER_TIERS`) are views
of it. ``tests/test_presets.py`` pins the figures against what :func:`mvsearch.cost.traced.count`
measures, so a change to the network that moves them fails loudly.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass

from mvsearch.arch.config import ArchConfig, MV2Stage, ViTStage
from mvsearch.core.errors import ArchError
from mvsearch.core.text import shorten


def _paper(c: tuple[int, ...], d: tuple[int, int, int], expansion: int, dropout: float) -> ArchConfig:
    """A paper variant from its layer1..5 widths and transformer dims (FFN = 2d, L = 2/4/3)."""
    vit = [
        ViTStage(channels=c[2 + i], dim=d[i], depth=depth, ffn_dim=2 * d[i])
        for i, depth in enumerate((2, 4, 3))
    ]
    return ArchConfig(
        stem=16,
        layer1=MV2Stage(channels=c[0], blocks=1),
        layer2=MV2Stage(channels=c[1], blocks=3),
        layer3=vit[0],
        layer4=vit[1],
        layer5=vit[2],
        expansion=expansion,
        last_channels=min(4 * c[4], 960),
        dropout=dropout,
    )


@dataclass(frozen=True)
class Reference:
    """One paper variant and the figures it must reproduce."""

    name: str  # preset name, e.g. "mobilevit_xxs"
    arch: ArchConfig  # the network as ml-cvnets defines it (1000 classes)
    params: int  # trainable parameters
    flops: int  # fvcore FLOPs at 256x256, batch 1 (1 multiply-add = 1 FLOP)
    top1: float  # the paper's ImageNet-1k top-1 accuracy, in percent


#: The paper's three variants: architecture, params, FLOPs at 256x256 and ImageNet-1k top-1.
REFERENCE: dict[str, Reference] = {r.name: r for r in (
    Reference("mobilevit_xxs", _paper((16, 24, 48, 64, 80), (64, 80, 96), expansion=2, dropout=0.05),
              params=1_272_024, flops=418_183_680, top1=69.0),
    Reference("mobilevit_xs", _paper((32, 48, 64, 80, 96), (96, 120, 144), expansion=4, dropout=0.1),
              params=2_317_848, flops=1_052_168_192, top1=74.8),
    Reference("mobilevit_s", _paper((32, 64, 96, 128, 160), (144, 192, 240), expansion=4, dropout=0.1),
              params=5_578_632, flops=2_033_383_424, top1=78.4),
)}


#: name -> architecture (1000 classes), in the table's order (smallest first)
PRESETS: dict[str, ArchConfig] = {name: r.arch for name, r in REFERENCE.items()}


#: name -> trainable parameters at 1000 classes
PAPER_PARAMS: dict[str, int] = {name: r.params for name, r in REFERENCE.items()}


#: name -> fvcore FLOPs at 256x256, 1000 classes
PAPER_FLOPS: dict[str, int] = {name: r.flops for name, r in REFERENCE.items()}


def get_preset(name: str, num_classes: int | None = None) -> ArchConfig:
    """The named paper preset, optionally with another classifier size."""
    if name not in PRESETS:
        hint = difflib.get_close_matches(str(name)[:100], PRESETS, n=1)
        did = f" (did you mean {hint[0]}?)" if hint else ""
        raise ArchError(f"unknown preset {shorten(name)}{did}; known: {', '.join(PRESETS)}")
    cfg = PRESETS[name]
    return cfg if num_classes is None else cfg.with_num_classes(num_classes)
