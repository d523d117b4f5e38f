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
import itertools
import random
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from mvsearch.arch.config import VIT_STAGES, ArchConfig, MV2Stage, ViTStage
from mvsearch.space.knobs import DROPOUTS, Knob, _fixed
from mvsearch.space.schema import SpaceSpec


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
        from mvsearch.cost.analytic import analytic_cost

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
        from mvsearch.proxy.settings import ProxySettings

        kw = {k: v for k, v in self.spec.proxy.model_dump().items() if v is not None}
        kw.update({k: v for k, v in overrides.items() if v is not None})
        return ProxySettings(**kw)

    def proxy_warnings(self, proxy: Any = None) -> list[str]:
        """Patch choices that leave a stage a single patch (N = 1) at the proxy resolution."""
        from mvsearch.proxy.settings import collapse_warnings

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
