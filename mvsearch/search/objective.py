"""The objective of a tier's study: one candidate, from sample to stored record.

For each trial Optuna's ``study.optimize`` hands it:

1. the architecture: a paper preset (an enqueued baseline), the params of an enqueued screened draw
   or of a retried trial, or the tier sampler's proposal (``space.sample(trial)``);
2. the budget gate: an analytic count at the deployment resolution (microseconds); a candidate
   outside the tier's band, or over ``--max-params``, is recorded with its constraint values and
   ``over_budget=True`` and pruned before any training;
3. an accepted candidate is counted once with fvcore and thop (the numbers the record holds) and
   trained by :func:`mvsearch.proxy.run.run_proxy`, reporting validation accuracy after every
   epoch so the tier's pruner can stop it;
4. the :class:`~mvsearch.search.record.TrialRecord` fields are written as user attributes, and the
   final accuracy returned.

With ``--seeds K`` (``RunOptions.seeds``) step 3 trains the candidate K times, one after the other,
with seeds ``seed..seed+K-1`` (``seed`` being the run's ``--seed``, the one a single training uses),
on the same train/validation split, and the trial's value is the **mean** of the K final validation
accuracies (``seed_accuracies`` holds each). Only the first seed reports its per-epoch accuracies to
Optuna (``trial.report``), so the pruner decides on that seed's curve exactly as with one seed; the
later seeds report nothing, and a trial pruned during the first seed trains no other. Baselines train
with K seeds too, so a comparison with them is fair. ``accuracy_curve`` is the first seed's curve,
``weights`` (with ``--save-weights``) its network; ``train_wall_s`` is the total training time of the
K trainings and ``images_per_s`` the mean of their throughputs. ``val_samples`` stays the number of
validation images: every seed is judged on the same images, so the Wilson interval of the mean keeps
n = ``val_samples``. That is honest rather than cautious: averaging seeds removes part of the
training noise, never the sampling noise of which images were held out.

The epochs before the last are judged on a fixed stratified subset of the validation split
(``TrainConfig.epoch_val`` images: they only feed the pruner); the final accuracy on all of it. A
pruned trial's accuracy is the last one the pruner saw, so its ``val_samples`` is that subset's size.

Ctrl-C or SIGTERM while training (any seed) marks the trial ``interrupted`` and re-raises (Optuna then
marks it FAIL, and no mean of the seeds finished so far is stored as its value); a non-finite loss
fails only that candidate.
"""
from __future__ import annotations

import dataclasses
import functools
import time
from dataclasses import dataclass
from typing import Any, Callable

import optuna

from mvsearch import __version__
from mvsearch.arch.config import ArchConfig
from mvsearch.arch.presets import get_preset
from mvsearch.budget import Budget, Tier
from mvsearch.core.atomic import save_state_dict
from mvsearch.core.errors import NonFiniteLossError
from mvsearch.core.jemalloc import name as malloc_name
from mvsearch.core.memory import peak_rss, reset_peak
from mvsearch.cost.analytic import analytic_cost
from mvsearch.cost.traced import count
from mvsearch.proxy.run import run_proxy
from mvsearch.proxy.settings import ProxySettings, proxy_arch
from mvsearch.search.events import Reporter, RunOptions, TrialOutcome
from mvsearch.search.record import TrialRecord
from mvsearch.search.storage import RetryCallback, experimental_ok, weights_dir
from mvsearch.search.tiers import drawn_params
from mvsearch.search.workers import WORKER
from mvsearch.space.space import SearchSpace

@dataclass
class Context:
    """What every trial of a run shares."""

    space: SearchSpace
    budget: Budget
    opts: RunOptions
    proxy: ProxySettings
    data: Any  # TensorData
    split: Any  # ProxySplit
    url: str
    name: str  # the search's name
    reporter: Reporter
    stop_requested: Callable[[], bool]  # Ctrl-C / SIGTERM seen
    training: Callable[[bool], None]  # tell the signal handler whether training is under way


class NothingQueued(Exception):
    """The presets' study was asked for a trial when no baseline waited there (the driver then moves on)."""


class Objective:
    """``study.optimize``'s objective for one tier (``tier`` None: the out-of-band presets' study)."""

    def __init__(self, ctx: Context, tier: Tier | None, label: str) -> None:
        self.ctx, self.tier, self.label = ctx, tier, label
        self.outcome: TrialOutcome | None = None  # of the last trial

    def _ref(self, trial: optuna.Trial) -> str:
        return f"{self.label}/{trial.number}"

    def _twin(self, trial: optuna.Trial) -> int | None:
        """An earlier screened trial of this study with the same params (not failed), if any."""
        mine = trial.params
        for t in trial.study.get_trials(deepcopy=False):  # read now: after this trial's params are set
            if t.number < trial.number and t.state != optuna.trial.TrialState.FAIL and drawn_params(t) == mine \
                    and TrialRecord.from_user_attrs(t.user_attrs).screened_out is not None:
                return t.number
        return None

    def _write(self, trial: optuna.Trial, rec: TrialRecord, *names: str) -> None:
        for k, v in rec.to_attrs(*names).items():
            trial.set_user_attr(k, v)

    def __call__(self, trial: optuna.Trial) -> float:
        ctx, t0 = self.ctx, time.perf_counter()
        seeded = TrialRecord.from_user_attrs(trial.user_attrs)  # what was enqueued with it, if anything
        self._write(trial, TrialRecord(worker=WORKER), "worker")  # claim it first (a retry names the dead worker)
        trials = trial.study.get_trials(deepcopy=False)
        with experimental_ok():
            retry = RetryCallback.retried_trial_number(trials[trial.number])
        preset = seeded.preset if seeded.baseline else None
        if self.tier is None and preset is None:  # the presets' study trains only the baselines queued there;
            # another worker took the one this worker saw waiting, and the sampler would now propose an
            # architecture outside every tier, with no budget to check it against
            self._write(trial, TrialRecord(error="no baseline was queued any more (another worker took it); "
                                                 "nothing trained"), "error")
            raise NothingQueued(f"trial {self._ref(trial)}: nothing queued")
        rec = TrialRecord(tier=self.tier.label if self.tier else None, baseline=preset is not None, preset=preset,
                          worker=WORKER, retry_of=retry, seed=ctx.opts.seed, data=ctx.proxy.data,
                          proxy=ctx.proxy.to_dict(), resolution=list(ctx.space.resolution),
                          screened_out=seeded.screened_out, val_samples=len(ctx.split.val_y),
                          mvsearch_version=__version__)
        if preset is not None:
            cfg = get_preset(preset, ctx.space.num_classes)
            if ctx.space.encode(cfg) is not None:  # enqueued with its params: store them, so the
                ctx.space.sample(trial)  # tier's sampler learns from the baseline too
        else:
            cfg = ctx.space.sample(trial)
        rec.arch = cfg
        quick = analytic_cost(cfg, ctx.space.resolution)
        verdict = ctx.budget.check(quick.flops, quick.params, self.tier) if self.tier else None
        twin = self._twin(trial) if seeded.screened_out is not None and retry is None else None
        if twin is not None:  # two workers screened the same draw at the same moment: train it once
            verdict = dataclasses.replace(verdict, ok=False, reason=f"a duplicate of trial {self.label}/{twin}, "
                                                                     f"drawn by another worker at the same moment")
        if verdict is not None and retry is None:  # a retry keeps the constraints its first try recorded
            for k, v in verdict.constraints.items():
                trial.set_constraint(k, v)
        if verdict is not None and not verdict.ok and preset is None:
            rec.over_budget, rec.reject_reason = True, verdict.reason
            rec.flops, rec.params, rec.activations = quick.flops, quick.params, quick.activations
            rec.wall_s = time.perf_counter() - t0
            self._write(trial, rec)
            self.outcome = TrialOutcome(self._ref(trial), "REJECTED", rec.tier, False, None, None, 0, quick.flops,
                                        quick.params, rec.wall_s, cfg.summary(), verdict.reason)
            raise optuna.TrialPruned(verdict.reason)
        return self._train(trial, rec, cfg, quick, t0)

    def _train(self, trial: optuna.Trial, rec: TrialRecord, cfg: ArchConfig, quick: Any, t0: float) -> float:
        ctx = self.ctx
        cost = count(cfg, ctx.space.resolution)  # fvcore + thop, once per trained trial
        if (quick.flops, quick.params) != (cost.flops, cost.params):
            ctx.reporter.note(f"trial {self._ref(trial)}: analytic count {quick.flops:,} FLOPs differs from fvcore's "
                              f"{cost.flops:,}; recording fvcore's (please report this)")
        rec.flops, rec.params, rec.thop_macs, rec.activations = cost.flops, cost.params, cost.thop_macs, \
            cost.activations
        rec.proxy_arch = proxy_arch(cfg, ctx.proxy, ctx.data.num_classes)
        self._write(trial, rec)
        ctx.reporter.trial_start(self._ref(trial), rec.tier, cfg, cost.flops, rec.preset)
        seeds = [ctx.opts.seed + i for i in range(ctx.opts.seeds)]
        model: list[Any] = []  # the first seed's network (its weights are the ones saved)
        last: dict[str, float] = {}  # the running training's latest epoch
        done: list[Any] = []  # TrainResult of each finished seed
        shown = [rec.val_samples]  # validation images behind the first seed's latest accuracy

        def on_epoch(stats: Any, first: bool, curve: list[float], ref: str) -> None:
            """After each epoch of one seed's training; ``first``: the seed whose curve Optuna sees."""
            curve.append(float(stats.val_accuracy))
            last.update(images_per_s=stats.images_per_s, wall_s=stats.wall_s)
            if first:
                shown[0] = stats.val_samples or shown[0]
            ctx.training(False)  # a Ctrl-C now waits: never abort a storage write halfway
            try:
                if first:  # the pruner sees the first seed's curve only
                    trial.report(float(stats.val_accuracy), stats.epoch)
                ctx.reporter.epoch(ref, stats.epoch, float(stats.val_accuracy))
                prune = first and rec.preset is None and stats.epoch < ctx.proxy.epochs and trial.should_prune()
            finally:
                ctx.training(True)
            if ctx.stop_requested():
                raise KeyboardInterrupt
            if prune:
                raise optuna.TrialPruned()

        state, seed = "COMPLETE", seeds[0]
        if ctx.stop_requested():  # a Ctrl-C while the trial was set up: it is interrupted like one in training
            rec.interrupted = True
            self._write(trial, rec, "interrupted")
            raise KeyboardInterrupt
        reset_peak()  # peak_rss: this trial's trainings, not an earlier trial of the same process
        try:
            for i, seed in enumerate(seeds):
                if i and ctx.stop_requested():  # a Ctrl-C between two seeds
                    raise KeyboardInterrupt
                curve = rec.accuracy_curve if i == 0 else []  # later seeds' curves are not stored
                ref = self._ref(trial) if i == 0 else f"{self._ref(trial)} seed {seed}"
                callback = functools.partial(on_epoch, first=i == 0, curve=curve, ref=ref)
                ctx.training(True)
                try:
                    run = run_proxy(cfg, ctx.proxy, seed=seed, device=ctx.opts.device, threads=ctx.opts.threads,
                                    data=ctx.data, split=ctx.split, callback=callback,
                                    on_model=model.append if i == 0 else None)
                finally:
                    ctx.training(False)
                done.append(run.result)
                last.clear()
                rec.seed_accuracies.append(curve[-1])
        except optuna.TrialPruned:
            state = "PRUNED"
        except NonFiniteLossError as exc:  # this candidate diverged; the search goes on
            state, rec.error = "FAIL", (f"seed {seed}: {exc}" if len(seeds) > 1 else str(exc))
        except KeyboardInterrupt:
            state, rec.interrupted = "FAIL", True
        finally:
            ctx.training(False)
        rec.peak_rss, rec.malloc = peak_rss(), malloc_name()
        speeds = [r.images_per_s for r in done] + ([last["images_per_s"]] if last else [])
        walls = [r.wall_s for r in done] + ([last["wall_s"]] if last else [])
        rec.images_per_s = sum(speeds) / len(speeds) if speeds else None  # mean over the seeds
        rec.train_wall_s = sum(walls) if walls else None  # total over the seeds
        if ctx.opts.save_weights and state in ("COMPLETE", "PRUNED") and model:
            path = weights_dir(ctx.url, ctx.name) / f"trial_{self.label}_{trial.number}.pt"
            path.parent.mkdir(parents=True, exist_ok=True)
            save_state_dict(model[0], path)
            rec.weights = str(path)
        rec.wall_s = time.perf_counter() - t0
        if state != "COMPLETE":  # its accuracy is the last the pruner saw: on the epochs' validation subset
            rec.val_samples = shown[0]
        self._write(trial, rec, "accuracy_curve", "seed_accuracies", "images_per_s", "train_wall_s", "weights",
                    "wall_s", "error", "interrupted", "val_samples", "peak_rss", "malloc")
        if state == "COMPLETE":  # every seed finished: their mean is the trial's value
            acc = sum(rec.seed_accuracies) / len(rec.seed_accuracies)
        else:  # the last accuracy the pruner saw (or the first seed's, when a later one stopped)
            acc = rec.accuracy_curve[-1] if rec.accuracy_curve else None
        self.outcome = TrialOutcome(self._ref(trial), state, rec.tier, rec.baseline, rec.preset, acc,
                                    len(rec.accuracy_curve), cost.flops, cost.params, rec.wall_s, cfg.summary(),
                                    rec.error or ("interrupted" if rec.interrupted else ""),
                                    list(rec.seed_accuracies))
        if rec.interrupted:
            raise KeyboardInterrupt
        if state == "PRUNED":
            raise optuna.TrialPruned()
        if state == "FAIL":
            raise NonFiniteLossError(rec.error)
        return float(acc)


__all__ = ["Objective", "Context"]
