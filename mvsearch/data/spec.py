"""The data spec string used everywhere (``--data SPEC``, ``data:`` in a space YAML).

=============================  ==================================================================
``fashion-mnist``, ``mnist``   named idx datasets, searched for in standard places (see below)
``cifar10``, ``cifar100``      named CIFAR datasets (the python pickle layout)
``NAME:DIR``                   a named dataset in an explicit folder (e.g. ``cifar10:~/data/c10``)
``idx:DIR``                    MNIST-family idx files, gzipped or raw
``imagefolder:PATH``           ``PATH/{train,val|test}/<class>/*.jpg|png``; PATH a folder or .tar.gz
``npz:FILE``                   ``x_train, y_train, x_test, y_test`` arrays, uint8 NHWC or NCHW
``synthetic[:k=v,...]``        generated task for tests: classes=K, samples=N, size=S, seed=X
=============================  ==================================================================
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

from mvsearch.core.errors import DataError
from mvsearch.core.text import shorten

#: named datasets -> the on-disk format of their files
NAMED = {"fashion-mnist": "idx", "mnist": "idx", "cifar10": "cifar", "cifar100": "cifar"}
#: formats that need a path after the colon
FORMATS = ("idx", "imagefolder", "npz")
KINDS = (*NAMED, *FORMATS, "synthetic")


@dataclass(frozen=True)
class DataSpec:
    """A parsed spec: what kind of source, and where (None: search the standard places)."""

    kind: str  # a NAMED dataset, a FORMAT, or "synthetic"
    path: Path | None  # explicit location, or None
    options: str = ""  # synthetic's option string
    text: str = ""  # the spec as given

    @property
    def name(self) -> str:
        """A short name for tables and cache files: the dataset name, or the source's file name."""
        if self.kind in NAMED or self.kind == "synthetic" or self.path is None:
            return self.kind
        base = self.path.name
        for suffix in (".tar.gz", ".tgz", ".npz"):
            if base.endswith(suffix):
                base = base[: -len(suffix)]
        return base or self.kind


def parse_spec(text: str) -> DataSpec:
    """Parse ``text``; DataError naming the known kinds when it is not a spec."""
    if not isinstance(text, str) or not text.strip():
        raise DataError(f"data spec: expected e.g. fashion-mnist, idx:DIR, imagefolder:PATH; got {shorten(text)}")
    s = text.strip()
    kind, sep, rest = s.partition(":")
    kind = kind.strip().lower()
    if kind not in KINDS:
        hint = difflib.get_close_matches(kind[:100], KINDS, n=1)
        did = f" (did you mean {hint[0]}?)" if hint else ""
        raise DataError(f"unknown dataset {shorten(kind)}{did}; known: {', '.join(KINDS)} "
                        f"(e.g. fashion-mnist, idx:DIR, imagefolder:PATH, npz:FILE, synthetic)")
    if kind == "synthetic":
        return DataSpec(kind, None, rest, s)
    if kind in FORMATS and not rest.strip():
        raise DataError(f"data spec {shorten(s)}: {kind} needs a path, e.g. {kind}:/path/to/data")
    path = Path(rest.strip()).expanduser() if sep and rest.strip() else None
    return DataSpec(kind, path, "", s)
