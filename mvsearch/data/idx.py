"""MNIST-family idx files (``idx:DIR``, and the ``mnist`` / ``fashion-mnist`` named datasets).

The idx format (LeCun et al., http://yann.lecun.com/exdb/mnist/): two zero bytes, a type code
(0x08 = unsigned byte), the number of dimensions, the dimensions as big-endian int32, then the
data. Both spellings are accepted (``train-images-idx3-ubyte`` and ``train-images.idx3-ubyte``),
gzipped (``.gz``) or raw.
"""
from __future__ import annotations

import gzip
import math
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from mvsearch.core.errors import DataError, first_line
from mvsearch.core.limits import MAX_DATA_BYTES
from mvsearch.core.text import quote
from mvsearch.data.base import Decoded, check_decoded_bytes, labels, resize_uint8

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
    """One idx file as a uint8 array of its declared shape; DataError naming the file if corrupt.

    The header is read first and the data only as far as it declares (at most
    :data:`~mvsearch.core.limits.MAX_DATA_BYTES`), so a small gzip file that would inflate to
    gigabytes, or a header with a negative or zero size, is refused before anything is allocated.
    """
    where = quote(path)
    try:
        with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as f:
            head = f.read(4)
            if len(head) < 4 or head[0] != 0 or head[1] != 0:
                raise DataError(f"{where}: not an idx file (bad magic number); expected MNIST-style idx data")
            if head[2] != 0x08:
                raise DataError(f"{where}: idx type code 0x{head[2]:02x} is not supported (only unsigned bytes, 0x08)")
            ndim = head[3]
            raw_dims = f.read(4 * ndim)
            if ndim == 0 or len(raw_dims) < 4 * ndim:
                raise DataError(f"{where}: truncated idx header; re-download it")
            dims = struct.unpack(f">{ndim}i", raw_dims)
            if min(dims) < 1:
                raise DataError(f"{where}: idx dimensions must be positive, got {list(dims)}; the file is corrupt "
                                f"or holds no images")
            size = math.prod(dims)
            if size > MAX_DATA_BYTES:
                raise DataError(f"{where}: idx header declares {size / 2**30:.1f} GiB of data (shape {list(dims)}), "
                                f"over mvsearch's bound of {MAX_DATA_BYTES / 2**30:.0f} GiB")
            data = f.read(size + 1)
    except DataError:
        raise
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{where}: corrupt or truncated gzip file ({first_line(exc)}); re-download it") from None
    if len(data) != size:
        more = "more" if len(data) > size else f"{len(data)}"
        raise DataError(f"{where}: idx header says {size} bytes of data for shape {dims}, file has "
                        f"{more}; the file is truncated or corrupt, re-download it")
    return np.frombuffer(data, dtype=np.uint8).reshape(dims)


def _images(path: Path) -> np.ndarray:
    a = read_idx(path)
    if a.ndim != 3:
        raise DataError(f"{quote(path)}: expected images [N, H, W], got an idx array of shape {a.shape}")
    return a[:, None]  # [N, H, W] -> [N, 1, H, W]


def _labels(path: Path, n: int) -> torch.Tensor:
    a = read_idx(path)
    if a.ndim != 1 or len(a) != n:
        raise DataError(f"{quote(path)}: expected {n} labels, got an idx array of shape {a.shape}")
    return labels(a)


def decode(files: dict[str, Path], resolution: int, *, classes: tuple[str, ...] | None = None,
           hflip: bool = False) -> Decoded:
    """Decode the four idx files to tensors at ``resolution``."""
    train_x, test_x = _images(files["train_x"]), _images(files["test_x"])
    check_decoded_bytes(len(train_x) + len(test_x), 1, resolution, quote(files["train_x"].parent))
    train_y, test_y = _labels(files["train_y"], len(train_x)), _labels(files["test_y"], len(test_x))
    if classes is None:
        k = int(max(train_y.max(), test_y.max())) + 1
        classes = tuple(str(i) for i in range(k))
    return Decoded(resize_uint8(train_x, resolution), train_y, resize_uint8(test_x, resolution),
                   test_y, tuple(classes), hflip).check(str(files["train_x"].parent))
