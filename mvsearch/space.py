"""Search spaces: a YAML file -> a validated, frozen :class:`SearchSpace` that samples ArchConfigs.

A space declares, per MobileViT stage (paper Sec. 3, Table 4), the values each knob may take:
channel widths C, transformer width d, depth L, FFN width (as a ratio of d or absolute), heads,
patch h x w, conv kernel n, MV2 expansion, plus the deployment target (resolution and classes,
where budgets are counted), the proxy training, and search defaults. A knob is written as

* a scalar (``kernel: 3``): fixed, not searched;
* a list of choices (``patch: [2x2, 1x1, 2x1]``, ``heads: [2, 4, 8]``);
* an integer range with a step (``channels: {low: 32, high: 160, step: 16}``).

The file is validated by pydantic into frozen models; errors name the file, the key path and the
line (``spaces/x.yaml:14: arch.layer3.dim: ...``), unknown keys suggest the nearest valid key, and
impossible spaces (empty choices, ``low > high``, an even kernel, a d that no heads choice divides,
a patch larger than its feature map, a default budget below the cheapest member) are refused before
any trial runs. Integers are decimal only (YAML 1.1's ``0x2`` and ``010`` stay text and are refused).

Sampling asks an Optuna trial for every searched knob under a stable parameter name
(``layer3.dim``); heads that do not divide the sampled d are replaced by the nearest choice that
does (the trial's ``params`` keep the sampled value, its ``arch`` the one trained).
"""
from __future__ import annotations

import dataclasses
import difflib
import itertools
import math
import random
import re
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Callable, Literal, Mapping, Optional, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError

from mvsearch.arch import VIT_STAGES, ArchConfig, MV2Stage, ViTStage, parse_resolution, stage_maps
from mvsearch.errors import ArchError, BudgetError, DataError, SpaceError, TrainError

DROPOUTS = ("dropout", "attn_dropout", "ffn_dropout", "classifier_dropout")


# ---------------------------------------------------------------------- knobs
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
        m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", v)
        if m:
            return int(m.group(1)), int(m.group(2))
    elif isinstance(v, int) and not isinstance(v, bool):
        return v, v
    elif isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(q, int) and not isinstance(q, bool) for q in v):
        return int(v[0]), int(v[1])
    raise ValueError(f"expected a patch like 2x2, got {v!r}")


def _convert(v: Any, kind: str) -> Any:
    if kind == "patch":
        return _to_patch(v)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"expected {'an integer' if kind == 'int' else 'a number'}, got {v!r}")
    if kind == "int":
        if isinstance(v, float) and not v.is_integer():
            raise ValueError(f"expected an integer, got {v!r}")
        return int(v)
    if not math.isfinite(v):
        raise ValueError(f"expected a finite number, got {v!r}")
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
                raise _sub(k, f"unknown key {k!r}{did}")
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
        if (high - low) % step:
            raise _sub("high", f"high - low must be a multiple of step, but {high} - {low} is not a "
                               f"multiple of {step}; use high: {low + (high - low) // step * step}")
        return Knob(values=tuple(range(low, high + 1, step)), kind=kind, low=low, high=high, step=step)
    if isinstance(v, (list, tuple)):
        if not v:
            raise ValueError("empty list of choices: give at least one value")
        out = []
        for i, item in enumerate(v):
            try:
                c = _convert(item, kind)
            except ValueError as exc:
                raise _sub(i, f"choice {i}: {exc}") from None
            if c in out:
                raise _sub(i, f"choice {item!r} is listed twice")
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


# ---------------------------------------------------------------------- the schema
class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


class MV2Spec(_Model):
    """layer1 / layer2: MobileNetV2 stages."""

    channels: IntKnob  # output channels
    blocks: IntKnob = _fixed(1, "int")  # MV2 blocks in the stage


class ViTSpec(_Model):
    """layer3..5: a stride-2 MV2 block and a MobileViT block."""

    channels: IntKnob  # C
    dim: IntKnob  # d, the transformer width
    depth: IntKnob  # L, transformer layers
    ffn_ratio: Optional[FloatKnob] = None  # FFN width = round(ratio * d) (default: 2, the paper's)
    ffn_dim: Optional[IntKnob] = None  # or an absolute FFN width
    heads: IntKnob = _fixed(4, "int")  # attention heads (must divide d)
    patch: PatchKnob = _fixed((2, 2), "patch")  # unfold patch h x w
    kernel: IntKnob = _fixed(3, "int")  # n, the local and fusion conv kernel (odd)


class ArchSpec(_Model):
    """Knobs of the whole network."""

    stem: IntKnob = _fixed(16, "int")  # stem output channels
    expansion: FloatKnob = _fixed(4, "float")  # MV2 expansion ratio
    last_channels: Optional[IntKnob] = None  # width of the final 1x1 conv, absolute...
    last_ratio: Optional[FloatKnob] = None  # ...or as a ratio of layer5's channels (default 4)
    last_max: Optional[int] = None  # cap for last_ratio (default 960, the reference's)
    dropout: FloatKnob = _fixed(0.1, "float")
    attn_dropout: FloatKnob = _fixed(0.0, "float")
    ffn_dropout: FloatKnob = _fixed(0.0, "float")
    classifier_dropout: FloatKnob = _fixed(0.1, "float")
    layer1: MV2Spec
    layer2: MV2Spec
    layer3: ViTSpec
    layer4: ViTSpec
    layer5: ViTSpec


class DeploymentSpec(_Model):
    """Where budgets are counted: the deployed network's input and classifier."""

    resolution: Annotated[tuple[int, int], BeforeValidator(_resolution)] = (256, 256)
    num_classes: int = 1000


class ProxySpec(_Model):
    """The proxy training (keys of :class:`mvsearch.proxy.ProxySettings`; unset: its defaults)."""

    data: Optional[str] = None
    resolution: Optional[int] = None
    stem_stride: Optional[int] = None
    epochs: Optional[int] = None
    batch_size: Optional[int] = None
    train_samples: Optional[int] = None
    val_samples: Optional[int] = None
    lr: Optional[float] = None
    weight_decay: Optional[float] = None
    warmup_epochs: Optional[float] = None
    label_smoothing: Optional[float] = None


def _count_text(v: Any) -> Any:
    # YAML reads `budget: 1500000000` as an int and `budget: 1.5e+9` as a float: keep them as text
    # for mvsearch.budget, which parses exactly what --budget / --max-params accept
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return repr(v)
    return v


_Count = Annotated[str, BeforeValidator(_count_text)]


class SearchSpec(_Model):
    """Defaults of ``mvsearch run`` for this space (each has a command-line option)."""

    trials: int = 20  # trained trials per run (budget rejections do not count)
    sampler: Literal["tpe", "random", "nsga2"] = "tpe"
    pruner: Literal["hyperband", "median", "none"] = "median"
    budget: Optional[_Count] = None  # e.g. "1.5GFLOPs" or "0.42G,1.05G,2.0G" (or a plain number)
    tiers: Optional[str] = None  # "paper"
    max_params: Optional[_Count] = None  # e.g. "2.3M" (or a plain number: 2300000)
    seed: int = 0


class SpaceSpec(_Model):
    """A whole space file."""

    name: str
    description: str = ""
    deployment: DeploymentSpec = DeploymentSpec()
    proxy: ProxySpec = ProxySpec()
    search: SearchSpec = SearchSpec()
    arch: ArchSpec


# ---------------------------------------------------------------------- YAML with line numbers
Path_ = tuple  # a key path: ("arch", "layer3", "dim")


class _Loader(yaml.SafeLoader):
    """SafeLoader with decimal integers only.

    YAML 1.1 reads ``0x2`` as the hexadecimal integer 2, ``010`` as octal 8 and ``1:30`` as 90, so a
    patch written ``0x2`` would silently become 2x2; here those stay strings and are refused.
    """


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:int"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:int", re.compile(r"^[-+]?(?:0|[1-9][0-9_]*)$"),
                              list("-+0123456789"))


def _yaml_with_lines(text: str, file: str) -> tuple[Any, dict[Path_, int]]:
    """Parse YAML; also return the 1-based line of every key path (duplicate keys refused)."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{file}:{mark.line + 1}" if mark is not None else file
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpaceError(f"{where}: not valid YAML ({problem})") from None
    finally:
        loader.dispose()
    lines: dict[Path_, int] = {}

    def walk(n: yaml.Node, path: Path_) -> None:
        lines.setdefault(path, n.start_mark.line + 1)
        if isinstance(n, yaml.MappingNode):
            seen = set()
            for k, v in n.value:
                key = k.value if isinstance(k, yaml.ScalarNode) else str(k)
                if key in seen:
                    raise SpaceError(f"{file}:{k.start_mark.line + 1}: {_dotted(path + (key,))}: "
                                     f"duplicate key; each key may appear once")
                seen.add(key)
                lines[path + (key,)] = k.start_mark.line + 1
                walk(v, path + (key,))
        elif isinstance(n, yaml.SequenceNode):
            for i, v in enumerate(n.value):
                walk(v, path + (i,))

    if node is not None:
        walk(node, ())
    return data, lines


def _dotted(path: Path_) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


class _Locator:
    """Turns (key path, message) into ``file:line: path: message``."""

    def __init__(self, file: str, lines: dict[Path_, int]) -> None:
        self.file, self.lines = file, lines

    def error(self, path: Path_, msg: str) -> SpaceError:
        m = re.match(r"^@([^@]*)@(.*)$", msg, re.S)
        if m:  # a key inside the value (knob ranges, list items)
            sub = m.group(1)
            path = path + ((int(sub),) if sub.isdigit() else (sub,))
            msg = m.group(2)
        line = None
        for i in range(len(path), -1, -1):
            if path[:i] in self.lines:
                line = self.lines[path[:i]]
                break
        where = f"{self.file}:{line}" if line is not None else self.file
        return SpaceError(f"{where}: {_dotted(path)}: {msg}")


def _model_at(path: Path_) -> type[BaseModel] | None:
    """The pydantic model class that validates the mapping at ``path``."""
    model: Any = SpaceSpec
    for key in path:
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or key not in model.model_fields:
            return None
        ann = model.model_fields[key].annotation
        while get_origin(ann) in (Union, Optional) or (get_origin(ann) is not None and type(None) in get_args(ann)):
            ann = next(a for a in get_args(ann) if a is not type(None))
        model = ann
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _pydantic_error(exc: ValidationError, loc: _Locator) -> SpaceError:
    errors = exc.errors()
    # a misspelt key is reported as both "unknown key" and "required key is missing": the first,
    # with its "did you mean", is the one that tells the user what to fix
    err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    path = tuple(err["loc"])
    etype = err["type"]
    if etype == "extra_forbidden":
        parent = _model_at(path[:-1])
        known = list(parent.model_fields) if parent is not None else []
        hint = difflib.get_close_matches(str(path[-1]), known, n=1)
        did = f"; did you mean {hint[0]!r}?" if hint else (f"; known: {', '.join(known)}" if known else "")
        return loc.error(path, f"unknown key{did}")
    if etype == "missing":
        return loc.error(path, "required key is missing")
    msg = err["msg"]
    if etype == "value_error":
        msg = msg.removeprefix("Value error, ")
        return loc.error(path, msg)
    if etype == "literal_error":
        return loc.error(path, f"{msg.replace('Input should be', 'must be')}, got {err.get('input')!r}")
    return loc.error(path, f"{msg[0].lower()}{msg[1:]}, got {err.get('input')!r}")


# ---------------------------------------------------------------------- the space
@dataclass(frozen=True)
class CostRange:
    """Extremes of a space at its deployment resolution (analytic, fvcore-exact)."""

    min_flops: int
    max_flops: int
    min_params: int
    max_params: int


@dataclass(frozen=True)
class SearchSpace:
    """A validated space: samples ArchConfigs, counts its members, knows its extremes."""

    spec: SpaceSpec
    file: str  # where it was read from ("<string>" for text)
    text: str  # the YAML as read (stored in the study)

    # ------------------------------------------------------------ basics
    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def resolution(self) -> tuple[int, int]:
        return self.spec.deployment.resolution

    @property
    def num_classes(self) -> int:
        return self.spec.deployment.num_classes

    def knobs(self) -> list[tuple[str, Knob]]:
        """Every knob, in sampling order, under its Optuna parameter name."""
        a = self.spec.arch
        out: list[tuple[str, Knob]] = [("stem", a.stem), ("expansion", a.expansion)]
        out.append(("last_channels", a.last_channels) if a.last_channels is not None
                   else ("last_ratio", a.last_ratio or _fixed(4, "float")))
        out += [(d, getattr(a, d)) for d in DROPOUTS]
        for name in ("layer1", "layer2"):
            st = getattr(a, name)
            out += [(f"{name}.channels", st.channels), (f"{name}.blocks", st.blocks)]
        for name in VIT_STAGES:
            st = getattr(a, name)
            out += [(f"{name}.channels", st.channels), (f"{name}.dim", st.dim), (f"{name}.depth", st.depth)]
            out.append((f"{name}.ffn_dim", st.ffn_dim) if st.ffn_dim is not None
                       else (f"{name}.ffn_ratio", st.ffn_ratio or _fixed(2, "float")))
            out += [(f"{name}.heads", st.heads), (f"{name}.patch", st.patch), (f"{name}.kernel", st.kernel)]
        return out

    def searched(self) -> list[tuple[str, Knob]]:
        """The knobs with more than one value (the Optuna parameters of a trial)."""
        return [(n, k) for n, k in self.knobs() if not k.fixed]

    @property
    def last_max(self) -> int:
        return self.spec.arch.last_max if self.spec.arch.last_max is not None else 960

    # ------------------------------------------------------------ params <-> architectures
    def from_params(self, params: Mapping[str, Any]) -> ArchConfig:
        """The architecture for one value of every searched knob (fixed knobs fill the rest)."""
        v = {}
        for name, knob in self.knobs():
            v[name] = knob.decode(params[name]) if name in params else knob.values[0]
        vit = {}
        for name in VIT_STAGES:
            dim = v[f"{name}.dim"]
            heads = _repair_heads(dim, v[f"{name}.heads"], getattr(self.spec.arch, name).heads.values)
            ffn = v[f"{name}.ffn_dim"] if f"{name}.ffn_dim" in v else max(1, round(v[f"{name}.ffn_ratio"] * dim))
            vit[name] = ViTStage(channels=v[f"{name}.channels"], dim=dim, depth=v[f"{name}.depth"],
                                 ffn_dim=ffn, heads=heads, patch=tuple(v[f"{name}.patch"]),
                                 kernel=v[f"{name}.kernel"])
        c5 = vit["layer5"].channels
        last = v["last_channels"] if "last_channels" in v else min(max(1, round(v["last_ratio"] * c5)), self.last_max)
        return ArchConfig(
            stem=v["stem"],
            layer1=MV2Stage(v["layer1.channels"], v["layer1.blocks"]),
            layer2=MV2Stage(v["layer2.channels"], v["layer2.blocks"]),
            **vit,
            stem_stride=2,
            expansion=v["expansion"],
            last_channels=last,
            num_classes=self.num_classes,
            **{d: v[d] for d in DROPOUTS},
        )

    def sample(self, trial: Any) -> ArchConfig:
        """Ask an Optuna trial for every searched knob; return the architecture."""
        return self.from_params({n: k.suggest(trial, n) for n, k in self.searched()})

    def random_params(self, rng: random.Random) -> dict[str, Any]:
        """Uniformly random values of the searched knobs (for screening and tests)."""
        return {n: k.random(rng) for n, k in self.searched()}

    def encode(self, cfg: ArchConfig, *, ignore_dropout: bool = True) -> dict[str, Any] | None:
        """The params that give ``cfg`` (None when ``cfg`` is not a member of the space).

        Dropout rates are training settings, not architecture: with ``ignore_dropout`` they are not
        compared, so a paper preset is a member when its structure is.
        """
        if cfg.stem_stride != 2:
            return None
        got: dict[str, Any] = {"stem": cfg.stem, "expansion": cfg.expansion,
                               "layer1.channels": cfg.layer1.channels, "layer1.blocks": cfg.layer1.blocks,
                               "layer2.channels": cfg.layer2.channels, "layer2.blocks": cfg.layer2.blocks}
        for d in DROPOUTS:
            got[d] = getattr(cfg, d)
        for name in VIT_STAGES:
            st = getattr(cfg, name)
            got.update({f"{name}.channels": st.channels, f"{name}.dim": st.dim, f"{name}.depth": st.depth,
                        f"{name}.heads": st.heads, f"{name}.patch": st.patch, f"{name}.kernel": st.kernel,
                        f"{name}.ffn_dim": st.ffn_dim})
        params: dict[str, Any] = {}
        knobs = dict(self.knobs())
        for name, knob in knobs.items():
            if ignore_dropout and name in DROPOUTS:
                continue
            try:
                if name == "last_ratio":
                    c5 = cfg.layer5.channels
                    match = [r for r in knob.values if min(max(1, round(r * c5)), self.last_max) == cfg.last_channels]
                    value = knob.encode(match[0]) if match else knob.encode(None)
                elif name == "last_channels":
                    value = knob.encode(cfg.last_channels)
                elif name.endswith(".ffn_ratio"):
                    st = getattr(cfg, name.split(".")[0])
                    match = [r for r in knob.values if max(1, round(r * st.dim)) == st.ffn_dim]
                    value = knob.encode(match[0]) if match else knob.encode(None)
                else:
                    value = knob.encode(got[name])
            except KeyError:
                return None
            if not knob.fixed:
                params[name] = value
        built = self.from_params(params)
        if ignore_dropout:
            built = dataclasses.replace(built, **{d: getattr(cfg, d) for d in DROPOUTS})
        return params if built == dataclasses.replace(cfg, num_classes=self.num_classes) else None

    def contains(self, cfg: ArchConfig) -> bool:
        return self.encode(cfg) is not None

    # ------------------------------------------------------------ size and extremes
    def size(self) -> int:
        """Number of distinct architectures (dropout choices included)."""
        a = self.spec.arch
        total = 1
        skip = {"last_ratio", "last_channels", "layer5.channels"}
        for name, knob in self.knobs():
            stage = name.split(".")[0]
            if name in skip or (stage in VIT_STAGES and name.split(".")[1] in ("dim", "heads", "ffn_ratio", "ffn_dim")):
                continue
            total *= len(knob.values)
        for name in VIT_STAGES:
            st = getattr(a, name)
            n = 0
            for dim in st.dim.values:
                heads = sum(1 for h in st.heads.values if dim % h == 0)
                if st.ffn_dim is not None:
                    ffn = len(st.ffn_dim.values)
                else:
                    ffn = len({max(1, round(r * dim)) for r in (st.ffn_ratio or _fixed(2, "float")).values})
                n += heads * ffn
            total *= n
        c5s = a.layer5.channels.values
        if a.last_channels is not None:
            total *= len(c5s) * len(a.last_channels.values)
        else:
            ratios = (a.last_ratio or _fixed(4, "float")).values
            total *= len({(c, min(max(1, round(r * c)), self.last_max)) for c in c5s for r in ratios})
        return total

    def _extreme(self, pick: Callable[[tuple], Any]) -> dict[str, Any]:
        params = {}
        for name, knob in self.searched():
            if knob.kind == "patch" or name.endswith(".heads"):
                continue
            params[name] = knob.encode(pick(knob.values))
        return params

    def cost_range(self) -> CostRange:
        """Min/max FLOPs and params at the deployment resolution.

        Every knob but the patch raises the cost monotonically (widths, d, L, FFN, blocks,
        expansion, kernel, last width; heads change neither FLOPs nor params), so the extremes lie
        at all-min / all-max knobs, with the patches of the three stages enumerated there.
        """
        from mvsearch.analytic import analytic_cost

        patch_knobs = [(n, k) for n, k in self.searched() if k.kind == "patch"]
        flops, params = [], []
        for pick in (min, max):
            base = self._extreme(pick)
            for combo in itertools.product(*[k.choices() for _, k in patch_knobs]):
                p = dict(base)
                p.update({n: c for (n, _), c in zip(patch_knobs, combo)})
                c = analytic_cost(self.from_params(p), self.resolution)
                flops.append(c.flops)
                params.append(c.params)
        return CostRange(min(flops), max(flops), min(params), max(params))

    # ------------------------------------------------------------ proxy
    def proxy_settings(self, **overrides: Any):
        """The space's :class:`~mvsearch.proxy.ProxySettings`, with overrides (None: ignored)."""
        from mvsearch.proxy import ProxySettings

        kw = {k: v for k, v in self.spec.proxy.model_dump().items() if v is not None}
        kw.update({k: v for k, v in overrides.items() if v is not None})
        return ProxySettings(**kw)

    def proxy_warnings(self, proxy: Any = None) -> list[str]:
        """Patch choices that leave a stage a single patch (N = 1) at the proxy resolution."""
        from mvsearch.proxy import collapse_warnings

        proxy = proxy or self.proxy_settings()
        base = self.from_params(self._extreme(min))
        out = []
        for name in VIT_STAGES:
            for patch in getattr(self.spec.arch, name).patch.values:
                cfg = dataclasses.replace(base, **{name: dataclasses.replace(getattr(base, name), patch=patch)})
                out += [w for w in collapse_warnings(cfg, proxy.resolution, proxy.stem_stride) if w.startswith(name)]
        return out

    def describe(self) -> list[tuple[str, str]]:
        """(parameter name, values) of every knob, for ``mvsearch space``."""
        return [(n, k.describe()) for n, k in self.knobs()]


def _repair_heads(dim: int, heads: int, choices: tuple) -> int:
    """``heads`` if it divides ``dim``, else the nearest choice that does (ties: the smaller)."""
    if dim % heads == 0:
        return heads
    valid = [h for h in choices if dim % h == 0]
    return min(valid, key=lambda h: (abs(h - heads), h))


# ---------------------------------------------------------------------- rules beyond the schema
def _check(space: SearchSpace, loc: _Locator) -> None:
    a = space.spec.arch
    res = space.resolution

    def each(path: Path_, knob: Knob, rule: Callable[[Any], str | None]) -> None:
        for i, v in enumerate(knob.values):
            msg = rule(v)
            if msg:
                sub = () if knob.fixed or knob.is_range else (i,)
                raise loc.error(path + sub, msg)

    def positive(v: Any) -> str | None:
        return None if v >= 1 else f"must be a positive integer, got {v}"

    def rate(v: Any) -> str | None:
        return None if 0 <= v < 1 else f"must be a dropout rate in [0, 1), got {v}"

    if space.num_classes < 1:
        raise loc.error(("deployment", "num_classes"), f"must be a positive integer, got {space.num_classes}")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", space.name):
        raise loc.error(("name",), f"use letters, digits, '.', '_' and '-' only (it names the study and "
                                   f"its database file), got {space.name!r}")
    each(("arch", "stem"), a.stem, positive)
    each(("arch", "expansion"), a.expansion, lambda v: None if v >= 1 else f"the MV2 expansion ratio must be >= 1, got {v}")
    for d in DROPOUTS:
        each(("arch", d), getattr(a, d), rate)
    if a.last_channels is not None and a.last_ratio is not None:
        raise loc.error(("arch", "last_ratio"), "give either last_channels or last_ratio, not both")
    if a.last_channels is not None:
        each(("arch", "last_channels"), a.last_channels, positive)
        if a.last_max is not None:
            raise loc.error(("arch", "last_max"), "last_max caps last_ratio; with last_channels leave it out")
    if a.last_ratio is not None:
        each(("arch", "last_ratio"), a.last_ratio, lambda v: None if v > 0 else f"must be positive, got {v}")
    if a.last_max is not None and a.last_max < 1:
        raise loc.error(("arch", "last_max"), f"must be a positive integer, got {a.last_max}")
    for name in ("layer1", "layer2"):
        st = getattr(a, name)
        each(("arch", name, "channels"), st.channels, positive)
        each(("arch", name, "blocks"), st.blocks, positive)
    maps = stage_maps(ArchConfig(
        layer1=MV2Stage(8, 1), layer2=MV2Stage(8, 1), layer3=ViTStage(8, 8, 1, 8), layer4=ViTStage(8, 8, 1, 8),
        layer5=ViTStage(8, 8, 1, 8)), res)
    for name in VIT_STAGES:
        st = getattr(a, name)
        p = ("arch", name)
        for f in ("channels", "dim", "depth", "heads"):
            each(p + (f,), getattr(st, f), positive)
        each(p + ("kernel",), st.kernel, lambda v: None if v >= 1 and v % 2 else f"conv kernel n must be a positive odd integer, got {v}")
        if st.ffn_ratio is not None and st.ffn_dim is not None:
            raise loc.error(p + ("ffn_dim",), "give either ffn_ratio or ffn_dim, not both")
        if st.ffn_dim is not None:
            each(p + ("ffn_dim",), st.ffn_dim, positive)
        if st.ffn_ratio is not None:
            each(p + ("ffn_ratio",), st.ffn_ratio, lambda v: None if v > 0 else f"must be positive, got {v}")
        for dim in st.dim.values:
            if not any(dim % h == 0 for h in st.heads.values):
                raise loc.error(p + ("dim",), f"transformer dim must be divisible by heads, but d={dim} is not "
                                              f"divisible by any heads choice ({', '.join(map(str, st.heads.values))}); "
                                              f"use a dim step that is a multiple of a heads choice")
        for h in st.heads.values:
            if not any(d % h == 0 for d in st.dim.values):
                raise loc.error(p + ("heads",), f"heads={h} divides no dim choice of {name}; drop it")
        mh, mw = maps[name]
        each(p + ("patch",), st.patch, lambda v: None if v[0] >= 1 and v[1] >= 1 and v[0] <= mh and v[1] <= mw else (
            f"patch {_patch_str(v)} does not fit the {mh}x{mw} map {name} has at the deployment resolution "
            f"{res[0]}x{res[1]}" if v[0] >= 1 and v[1] >= 1 else f"patch sides must be positive, got {_patch_str(v)}"))
    # proxy settings and search defaults are checked where they are declared
    try:
        proxy = space.proxy_settings()
    except (TrainError, TypeError) as exc:
        # ProxySettings says "lr: must be ..." or "proxy resolution: must be ...": point at that key
        msg = str(exc)
        m = re.match(r"^(?:proxy )?([a-z_]+): (.*)$", msg, re.S)
        if m and m.group(1) in ProxySpec.model_fields:
            raise loc.error(("proxy", m.group(1)), m.group(2)) from None
        raise loc.error(("proxy",), msg) from None
    try:
        from mvsearch.data.spec import parse_spec

        parse_spec(proxy.data)
    except DataError as exc:
        raise loc.error(("proxy", "data"), str(exc)) from None
    s = space.spec.search
    if s.trials < 1:
        raise loc.error(("search", "trials"), f"must be a positive integer, got {s.trials}")
    from mvsearch.budget import check_reachable, make_budget, parse_budget, parse_params

    def budget_error(exc: BudgetError, key: str) -> SpaceError:
        msg = str(exc)
        for option in ("--budget: ", "--tiers: ", "--max-params: "):
            msg = msg.removeprefix(option)
        if msg.startswith("--max-params "):  # "--max-params 1k is below ...": the file's key, not the option
            msg = "max_params " + msg.removeprefix("--max-params ")
        return loc.error(("search", key), msg)

    flops_key = "tiers" if s.tiers is not None and s.budget is None else "budget"
    cap = None
    if s.max_params is not None:
        try:
            cap = parse_params(s.max_params)
        except BudgetError as exc:
            raise budget_error(exc, "max_params") from None
    budget = None
    if s.budget is not None or s.tiers is not None:
        try:
            budget = parse_budget(s.budget, tiers=s.tiers, max_params=s.max_params)
        except BudgetError as exc:
            raise budget_error(exc, flops_key) from None
    # every extreme must be a valid network
    try:
        space.from_params(space._extreme(min))
        space.from_params(space._extreme(max))
    except ArchError as exc:
        raise loc.error(("arch",), str(exc)) from None
    # and the default budget must admit at least one architecture of the space
    if budget is not None or cap is not None:
        rng = space.cost_range()
        try:
            check_reachable(budget or make_budget([rng.max_flops], cap), min_flops=rng.min_flops,
                            max_flops=rng.max_flops, min_params=rng.min_params, where=f"space {space.name!r}")
        except BudgetError as exc:
            raise budget_error(exc, "max_params" if str(exc).startswith("--max-params") else flops_key) from None


# ---------------------------------------------------------------------- loading
def parse_space(text: str, file: str = "<string>") -> SearchSpace:
    """Validate YAML text into a SearchSpace (SpaceError with file:line: path: message)."""
    data, lines = _yaml_with_lines(text, file)
    loc = _Locator(file, lines)
    if not isinstance(data, Mapping):
        raise SpaceError(f"{file}: a search space must be a mapping with name, arch (and optionally "
                         f"deployment, proxy, search), got {type(data).__name__}")
    try:
        spec = SpaceSpec.model_validate(data)
    except ValidationError as exc:
        raise _pydantic_error(exc, loc) from None
    space = SearchSpace(spec=spec, file=file, text=text)
    _check(space, loc)
    return space


def spaces_dirs() -> list[Path]:
    """Where a bare space name is looked up: ./spaces, then the repository's spaces/."""
    here = Path(__file__).resolve().parent.parent / "spaces"
    dirs = [Path("spaces")]
    if here.resolve() != Path("spaces").resolve():
        dirs.append(here)
    return dirs


def known_spaces() -> list[str]:
    names = set()
    for d in spaces_dirs():
        if d.is_dir():
            names.update(p.stem for p in d.glob("*.yaml"))
    return sorted(names)


def find_space(ref: str) -> Path:
    """``spaces/mobile.yaml`` (a file) or ``mobile`` (a name in :func:`spaces_dirs`) -> the file."""
    p = Path(ref).expanduser()
    if p.is_file():
        return p
    looks_like_name = re.fullmatch(r"[A-Za-z0-9_.-]+", ref) is not None and not ref.endswith((".yaml", ".yml"))
    if looks_like_name:
        for d in spaces_dirs():
            for cand in (d / f"{ref}.yaml", d / f"{ref}.yml"):
                if cand.is_file():
                    return cand
    known = known_spaces()
    hint = difflib.get_close_matches(p.stem, known, n=1)
    did = f" (did you mean {hint[0]!r}?)" if hint else ""
    if p.is_dir():
        raise SpaceError(f"--space {ref}: is a directory; pass a space file such as spaces/mobile.yaml")
    raise SpaceError(f"--space {ref}: no such file or space name{did}; known spaces: "
                     f"{', '.join(known) or 'none'} (pass a name or a path to a .yaml file)")


def load_space(ref: str | Path) -> SearchSpace:
    """Read and validate a space file, or a shipped space by name."""
    path = find_space(str(ref))
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpaceError(f"{path}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None
    return parse_space(text, str(path))


__all__ = ["Knob", "SearchSpace", "SpaceSpec", "CostRange", "parse_space", "load_space", "find_space",
           "known_spaces", "parse_knob"]
