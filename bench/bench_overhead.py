"""Benchmark: search overhead (everything but training) as a fraction of the search's wall time.

Runs a small real search in this process, exactly as ``mvsearch run`` does
(:func:`mvsearch.search.driver.run_search` on the shipped ``mobile`` space with its real Fashion-MNIST proxy,
TPE and Hyperband per tier study, a fresh SQLite storage in a temporary folder), and times:

* **training**: every call of :func:`mvsearch.proxy.trainer.train` (the proxy training of a candidate and
  its per-epoch validation), minus the time spent inside it in Optuna's ``trial.report`` and
  ``trial.should_prune`` (storage writes and pruner decisions: search work, counted as overhead);
* **the whole loop**: ``RunSummary.wall_s`` (from the first ``study.optimize`` to the end of the last).

Overhead = loop - training: sampling (TPE and the screened start-up draws), the analytic budget
gate and recorded rejections, the fvcore + thop count of each trained candidate, building the
proxy network, every Optuna storage write (trial attributes, reports, tell), the pruner's
decisions, and the reporter. Loading the data and opening the study happen once
per run, before the loop; they are printed separately and not part of the fraction. The overhead
is broken down by timing the main pieces (wrappers around ``count``, ``Study.ask``, the screened
draws and ``build_seeded``) and cross-checked with the trials' own ``wall_s`` / ``train_wall_s`` attributes.
Target: overhead <= 5% of the loop's wall time.

    python bench/bench_overhead.py                         # 3 trials on mobile.yaml, budget 0.42G
    python bench/bench_overhead.py --trials 4 --budget 1.5G
"""
from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile
import time
from collections import defaultdict

import optuna

import mvsearch.proxy.run
import mvsearch.search.driver
import mvsearch.search.objective
from mvsearch.budget import parse_budget
from mvsearch.core.units import format_flops
from mvsearch.search.driver import run_search
from mvsearch.search.events import Reporter, RunOptions
from mvsearch.search.record import TrialRecord
from mvsearch.space.loader import load_space

TARGET = 0.05

SPENT: dict[str, float] = defaultdict(float)
CALLS: dict[str, int] = defaultdict(int)


def timed(name: str, fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            SPENT[name] += time.perf_counter() - t0
            CALLS[name] += 1
    return wrapper


class Lines(Reporter):
    def trial_end(self, o) -> None:
        acc = f"acc {o.accuracy:.4f}" if o.accuracy is not None else ""
        print(f"  trial {o.ref:>8} {o.state:<9} {format_flops(o.flops):>7} FLOPs  {o.epochs} epochs "
              f"{o.wall_s:6.1f} s  {acc}  {o.summary}", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="mobile")
    ap.add_argument("--budget", default="0.42G", help="FLOP budget (default: the XXS tier, quick to train)")
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--data", default=None, help="default: the space's proxy data (real Fashion-MNIST)")
    ap.add_argument("--pruner", default="hyperband")
    ap.add_argument("--sampler", default="tpe")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)

    # the wrappers, where the search's modules look the names up at call time
    mvsearch.proxy.run.train = timed("train", mvsearch.proxy.run.train)
    mvsearch.search.objective.count = timed("count (fvcore + thop)", mvsearch.search.objective.count)
    mvsearch.proxy.run.build_seeded = timed("build_model", mvsearch.proxy.run.build_seeded)
    optuna.Study.ask = timed("study.ask (sampler)", optuna.Study.ask)
    mvsearch.search.driver.screen = timed("start-up screening draws", mvsearch.search.driver.screen)
    optuna.Trial.report = timed("trial.report", optuna.Trial.report)
    optuna.Trial.should_prune = timed("trial.should_prune (pruner)", optuna.Trial.should_prune)

    space = load_space(a.space)
    budget = parse_budget(a.budget)
    with tempfile.TemporaryDirectory() as tmp:
        storage = f"sqlite:///{tmp}/overhead.db"
        opts = RunOptions(trials=a.trials, storage=storage, study_name="overhead", data=a.data, seed=a.seed,
                          sampler=a.sampler, pruner=a.pruner, device="cpu")
        print(f"space {space.name}, budget {budget.describe()}, {a.trials} trials, sampler {a.sampler}, "
              f"pruner {a.pruner}; proxy {space.proxy_settings(data=a.data).to_dict()}; "
              f"load {os.getloadavg()[0]:.2f}", flush=True)
        t0 = time.perf_counter()
        summary = run_search(space, budget, opts, Lines())
        total = time.perf_counter() - t0
        trials = [t for label in (tier.label for tier in budget.tiers)
                  for t in optuna.load_study(study_name=f"overhead@{label}", storage=storage).get_trials()]
    loop = summary.wall_s
    in_train = SPENT["trial.report"] + SPENT["trial.should_prune (pruner)"]
    train_s = SPENT["train"] - in_train
    over = loop - train_s
    frac = over / loop
    print(f"\nrun_search {total:.1f} s: set-up (data load, study open) {total - loop:.1f} s, once per run; "
          f"search loop {loop:.1f} s")
    print(f"  training (mvsearch.proxy.trainer.train, {CALLS['train']} calls, validation included, "
          f"minus {in_train:.2f} s of report/should_prune inside it): {train_s:.1f} s")
    print(f"  overhead (everything else in the loop): {over:.2f} s = {100 * frac:.2f}% of the loop")
    parts = ("count (fvcore + thop)", "build_model", "study.ask (sampler)", "start-up screening draws",
             "trial.report", "trial.should_prune (pruner)")
    for name in parts:  # none runs inside another (Optuna asks the sampler for relative params at the
        # first suggest, after ask returned)
        print(f"    {name:<48} {SPENT[name]:7.2f} s over {CALLS[name]} calls")
    print(f"    {'rest (tell, attribute writes, budget gate, heartbeat)':<48} {over - sum(SPENT[n] for n in parts):7.2f} s")
    # cross-check with what the trials store: wall_s covers ask..tell of each trial
    recs = [TrialRecord.from_trial(t) for t in trials]
    trained = [r for r in recs if not r.over_budget]
    w = sum(r.wall_s or 0 for r in trained)
    tw = sum(r.train_wall_s or 0 for r in trained)
    print(f"  trials' own attributes: sum wall_s {w:.1f} s, sum train_wall_s {tw:.1f} s -> per-trial overhead "
          f"{100 * (w - tw) / w:.2f}% ({summary.rejected} budget rejections, {summary.screened} screened draws)")
    met = frac <= TARGET
    print(f"search overhead {100 * frac:.2f}% of wall time "
          f"(target <= {100 * TARGET:.0f}%: {'met' if met else 'NOT met'})")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
