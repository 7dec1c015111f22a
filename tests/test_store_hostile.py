"""Hostile mail and the store: what PostgreSQL refuses and SQLite takes (NUL bytes, over-long
Message-IDs, addresses and Content-Types) is stored on both, sanitised, with the raw mail kept
byte-exact; errors are classified by SQLSTATE / SQLite result code, never by message text; one
failing mail never stops the queue."""
from __future__ import annotations

import sqlite3
import threading

import psycopg
import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.exc import DBAPIError

from gateway.intake import Envelope, accept, accept_many
from gateway.processing import process_pending
from gateway.store import db
from gateway.store.models import Article, InboundMail, Ticket
from tests.mails import make_mail


@pytest.fixture(params=["sqlite", "postgresql"])
def any_app(request, make_app):
    if request.param == "sqlite":
        return make_app()
    return make_app(database=request.getfixturevalue("postgres_url"))


def hostile_mails() -> dict[str, bytes]:
    long_local = "a" * 1200
    return {
        "nul_body_timeout": make_mail(
            subject="Undelivered Mail Returned to Sender", frm="MAILER-DAEMON@mx.test",
            body="Connection timeout\x00 while talking to mx.customer.test: lock timeout"),
        "nul_subject": make_mail(subject="Hello\x00World"),
        "nul_in_message_id": make_mail(subject="nul msgid", msgid="abc\x00def@customer.test"),
        "long_message_id": make_mail(subject="long msgid", msgid="x" * 1500 + "@c.test"),
        "nul_in_from": make_mail(subject="nul from", frm="Al\x00ice <al\x00ice@customer.test>"),
        "long_address": make_mail(subject="long address",
                                  frm=f"Someone <{long_local}@customer.test>"),
        "long_content_type": make_mail(subject="long content type").replace(
            b"Content-Type: text/plain; charset=utf-8",
            b"Content-Type: text/" + b"x" * 190 + b"; charset=utf-8"),
        "nul_in_references": make_mail(subject="Re: nothing",
                                       references=["ref\x00one@c.test"]),
    }


def test_hostile_mails_are_stored_on_both_databases(any_app):
    app = any_app
    mails = hostile_mails()
    ids = {name: accept(app.store, raw, None).inbound_id for name, raw in mails.items()}
    long_sender = "b" * 1200 + "@customer.test"   # SMTP MAIL FROM / pipe --sender
    mails["long_envelope"] = make_mail(subject="long envelope sender")
    ids["long_envelope"] = accept(app.store, mails["long_envelope"], Envelope(
        mail_from=long_sender, rcpt_to=["support@example.com\x00"])).inbound_id
    good = accept(app.store, make_mail(subject="good mail behind them")).inbound_id
    outcomes = {o.inbound_id: o for o in process_pending(app.store, app.pipeline)}
    assert {name: outcomes[i].status for name, i in ids.items()} == \
        {name: "done" for name in mails}, {i: o.error for i, o in outcomes.items()}
    assert outcomes[good].status == "done"
    with app.store.read_session() as s:
        for name, inbound_id in ids.items():
            row = s.get(InboundMail, inbound_id)
            assert row.raw == mails[name], f"{name}: raw mail not kept byte-exact"
            article = s.execute(select(Article).where(
                Article.inbound_id == inbound_id)).scalar_one()
            for value in (article.body, article.subject, article.from_addr,
                          article.message_id or "", article.content_type, row.message_id or ""):
                assert "\x00" not in value
        nul = s.execute(select(Article).where(
            Article.inbound_id == ids["nul_body_timeout"])).scalar_one()
        assert "Connection timeout\ufffd while" in nul.body
        assert s.get(InboundMail, ids["nul_in_message_id"]).message_id == \
            "abc\ufffddef@customer.test"
        assert len(s.get(InboundMail, ids["long_message_id"]).message_id) <= 998
        assert s.get(InboundMail, ids["long_envelope"]).envelope_from == long_sender[:998]


def test_lookups_with_a_nul_find_the_sanitised_value(any_app):
    """A query parameter gets the same treatment as a stored value: PostgreSQL never sees the
    NUL, and both databases find the row stored under the sanitised value."""
    app = any_app
    raw = make_mail(subject="nul lookup", msgid="lookup\x00id@customer.test")
    inbound_id = accept(app.store, raw).inbound_id
    with app.store.read_session() as s:
        found = s.execute(select(InboundMail.id).where(
            InboundMail.message_id == "lookup\x00id@customer.test")).scalar()
    assert found == inbound_id


def test_long_utf8_message_id_fits_the_index(any_app):
    """990 CJK characters: within VARCHAR(998), but over PostgreSQL's btree entry limit."""
    app = any_app
    raw = make_mail(subject="long utf8 msgid").replace(
        b"Subject:", "Message-ID: <{}@c.test>\r\nSubject:".format("\u6f22" * 990).encode(), 1)
    raw = raw.replace(b"Message-ID: <m", b"X-Old-Id: <m", 1)
    inbound_id = accept(app.store, raw).inbound_id
    with app.store.read_session() as s:
        row = s.get(InboundMail, inbound_id)
        assert row.raw == raw
        assert len(row.message_id.encode()) <= 2000


def test_group_commit_stores_hostile_mails(any_app):
    app = any_app
    mails = list(hostile_mails().values())
    results = accept_many(app.store, [(raw, None) for raw in mails])
    assert len({r.inbound_id for r in results}) == len(mails)
    with app.store.read_session() as s:
        assert [s.get(InboundMail, r.inbound_id).raw for r in results] == mails


def test_nul_in_message_id_is_accepted_by_the_pipe(conf_dir, postgres_url):
    from tests.test_cli import tg

    raw = make_mail(subject="pipe nul", msgid="pipe\x00nul@customer.test")
    r = tg(conf_dir, postgres_url, "ingest", stdin=raw)
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().split()[0] == "new_ticket"


# ---- classification ---------------------------------------------------------------------------
def test_mail_quoting_errors_are_not_transient(postgres_url, tmp_path):
    """Errors whose text says "timeout" or "locked" but whose code says "this statement"."""
    pg = create_engine(postgres_url)
    with pytest.raises(DBAPIError) as pg_data:
        with pg.connect() as conn:
            conn.execute(text("SELECT CAST(:v AS integer)"), {"v": "database is locked: timeout"})
    with pytest.raises(DBAPIError) as pg_limit:   # OperationalError, SQLSTATE 54000
        with pg.begin() as conn:
            conn.execute(text("CREATE TEMP TABLE t (v varchar(2000))"))
            conn.execute(text("CREATE INDEX ON t (v)"))
            conn.execute(text("INSERT INTO t VALUES (:v)"),
                         {"v": "timeout " + "".join(chr(0x4e00 + i) for i in range(1990))})
    pg.dispose()
    lite = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with pytest.raises(DBAPIError) as lite_error:   # sqlite3.OperationalError, SQLITE_ERROR
        with lite.connect() as conn:
            conn.execute(text("SELECT * FROM timeout_busy_locked"))
    for info in (pg_data, pg_limit, lite_error):
        assert not db.is_transient(info.value), info.value
        assert not db.is_unavailable(info.value)
    assert type(pg_limit.value.orig).__mro__[1] is psycopg.errors.OperationalError \
        or isinstance(pg_limit.value.orig, psycopg.OperationalError)


def test_lock_busy_and_lost_connections_are_transient(postgres_url, tmp_path):
    pg = create_engine(postgres_url)
    with pg.begin() as conn:
        conn.execute(text("CREATE TABLE held (id int)"))
    holder = pg.connect()
    holder.begin()
    holder.execute(text("LOCK TABLE held IN ACCESS EXCLUSIVE MODE"))
    try:
        with pytest.raises(DBAPIError) as locked:
            with pg.connect() as conn:
                conn.execute(text("LOCK TABLE held IN ACCESS EXCLUSIVE MODE NOWAIT"))
    finally:
        holder.rollback()
        holder.close()
    assert locked.value.orig.sqlstate == "55P03"
    assert db.is_transient(locked.value) and not db.is_unavailable(locked.value)
    pg.dispose()

    refused = create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
    with pytest.raises(DBAPIError) as gone:
        refused.connect()
    assert db.is_transient(gone.value) and db.is_unavailable(gone.value)

    path = tmp_path / "busy.db"
    keeper = sqlite3.connect(path, isolation_level=None)
    keeper.execute("CREATE TABLE t (v)")
    keeper.execute("BEGIN EXCLUSIVE")
    try:
        lite = create_engine(f"sqlite:///{path}", connect_args={"timeout": 0.05})
        with pytest.raises(DBAPIError) as busy:
            with lite.begin() as conn:
                conn.execute(text("INSERT INTO t VALUES (1)"))
    finally:
        keeper.execute("ROLLBACK")
        keeper.close()
    assert busy.value.orig.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY
    # SQLite locks the whole database: the next mail would wait just the same
    assert db.is_transient(busy.value) and db.is_unavailable(busy.value)


def test_describe_error_is_one_line_without_sql(postgres_url):
    pg = create_engine(postgres_url)
    with pytest.raises(DBAPIError) as info:
        with pg.connect() as conn:
            conn.execute(text("SELECT CAST(:v AS integer)"), {"v": "secret body\nline two"})
    pg.dispose()
    line = db.describe_error(info.value)
    assert "\n" not in line and "SELECT" not in line and "parameters" not in line
    assert line.startswith("InvalidTextRepresentation 22P02: ")


# ---- the queue goes on ------------------------------------------------------------------------
@pytest.mark.parametrize("batch", [1, 5])
def test_a_mail_with_a_transient_error_does_not_stop_the_queue(make_app, postgres_url, batch):
    """A real lock conflict (55P03) in one mail's transaction: that mail waits for the next run,
    the mails behind it are processed now."""
    from gateway.parts import AfterApply

    app = make_app(database=postgres_url)
    with app.store.engine.begin() as conn:
        conn.execute(text("CREATE TABLE contended (id int)"))
    holder = app.store.engine.connect()
    holder.begin()
    holder.execute(text("LOCK TABLE contended IN ACCESS EXCLUSIVE MODE"))

    def hook(pipeline, session, decision, ticket, article):
        if "CONTENDED" in decision.mail.subject:
            session.execute(text("LOCK TABLE contended IN ACCESS EXCLUSIVE MODE NOWAIT"))

    app.pipeline.after_apply = (*app.pipeline.after_apply, AfterApply("contended", hook))
    try:
        ids = [accept(app.store, make_mail(subject=("CONTENDED " if i == 0 else "") + f"m{i}"))
               .inbound_id for i in range(5)]
        outs = {o.inbound_id: o.status
                for o in process_pending(app.store, app.pipeline, batch=batch)}
    finally:
        holder.rollback()
        holder.close()
    assert outs == {ids[0]: "transient", **{i: "done" for i in ids[1:]}}
    with app.store.read_session() as s:
        row = s.get(InboundMail, ids[0])
        assert row.status == "pending" and row.attempts == 0
    outs = process_pending(app.store, app.pipeline)
    assert [(o.inbound_id, o.status) for o in outs] == [(ids[0], "done")]
