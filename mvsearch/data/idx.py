"""MNIST-family idx files (``idx:DIR``, and the ``mnist`` / ``fashion-mnist`` named datasets).

The idx format (LeCun et al., http://yann.lecun.com/exdb/mnist/): two zero bytes, a type code
(0x08 = unsigned byte), the number of dimensions, the dimensions as big-endian int32, then the
data. Both spellings are accepted (``train-images-idx3-ubyte`` and ``train-images.idx3-ubyte``),
gzipped (``.gz``) or raw.
"""
from __future__ import annotations

import gzip
import re
import zlib
from pathlib import Path

import numpy as np
import torch

from mvsearch.data.base import Decoded, labels, resize_uint8
from mvsearch.core.errors import DataError

FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot")
DIGITS = tuple(str(i) for i in range(10))

# role -> file-name pattern ("train-images-idx3-ubyte", "train-images.idx3-ubyte", optional .gz)
_PATTERNS = {
    "train_x": re.compile(r"^train-images[-.]idx3-ubyte(\.gz)?$"),
    "train_y": re.compile(r"^train-labels[-.]idx1-ubyte(\.gz)?$"),
    "test_x": re.compile(r"^t10k-images[-.]idx3-ubyte(\.gz)?$"),
    "test_y": re.compile(r"^t10k-labels[-.]idx1-ubyte(\.gz)?$"),
}
FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
         "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def find(directory: Path) -> dict[str, Path] | None:
    """The four idx files in ``directory`` (role -> path), or None when any is missing."""
    if not directory.is_dir():
        return None
    names = sorted(p.name for p in directory.iterdir() if p.is_file())
    out = {}
    for role, pat in _PATTERNS.items():
        hits = [n for n in names if pat.match(n)]
        if not hits:
            return None
        hits.sort(key=lambda n: n.endswith(".gz"))  # prefer the raw file when both exist
        out[role] = directory / hits[0]
    return out


def missing(directory: Path) -> list[str]:
    """Human names of the idx files missing from ``directory``."""
    names = [p.name for p in directory.iterdir()] if directory.is_dir() else []
    return [FILES[i] for i, pat in enumerate(_PATTERNS.values()) if not any(pat.match(n) for n in names)]


def read_idx(path: Path) -> np.ndarray:
    """One idx file as a uint8 array of its declared shape; DataError naming the file if corrupt."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: corrupt or truncated gzip file ({exc}); re-download it") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{path}: not an idx file (bad magic number); expected MNIST-style idx data")
    if raw[2] != 0x08:
        raise DataError(f"{path}: idx type code 0x{raw[2]:02x} is not supported (only unsigned bytes, 0x08)")
    ndim = raw[3]
    head = 4 + 4 * ndim
    if ndim == 0 or len(raw) < head:
        raise DataError(f"{path}: truncated idx header; re-download it")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4))
    size = int(np.prod(dims))
    if len(raw) - head != size:
        raise DataError(f"{path}: idx header says {size} bytes of data for shape {dims}, file has "
                        f"{len(raw) - head}; the file is truncated or corrupt, re-download it")
    return np.frombuffer(raw, dtype=np.uint8, offset=head).reshape(dims)


def _images(path: Path) -> np.ndarray:
    a = read_idx(path)
    if a.ndim != 3:
        raise DataError(f"{path}: expected images [N, H, W], got an idx array of shape {a.shape}")
    return a[:, None]  # [N, H, W] -> [N, 1, H, W]


def _labels(path: Path, n: int) -> torch.Tensor:
    a = read_idx(path)
    if a.ndim != 1 or len(a) != n:
        raise DataError(f"{path}: expected {n} labels, got an idx array of shape {a.shape}")
    return labels(a)


def decode(files: dict[str, Path], resolution: int, *, classes: tuple[str, ...] | None = None,
           hflip: bool = False) -> Decoded:
    """Decode the four idx files to tensors at ``resolution``."""
    train_x, test_x = _images(files["train_x"]), _images(files["test_x"])
    train_y, test_y = _labels(files["train_y"], len(train_x)), _labels(files["test_y"], len(test_x))
    if classes is None:
        k = int(max(train_y.max(), test_y.max())) + 1
        classes = tuple(str(i) for i in range(k))
    return Decoded(resize_uint8(train_x, resolution), train_y, resize_uint8(test_x, resolution),
                   test_y, tuple(classes), hflip).check(str(files["train_x"].parent))
