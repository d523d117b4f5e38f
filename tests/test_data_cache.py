"""The decoded-tensor cache (hits, invalidation, atomic writes) and --download over loopback HTTP."""
from __future__ import annotations

import functools
import hashlib
import http.server
import threading
from pathlib import Path

import pytest
import torch

from mvsearch.data import SYSTEM_DIRS, load_data
from mvsearch.data import cache as cache_mod
from mvsearch.data import download
from mvsearch.core.errors import DataError
from tests.test_data import images, write_idx


def _entries(cache: Path) -> list[Path]:
    d = cache / "tensors"
    return sorted(d.iterdir()) if d.is_dir() else []


def test_second_load_comes_from_the_cache(tmp_path):
    write_idx(tmp_path / "d")
    a = load_data(f"idx:{tmp_path / 'd'}", resolution=12, cache_dir=tmp_path / "c")
    b = load_data(f"idx:{tmp_path / 'd'}", resolution=12, cache_dir=tmp_path / "c")
    assert (a.cached, b.cached) == (False, True)
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_y, b.test_y) and a.classes == b.classes
    assert b.train_x.shape == (40, 3, 12, 12) and b.train_x.stride(1) == 0  # grayscale kept compact
    assert len(_entries(tmp_path / "c")) == 1


def test_cache_is_keyed_by_resolution(tmp_path):
    write_idx(tmp_path / "d")
    load_data(f"idx:{tmp_path / 'd'}", resolution=12, cache_dir=tmp_path / "c")
    d = load_data(f"idx:{tmp_path / 'd'}", resolution=16, cache_dir=tmp_path / "c")
    assert d.cached is False and len(_entries(tmp_path / "c")) == 2


def test_changed_source_is_redecoded_and_the_old_entry_dropped(tmp_path):
    write_idx(tmp_path / "d", seed=0)
    a = load_data(f"idx:{tmp_path / 'd'}", resolution=8, cache_dir=tmp_path / "c")
    old = _entries(tmp_path / "c")
    write_idx(tmp_path / "d", seed=5)  # same names and sizes, new pixels
    b = load_data(f"idx:{tmp_path / 'd'}", resolution=8, cache_dir=tmp_path / "c")
    assert b.cached is False and not torch.equal(a.train_x, b.train_x)
    assert torch.equal(b.train_x[:, 0], torch.from_numpy(images(40, 8, seed=5)))
    new = _entries(tmp_path / "c")
    assert len(new) == 1 and new != old


def test_moved_source_with_same_content_reuses_nothing_stale(tmp_path):
    write_idx(tmp_path / "d1")
    write_idx(tmp_path / "d2", seed=3)
    a = load_data(f"idx:{tmp_path / 'd1'}", resolution=8, cache_dir=tmp_path / "c")
    b = load_data(f"idx:{tmp_path / 'd2'}", resolution=8, cache_dir=tmp_path / "c")
    assert not torch.equal(a.train_x, b.train_x) and len(_entries(tmp_path / "c")) == 2


def test_corrupt_input_leaves_nothing_in_the_cache(tmp_path):
    write_idx(tmp_path / "d", gz=False)
    f = tmp_path / "d" / "t10k-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:100])
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte"):
        load_data(f"idx:{tmp_path / 'd'}", resolution=8, cache_dir=tmp_path / "c")
    leftovers = list((tmp_path / "c").rglob("*")) if (tmp_path / "c").exists() else []
    assert [p for p in leftovers if p.is_file()] == []


def test_interrupted_write_leaves_no_partial_entry(tmp_path, monkeypatch):
    write_idx(tmp_path / "d")

    def boom(*a, **k):
        raise KeyboardInterrupt  # e.g. Ctrl-C in the middle of torch.save

    monkeypatch.setattr(cache_mod.torch, "save", boom)
    with pytest.raises(KeyboardInterrupt):
        load_data(f"idx:{tmp_path / 'd'}", resolution=8, cache_dir=tmp_path / "c")
    assert [p for p in (tmp_path / "c").rglob("*") if p.is_file()] == []


def test_damaged_cache_entry_is_a_miss_and_is_rewritten(tmp_path):
    write_idx(tmp_path / "d")
    a = load_data(f"idx:{tmp_path / 'd'}", resolution=8, cache_dir=tmp_path / "c")
    (entry,) = _entries(tmp_path / "c")
    entry.write_bytes(b"garbage")
    b = load_data(f"idx:{tmp_path / 'd'}", resolution=8, cache_dir=tmp_path / "c")
    assert b.cached is False and torch.equal(a.train_x, b.train_x)
    assert load_data(f"idx:{tmp_path / 'd'}", resolution=8, cache_dir=tmp_path / "c").cached is True


def test_default_cache_dir_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("MVSEARCH_CACHE", str(tmp_path / "env-cache"))
    assert cache_mod.cache_dir() == tmp_path / "env-cache"
    monkeypatch.delenv("MVSEARCH_CACHE")
    assert cache_mod.cache_dir() == Path.home() / ".cache" / "mvsearch"
    assert cache_mod.cache_dir(tmp_path / "x") == tmp_path / "x"


def test_unwritable_cache_still_loads(tmp_path):
    write_idx(tmp_path / "d")
    (tmp_path / "file").write_text("a file where the cache folder should be")
    d = load_data(f"idx:{tmp_path / 'd'}", resolution=8, cache_dir=tmp_path / "file")
    assert d.train_x.shape == (40, 3, 8, 8)


# ---------------------------------------------------------------------- --download over loopback
@pytest.fixture
def http_root(tmp_path):
    """A static HTTP server on 127.0.0.1 serving ``root``; yields (root, base URL)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def nowhere(monkeypatch):
    monkeypatch.setitem(SYSTEM_DIRS, "fashion-mnist", ())
    monkeypatch.delenv("MVSEARCH_DATA", raising=False)
    monkeypatch.delenv("MVSEARCH_MIRROR", raising=False)


def _serve_fashion(root: Path, monkeypatch, base: str) -> None:
    """Fixture idx files on the server, with a SOURCES entry carrying their real checksums."""
    write_idx(root, classes=10, n_train=30)
    remotes = tuple(download.Remote(f"{base}/{p.name}", p.name, hashlib.md5(p.read_bytes()).hexdigest())
                    for p in sorted(root.iterdir()))
    monkeypatch.setitem(download.SOURCES, "fashion-mnist", remotes)


def test_download_fetches_verifies_and_loads(tmp_path, http_root, monkeypatch, nowhere):
    root, base = http_root
    _serve_fashion(root, monkeypatch, base)
    with pytest.raises(DataError, match="not found"):  # nothing is fetched without the flag
        load_data("fashion-mnist", resolution=8, cache_dir=tmp_path / "c")
    d = load_data("fashion-mnist", resolution=8, cache_dir=tmp_path / "c", download=True)
    assert d.train_x.shape == (30, 3, 8, 8) and d.location == str(tmp_path / "c" / "fashion-mnist")
    got = sorted(p.name for p in (tmp_path / "c" / "fashion-mnist").iterdir())
    assert got == sorted(p.name for p in root.iterdir())  # the four files, no .part left
    # found locally from now on, without the flag
    assert load_data("fashion-mnist", resolution=8, cache_dir=tmp_path / "c").cached is True


def test_download_checksum_mismatch_keeps_nothing(tmp_path, http_root, monkeypatch, nowhere):
    root, base = http_root
    write_idx(root, classes=10, n_train=30)  # served under the official names, but not the official bytes
    monkeypatch.setenv("MVSEARCH_MIRROR", base)
    with pytest.raises(DataError, match=r"md5 checksum mismatch \(expected 8d4fb7e6c68d591d4c3dfef9ec88bf0d"):
        load_data("fashion-mnist", resolution=8, cache_dir=tmp_path / "c", download=True)
    assert list((tmp_path / "c" / "fashion-mnist").iterdir()) == []


def test_download_unreachable_is_one_clear_error(tmp_path, http_root, monkeypatch, nowhere):
    root, base = http_root  # an empty server: every file is a 404
    monkeypatch.setenv("MVSEARCH_MIRROR", base)
    with pytest.raises(DataError, match=r"cannot download http://127.0.0.1:\d+/cifar-10-python.tar.gz"):
        load_data("cifar10", resolution=8, cache_dir=tmp_path / "c", download=True)
    assert list((tmp_path / "c" / "cifar10").iterdir()) == []


def test_already_downloaded_files_are_not_fetched_again(tmp_path, http_root, monkeypatch, nowhere):
    root, base = http_root
    _serve_fashion(root, monkeypatch, base)
    download.fetch("fashion-mnist", tmp_path / "dl")
    for p in root.iterdir():
        p.unlink()  # the server is now empty: a second fetch must not need it
    download.fetch("fashion-mnist", tmp_path / "dl")
    assert len(list((tmp_path / "dl").iterdir())) == 4


def test_official_sources_are_complete():
    for name in ("fashion-mnist", "mnist"):
        assert len(download.SOURCES[name]) == 4
    for remotes in download.SOURCES.values():
        for r in remotes:
            assert r.url.endswith(r.filename) and len(r.checksum) == 32  # md5 hex digests
