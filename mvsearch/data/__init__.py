"""Datasets as uint8 tensors at the proxy resolution, and the proxy's train/validation split.

``load_data(spec, resolution=R)`` finds the data a spec names (see :mod:`mvsearch.data.spec`),
decodes it once with the format's reader (one module per format: :mod:`~mvsearch.data.idx`,
:mod:`~mvsearch.data.cifar`, :mod:`~mvsearch.data.imagefolder`, :mod:`~mvsearch.data.npz`,
:mod:`~mvsearch.data.synthetic`), caches the tensors (:mod:`~mvsearch.data.cache`) and returns a
:class:`TensorData`. ``proxy_split`` carves a stratified validation split from the *training* set;
the test split is for final evaluation only.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from mvsearch.data import cache as _cache
from mvsearch.data.base import Decoded
from mvsearch.data.spec import NAMED, DataSpec, parse_spec
from mvsearch.data.split import ProxySplit, proxy_split
from mvsearch.core.errors import DataError, MvsearchError
from mvsearch.core.limits import MAX_RESOLUTION
from mvsearch.core.text import quote, shorten

#: where a named dataset is looked for, besides NAME:DIR, $MVSEARCH_DATA/NAME and the cache dir
SYSTEM_DIRS = {"fashion-mnist": (Path("/usr/share/datasets/fashion-mnist"),)}

#: how to get a named dataset, for the not-found message
HOW_TO_GET = {
    "fashion-mnist": "`apt-get install dataset-fashion-mnist` (Debian/Ubuntu)",
    "mnist": "the four idx .gz files from https://yann.lecun.com/exdb/mnist/",
    "cifar10": "cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html",
    "cifar100": "cifar-100-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html",
}


@dataclass(frozen=True)
class TensorData:
    """A whole dataset as tensors at one resolution (grayscale already 3 channels)."""

    name: str  # e.g. "fashion-mnist", or the source's file name
    spec: str  # the spec string it was loaded from
    train_x: torch.Tensor  # uint8 [N, 3, R, R] (an expanded view for grayscale: no copy)
    train_y: torch.Tensor  # int64 [N]
    test_x: torch.Tensor  # uint8 [M, 3, R, R]
    test_y: torch.Tensor  # int64 [M]
    num_classes: int  # K; labels lie in [0, K)
    classes: tuple[str, ...]  # class names, index = label
    hflip: bool  # whether a horizontal flip keeps the label (False for digits)
    resolution: int = 0  # R
    location: str = ""  # the folder or file it came from ("" for synthetic)
    cached: bool = False  # True when loaded from the tensor cache

    def summary(self) -> str:
        return (f"{self.name}: {len(self.train_x)} train / {len(self.test_x)} test images, "
                f"{self.num_classes} classes, {self.resolution}x{self.resolution}")


@dataclass
class _Source:
    """A located dataset: the files that define its content and how to decode them."""

    location: Path
    files: list[Path]
    decode: Callable[[int], Decoded]
    root: Path | None = None  # hash file paths relative to this (folders)


def _three_channels(x: torch.Tensor) -> torch.Tensor:
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


def _idx_source(name: str, directory: Path) -> _Source | None:
    from mvsearch.data import idx

    files = idx.find(directory)
    if files is None:
        return None
    classes = idx.FASHION_CLASSES if name == "fashion-mnist" else None
    hflip = name == "fashion-mnist"  # clothes are left-right symmetric; digits are not
    return _Source(directory, list(files.values()),
                   lambda r: idx.decode(files, r, classes=classes, hflip=hflip))


def _cifar_source(name: str, path: Path) -> _Source | None:
    from mvsearch.data import cifar

    found = cifar.find(path, name)
    if found is None:
        return None
    return _Source(found, cifar.source_files(found, name), lambda r: cifar.decode(found, name, r),
                   root=found if found.is_dir() else None)


def _named_source(name: str, path: Path) -> _Source | None:
    return (_idx_source if NAMED[name] == "idx" else _cifar_source)(name, path)


def search_dirs(name: str, cache_dir: Path) -> list[Path]:
    """Where a named dataset is looked for, in order."""
    dirs = []
    if os.environ.get("MVSEARCH_DATA"):
        dirs.append(Path(os.environ["MVSEARCH_DATA"]).expanduser() / name)
    dirs.append(cache_dir / name)
    dirs.extend(SYSTEM_DIRS.get(name, ()))
    return dirs


def _locate(spec: DataSpec, cache_dir: Path, download: bool) -> _Source:
    kind, path = spec.kind, spec.path
    if kind in NAMED:
        if path is not None:
            src = _named_source(kind, path)
            if src is None:
                raise DataError(_explicit_miss(kind, path))
            return src
        dirs = search_dirs(kind, cache_dir)
        for d in dirs:
            src = _named_source(kind, d)
            if src is not None:
                return src
        if download:
            from mvsearch.data import download as _download

            target = _download.fetch(kind, cache_dir / kind)
            src = _named_source(kind, target)
            if src is not None:
                return src
        raise DataError(f"{kind}: not found (looked in {', '.join(map(str, dirs))}); get it with "
                        f"{HOW_TO_GET[kind]} and pass {kind}:DIR, or add --download")
    if not path.exists():
        raise DataError(f"{kind}:{quote(path)}: no such file or folder; check the path")
    if kind == "idx":
        src = _idx_source("idx", path)
        if src is None:
            raise DataError(_explicit_miss("idx", path))
        return src
    if kind == "npz":
        from mvsearch.data import npz

        if not path.is_file():
            raise DataError(f"npz:{quote(path)}: is a folder; npz:FILE wants a .npz file")
        return _Source(path, [path], lambda r: npz.decode(path, r))
    if kind == "imagefolder":
        from mvsearch.data import imagefolder

        files, root = imagefolder.source_files(path)
        return _Source(path, files, lambda r: imagefolder.decode(path, r), root=root)
    raise DataError(f"{spec.text}: unsupported data kind {kind!r}")  # unreachable: parse_spec checks


def _explicit_miss(kind: str, path: Path) -> str:
    if not path.exists():
        return f"{kind}:{quote(path)}: no such file or folder; check the path"
    if NAMED.get(kind, kind) == "idx":
        from mvsearch.data import idx

        return (f"{kind}:{quote(path)}: not an idx dataset folder (missing {', '.join(idx.missing(path))}); "
                f"point it at the folder holding the four idx files")
    from mvsearch.data import cifar

    return f"{kind}:{quote(path)}: {cifar.expected(kind)}"


def _check_resolution(resolution: int) -> int:
    if isinstance(resolution, bool) or not isinstance(resolution, int):
        raise DataError(f"resolution: must be an integer number of pixels, got {shorten(resolution)}")
    if not 8 <= resolution <= MAX_RESOLUTION:
        raise DataError(f"resolution: must be in [8, {MAX_RESOLUTION}] pixels (mvsearch's bound), got {shorten(resolution)}")
    return resolution


def load_data(spec: str, *, resolution: int, cache_dir: str | os.PathLike | None = None,
              download: bool = False, check: Callable[[TensorData], object] | None = None) -> TensorData:
    """The dataset named by ``spec`` as uint8 tensors at ``resolution`` (decoded once, then cached).

    ``download=True`` fetches a named dataset from its official source (checksum-verified) into
    the cache dir when it is not found locally; otherwise nothing is ever downloaded. ``check``
    (e.g. that the split sizes fit the data) runs before a new cache entry is written, so data
    refused for the caller's settings leaves nothing behind.
    """
    resolution = _check_resolution(resolution)
    parsed = parse_spec(spec)
    save = None
    if parsed.kind == "synthetic":
        from mvsearch.data import synthetic

        dec, location, cached = synthetic.decode(synthetic.parse_options(parsed.options), resolution), "", False
    else:
        root = _cache.cache_dir(cache_dir)
        src = _locate(parsed, root, download)
        content = _cache.digest(src.files, src.root)
        entry = _cache.entry_path(root, parsed.name, str(src.location.resolve()), resolution, content)
        dec = _cache.load(entry)
        cached = dec is not None
        if dec is None:
            dec = src.decode(resolution)
            save = entry
        location = str(src.location)
    data = TensorData(
        name=parsed.name, spec=parsed.text,
        train_x=_three_channels(dec.train_x), train_y=dec.train_y,
        test_x=_three_channels(dec.test_x), test_y=dec.test_y,
        num_classes=len(dec.classes), classes=dec.classes, hflip=dec.hflip,
        resolution=resolution, location=location, cached=cached,
    )
    if check is not None:
        check(data)
    if save is not None:
        try:
            _cache.save(save, dec)
        except (OSError, MvsearchError):
            pass  # an unwritable cache (or something not a file in its place) only costs speed next time
    return data


__all__ = ["TensorData", "load_data", "ProxySplit", "proxy_split", "parse_spec", "DataSpec",
           "search_dirs"]
