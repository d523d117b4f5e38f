"""Progress and the closing table of ``mvsearch run`` (the search reports events; this prints them).

Accuracies carry their 95% Wilson interval on the validation images (``0.7617 ±0.037``), and a gain
over a paper preset says whether it lies within that noise (the two intervals overlap) or beyond it.
With ``run --seeds K`` (K > 1) a completed trial's accuracy is the mean of its K seeds, shown as
``0.7617 ±0.037 (mean of 3 seeds, spread 0.7490–0.7740)``; the interval stays that of the
validation images (the seeds are judged on the same ones).
"""
from __future__ import annotations

import sys
import time

from mvsearch.cli.options import echo
from mvsearch.cli.trials import accuracy_text, measured, seeds_text
from mvsearch.core.interval import wilson
from mvsearch.core.text import printable
from mvsearch.core.units import format_count, format_flops


def duration(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else (f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s")


class Printer:
    """What ``mvsearch run`` shows while it works.

    One line per finished trial on stdout, notes on stderr. On a terminal, a progress bar on stderr
    follows the running trial; without one (a log file, nohup, CI) a plain line per started trial
    and per epoch goes to stderr instead, so a log shows where a run is.
    """

    def __init__(self, trials: int, tty: bool | None = None) -> None:
        self.bar = None
        self.trials = trials
        self.rejected = 0
        self.val_samples: int | None = None  # validation images behind each accuracy (the run's proxy)
        self.seeds = 1  # trainings per candidate (run --seeds)
        self.tty = sys.stderr.isatty() if tty is None else tty
        if self.tty:
            from tqdm import tqdm

            self.bar = tqdm(total=trials, unit="trial", file=sys.stderr, dynamic_ncols=True, leave=False)

    def line(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(printable(text), file=sys.stdout)
        else:
            echo(text)
            sys.stdout.flush()  # a log file sees each trial as it ends, not when the buffer fills

    # Reporter interface
    def start(self, info) -> None:
        state = f"resuming, {info.existing} trials so far" if info.existing else "new"
        self.line(f"study {info.study_name} ({state}) in {info.storage}")
        self.line(f"space {info.space}; budget {info.budget.describe()}; {info.trials} trials to train")
        p = info.proxy
        self.val_samples = p.get("val_samples") if isinstance(p.get("val_samples"), int) else None
        self.line(f"proxy {info.data}; {p['resolution']}x{p['resolution']} stem stride {p['stem_stride']}, "
                  f"{p['epochs']} epochs, {p['train_samples']} train / {p['val_samples']} val images")
        self.seeds = info.seeds
        if self.seeds > 1:
            self.line(f"seeds: {self.seeds} trainings per candidate, ranked by their mean accuracy; the pruner "
                      f"watches the first seed")
        if info.baselines:
            self.line(f"baselines queued: {', '.join(info.baselines)}")
        for n in info.notes:
            self.note(f"proxy: {n}")

    def trial_start(self, ref, tier, cfg, flops, preset) -> None:
        text = f"trial {ref} ({preset or format_flops(flops) + ' FLOPs'}) training"
        if self.bar is not None:
            self.bar.set_postfix_str(printable(text), refresh=True)
        else:
            echo(f"{time.strftime('%H:%M:%S')} {text}", err=True)

    def epoch(self, ref, epoch, accuracy) -> None:
        text = f"trial {ref} epoch {epoch} acc {accuracy:.4f}"
        if self.bar is not None:
            self.bar.set_postfix_str(printable(text), refresh=True)
        else:
            echo(f"{time.strftime('%H:%M:%S')} {text}", err=True)

    def trial_end(self, o) -> None:
        tier = f"tier {o.tier}" if o.tier else "no tier"
        if o.state == "REJECTED":
            self.rejected += 1
            self.line(f"trial {o.ref:>8}  {tier:<10} rejected   {format_flops(o.flops):>7} FLOPs "
                      f"{format_count(o.params):>6} params  ({o.reason}; not trained)")
            return
        acc = accuracy_text(o.accuracy, self.val_samples)
        if o.accuracy is None:  # "-" as wide as a measured accuracy, so the columns after it stay aligned
            acc = acc.center(len(accuracy_text(0.5, self.val_samples)))
        if self.seeds > 1:  # the mean of the seeds, or (pruned, failed) padded to its width
            acc = (acc + (seeds_text(o.seed_accuracies) if o.state == "COMPLETE" else "")).ljust(
                len(accuracy_text(0.5, self.val_samples) + seeds_text([0.5] * self.seeds)))
        what = f"baseline {o.preset}" if o.baseline else o.summary
        extra = f"  [{o.reason}]" if o.reason else ""
        self.line(f"trial {o.ref:>8}  {tier:<10} {o.state.lower():<9}  {format_flops(o.flops):>7} FLOPs "
                  f"{format_count(o.params):>6} params  acc {acc}  {o.epochs} ep  {duration(o.wall_s):>6}  {what}{extra}")
        if self.bar is not None and not o.baseline:
            self.bar.update(1)

    def note(self, message) -> None:
        if self.bar is not None:
            self.bar.write(printable(f"note: {message}"), file=sys.stderr)
        else:
            echo(f"note: {message}", err=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def versus_noise(base, best) -> str:
    """`` (within the noise: ...)`` when the 95% Wilson intervals of two trials' accuracies overlap,
    `` (beyond the noise: ...)`` when they do not; empty when either did not record its validation size."""
    if not measured(base.accuracy, base.val_samples) or not measured(best.accuracy, best.val_samples):
        return ""
    (b_lo, b_hi), (w_lo, w_hi) = wilson(base.accuracy, base.val_samples), wilson(best.accuracy, best.val_samples)
    on = (f"{base.val_samples}" if base.val_samples == best.val_samples
          else f"{base.val_samples} and {best.val_samples}")
    arms = f"±{50 * (b_hi - b_lo):.1f} and ±{50 * (w_hi - w_lo):.1f}-point 95% intervals of {on} validation images"
    if w_lo <= b_hi and b_lo <= w_hi:
        return f" (within the noise: the {arms} overlap)"
    return f" (beyond the noise: the {arms} do not overlap)"


def closing_table(search, summary) -> None:
    from mvsearch.search.results import best_trials, versus_baselines

    best = best_trials(search)
    echo("")
    if not best:
        echo("no completed trial yet")
    else:
        echo("best trials (the 3 most accurate of each tier, and the baselines; sorted by FLOPs):")
        accs = [accuracy_text(r.accuracy, r.val_samples) + seeds_text(r.seed_accuracies) for r in best]
        width = max(8, *(len(a) for a in accs))
        echo(f"{'trial':>10}  {'tier':<8} {'accuracy':>{width}} {'FLOPs':>8} {'params':>8}  architecture")
        for r, acc in zip(best, accs):
            echo(f"{r.ref:>10}  {(r.tier or '-'):<8} {acc:>{width}} "
                 f"{format_flops(r.flops):>8} {format_count(r.params):>8}  {r.preset or r.summary()}")
    vs = versus_baselines(search)
    if vs:
        echo("against the paper presets, same proxy (best searched trial at no more FLOPs):")
    for v in vs:
        b = v.baseline
        if v.best is None:
            echo(f"  {b.preset} ({format_flops(b.flops)} FLOPs, acc {accuracy_text(b.accuracy, b.val_samples)}): "
                 f"no searched trial completed at or below its FLOPs yet")
            continue
        w = v.best
        echo(f"  {b.preset} ({format_flops(b.flops)} FLOPs, {format_count(b.params)} params) acc "
             f"{accuracy_text(b.accuracy, b.val_samples)}  vs trial {w.ref} ({format_flops(w.flops)} FLOPs, "
             f"{format_count(w.params)} params) acc {accuracy_text(w.accuracy, w.val_samples)}: {v.gain:+.1f} points"
             f"{versus_noise(b, w)}")
    s = summary
    trained = s.count("COMPLETE") + s.count("PRUNED") + s.count("FAIL")
    baselines = sum(1 for o in s.outcomes if o.baseline)
    also = f" incl. {baselines} baseline{'s' if baselines != 1 else ''}" if baselines else ""
    echo(f"this run: {trained} trained{also} ({s.count('COMPLETE')} complete, {s.count('PRUNED')} pruned, "
               f"{s.count('FAIL')} failed), {s.rejected} rejected by the budget gate, "
               f"{s.screened} start-up draws screened out; {duration(s.wall_s)}")
    echo(f"list them: mvsearch trials --study {s.study_name}"
               + (f" --storage {s.storage}" if not s.storage.endswith(f"studies/{s.study_name}.db") else ""))


class TrainingPrinter:
    """Progress of a planned-training study (``scale``, ``fidelity``) on stderr: stdout keeps the
    tables, or the one JSON object. ``describe(planned)`` names what a line trained."""

    def __init__(self, describe, *, wall_digits: int = 0) -> None:
        self.describe, self.wall_digits = describe, wall_digits
        self.n = 0
        self.todo = 0

    def start(self, todo: int, done: int, running: int) -> None:
        self.todo, self.n = todo, done
        more = f", {running} running in other workers" if running else ""
        echo(f"training: {todo - done} of {todo} trainings to go ({done} already in the study{more})", err=True)

    def trial_start(self, ref, planned, seed) -> None:
        pass

    def epoch(self, ref, epoch, accuracy) -> None:
        pass

    def trial_end(self, ref, planned, seed, state, accuracy, wall_s) -> None:
        self.n += state == "COMPLETE"
        acc = f"accuracy {accuracy:.4f}" if accuracy is not None else state
        echo(f"[{self.n}/{self.todo}] {ref} {self.describe(planned)} seed {seed}: {acc} "
             f"({wall_s:.{self.wall_digits}f} s)", err=True)

    def note(self, message: str) -> None:
        echo(f"note: {message}", err=True)
