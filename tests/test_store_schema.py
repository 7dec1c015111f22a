"""The store's schema: the Alembic migrations build exactly the tables the models describe (on
SQLite and PostgreSQL), Alembic's env sees every table, and the migration files form one chain
whose file names follow it."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import alembic.command
import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config as AlembicConfig
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from gateway.store.db import MIGRATIONS, head_revision, open_store
from gateway.store.models import Base
from tests.conftest import ROOT

MIGRATION_FILE = re.compile(r"^(\d{4})_[a-z0-9_]+\.py$")


def alembic_config(url: str | None = None) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if url:
        cfg.set_main_option("sqlalchemy.url", url)
    return cfg


def migration_files() -> list[str]:
    return sorted(p.name for p in (MIGRATIONS / "versions").glob("*.py")
                  if not p.name.startswith("__"))


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'schema.db'}"
    return request.getfixturevalue("postgres_url")


def test_migrations_build_exactly_the_models(empty_database):
    """Upgrade an empty database, then autogenerate (types and server defaults included)
    proposes nothing: no table to add or drop, no column, index or constraint that differs."""
    store = open_store(empty_database)
    try:
        with store.engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "compare_server_default": True})
            differences = compare_metadata(context, Base.metadata)
            tables = set(inspect(conn).get_table_names()) - {"alembic_version"}
    finally:
        store.close()
    assert differences == []
    assert set(Base.metadata.tables) <= tables, "tables the migrations never create"
    assert tables == set(Base.metadata.tables)
    assert {"outbound_mail", "escalation_event", "ticket", "inbound_mail"} <= tables


def test_alembic_env_alone_sees_every_table(tmp_path):
    """`alembic check` in a fresh interpreter (nothing else imported first, as when an admin or
    developer runs Alembic) finds the migrated database up to date: env.py's metadata holds
    every table, so autogenerate never proposes dropping one."""
    url = f"sqlite:///{tmp_path / 'check.db'}"
    open_store(url).close()
    script = ("import sys; from alembic import command; from alembic.config import Config\n"
              "cfg = Config(); cfg.set_main_option('script_location', sys.argv[1])\n"
              "cfg.set_main_option('sqlalchemy.url', sys.argv[2]); command.check(cfg)\n")
    result = subprocess.run([sys.executable, "-c", script, str(MIGRATIONS), url], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]


def test_migration_chain_is_linear_and_files_are_named_in_its_order():
    scripts = ScriptDirectory.from_config(alembic_config())
    assert len(scripts.get_heads()) == 1
    assert len(scripts.get_bases()) == 1
    chain = list(reversed(list(scripts.walk_revisions())))  # the base first
    for script in chain:
        assert not script.is_merge_point and not script.is_branch_point, script.revision
    names = [Path(script.path).name for script in chain]
    assert sorted(names) == migration_files(), "a migration file outside the chain"
    for name in names:
        assert MIGRATION_FILE.match(name), f"{name}: want NNNN_what.py"
    numbers = [int(MIGRATION_FILE.match(name).group(1)) for name in names]
    assert numbers == list(range(1, len(chain) + 1)), f"file names not in chain order: {names}"
    # the fast path of open_store reads the head from the files without Alembic: same answer
    assert head_revision() == scripts.get_current_head() == chain[-1].revision


def test_open_store_skips_alembic_when_the_schema_is_current(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'fast.db'}"
    open_store(url).close()
    runs = []
    monkeypatch.setattr(alembic.command, "upgrade", lambda cfg, rev: runs.append(rev))
    store = open_store(url)
    assert runs == []
    head = ScriptDirectory.from_config(alembic_config()).get_revision(head_revision())
    with store.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = ?",
                             (head.down_revision,))
    store.close()
    open_store(url).close()
    assert runs == ["head"]
