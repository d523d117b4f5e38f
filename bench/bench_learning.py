"""Learning check: mobilevit_xxs on real Fashion-MNIST at the default proxy settings.

Trains the proxy network (64x64 input, stem stride 1, 10 classes) with ``ProxySettings()`` exactly
as a search would, prints validation accuracy after each epoch, the final figure, the wall time and
(for information only, never used by search) the test-split accuracy. Target: >= 85% validation
accuracy within a few CPU minutes. Exit status 1 when the target is missed.

    python bench/bench_learning.py                 # the default proxy
    python bench/bench_learning.py --epochs 5      # any ProxySettings field can be overridden
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time

import torch

from mvsearch.arch import get_preset
from mvsearch.proxy import ProxySettings, run_proxy
from mvsearch.train import evaluate

TARGET = 0.85


def main(argv: list[str] | None = None) -> int:
    d = ProxySettings()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="mobilevit_xxs")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--seed", type=int, default=0)
    for f in dataclasses.fields(ProxySettings):
        if f.name in ("data", "resolution", "stem_stride", "epochs", "batch_size", "val_samples", "lr"):
            ap.add_argument(f"--{f.name.replace('_', '-')}", type=type(getattr(d, f.name)), default=getattr(d, f.name))
    ap.add_argument("--train-samples", type=lambda s: None if s == "all" else int(s), default=d.train_samples)
    a = ap.parse_args(argv)
    proxy = ProxySettings(data=a.data, resolution=a.resolution, stem_stride=a.stem_stride, epochs=a.epochs,
                          batch_size=a.batch_size, train_samples=a.train_samples, val_samples=a.val_samples, lr=a.lr)
    print(f"{a.preset} on {proxy.data}: {proxy.to_dict()}", flush=True)
    t0 = time.perf_counter()
    run = run_proxy(get_preset(a.preset), proxy, seed=a.seed, device=a.device,
                    callback=lambda e: print(f"  epoch {e.epoch}: val_acc {e.val_accuracy:.4f} val_loss "
                                             f"{e.val_loss:.4f} train_loss {e.train_loss:.4f} "
                                             f"{e.images_per_s:.0f} img/s  t={e.wall_s:.0f}s", flush=True))
    wall = time.perf_counter() - t0
    test_acc, _ = evaluate(run.model, run.data.test_x, run.data.test_y, device=torch.device(run.result.device))
    acc = run.result.val_accuracy
    print(f"val_accuracy {acc:.4f} (target >= {TARGET}) in {wall:.0f} s wall ({run.result.device}, "
          f"{torch.get_num_threads()} threads, {run.result.images_per_s:.0f} train img/s); "
          f"test_accuracy {test_acc:.4f} (information only)")
    return 0 if acc >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
