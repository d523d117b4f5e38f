"""The catalogue of bad input: every command, as a hostile user would call it.

The README promises that bad input gets one line on stderr starting ``error:``, exit code 2, no
traceback, and that nothing is written or changed. Each case below runs one command line against
a folder of fixtures this module generates (architecture and space files, datasets, study
databases, another program's SQLite file) and checks exactly that: exit code 2, one stderr line
``error: ...`` (never an internal error or an out-of-memory), no traceback, and every file and
folder under the fixture folder byte-identical afterwards (the data cache included: it lives there).

Most cases run in-process (click's CliRunner). Those that, without their bound, would eat memory
or time (a 10^5 resolution, 10^12 samples, an alias bomb, a 10^9 range) run as real processes
under a 4 GiB address-space limit (``RLIMIT_AS``) and a timeout, so a missing bound fails its test
instead of killing the suite.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import resource
import sqlite3
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import optuna
import pytest
from click.testing import CliRunner
from PIL import Image

from mvsearch.arch.presets import get_preset
from mvsearch.cli.main import main
from mvsearch.cost.analytic import analytic_cost
from mvsearch.space.loader import parse_space, shipped_spaces
from tests._studies import make_study

MEMORY_LIMIT = 4 * 2**30  # RLIMIT_AS of the heavy cases: torch and Optuna load in ~1 GiB
HEAVY_TIMEOUT = 180
BIG = "9" * 5000  # Python's int() refuses more than 4,300 digits with a traceback of its own


# ---------------------------------------------------------------------- fixture files
def _tiny() -> str:
    return (shipped_spaces() / "tiny.yaml").read_text(encoding="utf-8")


def _edit(old: str, new: str) -> str:
    text = _tiny()
    assert old in text, old
    return text.replace(old, new, 1)


def _bomb() -> str:
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    prev = "a"
    for name in "bcdefghi":
        lines.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]")
        prev = name
    return "\n".join(lines) + "\n"


def _idx(a: np.ndarray, dims: tuple[int, ...] | None = None) -> bytes:
    dims = a.shape if dims is None else dims
    return bytes([0, 0, 8, len(dims)]) + struct.pack(f">{len(dims)}i", *dims) + a.astype(np.uint8).tobytes()


def _idx_dir(d: Path, *, n: int = 16, labels: np.ndarray | None = None, train_images: bytes | None = None,
             gz: bool = False) -> None:
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    y = np.arange(n) % 4 if labels is None else labels
    files = {
        "train-images-idx3-ubyte": train_images if train_images is not None else _idx(rng.integers(0, 255, (n, 8, 8))),
        "train-labels-idx1-ubyte": _idx(y),
        "t10k-images-idx3-ubyte": _idx(rng.integers(0, 255, (8, 8, 8))),
        "t10k-labels-idx1-ubyte": _idx(np.arange(8) % 4),
    }
    for name, raw in files.items():
        if gz:
            (d / f"{name}.gz").write_bytes(gzip.compress(raw))
        else:
            (d / name).write_bytes(raw)


def _npz(path: Path, xtr, ytr, xte=None, yte=None, **extra) -> None:
    xte = xtr if xte is None else xte
    yte = ytr if yte is None else yte
    np.savez(path, x_train=xtr, y_train=ytr, x_test=xte, y_test=yte, **extra)


def _npz_declaring(path: Path, shape: tuple[int, ...]) -> None:
    """An .npz whose x_train header declares ``shape`` (terabytes) but holds no data."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "|u1", "fortran_order": False, "shape": shape})
    small = io.BytesIO()
    np.save(small, np.zeros(4, np.int64))
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("x_train.npy", buf.getvalue())
        for k in ("y_train", "x_test", "y_test"):
            z.writestr(f"{k}.npy", small.getvalue())


def _imagefolder(d: Path, classes=("cat", "dog"), *, splits=("train", "val")) -> None:
    rng = np.random.default_rng(1)
    for split in splits:
        for c in classes:
            (d / split / c).mkdir(parents=True, exist_ok=True)
            for i in range(2):
                Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(d / split / c / f"{i}.png")


def _band_budget(space_text: str) -> str:
    """Two budgets whose second tier lies in the gap between the only two architectures' FLOPs."""
    space = parse_space(space_text, "band.yaml")
    costs = sorted({analytic_cost(space.from_params({"stem": s}), space.resolution).flops
                    for s in space.spec.arch.stem.values})
    assert len(costs) == 2 and costs[1] - costs[0] > 4, costs
    return f"{costs[0]},{costs[0] + (costs[1] - costs[0]) // 2}"


def _fixed_tiny() -> str:
    """A space of exactly two architectures (only the stem is searched)."""
    text = _tiny()
    start = text.index("\narch:") + 1
    return text[:start] + """arch:
  stem: [8, 32]
  expansion: 1
  last_channels: 32
  dropout: 0.0
  classifier_dropout: 0.0
  layer1: {channels: 8, blocks: 1}
  layer2: {channels: 8, blocks: 1}
  layer3: {channels: 16, dim: 16, depth: 1, ffn_ratio: 1, heads: 2, patch: 2x2, kernel: 3}
  layer4: {channels: 16, dim: 16, depth: 1, ffn_ratio: 1, heads: 2, patch: 2x2, kernel: 3}
  layer5: {channels: 16, dim: 16, depth: 1, ffn_ratio: 1, heads: 2, patch: 1x1, kernel: 3}
"""


def _widest() -> str:
    """Every width, depth and ratio at its own bound: each field valid, the whole far too large."""
    import yaml

    vit = {"channels": 4096, "dim": 4096, "depth": 64, "ffn_dim": 4096, "heads": 4}
    return yaml.safe_dump({"stem": 4096, "expansion": 16, "last_channels": 4096,
                           "layer1": {"channels": 4096, "blocks": 64}, "layer2": {"channels": 4096, "blocks": 64},
                           "layer3": vit, "layer4": vit, "layer5": vit})


def build_world(w: Path) -> dict[str, str]:
    """Every fixture of the catalogue under ``w``; returns the values case command lines refer to."""
    good = get_preset("mobilevit_xxs").to_yaml()
    arch = w / "arch"
    arch.mkdir()
    files = {
        "good.yaml": good,
        "empty.yaml": "",
        "list.yaml": "- 1\n- 2\n",
        "syntax.yaml": "layer1: [unclosed\n",
        "dupkey.yaml": good + "stem: 16\n",
        "hex.yaml": good.replace("stem: 16", "stem: 0x10"),
        "octal.yaml": good.replace("stem: 16", "stem: 020"),
        "unknown.yaml": good + "stems: 16\n",
        "missing.yaml": good[:good.index("layer5:")],
        "channels.yaml": good.replace("channels: 16\n", "channels: 100000000\n", 1),
        "depth.yaml": good.replace("depth: 2", "depth: 100000", 1),
        "deep.yaml": "x: " + "[" * 20000 + "]" * 20000 + "\n",
        "bomb.yaml": _bomb(),
        "digits.yaml": good.replace("stem: 16", f"stem: {BIG}"),
        "negative.yaml": good.replace("channels: 16\n", "channels: -16\n", 1),
        "heads.yaml": good.replace("heads: 4", "heads: 7", 1),
        "kernel.yaml": good.replace("kernel: 3", "kernel: 4", 1),
        "patch.yaml": good.replace("- 2\n  - 2\n", "- 0\n  - 2\n", 1),
        "classes.yaml": good.replace("num_classes: 1000", "num_classes: 1000000000000"),
        "expansion.yaml": good.replace("expansion: 2", "expansion: 1000000"),
        "recursive.yaml": "stem: &a [*a]\n",
        "pytag.yaml": "!!python/object/apply:os.system ['echo hi']\n",
        "aliases.yaml": "a: &x 1\n" + "".join(f"k{i}: *x\n" for i in range(101)),
        "huge.yaml": "# padding\n" * 220_000,
        "widest.yaml": _widest(),
        "stage.yaml": good.replace("layer1:\n  channels: 16\n  blocks: 1\n", "layer1: 7\n"),
        "attention.yaml": good.replace("  heads: 4\n  patch:\n  - 2\n  - 2\n", "  heads: 64\n  patch:\n  - 1\n  - 1\n", 1),
    }
    for name, text in files.items():
        (arch / name).write_text(text, encoding="utf-8")
    (arch / "binary.yaml").write_bytes(bytes(range(256)) * 8)
    (arch / "utf16.yaml").write_bytes(good.encode("utf-16"))
    (arch / "escape.yaml").write_bytes(b"stem: 16\x1b]0;pwned\x07\n")
    (arch / "folder.yaml").mkdir()

    sp = w / "sp"
    sp.mkdir()
    spaces = {
        "unknown.yaml": _edit("  stem: [8, 16]", "  stems: [8, 16]"),
        "lowhigh.yaml": _edit("  stem: [8, 16]", "  stem: {low: 16, high: 8}"),
        "empty.yaml": _edit("  stem: [8, 16]", "  stem: []"),
        "kernel.yaml": _edit("kernel: [1, 3]}", "kernel: [2, 3]}"),
        "heads.yaml": _edit("layer4: {channels: [16, 32], dim: [16, 32]", "layer4: {channels: [16, 32], dim: [17, 32]"),
        "patch.yaml": _edit("patch: [1x1, 2x1]", "patch: [4x4]"),
        "range.yaml": _edit("  stem: [8, 16]", "  stem: {low: 1, high: 1000000000}"),
        "channels.yaml": _edit("layer1: {channels: [8, 16]", "layer1: {channels: [8, 100000000]"),
        "depth.yaml": _edit("depth: 1, ffn_ratio: 2, heads: [2, 4], patch: [2x2, 1x1]",
                            "depth: 100000, ffn_ratio: 2, heads: [2, 4], patch: [2x2, 1x1]"),
        "deep.yaml": _tiny() + "x: " + "[" * 20000 + "]" * 20000 + "\n",
        "bomb.yaml": _bomb(),
        "digits.yaml": _edit("  trials: 4", f"  trials: {BIG}"),
        "dupkey.yaml": _tiny() + "name: again\n",
        "hex.yaml": _edit("  trials: 4", "  trials: 0x10"),
        "name.yaml": _edit("name: tiny", "name: ../evil"),
        "classes.yaml": _edit("  num_classes: 10", "  num_classes: 1000000000000"),
        "resolution.yaml": _edit("  resolution: 64\n  num_classes", "  resolution: 100000\n  num_classes"),
        "proxyres.yaml": _edit("  resolution: 32", "  resolution: 100000"),
        "epochs.yaml": _edit("  epochs: 2", "  epochs: 0"),
        "batch.yaml": _edit("  batch_size: 32", "  batch_size: 1000000000"),
        "data.yaml": _edit("  data: fashion-mnist", "  data: imagenet"),
        "samples.yaml": _edit("  data: fashion-mnist", "  data: synthetic:samples=1000000000000"),
        "trials.yaml": _edit("  trials: 4", "  trials: 0"),
        "seed.yaml": _edit("  seed: 0", "  seed: -1"),
        "budget.yaml": _edit("  budget: 15M", "  budget: abc"),
        "choices.yaml": _edit("  stem: [8, 16]", "  stem: [" + ", ".join(map(str, range(1, 20002))) + "]"),
        "patches.yaml": _edit("patch: [1x1, 2x1]", "patch: [" + ", ".join(f"{i}x1" for i in range(1, 18)) + "]"),
        "largest.yaml": _edit("  stem: [8, 16]", "  stem: [8, 4096]").replace(
            "layer1: {channels: [8, 16], blocks: 1}", "layer1: {channels: [8, 4096], blocks: [1, 64]}"),
        "notmapping.yaml": "- 1\n- 2\n",
        "aliases.yaml": _tiny() + "".join(f"k{i}: *a\n" for i in range(102)).replace("*a", "&a 1", 1),
        "band.yaml": _fixed_tiny(),
    }
    for name, text in spaces.items():
        (sp / name).write_text(text, encoding="utf-8")
    (sp / "binary.yaml").write_bytes(bytes(range(256)) * 8)
    (sp / "huge.yaml").write_text(_tiny() + "# padding\n" * 220_000, encoding="utf-8")

    data = w / "data"
    data.mkdir()
    _idx_dir(data / "idx_zero", train_images=_idx(np.zeros((0, 8, 8)), (0, 8, 8)))
    _idx_dir(data / "idx_negative", train_images=_idx(np.zeros(0), (-16, -8, 8)))
    _idx_dir(data / "idx_huge", train_images=_idx(np.zeros(0), (100_000_000, 1000, 1000)), gz=True)
    _idx_dir(data / "idx_truncated", train_images=_idx(np.zeros((16, 8, 8)))[:-10])
    _idx_dir(data / "idx_magic", train_images=b"this is not idx data at all")
    _idx_dir(data / "idx_onelabel", labels=np.zeros(16))
    _idx_dir(data / "idx_mismatch", labels=np.arange(10) % 4)
    (data / "idx_gzip").mkdir()
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                 "t10k-labels-idx1-ubyte.gz"):
        (data / "idx_gzip" / name).write_bytes(b"\x1f\x8b\x08\x00garbage")
    x = np.random.default_rng(0).integers(0, 255, (8, 8, 8, 3)).astype(np.uint8)
    y = np.arange(8) % 2
    _npz(data / "zero_height.npz", np.zeros((8, 0, 8, 3), np.uint8), y)
    _npz(data / "zero_images.npz", np.zeros((0, 8, 8, 3), np.uint8), np.zeros(0, np.int64))
    _npz(data / "label_big.npz", x, np.where(y == 1, 2**40, 0))
    _npz(data / "label_negative.npz", x, y - 1)
    _npz(data / "float.npz", x.astype(np.float32), y)
    _npz(data / "one_class.npz", x, np.zeros(8, np.int64))
    _npz(data / "shape.npz", x[:, :, :, :2], y)
    _npz(data / "float_labels.npz", x, y.astype(np.float32))
    np.savez(data / "keys.npz", images=x, labels=y)
    np.save(data / "single.npy", x)
    (data / "corrupt.npz").write_bytes(b"PK\x03\x04 not really a zip")
    _npz_declaring(data / "declared.npz", (100_000_000, 3, 64, 64))
    _imagefolder(data / "img_one", classes=("cat",))
    _imagefolder(data / "img_emptyclass")
    (data / "img_emptyclass" / "train" / "zebra").mkdir()
    _imagefolder(data / "img_corrupt")
    (data / "img_corrupt" / "train" / "cat" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    _imagefolder(data / "img_noval", splits=("train",))
    _imagefolder(data / "img_extra")
    (data / "img_extra" / "val" / "emu").mkdir()
    (data / "img_extra" / "val" / "emu" / "0.png").write_bytes((data / "img_extra" / "val" / "cat" / "0.png").read_bytes())
    (data / "img_notrain").mkdir()
    (data / "cifar").mkdir()
    for name in ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch",
                 "batches.meta"):
        (data / "cifar" / name).write_bytes(b"\x80\x04not a pickle")
    (data / "tarball.tar.gz").write_bytes(b"\x1f\x8b\x08\x00not a tar")

    studies = w / "studies"
    studies.mkdir()
    make_study(studies, "demo")
    other = optuna.create_study(study_name="other@15M", storage=f"sqlite:///{studies / 'other.db'}",
                                direction="maximize")
    other.set_user_attr("space_yaml", (shipped_spaces() / "mobile.yaml").read_text(encoding="utf-8"))
    other.set_user_attr("space_file", "mobile.yaml")
    for path in (studies / "demo.db", studies / "other.db"):  # a plain journal, as a release before WAL left it
        con = sqlite3.connect(path)
        con.execute("PRAGMA journal_mode=DELETE")
        con.close()
    con = sqlite3.connect(w / "foreign.db")  # another program's database
    con.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
    con.execute("INSERT INTO invoices (total) VALUES (12.5)")
    con.commit()
    con.close()
    (w / "notes.txt").write_text("a text file, not a database\n")
    (w / "exports").mkdir()
    (w / "exports" / "taken.py").write_text("# someone's file\n")
    (w / "exports" / "taken.yaml").write_text("# someone's file\n")
    (w / "reports").mkdir()
    (w / "reports" / "mine.html").write_text("<p>my own page, not mvsearch's</p>\n")
    (w / "multi" / "studies").mkdir(parents=True)
    for name in ("a", "b"):
        optuna.create_study(study_name=name, storage=f"sqlite:///{w / 'multi' / 'studies' / f'{name}.db'}")
    (w / "nothing").mkdir()
    (w / "cache").mkdir()
    return {"W": str(w), "BAND": _band_budget(_fixed_tiny())}


# ---------------------------------------------------------------------- the catalogue
# (id, command line with {W} and {BAND} filled in, heavy); heavy cases run as real processes
TRAIN = ["train", "--preset", "mobilevit_xxs", "--data", "synthetic", "--resolution", "32", "--epochs", "1",
         "--train-samples", "64", "--val-samples", "32"]
RUN = ["run", "--space", "tiny", "--data", "synthetic", "--trials", "1"]
EXPORT = ["export", "--study", "demo", "--best", "-o", "exports"]
H = True


def _train_data(spec: str) -> list[str]:
    return ["train", "--preset", "mobilevit_xxs", "--data", spec, "--resolution", "32", "--epochs", "1",
            "--val-samples", "8"]


CASES: list[tuple[str, list[str], bool]] = [
    # ------------------------------------------------------------ the group
    ("main-unknown-option", ["--bogus"], False),
    ("main-unknown-command", ["nope"], False),
    ("main-command-with-newline", ["no\npe"], False),
    # ------------------------------------------------------------ count
    ("count-no-choice", ["count"], False),
    ("count-both", ["count", "--preset", "mobilevit_xxs", "--config", "arch/good.yaml"], False),
    ("count-unknown-preset", ["count", "--preset", "mobilevit_m"], False),
    ("count-preset-escape", ["count", "--preset", "\x1b]0;pwned\x07"], False),
    ("count-missing-config", ["count", "--config", "arch/nosuch.yaml"], False),
    ("count-config-newline-path", ["count", "--config", "arch/no\nsuch.yaml"], False),
    ("count-config-nul-path", ["count", "--config", "arch/no\x00such.yaml"], False),
    ("count-config-directory", ["count", "--config", "arch/folder.yaml"], False),
    ("count-config-binary", ["count", "--config", "arch/binary.yaml"], False),
    ("count-config-utf16", ["count", "--config", "arch/utf16.yaml"], False),
    ("count-config-escape-char", ["count", "--config", "arch/escape.yaml"], False),
    ("count-config-empty", ["count", "--config", "arch/empty.yaml"], False),
    ("count-config-list", ["count", "--config", "arch/list.yaml"], False),
    ("count-config-syntax", ["count", "--config", "arch/syntax.yaml"], False),
    ("count-config-duplicate-key", ["count", "--config", "arch/dupkey.yaml"], False),
    ("count-config-hex", ["count", "--config", "arch/hex.yaml"], False),
    ("count-config-octal", ["count", "--config", "arch/octal.yaml"], False),
    ("count-config-unknown-key", ["count", "--config", "arch/unknown.yaml"], False),
    ("count-config-missing-stage", ["count", "--config", "arch/missing.yaml"], False),
    ("count-config-stage-not-mapping", ["count", "--config", "arch/stage.yaml"], False),
    ("count-config-negative", ["count", "--config", "arch/negative.yaml"], False),
    ("count-config-heads", ["count", "--config", "arch/heads.yaml"], False),
    ("count-config-even-kernel", ["count", "--config", "arch/kernel.yaml"], False),
    ("count-config-zero-patch", ["count", "--config", "arch/patch.yaml"], False),
    ("count-config-recursive-alias", ["count", "--config", "arch/recursive.yaml"], False),
    ("count-config-python-tag", ["count", "--config", "arch/pytag.yaml"], False),
    ("count-config-many-aliases", ["count", "--config", "arch/aliases.yaml"], False),
    ("count-config-over-1mib", ["count", "--config", "arch/huge.yaml"], False),
    ("count-config-channels-1e8", ["count", "--config", "arch/channels.yaml"], H),
    ("count-config-depth-1e5", ["count", "--config", "arch/depth.yaml"], H),
    ("count-config-deep-nesting", ["count", "--config", "arch/deep.yaml"], H),
    ("count-config-alias-bomb", ["count", "--config", "arch/bomb.yaml"], H),
    ("count-config-5000-digits", ["count", "--config", "arch/digits.yaml"], H),
    ("count-config-classes-1e12", ["count", "--config", "arch/classes.yaml"], H),
    ("count-config-expansion-1e6", ["count", "--config", "arch/expansion.yaml"], H),
    ("count-config-every-bound-at-once", ["count", "--config", "arch/widest.yaml", "--resolution", "1024"], H),
    ("count-config-attention-17g-weights", ["count", "--config", "arch/attention.yaml", "--resolution", "1024"], H),
    ("count-resolution-1e5", ["count", "--preset", "mobilevit_xxs", "--resolution", "100000"], H),
    ("count-resolution-5000-digits", ["count", "--preset", "mobilevit_xxs", "--resolution", BIG], H),
    ("count-num-classes-1e12", ["count", "--preset", "mobilevit_xxs", "--num-classes", "1000000000000"], H),
    ("count-resolution-zero", ["count", "--preset", "mobilevit_xxs", "--resolution", "0"], False),
    ("count-resolution-negative", ["count", "--preset", "mobilevit_xxs", "--resolution", "-64"], False),
    ("count-resolution-text", ["count", "--preset", "mobilevit_xxs", "--resolution", "big"], False),
    ("count-resolution-half", ["count", "--preset", "mobilevit_xxs", "--resolution", "256x"], False),
    ("count-resolution-patch-too-big", ["count", "--preset", "mobilevit_xxs", "--resolution", "32"], False),
    ("count-num-classes-zero", ["count", "--preset", "mobilevit_xxs", "--num-classes", "0"], False),
    ("count-num-classes-text", ["count", "--preset", "mobilevit_xxs", "--num-classes", "ten"], False),
    ("count-num-classes-5000-digits", ["count", "--preset", "mobilevit_xxs", "--num-classes", BIG], False),
    # ------------------------------------------------------------ train: options
    ("train-epochs-zero", TRAIN + ["--epochs", "0"], False),
    ("train-epochs-1e9", TRAIN + ["--epochs", "1000000000"], False),
    ("train-batch-zero", TRAIN + ["--batch-size", "0"], False),
    ("train-batch-1e9", TRAIN + ["--batch-size", "1000000000"], H),
    ("train-lr-nan", TRAIN + ["--lr", "nan"], False),
    ("train-lr-inf", TRAIN + ["--lr", "inf"], False),
    ("train-lr-negative", TRAIN + ["--lr", "-0.1"], False),
    ("train-seed-negative", TRAIN + ["--seed", "-1"], False),
    ("train-seed-2e64", TRAIN + ["--seed", str(2**64)], False),
    ("train-threads-zero", TRAIN + ["--threads", "0"], False),
    ("train-threads-1e6", TRAIN + ["--threads", "1000000"], False),
    ("train-resolution-4", TRAIN + ["--resolution", "4"], False),
    ("train-resolution-1e5", TRAIN + ["--resolution", "100000"], H),
    ("train-train-samples-zero", TRAIN + ["--train-samples", "0"], False),
    ("train-train-samples-1e12", TRAIN + ["--train-samples", "1000000000000"], False),
    ("train-train-samples-5000-digits", TRAIN + ["--train-samples", BIG], False),
    ("train-val-samples-zero", TRAIN + ["--val-samples", "0"], False),
    ("train-val-samples-1e12", TRAIN + ["--val-samples", "1000000000000"], False),
    ("train-val-samples-more-than-data", TRAIN + ["--val-samples", "600"], False),
    ("train-train-plus-val-more-than-data", TRAIN + ["--train-samples", "500"], False),
    ("train-device-tpu", TRAIN + ["--device", "tpu"], False),
    ("train-stem-stride-3", TRAIN + ["--stem-stride", "3"], False),
    ("train-save-weights-no-folder", TRAIN + ["--save-weights", "nofolder/w.pt"], False),
    ("train-save-weights-directory", TRAIN + ["--save-weights", "exports"], False),
    ("train-save-weights-device", TRAIN + ["--save-weights", "/dev/null"], False),
    ("train-save-weights-under-file", TRAIN + ["--save-weights", "notes.txt/w.pt"], False),
    ("train-config-and-preset", TRAIN + ["--config", "arch/good.yaml"], False),
    ("train-config-binary", ["train", "--config", "arch/binary.yaml", "--data", "synthetic"], False),
    ("train-config-duplicate-key", ["train", "--config", "arch/dupkey.yaml", "--data", "synthetic"], False),
    ("train-config-bomb", ["train", "--config", "arch/bomb.yaml", "--data", "synthetic"], H),
    # ------------------------------------------------------------ train: data
    ("data-unknown", _train_data("imagenet"), False),
    ("data-empty", _train_data(""), False),
    ("data-escape", _train_data("\x1b[31mred"), False),
    ("data-format-without-path", _train_data("idx:"), False),
    ("data-missing-path", _train_data("idx:data/nosuch"), False),
    ("data-newline-path", _train_data("npz:data/no\nsuch.npz"), False),
    ("data-synthetic-one-class", _train_data("synthetic:classes=1"), False),
    ("data-synthetic-unknown-option", _train_data("synthetic:colours=3"), False),
    ("data-synthetic-text", _train_data("synthetic:classes=x"), False),
    ("data-synthetic-5000-digits", _train_data(f"synthetic:samples={BIG}"), False),
    ("data-synthetic-size-1e5", _train_data("synthetic:size=100000"), False),
    ("data-synthetic-samples-1e12", _train_data("synthetic:samples=1000000000000"), H),
    ("data-synthetic-pixels", _train_data("synthetic:samples=1000000,size=512"), H),
    ("data-idx-zero-images", _train_data("idx:data/idx_zero"), False),
    ("data-idx-negative-dims", _train_data("idx:data/idx_negative"), False),
    ("data-idx-declares-100gb", _train_data("idx:data/idx_huge"), H),
    ("data-idx-truncated", _train_data("idx:data/idx_truncated"), False),
    ("data-idx-bad-magic", _train_data("idx:data/idx_magic"), False),
    ("data-idx-one-label", _train_data("idx:data/idx_onelabel"), False),
    ("data-idx-label-count", _train_data("idx:data/idx_mismatch"), False),
    ("data-idx-bad-gzip", _train_data("idx:data/idx_gzip"), False),
    ("data-idx-not-idx-folder", _train_data("idx:data/img_one"), False),
    ("data-npz-zero-height", _train_data("npz:data/zero_height.npz"), False),
    ("data-npz-zero-images", _train_data("npz:data/zero_images.npz"), False),
    ("data-npz-label-2e40", _train_data("npz:data/label_big.npz"), H),
    ("data-npz-label-negative", _train_data("npz:data/label_negative.npz"), False),
    ("data-npz-float-images", _train_data("npz:data/float.npz"), False),
    ("data-npz-float-labels", _train_data("npz:data/float_labels.npz"), False),
    ("data-npz-one-class", _train_data("npz:data/one_class.npz"), False),
    ("data-npz-two-channels", _train_data("npz:data/shape.npz"), False),
    ("data-npz-wrong-keys", _train_data("npz:data/keys.npz"), False),
    ("data-npz-single-npy", _train_data("npz:data/single.npy"), False),
    ("data-npz-corrupt", _train_data("npz:data/corrupt.npz"), False),
    ("data-npz-folder", _train_data("npz:data"), False),
    ("data-npz-declares-1tb", _train_data("npz:data/declared.npz"), H),
    ("data-npz-text-file", _train_data("npz:notes.txt"), False),
    ("data-imagefolder-one-class", _train_data("imagefolder:data/img_one"), False),
    ("data-imagefolder-empty-class", _train_data("imagefolder:data/img_emptyclass"), False),
    ("data-imagefolder-corrupt-image", _train_data("imagefolder:data/img_corrupt"), False),
    ("data-imagefolder-no-val", _train_data("imagefolder:data/img_noval"), False),
    ("data-imagefolder-no-train", _train_data("imagefolder:data/img_notrain"), False),
    ("data-imagefolder-class-not-in-train", _train_data("imagefolder:data/img_extra"), False),
    ("data-imagefolder-bad-archive", _train_data("imagefolder:data/tarball.tar.gz"), False),
    ("data-imagefolder-a-file", _train_data("imagefolder:notes.txt"), False),
    ("data-cifar-corrupt", _train_data("cifar10:data/cifar"), False),
    ("data-cifar-not-cifar", _train_data("cifar100:data/img_one"), False),
    # ------------------------------------------------------------ space
    ("space-missing", ["space", "--space", "nosuch"], False),
    ("space-missing-file", ["space", "--space", "sp/nosuch.yaml"], False),
    ("space-directory", ["space", "--space", "sp"], False),
    ("space-nul", ["space", "--space", "sp/x\x00.yaml"], False),
    ("space-binary", ["space", "--space", "sp/binary.yaml"], False),
    ("space-over-1mib", ["space", "--space", "sp/huge.yaml"], False),
    ("space-not-mapping", ["space", "--space", "sp/notmapping.yaml"], False),
    ("space-unknown-key", ["space", "--space", "sp/unknown.yaml"], False),
    ("space-low-above-high", ["space", "--space", "sp/lowhigh.yaml"], False),
    ("space-empty-choices", ["space", "--space", "sp/empty.yaml"], False),
    ("space-even-kernel", ["space", "--space", "sp/kernel.yaml"], False),
    ("space-dim-heads", ["space", "--space", "sp/heads.yaml"], False),
    ("space-patch-too-big", ["space", "--space", "sp/patch.yaml"], False),
    ("space-duplicate-key", ["space", "--space", "sp/dupkey.yaml"], False),
    ("space-hex", ["space", "--space", "sp/hex.yaml"], False),
    ("space-name-path", ["space", "--space", "sp/name.yaml"], False),
    ("space-proxy-epochs-zero", ["space", "--space", "sp/epochs.yaml"], False),
    ("space-proxy-data-unknown", ["space", "--space", "sp/data.yaml"], False),
    ("space-search-trials-zero", ["space", "--space", "sp/trials.yaml"], False),
    ("space-search-seed-negative", ["space", "--space", "sp/seed.yaml"], False),
    ("space-search-budget-text", ["space", "--space", "sp/budget.yaml"], False),
    ("space-many-aliases", ["space", "--space", "sp/aliases.yaml"], False),
    ("space-20000-choices", ["space", "--space", "sp/choices.yaml"], H),
    ("space-17-patches", ["space", "--space", "sp/patches.yaml"], H),
    ("space-range-1e9", ["space", "--space", "sp/range.yaml"], H),
    ("space-channels-1e8", ["space", "--space", "sp/channels.yaml"], H),
    ("space-depth-1e5", ["space", "--space", "sp/depth.yaml"], H),
    ("space-deep-nesting", ["space", "--space", "sp/deep.yaml"], H),
    ("space-alias-bomb", ["space", "--space", "sp/bomb.yaml"], H),
    ("space-5000-digits", ["space", "--space", "sp/digits.yaml"], H),
    ("space-classes-1e12", ["space", "--space", "sp/classes.yaml"], H),
    ("space-resolution-1e5", ["space", "--space", "sp/resolution.yaml"], H),
    ("space-proxy-resolution-1e5", ["space", "--space", "sp/proxyres.yaml"], H),
    ("space-proxy-batch-1e9", ["space", "--space", "sp/batch.yaml"], H),
    ("space-proxy-samples-1e12", ["space", "--space", "sp/samples.yaml"], H),
    ("space-largest-too-big", ["space", "--space", "sp/largest.yaml"], H),
    # ------------------------------------------------------------ run: nothing may appear (no studies/)
    ("run-seed-negative", RUN + ["--seed", "-1"], False),
    ("run-seed-2e32", RUN + ["--seed", str(2**32)], False),
    ("run-study-dotdot", RUN + ["--study", "../../x"], False),
    ("run-study-absolute", RUN + ["--study", "/tmp/x"], False),
    ("run-study-space", RUN + ["--study", "a b"], False),
    ("run-study-newline", RUN + ["--study", "x\ny"], False),
    ("run-study-empty", RUN + ["--study", ""], False),
    ("run-study-at", RUN + ["--study", "x@15M"], False),
    ("run-study-long", RUN + ["--study", "x" * 300], False),
    ("run-study-older-release", RUN + ["--study", "demo"], False),
    ("run-study-other-space", RUN + ["--study", "other", "--storage", "sqlite:///studies/other.db"], False),
    ("run-storage-unknown-kind", RUN + ["--storage", "foo://x"], False),
    ("run-storage-not-url", RUN + ["--storage", "not a url"], False),
    ("run-storage-in-memory", RUN + ["--storage", "sqlite://"], False),
    ("run-storage-foreign-sqlite", RUN + ["--storage", "sqlite:///foreign.db"], False),
    ("run-storage-text-file", RUN + ["--storage", "sqlite:///notes.txt"], False),
    ("run-storage-directory", RUN + ["--storage", "sqlite:///exports"], False),
    ("run-storage-device", RUN + ["--storage", "sqlite:////dev/null"], False),
    ("run-storage-under-file", RUN + ["--storage", "sqlite:///notes.txt/x.db"], False),
    ("run-storage-missing-driver", RUN + ["--storage", "mysql://u@localhost/db"], False),
    ("run-budget-text", RUN + ["--budget", "abc"], False),
    ("run-budget-negative", RUN + ["--budget", "-1G"], False),
    ("run-budget-infinite", RUN + ["--budget", "1e400"], False),
    ("run-budget-5000-digits", RUN + ["--budget", BIG], False),
    ("run-budget-below-cheapest", RUN + ["--budget", "1k"], False),
    ("run-budget-tier-unreachable", RUN + ["--budget", "15M,20M"], False),
    ("run-budget-twice", RUN + ["--budget", "5M,5M"], False),
    ("run-budget-empty-entry", RUN + ["--budget", "5M,,6M"], False),
    ("run-budget-20-tiers", RUN + ["--budget", ",".join(f"{2 + i / 10:.1f}M" for i in range(20))], False),
    ("run-budget-empty-band", ["run", "--space", "sp/band.yaml", "--data", "synthetic", "--trials", "1",
                               "--budget", "{BAND}"], False),
    ("run-tiers-unknown", RUN + ["--tiers", "fancy"], False),
    ("run-budget-and-tiers", RUN + ["--budget", "15M", "--tiers", "paper"], False),
    ("run-max-params-below", RUN + ["--max-params", "1k"], False),
    ("run-max-params-text", RUN + ["--max-params", "lots"], False),
    ("run-trials-zero", RUN + ["--trials", "0"], False),
    ("run-trials-1e9", RUN + ["--trials", "1000000000"], False),
    ("run-timeout-text", RUN + ["--timeout", "soon"], False),
    ("run-timeout-zero", RUN + ["--timeout", "0s"], False),
    ("run-sampler-unknown", RUN + ["--sampler", "grid"], False),
    ("run-pruner-unknown", RUN + ["--pruner", "always"], False),
    ("run-device-unknown", RUN + ["--device", "tpu"], False),
    ("run-threads-zero", RUN + ["--threads", "0"], False),
    ("run-threads-1e6", RUN + ["--threads", "1000000"], False),
    ("run-baselines-both", RUN + ["--with-baselines", "--no-baselines"], False),
    ("run-data-unknown", RUN + ["--data", "imagenet"], False),
    ("run-data-one-class", RUN + ["--data", "synthetic:classes=1"], False),
    ("run-data-idx-zero", RUN + ["--data", "idx:data/idx_zero"], False),
    ("run-data-imagefolder-one-class", RUN + ["--data", "imagefolder:data/img_one"], False),
    ("run-data-too-few-for-split", RUN + ["--data", "synthetic:samples=8"], False),
    ("run-data-samples-1e12", RUN + ["--data", "synthetic:samples=1000000000000"], H),
    ("run-space-missing", RUN + ["--space", "nosuch"], False),
    ("run-space-unknown-key", RUN + ["--space", "sp/unknown.yaml"], False),
    ("run-space-alias-bomb", RUN + ["--space", "sp/bomb.yaml"], H),
    ("run-space-range-1e9", RUN + ["--space", "sp/range.yaml"], H),
    # ------------------------------------------------------------ trials
    ("trials-study-missing", ["trials", "--study", "nosuch"], False),
    ("trials-study-dotdot", ["trials", "--study", "../studies/demo"], False),
    ("trials-study-absolute", ["trials", "--study", "/tmp/demo"], False),
    ("trials-storage-unknown-kind", ["trials", "--storage", "foo://x"], False),
    ("trials-storage-not-url", ["trials", "--storage", "not a url"], False),
    ("trials-storage-in-memory", ["trials", "--storage", "sqlite://"], False),
    ("trials-storage-text-file", ["trials", "--storage", "sqlite:///notes.txt"], False),
    ("trials-storage-foreign-sqlite", ["trials", "--storage", "sqlite:///foreign.db"], False),
    ("trials-storage-directory", ["trials", "--storage", "sqlite:///exports"], False),
    ("trials-storage-missing-file", ["trials", "--storage", "sqlite:///nosuch.db"], False),
    ("trials-storage-wrong-study", ["trials", "--storage", "sqlite:///studies/demo.db", "--study", "demo2"], False),
    ("trials-format-unknown", ["trials", "--study", "demo", "--format", "xml"], False),
    ("trials-sort-unknown", ["trials", "--study", "demo", "--sort", "speed"], False),
    # ------------------------------------------------------------ latency
    ("latency-repeats-one", ["latency", "--study", "demo", "--repeats", "1"], False),
    ("latency-repeats-1e9", ["latency", "--study", "demo", "--repeats", "1000000000"], H),
    ("latency-warmup-negative", ["latency", "--study", "demo", "--warmup", "-1"], False),
    ("latency-warmup-1e9", ["latency", "--study", "demo", "--warmup", "1000000000"], H),
    ("latency-threads-zero", ["latency", "--study", "demo", "--threads", "0"], False),
    ("latency-threads-1e6", ["latency", "--study", "demo", "--threads", "1000000"], False),
    ("latency-backend-unknown", ["latency", "--study", "demo", "--backend", "tvm"], False),
    ("latency-device-unknown", ["latency", "--study", "demo", "--device", "tpu"], False),
    ("latency-study-missing", ["latency", "--study", "nosuch"], False),
    ("latency-storage-unknown-kind", ["latency", "--storage", "foo://x"], False),
    ("latency-storage-foreign-sqlite", ["latency", "--storage", "sqlite:///foreign.db"], False),
    # ------------------------------------------------------------ pareto and report
    ("pareto-study-missing", ["pareto", "--study", "nosuch", "-o", "reports/p.html"], False),
    ("pareto-study-dotdot", ["pareto", "--study", "../x", "-o", "reports/p.html"], False),
    ("pareto-storage-unknown-kind", ["pareto", "--storage", "foo://x", "-o", "reports/p.html"], False),
    ("pareto-storage-foreign-sqlite", ["pareto", "--storage", "sqlite:///foreign.db", "-o", "reports/p.html"], False),
    ("pareto-x-unknown", ["pareto", "--study", "demo", "--x", "weight", "-o", "reports/p.html"], False),
    ("pareto-y-unknown", ["pareto", "--study", "demo", "--y", "loss", "-o", "reports/p.html"], False),
    ("pareto-output-directory", ["pareto", "--study", "demo", "-o", "reports"], False),
    ("report-study-missing", ["report", "--study", "nosuch", "-o", "reports/r.html"], False),
    ("report-study-dotdot", ["report", "--study", "../x", "-o", "reports/r.html"], False),
    ("report-storage-unknown-kind", ["report", "--storage", "foo://x", "-o", "reports/r.html"], False),
    ("report-storage-text-file", ["report", "--storage", "sqlite:///notes.txt", "-o", "reports/r.html"], False),
    ("report-output-directory", ["report", "--study", "demo", "-o", "reports"], False),
    ("report-output-device", ["report", "--study", "demo", "-o", "/dev/full"], False),
    ("report-output-device-forced", ["report", "--study", "demo", "-o", "/dev/null", "--force"], False),
    ("report-output-someone-elses", ["report", "--study", "demo", "-o", "reports/mine.html"], False),
    ("pareto-output-device", ["pareto", "--study", "demo", "-o", "/dev/full"], False),
    ("pareto-output-someone-elses", ["pareto", "--study", "demo", "-o", "reports/mine.html"], False),
    ("pareto-backend-unknown", ["pareto", "--study", "demo", "--backend", "tvm", "-o", "reports/p.html"], False),
    ("pareto-latency-not-measured", ["pareto", "--study", "demo", "--x", "latency", "-o", "reports/p.html"], False),
    ("pareto-output-under-file", ["pareto", "--study", "demo", "-o", "notes.txt/p.html"], False),
    ("report-backend-unknown", ["report", "--study", "demo", "--backend", "tvm", "-o", "reports/r.html"], False),
    ("report-output-under-file", ["report", "--study", "demo", "-o", "notes.txt/r.html"], False),
    # ------------------------------------------------------------ export
    ("export-no-selector", ["export", "--study", "demo", "-o", "exports"], False),
    ("export-two-selectors", ["export", "--study", "demo", "--best", "--trial", "3", "-o", "exports"], False),
    ("export-no-output", ["export", "--study", "demo", "--best"], False),
    ("export-format-unknown", EXPORT + ["--format", "tflite"], False),
    ("export-format-empty", EXPORT + ["--format", ","], False),
    ("export-preset-unknown", ["export", "--preset", "mobilevit_m", "-o", "exports"], False),
    ("export-preset-with-study", ["export", "--preset", "mobilevit_xxs", "--study", "demo", "-o", "exports"], False),
    ("export-name-torch", EXPORT + ["--name", "torch"], False),
    ("export-name-math", ["export", "--preset", "mobilevit_xxs", "--name", "math", "-o", "exports"], False),
    ("export-name-json", ["export", "--preset", "mobilevit_xxs", "--name", "json", "-o", "exports"], False),
    ("export-name-keyword", ["export", "--preset", "mobilevit_xxs", "--name", "class", "-o", "exports"], False),
    ("export-name-dunder", ["export", "--preset", "mobilevit_xxs", "--name", "__init__", "-o", "exports"], False),
    ("export-name-space", ["export", "--preset", "mobilevit_xxs", "--name", "a b", "-o", "exports"], False),
    ("export-name-path", ["export", "--preset", "mobilevit_xxs", "--name", "../x", "-o", "exports"], False),
    ("export-name-long", ["export", "--preset", "mobilevit_xxs", "--name", "x" * 300, "-o", "exports"], False),
    ("export-name-escape", ["export", "--preset", "mobilevit_xxs", "--name", "\x1b[2J", "-o", "exports"], False),
    ("export-opset-low", ["export", "--preset", "mobilevit_xxs", "--opset", "5", "-o", "exports"], False),
    ("export-opset-high", ["export", "--preset", "mobilevit_xxs", "--opset", "99", "-o", "exports"], False),
    ("export-resolution-1e5", ["export", "--preset", "mobilevit_xxs", "--resolution", "100000", "-o", "exports"], H),
    ("export-resolution-patch-too-big", ["export", "--preset", "mobilevit_xxs", "--resolution", "32", "-o",
                                         "exports"], False),
    ("export-resolution-text", ["export", "--preset", "mobilevit_xxs", "--resolution", "big", "-o", "exports"], False),
    ("export-num-classes-zero", ["export", "--preset", "mobilevit_xxs", "--num-classes", "0", "-o", "exports"], False),
    ("export-num-classes-1e12", ["export", "--preset", "mobilevit_xxs", "--num-classes", "1000000000000", "-o",
                                 "exports"], H),
    ("export-existing-file", ["export", "--preset", "mobilevit_xxs", "--name", "taken", "-o", "exports"], False),
    ("export-existing-file-one-of-two", ["export", "--preset", "mobilevit_xxs", "--name", "taken", "--format",
                                         "py,yaml", "-o", "exports"], False),
    ("export-output-under-file", ["export", "--preset", "mobilevit_xxs", "-o", "notes.txt/out"], False),
    ("export-trial-missing", ["export", "--study", "demo", "--trial", "99", "-o", "exports"], False),
    ("export-trial-text", ["export", "--study", "demo", "--trial", "\x1b[2Jx", "-o", "exports"], False),
    ("export-trial-rejected", ["export", "--study", "demo", "--trial", "11", "-o", "exports"], False),
    ("export-trial-pruned", ["export", "--study", "demo", "--trial", "8", "-o", "exports"], False),
    ("export-weights-none-saved", ["export", "--study", "demo", "--trial", "3", "--weights", "-o", "exports"], False),
    ("export-pareto-rank-zero", ["export", "--study", "demo", "--pareto-rank", "0", "-o", "exports"], False),
    ("export-pareto-rank-99", ["export", "--study", "demo", "--pareto-rank", "99", "-o", "exports"], False),
    ("export-study-missing", ["export", "--study", "nosuch", "--best", "-o", "exports"], False),
    ("export-study-dotdot", ["export", "--study", "../../x", "--best", "-o", "exports"], False),
    ("export-storage-unknown-kind", ["export", "--storage", "foo://x", "--best", "-o", "exports"], False),
    ("export-storage-foreign-sqlite", ["export", "--storage", "sqlite:///foreign.db", "--best", "-o", "exports"], False),
]

#: cases run elsewhere than the fixture folder's root
CWD = {"trials-several-studies": "multi", "trials-no-study": "nothing", "latency-no-study": "nothing",
       "export-no-study": "nothing"}
CASES += [
    ("trials-several-studies", ["trials"], False),
    ("trials-no-study", ["trials"], False),
    ("latency-no-study", ["latency"], False),
    ("export-no-study", ["export", "--best", "-o", "exports"], False),
]


# ---------------------------------------------------------------------- running a case
def _snapshot(root: Path) -> dict[str, str]:
    """Every file, folder and link under ``root``: path -> content hash (or kind)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            p = Path(dirpath) / d
            out[str(p.relative_to(root))] = "link" if p.is_symlink() else "dir"
        for f in filenames:
            p = Path(dirpath) / f
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest() if not p.is_symlink() else "link"
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = tmp_path_factory.mktemp("bad-input")
    return w, build_world(w)


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def _invoke(argv: list[str], cwd: Path, heavy: bool, monkeypatch) -> tuple[int, str, str]:
    env_cache = str(cwd.parent / "cache") if cwd.name in CWD.values() else str(cwd / "cache")
    if heavy:
        env = dict(os.environ, MVSEARCH_CACHE=env_cache)
        env.pop("MVSEARCH_DEBUG", None)
        p = subprocess.run([sys.executable, "-m", "mvsearch", *argv], cwd=cwd, env=env, capture_output=True,
                           text=True, errors="replace", timeout=HEAVY_TIMEOUT, preexec_fn=_limit_memory)
        return p.returncode, p.stdout, p.stderr
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("MVSEARCH_CACHE", env_cache)
    monkeypatch.delenv("MVSEARCH_DEBUG", raising=False)
    r = CliRunner().invoke(main, argv, prog_name="mvsearch")
    return r.exit_code, r.stdout, r.stderr


@pytest.mark.parametrize("case,argv,heavy", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_error_line_exit_2_and_changes_nothing(world, case, argv, heavy, monkeypatch):
    root, values = world
    argv = [a.replace("{W}", values["W"]).replace("{BAND}", values["BAND"]) for a in argv]
    cwd = root / CWD.get(case, "")
    before = _snapshot(root)
    code, out, err = _invoke(argv, cwd, heavy, monkeypatch)
    after = _snapshot(root)
    lines = err.splitlines()
    assert "Traceback" not in err and "Traceback" not in out, err
    assert code == 2, (code, err[-2000:])
    assert len(lines) == 1 and lines[0].startswith("error: "), err[-2000:]
    assert "internal error" not in lines[0] and "out of memory" not in lines[0], lines[0]
    assert lines[0].isprintable(), repr(lines[0])
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, f"written or changed: {changed}"


def test_the_catalogue_covers_every_command_with_150_cases():
    assert len(CASES) >= 150 and len({c[0] for c in CASES}) == len(CASES)
    commands = {argv[0] for _, argv, _ in CASES if argv and not argv[0].startswith("-")}
    assert {"count", "train", "space", "run", "trials", "latency", "pareto", "report", "export"} <= commands


# ---------------------------------------------------------------------- beyond the catalogue
def _mvsearch(*argv: str, cwd: Path, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mvsearch", *argv], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ, **(env or {})))


def _no_half_made_database(folder: Path) -> None:
    """Nothing, or a database holding the study: never tables without one, never a temporary file."""
    leftovers = [p.name for p in folder.rglob("*") if p.name.endswith(".part") or p.name.endswith("-journal")]
    assert not leftovers, leftovers
    db = folder / "studies" / "tiny.db"
    if db.exists():
        con = sqlite3.connect(db)
        try:
            assert con.execute("SELECT COUNT(*) FROM studies").fetchone()[0] >= 1
        finally:
            con.close()


@pytest.mark.parametrize("signum,delays", [("SIGINT", [1.0]), ("SIGINT", [1.0, 0.05]), ("SIGTERM", [1.0])],
                         ids=["ctrl-c-starting", "ctrl-c-twice", "sigterm-starting"])
def test_an_interrupt_while_starting_is_one_line_exit_130_and_no_half_made_database(tmp_path, signum, delays):
    import signal
    import time

    p = _mvsearch("run", "--space", "tiny", "--data", "synthetic", "--trials", "1", cwd=tmp_path,
                  env={"MVSEARCH_CACHE": str(tmp_path / "cache")})
    for d in delays:
        time.sleep(d)
        p.send_signal(getattr(signal, signum))
    out, err = p.communicate(timeout=300)
    assert p.returncode == 130, (p.returncode, err)
    assert "Traceback" not in err and "Traceback" not in out, err
    assert err.splitlines()[-1].startswith("interrupted"), err
    _no_half_made_database(tmp_path)


def _any_preload() -> str:
    """jemalloc where the machine has it, else this process's own libc: a library that ``run`` can
    re-execute itself on (the re-execution, not the allocator, is what the start-up tests need)."""
    from mvsearch.core import jemalloc

    found = jemalloc.library({})
    if found:
        return found
    with open("/proc/self/maps") as f:
        return next(line.split()[-1] for line in f if "/libc.so" in line or "/libc-" in line)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the re-execution on jemalloc is Linux-only")
@pytest.mark.parametrize("signum,at", [("SIGINT", "click"), ("SIGTERM", "click"), ("SIGINT", "mvsearch.core.jemalloc"),
                                       ("SIGINT", "re-exec"), ("SIGTERM", "re-exec"), ("SIGINT", "torch")])
def test_a_signal_at_each_moment_of_the_start_is_interrupted_exit_130(tmp_path, signum, at):
    """A real signal at a fixed moment of `run`'s start (sent by the process itself from a
    sitecustomize hook, so no timing decides where it lands): while the CLI imports click, while it
    prepares the re-execution on jemalloc, while the re-executed Python itself starts (before any
    mvsearch code runs there: the signal waits, blocked, for the CLI's handler), and while the
    command imports torch. Each is one ``interrupted`` line, exit code 130, no traceback."""
    from tests._signals import SITECUSTOMIZE

    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(SITECUSTOMIZE)
    once = tmp_path / "sent"
    env = {"MVSEARCH_CACHE": str(tmp_path / "cache"), "SIGNAL_AT": at, "SIGNAL_SEND": signum,
           "SIGNAL_ONCE": str(once), "MVSEARCH_JEMALLOC": _any_preload(),
           "PYTHONPATH": os.pathsep.join([str(hook), *filter(None, [os.environ.get("PYTHONPATH")])])}
    work = tmp_path / "work"
    work.mkdir()
    p = _mvsearch("run", "--space", "tiny", "--data", "synthetic", "--trials", "1", cwd=work, env=env)
    out, err = p.communicate(timeout=300)
    assert once.exists(), f"the hook never fired at {at!r}: {err[-2000:]}"
    assert p.returncode == 130, (p.returncode, err[-3000:])
    assert "Traceback" not in err and "Traceback" not in out, err[-3000:]
    assert err.splitlines() == ["interrupted"], err[-3000:]
    _no_half_made_database(work)


def test_an_interrupt_while_the_study_file_is_made_leaves_nothing(tmp_path, monkeypatch):
    """Ctrl-C in the middle of making a new study database: no file, no temporary file, no folder."""
    from mvsearch.search import driver

    monkeypatch.chdir(tmp_path)
    made = []

    def interrupted(self, storage, label, index, startup):
        made.append(label)
        raise KeyboardInterrupt

    monkeypatch.setattr(driver.Search, "_open_study", interrupted)
    r = CliRunner().invoke(main, ["run", "--space", "tiny", "--data", "synthetic", "--trials", "1"])
    assert made and r.exit_code == 130 and r.stderr == "interrupted\n", r.output
    assert list(tmp_path.iterdir()) == [], list(tmp_path.rglob("*"))


def test_an_internal_error_is_one_line_naming_mvsearch_debug_and_exit_1(monkeypatch):
    import mvsearch.cli.count as count_cmd

    def broken(*a, **k):
        raise RuntimeError("something inside broke\nsecond line")

    monkeypatch.setattr(count_cmd, "count", broken)
    monkeypatch.delenv("MVSEARCH_DEBUG", raising=False)
    r = CliRunner().invoke(main, ["count", "--preset", "mobilevit_xxs"])
    assert r.exit_code == 1, r.output
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: internal error (RuntimeError: something inside broke)")
    assert "MVSEARCH_DEBUG=1" in lines[0] and "Traceback" not in r.stderr
    monkeypatch.setenv("MVSEARCH_DEBUG", "1")
    r = CliRunner().invoke(main, ["count", "--preset", "mobilevit_xxs"])
    assert r.exit_code == 1 and "Traceback" in r.stderr and r.stderr.splitlines()[-1].startswith("error: internal")


def test_a_users_oserror_is_one_line_exit_2(monkeypatch):
    import mvsearch.cli.count as count_cmd

    def unreadable(*a, **k):
        raise PermissionError(13, "Permission denied", "/some/where\nelse")

    monkeypatch.setattr(count_cmd, "count", unreadable)
    r = CliRunner().invoke(main, ["count", "--preset", "mobilevit_xxs"])
    assert r.exit_code == 2 and r.stderr.count("\n") == 1 and "Permission denied" in r.stderr, r.output


def test_a_library_warning_is_one_line(monkeypatch):
    import warnings

    import mvsearch.cli.count as count_cmd

    from mvsearch.core.errors import ArchError

    def warns_then_fails(*a, **k):
        warnings.warn("careful\nnow", UserWarning)
        raise ArchError("then it failed")

    monkeypatch.setattr(count_cmd, "count", warns_then_fails)
    r = CliRunner().invoke(main, ["count", "--preset", "mobilevit_xxs"])
    assert r.exit_code == 2
    assert r.stderr.splitlines() == ["warning: careful", "error: then it failed"], r.stderr


def test_text_from_files_and_databases_reaches_the_terminal_without_control_characters(tmp_path, monkeypatch):
    """A description that would retitle the terminal, a study name with an escape sequence."""
    monkeypatch.chdir(tmp_path)
    text = _tiny().replace("description: a few narrow MobileViTs at 64x64, for smoke tests",
                           'description: "evil \\e]0;pwned\\a title \\e[2J\\nsecond line"')
    (tmp_path / "evil.yaml").write_text(text)
    r = CliRunner().invoke(main, ["space", "--space", "evil.yaml"])
    assert r.exit_code == 0, r.output
    assert "\x1b" not in r.output and "\x07" not in r.output
    assert r.stdout.splitlines()[0] == "space tiny (evil.yaml): evil ]0;pwned title [2Jsecond line"
    storage = f"sqlite:///{tmp_path / 'x.db'}"
    optuna.create_study(study_name="x\x1b[2J@1G", storage=storage).add_trial(
        optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL, user_attrs={"preset": "\x1b]0;owned\x07"}))
    r = CliRunner().invoke(main, ["trials", "--storage", storage, "--format", "table"])
    assert "\x1b" not in r.output and "\x07" not in r.output, repr(r.output)
    r = CliRunner().invoke(main, ["trials", "--storage", storage, "--format", "csv"])
    assert "\x1b" not in r.output and "\x07" not in r.output, repr(r.output)


def test_the_trials_table_shows_running_and_failed_trials_without_flops(tmp_path):
    storage = f"sqlite:///{tmp_path / 'r.db'}"
    study = optuna.create_study(study_name="r@1G", storage=storage, direction="maximize")
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL))
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.COMPLETE, value=0.5,
                                              user_attrs={"baseline": None, "flops": None}))
    study.ask()  # RUNNING, no attributes at all
    for fmt in ("table", "csv", "json"):
        r = CliRunner().invoke(main, ["trials", "--storage", storage, "--format", fmt])
        assert r.exit_code == 0 and "RUNNING" in r.output and "FAIL" in r.output, r.output


def test_run_on_another_programs_sqlite_file_leaves_it_as_it_was_but_an_empty_file_is_used(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    con = sqlite3.connect(tmp_path / "app.db")
    con.execute("CREATE TABLE t (x)")
    con.commit()
    con.close()
    before = (tmp_path / "app.db").read_bytes()
    r = CliRunner().invoke(main, ["run", "--space", "tiny", "--data", "synthetic", "--trials", "1",
                                  "--storage", f"sqlite:///{tmp_path / 'app.db'}"])
    assert r.exit_code == 2 and "another program" in r.stderr
    assert (tmp_path / "app.db").read_bytes() == before


def test_export_refuses_every_name_the_generated_file_imports():
    from mvsearch.core.errors import ExportError
    from mvsearch.export.standalone import ALLOWED_IMPORTS
    from mvsearch.export.writer import check_stem

    for name in sorted(ALLOWED_IMPORTS - {"__future__"}) + ["os", "sys", "json", "typing", "mvsearch"]:
        with pytest.raises(ExportError, match="shadow"):
            check_stem(name)
    assert check_stem("mobile_trial3") == "mobile_trial3"
