"""Rules a space must satisfy beyond its schema (a d that some heads choice divides, patches that fit, a reachable default budget), checked at load."""
from __future__ import annotations

import dataclasses
import itertools
import re
from typing import Any, Callable

from mvsearch.arch.config import VIT_STAGES, ArchConfig, MV2Stage, ViTStage
from mvsearch.arch.geometry import stage_maps
from mvsearch.core.errors import ArchError, BudgetError, DataError, SpaceError, TrainError
from mvsearch.core.limits import (MAX_CLASSES, MAX_DEPTH, MAX_EXPANSION, MAX_KERNEL, MAX_SEED, MAX_TRIALS,
                                  MAX_WIDTH)
from mvsearch.cost.bounds import check_cost
from mvsearch.proxy.settings import proxy_arch
from mvsearch.space.knobs import DROPOUTS, Knob, _patch_str
from mvsearch.space.schema import ProxySpec
from mvsearch.space.space import SearchSpace
from mvsearch.space.yamlmap import Path_, _Locator


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

    def upto(bound: int) -> Callable[[Any], str | None]:
        def rule(v: Any) -> str | None:
            if v < 1:
                return f"must be a positive integer, got {v}"
            return None if v <= bound else f"{v} exceeds mvsearch's bound of {bound:,}"
        return rule

    def rate(v: Any) -> str | None:
        return None if 0 <= v < 1 else f"must be a dropout rate in [0, 1), got {v}"

    if space.num_classes < 1:
        raise loc.error(("deployment", "num_classes"), f"must be a positive integer, got {space.num_classes}")
    if space.num_classes > MAX_CLASSES:
        raise loc.error(("deployment", "num_classes"), f"{space.num_classes} exceeds mvsearch's bound of {MAX_CLASSES:,}")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", space.name):
        raise loc.error(("name",), f"use letters, digits, '.', '_' and '-' only (it names the study and "
                                   f"its database file), got {space.name!r}")
    each(("arch", "stem"), a.stem, upto(MAX_WIDTH))
    each(("arch", "expansion"), a.expansion, lambda v: f"the MV2 expansion ratio must be >= 1, got {v}" if v < 1 else (
        f"{v} exceeds mvsearch's bound of {MAX_EXPANSION}" if v > MAX_EXPANSION else None))
    for d in DROPOUTS:
        each(("arch", d), getattr(a, d), rate)
    if a.last_channels is not None and a.last_ratio is not None:
        raise loc.error(("arch", "last_ratio"), "give either last_channels or last_ratio, not both")
    if a.last_channels is not None:
        each(("arch", "last_channels"), a.last_channels, upto(MAX_WIDTH))
        if a.last_max is not None:
            raise loc.error(("arch", "last_max"), "last_max caps last_ratio; with last_channels leave it out")
    if a.last_ratio is not None:
        each(("arch", "last_ratio"), a.last_ratio, lambda v: f"must be positive, got {v}" if v <= 0 else (
            f"{v} exceeds mvsearch's bound of {MAX_WIDTH:,}" if v > MAX_WIDTH else None))
    if a.last_max is not None and upto(MAX_WIDTH)(a.last_max):
        raise loc.error(("arch", "last_max"), upto(MAX_WIDTH)(a.last_max))
    for name in ("layer1", "layer2"):
        st = getattr(a, name)
        each(("arch", name, "channels"), st.channels, upto(MAX_WIDTH))
        each(("arch", name, "blocks"), st.blocks, upto(MAX_DEPTH))
    maps = stage_maps(ArchConfig(
        layer1=MV2Stage(8, 1), layer2=MV2Stage(8, 1), layer3=ViTStage(8, 8, 1, 8), layer4=ViTStage(8, 8, 1, 8),
        layer5=ViTStage(8, 8, 1, 8)), res)
    for name in VIT_STAGES:
        st = getattr(a, name)
        p = ("arch", name)
        for f, bound in (("channels", MAX_WIDTH), ("dim", MAX_WIDTH), ("depth", MAX_DEPTH), ("heads", MAX_WIDTH)):
            each(p + (f,), getattr(st, f), upto(bound))
        each(p + ("kernel",), st.kernel, lambda v: (f"conv kernel n must be a positive odd integer, got {v}"
                                                    if v < 1 or v % 2 == 0 else upto(MAX_KERNEL)(v)))
        if st.ffn_ratio is not None and st.ffn_dim is not None:
            raise loc.error(p + ("ffn_dim",), "give either ffn_ratio or ffn_dim, not both")
        if st.ffn_dim is not None:
            each(p + ("ffn_dim",), st.ffn_dim, upto(MAX_WIDTH))
        if st.ffn_ratio is not None:
            each(p + ("ffn_ratio",), st.ffn_ratio, lambda v: f"must be positive, got {v}" if v <= 0 else (
                f"{v} exceeds mvsearch's bound of {MAX_WIDTH:,}" if v > MAX_WIDTH else None))
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

        spec = parse_spec(proxy.data)
        if spec.kind == "synthetic":
            from mvsearch.data.synthetic import parse_options

            parse_options(spec.options)
    except DataError as exc:
        raise loc.error(("proxy", "data"), str(exc)) from None
    s = space.spec.search
    if s.trials < 1:
        raise loc.error(("search", "trials"), f"must be a positive integer, got {s.trials}")
    if s.trials > MAX_TRIALS:
        raise loc.error(("search", "trials"), f"{s.trials} exceeds mvsearch's bound of {MAX_TRIALS:,}")
    if not 0 <= s.seed <= MAX_SEED:
        raise loc.error(("search", "seed"), f"must be an integer in 0..{MAX_SEED:,}, got {s.seed}")
    from mvsearch.budget import check_reachable, make_budget, parse_budget
    from mvsearch.core.units import parse_params

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
        big = space.from_params(space._extreme(max))
    except ArchError as exc:
        raise loc.error(("arch",), str(exc)) from None
    # and the largest must be small enough to count at the deployment and train at the proxy
    try:
        for patch in itertools.product(*[getattr(a, n).patch.values for n in VIT_STAGES]):
            cfg = dataclasses.replace(big, **{n: dataclasses.replace(getattr(big, n), patch=p)
                                               for n, p in zip(VIT_STAGES, patch)})
            check_cost(cfg, res, what="the space's largest architecture")
            check_cost(proxy_arch(cfg, proxy, cfg.num_classes), proxy.resolution, batch=proxy.batch_size,
                       what="the space's largest proxy network")
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
