"""``synthetic[:classes=K,samples=N,size=S,seed=X]``: a generated task for tests and smoke runs.

Class ``c`` is a striped pattern (horizontal or vertical stripes at a class-specific frequency)
tinted with a class-specific colour, at a random phase and contrast, with Gaussian noise. Learnable
in a few hundred steps by a tiny network, invariant to horizontal flips, and fully determined by
its options (same options -> same bytes). Not a benchmark: never use it to compare architectures.
"""
from __future__ import annotations

import math

import torch

from mvsearch.core.errors import DataError
from mvsearch.core.limits import (MAX_CLASSES, MAX_SAMPLES, MAX_SEED, MAX_SYNTHETIC_PIXELS, check_digits,
                                  check_int)
from mvsearch.core.text import shorten
from mvsearch.data.base import Decoded, check_decoded_bytes, resize_uint8

DEFAULTS = {"classes": 4, "samples": 512, "size": 32, "seed": 0}


def parse_options(text: str) -> dict[str, int]:
    """``"classes=4,samples=256"`` -> options, with defaults filled in."""
    opts = dict(DEFAULTS)
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, eq, value = part.partition("=")
        key = key.strip()
        if not eq or key not in DEFAULTS:
            raise DataError(f"synthetic: unknown option {shorten(part)}; use synthetic:classes=K,samples=N,size=S,seed=X")
        try:
            opts[key] = int(check_digits(value.strip(), f"synthetic: {key}", DataError))
        except ValueError:
            raise DataError(f"synthetic: {key} must be an integer, got {shorten(value)}") from None
    check_int(opts["classes"], "synthetic: classes", 2, MAX_CLASSES, DataError)
    check_int(opts["samples"], "synthetic: samples", 2 * opts["classes"], MAX_SAMPLES, DataError)
    check_int(opts["size"], "synthetic: size", 8, 512, DataError)
    check_int(opts["seed"], "synthetic: seed", 0, MAX_SEED, DataError)
    pixels = opts["samples"] * opts["size"] ** 2
    if pixels > MAX_SYNTHETIC_PIXELS:
        raise DataError(f"synthetic: samples x size x size = {pixels:,} pixels exceeds mvsearch's bound of "
                        f"{MAX_SYNTHETIC_PIXELS:,}; use fewer samples or a smaller size")
    return opts


def _make(n: int, k: int, size: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    y = torch.arange(n) % k  # balanced classes
    y = y[torch.randperm(n, generator=g)]
    freq = 1.0 + (y // 2).float() * 1.5  # stripes per image, by class
    vertical = (y % 2).bool()
    phase = torch.rand(n, generator=g) * 2 * math.pi
    contrast = 0.25 + 0.2 * torch.rand(n, generator=g)
    pos = torch.linspace(0, 2 * math.pi, size)
    wave = torch.sin(freq[:, None] * pos[None] + phase[:, None])  # [n, S]
    img = torch.where(vertical[:, None, None], wave[:, None, :].expand(n, size, size),
                      wave[:, :, None].expand(n, size, size))  # [n, S, S]
    hue = torch.stack([torch.cos(2 * math.pi * y / k + o) for o in (0.0, 2.1, 4.2)], 1)  # [n, 3]
    x = 0.5 + contrast[:, None, None, None] * img[:, None] + 0.15 * hue[:, :, None, None]
    x = x + 0.08 * torch.randn(x.shape, generator=g)
    return (x.clamp(0, 1) * 255).round().to(torch.uint8), y.long()


def decode(options: dict[str, int], resolution: int) -> Decoded:
    k, n, size = options["classes"], options["samples"], options["size"]
    check_decoded_bytes(n + max(k, n // 4), 3, max(resolution, size), "synthetic")
    g = torch.Generator().manual_seed(options["seed"])
    train_x, train_y = _make(n, k, size, g)
    test_x, test_y = _make(max(k, n // 4), k, size, g)
    return Decoded(resize_uint8(train_x, resolution), train_y, resize_uint8(test_x, resolution),
                   test_y, tuple(f"class{i}" for i in range(k)), hflip=True).check("synthetic")
