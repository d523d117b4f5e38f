"""The proxy: how a search trains a candidate to rank it, and how that net differs from the deployed one.

Ranking by a short training at a small resolution is only meaningful if the small network still
exercises what makes MobileViT MobileViT: attention over patches. With the deployed stem stride 2,
a 64x64 input leaves layer5 a 2x2 map, i.e. one 2x2 patch (N = 1), so its attention mixes nothing;
at 32x32 only layer3 attends. The default proxy is therefore 64x64 input with the stem stride
reduced to 1: every later feature map then has the size it would have at 128x128 with stride 2
(layer3/4/5 maps 16/8/4, N = 64/16/4 patches of 2x2), at the same network FLOPs as 128x128, while
the data pipeline decodes, stores and augments 4x fewer pixels.

The proxy network differs from the deployed one in exactly two fields: ``stem_stride`` (the
proxy's) and ``num_classes`` (the dataset's). Every width, depth, patch, kernel and expansion is
the deployed architecture's; budgets are always counted on the deployed network.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

from mvsearch.arch.config import ArchConfig
from mvsearch.arch.geometry import num_patches, stage_maps
from mvsearch.core.errors import TrainError
from mvsearch.core.limits import MAX_RESOLUTION, MAX_SAMPLES, check_int
from mvsearch.core.text import shorten
from mvsearch.proxy.trainer import TrainConfig


@dataclass(frozen=True)
class ProxySettings:
    """What a search (or ``mvsearch train``) uses as "the proxy training"."""

    data: str = "fashion-mnist"  # data spec (see mvsearch.data.spec)
    resolution: int = 64  # proxy input side R (square)
    stem_stride: int = 1  # stem stride of the trained net (deployed nets use 2)
    epochs: int = 3  # passes over the proxy training split
    batch_size: int = 64  # images per step
    train_samples: int | None = 10000  # stratified subset of the training set (None: all the rest)
    val_samples: int = 2000  # stratified validation split carved from the training set
    lr: float = 2e-3  # peak AdamW learning rate
    weight_decay: float = 0.05  # AdamW weight decay (not on norms and biases)
    warmup_epochs: float = 0.3  # linear warmup, then cosine to 0
    label_smoothing: float = 0.1  # cross-entropy label smoothing

    def __post_init__(self) -> None:
        if self.stem_stride not in (1, 2) or isinstance(self.stem_stride, bool):
            raise TrainError(f"proxy stem_stride: must be 1 or 2, got {self.stem_stride!r}")
        if isinstance(self.resolution, bool) or not isinstance(self.resolution, int) or self.resolution < 8:
            raise TrainError(f"proxy resolution: must be an integer >= 8, got {shorten(self.resolution)}")
        check_int(self.resolution, "proxy resolution", 8, MAX_RESOLUTION, TrainError)
        if self.train_samples is not None:
            check_int(self.train_samples, "train_samples", 1, MAX_SAMPLES, TrainError)
        check_int(self.val_samples, "val_samples", 1, MAX_SAMPLES, TrainError)
        if not isinstance(self.data, str):
            raise TrainError(f"data: must be a data spec string, got {shorten(self.data)}")
        self.train_config()  # validates the training fields

    def train_config(self, **overrides: Any) -> TrainConfig:
        """The :class:`TrainConfig` for these settings (seed, device, threads... as overrides)."""
        kw = {f: getattr(self, f) for f in ("epochs", "batch_size", "lr", "weight_decay",
                                            "warmup_epochs", "label_smoothing")}
        kw.update(overrides)
        return TrainConfig(**kw)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProxySettings:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise TrainError(f"proxy: unknown key {unknown[0]!r}; known: {', '.join(sorted(known))}")
        return cls(**dict(data))


#: validation images that keep an accuracy near 75% within about ±1.5 points (95% Wilson interval)
VAL_FOR_1_5_POINTS = 3072


def interval_note(proxy: ProxySettings, train_images: int) -> str | None:
    """A line when the validation split leaves a typical accuracy (75%) a 95% interval wider than about
    ±1.5 points, naming the fix, or why the data cannot take it (``train_images``: its training set)."""
    from mvsearch.core.interval import half_width

    n = proxy.val_samples
    if n >= VAL_FOR_1_5_POINTS or half_width(0.75, n) <= 0.016:
        return None
    used = proxy.train_samples if proxy.train_samples is not None else 1  # "all": the rest, at least one
    room = train_images - used
    say = (f"val_samples {n:,}: an accuracy near 75% carries a 95% interval of ±{100 * half_width(0.75, n):.1f} points, "
           f"so trials closer than that are not told apart; ")
    if room >= VAL_FOR_1_5_POINTS:
        return say + f"val_samples {VAL_FOR_1_5_POINTS:,} keeps it within about ±1.5 (validation is forward-only)"
    beside = f" beside {used:,} training images" if proxy.train_samples is not None else ""
    return say + (f"the data has {train_images:,} training images, too few for the {VAL_FOR_1_5_POINTS:,} validation "
                  f"images that would keep it within ±1.5{beside}")


def proxy_arch(cfg: ArchConfig, proxy: ProxySettings, num_classes: int) -> ArchConfig:
    """The network actually trained: ``cfg`` with the proxy's stem stride and the data's classes."""
    return dataclasses.replace(cfg, stem_stride=proxy.stem_stride, num_classes=num_classes)


def collapse_warnings(cfg: ArchConfig, resolution: Any, stem_stride: int | None = None) -> list[str]:
    """One message per MobileViT stage left with a single patch (N = 1: attention mixes nothing)."""
    if stem_stride is not None:
        cfg = dataclasses.replace(cfg, stem_stride=stem_stride)
    maps = stage_maps(cfg, resolution)
    out = []
    for name, n in num_patches(cfg, resolution).items():
        if n == 1:
            h, w = maps[name]
            ph, pw = getattr(cfg, name).patch
            fix = "a larger resolution" if cfg.stem_stride == 1 else "stem stride 1 or a larger resolution"
            out.append(f"{name}: at input {resolution} with stem stride {cfg.stem_stride} the {h}x{w} "
                       f"map holds a single {ph}x{pw} patch (N = 1), so its attention mixes nothing; "
                       f"use {fix}")
    return out
