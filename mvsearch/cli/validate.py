"""``mvsearch validate``: retrain a search's Pareto front and its presets longer; do the winners still win?"""
from __future__ import annotations

import logging

import click

from mvsearch.cli import jobs as parallel
from mvsearch.cli.options import echo, print_json, quiet_trial_failures
from mvsearch.cli.progress import TrainingPrinter


@click.command()
@click.option("--study", "study_name", help="The search to validate (default: the only study in studies/).")
@click.option("--storage", help="Optuna storage URL of the search (default: sqlite:///studies/<study>.db); the "
                                "validation trainings are stored there too, as study NAME@validate.")
@click.option("--top", type=int, default=2, show_default=True,
              help="Members of each tier's accuracy-vs-FLOPs front to retrain (most accurate first).")
@click.option("--epochs", type=int, help="Epochs of the validation training (default: the search proxy's).")
@click.option("--train-samples", help="Training images of the validation (default: 10x the proxy's; 'all').")
@click.option("--val-samples", type=int, help="Validation images (default: the proxy's, at least 2048).")
@click.option("--seeds", type=int, default=2, show_default=True, help="Trainings per model (their mean is shown).")
@click.option("--device", metavar="[auto|cpu|cuda]", default="auto", show_default=True)
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for training.")
@click.option("--timeout", help="Stop starting trainings after this long (2h, 30m); rerun to resume.")
@click.option("--resamples", type=click.IntRange(min=100, max=100_000), default=1000, show_default=True,
              help="Bootstrap resamples for the rank correlation's interval.")
@click.option("--dry-run", is_flag=True, help="Print what would be retrained and how; train nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (models, versus presets, tau).")
@parallel.jobs_options
@click.pass_context
def command(ctx, study_name, storage, top, epochs, train_samples, val_samples, seeds, device, threads, timeout,
            resamples, dry_run, as_json, jobs, worker_of):
    """Retrain the study's best models (the top of each tier's Pareto front, and each preset's best rival at no
    more FLOPs) and its paper presets under a longer training, store them beside the trials, and say whether
    the winners still beat the presets."""
    from mvsearch.analysis import validation as va
    from mvsearch.core.errors import MvsearchError, StudyError
    from mvsearch.core.units import parse_duration
    from mvsearch.proxy.settings import ProxySettings
    from mvsearch.search import validate as vd
    from mvsearch.search.record import describe_proxy
    from mvsearch.search.storage import open_search
    from mvsearch.search.trainings import TrainingOptions

    for handler in logging.getLogger("optuna").handlers:  # each training's outcome is printed by us
        handler.addFilter(quiet_trial_failures)
    # ------------------------------------------------ every option checked before anything is trained
    vd.check_top(top)
    vd.check_seeds(seeds)
    if epochs is not None and epochs < 1:
        raise StudyError(f"--epochs: a positive number of epochs, got {epochs}")
    if val_samples is not None and val_samples < 1:
        raise StudyError(f"--val-samples: a positive number of images, got {val_samples}")
    timeout_s = parse_duration(timeout) if timeout is not None else None
    search = open_search(study_name, storage)
    info = search.info
    if info.tier in ("scale", "fidelity") or info.scale is not None or info.fidelity is not None:
        raise StudyError(f"study {search.name!r} is a {info.tier} study, not a search; validate a study made by "
                         f"`mvsearch run`")
    try:
        proxy = ProxySettings.from_dict(info.proxy or {})
    except MvsearchError:
        raise StudyError(f"study {search.name!r} records no proxy setting to lengthen; validate a study made by "
                         f"`mvsearch run`") from None
    longer = vd.setting(proxy, epochs=epochs, train_samples=train_samples, val_samples=val_samples)
    planned = vd.plan(search, longer, top=top, seeds=seeds)
    chosen = [ref for c in planned for ref in c.refs]
    head = [f"study {search.name}: validating {len(planned)} models (top {top} of each tier's front, the presets and "
            f"their best rivals at no more FLOPs) "
            f"x {seeds} seed(s) = {len(planned) * seeds} trainings",
            f"validation setting: {describe_proxy(longer.to_dict())} on {longer.data}",
            f"search proxy:       {describe_proxy(proxy.to_dict())}"]
    head += [f"  {c.why:<14} {', '.join(c.refs):<12} {c.preset or c.arch.summary()}" for c in planned]
    if dry_run:
        if as_json:
            print_json({"study": search.name, "setting": longer.to_dict(), "seeds": seeds, "top": top,
                        "models": [{"refs": list(c.refs), "why": c.why, "preset": c.preset, "flops": c.flops,
                                    "params": c.params, "proxy_accuracy": c.proxy_accuracy} for c in planned]})
        else:
            for line in head:
                echo(line)
            echo("dry run: nothing trained")
        return
    opts = TrainingOptions(name=search.name, storage=search.url, seeds=seeds, device=device, threads=threads,
                           timeout_s=timeout_s)
    study = vd.ValidateStudy(search, planned, longer, opts, top=top,
                             events=TrainingPrinter(lambda c: f"{', '.join(c.refs)} ({c.preset or c.why})",
                                                    wall_digits=1))
    study.prepare()
    if not as_json and not parallel.is_worker(ctx):
        for line in head:
            echo(line)
    study.open()
    summary = parallel.train(ctx, study)  # --jobs N: N workers train it; a worker ends here
    parallel.stop_if_worker(ctx, summary)
    search = open_search(search.name, search.url)  # now with its validation study
    report = va.build(search.name, search.records(), vd.validated(search), chosen=chosen,
                      search_setting=vd.describe(proxy), resamples=resamples)
    if as_json:
        out = report.to_dict()
        out["run"] = {"trained": summary.trained, "failed": summary.failed, "interrupted": summary.interrupted,
                      "timed_out": summary.timed_out, "wall_s": summary.wall_s,
                      "running_elsewhere": summary.running_elsewhere}
        print_json(out)
    else:
        for line in report.lines():
            echo(line)
        if summary.running_elsewhere:
            echo(f"{summary.running_elsewhere} training(s) still running in other workers; rerun to see them")
    parallel.finish(ctx, summary)
    if summary.interrupted:
        raise KeyboardInterrupt
