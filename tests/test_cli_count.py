"""``mvsearch count`` and the CLI's error handling, in-process and as a subprocess."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from mvsearch import __version__
from mvsearch.arch.presets import PRESETS
from mvsearch.cli.main import main
from mvsearch.arch.presets import PAPER_FLOPS

runner = CliRunner()


def _run(*args):
    return runner.invoke(main, list(args))


def test_help_and_version():
    r = _run("--help")
    assert r.exit_code == 0 and "count" in r.output
    r = _run("--version")
    assert r.exit_code == 0 and __version__ in r.output


def test_count_json_is_one_object_with_the_documented_keys():
    r = _run("count", "--preset", "mobilevit_s", "--json")
    assert r.exit_code == 0, r.output
    obj = json.loads(r.stdout)
    assert obj["params"] == 5578632
    assert abs(obj["flops"] - 2033383424) <= 0.005 * 2033383424
    assert obj["resolution"] == [256, 256]
    assert {"thop_macs", "activations", "stages"} <= obj.keys()
    assert sum(s["flops"] for s in obj["stages"]) == obj["flops"]
    assert all({"name", "params", "flops"} <= s.keys() for s in obj["stages"])


def test_count_table_lists_stages_and_total():
    r = _run("count", "--preset", "mobilevit_xxs")
    assert r.exit_code == 0
    assert "layer3" in r.output and "total" in r.output and "1,272,024" in r.output


def test_count_non_square_resolution_and_num_classes():
    r = _run("count", "--preset", "mobilevit_xxs", "--resolution", "256x192", "--num-classes", "10", "--json")
    obj = json.loads(r.stdout)
    assert obj["resolution"] == [256, 192]
    assert obj["params"] == 1272024 - 990 * 321  # classifier 320 -> 1000 becomes 320 -> 10
    assert obj["flops"] < PAPER_FLOPS["mobilevit_xxs"]


def test_count_config_file(tmp_path):
    p = tmp_path / "xs.yaml"
    p.write_text(PRESETS["mobilevit_xs"].to_yaml())
    obj = json.loads(_run("count", "--config", str(p), "--json").stdout)
    assert obj["params"] == 2317848


def _bad_config(tmp_path, **changes):
    d = PRESETS["mobilevit_xxs"].to_dict()
    for key, value in changes.items():
        stage, _, field = key.partition("__")
        if field:
            d[stage][field] = value
        else:
            d[stage] = value
    p = tmp_path / "bad.yaml"
    import yaml
    p.write_text(yaml.safe_dump(d))
    return str(p)


@pytest.mark.parametrize("changes, fragment", [
    ({"layer4__dim": 100, "layer4__heads": 8}, "layer4.dim: transformer dim must be divisible by heads"),
    ({"layer3__kernel": 2}, "layer3.kernel: conv kernel n must be odd, got 2"),
    ({"layer5__channels": -8}, "layer5.channels: must be a positive integer, got -8"),
    ({"layer3__depth": 0}, "layer3.depth: must be a positive integer, got 0"),
    ({"layer3__heads": "four"}, "layer3.heads: must be an integer, got 'four'"),
    ({"layer3__ffn": 128}, "layer3.ffn: unknown key; did you mean 'ffn_dim'?"),
    ({"layer5__patch": [16, 16]}, "layer5.patch: a patch must fit the feature map it tiles"),
])
def test_invalid_configs_exit_2_with_one_line(tmp_path, changes, fragment):
    r = _run("count", "--config", _bad_config(tmp_path, **changes))
    assert r.exit_code == 2
    assert fragment in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert "Traceback" not in r.output


@pytest.mark.parametrize("args, fragment", [
    (["--preset", "mobilevit_m"], "unknown preset 'mobilevit_m'"),
    (["--preset", "mobilevit_xxs", "--resolution", "abc"], "resolution: expected N or HxW"),
    (["--preset", "mobilevit_xxs", "--num-classes", "0"], "--num-classes: must be a positive integer"),
    ([], "pass exactly one of --preset NAME or --config FILE.yaml"),
    (["--config", "/nonexistent/x.yaml"], "no such file"),
])
def test_bad_arguments_exit_2_with_one_line(args, fragment):
    r = _run("count", *args)
    assert r.exit_code == 2
    assert fragment in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_console_script_runs_as_a_subprocess():
    out = subprocess.run([sys.executable, "-m", "mvsearch", "count", "--preset", "mobilevit_xxs", "--json"],
                         capture_output=True, text=True, check=True)
    assert json.loads(out.stdout)["params"] == 1272024
    bad = subprocess.run([sys.executable, "-m", "mvsearch", "count", "--preset", "nope"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.startswith("error: unknown preset") and "Traceback" not in bad.stderr
