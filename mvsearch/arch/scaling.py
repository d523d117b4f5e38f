"""Model-scaling families: grow or shrink a MobileViT by one FLOP multiplier ``s``.

Three axes scale a network (Tan & Le, "EfficientNet", ICML 2019, Sec. 3): depth (transformer
layers L of layer3..5 and MV2 blocks of layer1..2, :func:`scale_depth`), width (every channel
count, :func:`scale_width`) and the deployment input side (:func:`scale_resolution`). FLOPs grow
about linearly in depth and quadratically in width and resolution, so a family that turns a
multiplier ``s`` into factors ``(d, w, r)`` with ``d * w**2 * r**2 = s`` means "about ``s`` times
the FLOPs" (Dollár, Singh & Girshick, "Fast and Accurate Model Scaling", CVPR 2021, Sec. 3; pycls
``pycls/models/scaler.py``). Every family here is a power law, ``(d, w, r) = s ** (e_d, e_w, e_r)``
with ``e_d + 2 e_w + 2 e_r = 1``:

==========  ===============================================  =====================================
family      factors                                          parameters (defaults)
==========  ===============================================  =====================================
width       w = s^(1/2)                                      -
depth       d = s                                            -
resolution  r = s^(1/2)                                      -
dwr         d = s^((1-a)/2), w = s^(a/2), r = s^((1-a)/4)    alpha = 0.8 (share of log s to width)
compound    d = A^phi, w = B^phi, r = G^phi,                 alpha = A = 1.2, beta = B = 1.1,
            phi = log s / log(A B^2 G^2)                     gamma = G = 1.15
==========  ===============================================  =====================================

Rounding. Widths use timm/pycls's ``make_divisible`` rule (:func:`round_width`): the nearest
multiple of ``divisor`` (8), never below it, one divisor more when rounding lost over 10%; a
transformer dim rounds to a multiple of lcm(divisor, heads) so attention heads still divide it.
Depths round half up, at least 1. The input side rounds to the nearest multiple of 32 (the
network's total stride), at least 32. A factor of exactly 1 leaves its axis untouched, so
``s = 1`` returns the base itself even when its widths are off the rounding grid. Heads, patches,
kernels, expansion, dropout, classes and the stem stride never change.

Limits. A scaled value beyond :data:`~mvsearch.core.limits.MAX_WIDTH`, :data:`~mvsearch.core.limits.MAX_DEPTH`
or :data:`~mvsearch.core.limits.MAX_RESOLUTION`, or a patch that no longer fits its feature map, is
an :class:`~mvsearch.core.errors.ArchError` whose one line names the family and the multiplier.
:mod:`mvsearch.cost.ladder` finds the multiplier that lands a family on a FLOP target.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass
from typing import Any, Callable

from mvsearch.arch.config import MV2_STAGES, VIT_STAGES, ArchConfig
from mvsearch.arch.geometry import check_resolution
from mvsearch.core.errors import ArchError
from mvsearch.core.limits import MAX_DEPTH, MAX_RESOLUTION, MAX_WIDTH, check_int
from mvsearch.core.text import shorten

#: smallest deployment input side a scaled network gets (one pixel at 1/32)
MIN_RESOLUTION = 32


# ---------------------------------------------------------------------- rounding
def _snap(x: float) -> float:
    # drop float noise (35.99999999 -> 36.0) so a product that is exactly on a rounding edge rounds
    # as it does on paper
    return round(x, 9)


def round_width(v: float, divisor: int = 8) -> int:
    """``v`` to a multiple of ``divisor``: nearest, never below ``divisor``, and one ``divisor``
    more when that lost over 10% of ``v`` (timm/pycls ``make_divisible``; e.g. 36 -> 40, 12 -> 16)."""
    v = _snap(v)
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def _half_up(x: float) -> int:
    return math.floor(_snap(x) + 0.5)


def _factor(name: str, v: Any) -> float:
    """A scaling factor: a positive, finite real."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
        raise ArchError(f"{name}: a scaling factor must be a positive finite number, got {shorten(v)}")
    return float(v)


def _over(what: str, field: str, value: float, bound: int, unit: str = "") -> ArchError:
    shown = f"{value:,.0f}" if value < 1e9 else f"{value:.3g}"  # (inf prints as inf)
    return ArchError(f"{what} makes {field} {shown}{unit}, over mvsearch's bound of {bound:,}{unit}")


# ---------------------------------------------------------------------- the three axes
def scale_width(cfg: ArchConfig, w: float, divisor: int = 8) -> ArchConfig:
    """Every channel count times ``w`` (stem, layer1..5 channels, transformer dim and FFN width,
    last conv), each rounded by :func:`round_width`; a dim to a multiple of lcm(divisor, heads)."""
    w = _factor("width", w)
    divisor = check_int(divisor, "divisor", 1, MAX_WIDTH, ArchError)
    if w == 1.0:
        return cfg
    what = f"width x{w:.4g}"

    def scaled(field: str, c: int, div: int = divisor) -> int:
        v = c * w
        if not v <= 2 * MAX_WIDTH:  # far over the bound (or inf): say so before rounding
            raise _over(what, field, v, MAX_WIDTH)
        out = round_width(v, div)
        if out > MAX_WIDTH:
            raise _over(what, field, out, MAX_WIDTH)
        return out

    kw: dict[str, Any] = {"stem": scaled("stem", cfg.stem), "last_channels": scaled("last_channels", cfg.last_channels)}
    for name in MV2_STAGES:
        st = getattr(cfg, name)
        kw[name] = dataclasses.replace(st, channels=scaled(f"{name}.channels", st.channels))
    for name in VIT_STAGES:
        st = getattr(cfg, name)
        kw[name] = dataclasses.replace(
            st,
            channels=scaled(f"{name}.channels", st.channels),
            dim=scaled(f"{name}.dim", st.dim, math.lcm(divisor, st.heads)),
            ffn_dim=scaled(f"{name}.ffn_dim", st.ffn_dim),
        )
    return dataclasses.replace(cfg, **kw)


def scale_depth(cfg: ArchConfig, d: float) -> ArchConfig:
    """Transformer depth L of layer3..5 and MV2 blocks of layer1..2 times ``d``, rounded half up, at least 1."""
    d = _factor("depth", d)
    if d == 1.0:
        return cfg
    what = f"depth x{d:.4g}"

    def scaled(field: str, n: int) -> int:
        v = n * d
        if not v <= 2 * MAX_DEPTH:
            raise _over(what, field, v, MAX_DEPTH)
        out = max(1, _half_up(v))
        if out > MAX_DEPTH:
            raise _over(what, field, out, MAX_DEPTH)
        return out

    kw: dict[str, Any] = {}
    for name in MV2_STAGES:
        st = getattr(cfg, name)
        kw[name] = dataclasses.replace(st, blocks=scaled(f"{name}.blocks", st.blocks))
    for name in VIT_STAGES:
        st = getattr(cfg, name)
        kw[name] = dataclasses.replace(st, depth=scaled(f"{name}.depth", st.depth))
    return dataclasses.replace(cfg, **kw)


def scale_resolution(resolution: int, r: float, divisor: int = 32) -> int:
    """Input side times ``r``, rounded to the nearest multiple of ``divisor`` (half up); at least the
    smallest multiple of ``divisor`` that is >= 32."""
    resolution = check_int(resolution, "resolution", 1, MAX_RESOLUTION, ArchError, what="an input side")
    r = _factor("resolution", r)
    divisor = check_int(divisor, "divisor", 1, MAX_RESOLUTION, ArchError)
    if r == 1.0:
        return resolution
    what = f"resolution x{r:.4g}"
    v = resolution * r
    if not v <= 2 * MAX_RESOLUTION:
        raise _over(what, "the input side", v, MAX_RESOLUTION, " px")
    floor = math.ceil(MIN_RESOLUTION / divisor) * divisor
    out = max(floor, _half_up(v / divisor) * divisor)
    if out > MAX_RESOLUTION:
        raise _over(what, "the input side", out, MAX_RESOLUTION, " px")
    return out


# ---------------------------------------------------------------------- families
def _number(family: str, name: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ArchError(f"{family}: {name} must be a finite number, got {shorten(v)}")
    return float(v)


def _dwr(p: dict[str, float]) -> tuple[float, float, float]:
    a = p["alpha"]
    if not 0.0 <= a <= 1.0:
        raise ArchError(f"dwr: alpha is the share of log s given to width and must be in [0, 1], got {a:g}")
    return (1 - a) / 2, a / 2, (1 - a) / 4


def _compound(p: dict[str, float]) -> tuple[float, float, float]:
    for name, v in p.items():
        if not v > 0:
            raise ArchError(f"compound: {name} must be a positive finite number, got {v:g}")
    a, b, g = p["alpha"], p["beta"], p["gamma"]
    k = a * b * b * g * g
    if not k > 1.0:
        raise ArchError(f"compound: alpha * beta^2 * gamma^2 must exceed 1 for FLOPs to grow with phi, but "
                        f"{a:g} * {b:g}^2 * {g:g}^2 = {k:.4g}")
    lk = math.log(k)
    return math.log(a) / lk, math.log(b) / lk, math.log(g) / lk


@dataclass(frozen=True)
class Family:
    """One scaling family: how a FLOP multiplier s splits into depth, width and resolution factors."""

    name: str  # registry key: "width", "depth", "resolution", "dwr", "compound"
    summary: str  # one line for tables and help
    exponents_of: Callable[[dict[str, float]], tuple[float, float, float]]  # params -> (e_d, e_w, e_r)
    defaults: tuple[tuple[str, float], ...] = ()  # parameters and their defaults, e.g. (("alpha", 0.8),)

    def params(self, **given: Any) -> dict[str, float]:
        """Every parameter, ``given`` over the defaults (``None`` means the default), validated."""
        known = dict(self.defaults)
        for k in given:
            if k not in known:
                have = f"known: {', '.join(known)}" if known else "it takes none"
                raise ArchError(f"{self.name}: unknown scaling parameter {shorten(k)}; {have}")
        out = {k: _number(self.name, k, v if given.get(k) is None else given[k]) for k, v in known.items()}
        self.exponents_of(out)  # the family's own rules (dwr: alpha in [0, 1]; compound: A B^2 G^2 > 1)
        return out

    def exponents(self, **params: Any) -> tuple[float, float, float]:
        """``(e_d, e_w, e_r)`` with ``(d, w, r) = s ** (e_d, e_w, e_r)`` and ``e_d + 2 e_w + 2 e_r = 1``."""
        return self.exponents_of(self.params(**params))

    def factors(self, s: float, **params: Any) -> tuple[float, float, float]:
        """``(d, w, r)`` for FLOP multiplier ``s``: ``d * w**2 * r**2 = s``, all 1 at ``s = 1``."""
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not math.isfinite(s) or s <= 0:
            raise ArchError(f"{self.name}: the FLOP multiplier s must be a positive finite number, got {shorten(s)}")
        ls = math.log(s)
        out = []
        for e in self.exponents(**params):
            x = e * ls
            if x > 700:  # exp would overflow: far beyond any network mvsearch can build
                raise ArchError(f"{self.name} family at s={s:g}: a factor of e^{x:.0f} is beyond mvsearch's "
                                f"bounds (width {MAX_WIDTH:,}, depth {MAX_DEPTH}, input {MAX_RESOLUTION} px)")
            out.append(math.exp(max(x, -700.0)))
        return out[0], out[1], out[2]


#: the scaling families by name
FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("width", "every channel count x s^(1/2)", lambda p: (0.0, 0.5, 0.0)),
    Family("depth", "transformer layers and MV2 blocks x s", lambda p: (1.0, 0.0, 0.0)),
    Family("resolution", "deployment input side x s^(1/2)", lambda p: (0.0, 0.0, 0.5)),
    Family("compound", "EfficientNet: d = alpha^phi, w = beta^phi, r = gamma^phi (Tan & Le 2019)", _compound,
           (("alpha", 1.2), ("beta", 1.1), ("gamma", 1.15))),
    Family("dwr", "fast compound scaling: share alpha of log s to width, the rest to depth and resolution "
                  "(Dollar et al. 2021)", _dwr, (("alpha", 0.8),)),
)}


def check_family(name: Any) -> Family:
    """The family called ``name``; ArchError listing the known ones (and the closest) otherwise."""
    if not isinstance(name, str) or name not in FAMILIES:
        hint = difflib.get_close_matches(str(name)[:100], FAMILIES, n=1)
        did = f" (did you mean {hint[0]}?)" if hint else ""
        raise ArchError(f"unknown scaling family {shorten(name)}{did}; known: {', '.join(FAMILIES)}")
    return FAMILIES[name]


def factors(name: str, s: float, **params: Any) -> tuple[float, float, float]:
    """``(d, w, r)`` of family ``name`` at FLOP multiplier ``s`` (``d * w**2 * r**2 = s``)."""
    return check_family(name).factors(s, **params)


def apply_family(name: str, cfg: ArchConfig, resolution: int, s: float, **params: Any) -> tuple[ArchConfig, int]:
    """``cfg`` and its deployment side ``resolution`` scaled by family ``name`` at multiplier ``s``.

    ArchError, on one line naming the family and ``s``, when a scaled value passes mvsearch's
    bounds or a patch no longer fits the feature map it tiles at the scaled resolution.
    """
    family = check_family(name)
    d, w, r = family.factors(s, **params)
    try:
        out = scale_depth(scale_width(cfg, w), d)
        res = scale_resolution(resolution, r)
        check_resolution(out, res)
    except ArchError as exc:
        raise ArchError(f"{name} family at s={s:g} (d={d:.4g}, w={w:.4g}, r={r:.4g}): {exc}") from None
    return out, res


__all__ = ["Family", "FAMILIES", "MIN_RESOLUTION", "apply_family", "check_family", "factors", "round_width",
           "scale_depth", "scale_resolution", "scale_width"]
