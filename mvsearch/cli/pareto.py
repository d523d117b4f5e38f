"""``mvsearch pareto``: the accuracy-vs-cost front of a study, as a table and an HTML plot."""
from __future__ import annotations

import click

from mvsearch.analysis.pareto import compute, noise_note, table
from mvsearch.analysis.page import check_output
from mvsearch.analysis.report import write_pareto
from mvsearch.cli.options import print_json
from mvsearch.core.text import printable
from mvsearch.core.units import format_count, format_flops


@click.command()
@click.option("--study", "study_name", help="Study name (default: the only study in studies/).")
@click.option("--storage", help="Optuna storage URL (default: sqlite:///studies/<study>.db).")
@click.option("--x", "x_axis", default="flops", show_default=True, help="Cost to minimise: latency, flops or params.")
@click.option("--y", "y_axis", default="accuracy", show_default=True, help="Quality to maximise: accuracy.")
@click.option("--by", default="proxy", show_default=True, metavar="[proxy|validated]",
              help="Rank by the search's proxy accuracy, or by the validated accuracy of the trials `mvsearch "
                   "validate` retrained (only those are shown).")
@click.option("-o", "--output", default="reports/pareto.html", show_default=True, type=click.Path(dir_okay=False),
              help="Where to write the interactive HTML plot (works offline).")
@click.option("--backend", default=None, help="Latency figures from this backend (torch, onnxruntime); "
                                               "default: the device that measured most trials.")
@click.option("--png", is_flag=True, help="Also write a PNG beside the page (needs kaleido).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (the front and the axes).")
@click.option("--force", is_flag=True, help="Replace the output file even if it is not a page mvsearch wrote.")
def command(study_name, storage, x_axis, y_axis, by, output, backend, png, as_json, force):
    """Print the non-dominated trials (minimise x, maximise accuracy) and write an HTML plot."""
    check_output(output, force=force)  # a refusal costs nothing: before the front is computed
    p = compute(study_name, storage, x_axis, y_axis, backend=backend, by=by)
    path = write_pareto(p, output, png=png, force=force)
    if as_json:
        out = p.to_json()
        out["html"] = str(path)
        print_json(out)
        return
    c = p.counts
    click.echo(f"{printable(p.study_name)}: Pareto front of {'validated ' if by == 'validated' else ''}accuracy vs {p.x.name}, "
               f"{len(p.front)} of {len(p.points)} {'validated' if by == 'validated' else 'completed'} trials ({c.get('PRUNED', 0)} pruned, {c.get('FAIL', 0)} failed, {c.get('REJECTED', 0)} over budget "
               f"never trained)")
    if p.device is not None:
        click.echo(f"latency: {p.device.label()}")
    rows = table(p)
    width = max(8, *(len(row["accuracy text"]) for row in rows))
    click.echo(f"{'rank':>4} {'trial':>9} {'accuracy':>{width}} {'≈':<3} {'FLOPs':>9} {'params':>8} {'latency':>18}  "
               f"{'paper tier':<11} arch")
    for row in rows:
        click.echo(f"{row['rank']:>4} {row['trial']:>9} {row['accuracy text']:>{width}} {row['tie']:<3} "
                   f"{format_flops(row['flops']):>9} {format_count(row['params']):>8} {row['latency']:>18}  "
                   f"{row['paper tier']:<11} {row['arch']}")
    click.echo(noise_note(p))
    click.echo(f"wrote {path}")
