"""YAML read safely: one loader for space files and architecture files, with bounds on what a file may ask.

``yaml.safe_load`` builds no objects but still lets a file cost without limit: 20,000 nested
lists overflow Python's stack, nine levels of ten aliases each ("billion laughs") expand to 10^9
nodes for anything that walks the result, and a 5,000-digit integer stops Python's ``int()``. This
loader, before anything is built from a file:

* reads at most :data:`~mvsearch.core.limits.MAX_YAML_BYTES` of UTF-8 text (a binary file is an error);
* refuses nesting deeper than :data:`~mvsearch.core.limits.MAX_YAML_DEPTH`, more than
  :data:`~mvsearch.core.limits.MAX_YAML_ALIASES` alias uses, more than
  :data:`~mvsearch.core.limits.MAX_YAML_NODES` nodes with the aliases expanded, and a recursive alias;
* reads integers in decimal only (YAML 1.1 would read ``0x10`` as 16 and ``010`` as 8: here they stay
  text, which the schema then refuses), with at most :data:`~mvsearch.core.limits.MAX_INT_DIGITS` digits;
* refuses a key given twice in one mapping (YAML would keep the last silently).

Errors name the file and line (``t.yaml:12: ...``) and are raised as the caller's error type.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Callable

import yaml

from mvsearch.core.errors import MvsearchError
from mvsearch.core.limits import (MAX_INT_DIGITS, MAX_YAML_ALIASES, MAX_YAML_BYTES, MAX_YAML_DEPTH,
                                  MAX_YAML_NODES)
from mvsearch.core.text import quote

KeyPath = tuple  # a key path: ("arch", "layer3", "dim") or ("arch", "layer3", "patch", 0)
_INT = "tag:yaml.org,2002:int"


class _Refused(Exception):
    def __init__(self, message: str, mark: Any) -> None:
        super().__init__(message)
        self.mark = mark


class SafeLoader(yaml.SafeLoader):
    """SafeLoader with decimal integers only, and the depth and alias bounds of this module."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:  # noqa: D102 (PyYAML's hook)
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_YAML_ALIASES:
                raise _Refused(f"more than {MAX_YAML_ALIASES} aliases (*name) exceeds mvsearch's bound",
                               self.peek_event().start_mark)
            return super().compose_node(parent, index)
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise _Refused(f"nesting deeper than {MAX_YAML_DEPTH} levels exceeds mvsearch's bound",
                               self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


SafeLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _INT]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
SafeLoader.add_implicit_resolver(_INT, re.compile(r"^[-+]?(?:0|[1-9][0-9_]*)$"), list("-+0123456789"))


def dotted(path: KeyPath) -> str:
    """``("arch", "layer3", "patch", 0)`` -> ``arch.layer3.patch[0]``."""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def _key(node: yaml.Node) -> str:
    return node.value if isinstance(node, yaml.ScalarNode) else f"<{node.id}>"


def _check_tree(root: yaml.Node) -> dict[KeyPath, int]:
    """Walk the tree with every alias expanded (iteratively, stopping at the bounds): nesting, size,
    integer digits and duplicate keys. Returns the 1-based line of every key path."""
    lines: dict[KeyPath, int] = {}
    stack: list[tuple[yaml.Node, KeyPath, int]] = [(root, (), 1)]
    count = 0
    while stack:
        n, path, depth = stack.pop()
        count += 1
        if count > MAX_YAML_NODES:
            raise _Refused(f"more than {MAX_YAML_NODES:,} nodes with its aliases expanded exceeds mvsearch's "
                           f"bound (an alias bomb?)", n.start_mark)
        if depth > MAX_YAML_DEPTH:
            raise _Refused(f"nesting deeper than {MAX_YAML_DEPTH} levels (aliases expanded) exceeds mvsearch's "
                           f"bound", n.start_mark)
        lines.setdefault(path, n.start_mark.line + 1)
        if isinstance(n, yaml.ScalarNode):
            if n.tag == _INT and len(n.value.lstrip("+-").replace("_", "")) > MAX_INT_DIGITS:
                raise _Refused(f"{dotted(path)}: an integer of more than {MAX_INT_DIGITS} digits exceeds "
                               f"mvsearch's bound", n.start_mark)
        elif isinstance(n, yaml.SequenceNode):
            for i in range(len(n.value) - 1, -1, -1):
                stack.append((n.value[i], path + (i,), depth + 1))
        elif isinstance(n, yaml.MappingNode):
            seen: set[str] = set()
            for k, v in n.value:
                key = _key(k)
                if key in seen and key != "<<":
                    raise _Refused(f"{dotted(path + (key,))}: duplicate key; each key may appear once", k.start_mark)
                seen.add(key)
                lines[path + (key,)] = k.start_mark.line + 1
            for k, v in reversed(n.value):
                stack.append((v, path + (_key(k),), depth + 1))
                stack.append((k, path, depth + 1))
    return lines


def load_with_lines(text: str, where: str, error: type[MvsearchError]) -> tuple[Any, dict[KeyPath, int]]:
    """Parse ``text`` (from ``where``) -> (data, the 1-based line of every key path), or ``error``."""
    if len(text) > MAX_YAML_BYTES:
        raise error(f"{where}: larger than {MAX_YAML_BYTES // 2**20} MiB, mvsearch's bound for a YAML file")
    loader = None
    try:
        loader = SafeLoader(text)
        node = loader.get_single_node()
        if node is None:
            return None, {}
        lines = _check_tree(node)
        return loader.construct_document(node), lines
    except _Refused as exc:
        raise error(f"{where}:{exc.mark.line + 1}: {exc}") from None
    except yaml.reader.ReaderError as exc:  # a control character, or not text at all
        char = exc.character if isinstance(exc.character, int) else ord(exc.character)
        raise error(f"{where}: not valid YAML (character 0x{char:02x} at offset {exc.position} is not "
                    f"allowed in YAML text)") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"{where}:{mark.line + 1}" if mark is not None else where
        problem = getattr(exc, "problem", None) or str(exc).strip().splitlines()[0]
        raise error(f"{at}: not valid YAML ({problem})") from None
    except (ValueError, RecursionError, MemoryError) as exc:  # a constructor's own failure: one line
        raise error(f"{where}: cannot read its values ({type(exc).__name__})") from None
    finally:
        if loader is not None:
            loader.dispose()


def load(text: str, where: str, error: type[MvsearchError]) -> Any:
    """:func:`load_with_lines` without the lines."""
    return load_with_lines(text, where, error)[0]


def read_text(path: str | os.PathLike, error: type[MvsearchError], *, what: str = "a YAML file",
              hint: Callable[[], str] | None = None) -> str:
    """A UTF-8 text file of at most :data:`MAX_YAML_BYTES`; ``error`` (one line, path quoted) otherwise."""
    p = Path(path)
    try:
        with open(p, "rb") as f:
            raw = f.read(MAX_YAML_BYTES + 1)
    except FileNotFoundError:
        raise error(f"{quote(p)}: no such file" + (f"; {hint()}" if hint else "")) from None
    except IsADirectoryError:
        raise error(f"{quote(p)}: is a directory; pass {what}") from None
    except OSError as exc:
        raise error(f"{quote(p)}: cannot read ({exc.strerror or exc})") from None
    except ValueError as exc:  # a NUL character in the path
        raise error(f"{quote(p)}: not a usable path ({exc})") from None
    if len(raw) > MAX_YAML_BYTES:
        raise error(f"{quote(p)}: larger than {MAX_YAML_BYTES // 2**20} MiB, mvsearch's bound for a YAML file")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{quote(p)}: not UTF-8 text (byte {exc.start} is 0x{raw[exc.start]:02x}), so not "
                    f"{what}") from None


__all__ = ["SafeLoader", "load", "load_with_lines", "read_text", "dotted", "KeyPath"]
