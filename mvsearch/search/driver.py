"""The search: per-tier Optuna studies driven round-robin with ``study.optimize``.

One ``mvsearch run``:

1. checks everything that can fail on bad input (options, budget against the space, device,
   data, the storage file) before any study is created or touched;
2. opens one Optuna study per FLOP tier (``NAME@TIER``, see :mod:`mvsearch.search.storage`) with a
   stock sampler and pruner each (:mod:`mvsearch.search.tiers`), checks that a resumed search was
   made by the same space, proxy and ``--seeds`` (a study without ``seeds`` counts as 1), fails
   trials whose worker died (this host's dead processes at once, any host's after the heartbeat
   grace period) and lets Optuna's retry callback queue their architectures once more, and
   enqueues the paper presets as baselines (those within the budget when the space says
   ``search.baselines: true``, all three with ``--with-baselines``);
3. repeats, until ``--trials`` candidates were trained (rejections and baselines do not count):
   pick the tier with the fewest trained trials, enqueue a screened draw while the tier is in its
   start-up phase, and run one trial of that tier with ``study.optimize(n_trials=1)`` (Optuna
   then runs the heartbeat and stale-trial checks) and the caller's callbacks.

Ctrl-C and SIGTERM stop the run cleanly: while training, the trial is marked ``interrupted`` and
FAIL; between trials, the run ends before the next. The storage is consistent either way, and a
rerun of the same command resumes.
"""
from __future__ import annotations

import random
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState

from mvsearch import __version__
from mvsearch.arch.presets import PRESETS, get_preset
from mvsearch.budget import Budget, check_reachable
from mvsearch.core.errors import MvsearchError, NonFiniteLossError, StudyError
from mvsearch.core.runtime import cpu_threads, resolve_device
from mvsearch.cost.analytic import analytic_cost
from mvsearch.proxy.settings import interval_note
from mvsearch.search.events import Reporter, RunInfo, RunOptions, RunSummary, check_options
from mvsearch.search.interrupt import Interrupt
from mvsearch.search.objective import Context, NothingQueued, Objective
from mvsearch.search.record import SCHEMA_VERSION, StudyRecord, TrialRecord
from mvsearch.search.results import best_trials  # noqa: F401  (re-exported: the run's closing table)
from mvsearch.search.workers import WORKER, fail_dead_workers  # noqa: F401  (WORKER re-exported)
from mvsearch.search.bands import check_bands
from mvsearch.search.storage import (check_writable_file, create_whole, default_storage, experimental_ok, open_storage,
                                     shown_url, sqlite_path, storage_problem, study_name)
from mvsearch.search.tiers import drawn_params, make_pruner, make_sampler, n_startup, screen
from mvsearch.space.loader import parse_space
from mvsearch.space.space import SearchSpace

#: a tier whose sampler proposes this many rejections in a row falls back to screened draws
MAX_REJECTS_IN_A_ROW = 50
#: fresh draws a worker takes when its screened draw is already a trial (two workers, same moment)
MAX_REDRAWS = 5
#: seed of the proxy train/validation split: every trial of every run of a study sees the same split
SPLIT_SEED = 0
PRESETS_LABEL = "presets"  # the study of baselines outside every tier


# ---------------------------------------------------------------------- the run
class Search:
    """One run of :func:`run_search` (prepare, open, run)."""

    def __init__(self, space: SearchSpace, budget: Budget, opts: RunOptions, reporter: Reporter,
                 callbacks: Sequence[Callable[[optuna.Study, FrozenTrial], None]] = ()) -> None:
        self.space, self.budget, self.opts, self.rep = space, budget, opts, reporter
        self.callbacks = list(callbacks)
        self.proxy = space.proxy_settings(data=opts.data)
        self.name = opts.study_name or space.name
        self.url = opts.storage or default_storage(self.name)
        self.interrupt = Interrupt()
        self.summary = RunSummary(self.name, self.url)
        self.studies: dict[str, optuna.Study] = {}

    # ------------------------------------------------------------ set-up
    def prepare(self) -> None:
        """Everything that can fail on bad input, before the study is created or touched."""
        check_options(self.opts)
        rng = self.space.cost_range()
        check_reachable(self.budget, min_flops=rng.min_flops, max_flops=rng.max_flops,
                        min_params=rng.min_params, where=f"space {self.space.name!r}")
        self.proxy.train_config(seed=self.opts.seed, device=self.opts.device, threads=self.opts.threads)
        resolve_device(self.opts.device)  # a missing GPU fails here, not in trial 0
        check_writable_file(self.url)
        check_bands(self.space, self.budget, self.opts.seed)  # an empty band: said now, not after 200,000 rejections
        from mvsearch.data import load_data, proxy_split

        split = []
        self.data = load_data(self.proxy.data, resolution=self.proxy.resolution,
                              check=lambda d: split.append(proxy_split(
                                  d, train_samples=self.proxy.train_samples, val_samples=self.proxy.val_samples,
                                  seed=SPLIT_SEED)))
        self.split = split[0]

    def _notes(self) -> list[str]:
        """The proxy's warnings: collapsed attention stages, a validation split too small for ±1.5 points."""
        note = interval_note(self.proxy, len(self.data.train_y))
        return self.space.proxy_warnings(self.proxy) + ([note] if note else [])

    def _info(self, label: str) -> StudyRecord:
        b, s, o = self.budget, self.space, self.opts
        return StudyRecord(search=self.name, tier=label, schema_version=SCHEMA_VERSION, space=s.name,
                           space_file=s.file, budget=b.describe(), budgets=b.to_dict(),
                           tiers=[t.label for t in b.tiers], max_params=b.max_params, resolution=list(s.resolution),
                           num_classes=s.num_classes, data=self.proxy.data, proxy=self.proxy.to_dict(),
                           sampler=o.sampler, pruner=o.pruner, seed=o.seed, seeds=o.seeds,
                           mvsearch_version=__version__, space_yaml=s.text)

    def _check_compatible(self, study: optuna.Study) -> None:
        """A resumed study must come from the same space, proxy and seeds (comparable accuracies)."""
        name = study.study_name
        old = StudyRecord.from_attrs(study.user_attrs)
        if old.space_yaml is None:
            if study.get_trials(deepcopy=False):
                raise StudyError(f"study {name!r} was not created by mvsearch run; pick another --study name")
            return
        try:
            was = parse_space(old.space_yaml, f"study {name!r}")
            same = was.spec.arch == self.space.spec.arch and was.spec.deployment == self.space.spec.deployment
        except MvsearchError:
            same = False
        if not same:
            raise StudyError(f"study {self.name!r} was created with a different search space ({old.space_file}); "
                             f"use another --study NAME for this space")
        new = self.proxy.to_dict()
        diff = [k for k, v in new.items() if (old.proxy or {}).get(k) != v]
        if diff:
            k = diff[0]
            raise StudyError(f"study {self.name!r} was trained with proxy {k}={(old.proxy or {}).get(k)!r}, this run "
                             f"has {k}={new[k]!r}; accuracies would not be comparable: use another --study NAME")
        was_seeds = old.seeds if isinstance(old.seeds, int) and not isinstance(old.seeds, bool) else 1  # older: 1
        if was_seeds != self.opts.seeds:
            raise StudyError(f"study {self.name!r} was made with --seeds {was_seeds} (each candidate ranked by the "
                             f"mean of {was_seeds} seed{'s' if was_seeds != 1 else ''}), this run has --seeds "
                             f"{self.opts.seeds}; the values would not be comparable: rerun with --seeds {was_seeds}, "
                             f"or use a new --study NAME")

    def _open_study(self, storage: Any, label: str, index: int, startup: int) -> optuna.Study:
        full = study_name(self.name, label)
        try:
            study = optuna.create_study(study_name=full, storage=storage, direction="maximize",
                                        sampler=make_sampler(self.opts.sampler, self.opts.seed, index, startup),
                                        pruner=make_pruner(self.opts.pruner, self.proxy.epochs), load_if_exists=True)
        except Exception as exc:
            raise StudyError(f"cannot create or load study {full!r}: {storage_problem(self.url, exc)}") from None
        if len(study.directions) != 1 or study.direction != optuna.study.StudyDirection.MAXIMIZE:
            raise StudyError(f"study {full!r} is not a single-objective maximize study; use another --study")
        self._check_compatible(study)
        have = study.user_attrs
        for k, v in self._info(label).to_attrs().items():  # space_yaml last: a worker starting now checks it
            if have.get(k) != v:
                study.set_user_attr(k, v)
        return study

    def open(self) -> None:
        verbosity = optuna.logging.get_verbosity()
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "A new study created" line per tier
        try:
            self._open()
        finally:
            optuna.logging.set_verbosity(verbosity)

    def _create_new(self, path: Path) -> None:
        """A new SQLite file appears whole (see :func:`~mvsearch.search.storage.create_whole`)."""

        def init(storage: Any) -> None:
            for i, tier in enumerate(self.budget.tiers):
                self._open_study(storage, tier.label, i, self.startup)

        create_whole(path, init)

    def _open(self) -> None:
        self.startup = n_startup(self.opts.trials, len(self.budget.tiers))
        path = sqlite_path(self.url)
        if path is not None and not path.exists():
            self._create_new(path)
        # what can refuse the run is read first, without writing: a study of an older release, a
        # resumed tier made by another space or proxy
        reader = open_storage(self.url, heartbeat=False)
        try:
            names = optuna.get_all_study_names(storage=reader)
            existing = [(t.label, optuna.load_study(study_name=study_name(self.name, t.label), storage=reader))
                        for t in self.budget.tiers if study_name(self.name, t.label) in names]
        except Exception as exc:
            raise StudyError(storage_problem(self.url, exc)) from None
        finally:
            reader.engine.dispose()
        if self.name in names:
            raise StudyError(f"study {self.name!r} in {shown_url(self.url)} was made by an older mvsearch (one Optuna "
                             f"study for all tiers); every command still reads it, but a new run needs another --study NAME")
        for label, study in existing:
            if len(study.directions) != 1 or study.direction != optuna.study.StudyDirection.MAXIMIZE:
                raise StudyError(f"study {study.study_name!r} is not a single-objective maximize study; use another --study")
            self._check_compatible(study)
        storage = open_storage(self.url)
        for i, tier in enumerate(self.budget.tiers):
            self.studies[tier.label] = self._open_study(storage, tier.label, i, self.startup)
        if study_name(self.name, PRESETS_LABEL) in names:
            self.studies[PRESETS_LABEL] = self._open_study(storage, PRESETS_LABEL, len(self.budget.tiers), 1)
        self.existing = sum(len(s.get_trials(deepcopy=False)) for s in self.studies.values())
        for label, study in self.studies.items():
            with experimental_ok():
                optuna.storages.fail_stale_trials(study)  # heartbeat: dead workers anywhere (after the grace period)
                stale = fail_dead_workers(study, unowned=self.url.startswith("sqlite:"))
            if stale:
                self.rep.note(f"tier {label}: trial(s) {', '.join(map(str, stale))} were left running by a worker that "
                              f"died; marked FAIL and queued once more")
        self.baselines = self._enqueue_baselines(storage) if self.opts.with_baselines or \
            self.opts.budget_baselines else []

    def _enqueue_baselines(self, storage: Any) -> list[str]:
        added = []
        have = set()
        for study in self.studies.values():
            for t in study.get_trials(deepcopy=False):
                r = TrialRecord.from_user_attrs(t.user_attrs)
                if r.baseline and t.state != TrialState.FAIL:
                    have.add(r.preset)
        for name in PRESETS:
            if name in have:
                continue
            cfg = get_preset(name, self.space.num_classes)
            c = analytic_cost(cfg, self.space.resolution)
            if not self.opts.with_baselines and not self.budget.check(c.flops, c.params).ok:
                continue  # in-budget baselines only: this preset exceeds the largest budget
            tier = self.budget.tier_of(c.flops)
            label = tier.label if tier is not None and tier.contains(c.flops) else PRESETS_LABEL
            if label not in self.studies:
                self.studies[label] = self._open_study(storage, label, len(self.budget.tiers), 1)
            params = self.space.encode(cfg) or {}
            self.studies[label].enqueue_trial(params, user_attrs=TrialRecord(baseline=True, preset=name)
                                              .to_attrs("baseline", "preset"))
            added.append(name)
        return added

    # ------------------------------------------------------------ the loop
    def _trained(self, label: str) -> int:
        n = 0
        for t in self.studies[label].get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
            r = TrialRecord.from_user_attrs(t.user_attrs)
            n += not r.over_budget and not r.baseline
        return n

    def _waiting(self, baselines_only: bool = False) -> str | None:
        """A tier with a queued trial (a baseline, a retry, a screened draw), if any."""
        for label, study in self.studies.items():
            for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
                if not baselines_only or TrialRecord.from_user_attrs(t.user_attrs).baseline:
                    return label
        return None

    def _one(self, label: str, rejects_in_a_row: int) -> Any:
        """Run one trial of tier ``label``; its outcome (None if interrupted before it started)."""
        study = self.studies[label]
        tier = None if label == PRESETS_LABEL else self.budget.tier(label)
        if tier is not None and not study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            if self.opts.sampler == "random" or rejects_in_a_row >= MAX_REJECTS_IN_A_ROW \
                    or self._trained(label) < self.startup:
                n = len(study.get_trials(deepcopy=False))
                rng = random.Random(f"mvsearch-screen/{self.opts.seed}/{label}/{n}")
                params, refused = screen(self.space, self.budget, tier, rng)
                for _ in range(MAX_REDRAWS):  # another worker enqueued this very draw while we screened
                    if all(drawn_params(t) != params for t in study.get_trials(deepcopy=False)):
                        break
                    params, more = screen(self.space, self.budget, tier, rng)
                    refused += more + 1
                self.summary.screened += refused
                study.enqueue_trial(params, user_attrs=TrialRecord(screened_out=refused).to_attrs("screened_out"))
        objective = Objective(self.ctx, tier, label)
        try:
            study.optimize(objective, n_trials=1, catch=(NonFiniteLossError, NothingQueued),
                           callbacks=self.callbacks, gc_after_trial=False)
        except KeyboardInterrupt:
            self.summary.interrupted = True
            if objective.outcome is not None:
                self.summary.outcomes.append(objective.outcome)
                self.rep.trial_end(objective.outcome)
            raise
        return objective.outcome

    def run(self) -> RunSummary:
        t_start = time.perf_counter()
        self.ctx = Context(self.space, self.budget, self.opts, self.proxy, self.data, self.split, self.url, self.name,
                           self.rep, lambda: self.interrupt.requested, self.interrupt.set_training)
        self.rep.start(RunInfo(self.name, self.url, self.space.name, self.budget, self.opts.trials, self.existing,
                               self.data.summary(), self.proxy.to_dict(), self.baselines,
                               self._notes(), self.opts.seeds))
        trained, rejects = 0, 0
        verbosity = optuna.logging.get_verbosity()
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        # --threads bounds everything the run computes (fvcore counts, latency), not only training:
        # on a busy machine more threads than free cores make each op many times slower
        with self.interrupt, cpu_threads(self.opts.threads), warnings.catch_warnings():
            warnings.simplefilter("ignore", category=optuna.exceptions.ExperimentalWarning)  # heartbeat API
            try:
                # done with --trials, a worker still trains the baselines it queued, never another
                # worker's queued draw
                while trained < self.opts.trials or self._waiting(baselines_only=True) is not None:
                    if self.interrupt.requested:
                        self.summary.interrupted = True
                        break
                    if self.opts.timeout_s is not None and time.perf_counter() - t_start > self.opts.timeout_s:
                        self.summary.timed_out = True
                        break
                    label = self._waiting(baselines_only=trained >= self.opts.trials) or min(
                        (t.label for t in self.budget.tiers), key=self._trained)
                    outcome = self._one(label, rejects)
                    if outcome is None:
                        continue
                    self.rep.trial_end(outcome)
                    if outcome.state == "REJECTED":
                        self.summary.rejected += 1
                        rejects += 1
                        continue
                    rejects = 0
                    self.summary.outcomes.append(outcome)
                    trained += not outcome.baseline
            except KeyboardInterrupt:
                self.summary.interrupted = True
            finally:
                optuna.logging.set_verbosity(verbosity)
        self.summary.wall_s = time.perf_counter() - t_start
        return self.summary


def run_search(space: SearchSpace, budget: Budget, opts: RunOptions, reporter: Reporter | None = None, *,
               callbacks: Sequence[Callable[[optuna.Study, FrozenTrial], None]] = ()) -> RunSummary:
    """Run (or resume) a search; returns what this run did. Bad input raises before any write.

    ``callbacks`` are Optuna callbacks, called after each trial (e.g. to measure its latency).
    """
    s = Search(space, budget, opts, reporter or Reporter(), callbacks)
    s.prepare()
    s.open()
    return s.run()


__all__ = ["run_search", "best_trials", "fail_dead_workers", "Interrupt", "Search", "SPLIT_SEED", "WORKER"]
