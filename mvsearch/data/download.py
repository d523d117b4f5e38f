"""``--download``: fetch a named dataset from its official source, checksum-verified.

Only ever called when the user passes ``--download`` (``load_data(..., download=True)``). Files go
to ``<cache dir>/<name>/``, are streamed to a hidden ``.part`` file beside the target
(:func:`mvsearch.core.atomic.atomic_path`), hashed on the way, and renamed into place only when
the checksum matches, so an interrupted or corrupted download leaves nothing that could later be
mistaken for the dataset. ``$MVSEARCH_MIRROR`` (a base URL) replaces the official
host, for mirrors and for tests (a local HTTP server on loopback).
"""
from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from mvsearch.core.atomic import atomic_path
from mvsearch.core.errors import DataError


@dataclass(frozen=True)
class Remote:
    """One file of a dataset's official distribution."""

    url: str  # official URL
    filename: str  # name on disk
    checksum: str  # hex digest published for it
    algorithm: str = "md5"  # hashlib name of the checksum


_FASHION = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
_MNIST = "https://ossci-datasets.s3.amazonaws.com/mnist/"  # torchvision's mirror of LeCun's files
_CIFAR = "https://www.cs.toronto.edu/~kriz/"

#: name -> files (checksums as published by the dataset authors / torchvision)
SOURCES: dict[str, tuple[Remote, ...]] = {
    "fashion-mnist": (
        Remote(_FASHION + "train-images-idx3-ubyte.gz", "train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
        Remote(_FASHION + "train-labels-idx1-ubyte.gz", "train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
        Remote(_FASHION + "t10k-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
        Remote(_FASHION + "t10k-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"),
    ),
    "mnist": (
        Remote(_MNIST + "train-images-idx3-ubyte.gz", "train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
        Remote(_MNIST + "train-labels-idx1-ubyte.gz", "train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
        Remote(_MNIST + "t10k-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
        Remote(_MNIST + "t10k-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
    ),
    "cifar10": (
        Remote(_CIFAR + "cifar-10-python.tar.gz", "cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a"),
    ),
    "cifar100": (
        Remote(_CIFAR + "cifar-100-python.tar.gz", "cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85"),
    ),
}

_CHUNK = 1 << 20


def url_of(remote: Remote) -> str:
    mirror = os.environ.get("MVSEARCH_MIRROR")
    return mirror.rstrip("/") + "/" + remote.filename if mirror else remote.url


def file_checksum(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _get(remote: Remote, target: Path, timeout: float) -> None:
    url = url_of(remote)
    h = hashlib.new(remote.algorithm)
    with atomic_path(target) as part:  # lands only if the block ends cleanly: checksum verified
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp, open(part, "wb") as out:
                while chunk := resp.read(_CHUNK):
                    h.update(chunk)
                    out.write(chunk)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise DataError(f"cannot download {url} ({reason}); check the network, or fetch it by hand "
                            f"into {target.parent}") from None
        got = h.hexdigest()
        if got != remote.checksum:
            raise DataError(f"{url}: {remote.algorithm} checksum mismatch (expected {remote.checksum}, got "
                            f"{got}); the download is corrupt or the source changed, nothing was kept")


def fetch(name: str, directory: Path, *, timeout: float = 60.0) -> Path:
    """Download ``name``'s files into ``directory`` (skipping ones already there and verified)."""
    if name not in SOURCES:
        raise DataError(f"{name}: no official download known; known: {', '.join(SOURCES)}")
    directory.mkdir(parents=True, exist_ok=True)
    for remote in SOURCES[name]:
        target = directory / remote.filename
        if target.is_file() and file_checksum(target, remote.algorithm) == remote.checksum:
            continue
        _get(remote, target, timeout)
    return directory
