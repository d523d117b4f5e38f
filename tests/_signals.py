"""A `python -c` script that runs mvsearch's CLI and sends itself SIGINT at a chosen moment: right after
one module-level function returns. Deterministic Ctrl-C tests (a real signal, a real study) use it to
interrupt a trial while it is set up, before its training starts."""
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
