"""A new user's first hour: the README's install path on the system Python, the main job's
comparison with the presets, readable logs without a terminal, and an export that says what it ships."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.test_search import write_space

REPO = Path(__file__).resolve().parent.parent
DATA = "synthetic:classes=4,samples=512"


def run(*args: str, cwd: Path, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "mvsearch", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600, **kw)


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    """A main job in miniature: a space with search.baselines and save_weights on, run in a subprocess
    whose stdout and stderr are pipes (a log file, nohup, CI), not a terminal."""
    tmp = tmp_path_factory.mktemp("job")
    space = write_space(tmp, search={"baselines": True, "save_weights": True})
    # 25M: the budget holds mobilevit_xxs (21.5M at 64x64, 10 classes) but not XS or S
    r = run("run", "--space", str(space), "--budget", "25M", "--trials", "2", "--threads", "1", "--data", DATA,
            cwd=tmp)
    assert r.returncode == 0, r.stderr
    return tmp, r


def test_the_presets_within_the_budget_train_as_baselines_and_the_winner_is_compared(job):
    _, r = job
    assert "baselines queued: mobilevit_xxs\n" in r.stdout  # XS and S exceed 25M: not queued
    assert re.search(r"^trial +25M/0 .*baseline mobilevit_xxs$", r.stdout, flags=re.M)
    comparison = r.stdout.split("against the paper presets, same proxy (best searched trial at no more FLOPs):\n")[1]
    # each accuracy with half its 95% interval; the gain said to be within or beyond that noise
    assert re.match(r"  mobilevit_xxs \(21\.5M FLOPs, 954k params\) acc \d\.\d{4} ±\d\.\d{3}  vs trial 25M/\d+ .* "
                    r"acc \d\.\d{4} ±\d\.\d{3}: [+-]\d+\.\d points \((within the noise: the ±\d+\.\d and ±\d+\.\d-point "
                    r"95% intervals of 128 validation images overlap|beyond the noise: the ±\d+\.\d and ±\d+\.\d-point "
                    r"95% intervals of 128 validation images do not overlap)\)\n", comparison)


def test_without_a_terminal_each_trial_start_and_epoch_is_one_plain_line_on_stderr(job):
    _, r = job
    lines = r.stderr.splitlines()
    starts = [ln for ln in lines if re.fullmatch(r"\d\d:\d\d:\d\d trial 25M/\d+ \(.+\) training", ln)]
    epochs = [ln for ln in lines if re.fullmatch(r"\d\d:\d\d:\d\d trial 25M/\d+ epoch \d+ acc \d\.\d{4}", ln)]
    assert len(starts) == 3 and len(epochs) >= 3  # the baseline and two candidates, at least one epoch each
    assert not any(c in r.stderr for c in "\r\x1b")  # no progress bar, no control characters


def test_the_main_job_keeps_weights_and_export_ships_them_or_says_it_does_not(job):
    tmp, _ = job
    plain = run("export", "--best", "-o", str(tmp / "plain"), "--study", "e2e", cwd=tmp)
    assert plain.returncode == 0, plain.stderr
    assert "note: no trained weights: the files hold the architecture only" in plain.stderr
    assert "add --weights to ship them" in plain.stderr  # the job saved them (search.save_weights)
    shipped = run("export", "--best", "--weights", "-o", str(tmp / "shipped"), "--study", "e2e", cwd=tmp)
    assert shipped.returncode == 0, shipped.stderr
    assert "no trained weights" not in shipped.stderr and list((tmp / "shipped").glob("*.pt"))


def test_the_shipped_main_space_trains_its_in_budget_presets_and_keeps_weights():
    spec = yaml.safe_load((REPO / "mvsearch" / "space" / "spaces" / "mobile.yaml").read_text())
    assert spec["search"]["baselines"] is True and spec["search"]["save_weights"] is True


@pytest.mark.slow
def test_the_readme_install_path_works_in_a_fresh_venv_of_the_system_python(tmp_path):
    # `make install` as the quick start runs it, with the venv somewhere else and Debian's own
    # interpreter where there is one (its pip refuses to install outside a venv: PEP 668)
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    py = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else "python3"
    venv = tmp_path / "venv"
    r = subprocess.run(["make", "-C", str(REPO), "install", f"VENV={venv}", f"PY={py}"], capture_output=True,
                       text=True, timeout=1800)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    out = subprocess.run([str(venv / "bin" / "mvsearch"), "space", "--space", "mobile"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("space mobile (")
    probe = "import sys, torch; print(sys.prefix, torch.__version__)"
    where = subprocess.run([str(venv / "bin" / "python"), "-c", probe], capture_output=True, text=True, timeout=300)
    assert where.stdout.split()[0] == str(venv) and where.stdout.split()[1].startswith("2.13.0")
