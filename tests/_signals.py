"""Real signals at chosen moments, for deterministic Ctrl-C and SIGTERM tests (no timing decides where
they land): :func:`sigint_after`, a `python -c` script that runs mvsearch's CLI and sends itself SIGINT
right after one module-level function returns (a trial interrupted while it is set up), and
:data:`SITECUSTOMIZE`, a hook that makes the real ``mvsearch`` command signal itself at a point of its
start (an import, or the re-executed interpreter's own start-up)."""
from __future__ import annotations


def sigint_after(module: str, name: str) -> str:
    """The script's text: ``module.name`` is wrapped to send SIGINT to this process once it returns;
    the script's arguments are the CLI's (``python -c SCRIPT run --space ...``)."""
    return f"""
import os, signal, sys
import {module} as patched
real = patched.{name}
def wrapped(*args, **kw):
    out = real(*args, **kw)
    os.kill(os.getpid(), signal.SIGINT)
    return out
patched.{name} = wrapped
sys.argv = ["mvsearch", *sys.argv[1:]]
from mvsearch.cli.main import main
main()
"""


#: a ``sitecustomize`` module: put its folder on PYTHONPATH and every Python process started with that
#: environment sends itself ``$SIGNAL_SEND`` once (``$SIGNAL_ONCE`` is the file that records it, so a
#: re-executed or child process does not send it again) at ``$SIGNAL_AT``: when the module of that name
#: starts to be imported, or, with ``re-exec``, during the start-up of the process mvsearch re-executes
#: on jemalloc (Python's own start-up, before any mvsearch code runs there)
SITECUSTOMIZE = """
import os, signal, sys

_AT = os.environ.get("SIGNAL_AT", "")


def _send():
    try:
        os.close(os.open(os.environ["SIGNAL_ONCE"], os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return
    os.kill(os.getpid(), getattr(signal, os.environ["SIGNAL_SEND"]))


class _At:
    def find_spec(self, name, path=None, target=None):
        if name == _AT:
            _send()
        return None


if _AT == "re-exec":
    if os.environ.get("MVSEARCH_JEMALLOC_EXEC"):
        _send()
elif _AT:
    sys.meta_path.insert(0, _At())
"""
