"""``imagefolder:PATH``: ``PATH/{train, val|test}/<class>/*.jpg|jpeg|png`` (torchvision's layout).

PATH is a folder or a ``.tar.gz`` / ``.tgz`` / ``.tar`` of one (read directly, no extraction); a
single top-level folder inside either is descended into. Class names are the ``train`` sub-folder
names, sorted; the evaluation split is ``test`` when present, else ``val``. Images are decoded with
Pillow, converted to RGB, resized so the shorter side is R (antialiased) and centre-cropped to RxR.
"""
from __future__ import annotations

import io
import tarfile
import warnings
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from mvsearch.core.errors import DataError, first_line
from mvsearch.core.limits import MAX_DATA_BYTES, MAX_MEMBER_BYTES
from mvsearch.core.text import printable, quote
from mvsearch.data.base import Decoded, check_decoded_bytes

EXTENSIONS = (".jpg", ".jpeg", ".png")
ARCHIVES = (".tar.gz", ".tgz", ".tar")
EVAL_SPLITS = ("test", "val")
LAYOUT_HINT = "expected PATH/train/<class>/*.jpg|png and PATH/val/<class>/... (or test/)"


def is_archive(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(ARCHIVES)


def _is_image(name: str) -> bool:
    return name.lower().endswith(EXTENSIONS) and not name.startswith(".")


# ---------------------------------------------------------------------- folders
def _root(path: Path) -> Path:
    if (path / "train").is_dir():
        return path
    subs = [p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")] if path.is_dir() else []
    if len(subs) == 1 and (subs[0] / "train").is_dir():
        return subs[0]
    raise DataError(f"imagefolder:{path}: no train/ folder; {LAYOUT_HINT}")


def _eval_split(root: Path, where: str) -> str:
    for s in EVAL_SPLITS:
        if (root / s).is_dir():
            return s
    raise DataError(f"imagefolder:{where}: no val/ or test/ folder next to train/; {LAYOUT_HINT}")


def _listing(root: Path, where: str) -> dict[str, dict[str, list[Path]]]:
    """split -> class -> sorted image files."""
    out: dict[str, dict[str, list[Path]]] = {}
    for split in ("train", _eval_split(root, where)):
        classes = {}
        for d in sorted(p for p in (root / split).iterdir() if p.is_dir() and not p.name.startswith(".")):
            classes[d.name] = sorted(p for p in d.iterdir() if p.is_file() and _is_image(p.name))
        out[split] = classes
    return out


def source_files(path: Path) -> tuple[list[Path], Path | None]:
    """The files whose content defines the dataset (and the root to hash their paths against)."""
    if is_archive(path):
        return [path], None
    if not path.is_dir():
        raise DataError(f"imagefolder:{path}: neither a folder nor a .tar.gz/.tgz/.tar archive")
    root = _root(path)
    listing = _check(_listing(root, str(path)), str(root))
    return [f for split in listing.values() for files in split.values() for f in files], root


# ---------------------------------------------------------------------- archives
def _archive_listing(path: Path) -> dict[str, dict[str, list[tuple[str, bytes]]]]:
    """Read every image of the archive: split -> class -> [(member name, bytes)]."""
    found: dict[tuple[str, ...], list[tuple[str, bytes]]] = {}
    total = 0
    try:
        with tarfile.open(path, "r:*") as tar:
            for m in tar:
                parts = PurePosixPath(m.name).parts
                if m.isdir() and len(parts) >= 2 and parts[-2] in ("train", *EVAL_SPLITS):
                    found.setdefault(parts, [])  # an (empty) class folder
                if not (m.isfile() and _is_image(parts[-1]) and len(parts) >= 3):
                    continue
                total += m.size
                if m.size > MAX_MEMBER_BYTES or total > MAX_DATA_BYTES:
                    raise DataError(f"{quote(path)}: {printable(m.name)[:100]!r} takes the archive's images past "
                                    f"mvsearch's bound ({MAX_MEMBER_BYTES // 2**20} MiB an image, "
                                    f"{MAX_DATA_BYTES // 2**30} GiB in all)")
                f = tar.extractfile(m)
                found.setdefault(parts[:-1], []).append((m.name, f.read() if f else b""))
    except DataError:
        raise
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise DataError(f"{quote(path)}: corrupt or truncated archive ({first_line(exc)}); re-create or re-download "
                        f"it") from None
    # the root is the shortest prefix P with P/train/<class>/
    prefixes = sorted({k[:-2] for k in found if len(k) >= 2 and k[-2] == "train"}, key=len)
    if not prefixes:
        raise DataError(f"imagefolder:{path}: no train/<class>/ folders in the archive; {LAYOUT_HINT}")
    pre = prefixes[0]
    splits = {k[len(pre)] for k in found if len(k) == len(pre) + 2 and k[:len(pre)] == pre}
    ev = next((s for s in EVAL_SPLITS if s in splits), None)
    if ev is None:
        raise DataError(f"imagefolder:{path}: no val/ or test/ folder next to train/; {LAYOUT_HINT}")
    out: dict[str, dict[str, list[tuple[str, bytes]]]] = {"train": {}, ev: {}}
    for k in sorted(found):
        if len(k) == len(pre) + 2 and k[:len(pre)] == pre and k[-2] in out:
            out[k[-2]][k[-1]] = sorted(found[k])
    return out


# ---------------------------------------------------------------------- decoding
def _check(listing: dict, where: str) -> dict:
    train = listing["train"]
    if not train:
        raise DataError(f"imagefolder:{where}: train/ has no class folders; {LAYOUT_HINT}")
    if len(train) < 2:
        raise DataError(f"imagefolder:{where}: train/ has a single class folder ({printable(next(iter(train)))!r}); a "
                        f"classifier needs at least 2 classes (with one, every accuracy is 100%)")
    for split, classes in listing.items():
        for name, files in classes.items():
            if not files:
                raise DataError(f"imagefolder:{where}/{split}/{name}: empty class folder (no "
                                f"{'/'.join(EXTENSIONS)} images); add images or remove the folder")
            if name not in train:
                raise DataError(f"imagefolder:{where}/{split}/{name}: class not in train/ "
                                f"(train has {', '.join(train)})")
    return listing


def load_image(source: Path | bytes, resolution: int, where: str) -> np.ndarray:
    """One image -> uint8 ``[3, R, R]``: RGB, shorter side resized to R, centre crop."""
    try:
        img = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
        img.draft("RGB", (resolution, resolution))  # JPEG: decode at a reduced scale when large
        img = img.convert("RGB")
        w, h = img.size
        s = resolution / min(w, h)
        nw, nh = max(resolution, round(w * s)), max(resolution, round(h * s))
        if (nw, nh) != (w, h):
            img = img.resize((nw, nh), Image.BILINEAR)  # Pillow antialiases when shrinking
        left, top = (nw - resolution) // 2, (nh - resolution) // 2
        img = img.crop((left, top, left + resolution, top + resolution))
        a = np.asarray(img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as exc:
        raise DataError(f"{where}: corrupt or truncated image ({exc}); fix or remove it") from None
    return a.transpose(2, 0, 1)  # [R, R, 3] -> [3, R, R]


def _decode_split(items: list[tuple[Path | bytes, str, int]], resolution: int, workers: int) -> tuple[torch.Tensor, torch.Tensor]:
    x = np.empty((len(items), 3, resolution, resolution), dtype=np.uint8)  # [N, 3, R, R]

    def one(i: int) -> None:
        src, where, _ = items[i]
        x[i] = load_image(src, resolution, where)

    with ThreadPoolExecutor(max_workers=workers) as pool:  # Pillow releases the GIL while decoding
        list(pool.map(one, range(len(items)), chunksize=64))
    y = torch.tensor([label for _, _, label in items], dtype=torch.int64)
    return torch.from_numpy(x), y


def decode(path: Path, resolution: int, workers: int | None = None) -> Decoded:
    from mvsearch.core.runtime import usable_cpus

    workers = workers or min(8, usable_cpus())
    if is_archive(path):
        listing = _check(_archive_listing(path), str(path))
        where = lambda name: f"{path}:{name}"  # noqa: E731
        items_of = lambda files: [(data, where(name)) for name, data in files]  # noqa: E731
    else:
        root = _root(path)
        listing = _check(_listing(root, str(path)), str(root))
        items_of = lambda files: [(f, str(f)) for f in files]  # noqa: E731
    classes = tuple(listing["train"])
    index = {c: i for i, c in enumerate(classes)}
    images = sum(len(files) for split in listing.values() for files in split.values())
    check_decoded_bytes(images, 3, resolution, f"imagefolder:{path}")
    splits = []
    with warnings.catch_warnings():  # an image larger than Pillow's bomb limit: an error, not a warning line
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        for split in listing:
            items = [(src, where, index[c]) for c, files in listing[split].items() for src, where in items_of(files)]
            splits.append(_decode_split(items, resolution, workers))
    (tx, ty), (vx, vy) = splits
    return Decoded(tx, ty, vx, vy, classes, hflip=True).check(str(path))
