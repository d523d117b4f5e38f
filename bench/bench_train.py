"""Benchmark: the proxy trainer's training throughput against a plain PyTorch loop, in one process.

The baseline is what a first PyTorch script does: a ``torch.utils.data.DataLoader`` over the same
decoded uint8 tensors, per-sample augmentation in ``__getitem__`` (the same random crop with padding
and flip, in Python, one image at a time), eager fp32 in NCHW, and the same model, batch size,
optimizer (AdamW, same parameter groups, lr schedule and label smoothing). The trainer is
``mvsearch.train.train`` with its defaults (batch-level augmentation on tensors, channels_last, no
DataLoader; bf16 autocast on CUDA, plus --compile when asked).

Both are warmed up, then measured alternately ``--repeats`` times over ``--steps`` steps; the best
run of each is compared (the machine may be shared). Prints images/s of each and the ratio; writes
nothing. Targets: >= 2x on CPU, >= 4x on a CUDA GPU, for mobilevit_xxs at the default proxy.

    python bench/bench_train.py                       # mobilevit_xxs, fashion-mnist, default proxy
    python bench/bench_train.py --data synthetic:samples=4096 --steps 10
"""
from __future__ import annotations

import argparse
import platform
import random
import subprocess
import sys
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from mvsearch.arch import get_preset
from mvsearch.data import load_data, proxy_split
from mvsearch.model import build_model
from mvsearch.proxy import ProxySettings, proxy_arch
from mvsearch.train import TrainConfig, build_seeded, lr_at, param_groups, resolve_device, train


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


def baseline(arch, split, tc: TrainConfig, hflip: bool, device: torch.device, steps: int) -> float:
    """Images/s of the plain loop over ``steps`` steps (timed after the first step)."""
    torch.manual_seed(tc.seed)
    random.seed(tc.seed)
    model = build_model(arch).to(device)
    model.train()
    opt = torch.optim.AdamW(param_groups(model, tc.weight_decay), lr=tc.lr)
    ds = PerSampleAugment(split.train_x, split.train_y, split.train_x.shape[-1] // 8, hflip)
    loader = DataLoader(ds, batch_size=tc.batch_size, shuffle=True, drop_last=True, num_workers=0)
    total = len(loader)
    t0 = None
    for step, (xb, yb) in enumerate(loader):
        if step == 1:  # start the clock after the first step, as train() is timed warm too
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        xb, yb = xb.to(device), yb.to(device)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, total, 0, tc.lr)
        loss = F.cross_entropy(model(xb), yb, label_smoothing=tc.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step + 1 >= steps + 1:
            break
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * tc.batch_size / (time.perf_counter() - t0)


def ours(arch, split, tc: TrainConfig, hflip: bool) -> float:
    return train(build_seeded(arch, tc.seed), split, tc, hflip=hflip).images_per_s


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except Exception:
        return platform.processor() or "unknown CPU"


def main(argv: list[str] | None = None) -> None:
    d = ProxySettings()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="mobilevit_xxs")
    ap.add_argument("--data", default=d.data)
    ap.add_argument("--resolution", type=int, default=d.resolution)
    ap.add_argument("--stem-stride", type=int, default=d.stem_stride)
    ap.add_argument("--batch-size", type=int, default=d.batch_size)
    ap.add_argument("--steps", type=int, default=12, help="timed steps per run")
    ap.add_argument("--repeats", type=int, default=2)
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
          f"batch {a.batch_size}, {a.steps} steps x {a.repeats} repeats")
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{cpu_name()}, {torch.get_num_threads()} threads"
    print(f"device: {device} ({where}); torch {torch.__version__}; {time.strftime('%Y-%m-%d')}")
    # warm both paths (allocator, oneDNN/cuDNN kernels, compile) before timing anything
    baseline(arch, split, tc, data.hflip, device, 2)
    ours(arch, proxy_split(data, train_samples=2 * a.batch_size, val_samples=data.num_classes), tc, data.hflip)
    base_runs, our_runs = [], []
    for _ in range(a.repeats):
        base_runs.append(baseline(arch, split, tc, data.hflip, device, a.steps))
        our_runs.append(ours(arch, timed, tc, data.hflip))
        print(f"  baseline {base_runs[-1]:8.1f} img/s   trainer {our_runs[-1]:8.1f} img/s", flush=True)
    b, o = max(base_runs), max(our_runs)
    target = 4.0 if device.type == "cuda" else 2.0
    print(f"baseline (DataLoader, per-sample aug, fp32 NCHW): {b:.1f} images/s")
    print(f"trainer  (batched tensor aug, channels_last{', bf16' if device.type == 'cuda' else ''}"
          f"{', compile' if a.compile and device.type == 'cuda' else ''}): {o:.1f} images/s")
    print(f"ratio: {o / b:.2f}x (target >= {target:.0f}x on {device.type})")


if __name__ == "__main__":
    sys.exit(main())
