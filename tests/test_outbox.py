"""The durable outbound queue: delivery into a real aiosmtpd sink, retries while the smarthost
is away (and nothing twice), 5xx failures recorded on the ticket, giving up after the
configured time, leases, header injection, the ``outbox`` command, and migrations == models."""
from __future__ import annotations

import email
import threading
from datetime import datetime, timedelta, timezone
from email import policy

import pytest
from sqlalchemy import select

from gateway.store.models import Ticket
from notifier import message
from notifier.outbound import delivery, queue
from gateway.store.models import OutboundMail
from tests.conftest import free_port
from tests.mails import make_mail
from tests.test_autoresponse import ingest_into, use_sink


def rows(app, kind=None):
    with app.store.session() as s:
        query = select(OutboundMail).order_by(OutboundMail.id)
        if kind:
            query = query.where(OutboundMail.kind == kind)
        return list(s.execute(query).scalars())


def history(app, ticket_id):
    with app.store.session() as s:
        return [(h.type, h.message) for h in s.get(Ticket, ticket_id).history]


def later(minutes: float) -> datetime:
    return datetime.now(timezone.utc) + timedelta(minutes=minutes)


def test_smarthost_down_then_back_delivers_each_mail_once(conf_dir, make_app):
    from aiosmtpd.controller import Controller

    from tests.conftest import SinkHandler

    port = free_port()
    path = conf_dir / "ticketgate.yaml"
    path.write_text(path.read_text() + f"\noutbound: {{host: 127.0.0.1, port: {port}, "
                                       f"timeout: 5}}\n")
    app = make_app()
    for i in range(3):
        ingest_into(app, make_mail(subject=f"Cannot log in {i}", frm=f"u{i}@customer.test"))
    results = delivery.drain(app.store, app.config)
    assert results and {r.status for r in results} == {"retry"}
    assert all(r.status == "pending" and r.attempts == 1 and r.last_error for r in rows(app))
    # not due yet: a second run right away does nothing (backoff)
    assert delivery.deliver_due(app.store, app.config) == []
    # still down at the first retry: the backoff grows
    delivery.drain(app.store, app.config, now=later(2))
    first = rows(app)
    assert all(r.attempts == 2 for r in first)
    assert all(r.next_attempt - later(2) > timedelta(seconds=90) for r in first)
    handler = SinkHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        results = delivery.drain(app.store, app.config, now=later(10))
        assert [r.status for r in results] == ["sent"] * len(first)
        assert delivery.drain(app.store, app.config, now=later(60)) == []
    finally:
        controller.stop()
    assert sorted(e.rcpt_tos[0] for e in handler.envelopes) == \
        sorted(r.rcpt_to[0] for r in first)
    ids = [email.message_from_bytes(e.content)["Message-ID"] for e in handler.envelopes]
    assert len(ids) == len(set(ids))
    assert all(r.status == "sent" and r.sent_at for r in rows(app))


def test_5xx_fails_at_once_and_is_recorded_on_the_ticket(conf_dir, make_app, smtp_sink):
    controller, handler = smtp_sink
    use_sink(conf_dir, controller)
    app = make_app()
    out = ingest_into(app, make_mail(subject="Cannot log in"))
    handler.reply = "550 5.1.1 no such user"
    results = delivery.drain(app.store, app.config)
    assert {r.status for r in results} == {"failed"}
    [row] = [r for r in rows(app) if r.kind == "auto_reply"]
    assert row.status == "failed" and "550" in row.last_error and row.attempts == 1
    with app.store.session() as s:
        t = s.execute(select(Ticket).where(Ticket.number == out.ticket_number)).scalar_one()
        tid = t.id
    assert any(kind == "SendFailed" and "permanent" in text and "550" in text
               for kind, text in history(app, tid))
    # an admin can put it back; it goes out once the server accepts
    handler.reply = "250 OK"
    assert queue.retry(app.store, row.id)
    assert [r.status for r in delivery.drain(app.store, app.config)
            if r.outbound_id == row.id] == ["sent"]


def test_4xx_retries_then_gives_up_after_configured_time(conf_dir, make_app, smtp_sink):
    controller, handler = smtp_sink
    use_sink(conf_dir, controller, ", give_up_after: 2h")
    app = make_app()
    out = ingest_into(app, make_mail(subject="Cannot log in"))
    handler.reply = "451 4.3.0 try later"
    assert {r.status for r in delivery.drain(app.store, app.config)} == {"retry"}
    assert {r.status for r in delivery.drain(app.store, app.config, now=later(30))} == {"retry"}
    assert all(r.status == "pending" for r in rows(app))
    assert {r.status for r in delivery.drain(app.store, app.config, now=later(180))} == {"failed"}
    assert all(r.status == "failed" and "451" in r.last_error for r in rows(app))
    with app.store.session() as s:
        tid = s.execute(select(Ticket.id).where(Ticket.number == out.ticket_number)).scalar()
    assert any(kind == "SendFailed" and "gave up after 2h" in text
               for kind, text in history(app, tid))
    assert handler.envelopes == []


def test_a_claimed_row_is_not_claimed_again_until_its_lease_ends(sink_app):
    ingest_into(sink_app, make_mail(subject="Cannot log in"))
    now = datetime.now(timezone.utc)
    settings = sink_app.config.outbound
    first = delivery.claim(sink_app.store, settings, now, 10)
    assert first
    assert delivery.claim(sink_app.store, settings, now + timedelta(seconds=10), 10) == []
    after_lease = now + timedelta(seconds=settings["lease"] + 1)
    assert [r.id for r in delivery.claim(sink_app.store, settings, after_lease, 10)] == \
        [r.id for r in first]


def test_concurrent_workers_send_each_mail_once(conf_dir, make_app, smtp_sink):
    controller, handler = smtp_sink
    use_sink(conf_dir, controller)
    app = make_app()
    for i in range(12):
        ingest_into(app, make_mail(subject=f"Cannot log in {i}", frm=f"c{i}@customer.test"))
    total = len(rows(app))
    errors = []

    def worker():
        try:
            delivery.drain(app.store, app.config)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    ids = [email.message_from_bytes(e.content)["Message-ID"] for e in handler.envelopes]
    assert len(ids) == total == len(set(ids))


@pytest.fixture
def sink_app(conf_dir, make_app, smtp_sink):
    controller, _ = smtp_sink
    use_sink(conf_dir, controller)
    return make_app()


# -- header injection -----------------------------------------------------------------------
def test_build_neutralises_cr_lf_in_every_value():
    msg = message.build(fqdn="h.example", from_addr="support@example.com",
                        from_name="Desk\r\nBcc: evil@attacker.test",
                        to=[("alice@customer.test", "Alice\nX-Injected: 1")],
                        subject="Hi\r\nBcc: evil@attacker.test\r\n\r\nbody",
                        body="text", in_reply_to="a@b>\r\nX-Evil: 1",
                        references=["r1@x\nX-Evil: 2"])
    raw = msg.as_bytes(policy=policy.SMTP)
    head = raw.split(b"\r\n\r\n", 1)[0]
    parsed = email.message_from_bytes(raw, policy=policy.default)
    assert parsed["Bcc"] is None and parsed["X-Injected"] is None and parsed["X-Evil"] is None
    assert b"\r\nBcc:" not in head and b"\nX-Evil" not in head
    assert parsed["Subject"] == "Hi Bcc: evil@attacker.test body"
    assert [str(a) for a in parsed["To"].addresses] == ['"Alice X-Injected: 1" '
                                                        '<alice@customer.test>']


def test_injection_through_encoded_words_in_a_customer_mail(sink_app, smtp_sink):
    _, handler = smtp_sink
    subject = "=?utf-8?q?Hello=0D=0ABcc=3A_evil=40attacker=2Etest?="
    frm = "=?utf-8?q?Eve=0D=0AX-Injected=3A_yes?= <eve@customer.test>"
    ingest_into(sink_app, make_mail(subject=subject, frm=frm))
    delivery.drain(sink_app.store, sink_app.config)
    [env] = [e for e in handler.envelopes if e.rcpt_tos == ["eve@customer.test"]]
    head = env.content.split(b"\r\n\r\n", 1)[0]
    parsed = email.message_from_bytes(env.content, policy=policy.default)
    assert parsed["Bcc"] is None and parsed["X-Injected"] is None
    assert not any(line.lower().startswith((b"bcc:", b"x-injected:"))
                   for line in head.split(b"\r\n"))
    assert "Hello Bcc: evil@attacker.test" in parsed["Subject"]


def test_non_ascii_subject_and_body_are_encoded(sink_app, smtp_sink):
    _, handler = smtp_sink
    ingest_into(sink_app, make_mail(subject="Drucker kaputt – Grüße", frm="Jörg Müller "
                                    "<joerg@customer.test>"))
    delivery.drain(sink_app.store, sink_app.config)
    [env] = [e for e in handler.envelopes if e.rcpt_tos == ["joerg@customer.test"]]
    parsed = email.message_from_bytes(env.content, policy=policy.default)
    assert "Grüße" in parsed["Subject"]
    assert "Jörg Müller" in parsed.get_content()
    head = env.content.split(b"\r\n\r\n", 1)[0]
    assert max(head) < 128


# -- the command --------------------------------------------------------------------------------
def test_outbox_command_lists_and_retries(conf_dir, make_app, smtp_sink, capsys):
    from gateway.cli import main

    controller, handler = smtp_sink
    use_sink(conf_dir, controller)
    app = make_app()
    ingest_into(app, make_mail(subject="Cannot log in"))
    handler.reply = "554 5.7.1 rejected"
    delivery.drain(app.store, app.config)
    [row] = rows(app, "auto_reply")
    argv = ["--conf", str(conf_dir), "--database", app.config.database_url]
    capsys.readouterr()
    assert _cli(main, ["outbox"], argv) == 0
    out = capsys.readouterr().out
    assert "failed" in out and "554" in out and "alice@customer.test" in out
    assert _cli(main, ["outbox", "retry", str(row.id)], argv) == 0
    assert rows(app, "auto_reply")[0].status == "pending"
    handler.reply = "250 OK"
    assert _cli(main, ["outbox", "send"], argv) == 0
    assert rows(app, "auto_reply")[0].status == "sent" and len(handler.envelopes) == 1
    assert _cli(main, ["outbox", "retry", "999"], argv) != 0


def _cli(main, command, argv):
    try:
        return main(argv + command)
    except SystemExit as exc:
        return exc.code


# -- schema ---------------------------------------------------------------------------------------
def test_migrations_match_models(tmp_path):
    """create_all(models) and the Alembic head describe the same tables and columns."""
    from sqlalchemy import create_engine, inspect

    from gateway.store.db import migrate
    from gateway.store.models import Base

    migrated = create_engine(f"sqlite:///{tmp_path / 'm.db'}")
    migrate(migrated)
    created = create_engine(f"sqlite:///{tmp_path / 'c.db'}")
    Base.metadata.create_all(created)

    def shape(engine):
        insp = inspect(engine)
        return {t: (sorted((c["name"], str(c["type"]), c["nullable"])
                           for c in insp.get_columns(t)),
                    sorted(tuple(i["column_names"]) for i in insp.get_indexes(t)),
                    sorted(tuple(u["column_names"]) for u in insp.get_unique_constraints(t)))
                for t in insp.get_table_names() if t != "alembic_version"}

    got, want = shape(migrated), shape(created)
    for table in ("outbound_mail", "escalation_event"):
        assert got[table] == want[table], table
    assert set(got) == set(want)


def test_concurrent_workers_on_postgresql_skip_locked(conf_dir, make_app, smtp_sink,
                                                      postgres_url):
    controller, handler = smtp_sink
    use_sink(conf_dir, controller, ", batch: 3")
    app = make_app(database=postgres_url)
    for i in range(10):
        ingest_into(app, make_mail(subject=f"Cannot log in {i}", frm=f"p{i}@customer.test"))
    total = len(rows(app))
    threads = [threading.Thread(target=delivery.drain, args=(app.store, app.config))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = [email.message_from_bytes(e.content)["Message-ID"] for e in handler.envelopes]
    assert len(ids) == total == len(set(ids))
    assert all(r.status == "sent" for r in rows(app))


def test_recipient_refused_at_rcpt_fails_that_mail_only(conf_dir, make_app):
    from aiosmtpd.controller import Controller

    from tests.conftest import SinkHandler

    class Picky(SinkHandler):
        async def handle_RCPT(self, server, session, envelope, address, options):
            if address.startswith("gone@"):
                return "550 5.1.1 no such user"
            if address.startswith("busy@"):
                return "452 4.2.2 mailbox full"
            envelope.rcpt_tos.append(address)
            return "250 OK"

    handler = Picky()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        use_sink(conf_dir, controller)
        app = make_app()
        for who in ("gone", "busy", "fine"):
            ingest_into(app, make_mail(subject="Cannot log in", frm=f"{who}@customer.test"))
        delivery.drain(app.store, app.config)
    finally:
        controller.stop()
    status = {r.rcpt_to[0]: r.status for r in rows(app, "auto_reply")}
    assert status == {"gone@customer.test": "failed", "busy@customer.test": "pending",
                      "fine@customer.test": "sent"}
    assert [e.rcpt_tos for e in handler.envelopes if "customer.test" in e.rcpt_tos[0]] == \
        [["fine@customer.test"]]
