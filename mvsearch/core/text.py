"""Text that reaches a terminal: control characters out, paths quoted, long values cut.

Strings read from files and databases (a space's description, study names, data specs) may hold
escape sequences that retitle or redraw a terminal, and a path may hold a newline that splits the
one error line. :func:`printable` drops every non-printable character (Python's definition:
control, format and separator characters other than the space), :func:`quote` writes a path as a
``repr`` literal (escaped, on one line), and :func:`one_line` escapes what is left in a message.
"""
from __future__ import annotations

import os
from typing import Any

#: longest value echoed back in a message (a 5,000-digit number is cut, its length given)
SHOWN = 60


def printable(text: Any) -> str:
    """``text`` without control characters (ESC, newlines, tabs, bidi overrides...)."""
    s = str(text)
    return s if s.isprintable() else "".join(c for c in s if c.isprintable())


def _escape(c: str) -> str:
    return c if c.isprintable() else repr(c)[1:-1]


def one_line(text: Any) -> str:
    """``text`` on one line: every non-printable character written as its escape (``\\n``, ``\\x1b``)."""
    s = str(text)
    return s if s.isprintable() else "".join(_escape(c) for c in s)


def quote(path: str | os.PathLike | Any) -> str:
    """A path for a message: ``'studies/x.db'``, escaped like ``repr`` so it stays on one line."""
    return repr(os.fspath(path) if isinstance(path, os.PathLike) else str(path))


def shorten(value: Any, limit: int = SHOWN) -> str:
    """``repr``-like text of a value received, cut to ``limit`` characters (with its length)."""
    s = value if isinstance(value, str) else None
    if isinstance(value, int) and not isinstance(value, bool):
        digits = len(str(abs(value))) if abs(value) < 10**limit else None
        if digits is None or digits > limit:
            return f"a {'negative ' if value < 0 else ''}number of more than {limit} digits"
        return str(value)
    text = repr(s) if s is not None else one_line(repr(value))
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(s) if s is not None else len(text):,} characters)"


__all__ = ["printable", "one_line", "quote", "shorten", "SHOWN"]
