"""The process's peak resident memory (RSS), measured around one training; the machine's free memory.

Linux keeps the peak resident set size of a process as ``VmHWM`` in ``/proc/self/status`` and
lets a process start it again from the current resident size by writing ``5`` to
``/proc/self/clear_refs`` (Linux >= 4.0). A trial calls :func:`reset_peak` before its training and
:func:`peak_rss` after it, so the figure it records is that training's peak (everything resident
at the time: Python, torch, the decoded dataset's touched pages, the network, its activations)
and not an earlier, larger one of the same process. The reset moves the kernel's high-water mark
itself, which ``getrusage``'s ``ru_maxrss`` (and so ``/usr/bin/time``) also reads: a process that
trained several trials reports only its last training's peak there (the main job, 2026-11-29:
2.5 GB against 4.2 GB recorded by its mobilevit_xs trial). The largest ``peak_rss`` of the trials
is the process's peak.

Elsewhere :func:`reset_peak` does nothing (returns False) and :func:`peak_rss` falls back to
``getrusage``'s ``ru_maxrss`` (KiB on Linux, bytes on macOS), which is the peak of the whole
process's life: an upper bound of the training's.
"""
from __future__ import annotations

import os
import sys


def reset_peak() -> bool:
    """Restart the peak (``VmHWM``) from the current resident size; False where the OS does not allow it."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _vmhwm() -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024  # "VmHWM:   123456 kB"
    except (OSError, ValueError, IndexError):
        return None
    return None


def peak_rss() -> int | None:
    """Peak resident bytes of this process since the last :func:`reset_peak` (or its start); None if unknown."""
    peak = _vmhwm() if sys.platform.startswith("linux") else None
    if peak is not None:
        return peak
    try:
        import resource
    except ImportError:  # Windows
        return None
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if maxrss <= 0:
        return None
    return maxrss if sys.platform == "darwin" else maxrss * 1024


def available_memory() -> int | None:
    """Bytes the kernel can hand out without swapping (``MemAvailable``); None where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


__all__ = ["reset_peak", "peak_rss", "available_memory"]
