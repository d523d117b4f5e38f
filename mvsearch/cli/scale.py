"""``mvsearch scale``: a scaling study of a preset, a config or a study's trial (families, ladder, fit)."""
from __future__ import annotations

import logging

import click

from mvsearch.cli import jobs as parallel
from mvsearch.cli.options import echo, print_json, quiet_trial_failures
from mvsearch.cli.progress import TrainingPrinter
from mvsearch.core.errors import StudyError
from mvsearch.core.text import shorten


def _floats(text: str, option: str, *, count: int | None = None) -> list[float]:
    import math

    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    try:
        values = [float(p) for p in parts if len(p) <= 30]
    except ValueError:
        values = []
    if not parts or len(values) != len(parts) or not all(math.isfinite(v) and v > 0 for v in values) \
            or (count is not None and len(values) != count):
        want = f"{count} positive numbers" if count else "positive numbers"
        raise StudyError(f"{option}: expected {want} separated by commas, got {shorten(text)}")
    return values


def _target(text: str, base_flops: int) -> int:
    """``1.5G`` (FLOPs) or ``2x`` (times the base's FLOPs)."""
    from mvsearch.core.units import parse_flops

    t = text.strip()
    if t.lower().endswith("x"):
        (m,) = _floats(t[:-1], "--flops")
        return max(1, int(round(m * base_flops)))
    return parse_flops(t, "--flops")


def parse_targets(flops: str, points: int | None, base_flops: int) -> list[int]:
    """``LO..HI`` with ``--points K`` (geometric), or ``A,B,C``: target FLOPs, ascending. A value
    ending in ``x`` is a multiple of the base's FLOPs (``1x..8x``: the base and 8 times it)."""
    from mvsearch.cost.ladder import geometric_targets

    text = str(flops).strip()
    if ".." in text:
        lo_s, _, hi_s = text.partition("..")
        lo, hi = _target(lo_s, base_flops), _target(hi_s, base_flops)
        if points is None:
            raise StudyError("--flops LO..HI needs --points K (how many geometric steps), e.g. --points 5")
        if not 2 <= points <= 50:
            raise StudyError(f"--points: must be in 2..50, got {points}")
        if hi <= lo:
            raise StudyError(f"--flops {shorten(text)}: the high end must exceed the low end")
        return geometric_targets(lo, hi, points)
    if points is not None:
        raise StudyError("--points goes with --flops LO..HI; a list --flops A,B,C gives its points itself")
    values = sorted({_target(p, base_flops) for p in text.split(",") if p.strip()})
    if not values or len(values) > 50:
        raise StudyError(f"--flops: expected LO..HI or 1 to 50 values A,B,C, got {shorten(text)}")
    return values


@click.command()
@click.option("--preset", help="Scale a paper preset: mobilevit_xxs, mobilevit_xs, mobilevit_s.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="Scale an architecture YAML (as `mvsearch export --format yaml` writes).")
@click.option("--trial", help="Scale a trial of --study, as `mvsearch trials` lists it (1.5G/3).")
@click.option("--best", is_flag=True, help="Scale the most accurate searched trial of --study.")
@click.option("--study", "study_name", help="The search whose trial is scaled (with --trial / --best).")
@click.option("--storage", help="Optuna storage URL of that search and of the scaling study "
                                "(default: sqlite:///studies/<name>.db each).")
@click.option("--family", "families", multiple=True, required=False,
              help="width, depth, resolution, compound, dwr; repeat or comma-separate. Default: all five.")
@click.option("--flops", help="Ladder targets at the deployment resolution: LO..HI with --points K (geometric), "
                              "or A,B,C; FLOPs (0.2G..2G) or multiples of the base's (1x..8x).")
@click.option("--points", type=int, help="Steps of a LO..HI ladder.")
@click.option("--multipliers", help="FLOP multipliers s of the base instead of targets, e.g. 0.5,1,2,4.")
@click.option("--alpha", type=float, default=0.8, show_default=True,
              help="dwr: share of log s given to width (Dollar et al. 2021).")
@click.option("--compound", "compound_abg", default="1.2,1.1,1.15", show_default=True,
              help="compound: depth, width, resolution bases alpha,beta,gamma (EfficientNet's), or 'search': "
                   "train EfficientNet's grid at phi = 1 first and take the most accurate.")
@click.option("--resolution", type=int, help="Deployment input side of a --preset/--config base (default 256).")
@click.option("--with-presets", is_flag=True, help="Also train the paper presets within the ladder's FLOPs "
                                                   "under the same training, to compare with.")
@click.option("--space", "space_ref", help="Take the proxy from this space (default: the trial's study's "
                                           "proxy, else the shipped space 'mobile').")
@click.option("--data", help="Data spec (default: the proxy's).")
@click.option("--epochs", type=click.IntRange(min=1), help="Epochs per training (default: the proxy's).")
@click.option("--train-samples", type=click.IntRange(min=1), help="Training images (default: the proxy's).")
@click.option("--val-samples", type=click.IntRange(min=1), help="Validation images (default: the proxy's).")
@click.option("--seeds", type=int, default=2, show_default=True, help="Trainings per ladder point (seeds 0..K-1).")
@click.option("--device", metavar="[auto|cpu|cuda]", default="auto", show_default=True)
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for training.")
@click.option("--timeout", help="Stop starting trainings after this long (2h, 30m); rerun to resume.")
@click.option("--name", "scale_name", help="The scaling study's name (default: scale-<base>). Same name: resume.")
@click.option("--holdout", type=click.IntRange(min=0), default=1, show_default=True,
              help="Largest points per family held out of the fit and predicted.")
@click.option("--predict", "predict_at", default="4G", show_default=True,
              help="FLOPs to predict the error at (comma-separated for several).")
@click.option("--target-error", type=float, help="Also say the FLOPs each family needs for this error (0.2 = 20%).")
@click.option("--resamples", type=click.IntRange(min=100, max=100_000), default=1000, show_default=True,
              help="Bootstrap resamples for the intervals.")
@click.option("--measure-latency", is_flag=True, help="Measure each trained point's batch-1 latency on this "
              "machine (CPU, torch) at its deployment resolution, stored beside the study.")
@click.option("--dry-run", is_flag=True, help="Print the ladder (target vs achieved FLOPs) and train nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (ladder and fit per family).")
@click.option("-o", "--output", "page", help="Write the study's page (offline HTML) here.")
@click.option("--force", is_flag=True, help="Overwrite an existing page that mvsearch did not write.")
@parallel.jobs_options
@click.pass_context
def command(ctx, preset, config_path, trial, best, study_name, storage, families, flops, points, multipliers, alpha,
            compound_abg, resolution, with_presets, space_ref, data, epochs, train_samples, val_samples, seeds,
            device, threads, timeout, scale_name, holdout, predict_at, target_error, resamples, measure_latency,
            dry_run, as_json, page, force, jobs, worker_of):
    """Grow and shrink a network along scaling families, train each ladder point, fit error = a*FLOPs^-b + c."""
    import dataclasses

    from mvsearch.arch.scaling import check_family
    from mvsearch.core.units import format_flops, parse_duration, parse_flops
    from mvsearch.search import scaling as sc

    for handler in logging.getLogger("optuna").handlers:  # each training's outcome is printed by us
        handler.addFilter(quiet_trial_failures)
    # ------------------------------------------------ every option checked before anything is trained
    chosen = [o for o, v in (("--preset", preset), ("--config", config_path), ("--trial", trial),
                             ("--best", best or None)) if v is not None]
    if len(chosen) != 1:
        got = f"; got {' and '.join(chosen)}" if chosen else ""
        raise StudyError(f"pass exactly one base: --preset NAME, --config FILE, --trial REF or --best{got}")
    names: list[str] = []
    for f in families or ("width,depth,resolution,compound,dwr",):
        names += [x.strip() for x in f.split(",") if x.strip()]
    fam_params = {"dwr": {"alpha": alpha}}
    names = list(dict.fromkeys(names))
    for n in names:
        check_family(n)
    grid_search = str(compound_abg).strip().lower() == "search" and "compound" in names
    if not grid_search:
        a, b_, g = _floats(compound_abg, "--compound", count=3)
        fam_params["compound"] = {"alpha": a, "beta": b_, "gamma": g}
        check_family("compound").params(**fam_params["compound"])
    # the compound family's bases are known only after its grid search, which trains first
    fams = [(n, fam_params.get(n, {})) for n in names if not (grid_search and n == "compound")]
    if (flops is None) == (multipliers is None):
        raise StudyError("pass the ladder as --flops LO..HI --points K, --flops A,B,C, or --multipliers S1,S2,...")
    mults = sorted(set(_floats(multipliers, "--multipliers"))) if multipliers is not None else None
    predict = [parse_flops(p, "--predict") for p in str(predict_at).split(",") if p.strip()]
    if target_error is not None and not 0 < target_error < 1:
        raise StudyError(f"--target-error: an error rate in (0, 1), e.g. 0.2 for 20%, got {target_error}")
    timeout_s = parse_duration(timeout) if timeout is not None else None
    if trial is None and not best and (study_name is not None):
        raise StudyError("--study names the search of a --trial or --best base; a preset or config needs none "
                         "(the scaling study's own name is --name)")
    if flops is not None:  # the syntax is checked before a study is opened (the x multiples need the base)
        parse_targets(flops.replace("x", "G"), points, 1)
    base, proxy = _base_and_proxy(preset, config_path, trial, best, study_name, storage, resolution, space_ref)
    targets = parse_targets(flops, points, _cost(base).flops) if flops is not None else None
    over = {k: v for k, v in (("data", data), ("epochs", epochs), ("train_samples", train_samples),
                              ("val_samples", val_samples)) if v is not None}
    if over:
        from mvsearch.proxy.settings import ProxySettings

        proxy = ProxySettings.from_dict({**proxy.to_dict(), **over})
    n_points = len(targets) if targets is not None else len(mults)
    if n_points < 4:
        raise StudyError(f"a scaling law needs at least 4 ladder points per family, got {n_points}; "
                         f"use --points 4 or more (or list 4 --flops / --multipliers values)")
    if n_points - holdout < 3:
        raise StudyError(f"--holdout {holdout} leaves {n_points - holdout} of {n_points} points to fit; a law needs 3: "
                         f"add --points or lower --holdout")
    opts = sc.ScaleOptions(name=scale_name or sc.default_name(base), storage=storage, seeds=seeds, device=device,
                           threads=threads, timeout_s=timeout_s)
    sc.check_scale_options(opts)
    rungs = sc.plan(base, fams, proxy, targets=targets, multipliers=mults)
    grid = sc.compound_grid(base, proxy) if grid_search else []
    if with_presets:
        rungs += sc.plan(base, [], proxy, targets=[], presets=sc.nearest_presets(base, rungs + grid))
    ladder_lines = _ladder(base, rungs + grid, proxy, opts)
    if grid_search:
        ladder_lines.append("compound: bases searched first at phi = 1 (the compound-grid rows); its ladder is "
                            "planned from the most accurate of them")
    if dry_run:
        if as_json:
            print_json({"base": base.to_dict(), "proxy": proxy.to_dict(), "ladder": [r.to_dict() for r in rungs]})
        else:
            for line in ladder_lines:
                echo(line)
            echo("dry run: nothing trained")
        return
    from mvsearch.analysis import scaling_report as sr

    if page is not None:
        from mvsearch.analysis.page import check_output

        check_output(page, force=force)
    events = TrainingPrinter(_rung_label)
    if grid_search:  # EfficientNet's step 1: the grid at phi = 1, trained as part of the same study
        gstudy = sc.ScaleStudy(base, grid, proxy, opts, events)
        gstudy.prepare()
        if not as_json and not parallel.is_worker(ctx):
            for line in ladder_lines:
                echo(line)
        gstudy.open()
        gsum = parallel.train(ctx, gstudy, plan=rungs + grid)  # --jobs N: the workers run the whole command
        chosen = sc.best_grid_point(grid, gstudy.results())
        if gsum.interrupted:
            parallel.finish(ctx, gsum)  # the workers' parent: one line, exit 130
            raise KeyboardInterrupt
        if chosen is None:
            raise StudyError("the compound grid has no trained network yet (other workers are training it); "
                             "rerun the command when they are done")
        g_best, g_acc = chosen
        ga, gb, gg = g_best.factors
        fam_params["compound"] = {"alpha": ga, "beta": gb, "gamma": gg}
        if not parallel.is_worker(ctx):
            echo(f"compound: the grid at phi = 1 chose alpha={ga:.3f} beta={gb:.2f} gamma={gg:.2f} "
                 f"(mean accuracy {g_acc:.4f}, {format_flops(g_best.flops)})", err=True)
        more = sc.plan(base, [("compound", fam_params["compound"])], proxy, targets=targets, multipliers=mults)
        rungs = rungs + more + grid
    study = sc.ScaleStudy(base, rungs, proxy, opts, events)
    study.prepare()
    if not as_json and not grid_search and not parallel.is_worker(ctx):
        for line in ladder_lines:
            echo(line)
    elif not as_json and not parallel.is_worker(ctx):
        for line in _ladder(base, more, proxy, opts)[3:]:
            echo(line)
    study.open()
    summary = parallel.train(ctx, study)  # --jobs N: N workers train it; a worker ends here
    parallel.stop_if_worker(ctx, summary)
    results = study.results()
    if measure_latency and not summary.interrupted:
        from mvsearch.latency.study import measure_study

        done = measure_study(opts.name, study.url, threads=threads)
        if not as_json:
            echo(f"latency: measured {len(done.measured)} subject(s) on {done.device.label()} "
                 f"({done.already} already measured)", err=True)
    report = sr.build(base, rungs, results, seeds=opts.seeds, holdout=holdout, resamples=resamples,
                      predict=predict, target_error=target_error, name=opts.name, url=study.url,
                      proxy=dataclasses.asdict(proxy), latency=_latencies(opts.name, study.url))
    if page is not None and report.fits:
        path = sr.write_page(report, page, force=force)
    else:
        path = None
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
        elif page is not None:
            echo("page: not written (no family has enough trained points to fit yet)")
    parallel.finish(ctx, summary)
    if summary.interrupted:
        raise KeyboardInterrupt


def _base_and_proxy(preset, config_path, trial, best, study_name, storage, resolution, space_ref):
    from mvsearch.arch.config import load_arch
    from mvsearch.arch.presets import get_preset
    from mvsearch.core.limits import MAX_RESOLUTION, check_int
    from mvsearch.proxy.settings import ProxySettings
    from mvsearch.search import scaling as sc
    from mvsearch.space.loader import load_space

    space = load_space(space_ref) if space_ref is not None else None
    if resolution is not None:
        if trial is not None or best:
            raise StudyError("--resolution sets a --preset/--config base's deployment; a trial keeps its study's")
        check_int(resolution, "--resolution", 32, MAX_RESOLUTION, StudyError, what="an input side")
    if preset is not None or config_path is not None:
        arch = get_preset(preset) if preset is not None else load_arch(config_path)
        base = sc.Base("preset" if preset else "config", preset or str(config_path), arch, resolution or 256)
        proxy = (space or load_space("mobile")).proxy_settings()
        return base, proxy
    from mvsearch.search.storage import open_search
    from mvsearch.search.record import StudyRecord

    st = open_search(study_name, storage)
    recs = [r for r in st.records() if r.state == "COMPLETE" and r.accuracy is not None and r.arch is not None]
    if trial is not None:
        rec = st.find(trial)
        if rec.arch is None:
            raise StudyError(f"--trial {trial}: the trial has no recorded architecture; pick another "
                             f"(see `mvsearch trials --study {st.name}`)")
    else:
        searched = [r for r in recs if not r.baseline] or recs
        if not searched:
            raise StudyError(f"study {st.name!r} has no COMPLETE trial yet; let `mvsearch run` finish one")
        rec = max(searched, key=lambda r: (r.accuracy, -(r.flops or 0)))
    info = StudyRecord.from_attrs(st.user_attrs)
    res = rec.resolution or info.resolution or [256, 256]
    if res[0] != res[1]:
        raise StudyError(f"trial {rec.ref} is deployed at {res[0]}x{res[1]}; scaling needs a square input")
    base = sc.Base("trial", f"{st.name} {rec.ref}", rec.arch, int(res[0]))
    if space is not None:
        proxy = space.proxy_settings()
    elif rec.proxy or info.proxy:
        proxy = ProxySettings.from_dict(rec.proxy or info.proxy)
    else:
        proxy = load_space("mobile").proxy_settings()
    return base, proxy


def _ladder(base, rungs, proxy, opts) -> list[str]:
    from mvsearch.core.units import format_count, format_flops
    from mvsearch.search.record import describe_proxy

    keys = {r.key for r in rungs}
    out = [f"base: {base.label} ({base.kind}, {base.resolution}x{base.resolution}, "
           f"{format_flops(_cost(base).flops)} FLOPs)",
           f"proxy: {describe_proxy(proxy.to_dict())} on {proxy.data}; {opts.seeds} seed(s) per point",
           f"ladder: {len(rungs)} points, {len(keys)} distinct networks, {len(keys) * opts.seeds} trainings",
           f"{'family':<14}{'s':>6}{'d':>6}{'w':>6}{'r':>6}{'input':>7}{'target':>9}{'FLOPs':>9}{'off':>7}"
           f"{'params':>9}{'acts':>9}  proxy input"]
    for r in rungs:
        label = r.preset if r.preset else r.family
        target = format_flops(r.target_flops) if r.target_flops else "-"
        off = f"{100 * (r.flops / r.target_flops - 1):+.1f}%" if r.target_flops else "-"
        d, w, rr = r.factors
        out.append(f"{label:<14}{r.multiplier:>6.2f}{d:>6.2f}{w:>6.2f}{rr:>6.2f}{r.resolution:>7}{target:>9}"
                   f"{format_flops(r.flops):>9}{off:>7}{format_count(r.params):>9}{format_count(r.activations):>9}"
                   f"  {r.proxy_resolution}")
    return out


def _latencies(name: str, url: str) -> dict[str, float]:
    """Trial ref -> median batch-1 latency (ms) on the device that measured most of the study."""
    from mvsearch.latency.store import latencies, pick_device

    dev = pick_device(url, name)
    if dev is None:
        return {}
    out = {}
    for subject, rec in latencies(url, name, dev).items():
        kind, _, ref = subject.partition(":")
        if kind == "trial":
            out[ref] = rec.median_ms
    return out


def _cost(base):
    from mvsearch.cost.analytic import analytic_cost

    return analytic_cost(base.arch, base.resolution)


def _rung_label(rung) -> str:
    from mvsearch.core.units import format_flops

    return f"{rung.preset or f'{rung.family} s={rung.multiplier:.2f}'} {format_flops(rung.flops)}"
