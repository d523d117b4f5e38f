""":func:`run_proxy`: the one way a candidate is trained under proxy settings (used by ``mvsearch train`` and the search)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable
from torch import nn

from mvsearch.arch.config import ArchConfig
from mvsearch.arch.geometry import check_resolution
from mvsearch.cost.bounds import check_cost
from mvsearch.data import ProxySplit, TensorData, load_data, proxy_split
from mvsearch.proxy.settings import ProxySettings, collapse_warnings, proxy_arch
from mvsearch.proxy.trainer import EpochStats, TrainResult, build_seeded, train


@dataclass
class ProxyRun:
    """Everything one proxy training produced."""

    result: TrainResult
    model: nn.Module  # the trained proxy network (on the training device)
    arch: ArchConfig  # proxy_arch(deployed, proxy, classes): what was trained
    data: TensorData
    split: ProxySplit
    warnings: list[str]  # collapse_warnings of the trained net


def run_proxy(cfg: ArchConfig, proxy: ProxySettings, *, seed: int = 0, device: str = "auto",
              threads: int | None = None, compile: bool = False, data: TensorData | None = None,
              split: ProxySplit | None = None, cache_dir=None, download: bool = False,
              callback: Callable[[EpochStats], bool | None] | None = None,
              progress: bool = False, on_model: Callable[[nn.Module], None] | None = None) -> ProxyRun:
    """Load the proxy data (unless given), split it, build the proxy net from ``seed`` and train it.

    Pass ``data``/``split`` to reuse them across many architectures (a search does).
    """
    if data is None:
        data = load_data(proxy.data, resolution=proxy.resolution, cache_dir=cache_dir, download=download)
    if split is None:
        split = proxy_split(data, train_samples=proxy.train_samples, val_samples=proxy.val_samples, seed=0)
    arch = proxy_arch(cfg, proxy, data.num_classes)
    check_resolution(arch, proxy.resolution)
    check_cost(arch, proxy.resolution, batch=proxy.batch_size, what="the proxy network")
    warnings = collapse_warnings(arch, proxy.resolution)
    tc = proxy.train_config(seed=seed, device=device, threads=threads, compile=compile)
    model = build_seeded(arch, seed)
    if on_model is not None:  # a handle on the net before training (the search saves a pruned one's weights)
        on_model(model)
    result = train(model, split, tc, hflip=data.hflip, callback=callback, progress=progress)
    return ProxyRun(result, model, arch, data, split, warnings)
