"""Where studies live and how their trials read back: the contract between search and reports.

A study is an Optuna study in Optuna's own RDB storage (SQLite by default, PostgreSQL for many
machines), single-objective: ``trial.value`` is the proxy validation accuracy (0..1), maximised.
Everything else a trial knows is in its user attributes, under the keys of :data:`ATTR`.

Default locations: ``--study NAME`` alone means ``sqlite:///studies/NAME.db``; with neither
``--study`` nor ``--storage``, the single ``studies/*.db`` there is (an error lists them if there
are several).
"""
from __future__ import annotations

import difflib
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from mvsearch.arch import ArchConfig
from mvsearch.errors import MvsearchError, StudyError

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

STUDIES_DIR = Path(os.environ.get("MVSEARCH_STUDIES", "studies"))


def default_storage(study_name: str) -> str:
    """``sqlite:///studies/<name>.db`` (relative to the working directory)."""
    return f"sqlite:///{STUDIES_DIR / f'{study_name}.db'}"


def _sqlite_path(storage: str) -> Path | None:
    prefix = "sqlite:///"
    return Path(storage[len(prefix):]) if storage.startswith(prefix) else None


def _check_study_file(path: Path) -> None:
    """StudyError unless ``path`` is an SQLite file holding Optuna's tables, checked read-only.

    Optuna's storage creates its tables in any SQLite file it opens, so without this check a
    reading command pointed at the wrong file (an empty one, another program's database) would
    write into it.
    """
    try:
        con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            found = con.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'studies'").fetchone()
        finally:
            con.close()
    except sqlite3.Error as exc:
        raise StudyError(f"{path} is not an SQLite database ({exc}); check --storage") from None
    if not found:
        raise StudyError(f"{path} holds no Optuna study (no 'studies' table); check --study/--storage, "
                         f"or run `mvsearch run` first")


def resolve(study_name: str | None, storage: str | None) -> tuple[str, str]:
    """Turn the CLI's ``--study``/``--storage`` into an existing (study name, storage URL)."""
    if storage is None:
        if study_name is None:
            dbs = sorted(STUDIES_DIR.glob("*.db")) if STUDIES_DIR.is_dir() else []
            if not dbs:
                raise StudyError(
                    f"no study found in {STUDIES_DIR}/; run `mvsearch run --space spaces/mobile.yaml` "
                    f"first, or pass --study NAME / --storage URL"
                )
            if len(dbs) > 1:
                names = ", ".join(p.stem for p in dbs)
                raise StudyError(f"several studies in {STUDIES_DIR}/ ({names}); pass --study NAME")
            storage = f"sqlite:///{dbs[0]}"
        else:
            storage = default_storage(study_name)
    path = _sqlite_path(storage)
    if path is not None and not path.exists():
        raise StudyError(f"no study database at {path}; check --study/--storage, or run `mvsearch run` first")
    if path is not None:
        _check_study_file(path)
    try:
        names = optuna.get_all_study_names(storage=storage)
    except Exception as exc:  # sqlalchemy / driver errors: one line, the project's own type
        raise StudyError(f"cannot open storage {storage}: {str(exc).splitlines()[0]}") from None
    if study_name is None:
        if len(names) != 1:
            listing = ", ".join(names) or "none"
            raise StudyError(f"storage {storage} holds {len(names)} studies ({listing}); pass --study NAME")
        study_name = names[0]
    elif study_name not in names:
        hint = difflib.get_close_matches(study_name, names, n=1)
        did = f" (did you mean {hint[0]!r}?)" if hint else ""
        listing = ", ".join(names) or "none"
        raise StudyError(f"no study named {study_name!r} in {storage}{did}; it holds: {listing}")
    return study_name, storage


def load(study_name: str | None, storage: str | None) -> optuna.Study:
    """Load an existing study (see :func:`resolve`)."""
    name, url = resolve(study_name, storage)
    return optuna.load_study(study_name=name, storage=url)


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


__all__ = ["ATTR", "TrialRecord", "default_storage", "resolve", "load", "records", "to_record", "STUDIES_DIR"]
