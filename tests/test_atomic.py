"""mvsearch.core.atomic: a file is either the old one or the whole new one, never anything else."""
from __future__ import annotations

import os
import stat

import pytest
import torch

from mvsearch.core.atomic import atomic_path, check_target, save_state_dict, write_atomic
from mvsearch.core.errors import MvsearchError


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    try:
        yield 0o027
    finally:
        os.umask(old)


def test_write_atomic_writes_text_and_bytes(tmp_path):
    assert write_atomic(tmp_path / "a.txt", "héllo\n").read_text(encoding="utf-8") == "héllo\n"
    assert write_atomic(tmp_path / "b.bin", b"\x00\xff").read_bytes() == b"\x00\xff"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.bin"]


def test_an_exception_mid_write_leaves_the_target_byte_identical(tmp_path):
    target = tmp_path / "page.html"
    target.write_bytes(b"the old page\n")
    with pytest.raises(KeyboardInterrupt):  # e.g. Ctrl-C half-way through writing
        with atomic_path(target) as tmp:
            with open(tmp, "wb") as f:
                f.write(b"half of the new")
                f.flush()
                raise KeyboardInterrupt
    assert target.read_bytes() == b"the old page\n"
    assert [p.name for p in tmp_path.iterdir()] == ["page.html"]  # the temporary file is gone


def test_an_exception_before_anything_is_written_creates_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "new.txt"):
            raise RuntimeError("no")
    assert list(tmp_path.iterdir()) == []


def test_the_new_file_replaces_the_old_in_one_rename(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("old")
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.name.startswith(".f.txt.")  # hidden, beside it
        tmp.write_text("new")
        assert target.read_text() == "old"  # untouched until the block ends
    assert target.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_a_fifo_is_refused_and_left_untouched(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for write in (lambda: write_atomic(fifo, "x"), lambda: save_state_dict(torch.nn.Linear(1, 1), fifo)):
        with pytest.raises(MvsearchError, match="not a regular file"):
            write()
        assert stat.S_ISFIFO(fifo.lstat().st_mode)
    assert [p.name for p in tmp_path.iterdir()] == ["fifo"]  # and no temporary file was made


def test_a_directory_is_refused_and_left_untouched(tmp_path):
    d = tmp_path / "out"
    d.mkdir()
    (d / "keep.txt").write_text("mine")
    with pytest.raises(MvsearchError, match="it is a directory; choose a file path"):
        write_atomic(d, "x")
    with pytest.raises(MvsearchError, match="it is a directory"):
        with atomic_path(d):
            pytest.fail("the block must not run")  # refused before anything is yielded
    assert d.is_dir() and [p.name for p in d.iterdir()] == ["keep.txt"]
    assert (d / "keep.txt").read_text() == "mine"


def test_check_target_accepts_a_file_an_absent_path_and_a_link_to_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path / "file")
    (tmp_path / "dir-link").symlink_to(tmp_path)
    assert check_target(tmp_path / "file") == tmp_path / "file"
    assert check_target(tmp_path / "absent") == tmp_path / "absent"
    assert check_target(tmp_path / "link") == tmp_path / "link"
    with pytest.raises(MvsearchError, match="directory"):
        check_target(tmp_path / "dir-link")


def test_permissions_follow_the_umask(tmp_path, umask_027):
    path = write_atomic(tmp_path / "a.txt", "x")
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask_027  # 0o640, not mkstemp's 0o600
    save_state_dict(torch.nn.Linear(1, 1), tmp_path / "w.pt")
    assert stat.S_IMODE((tmp_path / "w.pt").stat().st_mode) == 0o640


def test_an_explicit_mode_wins_over_the_umask(tmp_path, umask_027):
    with atomic_path(tmp_path / "run.sh", mode=0o755) as tmp:
        tmp.write_text("#!/bin/sh\n")
    assert stat.S_IMODE((tmp_path / "run.sh").stat().st_mode) == 0o755


def test_save_state_dict_writes_cpu_tensors_that_load_back(tmp_path):
    model = torch.nn.Linear(3, 2)
    save_state_dict(model, tmp_path / "w.pt")
    state = torch.load(tmp_path / "w.pt", weights_only=True)
    assert state.keys() == model.state_dict().keys()
    assert all(torch.equal(state[k], v) and state[k].device.type == "cpu" for k, v in model.state_dict().items())
    assert [p.name for p in tmp_path.iterdir()] == ["w.pt"]


def test_a_failing_torch_save_leaves_no_file(tmp_path, monkeypatch):
    def boom(obj, f, *a, **k):
        with open(f, "wb") as out:
            out.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError, match="No space left"):
        save_state_dict(torch.nn.Linear(1, 1), tmp_path / "w.pt")
    assert list(tmp_path.iterdir()) == []
