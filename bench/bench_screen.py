"""Benchmark: candidates screened against a FLOP budget per second, analytic counter vs fvcore.

Screening is what the search does before it trains anything (mvsearch.tiers.TierSampler.screen and
the budget gate of mvsearch.search): draw a random member of the space, build its ArchConfig, count
its FLOPs and params at the deployment resolution, and check them against the budget. This script
times that loop twice over the same seeded draws of ``spaces/mobile.yaml``:

* analytic: :func:`mvsearch.analytic.analytic_cost` (closed-form, what the search uses);
* fvcore:   build the nn.Module and trace it with fvcore (:func:`mvsearch.cost.fvcore_flops`,
            with the fused-attention handle) plus a parameter count.

Both include drawing the parameters, ``space.from_params`` and ``Budget.check``. Then it checks on
a sample that the analytic FLOPs and params equal fvcore's exactly (and activations on a few, with
:func:`mvsearch.cost.count`). Prints candidates/s of each, their ratio, the accept rate, and the
exactness check; exit status 1 when a count differs or the rate is under the target (>= 1000/s).

    python bench/bench_screen.py                       # mobile.yaml at its 1.5GFLOPs budget
    python bench/bench_screen.py --fvcore 20 --check 40
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import time

import mvsearch  # noqa: F401  (before torch: sets OMP_WAIT_POLICY=PASSIVE, as the CLI does)
import torch

from mvsearch.cost.analytic import analytic_cost
from mvsearch.budget import parse_budget
from mvsearch.cost.traced import count, fvcore_flops
from mvsearch.model.network import build_model
from mvsearch.space.loader import load_space

TARGET = 1000.0  # candidates per second


def screen_analytic(space, budget, n: int, seed: int) -> tuple[float, list[bool]]:
    """(seconds, verdict per draw) for screening ``n`` seeded draws with the analytic counter."""
    res = space.resolution
    rng = random.Random(seed)
    t0 = time.perf_counter()
    ok = []
    for _ in range(n):
        c = analytic_cost(space.from_params(space.random_params(rng)), res)
        ok.append(budget.check(c.flops, c.params).ok)
    return time.perf_counter() - t0, ok


def screen_fvcore(space, budget, n: int, seed: int) -> tuple[float, list[bool]]:
    """(seconds, verdict per draw) for screening the same draws by building and tracing each model."""
    res = space.resolution
    rng = random.Random(seed)
    t0 = time.perf_counter()
    ok = []
    for _ in range(n):
        model = build_model(space.from_params(space.random_params(rng)))
        flops = fvcore_flops(model, res)
        params = sum(p.numel() for p in model.parameters() if p.requires_grad)
        ok.append(budget.check(flops, params).ok)
    return time.perf_counter() - t0, ok


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="mobile")
    ap.add_argument("--budget", default=None, help="default: the space's search.budget")
    ap.add_argument("--analytic", type=int, default=5000, help="draws timed with the analytic counter")
    ap.add_argument("--fvcore", type=int, default=12, help="draws timed with fvcore (about 1 s each)")
    ap.add_argument("--check", type=int, default=30, help="draws whose analytic and fvcore counts are compared")
    ap.add_argument("--activations", type=int, default=5, help="of those, how many also compare activations")
    ap.add_argument("--repeats", type=int, default=3, help="analytic timing repeats (best is kept)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)

    torch.set_num_threads(1)  # screening is single-threaded work; fvcore's trace too
    space = load_space(a.space)
    budget = parse_budget(a.budget or space.spec.search.budget)
    print(f"space {space.name} ({space.size():,} architectures) at {space.resolution[0]}x{space.resolution[1]}, "
          f"{space.num_classes} classes; budget {budget.describe()}; load {os.getloadavg()[0]:.2f}")

    n = a.analytic
    screen_analytic(space, budget, 200, a.seed)  # warm caches
    runs = [screen_analytic(space, budget, n, a.seed) for _ in range(a.repeats)]
    dt_a, ok_a = min(runs, key=lambda r: r[0])
    rate_a = n / dt_a
    dt_f, ok_f = screen_fvcore(space, budget, a.fvcore, a.seed)
    rate_f = a.fvcore / dt_f
    # the same draws through both paths must give the same verdicts
    _, ok_a_sub = screen_analytic(space, budget, a.fvcore, a.seed)
    print(f"analytic: {n:,} candidates in {dt_a:.3f} s = {rate_a:,.0f} candidates/s "
          f"({1e6 * dt_a / n:.0f} us each, best of {a.repeats}); accepted {sum(ok_a)}/{n} "
          f"({100 * sum(ok_a) / n:.1f}%)")
    print(f"fvcore:   {a.fvcore} candidates in {dt_f:.2f} s = {rate_f:.2f} candidates/s "
          f"({1e3 * dt_f / a.fvcore:.0f} ms each: build the module, trace it); accepted {sum(ok_f)}/{a.fvcore}")
    print(f"ratio analytic / fvcore: {rate_a / rate_f:,.0f}x")

    # exactness: analytic == fvcore on random members (different draws from the timed ones)
    rng = random.Random(a.seed + 1)
    bad = 0
    t0 = time.perf_counter()
    for i in range(a.check):
        cfg = space.from_params(space.random_params(rng))
        an = analytic_cost(cfg, space.resolution)
        model = build_model(cfg)
        if i < a.activations:
            c = count(model, space.resolution, thop=False)
            ref = (c.flops, c.params, c.activations)
            got = (an.flops, an.params, an.activations)
        else:
            ref = (fvcore_flops(model, space.resolution), sum(p.numel() for p in model.parameters()))
            got = (an.flops, an.params)
        if got != ref:
            bad += 1
            print(f"  MISMATCH on {cfg.summary()}: analytic {got} vs fvcore {ref}")
    verdicts_equal = ok_a_sub == ok_f
    print(f"exactness: {a.check - bad}/{a.check} random architectures have analytic FLOPs and params equal to "
          f"fvcore's ({a.activations} also activations), {time.perf_counter() - t0:.0f} s; "
          f"budget verdicts on the timed fvcore draws {'equal' if verdicts_equal else 'DIFFER'}")
    met = rate_a >= TARGET
    print(f"target >= {TARGET:.0f} candidates/s with fvcore-exact numbers: {'met' if met and not bad else 'NOT met'}")
    return 0 if met and not bad and verdicts_equal else 1


if __name__ == "__main__":
    sys.exit(main())
