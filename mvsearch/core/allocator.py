"""Hold freed memory in the process while training on CPU (glibc's malloc only).

A training step on CPU allocates and frees hundreds of megabytes of activations and gradients.
glibc serves every block above its mmap threshold (128 KiB at start, raised dynamically to at most
32 MiB) with a fresh ``mmap`` and returns it with ``munmap`` on free, and it trims the top of the
heap back to the kernel. The next step then faults every page in again, and the kernel zeroes
each one: measured on mobilevit_xxs at the default proxy (batch 64), about 200,000 minor page
faults and 0.3 s of kernel time per 0.8 s step.

:func:`hold_freed_memory` switches that off for the duration of a training: no mmap for large
blocks (``M_MMAP_MAX = 0``, so they come from the heap) and no trimming (``M_TRIM_THRESHOLD``
2 GiB), so a step reuses the pages the previous step freed instead of faulting fresh ones in. The
pages are not handed back between steps, and the heap grows past the live peak (below). On
leaving the outermost block the settings go back to the values glibc's own dynamic policy settles
at after its first large free (mmap threshold 32 MiB, trim threshold 64 MiB; mmap allowed again:
the values :func:`steady_allocator` fixes for latency measurement), and ``malloc_trim(0)``
returns the held pages to the kernel.

Nothing is changed when the C library is not glibc (macOS, musl), when ``MVSEARCH_HOLD_MEMORY=0``,
or when the user already tuned malloc (``GLIBC_TUNABLES`` naming ``glibc.malloc``, or any of
glibc's ``MALLOC_*_`` variables): their settings win. When the process runs on jemalloc
(:mod:`mvsearch.core.jemalloc`, which the ``mvsearch`` command preloads when the machine has it),
jemalloc's own setting holds the memory (decay off) and leaving the block purges its arenas.

What it costs and buys. With every block on one heap, glibc's fits leave holes that the next,
differently sized block does not fill, so the heap settles above what is live at once. Measured
2026-11-29 by ``python bench/bench_memory.py --repeats 2 --threads 1`` (the 2-core test machine,
shared with another training; torch 2.13 CPU, glibc 2.36): one proxy training of mobilevit_s under
the ``mobile`` space's proxy (Fashion-MNIST at 64x64, stem stride 1, batch 64, 3 epochs of 1,024
images, 512 validation), each setting in a fresh process, interleaved:

    setting                    peak RSS        training img/s   img per CPU-s   minor faults
    held (the default)         5.70, 5.00 GB   19.3, 18.8       19.2, 18.9      1.3M, 1.1M
    MVSEARCH_HOLD_MEMORY=0     3.95, 4.12 GB   14.5, 14.3       14.6, 14.4      21.8M, 25.3M

Again at 10:27 UTC, one round, 512 validation images: held 4.37 GB at 18.7 img/s, freed 4.13 GB at
16.1 img/s (1.16x for 0.24 GB), and freed with torch's large blocks on transparent huge pages
(``THP_MEM_ALLOC_ENABLE=1``) 4.49 GB at 15.1 img/s: each huge-page fault zeroes 2 MiB, so that is
slower than freed memory and is not used.

Since the trainer's lean BatchNorm + SiLU units (:mod:`mvsearch.model.bn_silu`), whose backward
allocates a fresh block per unit: held 4.11-4.20 GB at 18.4-19.7 img/s, freed 3.20 GB at 13.1
img/s (53M page faults against 0.9M), 1.5x.

Held memory costs 0.24-1.75 GB of peak and buys 1.16-1.5x training speed (wall and CPU time agree; the
whole training, validation included, took 213 s against 266 s), so it stays on by default. Where
memory rather than cores limits how many trainings run at once, ``MVSEARCH_HOLD_MEMORY=0`` is the
setting that keeps this training lowest (3.2 GB with the lean units). Two changes in the trainer made held memory cheaper
(before them, with 3,072 validation images: held 7.19-7.55 GB, freed 4.31-4.32 GB): validation
at the training batch rather than 256, whose larger blocks do not fit the holes training leaves and
grow the heap, and the gradients freed before a step's forward pass rather than after it, so they
do not sit among the next step's activations. One epoch of 512 images, 3,072 validation, held:
7.17 GB with validation at 256, 5.98 GB at 64, 5.32 GB with both changes.
"""
from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import sys
import threading
from typing import Iterator

from mvsearch.core import jemalloc




M_TRIM_THRESHOLD = -1


M_MMAP_THRESHOLD = -3


M_MMAP_MAX = -4


HOLD_TRIM = 2**31 - 1  # the largest value mallopt takes (an int): in effect, never trim while training


# glibc's values after its dynamic threshold has met a large free (DEFAULT_MMAP_THRESHOLD_MAX on 64-bit)
STEADY_MMAP_THRESHOLD = 32 << 20


STEADY_TRIM = 2 * STEADY_MMAP_THRESHOLD


DEFAULT_MMAP_MAX = 65536  # glibc's DEFAULT_MMAP_MAX


_lock = threading.Lock()


_depth = 0


_libc: ctypes.CDLL | None | bool = False  # False: not looked up yet


def _glibc() -> ctypes.CDLL | None:
    """The process's glibc, or None (not Linux, not glibc)."""
    global _libc
    if _libc is False:
        _libc = None
        if sys.platform.startswith("linux"):
            try:
                lib = ctypes.CDLL(None)
                lib.gnu_get_libc_version.restype = ctypes.c_char_p
                lib.gnu_get_libc_version()
                lib.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
                lib.malloc_trim.argtypes = [ctypes.c_size_t]
                _libc = lib
            except (OSError, AttributeError):
                _libc = None
    return _libc


def user_tuned() -> bool:
    """True when the environment already sets glibc malloc options (then they are left alone)."""
    if "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", ""):
        return True
    return any(k.startswith("MALLOC_") and k.endswith("_") for k in os.environ)


def available() -> bool:
    """Whether :func:`hold_freed_memory` would change anything in this process."""
    if os.environ.get("MVSEARCH_HOLD_MEMORY", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    if jemalloc.loaded():  # glibc's malloc is not this process's: jemalloc holds when its decay is off
        return jemalloc.holds()
    return _glibc() is not None and not user_tuned()


@functools.cache
def steady_allocator() -> bool:
    """Fix glibc's mmap and trim thresholds at the values its dynamic policy settles at (32 MiB,
    64 MiB), once per process; False where the C library is not glibc.

    Until glibc first frees a large block, every big activation is mmap'ed and page-faulted
    afresh, so the first models a process times run up to a third slower than the same models
    later (bench/bench_latency.py). Latency measurement calls this before timing anything.
    """
    lib = _glibc()
    if lib is None:
        return False
    return (bool(lib.mallopt(M_MMAP_THRESHOLD, STEADY_MMAP_THRESHOLD))
            and bool(lib.mallopt(M_TRIM_THRESHOLD, STEADY_TRIM)))


def _set(param: int, value: int) -> None:
    lib = _glibc()
    if lib is not None:
        lib.mallopt(param, value)


@contextlib.contextmanager
def hold_freed_memory(enabled: bool = True) -> Iterator[bool]:
    """Keep freed memory in the process inside the block (nestable, thread-safe); yields whether it did."""
    global _depth
    active = enabled and available()
    if not active:
        yield False
        return
    on_jemalloc = jemalloc.loaded()
    with _lock:
        _depth += 1
        if _depth == 1 and not on_jemalloc:
            _set(M_MMAP_MAX, 0)
            _set(M_TRIM_THRESHOLD, HOLD_TRIM)
    try:
        yield True
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and on_jemalloc:
                jemalloc.purge()  # what the training held goes back to the kernel
            elif _depth == 0:
                _set(M_MMAP_MAX, DEFAULT_MMAP_MAX)
                _set(M_MMAP_THRESHOLD, STEADY_MMAP_THRESHOLD)
                _set(M_TRIM_THRESHOLD, STEADY_TRIM)
                lib = _glibc()
                if lib is not None:
                    lib.malloc_trim(0)
