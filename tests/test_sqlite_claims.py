"""mvsearch.search.sqlite_claims: on SQLite, a queued trial goes to one worker.

Pins the behaviour it works around: Python's sqlite3 driver begins no transaction before a SELECT,
so Optuna's read-then-write claim of a WAITING trial is not atomic on SQLite; with ``lock_first``
(what ``open_storage`` does for a writer) a transaction holds the write lock from its first read.
"""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from mvsearch.search.sqlite_claims import lock_first
from mvsearch.search.storage import open_storage

ROOT = Path(__file__).resolve().parents[1]


def _locked_for_another_writer(path: Path) -> bool:
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        assert "locked" in str(exc), exc
        return True
    finally:
        other.close()
    return False


def test_a_writers_transaction_holds_the_write_lock_from_its_first_read(tmp_path):
    path = tmp_path / "s.db"
    url = f"sqlite:///{path}"
    optuna.create_study(study_name="s", storage=open_storage(url))
    writer, reader = open_storage(url), open_storage(url, heartbeat=False)
    for storage, locks in ((writer, True), (reader, False)):
        with storage.engine.connect() as conn:
            conn.exec_driver_sql("SELECT COUNT(*) FROM studies").fetchall()
            # the driver alone (the reader) has begun nothing: another writer may come in between
            assert _locked_for_another_writer(path) is locks
        assert not _locked_for_another_writer(path)  # released at the end of the transaction


def test_lock_first_refuses_an_engine_that_is_not_sqlite():
    from sqlalchemy import create_engine

    with pytest.raises(ValueError, match="SQLite"):
        lock_first(create_engine("postgresql+psycopg2://u@127.0.0.1:1/db"))


WORKER = """
import json, sys, time
import optuna
from mvsearch.search.storage import open_storage
optuna.logging.set_verbosity(optuna.logging.ERROR)
url, start, n = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
study = optuna.load_study(study_name="q", storage=open_storage(url))
while time.time() < start:
    pass
print(json.dumps([study.ask().number for _ in range(n)]))
"""


def test_workers_claiming_queued_trials_at_the_same_moment_never_get_the_same_one(tmp_path):
    """4 processes, released together, each ask() 10 times from 40 queued trials (Optuna's own claim,
    as ``Study.optimize`` makes it). Without ``lock_first`` 8 or 9 of the 40 went to two workers in
    each of 3 rounds (2-core machine)."""
    url = f"sqlite:///{tmp_path / 'q.db'}"
    study = optuna.create_study(study_name="q", storage=open_storage(url))
    for i in range(40):
        study.enqueue_trial({"x": i})
    start = time.time() + 3.0  # every worker has imported and opened the study by then
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, url, str(start), "10"], cwd=ROOT, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ)) for _ in range(4)]
    got = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-2000:]
        got += json.loads(out)
    assert len(got) == 40 and sorted(got) == list(range(40)), f"{len(got) - len(set(got))} of 40 claimed twice"
    states = [t.state for t in optuna.load_study(study_name="q", storage=url).get_trials(deepcopy=False)]
    assert states == [optuna.trial.TrialState.RUNNING] * 40  # none left WAITING, none created beside the queue
