"""The proxy's stratified train/validation split, carved from the training set only.

Search must never look at the test split: validation images come out of the training set, in the
same class proportions as the whole training set, chosen by a fixed seed (so every trial of a
study sees the same split). ``train_samples`` optionally subsamples what is left, also stratified.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from mvsearch.core.errors import DataError

if TYPE_CHECKING:
    from mvsearch.data import TensorData


@dataclass(frozen=True)
class ProxySplit:
    """Training and validation tensors for one proxy training (both from the training set)."""

    train_x: torch.Tensor  # uint8 [n, 3, R, R]
    train_y: torch.Tensor  # int64 [n]
    val_x: torch.Tensor  # uint8 [m, 3, R, R]
    val_y: torch.Tensor  # int64 [m]
    num_classes: int = 0  # K (0: infer from the labels)
    hflip: bool = True  # whether horizontal flips keep the label

    def classes(self) -> int:
        if self.num_classes:
            return self.num_classes
        return int(max(self.train_y.max(), self.val_y.max())) + 1


def take(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``x[index]`` that keeps a grayscale-expanded ``[N, 3, R, R]`` view compact (no 3x copy)."""
    if x.dim() == 4 and x.shape[1] == 3 and x.stride(1) == 0:
        return x[:, :1][index].expand(-1, 3, -1, -1)
    return x[index]


def _quota(counts: torch.Tensor, total: int) -> torch.Tensor:
    """Split ``total`` over classes in proportion to ``counts`` (largest remainder, exact sum)."""
    share = counts.double() * total / counts.sum()
    q = share.floor().long()
    rest = total - int(q.sum())
    if rest:
        order = torch.argsort(share - q, descending=True, stable=True)
        q[order[:rest]] += 1
    return torch.minimum(q, counts)


def stratified(y: torch.Tensor, n: int, g: torch.Generator, pool: torch.Tensor | None = None) -> torch.Tensor:
    """``n`` indices into ``y`` (restricted to ``pool``), class proportions kept, sorted."""
    pool = torch.arange(len(y)) if pool is None else pool
    labels = y[pool]
    k = int(labels.max()) + 1
    counts = torch.bincount(labels, minlength=k)
    quota = _quota(counts, n)
    picked = []
    for c in range(k):
        members = pool[labels == c]
        if quota[c]:
            picked.append(members[torch.randperm(len(members), generator=g)[: int(quota[c])]])
    return torch.sort(torch.cat(picked)).values


def proxy_split(data: TensorData, *, train_samples: int | None, val_samples: int, seed: int = 0) -> ProxySplit:
    """A stratified validation split of ``val_samples`` from ``data``'s training set; the rest
    (or a stratified ``train_samples`` of it) for training. Same seed -> same split."""
    n = len(data.train_y)
    if isinstance(val_samples, bool) or not isinstance(val_samples, int) or val_samples < data.num_classes:
        raise DataError(f"val_samples: need at least one per class ({data.num_classes}), got {val_samples!r}")
    if val_samples >= n:
        raise DataError(f"val_samples: {val_samples} leaves nothing to train on ({data.name} has {n} "
                        f"training images); use fewer --val-samples")
    if train_samples is not None:
        if isinstance(train_samples, bool) or not isinstance(train_samples, int) or train_samples < 1:
            raise DataError(f"train_samples: must be a positive integer or None, got {train_samples!r}")
        if train_samples > n - val_samples:
            raise DataError(f"train_samples: {train_samples} + val_samples {val_samples} exceed the "
                            f"{n} training images of {data.name}; lower one of them")
    g = torch.Generator().manual_seed(seed)
    val_idx = stratified(data.train_y, val_samples, g)
    keep = torch.ones(n, dtype=torch.bool)
    keep[val_idx] = False
    rest = torch.nonzero(keep).flatten()
    train_idx = rest if train_samples is None or train_samples == len(rest) else stratified(
        data.train_y, train_samples, g, rest)
    return ProxySplit(take(data.train_x, train_idx), data.train_y[train_idx],
                      take(data.train_x, val_idx), data.train_y[val_idx],
                      num_classes=data.num_classes, hflip=data.hflip)
