"""``mvsearch trials``: list a study's trials as a table, CSV or JSON (through pandas).

Each accuracy carries its 95% Wilson interval on the trial's validation images: ``0.7617 ±0.037`` in
the table, ``accuracy_lo`` / ``accuracy_hi`` beside ``val_samples`` in CSV and JSON. A trial of
``run --seeds K`` has the mean of its K final accuracies as its accuracy and each of them in
``seed_accuracies`` (a JSON list in CSV and JSON); the table then adds a ``seeds`` column, the
number of seeds and their spread. A trial that ``mvsearch validate`` retrained has its validated
accuracy (the mean of the longer training's seeds, under the latest validation setting) in
``validated`` with its interval, and the table shows a ``validated`` column.
"""
from __future__ import annotations

import json
import math
import sys
import click

from mvsearch.cli.options import echo
from mvsearch.core.interval import half_width, wilson
from mvsearch.core.text import printable
from mvsearch.core.units import format_count, format_flops


COLUMNS = ["trial", "study", "number", "state", "tier", "accuracy", "accuracy_lo", "accuracy_hi", "val_samples",
           "seed_accuracies", "validated", "validated_lo", "validated_hi", "validated_val_samples",
           "validated_accuracies", "flops", "params", "thop_macs", "activations", "epochs", "baseline", "preset",
           "over_budget", "duration_s", "arch"]


def accuracy_text(accuracy: float | None, n: int | None) -> str:
    """``0.7617 ±0.037``: the accuracy and half its 95% Wilson interval on ``n`` validation images;
    ``0.7617`` without ``n`` (studies made before it was recorded), ``-`` without an accuracy."""
    if accuracy is None or accuracy != accuracy:  # None or NaN
        return "-"
    return f"{accuracy:.4f} ±{half_width(accuracy, n):.3f}" if measured(accuracy, n) else f"{accuracy:.4f}"


def seeds_text(accuracies: list[float]) -> str:
    """`` (mean of 3 seeds, spread 0.7490–0.7740)`` after a mean of several seeds' accuracies; empty
    for one seed (or none), so a single training reads as it always did."""
    if len(accuracies) < 2:
        return ""
    return f" (mean of {len(accuracies)} seeds, spread {min(accuracies):.4f}–{max(accuracies):.4f})"


def _seeds_cell(accuracies: list[float]) -> str:
    """The table's ``seeds`` cell: ``3 (0.7490–0.7740)`` (seeds finished, lowest–highest accuracy);
    ``-`` when no seed finished (a pruned or rejected trial)."""
    if len(accuracies) > 1:
        return f"{len(accuracies)} ({min(accuracies):.4f}–{max(accuracies):.4f})"
    return str(len(accuracies)) if accuracies else "-"


def measured(accuracy: float | None, n: int | None) -> bool:
    """True when ``accuracy`` has a 95% interval: a finite figure measured on ``n`` > 0 images."""
    return accuracy is not None and math.isfinite(accuracy) and isinstance(n, int) and n > 0


def trials_frame(search, *, include_rejected: bool = False):
    """One row per trial (``arch`` as a dict), ordered by tier study, then number; ``accuracy_lo`` and
    ``accuracy_hi`` bound the accuracy's 95% Wilson interval on ``val_samples`` images (empty without them)."""
    import pandas as pd

    from mvsearch.search.validate import validated

    vals = validated(search)
    rows = []
    for r in search.records(include_rejected=include_rejected):
        lo, hi = wilson(r.accuracy, r.val_samples) if measured(r.accuracy, r.val_samples) else (None, None)
        v = vals.get(r.ref)
        v_lo, v_hi = wilson(v.accuracy, v.val_samples) if v and measured(v.accuracy, v.val_samples) else (None, None)
        rows.append({
            "trial": r.ref, "study": r.study, "number": r.number, "state": "REJECTED" if r.over_budget else r.state, "tier": r.tier,
            "accuracy": r.accuracy, "accuracy_lo": lo, "accuracy_hi": hi, "val_samples": r.val_samples,
            "seed_accuracies": list(r.seed_accuracies),
            "validated": v.accuracy if v else None, "validated_lo": v_lo, "validated_hi": v_hi,
            "validated_val_samples": v.val_samples if v else None,
            "validated_accuracies": list(v.accuracies) if v else [],
            "flops": r.flops, "params": r.params, "thop_macs": r.thop_macs,
            "activations": r.activations, "epochs": len(r.intermediate), "baseline": r.baseline,
            "preset": r.preset, "over_budget": r.over_budget, "duration_s": r.duration_s,
            "arch": r.arch.to_dict() if r.arch is not None else None, "summary": r.summary(),
        })
    for row in rows:  # names and labels read from the database reach a terminal: no control characters
        for k in ("trial", "study", "state", "tier", "preset", "summary"):
            if isinstance(row[k], str):
                row[k] = printable(row[k])
    df = pd.DataFrame(rows, columns=COLUMNS + ["summary"])
    return df.astype({"flops": "Int64", "params": "Int64", "thop_macs": "Int64", "activations": "Int64",
                      "val_samples": "Int64", "accuracy_lo": "float64", "accuracy_hi": "float64",
                      "validated": "float64", "validated_lo": "float64", "validated_hi": "float64",
                      "validated_val_samples": "Int64"})


@click.command()
@click.option("--study", "study_name", help="Study name (default: the only study in studies/).")
@click.option("--storage", help="Optuna storage URL (default: sqlite:///studies/<study>.db).")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.option("--sort", type=click.Choice(["number", "accuracy", "validated", "flops", "params"]), default="number",
              show_default=True, help="Order of the rows (accuracy: best first).")
@click.option("--rejected", is_flag=True, help="Also list candidates the budget gate rejected (never trained).")
def command(study_name, storage, fmt, sort, rejected):
    """List a study's trials: state, tier, accuracy, FLOPs, params, architecture."""
    from mvsearch.search.storage import open_search

    search = open_search(study_name, storage)
    df = trials_frame(search, include_rejected=rejected)
    import pandas as pd

    if sort != "number":
        df = df.sort_values(sort, ascending=sort not in ("accuracy", "validated"), na_position="last", kind="stable")
    if fmt == "json":
        out = df[COLUMNS].astype(object).where(df[COLUMNS].notna(), None).to_dict(orient="records")
        sys.stdout.write(json.dumps(out) + "\n")
        return
    flat = df.drop(columns=["arch"]).rename(columns={"summary": "arch"})
    if fmt == "csv":
        out = flat.assign(seed_accuracies=[json.dumps(v) for v in flat["seed_accuracies"]],
                          validated_accuracies=[json.dumps(v) for v in flat["validated_accuracies"]])
        echo(out.to_csv(index=False), nl=False)
        return
    if flat.empty:
        echo(f"study {search.name} has no trials yet"
                   + ("" if rejected else " (besides budget rejections: see --rejected)"))
        return
    show = flat[["trial", "state", "tier", "accuracy", "flops", "params", "epochs", "arch"]].copy()
    show["accuracy"] = [accuracy_text(None if pd.isna(a) else a, None if pd.isna(n) else int(n))
                        for a, n in zip(flat["accuracy"], flat["val_samples"])]
    show["flops"] = ["-" if pd.isna(f) else format_flops(int(f)) for f in flat["flops"]]
    show["params"] = ["-" if pd.isna(n) else format_count(int(n)) for n in flat["params"]]
    show["tier"] = flat["tier"].fillna("-")
    show["arch"] = [f"{p} (baseline)" if b else a for a, b, p in zip(flat["arch"], flat["baseline"], flat["preset"])]
    if any(len(v) > 1 for v in flat["seed_accuracies"]):  # run --seeds K: how many, and their spread
        show.insert(show.columns.get_loc("accuracy") + 1, "seeds", [_seeds_cell(v) for v in flat["seed_accuracies"]])
    if flat["validated"].notna().any():  # mvsearch validate: the longer training's mean accuracy
        at = show.columns.get_loc("flops")
        show.insert(at, "validated", [accuracy_text(None if pd.isna(a) else a, None if pd.isna(n) else int(n))
                                      for a, n in zip(flat["validated"], flat["validated_val_samples"])])
    order = {"number": "tier, then trial number", "accuracy": "accuracy, best first",
             "validated": "validated accuracy, best first (then the unvalidated)", "flops": "FLOPs, cheapest first",
             "params": "params, smallest first"}[sort]
    echo(f"{len(show)} trials of study {search.name}, sorted by {order}"
         + ("" if rejected else "; budget rejections left out (--rejected lists them)"))
    cols = list(show.columns)
    rows = [[str(v) for v in r] for r in show.itertuples(index=False)]
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(cols)]
    left = {"state", "tier", "arch"}  # text left-aligned, numbers right-aligned

    def fmt(cells: list[str]) -> str:
        return "  ".join(v.ljust(w) if c in left else v.rjust(w) for c, v, w in zip(cols, cells, widths)).rstrip()

    echo(fmt(cols))
    for r in rows:
        echo(fmt(r))
