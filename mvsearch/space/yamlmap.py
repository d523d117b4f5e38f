"""YAML with line numbers: parse a space file keeping each key path's line, so errors read ``file:line: path: message``."""
from __future__ import annotations

import difflib
import re
from typing import Any, Optional, Union, get_args, get_origin
from pydantic import BaseModel, ValidationError

from mvsearch.core.errors import SpaceError
from mvsearch.core.yamlsafe import KeyPath, dotted, load_with_lines
from mvsearch.space.schema import SpaceSpec


Path_ = KeyPath  # a key path: ("arch", "layer3", "dim")


def _yaml_with_lines(text: str, file: str) -> tuple[Any, dict[Path_, int]]:
    """Parse YAML; also return the 1-based line of every key path (see :mod:`mvsearch.core.yamlsafe`:
    decimal integers only, duplicate keys refused, bounded nesting, aliases and size)."""
    return load_with_lines(text, file, SpaceError)


_dotted = dotted


class _Locator:
    """Turns (key path, message) into ``file:line: path: message``."""

    def __init__(self, file: str, lines: dict[Path_, int]) -> None:
        self.file, self.lines = file, lines

    def error(self, path: Path_, msg: str) -> SpaceError:
        m = re.match(r"^@([^@]*)@(.*)$", msg, re.S)
        if m:  # a key inside the value (knob ranges, list items)
            sub = m.group(1)
            path = path + ((int(sub),) if sub.isdigit() else (sub,))
            msg = m.group(2)
        line = None
        for i in range(len(path), -1, -1):
            if path[:i] in self.lines:
                line = self.lines[path[:i]]
                break
        where = f"{self.file}:{line}" if line is not None else self.file
        return SpaceError(f"{where}: {_dotted(path)}: {msg}")


def _model_at(path: Path_) -> type[BaseModel] | None:
    """The pydantic model class that validates the mapping at ``path``."""
    model: Any = SpaceSpec
    for key in path:
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or key not in model.model_fields:
            return None
        ann = model.model_fields[key].annotation
        while get_origin(ann) in (Union, Optional) or (get_origin(ann) is not None and type(None) in get_args(ann)):
            ann = next(a for a in get_args(ann) if a is not type(None))
        model = ann
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _pydantic_error(exc: ValidationError, loc: _Locator) -> SpaceError:
    errors = exc.errors()
    # a misspelt key is reported as both "unknown key" and "required key is missing": the first,
    # with its "did you mean", is the one that tells the user what to fix
    err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    path = tuple(err["loc"])
    etype = err["type"]
    if etype == "extra_forbidden":
        parent = _model_at(path[:-1])
        known = list(parent.model_fields) if parent is not None else []
        hint = difflib.get_close_matches(str(path[-1]), known, n=1)
        did = f"; did you mean {hint[0]!r}?" if hint else (f"; known: {', '.join(known)}" if known else "")
        return loc.error(path, f"unknown key{did}")
    if etype == "missing":
        return loc.error(path, "required key is missing")
    msg = err["msg"]
    if etype == "value_error":
        msg = msg.removeprefix("Value error, ")
        return loc.error(path, msg)
    if etype == "literal_error":
        return loc.error(path, f"{msg.replace('Input should be', 'must be')}, got {err.get('input')!r}")
    return loc.error(path, f"{msg[0].lower()}{msg[1:]}, got {err.get('input')!r}")
