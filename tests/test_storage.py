"""mvsearch.search.storage: storage URLs a command cannot use are one line in the user's terms."""
import sqlite3

import pytest

from mvsearch.core.errors import StudyError
from mvsearch.search.storage import (check_url, check_writable_file, open_storage, resolve, shown_url,
                                     storage_problem)


@pytest.mark.parametrize("url,says", [
    ("foo://x", "unknown database kind 'foo'"),
    ("not a url", "not a database URL"),
    ("sqlite://", "in-memory database"),
    ("sqlite:///:memory:", "in-memory database"),
    ("mysql://u@localhost/db", "is not installed"),
    ("postgresql+psycopg2://u:secret@127.0.0.1:1/db", "cannot connect to the database server"),
])
def test_open_storage_errors_say_what_is_wrong_and_what_to_do(url, says):
    with pytest.raises(StudyError) as e:
        open_storage(url, heartbeat=False)
    msg = str(e.value)
    assert says in msg and "\n" not in msg, msg
    assert "secret" not in msg and "sqlalchemy" not in msg.lower() and "Can't load plugin" not in msg


def test_a_password_is_never_shown():
    assert "secret" not in shown_url("postgresql://me:secret@db.example/x")


@pytest.mark.parametrize("driver_text,says", [
    ("attempt to write a readonly database", "'s.db' is read-only"),
    ("unable to open database file", "its folder does not exist or is not writable"),
    ("database is locked", "locked by another program"),
    ("file is not a database", "damaged or not SQLite"),
])
def test_driver_text_becomes_the_users_terms_even_under_optunas_wrapper(driver_text, says):
    from optuna.exceptions import StorageInternalError
    from sqlalchemy.exc import OperationalError

    inner = OperationalError("INSERT INTO studies ...", {}, sqlite3.OperationalError(driver_text))
    try:  # Optuna re-raises it as "An exception is raised during the commit ... exceeding max length"
        try:
            raise inner
        except OperationalError as e:
            raise StorageInternalError("An exception is raised during the commit. This typically happens due to "
                                       "invalid data in the commit, e.g. exceeding max length.") from e
    except StorageInternalError as wrapped:
        msg = storage_problem("sqlite:///s.db", wrapped)
    assert says in msg and "max length" not in msg, msg


def test_check_writable_file_refuses_folders_devices_and_other_programs_files(tmp_path):
    con = sqlite3.connect(tmp_path / "app.db")
    con.execute("CREATE TABLE t (x)")
    con.close()
    (tmp_path / "notes.txt").write_text("hi")
    for url, says in [(f"sqlite:///{tmp_path / 'app.db'}", "another program"),
                      (f"sqlite:///{tmp_path}", "is a directory"),
                      ("sqlite:////dev/null", "not a regular file"),
                      (f"sqlite:///{tmp_path / 'notes.txt'}", "not an SQLite database"),
                      (f"sqlite:///{tmp_path / 'notes.txt' / 'x.db'}", "cannot create the folder .* is not a folder")]:
        with pytest.raises(StudyError, match=says):
            check_writable_file(url)
    check_writable_file(f"sqlite:///{tmp_path / 'new.db'}")  # new: fine
    (tmp_path / "empty.db").write_bytes(b"")
    check_writable_file(f"sqlite:///{tmp_path / 'empty.db'}")  # empty: fine


def test_reading_a_study_leaves_its_file_as_it_was(tmp_path):
    import optuna

    url = f"sqlite:///{tmp_path / 's.db'}"
    optuna.create_study(study_name="s", storage=url)
    before = (tmp_path / "s.db").read_bytes()
    assert resolve("s", url) == ("s", url)
    assert (tmp_path / "s.db").read_bytes() == before  # no journal-mode switch by a reader


def test_check_url():
    check_url("sqlite:///x.db")
    with pytest.raises(StudyError):
        check_url("x.db")


def test_a_bad_heartbeat_variable_is_one_line_when_storage_opens(monkeypatch, tmp_path):
    from mvsearch.search import storage

    monkeypatch.setitem(storage._BAD_ENV, "MVSEARCH_HEARTBEAT_S", "soon")
    with pytest.raises(StudyError, match=r"\$MVSEARCH_HEARTBEAT_S: must be a number of seconds .* got 'soon'"):
        open_storage(f"sqlite:///{tmp_path / 'x.db'}")
