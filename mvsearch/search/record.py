"""The trial record and the study record: the one place a stored key is spelled.

A search writes each trial's facts as Optuna user attributes and each study's as study user
attributes; every reader (``trials``, ``pareto``, ``report``, ``export``, ``latency``) turns them
back into these records. Nothing else in mvsearch names a key: the search writes with
:meth:`TrialRecord.to_attrs` / :meth:`StudyRecord.to_attrs`, readers use :meth:`TrialRecord.from_trial` /
:meth:`StudyRecord.from_attrs`.

The attribute key of a field is the field's name. :data:`SCHEMA_VERSION` is stored on every study
(``schema_version``); version 1 is what releases before the per-tier studies wrote (no
``schema_version`` key, one Optuna study per search), and still reads.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Iterable

import optuna
from optuna.trial import TrialState

from mvsearch.arch.config import ArchConfig
from mvsearch.core.errors import MvsearchError

#: 2: one Optuna study per FLOP tier ("NAME@TIER"); 1: a single study per search (read only)
SCHEMA_VERSION = 2


def _int(v: Any) -> int | None:
    return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _float(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


@dataclass
class TrialRecord:
    """One trial as written by the search and read by every command.

    Fields above ``number`` come from Optuna itself (state, value, steps); the rest are the trial's
    user attributes, under the field's name.
    """

    # ---- from Optuna (not user attributes)
    number: int = -1  # the trial's number in its Optuna study
    study: str = ""  # the Optuna study holding it ("mobile@1.05G")
    ref: str = ""  # what a user types for --trial: "1.05G/7" (a tiered search), "7" (schema 1)
    state: str = "RUNNING"  # COMPLETE, PRUNED, FAIL, RUNNING, WAITING
    accuracy: float | None = None  # final (or last reported, for pruned) validation accuracy
    intermediate: dict[int, float] = field(default_factory=dict)  # epoch (1-based) -> val accuracy
    duration_s: float | None = None  # Optuna's start-to-end time
    # ---- user attributes (key = field name)
    arch: ArchConfig | None = None  # the full deployed architecture
    params: int | None = None  # parameters of the deployed model
    flops: int | None = None  # fvcore FLOPs (1 multiply-add = 1 FLOP) at the deployment resolution
    thop_macs: int | None = None  # thop MACs at the deployment resolution (cross-check)
    activations: int | None = None  # fvcore activation count at the deployment resolution
    resolution: list[int] | None = None  # deployment resolution [H, W]
    tier: str | None = None  # label of the FLOP tier the trial belongs to (e.g. "1.05G"), or None
    baseline: bool = False  # True for an enqueued paper preset
    preset: str | None = None  # the preset's name for a baseline
    over_budget: bool = False  # rejected by the budget gate, never trained
    reject_reason: str | None = None  # why, e.g. "1.62G FLOPs > budget 1.5G"
    screened_out: int | None = None  # uniform draws screened out before this start-up candidate
    accuracy_curve: list[float] = field(default_factory=list)  # validation accuracy after each epoch
    val_samples: int | None = None  # validation images behind the accuracy (a pruned trial's: the
    #   epochs' subset, TrainConfig.epoch_val, which judged its last reported accuracy)
    images_per_s: float | None = None  # training throughput
    train_wall_s: float | None = None  # training time (s)
    wall_s: float | None = None  # the whole trial's wall time (s)
    seed: int | None = None  # training seed
    data: str | None = None  # data spec
    proxy: dict[str, Any] | None = None  # proxy settings (ProxySettings.to_dict())
    proxy_arch: ArchConfig | None = None  # the network actually trained (proxy stem stride, data classes)
    weights: str | None = None  # saved proxy weights (a state_dict of proxy_arch), with --save-weights
    worker: str | None = None  # "host:pid" of the process that trained it
    interrupted: bool = False  # stopped by Ctrl-C / SIGTERM (state FAIL)
    error: str | None = None  # why training failed (e.g. a non-finite loss)
    retry_of: int | None = None  # number of the failed trial (worker died) this one retries
    mvsearch_version: str | None = None
    point: str | None = None  # a planned training's point (mvsearch.search.trainings.point_key)
    peak_rss: int | None = None  # peak resident memory (bytes) of the process while this trial trained
    malloc: str | None = None  # the training process's malloc: "jemalloc (held)", "glibc", ... (core/jemalloc.py)
    seed_accuracies: list[float] = field(default_factory=list)  # run --seeds K: each seed's final accuracy
    #   (seeds seed..seed+K-1); the trial's value (accuracy) is their mean

    # ------------------------------------------------------------ derived
    @property
    def trained(self) -> bool:
        """True when the proxy trainer ran (complete or pruned), not a budget rejection."""
        return not self.over_budget and self.state in ("COMPLETE", "PRUNED")

    def summary(self) -> str:
        if self.preset:
            return self.preset
        return self.arch.summary() if self.arch is not None else "-"

    # ------------------------------------------------------------ writing
    def to_attrs(self, *names: str) -> dict[str, Any]:
        """The user attributes for ``names`` (default: every attribute field), JSON-ready."""
        names = names or ATTR_FIELDS
        out = {}
        for n in names:
            if n not in _ATTR_SET:
                raise KeyError(f"{n!r} is not a trial attribute; known: {', '.join(ATTR_FIELDS)}")
            v = getattr(self, n)
            out[n] = v.to_dict() if isinstance(v, ArchConfig) else v
        return out

    # ------------------------------------------------------------ reading
    @classmethod
    def from_trial(cls, t: optuna.trial.FrozenTrial, study: str = "", ref: str | None = None) -> TrialRecord:
        ua = t.user_attrs
        acc = t.value if t.state == TrialState.COMPLETE else None
        if acc is None and t.intermediate_values:
            acc = t.intermediate_values[max(t.intermediate_values)]
        rec = cls.from_user_attrs(ua)
        rec.number, rec.study, rec.state = t.number, study, t.state.name
        rec.ref = ref if ref is not None else str(t.number)
        rec.accuracy = _float(acc)
        rec.duration_s = t.duration.total_seconds() if t.duration is not None else None
        rec.intermediate = {int(k): float(v) for k, v in t.intermediate_values.items()}
        return rec

    @classmethod
    def from_user_attrs(cls, ua: dict[str, Any]) -> TrialRecord:
        """A record holding only what the user attributes ``ua`` say (unknown keys ignored)."""
        rec = cls()
        for n in ATTR_FIELDS:
            if n not in ua or ua[n] is None:
                continue
            v = ua[n]
            kind = _KIND[n]
            if kind == "arch":
                v = _arch(v)
            elif kind == "int":
                v = _int(v)
            elif kind == "float":
                v = _float(v)
            elif kind == "bool":
                v = bool(v)
            elif kind == "list":
                v = [float(x) for x in v] if n in _FLOAT_LISTS and isinstance(v, list) else v
            setattr(rec, n, v)
        return rec


def _arch(v: Any) -> ArchConfig | None:
    if not isinstance(v, dict):
        return None
    try:
        return ArchConfig.from_dict(v)
    except MvsearchError:
        return None


_FLOAT_LISTS = frozenset({"accuracy_curve", "seed_accuracies"})
ATTR_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(TrialRecord))[7:]
_ATTR_SET = frozenset(ATTR_FIELDS)
_KIND = {f.name: ("arch" if "ArchConfig" in str(f.type) else "int" if str(f.type).startswith("int")
                  else "float" if str(f.type).startswith("float") else "bool" if f.type == "bool"
                  else "list" if str(f.type).startswith("list") else "raw")
         for f in dataclasses.fields(TrialRecord) if f.name in _ATTR_SET}


@dataclass
class StudyRecord:
    """A search's own facts, stored on each of its Optuna studies (key = field name)."""

    search: str | None = None  # the search's name ("mobile"); its studies are "mobile@<tier>"
    tier: str | None = None  # this study's tier label ("1.05G"), "presets", or None (schema 1)
    schema_version: int = 1  # SCHEMA_VERSION of the release that made it
    space: str | None = None  # the space's name
    space_file: str | None = None  # where the space was read from
    budget: str | None = None  # the budget as text ("1.5G FLOPs")
    budgets: dict[str, Any] | None = None  # Budget.to_dict()
    tiers: list[str] | None = None  # every tier label of the search
    max_params: int | None = None
    resolution: list[int] | None = None  # deployment resolution [H, W]
    num_classes: int | None = None  # deployed classifier size
    data: str | None = None  # proxy data spec
    proxy: dict[str, Any] | None = None  # ProxySettings.to_dict()
    sampler: str | None = None
    pruner: str | None = None
    seed: int | None = None
    mvsearch_version: str | None = None
    scale: dict[str, Any] | None = None  # a scaling study's base: kind, label, arch, resolution
    fidelity: dict[str, Any] | None = None  # a fidelity study's plan: space, budget, archs, reference, proxies
    seeds: int | None = None  # run --seeds K: trainings per candidate, ranked by their mean (None: 1)
    validate: dict[str, Any] | None = None  # a validation study's latest setting: proxy, seeds, top
    space_yaml: str | None = None  # the space file's text: written last, so a reader seeing it sees the rest

    def to_attrs(self) -> dict[str, Any]:
        """Every field as a study attribute, ``space_yaml`` last (see above)."""
        d = dataclasses.asdict(self)
        d["space_yaml"] = d.pop("space_yaml")
        return d

    @classmethod
    def from_attrs(cls, attrs: dict[str, Any]) -> StudyRecord:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in attrs.items() if k in known})


def describe_proxy(p: dict[str, Any]) -> str:
    """``64x64, stem stride 1, 3 epochs, 1024 train / 512 val images, batch 64, lr 0.002``."""
    try:
        return (f"{p['resolution']}x{p['resolution']}, stem stride {p['stem_stride']}, {p['epochs']} epochs, "
                f"{p['train_samples'] if p['train_samples'] is not None else 'all'} train / {p['val_samples']} val "
                f"images, batch {p['batch_size']}, lr {p['lr']}")
    except (KeyError, TypeError):
        return ", ".join(f"{k} {v}" for k, v in p.items())


def trial_key(ref: str) -> str:
    """The latency store's subject of a trial (``trial:<ref>``)."""
    return f"trial:{ref}"


def records_of(trials: Iterable[optuna.trial.FrozenTrial], study: str, label: str | None) -> list[TrialRecord]:
    """Records of one Optuna study's trials; ``label`` prefixes refs ("1.05G/7"), None for schema 1."""
    return [TrialRecord.from_trial(t, study, f"{label}/{t.number}" if label is not None else str(t.number))
            for t in trials]


__all__ = ["TrialRecord", "StudyRecord", "SCHEMA_VERSION", "ATTR_FIELDS", "describe_proxy", "trial_key",
           "records_of"]
