"""Database engine and sessions: SQLite in WAL mode by default, PostgreSQL when outgrown.

``open_store(url)`` creates the engine, applies Alembic migrations and returns a Store whose
``session()`` opens one transaction. SQLite write transactions start with BEGIN IMMEDIATE so
concurrent writers (several ``ticketgate ingest`` processes) queue on the lock instead of
failing half-way through a transaction.
"""
from __future__ import annotations

import os
import re
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import sessionmaker

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

        return engine
    return create_engine(url, pool_pre_ping=True)


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


_TRANSIENT_WORDS = ("database is locked", "disk", "unable to open", "could not connect",
                    "connection refused", "server closed", "terminating connection",
                    "no space", "readonly", "read-only", "i/o error", "timeout", "busy")


def is_transient(exc: BaseException) -> bool:
    """Is this our own trouble, worth a retry later (451 / exit 75), rather than a bug?"""
    if isinstance(exc, OperationalError):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, OSError):
        return True
    text = str(exc).lower()
    return any(w in text for w in _TRANSIENT_WORDS)
