"""The ``mvsearch`` command line: a click group of thin commands.

Each command lives in ``mvsearch/commands/<name>.py`` as a click command called ``command``: it
parses options, calls one library function and prints. A :class:`~mvsearch.errors.MvsearchError`
raised anywhere becomes one line on stderr and exit code 2, with no traceback.
"""
from __future__ import annotations

import importlib
import sys

import click

from mvsearch import __version__
from mvsearch.errors import MvsearchError

#: every command, in the order ``mvsearch --help`` lists them
COMMANDS = ("count", "train", "space", "run", "trials", "latency", "pareto", "report", "export")


class _Group(click.Group):
    """Turns the project's errors into one line and exit 2; Ctrl-C into exit 130."""

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except MvsearchError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [c for c in COMMANDS if c in self.commands]


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mvsearch")
def main() -> None:
    """Search MobileViT architectures under a compute budget, and report what was found."""


for _name in COMMANDS:
    main.add_command(importlib.import_module(f"mvsearch.commands.{_name}").command, name=_name)
