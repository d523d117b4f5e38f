"""``mvsearch space``, and every space/budget error of ``mvsearch space`` / ``mvsearch run`` through the CLI.

Errors must be one line on stderr starting "error:", exit code 2, no traceback, and nothing written:
no study database, no studies/ folder.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from mvsearch.arch.presets import PRESETS
from mvsearch.core.units import format_flops
from mvsearch.cli.main import main
from mvsearch.space.loader import load_space

SPACES = Path(__file__).resolve().parent.parent / "spaces"
MOBILE, TINY = SPACES / "mobile.yaml", SPACES / "tiny.yaml"

runner = CliRunner()


def _run(*args):
    return runner.invoke(main, [str(a) for a in args])


# ---------------------------------------------------------------------- mvsearch space
@pytest.mark.parametrize("path", [MOBILE, TINY], ids=["mobile", "tiny"])
def test_space_shows_knobs_size_and_cost_range(path):
    space = load_space(path)
    r = _run("space", "--space", path)
    assert r.exit_code == 0, r.output
    out = r.stdout
    assert out.startswith(f"space {space.name} ({path})")
    for name, knob in space.knobs():
        assert any(line.split() and line.split()[0] == name and knob.describe() in line for line in out.splitlines()), name
    rng, size = space.cost_range(), space.size()
    h, w = space.resolution
    assert f"architectures      {size:,}" in out
    flops_line = next(line for line in out.splitlines() if line.startswith(f"FLOPs at {h}x{w}"))
    assert f"{rng.min_flops:,} .. {rng.max_flops:,}" in flops_line
    assert f"{format_flops(rng.min_flops)} .. {format_flops(rng.max_flops)}" in flops_line
    params_line = next(line for line in out.splitlines() if line.startswith("params "))
    assert f"{rng.min_params:,} .. {rng.max_params:,}" in params_line
    assert r.stderr == ""  # no proxy warnings for the shipped spaces


def test_space_tells_whether_the_paper_presets_are_members():
    mobile = _run("space", "--space", MOBILE).stdout
    assert "mobilevit_xxs (0.42G) in the space" in mobile and "mobilevit_s (2.03G) in the space" in mobile
    tiny = _run("space", "--space", "tiny").stdout  # a shipped space by name
    assert all(f"{n} (" in tiny for n in PRESETS) and tiny.count("not in the space") == 3


@pytest.mark.parametrize("path", [MOBILE, TINY], ids=["mobile", "tiny"])
def test_space_json_is_one_object(path):
    space = load_space(path)
    r = _run("space", "--space", path, "--json")
    assert r.exit_code == 0
    obj = json.loads(r.stdout)
    rng = space.cost_range()
    assert obj["name"] == space.name and obj["resolution"] == list(space.resolution)
    assert obj["num_classes"] == space.num_classes and obj["architectures"] == space.size()
    assert (obj["min_flops"], obj["max_flops"], obj["min_params"], obj["max_params"]) == (
        rng.min_flops, rng.max_flops, rng.min_params, rng.max_params)
    assert list(obj["knobs"]) == [n for n, _ in space.knobs()]
    assert obj["searched"] == [n for n, _ in space.searched()]
    assert obj["presets"]["mobilevit_xs"]["member"] is (space.name == "mobile")
    assert obj["proxy"]["resolution"] == space.proxy_settings().resolution and obj["warnings"] == []


def test_space_warns_on_stderr_when_the_proxy_leaves_a_stage_one_patch(tmp_path):
    # at 16x16 with stem stride 1, layer5 sees a 1x1 map: attention over a single patch
    p = tmp_path / "collapsed.yaml"
    p.write_text(TINY.read_text().replace("resolution: 32", "resolution: 16"))
    r = _run("space", "--space", p)
    assert r.exit_code == 0
    assert "warning: proxy: layer5:" in r.stderr and "N = 1" in r.stderr


# ---------------------------------------------------------------------- errors
def _tiny_with(old: str, new: str) -> str:
    text = TINY.read_text()
    assert old in text
    return text.replace(old, new, 1)


# (name, YAML text, what the one line must say); tiny.yaml's line 32 is `stem: [8, 16]`, 39 is layer3
BAD_SPACES = [
    ("unknown-key", _tiny_with("  stem: [8, 16]", "  stme: [8, 16]"),
     "BAD.yaml:32: arch.stme: unknown key; did you mean 'stem'?"),
    ("unknown-stage-key", _tiny_with("dim: [16, 32], depth: [1, 2]", "dims: [16, 32], depth: [1, 2]"),
     "BAD.yaml:39: arch.layer3.dims: unknown key; did you mean 'dim'?"),
    ("low-above-high", _tiny_with("  stem: [8, 16]", "  stem: {low: 16, high: 8, step: 8}"),
     "BAD.yaml:32: arch.stem.low: low > high (16 > 8)"),
    ("empty-choices", _tiny_with("  stem: [8, 16]", "  stem: []"),
     "BAD.yaml:32: arch.stem: empty list of choices"),
    ("every-kernel-even", _tiny_with("kernel: [1, 3]", "kernel: [2, 4]"),
     "BAD.yaml:39: arch.layer3.kernel[0]: conv kernel n must be a positive odd integer, got 2"),
    ("every-patch-too-large", _tiny_with("patch: [1x1, 2x1]", "patch: [4x4, 3x3]"),
     "BAD.yaml:41: arch.layer5.patch[0]: patch 4x4 does not fit the 2x2 map"),
    ("dim-not-divisible", _tiny_with("dim: [16, 32], depth: [1, 2]", "dim: [18, 30], depth: [1, 2]").replace(
        "heads: [1, 2, 4]", "heads: [4, 8]"),
     "BAD.yaml:39: arch.layer3.dim: transformer dim must be divisible by heads, but d=18"),
    ("wrong-type", _tiny_with("  stem: [8, 16]", "  stem: [8, sixteen]"),
     "BAD.yaml:32: arch.stem[1]: choice 1: expected an integer, got 'sixteen'"),
    ("wrong-type-deployment", _tiny_with("num_classes: 10", "num_classes: ten"),
     "BAD.yaml:9: deployment.num_classes: input should be a valid integer"),
    ("missing-key", _tiny_with("name: tiny\n", ""), "BAD.yaml:4: name: required key is missing"),
    ("not-yaml", _tiny_with("  stem: [8, 16]", "  stem: [8, 16"), "BAD.yaml:33: not valid YAML"),
    ("default-budget-unreadable", _tiny_with("budget: 15M", "budget: lots"),
     "BAD.yaml:28: search.budget: cannot read 'lots' as FLOPs"),
    ("default-budget-below-cheapest", _tiny_with("budget: 15M", "budget: 500k"),
     "BAD.yaml:28: search.budget: budget 500k FLOPs is below the cheapest architecture of space 'tiny' "
     "(951k FLOPs = 950,720)"),
]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """An empty current directory: nothing may appear in it but what the test writes."""
    d = tmp_path / "cwd"
    d.mkdir()
    monkeypatch.chdir(d)
    return d


def _assert_one_line_error(r, expected: str, workdir: Path, keep: set[str] = frozenset()):
    assert r.exit_code == 2, r.output
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert expected in lines[0], lines[0]
    assert "Traceback" not in r.output and r.stdout == ""
    assert {p.name for p in workdir.iterdir()} == set(keep)  # no study database, no studies/


@pytest.mark.parametrize("name,text,expected", BAD_SPACES, ids=[b[0] for b in BAD_SPACES])
def test_bad_space_fails_mvsearch_space(workdir, name, text, expected):
    (workdir / "BAD.yaml").write_text(text)
    _assert_one_line_error(_run("space", "--space", "BAD.yaml"), f"error: {expected}", workdir, {"BAD.yaml"})


@pytest.mark.parametrize("name,text,expected", BAD_SPACES, ids=[b[0] for b in BAD_SPACES])
def test_bad_space_fails_mvsearch_run_before_any_study(workdir, name, text, expected):
    (workdir / "BAD.yaml").write_text(text)
    db = workdir.parent / "x.db"
    r = _run("run", "--space", "BAD.yaml", "--budget", "5M", "--trials", "1", "--data", "synthetic",
             "--storage", f"sqlite:///{db}")
    _assert_one_line_error(r, f"error: {expected}", workdir, {"BAD.yaml"})
    assert not db.exists()


def test_missing_space_file_and_unknown_name(workdir):
    _assert_one_line_error(_run("space", "--space", "nosuch.yaml"), "--space nosuch.yaml: no such file", workdir)
    _assert_one_line_error(_run("run", "--space", "tinny", "--budget", "5M"), "did you mean 'tiny'?", workdir)


BAD_BUDGETS = [
    (["--budget", "abc"], "--budget: cannot read 'abc' as FLOPs; use e.g. 1.5GFLOPs, 400M or 1.5e9"),
    (["--budget", "0"], "--budget: must be positive, got '0'"),
    (["--budget", "-1G"], "--budget: must be positive, got '-1G'"),
    (["--budget", "0.5"], "less than one FLOP"),
    (["--budget", "1M,,5M"], "--budget: empty entry"),
    (["--budget", "2M,2M"], "given twice"),
    (["--budget", "1k"], "budget 1k FLOPs is below the cheapest architecture of space 'tiny' (951k FLOPs = 950,720)"),
    (["--budget", "500k,5M"], "below the cheapest architecture of space 'tiny' (951k FLOPs"),
    (["--budget", "1M,8M,20M"], "tier 20M cannot be reached"),
    (["--tiers", "paper"], "tier 1.05G cannot be reached"),  # all of tiny lies in the 0.42G tier
    (["--tiers", "fancy"], "--tiers: unknown tier set 'fancy'; known: paper"),
    (["--budget", "5M", "--tiers", "paper"], "either --budget or --tiers"),
    (["--budget", "5M", "--max-params", "lots"], "--max-params: cannot read 'lots'"),
    (["--budget", "5M", "--max-params", "0"], "--max-params: must be positive"),
    (["--budget", "5M", "--max-params", "10k"],
     "--max-params 10k is below the smallest architecture of space 'tiny' (34.6k params = 34,650)"),
    (["--max-params", "10k"], "--max-params 10k is below"),  # with the space's default budget
    (["--budget", "5M", "--timeout", "soon"], "--timeout: cannot read 'soon' as a duration"),
    (["--budget", "5M", "--timeout", "0s"], "--timeout: must be positive"),
]


@pytest.mark.parametrize("args,expected", BAD_BUDGETS, ids=[" ".join(a) for a, _ in BAD_BUDGETS])
def test_bad_budget_fails_mvsearch_run_before_any_study(workdir, args, expected):
    db = workdir.parent / "x.db"
    r = _run("run", "--space", TINY, *args, "--trials", "1", "--data", "synthetic", "--storage", f"sqlite:///{db}")
    _assert_one_line_error(r, expected, workdir)
    assert not db.exists()


def test_a_bad_space_fails_the_same_way_in_a_real_process(workdir):
    (workdir / "BAD.yaml").write_text(BAD_SPACES[0][1])
    p = subprocess.run([sys.executable, "-m", "mvsearch", "space", "--space", "BAD.yaml"], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.splitlines() == [f"error: {BAD_SPACES[0][2]}"]
