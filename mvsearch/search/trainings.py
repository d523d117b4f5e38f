"""A study of planned trainings: fixed networks, each trained under its own setting with K seeds.

The search (:mod:`mvsearch.search.driver`) lets a sampler choose what to train; a scaling study
(:mod:`mvsearch.search.scaling`) knows beforehand: a list of *planned* networks, each with its
deployment resolution and its full :class:`~mvsearch.proxy.settings.ProxySettings`. This module
trains such a plan in one ordinary Optuna study, ``NAME@LABEL``:

* one trial is one training of one planned network with one seed; its user attributes are a
  :class:`~mvsearch.search.record.TrialRecord` whose ``point`` is the planned network's key (see
  :func:`point_key`: a hash of the architecture, the deployment resolution and the whole training
  setting), so the same network under the same training is trained once however many entries of
  a plan name it, and a changed setting never mixes with old results;
* a run trains, seed by seed and cheapest first, every (point, seed) without a COMPLETE trial
  that no live worker is training, so rerunning the same command resumes, and several processes
  (or machines, on PostgreSQL) running it share the work;
* a worker that dies leaves a RUNNING trial that the heartbeat (or, on this host, a check of its
  process) fails; Optuna's retry callback queues it again with its point and seed, and the next
  worker trains it. Ctrl-C and SIGTERM stop as in ``mvsearch run``: the training under way is marked
  interrupted and FAIL, the study stays consistent.

Every planned entry is an object with ``key``, ``arch``, ``resolution``, ``proxy``, ``flops``,
``params``, ``activations`` and ``preset`` (a :class:`~mvsearch.search.scaling.Rung` is one). An
entry may carry its own ``seeds`` (an int, at most ``opts.seeds``; the caller checks it): it is then
trained with seeds 0..seeds-1 instead of ``opts.seeds`` (a fidelity study's reference gets more
seeds than its proxies). Entries sharing a key are trained with the most seeds any of them asks for.
"""
from __future__ import annotations

import hashlib
import json
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import optuna
from optuna.trial import TrialState

from mvsearch import __version__
from mvsearch.arch.config import ArchConfig
from mvsearch.core.errors import NonFiniteLossError, StudyError
from mvsearch.core.limits import MAX_SEED, MAX_THREADS, check_int
from mvsearch.core.jemalloc import name as malloc_name
from mvsearch.core.memory import peak_rss, reset_peak
from mvsearch.core.runtime import cpu_threads, resolve_device
from mvsearch.core.text import shorten
from mvsearch.proxy.run import run_proxy
from mvsearch.proxy.settings import ProxySettings, proxy_arch
from mvsearch.search.interrupt import Interrupt
from mvsearch.search.record import StudyRecord, TrialRecord
from mvsearch.search.storage import (check_name, check_writable_file, create_whole, default_storage,
                                     experimental_ok, open_storage, shown_url, sqlite_path, storage_problem,
                                     study_name)
from mvsearch.search.workers import WORKER, fail_dead_workers

#: seed of the proxy train/validation split (the search's): every training sees the same images
SPLIT_SEED = 0
MAX_SEEDS = 20


def point_key(arch: ArchConfig, resolution: int, proxy: ProxySettings) -> str:
    """A planned training's identity: the same network, deployment and training give the same key."""
    blob = json.dumps({"arch": arch.to_dict(), "resolution": resolution, "proxy": proxy.to_dict()},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# ---------------------------------------------------------------------- options, events, results
@dataclass(frozen=True)
class TrainingOptions:
    """How a plan is trained (the plan itself aside)."""

    name: str  # the study's name: Optuna study "NAME@LABEL"
    storage: str | None = None  # default: sqlite:///studies/NAME.db
    seeds: int = 2  # trainings per planned network, seeds 0..K-1 (an entry's own ``seeds`` overrides it)
    device: str = "auto"
    threads: int | None = None
    timeout_s: float | None = None  # stop starting trainings after this long


def check_seeds(seeds: int, option: str = "--seeds") -> int:
    """A number of trainings per planned network (seeds 0..seeds-1), else a one-line StudyError."""
    top = min(MAX_SEEDS, MAX_SEED + 1)
    if isinstance(seeds, bool) or not isinstance(seeds, int) or not 1 <= seeds <= top:
        raise StudyError(f"{option}: a number of seeds in 1..{top}, got {shorten(seeds)}")
    return seeds


def check_training_options(opts: TrainingOptions) -> None:
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
    """One COMPLETE training of a planned network."""

    key: str
    seed: int
    accuracy: float
    val_samples: int | None
    train_wall_s: float | None
    ref: str  # "LABEL/N", what `export --trial` takes


class TrainingEvents:
    """What a training study tells its caller (the CLI prints it); every method optional."""

    def start(self, todo: int, done: int, running: int) -> None: ...
    def trial_start(self, ref: str, planned: Any, seed: int) -> None: ...
    def epoch(self, ref: str, epoch: int, accuracy: float) -> None: ...
    def trial_end(self, ref: str, planned: Any, seed: int, state: str, accuracy: float | None,
                  wall_s: float) -> None: ...
    def note(self, message: str) -> None: ...


@dataclass
class TrainingSummary:
    trained: int = 0
    failed: int = 0
    interrupted: bool = False
    timed_out: bool = False
    running_elsewhere: int = 0  # jobs other live workers were training when this one ran out of work
    wall_s: float = 0.0
    outcomes: list[tuple[str, str, float | None]] = field(default_factory=list)  # (ref, state, accuracy)


class _Duplicate(Exception):
    """Raised inside a training when an earlier trial holds the same job (its number in ``number``)."""

    def __init__(self, number: int) -> None:
        super().__init__(number)
        self.number = number


def _write(trial: optuna.Trial, rec: TrialRecord, *names: str) -> None:
    for k, v in rec.to_attrs(*names).items():
        trial.set_user_attr(k, v)


# ---------------------------------------------------------------------- the study
class TrainingStudy:
    """One run over a plan: prepare (checks), open (storage), run (train what is missing).

    ``info`` is the study's record (``search`` and ``tier`` = the label set here); ``compatible``
    raises a StudyError when an existing study of that name cannot take this plan.
    """

    def __init__(self, label: str, planned: Sequence[Any], opts: TrainingOptions, info: StudyRecord, *,
                 compatible: Callable[[StudyRecord], None] | None = None,
                 events: TrainingEvents | None = None) -> None:
        self.label, self.planned, self.opts = label, list(planned), opts
        self.info = info
        self.compatible = compatible
        self.events = events or TrainingEvents()
        self.url = opts.storage or default_storage(opts.name)
        self.full = study_name(opts.name, label)
        self.by_key: dict[str, Any] = {}
        self.seeds_of: dict[str, int] = {}  # point -> how many seeds it is trained with
        for p in self.planned:
            self.by_key.setdefault(p.key, p)
            k = getattr(p, "seeds", None) or opts.seeds
            self.seeds_of[p.key] = max(self.seeds_of.get(p.key, 0), k)
        self.interrupt = Interrupt()
        self._data: dict[tuple, tuple[Any, Any]] = {}
        self.study: optuna.Study | None = None
        self.last: tuple[str, str, float | None] | None = None

    # ------------------------------------------------------------ set-up
    def prepare(self) -> None:
        """Everything that can fail on bad input, before the storage is created or touched."""
        check_training_options(self.opts)
        for proxy in {p.proxy for p in self.planned}:
            proxy.train_config(seed=self.opts.seeds - 1, device=self.opts.device, threads=self.opts.threads)
        resolve_device(self.opts.device)
        check_writable_file(self.url)
        for proxy in {(p.proxy.data, p.proxy.train_samples, p.proxy.val_samples): p.proxy
                      for p in self.planned}.values():
            self.data_for(proxy)  # the data exists and each split fits it

    def data_for(self, proxy: ProxySettings) -> tuple[Any, Any]:
        """The data and split a setting trains on (loaded once per data, resolution and split)."""
        key = (proxy.data, proxy.resolution, proxy.train_samples, proxy.val_samples)
        if key not in self._data:
            from mvsearch.data import load_data, proxy_split

            split: list = []
            data = load_data(proxy.data, resolution=proxy.resolution,
                             check=lambda d: split.append(proxy_split(
                                 d, train_samples=proxy.train_samples, val_samples=proxy.val_samples,
                                 seed=SPLIT_SEED)))
            self._data[key] = (data, split[0])
        return self._data[key]

    def _create(self, storage: Any) -> optuna.Study:
        try:
            study = optuna.create_study(study_name=self.full, storage=storage, direction="maximize",
                                        load_if_exists=True)
        except Exception as exc:
            raise StudyError(f"cannot create or load study {self.full!r}: {storage_problem(self.url, exc)}") from None
        old = StudyRecord.from_attrs(study.user_attrs)
        if study.get_trials(deepcopy=False) or old.tier is not None:
            if old.tier != self.label:
                raise StudyError(f"study {self.full!r} in {shown_url(self.url)} was not made by this command; pass "
                                 f"another --name")
            if self.compatible is not None:
                self.compatible(old)
        for k, v in self.info.to_attrs().items():
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
                self.events.note(f"training(s) {', '.join(f'{self.label}/{n}' for n in stale)} were left running by "
                                 f"a worker that died; marked FAIL and queued once more")
        finally:
            optuna.logging.set_verbosity(verbosity)

    # ------------------------------------------------------------ jobs
    def jobs(self) -> list[tuple[str, int]]:
        """Every (point, seed) of the plan, seed by seed, cheapest first (a partial study is usable early)."""
        keys = sorted(self.by_key, key=lambda k: (self.by_key[k].flops * _cost_factor(self.by_key[k].proxy), k))
        most = max(self.seeds_of.values(), default=0)
        return [(k, s) for s in range(most) for k in keys if s < self.seeds_of[k]]

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
            if r.point in out and r.seed is not None and r.seed < self.seeds_of[r.point] and r.seed not in out[r.point]:
                out[r.point][r.seed] = Result(r.point, r.seed, float(t.value), r.val_samples, r.train_wall_s,
                                              f"{self.label}/{t.number}")
        return {k: [v[s] for s in sorted(v)] for k, v in out.items()}

    # ------------------------------------------------------------ one training
    def _objective(self, job: tuple[str, int]) -> Callable[[optuna.Trial], float]:
        def objective(trial: optuna.Trial) -> float:
            key, seed = job
            queued = TrialRecord.from_user_attrs(trial.user_attrs)  # a retry carries its point and seed
            if queued.point is not None and queued.seed is not None:
                if queued.point not in self.by_key or queued.seed >= self.seeds_of[queued.point] or \
                        (queued.point, queued.seed) in self._states()[0]:
                    _write(trial, TrialRecord(worker=WORKER, error="a retry of a point this plan does not hold "
                                              "(or already trained); rerun the command that planned it to train it"),
                           "worker", "error")
                    raise optuna.TrialPruned("not in this plan")
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

    def _train(self, trial: optuna.Trial, planned: Any, seed: int) -> float:
        t0 = time.perf_counter()
        ref = f"{self.label}/{trial.number}"
        # claimed first: a dead worker's trial is found by its pid, a retry by its point and seed
        _write(trial, TrialRecord(worker=WORKER, point=planned.key, seed=seed), "worker", "point", "seed")
        twin = self._duplicate(trial, planned.key, seed)
        if twin is not None:  # another worker took the same job at the same moment
            _write(trial, TrialRecord(error=f"a duplicate of {self.label}/{twin}, taken by another worker at the "
                                            f"same moment"), "error")
            raise optuna.TrialPruned("duplicate")
        proxy = planned.proxy
        data, split = self.data_for(proxy)
        rec = TrialRecord(arch=planned.arch, params=planned.params, flops=planned.flops,
                          activations=planned.activations, resolution=[planned.resolution] * 2, preset=planned.preset,
                          seed=seed, data=proxy.data, proxy=proxy.to_dict(),
                          proxy_arch=proxy_arch(planned.arch, proxy, data.num_classes), val_samples=len(split.val_y),
                          worker=WORKER, point=planned.key, mvsearch_version=__version__)
        _write(trial, rec, "arch", "params", "flops", "activations", "resolution", "preset", "data", "proxy",
               "proxy_arch", "val_samples", "mvsearch_version")
        self.events.trial_start(ref, planned, seed)
        stop = self.interrupt

        def on_epoch(stats: Any) -> None:
            rec.accuracy_curve.append(float(stats.val_accuracy))
            stop.set_training(False)  # a Ctrl-C now waits: never abort a storage write halfway
            try:
                trial.report(float(stats.val_accuracy), stats.epoch)
                self.events.epoch(ref, stats.epoch, float(stats.val_accuracy))
                # two workers that took the same job at the same moment both passed the check
                # above if each looked before the other had claimed it: after each epoch the
                # one with the higher trial number gives way
                twin = self._duplicate(trial, planned.key, seed)
            finally:
                stop.set_training(True)
            if stop.requested:
                raise KeyboardInterrupt
            if twin is not None:
                raise _Duplicate(twin)

        state, result = "COMPLETE", None
        if stop.requested:  # a Ctrl-C while the training was set up: it is interrupted like one in training
            rec.interrupted = True
            _write(trial, rec, "interrupted")
            raise KeyboardInterrupt
        stop.set_training(True)
        reset_peak()  # peak_rss: this training's, not an earlier one of the same process
        try:
            result = run_proxy(planned.arch, proxy, seed=seed, device=self.opts.device, threads=self.opts.threads,
                               data=data, split=split, callback=on_epoch).result
        except NonFiniteLossError as exc:
            state, rec.error = "FAIL", str(exc)
        except _Duplicate as dup:
            state, rec.error = "PRUNED", f"a duplicate of {self.label}/{dup.number}, taken by another worker at the " \
                                         f"same moment"
        except KeyboardInterrupt:
            state, rec.interrupted = "FAIL", True
        finally:
            stop.set_training(False)
        rec.peak_rss, rec.malloc = peak_rss(), malloc_name()
        rec.images_per_s = result.images_per_s if result else None
        rec.train_wall_s = result.wall_s if result else None
        rec.wall_s = time.perf_counter() - t0
        _write(trial, rec, "accuracy_curve", "images_per_s", "train_wall_s", "wall_s", "error", "interrupted",
               "peak_rss", "malloc")
        acc = rec.accuracy_curve[-1] if rec.accuracy_curve and state == "COMPLETE" else None
        self.last = (ref, state, acc)
        self.events.trial_end(ref, planned, seed, state, acc, rec.wall_s)
        if rec.interrupted:
            raise KeyboardInterrupt
        if state == "FAIL":
            raise NonFiniteLossError(rec.error)
        if state == "PRUNED":
            raise optuna.TrialPruned("duplicate")
        return float(acc)

    # ------------------------------------------------------------ the loop
    def run(self) -> TrainingSummary:
        summary, t_start = TrainingSummary(), time.perf_counter()
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


def _cost_factor(proxy: ProxySettings) -> float:
    """Relative training work of a setting per deployed FLOP: the images it trains on."""
    n = proxy.train_samples if proxy.train_samples is not None else 60_000
    return proxy.epochs * n


__all__ = ["TrainingStudy", "TrainingOptions", "TrainingEvents", "TrainingSummary", "Result", "point_key",
           "check_training_options", "check_seeds", "SPLIT_SEED", "MAX_SEEDS"]
