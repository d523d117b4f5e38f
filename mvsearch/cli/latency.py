"""``mvsearch latency``: measure batch-1 latency of a study's trials and the paper presets."""
from __future__ import annotations

import sys
import click

from mvsearch.cli.options import echo, print_json
from mvsearch.latency.measure import ACCELERATORS, BACKENDS, DEFAULT_REPEATS, DEFAULT_THREADS, DEFAULT_WARMUP
from mvsearch.latency.study import measure_study


@click.command()
@click.option("--study", "study_name", help="Study name (default: the only study in studies/).")
@click.option("--storage", help="Optuna storage URL (default: sqlite:///studies/<study>.db).")
@click.option("--backend", type=click.Choice(BACKENDS), default="torch", show_default=True,
              help="torch (eager, eval, no grad) or onnxruntime (CPU provider).")
@click.option("--threads", type=int, default=None, help=f"Intra-op threads, fixed  [default: {DEFAULT_THREADS}]")
@click.option("--device", type=click.Choice(ACCELERATORS), default="cpu", show_default=True,
              help="Where to run; auto takes CUDA when present.")
@click.option("--pareto-only", is_flag=True, help="Only the trials on the accuracy-vs-FLOPs front (and the presets).")
@click.option("--force", is_flag=True, help="Measure again what this device has measured already.")
@click.option("--warmup", type=int, default=DEFAULT_WARMUP, show_default=True, help="Untimed runs first.")
@click.option("--repeats", type=int, default=DEFAULT_REPEATS, show_default=True, help="Timed runs (at least 3).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def command(study_name, storage, backend, threads, device, pareto_only, force, warmup, repeats, as_json):
    """Measure the trials (and presets) that lack a latency for this device; store it in the study."""
    bar = None

    def progress(done: int, total: int, subject: str) -> None:
        nonlocal bar
        if not sys.stderr.isatty() or total == 0:
            return
        if bar is None:
            from tqdm import tqdm

            bar = tqdm(total=total, unit="model", desc="latency", leave=False)
        bar.n = done
        bar.set_postfix_str(subject)
        bar.refresh()

    try:
        out = measure_study(study_name, storage, backend=backend, threads=threads, device=device,
                            pareto_only=pareto_only, force=force, warmup=warmup, repeats=repeats, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    if as_json:
        print_json({"study": out.study_name, "storage": out.storage, "device": dict(out.device.__dict__),
                    "resolution": list(out.resolution), "already_measured": out.already,
                    "measured": [{"subject": r.subject, "trial": r.subject.partition(":")[2] if r.subject.startswith("trial:") else None, "preset": r.preset,
                                  "median_ms": r.median_ms, "q1_ms": r.q1_ms, "q3_ms": r.q3_ms, "count": r.count,
                                  "ratio_xxs": r.ratio_xxs} for r in out.measured]})
        return
    h, w = out.resolution
    echo(f"{out.study_name}: batch 1 at {h}x{w} on {out.device.label()}")
    if out.measured:
        echo(f"{'subject':<24}{'median ms':>11}{'IQR ms':>9}{'runs':>6}{'×XXS':>7}")
        for r in out.measured:
            echo(f"{r.subject:<24}{r.median_ms:>11.2f}{r.iqr_ms:>9.2f}{r.count:>6}{r.ratio_xxs:>7.2f}")
    again = " (--force measures again)" if out.already else ""
    echo(f"{len(out.measured)} measured, {out.already} already measured on this device{again}")
