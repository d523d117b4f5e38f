"""The fidelity study: does a short proxy training rank architectures as a longer training does?

A search ranks its candidates by a proxy training (a few epochs on a subset of the images) and
trusts that the order would survive a real training. ``mvsearch fidelity`` measures that trust
(issue #12): it draws N architectures of a space, trains each under a *reference* setting (longer:
more epochs, more images) with ``--reference-seeds`` seeds, so the reference's own noise is known,
and under every ``--proxy`` setting with ``--seeds`` seeds, then compares the orders
(:mod:`mvsearch.analysis.fidelity_report`).

The plan (:func:`plan`), deterministic for a space, budget, N and ``--plan-seed``:

* the architectures are spread over the budget's FLOP band(s): a pool of uniform draws of the space
  (screened: each in some tier's band and under the params cap, as a search's start-up draws are)
  is split into N strata of equal width in log FLOPs, and one member of each stratum is drawn
  uniformly. A stratum the pool left empty takes the unpicked member nearest its centre;
* the paper presets (with the space's classes) that the space can encode and that lie in the
  budget replace the draw of their stratum (a second preset in a stratum takes the nearest free one);
* a setting (``"epochs=3,train_samples=4096"``) overrides fields of the space's proxy; the reference
  must train on more images x epochs than every proxy.

Each (architecture, setting) is one planned training point, trained with its own seed count in one
:class:`~mvsearch.search.trainings.TrainingStudy` ``NAME@fidelity``: resumable, several workers,
dead workers retried and Ctrl-C as in every planned-training study. The study's
:class:`~mvsearch.search.record.StudyRecord` has ``tier = "fidelity"`` and the plan's description
in ``fidelity``.
"""
from __future__ import annotations

import dataclasses
import math
import random
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from mvsearch import __version__
from mvsearch.arch.config import ArchConfig
from mvsearch.arch.geometry import check_resolution
from mvsearch.arch.presets import PRESETS, get_preset
from mvsearch.budget import Budget
from mvsearch.core.errors import BudgetError, MvsearchError, StudyError
from mvsearch.core.text import shorten
from mvsearch.core.units import format_flops
from mvsearch.cost.analytic import analytic_cost
from mvsearch.cost.bounds import check_cost
from mvsearch.proxy.settings import ProxySettings, proxy_arch
from mvsearch.search.record import SCHEMA_VERSION, StudyRecord
from mvsearch.search.tiers import MAX_SCREEN
from mvsearch.search.trainings import TrainingEvents, TrainingOptions, TrainingStudy, check_seeds, point_key
from mvsearch.space.space import SearchSpace

#: the tier label of a fidelity study's one Optuna study ("NAME@fidelity")
FIDELITY_LABEL = "fidelity"
#: the proxy fields a setting may change (the data is the command's --data, the same for every setting)
SETTING_KEYS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(ProxySettings) if f.name != "data")
MIN_ARCHS = 3  # a rank correlation of fewer is meaningless
MAX_ARCHS = 1000
MAX_SETTINGS = 20  # --proxy settings per study
POOL_PER_ARCH = 50  # pool of screened draws: this many per planned architecture ...
POOL_MIN, POOL_MAX = 2000, 20_000  # ... within these bounds


# ---------------------------------------------------------------------- settings
@dataclass(frozen=True)
class Setting:
    """One training setting: the space's proxy with some fields overridden."""

    text: str  # canonical overrides, "epochs=1,train_samples=64" ("" = the space's proxy as it is)
    proxy: ProxySettings  # the whole training
    seeds: int  # trainings per architecture, seeds 0..seeds-1
    reference: bool = False

    @property
    def name(self) -> str:
        return self.text or "space proxy"

    def images(self, train_images: int | None) -> int | None:
        """Images seen in one training (epochs x training images), given the training split's size."""
        return None if train_images is None else self.proxy.epochs * train_images

    def to_dict(self) -> dict[str, Any]:
        return {"setting": self.text, "seeds": self.seeds, "proxy": self.proxy.to_dict()}


def _value(key: str, raw: str, option: str, text: str) -> Any:
    kind = next(f.type for f in dataclasses.fields(ProxySettings) if f.name == key)
    if key == "train_samples" and raw.lower() in ("all", "none"):
        return None
    try:
        if str(kind).startswith("int"):
            return int(raw)
        if str(kind).startswith("float"):
            v = float(raw)
            if not math.isfinite(v):
                raise ValueError
            return v
    except ValueError:
        pass
    want = "an integer" if str(kind).startswith("int") else "a number"
    raise StudyError(f"{option} {shorten(text)}: {key} must be {want}, got {shorten(raw)}")


def parse_setting(text: str, base: ProxySettings, *, seeds: int, option: str = "--proxy",
                  reference: bool = False) -> Setting:
    """``"epochs=3,train_samples=4096"`` -> the :class:`Setting` overriding those fields of ``base``."""
    raw = str(text)
    over: dict[str, Any] = {}
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        key, eq, value = part.partition("=")
        key = key.strip().replace("-", "_")
        if not eq or not key or not value.strip():
            raise StudyError(f"{option} {shorten(raw)}: expected KEY=VALUE pairs separated by commas, e.g. "
                             f"{option} epochs=3,train_samples=4096")
        if key not in SETTING_KEYS:
            extra = " (the data is --data, the same for every setting)" if key == "data" else ""
            raise StudyError(f"{option} {shorten(raw)}: unknown key {shorten(key)}{extra}; known: "
                             f"{', '.join(SETTING_KEYS)}")
        if key in over:
            raise StudyError(f"{option} {shorten(raw)}: {key} is given twice; give each key once")
        over[key] = _value(key, value.strip(), option, raw)
    try:
        proxy = ProxySettings.from_dict({**base.to_dict(), **over})
    except MvsearchError as exc:
        raise StudyError(f"{option} {shorten(raw)}: {exc}") from None
    canon = ",".join(f"{k}={'all' if v is None else v}" for k, v in over.items())
    return Setting(canon, proxy, seeds, reference)


def check_settings(reference: Setting, proxies: Sequence[Setting],
                   train_images: Callable[[ProxySettings], int | None] = lambda p: p.train_samples) -> None:
    """Refuse no proxy, a repeated one, one equal to the reference, or a reference not longer than a proxy.

    ``train_images`` gives a setting's training split size (None: not known yet, e.g. ``all`` before
    the data is read; such pairs are checked again once it is)."""
    if not proxies:
        raise StudyError("pass at least one --proxy SETTING to compare with the reference, e.g. --proxy epochs=1")
    if len(proxies) > MAX_SETTINGS:
        raise StudyError(f"--proxy: at most {MAX_SETTINGS} settings, got {len(proxies)}")
    seen: dict[ProxySettings, str] = {}
    for p in proxies:
        if p.proxy == reference.proxy:
            raise StudyError(f"--proxy {shorten(p.name)} trains exactly as the reference does; a proxy must be "
                             f"shorter (fewer epochs or train_samples)")
        if p.proxy in seen:
            raise StudyError(f"--proxy {shorten(p.name)} and --proxy {shorten(seen[p.proxy])} are the same "
                             f"training; give each once")
        seen[p.proxy] = p.name
    ref_images = reference.images(train_images(reference.proxy))
    for p in proxies:
        images = p.images(train_images(p.proxy))
        if ref_images is not None and images is not None and ref_images <= images:
            raise StudyError(f"the reference must be longer than every proxy: --reference {shorten(reference.name)} "
                             f"trains on {ref_images:,} images (epochs x train images), --proxy {shorten(p.name)} "
                             f"on {images:,}; raise the reference's epochs or train_samples")


# ---------------------------------------------------------------------- the architectures
@dataclass(frozen=True)
class Candidate:
    """One architecture of the plan."""

    index: int  # its place in the plan (= its stratum, by FLOPs)
    arch: ArchConfig  # the deployed network (the space's classes)
    flops: int  # fvcore FLOPs at the deployment resolution
    params: int
    activations: int
    tier: str  # label of the budget tier whose band holds it
    preset: str | None = None  # a paper preset's name

    def label(self) -> str:
        return self.preset or f"arch {self.index}"

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "flops": self.flops, "params": self.params, "activations": self.activations,
                "tier": self.tier, "preset": self.preset, "arch": self.arch.to_dict()}


def _tier(budget: Budget, flops: int, params: int) -> str | None:
    t = budget.tier_of(flops)
    return t.label if t is not None and budget.check(flops, params, t).ok else None


def _pool(space: SearchSpace, budget: Budget, want: int, rng: random.Random) -> list[tuple[ArchConfig, Any, str]]:
    """Distinct in-budget architectures from uniform draws, in the order drawn: (arch, cost, tier)."""
    seen: dict[ArchConfig, tuple[ArchConfig, Any, str]] = {}
    for _ in range(MAX_SCREEN):
        arch = space.from_params(space.random_params(rng))
        if arch in seen:
            continue
        c = analytic_cost(arch, space.resolution)
        tier = _tier(budget, c.flops, c.params)
        if tier is not None:
            seen[arch] = (arch, c, tier)
            if len(seen) >= want:
                break
    return list(seen.values())


def draw_archs(space: SearchSpace, budget: Budget, n: int, seed: int) -> tuple[list[Candidate], tuple[int, int]]:
    """N architectures spread over the budget's band(s) in log FLOPs (see the module doc), by FLOPs, and
    the band they were spread over (the FLOPs of the cheapest and dearest member of the pool)."""
    rng = random.Random(f"mvsearch-fidelity/{seed}")
    pool = _pool(space, budget, min(POOL_MAX, max(POOL_MIN, POOL_PER_ARCH * n)), rng)
    presets = []
    for name in PRESETS:
        cfg = get_preset(name, space.num_classes)
        if space.encode(cfg) is None:
            continue
        c = analytic_cost(cfg, space.resolution)
        tier = _tier(budget, c.flops, c.params)
        if tier is not None:
            presets.append((cfg, c, tier, name))
    distinct = {a for a, _, _ in pool} | {p[0] for p in presets}
    if len(distinct) < n:
        raise BudgetError(f"--archs {n}: the budget {budget.describe()} holds only {len(distinct)} distinct "
                          f"architectures of space {space.name!r} (in {MAX_SCREEN:,} draws); lower --archs or "
                          f"widen the budget")
    flops = [c.flops for _, c, _ in pool] + [p[1].flops for p in presets]
    lo, hi = math.log(min(flops)), math.log(max(flops))
    width = (hi - lo) / n

    def stratum(f: int) -> int:
        return 0 if width == 0 else min(n - 1, int((math.log(f) - lo) / width))

    picked: dict[int, tuple[ArchConfig, Any, str, str | None]] = {}
    for cfg, c, tier, name in presets:  # a preset replaces the draw of its stratum (or the nearest free one)
        s = min((i for i in range(n) if i not in picked), key=lambda i: (abs(i - stratum(c.flops)), i))
        picked[s] = (cfg, c, tier, name)
    taken = {v[0] for v in picked.values()}
    members: dict[int, list] = {}
    for a, c, tier in pool:
        members.setdefault(stratum(c.flops), []).append((a, c, tier))
    for s in range(n):  # one uniform member of each stratum, in stratum order
        free = [m for m in members.get(s, []) if m[0] not in taken]
        if s not in picked and free:
            a, c, tier = rng.choice(free)
            picked[s] = (a, c, tier, None)
            taken.add(a)
    for s in range(n):  # a stratum the pool left empty: the free member nearest its centre
        if s in picked:
            continue
        centre = lo + (s + 0.5) * width
        a, c, tier = min((m for m in pool if m[0] not in taken), key=lambda m: abs(math.log(m[1].flops) - centre))
        picked[s] = (a, c, tier, None)
        taken.add(a)
    ordered = sorted(picked.values(), key=lambda v: (v[1].flops, v[1].params))
    return ([Candidate(i, a, c.flops, c.params, c.activations, tier, name)
             for i, (a, c, tier, name) in enumerate(ordered)], (min(flops), max(flops)))


# ---------------------------------------------------------------------- the plan
@dataclass(frozen=True)
class Planned:
    """One (architecture, setting): what the training study trains, with the setting's seed count."""

    key: str  # the point: hash of arch, resolution and training
    arch: ArchConfig
    resolution: int  # deployment input side
    proxy: ProxySettings
    flops: int
    params: int
    activations: int
    preset: str | None
    seeds: int  # trainings of this point, seeds 0..seeds-1
    setting: str  # Setting.text
    index: int  # Candidate.index


@dataclass(frozen=True)
class FidelityPlan:
    space: str
    budget: Budget
    seed: int  # --plan-seed
    resolution: int
    band: tuple[int, int]  # FLOPs the architectures were spread over, in N equal strata of log FLOPs
    candidates: tuple[Candidate, ...]
    reference: Setting
    proxies: tuple[Setting, ...]
    entries: tuple[Planned, ...]

    @property
    def settings(self) -> tuple[Setting, ...]:
        return (self.reference, *self.proxies)

    def entry(self, index: int, setting: Setting) -> Planned:
        return self.entries[index * len(self.settings) + self.settings.index(setting)]

    def trainings(self) -> int:
        return len(self.candidates) * sum(s.seeds for s in self.settings)

    def to_dict(self) -> dict[str, Any]:
        """The plan's description (stored in the study's record, ``fidelity``)."""
        return {"space": self.space, "budget": self.budget.describe(), "plan_seed": self.seed,
                "resolution": self.resolution, "band": list(self.band), "archs": len(self.candidates),
                "reference": self.reference.to_dict(),
                "proxies": [p.to_dict() for p in self.proxies]}


def plan(space: SearchSpace, budget: Budget, archs: int, reference: Setting, proxies: Sequence[Setting], *,
         seed: int = 0) -> FidelityPlan:
    """Draw the architectures and pair each with every setting (every pair checked trainable now)."""
    check_archs(archs)
    check_settings(reference, proxies)
    h, w = space.resolution
    if h != w:
        raise StudyError(f"space {space.name!r} deploys at {h}x{w}; a fidelity study needs a square resolution")
    cands, band = draw_archs(space, budget, archs, seed)
    settings = (reference, *proxies)
    entries = []
    for c in cands:
        for s in settings:
            trained = proxy_arch(c.arch, s.proxy, c.arch.num_classes)
            try:
                check_resolution(trained, s.proxy.resolution)
                check_cost(trained, s.proxy.resolution, batch=s.proxy.batch_size, what="the proxy network")
            except MvsearchError as exc:
                opt = "--reference" if s.reference else "--proxy"
                raise StudyError(f"{c.label()} ({format_flops(c.flops)} FLOPs) cannot be trained under {opt} "
                                 f"{shorten(s.name)}: {exc}") from None
            entries.append(Planned(point_key(c.arch, h, s.proxy), c.arch, h, s.proxy, c.flops, c.params,
                                   c.activations, c.preset, s.seeds, s.text, c.index))
    return FidelityPlan(space.name, budget, seed, h, band, tuple(cands), reference, tuple(proxies), tuple(entries))


# ---------------------------------------------------------------------- the study
def check_archs(archs: int) -> None:
    if isinstance(archs, bool) or not isinstance(archs, int) or not MIN_ARCHS <= archs <= MAX_ARCHS:
        raise StudyError(f"--archs: a rank correlation needs {MIN_ARCHS} to {MAX_ARCHS:,} architectures, "
                         f"got {shorten(archs)}")


class FidelityStudy(TrainingStudy):
    """The plan's trainings in ``NAME@fidelity``; its record holds the plan's description."""

    def __init__(self, the_plan: FidelityPlan, space: SearchSpace, opts: TrainingOptions,
                 events: TrainingEvents | None = None) -> None:
        ref = the_plan.reference.proxy
        info = StudyRecord(search=opts.name, tier=FIDELITY_LABEL, schema_version=SCHEMA_VERSION, space=space.name,
                           space_file=space.file, budget=the_plan.budget.describe(),
                           budgets=the_plan.budget.to_dict(), resolution=[the_plan.resolution] * 2,
                           num_classes=space.num_classes, data=ref.data, proxy=ref.to_dict(), seed=the_plan.seed,
                           mvsearch_version=__version__, fidelity=the_plan.to_dict())
        most = max(s.seeds for s in the_plan.settings)
        super().__init__(FIDELITY_LABEL, the_plan.entries, dataclasses.replace(opts, seeds=most), info,
                         compatible=self._same_space, events=events)
        self.plan = the_plan

    def _same_space(self, old: StudyRecord) -> None:
        if old.fidelity is None:
            raise StudyError(f"study {self.full!r} is not a fidelity study; pass another --name")
        if old.fidelity.get("space") != self.plan.space:
            raise StudyError(f"fidelity study {self.opts.name!r} measured space {old.fidelity.get('space')!r}, not "
                             f"{self.plan.space!r}; pass another --name (e.g. --name fidelity-{self.plan.space})")

    def prepare(self) -> None:
        """The training study's checks (options, device, storage path, every data split), then the
        reference against every proxy with the real training split sizes."""
        for s in self.plan.settings:
            check_seeds(s.seeds, "--reference-seeds" if s.reference else "--seeds")
        super().prepare()
        check_settings(self.plan.reference, self.plan.proxies, self.train_images)

    def train_images(self, proxy: ProxySettings) -> int:
        """The size of a setting's training split (its data read once, by :meth:`prepare`)."""
        return int(len(self.data_for(proxy)[1].train_y))


def default_name(space: SearchSpace) -> str:
    return f"fidelity-{space.name}"


__all__ = ["Setting", "Candidate", "Planned", "FidelityPlan", "FidelityStudy", "parse_setting", "check_settings",
           "check_seeds", "check_archs", "draw_archs", "plan", "default_name", "FIDELITY_LABEL", "SETTING_KEYS",
           "MIN_ARCHS", "MAX_ARCHS"]
