"""MobileViT architectures as data.

An :class:`ArchConfig` describes one MobileViT (Mehta & Rastegari, arXiv 2110.02178, Sec. 3 and
Table 4 / Apple's ml-cvnets ``config/mobilevit.py``): a strided 3x3 stem, two MV2 (inverted
residual) stages, three MobileViT stages (each a stride-2 MV2 block followed by one MobileViT
block), a 1x1 expansion conv and a linear classifier. Configs are frozen, validated where they are
made, and round-trip losslessly through ``to_dict``/``from_dict`` (and so YAML and JSON).
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping
import yaml

from mvsearch.core import yamlsafe
from mvsearch.core.errors import ArchError
from mvsearch.core.limits import MAX_CLASSES, MAX_INT_DIGITS, MAX_DEPTH, MAX_EXPANSION, MAX_KERNEL, MAX_PATCH, MAX_WIDTH
from mvsearch.core.text import shorten


VIT_STAGES = ("layer3", "layer4", "layer5")


MV2_STAGES = ("layer1", "layer2")


@dataclass(frozen=True)
class MV2Stage:
    """A stage of MobileNetV2 inverted-residual blocks (layer1: stride 1, layer2: stride 2)."""

    channels: int  # output channels of every block in the stage
    blocks: int  # number of MV2 blocks


@dataclass(frozen=True)
class ViTStage:
    """A MobileViT stage: one stride-2 MV2 block, then one MobileViT block (paper Fig. 1b)."""

    channels: int  # C: channels in and out of the MobileViT block
    dim: int  # d: transformer width (the paper uses d > C)
    depth: int  # L: transformer layers
    ffn_dim: int  # hidden width of each transformer FFN (2d in the paper)
    heads: int = 4  # attention heads; dim must be divisible by heads
    patch: tuple[int, int] = (2, 2)  # unfold patch h x w (P = h*w pixels per patch)
    kernel: int = 3  # n: the n x n local-representation and fusion convs (odd)


@dataclass(frozen=True)
class ArchConfig:
    """One MobileViT network, every knob the search can turn."""

    layer1: MV2Stage  # MV2 stage at 1/2 resolution
    layer2: MV2Stage  # MV2 stage, downsamples to 1/4
    layer3: ViTStage  # MobileViT stage at 1/8
    layer4: ViTStage  # MobileViT stage at 1/16
    layer5: ViTStage  # MobileViT stage at 1/32
    stem: int = 16  # output channels of the 3x3 stem conv
    stem_stride: int = 2  # stride of the stem (1 only for low-resolution proxies)
    expansion: float = 4  # MV2 expansion ratio (hidden = round(in * expansion) to a multiple of 8)
    last_channels: int = 640  # width of the final 1x1 conv (reference: min(4 * C5, 960))
    num_classes: int = 1000  # classifier outputs
    dropout: float = 0.1  # dropout after attention and FFN in each transformer layer
    attn_dropout: float = 0.0  # dropout on the attention weights
    ffn_dropout: float = 0.0  # dropout inside the FFN, after the activation
    classifier_dropout: float = 0.1  # dropout before the classifier

    def __post_init__(self) -> None:
        validate(self)

    # ------------------------------------------------------------------ conversions
    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON/YAML-safe dict (patches as ``[h, w]`` lists)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, (MV2Stage, ViTStage)):
                d = dataclasses.asdict(v)
                if "patch" in d:
                    d["patch"] = list(d["patch"])
                out[f.name] = d
            else:
                out[f.name] = v
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "") -> ArchConfig:
        """Build from a dict, rejecting unknown keys and wrong types with a precise message."""
        return _from_dict(data, where)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=False)

    @classmethod
    def from_yaml(cls, text: str, *, where: str = "") -> ArchConfig:
        """Read YAML as the space loader does (:mod:`mvsearch.core.yamlsafe`: decimal integers only,
        duplicate keys refused, bounded nesting, aliases and size)."""
        return _from_dict(yamlsafe.load(text, where or "config", ArchError), where)

    @classmethod
    def from_json(cls, text: str) -> ArchConfig:
        return _from_dict(json.loads(text), "")

    # ------------------------------------------------------------------ helpers
    def vit_stages(self) -> tuple[ViTStage, ViTStage, ViTStage]:
        return (self.layer3, self.layer4, self.layer5)

    def with_num_classes(self, num_classes: int) -> ArchConfig:
        return dataclasses.replace(self, num_classes=num_classes)

    def summary(self) -> str:
        """A one-line description for tables: widths, d, L, patches, n, expansion."""
        v = self.vit_stages()
        patches = "/".join(f"{s.patch[0]}x{s.patch[1]}" for s in v)
        kernels = "/".join(str(s.kernel) for s in v)
        heads = "/".join(str(s.heads) for s in v)
        return (
            f"C{self.stem}-{self.layer1.channels}-{self.layer2.channels}-"
            + "-".join(str(s.channels) for s in v)
            + f" d{'/'.join(str(s.dim) for s in v)} L{'/'.join(str(s.depth) for s in v)}"
            + f" ffn{'/'.join(str(s.ffn_dim) for s in v)} h{heads} p{patches} n{kernels}"
            + f" e{_num(self.expansion)} last{self.last_channels}"
        )


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _positive_int(path: str, v: Any, bound: int | None = None) -> None:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ArchError(f"{path}: must be an integer, got {shorten(v)} ({type(v).__name__})")
    if v <= 0:
        raise ArchError(f"{path}: must be a positive integer, got {shorten(v)}")
    if bound is not None and v > bound:
        raise ArchError(f"{path}: {shorten(v)} exceeds mvsearch's bound of {bound:,}")


def _rate(path: str, v: Any) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ArchError(f"{path}: must be a number, got {shorten(v)} ({type(v).__name__})")
    if not 0.0 <= float(v) < 1.0:
        raise ArchError(f"{path}: must be a dropout rate in [0, 1), got {v}")


def validate(cfg: ArchConfig) -> None:
    """Check every rule of a MobileViT config; raise ArchError naming field, rule and value."""
    _positive_int("stem", cfg.stem, MAX_WIDTH)
    _positive_int("last_channels", cfg.last_channels, MAX_WIDTH)
    _positive_int("num_classes", cfg.num_classes, MAX_CLASSES)
    if cfg.stem_stride not in (1, 2) or isinstance(cfg.stem_stride, bool):
        raise ArchError(f"stem_stride: must be 1 or 2, got {shorten(cfg.stem_stride)}")
    e = cfg.expansion
    if isinstance(e, bool) or not isinstance(e, (int, float)) or not math.isfinite(e):
        raise ArchError(f"expansion: must be a number, got {shorten(e)} ({type(e).__name__})")
    if e < 1:
        raise ArchError(f"expansion: the MV2 expansion ratio must be >= 1, got {e}")
    if e > MAX_EXPANSION:
        raise ArchError(f"expansion: {e} exceeds mvsearch's bound of {MAX_EXPANSION}")
    for name in ("dropout", "attn_dropout", "ffn_dropout", "classifier_dropout"):
        _rate(name, getattr(cfg, name))
    for name in MV2_STAGES:
        st = getattr(cfg, name)
        if not isinstance(st, MV2Stage):
            raise ArchError(f"{name}: must be an MV2 stage mapping, got {type(st).__name__}")
        _positive_int(f"{name}.channels", st.channels, MAX_WIDTH)
        _positive_int(f"{name}.blocks", st.blocks, MAX_DEPTH)
    for name in VIT_STAGES:
        st = getattr(cfg, name)
        if not isinstance(st, ViTStage):
            raise ArchError(f"{name}: must be a MobileViT stage mapping, got {type(st).__name__}")
        for f, bound in (("channels", MAX_WIDTH), ("dim", MAX_WIDTH), ("depth", MAX_DEPTH),
                         ("ffn_dim", MAX_WIDTH), ("heads", MAX_WIDTH), ("kernel", MAX_KERNEL)):
            _positive_int(f"{name}.{f}", getattr(st, f), bound)
        if st.dim % st.heads:
            raise ArchError(
                f"{name}.dim: transformer dim must be divisible by heads, but got "
                f"dim={st.dim}, heads={st.heads}"
            )
        if st.kernel % 2 == 0:
            raise ArchError(f"{name}.kernel: conv kernel n must be odd, got {st.kernel}")
        p = st.patch
        if not (isinstance(p, tuple) and len(p) == 2):
            raise ArchError(f"{name}.patch: must be (h, w), got {shorten(p)}")
        _positive_int(f"{name}.patch[0]", p[0], MAX_PATCH)
        _positive_int(f"{name}.patch[1]", p[1], MAX_PATCH)


def _parse_patch(path: str, v: Any) -> tuple[int, int]:
    if isinstance(v, str):
        s = v.strip().lower()
        parts = s.split("x")
        if len(parts) == 2 and all(q.strip().lstrip("-").isdigit() for q in parts):
            if max(len(q.strip()) for q in parts) > MAX_INT_DIGITS:
                raise ArchError(f"{path}: {shorten(v)} exceeds mvsearch's bound of {MAX_PATCH:,} per patch side")
            return int(parts[0]), int(parts[1])
        raise ArchError(f"{path}: expected a patch like 2x2 or [2, 2], got {shorten(v)}")
    if isinstance(v, int) and not isinstance(v, bool):
        return v, v
    if isinstance(v, (list, tuple)) and len(v) == 2:
        return v[0], v[1]
    raise ArchError(f"{path}: expected a patch like 2x2 or [2, 2], got {shorten(v)}")


def _check_keys(path: str, data: Mapping[str, Any], known: list[str], required: list[str]) -> None:
    for k in data:
        if k not in known:
            hint = difflib.get_close_matches(str(k)[:100], known, n=1)
            did = f"; did you mean {hint[0]!r}?" if hint else f"; known: {', '.join(known)}"
            name = k if isinstance(k, str) and len(k) <= 40 and k.isprintable() else shorten(k, 40)
            raise ArchError(f"{path}{'.' if path else ''}{name}: unknown key{did}")
    for k in required:
        if k not in data:
            raise ArchError(f"{path}{'.' if path else ''}{k}: required key is missing")


def _stage(cls: type, path: str, data: Any) -> Any:
    if not isinstance(data, Mapping):
        raise ArchError(f"{path}: must be a mapping of stage settings, got {shorten(data)}")
    fields = [f.name for f in dataclasses.fields(cls)]
    required = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING]
    _check_keys(path, data, fields, required)
    kw = dict(data)
    if "patch" in kw:
        kw["patch"] = _parse_patch(f"{path}.patch", kw["patch"])
    return cls(**kw)


def _from_dict(data: Any, where: str) -> ArchConfig:
    prefix = f"{where}: " if where else ""
    if data is None:
        raise ArchError(f"{prefix}the file is empty; an architecture is a mapping with layer1..layer5 (see "
                        f"`mvsearch export --format yaml`)")
    if not isinstance(data, Mapping):
        raise ArchError(f"{prefix}an architecture must be a mapping of keys, got {type(data).__name__}")
    try:
        fields = [f.name for f in dataclasses.fields(ArchConfig)]
        required = list(MV2_STAGES + VIT_STAGES)
        _check_keys("", data, fields, required)
        kw: dict[str, Any] = dict(data)
        for name in MV2_STAGES:
            kw[name] = _stage(MV2Stage, name, data[name])
        for name in VIT_STAGES:
            kw[name] = _stage(ViTStage, name, data[name])
        return ArchConfig(**kw)
    except ArchError as exc:
        if where:
            raise ArchError(f"{prefix}{exc}") from None
        raise


def load_arch(path: str | Path) -> ArchConfig:
    """Read an ArchConfig from a YAML or JSON file (JSON is YAML): UTF-8, at most 1 MiB."""
    text = yamlsafe.read_text(path, ArchError, what="an architecture YAML",
                              hint=lambda: "pass an architecture YAML (see `mvsearch export --format yaml`)")
    return ArchConfig.from_yaml(text, where=str(path))
