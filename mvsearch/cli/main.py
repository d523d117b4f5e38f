"""The ``mvsearch`` command line: a click group of thin commands, and its one error boundary.

Each command lives in ``mvsearch/cli/<name>.py`` as a click command called ``command``: it parses
options, calls one library function and prints. A command's module is imported only when it runs
(so ``mvsearch count`` does not load Optuna, and a Ctrl-C while torch loads is handled here).

:meth:`_Group.main` is the one place where what went wrong becomes what the user sees:

* a :class:`~mvsearch.core.errors.MvsearchError` (bad input), a usage error of click (an unknown
  option, a value outside its choices), or an :class:`OSError` from the user's files: one line on
  stderr, ``error: ...`` with every control character escaped, exit code 2;
* Ctrl-C or SIGTERM, at any moment: ``interrupted``, exit code 130 (a second one too);
* anything else is a bug: one line, ``error: internal error (...)`` and how to see the traceback
  (``MVSEARCH_DEBUG=1``), exit code 1.

No traceback reaches a user who did not set ``MVSEARCH_DEBUG=1``.
"""
from __future__ import annotations

import os
import signal
import sys
from typing import Any


#: the signals that end a starting process with ``interrupted``, exit code 130
_STARTING = (signal.SIGINT, signal.SIGTERM)
#: set by :func:`entry` for the process it re-executes: the signals it blocked across the exec, so
#: that one arriving while the new interpreter starts waits, pending, for this module's handler
HANDOFF_VAR = "MVSEARCH_SIGNALS_BLOCKED"


def _interrupted_while_starting(signum: int, frame: Any) -> None:
    # Ctrl-C or SIGTERM before the boundary (_Group.main) is in place: while Python imports this
    # module (click, the package), or entry() prepares the re-execution. Nothing is written yet.
    os.write(2, b"interrupted\n")
    os._exit(130)


def _catch_while_starting() -> dict[int, Any]:
    """Ctrl-C and SIGTERM end the process with ``interrupted`` (130) until the boundary takes over.

    Returns the handlers replaced. A signal the parent has us ignore (a background job) stays
    ignored. In a process that :func:`entry` re-executed, the signals it blocked are unblocked
    here, once the handler is in place: one that came meanwhile is handled now.
    """
    replaced: dict[int, Any] = {}
    try:
        for s in _STARTING:
            h = signal.getsignal(s)
            if h is not signal.SIG_IGN and h is not None:
                signal.signal(s, _interrupted_while_starting)
                replaced[s] = h
        blocked = os.environ.pop(HANDOFF_VAR, "")
        if blocked:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {int(n) for n in blocked.split(",") if n.isdigit()})
    except ValueError:  # imported outside the main thread (a test runner's worker): leave signals alone
        return {}
    return replaced


def _cli_process() -> bool:
    # the console script (.../bin/mvsearch) or python -m mvsearch (argv[0] is then __main__.py)
    first = sys.argv[0] if sys.argv else ""
    return os.path.basename(first) == "mvsearch" or first.endswith(os.path.join("mvsearch", "__main__.py"))


_BEFORE_IMPORT = _catch_while_starting()

import importlib  # noqa: E402
import re  # noqa: E402
import warnings  # noqa: E402

import click  # noqa: E402

from mvsearch import __version__  # noqa: E402
from mvsearch.core.errors import MvsearchError, first_line  # noqa: E402
from mvsearch.core.text import SHOWN, one_line  # noqa: E402

#: every command, in the order ``mvsearch --help`` lists them
COMMANDS = ("count", "train", "space", "run", "trials", "latency", "pareto", "report", "export", "scale", "fidelity", "validate")
DEBUG_VAR = "MVSEARCH_DEBUG"


def _debug() -> bool:
    return os.environ.get(DEBUG_VAR, "").strip() not in ("", "0")


def _say(line: str) -> None:
    click.echo(one_line(line), err=True)


def _usage_line(exc: click.UsageError, ctx: click.Context | None) -> str:
    if exc.ctx is not None and (ctx is None or exc.ctx is not ctx):
        where = exc.ctx.command_path
    elif ctx is not None and ctx.invoked_subcommand:  # raised while the command's own context was made
        where = f"{ctx.command_path} {ctx.invoked_subcommand}"
    else:
        where = ctx.command_path if ctx is not None else "mvsearch"
    message = re.sub(r"'([^']{%d})[^']{20,}'" % SHOWN, lambda m: f"'{m.group(1)}...' ({len(m.group(0)) - 2:,} "
                     f"characters)", exc.format_message())  # a 5,000-digit value is not echoed whole
    return f"error: {message.rstrip('.')} (see '{where} --help')"


def _on_interrupt(process: bool) -> int:
    if process:  # the first Ctrl-C is handled: a second one must not become a traceback or a death by
        try:  # signal while the process winds down (it exits 130 a moment later)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        except ValueError:
            pass
    _say("interrupted")
    return 130


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _warning_line(message, category, filename, lineno, file=None, line=None) -> None:
    # a library's warning, if one gets through, is one line like everything else on stderr
    try:
        _say(f"warning: {first_line(Exception(message))}")
    except Exception:  # never let a warning break the command
        pass


def failure(exc: BaseException, ctx: click.Context | None = None, *, process: bool = False) -> int:
    """Print the one line for ``exc`` and return the exit code (the error boundary)."""
    if isinstance(exc, (KeyboardInterrupt, click.Abort)):
        return _on_interrupt(process)
    if _debug():
        import traceback

        traceback.print_exception(exc)
    if isinstance(exc, MvsearchError):
        _say(f"error: {exc}")
        return 2
    if isinstance(exc, click.exceptions.NoArgsIsHelpError) and exc.ctx is not None:
        click.echo(exc.ctx.get_help())  # plain `mvsearch`: the help, as --help shows it
        return 0
    if isinstance(exc, click.UsageError):
        _say(_usage_line(exc, ctx))
        return 2
    if isinstance(exc, click.ClickException):
        _say(f"error: {exc.format_message()}")
        return exc.exit_code or 1
    if isinstance(exc, MemoryError):
        _say("error: out of memory: the input asks for more memory than this machine has; use smaller "
             "settings (see 'Errors and safety' in the README)")
        return 2
    if isinstance(exc, BrokenPipeError):  # `mvsearch trials | head`: the reader has gone, nothing to say
        return 1
    if isinstance(exc, ValueError) and "null byte" in str(exc):  # a path typed with a NUL in it
        _say("error: a path holds a NUL character; check the file names given")
        return 2
    if isinstance(exc, OSError) and exc.errno is not None:  # the user's files or folders
        what = f" {exc.filename!r}" if exc.filename is not None else ""
        _say(f"error: cannot use{what}: {exc.strerror or first_line(exc)}")
        return 2
    _say(f"error: internal error ({type(exc).__name__}: {first_line(exc)}); run with {DEBUG_VAR}=1 for the "
         f"traceback, and please report it")
    return 1


class _Group(click.Group):
    """Loads a command's module when it runs, and is the one error boundary (see the module doc)."""

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        return importlib.import_module(f"mvsearch.cli.{name}").command

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except click.exceptions.Exit:
            raise
        except (Exception, KeyboardInterrupt) as exc:  # to main(), with the context it happened in
            raise _Failed(exc, ctx) from None

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):  # type: ignore[override]
        # a real process (the console script, python -m mvsearch) passes no args; a test's CliRunner does
        process = args is None
        saved = {}
        if process:
            try:  # SIGTERM is handled like Ctrl-C; a signal the parent has us ignore stays ignored
                saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
                saved = {s: h for s, h in saved.items() if h is not signal.SIG_IGN}
                for s in saved:
                    signal.signal(s, signal.default_int_handler if s == signal.SIGINT else _raise_interrupt)
            except ValueError:
                saved = {}
        show = warnings.showwarning
        warnings.showwarning = _warning_line
        code: Any = 0
        try:
            try:
                code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
            except _Failed as f:
                code = failure(f.exc, f.ctx, process=process)
            except click.exceptions.Exit as e:
                code = e.exit_code
            except (Exception, KeyboardInterrupt) as exc:  # the group's own options; Ctrl-C while parsing
                code = failure(exc, None, process=process)
        except KeyboardInterrupt:  # a second Ctrl-C while the first was being reported
            code = 130
        finally:
            warnings.showwarning = show
            if code != 130:  # after an interrupt the process is ending: a second Ctrl-C stays ignored
                for s, h in saved.items():
                    signal.signal(s, h)
        if isinstance(code, bool) or not isinstance(code, int):
            code = 0
        if standalone_mode:
            _flush()
            if process and code == 130:
                # interrupted: end now. A KeyboardInterrupt that landed in Python code run from C
                # (PyRun_*, e.g. inside an extension's import) leaves CPython's "unhandled Ctrl-C"
                # flag set even though it was handled here, and the interpreter's exit would then
                # kill the process with SIGINT instead of returning 130. The storage writes are
                # done (SQLite and PostgreSQL commit per write); nothing is left to finalize.
                os._exit(130)
            sys.exit(code)
        return code


class _Failed(Exception):
    """What a command raised, carried out through click to :meth:`_Group.main`."""

    def __init__(self, exc: BaseException, ctx: click.Context) -> None:
        super().__init__(exc)
        self.exc, self.ctx = exc, ctx


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (mvsearch trials | head): nothing more to say
            try:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, stream.fileno())
            except (OSError, ValueError, AttributeError):
                pass


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mvsearch")
def main() -> None:
    """Search MobileViT architectures under a compute budget, and report what was found."""


#: the commands that train, and so re-execute themselves on jemalloc where the machine has it
TRAINING = ("train", "run", "scale", "fidelity", "validate")


def entry() -> None:
    """The ``mvsearch`` console script (and ``python -m mvsearch``): :func:`main`, on jemalloc for training.

    A training command re-executes itself once, with the same arguments, with jemalloc preloaded
    when the machine has it (:mod:`mvsearch.core.jemalloc`: the held-memory speed at a smaller peak);
    ``MVSEARCH_JEMALLOC=0`` trains on glibc's malloc.
    """
    command = next((a for a in sys.argv[1:] if not a.startswith("-")), None)
    if command in TRAINING:
        from mvsearch.core.jemalloc import preload_env

        try:
            env = preload_env()
        except MvsearchError as exc:
            _say(f"error: {exc}")
            sys.exit(2)
        if env is not None:
            _flush()
            # Ctrl-C/SIGTERM while the new interpreter starts (before this module's handler is in
            # place there) would end it with a traceback or a death by signal: block them across
            # the exec; the new process unblocks them once it can say "interrupted" (a signal that
            # came meanwhile stays pending until then)
            handled = {s for s in _STARTING if signal.getsignal(s) is not signal.SIG_IGN}
            block = handled - signal.pthread_sigmask(signal.SIG_BLOCK, [])
            env[HANDOFF_VAR] = ",".join(str(int(s)) for s in sorted(block))
            before = signal.pthread_sigmask(signal.SIG_BLOCK, block)
            try:
                os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)
            except OSError:  # cannot re-execute (a frozen binary, a vanished interpreter): train on glibc
                signal.pthread_sigmask(signal.SIG_SETMASK, before)
    _catch_while_starting()  # (already so for the console script and python -m mvsearch)
    main()


if not _cli_process():  # imported by a program of its own (a test's CliRunner): its handlers again
    for _s, _h in _BEFORE_IMPORT.items():
        signal.signal(_s, _h)
