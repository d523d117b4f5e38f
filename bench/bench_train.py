"""Benchmark: the proxy trainer's training throughput against a plain PyTorch loop, in one process.

The baseline is what a first PyTorch script does: a ``torch.utils.data.DataLoader`` over the same
decoded uint8 tensors, per-sample augmentation in ``__getitem__`` (the same random crop with padding
and flip, in Python, one image at a time), eager fp32 in NCHW, and the same model, batch size,
optimizer (AdamW, same parameter groups, lr schedule and label smoothing). The trainer is
``mvsearch.proxy.trainer.train`` with its defaults (batch-level augmentation on tensors, channels_last, no
DataLoader, freed memory held in the process while training on CPU (mvsearch.allocator); bf16
autocast on CUDA, plus --compile when asked). Both run in one process, so once the trainer has
grown the heap the baseline reuses it too: the ratio understates the allocator's share, and the
page faults per step are printed to show it.

Both are warmed up, then measured alternately for ``--repeats`` rounds of ``--steps`` steps each
(fresh model each run, same seed). On a shared machine a busy spell only ever slows a run down, so
the best round of each is compared; the median of the per-round ratios is printed beside it. It
also times the two data paths alone (DataLoader + per-sample augmentation vs the trainer's batched
gather), to show how much of a step the data path is, and the trainer's achieved GFLOP/s (3x the
forward's fvcore multiply-adds per image x images/s) beside a dense matmul's GFLOP/s measured in
the same run (roofline context: how far the training is from the device's limit). Writes
nothing; exit status 1 when the target is missed. Targets: >= 2x on CPU, >= 4x on a CUDA GPU, for
mobilevit_xxs at the default proxy (64x64, stem stride 1, batch 64).

    python bench/bench_train.py                       # mobilevit_xxs, fashion-mnist, default proxy
    python bench/bench_train.py --data synthetic:samples=4096 --steps 10
"""
from __future__ import annotations

import argparse
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import time

import mvsearch  # noqa: F401  (before torch: sets OMP_WAIT_POLICY=PASSIVE, as the CLI does)
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from mvsearch.core import allocator
from mvsearch.arch.presets import get_preset
from mvsearch.cost.analytic import analytic_cost
from mvsearch.data import load_data, proxy_split
from mvsearch.model.network import build_model
from mvsearch.proxy.settings import ProxySettings, proxy_arch
from mvsearch.proxy.trainer import (TrainConfig, augment, build_seeded, compact, crop_padding, param_groups, train,
                                    warmup_cosine)
from mvsearch.core.runtime import resolve_device


class PerSampleAugment(Dataset):
    """The baseline's dataset: one image at a time, augmented in Python."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, padding: int, hflip: bool) -> None:
        self.x, self.y, self.padding, self.hflip = x, y, padding, hflip

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        p = self.padding
        img = self.x[i].float().div(255)  # [3, R, R]
        r = img.shape[-1]
        img = F.pad(img, (p, p, p, p))
        top, left = random.randint(0, 2 * p), random.randint(0, 2 * p)
        img = img[:, top:top + r, left:left + r]
        if self.hflip and random.random() < 0.5:
            img = img.flip(-1)
        return img, self.y[i]


def minflt() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


FAULTS: dict[str, list[float]] = {"baseline": [], "trainer": []}  # minor page faults per timed step


def baseline(arch, split, tc: TrainConfig, hflip: bool, device: torch.device, steps: int) -> float:
    """Images/s of the plain loop over ``steps`` steps, timed from the end of a first, untimed step
    (so loading each timed batch, in the DataLoader, is inside the clock)."""
    torch.manual_seed(tc.seed)
    random.seed(tc.seed)
    model = build_model(arch).to(device)
    model.train()
    opt = torch.optim.AdamW(param_groups(model, tc.weight_decay), lr=tc.lr)
    ds = PerSampleAugment(split.train_x, split.train_y, crop_padding(tc, split.train_x.shape[-1]), hflip)
    loader = DataLoader(ds, batch_size=tc.batch_size, shuffle=True, drop_last=True, num_workers=0)
    total = len(loader)
    warmup = min(total, round(tc.warmup_epochs * total))
    sched = warmup_cosine(opt, total, warmup)
    t0 = 0.0
    f0 = 0
    for step, (xb, yb) in enumerate(loader):
        xb, yb = xb.to(device), yb.to(device)
        loss = F.cross_entropy(model(xb), yb, label_smoothing=tc.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step == 0:  # warm: start the clock now, as train() is timed on a warm process too
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            f0 = minflt()
        if step >= steps:
            break
    if device.type == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    FAULTS["baseline"].append((minflt() - f0) / steps)
    return steps * tc.batch_size / dt


def pipeline_ms(split, tc: TrainConfig, hflip: bool, repeats: int = 3) -> tuple[float, float]:
    """Milliseconds per batch of the two data paths alone: (DataLoader + per-sample, batched)."""
    ds = PerSampleAugment(split.train_x, split.train_y, crop_padding(tc, split.train_x.shape[-1]), hflip)
    loader = DataLoader(ds, batch_size=tc.batch_size, shuffle=True, drop_last=True, num_workers=0)
    base = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        n = sum(1 for _ in loader)
        base = min(base, (time.perf_counter() - t0) / n)
    g = torch.Generator().manual_seed(0)
    x = compact(split.train_x)
    pad = crop_padding(tc, x.shape[-1])
    ours_ = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(n):
            idx = torch.randperm(len(x), generator=g)[:tc.batch_size]
            augment(x[idx], pad, hflip, g)
        ours_ = min(ours_, (time.perf_counter() - t0) / n)
    return 1e3 * base, 1e3 * ours_


def ours(arch, split, tc: TrainConfig, hflip: bool) -> float:
    model = build_seeded(arch, tc.seed)
    f0 = minflt()
    res = train(model, split, tc, hflip=hflip)
    FAULTS["trainer"].append((minflt() - f0) / res.steps)  # includes its one validation pass
    return res.images_per_s


def matmul_gflops(device: torch.device, n: int = 1024, seconds: float = 1.0) -> float:
    """A dense n x n matmul's rate on ``device`` now, in G multiply-adds per second (the best of its runs).

    fp32 on CPU, bf16 on CUDA (what the trainer computes in there); n^3 multiply-adds per product.
    """
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    best, spent = 0.0, 0.0
    torch.mm(a, b)  # warm-up
    while spent < seconds:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t = time.perf_counter()
        for _ in range(4):
            torch.mm(a, b)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        dt = time.perf_counter() - t
        spent += dt
        best = max(best, 4 * n ** 3 / dt / 1e9)
    return best


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except Exception:
        return platform.processor() or "unknown CPU"


def main(argv: list[str] | None = None) -> int:
    d = ProxySettings()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="mobilevit_xxs")
    ap.add_argument("--data", default=d.data)
    ap.add_argument("--resolution", type=int, default=d.resolution)
    ap.add_argument("--stem-stride", type=int, default=d.stem_stride)
    ap.add_argument("--batch-size", type=int, default=d.batch_size)
    ap.add_argument("--steps", type=int, default=6, help="timed steps per run")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--compile", action="store_true", help="torch.compile in the trainer (CUDA only)")
    a = ap.parse_args(argv)

    device = resolve_device(a.device)
    if a.threads:
        torch.set_num_threads(a.threads)
    proxy = ProxySettings(data=a.data, resolution=a.resolution, stem_stride=a.stem_stride, batch_size=a.batch_size)
    data = load_data(a.data, resolution=a.resolution)
    n = (a.steps + 1) * a.batch_size
    split = proxy_split(data, train_samples=n, val_samples=data.num_classes, seed=0)
    arch = proxy_arch(get_preset(a.preset), proxy, data.num_classes)
    tc = proxy.train_config(epochs=1, device=str(device), compile=a.compile, threads=a.threads)
    # train() times every step of its epoch: give it one untimed step's worth less to compare alike
    timed = proxy_split(data, train_samples=a.steps * a.batch_size, val_samples=data.num_classes, seed=0)

    print(f"{a.preset} on {data.name} at {a.resolution}x{a.resolution}, stem stride {a.stem_stride}, "
          f"batch {a.batch_size}, {a.steps} timed steps per run, {a.repeats} interleaved rounds")
    where = (torch.cuda.get_device_name(device) if device.type == "cuda"
             else f"{cpu_name()}, {torch.get_num_threads()} threads")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"device: {device} ({where}); torch {torch.__version__}; {time.strftime('%Y-%m-%d %H:%M')}; load {load:.2f}")
    # warm both paths (allocator, oneDNN/cuDNN kernels, compile) before timing anything
    baseline(arch, split, tc, data.hflip, device, 1)
    ours(arch, proxy_split(data, train_samples=2 * a.batch_size, val_samples=data.num_classes), tc, data.hflip)
    base_runs, our_runs = [], []
    for r in range(a.repeats):  # alternate, so a busy spell of the machine hits both alike
        base_runs.append(baseline(arch, split, tc, data.hflip, device, a.steps))
        our_runs.append(ours(arch, timed, tc, data.hflip))
        print(f"  round {r + 1}: baseline {base_runs[-1]:8.1f} img/s   trainer {our_runs[-1]:8.1f} img/s   "
              f"ratio {our_runs[-1] / base_runs[-1]:5.2f}x", flush=True)
    b, o = max(base_runs), max(our_runs)
    ratios = [x / y for x, y in zip(our_runs, base_runs)]
    median = statistics.median(ratios)
    target = 4.0 if device.type == "cuda" else 2.0
    print(f"baseline (DataLoader, per-sample aug, fp32 NCHW): {b:.1f} images/s (best round)")
    print(f"trainer  (batched tensor aug, channels_last{', bf16' if device.type == 'cuda' else ', held memory'}"
          f"{', compile' if a.compile and device.type == 'cuda' else ''}): {o:.1f} images/s (best round)")
    pipe_b, pipe_o = pipeline_ms(split, tc, data.hflip)
    step_ms = 1e3 * a.batch_size / b
    print(f"data path alone: baseline {pipe_b:.2f} ms/batch ({100 * pipe_b / step_ms:.1f}% of its {step_ms:.0f} ms "
          f"step), trainer {pipe_o:.2f} ms/batch")
    print(f"minor page faults per step (median of rounds): baseline {statistics.median(FAULTS['baseline'][1:]):.0f}, "
          f"trainer {statistics.median(FAULTS['trainer'][1:]):.0f} (hold_memory={tc.hold_memory}, "
          f"allocator active: {allocator.available()})")
    # roofline context: what the trainer computes per second against what this device's dense
    # matmul reaches in the same run (both as multiply-adds: fvcore's FLOP convention)
    fwd = analytic_cost(arch, a.resolution).flops
    achieved = 3 * fwd * o / 1e9  # a training step ~ forward + backward ~ 3x the forward's multiply-adds
    peak = matmul_gflops(device)
    print(f"roofline: the trainer computes {achieved:.1f} GFLOP/s (3 x {fwd / 1e6:.1f}M FLOPs forward per image x "
          f"{o:.1f} img/s; 1 multiply-add = 1 FLOP); a dense {'bf16' if device.type == 'cuda' else 'fp32'} "
          f"1024x1024 matmul here {peak:.1f} GFLOP/s: {100 * achieved / peak:.1f}% of it")
    met = o / b >= target
    print(f"ratio: {o / b:.2f}x best-of-rounds, {median:.2f}x median of rounds "
          f"(target >= {target:.0f}x on {device.type}: {'met' if met else 'NOT met'})")
    return 0 if met else 1

if __name__ == "__main__":
    sys.exit(main())
