"""What a search is asked to do and what it tells its caller: run options, events, the summary.

The library never prints: a :class:`Reporter` receives what the search does (the CLI prints it).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mvsearch.arch.config import ArchConfig
from mvsearch.budget import Budget
from mvsearch.core.errors import StudyError
from mvsearch.core.limits import MAX_SEED, MAX_THREADS, MAX_TRIALS, check_int
from mvsearch.core.text import shorten
from mvsearch.search.storage import check_name
from mvsearch.search.trainings import MAX_SEEDS
from mvsearch.search.tiers import PRUNERS, SAMPLERS
from mvsearch.space.schema import SearchSpec

_SPACE = SearchSpec()  # a space's search defaults: the one source of run's defaults

DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class RunOptions:
    """What ``mvsearch run`` was asked to do (space and budget aside)."""

    trials: int = _SPACE.trials  # trained candidates to add (rejections and baselines do not count)
    study_name: str | None = None  # default: the space's name
    storage: str | None = None  # default: sqlite:///studies/<study>.db
    data: str | None = None  # overrides the space's proxy.data
    seed: int = _SPACE.seed  # sampler and training seed
    seeds: int = 1  # trainings per candidate, seeds seed..seed+seeds-1; its value is their mean accuracy
    sampler: str = _SPACE.sampler
    pruner: str = _SPACE.pruner
    device: str = "auto"
    timeout_s: float | None = None  # stop starting trials after this long
    with_baselines: bool = False  # train all three paper presets as baselines (first)
    budget_baselines: bool = _SPACE.baselines  # train the presets that fit the budget as baselines
    save_weights: bool = _SPACE.save_weights
    threads: int | None = None


def check_options(opts: RunOptions) -> None:
    """StudyError (one line, naming the option) for a run option no search can use."""
    if opts.sampler not in SAMPLERS:
        raise StudyError(f"--sampler: unknown {shorten(opts.sampler)}; known: {', '.join(SAMPLERS)}")
    if opts.pruner not in PRUNERS:
        raise StudyError(f"--pruner: unknown {shorten(opts.pruner)}; known: {', '.join(PRUNERS)}")
    if opts.device not in DEVICES and not str(opts.device).startswith("cuda:"):
        raise StudyError(f"--device: unknown {shorten(opts.device)}; known: {', '.join(DEVICES)} (or cuda:N)")
    if isinstance(opts.trials, bool) or not isinstance(opts.trials, int) or opts.trials < 1:
        raise StudyError(f"--trials: must be a positive integer, got {shorten(opts.trials)}")
    check_int(opts.trials, "--trials", 1, MAX_TRIALS, StudyError)
    if isinstance(opts.seed, bool) or not isinstance(opts.seed, int) or not 0 <= opts.seed <= MAX_SEED:
        raise StudyError(f"--seed: must be an integer in 0..{MAX_SEED}, got {shorten(opts.seed)}")
    check_int(opts.seeds, "--seeds", 1, MAX_SEEDS, StudyError, what="a number of seeds")
    if opts.seed + opts.seeds - 1 > MAX_SEED:
        raise StudyError(f"--seeds: seeds {opts.seed}..{opts.seed + opts.seeds - 1} go past the largest seed "
                         f"{MAX_SEED}; lower --seed or --seeds")
    if opts.threads is not None:
        check_int(opts.threads, "--threads", 1, MAX_THREADS, StudyError)
    if opts.study_name is not None:
        check_name(opts.study_name)
    if opts.timeout_s is not None and not opts.timeout_s > 0:
        raise StudyError(f"--timeout: must be positive, got {opts.timeout_s}s")


@dataclass
class RunInfo:
    study_name: str
    storage: str
    space: str
    budget: Budget
    trials: int
    existing: int  # trials the study held before this run (rejections included)
    data: str  # summary of the loaded dataset
    proxy: dict[str, Any]
    baselines: list[str]  # presets enqueued by this run
    notes: list[str]  # warnings worth showing (collapsed stages, ...)
    seeds: int = 1  # trainings per candidate (RunOptions.seeds)


@dataclass
class TrialOutcome:
    ref: str  # the trial as a user names it ("1.5G/3")
    state: str  # COMPLETE, PRUNED, FAIL, REJECTED
    tier: str | None
    baseline: bool
    preset: str | None
    accuracy: float | None
    epochs: int  # epochs trained
    flops: int
    params: int
    wall_s: float
    summary: str  # architecture one-liner
    reason: str = ""  # rejection reason or error message
    seed_accuracies: list[float] = field(default_factory=list)  # each finished seed's final accuracy


class Reporter:
    """Receives what the search does; the CLI prints it, the library never does."""

    def start(self, info: RunInfo) -> None: ...
    def trial_start(self, ref: str, tier: str | None, cfg: ArchConfig, flops: int, preset: str | None) -> None: ...
    def epoch(self, ref: str, epoch: int, accuracy: float) -> None: ...
    def trial_end(self, outcome: TrialOutcome) -> None: ...
    def note(self, message: str) -> None: ...


@dataclass
class RunSummary:
    study_name: str
    storage: str
    outcomes: list[TrialOutcome] = field(default_factory=list)  # trained trials and baselines
    rejected: int = 0  # budget rejections recorded as trials by this run
    screened: int = 0  # start-up draws screened out before sampling (never stored)
    interrupted: bool = False
    timed_out: bool = False
    wall_s: float = 0.0

    def count(self, state: str) -> int:
        return sum(1 for o in self.outcomes if o.state == state)




__all__ = ["RunOptions", "RunInfo", "TrialOutcome", "Reporter", "RunSummary", "check_options", "DEVICES", "MAX_SEED",
           "MAX_SEEDS"]
