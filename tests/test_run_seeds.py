"""``mvsearch run --seeds K``: each candidate trained with seeds seed..seed+K-1, ranked by the mean.

One search (the ``seeded`` fixture) serves most tests: the tiny space with the search tests' proxy
(4 epochs on synthetic data), ``--seeds 2``, run in-process with two spies on Optuna's ``Trial``:
``report`` records every intermediate value the search reports, and ``should_prune`` prunes the
second trained candidate at its first epoch (and no other), so the pruned case is certain rather
than left to the pruner. A third spy counts the proxy trainings. Trials are named ``15M/N``.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
import torch
from optuna.trial import TrialState

from mvsearch.arch.config import ArchConfig
from mvsearch.core.limits import MAX_SEED
from mvsearch.data import load_data, proxy_split
from mvsearch.proxy.run import run_proxy
from mvsearch.search import objective
from mvsearch.search.driver import SPLIT_SEED
from mvsearch.space.loader import load_space
from tests.test_cli_run import acc_text, assert_one_line_error, copy_db, invoke
from tests.test_search import CHEAP, DATA, write_space

EPOCHS = 4  # the search tests' proxy (tests.test_search.PROXY)
TRIALS = 4


def run_args(space: Path, url: str, *extra: object, data: str = DATA) -> list[object]:
    return ["run", "--space", space, "--budget", "15M", "--data", data, "--storage", url, "--threads", 1,
            "--seed", 0, *extra]


def trials_of(url: str, name: str = "e2e") -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=f"{name}@15M", storage=url).get_trials()


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()  # the search runs with --threads 1; the retraining below likewise
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("seeds")
    space = write_space(tmp)
    url = f"sqlite:///{tmp / 'e2e.db'}"
    reports: list[tuple[int, int]] = []  # (trial number, step) of every trial.report
    trainings: list[int] = []  # the seed of every proxy training, in order
    report, train = optuna.trial.Trial.report, objective.run_proxy

    def spy_report(self, value, step):
        reports.append((self.number, step))
        return report(self, value, step)

    def prune_the_second(self):  # the second candidate to report is pruned at its first epoch
        order = list(dict.fromkeys(n for n, _ in reports))  # trial numbers, in the order they first reported
        return len(order) > 1 and self.number == order[1]

    def spy_train(*args, **kw):
        trainings.append(kw["seed"])
        return train(*args, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MVSEARCH_CACHE", str(tmp_path_factory.getbasetemp() / "mvsearch-cache"))
        mp.setattr(optuna.trial.Trial, "report", spy_report)
        mp.setattr(optuna.trial.Trial, "should_prune", prune_the_second)
        mp.setattr(objective, "run_proxy", spy_train)
        r = invoke(*run_args(space, url, "--trials", TRIALS, "--seeds", 2))
    assert r.exit_code == 0, r.output
    trained = [t for t in trials_of(url) if not t.user_attrs.get("over_budget")]
    return SimpleNamespace(result=r, url=url, space=space, tmp=tmp, trained=trained, reports=reports,
                           trainings=trainings)


def complete(s) -> list[optuna.trial.FrozenTrial]:
    return [t for t in s.trained if t.state == TrialState.COMPLETE]


def test_each_complete_trial_has_one_accuracy_per_seed_and_their_mean_as_value(seeded):
    done = complete(seeded)
    assert len(done) == TRIALS - 1  # all but the one pruned
    for t in done:
        accs = t.user_attrs["seed_accuracies"]
        assert len(accs) == 2 and all(0.0 <= a <= 1.0 for a in accs)
        assert t.value == pytest.approx(sum(accs) / 2)
        curve = t.user_attrs["accuracy_curve"]  # the first seed's curve, ending at its final accuracy
        assert len(curve) == EPOCHS and curve[-1] == accs[0]
        assert t.user_attrs["val_samples"] == 128 and t.user_attrs["seed"] == 0
    # guards the test: with identical seeds every mean would equal the first seed's accuracy
    assert any(a != b for a, b in (t.user_attrs["seed_accuracies"] for t in done))


def test_the_seeds_are_the_run_seed_and_the_next_one(seeded):
    # retrain one completed candidate with seeds 0 and 1 on the search's split: the same accuracies
    t = complete(seeded)[0]
    space = load_space(seeded.space)
    proxy = space.proxy_settings(data=DATA)
    data = load_data(proxy.data, resolution=proxy.resolution)
    split = proxy_split(data, train_samples=proxy.train_samples, val_samples=proxy.val_samples, seed=SPLIT_SEED)
    cfg = ArchConfig.from_dict(t.user_attrs["arch"])
    again = [run_proxy(cfg, proxy, seed=s, device="cpu", threads=1, data=data, split=split).result.val_accuracy
             for s in (0, 1)]
    assert again == t.user_attrs["seed_accuracies"]


def test_only_the_first_seed_reports_to_optuna(seeded):
    for t in complete(seeded):
        steps = [s for n, s in seeded.reports if n == t.number]
        assert steps == list(range(1, EPOCHS + 1))  # one report per epoch: the second seed reported nothing
        assert [t.intermediate_values[s] for s in steps] == t.user_attrs["accuracy_curve"]


def test_a_trial_pruned_during_the_first_seed_trains_no_other(seeded):
    pruned = [t for t in seeded.trained if t.state == TrialState.PRUNED]
    assert len(pruned) == 1
    t = pruned[0]
    assert t.user_attrs["seed_accuracies"] == [] and len(t.user_attrs["accuracy_curve"]) == 1
    # two trainings (seeds 0, 1) per completed trial, one (seed 0) for the pruned one, in order
    assert sorted(seeded.trainings) == [0] * TRIALS + [1] * (TRIALS - 1)
    assert seeded.trainings[:2] == [0, 1]  # seed by seed: the second seed trains after the first


def test_the_run_shows_the_mean_of_the_seeds_and_their_spread(seeded):
    out = seeded.result.stdout
    assert "seeds: 2 trainings per candidate, ranked by their mean accuracy" in out
    for t in complete(seeded):
        lo, hi = sorted(t.user_attrs["seed_accuracies"])
        shown = f"{acc_text(t.value, 128)} (mean of 2 seeds, spread {lo:.4f}–{hi:.4f})"
        assert re.search(rf"^trial +15M/{t.number} .* acc {re.escape(shown)} ", out, flags=re.MULTILINE), out
        assert re.search(rf"^ +15M/{t.number} +15M +{re.escape(shown)} ", out, flags=re.MULTILINE), out
    pruned = next(t for t in seeded.trained if t.state == TrialState.PRUNED)
    line = next(s for s in out.splitlines() if s.startswith("trial") and f" 15M/{pruned.number} " in s)
    assert "pruned" in line and "mean of" not in line


def test_trials_lists_the_seeds(seeded):
    r = invoke("trials", "--storage", seeded.url)
    assert r.exit_code == 0, r.output
    lines = r.stdout.strip().splitlines()
    assert lines[1].split()[:5] == ["trial", "state", "tier", "accuracy", "seeds"]
    for t in seeded.trained:
        line = next(s for s in lines[2:] if s.startswith(f"15M/{t.number} "))
        if t.state == TrialState.COMPLETE:
            lo, hi = sorted(t.user_attrs["seed_accuracies"])
            assert f"{acc_text(t.value, 128)}  2 ({lo:.4f}–{hi:.4f})" in line, line
        else:
            assert re.search(rf"{re.escape(acc_text(t.user_attrs['accuracy_curve'][-1], 128))} +- ", line), line
    rows = json.loads(invoke("trials", "--storage", seeded.url, "--format", "json").stdout)
    assert [row["seed_accuracies"] for row in rows] == [t.user_attrs["seed_accuracies"] for t in seeded.trained]
    csv = invoke("trials", "--storage", seeded.url, "--format", "csv").stdout.splitlines()
    assert "seed_accuracies" in csv[0].split(",")
    assert f'"{json.dumps(complete(seeded)[0].user_attrs["seed_accuracies"])}"' in "\n".join(csv)


def test_resuming_with_other_seeds_is_refused(seeded, tmp_path):
    url = copy_db(seeded.url, tmp_path / "e2e.db")
    r = invoke(*run_args(seeded.space, url, "--trials", 1, "--seeds", 3))
    assert_one_line_error(r, "study 'e2e' was made with --seeds 2", "this run has --seeds 3", "rerun with --seeds 2",
                          "--study")
    assert len(trials_of(url)) == len(trials_of(seeded.url))  # nothing trained or added
    r = invoke(*run_args(seeded.space, url, "--trials", 1))  # the default, one seed, is another number too
    assert_one_line_error(r, "--seeds 2", "this run has --seeds 1")


def test_a_study_made_before_seeds_counts_as_one_seed(tmp_path):
    space = write_space(tmp_path, **CHEAP)
    url = f"sqlite:///{tmp_path / 'old.db'}"
    assert invoke(*run_args(space, url, "--trials", 1, data=CHEAP["data"])).exit_code == 0
    study = optuna.load_study(study_name="e2e@15M", storage=url)
    assert study.user_attrs["seeds"] == 1
    study.set_user_attr("seeds", None)  # as a release before --seeds left it
    r = invoke(*run_args(space, url, "--trials", 1, "--seeds", 2, data=CHEAP["data"]))
    assert_one_line_error(r, "was made with --seeds 1", "this run has --seeds 2")
    r = invoke(*run_args(space, url, "--trials", 1, data=CHEAP["data"]))
    assert r.exit_code == 0, r.output
    # one seed: no seeds column, and the run's lines read as before --seeds
    assert "mean of" not in r.stdout and "seeds:" not in r.stdout
    table = invoke("trials", "--storage", url).stdout.splitlines()
    assert table[1].split()[:4] == ["trial", "state", "tier", "accuracy"] and "seeds" not in table[1]


@pytest.mark.parametrize("extra, words", [
    (["--seeds", 0], ["--seeds", "1..20", "got 0"]),
    (["--seeds", 21], ["--seeds", "21", "bound of 20"]),
    (["--seeds", "two"], ["--seeds", "'two'"]),
    (["--seed", MAX_SEED, "--seeds", 2], ["--seeds", f"{MAX_SEED}..{MAX_SEED + 1}", "lower --seed or --seeds"]),
])
def test_a_bad_seeds_value_is_one_line_and_writes_nothing(tmp_path, extra, words):
    args = run_args(write_space(tmp_path), f"sqlite:///{tmp_path / 'studies' / 'e2e.db'}", "--trials", 1)
    del args[args.index("--seed"):args.index("--seed") + 2]
    assert_one_line_error(invoke(*args, *extra), *words)
    assert not (tmp_path / "studies").exists()


def test_ctrl_c_during_a_later_seed_fails_the_trial_without_a_mean(tmp_path, monkeypatch):
    # the second seed's training is stopped as a Ctrl-C stops it (KeyboardInterrupt from inside training)
    train = objective.run_proxy

    def interrupted_second_seed(*args, **kw):
        if kw["seed"] == 1:
            raise KeyboardInterrupt
        return train(*args, **kw)

    monkeypatch.setattr(objective, "run_proxy", interrupted_second_seed)
    space = write_space(tmp_path, **CHEAP)
    url = f"sqlite:///{tmp_path / 'c.db'}"
    r = invoke(*run_args(space, url, "--trials", 3, "--seeds", 2, data=CHEAP["data"]))
    assert r.exit_code == 130, r.output
    [t] = [t for t in trials_of(url) if not t.user_attrs.get("over_budget")]  # the run stopped at it
    assert t.state == TrialState.FAIL and t.value is None and t.user_attrs["interrupted"] is True
    assert len(t.user_attrs["seed_accuracies"]) == 1  # the first seed finished, and is kept as such
    assert "interrupted" in r.stderr
