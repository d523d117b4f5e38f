"""A page of mvsearch: the blocks it is made of, its jinja2 template, and writing it safely.

One template (``templates/page.html.j2``, with ``page.css`` and ``page.js``) rendered with
autoescape on: the Python side hands it data (sections of notes, figures, tables and facts), never
HTML strings, apart from plotly's own figure markup. Pages work with no network: plotly.js is
inlined once in the page head, and the only other script sorts the tables. A page is written whole
or not at all (:func:`mvsearch.core.atomic.write_atomic`), and it carries
``<meta name="generator" content="mvsearch ...">``: an existing file without that marker is not
ours, and is only replaced with ``force``. PNG copies of figures need kaleido.
"""
from __future__ import annotations

import functools
import importlib.util
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from markupsafe import Markup

from mvsearch import __version__
from mvsearch.core.atomic import write_atomic
from mvsearch.core.errors import MvsearchError


GENERATOR = f"mvsearch {__version__}"
MARKER = b'<meta name="generator" content="mvsearch'  # in the head of every page we write
MARKER_WITHIN = 4096  # bytes of an existing file searched for the marker
#: the titles of the pages releases before the marker wrote (theirs too, so they are replaced as before)
LEGACY = (b'<html lang="en"><head><meta charset="utf-8">\n<title>mvsearch report: ',
          b'<html lang="en"><head><meta charset="utf-8">\n<title>Pareto front: accuracy vs ')


# ---------------------------------------------------------------------- what a page is made of
@dataclass(frozen=True)
class Note:
    """A sentence shown where a figure would be (``code``: a command to run, set in monospace)."""

    text: str
    code: str | None = None
    kind: str = "note"


@dataclass(frozen=True)
class Figure:
    html: Markup  # plotly's div and script (plotly.js itself is in the page head)
    kind: str = "figure"


@dataclass(frozen=True)
class Facts:
    items: tuple[tuple[str, str], ...]  # (label, text), shown as a definition list
    kind: str = "facts"


@dataclass(frozen=True)
class Details:
    summary: str  # the line shown closed
    text: str  # preformatted, shown when opened
    kind: str = "details"


@dataclass(frozen=True)
class Cell:
    text: str
    value: float | int | None = None  # what a numeric column sorts by (None: missing, sorts last)
    numeric: bool = False
    cls: str = ""


@dataclass(frozen=True)
class Table:
    cls: str  # CSS class ("front", "trials")
    columns: tuple[tuple[str, bool], ...]  # (header, left-aligned)
    rows: tuple[tuple[str, tuple[Cell, ...]], ...]  # (row CSS class, cells)
    order: str  # how the rows are sorted, as the caption says
    kind: str = "table"


@dataclass(frozen=True)
class Section:
    id: str
    heading: str
    blocks: tuple[Any, ...]


def num(v: Any, text: str | None = None) -> Cell:
    """A numeric cell: sorts by ``v`` (missing values last), shows ``text``."""
    ok = isinstance(v, (int, float)) and not isinstance(v, bool)
    return Cell(text if text is not None else ("-" if v is None else str(v)), v if ok else None, True)


def txt(text: Any, cls: str = "") -> Cell:
    """A text cell: sorts alphabetically."""
    return Cell(str(text), cls=cls)


def pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.2f}%"


# ---------------------------------------------------------------------- rendering and writing
@functools.lru_cache(maxsize=1)
def _env() -> Any:
    import jinja2

    # a PackageLoader reads the templates from an installed wheel or zip as well as from a checkout
    return jinja2.Environment(loader=jinja2.PackageLoader("mvsearch.analysis", "templates"), autoescape=True,
                              undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def _asset(name: str) -> Markup:
    """A CSS or JS file of the templates folder, inlined as it is (not parsed as a template)."""
    env = _env()
    return Markup(env.loader.get_source(env, name)[0])


def render(title: str, subtitle: Sequence[str], sections: Sequence[Section]) -> str:
    """A whole page: plotly.js inline once, then the sections in order."""
    from plotly.offline import get_plotlyjs

    return _env().get_template("page.html.j2").render(
        title=title, subtitle=list(subtitle), sections=list(sections), generator=GENERATOR,
        css=_asset("page.css"), js=_asset("page.js"), plotlyjs=Markup(get_plotlyjs()))


def figure(fig: Any, div_id: str) -> Figure:
    """A figure as a div and its script, plotly.js left to the page head."""
    height = fig.layout.height or 460
    return Figure(Markup(fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id,
                                     default_height=f"{height}px", config={"displaylogo": False})))


def is_ours(path: Path) -> bool:
    """True when ``path`` is absent, empty, or a page mvsearch wrote (it carries the marker)."""
    try:
        with open(path, "rb") as f:
            head = f.read(MARKER_WITHIN)
    except FileNotFoundError:
        return True
    except OSError:  # a directory, no permission, ...: the write below says what is wrong
        return True
    return not head or MARKER in head or any(head.startswith(b"<!DOCTYPE html>\n" + t) for t in LEGACY)


def check_output(path: str | Path, *, force: bool = False) -> None:
    """MvsearchError unless ``path`` may take a page: absent, empty, one of ours, or ``force``.

    Cheap: commands call it before the slow work too, so a refusal costs nothing.
    """
    if not force and not is_ours(Path(path)):
        raise MvsearchError(f"cannot write {path}: it exists and is not a page mvsearch wrote; "
                            f"pass --force to replace it, or choose another -o path")


def write_page(path: str | Path, text: str, *, force: bool = False) -> Path:
    """Write ``text`` to ``path`` atomically; an existing file that is not our page only with ``force``."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MvsearchError(f"cannot write {path}: {exc.strerror or exc}; choose another -o path") from None
    check_output(path, force=force)
    try:
        return write_atomic(path, text)
    except OSError as exc:
        raise MvsearchError(f"cannot write {path}: {exc.strerror or exc}; choose another -o path") from None


def check_png() -> None:
    """Raise unless kaleido (plotly's static-image engine) is importable."""
    if importlib.util.find_spec("kaleido") is None:
        raise MvsearchError("PNG export needs kaleido and a browser: `pip install kaleido`, or leave out --png")


def write_pngs(figs: dict[str, Any], html_path: Path) -> list[Path]:
    """``<page stem>-<name>.png`` beside the page for each figure; all or none."""
    check_png()
    out = []
    with tempfile.TemporaryDirectory(dir=html_path.parent) as tmp:
        for name, fig in figs.items():
            p = Path(tmp) / f"{html_path.stem}-{name}.png"
            try:
                fig.write_image(str(p), width=1100, height=fig.layout.height or 460, scale=2)
            except Exception as exc:  # kaleido's errors (no browser, ...) are many and untyped
                raise MvsearchError(f"PNG export failed: {str(exc).strip().splitlines()[0]}; "
                                    f"leave out --png, or fix kaleido") from None
            out.append(p)
        final = [html_path.parent / p.name for p in out]
        for src, dst in zip(out, final):
            shutil.move(str(src), dst)
    return final
