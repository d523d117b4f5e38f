"""Units: read and write FLOPs ("1.5GFLOPs"), parameter counts ("2.3M") and durations ("1h30m"), and format them one way (k/M/G) everywhere."""
from __future__ import annotations

import math
import re

from mvsearch.core.errors import BudgetError
from mvsearch.core.text import shorten


_SCALE = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}


_NUMBER = r"(?P<num>[-+]?[0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)"


_FLOPS_RE = re.compile(rf"^{_NUMBER}\s*(?P<unit>[kmgt]?)\s*(?:flops?|macs?)?$", re.IGNORECASE)


_PARAMS_RE = re.compile(rf"^{_NUMBER}\s*(?P<unit>[kmg]?)\s*(?:params?|parameters?|p)?$", re.IGNORECASE)


_DURATION_RE = re.compile(r"(?P<num>[0-9]*\.?[0-9]+)\s*(?P<unit>ms|s|sec|m|min|h|hr|d)?", re.IGNORECASE)


_DURATION_UNITS = {"ms": 1e-3, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "hr": 3600.0,
                   "d": 86400.0, None: 1.0}


def _parse(text: str, regex: re.Pattern, what: str, example: str, option: str) -> int:
    s = str(text).strip().replace("_", "")
    m = regex.match(s) if len(s) <= 100 else None
    if m is None:
        raise BudgetError(f"{option}: cannot read {shorten(text)} as {what}; use e.g. {example}")
    value = float(m.group("num")) * _SCALE[m.group("unit").lower()]
    if not math.isfinite(value):
        raise BudgetError(f"{option}: {shorten(text)} is too large to be {what}; use e.g. {example}")
    if value <= 0:
        raise BudgetError(f"{option}: must be positive, got {shorten(text)}")
    if value < 1:
        raise BudgetError(f"{option}: {shorten(text)} is less than one {what.split()[0]}; use e.g. {example}")
    return int(round(value))


def parse_flops(text: str, option: str = "--budget") -> int:
    """``"1.5GFLOPs"``, ``"1.5G"``, ``"400M"``, ``"400MFLOPs"``, ``"1.5e9"`` -> FLOPs as an int."""
    return _parse(text, _FLOPS_RE, "FLOPs", "1.5GFLOPs, 400M or 1.5e9", option)


def parse_params(text: str, option: str = "--max-params") -> int:
    """``"2.3M"``, ``"2.3Mparams"``, ``"500k"``, ``"2300000"`` -> a parameter count."""
    return _parse(text, _PARAMS_RE, "params (a parameter count)", "2.3M, 500k or 2300000", option)


def parse_duration(text: str, option: str = "--timeout") -> float:
    """``"2h"``, ``"30m"``, ``"90s"``, ``"1h30m"``, ``"45"`` (seconds) -> seconds."""
    s = str(text).strip().lower().replace(" ", "")
    if len(s) > 100:
        raise BudgetError(f"{option}: cannot read {shorten(text)} as a duration; use e.g. 2h, 30m, 90s or 1h30m")
    pos, total, found = 0, 0.0, False
    while pos < len(s):
        m = _DURATION_RE.match(s, pos)
        if m is None or m.end() == pos:
            found = False
            break
        total += float(m.group("num")) * _DURATION_UNITS[m.group("unit")]
        pos, found = m.end(), True
    if not found:
        raise BudgetError(f"{option}: cannot read {shorten(text)} as a duration; use e.g. 2h, 30m, 90s or 1h30m")
    if total <= 0 or not math.isfinite(total):
        raise BudgetError(f"{option}: must be positive and finite, got {shorten(text)}")
    return total


def format_count(n: float | int | None, unit: str = "") -> str:
    """1_500_000_000 -> ``1.5G``; 418_183_680 -> ``418M``; None -> ``-``."""
    if n is None:
        return "-"
    for suffix, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{suffix}{unit}"
    return f"{n:.3g}{unit}" if isinstance(n, float) else f"{n}{unit}"


def format_flops(n: float | int | None) -> str:
    """A FLOP count in G with 2 decimals (``0.42G``, ``1.5G``) - the unit the paper's tiers are quoted in."""
    if n is None:
        return "-"
    if n < 1e8:
        return format_count(n)
    return f"{n / 1e9:.2f}".rstrip("0").rstrip(".") + "G"
