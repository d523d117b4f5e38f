"""What every format reader returns, and the resizing they share.

A reader decodes its source into a :class:`Decoded`: uint8 images ``[N, C, R, R]`` (C = 1 for
grayscale, 3 for colour) already at the requested resolution, int64 labels and class names. The
cache stores exactly this; :func:`mvsearch.data.load_data` turns it into a ``TensorData``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from mvsearch.core.errors import DataError
from mvsearch.core.limits import MAX_CLASSES, MAX_DATA_BYTES
from mvsearch.core.text import printable, shorten


@dataclass
class Decoded:
    """Decoded images and labels of one dataset at one resolution."""

    train_x: torch.Tensor  # uint8 [N, C, R, R], C in (1, 3)
    train_y: torch.Tensor  # int64 [N]
    test_x: torch.Tensor  # uint8 [M, C, R, R]
    test_y: torch.Tensor  # int64 [M]
    classes: tuple[str, ...]  # class names, index = label
    hflip: bool  # horizontal flip keeps the label (False for digits and letters)

    def check(self, where: str) -> Decoded:
        """Raise DataError when shapes, dtypes or labels are inconsistent, or fewer than 2 classes."""
        k = len(self.classes)
        for split, x, y in (("train", self.train_x, self.train_y), ("test", self.test_x, self.test_y)):
            if x.dtype != torch.uint8 or x.dim() != 4 or x.shape[1] not in (1, 3):
                raise DataError(f"{where}: {split} images must be uint8 [N, 1|3, H, W], got "
                                f"{x.dtype} {list(x.shape)}")
            if len(x) != len(y):
                raise DataError(f"{where}: {split} has {len(x)} images but {len(y)} labels")
            if len(x) == 0:
                raise DataError(f"{where}: the {split} split is empty")
            lo, hi = int(y.min()), int(y.max())
            if lo < 0 or hi >= k:
                raise DataError(f"{where}: {split} labels must lie in [0, {k - 1}], got {lo}..{hi}")
        why = "a classifier needs at least 2 classes (with one, every accuracy is 100%)"
        if k < 2:
            only = f" ({printable(self.classes[0])!r})" if k == 1 else ""
            raise DataError(f"{where}: the dataset has a single class{only}; {why}")
        if int(torch.unique(self.train_y).numel()) < 2:
            raise DataError(f"{where}: every training image has the same label; {why}")
        return self


def check_images(shape: tuple[int, ...], where: str, split: str) -> None:
    """Images ``[N, C, H, W]`` as a reader found them: some, and at least one pixel each."""
    n, h, w = shape[0], shape[-2], shape[-1]
    if n < 1:
        raise DataError(f"{where}: the {split} split holds no images")
    if h < 1 or w < 1:
        raise DataError(f"{where}: {split} images are {h}x{w} pixels; they need at least one pixel")


def check_labels(y: np.ndarray, where: str, split: str) -> None:
    """Integer labels in ``0..MAX_CLASSES-1`` (a label of 2**40 would ask for 2**40 class names)."""
    if y.size == 0:
        return
    lo, hi = int(y.min()), int(y.max())
    if lo < 0:
        raise DataError(f"{where}: {split} labels must be class indices >= 0, got {lo}")
    if hi >= MAX_CLASSES:
        raise DataError(f"{where}: {split} label {shorten(hi)} exceeds mvsearch's bound of {MAX_CLASSES:,} classes")


def check_decoded_bytes(images: int, channels: int, resolution: int, where: str) -> None:
    """``images`` decoded at ``resolution`` must fit :data:`~mvsearch.core.limits.MAX_DATA_BYTES`."""
    need = images * channels * resolution * resolution
    if need > MAX_DATA_BYTES:
        raise DataError(f"{where}: {images:,} images at {resolution}x{resolution} take {need / 2**30:.1f} GiB, over "
                        f"mvsearch's bound of {MAX_DATA_BYTES / 2**30:.0f} GiB; use a lower resolution or fewer images")


def resize_uint8(x: np.ndarray | torch.Tensor, resolution: int, chunk: int = 2048) -> torch.Tensor:
    """uint8 ``[N, C, H, W]`` -> uint8 ``[N, C, R, R]`` (bilinear, antialiased when shrinking).

    Non-square inputs are resized so the shorter side is R, then centre-cropped.
    """
    t = torch.from_numpy(np.array(x, dtype=np.uint8)) if isinstance(x, np.ndarray) else x
    n, c, h, w = t.shape
    if h < 1 or w < 1:
        raise DataError(f"images of {h}x{w} pixels cannot be resized; they need at least one pixel")
    if (h, w) == (resolution, resolution):
        return t.contiguous()
    s = resolution / min(h, w)
    nh, nw = max(resolution, round(h * s)), max(resolution, round(w * s))
    out = torch.empty((n, c, resolution, resolution), dtype=torch.uint8)
    top, left = (nh - resolution) // 2, (nw - resolution) // 2
    for i in range(0, n, chunk):
        part = t[i:i + chunk].float()
        part = F.interpolate(part, size=(nh, nw), mode="bilinear", align_corners=False,
                             antialias=nh < h or nw < w)
        part = part[:, :, top:top + resolution, left:left + resolution]
        out[i:i + chunk] = part.round_().clamp_(0, 255).to(torch.uint8)
    return out


def labels(y: np.ndarray | list[int]) -> torch.Tensor:
    return torch.as_tensor(np.asarray(y, dtype=np.int64))
