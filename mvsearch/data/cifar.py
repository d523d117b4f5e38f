"""CIFAR-10 / CIFAR-100 in the official python pickle layout (``cifar10:DIR``, ``cifar100:DIR``).

Krizhevsky (2009), https://www.cs.toronto.edu/~kriz/cifar.html. DIR may be the extracted folder
(``cifar-10-batches-py/``: data_batch_1..5, test_batch, batches.meta; ``cifar-100-python/``: train,
test, meta), its parent, or hold the downloaded ``.tar.gz`` (read directly, no extraction). Each
batch is a pickled dict whose ``data`` is uint8 ``[N, 3072]`` (1024 R, then G, then B, row-major).
Pickles are read with an unpickler that admits only numpy arrays, so a hostile file cannot run code.
"""
from __future__ import annotations

import io
import pickle
import tarfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from mvsearch.data.base import Decoded, labels, resize_uint8
from mvsearch.core.errors import DataError
from mvsearch.core.limits import MAX_MEMBER_BYTES

LAYOUT = {
    "cifar10": {"folder": "cifar-10-batches-py", "archive": "cifar-10-python.tar.gz",
                "train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"],
                "meta": "batches.meta", "label_key": "labels", "names_key": "label_names"},
    "cifar100": {"folder": "cifar-100-python", "archive": "cifar-100-python.tar.gz",
                 "train": ["train"], "test": ["test"], "meta": "meta",
                 "label_key": "fine_labels", "names_key": "fine_label_names"},
}

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _files(kind: str) -> list[str]:
    lay = LAYOUT[kind]
    return [*lay["train"], *lay["test"], lay["meta"]]


def expected(kind: str) -> str:
    lay = LAYOUT[kind]
    return (f"not a {kind} folder; expected {lay['folder']}/ ({', '.join(_files(kind))}) or "
            f"{lay['archive']} in it (from https://www.cs.toronto.edu/~kriz/cifar.html)")


def find(path: Path, kind: str) -> Path | None:
    """The extracted folder or the archive holding ``kind`` at ``path``, or None."""
    lay = LAYOUT[kind]
    if path.is_file():
        return path if path.name.endswith((".tar.gz", ".tgz")) else None
    for d in (path, path / lay["folder"]):
        if d.is_dir() and all((d / f).is_file() for f in _files(kind)):
            return d
    archive = path / lay["archive"]
    return archive if archive.is_file() else None


def source_files(found: Path, kind: str) -> list[Path]:
    return [found] if found.is_file() else [found / f for f in _files(kind)]


def _unpickle(raw: bytes, where: str) -> dict:
    try:
        obj = _NumpyOnlyUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as exc:  # truncated or foreign pickles raise many kinds of errors
        raise DataError(f"{where}: corrupt or not a CIFAR batch ({type(exc).__name__}: {exc}); "
                        f"re-download it") from None
    if not isinstance(obj, dict):
        raise DataError(f"{where}: not a CIFAR batch (a {type(obj).__name__}, not a dict)")
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in obj.items()}


def _read_all(found: Path, kind: str) -> dict[str, tuple[dict, str]]:
    """name -> (unpickled dict, where it came from) for every file of the layout."""
    wanted = set(_files(kind))
    if found.is_dir():
        out = {}
        for name in wanted:
            p = found / name
            try:
                out[name] = (_unpickle(p.read_bytes(), str(p)), str(p))
            except OSError as exc:
                raise DataError(f"{p}: cannot read ({exc.strerror})") from None
        return out
    raws: dict[str, tuple[bytes, str]] = {}
    try:
        with tarfile.open(found, "r:*") as tar:
            for m in tar:
                base = m.name.rsplit("/", 1)[-1]
                if m.isfile() and base in wanted and base not in raws:
                    if m.size > MAX_MEMBER_BYTES:
                        raise DataError(f"{found}:{m.name}: {m.size / 2**20:.0f} MiB exceeds mvsearch's bound of "
                                        f"{MAX_MEMBER_BYTES // 2**20} MiB for a CIFAR batch; re-download it")
                    f = tar.extractfile(m)
                    raws[base] = (f.read() if f else b"", f"{found}:{m.name}")
    except DataError:
        raise
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise DataError(f"{found}: corrupt or truncated archive ({exc}); re-download it") from None
    missing = sorted(wanted - raws.keys())
    if missing:
        raise DataError(f"{found}: archive lacks {', '.join(missing)}; {expected(kind)}")
    return {k: (_unpickle(raw, where), where) for k, (raw, where) in raws.items()}


def _batch(d: dict, where: str, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    if "data" not in d or label_key not in d:
        raise DataError(f"{where}: CIFAR batch lacks 'data' or {label_key!r}")
    try:
        x = np.asarray(d["data"])
        y = np.asarray(d[label_key], dtype=np.int64)
    except (ValueError, TypeError, OverflowError) as exc:
        raise DataError(f"{where}: CIFAR batch holds unreadable data or labels ({type(exc).__name__}); re-download it") from None
    if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3072 or len(x) != len(y):
        raise DataError(f"{where}: expected uint8 data [N, 3072] and N labels, got {x.dtype} "
                        f"{list(x.shape)} and {len(y)} labels")
    return x.reshape(-1, 3, 32, 32), y  # [N, 3072] -> [N, 3, 32, 32] (R, G, B planes)


def decode(found: Path, kind: str, resolution: int) -> Decoded:
    lay = LAYOUT[kind]
    batches = _read_all(found, kind)
    parts = {}
    for split in ("train", "test"):
        xs, ys = zip(*(_batch(*batches[n], lay["label_key"]) for n in lay[split]))
        parts[split] = (np.concatenate(xs), np.concatenate(ys))
    meta, where = batches[lay["meta"]]
    names = meta.get(lay["names_key"])
    if not isinstance(names, (list, tuple)) or not names:
        raise DataError(f"{where}: meta lacks {lay['names_key']!r}")
    classes = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)
    (tx, ty), (vx, vy) = parts["train"], parts["test"]
    return Decoded(resize_uint8(tx, resolution), labels(ty), resize_uint8(vx, resolution), labels(vy),
                   classes, hflip=True).check(str(found))
