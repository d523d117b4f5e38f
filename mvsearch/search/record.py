"""The trial record: the one place a trial's keys are spelled (written by the search, read by every command)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
import optuna

from mvsearch.arch.config import ArchConfig
from mvsearch.core.errors import MvsearchError


#: user-attribute keys a search writes on each trial (and what they hold)
ATTR = {
    "arch": "the full architecture, ArchConfig.to_dict()",
    "params": "parameter count of the deployed model",
    "flops": "fvcore FLOPs (1 multiply-add = 1 FLOP) at the deployment resolution",
    "thop_macs": "thop MACs at the deployment resolution (cross-check)",
    "activations": "fvcore activation count at the deployment resolution",
    "resolution": "deployment resolution [H, W]",
    "tier": "label of the budget tier the trial was sampled for (e.g. '1.05G'), or None",
    "baseline": "True for an enqueued paper preset",
    "preset": "the preset name for a baseline, else None",
    "over_budget": "True for a candidate rejected by the budget gate (never trained)",
    "accuracy_curve": "validation accuracy after each epoch",
    "images_per_s": "training throughput (images/s)",
    "wall_s": "wall time of the trial (s)",
    "seed": "training seed",
    "data": "data spec string",
    "proxy": "proxy settings (dict)",
    "mvsearch_version": "mvsearch version that ran the trial",
    "proxy_arch": "the architecture actually trained (ArchConfig.to_dict() of proxy_arch(arch))",
    "weights": "path of saved proxy weights, a state_dict of proxy_arch (only with --save-weights)",
}


@dataclass
class TrialRecord:
    """One trial as the reports see it."""

    number: int
    state: str  # COMPLETE, PRUNED, FAIL, RUNNING, WAITING
    accuracy: float | None  # final (or last reported, for pruned) validation accuracy
    flops: int | None
    params: int | None
    thop_macs: int | None
    activations: int | None
    arch: ArchConfig | None
    tier: str | None
    baseline: bool
    preset: str | None
    over_budget: bool
    duration_s: float | None
    intermediate: dict[int, float] = field(default_factory=dict)  # epoch -> val accuracy
    user_attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def trained(self) -> bool:
        """True when the proxy trainer ran (complete or pruned), not a budget rejection."""
        return not self.over_budget and self.state in ("COMPLETE", "PRUNED")

    def summary(self) -> str:
        if self.preset:
            return self.preset
        return self.arch.summary() if self.arch is not None else "-"


def to_record(t: optuna.trial.FrozenTrial) -> TrialRecord:
    ua = dict(t.user_attrs)
    arch = None
    if isinstance(ua.get("arch"), dict):
        try:
            arch = ArchConfig.from_dict(ua["arch"])
        except MvsearchError:
            arch = None
    acc = t.value if t.state == optuna.trial.TrialState.COMPLETE else None
    if acc is None and t.intermediate_values:
        acc = t.intermediate_values[max(t.intermediate_values)]

    def _int(key: str) -> int | None:
        v = ua.get(key)
        return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None

    return TrialRecord(
        number=t.number,
        state=t.state.name,
        accuracy=float(acc) if acc is not None else None,
        flops=_int("flops"),
        params=_int("params"),
        thop_macs=_int("thop_macs"),
        activations=_int("activations"),
        arch=arch,
        tier=ua.get("tier"),
        baseline=bool(ua.get("baseline", False)),
        preset=ua.get("preset"),
        over_budget=bool(ua.get("over_budget", False)),
        duration_s=t.duration.total_seconds() if t.duration is not None else None,
        intermediate={int(k): float(v) for k, v in t.intermediate_values.items()},
        user_attrs=ua,
    )


def records(study: optuna.Study, *, include_rejected: bool = False) -> list[TrialRecord]:
    """All trials of a study as records, budget rejections left out unless asked for."""
    out = [to_record(t) for t in study.get_trials(deepcopy=False)]
    return out if include_rejected else [r for r in out if not r.over_budget]
