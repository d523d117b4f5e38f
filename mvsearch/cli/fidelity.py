"""``mvsearch fidelity``: does a short proxy training rank architectures as a longer reference training does?"""
from __future__ import annotations

import logging

import click

from mvsearch.cli import jobs as parallel
from mvsearch.cli.options import echo, print_json, quiet_trial_failures
from mvsearch.cli.progress import TrainingPrinter


@click.command()
@click.option("--space", "space_ref", required=True,
              help="The space whose architectures are drawn: a file (spaces/mobile.yaml) or a shipped name (tiny).")
@click.option("--budget", help="FLOP band(s) the architectures are spread over: 1.5G, or tiers 0.42G,1.05G,2.0G "
                               "(tau is also given within each tier). Default: the space's search.budget.")
@click.option("--tiers", help="A named set of tiers instead of --budget: paper (0.42G, 1.05G, 2.03G).")
@click.option("--archs", type=int, required=True, help="Architectures to train, spread evenly in log FLOPs.")
@click.option("--reference", "reference_text", required=True,
              help='The long training every proxy is judged against, as overrides of the space\'s proxy: '
                   '"epochs=10,train_samples=20000".')
@click.option("--proxy", "proxy_texts", multiple=True,
              help='A short training to judge (repeat for several): "epochs=1", "train_samples=4096", '
                   '"epochs=3,resolution=32".')
@click.option("--seeds", type=int, default=1, show_default=True, help="Trainings per architecture under each proxy.")
@click.option("--reference-seeds", type=int, default=2, show_default=True,
              help="Trainings per architecture under the reference (2: its own noise, the ceiling, is measured).")
@click.option("--data", help="Data spec for every setting (default: the space's proxy.data).")
@click.option("--plan-seed", type=int, help="Seed of the architecture draw (default: the space's search.seed); "
                                            "the same seed plans the same architectures.")
@click.option("--name", "fidelity_name", help="The study's name (default: fidelity-<space>). Same name: resume.")
@click.option("--storage", help="Optuna storage URL (default: sqlite:///studies/<name>.db).")
@click.option("--device", metavar="[auto|cpu|cuda]", default="auto", show_default=True)
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for training.")
@click.option("--timeout", help="Stop starting trainings after this long (2h, 30m); rerun to resume.")
@click.option("--resamples", type=click.IntRange(min=100, max=100_000), default=1000, show_default=True,
              help="Bootstrap resamples for the intervals.")
@click.option("--dry-run", is_flag=True, help="Print the planned architectures and settings; train nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (tau, rho, baselines, costs, verdict).")
@click.option("-o", "--output", "page", help="Write the study's page (offline HTML) here.")
@click.option("--force", is_flag=True, help="Overwrite an existing page that mvsearch did not write.")
@parallel.jobs_options
@click.pass_context
def command(ctx, space_ref, budget, tiers, archs, reference_text, proxy_texts, seeds, reference_seeds, data, plan_seed,
            fidelity_name, storage, device, threads, timeout, resamples, dry_run, as_json, page, force, jobs,
            worker_of):
    """Train N architectures under a long reference and short proxies; say which proxy ranks them as the
    reference does (Kendall tau, Spearman rho, with intervals) and whether it beats counting FLOPs."""
    from mvsearch.budget import check_reachable, parse_budget
    from mvsearch.core.units import parse_duration
    from mvsearch.search import fidelity as fd
    from mvsearch.search.trainings import TrainingOptions, check_training_options
    from mvsearch.space.loader import load_space

    for handler in logging.getLogger("optuna").handlers:  # each training's outcome is printed by us
        handler.addFilter(quiet_trial_failures)
    # ------------------------------------------------ every option checked before anything is trained
    space = load_space(space_ref)
    s = space.spec.search
    if budget is None and tiers is None:
        budget, tiers = s.budget, s.tiers
    b = parse_budget(budget, tiers=tiers, max_params=s.max_params)
    cr = space.cost_range()
    check_reachable(b, min_flops=cr.min_flops, max_flops=cr.max_flops, min_params=cr.min_params,
                    where=f"space {space.name!r}")
    fd.check_archs(archs)
    fd.check_seeds(seeds, "--seeds")
    fd.check_seeds(reference_seeds, "--reference-seeds")
    base = space.proxy_settings(data=data)
    reference = fd.parse_setting(reference_text, base, seeds=reference_seeds, option="--reference", reference=True)
    proxies = [fd.parse_setting(t, base, seeds=seeds) for t in proxy_texts]
    fd.check_settings(reference, proxies)
    timeout_s = parse_duration(timeout) if timeout is not None else None
    opts = TrainingOptions(name=fidelity_name or fd.default_name(space), storage=storage,
                           seeds=max(seeds, reference_seeds), device=device, threads=threads, timeout_s=timeout_s)
    check_training_options(opts)
    if page is not None:
        from mvsearch.analysis.page import check_output

        check_output(page, force=force)
    the_plan = fd.plan(space, b, archs, reference, proxies, seed=plan_seed if plan_seed is not None else s.seed)
    if dry_run:
        if as_json:
            print_json({"plan": the_plan.to_dict(), "archs": [c.to_dict() for c in the_plan.candidates]})
        else:
            for line in _plan_lines(the_plan, space):
                echo(line)
            echo("dry run: nothing trained")
        return
    from mvsearch.analysis import fidelity_report as fr

    study = fd.FidelityStudy(the_plan, space, opts, TrainingPrinter(_entry_label, wall_digits=1))
    study.prepare()
    if not as_json and not parallel.is_worker(ctx):
        for line in _plan_lines(the_plan, space):
            echo(line)
    study.open()
    summary = parallel.train(ctx, study)  # --jobs N: N workers train it; a worker ends here
    parallel.stop_if_worker(ctx, summary)
    report = fr.build(the_plan, study.results(), train_images={st.text: study.train_images(st.proxy)
                                                               for st in the_plan.settings},
                      resamples=resamples, name=opts.name, url=study.url)
    path = fr.write_page(report, page, force=force) if page is not None else None
    if as_json:
        out = report.to_dict()
        out["run"] = {"trained": summary.trained, "failed": summary.failed, "interrupted": summary.interrupted,
                      "timed_out": summary.timed_out, "wall_s": summary.wall_s,
                      "running_elsewhere": summary.running_elsewhere}
        out["page"] = str(path) if path else None
        print_json(out)
    else:
        for line in report.lines():
            echo(line)
        if path is not None:
            echo(f"page: {path}")
    parallel.finish(ctx, summary)
    if summary.interrupted:
        raise KeyboardInterrupt


def _plan_lines(the_plan, space) -> list[str]:
    from mvsearch.core.units import format_count, format_flops
    from mvsearch.search.record import describe_proxy

    c = the_plan.candidates
    out = [f"space: {space.name} ({the_plan.resolution}x{the_plan.resolution}, {space.num_classes} classes); budget "
           f"{the_plan.budget.describe()}; {len(c)} architectures drawn with plan seed {the_plan.seed} "
           f"over {format_flops(the_plan.band[0])}..{format_flops(the_plan.band[1])} FLOPs (equal strata of log FLOPs)"]
    for st in the_plan.settings:
        what = "reference" if st.reference else "proxy"
        out.append(f"{what}: {st.name} ({describe_proxy(st.proxy.to_dict())}) on {st.proxy.data}; "
                   f"{st.seeds} seed(s)")
    out.append(f"plan: {len(c)} architectures x {len(the_plan.settings)} settings, {the_plan.trainings()} trainings")
    out.append(f"  {'#':>3}  {'tier':<8}{'FLOPs':>9}{'params':>9}  arch")
    for x in c:
        out.append(f"  {x.index:>3}  {x.tier:<8}{format_flops(x.flops):>9}{format_count(x.params):>9}  "
                   f"{x.preset or x.arch.summary()}")
    return out


def _entry_label(planned) -> str:
    from mvsearch.core.units import format_flops

    return f"{planned.preset or f'arch {planned.index}'} ({format_flops(planned.flops)} FLOPs) " \
           f"{planned.setting or 'space proxy'}"
