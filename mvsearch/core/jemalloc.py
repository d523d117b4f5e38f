"""Train on jemalloc when the machine has it: the held-memory speed at a smaller peak.

With glibc's malloc a training step either faults its activations in afresh every step (glibc's
default: large blocks are mmapped and unmapped) or, with :func:`mvsearch.core.allocator.hold_freed_memory`,
keeps them on one heap, where blocks of many sizes leave holes the next step does not fill and the
heap creeps above what is live. jemalloc serves each size from its own size class and, with its
decay off (``dirty_decay_ms:-1,muzzy_decay_ms:-1``), keeps freed pages for reuse. Measured on the
mobilevit_s proxy step (batch 64, 64x64, one thread, 32 steps; ``bench/RESULTS.md``): glibc held
4.12 GB at 20.4 img/s, jemalloc without decay 2.81 GB at 20.4 img/s, jemalloc with its default
decay 2.64 GB at 10.2 img/s.

A process cannot change its malloc once it runs, so the ``mvsearch`` command re-executes itself
once, before it imports torch, with ``LD_PRELOAD`` naming the library (:func:`preload_env`), for
the commands that train. ``--jobs`` workers inherit that environment. Nothing happens when:

* ``MVSEARCH_JEMALLOC=0`` (or the library is not found: then glibc's held memory, as before);
* the process already runs on jemalloc, or the re-executed process did not (no second try);
* not Linux.

``MVSEARCH_JEMALLOC=PATH`` names the library; the usual places of Debian's and Fedora's
``libjemalloc.so.2`` are searched otherwise (``apt-get install libjemalloc2``). A ``MALLOC_CONF``
the user set wins; with ``MVSEARCH_HOLD_MEMORY=0`` jemalloc keeps its default decay.
"""
from __future__ import annotations

import ctypes
import functools
import os
import sys
from collections.abc import Mapping

from mvsearch.core.errors import MvsearchError

ENV = "MVSEARCH_JEMALLOC"
#: set in the re-executed process's environment: it never re-executes again
GUARD = "MVSEARCH_JEMALLOC_EXEC"
#: freed pages stay in the process (no decay, so no page faults re-touching them); purged by :func:`purge`
HOLD_CONF = "dirty_decay_ms:-1,muzzy_decay_ms:-1"
PLACES = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/lib",
          "/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu")
NAME = "libjemalloc.so.2"
#: MALLCTL_ARENAS_ALL: "arena.4096.purge" purges every arena
ALL_ARENAS = 4096


def _off(value: str | None) -> bool:
    return (value or "").strip().lower() in ("0", "false", "no", "off")


def library(environ: Mapping[str, str] = os.environ) -> str | None:
    """The jemalloc shared library to preload, or None (switched off, or not on this machine).

    Raises :class:`MvsearchError` when ``MVSEARCH_JEMALLOC`` names a file that does not exist.
    """
    value = environ.get(ENV, "").strip()
    if _off(value):
        return None
    if value and value.lower() not in ("1", "true", "yes", "on"):
        if not os.path.isfile(value):
            raise MvsearchError(f"{ENV}={value!r}: no such file; name libjemalloc.so.2's path, "
                                f"or set {ENV}=0 to train on glibc's malloc")
        return os.path.abspath(value)
    for place in PLACES:
        path = os.path.join(place, NAME)
        if os.path.isfile(path):
            return path
    return None


def loaded() -> bool:
    """Whether this process's malloc is jemalloc (its library is mapped and exports ``mallctl``)."""
    return _mallctl() is not None


@functools.cache
def _mallctl():
    if not sys.platform.startswith("linux"):
        return None
    try:
        with open("/proc/self/maps") as f:
            if "libjemalloc" not in f.read():
                return None
        fn = ctypes.CDLL(None).mallctl
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
    fn.restype = ctypes.c_int
    return fn


def holds() -> bool:
    """Whether this process runs on jemalloc with its decay off (freed pages stay until :func:`purge`)."""
    fn = _mallctl()
    if fn is None:
        return False
    value, size = ctypes.c_ssize_t(0), ctypes.c_size_t(ctypes.sizeof(ctypes.c_ssize_t))
    if fn(b"opt.dirty_decay_ms", ctypes.byref(value), ctypes.byref(size), None, 0) != 0:
        return False
    return value.value == -1


def purge() -> bool:
    """Hand every arena's free pages back to the kernel (at the end of a training); False if not on jemalloc."""
    fn = _mallctl()
    return fn is not None and fn(f"arena.{ALL_ARENAS}.purge".encode(), None, None, None, 0) == 0


def preload_env(environ: Mapping[str, str] = os.environ) -> dict[str, str] | None:
    """The environment to re-execute this command in, on jemalloc; None where that does not apply."""
    if not sys.platform.startswith("linux") or environ.get(GUARD) or loaded():
        return None
    path = library(environ)
    if path is None:
        return None
    env = dict(environ)
    env["LD_PRELOAD"] = f"{path} {environ['LD_PRELOAD']}" if environ.get("LD_PRELOAD") else path
    if not environ.get("MALLOC_CONF") and not _off(environ.get("MVSEARCH_HOLD_MEMORY")):
        env["MALLOC_CONF"] = HOLD_CONF
    env[GUARD] = "1"
    return env


def name() -> str:
    """This process's malloc, for a report: ``jemalloc``, ``jemalloc (held)`` or ``glibc``/``other``."""
    if loaded():
        return "jemalloc (held)" if holds() else "jemalloc"
    try:
        ctypes.CDLL(None).gnu_get_libc_version
        return "glibc"
    except (OSError, AttributeError):
        return "other"


__all__ = ["ENV", "GUARD", "HOLD_CONF", "library", "loaded", "holds", "purge", "preload_env", "name"]
