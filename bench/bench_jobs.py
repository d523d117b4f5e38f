"""Benchmark: trained trials per hour of ``mvsearch run --jobs 2 --threads 1`` against ``--jobs 1 --threads 2``.

One proxy training is compute-bound on CPU, and small MobileViT ops scale worse across threads than
independent trainings do, so two one-thread workers should train more trials per hour on 2 cores
than one two-thread process (issue #14: measured 1.25x by hand). This benchmark runs the same search
twice, in one run, each into a fresh study:

* the same space, proxy, budget and seed, ``--sampler random --pruner none --no-baselines``: every
  candidate is a screened uniform draw whose seed depends on the trial's position in its tier (so
  both settings train the same candidates, checked and printed) and trains all its epochs (so both
  do the same work);
* ``--jobs 1 --threads 2`` (one process) and ``--jobs 2 --threads 1`` (a parent and two workers).

It prints, per setting, the trials trained, the wall time of the whole command (start-up and data
loading included: what a user waits for), trials per hour and the peak resident memory of each
worker: the ``peak_rss`` its trials recorded where the trainer records it, else the ``VmHWM`` this
script samples from ``/proc/<pid>/status`` while the workers run. Then the ratio, against the
target of 1.2x. Exit status 0 when the target is met, 1 when not, 2 on an error.

The figures are only meaningful on an otherwise idle machine: the 1-minute load average before
each setting is printed, and a note when it was above 0.5.

    python bench/bench_jobs.py                  # the mobile space and its shipped proxy, 8 trials
    python bench/bench_jobs.py --quick          # 4 trials, 256 train / 128 val images, 1 epoch
    python bench/bench_jobs.py --gpu            # CUDA: CPU --jobs 8 vs 1, GPU --jobs N vs one training

``--gpu`` (a CUDA machine, e.g. 16 cores and one H200): CPU ``--jobs 8`` against ``--jobs 1``, and
on the GPU ``--jobs N`` (``--gpu-jobs``, default 8) against one training, on the xxs-size tier
(``--budget 0.42G`` unless given); target 4x trials per hour for the GPU. Without CUDA it refuses
in one line.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
TARGET = 1.2
GPU_TARGET = 4.0
SAMPLE_S = 0.5


@dataclass
class Setting:
    label: str
    jobs: int
    threads: int
    device: str = "cpu"


@dataclass
class Outcome:
    setting: Setting
    rc: int
    wall_s: float
    trained: int
    archs: list[str]
    peaks: dict[str, int]  # worker -> peak resident bytes
    peak_source: str
    load: float
    flops: int = 0  # deployed FLOPs of the trained candidates, summed: the work, roughly
    tail: str = ""
    sampled: dict[int, int] = field(default_factory=dict)

    @property
    def per_hour(self) -> float:
        return self.trained / self.wall_s * 3600 if self.wall_s > 0 else 0.0


def _ppid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rpartition(")")[2].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def vmhwm(pid: int) -> int | None:
    """Peak resident bytes of process ``pid`` so far (``VmHWM``), None once it has gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def descendants(root: int) -> list[int]:
    """Every process below ``root`` (a scan of /proc: children of children too)."""
    kids: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            p = _ppid(int(name))
            if p is not None:
                kids.setdefault(p, []).append(int(name))
    out, todo = [], [root]
    while todo:
        for c in kids.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def quick_space(folder: Path, base: str) -> Path:
    """The shipped space ``base`` with a smaller proxy: 1 epoch, 256 train / 128 val images."""
    from mvsearch.space.loader import load_space

    spec = yaml.safe_load(Path(load_space(base).file).read_text())
    spec["name"] = f"{spec['name']}-quick"
    spec["proxy"].update(epochs=1, train_samples=256, val_samples=128)
    path = folder / f"{spec['name']}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def run_setting(s: Setting, args: argparse.Namespace, space: str, folder: Path) -> Outcome:
    from mvsearch.search.storage import open_search

    name = f"bench-jobs{s.jobs}-{s.device}-t{s.threads}"
    url = f"sqlite:///{folder / (name + '.db')}"
    cmd = [sys.executable, "-m", "mvsearch", "run", "--space", space, "--trials", str(args.trials), "--seed",
           str(args.seed), "--sampler", "random", "--pruner", "none", "--no-baselines", "--no-save-weights",
           "--study", name, "--storage", url, "--jobs", str(s.jobs), "--threads", str(s.threads), "--device", s.device]
    if args.budget:
        cmd += ["--budget", args.budget]
    if args.data:
        cmd += ["--data", args.data]
    load = os.getloadavg()[0]
    log = folder / f"{name}.log"
    sampled: dict[int, int] = {}
    t0 = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=folder, stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ))
        while proc.poll() is None:
            for pid in [proc.pid, *descendants(proc.pid)]:
                peak = vmhwm(pid)
                if peak is not None:
                    sampled[pid] = max(sampled.get(pid, 0), peak)
            time.sleep(SAMPLE_S)
    wall = time.perf_counter() - t0
    tail = "\n".join(log.read_text().splitlines()[-5:])
    if proc.returncode != 0:
        return Outcome(s, proc.returncode, wall, 0, [], {}, "", load, 0, tail, sampled)
    recs = [r for r in open_search(name, url).records() if not r.baseline and r.state in ("COMPLETE", "PRUNED")]
    recorded: dict[str, int] = {}
    for r in recs:
        if isinstance(r.peak_rss, int) and r.worker:
            recorded[r.worker] = max(recorded.get(r.worker, 0), r.peak_rss)
    if recorded:
        peaks, source = recorded, "the trials' peak_rss"
    else:  # the workers are the processes that trained: the command itself with --jobs 1, else its children
        pids = {int(r.worker.rpartition(":")[2]) for r in recs if r.worker}
        peaks = {f"pid {p}": sampled[p] for p in sorted(pids) if p in sampled}
        source = f"VmHWM sampled every {SAMPLE_S:g} s"
    return Outcome(s, 0, wall, len(recs), sorted(r.summary() for r in recs), peaks, source, load,
                   sum(r.flops or 0 for r in recs), tail, sampled)


def _duration(s: float) -> str:
    s = int(round(s))
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def report(outs: list[Outcome]) -> None:
    print(f"{'setting':<34}{'trials':>7}{'wall':>9}{'trials/h':>10}  load  peak RSS per worker")
    for o in outs:
        if o.rc != 0:
            print(f"{o.setting.label:<34}  failed (exit {o.rc}):\n{o.tail}")
            continue
        peaks = ", ".join(f"{p / 1e9:.2f} GB" for p in o.peaks.values()) or "-"
        print(f"{o.setting.label:<34}{o.trained:>7}{_duration(o.wall_s):>9}{o.per_hour:>10.1f}  {o.load:4.1f}  "
              f"{peaks}  ({o.peak_source})")
    if any(o.load > 0.5 for o in outs):
        print("note: the machine was busy (1-minute load above 0.5 before a setting): these times, and the ratio, "
              "are distorted; run it on an idle machine")


def compare(base: Outcome, other: Outcome, target: float) -> bool:
    if base.rc or other.rc or not base.trained:
        print(f"{other.setting.label} vs {base.setting.label}: no ratio (a setting failed)")
        return False
    same = base.archs == other.archs
    print(f"same candidates trained in both: {'yes' if same else 'NO'} ({len(other.archs)} and {len(base.archs)})")
    if not same:  # two workers drawing at the same moment screen another draw (mvsearch.search.driver)
        print(f"  the work differs: deployed FLOPs of the trained candidates summed {other.flops / 1e9:.2f}G vs "
              f"{base.flops / 1e9:.2f}G; weigh the ratio by that")
    ratio = other.per_hour / base.per_hour
    print(f"ratio {other.setting.label} / {base.setting.label}: {ratio:.2f}x trials per hour "
          f"(target >= {target:g}x): {'met' if ratio >= target else 'NOT met'}")
    return ratio >= target


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--space", default="mobile", help="a shipped space or a file (default: mobile)")
    ap.add_argument("--budget", help="FLOP budget (default: the space's; 0.42G with --gpu)")
    ap.add_argument("--trials", type=int, help="trials each setting trains (default 8; 4 with --quick)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", help="data spec for the proxy (default: the space's)")
    ap.add_argument("--quick", action="store_true", help="4 trials, 256 train / 128 val images, 1 epoch")
    ap.add_argument("--gpu", action="store_true", help="CUDA: CPU --jobs 8 vs 1, GPU --jobs N vs one training")
    ap.add_argument("--gpu-jobs", type=int, default=8, help="workers sharing the GPU with --gpu (default 8)")
    ap.add_argument("--workdir", help="keep the studies and logs here (default: a temporary folder)")
    args = ap.parse_args(argv)
    import mvsearch  # noqa: F401  (before torch: OMP_WAIT_POLICY, as the CLI)
    import torch

    if args.gpu and not torch.cuda.is_available():
        print("error: --gpu needs a CUDA GPU, and torch sees none here (torch.cuda.is_available() is False)",
              file=sys.stderr)
        return 2
    args.trials = args.trials or (4 if args.quick else (16 if args.gpu else 8))
    if args.gpu and not args.budget:
        args.budget = "0.42G"
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="bench_jobs_") as tmp:
        folder = Path(args.workdir or tmp).resolve()
        folder.mkdir(parents=True, exist_ok=True)
        space = str(quick_space(folder, args.space)) if args.quick else args.space
        from mvsearch.space.loader import load_space

        sp = load_space(space)
        p = sp.proxy_settings(data=args.data)
        print(f"bench_jobs: space {sp.name}; proxy {p.data} {p.resolution}x{p.resolution} stem stride {p.stem_stride}, "
              f"{p.epochs} epoch(s), {p.train_samples} train / {p.val_samples} val images, batch {p.batch_size}; budget "
              f"{args.budget or sp.spec.search.budget}; {args.trials} trials, seed {args.seed}, sampler random, pruner "
              f"none; {cores} usable cores; torch {torch.__version__}", flush=True)
        if not args.gpu:
            a, b = Setting("--jobs 1 --threads 2", 1, 2), Setting("--jobs 2 --threads 1", 2, 1)
            outs = [run_setting(s, args, space, folder) for s in (a, b)]
            report(outs)
            ok = compare(outs[0], outs[1], TARGET)
        else:
            n = args.gpu_jobs
            settings = [Setting("cpu --jobs 1", 1, cores), Setting("cpu --jobs 8", 8, max(1, cores // 8)),
                        Setting("cuda one training", 1, max(1, cores // n), "cuda"),
                        Setting(f"cuda --jobs {n}", n, max(1, cores // n), "cuda")]
            outs = [run_setting(s, args, space, folder) for s in settings]
            report(outs)
            compare(outs[0], outs[1], TARGET)
            ok = compare(outs[2], outs[3], GPU_TARGET)
        if args.workdir:
            print(f"studies and logs kept in {folder}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
