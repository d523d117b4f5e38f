"""Bounds on every size a user can type, checked where the value enters, before any work starts.

A number from the command line, a YAML file or a dataset's header decides how much memory and
time a command takes: ``--resolution 100000`` or a space whose widths reach 10^8 would eat memory
until the kernel kills the process. Each bound below is far above any sensible use (the paper's
largest model is 5.6M params and 2 GFLOPs at 256x256) and far below what a machine cannot do; a
value beyond it is refused with one line naming the bound (:func:`check_int`). The README's
"Errors and safety" section lists them.
"""
from __future__ import annotations

from typing import Any

from mvsearch.core.errors import MvsearchError
from mvsearch.core.text import shorten

# ---------------------------------------------------------------------- architectures
MAX_RESOLUTION = 1024  # input side in pixels (deployment, proxy, count, export)
MAX_CLASSES = 100_000  # classifier outputs (ImageNet-21k has 21,841)
MAX_WIDTH = 4096  # any channel width: stem, stage channels, transformer dim, FFN width, last conv
MAX_DEPTH = 64  # transformer layers L of a stage, and MV2 blocks of a stage
MAX_KERNEL = 31  # conv kernel n
MAX_PATCH = 64  # a patch side
MAX_EXPANSION = 16  # MV2 expansion ratio
MAX_PARAMS = 1_000_000_000  # trainable parameters of one network
MAX_FLOPS = 10**12  # FLOPs of one forward pass at batch 1
MAX_ACTIVATIONS = 4 * 10**9  # activations of one forward pass (x the batch when training)

# ---------------------------------------------------------------------- data and training
MAX_SAMPLES = 10_000_000  # --train-samples, --val-samples, synthetic samples
MAX_SYNTHETIC_PIXELS = 2**25  # synthetic samples x size x size (generated in memory at once)
MAX_DATA_BYTES = 16 * 2**30  # decoded images held in memory (uint8, at the proxy resolution)
MAX_MEMBER_BYTES = 256 * 2**20  # one file read from inside an archive (an image, a CIFAR batch)
MAX_EPOCHS = 10_000
MAX_BATCH = 65_536
MAX_THREADS = 1024

# ---------------------------------------------------------------------- search and latency
MAX_SEED = 2**32 - 1  # Optuna's samplers and numpy take a 32-bit seed
MAX_TRIALS = 1_000_000  # trained trials of one run
MAX_TIERS = 16  # FLOP budgets of one search
MAX_KNOB_VALUES = 10_000  # values one knob of a space may take
MAX_PATCH_CHOICES = 16  # patch choices of one stage (the cost range enumerates their product)
MAX_REPEATS = 100_000  # latency: timed runs
MAX_WARMUP = 100_000  # latency: untimed runs
MAX_NAME = 100  # characters of a study or module name

# ---------------------------------------------------------------------- files
MAX_YAML_BYTES = 2**20  # a space or architecture file
MAX_YAML_DEPTH = 32  # nesting of mappings and lists
MAX_YAML_ALIASES = 100  # alias uses (*name) in one file
MAX_YAML_NODES = 100_000  # nodes with every alias expanded (a "billion laughs" file has 10^9)
MAX_INT_DIGITS = 20  # digits of an integer in a file or option (Python refuses > 4300 with a traceback)


def check_int(value: Any, name: str, low: int, high: int, error: type[MvsearchError] = MvsearchError,
              *, what: str = "an integer") -> int:
    """``value`` if it is an int in ``low..high``; else ``error`` naming the rule, or the bound."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise error(f"{name}: must be {what} in {low:,}..{high:,}, got {shorten(value)}")
    if value < low:
        raise error(f"{name}: must be {what} in {low:,}..{high:,}, got {shorten(value)}")
    if value > high:
        raise error(f"{name}: {shorten(value)} exceeds mvsearch's bound of {high:,}")
    return value


def check_digits(text: str, name: str, error: type[MvsearchError] = MvsearchError) -> str:
    """``text`` unless it holds a run of more than :data:`MAX_INT_DIGITS` digits (an integer nobody means)."""
    run = longest = 0
    for ch in str(text):
        run = run + 1 if ch.isdigit() else 0
        longest = max(longest, run)
    if longest > MAX_INT_DIGITS:
        raise error(f"{name}: a number of {longest:,} digits exceeds mvsearch's bound of {MAX_INT_DIGITS} digits")
    return text


__all__ = [n for n in dir() if n.startswith("MAX_")] + ["check_int", "check_digits"]
