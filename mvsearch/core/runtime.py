"""Where and how computation runs: the device, the CPUs this process may use, torch's thread
count, mixed precision, and a model's train/eval flags.

:func:`cpu_threads` is the one place torch's intra-op thread count is changed (training, latency
measurement): it sets the count for a block and restores the caller's on the way out, nested or not.
"""
from __future__ import annotations

import contextlib
import os
from typing import ContextManager, Iterator

import torch
from torch import nn

from mvsearch.core.errors import TrainError


def resolve_device(device: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu; TrainError for cuda without a GPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise TrainError(f"device {device!r}: no CUDA GPU is available here; use --device cpu or auto")
    return torch.device(device)


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask on Linux, else all of them)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@contextlib.contextmanager
def cpu_threads(threads: int | None) -> Iterator[None]:
    """Set torch's intra-op threads for the block (default: capped at usable CPUs), then restore."""
    before = torch.get_num_threads()
    want = threads if threads is not None else min(before, usable_cpus())
    if want != before:
        torch.set_num_threads(want)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def autocast(device: torch.device, enabled: bool = True) -> ContextManager:
    """bf16 autocast on CUDA when ``enabled``; nothing on CPU (where bf16 is slower)."""
    if device.type == "cuda" and enabled:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode for the duration; every submodule's own flag restored afterwards."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, flag in flags:
            m.training = flag
