"""Options and loaders shared by several commands."""
from __future__ import annotations

import json
import logging
import os
import re
import sys
from typing import Any
import click

from mvsearch.arch.config import ArchConfig, load_arch
from mvsearch.arch.presets import get_preset
from mvsearch.core.errors import ArchError
from mvsearch.core.limits import MAX_CLASSES, check_int
from mvsearch.core.text import printable


def preset_or_config(f):
    """``--preset NAME`` / ``--config FILE`` (exactly one), plus ``--num-classes``."""
    f = click.option("--num-classes", type=int, default=None,
                     help="Classifier outputs (default: the preset's or the file's).")(f)
    f = click.option("--config", "config_path", type=click.Path(dir_okay=False),
                     help="An architecture YAML (as `mvsearch export --format yaml` writes).")(f)
    f = click.option("--preset", help="A paper preset: mobilevit_xxs, mobilevit_xs, mobilevit_s.")(f)
    return f


def load_arch_choice(preset: str | None, config_path: str | None, num_classes: int | None) -> ArchConfig:
    """The architecture named by ``--preset``/``--config``, with ``--num-classes`` applied."""
    if (preset is None) == (config_path is None):
        raise ArchError("pass exactly one of --preset NAME or --config FILE.yaml")
    cfg = get_preset(preset) if preset is not None else load_arch(config_path)
    if num_classes is not None:
        check_int(num_classes, "--num-classes", 1, MAX_CLASSES, ArchError, what="a positive integer")
        cfg = cfg.with_num_classes(num_classes)
    return cfg


def echo(text: Any = "", *, err: bool = False, nl: bool = True) -> None:
    """``click.echo`` for the terminal: each line without control characters (text from files and
    databases, a space's description or a study's name, may hold escape sequences)."""
    click.echo("\n".join(printable(line) for line in str(text).split("\n")), err=err, nl=nl)


def print_json(obj: Any) -> None:
    """Exactly one JSON object on stdout."""
    sys.stdout.write(json.dumps(obj) + "\n")


def quiet_trial_failures(record: logging.LogRecord) -> bool:
    """Optuna logs a failed or interrupted trial with its traceback; the command prints each trial's
    outcome itself, so those lines go (all of them with MVSEARCH_DEBUG=1)."""
    if os.environ.get("MVSEARCH_DEBUG", "").strip() not in ("", "0"):
        return True
    if record.exc_info is not None or re.match(r"Trial \d+ failed", str(record.msg)):
        return False
    return True
