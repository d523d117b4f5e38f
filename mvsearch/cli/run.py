"""``mvsearch run``: search a space under a FLOP budget (or several tiers) with Optuna."""
from __future__ import annotations

import sys
import warnings
import click

from mvsearch.core.units import format_count, format_flops, parse_duration
from mvsearch.budget import parse_budget


def _dur(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else (f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s")


class _Printer:
    """Progress bar on a terminal, one line per finished trial, notes on stderr."""

    def __init__(self, trials: int) -> None:
        self.bar = None
        self.trials = trials
        self.rejected = 0
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=trials, unit="trial", file=sys.stderr, dynamic_ncols=True, leave=False)

    def line(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=sys.stdout)
        else:
            click.echo(text)

    # Reporter interface
    def start(self, info) -> None:
        state = f"resuming, {info.existing} trials so far" if info.existing else "new"
        self.line(f"study {info.study_name} ({state}) in {info.storage}")
        self.line(f"space {info.space}; budget {info.budget.describe()}; {info.trials} trials to train")
        p = info.proxy
        self.line(f"proxy {info.data}; {p['resolution']}x{p['resolution']} stem stride {p['stem_stride']}, "
                  f"{p['epochs']} epochs, {p['train_samples']} train / {p['val_samples']} val images")
        if info.baselines:
            self.line(f"baselines queued: {', '.join(info.baselines)}")
        for n in info.notes:
            self.note(f"proxy: {n}")

    def trial_start(self, ref, tier, cfg, flops, preset) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(f"trial {ref} ({preset or format_flops(flops)}) training", refresh=True)

    def epoch(self, ref, epoch, accuracy) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(f"trial {ref} epoch {epoch} acc {accuracy:.4f}", refresh=True)

    def trial_end(self, o) -> None:
        tier = f"tier {o.tier}" if o.tier else "no tier"
        if o.state == "REJECTED":
            self.rejected += 1
            self.line(f"trial {o.ref:>8}  {tier:<10} rejected   {format_flops(o.flops):>7} FLOPs "
                      f"{format_count(o.params):>6} params  ({o.reason}; not trained)")
            return
        acc = f"{o.accuracy:.4f}" if o.accuracy is not None else "  -   "
        what = f"baseline {o.preset}" if o.baseline else o.summary
        extra = f"  [{o.reason}]" if o.reason else ""
        self.line(f"trial {o.ref:>8}  {tier:<10} {o.state.lower():<9}  {format_flops(o.flops):>7} FLOPs "
                  f"{format_count(o.params):>6} params  acc {acc}  {o.epochs} ep  {_dur(o.wall_s):>6}  {what}{extra}")
        if self.bar is not None and not o.baseline:
            self.bar.update(1)

    def note(self, message) -> None:
        if self.bar is not None:
            self.bar.write(f"note: {message}", file=sys.stderr)
        else:
            click.echo(f"note: {message}", err=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _table(search, summary) -> None:
    from mvsearch.search.driver import best_trials

    best = best_trials(search)
    click.echo("")
    if not best:
        click.echo("no completed trial yet")
    else:
        click.echo("best trials (the 3 most accurate of each tier, and the baselines; sorted by FLOPs):")
        click.echo(f"{'trial':>10}  {'tier':<8} {'accuracy':>8} {'FLOPs':>8} {'params':>8}  architecture")
        for r in best:
            click.echo(f"{r.ref:>10}  {(r.tier or '-'):<8} {r.accuracy:>8.4f} {format_flops(r.flops):>8} "
                       f"{format_count(r.params):>8}  {r.preset or r.summary()}")
    s = summary
    trained = s.count("COMPLETE") + s.count("PRUNED") + s.count("FAIL")
    baselines = sum(1 for o in s.outcomes if o.baseline)
    also = f" incl. {baselines} baseline{'s' if baselines != 1 else ''}" if baselines else ""
    click.echo(f"this run: {trained} trained{also} ({s.count('COMPLETE')} complete, {s.count('PRUNED')} pruned, "
               f"{s.count('FAIL')} failed), {s.rejected} rejected by the budget gate, "
               f"{s.screened} start-up draws screened out; {_dur(s.wall_s)}")
    click.echo(f"list them: mvsearch trials --study {s.study_name}"
               + (f" --storage {s.storage}" if not s.storage.endswith(f"studies/{s.study_name}.db") else ""))


def _latency_callback(url, threads):
    """An Optuna callback measuring each completed trial's latency (``--measure-latency``)."""
    from optuna.trial import TrialState

    from mvsearch.latency.study import measure_and_store
    from mvsearch.search.record import StudyRecord, records_of

    def measure(study, trial) -> None:
        if trial.state != TrialState.COMPLETE:
            return
        info = StudyRecord.from_attrs(study.user_attrs)
        rec = records_of([trial], study.study_name, info.tier)[0]
        if rec.arch is not None:
            measure_and_store(url, info.search, rec.ref, rec.arch, info.resolution, backend="torch", threads=threads)

    return measure


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
# names checked by the library (mvsearch.search.check_options): a wrong one is one line, exit 2
@click.option("--sampler", metavar="[tpe|random|nsga2]", help="Default: the space's search.sampler.")
@click.option("--pruner", metavar="[hyperband|median|none]", help="Default: the space's search.pruner.")
@click.option("--device", metavar="[auto|cpu|cuda]", default="auto", show_default=True)
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for the run (training and counting); "
                                                             "on a shared machine, at most the free cores.")
@click.option("--with-baselines", is_flag=True, help="Also train the paper presets (scaled to the space's "
                                                     "classes) under the same proxy, tagged as baselines.")
@click.option("--save-weights", is_flag=True, help="Save each trained proxy network under studies/<study>-weights/.")
@click.option("--measure-latency", is_flag=True, help="Measure each completed trial's batch-1 latency.")
@click.pass_context
def command(ctx, space_ref, budget, tiers, max_params, trials, timeout, study_name, storage, data, seed, sampler,
            pruner, device, threads, with_baselines, save_weights, measure_latency):
    """Search architectures under a budget: sample, gate on FLOPs, train the proxy, prune, record."""
    import optuna

    from mvsearch.core.errors import StudyError
    from mvsearch.search.driver import run_search
    from mvsearch.search.events import RunOptions
    from mvsearch.space.loader import load_space

    space = load_space(space_ref)
    s = space.spec.search
    if budget is None and tiers is None:
        budget, tiers = s.budget, s.tiers
    b = parse_budget(budget, tiers=tiers, max_params=max_params if max_params is not None else s.max_params)
    if trials is not None and trials < 1:
        raise StudyError(f"--trials: must be a positive integer, got {trials}")
    opts = RunOptions(
        trials=trials if trials is not None else s.trials, study_name=study_name, storage=storage, data=data,
        seed=seed if seed is not None else s.seed, sampler=sampler or s.sampler, pruner=pruner or s.pruner,
        device=device, timeout_s=parse_duration(timeout) if timeout is not None else None,
        with_baselines=with_baselines, save_weights=save_weights, threads=threads,
    )
    from mvsearch.search.storage import default_storage

    url = opts.storage or default_storage(opts.study_name or space.name)
    callbacks = [_latency_callback(url, opts.threads)] if measure_latency else []
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    printer = _Printer(opts.trials)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=optuna.exceptions.ExperimentalWarning)
            summary = run_search(space, b, opts, printer, callbacks=callbacks)
    finally:
        printer.close()
    from mvsearch.search.storage import open_search

    _table(open_search(summary.study_name, summary.storage), summary)
    if summary.timed_out:
        click.echo(f"stopped: --timeout {timeout} reached; rerun the same command to add trials")
    if summary.interrupted:
        click.echo("interrupted: the running trial was marked failed; rerun the same command to resume",
                   err=True)
        ctx.exit(130)
