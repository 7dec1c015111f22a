"""Database engine and sessions: SQLite in WAL mode by default, PostgreSQL when outgrown.

``open_store(url)`` creates the engine, applies Alembic migrations and returns a Store whose
``session()`` opens one transaction. SQLite write transactions start with BEGIN IMMEDIATE so
concurrent writers (several ``ticketgate ingest`` processes) queue on the lock instead of
failing half-way through a transaction.
"""
from __future__ import annotations

import os
import re
import sys
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import String, create_engine, event
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = int(os.environ.get("TICKETGATE_SQLITE_BUSY_TIMEOUT_MS", "30000"))


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (below)
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes in WAL
            cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):
            # Writers take the lock up front (no deadlock on upgrade); readers don't block.
            readonly = conn.get_execution_options().get("ticketgate_readonly")
            conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

    else:
        engine = create_engine(url, pool_pre_ping=True)
    event.listen(engine, "before_cursor_execute", _clean_parameters, retval=True)
    return engine


# ---- values a database refuses ----------------------------------------------------------------
# PostgreSQL refuses what SQLite takes: a NUL character in any text, a string longer than its
# VARCHAR(n), and an index entry over about 2,700 bytes. Mail carries all of these, so every
# text value is made storable on both, the same way: NUL becomes U+FFFD, a lone surrogate
# U+FFFD, a value longer than its column is cut, and an indexed value is cut to
# INDEXED_MAX_BYTES of UTF-8. The raw mail (inbound_mail.raw, bytes) is never touched.
INDEXED_MAX_BYTES = 2000
REPLACEMENT = "\ufffd"
_SURROGATE = re.compile("[\ud800-\udfff]")   # in a str, every surrogate code point is lone


def clean_text(value: str, length: int | None = None, max_bytes: int | None = None) -> str:
    """``value`` as both databases store it (see above); the same object when it needs no
    change."""
    if "\x00" in value:
        value = value.replace("\x00", REPLACEMENT)
    if length is not None and len(value) > length:
        value = value[:length]
    if value.isascii():   # the common case: no encoding needed to check the rest
        return value[:max_bytes] if max_bytes is not None and len(value) > max_bytes else value
    try:
        encoded = value.encode("utf-8")
    except UnicodeEncodeError:   # lone surrogates (from surrogateescape decoding)
        value = _SURROGATE.sub(REPLACEMENT, value)
        encoded = value.encode("utf-8")
    if max_bytes is not None and len(encoded) > max_bytes:
        value = encoded[:max_bytes].decode("utf-8", "ignore")
    return value


_TEXT_COLUMNS: dict = {}


def _text_columns(mapper) -> list[tuple[str, int | None, int | None]]:
    """(attribute, length, max_bytes) for each text column of a mapper. JSON columns need
    nothing: their text escapes NUL and lone surrogates, which PostgreSQL's json takes."""
    columns = _TEXT_COLUMNS.get(mapper)
    if columns is None:
        columns = []
        for attr in mapper.column_attrs:
            column = attr.columns[0]
            if isinstance(column.type, String):
                indexed = bool(column.index or column.unique or column.primary_key)
                columns.append((attr.key, column.type.length,
                                INDEXED_MAX_BYTES if indexed else None))
        _TEXT_COLUMNS[mapper] = columns
    return columns


def _clean_flush(session: Session, _context, _instances) -> None:
    """Before every flush: make each new or changed text value storable (see above)."""
    for obj in (*session.new, *session.dirty):
        state = sa_inspect(obj)
        for key, length, max_bytes in _text_columns(state.mapper):
            value = state.dict.get(key)   # only loaded values: never load a deferred column
            if isinstance(value, str):
                cleaned = clean_text(value, length, max_bytes)
                if cleaned is not value:
                    setattr(obj, key, cleaned)


def _clean_parameter(value):
    return clean_text(value) if isinstance(value, str) else value


def _clean_parameters(_conn, _cursor, statement, parameters, _context, executemany):
    """Lookups get the same treatment as stored values: a Message-ID with a NUL in a
    References header finds the article stored with U+FFFD, and PostgreSQL never sees a NUL."""
    def clean(params):
        if isinstance(params, dict):
            if any(isinstance(v, str) and "\x00" in v for v in params.values()):
                return {k: _clean_parameter(v) for k, v in params.items()}
            return params
        if isinstance(params, (list, tuple)) and \
                any(isinstance(v, str) and "\x00" in v for v in params):
            return type(params)(_clean_parameter(v) for v in params)
        return params

    if executemany and isinstance(parameters, (list, tuple)):
        parameters = [clean(p) for p in parameters]
    else:
        parameters = clean(parameters)
    return statement, parameters


_REVISION = re.compile(r"^(down_)?revision\s*=\s*['\"]?([\w]+|None)['\"]?", re.MULTILINE)


def head_revision() -> str | None:
    """The newest revision, read from the migration files (no Alembic import needed). The
    chain is found from ``revision`` / ``down_revision``, not from the file names."""
    revisions, parents = set(), set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        if path.name.startswith("__"):  # the package's __init__.py, as Alembic skips it
            continue
        for down, value in _REVISION.findall(path.read_text(encoding="utf-8")):
            (parents if down else revisions).add(value)
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def _at_head(engine: Engine) -> bool:
    head = head_revision()
    try:
        with engine.connect() as conn:
            conn.execution_options(ticketgate_readonly=True)
            current = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    except Exception:  # noqa: BLE001 - no table yet: a new database
        return False
    return head is not None and current == head


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision (safe to call on every start; a
    database already at the newest revision costs one query, not an Alembic run)."""
    if _at_head(engine):
        return
    # start-up time: a pipe ingest on a current schema never loads Alembic
    from alembic import command
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


class Store:
    def __init__(self, engine: Engine):
        self.engine = engine
        self._factory = sessionmaker(engine, expire_on_commit=False)
        event.listen(self._factory, "before_flush", _clean_flush)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self):
        """One transaction: committed on success, rolled back on any exception."""
        with self._factory() as session:
            with session.begin():
                yield session

    @contextmanager
    def read_session(self):
        """A transaction that only reads: on SQLite it does not take the write lock, so it
        never waits for (or holds up) the writers."""
        with self._factory() as session:
            session.connection(execution_options={"ticketgate_readonly": True})
            try:
                yield session
            finally:
                session.rollback()

    def close(self) -> None:
        self.engine.dispose()


def open_store(url: str, *, run_migrations: bool = True) -> Store:
    engine = make_engine(url)
    if run_migrations:
        migrate(engine)
    return Store(engine)


# What says "the database is busy or away, try again" rather than "this mail cannot be stored":
# decided by the driver's error code, never by the message text (which can quote the mail).
# PostgreSQL SQLSTATEs: serialization failure, deadlock, lock not available, operator
# intervention (admin/crash shutdown, cannot connect now), and the classes connection
# exception (08), insufficient resources (53: disk full, out of memory, too many
# connections) and system error (58: I/O error).
_PG_TRANSIENT_CODES = frozenset({"40001", "40P01", "40003", "55P03", "57P01", "57P02",
                                 "57P03", "57P04", "57P05"})
_PG_TRANSIENT_CLASSES = ("08", "53", "58")
# The PostgreSQL codes for which the next mail would fail just the same: stop draining.
_PG_UNAVAILABLE_CLASSES = ("08", "53", "57P", "58")
# SQLite primary result codes: busy/locked (another writer past the busy timeout), out of
# memory, read-only database, disk I/O error, disk full, cannot open, lock protocol.
# SQLite locks the whole database: busy for one mail is busy for the next, so every transient
# code also means "stop draining".
_SQLITE_TRANSIENT_CODES = frozenset({5, 6, 7, 8, 10, 13, 14, 15})


def _driver_error(exc: BaseException) -> BaseException:
    """The DB-API driver's own exception under SQLAlchemy's wrapper (or exc itself)."""
    return exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc


def _classify(exc: BaseException) -> tuple[bool, bool]:
    """(transient, unavailable) for one exception, by driver error code only."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True, True
    orig = _driver_error(exc)
    module = type(orig).__module__ or ""
    if module.startswith("psycopg"):
        psycopg = sys.modules["psycopg"]  # loaded: the error came from it
        state = getattr(orig, "sqlstate", None)
        if state is None:
            # raised by the client library itself: only a lost or refused connection counts
            lost = isinstance(orig, (psycopg.OperationalError, psycopg.InterfaceError))
            return lost, lost
        return (state in _PG_TRANSIENT_CODES or state.startswith(_PG_TRANSIENT_CLASSES),
                state.startswith(_PG_UNAVAILABLE_CLASSES))
    if module.startswith("sqlite3"):
        code = getattr(orig, "sqlite_errorcode", None)
        if code is None:
            return False, False
        primary = code & 0xFF
        transient = primary in _SQLITE_TRANSIENT_CODES
        return transient, transient
    return False, False


def is_transient(exc: BaseException) -> bool:
    """Is this the store's trouble, worth a retry later (451 / exit 75 / processing again
    without counting an attempt), rather than something wrong with this mail or a bug?
    Decided by exception type and SQLSTATE / SQLite result code, never by the message."""
    return _classify(exc)[0]


def is_unavailable(exc: BaseException) -> bool:
    """Is the store away for every mail (connection lost, disk full, read-only, shut down,
    SQLite's database-wide lock busy), so draining the queue further is pointless until later?
    A PostgreSQL lock conflict or deadlock concerns one transaction and is not."""
    return _classify(exc)[1]


def describe_error(exc: BaseException, limit: int = 300) -> str:
    """One line naming the cause, for an MTA's log or an admin: the driver's error class and
    the first line of its message, without SQLAlchemy's SQL statement and parameters (which
    would quote the mail)."""
    orig = _driver_error(exc)
    text = str(orig).strip().splitlines()[0] if str(orig).strip() else ""
    code = getattr(orig, "sqlstate", None) or getattr(orig, "sqlite_errorname", None)
    name = type(orig).__name__ + (f" {code}" if code else "")
    line = f"{name}: {text}" if text else name
    line = "".join(ch if ch.isprintable() else " " for ch in line)
    return line if len(line) <= limit else line[:limit - 3] + "..."
