"""The decoded-tensor cache: decode once, then load tensors (memory-mapped) in well under a second.

An entry is keyed by the *content* of the source files (SHA-256 over every byte, plus relative
paths for folders), the resolution and the decoder version, so a changed dataset is re-decoded and
a renamed or moved one is not. Entries are written atomically (:mod:`mvsearch.core.atomic`: a
temporary file in the same folder, then one rename), so a crash or a corrupt input never leaves a
half-written entry; a superseded entry for the same source location is removed after the new one lands.

Default folder: ``$MVSEARCH_CACHE`` or ``~/.cache/mvsearch`` (tensors under ``tensors/``,
downloads under ``<name>/``).
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Iterable

import torch

from mvsearch.core.atomic import atomic_path
from mvsearch.core.errors import DataError
from mvsearch.data.base import Decoded

#: bump when a decoder's output changes, so old entries are ignored
DECODER_VERSION = 1
_CHUNK = 1 << 20


def cache_dir(explicit: str | os.PathLike | None = None) -> Path:
    """``explicit``, else ``$MVSEARCH_CACHE``, else ``~/.cache/mvsearch``."""
    if explicit is not None:
        return Path(explicit).expanduser()
    env = os.environ.get("MVSEARCH_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "mvsearch"


def digest(paths: Iterable[Path], root: Path | None = None) -> str:
    """SHA-256 of the files' contents (and their paths relative to ``root``), in the given order."""
    h = hashlib.sha256()
    for p in paths:
        if root is not None:
            h.update(str(p.relative_to(root)).encode() + b"\0")
        try:
            with open(p, "rb") as f:
                while chunk := f.read(_CHUNK):
                    h.update(chunk)
        except OSError as exc:
            raise DataError(f"{p}: cannot read ({exc.strerror})") from None
        h.update(b"\1")
    return h.hexdigest()


def entry_path(root: Path, name: str, location: str, resolution: int, content: str) -> Path:
    """``<root>/tensors/<name>-<where>-r<R>-<content>.pt``; <where> tells source locations apart."""
    where = hashlib.sha256(location.encode()).hexdigest()[:8]
    key = hashlib.sha256(f"{content}|{resolution}|v{DECODER_VERSION}".encode()).hexdigest()[:20]
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)[:40]
    return root / "tensors" / f"{safe}-{where}-r{resolution}-{key}.pt"


def load(path: Path) -> Decoded | None:
    """The cached entry at ``path``, or None when absent or unreadable (it is then re-decoded)."""
    if not path.is_file():
        return None
    try:
        d = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
        return Decoded(d["train_x"], d["train_y"], d["test_x"], d["test_y"],
                       tuple(d["classes"]), bool(d["hflip"]))
    except Exception:  # a damaged entry is a cache miss, never an error
        return None


def save(path: Path, data: Decoded) -> None:
    """Write ``data`` atomically to ``path`` and drop superseded entries for the same source."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save({"train_x": data.train_x.contiguous(), "train_y": data.train_y,
                    "test_x": data.test_x.contiguous(), "test_y": data.test_y,
                    "classes": list(data.classes), "hflip": data.hflip}, tmp)
    stem = path.name.rsplit("-", 1)[0]  # same name, location and resolution, other content
    for old in path.parent.glob(f"{stem}-*.pt"):
        if old != path:
            old.unlink(missing_ok=True)
