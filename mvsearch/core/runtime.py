"""Where and how computation runs: the device, the CPUs this process may use, torch's thread count."""
from __future__ import annotations

import contextlib
import os
from typing import Iterator

import torch

from mvsearch.core.errors import TrainError


def resolve_device(device: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu; TrainError for cuda without a GPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise TrainError(f"device {device!r}: no CUDA GPU is available here; use --device cpu or auto")
    return torch.device(device)


def usable_cpus() -> int:
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
