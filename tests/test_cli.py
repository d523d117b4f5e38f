"""mvsearch.cli: every command's usage errors are one line on stderr and exit code 2."""
import subprocess
import sys

import pytest
from click.testing import CliRunner

from mvsearch.cli.main import COMMANDS, main


@pytest.mark.parametrize("argv,names,help_of", [
    (["train", "--preset", "mobilevit_xxs", "--device", "tpu"], ["--device", "'tpu'", "auto"], "mvsearch train"),
    (["trials", "--format", "xml"], ["--format", "'xml'", "csv"], "mvsearch trials"),
    (["latency", "--backend", "tvm"], ["--backend", "'tvm'", "onnxruntime"], "mvsearch latency"),
    (["count", "--bogus"], ["--bogus"], "mvsearch count"),
    (["count", "--preset", "mobilevit_xxs", "--resolution"], ["--resolution", "requires an argument"],
     "mvsearch count"),
    (["train", "--preset", "mobilevit_xxs", "--epochs", "three"], ["--epochs", "'three'"], "mvsearch train"),
    (["nope"], ["No such command", "'nope'"], "mvsearch"),
])
def test_usage_errors_are_one_line_naming_the_problem_and_where_to_look(argv, names, help_of):
    r = CliRunner().invoke(main, argv, prog_name="mvsearch")
    assert r.exit_code == 2, r.output
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    for n in names:
        assert n in lines[0], lines[0]
    assert lines[0].endswith(f"(see '{help_of} --help')"), lines[0]
    assert "Traceback" not in r.output


def test_every_command_is_listed_and_help_still_works():
    r = CliRunner().invoke(main, ["--help"])
    assert r.exit_code == 0
    for name in COMMANDS:
        assert name in r.output
    r = CliRunner().invoke(main, ["count", "--help"])
    assert r.exit_code == 0 and "--preset" in r.output


def test_a_real_process_prints_one_line_for_a_bad_choice():
    p = subprocess.run([sys.executable, "-m", "mvsearch", "trials", "--sort", "speed"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.count("\n") == 1 and p.stderr.startswith("error: Invalid value for '--sort'"), p.stderr
