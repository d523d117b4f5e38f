"""mvsearch.search: options, storage, dead workers, resume checks and real multi-tier searches.

A search named NAME is one Optuna study per FLOP tier (``NAME@<tier>``) in one storage. The
searches run here are real (Optuna RDB storage in tmp_path, real proxy trainings) on a copy of
spaces/tiny.yaml whose proxy learns the synthetic task in 4 short epochs, so accuracies differ
between candidates and each tier's pruner has something to decide.
"""
from __future__ import annotations

import json
import os
import signal
import socket
from datetime import timedelta
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from mvsearch.budget import parse_budget
from mvsearch.core.errors import StudyError
from mvsearch.cost.analytic import analytic_cost
from mvsearch.search import driver
from mvsearch.search import workers
from mvsearch.search.driver import Search, best_trials, fail_dead_workers, run_search
from mvsearch.search.events import Reporter, RunOptions, check_options
from mvsearch.search.interrupt import Interrupt
from mvsearch.search.record import SCHEMA_VERSION, StudyRecord, TrialRecord
from mvsearch.search.storage import (GRACE_S, HEARTBEAT_S, RetryCallback, check_name, experimental_ok, open_search,
                                     open_storage, study_name, weights_dir)
from mvsearch.search.tiers import n_startup
from mvsearch.space.loader import load_space, parse_space

REPO = Path(__file__).resolve().parents[1]
#: 4 classes, enough images that 4 epochs separate good candidates from weak ones (see the module docstring)
DATA = "synthetic:classes=4,samples=512"
#: proxy of the search tests: 32x32, stem stride 1, 4 epochs of 256 images, batch 16 (~2 s a trial)
PROXY = {"data": DATA, "resolution": 32, "stem_stride": 1, "epochs": 4, "batch_size": 16,
         "train_samples": 256, "val_samples": 128, "lr": 0.005, "warmup_epochs": 0.2}
#: a proxy for tests that only need trials to exist: one epoch of 32 images (a fraction of a second)
CHEAP = {"data": "synthetic:classes=4,samples=64", "epochs": 1, "train_samples": 32, "val_samples": 16}

optuna.logging.set_verbosity(optuna.logging.WARNING)


def space_text(name: str = "e2e", *, arch: dict[str, Any] | None = None, search: dict[str, Any] | None = None,
               **proxy: Any) -> str:
    """spaces/tiny.yaml renamed, with the test proxy (``proxy`` overrides single settings)."""
    spec = yaml.safe_load((REPO / "spaces" / "tiny.yaml").read_text())
    spec["name"] = name
    spec["proxy"] = {**PROXY, **proxy}
    if arch:
        spec["arch"].update(arch)
    if search:
        spec["search"].update(search)
    return yaml.safe_dump(spec, sort_keys=False)


def write_space(folder: Path, name: str = "e2e", *, arch: dict[str, Any] | None = None,
                search: dict[str, Any] | None = None, **proxy: Any) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(space_text(name, arch=arch, search=search, **proxy))
    return path


class Events(Reporter):
    """Keeps what the search reports, in order."""

    def __init__(self) -> None:
        self.log: list[tuple] = []
        self.ends: list[Any] = []
        self.notes: list[str] = []

    def start(self, info):
        self.log.append(("start", info.study_name))

    def trial_start(self, ref, tier, cfg, flops, preset):
        self.log.append(("trial_start", ref))

    def epoch(self, ref, epoch, accuracy):
        self.log.append(("epoch", ref, epoch))

    def trial_end(self, outcome):
        self.log.append(("trial_end", outcome.ref))
        self.ends.append(outcome)

    def note(self, message):
        self.log.append(("note", message))
        self.notes.append(message)


def sqlite(tmp_path: Path, name: str = "s") -> str:
    return f"sqlite:///{tmp_path / f'{name}.db'}"


def opts(url: str, **kw: Any) -> RunOptions:
    """The run options of the tests: CPU, one thread, seed 0."""
    return RunOptions(**{"storage": url, "seed": 0, "device": "cpu", "threads": 1, **kw})


# ---------------------------------------------------------------------- options and storage
@pytest.mark.parametrize("change, words", [
    ({"sampler": "grid"}, ["--sampler", "'grid'", "tpe, random, nsga2"]),
    ({"pruner": "asha"}, ["--pruner", "'asha'", "hyperband, median, none"]),
    ({"device": "gpu"}, ["--device", "'gpu'", "auto, cpu, cuda"]),
    ({"trials": 0}, ["--trials", "positive", "got 0"]),
    ({"trials": True}, ["--trials", "positive"]),
    ({"seed": -1}, ["--seed", "0..4294967295", "got -1"]),
    ({"seed": 2**32}, ["--seed", "0..4294967295"]),
    ({"timeout_s": 0.0}, ["--timeout", "positive"]),
    ({"study_name": "a@3M"}, ["--study", "'a@3M'", "not a valid study name"]),
    ({"study_name": "../up"}, ["--study", "not a valid study name"]),
])
def test_check_options_names_the_option_and_the_known_values(change, words):
    with pytest.raises(StudyError) as e:
        check_options(RunOptions(**change))
    assert all(w in str(e.value) for w in words), str(e.value)
    assert "\n" not in str(e.value)


def test_a_tier_study_is_named_after_the_search_and_the_tier():
    assert study_name("mobile", "1.05G") == "mobile@1.05G"
    assert check_name("mobile-run2.b") == "mobile-run2.b"
    with pytest.raises(StudyError):  # the separator cannot be part of a search name
        check_name("mobile@1.05G")


def test_open_storage_refuses_a_folder_that_cannot_be_created(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StudyError, match=r"cannot create the folder .*file/sub.*writable folder"):
        open_storage(f"sqlite:///{blocker / 'sub' / 'x.db'}")
    assert blocker.read_text() == "not a folder"


def test_open_storage_explains_a_missing_postgresql_driver(monkeypatch):
    # SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3; with it absent the fix must be named
    monkeypatch.setitem(sys.modules, "psycopg", None)  # `import psycopg` now raises ImportError
    with pytest.raises(StudyError) as e:
        open_storage("postgresql://user@127.0.0.1:1/db")
    msg = str(e.value)
    assert "psycopg" in msg and "postgresql+psycopg2://" in msg and "\n" not in msg


def test_open_storage_creates_the_sqlite_folder_and_uses_wal(tmp_path):
    url = f"sqlite:///{tmp_path / 'deep' / 'er' / 'x.db'}"
    storage = open_storage(url)
    with storage.engine.connect() as conn:
        mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
    assert (tmp_path / "deep" / "er" / "x.db").exists() and mode.lower() == "wal"


def _retry_callback(storage: optuna.storages.RDBStorage) -> Any:
    get = getattr(storage, "get_heartbeat_stale_trial_callback", None)  # Optuna >= 4.9
    return get() if get is not None else storage.get_failed_trial_callback()


def test_open_storage_runs_optunas_heartbeat_with_one_retry(tmp_path):
    storage = open_storage(sqlite(tmp_path))
    assert storage.get_heartbeat_interval() == max(1, int(HEARTBEAT_S))
    assert storage.grace_period == max(2, int(GRACE_S))
    assert isinstance(_retry_callback(storage), RetryCallback) and _retry_callback(storage)._max_retry == 1
    reader = open_storage(sqlite(tmp_path), heartbeat=False)  # what the reading commands open
    assert reader.get_heartbeat_interval() is None and _retry_callback(reader) is None


def test_heartbeat_and_grace_period_come_from_the_environment(tmp_path):
    code = ("import sys; from mvsearch.search.storage import open_storage; s = open_storage(sys.argv[1]); "
            "print(s.get_heartbeat_interval(), s.grace_period)")
    env = {**os.environ, "MVSEARCH_HEARTBEAT_S": "3", "MVSEARCH_GRACE_S": "11"}
    out = subprocess.run([sys.executable, "-c", code, sqlite(tmp_path)], env=env, capture_output=True, text=True,
                         check=True, timeout=120).stdout
    assert out.split() == ["3", "11"]
    env.pop("MVSEARCH_GRACE_S")  # the grace period defaults to four heartbeats
    out = subprocess.run([sys.executable, "-c", code, sqlite(tmp_path)], env=env, capture_output=True, text=True,
                         check=True, timeout=120).stdout
    assert out.split() == ["3", "12"]


def test_weights_dir_lies_beside_the_sqlite_file(tmp_path):
    assert weights_dir(sqlite(tmp_path, "demo"), "demo") == tmp_path / "demo-weights"


# ---------------------------------------------------------------------- dead workers
def _dead_pid() -> int:
    """A pid that certainly belonged to a process that has exited."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    return dead.pid


def _running(study: optuna.Study, worker: str | None, x: int) -> int:
    """A RUNNING trial (ask) with one param, an architecture-like attribute and ``worker``."""
    t = study.ask()
    t.suggest_int("x", 0, 9)
    t.set_user_attr("flops", 1000 + x)
    if worker is not None:
        t.set_user_attr("worker", worker)
    return t.number


def _waiting(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(states=(TrialState.WAITING,))


def _retried(t: optuna.trial.FrozenTrial) -> int | None:
    """The number of the trial ``t`` retries (Optuna's retry callback), or None."""
    with experimental_ok():
        return RetryCallback.retried_trial_number(t)


def _fail_dead(study: optuna.Study, **kw: Any) -> list[int]:
    with experimental_ok():
        return fail_dead_workers(study, **kw)


@pytest.fixture
def worker_study(tmp_path):
    """A study with RUNNING trials of a dead local worker, live local ones, another host's and an unowned one."""
    study = optuna.create_study(study_name="w@3M", storage=sqlite(tmp_path), direction="maximize")
    host = socket.gethostname()
    workers = {"dead": f"{host}:{_dead_pid()}", "parent": f"{host}:{os.getppid()}", "me": f"{host}:{os.getpid()}",
               "remote": "elsewhere.example:1", "unowned": None}
    # the params differ: the retry is recognised by them below
    numbers = {what: _running(study, w, i) for i, (what, w) in enumerate(workers.items())}
    study.enqueue_trial({"x": 0})  # an unrelated queued trial is not touched either
    return study, numbers, workers


def test_fail_dead_workers_fails_a_dead_local_worker_and_queues_one_retry(worker_study):
    study, numbers, _ = worker_study
    before = {t.number: t for t in study.get_trials()}
    assert _fail_dead(study) == [numbers["dead"]]
    states = {t.number: t.state for t in study.get_trials()}
    assert states[numbers["dead"]] == TrialState.FAIL
    for what in ("parent", "me", "remote", "unowned"):  # alive, this process, another host, nobody's
        assert states[numbers[what]] == TrialState.RUNNING, what
    dead = before[numbers["dead"]]
    retries = [t for t in _waiting(study) if _retried(t) is not None]
    assert len(retries) == 1
    retry = retries[0]
    assert retry.number > max(before)  # a new trial, queued
    assert _retried(retry) == dead.number
    assert retry.system_attrs["failed_trial"] == dead.number
    assert retry.params == dead.params
    assert {k: v for k, v in retry.user_attrs.items() if k != "worker"} == \
        {k: v for k, v in dead.user_attrs.items() if k != "worker"}
    # a second pass finds nothing more, and queues nothing more
    assert _fail_dead(study) == []
    assert len(_waiting(study)) == 2  # the unrelated queued trial and the one retry


def test_fail_dead_workers_fails_unowned_trials_only_when_asked(worker_study, monkeypatch):
    # a single-user SQLite file: a RUNNING trial that never recorded a worker is nobody's (once it
    # is older than the moment a live worker takes to claim it)
    study, numbers, _ = worker_study
    first = _fail_dead(study, unowned=True)
    assert first == [numbers["dead"]]  # the unowned one just started: a live worker may be claiming it
    monkeypatch.setattr(workers, "UNCLAIMED_GRACE", timedelta(0))
    failed = first + _fail_dead(study, unowned=True)
    assert sorted(failed) == sorted([numbers["dead"], numbers["unowned"]])
    states = {t.number: t.state for t in study.get_trials()}
    assert states[numbers["remote"]] == states[numbers["parent"]] == TrialState.RUNNING
    retried = sorted(_retried(t) for t in _waiting(study) if _retried(t) is not None)
    assert retried == sorted(failed)


def test_a_retry_whose_worker_dies_too_is_not_retried_again(tmp_path):
    study = optuna.create_study(study_name="w@3M", storage=sqlite(tmp_path), direction="maximize")
    host = socket.gethostname()
    first = _running(study, f"{host}:{_dead_pid()}", 3)
    assert _fail_dead(study) == [first]
    retry = study.ask()  # a worker takes the queued retry ...
    assert retry.params == {"x": study.trials[first].params["x"]}
    retry.set_user_attr("worker", f"{host}:{_dead_pid()}")  # ... and dies as well
    assert _fail_dead(study) == [retry.number]
    assert study.trials[retry.number].state == TrialState.FAIL
    assert _waiting(study) == []  # max_retry=1: an architecture that killed two workers is not queued again


def test_a_retry_taken_by_a_live_worker_is_not_failed_again(tmp_path):
    study = optuna.create_study(study_name="w@3M", storage=sqlite(tmp_path), direction="maximize")
    first = _running(study, f"{socket.gethostname()}:{_dead_pid()}", 3)
    assert _fail_dead(study) == [first]
    study.ask()  # what study.optimize does first in the worker that trains the retry (RUNNING now)
    assert _fail_dead(study) == []  # a second worker starting on this host at that moment


def test_a_run_fails_a_dead_workers_trial_and_trains_its_retry(tmp_path):
    space = load_space(write_space(tmp_path, **CHEAP))
    url = sqlite(tmp_path)
    run_search(space, parse_budget("3M"), opts(url, trials=1, pruner="none"))
    study = optuna.load_study(study_name="e2e@3M", storage=url)
    done = study.trials[0]
    # a worker of this host took a candidate and was killed while training it
    study.enqueue_trial(done.params)
    victim = study.ask(fixed_distributions=done.distributions)
    victim.set_user_attr("worker", f"{socket.gethostname()}:{_dead_pid()}")
    assert victim.params == done.params
    events = Events()
    summary = run_search(space, parse_budget("3M"), opts(url, trials=1, pruner="none"), events)
    assert any(f"trial(s) {victim.number} were left running by a worker that died" in n for n in events.notes)
    trials = optuna.load_study(study_name="e2e@3M", storage=url).get_trials()
    assert trials[victim.number].state == TrialState.FAIL
    retries = [t for t in trials if _retried(t) == victim.number]
    assert len(retries) == 1
    retry = retries[0]
    rec = TrialRecord.from_trial(retry)
    assert retry.state == TrialState.COMPLETE and retry.params == done.params  # the same candidate, trained
    assert rec.retry_of == victim.number and rec.worker == f"{socket.gethostname()}:{os.getpid()}"
    assert [o.ref for o in summary.outcomes] == [f"3M/{retry.number}"]  # the retry is this run's trial
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]


# ---------------------------------------------------------------------- Ctrl-C and SIGTERM
def test_a_signal_stops_training_at_once_and_otherwise_before_the_next_trial():
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    intr = Interrupt()
    with intr:
        signal.raise_signal(signal.SIGINT)  # between trials: the run stops before the next one
        assert intr.requested
        with pytest.raises(KeyboardInterrupt):  # a second Ctrl-C stops at once
            signal.raise_signal(signal.SIGINT)
    intr = Interrupt()
    with intr:
        intr.set_training(True)
        with pytest.raises(KeyboardInterrupt):  # while training: at once; SIGTERM as Ctrl-C
            signal.raise_signal(signal.SIGTERM)
        assert intr.requested
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before  # handlers restored


FINALIZER_CTRL_C = textwrap.dedent("""
    import os, signal
    from mvsearch.search.interrupt import Interrupt

    class Finalized:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while a finalizer (torch's, say) runs
            for _ in range(1000):
                pass

    intr = Interrupt()
    try:
        with intr:
            intr.set_training(True)
            Finalized()
            for _ in range(10 ** 6):  # training goes on ... unless the interrupt stops it
                pass
        print("not stopped")
    except KeyboardInterrupt:
        print("stopped")
""")


def test_ctrl_c_inside_a_finalizer_stops_training_without_a_traceback():
    r = subprocess.run([sys.executable, "-c", FINALIZER_CTRL_C], capture_output=True, text=True, timeout=120,
                       cwd=REPO)
    assert "Traceback" not in r.stderr, r.stderr
    assert r.stdout.split() == ["stopped"]


# ---------------------------------------------------------------------- a real multi-tier search
TIER_TRIALS = 8  # 4 per tier: 3 screened start-up candidates, then the tier's TPE proposes


@pytest.fixture(scope="module")
def tier_run(tmp_path_factory):
    """Two tiers, Hyperband on, 8 trained candidates: (summary, search, budget, events)."""
    tmp = tmp_path_factory.mktemp("tiers")
    space = load_space(write_space(tmp))
    budget = parse_budget("2M,3M")
    events = Events()
    url = sqlite(tmp, "tiers")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MVSEARCH_CACHE", str(tmp_path_factory.getbasetemp() / "mvsearch-cache"))
        summary = run_search(space, budget, opts(url, trials=TIER_TRIALS, pruner="hyperband"), events)
    return summary, open_search("e2e", url), budget, events


def test_each_tier_is_its_own_optuna_study(tier_run):
    _, search, _, _ = tier_run
    assert sorted(optuna.get_all_study_names(storage=search.url)) == ["e2e@2M", "e2e@3M"]
    assert set(search.studies) == {"2M", "3M"}
    for label, study in search.studies.items():
        info = StudyRecord.from_attrs(study.user_attrs)
        assert study.study_name == f"e2e@{label}" and study.direction == optuna.study.StudyDirection.MAXIMIZE
        assert (info.search, info.tier, info.schema_version) == ("e2e", label, SCHEMA_VERSION)
        assert info.tiers == ["2M", "3M"] and info.space == "e2e" and info.space_yaml


def test_each_tier_study_holds_only_trials_of_its_own_tier(tier_run):
    _, search, budget, _ = tier_run
    for label, study in search.studies.items():
        trials = study.get_trials()
        assert trials
        for t in trials:
            rec = TrialRecord.from_user_attrs(t.user_attrs)
            assert rec.tier == label, (label, t.number, rec.tier)
            if not rec.over_budget:  # trained: fvcore's count lies in this study's band
                assert budget.tier(label).contains(rec.flops), (label, t.number, rec.flops)
            else:  # rejected: the analytic count lies outside it
                assert not budget.tier(label).contains(analytic_cost(rec.arch, (64, 64)).flops)
    refs = [r.ref for r in search.records(include_rejected=True)]
    assert len(refs) == len(set(refs)) and all(r.split("/")[0] in ("2M", "3M") for r in refs)


def test_every_tier_trains_its_share_and_keeps_completed_trials_with_pruning_on(tier_run):
    summary, search, budget, _ = tier_run
    trained = [r for r in search.records() if r.trained]
    assert len(trained) == TIER_TRIALS == len(summary.outcomes)  # rejections do not count
    assert summary.count("PRUNED") >= 1  # the pruners did act in this run
    assert sum(1 for r in trained if r.state == "PRUNED") == summary.count("PRUNED")
    for tier in budget.tiers:
        mine = [r for r in trained if r.tier == tier.label]
        assert len(mine) == TIER_TRIALS // 2  # the loop balances the tiers
        assert any(r.state == "COMPLETE" for r in mine), f"tier {tier.label} lost every trial to the pruner"


def test_start_up_trials_of_a_tier_are_screened_members_of_its_band(tier_run):
    summary, search, budget, _ = tier_run
    startup = n_startup(TIER_TRIALS, 2)
    screened_out = 0
    for label, study in search.studies.items():
        trials = sorted(study.get_trials(), key=lambda t: t.number)
        head = trials[:startup]
        for t in head:
            rec = TrialRecord.from_user_attrs(t.user_attrs)
            assert "fixed_params" in t.system_attrs  # enqueued (study.enqueue_trial), not proposed
            assert t.params == t.system_attrs["fixed_params"]
            assert isinstance(rec.screened_out, int) and rec.screened_out >= 0
            assert not rec.over_budget and budget.tier(label).contains(rec.flops)
            screened_out += rec.screened_out
        later = trials[startup:]
        assert later, "the tier's sampler never proposed"
        for t in later:  # after start-up the tier's own sampler proposes (nothing enqueued)
            assert "fixed_params" not in t.system_attrs and t.user_attrs.get("screened_out") is None
    assert summary.screened == screened_out


def test_events_come_in_order_for_each_trial(tier_run):
    summary, _, _, events = tier_run
    assert events.log[0] == ("start", "e2e")
    for o in summary.outcomes:
        assert o.ref.split("/")[0] == o.tier
        mine = [e for e in events.log if e[0] in ("trial_start", "epoch", "trial_end") and e[1] == o.ref]
        assert mine[0] == ("trial_start", o.ref) and mine[-1] == ("trial_end", o.ref)
        assert [e[2] for e in mine[1:-1]] == list(range(1, o.epochs + 1))
    rejected = [o for o in events.ends if o.state == "REJECTED"]
    assert len(rejected) == summary.rejected
    for o in rejected:  # a rejection never starts training
        assert not [e for e in events.log if e[0] in ("trial_start", "epoch") and e[1] == o.ref]


def test_pruned_trials_stopped_before_the_last_epoch(tier_run):
    _, search, _, _ = tier_run
    pruned = [r for r in search.records() if r.state == "PRUNED"]
    assert pruned
    for r in pruned:
        assert 1 <= len(r.accuracy_curve) < 4
        assert r.accuracy_curve == [r.intermediate[e] for e in sorted(r.intermediate)]


def test_best_trials_lists_the_best_of_each_tier(tier_run):
    _, search, budget, _ = tier_run
    best = best_trials(search, per_tier=1)
    complete = [r for r in search.records() if r.state == "COMPLETE"]
    for tier in budget.tiers:
        top = max(r.accuracy for r in complete if r.tier == tier.label)
        assert [r.accuracy for r in best if r.tier == tier.label] == [top]


def test_find_takes_a_tier_ref_and_a_plain_number_only_when_unique(tier_run):
    _, search, _, _ = tier_run
    assert search.find("3M/1").ref == "3M/1" and search.find("3M/1").study == "e2e@3M"
    with pytest.raises(StudyError, match=r"several tiers have a trial 1 \(2M/1, 3M/1\)"):
        search.find("1")
    with pytest.raises(StudyError, match="has no trial 3M/99"):
        search.find("3M/99")


# ---------------------------------------------------------------------- sampler=random, resuming
def _archs(search) -> list[str]:
    return [json.dumps(r.arch.to_dict(), sort_keys=True) for r in search.records() if r.trained]


def test_with_the_random_sampler_every_candidate_is_a_screened_member_of_its_band(tmp_path):
    space = load_space(write_space(tmp_path, **CHEAP))
    budget = parse_budget("2M,3M")
    url = sqlite(tmp_path)
    summary = run_search(space, budget, opts(url, trials=8, sampler="random", pruner="none"))
    assert summary.rejected == 0 and len(summary.outcomes) == 8
    search = open_search("e2e", url)
    recs = search.records(include_rejected=True)
    assert len(recs) == 8
    for r in recs:
        assert not r.over_budget and r.screened_out is not None and budget.tier(r.tier).contains(r.flops)
        t = search.studies[r.tier].trials[r.number]
        assert t.params == t.system_attrs["fixed_params"]
    assert {r.tier for r in recs} == {"2M", "3M"}


def test_a_resumed_search_adds_trials_without_repeating_architectures(tmp_path):
    space = load_space(write_space(tmp_path, **CHEAP))
    budget = parse_budget("2M,3M")
    url = sqlite(tmp_path)
    first = run_search(space, budget, opts(url, trials=4, pruner="none"))
    old = _archs(open_search("e2e", url))
    assert len(old) == 4 and len(set(old)) == 4
    events = Events()
    again = run_search(space, budget, opts(url, trials=4, pruner="none"), events)
    search = open_search("e2e", url)
    assert set(search.studies) == {"2M", "3M"}  # the same studies, not new ones
    new = _archs(search)
    assert len(new) == 8 and set(old) <= set(new)
    assert len(set(new) - set(old)) == 4  # four new architectures, none of the first run's
    assert len({o.ref for o in first.outcomes} | {o.ref for o in again.outcomes}) == 8
    assert events.log[0] == ("start", "e2e")


def test_two_workers_screening_at_the_same_moment_train_different_candidates(tmp_path, monkeypatch):
    # what two workers started together on one PostgreSQL database do (tests/test_postgres.py sees it about one
    # run in three), made deterministic: worker b runs its whole trial while worker a is screening its draw
    space = load_space(write_space(tmp_path, **CHEAP))
    url = sqlite(tmp_path)
    a, b = (Search(space, parse_budget("3M"), opts(url, trials=1, pruner="none"), Reporter()) for _ in range(2))
    for w in (a, b):
        w.prepare()
        w.open()
    real, calls = driver.screen, []

    def screen(*args: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:  # worker a has read the trial count; worker b gets there before a's enqueue
            b.run()
        return real(*args)

    monkeypatch.setattr(driver, "screen", screen)
    a.run()
    trials = optuna.load_study(study_name="e2e@3M", storage=url).get_trials()
    trained = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(trained) == 2 and len(calls) >= 2  # worker a saw b's trial and drew again
    assert trained[0].params != trained[1].params


# ---------------------------------------------------------------------- what is not resumed
def test_a_study_of_another_space_is_not_resumed(tmp_path):
    url = sqlite(tmp_path)
    study = optuna.create_study(study_name="e2e@3M", storage=url, direction="maximize")
    study.set_user_attr("space_yaml", space_text(arch={"stem": [8, 32]}))
    study.set_user_attr("space_file", "other.yaml")
    with pytest.raises(StudyError, match=r"different search space \(other.yaml\).*another --study"):
        run_search(load_space(write_space(tmp_path)), parse_budget("3M"), opts(url, trials=1))
    assert len(optuna.load_study(study_name="e2e@3M", storage=url).trials) == 0


def test_a_study_with_another_proxy_is_not_resumed(tmp_path):
    url = sqlite(tmp_path)
    space = load_space(write_space(tmp_path))
    study = optuna.create_study(study_name="e2e@3M", storage=url, direction="maximize")
    study.set_user_attr("space_yaml", space.text)
    study.set_user_attr("proxy", {**space.proxy_settings().to_dict(), "epochs": 9})
    with pytest.raises(StudyError, match=r"proxy epochs=9, this run has epochs=4"):
        run_search(space, parse_budget("3M"), opts(url, trials=1))
    assert len(optuna.load_study(study_name="e2e@3M", storage=url).trials) == 0


def test_a_foreign_study_with_trials_is_not_taken_over(tmp_path):
    url = sqlite(tmp_path)
    study = optuna.create_study(study_name="e2e@3M", storage=url, direction="maximize")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    with pytest.raises(StudyError, match="not created by mvsearch run"):
        run_search(load_space(write_space(tmp_path)), parse_budget("3M"), opts(url, trials=1))
    assert len(optuna.load_study(study_name="e2e@3M", storage=url).trials) == 1


def test_an_old_single_study_of_the_same_name_is_not_extended(tmp_path):
    # a search made by the release before per-tier studies: one study named like the search
    url = sqlite(tmp_path)
    optuna.create_study(study_name="e2e", storage=url, direction="maximize")
    with pytest.raises(StudyError, match=r"made by an older mvsearch.*another --study NAME"):
        run_search(load_space(write_space(tmp_path)), parse_budget("3M"), opts(url, trials=1))
    assert optuna.get_all_study_names(storage=url) == ["e2e"]  # no tier study added beside it


def test_parse_space_of_the_helper_is_the_tiny_space_with_the_test_proxy():
    # guards the helper the other test files build their spaces with
    space = parse_space(space_text(), "e2e.yaml")
    tiny = load_space("tiny")
    assert space.spec.arch == tiny.spec.arch and space.proxy_settings().epochs == 4
    assert parse_space(space_text(search={"baselines": True}), "e.yaml").spec.search.baselines is True


def test_a_presets_trial_with_no_baseline_left_trains_nothing_outside_the_tiers(tmp_path, monkeypatch):
    # worker a saw a baseline waiting in the presets' study, another worker took it before a's
    # optimize: the sampler must not propose an architecture there, where no tier's budget applies
    space = load_space(write_space(tmp_path, **CHEAP))
    url = sqlite(tmp_path)
    a = Search(space, parse_budget("3M"), opts(url, trials=1, pruner="none", with_baselines=True), Reporter())
    a.prepare()
    a.open()
    presets = a.studies[driver.PRESETS_LABEL]
    for _ in presets.get_trials(deepcopy=False, states=(TrialState.WAITING,)):  # "another worker" takes them all
        presets.tell(presets.ask(), state=TrialState.FAIL)
    real, seen = a._waiting, []

    def waiting(baselines_only: bool = False):
        if not seen:  # what worker a saw a moment earlier
            seen.append(1)
            return driver.PRESETS_LABEL
        return real(baselines_only)

    monkeypatch.setattr(a, "_waiting", waiting)
    summary = a.run()
    ts = optuna.load_study(study_name="e2e@presets", storage=url).get_trials()
    assert not [t for t in ts if t.state == TrialState.COMPLETE]  # nothing trained in the presets' study
    (nothing,) = [t for t in ts if "no baseline was queued" in (t.user_attrs.get("error") or "")]
    assert nothing.state == TrialState.FAIL and "arch" not in nothing.user_attrs
    tier = optuna.load_study(study_name="e2e@3M", storage=url).get_trials(states=(TrialState.COMPLETE,))
    assert len(tier) == 1 and len(summary.outcomes) == 1  # the run went on to its one candidate
