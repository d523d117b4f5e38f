"""proxy_split: stratified, carved from the training set only, reproducible."""
from __future__ import annotations

import pytest
import torch

from mvsearch.data import TensorData, load_data, proxy_split
from mvsearch.core.errors import DataError


def _imbalanced(n_per_class=(60, 30, 10), res=8) -> TensorData:
    y = torch.cat([torch.full((n,), c) for c, n in enumerate(n_per_class)])
    y = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(0))]
    x = torch.arange(len(y), dtype=torch.int64).remainder(256).to(torch.uint8)  # pixel value tags the image
    x = x[:, None, None, None].expand(-1, 1, res, res).contiguous().expand(-1, 3, -1, -1)
    k = len(n_per_class)
    return TensorData("toy", "toy", x, y, x[:k].clone(), torch.arange(k), k, tuple(map(str, range(k))), True)


def test_validation_keeps_class_proportions():
    s = proxy_split(_imbalanced(), train_samples=None, val_samples=20, seed=0)
    assert s.val_y.bincount().tolist() == [12, 6, 2]
    assert s.train_y.bincount().tolist() == [48, 24, 8]


def test_train_subset_is_stratified_too():
    s = proxy_split(_imbalanced(), train_samples=40, val_samples=20, seed=0)
    assert len(s.train_y) == 40 and s.train_y.bincount().tolist() == [24, 12, 4]


def test_train_and_validation_are_disjoint_and_from_train_only():
    d = _imbalanced()
    s = proxy_split(d, train_samples=None, val_samples=20, seed=0)
    tags = lambda x: set(x[:, 0, 0, 0].tolist())  # noqa: E731
    assert not tags(s.train_x) & tags(s.val_x)
    assert len(tags(s.train_x) | tags(s.val_x)) == 100
    assert s.num_classes == 3 and s.hflip is True


def test_same_seed_same_split_other_seed_other_split():
    d = _imbalanced()
    a = proxy_split(d, train_samples=50, val_samples=20, seed=0)
    b = proxy_split(d, train_samples=50, val_samples=20, seed=0)
    c = proxy_split(d, train_samples=50, val_samples=20, seed=1)
    assert torch.equal(a.val_x, b.val_x) and torch.equal(a.train_x, b.train_x)
    assert not torch.equal(a.val_x, c.val_x)


def test_grayscale_views_stay_compact():
    s = proxy_split(load_data("synthetic", resolution=16), train_samples=None, val_samples=40)
    assert s.train_x.shape[1] == 3 and s.train_x.dtype == torch.uint8
    d = _imbalanced()
    s = proxy_split(d, train_samples=None, val_samples=20)
    assert s.train_x.stride(1) == 0  # [n, 3, R, R] as a view of one channel, no 3x copy


@pytest.mark.parametrize("train,val,msg", [
    (None, 100, "leaves nothing to train on"),
    (None, 2, "at least one per class"),
    (90, 20, "exceed the 100 training images"),
    (0, 20, "positive integer or None"),
])
def test_impossible_sizes_are_refused(train, val, msg):
    with pytest.raises(DataError, match=msg):
        proxy_split(_imbalanced(), train_samples=train, val_samples=val)
