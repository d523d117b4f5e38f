"""Learning check: mobilevit_xxs on real Fashion-MNIST at the proxy resolution.

Trains the proxy network (64x64 input, stem stride 1, 10 classes) with the proxy trainer exactly
as a search would (``mvsearch.proxy.run_proxy``), prints validation accuracy after each epoch, the
final figure, wall and CPU time, and (for information only, never used by search) the test-split
accuracy. Target: >= 85% validation accuracy within a few CPU minutes; exit status 1 when missed.

Which settings: ``ProxySettings()`` exactly, the default of ``mvsearch train`` (64x64, stem stride
1, 3 epochs, batch 64, 10,000 train / 2,000 validation images, AdamW lr 2e-3, wd 0.05, warmup 0.3
epoch, label smoothing 0.1, crop padding R/32 with flips). It prints the settings it used and how
they differ from ``ProxySettings()``. ``--space mobile`` starts from that space's proxy instead
(1,024 images, sized for ranking many candidates quickly, not for accuracy); any field can be
overridden.

    python bench/bench_learning.py                          # ProxySettings()
    python bench/bench_learning.py --epochs 5               # longer
    python bench/bench_learning.py --space mobile           # the search's proxy (1024 images)
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import resource
import sys
import time

import mvsearch  # noqa: F401  (before torch: sets OMP_WAIT_POLICY=PASSIVE, as the CLI does)
import torch

from mvsearch.arch.presets import get_preset
from mvsearch.proxy.settings import ProxySettings
from mvsearch.proxy.run import run_proxy
from mvsearch.proxy.trainer import evaluate

TARGET = 0.85


def main(argv: list[str] | None = None) -> int:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--space", default=None)
    space_name = pre.parse_known_args(argv)[0].space
    if space_name:
        from mvsearch.space.loader import load_space

        d = load_space(space_name).proxy_settings()
    else:
        d = ProxySettings()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default=None, help="start from this space's proxy settings")
    ap.add_argument("--preset", default="mobilevit_xxs")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--seed", type=int, default=0)
    for f in dataclasses.fields(ProxySettings):
        if f.name in ("data", "resolution", "stem_stride", "epochs", "batch_size", "val_samples", "lr"):
            ap.add_argument(f"--{f.name.replace('_', '-')}", type=type(getattr(d, f.name)), default=getattr(d, f.name))
    ap.add_argument("--train-samples", type=lambda s: None if s == "all" else int(s), default=d.train_samples)
    a = ap.parse_args(argv)
    proxy = dataclasses.replace(d, data=a.data, resolution=a.resolution, stem_stride=a.stem_stride, epochs=a.epochs,
                                batch_size=a.batch_size, train_samples=a.train_samples, val_samples=a.val_samples,
                                lr=a.lr)
    changed = {k: v for k, v in proxy.to_dict().items() if ProxySettings().to_dict()[k] != v}
    print(f"{a.preset} on {proxy.data}: {proxy.to_dict()}", flush=True)
    print(f"differs from ProxySettings() in: {changed or 'nothing'}", flush=True)
    t0 = time.perf_counter()
    c0 = resource.getrusage(resource.RUSAGE_SELF)
    run = run_proxy(get_preset(a.preset), proxy, seed=a.seed, device=a.device,
                    callback=lambda e: print(f"  epoch {e.epoch}: val_acc {e.val_accuracy:.4f} val_loss "
                                             f"{e.val_loss:.4f} train_loss {e.train_loss:.4f} "
                                             f"{e.images_per_s:.0f} img/s  t={e.wall_s:.0f}s", flush=True))
    wall = time.perf_counter() - t0
    c1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (c1.ru_utime - c0.ru_utime) + (c1.ru_stime - c0.ru_stime)
    test_acc, _ = evaluate(run.model, run.data.test_x, run.data.test_y, device=torch.device(run.result.device))
    acc = run.result.val_accuracy
    print(f"val_accuracy {acc:.4f} (target >= {TARGET}: {'met' if acc >= TARGET else 'NOT met'}) in {wall:.0f} s "
          f"wall, {cpu / 60:.1f} CPU minutes ({run.result.device}, {torch.get_num_threads()} threads, "
          f"{run.result.images_per_s:.0f} train img/s, load {os.getloadavg()[0]:.2f}); "
          f"test_accuracy {test_acc:.4f} (information only)")
    return 0 if acc >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
