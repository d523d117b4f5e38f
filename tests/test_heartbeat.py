"""A worker killed mid-trial (SIGKILL: no handler runs) leaves a RUNNING trial; the next worker fails it
and retries its architecture once, on SQLite and on a real PostgreSQL server.

Two ways a dead worker is found:
* on this host, at once: its recorded ``worker`` is ``host:pid`` and that pid is gone;
* on any host, after the grace period: Optuna's heartbeat (``RDBStorage(heartbeat_interval=...,
  grace_period=..., heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1))``). The killed
  worker runs in its own UTS namespace with another host name, so the local check cannot judge it
  and only the heartbeat can.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna

from mvsearch.search.storage import RetryCallback, experimental_ok
import pytest
from optuna.trial import TrialState

from tests.test_postgres import postgres_url  # noqa: F401  (the real server fixture)

TINY = Path(__file__).resolve().parent.parent / "mvsearch" / "space" / "spaces" / "tiny.yaml"
DATA = "synthetic:samples=1024,classes=4"
ENV = {"MVSEARCH_HEARTBEAT_S": "1", "MVSEARCH_GRACE_S": "3", "PYTHONUNBUFFERED": "1"}


def slow_space(tmp_path: Path) -> Path:
    """The tiny space with a long proxy (40 epochs), so a trial is surely mid-training when killed."""
    text = TINY.read_text().replace("name: tiny", "name: hb").replace("epochs: 2", "epochs: 40")
    p = tmp_path / "hb.yaml"
    p.write_text(text)
    return p


def run_cmd(space: Path, url: str, trials: int) -> list[str]:
    return [sys.executable, "-m", "mvsearch", "run", "--space", str(space), "--budget", "3M", "--data", DATA,
            "--trials", str(trials), "--threads", "1", "--pruner", "none", "--storage", url]


def training_trial(url: str, timeout: float = 120.0):
    """Wait for a RUNNING trial of hb@3M that has started training (its FLOPs are recorded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            study = optuna.load_study(study_name="hb@3M", storage=url)
            for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                if t.user_attrs.get("flops") is not None:
                    return t
        except KeyError:  # the study does not exist yet
            pass
        time.sleep(0.1)
    raise AssertionError("no trial started training")


def kill_mid_trial(tmp_path: Path, url: str, *, other_host: bool, env: dict | None = None):
    """Start a worker, SIGKILL it while a trial trains: (space file, the killed trial)."""
    space = slow_space(tmp_path)
    cmd = run_cmd(space, url, 3)
    if other_host:  # a worker "on another machine": its own host name, same storage
        cmd = ["unshare", "--uts", "sh", "-c", 'hostname other-node && exec "$@"', "sh", *cmd]
    env = env or {**os.environ, **ENV}
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        victim = training_trial(url)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    study = optuna.load_study(study_name="hb@3M", storage=url)
    assert study.get_trials(deepcopy=False)[victim.number].state == TrialState.RUNNING  # nobody cleaned up
    return space, victim


def retried_by_next_worker(tmp_path: Path, url: str, space: Path, victim, *, wait: float) -> None:
    time.sleep(wait)
    env = {**os.environ, **ENV}
    r = subprocess.run(run_cmd(space, url, 1), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    study = optuna.load_study(study_name="hb@3M", storage=url)
    trials = study.get_trials(deepcopy=False)
    assert trials[victim.number].state == TrialState.FAIL
    with experimental_ok():
        retries = [t for t in trials if RetryCallback.retried_trial_number(t) == victim.number]
    assert len(retries) == 1, [(t.number, t.state) for t in trials]
    retry = retries[0]
    assert retry.state == TrialState.COMPLETE  # trained to the end by the second worker
    assert retry.params == victim.params and retry.user_attrs["arch"] == victim.user_attrs["arch"]
    assert retry.user_attrs["retry_of"] == victim.number


@pytest.mark.slow
def test_a_killed_local_worker_is_found_at_once_and_its_trial_retried(tmp_path):
    url = f"sqlite:///{tmp_path}/hb.db"
    space, victim = kill_mid_trial(tmp_path, url, other_host=False)
    retried_by_next_worker(tmp_path, url, space, victim, wait=0)


needs_unshare = pytest.mark.skipif(shutil.which("unshare") is None or os.geteuid() != 0,
                                   reason="a second host name needs unshare --uts as root")


@pytest.mark.slow
@needs_unshare
def test_a_killed_worker_on_another_host_is_found_by_the_heartbeat_sqlite(tmp_path):
    url = f"sqlite:///{tmp_path}/hb.db"
    space, victim = kill_mid_trial(tmp_path, url, other_host=True)
    retried_by_next_worker(tmp_path, url, space, victim, wait=4)  # > grace period


@pytest.mark.slow
@pytest.mark.postgres
@needs_unshare
def test_a_killed_worker_on_another_host_is_found_by_the_heartbeat_postgres(tmp_path, postgres_url):  # noqa: F811
    space, victim = kill_mid_trial(tmp_path, postgres_url, other_host=True)
    retried_by_next_worker(tmp_path, postgres_url, space, victim, wait=4)


@pytest.mark.slow
@needs_unshare
def test_within_the_grace_period_another_hosts_running_trial_is_left_alone(tmp_path):
    url = f"sqlite:///{tmp_path}/hb.db"
    env = {**os.environ, **ENV, "MVSEARCH_GRACE_S": "600"}
    space, victim = kill_mid_trial(tmp_path, url, other_host=True, env=env)
    r = subprocess.run(run_cmd(space, url, 1), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    study = optuna.load_study(study_name="hb@3M", storage=url)
    assert study.get_trials(deepcopy=False)[victim.number].state == TrialState.RUNNING  # maybe still alive there
