"""Benchmark: peak resident memory and speed of one proxy training, by how freed memory is handled.

Issue #14 item 3. The held-memory allocator (:mod:`mvsearch.core.allocator`) keeps every page a
training step frees inside the process, so the next step does not page-fault it in again; the
price is a larger peak. Transparent huge pages are the other way to fault fewer pages: torch puts
its large blocks on them when ``THP_MEM_ALLOC_ENABLE=1`` (read once, before torch's first
allocation). This benchmark measures the settings on the same training, in one run:

* one proxy training of ``--preset`` (default mobilevit_s) under the ``--space``'s proxy (default
  ``mobile``: Fashion-MNIST at 64x64, stem stride 1, batch 64, 3 epochs of 1,024 images), each
  in a fresh process, under each of ``--settings`` (default ``held,plain-bn,freed``): ``held``
  (``MVSEARCH_HOLD_MEMORY=1``, the default), ``plain-bn`` (held, without the trainer's lean
  BatchNorm + SiLU units: :mod:`mvsearch.model.bn_silu`), ``freed`` (``=0``: glibc hands large
  blocks back at once), ``freed-plain-bn``, ``thp`` (freed, with ``THP_MEM_ALLOC_ENABLE=1``),
  ``jemalloc`` (preloaded with its decay off, as the ``mvsearch`` command runs a training where the
  machine has it: :mod:`mvsearch.core.jemalloc`) and ``jemalloc-decay`` (its default decay);
* the settings interleaved, in alternating order (held, freed, thp, then thp, freed, held, ...)
  for ``--repeats`` rounds, so a busy spell on a shared machine falls on each;
* per training: the process's resident memory before training (Python, torch, the data), its
  peak while loading, and the peak of the training itself (``VmHWM``, reset through
  ``/proc/self/clear_refs`` just before it: :mod:`mvsearch.core.memory`), the training
  throughput (images/s over the training steps, validation excluded), its minor page faults and
  the huge pages the kernel handed out meanwhile (``thp_fault_alloc``, machine-wide).

It prints each run, then per setting the largest peak and the best throughput (a busy spell only
ever slows a run down), and each setting's speed ratio to ``--baseline`` (default ``freed``): of
wall-clock images/s (best and median of the rounds) and of training images per CPU second
(process time from the first batch on, less what BN calibration and validation took). On a shared machine the second is the
one to read: a busy spell stretches wall time but not the CPU time a training needs, and the page
faults the allocator avoids are CPU time (the kernel zeroing pages). Writes nothing; exit status 0
(2 on an error).

    python bench/bench_memory.py                         # mobilevit_s, mobile proxy, 2 rounds, 1 thread
    python bench/bench_memory.py --quick                 # 1 epoch of 256 images, 1 round
    python bench/bench_memory.py --settings held,freed --preset mobilevit_xxs --repeats 3 --threads 2
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: label -> the environment of its training process: freed memory held by glibc (the allocator of
#: mvsearch.core.allocator), handed back at once, or handed back with torch's large blocks on
#: transparent huge pages (THP_MEM_ALLOC_ENABLE: 2 MiB-aligned, madvise(MADV_HUGEPAGE), so a fresh
#: block faults in 2 MiB at a time instead of 4 KiB)
#: (``plain-bn``: without the lean BatchNorm + SiLU units of mvsearch.model.bn_silu, which the
#: trainer uses by default)
SETTINGS = {"held": {"MVSEARCH_HOLD_MEMORY": "1", "THP_MEM_ALLOC_ENABLE": "0", "BENCH_LEAN_BN": "1"},
            "plain-bn": {"MVSEARCH_HOLD_MEMORY": "1", "THP_MEM_ALLOC_ENABLE": "0", "BENCH_LEAN_BN": "0"},
            "freed": {"MVSEARCH_HOLD_MEMORY": "0", "THP_MEM_ALLOC_ENABLE": "0", "BENCH_LEAN_BN": "1"},
            "freed-plain-bn": {"MVSEARCH_HOLD_MEMORY": "0", "THP_MEM_ALLOC_ENABLE": "0", "BENCH_LEAN_BN": "0"},
            "thp": {"MVSEARCH_HOLD_MEMORY": "0", "THP_MEM_ALLOC_ENABLE": "1", "BENCH_LEAN_BN": "1"},
            # on jemalloc (mvsearch.core.jemalloc; the mvsearch command preloads it where present): decay
            # off, as the command sets it, or jemalloc's default decay
            "jemalloc": {"MVSEARCH_HOLD_MEMORY": "1", "THP_MEM_ALLOC_ENABLE": "0", "BENCH_LEAN_BN": "1",
                         "LD_PRELOAD": "<libjemalloc>", "MALLOC_CONF": "dirty_decay_ms:-1,muzzy_decay_ms:-1"},
            "jemalloc-decay": {"MVSEARCH_HOLD_MEMORY": "0", "THP_MEM_ALLOC_ENABLE": "0", "BENCH_LEAN_BN": "1",
                               "LD_PRELOAD": "<libjemalloc>"}}


def child(a: argparse.Namespace) -> int:
    """One training in this process; prints one JSON line."""
    import mvsearch  # noqa: F401  (before torch: OMP_WAIT_POLICY, as the CLI does)
    import torch

    from mvsearch.arch.presets import get_preset
    from mvsearch.core import allocator
    from mvsearch.core.memory import peak_rss, reset_peak
    from mvsearch.data import load_data, proxy_split
    from mvsearch.proxy.run import run_proxy

    from mvsearch.proxy import trainer

    if os.environ.get("BENCH_LEAN_BN", "1") == "0":
        trainer.lean_bn_silu = lambda model: 0  # the plain modules' forward

    aside = [0.0]  # CPU seconds spent validating (BN calibration and evaluation), not training

    def timed(f):
        def g(*args, **kw):
            c = time.process_time()
            try:
                return f(*args, **kw)
            finally:
                aside[0] += time.process_time() - c
        return g

    trainer.evaluate, trainer.recalibrate_bn = timed(trainer.evaluate), timed(trainer.recalibrate_bn)
    first = []  # CPU time at the first batch: model building and set-up are not training
    augment = trainer.augment

    def marked(*args, **kw):
        if not first:
            first.append(time.process_time())
        return augment(*args, **kw)

    trainer.augment = marked
    proxy = _proxy(a)
    data = load_data(proxy.data, resolution=proxy.resolution)
    split = proxy_split(data, train_samples=proxy.train_samples, val_samples=proxy.val_samples, seed=0)
    load_peak = peak_rss()
    before = _rss()
    reset_peak()
    t0, c0, f0 = time.perf_counter(), time.process_time(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    h0 = _thp_faults()
    run = run_proxy(get_preset(a.preset), proxy, seed=0, device="cpu", threads=a.threads, data=data, split=split)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    h1 = _thp_faults()
    images = run.result.steps * min(proxy.batch_size, run.result.train_samples)
    from mvsearch.core.jemalloc import name

    print(json.dumps({"held": allocator.available(), "malloc": name(), "before": before, "load_peak": load_peak,
                      "peak": peak_rss(), "img_s": run.result.images_per_s, "wall_s": wall,
                      "img_cpu_s": images / (c0 + cpu - first[0] - aside[0]), "cpu_s": cpu, "val_cpu_s": aside[0],
                      "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0,
                      "acc": run.result.val_accuracy, "threads": torch.get_num_threads(),
                      "huge": None if h0 is None or h1 is None else h1 - h0,
                      "torch": torch.__version__}), flush=True)
    return 0


def _rss() -> int | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return None


def _thp_faults() -> int | None:
    """The kernel's count of huge pages handed out at a fault (``thp_fault_alloc``, machine-wide)."""
    try:
        with open("/proc/vmstat") as f:
            for line in f:
                if line.startswith("thp_fault_alloc "):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _proxy(a: argparse.Namespace):
    from mvsearch.space.loader import load_space

    proxy = load_space(a.space).proxy_settings()
    if a.quick:
        proxy = dataclasses.replace(proxy, epochs=1, train_samples=256, val_samples=128)
    if a.val_samples is not None:
        proxy = dataclasses.replace(proxy, val_samples=a.val_samples)
    return proxy


def _gb(b: int | None) -> str:
    return "?" if b is None else f"{b / 1e9:.2f} GB"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="mobilevit_s")
    ap.add_argument("--space", default="mobile", help="whose proxy settings to train with")
    ap.add_argument("--val-samples", type=int, default=None, help="override the proxy's validation images")
    ap.add_argument("--repeats", type=int, default=None, help="rounds of the settings (default 2; 1 with --quick)")
    ap.add_argument("--settings", default="held,plain-bn,freed", help=f"comma-separated, of {', '.join(SETTINGS)}")
    ap.add_argument("--baseline", default="freed", help="the setting the others' speed and memory are compared with")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="1 epoch of 256 images, 1 round")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        return child(a)
    if a.repeats is None:
        a.repeats = 1 if a.quick else 2
    if a.repeats < 1 or a.threads < 1:
        ap.error("--repeats and --threads must be at least 1")
    unknown = [k for k in a.settings.split(",") if k not in SETTINGS]
    if a.baseline not in SETTINGS:
        unknown.append(a.baseline)
    if unknown or not a.settings:
        ap.error(f"--settings: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(SETTINGS)}")
    proxy = _proxy(a)
    print(f"{a.preset}, {a.space} proxy: {proxy.data} {proxy.resolution}x{proxy.resolution}, stem stride "
          f"{proxy.stem_stride}, batch {proxy.batch_size}, {proxy.epochs} epochs of {proxy.train_samples} images, "
          f"{proxy.val_samples} validation; {a.threads} thread(s), {a.repeats} round(s); "
          f"{platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}", flush=True)
    args = [sys.executable, __file__, "--child", "--preset", a.preset, "--space", a.space,
            "--threads", str(a.threads)] + (["--quick"] if a.quick else []) + \
        (["--val-samples", str(a.val_samples)] if a.val_samples is not None else [])
    chosen = a.settings.split(",")
    runs: dict[str, list[dict]] = {k: [] for k in chosen}
    for r in range(a.repeats):
        order = chosen if r % 2 == 0 else list(reversed(chosen))
        for label in order:
            env = {k: v for k, v in os.environ.items()
                   if not k.startswith("MALLOC_") and k not in ("GLIBC_TUNABLES", "LD_PRELOAD")}
            env.update(SETTINGS[label])
            if env.get("LD_PRELOAD") == "<libjemalloc>":
                from mvsearch.core.jemalloc import library

                if library() is None:
                    print(f"{label}: needs jemalloc (apt-get install libjemalloc2)", file=sys.stderr)
                    return 2
                env["LD_PRELOAD"] = library()
            env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
            load = os.getloadavg()[0]
            p = subprocess.run(args, capture_output=True, text=True, env=env, cwd=ROOT)
            if p.returncode != 0:
                print(f"{label}: the training failed:\n{p.stderr[-2000:]}", file=sys.stderr)
                return 2
            m = json.loads(p.stdout.strip().splitlines()[-1])
            if m["held"] != (SETTINGS[label]["MVSEARCH_HOLD_MEMORY"] == "1") \
                    or m["malloc"].startswith("jemalloc") != ("LD_PRELOAD" in SETTINGS[label]):
                print(f"{label}: the allocator setting did not take (held={m['held']}, {m['malloc']})", file=sys.stderr)
                return 2
            runs[label].append(m)
            print(f"  round {r + 1} {label:14}: {m['malloc']}, peak {_gb(m['peak'])} (before training {_gb(m['before'])}, "
                  f"loading {_gb(m['load_peak'])}), {m['img_s']:.1f} img/s, {m['img_cpu_s']:.1f} img per CPU-s "
                  f"(training; validation {m['val_cpu_s']:.0f} CPU-s), {m['faults'] / 1e6:.2f}M page faults, "
                  f"{m['huge'] if m['huge'] is not None else '?'} huge-page faults, {m['wall_s']:.0f} s, val_acc {m['acc']:.4f}, "
                  f"load {load:.2f}", flush=True)
    print("summary (largest peak, best throughput of the rounds):")
    for label, ms in runs.items():
        peaks = [m["peak"] for m in ms if m["peak"] is not None]
        env = " ".join(f"{k}={v}" for k, v in SETTINGS[label].items())
        print(f"  {label:14} ({env}): peak {_gb(max(peaks) if peaks else None)}, "
              f"{max(m['img_s'] for m in ms):.1f} img/s, {max(m['img_cpu_s'] for m in ms):.1f} img per CPU-s, "
              f"{statistics.median(m['cpu_s'] for m in ms):.0f} CPU-s per run (validation included)")
    if a.baseline in runs:
        base = runs[a.baseline]
        for label in [k for k in runs if k != a.baseline]:
            ms = runs[label]
            best = max(m["img_s"] for m in ms) / max(m["img_s"] for m in base)
            per_round = [h["img_s"] / f["img_s"] for h, f in zip(ms, base)]
            cpu = statistics.median(h["img_cpu_s"] / f["img_cpu_s"] for h, f in zip(ms, base))
            extra = [h["peak"] - f["peak"] for h, f in zip(ms, base) if h["peak"] is not None and f["peak"] is not None]
            print(f"speed {label}/{a.baseline}: {best:.3f} (best of each), {statistics.median(per_round):.3f} (median of "
                  f"the rounds: {', '.join(f'{x:.3f}' for x in per_round)}); per CPU second {cpu:.3f} (median of the "
                  f"rounds: what wall time shows on an idle core); {label} costs "
                  f"{_gb(statistics.median(extra)) if extra else '?'} of peak over {a.baseline}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
