"""Atomic file writes: a temporary file beside the target, then one rename.

A reader (or a crash, Ctrl-C, a full disk) never sees half a file: the target is either the old
file or the whole new one. Every file mvsearch writes goes through :func:`atomic_path` (pages,
exports, the data cache, weights, downloads).

The target must be a regular file or absent: writing over a device node, a directory or a FIFO is
refused (a rename would replace the node itself, e.g. ``-o /dev/full`` run as root).
"""
from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path
from typing import Iterator

from mvsearch.core.errors import MvsearchError


def check_target(path: str | os.PathLike) -> Path:
    """``path`` as a Path; MvsearchError if something other than a regular file stands there."""
    path = Path(path)
    try:
        st = path.lstat()
    except FileNotFoundError:
        return path
    except OSError as exc:
        raise MvsearchError(f"cannot write {str(path)!r}: {exc.strerror or exc}") from None
    if stat.S_ISLNK(st.st_mode):
        try:
            st = path.stat()
        except OSError:  # a dangling link: the rename replaces the link itself
            return path
    if not stat.S_ISREG(st.st_mode):
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        raise MvsearchError(f"cannot write {str(path)!r}: it is {kind}; choose a file path")
    return path


def _umask() -> int:
    """The process's umask, read without changing it where Linux tells it (``/proc/self/status``);
    elsewhere set and put back at once (which briefly leaves other threads' new files at umask 0)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, mode: int | None = None) -> Iterator[Path]:
    """Yield a fresh temporary path beside ``path``; on a clean exit rename it onto ``path``.

    Write the temporary file however you like (``torch.save``, ``write_text``, an exporter); on an
    exception it is removed and ``path`` is left as it was. The new file gets the usual permissions
    of a new file (``0o666 & ~umask``) unless ``mode`` is given. The folder must exist.
    """
    path = check_target(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.part")
    try:
        yield tmp
        if tmp.exists():
            os.chmod(tmp, mode if mode is not None else 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def write_atomic(path: str | os.PathLike, data: str | bytes, *, encoding: str = "utf-8") -> Path:
    """Write ``data`` (text or bytes) to ``path`` atomically; returns ``path`` as a Path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data, encoding=encoding)
    return path


def save_state_dict(model, path: str | os.PathLike) -> None:
    """``model``'s state_dict (CPU tensors) written atomically with ``torch.save``. The folder must exist."""
    import torch

    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


__all__ = ["atomic_path", "write_atomic", "save_state_dict", "check_target"]
