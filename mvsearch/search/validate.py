"""Validation: retrain a search's winners and the paper presets under a longer training.

A search ranks its candidates by a short proxy training; ``mvsearch validate`` checks the ranking
where it matters (issue #12): it retrains the study's Pareto front (the K most accurate members of
each tier's accuracy-vs-FLOPs front), its trained paper presets and each preset's rival (the most
accurate searched model at no more FLOPs) under a longer *validation setting* (more epochs and/or
more training images; by default the same epochs on 10x the images), with K seeds each, and stores
every training in the search's own storage, in one more Optuna study ``NAME@validate`` beside the
tiers (a :class:`~mvsearch.search.trainings.TrainingStudy`: resumable, several workers, dead workers
retried, Ctrl-C safe).

What was validated is read back per search trial by :func:`validated`: a search trial's validated
accuracy is the mean over the seeds of the trainings of its architecture (at its deployment
resolution) under the study's *latest* validation setting (stored on ``NAME@validate`` as
``StudyRecord.validate``), so a rerun with another setting supersedes, and trainings under an
older setting are kept but no longer shown. Its interval is the Wilson interval of that mean on the
validation images (the seeds see the same images, so averaging them does not shrink that noise).

The comparison of winners and presets (win / tie / loss, and the proxy-vs-validated rank
correlation) is :mod:`mvsearch.analysis.validation`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Sequence

from optuna.trial import TrialState

from mvsearch import __version__
from mvsearch.arch.config import ArchConfig
from mvsearch.core.errors import MvsearchError, StudyError
from mvsearch.core.limits import MAX_SAMPLES
from mvsearch.core.text import shorten
from mvsearch.proxy.settings import ProxySettings
from mvsearch.search.front import front
from mvsearch.search.record import SCHEMA_VERSION, StudyRecord, TrialRecord
from mvsearch.search.storage import VALIDATE_LABEL, SearchStudies
from mvsearch.search.trainings import TrainingEvents, TrainingOptions, TrainingStudy, check_seeds, point_key

DEFAULT_TOP = 2  # front members per tier
DEFAULT_SEEDS = 2  # trainings per model: the validation's own seed noise is then visible
TRAIN_FACTOR = 10  # default: the proxy's epochs on this many times its training images
MIN_VAL_SAMPLES = 2048  # default validation images: at least this many (±1.9 points at 75%)
MAX_TOP = 100


# ---------------------------------------------------------------------- the setting
def check_top(top: Any) -> int:
    if isinstance(top, bool) or not isinstance(top, int) or not 1 <= top <= MAX_TOP:
        raise StudyError(f"--top: front members to validate per tier, 1..{MAX_TOP}, got {shorten(top)}")
    return top


def setting(proxy: ProxySettings, *, epochs: int | None = None, train_samples: int | str | None = None,
            val_samples: int | None = None) -> ProxySettings:
    """The validation setting: the search's proxy with these fields (defaults: the proxy's epochs on
    :data:`TRAIN_FACTOR` x its training images, or 3x its epochs when it trains on all of them;
    at least :data:`MIN_VAL_SAMPLES` validation images). It must train on more images x epochs."""
    if train_samples is None:
        train: int | None = None if proxy.train_samples is None else min(MAX_SAMPLES,
                                                                          proxy.train_samples * TRAIN_FACTOR)
    elif isinstance(train_samples, str) and train_samples.strip().lower() == "all":
        train = None
    else:
        try:
            train = int(train_samples)
        except (TypeError, ValueError):
            raise StudyError(f"--train-samples: a number of images or 'all', got {shorten(train_samples)}") from None
    if epochs is None:
        epochs = proxy.epochs * 3 if proxy.train_samples is None and train is None else proxy.epochs
    val = val_samples if val_samples is not None else max(proxy.val_samples, MIN_VAL_SAMPLES)
    try:
        out = dataclasses.replace(proxy, epochs=epochs, train_samples=train, val_samples=val)
    except MvsearchError as exc:
        raise StudyError(f"validation setting: {exc}") from None
    longer = out.epochs > proxy.epochs if out.train_samples == proxy.train_samples else \
        (out.train_samples is None or (proxy.train_samples is not None and
                                        out.epochs * out.train_samples > proxy.epochs * proxy.train_samples))
    if not longer:
        raise StudyError(f"the validation must train longer than the search's proxy ({proxy.epochs} epochs on "
                         f"{_images(proxy.train_samples)} images); it would train {out.epochs} epochs on "
                         f"{_images(out.train_samples)}: raise --epochs or --train-samples")
    return out


def _images(n: int | None) -> str:
    return "all" if n is None else f"{n:,}"


def describe(proxy: ProxySettings) -> str:
    return f"{proxy.epochs} epochs on {_images(proxy.train_samples)} train images, {proxy.val_samples:,} val images"


# ---------------------------------------------------------------------- what is validated
@dataclass(frozen=True)
class Candidate:
    """One model to validate: a search trial (or several with the same architecture), under the setting."""

    key: str  # point_key(arch, resolution, setting)
    arch: ArchConfig
    resolution: int
    proxy: ProxySettings  # the validation setting
    flops: int
    params: int
    activations: int
    preset: str | None
    tier: str | None  # the search trial's tier (None: a preset outside every tier)
    refs: tuple[str, ...]  # the search trials with this architecture
    proxy_accuracy: float  # the search trial's proxy accuracy (the best of refs)
    proxy_val: int | None
    seeds: int
    why: str  # "preset", "front 1.5G #1", "vs mobilevit_xs" (a preset's rival)


def _square(r: TrialRecord) -> int:
    res = r.resolution or []
    if len(res) != 2 or res[0] != res[1]:
        raise StudyError(f"trial {r.ref} deploys at {'x'.join(map(str, res)) or 'an unknown resolution'}; "
                         f"validate needs a square deployment resolution")
    return int(res[0])


def choose(search: SearchStudies, top: int) -> list[tuple[TrialRecord, str]]:
    """The trials to validate: the ``top`` most accurate members of each tier's accuracy-vs-FLOPs front
    (searched trials only), every completed paper preset, and each preset's *rival*: the most
    accurate searched trial at no more FLOPs than the preset (the one the proxy says beats it; without
    it, a front whose top lies above a preset's FLOPs leaves that preset with nothing to be compared
    with at matched FLOPs); (record, why), by FLOPs."""
    check_top(top)
    recs = [r for r in search.records() if r.state == "COMPLETE" and r.accuracy is not None and r.arch is not None
            and r.flops is not None and r.params is not None]
    if not recs:
        raise StudyError(f"study {search.name!r} has no completed trial to validate; run `mvsearch run --study "
                         f"{search.name}` first")
    out: list[tuple[TrialRecord, str]] = []
    tiers = dict.fromkeys(r.tier or "" for r in recs if not r.baseline)
    for tier in tiers:
        members = front([r for r in recs if not r.baseline and (r.tier or "") == tier])
        out += [(r, f"front {tier or 'all'} #{i + 1}") for i, r in enumerate(members[:top])]
    presets = [r for r in recs if r.baseline]
    out += [(r, "preset") for r in presets]
    searched = [r for r in recs if not r.baseline]
    for b in presets:
        fit = [r for r in searched if r.flops <= b.flops]
        best = max(fit, key=lambda r: (r.accuracy, -r.flops), default=None)
        if best is not None and all(best.ref != r.ref for r, _ in out):
            out.append((best, f"vs {b.preset or b.ref}"))
    return sorted(out, key=lambda x: (x[0].flops, -x[0].accuracy))


def plan(search: SearchStudies, proxy: ProxySettings, *, top: int, seeds: int) -> list[Candidate]:
    """One :class:`Candidate` per distinct architecture of :func:`choose`, trained under ``proxy``."""
    check_seeds(seeds)
    by_key: dict[str, Candidate] = {}
    for r, why in choose(search, top):
        res = _square(r)
        key = point_key(r.arch, res, proxy)
        old = by_key.get(key)
        if old is not None:  # the same architecture twice (a retry, a preset the sampler also found)
            by_key[key] = dataclasses.replace(old, refs=old.refs + (r.ref,), preset=old.preset or r.preset,
                                              why=old.why if old.why != "preset" else why,
                                              proxy_accuracy=max(old.proxy_accuracy, r.accuracy))
            continue
        by_key[key] = Candidate(key, r.arch, res, proxy, int(r.flops), int(r.params), int(r.activations or 0),
                                r.preset if r.baseline else None, r.tier if not r.baseline else None, (r.ref,),
                                float(r.accuracy), r.val_samples, seeds, why)
    return sorted(by_key.values(), key=lambda c: (c.flops, c.key))


class ValidateStudy(TrainingStudy):
    """The plan's trainings in ``NAME@validate`` (the search's storage); its record holds the setting."""

    def __init__(self, search: SearchStudies, planned: Sequence[Candidate], proxy: ProxySettings, opts: TrainingOptions,
                 *, top: int, events: TrainingEvents | None = None) -> None:
        info = search.info
        seeds = max((c.seeds for c in planned), default=opts.seeds)
        record = StudyRecord(search=search.name, tier=VALIDATE_LABEL, schema_version=SCHEMA_VERSION, space=info.space,
                             space_file=info.space_file, budget=info.budget, budgets=info.budgets,
                             resolution=info.resolution, num_classes=info.num_classes, data=proxy.data,
                             proxy=proxy.to_dict(), seed=info.seed, mvsearch_version=__version__,
                             validate={"proxy": proxy.to_dict(), "seeds": seeds, "top": top,
                                       "search_proxy": info.proxy})
        super().__init__(VALIDATE_LABEL, planned, dataclasses.replace(opts, name=search.name, storage=search.url,
                                                                      seeds=seeds), record, events=events)
        self.search = search


# ---------------------------------------------------------------------- reading it back
@dataclass(frozen=True)
class Validation:
    """A search trial's validated accuracy: the mean of its architecture's trainings under the setting."""

    accuracy: float  # mean over seeds
    accuracies: tuple[float, ...]  # per seed, seed order
    val_samples: int | None
    refs: tuple[str, ...]  # the validation trainings ("validate/N")

    @property
    def seeds(self) -> int:
        return len(self.accuracies)

    def to_dict(self) -> dict[str, Any]:
        return {"accuracy": self.accuracy, "accuracies": list(self.accuracies), "val_samples": self.val_samples,
                "seeds": self.seeds, "trainings": list(self.refs)}


@dataclass
class Validated:
    """What a search's validation study holds under its latest setting."""

    proxy: ProxySettings | None = None  # the latest validation setting (None: never validated)
    seeds: int = 0
    by_ref: dict[str, Validation] = field(default_factory=dict)  # search trial ref -> its validation

    def __bool__(self) -> bool:
        return bool(self.by_ref)

    def get(self, ref: str) -> Validation | None:
        return self.by_ref.get(ref)


def validated(search: SearchStudies) -> Validated:
    """Every search trial's validation under the study's latest setting (empty when never validated)."""
    study = search.validation
    if study is None:
        return Validated()
    spec = StudyRecord.from_attrs(study.user_attrs).validate or {}
    try:
        proxy = ProxySettings.from_dict(spec.get("proxy") or {})
        seeds = int(spec.get("seeds") or 0)
    except (MvsearchError, TypeError, ValueError):
        return Validated()
    per_point: dict[str, dict[int, tuple[float, int | None, str]]] = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        r = TrialRecord.from_user_attrs(t.user_attrs)
        if r.point is None or r.seed is None or r.seed >= seeds or t.value is None:
            continue
        per_point.setdefault(r.point, {}).setdefault(r.seed, (float(t.value), r.val_samples,
                                                              f"{VALIDATE_LABEL}/{t.number}"))
    out = Validated(proxy, seeds)
    if not per_point:
        return out
    for r in search.records():
        res = r.resolution or []
        if r.arch is None or len(res) != 2 or res[0] != res[1]:
            continue
        got = per_point.get(point_key(r.arch, int(res[0]), proxy))
        if not got:
            continue
        runs = [got[s] for s in sorted(got)]
        accs = tuple(a for a, _, _ in runs)
        vals = {v for _, v, _ in runs if v is not None}
        out.by_ref[r.ref] = Validation(sum(accs) / len(accs), accs, min(vals) if vals else None,
                                       tuple(x for _, _, x in runs))
    return out


BY = ("proxy", "validated")  # what --by ranks by


def check_by(by: str) -> str:
    if by not in BY:
        raise StudyError(f"--by: rank by {' or '.join(BY)}, got {shorten(by)}")
    return by


def as_validated(recs: Sequence[TrialRecord], vals: Validated) -> list[TrialRecord]:
    """Copies of the validated COMPLETE records, each with its validated accuracy (mean of the seeds),
    validation image count and per-seed accuracies in place of the proxy's (``--by validated``)."""
    out = []
    for r in recs:
        v = vals.get(r.ref)
        if v is None or r.state != "COMPLETE" or r.over_budget:
            continue
        out.append(dataclasses.replace(r, accuracy=v.accuracy, val_samples=v.val_samples,
                                       seed_accuracies=list(v.accuracies), intermediate={}, accuracy_curve=[]))
    return out


def records_by(search: SearchStudies, by: str, *, include_rejected: bool = False) -> list[TrialRecord]:
    """The search's records ranked ``by`` proxy (as stored) or validated accuracy (only the validated ones);
    a search never validated is one line naming the command that validates it."""
    recs = search.records(include_rejected=include_rejected)
    if check_by(by) == "proxy":
        return recs
    vals = validated(search)
    if not vals:
        raise StudyError(f"study {search.name!r} has no validated trial; run `mvsearch validate --study "
                         f"{search.name}` first, or drop --by validated")
    return as_validated(recs, vals)


__all__ = ["BY", "check_by", "as_validated", "records_by", "VALIDATE_LABEL", "Candidate", "ValidateStudy", "Validation", "Validated", "validated", "choose", "plan",
           "setting", "describe", "check_top", "check_seeds", "DEFAULT_TOP", "DEFAULT_SEEDS", "TRAIN_FACTOR",
           "MIN_VAL_SAMPLES"]
