"""``npz:FILE``: a NumPy ``.npz`` with ``x_train, y_train, x_test, y_test`` (Keras' layout).

Images are uint8, NHWC (``[N, H, W, C]``, Keras) or NCHW (``[N, C, H, W]``), C = 1 or 3, or
``[N, H, W]`` grayscale; labels are integers ``[N]`` or ``[N, 1]``. An optional ``classes`` array
names the classes. Loaded with ``allow_pickle=False``. Horizontal flips are assumed to be valid.
"""
from __future__ import annotations

import math
import zipfile
import zlib
from pathlib import Path

import numpy as np

from mvsearch.core.errors import DataError, first_line
from mvsearch.core.limits import MAX_CLASSES, MAX_DATA_BYTES
from mvsearch.core.text import printable, quote
from mvsearch.data.base import Decoded, check_decoded_bytes, check_images, check_labels, labels, resize_uint8

KEYS = ("x_train", "y_train", "x_test", "y_test")


def to_nchw(x: np.ndarray, where: str) -> np.ndarray:
    """uint8 images in any supported layout -> ``[N, C, H, W]``."""
    if x.dtype != np.uint8:
        raise DataError(f"{where}: images must be uint8 (0..255), got {x.dtype}; convert with "
                        f"(x * 255).round().astype('uint8')")
    if x.ndim == 3:
        return x[:, None]  # [N, H, W] -> [N, 1, H, W]
    if x.ndim == 4:
        if x.shape[3] in (1, 3):  # NHWC (Keras' default); checked first
            return x.transpose(0, 3, 1, 2)
        if x.shape[1] in (1, 3):
            return x
    raise DataError(f"{where}: expected images [N, H, W, C] or [N, C, H, W] with C = 1 or 3, "
                    f"got shape {list(x.shape)}")


def _declared(f: np.lib.npyio.NpzFile, key: str) -> tuple[tuple[int, ...], np.dtype]:
    """An array's shape and dtype from its .npy header, without reading (or inflating) its data."""
    with f.zip.open(f"{key}.npy") as member:
        version = np.lib.format.read_magic(member)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read(member)
    return tuple(shape), dtype


def decode(path: Path, resolution: int) -> Decoded:
    where = quote(path)
    try:
        f = np.load(path, allow_pickle=False)
        if not isinstance(f, np.lib.npyio.NpzFile):
            raise DataError(f"{where}: a single .npy array, not an .npz archive; save the four arrays "
                            f"with numpy.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)")
        with f:
            missing = [k for k in KEYS if k not in f.files]
            if missing:
                raise DataError(f"{where}: missing array(s) {', '.join(missing)} (has: "
                                f"{printable(', '.join(f.files))[:200] or 'none'}); expected {', '.join(KEYS)}")
            total = 0
            for k in (*KEYS, "classes"):
                if k in f.files:
                    shape, dtype = _declared(f, k)
                    total += math.prod(shape) * dtype.itemsize
            if total > MAX_DATA_BYTES:
                raise DataError(f"{where}: its arrays declare {total / 2**30:.1f} GiB, over mvsearch's bound of "
                                f"{MAX_DATA_BYTES / 2**30:.0f} GiB")
            arrays = {k: f[k] for k in KEYS}
            names = f["classes"] if "classes" in f.files else None
    except DataError:
        raise
    except (zipfile.BadZipFile, zlib.error, ValueError, OSError, EOFError, KeyError) as exc:
        if "pickle" in str(exc):  # numpy's own advice (allow_pickle=True) is not one to follow here
            raise DataError(f"{where}: corrupt or not a .npz file (neither a zip of .npy arrays nor a .npy; a "
                            f"pickle is never loaded); re-create it with numpy.savez") from None
        raise DataError(f"{where}: corrupt or not a .npz file ({first_line(exc)}); re-create it with "
                        f"numpy.savez") from None
    out = {}
    for split in ("train", "test"):
        x = to_nchw(arrays[f"x_{split}"], f"{where} x_{split}")
        check_images(x.shape, where, split)
        y = np.asarray(arrays[f"y_{split}"]).reshape(-1)
        if not np.issubdtype(y.dtype, np.integer):
            raise DataError(f"{where}: y_{split} must hold integer labels, got {y.dtype}")
        check_labels(y, where, split)
        out[split] = (x, y)
    check_decoded_bytes(len(out["train"][0]) + len(out["test"][0]), out["train"][0].shape[1], resolution, where)
    k = int(max(out["train"][1].max(initial=0), out["test"][1].max(initial=0))) + 1
    if names is not None and (names.ndim != 1 or len(names) > MAX_CLASSES):
        raise DataError(f"{where}: 'classes' must be a list of at most {MAX_CLASSES:,} names, got shape {names.shape}")
    classes = tuple(str(c) for c in names) if names is not None else tuple(str(i) for i in range(k))
    if len(classes) < k:
        raise DataError(f"{where}: 'classes' names {len(classes)} classes but labels go up to {k - 1}")
    (tx, ty), (vx, vy) = out["train"], out["test"]
    return Decoded(resize_uint8(tx, resolution), labels(ty), resize_uint8(vx, resolution), labels(vy),
                   classes, hflip=True).check(where)
