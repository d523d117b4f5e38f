"""The ``mvsearch`` command line: a click group of thin commands.

Each command lives in ``mvsearch/commands/<name>.py`` as a click command called ``command``: it
parses options, calls one library function and prints. A :class:`~mvsearch.errors.MvsearchError`
raised anywhere, and a command's usage error (an unknown option, a value outside its choices),
becomes one line on stderr and exit code 2, with no traceback.
"""
from __future__ import annotations

import importlib
import sys
import click

from mvsearch import __version__
from mvsearch.core.errors import MvsearchError


#: every command, in the order ``mvsearch --help`` lists them
COMMANDS = ("count", "train", "space", "run", "trials", "latency", "pareto", "report", "export")


class _Group(click.Group):
    """Turns the project's errors and a command's usage errors (unknown option, bad choice) into one
    line and exit 2; Ctrl-C into exit 130."""

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except MvsearchError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except click.UsageError as exc:  # a bad option or value of a command: one line too
            if exc.ctx is not None and exc.ctx is not ctx:
                where = exc.ctx.command_path
            elif ctx.invoked_subcommand:  # raised while the command's own context was being made
                where = f"{ctx.command_path} {ctx.invoked_subcommand}"
            else:
                where = ctx.command_path
            click.echo(f"error: {exc.format_message().rstrip('.')} (see '{where} --help')", err=True)
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
    main.add_command(importlib.import_module(f"mvsearch.cli.{_name}").command, name=_name)
