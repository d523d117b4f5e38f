"""Two ``mvsearch run`` workers sharing one search (one Optuna study per tier) in a real PostgreSQL server.

The test starts its own throwaway server (Debian's ``initdb``/``pg_ctl``, trust auth, loopback
only, fsync off) and stops it afterwards. ``make install-test`` installs the ``postgresql``
package; without it the test is skipped, except under CI (``CI=true``), where it fails saying
what to install. PostgreSQL refuses to run as root, so as root the server runs as the
``postgres`` user the package creates (through ``runuser``).

The URL is the plain ``postgresql://`` a user writes (SQLAlchemy 2.1 reads it as psycopg 3, which
the ``postgres`` and ``test`` extras install); psycopg2 is used directly only to inspect the tables.
"""
from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner
from optuna.trial import TrialState

from mvsearch.budget import parse_budget
from mvsearch.cli.main import main
from mvsearch.search.record import StudyRecord, TrialRecord
from mvsearch.search.storage import open_search
from tests.test_search import DATA, write_space

pytestmark = pytest.mark.postgres


def _unavailable(message: str) -> None:
    """Fail under CI (the test path installs PostgreSQL), skip elsewhere."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[4]))
    if not found:
        _unavailable("PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin; "
                     "install them with: apt-get install postgresql (make install-test does)")
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url():
    """A running PostgreSQL server on 127.0.0.1; yields a postgresql:// URL to its database."""
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        _unavailable("psycopg2 is not installed; pip install -e '.[test]' installs it")
    bindir = _bin_dir()
    as_user: list[str] = []
    if os.geteuid() == 0:  # postgres will not run as root
        if shutil.which("runuser") is None:
            _unavailable("running as root needs runuser (util-linux) to start PostgreSQL as user postgres")
        try:
            import pwd

            pw = pwd.getpwnam("postgres")
        except KeyError:
            _unavailable("running as root needs the 'postgres' user that the postgresql package creates")
        as_user = ["runuser", "-u", "postgres", "--"]
    # not under pytest's tmp_path: its parent folders are private to root, and the server user
    # must be able to reach its data directory
    root = Path(tempfile.mkdtemp(prefix="mvsearch-pg-"))
    data = root / "data"
    if as_user:
        os.chown(root, pw.pw_uid, pw.pw_gid)
    port = _free_port()

    def pg(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
        return subprocess.run([*as_user, *args], capture_output=True, text=True, timeout=timeout)

    try:
        init = pg(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--no-sync")
        assert init.returncode == 0, f"initdb failed: {init.stderr}"
        opts = f"-c listen_addresses=127.0.0.1 -p {port} -k {data} -c fsync=off -c max_connections=50"
        start = pg(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"), "-o", opts, "-w",
                   "-t", "60", "start")
        assert start.returncode == 0, f"pg_ctl start failed: {start.stderr} {(root / 'server.log').read_text()}"
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        pg(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop", timeout=60)
        shutil.rmtree(root, ignore_errors=True)


def test_two_workers_share_one_search(postgres_url, tmp_path):
    space = write_space(tmp_path)
    env = {**os.environ, "MVSEARCH_CACHE": str(tmp_path / "cache"), "MVSEARCH_STUDIES": str(tmp_path / "studies")}
    cmd = [sys.executable, "-m", "mvsearch", "run", "--space", str(space), "--budget", "2M,3M", "--data", DATA,
           "--storage", postgres_url, "--study", "shared", "--trials", "2", "--threads", "1"]
    # the same command on two "machines" at once: both create-or-load the tier studies and add trials
    workers = [subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True) for _ in range(2)]
    outs = [w.communicate(timeout=300) for w in workers]
    for w, (out, err) in zip(workers, outs):
        assert w.returncode == 0, err
        assert "this run: 2 trained" in out, out

    names = optuna.get_all_study_names(storage=postgres_url)
    assert sorted(names) == ["shared@2M", "shared@3M"]  # one study per tier, made once for both workers
    budget = parse_budget("2M,3M")
    trained = []
    for label in ("2M", "3M"):
        study = optuna.load_study(study_name=f"shared@{label}", storage=postgres_url)
        info = StudyRecord.from_attrs(study.user_attrs)
        assert (info.search, info.tier, info.tiers) == ("shared", label, ["2M", "3M"])
        trials = study.get_trials()
        assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
        for t in trials:
            rec = TrialRecord.from_trial(t, study.study_name, f"{label}/{t.number}")
            assert rec.tier == label  # a tier's study holds only its tier's trials
            if rec.trained:
                assert budget.tier(label).contains(rec.flops) and rec.flops <= 3_000_000
                trained.append(rec)
    by_worker: dict[str, list] = {}
    for r in trained:
        by_worker.setdefault(r.worker, []).append(r)
    pids = {str(w.pid) for w in workers}
    assert {k.rpartition(":")[2] for k in by_worker} == pids  # trials from both processes
    assert all(len(v) == 2 for v in by_worker.values())

    # the shared search reads back through mvsearch trials as well, by refs
    r = CliRunner().invoke(main, ["trials", "--storage", postgres_url, "--study", "shared", "--format", "json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert sorted(row["trial"] for row in rows) == sorted(r.ref for r in trained)
    assert {row["study"] for row in rows} <= {"shared@2M", "shared@3M"}

    archs = [json.dumps(r.arch.to_dict(), sort_keys=True) for r in trained]
    assert len(set(archs)) == len(archs)  # two workers never train one candidate twice


def test_a_rerun_resumes_the_shared_search(postgres_url, tmp_path):
    space = write_space(tmp_path)
    runner = CliRunner()
    args = ["run", "--space", str(space), "--budget", "3M", "--data", DATA, "--storage", postgres_url,
            "--study", "resumed", "--trials", "1", "--threads", "1", "--pruner", "none"]
    assert runner.invoke(main, args).exit_code == 0
    r = runner.invoke(main, args)
    assert r.exit_code == 0, r.output
    assert "resuming" in r.stdout
    search = open_search("resumed", postgres_url)
    assert list(search.studies) == ["3M"]
    trained = [rec for rec in search.records() if rec.trained]
    assert len(trained) == 2 and all(rec.state == "COMPLETE" for rec in trained)
    assert trained[0].arch != trained[1].arch


def _fresh_database(url: str, name: str) -> str:
    import psycopg2

    con = psycopg2.connect(url.replace("postgresql+psycopg2://", "postgresql://"))
    con.autocommit = True
    with con.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    con.close()
    return url.rpartition("/")[0] + f"/{name}"


def test_workers_opening_a_fresh_database_together(postgres_url):
    # what two machines starting `mvsearch run` at once do first: create Optuna's tables
    import threading

    from mvsearch.core.errors import StudyError
    from mvsearch.search.storage import open_storage

    outcomes = []
    for attempt in range(3):
        url = _fresh_database(postgres_url, f"fresh_{attempt}")
        barrier = threading.Barrier(4)
        errors: list[str] = []

        def worker() -> None:
            barrier.wait()
            try:
                open_storage(url).engine.dispose()
            except StudyError as exc:
                errors.append(str(exc))

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        outcomes.append(errors)
    # without the retries in open_storage, 3 of the 4 workers typically fail here (UniqueViolation)
    assert outcomes == [[], [], []]
