"""``mvsearch export``: a trial or preset as a standalone .py, an ArchConfig YAML and/or ONNX."""
from __future__ import annotations

import click

from mvsearch.arch.geometry import parse_resolution
from mvsearch.cli.options import echo
from mvsearch.core.errors import ExportError
from mvsearch.core.limits import MAX_CLASSES, check_int
from mvsearch.search import storage as studies
from mvsearch.search.validate import check_by
from mvsearch.export.writer import check_opset, check_stem, from_preset, from_trial, parse_formats, select, write


@click.command()
@click.option("--study", "study_name", help="Study name (default storage: sqlite:///studies/NAME.db).")
@click.option("--storage", help="Optuna storage URL (default: the study's SQLite file).")
@click.option("--trial", help="The trial to export, as `mvsearch trials` lists it: 1.5G/3 (or 3 when only one tier has a trial 3).")
@click.option("--best", is_flag=True, help="Export the most accurate COMPLETE trial (baselines included).")
@click.option("--pareto-rank", type=int,
              help="Export the K-th point of the accuracy-vs-FLOPs Pareto front: 1 = most accurate.")
@click.option("--by", default="proxy", show_default=True, metavar="[proxy|validated]",
              help="What --best and --pareto-rank rank by: the proxy accuracy, or the validated one "
                   "(`mvsearch validate`).")
@click.option("--preset", help="Export a paper preset (mobilevit_xxs, mobilevit_xs, mobilevit_s); no study needed.")
@click.option("--format", "formats", default="py", show_default=True,
              help="py, yaml, onnx, or all; several comma-separated (py,onnx).")
@click.option("--weights", is_flag=True, help="Ship the trial's saved proxy weights (mvsearch run --save-weights).")
@click.option("--num-classes", type=int, help="Classifier outputs (default: the trial's, or the weights').")
@click.option("--resolution", help="Deployment resolution N or HxW (default: the trial's, 256 for presets).")
@click.option("--name", help="File and module name (default: STUDY_trialN, or the preset name).")
@click.option("--opset", type=int, default=17, show_default=True, help="ONNX opset (17..23).")
@click.option("--allow-incomplete", is_flag=True, help="Also export a pruned, failed or rejected trial.")
@click.option("--force", is_flag=True, help="Overwrite existing output files.")
@click.option("-o", "--output", "out_dir", help="Output directory (created if missing).")
def command(study_name, storage, trial, best, pareto_rank, by, preset, formats, weights, num_classes,
            resolution, name, opset, allow_incomplete, force, out_dir):
    """Write a found architecture as a torch-only .py, a YAML for --config, and/or ONNX."""
    chosen = [o for o, v in (("--trial", trial is not None), ("--best", best),
                             ("--pareto-rank", pareto_rank is not None), ("--preset", preset is not None)) if v]
    if len(chosen) != 1:
        got = f"; got {' and '.join(chosen)}" if chosen else ""
        raise ExportError(f"pass exactly one of --trial N, --best, --pareto-rank K or --preset NAME{got}")
    if out_dir is None:
        raise ExportError("pass the output directory with -o DIR (e.g. -o models/)")
    fmts = parse_formats(formats)  # every option is checked before a study is opened or a file written
    check_by(by)
    if by != "proxy" and not (best or pareto_rank is not None):
        raise ExportError(f"--by {by} ranks --best and --pareto-rank; --trial and --preset name their model "
                          f"themselves: drop --by")
    if num_classes is not None:
        check_int(num_classes, "--num-classes", 1, MAX_CLASSES, ExportError, what="a positive integer")
    if name is not None:
        check_stem(name)
    check_opset(opset)
    if resolution is not None:
        parse_resolution(resolution)
    if pareto_rank is not None and pareto_rank < 1:
        raise ExportError(f"--pareto-rank: must be a positive integer (1 = most accurate), got {pareto_rank}")
    if preset is not None:
        if study_name or storage or weights or allow_incomplete:
            raise ExportError("--preset exports a paper preset: it takes no --study, --storage, --weights "
                              "or --allow-incomplete")
        target = from_preset(preset, num_classes, resolution or 256, stem=name)
        echo(f"exporting preset {preset} ({target.cfg.num_classes} classes)")
    else:
        st = studies.open_search(study_name, storage)
        rec = select(st, trial=trial, best=best, pareto_rank=pareto_rank, by=by)
        target = from_trial(st, rec, storage=st.url, weights=weights, num_classes=num_classes,
                            resolution=resolution, allow_incomplete=allow_incomplete, stem=name)
        acc = f"accuracy {rec.accuracy:.4f}" if rec.accuracy is not None else "no accuracy"
        if by == "validated" and rec.accuracy is not None:
            acc = f"validated accuracy {rec.accuracy:.4f}"
        kind = f", baseline {rec.preset}" if rec.baseline and rec.preset else ""
        echo(f"exporting trial {rec.ref} of study {st.name!r} ({rec.state}, {acc}{kind})")
    result = write(target, out_dir, fmts, force=force, opset=opset)
    if target.state_dict is None:  # say it once, where the files are made: they hold no trained weights
        saved = preset is None and rec.weights is not None
        echo("note: no trained weights: the files hold the architecture only (random-init weights); "
                   + ("this trial saved its proxy weights: add --weights to ship them" if saved else
                      "use --weights with a study run with --save-weights"), err=True)
    for note in result.notes:
        echo(f"note: {note}", err=True)
    h, w = result.resolution
    what = {
        "py": "standalone, torch only: from {m} import build_model",
        "yaml": "ArchConfig: mvsearch count/train --config",
        "onnx": f"opset {opset}, dynamic batch, {h}x{w}; onnxruntime max |diff| {result.onnx_diff or 0:.1e}",
        "weights": "state_dict",
    }
    for kind, path in result.files:
        echo(f"wrote {path}  ({what[kind].format(m=target.stem)})")
    echo(f"{result.params:,} params, {result.flops:,} FLOPs at {h}x{w} (fvcore, 1 multiply-add = 1 FLOP)")
