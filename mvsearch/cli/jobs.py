"""``--jobs N``: N worker processes on this machine sharing one study (run, scale, fidelity, validate).

Several processes running the same command against the same storage already share its work
(each trains what no live worker is training; a dead worker's trial is failed and retried; see
:mod:`mvsearch.search.trainings` and :mod:`mvsearch.search.driver`). ``--jobs N`` starts them for
the user: the command becomes a *parent* that

1. checks every option and creates the study (so N processes never race to create a fresh SQLite
   file; :func:`mvsearch.search.storage.create_whole` guards that too);
2. starts N children running the same command line, ``python -m mvsearch CMD ... --jobs 1
   --threads T --worker-of PARENT`` with T = usable cores // N unless ``--threads`` was given
   (``run`` splits ``--trials K``: K // N each, the first K % N one more);
3. relays their lines as they come, each prefixed by its worker (``[w1] ...``; on stderr with
   ``--json``, so stdout keeps the one JSON object), under one progress bar of the trials trained
   (``run`` on a terminal);
4. prints one summary: ``run``'s closing table over what the workers trained, or the planned
   command's report (everything is trained by then, so the report path trains nothing).

Ctrl-C or SIGTERM to the parent is forwarded once as SIGTERM to every child; each marks its
running trial interrupted (FAIL) and exits 130; the parent then exits 130. Children run in their
own session (a terminal's Ctrl-C reaches only the parent, so no child gets two signals) and get
SIGTERM when the parent dies (``PR_SET_DEATHSIG``). A child that dies is reported in one line; its
trial is failed and queued again at once, and the others go on; the parent exits 1 when work the
command planned was left undone (a rerun of the same command completes it).

``--jobs auto``: N = min(usable cores, available memory // one training's memory), at least 1,
with one training's memory estimated by :func:`mvsearch.proxy.memory.training_memory` for the
largest network the command may train.
"""
from __future__ import annotations

import os
import random
import selectors
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import click
from click.core import ParameterSource

from mvsearch.cli.options import echo
from mvsearch.cli.progress import Printer
from mvsearch.core.text import printable, shorten
from mvsearch.search.trainings import TrainingSummary

AUTO = "auto"
#: the most workers one command starts
MAX_JOBS = 256
#: seconds between the parent's looks at its children (and at a signal)
POLL_S = 0.2
#: seconds between a worker's looks at trainings other workers still run (planned commands)
DRAIN_S = 1.0
#: seconds between the parent's counts of trained trials for its progress bar (``run`` on a terminal)
BAR_S = 2.0
#: random architectures drawn to find the largest one a run may train (``--jobs auto``)
AUTO_DRAWS = 2000
_META = "mvsearch.jobs"  # ctx.meta key: the workers this invocation started
_PR_SET_DEATHSIG = 1


# ---------------------------------------------------------------------- the options
class JobsType(click.ParamType):
    """A number of worker processes (1..MAX_JOBS) or ``auto``."""

    name = "N|auto"

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            n = value
        else:
            text = str(value).strip().lower()
            if text == AUTO:
                return AUTO
            if not text.isdigit() or len(text) > 6:
                self.fail(f"must be a number of worker processes (1..{MAX_JOBS}) or 'auto', got {shorten(value)}",
                          param, ctx)
            n = int(text)
        if not 1 <= n <= MAX_JOBS:
            self.fail(f"must be a number of worker processes in 1..{MAX_JOBS} or 'auto', got {n}", param, ctx)
        return n


def _become_worker(ctx: click.Context, param: Any, parent: int | None) -> int | None:
    """``--worker-of PID``: this process is a worker of PID; it gets SIGTERM when PID dies."""
    if parent is None:
        return None
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_DEATHSIG, int(signal.SIGTERM))
    except (OSError, AttributeError):  # not Linux: the parent's closed pipes end the worker instead
        pass
    if os.getppid() != parent:  # the parent went before the line above took effect
        raise KeyboardInterrupt
    return parent


def jobs_options(f):
    """``--jobs N|auto`` and the hidden ``--worker-of PID`` the parent gives its children."""
    f = click.option("--worker-of", "worker_of", type=int, hidden=True, expose_value=True,
                     callback=_become_worker, help="Internal: this process is a worker of --jobs (the parent's pid).")(f)
    f = click.option("--jobs", type=JobsType(), default="1", show_default=True, metavar="N|auto",
                     help="Worker processes on this machine sharing the study: N, or auto (from the free cores and "
                          "the memory one training needs). Each gets cores/N threads unless --threads says.")(f)
    return f


def is_worker(ctx: click.Context) -> bool:
    """True in a child started by ``--jobs``: it leaves headers and summaries to its parent."""
    return ctx.params.get("worker_of") is not None


# ---------------------------------------------------------------------- how many, how many threads
def _gb(n: float) -> str:
    return f"{n / 1e9:.1f} GB"


def _usable_cpus() -> int:
    from mvsearch.core.runtime import usable_cpus  # (loads torch: only once a command runs)

    return usable_cpus()


def _threads(n: int, given: int | None) -> int:
    return given if given is not None else max(1, _usable_cpus() // n)


def resolve_jobs(jobs: Any, given_threads: int | None, memory: Any, what: str) -> int:
    """N for ``--jobs`` (``auto`` resolved and said in one line on stderr); ``memory()`` -> one training's bytes."""
    if jobs != AUTO:
        return int(jobs)
    from mvsearch.core.memory import available_memory

    cores = _usable_cpus()
    per = max(1, int(memory()))
    avail = available_memory()
    n = max(1, min(cores, avail // per)) if avail is not None else cores
    t = _threads(n, given_threads)
    mem = f"{_gb(avail)} available" if avail is not None else "available memory unknown"
    echo(f"--jobs auto: {n} worker{'s' if n != 1 else ''} x {t} thread{'s' if t != 1 else ''} ({cores} core"
         f"{'s' if cores != 1 else ''}; ~{_gb(per)} per training of {what}, {mem})", err=True)
    return n


def largest_run_training(space: Any, budget: Any, opts: Any) -> int:
    """Bytes of one training of the largest network a ``run`` may train: the baselines it trains and
    the largest of :data:`AUTO_DRAWS` random architectures within the budget."""
    from mvsearch.arch.presets import PRESETS, get_preset
    from mvsearch.cost.analytic import analytic_cost
    from mvsearch.proxy.memory import training_memory

    proxy = space.proxy_settings(data=opts.data)
    archs = []
    for name in PRESETS:
        cfg = get_preset(name, space.num_classes)
        c = analytic_cost(cfg, space.resolution)
        if opts.with_baselines or (opts.budget_baselines and budget.check(c.flops, c.params).ok):
            archs.append(cfg)
    rng = random.Random(f"mvsearch-jobs/{opts.seed}")
    for _ in range(AUTO_DRAWS):
        cfg = space.from_params(space.random_params(rng))
        c = analytic_cost(cfg, space.resolution)
        if budget.check(c.flops, c.params).ok:
            archs.append(cfg)
    return max((training_memory(a, proxy) for a in archs), default=training_memory(
        space.from_params(space.random_params(rng)), proxy))


def split_trials(k: int, n: int) -> list[int]:
    """``--trials K`` over N workers: K // N each, the first K % N one more; workers with 0 left out."""
    return [q for q in (k // n + (i < k % n) for i in range(n)) if q > 0]


# ---------------------------------------------------------------------- the children
@dataclass
class Worker:
    index: int  # 1-based: the [wI] prefix
    proc: subprocess.Popen
    code: int | None = None  # exit status once reaped (negative: killed by that signal)
    reported: bool = False

    @property
    def name(self) -> str:
        """The worker as trials record it (``host:pid``, mvsearch.search.workers.WORKER)."""
        return f"{socket.gethostname()}:{self.proc.pid}"


@dataclass
class Parent:
    """What the parent of one invocation started, and how it went."""

    workers: list[Worker]
    t0: float
    interrupted: bool = False
    died: list[Worker] = field(default_factory=list)

    @property
    def names(self) -> set[str]:
        return {w.name for w in self.workers}


def _arg_of(p: click.Option, value: Any) -> list[str]:
    flag = next((o for o in p.opts if o.startswith("--")), p.opts[0])
    if p.is_flag:
        if p.secondary_opts and not value:
            return [next((o for o in p.secondary_opts if o.startswith("--")), p.secondary_opts[0])]
        return [flag] if value else []
    if p.multiple:
        return [x for v in value for x in (flag, str(v))]
    return [flag, str(value)]


def child_argv(ctx: click.Context, **override: Any) -> list[str]:
    """The command line of ``ctx``'s command as the user gave it, with ``override`` (option name -> value)."""
    args: list[str] = []
    for p in ctx.command.params:
        if not isinstance(p, click.Option) or p.name in ("jobs", "worker_of") or p.name in override:
            continue
        if ctx.get_parameter_source(p.name) in (None, ParameterSource.DEFAULT):
            continue
        value = ctx.params.get(p.name)
        if value is None:
            continue
        args += _arg_of(p, value)
    for name, value in override.items():
        p = next(q for q in ctx.command.params if q.name == name)
        args += _arg_of(p, value)
    return [sys.executable, "-m", "mvsearch", ctx.info_name, *args, "--jobs", "1", "--worker-of", str(os.getpid())]


def _start(argvs: Sequence[list[str]]) -> list[Worker]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    out = []
    for i, argv in enumerate(argvs, 1):
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=env, start_new_session=True)
        out.append(Worker(i, proc))
    return out


class _Relay:
    """Copies the children's lines to this process's streams as they come, prefixed by worker."""

    def __init__(self, workers: Sequence[Worker], stdout_to_stderr: bool, bar: Any = None) -> None:
        self.bar = bar  # a progress bar on the terminal: lines are written above it
        self.sel = selectors.DefaultSelector()
        self.buf: dict[int, bytes] = {}
        for w in workers:
            for stream, err in ((w.proc.stdout, stdout_to_stderr), (w.proc.stderr, True)):
                self.sel.register(stream, selectors.EVENT_READ, (w, err))
                self.buf[stream.fileno()] = b""

    @property
    def open(self) -> bool:
        return bool(self.sel.get_map())

    def _emit(self, w: Worker, err: bool, raw: bytes) -> None:
        text = raw.decode("utf-8", errors="replace").rstrip("\r")
        try:
            if self.bar is not None:
                self.bar.write(printable(f"[w{w.index}] {text}"), file=sys.stderr if err else sys.stdout)
                return
            echo(f"[w{w.index}] {text}", err=err)
            (sys.stderr if err else sys.stdout).flush()
        except (OSError, ValueError):  # our own reader went away: the children go on
            pass

    def pump(self, timeout: float) -> None:
        for key, _ in self.sel.select(timeout):
            w, err = key.data
            fd = key.fileobj.fileno()
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            if not chunk:  # the child closed it (exited)
                if self.buf[fd]:
                    self._emit(w, err, self.buf[fd])
                self.sel.unregister(key.fileobj)
                key.fileobj.close()
                continue
            lines = (self.buf[fd] + chunk).split(b"\n")
            self.buf[fd] = lines.pop()
            for line in lines:
                self._emit(w, err, line)


def _death_line(w: Worker, what: str) -> str:
    if w.code is not None and w.code < 0:
        try:
            sig = signal.Signals(-w.code).name
        except ValueError:
            sig = str(-w.code)
        how = f"died (signal {-w.code}, {sig})"
    elif w.code == 130:
        how = "was interrupted (exit 130)"
    else:
        how = f"failed (exit {w.code})"
    return f"worker {w.index} {how}; {what}"


def supervise(ctx: click.Context, argvs: Sequence[list[str]], on_death: Any, what: str, *,
              progress: Any = None, total: int = 0) -> Parent:
    """Start one child per command line, relay their lines and wait for them all.

    ``on_death(parent)`` runs as soon as a child is found dead (to fail and requeue its trial).
    ``progress(parent)``: how many of ``total`` are done, for one progress bar on a terminal.
    """
    stop: list[int] = []

    def handler(signum: int, frame: Any) -> None:
        stop.append(signum)

    old = {}
    try:
        for s in (signal.SIGINT, signal.SIGTERM):
            old[s] = signal.signal(s, handler)
    except ValueError:  # not the main thread (an in-process test runner): no forwarding
        pass
    as_json = bool(ctx.params.get("as_json"))
    bar = None
    if progress is not None and sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=total, unit="trial", file=sys.stderr, dynamic_ncols=True, leave=False)
    parent = Parent(_start(argvs), time.perf_counter())
    relay = _Relay(parent.workers, stdout_to_stderr=as_json, bar=bar)
    forwarded, counted = 0, time.perf_counter()
    try:
        while relay.open or any(w.code is None for w in parent.workers):
            if len(stop) > forwarded:
                forwarded = len(stop)
                parent.interrupted = True
                for w in parent.workers:
                    if w.code is None:
                        try:
                            w.proc.send_signal(signal.SIGTERM)
                        except ProcessLookupError:
                            pass
            relay.pump(POLL_S)
            if bar is not None and time.perf_counter() - counted > BAR_S:
                counted = time.perf_counter()
                bar.update(max(0, progress(parent) - bar.n))
            dead = False
            for w in parent.workers:
                if w.code is None and w.proc.poll() is not None:
                    w.code = w.proc.returncode
                    if w.code != 0 and not (parent.interrupted and w.code == 130):
                        parent.died.append(w)
                        dead = True
            if dead:
                on_death(parent)  # the dead child is reaped: its pid no longer looks alive
                for w in parent.died:
                    if not w.reported:
                        w.reported = True
                        if bar is not None:
                            bar.write(printable(_death_line(w, what)), file=sys.stderr)
                        else:
                            echo(_death_line(w, what), err=True)
    finally:
        if bar is not None:
            bar.close()
        for s, h in old.items():
            signal.signal(s, h)
        for w in parent.workers:  # never leave a child behind (an error in the loop above)
            if w.proc.poll() is None:
                w.proc.terminate()
                w.proc.wait()
    return parent


# ---------------------------------------------------------------------- mvsearch run
class WorkerPrinter(Printer):
    """A ``run`` child's printer: trial lines and progress only (the parent printed the header)."""

    def __init__(self, trials: int) -> None:
        super().__init__(trials, tty=False)

    def start(self, info: Any) -> None:
        p = info.proxy
        self.val_samples = p.get("val_samples") if isinstance(p.get("val_samples"), int) else None
        self.seeds = info.seeds


class _Notes:
    """The parent's reporter while it opens the study: notes go to stderr."""

    def note(self, message: str) -> None:
        echo(f"note: {message}", err=True)

    def __getattr__(self, name: str) -> Any:
        return lambda *a, **k: None


def run_parent(ctx: click.Context, space: Any, budget: Any, opts: Any, jobs: Any, *, timeout: str | None) -> bool:
    """``mvsearch run --jobs N`` as the parent; False when it comes to one worker (run in-process)."""
    from mvsearch.search.driver import Search

    n = resolve_jobs(jobs, opts.threads, lambda: largest_run_training(space, budget, opts),
                     "the largest candidate")
    quotas = split_trials(opts.trials, n)
    if len(quotas) <= 1:
        return False
    threads = _threads(len(quotas), opts.threads)
    s = Search(space, budget, opts, _Notes())
    s.prepare()  # bad input: one line, exit 2, nothing written
    s.open()  # the storage and every tier's study exist, the baselines are queued once
    info = _run_info(s)
    s.data = s.split = None  # the parent trains nothing
    Printer(opts.trials, tty=False).start(info)
    echo(f"--jobs {len(quotas)}: {len(quotas)} workers x {threads} thread{'s' if threads != 1 else ''}, training "
         f"{' + '.join(map(str, quotas))} candidates", err=True)
    argvs = [child_argv(ctx, trials=q, threads=threads) for q in quotas]

    def on_death(parent: Parent) -> None:
        _fail_dead(s.studies.values())

    def progress(parent: Parent) -> int:  # candidates the workers trained so far
        from optuna.trial import TrialState

        from mvsearch.search.record import TrialRecord

        names, n = parent.names, 0
        for study in s.studies.values():
            for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
                r = TrialRecord.from_user_attrs(t.user_attrs)
                n += r.worker in names and not r.baseline and not r.over_budget
        return n

    parent = supervise(ctx, argvs, on_death, "its trial will be retried", progress=progress, total=opts.trials)
    _fail_dead(s.studies.values())
    from mvsearch.cli.progress import closing_table
    from mvsearch.search.storage import open_search

    search = open_search(s.name, s.url)
    summary, trained, waiting = _run_summary(search, parent, opts.trials, opts.timeout_s is not None)
    closing_table(search, summary)
    if parent.interrupted:
        echo("interrupted: every worker stopped, their running trials marked failed; rerun the same command to "
             "resume", err=True)
        ctx.exit(130)
    if parent.died:
        echo(f"{len(parent.died)} of {len(parent.workers)} workers died; {trained} of {opts.trials} candidates "
             f"trained" + (f", {waiting} trial(s) queued to retry" if waiting else "")
             + ("; rerun the same command to go on" if trained < opts.trials or waiting else ""), err=True)
        if trained < opts.trials or waiting:
            ctx.exit(1)
    elif summary.timed_out:
        echo(f"stopped: --timeout {timeout} reached; rerun the same command to add trials")
    return True


def _run_info(s: Any) -> Any:
    from mvsearch.proxy.settings import interval_note
    from mvsearch.search.events import RunInfo

    note = interval_note(s.proxy, len(s.data.train_y))
    notes = s.space.proxy_warnings(s.proxy) + ([note] if note else [])
    return RunInfo(s.name, s.url, s.space.name, s.budget, s.opts.trials, s.existing, s.data.summary(),
                   s.proxy.to_dict(), s.baselines, notes, s.opts.seeds)


def _fail_dead(studies: Any) -> None:
    from mvsearch.search.storage import experimental_ok
    from mvsearch.search.workers import fail_dead_workers

    with experimental_ok():
        for study in studies:
            fail_dead_workers(study)


def _run_summary(search: Any, parent: Parent, trials: int, timeout: bool) -> tuple[Any, int, int]:
    """The workers' run as one RunSummary (read from the study), the candidates they trained, and the
    trials left queued (a dead worker's retry, a baseline no worker took)."""
    from mvsearch.search.events import RunSummary, TrialOutcome

    names = parent.names
    summary = RunSummary(search.name, search.url)
    trained = waiting = 0
    for r in search.records(include_rejected=True):
        if r.state == "WAITING":
            waiting += 1
            continue
        if r.worker not in names or r.state == "RUNNING":
            continue
        summary.screened += r.screened_out or 0
        if r.over_budget:
            summary.rejected += 1
            continue
        summary.outcomes.append(TrialOutcome(r.ref, r.state, r.tier, r.baseline, r.preset, r.accuracy,
                                             len(r.accuracy_curve), r.flops or 0, r.params or 0, r.wall_s or 0.0,
                                             r.summary(), r.error or ("interrupted" if r.interrupted else "")))
        # as the search counts them: trained, pruned, or failed by the training itself (not a dead worker)
        if not r.baseline and (r.state in ("COMPLETE", "PRUNED") or (r.state == "FAIL" and r.error)):
            trained += 1
    summary.interrupted = parent.interrupted
    summary.timed_out = timeout and not parent.interrupted and not parent.died and trained < trials
    summary.wall_s = time.perf_counter() - parent.t0
    return summary, trained, waiting


# ---------------------------------------------------------------------- planned trainings (scale, fidelity, validate)
class _NoStart:
    """A training study's events with the "N of M trainings to go" line left out (a worker's later looks)."""

    def __init__(self, events: Any) -> None:
        self.events = events

    def start(self, todo: int, done: int, running: int) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self.events, name)


def _drain(study: Any, summary: Any) -> Any:
    """A worker trains until no job of the plan is left, even one another worker is still training: a
    job a worker dies in is retried here, and every worker goes on (scale's compound grid chooses from
    all of it) only when the study is whole."""
    t0 = time.perf_counter()
    limit = study.opts.timeout_s
    events = study.events
    while summary.running_elsewhere and not summary.interrupted and not summary.timed_out:
        if limit is not None and time.perf_counter() - t0 + summary.wall_s > limit:
            summary.timed_out = True
            break
        time.sleep(DRAIN_S)
        study.events = _NoStart(events)
        try:
            more = study.run()
        finally:
            study.events = events
        summary.trained += more.trained
        summary.failed += more.failed
        summary.outcomes += more.outcomes
        summary.interrupted, summary.timed_out = more.interrupted, more.timed_out
        summary.running_elsewhere = more.running_elsewhere
    summary.wall_s += time.perf_counter() - t0
    return summary


def _planned_memory(plan: Sequence[Any]) -> int:
    from mvsearch.proxy.memory import training_memory

    return max(training_memory(p.arch, p.proxy) for p in plan)


@dataclass
class PlannedSummary(TrainingSummary):
    """The workers' trainings of one study, read from it: a TrainingSummary, and what was left."""

    undone: int = 0  # jobs of the plan without a COMPLETE training
    died: int = 0  # workers that died


def _planned_summary(study: Any, parent: Parent) -> PlannedSummary:
    from optuna.trial import TrialState

    from mvsearch.search.record import TrialRecord

    names = parent.names
    out = PlannedSummary(interrupted=parent.interrupted, died=len(parent.died))
    done, running = set(), set()
    for t in study.study.get_trials(deepcopy=False):
        r = TrialRecord.from_user_attrs(t.user_attrs)
        if t.state == TrialState.COMPLETE:
            done.add((r.point, r.seed))
        elif t.state == TrialState.RUNNING:
            running.add((r.point, r.seed))
        if r.worker in names and t.state in (TrialState.COMPLETE, TrialState.FAIL):
            ok = t.state == TrialState.COMPLETE
            out.trained += ok
            out.failed += not ok
            out.outcomes.append((f"{study.label}/{t.number}", t.state.name, t.value if ok else None))
    jobs = study.jobs()
    out.undone = sum(j not in done for j in jobs)
    out.running_elsewhere = sum(j in running and j not in done for j in jobs)
    out.timed_out = study.opts.timeout_s is not None and out.undone > 0 and not parent.died
    out.wall_s = time.perf_counter() - parent.t0
    return out


def train(ctx: click.Context, study: Any, *, plan: Sequence[Any] | None = None) -> Any:
    """Train ``study`` (a :class:`~mvsearch.search.trainings.TrainingStudy`, opened) as ``--jobs`` says.

    ``--jobs 1``: in this process. A worker: in this process, and until no job is left (see
    :func:`_drain`). The parent: starts the workers (once per command: they run the whole command,
    every study of it) and returns what they trained, read from ``study``. ``plan``: every network
    the command may train, when ``study`` holds only part of it (``--jobs auto`` sizes by the largest).
    """
    if is_worker(ctx):
        return _drain(study, study.run())
    parent = ctx.meta.get(_META)
    if parent is not None:  # the workers ran the whole command already, this study included
        return _planned_summary(study, parent)
    threads = ctx.params.get("threads")
    n = resolve_jobs(ctx.params.get("jobs", 1), threads, lambda: _planned_memory(plan or study.planned),
                     "the largest planned network")
    if n <= 1:
        return study.run()
    t = _threads(n, threads)
    if ctx.params.get("jobs") != AUTO:  # (auto said it already)
        echo(f"--jobs {n}: {n} workers x {t} thread{'s' if t != 1 else ''}", err=True)
    argvs = [child_argv(ctx, threads=t) for _ in range(n)]
    parent = supervise(ctx, argvs, lambda p: _fail_dead([study.study]), "its training will be retried")
    ctx.meta[_META] = parent
    _fail_dead([study.study])
    # interrupted: the command still prints its report of what was trained, then :func:`finish` exits 130
    return _planned_summary(study, parent)


def stop_if_worker(ctx: click.Context, summary: Any) -> None:
    """In a worker, the command ends here: the parent prints the report (exit 130 when interrupted)."""
    if is_worker(ctx):
        ctx.exit(130 if summary.interrupted else 0)


def finish(ctx: click.Context, summary: Any) -> None:
    """After the parent's report: exit 130 when interrupted, or 1, saying so, when a worker died and
    left planned work undone."""
    if isinstance(summary, PlannedSummary) and summary.interrupted:
        echo("interrupted: every worker stopped, their running trainings marked failed; rerun the same command "
             "to resume", err=True)
        ctx.exit(130)
    if isinstance(summary, PlannedSummary) and summary.died:
        if summary.undone:
            echo(f"{summary.died} worker(s) died; {summary.undone} planned training(s) not done; rerun the same "
                 f"command to train them", err=True)
            ctx.exit(1)
        echo(f"{summary.died} worker(s) died; the others trained what they left", err=True)


__all__ = ["jobs_options", "is_worker", "resolve_jobs", "split_trials", "child_argv", "supervise", "run_parent",
           "train", "stop_if_worker", "finish", "WorkerPrinter", "largest_run_training"]
