"""Knobs: one searched (or fixed) value of a space, written as a scalar, a list of choices or a range."""
from __future__ import annotations

import difflib
import math
import random
import re
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any, Mapping
from pydantic import BeforeValidator

from mvsearch.arch.geometry import parse_resolution
from mvsearch.core.errors import ArchError
from mvsearch.core.limits import MAX_KNOB_VALUES, MAX_PATCH_CHOICES
from mvsearch.core.text import shorten


DROPOUTS = ("dropout", "attn_dropout", "ffn_dropout", "classifier_dropout")


def _patch_str(p: tuple[int, int]) -> str:
    return f"{p[0]}x{p[1]}"


@dataclass(frozen=True)
class Knob:
    """The values one architecture knob may take."""

    values: tuple  # every allowed value (ints, floats, or (h, w) patches), in the file's order
    kind: str  # "int", "float" or "patch"
    low: int | None = None  # set for an integer range (sampled with suggest_int)
    high: int | None = None
    step: int | None = None

    @property
    def fixed(self) -> bool:
        return len(self.values) == 1

    @property
    def is_range(self) -> bool:
        return self.step is not None

    def choices(self) -> tuple:
        """The values as Optuna categorical choices (patches as "2x2" strings)."""
        return tuple(_patch_str(v) for v in self.values) if self.kind == "patch" else self.values

    def decode(self, raw: Any) -> Any:
        """An Optuna parameter value -> the knob's value."""
        if self.kind == "patch":
            return _to_patch(raw) if isinstance(raw, str) else tuple(raw)
        return raw

    def encode(self, value: Any) -> Any:
        """A knob value -> the Optuna parameter value, or a KeyError when it is not allowed."""
        if self.kind == "patch":
            value = tuple(value)
        for v in self.values:
            if v == value:
                return _patch_str(v) if self.kind == "patch" else v
        raise KeyError(value)

    def suggest(self, trial: Any, name: str) -> Any:
        if self.fixed:
            return self.values[0]
        if self.is_range:
            return trial.suggest_int(name, self.low, self.high, step=self.step)
        return self.decode(trial.suggest_categorical(name, self.choices()))

    def random(self, rng: random.Random) -> Any:
        return rng.choice(self.choices()) if not self.is_range else rng.randrange(self.low, self.high + 1, self.step)

    def describe(self) -> str:
        if self.is_range:
            return f"{self.low}..{self.high} step {self.step} ({len(self.values)} values)"
        shown = [_patch_str(v) if self.kind == "patch" else _fmt(v) for v in self.values]
        return shown[0] if self.fixed else "[" + ", ".join(shown) + "]"


def _fmt(v: Any) -> str:
    return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)


def _to_patch(v: Any) -> tuple[int, int]:
    if isinstance(v, str):
        m = re.fullmatch(r"\s*(\d{1,9})\s*[xX]\s*(\d{1,9})\s*", v)
        if m:
            return int(m.group(1)), int(m.group(2))
    elif isinstance(v, int) and not isinstance(v, bool):
        return v, v
    elif isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(q, int) and not isinstance(q, bool) for q in v):
        return int(v[0]), int(v[1])
    raise ValueError(f"expected a patch like 2x2, got {shorten(v)}")


def _convert(v: Any, kind: str) -> Any:
    if kind == "patch":
        return _to_patch(v)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"expected {'an integer' if kind == 'int' else 'a number'}, got {shorten(v)}")
    if kind == "int":
        if isinstance(v, float) and not v.is_integer():
            raise ValueError(f"expected an integer, got {shorten(v)}")
        return int(v)
    if not math.isfinite(v):
        raise ValueError(f"expected a finite number, got {shorten(v)}")
    return float(v) if isinstance(v, float) else v


_RANGE_KEYS = ("low", "high", "step")


def _sub(key: Any, msg: str) -> ValueError:
    """A ValueError about a key inside the knob (``@key@`` lets the formatter find its line)."""
    return ValueError(f"@{key}@{msg}")


def parse_knob(v: Any, kind: str) -> Knob:
    """A YAML value -> Knob (scalar: fixed; list: choices; mapping: int range with a step)."""
    if isinstance(v, Knob):
        return v
    if isinstance(v, Mapping):
        if kind != "int":
            raise ValueError("ranges are for integer knobs; list the choices instead, e.g. [1, 2, 4]")
        for k in v:
            if k not in _RANGE_KEYS:
                hint = difflib.get_close_matches(str(k), _RANGE_KEYS, n=1)
                did = f"; did you mean {hint[0]!r}?" if hint else "; a range takes low, high and step"
                raise _sub(k, f"unknown key {shorten(k)}{did}")
        for k in ("low", "high"):
            if k not in v:
                raise ValueError(f"a range needs {k!r} (e.g. {{low: 32, high: 96, step: 16}})")
        vals = {}
        for k in _RANGE_KEYS:
            if k in v:
                try:
                    vals[k] = _convert(v[k], "int")
                except ValueError as exc:
                    raise _sub(k, str(exc)) from None
        low, high, step = vals["low"], vals["high"], vals.get("step", 1)
        if low > high:
            raise _sub("low", f"low > high ({low} > {high}): the range is empty")
        if step <= 0:
            raise _sub("step", f"step must be positive, got {step}")
        if (high - low) // step + 1 > MAX_KNOB_VALUES:
            raise _sub("high", f"the range {low}..{high} step {step} holds {(high - low) // step + 1:,} values, over "
                               f"mvsearch's bound of {MAX_KNOB_VALUES:,} per knob; use a larger step")
        if (high - low) % step:
            raise _sub("high", f"high - low must be a multiple of step, but {high} - {low} is not a "
                               f"multiple of {step}; use high: {low + (high - low) // step * step}")
        return Knob(values=tuple(range(low, high + 1, step)), kind=kind, low=low, high=high, step=step)
    if isinstance(v, (list, tuple)):
        if not v:
            raise ValueError("empty list of choices: give at least one value")
        bound = MAX_PATCH_CHOICES if kind == "patch" else MAX_KNOB_VALUES
        if len(v) > bound:
            raise ValueError(f"{len(v):,} choices exceed mvsearch's bound of {bound:,} for a"
                             f"{' patch' if kind == 'patch' else ''} knob")
        out, seen = [], set()
        for i, item in enumerate(v):
            try:
                c = _convert(item, kind)
            except ValueError as exc:
                raise _sub(i, f"choice {i}: {exc}") from None
            if c in seen:
                raise _sub(i, f"choice {shorten(item)} is listed twice")
            seen.add(c)
            out.append(c)
        return Knob(values=tuple(out), kind=kind)
    if v is None:
        raise ValueError("a value is required (a number, a list of choices or a range)")
    return Knob(values=(_convert(v, kind),), kind=kind)


IntKnob = Annotated[Knob, BeforeValidator(partial(parse_knob, kind="int"))]


FloatKnob = Annotated[Knob, BeforeValidator(partial(parse_knob, kind="float"))]


PatchKnob = Annotated[Knob, BeforeValidator(partial(parse_knob, kind="patch"))]


def _fixed(value: Any, kind: str) -> Knob:
    return Knob(values=(value,), kind=kind)


def _resolution(v: Any) -> tuple[int, int]:
    try:
        return parse_resolution(v)
    except ArchError as exc:
        raise ValueError(str(exc).removeprefix("resolution: ")) from None
