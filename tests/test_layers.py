"""The package's layers (pyproject.toml's [tool.importlinter]) hold, and the check itself bites.

``lint-imports`` reads the contracts from pyproject.toml: each layer (cli at the top, core at the
bottom) imports only the layers below it, lazily imported modules included, and mvsearch.core
imports nothing else from mvsearch.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = None

REPO = Path(__file__).resolve().parent.parent


def _lint_imports(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """Run the ``lint-imports`` command of this interpreter's environment in ``cwd``."""
    exe = Path(sys.executable).parent / "lint-imports"
    cmd = [str(exe)] if exe.exists() else [shutil.which("lint-imports") or "lint-imports"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(cwd), os.environ.get("PYTHONPATH", "")])}
    try:
        return subprocess.run(cmd + ["--no-cache", *args], cwd=cwd, env=env, capture_output=True,
                              text=True, timeout=300)
    except FileNotFoundError:
        raise AssertionError("lint-imports not found: install the test extras, pip install -e '.[test]'") from None


def test_the_layers_hold():
    p = _lint_imports(REPO)
    out = p.stdout + p.stderr
    # the summary line reads "Contracts: N kept, 0 broken."; a broken contract is marked BROKEN
    assert p.returncode == 0 and "BROKEN" not in out and ", 0 broken." in out, out


def _contracts() -> list[dict]:
    if tomllib is None:
        import pytest
        pytest.skip("tomllib is Python 3.11+")
    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


def test_every_subpackage_is_in_a_layer():
    # a new subpackage or top-level module is placed in the layers, or nothing checks its imports
    layers = next(c for c in _contracts() if c["type"] == "layers")["layers"]
    named = {m.strip() for layer in layers for m in layer.split("|")}
    pkg = REPO / "mvsearch"
    present = {f"mvsearch.{p.name}" for p in pkg.iterdir() if (p / "__init__.py").is_file()}
    present |= {f"mvsearch.{p.stem}" for p in pkg.glob("*.py") if p.stem not in ("__init__", "__main__")}
    assert present == named


def test_core_is_forbidden_every_other_layer():
    contracts = _contracts()
    layers = next(c for c in contracts if c["type"] == "layers")["layers"]
    forbidden = next(c for c in contracts if c["type"] == "forbidden" and c["source_modules"] == ["mvsearch.core"])
    above_core = {m.strip() for layer in layers for m in layer.split("|")} - {"mvsearch.core"}
    assert above_core <= set(forbidden["forbidden_modules"])


def _throwaway(root: Path, back_edge: bool) -> None:
    """pkg.high imports pkg.low; with ``back_edge``, pkg.low imports pkg.high too (inside a function)."""
    (root / "pkg" / "high").mkdir(parents=True)
    (root / "pkg" / "low").mkdir()
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "high" / "__init__.py").write_text("from pkg.low import f\n\n\ndef g():\n    return f()\n")
    lazy = "\n\ndef h():\n    from pkg.high import g\n    return g()\n" if back_edge else ""
    (root / "pkg" / "low" / "__init__.py").write_text("def f():\n    return 1\n" + lazy)
    (root / "layers.ini").write_text(textwrap.dedent("""\
        [importlinter]
        root_package = pkg

        [importlinter:contract:layers]
        name = pkg layers
        type = layers
        layers =
            pkg.high
            pkg.low
        """))


def test_the_layer_check_passes_a_package_without_back_edge(tmp_path):
    _throwaway(tmp_path, back_edge=False)
    p = _lint_imports(tmp_path, "--config", "layers.ini")
    assert p.returncode == 0 and "KEPT" in p.stdout, p.stdout + p.stderr


def test_the_layer_check_fails_a_lazy_back_edge(tmp_path):
    _throwaway(tmp_path, back_edge=True)
    p = _lint_imports(tmp_path, "--config", "layers.ini")
    out = p.stdout + p.stderr
    assert p.returncode != 0 and "BROKEN" in out, out
    assert "pkg.low -> pkg.high" in out, out
