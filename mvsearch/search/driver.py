"""The search: an Optuna study that samples architectures, gates them on budget, trains the rest.

One loop (Optuna's ask-and-tell interface) per ``mvsearch run``:

1. pick the tier with the fewest trained trials, and ``ask`` the tier-fair sampler for a candidate
   (:mod:`mvsearch.tiers`);
2. count it analytically at the deployment resolution (:mod:`mvsearch.analytic`, microseconds) and
   reject it when outside the tier's band or over ``--max-params``: a PRUNED trial with
   ``over_budget=True`` and constraint values, never trained, not counted towards ``--trials``;
3. count an accepted candidate once with fvcore and thop (:func:`mvsearch.cost.count`: the numbers
   the trial records), train its proxy network (:func:`mvsearch.train.train`), report validation
   accuracy after every epoch and let the tier's pruner stop it;
4. record everything :data:`mvsearch.study.ATTR` lists, and ``tell`` Optuna the accuracy.

Storage is Optuna's RDB storage (SQLite in WAL mode by default, PostgreSQL by URL); a rerun with
the same study resumes it. Ctrl-C during training marks that trial FAIL (``interrupted=True``)
and ends the run with the storage consistent; trials left RUNNING by a process that died are
marked FAIL when the next run starts.
"""
from __future__ import annotations

import os
import signal
import socket
import time
import warnings
from dataclasses import dataclass, field
from typing import Any
import optuna
import torch
from optuna.trial import TrialState

from mvsearch import __version__
from mvsearch.arch.presets import PRESETS, get_preset
from mvsearch.arch.config import ArchConfig
from mvsearch.budget import Budget, Tier, check_reachable
from mvsearch.core.errors import MvsearchError, NonFiniteLossError, StudyError, first_line
from mvsearch.cost.analytic import analytic_cost
from mvsearch.search.storage import default_storage
from mvsearch.search.storage import open_storage, weights_dir
from mvsearch.search.tiers import TierPruner, TierSampler, make_pruner
from mvsearch.space.space import SearchSpace
from mvsearch.space.loader import parse_space


SAMPLERS = ("tpe", "random", "nsga2")


PRUNERS = ("hyperband", "median", "none")


DEVICES = ("auto", "cpu", "cuda")


#: a tier whose sampler proposes this many rejections in a row falls back to screened draws
MAX_REJECTS_IN_A_ROW = 50


#: seed of the proxy train/validation split: every trial of every run of a study sees the same split
SPLIT_SEED = 0


@dataclass(frozen=True)
class RunOptions:
    """What ``mvsearch run`` was asked to do (space and budget aside)."""

    trials: int = 8  # trained candidates to add (rejections and baselines do not count)
    study_name: str | None = None  # default: the space's name
    storage: str | None = None  # default: sqlite:///studies/<study>.db
    data: str | None = None  # overrides the space's proxy.data
    seed: int = 0  # sampler and training seed
    sampler: str = "tpe"
    pruner: str = "hyperband"
    device: str = "auto"
    timeout_s: float | None = None  # stop starting trials after this long
    with_baselines: bool = False  # train the paper presets in the same study first
    save_weights: bool = False
    measure_latency: bool = False
    threads: int | None = None


def check_options(opts: RunOptions) -> None:
    """StudyError (one line, naming the option) for a run option no search can use."""
    if opts.sampler not in SAMPLERS:
        raise StudyError(f"--sampler: unknown {opts.sampler!r}; known: {', '.join(SAMPLERS)}")
    if opts.pruner not in PRUNERS:
        raise StudyError(f"--pruner: unknown {opts.pruner!r}; known: {', '.join(PRUNERS)}")
    if opts.device not in DEVICES and not str(opts.device).startswith("cuda:"):
        raise StudyError(f"--device: unknown {opts.device!r}; known: {', '.join(DEVICES)} (or cuda:N)")
    if isinstance(opts.trials, bool) or not isinstance(opts.trials, int) or opts.trials < 1:
        raise StudyError(f"--trials: must be a positive integer, got {opts.trials}")
    if opts.timeout_s is not None and not opts.timeout_s > 0:
        raise StudyError(f"--timeout: must be positive, got {opts.timeout_s}s")


@dataclass
class RunInfo:
    study_name: str
    storage: str
    space: str
    budget: Budget
    trials: int
    existing: int  # trials the study held before this run (rejections included)
    data: str  # summary of the loaded dataset
    proxy: dict[str, Any]
    baselines: list[str]  # presets enqueued by this run
    notes: list[str]  # warnings worth showing (collapsed stages, ...)


@dataclass
class TrialOutcome:
    number: int
    state: str  # COMPLETE, PRUNED, FAIL, REJECTED
    tier: str | None
    baseline: bool
    preset: str | None
    accuracy: float | None
    epochs: int  # epochs trained
    flops: int
    params: int
    wall_s: float
    summary: str  # architecture one-liner
    reason: str = ""  # rejection reason or error message


class Reporter:
    """Receives what the search does; the CLI prints it, the library never does."""

    def start(self, info: RunInfo) -> None: ...
    def trial_start(self, number: int, tier: str | None, cfg: ArchConfig, flops: int, preset: str | None) -> None: ...
    def epoch(self, number: int, epoch: int, accuracy: float) -> None: ...
    def trial_end(self, outcome: TrialOutcome) -> None: ...
    def note(self, message: str) -> None: ...


@dataclass
class RunSummary:
    study_name: str
    storage: str
    outcomes: list[TrialOutcome] = field(default_factory=list)  # trained trials and baselines
    rejected: int = 0  # budget rejections recorded as trials by this run
    screened: int = 0  # start-up draws screened out before sampling (never stored)
    interrupted: bool = False
    timed_out: bool = False
    wall_s: float = 0.0

    def count(self, state: str) -> int:
        return sum(1 for o in self.outcomes if o.state == state)


WORKER = f"{socket.gethostname()}:{os.getpid()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fail_stale_trials(study: optuna.Study, *, unowned: bool = False) -> list[int]:
    """Mark FAIL the RUNNING trials whose worker process on this host is gone; their numbers.

    ``unowned``: also those that never recorded a worker (safe with a single-user SQLite file).
    """
    host = socket.gethostname()
    out = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = t.user_attrs.get("worker")
        if isinstance(worker, str) and worker.rpartition(":")[0] == host:
            pid = worker.rpartition(":")[2]
            if pid.isdigit() and (int(pid) == os.getpid() or _alive(int(pid))):
                continue
        elif worker is not None or not unowned:
            continue  # another machine's trial: not ours to judge
        study._storage.set_trial_user_attr(t._trial_id, "interrupted", True)
        study.tell(t.number, state=TrialState.FAIL)
        out.append(t.number)
    return out


class _Interrupt:
    """First Ctrl-C: stop after the current bookkeeping, or at once while training; second: at once."""

    def __init__(self) -> None:
        self.requested = False
        self.training = False
        self._old: Any = None
        self._installed = False

    def _handler(self, signum: int, frame: Any) -> None:
        first = not self.requested
        self.requested = True
        if self.training or not first:
            raise KeyboardInterrupt

    def __enter__(self) -> _Interrupt:
        try:
            self._old = signal.signal(signal.SIGINT, self._handler)
            self._installed = True
        except ValueError:  # not the main thread: leave signals alone
            pass
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._old)


def _study_attrs(space: SearchSpace, budget: Budget, proxy: Any, opts: RunOptions) -> dict[str, Any]:
    return {
        "space": space.name,
        "space_file": space.file,
        "space_yaml": space.text,
        "budget": budget.describe(),
        "budgets": budget.to_dict(),
        "tiers": [t.label for t in budget.tiers],
        "max_params": budget.max_params,
        "resolution": list(space.resolution),
        "num_classes": space.num_classes,
        "data": proxy.data,
        "proxy": proxy.to_dict(),
        "sampler": opts.sampler,
        "pruner": opts.pruner,
        "seed": opts.seed,
        "mvsearch_version": __version__,
    }


def _check_compatible(study: optuna.Study, space: SearchSpace, proxy: Any) -> None:
    """A resumed study must have been made by the same space and proxy (comparable accuracies).

    ``space_yaml`` is the study attribute a run writes last, and before any trial (see
    :meth:`_Search.open`): trials read first imply the attributes; ``space_yaml`` implies the rest.
    """
    has_trials = bool(study.get_trials(deepcopy=False))
    ua = study.user_attrs
    name = study.study_name
    if "space_yaml" not in ua:
        if has_trials:
            raise StudyError(f"study {name!r} was not created by mvsearch run; pick another --study name")
        return
    try:
        old = parse_space(ua["space_yaml"], f"study {name!r}")
        same_space = old.spec.arch == space.spec.arch and old.spec.deployment == space.spec.deployment
    except MvsearchError:
        same_space = False
    if not same_space:
        raise StudyError(f"study {name!r} was created with a different search space ({ua.get('space_file')}); "
                         f"use another --study NAME for this space")
    old_proxy = ua.get("proxy") or {}
    diff = [k for k, v in proxy.to_dict().items() if old_proxy.get(k) != v]
    if diff:
        k = diff[0]
        raise StudyError(f"study {name!r} was trained with proxy {k}={old_proxy.get(k)!r}, this run has "
                         f"{k}={proxy.to_dict()[k]!r}; accuracies would not be comparable: use another --study NAME")


def _enqueue_baselines(study: optuna.Study, space: SearchSpace) -> list[str]:
    have = {t.user_attrs.get("preset") for t in study.get_trials(deepcopy=False)
            if t.user_attrs.get("baseline") and t.state != TrialState.FAIL}
    added = []
    for name in PRESETS:
        if name in have:
            continue
        params = space.encode(get_preset(name, space.num_classes)) or {}
        study.enqueue_trial(params, user_attrs={"baseline": True, "preset": name})
        added.append(name)
    return added


def _pick_tier(study: optuna.Study, budget: Budget) -> Tier:
    counts = {t.label: 0 for t in budget.tiers}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        ua = t.user_attrs
        if not ua.get("over_budget") and not ua.get("baseline") and ua.get("tier") in counts:
            counts[ua["tier"]] += 1
    return min(budget.tiers, key=lambda t: counts[t.label])


class _Search:
    """State of one run (kept out of the public API: use :func:`run_search`)."""

    def __init__(self, space: SearchSpace, budget: Budget, opts: RunOptions, reporter: Reporter) -> None:
        self.space, self.budget, self.opts, self.rep = space, budget, opts, reporter
        self.res = space.resolution
        self.proxy = space.proxy_settings(data=opts.data)
        self.name = opts.study_name or space.name
        self.url = opts.storage or default_storage(self.name)
        self.interrupt = _Interrupt()
        self.summary = RunSummary(self.name, self.url)

    # ------------------------------------------------------------ set-up
    def prepare(self) -> None:
        """Everything that can fail on bad input, before the study is created or touched."""
        check_options(self.opts)
        rng = self.space.cost_range()
        check_reachable(self.budget, min_flops=rng.min_flops, max_flops=rng.max_flops,
                        min_params=rng.min_params, where=f"space {self.space.name!r}")
        from mvsearch.data import load_data, proxy_split
        from mvsearch.proxy.trainer import TrainConfig

        self.tcfg: TrainConfig = self.proxy.train_config(seed=self.opts.seed, device=self.opts.device,
                                                          threads=self.opts.threads)
        from mvsearch.core.runtime import resolve_device

        resolve_device(self.opts.device)  # a missing GPU fails here, not in trial 0
        self.data = load_data(self.proxy.data, resolution=self.proxy.resolution)
        self.split = proxy_split(self.data, train_samples=self.proxy.train_samples,
                                 val_samples=self.proxy.val_samples, seed=SPLIT_SEED)

    def open(self) -> None:
        storage = open_storage(self.url)
        per_tier = -(-self.opts.trials // len(self.budget.tiers))
        n_startup = max(3, min(10, per_tier // 2))
        self.sampler = TierSampler(self.space, self.budget, self.opts.sampler, seed=self.opts.seed,
                                   n_startup=n_startup)
        self.pruner = TierPruner(make_pruner(self.opts.pruner, self.proxy.epochs))
        try:
            self.study = optuna.create_study(study_name=self.name, storage=storage, direction="maximize",
                                             sampler=self.sampler, pruner=self.pruner, load_if_exists=True)
        except Exception as exc:
            raise StudyError(f"cannot create or load study {self.name!r} in {self.url}: "
                             f"{first_line(exc)}") from None
        if len(self.study.directions) != 1 or self.study.direction != optuna.study.StudyDirection.MAXIMIZE:
            raise StudyError(f"study {self.name!r} is not a single-objective maximize study; use another --study")
        _check_compatible(self.study, self.space, self.proxy)
        self.existing = len(self.study.get_trials(deepcopy=False))
        attrs = _study_attrs(self.space, self.budget, self.proxy, self.opts)
        attrs["space_yaml"] = attrs.pop("space_yaml")  # last: a worker starting now checks against it
        have = self.study.user_attrs
        for k, v in attrs.items():
            if have.get(k) != v:
                self.study.set_user_attr(k, v)
        stale = fail_stale_trials(self.study, unowned=self.url.startswith("sqlite:"))
        if stale:
            self.rep.note(f"marked {len(stale)} trial(s) left running by an earlier, interrupted run as "
                          f"FAIL: {', '.join(map(str, stale))}")
        self.baselines = _enqueue_baselines(self.study, self.space) if self.opts.with_baselines else []

    # ------------------------------------------------------------ one trial
    def _base_attrs(self, cfg: ArchConfig, cost: Any, thop: int | None, tier: str | None,
                    preset: str | None, over: bool) -> dict[str, Any]:
        from mvsearch.proxy.settings import proxy_arch

        return {
            "arch": cfg.to_dict(), "params": cost.params, "flops": cost.flops, "thop_macs": thop,
            "activations": cost.activations, "resolution": list(self.res), "tier": tier,
            "baseline": preset is not None, "preset": preset, "over_budget": over,
            "accuracy_curve": [], "images_per_s": None, "wall_s": None, "seed": self.opts.seed,
            "data": self.proxy.data, "proxy": self.proxy.to_dict(), "mvsearch_version": __version__,
            "proxy_arch": proxy_arch(cfg, self.proxy, self.data.num_classes).to_dict(),
        }

    def _set_attrs(self, trial: optuna.Trial, attrs: dict[str, Any]) -> None:
        for k, v in attrs.items():
            trial.set_user_attr(k, v)

    def _reject(self, trial: optuna.Trial, cfg: ArchConfig, cost: Any, tier: Tier, reason: str, t0: float) -> None:
        attrs = self._base_attrs(cfg, cost, None, tier.label, None, True)
        attrs["reject_reason"] = reason
        attrs["wall_s"] = time.perf_counter() - t0
        self._set_attrs(trial, attrs)
        self.study.tell(trial, state=TrialState.PRUNED)
        self.summary.rejected += 1
        self.rejects_in_a_row += 1
        self.rep.trial_end(TrialOutcome(trial.number, "REJECTED", tier.label, False, None, None, 0,
                                        cost.flops, cost.params, attrs["wall_s"], cfg.summary(), reason))

    def _train(self, trial: optuna.Trial, cfg: ArchConfig, tier: str | None, preset: str | None,
               t0: float, quick: Any) -> TrialOutcome:
        """Train an accepted candidate; ``quick`` is the analytic count the budget gate used."""
        from mvsearch.cost.traced import count
        from mvsearch.model.network import build_model
        from mvsearch.proxy.settings import proxy_arch
        from mvsearch.core.atomic import save_state_dict
        from mvsearch.proxy.trainer import train

        cost = count(cfg, self.res)  # fvcore + thop, once per trained trial
        if (quick.flops, quick.params) != (cost.flops, cost.params):
            self.rep.note(f"trial {trial.number}: analytic count {quick.flops:,} FLOPs differs from fvcore's "
                          f"{cost.flops:,}; recording fvcore's (please report this)")
        attrs = self._base_attrs(cfg, cost, cost.thop_macs, tier, preset, False)
        attrs["worker"] = WORKER
        self._set_attrs(trial, attrs)
        self.rep.trial_start(trial.number, tier, cfg, cost.flops, preset)
        pcfg = proxy_arch(cfg, self.proxy, self.data.num_classes)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.opts.seed)  # same initialisation stream for every candidate
            model = build_model(pcfg)
        curve: list[float] = []
        last: dict[str, float] = {}

        def on_epoch(stats: Any) -> None:
            curve.append(float(stats.val_accuracy))
            last.update(images_per_s=stats.images_per_s, wall_s=stats.wall_s)
            self.interrupt.training = False  # a Ctrl-C now waits: never abort a storage write halfway
            try:
                trial.report(float(stats.val_accuracy), stats.epoch)
                self.rep.epoch(trial.number, stats.epoch, float(stats.val_accuracy))
                prune = preset is None and stats.epoch < self.tcfg.epochs and trial.should_prune()
            finally:
                self.interrupt.training = True
            if self.interrupt.requested:
                raise KeyboardInterrupt
            if prune:
                raise optuna.TrialPruned()

        state, error, result = TrialState.COMPLETE, "", None
        if self.interrupt.requested:
            raise KeyboardInterrupt
        self.interrupt.training = True
        try:
            result = train(model, self.split, self.tcfg, hflip=self.data.hflip, callback=on_epoch)
        except optuna.TrialPruned:
            state = TrialState.PRUNED
        except NonFiniteLossError as exc:  # this candidate diverged; the search goes on
            state, error = TrialState.FAIL, str(exc)
        finally:
            self.interrupt.training = False
        trial.set_user_attr("accuracy_curve", curve)
        trial.set_user_attr("images_per_s", result.images_per_s if result else last.get("images_per_s"))
        trial.set_user_attr("train_wall_s", result.wall_s if result else last.get("wall_s"))
        if error:
            trial.set_user_attr("error", error)
        if self.opts.save_weights and state != TrialState.FAIL:
            path = weights_dir(self.url, self.name) / f"trial_{trial.number}.pt"
            path.parent.mkdir(parents=True, exist_ok=True)
            save_state_dict(model, path)
            trial.set_user_attr("weights", str(path))
        wall = time.perf_counter() - t0
        trial.set_user_attr("wall_s", wall)
        acc = curve[-1] if curve else None
        if state == TrialState.COMPLETE:
            self.study.tell(trial, acc)
        else:
            self.study.tell(trial, state=state)
        if self.opts.measure_latency and state == TrialState.COMPLETE:
            self._latency(trial.number, cfg)
        return TrialOutcome(trial.number, state.name, tier, preset is not None, preset, acc, len(curve),
                            cost.flops, cost.params, wall, cfg.summary(), error)

    def _latency(self, number: int, cfg: ArchConfig) -> None:
        try:
            from mvsearch.latency.study import measure_and_store
        except ImportError:
            self.rep.note("--measure-latency: mvsearch.latency is not available in this installation")
            return
        measure_and_store(self.url, self.name, number, cfg, self.res, backend="torch", threads=self.opts.threads)

    def step(self) -> bool:
        """Ask for one candidate and handle it; True when a trial was trained (not a rejection)."""
        tier = _pick_tier(self.study, self.budget)
        self.sampler.tier = tier
        self.sampler.force_screen = self.rejects_in_a_row >= MAX_REJECTS_IN_A_ROW
        t0 = time.perf_counter()
        trial = self.study.ask()
        told = False
        try:
            trial.set_user_attr("worker", WORKER)
            ua = trial.user_attrs
            if ua.get("baseline"):
                preset = ua.get("preset")
                cfg = get_preset(preset, self.space.num_classes)
                if self.space.encode(cfg) is not None:  # enqueued with its params: store them
                    self.space.sample(trial)  # (the tier's sampler then learns from the baseline)
                quick = analytic_cost(cfg, self.res)
                t = self.budget.tier_of(quick.flops)
                verdict = self.budget.check(quick.flops, quick.params, t)
                for k, v in verdict.constraints.items():
                    trial.set_constraint(k, v)
                outcome = self._train(trial, cfg, t.label if t else None, preset, t0, quick)
                told = True
                self.summary.outcomes.append(outcome)
                self.rep.trial_end(outcome)
                return False
            cfg = self.space.sample(trial)
            self.summary.screened += self.sampler.screened
            if self.sampler.screened:
                trial.set_user_attr("screened_out", self.sampler.screened)
                self.sampler.screened = 0
            quick = analytic_cost(cfg, self.res)
            verdict = self.budget.check(quick.flops, quick.params, tier)
            for k, v in verdict.constraints.items():
                trial.set_constraint(k, v)
            if not verdict.ok:
                self._reject(trial, cfg, quick, tier, verdict.reason, t0)
                told = True
                return False
            self.rejects_in_a_row = 0
            outcome = self._train(trial, cfg, tier.label, None, t0, quick)
            told = True
            self.summary.outcomes.append(outcome)
            self.rep.trial_end(outcome)
            return True
        except BaseException as exc:
            if not told:  # Ctrl-C or a bug: never leave the trial RUNNING
                interrupted = isinstance(exc, KeyboardInterrupt)
                try:
                    trial.set_user_attr("interrupted" if interrupted else "error",
                                        True if interrupted else f"{type(exc).__name__}: {exc}")
                    self.study.tell(trial, state=TrialState.FAIL)
                except Exception:
                    pass
                if interrupted:
                    self.summary.interrupted = True
                    self.summary.outcomes.append(TrialOutcome(trial.number, "FAIL", tier.label, False, None, None,
                                                              0, 0, 0, time.perf_counter() - t0, "-", "interrupted"))
            raise

    def run(self) -> RunSummary:
        t_start = time.perf_counter()
        self.rejects_in_a_row = 0
        info = RunInfo(self.name, self.url, self.space.name, self.budget, self.opts.trials, self.existing,
                       self.data.summary(), self.proxy.to_dict(), self.baselines,
                       self.space.proxy_warnings(self.proxy))
        self.rep.start(info)
        trained = 0
        from mvsearch.core.runtime import cpu_threads

        # --threads bounds everything the run computes (fvcore counts, latency), not only training:
        # on a busy machine more threads than free cores make each op many times slower
        with self.interrupt, cpu_threads(self.opts.threads), warnings.catch_warnings():
            warnings.simplefilter("ignore", category=optuna.exceptions.ExperimentalWarning)
            try:
                while trained < self.opts.trials or self._waiting_baselines():
                    if self.interrupt.requested:
                        self.summary.interrupted = True
                        break
                    if self.opts.timeout_s is not None and time.perf_counter() - t_start > self.opts.timeout_s:
                        self.summary.timed_out = True
                        break
                    trained += self.step()
            except KeyboardInterrupt:
                self.summary.interrupted = True
        self.summary.wall_s = time.perf_counter() - t_start
        return self.summary

    def _waiting_baselines(self) -> bool:
        return any(t.user_attrs.get("baseline") for t in
                   self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))


def run_search(space: SearchSpace, budget: Budget, opts: RunOptions, reporter: Reporter | None = None) -> RunSummary:
    """Run (or resume) a search; returns what this run did. Bad input raises before any write."""
    s = _Search(space, budget, opts, reporter or Reporter())
    s.prepare()
    s.open()
    return s.run()


def best_trials(study: optuna.Study, per_tier: int = 3) -> list[Any]:
    """The best completed trials of each tier (baselines listed too), as study records."""
    from mvsearch.search.record import records

    recs = [r for r in records(study) if r.state == "COMPLETE" and r.accuracy is not None]
    out, seen = [], {}
    for r in sorted(recs, key=lambda r: -r.accuracy):
        key = r.tier if not r.baseline else ("baseline", r.preset)
        if r.baseline or seen.get(key, 0) < per_tier:
            seen[key] = seen.get(key, 0) + 1
            out.append(r)
    return sorted(out, key=lambda r: ((r.flops or 0), -(r.accuracy or 0)))
