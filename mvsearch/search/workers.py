"""Workers: who is training a trial (``host:pid``), and failing the trials of workers that died.

Optuna's heartbeat finds dead workers on any host, after its grace period; a dead process on this
host is certain at once, so its trial is failed and retried without waiting.
"""
from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta

import optuna
from optuna.trial import TrialState

from mvsearch.search.record import TrialRecord
from mvsearch.search.storage import RetryCallback, experimental_ok

#: an unowned RUNNING trial younger than this may be one a live worker is about to claim (it
#: writes its name as the trial's first act, within milliseconds)
UNCLAIMED_GRACE = timedelta(seconds=60)

#: this process, as trials record it
WORKER = f"{socket.gethostname()}:{os.getpid()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fail_dead_workers(study: optuna.Study, *, unowned: bool = False) -> list[int]:
    """FAIL the RUNNING trials of ``study`` whose worker process on this host is gone, and queue a retry.

    Optuna's heartbeat finds dead workers on any host, after its grace period; a dead process on
    this host is certain at once. ``unowned``: also trials that never recorded a worker (a
    single-user SQLite file), once they are a minute old. Returns the failed trial numbers.
    """
    host, out = socket.gethostname(), []
    retry = RetryCallback(max_retry=1)
    trials = study.get_trials(deepcopy=False)
    for t in [t for t in trials if t.state == TrialState.RUNNING]:
        worker = TrialRecord.from_user_attrs(t.user_attrs).worker
        with experimental_ok():
            retry_of = RetryCallback.retried_trial_number(t)
        if retry_of is not None and worker == TrialRecord.from_user_attrs(trials[retry_of].user_attrs).worker:
            continue  # a retry just taken by a live worker: it still carries the dead worker's name
        if isinstance(worker, str) and worker.rpartition(":")[0] == host:
            pid = worker.rpartition(":")[2]
            if pid.isdigit() and (int(pid) == os.getpid() or _alive(int(pid))):
                continue
        elif worker is not None or not unowned:
            continue  # another machine's trial: the heartbeat judges it
        elif t.datetime_start is not None and datetime.now() - t.datetime_start < UNCLAIMED_GRACE:
            continue  # just started by a live worker that has not written its name yet
        study.tell(t.number, state=TrialState.FAIL)
        retry(study, study.get_trials(deepcopy=False)[t.number])
        out.append(t.number)
    return out


__all__ = ["WORKER", "fail_dead_workers"]
