"""Ctrl-C and SIGTERM during a search: stop cleanly, never halfway through a storage write.

The first signal while a candidate trains stops it at once (the trial is marked interrupted and
FAIL); between trials, or while the search writes to its storage, it only asks the run to stop
before the next trial. A second signal stops at once.
"""
from __future__ import annotations

import signal
import sys
from typing import Any


class Interrupt:
    """First Ctrl-C/SIGTERM: stop before the next trial, or at once while training; second: at once."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.requested = False
        self.training = False
        self._old: dict[int, Any] = {}
        self._hook: Any = None
        self._in_hook = False
        self._missed = False

    def _handler(self, signum: int, frame: Any) -> None:
        if self._in_hook:  # never raise inside the unraisable hook: Python would swallow it once more
            self._missed = True
            return
        first = not self.requested
        self.requested = True
        if self.training or not first:
            raise KeyboardInterrupt

    def _later(self) -> None:
        """Interrupt the main thread again in a few ms, outside any finalizer or hook."""
        import _thread
        import threading

        timer = threading.Timer(0.005, _thread.interrupt_main)
        timer.daemon = True
        timer.start()

    def _unraisable(self, args: Any) -> None:
        # a KeyboardInterrupt that landed in a weakref or __del__ callback is swallowed by Python
        # ("Exception ignored in ..."): raise it again in the main thread once that has returned
        if isinstance(args.exc_value, KeyboardInterrupt):
            self._in_hook = True
            try:
                self._later()
            finally:
                self._in_hook = False
            if self._missed:  # the timer fired while the hook ran: once more
                self._missed = False
                self._later()
            return
        self._hook(args)

    def set_training(self, on: bool) -> None:
        self.training = on

    def __enter__(self) -> Interrupt:
        try:
            for s in self.SIGNALS:
                self._old[s] = signal.signal(s, self._handler)
        except ValueError:  # not the main thread: leave signals alone
            self._old.clear()
        self._hook, sys.unraisablehook = sys.unraisablehook, self._unraisable
        return self

    def __exit__(self, *exc: Any) -> None:
        sys.unraisablehook = self._hook
        for s, old in self._old.items():
            signal.signal(s, old)


__all__ = ["Interrupt"]
