"""Feature-map geometry: input resolutions, each stage's map size and patch count, and whether a resolution fits an architecture."""
from __future__ import annotations

import math
from typing import Any

from mvsearch.arch.config import ArchConfig, VIT_STAGES
from mvsearch.core.errors import ArchError
from mvsearch.core.limits import MAX_INT_DIGITS, MAX_RESOLUTION
from mvsearch.core.text import shorten


def parse_resolution(value: Any) -> tuple[int, int]:
    """``256`` / ``"256"`` / ``"256x192"`` / ``[256, 192]`` -> ``(H, W)``, each side at most
    :data:`~mvsearch.core.limits.MAX_RESOLUTION`."""
    if isinstance(value, str) and len(value) > 2 * MAX_INT_DIGITS + 1:
        raise ArchError(f"resolution: expected N or HxW of at most {MAX_RESOLUTION} pixels a side (mvsearch's "
                        f"bound), got {shorten(value)}")
    try:
        if isinstance(value, (list, tuple)) and len(value) == 2:
            h, w = int(value[0]), int(value[1])
        elif isinstance(value, int) and not isinstance(value, bool):
            h = w = value
        else:
            s = str(value).strip().lower()
            if "x" in s:
                a, b = s.split("x", 1)
                h, w = int(a), int(b)
            else:
                h = w = int(s)
    except (TypeError, ValueError):
        raise ArchError(f"resolution: expected N or HxW (e.g. 256 or 256x192), got {shorten(value)}") from None
    if h <= 0 or w <= 0:
        raise ArchError(f"resolution: must be positive, got {shorten(h)}x{shorten(w)}")
    if h > MAX_RESOLUTION or w > MAX_RESOLUTION:
        raise ArchError(f"resolution: {shorten(h)}x{shorten(w)} exceeds mvsearch's bound of {MAX_RESOLUTION} "
                        f"pixels a side")
    return h, w


def _down(n: int, stride: int) -> int:
    # output side of a k=3, padding=1 conv with this stride: ceil(n / stride)
    return (n - 1) // stride + 1


def stage_maps(cfg: ArchConfig, resolution: Any) -> dict[str, tuple[int, int]]:
    """Feature-map size (H, W) seen by each MobileViT block at this input resolution."""
    h, w = parse_resolution(resolution)
    h, w = _down(h, cfg.stem_stride), _down(w, cfg.stem_stride)
    h, w = _down(h, 2), _down(w, 2)  # layer2
    out = {}
    for name in VIT_STAGES:
        h, w = _down(h, 2), _down(w, 2)  # the stage's stride-2 MV2 block
        out[name] = (h, w)
    return out


def num_patches(cfg: ArchConfig, resolution: Any) -> dict[str, int]:
    """N, the number of patches (tokens per sequence) in each MobileViT block."""
    out = {}
    for name, (h, w) in stage_maps(cfg, resolution).items():
        ph, pw = getattr(cfg, name).patch
        out[name] = math.ceil(h / ph) * math.ceil(w / pw)
    return out


def check_resolution(cfg: ArchConfig, resolution: Any) -> tuple[int, int]:
    """Raise ArchError when a patch is larger than the map it must tile at ``resolution``."""
    res = parse_resolution(resolution)
    for name, (h, w) in stage_maps(cfg, res).items():
        ph, pw = getattr(cfg, name).patch
        if ph > h or pw > w:
            raise ArchError(
                f"{name}.patch: a patch must fit the feature map it tiles, but patch {ph}x{pw} is "
                f"larger than the {h}x{w} map at input {res[0]}x{res[1]}; use a smaller patch or a "
                f"larger resolution"
            )
    return res
