"""``mvsearch report``: one self-contained HTML page about a study."""
from __future__ import annotations

import click

from mvsearch.analysis.report import write_report
from mvsearch.core.text import printable


@click.command()
@click.option("--study", "study_name", help="Study name (default: the only study in studies/).")
@click.option("--storage", help="Optuna storage URL (default: sqlite:///studies/<study>.db).")
@click.option("-o", "--output", default=None, type=click.Path(dir_okay=False),
              help="Where to write the page  [default: reports/<study>.html]")
@click.option("--backend", default=None, help="Latency figures from this backend (torch, onnxruntime); "
                                               "default: the device that measured most trials.")
@click.option("--by", default="proxy", show_default=True, metavar="[proxy|validated]",
              help="Pareto fronts by the proxy accuracy, or by the validated accuracy (`mvsearch validate`).")
@click.option("--png", is_flag=True, help="Also write each figure as PNG beside the page (needs kaleido).")
@click.option("--force", is_flag=True, help="Replace the output file even if it is not a page mvsearch wrote.")
def command(study_name, storage, output, backend, by, png, force):
    """Write the search's page: summary, Pareto plots, then per tier Optuna's history, intermediate
    values, importances and parallel coordinates, the EDF, and every trial."""
    path, rep = write_report(study_name, storage, output, backend=backend, png=png, force=force, by=by)
    notes = f"; shown as notes: {', '.join(rep.notes)}" if rep.notes else ""
    click.echo(printable(f"wrote {path} ({len(rep.figures)} figures{notes})"))
