"""The paper's three MobileViT variants (XXS, XS, S) and their reference figures, in one table.

Params and fvcore FLOPs at 256x256 with 1000 classes are those of Apple's ml-cvnets (matched by timm);
top-1 is the paper's ImageNet-1k figure (Mehta & Rastegari, arXiv 2110.02178, Table 1)."""
from __future__ import annotations

import difflib

from mvsearch.arch.config import ArchConfig
from mvsearch.arch.config import MV2Stage, ViTStage
from mvsearch.core.errors import ArchError


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


#: The paper's three variants, exactly as Apple's ml-cvnets defines them (1000 classes).
PRESETS: dict[str, ArchConfig] = {
    "mobilevit_xxs": _paper((16, 24, 48, 64, 80), (64, 80, 96), expansion=2, dropout=0.05),
    "mobilevit_xs": _paper((32, 48, 64, 80, 96), (96, 120, 144), expansion=4, dropout=0.1),
    "mobilevit_s": _paper((32, 64, 96, 128, 160), (144, 192, 240), expansion=4, dropout=0.1),
}


def get_preset(name: str, num_classes: int | None = None) -> ArchConfig:
    """The named paper preset, optionally with another classifier size."""
    if name not in PRESETS:
        hint = difflib.get_close_matches(name, PRESETS, n=1)
        did = f" (did you mean {hint[0]}?)" if hint else ""
        raise ArchError(f"unknown preset {name!r}{did}; known: {', '.join(PRESETS)}")
    cfg = PRESETS[name]
    return cfg if num_classes is None else cfg.with_num_classes(num_classes)


#: the reference numbers (1000 classes, 256x256) the presets must reproduce
PAPER_PARAMS = {"mobilevit_xxs": 1_272_024, "mobilevit_xs": 2_317_848, "mobilevit_s": 5_578_632}


PAPER_FLOPS = {"mobilevit_xxs": 418_183_680, "mobilevit_xs": 1_052_168_192, "mobilevit_s": 2_033_383_424}
