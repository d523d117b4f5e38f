"""The scaling study: a ladder of scaled networks, each trained with K seeds, kept in one Optuna study.

``mvsearch scale`` grows and shrinks a base network (a paper preset, a study's trial, a config
file) along model-scaling families (:mod:`mvsearch.arch.scaling`), lands every ladder point at
its target FLOPs (:mod:`mvsearch.cost.ladder`) and trains each point with the proxy, K seeds.

Storage: the study is an ordinary Optuna study named ``NAME@scale`` (by default in
``studies/NAME.db``); one trial is one training of one ladder point (a *rung*) with one seed. Its
user attributes are a :class:`~mvsearch.search.record.TrialRecord` whose ``point`` names the rung:
a hash of the deployed architecture, its deployment resolution and the full proxy settings (so a
point shared by two families, such as the base itself, trains once, and a changed proxy never
mixes with old results). The study's attributes are a :class:`~mvsearch.search.record.StudyRecord`
with ``tier = "scale"`` and the base in ``scale``. Because it is a search study with one tier,
``mvsearch trials`` lists its trainings and ``mvsearch export --trial scale/N`` exports any point.

Resuming and workers: a run trains, seed by seed, every (rung, seed) without a COMPLETE trial that
no live worker is training; several processes (or machines, on PostgreSQL) running the same
command share the work. A worker that dies leaves a RUNNING trial that the heartbeat (or, on this
host, a check of the process) fails; Optuna's retry callback queues it again, and the next worker
trains it. Ctrl-C and SIGTERM stop as in ``mvsearch run``: the training under way is marked
interrupted and FAIL, the study stays consistent, and rerunning the command resumes.

The resolution family changes the deployment input side; its proxy trains at the proxy resolution
scaled by the same ratio (rounded to a multiple of 8), so the trained network sees the larger
input too.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import optuna
from optuna.trial import TrialState

from mvsearch import __version__
from mvsearch.arch.config import ArchConfig
from mvsearch.arch.geometry import check_resolution
from mvsearch.arch.presets import PRESETS, get_preset
from mvsearch.core.errors import MvsearchError, NonFiniteLossError, StudyError
from mvsearch.core.limits import MAX_SEED, MAX_THREADS, check_int
from mvsearch.core.runtime import cpu_threads, resolve_device
from mvsearch.core.text import shorten
from mvsearch.cost.analytic import analytic_cost
from mvsearch.cost.bounds import check_cost
from mvsearch.cost.ladder import LadderPoint, solve_ladder
from mvsearch.arch.scaling import apply_family, factors as family_factors
from mvsearch.proxy.run import run_proxy
from mvsearch.proxy.settings import ProxySettings, proxy_arch
from mvsearch.search.interrupt import Interrupt
from mvsearch.search.record import SCHEMA_VERSION, StudyRecord, TrialRecord
from mvsearch.search.storage import (check_name, check_writable_file, create_whole, default_storage,
                                     experimental_ok, open_storage, shown_url, sqlite_path, storage_problem,
                                     study_name)
from mvsearch.search.workers import WORKER, fail_dead_workers

#: the tier label of a scaling study's one Optuna study ("NAME@scale")
SCALE_LABEL = "scale"
#: the family name of the paper presets trained beside a ladder (``--with-presets``)
PRESET_FAMILY = "preset"
#: seed of the proxy train/validation split (the search's): every training sees the same images
SPLIT_SEED = 0
MAX_SEEDS = 20


# ---------------------------------------------------------------------- the plan
@dataclass(frozen=True)
class Base:
    """What a scaling study grows and shrinks."""

    kind: str  # "preset", "trial" or "config"
    label: str  # "mobilevit_xxs", "mobile 1.5G/2", "models/net.yaml"
    arch: ArchConfig  # the deployed network (its classifier: the deployment's classes)
    resolution: int  # deployment input side

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "label": self.label, "arch": self.arch.to_dict(), "resolution": self.resolution}


@dataclass(frozen=True)
class Rung:
    """One ladder point of one family: the scaled network, its cost and how it is trained."""

    family: str  # "width", "depth", "resolution", "compound", "dwr", or "preset"
    target_flops: int | None  # what the ladder asked for (None: --multipliers or a preset)
    multiplier: float  # the FLOP multiplier s handed to the family (1: the base)
    factors: tuple[float, float, float]  # (depth, width, resolution) factors
    arch: ArchConfig  # deployed network
    resolution: int  # deployment input side
    proxy_resolution: int  # input side it is trained at
    flops: int  # fvcore FLOPs at the deployment resolution (analytic count, equal to fvcore)
    params: int
    activations: int
    key: str  # the point: hash of arch, resolution and proxy (see :func:`point_key`)
    preset: str | None = None  # the preset's name for family "preset"

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["arch"] = self.arch.to_dict()
        d["factors"] = list(self.factors)
        return d


def scaled_proxy_resolution(proxy_resolution: int, base_resolution: int, resolution: int) -> int:
    """The proxy input side for a network deployed at ``resolution`` (same ratio, multiple of 8)."""
    if resolution == base_resolution:
        return proxy_resolution
    return max(8, int(round(proxy_resolution * resolution / base_resolution / 8)) * 8)


def point_key(arch: ArchConfig, resolution: int, proxy: ProxySettings) -> str:
    """A ladder point's identity: the same network, deployment and training give the same key."""
    blob = json.dumps({"arch": arch.to_dict(), "resolution": resolution, "proxy": proxy.to_dict()},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _rung(family: str, target: int | None, s: float, f: tuple[float, float, float], arch: ArchConfig,
          resolution: int, base: Base, proxy: ProxySettings, preset: str | None = None) -> Rung:
    c = analytic_cost(arch, resolution)
    pr = scaled_proxy_resolution(proxy.resolution, base.resolution, resolution)
    trained = dataclasses.replace(proxy, resolution=pr)
    return Rung(family, target, s, tuple(float(x) for x in f), arch, resolution, pr, c.flops, c.params,
                c.activations, point_key(arch, resolution, trained), preset)


def plan(base: Base, families: Sequence[tuple[str, dict[str, float]]], proxy: ProxySettings, *,
         targets: Sequence[int] | None = None, multipliers: Sequence[float] | None = None,
         presets: Sequence[str] = ()) -> list[Rung]:
    """Every rung of every family (targets solved to the nearest reachable FLOPs), then ``presets``."""
    if (targets is None) == (multipliers is None):
        raise StudyError("pass either target FLOPs (--flops) or --multipliers, not both")
    rungs: list[Rung] = []
    for name, params in families:
        if targets is not None:
            points: list[LadderPoint] = solve_ladder(name, base.arch, base.resolution, list(targets), **params)
            for p in points:
                rungs.append(_rung(name, int(p.target_flops), p.multiplier, tuple(p.factors), p.arch, p.resolution,
                                   base, proxy))
        else:
            for s in multipliers or ():
                arch, res = apply_family(name, base.arch, base.resolution, s, **params)
                rungs.append(_rung(name, None, s, family_factors(name, s, **params), arch, res, base, proxy))
    for name in presets:
        arch = get_preset(name, base.arch.num_classes)
        rungs.append(_rung(PRESET_FAMILY, None, 1.0, (1.0, 1.0, 1.0), arch, base.resolution, base, proxy, name))
    for r in rungs:  # every rung must be trainable: checked now, not an hour into the study
        trained = proxy_arch(r.arch, dataclasses.replace(proxy, resolution=r.proxy_resolution), r.arch.num_classes)
        try:
            check_resolution(trained, r.proxy_resolution)
            check_cost(trained, r.proxy_resolution, batch=proxy.batch_size, what="the proxy network")
        except MvsearchError as exc:
            raise StudyError(f"{r.family} ladder point at {r.flops / 1e9:.2f}G FLOPs cannot be trained: {exc}") from None
    return rungs


# ---------------------------------------------------------------------- options, events, results
@dataclass(frozen=True)
class ScaleOptions:
    """How a scaling study trains (the ladder and proxy aside)."""

    name: str  # the study's name: Optuna study "NAME@scale"
    storage: str | None = None  # default: sqlite:///studies/NAME.db
    seeds: int = 2  # trainings per rung, seeds 0..K-1
    device: str = "auto"
    threads: int | None = None
    timeout_s: float | None = None  # stop starting trainings after this long


def check_scale_options(opts: ScaleOptions) -> None:
    check_name(opts.name, "--name")
    check_int(opts.seeds, "--seeds", 1, MAX_SEEDS, StudyError, what="a number of seeds")
    if opts.seeds - 1 > MAX_SEED:
        raise StudyError(f"--seeds: at most {MAX_SEED + 1}")
    if opts.threads is not None:
        check_int(opts.threads, "--threads", 1, MAX_THREADS, StudyError)
    if opts.timeout_s is not None and not opts.timeout_s > 0:
        raise StudyError(f"--timeout: must be a positive number of seconds, got {shorten(opts.timeout_s)}")


@dataclass(frozen=True)
class Result:
    """One COMPLETE training of a rung."""

    key: str
    seed: int
    accuracy: float
    val_samples: int | None
    train_wall_s: float | None
    ref: str  # "scale/N"


class ScaleEvents:
    """What a scaling study tells its caller (the CLI prints it); every method optional."""

    def start(self, todo: int, done: int, running: int) -> None: ...
    def trial_start(self, ref: str, rung: Rung, seed: int) -> None: ...
    def epoch(self, ref: str, epoch: int, accuracy: float) -> None: ...
    def trial_end(self, ref: str, rung: Rung, seed: int, state: str, accuracy: float | None, wall_s: float) -> None: ...
    def note(self, message: str) -> None: ...


@dataclass
class ScaleSummary:
    trained: int = 0
    failed: int = 0
    interrupted: bool = False
    timed_out: bool = False
    running_elsewhere: int = 0  # jobs other live workers were training when this one ran out of work
    wall_s: float = 0.0
    outcomes: list[tuple[str, str, float | None]] = field(default_factory=list)  # (ref, state, accuracy)


# ---------------------------------------------------------------------- the study
class ScaleStudy:
    """One ``mvsearch scale`` run over a plan: prepare (checks), open (storage), run (train what is missing)."""

    def __init__(self, base: Base, rungs: Sequence[Rung], proxy: ProxySettings, opts: ScaleOptions,
                 events: ScaleEvents | None = None) -> None:
        self.base, self.rungs, self.proxy, self.opts = base, list(rungs), proxy, opts
        self.events = events or ScaleEvents()
        self.url = opts.storage or default_storage(opts.name)
        self.full = study_name(opts.name, SCALE_LABEL)
        self.by_key: dict[str, Rung] = {}
        for r in self.rungs:
            self.by_key.setdefault(r.key, r)
        self.interrupt = Interrupt()
        self._data: dict[int, tuple[Any, Any]] = {}
        self.study: optuna.Study | None = None

    # ------------------------------------------------------------ set-up
    def prepare(self) -> None:
        """Everything that can fail on bad input, before the storage is created or touched."""
        check_scale_options(self.opts)
        self.proxy.train_config(seed=self.opts.seeds - 1, device=self.opts.device, threads=self.opts.threads)
        resolve_device(self.opts.device)
        check_writable_file(self.url)
        self.data_for(self.proxy.resolution)  # the data exists and the split fits it

    def data_for(self, resolution: int) -> tuple[Any, Any]:
        """The proxy data and split at ``resolution`` (loaded once per resolution)."""
        if resolution not in self._data:
            from mvsearch.data import load_data, proxy_split

            split: list = []
            data = load_data(self.proxy.data, resolution=resolution,
                             check=lambda d: split.append(proxy_split(
                                 d, train_samples=self.proxy.train_samples, val_samples=self.proxy.val_samples,
                                 seed=SPLIT_SEED)))
            self._data[resolution] = (data, split[0])
        return self._data[resolution]

    def _info(self) -> StudyRecord:
        return StudyRecord(search=self.opts.name, tier=SCALE_LABEL, schema_version=SCHEMA_VERSION,
                           resolution=[self.base.resolution] * 2, num_classes=self.base.arch.num_classes,
                           data=self.proxy.data, proxy=self.proxy.to_dict(), seed=0, mvsearch_version=__version__,
                           scale=self.base.to_dict())

    def _create(self, storage: Any) -> optuna.Study:
        try:
            study = optuna.create_study(study_name=self.full, storage=storage, direction="maximize",
                                        load_if_exists=True)
        except Exception as exc:
            raise StudyError(f"cannot create or load study {self.full!r}: {storage_problem(self.url, exc)}") from None
        old = StudyRecord.from_attrs(study.user_attrs)
        if study.get_trials(deepcopy=False) or old.tier is not None:
            if old.tier != SCALE_LABEL or old.scale is None:
                raise StudyError(f"study {self.full!r} in {shown_url(self.url)} is not a scaling study; pass "
                                 f"another --name")
            if old.scale.get("arch") != self.base.arch.to_dict() or old.scale.get("resolution") != self.base.resolution:
                raise StudyError(f"scaling study {self.opts.name!r} scales {old.scale.get('label')!r}, not "
                                 f"{self.base.label!r}; pass another --name (e.g. --name scale-{_slug(self.base.label)})")
        for k, v in self._info().to_attrs().items():
            if k == "proxy" and old.proxy is not None:
                continue  # the first run's proxy stays the study's; every trial records its own
            if study.user_attrs.get(k) != v:
                study.set_user_attr(k, v)
        return study

    def open(self) -> None:
        verbosity = optuna.logging.get_verbosity()
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        try:
            path = sqlite_path(self.url)
            if path is not None and not path.exists():
                create_whole(path, self._create)
            self.study = self._create(open_storage(self.url))
            with experimental_ok():
                optuna.storages.fail_stale_trials(self.study)
                stale = fail_dead_workers(self.study, unowned=self.url.startswith("sqlite:"))
            if stale:
                self.events.note(f"training(s) {', '.join(f'{SCALE_LABEL}/{n}' for n in stale)} were left running by "
                                 f"a worker that died; marked FAIL and queued once more")
        finally:
            optuna.logging.set_verbosity(verbosity)

    # ------------------------------------------------------------ jobs
    def jobs(self) -> list[tuple[str, int]]:
        """Every (point, seed) of the plan, seed by seed, cheapest first (a partial study fits early)."""
        keys = sorted(self.by_key, key=lambda k: (self.by_key[k].flops, k))
        return [(k, s) for s in range(self.opts.seeds) for k in keys]

    def _states(self) -> tuple[set, set]:
        done, running = set(), set()
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING)):
            r = TrialRecord.from_user_attrs(t.user_attrs)
            if r.point is None or r.seed is None:
                continue
            (done if t.state == TrialState.COMPLETE else running).add((r.point, r.seed))
        return done, running

    def results(self) -> dict[str, list[Result]]:
        """Point key -> its COMPLETE trainings (the first per seed), for every point of the plan."""
        out: dict[str, dict[int, Result]] = {k: {} for k in self.by_key}
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            r = TrialRecord.from_user_attrs(t.user_attrs)
            if r.point in out and r.seed is not None and r.seed < self.opts.seeds and r.seed not in out[r.point]:
                out[r.point][r.seed] = Result(r.point, r.seed, float(t.value), r.val_samples, r.train_wall_s,
                                              f"{SCALE_LABEL}/{t.number}")
        return {k: [v[s] for s in sorted(v)] for k, v in out.items()}

    def refs(self) -> dict[str, list[str]]:
        """Point key -> the refs of its COMPLETE trainings (what `export --trial` takes)."""
        return {k: [r.ref for r in v] for k, v in self.results().items()}

    # ------------------------------------------------------------ one training
    def _objective(self, job: tuple[str, int]) -> Callable[[optuna.Trial], float]:
        def objective(trial: optuna.Trial) -> float:
            key, seed = job
            queued = TrialRecord.from_user_attrs(trial.user_attrs)  # a retry carries its point and seed
            if queued.point is not None and queued.seed is not None:
                if queued.point not in self.by_key or (queued.point, queued.seed) in self._states()[0]:
                    _write(trial, TrialRecord(worker=WORKER, error="a retry of a point this ladder does not hold "
                                              "(or already trained); rerun the command that planned it to train it"),
                           "worker", "error")
                    raise optuna.TrialPruned("not in this ladder")
                key, seed = queued.point, queued.seed
            return self._train(trial, self.by_key[key], seed)
        return objective

    def _duplicate(self, trial: optuna.Trial, key: str, seed: int) -> int | None:
        for t in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING)):
            r = TrialRecord.from_user_attrs(t.user_attrs)
            if t.number != trial.number and r.point == key and r.seed == seed and \
                    (t.state == TrialState.COMPLETE or t.number < trial.number):
                return t.number
        return None

    def _train(self, trial: optuna.Trial, rung: Rung, seed: int) -> float:
        t0 = time.perf_counter()
        ref = f"{SCALE_LABEL}/{trial.number}"
        # claimed first: a dead worker's trial is found by its pid, a retry by its point and seed
        _write(trial, TrialRecord(worker=WORKER, point=rung.key, seed=seed), "worker", "point", "seed")
        twin = self._duplicate(trial, rung.key, seed)
        if twin is not None:  # another worker took the same job at the same moment
            _write(trial, TrialRecord(error=f"a duplicate of {SCALE_LABEL}/{twin}, taken by another worker at the "
                                            f"same moment"), "error")
            raise optuna.TrialPruned("duplicate")
        proxy = dataclasses.replace(self.proxy, resolution=rung.proxy_resolution)
        data, split = self.data_for(rung.proxy_resolution)
        rec = TrialRecord(arch=rung.arch, params=rung.params, flops=rung.flops, activations=rung.activations,
                          resolution=[rung.resolution] * 2, preset=rung.preset, seed=seed, data=proxy.data,
                          proxy=proxy.to_dict(), proxy_arch=proxy_arch(rung.arch, proxy, data.num_classes),
                          val_samples=len(split.val_y), worker=WORKER, point=rung.key, mvsearch_version=__version__)
        _write(trial, rec, "arch", "params", "flops", "activations", "resolution", "preset", "data", "proxy",
               "proxy_arch", "val_samples", "mvsearch_version")
        self.events.trial_start(ref, rung, seed)
        stop = self.interrupt

        def on_epoch(stats: Any) -> None:
            rec.accuracy_curve.append(float(stats.val_accuracy))
            stop.set_training(False)  # a Ctrl-C now waits: never abort a storage write halfway
            try:
                trial.report(float(stats.val_accuracy), stats.epoch)
                self.events.epoch(ref, stats.epoch, float(stats.val_accuracy))
            finally:
                stop.set_training(True)
            if stop.requested:
                raise KeyboardInterrupt

        state, result = "COMPLETE", None
        if stop.requested:
            raise KeyboardInterrupt
        stop.set_training(True)
        try:
            result = run_proxy(rung.arch, proxy, seed=seed, device=self.opts.device, threads=self.opts.threads,
                               data=data, split=split, callback=on_epoch).result
        except NonFiniteLossError as exc:
            state, rec.error = "FAIL", str(exc)
        except KeyboardInterrupt:
            state, rec.interrupted = "FAIL", True
        finally:
            stop.set_training(False)
        rec.images_per_s = result.images_per_s if result else None
        rec.train_wall_s = result.wall_s if result else None
        rec.wall_s = time.perf_counter() - t0
        _write(trial, rec, "accuracy_curve", "images_per_s", "train_wall_s", "wall_s", "error", "interrupted")
        acc = rec.accuracy_curve[-1] if rec.accuracy_curve and state == "COMPLETE" else None
        self.last = (ref, state, acc)
        self.events.trial_end(ref, rung, seed, state, acc, rec.wall_s)
        if rec.interrupted:
            raise KeyboardInterrupt
        if state == "FAIL":
            raise NonFiniteLossError(rec.error)
        return float(acc)

    # ------------------------------------------------------------ the loop
    def run(self) -> ScaleSummary:
        summary, t_start = ScaleSummary(), time.perf_counter()
        jobs = self.jobs()
        done, running = self._states()
        self.events.start(len(jobs), sum(j in done for j in jobs), sum(j in running and j not in done for j in jobs))
        verbosity = optuna.logging.get_verbosity()
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        with self.interrupt, cpu_threads(self.opts.threads), warnings.catch_warnings():
            warnings.simplefilter("ignore", category=optuna.exceptions.ExperimentalWarning)
            try:
                while True:
                    if self.interrupt.requested:
                        summary.interrupted = True
                        break
                    if self.opts.timeout_s is not None and time.perf_counter() - t_start > self.opts.timeout_s:
                        summary.timed_out = True
                        break
                    with experimental_ok():
                        fail_dead_workers(self.study)  # a worker on this host died while we trained
                    done, running = self._states()
                    todo = [j for j in jobs if j not in done and j not in running]
                    if not todo:
                        summary.running_elsewhere = sum(j in running and j not in done for j in jobs)
                        break
                    self.last = None
                    try:
                        self.study.optimize(self._objective(todo[0]), n_trials=1, catch=(NonFiniteLossError,),
                                            gc_after_trial=False)
                    except KeyboardInterrupt:
                        summary.interrupted = True
                        if self.last is not None:
                            summary.outcomes.append(self.last)
                        raise
                    if self.last is not None:
                        summary.outcomes.append(self.last)
                        summary.trained += self.last[1] == "COMPLETE"
                        summary.failed += self.last[1] == "FAIL"
            except KeyboardInterrupt:
                summary.interrupted = True
            finally:
                optuna.logging.set_verbosity(verbosity)
        summary.wall_s = time.perf_counter() - t_start
        return summary


def _write(trial: optuna.Trial, rec: TrialRecord, *names: str) -> None:
    for k, v in rec.to_attrs(*names).items():
        trial.set_user_attr(k, v)


def _slug(label: str) -> str:
    s = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in Path(str(label)).stem)
    return s.strip("-.")[:60] or "base"


def default_name(base: Base) -> str:
    """``scale-mobilevit_xxs``, ``scale-mobile-1.5G-2``, ``scale-net``."""
    return f"scale-{_slug(base.label.replace(' ', '-').replace('/', '-'))}"


def preset_base(name: str, resolution: int = 256) -> Base:
    return Base("preset", name, get_preset(name), resolution)


def nearest_presets(base: Base, rungs: Sequence[Rung]) -> list[str]:
    """The paper presets whose FLOPs (at the base's resolution) lie within the ladder's range."""
    if not rungs:
        return []
    lo, hi = min(r.flops for r in rungs), max(r.flops for r in rungs)
    out = []
    for name in PRESETS:
        c = analytic_cost(get_preset(name, base.arch.num_classes), base.resolution)
        if lo / 1.05 <= c.flops <= hi * 1.05:
            out.append(name)
    return out


def log_distance(a: float, b: float) -> float:
    return abs(math.log(a / b))


__all__ = ["Base", "Rung", "plan", "ScaleOptions", "ScaleStudy", "ScaleEvents", "ScaleSummary", "Result",
           "SCALE_LABEL", "PRESET_FAMILY", "point_key", "scaled_proxy_resolution", "default_name", "preset_base",
           "nearest_presets", "check_scale_options"]
