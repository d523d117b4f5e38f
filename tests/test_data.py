"""mvsearch.data: the spec string and every format reader, on fixtures written here (plus the real
archives in ../shared/data when present). Writers shared with the other data/train tests live here."""
from __future__ import annotations

import gzip
import io
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mvsearch.data import SYSTEM_DIRS, load_data, parse_spec, search_dirs
from mvsearch.data.idx import FASHION_CLASSES
from mvsearch.core.errors import DataError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


# ---------------------------------------------------------------------- fixture writers
def images(n: int, size: int = 8, channels: int = 1, seed: int = 0) -> np.ndarray:
    """uint8 [n, size, size] (channels 1) or [n, size, size, 3], each image a distinct pattern."""
    rng = np.random.default_rng(seed)
    shape = (n, size, size) if channels == 1 else (n, size, size, channels)
    return rng.integers(0, 256, size=shape, dtype=np.uint8)


def idx_bytes(a: np.ndarray) -> bytes:
    head = bytes([0, 0, 0x08, a.ndim]) + b"".join(struct.pack(">i", d) for d in a.shape)
    return head + a.astype(np.uint8).tobytes()


def write_idx(d: Path, n_train: int = 40, n_test: int = 20, size: int = 8, classes: int = 4,
              gz: bool = True, dotted: bool = False, seed: int = 0) -> dict[str, np.ndarray]:
    """Four MNIST-style idx files in ``d``; returns the arrays written."""
    d.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images": images(n_train, size, seed=seed), "train-labels": np.arange(n_train) % classes,
        "t10k-images": images(n_test, size, seed=seed + 1), "t10k-labels": np.arange(n_test) % classes,
    }
    for stem, a in arrays.items():
        kind = "idx3" if "images" in stem else "idx1"
        name = f"{stem}.{kind}-ubyte" if dotted else f"{stem}-{kind}-ubyte"
        raw = idx_bytes(np.asarray(a, dtype=np.uint8))
        if gz:
            (d / f"{name}.gz").write_bytes(gzip.compress(raw))
        else:
            (d / name).write_bytes(raw)
    return arrays


def write_cifar(d: Path, kind: str = "cifar10", per_batch: int = 6, archive: bool = False) -> Path:
    """A tiny CIFAR python layout (pickles as the official ones: protocol 2, bytes keys)."""
    rng = np.random.default_rng(1)
    if kind == "cifar10":
        folder, train, test, meta = "cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], "batches.meta"
        label_key, names = b"labels", {b"label_names": [b"plane", b"car", b"bird"]}
    else:
        folder, train, test, meta = "cifar-100-python", ["train"], ["test"], "meta"
        label_key, names = b"fine_labels", {b"fine_label_names": [b"apple", b"bee", b"cup"]}
    root = d / folder
    root.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(train + test):
        data = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        batch = {b"data": data, label_key: [(i + j) % 3 for j in range(per_batch)], b"batch_label": b"x"}
        (root / name).write_bytes(pickle.dumps(batch, protocol=2))
    (root / meta).write_bytes(pickle.dumps(names, protocol=2))
    if not archive:
        return root
    tgz = d / ("cifar-10-python.tar.gz" if kind == "cifar10" else "cifar-100-python.tar.gz")
    with tarfile.open(tgz, "w:gz") as tar:
        tar.add(root, arcname=folder)
    return tgz


def write_imagefolder(d: Path, classes=("cat", "dog"), per_class: int = 3, size: int = 16,
                      fmt: str = "png", eval_split: str = "val") -> Path:
    rng = np.random.default_rng(2)
    for split, n in (("train", per_class), (eval_split, 2)):
        for c in classes:
            (d / split / c).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                a = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
                Image.fromarray(a).save(d / split / c / f"{i:03d}.{fmt}")
    return d


def tar_of(folder: Path, out: Path) -> Path:
    with tarfile.open(out, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return out


@pytest.fixture
def no_system_dirs(monkeypatch):
    """Named datasets are looked up only where the test says (never the real /usr/share copy)."""
    monkeypatch.setitem(SYSTEM_DIRS, "fashion-mnist", ())
    monkeypatch.delenv("MVSEARCH_DATA", raising=False)


# ---------------------------------------------------------------------- spec strings
def test_spec_parses_kinds_and_paths(tmp_path):
    assert parse_spec("fashion-mnist").kind == "fashion-mnist" and parse_spec("fashion-mnist").path is None
    s = parse_spec(f"cifar10:{tmp_path}")
    assert (s.kind, s.path) == ("cifar10", tmp_path)
    assert parse_spec("imagefolder:/x/imagenette-128.tar.gz").name == "imagenette-128"
    assert parse_spec("synthetic:classes=3").options == "classes=3"


def test_unknown_dataset_lists_known_and_suggests():
    with pytest.raises(DataError, match=r"unknown dataset 'fashion-minst' \(did you mean fashion-mnist\?\); known: .*imagefolder"):
        parse_spec("fashion-minst")


@pytest.mark.parametrize("spec", ["idx", "npz:", "imagefolder:  "])
def test_format_without_path_is_an_error(spec):
    with pytest.raises(DataError, match="needs a path"):
        parse_spec(spec)


# ---------------------------------------------------------------------- idx
@pytest.mark.parametrize("gz,dotted", [(True, False), (False, True), (True, True)])
def test_idx_spellings_gzipped_or_raw(tmp_path, gz, dotted):
    arrays = write_idx(tmp_path / "d", gz=gz, dotted=dotted)
    d = load_data(f"idx:{tmp_path / 'd'}", resolution=8)
    assert d.train_x.shape == (40, 3, 8, 8) and d.train_x.dtype == torch.uint8
    assert d.test_x.shape == (20, 3, 8, 8) and d.num_classes == 4
    # grayscale -> 3 identical channels, the pixels untouched at the native size
    assert torch.equal(d.train_x[:, 0], torch.from_numpy(arrays["train-images"]))
    assert torch.equal(d.train_x[:, 2], d.train_x[:, 0])
    assert d.train_y.tolist() == (np.arange(40) % 4).tolist()
    assert d.hflip is False  # idx holds digits/letters unless named fashion-mnist


def test_idx_resizes_to_the_requested_resolution(tmp_path):
    write_idx(tmp_path / "d")
    d = load_data(f"idx:{tmp_path / 'd'}", resolution=20)
    assert d.train_x.shape == (40, 3, 20, 20)
    # a constant image stays constant through the resize
    (tmp_path / "c").mkdir()
    for stem, a in (("train-images-idx3-ubyte", np.full((4, 8, 8), 77, np.uint8)),
                    ("t10k-images-idx3-ubyte", np.full((2, 8, 8), 77, np.uint8)),
                    ("train-labels-idx1-ubyte", np.array([0, 1, 0, 1], np.uint8)),
                    ("t10k-labels-idx1-ubyte", np.array([0, 1], np.uint8))):
        (tmp_path / "c" / stem).write_bytes(idx_bytes(a))
    c = load_data(f"idx:{tmp_path / 'c'}", resolution=24)
    assert c.train_x.unique().tolist() == [77]


def test_named_fashion_mnist_in_explicit_dir_has_names_and_flip(tmp_path):
    write_idx(tmp_path / "fm", classes=10, n_train=30)
    d = load_data(f"fashion-mnist:{tmp_path / 'fm'}", resolution=8)
    assert d.name == "fashion-mnist" and d.classes == FASHION_CLASSES and d.hflip is True
    assert load_data(f"mnist:{tmp_path / 'fm'}", resolution=8).hflip is False


def test_truncated_idx_names_the_file(tmp_path):
    write_idx(tmp_path / "d", gz=False)
    f = tmp_path / "d" / "train-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:-10])
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte': idx header says .* truncated"):
        load_data(f"idx:{tmp_path / 'd'}", resolution=8)


def test_corrupt_gzip_names_the_file(tmp_path):
    write_idx(tmp_path / "d")
    f = tmp_path / "d" / "t10k-labels-idx1-ubyte.gz"
    f.write_bytes(f.read_bytes()[:12])
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte.gz': corrupt or truncated gzip"):
        load_data(f"idx:{tmp_path / 'd'}", resolution=8)


def test_idx_folder_without_the_files_says_which_are_missing(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "train-images-idx3-ubyte.gz").write_bytes(b"")
    with pytest.raises(DataError, match=r"missing train-labels-idx1-ubyte.gz, t10k-images"):
        load_data(f"idx:{tmp_path / 'd'}", resolution=8)


def test_missing_path_is_one_clear_error(tmp_path):
    with pytest.raises(DataError, match=r"no such file or folder"):
        load_data(f"idx:{tmp_path / 'nope'}", resolution=8)
    with pytest.raises(DataError, match=r"no such file or folder"):
        load_data(f"cifar10:{tmp_path / 'nope'}", resolution=8)


# ---------------------------------------------------------------------- named-dataset search
def test_named_dataset_found_under_mvsearch_data(tmp_path, monkeypatch, no_system_dirs):
    write_idx(tmp_path / "data" / "fashion-mnist", classes=10, n_train=30)
    monkeypatch.setenv("MVSEARCH_DATA", str(tmp_path / "data"))
    d = load_data("fashion-mnist", resolution=8, cache_dir=tmp_path / "cache")
    assert d.location == str(tmp_path / "data" / "fashion-mnist")


def test_named_dataset_found_in_the_cache_dir(tmp_path, no_system_dirs):
    write_idx(tmp_path / "cache" / "mnist")
    d = load_data("mnist", resolution=8, cache_dir=tmp_path / "cache")
    assert d.location == str(tmp_path / "cache" / "mnist") and d.name == "mnist"


def test_named_dataset_not_found_says_where_and_how(tmp_path, no_system_dirs):
    with pytest.raises(DataError) as e:
        load_data("fashion-mnist", resolution=8, cache_dir=tmp_path / "cache")
    msg = str(e.value)
    assert "\n" not in msg and str(tmp_path / "cache" / "fashion-mnist") in msg
    assert "apt-get install dataset-fashion-mnist" in msg and "--download" in msg
    with pytest.raises(DataError, match=r"cifar-10-python.tar.gz from https://www.cs.toronto.edu"):
        load_data("cifar10", resolution=8, cache_dir=tmp_path / "cache")


def test_debian_location_is_searched_for_fashion_mnist(tmp_path):
    assert Path("/usr/share/datasets/fashion-mnist") in search_dirs("fashion-mnist", tmp_path)


# ---------------------------------------------------------------------- CIFAR
@pytest.mark.parametrize("kind", ["cifar10", "cifar100"])
def test_cifar_folder_and_archive_decode_alike(tmp_path, kind):
    root = write_cifar(tmp_path / "a", kind)
    write_cifar(tmp_path / "b", kind, archive=True)
    a = load_data(f"{kind}:{root}", resolution=32)
    parent = load_data(f"{kind}:{tmp_path / 'a'}", resolution=32)  # the parent folder works too
    b = load_data(f"{kind}:{tmp_path / 'b'}", resolution=32)
    per = 5 * 6 if kind == "cifar10" else 6
    assert a.train_x.shape == (per, 3, 32, 32) and a.test_x.shape == (6, 3, 32, 32)
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_y, b.test_y)
    assert torch.equal(a.train_x, parent.train_x)
    assert a.classes == (("plane", "car", "bird") if kind == "cifar10" else ("apple", "bee", "cup"))
    assert a.hflip is True


def test_cifar_rows_are_rgb_planes(tmp_path):
    root = write_cifar(tmp_path, "cifar10")
    raw = pickle.loads((root / "data_batch_1").read_bytes(), encoding="bytes")[b"data"]
    d = load_data(f"cifar10:{root}", resolution=32)
    # row layout: 1024 red values (row-major 32x32), then green, then blue
    assert d.train_x[0, 1, 0, 5] == raw[0, 1024 + 5] and d.train_x[0, 2, 1, 0] == raw[0, 2048 + 32]


def test_cifar_pickle_that_runs_code_is_refused(tmp_path):
    root = write_cifar(tmp_path, "cifar10")

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (root / "test_batch").write_bytes(pickle.dumps({b"data": Evil()}, protocol=2))
    with pytest.raises(DataError, match=r"test_batch: corrupt or not a CIFAR batch .*refusing"):
        load_data(f"cifar10:{root}", resolution=32)


def test_cifar_truncated_archive_is_a_clean_error(tmp_path):
    tgz = write_cifar(tmp_path, "cifar10", archive=True)
    tgz.write_bytes(tgz.read_bytes()[:300])
    with pytest.raises(DataError, match=r"cifar-10-python.tar.gz"):
        load_data(f"cifar10:{tgz}", resolution=32)


def test_cifar_wrong_folder_says_what_is_expected(tmp_path):
    (tmp_path / "x").mkdir()
    with pytest.raises(DataError, match=r"not a cifar10 folder; expected cifar-10-batches-py/"):
        load_data(f"cifar10:{tmp_path / 'x'}", resolution=32)


# ---------------------------------------------------------------------- npz
def _npz(path: Path, xtr, ytr, xte, yte, **extra) -> Path:
    np.savez(path, x_train=xtr, y_train=ytr, x_test=xte, y_test=yte, **extra)
    return path


def test_npz_nhwc_and_nchw_agree(tmp_path):
    x = images(10, 8, channels=3)
    y = np.arange(10) % 2
    a = load_data(f"npz:{_npz(tmp_path / 'a.npz', x, y, x[:4], y[:4])}", resolution=8)
    b = load_data(f"npz:{_npz(tmp_path / 'b.npz', x.transpose(0, 3, 1, 2), y[:, None], x[:4].transpose(0, 3, 1, 2), y[:4])}",
                  resolution=8)
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.train_y, b.train_y)
    assert torch.equal(a.train_x[3], torch.from_numpy(x[3]).permute(2, 0, 1))


def test_npz_grayscale_and_class_names(tmp_path):
    x = images(6, 8)
    p = _npz(tmp_path / "g.npz", x, np.array([0, 1, 2] * 2), x[:3], np.array([0, 1, 2]),
             classes=np.array(["a", "b", "c"]))
    d = load_data(f"npz:{p}", resolution=16)
    assert d.train_x.shape == (6, 3, 16, 16) and d.classes == ("a", "b", "c")


@pytest.mark.parametrize("make,msg", [
    (lambda p: _npz(p, np.zeros((4, 8, 8, 3), np.float32), np.zeros(4, int), np.zeros((2, 8, 8, 3), np.float32), np.zeros(2, int)),
     r"images must be uint8"),
    (lambda p: (np.savez(p, x_train=np.zeros((4, 8, 8), np.uint8)), p)[1], r"missing array\(s\) y_train, x_test, y_test"),
    (lambda p: (p.write_bytes(b"PK\x03\x04 this is not a zip"), p)[1], r"corrupt or not a .npz file"),
    (lambda p: (np.save(open(p, "wb"), np.zeros(3)), p)[1], r"single .npy array"),
    (lambda p: _npz(p, np.zeros((4, 8, 8, 5), np.uint8), np.zeros(4, int), np.zeros((2, 8, 8, 5), np.uint8), np.zeros(2, int)),
     r"expected images \[N, H, W, C\]"),
])
def test_npz_bad_files_name_the_problem(tmp_path, make, msg):
    p = make(tmp_path / "bad.npz")
    with pytest.raises(DataError, match=msg):
        load_data(f"npz:{p}", resolution=8)


def test_npz_pointed_at_a_folder(tmp_path):
    with pytest.raises(DataError, match=r"npz:FILE wants a .npz file"):
        load_data(f"npz:{tmp_path}", resolution=8)


# ---------------------------------------------------------------------- imagefolder
def test_imagefolder_folder_and_archive_decode_alike(tmp_path):
    root = write_imagefolder(tmp_path / "pets")
    a = load_data(f"imagefolder:{root}", resolution=16)
    b = load_data(f"imagefolder:{tar_of(root, tmp_path / 'pets.tar.gz')}", resolution=16)
    assert a.classes == ("cat", "dog") and a.train_x.shape == (6, 3, 16, 16) and a.test_x.shape == (4, 3, 16, 16)
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_y, b.test_y)
    # PNG is lossless and 16 px needs no resize: the pixels are the file's
    png = np.array(Image.open(root / "train" / "dog" / "001.png"))
    assert torch.equal(a.train_x[4], torch.from_numpy(png).permute(2, 0, 1))
    assert a.train_y.tolist() == [0, 0, 0, 1, 1, 1]


def test_imagefolder_one_level_down_and_test_split(tmp_path):
    write_imagefolder(tmp_path / "outer" / "inner", fmt="jpg", eval_split="test")
    d = load_data(f"imagefolder:{tmp_path / 'outer'}", resolution=8)
    assert d.test_x.shape == (4, 3, 8, 8)


def test_imagefolder_non_square_is_centre_cropped(tmp_path):
    for split in ("train", "val"):
        for cls in ("a", "b"):  # two classes: a single one is refused
            (tmp_path / split / cls).mkdir(parents=True)
            a = np.zeros((20, 40, 3), np.uint8)
            a[:, 6:34] = 200  # the centre (and a margin) bright, the sides dark
            Image.fromarray(a).save(tmp_path / split / cls / "x.png")
    d = load_data(f"imagefolder:{tmp_path}", resolution=10)
    assert d.train_x.shape == (2, 3, 10, 10) and int(d.train_x.min()) >= 190


def test_imagefolder_empty_class_folder(tmp_path):
    root = write_imagefolder(tmp_path / "p")
    (root / "train" / "emu").mkdir()
    with pytest.raises(DataError, match=r"train/emu: empty class folder"):
        load_data(f"imagefolder:{root}", resolution=8)
    (root / "train" / "emu").rmdir()
    (root / "val" / "emu").mkdir()
    (root / "val" / "emu" / "a.png").write_bytes((root / "val" / "cat" / "000.png").read_bytes())
    with pytest.raises(DataError, match=r"val/emu: class not in train/"):
        load_data(f"imagefolder:{root}", resolution=8)


def test_imagefolder_empty_class_folder_in_archive(tmp_path):
    root = write_imagefolder(tmp_path / "p")
    (root / "train" / "emu").mkdir()
    with pytest.raises(DataError, match=r"train/emu: empty class folder"):
        load_data(f"imagefolder:{tar_of(root, tmp_path / 'p.tar.gz')}", resolution=8)


def test_imagefolder_corrupt_image_names_the_file(tmp_path):
    root = write_imagefolder(tmp_path / "p", fmt="jpg")
    bad = root / "val" / "dog" / "001.jpg"
    bad.write_bytes(bad.read_bytes()[:40])
    with pytest.raises(DataError, match=r"val/dog/001.jpg: corrupt or truncated image"):
        load_data(f"imagefolder:{root}", resolution=8)


@pytest.mark.parametrize("layout", ["no-train", "no-val"])
def test_imagefolder_wrong_layout(tmp_path, layout):
    root = write_imagefolder(tmp_path / "p")
    if layout == "no-train":
        (root / "train").rename(root / "training")
        match = r"no train/ folder"
    else:
        (root / "val").rename(root / "validation")
        match = r"no val/ or test/ folder"
    with pytest.raises(DataError, match=match):
        load_data(f"imagefolder:{root}", resolution=8)


def test_imagefolder_on_a_plain_file(tmp_path):
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(DataError, match=r"neither a folder nor a .tar.gz"):
        load_data(f"imagefolder:{tmp_path / 'x.txt'}", resolution=8)


# ---------------------------------------------------------------------- synthetic
def test_synthetic_is_deterministic_balanced_and_configurable():
    a = load_data("synthetic:classes=3,samples=60,size=16", resolution=16)
    b = load_data("synthetic:classes=3,samples=60,size=16", resolution=16)
    c = load_data("synthetic:classes=3,samples=60,size=16,seed=1", resolution=16)
    assert torch.equal(a.train_x, b.train_x) and not torch.equal(a.train_x, c.train_x)
    assert a.train_y.bincount().tolist() == [20, 20, 20] and a.num_classes == 3
    assert a.train_x.shape == (60, 3, 16, 16) and len(a.test_y) == 15


@pytest.mark.parametrize("spec,msg", [("synthetic:colours=3", "unknown option"), ("synthetic:classes=x", "must be an integer"),
                                      ("synthetic:classes=1", "classes: must be an integer in 2..100,000, got 1")])
def test_synthetic_bad_options(spec, msg):
    with pytest.raises(DataError, match=msg):
        load_data(spec, resolution=16)


def test_resolution_is_checked():
    with pytest.raises(DataError, match=r"resolution: must be in \[8, 1024\]"):
        load_data("synthetic", resolution=4)


# ---------------------------------------------------------------------- the real archives, when present
@pytest.mark.skipif(not (SHARED / "cifar10-jpg.tar.gz").is_file(), reason="../shared/data/cifar10-jpg.tar.gz absent")
def test_real_cifar10_jpg_archive(tmp_path):
    d = load_data(f"imagefolder:{SHARED / 'cifar10-jpg.tar.gz'}", resolution=32, cache_dir=tmp_path)
    assert d.train_x.shape == (50000, 3, 32, 32) and d.test_x.shape == (10000, 3, 32, 32)
    assert d.train_y.bincount().tolist() == [5000] * 10 and d.test_y.bincount().tolist() == [1000] * 10
    assert d.classes[:2] == ("airplane", "automobile")
    mean = d.train_x.float().mean((0, 2, 3)) / 255  # MANIFEST: about (0.489, 0.481, 0.447)
    assert torch.allclose(mean, torch.tensor([0.489, 0.481, 0.447]), atol=0.03)


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED / "imagenette-128.tar.gz").is_file(), reason="../shared/data/imagenette-128.tar.gz absent")
def test_real_imagenette_archive(tmp_path):
    d = load_data(f"imagefolder:{SHARED / 'imagenette-128.tar.gz'}", resolution=64, cache_dir=tmp_path)
    assert len(d.train_y) == 9469 and len(d.test_y) == 3925 and d.num_classes == 10
    assert all(c.startswith("n") for c in d.classes)


@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz").is_file(),
                    reason="dataset-fashion-mnist not installed")
def test_real_fashion_mnist(tmp_path):
    d = load_data("fashion-mnist", resolution=28, cache_dir=tmp_path)
    assert d.train_x.shape == (60000, 3, 28, 28) and d.test_x.shape == (10000, 3, 28, 28)
    assert d.train_y.bincount().tolist() == [6000] * 10 and d.classes[0] == "T-shirt/top"
