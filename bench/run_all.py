"""Run every benchmark in bench/ one after another, each in its own process, and echo its output.

Usage: python bench/run_all.py [name ...]   (names without the bench_ prefix, e.g. train latency)
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    scripts = sorted(HERE.glob("bench_*.py"))
    if argv:
        wanted = {f"bench_{a}.py" for a in argv}
        scripts = [s for s in scripts if s.name in wanted]
    status = 0
    for script in scripts:
        print(f"== {script.name}", flush=True)
        rc = subprocess.call([sys.executable, str(script)], cwd=HERE.parent)
        status = status or rc
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
