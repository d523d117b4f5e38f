"""Run every benchmark in bench/ one after another, each in its own process, and echo its output.

Each benchmark prints its figures and exits 0 when its target is met, 1 when not (2 on an error).
The benchmarks time things, so run nothing else heavy meanwhile: on a shared machine another
process's threads distort every figure. Ends with one line per benchmark: wall time and verdict.

Usage: python bench/run_all.py [name ...]   (names without the bench_ prefix, e.g. train latency)
"""
from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    scripts = sorted(HERE.glob("bench_*.py"))
    if argv:
        known = {s.name[len("bench_"):-len(".py")] for s in scripts}
        unknown = [a for a in argv if a not in known]
        if unknown:
            print(f"error: unknown benchmark {unknown[0]!r}; known: {', '.join(sorted(known))}", file=sys.stderr)
            return 2
        scripts = [s for s in scripts if s.name[len("bench_"):-len(".py")] in argv]
    print(f"{dt.datetime.now().isoformat(timespec='seconds')} on {platform.node()}, {os.cpu_count()} CPUs, "
          f"python {platform.python_version()}", flush=True)
    verdicts = []
    for script in scripts:
        print(f"\n== {script.name}", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call([sys.executable, str(script)], cwd=HERE.parent)
        verdicts.append((script.name, time.perf_counter() - t0, rc))
    print("\n== summary")
    for name, secs, rc in verdicts:
        what = {0: "target met", 1: "target NOT met"}.get(rc, f"error (exit {rc})")
        print(f"{name:<22}{secs:8.0f} s  {what}")
    return max((rc for _, _, rc in verdicts), default=0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
