"""Where searches live: Optuna's RDB storage, one Optuna study per FLOP tier, read back as one search.

A search named ``mobile`` over the tiers 0.42G and 1.05G is the Optuna studies ``mobile@0.42G`` and
``mobile@1.05G`` in one storage (SQLite by default, PostgreSQL for many machines), plus
``mobile@presets`` when paper presets outside every tier are trained as baselines. Each is an
ordinary single-objective study (``trial.value`` = proxy validation accuracy, maximised) that
``optuna studies``, ``optuna-dashboard`` and Optuna's own code read as they are. A search made by a
release before per-tier studies is one study named ``mobile``; it still reads (schema 1).

A worker's SQLite transactions take the write lock first (:mod:`mvsearch.search.sqlite_claims`),
so a queued trial goes to one worker, as on PostgreSQL.

Storage opens with Optuna's heartbeat (:data:`HEARTBEAT_S`, :data:`GRACE_S`) and its retry callback
(``RetryHeartbeatStaleTrialCallback(max_retry=1)``): a trial whose worker died (SIGKILL, OOM killer, a
lost node) is marked FAIL by the next worker of that study once its heartbeat is older than the grace
period, and its architecture is retried once.

Default locations: ``--study NAME`` alone means ``sqlite:///studies/NAME.db``; with neither
``--study`` nor ``--storage``, the single ``studies/*.db`` there is (an error lists them if there
are several).
"""
from __future__ import annotations

import contextlib
import difflib
import os
import random
import re
import secrets
import sqlite3
import stat
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import optuna

try:  # Optuna >= 4.9 names the heartbeat's retry callback for what it does
    from optuna.storages import RetryHeartbeatStaleTrialCallback as RetryCallback
    _CALLBACK_KW = "heartbeat_stale_trial_callback"
except ImportError:  # pragma: no cover - Optuna < 4.9
    from optuna.storages import RetryFailedTrialCallback as RetryCallback
    _CALLBACK_KW = "failed_trial_callback"

from mvsearch.core.errors import StudyError, first_line
from mvsearch.core.text import printable, quote, shorten
from mvsearch.search.record import StudyRecord, TrialRecord, records_of
from mvsearch.search.sqlite_claims import lock_first

STUDIES_DIR = Path(os.environ.get("MVSEARCH_STUDIES", "studies"))
#: seconds between a running trial's heartbeats, and silence after which it counts as dead
def _seconds(var: str, default: float) -> float:
    """A positive number of seconds from ``$var`` (a bad value is reported when storage opens)."""
    text = os.environ.get(var)
    try:
        value = float(text) if text is not None and len(text) <= 20 else default
    except ValueError:
        value = float("nan")
    if not 1 <= value <= 86_400:
        _BAD_ENV[var] = text if text is not None else ""
        return default
    return value


_BAD_ENV: dict[str, str] = {}
HEARTBEAT_S = _seconds("MVSEARCH_HEARTBEAT_S", 30.0)
GRACE_S = _seconds("MVSEARCH_GRACE_S", 4 * HEARTBEAT_S)
#: retries of opening a fresh database whose schema another worker is creating at the same moment
SCHEMA_RETRIES = 5
#: a search name: what a space's ``name:`` may be (it becomes a file name and a study name)
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
SEP = "@"
#: the label of a search's validation study ("NAME@validate", mvsearch.search.validate): beside the tiers, never one
VALIDATE_LABEL = "validate"


@contextlib.contextmanager
def experimental_ok() -> Iterator[None]:
    """Silence Optuna's ExperimentalWarning for the heartbeat API (stable since Optuna 2.8/2.9)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=optuna.exceptions.ExperimentalWarning)
        yield


def check_name(name: str, option: str = "--study") -> str:
    """``name`` if it is a valid search name; StudyError otherwise (no path, no separator)."""
    if not isinstance(name, str) or not NAME_RE.match(name) or ".." in name:
        raise StudyError(f"{option}: {shorten(name)} is not a valid study name; use letters, digits, '_', '-' and '.' "
                         f"(at most 100, starting with a letter or digit), e.g. {option} mobile-run2")
    return name


def study_name(search: str, tier: str) -> str:
    """The Optuna study of one tier: ``mobile@1.05G``."""
    return f"{search}{SEP}{tier}"


def default_storage(name: str) -> str:
    """``sqlite:///studies/<name>.db`` (relative to the working directory)."""
    return f"sqlite:///{STUDIES_DIR / f'{name}.db'}"


def sqlite_path(storage: str) -> Path | None:
    """The file of a ``sqlite:///PATH`` URL (None for other databases)."""
    prefix = "sqlite:///"
    return Path(storage[len(prefix):].split("?")[0]) if storage.startswith(prefix) else None


_sqlite_path = sqlite_path


def is_study_file(path: Path) -> bool | None:
    """True: an SQLite file with Optuna's tables; False: an SQLite file without; None: not SQLite.

    Read-only: Optuna's storage creates its tables in any SQLite file it opens.
    """
    try:
        con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            found = con.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'studies'").fetchone()
        finally:
            con.close()
    except sqlite3.Error:
        return None
    return bool(found)


def check_writable_file(storage: str) -> None:
    """Refuse, before anything is written, a storage URL no run can use: not a URL, in memory, a
    directory or a device in the file's place, or an existing SQLite file that another program owns."""
    check_url(storage)
    path = _sqlite_path(storage)
    if path is None:
        return
    try:
        st = path.stat() if path.exists() else None
    except (OSError, ValueError) as exc:
        raise StudyError(f"--storage: cannot use {quote(path)} ({getattr(exc, 'strerror', None) or exc})") from None
    if st is None:  # a new file: the nearest folder that exists must be a folder
        for parent in path.parents:
            if parent.exists() or parent.is_symlink():
                if not parent.is_dir():
                    raise StudyError(f"--storage: cannot create the folder {quote(path.parent)}: {quote(parent)} is "
                                     f"not a folder; pass --storage sqlite:///PATH.db in a writable folder")
                break
        return
    if stat.S_ISDIR(st.st_mode):
        raise StudyError(f"--storage: {quote(path)} is a directory; pass --storage sqlite:///FILE.db")
    if not stat.S_ISREG(st.st_mode):
        raise StudyError(f"--storage: {quote(path)} is not a regular file; pass --storage sqlite:///FILE.db")
    if st.st_size == 0:
        return
    kind = is_study_file(path)
    if kind is None:
        raise StudyError(f"{str(path)!r} is not an SQLite database; pass --storage sqlite:///NEW.db")
    if kind is False:
        raise StudyError(f"{str(path)!r} is an SQLite database of another program (no Optuna tables); "
                         f"mvsearch will not add its tables to it: pass --storage sqlite:///NEW.db")


def _missing_driver(url: str, exc: BaseException) -> str:
    """Why a storage URL's database driver failed to import, and what to install or write instead."""
    cause = exc.__cause__ or exc.__context__
    module = getattr(cause, "name", None) or "its driver"
    scheme = url.partition("://")[0]
    if scheme == "postgresql":  # SQLAlchemy >= 2.1 means psycopg 3 by a bare postgresql://
        return (f"the PostgreSQL driver {module} is not installed; pip install 'psycopg[binary]', "
                f"or name an installed driver in the URL, e.g. postgresql+psycopg2://...")
    return f"the database driver {module} for {scheme}:// is not installed; install it or use sqlite:///FILE.db"


def shown_url(url: str) -> str:
    """``url`` for a message: the password hidden, control characters escaped, cut when very long."""
    try:
        from sqlalchemy.engine import make_url

        text = make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL at all: show it as given
        text = str(url)
    return text if len(text) <= 200 and text.isprintable() else shorten(text, 200)


def _innermost(exc: BaseException) -> BaseException:
    """The database driver's own error under SQLAlchemy's and Optuna's wrappers."""
    seen = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        inner = getattr(exc, "orig", None) or exc.__cause__ or exc.__context__
        if inner is None:
            break
        exc = inner
    return exc


def storage_problem(url: str, exc: BaseException) -> str:
    """What went wrong with ``--storage url``, in the user's terms, and what to do (one line)."""
    from sqlalchemy import exc as sa

    shown = shown_url(url)
    scheme = str(url).partition("://")[0] if "://" in str(url) else ""
    use = "use sqlite:///FILE.db, or postgresql://USER@HOST/DB for several machines"
    if isinstance(exc, ImportError):
        return f"cannot open storage {shown}: {_missing_driver(url, exc)}"
    if isinstance(exc, sa.NoSuchModuleError):
        return f"--storage {shown}: unknown database kind {shorten(scheme)}; {use}"
    if isinstance(exc, sa.ArgumentError) or not scheme:
        return f"--storage {shown}: not a database URL; {use}"
    inner = _innermost(exc)
    text = first_line(inner)
    low = text.lower()
    path = _sqlite_path(url)
    if path is not None:
        where = quote(path)
        if "readonly" in low or "read-only" in low:
            return f"the study database {where} is read-only; make it writable, or pass another --storage"
        if "unable to open" in low:
            return (f"cannot open the study database {where}: its folder does not exist or is not writable; "
                    f"pass --storage sqlite:///PATH.db in a writable folder")
        if "locked" in low or "busy" in low:
            return f"the study database {where} is locked by another program; try again when it is done"
        if "disk i/o" in low or "malformed" in low or "not a database" in low:
            return f"the study database {where} is damaged or not SQLite ({text}); restore it, or pass another --storage"
        if "disk is full" in low or "full" in low:
            return f"the disk holding {where} is full; free space, or pass another --storage"
    if isinstance(inner, ConnectionError) or any(w in low for w in ("connection", "could not connect", "timeout",
                                                                     "timed out", "resolve host", "name or service")):
        return (f"cannot connect to the database server of --storage {shown} ({shorten(text, 160)}); is the server "
                f"running, and are the host, port, user and password right?")
    if "password" in low or "authentication" in low or "permission denied" in low:
        return f"the database server refused --storage {shown} ({shorten(text, 160)}); check the user and password"
    return f"cannot use storage {shown} ({shorten(text, 160)}); check --storage"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers (dashboard, reports) never block the writer
    cur.execute("PRAGMA synchronous=NORMAL")  # ~10x faster commits; consistent after a crash
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _sqlite_reader_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # a reader leaves the file as it is: no journal-mode switch (the writer, `mvsearch run`, sets WAL)
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def check_url(url: str) -> None:
    """StudyError for a storage URL no command can use: not a URL, or an in-memory database."""
    if not isinstance(url, str) or "://" not in url:
        raise StudyError(f"--storage {shown_url(url)}: not a database URL; use sqlite:///FILE.db, or "
                         f"postgresql://USER@HOST/DB for several machines")
    if url.split("?")[0] in ("sqlite://", "sqlite:///", "sqlite:///:memory:"):
        raise StudyError(f"--storage {shown_url(url)} is an in-memory database: nothing would be kept; pass "
                         f"--storage sqlite:///FILE.db")


def open_storage(url: str, *, heartbeat: bool = True) -> optuna.storages.RDBStorage:
    """Optuna's RDB storage for ``url`` with heartbeat and one retry of a dead worker's trial.

    ``heartbeat=False`` opens it for reading: on SQLite the file's journal mode is left as it is.
    """
    check_url(url)
    for var, text in _BAD_ENV.items():
        raise StudyError(f"${var}: must be a number of seconds in 1..86400, got {shorten(text)}; fix or unset it")
    if url.startswith("sqlite:///"):
        folder = Path(url[len("sqlite:///"):]).expanduser().parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StudyError(f"cannot create the folder {quote(folder)} for storage {shown_url(url)}: "
                             f"{exc.strerror or exc}; pass --storage sqlite:///PATH.db in a writable folder") from None
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    kw: dict[str, Any] = {}
    if heartbeat:
        with experimental_ok():
            retry = RetryCallback(max_retry=1)
        kw = {"heartbeat_interval": max(1, int(HEARTBEAT_S)), "grace_period": max(2, int(GRACE_S)),
              _CALLBACK_KW: retry}
    engine_kwargs = {"connect_args": {"timeout": 30}} if url.startswith("sqlite:") else None
    for attempt in range(SCHEMA_RETRIES + 1):
        try:
            with experimental_ok():
                storage = optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, **kw)
            break
        except (IntegrityError, ProgrammingError) as exc:
            # workers started together on a fresh database race to create Optuna's tables; the
            # losers' CREATE fails once the winner's commits, and a retry finds the tables there
            if attempt == SCHEMA_RETRIES:
                raise StudyError(storage_problem(url, exc)) from None
            time.sleep(0.2 * (attempt + 1) + random.random() * 0.2)
        except Exception as exc:  # server down, bad URL, missing driver, unwritable file: one line
            raise StudyError(storage_problem(url, exc)) from None
    if url.startswith("sqlite:"):
        from sqlalchemy import event

        event.listen(storage.engine, "connect", _sqlite_pragmas if heartbeat else _sqlite_reader_pragmas)
        if heartbeat:  # a writer: its claim of a queued trial is atomic, as on PostgreSQL
            lock_first(storage.engine)
        storage.engine.dispose()  # reconnect with the pragmas
    return storage


def weights_dir(storage: str, name: str) -> Path:
    """``studies/<search>-weights`` beside a SQLite database (else under ./studies)."""
    base = Path(storage[len("sqlite:///"):]).parent if storage.startswith("sqlite:///") else STUDIES_DIR
    return base / f"{name}-weights"


def create_whole(path: Path, init: Callable[[optuna.storages.RDBStorage], None]) -> None:
    """Make a new SQLite study file whole: ``init`` creates its studies in a hidden file beside it,
    which is then linked into place (never over a file another worker made first). Ctrl-C, a
    crash or an error part-way leaves no database with tables but no study."""
    folder = path.parent
    made = [p for p in (folder, *folder.parents) if not p.exists()]
    tmp = folder / f".{path.name}.{secrets.token_hex(6)}.part"
    try:
        storage = open_storage(f"sqlite:///{tmp}")
        try:
            init(storage)
        finally:
            storage.engine.dispose()  # the last connection closes: the WAL is folded into the file
        try:
            os.link(tmp, path)
        except FileExistsError:  # another worker made it first: use theirs
            pass
        except OSError:  # a file system without hard links
            if not path.exists():
                os.replace(tmp, path)
    finally:
        for p in (tmp, tmp.with_name(tmp.name + "-wal"), tmp.with_name(tmp.name + "-shm"),
                  tmp.with_name(tmp.name + "-journal")):
            with contextlib.suppress(OSError):
                p.unlink()
        if not path.exists():
            for d in made:  # only folders this run created, and only while still empty
                with contextlib.suppress(OSError):
                    d.rmdir()


# ---------------------------------------------------------------------- reading a search
@dataclass
class SearchStudies:
    """One search: its Optuna studies by tier label, read as one."""

    name: str  # the search's name ("mobile")
    url: str  # storage URL
    studies: dict[str, optuna.Study]  # tier label ("1.05G", "presets"; "" for a schema-1 study) -> study
    validation: optuna.Study | None = None  # "NAME@validate": the winners retrained longer (mvsearch validate)

    @property
    def user_attrs(self) -> dict[str, Any]:
        """The search's attributes (those of its first study: every study of a search holds the same)."""
        for s in self.studies.values():
            return dict(s.user_attrs)
        return {}

    @property
    def info(self) -> StudyRecord:
        return StudyRecord.from_attrs(self.user_attrs)

    def records(self, *, include_rejected: bool = False) -> list[TrialRecord]:
        """Every trial of every study of the search (budget rejections left out unless asked for)."""
        out: list[TrialRecord] = []
        for label, s in self.studies.items():
            out += records_of(s.get_trials(deepcopy=False), s.study_name, label or None)
        return out if include_rejected else [r for r in out if not r.over_budget]

    def find(self, ref: str) -> TrialRecord:
        """The trial a user named: ``1.05G/7``, or ``7`` when only one study has a trial 7."""
        recs = self.records(include_rejected=True)
        hits = [r for r in recs if r.ref == ref]
        if not hits and str(ref).isdigit():
            hits = [r for r in recs if r.number == int(ref)]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise StudyError(f"--trial {ref}: several tiers have a trial {ref} ({', '.join(r.ref for r in hits)}); "
                             f"name one, e.g. --trial {hits[0].ref}")
        last = max((r.number for r in recs), default=None)
        have = f"its trials run up to {last}" if last is not None else "it has no trials"
        raise StudyError(f"--trial {ref}: study {self.name!r} has no trial {ref} ({have}); see `mvsearch trials`")


def _check_study_file(path: Path) -> None:
    if path.is_dir():
        raise StudyError(f"--storage: {quote(path)} is a directory; pass --storage sqlite:///FILE.db")
    kind = is_study_file(path)
    if kind is None:
        raise StudyError(f"{str(path)!r} is not an SQLite database; check --storage")
    if not kind:
        raise StudyError(f"{str(path)!r} holds no Optuna study (no 'studies' table); check --study/--storage, "
                         f"or run `mvsearch run` first")


def _groups(names: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for n in names:
        out.setdefault(n.split(SEP, 1)[0], []).append(n)
    return out


def resolve(name: str | None, storage: str | None) -> tuple[str, str]:
    """Turn the CLI's ``--study``/``--storage`` into an existing (search name, storage URL)."""
    if name is not None:
        check_name(name)
    if storage is None:
        if name is None:
            dbs = sorted(STUDIES_DIR.glob("*.db")) if STUDIES_DIR.is_dir() else []
            if not dbs:
                raise StudyError(f"no study found in {STUDIES_DIR}/; run `mvsearch run --space mobile` first, "
                                 f"or pass --study NAME / --storage URL")
            if len(dbs) > 1:
                raise StudyError(f"several studies in {STUDIES_DIR}/ ({', '.join(p.stem for p in dbs)}); "
                                 f"pass --study NAME")
            storage = f"sqlite:///{dbs[0]}"
        else:
            storage = default_storage(name)
    check_url(storage)
    path = _sqlite_path(storage)
    try:
        exists = path is None or path.exists()
    except (OSError, ValueError) as exc:  # a NUL in the path, a name too long
        raise StudyError(f"--storage: cannot use {quote(path)} ({getattr(exc, 'strerror', None) or exc})") from None
    if not exists:
        raise StudyError(f"no study database at {quote(path)}; check --study/--storage, or run `mvsearch run` first")
    if path is not None:
        _check_study_file(path)
    try:
        names = optuna.get_all_study_names(storage=open_storage(storage, heartbeat=False))
    except StudyError:
        raise
    except Exception as exc:  # sqlalchemy / driver errors: one line, the project's own type
        raise StudyError(storage_problem(storage, exc)) from None
    groups = _groups(names)
    if name is None:
        if len(groups) != 1:
            raise StudyError(f"storage {shown_url(storage)} holds {len(groups)} studies "
                             f"({printable(', '.join(groups))[:300] or 'none'}); pass --study NAME")
        name = next(iter(groups))
    elif name not in groups:
        hint = difflib.get_close_matches(name, list(groups), n=1)
        did = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise StudyError(f"no study named {name!r} in {shown_url(storage)}{did}; it holds: "
                         f"{printable(', '.join(groups))[:300] or 'none'}")
    return name, storage


def open_search(name: str | None, storage: str | None) -> SearchStudies:
    """Load an existing search (see :func:`resolve`): all its studies, read-only use."""
    name, url = resolve(name, storage)
    rdb = open_storage(url, heartbeat=False)
    studies: dict[str, optuna.Study] = {}
    validation = None
    for full in sorted(optuna.get_all_study_names(storage=rdb)):
        base, _, label = full.partition(SEP)
        if base != name:
            continue
        study = optuna.load_study(study_name=full, storage=rdb)
        if label == VALIDATE_LABEL and StudyRecord.from_attrs(study.user_attrs).tier == VALIDATE_LABEL:
            validation = study
        else:
            studies[label] = study
    return SearchStudies(name, url, studies, validation)


__all__ = ["SearchStudies", "open_search", "create_whole", "resolve", "open_storage", "default_storage", "weights_dir",
           "check_name", "check_writable_file", "check_url", "sqlite_path", "storage_problem", "shown_url", "study_name", "RetryCallback", "experimental_ok", "VALIDATE_LABEL", "STUDIES_DIR", "HEARTBEAT_S", "GRACE_S"]
