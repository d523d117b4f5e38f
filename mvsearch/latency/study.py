"""Latency of a study's trials: measure every trained trial (and the paper presets) on this device and store it beside the study."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from mvsearch.arch.config import ArchConfig
from mvsearch.arch.presets import get_preset
from mvsearch.arch.geometry import parse_resolution
from mvsearch.latency.measure import DEFAULT_REPEATS, DEFAULT_WARMUP, REFERENCE, Device, Meter
from mvsearch.search.record import StudyRecord


_METERS: dict[tuple, Meter] = {}  # one meter per device and counts, so per-trial calls share a reference


def measure_and_store(storage: str, study_name: str, trial_ref: str, cfg: ArchConfig, resolution: Any, *,
                      backend: str = "torch", threads: int | None = None, device: str = "cpu",
                      warmup: int = DEFAULT_WARMUP, repeats: int = DEFAULT_REPEATS) -> Any:
    """Measure one trial's architecture and store it (what ``mvsearch run --measure-latency`` calls).

    Returns the stored :class:`~mvsearch.latency_store.LatencyRecord`.
    """
    from mvsearch.latency.store import Store, trial_subject

    key = (backend, threads, device, warmup, repeats)
    meter = _METERS.get(key)
    if meter is None:
        meter = _METERS[key] = Meter(backend, threads, device, warmup=warmup, repeats=repeats)
    timing, ref = meter.measure(cfg, resolution)
    with Store(storage) as store:
        return store.put(study_name, trial_subject(trial_ref), meter.device, resolution, timing, ref)


@dataclass(frozen=True)
class MeasureSummary:
    """What ``mvsearch latency`` did."""

    study_name: str
    storage: str
    device: Device
    resolution: tuple[int, int]
    measured: tuple  # the new LatencyRecords, in order
    already: int  # subjects that had a measurement for this device and were left alone


def deployment_resolution(search: Any, recs: list) -> tuple[int, int]:
    """The search's deployment resolution: its attribute, else the trials', else 256."""
    info = StudyRecord.from_attrs(search.user_attrs)
    if info.resolution is not None:
        return parse_resolution(info.resolution)
    for r in recs:
        if r.resolution is not None:
            return parse_resolution(r.resolution)
    return (256, 256)


def study_num_classes(search: Any, recs: list) -> int:
    """The deployed classifier size: the search's attribute, else the trials' architectures', else 1000."""
    k = StudyRecord.from_attrs(search.user_attrs).num_classes
    if isinstance(k, int) and k > 0:
        return k
    for r in recs:
        if r.arch is not None:
            return r.arch.num_classes
    return 1000


def measure_study(study_name: str | None = None, storage: str | None = None, *, backend: str = "torch",
                  threads: int | None = None, device: str = "cpu", pareto_only: bool = False,
                  force: bool = False, warmup: int = DEFAULT_WARMUP, repeats: int = DEFAULT_REPEATS,
                  progress: Callable[[int, int, str], None] | None = None) -> MeasureSummary:
    """Measure every trained trial (and the paper presets) lacking a measurement on this device."""
    from mvsearch.arch.presets import PRESETS
    from mvsearch.latency.store import Store, preset_subject, trial_subject
    from mvsearch.search.front import front
    from mvsearch.search.storage import open_search

    meter = Meter(backend, threads, device, warmup=warmup, repeats=repeats)  # options checked before the study opens
    study = open_search(study_name, storage)
    name, url = study.name, study.url
    recs = study.records()
    res = deployment_resolution(study, recs)
    k = study_num_classes(study, recs)
    trained = [r for r in recs if r.trained and r.arch is not None]
    if pareto_only:
        keep = {r.ref for r in front(recs, "flops")}
        trained = [r for r in trained if r.ref in keep]
    # each trial at its own deployment resolution (a scaling study's resolution family varies it)
    todo: list[tuple[str, ArchConfig, tuple[int, int]]] = [(preset_subject(p), get_preset(p, k), res) for p in PRESETS]
    todo += [(trial_subject(r.ref), r.arch, parse_resolution(r.resolution) if r.resolution else res) for r in trained]
    with Store(storage=url) as store:
        have = {(r.subject, tuple(r.resolution)) for r in store.records(name, meter.device)}
        pending = [(s, c, r) for s, c, r in todo if force or (s, r) not in have]
        out = []
        for i, (subject, cfg, at) in enumerate(pending):
            if progress is not None:
                progress(i, len(pending), subject)
            if subject == preset_subject(REFERENCE):  # the reference is its own ratio: 1 exactly
                timing = ref = meter.reference(at, k, fresh=True)
            else:
                timing, ref = meter.measure(cfg, at)
            out.append(store.put(name, subject, meter.device, at, timing, ref))
        if progress is not None:
            progress(len(pending), len(pending), "")
    return MeasureSummary(name, url, meter.device, res, tuple(out), len(todo) - len(pending))


def latency_callback(url: str, *, threads: int | None = None) -> Callable[[Any, Any], None]:
    """An Optuna callback that measures and stores each completed trial's latency (``run --measure-latency``)."""
    from optuna.trial import TrialState

    from mvsearch.search.record import records_of

    def measure(study: Any, trial: Any) -> None:
        if trial.state != TrialState.COMPLETE:
            return
        info = StudyRecord.from_attrs(study.user_attrs)
        rec = records_of([trial], study.study_name, info.tier)[0]
        if rec.arch is not None:
            measure_and_store(url, info.search, rec.ref, rec.arch, info.resolution, backend="torch", threads=threads)

    return measure
