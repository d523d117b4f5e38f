"""The wheel is complete: built, installed into a fresh virtual environment, it runs from anywhere.

The shipped spaces (mvsearch/space/spaces/*.yaml) are package data: ``--space mobile`` must work
from a wheel, in a directory that has no ``spaces/`` of its own. The venv sees the system's
site-packages (torch and the other dependencies come from there, nothing is downloaded) and the
wheel goes in with ``--no-deps``; the test checks that mvsearch itself is imported from the venv.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
# what a build does not need (and must not write into: other runs share the checkout)
SKIP = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".cache",
                              "studies", "reports", "models", ".pytest_cache", ".import_linter_cache")


def _run(cmd: list, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    p = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True,
                       timeout=timeout)
    assert p.returncode == 0, f"{' '.join(map(str, cmd))} -> {p.returncode}\n{p.stdout}\n{p.stderr}"
    return p


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    # build from a copy of the working tree, so the build's own files stay out of the checkout
    src = tmp_path_factory.mktemp("src") / "mvsearch"
    shutil.copytree(REPO, src, symlinks=True, ignore=SKIP)
    out = tmp_path_factory.mktemp("wheel")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", out, src],
         cwd=src)
    wheels = list(out.glob("mvsearch-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    env = tmp_path_factory.mktemp("venv") / "env"
    _run([sys.executable, "-m", "venv", "--system-site-packages", env], cwd=env.parent)
    if sys.prefix != sys.base_prefix:
        # the tests run in a venv themselves (make test: .venv): --system-site-packages reaches only
        # the base interpreter's packages, so the new venv also gets this one's (after its own)
        purelib = _run([env / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                       cwd=env.parent).stdout.strip()
        ours = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
        (Path(purelib) / "_outer_env.pth").write_text("".join(f"{d}\n" for d in ours))
    # --ignore-installed: the system's (editable) mvsearch stays where it is, the wheel goes in the venv
    _run([env / "bin" / "python", "-m", "pip", "install", "-q", "--no-deps", "--no-index",
          "--ignore-installed", wheel], cwd=env.parent)
    return env


@pytest.fixture
def elsewhere(tmp_path) -> Path:
    d = tmp_path / "elsewhere"
    d.mkdir()
    return d


def test_the_wheel_holds_the_shipped_spaces(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"mvsearch/space/spaces/mobile.yaml", "mvsearch/space/spaces/tiny.yaml"} <= names
    assert "mvsearch/cli/main.py" in names


def test_the_venv_imports_mvsearch_from_the_wheel(venv, elsewhere):
    p = _run([venv / "bin" / "python", "-c", "import mvsearch; print(mvsearch.__file__)"], cwd=elsewhere)
    where = Path(p.stdout.strip()).resolve()
    assert where.is_relative_to(venv.resolve()) and not where.is_relative_to(REPO), where


def test_a_shipped_space_by_name_from_an_installed_wheel(venv, elsewhere):
    p = _run([venv / "bin" / "mvsearch", "space", "--space", "mobile"], cwd=elsewhere)
    first = p.stdout.splitlines()[0]
    assert first.startswith("space mobile ("), p.stdout
    # read from the installed package's resources, not from the checkout
    assert str(venv.resolve()) in first or str(venv) in first, first
    assert str(REPO) not in p.stdout


def test_a_search_runs_from_an_installed_wheel(venv, elsewhere):
    db = elsewhere / "x.db"
    p = _run([venv / "bin" / "mvsearch", "run", "--space", "tiny", "--trials", 1,
              "--data", "synthetic:classes=4,samples=384", "--study", "x", "--storage", f"sqlite:///{db}",
              "--threads", 1, "--pruner", "none", "--seed", 0], cwd=elsewhere)
    assert "this run: 1 trained" in p.stdout, p.stdout
    assert db.is_file()
