"""Latency benchmark: how repeatable a median is, and whether XXS-relative ratios agree across backends.

For each backend (torch eager and onnxruntime CPU) it measures mobilevit_xxs, _xs and _s three
times, in interleaved rounds (xxs, xs, s, xxs, xs, s, ...) so slow drift of a shared machine hits
every model alike. Each measurement is what ``mvsearch latency`` stores: a fresh model, warm-up
runs, then timed batch-1 runs at the deployment resolution, summarised by their median.

Prints, with the date and the machine:
  * the allocator effect: mobilevit_xxs measured first in a fresh process, then again after
    mobilevit_s, with glibc's default malloc thresholds and with mvsearch's fixed ones
    (:func:`mvsearch.latency.steady_allocator`), each in its own subprocess;
  * the coefficient of variation (std / mean) of the three medians of each model (target <= 5%);
  * each model's latency relative to mobilevit_xxs of the same round, per backend, and how far the
    two backends' ratios differ (the ratio is what reports use to compare machines).

Usage: python bench/bench_latency.py [--resolution 256] [--threads 1] [--warmup 5] [--repeats 30]
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import subprocess
import sys

import mvsearch  # noqa: F401  (before torch: sets OMP_WAIT_POLICY=PASSIVE, as the CLI does)
import torch

from mvsearch.arch.presets import get_preset
from mvsearch.latency.measure import BACKENDS, cpu_model, current_device, measure

MODELS = ("mobilevit_xxs", "mobilevit_xs", "mobilevit_s")
ROUNDS = 3
CV_TARGET = 0.05


def probe(fixed: bool, args: argparse.Namespace) -> None:
    """(in a fresh subprocess) XXS first, then S, then XXS again; prints the two XXS medians."""
    import mvsearch.latency as lt

    if not fixed:
        lt.steady_allocator = lambda: False  # measure() looks it up by name: glibc defaults stay
    kw = dict(threads=args.threads, warmup=args.warmup, repeats=args.repeats)
    first = lt.measure(get_preset("mobilevit_xxs"), args.resolution, **kw).median_ms
    lt.measure(get_preset("mobilevit_s"), args.resolution, **kw)
    print(first, lt.measure(get_preset("mobilevit_xxs"), args.resolution, **kw).median_ms)


def allocator_effect(args: argparse.Namespace) -> None:
    print(f"\n{'malloc thresholds':<22}{'XXS first ms':>14}{'XXS after S ms':>16}{'first / after':>15}")
    for mode in ("default", "fixed"):
        out = subprocess.run([sys.executable, __file__, "--probe", mode, "--resolution", str(args.resolution),
                              "--threads", str(args.threads), "--warmup", str(args.warmup),
                              "--repeats", str(args.repeats)], capture_output=True, text=True, check=True)
        first, after = map(float, out.stdout.split())
        label = "glibc defaults" if mode == "default" else "steady_allocator()"
        print(f"{label:<22}{first:>14.2f}{after:>16.2f}{first / after:>15.3f}")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resolution", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--probe", choices=("default", "fixed"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.probe:
        probe(args.probe == "fixed", args)
        return 0
    import onnxruntime

    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(f"date {dt.datetime.now().isoformat(timespec='seconds')}  machine {platform.node()}: {cpu_model()}, "
          f"{os.cpu_count()} cores, load {load[0]:.2f}/{load[1]:.2f}/{load[2]:.2f}")
    print(f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, python {platform.python_version()}; "
          f"batch 1 at {args.resolution}x{args.resolution}, {args.threads} thread(s), {args.warmup} warm-up + "
          f"{args.repeats} timed runs per measurement, {ROUNDS} interleaved rounds")
    allocator_effect(args)
    medians: dict[str, dict[str, list[float]]] = {}
    for backend in BACKENDS:
        dev = current_device(backend, args.threads)
        medians[backend] = {m: [] for m in MODELS}
        for _ in range(ROUNDS):
            for name in MODELS:
                t = measure(get_preset(name), args.resolution, device=dev, warmup=args.warmup, repeats=args.repeats)
                medians[backend][name].append(t.median_ms)
    worst = 0.0
    print(f"\n{'backend':<12}{'model':<15}{'medians ms':<28}{'CV':>7}")
    for backend in BACKENDS:
        for name in MODELS:
            ms = medians[backend][name]
            cv = statistics.stdev(ms) / statistics.mean(ms)
            worst = max(worst, cv)
            print(f"{backend:<12}{name:<15}{' '.join(f'{v:8.2f}' for v in ms):<28}{100 * cv:>6.2f}%")
    print(f"worst CV of the median: {100 * worst:.2f}% (target <= {100 * CV_TARGET:.0f}%: "
          f"{'met' if worst <= CV_TARGET else 'NOT met'})")

    def ratios(backend: str, name: str) -> list[float]:  # per round: model / XXS of that round
        return [a / b for a, b in zip(medians[backend][name], medians[backend]["mobilevit_xxs"])]

    print(f"\n{'model':<15}{'×XXS torch':>12}{'×XXS onnxruntime':>18}{'difference':>12}")
    for name in MODELS[1:]:
        rt, ro = statistics.median(ratios("torch", name)), statistics.median(ratios("onnxruntime", name))
        print(f"{name:<15}{rt:>12.3f}{ro:>18.3f}{100 * (ro - rt) / rt:>+11.1f}%")
    speed = statistics.median(medians["torch"]["mobilevit_xxs"]) / statistics.median(
        medians["onnxruntime"]["mobilevit_xxs"])
    print(f"onnxruntime vs torch on mobilevit_xxs: {speed:.2f}x the speed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
