"""The one exception hierarchy of mvsearch.

Every error a user can cause derives from :class:`MvsearchError`. The CLI turns it into a single
line on stderr and exit code 2 (no traceback); library code never prints or exits.
"""
from __future__ import annotations






class MvsearchError(Exception):
    """Base class: a problem the user can act on. ``str(err)`` is the whole message."""


class ArchError(MvsearchError, ValueError):
    """An architecture config breaks a rule (names the field, the rule and the value)."""


class SpaceError(MvsearchError, ValueError):
    """A search-space YAML is invalid or impossible."""


class BudgetError(MvsearchError, ValueError):
    """A budget string cannot be parsed, or no architecture fits it."""


class DataError(MvsearchError):
    """A dataset cannot be found, read or decoded."""


class TrainError(MvsearchError):
    """Training could not go on."""


class NonFiniteLossError(TrainError):
    """The training loss became NaN or infinite."""


class StudyError(MvsearchError):
    """A study or trial cannot be found or used."""


class ExportError(MvsearchError):
    """A model definition could not be exported."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when the message is empty)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
