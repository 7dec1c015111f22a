"""The notifier against a real SMTP sink (aiosmtpd on 127.0.0.1): auto-responses and their
headers, reject, follow-up, loop protection (limit, two ticketgates, a vacation responder),
smarthost down and back, 5xx, header injection, escalation events with a fake clock,
timers, template errors."""
from __future__ import annotations

import email
import email.policy
from datetime import timedelta

import pytest
from sqlalchemy import select

from gateway.app import open_app
from gateway.app import load_config
from gateway.config import ConfigError
from gateway.intake import accept
from gateway.processing import process_inbound
from gateway.store.models import Ticket, utcnow
from notifier import escalation_watch, timers
from gateway.store.models import EscalationEvent, OutboundMail
from notifier.outbound.delivery import drain
from tests.conftest import free_port
from tests.mails import make_mail


def set_outbound(conf_dir, port, extra=""):
    path = conf_dir / "ticketgate.yaml"
    path.write_text(path.read_text() + f"\noutbound:\n  host: 127.0.0.1\n  port: {port}\n{extra}")


@pytest.fixture
def sink_app(conf_dir, make_app, smtp_sink):
    controller, handler = smtp_sink
    set_outbound(conf_dir, controller.port)
    return make_app(), handler


def run(app, raw, **env):
    from gateway.intake import Envelope

    raw = raw.encode() if isinstance(raw, str) else raw
    return process_inbound(app.store, app.pipeline, accept(app.store, raw, Envelope(**env))
                           .inbound_id)


def parsed(envelope):
    return email.message_from_bytes(envelope.content, policy=email.policy.default)


def sent_kinds(app):
    with app.store.session() as s:
        return [r.kind for r in s.execute(select(OutboundMail).order_by(OutboundMail.id))
                .scalars()]


def test_auto_reply_content_and_headers(sink_app):
    app, sink = sink_app
    out = run(app, make_mail(subject="Monitor broken", msgid="cust-1@customer.test"))
    results = drain(app.store, app.config)
    assert [r.status for r in results if r.status != "sent"] == []
    replies = [parsed(e) for e in sink.envelopes if e.rcpt_tos == ["alice@customer.test"]]
    assert len(replies) == 1
    reply = replies[0]
    assert reply["Auto-Submitted"] == "auto-replied"
    assert reply["X-Auto-Response-Suppress"] == "All"
    assert reply["X-Ticketgate-Loop"] == app.config.fqdn
    assert reply["In-Reply-To"] == "<cust-1@customer.test>"
    assert f"[Ticket#{out.ticket_number}]" in reply["Subject"]
    assert reply["From"].addresses[0].addr_spec == "support@example.com"
    assert reply["Message-ID"].endswith(f"@{app.config.fqdn}>")
    assert out.ticket_number in reply.get_content()
    # the customer answers the auto reply without the number: still a follow-up
    follow = run(app, make_mail(subject="thanks", in_reply_to=reply["Message-ID"].strip("<>")))
    assert follow.action == "follow_up" and follow.ticket_number == out.ticket_number


def test_agents_with_rights_are_notified(sink_app):
    app, sink = sink_app
    run(app, make_mail(subject="Network"), queue="Network Outage")   # group Tier 3
    drain(app.store, app.config)
    notified = {e.rcpt_tos[0] for e in sink.envelopes if parsed(e)["X-Ticketgate-Event"]}
    assert notified == {"nia.smith@example.com", "max.lee@example.com"}  # Tier 3 + Manager
    note = next(parsed(e) for e in sink.envelopes if parsed(e)["X-Ticketgate-Event"])
    assert note["Auto-Submitted"] == "auto-generated"


def test_reject_and_follow_up_responses(sink_app):
    app, sink = sink_app
    first = run(app, make_mail(subject="Buy"), queue="Large Hardware Purchases")
    with app.store.session() as s:
        s.execute(select(Ticket).where(Ticket.number == first.ticket_number)).scalar_one() \
            .state = "closed successful"
    run(app, make_mail(subject=f"Re: [Ticket#{first.ticket_number}]"))
    second = run(app, make_mail(subject="Help"))
    run(app, make_mail(subject=f"Re: [Ticket#{second.ticket_number}] more"))
    assert sent_kinds(app).count("auto_reject") == 1
    assert sent_kinds(app).count("auto_follow_up") == 1


def test_no_auto_response_to_machines(sink_app):
    app, _ = sink_app
    run(app, make_mail(subject="away", headers={"Auto-Submitted": "auto-replied"}))
    run(app, make_mail(subject="news", headers={"Precedence": "bulk"}))
    run(app, make_mail(subject="x", frm="MAILER-DAEMON@mx.test"))
    assert [k for k in sent_kinds(app) if k.startswith("auto")] == []


def test_auto_response_limit_per_sender(conf_dir, make_app, smtp_sink):
    set_outbound(conf_dir, smtp_sink[0].port, "  auto_response_limit: 3\n")
    app = make_app()
    for i in range(6):
        run(app, make_mail(subject=f"new {i}"))
    assert sent_kinds(app).count("auto_reply") == 3
    with app.store.session() as s:
        history = [h.message for t in s.execute(select(Ticket)).scalars() for h in t.history]
    assert sum("loop protection" in m for m in history) == 3


def _instance(tmp_path, name, fqdn, address, port, limit=40):
    import shutil

    from tests.conftest import CONF

    conf = tmp_path / name
    shutil.copytree(CONF, conf)
    main = conf / "ticketgate.yaml"
    text = main.read_text().replace("helpdesk.example.com", fqdn)
    text = text.replace("support@example.com", address)
    main.write_text(text + f"\noutbound:\n  host: 127.0.0.1\n  port: {port}\n"
                           f"  auto_response_limit: {limit}\n")
    return open_app(conf, database=f"sqlite:///{tmp_path / name}.db")


def test_two_ticketgates_mailing_each_other_stop(tmp_path, smtp_sink):
    controller, sink = smtp_sink
    a = _instance(tmp_path, "a", "a.test", "support@a.test", controller.port)
    b = _instance(tmp_path, "b", "b.test", "support@b.test", controller.port)
    # a mail from B's address to A starts it (as if B had written to A)
    run(a, make_mail(subject="hello", frm="support@b.test", to="support@a.test"))
    rounds = 0
    while rounds < 50:
        before = len(sink.envelopes)
        drain(a.store, a.config)
        drain(b.store, b.config)
        new = sink.envelopes[before:]
        if not new:
            break
        for env in new:
            target = a if "support@a.test" in env.rcpt_tos else \
                b if "support@b.test" in env.rcpt_tos else None
            if target is not None:
                run(target, env.content)
        rounds += 1
    assert rounds <= 2          # A answers once; B sees Auto-Submitted and stays silent
    assert len([e for e in sink.envelopes if parsed(e)["Auto-Submitted"] == "auto-replied"]) == 1


def test_naive_vacation_responder_loop_ends_at_the_limit(tmp_path, smtp_sink):
    """A responder that answers everything, strips all headers and keeps the subject: the
    per-sender limit is the only thing that can stop it, and it does."""
    controller, sink = smtp_sink
    a = _instance(tmp_path, "a", "a.test", "support@a.test", controller.port, limit=5)
    run(a, make_mail(subject="hello", frm="bot@vacation.test", to="support@a.test"))
    for _ in range(30):
        before = len(sink.envelopes)
        drain(a.store, a.config)
        new = [e for e in sink.envelopes[before:] if e.rcpt_tos == ["bot@vacation.test"]]
        if not new:
            break
        for env in new:
            subject = parsed(env)["Subject"]
            run(a, make_mail(subject=f"Re: {subject}", frm="bot@vacation.test",
                             to="support@a.test"))
    to_bot = [e for e in sink.envelopes if e.rcpt_tos == ["bot@vacation.test"]]
    assert len(to_bot) == 5


def test_smarthost_down_then_back_delivers_once(conf_dir, make_app):
    from aiosmtpd.controller import Controller

    from tests.conftest import SinkHandler

    port = free_port()
    set_outbound(conf_dir, port)
    app = make_app()
    run(app, make_mail(subject="while down"))
    now = utcnow()
    results = drain(app.store, app.config, now=now)
    assert results and {r.status for r in results} == {"retry"}
    with app.store.session() as s:
        rows = s.execute(select(OutboundMail)).scalars().all()
        assert all(r.status == "pending" and r.attempts == 1 and r.next_attempt > now
                   for r in rows)
    assert drain(app.store, app.config, now=now) == []     # not due yet: no hammering
    handler = SinkHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        later = now + timedelta(minutes=5)
        results = drain(app.store, app.config, now=later)
        assert {r.status for r in results} == {"sent"}
        assert drain(app.store, app.config, now=later + timedelta(hours=1)) == []
        assert len(handler.envelopes) == len(rows)
    finally:
        controller.stop()


def test_give_up_after_the_configured_time(conf_dir, make_app):
    set_outbound(conf_dir, free_port(), "  give_up_after: 1h\n")
    app = make_app()
    out = run(app, make_mail(subject="never"))
    drain(app.store, app.config, now=utcnow() + timedelta(hours=2))
    with app.store.session() as s:
        assert {r.status for r in s.execute(select(OutboundMail)).scalars()} == {"failed"}
        t = s.execute(select(Ticket).where(Ticket.number == out.ticket_number)).scalar_one()
        assert any(h.type == "SendFailed" and "gave up after 1h" in h.message
                   for h in t.history)


def test_5xx_fails_at_once_and_is_recorded(sink_app):
    app, sink = sink_app
    sink.reply = "550 5.1.1 no such user"
    out = run(app, make_mail(subject="bad address"))
    results = drain(app.store, app.config)
    assert results and {r.status for r in results} == {"failed"}
    with app.store.session() as s:
        t = s.execute(select(Ticket).where(Ticket.number == out.ticket_number)).scalar_one()
        assert any(h.type == "SendFailed" and "550" in h.message for h in t.history)


def test_header_injection_is_neutralised(sink_app):
    app, sink = sink_app
    raw = (b"From: =?utf-8?q?Eve=0D=0ABcc:_victim@evil.test?= <eve@customer.test>\r\n"
           b"To: support@example.com\r\n"
           b"Subject: =?utf-8?q?Hi=0D=0ABcc:_victim2@evil.test=0D=0A=0D=0Abody?=\r\n"
           b"Message-ID: <inj@customer.test>\r\n\r\nhello\r\n")
    run(app, raw)
    drain(app.store, app.config)
    replies = [e for e in sink.envelopes if "eve@customer.test" in e.rcpt_tos]
    assert len(replies) == 1
    msg = parsed(replies[0])
    assert msg["Bcc"] is None
    assert all("victim" not in r for e in sink.envelopes for r in e.rcpt_tos)
    head = replies[0].content.split(b"\r\n\r\n", 1)[0]
    assert not any(line.lower().startswith(b"bcc") for line in head.splitlines())


def test_escalation_events_at_the_right_instant_once(sink_app):
    app, sink = sink_app
    out = run(app, make_mail(subject="down"), queue="Network Outage")   # 24x7, 30 min, 50 %
    with app.store.session() as s:
        created = s.execute(select(Ticket).where(Ticket.number == out.ticket_number)) \
            .scalar_one().created
    assert escalation_watch.scan(app.store, app.config, now=created + timedelta(minutes=14)) \
        == []
    first = escalation_watch.scan(app.store, app.config, now=created + timedelta(minutes=16))
    assert first == [(out.ticket_number, "EscalationResponseTimeNotifyBefore")]
    assert escalation_watch.scan(app.store, app.config, now=created + timedelta(minutes=17)) \
        == []
    breach = escalation_watch.scan(app.store, app.config, now=created + timedelta(minutes=31))
    assert (out.ticket_number, "EscalationResponseTimeStart") in breach
    with app.store.session() as s:
        events = s.execute(select(EscalationEvent.event)).scalars().all()
    assert events.count("EscalationResponseTimeNotifyBefore") == 1
    drain(app.store, app.config)
    subjects = [parsed(e)["Subject"] for e in sink.envelopes]
    assert any("First response time breached" in s for s in subjects)


def test_two_daemons_emit_each_escalation_event_once(sink_app, make_app):
    app, _ = sink_app
    other = make_app()          # a second daemon on the same database
    out = run(app, make_mail(subject="down"), queue="Network Outage")
    with app.store.session() as s:
        created = s.execute(select(Ticket).where(Ticket.number == out.ticket_number)) \
            .scalar_one().created
    later = created + timedelta(hours=3)
    one = escalation_watch.scan(app.store, app.config, now=later)
    with app.store.session() as s:   # as if the second daemon read the ticket before the first
        s.execute(select(Ticket).where(Ticket.number == out.ticket_number)).scalar_one() \
            .escalation_next = created
    two = escalation_watch.scan(other.store, other.config, now=later)
    assert len(one) >= 3 and two == []


def test_unlock_timeout_and_pending_auto_close(conf_dir, make_app, smtp_sink):
    path = conf_dir / "queues.yaml"
    path.write_text(path.read_text().replace("  Network Outage:\n",
                                             "  Network Outage:\n    unlock_timeout: 60\n"))
    set_outbound(conf_dir, smtp_sink[0].port)
    app = make_app()
    a = run(app, make_mail(subject="lock me"), queue="Network Outage")
    b = run(app, make_mail(subject="pending"))
    with app.store.session() as s:
        ta = s.execute(select(Ticket).where(Ticket.number == a.ticket_number)).scalar_one()
        ta.locked, ta.owner = True, "nsmith"
        tb = s.execute(select(Ticket).where(Ticket.number == b.ticket_number)).scalar_one()
        tb.state, tb.pending_until = "pending auto close+", utcnow() + timedelta(hours=1)
        created = ta.created
    assert timers.unlock_timeouts(app.store, app.config, now=created + timedelta(minutes=30)) \
        == []
    assert timers.unlock_timeouts(app.store, app.config, now=created + timedelta(minutes=61)) \
        == [a.ticket_number]
    assert timers.pending_times(app.store, app.config, now=utcnow()) == []
    assert timers.pending_times(app.store, app.config, now=utcnow() + timedelta(hours=2)) \
        == [(b.ticket_number, "auto close")]
    with app.store.session() as s:
        assert s.execute(select(Ticket.state).where(Ticket.number == b.ticket_number)) \
            .scalar_one() == "closed successful"


def test_template_error_is_a_config_error(conf_dir):
    (conf_dir / "templates" / "auto_reply.txt").write_text(
        "Subject: {{ ticket.number }\n\nbody\n")
    with pytest.raises(ConfigError) as err:
        load_config(conf_dir)
    assert "auto_reply.txt:1: template syntax error" in str(err.value)
    (conf_dir / "templates" / "auto_reply.txt").unlink()
    with pytest.raises(ConfigError) as err:
        load_config(conf_dir)
    assert "template 'auto_reply.txt': cannot read" in str(err.value)


def test_template_body_error_names_the_file_line(conf_dir):
    (conf_dir / "templates" / "auto_reject.txt").write_text(
        "Subject: ok\n\nline one\n{% if %}\n")
    with pytest.raises(ConfigError) as err:
        load_config(conf_dir)
    assert str(err.value).count("auto_reject.txt:4: template syntax error") == 1


def test_wire_bytes_are_valid_smtp_for_long_and_non_ascii_values():
    from notifier.message import build, wire_bytes

    msg = build(fqdn="x.test", from_addr="support@example.com", from_name="Hélp Désk",
                to=[("a@b.test", "Änne"), ("c@bücher.de", "")], subject="Grüße " + "x" * 300,
                body="Hallo Änne,\r\nline " + "y" * 1500 + "\n", in_reply_to="abc@d",
                references=[f"r{i}@{'z' * 60}.test" for i in range(25)], auto_submitted=True)
    raw = wire_bytes(msg)
    lines = raw.split(b"\r\n")
    assert b"\n" not in raw.replace(b"\r\n", b"") and b"\r" not in raw.replace(b"\r\n", b"")
    assert max(map(len, lines)) <= 998
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert str(parsed["From"]) == "Hélp Désk <support@example.com>"
    assert "c@xn--bcher-kva.de" in str(parsed["To"])
    assert parsed["Subject"] == "Grüße " + "x" * 300
    assert len(parsed["References"].split()) == 20
    assert parsed.get_content().replace("\r\n", "\n") == "Hallo Änne,\nline " + "y" * 1500 + "\n"


def test_template_failing_at_run_time_never_fails_the_mail(conf_dir, make_app, smtp_sink):
    """A template that compiles but fails when rendered: the mail still becomes a ticket, the
    history says why no auto reply went out, agents get the built-in notification text."""
    set_outbound(conf_dir, smtp_sink[0].port)
    (conf_dir / "templates" / "auto_reply.txt").write_text("Subject: hi\n\n{{ 1 / 0 }}\n")
    (conf_dir / "templates" / "notifications").mkdir(exist_ok=True)
    (conf_dir / "templates" / "notifications" / "NewTicket.txt").write_text(
        "Subject: {{ ticket.number.nope() }}\n\nx\n")
    app = make_app()
    out = run(app, make_mail(subject="still a ticket"))
    assert out.status == "done" and out.action == "new_ticket"
    with app.store.session() as s:
        t = s.execute(select(Ticket).where(Ticket.number == out.ticket_number)).scalar_one()
        assert any("auto_reply not sent: template 'auto_reply.txt': ZeroDivisionError"
                   in h.message for h in t.history)
    assert "notification" in sent_kinds(app) and "auto_reply" not in sent_kinds(app)
