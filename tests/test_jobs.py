"""``--jobs N``: N worker processes sharing one study (mvsearch/cli/jobs.py), end to end.

Real subprocesses on the tiny space with synthetic data and one thread per worker: ``run --jobs 2``
splits ``--trials`` between two workers and prints one closing table; ``fidelity --jobs 2 --json``
trains each job once and prints one JSON object; SIGTERM to the parent stops every worker cleanly;
a worker killed with SIGKILL is reported and a rerun completes what it left. Bad ``--jobs`` values
are one line (exit 2); ``--jobs auto`` says what it chose and why.
"""
from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from click.testing import CliRunner
from optuna.trial import TrialState

from mvsearch.arch.presets import get_preset
from mvsearch.cli.jobs import child_argv, split_trials
from mvsearch.cli.main import main
from mvsearch.proxy.memory import training_memory
from mvsearch.search.record import TrialRecord
from mvsearch.space.loader import load_space
from tests.test_fidelity import FAST, PROXY, done_jobs, planned_jobs

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()
optuna.logging.set_verbosity(optuna.logging.WARNING)


def space_with_baseline(folder: Path) -> Path:
    """The tiny space with ``search.baselines: true``; at ``--budget 25M`` only mobilevit_xxs (21.5M) fits."""
    spec = yaml.safe_load((ROOT / "spaces" / "tiny.yaml").read_text())
    spec["name"] = "jobs"
    spec["search"]["baselines"] = True
    path = folder / "jobs.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def run_cmd(space: Path, url: str, trials: int, *extra: object) -> list[str]:
    return [sys.executable, "-m", "mvsearch", "run", "--space", str(space), "--budget", "25M", "--data", "synthetic",
            "--storage", url, "--trials", str(trials), "--threads", "1", "--no-save-weights", *map(str, extra)]


def popen(cmd: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def trials(url: str, study: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=study, storage=url).get_trials(deepcopy=False)


def records(url: str, study: str) -> list[tuple[optuna.trial.FrozenTrial, TrialRecord]]:
    return [(t, TrialRecord.from_user_attrs(t.user_attrs)) for t in trials(url, study)]


def running_worker(db: Path) -> int | None:
    """The pid of a worker training a trial now (its proxy network recorded), if any."""
    if not db.exists():
        return None
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            row = con.execute("SELECT w.value_json FROM trials t "
                              "JOIN trial_user_attributes a ON a.trial_id = t.trial_id "
                              "JOIN trial_user_attributes w ON w.trial_id = t.trial_id "
                              "WHERE t.state = 'RUNNING' AND a.key = 'proxy_arch' AND a.value_json != 'null' "
                              "AND w.key = 'worker'").fetchone()
        finally:
            con.close()
    except sqlite3.Error:  # tables not made yet
        return None
    return int(json.loads(row[0]).rpartition(":")[2]) if row else None


def wait_for_training(proc: subprocess.Popen, db: Path, timeout: float = 180) -> int:
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        pid = running_worker(db)
        if pid is not None:
            return pid
        time.sleep(0.1)
    proc.kill()
    out, err = proc.communicate()
    raise AssertionError(f"no worker started training: {err[-2000:]}")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def sigterm_when(proc: subprocess.Popen, ready) -> tuple[str, str]:
    """Wait for ``ready()``, send SIGTERM to ``proc`` and collect its output (killed if it hangs)."""
    try:
        ready()
        proc.send_signal(signal.SIGTERM)
        return proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()


def assert_interrupted_once(err: str, last: str) -> None:
    """stderr ends with one 'interrupted' line, starting ``last``, that says how to resume; no traceback."""
    lines = err.strip().splitlines()
    assert lines[-1].startswith(last) and "rerun the same command" in lines[-1]
    assert sum(line.startswith("interrupted") for line in lines) == 1 and "Traceback" not in err


# ---------------------------------------------------------------------- run
def test_run_jobs_2_trains_the_trials_once_in_two_workers_with_one_closing_table(tmp_path):
    space = space_with_baseline(tmp_path)
    url = f"sqlite:///{tmp_path / 'j.db'}"
    proc = popen(run_cmd(space, url, 4, "--jobs", 2), tmp_path)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    recs = records(url, "jobs@25M")
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t, _ in recs)
    # 4 trained candidates; past the 3 start-up draws the sampler may draw one the budget refuses
    # (recorded PRUNED, over_budget, trained nothing, not counted)
    assert len([t for t, r in recs if not r.baseline and not r.over_budget]) == 4
    assert [r.preset for _, r in recs if r.baseline] == ["mobilevit_xxs"]  # the baseline trained once
    pids = {int(r.worker.rpartition(":")[2]) for _, r in recs}
    assert len(pids) == 2 and proc.pid not in pids  # two workers, neither of them the parent
    assert out.count("best trials") == 1 and out.count("this run:") == 1
    assert "this run: 5 trained incl. 1 baseline" in out
    assert re.search(r"^\[w1\] trial ", out, re.M) and re.search(r"^\[w2\] trial ", out, re.M)
    assert out.count("study jobs (new)") == 1  # the header once, by the parent
    assert "--jobs 2: 2 workers x 1 thread, training 2 + 2 candidates" in err


def test_sigterm_to_the_parent_stops_every_worker_and_a_rerun_completes(tmp_path):
    space = space_with_baseline(tmp_path)
    db = tmp_path / "s.db"
    url = f"sqlite:///{db}"
    cmd = run_cmd(space, url, 4, "--jobs", 2, "--no-baselines")
    proc = popen(cmd, tmp_path)
    out, err = sigterm_when(proc, lambda: wait_for_training(proc, db))
    assert proc.returncode == 130, err
    assert_interrupted_once(err, "interrupted: ")
    assert "rerun the same command to resume" in err
    recs = records(url, "jobs@25M")
    assert not [t for t, _ in recs if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    stopped = [t for t, r in recs if r.interrupted]
    assert stopped and all(t.state == TrialState.FAIL for t in stopped)
    assert not any(alive(int(r.worker.rpartition(":")[2])) for _, r in recs if r.worker)  # no worker left behind

    again = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    after = records(url, "jobs@25M")
    assert not [t for t, _ in after if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    new = after[len(recs):]
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t, _ in new)
    # the rerun trains 4 candidates; a draw the budget refused is recorded too (PRUNED, over_budget)
    # but trains nothing and does not count (it happens once the sampler, not the screen, draws)
    assert len([t for t, r in new if not r.over_budget]) == 4


def test_a_worker_killed_with_sigkill_is_reported_and_a_rerun_completes(tmp_path):
    space = space_with_baseline(tmp_path)
    db = tmp_path / "k.db"
    url = f"sqlite:///{db}"
    cmd = run_cmd(space, url, 4, "--jobs", 2, "--no-baselines")
    proc = popen(cmd, tmp_path)
    try:
        victim = wait_for_training(proc, db)
        os.kill(victim, signal.SIGKILL)
        out, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    # its quota is lost: fewer than 4 trained, so the parent says so and exits 1
    assert proc.returncode == 1, err
    assert re.search(r"^worker [12] died \(signal 9, SIGKILL\); its trial will be retried$", err, re.M), err
    assert re.search(r"^1 of 2 workers died; \d of 4 candidates trained.*rerun the same command to go on$", err, re.M)
    assert out.count("this run:") == 1
    recs = records(url, "jobs@25M")
    assert not [t for t, _ in recs if t.state == TrialState.RUNNING]  # the parent failed it at once
    killed = [t for t, r in recs if (r.worker or "").endswith(f":{victim}") and t.state == TrialState.FAIL]
    assert len(killed) == 1

    again = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    after = records(url, "jobs@25M")
    assert not [t for t, _ in after if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    retried = [t for t, r in after if r.retry_of == killed[0].number]
    assert len(retried) == 1 and retried[0].state in (TrialState.COMPLETE, TrialState.PRUNED)


# ---------------------------------------------------------------------- planned trainings
def test_fidelity_jobs_2_trains_each_job_once_and_prints_one_json_object(tmp_path):
    url = f"sqlite:///{tmp_path / 'f.db'}"
    cmd = [sys.executable, "-m", "mvsearch", "fidelity", *FAST, "--archs", "4", "--proxy", PROXY, "--storage", url,
           "--name", "fj", "--json", "--jobs", "2"]
    proc = popen(cmd, ROOT)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert len(out.strip().splitlines()) == 1  # the workers' lines went to stderr
    report = json.loads(out)
    jobs = planned_jobs(report)
    ts = trials(url, "fj@fidelity")
    assert sorted(done_jobs(ts)) == sorted(jobs) and len(jobs) == 4 * 3  # each COMPLETE exactly once
    assert report["run"]["trained"] == len(jobs) and report["run"]["interrupted"] is False
    workers = {TrialRecord.from_user_attrs(t.user_attrs).worker for t in ts if t.state == TrialState.COMPLETE}
    assert len(workers) == 2
    assert "[w1] " in err and "[w2] " in err


def test_sigterm_to_a_fidelity_parent_still_prints_the_partial_report_then_one_line(tmp_path):
    # a planned command's parent, interrupted, reports what its workers trained (as one process
    # does), then says in one line that every worker stopped, and exits 130
    db = tmp_path / "fi.db"
    url = f"sqlite:///{db}"
    cmd = [sys.executable, "-m", "mvsearch", "fidelity", "--space", "tiny", "--data", "synthetic", "--archs", "5",
           "--reference", "epochs=6,train_samples=384", "--proxy", PROXY, "--threads", "1", "--resamples", "200",
           "--storage", url, "--name", "fi", "--jobs", "2"]
    proc = popen(cmd, tmp_path)

    def one_training_done() -> None:
        deadline = time.monotonic() + 300
        while proc.poll() is None and time.monotonic() < deadline:
            if db.exists():
                try:
                    if [t for t in trials(url, "fi@fidelity") if t.state == TrialState.COMPLETE]:
                        break
                except Exception:  # the study is being created
                    pass
            time.sleep(0.2)
        assert proc.poll() is None, "the command ended before it could be interrupted"

    out, err = sigterm_when(proc, one_training_done)
    assert proc.returncode == 130, err
    assert "fidelity study 'fi'" in out and "baselines and ceiling" in out  # the report of what was trained
    assert_interrupted_once(err, "interrupted: every worker stopped")
    ts = trials(url, "fi@fidelity")
    assert not [t for t in ts if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    assert 0 < len([t for t in ts if t.state == TrialState.COMPLETE]) < 5 * 3  # some, not all, trained


def test_jobs_auto_says_how_many_workers_and_why(tmp_path):
    url = f"sqlite:///{tmp_path / 'a.db'}"
    cmd = [sys.executable, "-m", "mvsearch", "fidelity", *FAST, "--archs", "3", "--proxy", PROXY, "--storage", url,
           "--name", "fa", "--json", "--jobs", "auto"]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    m = re.search(r"^--jobs auto: (\d+) workers? x (\d+) threads? \((\d+) cores?; ~([\d.]+) GB per training of the "
                  r"largest planned network, ([\d.]+) GB available\)$", r.stderr, re.M)
    assert m, r.stderr
    n, t, cores = int(m[1]), int(m[2]), int(m[3])
    assert cores == len(os.sched_getaffinity(0)) and 1 <= n <= cores
    assert t == 1  # --threads 1 (FAST) is kept
    assert float(m[4]) > 0 and n <= max(1, float(m[5]) // float(m[4]))
    assert json.loads(r.stdout)["run"]["trained"] == 3 * 3


@pytest.mark.parametrize("command, value", [("run", "0"), ("run", "x"), ("fidelity", "0"), ("validate", "-2"),
                                            ("scale", "1.5")])
def test_a_bad_jobs_value_is_one_line_and_exit_2(command, value):
    r = runner.invoke(main, [command, "--jobs", value])
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "--jobs" in lines[0], r.stderr
    assert "'auto'" in lines[0]


# ---------------------------------------------------------------------- pieces
def test_the_trials_are_split_between_the_workers_and_idle_workers_left_out():
    assert split_trials(4, 2) == [2, 2]
    assert split_trials(5, 2) == [3, 2]
    assert split_trials(7, 3) == [3, 2, 2]
    assert split_trials(1, 3) == [1]


def test_a_worker_gets_the_users_options_with_its_own_trials_threads_and_jobs():
    from mvsearch.cli.run import command

    ctx = command.make_context("run", ["--space", "tiny", "--trials", "5", "--jobs", "2", "--no-save-weights",
                                       "--with-baselines", "--timeout", "2h"])
    argv = child_argv(ctx, trials=3, threads=1)
    assert argv[:4] == [sys.executable, "-m", "mvsearch", "run"]
    args = argv[4:]
    pairs = {args[i]: args[i + 1] for i in range(len(args) - 1)}
    assert pairs["--space"] == "tiny" and pairs["--trials"] == "3" and pairs["--threads"] == "1"
    assert pairs["--timeout"] == "2h" and pairs["--jobs"] == "1" and pairs["--worker-of"] == str(os.getpid())
    assert "--no-save-weights" in args and "--with-baselines" in args
    assert args.count("--trials") == 1 and args.count("--jobs") == 1
    assert "--device" not in args and "--seeds" not in args  # defaults stay defaults


def test_the_memory_estimate_bounds_its_calibration_and_the_held_out_mobilevit_s():
    # mvsearch/proxy/memory.py: per allocator setting, the least-squares line through its measured
    # trainings raised by its largest residual; the estimate from the architecture itself (fvcore
    # activations of the proxy network) must bound every measured peak without overshooting far
    from mvsearch.core.allocator import available
    from mvsearch.proxy import memory
    from mvsearch.proxy.memory import proxy_activations

    proxy = load_space("mobile").proxy_settings()
    est = {n: training_memory(get_preset(n, 1000), proxy, 10) for n in ("mobilevit_xxs", "mobilevit_xs", "mobilevit_s")}
    assert est["mobilevit_xxs"] < est["mobilevit_xs"] < est["mobilevit_s"]
    for points in (memory.HELD, memory.FREED, memory.HELD_OUT, memory.JEMALLOC, memory.JEMALLOC_OUT):
        # the stored counts are the estimate's own
        for n, (acts, _) in points.items():
            if n.startswith("mobilevit_"):
                assert proxy_activations(get_preset(n, 1000), proxy, 10) == pytest.approx(acts, rel=1e-3), n
    for held, points in ((True, {**memory.HELD, **memory.HELD_OUT}), (False, memory.FREED),
                         ("jemalloc", {**memory.JEMALLOC, **memory.JEMALLOC_OUT})):
        base, per = memory.FITS[held]
        for name, (acts, peak) in points.items():
            bound = base + per * acts * 64
            assert peak <= bound * 1.001 and bound < 1.35 * peak, (held, name, peak, bound)
    measured = {**memory.HELD, **memory.HELD_OUT} if available() else memory.FREED
    for n in est:
        if n in measured:
            assert est[n] >= measured[n][1] * 0.999, (n, est[n], measured[n])


def test_the_upper_line_lies_on_or_above_every_point_and_refuses_degenerate_input():
    from mvsearch.proxy.memory import upper_line

    pts = {"a": (1, 10), "b": (2, 30), "c": (3, 29), "d": (4, 45)}
    base, slope = upper_line(pts, batch=1)
    assert all(p <= base + slope * a + 1e-9 for a, p in pts.values())
    assert any(abs(p - (base + slope * a)) < 1e-9 for a, p in pts.values())  # touches the highest residual
    assert slope == pytest.approx(10.4)  # least squares: sum((x-2.5)(y-28.5)) / 5 = 52 / 5
    with pytest.raises(ValueError):
        upper_line({"a": (1, 10)})
    with pytest.raises(ValueError):
        upper_line({"a": (1, 10), "b": (1, 20)})


def test_workers_creating_one_fresh_database_at_once_leave_one_whole_study(tmp_path):
    # the parent creates the study before its workers start; create_whole also guards several
    # processes racing to create the same SQLite file: one wins, the others use it
    path = tmp_path / "race" / "r.db"
    code = ("import sys, time, optuna\n"
            "from pathlib import Path\n"
            "from mvsearch.search.storage import create_whole\n"
            "t = float(sys.argv[2])\n"
            "time.sleep(max(0.0, t - time.time()))\n"
            "create_whole(Path(sys.argv[1]), lambda s: optuna.create_study(study_name='r@t', storage=s, "
            "load_if_exists=True).set_user_attr('maker', sys.argv[3]))\n")
    start = time.time() + 8  # every process has imported optuna by then
    procs = [subprocess.Popen([sys.executable, "-c", code, str(path), str(start), str(i)], cwd=ROOT,
                              stderr=subprocess.PIPE, text=True) for i in range(3)]
    errs = [p.communicate(timeout=120)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), errs
    url = f"sqlite:///{path}"
    assert optuna.get_all_study_names(storage=url) == ["r@t"]
    assert optuna.load_study(study_name="r@t", storage=url).user_attrs["maker"] in ("0", "1", "2")
    assert sorted(p.name for p in path.parent.iterdir() if not p.name.startswith("r.db")) == []  # no .part left
