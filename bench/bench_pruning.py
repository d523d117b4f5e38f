"""Benchmark: training compute the pruner saves against no pruning, on the same seeded candidates.

A fixed, seeded sequence of candidates (random members of ``spaces/tiny.yaml`` under its budget)
is trained on real Fashion-MNIST with the proxy trainer, once per pruner, in a fresh in-memory
Optuna study each time:

* ``none``      every candidate trains all epochs (the reference);
* ``median``    and ``hyperband``: the pruners of ``mvsearch run`` (``mvsearch.search.tiers.make_pruner``,
  one per tier study; here one tier), fed exactly as the search feeds them: validation
  accuracy reported after every epoch, ``should_prune`` asked before the last one.

The candidates are fixed rather than sampled so both runs see the same ones (a sampler would
propose different candidates once pruned trials change what it learns). Training is
deterministic on CPU (same seed, same threads), so a pruned trial's curve must be a prefix of the
same candidate's unpruned curve: checked and printed. Compute is counted in epochs trained and in
training seconds (``TrainResult``/epoch ``wall_s``, validation included).

Exit status 0 when at least one pruner meets the target (each pruner's verdict is printed).
Prints, per pruner: epochs and seconds trained, the saving (none / pruner), the best accuracy
found, and whether it equals the unpruned best. Target: >= 3x less training at equal best
accuracy. The saving grows with the number of candidates (a pruner has nothing to compare the
first few trials with, so they train in full: the median pruner's 3 start-up trials, Hyperband's
first trial in each rung), so the saving over the trials after the first ``STARTUP`` is printed
too, as the figure a longer search tends to. The proxy here trains longer than the tiny space's
own (``--epochs 9``: Hyperband's rungs then sit at 1, 3 and 9 epochs); the proxy used is printed.

    python bench/bench_pruning.py                       # 27 candidates, 9 epochs
    python bench/bench_pruning.py --candidates 27 --epochs 9 --pruners median
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import random
import sys
import time
import warnings

import optuna
import mvsearch  # noqa: F401  (before torch: sets OMP_WAIT_POLICY=PASSIVE, as the CLI does)
import torch

from mvsearch.cost.analytic import analytic_cost
from mvsearch.budget import parse_budget
from mvsearch.data import load_data, proxy_split
from mvsearch.proxy.settings import proxy_arch
from mvsearch.space.loader import load_space
from mvsearch.search.tiers import make_pruner
from mvsearch.proxy.trainer import train

TARGET = 3.0
STARTUP = 3  # the median pruner's n_startup_trials in mvsearch.search.tiers.make_pruner


def candidates(space, budget, n: int, seed: int):
    """``n`` seeded random members of ``space`` within ``budget`` (analytic FLOPs at deployment)."""
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        cfg = space.from_params(space.random_params(rng))
        c = analytic_cost(cfg, space.resolution)
        if budget.check(c.flops, c.params).ok:
            out.append(cfg)
    return out


def run(kind: str, cands, proxy, data, split, seed: int, threads: int | None) -> list[dict]:
    """Train ``cands`` in order under pruner ``kind``; one record per candidate."""
    # a fixed study name: Hyperband assigns trials to brackets by crc32(f"{study name}_{number}"), and an
    # unnamed in-memory study gets a random name (then Hyperband's saving changes from run to run)
    study = optuna.create_study(study_name="bench-pruning", direction="maximize",
                                pruner=make_pruner(kind, proxy.epochs),
                                sampler=optuna.samplers.RandomSampler(seed=seed))
    tc = proxy.train_config(seed=seed, device="cpu", threads=threads)
    out = []
    for i, cfg in enumerate(cands):
        trial = study.ask()
        curve, secs = [], [0.0]

        def on_epoch(stats) -> None:  # what mvsearch.search does after each epoch
            curve.append(float(stats.val_accuracy))
            secs[0] = stats.wall_s
            trial.report(float(stats.val_accuracy), stats.epoch)
            if stats.epoch < tc.epochs and trial.should_prune():
                raise optuna.TrialPruned()

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)  # as the search: the same initialisation stream for every candidate
            from mvsearch.model.network import build_model

            model = build_model(proxy_arch(cfg, proxy, data.num_classes))
        state = "COMPLETE"
        try:
            res = train(model, split, tc, hflip=data.hflip, callback=on_epoch)
            secs[0] = res.wall_s
            study.tell(trial, curve[-1])
        except optuna.TrialPruned:
            state = "PRUNED"
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        out.append({"curve": curve, "seconds": secs[0], "state": state})
        print(f"  {kind:<9} #{i:<2} {state:<8} {len(curve)} epochs {secs[0]:6.1f} s  acc {curve[-1]:.4f}  "
              f"{cfg.summary()}", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="tiny")
    ap.add_argument("--budget", default=None, help="default: the space's search.budget")
    ap.add_argument("--candidates", type=int, default=27)
    ap.add_argument("--epochs", type=int, default=9)
    ap.add_argument("--train-samples", type=int, default=512)
    ap.add_argument("--val-samples", type=int, default=256)
    ap.add_argument("--data", default=None, help="default: the space's proxy data (real Fashion-MNIST)")
    ap.add_argument("--pruners", default="median,hyperband")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1,
                    help="CPU threads per training (1: these tiny nets gain nothing from more, and a "
                         "shared machine slows multi-threaded small ops badly)")
    a = ap.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)

    space = load_space(a.space)
    budget = parse_budget(a.budget or space.spec.search.budget)
    proxy = dataclasses.replace(space.proxy_settings(data=a.data), epochs=a.epochs,
                                train_samples=a.train_samples, val_samples=a.val_samples)
    data = load_data(proxy.data, resolution=proxy.resolution)
    split = proxy_split(data, train_samples=proxy.train_samples, val_samples=proxy.val_samples, seed=0)
    cands = candidates(space, budget, a.candidates, a.seed)
    print(f"space {space.name}, budget {budget.describe()}, {len(cands)} seeded candidates; proxy "
          f"{proxy.to_dict()}; {a.threads} thread(s) per training, load {os.getloadavg()[0]:.2f}", flush=True)

    # warm the process (allocator, oneDNN primitives) so the first timed run is not charged for it
    warm = dataclasses.replace(proxy, epochs=1).train_config(device="cpu", threads=a.threads)
    train(proxy_arch(cands[0], proxy, data.num_classes), split, warm, hflip=data.hflip)
    t0 = time.perf_counter()
    ref = run("none", cands, proxy, data, split, a.seed, a.threads)
    print(f"  (reference run: {time.perf_counter() - t0:.0f} s)", flush=True)
    ref_epochs = sum(len(r["curve"]) for r in ref)
    ref_secs = sum(r["seconds"] for r in ref)
    ref_best = max(r["curve"][-1] for r in ref)
    results = {}
    for kind in [p.strip() for p in a.pruners.split(",") if p.strip()]:
        results[kind] = run(kind, cands, proxy, data, split, a.seed, a.threads)

    print(f"\n{'pruner':<10}{'epochs':>8}{'train s':>9}{'saved (epochs)':>16}{'saved (s)':>11}"
          f"{f'trials {STARTUP + 1}+':>12}{'pruned':>8}{'best acc':>10}  best vs none")
    print(f"{'none':<10}{ref_epochs:>8}{ref_secs:>9.1f}{'1.00x':>16}{'1.00x':>11}{'1.00x':>12}{0:>8}"
          f"{ref_best:>10.4f}  -")
    met_by = []
    prefixes = True
    for kind, rs in results.items():
        epochs = sum(len(r["curve"]) for r in rs)
        secs = sum(r["seconds"] for r in rs)
        done = [r["curve"][-1] for r in rs if r["state"] == "COMPLETE"]
        best = max(done) if done else float("nan")
        prefix = all(r["curve"] == q["curve"][:len(r["curve"])] for r, q in zip(rs, ref))
        pruned = sum(r["state"] == "PRUNED" for r in rs)
        equal = best == ref_best
        saved = ref_epochs / epochs
        late = sum(len(r["curve"]) for r in ref[STARTUP:]) / max(1, sum(len(r["curve"]) for r in rs[STARTUP:]))
        met = saved >= TARGET and equal
        prefixes &= prefix
        if met:
            met_by.append(kind)
        print(f"{kind:<10}{epochs:>8}{secs:>9.1f}{saved:>15.2f}x{ref_secs / secs:>10.2f}x{late:>11.2f}x"
              f"{pruned:>8}{best:>10.4f}  "
              f"{'equal' if equal else f'{best - ref_best:+.4f}'}; curves are prefixes of the unpruned ones: "
              f"{'yes' if prefix else 'NO'}; target >= {TARGET:.0f}x at equal best: {'met' if met else 'NOT met'}")
    print(f"target >= {TARGET:.0f}x at equal best accuracy: "
          f"{'met by ' + ', '.join(met_by) if met_by else 'NOT met by any pruner'}"
          f"{'' if prefixes else '; WARNING: pruned curves differ from the unpruned ones (not deterministic)'}")
    return 0 if met_by and prefixes else 1


if __name__ == "__main__":
    sys.exit(main())
