"""Loading spaces: a file path or the name of a shipped space -> a validated :class:`SearchSpace`."""
from __future__ import annotations

import difflib
import re
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from pydantic import ValidationError

from mvsearch.core.errors import SpaceError
from mvsearch.core.text import quote
from mvsearch.core.yamlsafe import read_text
from mvsearch.space.rules import _check
from mvsearch.space.schema import SpaceSpec
from mvsearch.space.space import SearchSpace
from mvsearch.space.yamlmap import _Locator, _pydantic_error, _yaml_with_lines

if TYPE_CHECKING:  # importlib.resources.abc is Python 3.11+; only annotations use it
    from importlib.resources.abc import Traversable


def parse_space(text: str, file: str = "<string>") -> SearchSpace:
    """Validate YAML text into a SearchSpace (SpaceError with file:line: path: message)."""
    data, lines = _yaml_with_lines(text, file)
    loc = _Locator(file, lines)
    if not isinstance(data, Mapping):
        raise SpaceError(f"{file}: a search space must be a mapping with name, arch (and optionally "
                         f"deployment, proxy, search), got {type(data).__name__}")
    try:
        spec = SpaceSpec.model_validate(data)
    except ValidationError as exc:
        raise _pydantic_error(exc, loc) from None
    space = SearchSpace(spec=spec, file=file, text=text)
    _check(space, loc)
    return space


def shipped_spaces() -> Traversable:
    """The package's own spaces (mobile, tiny): a resource folder, so it works from a wheel too."""
    return resources.files("mvsearch.space") / "spaces"


def spaces_dirs() -> list[Path | Traversable]:
    """Where a bare space name is looked up: ./spaces (the user's own), then the shipped spaces.

    In a checkout the repository's ``spaces`` is a link to the shipped folder; it is listed once.
    """
    own = Path("spaces")
    shipped = shipped_spaces()
    dirs: list[Path | Traversable] = [own]
    if not (isinstance(shipped, Path) and own.exists() and own.resolve() == shipped.resolve()):
        dirs.append(shipped)
    return dirs


def _yaml_files(d: Path | Traversable) -> list[Path | Traversable]:
    try:
        if not d.is_dir():
            return []
        return [f for f in d.iterdir() if f.name.endswith(".yaml") and f.is_file()]
    except OSError:
        return []


def known_spaces() -> list[str]:
    names = set()
    for d in spaces_dirs():
        names.update(f.name[: -len(".yaml")] for f in _yaml_files(d))
    return sorted(names)


def find_space(ref: str) -> Path | Traversable:
    """``spaces/mobile.yaml`` (a file) or ``mobile`` (a name in :func:`spaces_dirs`) -> the file.

    A shipped space comes back as its resource (a :class:`~pathlib.Path` when the package is on
    disk, as in a checkout or an installed wheel).
    """
    try:
        p = Path(ref).expanduser()
        if p.is_file():
            return p
        is_dir = p.is_dir()
    except (OSError, ValueError) as exc:  # an embedded NUL, a name too long, a loop of links
        raise SpaceError(f"--space {quote(ref)}: not a usable path ({getattr(exc, 'strerror', None) or exc})") from None
    looks_like_name = re.fullmatch(r"[A-Za-z0-9_.-]+", ref) is not None and not ref.endswith((".yaml", ".yml"))
    if looks_like_name:
        for d in spaces_dirs():
            for cand in (d / f"{ref}.yaml", d / f"{ref}.yml"):
                if cand.is_file():
                    return cand
    known = known_spaces()
    hint = difflib.get_close_matches(p.stem, known, n=1)
    did = f" (did you mean {hint[0]!r}?)" if hint else ""
    if is_dir:
        raise SpaceError(f"--space {ref}: is a directory; pass a space file such as spaces/mobile.yaml")
    raise SpaceError(f"--space {ref}: no such file or space name{did}; known spaces: "
                     f"{', '.join(known) or 'none'} (pass a name or a path to a .yaml file)")


def load_space(ref: str | Path) -> SearchSpace:
    """Read and validate a space file, or a shipped space by name."""
    path = find_space(str(ref))
    if isinstance(path, Path):  # the user's file: bounded, UTF-8, the path quoted in errors
        return parse_space(read_text(path, SpaceError, what="a space file"), str(path))
    try:  # a shipped space
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpaceError(f"{path}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None
    return parse_space(text, str(path))
