"""``mvsearch run``: search a space under a FLOP budget (or several tiers) with Optuna."""
from __future__ import annotations

import logging
import warnings

import click

from mvsearch.cli.jobs import jobs_options
from mvsearch.cli.options import echo, quiet_trial_failures
from mvsearch.cli.progress import Printer, closing_table
from mvsearch.core.units import parse_duration
from mvsearch.budget import parse_budget


@click.command()
@click.option("--space", "space_ref", default="mobile", show_default=True,
              help="A space file (spaces/mobile.yaml) or a shipped space's name (mobile, tiny).")
@click.option("--budget", help="FLOP budget at the deployment resolution: 1.5GFLOPs, 400M, 1.5e9; "
                                "several make tiers: 0.42G,1.05G,2.0G. Default: the space's search.budget.")
@click.option("--tiers", help="A named set of tiers instead of --budget: paper (0.42G, 1.05G, 2.03G).")
@click.option("--max-params", help="Parameter cap, e.g. 2.3M.")
@click.option("--trials", type=int, help="Candidates to train in this run (budget rejections and baselines "
                                         "do not count). Default: the space's search.trials.")
@click.option("--timeout", help="Stop starting new trials after this long, e.g. 2h, 30m, 90s.")
@click.option("--study", "study_name", help="Study name (default: the space's name). Same name: resume.")
@click.option("--storage", help="Optuna storage URL (default: sqlite:///studies/<study>.db; for several "
                                "machines postgresql+psycopg2://USER@HOST/DB, or postgresql:// with psycopg 3).")
@click.option("--data", help="Data spec for the proxy training (default: the space's proxy.data).")
@click.option("--seed", type=int, help="Sampler and training seed (default: the space's search.seed).")
@click.option("--seeds", type=int, default=1, show_default=True,
              help="Train each candidate K times (seeds seed..seed+K-1) and rank it by the mean accuracy (1..20).")
# names checked by the library (mvsearch.search.check_options): a wrong one is one line, exit 2
@click.option("--sampler", metavar="[tpe|random|nsga2]", help="Default: the space's search.sampler.")
@click.option("--pruner", metavar="[hyperband|median|none]", help="Default: the space's search.pruner.")
@click.option("--device", metavar="[auto|cpu|cuda]", default="auto", show_default=True)
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for the run (training and counting); "
                                                             "on a shared machine, at most the free cores.")
@click.option("--no-baselines", is_flag=True, help="Train no paper preset, even where the space's "
                                                   "search.baselines asks for the presets within the budget.")
@click.option("--with-baselines", is_flag=True, help="Also train all three paper presets (scaled to the space's "
                                                     "classes) under the same proxy, tagged as baselines.")
@click.option("--save-weights/--no-save-weights", default=None, help="Save each trained proxy network under "
              "studies/<study>-weights/ (default: the space's search.save_weights).")
@click.option("--measure-latency", is_flag=True, help="Measure each completed trial's batch-1 latency.")
@jobs_options
@click.pass_context
def command(ctx, space_ref, budget, tiers, max_params, trials, timeout, study_name, storage, data, seed, seeds,
            sampler, pruner, device, threads, no_baselines, with_baselines, save_weights, measure_latency, jobs,
            worker_of):
    """Search architectures under a budget: sample, gate on FLOPs, train the proxy, prune, record."""
    import optuna

    for handler in logging.getLogger("optuna").handlers:  # Optuna's own stderr handler
        handler.addFilter(quiet_trial_failures)
    from mvsearch.core.errors import StudyError
    from mvsearch.search.driver import run_search
    from mvsearch.search.events import RunOptions
    from mvsearch.space.loader import load_space

    space = load_space(space_ref)
    s = space.spec.search
    if budget is None and tiers is None:
        budget, tiers = s.budget, s.tiers
    b = parse_budget(budget, tiers=tiers, max_params=max_params if max_params is not None else s.max_params)
    if no_baselines and with_baselines:
        raise StudyError("pass either --with-baselines or --no-baselines, not both")
    if trials is not None and trials < 1:
        raise StudyError(f"--trials: must be a positive integer, got {trials}")
    opts = RunOptions(
        trials=trials if trials is not None else s.trials, study_name=study_name, storage=storage, data=data,
        seed=seed if seed is not None else s.seed, seeds=seeds, sampler=sampler or s.sampler, pruner=pruner or s.pruner,
        device=device, timeout_s=parse_duration(timeout) if timeout is not None else None,
        with_baselines=with_baselines and not no_baselines, budget_baselines=s.baselines and not no_baselines,
        save_weights=s.save_weights if save_weights is None else save_weights, threads=threads,
    )
    if worker_of is None and jobs != 1:  # --jobs N: start N workers, print their summary (cli/jobs.py)
        from mvsearch.cli.jobs import run_parent

        if run_parent(ctx, space, b, opts, jobs, timeout=timeout):
            return
    from mvsearch.latency.study import latency_callback
    from mvsearch.search.storage import default_storage

    url = opts.storage or default_storage(opts.study_name or space.name)
    callbacks = [latency_callback(url, threads=opts.threads)] if measure_latency else []
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if worker_of is None:
        printer = Printer(opts.trials)
    else:  # a worker of --jobs: its trials' lines only (the parent prints the header and the table)
        from mvsearch.cli.jobs import WorkerPrinter

        printer = WorkerPrinter(opts.trials)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=optuna.exceptions.ExperimentalWarning)
            summary = run_search(space, b, opts, printer, callbacks=callbacks)
    finally:
        printer.close()
    if worker_of is not None:
        ctx.exit(130 if summary.interrupted else 0)
    from mvsearch.search.storage import open_search

    closing_table(open_search(summary.study_name, summary.storage), summary)
    if summary.timed_out:
        echo(f"stopped: --timeout {timeout} reached; rerun the same command to add trials")
    if summary.interrupted:
        stopped = any(o.reason == "interrupted" for o in summary.outcomes)
        echo("interrupted: " + ("the running trial was marked failed; " if stopped else "")
             + "rerun the same command to resume", err=True)
        ctx.exit(130)
