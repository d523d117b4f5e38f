"""Where studies live and how their trials read back: the contract between search and reports.

A study is an Optuna study in Optuna's own RDB storage (SQLite by default, PostgreSQL for many
machines), single-objective: ``trial.value`` is the proxy validation accuracy (0..1), maximised.
Everything else a trial knows is in its user attributes, under the keys of :data:`ATTR`.

Default locations: ``--study NAME`` alone means ``sqlite:///studies/NAME.db``; with neither
``--study`` nor ``--storage``, the single ``studies/*.db`` there is (an error lists them if there
are several).
"""
from __future__ import annotations

import difflib
import os
import sqlite3
from pathlib import Path
from typing import Any
import optuna
import random
import time

from mvsearch.core.errors import StudyError, first_line


STUDIES_DIR = Path(os.environ.get("MVSEARCH_STUDIES", "studies"))


def default_storage(study_name: str) -> str:
    """``sqlite:///studies/<name>.db`` (relative to the working directory)."""
    return f"sqlite:///{STUDIES_DIR / f'{study_name}.db'}"


def _sqlite_path(storage: str) -> Path | None:
    prefix = "sqlite:///"
    return Path(storage[len(prefix):]) if storage.startswith(prefix) else None


def _check_study_file(path: Path) -> None:
    """StudyError unless ``path`` is an SQLite file holding Optuna's tables, checked read-only.

    Optuna's storage creates its tables in any SQLite file it opens, so without this check a
    reading command pointed at the wrong file (an empty one, another program's database) would
    write into it.
    """
    try:
        con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            found = con.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'studies'").fetchone()
        finally:
            con.close()
    except sqlite3.Error as exc:
        raise StudyError(f"{path} is not an SQLite database ({exc}); check --storage") from None
    if not found:
        raise StudyError(f"{path} holds no Optuna study (no 'studies' table); check --study/--storage, "
                         f"or run `mvsearch run` first")


def resolve(study_name: str | None, storage: str | None) -> tuple[str, str]:
    """Turn the CLI's ``--study``/``--storage`` into an existing (study name, storage URL)."""
    if storage is None:
        if study_name is None:
            dbs = sorted(STUDIES_DIR.glob("*.db")) if STUDIES_DIR.is_dir() else []
            if not dbs:
                raise StudyError(
                    f"no study found in {STUDIES_DIR}/; run `mvsearch run --space spaces/mobile.yaml` "
                    f"first, or pass --study NAME / --storage URL"
                )
            if len(dbs) > 1:
                names = ", ".join(p.stem for p in dbs)
                raise StudyError(f"several studies in {STUDIES_DIR}/ ({names}); pass --study NAME")
            storage = f"sqlite:///{dbs[0]}"
        else:
            storage = default_storage(study_name)
    path = _sqlite_path(storage)
    if path is not None and not path.exists():
        raise StudyError(f"no study database at {path}; check --study/--storage, or run `mvsearch run` first")
    if path is not None:
        _check_study_file(path)
    try:
        names = optuna.get_all_study_names(storage=storage)
    except Exception as exc:  # sqlalchemy / driver errors: one line, the project's own type
        raise StudyError(f"cannot open storage {storage}: {str(exc).splitlines()[0]}") from None
    if study_name is None:
        if len(names) != 1:
            listing = ", ".join(names) or "none"
            raise StudyError(f"storage {storage} holds {len(names)} studies ({listing}); pass --study NAME")
        study_name = names[0]
    elif study_name not in names:
        hint = difflib.get_close_matches(study_name, names, n=1)
        did = f" (did you mean {hint[0]!r}?)" if hint else ""
        listing = ", ".join(names) or "none"
        raise StudyError(f"no study named {study_name!r} in {storage}{did}; it holds: {listing}")
    return study_name, storage


def load(study_name: str | None, storage: str | None) -> optuna.Study:
    """Load an existing study (see :func:`resolve`)."""
    name, url = resolve(study_name, storage)
    return optuna.load_study(study_name=name, storage=url)


#: retries of opening a fresh database whose schema another worker is creating at the same moment
SCHEMA_RETRIES = 5


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers (dashboard, reports) never block the writer
    cur.execute("PRAGMA synchronous=NORMAL")  # ~10x faster commits; consistent after a crash
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _missing_driver(url: str, exc: BaseException) -> str:
    """Why a storage URL's database driver failed to import, and what to install or write instead."""
    cause = exc.__cause__ or exc.__context__
    module = getattr(cause, "name", None) or "its driver"
    scheme = url.partition("://")[0]
    if scheme == "postgresql":  # SQLAlchemy >= 2.1 means psycopg 3 by a bare postgresql://
        return (f"the PostgreSQL driver {module} is not installed; pip install 'psycopg[binary]', "
                f"or name an installed driver in the URL, e.g. postgresql+psycopg2://...")
    return f"the database driver {module} for {scheme}:// is not installed; install it or use sqlite:///FILE.db"


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """Optuna's RDB storage for ``url`` (creating a SQLite file's folder); StudyError if it fails."""
    if url.startswith("sqlite:///"):
        folder = Path(url[len("sqlite:///"):]).expanduser().parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StudyError(f"cannot create the folder {folder} for storage {url}: {exc.strerror or exc}; "
                             f"pass --storage sqlite:///PATH.db in a writable folder") from None
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    for attempt in range(SCHEMA_RETRIES + 1):
        try:
            storage = optuna.storages.RDBStorage(url)
            break
        except (IntegrityError, ProgrammingError) as exc:
            # workers started together on a fresh database race to create Optuna's tables; the
            # losers' CREATE fails once the winner's commits, and a retry finds the tables there
            if attempt == SCHEMA_RETRIES:
                raise StudyError(f"cannot open storage {url}: {first_line(exc)}") from None
            time.sleep(0.2 * (attempt + 1) + random.random() * 0.2)
        except ImportError as exc:  # the URL names a database whose Python driver is absent
            raise StudyError(f"cannot open storage {url}: {_missing_driver(url, exc)}") from None
        except Exception as exc:  # server down, bad URL, unwritable file: one line
            raise StudyError(f"cannot open storage {url}: {first_line(exc)}") from None
    if url.startswith("sqlite:"):
        from sqlalchemy import event

        event.listen(storage.engine, "connect", _sqlite_pragmas)
        storage.engine.dispose()  # reconnect with the pragmas
    return storage


def weights_dir(storage: str, study_name: str) -> Path:
    """``studies/<study>-weights`` beside a SQLite database (else under ./studies)."""
    pass

    base = Path(storage[len("sqlite:///"):]).parent if storage.startswith("sqlite:///") else STUDIES_DIR
    return base / f"{study_name}-weights"
