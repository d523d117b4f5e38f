"""mvsearch.search: storage, stale trials, resume checks, option checks and a real multi-tier search.

The search runs here are real (Optuna RDB storage in tmp_path, real proxy trainings) on a copy of
spaces/tiny.yaml whose proxy learns the synthetic task in 4 short epochs, so accuracies differ
between candidates and the pruner has something to decide.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from mvsearch.cost.analytic import analytic_cost
from mvsearch.budget import parse_budget
from mvsearch.core.errors import StudyError
from mvsearch.search.driver import RunOptions, Reporter, best_trials, check_options, fail_stale_trials, run_search
from mvsearch.search.storage import open_storage, weights_dir
from mvsearch.space.loader import load_space, parse_space
from mvsearch.search.record import records

REPO = Path(__file__).resolve().parents[1]
#: 4 classes, enough images that 4 epochs separate good candidates from weak ones (see the module docstring)
DATA = "synthetic:classes=4,samples=512"
#: proxy of the search tests: 32x32, stem stride 1, 4 epochs of 256 images, batch 16 (~3 s a trial)
PROXY = {"data": DATA, "resolution": 32, "stem_stride": 1, "epochs": 4, "batch_size": 16,
         "train_samples": 256, "val_samples": 128, "lr": 0.005, "warmup_epochs": 0.2}

optuna.logging.set_verbosity(optuna.logging.WARNING)


def space_text(name: str = "e2e", *, arch: dict[str, Any] | None = None, **proxy: Any) -> str:
    """spaces/tiny.yaml renamed, with the test proxy (``proxy`` overrides single settings)."""
    spec = yaml.safe_load((REPO / "spaces" / "tiny.yaml").read_text())
    spec["name"] = name
    spec["proxy"] = {**PROXY, **proxy}
    if arch:
        spec["arch"].update(arch)
    return yaml.safe_dump(spec, sort_keys=False)


def write_space(folder: Path, name: str = "e2e", *, arch: dict[str, Any] | None = None, **proxy: Any) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(space_text(name, arch=arch, **proxy))
    return path


class Events(Reporter):
    """Keeps what the search reports, in order."""

    def __init__(self) -> None:
        self.log: list[tuple] = []
        self.ends: list[Any] = []

    def start(self, info):
        self.log.append(("start", info.study_name))

    def trial_start(self, number, tier, cfg, flops, preset):
        self.log.append(("trial_start", number))

    def epoch(self, number, epoch, accuracy):
        self.log.append(("epoch", number, epoch))

    def trial_end(self, outcome):
        self.log.append(("trial_end", outcome.number))
        self.ends.append(outcome)

    def note(self, message):
        self.log.append(("note", message))


def sqlite(tmp_path: Path, name: str = "s") -> str:
    return f"sqlite:///{tmp_path / f'{name}.db'}"


# ---------------------------------------------------------------------- options and storage
@pytest.mark.parametrize("change, words", [
    ({"sampler": "grid"}, ["--sampler", "'grid'", "tpe, random, nsga2"]),
    ({"pruner": "asha"}, ["--pruner", "'asha'", "hyperband, median, none"]),
    ({"device": "gpu"}, ["--device", "'gpu'", "auto, cpu, cuda"]),
    ({"trials": 0}, ["--trials", "positive", "got 0"]),
    ({"timeout_s": 0.0}, ["--timeout", "positive"]),
])
def test_check_options_names_the_option_and_the_known_values(change, words):
    with pytest.raises(StudyError) as e:
        check_options(RunOptions(**change))
    assert all(w in str(e.value) for w in words) and "\n" not in str(e.value)


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


def test_weights_dir_lies_beside_the_sqlite_file(tmp_path):
    assert weights_dir(sqlite(tmp_path, "demo"), "demo") == tmp_path / "demo-weights"


# ---------------------------------------------------------------------- stale trials
def test_fail_stale_trials_fails_only_dead_local_workers(tmp_path):
    study = optuna.create_study(study_name="s", storage=sqlite(tmp_path), direction="maximize")
    host = socket.gethostname()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid that certainly belonged to a process that has exited
    workers = {"dead": f"{host}:{dead.pid}", "alive": f"{host}:{os.getppid()}", "remote": "elsewhere:1",
               "unowned": None}
    numbers = {}
    for what, worker in workers.items():
        t = study.ask()
        if worker is not None:
            t.set_user_attr("worker", worker)
        numbers[what] = t.number
    assert fail_stale_trials(study) == [numbers["dead"]]
    assert fail_stale_trials(study, unowned=True) == [numbers["unowned"]]
    states = {t.number: t.state for t in study.get_trials()}
    assert states[numbers["dead"]] == states[numbers["unowned"]] == TrialState.FAIL
    assert states[numbers["alive"]] == states[numbers["remote"]] == TrialState.RUNNING
    assert study.get_trials()[numbers["dead"]].user_attrs["interrupted"] is True


# ---------------------------------------------------------------------- a real multi-tier search
@pytest.fixture(scope="module")
def tier_run(tmp_path_factory):
    """Two tiers, Hyperband on, 6 trained candidates: (summary, study, budget, events)."""
    tmp = tmp_path_factory.mktemp("tiers")
    space = load_space(write_space(tmp))
    budget = parse_budget("2M,3M")
    events = Events()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MVSEARCH_CACHE", str(tmp_path_factory.getbasetemp() / "mvsearch-cache"))
        summary = run_search(space, budget, RunOptions(trials=6, storage=sqlite(tmp, "tiers"), seed=0,
                                                       pruner="hyperband", device="cpu", threads=1), events)
    study = optuna.load_study(study_name="e2e", storage=sqlite(tmp, "tiers"))
    return summary, study, budget, events


def test_every_tier_keeps_completed_trials_with_pruning_on(tier_run):
    summary, study, budget, _ = tier_run
    trained = [r for r in records(study) if r.trained]
    assert summary.count("PRUNED") >= 1  # the pruner did act in this run
    assert sum(1 for r in trained if r.state == "PRUNED") == summary.count("PRUNED")
    for tier in budget.tiers:
        mine = [r for r in trained if r.tier == tier.label]
        assert len(mine) == 3  # the loop balances the tiers: 6 trials, 2 tiers
        assert any(r.state == "COMPLETE" for r in mine), f"tier {tier.label} lost every trial to the pruner"


def test_every_trained_trial_lies_in_the_band_of_its_tier(tier_run):
    _, study, budget, _ = tier_run
    for r in records(study, include_rejected=True):
        tier = budget.tier(r.tier)
        if r.over_budget:
            assert not tier.contains(analytic_cost(r.arch, (64, 64)).flops)
        else:
            assert tier.contains(r.flops), (r.number, r.flops, tier)


def test_events_come_in_order_for_each_trial(tier_run):
    summary, _, _, events = tier_run
    assert events.log[0] == ("start", "e2e")
    for o in summary.outcomes:
        mine = [e for e in events.log if e[0] in ("trial_start", "epoch", "trial_end") and e[1] == o.number]
        assert mine[0] == ("trial_start", o.number) and mine[-1] == ("trial_end", o.number)
        assert [e[2] for e in mine[1:-1]] == list(range(1, o.epochs + 1))


def test_pruned_trials_stopped_before_the_last_epoch(tier_run):
    _, study, _, _ = tier_run
    for t in study.get_trials(states=(TrialState.PRUNED,)):
        if not t.user_attrs["over_budget"]:
            assert 1 <= len(t.user_attrs["accuracy_curve"]) < 4
            assert t.user_attrs["accuracy_curve"] == [t.intermediate_values[e] for e in sorted(t.intermediate_values)]


def test_best_trials_lists_the_best_of_each_tier(tier_run):
    _, study, budget, _ = tier_run
    best = best_trials(study, per_tier=1)
    complete = [r for r in records(study) if r.state == "COMPLETE"]
    for tier in budget.tiers:
        top = max(r.accuracy for r in complete if r.tier == tier.label)
        assert [r.accuracy for r in best if r.tier == tier.label] == [top]


# ---------------------------------------------------------------------- resuming
def test_a_study_of_another_space_is_not_resumed(tmp_path):
    url = sqlite(tmp_path)
    study = optuna.create_study(study_name="e2e", storage=url, direction="maximize")
    study.set_user_attr("space_yaml", space_text(arch={"stem": [8, 32]}))
    study.set_user_attr("space_file", "other.yaml")
    with pytest.raises(StudyError, match=r"different search space \(other.yaml\).*another --study"):
        run_search(load_space(write_space(tmp_path)), parse_budget("3M"),
                   RunOptions(trials=1, storage=url, device="cpu", threads=1))
    assert len(optuna.load_study(study_name="e2e", storage=url).trials) == 0


def test_a_study_with_another_proxy_is_not_resumed(tmp_path):
    url = sqlite(tmp_path)
    space = load_space(write_space(tmp_path))
    study = optuna.create_study(study_name="e2e", storage=url, direction="maximize")
    study.set_user_attr("space_yaml", space.text)
    study.set_user_attr("proxy", {**space.proxy_settings().to_dict(), "epochs": 9})
    with pytest.raises(StudyError, match=r"proxy epochs=9, this run has epochs=4"):
        run_search(space, parse_budget("3M"), RunOptions(trials=1, storage=url, device="cpu", threads=1))


def test_a_foreign_study_with_trials_is_not_taken_over(tmp_path):
    url = sqlite(tmp_path)
    study = optuna.create_study(study_name="e2e", storage=url, direction="maximize")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    with pytest.raises(StudyError, match="not created by mvsearch run"):
        run_search(load_space(write_space(tmp_path)), parse_budget("3M"),
                   RunOptions(trials=1, storage=url, device="cpu", threads=1))
    assert len(optuna.load_study(study_name="e2e", storage=url).trials) == 1


def test_parse_space_of_the_helper_is_the_tiny_space_with_the_test_proxy():
    # guards the helper the other test files build their spaces with
    space = parse_space(space_text(), "e2e.yaml")
    tiny = load_space("tiny")
    assert space.spec.arch == tiny.spec.arch and space.proxy_settings().epochs == 4
